/*  test_follower.c: ep_follower against a fake model service.

    The fake (an actor) answers SnapshotRequest, ChangesRequest and
    StatusRequest on a ROUTER from an in-memory store and change log, and
    stands in for the bus: its ep_publisher (so seq and heartbeats are the
    real ones) sends through an XSUB/XPUB forwarder that can drop chosen
    revisions. Plaintext sockets on 127.0.0.1. Every wait is on a socket or
    a condition with a deadline. */
#include <criterion/criterion.h>
#include "ep_test.h"
#include "ep_codec.h"
#include "ep_follower.h"
#include "ep_publisher.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

//  ---------------------------------------------------------------------
//  The fake model service

typedef struct {
    char *id;                   //  snapshot id, in its page tokens
    Ep__Entity **entities;      //  every entity at the pinned revision, in order
    size_t count;               //  how many
    uint64_t revision;          //  the pinned revision
    char *generation;           //  its generation
} s_pinned_t;

typedef struct {
    zsock_t *pipe;              //  to the test
    zsock_t *router;            //  the model API, NULL until bound
    zsock_t *xsub;              //  the bus: publishers connect here
    zsock_t *xpub;              //  the bus: subscribers connect here
    char xsub_endpoint [64];    //  where the publisher connects
    ep_publisher_t *pub;        //  the model's publisher
    bool heartbeats;            //  false after SILENCE
    ep_model_view_t *store;     //  the model's content
    zlistx_t *log;              //  Ep__ModelChange (owned), one per part, oldest first
    uint64_t oldest_retained;   //  the oldest revision in the log
    zhashx_t *pinned;           //  snapshot id -> s_pinned_t
    zhashx_t *drop;             //  revisions ("%llu") or parts ("%llu/%u") not forwarded
    uint64_t snapshot_requests; //  served
    uint64_t changes_requests;  //  served
    uint64_t status_requests;   //  served
    uint64_t stride;            //  revisions advance by this (0: by 1, no prev_revision sent)
} s_fake_t;

static void
s_change_free (void **item)
{
    if (*item) {
        ep__model_change__free_unpacked ((Ep__ModelChange *) *item, NULL);
        *item = NULL;
    }
}

static void
s_pinned_free (void **item)
{
    s_pinned_t *pinned = (s_pinned_t *) *item;
    if (pinned) {
        for (size_t i = 0; i < pinned->count; i++)
            ep__entity__free_unpacked (pinned->entities [i], NULL);
        free (pinned->entities);
        free (pinned->id);
        free (pinned->generation);
        free (pinned);
        *item = NULL;
    }
}

static void
s_fake_publisher (s_fake_t *self)
{
    //  A restart keeps the source id (a configured instance id) and gets
    //  a new epoch.
    ep_publisher_destroy (&self->pub);
    self->pub = ep_publisher_new (self->xsub_endpoint, NULL, NULL, "model-fake",
                                  EP_CODEC_DEFAULT_CAP);
    cr_assert_not_null (self->pub);
    ep_publisher_set_heartbeat (self->pub, 100);
    ep_publisher_declare (self->pub, "model");
}

static void
s_fake_reply (s_fake_t *self, zframe_t *identity, Ep__ModelReply *reply)
{
    char err [256];
    zframe_t *body = ep_codec_pack (&reply->base, EP_CODEC_DEFAULT_CAP, err, sizeof err);
    cr_assert_not_null (body, "%s", err);
    zmsg_t *msg = zmsg_new ();
    zmsg_append (msg, &identity);
    zmsg_append (msg, &body);
    zmsg_send (&msg, self->router);
}

static void
s_fake_snapshot (s_fake_t *self, Ep__SnapshotRequest *request, Ep__ModelReply *reply,
                 Ep__Status *status, char *token, size_t token_size)
{
    self->snapshot_requests++;
    s_pinned_t *pinned = NULL;
    size_t offset = 0;
    if (!request->page_token || !*request->page_token) {
        pinned = (s_pinned_t *) zmalloc (sizeof (s_pinned_t));
        pinned->id = (char *) malloc (17);
        ep_random_hex (pinned->id, 8);
        pinned->revision = ep_model_view_revision (self->store);
        pinned->generation = strdup (ep_model_view_generation (self->store));
        pinned->entities = (Ep__Entity **) calloc (ep_model_view_size (self->store) + 1,
                                                   sizeof (Ep__Entity *));
        for (int type = 1; type <= EP_MODEL_TYPE_MAX; type++) {
            const Ep__Entity *entity = ep_model_view_first (self->store, type);
            for (; entity; entity = ep_model_view_next (self->store))
                pinned->entities [pinned->count++] = ep_entity_dup (entity);
        }
        zhashx_insert (self->pinned, pinned->id, pinned);
    }
    else {
        char id [17] = "";
        unsigned long long at = 0;
        if (sscanf (request->page_token, "%16[0-9a-f]:%llu", id, &at) == 2)
            pinned = (s_pinned_t *) zhashx_lookup (self->pinned, id);
        offset = (size_t) at;
        if (!pinned || offset > pinned->count) {
            status->has_code = true;
            status->code = EP__STATUS__CODE__FAILED_PRECONDITION;
            status->message = "page token expired: start the snapshot again";
            return;
        }
    }
    size_t page = request->has_page_size && request->page_size? request->page_size: 100;
    size_t n = pinned->count - offset < page? pinned->count - offset: page;
    reply->has_revision = true;
    reply->revision = pinned->revision;
    reply->generation = pinned->generation;
    reply->n_entities = n;
    reply->entities = pinned->entities + offset;
    if (offset + n < pinned->count) {
        snprintf (token, token_size, "%s:%zu", pinned->id, offset + n);
        reply->next_page_token = token;
    }
}

