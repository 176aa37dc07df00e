/*  ep_model_view.c: the model as a follower holds it.

    One hash per entity type (id -> owned, unpacked Ep__Entity) plus an
    index service id -> routers hosting it. Unpacked copies cost a pack and
    an unpack per stored entity but make lookups free, and lookups are what
    followers do all day. Parts of a multi-part revision are kept as copies
    until the last arrives; only the next revision can be partial, because
    revisions are published in order. Entities replaced while a revision is
    applied are kept until the observer has seen them, so every before and
    after pointer of every event of a revision is valid during the calls.
*/
#include "ep_model_view.h"
#include <sodium.h>

//  Parts above this are not a real revision but a malformed message.
#define MAX_PARTS 65536

struct _ep_model_view_t {
    zhashx_t *tables [EP_MODEL_TYPE_MAX + 1]; //  per type: id -> Ep__Entity (owned)
    zhashx_t *hosting;          //  service id -> set (hash) of router ids
    char *generation;           //  the loaded store's generation, NULL before reset
    uint64_t revision;          //  last applied revision
    uint64_t pending_revision;  //  revision whose parts are kept, 0 = none
    uint32_t pending_parts;     //  its number of parts
    uint32_t pending_have;      //  parts kept so far
    Ep__ModelChange **pending;  //  [pending_parts] copies, NULL where missing
    ep_model_observer_fn *observer; //  told about applied changes, or NULL
    void *observer_arg;         //  its argument
    zlistx_t *cursor_keys;      //  ids of the iteration in progress, sorted
    Ep__EntityType cursor_type; //  the type being iterated
};

//  Events of one revision (or one adopt), notified after all are applied.
typedef struct {
    ep_model_event_t *items;    //  the events
    size_t count;               //  how many
    size_t size;                //  allocated
    Ep__Entity **dead;          //  entities replaced or removed, freed after notifying
    size_t dead_count;          //  how many
    size_t dead_size;           //  allocated
} s_events_t;

//  ---------------------------------------------------------------------
//  Entities

Ep__EntityType
ep_entity_type (const Ep__Entity *entity)
{
    switch (entity->kind_case) {
        case EP__ENTITY__KIND_ROUTER:     return EP__ENTITY_TYPE__ENTITY_ROUTER;
        case EP__ENTITY__KIND_SERVICE:    return EP__ENTITY_TYPE__ENTITY_SERVICE;
        case EP__ENTITY__KIND_IDENTITY:   return EP__ENTITY_TYPE__ENTITY_IDENTITY;
        case EP__ENTITY__KIND_CONTROLLER: return EP__ENTITY_TYPE__ENTITY_CONTROLLER;
        default:                          return EP__ENTITY_TYPE__ENTITY_UNSPECIFIED;
    }
}

const char *
ep_entity_id (const Ep__Entity *entity)
{
    switch (entity->kind_case) {
        case EP__ENTITY__KIND_ROUTER:     return entity->router? entity->router->id: NULL;
        case EP__ENTITY__KIND_SERVICE:    return entity->service? entity->service->id: NULL;
        case EP__ENTITY__KIND_IDENTITY:   return entity->identity? entity->identity->id: NULL;
        case EP__ENTITY__KIND_CONTROLLER: return entity->controller? entity->controller->id: NULL;
        default:                          return NULL;
    }
}

//  The packing of msg in a new buffer of *size_p bytes.
static uint8_t *
s_pack (const ProtobufCMessage *msg, size_t *size_p)
{
    size_t size = protobuf_c_message_get_packed_size (msg);
    uint8_t *data = (uint8_t *) malloc (size? size: 1);
    EP_ASSERT (data);
    EP_ASSERT (protobuf_c_message_pack (msg, data) == size);
    *size_p = size;
    return data;
}

//  A deep copy of msg: packing then unpacking is protobuf-c's only copy.
static ProtobufCMessage *
s_dup (const ProtobufCMessage *msg)
{
    size_t size;
    uint8_t *data = s_pack (msg, &size);
    ProtobufCMessage *copy = protobuf_c_message_unpack (msg->descriptor, NULL, size, data);
    free (data);
    EP_ASSERT (copy);           //  what we just packed must unpack
    return copy;
}

