/*  test_watchdog_strays.c: strays against the real edgeplane-watchdog (with
    bus and model): the default grace as the binary and the running process
    report it; a stray event's every documented field at each step a
    connection can stop at (accepted, tls-handshake, await-hello,
    not-member), validated against docs/events.schema.json; the stray's log
    line at the level --stray-log-level (EDGEPLANE_STRAY_LOG_LEVEL) chooses,
    and a level that is not one refused at start. */
#include <criterion/criterion.h>
#include "ep_stack.h"
#include "ep_eventlog.h"
#include "chan_client.h"
#include <unistd.h>

#define GRACE_MS    500
#define GRACE_FLAG  "--stray-grace=500ms"
#define VALIDATOR   "/usr/bin/python3 " EP_SOURCE_DIR "/tests/support/validate_events.py " \
                    EP_SOURCE_DIR "/docs/events.schema.json"

static ep_stack_t *s_stack;     //  keys, bus, model, environment
static ep_eventlog_t *s_log;    //  everything on the bus

static void
s_setup (void)
{
    s_stack = ep_stack_new ("watchdog-strays");
    //  Nothing listens there: relays are not under test here.
    ep_stack_setenv (s_stack, "EDGEPLANE_TERMINATORS_API", "tcp://127.0.0.1:1");
    ep_stack_setenv (s_stack, "EDGEPLANE_REAPER_API", "tcp://127.0.0.1:1");
    s_log = ep_eventlog_new (ep_stack_subscribe (s_stack, ""));
}

static void
s_teardown (void)
{
    ep_eventlog_destroy (&s_log);
    ep_stack_destroy (&s_stack);
}

//  A watchdog on kernel-chosen ports with flags (NULL-terminated, may be
//  NULL) and nothing else set: every other option at its default.
static ep_proc_t *
s_watchdog (const char *const *flags)
{
    const char *args [16] = { "--channel-listen", "127.0.0.1:0", "--listen", "tcp://127.0.0.1:*",
                              "--http-listen", "127.0.0.1:0" };
    size_t n = 6;
    for (size_t i = 0; flags && flags [i]; i++) {
        EP_ASSERT (n < EP_COUNT (args) - 1);
        args [n++] = flags [i];
    }
    args [n] = NULL;
    ep_proc_t *watchdog = ep_proc_start ("edgeplane-watchdog", args, ep_stack_env (s_stack), 15000);
    cr_assert_not_null (watchdog, "the watchdog did not start");
    ep_stack_keep (s_stack, watchdog);
    return watchdog;
}

//  A stray event about the connection from remote address arg.
static bool
s_from (const ep_logged_t *e, void *arg)
{
    const char *remote = json_string_value (json_object_get (e->json, "remote_addr"));
    return remote && streq (remote, (const char *) arg);
}

static const ep_logged_t *
s_stray_from (const char *topic, const char *remote)
{
    const ep_logged_t *e = ep_eventlog_await_event (s_log, topic, s_from, (void *) remote,
                                                    (GRACE_MS + 5000) * EP_TEST_SLOWDOWN);
    cr_assert_not_null (e, "no %s from %s", topic, remote);
    return e;
}

typedef struct {
    ep_proc_t *proc;            //  whose log
    const char *text;           //  is waited for
} s_logwait_t;

static bool
s_log_has (void *arg)
{
    s_logwait_t *wait = (s_logwait_t *) arg;
    char *log = ep_proc_log (wait->proc);
    bool has = log && strstr (log, wait->text);
    free (log);
    return has;
}

//  Waits for text in proc's log; the log itself in the failure message.
static void
s_assert_logged (ep_proc_t *proc, const char *text)
{
    s_logwait_t wait = { proc, text };
    if (!ep_wait_until (s_log_has, &wait, 5000 * EP_TEST_SLOWDOWN)) {
        char *log = ep_proc_log (proc);
        cr_assert_fail ("'%s' not in the watchdog's log:\n%s", text, log);
    }
}

//  How many times text is in proc's log.
static int
s_log_count (ep_proc_t *proc, const char *text)
{
    char *log = ep_proc_log (proc);
    int count = 0;
    for (const char *at = log? strstr (log, text): NULL; at; at = strstr (at + 1, text))
        count++;
    free (log);
    return count;
}

static const char *
s_text (const ep_logged_t *e, const char *field)
{
    return json_string_value (json_object_get (e->json, field));
}

