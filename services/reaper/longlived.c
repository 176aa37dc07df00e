/*  longlived.c: the entries in an ep_heap of pointers, keyed by when they
    cross; each entry knows its position (index, 1-based, kept by the heap's
    moved callback) so a session that closes first leaves in O(log n)
    without a search.
*/
#include "longlived.h"
#include "ep_heap.h"

struct _longlived_t {
    ep_heap_t *heap;            //  longlived_entry_t *, ordered by crosses
};

static bool
s_less (const void *a, const void *b)
{
    return (*(longlived_entry_t *const *) a)->crosses < (*(longlived_entry_t *const *) b)->crosses;
}

static void
s_moved (void *item, size_t index)
{
    (*(longlived_entry_t **) item)->index = (uint32_t) index + 1;
}

longlived_t *
longlived_new (void)
{
    longlived_t *self = (longlived_t *) zmalloc (sizeof (longlived_t));
    self->heap = ep_heap_new (sizeof (longlived_entry_t *), s_less, s_moved);
    return self;
}

void
longlived_destroy (longlived_t **self_p)
{
    longlived_t *self = *self_p;
    if (self) {
        ep_heap_destroy (&self->heap);
        free (self);
        *self_p = NULL;
    }
}

void
longlived_track (longlived_t *self, longlived_entry_t *entry, int64_t crosses)
{
    EP_ASSERT (entry->index == 0);
    entry->crosses = crosses;
    ep_heap_push (self->heap, &entry);
}

void
longlived_untrack (longlived_t *self, longlived_entry_t *entry)
{
    if (entry->index == 0)
        return;
    ep_heap_remove (self->heap, entry->index - 1, NULL);
    entry->index = 0;
}

bool
longlived_tracked (const longlived_entry_t *entry)
{
    return entry->index != 0;
}

longlived_entry_t *
longlived_next (longlived_t *self, int64_t now)
{
    longlived_entry_t **top = (longlived_entry_t **) ep_heap_top (self->heap);
    if (!top || (*top)->crosses > now)
        return NULL;
    longlived_entry_t *entry = *top;
    longlived_untrack (self, entry);
    return entry;
}

int64_t
longlived_due (longlived_t *self)
{
    longlived_entry_t **top = (longlived_entry_t **) ep_heap_top (self->heap);
    return top? (*top)->crosses: INT64_MAX;
}

size_t
longlived_size (longlived_t *self)
{
    return ep_heap_size (self->heap);
}
