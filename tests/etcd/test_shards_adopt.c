/*  test_shards_adopt.c: a shard taken over is adopted in bounded steps,
    the loop serving between them (common/ep_adopt; docs/shards.md,
    "Adoption in steps"). edgeplane-terminators in the etcd mode, one
    instance on the fixture cluster, 4 shards, a 4 s lease (it stops acting
    as owner 3 s after its last keepalive succeeded).

    RECORDS terminator records are in etcd before the instance starts, as
    an earlier owner left them. Two test hooks make a slow machine with few
    records: EDGEPLANE_ADOPT_SLOW_US makes each record adopted cost 1.2 ms
    more (a shard of 3,000 records 3.6 s: past the lease's margin), and
    EDGEPLANE_ADOPT_STEP a step 250 records (300 ms). The instance adopts
    the shards a step at a time; while it does, a request for a router of
    a shard not adopted yet is answered, UNAVAILABLE and retriable ("taking
    over"), as for a shard it does not own; the adoption lasts far longer
    than the lease's TTL, and yet no shard is dropped or fenced: the
    keepalives went out between the steps. The control: a shard in one
    step (EDGEPLANE_ADOPT_STEP above its records, as before the steps)
    blocks the loop past the margin, and the instance drops its shards.
    Only what happens once adoption began counts: on a loaded machine etcd
    itself can be late with a keepalive before. */
#include <criterion/criterion.h>
#include "ep_etcd_cluster.h"
#include "ep_stack.h"
#include "ep_keys.h"
#include "ep_rpc_client.h"
#include "ep_shard.h"
#include "terminators.pb-c.h"

#define SHARDS      4
#define TTL_MS      4000
#define RECORDS     12000       //  3,000 a shard
#define PER_TXN     500         //  puts per transaction (the fixture's --max-txn-ops is 1024)
#define STEP        "250"       //  EDGEPLANE_ADOPT_STEP: 48 steps for RECORDS, 300 ms each
#define SLOW_US     "1200"      //  EDGEPLANE_ADOPT_SLOW_US: a shard costs 3.6 s more, RECORDS 14.4 s
#define CALL_MS     3000

static ep_stack_t *s_stack;
static char *s_prefix;          //  this test's etcd prefix
static ep_proc_t *s_term;       //  the instance
static zcert_t *s_watchdog;     //  we play the watchdog

static double
s_metric (const char *series)
{
    char *page = ep_http_get (ep_proc_endpoint (s_term, "http"), "/metrics");
    if (!page)
        return -1;
    double value = ep_metric_value (page, series);
    free (page);
    return value;
}

//  The instance's log so far, its size.
static size_t
s_log_size (void)
{
    char *log = ep_proc_log (s_term);
    size_t size = log? strlen (log): 0;
    free (log);
    return size;
}

static double
s_owned (void)
{
    return s_metric ("edgeplane_terminators_shards_owned");
}

static double
s_steps (void)
{
    return s_metric ("edgeplane_shard_adoption_steps_total{service=\"terminators\"}");
}

//  Writes RECORDS terminators (FAILED, waiting for their routers) into
//  their shards' keys, as their earlier owner left them.
static void
s_populate (void)
{
    ep_etcd_config_t config = { .endpoints = ep_etcd_cluster_endpoints (), .timeout_ms = 10000 };
    char err [256];
    ep_etcd_t *client = ep_etcd_new (&config, err, sizeof err);
    cr_assert_not_null (client, "%s", err);
    ep_etcd_op_t ops [PER_TXN];
    char keys [PER_TXN][160];
    uint8_t *values [PER_TXN];
    for (int done = 0; done < RECORDS; done += PER_TXN) {
        for (int i = 0; i < PER_TXN; i++) {
            char id [32], router [32];
            snprintf (id, sizeof id, "t%06d", done + i);
            snprintf (router, sizeof router, "r%06d", done + i);
            Ep__TerminatorRecord record = EP__TERMINATOR_RECORD__INIT;
            record.id = id;
            record.router_id = router;
            record.service_id = "svc";
            record.has_state = record.has_attempts = record.has_create_revision = true;
            record.state = 5;           //  TERMSM_FAILED, given up retrying: no timer
            record.attempts = 99;
            record.create_revision = 1;
            size_t size = ep__terminator_record__get_packed_size (&record);
            values [i] = (uint8_t *) malloc (size + 1);
            ep__terminator_record__pack (&record, values [i]);
            snprintf (keys [i], sizeof keys [i], "%sterminators/%05d/t/%s", s_prefix,
                      ep_shard_of (router, SHARDS), id);
            ops [i] = (ep_etcd_op_t) { .kind = EP_ETCD_PUT };
            ops [i].u.put.key = ep_etcd_str (keys [i]);
            ops [i].u.put.value = (ep_etcd_bytes_t) { values [i], size };
        }
        ep_etcd_txn_t txn = { NULL, 0, ops, PER_TXN, NULL, 0 };
        ep_etcd_capture_t capture = { 0 };
        cr_assert_eq (ep_etcd_txn (client, &txn, ep_etcd_capture, &capture, err, sizeof err), 0, "%s", err);
        cr_assert (ep_etcd_await (client, &capture, 10000), "the records' transaction: no answer");
        cr_assert (!capture.error [0] && !capture.code, "the records' transaction: %s%s", capture.error,
                   capture.etcd_error);
        for (int i = 0; i < PER_TXN; i++)
            free (values [i]);
    }
    ep_etcd_destroy (&client);
}

