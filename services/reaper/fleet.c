/*  fleet.c: instances and the routers they hold, with a holder count per
    router so a router moving between instances never looks offline.
*/
#include "fleet.h"

typedef struct {
    char *id;                   //  the instance's source id
    uint64_t epoch;             //  its epoch as last heard
    int64_t heard;              //  last message from it (monotonic ms)
    zhashx_t *routers;          //  router id -> (void *) 1: what it holds
} s_instance_t;

typedef struct {
    size_t holders;             //  live instances holding it
    int64_t since;              //  online since (monotonic ms)
} s_router_t;

struct _fleet_t {
    zhashx_t *instances;        //  instance id -> s_instance_t
    zhashx_t *routers;          //  router id -> s_router_t (online ones only)
    int64_t timeout_ms;         //  an instance unheard this long is gone
    fleet_change_fn *change;    //  transitions go here
    void *arg;                  //  for change
};

static void
s_instance_destroy (void **item)
{
    s_instance_t *instance = (s_instance_t *) *item;
    if (instance) {
        zhashx_destroy (&instance->routers);
        free (instance->id);
        free (instance);
        *item = NULL;
    }
}

fleet_t *
fleet_new (int64_t timeout_ms, fleet_change_fn *change, void *arg)
{
    fleet_t *self = (fleet_t *) zmalloc (sizeof (fleet_t));
    self->instances = zhashx_new ();
    zhashx_set_destructor (self->instances, s_instance_destroy);
    self->routers = zhashx_new ();
    zhashx_set_destructor (self->routers, (czmq_destructor *) zstr_free);
    self->timeout_ms = timeout_ms;
    self->change = change;
    self->arg = arg;
    return self;
}

void
fleet_destroy (fleet_t **self_p)
{
    fleet_t *self = *self_p;
    if (self) {
        zhashx_destroy (&self->instances);
        zhashx_destroy (&self->routers);
        free (self);
        *self_p = NULL;
    }
}

static void
s_hold (fleet_t *self, s_instance_t *instance, const char *router, int64_t now)
{
    if (zhashx_lookup (instance->routers, router))
        return;
    zhashx_insert (instance->routers, router, (void *) 1);
    s_router_t *state = (s_router_t *) zhashx_lookup (self->routers, router);
    if (state) {
        state->holders++;
        return;
    }
    state = (s_router_t *) zmalloc (sizeof (s_router_t));
    state->holders = 1;
    state->since = now;
    zhashx_insert (self->routers, router, state);
    if (self->change)
        self->change (self->arg, router, true, now);
}

static void
s_release (fleet_t *self, s_instance_t *instance, const char *router, int64_t now)
{
    if (!zhashx_lookup (instance->routers, router))
        return;
    char *id = strdup (router);         //  router may point into the hash
    zhashx_delete (instance->routers, id);
    s_router_t *state = (s_router_t *) zhashx_lookup (self->routers, id);
    if (state && --state->holders == 0) {
        zhashx_delete (self->routers, id);
        if (self->change)
            self->change (self->arg, id, false, now);
    }
    free (id);
}

//  Releases everything instance holds.
static void
s_release_all (fleet_t *self, s_instance_t *instance, int64_t now)
{
    zlistx_t *held = zhashx_keys (instance->routers);
    for (const char *router = (const char *) zlistx_first (held); router;
         router = (const char *) zlistx_next (held))
        s_release (self, instance, router, now);
    zlistx_destroy (&held);
}

//  The instance as of a message with epoch: created, or emptied if it
//  restarted (a new epoch: its connections are gone).
static s_instance_t *
s_heard (fleet_t *self, const char *id, uint64_t epoch, int64_t now)
{
    s_instance_t *instance = (s_instance_t *) zhashx_lookup (self->instances, id);
    if (!instance) {
        instance = (s_instance_t *) zmalloc (sizeof (s_instance_t));
        instance->id = strdup (id);
        instance->epoch = epoch;
        instance->routers = zhashx_new ();
        zhashx_insert (self->instances, id, instance);
    }
    else
    if (instance->epoch != epoch) {
        s_release_all (self, instance, now);
        instance->epoch = epoch;
    }
    instance->heard = now;
    return instance;
}

void
fleet_beacon (fleet_t *self, const char *instance_id, uint64_t epoch,
              char **routers, size_t count, int64_t now)
{
    s_instance_t *instance = s_heard (self, instance_id, epoch, now);
    zhashx_t *listed = zhashx_new ();
    for (size_t i = 0; i < count; i++)
        if (routers [i] && *routers [i])
            zhashx_insert (listed, routers [i], (void *) 1);
    zlistx_t *held = zhashx_keys (instance->routers);
    for (const char *router = (const char *) zlistx_first (held); router;
         router = (const char *) zlistx_next (held))
        if (!zhashx_lookup (listed, router))
            s_release (self, instance, router, now);
    zlistx_destroy (&held);
    for (size_t i = 0; i < count; i++)
        if (routers [i] && *routers [i])
            s_hold (self, instance, routers [i], now);
    zhashx_destroy (&listed);
}

//  A join (hold) or leave of one router at instance.
static void
s_one (fleet_t *self, const char *instance_id, uint64_t epoch, const char *router, bool hold,
       int64_t now)
{
    s_instance_t *instance = s_heard (self, instance_id, epoch, now);
    if (router && *router && hold)
        s_hold (self, instance, router, now);
    else
    if (router && *router)
        s_release (self, instance, router, now);
}

void
fleet_join (fleet_t *self, const char *instance_id, uint64_t epoch, const char *router,
            int64_t now)
{
    s_one (self, instance_id, epoch, router, true, now);
}

void
fleet_leave (fleet_t *self, const char *instance_id, uint64_t epoch, const char *router,
             int64_t now)
{
    s_one (self, instance_id, epoch, router, false, now);
}

int64_t
fleet_tick (fleet_t *self, int64_t now)
{
    zlistx_t *gone = zlistx_new ();
    int64_t next = INT64_MAX;
    s_instance_t *instance = (s_instance_t *) zhashx_first (self->instances);
    for (; instance; instance = (s_instance_t *) zhashx_next (self->instances)) {
        if (now - instance->heard >= self->timeout_ms)
            zlistx_add_end (gone, instance);
        else
        if (instance->heard + self->timeout_ms < next)
            next = instance->heard + self->timeout_ms;
    }
    for (instance = (s_instance_t *) zlistx_first (gone); instance;
         instance = (s_instance_t *) zlistx_next (gone)) {
        char *id = strdup (instance->id);
        s_release_all (self, instance, now);
        zhashx_delete (self->instances, id);
        free (id);
    }
    zlistx_destroy (&gone);
    return next;
}

bool
fleet_online (fleet_t *self, const char *router)
{
    return zhashx_lookup (self->routers, router) != NULL;
}

int64_t
fleet_online_since (fleet_t *self, const char *router)
{
    s_router_t *state = (s_router_t *) zhashx_lookup (self->routers, router);
    return state? state->since: -1;
}

size_t
fleet_instances (fleet_t *self)
{
    return zhashx_size (self->instances);
}

size_t
fleet_routers (fleet_t *self)
{
    return zhashx_size (self->routers);
}
