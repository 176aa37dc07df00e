/*  watchdog.c: the watchdog service object and its loop (see watchdog.h). */
#include "watchdog.h"
#include "ep_links.h"
#include "ep_file.h"
#include "ep_log.h"
#include "api.h"
#include "channel.h"
#include "cmdage.h"
#include "events.h"
#include "identity.h"
#include "peers.h"
#include "relay.h"
#include "resume.h"
#include "slicediff.h"
#include "ep_addr.h"
#include "ep_codec.h"
#include "ep_fdlimit.h"
#include "ep_follower.h"
#include "ep_model_view.h"
#include "ep_subscriber.h"

#define PROTOCOL_MIN        1
#define PROTOCOL_MAX        2       //  2: resumable slices, SliceNack; 1 still accepted
#define REVISION_TIMES      1024    //  revisions whose arrival time we remember
#define BEACON_MS           1000
#define CRL_CHECK_MS        2000
#define GAUGES_MS           1000
#define DRAIN_MS            2000        //  SIGTERM: routers have this long to go
#define LOOP_ITEMS          8           //  the loop's poll items before the relay's

//  A router (or peer, or client) joined here.
typedef struct {
    channel_conn_t *conn;       //  its connection (valid until it leaves)
    char role [16];             //  router, ctrl, client
    char id [65];               //  its id
    int64_t joined_wall_ms;     //  when it joined (wall clock, for newest-join-wins)
    ep_series_t *rtt;           //  edgeplane_router_rtt_seconds{router}
    ep_series_t *jitter;        //  edgeplane_router_jitter_seconds{router}
    ep_series_t *lag;           //  edgeplane_router_slice_lag_revisions{router}
    ep_series_t *age;           //  edgeplane_router_slice_age_seconds{router}
    uint32_t version;           //  its protocol version
    uint64_t acked;             //  the slice revision it acknowledged (0: none)
    int64_t joined_mono;        //  when it joined (monotonic)
    uint64_t rejected;          //  slices it refused (NACK)
    bool stale;                 //  router.slice.stale raised, not yet current again
    ep_series_t *timeout;       //  edgeplane_router_heartbeat_timeout_seconds{router}
} s_peer_t;

//  When a revision reached our view (to age acknowledged revisions).
typedef struct {
    uint64_t revision;
    int64_t mono_ms;
} s_revtime_t;

struct _watchdog_t {
    ep_service_t *service;      //  shared process scaffolding (borrowed)
    const ep_common_opts_t *opts;   //  its common options
    watchdog_config_t config;   //  ours
    char *model_key;            //  the model's public key (resume)
    identity_t *identity;       //  our TLS identity, the CRL
    ep_model_view_t *view;      //  the model, as followed
    ep_follower_t *follower;    //  keeps view current
    zhashx_t *deleted;          //  routers deleted while followed here
    ep_publisher_t *publisher;  //  connect., stray., cluster., channel., presence., router.
    events_t *events;           //  what we publish about connections
    ep_subscriber_t *bus;       //  presence. and cmd.<router>. from the bus
    relay_t *relay;             //  requests to the terminators and reaper
    cmdage_t *cmdage;           //  per sharded service and shard, the newest owner seen
    ep_counter_t *stale;        //  edgeplane_commands_stale_total{service}
    api_t *api;                 //  the connections API
    channel_t *channel;         //  the channel: conn_t state machines on server
    ep_tls_server_t *server;    //  the TLS listener and its connections
    char *channel_address;      //  what routers dial (ready file)
    char *channel_advertised;   //  where peers dial us (beacons, controller entry)
    peers_t *peers;             //  our controller entry, links to peers; NULL: none
    zhashx_t *joined;           //  "role/id" -> s_peer_t (joined here)
    ep_gauge_t *rtt;            //  edgeplane_router_rtt_seconds{router}
    ep_gauge_t *jitter;         //  edgeplane_router_jitter_seconds{router}
    ep_gauge_t *lag;            //  edgeplane_router_slice_lag_revisions{router}
    ep_gauge_t *age;            //  edgeplane_router_slice_age_seconds{router}
    ep_counter_t *slices;       //  edgeplane_watchdog_slices_total{kind}
    ep_counter_t *slice_bytes;  //  edgeplane_watchdog_slice_bytes_total{kind}
    resume_t *resume;           //  first slices for joined routers
    s_revtime_t revtimes [REVISION_TIMES];  //  ring: when revisions arrived
    size_t n_revtimes;          //  written so far (the ring index is this modulo)
    int64_t started_mono;       //  when we began following (ages before the ring)
    ep_gauge_t *timeout;        //  edgeplane_router_heartbeat_timeout_seconds{router}
    int64_t next_beacon;        //  when to beacon (ms)
    int64_t next_gauges;        //  when to set gauges (ms)
    int64_t next_crl;           //  when to look at the CRL (ms)
    bool draining;              //  SIGTERM: no new connections, routers told to go
    int64_t drain_deadline;     //  when draining ends at the latest (ms)
};

static char *
s_peer_key (const char *role, const char *id, char *buf, size_t size)
{
    snprintf (buf, size, "%s/%s", role, id);
    return buf;
}

static s_peer_t *
s_router (watchdog_t *self, const char *router_id)
{
    char key [96];
    return (s_peer_t *) zhashx_lookup (self->joined, s_peer_key ("router", router_id, key, sizeof key));
}

//  A joined router's connection, from our index (channel_find scans).
static channel_conn_t *
s_router_conn (void *arg, const char *router_id)
{
    s_peer_t *peer = s_router ((watchdog_t *) arg, router_id);
    return peer? peer->conn: NULL;
}

