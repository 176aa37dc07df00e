/*  cli_beacons.c: shard owners from their beacons (see cli_beacons.h). */
#include "cli_beacons.h"

struct _cli_beacons_t {
    zhashx_t *owners;           //  "<service>\t<id>" -> cli_owner_t
    zlistx_t *order;            //  keys sorted, made by first
};

static void
s_owner_destroy (cli_owner_t **self_p)
{
    cli_owner_t *self = *self_p;
    if (self) {
        free (self->service);
        free (self->id);
        free (self->address);
        free (self->shards);
        free (self);
        *self_p = NULL;
    }
}

cli_beacons_t *
cli_beacons_new (void)
{
    cli_beacons_t *self = (cli_beacons_t *) zmalloc (sizeof (cli_beacons_t));
    self->owners = zhashx_new ();
    zhashx_set_destructor (self->owners, (czmq_destructor *) s_owner_destroy);
    return self;
}

void
cli_beacons_destroy (cli_beacons_t **self_p)
{
    cli_beacons_t *self = *self_p;
    if (self) {
        zhashx_destroy (&self->owners);
        zlistx_destroy (&self->order);
        free (self);
        *self_p = NULL;
    }
}

void
cli_beacons_heard (cli_beacons_t *self, const Ep__ShardBeacon *beacon)
{
    if (!beacon->instance_id || !*beacon->instance_id || !beacon->service || !*beacon->service)
        return;
    char *key = zsys_sprintf ("%s\t%s", beacon->service, beacon->instance_id);
    cli_owner_t *owner = (cli_owner_t *) zhashx_lookup (self->owners, key);
    if (!owner) {
        owner = (cli_owner_t *) zmalloc (sizeof (cli_owner_t));
        owner->service = strdup (beacon->service);
        owner->id = strdup (beacon->instance_id);
        zhashx_insert (self->owners, key, owner);
    }
    free (key);
    free (owner->address);
    owner->address = strdup (beacon->address? beacon->address: "");
    owner->count = beacon->shard_count;
    free (owner->shards);
    owner->nshards = beacon->n_shards;
    owner->shards = (uint32_t *) zmalloc (sizeof (uint32_t) * (beacon->n_shards + 1));
    memcpy (owner->shards, beacon->shards, sizeof (uint32_t) * beacon->n_shards);
}

size_t
cli_beacons_listen (cli_beacons_t *self, ep_subscriber_t *sub, const char *service, int64_t listen_ms)
{
    ep_subscriber_subscribe (sub, "cluster.beacon");
    for (int64_t until = ep_mono_ms () + listen_ms; !zsys_interrupted && ep_mono_ms () < until; ) {
        char *topic = NULL;
        Ep__Event *event = ep_subscriber_recv (sub, (int) (until - ep_mono_ms ()), &topic);
        if (event && event->body_case == EP__EVENT__BODY_SHARD_BEACON && event->shard_beacon->service
        &&  (!service || streq (event->shard_beacon->service, service)))
            cli_beacons_heard (self, event->shard_beacon);
        zstr_free (&topic);
    }
    return cli_beacons_size (self, service);
}

size_t
cli_beacons_size (cli_beacons_t *self, const char *service)
{
    size_t size = 0;
    for (cli_owner_t *owner = (cli_owner_t *) zhashx_first (self->owners); owner;
         owner = (cli_owner_t *) zhashx_next (self->owners))
        size += !service || streq (owner->service, service);
    return size;
}

const cli_owner_t *
cli_beacons_first (cli_beacons_t *self)
{
    zlistx_destroy (&self->order);
    //  The keys sort by service, then id ('\t' before any id character).
    self->order = zhashx_keys (self->owners);
    zlistx_set_comparator (self->order, (czmq_comparator *) strcmp);
    zlistx_sort (self->order);
    const char *key = (const char *) zlistx_first (self->order);
    return key? (const cli_owner_t *) zhashx_lookup (self->owners, key): NULL;
}

const cli_owner_t *
cli_beacons_next (cli_beacons_t *self)
{
    const char *key = self->order? (const char *) zlistx_next (self->order): NULL;
    return key? (const cli_owner_t *) zhashx_lookup (self->owners, key): NULL;
}

uint32_t
cli_beacons_count (cli_beacons_t *self, const char *service)
{
    uint32_t count = 0;
    for (cli_owner_t *owner = (cli_owner_t *) zhashx_first (self->owners); owner;
         owner = (cli_owner_t *) zhashx_next (self->owners))
        if (streq (owner->service, service) && owner->count > count)
            count = owner->count;
    return count;
}

bool
cli_beacons_complete (cli_beacons_t *self, const char *service, char *why, size_t size)
{
    uint32_t count = cli_beacons_count (self, service);
    uint32_t *claims = (uint32_t *) zmalloc (sizeof (uint32_t) * (count + 1));
    for (cli_owner_t *owner = (cli_owner_t *) zhashx_first (self->owners); owner;
         owner = (cli_owner_t *) zhashx_next (self->owners))
        for (size_t i = 0; streq (owner->service, service) && i < owner->nshards; i++)
            if (owner->shards [i] < count)
                claims [owner->shards [i]]++;
    uint32_t none = 0, several = 0;
    for (uint32_t s = 0; s < count; s++) {
        none += claims [s] == 0;
        several += claims [s] > 1;
    }
    free (claims);
    snprintf (why, size, "%u of %u %s shards have no owner, %u have several (a handover in progress: "
              "ask again in a few seconds)", none, count, service, several);
    return count > 0 && none == 0 && several == 0;
}

json_t *
cli_owner_json (const cli_owner_t *owner)
{
    json_t *shards = json_array ();
    for (size_t i = 0; i < owner->nshards; i++)
        json_array_append_new (shards, json_integer (owner->shards [i]));
    return json_pack ("{s:s, s:s, s:o}", "instance", owner->id, "address", owner->address, "shards", shards);
}

void
cli_shard_ranges (const uint32_t *shards, size_t nshards, char *buf, size_t size)
{
    if (size == 0)
        return;
    buf [0] = 0;
    size_t used = 0;
    for (size_t i = 0; i < nshards; ) {
        size_t j = i;
        while (j + 1 < nshards && shards [j + 1] == shards [j] + 1)
            j++;
        char piece [32];
        if (j > i)
            snprintf (piece, sizeof piece, "%s%u-%u", used? ",": "", shards [i], shards [j]);
        else
            snprintf (piece, sizeof piece, "%s%u", used? ",": "", shards [i]);
        size_t len = strlen (piece);
        bool last = j + 1 >= nshards;
        //  Whole pieces only, with room left for "..." unless it is the last.
        if (used + len >= size || (!last && used + len + 3 >= size)) {
            if (used + 3 < size)
                memcpy (buf + used, "...", 4);
            return;
        }
        memcpy (buf + used, piece, len + 1);
        used += len;
        i = j + 1;
    }
}