Ep__Entity *
ep_entity_dup (const Ep__Entity *entity)
{
    return (Ep__Entity *) s_dup (&entity->base);
}

//  True if a and b pack to the same bytes.
static bool
s_same (const Ep__Entity *a, const Ep__Entity *b)
{
    size_t a_size, b_size;
    uint8_t *a_data = s_pack (&a->base, &a_size);
    uint8_t *b_data = s_pack (&b->base, &b_size);
    bool same = a_size == b_size && memcmp (a_data, b_data, a_size) == 0;
    free (a_data);
    free (b_data);
    return same;
}

static bool
s_type_valid (int type)
{
    return type >= 1 && type <= EP_MODEL_TYPE_MAX;
}

static bool
s_entity_valid (const Ep__Entity *entity)
{
    const char *id = entity? ep_entity_id (entity): NULL;
    return entity && s_type_valid (ep_entity_type (entity)) && id && *id;
}

//  ---------------------------------------------------------------------
//  Construction

ep_model_view_t *
ep_model_view_new (void)
{
    ep_model_view_t *self = (ep_model_view_t *) zmalloc (sizeof (ep_model_view_t));
    for (int type = 1; type <= EP_MODEL_TYPE_MAX; type++)
        self->tables [type] = zhashx_new ();
    self->hosting = zhashx_new ();
    zhashx_set_destructor (self->hosting, (czmq_destructor *) zhashx_destroy);
    return self;
}

static void
s_drop_pending (ep_model_view_t *self)
{
    for (uint32_t part = 0; part < self->pending_parts; part++)
        if (self->pending [part])
            ep__model_change__free_unpacked (self->pending [part], NULL);
    free (self->pending);
    self->pending = NULL;
    self->pending_revision = 0;
    self->pending_parts = 0;
    self->pending_have = 0;
}

//  Frees every entity of every table and empties the tables and the index.
static void
s_clear (ep_model_view_t *self)
{
    for (int type = 1; type <= EP_MODEL_TYPE_MAX; type++) {
        Ep__Entity *entity = (Ep__Entity *) zhashx_first (self->tables [type]);
        for (; entity; entity = (Ep__Entity *) zhashx_next (self->tables [type]))
            ep__entity__free_unpacked (entity, NULL);
        zhashx_purge (self->tables [type]);
    }
    zhashx_purge (self->hosting);
}

void
ep_model_view_destroy (ep_model_view_t **self_p)
{
    ep_model_view_t *self = *self_p;
    if (self) {
        s_clear (self);
        for (int type = 1; type <= EP_MODEL_TYPE_MAX; type++)
            zhashx_destroy (&self->tables [type]);
        zhashx_destroy (&self->hosting);
        s_drop_pending (self);
        zlistx_destroy (&self->cursor_keys);
        free (self->generation);
        free (self);
        *self_p = NULL;
    }
}

void
ep_model_view_set_observer (ep_model_view_t *self, ep_model_observer_fn *observer, void *arg)
{
    self->observer = observer;
    self->observer_arg = arg;
}

//  ---------------------------------------------------------------------
//  Storing

//  Adds (add true) or removes router's hosted services in the index.
static void
s_index_router (ep_model_view_t *self, const Ep__Entity *entity, bool add)
{
    if (entity->kind_case != EP__ENTITY__KIND_ROUTER || !entity->router)
        return;
    const Ep__Router *router = entity->router;
    for (size_t i = 0; i < router->n_hosted; i++) {
        const char *service_id = router->hosted [i]->service_id;
        if (!service_id)
            continue;
        zhashx_t *routers = (zhashx_t *) zhashx_lookup (self->hosting, service_id);
        if (add) {
            if (!routers) {
                routers = zhashx_new ();
                zhashx_insert (self->hosting, service_id, routers);
            }
            zhashx_update (routers, router->id, (void *) 1);
        }
        else
        if (routers) {
            zhashx_delete (routers, router->id);
            if (zhashx_size (routers) == 0)
                zhashx_delete (self->hosting, service_id);
        }
    }
}

