/*  shardroute.c: shard owners from beacons (see shardroute.h). */
#include "shardroute.h"
#include "ep_shard.h"

#define DEFAULT_INTERVAL_MS 1000    //  a beacon that does not say its interval
#define SILENT_INTERVALS_X2 7       //  forgotten after 3.5 intervals (in halves)

//  One shard an instance owns.
typedef struct {
    uint32_t shard;             //  the shard
    int64_t revision;           //  its owner key's create revision (0: unknown)
} s_owned_t;

//  An instance, as its last beacon said.
typedef struct {
    char *address;              //  its API endpoint
    uint32_t count;             //  the shard count it uses
    s_owned_t *owned;           //  its shards, ascending
    size_t n;                   //  how many
    int64_t interval_ms;        //  its beacon interval
    int64_t heard_ms;           //  when its last beacon came
} s_instance_t;

struct _shardroute_t {
    char *service;              //  the service routed
    zhashx_t *instances;        //  instance id -> s_instance_t
};

static void
s_instance_destroy (void **item)
{
    s_instance_t *instance = (s_instance_t *) *item;
    if (instance) {
        free (instance->address);
        free (instance->owned);
        free (instance);
        *item = NULL;
    }
}

static int
s_compare_owned (const void *a, const void *b)
{
    uint32_t x = ((const s_owned_t *) a)->shard, y = ((const s_owned_t *) b)->shard;
    return x < y? -1: x > y;
}

shardroute_t *
shardroute_new (const char *service)
{
    shardroute_t *self = (shardroute_t *) zmalloc (sizeof (shardroute_t));
    self->service = strdup (service);
    self->instances = zhashx_new ();
    zhashx_set_destructor (self->instances, s_instance_destroy);
    return self;
}

void
shardroute_destroy (shardroute_t **self_p)
{
    shardroute_t *self = *self_p;
    if (self) {
        zhashx_destroy (&self->instances);
        free (self->service);
        free (self);
        *self_p = NULL;
    }
}

int
shardroute_beacon (shardroute_t *self, const shardroute_beacon_t *beacon, int64_t now_ms)
{
    if (!beacon->service || !streq (beacon->service, self->service)
    ||  !beacon->instance || !*beacon->instance || !beacon->address || !*beacon->address
    ||  beacon->count == 0 || beacon->count > EP_SHARD_MAX_COUNT || beacon->n > beacon->count)
        return -1;
    for (size_t i = 0; i < beacon->n; i++)
        if (beacon->shards [i] >= beacon->count)
            return -1;
    s_instance_t *instance = (s_instance_t *) zmalloc (sizeof (s_instance_t));
    instance->address = strdup (beacon->address);
    instance->count = beacon->count;
    instance->owned = (s_owned_t *) calloc (beacon->n + 1, sizeof (s_owned_t));
    instance->n = beacon->n;
    for (size_t i = 0; i < beacon->n; i++) {
        instance->owned [i].shard = beacon->shards [i];
        instance->owned [i].revision = beacon->revisions? beacon->revisions [i]: 0;
    }
    //  Said to be ascending; sorted anyway, a lookup is a binary search.
    qsort (instance->owned, instance->n, sizeof (s_owned_t), s_compare_owned);
    instance->interval_ms = beacon->interval_ms > 0? beacon->interval_ms: DEFAULT_INTERVAL_MS;
    instance->heard_ms = now_ms;
    zhashx_update (self->instances, beacon->instance, instance);
    return 0;
}

static bool
s_live (const s_instance_t *instance, int64_t now_ms)
{
    return (now_ms - instance->heard_ms) * 2 < instance->interval_ms * SILENT_INTERVALS_X2;
}

//  The entry of instance for shard, or NULL if it does not claim it.
static const s_owned_t *
s_claim (const s_instance_t *instance, uint32_t shard)
{
    s_owned_t key = { .shard = shard };
    return (const s_owned_t *) bsearch (&key, instance->owned, instance->n, sizeof (s_owned_t),
                                        s_compare_owned);
}

const char *
shardroute_owner (shardroute_t *self, const char *router_id, int64_t now_ms)
{
    const s_instance_t *best = NULL;
    int64_t best_revision = 0;
    int64_t best_heard = 0;
    s_instance_t *instance = (s_instance_t *) zhashx_first (self->instances);
    for (; instance; instance = (s_instance_t *) zhashx_next (self->instances)) {
        if (!s_live (instance, now_ms))
            continue;
        const s_owned_t *claim = s_claim (instance, (uint32_t) ep_shard_of (router_id, (int) instance->count));
        if (!claim)
            continue;
        //  The newer owner key wins; on a tie (revisions unknown), the
        //  fresher beacon, and the hash order does not decide.
        if (!best || claim->revision > best_revision
        ||  (claim->revision == best_revision && instance->heard_ms > best_heard)) {
            best = instance;
            best_revision = claim->revision;
            best_heard = instance->heard_ms;
        }
    }
    return best? best->address: NULL;
}

size_t
shardroute_expire (shardroute_t *self, int64_t now_ms)
{
    zlistx_t *silent = zlistx_new ();
    s_instance_t *instance = (s_instance_t *) zhashx_first (self->instances);
    for (; instance; instance = (s_instance_t *) zhashx_next (self->instances))
        if (!s_live (instance, now_ms))
            zlistx_add_end (silent, (void *) zhashx_cursor (self->instances));
    size_t gone = zlistx_size (silent);
    //  The keys are the table's: deleted one by one, each read before.
    char *key;
    while ((key = (char *) zlistx_detach (silent, NULL))) {
        char *copy = strdup (key);
        zhashx_delete (self->instances, copy);
        free (copy);
    }
    zlistx_destroy (&silent);
    return gone;
}

bool
shardroute_knows (shardroute_t *self, const char *address)
{
    s_instance_t *instance = (s_instance_t *) zhashx_first (self->instances);
    for (; instance; instance = (s_instance_t *) zhashx_next (self->instances))
        if (streq (instance->address, address))
            return true;
    return false;
}

size_t
shardroute_size (shardroute_t *self)
{
    return zhashx_size (self->instances);
}
