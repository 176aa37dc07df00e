/*  edgeplane-model: the router model service.

    One loop: read every request waiting (up to a batch cap), apply the
    writes in one transaction (a savepoint each), commit once (one fsync for
    the batch), then answer the writes, publish their changes in revision
    order, and answer the reads from committed state. A reply is never sent
    before its write is durable. The replies to writes are saved in the
    same transaction (the reply cache made durable), so a write retried
    after a crash is answered, not applied again. docs/model.md is the
    contract.
*/
#include "ep_service.h"
#include "ep_codec.h"
#include "ep_publisher.h"
#include "ep_rpc_server.h"
#include "model.h"
#include "modelstore_sqlite.h"

#define PUBLISH_CAP     (1024u * 1024u)     //  largest model.change part
#define CHECKPOINT_MS   10000               //  WAL checkpoint period
#define EXPIRY_MS       1000                //  snapshot expiry check period
#define REPLIES_MAX     100000              //  replies remembered for retries
#define REPLIES_TTL_MS  600000              //  for at most this long

typedef struct {
    ep_rpc_call_t *call;        //  the request being served
    Ep__ModelRequest *request;  //  decoded
    model_result_t result;      //  what to answer
    zframe_t *packed;           //  write: the reply packed and saved before the commit
    const char *op;             //  metric label
    int64_t started_us;         //  for the duration metric
} s_pending_t;

typedef struct {
    ep_service_t *service;      //  shared process scaffolding
    modelstore_t *store;        //  model.db
    model_t *model;             //  the state machine
    zsock_t *router;            //  API socket
    ep_rpc_server_t *rpc;       //  request ids, reply cache, roles
    ep_publisher_t *publisher;  //  model.change, entityChange.*
    int64_t max_batch;          //  requests per transaction at most
    int64_t commit_delay_ms;    //  latency added to gather more writes
    ep_histogram_t *commit_seconds;     //  commit latency
    ep_histogram_t *batch_writes;       //  writes per commit (per fsync)
    ep_series_t *revision;      //  current revision
    ep_series_t *db_bytes;      //  database size
    ep_series_t *published;     //  edgeplane_published_total{stream="model"}
    ep_series_t *entity_published;  //  edgeplane_published_total{stream="entityChange"}
} s_model_t;

static const char *
s_op_name (const Ep__ModelRequest *request)
{
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
        default:                             return "unknown";
    }
}

//  Records the outcome of a commit or read that completes inline.
static void
s_set_rc (void *arg, int rc)
{
    *(int *) arg = rc;
}

static void
s_store_rc (void *arg, int rc, const char *error)
{
    (void) error;
    *(int *) arg = rc;
}

//  Answers one pending request and records its metrics.
static void
s_answer (s_model_t *self, s_pending_t *pending, bool remember)
{
    model_result_t *result = &pending->result;
    if (pending->packed)
        ep_rpc_server_reply (self->rpc, &pending->call, &pending->packed, remember);
    else
        ep_rpc_server_answer (self->rpc, &pending->call, &result->reply.base, remember,
                              "page_size or max_changes");
    double seconds = (ep_mono_us () - pending->started_us) / 1e6;
    ep_metrics_request_done (ep_service_metrics (self->service), pending->op,
                             ep_status_code_name (result->status.code), seconds);
}

static void
s_pending_free (s_pending_t *pending)
{
    model_result_clear (&pending->result);
    zframe_destroy (&pending->packed);
    if (pending->request)
        ep__model_request__free_unpacked (pending->request, NULL);
    free (pending);
}

static void
s_send_event (s_model_t *self, const char *topic, Ep__Event *event)
{
    if (ep_publisher_send (self->publisher, topic, event) != 0)
        ep_log_error ("could not publish %s: larger than the cap", topic);
}

