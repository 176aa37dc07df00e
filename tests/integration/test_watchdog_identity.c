/*  test_watchdog_identity.c: where a watchdog instance's ctrl identity
    comes from, with a real bus and model: a bundle from `edgeplane pki
    issue ctrl ID` (--ctrl-cert, --ctrl-key), which it registers and dials
    with, and bundles that do not fit, refused at start; no CA key and no
    bundle, where it serves routers as ctrl/watchdog but stays out of the
    cluster; and a certificate it issued itself, renewed in the running
    process, so peers still join after the first one ended. */
#include <criterion/criterion.h>
#include "ep_ctrl_peers.h"
#include "chan_client.h"
#include "ep_keys.h"
#include "ep_pki_tls.h"
#include "ep_rpc_client.h"
#include "ep_subscriber.h"
#include "model.pb-c.h"
#include <openssl/pem.h>
#include <signal.h>
#include <sys/wait.h>

static ep_stack_t *s_stack;     //  keys, bus, model, environment
static const char *s_dir;       //  its data dir
static const char *s_keys;      //  its keys dir
static ep_proc_t *s_a, *s_b;    //  the two watchdogs
static ep_eventlog_t *s_log;    //  connect.ctrl-to-ctrl events seen
static SSL_CTX *s_probe;        //  a client bundle's context, to see what a listener presents

//  The status code of the model's answer for controller id.
static int
s_controller_code (const char *id)
{
    Ep__ModelReply *reply = ep_ctrl_controller (s_stack, id);
    int code = reply->status->code;
    ep__model_reply__free_unpacked (reply, NULL);
    return code;
}

static ep_proc_t *
s_watchdog (const char *instance, const char *const *extra)
{
    return ep_ctrl_watchdog_start (s_stack, instance, extra);
}

//  Runs the CLI against the stack's keys; returns its exit status, output
//  in *out (caller frees).
static int
s_cli (const char *args, char **out)
{
    char *cmd = zsys_sprintf ("EDGEPLANE_DATA_DIR='%s' EDGEPLANE_KEYS_DIR='%s' '%s/edgeplane' %s 2>&1",
                              s_dir, s_keys, EP_BIN_DIR, args);
    int rc = ep_run (cmd, out);
    free (cmd);
    return rc;
}

//  Issues a bundle for role/id into <dir>/<sub> with the CLI.
static void
s_issue (const char *role, const char *id, const char *sub)
{
    char *args = zsys_sprintf ("pki issue %s %s --out '%s/%s'", role, id, s_dir, sub);
    char *out = NULL;
    int rc = s_cli (args, &out);
    cr_assert_eq (rc, 0, "`edgeplane %s` exited %d: %s", args, rc, out);
    free (out);
    free (args);
}

static void
s_setup (void)
{
    s_stack = ep_ctrl_stack_new ("watchdog-identity", &s_log);
    s_dir = ep_stack_dir (s_stack);
    s_keys = ep_stack_keys (s_stack);
    char err [512];
    cr_assert_eq (ep_pki_issue (s_keys, "client", "probe", s_dir, 30, err, sizeof err), 0, "%s", err);
    char *cert = zsys_sprintf ("%s/probe.crt", s_dir), *key = zsys_sprintf ("%s/probe.key", s_dir);
    char *ca = zsys_sprintf ("%s/ca.crt", s_dir);
    s_probe = ep_pki_client_ctx (cert, key, ca, err, sizeof err);
    cr_assert_not_null (s_probe, "%s", err);
    free (cert);
    free (key);
    free (ca);
}

static void
s_teardown (void)
{
    ep_proc_destroy (&s_a);
    ep_proc_destroy (&s_b);
    ep_eventlog_destroy (&s_log);
    if (s_probe)
        SSL_CTX_free (s_probe);
    s_probe = NULL;
    ep_stack_destroy (&s_stack);
}

