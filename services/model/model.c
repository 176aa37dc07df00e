/*  model.c: the router model over SQLite.

    Entities are stored whole as packed ep.Entity (with their meta) plus the
    columns queries need (name, the hosted table). Every committed write
    request takes the next revision and appends its ModelChange to the
    change log, which keeps the last `retain` revisions. Messages built here
    are allocated with malloc piece by piece, exactly as protobuf-c's
    unpacker would, so protobuf-c's free_unpacked releases them.

    Snapshots are read through their own read-only connection holding one
    read transaction: WAL gives it a fixed view while writes go on, so every
    page of a snapshot is pinned to the revision of its first page.
*/
#include "model.h"
#include "ep_codec.h"
#include "ep_log.h"
#include "ep_model_view.h"
#include <stdarg.h>
#include <sqlite3.h>

#define SNAPSHOT_IDLE_MS    30000   //  a snapshot not continued for this long ends
#define SNAPSHOT_MAX        16      //  concurrent snapshots; the oldest is ended
#define PAGE_DEFAULT        100
#define PAGE_MAX            1000
#define CHANGES_DEFAULT     1000
#define NAME_MAX_LEN        256
#define TAG_VALUE_MAX_LEN   256
//  What a reply may carry of entities or changes: a reply must fit in one
//  message (EP_CODEC_DEFAULT_CAP), with room for its other fields.
#define REPLY_BUDGET        (EP_CODEC_DEFAULT_CAP - 65536u)

