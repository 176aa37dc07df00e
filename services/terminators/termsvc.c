/*  termsvc.c: the terminator service object (termsvc.h). */
#include "termsvc_internal.h"
#include "ep_links.h"
#include "ep_codec.h"
#include "ep_degraded.h"
#include "ep_follower.h"
#include "ep_model_view.h"
#include "ep_publisher.h"
#include "ep_reqloop.h"
#include "ep_rpc_server.h"
#include "ep_store.h"
#include "ep_subscriber.h"
#include "termshards.h"
#include "termstore.h"
#include "termwait.h"
#include <unistd.h>

#define CHECKPOINT_MS   10000       //  WAL checkpoint period
#define GAUGES_MS       1000        //  gauges refreshed at least this often
#define EXPIRE_MS       250         //  presence expiry check period
#define PARK_MAX        200000      //  requests waiting for the model, at most
#define PRESENCE_BATCH  10000       //  presence events read per loop at most
#define ROUNDS_MAX      64          //  batches per turn at most

//  ---------------------------------------------------------------------
//  Metrics

static void
s_counter_catch_up (ep_series_t *series, uint64_t now, uint64_t *seen)
{
    if (now > *seen) {
        ep_series_add (series, (double) (now - *seen));
        *seen = now;
    }
}

static void
s_gauges (termsvc_t *self)
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

static ep_series_t *
s_gauge (ep_metrics_t *metrics, const char *name, const char *help)
{
    return ep_gauge_series (ep_metrics_gauge (metrics, name, help, 0, NULL), NULL);
}

static ep_series_t *
s_counter (ep_metrics_t *metrics, const char *name, const char *help)
{
    return ep_counter_series (ep_metrics_counter (metrics, name, help, 0, NULL), NULL);
}

static void
s_metrics (termsvc_t *self, ep_metrics_t *metrics)
{
    const char *state_label [] = { "state" };
    ep_gauge_t *states = ep_metrics_gauge (metrics, "edgeplane_terminators",
        "Terminators by state (tombstones are edgeplane_terminator_tombstones).", 1, state_label);
    for (int state = TERMSM_ESTABLISHING; state < TERMSM_STATE_COUNT; state++)
        if (state != TERMSM_DELETED) {
            const char *value [] = { termsm_state_name (state) };
            self->states [state] = ep_gauge_series (states, value);
        }
    self->tombstones = s_gauge (metrics, "edgeplane_terminator_tombstones",
        "Deleted terminators kept so that a late create cannot bring them back.");
    self->spins = s_counter (metrics, "edgeplane_terminator_spins_total",
        "Create -> delete -> create of one (router, service) with no model revision touching it "
        "in between. Must stay 0.");
    self->parked_gauge = s_gauge (metrics, "edgeplane_terminators_parked",
        "Requests waiting for this service's model to reach their revision.");
    self->park_timeouts = s_counter (metrics, "edgeplane_terminators_park_timeouts_total",
        "Requests told to retry because the model revision they need did not arrive in time.");
    self->revision = s_gauge (metrics, "edgeplane_terminators_model_revision",
        "The model revision this service has applied.");
    self->online = s_gauge (metrics, "edgeplane_terminators_routers_online",
        "Routers held by a watchdog, from presence.");
    self->instances = s_gauge (metrics, "edgeplane_terminators_watchdog_instances",
        "Watchdog instances heard from.");
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
    self->db_bytes = s_gauge (metrics, "edgeplane_terminators_db_bytes",
        "Size of the terminator database.");
    self->replayed = s_counter (metrics, "edgeplane_terminator_events_replayed_total",
        "Events committed by an earlier run but maybe not published, published again at start "
        "(they are the first messages of this run's terminator stream).");
}

//  ---------------------------------------------------------------------
//  Requests (the ep_reqloop class)

