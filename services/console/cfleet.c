/*  fleet.c: routers, members, terminators, sessions, strays, refusals
    (cfleet.h). */
#include "cfleet.h"

typedef struct {
    char *id;                   //  the router's id
    char *name;                 //  from the model, NULL if not in it
    bool in_model;              //  the model has it
    bool enabled;               //  the model's flag
    char *instance;             //  the watchdog instance holding it, NULL: offline
    char *remote_addr;          //  where it connected from (connect events)
    int64_t since_ms;           //  when it last went online or offline
    int64_t flaps [CFLEET_FLAPS];    //  when it last disconnected, a ring
    size_t nflaps;              //  disconnects recorded in all
    double rtt [CFLEET_TREND];   //  RTT samples (ms), a ring
    size_t nrtt;                //  samples recorded in all
    double jitter_ms;           //  the latest jitter, -1 unknown
    int64_t terminators;        //  terminators it hosts
    int64_t sessions;           //  sessions open on it
} s_router_t;

typedef struct {
    char *id;                   //  the instance id
    json_t *beacon;             //  its last beacon
    int64_t seen_ms;            //  when it last beaconed
    json_t *connections;        //  what it last answered to "list", or NULL
} s_member_t;

struct _cfleet_t {
    zhashx_t *routers;          //  id -> s_router_t
    zhashx_t *members;          //  instance id -> s_member_t
    zhashx_t *terminators;      //  terminator id -> router id (char *)
    zhashx_t *term_states;      //  terminator id -> last event_type (char *)
    json_t *strays;             //  recent stray events (array, at most CFLEET_RECENT)
    json_t *stray_sources;      //  source ip -> count
    json_t *refusals;           //  recent channel refusals
    json_t *refusal_reasons;    //  reason -> count
    json_t *refusal_sources;    //  source ip -> count
    int64_t spins;              //  terminator spins seen
    int64_t overflow;           //  entries not kept because a bound was reached
    uint64_t revision;          //  model revision reflected
    char *generation;           //  model generation
};

static void
s_router_destroy (void **item)
{
    s_router_t *router = (s_router_t *) *item;
    free (router->id);
    free (router->name);
    free (router->instance);
    free (router->remote_addr);
    free (router);
    *item = NULL;
}

static void
s_member_destroy (void **item)
{
    s_member_t *member = (s_member_t *) *item;
    free (member->id);
    json_decref (member->beacon);
    json_decref (member->connections);
    free (member);
    *item = NULL;
}

cfleet_t *
cfleet_new (void)
{
    cfleet_t *self = (cfleet_t *) zmalloc (sizeof (cfleet_t));
    self->routers = zhashx_new ();
    zhashx_set_destructor (self->routers, s_router_destroy);
    self->members = zhashx_new ();
    zhashx_set_destructor (self->members, s_member_destroy);
    self->terminators = zhashx_new ();
    zhashx_set_destructor (self->terminators, (czmq_destructor *) zstr_free);
    zhashx_set_duplicator (self->terminators, (czmq_duplicator *) strdup);
    self->term_states = zhashx_new ();
    zhashx_set_destructor (self->term_states, (czmq_destructor *) zstr_free);
    zhashx_set_duplicator (self->term_states, (czmq_duplicator *) strdup);
    self->strays = json_array ();
    self->stray_sources = json_object ();
    self->refusals = json_array ();
    self->refusal_reasons = json_object ();
    self->refusal_sources = json_object ();
    return self;
}

void
cfleet_destroy (cfleet_t **self_p)
{
    cfleet_t *self = *self_p;
    if (self) {
        zhashx_destroy (&self->routers);
        zhashx_destroy (&self->members);
        zhashx_destroy (&self->terminators);
        zhashx_destroy (&self->term_states);
        json_decref (self->strays);
        json_decref (self->stray_sources);
        json_decref (self->refusals);
        json_decref (self->refusal_reasons);
        json_decref (self->refusal_sources);
        free (self->generation);
        free (self);
        *self_p = NULL;
    }
}

static void
s_set (char **field, const char *value)
{
    if (*field && value && streq (*field, value))
        return;
    free (*field);
    *field = value? strdup (value): NULL;
}

//  The router id, created if new and the bound allows; NULL otherwise.
static s_router_t *
s_router (cfleet_t *self, const char *id)
{
    if (!id || !*id)
        return NULL;
    s_router_t *router = (s_router_t *) zhashx_lookup (self->routers, id);
    if (!router) {
        if (zhashx_size (self->routers) >= CFLEET_MAX_ROUTERS) {
            self->overflow++;
            return NULL;
        }
        router = (s_router_t *) zmalloc (sizeof (s_router_t));
        router->id = strdup (id);
        router->jitter_ms = -1;
        zhashx_insert (self->routers, id, router);
    }
    return router;
}

