/*  terminators_bench.c: how fast edgeplane-terminators establishes and
    reconciles terminators, against the real processes (bus, model,
    terminators) on this machine, over CURVE, with every transition fsynced.

    1. The model gets S services and R routers each hosting all of them.
    2. Cold start: a terminator service with an empty database starts, loads
       the model, learns from a watchdog beacon that every router is online,
       and all R x S creates arrive at once (pipelined, as a fleet
       reconnecting would send them). Measured: from the first create to
       the last reply saying ESTABLISHED.
    3. Reconcile: D routers are deleted from the model (one transaction);
       measured until their D x S terminators are DELETED and the others
       are untouched.
    4. Restart: kill -9 and start again over the full database; measured
       until ready.

    The figure to beat: a user of OpenZiti 1.6.8 reported about 6 hours
    for 40,000 terminators on a 3-controller cluster (openziti/ziti#3318),
    about 1.85 terminators per second.

        terminators_bench [--routers 10000] [--services 10] [--delete 1000] [--json]
*/
#include "ep_test.h"
#include "bench_model.h"
#include "bench_util.h"
#include "ep_codec.h"
#include "ep_keys.h"
#include "ep_publisher.h"
#include "ep_rpc_client.h"
#include "model.pb-c.h"
#include "terminators.pb-c.h"
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>

#define DEALERS     8           //  connections the creates share (as several watchdogs would)
#define WINDOW      2000        //  creates in flight per connection

static int s_routers = 10000, s_services = 10, s_delete = 1000;
static bool s_json;
static char *s_dir, *s_keys;
static char *s_env [8];
static ep_proc_t *s_bus, *s_model, *s_terms;
static ep_rpc_client_t *s_modelc, *s_operator;
static ep_publisher_t *s_presence;
static zcert_t *s_watchdog_cert, *s_operator_cert;
static char *s_terms_key;
static int64_t s_next_beacon;

static void
s_die (const char *format, ...) __attribute__ ((format (printf, 1, 2), noreturn));

static void
s_die (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    fprintf (stderr, "terminators_bench: ");
    vfprintf (stderr, format, args);
    fprintf (stderr, "\n");
    va_end (args);
    if (s_terms) {
        char *log = ep_proc_log (s_terms);
        fprintf (stderr, "service log (end):\n%s\n", log? log + (strlen (log) > 4000? strlen (log) - 4000: 0): "");
        free (log);
    }
    //  The services go with us.
    ep_proc_destroy (&s_terms);
    ep_proc_destroy (&s_model);
    ep_proc_destroy (&s_bus);
    if (s_dir)
        ep_tmpdir_remove (&s_dir);
    exit (1);
}

static double
s_seconds (int64_t from_us)
{
    return (ep_mono_us () - from_us) / 1e6;
}

//  ---------------------------------------------------------------------
//  The model

//  Commits the writes as one transaction; dies if it fails.
static uint64_t
s_model_txn (Ep__ModelWrite **writes, size_t n)
{
    uint64_t revision = 0;
    char err [256];
    if (bench_model_txn (s_modelc, writes, n, &revision, err, sizeof err))
        s_die ("model: %s", err);
    return revision;
}

//  S services and R routers each hosting all of them.
static uint64_t
s_populate (void)
{
    uint64_t revision = 0;
    char err [256];
    if (bench_model_fleet (s_modelc, "r", s_routers, s_services, &revision, err, sizeof err))
        s_die ("model: %s", err);
    return revision;
}

//  ---------------------------------------------------------------------
//  The terminator service

static double
s_metric (const char *series)
{
    char *page = ep_http_get (ep_proc_endpoint (s_terms, "http"), "/metrics");
    if (!page)
        s_die ("cannot read the service's metrics");
    double value = ep_metric_value (page, series);
    free (page);
    return value;
}