//  Fills reply with the changes after since; changes points to an array
//  the caller frees.
static void
s_fake_changes (s_fake_t *self, Ep__ChangesRequest *request, Ep__ModelReply *reply,
                Ep__Status *status)
{
    self->changes_requests++;
    uint64_t since = request->has_since_revision? request->since_revision: 0;
    if (since + 1 < self->oldest_retained) {
        status->has_code = true;
        status->code = EP__STATUS__CODE__RESYNC;
        status->message = "changes since that revision are no longer retained: take a snapshot";
        reply->has_oldest_retained = true;
        reply->oldest_retained = self->oldest_retained;
        return;
    }
    size_t max = request->has_max_changes && request->max_changes? request->max_changes: 1000;
    reply->changes = (Ep__ModelChange **) calloc (zlistx_size (self->log) + 1,
                                                  sizeof (Ep__ModelChange *));
    Ep__ModelChange *change = (Ep__ModelChange *) zlistx_first (self->log);
    for (; change && reply->n_changes < max; change = (Ep__ModelChange *) zlistx_next (self->log))
        if (change->revision > since)
            reply->changes [reply->n_changes++] = change;
}

static void
s_fake_api (s_fake_t *self)
{
    zmsg_t *msg = zmsg_recv (self->router);
    zframe_t *identity = zmsg_pop (msg);
    zframe_t *body = zmsg_pop (msg);
    zmsg_destroy (&msg);
    Ep__ModelRequest *request = ep__model_request__unpack (NULL, zframe_size (body),
                                                           zframe_data (body));
    zframe_destroy (&body);
    cr_assert_not_null (request);
    Ep__ModelReply reply = EP__MODEL_REPLY__INIT;
    Ep__Status status = EP__STATUS__INIT;
    reply.request_id = request->request_id;
    reply.status = &status;
    reply.has_revision = true;
    reply.revision = ep_model_view_revision (self->store);
    reply.generation = (char *) ep_model_view_generation (self->store);
    char token [64];
    if (request->op_case == EP__MODEL_REQUEST__OP_SNAPSHOT)
        s_fake_snapshot (self, request->snapshot, &reply, &status, token, sizeof token);
    else
    if (request->op_case == EP__MODEL_REQUEST__OP_CHANGES)
        s_fake_changes (self, request->changes, &reply, &status);
    else
    if (request->op_case == EP__MODEL_REQUEST__OP_STATUS)
        self->status_requests++;
    else {
        status.has_code = true;
        status.code = EP__STATUS__CODE__INVALID_ARGUMENT;
        status.message = "the fake serves snapshot, changes and status only";
    }
    s_fake_reply (self, identity, &reply);
    if (request->op_case == EP__MODEL_REQUEST__OP_CHANGES)
        free (reply.changes);
    ep__model_request__free_unpacked (request, NULL);
}

//  COMMIT drop parts op...: one revision of the given ops, split into
//  parts, applied, logged and published; drop "1" drops all its parts on
//  the way to subscribers, "pN" part N only.
static uint64_t
s_fake_commit (s_fake_t *self, zmsg_t *msg)
{
    char *drop = zmsg_popstr (msg);
    char *parts_s = zmsg_popstr (msg);
    uint32_t parts = (uint32_t) atoi (parts_s);
    size_t n = zmsg_size (msg);
    Ep__ModelOp **ops = (Ep__ModelOp **) calloc (n + 1, sizeof (Ep__ModelOp *));
    for (size_t i = 0; i < n; i++) {
        zframe_t *frame = zmsg_pop (msg);
        ops [i] = ep__model_op__unpack (NULL, zframe_size (frame), zframe_data (frame));
        cr_assert_not_null (ops [i]);
        zframe_destroy (&frame);
    }
    //  With a stride, revisions skip as the etcd store's do, and each
    //  change says which one it follows.
    uint64_t prev = ep_model_view_revision (self->store);
    uint64_t revision = prev + (self->stride? self->stride: 1);
    char key [32];
    if (streq (drop, "1")) {
        snprintf (key, sizeof key, "%llu", (unsigned long long) revision);
        zhashx_insert (self->drop, key, (void *) 1);
    }
    else
    if (*drop == 'p') {
        snprintf (key, sizeof key, "%llu/%s", (unsigned long long) revision, drop + 1);
        zhashx_insert (self->drop, key, (void *) 1);
    }
    for (uint32_t part = 1; part <= parts; part++) {
        size_t from = (part - 1) * n / parts, to = part * n / parts;
        Ep__ModelChange change = EP__MODEL_CHANGE__INIT;
        change.has_revision = true;
        change.revision = revision;
        change.has_prev_revision = self->stride > 0;
        change.prev_revision = prev;
        change.generation = (char *) ep_model_view_generation (self->store);
        change.has_part = change.has_parts = true;
        change.part = part;
        change.parts = parts;
        change.n_ops = to - from;
        change.ops = ops + from;
        change.has_committed_at_ms = true;
        change.committed_at_ms = ep_wall_ms ();
        ep_model_apply_t result = ep_model_view_apply (self->store, &change);
        cr_assert_eq (result, part == parts? EP_MODEL_APPLIED: EP_MODEL_PARTIAL);
        //  Keep a copy in the log (pack and unpack: protobuf-c's copy).
        size_t size = ep__model_change__get_packed_size (&change);
        uint8_t *data = (uint8_t *) malloc (size);
        ep__model_change__pack (&change, data);
        zlistx_add_end (self->log, ep__model_change__unpack (NULL, size, data));
        free (data);
        Ep__Event event = EP__EVENT__INIT;
        event.body_case = EP__EVENT__BODY_MODEL_CHANGE;
        event.model_change = &change;
        cr_assert_eq (ep_publisher_send (self->pub, "model.change", &event), 0);
    }
    for (size_t i = 0; i < n; i++)
        ep__model_op__free_unpacked (ops [i], NULL);
    free (ops);
    free (drop);
    free (parts_s);
    return revision;
}