static json_int_t
s_int (const ep_logged_t *e, const char *field)
{
    json_t *value = json_object_get (e->json, field);
    cr_assert (json_is_integer (value), "%s: %s is not an integer", e->topic, field);
    return json_integer_value (value);
}

Test (strays, the_default_grace_is_30s_as_the_binary_and_the_running_watchdog_say,
      .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    char *command = zsys_sprintf ("'%s/edgeplane-watchdog' --help", EP_BIN_DIR);
    char *out = NULL;
    cr_assert_eq (ep_run (command, &out), 0, "%s", out);
    cr_assert (strstr (out, "--stray-grace DURATION  (env EDGEPLANE_STRAY_GRACE, default 30s)"), "%s", out);
    cr_assert (strstr (out, "--stray-action none|log|disconnect  (env EDGEPLANE_STRAY_ACTION, default disconnect)"),
               "%s", out);
    cr_assert (strstr (out, "--stray-log-level error|warn|info|debug  (env EDGEPLANE_STRAY_LOG_LEVEL, "
                            "default warn)"), "%s", out);
    free (out);
    free (command);
    //  Started without them, the watchdog says what is in force.
    ep_proc_t *watchdog = s_watchdog (NULL);
    s_assert_logged (watchdog, "(grace 30000 ms, stray action disconnect, stray log level warn)");
}

//  One way of not joining, and what its stray event must say.
typedef struct {
    char remote [64];           //  our end's address: the event's remote_addr
    const char *step;           //  the last step it reached
    const char *peer_id;        //  the certificate's id, NULL: none known
    int version;                //  the Hello's protocol version, 0: no Hello
} s_case_t;

//  Checks a stray.detected or cluster.peer.not_member about c: every field
//  the docs promise, and no other (the common seven plus the body's).
static void
s_assert_stray (const ep_logged_t *e, const s_case_t *c, int64_t before, int64_t after)
{
    cr_assert_str_eq (s_text (e, "namespace"), strncmp (e->topic, "stray.", 6) == 0? "stray": "cluster");
    cr_assert (strncmp (s_text (e, "event_src_id"), "watchdog-", 9) == 0, "%s", s_text (e, "event_src_id"));
    cr_assert_str_eq (s_text (e, "remote_addr"), c->remote);
    cr_assert_str_eq (s_text (e, "step"), c->step);
    cr_assert_str_eq (s_text (e, "action"), "log", "%s: the configured action", c->step);
    int64_t accepted = s_int (e, "accepted_at_ms");
    cr_assert (accepted >= before - 1 && accepted <= after + 1,
               "%s: accepted_at_ms %lld outside [%lld, %lld], when the test connected", c->step,
               (long long) accepted, (long long) before, (long long) after);
    if (c->version)
        //  Reported at the Hello, not at the grace's end.
        cr_assert_lt (e->timestamp - accepted, GRACE_MS, "%s: reported at the Hello", c->step);
    else
        cr_assert_geq (e->timestamp - accepted, GRACE_MS - 1, "%s: reported before the grace ended", c->step);
    size_t fields = 8 + 4;      //  the common seven and the outbox's event_id, and the body's
    cr_assert (strncmp (s_text (e, "event_id"), s_text (e, "event_src_id"), strlen (s_text (e, "event_src_id"))) == 0,
               "%s: event_id %s", c->step, s_text (e, "event_id"));
    if (c->version) {
        cr_assert_eq (s_int (e, "protocol_version"), c->version, "%s", c->step);
        fields++;
    }
    else
        cr_assert_null (json_object_get (e->json, "protocol_version"), "%s: no Hello was sent", c->step);
    if (c->peer_id) {
        cr_assert_str_eq (s_text (e, "peer_id"), c->peer_id, "%s", c->step);
        fields++;
    }
    else
        cr_assert_null (json_object_get (e->json, "peer_id"), "%s: no certificate yet", c->step);
    cr_assert_eq (json_object_size (e->json), fields, "%s: %zu fields, expected %zu", c->step,
                  json_object_size (e->json), fields);
}

