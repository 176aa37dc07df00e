/*  ep_follower.c: the follower's state machine.

        WAIT_STREAM --first model heartbeat--> SNAPSHOT --last page--> LIVE
        LIVE --gap, restart, silence, invalid--> CATCHUP --caught up--> LIVE
        CATCHUP --RESYNC, new generation, inconsistent--> SNAPSHOT
        LIVE --change of another generation--> SNAPSHOT

    Changes that arrive while not LIVE are buffered (bounded) and applied
    once the follower is LIVE again; the buffer only saves fetches, it is
    not needed for correctness: a change dropped from it shows up as a
    missing revision later, which is a gap like any other.

    Calls to the model API never block: the tick sends one (a snapshot
    page, a batch of changes, a status for ep_follower_sync), the caller's
    loop polls its socket beside the stream's, and the reply is handled
    when it comes; a call without a reply by its deadline is a failure
    like any other (backoff, then the same call again, to the next model
    instance if there are several). One call at a time.
*/
#include "ep_follower.h"
#include "ep_backoff.h"
#include "ep_codec.h"
#include "ep_log.h"
#include "ep_publisher.h"
#include "ep_rpc_client.h"
#include "ep_subscriber.h"

//  The model's stream (namespace of model.change).
#define MODEL_STREAM "model"

//  Messages read per ep_follower_handle call, so a flood cannot starve the
//  caller's other sockets.
#define HANDLE_BATCH 1000

//  Changes kept while not live; beyond this the oldest go (and are fetched).
#define BUFFER_CAP 10000

//  How often to look at the clock when nothing else is due: the
//  subscriber's silence check runs at this granularity.
#define IDLE_TICK_MS (EP_HEARTBEAT_MS / 4)

//  The model stream is stale when nothing (heartbeat or change, from any
//  model instance) arrived for this long: the subscriber's threshold.
#define STREAM_SILENT_MS (3 * EP_HEARTBEAT_MS + 500)

//  The call in flight, if any.
typedef enum {
    CALL_NONE = 0,
    CALL_SNAPSHOT,              //  a snapshot page
    CALL_CHANGES,               //  changes since call_since
    CALL_STATUS                 //  the model's revision, for ep_follower_sync
} s_call_t;

typedef enum {
    S_WAIT_STREAM = 0,          //  subscribed, waiting for the model stream
    S_SNAPSHOT,                 //  reading snapshot pages
    S_CATCHUP,                  //  fetching changes since the view's revision
    S_LIVE                      //  applying the stream as it comes
} s_state_t;

struct _ep_follower_t {
    ep_subscriber_t *subscriber; //  SUB on the bus, "model." only
    ep_rpc_client_t *client;    //  DEALER to the model API
    s_call_t call;              //  the call in flight, CALL_NONE if none
    uint64_t call_since;        //  CALL_CHANGES: the revision asked from
    bool call_first;            //  CALL_SNAPSHOT: asked for the first page
    uint64_t status_revision;   //  the last status reply's revision
    char *status_generation;    //  and generation, NULL until one came
    ep_model_view_t *view;      //  the copy we keep up to date (borrowed)
    ep_model_view_t *staging;   //  snapshot pages read so far, NULL between snapshots
    char *page_token;           //  the next snapshot page, NULL for the first
    size_t pages;               //  pages of the snapshot in progress
    s_state_t state;            //  see above
    bool loaded;                //  a snapshot has been adopted
    bool need_catchup;          //  a loss or restart was reported since the last fetch began
    int64_t last_heard_ms;      //  when the model stream last delivered anything
    int64_t next_poll_ms;       //  while the stream is silent: when to fetch changes again
    zlistx_t *buffered;         //  Ep__ModelChange received while not live (owned)
    ep_backoff_t backoff;       //  delays between failed API calls
    int64_t retry_at_ms;        //  no API call before this (monotonic)
    int rpc_timeout_ms;         //  per API call
    uint32_t page_size;         //  snapshot page size asked for, 0 = default
    int64_t silent_poll_ms;     //  fetch interval while the stream is silent
    char error [256];           //  last API error, "" if none
    uint64_t snapshots;         //  snapshots loaded
    uint64_t resyncs;           //  snapshots after the first
    uint64_t gaps;              //  losses detected
    uint64_t catchups;          //  changes-since fetches completed
    uint64_t api_failures;      //  failed API calls
    //  Metrics, when ep_follower_set_metrics was called
    ep_series_t *m_revision;    //  edgeplane_model_view_revision
    ep_series_t *m_entities;    //  edgeplane_model_view_entities
    ep_series_t *m_digest;      //  edgeplane_model_view_digest52
    ep_series_t *m_snapshots, *m_resyncs, *m_catchups, *m_gaps;
    uint64_t exported [4];      //  snapshots, resyncs, catchups, gaps already added
    uint64_t digest_revision;   //  view revision the digest was computed at
    char digest_generation [40];//  and its generation
    int64_t next_metrics_ms;    //  next refresh
};

