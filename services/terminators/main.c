/*  edgeplane-terminators: the terminator lifecycle service.

    One loop: follow the model (ep_follower), follow router presence
    (presence.* on the bus), read requests. Reads (get, list, ack) are
    answered at once from committed state. A write waits ("parked", no
    reply yet) until this service's copy of the model has reached the
    revision the request was based on, so nothing is ever decided against
    an older model than the router saw; past a deadline it gets UNAVAILABLE
    and is retried. Writes that may go are served in batches: one
    transaction with the internal work (reconciliation, presence, timers)
    and a savepoint per request, one commit (one fsync), then the replies,
    then the events and commands. docs/terminators.md is the contract.
*/
#include "ep_service.h"
#include "ep_codec.h"
#include "ep_follower.h"
#include "ep_model_view.h"
#include "ep_publisher.h"
#include "ep_rpc_server.h"
#include "ep_store.h"
#include "ep_subscriber.h"
#include "terminators.h"
#include "termstore.h"

#define CHECKPOINT_MS   10000       //  WAL checkpoint period
#define GAUGES_MS       1000        //  gauges refreshed at least this often
#define EXPIRE_MS       250         //  presence expiry check period
#define PARK_MAX        200000      //  requests waiting for the model, at most
#define PRESENCE_BATCH  10000       //  presence events read per loop at most

//  A request being served.
typedef struct {
    ep_rpc_call_t *call;        //  the call (answered once)
    Ep__TerminatorRequest *request;     //  decoded
    terminators_result_t result;        //  what to answer
    const char *op;             //  metric label
    int64_t started_us;         //  for the duration metric
    uint64_t revision;          //  the model revision it was based on
    int64_t deadline_ms;        //  parked: when to give up waiting (monotonic)
} s_pending_t;

typedef struct {
    ep_service_t *service;      //  shared process scaffolding
    ep_store_t *store;          //  terminators.db
    ep_model_view_t *view;      //  the model, as followed
    ep_follower_t *follower;    //  keeps view current
    terminators_t *core;        //  the state machines
    zsock_t *router;            //  API socket
    ep_rpc_server_t *rpc;       //  request ids, in-flight retries, roles
    ep_publisher_t *publisher;  //  terminator.*, cmd.*
    ep_subscriber_t *presence;  //  presence.* from the watchdogs
    zlistx_t *parked;           //  s_pending_t waiting for the model (arrival order)
    zlistx_t *ready;            //  s_pending_t to serve in the next batch
    int64_t max_batch;          //  writes per transaction at most
    int64_t park_timeout_ms;    //  how long a write waits for the model
    uint64_t snapshots;         //  follower snapshots already reconciled
    bool is_ready;              //  ready file written
    //  Metrics (counters move by the difference from what was last seen)
    ep_histogram_t *commit_seconds;     //  commit latency
    ep_histogram_t *batch_writes;       //  writes per commit
    ep_series_t *states [TERMSM_STATE_COUNT];  //  edgeplane_terminators{state}
    ep_series_t *tombstones;    //  edgeplane_terminator_tombstones
    ep_series_t *spins;         //  edgeplane_terminator_spins_total
    ep_series_t *parked_gauge;  //  edgeplane_terminators_parked
    ep_series_t *park_timeouts; //  edgeplane_terminators_park_timeouts_total
    ep_series_t *revision;      //  edgeplane_terminators_model_revision
    ep_series_t *online;        //  edgeplane_terminators_routers_online
    ep_series_t *instances;     //  edgeplane_terminators_watchdog_instances
    ep_series_t *commands;      //  edgeplane_terminator_commands_total{result="sent"}
    ep_series_t *acks;          //  edgeplane_terminator_commands_total{result="acked"}
    ep_series_t *published;     //  edgeplane_published_total{stream="terminator"}
    ep_series_t *cmd_published; //  edgeplane_published_total{stream="cmd"}
    ep_series_t *gaps;          //  edgeplane_stream_gaps_total{stream="model"}
    ep_series_t *db_bytes;      //  edgeplane_terminators_db_bytes
    ep_series_t *replayed;      //  edgeplane_terminator_events_replayed_total
    uint64_t seen_spins, seen_commands, seen_acks, seen_gaps;   //  last values added
} s_main_t;

