/*  termpresence.c: router presence from watchdog beacons (see termpresence.h).

    Each instance keeps the set of routers it holds; a count per router says
    how many live instances hold it, so a router moving between instances
    never looks offline in between.
*/
#include "termpresence.h"

typedef struct {
    uint64_t epoch;             //  the instance's epoch (new at its restart)
    zhashx_t *routers;          //  router ids it holds (set)
    int64_t last_heard_ms;      //  when it was last heard (any presence event)
} s_instance_t;

struct _termpresence_t {
    int64_t expiry_ms;          //  instances silent this long expire
    zhashx_t *instances;        //  instance id -> s_instance_t
    zhashx_t *holders;          //  router id -> instances holding it (uintptr_t)
    zhashx_t *changes;          //  router id -> TERMPRESENCE_ONLINE / _OFFLINE
};

static void
s_instance_destroy (void **item)
{
    s_instance_t *instance = (s_instance_t *) *item;
    if (instance) {
        zhashx_destroy (&instance->routers);
        free (instance);
        *item = NULL;
    }
}

termpresence_t *
termpresence_new (int64_t expiry_ms)
{
    termpresence_t *self = (termpresence_t *) zmalloc (sizeof (termpresence_t));
    self->expiry_ms = expiry_ms;
    self->instances = zhashx_new ();
    zhashx_set_destructor (self->instances, s_instance_destroy);
    self->holders = zhashx_new ();
    self->changes = zhashx_new ();
    return self;
}

void
termpresence_destroy (termpresence_t **self_p)
{
    termpresence_t *self = *self_p;
    if (self) {
        zhashx_destroy (&self->instances);
        zhashx_destroy (&self->holders);
        zhashx_destroy (&self->changes);
        free (self);
        *self_p = NULL;
    }
}

static void
s_hold (termpresence_t *self, s_instance_t *instance, const char *router)
{
    if (!ep_id_valid (router) || zhashx_lookup (instance->routers, router))
        return;
    zhashx_insert (instance->routers, router, (void *) 1);
    uintptr_t count = (uintptr_t) zhashx_lookup (self->holders, router);
    zhashx_update (self->holders, router, (void *) (count + 1));
    if (count == 0)
        zhashx_update (self->changes, router, TERMPRESENCE_ONLINE);
}

static void
s_release (termpresence_t *self, s_instance_t *instance, const char *router)
{
    if (!zhashx_lookup (instance->routers, router))
        return;
    uintptr_t count = (uintptr_t) zhashx_lookup (self->holders, router);
    if (count <= 1) {
        zhashx_delete (self->holders, router);
        zhashx_update (self->changes, router, TERMPRESENCE_OFFLINE);
    }
    else
        zhashx_update (self->holders, router, (void *) (count - 1));
    zhashx_delete (instance->routers, router);
}

static void
s_release_all (termpresence_t *self, s_instance_t *instance)
{
    zlistx_t *held = zhashx_keys (instance->routers);
    for (const char *router = (const char *) zlistx_first (held); router;
         router = (const char *) zlistx_next (held))
        s_release (self, instance, router);
    zlistx_destroy (&held);
}

void
termpresence_apply (termpresence_t *self, const char *type, const char *instance_id,
                    uint64_t epoch, char *const *routers, size_t n, int64_t now_ms)
{
    if (!type || !instance_id || !*instance_id)
        return;
    bool join = streq (type, "join"), leave = streq (type, "leave"), beacon = streq (type, "beacon");
    if (!join && !leave && !beacon)
        return;
    s_instance_t *instance = (s_instance_t *) zhashx_lookup (self->instances, instance_id);
    if (!instance) {
        instance = (s_instance_t *) zmalloc (sizeof (s_instance_t));
        instance->epoch = epoch;
        instance->routers = zhashx_new ();
        zhashx_insert (self->instances, instance_id, instance);
    }
    if (instance->epoch != epoch) {
        //  The instance restarted: what it held before is gone.
        s_release_all (self, instance);
        instance->epoch = epoch;
    }
    instance->last_heard_ms = now_ms;
    if (join) {
        for (size_t i = 0; i < n; i++)
            if (routers [i])
                s_hold (self, instance, routers [i]);
    }
    else
    if (leave) {
        for (size_t i = 0; i < n; i++)
            if (routers [i])
                s_release (self, instance, routers [i]);
    }
    else {
        zhashx_t *listed = zhashx_new ();
        for (size_t i = 0; i < n; i++)
            if (routers [i])
                zhashx_update (listed, routers [i], (void *) 1);
        zlistx_t *held = zhashx_keys (instance->routers);
        for (const char *router = (const char *) zlistx_first (held); router;
             router = (const char *) zlistx_next (held))
            if (!zhashx_lookup (listed, router))
                s_release (self, instance, router);
        zlistx_destroy (&held);
        for (size_t i = 0; i < n; i++)
            if (routers [i])
                s_hold (self, instance, routers [i]);
        zhashx_destroy (&listed);
    }
}

void
termpresence_expire (termpresence_t *self, int64_t now_ms)
{
    zlistx_t *expired = zlistx_new ();
    s_instance_t *instance = (s_instance_t *) zhashx_first (self->instances);
    for (; instance; instance = (s_instance_t *) zhashx_next (self->instances))
        if (now_ms - instance->last_heard_ms > self->expiry_ms)
            zlistx_add_end (expired, (void *) zhashx_cursor (self->instances));
    for (const char *id = (const char *) zlistx_first (expired); id; id = (const char *) zlistx_next (expired)) {
        s_release_all (self, (s_instance_t *) zhashx_lookup (self->instances, id));
        zhashx_delete (self->instances, id);
    }
    zlistx_destroy (&expired);
}

bool
termpresence_online (termpresence_t *self, const char *router)
{
    return router && zhashx_lookup (self->holders, router) != NULL;
}

size_t
termpresence_routers (termpresence_t *self)
{
    return zhashx_size (self->holders);
}

size_t
termpresence_instances (termpresence_t *self)
{
    return zhashx_size (self->instances);
}

zhashx_t *
termpresence_changes (termpresence_t *self)
{
    zhashx_t *changes = self->changes;
    self->changes = zhashx_new ();
    return changes;
}
