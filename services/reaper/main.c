/*  edgeplane-reaper: the session reaper.

    One loop: apply what the model follower and the bus (presence) bring,
    read every request waiting (up to a batch cap) and handle them in order,
    do what time makes due (reaper_tick), commit once, then answer the
    requests, answer the reads from committed state, and publish what the
    commit made true: commands first, then events at a bounded rate (the
    bus and its subscribers drop what overflows their queues, and a router
    deletion can make 200,000 events). A reply or an event never precedes
    its commit, and nothing is published before our own stream heartbeat
    has come back through the bus (the PUB socket would drop it). A
    failed commit ends the process unanswered (crash-only: the
    next start reloads the truth from sessions.db). docs/reaper.md is the
    contract.
*/
#include "ep_service.h"
#include "ep_codec.h"
#include "ep_follower.h"
#include "ep_model_view.h"
#include "ep_publisher.h"
#include "ep_rpc_server.h"
#include "ep_store.h"
#include "ep_subscriber.h"
#include "reaper.h"
#include "sessiondb.h"

#define CHECKPOINT_MS   10000           //  WAL checkpoint period
#define PUBLISH_PAUSE   10              //  ms between publishing bursts while events wait

typedef struct {
    ep_rpc_call_t *call;        //  the request being served
    Ep__SessionRequest *request;    //  decoded
    reaper_result_t result;     //  what to answer
    int64_t started_us;         //  for the duration metric
} s_pending_t;

typedef struct {
    ep_service_t *service;      //  shared process scaffolding
    ep_store_t *store;          //  sessions.db
    reaper_t *reaper;           //  the state machine
    zsock_t *router;            //  API socket
    ep_rpc_server_t *rpc;       //  request ids, reply cache
    ep_publisher_t *publisher;  //  session.*, cmd.<router>.
    ep_subscriber_t *events;    //  presence.* (and our own heartbeats, to prove the path)
    ep_model_view_t *view;      //  the model, as followed
    ep_follower_t *follower;    //  keeps view current
    bool model_ready;           //  the first snapshot is in
    bool bus_live;              //  our subscription has been proven live
    int64_t max_batch;          //  requests per transaction at most
    int64_t event_rate;         //  events published per second at most
    double tokens;              //  events that may be published now
    int64_t tokens_at;          //  when tokens were last topped up
    ep_histogram_t *commit_seconds; //  commit latency
    ep_series_t *published_session; //  edgeplane_published_total{stream="session"}
    ep_series_t *published_cmd; //  edgeplane_published_total{stream="cmd"}
} s_main_t;

static void
s_answer (s_main_t *self, s_pending_t *pending)
{
    reaper_result_t *result = &pending->result;
    ep_rpc_server_answer (self->rpc, &pending->call, &result->reply.base, false, "page_size");
    double seconds = (ep_mono_us () - pending->started_us) / 1e6;
    ep_metrics_request_done (ep_service_metrics (self->service), result->op,
                             ep_status_code_name (result->status.code), seconds);
}

static void
s_pending_free (s_pending_t *pending)
{
    reaper_result_clear (&pending->result);
    if (pending->request)
        ep__session_request__free_unpacked (pending->request, NULL);
    free (pending);
}

static void
s_publish (void *arg, const char *topic, Ep__Event *event)
{
    s_main_t *self = (s_main_t *) arg;
    if (ep_publisher_send (self->publisher, topic, event) != 0)
        ep_log_error ("could not publish %s: larger than the cap", topic);
    else
        ep_series_add (strncmp (topic, "cmd.", 4) == 0? self->published_cmd: self->published_session, 1);
}

static void
s_on_model (void *arg, const ep_model_event_t *event)
{
    s_main_t *self = (s_main_t *) arg;
    reaper_model_event (self->reaper, event, ep_mono_ms ());
}

