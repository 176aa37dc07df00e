/*  modelstore.h: the model's storage, one interface for every backend.

    model.c keeps the rules (revisions, CAS versions, transactions,
    validation, retention, snapshots); a store keeps bytes and answers
    queries. The first backend is SQLite (modelstore_sqlite.c, the embedded
    default); the interface is shaped for a networked one (etcd through its
    JSON gateway, issue 16) whose operations complete later: a batch is
    submitted and its outcome arrives in a completion callback, and a query
    delivers its rows and then its outcome through callbacks. A backend that
    completes inline (SQLite) calls them before the submitting call returns;
    callers must not rely on either order.

    What a backend keeps
    - Entities by (type, id): the packed ep.Entity, its version (the model
      revision that last wrote it, in rows as `revision`) and the indexes
      queries need: name, and for routers the services they host. A backend
      whose keys carry their own metadata (etcd: version, mod_revision) keeps
      it beside them for its compares; the model never sees it.
    - One change record per model revision: the packed ModelChange, kept
      from the oldest retained revision on (modelstore_record forgets the
      older ones in the same batch). The record is what makes the model's
      revision its own: etcd's revision is cluster-wide (leases and other
      keys consume revisions), so the last record, not the store's counter,
      is the model's revision (and issue 16 adds to it the revision it
      follows, for followers to chain on).
    - The store's state: the last model revision, the generation id, and
      whether it was restored from a backup (a restore needs a new
      generation, so followers resync even if revisions went backwards).
    - The durable reply to each write by (caller key, request id), written
      in the batch of the write it answers, so both commit or neither; a
      retried request id gets the first reply, from any instance that loads
      them (etcd: reply keys under one lease per minute, not one each).

    Batches (group commit)
    modelstore_begin opens a batch; each write request runs between
    modelstore_write_begin and modelstore_write_end, which keeps or undoes
    what it staged (a savepoint: one failed write does not abort the
    others); modelstore_commit submits the batch and reports in done: 0 when
    every kept write is durable, -1 when none is (the store has undone the
    whole batch, and the model answers its writes UNAVAILABLE). One batch
    at a time. Inside a batch, modelstore_get and modelstore_hosting read
    the batch's view (committed state plus what the batch staged) at once,
    so the model's rules stay plain code: a networked backend answers them
    from its local mirror of the prefix (kept by a watch), records every key
    and range read with the mod revision it saw, and makes the transaction
    compare them, so a batch decided on a stale mirror fails as a whole
    instead of committing (SQLite holds the write lock and never fails that
    way). Several instances may write one etcd prefix: a batch that lost
    to another instance's commit says so (modelstore_retry), its store
    catches up with that commit by itself (modelstore_ready turns true),
    the model learns the revision the others reached (modelstore_current)
    and the service runs the batch's writes once more. A batch must fit
    the backend's transaction limits (etcd's --max-txn-ops and
    --max-request-bytes); the model's per-revision size cap keeps a write
    within them.

    Queries (outside batches) read committed state only, each with its own
    completion (modelstore_read: rows, then done). A snapshot is a view
    pinned to the last committed revision, read page by page (PAGE queries)
    while writes go on: SQLite holds a read transaction on its own
    connection; etcd pins ranges at the etcd revision of the last change
    record, which its mirror knows, so opening a view needs no round trip.
    "Changes since" is a CHANGES query: the records after a revision, with
    the oldest retained one, so the model can tell a follower to resync.

    Leases (etcd only)
    A write may put its entity under a lease of the backend's (etcd: a
    marker key <prefix>leases/<tt>/<id> attached to the etcd lease, whose
    value is the entity's version then). When the lease ends etcd deletes
    the marker and every instance's store hears of it (modelstore_expired):
    the model then deletes the entity with a compare on that version, an
    ordinary write (so a re-registered entity stays). The embedded store
    has none: it stages nothing and reports nothing.

    Errors: functions return 0 or -1; modelstore_error says why (what was
    being done and the backend's message) until the next failure.
*/
#ifndef MODELSTORE_H_INCLUDED
#define MODELSTORE_H_INCLUDED

#include "ep_prelude.h"
#include "ep_replycache.h"
#include "ep_store.h"
#include "model.pb-c.h"

