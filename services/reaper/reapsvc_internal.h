/*  reapsvc_internal.h: the reaper service object's insides, shared by
    reapsvc.c (the loop, both modes) and reapsvc_shards.c (the etcd mode).
*/
#ifndef REAPSVC_INTERNAL_H_INCLUDED
#define REAPSVC_INTERNAL_H_INCLUDED

#include "reapsvc.h"
#include "ep_degraded.h"
#include "ep_follower.h"
#include "ep_model_view.h"
#include "ep_publisher.h"
#include "ep_reqloop.h"
#include "ep_rpc_server.h"
#include "ep_subscriber.h"
#include "reapshards.h"
#include "ep_adopt.h"

#define CHECKPOINT_MS   10000           //  WAL checkpoint period
#define PUBLISH_PAUSE   10              //  ms between publishing bursts while events wait
//  After a failed batch its work is tried again this much later at the
//  soonest: a failure that is not the disk's (no probe paces it) must not
//  turn the loop into a spin.
#define RETRY_MS        500
#define BEACON_MS       1000            //  the etcd mode's cluster.beacon period

struct _reapsvc_t {
    ep_service_t *service;      //  shared process scaffolding (borrowed)
    char *path;                 //  sessions.db
    ep_store_t *store;          //  its store
    reaper_t *reaper;           //  the state machine
    zsock_t *router;            //  API socket
    ep_rpc_server_t *rpc;       //  request ids over router
    ep_reqloop_t *loop;         //  serves the requests
    ep_publisher_t *publisher;  //  session.*, cmd.<router>., service.degraded
    ep_degraded_t *degraded;    //  a full or failing disk: writes refused, /readyz 503
    char failure [768];         //  why the last batch failed, for its answers
    ep_subscriber_t *events;    //  presence.* (and our own heartbeats, to prove the path)
    ep_model_view_t *view;      //  the model, as followed
    ep_follower_t *follower;    //  keeps view current
    zpoller_t *poller;          //  what the loop waits on
    bool model_ready;           //  the first snapshot is in
    bool bus_live;              //  our subscription has been proven live
    int64_t now;                //  the batch's time (its writes and its tick)
    int64_t due;                //  when the reaper next has work
    int64_t next_checkpoint;    //  WAL checkpoint due
    int64_t event_rate;         //  events published per second at most
    double tokens;              //  events that may be published now
    int64_t tokens_at;          //  when tokens were last topped up
    ep_histogram_t *commit_seconds; //  commit latency
    ep_series_t *published_session; //  edgeplane_published_total{stream="session"}
    ep_series_t *published_cmd; //  edgeplane_published_total{stream="cmd"}
    //  The etcd mode (NULL shards: the embedded SQLite mode)
    reapshards_t *shards;       //  shards owned; their sessions, jobs and outbox in etcd
    ep_shardset_t *set;         //  its shards, read and adopted (reapshards_set)
    reapbatch_t *batch;         //  the open batch, as etcd operations
    ep_adopt_t *adopt;          //  shard news, applied when no batch is open (ep_adopt)
    bool committing;            //  a batch's etcd transaction is in flight
    int64_t commit_started;     //  when it was sent (monotonic us)
    bool between_due;           //  a batch completed: the between-batch work comes first
    bool shards_failed;         //  the shards cannot go on (logged): stop
    bool adopted;               //  a shard was adopted this turn: check its routers in the model
    zhashx_t *published;        //  event id published -> "<owner>:<cache seq>" (for its echo)
    zlistx_t *echoes;           //  echoes ("<owner>:<seq>") not told to the core yet
    size_t echo_budget;         //  echoes told to the core per batch at most
    size_t echoed;              //  echoes told since the last batch
    char *advertise;            //  this instance's API endpoint, for the beacon
    char *prefix;               //  EDGEPLANE_ETCD_PREFIX
    int64_t next_beacon;        //  monotonic ms
};

//  A batch did not commit (memory is back as the store has it): its
//  answers carry why; a full or failing disk degrades the service.
void
    reapsvc_failed (reapsvc_t *self);

//  The etcd mode (reapsvc_shards.c).

//  A write about a router whose shard is not this instance's (or not read
//  yet) is answered UNAVAILABLE, retriable, naming the owner: through the
//  loop if req is refused at admission, into result otherwise. True if so.
bool
    reapsvc_not_mine (reapsvc_t *self, ep_req_t *req, reaper_result_t *result);

//  Sends the open batch as one fenced transaction: EP_REQLOOP_LATER, or
//  0 / -1 as reaper_commit when there is nothing to send or it failed.
int
    reapsvc_commit_etcd (reapsvc_t *self);

//  Puts the fence in a command; false if its router's shard is not ours.
bool
    reapsvc_fence_command (reapsvc_t *self, Ep__Event *event);

//  The id a session event of seq goes out under: its etcd entry's, else
//  the embedded form "<owner>:<seq>". Remembered for its echo.
void
    reapsvc_event_id (reapsvc_t *self, int64_t seq, char *id, size_t size);

//  A session event came back through the bus: told to the core (a bounded
//  number per batch: each echo deletes an etcd key in the next one).
void
    reapsvc_echo (reapsvc_t *self, const char *event_id);

//  Tells the core the echoes waiting, up to the batch's budget.
void
    reapsvc_echoes (reapsvc_t *self);

//  Forgets the shards that went and takes a step of the adoption of those
//  that came (no batch open; ep_adopt).
void
    reapsvc_apply_news (reapsvc_t *self);

//  True while a shard read waits for or is in its adoption: the loop
//  polls without waiting.
bool
    reapsvc_adopting (reapsvc_t *self);

//  Joins the shards in etcd. 0 or -1 (logged).
int
    reapsvc_open_shards (reapsvc_t *self, const reapsvc_config_t *config);

//  False while the work between batches has not run since the last batch
//  completed: the next waits.
bool
    reapsvc_shards_ready (void *arg);

//  Leaves them (the lease revoked).
void
    reapsvc_close_shards (reapsvc_t *self);

#endif
