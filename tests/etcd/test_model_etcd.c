/*  test_model_etcd.c: the edgeplane-model process with its model in etcd
    (EDGEPLANE_MODEL_STORE=etcd on the fixture's cluster, a prefix per
    test): writes acknowledged survive kill -9 with their revision, a
    retried request id gets its first reply from the restarted process,
    a snapshot sees them, and bad settings say what to do; two instances
    on one prefix both take writes (CAS on one hot entity, alternately), and
    a retry through the other instance gets the first reply. */
#include <criterion/criterion.h>
#include "ep_etcd_cluster.h"
#include "ep_test.h"
#include "ep_keys.h"
#include "ep_rpc_client.h"
#include "model.pb-c.h"
#include <signal.h>
#include <sys/wait.h>

#define CALL_MS     5000        //  reply deadline for a call that must be answered
#define WRITES      40          //  routers written before the kill

static char *s_dir;             //  this test's directory
static char *s_keys;            //  its keys dir
static char *s_server_key;      //  the model's public key
static char *s_env [7];         //  the model's environment

static void
s_setup (void)
{
    zsys_init ();
    const char *endpoints = ep_etcd_cluster_endpoints ();
    cr_assert (endpoints, "no etcd cluster: run this suite through ctest (fixture etcd_cluster)");
    s_dir = ep_tmpdir_new ("model-etcd");
    s_keys = zsys_sprintf ("%s/data/keys", s_dir);
    char err [256];
    cr_assert_eq (ep_keys_init (s_keys, false, err, sizeof err), 0, "%s", err);
    s_server_key = ep_keys_public_txt (s_keys, "model");
    char *prefix = ep_etcd_test_prefix ("model");
    s_env [0] = zsys_sprintf ("EDGEPLANE_DATA_DIR=%s/data", s_dir);
    s_env [1] = zsys_sprintf ("EDGEPLANE_BUS_PUB=ipc://%s/no-bus", s_dir);
    s_env [2] = zsys_sprintf ("EDGEPLANE_MODEL_STORE=etcd");
    s_env [3] = zsys_sprintf ("EDGEPLANE_ETCD_ENDPOINTS=%s", endpoints);
    s_env [4] = zsys_sprintf ("EDGEPLANE_ETCD_PREFIX=%s", prefix);
    //  The cluster's --max-txn-ops (tests/support/etcd-cluster), as compose/ha.yaml says it.
    s_env [5] = zsys_sprintf ("EDGEPLANE_ETCD_MAX_TXN_OPS=1024");
    free (prefix);
}

static void
s_teardown (void)
{
    for (size_t i = 0; i < EP_COUNT (s_env); i++)
        zstr_free (&s_env [i]);
    zstr_free (&s_server_key);
    zstr_free (&s_keys);
    ep_tmpdir_remove (&s_dir);
}

TestSuite (model_etcd, .init = s_setup, .fini = s_teardown);

static ep_proc_t *
s_model (void)
{
    const char *args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", "127.0.0.1:0", NULL };
    ep_proc_t *model = ep_proc_start ("edgeplane-model", args, (const char *const *) s_env, 20000);
    cr_assert_not_null (model, "edgeplane-model did not start on etcd");
    return model;
}

static ep_rpc_client_t *
s_client (ep_proc_t *model, zcert_t *cert)
{
    ep_rpc_client_t *client = ep_rpc_client_new (ep_proc_connect_endpoint (model, "api"),
                                                 cert, s_server_key);
    cr_assert_not_null (client);
    return client;
}

//  A call that must be answered OK; returns the reply (caller frees).
static Ep__ModelReply *
s_ok (ep_rpc_client_t *client, Ep__ModelRequest *request)
{
    Ep__ModelReply *reply = ep_rpc_call (client, request, &ep__model_reply__descriptor, CALL_MS, 1, NULL, 0);
    cr_assert_not_null (reply, "no reply");
    cr_assert_eq (ep_status_code (reply->status), EP__STATUS__CODE__OK, "code %d: %s", ep_status_code (reply->status),
                  reply->status && reply->status->message? reply->status->message: "");
    return reply;
}

