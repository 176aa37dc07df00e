/*  reaper_internal.h: the reaper's records, shared by the files of its
    state machine. Not an interface: reaper.h is the one the process and
    the tests use.

    A session that is not closed is one session_t: a hash entry by id, a
    link in the list of its router, of its identity and of its service (so
    a deletion finds its sessions without a scan), a liveness entry while
    it is ACTIVE and not in a cleanup, and a sweep item while a cleanup job
    holds it. Closing a session writes its row and frees all of that.

    Memory changes as each write is staged (later writes of the batch see
    it); the batch keeps a copy of each session and job it changes, as it
    was, and puts the copies back if its commit fails (batch.c). So every
    function that changes a session or a job calls reaper_touch (or
    reaper_touch_job) before it changes anything, and a group emptied by a
    batch is deleted only when the batch ends (its sessions may come back).

    The state machine is split by concern, one file each:
        reaper.c    life cycle (load, resume), the transaction, tick
        sessions.c  session records, their groups, counters staged for flush
        requests.c  open, close, heartbeat, ack (from routers, via the watchdog)
        reads.c     results, and get, list, cleanup answered from disk
        cleanup.c   cleanup jobs: what starts them, mark, CloseSessions, force
        warning.c   session.warning: sessions crossing --long-lived, once each
        presence.c  routers online (fleet), offline routers, quiet sessions,
                    each router's thresholds (cadences)
        outbox.c    events (durable: the outbox table) and commands, handed out
                    after the commit as ep_output items; echoes delete rows
        batch.c     what the open batch changed, undone if it does not commit

    Transitions and who makes them:
        open (router)                    -> ACTIVE              session.created
        close (router)                   ACTIVE|TERMINATING -> CLOSED  session.closed client-closed
        unheard T1 (liveness)            ACTIVE: probe via the router
        unheard T2 after a probe         ACTIVE -> CLOSED       session.reaped expired
        job takes it (deletion, offline) ACTIVE (pending) -> TERMINATING (batched)
                                                                session.terminating <reason>
        router acks the CloseSessions    TERMINATING -> CLOSED  session.closed <reason>
        job deadline                     -> CLOSED              session.reaped forced
        crosses --long-lived (once)      no transition          session.warning long-lived
*/
#ifndef REAPER_INTERNAL_H_INCLUDED
#define REAPER_INTERNAL_H_INCLUDED

#include "reaper.h"
#include "ep_log.h"
#include "cadences.h"
#include "fleet.h"
#include "liveness.h"
#include "longlived.h"
#include "sessiondb.h"
#include "sweep.h"

#define UNSEEN_RECHECK_MS   2000        //  how often a router absent from the view is looked at again
#define PROBE_PREFIX        "probe-"    //  command ids of probes (their acks mean "still held")

//  The things a session belongs to.
enum { G_ROUTER = 0, G_IDENTITY, G_SERVICE, G_KINDS };
extern const char *const reaper_group_types [G_KINDS];         //  "router", ...
extern const char *const reaper_deleted_reasons [G_KINDS];     //  "router-deleted", ...
extern const Ep__EntityType reaper_entity_types [G_KINDS];     //  in the model

//  Every close reason; a job counts its closed sessions by these.
#define REASONS             7
extern const char *const reaper_reasons [REASONS];
#define R_OFFLINE           "router-offline"
#define R_EXPIRED           "expired"
#define R_FORCED            "forced"
#define R_CLIENT            "client-closed"
#define R_LONG_LIVED        "long-lived"

typedef struct _group_t group_t;
typedef struct _session_t session_t;

//  A router, identity or service that open sessions refer to.
struct _group_t {
    char *id;                   //  its id
    int kind;                   //  G_*
    size_t count;               //  sessions in the list
    session_t *head;            //  its sessions
    bool online;                //  routers: held by a watchdog (fleet)
    int64_t online_since;       //  routers: liveness counts from here
    int64_t offline_since;      //  routers: offline (known) since, -1 if online
    int64_t evasive_ms;         //  routers: T1 of its sessions (cadences: learnt or fixed)
    int64_t expire_ms;          //  routers: T2 of its sessions
    bool emptied;               //  listed in reaper_t.emptied (deleted at the batch's end if empty)
};