//  Stores entity (taken over) and returns the one it replaced, or NULL;
//  the caller frees that.
static Ep__Entity *
s_store (ep_model_view_t *self, Ep__Entity *entity)
{
    zhashx_t *table = self->tables [ep_entity_type (entity)];
    const char *id = ep_entity_id (entity);
    Ep__Entity *old = (Ep__Entity *) zhashx_lookup (table, id);
    if (old)
        s_index_router (self, old, false);
    zhashx_update (table, id, entity);
    s_index_router (self, entity, true);
    zlistx_destroy (&self->cursor_keys);
    return old;
}

//  Removes (type, id) and returns it, or NULL; the caller frees it.
static Ep__Entity *
s_remove (ep_model_view_t *self, Ep__EntityType type, const char *id)
{
    zhashx_t *table = self->tables [type];
    Ep__Entity *old = (Ep__Entity *) zhashx_lookup (table, id);
    if (old) {
        s_index_router (self, old, false);
        zhashx_delete (table, id);
    }
    zlistx_destroy (&self->cursor_keys);
    return old;
}

void
ep_model_view_reset (ep_model_view_t *self, const char *generation, uint64_t revision)
{
    s_clear (self);
    s_drop_pending (self);
    zlistx_destroy (&self->cursor_keys);
    free (self->generation);
    self->generation = generation? strdup (generation): NULL;
    self->revision = revision;
}

int
ep_model_view_put (ep_model_view_t *self, const Ep__Entity *entity)
{
    if (!s_entity_valid (entity))
        return -1;
    Ep__Entity *old = s_store (self, ep_entity_dup (entity));
    if (old)
        ep__entity__free_unpacked (old, NULL);
    return 0;
}

//  ---------------------------------------------------------------------
//  Applying changes

static void
s_events_add (s_events_t *events, Ep__ModelOp__Kind kind, Ep__EntityType type,
              const Ep__Entity *before, const Ep__Entity *after, uint64_t revision,
              const Ep__ModelOp *op)
{
    if (events->count == events->size) {
        events->size = events->size? events->size * 2: 16;
        events->items = (ep_model_event_t *) realloc (events->items,
                                                      events->size * sizeof (ep_model_event_t));
        EP_ASSERT (events->items);
    }
    ep_model_event_t *event = &events->items [events->count++];
    event->kind = kind;
    event->type = type;
    event->id = ep_entity_id (after? after: before);
    event->before = before;
    event->after = after;
    event->revision = revision;
    event->op = op;
}

//  Keeps entity alive until the events are delivered.
static void
s_events_bury (s_events_t *events, Ep__Entity *entity)
{
    if (!entity)
        return;
    if (events->dead_count == events->dead_size) {
        events->dead_size = events->dead_size? events->dead_size * 2: 16;
        events->dead = (Ep__Entity **) realloc (events->dead,
                                                events->dead_size * sizeof (Ep__Entity *));
        EP_ASSERT (events->dead);
    }
    events->dead [events->dead_count++] = entity;
}

//  Tells the observer about every event, then frees what was buried.
static void
s_events_deliver (ep_model_view_t *self, s_events_t *events)
{
    if (self->observer)
        for (size_t i = 0; i < events->count; i++)
            self->observer (self->observer_arg, &events->items [i]);
    for (size_t i = 0; i < events->dead_count; i++)
        ep__entity__free_unpacked (events->dead [i], NULL);
    free (events->dead);
    free (events->items);
}

static bool
s_op_valid (const Ep__ModelOp *op)
{
    if (!op->has_kind)
        return false;
    if (op->kind == EP__MODEL_OP__KIND__CREATED || op->kind == EP__MODEL_OP__KIND__UPDATED)
        return s_entity_valid (op->entity);
    if (op->kind == EP__MODEL_OP__KIND__DELETED)
        return op->has_type && s_type_valid (op->type) && op->id && *op->id;
    return false;
}