static void
s_change_free (void **item)
{
    if (*item) {
        ep__model_change__free_unpacked ((Ep__ModelChange *) *item, NULL);
        *item = NULL;
    }
}

static void
s_on_report (void *arg, const ep_stream_report_t *report);

ep_follower_t *
ep_follower_new (const char *bus_sub, const char *model_api, zcert_t *cert,
                 const char *bus_key, const char *model_key, ep_model_view_t *view)
{
    EP_ASSERT (view);
    ep_follower_t *self = (ep_follower_t *) zmalloc (sizeof (ep_follower_t));
    self->view = view;
    self->subscriber = ep_subscriber_new (bus_sub, cert, bus_key, EP_CODEC_DEFAULT_CAP,
                                          s_on_report, self);
    self->client = ep_rpc_client_new (model_api, cert, model_key);
    self->buffered = zlistx_new ();
    zlistx_set_destructor (self->buffered, s_change_free);
    self->backoff = ep_backoff (200, 10000);
    self->rpc_timeout_ms = 2000;
    self->silent_poll_ms = 1000;
    self->last_heard_ms = ep_mono_ms ();
    if (!self->subscriber || !self->client)
        ep_follower_destroy (&self);
    else
        ep_subscriber_subscribe (self->subscriber, MODEL_STREAM ".");
    return self;
}

void
ep_follower_destroy (ep_follower_t **self_p)
{
    ep_follower_t *self = *self_p;
    if (self) {
        ep_subscriber_destroy (&self->subscriber);
        ep_rpc_client_destroy (&self->client);
        ep_model_view_destroy (&self->staging);
        zlistx_destroy (&self->buffered);
        free (self->page_token);
        free (self->status_generation);
        free (self);
        *self_p = NULL;
    }
}

//  ---------------------------------------------------------------------
//  Calls to the model API

//  Records a failed call and when to try again.
static void
s_fail (ep_follower_t *self, const char *format, ...) __attribute__ ((format (printf, 2, 3)));

static void
s_fail (ep_follower_t *self, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (self->error, sizeof self->error, format, args);
    va_end (args);
    self->api_failures++;
    int64_t delay = ep_backoff_next (&self->backoff);
    self->retry_at_ms = ep_mono_ms () + delay;
    ep_log_warn ("model follower: %s; retrying in %lld ms", self->error, (long long) delay);
}

static const char *
s_call_name (s_call_t call)
{
    return call == CALL_SNAPSHOT? "snapshot": call == CALL_CHANGES? "changes": "status";
}

//  Sends call, its request's body (a snapshot, changes or status
//  request) in body, without waiting; a failure to send is recorded.
static void
s_call (ep_follower_t *self, s_call_t call, ProtobufCMessage *body)
{
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    if (call == CALL_SNAPSHOT) {
        request.op_case = EP__MODEL_REQUEST__OP_SNAPSHOT;
        request.snapshot = (Ep__SnapshotRequest *) body;
    }
    else
    if (call == CALL_CHANGES) {
        request.op_case = EP__MODEL_REQUEST__OP_CHANGES;
        request.changes = (Ep__ChangesRequest *) body;
    }
    else {
        request.op_case = EP__MODEL_REQUEST__OP_STATUS;
        request.status = (Ep__StatusRequest *) body;
    }
    char id [33];
    ep_rpc_new_id (id);
    request.request_id = id;
    char err [256];
    if (ep_rpc_client_send (self->client, &request.base, id, self->rpc_timeout_ms, err, sizeof err) == 0)
        self->call = call;
    else
        s_fail (self, "%s: %s", s_call_name (call), err);
}