//  A beacon naming every router that is not deleted, about every second.
static void
s_beacon (int from)
{
    if (ep_mono_ms () < s_next_beacon)
        return;
    char **routers = (char **) calloc ((size_t) s_routers + 1, sizeof (char *));
    char *storage = (char *) calloc ((size_t) s_routers, 16);
    size_t n = 0;
    for (int r = from; r < s_routers; r++) {
        routers [n] = storage + 16 * r;
        snprintf (routers [n], 16, "r%d", r);
        n++;
    }
    Ep__PresenceEvent body = EP__PRESENCE_EVENT__INIT;
    body.instance_id = "watchdog-bench";
    body.has_instance_epoch = true;
    body.instance_epoch = 1;
    body.routers = routers;
    body.n_routers = n;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_PRESENCE;
    event.presence = &body;
    ep_publisher_send (s_presence, "presence.beacon", &event);
    ep_publisher_tick (s_presence);
    free (storage);
    free (routers);
    s_next_beacon = ep_mono_ms () + 1000;
}

typedef struct {
    const char *series;         //  the metric
    double value;               //  the value awaited
    int beacon_from;            //  routers still beaconed
} s_metric_wait_t;

static bool
s_metric_reached (void *arg)
{
    s_metric_wait_t *wait = (s_metric_wait_t *) arg;
    s_beacon (wait->beacon_from);
    return s_metric (wait->series) == wait->value;
}

//  Waits until metric series reaches value (beaconing meanwhile); returns
//  the seconds waited.
static double
s_await_metric (const char *series, double value, int beacon_from, int timeout_s)
{
    int64_t started = ep_mono_us ();
    s_metric_wait_t wait = { series, value, beacon_from };
    if (!ep_wait_until (s_metric_reached, &wait, timeout_s * 1000))
        s_die ("%s did not reach %.0f within %d s (it is %.0f)", series, value, timeout_s, s_metric (series));
    return s_seconds (started);
}

static void
s_start_terms (const char *port)
{
    char listen [64];
    snprintf (listen, sizeof listen, "tcp://127.0.0.1:%s", port);
    const char *args [] = { "--listen", listen, "--http-listen", "127.0.0.1:0", "--settle", "0",
                            "--presence-expiry", "30s", "--log-level", "warn", NULL };
    s_terms = ep_proc_start ("edgeplane-terminators", args, (const char *const *) s_env, 300000);
    if (!s_terms)
        s_die ("edgeplane-terminators did not start");
}

//  Established over time: (seconds since the first send, replies so far)
//  each time another 1/CURVE_POINTS of the creates is answered.
#define CURVE_POINTS 100
static double s_curve_s [CURVE_POINTS + 1];
static size_t s_curve_n [CURVE_POINTS + 1];
static int s_curve_len;