//  The certificate watchdog's listener presents to a new connection
//  (caller frees).
static X509 *
s_presented (ep_proc_t *watchdog)
{
    char err [512];
    chan_client_t *client = chan_client_new (ep_proc_endpoint (watchdog, "channel"), s_probe,
                                                   5000, err, sizeof err);
    cr_assert_not_null (client, "%s", err);
    X509 *cert = chan_client_peer_cert (client);
    cr_assert_not_null (cert);
    X509_up_ref (cert);
    chan_client_destroy (&client);
    return cert;
}

//  A sample of watchdog's /metrics, or -1 if absent.
static double
s_metric (ep_proc_t *watchdog, const char *series)
{
    char *page = ep_http_get (ep_proc_endpoint (watchdog, "http"), "/metrics");
    cr_assert_not_null (page, "no /metrics");
    double value = ep_metric_value (page, series);
    free (page);
    return value;
}

TestSuite (watchdog_identity, .init = s_setup, .fini = s_teardown, .timeout = 120);

Test (watchdog_identity, a_bundle_from_pki_issue_ctrl_is_the_instance_s_identity_both_ways)
{
    s_issue ("ctrl", "ctrl-east", "east");
    char *cert = zsys_sprintf ("--ctrl-cert=%s/east/ctrl-east.crt", s_dir);
    char *key = zsys_sprintf ("--ctrl-key=%s/east/ctrl-east.key", s_dir);
    const char *bundle [] = { cert, key, NULL };
    s_a = s_watchdog ("a1", bundle);
    s_b = s_watchdog ("b1", NULL);

    //  a is controller ctrl-east (the bundle's id), at its channel address;
    //  its instance id names no controller.
    Ep__ModelReply *reply = ep_ctrl_controller (s_stack, "ctrl-east");
    cr_assert_eq (reply->status->code, EP__STATUS__CODE__OK, "%s: %s", reply->status->message,
                  ep_proc_log (s_a));
    cr_assert_str_eq (reply->entities [0]->controller->address, ep_proc_endpoint (s_a, "channel"));
    ep__model_reply__free_unpacked (reply, NULL);
    cr_assert_eq (s_controller_code ("watchdog-a1"), EP__STATUS__CODE__NOT_FOUND);

    //  Both directions join: b accepted a as ctrl-east (a dialed with the
    //  bundle), a accepted b (which checked a's listener is ctrl-east).
    cr_assert_geq (ep_ctrl_await (s_log, "ctrl-east", "watchdog-b1", true, 0, 15000), 0,
                   "b did not report a's join: %s", ep_proc_log (s_b));
    cr_assert_geq (ep_ctrl_await (s_log, "watchdog-b1", "watchdog-a1", true, 0, 15000), 0,
                   "a did not report b's join: %s", ep_proc_log (s_a));
    Ep__WatchdogReply *list = ep_ctrl_connections (s_stack, s_b);
    cr_assert_eq (list->n_connections, 1);
    cr_assert_str_eq (list->connections [0]->id, "ctrl-east");
    cr_assert_str_eq (list->connections [0]->state, "joined");
    ep__watchdog_reply__free_unpacked (list, NULL);

    //  What a's listener presents is the bundle's certificate, and its
    //  end is what the metric says.
    X509 *presented = s_presented (s_a);
    char *path = zsys_sprintf ("%s/east/ctrl-east.crt", s_dir);
    FILE *file = fopen (path, "r");
    cr_assert_not_null (file);
    X509 *issued = PEM_read_X509 (file, NULL, NULL, NULL);
    fclose (file);
    cr_assert_eq (X509_cmp (presented, issued), 0, "a presents the bundle");
    int64_t not_before, not_after;
    cr_assert_eq (ep_pki_cert_validity (issued, &not_before, &not_after), 0);
    cr_assert_eq ((int64_t) s_metric (s_a, "edgeplane_ctrl_cert_expiry_timestamp_seconds"), not_after);
    X509_free (issued);
    X509_free (presented);
    free (path);
    free (cert);
    free (key);
}

