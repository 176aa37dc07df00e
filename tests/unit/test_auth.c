/*  test_auth.c: CURVE acceptance through zauth, caller identity, death watch. */
#include <criterion/criterion.h>
#include "ep_test.h"
#include "ep_keys.h"
#include "ep_auth.h"

//  One CURVE ROUTER server (the "bus" certificate) guarded by ep_auth.
typedef struct {
    char *tmp;                  //  test directory
    char keys [512];            //  keys directory inside it
    ep_auth_t *auth;            //  zauth over keys/authorized
    zcert_t *cert;              //  the server's certificate
    zsock_t *router;            //  the server socket
    char endpoint [128];        //  where it listens
} server_t;

static server_t s;

static void
s_setup (void)
{
    s.tmp = ep_tmpdir_new ("auth");
    snprintf (s.keys, sizeof s.keys, "%s/keys", s.tmp);
    char err [512] = "";
    cr_assert_eq (ep_keys_init (s.keys, false, err, sizeof err), 0, "%s", err);
    //  zauth first, then the socket: nothing is bound without it.
    s.auth = ep_auth_new (s.keys);
    cr_assert (s.auth);
    s.cert = ep_keys_load (s.keys, "bus");
    cr_assert (s.cert);
    s.router = zsock_new (ZMQ_ROUTER);
    cr_assert_eq (ep_curve_server (s.router, s.cert), 0);
    int port = zsock_bind (s.router, "tcp://127.0.0.1:*");
    cr_assert_gt (port, 0);
    snprintf (s.endpoint, sizeof s.endpoint, "tcp://127.0.0.1:%d", port);
}

static void
s_teardown (void)
{
    zsock_destroy (&s.router);
    zcert_destroy (&s.cert);
    ep_auth_destroy (&s.auth);
    ep_tmpdir_remove (&s.tmp);
}

//  A DEALER speaking CURVE to the server with cert (not taken).
static zsock_t *
s_client (zcert_t *cert)
{
    char *server_key = ep_keys_public_txt (s.keys, "bus");
    cr_assert (server_key);
    zsock_t *client = zsock_new (ZMQ_DEALER);
    cr_assert_eq (ep_curve_client (client, cert, server_key), 0);
    cr_assert_eq (zsock_connect (client, "%s", s.endpoint), 0);
    free (server_key);
    return client;
}

//  Receives one message on the server within timeout_ms; NULL if none came.
static zmsg_t *
s_server_recv (int timeout_ms)
{
    zpoller_t *poller = zpoller_new (s.router, NULL);
    zmsg_t *msg = NULL;
    if (zpoller_wait (poller, timeout_ms) == s.router)
        msg = zmsg_recv (s.router);
    zpoller_destroy (&poller);
    return msg;
}

//  Waits for the server to receive body and returns who sent it.
static void
s_expect (const char *body, ep_caller_t *caller)
{
    zmsg_t *msg = s_server_recv (5000);
    cr_assert (msg, "server received nothing, expected '%s'", body);
    cr_assert_eq (zmsg_size (msg), 2);
    zframe_t *payload = zmsg_last (msg);
    cr_assert (zframe_streq (payload, body), "unexpected message");
    cr_assert_eq (ep_caller_from_frame (payload, caller), 0);
    zmsg_destroy (&msg);
}