//  A session that is not closed.
struct _session_t {
    liveness_entry_t live;      //  first: liveness hands entries back
    longlived_entry_t age;      //  until warned long-lived (warning.c)
    sweep_item_t *sweep;        //  while a cleanup job holds it
    group_t *groups [G_KINDS];  //  its router, identity, service
    session_t *next [G_KINDS];  //  in each group's list
    session_t *prev [G_KINDS];  //  in each group's list
    int64_t created_ms;         //  wall clock
    uint64_t bytes_rx;          //  cumulative, as last reported
    uint64_t bytes_tx;          //  cumulative, as last reported
    int32_t dirty;              //  slot in the dirty array, -1 when flushed
    uint32_t priority;          //  0 normal, higher cleaned up first (within a criticality)
    uint32_t batch;             //  the batch that last kept a copy of it (batch.c)
    uint8_t criticality;        //  Ep__Criticality of its service (a known value)
    uint8_t type;               //  Ep__SessionType
    uint8_t state;              //  Ep__SessionState on disk (ACTIVE or TERMINATING)
    char id [];                 //  chosen by the router
};

//  A running cleanup job.
typedef struct {
    char id [33];               //  job id
    const char *reason;         //  the close reason of acked sessions (static)
    int kind;                   //  G_*: what its target is
    char target [65];           //  the target's id
    uint64_t revision;          //  the model revision that deleted it (0: offline)
    int64_t started_ms;         //  wall clock
    int64_t deadline_ms;        //  wall clock
    uint64_t scheduled;         //  sessions taken
    uint64_t closed [REASONS];  //  sessions closed so far, by reason
    sweep_job_t *sweep;         //  its part in the planner
    uint32_t batch;             //  the batch that last kept a copy of it (batch.c)
} job_t;

//  What the open batch changed, as it was (batch.c).
typedef struct _undo_t undo_t;

