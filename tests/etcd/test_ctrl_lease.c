/*  test_ctrl_lease.c: membership under leases (issue 16 item 9). Two
    edgeplane-model instances on one etcd prefix and a watchdog registered
    as controller ctrl-lease under a lease of TTL_MS, kept alive through
    either instance (EDGEPLANE_MODEL_API lists both). The entry stays while
    the watchdog runs, past several TTLs, also once the first model
    instance is killed (the other serves the keepalives). Stalled past its
    lease (SIGSTOP), its entry goes, and resumed it registers again. SIGKILL the
    watchdog: within the TTL and a margin the entry is gone from both
    instances, and model.change published its deletion by principal
    lease-expired. */
#include <criterion/criterion.h>
#include "ep_ctrl_peers.h"
#include "ep_etcd_cluster.h"
#include "ep_keys.h"
#include "ep_rpc_client.h"
#include <signal.h>

#define CTRL_ID     "ctrl-lease"
#define TTL_MS      3000        //  the watchdog's --ctrl-lease-ttl
#define MARGIN_MS   5000        //  etcd's expiry checks, the publisher's delete, the bus
#define CALL_MS     5000

static ep_stack_t *s_stack;     //  keys, bus, the first model instance, environment
static ep_eventlog_t *s_ctrl_log;   //  connect.ctrl-to-ctrl (the helper's)
static ep_eventlog_t *s_changes;    //  model.change as published
static ep_proc_t *s_second;     //  the second model instance
static char *s_env [64];        //  its environment

static void
s_setup (void)
{
    zsys_init ();
    const char *endpoints = ep_etcd_cluster_endpoints ();
    cr_assert (endpoints, "no etcd cluster: run this suite through ctest (fixture etcd_cluster)");
    s_stack = ep_ctrl_stack_new ("ctrl-lease", &s_ctrl_log);
    //  The stack's model again, on etcd; then a second instance there.
    char *prefix = ep_etcd_test_prefix ("ctrl-lease");
    ep_stack_setenv (s_stack, "EDGEPLANE_MODEL_STORE", "etcd");
    ep_stack_setenv (s_stack, "EDGEPLANE_ETCD_ENDPOINTS", "%s", endpoints);
    ep_stack_setenv (s_stack, "EDGEPLANE_ETCD_PREFIX", "%s", prefix);
    ep_stack_setenv (s_stack, "EDGEPLANE_MODEL_LEASE_TTL", "2000ms");
    free (prefix);
    ep_stack_start (s_stack, "model", 20000);
    const char *const *env = ep_stack_env (s_stack);
    size_t n = 0;
    for (size_t i = 0; env [i] && n < EP_COUNT (s_env) - 2; i++)
        if (strncmp (env [i], "EDGEPLANE_DATA_DIR=", 19) != 0)
            s_env [n++] = strdup (env [i]);
    s_env [n] = zsys_sprintf ("EDGEPLANE_DATA_DIR=%s/model2", ep_stack_dir (s_stack));
    const char *args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", "127.0.0.1:0", NULL };
    s_second = ep_proc_start ("edgeplane-model", args, (const char *const *) s_env, 20000);
    cr_assert_not_null (s_second, "the second edgeplane-model did not start on etcd");
    s_changes = ep_eventlog_new (ep_stack_subscribe (s_stack, "model.change"));
}

static void
s_teardown (void)
{
    ep_proc_destroy (&s_second);
    ep_eventlog_destroy (&s_changes);
    ep_eventlog_destroy (&s_ctrl_log);
    ep_stack_destroy (&s_stack);
    for (size_t i = 0; i < EP_COUNT (s_env); i++)
        zstr_free (&s_env [i]);
}

TestSuite (ctrl_lease, .init = s_setup, .fini = s_teardown, .timeout = 120);