//  Forgets a router nobody knows about any more (not in the model, offline).
static void
s_router_gc (cfleet_t *self, s_router_t *router)
{
    if (!router->in_model && !router->instance)
        zhashx_delete (self->routers, router->id);
}

void
cfleet_model_router (cfleet_t *self, const char *id, const char *name, bool enabled, bool exists)
{
    s_router_t *router = exists? s_router (self, id): (s_router_t *) zhashx_lookup (self->routers, id);
    if (!router)
        return;
    router->in_model = exists;
    router->enabled = enabled;
    s_set (&router->name, exists? name: NULL);
    if (!exists)
        s_router_gc (self, router);
}

void
cfleet_set_revision (cfleet_t *self, uint64_t revision, const char *generation)
{
    self->revision = revision;
    s_set (&self->generation, generation);
}

static const char *
s_str (json_t *event, const char *field)
{
    return json_string_value (json_object_get (event, field));
}

static void
s_online (cfleet_t *self, const char *id, const char *instance, int64_t wall_ms)
{
    s_router_t *router = s_router (self, id);
    if (!router)
        return;
    if (!router->instance || (instance && !streq (router->instance, instance)))
        router->since_ms = wall_ms;
    s_set (&router->instance, instance);
}

static void
s_offline (cfleet_t *self, const char *id, const char *instance, int64_t wall_ms)
{
    s_router_t *router = (s_router_t *) zhashx_lookup (self->routers, id);
    if (!router || !router->instance || (instance && !streq (router->instance, instance)))
        return;
    s_set (&router->instance, NULL);
    router->since_ms = wall_ms;
    router->flaps [router->nflaps++ % CFLEET_FLAPS] = wall_ms;
    s_router_gc (self, router);
}

static void
s_presence (cfleet_t *self, const char *type, json_t *event, int64_t wall_ms)
{
    const char *instance = s_str (event, "instance_id");
    json_t *routers = json_object_get (event, "routers");
    if (!instance)
        return;
    if (streq (type, "beacon")) {
        s_member_t *member = (s_member_t *) zhashx_lookup (self->members, instance);
        if (!member) {
            member = (s_member_t *) zmalloc (sizeof (s_member_t));
            member->id = strdup (instance);
            zhashx_insert (self->members, instance, member);
        }
        json_decref (member->beacon);
        member->beacon = json_incref (event);
        member->seen_ms = wall_ms;
    }
    size_t index;
    json_t *value;
    json_array_foreach (routers, index, value) {
        const char *id = json_string_value (value);
        if (!id)
            continue;
        if (streq (type, "leave"))
            s_offline (self, id, instance, wall_ms);
        else
            s_online (self, id, instance, wall_ms);
    }
}

//  "ip" of "ip:port" or "[v6]:port", into out.
static void
s_source (const char *address, char *out, size_t size)
{
    snprintf (out, size, "%s", address? address: "unknown");
    char *colon = strrchr (out, ':');
    if (colon && colon != out && (out [0] != '[' || colon [-1] == ']'))
        *colon = 0;
}

static void
s_count (cfleet_t *self, json_t *counts, const char *key)
{
    json_t *count = json_object_get (counts, key);
    if (!count && json_object_size (counts) >= CFLEET_MAX_SOURCES) {
        self->overflow++;
        return;
    }
    json_object_set_new (counts, key, json_integer (count? json_integer_value (count) + 1: 1));
}

static void
s_recent (json_t *list, json_t *event)
{
    json_array_append (list, event);
    if (json_array_size (list) > CFLEET_RECENT)
        json_array_remove (list, 0);
}

static void
s_terminator (cfleet_t *self, const char *type, json_t *event)
{
    const char *id = s_str (event, "terminator_id"), *router_id = s_str (event, "router_id");
    if (streq (type, "spin"))
        self->spins++;
    if (!id)
        return;
    const char *held = (const char *) zhashx_lookup (self->terminators, id);
    if (streq (type, "deleted")) {
        s_router_t *router = held? (s_router_t *) zhashx_lookup (self->routers, held): NULL;
        if (router && router->terminators > 0)
            router->terminators--;
        zhashx_delete (self->terminators, id);
        zhashx_delete (self->term_states, id);
        return;
    }
    if (!held && router_id) {
        if (zhashx_size (self->terminators) >= CFLEET_MAX_TERMINATORS) {
            self->overflow++;
            return;
        }
        zhashx_insert (self->terminators, id, (void *) router_id);
        s_router_t *router = s_router (self, router_id);
        if (router)
            router->terminators++;
    }
    zhashx_update (self->term_states, id, (void *) type);
}

