/*  terminators.h: the terminator service's state over its store, the model
    and router presence.

    Inputs: decoded TerminatorRequests (already authorized: the watchdog
    speaks for router_id), the model as a follower keeps it (an
    ep_model_view whose observer this module sets), presence events, and
    the clock. Outputs: replies, and after each commit the events
    (terminator.*) and commands (cmd.<router>.) to publish. No sockets:
    termsvc.c reads requests, parks those based on a model revision the view
    has not reached, and runs batches:

        terminators_begin      one transaction
        terminators_work       reconciliation, presence, timers (a savepoint)
        terminators_write      each request in its own savepoint
        terminators_commit     one fsync; then replies, then outputs

    Changes are applied to memory as they are staged and undone if their
    savepoint or the commit fails, so every transition is durable before
    anything (a reply, an event) reports it. Reads are served between
    batches. docs/terminators.md is the contract.
*/
#ifndef TERMINATORS_H_INCLUDED
#define TERMINATORS_H_INCLUDED

#include "ep_prelude.h"
#include "ep_model_view.h"
#include "ep_output.h"
#include "ep_owned.h"
#include "ep_store.h"
#include "events.pb-c.h"
#include "terminators.pb-c.h"
#include "termsm.h"
#include "termstore.h"

typedef struct _terminators_t terminators_t;

typedef struct {
    termsm_config_t sm;         //  lifecycle timings and limits
    int64_t settle_ms;          //  after start, timers wait this long for presence to be known
    int64_t presence_expiry_ms; //  a watchdog instance silent this long loses its routers
    size_t work_budget;         //  terminators examined by one terminators_work at most
} terminators_config_t;

//  The outcome of one request. Everything it points to is owned by it.
typedef struct {
    Ep__TerminatorReply reply;  //  the reply (status points at .status)
    Ep__Status status;          //  its status
    char message [512];         //  status message storage
    ep_owned_t *owned;          //  allocations released by terminators_result_clear
} terminators_result_t;

//  The defaults (docs/terminators.md).
void
    terminators_config_defaults (terminators_config_t *config);

//  The service over store (borrowed, migrated with termstore_migrations)
//  and view (borrowed; its observer is set here), with every row loaded.
//  now_ms is the wall clock. Returns NULL (logged) if the store cannot be
//  read.
terminators_t *
    terminators_new (ep_store_t *store, ep_model_view_t *view,
                     const terminators_config_t *config, int64_t now_ms);

void
    terminators_destroy (terminators_t **self_p);

//  The follower loaded a snapshot (the first, or a resync): every
//  terminator is checked against the model again. Until the first call
//  no internal work runs (the view is empty) and writes must wait.
void
    terminators_model_loaded (terminators_t *self);

//  A presence event (topic "presence.join|leave|beacon") received at
//  mono_ms. Call between batches.
void
    terminators_presence (terminators_t *self, const char *topic,
                          const Ep__PresenceEvent *event, int64_t mono_ms);

//  Expires watchdog instances whose beacons stopped. Call between batches.
void
    terminators_presence_expire (terminators_t *self, int64_t mono_ms);

//  True if the request changes state (create, update, delete, validate);
//  false for get, list and ack.
bool
    terminators_is_write (const Ep__TerminatorRequest *request);

//  True if internal work (reconciliation, presence, timers, outbox
//  trimming) is waiting at wall clock now_ms.
bool
    terminators_has_work (terminators_t *self, int64_t now_ms);

//  Milliseconds until internal work is due (0: now), at most cap_ms.
int64_t
    terminators_next_due (terminators_t *self, int64_t now_ms, int64_t cap_ms);

//  Opens the batch's transaction. Returns 0 or -1.
int
    terminators_begin (terminators_t *self);

//  Stages internal work (bounded by the work budget) in its own savepoint.
void
    terminators_work (terminators_t *self, int64_t now_ms);

//  Stages one write request (request->router_id already vouched for) in
//  its own savepoint; result gets the reply to send after the commit.
void
    terminators_write (terminators_t *self, const Ep__TerminatorRequest *request,
                       int64_t now_ms, terminators_result_t *result);

