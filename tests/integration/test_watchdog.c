/*  test_watchdog.c: the real edgeplane-watchdog (with bus and model) and
    real TLS clients: strays on time, every refusal with its own reason,
    heartbeats, drain on deletion, two instances holding a router once. */
#include <criterion/criterion.h>
#include "ep_stack.h"
#include "ep_wdtest.h"
#include "ep_eventlog.h"
#include "chan_client.h"
#include "ep_codec.h"
#include "ep_keys.h"
#include "ep_pki_tls.h"
#include "ep_publisher.h"
#include "ep_rpc_client.h"
#include "ep_subscriber.h"
#include "model.pb-c.h"
#include <arpa/inet.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define GRACE_MS 500

static ep_stack_t *s_stack;     //  keys, bus, model, environment
static const char *s_dir;       //  its data dir
static const char *s_keys;      //  its keys dir
static ep_proc_t *s_bus;        //  its bus
static ep_proc_t *s_model;      //  its model
static ep_subscriber_t *s_events;       //  everything on the bus (the stack's)

static ep_eventlog_t *s_log;    //  what s_events delivered

static bool
s_field_is (const ep_logged_t *e, void *field)
{
    return streq (e->step, (const char *) field) || streq (e->reason, (const char *) field)
        || streq (e->src_id, (const char *) field);
}

//  Waits for an event on topic whose step/reason/src_id matches (NULL: any).
static const ep_logged_t *
s_await (const char *topic, const char *field, int timeout_ms)
{
    return ep_eventlog_await_event (s_log, topic, field? s_field_is: NULL, (void *) field, timeout_ms);
}

//  A router src_id leaving.
static bool
s_left (const ep_logged_t *e, void *src_id)
{
    return !e->connected && streq (e->src_id, (const char *) src_id);
}

static void
s_create_router (const char *id)
{
    const char *hosted [] = { "svc1" };
    ep_stack_router_write (s_stack, EP__MODEL_WRITE__OP__CREATE, id, hosted, 1);
}

static void
s_setup (void)
{
    s_stack = ep_stack_new ("watchdog");
    s_dir = ep_stack_dir (s_stack);
    s_keys = ep_stack_keys (s_stack);
    s_bus = ep_stack_bus (s_stack);
    s_model = ep_stack_model (s_stack);
    //  Nothing listens there: relays are not under test here.
    ep_stack_setenv (s_stack, "EDGEPLANE_TERMINATORS_API", "tcp://127.0.0.1:1");
    ep_stack_setenv (s_stack, "EDGEPLANE_REAPER_API", "tcp://127.0.0.1:1");
    ep_stack_setenv (s_stack, "EDGEPLANE_LOG_LEVEL", "debug");
    s_events = ep_stack_subscribe (s_stack, "");
    s_log = ep_eventlog_new (s_events);
    ep_stack_create_service (s_stack, "svc1");
    char err [512];
    s_create_router ("r1");
    s_create_router ("r2");
    cr_assert_eq (ep_pki_issue (s_keys, "router", "r1", s_dir, 30, err, sizeof err), 0, "%s", err);
    cr_assert_eq (ep_pki_issue (s_keys, "router", "r2", s_dir, 30, err, sizeof err), 0, "%s", err);
}

static void
s_teardown (void)
{
    ep_eventlog_destroy (&s_log);
    s_events = NULL;
    ep_stack_destroy (&s_stack);
}

//  A watchdog with these settings; extra flags (NULL-terminated, may be
//  NULL) come last, so they win over the ones here.
static ep_proc_t *
s_watchdog_with (const char *action, const char *heartbeat, const char *timeout,
                 const char *const *extra)
{
    char grace [32], act [64], hb [64], hbt [64];
    snprintf (grace, sizeof grace, "--stray-grace=%dms", GRACE_MS);
    snprintf (act, sizeof act, "--stray-action=%s", action);
    snprintf (hb, sizeof hb, "--heartbeat=%s", heartbeat);
    snprintf (hbt, sizeof hbt, "--heartbeat-timeout=%s", timeout);
    const char *args [20] = { "--channel-listen", "127.0.0.1:0", "--listen", "tcp://127.0.0.1:*",
                              "--http-listen", "127.0.0.1:0", grace, act, hb, hbt,
                              "--frame-timeout=300ms", "--drain-grace=1s", NULL };
    for (size_t i = 12, j = 0; extra && extra [j] && i < EP_COUNT (args) - 1; i++, j++)
        args [i] = extra [j];
    ep_proc_t *watchdog = ep_proc_start ("edgeplane-watchdog", args, ep_stack_env (s_stack), 15000);
    cr_assert_not_null (watchdog);
    ep_stack_keep (s_stack, watchdog);
    return watchdog;
}

static ep_proc_t *
s_watchdog (const char *action, const char *heartbeat, const char *timeout)
{
    return s_watchdog_with (action, heartbeat, timeout, NULL);
}