//  RESTORE type id revision restart: a restore from a backup: a new
//  generation at a lower revision, without (type, id), nothing published;
//  with restart "1" the model process restarts (new publisher epoch).
static void
s_fake_restore (s_fake_t *self, zmsg_t *msg)
{
    char *type = zmsg_popstr (msg);
    char *id = zmsg_popstr (msg);
    char *revision = zmsg_popstr (msg);
    char *restart = zmsg_popstr (msg);
    ep_model_view_t *restored = ep_model_view_new ();
    char generation [33];
    ep_random_hex (generation, 16);
    ep_model_view_reset (restored, generation, strtoull (revision, NULL, 10));
    for (int t = 1; t <= EP_MODEL_TYPE_MAX; t++) {
        const Ep__Entity *entity = ep_model_view_first (self->store, t);
        for (; entity; entity = ep_model_view_next (self->store))
            if (t != atoi (type) || !streq (ep_entity_id (entity), id))
                ep_model_view_put (restored, entity);
    }
    ep_model_view_destroy (&self->store);
    self->store = restored;
    zlistx_purge (self->log);
    self->oldest_retained = ep_model_view_revision (restored) + 1;
    if (streq (restart, "1"))
        s_fake_publisher (self);
    free (type);
    free (id);
    free (revision);
    free (restart);
}

//  Handles one command from the test. Returns false on $TERM.
static bool
s_fake_command (s_fake_t *self)
{
    zmsg_t *msg = zmsg_recv (self->pipe);
    if (!msg)
        return false;
    char *command = zmsg_popstr (msg);
    bool more = true;
    if (streq (command, "$TERM"))
        more = false;
    else
    if (streq (command, "COMMIT"))
        zsock_send (self->pipe, "8", s_fake_commit (self, msg));
    else
    if (streq (command, "FORGET")) {
        char *upto = zmsg_popstr (msg);
        uint64_t last = strtoull (upto, NULL, 10);
        while (zlistx_size (self->log)
           &&  ((Ep__ModelChange *) zlistx_first (self->log))->revision <= last)
            zlistx_delete (self->log, zlistx_cursor (self->log));
        self->oldest_retained = last + 1;
        free (upto);
        zsock_send (self->pipe, "8", (uint64_t) 0);
    }
    else
    if (streq (command, "RESTORE")) {
        s_fake_restore (self, msg);
        zsock_send (self->pipe, "8", (uint64_t) 0);
    }
    else
    if (streq (command, "STRIDE")) {
        char *stride = zmsg_popstr (msg);
        self->stride = strtoull (stride, NULL, 10);
        free (stride);
        zsock_send (self->pipe, "8", (uint64_t) 0);
    }
    else
    if (streq (command, "SILENCE")) {
        self->heartbeats = false;
        zsock_send (self->pipe, "8", (uint64_t) 0);
    }
    else
    if (streq (command, "BIND")) {
        char *endpoint = zmsg_popstr (msg);
        self->router = zsock_new (ZMQ_ROUTER);
        cr_assert_geq (zsock_bind (self->router, "%s", endpoint), 0);
        free (endpoint);
        zsock_send (self->pipe, "8", (uint64_t) 0);
    }
    else
    if (streq (command, "STATE")) {
        uint8_t digest [EP_MODEL_DIGEST_SIZE];
        char hex [EP_MODEL_DIGEST_HEX_SIZE];
        ep_model_view_digest (self->store, digest);
        zsock_send (self->pipe, "8ss888", ep_model_view_revision (self->store),
                    ep_model_view_generation (self->store), ep_model_digest_hex (digest, hex),
                    self->snapshot_requests, self->changes_requests, self->status_requests);
    }
    else
        cr_assert_fail ("unknown fake command %s", command);
    free (command);
    zmsg_destroy (&msg);
    return more;
}

//  Forwards one message from the publisher side, unless it is a dropped revision.
static void
s_fake_forward (s_fake_t *self)
{
    zmsg_t *msg = zmsg_recv (self->xsub);
    zframe_t *body = zmsg_last (msg);
    Ep__Event *event = ep__event__unpack (NULL, zframe_size (body), zframe_data (body));
    bool dropped = false;
    if (event && event->body_case == EP__EVENT__BODY_MODEL_CHANGE) {
        const Ep__ModelChange *change = event->model_change;
        char key [32], part_key [32];
        snprintf (key, sizeof key, "%llu", (unsigned long long) change->revision);
        snprintf (part_key, sizeof part_key, "%llu/%u",
                  (unsigned long long) change->revision, change->part);
        dropped = zhashx_lookup (self->drop, key) || zhashx_lookup (self->drop, part_key);
    }
    if (event)
        ep__event__free_unpacked (event, NULL);
    if (dropped)
        zmsg_destroy (&msg);
    else
        zmsg_send (&msg, self->xpub);
}

