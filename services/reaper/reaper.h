/*  reaper.h: the session reaper's state machine.

    Sessions that are not closed live in memory (a hash by id, lists by
    router, identity and service, the liveness heap, the cleanup planner);
    sessions.db holds their durable state (sessiondb.h). Inputs: requests
    (decoded SessionRequests and the caller), model changes (from the
    follower's view observer), presence events, and time. Outputs: replies,
    events and commands (staged, then handed out as ep_output items by
    reaper_next_output only after the commit that makes them true; events
    are rows of sessions.db's outbox until the bus echoes them), and
    rows in the open transaction. No sockets, no clocks: the service
    (reapsvc.c) reads requests, handles them, calls reaper_tick, commits
    with reaper_commit, then answers and publishes what reaper_next_output
    hands out. docs/reaper.md is the contract.

    Times are monotonic ms (now); wall-clock times (created_at, last_seen,
    deadlines on disk) are now plus an offset the caller keeps current.

    Every write is idempotent (opening an open session answers the same,
    closing a closed one too, acks of closed sessions are ignored), so a
    retried request needs no reply cache.

    A failed write or commit fails the batch: reaper_commit returns -1
    (the service answers the batch UNAVAILABLE with reaper_failure) and
    memory is put back as the store has it, so nothing refused is
    visible and nothing acknowledged is lost; the undone work is done
    again later (batch.c). While the store takes no writes (a full or
    failing disk: reaper_set_degraded) nothing durable is tried.
*/
#ifndef REAPER_H_INCLUDED
#define REAPER_H_INCLUDED

#include "ep_prelude.h"
#include "ep_auth.h"
#include "ep_cadence.h"
#include "ep_owned.h"
#include "ep_metrics.h"
#include "ep_model_view.h"
#include "ep_output.h"
#include "ep_store.h"
#include "events.pb-c.h"
#include "sessions.pb-c.h"

typedef struct _reaper_t reaper_t;

typedef struct {
    int64_t evasive_ms;         //  T1: unheard this long -> probe (fixed; adaptive: until learnt)
    int64_t expire_ms;          //  T2: unheard this long (and probed) -> reaped (likewise)
    bool adaptive;              //  each router's T1 from its heartbeat cadence, T2 in proportion
    ep_cadence_config_t cadence;    //  adaptive: window, samples, percentile, factor, T1's bounds
    int64_t offline_grace_ms;   //  a router offline this long -> cleanup
    int64_t deadline_ms;        //  a cleanup forces what is left after this
    int64_t presence_timeout_ms;    //  a watchdog unheard this long holds nothing
    int64_t flush_ms;           //  counters and last-seen are written this often
    int64_t long_lived_ms;      //  a session this old raises session.warning (once)
    int64_t retention_ms;       //  CLOSED sessions and done jobs are kept this long
    int64_t retry_ms;           //  first resend of an unanswered CloseSessions
    int64_t retry_max_ms;       //  resend interval cap
    size_t mark_batch;          //  sessions marked TERMINATING (forced, warned) per transaction
    size_t prune_batch;         //  closed rows past the retention deleted per transaction
    size_t chunk;               //  session ids per command
    size_t window;              //  unanswered close commands per router
    size_t outbox_max;          //  session events not echoed by the bus at most (then opens
                                //  are refused); 0: no cap
    const char *owner;          //  our events' id prefix if sessions.db has none yet (the
                                //  shell picks a random one; NULL: "reaper")
} reaper_config_t;

//  Fills config with the defaults (docs/reaper.md).
void
    reaper_config_defaults (reaper_config_t *config);

//  The outcome of one request: the reply and what it points to.
typedef struct {
    Ep__SessionReply reply;     //  reply (status points at .status)
    Ep__Status status;          //  its status
    char message [512];         //  status message storage
    const char *op;             //  metric label
    ep_owned_t *owned;          //  allocations released by reaper_result_clear
} reaper_result_t;

//  Loads the open sessions and running jobs of store (borrowed) at now,
//  every last-seen set to now. metrics may be NULL. Returns NULL (logged)
//  if the store cannot be read.
reaper_t *
    reaper_new (ep_store_t *store, const reaper_config_t *config, ep_metrics_t *metrics,
                int64_t now, int64_t wall_offset);

void
    reaper_destroy (reaper_t **self_p);

//  The etcd mode: the store was given sessions and jobs from outside (a
//  shard taken over, written by reapload): memory takes the ones it does
//  not hold, as a start does (every last-seen set to now, running jobs
//  resumed with their deadlines, their unmarked sessions taken again).
//  Call between batches. Returns 0, or -1 (logged).
int
    reaper_adopt (reaper_t *self, int64_t now);

//  The etcd mode: while holding, the retention pruning, which scans the
//  whole store, waits: a shard being written into it in steps (ep_adopt)
//  is not this instance's to write yet, and its rows are not all in.
void
    reaper_hold_prune (reaper_t *self, bool holding);

//  True if router_id's shard is this instance's.
typedef bool (reaper_mine_fn) (void *arg, const char *router_id);

//  The etcd mode: shards went to other instances. The sessions of every
//  router that is not mine leave memory and the store (not closed: the
//  next owner has them), with their commands in flight and their
//  routers' jobs; a job of another target keeps its other sessions. Call
//  between batches. Returns the sessions forgotten, or -1 (logged).
int
    reaper_forget (reaper_t *self, reaper_mine_fn *mine, void *arg);

//  The etcd mode: the core's tables (borrowed), for the service to tell
//  their journal (sessiondb_set_journal) and to write a shard taken over
//  into them (reapload) between batches.
typedef struct _sessiondb_t sessiondb_t;
sessiondb_t *
    reaper_db (reaper_t *self);