struct _reaper_t {
    reaper_config_t config;     //  thresholds and batch sizes
    ep_store_t *store;          //  sessions.db (borrowed)
    sessiondb_t *db;            //  its tables
    liveness_t *liveness;       //  ACTIVE sessions not in cleanup
    longlived_t *longlived;     //  open sessions not warned long-lived yet
    fleet_t *fleet;             //  routers online
    cadences_t *cadences;       //  each router's heartbeat cadence and thresholds
    sweep_t *sweep;             //  the cleanup planner
    zhashx_t *sessions;         //  id -> session_t (key: the session's id)
    zhashx_t *groups [G_KINDS]; //  id -> group_t
    zhashx_t *tombstones [G_KINDS];     //  ids the model deleted
    zhashx_t *unseen;           //  router id -> next check (int64 ms): sessions opened
                                //  for a router absent from our view of the model
    uint64_t presence_revision; //  highest model revision a watchdog's presence reported
    zhashx_t *jobs;             //  id -> job_t (running)
    zhashx_t *offline;          //  router id -> group_t: offline routers with sessions
    zhashx_t *probes;           //  router id -> zlistx of session ids evasive this tick
    session_t **dirty;          //  sessions with unflushed counters
    size_t dirty_size;          //  entries used (some NULL)
    size_t dirty_capacity;      //  entries allocated
    char owner [80];            //  the stable id of our events' ids (sessions.db's meta)
    size_t outbox_count;        //  rows in the outbox table (staged ones included)
    size_t outbox_staged;       //  of them, written by the open transaction
    int64_t sent_seq;           //  rows up to this one were handed out (0: none since a rewind)
    size_t in_flight;           //  of those, not echoed yet
    int64_t oldest_seq;         //  the oldest row in flight, as last looked at
    int64_t oldest_since;       //  since when it was (monotonic ms)
    bool outbox_full;           //  opens are refused (logged once)
    zlistx_t *acks;             //  seqs echoed, deleted at the next commit (int64_t *)
    bool acks_applied;          //  the batch deletes their rows (forgotten if it commits)
    ep_output_t *handout;       //  the session event being handed out (outbox.c)
    ep_output_t *commands;      //  CloseSessions to routers, staged then ready (outbox.c)
    ep_output_t *probe_out;     //  ProbeSessions, ready at once (a probe changes nothing durable)
    ep_model_view_t *view;      //  the model, once followed (borrowed)
    int64_t wall_offset;        //  wall = monotonic + offset
    int64_t known_at;           //  presence known from then on (INT64_MAX: bus not live yet)
    bool known;                 //  presence is known
    bool in_txn;                //  a transaction is open
    //  The batch (batch.c): every change since the last commit, undone if it fails
    bool loading;               //  reaper_new is loading: no copies kept (a failure fails the load)
    bool prune_held;            //  reaper_hold_prune: a shard is half in the store
    bool batch_open;            //  something changed since the last commit
    uint32_t batch;             //  the open batch's number (session_t.batch, job_t.batch)
    undo_t *undo;               //  what it changed, as it was
    bool failed;                //  a write of the batch failed: it is undone at the commit
    char failure [768];         //  why the last batch failed (the store's message)
    ep_store_fault_t fault;     //  its kind
    bool flushed;               //  the batch wrote the dirty counters (cleared if it commits)
    zlistx_t *emptied;          //  group_t emptied by the batch, deleted at its end if still empty
    zhashx_t *wanted;           //  "kind/target" -> reaper_want_t: cleanups to start again
    ep_store_fault_t degraded;  //  NONE, or FULL / FAILING: the store takes no writes now
    char degraded_why [768];    //  then why (the store's message)
    int64_t next_flush;         //  counters flush due
    int64_t next_prune;         //  retention pruning due
    size_t active;              //  sessions ACTIVE (pending ones included)
    size_t terminating;         //  sessions TERMINATING
    int64_t closed;             //  CLOSED rows retained
    //  Metrics (NULL without a registry)
    ep_gauge_t *by_state;       //  edgeplane_sessions{state}
    ep_series_t *depth;         //  edgeplane_reaper_cleanup_queue_depth
    ep_series_t *running;       //  edgeplane_reaper_cleanup_jobs
    ep_series_t *online;        //  edgeplane_reaper_routers_online
    ep_counter_t *closed_total; //  edgeplane_reaper_closed_total{reason}
    ep_histogram_t *latency;    //  edgeplane_reaper_reap_latency_seconds{reason}
    ep_counter_t *commands_total;   //  edgeplane_reaper_commands_total{kind}
    ep_series_t *long_lived;    //  edgeplane_reaper_long_lived_total (session.warning)
    ep_gauge_t *evasive;        //  edgeplane_reaper_session_evasive_seconds{router}
    ep_gauge_t *expire;         //  edgeplane_reaper_session_expire_seconds{router}
    ep_series_t *outbox_depth;  //  edgeplane_outbox_events
    ep_series_t *outbox_refused;    //  edgeplane_outbox_refused_total
};

//  Wall clock at monotonic now.
static inline int64_t
reaper_wall (reaper_t *self, int64_t now)
{
    return now + self->wall_offset;
}

static inline bool
reaper_valid_id (const char *id)
{
    return id && ep_id_valid (id);
}

//  A cleanup to start once writes are taken (a deletion's, while the store
//  took none, or undone with its batch).
typedef struct {
    int kind;                   //  G_*
    char target [65];           //  its target
    const char *reason;         //  a deletion's reason (static)
    uint64_t revision;          //  the model revision that deleted it
} reaper_want_t;

//  reaper.c: the transaction and close reasons.
//  Opens the transaction on the first write of a batch; false (the batch
//  failed, see reaper_failed) if it cannot.
bool
    reaper_begin (reaper_t *self);
//  Records a write's outcome; a failure fails the batch.
void
    reaper_wrote (reaper_t *self, int rc);
//  The batch failed (what: the action, the store's error follows): its
//  commit undoes it. The first reason is kept.
void
    reaper_failed (reaper_t *self, const char *what);
//  The static reason named text (forced if unknown), and its index.
const char *
    reaper_reason (const char *text);
