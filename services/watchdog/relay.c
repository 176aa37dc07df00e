/*  relay.c: router requests to their services, replies back (see relay.h). */
#include "relay.h"
#include "ep_log.h"
#include "ep_codec.h"
#include "ep_endpoints.h"
#include "shardroute.h"

#define RELAY_TIMEOUT_MS    30000
#define RELAY_ID_MAX        160         //  the longest request id services take
#define COMMANDS_MAX        100000      //  command ids remembered, at most
#define OWNERS_MAX          RELAY_OWNERS_MAX    //  instance DEALERs per service, at most
#define BAD_BEACON_LOG_MS   60000       //  a malformed beacon is logged this often, at most

//  A request relayed to a service, waiting for its reply.
typedef struct {
    char router_id [65];        //  who asked
    uint64_t frame_id;          //  the frame id to answer with
    bool terminators;           //  which service (else the reaper)
    bool ack;                   //  a command ack: the reply is not the router's
    int64_t expires_ms;         //  forgotten after this
    zsock_t *owner;             //  the instance DEALER it went on (NULL: a configured endpoint's)
} s_relay_t;

//  A service relayed to: the terminators or the reaper, each may run as
//  several instances on shards, reached alike.
typedef struct {
    const char *name;           //  "terminators" or "reaper"
    bool terminators;           //  its replies are TerminatorReplies (else SessionReplies)
    zsock_t *configured;        //  DEALER to its configured endpoint
    shardroute_t *route;        //  its instances and their shards, from beacons
    zhashx_t *owners;           //  instance address -> its DEALER (zsock_t)
    int64_t next_bad_beacon_log;    //  when a malformed beacon may be logged again (ms)
} s_service_t;

#define SERVICES 2              //  the terminators, the reaper

struct _relay_t {
    ep_service_t *service;      //  for the CURVE settings of new DEALERs (borrowed)
    s_service_t services [SERVICES];    //  the terminators [0], the reaper [1]
    zhashx_t *relays;           //  upstream request id -> s_relay_t
    zhashx_t *commands;         //  command id -> reply_to ("terminators" / "reaper")
    relay_lookup_fn *lookup;    //  joined routers
    void *arg;                  //  its argument
};

static zsock_t *
s_dealer (ep_service_t *service, const char *endpoint, const char *server)
{
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    zsock_set_sndhwm (dealer, 100000);
    zsock_set_heartbeat_ivl (dealer, 1000);
    zsock_set_heartbeat_timeout (dealer, 3000);
    //  Several instances (a comma-separated list): requests go only to
    //  live connections, and a silent one is dropped by the heartbeats, so
    //  the DEALER's round robin skips a dead instance.
    if (strchr (endpoint, ','))
        zsock_set_immediate (dealer, 1);
    if (ep_service_secure_client (service, dealer, server) != 0
    ||  ep_endpoints_connect (dealer, endpoint) != 0) {
        ep_log_error ("cannot reach %s at %s", server, endpoint);
        zsock_destroy (&dealer);
    }
    return dealer;
}

static void
s_dealer_destroy (void **item)
{
    zsock_t *dealer = (zsock_t *) *item;
    zsock_destroy (&dealer);
    *item = NULL;
}

//  The terminators' or the reaper's.
static s_service_t *
s_service (relay_t *self, bool terminators)
{
    return &self->services [terminators? 0: 1];
}

