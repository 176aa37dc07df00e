/*  events.c: connection events and their metrics (see events.h). */
#include "events.h"
#include "ep_codec.h"
#include "ep_log.h"
#include "ep_outbox.h"
#include <dirent.h>

#define RESEND_MS   5000        //  an event not back through the bus this long: resend what is unacknowledged
#define SUFFIX      ".outbox"   //  an outbox file's name: <source id>.outbox
#define OWNER_MAX   128         //  longest source id an adopted outbox may have

//  An outbox and whose ids its events carry: ours, or one adopted from
//  an instance that died.
typedef struct {
    ep_outbox_t *outbox;        //  decided events until the bus echoes them
    char owner [OWNER_MAX + 1]; //  the source id in their event ids
    int64_t oldest_sent_ms;     //  when the oldest unacknowledged event was sent, 0: none
} s_box_t;

const char *events_stray_actions [] = { "none", "log", "disconnect", NULL };

struct _events_t {
    ep_publisher_t *publisher;  //  where events go (borrowed)
    const char *instance_id;    //  this instance (borrowed)
    const char *api_address;    //  where others reach our API (borrowed)
    const char *channel_advertised;     //  where peers dial us (borrowed)
    const char *ctrl_id;        //  our ctrl identity, NULL: none (borrowed)
    int stray_action;           //  index in events_stray_actions
    ep_log_level_t stray_log_level;     //  of a stray's log line (--stray-log-level)
    ep_counter_t *strays;       //  controller_stray_connections_total{step}
    ep_counter_t *refusals;     //  edgeplane_channel_refused_total{reason}
    ep_histogram_t *durations;  //  controller_connection_duration_seconds{outcome}
    ep_counter_t *slice_events; //  edgeplane_router_slice_events_total{type}
    ep_outbox_t *outbox;        //  decided events until the bus echoes them (NULL: none)
    int64_t oldest_sent_ms;     //  when the oldest unacknowledged event was sent, 0: none
    s_box_t *adopted;           //  outboxes of dead instances, drained then removed
    size_t adopted_count;       //  of them
    bool full;                  //  the outbox refused an event (logged once per episode)
    ep_series_t *outbox_depth;  //  edgeplane_outbox_events
    ep_series_t *outbox_refused;    //  edgeplane_outbox_refused_total
    ep_series_t *outbox_capacity;   //  edgeplane_outbox_capacity
};

static const char *
s_connect_type (const char *role)
{
    return streq (role, "router")? "router-to-ctrl"
         : streq (role, "ctrl")? "ctrl-to-ctrl": "edge-to-ctrl";
}

static int64_t
s_wall_of (int64_t mono_ms)
{
    return ep_wall_ms () - (ep_mono_ms () - mono_ms);
}

events_t *
events_new (ep_publisher_t *publisher, ep_metrics_t *metrics, const char *instance_id,
            int stray_action, ep_log_level_t stray_log_level)
{
    events_t *self = (events_t *) zmalloc (sizeof (events_t));
    self->publisher = publisher;
    self->instance_id = instance_id;
    self->stray_action = stray_action;
    self->stray_log_level = stray_log_level;
    const char *step [] = { "step" }, *reason [] = { "reason" }, *outcome [] = { "outcome" };
    self->strays = ep_metrics_counter (metrics, "controller_stray_connections_total",
        "Connections that did not join within the grace period, by the last step reached.", 1, step);
    self->refusals = ep_metrics_counter (metrics, "edgeplane_channel_refused_total",
        "Connections refused, by reason.", 1, reason);
    const char *type [] = { "type" };
    self->slice_events = ep_metrics_counter (metrics, "edgeplane_router_slice_events_total",
        "Slices routers refused (rejected) and routers found stale, by type.", 1, type);
    static const double bounds [] = { 0.01, 0.1, 0.5, 1, 5, 30, 60, 300, 3600, 86400 };
    self->durations = ep_metrics_histogram (metrics, "controller_connection_duration_seconds",
        "How long connections stayed, by outcome.", 1, outcome, EP_COUNT (bounds), bounds);
    self->outbox_depth = ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_outbox_events",
        "Events decided and not yet back through the bus (the durable outbox).", 0, NULL), NULL);
    self->outbox_refused = ep_counter_series (ep_metrics_counter (metrics, "edgeplane_outbox_refused_total",
        "Events and joins refused because the outbox was full.", 0, NULL), NULL);
    self->outbox_capacity = ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_outbox_capacity",
        "Events the outbox holds before new work is refused (--outbox-max).", 0, NULL), NULL);
    //  Declared up front, so their heartbeats show them live before any event.
    static const char *streams [] = { "connect", "stray", "cluster", "channel", "presence", "router" };
    for (size_t i = 0; i < EP_COUNT (streams); i++)
        ep_publisher_declare (publisher, streams [i]);
    return self;
}

