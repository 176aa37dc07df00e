/*  model.c: the router model's rules over its store.

    Entities are stored whole as packed ep.Entity (with their meta) by a
    modelstore.h backend. Every committed write request takes the next
    revision and records its ModelChange, of which the store keeps the last
    `retain` revisions. Messages built here are allocated with malloc piece
    by piece, exactly as protobuf-c's unpacker would, so protobuf-c's
    free_unpacked releases them. Reads are reads.c's; what an entity is,
    entity.c's.
*/
#include "model.h"
#include "entity.h"
#include "reads.h"
#include "ep_log.h"
#include "ep_rpc_server.h"
#include <stdarg.h>

struct _model_t {
    modelstore_t *store;        //  the store (borrowed)
    uint64_t revision;          //  last committed revision
    uint64_t pending;           //  revision of the last write in the open transaction
    uint64_t retain;            //  revisions kept in the change log
    char generation [33];       //  store generation id
    reads_t *reads;             //  reads, and the snapshots being read
    ep_output_t *output;        //  changes staged by writes, ready once committed
    model_done_fn *commit_done; //  the batch being committed reports here
    void *commit_arg;           //  with this
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
    result->reply.status = ep_status_ok (&result->status);
    result->reply.request_id = (char *) request_id;
    result->owned = ep_owned_new ();
}

void
model_result_clear (model_result_t *result)
{
    ep_owned_destroy (&result->owned);
}

void
model_result_add_entity (model_result_t *result, const Ep__Entity *entity)
{
    Ep__ModelReply *reply = &result->reply;
    reply->entities = (Ep__Entity **) realloc (reply->entities, (reply->n_entities + 1) * sizeof (Ep__Entity *));
    if (reply->n_entities == 0)
        ep_owned_add (result->owned, &reply->entities, (void (*) (void *)) zstr_free);
    reply->entities [reply->n_entities++] = (Ep__Entity *) ep_owned_add (result->owned, entity_copy (entity), s_free_entity);
}

void
model_result_add_change (model_result_t *result, Ep__ModelChange *change)
{
    Ep__ModelReply *reply = &result->reply;
    reply->changes = (Ep__ModelChange **) realloc (reply->changes,
                                                   (reply->n_changes + 1) * sizeof (Ep__ModelChange *));
    if (reply->n_changes == 0)
        ep_owned_add (result->owned, &reply->changes, (void (*) (void *)) zstr_free);
    reply->changes [reply->n_changes++] = (Ep__ModelChange *) ep_owned_add (result->owned, change,
                                                                            s_free_change);
}

void
model_result_fail (model_result_t *result, Ep__Status__Code code, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    ep_status_set (&result->status, result->message, sizeof result->message, code, format, args);
    va_end (args);
}

//  Loads (type, id) from the batch's view; NULL if absent.
static Ep__Entity *
s_load (model_t *self, Ep__EntityType type, const char *id)
{
    return modelstore_get (self->store, type, id);
}

static bool
s_exists (model_t *self, Ep__EntityType type, const char *id)
{
    Ep__Entity *entity = s_load (self, type, id);
    if (entity)
        ep__entity__free_unpacked (entity, NULL);
    return entity != NULL;
}

//  Stages entity (a router with its hosted index). Returns 0 or -1.
static int
s_save (model_t *self, Ep__Entity *entity)
{
    entity_fields_t fields;
    EP_ASSERT (entity_fields (entity, &fields));
    return modelstore_put (self->store, entity_type_of (entity), *fields.id,
                           fields.name? *fields.name: NULL, (*fields.meta)->version, entity);
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
    entity_fields_t fields;
    EP_ASSERT (entity_fields ((Ep__Entity *) current, &fields));
    uint64_t version = (*fields.meta)->version;
    if (write->has_expected_version && write->expected_version
    &&  write->expected_version != version) {
        model_result_fail (ctx->result, EP__STATUS__CODE__CONFLICT,
                           "%s%s %s is at version %llu, not %llu: read it again and retry",
                           ctx->where, type, id, (unsigned long long) version,
                           (unsigned long long) write->expected_version);
        ctx->result->reply.has_current_version = true;
        ctx->result->reply.current_version = version;
        return false;
    }
    return true;
}

