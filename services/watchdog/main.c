/*  edgeplane-watchdog: the control-channel listener and connection watchdog.

    One thread, one loop: zmq_poll over the ZeroMQ sockets and the channel's
    epoll fd (which holds every TLS connection). The channel (channel.c)
    runs the connections' state machines (conn.c); this file is what the
    watchdog does with what they report: verdicts from the model (a
    follower's copy), connect / stray / refusal events and metrics,
    presence (join, leave, beacons; the newest join of a router wins), the
    model slice pushed to each router, requests relayed to the terminators
    and reaper services, commands (cmd.<router-id>.) delivered, and the
    connections API.

    Each instance has a ctrl identity of its own (a certificate for
    edgeplane://ctrl/<id>, issued here in memory with the CA key and
    renewed here before its end (renewal.c decides), or a bundle given),
    registers itself as a controller in the model, and dials every other
    instance it hears beaconing (dialer.c decides, link.c connects).
*/
#include "ep_service.h"
#include "ep_codec.h"
#include "ep_follower.h"
#include "ep_model_view.h"
#include "ep_pki.h"
#include "ep_publisher.h"
#include "ep_rpc_server.h"
#include "ep_subscriber.h"
#include "channel.h"
#include "dialer.h"
#include "link.h"
#include "renewal.h"
#include "ep_rpc_client.h"
#include "model.pb-c.h"
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROTOCOL_MIN        1
#define PROTOCOL_MAX        1
#define BEACON_MS           1000
#define CRL_CHECK_MS        2000
#define GAUGES_MS           1000
#define RELAY_TIMEOUT_MS    30000
#define RELAY_ID_MAX        160         //  the longest request id services take
#define PEER_EXPIRE_MS      (5 * BEACON_MS)     //  a peer whose beacons stopped this long is gone
#define LINK_JOIN_MS        10000       //  a link to a peer must join within this
#define CTRL_LIFETIME_MS    (825 * 86400000LL)  //  default of a self-issued ctrl certificate (as tls/watchdog.crt)

//  A router (or peer, or client) joined here.
typedef struct {
    channel_conn_t *conn;       //  its connection (valid until it leaves)
    char role [16];             //  router, ctrl, client
    char id [65];               //  its id
    int64_t joined_wall_ms;     //  when it joined (wall clock, for newest-join-wins)
    ep_series_t *rtt;           //  edgeplane_router_rtt_seconds{router}
    ep_series_t *jitter;        //  edgeplane_router_jitter_seconds{router}
} s_peer_t;

//  A request relayed to a service, waiting for its reply.
typedef struct {
    char router_id [65];        //  who asked
    uint64_t frame_id;          //  the frame id to answer with
    bool terminators;           //  which service (else the reaper)
    bool ack;                   //  a command ack: the reply is not the router's
    int64_t expires_ms;         //  forgotten after this
} s_relay_t;

typedef struct {
    ep_service_t *service;      //  shared process scaffolding
    const ep_common_opts_t *opts;
    char *channel_address;      //  what routers dial (ready file, presence)
    char *api_address;          //  where others reach our API (presence)
    SSL_CTX *ssl_ctx;           //  TLS server context
    struct stat crl_stat;       //  ca.crl as last loaded (inode, mtime)
    channel_t *channel;         //  the TLS listener and its connections
    ep_model_view_t *view;      //  the model, as followed
    ep_follower_t *follower;    //  keeps view current
    zhashx_t *deleted;          //  routers deleted while followed here
    ep_publisher_t *publisher;  //  connect., stray., cluster., channel., presence.
    ep_subscriber_t *events;    //  presence. and cmd.<router>. from the bus
    zsock_t *api;               //  ROUTER: the connections API
    ep_rpc_server_t *rpc;       //  its request handling
    zsock_t *terminators;       //  DEALER to the terminators service
    zsock_t *reaper;            //  DEALER to the reaper
    zhashx_t *peers;            //  "role/id" -> s_peer_t (joined here)
    zhashx_t *relays;           //  upstream request id -> s_relay_t
    zhashx_t *commands;         //  command id -> reply_to ("terminators" / "reaper")
    char *ctrl_id;              //  our ctrl identity (certificate, controller entry); NULL: none
    char *channel_advertised;   //  where peers dial us (beacons, controller entry)
    SSL_CTX *client_ctx;        //  our ctrl certificate, to dial peers
    int64_t ctrl_lifetime_ms;   //  validity of a certificate issued here
    bool ctrl_renewable;        //  we issued ours (CA key): renewed here; else a bundle
    const char *ctrl_source;    //  where ours came from, for logs (a bundle's path)
    int64_t ctrl_start_ms;      //  when ours was issued (wall; a bundle: its notBefore)
    int64_t ctrl_end_ms;        //  its notAfter (wall)
    int64_t ctrl_check_ms;      //  when to ask renewal_check again (wall)
    dialer_t *dialer;           //  which peers to dial, when
    zhashx_t *links;            //  peer instance -> s_link_t (our links to peers)
    ep_tls_server_t *link_server;   //  their connections
    link_config_t link_config;  //  their timeouts
    bool registered_here;       //  we created our controller entry: removed when we stop
    bool draining;              //  SIGTERM: no new connections, routers told to go
    int stray_action;           //  index in s_stray_actions
    //  Metrics
    ep_counter_t *strays;       //  controller_stray_connections_total{step}
    ep_counter_t *refusals;     //  edgeplane_channel_refused_total{reason}
    ep_histogram_t *durations;  //  controller_connection_duration_seconds{outcome}
    ep_gauge_t *connections;    //  edgeplane_connections{role,state}
    ep_gauge_t *rtt;            //  edgeplane_router_rtt_seconds{router}
    ep_gauge_t *jitter;         //  edgeplane_router_jitter_seconds{router}
    ep_series_t *buffered;      //  edgeplane_channel_buffered_bytes
    ep_series_t *peers_known;   //  edgeplane_ctrl_peers
    ep_gauge_t *link_states;    //  edgeplane_ctrl_links{state}
    ep_series_t *ctrl_expiry;   //  edgeplane_ctrl_cert_expiry_timestamp_seconds
    ep_series_t *ctrl_renewals; //  edgeplane_ctrl_cert_renewals_total
} s_watchdog_t;

//  Our link to a peer controller.
typedef struct {
    link_t *link;               //  the connection
    char instance [80];         //  the peer instance
    char ctrl_id [65];          //  its ctrl id
    char address [256];         //  where we dialed
    bool joined;                //  its join was seen (logged, told to the dialer)
} s_link_t;

static void
s_link_destroy (s_link_t **self_p)
{
    if (*self_p) {
        link_destroy (&(*self_p)->link);
        free (*self_p);
        *self_p = NULL;
    }
}

static const char *s_stray_actions [] = { "none", "log", "disconnect", NULL };

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

static void
s_publish (s_watchdog_t *self, const char *topic, Ep__Event *event)
{
    if (ep_publisher_send (self->publisher, topic, event) != 0)
        ep_log_warn ("could not publish %s (larger than the cap)", topic);
}

//  -------------------------------------------------------------------------
//  Model verdicts and slices

static conn_peer_t
s_verdict (void *arg, const char *role, const char *id)
{
    s_watchdog_t *self = (s_watchdog_t *) arg;
    if (streq (role, "router")) {
        const Ep__Entity *router = ep_model_view_get (self->view, EP__ENTITY_TYPE__ENTITY_ROUTER, id);
        if (!router)
            return zhashx_lookup (self->deleted, id)? CONN_PEER_DELETED: CONN_PEER_UNKNOWN;
        return router->router->has_enabled && !router->router->enabled? CONN_PEER_DISABLED: CONN_PEER_OK;
    }
    if (streq (role, "ctrl"))
        return ep_model_view_get (self->view, EP__ENTITY_TYPE__ENTITY_CONTROLLER, id)
             ? CONN_PEER_OK: CONN_PEER_NOT_MEMBER;
    return CONN_PEER_OK;        //  clients: edge-to-ctrl, their certificate is the check
}

//  Sends router id its model slice: everything it hosts (full), or the
//  change between before and after.
static void
s_send_slice (s_watchdog_t *self, s_peer_t *peer, const Ep__Router *before, const Ep__Router *after)
{
    Ep__ModelSlice slice = EP__MODEL_SLICE__INIT;
    slice.has_revision = slice.has_full = true;
    slice.revision = ep_model_view_revision (self->view);
    slice.generation = (char *) ep_model_view_generation (self->view);
    slice.full = before == NULL;
    Ep__HostedService *hosted [after? after->n_hosted + 1: 1];
    char *removed [before? before->n_hosted + 1: 1];
    for (size_t i = 0; after && i < after->n_hosted; i++) {
        bool same = false;
        for (size_t j = 0; before && j < before->n_hosted; j++)
            if (streq (before->hosted [j]->service_id, after->hosted [i]->service_id))
                same = before->hosted [j]->cost == after->hosted [i]->cost
                    && before->hosted [j]->precedence == after->hosted [i]->precedence;
        if (!same)
            hosted [slice.n_hosted++] = after->hosted [i];
    }
    for (size_t j = 0; before && j < before->n_hosted; j++) {
        bool kept = false;
        for (size_t i = 0; after && i < after->n_hosted; i++)
            kept |= streq (before->hosted [j]->service_id, after->hosted [i]->service_id);
        if (!kept)
            removed [slice.n_removed++] = before->hosted [j]->service_id;
    }
    if (before && slice.n_hosted == 0 && slice.n_removed == 0)
        return;                 //  nothing the router needs changed
    slice.hosted = hosted;
    slice.removed = removed;
    Ep__Frame frame = EP__FRAME__INIT;
    frame.body_case = EP__FRAME__BODY_SLICE;
    frame.slice = &slice;
    channel_conn_send (peer->conn, &frame);
}

