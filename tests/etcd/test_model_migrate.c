/*  test_model_migrate.c: moving the model between stores and clusters
    (docs/ha.md): `edgeplane migrate --to etcd` copies a stopped embedded
    model (model.db) into an empty etcd prefix of the fixture's cluster; the
    model started on etcd has every entity (same ids and content: the same
    digest), the same revision, a new generation, and takes the next write.
    A running model's database and a prefix that holds keys are refused.
    `edgeplane backup` of the model on etcd writes an etcd snapshot (etcdctl
    reads it); restored with `etcdctl snapshot restore` as a new cluster,
    the model on it has every entity and a new generation. */
#include <criterion/criterion.h>
#include "ep_etcd_cluster.h"
#include "ep_test.h"
#include "ep_keys.h"
#include "ep_rpc_client.h"
#include "model.pb-c.h"
#include <signal.h>
#include <sys/wait.h>

#define CALL_MS     5000        //  reply deadline for a call that must be answered
#define ROUTERS     25          //  routers written
#define SERVICES    10          //  services written (each updated once)

static char *s_dir;             //  this test's directory
static char *s_keys;            //  its keys dir
static char *s_server_key;      //  the model's public key
static char *s_prefix;          //  its etcd prefix
static char *s_env [5];         //  the model's environment, embedded (3) or etcd (all)
static ep_proc_t *s_proc;       //  the model running now, and a restored etcd's directory:
static char *s_restored;        //  ended at teardown, even after a failed assertion

static void
s_setup (void)
{
    zsys_init ();
    const char *endpoints = ep_etcd_cluster_endpoints ();
    cr_assert (endpoints, "no etcd cluster: run this suite through ctest (fixture etcd_cluster)");
    s_dir = ep_tmpdir_new ("model-migrate");
    s_keys = zsys_sprintf ("%s/data/keys", s_dir);
    char err [256];
    cr_assert_eq (ep_keys_init (s_keys, false, err, sizeof err), 0, "%s", err);
    s_server_key = ep_keys_public_txt (s_keys, "model");
    s_prefix = ep_etcd_test_prefix ("migrate");
    s_env [0] = zsys_sprintf ("EDGEPLANE_DATA_DIR=%s/data", s_dir);
    s_env [1] = zsys_sprintf ("EDGEPLANE_BUS_PUB=ipc://%s/no-bus", s_dir);
    s_env [2] = zsys_sprintf ("EDGEPLANE_ETCD_ENDPOINTS=%s", endpoints);
    s_env [3] = zsys_sprintf ("EDGEPLANE_ETCD_PREFIX=%s", s_prefix);
    s_env [4] = zsys_sprintf ("EDGEPLANE_MODEL_STORE=etcd");
}

static void
s_teardown (void)
{
    ep_proc_destroy (&s_proc);
    ep_etcd_restored_stop (&s_restored);
    for (size_t i = 0; i < EP_COUNT (s_env); i++)
        zstr_free (&s_env [i]);
    zstr_free (&s_prefix);
    zstr_free (&s_server_key);
    zstr_free (&s_keys);
    ep_tmpdir_remove (&s_dir);
}

TestSuite (model_migrate, .init = s_setup, .fini = s_teardown);

//  The model on model.db (embedded) or on etcd (the fixture's cluster, or
//  endpoints if not NULL).
static ep_proc_t *
s_model_on (bool etcd, const char *endpoints)
{
    const char *args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", "127.0.0.1:0", NULL };
    char *other = endpoints? zsys_sprintf ("EDGEPLANE_ETCD_ENDPOINTS=%s", endpoints): NULL;
    const char *env [6] = { s_env [0], s_env [1], other? other: s_env [2], s_env [3],
                            etcd? s_env [4]: NULL, NULL };
    ep_proc_t *model = ep_proc_start ("edgeplane-model", args, env, 20000);
    zstr_free (&other);
    cr_assert_not_null (model, "edgeplane-model did not start (%s)", etcd? "etcd": "model.db");
    return model;
}

static ep_proc_t *
s_model (bool etcd)
{
    return s_model_on (etcd, NULL);
}

static Ep__ModelReply *
s_ok (ep_rpc_client_t *client, Ep__ModelRequest *request)
{
    Ep__ModelReply *reply = ep_rpc_call (client, request, &ep__model_reply__descriptor, CALL_MS, 1, NULL, 0);
    cr_assert_not_null (reply, "no reply");
    cr_assert_eq (ep_status_code (reply->status), EP__STATUS__CODE__OK, "code %d: %s", ep_status_code (reply->status),
                  reply->status && reply->status->message? reply->status->message: "");
    return reply;
}