static void
s_start (const char *step)
{
    ep_stack_setenv (s_stack, "EDGEPLANE_ADOPT_STEP", "%s", step);
    ep_stack_setenv (s_stack, "EDGEPLANE_ADOPT_SLOW_US", "%s", SLOW_US);
    const char *args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", "127.0.0.1:0",
                            "--settle", "0", "--presence-expiry", "1h", NULL };
    s_term = ep_proc_start ("edgeplane-terminators", args, ep_stack_env (s_stack), 20000);
    cr_assert_not_null (s_term, "edgeplane-terminators did not start");
}

static void
s_setup (void)
{
    const char *endpoints = ep_etcd_cluster_endpoints ();
    cr_assert (endpoints, "no etcd cluster: run this suite through ctest (fixture etcd_cluster)");
    s_stack = ep_stack_new ("shards-adopt");
    s_prefix = ep_etcd_test_prefix ("shards-adopt");
    ep_stack_setenv (s_stack, "EDGEPLANE_TERMINATORS_STORE", "etcd");
    ep_stack_setenv (s_stack, "EDGEPLANE_ETCD_ENDPOINTS", "%s", endpoints);
    ep_stack_setenv (s_stack, "EDGEPLANE_ETCD_PREFIX", "%s", s_prefix);
    ep_stack_setenv (s_stack, "EDGEPLANE_SHARDS", "%d", SHARDS);
    ep_stack_setenv (s_stack, "EDGEPLANE_TERMINATORS_LEASE_TTL", "%dms", TTL_MS);
    ep_stack_setenv (s_stack, "EDGEPLANE_DATA_DIR", "%s/t", ep_stack_dir (s_stack));
    s_watchdog = ep_keys_load (ep_stack_keys (s_stack), "watchdog");
    s_populate ();
}

static void
s_teardown (void)
{
    ep_proc_destroy (&s_term);
    zcert_destroy (&s_watchdog);
    zstr_free (&s_prefix);
    ep_stack_destroy (&s_stack);
}

TestSuite (shards_adopt, .init = s_setup, .fini = s_teardown, .timeout = 120);

//  A create for router, answered within CALL_MS; its reply (caller frees).
static Ep__TerminatorReply *
s_create (ep_rpc_client_t *client, const char *router)
{
    Ep__Terminator t = EP__TERMINATOR__INIT;
    t.id = "probe";
    t.service_id = "svc";
    Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
    request.router_id = (char *) router;
    request.op_case = EP__TERMINATOR_REQUEST__OP_CREATE;
    request.create = &t;
    return ep_rpc_call (client, &request, &ep__terminator_reply__descriptor, CALL_MS, 1, NULL, 0);
}

static bool
s_all_adopted (void *arg)
{
    (void) arg;
    return s_owned () == SHARDS;
}

//  The terminators in memory, by the gauges.
static double
s_held (void)
{
    double held = s_metric ("edgeplane_terminator_tombstones");
    const char *states [] = { "establishing", "established", "deleting", "failed" };
    for (size_t i = 0; i < EP_COUNT (states); i++) {
        char series [80];
        snprintf (series, sizeof series, "edgeplane_terminators{state=\"%s\"}", states [i]);
        held += s_metric (series);
    }
    return held;
}

static bool
s_all_held (void *arg)
{
    (void) arg;
    return s_held () == RECORDS;
}