//  The CREATE of router id, under request_id.
static Ep__ModelReply *
s_create (ep_rpc_client_t *client, const char *id, const char *request_id)
{
    Ep__Router router = EP__ROUTER__INIT;
    router.id = (char *) id;
    Ep__Entity entity = EP__ENTITY__INIT;
    entity.kind_case = EP__ENTITY__KIND_ROUTER;
    entity.router = &router;
    Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
    write.has_op = true;
    write.op = EP__MODEL_WRITE__OP__CREATE;
    write.entity = &entity;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.request_id = (char *) request_id;
    request.op_case = EP__MODEL_REQUEST__OP_WRITE;
    request.write = &write;
    return s_ok (client, &request);
}

//  The UPDATE of service id to name, at expected_version, under request_id.
static Ep__ModelReply *
s_update (ep_rpc_client_t *client, const char *id, const char *name, uint64_t expected,
          const char *request_id)
{
    Ep__Service service = EP__SERVICE__INIT;
    service.id = (char *) id;
    service.name = (char *) name;
    Ep__Entity entity = EP__ENTITY__INIT;
    entity.kind_case = EP__ENTITY__KIND_SERVICE;
    entity.service = &service;
    Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
    write.has_op = true;
    write.op = expected? EP__MODEL_WRITE__OP__UPDATE: EP__MODEL_WRITE__OP__CREATE;
    write.entity = &entity;
    write.has_expected_version = expected > 0;
    write.expected_version = expected;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.request_id = (char *) request_id;
    request.op_case = EP__MODEL_REQUEST__OP_WRITE;
    request.write = &write;
    return s_ok (client, &request);
}

static uint64_t
s_revision (ep_rpc_client_t *client)
{
    Ep__StatusRequest status = EP__STATUS_REQUEST__INIT;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.op_case = EP__MODEL_REQUEST__OP_STATUS;
    request.status = &status;
    request.request_id = (char *) "";
    Ep__ModelReply *reply = s_ok (client, &request);
    uint64_t revision = reply->revision;
    ep__model_reply__free_unpacked (reply, NULL);
    return revision;
}

//  Every router a snapshot holds, read page by page; its revision in *revision.
static size_t
s_snapshot_count (ep_rpc_client_t *client, uint64_t *revision)
{
    size_t count = 0;
    char *token = NULL;
    do {
        Ep__SnapshotRequest snapshot = EP__SNAPSHOT_REQUEST__INIT;
        snapshot.has_page_size = true;
        snapshot.page_size = 7;
        snapshot.page_token = token;
        Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
        request.request_id = (char *) "";
        request.op_case = EP__MODEL_REQUEST__OP_SNAPSHOT;
        request.snapshot = &snapshot;
        Ep__ModelReply *reply = s_ok (client, &request);
        count += reply->n_entities;
        *revision = reply->revision;
        free (token);
        token = reply->next_page_token && *reply->next_page_token? strdup (reply->next_page_token): NULL;
        ep__model_reply__free_unpacked (reply, NULL);
    } while (token);
    return count;
}

Test (model_etcd, acknowledged_writes_and_their_replies_survive_kill_9)
{
    ep_proc_t *model = s_model ();
    zcert_t *cert = ep_keys_load (s_keys, "operator");
    ep_rpc_client_t *client = s_client (model, cert);
    char id [32], request_id [32];
    uint64_t first_revision = 0;
    for (int i = 0; i < WRITES; i++) {
        snprintf (id, sizeof id, "r%03d", i);
        snprintf (request_id, sizeof request_id, "req-%03d", i);
        Ep__ModelReply *reply = s_create (client, id, request_id);
        cr_assert_eq (reply->revision, (uint64_t) i + 1);
        if (i == 0)
            first_revision = reply->revision;
        ep__model_reply__free_unpacked (reply, NULL);
    }
    ep_rpc_client_destroy (&client);
    cr_assert_eq (ep_proc_signal (model, SIGKILL), 0);
    int status = ep_proc_wait_exit (model, 10000);
    cr_assert (status != -1 && WIFSIGNALED (status), "the model did not die of SIGKILL");
    ep_proc_destroy (&model);

    model = s_model ();
    client = s_client (model, cert);
    cr_assert_eq (s_revision (client), WRITES, "the revision is back");
    uint64_t pinned = 0;
    cr_assert_eq (s_snapshot_count (client, &pinned), WRITES, "every write is there");
    cr_assert_eq (pinned, WRITES);
    //  A retry of the first write gets its first reply, not ALREADY_EXISTS.
    Ep__ModelReply *reply = s_create (client, "r000", "req-000");
    cr_assert_eq (reply->revision, first_revision);
    ep__model_reply__free_unpacked (reply, NULL);
    //  And the next write takes the next revision.
    reply = s_create (client, "after", "req-after");
    cr_assert_eq (reply->revision, WRITES + 1);
    ep__model_reply__free_unpacked (reply, NULL);
    ep_rpc_client_destroy (&client);
    zcert_destroy (&cert);
    ep_proc_destroy (&model);
}