//  request's reply from the model instance at api (caller frees).
static Ep__ModelReply *
s_call (const char *api, Ep__ModelRequest *request)
{
    char *key = ep_keys_public_txt (ep_stack_keys (s_stack), "model");
    zcert_t *cert = ep_keys_load (ep_stack_keys (s_stack), "operator");
    ep_rpc_client_t *client = ep_rpc_client_new (api, cert, key);
    cr_assert_not_null (client);
    char id [33];
    ep_rpc_new_id (id);
    request->request_id = id;
    char err [256];
    Ep__ModelReply *reply = (Ep__ModelReply *) ep_rpc_call (client, request,
        &ep__model_reply__descriptor, CALL_MS, 3, err, sizeof err);
    request->request_id = NULL;
    cr_assert_not_null (reply, "the model at %s did not answer: %s", api, err);
    ep_rpc_client_destroy (&client);
    zcert_destroy (&cert);
    free (key);
    return reply;
}

//  The version of controller id as the model instance at api has it, 0
//  if it has none.
static uint64_t
s_version_of (const char *api, const char *id)
{
    Ep__ModelGet get = EP__MODEL_GET__INIT;
    get.has_type = true;
    get.type = EP__ENTITY_TYPE__ENTITY_CONTROLLER;
    get.id = (char *) id;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.op_case = EP__MODEL_REQUEST__OP_GET;
    request.get = &get;
    Ep__ModelReply *reply = s_call (api, &request);
    uint64_t version = 0;
    if (reply->status->code == EP__STATUS__CODE__OK)
        version = reply->entities [0]->controller->meta->version;
    else
        cr_assert_eq (reply->status->code, EP__STATUS__CODE__NOT_FOUND, "%s", reply->status->message);
    ep__model_reply__free_unpacked (reply, NULL);
    return version;
}

//  A lease of ttl_s seconds from the instance at api.
static int64_t
s_grant (const char *api, int ttl_s)
{
    Ep__LeaseRequest lease = EP__LEASE_REQUEST__INIT;
    lease.has_ttl_s = true;
    lease.ttl_s = ttl_s;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.op_case = EP__MODEL_REQUEST__OP_LEASE;
    request.lease = &lease;
    Ep__ModelReply *reply = s_call (api, &request);
    cr_assert_eq (reply->status->code, EP__STATUS__CODE__OK, "%s", reply->status->message);
    int64_t lease_id = reply->lease_id;
    ep__model_reply__free_unpacked (reply, NULL);
    return lease_id;
}

//  Writes controller id (CREATE, or UPDATE at expected) under lease_id (0:
//  none) through the instance at api; returns its new version.
static uint64_t
s_put (const char *api, const char *id, uint64_t expected, int64_t lease_id)
{
    Ep__Controller controller = EP__CONTROLLER__INIT;
    controller.id = (char *) id;
    controller.address = (char *) "tcp://127.0.0.1:1";
    Ep__Entity entity = EP__ENTITY__INIT;
    entity.kind_case = EP__ENTITY__KIND_CONTROLLER;
    entity.controller = &controller;
    Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
    write.has_op = true;
    write.op = expected? EP__MODEL_WRITE__OP__UPDATE: EP__MODEL_WRITE__OP__CREATE;
    write.entity = &entity;
    write.has_expected_version = expected > 0;
    write.expected_version = expected;
    write.has_lease_id = lease_id != 0;
    write.lease_id = lease_id;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.op_case = EP__MODEL_REQUEST__OP_WRITE;
    request.write = &write;
    Ep__ModelReply *reply = s_call (api, &request);
    cr_assert_eq (reply->status->code, EP__STATUS__CODE__OK, "%s", reply->status->message);
    uint64_t revision = reply->revision;
    ep__model_reply__free_unpacked (reply, NULL);
    return revision;
}