Test (auth, only_authorized_keys_get_in, .init = s_setup, .fini = s_teardown)
{
    //  Watch the server for handshakes zauth refused.
    cr_assert_eq (zmq_socket_monitor (zsock_resolve (s.router), "inproc://test-auth-monitor",
                                      ZMQ_EVENT_HANDSHAKE_FAILED_AUTH), 0);
    zsock_t *monitor = zsock_new (ZMQ_PAIR);
    zsock_set_rcvtimeo (monitor, 5000);
    cr_assert_eq (zsock_connect (monitor, "inproc://test-auth-monitor"), 0);

    //  (a) A stranger knows the server key, but its own key is not authorized.
    zcert_t *stranger_cert = zcert_new ();
    zcert_set_meta (stranger_cert, "role", "operator");
    zcert_set_meta (stranger_cert, "name", "operator");
    zsock_t *stranger = s_client (stranger_cert);
    cr_assert_eq (zstr_send (stranger, "from-stranger"), 0);

    zmsg_t *event = zmsg_recv (monitor);
    cr_assert (event, "no authentication failure reported within the deadline");
    cr_assert_eq (zmsg_size (event), 2);
    zframe_t *head = zmsg_first (event);
    cr_assert_eq (zframe_size (head), 6);
    uint16_t id;
    memcpy (&id, zframe_data (head), sizeof id);
    cr_assert_eq (id, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    zmsg_destroy (&event);

    //  (b) The operator's certificate gets through, and the server learns
    //  its key, role and name.
    zcert_t *operator_cert = ep_keys_load (s.keys, "operator");
    cr_assert (operator_cert);
    zsock_t *operator = s_client (operator_cert);
    cr_assert_eq (zstr_send (operator, "from-operator"), 0);
    ep_caller_t caller;
    s_expect ("from-operator", &caller);
    cr_assert_str_eq (caller.key, zcert_public_txt (operator_cert));
    cr_assert_str_eq (caller.role, "operator");
    cr_assert_str_eq (caller.name, "operator");

    //  The stranger's message never arrives.
    zmsg_t *extra = s_server_recv (300);
    cr_assert_null (extra, "the server received a message from an unauthorized client");

    zmq_socket_monitor (zsock_resolve (s.router), NULL, 0);
    zsock_destroy (&monitor);
    zsock_destroy (&operator);
    zsock_destroy (&stranger);
    zcert_destroy (&operator_cert);
    zcert_destroy (&stranger_cert);
}

Test (auth, issued_key_is_accepted_without_restart, .init = s_setup, .fini = s_teardown)
{
    //  Let zauth load the store once, so the issue below is a change to it.
    zcert_t *service_cert = ep_keys_load (s.keys, "watchdog");
    zsock_t *service = s_client (service_cert);
    cr_assert_eq (zstr_send (service, "from-watchdog"), 0);
    ep_caller_t caller;
    s_expect ("from-watchdog", &caller);
    cr_assert_str_eq (caller.role, "service");
    cr_assert_str_eq (caller.name, "watchdog");

    //  (c) Issued while zauth runs: accepted on the next handshake.
    char out [1024], err [512] = "";
    snprintf (out, sizeof out, "%s/issued", s.tmp);
    cr_assert_eq (ep_keys_issue (s.keys, "carol", EP_ROLE_SUBSCRIBER, out, err, sizeof err), 0,
                  "%s", err);
    char path [1100];
    snprintf (path, sizeof path, "%s/carol.cert_secret", out);
    zcert_t *carol_cert = zcert_load (path);
    cr_assert (carol_cert);
    zsock_t *carol = s_client (carol_cert);
    cr_assert_eq (zstr_send (carol, "from-carol"), 0);
    s_expect ("from-carol", &caller);
    cr_assert_str_eq (caller.key, zcert_public_txt (carol_cert));
    cr_assert_str_eq (caller.role, "subscriber");
    cr_assert_str_eq (caller.name, "carol");

    zsock_destroy (&carol);
    zsock_destroy (&service);
    zcert_destroy (&carol_cert);
    zcert_destroy (&service_cert);
}

Test (auth, death_makes_the_actor_readable, .init = s_setup, .fini = s_teardown)
{
    zpoller_t *poller = zpoller_new (ep_auth_actor (s.auth), NULL);
    cr_assert_null (zpoller_wait (poller, 0));
    cr_assert_not (ep_auth_dead (s.auth));
    ep_auth_check (s.auth);         //  alive: returns

    //  (d) zauth ends: the watched actor becomes readable.
    cr_assert_eq (zstr_send (ep_auth_actor (s.auth), "$TERM"), 0);
    cr_assert_eq (zpoller_wait (poller, 5000), ep_auth_actor (s.auth),
                  "zauth's death was not signalled");
    cr_assert (ep_auth_dead (s.auth));
    cr_assert (ep_auth_dead (s.auth), "checking consumed the signal");
    zpoller_destroy (&poller);
    //  The teardown's ep_auth_destroy must not hang on the dead actor.
}

Test (auth, check_exits_once_zauth_died, .init = s_setup, .exit_code = 1)
{
    cr_assert_eq (zstr_send (ep_auth_actor (s.auth), "$TERM"), 0);
    zpoller_t *poller = zpoller_new (ep_auth_actor (s.auth), NULL);
    cr_assert_eq (zpoller_wait (poller, 5000), ep_auth_actor (s.auth));
    zpoller_destroy (&poller);
    ep_tmpdir_remove (&s.tmp);      //  no teardown runs after the exit
    ep_auth_check (s.auth);
    cr_assert_fail ("ep_auth_check returned after zauth died");
}

Test (auth, plain_frames_have_no_caller)
{
    ep_caller_t caller;
    zframe_t *frame = zframe_new ("x", 1);
    cr_assert_eq (ep_caller_from_frame (frame, &caller), -1);
    cr_assert_str_empty (caller.key);
    cr_assert_str_empty (caller.role);
    zframe_destroy (&frame);
    cr_assert_eq (ep_caller_from_frame (NULL, &caller), -1);

    //  A message over a socket without CURVE carries no identity either.
    zsock_t *server = zsock_new (ZMQ_PAIR);
    int port = zsock_bind (server, "tcp://127.0.0.1:*");
    cr_assert_gt (port, 0);
    zsock_t *client = zsock_new (ZMQ_PAIR);
    cr_assert_eq (zsock_connect (client, "tcp://127.0.0.1:%d", port), 0);
    zsock_set_rcvtimeo (server, 5000);
    cr_assert_eq (zstr_send (client, "plain"), 0);
    frame = zframe_recv (server);
    cr_assert (frame);
    cr_assert_eq (ep_caller_from_frame (frame, &caller), -1);
    zframe_destroy (&frame);
    zsock_destroy (&client);
    zsock_destroy (&server);
}

Test (auth, missing_keys_directory_is_reported)
{
    char *tmp = ep_tmpdir_new ("auth-missing");
    cr_assert_null (ep_auth_new (tmp));
    ep_tmpdir_remove (&tmp);
}

Test (auth, role_allowed)
{
    const char *const readers [] = { "service", "subscriber", NULL };
    cr_assert (ep_role_allowed ("subscriber", readers));
    cr_assert (ep_role_allowed ("service", readers));
    cr_assert_not (ep_role_allowed ("operator", readers));
    cr_assert_not (ep_role_allowed ("", readers));
    cr_assert_not (ep_role_allowed (NULL, readers));
    const char *const none [] = { NULL };
    cr_assert_not (ep_role_allowed ("service", none));
}
