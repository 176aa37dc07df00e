/*  test_follower.c: ep_follower against the real edgeplane-bus and
    edgeplane-model, all over CURVE.

    The follower (with the "terminators" certificate, as that service will
    use it) and its view run in the test's main thread; an operator writes
    from a thread of its own through ep_rpc_client, so writes and following
    overlap as they do in production. Every scenario ends the same way: the
    follower, only pumped (never told to fetch), must reach the model's
    revision within a deadline, and its digest must equal the digest of a
    fresh paged snapshot read from the service. Processes are killed with
    SIGKILL and restarted on the same ports (ep_test_stable_port). No sleeps:
    every wait is on a socket or a condition with a deadline. */
#include <criterion/criterion.h>
#include "ep_test.h"
#include "ep_codec.h"
#include "ep_event_json.h"
#include "ep_follower.h"
#include "ep_keys.h"
#include "ep_rpc_client.h"
#include "ep_subscriber.h"
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

//  How long the follower may take to converge once writes stop.
#define CONVERGE_MS 15000

static char *s_dir;             //  data dir of this test
static char *s_keys;            //  its keys dir
static char *s_env_keys;        //  "EDGEPLANE_KEYS_DIR=..."
static char *s_env_data;        //  "EDGEPLANE_DATA_DIR=..." (the model's data)
static char *s_bus_key;         //  the bus's public key
static char *s_model_key;       //  the model's public key
static char s_bus_pub [64];     //  where publishers reach the bus (stable port)
static char s_bus_sub [64];     //  where subscribers reach the bus (stable port)
static char s_model_api [64];   //  the model's API (stable port)
static ep_proc_t *s_bus;        //  the bus
static ep_proc_t *s_model;      //  the model service
static zcert_t *s_operator;     //  the operator's certificate (main thread's client)
static zcert_t *s_follower_cert;    //  the terminators service's certificate
static ep_rpc_client_t *s_client;   //  the main thread's model client (operator)

//  A stable port not taken yet by this test.
static int
s_port (void)
{
    static int taken [8];
    static size_t n_taken;
    while (true) {
        int port = ep_test_stable_port ();
        bool fresh = true;
        for (size_t i = 0; i < n_taken; i++)
            fresh &= taken [i] != port;
        if (fresh) {
            EP_ASSERT (n_taken < EP_COUNT (taken));
            taken [n_taken++] = port;
            return port;
        }
    }
}

static ep_proc_t *
s_start_bus (const char *pub, const char *sub, const char *audit_log)
{
    char *flag = audit_log? zsys_sprintf ("--audit-log=%s", audit_log): NULL;
    const char *args [] = { "--pub-listen", pub, "--sub-listen", sub,
                            "--http-listen", "127.0.0.1:0", flag, NULL };
    const char *env [] = { s_env_keys, NULL };
    ep_proc_t *bus = ep_proc_start ("edgeplane-bus", args, env, 10000);
    free (flag);
    return bus;
}

static void
s_start_model (void)
{
    char *bus_pub = zsys_sprintf ("--bus-pub=%s", s_bus_pub);
    const char *args [] = { "--listen", s_model_api, "--http-listen", "127.0.0.1:0",
                            bus_pub, NULL };
    //  A stable instance id: a restart is a new epoch of the same source,
    //  which followers act on at once.
    const char *env [] = { s_env_keys, s_env_data, "EDGEPLANE_INSTANCE_ID=it", NULL };
    s_model = ep_proc_start ("edgeplane-model", args, env, 10000);
    free (bus_pub);
    cr_assert_not_null (s_model, "edgeplane-model did not start");
}

static void
s_kill (ep_proc_t **proc_p)
{
    ep_proc_signal (*proc_p, SIGKILL);
    cr_assert_neq (ep_proc_wait_exit (*proc_p, 5000), -1);
    ep_proc_destroy (proc_p);
}

static void
s_setup (void)
{
    s_dir = ep_tmpdir_new ("follower");
    s_keys = zsys_sprintf ("%s/keys", s_dir);
    s_env_keys = zsys_sprintf ("EDGEPLANE_KEYS_DIR=%s", s_keys);
    s_env_data = zsys_sprintf ("EDGEPLANE_DATA_DIR=%s/model", s_dir);
    char err [256];
    cr_assert_eq (ep_keys_init (s_keys, false, err, sizeof err), 0, "%s", err);
    s_bus_key = ep_keys_public_txt (s_keys, "bus");
    s_model_key = ep_keys_public_txt (s_keys, "model");
    s_operator = ep_keys_load (s_keys, "operator");
    s_follower_cert = ep_keys_load (s_keys, "terminators");
    cr_assert (s_bus_key && s_model_key && s_operator && s_follower_cert);
    snprintf (s_bus_pub, sizeof s_bus_pub, "tcp://127.0.0.1:%d", s_port ());
    snprintf (s_bus_sub, sizeof s_bus_sub, "tcp://127.0.0.1:%d", s_port ());
    snprintf (s_model_api, sizeof s_model_api, "tcp://127.0.0.1:%d", s_port ());
    s_bus = s_start_bus (s_bus_pub, s_bus_sub, NULL);
    cr_assert_not_null (s_bus, "edgeplane-bus did not start");
    s_start_model ();
    s_client = ep_rpc_client_new (s_model_api, s_operator, s_model_key);
}