static Ep__Status__Code
s_code (const Ep__ModelReply *reply)
{
    return reply->status && reply->status->has_code? reply->status->code: EP__STATUS__CODE__OK;
}

static const char *
s_message (const Ep__ModelReply *reply)
{
    return reply->status && reply->status->message? reply->status->message: "";
}

//  Why reply cannot be taken: it is not OK (its message: e.g. a page
//  token expired), or lacks the generation and revision every reply
//  carries. NULL if it can.
static const char *
s_reply_problem (const Ep__ModelReply *reply)
{
    if (s_code (reply) != EP__STATUS__CODE__OK)
        return s_message (reply);
    if (!reply->generation || !reply->has_revision)
        return "reply without generation or revision";
    return NULL;
}

//  ---------------------------------------------------------------------
//  States

//  Forgets the pages read so far: the next page asked for is the first.
static void
s_restart_snapshot (ep_follower_t *self)
{
    self->state = S_SNAPSHOT;
    ep_model_view_destroy (&self->staging);
    zstr_free (&self->page_token);
}

static void
s_start_snapshot (ep_follower_t *self, const char *why)
{
    if (self->loaded) {
        self->resyncs++;
        ep_log_info ("model follower: taking a new snapshot: %s", why);
    }
    s_restart_snapshot (self);
}

static void
s_start_catchup (ep_follower_t *self)
{
    self->state = S_CATCHUP;
}

static void
s_buffer (ep_follower_t *self, Ep__ModelChange *change, bool front)
{
    if (front)
        zlistx_add_start (self->buffered, change);
    else
        zlistx_add_end (self->buffered, change);
    if (zlistx_size (self->buffered) > BUFFER_CAP) {
        //  The oldest is most likely covered by the coming snapshot or fetch.
        Ep__ModelChange *oldest = (Ep__ModelChange *) zlistx_detach (self->buffered, NULL);
        ep__model_change__free_unpacked (oldest, NULL);
    }
}

//  Applies change (taken over) to the live view. One that cannot be applied
//  yet (a gap before it) goes back into the buffer, at the front or the end.
static void
s_apply (ep_follower_t *self, Ep__ModelChange *change, bool front)
{
    ep_model_apply_t result = ep_model_view_apply (self->view, change);
    switch (result) {
        case EP_MODEL_APPLIED:
        case EP_MODEL_OLD:
        case EP_MODEL_PARTIAL:
            ep__model_change__free_unpacked (change, NULL);
            break;
        case EP_MODEL_GAP:
            self->gaps++;
            ep_log_warn ("model follower: revision %llu arrived after %llu: fetching the changes in between",
                         (unsigned long long) change->revision,
                         (unsigned long long) ep_model_view_revision (self->view));
            s_buffer (self, change, front);
            s_start_catchup (self);
            break;
        case EP_MODEL_GENERATION:
            ep__model_change__free_unpacked (change, NULL);
            s_start_snapshot (self, "the model's generation changed (restored from a backup?)");
            break;
        case EP_MODEL_INVALID:
            ep_log_warn ("model follower: malformed change of revision %llu ignored: fetching it from the API",
                         (unsigned long long) change->revision);
            ep__model_change__free_unpacked (change, NULL);
            s_start_catchup (self);
            break;
    }
}

//  Applies buffered changes, in order, while live.
static void
s_drain (ep_follower_t *self)
{
    while (self->state == S_LIVE && zlistx_size (self->buffered) > 0) {
        Ep__ModelChange *change = (Ep__ModelChange *) zlistx_detach (self->buffered, NULL);
        s_apply (self, change, true);
    }
}

//  Back to live after a snapshot or a catch-up.
static void
s_go_live (ep_follower_t *self)
{
    self->state = S_LIVE;
    ep_backoff_reset (&self->backoff);
    self->error [0] = 0;
    self->next_poll_ms = ep_mono_ms () + self->silent_poll_ms;
    s_drain (self);
}

//  Asks for the next snapshot page.
static void
s_snapshot_ask (ep_follower_t *self)
{
    bool first = self->staging == NULL;
    if (first) {
        //  The snapshot covers everything before it, losses included.
        zlistx_purge (self->buffered);
        self->need_catchup = false;
        self->pages = 0;
    }
    Ep__SnapshotRequest snapshot = EP__SNAPSHOT_REQUEST__INIT;
    snapshot.has_revision = true;
    snapshot.revision = first? 0: ep_model_view_revision (self->staging);
    snapshot.page_token = self->page_token;
    snapshot.has_page_size = self->page_size > 0;
    snapshot.page_size = self->page_size;
    self->call_first = first;
    s_call (self, CALL_SNAPSHOT, &snapshot.base);
}