relay_t *
relay_new (ep_service_t *service, relay_lookup_fn *lookup, void *arg)
{
    relay_t *self = (relay_t *) zmalloc (sizeof (relay_t));
    const ep_common_opts_t *opts = ep_service_opts (service);
    self->service = service;
    bool reached = true;
    for (int i = 0; i < SERVICES; i++) {
        s_service_t *svc = &self->services [i];
        svc->terminators = i == 0;
        svc->name = svc->terminators? "terminators": "reaper";
        svc->configured = s_dealer (service, svc->terminators? opts->terminators_api: opts->reaper_api,
                                    svc->name);
        svc->route = shardroute_new (svc->name);
        svc->owners = zhashx_new ();
        zhashx_set_destructor (svc->owners, s_dealer_destroy);
        reached &= svc->configured != NULL;
    }
    self->relays = zhashx_new ();
    zhashx_set_destructor (self->relays, (czmq_destructor *) zstr_free);
    self->commands = zhashx_new ();
    zhashx_set_destructor (self->commands, (czmq_destructor *) zstr_free);
    self->lookup = lookup;
    self->arg = arg;
    if (!reached)
        relay_destroy (&self);
    return self;
}

void
relay_destroy (relay_t **self_p)
{
    relay_t *self = *self_p;
    if (self) {
        for (int i = 0; i < SERVICES; i++) {
            zsock_destroy (&self->services [i].configured);
            zhashx_destroy (&self->services [i].owners);
            shardroute_destroy (&self->services [i].route);
        }
        zhashx_destroy (&self->relays);
        zhashx_destroy (&self->commands);
        free (self);
        *self_p = NULL;
    }
}

size_t
relay_poll_items (relay_t *self, zmq_pollitem_t *items, size_t max)
{
    size_t n = 0;
    for (int i = 0; i < SERVICES; i++) {
        s_service_t *svc = &self->services [i];
        if (n < max)
            items [n++] = (zmq_pollitem_t) { zsock_resolve (svc->configured), 0, ZMQ_POLLIN, 0 };
        zsock_t *dealer = (zsock_t *) zhashx_first (svc->owners);
        for (; dealer && n < max; dealer = (zsock_t *) zhashx_next (svc->owners))
            items [n++] = (zmq_pollitem_t) { zsock_resolve (dealer), 0, ZMQ_POLLIN, 0 };
    }
    return n;
}

void
relay_beacon (relay_t *self, const Ep__ShardBeacon *beacon, int64_t now_ms)
{
    shardroute_beacon_t heard = {
        .service = beacon->service, .instance = beacon->instance_id, .address = beacon->address,
        .count = beacon->has_shard_count? beacon->shard_count: 0,
        .shards = beacon->shards, .n = beacon->n_shards,
        //  Revisions that do not pair with the shards are not guessed at.
        .revisions = beacon->n_owner_revisions == beacon->n_shards? beacon->owner_revisions: NULL,
        .interval_ms = beacon->has_interval_ms? beacon->interval_ms: 0
    };
    //  Each service's route takes its own instances' beacons and ignores
    //  the others'. Beacons come every second: a broken instance is said
    //  once a minute.
    for (int i = 0; i < SERVICES; i++) {
        s_service_t *svc = &self->services [i];
        if (shardroute_beacon (svc->route, &heard, now_ms) != 0
        &&  beacon->service && streq (beacon->service, svc->name) && now_ms >= svc->next_bad_beacon_log) {
            ep_log_warn ("a %s beacon from %s with no instance id, no address, no shard count "
                         "or a shard out of range: ignored; its shards' requests go to the configured "
                         "endpoint", svc->name, beacon->instance_id? beacon->instance_id: "?");
            svc->next_bad_beacon_log = now_ms + BAD_BEACON_LOG_MS;
        }
    }
}

//  The DEALER for router_id's requests and acks to svc: its shard
//  owner's, as the beacons say (made on first use), else the configured
//  one: no live beacon claims the shard (a single instance beacons none),
//  or too many instances. An instance that does not own the shard answers
//  UNAVAILABLE, retriable, and the router asks again.
static zsock_t *
s_dealer_for (relay_t *self, s_service_t *svc, const char *router_id, zsock_t **owner_p)
{
    const char *address = shardroute_owner (svc->route, router_id, ep_mono_ms ());
    *owner_p = NULL;
    if (!address)
        return svc->configured;
    zsock_t *dealer = (zsock_t *) zhashx_lookup (svc->owners, address);
    if (!dealer && zhashx_size (svc->owners) < OWNERS_MAX) {
        dealer = s_dealer (self->service, address, svc->name);
        if (dealer) {
            zhashx_insert (svc->owners, address, dealer);
            ep_log_info ("%s instance at %s: connected (it owns shards)", svc->name, address);
        }
    }
    *owner_p = dealer;
    return dealer? dealer: svc->configured;
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
        session_reply.has_retriable = true;
        session_reply.retriable = code == EP__STATUS__CODE__UNAVAILABLE;
        frame.body_case = EP__FRAME__BODY_SESSION_REPLY;
        frame.session_reply = &session_reply;
    }
    ep_tls_conn_send (c, &frame);
}

