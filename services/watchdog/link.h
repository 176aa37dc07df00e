/*  link.h: one outbound control-channel connection to a peer controller
    (ctrl-to-ctrl), without blocking the watchdog's loop.

        CONNECTING -> HANDSHAKE -> HELLO -> JOINED -> CLOSED

    A non-blocking TCP connect, the TLS client handshake with this
    instance's own ctrl certificate (the peer's must chain to the CA, carry
    role ctrl and the id its beacon announced), Hello {role ctrl, our id},
    then HelloResult. Once joined, both ends ping: the link sends a Ping
    every heartbeat_ms, answers the peer's Pings, and closes when nothing
    was heard for silence_ms. Everything before JOINED must be done within
    join_timeout_ms.

    The sockets, TLS and timers are common's ep_tls_server's (one server
    for every link, which the caller runs in its loop); this module is the
    link's logic on top of one of its connections.
*/
#ifndef LINK_H_INCLUDED
#define LINK_H_INCLUDED

#include "ep_prelude.h"
#include "ep_tls_server.h"

typedef struct _link_t link_t;

typedef enum {
    LINK_CONNECTING = 0,
    LINK_HANDSHAKE,
    LINK_HELLO,
    LINK_JOINED,
    LINK_CLOSED
} link_state_t;

typedef struct {
    const char *own_id;         //  our ctrl id (Hello)
    int64_t join_timeout_ms;    //  connect + TLS + Hello within this
    int64_t heartbeat_ms;       //  Ping this often once joined
    int64_t silence_ms;         //  close when unheard this long once joined
} link_config_t;

//  Starts connecting to address ("host:port", an IPv4 or IPv6 literal or a
//  name, resolved here) on server with ctx (a client context, borrowed),
//  expecting the peer's certificate to say edgeplane://ctrl/<expect_id>.
//  Never NULL: a failure to even start shows as a link already CLOSED.
link_t *
    link_new (ep_tls_server_t *server, const char *address, SSL_CTX *ctx, const char *expect_id,
              const link_config_t *config, int64_t now_ms);

void
    link_destroy (link_t **self_p);

link_state_t
    link_state (link_t *self);

//  "connecting", "handshake", "hello", "joined", "closed".
const char *
    link_state_name (link_state_t state);

//  Closes the link (we hang up); link_reason then says reason.
void
    link_close (link_t *self, const char *reason);

//  Once closed: why ("refused", "timeout", "identity-mismatch", the
//  HelloResult's refusal reason, "goodbye", "peer-closed",
//  "heartbeat-timeout", ...), and whether the peer said Goodbye.
const char *
    link_reason (link_t *self);
bool
    link_goodbye (link_t *self);

//  The instance that holds our connection there (HelloResult.instance_id),
//  "" until joined.
const char *
    link_peer_instance (link_t *self);

//  When it joined (ms, 0 if never), and the last round trip (ms, -1 before
//  the first Pong).
int64_t
    link_joined_at (link_t *self);
double
    link_rtt_ms (link_t *self);

#endif