static const char *
s_op_name (const Ep__TerminatorRequest *request)
{
    switch (request->op_case) {
        case EP__TERMINATOR_REQUEST__OP_CREATE:    return "create";
        case EP__TERMINATOR_REQUEST__OP_UPDATE:    return "update";
        case EP__TERMINATOR_REQUEST__OP_DELETE_ID: return "delete";
        case EP__TERMINATOR_REQUEST__OP_GET_ID:    return "get";
        case EP__TERMINATOR_REQUEST__OP_LIST:      return "list";
        case EP__TERMINATOR_REQUEST__OP_VALIDATE:  return "validate";
        case EP__TERMINATOR_REQUEST__OP_ACK:       return "ack";
        default:                                   return "unknown";
    }
}

static void
s_pending_free (s_pending_t *pending)
{
    terminators_result_clear (&pending->result);
    if (pending->request)
        ep__terminator_request__free_unpacked (pending->request, NULL);
    free (pending);
}

//  Answers a request and frees it. Replies are not remembered for
//  retries: every write is idempotent by its router-chosen id and the
//  model revision it carries, and routers reuse request ids for their
//  next request about the same terminator (see docs/terminators.md).
static void
s_answer (s_main_t *self, s_pending_t *pending)
{
    terminators_result_t *result = &pending->result;
    ep_rpc_server_answer (self->rpc, &pending->call, &result->reply.base, false, "page_size");
    ep_metrics_request_done (ep_service_metrics (self->service), pending->op,
                             ep_status_code_name (result->status.code),
                             (ep_mono_us () - pending->started_us) / 1e6);
    s_pending_free (pending);
}

static void
s_answer_error (s_main_t *self, s_pending_t *pending, Ep__Status__Code code, const char *message)
{
    terminators_result_clear (&pending->result);
    terminators_result_init (&pending->result, ep_rpc_call_request_id (pending->call));
    snprintf (pending->result.message, sizeof pending->result.message, "%s", message);
    pending->result.status.code = code;
    pending->result.status.message = pending->result.message;
    pending->result.reply.has_retriable = true;
    pending->result.reply.retriable = code == EP__STATUS__CODE__UNAVAILABLE;
    pending->result.reply.has_model_revision = true;
    pending->result.reply.model_revision = ep_model_view_revision (self->view);
    s_answer (self, pending);
}

//  True once this service's model has reached the request's revision.
static bool
s_model_reached (s_main_t *self, uint64_t revision)
{
    return ep_follower_ready (self->follower) && ep_model_view_revision (self->view) >= revision;
}

//  Reads one request: reads are answered now, writes queued or parked.
static void
s_receive (s_main_t *self)
{
    ep_rpc_call_t *call;
    Ep__TerminatorRequest *request = (Ep__TerminatorRequest *) ep_rpc_server_recv_request (
        self->rpc, &ep__terminator_request__descriptor, &call);
    if (!request)
        return;
    bool routers_only = terminators_is_write (request) || request->op_case == EP__TERMINATOR_REQUEST__OP_ACK;
    static const char *writers [] = { EP_ROLE_SERVICE, NULL };
    static const char *readers [] = { EP_ROLE_OPERATOR, EP_ROLE_SERVICE, NULL };
    if (!ep_rpc_server_require_role (self->rpc, &call, routers_only? writers: readers)) {
        ep__terminator_request__free_unpacked (request, NULL);
        return;
    }
    if (routers_only && !streq (ep_rpc_call_caller (call)->name, "watchdog")) {
        ep_rpc_server_fail (self->rpc, &call, EP__STATUS__CODE__PERMISSION_DENIED,
                            "only the watchdog speaks for routers (%s is not allowed here); "
                            "operators may get and list", s_op_name (request));
        ep__terminator_request__free_unpacked (request, NULL);
        return;
    }
    s_pending_t *pending = (s_pending_t *) zmalloc (sizeof (s_pending_t));
    pending->call = call;
    pending->request = request;
    pending->op = s_op_name (request);
    pending->started_us = ep_mono_us ();
    pending->revision = request->has_model_revision? request->model_revision: 0;
    terminators_result_init (&pending->result, ep_rpc_call_request_id (call));
    if (!terminators_is_write (request)) {
        terminators_read (self->core, request, ep_wall_ms (), &pending->result);
        s_answer (self, pending);
    }
    else
    if (s_model_reached (self, pending->revision))
        zlistx_add_end (self->ready, pending);
    else
    if (zlistx_size (self->parked) >= PARK_MAX)
        s_answer_error (self, pending, EP__STATUS__CODE__UNAVAILABLE,
                        "too many requests are waiting for the model; retry");
    else {
        pending->deadline_ms = ep_mono_ms () + self->park_timeout_ms;
        zlistx_add_end (self->parked, pending);
    }
}