const char *const model_migrations [] = {
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE entities (type INTEGER NOT NULL, id TEXT NOT NULL, name TEXT,"
    "  version INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (type, id)) WITHOUT ROWID;"
    "CREATE INDEX entities_by_name ON entities (type, name, id);"
    "CREATE TABLE hosted (service_id TEXT NOT NULL, router_id TEXT NOT NULL,"
    "  PRIMARY KEY (service_id, router_id)) WITHOUT ROWID;"
    "CREATE INDEX hosted_by_router ON hosted (router_id);"
    "CREATE TABLE changes (revision INTEGER PRIMARY KEY, body BLOB NOT NULL);",
    //  2: the replies to writes, for retries across a restart (the table
    //  ep_replycache_save writes; main.c fills it in each write's
    //  transaction).
    "CREATE TABLE replies (seq INTEGER PRIMARY KEY, stored_ms INTEGER NOT NULL,"
    "  caller TEXT NOT NULL, request_id TEXT NOT NULL, digest BLOB NOT NULL,"
    "  reply BLOB NOT NULL);"
};
const size_t model_migrations_count = EP_COUNT (model_migrations);

typedef struct {
    char id [17];               //  token prefix
    sqlite3 *db;                //  read-only connection in a read transaction
    uint64_t revision;          //  the revision it is pinned to
    int64_t last_used_ms;       //  for expiry
} s_snapshot_t;

struct _model_t {
    ep_store_t *store;          //  the database (borrowed)
    uint64_t revision;          //  last committed revision
    uint64_t pending;           //  revision of the last write in the open transaction
    uint64_t retain;            //  revisions kept in the change log
    char generation [33];       //  store generation id
    zhashx_t *snapshots;        //  id -> s_snapshot_t
};

//  ---------------------------------------------------------------------
//  Ownership of what a result points to

static void
s_free_entity (void *ptr)
{
    ep__entity__free_unpacked ((Ep__Entity *) ptr, NULL);
}

static void
s_free_change (void *ptr)
{
    ep__model_change__free_unpacked ((Ep__ModelChange *) ptr, NULL);
}

void
model_result_init (model_result_t *result, const char *request_id)
{
    memset (result, 0, sizeof *result);
    ep__model_reply__init (&result->reply);
    ep__status__init (&result->status);
    result->status.has_code = true;
    result->status.code = EP__STATUS__CODE__OK;
    result->reply.status = &result->status;
    result->reply.request_id = (char *) request_id;
    result->owned = ep_owned_new ();
}

void
model_result_clear (model_result_t *result)
{
    ep_owned_destroy (&result->owned);
    if (result->change)
        model_change_free (result->change);
    result->change = NULL;
}

void
model_change_free (Ep__ModelChange *change)
{
    ep__model_change__free_unpacked (change, NULL);
}

static void
s_fail (model_result_t *result, Ep__Status__Code code, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (result->message, sizeof result->message, format, args);
    va_end (args);
    result->status.code = code;
    result->status.message = result->message;
}

//  ---------------------------------------------------------------------
//  Entities

static const char *
s_type_name (Ep__EntityType type)
{
    switch (type) {
        case EP__ENTITY_TYPE__ENTITY_ROUTER:     return "router";
        case EP__ENTITY_TYPE__ENTITY_SERVICE:    return "service";
        case EP__ENTITY_TYPE__ENTITY_IDENTITY:   return "identity";
        case EP__ENTITY_TYPE__ENTITY_CONTROLLER: return "controller";
        default:                                 return "entity";
    }
}

static Ep__EntityType
s_type_of (const Ep__Entity *entity)
{
    switch (entity->kind_case) {
        case EP__ENTITY__KIND_ROUTER:     return EP__ENTITY_TYPE__ENTITY_ROUTER;
        case EP__ENTITY__KIND_SERVICE:    return EP__ENTITY_TYPE__ENTITY_SERVICE;
        case EP__ENTITY__KIND_IDENTITY:   return EP__ENTITY_TYPE__ENTITY_IDENTITY;
        case EP__ENTITY__KIND_CONTROLLER: return EP__ENTITY_TYPE__ENTITY_CONTROLLER;
        default:                          return EP__ENTITY_TYPE__ENTITY_UNSPECIFIED;
    }
}

//  Pointers to the fields every kind has: id, name, meta.
typedef struct {
    char **id;
    char **name;                //  NULL for controllers (no name)
    Ep__EntityMeta **meta;
    protobuf_c_boolean *has_enabled;
    protobuf_c_boolean *enabled;
    size_t *n_tags;
    Ep__Tag ***tags;
} s_fields_t;

static bool
s_fields (Ep__Entity *entity, s_fields_t *fields)
{
    memset (fields, 0, sizeof *fields);
    switch (entity->kind_case) {
        case EP__ENTITY__KIND_ROUTER:
            if (!entity->router) return false;
            fields->id = &entity->router->id;
            fields->name = &entity->router->name;
            fields->meta = &entity->router->meta;
            fields->has_enabled = &entity->router->has_enabled;
            fields->enabled = &entity->router->enabled;
            fields->n_tags = &entity->router->n_tags;
            fields->tags = &entity->router->tags;
            return true;
        case EP__ENTITY__KIND_SERVICE:
            if (!entity->service) return false;
            fields->id = &entity->service->id;
            fields->name = &entity->service->name;
            fields->meta = &entity->service->meta;
            fields->has_enabled = &entity->service->has_enabled;
            fields->enabled = &entity->service->enabled;
            fields->n_tags = &entity->service->n_tags;
            fields->tags = &entity->service->tags;
            return true;
        case EP__ENTITY__KIND_IDENTITY:
            if (!entity->identity) return false;
            fields->id = &entity->identity->id;
            fields->name = &entity->identity->name;
            fields->meta = &entity->identity->meta;
            fields->has_enabled = &entity->identity->has_enabled;
            fields->enabled = &entity->identity->enabled;
            fields->n_tags = &entity->identity->n_tags;
            fields->tags = &entity->identity->tags;
            return true;
        case EP__ENTITY__KIND_CONTROLLER:
            if (!entity->controller) return false;
            fields->id = &entity->controller->id;
            fields->meta = &entity->controller->meta;
            return true;
        default:
            return false;
    }
}

//  A deep copy, allocated as protobuf-c's unpacker does.
static Ep__Entity *
s_copy (const Ep__Entity *entity)
{
    size_t size = ep__entity__get_packed_size (entity);
    uint8_t *buf = (uint8_t *) malloc (size + 1);
    ep__entity__pack (entity, buf);
    Ep__Entity *copy = ep__entity__unpack (NULL, size, buf);
    free (buf);
    EP_ASSERT (copy);
    return copy;
}

static void
s_set_string (char **field, const char *value)
{
    free (*field);
    *field = value? strdup (value): NULL;
}

//  Loads (type, id) from the store; NULL if absent.
static Ep__Entity *
s_load (model_t *self, Ep__EntityType type, const char *id)
{
    sqlite3_stmt *stmt = ep_store_stmt (self->store,
        "SELECT body FROM entities WHERE type = ?1 AND id = ?2");
    EP_ASSERT (stmt);
    sqlite3_bind_int (stmt, 1, type);
    sqlite3_bind_text (stmt, 2, id, -1, SQLITE_STATIC);
    Ep__Entity *entity = NULL;
    if (ep_store_step (self->store, stmt) == 1)
        entity = ep__entity__unpack (NULL, sqlite3_column_bytes (stmt, 0),
                                     (const uint8_t *) sqlite3_column_blob (stmt, 0));
    sqlite3_reset (stmt);
    return entity;
}

static bool
s_exists (model_t *self, Ep__EntityType type, const char *id)
{
    Ep__Entity *entity = s_load (self, type, id);
    if (entity)
        ep__entity__free_unpacked (entity, NULL);
    return entity != NULL;
}

//  Writes entity (and its hosted rows, for routers). Returns 0 or -1.
static int
s_save (model_t *self, Ep__Entity *entity)
{
    s_fields_t fields;
    EP_ASSERT (s_fields (entity, &fields));
    size_t size = ep__entity__get_packed_size (entity);
    uint8_t *body = (uint8_t *) malloc (size + 1);
    ep__entity__pack (entity, body);
    sqlite3_stmt *stmt = ep_store_stmt (self->store,
        "INSERT OR REPLACE INTO entities (type, id, name, version, body) VALUES (?1, ?2, ?3, ?4, ?5)");
    EP_ASSERT (stmt);
    sqlite3_bind_int (stmt, 1, s_type_of (entity));
    sqlite3_bind_text (stmt, 2, *fields.id, -1, SQLITE_STATIC);
    if (fields.name && *fields.name)
        sqlite3_bind_text (stmt, 3, *fields.name, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 4, (sqlite3_int64) (*fields.meta)->version);
    sqlite3_bind_blob (stmt, 5, body, (int) size, SQLITE_STATIC);
    int rc = ep_store_step (self->store, stmt) < 0? -1: 0;
    free (body);
    if (rc == 0 && entity->kind_case == EP__ENTITY__KIND_ROUTER) {
        Ep__Router *router = entity->router;
        stmt = ep_store_stmt (self->store, "DELETE FROM hosted WHERE router_id = ?1");
        sqlite3_bind_text (stmt, 1, router->id, -1, SQLITE_STATIC);
        rc = ep_store_step (self->store, stmt) < 0? -1: 0;
        for (size_t i = 0; rc == 0 && i < router->n_hosted; i++) {
            stmt = ep_store_stmt (self->store,
                "INSERT INTO hosted (service_id, router_id) VALUES (?1, ?2)");
            sqlite3_bind_text (stmt, 1, router->hosted [i]->service_id, -1, SQLITE_STATIC);
            sqlite3_bind_text (stmt, 2, router->id, -1, SQLITE_STATIC);
            rc = ep_store_step (self->store, stmt) < 0? -1: 0;
        }
    }
    return rc;
}

static int
s_remove (model_t *self, Ep__EntityType type, const char *id)
{
    sqlite3_stmt *stmt = ep_store_stmt (self->store,
        "DELETE FROM entities WHERE type = ?1 AND id = ?2");
    sqlite3_bind_int (stmt, 1, type);
    sqlite3_bind_text (stmt, 2, id, -1, SQLITE_STATIC);
    int rc = ep_store_step (self->store, stmt) < 0? -1: 0;
    if (rc == 0 && type == EP__ENTITY_TYPE__ENTITY_ROUTER) {
        stmt = ep_store_stmt (self->store, "DELETE FROM hosted WHERE router_id = ?1");
        sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
        rc = ep_store_step (self->store, stmt) < 0? -1: 0;
    }
    return rc;
}

//  ---------------------------------------------------------------------
//  Validation: every message names the write and the field.

static bool
s_validate (model_t *self, Ep__Entity *entity, const char *where, model_result_t *result)
{
    s_fields_t fields;
    if (!s_fields (entity, &fields)) {
        s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                "%sentity: set exactly one of router, service, identity, controller", where);
        return false;
    }
    const char *type = s_type_name (s_type_of (entity));
    if (*fields.id && !ep_id_valid (*fields.id)) {
        s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                "%s%s.id \"%.64s\": use 1 to 64 of A-Z a-z 0-9 _ -", where, type, *fields.id);
        return false;
    }
    if (fields.name && *fields.name && strlen (*fields.name) > NAME_MAX_LEN) {
        s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                "%s%s.name: at most %d characters", where, type, NAME_MAX_LEN);
        return false;
    }
    for (size_t i = 0; fields.tags && i < *fields.n_tags; i++) {
        Ep__Tag *tag = (*fields.tags) [i];
        if (!tag->key || !ep_id_valid (tag->key)
        ||  (tag->value && strlen (tag->value) > TAG_VALUE_MAX_LEN)) {
            s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                    "%s%s.tags[%zu]: key of 1 to 64 of A-Z a-z 0-9 _ -, value of at most %d characters",
                    where, type, i, TAG_VALUE_MAX_LEN);
            return false;
        }
        for (size_t j = 0; j < i; j++)
            if (streq ((*fields.tags) [j]->key, tag->key)) {
                s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                        "%s%s.tags: key \"%s\" appears twice", where, type, tag->key);
                return false;
            }
    }
    if (entity->kind_case == EP__ENTITY__KIND_CONTROLLER
    &&  entity->controller->address && !strchr (entity->controller->address, ':')) {
        s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                "%scontroller.address \"%.64s\": use host:port", where, entity->controller->address);
        return false;
    }
    if (entity->kind_case == EP__ENTITY__KIND_ROUTER) {
        Ep__Router *router = entity->router;
        for (size_t i = 0; i < router->n_hosted; i++) {
            Ep__HostedService *hosted = router->hosted [i];
            if (!hosted->service_id || !ep_id_valid (hosted->service_id)) {
                s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                        "%srouter.hosted[%zu].service_id: a service id is required", where, i);
                return false;
            }
            if (hosted->cost > 65535) {
                s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                        "%srouter.hosted[%zu].cost %u: use 0 to 65535", where, i, hosted->cost);
                return false;
            }
            if (hosted->precedence > EP__PRECEDENCE__PRECEDENCE_FAILED) {
                s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                        "%srouter.hosted[%zu].precedence: use default, required or failed", where, i);
                return false;
            }
            for (size_t j = 0; j < i; j++)
                if (streq (router->hosted [j]->service_id, hosted->service_id)) {
                    s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                            "%srouter.hosted: service \"%s\" appears twice", where, hosted->service_id);
                    return false;
                }
            if (!s_exists (self, EP__ENTITY_TYPE__ENTITY_SERVICE, hosted->service_id)) {
                s_fail (result, EP__STATUS__CODE__FAILED_PRECONDITION,
                        "%srouter.hosted[%zu]: service \"%s\" does not exist; create it first",
                        where, i, hosted->service_id);
                return false;
            }
        }
    }
    return true;
}

