/*  ep_dedupe.c: a hash of the ids in the window and a ring of them in
    arrival order, so the oldest is found without a scan. */
#include "ep_dedupe.h"

struct _ep_dedupe_t {
    zhashx_t *ids;              //  id -> 1, the ids in the window (keys borrowed from ring)
    char **ring;                //  the same ids in arrival order (owned)
    size_t window;              //  ring slots
    size_t next;                //  slot the next id goes to (the oldest when full)
    uint64_t duplicates;        //  ids refused as seen
};

ep_dedupe_t *
ep_dedupe_new (size_t window)
{
    EP_ASSERT (window > 0);
    ep_dedupe_t *self = (ep_dedupe_t *) zmalloc (sizeof (ep_dedupe_t));
    self->ids = zhashx_new ();
    //  One copy of each id, the ring's.
    zhashx_set_key_duplicator (self->ids, NULL);
    zhashx_set_key_destructor (self->ids, NULL);
    self->ring = (char **) calloc (window, sizeof (char *));
    EP_ASSERT (self->ring);
    self->window = window;
    return self;
}

void
ep_dedupe_destroy (ep_dedupe_t **self_p)
{
    ep_dedupe_t *self = *self_p;
    if (self) {
        zhashx_destroy (&self->ids);
        for (size_t i = 0; i < self->window; i++)
            free (self->ring [i]);
        free (self->ring);
        free (self);
        *self_p = NULL;
    }
}

bool
ep_dedupe_fresh (ep_dedupe_t *self, const char *id)
{
    if (zhashx_lookup (self->ids, id)) {
        self->duplicates++;
        return false;
    }
    char *oldest = self->ring [self->next];
    if (oldest) {
        zhashx_delete (self->ids, oldest);
        free (oldest);
    }
    char *copy = strdup (id);
    EP_ASSERT (copy);
    self->ring [self->next] = copy;
    zhashx_insert (self->ids, copy, (void *) 1);
    self->next = (self->next + 1) % self->window;
    return true;
}

size_t
ep_dedupe_size (ep_dedupe_t *self)
{
    return zhashx_size (self->ids);
}

size_t
ep_dedupe_window (ep_dedupe_t *self)
{
    return self->window;
}

void
ep_dedupe_resize (ep_dedupe_t *self, size_t window)
{
    EP_ASSERT (window > 0);
    char **ring = (char **) calloc (window, sizeof (char *));
    EP_ASSERT (ring);
    //  The ids held are the count slots before next, oldest first: the
    //  newest keep fits go to the new ring in the same order.
    size_t count = zhashx_size (self->ids);
    size_t keep = count < window? count: window;
    for (size_t i = 0; i < count; i++) {
        size_t slot = (self->next + self->window - count + i) % self->window;
        char *id = self->ring [slot];
        if (i < count - keep) {
            zhashx_delete (self->ids, id);
            free (id);
        }
        else
            ring [i - (count - keep)] = id;
    }
    free (self->ring);
    self->ring = ring;
    self->window = window;
    self->next = keep % window;
}

uint64_t
ep_dedupe_duplicates (ep_dedupe_t *self)
{
    return self->duplicates;
}