//  The version of controller CTRL_ID as the model instance at api has it,
//  0 if it has none.
static uint64_t
s_version (const char *api)
{
    char *key = ep_keys_public_txt (ep_stack_keys (s_stack), "model");
    zcert_t *cert = ep_keys_load (ep_stack_keys (s_stack), "operator");
    ep_rpc_client_t *client = ep_rpc_client_new (api, cert, key);
    cr_assert_not_null (client);
    Ep__ModelGet get = EP__MODEL_GET__INIT;
    get.has_type = true;
    get.type = EP__ENTITY_TYPE__ENTITY_CONTROLLER;
    get.id = CTRL_ID;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.op_case = EP__MODEL_REQUEST__OP_GET;
    request.get = &get;
    char err [256];
    Ep__ModelReply *reply = (Ep__ModelReply *) ep_rpc_call (client, &request,
        &ep__model_reply__descriptor, CALL_MS, 3, err, sizeof err);
    cr_assert_not_null (reply, "the model at %s did not answer: %s", api, err);
    uint64_t version = 0;
    if (reply->status->code == EP__STATUS__CODE__OK) {
        cr_assert_eq (reply->n_entities, 1);
        version = reply->entities [0]->controller->meta->version;
    }
    else
        cr_assert_eq (reply->status->code, EP__STATUS__CODE__NOT_FOUND, "%s", reply->status->message);
    ep__model_reply__free_unpacked (reply, NULL);
    ep_rpc_client_destroy (&client);
    zcert_destroy (&cert);
    free (key);
    return version;
}

//  Waits up to ms for the instance at api to have the entry (present) or
//  not; true if it came to that.
static bool
s_await (const char *api, bool present, int ms)
{
    int64_t deadline = ep_mono_ms () + ms;
    while (true) {
        if ((s_version (api) != 0) == present)
            return true;
        if (ep_mono_ms () >= deadline)
            return false;
        zclock_sleep (100);     //  polling interval, not synchronisation
    }
}

//  A model.change that deletes arg (NULL: CTRL_ID) by principal lease-expired.
static bool
s_lease_expired (const ep_logged_t *event, void *arg)
{
    const char *wanted = arg? (const char *) arg: CTRL_ID;
    json_t *principal = json_object_get (event->json, "principal");
    const char *name = json_string_value (json_object_get (principal, "name"));
    if (!name || !streq (name, "lease-expired"))
        return false;
    json_t *ops = json_object_get (event->json, "ops");
    for (size_t i = 0; i < json_array_size (ops); i++) {
        const char *id = json_string_value (json_object_get (json_array_get (ops, i), "id"));
        if (id && streq (id, wanted))
            return true;
    }
    return false;
}