//  ---------------------------------------------------------------------
//  Changes

static Ep__ModelOp *
s_op_add (Ep__ModelChange *change, Ep__ModelOp__Kind kind, Ep__EntityType type, const char *id)
{
    Ep__ModelOp *op = (Ep__ModelOp *) malloc (sizeof (Ep__ModelOp));
    ep__model_op__init (op);
    op->has_kind = true;
    op->kind = kind;
    op->has_type = true;
    op->type = type;
    op->id = strdup (id);
    change->ops = (Ep__ModelOp **) realloc (change->ops, (change->n_ops + 1) * sizeof (Ep__ModelOp *));
    change->ops [change->n_ops++] = op;
    return op;
}

static void
s_strings_add (char ***array, size_t *count, const char *value)
{
    *array = (char **) realloc (*array, (*count + 1) * sizeof (char *));
    (*array) [(*count)++] = strdup (value);
}

static bool
s_hosts (const Ep__Router *router, const char *service_id)
{
    for (size_t i = 0; router && i < router->n_hosted; i++)
        if (streq (router->hosted [i]->service_id, service_id))
            return true;
    return false;
}

//  Records the hosted-list delta between before and after on op.
static void
s_hosted_delta (Ep__ModelOp *op, const Ep__Router *before, const Ep__Router *after)
{
    for (size_t i = 0; after && i < after->n_hosted; i++)
        if (!s_hosts (before, after->hosted [i]->service_id))
            s_strings_add (&op->hosted_added, &op->n_hosted_added, after->hosted [i]->service_id);
    for (size_t i = 0; before && i < before->n_hosted; i++)
        if (!s_hosts (after, before->hosted [i]->service_id))
            s_strings_add (&op->hosted_removed, &op->n_hosted_removed, before->hosted [i]->service_id);
}

static Ep__EntityMeta *
s_meta_new (uint64_t revision, uint64_t create_revision, int64_t created_at, int64_t now_ms,
            const ep_caller_t *caller)
{
    Ep__EntityMeta *meta = (Ep__EntityMeta *) malloc (sizeof (Ep__EntityMeta));
    ep__entity_meta__init (meta);
    meta->has_version = meta->has_create_revision = true;
    meta->version = revision;
    meta->create_revision = create_revision;
    meta->has_created_at_ms = meta->has_updated_at_ms = true;
    meta->created_at_ms = created_at;
    meta->updated_at_ms = now_ms;
    Ep__Principal *who = (Ep__Principal *) malloc (sizeof (Ep__Principal));
    ep__principal__init (who);
    who->key = strdup (caller->key);
    who->role = strdup (caller->role);
    who->name = strdup (caller->name);
    meta->updated_by = who;
    return meta;
}

//  ---------------------------------------------------------------------
//  Writes

typedef struct {
    uint64_t revision;          //  the revision being written
    int64_t now_ms;             //  wall clock
    const ep_caller_t *caller;  //  who
    Ep__ModelChange *change;    //  ops collected
    model_result_t *result;     //  errors, written entities
    char where [32];            //  "write 2: " inside a transaction
} s_write_ctx_t;

static bool
s_check_version (s_write_ctx_t *ctx, const Ep__ModelWrite *write, const Ep__Entity *current,
                 const char *type, const char *id)
{
    s_fields_t fields;
    EP_ASSERT (s_fields ((Ep__Entity *) current, &fields));
    uint64_t version = (*fields.meta)->version;
    if (write->has_expected_version && write->expected_version
    &&  write->expected_version != version) {
        s_fail (ctx->result, EP__STATUS__CODE__CONFLICT,
                "%s%s %s is at version %llu, not %llu: read it again and retry",
                ctx->where, type, id, (unsigned long long) version,
                (unsigned long long) write->expected_version);
        ctx->result->reply.has_current_version = true;
        ctx->result->reply.current_version = version;
        return false;
    }
    return true;
}

//  Adds a copy of entity to the reply.
static void
s_reply_entity (model_result_t *result, const Ep__Entity *entity)
{
    Ep__ModelReply *reply = &result->reply;
    reply->entities = (Ep__Entity **) realloc (reply->entities, (reply->n_entities + 1) * sizeof (Ep__Entity *));
    if (reply->n_entities == 0)
        ep_owned_add (result->owned, &reply->entities, (void (*) (void *)) zstr_free);
    reply->entities [reply->n_entities++] = (Ep__Entity *) ep_owned_add (result->owned, s_copy (entity), s_free_entity);
}