//  Starts a watchdog with args (NULL-terminated) that must refuse to start:
//  returns its log once it exited 1 (caller frees).
static char *
s_refused (const char *const *args)
{
    ep_proc_t *watchdog = ep_proc_spawn ("edgeplane-watchdog", args, ep_stack_env (s_stack));
    cr_assert_not_null (watchdog);
    int status = ep_proc_wait_exit (watchdog, 10000);
    char *log = ep_proc_log (watchdog);
    cr_assert_neq (status, -1, "it did not stop: %s", log);
    cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 1, "status %d: %s", status, log);
    cr_assert_null (ep_proc_endpoint (watchdog, "channel"), "it must not get ready");
    ep_proc_destroy (&watchdog);
    return log;
}

Test (watchdog_identity, a_bundle_that_does_not_fit_is_refused_at_start_saying_what_to_do)
{
    s_issue ("ctrl", "ctrl-west", "west");
    s_issue ("ctrl", "ctrl-north", "north");
    s_issue ("router", "r1", "router");
    char *west_crt = zsys_sprintf ("--ctrl-cert=%s/west/ctrl-west.crt", s_dir);
    char *north_key = zsys_sprintf ("--ctrl-key=%s/north/ctrl-north.key", s_dir);
    char *router_crt = zsys_sprintf ("--ctrl-cert=%s/router/r1.crt", s_dir);
    char *router_key = zsys_sprintf ("--ctrl-key=%s/router/r1.key", s_dir);
    const char *common [] = { "--channel-listen", "127.0.0.1:0", "--listen", "tcp://127.0.0.1:*",
                              "--http-listen", "127.0.0.1:0" };

    //  A certificate and the key of another bundle.
    const char *mismatch [] = { common [0], common [1], common [2], common [3], common [4],
                                common [5], west_crt, north_key, NULL };
    char *log = s_refused (mismatch);
    cr_assert (strstr (log, "ctrl-north.key does not belong to") && strstr (log, "ctrl-west.crt"),
               "the message names both files: %s", log);
    cr_assert (strstr (log, "give the .crt and .key of one bundle from `edgeplane pki issue`"),
               "and says what to do: %s", log);
    free (log);

    //  A router's bundle.
    const char *router [] = { common [0], common [1], common [2], common [3], common [4],
                              common [5], router_crt, router_key, NULL };
    log = s_refused (router);
    cr_assert (strstr (log, "is a router certificate (router/r1), not a ctrl one"), "%s", log);
    cr_assert (strstr (log, "`edgeplane pki issue ctrl ID`"), "%s", log);
    free (log);

    //  Half a bundle.
    const char *half [] = { common [0], common [1], common [2], common [3], common [4],
                            common [5], west_crt, NULL };
    log = s_refused (half);
    cr_assert (strstr (log, "give both --ctrl-cert and --ctrl-key"), "%s", log);
    free (log);

    //  Nothing registered, nothing listening.
    cr_assert_eq (s_controller_code ("ctrl-west"), EP__STATUS__CODE__NOT_FOUND);
    cr_assert_eq (s_controller_code ("r1"), EP__STATUS__CODE__NOT_FOUND);
    free (west_crt);
    free (north_key);
    free (router_crt);
    free (router_key);
}

//  The next presence beacon of instance on sub, within timeout_ms, or
//  NULL (the subscriber's: valid until its next recv).
static Ep__PresenceEvent *
s_beacon (ep_subscriber_t *sub, const char *instance, int timeout_ms)
{
    int64_t deadline = ep_mono_ms () + timeout_ms;
    while (ep_mono_ms () < deadline) {
        char *topic = NULL;
        Ep__Event *event = ep_subscriber_recv (sub, 100, &topic);
        zstr_free (&topic);
        if (event && event->body_case == EP__EVENT__BODY_PRESENCE && event->presence->instance_id
        &&  streq (event->presence->instance_id, instance))
            return event->presence;
    }
    return NULL;
}

