/*  test_fdlimit.c: the ZeroMQ clients at the descriptor limit. Creating a
    socket at EMFILE used to abort the process (an assertion on the new
    socket); now ep_rpc_client_new, ep_publisher_new and ep_subscriber_new
    return NULL, ep_rpc_client_call answers NULL with a message that names
    the descriptor limit, each refusal is counted (ep_fdlimit), and all
    work again once descriptors are free. The watch reports reaching the
    limit once per time it is reached. Each Criterion test runs in its own
    process, so the limit set here touches no other test. */
#include <criterion/criterion.h>
#include "ep_test.h"
#include "ep_fdlimit.h"
#include "ep_keys.h"
#include "ep_publisher.h"
#include "ep_rpc_client.h"
#include "ep_subscriber.h"
#include "ep_codec.h"
#include "model.pb-c.h"
#include <fcntl.h>
#include <sys/resource.h>

#define LIMIT 128

//  Fills every free descriptor below LIMIT with /dev/null; returns how many.
static int
s_fill (int *fds, int max)
{
    int count = 0;
    while (count < max) {
        int fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            cr_assert_eq (errno, EMFILE);
            break;
        }
        fds [count++] = fd;
    }
    return count;
}

Test (fdlimit, clients_at_the_descriptor_limit_fail_with_a_reason_and_recover)
{
    zsys_init ();
    struct rlimit limit = { LIMIT, LIMIT };
    cr_assert_eq (setrlimit (RLIMIT_NOFILE, &limit), 0);
    //  A client made while descriptors are free, for a service that does
    //  not answer: its first attempt drops the connection and the next
    //  needs a new socket.
    int port = ep_test_stable_port ();
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    ep_rpc_client_t *client = ep_rpc_client_new (endpoint, NULL, NULL);
    cr_assert_not_null (client);

    int fds [LIMIT];
    int filled = s_fill (fds, LIMIT);
    cr_assert_gt (filled, 0);
    cr_assert_null (ep_rpc_client_new (endpoint, NULL, NULL), "a client made at EMFILE");
    cr_assert_null (ep_publisher_new (endpoint, NULL, NULL, "test", EP_CODEC_DEFAULT_CAP));
    cr_assert_null (ep_subscriber_new (endpoint, NULL, NULL, EP_CODEC_DEFAULT_CAP, NULL, NULL));
    cr_assert_eq (ep_fdlimit_refusals (EP_FDLIMIT_SOCKET), 3, "each client socket refused is counted");
    char id [33], err [256] = "";
    ep_rpc_new_id (id);
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.request_id = id;
    request.op_case = EP__MODEL_REQUEST__OP_STATUS;
    Ep__StatusRequest status = EP__STATUS_REQUEST__INIT;
    request.status = &status;
    void *reply = ep_rpc_client_call (client, &request.base, id, &ep__model_reply__descriptor,
                                      100, 2, err, sizeof err);
    cr_assert_null (reply);
    cr_assert (strstr (err, "descriptor limit"), "the error does not name the descriptor limit: %s", err);

    //  Descriptors free again: everything works.
    for (int i = 0; i < filled; i++)
        close (fds [i]);
    ep_rpc_client_t *later = ep_rpc_client_new (endpoint, NULL, NULL);
    cr_assert_not_null (later, "no client after descriptors were freed");
    ep_publisher_t *publisher = ep_publisher_new (endpoint, NULL, NULL, "test", EP_CODEC_DEFAULT_CAP);
    cr_assert_not_null (publisher);
    reply = ep_rpc_client_call (client, &request.base, id, &ep__model_reply__descriptor, 100, 1, err, sizeof err);
    cr_assert_null (reply);
    cr_assert (strstr (err, "no reply"), "after recovery the client reports a silent service: %s", err);
    ep_publisher_destroy (&publisher);
    ep_rpc_client_destroy (&later);
    ep_rpc_client_destroy (&client);
}

//  Leaves free descriptors below LIMIT (after s_fill took them all).
static int
s_give_back (int *fds, int filled, int free_count)
{
    for (int i = 0; i < free_count && filled > 0; i++)
        close (fds [--filled]);
    return filled;
}

Test (fdlimit, headroom_and_the_watch)
{
    struct rlimit limit = { LIMIT, LIMIT };
    cr_assert_eq (setrlimit (RLIMIT_NOFILE, &limit), 0);
    int64_t now = 1000000;
    cr_assert_not (ep_fdlimit_watch (now));
    cr_assert_not (ep_fdlimit_reached ());

    int fds [LIMIT];
    int filled = s_fill (fds, LIMIT);
    filled = s_give_back (fds, filled, EP_FDLIMIT_HEADROOM - 1);
    cr_assert (ep_fdlimit_spare (EP_FDLIMIT_HEADROOM - 1));
    cr_assert_not (ep_fdlimit_spare (EP_FDLIMIT_HEADROOM));
    cr_assert_eq (errno, EMFILE);
    cr_assert (ep_fdlimit_reached ());
    //  Reached: counted once however long it lasts; looked at once a second.
    cr_assert (ep_fdlimit_watch (now + 1000));
    cr_assert_eq (ep_fdlimit_reached_count (), 1);
    filled = s_give_back (fds, filled, 1);
    cr_assert (ep_fdlimit_watch (now + 1500), "looked again within the second");
    cr_assert_not (ep_fdlimit_watch (now + 2000));
    cr_assert_eq (ep_fdlimit_reached_count (), 1);
    filled += s_fill (fds + filled, LIMIT - filled);
    cr_assert (ep_fdlimit_watch (now + 3000));
    cr_assert (ep_fdlimit_watch (now + 4000));
    cr_assert_eq (ep_fdlimit_reached_count (), 2);

    ep_fdlimit_refused (EP_FDLIMIT_CHANNEL);
    ep_fdlimit_refused (EP_FDLIMIT_CHANNEL);
    cr_assert_eq (ep_fdlimit_refusals (EP_FDLIMIT_CHANNEL), 2);
    cr_assert_eq (ep_fdlimit_refusals (EP_FDLIMIT_HTTP), 0);
    cr_assert_str_eq (ep_fdlimit_what_name (EP_FDLIMIT_CHANNEL), "channel");
    s_give_back (fds, filled, filled);
    cr_assert_not (ep_fdlimit_watch (now + 5000));
}