//  -------------------------------------------------------------------------
//  Model verdicts and slices

static conn_peer_t
s_verdict (void *arg, const char *role, const char *id)
{
    watchdog_t *self = (watchdog_t *) arg;
    if (events_full (self->events))
        return CONN_PEER_BUSY;      //  its join could not be recorded
    if (streq (role, "router")) {
        const Ep__Entity *router = ep_model_view_get (self->view, EP__ENTITY_TYPE__ENTITY_ROUTER, id);
        if (!router)
            return zhashx_lookup (self->deleted, id)? CONN_PEER_DELETED: CONN_PEER_UNKNOWN;
        return router->router->has_enabled && !router->router->enabled? CONN_PEER_DISABLED: CONN_PEER_OK;
    }
    if (streq (role, "ctrl"))
        return ep_model_view_get (self->view, EP__ENTITY_TYPE__ENTITY_CONTROLLER, id)
             ? CONN_PEER_OK: CONN_PEER_NOT_MEMBER;
    //  Clients (edge-to-ctrl): an enabled Identity of their id.
    const Ep__Entity *identity = ep_model_view_get (self->view, EP__ENTITY_TYPE__ENTITY_IDENTITY, id);
    char key [80];
    snprintf (key, sizeof key, "identity/%s", id);
    if (!identity)
        return zhashx_lookup (self->deleted, key)? CONN_PEER_IDENTITY_DELETED: CONN_PEER_NO_IDENTITY;
    return identity->identity->has_enabled && !identity->identity->enabled
         ? CONN_PEER_IDENTITY_DISABLED: CONN_PEER_OK;
}

//  An Identity was disabled or deleted: its edge-to-ctrl connection is
//  closed at once (left: a disconnect event with the reason).
static void
s_on_identity (watchdog_t *self, const ep_model_event_t *event)
{
    char key [96];
    snprintf (key, sizeof key, "identity/%s", event->id);
    if (event->kind == EP__MODEL_OP__KIND__DELETED)
        zhashx_update (self->deleted, key, (void *) 1);
    else
        zhashx_delete (self->deleted, key);
    bool disabled = event->after && event->after->identity->has_enabled && !event->after->identity->enabled;
    if (event->kind != EP__MODEL_OP__KIND__DELETED && !disabled)
        return;
    s_peer_t *peer = (s_peer_t *) zhashx_lookup (self->joined, s_peer_key ("client", event->id, key, sizeof key));
    if (peer)
        ep_tls_conn_close (peer->conn, disabled? "identity-disabled": "identity-deleted");
}

//  Sends peer slice, counted by kind (full, diff: a resumed difference,
//  push: a change as it happens).
static void
s_slice_send (watchdog_t *self, s_peer_t *peer, Ep__ModelSlice *slice, const char *kind)
{
    if (peer->version < 2) {    //  protocol 1 knows hosted and removed only
        slice->router = NULL;
        slice->n_services = 0;
    }
    Ep__Frame frame = EP__FRAME__INIT;
    frame.body_case = EP__FRAME__BODY_SLICE;
    frame.slice = slice;
    const char *labels [] = { kind };
    ep_counter_inc (self->slices, labels, 1);
    ep_counter_inc (self->slice_bytes, labels, (double) ep__frame__get_packed_size (&frame));
    ep_tls_conn_send (peer->conn, &frame);
}

//  resume_flush delivers a joined router's first slice.
static void
s_resume_send (void *arg, const char *router_id, const Ep__ModelSlice *slice)
{
    watchdog_t *self = (watchdog_t *) arg;
    s_peer_t *peer = s_router (self, router_id);
    if (peer)
        s_slice_send (self, peer, (Ep__ModelSlice *) slice, slice->full? "full": "diff");
}

//  Pushes a router the change between before and after: hosted services
//  added or changed, removed, and (protocol 2) its own entity.
static void
s_send_slice (watchdog_t *self, s_peer_t *peer, const Ep__Router *before, const Ep__Router *after)
{
    Ep__ModelSlice slice = EP__MODEL_SLICE__INIT;
    slicediff_push (before, after, resume_lookup_service, self->view, ep_model_view_revision (self->view),
                    &slice);
    slice.generation = (char *) ep_model_view_generation (self->view);
    //  A protocol-1 router holds only hosted and removed: if neither
    //  changed, there is nothing to send it.
    if (peer->version >= 2 || slice.n_hosted || slice.n_removed)
        s_slice_send (self, peer, &slice, "push");
    slicediff_slice_clear (&slice);
}

//  A service changed: protocol-2 routers joined here that host it get its
//  settings.
static void
s_push_service (watchdog_t *self, const ep_model_event_t *event)
{
    if (!event->after)
        return;                 //  deleted: the routers' hosted lists change with it
    zlistx_t *routers = ep_model_view_routers_hosting (self->view, event->id);
    for (char *id = (char *) zlistx_first (routers); id; id = (char *) zlistx_next (routers)) {
        s_peer_t *peer = s_router (self, id);
        if (!peer || peer->version < 2)
            continue;
        Ep__ModelSlice slice = EP__MODEL_SLICE__INIT;
        slice.has_revision = slice.has_full = true;
        slice.revision = ep_model_view_revision (self->view);
        slice.generation = (char *) ep_model_view_generation (self->view);
        Ep__Service *services [1] = { event->after->service };
        slice.services = services;
        slice.n_services = 1;
        s_slice_send (self, peer, &slice, "push");
    }
    zlistx_destroy (&routers);
}

