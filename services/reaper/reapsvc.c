/*  reapsvc.c: the reaper service object (reapsvc.h): the state machine
    (reaper.h) wired to sessions.db, the bus, the model follower and the
    API socket, served by ep_reqloop.
*/
#include "reapsvc_internal.h"
#include "ep_codec.h"
#include "ep_links.h"
#include "ep_store.h"
#include "sessiondb.h"
#include <unistd.h>

//  ---------------------------------------------------------------------
//  The request loop's callbacks

static void
s_result_free (void *result)
{
    reaper_result_clear ((reaper_result_t *) result);
    free (result);
}

//  Roles are the reaper's to check (reaper_handle, reaper_read): they
//  answer with what each operation needs.
static ep_req_kind_t
s_admit (void *arg, ep_req_t *req)
{
    reapsvc_t *self = (reapsvc_t *) arg;
    reaper_result_t *result = (reaper_result_t *) malloc (sizeof (reaper_result_t));
    EP_ASSERT (result);
    reaper_result_init (result, ep_req_request_id (req));
    ep_req_set_result (req, result, s_result_free);
    if (reaper_is_read ((const Ep__SessionRequest *) ep_req_message (req)))
        return EP_REQ_READ;
    //  The etcd mode: a router of a shard owned elsewhere is not ours to serve.
    return reapsvc_not_mine (self, req, NULL)? EP_REQ_REFUSED: EP_REQ_WRITE;
}

static const ProtobufCMessage *
s_reply (void *arg, ep_req_t *req, Ep__Status__Code *code)
{
    (void) arg;
    reaper_result_t *result = (reaper_result_t *) ep_req_result (req);
    *code = result->status.code;
    return &result->reply.base;
}

static void
s_error (void *arg, ep_req_t *req, Ep__Status__Code code, const char *message)
{
    (void) arg;
    reaper_result_t *result = (reaper_result_t *) ep_req_result (req);
    snprintf (result->message, sizeof result->message, "%s", message);
    result->status.code = code;
    result->status.message = result->message;
}

//  Every turn runs a batch: time may have made work due (reaper_tick).
static bool
s_has_work (void *arg)
{
    (void) arg;
    return true;
}

//  The reaper opens its transaction at its first write.
static int
s_begin (void *arg)
{
    reapsvc_t *self = (reapsvc_t *) arg;
    self->now = ep_mono_ms ();
    return 0;
}

//  Hands req to the reaper (reaper_handle or reaper_read: one signature).
static void
s_serve (reapsvc_t *self, ep_req_t *req,
         void (*serve) (reaper_t *, const Ep__SessionRequest *, const ep_caller_t *, int64_t,
                        reaper_result_t *))
{
    reaper_result_t *result = (reaper_result_t *) ep_req_result (req);
    serve (self->reaper, (const Ep__SessionRequest *) ep_req_message (req), ep_req_caller (req),
           self->now, result);
    ep_req_set_op (req, result->op);
}

static void
s_write (void *arg, ep_req_t *req)
{
    reapsvc_t *self = (reapsvc_t *) arg;
    //  The shard moved away while the request waited: not ours any more.
    if (!reapsvc_not_mine (self, req, (reaper_result_t *) ep_req_result (req)))
        s_serve (self, req, reaper_handle);
}

//  The core refuses writes (and tries none) exactly while degraded.
static void
s_degraded_sync (reapsvc_t *self)
{
    reaper_set_degraded (self->reaper, ep_degraded_fault (self->degraded),
                         ep_degraded_message (self->degraded));
}

//  What time made due joins the batch's transaction, then one commit. A
//  failed one is undone in memory (reaper_commit); a full or failing disk
//  degrades the service (ep_degraded) and the answers carry its reason.
void
reapsvc_failed (reapsvc_t *self)
{
    snprintf (self->failure, sizeof self->failure, "%s", reaper_failure (self->reaper));
    ep_degraded_update (self->degraded, reaper_fault (self->reaper), self->failure, ep_mono_ms ());
    s_degraded_sync (self);
    if (self->due < self->now + RETRY_MS)
        self->due = self->now + RETRY_MS;
}

static int
s_commit (void *arg)
{
    reapsvc_t *self = (reapsvc_t *) arg;
    self->due = reaper_tick (self->reaper, self->now);
    int64_t started = ep_mono_us ();
    int rc = self->shards? reapsvc_commit_etcd (self): reaper_commit (self->reaper);
    if (rc == EP_REQLOOP_LATER)
        return rc;
    if (rc != 0) {
        reapsvc_failed (self);
        return -1;
    }
    ep_histogram_observe (self->commit_seconds, NULL, (ep_mono_us () - started) / 1e6);
    return 0;
}

