/*  watchdog.h: the watchdog service object and its loop.

    One thread, one loop: zmq_poll over the ZeroMQ sockets, the channel's
    epoll fd (every router, peer and client connection) and the peer links'
    epoll fd. The channel (channel.c) runs the connections' state machines
    (conn.c); this module is what the watchdog does with what they report:
    verdicts from the model (a follower's copy), presence (join, leave,
    beacons; the newest join of a router wins), the model slice pushed to
    each router, commands (cmd.<router-id>.) delivered, and the wiring of
    the modules that do the rest: events.c (what is published), relay.c
    (requests to the terminators and reaper), api.c (the connections API),
    identity.c (our ctrl certificate, the CRL), peers.c (our controller
    entry, links to peer controllers).
*/
#ifndef WATCHDOG_H_INCLUDED
#define WATCHDOG_H_INCLUDED

#include "ep_service.h"

typedef struct _watchdog_t watchdog_t;

//  The watchdog's options (see main.c), borrowed.
typedef struct {
    const char *channel_listen;     //  the TLS control channel's host:port
    const char *channel_advertise;  //  where peers reach it, NULL: derived
    const char *listen;             //  the API endpoint
    const char *advertise;          //  the API as presence says, NULL: derived
    const char *ctrl_id;            //  our ctrl id, NULL: derived
    const char *ctrl_cert;          //  a ctrl bundle, or NULL
    const char *ctrl_key;
    int64_t ctrl_lifetime_ms;       //  of a ctrl certificate issued here
    int stray_action;               //  conn_stray_action_t
    ep_log_level_t stray_log_level; //  of the log line a stray gets (actions log, disconnect)
    int64_t grace_ms;               //  stray grace
    int64_t heartbeat_ms;
    int64_t heartbeat_timeout_ms;
    int64_t ctrl_lease_ttl_ms;  //  our controller entry's lease (the model in etcd)
    bool adaptive;                  //  learn each peer's heartbeat timeout (ep_cadence)
    int64_t liveness_floor_ms;      //  adaptive bounds
    int64_t liveness_ceiling_ms;
    int64_t frame_timeout_ms;
    int64_t drain_grace_ms;
    int64_t joined_cap;             //  frame cap once joined
    int64_t out_cap;                //  bytes queued to one peer
    int64_t budget;                 //  bytes of partial frames held
    int64_t max_handshakes;
    int64_t max_per_source;
    int64_t slice_stale_ms;         //  an acknowledged slice superseded this long is stale
    int64_t outbox_max;             //  events decided and not back through the bus, at most
    int64_t outbox_bytes;           //  their bytes, at most
    int64_t dedupe_window;          //  event ids the bus subscriber remembers
} watchdog_config_t;

//  The watchdog of service (borrowed), not yet started.
watchdog_t *
    watchdog_new (ep_service_t *service, const watchdog_config_t *config);

//  Stops: connections closed, links hung up, our controller entry removed.
void
    watchdog_destroy (watchdog_t **self_p);

//  Gets our identity, reaches the bus, the model and the services,
//  follows the model, listens, registers, says ready. Returns 0 (also when
//  interrupted before listening: then watchdog_run returns at once), or -1.
int
    watchdog_start (watchdog_t *self);

//  Runs until SIGTERM, then drains; returns 0.
int
    watchdog_run (watchdog_t *self);

#endif
