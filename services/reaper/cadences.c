/*  cadences.c: one ep_cadence per router, keyed by its id (cadences.h). */
#include "cadences.h"

typedef struct {
    ep_cadence_t *cadence;      //  the intervals between its batches
    int64_t batch_at;           //  when its current batch began (ms), INT64_MIN: none since a gap
} s_router_t;

struct _cadences_t {
    cadences_config_t config;   //  adaptive or not, the estimator, the fixed thresholds
    zhashx_t *routers;          //  router id -> s_router_t
};

static void
s_router_destroy (void **item)
{
    s_router_t *router = (s_router_t *) *item;
    if (router) {
        ep_cadence_destroy (&router->cadence);
        free (router);
        *item = NULL;
    }
}

cadences_t *
cadences_new (const cadences_config_t *config)
{
    EP_ASSERT (config->evasive_ms > 0 && config->expire_ms > config->evasive_ms);
    cadences_t *self = (cadences_t *) zmalloc (sizeof (cadences_t));
    self->config = *config;
    self->routers = zhashx_new ();
    zhashx_set_destructor (self->routers, s_router_destroy);
    return self;
}

void
cadences_destroy (cadences_t **self_p)
{
    cadences_t *self = *self_p;
    if (self) {
        zhashx_destroy (&self->routers);
        free (self);
        *self_p = NULL;
    }
}

static s_router_t *
s_router (cadences_t *self, const char *id)
{
    s_router_t *router = (s_router_t *) zhashx_lookup (self->routers, id);
    if (!router) {
        router = (s_router_t *) zmalloc (sizeof (s_router_t));
        router->cadence = ep_cadence_new (&self->config.cadence);
        router->batch_at = INT64_MIN;
        zhashx_insert (self->routers, id, router);
    }
    return router;
}

void
cadences_add (cadences_t *self, const char *router)
{
    s_router (self, router);
}

bool
cadences_heartbeat (cadences_t *self, const char *id, int64_t now)
{
    s_router_t *router = s_router (self, id);
    if (router->batch_at != INT64_MIN && now - router->batch_at < CADENCES_BATCH_MS)
        return false;
    router->batch_at = now;
    ep_cadence_beat (router->cadence, now);
    return true;
}

void
cadences_gap (cadences_t *self, const char *id)
{
    s_router_t *router = (s_router_t *) zhashx_lookup (self->routers, id);
    if (router) {
        ep_cadence_gap (router->cadence);
        router->batch_at = INT64_MIN;
    }
}

void
cadences_forget (cadences_t *self, const char *id)
{
    zhashx_delete (self->routers, id);
}

//  T1 and T2 of router (NULL: unknown), and whether they are learnt.
static bool
s_thresholds (cadences_t *self, s_router_t *router, int64_t *evasive_ms, int64_t *expire_ms)
{
    const cadences_config_t *config = &self->config;
    *evasive_ms = config->evasive_ms;
    *expire_ms = config->expire_ms;
    if (!config->adaptive || !router
    ||  ep_cadence_samples (router->cadence) < config->cadence.min_samples)
        return false;
    int64_t evasive = ep_cadence_timeout (router->cadence, config->evasive_ms);
    //  T2 keeps the configured proportion to T1 (3 by default): the probe's
    //  answer time grows with the router's cadence as T1 does.
    int64_t expire = (int64_t) ((double) evasive * config->expire_ms / config->evasive_ms);
    *evasive_ms = evasive;
    *expire_ms = expire > evasive? expire: evasive + 1;
    return true;
}

void
cadences_thresholds (cadences_t *self, const char *router, int64_t *evasive_ms, int64_t *expire_ms)
{
    s_thresholds (self, (s_router_t *) zhashx_lookup (self->routers, router), evasive_ms, expire_ms);
}

bool
cadences_info (cadences_t *self, const char *id, cadences_info_t *info)
{
    s_router_t *router = (s_router_t *) zhashx_lookup (self->routers, id);
    if (!router)
        return false;
    info->learnt = s_thresholds (self, router, &info->evasive_ms, &info->expire_ms);
    info->samples = ep_cadence_samples (router->cadence);
    info->interval_ms = ep_cadence_percentile_ms (router->cadence);
    return true;
}

bool
cadences_changed (cadences_t *self, const char *id, int64_t *from_ms, int64_t *to_ms)
{
    s_router_t *router = (s_router_t *) zhashx_lookup (self->routers, id);
    return self->config.adaptive && router
        && ep_cadence_changed (router->cadence, self->config.evasive_ms, from_ms, to_ms);
}

static int
s_compare (const void *a, const void *b)
{
    return strcmp (*(const char *const *) a, *(const char *const *) b);
}

size_t
cadences_routers (cadences_t *self, const char *after, const char **ids, size_t limit)
{
    //  A sorted copy of the ids above after: an operator's read, rare, of
    //  a few thousand routers at most, so no ordered index is kept.
    size_t size = zhashx_size (self->routers), count = 0;
    const char **all = (const char **) malloc ((size + 1) * sizeof (char *));
    EP_ASSERT (all);
    for (void *item = zhashx_first (self->routers); item; item = zhashx_next (self->routers)) {
        const char *id = (const char *) zhashx_cursor (self->routers);
        if (!after || strcmp (id, after) > 0)
            all [count++] = id;
    }
    qsort (all, count, sizeof (char *), s_compare);
    if (count > limit)
        count = limit;
    memcpy (ids, all, count * sizeof (char *));
    free (all);
    return count;
}

size_t
cadences_size (cadences_t *self)
{
    return zhashx_size (self->routers);
}