static void
s_teardown (void)
{
    ep_rpc_client_destroy (&s_client);
    ep_proc_destroy (&s_model);
    ep_proc_destroy (&s_bus);
    zcert_destroy (&s_operator);
    zcert_destroy (&s_follower_cert);
    zstr_free (&s_bus_key);
    zstr_free (&s_model_key);
    zstr_free (&s_env_data);
    zstr_free (&s_env_keys);
    zstr_free (&s_keys);
    ep_tmpdir_remove (&s_dir);
}

//  ---------------------------------------------------------------------
//  Requests (any thread: each passes its own client)

static Ep__Status__Code
s_code (const Ep__ModelReply *reply)
{
    return reply->status && reply->status->has_code? reply->status->code: EP__STATUS__CODE__OK;
}

//  The model's current revision (main thread).
static uint64_t
s_model_revision (void)
{
    Ep__StatusRequest status = EP__STATUS_REQUEST__INIT;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.op_case = EP__MODEL_REQUEST__OP_STATUS;
    request.status = &status;
    char err [256];
    Ep__ModelReply *reply = ep_rpc_call (s_client, &request, &ep__model_reply__descriptor, 1000, 10, err, sizeof err);
    cr_assert_not_null (reply, "status: %s", err);
    cr_assert_eq (s_code (reply), EP__STATUS__CODE__OK);
    uint64_t revision = reply->revision;
    ep__model_reply__free_unpacked (reply, NULL);
    return revision;
}

//  Reads a whole snapshot (small pages, so paging is exercised) and
//  computes its digest; returns its pinned revision.
//  With diff_view, writes the first entity that differs from it (or is
//  missing there) into diff_with.
static uint64_t
s_snapshot_digest (uint8_t digest [EP_MODEL_DIGEST_SIZE], size_t *count_p,
                   ep_model_view_t *diff_view, char *diff_with, size_t diff_size)
{
    zlistx_t *replies = zlistx_new ();
    Ep__Entity **entities = NULL;
    size_t count = 0;
    uint64_t revision = 0;
    char *token = NULL;
    do {
        Ep__SnapshotRequest snapshot = EP__SNAPSHOT_REQUEST__INIT;
        snapshot.has_revision = true;
        snapshot.revision = revision;
        snapshot.page_token = token;
        snapshot.has_page_size = true;
        snapshot.page_size = 37;
        Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
        request.op_case = EP__MODEL_REQUEST__OP_SNAPSHOT;
        request.snapshot = &snapshot;
        char err [256];
        Ep__ModelReply *reply = ep_rpc_call (s_client, &request, &ep__model_reply__descriptor, 1000, 10, err, sizeof err);
        cr_assert_not_null (reply, "snapshot: %s", err);
        cr_assert_eq (s_code (reply), EP__STATUS__CODE__OK, "snapshot: %s", reply->status->message);
        cr_assert (reply->has_revision);
        cr_assert (!token || reply->revision == revision, "a later page moved to another revision");
        revision = reply->revision;
        entities = (Ep__Entity **) realloc (entities, (count + reply->n_entities + 1) * sizeof *entities);
        for (size_t i = 0; i < reply->n_entities; i++)
            entities [count++] = reply->entities [i];
        zstr_free (&token);
        if (reply->next_page_token && *reply->next_page_token)
            token = strdup (reply->next_page_token);
        zlistx_add_end (replies, reply);
    } while (token);
    ep_model_digest_entities (entities, count, digest);
    if (diff_with) {
        //  Names the first entity that differs, for the failure message.
        for (size_t i = 0; i < count && !diff_with [0]; i++) {
            const Ep__Entity *ours = ep_model_view_get (diff_view, ep_entity_type (entities [i]),
                                                        ep_entity_id (entities [i]));
            json_t *theirs_json = ep_message_json (&entities [i]->base);
            json_t *ours_json = ours? ep_message_json (&ours->base): json_null ();
            size_t theirs_size = ep__entity__get_packed_size (entities [i]);
            size_t ours_size = ours? ep__entity__get_packed_size (ours): 0;
            uint8_t *theirs_bytes = (uint8_t *) malloc (theirs_size + 1);
            uint8_t *ours_bytes = (uint8_t *) malloc (ours_size + 1);
            ep__entity__pack (entities [i], theirs_bytes);
            if (ours)
                ep__entity__pack (ours, ours_bytes);
            bool same = theirs_size == ours_size && memcmp (theirs_bytes, ours_bytes, ours_size) == 0;
            free (theirs_bytes);
            free (ours_bytes);
            if (!same) {
                char *a = json_dumps (theirs_json, JSON_COMPACT | JSON_SORT_KEYS);
                char *b = json_dumps (ours_json, JSON_COMPACT | JSON_SORT_KEYS);
                snprintf (diff_with, diff_size, "model: %s; view: %s", a, b);
                free (a);
                free (b);
            }
            json_decref (theirs_json);
            json_decref (ours_json);
        }
    }
    free (entities);
    for (Ep__ModelReply *reply = (Ep__ModelReply *) zlistx_first (replies); reply;
         reply = (Ep__ModelReply *) zlistx_next (replies))
        ep__model_reply__free_unpacked (reply, NULL);
    zlistx_destroy (&replies);
    if (count_p)
        *count_p = count;
    return revision;
}

//  ---------------------------------------------------------------------
//  Entities

static Ep__Tag **
s_tags (size_t n, size_t value_len, const char *seed)
{
    Ep__Tag **tags = (Ep__Tag **) calloc (n + 1, sizeof (Ep__Tag *));
    for (size_t i = 0; i < n; i++) {
        tags [i] = (Ep__Tag *) malloc (sizeof (Ep__Tag));
        ep__tag__init (tags [i]);
        tags [i]->key = zsys_sprintf ("k%zu", i);
        tags [i]->value = (char *) malloc (value_len + 1);
        for (size_t j = 0; j < value_len; j++)
            tags [i]->value [j] = seed [(i + j) % strlen (seed)];
        tags [i]->value [value_len] = 0;
    }
    return tags;
}