//  Parked writes whose model revision has arrived join the next batch;
//  those that waited too long are told to retry.
static void
s_unpark (s_main_t *self)
{
    int64_t now = ep_mono_ms ();
    s_pending_t *pending = (s_pending_t *) zlistx_first (self->parked);
    while (pending) {
        bool reached = s_model_reached (self, pending->revision);
        if (!reached && now < pending->deadline_ms) {
            pending = (s_pending_t *) zlistx_next (self->parked);
            continue;
        }
        zlistx_detach_cur (self->parked);
        if (reached)
            zlistx_add_end (self->ready, pending);
        else {
            char message [256];
            snprintf (message, sizeof message,
                      "this service has not seen model revision %llu yet (it has %llu%s): retry",
                      (unsigned long long) pending->revision,
                      (unsigned long long) ep_model_view_revision (self->view),
                      ep_follower_ready (self->follower)? "": ", still loading the model");
            ep_series_add (self->park_timeouts, 1);
            s_answer_error (self, pending, EP__STATUS__CODE__UNAVAILABLE, message);
        }
        pending = (s_pending_t *) zlistx_next (self->parked);
    }
}

static int64_t
s_next_park_deadline (s_main_t *self)
{
    int64_t next = INT64_MAX;
    s_pending_t *pending = (s_pending_t *) zlistx_first (self->parked);
    for (; pending; pending = (s_pending_t *) zlistx_next (self->parked))
        if (pending->deadline_ms < next)
            next = pending->deadline_ms;
    return next;
}

//  Publishes what committed batches produced.
static void
s_publish (s_main_t *self)
{
    terminators_output_t *output;
    while ((output = terminators_next_output (self->core))) {
        if (ep_publisher_send (self->publisher, output->topic, output->event) != 0)
            ep_log_error ("could not publish %s: larger than the cap", output->topic);
        else
            ep_series_add (output->outbox_seq? self->published: self->cmd_published, 1);
        if (output->outbox_seq)
            terminators_published (self->core, output->outbox_seq);
        terminators_output_destroy (&output);
    }
}

static void
s_gauges (s_main_t *self);

//  One batch: internal work and up to max_batch ready writes in one
//  transaction; gauges and replies after the commit, then events.
static void
s_batch (s_main_t *self)
{
    int64_t now = ep_wall_ms ();
    zlistx_t *batch = zlistx_new ();
    int rc = terminators_begin (self->core);
    if (rc == 0) {
        terminators_work (self->core, now);
        s_pending_t *pending;
        while ((int64_t) zlistx_size (batch) < self->max_batch
           &&  (pending = (s_pending_t *) zlistx_first (self->ready))) {
            zlistx_detach_cur (self->ready);
            terminators_write (self->core, pending->request, now, &pending->result);
            zlistx_add_end (batch, pending);
        }
        int64_t started = ep_mono_us ();
        rc = terminators_commit (self->core);
        ep_histogram_observe (self->commit_seconds, NULL, (ep_mono_us () - started) / 1e6);
        ep_histogram_observe (self->batch_writes, NULL, (double) zlistx_size (batch));
        s_gauges (self);        //  what a reply reports, the metrics already show
    }
    else {
        ep_log_error ("cannot start a transaction: %s", ep_store_last_error ());
        s_pending_t *pending;
        while ((pending = (s_pending_t *) zlistx_first (self->ready))) {
            zlistx_detach_cur (self->ready);
            zlistx_add_end (batch, pending);
        }
    }
    s_pending_t *pending;
    while ((pending = (s_pending_t *) zlistx_first (batch))) {
        zlistx_detach_cur (batch);
        if (rc != 0)
            s_answer_error (self, pending, EP__STATUS__CODE__UNAVAILABLE,
                            "the change was not committed (storage error); retry");
        else
            s_answer (self, pending);
    }
    zlistx_destroy (&batch);
    s_publish (self);
}

static void
s_counter_catch_up (ep_series_t *series, uint64_t now, uint64_t *seen)
{
    if (now > *seen) {
        ep_series_add (series, (double) (now - *seen));
        *seen = now;
    }
}

