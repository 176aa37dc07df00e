/*  entity.c: the model's entities as messages (see entity.h).

    Kinds differ in their fields; entity_fields points at the ones they
    share, so the rest of the model handles every kind the same way.
*/
#include "entity.h"
#include "ep_model_view.h"
#include <stdarg.h>

#define NAME_MAX_LEN        256
#define TAG_VALUE_MAX_LEN   256

const char *
entity_type_name (Ep__EntityType type)
{
    switch (type) {
        case EP__ENTITY_TYPE__ENTITY_ROUTER:     return "router";
        case EP__ENTITY_TYPE__ENTITY_SERVICE:    return "service";
        case EP__ENTITY_TYPE__ENTITY_IDENTITY:   return "identity";
        case EP__ENTITY_TYPE__ENTITY_CONTROLLER: return "controller";
        default:                                 return "entity";
    }
}

bool
entity_type_valid (Ep__EntityType type)
{
    return type >= EP__ENTITY_TYPE__ENTITY_ROUTER && type <= EP__ENTITY_TYPE__ENTITY_CONTROLLER;
}

Ep__EntityType
entity_type_of (const Ep__Entity *entity)
{
    switch (entity->kind_case) {
        case EP__ENTITY__KIND_ROUTER:     return EP__ENTITY_TYPE__ENTITY_ROUTER;
        case EP__ENTITY__KIND_SERVICE:    return EP__ENTITY_TYPE__ENTITY_SERVICE;
        case EP__ENTITY__KIND_IDENTITY:   return EP__ENTITY_TYPE__ENTITY_IDENTITY;
        case EP__ENTITY__KIND_CONTROLLER: return EP__ENTITY_TYPE__ENTITY_CONTROLLER;
        default:                          return EP__ENTITY_TYPE__ENTITY_UNSPECIFIED;
    }
}

bool
entity_fields (Ep__Entity *entity, entity_fields_t *fields)
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
            fields->has_criticality = &entity->service->has_criticality;
            fields->criticality = &entity->service->criticality;
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

//  A deep copy, allocated as protobuf-c's unpacker does (ep_entity_dup).
Ep__Entity *
entity_copy (const Ep__Entity *entity)
{
    return ep_entity_dup (entity);
}

void
entity_set_string (char **field, const char *value)
{
    free (*field);
    *field = value? strdup (value): NULL;
}

static Ep__Status__Code
s_fail (char *message, size_t size, Ep__Status__Code code, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (message, size, format, args);
    va_end (args);
    return code;
}

//  The hosted entries of a router: well formed, each service once, and
//  every service existing.
static Ep__Status__Code
s_check_hosted (const Ep__Router *router, const char *where, entity_exists_fn *service_exists,
                void *arg, char *message, size_t size)
{
    for (size_t i = 0; i < router->n_hosted; i++) {
        Ep__HostedService *hosted = router->hosted [i];
        if (!hosted->service_id || !ep_id_valid (hosted->service_id))
            return s_fail (message, size, EP__STATUS__CODE__INVALID_ARGUMENT,
                           "%srouter.hosted[%zu].service_id: a service id is required", where, i);
        if (hosted->cost > 65535)
            return s_fail (message, size, EP__STATUS__CODE__INVALID_ARGUMENT,
                           "%srouter.hosted[%zu].cost %u: use 0 to 65535", where, i, hosted->cost);
        if (hosted->precedence > EP__PRECEDENCE__PRECEDENCE_FAILED)
            return s_fail (message, size, EP__STATUS__CODE__INVALID_ARGUMENT,
                           "%srouter.hosted[%zu].precedence: use default, required or failed", where, i);
        for (size_t j = 0; j < i; j++)
            if (streq (router->hosted [j]->service_id, hosted->service_id))
                return s_fail (message, size, EP__STATUS__CODE__INVALID_ARGUMENT,
                               "%srouter.hosted: service \"%s\" appears twice", where, hosted->service_id);
        if (!service_exists (arg, hosted->service_id))
            return s_fail (message, size, EP__STATUS__CODE__FAILED_PRECONDITION,
                           "%srouter.hosted[%zu]: service \"%s\" does not exist; create it first",
                           where, i, hosted->service_id);
    }
    return EP__STATUS__CODE__OK;
}