//  Presence from the bus, and the moment the bus path is proven.
static void
s_bus (s_main_t *self)
{
    Ep__Event *event;
    char *topic = NULL;
    int64_t now = ep_mono_ms ();
    while ((zsock_events (ep_subscriber_socket (self->events)) & ZMQ_POLLIN)) {
        event = ep_subscriber_read (self->events, &topic);
        if (event && event->body_case == EP__EVENT__BODY_PRESENCE && strncmp (topic, "presence.", 9) == 0)
            reaper_presence (self->reaper, topic + 9, event->presence, now);
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

//  Reads one request off the socket and decodes it; NULL if it was
//  answered already (retry, malformed).
static s_pending_t *
s_receive (s_main_t *self)
{
    ep_rpc_call_t *call;
    Ep__SessionRequest *request = (Ep__SessionRequest *) ep_rpc_server_recv_request (
        self->rpc, &ep__session_request__descriptor, &call);
    if (!request)
        return NULL;
    s_pending_t *pending = (s_pending_t *) zmalloc (sizeof (s_pending_t));
    pending->call = call;
    pending->request = request;
    pending->started_us = ep_mono_us ();
    reaper_result_init (&pending->result, ep_rpc_call_request_id (call));
    return pending;
}

static void
s_list_free (zlistx_t **list_p)
{
    s_pending_t *pending;
    while ((pending = (s_pending_t *) zlistx_detach (*list_p, NULL)))
        s_pending_free (pending);
    zlistx_destroy (list_p);
}

//  One turn: requests, time, commit, answers, publishing. Returns when
//  the reaper next has work (monotonic ms), or -1 if the commit failed.
static int64_t
s_turn (s_main_t *self)
{
    zlistx_t *writes = zlistx_new ();
    zlistx_t *reads = zlistx_new ();
    int64_t now = ep_mono_ms ();
    while ((int64_t) (zlistx_size (writes) + zlistx_size (reads)) < self->max_batch
       &&  (zsock_events (self->router) & ZMQ_POLLIN)) {
        s_pending_t *pending = s_receive (self);
        if (!pending)
            continue;
        if (reaper_is_read (pending->request))
            zlistx_add_end (reads, pending);
        else {
            reaper_handle (self->reaper, pending->request, ep_rpc_call_caller (pending->call), now,
                           &pending->result);
            zlistx_add_end (writes, pending);
        }
    }
    int64_t due = reaper_tick (self->reaper, now);
    int64_t started = ep_mono_us ();
    if (reaper_commit (self->reaper) != 0) {
        ep_log_error ("stopping unanswered: sessions.db did not take a write (see above); "
                      "fix the disk and restart, state is reloaded from it");
        s_list_free (&writes);
        s_list_free (&reads);
        return -1;
    }
    ep_histogram_observe (self->commit_seconds, NULL, (ep_mono_us () - started) / 1e6);
    s_pending_t *pending;
    for (pending = (s_pending_t *) zlistx_first (writes); pending;
         pending = (s_pending_t *) zlistx_next (writes))
        s_answer (self, pending);
    for (pending = (s_pending_t *) zlistx_first (reads); pending;
         pending = (s_pending_t *) zlistx_next (reads)) {
        reaper_read (self->reaper, pending->request, ep_rpc_call_caller (pending->call), now,
                     &pending->result);
        s_answer (self, pending);
    }
    s_list_free (&writes);
    s_list_free (&reads);
    //  Commands all, events at a bounded rate (bursts of a tenth of a
    //  second); nothing until the bus path is proven (a PUB socket drops
    //  what it sends before its connection is up).
    if (!self->bus_live)
        return due;
    int64_t mono = ep_mono_ms ();
    double burst = self->event_rate / 10.0;
    self->tokens += (mono - self->tokens_at) * self->event_rate / 1000.0;
    if (self->tokens > burst)
        self->tokens = burst;
    self->tokens_at = mono;
    self->tokens -= reaper_publish (self->reaper, self->tokens > 0? (size_t) self->tokens: 0);
    if (zsock_events (self->router) & ZMQ_POLLIN)
        due = now;                          //  more requests waiting
    return due;
}

int
main (int argc, char **argv)
{
    static char *listen, *db_path;
    static int64_t evasive, expire, grace, deadline, presence, flush, long_lived, retention;
    static int64_t retry, mark_batch, chunk, window, max_batch, event_rate;
    ep_opt_t opts [] = {
        { .name = "listen", .env = "EDGEPLANE_REAPER_LISTEN", .def = EP_DEFAULT_REAPER_API,
          .type = EP_OPT_ENDPOINT, .str = &listen, .help = "Where the reaper API binds." },
        { .name = "db", .env = "EDGEPLANE_REAPER_DB", .type = EP_OPT_STRING, .str = &db_path,
          .def_help = "$EDGEPLANE_DATA_DIR/sessions.db", .help = "The reaper's SQLite database." },
        { .name = "evasive", .env = "EDGEPLANE_SESSION_EVASIVE", .def = "60s", .type = EP_OPT_DURATION,
          .num = &evasive, .min = 10, .max = 86400000,
          .help = "A session unheard this long is probed through its router." },
        { .name = "expire", .env = "EDGEPLANE_SESSION_EXPIRE", .def = "3m", .type = EP_OPT_DURATION,
          .num = &expire, .min = 20, .max = 86400000,
          .help = "A session unheard this long (and probed) is reaped as expired; above --evasive." },
        { .name = "offline-grace", .env = "EDGEPLANE_ROUTER_OFFLINE_GRACE", .def = "2m",
          .type = EP_OPT_DURATION, .num = &grace, .min = 10, .max = 86400000,
          .help = "A router offline this long has its sessions cleaned up." },
        { .name = "cleanup-deadline", .env = "EDGEPLANE_CLEANUP_DEADLINE", .def = "15s",
          .type = EP_OPT_DURATION, .num = &deadline, .min = 10, .max = 86400000,
          .help = "A cleanup forces the sessions its router has not closed after this." },
        { .name = "presence-timeout", .env = "EDGEPLANE_PRESENCE_TIMEOUT", .def = "3500ms",
          .type = EP_OPT_DURATION, .num = &presence, .min = 10, .max = 600000,
          .help = "A watchdog whose beacons stop this long holds no router." },
        { .name = "flush-interval", .env = "EDGEPLANE_SESSION_FLUSH", .def = "5s", .type = EP_OPT_DURATION,
          .num = &flush, .min = 10, .max = 3600000,
          .help = "Byte counters and last-seen times are written this often." },
        { .name = "long-lived", .env = "EDGEPLANE_SESSION_LONG_LIVED", .def = "24h",
          .type = EP_OPT_DURATION, .num = &long_lived, .min = 1, .max = INT64_MAX,
          .help = "A session older than this that a cleanup takes raises session.warning." },
        { .name = "retention", .env = "EDGEPLANE_SESSION_RETENTION", .def = "24h", .type = EP_OPT_DURATION,
          .num = &retention, .min = 1, .max = INT64_MAX,
          .help = "Closed sessions and finished cleanup jobs are kept this long." },
        { .name = "command-retry", .env = "EDGEPLANE_COMMAND_RETRY", .def = "1s", .type = EP_OPT_DURATION,
          .num = &retry, .min = 10, .max = 600000,
          .help = "Closes a router has not acked are resent after this, doubling up to 8 times it." },
        { .name = "mark-batch", .env = "EDGEPLANE_CLEANUP_BATCH", .def = "5000", .type = EP_OPT_INT,
          .num = &mark_batch, .min = 1, .max = 1000000,
          .help = "Sessions marked TERMINATING (or forced) per transaction." },
        { .name = "close-chunk", .env = "EDGEPLANE_CLOSE_CHUNK", .def = "5000", .type = EP_OPT_INT,
          .num = &chunk, .min = 1, .max = 50000, .help = "Session ids per CloseSessions or ProbeSessions." },
        { .name = "close-window", .env = "EDGEPLANE_CLOSE_WINDOW", .def = "4", .type = EP_OPT_INT,
          .num = &window, .min = 1, .max = 1000,
          .help = "CloseSessions a router has not answered, at most." },
        { .name = "max-batch", .env = "EDGEPLANE_REAPER_MAX_BATCH", .def = "1000", .type = EP_OPT_INT,
          .num = &max_batch, .min = 1, .max = 100000, .help = "Requests served per transaction at most." },
        { .name = "event-rate", .env = "EDGEPLANE_SESSION_EVENT_RATE", .def = "100000", .type = EP_OPT_INT,
          .num = &event_rate, .min = 100, .max = 100000000,
          .help = "Session events published per second at most (commands are not limited)." },
    };
    s_main_t self = { 0 };
    self.service = ep_service_new ("reaper", "The session reaper: liveness and two-phase cleanup of sessions.",
                                   EP_HTTP_LISTEN_REAPER, opts, EP_COUNT (opts), argc, argv);
    const ep_common_opts_t *common = ep_service_opts (self.service);
    if (expire <= evasive) {
        ep_log_error ("--expire (%lld ms) must be longer than --evasive (%lld ms)",
                      (long long) expire, (long long) evasive);
        ep_service_destroy (&self.service);
        return 2;
    }
    self.max_batch = max_batch;
    self.event_rate = event_rate;
    self.tokens_at = ep_mono_ms ();
    ep_metrics_t *metrics = ep_service_metrics (self.service);
    static const double commit_bounds [] = { 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1 };
    self.commit_seconds = ep_metrics_histogram (metrics, "edgeplane_reaper_commit_seconds",
        "Time to commit one turn's transaction (its fsync included).", 0, NULL,
        EP_COUNT (commit_bounds), commit_bounds);
    const char *session_stream [] = { "session" }, *cmd_stream [] = { "cmd" };
    self.published_session = ep_counter_series (ep_metrics_published (metrics), session_stream);
    self.published_cmd = ep_counter_series (ep_metrics_published (metrics), cmd_stream);

    reaper_config_t config;
    reaper_config_defaults (&config);
    config.evasive_ms = evasive;
    config.expire_ms = expire;
    config.offline_grace_ms = grace;
    config.deadline_ms = deadline;
    config.presence_timeout_ms = presence;
    config.flush_ms = flush;
    config.long_lived_ms = long_lived;
    config.retention_ms = retention;
    config.retry_ms = retry;
    config.retry_max_ms = retry * 8;
    config.mark_batch = (size_t) mark_batch;
    config.chunk = (size_t) chunk;
    config.window = (size_t) window;

    int rc = 0;
    char *path = db_path? strdup (db_path): zsys_sprintf ("%s/sessions.db", common->data_dir);
    if (zsys_dir_create ("%s", common->data_dir) != 0)
        ep_log_warn ("cannot create %s", common->data_dir);
    ep_service_lock_or_exit (self.service, path,
        "several instances share a model through the etcd store (docs/ha.md), each with its own data directory");
    self.store = ep_store_new (path, sessiondb_migrations, sessiondb_migrations_count);
    if (!self.store) {
        ep_log_error ("cannot open %s: %s", path, ep_store_last_error ());
        rc = -1;
    }
    if (rc == 0 && !(self.reaper = reaper_new (self.store, &config, metrics, ep_mono_ms (),
                                               ep_wall_ms () - ep_mono_ms ())))
        rc = -1;
    char *bus_key = ep_keys_public_txt (common->keys_dir, "bus");
    char *model_key = ep_keys_public_txt (common->keys_dir, "model");
    if (rc == 0 && (!bus_key || !model_key))
        rc = -1;
    if (rc == 0) {
        zcert_t *cert = ep_service_cert (self.service);
        reaper_set_publisher (self.reaper, s_publish, &self);
        self.publisher = ep_publisher_new (common->bus_pub, cert, bus_key, ep_service_source_id (self.service),
                                           EP_CODEC_DEFAULT_CAP);
        self.events = ep_subscriber_new (common->bus_sub, cert, bus_key, EP_CODEC_DEFAULT_CAP, NULL, NULL);
        self.view = ep_model_view_new ();
        ep_model_view_set_observer (self.view, s_on_model, &self);
        self.follower = ep_follower_new (common->bus_sub, common->model_api, cert, bus_key, model_key, self.view);
        if (self.follower)
            ep_follower_set_metrics (self.follower, metrics);
        if (!self.publisher || !self.events || !self.follower) {
            ep_log_error ("cannot reach the bus (%s, %s) or the model (%s): check the addresses",
                          common->bus_pub, common->bus_sub, common->model_api);
            rc = -1;
        }
    }
    if (rc == 0) {
        ep_publisher_declare (self.publisher, "session");
        ep_publisher_declare (self.publisher, "cmd");
        ep_subscriber_subscribe (self.events, "presence.");
        //  Our own heartbeats coming back prove the subscription is live,
        //  even when no watchdog runs (then no router is online).
        ep_subscriber_subscribe (self.events, "session.heartbeat");
        self.router = zsock_new (ZMQ_ROUTER);
        zsock_set_router_mandatory (self.router, 0);
        zsock_set_sndhwm (self.router, 100000);
        zsock_set_rcvhwm (self.router, 100000);
        zsock_set_heartbeat_ivl (self.router, 1000);
        zsock_set_heartbeat_timeout (self.router, 3000);
        //  Writes are idempotent (reaper.h): no replies kept for retries.
        self.rpc = ep_rpc_server_new (self.router, EP_CODEC_DEFAULT_CAP, 1000, 60000);
        rc = ep_service_bind (self.service, self.router, "api", listen);
    }

    zpoller_t *poller = rc == 0? zpoller_new (ep_service_auth_actor (self.service), self.router,
                                              ep_subscriber_socket (self.events),
                                              ep_follower_socket (self.follower), NULL): NULL;
    int64_t next_checkpoint = ep_mono_ms () + CHECKPOINT_MS;
    int64_t due = ep_mono_ms ();
    while (rc == 0 && !ep_service_interrupted (self.service)) {
        int64_t timeout = ep_publisher_tick (self.publisher);
        int64_t follower = ep_follower_tick (self.follower);
        int64_t now = ep_mono_ms ();
        if (follower < timeout)
            timeout = follower;
        if (due - now < timeout)
            timeout = due - now;
        if (reaper_backlog (self.reaper) && self.bus_live && timeout > PUBLISH_PAUSE)
            timeout = PUBLISH_PAUSE;
        if (timeout < 0 || reaper_uncommitted (self.reaper))
            timeout = 0;
        ep_service_wait (self.service, poller, timeout);
        if (ep_service_interrupted (self.service))
            break;
        reaper_set_wall_offset (self.reaper, ep_wall_ms () - ep_mono_ms ());
        ep_follower_handle (self.follower);
        if (!self.model_ready && ep_follower_ready (self.follower)) {
            self.model_ready = true;
            reaper_model_ready (self.reaper, self.view, ep_mono_ms ());
            ep_log_info ("following the model at revision %llu",
                         (unsigned long long) ep_model_view_revision (self.view));
            rc = ep_service_ready (self.service);
        }
        s_bus (&self);
        due = s_turn (&self);
        if (due < 0) {
            rc = -1;
            break;
        }
        now = ep_mono_ms ();
        if (now >= next_checkpoint) {
            ep_store_checkpoint (self.store);
            next_checkpoint = now + CHECKPOINT_MS;
        }
    }
    ep_log_info ("stopping");
    zpoller_destroy (&poller);
    ep_rpc_server_destroy (&self.rpc);
    zsock_destroy (&self.router);
    ep_follower_destroy (&self.follower);
    ep_model_view_destroy (&self.view);
    ep_subscriber_destroy (&self.events);
    ep_publisher_destroy (&self.publisher);
    reaper_destroy (&self.reaper);
    ep_store_destroy (&self.store);
    free (bus_key);
    free (model_key);
    free (path);
    ep_service_destroy (&self.service);
    return rc == 0? 0: 1;
}
