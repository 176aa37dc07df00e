/*  test_model_ha.c: two edgeplane-model instances on one etcd prefix, a
    bus, a follower and a subscriber of our own on model.change. A client
    writes through both alternately (compare-and-swap on one hot entity,
    creates, request ids): every write is acknowledged. Exactly one
    instance publishes; the subscriber sees every revision once or more,
    new revisions in order, each with prev_revision chained, and a
    revision seen twice with the same bytes. SIGKILL the publisher: the
    other takes over within the lease's TTL + 1 s and publishes from the
    checkpoint; SIGSTOP it past its lease, then SIGCONT: it publishes
    nothing stale. The follower's digest equals a snapshot's at the end. */
#include <criterion/criterion.h>
#include "ep_etcd_cluster.h"
#include "ep_test.h"
#include "ep_codec.h"
#include "ep_follower.h"
#include "ep_keys.h"
#include "ep_rpc_client.h"
#include "ep_subscriber.h"
#include "model.pb-c.h"
#include <signal.h>

#define CALL_MS     5000        //  reply deadline for a call that must be answered
#define TTL_MS      2000        //  the publisher's lease (EDGEPLANE_MODEL_LEASE_TTL)
#define MAX_REV     512         //  revisions this test writes at most
#define CONVERGE_MS 20000       //  for the follower to reach the model

static char *s_dir;             //  this test's directory
static char *s_keys;            //  its keys dir
static char *s_bus_key;         //  the bus's public key
static char *s_model_key;       //  the model's public key
static ep_proc_t *s_bus;        //  the bus
static char *s_env [9];         //  the models' environment (the data dir last)
static zcert_t *s_operator;     //  the writer's certificate

//  What the subscriber saw of model.change.
typedef struct {
    uint64_t max;               //  the highest revision seen
    zchunk_t *bytes [MAX_REV + 1];  //  the packed change of each revision seen
    size_t repeats;             //  revisions seen again (identical)
    char last_source [64];      //  the source of the last one
    const char *stale_source;   //  a publisher that must not publish any more (NULL: none)
    size_t stale;               //  what it published all the same
} s_wire_t;

//  The model instances, the follower, the subscriber.
typedef struct {
    ep_proc_t *models [2];      //  the instances
    ep_rpc_client_t *clients [2];   //  one client each
    ep_model_view_t *view;      //  the follower's copy
    ep_follower_t *follower;    //  keeps it
    ep_subscriber_t *wire;      //  model.change as published
    s_wire_t seen;              //  what it saw
    zpoller_t *poller;          //  follower and subscriber
    zcert_t *follower_cert;     //  their certificates
    zcert_t *wire_cert;
    uint64_t version;           //  the hot entity's version
    int writes;                 //  writes so far
} s_ha_t;

static void
s_setup (void)
{
    zsys_init ();
    const char *endpoints = ep_etcd_cluster_endpoints ();
    cr_assert (endpoints, "no etcd cluster: run this suite through ctest (fixture etcd_cluster)");
    s_dir = ep_tmpdir_new ("model-ha");
    s_keys = zsys_sprintf ("%s/keys", s_dir);
    char err [256];
    cr_assert_eq (ep_keys_init (s_keys, false, err, sizeof err), 0, "%s", err);
    s_bus_key = ep_keys_public_txt (s_keys, "bus");
    s_model_key = ep_keys_public_txt (s_keys, "model");
    s_operator = ep_keys_load (s_keys, "operator");
    s_env [0] = zsys_sprintf ("EDGEPLANE_KEYS_DIR=%s", s_keys);
    const char *args [] = { "--pub-listen", "tcp://127.0.0.1:*", "--sub-listen", "tcp://127.0.0.1:*",
                            "--http-listen", "127.0.0.1:0", NULL };
    const char *bus_env [] = { s_env [0], NULL };
    s_bus = ep_proc_start ("edgeplane-bus", args, bus_env, 10000);
    cr_assert_not_null (s_bus, "edgeplane-bus did not start");
    char *prefix = ep_etcd_test_prefix ("model-ha");
    s_env [1] = zsys_sprintf ("EDGEPLANE_BUS_PUB=%s", ep_proc_connect_endpoint (s_bus, "pub"));
    s_env [2] = zsys_sprintf ("EDGEPLANE_MODEL_STORE=etcd");
    s_env [3] = zsys_sprintf ("EDGEPLANE_ETCD_ENDPOINTS=%s", endpoints);
    s_env [4] = zsys_sprintf ("EDGEPLANE_ETCD_PREFIX=%s", prefix);
    s_env [5] = zsys_sprintf ("EDGEPLANE_MODEL_LEASE_TTL=%dms", TTL_MS);
    free (prefix);
}

