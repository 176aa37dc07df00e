/*  termsvc.h: the terminator service object, everything main.c builds.

    One loop: follow the model (ep_follower), follow router presence
    (presence.* on the bus), serve requests through ep_reqloop. Reads (get,
    list, ack) are answered from committed state. A write waits ("parked",
    no reply yet) until this service's copy of the model has reached the
    revision the request was based on, so nothing is ever decided against
    an older model than the router saw; past a deadline it gets
    UNAVAILABLE and is retried. Writes that may go are served in batches:
    one transaction with the internal work (reconciliation, presence,
    timers) and a savepoint per request, one commit (one fsync), then the
    replies, then the events and commands (terminators_next_output). A
    failed commit answers its writes UNAVAILABLE and serving goes on.
    docs/terminators.md is the contract.
*/
#ifndef TERMSVC_H_INCLUDED
#define TERMSVC_H_INCLUDED

#include "ep_service.h"
#include "ep_shardset.h"
#include "terminators.h"

typedef struct _termsvc_t termsvc_t;

typedef struct {
    const char *listen;         //  where the API binds
    const char *db_path;        //  terminators.db, or NULL for <data dir>/terminators.db
    int64_t max_batch;          //  writes per transaction at most
    int64_t park_timeout_ms;    //  how long a write waits for the model
    int64_t dedupe_window;      //  event ids the presence subscriber remembers
    terminators_config_t core;  //  the core's timings
    ep_shardset_opts_t sharded; //  the store; etcd: shards owned under leases (docs/terminators.md)
} termsvc_config_t;

//  The service over the process scaffolding (borrowed): opens the store,
//  loads the terminators, reaches the bus and the model, binds the API.
//  Returns NULL after logging why.
termsvc_t *
    termsvc_new (ep_service_t *service, const termsvc_config_t *config);

//  Answers the requests still waiting UNAVAILABLE (retry elsewhere, or
//  after the restart), then closes everything.
void
    termsvc_destroy (termsvc_t **self_p);

//  One turn of the loop: waits for input or the next due time, then
//  handles what came. Returns 0, or -1 to stop.
int
    termsvc_turn (termsvc_t *self);

#endif
