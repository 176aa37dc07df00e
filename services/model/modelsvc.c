/*  modelsvc.c: the model service object (modelsvc.h). */
#include "modelsvc.h"
#include "ep_codec.h"
#include "ep_degraded.h"
#include "ep_publisher.h"
#include "ep_reqloop.h"
#include "ep_rpc_server.h"
#include "model.h"
#include "entity.h"
#include "modelpub.h"
#include "modelstore_etcd.h"
#include "modelstore_sqlite.h"

#define PUBLISH_CAP     (1024u * 1024u)     //  largest model.change part
#define CHECKPOINT_MS   10000               //  store housekeeping period
#define EXPIRY_MS       1000                //  snapshot expiry check period
#define REPLIES_MAX     100000              //  replies remembered for retries
#define ETCD_IDLE_MS    30000               //  resume an etcd watch silent this long
#define ETCD_WRITE_OPS  3                   //  etcd ops of a plain write: entity, change, reply
#define CATCH_UP_MS     5000                //  writes wait this long for the store to catch up
#define LEASE_TTL_S     10                  //  a lease's TTL when the request has none
#define LEASE_TTL_MAX_S 3600                //  and at most
#define EXPIRED_GRACE_MS 20000              //  a non-publisher deletes what the publisher did not, after
#define EXPIRED_RETRY_MS 1000               //  a lease-expired delete whose batch failed, again after

//  An entity whose lease ended, to delete (modelstore.h, "Leases").
typedef struct {
    modelstore_expired_t what;  //  the entity and the version its lease was for
    int64_t due_ms;             //  monotonic ms: deleted in the first batch after
    bool graced;                //  due after the grace of an instance not publishing
    bool in_batch;              //  staged in the batch being committed
} s_expiring_t;

//  A request being served: the model's result, and what a completion
//  that comes later needs to find its request.
typedef struct {
    model_result_t result;      //  what to answer
    modelsvc_t *owner;          //  the service serving it
    ep_req_t *req;              //  the loop's request
    bool reading;               //  inside model_read: a completion now is inline
    bool read_done;             //  model_read completed
} s_request_t;

struct _modelsvc_t {
    ep_service_t *service;      //  shared process scaffolding (borrowed)
    char *path;                 //  model.db, or where in etcd
    ep_etcd_t *etcd;            //  the etcd store's client, or NULL
    modelstore_t *store;        //  model.db or etcd
    model_t *model;             //  the rules
    zsock_t *router;            //  API socket
    ep_rpc_server_t *rpc;       //  request ids, reply cache, roles
    ep_reqloop_t *loop;         //  batches, replies, request metrics
    ep_publisher_t *publisher;  //  model.change, entityChange.*, service.degraded
    modelpub_t *modelpub;       //  etcd: publishes the change records when elected
    ep_degraded_t *degraded;    //  a full or failing disk: writes refused, /readyz 503
    char failure [768];         //  why the last batch failed, for its answers
    int64_t max_batch;          //  requests per batch (etcd: what one txn holds)
    size_t batch_writes;        //  writes in the open batch
    bool committing;            //  inside model_commit: a completion now is inline
    bool committed;             //  model_commit completed
    int commit_rc;              //  with this outcome
    bool pruned;                //  the start's prune of saved replies completed
    int pruned_rc;              //  with this outcome
    int64_t unready_since;      //  monotonic ms the store began catching up (0: ready)
    int64_t next_checkpoint;    //  monotonic ms
    int64_t next_expiry;        //  monotonic ms
    ep_series_t *revision;      //  current revision
    ep_series_t *is_publisher;  //  1 while this instance publishes the change stream
    ep_series_t *db_bytes;      //  database size
    ep_series_t *published;     //  edgeplane_published_total{stream="model"}
    ep_series_t *entity_published;  //  edgeplane_published_total{stream="entityChange"}
    zlistx_t *leasing;          //  s_lease_call_t: lease requests in etcd
    zlistx_t *expiring;         //  s_expiring_t: entities whose lease ended, oldest first
};

//  ---------------------------------------------------------------------
//  Publishing

static void
s_send_event (modelsvc_t *self, const char *topic, Ep__Event *event)
{
    if (ep_publisher_send (self->publisher, topic, event) != 0)
        ep_log_error ("could not publish %s: larger than the cap", topic);
}

//  model.change of one revision, in parts under the cap if it is larger;
//  followers apply the revision only when every part has arrived.
static void
s_publish_parts (modelsvc_t *self, Ep__Event *event)
{
    Ep__ModelChange *change = event->model_change;
    if (ep__event__get_packed_size (event) <= PUBLISH_CAP) {
        s_send_event (self, "model.change", event);
        ep_series_add (self->published, 1);
        return;
    }
    size_t n_ops = change->n_ops, first = 0;
    Ep__ModelOp **ops = change->ops;
    uint32_t parts = 0;
    size_t bounds [n_ops + 1];
    while (first < n_ops) {
        size_t size = 0, last = first;
        while (last < n_ops && (last == first
               || size + ep__model_op__get_packed_size (ops [last]) + 16 < PUBLISH_CAP - 4096))
            size += ep__model_op__get_packed_size (ops [last++]) + 16;
        bounds [parts++] = first;
        first = last;
    }
    bounds [parts] = n_ops;
    for (uint32_t part = 0; part < parts; part++) {
        change->ops = ops + bounds [part];
        change->n_ops = bounds [part + 1] - bounds [part];
        change->part = part + 1;
        change->parts = parts;
        s_send_event (self, "model.change", event);
        ep_series_add (self->published, 1);
    }
    change->ops = ops;
    change->n_ops = n_ops;
    change->part = change->parts = 1;
}