static char *
s_peer_key (const char *role, const char *id, char *buf, size_t size)
{
    snprintf (buf, size, "%s/%s", role, id);
    return buf;
}

//  The follower applied a change: push slices, drain deleted routers.
static void
s_on_model (void *arg, const ep_model_event_t *event)
{
    s_watchdog_t *self = (s_watchdog_t *) arg;
    if (event->type != EP__ENTITY_TYPE__ENTITY_ROUTER)
        return;
    if (event->kind == EP__MODEL_OP__KIND__DELETED)
        zhashx_update (self->deleted, event->id, (void *) 1);
    else
        zhashx_delete (self->deleted, event->id);
    char key [96];
    s_peer_t *peer = (s_peer_t *) zhashx_lookup (self->peers, s_peer_key ("router", event->id, key, sizeof key));
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

static void
s_presence (s_watchdog_t *self, const char *type, const char *router, int64_t joined_wall_ms)
{
    Ep__PresenceEvent body = EP__PRESENCE_EVENT__INIT;
    body.instance_id = (char *) ep_service_source_id (self->service);
    body.has_instance_epoch = true;
    body.instance_epoch = ep_publisher_epoch (self->publisher);
    body.api_address = self->api_address;
    body.channel_address = self->channel_advertised;
    body.ctrl_id = self->ctrl_id;
    body.has_model_revision = true;
    body.model_revision = ep_model_view_revision (self->view);
    size_t count = router? 1: zhashx_size (self->peers);
    char *routers [count + 1];
    body.routers = routers;
    if (router)
        routers [body.n_routers++] = (char *) router;
    else {
        s_peer_t *peer = (s_peer_t *) zhashx_first (self->peers);
        for (; peer; peer = (s_peer_t *) zhashx_next (self->peers))
            if (streq (peer->role, "router"))
                routers [body.n_routers++] = peer->id;
    }
    if (joined_wall_ms) {
        body.has_joined_at_ms = true;
        body.joined_at_ms = joined_wall_ms;
    }
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_PRESENCE;
    event.presence = &body;
    char topic [32];
    snprintf (topic, sizeof topic, "presence.%s", type);
    s_publish (self, topic, &event);
}

//  Another instance says a router joined there: if we hold an older
//  connection of the same router, ours goes.
static void
s_on_presence (s_watchdog_t *self, const Ep__PresenceEvent *presence)
{
    if (!presence->instance_id || streq (presence->instance_id, ep_service_source_id (self->service)))
        return;
    for (size_t i = 0; i < presence->n_routers; i++) {
        char key [96];
        s_peer_t *peer = (s_peer_t *) zhashx_lookup (self->peers,
                                                     s_peer_key ("router", presence->routers [i], key, sizeof key));
        if (peer && presence->joined_at_ms >= peer->joined_wall_ms) {
            ep_log_info ("router %s joined %s after joining here: closing our copy",
                         peer->id, presence->instance_id);
            channel_close (self->channel, peer->conn, "moved");
        }
    }
}

//  -------------------------------------------------------------------------
//  Channel callbacks

static void
s_connect_event (s_watchdog_t *self, channel_conn_t *c, bool connected, const char *reason,
                 int64_t duration_ms)
{
    conn_t *conn = channel_conn_state (c);
    Ep__ConnectEvent body = EP__CONNECT_EVENT__INIT;
    body.type = (char *) s_connect_type (conn_role (conn));
    body.src_type = (char *) conn_role (conn);
    body.src_id = (char *) conn_id (conn);
    body.src_addr = (char *) channel_conn_remote (c);
    body.dst_type = "ctrl";
    body.dst_id = (char *) ep_service_source_id (self->service);
    body.dst_addr = self->channel_advertised;
    body.has_connected = true;
    body.connected = connected;
    if (!connected) {
        body.has_duration = true;
        body.duration = duration_ms;
        body.reason = (char *) reason;
    }
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_CONNECT;
    event.connect = &body;
    char topic [48];
    snprintf (topic, sizeof topic, "connect.%s", body.type);
    s_publish (self, topic, &event);
}

static void
s_joined (void *arg, channel_conn_t *c)
{
    s_watchdog_t *self = (s_watchdog_t *) arg;
    conn_t *conn = channel_conn_state (c);
    s_peer_t *peer = (s_peer_t *) zmalloc (sizeof (s_peer_t));
    peer->conn = c;
    snprintf (peer->role, sizeof peer->role, "%s", conn_role (conn));
    snprintf (peer->id, sizeof peer->id, "%s", conn_id (conn));
    peer->joined_wall_ms = ep_wall_ms ();
    char key [96];
    s_peer_key (peer->role, peer->id, key, sizeof key);
    s_peer_t *older = (s_peer_t *) zhashx_lookup (self->peers, key);
    if (older)      //  the same router twice here: the newest join wins
        channel_close (self->channel, older->conn, "moved");
    zhashx_update (self->peers, key, peer);
    ep_log_info ("%s %s joined from %s", peer->role, peer->id, channel_conn_remote (c));
    s_connect_event (self, c, true, NULL, 0);
    if (streq (peer->role, "router")) {
        const char *labels [] = { peer->id };
        peer->rtt = ep_gauge_series (self->rtt, labels);
        peer->jitter = ep_gauge_series (self->jitter, labels);
        char topic [80];
        snprintf (topic, sizeof topic, "cmd.%s.", peer->id);
        ep_subscriber_subscribe (self->events, topic);
        s_presence (self, "join", peer->id, peer->joined_wall_ms);
        const Ep__Entity *router = ep_model_view_get (self->view, EP__ENTITY_TYPE__ENTITY_ROUTER, peer->id);
        if (router)
            s_send_slice (self, peer, NULL, router->router);
    }
}

static void
s_left (void *arg, channel_conn_t *c, const char *reason, int64_t joined_ms)
{
    s_watchdog_t *self = (s_watchdog_t *) arg;
    conn_t *conn = channel_conn_state (c);
    char key [96];
    s_peer_key (conn_role (conn), conn_id (conn), key, sizeof key);
    s_peer_t *peer = (s_peer_t *) zhashx_lookup (self->peers, key);
    ep_log_info ("%s %s left (%s) after %lld ms", conn_role (conn), conn_id (conn), reason,
                 (long long) joined_ms);
    s_connect_event (self, c, false, reason, joined_ms);
    if (peer && peer->conn == c) {
        if (streq (peer->role, "router")) {
            char topic [80];
            snprintf (topic, sizeof topic, "cmd.%s.", peer->id);
            ep_subscriber_unsubscribe (self->events, topic);
            s_presence (self, "leave", peer->id, 0);
            ep_series_set (peer->rtt, NAN);
            ep_series_set (peer->jitter, NAN);
        }
        zhashx_delete (self->peers, key);
    }
}

static void
s_stray (void *arg, channel_conn_t *c, const char *step)
{
    s_watchdog_t *self = (s_watchdog_t *) arg;
    conn_t *conn = channel_conn_state (c);
    const char *labels [] = { step };
    ep_counter_inc (self->strays, labels, 1);
    Ep__StrayEvent body = EP__STRAY_EVENT__INIT;
    body.remote_addr = (char *) channel_conn_remote (c);
    body.has_accepted_at_ms = true;
    body.accepted_at_ms = s_wall_of (conn_accepted_at (conn));
    if (conn_version (conn)) {
        body.has_protocol_version = true;
        body.protocol_version = conn_version (conn);
    }
    body.step = (char *) step;
    body.action = (char *) s_stray_actions [self->stray_action];
    if (*conn_id (conn))
        body.peer_id = (char *) conn_id (conn);
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_STRAY;
    event.stray = &body;
    s_publish (self, "stray.detected", &event);
    if (self->stray_action > 0)
        ep_log_warn ("stray connection from %s (reached %s, accepted %lld ms ago)",
                     channel_conn_remote (c), step, (long long) (ep_mono_ms () - conn_accepted_at (conn)));
}

static void
s_not_member (void *arg, channel_conn_t *c)
{
    s_watchdog_t *self = (s_watchdog_t *) arg;
    conn_t *conn = channel_conn_state (c);
    Ep__StrayEvent body = EP__STRAY_EVENT__INIT;
    body.remote_addr = (char *) channel_conn_remote (c);
    body.has_accepted_at_ms = true;
    body.accepted_at_ms = s_wall_of (conn_accepted_at (conn));
    body.step = "not-member";
    body.peer_id = (char *) conn_id (conn);
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_STRAY;
    event.stray = &body;
    s_publish (self, "cluster.peer.not_member", &event);
    ep_log_warn ("controller %s at %s is not a member of this cluster", conn_id (conn),
                 channel_conn_remote (c));
}

static void
s_refusal_event (s_watchdog_t *self, const char *remote, const char *reason,
                 const char *role, const char *id)
{
    const char *labels [] = { reason };
    ep_counter_inc (self->refusals, labels, 1);
    Ep__ChannelEvent body = EP__CHANNEL_EVENT__INIT;
    body.reason = (char *) reason;
    body.remote_addr = (char *) remote;
    body.role = role && *role? (char *) role: NULL;
    body.id = id && *id? (char *) id: NULL;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_CHANNEL;
    event.channel = &body;
    s_publish (self, "channel.refused", &event);
    ep_log_info ("refused %s%s%s%s from %s: %s", role && *role? role: "", role && *role? " ": "",
                 id && *id? id: "", id && *id? "": "a connection", remote, reason);
}

static void
s_refused (void *arg, channel_conn_t *c, const char *reason)
{
    s_watchdog_t *self = (s_watchdog_t *) arg;
    conn_t *conn = channel_conn_state (c);
    s_refusal_event (self, channel_conn_remote (c), reason, conn_role (conn), conn_id (conn));
}

static void
s_rejected (void *arg, const char *remote, const char *reason)
{
    s_refusal_event ((s_watchdog_t *) arg, remote, reason, NULL, NULL);
}

static void
s_ended (void *arg, channel_conn_t *c, const char *outcome, double seconds)
{
    s_watchdog_t *self = (s_watchdog_t *) arg;
    (void) c;
    const char *labels [] = { outcome };
    ep_histogram_observe (self->durations, labels, seconds);
}

//  -------------------------------------------------------------------------
//  Relay: router requests to their services, replies back

//  A joined router's connection, from our index (channel_find scans).
static channel_conn_t *
s_router_conn (s_watchdog_t *self, const char *router_id)
{
    char key [96];
    s_peer_t *peer = (s_peer_t *) zhashx_lookup (self->peers, s_peer_key ("router", router_id, key, sizeof key));
    return peer? peer->conn: NULL;
}

//  Answers a router's request here, when it cannot be relayed.
static void
s_relay_fail (channel_conn_t *c, uint64_t frame_id, bool terminators, char *request_id,
              Ep__Status__Code code, const char *message)
{
    Ep__Status status = EP__STATUS__INIT;
    status.has_code = true;
    status.code = code;
    status.message = (char *) message;
    Ep__TerminatorReply terminator_reply = EP__TERMINATOR_REPLY__INIT;
    Ep__SessionReply session_reply = EP__SESSION_REPLY__INIT;
    Ep__Frame frame = EP__FRAME__INIT;
    frame.has_id = true;
    frame.id = frame_id;
    if (terminators) {
        terminator_reply.request_id = request_id;
        terminator_reply.status = &status;
        terminator_reply.has_retriable = true;
        terminator_reply.retriable = code == EP__STATUS__CODE__UNAVAILABLE;
        frame.body_case = EP__FRAME__BODY_TERMINATOR_REPLY;
        frame.terminator_reply = &terminator_reply;
    }
    else {
        session_reply.request_id = request_id;
        session_reply.status = &status;
        frame.body_case = EP__FRAME__BODY_SESSION_REPLY;
        frame.session_reply = &session_reply;
    }
    channel_conn_send (c, &frame);
}

//  Sends a router's request to its service under an upstream id derived
//  from the router's own: "<router>:<its id>", so a retry through any
//  watchdog instance is the same request to the service (and hits its
//  reply cache). Acks the watchdog makes go as "<router>/ack/<command>":
//  router ids cannot hold ':' or '/', so no id a router picks can collide
//  with an ack's, and the reply to an ack is not forwarded.
static void
s_relay (s_watchdog_t *self, channel_conn_t *c, uint64_t frame_id, bool terminators, bool ack,
         ProtobufCMessage *request, char **request_id_field)
{
    const char *router_id = conn_id (channel_conn_state (c));
    char *theirs = *request_id_field;
    char upstream [RELAY_ID_MAX + 2];
    int len = snprintf (upstream, sizeof upstream, ack? "%s/ack/%s": "%s:%s", router_id, theirs? theirs: "");
    if (!theirs || !*theirs || len > RELAY_ID_MAX) {
        if (ack)
            ep_log_warn ("router %s: ack with no command id or a too long one: dropped", router_id);
        else {
            char message [128];
            snprintf (message, sizeof message, "request_id is required: 1 to %d characters",
                      RELAY_ID_MAX - (int) strlen (router_id) - 1);
            s_relay_fail (c, frame_id, terminators, theirs, EP__STATUS__CODE__INVALID_ARGUMENT, message);
        }
        return;
    }
    *request_id_field = upstream;
    char err [256];
    zframe_t *packed = ep_codec_pack (request, EP_CODEC_DEFAULT_CAP, err, sizeof err);
    *request_id_field = theirs;
    const char *service = terminators? "terminators": "reaper";
    if (!packed) {
        if (!ack)
            s_relay_fail (c, frame_id, terminators, theirs, EP__STATUS__CODE__INVALID_ARGUMENT, err);
        return;
    }
    if (zframe_send (&packed, terminators? self->terminators: self->reaper, ZFRAME_DONTWAIT) != 0) {
        zframe_destroy (&packed);       //  not taken on failure
        ep_log_warn ("router %s: the %s service is not taking requests (%s)", router_id, service,
                     zmq_strerror (zmq_errno ()));
        if (!ack)
            s_relay_fail (c, frame_id, terminators, theirs, EP__STATUS__CODE__UNAVAILABLE,
                          "the service is not reachable from the watchdog: retry later");
        return;
    }
    s_relay_t *relay = (s_relay_t *) zmalloc (sizeof (s_relay_t));
    snprintf (relay->router_id, sizeof relay->router_id, "%s", router_id);
    relay->frame_id = frame_id;
    relay->terminators = terminators;
    relay->ack = ack;
    relay->expires_ms = ep_mono_ms () + RELAY_TIMEOUT_MS;
    zhashx_update (self->relays, upstream, relay);
}

static void
s_frame (void *arg, channel_conn_t *c, Ep__Frame *frame)
{
    s_watchdog_t *self = (s_watchdog_t *) arg;
    conn_t *conn = channel_conn_state (c);
    const char *id = conn_id (conn);
    if (!streq (conn_role (conn), "router")) {
        ep__frame__free_unpacked (frame, NULL);
        return;         //  ctrl peers and clients have nothing to relay yet
    }
    switch (frame->body_case) {
        case EP__FRAME__BODY_TERMINATOR_REQUEST: {
            Ep__TerminatorRequest *request = frame->terminator_request;
            free (request->router_id);
            request->router_id = strdup (id);       //  only we speak for routers
            s_relay (self, c, frame->id, true, false, &request->base, &request->request_id);
            break;
        }
        case EP__FRAME__BODY_SESSION_REQUEST: {
            Ep__SessionRequest *request = frame->session_request;
            free (request->router_id);
            request->router_id = strdup (id);
            s_relay (self, c, frame->id, false, false, &request->base, &request->request_id);
            break;
        }
        case EP__FRAME__BODY_COMMAND_ACK: {
            Ep__CommandAck *ack = frame->command_ack;
            const char *reply_to = ack->command_id
                                 ? (const char *) zhashx_lookup (self->commands, ack->command_id): NULL;
            //  The command id is the request id: s_relay prefixes it.
            char *request_id = ack->command_id;
            if (reply_to && streq (reply_to, "terminators")) {
                Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
                request.request_id = request_id;
                request.router_id = (char *) id;
                request.op_case = EP__TERMINATOR_REQUEST__OP_ACK;
                request.ack = ack;
                s_relay (self, c, frame->id, true, true, &request.base, &request.request_id);
            }
            else {
                Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
                request.request_id = request_id;
                request.router_id = (char *) id;
                request.op_case = EP__SESSION_REQUEST__OP_ACK;
                request.ack = ack;
                s_relay (self, c, frame->id, false, true, &request.base, &request.request_id);
            }
            break;
        }
        case EP__FRAME__BODY_EDGE_CONNECTS: {
            //  edge-to-router connections the router saw, as connect events.
            Ep__EdgeConnectBatch *batch = frame->edge_connects;
            for (size_t i = 0; i < batch->n_events; i++) {
                Ep__EdgeConnect *edge = batch->events [i];
                Ep__ConnectEvent body = EP__CONNECT_EVENT__INIT;
                body.type = "edge-to-router";
                body.src_type = "identity";
                body.src_id = edge->identity_id;
                body.src_addr = edge->src_addr;
                body.dst_type = "router";
                body.dst_id = (char *) id;
                body.dst_addr = edge->dst_addr;
                body.has_connected = edge->has_connected;
                body.connected = edge->connected;
                body.has_duration = edge->has_duration_ms;
                body.duration = edge->duration_ms;
                body.reason = edge->reason;
                Ep__Event event = EP__EVENT__INIT;
                event.body_case = EP__EVENT__BODY_CONNECT;
                event.connect = &body;
                s_publish (self, "connect.edge-to-router", &event);
            }
            break;
        }
        default:
            break;      //  SliceAck and others: nothing to do
    }
    ep__frame__free_unpacked (frame, NULL);
}

//  A reply from the terminators or reaper service: back to the router.
static void
s_upstream_reply (s_watchdog_t *self, zsock_t *dealer, bool terminators)
{
    zframe_t *reply;
    while ((zsock_events (dealer) & ZMQ_POLLIN) && (reply = zframe_recv (dealer))) {
        char err [256];
        ProtobufCMessage *msg = ep_codec_unpack_frame (
            terminators? &ep__terminator_reply__descriptor: &ep__session_reply__descriptor,
            reply, EP_CODEC_DEFAULT_CAP, terminators? "terminators": "reaper", err, sizeof err);
        zframe_destroy (&reply);
        if (!msg) {
            ep_log_warn ("%s", err);
            continue;
        }
        char **request_id = terminators? &((Ep__TerminatorReply *) msg)->request_id
                                       : &((Ep__SessionReply *) msg)->request_id;
        s_relay_t *relay = *request_id? (s_relay_t *) zhashx_lookup (self->relays, *request_id): NULL;
        channel_conn_t *c = relay && !relay->ack? s_router_conn (self, relay->router_id): NULL;
        if (c) {
            //  The router sees its own request id again.
            char *upstream = *request_id;
            *request_id = strchr (upstream, ':') + 1;
            Ep__Frame frame = EP__FRAME__INIT;
            frame.has_id = true;
            frame.id = relay->frame_id;
            if (terminators) {
                frame.body_case = EP__FRAME__BODY_TERMINATOR_REPLY;
                frame.terminator_reply = (Ep__TerminatorReply *) msg;
            }
            else {
                frame.body_case = EP__FRAME__BODY_SESSION_REPLY;
                frame.session_reply = (Ep__SessionReply *) msg;
            }
            channel_conn_send (c, &frame);
            *request_id = upstream;
        }
        if (relay)
            zhashx_delete (self->relays, *request_id);
        protobuf_c_message_free_unpacked (msg, NULL);
    }
}

//  A command published on cmd.<router>.: the topic says which router (we
//  subscribe per joined router); a body naming another router is a
//  commander's bug, not delivered to either.
static void
s_on_command (s_watchdog_t *self, const char *rest, Ep__Command *command)
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
    channel_conn_t *c = s_router_conn (self, router);
    if (!c) {
        ep_log_debug ("command %s for router %s: not joined here", what, router);
        return;
    }
    if (command->command_id && command->reply_to)
        zhashx_update (self->commands, command->command_id, strdup (command->reply_to));
    Ep__Frame frame = EP__FRAME__INIT;
    frame.body_case = EP__FRAME__BODY_COMMAND;
    frame.command = command;
    channel_conn_send (c, &frame);
}