//  Writes entity (a router or a service) at expected (0: CREATE); its revision.
static uint64_t
s_write (ep_rpc_client_t *client, Ep__Entity *entity, uint64_t expected)
{
    Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
    write.has_op = true;
    write.op = expected? EP__MODEL_WRITE__OP__UPDATE: EP__MODEL_WRITE__OP__CREATE;
    write.entity = entity;
    write.has_expected_version = expected > 0;
    write.expected_version = expected;
    static int s_writes;
    char request_id [32];
    snprintf (request_id, sizeof request_id, "w-%d", ++s_writes);
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.request_id = request_id;
    request.op_case = EP__MODEL_REQUEST__OP_WRITE;
    request.write = &write;
    Ep__ModelReply *reply = s_ok (client, &request);
    uint64_t revision = reply->revision;
    ep__model_reply__free_unpacked (reply, NULL);
    return revision;
}

static uint64_t
s_router (ep_rpc_client_t *client, const char *id)
{
    Ep__Router router = EP__ROUTER__INIT;
    router.id = (char *) id;
    Ep__Entity entity = EP__ENTITY__INIT;
    entity.kind_case = EP__ENTITY__KIND_ROUTER;
    entity.router = &router;
    return s_write (client, &entity, 0);
}

static uint64_t
s_service (ep_rpc_client_t *client, const char *id, const char *name, uint64_t expected)
{
    Ep__Service service = EP__SERVICE__INIT;
    service.id = (char *) id;
    service.name = (char *) name;
    Ep__Entity entity = EP__ENTITY__INIT;
    entity.kind_case = EP__ENTITY__KIND_SERVICE;
    entity.service = &service;
    return s_write (client, &entity, expected);
}

//  The model's revision, generation (33 bytes) and digest of every entity (65+ bytes).
static uint64_t
s_status (ep_rpc_client_t *client, char *generation, char *digest, size_t digest_size)
{
    Ep__StatusRequest status = EP__STATUS_REQUEST__INIT;
    status.has_digest = true;
    status.digest = true;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.op_case = EP__MODEL_REQUEST__OP_STATUS;
    request.status = &status;
    request.request_id = (char *) "";
    Ep__ModelReply *reply = s_ok (client, &request);
    uint64_t revision = reply->revision;
    snprintf (generation, 33, "%s", reply->generation? reply->generation: "");
    snprintf (digest, digest_size, "%s", reply->digest? reply->digest: "");
    ep__model_reply__free_unpacked (reply, NULL);
    return revision;
}

//  Runs edgeplane migrate --to etcd with the model's environment; its exit
//  status, its output in *out (caller frees).
static int
s_migrate (char **out)
{
    char *command = zsys_sprintf ("%s %s %s %s %s/edgeplane migrate --to etcd 2>&1", s_env [0],
                                  s_env [1], s_env [2], s_env [3], EP_BIN_DIR);
    int status = ep_run (command, out);
    zstr_free (&command);
    return status;
}

Test (model_migrate, an_embedded_model_goes_on_in_etcd_with_a_new_generation)
{
    s_proc = s_model (false);
    zcert_t *cert = ep_keys_load (s_keys, "operator");
    ep_rpc_client_t *client = ep_rpc_client_new (ep_proc_connect_endpoint (s_proc, "api"), cert,
                                                 s_server_key);
    char id [32], name [32];
    for (int i = 0; i < ROUTERS; i++) {
        snprintf (id, sizeof id, "r%03d", i);
        s_router (client, id);
    }
    for (int i = 0; i < SERVICES; i++) {
        snprintf (id, sizeof id, "s%03d", i);
        snprintf (name, sizeof name, "svc-%d", i);
        uint64_t version = s_service (client, id, name, 0);
        snprintf (name, sizeof name, "svc-%d-renamed", i);
        s_service (client, id, name, version);
    }
    char generation [33], digest [160];
    uint64_t revision = s_status (client, generation, digest, sizeof digest);
    cr_assert_eq (revision, ROUTERS + 2 * SERVICES);
    cr_assert (*digest && *generation);

    //  The model still runs on model.db: refused, and nothing is copied.
    char *out = NULL;
    cr_assert_neq (s_migrate (&out), 0, "migrated a running model: %s", out);
    cr_assert (strstr (out, "is running"), "%s", out);
    zstr_free (&out);

    ep_rpc_client_destroy (&client);
    cr_assert_eq (ep_proc_signal (s_proc, SIGTERM), 0);
    int status = ep_proc_wait_exit (s_proc, 10000);
    cr_assert (status != -1 && WIFEXITED (status) && WEXITSTATUS (status) == 0, "status %d", status);
    ep_proc_destroy (&s_proc);

    cr_assert_eq (s_migrate (&out), 0, "%s", out);
    char expected [96];
    snprintf (expected, sizeof expected, "copied %d entities", ROUTERS + SERVICES);
    cr_assert (strstr (out, expected), "%s", out);
    cr_assert (strstr (out, "EDGEPLANE_MODEL_STORE=etcd"), "says what to do next: %s", out);
    zstr_free (&out);

    s_proc = s_model (true);
    client = ep_rpc_client_new (ep_proc_connect_endpoint (s_proc, "api"), cert, s_server_key);
    char etcd_generation [33], etcd_digest [160];
    cr_assert_eq (s_status (client, etcd_generation, etcd_digest, sizeof etcd_digest), revision,
                  "the revision goes on");
    cr_assert_str_eq (etcd_digest, digest, "every entity, with its content and version");
    cr_assert (*etcd_generation && !streq (etcd_generation, generation),
               "a new generation (%s after %s): followers resync", etcd_generation, generation);
    //  The next write takes the next revision, and a CAS on a migrated
    //  entity sees its migrated version.
    cr_assert_eq (s_router (client, "after"), revision + 1);
    cr_assert_eq (s_service (client, "s000", "svc-0-again", ROUTERS + 2), revision + 2);
    ep_rpc_client_destroy (&client);
    ep_proc_destroy (&s_proc);

    //  Into a prefix that holds keys (the model's, now): refused.
    cr_assert_neq (s_migrate (&out), 0, "migrated into a prefix in use: %s", out);
    cr_assert (strstr (out, "empty prefix"), "%s", out);
    zstr_free (&out);
    zcert_destroy (&cert);
}