Test (strays, a_stray_event_has_every_documented_field_at_each_step,
      .init = s_setup, .fini = s_teardown, .timeout = 90)
{
    const char *flags [] = { GRACE_FLAG, "--stray-action=log", NULL };
    ep_proc_t *watchdog = s_watchdog (flags);
    const char *channel = ep_proc_endpoint (watchdog, "channel");
    s_case_t cases [] = {
        { .step = "accepted" }, { .step = "tls-handshake" },
        { .step = "await-hello", .peer_id = "r1" },
        { .step = "not-member", .peer_id = "ctrl-old", .version = 2 }
    };
    char err [512];
    int64_t before = ep_wall_ms ();
    //  accepted: TCP, then nothing.
    int quiet = ep_tcp_connect (channel);
    cr_assert_geq (quiet, 0);
    ep_sock_name (quiet, cases [0].remote, sizeof cases [0].remote);
    //  tls-handshake: a ClientHello, then nothing. Made in memory and
    //  written by hand, so no answer can take the handshake further.
    SSL_CTX *router2 = ep_stack_tls_client (s_stack, "router", "r2");
    int half = ep_tcp_connect (channel);
    cr_assert_geq (half, 0);
    ep_sock_name (half, cases [1].remote, sizeof cases [1].remote);
    SSL *ssl = SSL_new (router2);
    BIO *out_bio = BIO_new (BIO_s_mem ());
    SSL_set_bio (ssl, BIO_new (BIO_s_mem ()), out_bio);
    int rc = SSL_connect (ssl);
    cr_assert (rc < 0 && SSL_get_error (ssl, rc) == SSL_ERROR_WANT_READ, "no ClientHello made");
    char *hello_bytes;
    long hello_size = BIO_get_mem_data (out_bio, &hello_bytes);
    cr_assert_gt (hello_size, 0);
    cr_assert_eq (write (half, hello_bytes, (size_t) hello_size), hello_size);
    //  await-hello: through TLS (certificate r1), then no Hello.
    SSL_CTX *router1 = ep_stack_tls_client (s_stack, "router", "r1");
    chan_client_t *silent = chan_client_new (channel, router1, 5000, err, sizeof err);
    cr_assert_not_null (silent, "%s", err);
    ep_sock_name (chan_client_fd (silent), cases [2].remote, sizeof cases [2].remote);
    //  not-member: a ctrl whose id is not one of the cluster's controllers.
    SSL_CTX *ctrl = ep_stack_tls_client (s_stack, "ctrl", "ctrl-old");
    chan_client_t *outsider = chan_client_new (channel, ctrl, 5000, err, sizeof err);
    cr_assert_not_null (outsider, "%s", err);
    ep_sock_name (chan_client_fd (outsider), cases [3].remote, sizeof cases [3].remote);
    Ep__HelloResult *result = chan_client_hello (outsider, 2, EP__ROLE__ROLE_CTRL, "ctrl-old", 5000);
    cr_assert_not_null (result, "no HelloResult: %s", chan_client_close_reason (outsider));
    cr_assert_str_eq (result->reason, "not-member");
    ep__hello_result__free_unpacked (result, NULL);
    int64_t after = ep_wall_ms ();

    for (size_t i = 0; i < EP_COUNT (cases); i++)
        s_assert_stray (s_stray_from ("stray.detected", cases [i].remote), &cases [i], before, after);
    s_assert_stray (s_stray_from ("cluster.peer.not_member", cases [3].remote), &cases [3], before, after);
    //  Counted by step, and logged (action log, at the default level).
    char *metrics = ep_http_get (ep_proc_endpoint (watchdog, "http"), "/metrics");
    cr_assert_not_null (metrics);
    for (size_t i = 0; i < EP_COUNT (cases); i++) {
        char series [128], line [512];
        snprintf (series, sizeof series, "controller_stray_connections_total{step=\"%s\"}", cases [i].step);
        cr_assert_eq (ep_metric_value (metrics, series), 1, "%s", series);
        snprintf (line, sizeof line, " warn watchdog: stray connection from %s (reached %s,",
                  cases [i].remote, cases [i].step);
        s_assert_logged (watchdog, line);
    }
    free (metrics);
    //  Action log keeps them open: the one that sent nothing can still talk.
    cr_assert_not (chan_client_closed (silent), "%s", chan_client_close_reason (silent));

    //  What the watchdog really published validates against the schema.
    char *path = zsys_sprintf ("%s/strays.jsonl", ep_stack_dir (s_stack));
    cr_assert_gt (ep_eventlog_write_jsonl (s_log, path), 0);
    char *command = zsys_sprintf (VALIDATOR " '%s' 2>&1", path);
    char *out = NULL;
    cr_assert_eq (ep_run (command, &out), 0, "%s", out);
    free (out);
    free (command);
    free (path);

    chan_client_destroy (&outsider);
    chan_client_destroy (&silent);
    SSL_free (ssl);
    close (half);
    close (quiet);
    SSL_CTX_free (ctrl);
    SSL_CTX_free (router1);
    SSL_CTX_free (router2);
}