//  Applies every op of parts [0..count) in order as revision, then notifies.
static void
s_commit (ep_model_view_t *self, const Ep__ModelChange *const *parts, size_t count,
          uint64_t revision)
{
    s_events_t events = { 0 };
    for (size_t p = 0; p < count; p++)
        for (size_t i = 0; i < parts [p]->n_ops; i++) {
            const Ep__ModelOp *op = parts [p]->ops [i];
            if (op->kind == EP__MODEL_OP__KIND__DELETED) {
                Ep__Entity *old = s_remove (self, op->type, op->id);
                if (old) {
                    s_events_add (&events, EP__MODEL_OP__KIND__DELETED, op->type,
                                  old, NULL, revision, op);
                    s_events_bury (&events, old);
                }
            }
            else {
                Ep__Entity *copy = ep_entity_dup (op->entity);
                Ep__Entity *old = s_store (self, copy);
                s_events_add (&events, old? EP__MODEL_OP__KIND__UPDATED: EP__MODEL_OP__KIND__CREATED,
                              ep_entity_type (copy), old, copy, revision, op);
                s_events_bury (&events, old);
            }
        }
    self->revision = revision;
    s_events_deliver (self, &events);
}

ep_model_apply_t
ep_model_view_apply (ep_model_view_t *self, const Ep__ModelChange *change)
{
    if (!change->has_revision || change->revision == 0 || !change->generation)
        return EP_MODEL_INVALID;
    if (!self->generation || strcmp (self->generation, change->generation) != 0)
        return EP_MODEL_GENERATION;
    if (change->revision <= self->revision)
        return EP_MODEL_OLD;
    //  Revisions need not be consecutive (the etcd store's skip): a change
    //  says which one it follows, and must follow the one we hold.
    if (change->has_prev_revision && change->prev_revision >= change->revision)
        return EP_MODEL_INVALID;
    uint64_t follows = change->has_prev_revision? change->prev_revision: change->revision - 1;
    if (follows != self->revision)
        return EP_MODEL_GAP;

    uint32_t parts = change->has_parts && change->parts > 0? change->parts: 1;
    uint32_t part = change->has_part && change->part > 0? change->part: 1;
    if (parts > MAX_PARTS || part > parts)
        return EP_MODEL_INVALID;
    for (size_t i = 0; i < change->n_ops; i++)
        if (!s_op_valid (change->ops [i]))
            return EP_MODEL_INVALID;

    if (parts == 1) {
        s_drop_pending (self);
        s_commit (self, &change, 1, change->revision);
        return EP_MODEL_APPLIED;
    }
    if (self->pending_revision != change->revision || self->pending_parts != parts) {
        //  A new revision, or the same one split differently: start over.
        s_drop_pending (self);
        self->pending = (Ep__ModelChange **) calloc (parts, sizeof (Ep__ModelChange *));
        EP_ASSERT (self->pending);
        self->pending_revision = change->revision;
        self->pending_parts = parts;
    }
    if (self->pending [part - 1])
        return EP_MODEL_PARTIAL;
    self->pending [part - 1] = (Ep__ModelChange *) s_dup (&change->base);
    if (++self->pending_have < parts)
        return EP_MODEL_PARTIAL;

    s_commit (self, (const Ep__ModelChange *const *) self->pending, parts, change->revision);
    s_drop_pending (self);
    return EP_MODEL_APPLIED;
}

void
ep_model_view_drop_partial (ep_model_view_t *self)
{
    s_drop_pending (self);
}

static int
s_compare_ids (const void *a, const void *b)
{
    return strcmp (*(const char *const *) a, *(const char *const *) b);
}

//  The ids of table, sorted bytewise; the caller destroys the list. Not
//  with zlistx_sort: czmq 4.2.1's comb sort can stop with pairs unsorted.
static zlistx_t *
s_sorted_ids (zhashx_t *table)
{
    zlistx_t *ids = zhashx_keys (table);
    EP_ASSERT (ids);
    size_t n = zlistx_size (ids), i = 0;
    char **array = (char **) malloc ((n + 1) * sizeof (char *));
    EP_ASSERT (array);
    char *id;
    while ((id = (char *) zlistx_detach (ids, NULL)))
        array [i++] = id;
    qsort (array, n, sizeof (char *), s_compare_ids);
    //  The list keeps owning the strings, without copying them again.
    zlistx_set_duplicator (ids, NULL);
    for (i = 0; i < n; i++)
        zlistx_add_end (ids, array [i]);
    free (array);
    return ids;
}