static bool
s_apply_write (model_t *self, s_write_ctx_t *ctx, const Ep__ModelWrite *write)
{
    model_result_t *result = ctx->result;
    Ep__ModelWrite__Op op = write->has_op? write->op: EP__MODEL_WRITE__OP__OP_UNSPECIFIED;
    if (op == EP__MODEL_WRITE__OP__CREATE || op == EP__MODEL_WRITE__OP__UPDATE) {
        if (!write->entity) {
            s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, "%s%s needs an entity", ctx->where,
                    op == EP__MODEL_WRITE__OP__CREATE? "CREATE": "UPDATE");
            return false;
        }
        Ep__Entity *entity = s_copy (write->entity);
        s_fields_t fields;
        if (!s_fields (entity, &fields)) {
            s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                    "%sentity: set exactly one of router, service, identity, controller", ctx->where);
            ep__entity__free_unpacked (entity, NULL);
            return false;
        }
        Ep__EntityType type = s_type_of (entity);
        const char *type_name = s_type_name (type);
        Ep__Entity *before = NULL;
        bool ok = true;
        if (op == EP__MODEL_WRITE__OP__CREATE) {
            if (!*fields.id || !**fields.id) {
                char id [17];
                ep_random_hex (id, 8);
                s_set_string (fields.id, id);
            }
            if (fields.has_enabled && !*fields.has_enabled) {
                *fields.has_enabled = true;
                *fields.enabled = true;         //  enabled unless said otherwise
            }
            if (fields.name && !*fields.name)
                s_set_string (fields.name, *fields.id);
            if (s_exists (self, type, *fields.id)) {
                s_fail (result, EP__STATUS__CODE__ALREADY_EXISTS,
                        "%s%s %s already exists: update it, or create with another id",
                        ctx->where, type_name, *fields.id);
                ok = false;
            }
        }
        else {
            if (!*fields.id || !**fields.id) {
                s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, "%s%s.id is required to update",
                        ctx->where, type_name);
                ok = false;
            }
            else
            if (!(before = s_load (self, type, *fields.id))) {
                s_fail (result, EP__STATUS__CODE__NOT_FOUND, "%s%s %s does not exist",
                        ctx->where, type_name, *fields.id);
                ok = false;
            }
            else
                ok = s_check_version (ctx, write, before, type_name, *fields.id);
            if (ok) {
                //  Absent fields keep their value; listed ones are emptied.
                bool clear_hosted = false, clear_tags = false;
                for (size_t i = 0; i < write->n_clear; i++) {
                    clear_hosted |= streq (write->clear [i], "hosted");
                    clear_tags |= streq (write->clear [i], "tags");
                }
                Ep__Entity *old = s_copy (before);
                s_fields_t old_fields;
                s_fields (old, &old_fields);
                if (fields.name && !*fields.name)
                    s_set_string (fields.name, *old_fields.name);
                if (fields.has_enabled && !*fields.has_enabled) {
                    *fields.has_enabled = *old_fields.has_enabled;
                    *fields.enabled = *old_fields.enabled;
                }
                if (fields.tags && *fields.n_tags == 0 && !clear_tags) {
                    *fields.tags = *old_fields.tags;
                    *fields.n_tags = *old_fields.n_tags;
                    *old_fields.tags = NULL;
                    *old_fields.n_tags = 0;
                }
                if (type == EP__ENTITY_TYPE__ENTITY_ROUTER && entity->router->n_hosted == 0 && !clear_hosted) {
                    entity->router->hosted = old->router->hosted;
                    entity->router->n_hosted = old->router->n_hosted;
                    old->router->hosted = NULL;
                    old->router->n_hosted = 0;
                }
                if (type == EP__ENTITY_TYPE__ENTITY_CONTROLLER && !entity->controller->address)
                    s_set_string (&entity->controller->address, old->controller->address);
                ep__entity__free_unpacked (old, NULL);
            }
        }
        if (ok)
            ok = s_validate (self, entity, ctx->where, result);
        if (ok) {
            s_fields_t before_fields;
            uint64_t create_revision = ctx->revision;
            int64_t created_at = ctx->now_ms;
            if (before && s_fields (before, &before_fields) && *before_fields.meta) {
                create_revision = (*before_fields.meta)->create_revision;
                created_at = (*before_fields.meta)->created_at_ms;
            }
            if (*fields.meta)
                ep__entity_meta__free_unpacked (*fields.meta, NULL);
            *fields.meta = s_meta_new (ctx->revision, create_revision, created_at,
                                       ctx->now_ms, ctx->caller);
            if (s_save (self, entity) != 0) {
                s_fail (result, EP__STATUS__CODE__INTERNAL, "%sstoring %s %s failed: %s",
                        ctx->where, type_name, *fields.id, ep_store_last_error ());
                ok = false;
            }
        }
        if (ok) {
            Ep__ModelOp *model_op = s_op_add (ctx->change,
                before? EP__MODEL_OP__KIND__UPDATED: EP__MODEL_OP__KIND__CREATED, type, *fields.id);
            model_op->entity = s_copy (entity);
            if (type == EP__ENTITY_TYPE__ENTITY_ROUTER)
                s_hosted_delta (model_op, before? before->router: NULL, entity->router);
            s_reply_entity (result, entity);
        }
        if (before)
            ep__entity__free_unpacked (before, NULL);
        ep__entity__free_unpacked (entity, NULL);
        return ok;
    }
    if (op == EP__MODEL_WRITE__OP__DELETE) {
        Ep__EntityType type = write->has_type? write->type: EP__ENTITY_TYPE__ENTITY_UNSPECIFIED;
        if (type < EP__ENTITY_TYPE__ENTITY_ROUTER || type > EP__ENTITY_TYPE__ENTITY_CONTROLLER) {
            s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                    "%sDELETE needs type (router, service, identity or controller)", ctx->where);
            return false;
        }
        const char *type_name = s_type_name (type);
        if (!write->id || !ep_id_valid (write->id)) {
            s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, "%sDELETE needs a valid %s id",
                    ctx->where, type_name);
            return false;
        }
        Ep__Entity *before = s_load (self, type, write->id);
        if (!before) {
            s_fail (result, EP__STATUS__CODE__NOT_FOUND, "%s%s %s does not exist",
                    ctx->where, type_name, write->id);
            return false;
        }
        bool ok = s_check_version (ctx, write, before, type_name, write->id);
        if (ok && type == EP__ENTITY_TYPE__ENTITY_SERVICE) {
            //  Routers stop hosting the service in the same revision.
            sqlite3_stmt *stmt = ep_store_stmt (self->store,
                "SELECT router_id FROM hosted WHERE service_id = ?1 ORDER BY router_id");
            sqlite3_bind_text (stmt, 1, write->id, -1, SQLITE_STATIC);
            zlistx_t *routers = zlistx_new ();
            zlistx_set_destructor (routers, (czmq_destructor *) zstr_free);
            while (ep_store_step (self->store, stmt) == 1)
                zlistx_add_end (routers, strdup ((const char *) sqlite3_column_text (stmt, 0)));
            const char *router_id = (const char *) zlistx_first (routers);
            for (; ok && router_id; router_id = (const char *) zlistx_next (routers)) {
                Ep__Entity *router = s_load (self, EP__ENTITY_TYPE__ENTITY_ROUTER, router_id);
                EP_ASSERT (router);
                Ep__Entity *after = s_copy (router);
                size_t kept = 0;
                for (size_t i = 0; i < after->router->n_hosted; i++)
                    if (streq (after->router->hosted [i]->service_id, write->id))
                        ep__hosted_service__free_unpacked (after->router->hosted [i], NULL);
                    else
                        after->router->hosted [kept++] = after->router->hosted [i];
                after->router->n_hosted = kept;
                Ep__EntityMeta *old_meta = after->router->meta;
                after->router->meta = s_meta_new (ctx->revision, old_meta->create_revision,
                                                  old_meta->created_at_ms, ctx->now_ms, ctx->caller);
                ep__entity_meta__free_unpacked (old_meta, NULL);
                if (s_save (self, after) != 0) {
                    s_fail (result, EP__STATUS__CODE__INTERNAL, "%supdating router %s failed: %s",
                            ctx->where, router_id, ep_store_last_error ());
                    ok = false;
                }
                else {
                    Ep__ModelOp *model_op = s_op_add (ctx->change, EP__MODEL_OP__KIND__UPDATED,
                                                      EP__ENTITY_TYPE__ENTITY_ROUTER, router_id);
                    model_op->entity = s_copy (after);
                    s_hosted_delta (model_op, router->router, after->router);
                }
                ep__entity__free_unpacked (after, NULL);
                ep__entity__free_unpacked (router, NULL);
            }
            zlistx_destroy (&routers);
        }
        if (ok && s_remove (self, type, write->id) != 0) {
            s_fail (result, EP__STATUS__CODE__INTERNAL, "%sdeleting %s %s failed: %s",
                    ctx->where, type_name, write->id, ep_store_last_error ());
            ok = false;
        }
        if (ok) {
            Ep__ModelOp *model_op = s_op_add (ctx->change, EP__MODEL_OP__KIND__DELETED, type, write->id);
            if (type == EP__ENTITY_TYPE__ENTITY_ROUTER)
                s_hosted_delta (model_op, before->router, NULL);
        }
        ep__entity__free_unpacked (before, NULL);
        return ok;
    }
    s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, "%swrite.op: use CREATE, UPDATE or DELETE",
            ctx->where);
    return false;
}

