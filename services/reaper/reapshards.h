/*  reapshards.h: the reaper's etcd mode, the store module that keeps each
    shard's sessions, cleanup jobs, counters and event outbox in etcd.

    As the terminators' termshards (docs/shards.md): routers map to shards
    (ep_shard_of) and each shard has one owner at a time (common/ep_shards:
    leases, balancing, fencing), here under the service name "reaper".

        acquired    the shard's keys are read and handed to the service
                    (LOADED: reapkeys.h says what each record holds), which
                    adopts them (in steps, ep_adopt) and says so
                    (reapshards_adopt_shard); until then the shard is
                    not ready
        a batch     reapbatch's operations in one transaction, with a
                    fence (the owner key's create revision) for every shard
                    it touches; refused by a fence, the shard is dropped
        lost        released, fenced, or the lease ended: DROPPED, and
                    the service forgets the shard's sessions and jobs

    Keys under <EDGEPLANE_ETCD_PREFIX>reaper/ (reapkeys.h); ownership
    under <EDGEPLANE_ETCD_PREFIX>shards/reaper/. docs/reaper.md, "On shards".
*/
#ifndef REAPSHARDS_H_INCLUDED
#define REAPSHARDS_H_INCLUDED

#include "ep_prelude.h"
#include "ep_etcd.h"
#include "ep_metrics.h"
#include "ep_shardset.h"
#include "reapbatch.h"

typedef struct _reapshards_t reapshards_t;

//  What the service hears, and how it is configured: as ep_shardset's
//  (its service is "reaper").
typedef ep_shardset_news_t reapshards_news_t;
typedef ep_shardset_fn reapshards_fn;
typedef ep_shardset_config_t reapshards_config_t;
#define REAPSHARDS_LOADED   EP_SHARDSET_LOADED
#define REAPSHARDS_DROPPED  EP_SHARDSET_DROPPED
#define REAPSHARDS_FAILED   EP_SHARDSET_FAILED

//  Joins the shards (asynchronous). NULL with err on a bad configuration.
reapshards_t *
    reapshards_new (const reapshards_config_t *config, char *err, size_t errlen);

//  Leaves: the lease is revoked, so the others take the shards at once.
void
    reapshards_destroy (reapshards_t **self_p);

//  The shards, read and adopted: ownership, readiness, the loop's part.
ep_shardset_t *
    reapshards_set (reapshards_t *self);

//  As ep_shardset's, for a caller that has no set at hand (a test).
int
    reapshards_pollitems (reapshards_t *self, zmq_pollitem_t *items, int max);
long
    reapshards_timeout (reapshards_t *self);
void
    reapshards_dispatch (reapshards_t *self, zmq_pollitem_t *items, int nitems);
bool
    reapshards_adopt_shard (reapshards_t *self, int shard, int64_t revision);
int
    reapshards_owned (reapshards_t *self);

//  A batch's configuration (prefix, count, ownership, outbox keys).
void
    reapshards_batch_config (reapshards_t *self, reapbatch_config_t *config);

//  The outcome of a batch: 0 durable, -1 not (why says).
typedef void (reapshards_done_fn) (void *arg, int rc, const char *why);

//  Sends a built batch (kept by the caller until done is called, once,
//  later; on success its outbox entries are remembered for their echo's
//  delete). -1 with err if it cannot be sent; then done is not called.
int
    reapshards_send (reapshards_t *self, reapbatch_t *batch, reapshards_done_fn *done, void *arg,
                     char *err, size_t errlen);

//  An outbox entry adopted on LOADED, queued by the service as seq.
void
    reapshards_adopted (reapshards_t *self, int64_t seq, const char *key);

//  The etcd key of outbox entry seq, or NULL (a reapbatch_outbox_fn).
const char *
    reapshards_outbox_key (void *self, int64_t seq);

#endif