//  Remembers when revision reached our view.
static void
s_note_revision (watchdog_t *self, uint64_t revision)
{
    size_t last = (self->n_revtimes + REVISION_TIMES - 1) % REVISION_TIMES;
    if (self->n_revtimes && self->revtimes [last].revision >= revision)
        return;
    self->revtimes [self->n_revtimes % REVISION_TIMES] = (s_revtime_t) { revision, ep_mono_ms () };
    self->n_revtimes++;
}

//  How long ago (ms) a revision after acked reached our view: the age of
//  peer's acknowledged slice; 0 if it is current.
static int64_t
s_slice_age (watchdog_t *self, s_peer_t *peer)
{
    if (peer->acked >= ep_model_view_revision (self->view))
        return 0;
    int64_t since = self->started_mono;
    size_t n = self->n_revtimes < REVISION_TIMES? self->n_revtimes: REVISION_TIMES;
    int64_t best = INT64_MAX;
    for (size_t i = 0; i < n; i++)
        if (self->revtimes [i].revision > peer->acked && self->revtimes [i].mono_ms < best)
            best = self->revtimes [i].mono_ms;
    if (best != INT64_MAX && n == self->n_revtimes)
        since = best;           //  the ring holds every revision since we started
    else
    if (best != INT64_MAX && peer->acked >= self->revtimes [self->n_revtimes % REVISION_TIMES].revision)
        since = best;           //  the ring reaches back past acked
    if (peer->acked == 0 && peer->joined_mono > since)
        since = peer->joined_mono;      //  never acknowledged: since its first slice
    return ep_mono_ms () - since;
}

//  The follower applied a change: push slices, drain deleted routers.
static void
s_on_model (void *arg, const ep_model_event_t *event)
{
    watchdog_t *self = (watchdog_t *) arg;
    s_note_revision (self, event->revision);
    if (event->type == EP__ENTITY_TYPE__ENTITY_SERVICE)
        s_push_service (self, event);
    if (event->type == EP__ENTITY_TYPE__ENTITY_IDENTITY && self->channel)
        s_on_identity (self, event);
    if (event->type != EP__ENTITY_TYPE__ENTITY_ROUTER)
        return;
    if (event->kind == EP__MODEL_OP__KIND__DELETED)
        zhashx_update (self->deleted, event->id, (void *) 1);
    else
        zhashx_delete (self->deleted, event->id);
    s_peer_t *peer = s_router (self, event->id);
    if (!peer)
        return;
    if (event->kind == EP__MODEL_OP__KIND__DELETED)
        channel_drain (self->channel, peer->conn, "router-deleted", false);
    else
    if (event->after && event->after->router->has_enabled && !event->after->router->enabled)
        channel_drain (self->channel, peer->conn, "router-disabled", false);
    else
    if (event->before && event->after)
        s_send_slice (self, peer, event->before->router, event->after->router);
}

//  -------------------------------------------------------------------------
//  Presence

//  presence.<type> for router, or (NULL) for every router joined here.
static void
s_presence (watchdog_t *self, const char *type, const char *router, int64_t joined_wall_ms)
{
    size_t count = router? 1: zhashx_size (self->joined), n = 0;
    char *routers [count + 1];
    if (router)
        routers [n++] = (char *) router;
    else {
        s_peer_t *peer = (s_peer_t *) zhashx_first (self->joined);
        for (; peer; peer = (s_peer_t *) zhashx_next (self->joined))
            if (streq (peer->role, "router"))
                routers [n++] = peer->id;
    }
    events_presence (self->events, type, routers, n, joined_wall_ms,
                     ep_model_view_revision (self->view));
}

//  Another instance says a router joined there: if we hold an older
//  connection of the same router, ours goes.
static void
s_on_presence (watchdog_t *self, const Ep__PresenceEvent *presence)
{
    if (!presence->instance_id || streq (presence->instance_id, ep_service_source_id (self->service)))
        return;
    for (size_t i = 0; i < presence->n_routers; i++) {
        s_peer_t *peer = s_router (self, presence->routers [i]);
        if (peer && presence->joined_at_ms >= peer->joined_wall_ms) {
            ep_log_info ("router %s joined %s after joining here: closing our copy",
                         peer->id, presence->instance_id);
            ep_tls_conn_close (peer->conn, "moved");
        }
    }
}

//  -------------------------------------------------------------------------
//  Channel callbacks

static void
s_joined (void *arg, channel_conn_t *c)
{
    watchdog_t *self = (watchdog_t *) arg;
    conn_t *conn = channel_conn_state (c);
    s_peer_t *peer = (s_peer_t *) zmalloc (sizeof (s_peer_t));
    peer->conn = c;
    snprintf (peer->role, sizeof peer->role, "%s", conn_role (conn));
    snprintf (peer->id, sizeof peer->id, "%s", conn_id (conn));
    peer->joined_wall_ms = ep_wall_ms ();
    char key [96];
    s_peer_key (peer->role, peer->id, key, sizeof key);
    s_peer_t *older = (s_peer_t *) zhashx_lookup (self->joined, key);
    if (older)      //  the same router twice here: the newest join wins
        ep_tls_conn_close (older->conn, "moved");
    zhashx_update (self->joined, key, peer);
    ep_log_info ("%s %s joined from %s", peer->role, peer->id, ep_tls_conn_remote (c));
    events_connect (self->events, c, true, NULL, 0);
    if (streq (peer->role, "router")) {
        const char *labels [] = { peer->id };
        peer->rtt = ep_gauge_series (self->rtt, labels);
        peer->jitter = ep_gauge_series (self->jitter, labels);
        peer->lag = ep_gauge_series (self->lag, labels);
        peer->age = ep_gauge_series (self->age, labels);
        peer->version = conn_version (conn);
        peer->acked = conn_model_revision (conn);
        peer->joined_mono = ep_mono_ms ();
        peer->timeout = ep_gauge_series (self->timeout, labels);
        char topic [80];
        snprintf (topic, sizeof topic, "cmd.%s.", peer->id);
        ep_subscriber_subscribe (self->bus, topic);
        s_presence (self, "join", peer->id, peer->joined_wall_ms);
        //  Its first slice goes out with the others that joined this turn.
        resume_queue (self->resume, peer->id, conn_model_revision (conn), conn_model_generation (conn),
                      peer->version >= 2);
    }
}

