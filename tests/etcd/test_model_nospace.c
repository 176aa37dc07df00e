/*  test_model_nospace.c: the model in etcd when etcd's quota is exceeded
    (NOSPACE). The suites share a three-member cluster that must not be
    filled, so this one starts its own single member (tests/support/
    etcd-cluster with EP_ETCD_MEMBERS=1, a 16 MiB --quota-backend-bytes),
    fills it through the model until a write is refused, and checks: the
    refusal is UNAVAILABLE and says what to do (compact, defrag, disarm,
    docs/ha.md), /readyz is 503 with the reason, the degraded gauge is 1,
    reads go on; then an operator's compact, defrag and alarm disarm
    (etcdctl) bring the model back by itself (its probe), writes are taken
    again, and every acknowledged write is still there. */
#include <criterion/criterion.h>
#include "ep_test.h"
#include "ep_keys.h"
#include "ep_rpc_client.h"
#include "model.pb-c.h"

#define CALL_MS     5000        //  reply deadline for a call that must be answered
#define QUOTA       (16 * 1024 * 1024)      //  etcd has no minimum; small fills fast
#define TAGS        200         //  per write: ~50 KB of tags, so NOSPACE within ~100 writes
#define MAX_WRITES  2000        //  a bound: the quota is reached well before
#define RECOVER_MS  15000       //  the probe runs every 500 ms

static char *s_dir;             //  this test's directory
static char *s_etcd_dir;        //  the member's data (on /dev/shm)
static char *s_endpoints;       //  its client endpoint
static char *s_keys;            //  the keys dir
static char *s_server_key;      //  the model's public key
static char *s_env [8];         //  the model's environment

static int
s_etcd (const char *command, char **out)
{
    char *line = zsys_sprintf ("EP_ETCD_MEMBERS=1 EP_ETCD_QUOTA_BYTES=%d %s/tests/support/etcd-cluster "
                               "%s %s 2>&1", QUOTA, EP_SOURCE_DIR, command, s_etcd_dir);
    int rc = ep_run (line, out);
    free (line);
    return rc;
}

//  etcdctl (v3) on the member; 0 or its exit status, output in *out.
static int
s_etcdctl (const char *args, char **out)
{
    char *line = zsys_sprintf ("ETCDCTL_API=3 etcdctl --endpoints=%s --command-timeout=10s %s 2>&1",
                               s_endpoints, args);
    int rc = ep_run (line, out);
    free (line);
    return rc;
}

static void
s_setup (void)
{
    zsys_init ();
    s_dir = ep_tmpdir_new ("model-nospace");
    s_etcd_dir = zsys_sprintf ("/dev/shm/edgeplane-nospace-%d", getpid ());
    char *out = NULL;
    int rc = s_etcd ("start", &out);
    cr_assert_eq (rc, 0, "etcd did not start: %s", out? out: "");
    free (out);
    char *path = zsys_sprintf ("%s/endpoints", s_etcd_dir);
    FILE *file = fopen (path, "r");
    cr_assert_not_null (file);
    char line [256] = "";
    cr_assert_not_null (fgets (line, sizeof line, file));
    fclose (file);
    free (path);
    line [strcspn (line, "\n")] = 0;
    s_endpoints = strdup (line);
    s_keys = zsys_sprintf ("%s/data/keys", s_dir);
    char err [256];
    cr_assert_eq (ep_keys_init (s_keys, false, err, sizeof err), 0, "%s", err);
    s_server_key = ep_keys_public_txt (s_keys, "model");
    s_env [0] = zsys_sprintf ("EDGEPLANE_DATA_DIR=%s/data", s_dir);
    s_env [1] = zsys_sprintf ("EDGEPLANE_BUS_PUB=ipc://%s/no-bus", s_dir);
    s_env [2] = zsys_sprintf ("EDGEPLANE_MODEL_STORE=etcd");
    s_env [3] = zsys_sprintf ("EDGEPLANE_ETCD_ENDPOINTS=%s", s_endpoints);
    //  Two change records kept and replies saved for a second (their lease
    //  lives a minute more): most of what the writes fill is history, which
    //  compaction and defragmentation free.
    s_env [4] = zsys_sprintf ("EDGEPLANE_MODEL_RETAIN=2");
    s_env [5] = zsys_sprintf ("EDGEPLANE_MODEL_REPLY_TTL=1s");
}

static void
s_teardown (void)
{
    if (s_etcd_dir) {
        char *out = NULL;
        if (s_etcd ("stop", &out) != 0)
            fprintf (stderr, "etcd-cluster stop: %s\n", out? out: "");
        free (out);
    }
    for (size_t i = 0; i < EP_COUNT (s_env); i++)
        zstr_free (&s_env [i]);
    zstr_free (&s_server_key);
    zstr_free (&s_keys);
    zstr_free (&s_endpoints);
    zstr_free (&s_etcd_dir);
    ep_tmpdir_remove (&s_dir);
}

