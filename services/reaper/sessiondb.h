/*  sessiondb.h: the reaper's tables in sessions.db.

    What is durable, and only that: every session's row (written when it
    opens, when it turns TERMINATING, when it closes; counters and
    last-seen are flushed periodically, not per heartbeat; the long-lived
    warning is noted when raised) and every
    cleanup job (written when it starts and when it is done), so a restart
    mid-cleanup can resume it; and the event outbox: every session event,
    written with the change it reports, until the bus echoes it back. All writes happen inside the caller's
    transaction (reaper.c groups them); nothing here begins or commits.
    Functions return 0 or -1 (see ep_store_last_error).
*/
#ifndef SESSIONDB_H_INCLUDED
#define SESSIONDB_H_INCLUDED

#include "ep_prelude.h"
#include "ep_store.h"
#include "sessions.pb-c.h"

typedef struct _sessiondb_t sessiondb_t;

//  The schema, for ep_store_new.
extern const char *const sessiondb_migrations [];
extern const size_t sessiondb_migrations_count;

//  One session row. Strings are borrowed.
typedef struct {
    const char *id;             //  chosen by the router
    const char *router_id;      //  its router
    const char *identity_id;    //  its client
    const char *service_id;     //  its service
    int type;                   //  Ep__SessionType
    int state;                  //  Ep__SessionState
    uint32_t priority;          //  0 normal, higher cleaned up first (within a criticality)
    int criticality;            //  Ep__Criticality of its service (a known value)
    bool warned;                //  session.warning long-lived was raised for it
    int64_t created_ms;         //  wall clock
    int64_t last_seen_ms;       //  wall clock, as last flushed
    uint64_t bytes_rx;          //  cumulative, as last flushed
    uint64_t bytes_tx;          //  cumulative, as last flushed
    const char *close_reason;   //  CLOSED: why
    int64_t closed_ms;          //  CLOSED: when
    const char *job_id;         //  the cleanup job that took it, or NULL
} sessiondb_row_t;

//  One cleanup job row. Strings are borrowed.
typedef struct {
    const char *id;             //  job id
    const char *reason;         //  router-deleted, ..., router-offline
    const char *target_type;    //  router, identity, service
    const char *target_id;      //  the deleted (or offline) entity
    uint64_t revision;          //  the model revision that deleted it, 0 for presence
    int64_t started_ms;         //  wall clock
    int64_t deadline_ms;        //  wall clock
    uint64_t scheduled;         //  sessions it took
    bool done;                  //  finished
    int64_t finished_ms;        //  when
    const char *closed;         //  done: JSON object reason -> count
} sessiondb_job_t;

typedef void (sessiondb_row_fn) (void *arg, const sessiondb_row_t *row);
typedef void (sessiondb_job_fn) (void *arg, const sessiondb_job_t *job);
typedef void (sessiondb_count_fn) (void *arg, const char *reason, uint64_t count);
typedef void (sessiondb_outbox_fn) (void *arg, int64_t seq, const char *topic, const void *body,
                                    size_t size);

//  The tables of store (borrowed).
sessiondb_t *
    sessiondb_new (ep_store_t *store);

void
    sessiondb_destroy (sessiondb_t **self_p);

//  What a write changed, for the etcd mode's batch (reapbatch.h), which
//  reads the rows back at the commit: a journal, not a second write path.
typedef enum {
    SESSIONDB_SESSION,          //  id opened or warned
    SESSIONDB_CLOSED,           //  id closed; other: the job it had before, or NULL
    SESSIONDB_MARK,             //  id marked TERMINATING by job other
    SESSIONDB_COUNTERS,         //  id's counters and last-seen flushed
    SESSIONDB_PRUNED,           //  id (of router other) deleted, CLOSED past retention
    SESSIONDB_JOB,              //  job id started or finished
    SESSIONDB_JOB_PRUNED,       //  job id deleted (other: its router if a router's job)
    SESSIONDB_OUTBOX,           //  outbox row seq added
    SESSIONDB_OUTBOX_ACK,       //  outbox row seq deleted (echoed)
    SESSIONDB_UNJOURNALED       //  rows changed untold (a router forgotten, the journal
                                //  set again): what was derived from them is stale
} sessiondb_change_t;

typedef void (sessiondb_journal_fn) (void *arg, sessiondb_change_t change, const char *id,
                                     const char *other, int64_t seq);

//  Every write that succeeds from now on is told to fn (NULL: none, the
//  embedded mode). Pruning then reads the ids it deletes first, a close
//  the job its row had. A journal set is told UNJOURNALED (the tables may
//  have changed untold meanwhile); the first also indexes the tables for
//  the batch's read-backs.
void
    sessiondb_set_journal (sessiondb_t *self, sessiondb_journal_fn *fn, void *arg);

//  Writes a new session row.
int
    sessiondb_insert (sessiondb_t *self, const sessiondb_row_t *row);

//  The session turned TERMINATING, taken by job_id.
int
    sessiondb_mark (sessiondb_t *self, const char *id, const char *job_id);

//  The session was warned long-lived (raised once, restarts included).
int
    sessiondb_warned (sessiondb_t *self, const char *id);