static Ep__Entity *
s_service (const char *id, const char *name, size_t n_tags)
{
    Ep__Service *service = (Ep__Service *) malloc (sizeof (Ep__Service));
    ep__service__init (service);
    service->id = strdup (id);
    service->name = name? strdup (name): NULL;
    service->n_tags = n_tags;
    service->tags = n_tags? s_tags (n_tags, 8, name? name: id): NULL;
    Ep__Entity *entity = (Ep__Entity *) malloc (sizeof (Ep__Entity));
    ep__entity__init (entity);
    entity->kind_case = EP__ENTITY__KIND_SERVICE;
    entity->service = service;
    return entity;
}

//  A router hosting the n_hosted services (NULL for none), with n_tags tags
//  of value_len characters.
static Ep__Entity *
s_router (const char *id, const char *name, char *const *hosted, size_t n_hosted,
          size_t n_tags, size_t value_len)
{
    Ep__Router *router = (Ep__Router *) malloc (sizeof (Ep__Router));
    ep__router__init (router);
    router->id = strdup (id);
    router->name = name? strdup (name): NULL;
    router->n_hosted = n_hosted;
    router->hosted = n_hosted? (Ep__HostedService **) calloc (n_hosted, sizeof (void *)): NULL;
    for (size_t i = 0; i < n_hosted; i++) {
        Ep__HostedService *h = (Ep__HostedService *) malloc (sizeof (Ep__HostedService));
        ep__hosted_service__init (h);
        h->service_id = strdup (hosted [i]);
        h->has_cost = true;
        h->cost = (uint32_t) (i * 10);
        h->has_precedence = true;
        h->precedence = i % 2? EP__PRECEDENCE__PRECEDENCE_REQUIRED: EP__PRECEDENCE__PRECEDENCE_DEFAULT;
        router->hosted [i] = h;
    }
    router->n_tags = n_tags;
    router->tags = n_tags? s_tags (n_tags, value_len, name? name: id): NULL;
    Ep__Entity *entity = (Ep__Entity *) malloc (sizeof (Ep__Entity));
    ep__entity__init (entity);
    entity->kind_case = EP__ENTITY__KIND_ROUTER;
    entity->router = router;
    return entity;
}

//  A write taking over entity (NULL for DELETE).
static Ep__ModelWrite *
s_write_new (Ep__ModelWrite__Op op, Ep__Entity *entity, Ep__EntityType type, const char *id)
{
    Ep__ModelWrite *write = (Ep__ModelWrite *) malloc (sizeof (Ep__ModelWrite));
    ep__model_write__init (write);
    write->has_op = true;
    write->op = op;
    write->entity = entity;
    if (!entity) {
        EP_ASSERT (id);
        write->has_type = true;
        write->type = type;
        write->id = strdup (id);
    }
    return write;
}

//  Sends the writes (one write, or a txn when n > 1), freeing them. Returns
//  the status code (or -1 with err if no reply) and the revision in *revision_p.
static int
s_send_writes (ep_rpc_client_t *client, Ep__ModelWrite **writes, size_t n, int attempts,
               uint64_t *revision_p, char *err, size_t errlen)
{
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    Ep__ModelTxn txn = EP__MODEL_TXN__INIT;
    if (n == 1) {
        request.op_case = EP__MODEL_REQUEST__OP_WRITE;
        request.write = writes [0];
    }
    else {
        txn.n_writes = n;
        txn.writes = writes;
        request.op_case = EP__MODEL_REQUEST__OP_TXN;
        request.txn = &txn;
    }
    Ep__ModelReply *reply = ep_rpc_call (client, &request, &ep__model_reply__descriptor, 1000, attempts, err, errlen);
    int code = -1;
    if (reply) {
        code = (int) s_code (reply);
        if (code != EP__STATUS__CODE__OK)
            snprintf (err, errlen, "%s", reply->status->message? reply->status->message: "");
        *revision_p = reply->revision;
        ep__model_reply__free_unpacked (reply, NULL);
    }
    for (size_t i = 0; i < n; i++)
        ep__model_write__free_unpacked (writes [i], NULL);
    return code;
}

//  One write from the main thread that must succeed; returns its revision.
static uint64_t
s_must_write (Ep__ModelWrite **writes, size_t n)
{
    char err [256] = "";
    uint64_t revision = 0;
    int code = s_send_writes (s_client, writes, n, 10, &revision, err, sizeof err);
    cr_assert_eq (code, EP__STATUS__CODE__OK, "write failed (%d): %s", code, err);
    return revision;
}

//  ---------------------------------------------------------------------
//  The operator: a thread writing a random but valid mix of creates,
//  updates and deletes of services and routers hosting them (single
//  writes and small transactions) until told to stop.

typedef struct {
    pthread_t thread;           //  the writer
    bool tolerant;              //  the model may restart: ALREADY_EXISTS/NOT_FOUND on a retry are fine
    atomic_bool stop;           //  set by the test
    atomic_int done;            //  writes answered OK so far
    atomic_ullong revision;     //  revision of the last write answered
    char error [512];           //  first failure, "" if none
    unsigned seed;              //  for rand_r
    char *services [64];        //  ids of the services that exist
    size_t n_services;          //  how many
    char *routers [64];         //  ids of the routers that exist
    size_t n_routers;           //  how many
    int next_id;                //  for fresh ids
} s_writer_t;