//  A plain TCP connection to the channel that sends nothing.
static int
s_raw (ep_proc_t *watchdog)
{
    const char *address = ep_proc_endpoint (watchdog, "channel");
    int port = atoi (strrchr (address, ':') + 1);
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons (port),
                                .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
    cr_assert_eq (connect (fd, (struct sockaddr *) &addr, sizeof addr), 0);
    return fd;
}

//  Waits until fd is closed by the peer or deadline (monotonic ms);
//  returns the time it closed, or -1.
static int64_t
s_closed_by (int fd, int64_t deadline)
{
    while (true) {
        int64_t left = deadline - ep_mono_ms ();
        if (left <= 0)
            return -1;
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        if (poll (&pfd, 1, (int) left) > 0) {
            char byte;
            ssize_t n = recv (fd, &byte, 1, MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN))
                return ep_mono_ms ();
        }
    }
}

//  Answers the router's pings until deadline (a joined router alive).
static void
s_keep_alive (chan_client_t *client, int64_t until)
{
    while (ep_mono_ms () < until && !chan_client_closed (client)) {
        Ep__Frame *frame = chan_client_recv (client, (int) (until - ep_mono_ms ()));
        if (frame)
            ep__frame__free_unpacked (frame, NULL);
    }
}

//  Answers a joined router's pings from a thread while the test does other
//  things.
typedef struct {
    chan_client_t *client;
    volatile bool stop;
    pthread_t thread;
} s_pinger_t;

static void *
s_pinger_run (void *arg)
{
    s_pinger_t *pinger = (s_pinger_t *) arg;
    while (!pinger->stop && !chan_client_closed (pinger->client)) {
        Ep__Frame *frame = chan_client_recv (pinger->client, 20);
        if (frame)
            ep__frame__free_unpacked (frame, NULL);
    }
    return NULL;
}

static void
s_pinger_start (s_pinger_t *pinger, chan_client_t *client)
{
    pinger->client = client;
    pinger->stop = false;
    cr_assert_eq (pthread_create (&pinger->thread, NULL, s_pinger_run, pinger), 0);
}

static void
s_pinger_stop (s_pinger_t *pinger)
{
    pinger->stop = true;
    pthread_join (pinger->thread, NULL);
}

Test (watchdog, stray_closed_on_time_while_joined_router_stays,
      .init = s_setup, .fini = s_teardown, .timeout = 90)
{
    ep_proc_t *watchdog = s_watchdog ("disconnect", "200ms", "2s");
    SSL_CTX *ctx = ep_wdtest_router_ctx (s_dir, "r1");
    chan_client_t *router = ep_wdtest_join (ep_proc_endpoint (watchdog, "channel"), ctx, "r1");
    cr_assert_not_null (s_await ("connect.router-to-ctrl", "r1", 5000));

    int64_t accepted = ep_mono_ms ();
    int fd = s_raw (watchdog);
    //  Not closed before the grace ends...
    cr_assert_eq (s_closed_by (fd, accepted + GRACE_MS - 20), -1, "closed before the grace ended");
    //  ...and closed within grace + 300 ms, with the event and the counter.
    int64_t closed = s_closed_by (fd, accepted + GRACE_MS + 300);
    cr_assert_neq (closed, -1, "a stray was not closed within grace + 300 ms");
    cr_assert_not_null (s_await ("stray.detected", "accepted", 2000));
    char *metrics = ep_http_get (ep_proc_endpoint (watchdog, "http"), "/metrics");
    cr_assert_eq (ep_metric_value (metrics, "controller_stray_connections_total{step=\"accepted\"}"), 1, "%s", metrics);
    cr_assert_geq (ep_metric_value (metrics, "controller_connection_duration_seconds_count{outcome=\"stray\"}"), 1);
    free (metrics);
    close (fd);
    //  The joined router is still open at grace + 1 s.
    s_keep_alive (router, accepted + GRACE_MS + 1000);
    cr_assert_not (chan_client_closed (router), "%s", chan_client_close_reason (router));
    cr_assert_gt (chan_client_pongs (router), 0, "the watchdog pings joined routers");
    chan_client_destroy (&router);
    SSL_CTX_free (ctx);
}

Test (watchdog, stray_with_action_none_is_reported_and_stays_open,
      .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    ep_proc_t *watchdog = s_watchdog ("none", "10s", "30s");
    int64_t accepted = ep_mono_ms ();
    int fd = s_raw (watchdog);
    cr_assert_not_null (s_await ("stray.detected", "accepted", GRACE_MS + 2000));
    cr_assert_eq (s_closed_by (fd, accepted + GRACE_MS + 1000), -1, "action none must keep it open");
    close (fd);
}