Ep__Status__Code
entity_check (Ep__Entity *entity, const char *where, entity_exists_fn *service_exists,
              void *arg, char *message, size_t size)
{
    entity_fields_t fields;
    if (!entity_fields (entity, &fields))
        return s_fail (message, size, EP__STATUS__CODE__INVALID_ARGUMENT,
                       "%sentity: set exactly one of router, service, identity, controller", where);
    const char *type = entity_type_name (entity_type_of (entity));
    if (*fields.id && !ep_id_valid (*fields.id))
        return s_fail (message, size, EP__STATUS__CODE__INVALID_ARGUMENT,
                       "%s%s.id \"%.64s\": use 1 to 64 of A-Z a-z 0-9 _ -", where, type, *fields.id);
    if (fields.name && *fields.name && strlen (*fields.name) > NAME_MAX_LEN)
        return s_fail (message, size, EP__STATUS__CODE__INVALID_ARGUMENT,
                       "%s%s.name: at most %d characters", where, type, NAME_MAX_LEN);
    for (size_t i = 0; fields.tags && i < *fields.n_tags; i++) {
        Ep__Tag *tag = (*fields.tags) [i];
        if (!tag->key || !ep_id_valid (tag->key)
        ||  (tag->value && strlen (tag->value) > TAG_VALUE_MAX_LEN))
            return s_fail (message, size, EP__STATUS__CODE__INVALID_ARGUMENT,
                           "%s%s.tags[%zu]: key of 1 to 64 of A-Z a-z 0-9 _ -, value of at most %d characters",
                           where, type, i, TAG_VALUE_MAX_LEN);
        for (size_t j = 0; j < i; j++)
            if (streq ((*fields.tags) [j]->key, tag->key))
                return s_fail (message, size, EP__STATUS__CODE__INVALID_ARGUMENT,
                               "%s%s.tags: key \"%s\" appears twice", where, type, tag->key);
    }
    if (entity->kind_case == EP__ENTITY__KIND_CONTROLLER
    &&  entity->controller->address && !strchr (entity->controller->address, ':'))
        return s_fail (message, size, EP__STATUS__CODE__INVALID_ARGUMENT,
                       "%scontroller.address \"%.64s\": use host:port", where, entity->controller->address);
    //  protobuf-c takes any number for an enum: a value from a newer
    //  client, or garbage, stops here rather than in every reader.
    int criticality = fields.criticality? (int) *fields.criticality: 0;
    if (fields.has_criticality && *fields.has_criticality
    &&  (criticality < EP__CRITICALITY__CRITICALITY_NORMAL || criticality > EP__CRITICALITY__CRITICALITY_CRITICAL))
        return s_fail (message, size, EP__STATUS__CODE__INVALID_ARGUMENT,
                       "%sservice.criticality %d: use critical, high, normal or low", where, criticality);
    if (entity->kind_case == EP__ENTITY__KIND_ROUTER)
        return s_check_hosted (entity->router, where, service_exists, arg, message, size);
    return EP__STATUS__CODE__OK;
}

bool
entity_tags_match (const Ep__Entity *entity, const Ep__ListFilter *filter)
{
    entity_fields_t fields;
    entity_fields ((Ep__Entity *) entity, &fields);
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

Ep__ModelOp *
entity_op_add (Ep__ModelChange *change, Ep__ModelOp__Kind kind, Ep__EntityType type, const char *id)
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

void
entity_hosted_delta (Ep__ModelOp *op, const Ep__Router *before, const Ep__Router *after)
{
    for (size_t i = 0; after && i < after->n_hosted; i++)
        if (!s_hosts (before, after->hosted [i]->service_id))
            s_strings_add (&op->hosted_added, &op->n_hosted_added, after->hosted [i]->service_id);
    for (size_t i = 0; before && i < before->n_hosted; i++)
        if (!s_hosts (after, before->hosted [i]->service_id))
            s_strings_add (&op->hosted_removed, &op->n_hosted_removed, before->hosted [i]->service_id);
}

Ep__Principal *
entity_principal_new (const ep_caller_t *caller)
{
    Ep__Principal *who = (Ep__Principal *) malloc (sizeof (Ep__Principal));
    ep__principal__init (who);
    who->key = strdup (caller->key);
    who->role = strdup (caller->role);
    who->name = strdup (caller->name);
    return who;
}

Ep__EntityMeta *
entity_meta_new (uint64_t revision, uint64_t create_revision, int64_t created_at, int64_t now_ms,
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
    meta->updated_by = entity_principal_new (caller);
    return meta;
}

