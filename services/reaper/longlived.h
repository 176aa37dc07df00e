/*  longlived.h: which sessions have crossed the long-lived threshold, as a
    pure state machine.

    The reaper raises session.warning once per session, when it crosses
    --long-lived, whether or not a cleanup ever takes it. With hundreds of
    thousands of sessions a tick must not look at each of them: entries sit
    in a binary min-heap keyed by the moment they cross, so a tick looks at
    the top only, and each session costs one O(log n) push when it opens and
    one pop when it crosses (or a removal when it closes first). No clock:
    the caller gives the crossing time of each entry and "now", both on the
    same clock (the reaper uses the wall clock, since created_at is one).
    Entries are embedded in the caller's records.
*/
#ifndef LONGLIVED_H_INCLUDED
#define LONGLIVED_H_INCLUDED

#include "ep_prelude.h"

typedef struct _longlived_t longlived_t;

//  One tracked session, embedded in the caller's record. Zero it before
//  the first longlived_track.
typedef struct {
    int64_t crosses;            //  when it crosses the threshold (the caller's clock)
    uint32_t index;             //  position in the heap + 1; 0 when not tracked
} longlived_entry_t;

longlived_t *
    longlived_new (void);

//  Destroys the heap (the entries are the caller's, untouched).
void
    longlived_destroy (longlived_t **self_p);

//  Starts tracking entry, which crosses the threshold at crosses.
void
    longlived_track (longlived_t *self, longlived_entry_t *entry, int64_t crosses);

//  Stops tracking entry (no-op if not tracked).
void
    longlived_untrack (longlived_t *self, longlived_entry_t *entry);

//  True while entry is tracked (it has not crossed, or not been handed out).
bool
    longlived_tracked (const longlived_entry_t *entry);

//  The next entry that has crossed at now, untracked before it is
//  returned (so it is handed out once); NULL when none has.
longlived_entry_t *
    longlived_next (longlived_t *self, int64_t now);

//  When the earliest entry crosses (INT64_MAX when none is tracked).
int64_t
    longlived_due (longlived_t *self);

//  Entries tracked.
size_t
    longlived_size (longlived_t *self);

#endif
