/*  ep_owned.c: allocations released together (ep_owned.h). */
#include "ep_owned.h"

typedef struct {
    void *ptr;                  //  what to release
    void (*release) (void *ptr);    //  how
} s_item_t;

struct _ep_owned_t {
    zlistx_t *items;            //  s_item_t, in the order added
};

static void
s_item_destroy (void **item_p)
{
    s_item_t *item = (s_item_t *) *item_p;
    if (item) {
        item->release (item->ptr);
        free (item);
        *item_p = NULL;
    }
}

ep_owned_t *
ep_owned_new (void)
{
    ep_owned_t *self = (ep_owned_t *) zmalloc (sizeof (ep_owned_t));
    self->items = zlistx_new ();
    zlistx_set_destructor (self->items, s_item_destroy);
    return self;
}

void
ep_owned_destroy (ep_owned_t **self_p)
{
    ep_owned_t *self = *self_p;
    if (!self)
        return;
    zlistx_destroy (&self->items);
    free (self);
    *self_p = NULL;
}

void *
ep_owned_add (ep_owned_t *self, void *ptr, void (*release) (void *ptr))
{
    s_item_t *item = (s_item_t *) zmalloc (sizeof (s_item_t));
    item->ptr = ptr;
    item->release = release;
    zlistx_add_end (self->items, item);
    return ptr;
}
