/*  modelstore_etcd_int.h: the etcd backend's state, shared by its two
    files (modelstore_etcd.c: mirror, batches; modelstore_etcd_reads.c:
    commits, queries, replies, backups). Private to them: metcd_ names.
*/
#ifndef MODELSTORE_ETCD_INT_H_INCLUDED
#define MODELSTORE_ETCD_INT_H_INCLUDED

#include "modelstore_etcd.h"

//  Keys under the prefix (docs/etcd.md, "The model's keys").
#define METCD_STATE     "state"
#define METCD_ENTITIES  "entities/"
#define METCD_CHANGES   "changes/"
#define METCD_REPLIES   "replies/"
#define METCD_LEASES    "leases/"
//  Keys per range page (loads, queries, backups).
#define METCD_PAGE      500

//  A value: in the mirror (mod set) or staged by a batch (mod 0).
typedef struct {
    uint8_t *value;             //  the bytes (NUL-terminated too); NULL if removed
    size_t size;                //  their size
    bool removed;               //  staged: a delete
    int64_t mod;                //  etcd mod_revision (0: staged)
    bool lease;                 //  staged: put under the replies' lease
    int64_t lease_id;           //  staged: put under this lease (a lease marker)
    uint64_t version;           //  entity: meta.version (the model's revision)
    char **hosted;              //  router: hosted service ids, NULL-terminated
} metcd_kv_t;

typedef struct {
    uint64_t revision;          //  the model's last revision
    char generation [33];       //  its generation ("" for a new store)
    bool restored;              //  loaded from a backup, no new generation yet
    uint64_t cluster_id;        //  the etcd cluster's id when written (0: not recorded)
} metcd_state_t;

typedef struct _metcd_t metcd_t;
typedef struct _metcd_call_t metcd_call_t;

//  A reply to a call of the store (data is the call's).
typedef void (metcd_call_fn) (metcd_t *self, metcd_call_t *call, const ep_etcd_reply_t *reply,
                              const char *error);

struct _metcd_call_t {
    metcd_t *self;              //  the store, NULL once it was destroyed
    void *handle;               //  in self->calls
    metcd_call_fn *fn;          //  its reply goes here
    void *data;                 //  what it needs (NULL once taken over)
    void (*free_data) (void *); //  frees data after fn (NULL: not ours)
};

struct _metcd_t {
    ep_etcd_t *etcd;            //  the client (borrowed)
    char *prefix;               //  key prefix, ending in '/'
    size_t prefix_size;         //  its length
    int64_t max_txn_ops;        //  the cluster's --max-txn-ops
    int64_t replies_ttl_ms;     //  saved replies live this long at least
    uint64_t cluster_id;        //  the cluster's id, from its replies (0: not known yet)
    void *snapshot;             //  a backup's snapshot in flight, or NULL
    char error [768];           //  why the last call failed
    ep_store_fault_t fault;     //  its kind: NOSPACE (etcd's quota) or OTHER
    int probe;                  //  METCD_PROBE_*: the NOSPACE probe's state
    zlistx_t *calls;            //  metcd_call_t in flight (not owned)
    //  The mirror of entities and state
    zhashx_t *mirror;           //  key under the prefix -> metcd_kv_t
    int64_t mirror_rev;         //  the etcd revision it reflects
    bool mirror_bad;            //  to be reloaded before the next batch
    int64_t catch_up_rev;       //  no batch before the mirror reaches this etcd revision
    bool retry;                 //  the last failed commit lost to another instance's
    bool too_large;             //  the last failed commit was over --max-txn-ops
    bool lease_gone;            //  the last failed commit put a marker under an ended lease
    bool reloading;             //  a reload is in flight
    ep_etcd_watch_t *watch;     //  keeps it current
    //  The open batch
    bool in_batch;              //  between begin and commit
    bool committing;            //  a commit is in flight
    zhashx_t *staged;           //  key -> metcd_kv_t (not owned: freed by hand)
    zhashx_t *reads;            //  key -> int64_t mod revision the batch read
    int64_t begin_rev;          //  the mirror's revision at begin
    int64_t routers_read_rev;   //  the mirror's revision when routers were read (0: not)
    uint64_t staged_revision;   //  the model revision after the batch's records
    uint64_t forget;            //  change records to delete, through this revision
    bool stale;                 //  a record was refused: the batch must fail
    bool in_write;              //  between write_begin and write_end
    zlistx_t *undo;             //  what the write replaced, to undo it
    uint64_t undo_revision;     //  staged_revision at write_begin
    uint64_t undo_forget;       //  forget at write_begin
    char nonce [17];            //  the last state write's, to settle an unknown outcome
    //  Saved replies
    char instance [9];          //  this store's id in reply keys
    uint32_t reply_seq;         //  the last reply key's sequence
    int64_t lease_id;           //  the lease of this minute's replies
    int64_t lease_minute;       //  the wall-clock minute it is for
    ep_replycache_t *cache;     //  other instances' replies go here (borrowed; NULL: none)
    //  Lease markers
    ep_etcd_watch_t *lease_watch;   //  their deletes: leases that ended
    int64_t lease_watch_rev;    //  the last etcd revision it delivered
    zlistx_t *expired;          //  modelstore_expired_t, to take (modelstore_expired)
};