//  args: the API endpoint to bind, or NULL to bind on a kernel-chosen port
//  now. Sends back the bus endpoint and the API endpoint (bound or not).
static void
s_fake (zsock_t *pipe, void *args)
{
    const char *api = (const char *) args;
    s_fake_t self = { .pipe = pipe, .heartbeats = true };
    self.xsub = zsock_new (ZMQ_XSUB);
    self.xpub = zsock_new (ZMQ_XPUB);
    int xsub_port = zsock_bind (self.xsub, "tcp://127.0.0.1:*");
    int xpub_port = zsock_bind (self.xpub, "tcp://127.0.0.1:*");
    snprintf (self.xsub_endpoint, sizeof self.xsub_endpoint, "tcp://127.0.0.1:%d", xsub_port);
    char bus [64], endpoint [64];
    snprintf (bus, sizeof bus, "tcp://127.0.0.1:%d", xpub_port);
    if (api)
        snprintf (endpoint, sizeof endpoint, "%s", api);
    else {
        self.router = zsock_new (ZMQ_ROUTER);
        int port = zsock_bind (self.router, "tcp://127.0.0.1:*");
        snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    }
    self.store = ep_model_view_new ();
    char generation [33];
    ep_random_hex (generation, 16);
    ep_model_view_reset (self.store, generation, 0);
    self.log = zlistx_new ();
    zlistx_set_destructor (self.log, s_change_free);
    self.oldest_retained = 1;
    self.pinned = zhashx_new ();
    zhashx_set_destructor (self.pinned, s_pinned_free);
    self.drop = zhashx_new ();
    s_fake_publisher (&self);
    zsock_signal (pipe, 0);
    zsock_send (pipe, "ss", bus, endpoint);

    bool running = true;
    while (running) {
        //  The router may appear (BIND): poll afresh each time round.
        zpoller_t *poller = zpoller_new (pipe, self.xsub, self.xpub, NULL);
        if (self.router)
            zpoller_add (poller, self.router);
        int64_t wait = self.heartbeats? ep_publisher_tick (self.pub): 100;
        void *which = zpoller_wait (poller, (int) (wait < 100? wait: 100));
        zpoller_destroy (&poller);
        if (which == pipe)
            running = s_fake_command (&self);
        else
        if (which == self.xsub)
            s_fake_forward (&self);
        else
        if (which == self.xpub) {
            zmsg_t *msg = zmsg_recv (self.xpub);        //  subscriptions upstream
            zmsg_send (&msg, self.xsub);
        }
        else
        if (which && which == self.router)
            s_fake_api (&self);
    }
    ep_publisher_destroy (&self.pub);
    zsock_destroy (&self.router);
    zsock_destroy (&self.xsub);
    zsock_destroy (&self.xpub);
    ep_model_view_destroy (&self.store);
    zlistx_destroy (&self.log);
    zhashx_destroy (&self.pinned);
    zhashx_destroy (&self.drop);
}

//  ---------------------------------------------------------------------
//  Test side

typedef struct {
    zactor_t *fake;             //  the fake model service
    char bus [64];              //  its bus (XPUB) endpoint
    char api [64];              //  its API endpoint
    ep_model_view_t *view;      //  the follower's view
    ep_follower_t *follower;    //  under test
    size_t created;             //  observer: CREATED events
    size_t deleted;             //  observer: DELETED events
    char last_deleted [65];     //  observer: id of the last deleted entity
    int64_t min_retry_wait;     //  smallest wait returned right after a failed call
} s_test_t;

typedef struct {
    uint64_t revision;
    char generation [65];
    char digest [EP_MODEL_DIGEST_HEX_SIZE];
    uint64_t snapshots, changes, statuses;
} s_state_t;

static Ep__Entity *
s_router (const char *id, const char *name, const char *hosted)
{
    Ep__HostedService service = EP__HOSTED_SERVICE__INIT;
    service.service_id = (char *) hosted;
    Ep__HostedService *services [] = { &service };
    Ep__Router router = EP__ROUTER__INIT;
    router.id = (char *) id;
    router.name = (char *) name;
    router.has_enabled = true;
    router.enabled = true;
    router.n_hosted = hosted? 1: 0;
    router.hosted = services;
    Ep__Entity entity = EP__ENTITY__INIT;
    entity.kind_case = EP__ENTITY__KIND_ROUTER;
    entity.router = &router;
    return ep_entity_dup (&entity);
}

static Ep__Entity *
s_service (const char *id, const char *name)
{
    Ep__Service service = EP__SERVICE__INIT;
    service.id = (char *) id;
    service.name = (char *) name;
    Ep__Entity entity = EP__ENTITY__INIT;
    entity.kind_case = EP__ENTITY__KIND_SERVICE;
    entity.service = &service;
    return ep_entity_dup (&entity);
}

static zframe_t *
s_op_frame (Ep__ModelOp *op)
{
    char err [256];
    zframe_t *frame = ep_codec_pack (&op->base, EP_CODEC_DEFAULT_CAP, err, sizeof err);
    cr_assert_not_null (frame, "%s", err);
    return frame;
}

//  Commits one revision writing entities (taken over and freed), split into
//  parts, dropped on the stream as drop says ("0", "1" or "pN"). Returns
//  its revision.
static uint64_t
s_commit_parts (s_test_t *test, const char *drop, uint32_t parts, Ep__Entity **entities, size_t n)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "COMMIT");
    zmsg_addstr (msg, drop);
    zmsg_addstrf (msg, "%u", parts);
    for (size_t i = 0; i < n; i++) {
        Ep__ModelOp op = EP__MODEL_OP__INIT;
        op.has_kind = true;
        op.kind = EP__MODEL_OP__KIND__UPDATED;
        op.has_type = true;
        op.type = ep_entity_type (entities [i]);
        op.id = (char *) ep_entity_id (entities [i]);
        op.entity = entities [i];
        zframe_t *frame = s_op_frame (&op);
        zmsg_append (msg, &frame);
        ep__entity__free_unpacked (entities [i], NULL);
    }
    zmsg_send (&msg, test->fake);
    uint64_t revision = 0;
    zsock_recv (test->fake, "8", &revision);
    return revision;
}