//  Events from the bus: presence of other instances, commands for routers.
static void
s_bus_events (s_watchdog_t *self)
{
    char *topic = NULL;
    Ep__Event *event;
    while ((event = ep_subscriber_recv (self->events, 0, &topic))) {
        if (event->body_case == EP__EVENT__BODY_PRESENCE && streq (topic, "presence.join"))
            s_on_presence (self, event->presence);
        else
        if (event->body_case == EP__EVENT__BODY_PRESENCE && streq (topic, "presence.beacon")) {
            Ep__PresenceEvent *presence = event->presence;
            if (self->dialer && !self->draining)
                dialer_beacon (self->dialer, presence->instance_id, presence->instance_epoch,
                               presence->ctrl_id, presence->channel_address,
                               presence->model_revision, ep_mono_ms ());
        }
        else
        if (event->body_case == EP__EVENT__BODY_COMMAND && strncmp (topic, "cmd.", 4) == 0)
            s_on_command (self, topic + 4, event->command);
        zstr_free (&topic);
    }
}

//  -------------------------------------------------------------------------
//  API: list connections

static void
s_api (s_watchdog_t *self)
{
    while (zsock_events (self->api) & ZMQ_POLLIN) {
        ep_rpc_call_t *call;
        Ep__WatchdogRequest *request = (Ep__WatchdogRequest *) ep_rpc_server_recv_request (
            self->rpc, &ep__watchdog_request__descriptor, &call);
        if (!request)
            continue;
        static const char *readers [] = { "operator", "service", "subscriber", NULL };
        if (!ep_rpc_server_require_role (self->rpc, &call, readers)) {
            ep__watchdog_request__free_unpacked (request, NULL);
            continue;
        }
        if (request->op_case != EP__WATCHDOG_REQUEST__OP_LIST) {
            ep_rpc_server_fail (self->rpc, &call, EP__STATUS__CODE__INVALID_ARGUMENT,
                                "request has no operation: set list");
            ep__watchdog_request__free_unpacked (request, NULL);
            continue;
        }
        Ep__ConnectionFilter *filter = request->list;
        size_t max = channel_size (self->channel);
        Ep__ConnectionInfo *infos = (Ep__ConnectionInfo *) calloc (max + 1, sizeof (Ep__ConnectionInfo));
        Ep__ConnectionInfo **list = (Ep__ConnectionInfo **) calloc (max + 1, sizeof (Ep__ConnectionInfo *));
        size_t n = 0;
        channel_conn_t *c = channel_first (self->channel);
        for (; c && n < max; c = channel_next (self->channel)) {
            conn_t *conn = channel_conn_state (c);
            const char *state = conn_state_name (conn_state (conn));
            if ((filter->role && !streq (filter->role, conn_role (conn)))
            ||  (filter->state && !streq (filter->state, state))
            ||  (filter->id && !streq (filter->id, conn_id (conn))))
                continue;
            Ep__ConnectionInfo *info = &infos [n];
            ep__connection_info__init (info);
            info->instance_id = (char *) ep_service_source_id (self->service);
            info->role = (char *) conn_role (conn);
            info->id = (char *) conn_id (conn);
            info->state = (char *) state;
            info->remote_addr = (char *) channel_conn_remote (c);
            info->has_accepted_at_ms = true;
            info->accepted_at_ms = s_wall_of (conn_accepted_at (conn));
            if (conn_joined_at (conn)) {
                info->has_joined_at_ms = true;
                info->joined_at_ms = s_wall_of (conn_joined_at (conn));
            }
            info->has_protocol_version = conn_version (conn) > 0;
            info->protocol_version = conn_version (conn);
            info->has_rtt_ms = info->has_jitter_ms = info->has_stray = true;
            info->rtt_ms = conn_rtt_ms (conn);
            info->jitter_ms = conn_jitter_ms (conn);
            info->stray = conn_was_stray (conn);
            list [n++] = info;
        }
        Ep__Status ok = EP__STATUS__INIT;
        Ep__WatchdogReply reply = EP__WATCHDOG_REPLY__INIT;
        reply.request_id = (char *) ep_rpc_call_request_id (call);
        reply.status = &ok;
        reply.instance_id = (char *) ep_service_source_id (self->service);
        reply.n_connections = n;
        reply.connections = list;
        ep_rpc_server_answer (self->rpc, &call, &reply.base, false,
                              "result (filter by role, state or id)");
        free (list);
        free (infos);
        ep__watchdog_request__free_unpacked (request, NULL);
    }
}