//  One committed revision: model.change, then one entityChange.<type>.<op>
//  per op, for observers.
static void
s_publish_change (modelsvc_t *self, Ep__Event *event)
{
    s_publish_parts (self, event);
    static const char *types [] = { "entity", "router", "service", "identity", "controller" };
    static const char *kinds [] = { "changed", "created", "updated", "deleted" };
    Ep__ModelChange *change = event->model_change;
    for (size_t i = 0; i < change->n_ops; i++) {
        Ep__ModelOp *op = change->ops [i];
        Ep__EntityChange body = EP__ENTITY_CHANGE__INIT;
        body.entity_type = (char *) types [op->type <= 4? op->type: 0];
        body.op = (char *) kinds [op->kind <= 3? op->kind: 0];
        body.has_revision = true;
        body.revision = change->revision;
        body.id = op->id;
        body.entity = op->entity;
        body.principal = change->principal;
        Ep__Event entity_event = EP__EVENT__INIT;
        entity_event.body_case = EP__EVENT__BODY_ENTITY_CHANGE;
        entity_event.entity_change = &body;
        char topic [64];
        snprintf (topic, sizeof topic, "entityChange.%s.%s", body.entity_type, body.op);
        s_send_event (self, topic, &entity_event);
        ep_series_add (self->entity_published, 1);
    }
}

//  The loop's output callback: the committed batch's changes go out after
//  its replies, in revision order.
static void
s_publish (void *arg)
{
    modelsvc_t *self = (modelsvc_t *) arg;
    ep_output_item_t *output;
    while ((output = model_next_output (self->model))) {
        //  In etcd the elected publisher sends every instance's changes,
        //  from their records.
        if (!self->modelpub)
            s_publish_change (self, output->event);
        ep_output_item_destroy (&output);
    }
    ep_series_set (self->revision, (double) model_revision (self->model));
}

//  A change record, when this instance is the elected publisher.
static void
s_publish_record (void *arg, Ep__Event *event)
{
    modelsvc_t *self = (modelsvc_t *) arg;
    if (self->publisher)
        s_publish_change (self, event);
}

//  ---------------------------------------------------------------------
//  Requests (the ep_reqloop class)

static const char *
s_op_name (const ProtobufCMessage *message)
{
    const Ep__ModelRequest *request = (const Ep__ModelRequest *) message;
    switch (request->op_case) {
        case EP__MODEL_REQUEST__OP_WRITE:
            if (!request->write || !request->write->has_op)
                return "write";
            switch (request->write->op) {
                case EP__MODEL_WRITE__OP__CREATE: return "create";
                case EP__MODEL_WRITE__OP__UPDATE: return "update";
                case EP__MODEL_WRITE__OP__DELETE: return "delete";
                default: return "write";
            }
        case EP__MODEL_REQUEST__OP_TXN:      return "txn";
        case EP__MODEL_REQUEST__OP_GET:      return "get";
        case EP__MODEL_REQUEST__OP_LIST:     return "list";
        case EP__MODEL_REQUEST__OP_SNAPSHOT: return "snapshot";
        case EP__MODEL_REQUEST__OP_CHANGES:  return "changes";
        case EP__MODEL_REQUEST__OP_BACKUP:   return "backup";
        case EP__MODEL_REQUEST__OP_STATUS:   return "status";
        case EP__MODEL_REQUEST__OP_LEASE:    return "lease";
        default:                             return "unknown";
    }
}

static const char *const *
s_roles (void *arg, const ProtobufCMessage *message)
{
    (void) arg;
    static const char *writers [] = { EP_ROLE_OPERATOR, EP_ROLE_SERVICE, NULL };
    static const char *readers [] = { EP_ROLE_OPERATOR, EP_ROLE_SERVICE, EP_ROLE_SUBSCRIBER, EP_ROLE_VIEWER, NULL };
    const Ep__ModelRequest *request = (const Ep__ModelRequest *) message;
    bool write = model_is_write (request) || request->op_case == EP__MODEL_REQUEST__OP_BACKUP
              || request->op_case == EP__MODEL_REQUEST__OP_LEASE;
    return write? writers: readers;
}

static void
s_request_free (void *item)
{
    s_request_t *request = (s_request_t *) item;
    model_result_clear (&request->result);
    free (request);
}

static s_request_t *
s_request (ep_req_t *req)
{
    return (s_request_t *) ep_req_result (req);
}