static uint64_t
s_commit (s_test_t *test, bool drop, uint32_t parts, Ep__Entity **entities, size_t n)
{
    return s_commit_parts (test, drop? "1": "0", parts, entities, n);
}

static uint64_t
s_commit_one (s_test_t *test, bool drop, Ep__Entity *entity)
{
    return s_commit (test, drop, 1, &entity, 1);
}

static uint64_t
s_commit_delete (s_test_t *test, bool drop, Ep__EntityType type, const char *id)
{
    Ep__ModelOp op = EP__MODEL_OP__INIT;
    op.has_kind = true;
    op.kind = EP__MODEL_OP__KIND__DELETED;
    op.has_type = true;
    op.type = type;
    op.id = (char *) id;
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "COMMIT");
    zmsg_addstr (msg, drop? "1": "0");
    zmsg_addstr (msg, "1");
    zframe_t *frame = s_op_frame (&op);
    zmsg_append (msg, &frame);
    zmsg_send (&msg, test->fake);
    uint64_t revision = 0;
    zsock_recv (test->fake, "8", &revision);
    return revision;
}

static void
s_command (s_test_t *test, const char *command, const char *arg1, const char *arg2,
           const char *arg3, const char *arg4)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, command);
    const char *args [] = { arg1, arg2, arg3, arg4 };
    for (size_t i = 0; i < 4 && args [i]; i++)
        zmsg_addstr (msg, args [i]);
    zmsg_send (&msg, test->fake);
    uint64_t ignored;
    zsock_recv (test->fake, "8", &ignored);
}

static s_state_t
s_state (s_test_t *test)
{
    s_state_t state = { 0 };
    char *generation = NULL, *digest = NULL;
    zstr_send (test->fake, "STATE");
    zsock_recv (test->fake, "8ss888", &state.revision, &generation, &digest,
                &state.snapshots, &state.changes, &state.statuses);
    snprintf (state.generation, sizeof state.generation, "%s", generation);
    snprintf (state.digest, sizeof state.digest, "%s", digest);
    free (generation);
    free (digest);
    return state;
}

//  True if the follower's view is identical to the fake's store.
static bool
s_identical (s_test_t *test)
{
    s_state_t state = s_state (test);
    const char *generation = ep_model_view_generation (test->view);
    if (!ep_follower_ready (test->follower) || !generation
    ||  strcmp (generation, state.generation) != 0
    ||  ep_model_view_revision (test->view) != state.revision)
        return false;
    uint8_t digest [EP_MODEL_DIGEST_SIZE];
    char hex [EP_MODEL_DIGEST_HEX_SIZE];
    ep_model_view_digest (test->view, digest);
    return streq (ep_model_digest_hex (digest, hex), state.digest);
}

//  Runs the follower as a service loop would, until cond or timeout_ms.
static bool
s_pump (s_test_t *test, bool (*cond) (s_test_t *), int timeout_ms)
{
    zpoller_t *poller = zpoller_new (ep_follower_socket (test->follower),
                                     ep_follower_rpc_socket (test->follower), NULL);
    int64_t deadline = ep_mono_ms () + timeout_ms;
    bool done;
    while (!(done = cond (test)) && ep_mono_ms () < deadline) {
        uint64_t failures = ep_follower_api_failures (test->follower);
        int64_t wait = ep_follower_tick (test->follower);
        if (ep_follower_api_failures (test->follower) > failures && wait < test->min_retry_wait)
            test->min_retry_wait = wait;
        if (zpoller_wait (poller, (int) (wait < 50? wait: 50)))
            ep_follower_handle (test->follower);
    }
    zpoller_destroy (&poller);
    return done;
}

static void
s_observe (void *arg, const ep_model_event_t *event)
{
    s_test_t *test = (s_test_t *) arg;
    if (event->kind == EP__MODEL_OP__KIND__CREATED)
        test->created++;
    if (event->kind == EP__MODEL_OP__KIND__DELETED) {
        test->deleted++;
        snprintf (test->last_deleted, sizeof test->last_deleted, "%s", event->id);
    }
}

//  A fake (API bound now unless api is given) seeded with three entities
//  over two revisions, and a follower of it asking for pages of 2.
static void
s_start (s_test_t *test, const char *api)
{
    memset (test, 0, sizeof *test);
    test->min_retry_wait = INT64_MAX;
    test->fake = zactor_new (s_fake, (void *) api);
    char *bus = NULL, *endpoint = NULL;
    zsock_recv (test->fake, "ss", &bus, &endpoint);
    snprintf (test->bus, sizeof test->bus, "%s", bus);
    snprintf (test->api, sizeof test->api, "%s", endpoint);
    free (bus);
    free (endpoint);
    Ep__Entity *seed [] = { s_service ("s1", "web"), s_router ("r1", "one", "s1") };
    s_commit (test, false, 1, seed, 2);
    s_commit_one (test, false, s_router ("r2", "two", NULL));

    test->view = ep_model_view_new ();
    ep_model_view_set_observer (test->view, s_observe, test);
    test->follower = ep_follower_new (test->bus, test->api, NULL, NULL, NULL, test->view);
    cr_assert_not_null (test->follower);
    ep_follower_set_page_size (test->follower, 2);
    ep_follower_set_rpc_timeout (test->follower, 500);
    ep_follower_set_retry (test->follower, 50, 400);
}