Test (model_etcd, bad_settings_say_what_to_do)
{
    const char *args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", "127.0.0.1:0", NULL };
    const char *no_endpoints [] = { s_env [0], s_env [1], s_env [2], "EDGEPLANE_ETCD_ENDPOINTS=", NULL };
    ep_proc_t *model = ep_proc_spawn ("edgeplane-model", args, no_endpoints);
    cr_assert_not_null (model);
    int status = ep_proc_wait_exit (model, 10000);
    cr_assert (WIFEXITED (status) && WEXITSTATUS (status) != 0);
    cr_assert (strstr (ep_proc_log (model), "needs EDGEPLANE_ETCD_ENDPOINTS"), "%s", ep_proc_log (model));
    ep_proc_destroy (&model);

    const char *bad_prefix [] = { s_env [0], s_env [1], s_env [2], s_env [3],
                                  "EDGEPLANE_ETCD_PREFIX=/no-slash", NULL };
    model = ep_proc_spawn ("edgeplane-model", args, bad_prefix);
    status = ep_proc_wait_exit (model, 10000);
    cr_assert (WIFEXITED (status) && WEXITSTATUS (status) != 0);
    cr_assert (strstr (ep_proc_log (model), "ending in /"), "%s", ep_proc_log (model));
    ep_proc_destroy (&model);

    const char *bad_store [] = { s_env [0], s_env [1], "EDGEPLANE_MODEL_STORE=zookeeper", NULL };
    model = ep_proc_spawn ("edgeplane-model", args, bad_store);
    status = ep_proc_wait_exit (model, 10000);
    cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 2, "status %d", status);
    cr_assert (strstr (ep_proc_log (model), "sqlite"), "%s", ep_proc_log (model));
    ep_proc_destroy (&model);
}

//  An etcd out of reach at start: one line naming the endpoints, /healthz
//  alive and /readyz saying why, retries with backoff; ready by itself
//  once a member answers, and it takes writes.
Test (model_etcd, an_unreachable_etcd_at_start_is_waited_for, .timeout = 120)
{
    cr_assert_eq (ep_etcd_cluster_kill (3), 0);
    int http_port = ep_test_stable_port ();
    char *http = zsys_sprintf ("127.0.0.1:%d", http_port);
    char *base = zsys_sprintf ("http://%s", http);
    char *endpoints = zsys_sprintf ("EDGEPLANE_ETCD_ENDPOINTS=%s", ep_etcd_cluster_member (3));
    const char *env [] = { s_env [0], s_env [1], s_env [2], endpoints, s_env [4], s_env [5], NULL };
    const char *args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", http, NULL };
    ep_proc_t *model = ep_proc_spawn ("edgeplane-model", args, env);
    cr_assert_not_null (model);
    int64_t deadline = ep_mono_ms () + 20000;
    char *readyz = NULL;
    while (ep_mono_ms () < deadline) {
        free (readyz);
        readyz = ep_readyz (base);
        if (strstr (readyz, "cannot reach etcd"))
            break;
        cr_assert_eq (ep_proc_wait_exit (model, 100), -1, "the model exited: %s", ep_proc_log (model));
    }
    cr_assert (strstr (readyz, "not ready: cannot reach etcd at http"), "/readyz: %s", readyz);
    cr_assert (strstr (readyz, ep_etcd_cluster_member (3)), "/readyz names no endpoint: %s", readyz);
    char *healthz = ep_http_get (base, "/healthz");
    cr_assert_not_null (healthz, "/healthz is not 200 while etcd is out of reach");
    free (healthz);
    //  Retrying, it says so once, not once per attempt.
    cr_assert_eq (ep_proc_wait_exit (model, 3000), -1, "the model exited: %s", ep_proc_log (model));
    const char *log = ep_proc_log (model), *first = strstr (log, "cannot reach etcd at");
    cr_assert (first && !strstr (first + 1, "cannot reach etcd at"), "%s", log);

    cr_assert_eq (ep_etcd_cluster_revive (3), 0);
    cr_assert_eq (ep_proc_wait_ready (model, 30000), 0, "not ready once etcd answered: %s", ep_proc_log (model));
    zcert_t *cert = ep_keys_load (s_keys, "operator");
    ep_rpc_client_t *client = s_client (model, cert);
    Ep__ModelReply *reply = s_create (client, "after-etcd", "req-after-etcd");
    cr_assert_gt (reply->revision, 0);
    ep__model_reply__free_unpacked (reply, NULL);
    ep_rpc_client_destroy (&client);
    zcert_destroy (&cert);
    ep_proc_destroy (&model);
    free (readyz);
    free (endpoints);
    free (base);
    free (http);
}