static ep_req_kind_t
s_admit (void *arg, ep_req_t *req)
{
    s_request_t *request = (s_request_t *) zmalloc (sizeof (s_request_t));
    request->owner = (modelsvc_t *) arg;
    request->req = req;
    model_result_init (&request->result, ep_req_request_id (req));
    ep_req_set_result (req, request, s_request_free);
    return model_is_write ((const Ep__ModelRequest *) ep_req_message (req))? EP_REQ_WRITE: EP_REQ_READ;
}

static const ProtobufCMessage *
s_reply (void *arg, ep_req_t *req, Ep__Status__Code *code)
{
    (void) arg;
    model_result_t *result = &s_request (req)->result;
    *code = result->status.code;
    return &result->reply.base;
}

static void
s_error (void *arg, ep_req_t *req, Ep__Status__Code code, const char *message)
{
    (void) arg;
    model_result_t *result = &s_request (req)->result;
    model_result_clear (result);
    model_result_init (result, ep_req_request_id (req));
    model_result_fail (result, code, "%s", message);
}

//  A batch failed at begin or commit: a full or failing disk degrades the
//  service (ep_degraded), and the answers carry the store's reason.
static void
s_store_failed (modelsvc_t *self)
{
    snprintf (self->failure, sizeof self->failure, "%s", modelstore_error (self->store));
    ep_degraded_update (self->degraded, modelstore_fault (self->store), self->failure, ep_mono_ms ());
}

static const char *
s_failure (void *arg)
{
    return ((modelsvc_t *) arg)->failure;
}

//  ---------------------------------------------------------------------
//  Entities whose lease ended: each is deleted by an ordinary write of
//  the first batch after it is due, by principal lease-expired, if it is
//  still at the version its lease was for. The elected publisher does it
//  at once; the others after a grace (it may have died with the lease):
//  the compare on the version makes a second delete a harmless no-op.

static void
s_expiring_take (modelsvc_t *self, int64_t now)
{
    modelstore_expired_t what;
    while (modelstore_expired (self->store, &what)) {
        s_expiring_t *item = (s_expiring_t *) zmalloc (sizeof (s_expiring_t));
        item->what = what;
        item->graced = true;
        item->due_ms = now + EXPIRED_GRACE_MS;
        zlistx_add_end (self->expiring, item);
    }
    //  The publisher deletes at once, also what it queued with the grace
    //  before it was elected (the one that was may have died with them).
    bool publishing = self->modelpub && modelpub_publishing (self->modelpub);
    for (s_expiring_t *item = (s_expiring_t *) zlistx_first (self->expiring); item && publishing;
         item = (s_expiring_t *) zlistx_next (self->expiring))
        if (item->graced) {
            item->graced = false;
            if (item->due_ms > now)
                item->due_ms = now;
        }
    //  Those already gone, or written since, need no write.
    for (s_expiring_t *item = (s_expiring_t *) zlistx_first (self->expiring); item;
         item = (s_expiring_t *) zlistx_next (self->expiring)) {
        if (item->in_batch || item->due_ms > now)
            continue;
        Ep__Entity *entity = modelstore_get (self->store, item->what.type, item->what.id);
        entity_fields_t fields;
        bool current = entity && entity_fields (entity, &fields) && *fields.meta
                    && (*fields.meta)->version == item->what.version;
        if (entity)
            ep__entity__free_unpacked (entity, NULL);
        if (!current) {
            ep_log_debug ("the lease of %s %s ended: it is gone or was written since",
                          entity_type_name (item->what.type), item->what.id);
            zlistx_delete (self->expiring, zlistx_cursor (self->expiring));
        }
    }
}

//  The first expired entity due now, or NULL.
static s_expiring_t *
s_expiring_due (modelsvc_t *self, int64_t now)
{
    for (s_expiring_t *item = (s_expiring_t *) zlistx_first (self->expiring); item;
         item = (s_expiring_t *) zlistx_next (self->expiring))
        if (!item->in_batch && item->due_ms <= now)
            return item;
    return NULL;
}

//  When the next expired entity is due (monotonic ms), if a batch can
//  begin for it then; INT64_MAX if none is (the commit or catch-up that
//  holds it back wakes the loop when it completes).
static int64_t
s_expiring_next (modelsvc_t *self)
{
    int64_t next = INT64_MAX;
    if (ep_reqloop_committing (self->loop) || !modelstore_ready (self->store))
        return next;
    for (s_expiring_t *item = (s_expiring_t *) zlistx_first (self->expiring); item;
         item = (s_expiring_t *) zlistx_next (self->expiring))
        if (!item->in_batch && item->due_ms < next)
            next = item->due_ms;
    return next;
}

static bool
s_has_work (void *arg)
{
    modelsvc_t *self = (modelsvc_t *) arg;
    return s_expiring_due (self, ep_mono_ms ()) != NULL;
}

