/*  ep_model_view.h: an in-memory copy of the router model, as a pure state
    machine (no sockets, no clocks).

    Followers of the model (terminators, reaper, watchdog, CLI) load a
    snapshot into a view and then apply the model.change stream to it. The
    view decides what a change means for it: applied, already seen (OLD),
    one part of a multi-part revision kept until the rest arrives (PARTIAL),
    a missing revision before it (GAP: fetch "changes since"), or another
    store altogether (GENERATION: snapshot again). A revision is applied
    whole or not at all, and an observer hears about every entity that
    changed, with its state before and after.

    Entities are keyed by (type, id). The view owns deep copies of them
    (unpacked protobuf-c messages, copied by packing and unpacking), so a
    caller may free what it passed in; what the view hands out is borrowed
    and valid until the next call that changes the view.

    The digest (BLAKE2b-256 over the protobuf packing of every entity in
    (type, id) order, concatenated) lets a follower and the model service
    prove they hold the same model; ep_model_digest_entities computes it
    over any set of entities so both sides use the same code.
*/
#ifndef EP_MODEL_VIEW_H_INCLUDED
#define EP_MODEL_VIEW_H_INCLUDED

#include "ep_prelude.h"
#include "model.pb-c.h"

typedef struct _ep_model_view_t ep_model_view_t;

//  The largest entity type number (types are 1..EP_MODEL_TYPE_MAX).
#define EP_MODEL_TYPE_MAX 4

//  Size of a digest in bytes, and of its hex form with the terminating 0.
#define EP_MODEL_DIGEST_SIZE 32
#define EP_MODEL_DIGEST_HEX_SIZE 65

//  What ep_model_view_apply did with a change.
typedef enum {
    EP_MODEL_APPLIED = 0,       //  the revision is applied (all its parts)
    EP_MODEL_OLD,               //  revision <= applied: ignored (idempotent)
    EP_MODEL_PARTIAL,           //  a part kept; the revision waits for the rest
    EP_MODEL_GAP,               //  revision > applied but its prev_revision (absent:
                                //  revision - 1) is not the applied one: not applied,
                                //  fetch changes since
    EP_MODEL_GENERATION,        //  another generation (or none loaded): snapshot again
    EP_MODEL_INVALID            //  malformed (no revision, bad part numbers, an op
                                //  without type or id): nothing applied
} ep_model_apply_t;

//  One entity that changed, as the observer sees it. kind is CREATED when
//  there was no entity before, DELETED when there is none after, UPDATED
//  otherwise (whatever the op said: an UPDATED op on a missing entity is a
//  creation for this view). before and after are borrowed for the call.
typedef struct {
    Ep__ModelOp__Kind kind;     //  CREATED, UPDATED or DELETED
    Ep__EntityType type;        //  the entity's type
    const char *id;             //  the entity's id
    const Ep__Entity *before;   //  the entity before, NULL if it did not exist
    const Ep__Entity *after;    //  the entity after, NULL if it was deleted
    uint64_t revision;          //  the revision that made the change
    const Ep__ModelOp *op;      //  the op as published (hosted_added/removed),
                                //  NULL when the change came from a snapshot
} ep_model_event_t;

//  Called once per changed entity, after the whole revision is applied (so
//  lookups from the observer see the new state). It must not change the view.
typedef void (ep_model_observer_fn) (void *arg, const ep_model_event_t *event);

//  An empty view: no generation, revision 0.
ep_model_view_t *
    ep_model_view_new (void);

void
    ep_model_view_destroy (ep_model_view_t **self_p);

//  Sets the observer (NULL to remove) called for every applied change.
void
    ep_model_view_set_observer (ep_model_view_t *self, ep_model_observer_fn *observer,
                                void *arg);

//  Empties the view and sets its generation and revision, to load a
//  snapshot with ep_model_view_put. Parts waiting for completion are
//  dropped. The observer is not called.
void
    ep_model_view_reset (ep_model_view_t *self, const char *generation, uint64_t revision);