Test (model_etcd, two_instances_both_write_and_a_retry_through_the_other_gets_the_first_reply)
{
    ep_proc_t *models [2] = { s_model (), s_model () };
    zcert_t *cert = ep_keys_load (s_keys, "operator");
    ep_rpc_client_t *clients [2] = { s_client (models [0], cert), s_client (models [1], cert) };
    //  One hot entity, each update a compare-and-swap on the version the
    //  last one (through the other instance) gave: each instance must learn
    //  the other's commits, not refuse them nor apply on a stale copy.
    Ep__ModelReply *reply = s_update (clients [0], "hot", "v0", 0, "hot-0");
    uint64_t version = reply->revision;
    ep__model_reply__free_unpacked (reply, NULL);
    char name [32], request_id [32];
    for (int i = 1; i <= 30; i++) {
        snprintf (name, sizeof name, "v%d", i);
        snprintf (request_id, sizeof request_id, "hot-%d", i);
        reply = s_update (clients [i % 2], "hot", name, version, request_id);
        cr_assert_eq (reply->revision, version + 1, "write %d through instance %d", i, i % 2);
        version = reply->revision;
        ep__model_reply__free_unpacked (reply, NULL);
    }
    //  The last write (through instance 0) sent again through instance 1:
    //  its first reply, not a CONFLICT and not a second revision.
    reply = s_update (clients [1], "hot", "v30", version - 1, "hot-30");
    cr_assert_eq (reply->revision, version);
    ep__model_reply__free_unpacked (reply, NULL);
    //  Both say the same revision once they have seen it.
    int64_t deadline = zclock_mono () + CALL_MS;
    while (s_revision (clients [1]) != version && zclock_mono () < deadline)
        zclock_sleep (20);      //  polling a condition with a deadline
    cr_assert_eq (s_revision (clients [0]), version);
    cr_assert_eq (s_revision (clients [1]), version);
    for (int i = 0; i < 2; i++) {
        ep_rpc_client_destroy (&clients [i]);
        ep_proc_destroy (&models [i]);
    }
    zcert_destroy (&cert);
}

//  The CREATE of router id hosting service_id.
static void
s_create_hosting (ep_rpc_client_t *client, const char *id, const char *service_id)
{
    Ep__HostedService hosted = EP__HOSTED_SERVICE__INIT, *hosted_p = &hosted;
    hosted.service_id = (char *) service_id;
    Ep__Router router = EP__ROUTER__INIT;
    router.id = (char *) id;
    router.n_hosted = 1;
    router.hosted = &hosted_p;
    Ep__Entity entity = EP__ENTITY__INIT;
    entity.kind_case = EP__ENTITY__KIND_ROUTER;
    entity.router = &router;
    Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
    write.has_op = true;
    write.op = EP__MODEL_WRITE__OP__CREATE;
    write.entity = &entity;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.request_id = (char *) "";
    request.op_case = EP__MODEL_REQUEST__OP_WRITE;
    request.write = &write;
    ep__model_reply__free_unpacked (s_ok (client, &request), NULL);
}