//  Stages the delete of one expired entity due now (one per batch: a batch
//  keeps room in the etcd transaction for it).
static void
s_expiring_write (modelsvc_t *self)
{
    s_expiring_t *item = s_expiring_due (self, ep_mono_ms ());
    if (!item)
        return;
    Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
    write.has_op = write.has_type = write.has_expected_version = true;
    write.op = EP__MODEL_WRITE__OP__DELETE;
    write.type = item->what.type;
    write.id = item->what.id;
    write.expected_version = item->what.version;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.op_case = EP__MODEL_REQUEST__OP_WRITE;
    request.write = &write;
    ep_caller_t caller = { .key = "", .role = "model", .name = "lease-expired" };
    model_result_t result;
    model_result_init (&result, "lease-expired");
    model_write (self->model, &request, &caller, ep_wall_ms (), &result);
    if (result.status.code == EP__STATUS__CODE__OK)
        ep_log_info ("%s %s: its lease ended, deleted at revision %llu",
                     entity_type_name (item->what.type), item->what.id,
                     (unsigned long long) result.reply.revision);
    else
        ep_log_info ("%s %s: its lease ended, not deleted: %s", entity_type_name (item->what.type),
                     item->what.id, result.status.message);
    //  Kept until the batch commits (or runs again after a lost race).
    item->in_batch = result.status.code == EP__STATUS__CODE__OK;
    if (!item->in_batch)
        zlistx_delete (self->expiring, zlistx_cursor (self->expiring));
    model_result_clear (&result);
}

//  After the commit: what it deleted is done; what it failed runs again.
static void
s_expiring_committed (modelsvc_t *self, int rc)
{
    for (s_expiring_t *item = (s_expiring_t *) zlistx_first (self->expiring); item;
         item = (s_expiring_t *) zlistx_next (self->expiring)) {
        if (item->in_batch && rc == 0)
            zlistx_delete (self->expiring, zlistx_cursor (self->expiring));
        else
        if (item->in_batch) {
            item->in_batch = false;
            if (!modelstore_retry (self->store))
                item->due_ms = ep_mono_ms () + EXPIRED_RETRY_MS;
        }
    }
}

static int
s_begin (void *arg)
{
    modelsvc_t *self = (modelsvc_t *) arg;
    self->batch_writes = 0;
    if (model_begin (self->model) != 0) {
        ep_log_error ("cannot start a transaction: %s", modelstore_error (self->store));
        s_store_failed (self);
        return -1;
    }
    s_expiring_write (self);
    return 0;
}

//  Applies one write and saves its reply in the open batch, so that it
//  commits with the write, for a retry that comes after a restart. Packed
//  once: the bytes saved are the bytes sent. A reply over the cap is not
//  saved (it is answered FAILED_PRECONDITION and not remembered).
static void
s_write (void *arg, ep_req_t *req)
{
    modelsvc_t *self = (modelsvc_t *) arg;
    model_result_t *result = &s_request (req)->result;
    //  A write run again (its batch lost to another instance) starts afresh.
    model_result_clear (result);
    model_result_init (result, ep_req_request_id (req));
    if (!modelstore_in_batch (self->store)) {
        //  SQLite lost the batch (a full disk): the commit fails it whole.
        model_result_fail (result, EP__STATUS__CODE__UNAVAILABLE, "%s", modelstore_error (self->store));
        return;
    }
    model_write (self->model, (const Ep__ModelRequest *) ep_req_message (req), ep_req_caller (req),
                 ep_wall_ms (), result);
    self->batch_writes++;
    char err [256];
    zframe_t *packed = ep_codec_pack (&result->reply.base, EP_CODEC_DEFAULT_CAP, err, sizeof err);
    if (!packed)
        return;
    //  Outside a batch (SQLite rolled it back) the row would commit on its
    //  own, a reply to a write that never commits.
    zframe_t *payload = ep_rpc_call_payload (ep_req_call (req));
    if (modelstore_in_batch (self->store)
    &&  modelstore_save_reply (self->store, ep_req_caller (req)->key, ep_req_request_id (req),
                               zframe_data (payload), zframe_size (payload), packed,
                               ep_wall_ms ()) != 0)
        ep_log_warn ("the reply to request %s will not survive a restart: %s",
                     ep_req_request_id (req), modelstore_error (self->store));
    ep_req_set_packed (req, &packed);
}

static void
s_committed (void *arg, int rc)
{
    modelsvc_t *self = (modelsvc_t *) arg;
    s_expiring_committed (self, rc);
    if (rc == 0)
        ep_degraded_update (self->degraded, EP_STORE_FAULT_NONE, NULL, ep_mono_ms ());
    else
        s_store_failed (self);
    if (self->committing) {
        self->committed = true;
        self->commit_rc = rc;
    }
    else
        ep_reqloop_committed (self->loop, rc);
}

static int
s_commit (void *arg)
{
    modelsvc_t *self = (modelsvc_t *) arg;
    //  Saved replies past the cache's limits go in the same commit; the
    //  work is bounded by this batch's (twice its writes, so the table
    //  keeps up with its inserts).
    if (modelstore_in_batch (self->store)
    &&  modelstore_prune_replies (self->store, ep_rpc_server_cache (self->rpc), ep_wall_ms (),
                                  2 * self->batch_writes + 64) < 0)
        ep_log_warn ("cannot prune the saved replies: %s", modelstore_error (self->store));
    self->committing = true;
    self->committed = false;
    model_commit (self->model, s_committed, self);
    self->committing = false;
    return self->committed? self->commit_rc: EP_REQLOOP_LATER;
}

