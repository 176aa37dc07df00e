/*  test_terminators_shards.c: edgeplane-terminators in the etcd mode, two
    instances on the fixture cluster (a real bus and model from ep_stack),
    16 shards, a 2 s lease. The test plays the watchdog: it sends each
    router's requests to the instance owning the router's shard (the
    other answers UNAVAILABLE, retriable, naming the owner). The two split
    the shards; terminators whose routers are offline go FAILED, with a
    backoff; one instance is SIGKILLed and the other owns every shard
    within the lease's TTL + 2 s, holding those terminators still FAILED
    with the attempts and next try they had; its cluster.shard.acquired
    events are on the bus. An owner frozen past its lease (SIGSTOP, then
    SIGCONT) changes nothing: the other took its shards with their state,
    it drops them when it wakes, rejoins under a new lease and gets its
    share back; `edgeplane shards` shows the owners, and so does
    `edgeplane status` (with instance 0's ready file in its data
    directory, as `edgeplane up` leaves it). */
#include <criterion/criterion.h>
#include "ep_etcd_cluster.h"
#include "ep_stack.h"
#include "ep_keys.h"
#include "ep_rpc_client.h"
#include "cli_beacons.h"
#include "terminators.pb-c.h"
#include <jansson.h>
#include <signal.h>

#define CALL_MS     5000
#define SHARDS      16
#define TTL_MS      2000
#define ROUTERS     12

static ep_stack_t *s_stack;
static char *s_prefix;          //  this test's etcd prefix
static ep_proc_t *s_terms [2];  //  the two instances
static ep_rpc_client_t *s_clients [2];  //  we, as the watchdog, to each
static char *s_ids [2];         //  their instance ids (source ids)
static zcert_t *s_watchdog;

static ep_proc_t *
s_start (int i)
{
    ep_stack_setenv (s_stack, "EDGEPLANE_DATA_DIR", "%s/t%d", ep_stack_dir (s_stack), i);
    const char *args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", "127.0.0.1:0",
                            "--establish-timeout", "500ms", "--retry-base", "4s", "--retry-max", "8s",
                            "--settle", "0", "--presence-expiry", "1h", NULL };
    ep_proc_t *proc = ep_proc_start ("edgeplane-terminators", args, ep_stack_env (s_stack), 20000);
    cr_assert_not_null (proc, "edgeplane-terminators %d did not start", i);
    return proc;
}

static double
s_metric (int i, const char *series)
{
    char *page = ep_http_get (ep_proc_endpoint (s_terms [i], "http"), "/metrics");
    if (!page)
        return -1;
    double value = ep_metric_value (page, series);
    free (page);
    return value;
}

static double
s_owned (int i)
{
    return s_terms [i]? s_metric (i, "edgeplane_terminators_shards_owned"): 0;
}

static bool
s_split (void *arg)
{
    (void) arg;
    double a = s_owned (0), b = s_owned (1);
    return a > 0 && b > 0 && a + b == SHARDS && a <= SHARDS / 2 + 1 && b <= SHARDS / 2 + 1;
}

static bool
s_all_at_1 (void *arg)
{
    (void) arg;
    return s_owned (1) == SHARDS;
}

static Ep__Status__Code
s_code (const Ep__TerminatorReply *reply)
{
    return reply->status && reply->status->has_code? reply->status->code: EP__STATUS__CODE__OK;
}

//  Sends request to instance i; the reply (caller frees), asserted.
static Ep__TerminatorReply *
s_call (int i, Ep__TerminatorRequest *request)
{
    Ep__TerminatorReply *reply = ep_rpc_call (s_clients [i], request, &ep__terminator_reply__descriptor,
                                              CALL_MS, 1, NULL, 0);
    cr_assert_not_null (reply, "instance %d did not answer", i);
    return reply;
}

