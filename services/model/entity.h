/*  entity.h: the model's entities as messages: the fields every kind
    shares, copies, syntax checks, meta and the ops of a change.

    No store and no revisions: model.c decides what is written and when;
    this is what it needs to handle an ep.Entity of any kind the same way.
    Messages built here are allocated with malloc piece by piece, as
    protobuf-c's unpacker does, so protobuf-c's free_unpacked releases them.
*/
#ifndef ENTITY_H_INCLUDED
#define ENTITY_H_INCLUDED

#include "ep_prelude.h"
#include "ep_auth.h"
#include "model.pb-c.h"

//  Pointers to the fields every kind has: id, name, meta.
typedef struct {
    char **id;                  //  every kind
    char **name;                //  NULL for controllers (no name)
    Ep__EntityMeta **meta;      //  every kind
    protobuf_c_boolean *has_enabled;    //  NULL for controllers
    protobuf_c_boolean *enabled;        //  NULL for controllers
    protobuf_c_boolean *has_criticality;    //  services only (NULL for the others)
    Ep__Criticality *criticality;       //  services only
    size_t *n_tags;             //  NULL for controllers
    Ep__Tag ***tags;            //  NULL for controllers
} entity_fields_t;

//  Points fields at entity's; false if entity has no kind set.
bool
    entity_fields (Ep__Entity *entity, entity_fields_t *fields);

//  "router", "service", "identity", "controller" ("entity" otherwise).
const char *
    entity_type_name (Ep__EntityType type);

//  True for the types of entities (router, service, identity, controller).
bool
    entity_type_valid (Ep__EntityType type);

//  The type of entity's kind (UNSPECIFIED if none).
Ep__EntityType
    entity_type_of (const Ep__Entity *entity);

//  A deep copy, allocated as protobuf-c's unpacker does.
Ep__Entity *
    entity_copy (const Ep__Entity *entity);

//  Replaces *field with a copy of value (NULL: none).
void
    entity_set_string (char **field, const char *value);

//  True if the service service_id exists (for entity_check).
typedef bool (entity_exists_fn) (void *arg, const char *service_id);

//  Checks entity: ids, name and tag sizes, the controller's address, a
//  service's criticality, and a router's hosted entries, whose services must exist (service_exists
//  (arg, id) says). where prefixes the message ("write 2: "). Returns OK,
//  or the status code with the message in message (every message names
//  the write and the field).
Ep__Status__Code
    entity_check (Ep__Entity *entity, const char *where, entity_exists_fn *service_exists,
                  void *arg, char *message, size_t size);

//  True if entity has every tag of filter (a tag without value: any value).
bool
    entity_tags_match (const Ep__Entity *entity, const Ep__ListFilter *filter);

//  A principal for caller.
Ep__Principal *
    entity_principal_new (const ep_caller_t *caller);

//  The meta of an entity written at revision by caller at now_ms, created
//  at create_revision and created_at.
Ep__EntityMeta *
    entity_meta_new (uint64_t revision, uint64_t create_revision, int64_t created_at,
                     int64_t now_ms, const ep_caller_t *caller);

//  Appends an op of kind on (type, id) to change, and returns it.
Ep__ModelOp *
    entity_op_add (Ep__ModelChange *change, Ep__ModelOp__Kind kind, Ep__EntityType type,
                   const char *id);

//  Records on op the services router after hosts that before did not
//  (hosted_added), and the reverse (hosted_removed); either may be NULL.
void
    entity_hosted_delta (Ep__ModelOp *op, const Ep__Router *before, const Ep__Router *after);

#endif