static void
s_left (void *arg, channel_conn_t *c, const char *reason, int64_t joined_ms)
{
    watchdog_t *self = (watchdog_t *) arg;
    conn_t *conn = channel_conn_state (c);
    char key [96];
    s_peer_key (conn_role (conn), conn_id (conn), key, sizeof key);
    s_peer_t *peer = (s_peer_t *) zhashx_lookup (self->joined, key);
    ep_log_info ("%s %s left (%s) after %lld ms", conn_role (conn), conn_id (conn), reason,
                 (long long) joined_ms);
    events_connect (self->events, c, false, reason, joined_ms);
    if (peer && peer->conn == c) {
        if (streq (peer->role, "router")) {
            char topic [80];
            snprintf (topic, sizeof topic, "cmd.%s.", peer->id);
            ep_subscriber_unsubscribe (self->bus, topic);
            s_presence (self, "leave", peer->id, 0);
            ep_series_set (peer->rtt, NAN);
            ep_series_set (peer->jitter, NAN);
            ep_series_set (peer->lag, NAN);
            ep_series_set (peer->age, NAN);
            resume_forget (self->resume, peer->id);
            ep_series_set (peer->timeout, NAN);
        }
        zhashx_delete (self->joined, key);
    }
}

static void
s_stray (void *arg, channel_conn_t *c, const char *step)
{
    events_stray (((watchdog_t *) arg)->events, c, step);
}

static void
s_not_member (void *arg, channel_conn_t *c)
{
    events_not_member (((watchdog_t *) arg)->events, c);
}

static void
s_refused (void *arg, channel_conn_t *c, const char *reason)
{
    conn_t *conn = channel_conn_state (c);
    events_refusal (((watchdog_t *) arg)->events, ep_tls_conn_remote (c), reason, conn_role (conn),
                    conn_id (conn));
}

static void
s_rejected (void *arg, const char *remote, const char *reason)
{
    events_refusal (((watchdog_t *) arg)->events, remote, reason, NULL, NULL);
}

static void
s_ended (void *arg, channel_conn_t *c, const char *outcome, double seconds)
{
    (void) c;
    events_ended (((watchdog_t *) arg)->events, outcome, seconds);
}

//  A router acknowledged (SliceAck) or refused (SliceNack) a slice.
static void
s_slice_answer (watchdog_t *self, channel_conn_t *c, const Ep__Frame *frame)
{
    s_peer_t *peer = s_router (self, conn_id (channel_conn_state (c)));
    if (!peer || peer->conn != c)
        return;
    if (frame->body_case == EP__FRAME__BODY_SLICE_ACK && frame->slice_ack->has_revision) {
        if (frame->slice_ack->revision > peer->acked)
            peer->acked = frame->slice_ack->revision;
        return;
    }
    const Ep__SliceNack *nack = frame->slice_nack;
    peer->rejected++;
    if (nack->has_kept_revision)
        peer->acked = nack->kept_revision;
    events_slice (self->events, "rejected", peer->id, nack->revision, peer->acked, -1,
                  nack->reason? nack->reason: "no reason given");
}

//  Slice lag and age of each router, stale ones reported (once per
//  episode).
static void
s_slice_gauges (watchdog_t *self)
{
    uint64_t revision = ep_model_view_revision (self->view);
    s_peer_t *peer = (s_peer_t *) zhashx_first (self->joined);
    for (; peer; peer = (s_peer_t *) zhashx_next (self->joined)) {
        if (!peer->lag)
            continue;
        int64_t age = s_slice_age (self, peer);
        ep_series_set (peer->lag, (double) (revision > peer->acked? revision - peer->acked: 0));
        ep_series_set (peer->age, age / 1000.0);
        if (age > self->config.slice_stale_ms && !peer->stale) {
            peer->stale = true;
            events_slice (self->events, "stale", peer->id, revision, peer->acked, age, NULL);
        }
        else
        if (age == 0)
            peer->stale = false;
    }
}

//  The connections API: a router's slice state.
static void
s_decorate (void *arg, channel_conn_t *c, Ep__ConnectionInfo *info)
{
    watchdog_t *self = (watchdog_t *) arg;
    conn_t *conn = channel_conn_state (c);
    s_peer_t *peer = streq (conn_role (conn), "router")? s_router (self, conn_id (conn)): NULL;
    if (!peer || peer->conn != c)
        return;
    uint64_t revision = ep_model_view_revision (self->view);
    info->has_acked_revision = info->has_slice_lag = info->has_acked_age_ms = true;
    info->has_slice_stale = info->has_slice_rejected = true;
    info->acked_revision = peer->acked;
    info->slice_lag = revision > peer->acked? revision - peer->acked: 0;
    info->acked_age_ms = s_slice_age (self, peer);
    info->slice_stale = info->acked_age_ms > self->config.slice_stale_ms;
    info->slice_rejected = peer->rejected;
}