//  Creates t-<router> for svc at revision through whichever instance owns
//  the router's shard; returns that instance.
static int
s_create (const char *router, uint64_t revision)
{
    char id [256];
    snprintf (id, sizeof id, "t-%s", router);
    Ep__Terminator t = EP__TERMINATOR__INIT;
    t.id = id;
    t.service_id = "svc";
    Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
    request.router_id = (char *) router;
    request.has_model_revision = true;
    request.model_revision = revision;
    request.op_case = EP__TERMINATOR_REQUEST__OP_CREATE;
    request.create = &t;
    int owner = -1;
    for (int i = 0; i < 2; i++) {
        Ep__TerminatorReply *reply = s_call (i, &request);
        if (s_code (reply) == EP__STATUS__CODE__OK)
            owner = i;
        else {
            //  Not ours: retriable, naming the other instance.
            cr_assert_eq (s_code (reply), EP__STATUS__CODE__UNAVAILABLE, "%s", reply->status->message);
            cr_assert (reply->retriable);
            cr_assert_str_eq (reply->owner, s_ids [1 - i], "%s: owner '%s'", router, reply->owner);
        }
        ep__terminator_reply__free_unpacked (reply, NULL);
    }
    cr_assert_geq (owner, 0, "neither instance took %s", router);
    return owner;
}

//  t-<router> as instance i holds it, or NULL (caller frees the reply).
static Ep__TerminatorReply *
s_get (int i, const char *router)
{
    char id [256];
    snprintf (id, sizeof id, "t-%s", router);
    Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
    request.op_case = EP__TERMINATOR_REQUEST__OP_GET_ID;
    request.get_id = id;
    return s_call (i, &request);
}

typedef struct {
    int instance;
    const char *router;
} s_failed_t;

static bool
s_is_failed (void *arg)
{
    s_failed_t *wait = (s_failed_t *) arg;
    Ep__TerminatorReply *reply = s_get (wait->instance, wait->router);
    bool failed = s_code (reply) == EP__STATUS__CODE__OK && reply->n_terminators
               && reply->terminators [0]->state == EP__TERMINATOR_STATE__FAILED;
    ep__terminator_reply__free_unpacked (reply, NULL);
    return failed;
}

static void
s_setup (void)
{
    const char *endpoints = ep_etcd_cluster_endpoints ();
    cr_assert (endpoints, "no etcd cluster: run this suite through ctest (fixture etcd_cluster)");
    s_stack = ep_stack_new ("terms-shards");
    s_prefix = ep_etcd_test_prefix ("terms-shards");
    ep_stack_setenv (s_stack, "EDGEPLANE_TERMINATORS_STORE", "etcd");
    ep_stack_setenv (s_stack, "EDGEPLANE_ETCD_ENDPOINTS", "%s", endpoints);
    ep_stack_setenv (s_stack, "EDGEPLANE_ETCD_PREFIX", "%s", s_prefix);
    ep_stack_setenv (s_stack, "EDGEPLANE_SHARDS", "%d", SHARDS);
    ep_stack_setenv (s_stack, "EDGEPLANE_TERMINATORS_LEASE_TTL", "%dms", TTL_MS);
    s_watchdog = ep_keys_load (ep_stack_keys (s_stack), "watchdog");
    char *key = ep_keys_public_txt (ep_stack_keys (s_stack), "terminators");
    for (int i = 0; i < 2; i++) {
        s_terms [i] = s_start (i);
        s_clients [i] = ep_rpc_client_new (ep_proc_connect_endpoint (s_terms [i], "api"), s_watchdog, key);
    }
    free (key);
}

static void
s_teardown (void)
{
    for (int i = 0; i < 2; i++) {
        ep_rpc_client_destroy (&s_clients [i]);
        ep_proc_destroy (&s_terms [i]);
        zstr_free (&s_ids [i]);
    }
    zcert_destroy (&s_watchdog);
    zstr_free (&s_prefix);
    ep_stack_destroy (&s_stack);
}

TestSuite (terminators_shards, .init = s_setup, .fini = s_teardown, .timeout = 120);

//  The instance id an instance logs at start ("etcd mode ... ") is its
//  source id; learnt here from a refusal naming it.
static void
s_learn_ids (uint64_t revision)
{
    for (int n = 0; n < 200 && (!s_ids [0] || !s_ids [1]); n++) {
        char router [32];
        snprintf (router, sizeof router, "probe%d", n);
        Ep__Terminator t = EP__TERMINATOR__INIT;
        t.id = router;
        t.service_id = "none";
        Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
        request.router_id = router;
        request.has_model_revision = true;
        request.model_revision = revision;
        request.op_case = EP__TERMINATOR_REQUEST__OP_CREATE;
        request.create = &t;
        for (int i = 0; i < 2; i++) {
            Ep__TerminatorReply *reply = s_call (i, &request);
            if (s_code (reply) == EP__STATUS__CODE__UNAVAILABLE && reply->owner && *reply->owner
            &&  !s_ids [1 - i])
                s_ids [1 - i] = strdup (reply->owner);
            ep__terminator_reply__free_unpacked (reply, NULL);
        }
    }
    cr_assert (s_ids [0] && s_ids [1], "the instances never named each other as owners");
}