static char *
s_pick (s_writer_t *self, char **ids, size_t n)
{
    return ids [rand_r (&self->seed) % n];
}

//  Up to 3 distinct services for a router to host; returns how many.
static size_t
s_pick_hosted (s_writer_t *self, char **out)
{
    size_t want = self->n_services? rand_r (&self->seed) % 4: 0, n = 0;
    for (size_t i = 0; i < want; i++) {
        char *id = s_pick (self, self->services, self->n_services);
        bool dup = false;
        for (size_t j = 0; j < n; j++)
            dup |= streq (out [j], id);
        if (!dup)
            out [n++] = id;
    }
    return n;
}

static void
s_forget (char **ids, size_t *n, const char *id)
{
    for (size_t i = 0; i < *n; i++)
        if (streq (ids [i], id)) {
            free (ids [i]);
            ids [i] = ids [--*n];
            return;
        }
}

//  Builds the next writes; the local bookkeeping assumes they succeed.
static size_t
s_next_writes (s_writer_t *self, Ep__ModelWrite **writes)
{
    int dice = rand_r (&self->seed) % 100;
    char id [32], name [48];
    char *hosted [3];
    size_t n_hosted;
    snprintf (name, sizeof name, "name-%d", self->next_id);
    if (dice < 15 || self->n_services < 3) {
        if (self->n_services < EP_COUNT (self->services)) {
            snprintf (id, sizeof id, "svc-%d", self->next_id++);
            self->services [self->n_services++] = strdup (id);
            writes [0] = s_write_new (EP__MODEL_WRITE__OP__CREATE, s_service (id, name, 2), 0, NULL);
            return 1;
        }
        dice = 50;
    }
    if (dice < 40 || self->n_routers < 3) {
        if (self->n_routers < EP_COUNT (self->routers)) {
            snprintf (id, sizeof id, "rtr-%d", self->next_id++);
            n_hosted = s_pick_hosted (self, hosted);
            writes [0] = s_write_new (EP__MODEL_WRITE__OP__CREATE,
                                      s_router (id, name, hosted, n_hosted, 3, 12), 0, NULL);
            self->routers [self->n_routers++] = strdup (id);
            return 1;
        }
        dice = 50;
    }
    if (dice < 65) {
        //  A patch: a new name and hosted list (or clearing it).
        char *router = s_pick (self, self->routers, self->n_routers);
        n_hosted = s_pick_hosted (self, hosted);
        Ep__Entity *patch = s_router (router, name, hosted, n_hosted, 0, 0);
        writes [0] = s_write_new (EP__MODEL_WRITE__OP__UPDATE, patch, 0, NULL);
        if (n_hosted == 0) {
            writes [0]->n_clear = 1;
            writes [0]->clear = (char **) malloc (sizeof (char *));
            writes [0]->clear [0] = strdup ("hosted");
        }
        self->next_id++;
        return 1;
    }
    if (dice < 75) {
        char *service = s_pick (self, self->services, self->n_services);
        writes [0] = s_write_new (EP__MODEL_WRITE__OP__UPDATE, s_service (service, name, 1), 0, NULL);
        self->next_id++;
        return 1;
    }
    if (dice < 85 && self->n_services > 3) {
        //  Unhosts it from every router in the same revision.
        char *service = strdup (s_pick (self, self->services, self->n_services));
        writes [0] = s_write_new (EP__MODEL_WRITE__OP__DELETE, NULL, EP__ENTITY_TYPE__ENTITY_SERVICE, service);
        s_forget (self->services, &self->n_services, service);
        free (service);
        return 1;
    }
    if (dice < 92 && self->n_routers > 3) {
        char *router = strdup (s_pick (self, self->routers, self->n_routers));
        writes [0] = s_write_new (EP__MODEL_WRITE__OP__DELETE, NULL, EP__ENTITY_TYPE__ENTITY_ROUTER, router);
        s_forget (self->routers, &self->n_routers, router);
        free (router);
        return 1;
    }
    //  A transaction: a new service, a router updated to host it, and a
    //  new router hosting it too.
    if (self->n_services < EP_COUNT (self->services) && self->n_routers < EP_COUNT (self->routers)) {
        char service [32], router [32];
        snprintf (service, sizeof service, "svc-%d", self->next_id++);
        snprintf (router, sizeof router, "rtr-%d", self->next_id++);
        char *one [] = { service };
        writes [0] = s_write_new (EP__MODEL_WRITE__OP__CREATE, s_service (service, name, 0), 0, NULL);
        writes [1] = s_write_new (EP__MODEL_WRITE__OP__UPDATE,
                                  s_router (s_pick (self, self->routers, self->n_routers),
                                            NULL, one, 1, 0, 0), 0, NULL);
        writes [2] = s_write_new (EP__MODEL_WRITE__OP__CREATE,
                                  s_router (router, name, one, 1, 1, 4), 0, NULL);
        self->services [self->n_services++] = strdup (service);
        self->routers [self->n_routers++] = strdup (router);
        return 3;
    }
    char *router = s_pick (self, self->routers, self->n_routers);
    writes [0] = s_write_new (EP__MODEL_WRITE__OP__UPDATE, s_router (router, name, NULL, 0, 2, 6), 0, NULL);
    return 1;
}