//  A snapshot page came (taken over). Without one (no reply), the same page
//  is asked again after the backoff (tokens last 30 s).
static void
s_snapshot_reply (ep_follower_t *self, Ep__ModelReply *reply)
{
    bool first = self->call_first;
    const char *problem = s_reply_problem (reply);
    if (!problem && !first && (reply->revision != ep_model_view_revision (self->staging)
                           ||  strcmp (reply->generation, ep_model_view_generation (self->staging)) != 0))
        problem = "page not pinned to the snapshot's revision";
    if (!problem) {
        if (first) {
            self->staging = ep_model_view_new ();
            ep_model_view_reset (self->staging, reply->generation, reply->revision);
        }
        for (size_t i = 0; i < reply->n_entities && !problem; i++)
            if (ep_model_view_put (self->staging, reply->entities [i]) != 0)
                problem = "entity without type or id";
    }
    if (problem) {
        s_restart_snapshot (self);
        s_fail (self, "snapshot: %s", problem);
        ep__model_reply__free_unpacked (reply, NULL);
        return;
    }
    self->pages++;
    zstr_free (&self->page_token);
    if (reply->next_page_token && *reply->next_page_token) {
        self->page_token = strdup (reply->next_page_token);
        self->retry_at_ms = 0;
        ep__model_reply__free_unpacked (reply, NULL);
        return;
    }
    ep__model_reply__free_unpacked (reply, NULL);
    size_t entities = ep_model_view_size (self->staging);
    ep_model_view_adopt (self->view, &self->staging);
    self->loaded = true;
    self->snapshots++;
    ep_log_info ("model follower: snapshot of generation %s at revision %llu: %zu entities in %zu pages",
                 ep_model_view_generation (self->view),
                 (unsigned long long) ep_model_view_revision (self->view), entities, self->pages);
    s_go_live (self);
}

//  Asks for one batch of changes since the view's revision.
static void
s_catchup_ask (ep_follower_t *self)
{
    self->need_catchup = false;
    self->call_since = ep_model_view_revision (self->view);
    Ep__ChangesRequest changes = EP__CHANGES_REQUEST__INIT;
    changes.has_since_revision = true;
    changes.since_revision = self->call_since;
    s_call (self, CALL_CHANGES, &changes.base);
}

//  A batch of changes came (taken over). Without one (no reply), still
//  CATCHUP: asked again after the backoff.
static void
s_catchup_reply (ep_follower_t *self, Ep__ModelReply *reply)
{
    uint64_t since = self->call_since;
    if (s_code (reply) == EP__STATUS__CODE__RESYNC) {
        s_start_snapshot (self, "changes since the view's revision are no longer retained");
        ep__model_reply__free_unpacked (reply, NULL);
        return;
    }
    const char *problem = s_reply_problem (reply);
    if (problem) {
        s_fail (self, "changes: %s", problem);
        ep__model_reply__free_unpacked (reply, NULL);
        return;
    }
    if (strcmp (reply->generation, ep_model_view_generation (self->view)) != 0) {
        s_start_snapshot (self, "the model's generation changed (restored from a backup?)");
        ep__model_reply__free_unpacked (reply, NULL);
        return;
    }
    ep_model_view_drop_partial (self->view);
    for (size_t i = 0; i < reply->n_changes; i++) {
        ep_model_apply_t result = ep_model_view_apply (self->view, reply->changes [i]);
        if (result == EP_MODEL_GENERATION || result == EP_MODEL_GAP || result == EP_MODEL_INVALID) {
            char why [128];
            snprintf (why, sizeof why, "changes reply inconsistent at revision %llu (%s)",
                      (unsigned long long) reply->changes [i]->revision,
                      ep_model_apply_name (result));
            s_start_snapshot (self, why);
            ep__model_reply__free_unpacked (reply, NULL);
            return;
        }
    }
    self->catchups++;
    uint64_t now_at = ep_model_view_revision (self->view);
    bool more = now_at < reply->revision;
    bool stuck = more && now_at == since;
    ep__model_reply__free_unpacked (reply, NULL);
    if (stuck)
        s_start_snapshot (self, "changes reply made no progress");
    else
    if (more)
        self->retry_at_ms = 0;                  //  next batch on the next tick
    else
        s_go_live (self);
}