//  Deleting a service removes it from every router hosting it in the same
//  revision (docs/model.md): with 300 routers that one revision is one etcd
//  transaction of 300 router puts and more, which fits the cluster's
//  --max-txn-ops 1024 (EDGEPLANE_ETCD_MAX_TXN_OPS says so to the model) but
//  not etcd's default 128 (docs/etcd.md, "Limits").
#define HOSTS 300
Test (model_etcd, deleting_a_service_hosted_by_300_routers_is_one_revision)
{
    ep_proc_t *model = s_model ();
    zcert_t *cert = ep_keys_load (s_keys, "operator");
    ep_rpc_client_t *client = s_client (model, cert);
    ep__model_reply__free_unpacked (s_update (client, "svc", "svc", 0, ""), NULL);
    char id [32];
    for (int i = 0; i < HOSTS; i++) {
        snprintf (id, sizeof id, "host%03d", i);
        s_create_hosting (client, id, "svc");
    }
    uint64_t before = s_revision (client);
    Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
    write.has_op = true;
    write.op = EP__MODEL_WRITE__OP__DELETE;
    write.has_type = true;
    write.type = EP__ENTITY_TYPE__ENTITY_SERVICE;
    write.id = (char *) "svc";
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.request_id = (char *) "";
    request.op_case = EP__MODEL_REQUEST__OP_WRITE;
    request.write = &write;
    Ep__ModelReply *reply = s_ok (client, &request);
    uint64_t deleted = reply->revision;
    ep__model_reply__free_unpacked (reply, NULL);
    cr_assert_eq (deleted, before + 1, "one revision");

    //  Every router is there and hosts nothing any more.
    size_t routers = 0;
    char *token = NULL;
    do {
        Ep__SnapshotRequest snapshot = EP__SNAPSHOT_REQUEST__INIT;
        snapshot.has_page_size = true;
        snapshot.page_size = 100;
        snapshot.page_token = token;
        Ep__ModelRequest page = EP__MODEL_REQUEST__INIT;
        page.request_id = (char *) "";
        page.op_case = EP__MODEL_REQUEST__OP_SNAPSHOT;
        page.snapshot = &snapshot;
        reply = s_ok (client, &page);
        cr_assert_eq (reply->revision, deleted);
        for (size_t i = 0; i < reply->n_entities; i++) {
            //  A oneof: the kind says which member is set.
            cr_assert_neq (reply->entities [i]->kind_case, EP__ENTITY__KIND_SERVICE,
                           "the service is gone");
            Ep__Router *router = reply->entities [i]->kind_case == EP__ENTITY__KIND_ROUTER?
                                 reply->entities [i]->router: NULL;
            if (router) {
                routers++;
                cr_assert_eq (router->n_hosted, 0, "%s still hosts a service", router->id);
            }
        }
        free (token);
        token = reply->next_page_token && *reply->next_page_token? strdup (reply->next_page_token): NULL;
        ep__model_reply__free_unpacked (reply, NULL);
    } while (token);
    cr_assert_eq (routers, HOSTS);

    //  The change stream's record of it: the service DELETED and every
    //  router UPDATED with svc in hosted_removed, all at that one revision
    //  (a changes reply may carry it in parts).
    Ep__ChangesRequest changes = EP__CHANGES_REQUEST__INIT;
    changes.has_since_revision = true;
    changes.since_revision = before;
    Ep__ModelRequest since = EP__MODEL_REQUEST__INIT;
    since.request_id = (char *) "";
    since.op_case = EP__MODEL_REQUEST__OP_CHANGES;
    since.changes = &changes;
    reply = s_ok (client, &since);
    size_t service_ops = 0, router_ops = 0;
    for (size_t c = 0; c < reply->n_changes; c++) {
        Ep__ModelChange *change = reply->changes [c];
        cr_assert_eq (change->revision, deleted, "only the delete's revision");
        for (size_t i = 0; i < change->n_ops; i++) {
            Ep__ModelOp *op = change->ops [i];
            if (op->type == EP__ENTITY_TYPE__ENTITY_SERVICE) {
                cr_assert_eq (op->kind, EP__MODEL_OP__KIND__DELETED);
                cr_assert_str_eq (op->id, "svc");
                service_ops++;
            }
            else {
                cr_assert_eq (op->type, EP__ENTITY_TYPE__ENTITY_ROUTER);
                cr_assert_eq (op->kind, EP__MODEL_OP__KIND__UPDATED);
                cr_assert_eq (op->n_hosted_removed, 1, "%s", op->id);
                cr_assert_str_eq (op->hosted_removed [0], "svc");
                router_ops++;
            }
        }
    }
    ep__model_reply__free_unpacked (reply, NULL);
    cr_assert_eq (service_ops, 1);
    cr_assert_eq (router_ops, HOSTS, "every router's change is in the record");
    ep_rpc_client_destroy (&client);
    zcert_destroy (&cert);
    ep_proc_destroy (&model);
}

