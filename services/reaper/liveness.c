/*  liveness.c: a binary min-heap of embedded entries, keyed by deadline.

    The heap holds pointers; each entry knows its position (index, 1-based)
    so removal and rescheduling are O(log n) without a search.
*/
#include "liveness.h"

struct _liveness_t {
    liveness_entry_t **heap;    //  heap [0 .. size), ordered by deadline
    size_t size;                //  entries in the heap
    size_t capacity;            //  slots allocated
    int64_t evasive_ms;         //  T1: unheard this long -> probe
    int64_t expire_ms;          //  T2: unheard this long (and probed) -> reap
};

liveness_t *
liveness_new (int64_t evasive_ms, int64_t expire_ms)
{
    EP_ASSERT (evasive_ms > 0 && expire_ms > evasive_ms);
    liveness_t *self = (liveness_t *) zmalloc (sizeof (liveness_t));
    self->evasive_ms = evasive_ms;
    self->expire_ms = expire_ms;
    return self;
}

void
liveness_destroy (liveness_t **self_p)
{
    liveness_t *self = *self_p;
    if (self) {
        free (self->heap);
        free (self);
        *self_p = NULL;
    }
}

static void
s_place (liveness_t *self, size_t at, liveness_entry_t *entry)
{
    self->heap [at] = entry;
    entry->index = (uint32_t) at + 1;
}

static void
s_up (liveness_t *self, size_t at)
{
    liveness_entry_t *entry = self->heap [at];
    while (at > 0) {
        size_t parent = (at - 1) / 2;
        if (self->heap [parent]->deadline <= entry->deadline)
            break;
        s_place (self, at, self->heap [parent]);
        at = parent;
    }
    s_place (self, at, entry);
}

static void
s_down (liveness_t *self, size_t at)
{
    liveness_entry_t *entry = self->heap [at];
    while (true) {
        size_t child = 2 * at + 1;
        if (child >= self->size)
            break;
        if (child + 1 < self->size && self->heap [child + 1]->deadline < self->heap [child]->deadline)
            child++;
        if (entry->deadline <= self->heap [child]->deadline)
            break;
        s_place (self, at, self->heap [child]);
        at = child;
    }
    s_place (self, at, entry);
}

//  Moves a tracked entry to a new deadline.
static void
s_reschedule (liveness_t *self, liveness_entry_t *entry, int64_t deadline)
{
    bool later = deadline > entry->deadline;
    entry->deadline = deadline;
    if (later)
        s_down (self, entry->index - 1);
    else
        s_up (self, entry->index - 1);
}

void
liveness_track (liveness_t *self, liveness_entry_t *entry, int64_t now)
{
    EP_ASSERT (entry->index == 0);
    if (self->size == self->capacity) {
        self->capacity = self->capacity? self->capacity * 2: 1024;
        self->heap = (liveness_entry_t **) realloc (self->heap, self->capacity * sizeof (liveness_entry_t *));
        EP_ASSERT (self->heap);
    }
    entry->seen = now;
    entry->probed = INT64_MIN;
    entry->deadline = now + self->evasive_ms;
    s_place (self, self->size++, entry);
    s_up (self, self->size - 1);
}

void
liveness_untrack (liveness_t *self, liveness_entry_t *entry)
{
    if (entry->index == 0)
        return;
    size_t at = entry->index - 1;
    entry->index = 0;
    liveness_entry_t *last = self->heap [--self->size];
    if (at == self->size)
        return;
    int64_t old = entry->deadline;
    s_place (self, at, last);
    if (last->deadline < old)
        s_up (self, at);
    else
        s_down (self, at);
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
    if (probed && entry->index && now + self->evasive_ms < entry->deadline)
        s_reschedule (self, entry, now + self->evasive_ms);
}

liveness_entry_t *
liveness_next (liveness_t *self, int64_t now, liveness_floor_fn *floor, void *arg,
               liveness_verdict_t *verdict)
{
    while (self->size > 0 && self->heap [0]->deadline <= now) {
        liveness_entry_t *entry = self->heap [0];
        int64_t from = floor? floor (arg, entry): INT64_MIN;
        if (from == LIVENESS_PAUSED) {
            s_reschedule (self, entry, now + self->evasive_ms);
            continue;
        }
        int64_t seen = entry->seen > from? entry->seen: from;
        bool probed = entry->probed != INT64_MIN && entry->probed >= seen;
        if (now - seen < self->evasive_ms)
            s_reschedule (self, entry, seen + self->evasive_ms);
        else
        if (!probed) {
            //  A probe always goes out, and gets its full answer time,
            //  before the entry can expire (even after a long pause).
            entry->probed = now;
            int64_t expiry = seen + self->expire_ms;
            int64_t earliest = now + self->expire_ms - self->evasive_ms;
            s_reschedule (self, entry, expiry > earliest? expiry: earliest);
            *verdict = LIVENESS_EVASIVE;
            return entry;
        }
        else
        if (now - seen < self->expire_ms || now - entry->probed < self->expire_ms - self->evasive_ms) {
            int64_t expiry = seen + self->expire_ms;
            int64_t answer = entry->probed + self->expire_ms - self->evasive_ms;
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
    return self->size? self->heap [0]->deadline: INT64_MAX;
}

size_t
liveness_size (liveness_t *self)
{
    return self->size;
}