//  Asks the model for its revision and generation (ep_follower_sync).
static void
s_status_ask (ep_follower_t *self)
{
    Ep__StatusRequest status = EP__STATUS_REQUEST__INIT;
    s_call (self, CALL_STATUS, &status.base);
}

static void
s_status_reply (ep_follower_t *self, Ep__ModelReply *reply)
{
    const char *problem = s_reply_problem (reply);
    if (problem)
        s_fail (self, "status: %s", problem);
    else {
        free (self->status_generation);
        self->status_generation = strdup (reply->generation);
        self->status_revision = reply->revision;
    }
    ep__model_reply__free_unpacked (reply, NULL);
}

//  Handles the reply to the call in flight if it came, or its expiry.
static void
s_take (ep_follower_t *self, int64_t now)
{
    if (self->call == CALL_NONE)
        return;
    char err [256];
    s_call_t call = self->call;
    Ep__ModelReply *reply = (Ep__ModelReply *) ep_rpc_client_take (
        self->client, &ep__model_reply__descriptor, err, sizeof err);
    if (!reply) {
        if (*err || ep_rpc_client_expire (self->client, now, err, sizeof err)) {
            self->call = CALL_NONE;
            s_fail (self, "%s: %s", s_call_name (call), err);
        }
        return;
    }
    self->call = CALL_NONE;
    if (call == CALL_STATUS)
        s_status_reply (self, reply);
    else
    if (call == CALL_SNAPSHOT && self->state == S_SNAPSHOT)
        s_snapshot_reply (self, reply);
    else
    if (call == CALL_CHANGES && self->state == S_CATCHUP)
        s_catchup_reply (self, reply);
    else
        ep__model_reply__free_unpacked (reply, NULL);   //  overtaken by a new snapshot
}

//  ---------------------------------------------------------------------
//  Stream

//  True while the stream is silent (any instance of the model counts).
static bool
s_silent (ep_follower_t *self, int64_t now)
{
    return now - self->last_heard_ms >= STREAM_SILENT_MS;
}

static void
s_on_report (void *arg, const ep_stream_report_t *report)
{
    ep_follower_t *self = (ep_follower_t *) arg;
    if (strcmp (report->stream, MODEL_STREAM) != 0)
        return;
    //  Until the first snapshot page is asked for, whatever was lost is in
    //  the snapshot: not a loss of ours.
    bool covered = self->state == S_WAIT_STREAM
               || (self->state == S_SNAPSHOT && !self->staging);
    switch (report->kind) {
        case EP_STREAM_GAP:
            if (covered)
                break;
            self->gaps++;
            self->need_catchup = true;
            ep_log_warn ("model follower: lost model.change messages %llu..%llu from %s%s: fetching changes",
                         (unsigned long long) report->from, (unsigned long long) report->to,
                         report->source_id, report->via_heartbeat? " (shown by a heartbeat)": "");
            break;
        case EP_STREAM_RESTART:
            //  Changes published just before the restart may never have
            //  left the old process.
            self->need_catchup = true;
            ep_log_info ("model follower: the model service restarted (%s): fetching changes",
                         report->source_id);
            break;
        case EP_STREAM_SILENT:
            //  Its last changes may have died with it (a model restarted
            //  under a new instance id looks like this): ask once. While
            //  no instance is heard at all, the tick polls.
            self->need_catchup = true;
            ep_log_warn ("model follower: the model stream from %s is silent: fetching changes",
                         report->source_id);
            break;
        case EP_STREAM_RESUMED:
            self->need_catchup = true;
            ep_log_info ("model follower: the model stream from %s is back", report->source_id);
            break;
        case EP_STREAM_DUPLICATE:
            break;
    }
}

zsock_t *
ep_follower_socket (ep_follower_t *self)
{
    return ep_subscriber_socket (self->subscriber);
}

zsock_t *
ep_follower_rpc_socket (ep_follower_t *self)
{
    return ep_rpc_client_socket (self->client);
}