static const char *
s_failure (void *arg)
{
    return ((reapsvc_t *) arg)->failure;
}

static int
s_read (void *arg, ep_req_t *req)
{
    s_serve ((reapsvc_t *) arg, req, reaper_read);
    return 0;
}

//  Commands all, events at a bounded rate (bursts of a tenth of a
//  second); nothing until the bus path is proven (a PUB socket drops what
//  it sends before its connection is up).
static void
s_publish (void *arg)
{
    reapsvc_t *self = (reapsvc_t *) arg;
    if (!self->bus_live)
        return;
    int64_t mono = ep_mono_ms ();
    double burst = self->event_rate / 10.0;
    self->tokens += (mono - self->tokens_at) * self->event_rate / 1000.0;
    if (self->tokens > burst)
        self->tokens = burst;
    self->tokens_at = mono;
    size_t budget = self->tokens > 0? (size_t) self->tokens: 0;
    size_t events = 0;
    ep_output_item_t *item;
    while ((item = reaper_next_output (self->reaper, events < budget))) {
        bool event = item->event->body_case == EP__EVENT__BODY_SESSION;
        //  A session event goes out under its outbox id, the same on every
        //  resend: consumers drop repeats, and its echo deletes the row.
        char id [128];
        if (event)
            reapsvc_event_id (self, item->seq, id, sizeof id);
        //  The etcd mode: a command carries its fence; one for a shard
        //  lost since is the next owner's to send.
        if (!event && self->shards && !reapsvc_fence_command (self, item->event)) {
            ep_output_item_destroy (&item);
            continue;
        }
        if (ep_publisher_send_id (self->publisher, item->topic, item->event, event? id: NULL) != 0)
            ep_log_error ("could not publish %s: larger than the cap", item->topic);
        else
            ep_series_add (event? self->published_session: self->published_cmd, 1);
        events += event;
        ep_output_item_destroy (&item);
    }
    self->tokens -= events;
}

static const ep_reqloop_class_t s_class = {
    .descriptor = &ep__session_request__descriptor,
    .smaller = "page_size",
    .admit = s_admit,
    .reply = s_reply,
    .error = s_error,
    .has_work = s_has_work,
    .begin = s_begin,
    .write = s_write,
    .commit = s_commit,
    .read = s_read,
    .commit_failed = ep_reqloop_carry_on,
    .ready = reapsvc_shards_ready,
    .failure = s_failure,
    .output = s_publish,
};

//  ---------------------------------------------------------------------
//  The loop

static void
s_on_model (void *arg, const ep_model_event_t *event)
{
    reapsvc_t *self = (reapsvc_t *) arg;
    reaper_model_event (self->reaper, event, ep_mono_ms ());
}

//  What the follower brought; the first snapshot makes the service ready.
static int
s_follow (reapsvc_t *self)
{
    ep_follower_handle (self->follower);
    if (self->model_ready || !ep_follower_ready (self->follower))
        return 0;
    self->model_ready = true;
    reaper_model_ready (self->reaper, self->view, ep_mono_ms ());
    ep_log_info ("following the model at revision %llu",
                 (unsigned long long) ep_model_view_revision (self->view));
    return ep_service_ready (self->service);
}

//  Presence from the bus, and the moment the bus path is proven.
static void
s_bus (reapsvc_t *self)
{
    Ep__Event *event;
    char *topic = NULL;
    int64_t now = ep_mono_ms ();
    while ((zsock_events (ep_subscriber_socket (self->events)) & ZMQ_POLLIN)) {
        event = ep_subscriber_read (self->events, &topic);
        if (event && event->body_case == EP__EVENT__BODY_PRESENCE && strncmp (topic, "presence.", 9) == 0)
            reaper_presence (self->reaper, topic + 9, event->presence, now);
        else
        if (event && event->body_case == EP__EVENT__BODY_SESSION && event->meta && self->shards)
            reapsvc_echo (self, event->meta->event_id);
        else
        if (event && event->body_case == EP__EVENT__BODY_SESSION && event->meta)
            reaper_echo (self->reaper, event->meta->event_id);     //  the bus took it

        zstr_free (&topic);
    }
    ep_subscriber_tick (self->events);
    //  Our own stream's heartbeat proves both directions (publishing and
    //  subscribing through the bus).
    if (!self->bus_live && ep_tracker_seen (ep_subscriber_tracker (self->events), "session")) {
        self->bus_live = true;
        reaper_bus_live (self->reaper, now);
        ep_log_info ("bus subscription live: presence known in a presence timeout");
    }
}