bool
model_is_write (const Ep__ModelRequest *request)
{
    return request->op_case == EP__MODEL_REQUEST__OP_WRITE
        || request->op_case == EP__MODEL_REQUEST__OP_TXN;
}

int
model_begin (model_t *self)
{
    self->pending = self->revision;
    return ep_store_begin (self->store);
}

static int
s_meta_set (model_t *self, const char *key, const char *value)
{
    sqlite3_stmt *stmt = ep_store_stmt (self->store,
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)");
    sqlite3_bind_text (stmt, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 2, value, -1, SQLITE_STATIC);
    return ep_store_step (self->store, stmt) < 0? -1: 0;
}

void
model_write (model_t *self, const Ep__ModelRequest *request,
             const ep_caller_t *caller, int64_t now_ms, model_result_t *result)
{
    EP_ASSERT (model_is_write (request));
    EP_ASSERT (ep_store_in_transaction (self->store));
    const Ep__ModelWrite *single [1] = { request->write };
    const Ep__ModelWrite *const *writes = single;
    size_t count = 1;
    bool txn = request->op_case == EP__MODEL_REQUEST__OP_TXN;
    if (txn) {
        if (!request->txn || request->txn->n_writes == 0) {
            s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, "txn: at least one write is required");
            return;
        }
        writes = (const Ep__ModelWrite *const *) request->txn->writes;
        count = request->txn->n_writes;
    }
    else
    if (!request->write) {
        s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, "write: missing");
        return;
    }
    s_write_ctx_t ctx = { .revision = self->pending + 1, .now_ms = now_ms,
                          .caller = caller, .result = result };
    Ep__ModelChange *change = (Ep__ModelChange *) malloc (sizeof (Ep__ModelChange));
    ep__model_change__init (change);
    ctx.change = change;

    EP_ASSERT (ep_store_savepoint (self->store, "request") == 0);
    bool ok = true;
    for (size_t i = 0; ok && i < count; i++) {
        if (txn)
            snprintf (ctx.where, sizeof ctx.where, "write %zu: ", i + 1);
        ok = s_apply_write (self, &ctx, writes [i]);
    }
    if (ok) {
        change->has_revision = true;
        change->revision = ctx.revision;
        change->generation = strdup (self->generation);
        change->has_committed_at_ms = true;
        change->committed_at_ms = now_ms;
        change->has_part = change->has_parts = true;
        change->part = change->parts = 1;
        Ep__Principal *who = (Ep__Principal *) malloc (sizeof (Ep__Principal));
        ep__principal__init (who);
        who->key = strdup (caller->key);
        who->role = strdup (caller->role);
        who->name = strdup (caller->name);
        change->principal = who;
        size_t size = ep__model_change__get_packed_size (change);
        if (size > REPLY_BUDGET) {
            //  No "changes" reply could carry it: followers that missed it
            //  would be stuck.
            s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                    "%s: the change would be %zu bytes, over the %u one revision may hold: "
                    "split it into smaller transactions", txn? "txn": "write", size, REPLY_BUDGET);
            ok = false;
        }
    }
    if (ok) {
        size_t size = ep__model_change__get_packed_size (change);
        uint8_t *body = (uint8_t *) malloc (size + 1);
        ep__model_change__pack (change, body);
        sqlite3_stmt *stmt = ep_store_stmt (self->store,
            "INSERT INTO changes (revision, body) VALUES (?1, ?2)");
        sqlite3_bind_int64 (stmt, 1, (sqlite3_int64) ctx.revision);
        sqlite3_bind_blob (stmt, 2, body, (int) size, SQLITE_STATIC);
        ok = ep_store_step (self->store, stmt) >= 0;
        free (body);
        char revision [24];
        snprintf (revision, sizeof revision, "%llu", (unsigned long long) ctx.revision);
        ok = ok && s_meta_set (self, "revision", revision) == 0;
        if (ok && ctx.revision > self->retain) {
            stmt = ep_store_stmt (self->store, "DELETE FROM changes WHERE revision <= ?1");
            sqlite3_bind_int64 (stmt, 1, (sqlite3_int64) (ctx.revision - self->retain));
            ok = ep_store_step (self->store, stmt) >= 0;
        }
        if (!ok)
            s_fail (result, EP__STATUS__CODE__INTERNAL, "recording revision %llu failed: %s",
                    (unsigned long long) ctx.revision, ep_store_last_error ());
    }
    if (ok) {
        EP_ASSERT (ep_store_release (self->store, "request") == 0);
        self->pending = ctx.revision;
        result->reply.has_revision = true;
        result->reply.revision = ctx.revision;
        result->change = change;
    }
    else {
        EP_ASSERT (ep_store_rollback_to (self->store, "request") == 0);
        model_change_free (change);
        //  Entities collected for a failed reply are not returned.
        result->reply.n_entities = 0;
    }
}

