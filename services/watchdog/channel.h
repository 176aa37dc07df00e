/*  channel.h: the watchdog's TLS listener.

    The bridge between common's TLS server (ep_tls_server: one epoll set
    and one timer heap for every control-channel connection, the sockets,
    TLS sessions, frame readers and bounded output queues) and the
    connection state machine (conn.h), one conn_t per connection: it feeds
    each conn_t what happened, carries out the actions it asks for, and
    tells the watchdog (handler callbacks) about joins, leaves, strays,
    refusals and frames to relay.

    The watchdog's ZeroMQ loop waits on the server's epoll fd among its
    sockets and runs the server when it is readable or its deadline has
    come (channel_server).
*/
#ifndef CHANNEL_H_INCLUDED
#define CHANNEL_H_INCLUDED

#include "ep_prelude.h"
#include "conn.h"
#include "ep_tls_server.h"

typedef struct _channel_t channel_t;
//  A connection of the channel: its conn_t is channel_conn_state ().
typedef ep_tls_conn_t channel_conn_t;

typedef struct {
    conn_config_t conn;         //  grace, stray action, heartbeats, versions
    size_t joined_cap;          //  frame cap once joined (16 KiB before)
    size_t out_cap;             //  bytes queued to one peer before it is closed
    size_t budget;              //  bytes in flight (partial frames) across all peers
    int64_t frame_timeout_ms;   //  a frame must complete within this
    int max_handshakes;         //  connections not yet through TLS, at most
    int max_per_source;         //  connections not yet joined per source address
} channel_config_t;

//  What the channel tells the watchdog. All may be NULL but verdict.
typedef struct {
    //  The model's verdict on a Hello from (role, id).
    conn_peer_t (*verdict) (void *arg, const char *role, const char *id);
    //  A peer joined / left (reason, ms it was joined).
    void (*joined) (void *arg, channel_conn_t *conn);
    void (*left) (void *arg, channel_conn_t *conn, const char *reason, int64_t joined_ms);
    //  A stray (step), a refusal (reason), a non-member ctrl peer.
    void (*stray) (void *arg, channel_conn_t *conn, const char *step);
    void (*refused) (void *arg, channel_conn_t *conn, const char *reason);
    void (*not_member) (void *arg, channel_conn_t *conn);
    //  A connection refused before it had a state machine (caps, fd limit).
    void (*rejected) (void *arg, const char *remote, const char *reason);
    //  A connection ended: outcome (joined, stray, refused, error), seconds open.
    void (*ended) (void *arg, channel_conn_t *conn, const char *outcome, double seconds);
    //  A frame for the watchdog to handle (relay); the handler owns it.
    void (*frame) (void *arg, channel_conn_t *conn, Ep__Frame *frame);
} channel_handler_t;

//  Listens on address (host:port as ep_addr reads it: IPv4, [IPv6], * or a
//  name; port 0 = the kernel's choice) with ctx, the server context
//  (borrowed). Returns NULL with the reason in err.
channel_t *
    channel_new (const char *address, SSL_CTX *ctx, const channel_config_t *config,
                 const channel_handler_t *handler, void *arg, char *err, size_t errlen);

//  Closes every connection (without announcing leaves) and the listener.
void
    channel_destroy (channel_t **self_p);

//  The TLS server holding the listener and every connection: the caller's
//  loop polls and runs it (ep_tls_server_fd, _deadline, _process), sends
//  and closes through it (ep_tls_conn_send, ep_tls_conn_close: a close
//  announces the leave of a joined peer), and iterates its connections.
ep_tls_server_t *
    channel_server (channel_t *self);

//  Goes DRAINING (Goodbye sent, acks only): the router was deleted, moved,
//  or the watchdog is stopping.
void
    channel_drain (channel_t *self, channel_conn_t *conn, const char *reason, bool reconnect);

//  After the CRL was reloaded into the server context: closes every
//  connection past its handshake whose certificate it now lists (refused,
//  reason "revoked"). Returns how many.
size_t
    channel_close_revoked (channel_t *self);

//  The state machine of a connection.
conn_t *
    channel_conn_state (channel_conn_t *conn);

#endif