Test (ctrl_lease, a_killed_watchdog_drops_out_within_the_ttl_a_running_one_stays)
{
    char *first = strdup (ep_proc_connect_endpoint (ep_stack_service (s_stack, "model"), "api"));
    const char *second = ep_proc_connect_endpoint (s_second, "api");
    ep_stack_setenv (s_stack, "EDGEPLANE_MODEL_API", "%s,%s", first, second);
    const char *extra [] = { "--ctrl-id=" CTRL_ID, "--ctrl-lease-ttl=3s", NULL };
    ep_proc_t *watchdog = ep_ctrl_watchdog_start (s_stack, "lease1", extra);
    ep_stack_keep (s_stack, watchdog);
    cr_assert (s_await (first, true, CALL_MS), "the watchdog's entry is not in the first instance");
    cr_assert (s_await (second, true, CALL_MS), "the watchdog's entry is not in the second instance");
    uint64_t version = s_version (second);

    //  Running: kept alive past several TTLs, without a write.
    int64_t until = ep_mono_ms () + 3 * TTL_MS;
    while (ep_mono_ms () < until) {
        cr_assert_eq (s_version (second), version, "the running watchdog's entry changed or went");
        ep_eventlog_pump (s_changes, 200);
    }
    cr_assert_eq (ep_eventlog_await (s_changes, "model.change", s_lease_expired, NULL, 0, 0), -1,
                  "a running watchdog's entry was deleted as lease-expired");

    //  Stalled past its lease (SIGSTOP): the entry goes; resumed, the
    //  watchdog hears that its lease ended and registers again.
    cr_assert_eq (ep_proc_signal (watchdog, SIGSTOP), 0);
    bool gone = s_await (second, false, TTL_MS + MARGIN_MS);
    cr_assert_eq (ep_proc_signal (watchdog, SIGCONT), 0);
    cr_assert (gone, "a stalled watchdog's entry is still there after %d ms", TTL_MS + MARGIN_MS);
    int expired = ep_eventlog_await (s_changes, "model.change", s_lease_expired, NULL, 0, MARGIN_MS);
    cr_assert_geq (expired, 0, "no model.change deleted %s by principal lease-expired", CTRL_ID);
    cr_assert (s_await (second, true, TTL_MS + MARGIN_MS), "the resumed watchdog did not "
               "register again");
    version = s_version (second);

    //  The first instance killed: the second serves the keepalives.
    free (ep_stack_kill (s_stack, "model"));
    until = ep_mono_ms () + 3 * TTL_MS;
    while (ep_mono_ms () < until) {
        cr_assert_eq (s_version (second), version, "the entry changed or went once the first "
                      "model instance was killed");
        ep_eventlog_pump (s_changes, 200);
    }
    ep_stack_start (s_stack, "model", 20000);
    free (first);
    first = strdup (ep_proc_connect_endpoint (ep_stack_service (s_stack, "model"), "api"));
    cr_assert_eq (s_version (first), version, "the restarted instance does not have the entry");

    //  SIGKILL: gone from both within the TTL and a margin, as lease-expired.
    int64_t killed = ep_mono_ms ();
    cr_assert_eq (ep_proc_signal (watchdog, SIGKILL), 0);
    cr_assert (s_await (second, false, TTL_MS + MARGIN_MS),
               "the killed watchdog's entry is still in the second instance after %d ms",
               TTL_MS + MARGIN_MS);
    int64_t went = ep_mono_ms () - killed;
    cr_assert (s_await (first, false, 1000), "the entry is still in the first instance");
    cr_assert_geq (ep_eventlog_await (s_changes, "model.change", s_lease_expired, NULL,
                                      (size_t) expired + 1, MARGIN_MS),
                   0, "no model.change deleted %s by principal lease-expired", CTRL_ID);
    cr_log_info ("the killed watchdog's entry went after %lld ms (TTL %d ms)", (long long) went,
                 TTL_MS);
    free (first);
}

//  The version compare of a lease-expired delete: X written under lease
//  L1 then again under L2 (its marker moves to L2), Z under L1 then again
//  without a lease (its marker stays under L1, at the old version), Y
//  under L1 alone. L1 ends: Y goes as lease-expired; X and Z stay at their
//  versions, and no lease-expired change names them.
Test (ctrl_lease, an_entity_written_again_outlives_its_first_lease)
{
    const char *api = ep_proc_connect_endpoint (s_second, "api");
    int64_t l1 = s_grant (api, 2), l2 = s_grant (api, 120);
    s_put (api, "lease-x", 0, l1);
    s_put (api, "lease-y", 0, l1);
    uint64_t z = s_put (api, "lease-z", 0, l1);
    uint64_t x = s_put (api, "lease-x", s_version_of (api, "lease-x"), l2);
    z = s_put (api, "lease-z", z, 0);
    int gone = ep_eventlog_await (s_changes, "model.change", s_lease_expired, (void *) "lease-y", 0,
                                  3000 + MARGIN_MS);
    cr_assert_geq (gone, 0, "lease-y was not deleted as lease-expired when its lease ended");
    cr_assert_eq (s_version_of (api, "lease-y"), 0);
    //  Both instances heard every marker's delete by now (one watch
    //  event); give the others' deletes, if any, time to show.
    ep_eventlog_pump (s_changes, 1000);
    cr_assert_eq (ep_eventlog_await (s_changes, "model.change", s_lease_expired, (void *) "lease-x",
                                     0, 0), -1, "lease-x, written again under another lease, "
                  "was deleted as lease-expired");
    cr_assert_eq (ep_eventlog_await (s_changes, "model.change", s_lease_expired, (void *) "lease-z",
                                     0, 0), -1, "lease-z, written again without a lease, was "
                  "deleted as lease-expired");
    cr_assert_eq (s_version_of (api, "lease-x"), x);
    cr_assert_eq (s_version_of (api, "lease-z"), z);
}