void
events_destroy (events_t **self_p)
{
    if (*self_p) {
        ep_outbox_destroy (&(*self_p)->outbox);
        //  Not removed: what they hold is adopted again by the next start.
        for (size_t i = 0; i < (*self_p)->adopted_count; i++)
            ep_outbox_destroy (&(*self_p)->adopted [i].outbox);
        free ((*self_p)->adopted);
        free (*self_p);
        *self_p = NULL;
    }
}

void
events_set_addresses (events_t *self, const char *api_address, const char *channel_advertised,
                      const char *ctrl_id)
{
    self->api_address = api_address;
    self->channel_advertised = channel_advertised;
    self->ctrl_id = ctrl_id;
}

//  edgeplane_outbox_events: ours and the adopted ones.
static void
s_depth (events_t *self)
{
    size_t depth = self->outbox? ep_outbox_count (self->outbox): 0;
    for (size_t i = 0; i < self->adopted_count; i++)
        depth += ep_outbox_count (self->adopted [i].outbox);
    ep_series_set (self->outbox_depth, (double) depth);
}

int
events_open_outbox (events_t *self, const char *path, size_t max_events, size_t max_bytes)
{
    char err [512];
    self->outbox = ep_outbox_open (path, max_events, max_bytes, err, sizeof err);
    if (!self->outbox) {
        ep_log_error ("%s", err);
        return -1;
    }
    if (ep_outbox_torn (self->outbox))
        ep_log_warn ("outbox %s: a torn last record (%zu bytes) was cut off: it was never synced, "
                     "so never published", path, ep_outbox_torn (self->outbox));
    if (ep_outbox_count (self->outbox))
        ep_log_info ("outbox %s: %zu events of a previous run to publish again",
                     path, ep_outbox_count (self->outbox));
    //  Ours only: an adopted outbox is drained, never added to.
    ep_series_set (self->outbox_capacity, (double) max_events);
    s_depth (self);
    return 0;
}

int
events_adopt (events_t *self, const char *dir)
{
    DIR *listing = opendir (dir);
    if (!listing) {
        ep_log_error ("cannot list %s for the outboxes of dead instances: %s", dir, strerror (errno));
        return -1;
    }
    const char *ours = strrchr (ep_outbox_path (self->outbox), '/');
    ours = ours? ours + 1: ep_outbox_path (self->outbox);
    struct dirent *entry;
    while ((entry = readdir (listing))) {
        size_t len = strlen (entry->d_name), suffix = strlen (SUFFIX);
        if (len <= suffix || len - suffix > OWNER_MAX || !streq (entry->d_name + len - suffix, SUFFIX)
        ||  streq (entry->d_name, ours))
            continue;
        char path [PATH_MAX], err [512];
        if (snprintf (path, sizeof path, "%s/%s", dir, entry->d_name) >= (int) sizeof path)
            continue;
        ep_outbox_t *outbox = ep_outbox_adopt (path, err, sizeof err);
        if (!outbox) {
            //  Held: a live instance's, or another's adopted one. Gone:
            //  drained and removed since we listed it.
            if (errno != EWOULDBLOCK && errno != ENOENT)
                ep_log_warn ("cannot adopt %s: %s", path, err);
            continue;
        }
        size_t count = ep_outbox_count (outbox);
        if (count == 0) {
            if (ep_outbox_remove (&outbox, err, sizeof err) != 0)
                ep_log_warn ("%s", err);
            continue;
        }
        ep_log_info ("adopted %s, the outbox of %.*s (an instance that is gone): %zu events to deliver "
                     "under their own ids", path, (int) (len - suffix), entry->d_name, count);
        self->adopted = (s_box_t *) realloc (self->adopted, (self->adopted_count + 1) * sizeof (s_box_t));
        EP_ASSERT (self->adopted);
        s_box_t *box = &self->adopted [self->adopted_count++];
        box->outbox = outbox;
        snprintf (box->owner, sizeof box->owner, "%.*s", (int) (len - suffix), entry->d_name);
        box->oldest_sent_ms = 0;
    }
    closedir (listing);
    s_depth (self);
    return 0;
}