static bool
s_service_exists (void *arg, const char *service_id)
{
    return s_exists ((model_t *) arg, EP__ENTITY_TYPE__ENTITY_SERVICE, service_id);
}

//  Checks entity as written (see entity_check).
static bool
s_validate (model_t *self, Ep__Entity *entity, const char *where, model_result_t *result)
{
    result->status.code = entity_check (entity, where, s_service_exists, self,
                                        result->message, sizeof result->message);
    if (result->status.code == EP__STATUS__CODE__OK)
        return true;
    result->status.message = result->message;
    return false;
}

//  CREATE: fills what the entity may leave out; fails if it exists.
static bool
s_prepare_create (model_t *self, s_write_ctx_t *ctx, entity_fields_t *fields, Ep__EntityType type)
{
    if (!*fields->id || !**fields->id) {
        char id [17];
        ep_random_hex (id, 8);
        entity_set_string (fields->id, id);
    }
    if (fields->has_enabled && !*fields->has_enabled) {
        *fields->has_enabled = true;
        *fields->enabled = true;        //  enabled unless said otherwise
    }
    if (fields->name && !*fields->name)
        entity_set_string (fields->name, *fields->id);
    if (fields->has_criticality && !*fields->has_criticality) {
        *fields->has_criticality = true;
        *fields->criticality = EP__CRITICALITY__CRITICALITY_NORMAL;  //  said, so JSON readers see it
    }
    if (s_exists (self, type, *fields->id)) {
        model_result_fail (ctx->result, EP__STATUS__CODE__ALREADY_EXISTS,
                           "%s%s %s already exists: update it, or create with another id",
                           ctx->where, entity_type_name (type), *fields->id);
        return false;
    }
    return true;
}

//  UPDATE is a patch: absent fields of entity keep before's value; lists
//  named in write->clear are emptied.
static void
s_merge (const Ep__ModelWrite *write, Ep__Entity *entity, entity_fields_t *fields,
         const Ep__Entity *before)
{
    bool clear_hosted = false, clear_tags = false;
    for (size_t i = 0; i < write->n_clear; i++) {
        clear_hosted |= streq (write->clear [i], "hosted");
        clear_tags |= streq (write->clear [i], "tags");
    }
    Ep__Entity *old = entity_copy (before);
    entity_fields_t old_fields;
    entity_fields (old, &old_fields);
    if (fields->name && !*fields->name)
        entity_set_string (fields->name, *old_fields.name);
    if (fields->has_enabled && !*fields->has_enabled) {
        *fields->has_enabled = *old_fields.has_enabled;
        *fields->enabled = *old_fields.enabled;
    }
    if (fields->has_criticality && !*fields->has_criticality) {
        *fields->has_criticality = *old_fields.has_criticality;
        *fields->criticality = *old_fields.criticality;
    }
    if (fields->tags && *fields->n_tags == 0 && !clear_tags) {
        *fields->tags = *old_fields.tags;
        *fields->n_tags = *old_fields.n_tags;
        *old_fields.tags = NULL;
        *old_fields.n_tags = 0;
    }
    if (entity->kind_case == EP__ENTITY__KIND_ROUTER && entity->router->n_hosted == 0 && !clear_hosted) {
        entity->router->hosted = old->router->hosted;
        entity->router->n_hosted = old->router->n_hosted;
        old->router->hosted = NULL;
        old->router->n_hosted = 0;
    }
    if (entity->kind_case == EP__ENTITY__KIND_CONTROLLER && !entity->controller->address)
        entity_set_string (&entity->controller->address, old->controller->address);
    ep__entity__free_unpacked (old, NULL);
}