//  How long the loop may sleep: the next thing due, of all of them.
static int64_t
s_timeout (reapsvc_t *self)
{
    int64_t timeout = ep_publisher_tick (self->publisher);
    //  The etcd mode: while a batch's transaction is in flight the core is
    //  not touched, so its timers do not count (they would spin the loop,
    //  termwait.h says how that starved etcd); its answer wakes the loop.
    if (self->shards && self->next_beacon - ep_mono_ms () < timeout)
        timeout = self->next_beacon - ep_mono_ms ();
    if (self->committing)
        return timeout < 0? 0: timeout;
    int64_t follower = ep_follower_tick (self->follower);
    int64_t now = ep_mono_ms ();
    if (follower < timeout)
        timeout = follower;
    if (self->due - now < timeout)
        timeout = self->due - now;
    if (ep_degraded_next (self->degraded, now) < timeout)
        timeout = ep_degraded_next (self->degraded, now);
    if (reaper_backlog (self->reaper) && self->bus_live && timeout > PUBLISH_PAUSE)
        timeout = PUBLISH_PAUSE;
    if (timeout < 0 || reaper_uncommitted (self->reaper) || ep_reqloop_next_due (self->loop) == 0
    ||  reapsvc_adopting (self))
        timeout = 0;
    return timeout;
}

//  The etcd mode's wait: while a batch's transaction is in flight only
//  requests (queued) and etcd (ep_service_add_fds) are taken.
static void
s_wait_etcd (reapsvc_t *self)
{
    zsock_t *socks [] = { self->router, ep_follower_socket (self->follower),
                          ep_follower_rpc_socket (self->follower), ep_subscriber_socket (self->events) };
    ep_service_poll (self->service, socks, self->committing? 1: EP_COUNT (socks), s_timeout (self));
}

int
reapsvc_turn (reapsvc_t *self)
{
    if (self->shards)
        s_wait_etcd (self);
    else
        ep_service_wait (self->service, self->poller, s_timeout (self));
    if (ep_service_interrupted (self->service))
        return 0;
    if (self->shards_failed)
        return -1;
    reaper_set_wall_offset (self->reaper, ep_wall_ms () - ep_mono_ms ());
    int rc = 0;
    //  The model, presence, echoes and shard news change the core: not
    //  while its batch is in etcd (its transaction is open).
    if (!self->committing) {
        //  Shard news first: an adoption step is a transaction of its own,
        //  and the model or presence may open the batch.
        if (self->shards) {
            reapsvc_apply_news (self);
            if (self->shards_failed)
                return -1;
        }
        rc = s_follow (self);
        s_bus (self);
        if (self->shards)
            reapsvc_echoes (self);
        self->between_due = false;
    }
    if (self->shards && ep_mono_ms () >= self->next_beacon) {
        ep_shardset_beacon (self->set, self->publisher, ep_service_source_id (self->service),
                            self->advertise, BEACON_MS);
        self->next_beacon = ep_mono_ms () + BEACON_MS;
    }
    if (ep_reqloop_serve (self->loop) != 0)
        return -1;
    if (self->bus_live && (zsock_events (self->router) & ZMQ_POLLIN))
        self->due = self->now;              //  more requests waiting
    int64_t now = ep_mono_ms ();
    //  Degraded: the core tries no write, so a probe finds out when the
    //  disk takes them again; then the next batch does what waited.
    if (!ep_reqloop_committing (self->loop) && ep_degraded_active (self->degraded)) {
        ep_degraded_probe_store (self->degraded, self->store, now);
        s_degraded_sync (self);
        if (!ep_degraded_active (self->degraded))
            self->due = now;
    }
    if (now >= self->next_checkpoint && !self->committing) {
        ep_store_checkpoint (self->store);
        self->next_checkpoint = now + CHECKPOINT_MS;
    }
    return rc;
}

//  ---------------------------------------------------------------------
//  Life cycle