static void
s_teardown (void)
{
    ep_proc_destroy (&s_bus);
    for (size_t i = 0; i < EP_COUNT (s_env); i++)
        zstr_free (&s_env [i]);
    zcert_destroy (&s_operator);
    zstr_free (&s_model_key);
    zstr_free (&s_bus_key);
    zstr_free (&s_keys);
    ep_tmpdir_remove (&s_dir);
}

TestSuite (model_ha, .init = s_setup, .fini = s_teardown, .timeout = 120);

static ep_proc_t *
s_model (int which)
{
    const char *args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", "127.0.0.1:0", NULL };
    zstr_free (&s_env [6]);
    s_env [6] = zsys_sprintf ("EDGEPLANE_DATA_DIR=%s/model%d", s_dir, which);
    ep_proc_t *model = ep_proc_start ("edgeplane-model", args, (const char *const *) s_env, 20000);
    cr_assert_not_null (model, "edgeplane-model %d did not start on etcd", which);
    return model;
}

//  ---------------------------------------------------------------------
//  The subscriber's checks, on each model.change

static void
s_wire_take (s_wire_t *self, const Ep__ModelChange *change)
{
    cr_assert (change->has_revision && change->revision > 0 && change->revision <= MAX_REV);
    uint64_t revision = change->revision;
    cr_assert (change->has_prev_revision && change->prev_revision == revision - 1,
               "revision %llu: prev_revision %llu", (unsigned long long) revision,
               (unsigned long long) change->prev_revision);
    cr_assert_eq (change->parts, 1);
    size_t size = ep__model_change__get_packed_size (change);
    zchunk_t *bytes = zchunk_new (NULL, size);
    ep__model_change__pack (change, zchunk_data (bytes));
    if (self->bytes [revision]) {
        cr_assert (zchunk_size (bytes) == zchunk_size (self->bytes [revision])
                   && memcmp (zchunk_data (bytes), zchunk_data (self->bytes [revision]), size) == 0,
                   "revision %llu published twice with different content", (unsigned long long) revision);
        self->repeats++;
        zchunk_destroy (&bytes);
        return;
    }
    cr_assert_eq (revision, self->max + 1, "revision %llu published after %llu: out of order or lost",
                  (unsigned long long) revision, (unsigned long long) self->max);
    self->bytes [revision] = bytes;
    self->max = revision;
}

//  ---------------------------------------------------------------------
//  The rig

static void
s_ha_new (s_ha_t *self)
{
    memset (self, 0, sizeof *self);
    self->models [0] = s_model (0);
    self->models [1] = s_model (1);
    for (int i = 0; i < 2; i++) {
        self->clients [i] = ep_rpc_client_new (ep_proc_connect_endpoint (self->models [i], "api"),
                                               s_operator, s_model_key);
        cr_assert_not_null (self->clients [i]);
    }
    char *apis = zsys_sprintf ("%s,%s", ep_proc_connect_endpoint (self->models [0], "api"),
                               ep_proc_connect_endpoint (self->models [1], "api"));
    const char *bus_sub = ep_proc_connect_endpoint (s_bus, "sub");
    self->follower_cert = ep_keys_load (s_keys, "terminators");
    self->wire_cert = ep_keys_load (s_keys, "subscriber");
    self->view = ep_model_view_new ();
    self->follower = ep_follower_new (bus_sub, apis, self->follower_cert, s_bus_key, s_model_key,
                                      self->view);
    cr_assert_not_null (self->follower);
    ep_follower_set_rpc_timeout (self->follower, 1000);
    ep_follower_set_retry (self->follower, 50, 500);
    free (apis);
    self->wire = ep_subscriber_new (bus_sub, self->wire_cert, s_bus_key, EP_CODEC_DEFAULT_CAP, NULL, NULL);
    ep_subscriber_subscribe (self->wire, "model.change");
    cr_assert_eq (ep_subscriber_wait_stream (self->wire, "model", 10000), 0);
    self->poller = zpoller_new (ep_follower_socket (self->follower),
                                ep_follower_rpc_socket (self->follower),
                                ep_subscriber_socket (self->wire), NULL);
}

