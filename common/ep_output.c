/*  ep_output.c: what a core hands out after a commit (ep_output.h). */
#include "ep_output.h"

struct _ep_output_t {
    zlistx_t *staged;           //  ep_output_item_t of the open transaction
    zlistx_t *ready;            //  ep_output_item_t committed, not yet taken
};

static void
s_item_free (void **item_p)
{
    ep_output_item_destroy ((ep_output_item_t **) item_p);
}

void
ep_output_item_destroy (ep_output_item_t **self_p)
{
    ep_output_item_t *self = *self_p;
    if (self) {
        if (self->event)
            ep__event__free_unpacked (self->event, NULL);
        free (self);
        *self_p = NULL;
    }
}

ep_output_t *
ep_output_new (void)
{
    ep_output_t *self = (ep_output_t *) zmalloc (sizeof (ep_output_t));
    self->staged = zlistx_new ();
    self->ready = zlistx_new ();
    zlistx_set_destructor (self->staged, s_item_free);
    zlistx_set_destructor (self->ready, s_item_free);
    return self;
}

void
ep_output_destroy (ep_output_t **self_p)
{
    ep_output_t *self = *self_p;
    if (self) {
        zlistx_destroy (&self->staged);
        zlistx_destroy (&self->ready);
        free (self);
        *self_p = NULL;
    }
}

ep_output_item_t *
ep_output_take (ep_output_t *self, const char *topic, Ep__Event **event_p, int64_t seq)
{
    EP_ASSERT (topic && event_p && *event_p);
    size_t length = strlen (topic);
    //  The topic lives in the same allocation as the item.
    ep_output_item_t *item = (ep_output_item_t *) zmalloc (sizeof (ep_output_item_t) + length + 1);
    item->topic = (char *) (item + 1);
    memcpy (item->topic, topic, length + 1);
    item->event = *event_p;
    item->seq = seq;
    *event_p = NULL;
    zlistx_add_end (self->staged, item);
    return item;
}

ep_output_item_t *
ep_output_add_packed (ep_output_t *self, const char *topic, const void *bytes, size_t size,
                      int64_t seq)
{
    Ep__Event *event = ep__event__unpack (NULL, size, (const uint8_t *) bytes);
    return event? ep_output_take (self, topic, &event, seq): NULL;
}

ep_output_item_t *
ep_output_add (ep_output_t *self, const char *topic, const Ep__Event *event, int64_t seq)
{
    //  A copy through the wire form: the core's event may point at its
    //  stack and its records, which change before the item is published.
    size_t size = ep__event__get_packed_size (event);
    uint8_t *bytes = (uint8_t *) malloc (size + 1);
    EP_ASSERT (bytes);
    ep__event__pack (event, bytes);
    ep_output_item_t *item = ep_output_add_packed (self, topic, bytes, size, seq);
    EP_ASSERT (item);
    free (bytes);
    return item;
}

size_t
ep_output_mark (ep_output_t *self)
{
    return zlistx_size (self->staged);
}

void
ep_output_undo (ep_output_t *self, size_t mark)
{
    while (zlistx_size (self->staged) > mark) {
        zlistx_last (self->staged);
        zlistx_delete (self->staged, zlistx_cursor (self->staged));
    }
}

size_t
ep_output_commit (ep_output_t *self)
{
    size_t moved = 0;
    ep_output_item_t *item;
    while ((item = (ep_output_item_t *) zlistx_first (self->staged))) {
        zlistx_detach_cur (self->staged);
        zlistx_add_end (self->ready, item);
        moved++;
    }
    return moved;
}

void
ep_output_abort (ep_output_t *self)
{
    ep_output_undo (self, 0);
}

ep_output_item_t *
ep_output_next (ep_output_t *self)
{
    ep_output_item_t *item = (ep_output_item_t *) zlistx_first (self->ready);
    if (item)
        zlistx_detach_cur (self->ready);
    return item;
}

ep_output_item_t *
ep_output_first_staged (ep_output_t *self)
{
    return (ep_output_item_t *) zlistx_first (self->staged);
}

ep_output_item_t *
ep_output_next_staged (ep_output_t *self)
{
    return (ep_output_item_t *) zlistx_next (self->staged);
}

size_t
ep_output_staged (ep_output_t *self)
{
    return zlistx_size (self->staged);
}

size_t
ep_output_ready (ep_output_t *self)
{
    return zlistx_size (self->ready);
}
