/*  ep_adopt.h: a sharded service's shard news, and the shards it reads
    adopted in bounded steps (docs/shards.md, "Adoption in steps").

    A service on shards (the terminators, the reaper) hears LOADED (a shard
    is this instance's and read from etcd: its records go into memory) and
    DROPPED (a shard is no longer this instance's: forget it). Taking tens
    of thousands of records in one turn of the loop outlasts the lease's
    margin on a slow machine (no keepalive, no watch, no request served
    meanwhile), so a shard is adopted a step at a time, at most `step`
    records per turn, the loop polling without waiting in between.

    Pure: news in, actions out; no sockets, no clocks. Per turn, between
    batches, the service takes every action ep_adopt_next gives:

        DROP    a shard lost: forget it now (never behind an adoption,
                whose shard it is not: a lost shard's records must not
                linger for the core to write)
        ABORT   the adoption under way is void (its shard was dropped,
                lost or read again since): undo what its steps took
        STEP    at most one per turn: take records [from, to) of the
                shard's total; first: forget what memory held of the shard
                before; last: then the shard is adopted (ready)

    Order: a DROPPED voids the LOADED news of its shard queued before it
    (they are older reads); LOADED news are adopted one shard at a time, in
    the order they came, each checked (valid) before every step, so a shard
    lost or read again meanwhile is never made ready from a stale read.
    The records come from one range read at one revision; the shard's
    records change only through its owner, this instance, which writes
    none of a shard it has not adopted (its requests are refused,
    retriable, and its internal work waits), so no change can come in
    between the steps: there is nothing to merge.
*/
#ifndef EP_ADOPT_H_INCLUDED
#define EP_ADOPT_H_INCLUDED

#include "ep_prelude.h"
#include "ep_metrics.h"

#define EP_ADOPT_RECORDS    2000    //  records per step unless EDGEPLANE_ADOPT_STEP says

typedef struct _ep_adopt_t ep_adopt_t;

typedef enum {
    EP_ADOPT_DROP,              //  a shard lost: forget it
    EP_ADOPT_ABORT,             //  the adoption under way is void: undo its steps
    EP_ADOPT_STEP               //  take records [from, to) of the shard
} ep_adopt_kind_t;

typedef struct {
    ep_adopt_kind_t kind;       //  what to do
    int shard;                  //  to which shard
    int64_t revision;           //  the owner key's create revision it was read or lost under
    const char *why;            //  DROP: a sentence for the log
    void *payload;              //  STEP: what the LOADED news carried (kept here)
    size_t from, to;            //  STEP: the records of this step
    size_t total;               //  STEP: the shard's records
    size_t steps;               //  STEP: the steps of this adoption so far, this one included
    bool first;                 //  STEP: the adoption's first: forget what memory held
    bool last;                  //  STEP: its last: the shard is adopted after it
} ep_adopt_action_t;

//  True if shard is still this instance's, read under revision.
typedef bool (ep_adopt_valid_fn) (void *arg, int shard, int64_t revision);

typedef struct {
    const char *service;        //  the metric's label ("terminators", "reaper")
    size_t step;                //  records per step; 0: ep_adopt_step_env ()
    int64_t slow_us;            //  test hook: a step sleeps this long per record; 0: EDGEPLANE_ADOPT_SLOW_US
    ep_metrics_t *metrics;      //  edgeplane_shard_adoption_steps_total goes here, or NULL
    ep_adopt_valid_fn *valid;   //  the ownership check before each step
    void *arg;                  //  its argument
    czmq_destructor *destructor;    //  a LOADED payload's, or NULL
} ep_adopt_config_t;

ep_adopt_t *
    ep_adopt_new (const ep_adopt_config_t *config);

void
    ep_adopt_destroy (ep_adopt_t **self_p);

//  EDGEPLANE_ADOPT_STEP (a positive count; a test hook: a tiny step
//  exercises the stepping with few records), else EP_ADOPT_RECORDS.
size_t
    ep_adopt_step_env (void);

//  EDGEPLANE_ADOPT_SLOW_US (microseconds, a test hook: each record of a
//  step handed out costs this much more, a slow machine simulated, so a
//  test shows an adoption longer than the lease with few records), else 0.
int64_t
    ep_adopt_slow_env (void);

//  A shard read under revision, total records, payload (taken).
void
    ep_adopt_loaded (ep_adopt_t *self, int shard, int64_t revision, size_t total, void *payload);

//  A shard lost (why is copied).
void
    ep_adopt_dropped (ep_adopt_t *self, int shard, int64_t revision, const char *why);

//  A turn of the loop begins: one STEP may be handed out again.
void
    ep_adopt_turn (ep_adopt_t *self);

//  The next action, true; false when none is due this turn. An action's
//  strings and payload stay valid until the next call.
bool
    ep_adopt_next (ep_adopt_t *self, ep_adopt_action_t *action);

//  True while a LOADED shard waits or is half adopted: the loop polls
//  without waiting, and nothing may act on the shard's partial records.
bool
    ep_adopt_pending (ep_adopt_t *self);

//  The shard being adopted (some steps taken, not the last), or -1.
int
    ep_adopt_shard (ep_adopt_t *self);

//  Steps handed out since new.
uint64_t
    ep_adopt_steps (ep_adopt_t *self);

#endif
