/*  liveness.c: the entries in an ep_heap of pointers, keyed by deadline.

    Each entry knows its position (index, 1-based, kept by the heap's moved
    callback) so removal and rescheduling are O(log n) without a search.
*/
#include "liveness.h"
#include "ep_heap.h"

struct _liveness_t {
    ep_heap_t *heap;            //  liveness_entry_t *, ordered by deadline
    int64_t evasive_ms;         //  T1: unheard this long -> probe
    int64_t expire_ms;          //  T2: unheard this long (and probed) -> reap
    liveness_thresholds_fn *thresholds; //  each entry's T1 and T2, if set (else the two above)
    void *arg;                  //  for thresholds
};

static bool
s_less (const void *a, const void *b)
{
    return (*(liveness_entry_t *const *) a)->deadline < (*(liveness_entry_t *const *) b)->deadline;
}

static void
s_moved (void *item, size_t index)
{
    (*(liveness_entry_t **) item)->index = (uint32_t) index + 1;
}

liveness_t *
liveness_new (int64_t evasive_ms, int64_t expire_ms)
{
    EP_ASSERT (evasive_ms > 0 && expire_ms > evasive_ms);
    liveness_t *self = (liveness_t *) zmalloc (sizeof (liveness_t));
    self->heap = ep_heap_new (sizeof (liveness_entry_t *), s_less, s_moved);
    self->evasive_ms = evasive_ms;
    self->expire_ms = expire_ms;
    return self;
}

void
liveness_destroy (liveness_t **self_p)
{
    liveness_t *self = *self_p;
    if (self) {
        ep_heap_destroy (&self->heap);
        free (self);
        *self_p = NULL;
    }
}

void
liveness_set_thresholds (liveness_t *self, liveness_thresholds_fn *fn, void *arg)
{
    EP_ASSERT (ep_heap_size (self->heap) == 0);
    self->thresholds = fn;
    self->arg = arg;
}

//  The entry's T1 and T2: its own if the caller gives them, else ours.
static void
s_thresholds (liveness_t *self, liveness_entry_t *entry, int64_t *evasive, int64_t *expire)
{
    *evasive = self->evasive_ms;
    *expire = self->expire_ms;
    if (self->thresholds) {
        self->thresholds (self->arg, entry, evasive, expire);
        EP_ASSERT (*evasive > 0 && *expire > *evasive);
    }
}

//  Moves a tracked entry to a new deadline.
static void
s_reschedule (liveness_t *self, liveness_entry_t *entry, int64_t deadline)
{
    entry->deadline = deadline;
    ep_heap_update (self->heap, entry->index - 1);
}

//  The entry with the earliest deadline, or NULL.
static liveness_entry_t *
s_top (liveness_t *self)
{
    liveness_entry_t **top = (liveness_entry_t **) ep_heap_top (self->heap);
    return top? *top: NULL;
}

void
liveness_track (liveness_t *self, liveness_entry_t *entry, int64_t now)
{
    EP_ASSERT (entry->index == 0);
    int64_t evasive, expire;
    s_thresholds (self, entry, &evasive, &expire);
    entry->seen = now;
    entry->probed = INT64_MIN;
    entry->deadline = now + evasive;
    ep_heap_push (self->heap, &entry);
}

void
liveness_untrack (liveness_t *self, liveness_entry_t *entry)
{
    if (entry->index == 0)
        return;
    ep_heap_remove (self->heap, entry->index - 1, NULL);
    entry->index = 0;
}

void
liveness_restore (liveness_t *self, liveness_entry_t *entry)
{
    EP_ASSERT (entry->index == 0);
    ep_heap_push (self->heap, &entry);
}

void
liveness_heard (liveness_t *self, liveness_entry_t *entry, int64_t now)
{
    if (now <= entry->seen)
        return;
    //  A probed entry waits for its expiry time; heard, it must be looked
    //  at again one evasive period from now, which is earlier.
    bool probed = entry->probed != INT64_MIN && entry->probed >= entry->seen;
    entry->seen = now;
    if (probed && entry->index) {
        int64_t evasive, expire;
        s_thresholds (self, entry, &evasive, &expire);
        if (now + evasive < entry->deadline)
            s_reschedule (self, entry, now + evasive);
    }
}

liveness_entry_t *
liveness_next (liveness_t *self, int64_t now, liveness_floor_fn *floor, void *arg,
               liveness_verdict_t *verdict)
{
    liveness_entry_t *entry;
    while ((entry = s_top (self)) && entry->deadline <= now) {
        int64_t evasive, expire;
        s_thresholds (self, entry, &evasive, &expire);
        int64_t from = floor? floor (arg, entry): INT64_MIN;
        if (from == LIVENESS_PAUSED) {
            s_reschedule (self, entry, now + evasive);
            continue;
        }
        int64_t seen = entry->seen > from? entry->seen: from;
        bool probed = entry->probed != INT64_MIN && entry->probed >= seen;
        if (now - seen < evasive)
            s_reschedule (self, entry, seen + evasive);
        else
        if (!probed) {
            //  A probe always goes out, and gets its full answer time,
            //  before the entry can expire (even after a long pause).
            entry->probed = now;
            int64_t expiry = seen + expire;
            int64_t earliest = now + expire - evasive;
            s_reschedule (self, entry, expiry > earliest? expiry: earliest);
            *verdict = LIVENESS_EVASIVE;
            return entry;
        }
        else
        if (now - seen < expire || now - entry->probed < expire - evasive) {
            int64_t expiry = seen + expire;
            int64_t answer = entry->probed + expire - evasive;
            s_reschedule (self, entry, expiry > answer? expiry: answer);
        }
        else {
            liveness_untrack (self, entry);
            *verdict = LIVENESS_EXPIRED;
            return entry;
        }
    }
    return NULL;
}

int64_t
liveness_due (liveness_t *self)
{
    liveness_entry_t *top = s_top (self);
    return top? top->deadline: INT64_MAX;
}

size_t
liveness_size (liveness_t *self)
{
    return ep_heap_size (self->heap);
}