static void
s_frame (void *arg, channel_conn_t *c, Ep__Frame *frame)
{
    watchdog_t *self = (watchdog_t *) arg;
    conn_t *conn = channel_conn_state (c);
    if (streq (conn_role (conn), "router") && (frame->body_case == EP__FRAME__BODY_SLICE_ACK
                                           ||  frame->body_case == EP__FRAME__BODY_SLICE_NACK))
        s_slice_answer (self, c, frame);
    //  Ctrl peers and clients have nothing to relay yet.
    if (streq (conn_role (conn), "router") && !relay_frame (self->relay, c, frame)
    &&  frame->body_case == EP__FRAME__BODY_EDGE_CONNECTS)
        events_edge_connects (self->events, conn_id (conn), frame->edge_connects);
    ep__frame__free_unpacked (frame, NULL);
}

//  -------------------------------------------------------------------------
//  The bus

//  A command from a deposed shard owner, or with a malformed fence, is not
//  delivered (cmdage.h); the router would act on what its new owner undid.
static bool
s_command_fresh (watchdog_t *self, const char *router, const Ep__Command *command)
{
    cmdage_result_t age = cmdage_check (self->cmdage, command);
    const char *what = command->command_id? command->command_id: "?";
    if (age.verdict == CMDAGE_STALE) {
        ep_log_info ("command %s for router %s from a deposed %s owner: shard %u, owner revision "
                     "%lld, older than %lld seen: not delivered", what, router,
                     command->shard_service, command->shard, (long long) command->owner_revision,
                     (long long) age.newest);
        ep_counter_inc (self->stale, (const char *[]) { command->shard_service }, 1);
    }
    else
    if (age.verdict == CMDAGE_BAD)
        ep_log_warn ("command %s for router %s: %s: not delivered", what, router, age.why);
    return age.verdict == CMDAGE_DELIVER || age.verdict == CMDAGE_UNSHARDED;
}

//  A shard owner's beacon: it routes that service's requests (relay.h),
//  and the owner revisions it carries make older owners' commands stale
//  before the new owner has sent any (cmdage.h).
static void
s_on_shard_beacon (watchdog_t *self, const Ep__ShardBeacon *beacon)
{
    relay_beacon (self->relay, beacon, ep_mono_ms ());
    if (beacon->n_owner_revisions == beacon->n_shards)
        for (size_t i = 0; i < beacon->n_shards; i++)
            cmdage_owner (self->cmdage, beacon->service, beacon->shards [i], beacon->owner_revisions [i]);
}

//  A command published on cmd.<router>.: the topic says which router (we
//  subscribe per joined router); a body naming another router is a
//  commander's bug, not delivered to either.
static void
s_on_command (watchdog_t *self, const char *rest, Ep__Command *command)
{
    char router [65];
    size_t len = strlen (rest);
    if (len < 2 || rest [len - 1] != '.' || len - 1 >= sizeof router)
        return;
    memcpy (router, rest, len - 1);
    router [len - 1] = 0;
    const char *what = command->command_id? command->command_id: "?";
    if (command->router_id && !streq (command->router_id, router)) {
        ep_log_warn ("command %s published for router %s names router %s: not delivered",
                     what, router, command->router_id);
        return;
    }
    if (!s_command_fresh (self, router, command))
        return;
    channel_conn_t *c = s_router_conn (self, router);
    if (!c) {
        ep_log_debug ("command %s for router %s: not joined here", what, router);
        return;
    }
    relay_command (self->relay, command);
    Ep__Frame frame = EP__FRAME__INIT;
    frame.body_case = EP__FRAME__BODY_COMMAND;
    frame.command = command;
    ep_tls_conn_send (c, &frame);
}

//  Events from the bus: presence of other instances, commands for routers.
static void
s_bus_events (watchdog_t *self)
{
    char *topic = NULL;
    Ep__Event *event;
    while ((event = ep_subscriber_recv (self->bus, 0, &topic))) {
        events_echo (self->events, event);
        if (event->body_case == EP__EVENT__BODY_PRESENCE && streq (topic, "presence.join"))
            s_on_presence (self, event->presence);
        else
        if (event->body_case == EP__EVENT__BODY_PRESENCE && streq (topic, "presence.beacon")) {
            if (self->peers && !self->draining)
                peers_beacon (self->peers, event->presence);
        }
        else
        if (event->body_case == EP__EVENT__BODY_COMMAND && strncmp (topic, "cmd.", 4) == 0)
            s_on_command (self, topic + 4, event->command);
        else
        if (event->body_case == EP__EVENT__BODY_SHARD_BEACON && streq (topic, "cluster.beacon"))
            s_on_shard_beacon (self, event->shard_beacon);
        zstr_free (&topic);
    }
}

//  -------------------------------------------------------------------------
//  Periodic work

static void
s_gauges (watchdog_t *self)
{
    api_gauges (self->api, self->server);
    s_peer_t *peer = (s_peer_t *) zhashx_first (self->joined);
    for (; peer; peer = (s_peer_t *) zhashx_next (self->joined))
        if (peer->rtt) {
            conn_t *conn = channel_conn_state (peer->conn);
            double rtt = conn_rtt_ms (conn);
            ep_series_set (peer->rtt, rtt >= 0? rtt / 1000.0: NAN);
            ep_series_set (peer->jitter, conn_jitter_ms (conn) / 1000.0);
            ep_series_set (peer->timeout, conn_heartbeat_timeout_ms (conn) / 1000.0);
            int64_t from, to;
            if (conn_heartbeat_timeout_changed (conn, &from, &to))
                ep_log_info ("%s %s: heartbeat timeout %lld ms -> %lld ms (its cadence changed)",
                             peer->role, peer->id, (long long) from, (long long) to);
        }
    s_slice_gauges (self);
    if (self->peers)
        peers_gauges (self->peers);
    //  Relays and commands nobody answered are forgotten.
    relay_expire (self->relay, ep_mono_ms ());
}