static bool
s_stepping (void *arg)
{
    (void) arg;
    return s_steps () >= 1;
}

Test (shards_adopt, a_large_shard_set_is_adopted_in_steps_keeping_the_leases_and_serving)
{
    s_start (STEP);
    char *key = ep_keys_public_txt (ep_stack_keys (s_stack), "terminators");
    ep_rpc_client_t *client = ep_rpc_client_new (ep_proc_connect_endpoint (s_term, "api"), s_watchdog, key);
    free (key);
    if (!ep_wait_until (s_stepping, NULL, 30000)) {
        char *log = ep_proc_log (s_term);
        cr_assert_fail ("no adoption step began\n%s", log);
    }
    int64_t began = ep_mono_ms ();
    size_t since = s_log_size ();
    //  Mid-adoption: a router of every shard not adopted yet is refused at
    //  once, retriable, as for a shard not owned; the loop answers between
    //  steps.
    size_t refused = 0, asked = 0;
    int64_t slowest = 0;
    for (int n = 0; s_owned () < SHARDS - 1 && n < 400; n++) {
        char router [32];
        snprintf (router, sizeof router, "r%06d", n * 97 % RECORDS);
        int64_t sent = ep_mono_ms ();
        Ep__TerminatorReply *reply = s_create (client, router);
        if (!reply) {
            char *log = ep_proc_log (s_term);
            cr_assert_fail ("no answer within %d ms mid-adoption (%zu asked)\n%s", CALL_MS, asked, log);
        }
        int64_t took = ep_mono_ms () - sent;
        slowest = took > slowest? took: slowest;
        asked++;
        if (reply->status && reply->status->code == EP__STATUS__CODE__UNAVAILABLE) {
            cr_assert (reply->retriable, "%s", reply->status->message);
            cr_assert (strstr (reply->status->message, "taking over"), "%s", reply->status->message);
            refused++;
        }
        ep__terminator_reply__free_unpacked (reply, NULL);
    }
    cr_assert_gt (refused, 0, "no request was refused mid-adoption (%zu asked)", asked);
    cr_assert (ep_wait_until (s_all_adopted, NULL, 60000), "%.0f shards adopted", s_owned ());
    int64_t lasted = ep_mono_ms () - began;
    double steps = s_steps ();
    //  Each step is a turn of its own: at least RECORDS / step of them.
    cr_assert_geq (steps, RECORDS / atoi (STEP), "%.0f steps", steps);
    //  Longer than the lease, and no shard was lost or fenced meanwhile.
    cr_assert_gt (lasted, 2 * TTL_MS, "the adoption lasted %lld ms only: no proof the leases were "
                  "kept across it", (long long) lasted);
    cr_assert_eq (s_metric ("edgeplane_shard_fenced_total{service=\"terminators\"}"), 0);
    //  Every record in memory (the core's work may move some on since;
    //  the gauges follow within a second).
    cr_assert (ep_wait_until (s_all_held, NULL, 5000), "%.0f terminators held", s_held ());
    char *log = ep_proc_log (s_term);
    cr_assert (!strstr (log + since, "is no longer ours"), "a shard was dropped mid-adoption:\n%s", log);
    free (log);
    cr_log_info ("%d records adopted in %.0f steps over %lld ms (TTL %d ms), %zu requests answered "
                 "meanwhile (%zu refused, slowest %lld ms)", RECORDS, steps, (long long) lasted, TTL_MS,
                 asked, refused, (long long) slowest);
    ep_rpc_client_destroy (&client);
}

//  The control: the same shards, each in one step, lose the lease.
static size_t s_since;          //  the log's size when adoption began

static bool
s_dropped (void *arg)
{
    (void) arg;
    char *log = ep_proc_log (s_term);
    bool dropped = log && strstr (log + s_since, "is no longer ours");
    free (log);
    return dropped;
}

Test (shards_adopt, the_same_shards_each_in_one_step_outlast_the_lease)
{
    s_start ("1000000");
    cr_assert (ep_wait_until (s_stepping, NULL, 30000), "no adoption step began");
    s_since = s_log_size ();
    if (!ep_wait_until (s_dropped, NULL, 30000)) {
        char *log = ep_proc_log (s_term);
        cr_assert_fail ("no shard was dropped: one-step adoption kept the lease\n%s", log);
    }
    char *log = ep_proc_log (s_term);
    cr_assert (strstr (log + s_since, "no keepalive succeeded"), "dropped, not for the lease:\n%s", log);
    free (log);
}