int
model_commit (model_t *self)
{
    if (ep_store_commit (self->store) != 0) {
        ep_log_error ("commit failed: %s; the writes of this batch are answered UNAVAILABLE",
                      ep_store_last_error ());
        if (ep_store_in_transaction (self->store))
            ep_store_rollback (self->store);
        self->pending = self->revision;
        return -1;
    }
    self->revision = self->pending;
    return 0;
}

//  ---------------------------------------------------------------------
//  Reads

static void
s_snapshot_destroy (void **item)
{
    s_snapshot_t *snapshot = (s_snapshot_t *) *item;
    if (snapshot) {
        sqlite3_exec (snapshot->db, "COMMIT", NULL, NULL, NULL);
        sqlite3_close_v2 (snapshot->db);
        free (snapshot);
        *item = NULL;
    }
}

void
model_expire_snapshots (model_t *self, int64_t now_ms)
{
    zlistx_t *expired = zlistx_new ();
    s_snapshot_t *snapshot = (s_snapshot_t *) zhashx_first (self->snapshots);
    for (; snapshot; snapshot = (s_snapshot_t *) zhashx_next (self->snapshots))
        if (now_ms - snapshot->last_used_ms >= SNAPSHOT_IDLE_MS)
            zlistx_add_end (expired, snapshot->id);
    for (char *id = (char *) zlistx_first (expired); id; id = (char *) zlistx_next (expired))
        zhashx_delete (self->snapshots, id);
    zlistx_destroy (&expired);
}

//  Opens a read transaction pinned to the current committed state.
static s_snapshot_t *
s_snapshot_open (model_t *self, int64_t now_ms)
{
    if (zhashx_size (self->snapshots) >= SNAPSHOT_MAX) {
        //  End the least recently used one.
        s_snapshot_t *oldest = NULL;
        s_snapshot_t *s = (s_snapshot_t *) zhashx_first (self->snapshots);
        for (; s; s = (s_snapshot_t *) zhashx_next (self->snapshots))
            if (!oldest || s->last_used_ms < oldest->last_used_ms)
                oldest = s;
        zhashx_delete (self->snapshots, oldest->id);
    }
    const char *path = sqlite3_db_filename (ep_store_handle (self->store), "main");
    s_snapshot_t *snapshot = (s_snapshot_t *) zmalloc (sizeof (s_snapshot_t));
    sqlite3_stmt *stmt = NULL;
    bool ok = sqlite3_open_v2 (path, &snapshot->db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK
           && sqlite3_exec (snapshot->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK
           && sqlite3_prepare_v2 (snapshot->db, "SELECT value FROM meta WHERE key = 'revision'",
                                  -1, &stmt, NULL) == SQLITE_OK;
    int step = ok? sqlite3_step (stmt): SQLITE_ERROR;
    if (step == SQLITE_ROW)
        snapshot->revision = strtoull ((const char *) sqlite3_column_text (stmt, 0), NULL, 10);
    sqlite3_finalize (stmt);
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        ep_log_error ("snapshot: cannot open a read of %s: %s", path,
                      snapshot->db? sqlite3_errmsg (snapshot->db): "out of memory");
        s_snapshot_destroy ((void **) &snapshot);
        return NULL;
    }
    ep_random_hex (snapshot->id, 8);
    snapshot->last_used_ms = now_ms;
    zhashx_insert (self->snapshots, snapshot->id, snapshot);
    return snapshot;
}

static void
s_read_snapshot (model_t *self, const Ep__SnapshotRequest *request, int64_t now_ms,
                 model_result_t *result)
{
    uint32_t page_size = request->has_page_size && request->page_size? request->page_size: PAGE_DEFAULT;
    if (page_size > PAGE_MAX)
        page_size = PAGE_MAX;
    s_snapshot_t *snapshot = NULL;
    int after_type = 0;
    char after_id [65] = "";
    if (request->page_token && *request->page_token) {
        char id [17] = "";
        if (sscanf (request->page_token, "%16[0-9a-f]:%d:%64[A-Za-z0-9_-]", id, &after_type, after_id) != 3
        ||  !(snapshot = (s_snapshot_t *) zhashx_lookup (self->snapshots, id))) {
            s_fail (result, EP__STATUS__CODE__FAILED_PRECONDITION,
                    "snapshot page token unknown or expired (idle over %d s): start a new snapshot",
                    SNAPSHOT_IDLE_MS / 1000);
            return;
        }
    }
    else
    if (!(snapshot = s_snapshot_open (self, now_ms))) {
        s_fail (result, EP__STATUS__CODE__UNAVAILABLE, "cannot read the store now; retry");
        return;
    }
    snapshot->last_used_ms = now_ms;
    sqlite3_stmt *stmt = NULL;
    EP_ASSERT (sqlite3_prepare_v2 (snapshot->db,
        "SELECT type, id, body FROM entities WHERE (type, id) > (?1, ?2) ORDER BY type, id LIMIT ?3",
        -1, &stmt, NULL) == SQLITE_OK);
    sqlite3_bind_int (stmt, 1, after_type);
    sqlite3_bind_text (stmt, 2, after_id, -1, SQLITE_STATIC);
    sqlite3_bind_int (stmt, 3, (int) page_size + 1);
    uint32_t rows = 0;
    int last_type = 0;
    char last_id [65] = "";
    bool more = false;
    size_t bytes = 0;
    while (sqlite3_step (stmt) == SQLITE_ROW) {
        //  A page ends at page_size entities, or before it outgrows one
        //  message.
        size_t size = (size_t) sqlite3_column_bytes (stmt, 2) + 8;
        if (rows == page_size || (rows > 0 && bytes + size > REPLY_BUDGET)) {
            more = true;
            break;
        }
        bytes += size;
        Ep__Entity *entity = ep__entity__unpack (NULL, sqlite3_column_bytes (stmt, 2),
                                                 (const uint8_t *) sqlite3_column_blob (stmt, 2));
        if (entity) {
            s_reply_entity (result, entity);
            ep__entity__free_unpacked (entity, NULL);
        }
        last_type = sqlite3_column_int (stmt, 0);
        snprintf (last_id, sizeof last_id, "%s", (const char *) sqlite3_column_text (stmt, 1));
        rows++;
    }
    sqlite3_finalize (stmt);
    result->reply.has_revision = true;
    result->reply.revision = snapshot->revision;
    result->reply.generation = self->generation;
    if (more) {
        char *token = zsys_sprintf ("%s:%d:%s", snapshot->id, last_type, last_id);
        result->reply.next_page_token = (char *) ep_owned_add (result->owned, token, free);
    }
    else
        zhashx_delete (self->snapshots, snapshot->id);
}

static bool
s_tags_match (const Ep__Entity *entity, const Ep__ListFilter *filter)
{
    s_fields_t fields;
    s_fields ((Ep__Entity *) entity, &fields);
    for (size_t i = 0; i < filter->n_tags; i++) {
        bool found = false;
        for (size_t j = 0; fields.tags && j < *fields.n_tags; j++) {
            Ep__Tag *tag = (*fields.tags) [j];
            if (streq (tag->key, filter->tags [i]->key ? filter->tags [i]->key: "")
            &&  (!filter->tags [i]->value
              || streq (tag->value? tag->value: "", filter->tags [i]->value)))
                found = true;
        }
        if (!found)
            return false;
    }
    return true;
}

static void
s_read_list (model_t *self, const Ep__ListFilter *filter, model_result_t *result)
{
    Ep__EntityType type = filter->has_type? filter->type: EP__ENTITY_TYPE__ENTITY_UNSPECIFIED;
    if (type < EP__ENTITY_TYPE__ENTITY_ROUTER || type > EP__ENTITY_TYPE__ENTITY_CONTROLLER) {
        s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                "list.type: use router, service, identity or controller");
        return;
    }
    if (filter->hosts_service && type != EP__ENTITY_TYPE__ENTITY_ROUTER) {
        s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, "list.hosts_service applies to routers only");
        return;
    }
    uint32_t page_size = filter->has_page_size && filter->page_size? filter->page_size: PAGE_DEFAULT;
    if (page_size > PAGE_MAX)
        page_size = PAGE_MAX;
    const char *after = filter->page_token? filter->page_token: "";
    sqlite3_stmt *stmt;
    if (filter->hosts_service) {
        stmt = ep_store_stmt (self->store,
            "SELECT e.body, e.id FROM hosted h JOIN entities e ON e.type = 1 AND e.id = h.router_id"
            " WHERE h.service_id = ?1 AND e.id > ?2 ORDER BY e.id");
        sqlite3_bind_text (stmt, 1, filter->hosts_service, -1, SQLITE_STATIC);
        sqlite3_bind_text (stmt, 2, after, -1, SQLITE_STATIC);
    }
    else
    if (filter->name) {
        stmt = ep_store_stmt (self->store,
            "SELECT body, id FROM entities WHERE type = ?1 AND name = ?2 AND id > ?3 ORDER BY id");
        sqlite3_bind_int (stmt, 1, type);
        sqlite3_bind_text (stmt, 2, filter->name, -1, SQLITE_STATIC);
        sqlite3_bind_text (stmt, 3, after, -1, SQLITE_STATIC);
    }
    else {
        stmt = ep_store_stmt (self->store,
            "SELECT body, id FROM entities WHERE type = ?1 AND id > ?2 ORDER BY id");
        sqlite3_bind_int (stmt, 1, type);
        sqlite3_bind_text (stmt, 2, after, -1, SQLITE_STATIC);
    }
    char last [65] = "";
    while (ep_store_step (self->store, stmt) == 1) {
        Ep__Entity *entity = ep__entity__unpack (NULL, sqlite3_column_bytes (stmt, 0),
                                                 (const uint8_t *) sqlite3_column_blob (stmt, 0));
        if (!entity)
            continue;
        if (s_tags_match (entity, filter)) {
            if (result->reply.n_entities == page_size) {
                result->reply.next_page_token = (char *) ep_owned_add (result->owned, strdup (last), free);
                ep__entity__free_unpacked (entity, NULL);
                break;
            }
            s_reply_entity (result, entity);
            snprintf (last, sizeof last, "%s", (const char *) sqlite3_column_text (stmt, 1));
        }
        ep__entity__free_unpacked (entity, NULL);
    }
    sqlite3_reset (stmt);
    result->reply.has_revision = true;
    result->reply.revision = self->revision;
}