//  Beacons, gauges, the CRL, our certificate: whatever is due.
static void
s_periodic (watchdog_t *self)
{
    int64_t now = ep_mono_ms ();
    if (now >= self->next_beacon) {
        s_presence (self, "beacon", NULL, 0);
        self->next_beacon = now + BEACON_MS;
    }
    if (now >= self->next_gauges) {
        s_gauges (self);
        self->next_gauges = now + GAUGES_MS;
    }
    if (now >= self->next_crl) {
        identity_check_crl (self->identity, self->channel);
        self->next_crl = now + CRL_CHECK_MS;
    }
    identity_check (self->identity);
    ep_fdlimit_watch (now);     //  its loop polls itself, without ep_service_wait
}

//  SIGTERM: stop accepting, tell every router to go elsewhere.
static void
s_drain (watchdog_t *self)
{
    ep_log_info ("draining %zu connections", ep_tls_server_size (self->server));
    self->draining = true;
    zsys_interrupted = 0;
    ep_tls_server_stop_accepting (self->server);
    //  Our links to peers go now; their links to us get Goodbye below.
    if (self->peers)
        peers_hang_up (self->peers);
    channel_conn_t *c = ep_tls_server_first (self->server);
    for (; c; c = ep_tls_server_next (self->server))
        if (conn_state (channel_conn_state (c)) == CONN_JOINED)
            channel_drain (self->channel, c, "shutdown", true);
    self->drain_deadline = ep_mono_ms () + DRAIN_MS;
}

//  How long the loop may wait (ms) for the next thing due.
static int64_t
s_timeout (watchdog_t *self)
{
    int64_t now = ep_mono_ms ();
    int64_t timeout = ep_publisher_tick (self->publisher);
    int64_t peers = self->peers? peers_deadline (self->peers, self->draining): INT64_MAX;
    //  The certificate's times are wall-clock ones.
    int64_t identity = identity_deadline (self->identity);
    int64_t due [] = { ep_follower_tick (self->follower), ep_tls_server_deadline (self->server) - now,
                       self->next_beacon - now, self->next_gauges - now, self->next_crl - now,
                       peers == INT64_MAX? peers: peers - now,
                       identity == INT64_MAX? identity: identity - ep_wall_ms () };
    for (size_t i = 0; i < EP_COUNT (due); i++)
        if (due [i] < timeout)
            timeout = due [i];
    return timeout < 0? 0: timeout;
}

int
watchdog_run (watchdog_t *self)
{
    if (!self->channel)
        return 0;               //  stopped (SIGTERM) while following the model
    //  The relay's DEALERs come last: their number changes (shard owners).
    zmq_pollitem_t items [LOOP_ITEMS + RELAY_POLL_MAX] = {
        { zsock_resolve (ep_service_auth_actor (self->service)), 0, ZMQ_POLLIN, 0 },
        { zsock_resolve (ep_follower_socket (self->follower)), 0, ZMQ_POLLIN, 0 },
        { zsock_resolve (ep_follower_rpc_socket (self->follower)), 0, ZMQ_POLLIN, 0 },
        { zsock_resolve (ep_subscriber_socket (self->bus)), 0, ZMQ_POLLIN, 0 },
        { zsock_resolve (api_socket (self->api)), 0, ZMQ_POLLIN, 0 },
        { NULL, ep_tls_server_fd (self->server), ZMQ_POLLIN, 0 },
        { NULL, self->peers? peers_fd (self->peers): -1, ZMQ_POLLIN, 0 },
        { self->peers? peers_lease_socket (self->peers): NULL, -1, ZMQ_POLLIN, 0 },
    };
    self->next_beacon = ep_mono_ms ();
    self->next_gauges = ep_mono_ms () + GAUGES_MS;
    self->next_crl = ep_mono_ms () + CRL_CHECK_MS;
    while (true) {
        size_t count = LOOP_ITEMS + relay_poll_items (self->relay, items + LOOP_ITEMS, RELAY_POLL_MAX);
        if (zmq_poll (items, (int) count, (long) s_timeout (self)) < 0 && zmq_errno () != EINTR)
            return 0;           //  the context was terminated: stop as for SIGTERM
        if (self->peers)
            peers_process (self->peers, self->draining);
        if (items [0].revents & ZMQ_POLLIN)
            ep_service_check_auth (self->service);
        ep_follower_handle (self->follower);
        s_bus_events (self);
        api_handle (self->api, self->server);
        relay_replies (self->relay);
        ep_tls_server_process (self->server);
        resume_flush (self->resume);
        s_periodic (self);
        events_flush (self->events, ep_tracker_seen (ep_subscriber_tracker (self->bus), "presence"),
                      ep_mono_ms ());
        if (ep_service_interrupted (self->service) && !self->draining)
            s_drain (self);
        if (self->draining && (ep_tls_server_size (self->server) == 0 || ep_mono_ms () >= self->drain_deadline
                               || ep_service_interrupted (self->service)))
            return 0;
    }
}

//  -------------------------------------------------------------------------
//  Start