static void
s_ha_destroy (s_ha_t *self)
{
    zpoller_destroy (&self->poller);
    ep_subscriber_destroy (&self->wire);
    ep_follower_destroy (&self->follower);
    ep_model_view_destroy (&self->view);
    for (int i = 0; i < 2; i++) {
        ep_rpc_client_destroy (&self->clients [i]);
        if (self->models [i])
            ep_proc_signal (self->models [i], SIGCONT);
        ep_proc_destroy (&self->models [i]);
    }
    for (size_t i = 0; i <= MAX_REV; i++)
        zchunk_destroy (&self->seen.bytes [i]);
    zcert_destroy (&self->follower_cert);
    zcert_destroy (&self->wire_cert);
}

//  Runs the follower and the subscriber for up to ms, or until cond holds.
static bool
s_pump (s_ha_t *self, bool (*cond) (s_ha_t *, void *), void *arg, int ms)
{
    int64_t deadline = ep_mono_ms () + ms;
    while (!(cond && cond (self, arg))) {
        int64_t left = deadline - ep_mono_ms ();
        int64_t wait = ep_follower_tick (self->follower);
        zsock_t *which = (zsock_t *) zpoller_wait (self->poller,
                                                   (int) (left <= 0? 0: wait < left? wait: left));
        if (!which && left <= 0)
            return cond? cond (self, arg): true;
        if (which == ep_subscriber_socket (self->wire)) {
            Ep__Event *event;
            while ((zsock_events (which) & ZMQ_POLLIN)) {
                if ((event = ep_subscriber_read (self->wire, NULL)) && event->model_change) {
                    const char *source = event->meta && event->meta->source_id? event->meta->source_id: "";
                    snprintf (self->seen.last_source, sizeof self->seen.last_source, "%s", source);
                    if (self->seen.stale_source && streq (source, self->seen.stale_source))
                        self->seen.stale++;
                    s_wire_take (&self->seen, event->model_change);
                }
            }
        }
        else
        if (which)
            ep_follower_handle (self->follower);
    }
    return true;
}

//  The UPDATE of the hot entity (or its CREATE), alternately through each
//  instance, compare-and-swap on the version the last write gave.
static void
s_write (s_ha_t *self, int through)
{
    char name [32], request_id [32];
    snprintf (name, sizeof name, "v%d", self->writes);
    snprintf (request_id, sizeof request_id, "hot-%d", self->writes++);
    Ep__Service service = EP__SERVICE__INIT;
    service.id = (char *) "hot";
    service.name = name;
    Ep__Entity entity = EP__ENTITY__INIT;
    entity.kind_case = EP__ENTITY__KIND_SERVICE;
    entity.service = &service;
    Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
    write.has_op = true;
    write.op = self->version? EP__MODEL_WRITE__OP__UPDATE: EP__MODEL_WRITE__OP__CREATE;
    write.entity = &entity;
    write.has_expected_version = self->version > 0;
    write.expected_version = self->version;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.request_id = request_id;
    request.op_case = EP__MODEL_REQUEST__OP_WRITE;
    request.write = &write;
    char err [256];
    Ep__ModelReply *reply = ep_rpc_call (self->clients [through], &request, &ep__model_reply__descriptor,
                                         CALL_MS, 1, err, sizeof err);
    cr_assert_not_null (reply, "write %s through %d: %s", request_id, through, err);
    cr_assert (!reply->status || reply->status->code == EP__STATUS__CODE__OK, "write %s through %d: %s",
               request_id, through, reply->status->message);
    cr_assert_eq (reply->revision, self->version + 1);
    self->version = reply->revision;
    ep__model_reply__free_unpacked (reply, NULL);
    s_pump (self, NULL, NULL, 0);
}