Test (watchdog_identity, without_the_ca_key_or_a_bundle_it_serves_as_ctrl_watchdog_outside_the_cluster)
{
    //  A keys directory like the stack's, less tls/ca.key: what a
    //  deployment that keeps the CA key away from the watchdog gives it.
    char *copy = zsys_sprintf ("%s/keys-no-ca", s_dir);
    char *cmd = zsys_sprintf ("cp -a '%s' '%s' && rm '%s/tls/ca.key'", s_keys, copy, copy);
    cr_assert_eq (ep_run (cmd, NULL), 0);
    const char *services [] = { "s1" };
    ep_stack_create_service (s_stack, "s1");
    ep_stack_router_write (s_stack, EP__MODEL_WRITE__OP__CREATE, "r1", services, 1);
    ep_subscriber_t *presence = ep_stack_subscribe (s_stack, "presence.beacon");

    s_a = s_watchdog ("a2", NULL);
    ep_stack_setenv (s_stack, "EDGEPLANE_KEYS_DIR", "%s", copy);
    s_b = s_watchdog ("b2", NULL);
    ep_stack_setenv (s_stack, "EDGEPLANE_KEYS_DIR", "%s", s_keys);

    //  It says so, and what to do about it.
    char *log = ep_proc_log (s_b);
    cr_assert (strstr (log, "no ctrl identity of this instance's own"), "%s", log);
    cr_assert (strstr (log, "not registering as a controller, not dialing peer instances"), "%s", log);
    cr_assert (strstr (log, "`edgeplane pki issue ctrl ID`") && strstr (log, "--ctrl-cert ID.crt --ctrl-key ID.key"),
               "the warning says how to give it an identity: %s", log);
    free (log);

    //  It presents the shared server certificate, ctrl/watchdog.
    X509 *presented = s_presented (s_b);
    char role [16], id [80];
    cr_assert_eq (ep_pki_cert_identity (presented, role, sizeof role, id, sizeof id), 0);
    cr_assert_str_eq (role, "ctrl");
    cr_assert_str_eq (id, "watchdog");
    X509_free (presented);

    //  It is no controller: no entry, no ctrl id in its beacons (so no
    //  instance dials it), no dialer of its own; a2 is one.
    cr_assert_eq (s_controller_code ("watchdog-b2"), EP__STATUS__CODE__NOT_FOUND);
    cr_assert_eq (s_controller_code ("watchdog-a2"), EP__STATUS__CODE__OK);
    Ep__PresenceEvent *beacon = s_beacon (presence, "watchdog-b2", 5000);
    cr_assert_not_null (beacon, "no beacon from b2");
    cr_assert (!beacon->ctrl_id || !*beacon->ctrl_id, "ctrl id %s", beacon->ctrl_id);
    cr_assert_str_eq (beacon->channel_address, ep_proc_endpoint (s_b, "channel"));
    cr_assert_eq (s_metric (s_b, "edgeplane_ctrl_links{state=\"joined\"}"), -1, "b2 has no links");
    cr_assert_eq (s_metric (s_b, "edgeplane_ctrl_cert_renewals_total"), 0);

    //  Routers still join it.
    char err [512];
    SSL_CTX *ctx = ep_ctrl_router_ctx (s_stack, "r1");
    chan_client_t *client = chan_client_new (ep_proc_endpoint (s_b, "channel"), ctx, 5000, err, sizeof err);
    cr_assert_not_null (client, "%s", err);
    Ep__HelloResult *result = chan_client_hello (client, 1, EP__ROLE__ROLE_ROUTER, "r1", 5000);
    cr_assert_not_null (result, "%s", chan_client_close_reason (client));
    cr_assert_eq (result->status->code, EP__STATUS__CODE__OK, "%s", result->reason);
    cr_assert_str_eq (result->instance_id, "watchdog-b2");
    ep__hello_result__free_unpacked (result, NULL);
    chan_client_destroy (&client);
    SSL_CTX_free (ctx);
    free (cmd);
    free (copy);
}

static int64_t s_until;         //  a wall-clock time to wait for

static bool
s_passed (void *arg)
{
    (void) arg;
    return ep_wall_ms () > s_until;
}

static double s_renewals;       //  renewals counted before

static bool
s_renewed (void *arg)
{
    return s_metric ((ep_proc_t *) arg, "edgeplane_ctrl_cert_renewals_total") > s_renewals;
}