int
ep_follower_handle (ep_follower_t *self)
{
    s_take (self, ep_mono_ms ());
    zsock_t *sub = ep_subscriber_socket (self->subscriber);
    for (int i = 0; i < HANDLE_BATCH && (zsock_events (sub) & ZMQ_POLLIN); i++) {
        Ep__Event *event = ep_subscriber_read (self->subscriber, NULL);
        self->last_heard_ms = ep_mono_ms ();
        if (self->state == S_LIVE && self->need_catchup)
            s_start_catchup (self);
        if (!event)
            continue;
        //  The event is the subscriber's, freed at the next read: the change
        //  is applied or buffered beyond that, so we take a copy we own.
        Ep__ModelChange *change = NULL;
        if (event->body_case == EP__EVENT__BODY_MODEL_CHANGE && event->model_change)
            change = (Ep__ModelChange *) ep_codec_copy (&event->model_change->base);
        if (!change)
            continue;
        if (self->state == S_LIVE)
            s_apply (self, change, false);
        else
            s_buffer (self, change, false);
    }
    return 0;
}

double
ep_model_digest52 (const uint8_t *digest)
{
    uint64_t value = 0;
    for (int i = 0; i < 7; i++)
        value = (value << 8) | digest [i];
    return (double) (value >> 4);
}

void
ep_follower_set_metrics (ep_follower_t *self, ep_metrics_t *metrics)
{
    self->m_revision = ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_model_view_revision",
        "Model revision this service's copy is at.", 0, NULL), NULL);
    self->m_entities = ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_model_view_entities",
        "Entities in this service's copy of the model.", 0, NULL), NULL);
    self->m_digest = ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_model_view_digest52",
        "First 52 bits of the digest of this service's copy (compare with the model's status digest).",
        0, NULL), NULL);
    self->m_snapshots = ep_counter_series (ep_metrics_counter (metrics, "edgeplane_follower_snapshots_total",
        "Model snapshots loaded.", 0, NULL), NULL);
    self->m_resyncs = ep_counter_series (ep_metrics_counter (metrics, "edgeplane_follower_resyncs_total",
        "Model snapshots loaded again after the first (resyncs).", 0, NULL), NULL);
    self->m_catchups = ep_counter_series (ep_metrics_counter (metrics, "edgeplane_follower_catchups_total",
        "Changes fetched from the model API after a loss, restart or silence.", 0, NULL), NULL);
    const char *model [] = { "model" };
    self->m_gaps = ep_counter_series (ep_metrics_stream_gaps (metrics), model);
}

static void
s_export (ep_follower_t *self, int64_t now)
{
    if (!self->m_revision || now < self->next_metrics_ms)
        return;
    self->next_metrics_ms = now + 1000;
    ep_series_set (self->m_revision, (double) ep_model_view_revision (self->view));
    ep_series_set (self->m_entities, (double) ep_model_view_size (self->view));
    uint64_t counts [4] = { self->snapshots, self->resyncs, self->catchups, self->gaps };
    ep_series_t *series [4] = { self->m_snapshots, self->m_resyncs, self->m_catchups, self->m_gaps };
    for (int i = 0; i < 4; i++) {
        ep_series_add (series [i], (double) (counts [i] - self->exported [i]));
        self->exported [i] = counts [i];
    }
    const char *generation = ep_model_view_generation (self->view);
    if (ep_model_view_revision (self->view) != self->digest_revision
    ||  !streq (generation? generation: "", self->digest_generation)) {
        uint8_t digest [EP_MODEL_DIGEST_SIZE];
        ep_model_view_digest (self->view, digest);
        ep_series_set (self->m_digest, ep_model_digest52 (digest));
        self->digest_revision = ep_model_view_revision (self->view);
        snprintf (self->digest_generation, sizeof self->digest_generation, "%s", generation? generation: "");
    }
}