//  UPDATE: loads the entity into *before, checks its version, merges.
static bool
s_prepare_update (model_t *self, s_write_ctx_t *ctx, const Ep__ModelWrite *write,
                  Ep__Entity *entity, entity_fields_t *fields, Ep__Entity **before)
{
    Ep__EntityType type = entity_type_of (entity);
    const char *type_name = entity_type_name (type);
    if (!*fields->id || !**fields->id) {
        model_result_fail (ctx->result, EP__STATUS__CODE__INVALID_ARGUMENT, "%s%s.id is required to update",
                           ctx->where, type_name);
        return false;
    }
    if (!(*before = s_load (self, type, *fields->id))) {
        model_result_fail (ctx->result, EP__STATUS__CODE__NOT_FOUND, "%s%s %s does not exist",
                           ctx->where, type_name, *fields->id);
        return false;
    }
    if (!s_check_version (ctx, write, *before, type_name, *fields->id))
        return false;
    s_merge (write, entity, fields, *before);
    return true;
}

//  Stamps entity with this revision's meta (keeping before's creation)
//  and stages it.
static bool
s_store_entity (model_t *self, s_write_ctx_t *ctx, Ep__Entity *entity, entity_fields_t *fields,
                Ep__Entity *before)
{
    entity_fields_t before_fields;
    uint64_t create_revision = ctx->revision;
    int64_t created_at = ctx->now_ms;
    if (before && entity_fields (before, &before_fields) && *before_fields.meta) {
        create_revision = (*before_fields.meta)->create_revision;
        created_at = (*before_fields.meta)->created_at_ms;
    }
    if (*fields->meta)
        ep__entity_meta__free_unpacked (*fields->meta, NULL);
    *fields->meta = entity_meta_new (ctx->revision, create_revision, created_at, ctx->now_ms, ctx->caller);
    if (s_save (self, entity) != 0) {
        model_result_fail (ctx->result, EP__STATUS__CODE__INTERNAL, "%sstoring %s %s failed: %s",
                           ctx->where, entity_type_name (entity_type_of (entity)), *fields->id,
                           modelstore_error (self->store));
        return false;
    }
    return true;
}

//  CREATE or UPDATE one entity.
static bool
s_apply_put (model_t *self, s_write_ctx_t *ctx, const Ep__ModelWrite *write, Ep__ModelWrite__Op op)
{
    model_result_t *result = ctx->result;
    if (!write->entity) {
        model_result_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, "%s%s needs an entity", ctx->where,
                           op == EP__MODEL_WRITE__OP__CREATE? "CREATE": "UPDATE");
        return false;
    }
    Ep__Entity *entity = entity_copy (write->entity);
    entity_fields_t fields;
    if (!entity_fields (entity, &fields)) {
        model_result_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                           "%sentity: set exactly one of router, service, identity, controller", ctx->where);
        ep__entity__free_unpacked (entity, NULL);
        return false;
    }
    Ep__EntityType type = entity_type_of (entity);
    Ep__Entity *before = NULL;
    bool ok = op == EP__MODEL_WRITE__OP__CREATE
            ? s_prepare_create (self, ctx, &fields, type)
            : s_prepare_update (self, ctx, write, entity, &fields, &before);
    ok = ok && s_validate (self, entity, ctx->where, result);
    ok = ok && s_store_entity (self, ctx, entity, &fields, before);
    //  Under a lease: deleted when it ends (modelstore.h, "Leases").
    if (ok && write->has_lease_id && write->lease_id
    &&  modelstore_lease (self->store, type, *fields.id, ctx->revision, write->lease_id) != 0) {
        model_result_fail (result, EP__STATUS__CODE__INTERNAL, "%sputting %s %s under lease %lld "
                           "failed: %s", ctx->where, entity_type_name (type), *fields.id,
                           (long long) write->lease_id, modelstore_error (self->store));
        ok = false;
    }
    if (ok) {
        Ep__ModelOp *model_op = entity_op_add (ctx->change,
            before? EP__MODEL_OP__KIND__UPDATED: EP__MODEL_OP__KIND__CREATED, type, *fields.id);
        model_op->entity = entity_copy (entity);
        if (type == EP__ENTITY_TYPE__ENTITY_ROUTER)
            entity_hosted_delta (model_op, before? before->router: NULL, entity->router);
        model_result_add_entity (result, entity);
    }
    if (before)
        ep__entity__free_unpacked (before, NULL);
    ep__entity__free_unpacked (entity, NULL);
    return ok;
}