//  A batch sized at three etcd operations a write that meets a service's
//  delete needing more goes over --max-txn-ops: its writes then run one by
//  one (EP_REQLOOP_SPLIT), so every one is taken, not the whole batch
//  answered UNAVAILABLE. Here --max-txn-ops 32 (batches of 10), a service
//  hosted by 8 routers (its delete: 12 operations) and 9 other writes sent
//  at once, gathered into one batch by a commit delay.
#define OTHERS 9
Test (model_etcd, a_batch_too_large_for_one_transaction_runs_its_writes_one_by_one)
{
    const char *env [] = { s_env [0], s_env [1], s_env [2], s_env [3], s_env [4],
                           "EDGEPLANE_ETCD_MAX_TXN_OPS=32", "EDGEPLANE_MODEL_COMMIT_DELAY=300ms", NULL };
    const char *args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", "127.0.0.1:0", NULL };
    ep_proc_t *model = ep_proc_start ("edgeplane-model", args, env, 20000);
    cr_assert_not_null (model);
    zcert_t *cert = ep_keys_load (s_keys, "operator");
    ep_rpc_client_t *clients [OTHERS + 1];
    for (int i = 0; i <= OTHERS; i++)
        clients [i] = s_client (model, cert);
    ep__model_reply__free_unpacked (s_update (clients [0], "wide", "wide", 0, ""), NULL);
    char id [32];
    for (int i = 0; i < 8; i++) {
        snprintf (id, sizeof id, "wide-host%d", i);
        s_create_hosting (clients [0], id, "wide");
    }
    uint64_t before = s_revision (clients [0]);

    //  All at once: the delete first, then the others.
    for (int i = 0; i <= OTHERS; i++) {
        Ep__Router router = EP__ROUTER__INIT;
        Ep__Entity entity = EP__ENTITY__INIT;
        Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
        write.has_op = true;
        if (i == 0) {
            write.op = EP__MODEL_WRITE__OP__DELETE;
            write.has_type = true;
            write.type = EP__ENTITY_TYPE__ENTITY_SERVICE;
            write.id = (char *) "wide";
        }
        else {
            snprintf (id, sizeof id, "other%d", i);
            router.id = id;
            entity.kind_case = EP__ENTITY__KIND_ROUTER;
            entity.router = &router;
            write.op = EP__MODEL_WRITE__OP__CREATE;
            write.entity = &entity;
        }
        char request_id [33];
        ep_rpc_new_id (request_id);
        Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
        request.request_id = request_id;
        request.op_case = EP__MODEL_REQUEST__OP_WRITE;
        request.write = &write;
        char err [256];
        cr_assert_eq (ep_rpc_client_send (clients [i], &request.base, request_id, CALL_MS, err, sizeof err),
                      0, "%s", err);
    }
    size_t taken = 0;
    uint64_t highest = 0;
    int64_t deadline = zclock_mono () + 2 * CALL_MS;
    for (int i = 0; i <= OTHERS; i++) {
        Ep__ModelReply *reply = NULL;
        char err [256] = "";
        while (!reply && zclock_mono () < deadline) {
            zsock_t *socket = ep_rpc_client_socket (clients [i]);
            zpoller_t *poller = zpoller_new (socket, NULL);
            zpoller_wait (poller, 100);
            zpoller_destroy (&poller);
            reply = (Ep__ModelReply *) ep_rpc_client_take (clients [i], &ep__model_reply__descriptor,
                                                           err, sizeof err);
            cr_assert (reply || !*err, "%s", err);
        }
        cr_assert_not_null (reply, "write %d was not answered", i);
        cr_assert_eq (ep_status_code (reply->status), EP__STATUS__CODE__OK, "write %d: %s", i,
                      reply->status && reply->status->message? reply->status->message: "");
        if (reply->revision > highest)
            highest = reply->revision;
        taken++;
        ep__model_reply__free_unpacked (reply, NULL);
    }
    cr_assert_eq (taken, OTHERS + 1);
    cr_assert_eq (highest, before + OTHERS + 1, "one revision each");
    char *log = ep_proc_log (model);
    cr_assert (strstr (log, "too large for one etcd transaction"), "they were one batch: %s", log);
    free (log);
    for (int i = 0; i <= OTHERS; i++)
        ep_rpc_client_destroy (&clients [i]);
    zcert_destroy (&cert);
    ep_proc_destroy (&model);
}