//  Publishes one committed revision: model.change (in parts if large) and
//  one entityChange.<type>.<op> per op.
static void
s_publish (s_model_t *self, Ep__ModelChange *change)
{
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_MODEL_CHANGE;
    event.model_change = change;
    if (ep__event__get_packed_size (&event) <= PUBLISH_CAP) {
        s_send_event (self, "model.change", &event);
        ep_series_add (self->published, 1);
    }
    else {
        //  Split the ops into parts under the cap; followers apply the
        //  revision only when every part has arrived.
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
            s_send_event (self, "model.change", &event);
            ep_series_add (self->published, 1);
        }
        change->ops = ops;
        change->n_ops = n_ops;
        change->part = change->parts = 1;
    }
    static const char *types [] = { "entity", "router", "service", "identity", "controller" };
    static const char *kinds [] = { "changed", "created", "updated", "deleted" };
    for (size_t i = 0; i < change->n_ops; i++) {
        Ep__ModelOp *op = change->ops [i];
        Ep__EntityChange body = EP__ENTITY_CHANGE__INIT;
        body.entity_type = (char *) types [op->type <= 4? op->type: 0];
        body.op = (char *) kinds [op->kind <= 3? op->kind: 0];
        body.has_revision = true;
        body.revision = change->revision;
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

//  Reads one request off the socket and decodes it; NULL if it was
//  answered already (retry, malformed, refused).
static s_pending_t *
s_receive (s_model_t *self)
{
    ep_rpc_call_t *call;
    Ep__ModelRequest *request = (Ep__ModelRequest *) ep_rpc_server_recv_request (
        self->rpc, &ep__model_request__descriptor, &call);
    if (!request)
        return NULL;
    static const char *writers [] = { EP_ROLE_OPERATOR, EP_ROLE_SERVICE, NULL };
    static const char *readers [] = { EP_ROLE_OPERATOR, EP_ROLE_SERVICE, EP_ROLE_SUBSCRIBER, NULL };
    bool write = model_is_write (request) || request->op_case == EP__MODEL_REQUEST__OP_BACKUP;
    if (!ep_rpc_server_require_role (self->rpc, &call, write? writers: readers)) {
        ep__model_request__free_unpacked (request, NULL);
        return NULL;
    }
    s_pending_t *pending = (s_pending_t *) zmalloc (sizeof (s_pending_t));
    pending->call = call;
    pending->request = request;
    pending->op = s_op_name (request);
    pending->started_us = ep_mono_us ();
    model_result_init (&pending->result, ep_rpc_call_request_id (call));
    return pending;
}

//  Packs a write's reply and saves it in the open transaction, so that it
//  commits with the write, for a retry that comes after a restart. Packed
//  once: the bytes saved are the bytes sent. A reply over the cap is not
//  saved (it is answered FAILED_PRECONDITION and not remembered).
static void
s_save_reply (s_model_t *self, s_pending_t *pending)
{
    char err [256];
    pending->packed = ep_codec_pack (&pending->result.reply.base, EP_CODEC_DEFAULT_CAP,
                                     err, sizeof err);
    //  Outside a transaction (SQLite rolled the batch back) the row would
    //  commit on its own, a reply to a write that never commits.
    if (!pending->packed || !modelstore_in_batch (self->store))
        return;
    zframe_t *payload = ep_rpc_call_payload (pending->call);
    if (modelstore_save_reply (self->store, ep_rpc_call_caller (pending->call)->key,
                               ep_rpc_call_request_id (pending->call), zframe_data (payload),
                               zframe_size (payload), pending->packed, ep_wall_ms ()) != 0)
        ep_log_warn ("the reply to request %s will not survive a restart: %s",
                     ep_rpc_call_request_id (pending->call), modelstore_error (self->store));
}

//  Serves everything waiting on the API socket: one transaction for the
//  writes, then replies, changes, and reads.
static void
s_serve (s_model_t *self)
{
    zlistx_t *writes = zlistx_new ();
    zlistx_t *reads = zlistx_new ();
    bool open = false;
    int64_t deadline = ep_mono_ms () + self->commit_delay_ms;
    while ((int64_t) (zlistx_size (writes) + zlistx_size (reads)) < self->max_batch) {
        if (!(zsock_events (self->router) & ZMQ_POLLIN)) {
            //  Nothing waiting: commit now, or linger up to commit-delay
            //  for more writes to share the fsync.
            if (!open || ep_mono_ms () >= deadline)
                break;
            zpoller_t *poller = zpoller_new (self->router, NULL);
            void *which = zpoller_wait (poller, (int) (deadline - ep_mono_ms ()));
            zpoller_destroy (&poller);
            if (!which)
                break;
            continue;
        }
        s_pending_t *pending = s_receive (self);
        if (!pending)
            continue;
        if (model_is_write (pending->request)) {
            if (!open && model_begin (self->model) != 0) {
                ep_log_error ("cannot start a transaction: %s", modelstore_error (self->store));
                pending->result.status.code = EP__STATUS__CODE__UNAVAILABLE;
                pending->result.status.message = "the store cannot take writes now; retry";
                s_answer (self, pending, false);
                s_pending_free (pending);
                continue;
            }
            open = true;
            model_write (self->model, pending->request, ep_rpc_call_caller (pending->call),
                         ep_wall_ms (), &pending->result);
            s_save_reply (self, pending);
            zlistx_add_end (writes, pending);
        }
        else
            zlistx_add_end (reads, pending);
    }
    if (open) {
        //  Saved replies past the cache's limits go in the same commit; the
        //  work is bounded by this batch's (twice its writes, so the table
        //  keeps up with its inserts).
        if (modelstore_in_batch (self->store)
        &&  modelstore_prune_replies (self->store, ep_rpc_server_cache (self->rpc), ep_wall_ms (),
                                      2 * zlistx_size (writes) + 64) < 0)
            ep_log_warn ("cannot prune the saved replies: %s", modelstore_error (self->store));
        int64_t started = ep_mono_us ();
        int rc = -1;
        model_commit (self->model, s_set_rc, &rc);
        ep_histogram_observe (self->commit_seconds, NULL, (ep_mono_us () - started) / 1e6);
        ep_histogram_observe (self->batch_writes, NULL, (double) zlistx_size (writes));
        s_pending_t *pending = (s_pending_t *) zlistx_first (writes);
        for (; pending; pending = (s_pending_t *) zlistx_next (writes)) {
            if (rc != 0) {
                //  Its saved reply was rolled back with it.
                zframe_destroy (&pending->packed);
                model_result_clear (&pending->result);
                model_result_init (&pending->result, ep_rpc_call_request_id (pending->call));
                pending->result.status.code = EP__STATUS__CODE__UNAVAILABLE;
                pending->result.status.message = "the write was not committed (storage error); retry";
                s_answer (self, pending, false);
            }
            else
                s_answer (self, pending, true);
        }
        //  Changes go out after their replies, in revision order.
        for (pending = (s_pending_t *) zlistx_first (writes); rc == 0 && pending;
             pending = (s_pending_t *) zlistx_next (writes))
            if (pending->result.change)
                s_publish (self, pending->result.change);
        ep_series_set (self->revision, (double) model_revision (self->model));
    }
    s_pending_t *pending = (s_pending_t *) zlistx_first (reads);
    for (; pending; pending = (s_pending_t *) zlistx_next (reads)) {
        int rc = -1;
        model_read (self->model, pending->request, ep_wall_ms (), &pending->result, s_set_rc, &rc);
        EP_ASSERT (rc == 0);    //  the SQLite store completes inline
        s_answer (self, pending, false);
    }
    for (pending = (s_pending_t *) zlistx_first (writes); pending;
         pending = (s_pending_t *) zlistx_next (writes))
        s_pending_free (pending);
    for (pending = (s_pending_t *) zlistx_first (reads); pending;
         pending = (s_pending_t *) zlistx_next (reads))
        s_pending_free (pending);
    zlistx_destroy (&writes);
    zlistx_destroy (&reads);
}

//  Drops the saved replies that have expired, then loads the rest into the
//  reply cache, before the first request is read.
static int
s_load_replies (s_model_t *self)
{
    ep_replycache_t *cache = ep_rpc_server_cache (self->rpc);
    int pruned = -1;
    if (modelstore_begin (self->store) == 0) {
        pruned = modelstore_prune_replies (self->store, cache, ep_wall_ms (), 0);
        int rc = -1;
        if (pruned >= 0)
            modelstore_commit (self->store, s_store_rc, &rc);
        else
            modelstore_abandon (self->store);
        if (rc != 0)
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

int
main (int argc, char **argv)
{
    static char *listen, *db_path;
    static int64_t retain, max_batch, commit_delay;
    ep_opt_t opts [] = {
        { .name = "listen", .env = "EDGEPLANE_MODEL_LISTEN", .def = EP_DEFAULT_MODEL_API,
          .type = EP_OPT_ENDPOINT, .str = &listen, .help = "Where the model API binds." },
        { .name = "db", .env = "EDGEPLANE_MODEL_DB", .type = EP_OPT_STRING, .str = &db_path,
          .def_help = "$EDGEPLANE_DATA_DIR/model.db", .help = "The model's SQLite database." },
        { .name = "retain", .env = "EDGEPLANE_MODEL_RETAIN", .def = "100000", .type = EP_OPT_INT,
          .num = &retain, .min = 1, .max = 100000000,
          .help = "Revisions kept in the change log (older ones: followers re-snapshot)." },
        { .name = "max-batch", .env = "EDGEPLANE_MODEL_MAX_BATCH", .def = "256", .type = EP_OPT_INT,
          .num = &max_batch, .min = 1, .max = 100000,
          .help = "Requests served per transaction (one fsync) at most." },
        { .name = "commit-delay", .env = "EDGEPLANE_MODEL_COMMIT_DELAY", .def = "0",
          .type = EP_OPT_DURATION, .num = &commit_delay, .min = 0, .max = 1000,
          .help = "Latency a write may wait for others to share its fsync." },
    };
    s_model_t self = { 0 };
    self.service = ep_service_new ("model", "The router model: versioned, durable, with a change stream.",
                                   EP_HTTP_LISTEN_MODEL, opts, EP_COUNT (opts), argc, argv);
    const ep_common_opts_t *common = ep_service_opts (self.service);
    self.max_batch = max_batch;
    self.commit_delay_ms = commit_delay;
    ep_metrics_t *metrics = ep_service_metrics (self.service);
    static const double commit_bounds [] = { 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1 };
    static const double batch_bounds [] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 1024 };
    self.commit_seconds = ep_metrics_histogram (metrics, "edgeplane_model_commit_seconds",
        "Time to commit one transaction (its fsync included).", 0, NULL,
        EP_COUNT (commit_bounds), commit_bounds);
    self.batch_writes = ep_metrics_histogram (metrics, "edgeplane_model_writes_per_commit",
        "Write requests sharing one transaction and fsync.", 0, NULL,
        EP_COUNT (batch_bounds), batch_bounds);
    self.revision = ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_model_revision",
        "The last committed revision.", 0, NULL), NULL);
    self.db_bytes = ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_model_db_bytes",
        "Size of the model database.", 0, NULL), NULL);
    const char *model_stream [] = { "model" }, *entity_stream [] = { "entityChange" };
    self.published = ep_counter_series (ep_metrics_published (metrics), model_stream);
    self.entity_published = ep_counter_series (ep_metrics_published (metrics), entity_stream);

    int rc = 0;
    char *path = db_path? strdup (db_path): zsys_sprintf ("%s/model.db", common->data_dir);
    if (zsys_dir_create ("%s", common->data_dir) != 0)
        ep_log_warn ("cannot create %s", common->data_dir);
    self.store = modelstore_sqlite_open (path);
    if (!self.store)
        rc = -1;
    if (rc == 0 && !(self.model = model_new (self.store, (uint64_t) retain)))
        rc = -1;
    if (rc == 0) {
        ep_log_info ("model %s at revision %llu, generation %s", path,
                     (unsigned long long) model_revision (self.model), model_generation (self.model));
        ep_series_set (self.revision, (double) model_revision (self.model));
        char *bus_key = ep_keys_public_txt (common->keys_dir, "bus");
        self.publisher = bus_key? ep_publisher_new (common->bus_pub, ep_service_cert (self.service),
                                                    bus_key, ep_service_source_id (self.service),
                                                    PUBLISH_CAP + 4096): NULL;
        free (bus_key);
        if (!self.publisher) {
            ep_log_error ("cannot publish to %s (EDGEPLANE_BUS_PUB)", common->bus_pub);
            rc = -1;
        }
        else {
            ep_publisher_declare (self.publisher, "model");
            ep_publisher_declare (self.publisher, "entityChange");
        }
    }
    if (rc == 0) {
        self.router = zsock_new (ZMQ_ROUTER);
        zsock_set_router_mandatory (self.router, 0);
        zsock_set_heartbeat_ivl (self.router, 1000);
        zsock_set_heartbeat_timeout (self.router, 3000);
        self.rpc = ep_rpc_server_new (self.router, EP_CODEC_DEFAULT_CAP, REPLIES_MAX, REPLIES_TTL_MS);
        rc = s_load_replies (&self);
        if (rc == 0)
            rc = ep_service_bind (self.service, self.router, "api", listen);
    }
    if (rc == 0)
        rc = ep_service_ready (self.service);

    zpoller_t *poller = zpoller_new (ep_service_auth_actor (self.service), self.router, NULL);
    int64_t next_checkpoint = ep_mono_ms () + CHECKPOINT_MS;
    int64_t next_expiry = ep_mono_ms () + EXPIRY_MS;
    while (rc == 0 && !ep_service_interrupted (self.service)) {
        int64_t timeout = ep_publisher_tick (self.publisher);
        int64_t now = ep_mono_ms ();
        if (next_expiry - now < timeout)
            timeout = next_expiry - now;
        void *which = ep_service_wait (self.service, poller, timeout);
        if (which == self.router)
            s_serve (&self);
        now = ep_mono_ms ();
        if (now >= next_expiry) {
            model_expire_snapshots (self.model, ep_wall_ms ());
            next_expiry = now + EXPIRY_MS;
        }
        if (now >= next_checkpoint) {
            modelstore_tick (self.store);
            ep_series_set (self.db_bytes, (double) modelstore_size (self.store));
            next_checkpoint = now + CHECKPOINT_MS;
        }
    }
    ep_log_info ("stopping");
    zpoller_destroy (&poller);
    ep_rpc_server_destroy (&self.rpc);
    zsock_destroy (&self.router);
    ep_publisher_destroy (&self.publisher);
    model_destroy (&self.model);
    modelstore_destroy (&self.store);
    free (path);
    ep_service_destroy (&self.service);
    return rc == 0? 0: 1;
}