static void *
s_writer_run (void *arg)
{
    s_writer_t *self = (s_writer_t *) arg;
    zcert_t *cert = ep_keys_load (s_keys, "operator");
    ep_rpc_client_t *client = ep_rpc_client_new (s_model_api, cert, s_model_key);
    while (!atomic_load (&self->stop) && !self->error [0]) {
        Ep__ModelWrite *writes [3];
        size_t n = s_next_writes (self, writes);
        char err [256] = "";
        uint64_t revision = 0;
        //  Enough attempts to ride out a model restart.
        int code = s_send_writes (client, writes, n, 15, &revision, err, sizeof err);
        if (code == EP__STATUS__CODE__OK) {
            atomic_store (&self->revision, revision);
            atomic_fetch_add (&self->done, 1);
        }
        else
        if (!(self->tolerant && (code == EP__STATUS__CODE__ALREADY_EXISTS
                              || code == EP__STATUS__CODE__NOT_FOUND)))
            snprintf (self->error, sizeof self->error, "write %d failed (code %d): %s",
                      atomic_load (&self->done) + 1, code, err);
    }
    ep_rpc_client_destroy (&client);
    zcert_destroy (&cert);
    return NULL;
}

static void
s_writer_start (s_writer_t *self, unsigned seed, bool tolerant)
{
    memset (self, 0, sizeof *self);
    self->seed = seed;
    self->tolerant = tolerant;
    cr_assert_eq (pthread_create (&self->thread, NULL, s_writer_run, self), 0);
}

//  Stops the writer and checks it never failed.
static void
s_writer_stop (s_writer_t *self)
{
    atomic_store (&self->stop, true);
    pthread_join (self->thread, NULL);
    for (size_t i = 0; i < self->n_services; i++)
        free (self->services [i]);
    for (size_t i = 0; i < self->n_routers; i++)
        free (self->routers [i]);
    cr_assert_str_empty (self->error, "the operator's writes failed: %s", self->error);
}

//  ---------------------------------------------------------------------
//  The follower, pumped from the main thread

typedef struct {
    ep_model_view_t *view;      //  the follower's copy
    ep_follower_t *follower;    //  keeps it up to date
    zpoller_t *poller;          //  on its socket
} s_follow_t;

static void
s_follow_new (s_follow_t *self)
{
    self->view = ep_model_view_new ();
    self->follower = ep_follower_new (s_bus_sub, s_model_api, s_follower_cert,
                                      s_bus_key, s_model_key, self->view);
    cr_assert_not_null (self->follower);
    //  Short retries so a restarted model is reached quickly.
    ep_follower_set_rpc_timeout (self->follower, 1000);
    ep_follower_set_retry (self->follower, 50, 500);
    self->poller = zpoller_new (ep_follower_socket (self->follower),
                                ep_follower_rpc_socket (self->follower), NULL);
}

static void
s_follow_destroy (s_follow_t *self)
{
    zpoller_destroy (&self->poller);
    ep_follower_destroy (&self->follower);
    ep_model_view_destroy (&self->view);
}

//  Runs the follower (the caller's event loop) until cond (arg) holds or
//  timeout_ms passes; cond NULL runs it for the whole time. Returns cond's
//  last value.
static bool
s_pump (s_follow_t *self, bool (*cond) (s_follow_t *, void *), void *arg, int timeout_ms)
{
    int64_t deadline = ep_mono_ms () + timeout_ms;
    while (true) {
        if (cond && cond (self, arg))
            return true;
        int64_t left = deadline - ep_mono_ms ();
        if (left <= 0)
            return cond? cond (self, arg): true;
        int64_t wait = ep_follower_tick (self->follower);
        if (wait > left)
            wait = left;
        //  Woken by a message or the follower's next deadline, and at
        //  least every 20 ms to look at conditions that other threads
        //  (the operator) or processes (a bus's audit log) change.
        if (zpoller_wait (self->poller, (int) (wait < 20? wait: 20)))
            ep_follower_handle (self->follower);
    }
}

static bool
s_is_live (s_follow_t *self, void *arg)
{
    (void) arg;
    return ep_follower_ready (self->follower) && streq (ep_follower_state (self->follower), "live");
}

static bool
s_reached (s_follow_t *self, void *arg)
{
    return ep_model_view_revision (self->view) >= *(uint64_t *) arg;
}

//  The writer and the count it must reach, for s_pump conditions.
typedef struct {
    s_writer_t *writer;         //  the operator
    int done;                   //  writes to wait for
} s_progress_t;

static bool
s_writer_reached (s_follow_t *self, void *arg)
{
    (void) self;
    s_progress_t *progress = (s_progress_t *) arg;
    return atomic_load (&progress->writer->done) >= progress->done
        || progress->writer->error [0];
}

//  Prints what the services logged, for a failure message.
static void
s_dump_logs (void)
{
    ep_proc_t *procs [] = { s_bus, s_model };
    const char *names [] = { "bus", "model" };
    for (size_t i = 0; i < EP_COUNT (procs); i++) {
        char *log = procs [i]? ep_proc_log (procs [i]): NULL;
        fprintf (stderr, "--- %s log:\n%s\n", names [i], log? log: "(none)");
        free (log);
    }
}

static void
s_wait_live (s_follow_t *self)
{
    if (!s_pump (self, s_is_live, NULL, 20000))
        s_dump_logs ();
    cr_assert (s_is_live (self, NULL),
               "the follower never went live (state %s, error \"%s\")",
               ep_follower_state (self->follower), ep_follower_last_error (self->follower));
}