size_t
    reaper_reason_index (const char *reason);

//  sessions.c: session records.
void
    reaper_group_free (void **item);
//  A session in memory (its row already written or loaded).
session_t *
    reaper_session_new (reaper_t *self, const sessiondb_row_t *row, int64_t now);
//  Takes session out of memory (hash, groups, heaps, planner, dirty set)
//  and frees it, writing nothing.
void
    reaper_session_drop (reaper_t *self, session_t *session);
//  Links a session built from a copy (batch.c) into its groups and the hash.
void
    reaper_session_link (reaper_t *self, session_t *session);
//  Deletes the groups the batch emptied that are still empty.
void
    reaper_groups_sweep (reaper_t *self);
//  Stages the session's counters for the next flush.
void
    reaper_dirty (reaper_t *self, session_t *session);
//  The row of an in-memory session, as a reply shows it.
void
    reaper_row_of (reaper_t *self, session_t *session, sessiondb_row_t *row, const char *job_id);
//  Closes a session: its row, its event, its job's count; frees it.
void
    reaper_finish (reaper_t *self, session_t *session, const char *reason, const char *event_type,
                   int64_t now);
//  Writes the staged counters.
void
    reaper_flush (reaper_t *self, int64_t now);

//  reads.c: results.
void
    reaper_fail (reaper_result_t *result, Ep__Status__Code code, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));
//  Appends a session (from a row) to the reply.
void
    reaper_reply_row (reaper_result_t *result, const sessiondb_row_t *row);

//  cleanup.c: jobs and their phases.
job_t *
    reaper_job_of (session_t *session);
job_t *
    reaper_job_alloc (reaper_t *self, const char *id, const char *reason, int kind, const char *target,
                      uint64_t revision, int64_t started_ms, int64_t deadline_ms);
//  Starts the cleanup of every open session of (kind, target) that no job
//  holds yet. Returns the job, or NULL if there was nothing to clean.
job_t *
    reaper_job_start (reaper_t *self, int kind, const char *target, const char *reason,
                      uint64_t revision, int64_t now);
void
    reaper_job_finish (reaper_t *self, job_t *job, int64_t now);
//  Hands session to job (marked: TERMINATING on disk already).
void
    reaper_take (reaper_t *self, job_t *job, session_t *session, bool marked, int64_t now);
//  Puts session in job's part of the planner (pending, or marked).
void
    reaper_sweep_add (reaper_t *self, job_t *job, session_t *session, bool marked);
//  A cleanup (kind, target, reason, revision) to start when writes are taken.
void
    reaper_want (reaper_t *self, int kind, const char *target, const char *reason, uint64_t revision);
//  Starts the cleanups wanted (see reaper_want).
void
    reaper_wanted (reaper_t *self, int64_t now);
//  Phase 1: the most urgent pending sessions become TERMINATING.
void
    reaper_mark (reaper_t *self, int64_t now);
//  Phase 2: CloseSessions to the routers, new and resent.
void
    reaper_send (reaper_t *self, int64_t now);
//  Leftovers of jobs past their deadline are forced. Returns how many.
size_t
    reaper_force (reaper_t *self, int64_t now);
//  Routers sessions were opened for while our view did not hold them.
void
    reaper_unseen (reaper_t *self, int64_t now);

//  Puts router, absent from the view, on the unseen list (looked at from
//  `at` on), unless it is there already.
void
    reaper_unseen_add (reaper_t *self, const char *router, int64_t at);

//  warning.c: session.warning long-lived, once per session.
//  Tracks a session opened or loaded (not warned yet) until it crosses.
void
    reaper_age_track (reaper_t *self, session_t *session);
//  Warns session now if it has crossed and was not warned yet.
void
    reaper_warn_if_due (reaper_t *self, session_t *session, int64_t now);
//  Warns the sessions that crossed by now, at most a batch. Returns false
//  if more are due now.
bool
    reaper_long_lived (reaper_t *self, int64_t now);
//  When the next session crosses (monotonic ms; INT64_MAX: none).
int64_t
    reaper_long_lived_due (reaper_t *self);