Test (watchdog, every_refusal_has_its_own_reason_and_heartbeats_keep_their_rtt,
      .init = s_setup, .fini = s_teardown, .timeout = 120)
{
    ep_proc_t *watchdog = s_watchdog ("disconnect", "100ms", "5s");
    const char *channel = ep_proc_endpoint (watchdog, "channel");
    char err [512];
    //  A joined router, answering pings all along.
    SSL_CTX *ctx1 = ep_wdtest_router_ctx (s_dir, "r1");
    chan_client_t *router = ep_wdtest_join (ep_proc_endpoint (watchdog, "channel"), ctx1, "r1");
    s_pinger_t pinger;
    s_pinger_start (&pinger, router);

    //  Garbage bytes instead of TLS.
    int fd = s_raw (watchdog);
    const char *garbage = "GET / HTTP/1.0\r\n\r\n";
    cr_assert_eq (write (fd, garbage, strlen (garbage)), (ssize_t) strlen (garbage));
    cr_assert_not_null (s_await ("channel.refused", "not-tls", 5000));
    close (fd);

    //  A certificate from another CA.
    char *other = zsys_sprintf ("%s/other", s_dir);
    cr_assert_eq (ep_pki_init (other, false, err, sizeof err), 0, "%s", err);
    cr_assert_eq (ep_pki_issue (other, "router", "r1", other, 30, err, sizeof err), 0, "%s", err);
    char *cert = zsys_sprintf ("%s/r1.crt", other), *key = zsys_sprintf ("%s/r1.key", other);
    char *ca = zsys_sprintf ("%s/ca.crt", s_dir);           //  it trusts our server
    SSL_CTX *foreign = ep_pki_client_ctx (cert, key, ca, err, sizeof err);
    cr_assert_not_null (foreign, "%s", err);
    chan_client_t *client = chan_client_new (channel, foreign, 5000, err, sizeof err);
    if (client) {
        chan_client_hello (client, 1, EP__ROLE__ROLE_ROUTER, "r1", 2000);
        chan_client_destroy (&client);
    }
    cr_assert_not_null (s_await ("channel.refused", "untrusted-certificate", 5000));

    //  Hello problems: unsupported version (told the range), identity.
    SSL_CTX *ctx2 = ep_wdtest_router_ctx (s_dir, "r2");
    client = chan_client_new (channel, ctx2, 5000, err, sizeof err);
    cr_assert_not_null (client, "%s", err);
    Ep__HelloResult *result = chan_client_hello (client, 9, EP__ROLE__ROLE_ROUTER, "r2", 5000);
    cr_assert_not_null (result);
    cr_assert_str_eq (result->reason, "unsupported-version");
    cr_assert_eq (result->min_protocol_version, 1);
    cr_assert_eq (result->max_protocol_version, 2, "protocol 2 (resumable slices) is the newest");
    ep__hello_result__free_unpacked (result, NULL);
    chan_client_destroy (&client);
    cr_assert_not_null (s_await ("channel.refused", "unsupported-version", 5000));
    client = chan_client_new (channel, ctx2, 5000, err, sizeof err);
    result = chan_client_hello (client, 1, EP__ROLE__ROLE_ROUTER, "r1", 5000);   //  not its id
    cr_assert_not_null (result);
    cr_assert_str_eq (result->reason, "identity-mismatch");
    ep__hello_result__free_unpacked (result, NULL);
    chan_client_destroy (&client);

    //  An oversized length before Hello.
    client = chan_client_new (channel, ctx2, 5000, err, sizeof err);
    uint8_t huge [] = { 0x7f, 0xff, 0xff, 0xff };
    chan_client_send_raw (client, huge, sizeof huge, 2000);
    cr_assert_null (chan_client_recv (client, 5000));
    cr_assert (chan_client_closed (client));
    chan_client_destroy (&client);
    cr_assert_not_null (s_await ("channel.refused", "oversized", 5000));

    //  A slowly trickled frame (frame timeout 300 ms, before the grace ends).
    client = chan_client_new (channel, ctx2, 5000, err, sizeof err);
    uint8_t header [] = { 0, 0, 0, 100 };
    chan_client_send_raw (client, header, sizeof header, 2000);
    for (int i = 0; i < 30 && !chan_client_closed (client); i++) {
        chan_client_send_raw (client, "x", 1, 1000);
        Ep__Frame *none = chan_client_recv (client, 100);
        if (none)
            ep__frame__free_unpacked (none, NULL);
    }
    cr_assert (chan_client_closed (client), "a trickled frame must not hold the connection");
    chan_client_destroy (&client);
    cr_assert_not_null (s_await ("channel.refused", "slow-frame", 5000));

    //  A revoked certificate (the CRL is reloaded within seconds).
    cr_assert_eq (ep_pki_revoke (s_keys, "r2", err, sizeof err), 0, "%s", err);
    const ep_logged_t *revoked = NULL;
    int64_t deadline = ep_mono_ms () + 15000;
    while (!revoked && ep_mono_ms () < deadline) {
        client = chan_client_new (channel, ctx2, 5000, err, sizeof err);
        if (client) {
            result = chan_client_hello (client, 1, EP__ROLE__ROLE_ROUTER, "r2", 2000);
            if (result)
                ep__hello_result__free_unpacked (result, NULL);
            chan_client_destroy (&client);
        }
        revoked = s_await ("channel.refused", "revoked", 500);
    }
    if (!revoked) {
        char *log = ep_proc_log (watchdog);
        fprintf (stderr, "watchdog log:\n%s\n", log);
        free (log);
    }
    cr_assert_not_null (revoked, "a revoked certificate was not refused");

    //  A ctrl peer that is not a member of the cluster.
    cr_assert_eq (ep_pki_issue (s_keys, "ctrl", "c9", s_dir, 30, err, sizeof err), 0, "%s", err);
    SSL_CTX *ctrl = ep_wdtest_router_ctx (s_dir, "c9");
    client = chan_client_new (channel, ctrl, 5000, err, sizeof err);
    cr_assert_not_null (client, "%s", err);
    result = chan_client_hello (client, 1, EP__ROLE__ROLE_CTRL, "c9", 5000);
    cr_assert_not_null (result);
    cr_assert_str_eq (result->reason, "not-member");
    ep__hello_result__free_unpacked (result, NULL);
    chan_client_destroy (&client);
    cr_assert_not_null (s_await ("cluster.peer.not_member", NULL, 5000));
    cr_assert_not_null (s_await ("stray.detected", "not-member", 5000));

    //  All through the abuse, the joined router's heartbeats kept going
    //  with a small round trip.
    char *metrics = ep_http_get (ep_proc_endpoint (watchdog, "http"), "/metrics");
    double rtt = ep_metric_value (metrics, "edgeplane_router_rtt_seconds{router=\"r1\"}");
    cr_assert (rtt >= 0 && rtt < 0.25, "rtt %f: %s", rtt, metrics);
    free (metrics);
    s_pinger_stop (&pinger);
    cr_assert_gt (chan_client_pongs (router), 5);

    //  A deleted router: drained, then refused with its own reason.
    ep_stack_delete_router (s_stack, "r1");
    Ep__Frame *goodbye = NULL;
    deadline = ep_mono_ms () + 10000;
    while (!goodbye && ep_mono_ms () < deadline) {
        Ep__Frame *frame = chan_client_recv (router, 100);
        if (frame && frame->body_case == EP__FRAME__BODY_GOODBYE)
            goodbye = frame;
        else
        if (frame)
            ep__frame__free_unpacked (frame, NULL);
    }
    cr_assert_not_null (goodbye, "a deleted router's connection must drain");
    cr_assert_str_eq (goodbye->goodbye->reason, "router-deleted");
    ep__frame__free_unpacked (goodbye, NULL);
    chan_client_destroy (&router);

    chan_client_destroy (&router);

    client = chan_client_new (channel, ctx1, 5000, err, sizeof err);
    cr_assert_not_null (client, "%s", err);
    result = chan_client_hello (client, 1, EP__ROLE__ROLE_ROUTER, "r1", 5000);
    cr_assert_not_null (result);
    cr_assert_str_eq (result->reason, "router-deleted");
    ep__hello_result__free_unpacked (result, NULL);
    chan_client_destroy (&client);

    SSL_CTX_free (ctrl);
    SSL_CTX_free (ctx2);
    SSL_CTX_free (foreign);
    SSL_CTX_free (ctx1);
    free (cert);
    free (key);
    free (ca);
    free (other);
}

