/*  sweep.h: the two-phase cleanup planner, as a pure state machine.

    When a router, identity or service is deleted (or a router stays
    offline too long), every affected session goes through a job: it is
    marked TERMINATING (durably, in batches), a CloseSessions carrying it
    goes to its router, and the router's ack closes it; what is still open
    at the job's deadline is forced. This module decides the order and the
    pace of that work and nothing else: no store, no sockets, no clocks.

    Order: one priority queue over every pending item of every job (phase
    1), and one per router and job over the marked items waiting to be sent
    (phase 2: a command carries one job's sessions, so one reason and one
    deadline; the router's most urgent item picks the job), all ordered
    by urgency (higher first: the caller's, the reaper puts a session's
    criticality and priority in it), then high traffic, then oldest, then
    by id. Pace: a router gets at most `window` commands
    it has neither answered nor let time out, of at most `chunk` ids each,
    so a router with 100,000 sessions is not flooded and the watchdog's
    output queue to it stays bounded. An unanswered command, or the ids an
    answer did not close, are sent again (in a new command with a new id)
    after retry_ms, doubling up to retry_max_ms, while the router is online.

    Items and jobs are owned here; each item points back to its owner (the
    session) and borrows the owner's id string, so the owner must outlive
    its item (call sweep_done before freeing it).
*/
#ifndef SWEEP_H_INCLUDED
#define SWEEP_H_INCLUDED

#include "ep_prelude.h"

typedef struct _sweep_t sweep_t;
typedef struct _sweep_job_t sweep_job_t;
typedef struct _sweep_item_t sweep_item_t;
typedef struct _sweep_command_t sweep_command_t;

typedef struct {
    size_t window;              //  commands a router has not answered, at most
    size_t chunk;               //  session ids per command, at most
    int64_t retry_ms;           //  first resend of what was not closed
    int64_t retry_max_ms;       //  resend interval cap (doubling)
} sweep_config_t;

//  Where an item is.
typedef enum {
    SWEEP_PENDING = 1,          //  taken by a job, not durable yet
    SWEEP_MARKED,               //  TERMINATING on disk, waiting to be sent
    SWEEP_SENT                  //  in a command the router has not closed yet
} sweep_stage_t;

//  True if commands can reach router now (it is online).
typedef bool (sweep_online_fn) (void *arg, const char *router);

sweep_t *
    sweep_new (const sweep_config_t *config, sweep_online_fn *online, void *arg);

//  Destroys every job, item and command.
void
    sweep_destroy (sweep_t **self_p);

//  A new job named id (copied) whose leftovers are forced at deadline
//  (monotonic ms). user is the caller's (borrowed).
sweep_job_t *
    sweep_job_new (sweep_t *self, const char *id, int64_t deadline, void *user);

//  Ends a job that has no items left.
void
    sweep_job_end (sweep_t *self, sweep_job_t **job_p);

const char *
    sweep_job_id (sweep_job_t *job);
void *
    sweep_job_user (sweep_job_t *job);
int64_t
    sweep_job_deadline (sweep_job_t *job);
//  Items of the job not done yet.
size_t
    sweep_job_items (sweep_job_t *job);

//  Adds the session owner (id and router borrowed/copied as said above)
//  to job with its ordering keys. marked: already TERMINATING on disk (a
//  job resumed after a restart), so it skips phase 1.
sweep_item_t *
    sweep_add (sweep_t *self, sweep_job_t *job, void *owner, const char *id,
               const char *router, uint64_t urgency, uint64_t traffic, int64_t created,
               bool marked);

//  The item is finished with (its session closed, whatever the reason):
//  it leaves every queue and command. Nulls *item_p.
void
    sweep_done (sweep_t *self, sweep_item_t **item_p);

void *
    sweep_item_owner (sweep_item_t *item);
sweep_job_t *
    sweep_item_job (sweep_item_t *item);
sweep_stage_t
    sweep_item_stage (sweep_item_t *item);

//  Phase 1: takes up to max pending items, most urgent first, into out.
//  The caller marks them durably, then calls sweep_marked for each.
size_t
    sweep_take_pending (sweep_t *self, sweep_item_t **out, size_t max);
void
    sweep_marked (sweep_t *self, sweep_item_t *item);

//  Phase 2: the next command to send now (new, or a resend), or NULL.
//  Borrowed: valid until the next call that changes the planner.
sweep_command_t *
    sweep_next_command (sweep_t *self, int64_t now);

const char *
    sweep_command_id (sweep_command_t *command);
const char *
    sweep_command_router (sweep_command_t *command);
sweep_job_t *
    sweep_command_job (sweep_command_t *command);
size_t
    sweep_command_size (sweep_command_t *command);
//  The id of the i-th session in the command (0 <= i < size).
const char *
    sweep_command_session (sweep_command_t *command, size_t i);
//  1 for the first send of these ids, 2 for the first resend, ...
uint32_t
    sweep_command_attempt (sweep_command_t *command);

//  The router answered command_id: it leaves the router's window (its ids
//  that the answer did not close are resent later). Returns false if no
//  such command is outstanding.
bool
    sweep_answered (sweep_t *self, const char *command_id);

//  The router came (back) online: what it has not closed is resent now.
void
    sweep_router_back (sweep_t *self, const char *router, int64_t now);

//  An item whose job's deadline has passed (to be forced), or NULL.
sweep_item_t *
    sweep_next_forced (sweep_t *self, int64_t now);

//  When the planner next has work (<= now: work now), INT64_MAX if none.
int64_t
    sweep_due (sweep_t *self, int64_t now);

//  Items not done (the cleanup queue depth), and those still pending.
size_t
    sweep_size (sweep_t *self);
size_t
    sweep_pending (sweep_t *self);

//  Commands outstanding (sent, not fully closed).
size_t
    sweep_commands (sweep_t *self);

#endif