TestSuite (model_nospace, .init = s_setup, .fini = s_teardown);

static const char *
s_message (const Ep__ModelReply *reply)
{
    return reply->status && reply->status->message? reply->status->message: "";
}

//  Writes router id with TAGS tags whose values are made of fill (a
//  CREATE if expected is 0, else an UPDATE at that version); the reply
//  (caller frees).
static Ep__ModelReply *
s_write (ep_rpc_client_t *client, const char *id, uint64_t expected, char fill)
{
    char value [251];
    memset (value, fill, sizeof value - 1);
    value [sizeof value - 1] = 0;
    Ep__Tag tags [TAGS], *tag_p [TAGS];
    char keys [TAGS][16];
    for (size_t i = 0; i < TAGS; i++) {
        ep__tag__init (&tags [i]);
        snprintf (keys [i], sizeof keys [i], "t%03zu", i);
        tags [i].key = keys [i];
        tags [i].value = value;
        tag_p [i] = &tags [i];
    }
    Ep__Router router = EP__ROUTER__INIT;
    router.id = (char *) id;
    router.n_tags = TAGS;
    router.tags = tag_p;
    Ep__Entity entity = EP__ENTITY__INIT;
    entity.kind_case = EP__ENTITY__KIND_ROUTER;
    entity.router = &router;
    Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
    write.has_op = true;
    write.op = expected? EP__MODEL_WRITE__OP__UPDATE: EP__MODEL_WRITE__OP__CREATE;
    write.entity = &entity;
    write.has_expected_version = expected > 0;
    write.expected_version = expected;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.request_id = (char *) "";
    request.op_case = EP__MODEL_REQUEST__OP_WRITE;
    request.write = &write;
    char err [256];
    Ep__ModelReply *reply = ep_rpc_call (client, &request, &ep__model_reply__descriptor, CALL_MS, 1,
                                         err, sizeof err);
    cr_assert_not_null (reply, "no reply to a write of %s: %s", id, err);
    return reply;
}

//  GET of router id: its version (meta.version), 0 if absent; the reply's
//  code in *code.
static uint64_t
s_get (ep_rpc_client_t *client, const char *id, Ep__Status__Code *code)
{
    Ep__ModelGet get = EP__MODEL_GET__INIT;
    get.has_type = true;
    get.type = EP__ENTITY_TYPE__ENTITY_ROUTER;
    get.id = (char *) id;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.request_id = (char *) "";
    request.op_case = EP__MODEL_REQUEST__OP_GET;
    request.get = &get;
    Ep__ModelReply *reply = ep_rpc_call (client, &request, &ep__model_reply__descriptor, CALL_MS, 1, NULL, 0);
    cr_assert_not_null (reply, "no reply to a GET");
    *code = ep_status_code (reply->status);
    uint64_t version = 0;
    if (reply->n_entities == 1 && reply->entities [0]->kind_case == EP__ENTITY__KIND_ROUTER
    &&  reply->entities [0]->router->meta)
        version = reply->entities [0]->router->meta->version;
    ep__model_reply__free_unpacked (reply, NULL);
    return version;
}

typedef struct {
    const char *http;
    bool ready;                 //  wanted
    char last [1024];           //  what /readyz said last
} s_readyz_t;

static bool
s_readyz_is (void *arg)
{
    s_readyz_t *wait = (s_readyz_t *) arg;
    char *body = ep_readyz (wait->http);
    snprintf (wait->last, sizeof wait->last, "%s", body? body: "");
    free (body);
    bool ready = strncmp (wait->last, "ready", 5) == 0;
    return ready == wait->ready;
}

static double
s_gauge (const char *http)
{
    char *page = ep_http_get (http, "/metrics");
    cr_assert_not_null (page);
    double value = ep_metric_value (page, "edgeplane_store_degraded{reason=\"etcd_nospace\"}");
    free (page);
    return value;
}