static void
s_read_done (void *arg, int rc)
{
    (void) rc;
    s_request_t *request = (s_request_t *) arg;
    request->read_done = true;
    if (!request->reading)
        ep_reqloop_read_done (request->owner->loop, request->req);
}

//  ---------------------------------------------------------------------
//  Leases: an etcd lease each, granted or kept alive by whichever instance
//  the request reaches (modelstore.h, "Leases").

typedef struct {
    modelsvc_t *owner;          //  NULL once the service stopped
    s_request_t *request;       //  the request it answers
    void *handle;               //  in owner->leasing
    bool keepalive;             //  else a grant
    int64_t lease_id;           //  keepalive: the lease
} s_lease_call_t;

static void
s_lease_reply (void *arg, const ep_etcd_reply_t *reply, const char *error)
{
    s_lease_call_t *call = (s_lease_call_t *) arg;
    if (!call->owner) {
        free (call);
        return;
    }
    zlistx_detach (call->owner->leasing, call->handle);
    model_result_t *result = &call->request->result;
    //  etcd answers a keepalive of an ended lease with TTL 0 (gRPC
    //  NOT_FOUND, 5, from other calls on it).
    if (!reply || (reply->code && reply->code != 5))
        model_result_fail (result, EP__STATUS__CODE__UNAVAILABLE, "etcd: %s; retry",
                           reply? reply->error: error);
    else
    if (reply->code == 5 || reply->ttl <= 0)
        model_result_fail (result, EP__STATUS__CODE__NOT_FOUND, "lease %lld has expired: grant "
                           "another and write the entities again", (long long) call->lease_id);
    else {
        result->reply.has_lease_id = result->reply.has_lease_ttl_s = true;
        result->reply.lease_id = call->keepalive? call->lease_id: reply->lease_id;
        result->reply.lease_ttl_s = reply->ttl;
    }
    s_read_done (call->request, 0);
    free (call);
}

//  A lease request: 0 if answered now, EP_REQLOOP_LATER once etcd has it.
static int
s_lease (modelsvc_t *self, s_request_t *request, const Ep__LeaseRequest *lease)
{
    model_result_t *result = &request->result;
    if (!self->etcd) {
        model_result_fail (result, EP__STATUS__CODE__FAILED_PRECONDITION, "leases need the model in "
                           "etcd (EDGEPLANE_MODEL_STORE=etcd): the embedded model keeps its "
                           "entities until they are deleted");
        return 0;
    }
    if (!lease || (lease->has_ttl_s && (lease->ttl_s < 1 || lease->ttl_s > LEASE_TTL_MAX_S))) {
        model_result_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, "lease: ttl_s is 1 to %d "
                           "seconds", LEASE_TTL_MAX_S);
        return 0;
    }
    s_lease_call_t *call = (s_lease_call_t *) zmalloc (sizeof (s_lease_call_t));
    call->owner = self;
    call->request = request;
    call->keepalive = lease->has_lease_id && lease->lease_id;
    call->lease_id = lease->lease_id;
    int rc = call->keepalive
           ? ep_etcd_lease_keepalive (self->etcd, lease->lease_id, s_lease_reply, call)
           : ep_etcd_lease_grant (self->etcd, lease->has_ttl_s? lease->ttl_s: LEASE_TTL_S,
                                  s_lease_reply, call);
    if (rc != 0) {
        free (call);
        model_result_fail (result, EP__STATUS__CODE__INTERNAL, "the lease request could not be "
                           "encoded");
        return 0;
    }
    call->handle = zlistx_add_end (self->leasing, call);
    return EP_REQLOOP_LATER;
}

static int
s_read (void *arg, ep_req_t *req)
{
    modelsvc_t *self = (modelsvc_t *) arg;
    s_request_t *request = s_request (req);
    const Ep__ModelRequest *message = (const Ep__ModelRequest *) ep_req_message (req);
    if (message->op_case == EP__MODEL_REQUEST__OP_LEASE)
        return s_lease (self, request, message->lease);
    request->reading = true;
    model_read (self->model, (const Ep__ModelRequest *) ep_req_message (req), ep_wall_ms (),
                &request->result, s_read_done, request);
    request->reading = false;
    return request->read_done? 0: EP_REQLOOP_LATER;
}

//  Writes wait while the store catches up with another instance's commit
//  (etcd), for a while: then the begin says why it cannot.
static bool
s_ready (void *arg)
{
    modelsvc_t *self = (modelsvc_t *) arg;
    if (modelstore_ready (self->store)) {
        self->unready_since = 0;
        return true;
    }
    int64_t now = ep_mono_ms ();
    if (!self->unready_since)
        self->unready_since = now;
    return now - self->unready_since >= CATCH_UP_MS;
}