Test (watchdog, silent_router_is_closed_after_the_heartbeat_timeout,
      .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    ep_proc_t *watchdog = s_watchdog ("disconnect", "100ms", "600ms");
    SSL_CTX *ctx = ep_wdtest_router_ctx (s_dir, "r1");
    chan_client_t *router = ep_wdtest_join (ep_proc_endpoint (watchdog, "channel"), ctx, "r1");
    int64_t joined = ep_mono_ms ();
    //  It stops answering: no recv, so no pongs.
    const ep_logged_t *left = ep_eventlog_await_event (s_log, "connect.router-to-ctrl", s_left, "r1",
                                                       (int) (joined + 5000 - ep_mono_ms ()));
    cr_assert_not_null (left, "no close event for a silent router");
    cr_assert_str_eq (left->reason, "heartbeat-timeout");
    cr_assert_geq (ep_mono_ms () - joined, 600, "closed before the timeout");
    chan_client_destroy (&router);
    SSL_CTX_free (ctx);
}

Test (watchdog, two_instances_hold_a_router_once_and_a_command_arrives_once,
      .init = s_setup, .fini = s_teardown, .timeout = 90)
{
    ep_proc_t *a = s_watchdog ("disconnect", "200ms", "5s");
    ep_proc_t *b = s_watchdog ("disconnect", "200ms", "5s");
    SSL_CTX *ctx = ep_wdtest_router_ctx (s_dir, "r1");
    chan_client_t *first = ep_wdtest_join (ep_proc_endpoint (a, "channel"), ctx, "r1");
    cr_assert_not_null (s_await ("presence.join", NULL, 5000));
    //  The router reconnects to the other instance without closing the
    //  first connection (it looks half-open to instance a).
    chan_client_t *second = ep_wdtest_join (ep_proc_endpoint (b, "channel"), ctx, "r1");
    //  a closes its copy once it sees b's join.
    s_keep_alive (first, ep_mono_ms () + 100);
    int64_t deadline = ep_mono_ms () + 5000;
    while (!chan_client_closed (first) && ep_mono_ms () < deadline)
        s_keep_alive (first, ep_mono_ms () + 100);
    cr_assert (chan_client_closed (first), "instance a still holds r1 after it joined b");

    //  A command for r1 reaches it once, through b.
    zcert_t *cert = ep_keys_load (s_keys, "reaper");
    char *bus_key = ep_keys_public_txt (s_keys, "bus");
    ep_publisher_t *pub = ep_publisher_new (ep_proc_connect_endpoint (s_bus, "pub"), cert, bus_key,
                                            "reaper-test", EP_CODEC_DEFAULT_CAP);
    ep_publisher_declare (pub, "cmd");
    ep_publisher_tick (pub);
    Ep__ProbeSessions probe = EP__PROBE_SESSIONS__INIT;
    Ep__Command command = EP__COMMAND__INIT;
    command.command_id = "cmd-1";
    command.router_id = "r1";
    command.reply_to = "reaper";
    command.kind_case = EP__COMMAND__KIND_PROBE_SESSIONS;
    command.probe_sessions = &probe;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_COMMAND;
    event.command = &command;
    //  The publisher's connection to the bus may still be forming: keep
    //  publishing the same command id until it arrives; it must arrive once.
    size_t received = 0;
    deadline = ep_mono_ms () + 10000;
    while (received == 0 && ep_mono_ms () < deadline) {
        ep_publisher_send (pub, "cmd.r1.", &event);
        Ep__Frame *frame = chan_client_recv (second, 200);
        if (frame && frame->body_case == EP__FRAME__BODY_COMMAND) {
            cr_assert_str_eq (frame->command->command_id, "cmd-1");
            received++;
        }
        if (frame)
            ep__frame__free_unpacked (frame, NULL);
    }
    cr_assert_eq (received, 1);
    cr_assert (chan_client_closed (first), "the old connection must not deliver it too");
    ep_publisher_destroy (&pub);
    free (bus_key);
    zcert_destroy (&cert);
    chan_client_destroy (&first);
    chan_client_destroy (&second);
    SSL_CTX_free (ctx);
}