static void
s_gauges (s_main_t *self)
{
    for (int state = TERMSM_ESTABLISHING; state < TERMSM_STATE_COUNT; state++)
        if (self->states [state])
            ep_series_set (self->states [state], (double) terminators_count (self->core, state));
    ep_series_set (self->tombstones, (double) terminators_count (self->core, TERMSM_DELETED));
    ep_series_set (self->parked_gauge, (double) zlistx_size (self->parked));
    ep_series_set (self->revision, (double) ep_model_view_revision (self->view));
    ep_series_set (self->online, (double) terminators_routers_online (self->core));
    ep_series_set (self->instances, (double) terminators_instances (self->core));
    s_counter_catch_up (self->spins, terminators_spins (self->core), &self->seen_spins);
    s_counter_catch_up (self->commands, terminators_commands (self->core), &self->seen_commands);
    s_counter_catch_up (self->acks, terminators_acks (self->core), &self->seen_acks);
    s_counter_catch_up (self->gaps, ep_follower_gaps (self->follower), &self->seen_gaps);
}

static void
s_metrics (s_main_t *self)
{
    ep_metrics_t *metrics = ep_service_metrics (self->service);
    static const double commit_bounds [] = { 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1 };
    static const double batch_bounds [] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 1024 };
    self->commit_seconds = ep_metrics_histogram (metrics, "edgeplane_terminators_commit_seconds",
        "Time to commit one batch (its fsync included).", 0, NULL, EP_COUNT (commit_bounds), commit_bounds);
    self->batch_writes = ep_metrics_histogram (metrics, "edgeplane_terminators_writes_per_commit",
        "Write requests sharing one transaction and fsync.", 0, NULL, EP_COUNT (batch_bounds), batch_bounds);
    const char *state_label [] = { "state" };
    ep_gauge_t *states = ep_metrics_gauge (metrics, "edgeplane_terminators",
        "Terminators by state (tombstones are edgeplane_terminator_tombstones).", 1, state_label);
    for (int state = TERMSM_ESTABLISHING; state < TERMSM_STATE_COUNT; state++)
        if (state != TERMSM_DELETED) {
            const char *value [] = { termsm_state_name (state) };
            self->states [state] = ep_gauge_series (states, value);
        }
    self->tombstones = ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_terminator_tombstones",
        "Deleted terminators kept so that a late create cannot bring them back.", 0, NULL), NULL);
    self->spins = ep_counter_series (ep_metrics_counter (metrics, "edgeplane_terminator_spins_total",
        "Create -> delete -> create of one (router, service) with no model revision touching it "
        "in between. Must stay 0.", 0, NULL), NULL);
    self->parked_gauge = ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_terminators_parked",
        "Requests waiting for this service's model to reach their revision.", 0, NULL), NULL);
    self->park_timeouts = ep_counter_series (ep_metrics_counter (metrics,
        "edgeplane_terminators_park_timeouts_total",
        "Requests told to retry because the model revision they need did not arrive in time.", 0, NULL), NULL);
    self->revision = ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_terminators_model_revision",
        "The model revision this service has applied.", 0, NULL), NULL);
    self->online = ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_terminators_routers_online",
        "Routers held by a watchdog, from presence.", 0, NULL), NULL);
    self->instances = ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_terminators_watchdog_instances",
        "Watchdog instances heard from.", 0, NULL), NULL);
    const char *result_label [] = { "result" };
    ep_counter_t *commands = ep_metrics_counter (metrics, "edgeplane_terminator_commands_total",
        "ValidateTerminators commands sent to routers, and acks received.", 1, result_label);
    const char *sent [] = { "sent" }, *acked [] = { "acked" };
    self->commands = ep_counter_series (commands, sent);
    self->acks = ep_counter_series (commands, acked);
    const char *terminator_stream [] = { "terminator" }, *cmd_stream [] = { "cmd" }, *model_stream [] = { "model" };
    self->published = ep_counter_series (ep_metrics_published (metrics), terminator_stream);
    self->cmd_published = ep_counter_series (ep_metrics_published (metrics), cmd_stream);
    self->gaps = ep_counter_series (ep_metrics_stream_gaps (metrics), model_stream);
    self->db_bytes = ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_terminators_db_bytes",
        "Size of the terminator database.", 0, NULL), NULL);
    self->replayed = ep_counter_series (ep_metrics_counter (metrics, "edgeplane_terminator_events_replayed_total",
        "Events committed by an earlier run but maybe not published, published again at start "
        "(they are the first messages of this run's terminator stream).", 0, NULL), NULL);
}