typedef struct _modelstore_t modelstore_t;
typedef struct _modelstore_view_t modelstore_view_t;

//  One row of a query: an entity (packed ep.Entity) or a change record
//  (packed ep.ModelChange). Valid only during the row callback.
typedef struct {
    Ep__EntityType type;        //  entity: its type
    const char *id;             //  entity: its id
    uint64_t revision;          //  entity: its version; change: its revision
    const uint8_t *body;        //  the packed message
    size_t size;                //  its size
} modelstore_row_t;

//  What a query reads. The caller keeps it (and the strings it points to)
//  until done is called.
typedef enum {
    MODELSTORE_GET,             //  the entity (type, id), if it exists
    MODELSTORE_LIST,            //  entities of type, by id, after after_id
    MODELSTORE_PAGE,            //  entities of view, by (type, id), after (after_type, after_id)
    MODELSTORE_CHANGES,         //  change records after since, oldest first
    MODELSTORE_ALL              //  every entity, by (type, id)
} modelstore_kind_t;

typedef struct {
    modelstore_kind_t kind;     //  what to read
    Ep__EntityType type;        //  GET, LIST: the type
    const char *id;             //  GET: the id
    const char *name;           //  LIST: only entities of this name (NULL: any)
    const char *hosts_service;  //  LIST: only routers hosting this service (NULL: any)
    int after_type;             //  PAGE: rows after (after_type, after_id)
    const char *after_id;       //  LIST, PAGE: rows after this id ("" or NULL: from the first)
    modelstore_view_t *view;    //  PAGE: the pinned view
    uint32_t limit;             //  PAGE, CHANGES: at most this many rows (0: no limit)
    uint64_t since;             //  CHANGES: records with revision > since
    uint64_t oldest;            //  CHANGES, out: the oldest retained revision (0: none), set before rows
} modelstore_query_t;

//  Takes one row; returns false to stop the query (no more rows follow).
typedef bool (modelstore_row_fn) (void *arg, const modelstore_row_t *row);

//  The outcome: rc 0, or -1 with error (valid during the call).
typedef void (modelstore_done_fn) (void *arg, int rc, const char *error);

//  ---------------------------------------------------------------------
//  Life cycle and state

void
    modelstore_destroy (modelstore_t **self_p);

//  Why the last failing call failed ("" if none).
const char *
    modelstore_error (modelstore_t *self);

//  The store's state: last revision (0 for a new store), generation (""
//  for a new store; 33 bytes) and whether it was restored from a backup.
//  At start only (a networked backend may block). Returns 0 or -1.
int
    modelstore_state (modelstore_t *self, uint64_t *revision, char *generation, bool *restored);

//  Records a new generation (and revision 0 if none is recorded) and
//  clears the restored mark, durably. At start only. Returns 0 or -1.
int
    modelstore_set_generation (modelstore_t *self, const char *generation);

//  The last committed revision and the generation as the store knows them
//  now, without blocking (etcd: its mirror, which follows the commits of
//  every instance on the prefix; generation of 33 bytes). Returns 1, or 0
//  if the store cannot say: only this process writes it (SQLite), so the
//  model's own count stands.
int
    modelstore_current (modelstore_t *self, uint64_t *revision, char *generation);

//  ---------------------------------------------------------------------
//  Batches

//  True if a batch can begin now; false while the store catches up with a
//  commit of another instance that made the last batch fail (it will by
//  itself: writes wait, reads go on).
bool
    modelstore_ready (modelstore_t *self);

//  True if the last failed commit lost to another instance's commit (a
//  compare on what it read failed): once modelstore_ready, running its
//  writes again on the new state may succeed.
bool
    modelstore_retry (modelstore_t *self);

//  True if the last failed commit was too large for one of the backend's
//  transactions (etcd's --max-txn-ops): its writes may fit one by one.
bool
    modelstore_too_large (modelstore_t *self);

//  True if the last failed commit put an entity under a lease of the
//  backend's that no longer exists (it ended, or was never granted): etcd
//  refuses the whole transaction, so the writes under other leases or
//  none may commit apart (modelstore.h, "Leases").
bool
    modelstore_lease_gone (modelstore_t *self);

//  Opens a batch. Returns 0, or -1 if the store cannot take writes now.
int
    modelstore_begin (modelstore_t *self);

