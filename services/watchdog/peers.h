/*  peers.h: this instance among its peer controllers.

    With a ctrl identity of its own, a watchdog instance registers itself
    as a controller in the model (its entry: ctrl id and the channel
    address peers dial; removed when it stops, if it created it) and dials
    every other instance it hears beaconing: dialer.c decides whom and when
    (after its entry is in the model the peer follows, with backoff after a
    loss), link.c holds each link, on an ep_tls_server of their own that
    the watchdog's loop polls (peers_fd) and runs (peers_process).
*/
#ifndef PEERS_H_INCLUDED
#define PEERS_H_INCLUDED

#include "ep_service.h"
#include "ep_tls_server.h"
#include "events.pb-c.h"

typedef struct _peers_t peers_t;

typedef struct {
    const char *ctrl_id;        //  ours (borrowed)
    const char *advertised;     //  our channel as peers dial it (borrowed)
    SSL_CTX *client_ctx;        //  our ctrl certificate, to dial (borrowed)
    int64_t heartbeat_ms;       //  links ping this often once joined
    int64_t silence_ms;         //  and close when unheard this long
    int64_t lease_ttl_ms;       //  our entry's lease (0: 10 s)
} peers_config_t;

//  With the model in etcd, the entry lives under a lease (a model lease
//  request) that this instance keeps alive every third of its TTL without
//  blocking, from peers_process; a killed instance's entry is deleted by
//  the model once the lease ends. If the model says the lease ended (we
//  were stalled), we grant another and register again. The embedded model
//  has no leases: the entry is kept as before.
//
//  Registers our controller entry (the model's revision with it tells the
//  dialer when peers can know us) and gets ready to dial. NULL if the
//  registration failed (logged).
peers_t *
    peers_new (ep_service_t *service, const peers_config_t *config);

//  Hangs up every link and removes the controller entry we created.
void
    peers_destroy (peers_t **self_p);

//  A presence beacon from an instance (ours too: the dialer skips it).
void
    peers_beacon (peers_t *self, const Ep__PresenceEvent *presence);

//  The links' epoll fd, and when peers_process is due at the latest
//  (monotonic ms; now if a link closed since, for the dialer to hear; the
//  dialer's own timers count unless draining).
int
    peers_fd (peers_t *self);

//  The socket of the lease's requests to the model (a libzmq handle for
//  zmq_poll; NULL: none), to poll with peers_fd.
void *
    peers_lease_socket (peers_t *self);
int64_t
    peers_deadline (peers_t *self, bool draining);

//  Runs the links, tells the dialer their joins and losses, and dials or
//  hangs up as it says (not while draining).
void
    peers_process (peers_t *self, bool draining);

//  Hangs up every link (SIGTERM).
void
    peers_hang_up (peers_t *self);

//  Sets the link and peer gauges.
void
    peers_gauges (peers_t *self);

#endif