void
cfleet_event (cfleet_t *self, json_t *event, int64_t wall_ms)
{
    const char *ns = s_str (event, "namespace"), *type = s_str (event, "type");
    if (!ns || !type)
        return;
    if (streq (ns, "presence"))
        s_presence (self, type, event, wall_ms);
    else
    if (streq (ns, "connect") && streq (type, "router-to-ctrl")) {
        s_router_t *router = (s_router_t *) zhashx_lookup (self->routers, s_str (event, "src_id")? s_str (event, "src_id"): "");
        if (router && json_is_true (json_object_get (event, "connected")))
            s_set (&router->remote_addr, s_str (event, "src_addr"));
    }
    else
    if (streq (ns, "terminator"))
        s_terminator (self, type, event);
    else
    if (streq (ns, "session")) {
        s_router_t *router = (s_router_t *) zhashx_lookup (self->routers,
                                                           s_str (event, "router_id")? s_str (event, "router_id"): "");
        if (router && streq (type, "created"))
            router->sessions++;
        else
        if (router && (streq (type, "closed") || streq (type, "reaped")) && router->sessions > 0)
            router->sessions--;
    }
    else
    if (streq (ns, "stray") || (streq (ns, "cluster"))) {
        char source [128];
        s_source (s_str (event, "remote_addr"), source, sizeof source);
        s_count (self, self->stray_sources, source);
        s_recent (self->strays, event);
    }
    else
    if (streq (ns, "channel")) {
        char source [128];
        s_source (s_str (event, "remote_addr"), source, sizeof source);
        s_count (self, self->refusal_sources, source);
        s_count (self, self->refusal_reasons, s_str (event, "reason")? s_str (event, "reason"): "unknown");
        s_recent (self->refusals, event);
    }
}

void
cfleet_connections (cfleet_t *self, const char *instance, json_t *connections, int64_t wall_ms)
{
    (void) wall_ms;
    s_member_t *member = (s_member_t *) zhashx_lookup (self->members, instance);
    if (!member)
        return;
    json_decref (member->connections);
    member->connections = json_incref (connections);
    size_t index;
    json_t *info;
    json_array_foreach (connections, index, info) {
        const char *role = s_str (info, "role"), *id = s_str (info, "id");
        s_router_t *router = role && id && streq (role, "router")?
            (s_router_t *) zhashx_lookup (self->routers, id): NULL;
        if (!router)
            continue;
        json_t *rtt = json_object_get (info, "rtt_ms"), *jitter = json_object_get (info, "jitter_ms");
        if (json_is_number (rtt) && json_number_value (rtt) >= 0)
            router->rtt [router->nrtt++ % CFLEET_TREND] = json_number_value (rtt);
        router->jitter_ms = json_is_number (jitter)? json_number_value (jitter): -1;
        if (s_str (info, "remote_addr"))
            s_set (&router->remote_addr, s_str (info, "remote_addr"));
    }
}

void
cfleet_expire (cfleet_t *self, int64_t wall_ms, int64_t timeout_ms)
{
    zlistx_t *gone = zlistx_new ();
    for (s_member_t *member = (s_member_t *) zhashx_first (self->members); member;
         member = (s_member_t *) zhashx_next (self->members))
        if (wall_ms - member->seen_ms > timeout_ms)
            zlistx_add_end (gone, member->id);
    for (const char *id = (const char *) zlistx_first (gone); id; id = (const char *) zlistx_next (gone)) {
        zlistx_t *held = zlistx_new ();
        for (s_router_t *router = (s_router_t *) zhashx_first (self->routers); router;
             router = (s_router_t *) zhashx_next (self->routers))
            if (router->instance && streq (router->instance, id))
                zlistx_add_end (held, router->id);
        for (const char *router = (const char *) zlistx_first (held); router;
             router = (const char *) zlistx_next (held))
            s_offline (self, router, id, wall_ms);
        zlistx_destroy (&held);
        zhashx_delete (self->members, id);
    }
    zlistx_destroy (&gone);
}

