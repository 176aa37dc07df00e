/*  termoutbox.c: the etcd mode's outbox bookkeeping (termoutbox.h). */
#include "termoutbox.h"

//  One outbox key of a shard.
typedef struct {
    char *key;                  //  its etcd key
    size_t waiting;             //  its events not published yet
} s_key_t;

//  One event not published yet.
typedef struct {
    s_key_t *key;               //  where it is (owned by its shard's list)
    int shard;                  //  which shard
    char *event_id;             //  its id
} s_event_t;

struct _termoutbox_t {
    int count;                  //  shards
    zlistx_t **keys;            //  per shard: s_key_t in key order
    zhashx_t *events;           //  seq (decimal) -> s_event_t
};

static void
s_key_destroy (s_key_t **self_p)
{
    if (*self_p) {
        free ((*self_p)->key);
        free (*self_p);
        *self_p = NULL;
    }
}

static void
s_event_destroy (s_event_t **self_p)
{
    if (*self_p) {
        free ((*self_p)->event_id);
        free (*self_p);
        *self_p = NULL;
    }
}

termoutbox_t *
termoutbox_new (int count)
{
    EP_ASSERT (count > 0);
    termoutbox_t *self = (termoutbox_t *) zmalloc (sizeof (termoutbox_t));
    self->count = count;
    self->keys = (zlistx_t **) zmalloc (sizeof (zlistx_t *) * (size_t) count);
    for (int s = 0; s < count; s++) {
        self->keys [s] = zlistx_new ();
        zlistx_set_destructor (self->keys [s], (czmq_destructor *) s_key_destroy);
    }
    self->events = zhashx_new ();
    zhashx_set_destructor (self->events, (czmq_destructor *) s_event_destroy);
    return self;
}

void
termoutbox_destroy (termoutbox_t **self_p)
{
    termoutbox_t *self = *self_p;
    if (self) {
        //  Events point into the keys: they go first.
        zhashx_destroy (&self->events);
        for (int s = 0; s < self->count; s++)
            zlistx_destroy (&self->keys [s]);
        free (self->keys);
        free (self);
        *self_p = NULL;
    }
}

static void
s_name (char *name, size_t size, int64_t seq)
{
    snprintf (name, size, "%lld", (long long) seq);
}

void
termoutbox_event (termoutbox_t *self, int64_t seq, int shard, const char *key, const char *event_id)
{
    EP_ASSERT (shard >= 0 && shard < self->count && seq > 0);
    s_key_t *last = (s_key_t *) zlistx_last (self->keys [shard]);
    if (!last || strcmp (last->key, key) != 0) {
        EP_ASSERT (!last || strcmp (last->key, key) < 0);
        last = (s_key_t *) zmalloc (sizeof (s_key_t));
        last->key = strdup (key);
        zlistx_add_end (self->keys [shard], last);
    }
    last->waiting++;
    s_event_t *event = (s_event_t *) zmalloc (sizeof (s_event_t));
    event->key = last;
    event->shard = shard;
    event->event_id = strdup (event_id);
    char name [24];
    s_name (name, sizeof name, seq);
    zhashx_update (self->events, name, event);
}

const char *
termoutbox_event_id (termoutbox_t *self, int64_t seq)
{
    char name [24];
    s_name (name, sizeof name, seq);
    s_event_t *event = (s_event_t *) zhashx_lookup (self->events, name);
    return event? event->event_id: NULL;
}

void
termoutbox_published (termoutbox_t *self, int64_t seq)
{
    char name [24];
    s_name (name, sizeof name, seq);
    s_event_t *event = (s_event_t *) zhashx_lookup (self->events, name);
    if (!event)
        return;
    EP_ASSERT (event->key->waiting > 0);
    event->key->waiting--;
    zhashx_delete (self->events, name);
}

const char *
termoutbox_trimmable (termoutbox_t *self, int shard)
{
    EP_ASSERT (shard >= 0 && shard < self->count);
    const char *upto = NULL;
    s_key_t *key = (s_key_t *) zlistx_first (self->keys [shard]);
    for (; key && key->waiting == 0; key = (s_key_t *) zlistx_next (self->keys [shard]))
        upto = key->key;
    return upto;
}

void
termoutbox_trimmed (termoutbox_t *self, int shard, const char *upto)
{
    EP_ASSERT (shard >= 0 && shard < self->count);
    s_key_t *key;
    while ((key = (s_key_t *) zlistx_first (self->keys [shard])) && strcmp (key->key, upto) <= 0) {
        //  Deleted only once every event under it was published.
        EP_ASSERT (key->waiting == 0);
        zlistx_delete (self->keys [shard], zlistx_cursor (self->keys [shard]));
    }
}

//  Forgets the events of shard under key (NULL: under any of its keys).
static void
s_forget_events (termoutbox_t *self, int shard, const char *key)
{
    zlistx_t *names = zhashx_keys (self->events);
    for (const char *name = (const char *) zlistx_first (names); name;
         name = (const char *) zlistx_next (names)) {
        s_event_t *event = (s_event_t *) zhashx_lookup (self->events, name);
        if (event->shard == shard && (!key || streq (event->key->key, key)))
            zhashx_delete (self->events, name);
    }
    zlistx_destroy (&names);
}

void
termoutbox_forget_key (termoutbox_t *self, int shard, const char *key)
{
    EP_ASSERT (shard >= 0 && shard < self->count);
    s_forget_events (self, shard, key);
    s_key_t *item = (s_key_t *) zlistx_first (self->keys [shard]);
    for (; item; item = (s_key_t *) zlistx_next (self->keys [shard]))
        if (streq (item->key, key)) {
            zlistx_delete (self->keys [shard], zlistx_cursor (self->keys [shard]));
            break;
        }
}

void
termoutbox_forget_shard (termoutbox_t *self, int shard)
{
    EP_ASSERT (shard >= 0 && shard < self->count);
    s_forget_events (self, shard, NULL);
    zlistx_purge (self->keys [shard]);
}

size_t
termoutbox_size (termoutbox_t *self)
{
    return zhashx_size (self->events);
}

size_t
termoutbox_keys (termoutbox_t *self)
{
    size_t keys = 0;
    for (int s = 0; s < self->count; s++)
        keys += zlistx_size (self->keys [s]);
    return keys;
}
