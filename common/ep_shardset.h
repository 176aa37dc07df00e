/*  ep_shardset.h: a sharded service's store side on etcd, the part the
    terminators and the reaper share (docs/shards.md).

    Over ep_shards (ownership under leases, balancing, fencing): each shard
    acquired is read from etcd, all its keys under <prefix><service>/<shard,
    5 digits>/ (again after half a second if the read fails), and handed to
    the service (LOADED), which adopts it (ep_adopt) and says so
    (ep_shardset_adopt_shard); until then the shard is not ready. A shard
    released or fenced is DROPPED: the service forgets it. A write as owner
    is one transaction fenced on every shard it touches
    (ep_shardset_txn); refused by a fence, the shard is dropped.

    Also what both services say about their shards on the bus (the
    cluster.beacon, cluster.shard.*), the fence a command carries, and the
    etcd mode's options. One instance per process, driven from its loop
    (ep_shardset_fds).
*/
#ifndef EP_SHARDSET_H_INCLUDED
#define EP_SHARDSET_H_INCLUDED

#include "ep_prelude.h"
#include "ep_etcd.h"
#include "ep_etcd_opts.h"
#include "ep_metrics.h"
#include "ep_shards.h"
#include "ep_config.h"
#include "ep_publisher.h"
#include "ep_service.h"
#include "ep_adopt.h"

typedef struct _ep_shardset_t ep_shardset_t;

typedef enum {
    EP_SHARDSET_LOADED,         //  shard is this instance's and read: adopt its records
    EP_SHARDSET_DROPPED,        //  shard is no longer this instance's: forget it
    EP_SHARDSET_FAILED          //  cannot go on (why): exit
} ep_shardset_event_t;

//  What the service hears.
typedef struct {
    ep_shardset_event_t event;  //  what happened
    int shard;                  //  to which shard (-1 for FAILED)
    int64_t revision;           //  LOADED: the owner key's create revision
    const char *why;            //  DROPPED, FAILED: a sentence for the log
    const ep_etcd_kv_t *kvs;    //  LOADED: the shard's keys, key order
    size_t nkvs;                //  how many
} ep_shardset_news_t;

typedef void (ep_shardset_fn) (void *arg, const ep_shardset_news_t *news);

typedef struct {
    ep_etcd_config_t etcd;      //  the client's endpoints and TLS
    const char *prefix;         //  EDGEPLANE_ETCD_PREFIX ("/edgeplane/")
    const char *id;             //  this instance
    int count;                  //  shards (EDGEPLANE_SHARDS)
    int64_t ttl_ms;             //  the ownership lease's TTL
    ep_metrics_t *metrics;      //  the shard counters go here, or NULL
    ep_shardset_fn *fn;         //  the service's callback
    void *arg;                  //  its argument
    const char *service;        //  whose shards: in the keys, the logs, the events
    long (*due) (void *arg);    //  the service's own timer (ms, -1 none), or NULL
    void (*tick) (void *arg);   //  called after every dispatch, or NULL
} ep_shardset_config_t;

//  Leaves: the lease is revoked, so the others take the shards at once.
void
    ep_shardset_destroy (ep_shardset_t **self_p);

//  Joins the shards (asynchronous). NULL with err on a bad configuration.
ep_shardset_t *
    ep_shardset_new (const ep_shardset_config_t *config, char *err, size_t errlen);

//  The loop's part (ep_shards' and the reads' again after a failure, then
//  the service's tick), as the descriptors a service's loop waits on:
//      ep_service_fds_t fds = ep_shardset_fds (set);
//      ep_service_add_fds (service, &fds);
ep_service_fds_t
    ep_shardset_fds (ep_shardset_t *self);

//  <prefix><service>/<shard, 5 digits>/ into buf (returned).
char *
    ep_shardset_shard_prefix (ep_shardset_t *self, int shard, char *buf, size_t size);

//  Ownership and the etcd client, for the service's own requests.
ep_shards_t *
    ep_shardset_shards (ep_shardset_t *self);

//  True if shard is still this instance's and read under revision: a
//  LOADED news, or the adoption of one under way, is not stale.
bool
    ep_shardset_loaded (ep_shardset_t *self, int shard, int64_t revision);

//  The router's shard; true if this instance owns it and has adopted it;
//  the id of its owner as last seen, or "" if none.
int
    ep_shardset_shard_of (ep_shardset_t *self, const char *router_id);
bool
    ep_shardset_ready (ep_shardset_t *self, const char *router_id);
const char *
    ep_shardset_owner (ep_shardset_t *self, const char *router_id);

//  The service adopted a LOADED shard read under revision, all its steps
//  (ep_adopt): true if it is still this instance's under that revision
//  (then it is ready: its writes and commands carry its fence), false if
//  the news is stale.
bool
    ep_shardset_adopt_shard (ep_shardset_t *self, int shard, int64_t revision);