Test (terminators_shards, two_instances_split_the_shards_and_a_killed_ones_move_with_their_state)
{
    cr_assert (ep_wait_until (s_split, NULL, 10000), "the shards were not split: %.0f and %.0f",
               s_owned (0), s_owned (1));
    ep_subscriber_t *events = ep_stack_subscribe (s_stack, "cluster.shard.");
    ep_stack_create_service (s_stack, "svc");
    const char *services [] = { "svc" };
    uint64_t revision = 0;
    char routers [ROUTERS][16];
    for (int r = 0; r < ROUTERS; r++) {
        snprintf (routers [r], sizeof routers [r], "router%d", r);
        revision = ep_stack_router_write (s_stack, EP__MODEL_WRITE__OP__CREATE, routers [r], services, 1);
    }
    s_learn_ids (revision);
    int owner [ROUTERS], at_0 = 0;
    for (int r = 0; r < ROUTERS; r++) {
        owner [r] = s_create (routers [r], revision);
        at_0 += owner [r] == 0;
    }
    cr_assert (at_0 > 0 && at_0 < ROUTERS, "one instance took every router (%d of %d)", at_0, ROUTERS);
    //  Offline routers: FAILED after the establish timeout, with a backoff.
    uint32_t attempts [ROUTERS];
    int64_t next [ROUTERS];
    for (int r = 0; r < ROUTERS; r++) {
        s_failed_t wait = { owner [r], routers [r] };
        cr_assert (ep_wait_until (s_is_failed, &wait, 10000), "%s never FAILED", routers [r]);
        Ep__TerminatorReply *reply = s_get (owner [r], routers [r]);
        attempts [r] = reply->terminators [0]->attempts;
        next [r] = reply->terminators [0]->next_attempt_at_ms;
        cr_assert_gt (next [r], 0, "%s has no next attempt", routers [r]);
        ep__terminator_reply__free_unpacked (reply, NULL);
    }
    //  Instance 0 dies: 1 owns every shard within the TTL + 2 s.
    int64_t killed = ep_mono_ms ();
    ep_proc_signal (s_terms [0], SIGKILL);
    ep_proc_wait_exit (s_terms [0], 10000);
    cr_assert (ep_wait_until (s_all_at_1, NULL, TTL_MS + 2000 + 1000),
               "instance 1 owns %.0f shards %lld ms after the kill", s_owned (1),
               (long long) (ep_mono_ms () - killed));
    int64_t took = ep_mono_ms () - killed;
    cr_assert_leq (took, TTL_MS + 2000, "the takeover took %lld ms", (long long) took);
    for (int r = 0; r < ROUTERS; r++) {
        if (owner [r] != 0)
            continue;
        //  Still FAILED, its backoff kept: no fewer attempts, no earlier try.
        Ep__TerminatorReply *reply = s_get (1, routers [r]);
        cr_assert_eq (s_code (reply), EP__STATUS__CODE__OK, "%s lost in the handover: %s", routers [r],
                      reply->status->message);
        Ep__Terminator *t = reply->terminators [0];
        cr_assert_eq (t->state, EP__TERMINATOR_STATE__FAILED, "%s is %d", routers [r], t->state);
        cr_assert_geq (t->attempts, attempts [r]);
        cr_assert_geq (t->next_attempt_at_ms, next [r], "%s: its backoff was reset", routers [r]);
        ep__terminator_reply__free_unpacked (reply, NULL);
    }
    //  Writes about instance 0's routers now go to instance 1.
    for (int r = 0; r < ROUTERS; r++)
        if (owner [r] == 0) {
            Ep__TerminatorReply *reply = s_get (1, routers [r]);
            ep__terminator_reply__free_unpacked (reply, NULL);
        }
    char *topic = NULL;
    bool acquired = false;
    int64_t until = ep_mono_ms () + 5000;
    while (!acquired && ep_mono_ms () < until) {
        Ep__Event *event = ep_subscriber_recv (events, 200, &topic);
        if (event && streq (topic, "cluster.shard.acquired") && event->body_case == EP__EVENT__BODY_SHARD
        &&  streq (event->shard->instance_id, s_ids [1]))
            acquired = true;
        zstr_free (&topic);     //  the event is the subscriber's

    }
    cr_assert (acquired, "no cluster.shard.acquired from the survivor");
    ep_proc_destroy (&s_terms [0]);
}

