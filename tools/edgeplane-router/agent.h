/*  agent.h: one router's side of the control channel.

    The router agent (edgeplane-router) runs one of these per simulated
    router, all in one loop. An agent joins its controller with its
    certificate bundle, applies its model slice and deltas, creates and
    deletes one terminator per hosted service with ids it keeps on disk,
    opens and closes sessions (ids it chooses) and reports them with
    heartbeat batches and byte counters, answers probes and CloseSessions
    (acknowledging a configurable share), reports edge-to-router
    connections in batches, and reconnects with exponential backoff and
    jitter (edgeplane-router: 200 ms doubling to 30 s, each delay from
    [d/2, d]), resolving the controller address at every connect. A
    terminator create or delete, or a session open or close, answered
    retriable (UNAVAILABLE: the terminators or reaper instance asked does
    not own the router's shard, is taking it over, or the watchdog lost
    it) is asked again, same request id, after a backoff from the
    reconnect base doubling up to the request timeout, until it is
    answered OK or refused for good (not retriable), or the connection
    goes; unconfirmed creates and opens are resent at the request timeout.
*/
#ifndef AGENT_H_INCLUDED
#define AGENT_H_INCLUDED

#include "ep_prelude.h"
#include <openssl/ssl.h>

typedef struct _agent_t agent_t;

typedef struct {
    const char *id;             //  router id (its certificate's)
    SSL_CTX *ctx;               //  TLS client context with its bundle (borrowed)
    const char *controller;     //  host:port, resolved at every connect
    const char *state_dir;      //  where terminator ids are kept (NULL: memory only)
    int sessions;               //  sessions to hold open
    double churn_per_s;         //  sessions closed and replaced per second
    double ack_share;           //  share of CloseSessions acknowledged (0..1)
    int64_t heartbeat_ms;       //  session heartbeat batch period
    int64_t backoff_base_ms;    //  first reconnect delay
    int64_t backoff_max_ms;     //  largest reconnect delay
    int64_t request_timeout_ms; //  resend a request unanswered this long
    uint32_t protocol_version;  //  Hello's (0: the latest, 2; 1: no resumed slices)
    int max_services;           //  refuse (NACK) a slice hosting more (0: no limit)
    int64_t link_delay_ms;      //  simulated link for heartbeats (chan_client_set_link)
    int64_t link_jitter_ms;
    double link_drop;
} agent_config_t;

typedef struct {
    bool joined;                //  currently joined
    uint64_t joins;             //  times joined
    uint64_t refusals;          //  Hellos refused
    size_t hosted;              //  services in its slice
    size_t terminators;         //  terminators the service confirmed
    size_t sessions;            //  sessions open (confirmed)
    uint64_t closes_acked;      //  sessions closed on command and acknowledged
    uint64_t closes_ignored;    //  sessions it was told to close and ignored
    uint64_t probes;            //  probes answered
    uint64_t commands;          //  commands received
    uint64_t slice_revision;    //  model revision of its slice
    uint64_t slices_full;       //  full slices received
    uint64_t slices_diff;       //  resumed differences and pushes received
    uint64_t slices_rejected;   //  slices refused (SliceNack)
    uint64_t retries;           //  requests asked again after a retriable refusal
    size_t services;            //  service entities (settings) known
    char last_error [320];      //  why the last connect or join failed
} agent_stats_t;

agent_t *
    agent_new (const agent_config_t *config);

void
    agent_destroy (agent_t **self_p);

//  The socket to poll for input, or -1 while disconnected.
int
    agent_fd (agent_t *self);

//  When agent_tick is next due (monotonic ms).
int64_t
    agent_deadline (agent_t *self);

//  The socket is readable: take every frame waiting.
void
    agent_handle (agent_t *self);

//  Timers: connect when due (blocks up to a couple of seconds), heartbeats,
//  churn, resends.
void
    agent_tick (agent_t *self);

//  Reports edge-to-router connections (sent with the next heartbeat).
void
    agent_report_edge (agent_t *self, const char *identity_id, const char *src_addr,
                          bool connected);

const agent_stats_t *
    agent_stats (agent_t *self);

const char *
    agent_id (agent_t *self);

//  True if the agent acknowledges CloseSessions for session id (the share
//  is decided by a hash of the id, so a test can predict the split).
bool
    agent_acks (const agent_config_t *config, const char *session_id);

#endif