//  The probe of a store over etcd's quota (modelstore_probe): none asked,
//  one in flight, or what the last one learned.
enum { METCD_PROBE_IDLE, METCD_PROBE_OUT, METCD_PROBE_TAKES, METCD_PROBE_REFUSED };

//  The backend over config's client and prefix (no load yet).
metcd_t *
    metcd_new (const modelstore_etcd_config_t *config);

void
    metcd_failed (metcd_t *self, const char *format, ...) __attribute__ ((format (printf, 2, 3)));

//  True if reply is etcd's NOSPACE (its quota exceeded, the alarm raised):
//  then the error says what an operator does about it and the fault is
//  NOSPACE. what: "the commit".
bool
    metcd_nospace (metcd_t *self, const ep_etcd_reply_t *reply, const char *what);

void
    metcd_destroy (metcd_t **self_p);

//  Ends the open batch, dropping what it staged.
void
    metcd_batch_clear (metcd_t *self);

//  prefix + rel (caller frees); the part of kv's key under the prefix
//  (NULL if it is not under it).
char *
    metcd_key (metcd_t *self, const char *rel);
const char *
    metcd_rel (metcd_t *self, const ep_etcd_kv_t *kv);

metcd_kv_t *
    metcd_kv_new (const char *rel, const uint8_t *value, size_t size, int64_t mod);
void
    metcd_kv_destroy (metcd_kv_t **kv_p);
//  metcd_kv_destroy as a zhashx/zlistx destructor.
void
    metcd_kv_free (void **item);

//  "entities/<tt>/<id>" into buf.
void
    metcd_entity_rel (char *buf, size_t size, Ep__EntityType type, const char *id);

//  The state a state key's value holds (kv NULL: a new store's); false if
//  it is not one. The value of a state (caller frees): with the cluster id
//  of self (the one the state is written to), if known.
bool
    metcd_state_parse (const metcd_kv_t *kv, metcd_state_t *state);
char *
    metcd_state_format (metcd_t *self, const metcd_state_t *state, const char *nonce);

//  A call in flight, for one etcd request whose callback is metcd_call_cb.
metcd_call_t *
    metcd_call_new (metcd_t *self, metcd_call_fn *fn, void *data, void (*free_data) (void *));
void
    metcd_call_cb (void *arg, const ep_etcd_reply_t *reply, const char *error);
//  For a request that could not be queued.
void
    metcd_call_drop (metcd_call_t *call);

//  Polls the client until *done.
void
    metcd_wait (metcd_t *self, const bool *done);

//  Reloads the mirror unless it is reloading already.
void
    metcd_resync (metcd_t *self);

//  Loads the mirror from a range of the prefix (paged), then watches it
//  (modelstore_etcd_mirror.c).
void
    metcd_reload (metcd_t *self);

//  Applies a put (value) or a delete (NULL) of rel at etcd revision mod to
//  mirror.
void
    metcd_mirror_apply (zhashx_t *mirror, const char *rel, const uint8_t *value, size_t size,
                        int64_t mod);

//  Applies a committed batch's staged values to the mirror at etcd revision.
void
    metcd_mirror_commit (metcd_t *self, zhashx_t *staged, int64_t revision);

//  modelstore_ops_t operations of modelstore_etcd_reads.c.
void
    metcd_commit (void *backend, modelstore_done_fn *done, void *arg);
void
    metcd_read (void *backend, modelstore_query_t *query, modelstore_row_fn *row,
                modelstore_done_fn *done, void *arg);
modelstore_view_t *
    metcd_view_open (void *backend, uint64_t *revision);
void
    metcd_view_close (void *backend, modelstore_view_t *view);
int
    metcd_load_replies (void *backend, ep_replycache_t *cache, int64_t wall_ms, int64_t now_ms);
void
    metcd_backup (void *backend, const char *path, modelstore_done_fn *done, void *arg);
//  Forgets a backup in flight (the store is going away).
void
    metcd_backup_drop (metcd_t *self);
void
    metcd_tick (void *backend);
int64_t
    metcd_size (void *backend);

#endif
