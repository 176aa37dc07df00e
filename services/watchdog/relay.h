/*  relay.h: router requests relayed to their services, replies back.

    A joined router's TerminatorRequest and SessionRequest frames (and its
    acks of commands) go to the terminators or reaper service over a DEALER
    each, under an upstream request id made from the router's own
    ("<router>:<its id>", so a retry through any watchdog instance is the
    same request to the service and hits its reply cache; acks as
    "<router>/ack/<command>"); replies come back to the router that asked,
    with its own id and frame id. A request the services cannot take is
    answered here. Relays and commands nobody answered are forgotten
    (relay_expire).

    The terminators and the reaper may each run as several instances,
    each owning some of the shards routers are spread over (docs/shards.md).
    Their beacons (cluster.beacon, fed to relay_beacon) say which instance
    of which service owns which shard and where it listens (one shardroute
    per service, shardroute.h); a request or ack goes to the owner of its
    router's shard in its service over a DEALER kept per instance address
    (made on first use, gone when the instance is forgotten, and what was
    in flight there then answered UNAVAILABLE, retriable), or, when no
    beacon claims the shard, to the service's configured endpoint as
    before. An instance that does not own the shard (a handover) answers
    UNAVAILABLE, retriable, itself: that reply goes back to the router as
    any other, and the router asks again. Replies come back from every
    DEALER alike.
*/
#ifndef RELAY_H_INCLUDED
#define RELAY_H_INCLUDED

#include "ep_service.h"
#include "channel.h"
#include "events.pb-c.h"

typedef struct _relay_t relay_t;

//  A joined router's connection, or NULL (for replies).
typedef channel_conn_t *(relay_lookup_fn) (void *arg, const char *router_id);

//  Connects to the terminators and reaper services (endpoints from the
//  service's options). NULL if either cannot be reached (logged).
relay_t *
    relay_new (ep_service_t *service, relay_lookup_fn *lookup, void *arg);

void
    relay_destroy (relay_t **self_p);

//  Instances of one service we keep a DEALER to, at most.
#define RELAY_OWNERS_MAX 64
//  Poll items relay_poll_items fills, at most: per service (terminators,
//  reaper) its configured endpoint's and its instances'.
#define RELAY_POLL_MAX (2 * (RELAY_OWNERS_MAX + 1))

//  The DEALERs, for the caller's poll: fills up to max items (POLLIN) and
//  returns how many. The set changes as instances come and go: fill them
//  again before each poll.
size_t
    relay_poll_items (relay_t *self, zmq_pollitem_t *items, size_t max);

//  A beacon of a sharded service's instance (cluster.beacon), heard at
//  now_ms (monotonic). Other services' are ignored.
void
    relay_beacon (relay_t *self, const Ep__ShardBeacon *beacon, int64_t now_ms);

//  A request or command ack from router c (joined): relayed. Returns true
//  if the frame was one of those (the caller still frees it).
bool
    relay_frame (relay_t *self, channel_conn_t *c, Ep__Frame *frame);

//  Command is being delivered to a router: its ack goes to command->reply_to.
void
    relay_command (relay_t *self, const Ep__Command *command);

//  Replies waiting on every DEALER: each back to its router.
void
    relay_replies (relay_t *self);

//  Forgets relays past their timeout (and commands past a bound), and
//  the instances whose beacons stopped (their DEALERs closed).
void
    relay_expire (relay_t *self, int64_t now_ms);

#endif