//  Router router_id stops hosting service_id, in this revision.
static bool
s_unhost_router (model_t *self, s_write_ctx_t *ctx, const char *router_id, const char *service_id)
{
    Ep__Entity *router = s_load (self, EP__ENTITY_TYPE__ENTITY_ROUTER, router_id);
    EP_ASSERT (router);
    Ep__Entity *after = entity_copy (router);
    size_t kept = 0;
    for (size_t i = 0; i < after->router->n_hosted; i++)
        if (streq (after->router->hosted [i]->service_id, service_id))
            ep__hosted_service__free_unpacked (after->router->hosted [i], NULL);
        else
            after->router->hosted [kept++] = after->router->hosted [i];
    after->router->n_hosted = kept;
    Ep__EntityMeta *old_meta = after->router->meta;
    after->router->meta = entity_meta_new (ctx->revision, old_meta->create_revision,
                                           old_meta->created_at_ms, ctx->now_ms, ctx->caller);
    ep__entity_meta__free_unpacked (old_meta, NULL);
    bool ok = s_save (self, after) == 0;
    if (!ok)
        model_result_fail (ctx->result, EP__STATUS__CODE__INTERNAL, "%supdating router %s failed: %s",
                           ctx->where, router_id, modelstore_error (self->store));
    else {
        Ep__ModelOp *model_op = entity_op_add (ctx->change, EP__MODEL_OP__KIND__UPDATED,
                                               EP__ENTITY_TYPE__ENTITY_ROUTER, router_id);
        model_op->entity = entity_copy (after);
        entity_hosted_delta (model_op, router->router, after->router);
    }
    ep__entity__free_unpacked (after, NULL);
    ep__entity__free_unpacked (router, NULL);
    return ok;
}

//  Every router hosting service_id stops hosting it, in this revision.
static bool
s_unhost (model_t *self, s_write_ctx_t *ctx, const char *service_id)
{
    zlistx_t *routers = zlistx_new ();
    zlistx_set_destructor (routers, (czmq_destructor *) zstr_free);
    bool ok = modelstore_hosting (self->store, service_id, routers) == 0;
    if (!ok)
        model_result_fail (ctx->result, EP__STATUS__CODE__INTERNAL,
                           "%sfinding the routers hosting %s failed: %s", ctx->where, service_id, modelstore_error (self->store));
    const char *router_id = (const char *) zlistx_first (routers);
    for (; ok && router_id; router_id = (const char *) zlistx_next (routers))
        ok = s_unhost_router (self, ctx, router_id, service_id);
    zlistx_destroy (&routers);
    return ok;
}

//  DELETE one entity; a service leaves every router hosting it.
static bool
s_apply_delete (model_t *self, s_write_ctx_t *ctx, const Ep__ModelWrite *write)
{
    model_result_t *result = ctx->result;
    Ep__EntityType type = write->has_type? write->type: EP__ENTITY_TYPE__ENTITY_UNSPECIFIED;
    if (!entity_type_valid (type)) {
        model_result_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                           "%sDELETE needs type (router, service, identity or controller)", ctx->where);
        return false;
    }
    const char *type_name = entity_type_name (type);
    if (!write->id || !ep_id_valid (write->id)) {
        model_result_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, "%sDELETE needs a valid %s id",
                           ctx->where, type_name);
        return false;
    }
    Ep__Entity *before = s_load (self, type, write->id);
    if (!before) {
        model_result_fail (result, EP__STATUS__CODE__NOT_FOUND, "%s%s %s does not exist",
                           ctx->where, type_name, write->id);
        return false;
    }
    bool ok = s_check_version (ctx, write, before, type_name, write->id);
    if (ok && type == EP__ENTITY_TYPE__ENTITY_SERVICE)
        ok = s_unhost (self, ctx, write->id);
    if (ok && modelstore_remove (self->store, type, write->id) != 0) {
        model_result_fail (result, EP__STATUS__CODE__INTERNAL, "%sdeleting %s %s failed: %s",
                           ctx->where, type_name, write->id, modelstore_error (self->store));
        ok = false;
    }
    if (ok) {
        Ep__ModelOp *model_op = entity_op_add (ctx->change, EP__MODEL_OP__KIND__DELETED, type, write->id);
        if (type == EP__ENTITY_TYPE__ENTITY_ROUTER)
            entity_hosted_delta (model_op, before->router, NULL);
    }
    ep__entity__free_unpacked (before, NULL);
    return ok;
}