size_t
events_adopted (events_t *self)
{
    return self->adopted_count;
}

bool
events_full (events_t *self)
{
    if (!self->outbox || !ep_outbox_full (self->outbox, 4096))
        return false;
    ep_series_add (self->outbox_refused, 1);
    return true;
}

//  The outbox is full: reported (metric, log once, channel.refused on the
//  bus once it takes events again) and the event refused, never dropped
//  silently.
static void
s_refused (events_t *self, const char *topic)
{
    ep_series_add (self->outbox_refused, 1);
    if (!self->full)
        ep_log_error ("event outbox full (%zu events, %zu bytes): %s not recorded, joins refused "
                      "until the bus takes the backlog; is the bus up?",
                      ep_outbox_count (self->outbox), ep_outbox_bytes (self->outbox), topic);
    self->full = true;
}

//  Publishes on topic an event whose body (of the kind body_case says) is
//  body: through the outbox (decided once synced by events_flush), or
//  straight away for beacons, which the next one replaces.
static void
s_publish (events_t *self, const char *topic, Ep__Event__BodyCase body_case, ProtobufCMessage *body)
{
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = body_case;
    event.connect = (Ep__ConnectEvent *) body;      //  the body union: any member will do
    if (!self->outbox || streq (topic, "presence.beacon")) {
        if (ep_publisher_send (self->publisher, topic, &event) != 0)
            ep_log_warn ("could not publish %s (larger than the cap)", topic);
        return;
    }
    size_t size = ep__event__get_packed_size (&event);
    if (size > EP_CODEC_DEFAULT_CAP) {
        ep_log_warn ("could not publish %s (larger than the cap)", topic);
        return;
    }
    uint8_t *bytes = (uint8_t *) malloc (size? size: 1);
    EP_ASSERT (bytes);
    ep__event__pack (&event, bytes);
    char err [512];
    int64_t seq = ep_outbox_append (self->outbox, topic, bytes, size, err, sizeof err);
    free (bytes);
    if (seq == 0)
        s_refused (self, topic);
    else
    if (seq < 0)
        ep_log_error ("%s: %s not recorded", err, topic);
}

//  Publishes what box holds and has not sent, under its owner's ids,
//  after rewinding it if nothing came back for a while: the bus lost what
//  was in flight (restarted, or its subscription had not reached us yet).
static void
s_send (events_t *self, ep_outbox_t *outbox, const char *owner, int64_t *oldest_sent_ms,
        int64_t now_ms)
{
    if (*oldest_sent_ms && now_ms - *oldest_sent_ms >= RESEND_MS) {
        ep_outbox_rewind (outbox);
        *oldest_sent_ms = 0;
    }
    ep_outbox_record_t record;
    while (ep_outbox_next (outbox, &record)) {
        Ep__Event *event = ep__event__unpack (NULL, record.size, record.body);
        if (!event)
            continue;           //  it passed its CRC: our own bytes, so not expected
        char id [160];
        snprintf (id, sizeof id, "%s:%llu", owner, (unsigned long long) record.seq);
        ep__stream_meta__free_unpacked (event->meta, NULL);
        event->meta = NULL;
        ep_publisher_send_id (self->publisher, record.topic, event, id);
        ep__event__free_unpacked (event, NULL);
        if (!*oldest_sent_ms)
            *oldest_sent_ms = now_ms;
    }
}

void
events_flush (events_t *self, bool bus_live, int64_t now_ms)
{
    if (!self->outbox)
        return;
    char err [512];
    if (ep_outbox_sync (self->outbox, err, sizeof err) != 0) {
        ep_log_error ("%s", err);
        return;
    }
    if (!bus_live)
        return;
    s_send (self, self->outbox, self->instance_id, &self->oldest_sent_ms, now_ms);
    for (size_t i = 0; i < self->adopted_count; i++)
        s_send (self, self->adopted [i].outbox, self->adopted [i].owner,
                &self->adopted [i].oldest_sent_ms, now_ms);
    if (self->full && !ep_outbox_full (self->outbox, 4096)) {
        self->full = false;
        ep_log_info ("event outbox has room again (%zu events): joins accepted",
                     ep_outbox_count (self->outbox));
    }
}