//  A batch that lost to another instance's commit runs once more, on the
//  state that instance left; any other failure is answered UNAVAILABLE.
static ep_reqloop_policy_t
s_commit_failed (void *arg)
{
    modelsvc_t *self = (modelsvc_t *) arg;
    if (modelstore_retry (self->store)) {
        ep_log_info ("the batch lost to another instance's commit: its writes run once more");
        return EP_REQLOOP_RETRY;
    }
    if (modelstore_too_large (self->store) && self->batch_writes > 1) {
        //  Sized at three etcd operations a write, the batch met one that
        //  needs more (a service's delete rewrites every router hosting
        //  it): alone, each may fit, and one that does not fails only itself.
        ep_log_info ("the batch of %lld writes was too large for one etcd transaction: "
                     "each runs once more on its own", (long long) self->batch_writes);
        return EP_REQLOOP_SPLIT;
    }
    if (modelstore_lease_gone (self->store) && self->batch_writes > 1) {
        //  One write's lease ended (or never was) and etcd refused the
        //  whole transaction: apart, only that write fails (NOT_FOUND).
        ep_log_info ("a write of the batch of %lld is under a lease that ended: each runs "
                     "once more on its own", (long long) self->batch_writes);
        return EP_REQLOOP_SPLIT;
    }
    if (modelstore_lease_gone (self->store))
        ep_log_info ("a write under a lease that ended is answered NOT_FOUND");
    else
        ep_log_warn ("the writes of the failed batch are answered UNAVAILABLE");
    return EP_REQLOOP_CARRY_ON;
}

//  A write alone in its batch under a lease that ended: NOT_FOUND, as a
//  keepalive of it is (grant another); anything else UNAVAILABLE.
static Ep__Status__Code
s_failure_code (void *arg)
{
    modelsvc_t *self = (modelsvc_t *) arg;
    return modelstore_lease_gone (self->store) && self->batch_writes == 1
         ? EP__STATUS__CODE__NOT_FOUND: EP__STATUS__CODE__OK;
}

static const ep_reqloop_class_t s_class = {
    .descriptor = &ep__model_request__descriptor,
    .smaller = "page_size or max_changes",
    .remember_writes = true,
    .op_name = s_op_name,
    .roles = s_roles,
    .admit = s_admit,
    .reply = s_reply,
    .error = s_error,
    .ready = s_ready,
    .has_work = s_has_work,
    .begin = s_begin,
    .write = s_write,
    .commit = s_commit,
    .read = s_read,
    .commit_failed = s_commit_failed,
    .failure = s_failure,
    .failure_code = s_failure_code,
    .output = s_publish,
};

//  ---------------------------------------------------------------------
//  The loop

int
modelsvc_turn (modelsvc_t *self)
{
    int64_t now = ep_mono_ms ();
    int64_t timeout = ep_publisher_tick (self->publisher);
    s_expiring_take (self, now);
    int64_t due [] = { self->next_expiry - now, ep_reqloop_next_due (self->loop),
                       s_expiring_next (self) - now,
                       ep_degraded_next (self->degraded, now),
                       self->modelpub? modelpub_tick (self->modelpub, now): INT64_MAX };
    for (size_t i = 0; i < EP_COUNT (due); i++)
        if (due [i] < timeout)
            timeout = due [i];
    ep_service_poll (self->service, &self->router, 1, timeout > 0? timeout: 0);
    if (ep_reqloop_serve (self->loop) != 0)
        return -1;
    now = ep_mono_ms ();
    //  Degraded and no write came to find out: probe, so readiness and
    //  writes come back by themselves once there is room.
    if (!ep_reqloop_committing (self->loop) && ep_degraded_probe_due (self->degraded, now))
        ep_degraded_update (self->degraded,
                            modelstore_probe (self->store) == 0? EP_STORE_FAULT_NONE:
                                                                 modelstore_fault (self->store),
                            modelstore_error (self->store), now);
    if (self->modelpub) {
        modelpub_tick (self->modelpub, now);
        ep_series_set (self->is_publisher, modelpub_publishing (self->modelpub)? 1: 0);
        //  The other instances' commits move the model too (the mirror).
        ep_series_set (self->revision, (double) model_revision (self->model));
    }
    if (now >= self->next_expiry) {
        model_expire_snapshots (self->model, ep_wall_ms ());
        self->next_expiry = now + EXPIRY_MS;
    }
    if (now >= self->next_checkpoint) {
        modelstore_tick (self->store);
        if (modelstore_size (self->store) >= 0)
            ep_series_set (self->db_bytes, (double) modelstore_size (self->store));
        self->next_checkpoint = now + CHECKPOINT_MS;
    }
    return 0;
}

//  ---------------------------------------------------------------------
//  Life cycle

static void
s_metrics (modelsvc_t *self, ep_metrics_t *metrics)
{
    self->revision = ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_model_revision",
        "The last committed revision.", 0, NULL), NULL);
    self->is_publisher = ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_model_publisher",
        "1 while this instance publishes the change stream (always with SQLite; in etcd, "
        "the elected one).", 0, NULL), NULL);
    self->db_bytes = ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_model_db_bytes",
        "Size of the model database.", 0, NULL), NULL);
    const char *model_stream [] = { "model" }, *entity_stream [] = { "entityChange" };
    self->published = ep_counter_series (ep_metrics_published (metrics), model_stream);
    self->entity_published = ep_counter_series (ep_metrics_published (metrics), entity_stream);
}

//  The etcd client's sockets in the service's waits.
static int
s_etcd_fill (void *arg, zmq_pollitem_t *items, int max)
{
    return ep_etcd_pollitems ((ep_etcd_t *) arg, items, max);
}

