/*  ep_tls_server.h: many TLS connections carrying frames, in one epoll set
    with one timer heap, never blocking.

    The socket and TLS plumbing of the control channel, kept apart from what
    a connection means. It listens (accepting until EAGAIN, with a spare
    descriptor to accept-and-close at EMFILE so the backlog drains, and caps
    on handshakes in progress and on unadmitted connections per source
    address), dials (a non-blocking connect, then the TLS client side),
    runs the handshakes, reads frames (ep_frame_reader, with a budget of
    partial-frame bytes across all connections) and writes them through a
    bounded output queue per connection (ep_frame_queue: a peer that stops
    reading is closed, "slow-consumer", rather than holding our memory).
    czmq's pollers are poll()-based and O(n) per wake-up; this is O(ready).

    Each connection's owner (the watchdog's channel.c runs a conn_t state
    machine per accepted connection, link.c one outbound ctrl link per
    peer) is told what happened through its handler callbacks and says when
    it wants its timer next (ep_tls_conn_set_deadline). A connection closed
    by either side is freed at the end of ep_tls_server_process, so no call
    chain ever touches freed memory; after its closed callback nothing more
    is said about it but released.

    The caller's loop polls ep_tls_server_fd () (the epoll fd) and calls
    ep_tls_server_process () when it is readable or ep_tls_server_deadline
    () has come.
*/
#ifndef EP_TLS_SERVER_H_INCLUDED
#define EP_TLS_SERVER_H_INCLUDED

#include "ep_prelude.h"
#include "ep_frame.h"
#include <openssl/ssl.h>

typedef struct _ep_tls_server_t ep_tls_server_t;
typedef struct _ep_tls_conn_t ep_tls_conn_t;

typedef struct {
    size_t budget;              //  bytes in flight (partial frames) across all connections, 0: no cap
    int max_handshakes;         //  accepted connections not yet through TLS, 0: no cap
    int max_per_source;         //  accepted connections not yet admitted per source address, 0: no cap
} ep_tls_server_config_t;

//  How each connection of a listener, or one dialed, is set up.
typedef struct {
    size_t frame_cap;           //  largest frame at first (ep_tls_conn_set_frame_cap raises it)
    size_t out_cap;             //  bytes queued to the peer before it is closed
    int64_t frame_timeout_ms;   //  a frame must complete within this; 0: not timed
} ep_tls_conn_config_t;

//  What a connection tells its owner; arg is the listen or dial argument,
//  now_ms the loop's monotonic time. Every one may be NULL.
typedef struct {
    //  Listeners only: a connection accepted past the caps (attach the
    //  owner's state with ep_tls_conn_set_user), or one refused before it
    //  had any ("handshake-cap", "source-cap", "fd-limit"; remote "?" when
    //  not known).
    void (*accepted) (void *arg, ep_tls_conn_t *conn, int64_t now_ms);
    void (*rejected) (void *arg, const char *remote, const char *reason);
    //  The TLS handshake began (its first attempt), completed, or failed:
    //  reason "revoked", "expired", "untrusted-certificate",
    //  "no-certificate", "not-tls", "tls-version" or "tls-error". A peer
    //  that hung up mid-handshake is closed ("peer-closed") instead.
    void (*started) (void *arg, ep_tls_conn_t *conn, int64_t now_ms);
    void (*secured) (void *arg, ep_tls_conn_t *conn, int64_t now_ms);
    void (*insecure) (void *arg, ep_tls_conn_t *conn, const char *reason, int64_t now_ms);
    //  A whole frame; the handler owns it (ep__frame__free_unpacked).
    void (*frame) (void *arg, ep_tls_conn_t *conn, Ep__Frame *frame, int64_t now_ms);
    //  The framing refused the peer's bytes: an ep_frame_error_name,
    //  "slow-frame" (not complete in time) or "budget" (this peer's partial
    //  frame took the server over its budget). The connection stays open
    //  until the owner closes it.
    void (*bad_input) (void *arg, ep_tls_conn_t *conn, const char *reason, int64_t now_ms);
    //  The deadline the owner set came.
    void (*timer) (void *arg, ep_tls_conn_t *conn, int64_t now_ms);
    //  The connection closed: by the owner (its reason), by the peer
    //  ("peer-closed", "tls-error"), for "write-error" or "slow-consumer",
    //  or a dial that failed ("refused", "connect-error").
    void (*closed) (void *arg, ep_tls_conn_t *conn, const char *reason);
    //  About to be freed (also by ep_tls_server_destroy, without closed):
    //  free what the owner hung on it.
    void (*released) (void *arg, ep_tls_conn_t *conn);
} ep_tls_handler_t;

