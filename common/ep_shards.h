/*  ep_shards.h: one instance's membership in a service's shards, on etcd.

    The etcd side of ep_shard (docs/shards.md): the shard count key (made
    by the first instance; an instance configured with another count is
    refused, naming both), a lease (its TTL read back from etcd, kept alive
    every third of it), a member key under it, one watch on the service's
    prefix (members and owner keys) feeding an ep_shard_t view, and the
    view's actions carried out as transactions:

        acquire   if create_revision (owner key) == 0: put it under my lease
        release,  if create_revision (owner key) == the one held:
        evict       delete it

    The service hears of each shard it gains or loses through one callback
    (acquired, released, fenced; failed when it cannot go on). It stops
    acting as owner of every shard when the last keepalive that succeeded
    was sent TTL minus a margin ago, and starts again under a new lease.

    A write the service makes as owner goes in a transaction of its own
    with the fence (ep_shards_fence): a compare on the owner key's create
    revision, and a read of the key as the first op of the failure branch;
    ep_shards_fence_check judges the answer, and a refused write drops the
    shard (logged, edgeplane_shard_fenced_total{service}).

    Driven from the caller's loop, like ep_etcd, whose client it owns:

        n = ep_shards_pollitems (shards, items + k, EP_ETCD_MAX_FDS);
        zmq_poll (items, k + n, min (timeout, ep_shards_timeout (shards)));
        ep_shards_dispatch (shards, items + k, n);

    Keys (prefix "/edgeplane/shards/" by default):
        <prefix>count                           the shard count, decimal
        <prefix><service>/members/<lease hex>   the member's id, under its lease
        <prefix><service>/owners/<shard>        the owner's id, under its lease
*/
#ifndef EP_SHARDS_H_INCLUDED
#define EP_SHARDS_H_INCLUDED

#include "ep_prelude.h"
#include "ep_etcd.h"
#include "ep_metrics.h"
#include "ep_shard.h"

typedef struct _ep_shards_t ep_shards_t;

typedef enum {
    EP_SHARDS_ACQUIRED,                 //  shard is this instance's, under create_revision
    EP_SHARDS_RELEASED,                 //  no longer (given up, lost with the lease, taken)
    EP_SHARDS_FENCED,                   //  a write was refused: no longer this instance's
    EP_SHARDS_FAILED                    //  cannot go on (shard -1): why says; exit
} ep_shards_event_t;

//  One change for the service; why is a sentence for a log (NULL on
//  ACQUIRED). The callback may call ep_shards_fence and start requests.
typedef void (ep_shards_fn) (void *arg, ep_shards_event_t event, int shard,
                             int64_t create_revision, const char *why);

typedef struct {
    ep_etcd_config_t etcd;              //  the client's endpoints, TLS, timeouts
    const char *prefix;                 //  key prefix; NULL: "/edgeplane/shards/"
    const char *service;                //  whose shards ("terminators")
    const char *id;                     //  this instance, in the keys' values and logs
    int count;                          //  shards (EDGEPLANE_SHARDS)
    int64_t ttl_ms;                     //  lease TTL asked for (whole seconds, up)
    int64_t margin_ms;                  //  stop acting at TTL minus this; 0: TTL / 4
    ep_metrics_t *metrics;              //  registers the counters here, or NULL
    ep_shards_fn *fn;                   //  the service's callback
    void *arg;                          //  its argument
} ep_shards_config_t;

//  Starts (count key, lease, member key, watch: all asynchronous). NULL
//  with err on a bad configuration.
ep_shards_t *
    ep_shards_new (const ep_shards_config_t *config, char *err, size_t errlen);

//  Stops: the lease is revoked (its answer awaited up to half a second),
//  so the others take the shards over at once rather than after the TTL.
//  The callback is not called any more.
void
    ep_shards_destroy (ep_shards_t **self_p);

//  The loop's part, as ep_etcd's.
int
    ep_shards_pollitems (ep_shards_t *self, zmq_pollitem_t *items, int max);
long
    ep_shards_timeout (ep_shards_t *self);
void
    ep_shards_dispatch (ep_shards_t *self, zmq_pollitem_t *items, int nitems);

//  The etcd client, for the service's own (fenced) requests.
ep_etcd_t *
    ep_shards_etcd (ep_shards_t *self);

//  For a write as owner of shard: fills compare (the owner key's create
//  revision, equal) and read (a range of the owner key, to be the first
//  op of the failure branch), and *revision with the create revision to
//  hand to ep_shards_fence_check. Both point into self: valid until the
//  next call. -1 if this instance does not hold shard.
int
    ep_shards_fence (ep_shards_t *self, int shard, ep_etcd_compare_t *compare,
                     ep_etcd_op_t *read, int64_t *revision);

//  Judges the answer to such a write (NULL reply: none came, nothing is
//  judged). A refused write is counted and logged, and drops the shard if
//  it is still held under revision (callback FENCED).
ep_shard_fence_t
    ep_shards_fence_check (ep_shards_t *self, int shard, int64_t revision,
                           const ep_etcd_reply_t *reply);

//  For a write as owner of several shards (shards [0..n)): compares [i],
//  reads [i] and revisions [i] as ep_shards_fence fills them for shards
//  [i], in that order (the write's failure branch reads them in the same
//  order). -1 if one is not held: then the write must not be sent.
int
    ep_shards_fence_all (ep_shards_t *self, const int *shards, int n, ep_etcd_compare_t *compares,
                         ep_etcd_op_t *reads, int64_t *revisions);

//  Judges the answer to such a write: each read of its failure branch
//  against its shard and the revision it was fenced under, as
//  ep_shards_fence_check does.
void
    ep_shards_fence_check_all (ep_shards_t *self, const int *shards, const int64_t *revisions,
                               int n, const ep_etcd_reply_t *reply);

//  The create revision shard is held under, 0 if not held.
int64_t
    ep_shards_held (ep_shards_t *self, int shard);

//  The id of shard's owner as the watch last showed it (a member's key
//  value), or NULL if it has none or is not known yet. Valid until the
//  next dispatch.
const char *
    ep_shards_owner_id (ep_shards_t *self, int shard);

//  The API endpoint an instance names in its beacon, as the others reach
//  it: configured (--advertise) if given, else bound (the socket's last
//  endpoint) with the host's name for a wildcard address. Caller frees.
char *
    ep_shards_advertise (const char *configured, const char *bound);

//  Shards held; members in the view; the lease (0: none now).
int
    ep_shards_owned (ep_shards_t *self);
int
    ep_shards_members (ep_shards_t *self);
int64_t
    ep_shards_lease (ep_shards_t *self);

//  Shards taken over from an earlier owner, and writes refused by the fence.
uint64_t
    ep_shards_handovers (ep_shards_t *self);
uint64_t
    ep_shards_fenced (ep_shards_t *self);

//  Views read again because the audit (a read every TTL) disagreed with
//  them twice in a row: the watch had missed an event.
uint64_t
    ep_shards_resyncs (ep_shards_t *self);

//  The view (NULL without a lease), for tests: they put into it what a
//  missed event leaves behind.
ep_shard_t *
    ep_shards_view (ep_shards_t *self);

#endif
