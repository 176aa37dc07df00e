/*  liveness.h: which sessions have gone quiet, as a pure state machine.

    Two thresholds, like zyre's peers: a session unheard for evasive_ms is
    evasive (the reaper probes it through its router); unheard for
    expire_ms, with a probe sent at least expire_ms - evasive_ms earlier, it
    is expired (reaped). Routers send heartbeats for thousands of sessions at
    a time, so hearing a session must be cheap: liveness_heard only stamps
    the entry. The entries sit in a binary min-heap ordered by
    when they next need a look; when the top comes due it is judged against
    its last-heard time and either rescheduled (it was heard meanwhile: one
    O(log n) move per session per evasive period at most) or reported. No
    tick ever scans the sessions. (Hearing a session that was probed moves
    it in the heap, O(log n): probed sessions are few.)

    Silence counts only from a floor the caller gives per entry (when its
    router was last seen coming online, or when the reaper restarted), and
    not at all while the caller says "paused" (presence not known yet, or
    the router offline): then the entry is looked at again evasive_ms later.
    Entries are embedded in the caller's records; times are monotonic ms.

    The two thresholds are the tracker's own, or each entry's when the
    caller gives a thresholds callback (the reaper's adaptive liveness: its
    router's, learnt from that router's heartbeat cadence). The callback is
    asked whenever an entry is scheduled or judged, so a change of an
    entry's thresholds applies at its next look: never earlier than the new
    thresholds allow, and at most one old evasive period late. No scan, no
    copy per entry.
*/
#ifndef LIVENESS_H_INCLUDED
#define LIVENESS_H_INCLUDED

#include "ep_prelude.h"

typedef struct _liveness_t liveness_t;

//  One tracked session, embedded in the caller's record. Zero it before
//  the first liveness_track.
typedef struct {
    int64_t deadline;           //  when the heap looks at it next
    int64_t seen;               //  last heard (monotonic ms)
    int64_t probed;             //  when it was last reported evasive (INT64_MIN: never)
    uint32_t index;             //  position in the heap + 1; 0 when not tracked
} liveness_entry_t;

//  What liveness_next reports about an entry.
typedef enum {
    LIVENESS_EVASIVE = 1,       //  probe it; the entry stays tracked
    LIVENESS_EXPIRED            //  reap it; the entry is no longer tracked
} liveness_verdict_t;

//  The floor for an entry: silence counts from max(seen, floor). Return
//  LIVENESS_PAUSED to not judge the entry now.
#define LIVENESS_PAUSED INT64_MAX
typedef int64_t (liveness_floor_fn) (void *arg, liveness_entry_t *entry);

//  The two thresholds of an entry (0 < *evasive_ms < *expire_ms).
typedef void (liveness_thresholds_fn) (void *arg, liveness_entry_t *entry, int64_t *evasive_ms,
                                       int64_t *expire_ms);

//  A tracker with the two thresholds (0 < evasive_ms < expire_ms).
liveness_t *
    liveness_new (int64_t evasive_ms, int64_t expire_ms);

//  From now on each entry has the thresholds fn gives for it (arg passed
//  back), instead of the tracker's. Set it before tracking anything.
void
    liveness_set_thresholds (liveness_t *self, liveness_thresholds_fn *fn, void *arg);

//  Destroys the heap (the entries are the caller's, untouched).
void
    liveness_destroy (liveness_t **self_p);

//  Starts tracking entry, heard now.
void
    liveness_track (liveness_t *self, liveness_entry_t *entry, int64_t now);

//  Stops tracking entry (no-op if not tracked).
void
    liveness_untrack (liveness_t *self, liveness_entry_t *entry);

//  Tracks entry again as it was when it was untracked (its deadline, last
//  heard and probe times kept): the change that untracked it was undone.
void
    liveness_restore (liveness_t *self, liveness_entry_t *entry);

//  Records that entry was heard at now. O(1) unless it was probed.
void
    liveness_heard (liveness_t *self, liveness_entry_t *entry, int64_t now);

//  The next entry that is evasive or expired at now, with the verdict in
//  *verdict; NULL when none is due. Entries heard meanwhile or paused are
//  rescheduled on the way. An EXPIRED entry is untracked before it is
//  returned.
liveness_entry_t *
    liveness_next (liveness_t *self, int64_t now, liveness_floor_fn *floor, void *arg,
                   liveness_verdict_t *verdict);

//  When the earliest entry is due (INT64_MAX when none is tracked).
int64_t
    liveness_due (liveness_t *self);

//  Entries tracked.
size_t
    liveness_size (liveness_t *self);

#endif