//  Creates a terminator per router through its owner; waits until each is
//  FAILED (offline routers) and records its attempts and next try.
static void
s_fleet_failed (char routers [ROUTERS][16], int *owner, uint32_t *attempts, int64_t *next)
{
    ep_stack_create_service (s_stack, "svc");
    const char *services [] = { "svc" };
    uint64_t revision = 0;
    for (int r = 0; r < ROUTERS; r++) {
        snprintf (routers [r], 16, "router%d", r);
        revision = ep_stack_router_write (s_stack, EP__MODEL_WRITE__OP__CREATE, routers [r], services, 1);
    }
    s_learn_ids (revision);
    for (int r = 0; r < ROUTERS; r++)
        owner [r] = s_create (routers [r], revision);
    for (int r = 0; r < ROUTERS; r++) {
        s_failed_t wait = { owner [r], routers [r] };
        cr_assert (ep_wait_until (s_is_failed, &wait, 10000), "%s never FAILED", routers [r]);
        Ep__TerminatorReply *reply = s_get (owner [r], routers [r]);
        attempts [r] = reply->terminators [0]->attempts;
        next [r] = reply->terminators [0]->next_attempt_at_ms;
        ep__terminator_reply__free_unpacked (reply, NULL);
    }
}

//  `edgeplane shards --json`: complete, two instances, every shard once.
static void
s_cli_shows_split (void)
{
    char *out = NULL;
    char *cmd = zsys_sprintf ("'%s/edgeplane' shards --json --listen 2500ms", EP_BIN_DIR);
    int rc = ep_run (cmd, &out);
    zstr_free (&cmd);
    cr_assert_eq (rc, 0, "edgeplane shards: %d\n%s", rc, out? out: "");
    json_error_t error;
    json_t *root = json_loads (out, 0, &error);
    cr_assert_not_null (root, "not JSON: %s", out);
    cr_assert (json_is_true (json_object_get (root, "complete")), "%s", out);
    cr_assert_eq (json_integer_value (json_object_get (root, "shard_count")), SHARDS);
    json_t *instances = json_object_get (root, "instances");
    cr_assert_eq (json_array_size (instances), 2, "%s", out);
    size_t owned = 0;
    for (size_t i = 0; i < 2; i++)
        owned += json_array_size (json_object_get (json_array_get (instances, i), "shards"));
    cr_assert_eq (owned, SHARDS);
    json_decref (root);
    free (out);
}

//  The entry of service in status --json's rows, asserted.
static json_t *
s_status_row (json_t *rows, const char *service, const char *out)
{
    size_t i;
    json_t *row;
    json_array_foreach (rows, i, row)
        if (streq (json_string_value (json_object_get (row, "service")), service))
            return row;
    cr_assert_fail ("status --json has no %s row: %s", service, out);
    return NULL;
}

