/*  ep_heap.c: the binary min-heap of the project (ep_heap.h).

    Sifting moves a hole, not the item: the item waits in self->hole and
    is copied once, to where it ends, so a sift costs one copy per level.
*/
#include "ep_heap.h"

struct _ep_heap_t {
    char *items;                //  items [0 .. size), item_size bytes each
    size_t size;                //  items in the heap
    size_t capacity;            //  items allocated
    size_t item_size;           //  bytes per item
    ep_heap_less_fn *less;      //  order; NULL: leading int64_t key
    ep_heap_moved_fn *moved;    //  position callback, or NULL
    void *hole;                 //  the item being sifted
};

#define SLOT(self, at) ((self)->items + (at) * (self)->item_size)

ep_heap_t *
ep_heap_new (size_t item_size, ep_heap_less_fn *less, ep_heap_moved_fn *moved)
{
    EP_ASSERT (item_size > 0);
    EP_ASSERT (less || item_size >= sizeof (int64_t));
    ep_heap_t *self = (ep_heap_t *) zmalloc (sizeof (ep_heap_t));
    self->item_size = item_size;
    self->less = less;
    self->moved = moved;
    self->hole = zmalloc (item_size);
    return self;
}

void
ep_heap_destroy (ep_heap_t **self_p)
{
    ep_heap_t *self = *self_p;
    if (self) {
        free (self->items);
        free (self->hole);
        free (self);
        *self_p = NULL;
    }
}

static inline bool
s_less (ep_heap_t *self, const void *a, const void *b)
{
    if (self->less)
        return self->less (a, b);
    int64_t ka, kb;
    memcpy (&ka, a, sizeof ka);
    memcpy (&kb, b, sizeof kb);
    return ka < kb;
}

//  Fixed-size copies for the common sizes (a pointer, a key and a pair)
//  compile to moves; other sizes call memcpy.
static inline void
s_copy (ep_heap_t *self, void *dst, const void *src)
{
    if (self->item_size == 8)
        memcpy (dst, src, 8);
    else
    if (self->item_size == 16)
        memcpy (dst, src, 16);
    else
        memcpy (dst, src, self->item_size);
}

static inline void
s_put (ep_heap_t *self, size_t at, const void *item)
{
    void *slot = SLOT (self, at);
    s_copy (self, slot, item);
    if (self->moved)
        self->moved (slot, at);
}

//  Places the hole's item at or above at (a free slot).
static size_t
s_up (ep_heap_t *self, size_t at)
{
    while (at > 0) {
        size_t parent = (at - 1) / 2;
        if (!s_less (self, self->hole, SLOT (self, parent)))
            break;
        s_put (self, at, SLOT (self, parent));
        at = parent;
    }
    s_put (self, at, self->hole);
    return at;
}

//  Places the hole's item at or below at (a free slot).
static size_t
s_down (ep_heap_t *self, size_t at)
{
    while (true) {
        size_t child = 2 * at + 1;
        if (child >= self->size)
            break;
        if (child + 1 < self->size && s_less (self, SLOT (self, child + 1), SLOT (self, child)))
            child++;
        if (!s_less (self, SLOT (self, child), self->hole))
            break;
        s_put (self, at, SLOT (self, child));
        at = child;
    }
    s_put (self, at, self->hole);
    return at;
}

//  Places the hole's item at at (a free slot), up or down as its key says.
static size_t
s_settle (ep_heap_t *self, size_t at)
{
    if (at > 0 && s_less (self, self->hole, SLOT (self, (at - 1) / 2)))
        return s_up (self, at);
    return s_down (self, at);
}

void
ep_heap_push (ep_heap_t *self, const void *item)
{
    if (self->size == self->capacity) {
        self->capacity = self->capacity? self->capacity * 2: 64;
        self->items = (char *) realloc (self->items, self->capacity * self->item_size);
        EP_ASSERT (self->items);
    }
    s_copy (self, self->hole, item);
    s_up (self, self->size++);
}

void *
ep_heap_top (ep_heap_t *self)
{
    return self->size? self->items: NULL;
}

int
ep_heap_pop (ep_heap_t *self, void *item)
{
    if (self->size == 0)
        return -1;
    ep_heap_remove (self, 0, item);
    return 0;
}

void
ep_heap_remove (ep_heap_t *self, size_t index, void *item)
{
    EP_ASSERT (index < self->size);
    if (item)
        s_copy (self, item, SLOT (self, index));
    if (index == --self->size)
        return;
    s_copy (self, self->hole, SLOT (self, self->size));
    s_settle (self, index);
}

size_t
ep_heap_update (ep_heap_t *self, size_t index)
{
    EP_ASSERT (index < self->size);
    s_copy (self, self->hole, SLOT (self, index));
    return s_settle (self, index);
}

size_t
ep_heap_size (ep_heap_t *self)
{
    return self->size;
}

void *
ep_heap_at (ep_heap_t *self, size_t index)
{
    EP_ASSERT (index < self->size);
    return SLOT (self, index);
}

void
ep_heap_clear (ep_heap_t *self)
{
    self->size = 0;
}