//  1 if instance which publishes, 0 if not, -1 if its metrics do not say.
static int
s_publishing (s_ha_t *self, int which)
{
    if (!self->models [which])
        return -1;
    char *page = ep_http_get (ep_proc_connect_endpoint (self->models [which], "http"), "/metrics");
    double value = page? ep_metric_value (page, "edgeplane_model_publisher"): -1;
    free (page);
    return (int) value;
}

//  The instance that publishes, once exactly one does (-1 if none did by
//  the deadline, while the follower and the subscriber run).
static int
s_publisher (s_ha_t *self, int only, int ms)
{
    int64_t deadline = ep_mono_ms () + ms;
    while (ep_mono_ms () < deadline) {
        int a = only == 1? 0: s_publishing (self, 0), b = only == 0? 0: s_publishing (self, 1);
        if (a + b == 1 && (a == 1 || b == 1))
            return a == 1? 0: 1;
        s_pump (self, NULL, NULL, 20);
    }
    return -1;
}

//  Instance which's edgeplane_model_revision (-1 if its metrics do not say).
static double
s_revision_metric (s_ha_t *self, int which)
{
    char *page = ep_http_get (ep_proc_connect_endpoint (self->models [which], "http"), "/metrics");
    double value = page? ep_metric_value (page, "edgeplane_model_revision"): -1;
    free (page);
    return value;
}

static bool
s_revision_metrics_at (s_ha_t *self, void *arg)
{
    double target = (double) *(uint64_t *) arg;
    return s_revision_metric (self, 0) == target && s_revision_metric (self, 1) == target;
}

static bool
s_seen (s_ha_t *self, void *arg)
{
    return self->seen.max >= *(uint64_t *) arg
        && ep_model_view_revision (self->view) >= *(uint64_t *) arg;
}

//  Every revision was published, and the follower holds what a snapshot
//  through instance through holds.
static void
s_assert_converged (s_ha_t *self, int through)
{
    uint64_t target = self->version;
    if (!s_pump (self, s_seen, &target, CONVERGE_MS))
        for (int i = 0; i < 2; i++)
            if (self->models [i])
                fprintf (stderr, "model %d: %s\n", i, ep_proc_log (self->models [i]));
    cr_assert (s_seen (self, &target),
               "published through %llu, the follower at %llu, the model at %llu",
               (unsigned long long) self->seen.max,
               (unsigned long long) ep_model_view_revision (self->view), (unsigned long long) target);
    Ep__Entity **entities = NULL;
    size_t count = 0;
    zlistx_t *replies = zlistx_new ();
    char *token = NULL;
    do {
        Ep__SnapshotRequest snapshot = EP__SNAPSHOT_REQUEST__INIT;
        snapshot.page_token = token;
        Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
        request.op_case = EP__MODEL_REQUEST__OP_SNAPSHOT;
        request.snapshot = &snapshot;
        request.request_id = (char *) "";
        Ep__ModelReply *reply = ep_rpc_call (self->clients [through], &request, &ep__model_reply__descriptor,
                                             CALL_MS, 1, NULL, 0);
        cr_assert_not_null (reply);
        cr_assert_eq (reply->revision, target);
        entities = (Ep__Entity **) realloc (entities, (count + reply->n_entities + 1) * sizeof *entities);
        for (size_t i = 0; i < reply->n_entities; i++)
            entities [count++] = reply->entities [i];
        zstr_free (&token);
        if (reply->next_page_token && *reply->next_page_token)
            token = strdup (reply->next_page_token);
        zlistx_add_end (replies, reply);
    } while (token);
    uint8_t theirs [EP_MODEL_DIGEST_SIZE], ours [EP_MODEL_DIGEST_SIZE];
    ep_model_digest_entities (entities, count, theirs);
    ep_model_view_digest (self->view, ours);
    cr_assert_eq (memcmp (theirs, ours, sizeof ours), 0, "the follower's digest differs from the model's");
    for (Ep__ModelReply *reply = (Ep__ModelReply *) zlistx_first (replies); reply;
         reply = (Ep__ModelReply *) zlistx_next (replies))
        ep__model_reply__free_unpacked (reply, NULL);
    zlistx_destroy (&replies);
    free (entities);
}

