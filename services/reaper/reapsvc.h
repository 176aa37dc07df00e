/*  reapsvc.h: the reaper service object, everything main.c builds.

    One loop: apply what the model follower and the bus (presence) bring,
    serve requests through ep_reqloop (a batch of writes handled in order,
    then reaper_tick for what time makes due, one commit), answer the
    writes, publish what the commit made true (reaper_next_output:
    commands first, then events at a bounded rate: the bus and its
    subscribers drop what overflows their queues, and a router deletion can
    make 200,000 events), and answer the reads from committed state. A
    reply or an event never precedes its commit, and nothing is published
    before our own stream heartbeat has come back through the bus (the PUB
    socket would drop it). A failed commit is answered UNAVAILABLE with
    the store's reason and undone in memory (reaper_commit); a full or
    failing disk degrades the service (ep_degraded: /readyz, the gauge,
    service.degraded) until a probe finds the disk takes writes again.
    In the etcd mode (config.sharded says etcd) the store is etcd, on shards
    (reapshards.h): sessions.db becomes a cache of the shards this
    instance owns, emptied at start; a batch is one fenced etcd
    transaction (reapbatch.h), in flight while the loop serves nothing
    else; shards taken over are read into the cache and adopted, shards
    lost forgotten, both between batches; writes for routers of shards
    owned elsewhere are answered UNAVAILABLE, retriable, naming the owner.
    docs/reaper.md is the contract ("On shards").
*/
#ifndef REAPSVC_H_INCLUDED
#define REAPSVC_H_INCLUDED

#include "ep_service.h"
#include "reaper.h"
#include "ep_etcd_opts.h"
#include "ep_shardset.h"

typedef struct _reapsvc_t reapsvc_t;

typedef struct {
    const char *listen;         //  where the API binds
    const char *db_path;        //  sessions.db, or NULL for <data dir>/sessions.db
    int64_t max_batch;          //  requests per transaction at most
    int64_t event_rate;         //  events published per second at most
    int64_t dedupe_window;      //  event ids the bus subscriber remembers
    reaper_config_t core;       //  the state machine's thresholds
    ep_shardset_opts_t sharded; //  the store (etcd: on shards, else sessions.db) and the etcd mode
} reapsvc_config_t;

//  The store's and the etcd mode's options (--store, --shards, --lease-ttl,
//  --advertise and the shared EDGEPLANE_ETCD_*) are ep_shardset_opts, named
//  EDGEPLANE_REAPER_*.
#define REAPSVC_SHARD_ENV   "EDGEPLANE_REAPER_"
#define REAPSVC_STORE_HELP  "sqlite (sessions.db, one instance) or etcd (several instances on shards)."

//  The service over the process scaffolding (borrowed): opens the store,
//  loads the reaper, reaches the bus and the model, binds the API.
//  Returns NULL after logging why.
reapsvc_t *
    reapsvc_new (ep_service_t *service, const reapsvc_config_t *config);

void
    reapsvc_destroy (reapsvc_t **self_p);

//  One turn of the loop: waits for input or the next due time, then
//  handles what came. Returns 0, or -1 to stop (a failed commit, or the
//  service could not say it is ready).
int
    reapsvc_turn (reapsvc_t *self);

#endif