//  The outbox of our events, a file per instance id in the data directory
//  (replicas sharing a volume do not collide), the outboxes of instances
//  that died there (adopted: at start only, which is when an instance
//  without a fixed id leaves one behind), and the subscriptions that
//  bring them back to acknowledge them.
static int
s_open_outbox (watchdog_t *self)
{
    if (ep_file_mkdirs (self->opts->data_dir, 0700, NULL, 0) != 0)
        ep_log_warn ("cannot create %s", self->opts->data_dir);
    char *path = zsys_sprintf ("%s/%s.outbox", self->opts->data_dir, ep_service_source_id (self->service));
    int rc = events_open_outbox (self->events, path, (size_t) self->config.outbox_max,
                                 (size_t) self->config.outbox_bytes);
    free (path);
    if (rc == 0)
        events_adopt (self->events, self->opts->data_dir);
    static const char *echoes [] = { "connect.", "stray.", "cluster.", "channel.", "router.", "presence.leave" };
    for (size_t i = 0; rc == 0 && i < EP_COUNT (echoes); i++)
        ep_subscriber_subscribe (self->bus, echoes [i]);
    return rc;
}

//  The bus (publisher, subscriber), the model (follower), the services
//  (relay) and our API. Returns 0, or -1 (logged).
static int
s_connect (watchdog_t *self)
{
    ep_links_config_t links_config = {
        .publish = true, .label = "bus", .dedupe_window = self->config.dedupe_window, .view = self->view
    };
    ep_links_t links;
    if (ep_links_open (&links, self->service, &links_config) != 0)
        return -1;
    self->publisher = links.publisher;
    self->bus = links.subscriber;
    self->follower = links.follower;
    self->events = events_new (self->publisher, ep_service_metrics (self->service),
                               ep_service_source_id (self->service), self->config.stray_action,
                               self->config.stray_log_level);
    ep_subscriber_subscribe (self->bus, "presence.join");
    ep_subscriber_subscribe (self->bus, "presence.beacon");
    ep_subscriber_subscribe (self->bus, "cluster.beacon");     //  shard owners (relay.h)
    if (s_open_outbox (self) != 0)
        return -1;
    self->relay = relay_new (self->service, s_router_conn, self);
    if (self->relay)
        self->api = api_new (self->service, self->config.listen, self->config.advertise);
    if (self->api) {
        api_set_decorator (self->api, s_decorate, self);
        self->resume = resume_new (self->service, self->model_key, self->view, s_resume_send, self);
    }
    return self->resume? 0: -1;
}

//  Routers are judged against the model: follow it before listening.
static void
s_follow (watchdog_t *self)
{
    while (!ep_follower_ready (self->follower) && !ep_service_interrupted (self->service)) {
        int64_t wait = ep_follower_tick (self->follower);
        zpoller_t *poller = zpoller_new (ep_follower_socket (self->follower),
                                         ep_follower_rpc_socket (self->follower),
                                         ep_service_auth_actor (self->service), NULL);
        void *which = ep_service_wait (self->service, poller, wait < 100? wait: 100);
        zpoller_destroy (&poller);
        if (which)
            ep_follower_handle (self->follower);
        ep_publisher_tick (self->publisher);
    }
}

//  The channel listener. Returns 0, or -1 (logged).
static int
s_listen (watchdog_t *self)
{
    const watchdog_config_t *cf = &self->config;
    ep_cadence_config_t cadence;
    ep_cadence_defaults (&cadence);
    cadence.min_ms = cf->liveness_floor_ms;
    cadence.max_ms = cf->liveness_ceiling_ms;
    channel_config_t config = {
        .conn = {
            .adaptive = cf->adaptive, .cadence = cadence,
            .stray_grace_ms = cf->grace_ms, .stray_action = (conn_stray_action_t) cf->stray_action,
            .heartbeat_ms = cf->heartbeat_ms, .heartbeat_timeout_ms = cf->heartbeat_timeout_ms,
            .min_version = PROTOCOL_MIN, .max_version = PROTOCOL_MAX,
            .drain_grace_ms = cf->drain_grace_ms,
            .instance_id = ep_service_source_id (self->service)
        },
        .joined_cap = (size_t) cf->joined_cap, .out_cap = (size_t) cf->out_cap,
        .budget = (size_t) cf->budget, .frame_timeout_ms = cf->frame_timeout_ms,
        .max_handshakes = (int) cf->max_handshakes, .max_per_source = (int) cf->max_per_source
    };
    channel_handler_t handler = {
        .verdict = s_verdict, .joined = s_joined, .left = s_left, .stray = s_stray,
        .refused = s_refused, .not_member = s_not_member, .rejected = s_rejected,
        .ended = s_ended, .frame = s_frame
    };
    char err [512];
    self->channel = channel_new (cf->channel_listen, identity_server_ctx (self->identity), &config,
                                 &handler, self, err, sizeof err);
    if (!self->channel) {
        ep_log_error ("%s", err);
        return -1;
    }
    self->server = channel_server (self->channel);
    return 0;
}

//  What routers dial (the ready file) and where peers dial us (beacons,
//  our controller entry): the address bound (a wildcard made loopback),
//  or for peers, when bound to a wildcard, this host's address toward the
//  bus.
static void
s_channel_addresses (watchdog_t *self)
{
    char text [EP_ADDR_TEXT_MAX];
    self->channel_address = strdup (ep_tls_server_address (self->server, text, sizeof text));
    ep_addr_t listen;
    ep_addr_parse (&listen, self->config.channel_listen, 0, NULL, 0);
    if (self->config.channel_advertise)
        self->channel_advertised = strdup (self->config.channel_advertise);
    else
    if (listen.any || streq (listen.host, "0.0.0.0") || streq (listen.host, "::")) {
        char host [INET6_ADDRSTRLEN];
        api_local_host (self->opts->bus_pub, host, sizeof host);
        self->channel_advertised = strdup (ep_addr_join (host, ep_tls_server_port (self->server),
                                                         text, sizeof text));
    }
    else
        self->channel_advertised = strdup (self->channel_address);
}