//  Opens sessions.db and loads the reaper over it.
static int
s_open_store (reapsvc_t *self, const reapsvc_config_t *config, const char *data_dir)
{
    bool etcd = ep_shardset_opts_etcd (&config->sharded);
    self->path = config->db_path? strdup (config->db_path)
               : zsys_sprintf ("%s/%s", data_dir, etcd? "sessions-cache.db": "sessions.db");
    if (zsys_dir_create ("%s", data_dir) != 0)
        ep_log_warn ("cannot create %s", data_dir);
    ep_service_lock_or_exit (self->service, self->path,
        "several instances run on shards in the etcd mode (docs/reaper.md), each with its own data directory");
    //  The etcd mode keeps a cache of the shards it owns, in memory: etcd
    //  is the truth, and each shard is read again when it is acquired.
    self->store = ep_store_new (etcd? EP_STORE_MEMORY: self->path,
                                sessiondb_migrations, sessiondb_migrations_count);
    if (!self->store) {
        ep_log_error ("cannot open %s: %s", self->path, ep_store_last_error ());
        return -1;
    }
    //  The id our events' ids start with, if sessions.db has none yet: it
    //  keeps it, so a restart resends under the same ids.
    reaper_config_t core = config->core;
    zuuid_t *uuid = zuuid_new ();
    char owner [48];
    snprintf (owner, sizeof owner, "reaper-%.16s", zuuid_str (uuid));
    zuuid_destroy (&uuid);
    core.owner = owner;
    self->reaper = reaper_new (self->store, &core, ep_service_metrics (self->service),
                               ep_mono_ms (), ep_wall_ms () - ep_mono_ms ());
    return self->reaper? 0: -1;
}

//  service.degraded goes out directly, never through the outbox: the
//  disk is what fails.
static void
s_send_degraded (void *arg, const char *topic, Ep__Event *event)
{
    reapsvc_t *self = (reapsvc_t *) arg;
    if (ep_publisher_send (self->publisher, topic, event) != 0)
        ep_log_error ("could not publish %s: larger than the cap", topic);
}

//  The bus (publisher, presence) and the model (follower).
static int
s_open_bus (reapsvc_t *self, const reapsvc_config_t *config)
{
    self->view = ep_model_view_new ();
    ep_model_view_set_observer (self->view, s_on_model, self);
    ep_links_config_t links_config = {
        .publish = true, .label = "events", .dedupe_window = config->dedupe_window, .view = self->view
    };
    ep_links_t links;
    if (ep_links_open (&links, self->service, &links_config) != 0)
        return -1;
    self->publisher = links.publisher;
    self->events = links.subscriber;
    self->follower = links.follower;
    ep_publisher_declare (self->publisher, "session");
    ep_publisher_declare (self->publisher, "cmd");
    ep_publisher_declare (self->publisher, "service");
    if (ep_shardset_opts_etcd (&config->sharded)) {
        ep_publisher_declare (self->publisher, "cluster");
        //  A shard taken over publishes its old owner's events again under
        //  their ids: their echoes must come back here (they delete the
        //  entries), though this subscriber saw them once already.
        ep_subscriber_set_dedupe (links.subscriber, false);
    }
    self->degraded = ep_degraded_new ("reaper", self->path, ep_service_http (self->service),
                                      ep_service_metrics (self->service), s_send_degraded, self);
    ep_subscriber_subscribe (self->events, "presence.");
    //  Our own heartbeats coming back prove the subscription is live,
    //  even when no watchdog runs (then no router is online); our own
    //  events coming back acknowledge their outbox rows.
    ep_subscriber_subscribe (self->events, "session.");
    return 0;
}

//  The API socket and the request loop over it.
static int
s_open_api (reapsvc_t *self, const reapsvc_config_t *config)
{
    self->router = ep_service_api_socket (self->service, config->listen, EP_CODEC_DEFAULT_CAP, 100000);
    if (!self->router)
        return -1;
    //  Writes are idempotent (reaper.h): no replies kept for retries.
    self->rpc = ep_rpc_server_new (self->router, EP_CODEC_DEFAULT_CAP, 1000, 60000);
    //  One batch a turn, of at most max_batch requests, reads included.
    ep_reqloop_config_t loop = {
        .max_batch = (size_t) config->max_batch, .max_receive = (size_t) config->max_batch,
        .max_rounds = 1
    };
    self->loop = ep_reqloop_new (&s_class, self, self->rpc, self->router,
                                 ep_service_metrics (self->service), &loop);
    self->poller = zpoller_new (ep_service_auth_actor (self->service), self->router,
                                ep_subscriber_socket (self->events), ep_follower_socket (self->follower),
                                ep_follower_rpc_socket (self->follower), NULL);
    return 0;
}

