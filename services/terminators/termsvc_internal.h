/*  termsvc_internal.h: the terminator service object's insides, shared by
    termsvc.c (the loop, both modes) and termsvc_shards.c (the etcd mode).
*/
#ifndef TERMSVC_INTERNAL_H_INCLUDED
#define TERMSVC_INTERNAL_H_INCLUDED

#include "termsvc.h"
#include "ep_degraded.h"
#include "ep_follower.h"
#include "ep_model_view.h"
#include "ep_publisher.h"
#include "ep_reqloop.h"
#include "ep_rpc_server.h"
#include "ep_subscriber.h"
#include "termshards.h"
#include "ep_adopt.h"

#define BEACON_MS       1000        //  the etcd mode's cluster.beacon period

//  A request being served: the core's result, and what parking needs.
typedef struct {
    terminators_result_t result;    //  what to answer
    uint64_t revision;          //  the model revision it was based on
    int64_t deadline_ms;        //  parked: when to give up waiting (monotonic)
    char owner [128];           //  the etcd mode: the shard's owner, when not this instance
} termsvc_request_t;

struct _termsvc_t {
    ep_service_t *service;      //  shared process scaffolding (borrowed)
    char *path;                 //  terminators.db
    ep_store_t *store;          //  terminators.db
    ep_model_view_t *view;      //  the model, as followed
    ep_follower_t *follower;    //  keeps view current
    terminators_t *core;        //  the state machines
    zsock_t *router;            //  API socket
    ep_rpc_server_t *rpc;       //  request ids, in-flight retries, roles
    ep_reqloop_t *loop;         //  batches, replies, request metrics
    ep_publisher_t *publisher;  //  terminator.*, cmd.*, service.degraded
    ep_degraded_t *degraded;    //  a full or failing disk: writes refused, /readyz 503
    char failure [768];         //  why the last batch failed, for its answers
    ep_subscriber_t *presence;  //  presence.* from the watchdogs
    zpoller_t *poller;          //  auth, API, follower, presence
    zlistx_t *parked;           //  ep_req_t waiting for the model (arrival order)
    int64_t park_timeout_ms;    //  how long a write waits for the model
    int64_t batch_now;          //  the wall clock of the open batch
    uint64_t snapshots;         //  follower snapshots already reconciled
    bool is_ready;              //  ready file written
    bool served;                //  a batch committed this turn
    int64_t next_checkpoint;    //  monotonic ms
    int64_t next_gauges;        //  monotonic ms
    int64_t next_expire;        //  monotonic ms
    //  Metrics (counters move by the difference from what was last seen)
    ep_series_t *states [TERMSM_STATE_COUNT];  //  edgeplane_terminators{state}
    ep_series_t *tombstones;    //  edgeplane_terminator_tombstones
    ep_series_t *spins;         //  edgeplane_terminator_spins_total
    ep_series_t *parked_gauge;  //  edgeplane_terminators_parked
    ep_series_t *park_timeouts; //  edgeplane_terminators_park_timeouts_total
    ep_series_t *revision;      //  edgeplane_terminators_model_revision
    ep_series_t *online;        //  edgeplane_terminators_routers_online
    ep_series_t *instances;     //  edgeplane_terminators_watchdog_instances
    ep_series_t *commands;      //  edgeplane_terminator_commands_total{result="sent"}
    ep_series_t *acks;          //  edgeplane_terminator_commands_total{result="acked"}
    ep_series_t *published;     //  edgeplane_published_total{stream="terminator"}
    ep_series_t *cmd_published; //  edgeplane_published_total{stream="cmd"}
    ep_series_t *gaps;          //  edgeplane_stream_gaps_total{stream="model"}
    ep_series_t *db_bytes;      //  edgeplane_terminators_db_bytes
    ep_series_t *replayed;      //  edgeplane_terminator_events_replayed_total
    uint64_t seen_spins, seen_commands, seen_acks, seen_gaps;   //  last values added
    //  The etcd mode (NULL shards: the embedded SQLite mode)
    termshards_t *shards;       //  shards owned, their terminators and outbox in etcd
    ep_shardset_t *set;         //  its shards, read and adopted (termshards_set)
    ep_adopt_t *adopt;          //  shard news, applied when no batch is open (ep_adopt)
    bool committing;            //  a batch's etcd transaction is in flight
    bool between_due;           //  a batch completed: the between-batch work comes first
    zlistx_t *reads;            //  s_read_t of get and list waiting for etcd
    char *advertise;            //  this instance's API endpoint, for the beacon
    int64_t next_beacon;        //  monotonic ms
    bool shards_failed;         //  the shards cannot go on (logged): stop
};

//  The etcd mode (termsvc_shards.c).

//  A write about a router whose shard is not this instance's is answered
//  UNAVAILABLE, retriable, naming the owner. True if so.
bool
    termsvc_not_mine (termsvc_t *self, ep_req_t *req, const Ep__TerminatorRequest *message);

//  Sends the open batch as one fenced transaction: EP_REQLOOP_LATER, or
//  -1 (undone) if it could not be sent.
int
    termsvc_commit_etcd (termsvc_t *self);

//  get and list see every shard: read from etcd, answered later
//  (ep_reqloop_read_done). 0 if so; -1 for another read (served here).
int
    termsvc_read_etcd (termsvc_t *self, ep_req_t *req);

//  Puts the fence in a command; false if its router's shard is not ours.
bool
    termsvc_fence_command (termsvc_t *self, Ep__Event *event);

//  Drops the shards that went and takes a step of the adoption of those
//  that came (no batch open; ep_adopt).
void
    termsvc_apply_news (termsvc_t *self);

//  True while a shard read waits for or is in its adoption: the loop
//  polls without waiting and the core's internal work waits.
bool
    termsvc_adopting (termsvc_t *self);

//  Joins the shards in etcd. 0 or -1 (logged).
int
    termsvc_open_shards (termsvc_t *self, const termsvc_config_t *config);

//  False while the work between batches (the model, presence, shard
//  news) has not run since the last batch completed: the next waits.
bool
    termsvc_shards_ready (void *arg);

//  Leaves them (the lease revoked).
void
    termsvc_close_shards (termsvc_t *self);

#endif
