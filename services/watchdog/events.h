/*  events.h: what the watchdog tells the bus about connections.

    Connect events (joins and leaves here, and the edge-to-router
    connections a router reports), stray.detected, cluster.peer.not_member,
    channel.refused and presence (join, leave, beacon), each with the
    metric that counts the same thing. The watchdog decides when; this
    module builds the events (Ep__Event on the stack, no copies) and
    publishes them on its publisher (borrowed).
*/
#ifndef EVENTS_H_INCLUDED
#define EVENTS_H_INCLUDED

#include "ep_prelude.h"
#include "ep_log.h"
#include "ep_metrics.h"
#include "ep_publisher.h"
#include "channel.h"

typedef struct _events_t events_t;

//  The stray actions, as --stray-action names them (conn_stray_action_t order).
extern const char *events_stray_actions [];

//  Events from instance instance_id (borrowed) on publisher (borrowed),
//  counted in metrics; stray_action is a conn_stray_action_t, and a stray
//  it logs (log, disconnect) is logged at stray_log_level.
events_t *
    events_new (ep_publisher_t *publisher, ep_metrics_t *metrics, const char *instance_id,
                int stray_action, ep_log_level_t stray_log_level);

void
    events_destroy (events_t **self_p);

//  Puts every event but presence.beacon through a durable outbox at path
//  (ep_outbox.h), bounded by max_events and max_bytes: decided once synced
//  (events_flush), sent at least once with the event id
//  "<source id>:<seq>", kept until it comes back through the bus
//  (events_echo). Returns 0, or -1 (logged).
int
    events_open_outbox (events_t *self, const char *path, size_t max_events, size_t max_bytes);

//  Adopts every outbox in dir (<source id>.outbox) that no process holds:
//  those of instances that died (a watchdog without a fixed --instance-id
//  gets a new id, so a new file, each start). Their events are sent with
//  their original ids (consumers drop what they already had), acknowledged
//  like ours, and each file is removed once drained. Called after
//  events_open_outbox (ours is held, so skipped). 0, or -1 (logged) if dir
//  cannot be listed.
int
    events_adopt (events_t *self, const char *dir);

//  Adopted outboxes not drained yet.
size_t
    events_adopted (events_t *self);

//  True (and counted) when the outbox has no room for another event: the
//  caller refuses new joins (back-pressure), never heartbeats.
bool
    events_full (events_t *self);

//  Syncs what was recorded this turn (one fsync), then, if bus_live,
//  publishes what is synced and not sent, resending the unacknowledged
//  when none came back for a while.
void
    events_flush (events_t *self, bool bus_live, int64_t now_ms);

//  An event from the bus: one of ours coming back acknowledges it.
void
    events_echo (events_t *self, const Ep__Event *event);

//  Where this instance is reached (borrowed, may be NULL until known): its
//  API, its channel as peers dial it, its ctrl id. Presence and connect
//  events carry them.
void
    events_set_addresses (events_t *self, const char *api_address, const char *channel_advertised,
                          const char *ctrl_id);

//  connect.<type>: c joined (connected), or left after duration_ms (reason).
void
    events_connect (events_t *self, channel_conn_t *c, bool connected, const char *reason,
                    int64_t duration_ms);

//  connect.edge-to-router: the edge connections router_id saw.
void
    events_edge_connects (events_t *self, const char *router_id, const Ep__EdgeConnectBatch *batch);

//  stray.detected (step: the last step reached), counted by step.
void
    events_stray (events_t *self, channel_conn_t *c, const char *step);

//  cluster.peer.not_member: a ctrl peer that is not a cluster member.
void
    events_not_member (events_t *self, channel_conn_t *c);

//  channel.refused, counted by reason; role and id may be NULL or "".
void
    events_refusal (events_t *self, const char *remote, const char *reason, const char *role,
                    const char *id);

//  router.slice.<type> (rejected: the router refused revision and holds
//  acked_revision, for reason; stale: its acknowledged revision has been
//  superseded for age_ms), counted by type.
void
    events_slice (events_t *self, const char *type, const char *router_id, uint64_t revision,
                  uint64_t acked_revision, int64_t age_ms, const char *reason);
//  A connection ended: its duration by outcome.
void
    events_ended (events_t *self, const char *outcome, double seconds);

//  presence.<type> (join, leave, beacon) naming routers (n of them), with
//  the router's join time (wall ms, 0: none) and our model revision.
void
    events_presence (events_t *self, const char *type, char **routers, size_t n,
                     int64_t joined_wall_ms, uint64_t model_revision);

#endif
