/*  chan_client.h: the client side of the control channel.

    A TLS 1.3 connection to a watchdog carrying length-prefixed ep.Frames
    (ep_frame). Used by the router agent and by tests that play a router,
    a peer controller or a client. Calls block up to their timeout; the
    socket is non-blocking underneath, so a caller with its own loop can
    poll chan_client_fd and call chan_client_recv with timeout 0.
*/
#ifndef CHAN_CLIENT_H_INCLUDED
#define CHAN_CLIENT_H_INCLUDED

#include "ep_prelude.h"
#include "channel.pb-c.h"
#include <openssl/ssl.h>

typedef struct _chan_client_t chan_client_t;

//  Connects to address ("host:port"), completes the TLS handshake with ctx
//  (from ep_pki_client_ctx) within timeout_ms. Returns NULL with the reason
//  in err. Note that in TLS 1.3 the server judges the client's certificate
//  after the client's side of the handshake is done: a refused certificate
//  shows as the connection closing on the first recv.
chan_client_t *
    chan_client_new (const char *address, SSL_CTX *ctx, int timeout_ms,
                        char *err, size_t errlen);

void
    chan_client_destroy (chan_client_t **self_p);

//  Sends frame, waiting up to timeout_ms for the socket. Returns 0 or -1.
int
    chan_client_send (chan_client_t *self, const Ep__Frame *frame, int timeout_ms);

//  Sends raw bytes (tests: garbage, oversized headers, trickles).
int
    chan_client_send_raw (chan_client_t *self, const void *data, size_t size, int timeout_ms);

//  The next frame, waiting up to timeout_ms; NULL on timeout or when the
//  connection closed (chan_client_closed). Pings are answered here and
//  not returned. Free the frame with ep__frame__free_unpacked (frame, NULL).
Ep__Frame *
    chan_client_recv (chan_client_t *self, int timeout_ms);

//  Sends Hello {version, role, id} and waits for HelloResult. Returns the
//  result (caller frees with ep__hello_result__free_unpacked) or NULL if
//  the connection closed or timed out first.
Ep__HelloResult *
    chan_client_hello (chan_client_t *self, uint32_t version, Ep__Role role,
                          const char *id, int timeout_ms);

//  The same, for a router holding the slice (model_revision, generation)
//  it acknowledged (0, NULL: none): the watchdog resumes from there.
Ep__HelloResult *
    chan_client_hello_at (chan_client_t *self, uint32_t version, Ep__Role role, const char *id,
                          uint64_t model_revision, const char *generation, int timeout_ms);
//  True once the peer closed the connection (or it failed).
bool
    chan_client_closed (chan_client_t *self);

//  Why it closed, for messages ("" while open).
const char *
    chan_client_close_reason (chan_client_t *self);

int
    chan_client_fd (chan_client_t *self);

//  The certificate the server presented (borrowed: valid until destroy).
X509 *
    chan_client_peer_cert (chan_client_t *self);

//  A simulated bad link (this kernel has no netem): each Pong is held
//  delay_ms +- jitter_ms (uniform, order kept) and drop of them are never
//  sent. Held Pongs go out from chan_client_flush.
void
    chan_client_set_link (chan_client_t *self, int64_t delay_ms, int64_t jitter_ms, double drop);

//  Sends the held Pongs that are due; returns when the next is (ms), or INT64_MAX.
int64_t
    chan_client_flush (chan_client_t *self);

//  Pings answered so far.
uint64_t
    chan_client_pongs (chan_client_t *self);

#endif
