/*  reapbatch.h: one batch of the reaper's etcd mode, as etcd operations.

    In the etcd mode the core runs unchanged over a local cache of the
    shards this instance owns (a sessions.db emptied at start), and its
    writes are told to a journal (sessiondb_set_journal). At the commit,
    reapbatch turns what the batch touched into the operations of one
    transaction, reading the rows back from the cache (reapkeys.h says
    what each record holds):

        a session opened, warned or closed    put s/<id> (its record)
        a session pruned                      delete s/<id>
        sessions marked, a job started, done  put j/<job> once per shard it
                                              has sessions in (how far it
                                              got: marked, closed by reason)
        counters flushed, a session closed    put c/<router>/<chunk> (the
                                              chunk's open sessions; delete
                                              when none is left)
        an event staged                       put o/<owner revision>-<seq>
        an event echoed                       delete its o/ key

    So a 20,000-session cleanup costs one job record per shard per batch,
    not a mark per session. Each key is written once per batch (etcd
    refuses a transaction that names a key twice). The caller adds the
    fences (ep_shards_fence) of reapbatch_shards and sends the ops.
*/
#ifndef REAPBATCH_H_INCLUDED
#define REAPBATCH_H_INCLUDED

#include "ep_prelude.h"
#include "ep_etcd.h"
#include "sessiondb.h"

typedef struct _reapbatch_t reapbatch_t;

//  The create revision shard is owned under here, 0 if it is not.
typedef int64_t (reapbatch_revision_fn) (void *arg, int shard);
//  The etcd key of outbox entry seq (written or adopted), or NULL.
typedef const char *(reapbatch_outbox_fn) (void *arg, int64_t seq);

typedef struct {
    const char *prefix;                 //  EDGEPLANE_ETCD_PREFIX ("/edgeplane/")
    int count;                          //  shards (EDGEPLANE_SHARDS)
    reapbatch_revision_fn *revision;    //  ownership, per shard
    reapbatch_outbox_fn *outbox_key;    //  outbox keys, per seq
    void *arg;                          //  their argument
} reapbatch_config_t;

//  An outbox entry the batch writes.
typedef struct {
    int64_t seq;                        //  its outbox seq in the cache
    int shard;                          //  its shard
    const char *key;                    //  its etcd key
    const char *event_id;               //  its StreamMeta.event_id
} reapbatch_entry_t;

reapbatch_t *
    reapbatch_new (const reapbatch_config_t *config);

void
    reapbatch_destroy (reapbatch_t **self_p);

//  The journal (a sessiondb_journal_fn; arg is the batch).
void
    reapbatch_journal (void *arg, sessiondb_change_t change, const char *id, const char *other,
                       int64_t seq);

//  Builds the batch's operations from what the journal was told, reading
//  db (the cache, in the batch's transaction). 0, or -1 with err (a
//  shard it touches is not this instance's, or the cache cannot be read).
int
    reapbatch_build (reapbatch_t *self, sessiondb_t *db, char *err, size_t errlen);

//  The operations built (valid until reapbatch_reset), and how many.
const ep_etcd_op_t *
    reapbatch_ops (reapbatch_t *self, size_t *count);

//  The shards they touch, ascending (at most max). Returns how many.
int
    reapbatch_shards (reapbatch_t *self, int *shards, int max);

//  The outbox entries written, and how many.
const reapbatch_entry_t *
    reapbatch_entries (reapbatch_t *self, size_t *count);

//  The outbox seqs (echoed) whose etcd entries the batch deletes, and how many.
const int64_t *
    reapbatch_deleted (reapbatch_t *self, size_t *count);

//  The batch's transaction committed (and the cache's will): the counts of
//  its jobs' sessions it made are kept for the next batches. A batch reset
//  without this leaves none of them (the next counts from the cache).
void
    reapbatch_settled (reapbatch_t *self);

//  Forgets the batch (after its transaction's answer).
void
    reapbatch_reset (reapbatch_t *self);

#endif