Test (watchdog, revoking_a_joined_routers_certificate_closes_its_connection,
      .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    ep_proc_t *watchdog = s_watchdog ("disconnect", "10s", "30s");
    SSL_CTX *ctx1 = ep_wdtest_router_ctx (s_dir, "r1");
    SSL_CTX *ctx2 = ep_wdtest_router_ctx (s_dir, "r2");
    chan_client_t *r1 = ep_wdtest_join (ep_proc_endpoint (watchdog, "channel"), ctx1, "r1");
    chan_client_t *r2 = ep_wdtest_join (ep_proc_endpoint (watchdog, "channel"), ctx2, "r2");
    char err [512];
    cr_assert_eq (ep_pki_revoke (s_keys, "r1", err, sizeof err), 0, "%s", err);

    //  Within the CRL check period: r1 is told goodbye (not to come back)
    //  and closed; the refusal and the leave carry the reason.
    Ep__Frame *goodbye = NULL;
    int64_t deadline = ep_mono_ms () + 10000;
    while (!goodbye && !chan_client_closed (r1) && ep_mono_ms () < deadline) {
        Ep__Frame *frame = chan_client_recv (r1, 100);
        if (frame && frame->body_case == EP__FRAME__BODY_GOODBYE)
            goodbye = frame;
        else
        if (frame)
            ep__frame__free_unpacked (frame, NULL);
    }
    cr_assert_not_null (goodbye, "r1 was not told goodbye after its revocation");
    cr_assert_str_eq (goodbye->goodbye->reason, "revoked");
    cr_assert (goodbye->goodbye->has_reconnect && !goodbye->goodbye->reconnect);
    ep__frame__free_unpacked (goodbye, NULL);
    cr_assert_null (chan_client_recv (r1, 5000));
    cr_assert (chan_client_closed (r1), "r1 still open after its revocation");
    cr_assert_not_null (s_await ("channel.refused", "revoked", 5000));
    const ep_logged_t *left = ep_eventlog_await_event (s_log, "connect.router-to-ctrl", s_left, "r1", 5000);
    cr_assert_not_null (left, "no leave for r1");
    cr_assert_str_eq (left->reason, "revoked");
    char *metrics = ep_http_get (ep_proc_endpoint (watchdog, "http"), "/metrics");
    cr_assert_eq (ep_metric_value (metrics, "edgeplane_channel_refused_total{reason=\"revoked\"}"), 1,
                  "%s", metrics);
    free (metrics);

    //  r2, not revoked, stays.
    s_keep_alive (r2, ep_mono_ms () + 200);
    cr_assert_not (chan_client_closed (r2), "%s", chan_client_close_reason (r2));
    for (size_t i = 0; i < ep_eventlog_size (s_log); i++) {
        const ep_logged_t *e = ep_eventlog_get (s_log, i);
        cr_assert_not (streq (e->topic, "connect.router-to-ctrl") && !e->connected && streq (e->src_id, "r2"),
                       "r2 was closed too");
    }
    chan_client_destroy (&r1);
    chan_client_destroy (&r2);
    SSL_CTX_free (ctx1);
    SSL_CTX_free (ctx2);
}