//  If id is "<owner>:<seq>", acknowledges seq in outbox; true if it was
//  owner's.
static bool
s_ack (ep_outbox_t *outbox, const char *owner, int64_t *oldest_sent_ms, const char *id)
{
    size_t len = strlen (owner);
    if (strncmp (id, owner, len) != 0 || id [len] != ':')
        return false;
    char err [512];
    size_t before = ep_outbox_count (outbox);
    if (ep_outbox_ack (outbox, strtoull (id + len + 1, NULL, 10), err, sizeof err) != 0)
        ep_log_error ("%s", err);
    if (ep_outbox_count (outbox) != before && !ep_outbox_in_flight (outbox))
        *oldest_sent_ms = 0;
    return true;
}

void
events_echo (events_t *self, const Ep__Event *event)
{
    const char *id = self->outbox && event->meta? event->meta->event_id: NULL;
    if (!id || !*id)
        return;
    if (!s_ack (self->outbox, self->instance_id, &self->oldest_sent_ms, id)) {
        for (size_t i = 0; i < self->adopted_count; i++) {
            s_box_t *box = &self->adopted [i];
            if (!s_ack (box->outbox, box->owner, &box->oldest_sent_ms, id))
                continue;
            if (ep_outbox_count (box->outbox) == 0) {
                //  Drained: every event its dead owner decided is delivered.
                char err [512];
                ep_log_info ("the adopted outbox of %s is delivered: removed", box->owner);
                if (ep_outbox_remove (&box->outbox, err, sizeof err) != 0)
                    ep_log_warn ("%s", err);
                self->adopted [i] = self->adopted [--self->adopted_count];
            }
            break;
        }
    }
    s_depth (self);
}

void
events_connect (events_t *self, channel_conn_t *c, bool connected, const char *reason,
                int64_t duration_ms)
{
    conn_t *conn = channel_conn_state (c);
    Ep__ConnectEvent body = EP__CONNECT_EVENT__INIT;
    body.type = (char *) s_connect_type (conn_role (conn));
    body.src_type = (char *) conn_role (conn);
    body.src_id = (char *) conn_id (conn);
    body.src_addr = (char *) ep_tls_conn_remote (c);
    body.dst_type = "ctrl";
    body.dst_id = (char *) self->instance_id;
    body.dst_addr = (char *) self->channel_advertised;
    body.has_connected = true;
    body.connected = connected;
    if (!connected) {
        body.has_duration = true;
        body.duration = duration_ms;
        body.reason = (char *) reason;
    }
    char topic [48];
    snprintf (topic, sizeof topic, "connect.%s", body.type);
    s_publish (self, topic, EP__EVENT__BODY_CONNECT, &body.base);
}

void
events_edge_connects (events_t *self, const char *router_id, const Ep__EdgeConnectBatch *batch)
{
    for (size_t i = 0; i < batch->n_events; i++) {
        Ep__EdgeConnect *edge = batch->events [i];
        Ep__ConnectEvent body = EP__CONNECT_EVENT__INIT;
        body.type = "edge-to-router";
        body.src_type = "identity";
        body.src_id = edge->identity_id;
        body.src_addr = edge->src_addr;
        body.dst_type = "router";
        body.dst_id = (char *) router_id;
        body.dst_addr = edge->dst_addr;
        body.has_connected = edge->has_connected;
        body.connected = edge->connected;
        body.has_duration = edge->has_duration_ms;
        body.duration = edge->duration_ms;
        body.reason = edge->reason;
        //  The router's own time, beside the publish time in the meta.
        body.has_event_time_ms = edge->has_timestamp_ms;
        body.event_time_ms = edge->timestamp_ms;
        s_publish (self, "connect.edge-to-router", EP__EVENT__BODY_CONNECT, &body.base);
    }
}

//  A stray event (stray.detected, cluster.peer.not_member) at step: where
//  from, when it was accepted, the Hello's version and the certificate's id
//  once known, and what was done.
static void
s_stray_body (events_t *self, Ep__StrayEvent *body, channel_conn_t *c, const char *step)
{
    conn_t *conn = channel_conn_state (c);
    body->remote_addr = (char *) ep_tls_conn_remote (c);
    body->has_accepted_at_ms = true;
    body->accepted_at_ms = s_wall_of (conn_accepted_at (conn));
    if (conn_version (conn)) {
        body->has_protocol_version = true;
        body->protocol_version = conn_version (conn);
    }
    body->step = (char *) step;
    body->action = (char *) events_stray_actions [self->stray_action];
    if (*conn_id (conn))
        body->peer_id = (char *) conn_id (conn);
}

