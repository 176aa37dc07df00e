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
*/
#ifndef RELAY_H_INCLUDED
#define RELAY_H_INCLUDED

#include "ep_service.h"
#include "channel.h"

typedef struct _relay_t relay_t;

//  A joined router's connection, or NULL (for replies).
typedef channel_conn_t *(relay_lookup_fn) (void *arg, const char *router_id);

//  Connects to the terminators and reaper services (endpoints from the
//  service's options). NULL if either cannot be reached (logged).
relay_t *
    relay_new (ep_service_t *service, relay_lookup_fn *lookup, void *arg);

void
    relay_destroy (relay_t **self_p);

//  The DEALERs, for the caller's poll.
zsock_t *
    relay_terminators (relay_t *self);
zsock_t *
    relay_reaper (relay_t *self);

//  A request or command ack from router c (joined): relayed. Returns true
//  if the frame was one of those (the caller still frees it).
bool
    relay_frame (relay_t *self, channel_conn_t *c, Ep__Frame *frame);

//  Command is being delivered to a router: its ack goes to command->reply_to.
void
    relay_command (relay_t *self, const Ep__Command *command);

//  Replies waiting on both DEALERs: each back to its router.
void
    relay_replies (relay_t *self);

//  Forgets relays past their timeout (and commands past a bound).
void
    relay_expire (relay_t *self, int64_t now_ms);

#endif