//  A copy of the bundle <dir>/<id>.crt into <out>/<id>.crt (with its key and
//  ca.crt), re-signed by the CA of s_keys with a validity that ended
//  yesterday: the certificate ep_pki issued, identical but expired (ep_pki
//  never issues one, so the test makes it).
static void
s_expire (const char *dir, const char *id, const char *out)
{
    char *src = zsys_sprintf ("%s/%s.crt", dir, id);
    char *ca_key_path = zsys_sprintf ("%s/tls/ca.key", s_keys);
    FILE *file = fopen (src, "r");
    cr_assert_not_null (file, "%s", src);
    X509 *cert = PEM_read_X509 (file, NULL, NULL, NULL);
    fclose (file);
    file = fopen (ca_key_path, "r");
    cr_assert_not_null (file, "%s", ca_key_path);
    EVP_PKEY *ca_key = PEM_read_PrivateKey (file, NULL, NULL, NULL);
    fclose (file);
    cr_assert (cert && ca_key);
    time_t now = time (NULL);
    cr_assert (ASN1_TIME_set (X509_getm_notBefore (cert), now - 2 * 86400));
    cr_assert (ASN1_TIME_set (X509_getm_notAfter (cert), now - 86400));
    cr_assert_gt (X509_sign (cert, ca_key, EVP_sha256 ()), 0);
    cr_assert_eq (mkdir (out, 0700), 0);
    char *dst = zsys_sprintf ("%s/%s.crt", out, id);
    file = fopen (dst, "w");
    cr_assert_not_null (file, "%s", dst);
    cr_assert_eq (PEM_write_X509 (file, cert), 1);
    fclose (file);
    char *cmd = zsys_sprintf ("cp '%s/%s.key' '%s/ca.crt' '%s/'", dir, id, dir, out);
    cr_assert_eq (system (cmd), 0);
    free (cmd);
    X509_free (cert);
    EVP_PKEY_free (ca_key);
    free (dst);
    free (src);
    free (ca_key_path);
}

Test (watchdog, a_router_with_an_expired_certificate_cannot_join,
      .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    ep_proc_t *watchdog = s_watchdog ("disconnect", "10s", "30s");
    char *expired_dir = zsys_sprintf ("%s/expired", s_dir);
    s_expire (s_dir, "r1", expired_dir);
    //  The client side loads it (it does not check dates); the watchdog
    //  refuses the handshake: no HelloResult, the connection closed, the
    //  refusal with its own reason in the event and the metric.
    SSL_CTX *expired = ep_wdtest_router_ctx (expired_dir, "r1");
    char err [512];
    chan_client_t *client = chan_client_new (ep_proc_endpoint (watchdog, "channel"), expired, 5000,
                                                   err, sizeof err);
    if (client) {
        Ep__HelloResult *result = chan_client_hello (client, 1, EP__ROLE__ROLE_ROUTER, "r1", 5000);
        cr_assert (!result || result->status->code != EP__STATUS__CODE__OK,
                   "a router with an expired certificate joined");
        if (result)
            ep__hello_result__free_unpacked (result, NULL);
        cr_assert_null (chan_client_recv (client, 2000));
        cr_assert (chan_client_closed (client), "the connection stays open");
        chan_client_destroy (&client);
    }
    cr_assert_not_null (s_await ("channel.refused", "expired", 5000), "no channel.refused with reason expired");
    char *metrics = ep_http_get (ep_proc_endpoint (watchdog, "http"), "/metrics");
    cr_assert_eq (ep_metric_value (metrics, "edgeplane_channel_refused_total{reason=\"expired\"}"), 1,
                  "%s", metrics);
    free (metrics);
    for (size_t i = 0; i < ep_eventlog_size (s_log); i++) {
        const ep_logged_t *e = ep_eventlog_get (s_log, i);
        cr_assert_not (streq (e->topic, "connect.router-to-ctrl") && e->connected,
                       "the expired router was announced as connected");
    }
    //  The same router with its valid bundle joins.
    SSL_CTX *valid = ep_wdtest_router_ctx (s_dir, "r1");
    chan_client_t *router = ep_wdtest_join (ep_proc_endpoint (watchdog, "channel"), valid, "r1");
    chan_client_destroy (&router);
    SSL_CTX_free (valid);
    SSL_CTX_free (expired);
    free (expired_dir);
}

//  Waits until the metric series reads value; returns the last reading.
static double
s_metric_becomes (ep_proc_t *watchdog, const char *series, double value, int timeout_ms)
{
    int64_t deadline = ep_mono_ms () + timeout_ms;
    double now = -1;
    while (true) {
        char *metrics = ep_http_get (ep_proc_endpoint (watchdog, "http"), "/metrics");
        now = metrics? ep_metric_value (metrics, series): -1;
        free (metrics);
        if (now == value || ep_mono_ms () >= deadline)
            return now;
        ep_eventlog_pump (s_log, 50);
    }
}