static void
s_presence_events (s_main_t *self)
{
    char *topic = NULL;
    Ep__Event *event;
    int64_t now = ep_mono_ms ();
    for (int i = 0; i < PRESENCE_BATCH && (event = ep_subscriber_recv (self->presence, 0, &topic)); i++) {
        if (event->body_case == EP__EVENT__BODY_PRESENCE)
            terminators_presence (self->core, topic, event->presence, now);
        zstr_free (&topic);
    }
}

static void
s_free_pending (void **item)
{
    if (*item) {
        s_pending_free ((s_pending_t *) *item);
        *item = NULL;
    }
}

int
main (int argc, char **argv)
{
    static char *listen, *db_path;
    static int64_t max_batch, park_timeout, establish_timeout, retry_base, retry_max, retry_cap;
    static int64_t delete_grace, tombstone_ttl, presence_expiry, settle;
    ep_opt_t opts [] = {
        { .name = "listen", .env = "EDGEPLANE_TERMINATORS_LISTEN", .def = EP_DEFAULT_TERMINATORS_API,
          .type = EP_OPT_ENDPOINT, .str = &listen, .help = "Where the terminators API binds." },
        { .name = "db", .env = "EDGEPLANE_TERMINATORS_DB", .type = EP_OPT_STRING, .str = &db_path,
          .def_help = "$EDGEPLANE_DATA_DIR/terminators.db", .help = "The terminators' SQLite database." },
        { .name = "max-batch", .env = "EDGEPLANE_TERMINATORS_MAX_BATCH", .def = "1000", .type = EP_OPT_INT,
          .num = &max_batch, .min = 1, .max = 100000,
          .help = "Write requests served per transaction (one fsync) at most." },
        { .name = "park-timeout", .env = "EDGEPLANE_TERMINATORS_PARK_TIMEOUT", .def = "10s",
          .type = EP_OPT_DURATION, .num = &park_timeout, .min = 1, .max = 600000,
          .help = "How long a request waits for the model revision it was based on (then: retry)." },
        { .name = "establish-timeout", .env = "EDGEPLANE_TERMINATORS_ESTABLISH_TIMEOUT", .def = "10s",
          .type = EP_OPT_DURATION, .num = &establish_timeout, .min = 1, .max = 86400000,
          .help = "A terminator whose router is not online this long after its create is FAILED." },
        { .name = "retry-base", .env = "EDGEPLANE_TERMINATORS_RETRY_BASE", .def = "1s",
          .type = EP_OPT_DURATION, .num = &retry_base, .min = 1, .max = 86400000,
          .help = "First delay before a FAILED terminator is tried again (doubling, with jitter)." },
        { .name = "retry-max", .env = "EDGEPLANE_TERMINATORS_RETRY_MAX", .def = "1m",
          .type = EP_OPT_DURATION, .num = &retry_max, .min = 1, .max = 86400000,
          .help = "Longest delay between two tries of a FAILED terminator." },
        { .name = "retry-cap", .env = "EDGEPLANE_TERMINATORS_RETRY_CAP", .def = "8", .type = EP_OPT_INT,
          .num = &retry_cap, .min = 0, .max = 1000,
          .help = "Automatic tries of a FAILED terminator; then it waits for its router." },
        { .name = "delete-grace", .env = "EDGEPLANE_TERMINATORS_DELETE_GRACE", .def = "10s",
          .type = EP_OPT_DURATION, .num = &delete_grace, .min = 0, .max = 86400000,
          .help = "How long a terminator the model retired waits for its router's delete." },
        { .name = "tombstone-ttl", .env = "EDGEPLANE_TERMINATORS_TOMBSTONE_TTL", .def = "24h",
          .type = EP_OPT_DURATION, .num = &tombstone_ttl, .min = 1, .max = INT64_MAX,
          .help = "How long a deleted terminator is kept to refuse late creates." },
        { .name = "presence-expiry", .env = "EDGEPLANE_TERMINATORS_PRESENCE_EXPIRY", .def = "3500ms",
          .type = EP_OPT_DURATION, .num = &presence_expiry, .min = 10, .max = 3600000,
          .help = "A watchdog instance unheard this long loses its routers (beacons come every second)." },
        { .name = "settle", .env = "EDGEPLANE_TERMINATORS_SETTLE", .def = "3500ms",
          .type = EP_OPT_DURATION, .num = &settle, .min = 0, .max = 3600000,
          .help = "After a start, timers wait this long for presence to be known again." },
    };
    s_main_t self = { 0 };
    self.service = ep_service_new ("terminators", "Terminator lifecycle: idempotent, ordered by model revision, no spin.",
                                   EP_HTTP_LISTEN_TERMINATORS, opts, EP_COUNT (opts), argc, argv);
    const ep_common_opts_t *common = ep_service_opts (self.service);
    self.max_batch = max_batch;
    self.park_timeout_ms = park_timeout;
    s_metrics (&self);
    terminators_config_t config;
    terminators_config_defaults (&config);
    config.sm.establish_timeout_ms = establish_timeout;
    config.sm.retry_base_ms = retry_base;
    config.sm.retry_max_ms = retry_max > retry_base? retry_max: retry_base;
    config.sm.retry_cap = (uint32_t) retry_cap;
    config.sm.delete_grace_ms = delete_grace;
    config.sm.tombstone_ttl_ms = tombstone_ttl;
    config.presence_expiry_ms = presence_expiry;
    config.settle_ms = settle;
    self.parked = zlistx_new ();
    zlistx_set_destructor (self.parked, s_free_pending);
    self.ready = zlistx_new ();
    zlistx_set_destructor (self.ready, s_free_pending);

    int rc = 0;
    char *path = db_path? strdup (db_path): zsys_sprintf ("%s/terminators.db", common->data_dir);
    if (zsys_dir_create ("%s", common->data_dir) != 0)
        ep_log_warn ("cannot create %s", common->data_dir);
    self.store = ep_store_new (path, termstore_migrations, termstore_migrations_count);
    if (!self.store) {
        ep_log_error ("cannot open %s: %s", path, ep_store_last_error ());
        rc = -1;
    }
    self.view = ep_model_view_new ();
    if (rc == 0 && !(self.core = terminators_new (self.store, self.view, &config, ep_wall_ms ())))
        rc = -1;
    char *bus_key = ep_keys_public_txt (common->keys_dir, "bus");
    char *model_key = ep_keys_public_txt (common->keys_dir, "model");
    if (rc == 0 && (!bus_key || !model_key))
        rc = -1;
    if (rc == 0) {
        ep_log_info ("%s: %zu terminators, %zu tombstones", path,
                     terminators_count (self.core, TERMSM_ESTABLISHING)
                     + terminators_count (self.core, TERMSM_ESTABLISHED)
                     + terminators_count (self.core, TERMSM_FAILED)
                     + terminators_count (self.core, TERMSM_DELETING),
                     terminators_count (self.core, TERMSM_DELETED));
        zcert_t *cert = ep_service_cert (self.service);
        self.publisher = ep_publisher_new (common->bus_pub, cert, bus_key,
                                           ep_service_source_id (self.service), EP_CODEC_DEFAULT_CAP);
        self.presence = ep_subscriber_new (common->bus_sub, cert, bus_key, EP_CODEC_DEFAULT_CAP, NULL, NULL);
        self.follower = ep_follower_new (common->bus_sub, common->model_api, cert, bus_key, model_key, self.view);
        if (self.follower)
            ep_follower_set_metrics (self.follower, ep_service_metrics (self.service));
        if (!self.publisher || !self.presence || !self.follower) {
            ep_log_error ("cannot reach the bus (%s, %s) or the model (%s): check the addresses",
                          common->bus_pub, common->bus_sub, common->model_api);
            rc = -1;
        }
        else {
            ep_publisher_declare (self.publisher, "terminator");
            ep_subscriber_subscribe (self.presence, "presence.");
        }
    }
    if (rc == 0) {
        self.router = zsock_new (ZMQ_ROUTER);
        zsock_set_router_mandatory (self.router, 0);
        zsock_set_rcvhwm (self.router, 200000);
        zsock_set_sndhwm (self.router, 200000);
        zsock_set_heartbeat_ivl (self.router, 1000);
        zsock_set_heartbeat_timeout (self.router, 3000);
        self.rpc = ep_rpc_server_new (self.router, EP_CODEC_DEFAULT_CAP, 1000, 60000);
        rc = ep_service_bind (self.service, self.router, "api", listen);
    }

    zpoller_t *poller = rc == 0? zpoller_new (ep_service_auth_actor (self.service), self.router,
                                              ep_follower_socket (self.follower),
                                              ep_subscriber_socket (self.presence), NULL): NULL;
    int64_t next_checkpoint = ep_mono_ms () + CHECKPOINT_MS;
    int64_t next_gauges = 0, next_expire = ep_mono_ms () + EXPIRE_MS;
    while (rc == 0 && !ep_service_interrupted (self.service)) {
        int64_t now = ep_mono_ms ();
        int64_t timeout = ep_publisher_tick (self.publisher);
        int64_t follower = ep_follower_tick (self.follower);
        int64_t park = s_next_park_deadline (&self) - ep_mono_ms ();
        int64_t due [] = { follower, park, next_expire - now, next_gauges - now,
                           zlistx_size (self.ready)? 0: terminators_next_due (self.core, ep_wall_ms (), 1000) };
        for (size_t i = 0; i < EP_COUNT (due); i++)
            if (due [i] < timeout)
                timeout = due [i];
        void *which = ep_service_wait (self.service, poller, timeout > 0? timeout: 0);
        ep_follower_handle (self.follower);
        if (ep_follower_snapshots (self.follower) != self.snapshots) {
            //  A snapshot replaced the view: everything is checked against it.
            self.snapshots = ep_follower_snapshots (self.follower);
            terminators_model_loaded (self.core);
        }
        if (!self.is_ready && ep_follower_ready (self.follower)) {
            int replayed = terminators_replay_outbox (self.core);
            if (replayed > 0) {
                ep_log_info ("publishing %d events committed before the last stop", replayed);
                ep_series_add (self.replayed, replayed);
            }
            s_gauges (&self);
            rc = ep_service_ready (self.service);
            self.is_ready = true;
        }
        s_presence_events (&self);
        now = ep_mono_ms ();
        if (now >= next_expire) {
            terminators_presence_expire (self.core, now);
            next_expire = now + EXPIRE_MS;
        }
        for (int64_t i = 0; i < 4 * self.max_batch && (zsock_events (self.router) & ZMQ_POLLIN); i++)
            s_receive (&self);
        s_unpark (&self);
        //  Batches until the ready writes and the due work are done.
        bool served = false;
        for (int round = 0; round < 64 && ep_follower_ready (self.follower); round++) {
            if (zlistx_size (self.ready) == 0 && !terminators_has_work (self.core, ep_wall_ms ()))
                break;
            s_batch (&self);
            served = true;
        }
        s_publish (&self);
        now = ep_mono_ms ();
        if (served || which || now >= next_gauges) {
            s_gauges (&self);
            next_gauges = now + GAUGES_MS;
        }
        if (now >= next_checkpoint) {
            ep_store_checkpoint (self.store);
            ep_series_set (self.db_bytes, (double) ep_store_db_size (self.store));
            next_checkpoint = now + CHECKPOINT_MS;
        }
    }
    ep_log_info ("stopping");
    //  Whoever still waits is told to retry (elsewhere, or after the restart).
    zlistx_t *waiting [] = { self.ready, self.parked };
    for (size_t i = 0; i < EP_COUNT (waiting); i++) {
        s_pending_t *pending;
        while (self.rpc && (pending = (s_pending_t *) zlistx_first (waiting [i]))) {
            zlistx_detach_cur (waiting [i]);
            s_answer_error (&self, pending, EP__STATUS__CODE__UNAVAILABLE,
                            "the terminator service is shutting down; retry");
        }
    }
    zpoller_destroy (&poller);
    zlistx_destroy (&self.parked);
    zlistx_destroy (&self.ready);
    ep_rpc_server_destroy (&self.rpc);
    zsock_destroy (&self.router);
    ep_follower_destroy (&self.follower);
    ep_subscriber_destroy (&self.presence);
    ep_publisher_destroy (&self.publisher);
    terminators_destroy (&self.core);
    ep_model_view_destroy (&self.view);
    ep_store_destroy (&self.store);
    free (bus_key);
    free (model_key);
    free (path);
    ep_service_destroy (&self.service);
    return rc == 0? 0: 1;
}