//  Sends every create, pipelined over DEALERS connections; returns the
//  seconds from the first send to the last ESTABLISHED reply.
static double
s_create_all (uint64_t revision, double *p50, double *p99)
{
    size_t total = (size_t) s_routers * (size_t) s_services;
    int64_t *sent_at = (int64_t *) calloc (total, sizeof (int64_t));
    double *latency = (double *) calloc (total, sizeof (double));
    zsock_t *dealers [DEALERS];
    size_t next [DEALERS], inflight [DEALERS];
    zpoller_t *poller = zpoller_new (NULL);
    for (int d = 0; d < DEALERS; d++) {
        dealers [d] = zsock_new (ZMQ_DEALER);
        zsock_set_sndhwm (dealers [d], 0);
        zsock_set_rcvhwm (dealers [d], 0);
        zcert_apply (s_watchdog_cert, dealers [d]);
        zsock_set_curve_serverkey (dealers [d], s_terms_key);
        if (zsock_connect (dealers [d], "%s", ep_proc_connect_endpoint (s_terms, "api")) != 0)
            s_die ("cannot connect to the service");
        zpoller_add (poller, dealers [d]);
        next [d] = (size_t) d;
        inflight [d] = 0;
    }
    size_t done = 0;
    int64_t started = ep_mono_us ();
    s_curve_s [0] = 0;
    s_curve_n [0] = 0;
    s_curve_len = 1;
    while (done < total) {
        for (int d = 0; d < DEALERS; d++) {
            while (inflight [d] < WINDOW && next [d] < total) {
                size_t i = next [d];
                next [d] += DEALERS;
                int r = (int) (i / (size_t) s_services), s = (int) (i % (size_t) s_services);
                char id [32], service [16], router [16], request_id [32];
                snprintf (id, sizeof id, "r%d-s%d", r, s);
                snprintf (service, sizeof service, "svc%d", s);
                snprintf (router, sizeof router, "r%d", r);
                snprintf (request_id, sizeof request_id, "%zu", i);
                Ep__Terminator t = EP__TERMINATOR__INIT;
                t.id = id;
                t.service_id = service;
                t.has_cost = true;
                t.cost = (uint32_t) s;
                Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
                request.request_id = request_id;
                request.router_id = router;
                request.has_model_revision = true;
                request.model_revision = revision;
                request.op_case = EP__TERMINATOR_REQUEST__OP_CREATE;
                request.create = &t;
                char err [256];
                zframe_t *frame = ep_codec_pack (&request.base, EP_CODEC_DEFAULT_CAP, err, sizeof err);
                sent_at [i] = ep_mono_us ();
                zframe_send (&frame, dealers [d], 0);
                inflight [d]++;
            }
        }
        zsock_t *which = (zsock_t *) zpoller_wait (poller, 30000);
        if (!which)
            s_die ("no reply for 30 s (%zu of %zu done)", done, total);
        for (int d = 0; d < DEALERS; d++) {
            while (zsock_events (dealers [d]) & ZMQ_POLLIN) {
                zframe_t *frame = zframe_recv (dealers [d]);
                char err [256];
                Ep__TerminatorReply *reply = (Ep__TerminatorReply *) ep_codec_unpack_frame (
                    &ep__terminator_reply__descriptor, frame, EP_CODEC_DEFAULT_CAP, "terminators", err, sizeof err);
                zframe_destroy (&frame);
                if (!reply)
                    s_die ("%s", err);
                if (reply->status && reply->status->code != EP__STATUS__CODE__OK)
                    s_die ("create %s refused: %s", reply->request_id, reply->status->message);
                if (reply->n_terminators != 1 || reply->terminators [0]->state != EP__TERMINATOR_STATE__ESTABLISHED)
                    s_die ("create %s: not established at once (the router is online)", reply->request_id);
                size_t i = (size_t) strtoull (reply->request_id, NULL, 10);
                latency [i] = (ep_mono_us () - sent_at [i]) / 1e3;
                ep__terminator_reply__free_unpacked (reply, NULL);
                inflight [d]--;
                done++;
                if (s_curve_len <= CURVE_POINTS
                &&  done * CURVE_POINTS >= total * (size_t) s_curve_len) {
                    s_curve_s [s_curve_len] = s_seconds (started);
                    s_curve_n [s_curve_len++] = done;
                }
            }
        }
        s_beacon (0);
    }
    double seconds = s_seconds (started);
    qsort (latency, total, sizeof (double), bench_compare_doubles);
    *p50 = latency [total / 2];
    *p99 = latency [total * 99 / 100];
    zpoller_destroy (&poller);
    for (int d = 0; d < DEALERS; d++)
        zsock_destroy (&dealers [d]);
    free (sent_at);
    free (latency);
    return seconds;
}

//  ---------------------------------------------------------------------