//  The session closed: reason, time, final counters, the job if any.
int
    sessiondb_close (sessiondb_t *self, const char *id, const char *reason, int64_t closed_ms,
                     int64_t last_seen_ms, uint64_t bytes_rx, uint64_t bytes_tx,
                     const char *job_id);

//  Flushes counters and last-seen of an open session.
int
    sessiondb_counters (sessiondb_t *self, const char *id, int64_t last_seen_ms,
                        uint64_t bytes_rx, uint64_t bytes_tx);

//  Calls fn for every session not CLOSED.
int
    sessiondb_load_open (sessiondb_t *self, sessiondb_row_fn *fn, void *arg);

//  Calls fn with the row of session id if it exists; returns 1 if it
//  did, 0 if not, -1 on error.
int
    sessiondb_get (sessiondb_t *self, const char *id, sessiondb_row_fn *fn, void *arg);

//  Calls fn for at most limit rows matching the filter's router, identity,
//  service and state (each when set), with ids above after ("" for the
//  first page), in id order. Returns the rows given, or -1.
int
    sessiondb_list (sessiondb_t *self, const Ep__SessionFilter *filter, const char *after,
                    size_t limit, sessiondb_row_fn *fn, void *arg);

//  Sessions in state (CLOSED rows are the ones retained).
int64_t
    sessiondb_count (sessiondb_t *self, int state);

//  Deletes at most limit CLOSED rows closed before before_ms, and done
//  jobs finished before it. Returns the sessions deleted, or -1.
int
    sessiondb_prune (sessiondb_t *self, int64_t before_ms, size_t limit);

//  Writes a new job row (not done).
int
    sessiondb_job_insert (sessiondb_t *self, const sessiondb_job_t *job);

//  Marks job id done at finished_ms with its counts (JSON object).
int
    sessiondb_job_finish (sessiondb_t *self, const char *id, int64_t finished_ms,
                          const char *closed_json);

//  Calls fn for every job not done.
int
    sessiondb_jobs_running (sessiondb_t *self, sessiondb_job_fn *fn, void *arg);

//  Calls fn for the newest jobs (at most limit) of a target, or for the
//  job id when target_type is NULL. Returns the jobs given, or -1.
int
    sessiondb_jobs_find (sessiondb_t *self, const char *target_type, const char *target_id,
                         const char *id, size_t limit, sessiondb_job_fn *fn, void *arg);

//  Calls fn with each close reason of job id's closed sessions and its count.
int
    sessiondb_job_counts (sessiondb_t *self, const char *id, sessiondb_count_fn *fn, void *arg);

//  Calls fn for each router of job id's sessions with how many it took
//  there (every one is marked or closed) and, by close reason, how many
//  of those closed (reason NULL: still TERMINATING).
typedef void (sessiondb_job_router_fn) (void *arg, const char *router_id, const char *reason,
                                        uint64_t count);
int
    sessiondb_job_routers (sessiondb_t *self, const char *id, sessiondb_job_router_fn *fn,
                           void *arg);

//  Calls fn for every session of router_id not CLOSED.
int
    sessiondb_router_open (sessiondb_t *self, const char *router_id, sessiondb_row_fn *fn,
                           void *arg);

//  Calls fn with the id of every session of router_id not CLOSED, in no
//  set order, while fn returns true.
typedef bool (sessiondb_id_fn) (void *arg, const char *id);
int
    sessiondb_router_open_ids (sessiondb_t *self, const char *router_id, sessiondb_id_fn *fn,
                               void *arg);

//  The etcd mode: deletes router_id's sessions and its router's jobs from
//  the cache (its shard went to another instance, which has them).
//  Told to the journal as UNJOURNALED only: etcd keeps them.
int
    sessiondb_forget_router (sessiondb_t *self, const char *router_id);

//  The etcd mode: every router the cache holds sessions or router jobs
//  of, to fn (a shard read again is cleared of its routers first).
typedef void (sessiondb_router_fn) (void *arg, const char *router_id);
int
    sessiondb_routers (sessiondb_t *self, sessiondb_router_fn *fn, void *arg);

//  The reaper's stable id (the owner of its outbox's event ids): the one
//  sessions.db holds, or candidate, stored, at the first start. Copies it
//  to owner (size bytes).
int
    sessiondb_owner (sessiondb_t *self, const char *candidate, char *owner, size_t size);

//  Appends a packed Ep__Event to the outbox. Returns its seq (> 0, never
//  reused), or -1.
int64_t
    sessiondb_outbox_add (sessiondb_t *self, const char *topic, const void *body, size_t size);

//  Calls fn with the outbox rows of the lowest seqs above after, at most
//  limit, in seq order. Returns the rows given, or -1.
int
    sessiondb_outbox_next (sessiondb_t *self, int64_t after, size_t limit, sessiondb_outbox_fn *fn,
                           void *arg);

//  Deletes the outbox rows first .. last (their events came back; echoes
//  mostly come in order, so a run is one statement). Returns the rows
//  deleted (fewer: some already gone), or -1.
int
    sessiondb_outbox_ack (sessiondb_t *self, int64_t first, int64_t last);

//  The lowest seq in the outbox (0: empty), or -1.
int64_t
    sessiondb_outbox_first (sessiondb_t *self);

//  Rows in the outbox, or -1.
int64_t
    sessiondb_outbox_count (sessiondb_t *self);

#endif