int
watchdog_start (watchdog_t *self)
{
    char err [512];
    self->identity = identity_new (self->service, self->config.ctrl_id, self->config.ctrl_cert,
                                   self->config.ctrl_key, self->config.ctrl_lifetime_ms, err, sizeof err);
    if (!self->identity)
        ep_log_error ("%s", err);
    if (!self->identity || !self->model_key || s_connect (self))
        return -1;
    s_follow (self);
    if (ep_service_interrupted (self->service))
        return 0;
    if (s_listen (self))
        return -1;
    s_channel_addresses (self);
    const char *ctrl_id = identity_ctrl_id (self->identity);
    events_set_addresses (self->events, api_address (self->api), self->channel_advertised, ctrl_id);
    if (ctrl_id) {
        peers_config_t peers = {
            .ctrl_id = ctrl_id, .advertised = self->channel_advertised,
            .client_ctx = identity_client_ctx (self->identity),
            .heartbeat_ms = self->config.heartbeat_ms, .silence_ms = self->config.heartbeat_timeout_ms,
            .lease_ttl_ms = self->config.ctrl_lease_ttl_ms
        };
        self->peers = peers_new (self->service, &peers);
        if (!self->peers)
            return -1;
    }
    //  The ready file carries the channel address next to the sockets.
    ep_log_info ("channel listening on %s (grace %lld ms, stray action %s, stray log level %s)",
                 self->channel_address, (long long) self->config.grace_ms,
                 events_stray_actions [self->config.stray_action],
                 ep_log_level_name (self->config.stray_log_level));
    ep_service_record (self->service, "channel", self->channel_address);
    return ep_service_ready (self->service);
}

//  -------------------------------------------------------------------------

watchdog_t *
watchdog_new (ep_service_t *service, const watchdog_config_t *config)
{
    watchdog_t *self = (watchdog_t *) zmalloc (sizeof (watchdog_t));
    self->service = service;
    self->opts = ep_service_opts (service);
    self->config = *config;
    ep_metrics_t *metrics = ep_service_metrics (service);
    const char *router [] = { "router" };
    self->rtt = ep_metrics_gauge (metrics, "edgeplane_router_rtt_seconds",
        "Last heartbeat round trip of each joined router.", 1, router);
    self->jitter = ep_metrics_gauge (metrics, "edgeplane_router_jitter_seconds",
        "Smoothed heartbeat jitter of each joined router.", 1, router);
    self->lag = ep_metrics_gauge (metrics, "edgeplane_router_slice_lag_revisions",
        "Model revision minus the slice revision each joined router acknowledged.", 1, router);
    self->age = ep_metrics_gauge (metrics, "edgeplane_router_slice_age_seconds",
        "How long ago each joined router's acknowledged slice was superseded (0: current).", 1, router);
    const char *kind [] = { "kind" };
    self->slices = ep_metrics_counter (metrics, "edgeplane_watchdog_slices_total",
        "Slices sent to routers, by kind (full, diff: resumed, push: a change).", 1, kind);
    self->slice_bytes = ep_metrics_counter (metrics, "edgeplane_watchdog_slice_bytes_total",
        "Bytes of slice frames sent to routers, by kind.", 1, kind);
    self->stale = ep_metrics_counter (metrics, "edgeplane_commands_stale_total",
        "Commands for routers not delivered: from a deposed shard owner, by its service.",
        1, (const char *[]) { "service" });
    ep_counter_series (self->stale, (const char *[]) { "terminators" });    //  at 0, for rate ()
    ep_counter_series (self->stale, (const char *[]) { "reaper" });
    self->cmdage = cmdage_new ();
    self->started_mono = ep_mono_ms ();
    self->timeout = ep_metrics_gauge (metrics, "edgeplane_router_heartbeat_timeout_seconds",
        "Heartbeat timeout in force for each joined router (adaptive or fixed).", 1, router);
    self->joined = zhashx_new ();
    zhashx_set_destructor (self->joined, (czmq_destructor *) zstr_free);
    self->deleted = zhashx_new ();
    self->view = ep_model_view_new ();
    ep_model_view_set_observer (self->view, s_on_model, self);
    self->model_key = ep_keys_public_txt (self->opts->keys_dir, "model");
    return self;
}

void
watchdog_destroy (watchdog_t **self_p)
{
    watchdog_t *self = *self_p;
    if (!self)
        return;
    ep_log_info ("stopping");
    if (self->channel) {
        channel_conn_t *c = ep_tls_server_first (self->server);
        for (; c; c = ep_tls_server_next (self->server))
            ep_tls_conn_close (c, "shutdown");
        ep_tls_server_process (self->server);
    }
    channel_destroy (&self->channel);
    peers_destroy (&self->peers);
    api_destroy (&self->api);
    relay_destroy (&self->relay);
    cmdage_destroy (&self->cmdage);
    resume_destroy (&self->resume);
    events_destroy (&self->events);
    ep_follower_destroy (&self->follower);
    ep_subscriber_destroy (&self->bus);
    ep_publisher_destroy (&self->publisher);
    ep_model_view_destroy (&self->view);
    zhashx_destroy (&self->joined);
    zhashx_destroy (&self->deleted);
    identity_destroy (&self->identity);
    free (self->model_key);
    free (self->channel_address);
    free (self->channel_advertised);
    free (self);
    *self_p = NULL;
}