//  True between modelstore_begin and the commit, unless the backend lost
//  the batch (SQLite rolls back on disk full or an I/O error): then what is
//  staged now would commit on its own, so stage nothing more.
bool
    modelstore_in_batch (modelstore_t *self);

//  Starts one write request's part of the batch.
int
    modelstore_write_begin (modelstore_t *self);

//  Ends it: keep its staged changes, or undo them (the rest of the batch
//  stays).
void
    modelstore_write_end (modelstore_t *self, bool keep);

//  The entity (type, id) in the batch's view, or committed state outside a
//  batch; NULL if absent. Caller frees it with ep__entity__free_unpacked.
Ep__Entity *
    modelstore_get (modelstore_t *self, Ep__EntityType type, const char *id);

//  Appends to router_ids (strings it owns) the ids of the routers hosting
//  service_id in the batch's view, in id order. Returns 0 or -1.
int
    modelstore_hosting (modelstore_t *self, const char *service_id, zlistx_t *router_ids);

//  Stages entity (of type, id, name: NULL if it has none) at version;
//  for routers, its hosted services are indexed. Returns 0 or -1.
int
    modelstore_put (modelstore_t *self, Ep__EntityType type, const char *id, const char *name,
                    uint64_t version, const Ep__Entity *entity);

//  Stages the removal of (type, id). Returns 0 or -1.
int
    modelstore_remove (modelstore_t *self, Ep__EntityType type, const char *id);

//  Stages that (type, id), as written at version by this batch, lives
//  under lease_id (a lease of the backend's, modelstore.h "Leases").
//  Returns 0 or -1; 0 and nothing staged on a backend without leases.
int
    modelstore_lease (modelstore_t *self, Ep__EntityType type, const char *id, uint64_t version,
                      int64_t lease_id);

//  Stages the change record of change->revision, makes it the store's
//  revision, and forgets the records up to forget_through (0: none).
//  Returns 0 or -1.
int
    modelstore_record (modelstore_t *self, const Ep__ModelChange *change, uint64_t forget_through);

//  Stages the reply (packed) to the request (bytes of size) with
//  request_id from caller_key, at wall-clock wall_ms. Returns 0 or -1.
int
    modelstore_save_reply (modelstore_t *self, const char *caller_key, const char *request_id,
                           const void *request, size_t size, zframe_t *reply, int64_t wall_ms);

//  Stages the removal of saved replies past cache's limits at wall_ms, at
//  most limit of them (0: all). Returns how many, or -1.
int
    modelstore_prune_replies (modelstore_t *self, ep_replycache_t *cache, int64_t wall_ms,
                              size_t limit);

//  Submits the batch; done (arg, rc, error) reports 0 when every kept
//  write is durable, -1 when none is. Either way the batch is over.
void
    modelstore_commit (modelstore_t *self, modelstore_done_fn *done, void *arg);

//  Abandons the batch: nothing staged in it is kept.
void
    modelstore_abandon (modelstore_t *self);

//  ---------------------------------------------------------------------
//  Queries (outside batches: committed state)

//  Runs query: row (arg, row) per row in order until it returns false,
//  then done (arg, rc, error).
void
    modelstore_read (modelstore_t *self, modelstore_query_t *query,
                     modelstore_row_fn *row, modelstore_done_fn *done, void *arg);

//  Opens a view pinned to the last committed revision (set in *revision).
//  NULL on failure.
modelstore_view_t *
    modelstore_view_open (modelstore_t *self, uint64_t *revision);

//  Ends a view. Nulls the caller's pointer.
void
    modelstore_view_close (modelstore_t *self, modelstore_view_t **view_p);

//  Loads into cache the saved replies its limits keep at wall_ms (cache's
//  clock at now_ms). At start. Returns how many, or -1.
int
    modelstore_load_replies (modelstore_t *self, ep_replycache_t *cache, int64_t wall_ms,
                             int64_t now_ms);

//  Writes a consistent copy of the store to path (a file, or what the
//  backend's restore tool takes: etcd, a snapshot for etcdctl), so that a
//  store restored from it says so (SQLite: a mark in the copy; etcd: the
//  state names another cluster) and gets a new generation; done reports 0
//  or -1 with why.
void
    modelstore_backup (modelstore_t *self, const char *path, modelstore_done_fn *done, void *arg);