//  `edgeplane status` with instance 0's ready file under <dir>/run (the
//  others have none: status exits 1 naming them): the terminators' row
//  names both instances' shards, heard on the bus the environment gives,
//  which together cover every shard once; its figure "shards" is what
//  instance 0's beacon says it owns; the text form has a row per
//  instance with its shards as ranges.
static void
s_status_shows_split (void)
{
    char *dir = zsys_sprintf ("%s/status", ep_stack_dir (s_stack));
    char *run = zsys_sprintf ("%s/run", dir);
    cr_assert_eq (zsys_dir_create ("%s", run), 0);
    char *path = zsys_sprintf ("%s/terminators.ready", run);
    json_t *ready = ep_ready_read (ep_proc_ready_path (s_terms [0]));
    cr_assert_not_null (ready);
    cr_assert_eq (json_dump_file (ready, path, 0), 0);
    json_decref (ready);
    char *out = NULL;
    char *cmd = zsys_sprintf ("'%s/edgeplane' status --json --shards-listen 2500ms --data-dir '%s'",
                              EP_BIN_DIR, dir);
    int rc = ep_run (cmd, &out);
    zstr_free (&cmd);
    cr_assert_eq (rc, 1, "edgeplane status: %d (4 of 5 services have no ready file)\n%s", rc, out? out: "");
    json_t *rows = json_loads (out, 0, NULL);
    cr_assert (json_is_array (rows), "not a JSON array: %s", out);
    json_t *row = s_status_row (rows, "terminators", out);
    cr_assert_str_eq (json_string_value (json_object_get (row, "state")), "ready", "%s", out);
    json_t *shards = json_object_get (row, "shards");
    cr_assert (json_is_true (json_object_get (shards, "complete")), "%s", out);
    cr_assert_eq (json_integer_value (json_object_get (shards, "shard_count")), SHARDS, "%s", out);
    json_t *instances = json_object_get (shards, "instances");
    cr_assert_eq (json_array_size (instances), 2, "%s", out);
    int claims [SHARDS] = { 0 };
    double at_0 = -1;
    for (size_t i = 0; i < 2; i++) {
        json_t *instance = json_array_get (instances, i);
        json_t *owned = json_object_get (instance, "shards");
        cr_assert_gt (json_array_size (owned), 0, "%s", out);
        for (size_t k = 0; k < json_array_size (owned); k++) {
            json_int_t shard = json_integer_value (json_array_get (owned, k));
            cr_assert (shard >= 0 && shard < SHARDS, "%s", out);
            claims [shard]++;
        }
        if (streq (json_string_value (json_object_get (instance, "address")),
                   ep_proc_endpoint (s_terms [0], "api")))
            at_0 = (double) json_array_size (owned);
    }
    for (int shard = 0; shard < SHARDS; shard++)
        cr_assert_eq (claims [shard], 1, "shard %d has %d owners: %s", shard, claims [shard], out);
    cr_assert_geq (at_0, 0, "no instance at %s: %s", ep_proc_endpoint (s_terms [0], "api"), out);
    double figure = json_number_value (json_object_get (json_object_get (row, "figures"), "shards"));
    cr_assert_eq (figure, at_0, "figure shards %.0f, beacon %.0f: %s", figure, at_0, out);
    //  The text form: a row per instance, its shards as ranges.
    char *text = NULL;
    cmd = zsys_sprintf ("'%s/edgeplane' status --shards-listen 2500ms --data-dir '%s'", EP_BIN_DIR, dir);
    ep_run (cmd, &text);
    zstr_free (&cmd);
    cr_assert (strstr (text, "SHARDED") && strstr (text, "INSTANCE"), "no shards section: %s", text);
    for (size_t i = 0; i < 2; i++) {
        json_t *instance = json_array_get (instances, i);
        json_t *owned = json_object_get (instance, "shards");
        uint32_t list [SHARDS];
        for (size_t k = 0; k < json_array_size (owned); k++)
            list [k] = (uint32_t) json_integer_value (json_array_get (owned, k));
        char ranges [256];
        cli_shard_ranges (list, json_array_size (owned), ranges, sizeof ranges);
        //  SHARDED INSTANCE ADDRESS OWNED SHARDS, columns padded.
        const char *id = json_string_value (json_object_get (instance, "instance"));
        char expected [512], got [1024] = "";
        snprintf (expected, sizeof expected, "terminators %s %s %zu %s", id,
                  json_string_value (json_object_get (instance, "address")), json_array_size (owned), ranges);
        for (const char *line = text; line && *line; line = strchr (line, '\n'), line = line? line + 1: NULL) {
            char words [5][160];
            if (sscanf (line, "%159s %159s %159s %159s %159s", words [0], words [1], words [2], words [3],
                        words [4]) == 5 && streq (words [1], id))
                snprintf (got, sizeof got, "%s %s %s %s %s", words [0], words [1], words [2], words [3],
                          words [4]);
        }
        cr_assert_str_eq (got, expected, "in: %s", text);
    }
    free (text);
    json_decref (rows);
    free (out);
    free (path);
    free (run);
    free (dir);
}