//  Commits the batch. 0: everything staged is durable and its outputs wait
//  in terminators_next_output. -1: everything since terminators_begin is
//  undone; the caller answers the batch's writes UNAVAILABLE.
int
    terminators_commit (terminators_t *self);

//  The etcd mode (docs/terminators.md, "On shards"): the store is a cache
//  of the shards this instance owns, and a batch is durable once the etcd
//  transaction terminators_changes describes succeeded. Then
//  terminators_commit (the cache); if it failed, terminators_rollback.

//  Calls fn (arg, id, now, before) once per terminator the open batch
//  changed (now NULL: removed; before NULL: new), then out (arg, item) for
//  each output it staged (item->seq > 0: an event kept in the outbox).
void
    terminators_changes (terminators_t *self,
                         void (*fn) (void *arg, const char *id, const termrec_t *now,
                                     const termrec_t *before),
                         void (*out) (void *arg, const ep_output_item_t *item), void *arg);

//  Undoes everything since terminators_begin (the batch did not become
//  durable elsewhere).
void
    terminators_rollback (terminators_t *self);

//  Takes record over as one of this instance's (a shard it acquired):
//  cached, indexed, and checked at the next batch. Between batches.
void
    terminators_adopt (terminators_t *self, termrec_t **record_p);

//  The records of a shard are all adopted: the spin detector's memory of
//  their (router, service) pairs is built from them, as after a restart.
void
    terminators_adopted (terminators_t *self);

//  Queues a committed event a shard's earlier owner did not see published
//  (at least once). Returns its sequence number here (> 0), or -1.
int64_t
    terminators_adopt_event (terminators_t *self, const char *topic, const void *body,
                             size_t size);

//  Forgets every terminator whose router satisfies mine (arg, router_id)
//  == false (the shards this instance no longer owns): cache and memory,
//  nothing durable. Between batches. Returns how many.
size_t
    terminators_drop (terminators_t *self, bool (*mine) (void *arg, const char *router_id),
                      void *arg);

//  The next output of committed batches, oldest first, or NULL: topic
//  "terminator.<type>" or "cmd.<router>.", and seq, the outbox entry of
//  an event (0 for commands, which are not kept). The caller publishes
//  it, calls terminators_published with its seq, and destroys it
//  (ep_output_item_destroy).
ep_output_item_t *
    terminators_next_output (terminators_t *self);

//  Outbox entries up to seq are published: a later batch removes them.
void
    terminators_published (terminators_t *self, int64_t seq);

//  Queues as outputs the events a previous run committed but did not
//  publish (at least once: some may have gone out already). Returns how
//  many, or -1.
int
    terminators_replay_outbox (terminators_t *self);

//  Answers get, list and ack from committed state. Call between batches.
void
    terminators_read (terminators_t *self, const Ep__TerminatorRequest *request,
                      int64_t now_ms, terminators_result_t *result);

//  Answers get and list, as terminators_read does, from records (every
//  terminator of every shard, as read from etcd in the etcd mode) instead
//  of this instance's own. Presence and the model are this instance's.
void
    terminators_read_records (terminators_t *self, const Ep__TerminatorRequest *request,
                              zlistx_t *records, terminators_result_t *result);

void
    terminators_result_init (terminators_result_t *result, const char *request_id);
void
    terminators_result_clear (terminators_result_t *result);

//  Spins detected (create -> delete -> create of one (router, service)
//  with no model revision touching it in between).
uint64_t
    terminators_spins (terminators_t *self);

//  Terminators in state (DELETED: tombstones).
size_t
    terminators_count (terminators_t *self, termsm_state_t state);

//  Routers online, and watchdog instances heard from.
size_t
    terminators_routers_online (terminators_t *self);
size_t
    terminators_instances (terminators_t *self);

//  True if router_id is held by a watchdog.
bool
    terminators_router_online (terminators_t *self, const char *router_id);

//  ValidateTerminators commands issued, and acks received.
uint64_t
    terminators_commands (terminators_t *self);
uint64_t
    terminators_acks (terminators_t *self);

//  The last model revision that touched (router, service): hosting, the
//  router's existence or enabled flag, the service's existence.
uint64_t
    terminators_touch (terminators_t *self, const char *router_id, const char *service_id);

#endif