Test (watchdog, the_source_cap_counts_unjoined_connections_only,
      .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    const char *extra [] = { "--max-per-source=3", "--stray-grace=30s", NULL };
    ep_proc_t *watchdog = s_watchdog_with ("disconnect", "10s", "30s", extra);
    const char *refused = "edgeplane_channel_refused_total{reason=\"source-cap\"}";
    const char *waiting = "edgeplane_connections{role=\"unknown\",state=\"accepted\"}";
    //  Two unjoined, then two routers that join (each unjoined until it
    //  does: 3 at most), then a third unjoined: 3, at the cap.
    int a = s_raw (watchdog), b = s_raw (watchdog);
    SSL_CTX *ctx1 = ep_wdtest_router_ctx (s_dir, "r1");
    SSL_CTX *ctx2 = ep_wdtest_router_ctx (s_dir, "r2");
    chan_client_t *r1 = ep_wdtest_join (ep_proc_endpoint (watchdog, "channel"), ctx1, "r1");
    chan_client_t *r2 = ep_wdtest_join (ep_proc_endpoint (watchdog, "channel"), ctx2, "r2");
    int c = s_raw (watchdog);
    cr_assert_eq (s_metric_becomes (watchdog, waiting, 3, 5000), 3, "three unjoined connections held");

    //  The fourth unjoined one from 127.0.0.1 is refused at once.
    int64_t opened = ep_mono_ms ();
    int d = s_raw (watchdog);
    cr_assert_neq (s_closed_by (d, opened + 2000), -1, "the connection over the cap was not closed");
    cr_assert_not_null (s_await ("channel.refused", "source-cap", 5000), "no source-cap refusal event");
    cr_assert_eq (s_metric_becomes (watchdog, refused, 1, 5000), 1);
    close (d);

    //  One unjoined leaves: there is room for one more, not two.
    close (a);
    cr_assert_eq (s_metric_becomes (watchdog, waiting, 2, 5000), 2, "the closed one still counts");
    int e = s_raw (watchdog);
    cr_assert_eq (s_metric_becomes (watchdog, waiting, 3, 5000), 3, "no room after a connection left");
    opened = ep_mono_ms ();
    int f = s_raw (watchdog);
    cr_assert_neq (s_closed_by (f, opened + 2000), -1, "the cap does not hold after a connection left");
    cr_assert_eq (s_metric_becomes (watchdog, refused, 2, 5000), 2);

    //  The joined routers were never at risk.
    s_keep_alive (r1, ep_mono_ms () + 100);
    s_keep_alive (r2, ep_mono_ms () + 100);
    cr_assert_not (chan_client_closed (r1));
    cr_assert_not (chan_client_closed (r2));
    close (b);
    close (c);
    close (e);
    close (f);
    chan_client_destroy (&r1);
    chan_client_destroy (&r2);
    SSL_CTX_free (ctx1);
    SSL_CTX_free (ctx2);
}

static bool
s_following (void *arg)
{
    char *log = ep_proc_log ((ep_proc_t *) arg);
    bool bound = log && strstr (log, "api bound on");
    free (log);
    return bound;
}

Test (watchdog, sigterm_while_it_waits_for_the_model_exits_0,
      .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    //  No model at that address: the watchdog waits to follow it before
    //  it listens on the channel, and is stopped there.
    ep_stack_setenv (s_stack, "EDGEPLANE_MODEL_API", "tcp://127.0.0.1:1");
    const char *args [] = { "--channel-listen", "127.0.0.1:0", "--listen", "tcp://127.0.0.1:*",
                            "--http-listen", "127.0.0.1:0", NULL };
    ep_proc_t *watchdog = ep_proc_spawn ("edgeplane-watchdog", args, ep_stack_env (s_stack));
    ep_stack_setenv (s_stack, "EDGEPLANE_MODEL_API", "%s", ep_proc_connect_endpoint (s_model, "api"));
    cr_assert_not_null (watchdog);
    ep_stack_keep (s_stack, watchdog);
    cr_assert (ep_wait_until (s_following, watchdog, 10000), "the watchdog did not start");
    cr_assert_eq (ep_proc_signal (watchdog, SIGTERM), 0);
    int status = ep_proc_wait_exit (watchdog, 10000);
    char *log = ep_proc_log (watchdog);
    cr_assert_neq (status, -1, "no exit after SIGTERM: %s", log);
    cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0, "status %d: %s", status, log);
    free (log);
}

//  Answers Pings on each client (through its simulated link) until until;
//  false as soon as one closes.
static bool
s_pump_links (chan_client_t **clients, size_t count, int64_t until)
{
    while (ep_mono_ms () < until) {
        for (size_t i = 0; i < count; i++) {
            if (!clients [i])
                continue;
            Ep__Frame *frame = chan_client_recv (clients [i], 0);
            if (frame)
                ep__frame__free_unpacked (frame, NULL);
            chan_client_flush (clients [i]);
            if (chan_client_closed (clients [i]))
                return false;
        }
        ep_eventlog_pump (s_log, 10);
    }
    return true;
}