//  Lets the follower run (no writes any more) until it holds the model's
//  revision, then compares its digest with a fresh snapshot's.
static void
s_assert_converged (s_follow_t *self)
{
    uint64_t target = s_model_revision ();
    bool reached = s_pump (self, s_reached, &target, CONVERGE_MS);
    cr_assert (reached, "the follower is at revision %llu, the model at %llu (state %s, error \"%s\")",
               (unsigned long long) ep_model_view_revision (self->view),
               (unsigned long long) target, ep_follower_state (self->follower),
               ep_follower_last_error (self->follower));
    cr_assert_eq (ep_model_view_revision (self->view), target,
                  "the follower is ahead of the model: %llu > %llu",
                  (unsigned long long) ep_model_view_revision (self->view),
                  (unsigned long long) target);
    uint8_t theirs [EP_MODEL_DIGEST_SIZE], ours [EP_MODEL_DIGEST_SIZE];
    size_t count = 0;
    static char diff [65536];
    diff [0] = 0;
    uint64_t at = s_snapshot_digest (theirs, &count, self->view, diff, sizeof diff);
    cr_assert_eq (at, target, "the model moved on during the check");
    ep_model_view_digest (self->view, ours);
    char theirs_hex [EP_MODEL_DIGEST_HEX_SIZE], ours_hex [EP_MODEL_DIGEST_HEX_SIZE];
    cr_assert_str_eq (ep_model_digest_hex (ours, ours_hex), ep_model_digest_hex (theirs, theirs_hex),
                      "digests differ at revision %llu (%zu entities in the model, %zu in the view): %s",
                      (unsigned long long) target, count, ep_model_view_size (self->view), diff);
    cr_assert_eq (ep_model_view_size (self->view), count);
}

static s_progress_t
s_progress (s_writer_t *writer, int more)
{
    return (s_progress_t) { writer, atomic_load (&writer->done) + more };
}

//  Pumps the follower until the writer has made more writes.
static void
s_pump_writes (s_follow_t *follow, s_writer_t *writer, int more, int timeout_ms)
{
    s_progress_t progress = s_progress (writer, more);
    cr_assert (s_pump (follow, s_writer_reached, &progress, timeout_ms),
               "the operator made %d writes of %d in %d ms", atomic_load (&writer->done),
               progress.done, timeout_ms);
    cr_assert_str_empty (writer->error, "%s", writer->error);
}

static bool
s_writer_at (void *arg)
{
    return s_writer_reached (NULL, arg);
}

//  ---------------------------------------------------------------------

Test (follower, steady_state_follows_every_write_from_the_stream,
      .init = s_setup, .fini = s_teardown, .timeout = 90)
{
    s_writer_t writer;
    s_writer_start (&writer, 1, false);
    //  The follower joins a model that already holds something.
    s_progress_t progress = s_progress (&writer, 60);
    cr_assert (ep_wait_until (s_writer_at, &progress, 20000));
    s_follow_t follow;
    s_follow_new (&follow);
    s_wait_live (&follow);
    cr_assert_gt (ep_model_view_size (follow.view), 0, "the snapshot was empty");
    s_pump_writes (&follow, &writer, 1000, 30000);
    s_writer_stop (&writer);
    s_assert_converged (&follow);
    //  Nothing was lost, so nothing was fetched: every change after the
    //  snapshot came from the stream, and no false gap was reported.
    cr_assert_eq (ep_follower_snapshots (follow.follower), 1);
    cr_assert_eq (ep_follower_resyncs (follow.follower), 0);
    cr_assert_eq (ep_follower_gaps (follow.follower), 0);
    cr_assert_eq (ep_follower_catchups (follow.follower), 0);
    s_follow_destroy (&follow);
}

Test (follower, bus_killed_and_restarted_during_writes,
      .init = s_setup, .fini = s_teardown, .timeout = 90)
{
    s_follow_t follow;
    s_follow_new (&follow);
    s_wait_live (&follow);
    s_writer_t writer;
    s_writer_start (&writer, 2, false);
    s_pump_writes (&follow, &writer, 100, 30000);

    s_kill (&s_bus);
    //  Writes go on while there is no bus: the follower hears nothing, so
    //  it must notice the silence and fetch them from the API.
    s_pump_writes (&follow, &writer, 3, 10000);
    uint64_t written = atomic_load (&writer.revision);
    cr_assert (s_pump (&follow, s_reached, &written, 15000),
               "with the bus down, the follower stayed at %llu (the model is at %llu)",
               (unsigned long long) ep_model_view_revision (follow.view),
               (unsigned long long) written);
    cr_assert_gt (ep_follower_catchups (follow.follower), 0,
                  "caught up without a catch-up?");

    s_bus = s_start_bus (s_bus_pub, s_bus_sub, NULL);
    cr_assert_not_null (s_bus, "the bus did not restart on its ports");
    uint64_t catchups = ep_follower_catchups (follow.follower);
    s_pump_writes (&follow, &writer, 100, 30000);
    s_writer_stop (&writer);
    s_assert_converged (&follow);
    //  The stream came back: the follower fetched once more on resuming
    //  (what was published while the bus was away may be lost).
    cr_assert_gt (ep_follower_catchups (follow.follower), catchups);
    cr_assert_eq (ep_follower_resyncs (follow.follower), 0, "a catch-up should have been enough");
    s_follow_destroy (&follow);
}

//  True once the audit log at path holds the model.change of revision.
typedef struct {
    const char *path;           //  the decoy bus's audit log
    uint64_t revision;          //  the change looked for
} s_audit_wait_t;