void
events_stray (events_t *self, channel_conn_t *c, const char *step)
{
    conn_t *conn = channel_conn_state (c);
    const char *labels [] = { step };
    ep_counter_inc (self->strays, labels, 1);
    Ep__StrayEvent body = EP__STRAY_EVENT__INIT;
    s_stray_body (self, &body, c, step);
    s_publish (self, "stray.detected", EP__EVENT__BODY_STRAY, &body.base);
    if (self->stray_action > 0)
        ep_log_at (self->stray_log_level, "stray connection from %s (reached %s, accepted %lld ms ago)",
                   ep_tls_conn_remote (c), step, (long long) (ep_mono_ms () - conn_accepted_at (conn)));
}

void
events_not_member (events_t *self, channel_conn_t *c)
{
    conn_t *conn = channel_conn_state (c);
    Ep__StrayEvent body = EP__STRAY_EVENT__INIT;
    s_stray_body (self, &body, c, "not-member");
    s_publish (self, "cluster.peer.not_member", EP__EVENT__BODY_STRAY, &body.base);
    ep_log_warn ("controller %s at %s is not a member of this cluster", conn_id (conn),
                 ep_tls_conn_remote (c));
}

void
events_refusal (events_t *self, const char *remote, const char *reason, const char *role,
                const char *id)
{
    const char *labels [] = { reason };
    ep_counter_inc (self->refusals, labels, 1);
    Ep__ChannelEvent body = EP__CHANNEL_EVENT__INIT;
    body.reason = (char *) reason;
    body.remote_addr = (char *) remote;
    body.role = role && *role? (char *) role: NULL;
    body.id = id && *id? (char *) id: NULL;
    s_publish (self, "channel.refused", EP__EVENT__BODY_CHANNEL, &body.base);
    ep_log_info ("refused %s%s%s%s from %s: %s", role && *role? role: "", role && *role? " ": "",
                 id && *id? id: "", id && *id? "": "a connection", remote, reason);
}

void
events_slice (events_t *self, const char *type, const char *router_id, uint64_t revision,
              uint64_t acked_revision, int64_t age_ms, const char *reason)
{
    const char *labels [] = { type };
    ep_counter_inc (self->slice_events, labels, 1);
    Ep__ChannelEvent body = EP__CHANNEL_EVENT__INIT;
    body.reason = (char *) reason;
    body.role = "router";
    body.id = (char *) router_id;
    body.has_revision = body.has_acked_revision = true;
    body.revision = revision;
    body.acked_revision = acked_revision;
    body.has_age_ms = age_ms >= 0;
    body.age_ms = age_ms;
    char topic [64];
    snprintf (topic, sizeof topic, "router.slice.%s", type);
    s_publish (self, topic, EP__EVENT__BODY_CHANNEL, &body.base);
    ep_log_warn ("router %s: slice %s (revision %llu, it holds %llu)%s%s", router_id, type,
                 (unsigned long long) revision, (unsigned long long) acked_revision,
                 reason? ": ": "", reason? reason: "");
}

void
events_ended (events_t *self, const char *outcome, double seconds)
{
    const char *labels [] = { outcome };
    ep_histogram_observe (self->durations, labels, seconds);
}

void
events_presence (events_t *self, const char *type, char **routers, size_t n,
                 int64_t joined_wall_ms, uint64_t model_revision)
{
    Ep__PresenceEvent body = EP__PRESENCE_EVENT__INIT;
    body.instance_id = (char *) self->instance_id;
    body.has_instance_epoch = true;
    body.instance_epoch = ep_publisher_epoch (self->publisher);
    body.api_address = (char *) self->api_address;
    body.channel_address = (char *) self->channel_advertised;
    body.ctrl_id = (char *) self->ctrl_id;
    body.has_model_revision = true;
    body.model_revision = model_revision;
    body.routers = routers;
    body.n_routers = n;
    if (joined_wall_ms) {
        body.has_joined_at_ms = true;
        body.joined_at_ms = joined_wall_ms;
    }
    char topic [32];
    snprintf (topic, sizeof topic, "presence.%s", type);
    s_publish (self, topic, EP__EVENT__BODY_PRESENCE, &body.base);
}
