/*  ep_heap.h: the binary min-heap of the project.

    Timers and priority queues: the channel's and the terminators' timers
    (small structs kept by value, stale entries skipped when popped), the
    reaper's liveness entries and sweep items (pointers to entries that
    keep their own heap position, so they can be removed or re-keyed in
    O(log n) without a search).

    Items are of one fixed size, copied in and out. The order is less (a,
    b), "a comes out before b"; with less NULL every item begins with an
    int64_t key and the smallest key comes out first, compared inline: the
    timers on hot paths pay no indirect call. moved (item, index), if set,
    is called whenever an item lands at a new index (push, pop, remove,
    update), so an intrusive user can record where its entry sits; it is not
    called for the item that leaves the heap.
*/
#ifndef EP_HEAP_H_INCLUDED
#define EP_HEAP_H_INCLUDED

#include "ep_prelude.h"

typedef struct _ep_heap_t ep_heap_t;

//  True if item a must come out before item b.
typedef bool (ep_heap_less_fn) (const void *a, const void *b);

//  The item at item now sits at index.
typedef void (ep_heap_moved_fn) (void *item, size_t index);

//  A heap of items of item_size bytes ordered by less (NULL: by a leading
//  int64_t key, smallest first); moved may be NULL.
ep_heap_t *
    ep_heap_new (size_t item_size, ep_heap_less_fn *less, ep_heap_moved_fn *moved);

void
    ep_heap_destroy (ep_heap_t **self_p);

//  Adds a copy of item.
void
    ep_heap_push (ep_heap_t *self, const void *item);

//  The first item (in the heap's storage, valid until the next change), or
//  NULL if the heap is empty.
void *
    ep_heap_top (ep_heap_t *self);

//  Removes the first item, copying it into item unless item is NULL.
//  Returns 0, or -1 if the heap was empty.
int
    ep_heap_pop (ep_heap_t *self, void *item);

//  Removes the item at index (< size), copying it into item unless NULL.
void
    ep_heap_remove (ep_heap_t *self, size_t index, void *item);

//  Restores the order after the key of the item at index changed (either
//  way); returns the item's new index.
size_t
    ep_heap_update (ep_heap_t *self, size_t index);

//  Items in the heap.
size_t
    ep_heap_size (ep_heap_t *self);

//  The item at index (< size), in heap order (index 0 is the top).
void *
    ep_heap_at (ep_heap_t *self, size_t index);

//  Empties the heap, keeping its storage.
void
    ep_heap_clear (ep_heap_t *self);

#endif
