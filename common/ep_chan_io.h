/*  ep_chan_io.h: the client half of the control channel, one step at a time.

    What both clients of the control channel do, and do the same way: the
    router side's chan_client (tools/edgeplane-router: calls that block up to a timeout) and the
    watchdog's outbound ctrl link (services/watchdog/link.c, a state machine
    that must never block the watchdog's loop). Each step here returns at
    once; the caller decides whether to wait (poll) or to come back later,
    and what to call a failure (a sentence for a user, or a short reason for
    a metric label). The TLS context comes from ep_pki_client_ctx, the
    framing from ep_frame.

        dial:       a non-blocking TCP connect to "host:port"
        TLS:        an SSL in client mode over it, made for ep_frame_queue
        I/O:        what SSL_read/SSL_write/SSL_do_handshake's result means
        frames:     the next frame, reading as needed; Hello and Pong
*/
#ifndef EP_CHAN_IO_H_INCLUDED
#define EP_CHAN_IO_H_INCLUDED

#include "ep_prelude.h"
#include "ep_frame.h"
#include "channel.pb-c.h"
#include <openssl/ssl.h>

//  ---------------------------------------------------------------------------
//  Dial.

//  ep_chan_dial flag: address is written as for EP_OPT_HOSTPORT and in
//  beacons: the port a number. Without it the port may be a service name.
//  Either way an IPv6 host may be written in brackets.
#define EP_CHAN_DIAL_HOSTPORT       1

//  Why a dial failed.
typedef enum {
    EP_CHAN_DIAL_OK = 0,        //  connecting (or connected)
    EP_CHAN_DIAL_BAD_ADDRESS,   //  not host:port
    EP_CHAN_DIAL_UNRESOLVED,    //  the host does not resolve
    EP_CHAN_DIAL_CONNECT        //  socket () or connect () failed at once: errno says why
} ep_chan_dial_error_t;

//  Starts a TCP connect to address ("host:port"; flags 0 or
//  EP_CHAN_DIAL_HOSTPORT) and returns the socket (non-blocking,
//  close-on-exec): it is connected, or failed, once it polls writable (then
//  see ep_chan_dial_errno). A literal host is taken without a lookup; a
//  name is looked up, which may block briefly. Returns -1 with why in
//  *error (errno kept for EP_CHAN_DIAL_CONNECT) and, if err is not NULL, a
//  sentence for the user in err.
int
    ep_chan_dial (const char *address, int flags, ep_chan_dial_error_t *error,
                  char *err, size_t errlen);

//  How the connect on fd ended, once fd polled writable: 0 (connected, or
//  still going if it was not writable yet), or the errno it failed with.
int
    ep_chan_dial_errno (int fd);

//  ---------------------------------------------------------------------------
//  TLS.

//  A TLS client over fd with ctx (borrowed), in the modes ep_frame_queue
//  needs (partial writes, a buffer that may move between retries). The
//  handshake has not started. Free with SSL_free; fd stays the caller's.
SSL *
    ep_chan_tls_new (SSL_CTX *ctx, int fd);

//  ---------------------------------------------------------------------------
//  I/O on a non-blocking SSL.

//  What an SSL call's return means.
typedef enum {
    EP_CHAN_IO_OK = 0,          //  it did what was asked
    EP_CHAN_IO_WANT_READ,       //  call again once the socket is readable
    EP_CHAN_IO_WANT_WRITE,      //  call again once the socket is writable
    EP_CHAN_IO_CLOSED,          //  the peer closed TLS (close_notify)
    EP_CHAN_IO_EOF,             //  the TCP connection ended with nothing in OpenSSL's error queue
    EP_CHAN_IO_FAILED           //  any other failure: OpenSSL's error queue says why
} ep_chan_io_t;

//  What rc, returned by SSL_read, SSL_write or SSL_do_handshake on ssl,
//  means. Leaves OpenSSL's error queue to the caller, who reads it for a
//  message or clears it (ERR_clear_error).
ep_chan_io_t
    ep_chan_io_of (SSL *ssl, int rc);

//  Writes size bytes of data, as far as the socket takes them: *written
//  says how many went. Returns EP_CHAN_IO_OK once all did, else why it
//  stopped.
ep_chan_io_t
    ep_chan_write (SSL *ssl, const void *data, size_t size, size_t *written);

//  The next frame from reader, reading from ssl as it needs bytes (those
//  read are stamped now_ms). Free it with ep__frame__free_unpacked (f,
//  NULL). NULL when there is none now, with *io saying why: WANT_READ or
//  WANT_WRITE, nothing more until the socket is ready; CLOSED, EOF or
//  FAILED, the connection is over; OK, the reader stopped (its error,
//  ep_frame_reader_error, is set) or takes no bytes now.
Ep__Frame *
    ep_chan_next (SSL *ssl, ep_frame_reader_t *reader, int64_t now_ms, ep_chan_io_t *io);

//  ---------------------------------------------------------------------------
//  Frames a client sends. Each fills caller-provided structs (usually on
//  the stack) and points frame at them, ready for ep_frame_encode or
//  ep_frame_queue_push; id and ping are borrowed.

//  Hello {protocol_version, role, id, version EP_VERSION}.
void
    ep_chan_hello (Ep__Frame *frame, Ep__Hello *hello, uint32_t protocol_version,
                   Ep__Role role, const char *id);

//  A Ping sent at now_ms, with a nonce that differs from the one before
//  (the Pong must carry it back); returns the nonce.
uint64_t
    ep_chan_ping (Ep__Frame *frame, Ep__Ping *ping, int64_t now_ms);

//  The Pong answering ping: its nonce and sent_at_ms, as far as it has them.
void
    ep_chan_pong (Ep__Frame *frame, Ep__Pong *pong, const Ep__Ping *ping);

#endif