static void
s_stop (s_test_t *test)
{
    ep_follower_destroy (&test->follower);
    ep_model_view_destroy (&test->view);
    zactor_destroy (&test->fake);
}

//  Starts and syncs, checking the first snapshot.
static void
s_start_synced (s_test_t *test)
{
    s_start (test, NULL);
    cr_assert_eq (ep_follower_sync (test->follower, 5000), 0, "state %s, error %s",
                  ep_follower_state (test->follower), ep_follower_last_error (test->follower));
    cr_assert (s_identical (test));
    cr_assert_eq (ep_follower_snapshots (test->follower), 1);
}

//  ---------------------------------------------------------------------

Test (follower, snapshot_then_live_changes)
{
    s_test_t test;
    s_start (&test, NULL);
    cr_assert_not (ep_follower_ready (test.follower));
    cr_assert (s_pump (&test, s_identical, 5000), "state %s", ep_follower_state (test.follower));
    cr_assert_str_eq (ep_follower_state (test.follower), "live");
    cr_assert_eq (ep_model_view_size (test.view), 3);
    cr_assert_eq (test.created, 3);                 //  the snapshot, as observed
    s_state_t state = s_state (&test);
    cr_assert_eq (state.snapshots, 2);              //  3 entities in pages of 2

    //  Live: an update, a delete, a revision in three parts.
    s_commit_one (&test, false, s_router ("r2", "two-b", "s1"));
    s_commit_delete (&test, false, EP__ENTITY_TYPE__ENTITY_ROUTER, "r1");
    Ep__Entity *txn [] = {
        s_service ("s2", "db"), s_router ("r3", "three", "s2"), s_router ("r4", "four", "s2"),
        s_service ("s3", "cache"), s_router ("r5", "five", "s3")
    };
    s_commit (&test, false, 3, txn, 5);
    cr_assert (s_pump (&test, s_identical, 5000));
    cr_assert_eq (ep_model_view_size (test.view), 7);
    zlistx_t *hosting = ep_model_view_routers_hosting (test.view, "s2");
    cr_assert_eq (zlistx_size (hosting), 2);
    zlistx_destroy (&hosting);
    cr_assert_eq (test.deleted, 1);
    cr_assert_str_eq (test.last_deleted, "r1");

    //  All of it came by the stream: no loss, no fetch, no second snapshot.
    state = s_state (&test);
    cr_assert_eq (state.changes, 0);
    cr_assert_eq (ep_follower_gaps (test.follower), 0);
    cr_assert_eq (ep_follower_catchups (test.follower), 0);
    cr_assert_eq (ep_follower_resyncs (test.follower), 0);
    cr_assert_eq (ep_follower_snapshots (test.follower), 1);
    cr_assert_eq (ep_follower_api_failures (test.follower), 0);
    s_stop (&test);
}

Test (follower, dropped_change_is_fetched)
{
    s_test_t test;
    s_start_synced (&test);
    s_commit_one (&test, true, s_router ("r9", "lost", NULL));
    s_commit_one (&test, false, s_router ("r2", "after", NULL));
    cr_assert (s_pump (&test, s_identical, 5000), "state %s", ep_follower_state (test.follower));
    cr_assert_not_null (ep_model_view_get (test.view, EP__ENTITY_TYPE__ENTITY_ROUTER, "r9"));
    cr_assert_eq (ep_follower_gaps (test.follower), 1);
    cr_assert_geq (ep_follower_catchups (test.follower), 1);
    cr_assert_geq (s_state (&test).changes, 1);
    cr_assert_eq (ep_follower_resyncs (test.follower), 0);
    cr_assert_eq (ep_follower_snapshots (test.follower), 1);
    s_stop (&test);
}

Test (follower, lost_part_of_a_revision_is_fetched_whole)
{
    s_test_t test;
    s_start_synced (&test);
    Ep__Entity *txn [] = {
        s_router ("r5", "five", "s1"), s_router ("r6", "six", "s1"), s_router ("r7", "seven", "s1")
    };
    s_commit_parts (&test, "p2", 3, txn, 3);
    cr_assert (s_pump (&test, s_identical, 5000), "state %s", ep_follower_state (test.follower));
    cr_assert_eq (ep_model_view_count (test.view, EP__ENTITY_TYPE__ENTITY_ROUTER), 5);
    cr_assert_not (ep_model_view_partial (test.view));
    cr_assert_eq (ep_follower_gaps (test.follower), 1);
    cr_assert_geq (ep_follower_catchups (test.follower), 1);
    cr_assert_eq (ep_follower_resyncs (test.follower), 0);
    s_stop (&test);
}

Test (follower, last_change_dropped_is_found_by_heartbeat)
{
    s_test_t test;
    s_start_synced (&test);
    //  Nothing follows the lost change but heartbeats.
    s_commit_one (&test, true, s_router ("r9", "lost", NULL));
    cr_assert (s_pump (&test, s_identical, 5000), "state %s", ep_follower_state (test.follower));
    cr_assert_not_null (ep_model_view_get (test.view, EP__ENTITY_TYPE__ENTITY_ROUTER, "r9"));
    cr_assert_eq (ep_follower_gaps (test.follower), 1);
    cr_assert_geq (ep_follower_catchups (test.follower), 1);
    cr_assert_eq (ep_follower_resyncs (test.follower), 0);
    s_stop (&test);
}