Test (terminators_shards, a_frozen_owner_changes_nothing_and_rejoins)
{
    cr_assert (ep_wait_until (s_split, NULL, 10000), "the shards were not split");
    ep_stack_export (s_stack);
    s_cli_shows_split ();
    s_status_shows_split ();
    char routers [ROUTERS][16];
    int owner [ROUTERS];
    uint32_t attempts [ROUTERS];
    int64_t next [ROUTERS];
    s_fleet_failed (routers, owner, attempts, next);
    //  Frozen past its lease: the other takes every shard, state and all.
    ep_proc_signal (s_terms [0], SIGSTOP);
    bool took = ep_wait_until (s_all_at_1, NULL, TTL_MS + 3000);
    ep_proc_signal (s_terms [0], SIGCONT);
    cr_assert (took, "instance 1 owns %.0f shards while 0 is frozen", s_owned (1));
    //  Awake: it drops what it held, rejoins and gets its share back.
    cr_assert (ep_wait_until (s_split, NULL, 8 * TTL_MS), "no split again: %.0f and %.0f",
               s_owned (0), s_owned (1));
    char *log = ep_proc_log (s_terms [0]);
    cr_assert (log && strstr (log, "is no longer ours"), "instance 0 did not say it dropped its shards");
    zstr_free (&log);
    //  Nothing lost, nothing stale: every terminator in etcd (both
    //  instances read every shard there and agree), still FAILED, with no
    //  fewer attempts and no earlier next try.
    for (int r = 0; r < ROUTERS; r++) {
        Ep__TerminatorReply *at [2] = { s_get (0, routers [r]), s_get (1, routers [r]) };
        for (int i = 0; i < 2; i++) {
            cr_assert_eq (s_code (at [i]), EP__STATUS__CODE__OK, "%s not at %d: %s", routers [r], i,
                          at [i]->status->message);
            Ep__Terminator *t = at [i]->terminators [0];
            cr_assert_eq (t->state, EP__TERMINATOR_STATE__FAILED, "%s is %d", routers [r], t->state);
            cr_assert_geq (t->attempts, attempts [r], "%s went back", routers [r]);
            cr_assert_geq (t->next_attempt_at_ms, next [r], "%s: its backoff went back", routers [r]);
        }
        cr_assert_eq (at [0]->terminators [0]->generation, at [1]->terminators [0]->generation);
        ep__terminator_reply__free_unpacked (at [0], NULL);
        ep__terminator_reply__free_unpacked (at [1], NULL);
    }
    //  A list from either instance holds the whole fleet.
    for (int i = 0; i < 2; i++) {
        Ep__TerminatorFilter filter = EP__TERMINATOR_FILTER__INIT;
        filter.service_id = "svc";
        Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
        request.op_case = EP__TERMINATOR_REQUEST__OP_LIST;
        request.list = &filter;
        Ep__TerminatorReply *reply = s_call (i, &request);
        cr_assert_eq (reply->n_terminators, ROUTERS, "instance %d lists %zu", i, reply->n_terminators);
        for (size_t k = 1; k < reply->n_terminators; k++)
            cr_assert_lt (strcmp (reply->terminators [k - 1]->id, reply->terminators [k]->id), 0);
        ep__terminator_reply__free_unpacked (reply, NULL);
    }
    s_cli_shows_split ();
    s_status_shows_split ();
}

Test (terminators_shards, an_instance_with_another_shard_count_refuses_to_start)
{
    cr_assert (ep_wait_until (s_split, NULL, 10000), "the shards were not split");
    ep_stack_setenv (s_stack, "EDGEPLANE_SHARDS", "%d", SHARDS * 2);
    ep_stack_setenv (s_stack, "EDGEPLANE_DATA_DIR", "%s/t2", ep_stack_dir (s_stack));
    const char *args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", "127.0.0.1:0", NULL };
    ep_proc_t *odd = ep_proc_spawn ("edgeplane-terminators", args, ep_stack_env (s_stack));
    int status = ep_proc_wait_exit (odd, 15000);
    char *log = ep_proc_log (odd);
    cr_assert (status > 0, "it did not exit with an error (%d): %s", status, log? log: "");
    char both [128];
    snprintf (both, sizeof both, "EDGEPLANE_SHARDS is %d here but %d in etcd", SHARDS * 2, SHARDS);
    cr_assert (log && strstr (log, both), "its log does not name both counts: %s", log? log: "");
    zstr_free (&log);
    ep_proc_destroy (&odd);
    ep_stack_setenv (s_stack, "EDGEPLANE_SHARDS", "%d", SHARDS);
    //  The others carry on with every shard.
    cr_assert (ep_wait_until (s_split, NULL, 5000), "the two instances lost their split");
}