//  A lease of ttl_s seconds granted through client.
static int64_t
s_grant (ep_rpc_client_t *client, int ttl_s)
{
    Ep__LeaseRequest lease = EP__LEASE_REQUEST__INIT;
    lease.has_ttl_s = true;
    lease.ttl_s = ttl_s;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.op_case = EP__MODEL_REQUEST__OP_LEASE;
    request.lease = &lease;
    Ep__ModelReply *reply = s_ok (client, &request);
    int64_t lease_id = reply->lease_id;
    cr_assert_neq (lease_id, 0);
    ep__model_reply__free_unpacked (reply, NULL);
    return lease_id;
}

//  Sends the CREATE of router id under lease_id (0: none) through client,
//  without waiting for its answer.
static void
s_send_create (ep_rpc_client_t *client, const char *id, int64_t lease_id)
{
    Ep__Router router = EP__ROUTER__INIT;
    router.id = (char *) id;
    Ep__Entity entity = EP__ENTITY__INIT;
    entity.kind_case = EP__ENTITY__KIND_ROUTER;
    entity.router = &router;
    Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
    write.has_op = true;
    write.op = EP__MODEL_WRITE__OP__CREATE;
    write.entity = &entity;
    write.has_lease_id = lease_id != 0;
    write.lease_id = lease_id;
    char request_id [33];
    ep_rpc_new_id (request_id);
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.request_id = request_id;
    request.op_case = EP__MODEL_REQUEST__OP_WRITE;
    request.write = &write;
    char err [256];
    cr_assert_eq (ep_rpc_client_send (client, &request.base, request_id, CALL_MS, err, sizeof err),
                  0, "%s", err);
}

//  The answer to what client sent, waited for until deadline (mono ms).
static Ep__ModelReply *
s_take (ep_rpc_client_t *client, int64_t deadline)
{
    Ep__ModelReply *reply = NULL;
    char err [256] = "";
    while (!reply && zclock_mono () < deadline) {
        zpoller_t *poller = zpoller_new (ep_rpc_client_socket (client), NULL);
        zpoller_wait (poller, 100);
        zpoller_destroy (&poller);
        reply = (Ep__ModelReply *) ep_rpc_client_take (client, &ep__model_reply__descriptor,
                                                       err, sizeof err);
        cr_assert (reply || !*err, "%s", err);
    }
    cr_assert_not_null (reply, "a write was not answered");
    return reply;
}

