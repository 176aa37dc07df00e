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
#include "ep_shards.h"
#include "reapbatch.h"

typedef struct _reapshards_t reapshards_t;

typedef enum {
    REAPSHARDS_LOADED,          //  shard is this instance's and read: adopt its records
    REAPSHARDS_DROPPED,         //  shard is no longer this instance's: forget it
    REAPSHARDS_FAILED           //  cannot go on (why): exit
} reapshards_event_t;

//  What the service hears.
typedef struct {
    reapshards_event_t event;   //  what happened
    int shard;                  //  to which shard (-1 for FAILED)
    int64_t revision;           //  LOADED: the owner key's create revision
    const char *why;            //  DROPPED, FAILED: a sentence for the log
    const ep_etcd_kv_t *kvs;    //  LOADED: the shard's keys (reapkeys_parse), key order
    size_t nkvs;                //  how many
} reapshards_news_t;

typedef void (reapshards_fn) (void *arg, const reapshards_news_t *news);

typedef struct {
    ep_etcd_config_t etcd;      //  the client's endpoints and TLS
    const char *prefix;         //  EDGEPLANE_ETCD_PREFIX ("/edgeplane/")
    const char *id;             //  this instance
    int count;                  //  shards (EDGEPLANE_SHARDS)
    int64_t ttl_ms;             //  the ownership lease's TTL
    ep_metrics_t *metrics;      //  the shard counters go here, or NULL
    reapshards_fn *fn;          //  the service's callback
    void *arg;                  //  its argument
} reapshards_config_t;

//  Joins the shards (asynchronous). NULL with err on a bad configuration.
reapshards_t *
    reapshards_new (const reapshards_config_t *config, char *err, size_t errlen);

//  Leaves: the lease is revoked, so the others take the shards at once.
void
    reapshards_destroy (reapshards_t **self_p);

//  The loop's part, as ep_etcd's.
int
    reapshards_pollitems (reapshards_t *self, zmq_pollitem_t *items, int max);
long
    reapshards_timeout (reapshards_t *self);
void
    reapshards_dispatch (reapshards_t *self, zmq_pollitem_t *items, int nitems);

//  The router's shard.
int
    reapshards_shard_of (reapshards_t *self, const char *router_id);

//  True if this instance owns the router's shard and has adopted it.
bool
    reapshards_ready (reapshards_t *self, const char *router_id);

//  The id of the owner of router_id's shard as last seen, or "" if none.
const char *
    reapshards_owner (reapshards_t *self, const char *router_id);

//  The create revision shard is owned and adopted under here, 0 if not.
int64_t
    reapshards_revision (reapshards_t *self, int shard);

//  True if shard is still this instance's and read under revision: a
//  LOADED news, or the adoption of one under way, is not stale.
bool
    reapshards_loaded (reapshards_t *self, int shard, int64_t revision);

//  The service adopted a LOADED shard read under revision, all its steps
//  (ep_adopt): true if it is still this instance's under that revision
//  (then it is ready: its writes and commands carry its fence), false if
//  the news is stale.
bool
    reapshards_adopt_shard (reapshards_t *self, int shard, int64_t revision);

//  Shards owned and adopted.
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