void
ep_model_view_adopt (ep_model_view_t *self, ep_model_view_t **source_p)
{
    ep_model_view_t *source = *source_p;
    EP_ASSERT (source && source != self);
    s_events_t events = { 0 };
    for (int type = 1; type <= EP_MODEL_TYPE_MAX; type++) {
        zlistx_t *ids = s_sorted_ids (source->tables [type]);
        const char *id = (const char *) zlistx_first (ids);
        for (; id; id = (const char *) zlistx_next (ids)) {
            const Ep__Entity *after = (const Ep__Entity *) zhashx_lookup (source->tables [type], id);
            const Ep__Entity *before = (const Ep__Entity *) zhashx_lookup (self->tables [type], id);
            if (!before)
                s_events_add (&events, EP__MODEL_OP__KIND__CREATED, type, NULL, after,
                              source->revision, NULL);
            else
            if (!s_same (before, after))
                s_events_add (&events, EP__MODEL_OP__KIND__UPDATED, type, before, after,
                              source->revision, NULL);
        }
        zlistx_destroy (&ids);
        ids = s_sorted_ids (self->tables [type]);
        id = (const char *) zlistx_first (ids);
        for (; id; id = (const char *) zlistx_next (ids))
            if (!zhashx_lookup (source->tables [type], id))
                s_events_add (&events, EP__MODEL_OP__KIND__DELETED, type,
                              zhashx_lookup (self->tables [type], id), NULL,
                              source->revision, NULL);
        zlistx_destroy (&ids);

        zhashx_t *swap = self->tables [type];
        self->tables [type] = source->tables [type];
        source->tables [type] = swap;
    }
    zhashx_t *hosting = self->hosting;
    self->hosting = source->hosting;
    source->hosting = hosting;
    char *generation = self->generation;
    self->generation = source->generation;
    source->generation = generation;
    self->revision = source->revision;
    s_drop_pending (self);
    zlistx_destroy (&self->cursor_keys);

    //  The old entities now live in source: free them only after notifying.
    s_events_deliver (self, &events);
    ep_model_view_destroy (source_p);
}

//  ---------------------------------------------------------------------
//  Reading

const Ep__Entity *
ep_model_view_get (ep_model_view_t *self, Ep__EntityType type, const char *id)
{
    if (!s_type_valid (type) || !id)
        return NULL;
    return (const Ep__Entity *) zhashx_lookup (self->tables [type], id);
}

const Ep__Entity *
ep_model_view_first (ep_model_view_t *self, Ep__EntityType type)
{
    zlistx_destroy (&self->cursor_keys);
    if (!s_type_valid (type))
        return NULL;
    self->cursor_keys = s_sorted_ids (self->tables [type]);
    self->cursor_type = type;
    const char *id = (const char *) zlistx_first (self->cursor_keys);
    return id? (const Ep__Entity *) zhashx_lookup (self->tables [type], id): NULL;
}

const Ep__Entity *
ep_model_view_next (ep_model_view_t *self)
{
    if (!self->cursor_keys)
        return NULL;
    const char *id = (const char *) zlistx_next (self->cursor_keys);
    return id? (const Ep__Entity *) zhashx_lookup (self->tables [self->cursor_type], id): NULL;
}

size_t
ep_model_view_count (ep_model_view_t *self, Ep__EntityType type)
{
    return s_type_valid (type)? zhashx_size (self->tables [type]): 0;
}

size_t
ep_model_view_size (ep_model_view_t *self)
{
    size_t size = 0;
    for (int type = 1; type <= EP_MODEL_TYPE_MAX; type++)
        size += zhashx_size (self->tables [type]);
    return size;
}

zlistx_t *
ep_model_view_routers_hosting (ep_model_view_t *self, const char *service_id)
{
    zhashx_t *routers = service_id? (zhashx_t *) zhashx_lookup (self->hosting, service_id): NULL;
    if (!routers) {
        zlistx_t *empty = zlistx_new ();
        zlistx_set_destructor (empty, (czmq_destructor *) zstr_free);
        return empty;
    }
    return s_sorted_ids (routers);
}

uint64_t
ep_model_view_revision (ep_model_view_t *self)
{
    return self->revision;
}