//  Stores a copy of entity (a snapshot entry), replacing the one with the
//  same (type, id). The observer is not called. Returns -1 if the entity
//  has no kind or no id.
int
    ep_model_view_put (ep_model_view_t *self, const Ep__Entity *entity);

//  Applies change (one part of one revision; not taken over). See
//  ep_model_apply_t. A multi-part revision is applied when parts 1..parts
//  have all been given, in any order; a part given twice counts once, and a
//  part with a different parts count replaces the parts kept so far.
ep_model_apply_t
    ep_model_view_apply (ep_model_view_t *self, const Ep__ModelChange *change);

//  Forgets the parts kept of a multi-part revision. A follower calls this
//  before applying a "changes" reply, so parts from the stream and parts
//  from the reply (which may be split differently) never mix.
void
    ep_model_view_drop_partial (ep_model_view_t *self);

//  Replaces the content, generation and revision of the view with those of
//  *source_p (a snapshot loaded into another view), calling the observer
//  for every entity that differs (op NULL, revision the source's); the
//  view keeps its observer. Destroys *source_p.
void
    ep_model_view_adopt (ep_model_view_t *self, ep_model_view_t **source_p);

//  The entity (type, id), borrowed, or NULL.
const Ep__Entity *
    ep_model_view_get (ep_model_view_t *self, Ep__EntityType type, const char *id);

//  Iterates over the entities of type in id order (bytewise). Returns the
//  first (or NULL); ep_model_view_next returns the next one. An iteration
//  ends at the first change to the view.
const Ep__Entity *
    ep_model_view_first (ep_model_view_t *self, Ep__EntityType type);
const Ep__Entity *
    ep_model_view_next (ep_model_view_t *self);

//  Number of entities of type, and of all types.
size_t
    ep_model_view_count (ep_model_view_t *self, Ep__EntityType type);
size_t
    ep_model_view_size (ep_model_view_t *self);

//  Ids of the routers that host service_id, sorted; the caller destroys
//  the list. Kept in an index, so this costs the size of the answer.
zlistx_t *
    ep_model_view_routers_hosting (ep_model_view_t *self, const char *service_id);

//  The last applied revision (0 when empty).
uint64_t
    ep_model_view_revision (ep_model_view_t *self);

//  The generation of the loaded model, or NULL before the first reset.
const char *
    ep_model_view_generation (ep_model_view_t *self);

//  True while parts of the next revision are kept waiting for the rest.
bool
    ep_model_view_partial (ep_model_view_t *self);

//  The digest of the view's entities (see ep_model_digest_entities).
void
    ep_model_view_digest (ep_model_view_t *self, uint8_t out [EP_MODEL_DIGEST_SIZE]);

//  BLAKE2b-256 over the protobuf packing of each of the n entities,
//  concatenated in (type, id) order: type by number, id bytewise. Sorts a
//  copy of the pointer array; the entities are not changed.
void
    ep_model_digest_entities (Ep__Entity **entities, size_t n,
                              uint8_t out [EP_MODEL_DIGEST_SIZE]);

//  Writes digest as 64 lowercase hex characters into out. Returns out.
char *
    ep_model_digest_hex (const uint8_t digest [EP_MODEL_DIGEST_SIZE],
                         char out [EP_MODEL_DIGEST_HEX_SIZE]);

//  The type of entity (from its oneof), ENTITY_UNSPECIFIED if none is set.
Ep__EntityType
    ep_entity_type (const Ep__Entity *entity);

//  The id of entity, or NULL.
const char *
    ep_entity_id (const Ep__Entity *entity);

//  A deep copy of entity (free with ep__entity__free_unpacked (copy, NULL)).
Ep__Entity *
    ep_entity_dup (const Ep__Entity *entity);

//  The name of an apply result ("applied", "old", ...), for logs.
const char *
    ep_model_apply_name (ep_model_apply_t result);

#endif