int64_t
ep_follower_tick (ep_follower_t *self)
{
    ep_subscriber_tick (self->subscriber);
    int64_t now = ep_mono_ms ();
    s_export (self, now);
    if (self->state == S_WAIT_STREAM
    &&  ep_tracker_seen (ep_subscriber_tracker (self->subscriber), MODEL_STREAM))
        s_start_snapshot (self, "");
    bool silent = s_silent (self, now);
    if (self->state == S_LIVE && silent && now >= self->next_poll_ms)
        self->need_catchup = true;
    if (self->state == S_LIVE && self->need_catchup)
        s_start_catchup (self);
    s_take (self, now);
    if ((self->state == S_SNAPSHOT || self->state == S_CATCHUP) && self->call == CALL_NONE
    &&  now >= self->retry_at_ms) {
        if (self->state == S_SNAPSHOT)
            s_snapshot_ask (self);
        else
            s_catchup_ask (self);
    }
    int64_t wait = IDLE_TICK_MS;
    if (self->call != CALL_NONE) {
        int64_t deadline = ep_rpc_client_deadline (self->client);
        wait = deadline > now? deadline - now: 0;
    }
    else
    if (self->state == S_SNAPSHOT || self->state == S_CATCHUP)
        wait = self->retry_at_ms > now? self->retry_at_ms - now: 0;
    else
    if (self->state == S_LIVE && self->need_catchup)
        wait = 0;
    else
    if (self->state == S_LIVE && silent)
        wait = self->next_poll_ms > now? self->next_poll_ms - now: 0;
    return wait < IDLE_TICK_MS? wait: IDLE_TICK_MS;
}

//  ---------------------------------------------------------------------
//  Sync

int
ep_follower_sync (ep_follower_t *self, int timeout_ms)
{
    int64_t deadline = ep_mono_ms () + timeout_ms;
    zpoller_t *poller = zpoller_new (ep_follower_socket (self), ep_follower_rpc_socket (self), NULL);
    zstr_free (&self->status_generation);
    int rc = -1;
    while (true) {
        int64_t wait = ep_follower_tick (self);
        if (!self->status_generation && self->state != S_WAIT_STREAM && self->call == CALL_NONE
        &&  ep_mono_ms () >= self->retry_at_ms)
            s_status_ask (self);
        if (self->status_generation && self->state == S_LIVE && self->call == CALL_NONE) {
            const char *have = ep_model_view_generation (self->view);
            bool same = have && strcmp (have, self->status_generation) == 0;
            if (same && ep_model_view_revision (self->view) >= self->status_revision) {
                rc = 0;
                break;
            }
            //  Behind, or another generation: fetch now rather than wait for
            //  the stream; the fetch resnapshots if the generation changed.
            if (!same)
                zstr_free (&self->status_generation);      //  ask again after the fetch
            s_start_catchup (self);
            wait = 0;
        }
        int64_t left = deadline - ep_mono_ms ();
        if (left <= 0)
            break;
        if (wait > left)
            wait = left;
        if (zpoller_wait (poller, (int) wait))
            ep_follower_handle (self);
        else
        if (zpoller_terminated (poller))
            break;
    }
    zpoller_destroy (&poller);
    return rc;
}

//  ---------------------------------------------------------------------
//  Accessors

bool
ep_follower_ready (ep_follower_t *self)
{
    return self->loaded;
}

const char *
ep_follower_state (ep_follower_t *self)
{
    switch (self->state) {
        case S_WAIT_STREAM: return "waiting-for-stream";
        case S_SNAPSHOT:    return "snapshot";
        case S_CATCHUP:     return "catch-up";
        case S_LIVE:        return "live";
    }
    return "unknown";
}

const char *
ep_follower_last_error (ep_follower_t *self)
{
    return self->error;
}

uint64_t
ep_follower_snapshots (ep_follower_t *self)
{
    return self->snapshots;
}

uint64_t
ep_follower_resyncs (ep_follower_t *self)
{
    return self->resyncs;
}

uint64_t
ep_follower_gaps (ep_follower_t *self)
{
    return self->gaps;
}

uint64_t
ep_follower_catchups (ep_follower_t *self)
{
    return self->catchups;
}

uint64_t
ep_follower_api_failures (ep_follower_t *self)
{
    return self->api_failures;
}

void
ep_follower_set_rpc_timeout (ep_follower_t *self, int timeout_ms)
{
    EP_ASSERT (timeout_ms > 0);
    self->rpc_timeout_ms = timeout_ms;
}

void
ep_follower_set_retry (ep_follower_t *self, int64_t base_ms, int64_t max_ms)
{
    self->backoff = ep_backoff (base_ms, max_ms);
}

void
ep_follower_set_page_size (ep_follower_t *self, uint32_t page_size)
{
    self->page_size = page_size;
}