Test (model_migrate, a_backup_is_an_etcd_snapshot_and_its_restore_takes_a_new_generation)
{
    s_proc = s_model (true);
    zcert_t *cert = ep_keys_load (s_keys, "operator");
    ep_rpc_client_t *client = ep_rpc_client_new (ep_proc_connect_endpoint (s_proc, "api"), cert,
                                                 s_server_key);
    char id [32], name [32];
    for (int i = 0; i < ROUTERS; i++) {
        snprintf (id, sizeof id, "r%03d", i);
        s_router (client, id);
    }
    for (int i = 0; i < SERVICES; i++) {
        snprintf (id, sizeof id, "s%03d", i);
        snprintf (name, sizeof name, "svc-%d", i);
        s_service (client, id, name, 0);
    }
    char generation [33], digest [160];
    uint64_t revision = s_status (client, generation, digest, sizeof digest);
    cr_assert_eq (revision, ROUTERS + SERVICES);

    //  Through the CLI, as an operator does.
    char *snapshot = zsys_sprintf ("%s/model.snapshot", s_dir);
    char *command = zsys_sprintf ("%s %s/edgeplane backup %s --model-api=%s 2>&1", s_env [0],
                                  EP_BIN_DIR, snapshot, ep_proc_connect_endpoint (s_proc, "api"));
    char *out = NULL;
    cr_assert_eq (ep_run (command, &out), 0, "%s", out);
    char expected [128];
    snprintf (expected, sizeof expected, "backup of revision %llu written to %s",
              (unsigned long long) revision, snapshot);
    cr_assert (strstr (out, expected), "%s", out);
    zstr_free (&out);
    zstr_free (&command);
    //  etcd's own tool reads it (it checks the database's structure).
    command = zsys_sprintf ("ETCDCTL_API=3 etcdctl --write-out=json snapshot status %s 2>&1", snapshot);
    cr_assert_eq (ep_run (command, &out), 0, "%s", out);
    cr_assert (strstr (out, "\"totalKey\""), "%s", out);
    zstr_free (&out);
    zstr_free (&command);
    ep_rpc_client_destroy (&client);
    ep_proc_destroy (&s_proc);

    //  A new cluster from it: the model there has every acknowledged
    //  entity, a new generation, and takes the next write.
    const char *endpoint = NULL;
    s_restored = ep_etcd_restored_start (snapshot, &endpoint);
    cr_assert (s_restored, "etcdctl snapshot restore of %s or its member failed", snapshot);
    s_proc = s_model_on (true, endpoint);
    client = ep_rpc_client_new (ep_proc_connect_endpoint (s_proc, "api"), cert, s_server_key);
    char restored_generation [33], restored_digest [160];
    cr_assert_eq (s_status (client, restored_generation, restored_digest, sizeof restored_digest),
                  revision);
    cr_assert_str_eq (restored_digest, digest, "every entity, with its content and version");
    cr_assert (*restored_generation && !streq (restored_generation, generation),
               "a new generation (%s after %s): followers resync", restored_generation, generation);
    cr_assert_eq (s_router (client, "after"), revision + 1);
    ep_rpc_client_destroy (&client);
    ep_proc_destroy (&s_proc);
    ep_etcd_restored_stop (&s_restored);

    //  On the cluster it was taken from, the model keeps its generation.
    s_proc = s_model (true);
    client = ep_rpc_client_new (ep_proc_connect_endpoint (s_proc, "api"), cert, s_server_key);
    cr_assert_eq (s_status (client, restored_generation, restored_digest, sizeof restored_digest),
                  revision);
    cr_assert_str_eq (restored_generation, generation);
    ep_rpc_client_destroy (&client);
    ep_proc_destroy (&s_proc);
    zstr_free (&snapshot);
    zcert_destroy (&cert);
}