static bool
s_audited (s_follow_t *follow, void *arg)
{
    (void) follow;
    s_audit_wait_t *wait = (s_audit_wait_t *) arg;
    FILE *in = fopen (wait->path, "r");
    bool found = false;
    char line [65536];
    while (in && !found && fgets (line, sizeof line, in)) {
        json_t *json = json_loads (line, 0, NULL);
        found = json && streq (json_string_value (json_object_get (json, "namespace")) ?: "", "model")
             && streq (json_string_value (json_object_get (json, "type")) ?: "", "change")
             && (uint64_t) json_integer_value (json_object_get (json, "revision")) == wait->revision;
        json_decref (json);
    }
    if (in)
        fclose (in);
    return found;
}

Test (follower, last_change_lost_before_a_quiet_period,
      .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    s_follow_t follow;
    s_follow_new (&follow);
    s_wait_live (&follow);
    for (int i = 0; i < 10; i++) {
        char id [16];
        snprintf (id, sizeof id, "svc-%d", i);
        Ep__ModelWrite *write = s_write_new (EP__MODEL_WRITE__OP__CREATE, s_service (id, id, 1), 0, NULL);
        s_must_write (&write, 1);
    }
    uint64_t before = s_model_revision ();
    cr_assert (s_pump (&follow, s_reached, &before, 10000));
    uint64_t gaps = ep_follower_gaps (follow.follower);
    uint64_t catchups = ep_follower_catchups (follow.follower);

    //  The last write happens while the bus is down. Its model.change is
    //  not dropped at once: the model's PUB socket keeps it queued for the
    //  old connection and sends it to whatever bus comes back. So a decoy
    //  bus (same publisher port, nobody subscribed) takes it first, which
    //  makes the loss certain; then the real bus returns, and no write
    //  follows: only the model's heartbeats (or the follower's polling of a
    //  silent stream) can tell the follower what it missed.
    s_kill (&s_bus);
    Ep__ModelWrite *write = s_write_new (EP__MODEL_WRITE__OP__CREATE, s_service ("last", "last", 1), 0, NULL);
    uint64_t last = s_must_write (&write, 1);
    char *audit = zsys_sprintf ("%s/decoy.jsonl", s_dir);
    ep_proc_t *decoy = s_start_bus (s_bus_pub, "tcp://127.0.0.1:*", audit);
    cr_assert_not_null (decoy);
    s_audit_wait_t wait = { audit, last };
    cr_assert (s_pump (&follow, s_audited, &wait, 10000),
               "the change of revision %llu never reached the decoy bus", (unsigned long long) last);
    s_kill (&decoy);
    free (audit);
    s_bus = s_start_bus (s_bus_pub, s_bus_sub, NULL);
    cr_assert_not_null (s_bus, "the bus did not restart on its ports");

    s_assert_converged (&follow);
    cr_assert_not_null (ep_model_view_get (follow.view, EP__ENTITY_TYPE__ENTITY_SERVICE, "last"));
    cr_assert (ep_follower_gaps (follow.follower) > gaps
            || ep_follower_catchups (follow.follower) > catchups,
               "the follower converged without noticing a loss");
    s_follow_destroy (&follow);
}

//  ---------------------------------------------------------------------
//  A large transaction, split into parts on the stream

#define BIG_ROUTERS 50          //  routers in the big transaction
#define BIG_TAGS    100         //  tags per router
#define BIG_VALUE   250         //  characters per tag value: ~1.3 MB in all

//  Writes the big transaction (a service and BIG_ROUTERS routers hosting
//  it, ids prefix-0..); returns its revision.
static uint64_t
s_big_txn (const char *prefix)
{
    Ep__ModelWrite *writes [BIG_ROUTERS + 1];
    char service [64];
    snprintf (service, sizeof service, "%s-svc", prefix);
    char *hosted [] = { service };
    writes [0] = s_write_new (EP__MODEL_WRITE__OP__CREATE, s_service (service, service, 1), 0, NULL);
    for (int i = 0; i < BIG_ROUTERS; i++) {
        char id [64];
        snprintf (id, sizeof id, "%s-%d", prefix, i);
        writes [i + 1] = s_write_new (EP__MODEL_WRITE__OP__CREATE,
                                      s_router (id, id, hosted, 1, BIG_TAGS, BIG_VALUE), 0, NULL);
    }
    return s_must_write (writes, BIG_ROUTERS + 1);
}

typedef struct {
    ep_model_view_t *view;      //  the follower's view
    uint64_t revision;          //  the big revision, 0 until known
    size_t seen;                //  observer calls for it
    size_t calls_before_whole;  //  calls made while the view did not hold it all
    uint64_t other_revisions;   //  calls for any other revision
    size_t partial_states;      //  loop iterations that saw some but not all routers
} s_atomic_t;

//  How many of the big routers the view holds.
static size_t
s_big_present (ep_model_view_t *view)
{
    size_t present = 0;
    for (int i = 0; i < BIG_ROUTERS; i++) {
        char id [64];
        snprintf (id, sizeof id, "big-%d", i);
        present += ep_model_view_get (view, EP__ENTITY_TYPE__ENTITY_ROUTER, id) != NULL;
    }
    return present;
}

static void
s_atomic_observer (void *arg, const ep_model_event_t *event)
{
    s_atomic_t *self = (s_atomic_t *) arg;
    if (strncmp (event->id, "big-", 4) != 0) {
        self->other_revisions++;
        return;
    }
    if (self->seen == 0)
        self->revision = event->revision;
    if (event->revision == self->revision)
        self->seen++;
    else
        self->other_revisions++;
    //  Called after the whole revision is applied: every entity of it is
    //  already there, whichever op is being reported.
    if (s_big_present (self->view) != BIG_ROUTERS
    ||  !ep_model_view_get (self->view, EP__ENTITY_TYPE__ENTITY_SERVICE, "big-svc"))
        self->calls_before_whole++;
}

