/*  model.h: the router model's state machine over its store.

    Inputs are decoded ModelRequests and the caller's identity; outputs are
    ModelReplies and, for committed writes, the ModelChange to publish. No
    sockets: main.c reads requests, groups the writes that arrive together
    into one transaction (model_begin, model_write per request, each in its
    own savepoint, model_commit: one fsync), and only then answers them and
    publishes their changes. Reads are served between transactions, so they
    never see uncommitted state. docs/model.md is the contract.
*/
#ifndef MODEL_H_INCLUDED
#define MODEL_H_INCLUDED

#include "ep_prelude.h"
#include "ep_auth.h"
#include "ep_owned.h"
#include "ep_store.h"
#include "model.pb-c.h"

typedef struct _model_t model_t;

//  The outcome of one request: the reply to send and, for a committed
//  write, the change to publish. Everything it points to is owned by it.
typedef struct {
    Ep__ModelReply reply;       //  reply (status points at .status)
    Ep__Status status;          //  its status
    char message [512];         //  status message storage
    Ep__ModelChange *change;    //  write: the change (NULL for reads and failures)
    ep_owned_t *owned;          //  allocations released by model_result_clear
} model_result_t;

//  The schema, for ep_store_new.
extern const char *const model_migrations [];
extern const size_t model_migrations_count;

//  A model over store (borrowed), keeping the change log for the last
//  retain revisions. Returns NULL (logged) if the store's metadata cannot be
//  read or written.
model_t *
    model_new (ep_store_t *store, uint64_t retain);

void
    model_destroy (model_t **self_p);

//  The last committed revision and the store's generation id.
uint64_t
    model_revision (model_t *self);
const char *
    model_generation (model_t *self);

//  Opens the transaction that groups the next writes. Returns 0 or -1.
int
    model_begin (model_t *self);

//  Applies one write request (write or txn) in its own savepoint. On
//  success the request gets the next revision and result->change is set;
//  on failure the savepoint is rolled back and the reply carries why.
void
    model_write (model_t *self, const Ep__ModelRequest *request,
                 const ep_caller_t *caller, int64_t now_ms, model_result_t *result);

//  Commits the transaction: once it returns 0 every write in it is durable.
//  On -1 everything since model_begin is gone (revisions included): the
//  caller must answer those writes UNAVAILABLE and drop their changes.
int
    model_commit (model_t *self);

//  Answers a read (get, list, snapshot, changes, status) from committed
//  state. Call it outside model_begin/model_commit.
void
    model_read (model_t *self, const Ep__ModelRequest *request, int64_t now_ms,
                model_result_t *result);

//  True if request writes (write, txn); false for reads.
bool
    model_is_write (const Ep__ModelRequest *request);

//  Writes a consistent copy of the store to path, marked so that a store
//  restored from it gets a new generation. Returns 0, or -1 with err.
int
    model_backup (model_t *self, const char *path, char *err, size_t errlen);

//  Ends snapshot reads idle for longer than their lifetime.
void
    model_expire_snapshots (model_t *self, int64_t now_ms);

//  Every entity at the current committed revision (for digests in tests
//  and the status command). Caller frees each with ep__entity__free_unpacked
//  and the array with free.
Ep__Entity **
    model_entities (model_t *self, size_t *count);

void
    model_result_init (model_result_t *result, const char *request_id);
void
    model_result_clear (model_result_t *result);

//  Frees a change built by model_write (one that was never handed over).
void
    model_change_free (Ep__ModelChange *change);

#endif