static void
s_metrics (reapsvc_t *self, ep_metrics_t *metrics)
{
    static const double commit_bounds [] = { 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1 };
    self->commit_seconds = ep_metrics_histogram (metrics, "edgeplane_reaper_commit_seconds",
        "Time to commit one turn's transaction (its fsync included).", 0, NULL,
        EP_COUNT (commit_bounds), commit_bounds);
    const char *session_stream [] = { "session" }, *cmd_stream [] = { "cmd" };
    self->published_session = ep_counter_series (ep_metrics_published (metrics), session_stream);
    self->published_cmd = ep_counter_series (ep_metrics_published (metrics), cmd_stream);
}

//  The etcd mode: a batch is one etcd transaction, within --max-txn-ops.
//  A session a batch opens, closes or forces costs two operations (its
//  record, its event; a mark costs its event only), a router's counters at
//  most 64 chunks, each job a record per shard. Requests and the tick's
//  verdicts get `each` sessions apiece, and the echoes' deletes as many as
//  those make events (2 x each): fewer, and the shard's outbox in etcd
//  would grow with every batch (echoes beyond wait: reapsvc_echoes).
static void
s_size_for_etcd (reapsvc_config_t *config, size_t *echo_budget)
{
    int64_t ops = config->sharded.etcd.max_txn_ops > 0? config->sharded.etcd.max_txn_ops: 128;
    int64_t each = (ops - 72) / 6;
    if (each < 1)
        each = 1;
    *echo_budget = (size_t) (2 * each);
    if (config->max_batch > each)
        config->max_batch = each;
    if ((int64_t) config->core.mark_batch > each)
        config->core.mark_batch = (size_t) each;
    //  A pruned row is a delete: 10,000 in one transaction is refused, and
    //  a refused batch is tried again the same (every batch would fail).
    if ((int64_t) config->core.prune_batch > each)
        config->core.prune_batch = (size_t) each;
    //  Every unanswered CloseSessions may be acked in the same batch.
    int64_t chunk = each / (int64_t) (config->core.window? config->core.window: 1);
    if ((int64_t) config->core.chunk > chunk)
        config->core.chunk = (size_t) (chunk > 0? chunk: 1);
}

reapsvc_t *
reapsvc_new (ep_service_t *service, const reapsvc_config_t *given)
{
    reapsvc_config_t sized = *given, *config = &sized;
    size_t echo_budget = 0;
    if (ep_shardset_opts_etcd (&config->sharded))
        s_size_for_etcd (config, &echo_budget);
    reapsvc_t *self = (reapsvc_t *) zmalloc (sizeof (reapsvc_t));
    self->echo_budget = echo_budget;
    self->service = service;
    self->event_rate = config->event_rate;
    self->tokens_at = ep_mono_ms ();
    s_metrics (self, ep_service_metrics (service));
    const ep_common_opts_t *common = ep_service_opts (service);
    if (s_open_store (self, config, common->data_dir) != 0
    ||  s_open_bus (self, config) != 0
    ||  s_open_api (self, config) != 0
    ||  (ep_shardset_opts_etcd (&config->sharded) && reapsvc_open_shards (self, config) != 0))
        reapsvc_destroy (&self);
    else {
        self->due = ep_mono_ms ();
        self->next_checkpoint = self->due + CHECKPOINT_MS;
    }
    return self;
}

void
reapsvc_destroy (reapsvc_t **self_p)
{
    reapsvc_t *self = *self_p;
    if (self) {
        if (self->loop && !ep_reqloop_stopped (self->loop))
            ep_reqloop_shutdown (self->loop, "the reaper is shutting down; retry");
        //  Leaving: the lease revoked, the shards go to the others at once.
        reapsvc_close_shards (self);
        zpoller_destroy (&self->poller);
        ep_reqloop_destroy (&self->loop);
        ep_rpc_server_destroy (&self->rpc);
        zsock_destroy (&self->router);
        ep_follower_destroy (&self->follower);
        ep_model_view_destroy (&self->view);
        ep_subscriber_destroy (&self->events);
        ep_publisher_destroy (&self->publisher);
        reaper_destroy (&self->reaper);
        ep_degraded_destroy (&self->degraded);
        ep_store_destroy (&self->store);
        free (self->path);
        free (self);
        *self_p = NULL;
    }
}
