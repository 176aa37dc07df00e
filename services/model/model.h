/*  model.h: the router model's rules over its store (modelstore.h).

    Inputs are decoded ModelRequests and the caller's identity; outputs are
    ModelReplies and, for committed writes, the ModelChanges to publish,
    handed out through an ep_output queue (model_next_output). No sockets
    and no SQL: the service reads requests, groups the writes that arrive
    together into one batch (model_begin, model_write per request, each
    undone alone if it fails, model_commit: one fsync), and only then
    answers them and publishes their changes. Reads are served between
    batches, so they never see uncommitted state. Commits and reads report
    in a completion callback, called before they return with SQLite and
    later with a networked store. docs/model.md is the contract.
*/
#ifndef MODEL_H_INCLUDED
#define MODEL_H_INCLUDED

#include "ep_prelude.h"
#include "ep_auth.h"
#include "ep_owned.h"
#include "ep_codec.h"
#include "ep_output.h"
#include "modelstore.h"
#include "model.pb-c.h"

typedef struct _model_t model_t;

//  What a reply may carry of entities or changes: a reply must fit in one
//  message (EP_CODEC_DEFAULT_CAP), with room for its other fields.
#define MODEL_REPLY_BUDGET  (EP_CODEC_DEFAULT_CAP - 65536u)

//  The outcome of one request: the reply to send. Everything it points to
//  is owned by it.
typedef struct {
    Ep__ModelReply reply;       //  reply (status points at .status)
    Ep__Status status;          //  its status
    char message [512];         //  status message storage
    ep_owned_t *owned;          //  allocations released by model_result_clear
} model_result_t;

//  The outcome of model_commit or model_read: rc 0 or -1.
typedef void (model_done_fn) (void *arg, int rc);

//  A model over store (borrowed), keeping the change log for the last
//  retain revisions. Returns NULL (logged) if the store's state cannot be
//  read or written.
model_t *
    model_new (modelstore_t *store, uint64_t retain);

void
    model_destroy (model_t **self_p);

//  The last committed revision and the store's generation id (on a store
//  that several instances write, as the store knows them now).
uint64_t
    model_revision (model_t *self);
const char *
    model_generation (model_t *self);

//  Opens the batch that groups the next writes. Returns 0 or -1
//  (modelstore_error says why).
int
    model_begin (model_t *self);

//  Applies one write request (write or txn) to the batch, undone alone if
//  it fails. On success the request gets the next revision and
//  its change is staged for model_next_output; on failure the reply
//  carries why.
void
    model_write (model_t *self, const Ep__ModelRequest *request,
                 const ep_caller_t *caller, int64_t now_ms, model_result_t *result);

//  Commits the batch; done (arg, rc): 0 when every write in it is durable,
//  -1 when everything since model_begin is gone (revisions included, logged
//  with why): the caller must answer those writes UNAVAILABLE and drop
//  their changes.
void
    model_commit (model_t *self, model_done_fn *done, void *arg);

//  Answers a read (get, list, snapshot, changes, status, backup) from
//  committed state into result, then calls done (arg, 0); result and
//  request stay the caller's until then. Call it outside a batch.
void
    model_read (model_t *self, const Ep__ModelRequest *request, int64_t now_ms,
                model_result_t *result, model_done_fn *done, void *arg);

//  True if request writes (write, txn); false for reads.
bool
    model_is_write (const Ep__ModelRequest *request);

//  Ends snapshot reads idle for longer than their lifetime.
void
    model_expire_snapshots (model_t *self, int64_t now_ms);

//  Every entity at the current committed revision (for digests in tests),
//  over a store that completes inline. Caller frees each with
//  ep__entity__free_unpacked and the array with free.
Ep__Entity **
    model_entities (model_t *self, size_t *count);

void
    model_result_init (model_result_t *result, const char *request_id);
void
    model_result_clear (model_result_t *result);

//  Sets result's status to code with a printf-style message.
void
    model_result_fail (model_result_t *result, Ep__Status__Code code, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

//  Adds a copy of entity to the reply.
void
    model_result_add_entity (model_result_t *result, const Ep__Entity *entity);

//  Adds change to the reply, which takes it over.
void
    model_result_add_change (model_result_t *result, Ep__ModelChange *change);

//  The next change to publish, oldest first, once its batch committed: an
//  item of topic "model.change" whose event->model_change is the revision
//  (whole: the publisher splits it into parts and derives entityChange.*).
//  NULL if none; the caller destroys it with ep_output_item_destroy.
ep_output_item_t *
    model_next_output (model_t *self);

#endif