//  Sends a router's request to its service under the upstream id (see
//  relay.h). Router ids cannot hold ':' or '/', so no id a router picks
//  can collide with an ack's, and the reply to an ack is not forwarded.
static void
s_relay (relay_t *self, channel_conn_t *c, uint64_t frame_id, bool terminators, bool ack,
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
    zsock_t *owner = NULL;
    zsock_t *dealer = s_dealer_for (self, s_service (self, terminators), router_id, &owner);
    if (zframe_send (&packed, dealer, ZFRAME_DONTWAIT) != 0) {
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
    relay->owner = owner;
    zhashx_update (self->relays, upstream, relay);
}

//  A router's ack of a command: to the service that sent the command. The
//  command id is the request id: s_relay prefixes it.
static void
s_ack (relay_t *self, channel_conn_t *c, uint64_t frame_id, Ep__CommandAck *ack)
{
    const char *id = conn_id (channel_conn_state (c));
    const char *reply_to = ack->command_id
                         ? (const char *) zhashx_lookup (self->commands, ack->command_id): NULL;
    char *request_id = ack->command_id;
    if (reply_to && streq (reply_to, "terminators")) {
        Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
        request.request_id = request_id;
        request.router_id = (char *) id;
        request.op_case = EP__TERMINATOR_REQUEST__OP_ACK;
        request.ack = ack;
        s_relay (self, c, frame_id, true, true, &request.base, &request.request_id);
    }
    else {
        Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
        request.request_id = request_id;
        request.router_id = (char *) id;
        request.op_case = EP__SESSION_REQUEST__OP_ACK;
        request.ack = ack;
        s_relay (self, c, frame_id, false, true, &request.base, &request.request_id);
    }
}

bool
relay_frame (relay_t *self, channel_conn_t *c, Ep__Frame *frame)
{
    const char *id = conn_id (channel_conn_state (c));
    switch (frame->body_case) {
        case EP__FRAME__BODY_TERMINATOR_REQUEST: {
            Ep__TerminatorRequest *request = frame->terminator_request;
            free (request->router_id);
            request->router_id = strdup (id);       //  only we speak for routers
            s_relay (self, c, frame->id, true, false, &request->base, &request->request_id);
            return true;
        }
        case EP__FRAME__BODY_SESSION_REQUEST: {
            Ep__SessionRequest *request = frame->session_request;
            free (request->router_id);
            request->router_id = strdup (id);
            s_relay (self, c, frame->id, false, false, &request->base, &request->request_id);
            return true;
        }
        case EP__FRAME__BODY_COMMAND_ACK:
            s_ack (self, c, frame->id, frame->command_ack);
            return true;
        default:
            return false;
    }
}

void
relay_command (relay_t *self, const Ep__Command *command)
{
    if (command->command_id && command->reply_to)
        zhashx_update (self->commands, command->command_id, strdup (command->reply_to));
}

//  A reply from the terminators or reaper service: back to the router.
static void
s_replies (relay_t *self, zsock_t *dealer, bool terminators)
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
        channel_conn_t *c = relay && !relay->ack? self->lookup (self->arg, relay->router_id): NULL;
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
            ep_tls_conn_send (c, &frame);
            *request_id = upstream;
        }
        if (relay)
            zhashx_delete (self->relays, *request_id);
        protobuf_c_message_free_unpacked (msg, NULL);
    }
}