//  Checked between every step of the follower: all or nothing.
static bool
s_atomic_reached (s_follow_t *follow, void *arg)
{
    s_atomic_t *self = (s_atomic_t *) arg;
    size_t present = s_big_present (follow->view);
    if (present != 0 && present != BIG_ROUTERS)
        self->partial_states++;
    return self->revision && ep_model_view_revision (follow->view) >= self->revision;
}

Test (follower, large_transaction_in_parts_is_applied_whole,
      .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    s_follow_t follow;
    s_follow_new (&follow);
    s_atomic_t atomic = { .view = follow.view };
    ep_model_view_set_observer (follow.view, s_atomic_observer, &atomic);
    s_wait_live (&follow);
    //  A subscriber of our own counts the parts on the wire.
    zcert_t *cert = ep_keys_load (s_keys, "subscriber");
    ep_subscriber_t *wire = ep_subscriber_new (s_bus_sub, cert, s_bus_key, EP_CODEC_DEFAULT_CAP, NULL, NULL);
    ep_subscriber_subscribe (wire, "model.change");
    cr_assert_eq (ep_subscriber_wait_stream (wire, "model", 10000), 0);

    uint64_t revision = s_big_txn ("big");
    cr_assert (s_pump (&follow, s_atomic_reached, &atomic, CONVERGE_MS),
               "the follower never applied revision %llu (at %llu)", (unsigned long long) revision,
               (unsigned long long) ep_model_view_revision (follow.view));
    cr_assert_eq (atomic.revision, revision);
    cr_assert_eq (atomic.seen, BIG_ROUTERS + 1, "the observer saw %zu of the %d entities",
                  atomic.seen, BIG_ROUTERS + 1);
    cr_assert_eq (atomic.calls_before_whole, 0, "the observer ran before the revision was whole");
    cr_assert_eq (atomic.partial_states, 0, "the view held part of the revision");
    cr_assert_eq (atomic.other_revisions, 0);

    //  It was indeed split.
    uint32_t parts = 0, got = 0;
    while (got == 0 || got < parts) {
        Ep__Event *event = ep_subscriber_recv (wire, 5000, NULL);
        cr_assert_not_null (event, "the parts of revision %llu did not all arrive", (unsigned long long) revision);
        if (event->model_change && event->model_change->revision == revision) {
            parts = event->model_change->parts;
            got++;
        }
    }
    cr_assert_gt (parts, 1, "the transaction was not split: make it larger");
    s_assert_converged (&follow);
    ep_subscriber_destroy (&wire);
    zcert_destroy (&cert);
    s_follow_destroy (&follow);
}

Test (follower, catches_up_over_revisions_larger_than_a_reply,
      .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    s_follow_t follow;
    s_follow_new (&follow);
    s_wait_live (&follow);
    //  Missed while the bus is down: more bytes of changes than one reply
    //  may carry (4 MiB), so the catch-up needs several replies.
    s_kill (&s_bus);
    for (int i = 0; i < 4; i++) {
        char prefix [16];
        snprintf (prefix, sizeof prefix, "bulk%d", i);
        s_big_txn (prefix);
    }
    cr_assert_eq (ep_follower_sync (follow.follower, CONVERGE_MS), 0,
                  "the follower could not catch up (at %llu, error \"%s\")",
                  (unsigned long long) ep_model_view_revision (follow.view),
                  ep_follower_last_error (follow.follower));
    s_assert_converged (&follow);
    cr_assert_eq (ep_follower_resyncs (follow.follower), 0, "a catch-up should have been enough");
    s_follow_destroy (&follow);

    //  A new follower asking for pages of 1000 entities (~5 MB here) gets
    //  pages cut to fit a reply.
    s_bus = s_start_bus (s_bus_pub, s_bus_sub, NULL);
    cr_assert_not_null (s_bus);
    s_follow_new (&follow);
    ep_follower_set_page_size (follow.follower, 1000);
    s_wait_live (&follow);
    s_assert_converged (&follow);
    s_follow_destroy (&follow);
}

//  ---------------------------------------------------------------------

Test (follower, model_killed_and_restarted_during_writes,
      .init = s_setup, .fini = s_teardown, .timeout = 90)
{
    s_follow_t follow;
    s_follow_new (&follow);
    s_wait_live (&follow);
    s_writer_t writer;
    //  A write in flight when the model dies may have committed before its
    //  reply was lost: its retry then finds the entity (or its absence).
    s_writer_start (&writer, 3, true);
    s_pump_writes (&follow, &writer, 100, 30000);
    uint64_t catchups = ep_follower_catchups (follow.follower);

    s_kill (&s_model);
    s_start_model ();
    uint64_t restarted_at = s_model_revision ();
    s_pump_writes (&follow, &writer, 100, 30000);
    s_writer_stop (&writer);
    uint64_t target = s_model_revision ();
    cr_assert_gt (target, restarted_at + 50, "few writes after the restart");
    s_assert_converged (&follow);
    //  The new epoch of the same source made it fetch at once.
    cr_assert_gt (ep_follower_catchups (follow.follower), catchups);
    cr_assert_eq (ep_follower_resyncs (follow.follower), 0, "same generation: no new snapshot needed");
    s_follow_destroy (&follow);
}