//  presence.c: routers online and quiet sessions.
void
    reaper_fleet_change (void *arg, const char *router, bool online, int64_t now);
bool
    reaper_reachable (void *arg, const char *router);
//  Presence is known from now on: routers not held are offline as of now.
void
    reaper_presence_learned (reaper_t *self, int64_t now);
//  Evasive sessions are probed, expired ones reaped. Returns false if
//  more verdicts are due now.
bool
    reaper_liveness (reaper_t *self, int64_t now);
//  Routers offline longer than the grace get their sessions cleaned up.
void
    reaper_offline (reaper_t *self, int64_t now);
//  liveness_thresholds_fn (adaptive): a session's T1 and T2 are its router's.
void
    reaper_session_thresholds (void *arg, liveness_entry_t *entry, int64_t *evasive_ms,
                               int64_t *expire_ms);
//  A router's group takes its thresholds in force (and the gauges show them).
void
    reaper_thresholds (reaper_t *self, group_t *router);
//  A heartbeat message from router: a beat of its cadence if it began a
//  batch, which may change its thresholds (a change beyond 2x is logged).
void
    reaper_router_beat (reaper_t *self, const char *router, int64_t now);
//  The model deleted router: its cadence is forgotten.
void
    reaper_router_forget (reaper_t *self, const char *router);

//  outbox.c: what goes out after the commit.
void
    reaper_event (reaper_t *self, session_t *session, const char *type, const char *reason,
                  int64_t now);
//  Queues a close or probe command for router with ids [0 .. count).
void
    reaper_command (reaper_t *self, const char *router, const char *command_id, bool probe,
                    const char *reason, int64_t deadline_ms, const char *const *ids, size_t count);
//  The transaction committed: what it staged may be handed out.
void
    reaper_outbox_commit (reaper_t *self);
//  The transaction failed: what it staged is dropped (the echoes wait for
//  the next commit).
void
    reaper_outbox_abort (reaper_t *self);
//  True (counted, logged once) if the outbox holds outbox_max events:
//  opens are refused until the bus takes the backlog.
bool
    reaper_outbox_full (reaper_t *self);
//  Deletes the rows echoed since the last call (in the transaction, which
//  it opens if need be). True if it wrote.
bool
    reaper_outbox_acks (reaper_t *self);
//  Rows in flight too long are handed out again. Returns when next due.
int64_t
    reaper_outbox_tick (reaper_t *self, int64_t now);

//  batch.c: what the open batch changed, as it was.
undo_t *
    reaper_undo_new (void);
void
    reaper_undo_destroy (undo_t **self_p);
//  Opens the batch at its first change: the counters are copied.
void
    reaper_batch_open (reaper_t *self);
//  session is about to change for the first time in this batch: a copy
//  of it as it is now is kept. No-op while loading.
void
    reaper_touch (reaper_t *self, session_t *session);
//  session was opened by this batch.
void
    reaper_touch_new (reaper_t *self, session_t *session);
//  session was just taken off the long-lived heap, about to be warned: as
//  reaper_touch, with it still to warn.
void
    reaper_touch_crossed (reaper_t *self, session_t *session);
//  job is about to change (its counts, or its end), or was just started
//  by this batch (created).
void
    reaper_touch_job (reaper_t *self, job_t *job, bool created);
//  router was taken off the offline list (offline since since).
void
    reaper_touch_offline (reaper_t *self, const char *router, int64_t since);
//  A close of this batch, for the metrics once it commits (latency: from
//  its job's start, seconds; NAN without a job).
void
    reaper_batch_closed (reaper_t *self, const char *reason, double latency);
//  A long-lived warning of this batch, counted once it commits.
void
    reaper_batch_warned (reaper_t *self);
//  The batch committed: its copies are dropped, its metrics counted.
void
    reaper_batch_keep (reaper_t *self);
//  The batch did not commit: every session and job it changed is put back
//  as it was, with what memory learnt since (last-seen, counters) kept;
//  the counters too; the cleanups it started are wanted again.
void
    reaper_batch_undo (reaper_t *self);

#endif