//  -------------------------------------------------------------------------
//  Periodic work

static void
s_gauges (s_watchdog_t *self)
{
    static const char *roles [] = { "router", "ctrl", "client", "" };
    size_t counts [4][6] = { { 0 } };
    channel_conn_t *c = channel_first (self->channel);
    for (; c; c = channel_next (self->channel)) {
        conn_t *conn = channel_conn_state (c);
        size_t role = 3;
        for (size_t r = 0; r < 3; r++)
            if (streq (conn_role (conn), roles [r]))
                role = r;
        counts [role][conn_state (conn)]++;
    }
    for (size_t r = 0; r < 4; r++)
        for (int s = CONN_ACCEPTED; s < CONN_CLOSED; s++) {
            const char *labels [] = { *roles [r]? roles [r]: "unknown", conn_state_name (s) };
            ep_gauge_set (self->connections, labels, (double) counts [r][s]);
        }
    s_peer_t *peer = (s_peer_t *) zhashx_first (self->peers);
    for (; peer; peer = (s_peer_t *) zhashx_next (self->peers))
        if (peer->rtt) {
            conn_t *conn = channel_conn_state (peer->conn);
            double rtt = conn_rtt_ms (conn);
            ep_series_set (peer->rtt, rtt >= 0? rtt / 1000.0: NAN);
            ep_series_set (peer->jitter, conn_jitter_ms (conn) / 1000.0);
        }
    ep_series_set (self->buffered, (double) channel_buffered (self->channel));
    if (self->dialer) {
        size_t states [LINK_CLOSED + 1] = { 0 };
        s_link_t *link = (s_link_t *) zhashx_first (self->links);
        for (; link; link = (s_link_t *) zhashx_next (self->links))
            states [link_state (link->link)]++;
        for (int state = LINK_CONNECTING; state < LINK_CLOSED; state++) {
            const char *labels [] = { link_state_name (state) };
            ep_gauge_set (self->link_states, labels, (double) states [state]);
        }
        ep_series_set (self->peers_known, (double) dialer_size (self->dialer));
    }
    //  Relays and commands nobody answered are forgotten.
    int64_t now = ep_mono_ms ();
    zlistx_t *expired = zlistx_new ();
    s_relay_t *relay = (s_relay_t *) zhashx_first (self->relays);
    for (; relay; relay = (s_relay_t *) zhashx_next (self->relays))
        if (relay->expires_ms <= now)
            zlistx_add_end (expired, (void *) zhashx_cursor (self->relays));
    for (const char *key = (const char *) zlistx_first (expired); key; key = (const char *) zlistx_next (expired))
        zhashx_delete (self->relays, key);
    zlistx_destroy (&expired);
    if (zhashx_size (self->commands) > 100000)
        zhashx_purge (self->commands);
}

static void
s_check_crl (s_watchdog_t *self)
{
    char path [1024];
    snprintf (path, sizeof path, "%s/tls/ca.crl", self->opts->keys_dir);
    struct stat st;
    //  pki revoke replaces the file (a new inode); compare to the nanosecond.
    if (stat (path, &st) != 0
    ||  (st.st_ino == self->crl_stat.st_ino && st.st_mtim.tv_sec == self->crl_stat.st_mtim.tv_sec
         && st.st_mtim.tv_nsec == self->crl_stat.st_mtim.tv_nsec))
        return;
    char err [512];
    if (ep_pki_reload_crl (self->ssl_ctx, self->opts->keys_dir, err, sizeof err) == 0) {
        self->crl_stat = st;
        //  New handshakes check the new list; connections made before it
        //  are checked here.
        size_t closed = channel_close_revoked (self->channel);
        ep_log_info ("revocation list %s reloaded; %zu connection(s) closed as revoked", path, closed);
    }
    else
        ep_log_error ("%s", err);
}

//  -------------------------------------------------------------------------

//  Where this instance's API is reached, for presence: --advertise, else
//  the endpoint bound; a wildcard host becomes this machine's address
//  toward the bus (what peers on that network can reach), or 127.0.0.1.
//  Not EDGEPLANE_WATCHDOG_API: that names the service, which is every
//  instance at once when several run behind one name (compose --scale).
//  This machine's address toward the bus, into host (127.0.0.1 if unknown).
static void
s_local_host (s_watchdog_t *self, char *host, size_t size)
{
    char bus_host [256] = "", bus_port [16] = "";
    snprintf (host, size, "127.0.0.1");
    //  A UDP socket "connected" to the bus sends nothing; the kernel picks
    //  the local address it would use.
    if (sscanf (self->opts->bus_pub, "tcp://%255[^:]:%15[0-9]", bus_host, bus_port) == 2) {
        struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_DGRAM }, *found = NULL;
        int fd = -1;
        if (getaddrinfo (bus_host, bus_port, &hints, &found) == 0
        &&  (fd = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) >= 0
        &&  connect (fd, found->ai_addr, found->ai_addrlen) == 0) {
            struct sockaddr_in local;
            socklen_t len = sizeof local;
            if (getsockname (fd, (struct sockaddr *) &local, &len) == 0)
                inet_ntop (AF_INET, &local.sin_addr, host, (socklen_t) size);
        }
        if (fd >= 0)
            close (fd);
        if (found)
            freeaddrinfo (found);
    }
}