Test (watchdog_identity, a_self_issued_certificate_is_renewed_and_peers_join_after_the_first_ended)
{
    const char *short_lived [] = { "--ctrl-cert-lifetime=6s", NULL };
    s_a = s_watchdog ("a3", short_lived);
    s_b = s_watchdog ("b3", NULL);
    cr_assert_geq (ep_ctrl_await (s_log, "watchdog-a3", "watchdog-b3", true, 0, 15000), 0, "%s", ep_proc_log (s_b));
    cr_assert_geq (ep_ctrl_await (s_log, "watchdog-b3", "watchdog-a3", true, 0, 15000), 0, "%s", ep_proc_log (s_a));
    Ep__WatchdogReply *list = ep_ctrl_connections (s_stack, s_b);
    cr_assert_eq (list->n_connections, 1);
    //  The connection a made (its source port), and when it joined (the
    //  API gives wall-clock times derived from monotonic ones: +- a ms).
    int64_t joined_at = list->connections [0]->joined_at_ms;
    char remote [64];
    snprintf (remote, sizeof remote, "%s", list->connections [0]->remote_addr);
    ep__watchdog_reply__free_unpacked (list, NULL);

    //  The first certificate: 6 s.
    X509 *first = s_presented (s_a);
    double renewals = s_metric (s_a, "edgeplane_ctrl_cert_renewals_total");
    int64_t first_start, first_end;
    cr_assert_eq (ep_pki_cert_validity (first, &first_start, &first_end), 0);
    cr_assert_leq (first_end, ep_wall_ms () / 1000 + 6, "valid 6 s, not 825 days");

    //  Renewed after 4 s: new connections get a new one, which ends later.
    s_renewals = renewals;
    cr_assert (ep_wait_until (s_renewed, s_a, 15000), "not renewed: %s", ep_proc_log (s_a));
    X509 *second = s_presented (s_a);
    int64_t second_start, second_end;
    cr_assert_eq (ep_pki_cert_validity (second, &second_start, &second_end), 0);
    cr_assert_neq (ASN1_INTEGER_cmp (X509_get0_serialNumber (first), X509_get0_serialNumber (second)), 0,
                   "a new serial");
    cr_assert_gt (second_end, first_end);
    char role [16], id [80];
    cr_assert_eq (ep_pki_cert_identity (second, role, sizeof role, id, sizeof id), 0);
    cr_assert_str_eq (id, "watchdog-a3", "the same identity");
    cr_assert_geq (s_metric (s_a, "edgeplane_ctrl_cert_expiry_timestamp_seconds"), (double) second_end);
    char *log = ep_proc_log (s_a);
    cr_assert (strstr (log, "ctrl certificate of watchdog-a3 renewed"), "%s", log);
    free (log);

    //  Past the first one's end: the link made with it stays...
    s_until = first_end * 1000 + 1000;
    cr_assert (ep_wait_until (s_passed, NULL, 15000));
    list = ep_ctrl_connections (s_stack, s_b);
    cr_assert_eq (list->n_connections, 1);
    cr_assert_str_eq (list->connections [0]->remote_addr, remote, "the first link is still there");
    cr_assert_leq (llabs (list->connections [0]->joined_at_ms - joined_at), 100);
    ep__watchdog_reply__free_unpacked (list, NULL);

    //  ...and new links join both ways: b (restarted) accepts a's client
    //  certificate, and a's listener presents b one it accepts.
    size_t mark = ep_eventlog_size (s_log);
    ep_proc_signal (s_b, SIGKILL);
    cr_assert_neq (ep_proc_wait_exit (s_b, 5000), -1);
    ep_proc_destroy (&s_b);
    s_b = s_watchdog ("b3", NULL);
    cr_assert_geq (ep_ctrl_await (s_log, "watchdog-a3", "watchdog-b3", true, mark, 15000), 0,
                   "b did not take a's renewed certificate: a: %s\nb: %s", ep_proc_log (s_a),
                   ep_proc_log (s_b));
    cr_assert_geq (ep_ctrl_await (s_log, "watchdog-b3", "watchdog-a3", true, mark, 15000), 0,
                   "a's listener did not present a renewed certificate: a: %s\nb: %s",
                   ep_proc_log (s_a), ep_proc_log (s_b));
    X509_free (first);
    X509_free (second);
}