static const char *
s_op_name (const ProtobufCMessage *message)
{
    switch (((const Ep__TerminatorRequest *) message)->op_case) {
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

//  Writes and acks speak for a router: only the watchdog sends them.
static bool
s_routers_only (const Ep__TerminatorRequest *request)
{
    return terminators_is_write (request) || request->op_case == EP__TERMINATOR_REQUEST__OP_ACK;
}

static const char *const *
s_roles (void *arg, const ProtobufCMessage *message)
{
    (void) arg;
    static const char *writers [] = { EP_ROLE_SERVICE, NULL };
    static const char *readers [] = { EP_ROLE_OPERATOR, EP_ROLE_SERVICE, NULL };
    return s_routers_only ((const Ep__TerminatorRequest *) message)? writers: readers;
}

static void
s_request_free (void *item)
{
    termsvc_request_t *request = (termsvc_request_t *) item;
    terminators_result_clear (&request->result);
    free (request);
}

//  True once this service's model has reached revision.
static bool
s_model_reached (termsvc_t *self, uint64_t revision)
{
    return ep_follower_ready (self->follower) && ep_model_view_revision (self->view) >= revision;
}

static ep_req_kind_t
s_admit (void *arg, ep_req_t *req)
{
    termsvc_t *self = (termsvc_t *) arg;
    const Ep__TerminatorRequest *message = (const Ep__TerminatorRequest *) ep_req_message (req);
    if (s_routers_only (message) && !streq (ep_req_caller (req)->name, "watchdog")) {
        char refusal [256];
        snprintf (refusal, sizeof refusal, "only the watchdog speaks for routers (%s is not allowed "
                  "here); operators may get and list", s_op_name (ep_req_message (req)));
        ep_reqloop_refuse (self->loop, req, EP__STATUS__CODE__PERMISSION_DENIED, refusal);
        return EP_REQ_REFUSED;
    }
    termsvc_request_t *request = (termsvc_request_t *) zmalloc (sizeof (termsvc_request_t));
    request->revision = message->has_model_revision? message->model_revision: 0;
    terminators_result_init (&request->result, ep_req_request_id (req));
    ep_req_set_result (req, request, s_request_free);
    if (!terminators_is_write (message))
        return EP_REQ_READ;
    if (termsvc_not_mine (self, req, message))
        return EP_REQ_REFUSED;
    if (s_model_reached (self, request->revision))
        return EP_REQ_WRITE;
    if (zlistx_size (self->parked) >= PARK_MAX) {
        ep_reqloop_fail (self->loop, req, EP__STATUS__CODE__UNAVAILABLE,
                         "too many requests are waiting for the model; retry");
        return EP_REQ_REFUSED;
    }
    request->deadline_ms = ep_mono_ms () + self->park_timeout_ms;
    zlistx_add_end (self->parked, req);
    return EP_REQ_HELD;
}

//  Replies are not remembered for retries: every write is idempotent by
//  its router-chosen id and the model revision it carries, and routers
//  reuse request ids for their next request about the same terminator
//  (see docs/terminators.md).
static const ProtobufCMessage *
s_reply (void *arg, ep_req_t *req, Ep__Status__Code *code)
{
    (void) arg;
    terminators_result_t *result = &((termsvc_request_t *) ep_req_result (req))->result;
    *code = result->status.code;
    return &result->reply.base;
}

static void
s_error (void *arg, ep_req_t *req, Ep__Status__Code code, const char *message)
{
    termsvc_t *self = (termsvc_t *) arg;
    terminators_result_t *result = &((termsvc_request_t *) ep_req_result (req))->result;
    terminators_result_clear (result);
    terminators_result_init (result, ep_req_request_id (req));
    snprintf (result->message, sizeof result->message, "%s", message);
    result->status.code = code;
    result->status.message = result->message;
    result->reply.has_retriable = true;
    result->reply.retriable = code == EP__STATUS__CODE__UNAVAILABLE;
    result->reply.has_model_revision = true;
    result->reply.model_revision = ep_model_view_revision (self->view);
    termsvc_request_t *request = (termsvc_request_t *) ep_req_result (req);
    if (self->shards && code == EP__STATUS__CODE__UNAVAILABLE)
        result->reply.owner = request->owner;
}

//  Internal work makes a batch of its own once the model is loaded; not
//  while the disk is full (it would fail at once, again and again): the
//  probe ends that, and the work is still there.
static bool
s_has_work (void *arg)
{
    termsvc_t *self = (termsvc_t *) arg;
    return ep_follower_ready (self->follower) && !ep_degraded_active (self->degraded)
        && !termsvc_adopting (self) && terminators_has_work (self->core, ep_wall_ms ());
}

//  A batch failed at begin or commit (memory is already back as it was,
//  termstage): a full or failing disk degrades the service (ep_degraded),
//  and the answers carry the store's reason.
static void
s_store_failed (termsvc_t *self)
{
    snprintf (self->failure, sizeof self->failure, "%s", ep_store_last_error ());
    ep_degraded_update (self->degraded, ep_store_last_fault (), self->failure, ep_mono_ms ());
}

static const char *
s_failure (void *arg)
{
    return ((termsvc_t *) arg)->failure;
}

static int
s_begin (void *arg)
{
    termsvc_t *self = (termsvc_t *) arg;
    self->batch_now = ep_wall_ms ();
    if (terminators_begin (self->core) != 0) {
        ep_log_error ("cannot start a transaction: %s", ep_store_last_error ());
        s_store_failed (self);
        return -1;
    }
    //  Not while a shard is half adopted: its records are not all in, and
    //  a batch may not write it (ep_adopt.h).
    if (!termsvc_adopting (self))
        terminators_work (self->core, self->batch_now);
    return 0;
}

static void
s_write (void *arg, ep_req_t *req)
{
    termsvc_t *self = (termsvc_t *) arg;
    const Ep__TerminatorRequest *message = (const Ep__TerminatorRequest *) ep_req_message (req);
    //  Parked while the shard moved away: not ours to write any more.
    if (self->shards && !ep_shardset_ready (self->set, message->router_id? message->router_id: "")) {
        termsvc_request_t *request = (termsvc_request_t *) ep_req_result (req);
        snprintf (request->owner, sizeof request->owner, "%s",
                  ep_shardset_owner (self->set, message->router_id? message->router_id: ""));
        s_error (self, req, EP__STATUS__CODE__UNAVAILABLE,
                 "the router's shard moved to another instance while this request waited: retry");
        return;
    }
    terminators_write (self->core, (const Ep__TerminatorRequest *) ep_req_message (req),
                       self->batch_now, &((termsvc_request_t *) ep_req_result (req))->result);
}

//  A batch etcd refused as too large is run again, each write alone.
static ep_reqloop_policy_t
s_commit_failed (void *arg)
{
    termsvc_t *self = (termsvc_t *) arg;
    return self->shards && termshards_too_large (self->shards)? EP_REQLOOP_SPLIT: EP_REQLOOP_CARRY_ON;
}

static int
s_commit (void *arg)
{
    termsvc_t *self = (termsvc_t *) arg;
    if (self->shards)
        return termsvc_commit_etcd (self);
    int rc = terminators_commit (self->core);
    if (rc == 0)
        ep_degraded_update (self->degraded, EP_STORE_FAULT_NONE, NULL, ep_mono_ms ());
    else
        s_store_failed (self);
    self->served = true;
    s_gauges (self);            //  what a reply reports, the metrics already show
    return rc;
}

static int
s_read (void *arg, ep_req_t *req)
{
    termsvc_t *self = (termsvc_t *) arg;
    if (self->shards && termsvc_read_etcd (self, req) == 0)
        return EP_REQLOOP_LATER;
    terminators_read (self->core, (const Ep__TerminatorRequest *) ep_req_message (req),
                      ep_wall_ms (), &((termsvc_request_t *) ep_req_result (req))->result);
    return 0;
}

//  Publishes what committed batches produced.
static void
s_publish (void *arg)
{
    termsvc_t *self = (termsvc_t *) arg;
    ep_output_item_t *output;
    while ((output = terminators_next_output (self->core))) {
        const char *event_id = self->shards && output->seq
                             ? termshards_event_id (self->shards, output->seq): NULL;
        if (self->shards && output->seq && !event_id)
            ;   //  its shard was lost since the commit (its entries forgotten): the next
                //  owner publishes it, with its id; here it would go without, late
        else
        if (self->shards && !termsvc_fence_command (self, output->event))
            ;   //  the router's shard is not ours any more: its owner decides
        else
        if (ep_publisher_send_id (self->publisher, output->topic, output->event, event_id) != 0)
            ep_log_error ("could not publish %s: larger than the cap", output->topic);
        else
            ep_series_add (output->seq? self->published: self->cmd_published, 1);
        if (output->seq) {
            terminators_published (self->core, output->seq);
            if (self->shards)
                termshards_published (self->shards, output->seq);
        }
        ep_output_item_destroy (&output);
    }
}

static const ep_reqloop_class_t s_class = {
    .descriptor = &ep__terminator_request__descriptor,
    .smaller = "page_size",
    .op_name = s_op_name,
    .roles = s_roles,
    .admit = s_admit,
    .reply = s_reply,
    .error = s_error,
    .has_work = s_has_work,
    .ready = termsvc_shards_ready,
    .begin = s_begin,
    .write = s_write,
    .commit = s_commit,
    .read = s_read,
    .commit_failed = s_commit_failed,
    .failure = s_failure,
    .output = s_publish,
};

//  Parked writes whose model revision has arrived join the next batch;
//  those that waited too long are told to retry.
static void
s_unpark (termsvc_t *self)
{
    int64_t now = ep_mono_ms ();
    ep_req_t *req = (ep_req_t *) zlistx_first (self->parked);
    while (req) {
        termsvc_request_t *request = (termsvc_request_t *) ep_req_result (req);
        bool reached = s_model_reached (self, request->revision);
        if (!reached && now < request->deadline_ms) {
            req = (ep_req_t *) zlistx_next (self->parked);
            continue;
        }
        zlistx_detach_cur (self->parked);
        if (reached)
            ep_reqloop_release (self->loop, req);
        else {
            char message [256];
            snprintf (message, sizeof message,
                      "this service has not seen model revision %llu yet (it has %llu%s): retry",
                      (unsigned long long) request->revision,
                      (unsigned long long) ep_model_view_revision (self->view),
                      ep_follower_ready (self->follower)? "": ", still loading the model");
            ep_series_add (self->park_timeouts, 1);
            ep_reqloop_fail (self->loop, req, EP__STATUS__CODE__UNAVAILABLE, message);
        }
        req = (ep_req_t *) zlistx_next (self->parked);
    }
}

static int64_t
s_next_park_deadline (termsvc_t *self)
{
    int64_t next = INT64_MAX;
    ep_req_t *req = (ep_req_t *) zlistx_first (self->parked);
    for (; req; req = (ep_req_t *) zlistx_next (self->parked)) {
        termsvc_request_t *request = (termsvc_request_t *) ep_req_result (req);
        if (request->deadline_ms < next)
            next = request->deadline_ms;
    }
    return next;
}


//  ---------------------------------------------------------------------
//  The loop

static void
s_presence_events (termsvc_t *self)
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

//  What the follower brought: a snapshot to reconcile against, and the
//  first time the model is loaded, the replayed outbox and readiness.
static int
s_follow (termsvc_t *self)
{
    ep_follower_handle (self->follower);
    if (ep_follower_snapshots (self->follower) != self->snapshots) {
        //  A snapshot replaced the view: everything is checked against it.
        self->snapshots = ep_follower_snapshots (self->follower);
        terminators_model_loaded (self->core);
    }
    if (self->is_ready || !ep_follower_ready (self->follower))
        return 0;
    int replayed = terminators_replay_outbox (self->core);
    if (replayed > 0) {
        ep_log_info ("publishing %d events committed before the last stop", replayed);
        ep_series_add (self->replayed, replayed);
    }
    s_gauges (self);
    self->is_ready = true;
    return ep_service_ready (self->service);
}

//  How long the loop may sleep: the next thing due, of all of them.
static int64_t
s_timeout (termsvc_t *self)
{
    int64_t now = ep_mono_ms ();
    //  While a batch's transaction is in flight the core and the follower
    //  are not touched (the follower's tick would apply model changes to
    //  the view mid-batch): their timers do not count (termwait).
    termwait_t due = {
        .publisher = ep_publisher_tick (self->publisher),
        .follower = self->committing? INT64_MAX: ep_follower_tick (self->follower),
        .park = s_next_park_deadline (self) - now, .expire = self->next_expire - now,
        .gauges = self->next_gauges - now,
        .work = self->committing? INT64_MAX: termsvc_adopting (self)? 0
              : ep_reqloop_next_due (self->loop) == 0? 0
              : terminators_next_due (self->core, ep_wall_ms (), 1000),
        .degraded = ep_degraded_next (self->degraded, now),
        .beacon = self->shards? self->next_beacon - now: INT64_MAX, .committing = self->committing };
    return termwait_timeout (&due);
}

//  The etcd mode's wait: while a batch's transaction is in flight the core
//  takes nothing but requests (queued), so only the API is watched then.
static void *
s_wait_etcd (termsvc_t *self)
{
    zsock_t *socks [] = { self->router, ep_follower_socket (self->follower),
                          ep_follower_rpc_socket (self->follower),
                          ep_subscriber_socket (self->presence) };
    return ep_service_poll (self->service, socks, self->committing? 1: EP_COUNT (socks),
                            s_timeout (self));
}

int
termsvc_turn (termsvc_t *self)
{
    void *which = self->shards? s_wait_etcd (self)
                : ep_service_wait (self->service, self->poller, s_timeout (self));
    if (self->shards_failed)
        return -1;
    int64_t now = ep_mono_ms ();
    if (!self->committing) {
        if (s_follow (self) != 0)
            return -1;
        s_presence_events (self);
        if (now >= self->next_expire) {
            terminators_presence_expire (self->core, now);
            self->next_expire = now + EXPIRE_MS;
        }
        if (self->shards)
            termsvc_apply_news (self);
        self->between_due = false;
    }
    if (self->shards && now >= self->next_beacon) {
        ep_shardset_beacon (self->set, self->publisher, ep_service_source_id (self->service),
                            self->advertise, BEACON_MS);
        self->next_beacon = now + BEACON_MS;
    }
    s_unpark (self);
    self->served = false;
    ep_reqloop_serve (self->loop);
    s_publish (self);
    now = ep_mono_ms ();
    //  Degraded and no write came to find out: probe, so readiness, writes
    //  and the internal work come back by themselves once there is room.
    if (!ep_reqloop_committing (self->loop))
        ep_degraded_probe_store (self->degraded, self->store, now);
    if (self->served || which || now >= self->next_gauges) {
        s_gauges (self);
        self->next_gauges = now + GAUGES_MS;
    }
    if (now >= self->next_checkpoint) {
        ep_store_checkpoint (self->store);
        ep_series_set (self->db_bytes, (double) ep_store_db_size (self->store));
        self->next_checkpoint = now + CHECKPOINT_MS;
    }
    return 0;
}

//  ---------------------------------------------------------------------
//  Life cycle

//  Opens terminators.db and loads the core over it.
static int
s_open_store (termsvc_t *self, const termsvc_config_t *config, const char *data_dir)
{
    bool etcd = ep_shardset_opts_etcd (&config->sharded);
    self->path = config->db_path? strdup (config->db_path)
               : zsys_sprintf ("%s/%s", data_dir, etcd? "terminators-cache.db": "terminators.db");
    if (zsys_dir_create ("%s", data_dir) != 0)
        ep_log_warn ("cannot create %s", data_dir);
    ep_service_lock_or_exit (self->service, self->path,
        "several instances run on shards in the etcd mode (docs/terminators.md), each with its own data directory");
    //  The etcd mode keeps a cache of the shards it owns, in memory: etcd
    //  is the truth, and each shard is read again when it is acquired.
    self->store = ep_store_new (etcd? EP_STORE_MEMORY: self->path,
                                termstore_migrations, termstore_migrations_count);
    if (!self->store) {
        ep_log_error ("cannot open %s: %s", self->path, ep_store_last_error ());
        return -1;
    }
    self->view = ep_model_view_new ();
    self->core = terminators_new (self->store, self->view, &config->core, ep_wall_ms ());
    if (!self->core)
        return -1;
    ep_log_info ("%s: %zu terminators, %zu tombstones", self->path,
                 terminators_count (self->core, TERMSM_ESTABLISHING)
                 + terminators_count (self->core, TERMSM_ESTABLISHED)
                 + terminators_count (self->core, TERMSM_FAILED)
                 + terminators_count (self->core, TERMSM_DELETING),
                 terminators_count (self->core, TERMSM_DELETED));
    return 0;
}

//  service.degraded goes out directly, never through the outbox: the
//  disk is what fails.
static void
s_send_degraded (void *arg, const char *topic, Ep__Event *event)
{
    termsvc_t *self = (termsvc_t *) arg;
    if (ep_publisher_send (self->publisher, topic, event) != 0)
        ep_log_error ("could not publish %s: larger than the cap", topic);
}

//  The bus (publisher, presence) and the model (follower).
static int
s_open_bus (termsvc_t *self, const termsvc_config_t *config)
{
    ep_links_config_t links_config = {
        .publish = true, .label = "presence", .dedupe_window = config->dedupe_window, .view = self->view
    };
    ep_links_t links;
    if (ep_links_open (&links, self->service, &links_config) != 0)
        return -1;
    self->publisher = links.publisher;
    self->presence = links.subscriber;
    self->follower = links.follower;
    ep_publisher_declare (self->publisher, "terminator");
    ep_publisher_declare (self->publisher, "service");
    if (ep_shardset_opts_etcd (&config->sharded))
        ep_publisher_declare (self->publisher, "cluster");
    self->degraded = ep_degraded_new ("terminators", self->path, ep_service_http (self->service),
                                      ep_service_metrics (self->service), s_send_degraded, self);
    ep_subscriber_subscribe (self->presence, "presence.");
    return 0;
}

//  The API socket and the request loop over it.
static int
s_open_api (termsvc_t *self, const termsvc_config_t *config)
{
    self->router = ep_service_api_socket (self->service, config->listen, EP_CODEC_DEFAULT_CAP, 200000);
    if (!self->router)
        return -1;
    self->rpc = ep_rpc_server_new (self->router, EP_CODEC_DEFAULT_CAP, 1000, 60000);
    ep_reqloop_config_t loop = {
        .max_batch = (size_t) config->max_batch,
        .max_rounds = ROUNDS_MAX,
        .histograms = "terminators"
    };
    self->loop = ep_reqloop_new (&s_class, self, self->rpc, self->router,
                                 ep_service_metrics (self->service), &loop);
    self->poller = zpoller_new (ep_service_auth_actor (self->service), self->router,
                                ep_follower_socket (self->follower),
                                ep_follower_rpc_socket (self->follower),
                                ep_subscriber_socket (self->presence), NULL);
    return 0;
}

termsvc_t *
termsvc_new (ep_service_t *service, const termsvc_config_t *given)
{
    termsvc_config_t sized = *given, *config = &sized;
    if (ep_shardset_opts_etcd (&config->sharded)) {
        //  A batch is one etcd transaction: sized to fit --max-txn-ops
        //  (a write is a record and its events; one too large is split).
        int64_t ops = config->sharded.etcd.max_txn_ops > 0? config->sharded.etcd.max_txn_ops: 128;
        if (config->max_batch > ops / 4)
            config->max_batch = ops / 4 > 0? ops / 4: 1;
        config->core.work_budget = (size_t) (ops / 4 > 0? ops / 4: 1);
    }
    termsvc_t *self = (termsvc_t *) zmalloc (sizeof (termsvc_t));
    self->service = service;
    self->park_timeout_ms = config->park_timeout_ms;
    self->parked = zlistx_new ();
    s_metrics (self, ep_service_metrics (service));
    const ep_common_opts_t *common = ep_service_opts (service);
    if (s_open_store (self, config, common->data_dir) != 0
    ||  s_open_bus (self, config) != 0
    ||  s_open_api (self, config) != 0
    ||  (ep_shardset_opts_etcd (&config->sharded) && termsvc_open_shards (self, config) != 0))
        termsvc_destroy (&self);
    else {
        int64_t now = ep_mono_ms ();
        self->next_checkpoint = now + CHECKPOINT_MS;
        self->next_expire = now + EXPIRE_MS;
    }
    return self;
}

void
termsvc_destroy (termsvc_t **self_p)
{
    termsvc_t *self = *self_p;
    if (self) {
        //  Whoever still waits is told to retry (elsewhere, or after the restart).
        const char *bye = "the terminator service is shutting down; retry";
        if (self->loop)
            ep_reqloop_shutdown (self->loop, bye);
        ep_req_t *req;
        while ((req = (ep_req_t *) zlistx_detach (self->parked, NULL)))
            ep_reqloop_fail (self->loop, req, EP__STATUS__CODE__UNAVAILABLE, bye);
        zlistx_destroy (&self->parked);
        //  Leaving: the lease revoked, the shards go to the others at once.
        termsvc_close_shards (self);
        zpoller_destroy (&self->poller);
        ep_reqloop_destroy (&self->loop);
        ep_rpc_server_destroy (&self->rpc);
        zsock_destroy (&self->router);
        ep_follower_destroy (&self->follower);
        ep_subscriber_destroy (&self->presence);
        ep_publisher_destroy (&self->publisher);
        ep_degraded_destroy (&self->degraded);
        terminators_destroy (&self->core);
        ep_model_view_destroy (&self->view);
        ep_store_destroy (&self->store);
        free (self->path);
        free (self);
        *self_p = NULL;
    }
}