Test (follower, resync_when_changes_are_no_longer_retained)
{
    s_test_t test;
    s_start_synced (&test);
    uint64_t lost = s_commit_one (&test, true, s_router ("r9", "lost", NULL));
    char upto [32];
    snprintf (upto, sizeof upto, "%llu", (unsigned long long) lost);
    s_command (&test, "FORGET", upto, NULL, NULL, NULL);
    cr_assert (s_pump (&test, s_identical, 5000), "state %s", ep_follower_state (test.follower));
    cr_assert_not_null (ep_model_view_get (test.view, EP__ENTITY_TYPE__ENTITY_ROUTER, "r9"));
    cr_assert_eq (ep_follower_gaps (test.follower), 1);
    cr_assert_eq (ep_follower_resyncs (test.follower), 1);
    cr_assert_eq (ep_follower_snapshots (test.follower), 2);
    s_stop (&test);
}

Test (follower, new_generation_in_a_change_resnapshots)
{
    s_test_t test;
    s_start_synced (&test);
    s_commit_one (&test, false, s_router ("r3", "three", NULL));
    //  Restored from a backup at revision 1, without r2; the next change
    //  carries the new generation at a revision below the follower's.
    s_command (&test, "RESTORE", "1", "r2", "1", "0");
    uint64_t revision = s_commit_one (&test, false, s_router ("r4", "four", NULL));
    cr_assert_eq (revision, 2);
    cr_assert (s_pump (&test, s_identical, 5000), "state %s", ep_follower_state (test.follower));
    cr_assert_null (ep_model_view_get (test.view, EP__ENTITY_TYPE__ENTITY_ROUTER, "r2"));
    cr_assert_eq (ep_follower_resyncs (test.follower), 1);
    cr_assert_eq (ep_follower_snapshots (test.follower), 2);
    cr_assert_eq (ep_follower_gaps (test.follower), 0);
    //  The observer heard of the entity that vanished in the restore.
    cr_assert_str_eq (test.last_deleted, "r2");
    s_stop (&test);
}

Test (follower, new_generation_after_restart_resnapshots)
{
    s_test_t test;
    s_start_synced (&test);
    //  Restored and restarted, nothing published since: the new publisher
    //  epoch makes the follower ask, and the answer has another generation.
    s_command (&test, "RESTORE", "1", "r2", "1", "1");
    cr_assert (s_pump (&test, s_identical, 5000), "state %s", ep_follower_state (test.follower));
    cr_assert_null (ep_model_view_get (test.view, EP__ENTITY_TYPE__ENTITY_ROUTER, "r2"));
    cr_assert_eq (ep_model_view_revision (test.view), 1);
    cr_assert_eq (ep_follower_resyncs (test.follower), 1);
    cr_assert_eq (ep_follower_snapshots (test.follower), 2);
    s_stop (&test);
}

static bool
s_failed_twice (s_test_t *test)
{
    return ep_follower_api_failures (test->follower) >= 2;
}

static bool
s_ready (s_test_t *test)
{
    return ep_follower_ready (test->follower) && s_identical (test);
}

//  A port nothing listens on (yet): the kernel picks it, we let it go.
static int
s_free_port (void)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = 0 };
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    cr_assert_eq (bind (fd, (struct sockaddr *) &addr, sizeof addr), 0);
    socklen_t size = sizeof addr;
    cr_assert_eq (getsockname (fd, (struct sockaddr *) &addr, &size), 0);
    close (fd);
    return ntohs (addr.sin_port);
}

Test (follower, unreachable_api_is_retried_with_backoff)
{
    char api [64];
    snprintf (api, sizeof api, "tcp://127.0.0.1:%d", s_free_port ());
    s_test_t test;
    s_start (&test, api);
    ep_follower_set_rpc_timeout (test.follower, 100);
    cr_assert (s_pump (&test, s_failed_twice, 5000));
    cr_assert_not (ep_follower_ready (test.follower));
    cr_assert_str_eq (ep_follower_state (test.follower), "snapshot");
    cr_assert (strstr (ep_follower_last_error (test.follower), "no reply"),
               "error: %s", ep_follower_last_error (test.follower));
    //  After a failure the loop is told to wait (backoff >= base / 2), not spin.
    cr_assert_geq (test.min_retry_wait, 20);
    cr_assert_leq (test.min_retry_wait, 400);

    s_command (&test, "BIND", api, NULL, NULL, NULL);
    cr_assert (s_pump (&test, s_ready, 10000), "state %s, error %s",
               ep_follower_state (test.follower), ep_follower_last_error (test.follower));
    cr_assert_eq (ep_follower_snapshots (test.follower), 1);
    cr_assert_eq (ep_follower_resyncs (test.follower), 0);
    cr_assert_str_eq (ep_follower_last_error (test.follower), "");
    s_stop (&test);
}