static void
s_read_changes (model_t *self, const Ep__ChangesRequest *request, model_result_t *result)
{
    uint64_t since = request->has_since_revision? request->since_revision: 0;
    uint32_t max = request->has_max_changes && request->max_changes? request->max_changes: CHANGES_DEFAULT;
    if (max > CHANGES_DEFAULT * 10)
        max = CHANGES_DEFAULT * 10;
    result->reply.has_revision = true;
    result->reply.revision = self->revision;
    result->reply.generation = self->generation;
    if (since >= self->revision)
        return;
    sqlite3_stmt *stmt = ep_store_stmt (self->store, "SELECT MIN(revision) FROM changes");
    uint64_t oldest = 0;
    if (ep_store_step (self->store, stmt) == 1)
        oldest = (uint64_t) sqlite3_column_int64 (stmt, 0);
    sqlite3_reset (stmt);
    if (oldest == 0 || since + 1 < oldest) {
        s_fail (result, EP__STATUS__CODE__RESYNC,
                "changes after revision %llu are no longer retained (oldest is %llu): take a snapshot",
                (unsigned long long) since, (unsigned long long) oldest);
        result->reply.has_oldest_retained = true;
        result->reply.oldest_retained = oldest;
        return;
    }
    stmt = ep_store_stmt (self->store,
        "SELECT body FROM changes WHERE revision > ?1 ORDER BY revision LIMIT ?2");
    sqlite3_bind_int64 (stmt, 1, (sqlite3_int64) since);
    sqlite3_bind_int64 (stmt, 2, max);
    Ep__ModelReply *reply = &result->reply;
    size_t bytes = 0;
    while (ep_store_step (self->store, stmt) == 1) {
        //  Stop before the reply outgrows one message; the caller asks
        //  again from the last revision it got.
        size_t size = (size_t) sqlite3_column_bytes (stmt, 0) + 8;
        if (reply->n_changes > 0 && bytes + size > REPLY_BUDGET)
            break;
        bytes += size;
        Ep__ModelChange *change = ep__model_change__unpack (NULL, sqlite3_column_bytes (stmt, 0),
                                                           (const uint8_t *) sqlite3_column_blob (stmt, 0));
        EP_ASSERT (change);
        reply->changes = (Ep__ModelChange **) realloc (reply->changes,
                                                       (reply->n_changes + 1) * sizeof (Ep__ModelChange *));
        if (reply->n_changes == 0)
            ep_owned_add (result->owned, &reply->changes, (void (*) (void *)) zstr_free);
        reply->changes [reply->n_changes++] = (Ep__ModelChange *) ep_owned_add (result->owned, change, s_free_change);
    }
    sqlite3_reset (stmt);
}

