/*  ep_chan_client.h: the client side of the control channel.

    A TLS 1.3 connection to a watchdog carrying length-prefixed ep.Frames
    (ep_frame). Used by the router agent and by tests that play a router,
    a peer controller or a client. Calls block up to their timeout; the
    socket is non-blocking underneath, so a caller with its own loop can
    poll ep_chan_client_fd and call ep_chan_client_recv with timeout 0.
*/
#ifndef EP_CHAN_CLIENT_H_INCLUDED
#define EP_CHAN_CLIENT_H_INCLUDED

#include "ep_prelude.h"
#include "channel.pb-c.h"
#include <openssl/ssl.h>

typedef struct _ep_chan_client_t ep_chan_client_t;

//  Connects to address ("host:port"), completes the TLS handshake with ctx
//  (from ep_pki_client_ctx) within timeout_ms. Returns NULL with the reason
//  in err. Note that in TLS 1.3 the server judges the client's certificate
//  after the client's side of the handshake is done: a refused certificate
//  shows as the connection closing on the first recv.
ep_chan_client_t *
    ep_chan_client_new (const char *address, SSL_CTX *ctx, int timeout_ms,
                        char *err, size_t errlen);

void
    ep_chan_client_destroy (ep_chan_client_t **self_p);

//  Sends frame, waiting up to timeout_ms for the socket. Returns 0 or -1.
int
    ep_chan_client_send (ep_chan_client_t *self, const Ep__Frame *frame, int timeout_ms);

//  Sends raw bytes (tests: garbage, oversized headers, trickles).
int
    ep_chan_client_send_raw (ep_chan_client_t *self, const void *data, size_t size, int timeout_ms);

//  The next frame, waiting up to timeout_ms; NULL on timeout or when the
//  connection closed (ep_chan_client_closed). With auto-pong on (the
//  default) Pings are answered here and not returned. Free the frame with
//  ep__frame__free_unpacked (frame, NULL).
Ep__Frame *
    ep_chan_client_recv (ep_chan_client_t *self, int timeout_ms);

//  Sends Hello {version, role, id} and waits for HelloResult. Returns the
//  result (caller frees with ep__hello_result__free_unpacked) or NULL if
//  the connection closed or timed out first.
Ep__HelloResult *
    ep_chan_client_hello (ep_chan_client_t *self, uint32_t version, Ep__Role role,
                          const char *id, int timeout_ms);

//  Answer Pings automatically in recv (default true).
void
    ep_chan_client_set_auto_pong (ep_chan_client_t *self, bool auto_pong);

//  True once the peer closed the connection (or it failed).
bool
    ep_chan_client_closed (ep_chan_client_t *self);

//  Why it closed, for messages ("" while open).
const char *
    ep_chan_client_close_reason (ep_chan_client_t *self);

int
    ep_chan_client_fd (ep_chan_client_t *self);

//  The certificate the server presented (borrowed: valid until destroy).
X509 *
    ep_chan_client_peer_cert (ep_chan_client_t *self);

//  Pings answered so far.
uint64_t
    ep_chan_client_pongs (ep_chan_client_t *self);

#endif