Test (strays, a_stray_is_logged_at_the_level_chosen_and_a_bad_level_is_refused,
      .init = s_setup, .fini = s_teardown, .timeout = 90)
{
    //  The variable, at error, in a process logging from info.
    ep_stack_setenv (s_stack, "EDGEPLANE_STRAY_LOG_LEVEL", "error");
    const char *by_env [] = { GRACE_FLAG, "--stray-action=log", "--log-level=info", NULL };
    ep_proc_t *error = s_watchdog (by_env);
    ep_stack_unsetenv (s_stack, "EDGEPLANE_STRAY_LOG_LEVEL");
    //  The flag, at debug, in a process logging debug.
    const char *by_flag [] = { GRACE_FLAG, "--stray-action=log", "--stray-log-level=debug",
                               "--log-level=debug", NULL };
    ep_proc_t *debug = s_watchdog (by_flag);
    //  At debug in a process logging from info: not written.
    const char *below [] = { GRACE_FLAG, "--stray-action=log", "--stray-log-level=debug",
                             "--log-level=info", NULL };
    ep_proc_t *quiet = s_watchdog (below);
    //  The default, for action disconnect too: warn.
    const char *plain [] = { GRACE_FLAG, "--log-level=info", NULL };
    ep_proc_t *warn = s_watchdog (plain);

    ep_proc_t *procs [] = { error, debug, quiet, warn };
    const char *levels [] = { "error", "debug", NULL, "warn" };
    char remote [4][64];
    int fds [4];
    for (size_t i = 0; i < 4; i++) {
        fds [i] = ep_tcp_connect (ep_proc_endpoint (procs [i], "channel"));
        cr_assert_geq (fds [i], 0);
        ep_sock_name (fds [i], remote [i], sizeof remote [i]);
    }
    for (size_t i = 0; i < 4; i++) {
        s_stray_from ("stray.detected", remote [i]);
        char any [256];
        snprintf (any, sizeof any, "stray connection from %.63s (reached accepted,", remote [i]);
        if (levels [i]) {
            char line [512];
            snprintf (line, sizeof line, " %s watchdog: %s", levels [i], any);
            s_assert_logged (procs [i], line);
            cr_assert_eq (s_log_count (procs [i], any), 1, "one line, at %s only", levels [i]);
        }
        else {
            //  The stray was published, and its log line (if any) written,
            //  before this refusal's own line: once that is there, the
            //  stray's would be too.
            int garbage = ep_tcp_connect (ep_proc_endpoint (procs [i], "channel"));
            cr_assert_geq (garbage, 0);
            char from [64], refused [256];
            ep_sock_name (garbage, from, sizeof from);
            cr_assert_eq (write (garbage, "GET / HTTP/1.0\r\n\r\n", 18), 18);
            snprintf (refused, sizeof refused, " info watchdog: refused a connection from %s: not-tls", from);
            s_assert_logged (procs [i], refused);
            close (garbage);
            cr_assert_eq (s_log_count (procs [i], any), 0, "a debug line in a process logging from info");
        }
    }
    for (size_t i = 0; i < 4; i++)
        close (fds [i]);

    //  A level that is not one: refused at start, with the ones there are.
    const char *bad [] = { "EDGEPLANE_STRAY_LOG_LEVEL=loud '%s/edgeplane-watchdog' 2>&1",
                           "'%s/edgeplane-watchdog' --stray-log-level warning 2>&1" };
    const char *word [] = { "loud", "warning" };
    for (size_t i = 0; i < EP_COUNT (bad); i++) {
        char *command = zsys_sprintf (bad [i], EP_BIN_DIR);
        char *out = NULL;
        cr_assert_eq (ep_run (command, &out), 2, "%s: %s", command, out);
        char expected [160];
        snprintf (expected, sizeof expected, "invalid value \"%s\" for --stray-log-level "
                  "(EDGEPLANE_STRAY_LOG_LEVEL): expected one of error, warn, info, debug", word [i]);
        cr_assert (strstr (out, expected), "%s", out);
        free (out);
        free (command);
    }
}