static bool
s_apply_write (model_t *self, s_write_ctx_t *ctx, const Ep__ModelWrite *write)
{
    Ep__ModelWrite__Op op = write->has_op? write->op: EP__MODEL_WRITE__OP__OP_UNSPECIFIED;
    if (op == EP__MODEL_WRITE__OP__CREATE || op == EP__MODEL_WRITE__OP__UPDATE)
        return s_apply_put (self, ctx, write, op);
    if (op == EP__MODEL_WRITE__OP__DELETE)
        return s_apply_delete (self, ctx, write);
    model_result_fail (ctx->result, EP__STATUS__CODE__INVALID_ARGUMENT, "%swrite.op: use CREATE, UPDATE or DELETE",
                       ctx->where);
    return false;
}

bool
model_is_write (const Ep__ModelRequest *request)
{
    return request->op_case == EP__MODEL_REQUEST__OP_WRITE
        || request->op_case == EP__MODEL_REQUEST__OP_TXN;
}

//  Another instance may have committed on a shared store: its revision
//  (and a generation it set) are the ones to go on from.
static void
s_sync (model_t *self)
{
    uint64_t revision;
    char generation [33];
    if (modelstore_current (self->store, &revision, generation) == 1 && *generation) {
        self->revision = revision;
        memcpy (self->generation, generation, sizeof self->generation);
    }
}

int
model_begin (model_t *self)
{
    s_sync (self);
    self->pending = self->revision;
    return modelstore_begin (self->store);
}

//  Completes the change of a request whose writes all applied, and stages
//  its record (which forgets the records past retention).
static bool
s_record (model_t *self, s_write_ctx_t *ctx, bool txn)
{
    Ep__ModelChange *change = ctx->change;
    change->has_revision = true;
    change->revision = ctx->revision;
    //  The embedded store's revisions have no holes.
    change->has_prev_revision = true;
    change->prev_revision = ctx->revision - 1;
    change->generation = strdup (self->generation);
    change->has_committed_at_ms = true;
    change->committed_at_ms = ctx->now_ms;
    change->has_part = change->has_parts = true;
    change->part = change->parts = 1;
    change->principal = entity_principal_new (ctx->caller);
    size_t size = ep__model_change__get_packed_size (change);
    if (size > MODEL_REPLY_BUDGET) {
        //  No "changes" reply could carry it: followers that missed it
        //  would be stuck.
        model_result_fail (ctx->result, EP__STATUS__CODE__INVALID_ARGUMENT,
                           "%s: the change would be %zu bytes, over the %u one revision may hold: "
                           "split it into smaller transactions", txn? "txn": "write", size, MODEL_REPLY_BUDGET);
        return false;
    }
    uint64_t forget = ctx->revision > self->retain? ctx->revision - self->retain: 0;
    if (modelstore_record (self->store, change, forget) != 0) {
        model_result_fail (ctx->result, EP__STATUS__CODE__INTERNAL, "recording revision %llu failed: %s",
                           (unsigned long long) ctx->revision, modelstore_error (self->store));
        return false;
    }
    return true;
}