zhashx_t *
cfleet_instances (cfleet_t *self)
{
    zhashx_t *instances = zhashx_new ();
    zhashx_set_destructor (instances, (czmq_destructor *) zstr_free);
    zhashx_set_duplicator (instances, (czmq_duplicator *) strdup);
    for (s_member_t *member = (s_member_t *) zhashx_first (self->members); member;
         member = (s_member_t *) zhashx_next (self->members)) {
        const char *api = s_str (member->beacon, "api_address");
        if (api)
            zhashx_insert (instances, member->id, (void *) api);
    }
    return instances;
}

static json_t *
s_router_json (s_router_t *router)
{
    json_t *flaps = json_array (), *trend = json_array ();
    size_t n = router->nflaps < CFLEET_FLAPS? router->nflaps: CFLEET_FLAPS;
    for (size_t i = router->nflaps - n; i < router->nflaps; i++)
        json_array_append_new (flaps, json_integer (router->flaps [i % CFLEET_FLAPS]));
    n = router->nrtt < CFLEET_TREND? router->nrtt: CFLEET_TREND;
    for (size_t i = router->nrtt - n; i < router->nrtt; i++)
        json_array_append_new (trend, json_real (router->rtt [i % CFLEET_TREND]));
    json_t *object = json_pack ("{s:s, s:b, s:b, s:b, s:I, s:I, s:I, s:o, s:o}",
        "id", router->id, "in_model", router->in_model, "enabled", router->enabled,
        "online", router->instance != NULL, "since_ms", (json_int_t) router->since_ms,
        "terminators", (json_int_t) router->terminators, "sessions", (json_int_t) router->sessions,
        "disconnects_ms", flaps, "rtt_trend_ms", trend);
    json_object_set_new (object, "name", router->name? json_string (router->name): json_null ());
    json_object_set_new (object, "instance", router->instance? json_string (router->instance): json_null ());
    json_object_set_new (object, "remote_addr", router->remote_addr? json_string (router->remote_addr): json_null ());
    json_object_set_new (object, "rtt_ms", router->nrtt? json_real (router->rtt [(router->nrtt - 1) % CFLEET_TREND]): json_null ());
    json_object_set_new (object, "jitter_ms", router->jitter_ms >= 0? json_real (router->jitter_ms): json_null ());
    return object;
}

json_t *
cfleet_json (cfleet_t *self, int64_t wall_ms)
{
    json_t *routers = json_array (), *members = json_array (), *connections = json_array ();
    zlistx_t *ids = zhashx_keys (self->routers);
    zlistx_set_comparator (ids, (czmq_comparator *) strcmp);
    zlistx_sort (ids);
    int64_t online = 0, sessions = 0;
    for (const char *id = (const char *) zlistx_first (ids); id; id = (const char *) zlistx_next (ids)) {
        s_router_t *router = (s_router_t *) zhashx_lookup (self->routers, id);
        online += router->instance != NULL;
        sessions += router->sessions;
        json_array_append_new (routers, s_router_json (router));
    }
    zlistx_destroy (&ids);
    for (s_member_t *member = (s_member_t *) zhashx_first (self->members); member;
         member = (s_member_t *) zhashx_next (self->members)) {
        json_t *object = json_pack ("{s:s, s:I, s:O*}", "instance_id", member->id,
                                    "last_beacon_ms", (json_int_t) member->seen_ms, "beacon", member->beacon);
        json_array_append_new (members, object);
        if (member->connections)
            json_array_extend (connections, member->connections);
    }
    json_t *by_state = json_object ();
    for (const char *state = (const char *) zhashx_first (self->term_states); state;
         state = (const char *) zhashx_next (self->term_states)) {
        json_t *count = json_object_get (by_state, state);
        json_object_set_new (by_state, state, json_integer (count? json_integer_value (count) + 1: 1));
    }
    return json_pack ("{s:I, s:s?, s:I, s:o, s:o, s:o, s:{s:I, s:o, s:I}, s:{s:I, s:I}, "
                      "s:{s:O, s:O}, s:{s:O, s:O, s:O}, s:I}",
        "revision", (json_int_t) self->revision, "generation", self->generation,
        "time_ms", (json_int_t) wall_ms,
        "routers", routers, "members", members, "connections", connections,
        "terminators", "total", (json_int_t) zhashx_size (self->terminators), "by_state", by_state,
                       "spins", (json_int_t) self->spins,
        "summary", "online", (json_int_t) online, "sessions", (json_int_t) sessions,
        "strays", "recent", self->strays, "by_source", self->stray_sources,
        "refusals", "recent", self->refusals, "by_reason", self->refusal_reasons,
                    "by_source", self->refusal_sources,
        "overflow", (json_int_t) self->overflow);
}