//  Wall clock = monotonic + offset (refresh it as the clocks drift).
void
    reaper_set_wall_offset (reaper_t *self, int64_t wall_offset);

//  True for requests answered from committed state after the commit
//  (get, list, cleanup, liveness); the others go through reaper_handle
//  in order.
bool
    reaper_is_read (const Ep__SessionRequest *request);

//  Handles open, close, heartbeat or ack from caller (roles checked here).
//  Writes go to the open transaction; answer after reaper_commit.
void
    reaper_handle (reaper_t *self, const Ep__SessionRequest *request,
                   const ep_caller_t *caller, int64_t now, reaper_result_t *result);

//  Answers get, list, cleanup or liveness (call outside a transaction).
void
    reaper_read (reaper_t *self, const Ep__SessionRequest *request,
                 const ep_caller_t *caller, int64_t now, reaper_result_t *result);

//  A change the model follower applied (its view observer).
void
    reaper_model_event (reaper_t *self, const ep_model_event_t *event, int64_t now);

//  The follower loaded its first snapshot into view (borrowed from now
//  on): sessions whose router, identity or service is missing are cleaned
//  up (deleted while the reaper was away).
void
    reaper_model_ready (reaper_t *self, ep_model_view_t *view, int64_t now);

//  After a shard's adoption: its routers the view does not hold may have
//  been deleted while their previous owner was gone or while the shard was
//  adopted (the model's event found none of their sessions in memory), or
//  created after the view's revision. Each is looked at as a session open
//  for an unknown router is (reaper_unseen): cleaned up as deleted once
//  the view has caught up with the watchdogs and still lacks it.
void
    reaper_adopted_routers (reaper_t *self, int64_t now);

//  A presence event (type "join", "leave" or "beacon").
void
    reaper_presence (reaper_t *self, const char *type, const Ep__PresenceEvent *presence,
                     int64_t now);

//  Our bus subscription is proven live (something arrived): presence
//  counts as known one presence timeout later.
void
    reaper_bus_live (reaper_t *self, int64_t now);

//  Does what is due at now (liveness, offline routers, cleanup phases,
//  deadlines, counter flushes, pruning). Returns when it next has work.
int64_t
    reaper_tick (reaper_t *self, int64_t now);

//  Commits the open transaction (if any): what it staged becomes ready
//  for reaper_next_output. Returns 0, or -1: nothing of the batch is
//  handed out, and memory is as the store has it (see reaper_failure).
int
    reaper_commit (reaper_t *self);

//  The etcd mode's commit, in two halves around the etcd transaction:
//  reaper_prepare makes the batch's last writes and returns true if the
//  open transaction holds a sound batch, whose rows the caller then sends
//  (reapbatch) before calling reaper_commit; false: call reaper_commit at
//  once. If etcd did not take the batch, reaper_refuse (why) first: then
//  reaper_commit fails it as a failed commit (undone in memory, why as
//  reaper_failure).
bool
    reaper_prepare (reaper_t *self);
void
    reaper_refuse (reaper_t *self, const char *why);

//  Why the last failed commit failed (the store's message: "the disk is
//  full ...: free space in DIR"), and its kind.
const char *
    reaper_failure (reaper_t *self);
ep_store_fault_t
    reaper_fault (reaper_t *self);

//  The store takes no writes (fault FULL or FAILING, why: the store's
//  message) or takes them again (NONE). Meanwhile opens, closes and
//  CloseSessions acks are answered UNAVAILABLE with why, and nothing
//  durable is tried (no verdict, cleanup phase, flush, pruning or
//  deletion of echoed events); heartbeats, probe answers, reads,
//  presence and the model are served, and committed events handed out.
void
    reaper_set_degraded (reaper_t *self, ep_store_fault_t fault, const char *why);

//  The next committed output to publish (item->topic, item->event), or
//  NULL: every command first, then, if events is true, the oldest event
//  (session.*). The caller publishes it and destroys it
//  (ep_output_item_destroy).
ep_output_item_t *
    reaper_next_output (reaper_t *self, bool events);

//  Events waiting for reaper_next_output.
size_t
    reaper_backlog (reaper_t *self);

//  The stable id of this reaper's events (kept in sessions.db): a session
//  event item is published with event_id "<owner>:<item->seq>".
const char *
    reaper_outbox_owner (reaper_t *self);

//  A session event came back through the bus with event_id: if it is one
//  of ours, its outbox row is deleted at the next reaper_commit.
void
    reaper_echo (reaper_t *self, const char *event_id);

//  True while writes wait for reaper_commit (a model change or a tick
//  made some): the caller should not sleep before committing.
bool
    reaper_uncommitted (reaper_t *self);

//  What memory holds, as text (sessions by id with their state, job,
//  cleanup stage, liveness and long-lived entries; jobs by target; groups;
//  the counters), for tests: equal texts, equal states. Caller frees.
char *
    reaper_dump (reaper_t *self);

//  True once presence is known (see reaper_bus_live).
bool
    reaper_presence_known (reaper_t *self);

//  Sessions in state (ACTIVE, TERMINATING: in memory; CLOSED: retained rows).
//  Sessions a job took but not yet marked count as ACTIVE.
size_t
    reaper_count (reaper_t *self, Ep__SessionState state);

//  Sessions in cleanup not closed yet (the cleanup queue depth).
size_t
    reaper_queue_depth (reaper_t *self);

//  Cleanup jobs running.
size_t
    reaper_jobs (reaper_t *self);

void
    reaper_result_init (reaper_result_t *result, const char *request_id);
void
    reaper_result_clear (reaper_result_t *result);

#endif