//  A write under a lease etcd does not have (ended, or never granted)
//  makes etcd refuse the whole transaction. Batched with others (a commit
//  delay gathers them), it fails alone with NOT_FOUND; the others, under a
//  live lease or none, are all taken; sent again alone, NOT_FOUND again.
#define LEASE_WRITES 5
Test (model_etcd, a_write_under_an_ended_lease_fails_alone_not_its_batch)
{
    const char *env [] = { s_env [0], s_env [1], s_env [2], s_env [3], s_env [4], s_env [5],
                           "EDGEPLANE_MODEL_COMMIT_DELAY=300ms", NULL };
    const char *args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", "127.0.0.1:0", NULL };
    ep_proc_t *model = ep_proc_start ("edgeplane-model", args, env, 20000);
    cr_assert_not_null (model);
    zcert_t *cert = ep_keys_load (s_keys, "operator");
    ep_rpc_client_t *clients [LEASE_WRITES];
    for (int i = 0; i < LEASE_WRITES; i++)
        clients [i] = s_client (model, cert);
    int64_t live = s_grant (clients [0], 60);
    const int64_t dead = 0x5eadbeef1234567LL;   //  never granted
    uint64_t before = s_revision (clients [0]);
    char id [32];
    for (int i = 0; i < LEASE_WRITES; i++) {
        snprintf (id, sizeof id, "leased%d", i);
        s_send_create (clients [i], id, i == 0? dead: i < 3? live: 0);
    }
    int64_t deadline = zclock_mono () + 2 * CALL_MS;
    uint64_t highest = 0;
    for (int i = 0; i < LEASE_WRITES; i++) {
        Ep__ModelReply *reply = s_take (clients [i], deadline);
        const char *message = reply->status && reply->status->message? reply->status->message: "";
        if (i == 0) {
            cr_assert_eq (ep_status_code (reply->status), EP__STATUS__CODE__NOT_FOUND, "the write under a dead "
                          "lease: code %d: %s", ep_status_code (reply->status), message);
            cr_assert (strstr (message, "lease"), "%s", message);
        }
        else
            cr_assert_eq (ep_status_code (reply->status), EP__STATUS__CODE__OK, "write %d: %s", i, message);
        if (reply->revision > highest)
            highest = reply->revision;
        ep__model_reply__free_unpacked (reply, NULL);
    }
    cr_assert_eq (highest, before + LEASE_WRITES - 1, "one revision each write taken");
    char *log = ep_proc_log (model);
    cr_assert (strstr (log, "under a lease that ended: each runs"), "they were one batch: %s", log);
    free (log);

    //  The same dead lease again, alone.
    s_send_create (clients [0], "leased0", dead);
    Ep__ModelReply *reply = s_take (clients [0], zclock_mono () + CALL_MS);
    cr_assert_eq (ep_status_code (reply->status), EP__STATUS__CODE__NOT_FOUND, "alone: code %d", ep_status_code (reply->status));
    ep__model_reply__free_unpacked (reply, NULL);
    cr_assert_eq (s_revision (clients [1]), highest);
    for (int i = 0; i < LEASE_WRITES; i++)
        ep_rpc_client_destroy (&clients [i]);
    zcert_destroy (&cert);
    ep_proc_destroy (&model);
}

//  Batches are sized at three etcd operations a write; one under a lease
//  takes four (its marker). A full batch of them goes over --max-txn-ops,
//  and the split of a batch too large (EP_REQLOOP_SPLIT) takes every one:
//  --max-txn-ops 32 (batches of 9), 9 writes under one lease at once
//  (at least 37 operations).
#define FULL_BATCH 9
Test (model_etcd, a_full_batch_of_writes_under_a_lease_is_taken_whole)
{
    const char *env [] = { s_env [0], s_env [1], s_env [2], s_env [3], s_env [4],
                           "EDGEPLANE_ETCD_MAX_TXN_OPS=32", "EDGEPLANE_MODEL_COMMIT_DELAY=300ms", NULL };
    const char *args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", "127.0.0.1:0", NULL };
    ep_proc_t *model = ep_proc_start ("edgeplane-model", args, env, 20000);
    cr_assert_not_null (model);
    zcert_t *cert = ep_keys_load (s_keys, "operator");
    ep_rpc_client_t *clients [FULL_BATCH];
    for (int i = 0; i < FULL_BATCH; i++)
        clients [i] = s_client (model, cert);
    int64_t lease = s_grant (clients [0], 60);
    uint64_t before = s_revision (clients [0]);
    char id [32];
    for (int i = 0; i < FULL_BATCH; i++) {
        snprintf (id, sizeof id, "full%d", i);
        s_send_create (clients [i], id, lease);
    }
    int64_t deadline = zclock_mono () + 2 * CALL_MS;
    uint64_t highest = 0;
    for (int i = 0; i < FULL_BATCH; i++) {
        Ep__ModelReply *reply = s_take (clients [i], deadline);
        cr_assert_eq (ep_status_code (reply->status), EP__STATUS__CODE__OK, "write %d: %s", i,
                      reply->status && reply->status->message? reply->status->message: "");
        if (reply->revision > highest)
            highest = reply->revision;
        ep__model_reply__free_unpacked (reply, NULL);
    }
    cr_assert_eq (highest, before + FULL_BATCH, "one revision each");
    char *log = ep_proc_log (model);
    cr_assert (strstr (log, "too large for one etcd transaction"), "they were one batch: %s", log);
    free (log);
    for (int i = 0; i < FULL_BATCH; i++)
        ep_rpc_client_destroy (&clients [i]);
    zcert_destroy (&cert);
    ep_proc_destroy (&model);
}