static long
s_etcd_due (void *arg)
{
    return ep_etcd_timeout ((ep_etcd_t *) arg);
}

static void
s_etcd_dispatch (void *arg, zmq_pollitem_t *items, int nitems)
{
    ep_etcd_dispatch ((ep_etcd_t *) arg, items, nitems);
}

//  What /readyz says while etcd is out of reach at start.
static void
s_etcd_waiting (void *arg, const char *reason)
{
    modelsvc_t *self = (modelsvc_t *) arg;
    if (ep_service_http (self->service))
        ep_http_set_ready (ep_service_http (self->service), false, reason);
}

//  The model's keys in etcd: the client (its sockets join the service's
//  waits) and the store, which loads its mirror before this returns.
static int
s_open_etcd (modelsvc_t *self, const modelsvc_config_t *config)
{
    ep_etcd_settings_t settings = {
        .endpoints = (char *) config->etcd_endpoints, .ca = (char *) config->etcd_ca,
        .cert = (char *) config->etcd_cert, .key = (char *) config->etcd_key };
    char err [768];
    self->etcd = ep_etcd_settings_client (&settings, ETCD_IDLE_MS, err, sizeof err);
    if (!self->etcd) {
        ep_log_error ("EDGEPLANE_MODEL_STORE=etcd: %s", err);
        return -1;
    }
    ep_service_add_fds (self->service, &(ep_service_fds_t) {
        .fill = s_etcd_fill, .due = s_etcd_due, .dispatch = s_etcd_dispatch, .arg = self->etcd });
    const char *prefix = config->etcd_prefix? config->etcd_prefix: "/edgeplane/";
    self->path = zsys_sprintf ("etcd %s%s", config->etcd_endpoints, prefix);
    if (modelstore_etcd_reachable (self->etcd, config->etcd_endpoints, s_etcd_waiting, self) != 0)
        return -1;
    modelstore_etcd_config_t store = { .etcd = self->etcd, .prefix = prefix,
                                       .max_txn_ops = config->etcd_max_txn_ops,
                                       .replies_ttl_ms = config->reply_ttl_ms };
    self->store = modelstore_etcd_new (&store, err, sizeof err);
    if (!self->store) {
        ep_log_error ("cannot open the model in etcd (%s, prefix %s): %s", config->etcd_endpoints,
                      prefix, err);
        return -1;
    }
    //  A batch is one etcd transaction: its writes must fit --max-txn-ops.
    //  Less the two of an expired entity's delete, which a batch may carry.
    int64_t fits = (config->etcd_max_txn_ops - 4) / ETCD_WRITE_OPS;
    if (self->max_batch > fits) {
        ep_log_info ("batches of at most %lld requests: one etcd transaction holds %lld operations "
                     "(EDGEPLANE_ETCD_MAX_TXN_OPS)", (long long) (fits > 1? fits: 1),
                     (long long) config->etcd_max_txn_ops);
        self->max_batch = fits > 1? fits: 1;
    }
    return 0;
}

//  Opens the store (model.db, or the model's keys in etcd) and the model
//  over it.
static int
s_open_store (modelsvc_t *self, const modelsvc_config_t *config, const char *data_dir)
{
    self->max_batch = config->max_batch;
    if (config->store && streq (config->store, "etcd")) {
        if (s_open_etcd (self, config) != 0)
            return -1;
    }
    else {
        self->path = config->db_path? strdup (config->db_path): zsys_sprintf ("%s/model.db", data_dir);
        if (zsys_dir_create ("%s", data_dir) != 0)
            ep_log_warn ("cannot create %s", data_dir);
        ep_service_lock_or_exit (self->service, self->path,
            "to run several model instances, put the model in etcd (EDGEPLANE_MODEL_STORE=etcd, docs/etcd.md)");
        self->store = modelstore_sqlite_open (self->path);
    }
    if (!self->store || !(self->model = model_new (self->store, config->retain)))
        return -1;
    if (self->etcd) {
        //  Once the model has its generation, which the checkpoint names.
        modelpub_config_t pub = { .etcd = self->etcd,
                                  .prefix = config->etcd_prefix? config->etcd_prefix: "/edgeplane/",
                                  .name = ep_service_source_id (self->service),
                                  .lease_ttl_ms = config->lease_ttl_ms, .publish = s_publish_record,
                                  .arg = self };
        self->modelpub = modelpub_new (&pub);
    }
    ep_series_set (self->is_publisher, self->modelpub? 0: 1);
    ep_log_info ("model %s at revision %llu, generation %s", self->path,
                 (unsigned long long) model_revision (self->model), model_generation (self->model));
    ep_series_set (self->revision, (double) model_revision (self->model));
    return 0;
}

static void
s_send_degraded (void *arg, const char *topic, Ep__Event *event)
{
    s_send_event ((modelsvc_t *) arg, topic, event);
}

