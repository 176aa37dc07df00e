/*  shardroute.h: which instance of a sharded service owns a router's shard,
    as the instances' beacons (cluster.beacon) say.

    The terminators service in the etcd mode runs as several instances,
    each owning some shards (docs/shards.md); a request for router R must
    reach the owner of shard ep_shard_of (R, count). Each instance beacons
    about every interval its address and the shards it owns, each with its
    owner key's create revision. This module keeps the last beacon of each
    instance and answers "where does R's request go": the address of the
    live instance claiming R's shard, or NULL (no beacon claims it: the
    caller falls back to the configured endpoint, as a single-instance
    deployment has no beacons). An instance silent for 3.5 of its intervals
    is forgotten (three beacons lost, half an interval for jitter). During
    a handover two live beacons can claim a shard (the old owner's last
    beacon, the new owner's first): the newer owner key, the higher create
    revision, wins; etcd's revisions only grow.

    Pure: no sockets, no clocks; times are passed in (monotonic ms).
*/
#ifndef SHARDROUTE_H_INCLUDED
#define SHARDROUTE_H_INCLUDED

#include "ep_prelude.h"

typedef struct _shardroute_t shardroute_t;

//  A beacon, as its fields come in a ShardBeacon.
typedef struct {
    const char *service;        //  the sharded service ("terminators")
    const char *instance;       //  its instance id
    const char *address;        //  its API endpoint as we reach it
    uint32_t count;             //  the deployment's shard count
    const uint32_t *shards;     //  the shards it owns
    const int64_t *revisions;   //  each one's owner create revision (NULL: unknown, 0)
    size_t n;                   //  how many shards (and revisions)
    int64_t interval_ms;        //  how often it beacons (<= 0: every second)
} shardroute_beacon_t;

//  Routes for service's shards: beacons of other services are ignored.
shardroute_t *
    shardroute_new (const char *service);

void
    shardroute_destroy (shardroute_t **self_p);

//  Takes a beacon heard at now_ms; it replaces that instance's last one.
//  Returns 0, or -1 if it is not for our service or is malformed (no
//  instance or address, a count of 0 or above EP_SHARD_MAX_COUNT, a shard
//  out of range): then it is ignored.
int
    shardroute_beacon (shardroute_t *self, const shardroute_beacon_t *beacon, int64_t now_ms);

//  The address of the live instance owning router_id's shard, or NULL.
//  The string is the module's: valid until the next beacon or expiry.
const char *
    shardroute_owner (shardroute_t *self, const char *router_id, int64_t now_ms);

//  Forgets instances silent for 3.5 intervals. Returns how many went.
size_t
    shardroute_expire (shardroute_t *self, int64_t now_ms);

//  True if a live instance (as of the last expiry) beacons address: a
//  connection to an address no longer known can go.
bool
    shardroute_knows (shardroute_t *self, const char *address);

//  Instances known (not yet forgotten).
size_t
    shardroute_size (shardroute_t *self);

#endif