static double
s_timeout_of (ep_proc_t *watchdog, const char *id)
{
    char series [128];
    snprintf (series, sizeof series, "edgeplane_router_heartbeat_timeout_seconds{router=\"%s\"}", id);
    char *metrics = ep_http_get (ep_proc_endpoint (watchdog, "http"), "/metrics");
    double value = metrics? ep_metric_value (metrics, series): -1;
    free (metrics);
    return value * 1000;
}

//  The estimator needs 16 intervals; at a 500 ms heartbeat 14 s gives 28.
//  EP_TEST_LIVENESS_SECONDS=60 runs the issue's long form.
Test (watchdog, adaptive_timeouts_follow_each_link,
      .init = s_setup, .fini = s_teardown, .timeout = 240)
{
    const char *env = getenv ("EP_TEST_LIVENESS_SECONDS");
    int64_t run_ms = (env? atoll (env): 14) * 1000 * EP_TEST_SLOWDOWN;
    char hb [32], floor [48];
    snprintf (hb, sizeof hb, "%dms", 500 * EP_TEST_SLOWDOWN);
    snprintf (floor, sizeof floor, "--liveness-floor=%dms", 1000 * EP_TEST_SLOWDOWN);
    const char *extra [] = { floor, NULL };
    const char *ids [] = { "near", "far", "lossy" };
    char err [256];
    for (size_t i = 0; i < 3; i++) {
        s_create_router (ids [i]);
        cr_assert_eq (ep_pki_issue (s_keys, "router", ids [i], s_dir, 30, err, sizeof err), 0, "%s", err);
    }
    ep_proc_t *watchdog = s_watchdog_with ("disconnect", hb, "30s", extra);
    chan_client_t *clients [3];
    SSL_CTX *ctxs [3];
    for (size_t i = 0; i < 3; i++) {
        ctxs [i] = ep_wdtest_router_ctx (s_dir, ids [i]);
        clients [i] = ep_wdtest_join (ep_proc_endpoint (watchdog, "channel"), ctxs [i], ids [i]);
    }
    chan_client_set_link (clients [1], 300, 100, 0);
    chan_client_set_link (clients [2], 0, 0, 0.2);
    cr_assert (s_pump_links (clients, 3, ep_mono_ms () + run_ms), "a router was closed falsely");
    //  Gauges refresh periodically: keep answering while they catch up.
    double near = -1, far = -1, lossy = -1;
    int64_t deadline = ep_mono_ms () + 5000 * EP_TEST_SLOWDOWN;
    while (ep_mono_ms () < deadline) {
        near = s_timeout_of (watchdog, "near");
        far = s_timeout_of (watchdog, "far");
        lossy = s_timeout_of (watchdog, "lossy");
        if (near > 0 && near < 30000 && far > near)
            break;
        cr_assert (s_pump_links (clients, 3, ep_mono_ms () + 200), "a router was closed falsely");
    }
    cr_assert (near > 0 && near < 30000, "near timeout %.0f ms: not learnt", near);
    cr_assert_gt (far, near, "far %.0f ms, near %.0f ms", far, near);
    cr_assert (lossy >= 2 * 500 * EP_TEST_SLOWDOWN, "lossy %.0f ms covers a lost beat", lossy);
    //  Each goes silent in turn and is noticed within its own timeout.
    for (size_t i = 0; i < 2; i++) {
        double timeout = s_timeout_of (watchdog, ids [i]);
        chan_client_t *silent = clients [i];
        clients [i] = NULL;
        int64_t quiet = ep_mono_ms ();
        //  The others keep beating while we wait: a wait that stopped
        //  answering them would make their own timeouts lapse (seen under ASan).
        int64_t until = quiet + (int64_t) timeout + 3000 * EP_TEST_SLOWDOWN;
        const ep_logged_t *left = NULL;
        while (!left && ep_mono_ms () < until) {
            cr_assert (s_pump_links (clients, 3, ep_mono_ms () + 50), "another router was closed");
            left = ep_eventlog_await_event (s_log, "connect.router-to-ctrl", s_left, (void *) ids [i], 0);
        }
        cr_assert_not_null (left, "%s not noticed", ids [i]);
        cr_assert_str_eq (left->reason, "heartbeat-timeout");
        int64_t took = ep_mono_ms () - quiet;
        //  The last Pong may have left up to one heartbeat before silence.
        cr_assert_leq (took, (int64_t) timeout + 1000 * EP_TEST_SLOWDOWN, "%s noticed after %lld ms, timeout %.0f",
                       ids [i], (long long) took, timeout);
        chan_client_destroy (&silent);
    }
    cr_assert_not (chan_client_closed (clients [2]), "the lossy router was closed");
    chan_client_destroy (&clients [2]);
    for (size_t i = 0; i < 3; i++)
        SSL_CTX_free (ctxs [i]);
}