ep_tls_server_t *
    ep_tls_server_new (const ep_tls_server_config_t *config);

//  Frees every connection (released, not closed) and the listener.
void
    ep_tls_server_destroy (ep_tls_server_t **self_p);

//  Listens on address (host:port as ep_addr reads it: IPv4, [IPv6], * or
//  a name; port 0 = the kernel's choice; an IPv6 socket for an IPv6
//  address) with ctx
//  (a server context, borrowed); handler (borrowed) and arg serve every
//  connection accepted. One listener per server. Returns 0, or -1 with the
//  reason in err.
int
    ep_tls_server_listen (ep_tls_server_t *self, const char *address, SSL_CTX *ctx,
                          const ep_tls_conn_config_t *config, const ep_tls_handler_t *handler,
                          void *arg, char *err, size_t errlen);

//  The port the listener bound, 0 if none.
int
    ep_tls_server_port (ep_tls_server_t *self);

//  The address the listener is bound to, as a local client dials it (a
//  wildcard made loopback; "[::1]:6262" for IPv6) into buf
//  (EP_ADDR_TEXT_MAX is enough); NULL if not listening.
char *
    ep_tls_server_address (ep_tls_server_t *self, char *buf, size_t size);

//  Stops accepting (SIGTERM): the listener closes, connections stay.
void
    ep_tls_server_stop_accepting (ep_tls_server_t *self);

//  Starts a connection to address ("host:port", a literal or a name,
//  looked up here) as a TLS client with ctx (borrowed). Returns the
//  connection, or NULL with *reason "bad-address", "unresolved", "refused"
//  or "connect-error". A connect that fails later is closed with "refused"
//  or "connect-error".
ep_tls_conn_t *
    ep_tls_server_dial (ep_tls_server_t *self, const char *address, SSL_CTX *ctx,
                        const ep_tls_conn_config_t *config, const ep_tls_handler_t *handler,
                        void *arg, const char **reason);

//  The epoll fd: readable when something is ready.
int
    ep_tls_server_fd (ep_tls_server_t *self);

//  When the next timer is due (monotonic ms), INT64_MAX if none.
int64_t
    ep_tls_server_deadline (ep_tls_server_t *self);

//  Handles ready sockets and due timers, without blocking; frees the
//  connections closed since the last call.
void
    ep_tls_server_process (ep_tls_server_t *self);

//  Iterates every open connection (NULL at the end).
ep_tls_conn_t *
    ep_tls_server_first (ep_tls_server_t *self);
ep_tls_conn_t *
    ep_tls_server_next (ep_tls_server_t *self);

//  Open connections.
size_t
    ep_tls_server_size (ep_tls_server_t *self);

//  Bytes in flight in partial frames across all connections.
size_t
    ep_tls_server_buffered (ep_tls_server_t *self);

//  ---------------------------------------------------------------------------
//  One connection.

//  Queues frame and writes what the socket takes. Returns 0, or -1 if the
//  connection is closed, not yet through TLS, or was just closed for not
//  reading ("slow-consumer") or a write error.
int
    ep_tls_conn_send (ep_tls_conn_t *self, const Ep__Frame *frame);

//  Writes what is queued, as far as the socket takes it (before a close
//  that should let a last frame out).
void
    ep_tls_conn_flush (ep_tls_conn_t *self);

//  Closes the connection with reason (the closed callback says it); a
//  no-op once closed.
void
    ep_tls_conn_close (ep_tls_conn_t *self, const char *reason);

//  When the owner's timer is due next (monotonic ms, INT64_MAX: none).
void
    ep_tls_conn_set_deadline (ep_tls_conn_t *self, int64_t deadline_ms);

//  Raises the frame cap (the peer joined).
void
    ep_tls_conn_set_frame_cap (ep_tls_conn_t *self, size_t cap);

//  The peer was admitted (joined): it no longer counts against its source
//  address's cap.
void
    ep_tls_conn_admit (ep_tls_conn_t *self);

//  The owner's state, NULL until set.
void
    ep_tls_conn_set_user (ep_tls_conn_t *self, void *user);
void *
    ep_tls_conn_user (ep_tls_conn_t *self);

bool
    ep_tls_conn_closed (ep_tls_conn_t *self);
bool
    ep_tls_conn_secured (ep_tls_conn_t *self);      //  handshake complete

//  The TLS session (for the peer's certificate: ep_pki_peer_identity,
//  ep_pki_peer_revoked).
SSL *
    ep_tls_conn_ssl (ep_tls_conn_t *self);

//  The peer's "ip:port" (accepted), or the address dialed.
const char *
    ep_tls_conn_remote (ep_tls_conn_t *self);

#endif