void
model_write (model_t *self, const Ep__ModelRequest *request,
             const ep_caller_t *caller, int64_t now_ms, model_result_t *result)
{
    EP_ASSERT (model_is_write (request));
    EP_ASSERT (modelstore_in_batch (self->store));
    const Ep__ModelWrite *single [1] = { request->write };
    const Ep__ModelWrite *const *writes = single;
    size_t count = 1;
    bool txn = request->op_case == EP__MODEL_REQUEST__OP_TXN;
    if (txn) {
        if (!request->txn || request->txn->n_writes == 0) {
            model_result_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, "txn: at least one write is required");
            return;
        }
        writes = (const Ep__ModelWrite *const *) request->txn->writes;
        count = request->txn->n_writes;
    }
    else
    if (!request->write) {
        model_result_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, "write: missing");
        return;
    }
    s_write_ctx_t ctx = { .revision = self->pending + 1, .now_ms = now_ms,
                          .caller = caller, .result = result };
    Ep__ModelChange *change = (Ep__ModelChange *) malloc (sizeof (Ep__ModelChange));
    ep__model_change__init (change);
    ctx.change = change;

    EP_ASSERT (modelstore_write_begin (self->store) == 0);
    bool ok = true;
    for (size_t i = 0; ok && i < count; i++) {
        if (txn)
            snprintf (ctx.where, sizeof ctx.where, "write %zu: ", i + 1);
        ok = s_apply_write (self, &ctx, writes [i]);
    }
    ok = ok && s_record (self, &ctx, txn);
    modelstore_write_end (self->store, ok);
    if (ok) {
        self->pending = ctx.revision;
        result->reply.has_revision = true;
        result->reply.revision = ctx.revision;
        //  Handed out once the batch commits: the event takes the change.
        Ep__Event *event = (Ep__Event *) malloc (sizeof (Ep__Event));
        ep__event__init (event);
        event->body_case = EP__EVENT__BODY_MODEL_CHANGE;
        event->model_change = change;
        ep_output_take (self->output, "model.change", &event, (int64_t) ctx.revision);
    }
    else {
        ep__model_change__free_unpacked (change, NULL);
        //  Entities collected for a failed reply are not returned.
        result->reply.n_entities = 0;
    }
}

static void
s_committed (void *arg, int rc, const char *error)
{
    model_t *self = (model_t *) arg;
    if (rc != 0) {
        ep_log_error ("commit failed: %s", error);
        self->pending = self->revision;
        ep_output_abort (self->output);
    }
    else {
        self->revision = self->pending;
        ep_output_commit (self->output);
    }
    model_done_fn *done = self->commit_done;
    self->commit_done = NULL;
    done (self->commit_arg, rc);
}

void
model_commit (model_t *self, model_done_fn *done, void *arg)
{
    EP_ASSERT (!self->commit_done);     //  one batch at a time
    self->commit_done = done;
    self->commit_arg = arg;
    modelstore_commit (self->store, s_committed, self);
}

//  ---------------------------------------------------------------------
//  Life cycle

model_t *
model_new (modelstore_t *store, uint64_t retain)
{
    EP_ASSERT (retain > 0);
    model_t *self = (model_t *) zmalloc (sizeof (model_t));
    self->store = store;
    self->retain = retain;
    self->reads = reads_new (store);
    self->output = ep_output_new ();
    bool restored;
    int rc = modelstore_state (store, &self->revision, self->generation, &restored);
    if (rc == 0 && (!*self->generation || restored)) {
        //  A new store, or one restored from a backup: a new generation
        //  tells followers that revisions may have gone backwards.
        ep_random_hex (self->generation, 16);
        rc = modelstore_set_generation (store, self->generation);
        if (restored)
            ep_log_warn ("store restored from a backup: new generation %s", self->generation);
    }
    self->pending = self->revision;
    if (rc != 0) {
        ep_log_error ("cannot initialise the model store: %s", modelstore_error (store));
        model_destroy (&self);
    }
    return self;
}

void
model_destroy (model_t **self_p)
{
    model_t *self = *self_p;
    if (self) {
        reads_destroy (&self->reads);
        ep_output_destroy (&self->output);
        free (self);
        *self_p = NULL;
    }
}

uint64_t
model_revision (model_t *self)
{
    if (!modelstore_in_batch (self->store))
        s_sync (self);
    return self->revision;
}

const char *
model_generation (model_t *self)
{
    return self->generation;
}

void
model_read (model_t *self, const Ep__ModelRequest *request, int64_t now_ms,
            model_result_t *result, model_done_fn *done, void *arg)
{
    EP_ASSERT (!modelstore_in_batch (self->store));
    s_sync (self);
    reads_serve (self->reads, request, self->revision, self->generation, now_ms, result, done, arg);
}

ep_output_item_t *
model_next_output (model_t *self)
{
    return ep_output_next (self->output);
}

void
model_expire_snapshots (model_t *self, int64_t now_ms)
{
    reads_expire (self->reads, now_ms);
}

Ep__Entity **
model_entities (model_t *self, size_t *count)
{
    return reads_entities (self->reads, count);
}