const char *
ep_model_view_generation (ep_model_view_t *self)
{
    return self->generation;
}

bool
ep_model_view_partial (ep_model_view_t *self)
{
    return self->pending_have > 0;
}

//  ---------------------------------------------------------------------
//  Digest

//  A protobuf-c output buffer that feeds a hash instead of memory, so the
//  digest needs no allocation per entity.
typedef struct {
    ProtobufCBuffer base;       //  protobuf-c's buffer interface
    crypto_generichash_state *state; //  the hash being fed
} s_hash_buffer_t;

static void
s_hash_append (ProtobufCBuffer *buffer, size_t len, const uint8_t *data)
{
    s_hash_buffer_t *hash = (s_hash_buffer_t *) buffer;
    crypto_generichash_update (hash->state, data, len);
}

static void
s_hash_entity (crypto_generichash_state *state, const Ep__Entity *entity)
{
    s_hash_buffer_t buffer = { .base = { .append = s_hash_append }, .state = state };
    protobuf_c_message_pack_to_buffer (&entity->base, &buffer.base);
}

void
ep_model_view_digest (ep_model_view_t *self, uint8_t out [EP_MODEL_DIGEST_SIZE])
{
    EP_ASSERT (sodium_init () >= 0);
    crypto_generichash_state state;
    crypto_generichash_init (&state, NULL, 0, EP_MODEL_DIGEST_SIZE);
    for (int type = 1; type <= EP_MODEL_TYPE_MAX; type++) {
        zlistx_t *ids = s_sorted_ids (self->tables [type]);
        const char *id = (const char *) zlistx_first (ids);
        for (; id; id = (const char *) zlistx_next (ids))
            s_hash_entity (&state, (const Ep__Entity *) zhashx_lookup (self->tables [type], id));
        zlistx_destroy (&ids);
    }
    crypto_generichash_final (&state, out, EP_MODEL_DIGEST_SIZE);
}

static int
s_compare_entities (const void *a, const void *b)
{
    const Ep__Entity *x = *(const Ep__Entity *const *) a;
    const Ep__Entity *y = *(const Ep__Entity *const *) b;
    int x_type = ep_entity_type (x), y_type = ep_entity_type (y);
    if (x_type != y_type)
        return x_type < y_type? -1: 1;
    const char *x_id = ep_entity_id (x), *y_id = ep_entity_id (y);
    return strcmp (x_id? x_id: "", y_id? y_id: "");
}

void
ep_model_digest_entities (Ep__Entity **entities, size_t n, uint8_t out [EP_MODEL_DIGEST_SIZE])
{
    EP_ASSERT (sodium_init () >= 0);
    Ep__Entity **sorted = (Ep__Entity **) malloc ((n? n: 1) * sizeof (Ep__Entity *));
    EP_ASSERT (sorted);
    if (n)
        memcpy (sorted, entities, n * sizeof (Ep__Entity *));
    qsort (sorted, n, sizeof (Ep__Entity *), s_compare_entities);
    crypto_generichash_state state;
    crypto_generichash_init (&state, NULL, 0, EP_MODEL_DIGEST_SIZE);
    for (size_t i = 0; i < n; i++)
        s_hash_entity (&state, sorted [i]);
    crypto_generichash_final (&state, out, EP_MODEL_DIGEST_SIZE);
    free (sorted);
}

char *
ep_model_digest_hex (const uint8_t digest [EP_MODEL_DIGEST_SIZE],
                     char out [EP_MODEL_DIGEST_HEX_SIZE])
{
    sodium_bin2hex (out, EP_MODEL_DIGEST_HEX_SIZE, digest, EP_MODEL_DIGEST_SIZE);
    return out;
}

const char *
ep_model_apply_name (ep_model_apply_t result)
{
    switch (result) {
        case EP_MODEL_APPLIED:    return "applied";
        case EP_MODEL_OLD:        return "old";
        case EP_MODEL_PARTIAL:    return "partial";
        case EP_MODEL_GAP:        return "gap";
        case EP_MODEL_GENERATION: return "generation";
        case EP_MODEL_INVALID:    return "invalid";
    }
    return "unknown";
}