//  ---------------------------------------------------------------------

Test (model_ha, the_publisher_killed_the_other_takes_over_from_the_checkpoint)
{
    s_ha_t ha;
    s_ha_new (&ha);
    int publisher = s_publisher (&ha, -1, 10000);
    cr_assert_neq (publisher, -1, "no single publisher");
    for (int i = 0; i < 20; i++)
        s_write (&ha, i % 2);
    uint64_t written = ha.version;
    cr_assert (s_pump (&ha, s_seen, &written, CONVERGE_MS), "revisions published: %llu of %llu",
               (unsigned long long) ha.seen.max, (unsigned long long) written);
    //  Each instance's revision gauge follows the other's commits too.
    cr_assert (s_pump (&ha, s_revision_metrics_at, &written, CONVERGE_MS),
               "edgeplane_model_revision %.0f and %.0f, the model at %llu", s_revision_metric (&ha, 0),
               s_revision_metric (&ha, 1), (unsigned long long) written);

    //  The publisher dies; writes go on through the other, which takes over.
    cr_assert_eq (ep_proc_signal (ha.models [publisher], SIGKILL), 0);
    int64_t killed = ep_mono_ms ();
    cr_assert_neq (ep_proc_wait_exit (ha.models [publisher], 10000), -1);
    ep_proc_destroy (&ha.models [publisher]);
    ep_rpc_client_destroy (&ha.clients [publisher]);
    int other = 1 - publisher;
    for (int i = 0; i < 10; i++)
        s_write (&ha, other);
    cr_assert_eq (s_publisher (&ha, other, TTL_MS + 1000 * EP_TEST_SLOWDOWN), other,
                  "the other instance did not take over");
    int64_t took = ep_mono_ms () - killed;
    cr_assert_leq (took, TTL_MS + 1000 * EP_TEST_SLOWDOWN, "took over after %lld ms", (long long) took);
    s_assert_converged (&ha, other);
    s_ha_destroy (&ha);
}

Test (model_ha, a_publisher_stopped_past_its_lease_publishes_nothing_stale)
{
    s_ha_t ha;
    s_ha_new (&ha);
    int publisher = s_publisher (&ha, -1, 10000);
    cr_assert_neq (publisher, -1, "no single publisher");
    int other = 1 - publisher;
    for (int i = 0; i < 10; i++)
        s_write (&ha, i % 2);
    uint64_t written = ha.version;
    cr_assert (s_pump (&ha, s_seen, &written, CONVERGE_MS));
    //  Everything it published has arrived: from now on, anything from it
    //  is stale.
    char stale [64];
    snprintf (stale, sizeof stale, "%s", ha.seen.last_source);
    ha.seen.stale_source = stale;
    //  Frozen past its lease: the other takes over and publishes what is
    //  written meanwhile.
    cr_assert_eq (ep_proc_signal (ha.models [publisher], SIGSTOP), 0);
    cr_assert_eq (s_publisher (&ha, other, TTL_MS + 1000 * EP_TEST_SLOWDOWN), other);
    for (int i = 0; i < 10; i++)
        s_write (&ha, other);
    written = ha.version;
    cr_assert (s_pump (&ha, s_seen, &written, CONVERGE_MS));
    //  Back: it must not publish from where it was (the subscriber checks
    //  every revision it sees again), and it takes writes again.
    cr_assert_eq (ep_proc_signal (ha.models [publisher], SIGCONT), 0);
    for (int i = 0; i < 10; i++)
        s_write (&ha, i % 2);
    cr_assert_eq (s_publisher (&ha, -1, 5000), other, "exactly one publisher, the new one");
    s_assert_converged (&ha, publisher);
    cr_assert_eq (ha.seen.stale, 0, "the stopped publisher published %zu changes after it woke",
                  ha.seen.stale);
    cr_assert (strstr (ep_proc_log (ha.models [publisher]), "no longer the model's publisher"), "%s",
               ep_proc_log (ha.models [publisher]));
    s_ha_destroy (&ha);
}