int
main (int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (streq (argv [i], "--routers") && i + 1 < argc)
            s_routers = atoi (argv [++i]);
        else
        if (streq (argv [i], "--services") && i + 1 < argc)
            s_services = atoi (argv [++i]);
        else
        if (streq (argv [i], "--delete") && i + 1 < argc)
            s_delete = atoi (argv [++i]);
        else
        if (streq (argv [i], "--json"))
            s_json = true;
        else {
            fprintf (stderr, "usage: terminators_bench [--routers N] [--services M (<= 64)] [--delete K] [--json]\n");
            return 2;
        }
    }
    if (s_routers < 1 || s_services < 1 || s_services > BENCH_MODEL_SERVICES || s_delete < 0 || s_delete > s_routers) {
        fprintf (stderr, "terminators_bench: need routers >= 1, 1 <= services <= 64, 0 <= delete <= routers\n");
        return 2;
    }
    signal (SIGPIPE, SIG_IGN);
    zsys_init ();
    zsys_set_logstream (NULL);
    s_dir = ep_tmpdir_new ("terminators-bench");
    s_keys = zsys_sprintf ("%s/keys", s_dir);
    char err [512];
    if (ep_keys_init (s_keys, false, err, sizeof err) != 0)
        s_die ("%s", err);
    s_env [0] = zsys_sprintf ("EDGEPLANE_KEYS_DIR=%s", s_keys);
    s_env [1] = zsys_sprintf ("EDGEPLANE_DATA_DIR=%s", s_dir);
    s_env [2] = strdup ("EDGEPLANE_LOG_LEVEL=warn");
    const char *bus_args [] = { "--pub-listen", "tcp://127.0.0.1:*", "--sub-listen", "tcp://127.0.0.1:*",
                                "--http-listen", "127.0.0.1:0", NULL };
    if (!(s_bus = ep_proc_start ("edgeplane-bus", bus_args, (const char *const *) s_env, 10000)))
        s_die ("the bus did not start");
    s_env [3] = zsys_sprintf ("EDGEPLANE_BUS_PUB=%s", ep_proc_connect_endpoint (s_bus, "pub"));
    s_env [4] = zsys_sprintf ("EDGEPLANE_BUS_SUB=%s", ep_proc_connect_endpoint (s_bus, "sub"));
    const char *model_args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", "127.0.0.1:0", NULL };
    if (!(s_model = ep_proc_start ("edgeplane-model", model_args, (const char *const *) s_env, 10000)))
        s_die ("the model did not start");
    s_env [5] = zsys_sprintf ("EDGEPLANE_MODEL_API=%s", ep_proc_connect_endpoint (s_model, "api"));
    s_operator_cert = ep_keys_load (s_keys, "operator");
    s_watchdog_cert = ep_keys_load (s_keys, "watchdog");
    char *model_key = ep_keys_public_txt (s_keys, "model");
    s_modelc = ep_rpc_client_new (ep_proc_connect_endpoint (s_model, "api"), s_operator_cert, model_key);
    free (model_key);
    char *bus_key = ep_keys_public_txt (s_keys, "bus");
    s_presence = ep_publisher_new (ep_proc_connect_endpoint (s_bus, "pub"), s_watchdog_cert, bus_key,
                                   "watchdog-bench", EP_CODEC_DEFAULT_CAP);
    free (bus_key);
    s_terms_key = ep_keys_public_txt (s_keys, "terminators");
    size_t total = (size_t) s_routers * (size_t) s_services;

    //  1. The model.
    int64_t started = ep_mono_us ();
    uint64_t revision = s_populate ();
    double populate_s = s_seconds (started);
    fprintf (stderr, "model: %d routers x %d services at revision %llu in %.2f s\n", s_routers, s_services,
             (unsigned long long) revision, populate_s);

    //  2. Cold start.
    char port [16];
    snprintf (port, sizeof port, "%d", ep_test_stable_port ());
    started = ep_mono_us ();
    s_start_terms (port);
    double start_s = s_seconds (started);
    s_operator = ep_rpc_client_new (ep_proc_connect_endpoint (s_terms, "api"), s_operator_cert, s_terms_key);
    double presence_s = s_await_metric ("edgeplane_terminators_routers_online", s_routers, 0, 120);
    fprintf (stderr, "service ready in %.2f s (model loaded); presence of %d routers in %.2f s\n",
             start_s, s_routers, presence_s);
    double p50 = 0, p99 = 0;
    double establish_s = s_create_all (revision, &p50, &p99);
    double rate = total / establish_s;
    s_await_metric ("edgeplane_terminators{state=\"established\"}", (double) total, 0, 10);
    fprintf (stderr, "established %zu terminators in %.2f s (%.0f/s; latency p50 %.1f ms, p99 %.1f ms)\n",
             total, establish_s, rate, p50, p99);

    //  3. Reconcile after deleting routers.
    double reconcile_s = 0;
    size_t gone = (size_t) s_delete * (size_t) s_services;
    if (s_delete > 0) {
        Ep__ModelWrite *writes = (Ep__ModelWrite *) calloc ((size_t) s_delete, sizeof (Ep__ModelWrite));
        Ep__ModelWrite **list = (Ep__ModelWrite **) calloc ((size_t) s_delete, sizeof (Ep__ModelWrite *));
        char (*ids) [16] = calloc ((size_t) s_delete, 16);
        for (int r = 0; r < s_delete; r++) {
            snprintf (ids [r], 16, "r%d", r);
            ep__model_write__init (&writes [r]);
            writes [r].has_op = writes [r].has_type = true;
            writes [r].op = EP__MODEL_WRITE__OP__DELETE;
            writes [r].type = EP__ENTITY_TYPE__ENTITY_ROUTER;
            writes [r].id = ids [r];
            list [r] = &writes [r];
        }
        started = ep_mono_us ();
        s_model_txn (list, (size_t) s_delete);
        s_await_metric ("edgeplane_terminator_tombstones", (double) gone, s_delete, 600);
        reconcile_s = s_seconds (started);
        s_await_metric ("edgeplane_terminators{state=\"established\"}", (double) (total - gone), s_delete, 10);
        if (s_metric ("edgeplane_terminators{state=\"deleting\"}") != 0)
            s_die ("after the reconcile nothing should be left deleting");
        fprintf (stderr, "deleted %d routers: %zu terminators reconciled in %.2f s\n", s_delete, gone, reconcile_s);
        free (writes);
        free (list);
        free (ids);
    }

    //  4. Restart over the full database.
    ep_proc_signal (s_terms, SIGKILL);
    ep_proc_wait_exit (s_terms, 10000);
    ep_proc_destroy (&s_terms);
    started = ep_mono_us ();
    s_start_terms (port);
    double restart_s = s_seconds (started);
    s_await_metric ("edgeplane_terminators{state=\"established\"}", (double) (total - gone), s_delete, 10);
    fprintf (stderr, "restarted over %zu terminators and %zu tombstones in %.2f s\n", total - gone, gone, restart_s);

    double openziti_rate = 40000.0 / (6 * 3600);
    json_t *result = json_pack ("{s:i, s:i, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:f, s:f, s:f, s:f}",
        "routers", s_routers, "services", s_services, "terminators", (json_int_t) total,
        "model_populate_s", populate_s, "service_start_s", start_s, "establish_s", establish_s,
        "establish_per_s", rate, "create_latency_p50_ms", p50, "create_latency_p99_ms", p99,
        "reconcile_terminators", (json_int_t) gone, "reconcile_s", reconcile_s, "restart_s", restart_s,
        "openziti_per_s", openziti_rate, "speedup_vs_openziti", rate / openziti_rate);
    json_t *curve = json_array ();
    for (int i = 0; i < s_curve_len; i++)
        json_array_append_new (curve, json_pack ("[f, I]", s_curve_s [i], (json_int_t) s_curve_n [i]));
    json_object_set_new (result, "established_over_time", curve);
    json_object_set_new (result, "benchmark", json_string ("terminators"));
    char date [40];
    json_object_set_new (result, "date", json_string (ep_rfc3339 (ep_wall_ms (), date, sizeof date)));
    if (s_json) {
        char *text = json_dumps (result, JSON_COMPACT);
        printf ("%s\n", text);
        free (text);
    }
    else
        printf ("terminators bench: %zu terminators (%d routers x %d services) established from a cold start in "
                "%.2f s (%.0f/s, p50 %.1f ms, p99 %.1f ms); %zu reconciled after deleting %d routers in %.2f s; "
                "restart over the database %.2f s. OpenZiti 1.6.8 (ziti#3318): ~%.2f/s; here %.0fx that.\n",
                total, s_routers, s_services, establish_s, rate, p50, p99, gone, s_delete, reconcile_s,
                restart_s, openziti_rate, rate / openziti_rate);
    json_decref (result);
    ep_proc_destroy (&s_terms);
    ep_publisher_destroy (&s_presence);
    ep_rpc_client_destroy (&s_operator);
    ep_rpc_client_destroy (&s_modelc);
    zcert_destroy (&s_watchdog_cert);
    zcert_destroy (&s_operator_cert);
    zstr_free (&s_terms_key);
    ep_proc_destroy (&s_model);
    ep_proc_destroy (&s_bus);
    for (size_t i = 0; i < EP_COUNT (s_env); i++)
        zstr_free (&s_env [i]);
    zstr_free (&s_keys);
    ep_tmpdir_remove (&s_dir);
    return 0;
}