void
relay_replies (relay_t *self)
{
    for (int i = 0; i < SERVICES; i++) {
        s_service_t *svc = &self->services [i];
        s_replies (self, svc->configured, svc->terminators);
        zsock_t *dealer = (zsock_t *) zhashx_first (svc->owners);
        for (; dealer; dealer = (zsock_t *) zhashx_next (svc->owners))
            s_replies (self, dealer, svc->terminators);
    }
}

//  The requests in flight on dealer, the DEALER of the instance at
//  address, which is gone: each answered UNAVAILABLE, retriable, so its
//  router asks again now (its shard has a new owner, or soon will) rather
//  than at its request timeout; acks are dropped (the new owner sends its
//  own commands). None is left pointing at the DEALER, which goes next.
static void
s_fail_owner (relay_t *self, s_service_t *svc, zsock_t *dealer, const char *address)
{
    zlistx_t *failed = zlistx_new ();
    s_relay_t *relay = (s_relay_t *) zhashx_first (self->relays);
    for (; relay; relay = (s_relay_t *) zhashx_next (self->relays))
        if (dealer && relay->owner == dealer)
            zlistx_add_end (failed, (void *) zhashx_cursor (self->relays));
    for (const char *key = (const char *) zlistx_first (failed); key; key = (const char *) zlistx_next (failed)) {
        relay = (s_relay_t *) zhashx_lookup (self->relays, key);
        channel_conn_t *c = relay->ack? NULL: self->lookup (self->arg, relay->router_id);
        if (c)
            s_relay_fail (c, relay->frame_id, svc->terminators, strchr (key, ':') + 1,
                          EP__STATUS__CODE__UNAVAILABLE, "the instance the request went to is gone: retry");
        zhashx_delete (self->relays, key);
    }
    if (zlistx_size (failed))
        ep_log_info ("%s instance at %s: %zu requests in flight there answered UNAVAILABLE (retry)",
                     svc->name, address, zlistx_size (failed));
    zlistx_destroy (&failed);
}

//  Instances forgotten (silent) or moved to another address: their
//  DEALERs go, and the requests in flight there are answered retriable.
static void
s_expire_owners (relay_t *self, s_service_t *svc, int64_t now_ms)
{
    shardroute_expire (svc->route, now_ms);
    zlistx_t *gone = zlistx_new ();
    zlistx_set_destructor (gone, (czmq_destructor *) zstr_free);
    for (void *dealer = zhashx_first (svc->owners); dealer; dealer = zhashx_next (svc->owners)) {
        const char *address = (const char *) zhashx_cursor (svc->owners);
        if (!shardroute_knows (svc->route, address))
            zlistx_add_end (gone, strdup (address));
    }
    for (char *address = (char *) zlistx_first (gone); address; address = (char *) zlistx_next (gone)) {
        ep_log_info ("%s instance at %s: no beacon for a while: disconnected", svc->name, address);
        s_fail_owner (self, svc, (zsock_t *) zhashx_lookup (svc->owners, address), address);
        zhashx_delete (svc->owners, address);
    }
    zlistx_destroy (&gone);
}

void
relay_expire (relay_t *self, int64_t now_ms)
{
    zlistx_t *expired = zlistx_new ();
    s_relay_t *relay = (s_relay_t *) zhashx_first (self->relays);
    for (; relay; relay = (s_relay_t *) zhashx_next (self->relays))
        if (relay->expires_ms <= now_ms)
            zlistx_add_end (expired, (void *) zhashx_cursor (self->relays));
    for (const char *key = (const char *) zlistx_first (expired); key; key = (const char *) zlistx_next (expired))
        zhashx_delete (self->relays, key);
    zlistx_destroy (&expired);
    for (int i = 0; i < SERVICES; i++)
        s_expire_owners (self, &self->services [i], now_ms);
    if (zhashx_size (self->commands) > COMMANDS_MAX)
        zhashx_purge (self->commands);
}
