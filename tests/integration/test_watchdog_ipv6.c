/*  test_watchdog_ipv6.c: the channel listener on an IPv6 address.

    EDGEPLANE_CHANNEL_LISTEN=[::1]:0 opens an IPv6 socket (common/ep_addr,
    common/ep_tls_server), the ready file says where ([::1]:port), and a
    router joins over ::1. The router side is written with ep_chan_io's
    steps, so this suite needs nothing but common/. */
#include <criterion/criterion.h>
#include "ep_stack.h"
#include "ep_chan_io.h"
#include "ep_pki.h"
#include "ep_pki_tls.h"
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

static ep_stack_t *s_stack;

//  True if this machine has ::1 to bind to.
static bool
s_has_ipv6_loopback (void)
{
    int fd = socket (AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 addr = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
    bool ok = fd >= 0 && bind (fd, (struct sockaddr *) &addr, sizeof addr) == 0;
    if (fd >= 0)
        close (fd);
    return ok;
}

//  Waits until fd is ready for events or deadline (monotonic ms) passes.
static void
s_wait (int fd, short events, int64_t deadline)
{
    int64_t left = deadline - ep_mono_ms ();
    cr_assert_gt (left, 0, "timed out");
    struct pollfd pfd = { .fd = fd, .events = events };
    poll (&pfd, 1, (int) left);
}

//  Waits as io says (WANT_READ, WANT_WRITE); fails the test on anything else.
static void
s_wait_io (int fd, ep_chan_io_t io, int64_t deadline)
{
    cr_assert (io == EP_CHAN_IO_WANT_READ || io == EP_CHAN_IO_WANT_WRITE, "TLS failed (%d)", io);
    s_wait (fd, io == EP_CHAN_IO_WANT_WRITE? POLLOUT: POLLIN, deadline);
}

//  Joins the channel at address as router id; returns the HelloResult.
static Ep__HelloResult *
s_join (const char *address, SSL_CTX *ctx, const char *id)
{
    int64_t deadline = ep_mono_ms () + 10000;
    char err [512];
    ep_chan_dial_error_t error;
    int fd = ep_chan_dial (address, EP_CHAN_DIAL_HOSTPORT, &error, err, sizeof err);
    cr_assert_geq (fd, 0, "%s", err);
    s_wait (fd, POLLOUT, deadline);
    cr_assert_eq (ep_chan_dial_errno (fd), 0, "cannot connect to %s", address);
    SSL *ssl = ep_chan_tls_new (ctx, fd);
    ep_chan_io_t io;
    while ((io = ep_chan_io_of (ssl, SSL_do_handshake (ssl))) != EP_CHAN_IO_OK)
        s_wait_io (fd, io, deadline);
    Ep__Hello hello;
    Ep__Frame frame;
    ep_chan_hello (&frame, &hello, 1, EP__ROLE__ROLE_ROUTER, id);
    uint8_t *bytes;
    size_t len, sent = 0, written;
    cr_assert_eq (ep_frame_encode (&frame, EP_FRAME_PREJOIN_CAP, &bytes, &len), 0);
    while ((io = ep_chan_write (ssl, bytes + sent, len - sent, &written)) != EP_CHAN_IO_OK) {
        sent += written;
        s_wait_io (fd, io, deadline);
    }
    free (bytes);
    ep_frame_reader_t *reader = ep_frame_reader_new (EP_FRAME_JOINED_CAP);
    Ep__Frame *reply;
    while (!(reply = ep_chan_next (ssl, reader, ep_mono_ms (), &io)))
        s_wait_io (fd, io, deadline);
    cr_assert_eq (reply->body_case, EP__FRAME__BODY_HELLO_RESULT);
    Ep__HelloResult *result = reply->hello_result;
    reply->hello_result = NULL;
    reply->body_case = EP__FRAME__BODY__NOT_SET;
    ep__frame__free_unpacked (reply, NULL);
    ep_frame_reader_destroy (&reader);
    SSL_free (ssl);
    close (fd);
    return result;
}

static void
s_setup (void)
{
    s_stack = ep_stack_new ("watchdog-ipv6");
    //  Nothing listens there: relays are not under test here.
    ep_stack_setenv (s_stack, "EDGEPLANE_TERMINATORS_API", "tcp://127.0.0.1:1");
    ep_stack_setenv (s_stack, "EDGEPLANE_REAPER_API", "tcp://127.0.0.1:1");
}

static void
s_teardown (void)
{
    ep_stack_destroy (&s_stack);
}

Test (watchdog_ipv6, a_router_joins_over_ipv6_loopback,
      .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    if (!s_has_ipv6_loopback ())
        cr_skip_test ("this machine has no ::1: the IPv6 listener cannot be tested here");
    const char *dir = ep_stack_dir (s_stack), *keys = ep_stack_keys (s_stack);
    char err [512];
    ep_stack_router_write (s_stack, EP__MODEL_WRITE__OP__CREATE, "r1", NULL, 0);
    cr_assert_eq (ep_pki_issue (keys, "router", "r1", dir, 30, err, sizeof err), 0, "%s", err);
    ep_stack_setenv (s_stack, "EDGEPLANE_CHANNEL_LISTEN", "[::1]:0");
    const char *args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", "127.0.0.1:0", NULL };
    ep_proc_t *watchdog = ep_proc_start ("edgeplane-watchdog", args, ep_stack_env (s_stack), 15000);
    cr_assert_not_null (watchdog);
    ep_stack_keep (s_stack, watchdog);

    const char *address = ep_proc_endpoint (watchdog, "channel");
    cr_assert (strncmp (address, "[::1]:", 6) == 0, "the channel is at %s, not on [::1]", address);
    char *cert = zsys_sprintf ("%s/r1.crt", dir), *key = zsys_sprintf ("%s/r1.key", dir);
    char *ca = zsys_sprintf ("%s/ca.crt", dir);
    SSL_CTX *ctx = ep_pki_client_ctx (cert, key, ca, err, sizeof err);
    cr_assert_not_null (ctx, "%s", err);
    Ep__HelloResult *result = s_join (address, ctx, "r1");
    cr_assert_eq (result->status->code, EP__STATUS__CODE__OK, "%s", result->status->message);
    ep__hello_result__free_unpacked (result, NULL);
    ep_pki_ctx_free (&ctx);
    free (cert);
    free (key);
    free (ca);
}