static char *
s_api_address (s_watchdog_t *self, const char *advertise)
{
    if (advertise)
        return strdup (advertise);
    char *bound = zsock_last_endpoint (self->api);
    if (strncmp (bound, "tcp://0.0.0.0:", 14) != 0)
        return bound;
    char host [INET6_ADDRSTRLEN];
    s_local_host (self, host, sizeof host);
    char *address = zsys_sprintf ("tcp://%s:%s", host, bound + 14);
    free (bound);
    return address;
}

//  -------------------------------------------------------------------------
//  Ctrl identity, the controller entry, links to peer controllers

//  Wall-clock ms as UTC ISO 8601 (seconds) into buf.
static char *
s_time_text (int64_t wall_ms, char *buf, size_t size)
{
    time_t seconds = (time_t) (wall_ms / 1000);
    struct tm tm;
    gmtime_r (&seconds, &tm);
    strftime (buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

//  Takes cert/key (borrowed) as our ctrl identity: both contexts present
//  them from now on (the first time, the contexts are made), and its
//  validity drives renewal. Returns 0, or -1 with the reason in err.
static int
s_identity_use (s_watchdog_t *self, X509 *cert, EVP_PKEY *key, char *err, size_t errlen)
{
    int64_t not_before, not_after;
    if (ep_pki_cert_validity (cert, &not_before, &not_after)) {
        snprintf (err, errlen, "cannot read the validity of the ctrl certificate: give one from "
                  "`edgeplane pki issue ctrl ID`");
        return -1;
    }
    if (!self->ssl_ctx) {
        char ca [1024];
        snprintf (ca, sizeof ca, "%s/tls/ca.crt", self->opts->keys_dir);
        self->ssl_ctx = ep_pki_server_ctx_with (self->opts->keys_dir, cert, key, err, errlen);
        if (self->ssl_ctx)
            self->client_ctx = ep_pki_client_ctx_with (cert, key, ca, err, errlen);
        if (!self->client_ctx)
            return -1;
    }
    else
    if (ep_pki_ctx_use (self->ssl_ctx, cert, key, err, errlen)
    ||  ep_pki_ctx_use (self->client_ctx, cert, key, err, errlen))
        return -1;
    //  Ours is timed from now, not from its notBefore (an hour early for
    //  clock skew); a bundle's from its notBefore (when it was issued is
    //  not known here).
    self->ctrl_start_ms = self->ctrl_renewable? ep_wall_ms (): not_before * 1000;
    self->ctrl_end_ms = not_after * 1000;
    self->ctrl_check_ms = 0;
    ep_series_set (self->ctrl_expiry, (double) not_after);
    return 0;
}

//  Our ctrl identity: the bundle given (--ctrl-cert, --ctrl-key), else a
//  certificate for ctrl_id issued here, in memory, with the CA key (and
//  renewed here: s_check_identity). Sets self->ctrl_id, the server context
//  (the listener presents it) and the client context (we dial peers with
//  it). Without a bundle and without a readable CA key, the instance has
//  no identity of its own: it listens with tls/watchdog.crt and neither
//  registers nor dials (returns 0 with a warning). Returns -1 with the
//  reason in err.
static int
s_identity (s_watchdog_t *self, const char *ctrl_id, const char *cert_path, const char *key_path,
            char *err, size_t errlen)
{
    const char *keys = self->opts->keys_dir;
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    char role [16] = "", id [65] = "";
    if (cert_path || key_path) {
        if (!cert_path || !key_path) {
            snprintf (err, errlen, "give both --ctrl-cert and --ctrl-key (the .crt and .key of a "
                      "ctrl bundle from `edgeplane pki issue ctrl ID`), or neither");
            return -1;
        }
        char why [400];
        if (ep_pki_read_pair (cert_path, key_path, &cert, &key, why, sizeof why)) {
            snprintf (err, errlen, "ctrl bundle (--ctrl-cert %s, --ctrl-key %s): %s", cert_path,
                      key_path, why);
            return -1;
        }
        if (ep_pki_cert_identity (cert, role, sizeof role, id, sizeof id) || !streq (role, "ctrl")) {
            if (*role)
                snprintf (err, errlen, "--ctrl-cert %s is a %s certificate (%s/%s), not a ctrl one: "
                          "issue a ctrl bundle with `edgeplane pki issue ctrl ID` and give its .crt "
                          "and .key", cert_path, role, role, id);
            else
                snprintf (err, errlen, "--ctrl-cert %s carries no edgeplane://<role>/<id> name: "
                          "issue a ctrl bundle with `edgeplane pki issue ctrl ID` and give its .crt "
                          "and .key", cert_path);
            X509_free (cert);
            EVP_PKEY_free (key);
            return -1;
        }
        if (ctrl_id && !streq (ctrl_id, id)) {
            snprintf (err, errlen, "--ctrl-id %s differs from the id in %s (%s): drop --ctrl-id",
                      ctrl_id, cert_path, id);
            X509_free (cert);
            EVP_PKEY_free (key);
            return -1;
        }
        self->ctrl_source = cert_path;
        if (self->ctrl_lifetime_ms != CTRL_LIFETIME_MS)
            ep_log_warn ("--ctrl-cert-lifetime applies to certificates issued here, not to %s: "
                         "ignored (the bundle's own end counts)", cert_path);
    }
    else {
        snprintf (id, sizeof id, "%.64s", ctrl_id? ctrl_id: ep_service_source_id (self->service));
        if (!ep_id_valid (ctrl_id? ctrl_id: ep_service_source_id (self->service))) {
            snprintf (err, errlen, "ctrl id \"%s\" is not valid (1 to 64 of A-Z a-z 0-9 _ -): "
                      "give --ctrl-id or a shorter --instance-id",
                      ctrl_id? ctrl_id: ep_service_source_id (self->service));
            return -1;
        }
        char ca_key [1024];
        snprintf (ca_key, sizeof ca_key, "%s/tls/ca.key", keys);
        if (access (ca_key, R_OK) != 0) {
            ep_log_warn ("no ctrl identity of this instance's own: %s is not readable here and no "
                         "--ctrl-cert was given; listening as ctrl/%s, not registering as a "
                         "controller, not dialing peer instances. To make it a peer controller, "
                         "give it a bundle: `edgeplane pki issue ctrl ID` where the CA key is, then "
                         "--ctrl-cert ID.crt --ctrl-key ID.key (EDGEPLANE_CTRL_CERT, "
                         "EDGEPLANE_CTRL_KEY), or make %s readable to it",
                         ca_key, EP_PKI_SERVER_ID, ca_key);
            self->ssl_ctx = ep_pki_server_ctx (keys, err, errlen);
            return self->ssl_ctx? 0: -1;
        }
        self->ctrl_renewable = true;
        self->ctrl_source = "issued here with the CA key";
        if (ep_pki_issue_memory (keys, "ctrl", id, self->ctrl_lifetime_ms / 1000, &cert, &key,
                                 err, errlen))
            return -1;
    }
    int rc = s_identity_use (self, cert, key, err, errlen);
    X509_free (cert);
    EVP_PKEY_free (key);
    if (rc)
        return -1;
    self->ctrl_id = strdup (id);
    char until [40];
    ep_log_info ("ctrl identity %s (%s), valid until %s", id, self->ctrl_source,
                 s_time_text (self->ctrl_end_ms, until, sizeof until));
    return 0;
}

//  Renews our certificate when renewal_check says so (listener and dialer
//  present the new one from their next connection; those made before keep
//  theirs), or warns about a bundle's end.
static void
s_check_identity (s_watchdog_t *self)
{
    int64_t now = ep_wall_ms ();
    if (!self->ctrl_id || now < self->ctrl_check_ms)
        return;
    char until [40];
    s_time_text (self->ctrl_end_ms, until, sizeof until);
    renewal_action_t action = renewal_check (self->ctrl_start_ms, self->ctrl_end_ms,
                                             self->ctrl_renewable, now, &self->ctrl_check_ms);
    if (action == RENEWAL_RENEW) {
        X509 *cert = NULL;
        EVP_PKEY *key = NULL;
        char err [512];
        int64_t retry = self->ctrl_check_ms;
        if (ep_pki_issue_memory (self->opts->keys_dir, "ctrl", self->ctrl_id,
                                 self->ctrl_lifetime_ms / 1000, &cert, &key, err, sizeof err) == 0
        &&  s_identity_use (self, cert, key, err, sizeof err) == 0) {
            ep_series_add (self->ctrl_renewals, 1);
            char next [40];
            ep_log_info ("ctrl certificate of %s renewed (the old one ends %s): valid until %s",
                         self->ctrl_id, until, s_time_text (self->ctrl_end_ms, next, sizeof next));
        }
        else {
            self->ctrl_check_ms = retry;
            ep_log_error ("cannot renew the ctrl certificate of %s, which ends %s: %s; make "
                          "%s/tls/ca.key readable here (retrying), or restart with a bundle "
                          "(--ctrl-cert, --ctrl-key)", self->ctrl_id, until, err,
                          self->opts->keys_dir);
        }
        X509_free (cert);
        EVP_PKEY_free (key);
    }
    else
    if (action == RENEWAL_WARN)
        ep_log_warn ("ctrl certificate %s ends %s and is not renewed here: issue a new bundle "
                     "with `edgeplane pki issue ctrl %s` and restart with it before then (peer "
                     "controllers refuse it after)", self->ctrl_source, until, self->ctrl_id);
    else
    if (action == RENEWAL_EXPIRED)
        ep_log_error ("ctrl certificate %s ended %s: peer controllers refuse it; issue a new bundle "
                      "with `edgeplane pki issue ctrl %s` and restart with it", self->ctrl_source,
                      until, self->ctrl_id);
}

static Ep__ModelReply *
s_model_call (s_watchdog_t *self, Ep__ModelRequest *request, int timeout_ms, int attempts,
              char *err, size_t errlen)
{
    char *model_key = ep_keys_public_txt (self->opts->keys_dir, "model");
    ep_rpc_client_t *client = model_key? ep_rpc_client_new (self->opts->model_api,
                                                            ep_service_cert (self->service),
                                                            model_key): NULL;
    char id [33];
    ep_rpc_new_id (id);
    request->request_id = id;
    Ep__ModelReply *reply = client
        ? (Ep__ModelReply *) ep_rpc_client_call (client, &request->base, id, &ep__model_reply__descriptor,
                                                 timeout_ms, attempts, err, errlen)
        : NULL;
    if (!client)
        snprintf (err, errlen, "cannot reach the model at %s", self->opts->model_api);
    ep_rpc_client_destroy (&client);
    free (model_key);
    return reply;
}

//  Writes our controller entry (create, or update the address if it
//  exists) and returns the model revision it is in, 0 on failure.
static uint64_t
s_register (s_watchdog_t *self)
{
    Ep__Controller controller = EP__CONTROLLER__INIT;
    controller.id = self->ctrl_id;
    controller.address = self->channel_advertised;
    Ep__Entity entity = EP__ENTITY__INIT;
    entity.kind_case = EP__ENTITY__KIND_CONTROLLER;
    entity.controller = &controller;
    Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
    write.has_op = true;
    write.op = EP__MODEL_WRITE__OP__CREATE;
    write.entity = &entity;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.op_case = EP__MODEL_REQUEST__OP_WRITE;
    request.write = &write;
    char err [256];
    uint64_t revision = 0;
    Ep__ModelReply *reply = s_model_call (self, &request, 3000, 3, err, sizeof err);
    if (reply && reply->status && reply->status->code == EP__STATUS__CODE__ALREADY_EXISTS) {
        //  A stable id (given, or a bundle's) that was here before: the
        //  entry stays, with the address we have now.
        ep__model_reply__free_unpacked (reply, NULL);
        write.op = EP__MODEL_WRITE__OP__UPDATE;
        reply = s_model_call (self, &request, 3000, 3, err, sizeof err);
    }
    else
    if (reply && reply->status && reply->status->code == EP__STATUS__CODE__OK)
        self->registered_here = true;
    if (reply && reply->status && reply->status->code == EP__STATUS__CODE__OK)
        revision = reply->revision;
    else
        ep_log_error ("cannot register controller %s in the model: %s", self->ctrl_id,
                      reply && reply->status && reply->status->message? reply->status->message: err);
    if (reply)
        ep__model_reply__free_unpacked (reply, NULL);
    if (revision)
        ep_log_info ("controller %s registered at %s (model revision %llu)", self->ctrl_id,
                     self->channel_advertised, (unsigned long long) revision);
    return revision;
}

//  On the way out: the entry we created goes (an instance with a random
//  id would otherwise leave one behind at every start); one we found is
//  left as it was.
static void
s_unregister (s_watchdog_t *self)
{
    if (!self->registered_here)
        return;
    Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
    write.has_op = write.has_type = true;
    write.op = EP__MODEL_WRITE__OP__DELETE;
    write.type = EP__ENTITY_TYPE__ENTITY_CONTROLLER;
    write.id = self->ctrl_id;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.op_case = EP__MODEL_REQUEST__OP_WRITE;
    request.write = &write;
    char err [256];
    Ep__ModelReply *reply = s_model_call (self, &request, 1000, 1, err, sizeof err);
    if (!reply || !reply->status || reply->status->code != EP__STATUS__CODE__OK)
        ep_log_warn ("could not remove controller %s from the model (%s): remove it with "
                     "`edgeplane controller delete %s`", self->ctrl_id,
                     reply && reply->status && reply->status->message? reply->status->message: err,
                     self->ctrl_id);
    else
        ep_log_info ("controller %s removed from the model", self->ctrl_id);
    if (reply)
        ep__model_reply__free_unpacked (reply, NULL);
}

//  What the dialer decided: dial a peer, or hang up on one.
static void
s_dial (s_watchdog_t *self)
{
    dialer_action_t action;
    int64_t now = ep_mono_ms ();
    while (dialer_next (self->dialer, now, &action)) {
        s_link_t *old = (s_link_t *) zhashx_lookup (self->links, action.instance);
        if (action.verb == DIALER_HANGUP) {
            if (old)
                ep_log_info ("hanging up on ctrl peer %s (%s): %s", old->ctrl_id, action.instance,
                             action.reason);
            zhashx_delete (self->links, action.instance);
            continue;
        }
        zhashx_delete (self->links, action.instance);
        s_link_t *link = (s_link_t *) zmalloc (sizeof (s_link_t));
        snprintf (link->instance, sizeof link->instance, "%s", action.instance);
        snprintf (link->ctrl_id, sizeof link->ctrl_id, "%s", action.ctrl_id);
        snprintf (link->address, sizeof link->address, "%s", action.address);
        link->link = link_new (self->link_server, action.address, self->client_ctx, action.ctrl_id, &self->link_config, now);
        ep_log_debug ("dialing ctrl peer %s at %s", action.ctrl_id, action.address);
        zhashx_insert (self->links, action.instance, link);
    }
}

//  After links made progress: joins and losses, told to the dialer.
static void
s_links_check (s_watchdog_t *self)
{
    int64_t now = ep_mono_ms ();
    zlistx_t *closed = zlistx_new ();
    s_link_t *link = (s_link_t *) zhashx_first (self->links);
    for (; link; link = (s_link_t *) zhashx_next (self->links)) {
        if (link_state (link->link) == LINK_JOINED && !link->joined) {
            link->joined = true;
            ep_log_info ("joined ctrl peer %s at %s (instance %s)", link->ctrl_id, link->address,
                         link_peer_instance (link->link));
            dialer_linked (self->dialer, link->instance, now);
        }
        if (link_state (link->link) == LINK_CLOSED) {
            if (link->joined)
                ep_log_info ("lost ctrl peer %s at %s after %lld ms: %s", link->ctrl_id, link->address,
                             (long long) (now - link_joined_at (link->link)), link_reason (link->link));
            else
                ep_log_debug ("could not join ctrl peer %s at %s: %s", link->ctrl_id, link->address,
                              link_reason (link->link));
            dialer_unlinked (self->dialer, link->instance, link_goodbye (link->link), now);
            zlistx_add_end (closed, link->instance);
        }
    }
    const char *instance = (const char *) zlistx_first (closed);
    for (; instance; instance = (const char *) zlistx_next (closed)) {
        char key [80];
        snprintf (key, sizeof key, "%s", instance);     //  the entry owns instance
        zhashx_delete (self->links, key);
    }
    zlistx_destroy (&closed);
}

static zsock_t *
s_dealer (s_watchdog_t *self, const char *endpoint, const char *server)
{
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    zsock_set_sndhwm (dealer, 100000);
    zsock_set_heartbeat_ivl (dealer, 1000);
    zsock_set_heartbeat_timeout (dealer, 3000);
    if (ep_service_secure_client (self->service, dealer, server) != 0
    ||  zsock_connect (dealer, "%s", endpoint) != 0) {
        ep_log_error ("cannot reach %s at %s", server, endpoint);
        zsock_destroy (&dealer);
    }
    return dealer;
}

int
main (int argc, char **argv)
{
    static char *channel_listen, *listen, *advertise, *stray_action;
    static char *ctrl_id, *ctrl_cert, *ctrl_key, *channel_advertise;
    static int64_t grace, heartbeat, heartbeat_timeout, frame_timeout, drain_grace;
    static int64_t joined_cap, out_cap, budget, max_handshakes, max_per_source, ctrl_lifetime;
    ep_opt_t opts [] = {
        { .name = "channel-listen", .env = "EDGEPLANE_CHANNEL_LISTEN", .def = EP_DEFAULT_CHANNEL_LISTEN,
          .type = EP_OPT_HOSTPORT, .str = &channel_listen, .help = "The TLS control channel routers dial." },
        { .name = "listen", .env = "EDGEPLANE_WATCHDOG_LISTEN", .def = EP_DEFAULT_WATCHDOG_API,
          .type = EP_OPT_ENDPOINT, .str = &listen, .help = "Where the watchdog API binds." },
        { .name = "advertise", .env = "EDGEPLANE_WATCHDOG_ADVERTISE", .type = EP_OPT_ENDPOINT, .str = &advertise,
          .def_help = "the API address bound; for *, this host's address toward the bus",
          .help = "This instance's API address in its presence beacons (behind NAT)." },
        { .name = "channel-advertise", .env = "EDGEPLANE_CHANNEL_ADVERTISE", .type = EP_OPT_HOSTPORT,
          .str = &channel_advertise,
          .def_help = "the channel address bound; for 0.0.0.0, this host's address toward the bus",
          .help = "Where peer controllers reach this instance's channel (beacons, its controller entry)." },
        { .name = "ctrl-id", .env = "EDGEPLANE_CTRL_ID", .type = EP_OPT_ID, .str = &ctrl_id,
          .def_help = "watchdog-<instance id>, or the id in --ctrl-cert",
          .help = "This instance's ctrl id: its channel certificate and its controller entry." },
        { .name = "ctrl-cert", .env = "EDGEPLANE_CTRL_CERT", .type = EP_OPT_STRING, .str = &ctrl_cert,
          .def_help = "one issued at start with tls/ca.key",
          .help = "This instance's ctrl certificate (a bundle's .crt from `edgeplane pki issue ctrl ID`)." },
        { .name = "ctrl-key", .env = "EDGEPLANE_CTRL_KEY", .type = EP_OPT_STRING, .str = &ctrl_key,
          .def_help = "with --ctrl-cert",
          .help = "The private key of --ctrl-cert." },
        { .name = "ctrl-cert-lifetime", .env = "EDGEPLANE_CTRL_CERT_LIFETIME", .def = "19800h",
          .type = EP_OPT_DURATION, .num = &ctrl_lifetime, .min = 3000,
          .max = (int64_t) EP_PKI_DAYS_MAX * 86400000, .def_help = "825 days (19800h)",
          .help = "Validity of a ctrl certificate issued here; renewed after 2/3 of it (not a bundle's)." },
        { .name = "stray-grace", .env = "EDGEPLANE_STRAY_GRACE", .def = "30s", .type = EP_OPT_DURATION,
          .num = &grace, .min = 1, .max = 3600000,
          .help = "A connection not joined this long after TCP accept is stray." },
        { .name = "stray-action", .env = "EDGEPLANE_STRAY_ACTION", .def = "disconnect", .type = EP_OPT_ENUM,
          .words = s_stray_actions, .str = &stray_action, .help = "What to do with a stray: none, log or disconnect." },
        { .name = "heartbeat", .env = "EDGEPLANE_HEARTBEAT", .def = "10s", .type = EP_OPT_DURATION,
          .num = &heartbeat, .min = 10, .max = 3600000, .help = "Ping joined peers this often." },
        { .name = "heartbeat-timeout", .env = "EDGEPLANE_HEARTBEAT_TIMEOUT", .def = "30s",
          .type = EP_OPT_DURATION, .num = &heartbeat_timeout, .min = 10, .max = 3600000,
          .help = "Close a joined peer unheard for this long." },
        { .name = "frame-timeout", .env = "EDGEPLANE_FRAME_TIMEOUT", .def = "10s", .type = EP_OPT_DURATION,
          .num = &frame_timeout, .min = 10, .max = 600000,
          .help = "A frame must arrive whole within this from its first byte." },
        { .name = "drain-grace", .env = "EDGEPLANE_DRAIN_GRACE", .def = "10s", .type = EP_OPT_DURATION,
          .num = &drain_grace, .min = 1, .max = 600000,
          .help = "A draining router (deleted, or shutdown) is closed after this." },
        { .name = "frame-cap", .env = "EDGEPLANE_FRAME_CAP", .def = "4194304", .type = EP_OPT_INT,
          .num = &joined_cap, .min = 16384, .max = 64 * 1024 * 1024,
          .help = "Largest frame from a joined peer, bytes (16 KiB before joining)." },
        { .name = "out-cap", .env = "EDGEPLANE_OUT_CAP", .def = "8388608", .type = EP_OPT_INT,
          .num = &out_cap, .min = 65536, .max = INT64_MAX,
          .help = "Bytes queued to one peer before it is closed as not reading." },
        { .name = "budget", .env = "EDGEPLANE_CHANNEL_BUDGET", .def = "268435456", .type = EP_OPT_INT,
          .num = &budget, .min = 65536, .max = INT64_MAX,
          .help = "Bytes of partial frames held across all connections." },
        { .name = "max-handshakes", .env = "EDGEPLANE_MAX_HANDSHAKES", .def = "20000", .type = EP_OPT_INT,
          .num = &max_handshakes, .min = 1, .max = 1000000,
          .help = "Connections not yet through TLS, at most." },
        { .name = "max-per-source", .env = "EDGEPLANE_MAX_PER_SOURCE", .def = "5000", .type = EP_OPT_INT,
          .num = &max_per_source, .min = 1, .max = 1000000,
          .help = "Connections not yet joined from one source address, at most." },
    };
    s_watchdog_t self = { 0 };
    self.service = ep_service_new ("watchdog", "Control-channel listener and connection watchdog.",
                                   EP_HTTP_LISTEN_WATCHDOG, opts, EP_COUNT (opts), argc, argv);
    self.opts = ep_service_opts (self.service);
    self.ctrl_lifetime_ms = ctrl_lifetime;
    for (int i = 0; s_stray_actions [i]; i++)
        if (streq (s_stray_actions [i], stray_action))
            self.stray_action = i;

    //  As many connections as the hard limit allows.
    struct rlimit limit;
    if (getrlimit (RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit (RLIMIT_NOFILE, &limit);
    }
    getrlimit (RLIMIT_NOFILE, &limit);
    ep_log_info ("file descriptor limit %llu", (unsigned long long) limit.rlim_cur);

    ep_metrics_t *metrics = ep_service_metrics (self.service);
    const char *step [] = { "step" }, *reason [] = { "reason" }, *outcome [] = { "outcome" };
    const char *role_state [] = { "role", "state" }, *router [] = { "router" };
    self.strays = ep_metrics_counter (metrics, "controller_stray_connections_total",
        "Connections that did not join within the grace period, by the last step reached.", 1, step);
    self.refusals = ep_metrics_counter (metrics, "edgeplane_channel_refused_total",
        "Connections refused, by reason.", 1, reason);
    static const double bounds [] = { 0.01, 0.1, 0.5, 1, 5, 30, 60, 300, 3600, 86400 };
    self.durations = ep_metrics_histogram (metrics, "controller_connection_duration_seconds",
        "How long connections stayed, by outcome.", 1, outcome, EP_COUNT (bounds), bounds);
    self.connections = ep_metrics_gauge (metrics, "edgeplane_connections",
        "Connections held, by role and state.", 2, role_state);
    self.rtt = ep_metrics_gauge (metrics, "edgeplane_router_rtt_seconds",
        "Last heartbeat round trip of each joined router.", 1, router);
    self.jitter = ep_metrics_gauge (metrics, "edgeplane_router_jitter_seconds",
        "Smoothed heartbeat jitter of each joined router.", 1, router);
    self.buffered = ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_channel_buffered_bytes",
        "Bytes of partial frames held.", 0, NULL), NULL);
    self.peers_known = ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_ctrl_peers",
        "Peer watchdog instances heard beaconing.", 0, NULL), NULL);
    const char *state [] = { "state" };
    self.link_states = ep_metrics_gauge (metrics, "edgeplane_ctrl_links",
        "Links this instance dialed to peer controllers, by state.", 1, state);
    self.ctrl_expiry = ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_ctrl_cert_expiry_timestamp_seconds",
        "When this instance's ctrl certificate ends (Unix time).", 0, NULL), NULL);
    self.ctrl_renewals = ep_counter_series (ep_metrics_counter (metrics, "edgeplane_ctrl_cert_renewals_total",
        "Times this instance renewed the ctrl certificate it issued itself.", 0, NULL), NULL);

    self.peers = zhashx_new ();
    zhashx_set_destructor (self.peers, (czmq_destructor *) zstr_free);
    self.relays = zhashx_new ();
    zhashx_set_destructor (self.relays, (czmq_destructor *) zstr_free);
    self.commands = zhashx_new ();
    zhashx_set_destructor (self.commands, (czmq_destructor *) zstr_free);
    self.deleted = zhashx_new ();
    self.links = zhashx_new ();
    zhashx_set_destructor (self.links, (czmq_destructor *) s_link_destroy);
    self.view = ep_model_view_new ();
    ep_model_view_set_observer (self.view, s_on_model, &self);

    int rc = 0;
    char err [512];
    char *bus_key = ep_keys_public_txt (self.opts->keys_dir, "bus");
    char *model_key = ep_keys_public_txt (self.opts->keys_dir, "model");
    char *crl = zsys_sprintf ("%s/tls/ca.crl", self.opts->keys_dir);
    stat (crl, &self.crl_stat);         //  what the context is about to load
    free (crl);
    if (s_identity (&self, ctrl_id, ctrl_cert, ctrl_key, err, sizeof err) != 0) {
        ep_log_error ("%s", err);
        rc = -1;
    }
    if (rc == 0 && (!bus_key || !model_key))
        rc = -1;
    if (rc == 0) {
        zcert_t *cert = ep_service_cert (self.service);
        self.publisher = ep_publisher_new (self.opts->bus_pub, cert, bus_key,
                                           ep_service_source_id (self.service), EP_CODEC_DEFAULT_CAP);
        self.events = ep_subscriber_new (self.opts->bus_sub, cert, bus_key, EP_CODEC_DEFAULT_CAP, NULL, NULL);
        self.follower = ep_follower_new (self.opts->bus_sub, self.opts->model_api, cert,
                                         bus_key, model_key, self.view);
        if (self.follower)
            ep_follower_set_metrics (self.follower, metrics);
        if (!self.publisher || !self.events || !self.follower) {
            ep_log_error ("cannot reach the bus (%s, %s) or the model (%s): check the addresses",
                          self.opts->bus_pub, self.opts->bus_sub, self.opts->model_api);
            rc = -1;
        }
    }
    if (rc == 0) {
        static const char *streams [] = { "connect", "stray", "cluster", "channel", "presence" };
        for (size_t i = 0; i < EP_COUNT (streams); i++)
            ep_publisher_declare (self.publisher, streams [i]);
        ep_subscriber_subscribe (self.events, "presence.join");
        ep_subscriber_subscribe (self.events, "presence.beacon");
        self.terminators = s_dealer (&self, self.opts->terminators_api, "terminators");
        self.reaper = s_dealer (&self, self.opts->reaper_api, "reaper");
        self.api = zsock_new (ZMQ_ROUTER);
        self.rpc = ep_rpc_server_new (self.api, EP_CODEC_DEFAULT_CAP, 1000, 60000);
        rc = self.terminators && self.reaper? ep_service_bind (self.service, self.api, "api", listen): -1;
    }
    if (rc == 0)
        self.api_address = s_api_address (&self, advertise);
    //  Routers are judged against the model: follow it before listening.
    while (rc == 0 && !ep_follower_ready (self.follower) && !ep_service_interrupted (self.service)) {
        int64_t wait = ep_follower_tick (self.follower);
        zpoller_t *poller = zpoller_new (ep_follower_socket (self.follower),
                                         ep_service_auth_actor (self.service), NULL);
        void *which = ep_service_wait (self.service, poller, wait < 100? wait: 100);
        zpoller_destroy (&poller);
        if (which)
            ep_follower_handle (self.follower);
        ep_publisher_tick (self.publisher);
    }
    if (rc == 0 && !ep_service_interrupted (self.service)) {
        channel_config_t config = {
            .conn = {
                .stray_grace_ms = grace, .stray_action = (conn_stray_action_t) self.stray_action,
                .heartbeat_ms = heartbeat, .heartbeat_timeout_ms = heartbeat_timeout,
                .min_version = PROTOCOL_MIN, .max_version = PROTOCOL_MAX,
                .drain_grace_ms = drain_grace,
                .instance_id = ep_service_source_id (self.service)
            },
            .joined_cap = (size_t) joined_cap, .out_cap = (size_t) out_cap, .budget = (size_t) budget,
            .frame_timeout_ms = frame_timeout, .max_handshakes = (int) max_handshakes,
            .max_per_source = (int) max_per_source
        };
        channel_handler_t handler = {
            .verdict = s_verdict, .joined = s_joined, .left = s_left, .stray = s_stray,
            .refused = s_refused, .not_member = s_not_member, .rejected = s_rejected,
            .ended = s_ended, .frame = s_frame
        };
        self.channel = channel_new (channel_listen, self.ssl_ctx, &config, &handler, &self, err, sizeof err);
        if (!self.channel) {
            ep_log_error ("%s", err);
            rc = -1;
        }
    }
    if (rc == 0 && self.channel) {
        const char *colon = strrchr (channel_listen, ':');
        self.channel_address = zsys_sprintf ("%.*s:%d", (int) (colon - channel_listen), channel_listen,
                                             channel_port (self.channel));
        if (strncmp (self.channel_address, "*:", 2) == 0 || strncmp (self.channel_address, "0.0.0.0:", 8) == 0) {
            char *local = zsys_sprintf ("127.0.0.1:%d", channel_port (self.channel));
            free (self.channel_address);
            self.channel_address = local;
        }
        if (channel_advertise)
            self.channel_advertised = strdup (channel_advertise);
        else
        if (strncmp (channel_listen, "*:", 2) == 0 || strncmp (channel_listen, "0.0.0.0:", 8) == 0) {
            char host [INET6_ADDRSTRLEN];
            s_local_host (&self, host, sizeof host);
            self.channel_advertised = zsys_sprintf ("%s:%d", host, channel_port (self.channel));
        }
        else
            self.channel_advertised = strdup (self.channel_address);
        //  Our controller entry before our first beacon: a peer dials us
        //  once it has applied it, and we dial a peer once it has ours.
        if (self.ctrl_id) {
            uint64_t revision = s_register (&self);
            if (!revision)
                rc = -1;
            dialer_config_t dialer = { .expire_ms = PEER_EXPIRE_MS, .backoff_base_ms = 250,
                                       .backoff_max_ms = 10000 };
            self.dialer = dialer_new (&dialer, ep_service_source_id (self.service));
            ep_tls_server_config_t links = { 0 };
            self.link_server = ep_tls_server_new (&links);
            dialer_set_registered (self.dialer, revision);
            self.link_config = (link_config_t) {
                .own_id = self.ctrl_id, .join_timeout_ms = LINK_JOIN_MS,
                .heartbeat_ms = heartbeat, .silence_ms = heartbeat_timeout
            };
        }
    }
    if (rc == 0 && self.channel) {
        //  The ready file carries the channel address next to the sockets.
        ep_log_info ("channel listening on %s (grace %lld ms, stray action %s)", self.channel_address,
                     (long long) grace, stray_action);
        ep_service_record (self.service, "channel", self.channel_address);
        rc = ep_service_ready (self.service);
    }

    zmq_pollitem_t fixed [] = {
        { zsock_resolve (ep_service_auth_actor (self.service)), 0, ZMQ_POLLIN, 0 },
        { self.follower? zsock_resolve (ep_follower_socket (self.follower)): NULL, 0, ZMQ_POLLIN, 0 },
        { self.events? zsock_resolve (ep_subscriber_socket (self.events)): NULL, 0, ZMQ_POLLIN, 0 },
        { self.api? zsock_resolve (self.api): NULL, 0, ZMQ_POLLIN, 0 },
        { self.terminators? zsock_resolve (self.terminators): NULL, 0, ZMQ_POLLIN, 0 },
        { self.reaper? zsock_resolve (self.reaper): NULL, 0, ZMQ_POLLIN, 0 },
        { NULL, self.channel? channel_fd (self.channel): -1, ZMQ_POLLIN, 0 },
        { NULL, self.link_server? ep_tls_server_fd (self.link_server): -1, ZMQ_POLLIN, 0 },
    };
    int64_t next_beacon = ep_mono_ms (), next_gauges = ep_mono_ms () + GAUGES_MS;
    int64_t next_crl = ep_mono_ms () + CRL_CHECK_MS, drain_deadline = 0;
    //  No channel with rc 0: stopped (SIGTERM) while following the model.
    while (rc == 0 && self.channel) {
        int64_t now = ep_mono_ms ();
        int64_t timeout = ep_publisher_tick (self.publisher);
        int64_t follower = ep_follower_tick (self.follower);
        int64_t dialer = self.dialer && !self.draining? dialer_deadline (self.dialer): INT64_MAX;
        //  The certificate's times are wall-clock ones.
        int64_t identity = self.ctrl_id? self.ctrl_check_ms - ep_wall_ms (): INT64_MAX;
        int64_t due [] = { follower, channel_deadline (self.channel) - now, next_beacon - now,
                           next_gauges - now, next_crl - now, dialer == INT64_MAX? dialer: dialer - now,
                           identity };
        for (size_t i = 0; i < EP_COUNT (due); i++)
            if (due [i] < timeout)
                timeout = due [i];
        if (self.link_server && ep_tls_server_deadline (self.link_server) - now < timeout)
            timeout = ep_tls_server_deadline (self.link_server) - now;
        s_link_t *link = (s_link_t *) zhashx_first (self.links);
        for (; link; link = (s_link_t *) zhashx_next (self.links))
            if (link_state (link->link) == LINK_CLOSED)
                timeout = 0;        //  s_links_check has news for the dialer
        if (timeout < 0)
            timeout = 0;
        if (zmq_poll (fixed, (int) EP_COUNT (fixed), (long) timeout) < 0 && zmq_errno () != EINTR)
            break;
        if (self.link_server)
            ep_tls_server_process (self.link_server);
        if (self.dialer) {
            s_links_check (&self);
            if (!self.draining)
                s_dial (&self);
        }
        if (fixed [0].revents & ZMQ_POLLIN)
            ep_service_check_auth (self.service);
        ep_follower_handle (self.follower);
        s_bus_events (&self);
        s_api (&self);
        s_upstream_reply (&self, self.terminators, true);
        s_upstream_reply (&self, self.reaper, false);
        channel_process (self.channel);
        now = ep_mono_ms ();
        if (now >= next_beacon) {
            s_presence (&self, "beacon", NULL, 0);
            next_beacon = now + BEACON_MS;
        }
        if (now >= next_gauges) {
            s_gauges (&self);
            next_gauges = now + GAUGES_MS;
        }
        if (now >= next_crl) {
            s_check_crl (&self);
            next_crl = now + CRL_CHECK_MS;
        }
        s_check_identity (&self);
        if (ep_service_interrupted (self.service) && !self.draining) {
            //  SIGTERM: stop accepting, tell every router to go elsewhere.
            ep_log_info ("draining %zu connections", channel_size (self.channel));
            self.draining = true;
            zsys_interrupted = 0;
            channel_stop_accepting (self.channel);
            //  Our links to peers go now; their links to us get Goodbye below.
            zhashx_purge (self.links);
            channel_conn_t *c = channel_first (self.channel);
            for (; c; c = channel_next (self.channel))
                if (conn_state (channel_conn_state (c)) == CONN_JOINED)
                    channel_drain (self.channel, c, "shutdown", true);
            drain_deadline = now + 2000;
        }
        if (self.draining && (channel_size (self.channel) == 0 || now >= drain_deadline
                              || ep_service_interrupted (self.service)))
            break;
    }
    ep_log_info ("stopping");
    if (self.channel) {
        channel_conn_t *c = channel_first (self.channel);
        for (; c; c = channel_next (self.channel))
            channel_close (self.channel, c, "shutdown");
        channel_process (self.channel);
    }
    channel_destroy (&self.channel);
    zhashx_destroy (&self.links);
    ep_tls_server_destroy (&self.link_server);
    dialer_destroy (&self.dialer);
    if (self.ctrl_id && self.follower)
        s_unregister (&self);
    ep_rpc_server_destroy (&self.rpc);
    zsock_destroy (&self.api);
    zsock_destroy (&self.terminators);
    zsock_destroy (&self.reaper);
    ep_follower_destroy (&self.follower);
    ep_subscriber_destroy (&self.events);
    ep_publisher_destroy (&self.publisher);
    ep_model_view_destroy (&self.view);
    zhashx_destroy (&self.peers);
    zhashx_destroy (&self.relays);
    zhashx_destroy (&self.commands);
    zhashx_destroy (&self.deleted);
    if (self.ssl_ctx)
        SSL_CTX_free (self.ssl_ctx);
    if (self.client_ctx)
        SSL_CTX_free (self.client_ctx);
    free (self.ctrl_id);
    free (self.channel_advertised);
    free (bus_key);
    free (model_key);
    free (self.channel_address);
    free (self.api_address);
    ep_service_destroy (&self.service);
    return rc == 0? 0: 1;
}