static int
s_open_bus (modelsvc_t *self, const ep_common_opts_t *common)
{
    char *bus_key = ep_keys_public_txt (common->keys_dir, "bus");
    self->publisher = bus_key? ep_publisher_new (common->bus_pub, ep_service_cert (self->service),
                                                 bus_key, ep_service_source_id (self->service),
                                                 PUBLISH_CAP + 4096): NULL;
    free (bus_key);
    if (!self->publisher) {
        ep_log_error ("cannot publish to %s (EDGEPLANE_BUS_PUB)", common->bus_pub);
        return -1;
    }
    ep_publisher_declare (self->publisher, "model");
    ep_publisher_declare (self->publisher, "entityChange");
    ep_publisher_declare (self->publisher, "service");
    self->degraded = ep_degraded_new ("model", self->path, ep_service_http (self->service),
                                      ep_service_metrics (self->service), s_send_degraded, self);
    return 0;
}

static void
s_pruned (void *arg, int rc, const char *error)
{
    (void) error;
    modelsvc_t *self = (modelsvc_t *) arg;
    self->pruned = true;
    self->pruned_rc = rc;
}

//  Drops the saved replies that have expired, then loads the rest into the
//  reply cache, before the first request is read.
static int
s_load_replies (modelsvc_t *self)
{
    ep_replycache_t *cache = ep_rpc_server_cache (self->rpc);
    int pruned = -1;
    if (modelstore_begin (self->store) == 0) {
        pruned = modelstore_prune_replies (self->store, cache, ep_wall_ms (), 0);
        if (pruned >= 0)
            modelstore_commit (self->store, s_pruned, self);
        else
            modelstore_abandon (self->store);
        //  Not waited for if it completes later: each commit prunes too.
        if (!self->pruned || self->pruned_rc != 0)
            pruned = -1;
    }
    if (pruned < 0)
        //  Not fatal: loading skips them, and each commit prunes again.
        ep_log_warn ("cannot prune the saved replies: %s", modelstore_error (self->store));
    int loaded = modelstore_load_replies (self->store, cache, ep_wall_ms (), ep_mono_ms ());
    if (loaded < 0) {
        ep_log_error ("cannot load the saved replies: %s", modelstore_error (self->store));
        return -1;
    }
    ep_log_info ("%d saved replies loaded for retries (%d past the limits dropped)", loaded,
                 pruned > 0? pruned: 0);
    return 0;
}

//  The API socket, the saved replies, and the request loop over them.
static int
s_open_api (modelsvc_t *self, const modelsvc_config_t *config)
{
    self->router = ep_service_api_socket (self->service, config->listen, EP_CODEC_DEFAULT_CAP, 0);
    if (!self->router)
        return -1;
    self->rpc = ep_rpc_server_new (self->router, EP_CODEC_DEFAULT_CAP, REPLIES_MAX, config->reply_ttl_ms);
    if (s_load_replies (self) != 0)
        return -1;
    ep_reqloop_config_t loop = {
        //  max-batch counts every request served in a turn, reads too.
        .max_batch = (size_t) self->max_batch,
        .max_receive = (size_t) self->max_batch,
        .commit_delay_ms = config->commit_delay_ms,
        .histograms = "model"
    };
    self->loop = ep_reqloop_new (&s_class, self, self->rpc, self->router,
                                 ep_service_metrics (self->service), &loop);
    return 0;
}

modelsvc_t *
modelsvc_new (ep_service_t *service, const modelsvc_config_t *config)
{
    modelsvc_t *self = (modelsvc_t *) zmalloc (sizeof (modelsvc_t));
    self->service = service;
    s_metrics (self, ep_service_metrics (service));
    self->leasing = zlistx_new ();
    self->expiring = zlistx_new ();
    zlistx_set_destructor (self->expiring, (czmq_destructor *) zstr_free);
    const ep_common_opts_t *common = ep_service_opts (service);
    if (s_open_store (self, config, common->data_dir) != 0
    ||  s_open_bus (self, common) != 0
    ||  s_open_api (self, config) != 0
    ||  ep_service_ready (service) != 0)
        modelsvc_destroy (&self);
    else {
        int64_t now = ep_mono_ms ();
        self->next_checkpoint = now + CHECKPOINT_MS;
        self->next_expiry = now + EXPIRY_MS;
    }
    return self;
}

void
modelsvc_destroy (modelsvc_t **self_p)
{
    modelsvc_t *self = *self_p;
    if (self) {
        //  Lease requests in etcd are answered by the shutdown; their
        //  replies, if etcd still delivers them, are dropped.
        for (s_lease_call_t *call = (s_lease_call_t *) zlistx_first (self->leasing); call;
             call = (s_lease_call_t *) zlistx_next (self->leasing))
            call->owner = NULL;
        zlistx_destroy (&self->leasing);
        if (self->loop)
            ep_reqloop_shutdown (self->loop, "the model service is shutting down; retry");
        ep_reqloop_destroy (&self->loop);
        ep_rpc_server_destroy (&self->rpc);
        zsock_destroy (&self->router);
        ep_publisher_destroy (&self->publisher);
        ep_degraded_destroy (&self->degraded);
        model_destroy (&self->model);
        modelpub_stop (self->modelpub);
        modelstore_destroy (&self->store);
        ep_etcd_destroy (&self->etcd);
        modelpub_destroy (&self->modelpub);
        zlistx_destroy (&self->expiring);
        free (self->path);
        free (self);
        *self_p = NULL;
    }
}