//  A follower's loop is a service's loop: a model that takes a request and
//  never answers must not hold it (a watchdog's heartbeats wait on it).
Test (follower, a_model_that_never_answers_does_not_block_the_loop)
{
    s_test_t test;
    s_start (&test, NULL);
    zsock_t *mute = zsock_new (ZMQ_ROUTER);     //  takes requests, answers none
    cr_assert_geq (zsock_bind (mute, "tcp://127.0.0.1:*"), 0);
    char *mute_endpoint = zsock_last_endpoint (mute);
    char api [256];
    snprintf (api, sizeof api, "%s,%s", mute_endpoint, test.api);
    ep_model_view_t *view = ep_model_view_new ();
    ep_follower_t *follower = ep_follower_new (test.bus, api, NULL, NULL, NULL, view);
    cr_assert_not_null (follower);
    ep_follower_set_rpc_timeout (follower, 1000);
    ep_follower_set_retry (follower, 50, 400);
    zpoller_t *poller = zpoller_new (ep_follower_socket (follower), ep_follower_rpc_socket (follower), NULL);
    int64_t deadline = ep_mono_ms () + 10000, longest = 0;
    int asked = 0;
    while (!ep_follower_ready (follower) && ep_mono_ms () < deadline) {
        int64_t started = ep_mono_ms ();
        int64_t wait = ep_follower_tick (follower);
        if (ep_mono_ms () - started > longest)
            longest = ep_mono_ms () - started;
        void *which = zpoller_wait (poller, (int) (wait < 50? wait: 50));
        if (zsock_events (mute) & ZMQ_POLLIN) {
            zmsg_t *request = zmsg_recv (mute);
            zmsg_destroy (&request);
            asked++;
        }
        started = ep_mono_ms ();
        if (which)
            ep_follower_handle (follower);
        if (ep_mono_ms () - started > longest)
            longest = ep_mono_ms () - started;
    }
    cr_assert (ep_follower_ready (follower), "state %s, error %s",
               ep_follower_state (follower), ep_follower_last_error (follower));
    cr_assert_geq (asked, 1, "the first call went to the mute instance");
    cr_assert_geq (ep_follower_api_failures (follower), 1);
    //  The call took a whole second to give up on; no step of the loop
    //  took more than a few milliseconds of it.
    cr_assert_lt (longest, 100, "a step of the loop took %lld ms", (long long) longest);
    zpoller_destroy (&poller);
    ep_follower_destroy (&follower);
    ep_model_view_destroy (&view);
    zstr_free (&mute_endpoint);
    zsock_destroy (&mute);
    s_stop (&test);
}

Test (follower, silent_stream_is_polled)
{
    s_test_t test;
    s_start_synced (&test);
    //  The stream goes quiet (no heartbeats) and loses the next change: only
    //  the silence tells the follower to ask.
    s_command (&test, "SILENCE", NULL, NULL, NULL, NULL);
    s_commit_one (&test, true, s_router ("r9", "quiet", NULL));
    cr_assert (s_pump (&test, s_identical, 10000), "state %s", ep_follower_state (test.follower));
    cr_assert_geq (ep_follower_catchups (test.follower), 1);
    cr_assert_eq (ep_follower_gaps (test.follower), 0);
    cr_assert_eq (ep_follower_resyncs (test.follower), 0);
    s_stop (&test);
}

Test (follower, sync_returns_a_fresh_copy)
{
    s_test_t test;
    s_start_synced (&test);
    //  A change the stream will not show (dropped, heartbeats off): sync
    //  still brings it, because it compares with the model's revision.
    s_command (&test, "SILENCE", NULL, NULL, NULL, NULL);
    s_commit_one (&test, true, s_router ("r9", "fresh", NULL));
    int64_t started = ep_mono_ms ();
    cr_assert_eq (ep_follower_sync (test.follower, 5000), 0);
    cr_assert_lt (ep_mono_ms () - started, 2000);   //  not by waiting for silence
    cr_assert (s_identical (&test));
    cr_assert_geq (s_state (&test).statuses, 2);
    s_stop (&test);
}

Test (follower, skipping_revisions_chain_on_prev_revision)
{
    //  The etcd store's model revisions are not consecutive: a follower
    //  chains on prev_revision, so a skip is no gap and costs no fetch.
    s_test_t test;
    s_start_synced (&test);
    s_command (&test, "STRIDE", "7", NULL, NULL, NULL);
    uint64_t before = ep_model_view_revision (test.view);
    s_commit_one (&test, false, s_router ("r7", "seven", NULL));
    Ep__Entity *txn [] = { s_router ("r8", "eight", "s1"), s_router ("r9", "nine", "s1") };
    s_commit (&test, false, 2, txn, 2);
    uint64_t last = s_commit_one (&test, false, s_router ("r2", "two-b", NULL));
    cr_assert_eq (last, before + 21);
    cr_assert (s_pump (&test, s_identical, 5000), "state %s", ep_follower_state (test.follower));
    cr_assert_eq (ep_model_view_revision (test.view), last);
    cr_assert_eq (ep_follower_gaps (test.follower), 0);
    cr_assert_eq (ep_follower_catchups (test.follower), 0);
    cr_assert_eq (s_state (&test).changes, 0, "no fetch: the stream chained");
    s_stop (&test);
}

Test (follower, lost_change_between_skipping_revisions_is_fetched)
{
    //  A gap is prev_revision != the applied revision, whatever the stride.
    s_test_t test;
    s_start_synced (&test);
    s_command (&test, "STRIDE", "3", NULL, NULL, NULL);
    s_commit_one (&test, true, s_router ("r9", "lost", NULL));
    s_commit_one (&test, false, s_router ("r2", "after", NULL));
    cr_assert (s_pump (&test, s_identical, 5000), "state %s", ep_follower_state (test.follower));
    cr_assert_not_null (ep_model_view_get (test.view, EP__ENTITY_TYPE__ENTITY_ROUTER, "r9"));
    cr_assert_eq (ep_follower_gaps (test.follower), 1);
    cr_assert_geq (ep_follower_catchups (test.follower), 1);
    cr_assert_eq (ep_follower_resyncs (test.follower), 0);
    s_stop (&test);
}