Test (model_nospace, nospace_refuses_writes_with_what_to_do_and_recovers_by_itself, .timeout = 240)
{
    const char *args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", "127.0.0.1:0", NULL };
    ep_proc_t *model = ep_proc_start ("edgeplane-model", args, (const char *const *) s_env, 20000);
    cr_assert_not_null (model, "edgeplane-model did not start on etcd");
    const char *http = ep_proc_endpoint (model, "http");
    cr_assert_eq (s_gauge (http), 0, "the series exists from the start, at 0");
    zcert_t *cert = ep_keys_load (s_keys, "operator");
    ep_rpc_client_t *client = ep_rpc_client_new (ep_proc_connect_endpoint (model, "api"),
                                                 cert, s_server_key);
    cr_assert_not_null (client);

    //  Fill: one router updated over and over (its old versions and the
    //  change records past retention are history) until etcd refuses.
    Ep__ModelReply *reply = s_write (client, "big", 0, 'a');
    cr_assert_eq (ep_status_code (reply->status), EP__STATUS__CODE__OK, "%s", s_message (reply));
    uint64_t acked = reply->revision;
    ep__model_reply__free_unpacked (reply, NULL);
    char *refusal = NULL;
    for (int i = 0; i < MAX_WRITES && !refusal; i++) {
        reply = s_write (client, "big", acked, (char) ('a' + i % 26));
        if (ep_status_code (reply->status) == EP__STATUS__CODE__OK) {
            cr_assert_eq (reply->revision, acked + 1, "consecutive revisions");
            acked = reply->revision;
        }
        else {
            cr_assert_eq (ep_status_code (reply->status), EP__STATUS__CODE__UNAVAILABLE, "code %d: %s",
                          ep_status_code (reply->status), s_message (reply));
            refusal = strdup (s_message (reply));
        }
        ep__model_reply__free_unpacked (reply, NULL);
    }
    cr_assert_not_null (refusal, "etcd never refused a write within %d writes", MAX_WRITES);
    cr_log_info ("NOSPACE after %llu writes: %s", (unsigned long long) acked, refusal);
    const char *says [] = { "NOSPACE", "database space exceeded", "etcdctl compact",
                            "etcdctl defrag", "etcdctl alarm disarm", "docs/ha.md" };
    for (size_t i = 0; i < EP_COUNT (says); i++)
        cr_assert (strstr (refusal, says [i]), "the refusal says %s: %s", says [i], refusal);

    //  Not ready, with the reason; the gauge; reads go on.
    s_readyz_t wait = { .http = http, .ready = false };
    cr_assert (ep_wait_until (s_readyz_is, &wait, 5000), "/readyz: %s", wait.last);
    cr_assert (strstr (wait.last, "etcd_nospace") && strstr (wait.last, "alarm disarm"),
               "/readyz: %s", wait.last);
    cr_assert_eq (s_gauge (http), 1);
    Ep__Status__Code code;
    cr_assert_eq (s_get (client, "big", &code), acked, "reads go on");
    cr_assert_eq (code, EP__STATUS__CODE__OK);
    //  The alarm stays: writes are still refused (no freeing by itself).
    reply = s_write (client, "big", acked, 'z');
    cr_assert_eq (ep_status_code (reply->status), EP__STATUS__CODE__UNAVAILABLE, "%s", s_message (reply));
    ep__model_reply__free_unpacked (reply, NULL);
    //  And the probes (every 500 ms) do not end the state while the alarm
    //  is raised: still not ready two seconds on.
    wait.ready = true;
    cr_assert (!ep_wait_until (s_readyz_is, &wait, 2000), "ready with the alarm raised: %s", wait.last);
    char *out = NULL;
    cr_assert_eq (s_etcdctl ("alarm list", &out), 0, "%s", out);
    cr_assert (strstr (out, "NOSPACE"), "alarm list: %s", out);
    zstr_free (&out);

    //  The runbook (docs/ha.md): compact at the current revision, defrag,
    //  disarm.
    cr_assert_eq (s_etcdctl ("get nothing -w json", &out), 0, "%s", out);
    const char *at = strstr (out, "\"revision\":");
    cr_assert_not_null (at, "%s", out);
    long long revision = atoll (at + strlen ("\"revision\":"));
    zstr_free (&out);
    char command [64];
    snprintf (command, sizeof command, "compact %lld --physical", revision);
    cr_assert_eq (s_etcdctl (command, &out), 0, "%s", out);
    zstr_free (&out);
    cr_assert_eq (s_etcdctl ("defrag", &out), 0, "%s", out);
    zstr_free (&out);
    cr_assert_eq (s_etcdctl ("alarm disarm", &out), 0, "%s", out);
    zstr_free (&out);

    //  Ready again by itself, with no write to tell it.
    wait.ready = true;
    cr_assert (ep_wait_until (s_readyz_is, &wait, RECOVER_MS), "/readyz: %s", wait.last);
    cr_assert_eq (s_gauge (http), 0);
    char *log = ep_proc_log (model);
    cr_assert (strstr (log, "the store takes writes again"), "%s", log);
    free (log);
    //  Nothing acknowledged was lost, and writes are taken at the next revision.
    cr_assert_eq (s_get (client, "big", &code), acked);
    reply = s_write (client, "big", acked, 'z');
    cr_assert_eq (ep_status_code (reply->status), EP__STATUS__CODE__OK, "%s", s_message (reply));
    cr_assert_eq (reply->revision, acked + 1);
    ep__model_reply__free_unpacked (reply, NULL);
    reply = s_write (client, "after", 0, 'y');
    cr_assert_eq (ep_status_code (reply->status), EP__STATUS__CODE__OK, "%s", s_message (reply));
    cr_assert_eq (reply->revision, acked + 2);
    ep__model_reply__free_unpacked (reply, NULL);
    cr_assert_eq (s_get (client, "big", &code), acked + 1);
    cr_assert_eq (s_get (client, "after", &code), acked + 2);

    free (refusal);
    ep_rpc_client_destroy (&client);
    zcert_destroy (&cert);
    ep_proc_destroy (&model);
}