void
model_read (model_t *self, const Ep__ModelRequest *request, int64_t now_ms,
            model_result_t *result)
{
    EP_ASSERT (!ep_store_in_transaction (self->store));
    switch (request->op_case) {
        case EP__MODEL_REQUEST__OP_GET: {
            const Ep__ModelGet *get = request->get;
            Ep__EntityType type = get->has_type? get->type: EP__ENTITY_TYPE__ENTITY_UNSPECIFIED;
            if (type < EP__ENTITY_TYPE__ENTITY_ROUTER || type > EP__ENTITY_TYPE__ENTITY_CONTROLLER
            ||  !get->id || !ep_id_valid (get->id)) {
                s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                        "get: needs type (router, service, identity, controller) and a valid id");
                return;
            }
            Ep__Entity *entity = s_load (self, type, get->id);
            if (!entity) {
                s_fail (result, EP__STATUS__CODE__NOT_FOUND, "%s %s does not exist",
                        s_type_name (type), get->id);
                return;
            }
            s_reply_entity (result, entity);
            ep__entity__free_unpacked (entity, NULL);
            result->reply.has_revision = true;
            result->reply.revision = self->revision;
            return;
        }
        case EP__MODEL_REQUEST__OP_LIST:
            s_read_list (self, request->list, result);
            return;
        case EP__MODEL_REQUEST__OP_SNAPSHOT:
            s_read_snapshot (self, request->snapshot, now_ms, result);
            return;
        case EP__MODEL_REQUEST__OP_CHANGES:
            s_read_changes (self, request->changes, result);
            return;
        case EP__MODEL_REQUEST__OP_STATUS:
            result->reply.has_revision = true;
            result->reply.revision = self->revision;
            result->reply.generation = self->generation;
            if (request->status && request->status->has_digest && request->status->digest) {
                //  The same digest followers compute over their copies.
                size_t count;
                Ep__Entity **entities = model_entities (self, &count);
                uint8_t digest [EP_MODEL_DIGEST_SIZE];
                ep_model_digest_entities (entities, count, digest);
                char *hex = (char *) malloc (2 * EP_MODEL_DIGEST_SIZE + 1);
                ep_model_digest_hex (digest, hex);
                result->reply.digest = (char *) ep_owned_add (result->owned, hex, free);
                for (size_t i = 0; i < count; i++)
                    ep__entity__free_unpacked (entities [i], NULL);
                free (entities);
            }
            return;
        default:
            s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                    "request has no operation: set one of write, txn, get, list, snapshot, changes, status, backup");
            return;
    }
}

//  ---------------------------------------------------------------------
//  Life cycle

static char *
s_meta_get (model_t *self, const char *key)
{
    sqlite3_stmt *stmt = ep_store_stmt (self->store, "SELECT value FROM meta WHERE key = ?1");
    sqlite3_bind_text (stmt, 1, key, -1, SQLITE_STATIC);
    char *value = NULL;
    if (ep_store_step (self->store, stmt) == 1)
        value = strdup ((const char *) sqlite3_column_text (stmt, 0));
    sqlite3_reset (stmt);
    return value;
}

model_t *
model_new (ep_store_t *store, uint64_t retain)
{
    EP_ASSERT (retain > 0);
    model_t *self = (model_t *) zmalloc (sizeof (model_t));
    self->store = store;
    self->retain = retain;
    self->snapshots = zhashx_new ();
    zhashx_set_destructor (self->snapshots, s_snapshot_destroy);
    char *revision = s_meta_get (self, "revision");
    char *generation = s_meta_get (self, "generation");
    char *restored = s_meta_get (self, "restore_pending");
    int rc = 0;
    if (!generation || restored) {
        //  A new store, or one restored from a backup: a new generation
        //  tells followers that revisions may have gone backwards.
        ep_random_hex (self->generation, 16);
        rc = ep_store_begin (store);
        if (rc == 0)
            rc = s_meta_set (self, "generation", self->generation);
        if (rc == 0 && !revision)
            rc = s_meta_set (self, "revision", "0");
        if (rc == 0 && restored)
            rc = ep_store_exec (store, "DELETE FROM meta WHERE key = 'restore_pending'");
        rc = rc == 0? ep_store_commit (store): (ep_store_rollback (store), -1);
        if (restored)
            ep_log_warn ("store restored from a backup: new generation %s", self->generation);
    }
    else
        snprintf (self->generation, sizeof self->generation, "%s", generation);
    self->revision = revision? strtoull (revision, NULL, 10): 0;
    self->pending = self->revision;
    free (revision);
    free (generation);
    free (restored);
    if (rc != 0) {
        ep_log_error ("cannot initialise the model store: %s", ep_store_last_error ());
        model_destroy (&self);
    }
    return self;
}

void
model_destroy (model_t **self_p)
{
    model_t *self = *self_p;
    if (self) {
        zhashx_destroy (&self->snapshots);
        free (self);
        *self_p = NULL;
    }
}

uint64_t
model_revision (model_t *self)
{
    return self->revision;
}

const char *
model_generation (model_t *self)
{
    return self->generation;
}

int
model_backup (model_t *self, const char *path, char *err, size_t errlen)
{
    if (ep_store_backup (self->store, path) != 0) {
        snprintf (err, errlen, "backup to %s failed: %s", path, ep_store_last_error ());
        return -1;
    }
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2 (path, &db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec (db, "INSERT OR REPLACE INTO meta (key, value) VALUES ('restore_pending', '1')",
                           NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        snprintf (err, errlen, "backup %s written but not marked: %s", path,
                  db? sqlite3_errmsg (db): "out of memory");
    sqlite3_close_v2 (db);
    return rc == SQLITE_OK? 0: -1;
}

Ep__Entity **
model_entities (model_t *self, size_t *count)
{
    sqlite3_stmt *stmt = ep_store_stmt (self->store,
        "SELECT body FROM entities ORDER BY type, id");
    Ep__Entity **entities = NULL;
    *count = 0;
    while (ep_store_step (self->store, stmt) == 1) {
        entities = (Ep__Entity **) realloc (entities, (*count + 1) * sizeof (Ep__Entity *));
        entities [(*count)++] = ep__entity__unpack (NULL, sqlite3_column_bytes (stmt, 0),
                                                    (const uint8_t *) sqlite3_column_blob (stmt, 0));
    }
    sqlite3_reset (stmt);
    return entities;
}