//  Periodic housekeeping outside batches (SQLite: a WAL checkpoint).
void
    modelstore_tick (modelstore_t *self);

//  The store's size in bytes, or -1 if unknown.
int64_t
    modelstore_size (modelstore_t *self);

//  The kind of the last failure (modelstore_error): a full or failing
//  disk degrades the service instead of stopping it (ep_degraded). OTHER
//  for a backend that cannot tell.
ep_store_fault_t
    modelstore_fault (modelstore_t *self);

//  Outside a batch: tries a small durable write, to learn whether the
//  store takes writes again. 0 or -1 (modelstore_fault says why).
int
    modelstore_probe (modelstore_t *self);

//  An entity whose lease ended: (type, id) as written at version.
typedef struct {
    Ep__EntityType type;
    char id [65];
    uint64_t version;
} modelstore_expired_t;

//  Takes the next entity whose lease ended into *expired. Returns true if
//  there was one (never, on a backend without leases).
bool
    modelstore_expired (modelstore_t *self, modelstore_expired_t *expired);

//  ---------------------------------------------------------------------
//  For backends: the operations above, in order, on the backend's state.

typedef struct {
    void (*destroy) (void *backend);
    const char *(*error) (void *backend);
    int (*state) (void *backend, uint64_t *revision, char *generation, bool *restored);
    int (*set_generation) (void *backend, const char *generation);
    int (*begin) (void *backend);
    bool (*in_batch) (void *backend);
    int (*write_begin) (void *backend);
    void (*write_end) (void *backend, bool keep);
    Ep__Entity *(*get) (void *backend, Ep__EntityType type, const char *id);
    int (*hosting) (void *backend, const char *service_id, zlistx_t *router_ids);
    int (*put) (void *backend, Ep__EntityType type, const char *id, const char *name,
                uint64_t version, const Ep__Entity *entity);
    int (*remove) (void *backend, Ep__EntityType type, const char *id);
    int (*record) (void *backend, const Ep__ModelChange *change, uint64_t forget_through);
    int (*save_reply) (void *backend, const char *caller_key, const char *request_id,
                       const void *request, size_t size, zframe_t *reply, int64_t wall_ms);
    int (*prune_replies) (void *backend, ep_replycache_t *cache, int64_t wall_ms, size_t limit);
    void (*commit) (void *backend, modelstore_done_fn *done, void *arg);
    void (*abandon) (void *backend);
    void (*read) (void *backend, modelstore_query_t *query, modelstore_row_fn *row,
                  modelstore_done_fn *done, void *arg);
    modelstore_view_t *(*view_open) (void *backend, uint64_t *revision);
    void (*view_close) (void *backend, modelstore_view_t *view);
    int (*load_replies) (void *backend, ep_replycache_t *cache, int64_t wall_ms, int64_t now_ms);
    void (*backup) (void *backend, const char *path, modelstore_done_fn *done, void *arg);
    void (*tick) (void *backend);
    int64_t (*size) (void *backend);
    ep_store_fault_t (*fault) (void *backend);  //  may be NULL: OTHER
    int (*probe) (void *backend);               //  may be NULL: 0
    int (*current) (void *backend, uint64_t *revision, char *generation);   //  may be NULL: 0
    bool (*ready) (void *backend);              //  may be NULL: true
    bool (*retry) (void *backend);              //  may be NULL: false
    int (*lease) (void *backend, Ep__EntityType type, const char *id, uint64_t version,
                  int64_t lease_id);            //  may be NULL: 0, nothing staged
    bool (*expired) (void *backend, modelstore_expired_t *expired);    //  may be NULL: false
    bool (*too_large) (void *backend);          //  may be NULL: false
    bool (*lease_gone) (void *backend);         //  may be NULL: false
} modelstore_ops_t;

//  For backends: msg packed into a buffer the caller frees, of *size bytes.
uint8_t *
    modelstore_pack (const ProtobufCMessage *msg, size_t *size);

//  A store over backend (taken over: ops->destroy releases it).
modelstore_t *
    modelstore_new (const modelstore_ops_t *ops, void *backend);

#endif