//  The create revision shard is owned and adopted under here, 0 if not.
int64_t
    ep_shardset_revision (ep_shardset_t *self, int shard);

//  A router's records stay in memory when a shard is lost if this is true:
//  its shard is ready, or is adopting (the shard being adopted, -1: none).
bool
    ep_shardset_keeps (ep_shardset_t *self, const char *router_id, int adopting);

//  The revision the service adopted shard under, 0, held or not; the
//  shards owned and adopted.
int64_t
    ep_shardset_adopted (ep_shardset_t *self, int shard);
int
    ep_shardset_owned (ep_shardset_t *self);

//  A service's first answer to news, as both take them (ep_adopt): FAILED
//  is logged and sets *failed; DROPPED goes to adopt. True on LOADED: the
//  caller hands the shard's records to adopt.
bool
    ep_shardset_news_loaded (const ep_shardset_news_t *news, ep_adopt_t *adopt, bool *failed);

//  A write whose outcome is unknown touched shard, held under revision: if
//  it still is, it is DROPPED (why) and read again, as at its acquisition.
void
    ep_shardset_reread (ep_shardset_t *self, int shard, int64_t revision, const char *why);

//  The outcome of a transaction.
typedef struct {
    const ep_etcd_reply_t *reply;   //  etcd's answer, NULL if none came
    const char *error;          //  then why
    bool fenced;                //  refused by a fence (judged: the shard dropped)
    const int *shards;          //  the shards it was fenced on
    const int64_t *revisions;   //  under these create revisions
    int nshards;                //  how many
} ep_shardset_outcome_t;

typedef void (ep_shardset_txn_fn) (void *arg, const ep_shardset_outcome_t *outcome);

//  Sends ops as one transaction fenced on shards [0..nshards); fn is called
//  once, later. -1 with err if it cannot be sent (a shard not held, or
//  nothing encodes); then fn is not called.
int
    ep_shardset_txn (ep_shardset_t *self, const int *shards, int nshards, const ep_etcd_op_t *ops,
                     size_t nops, ep_shardset_txn_fn *fn, void *arg, char *err, size_t errlen);

//  Publishes the cluster.beacon: this instance (id) listens at address and
//  owns the adopted shards, said again every interval_ms. Returns how many
//  (edgeplane_<service>_shards_owned says it too).
int
    ep_shardset_beacon (ep_shardset_t *self, ep_publisher_t *publisher, const char *id,
                        const char *address, int64_t interval_ms);

//  Publishes cluster.shard.acquired|released (topic) about shard.
void
    ep_shardset_event (ep_shardset_t *self, ep_publisher_t *publisher, const char *topic,
                       const char *id, int shard, int64_t revision, const char *why);

//  A command about a router carries its shard and the owner key's create
//  revision, so the watchdog drops it once it has seen a newer owner.
//  False if the shard is no longer this instance's.
bool
    ep_shardset_fence_command (ep_shardset_t *self, Ep__Event *event);

//  ---------------------------------------------------------------------
//  The etcd mode's options

//  What they set (static: an option table points into it).
typedef struct {
    char *store;                //  "sqlite" or "etcd"
    int64_t shards;             //  EDGEPLANE_SHARDS
    int64_t lease_ttl;          //  ms
    char *advertise;            //  or NULL
    ep_etcd_settings_t etcd;    //  EDGEPLANE_ETCD_*
    char envs [3][64];          //  the service's option names
} ep_shardset_opts_t;

#define EP_SHARDSET_OPTS (4 + EP_ETCD_OPTS)

//  Fills opts [EP_SHARDSET_OPTS] to parse into values: --store (env
//  <env>STORE, helped by store_help), --shards, --lease-ttl (<env>LEASE_TTL),
//  --advertise (<env>ADVERTISE) and the shared EDGEPLANE_ETCD_*.
void
    ep_shardset_opts (ep_shardset_opts_t *values, const char *env, const char *store_help,
                      ep_opt_t *opts);

//  The set's configuration from the options: etcd's client as the shards
//  use it (requests time out after 3 s, a watch idle for 10 s is checked),
//  the prefix, the count, the lease, for instance id of service (its fn
//  and arg are the caller's to set). -1 with err if the options are wrong.
int
    ep_shardset_configure (ep_shardset_config_t *config, const ep_shardset_opts_t *opts,
                           const char *service, const char *id, ep_metrics_t *metrics,
                           char *err, size_t errlen);

//  Joins the service's loop (ep_shardset_fds), and says so in the log with
//  the endpoint the beacon gives (advertise).
void
    ep_shardset_start (ep_shardset_t *self, ep_service_t *service, const char *advertise);

//  True if values say the store is etcd.
bool
    ep_shardset_opts_etcd (const ep_shardset_opts_t *values);

#endif
