/*  link.c: an outbound ctrl-to-ctrl connection (see link.h). */
#include "link.h"
#include "ep_chan_io.h"
#include "ep_pki_tls.h"
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/err.h>

#define PROTOCOL_VERSION    1
#define OUT_CAP             (1024 * 1024)   //  pings and pongs only: a peer this far behind is gone

struct _link_t {
    link_config_t config;       //  timeouts, our id
    char own_id [65];           //  config.own_id's storage
    char expect_id [65];        //  the peer's ctrl id, as its beacon said
    link_state_t state;         //  where it is
    int fd;                     //  the socket, -1 once closed
    SSL *ssl;                   //  TLS over it
    ep_frame_reader_t *reader;  //  incoming frames
    ep_frame_queue_t *out;      //  outgoing bytes
    bool want_write;            //  the socket must become writable to go on
    int64_t started_at;         //  link_new (ms)
    int64_t joined_at;          //  JOINED (ms), 0 if never
    int64_t last_heard;         //  anything from the peer (ms)
    int64_t next_ping;          //  when to Ping (ms)
    uint64_t ping_nonce;        //  the Ping in flight, 0 if none
    int64_t ping_sent;          //  when it went (ms)
    double rtt;                 //  last round trip (ms), -1 before the first
    bool goodbye;               //  the peer said Goodbye
    char reason [96];           //  why it closed
    char peer_instance [80];    //  HelloResult.instance_id
};

static void
s_close (link_t *self, const char *reason)
{
    if (self->state == LINK_CLOSED)
        return;
    if (self->ssl && self->state >= LINK_HELLO) {
        SSL_shutdown (self->ssl);       //  best effort: a close_notify if it fits
        ERR_clear_error ();
    }
    if (self->fd >= 0)
        close (self->fd);
    self->fd = -1;
    self->state = LINK_CLOSED;
    snprintf (self->reason, sizeof self->reason, "%s", reason);
}

//  A failed connect's reason, from its errno.
static const char *
s_connect_reason (int errnum)
{
    return errnum == ECONNREFUSED? "refused": "connect-error";
}

link_t *
link_new (const char *address, SSL_CTX *ctx, const char *expect_id,
          const link_config_t *config, int64_t now_ms)
{
    link_t *self = (link_t *) zmalloc (sizeof (link_t));
    self->config = *config;
    snprintf (self->own_id, sizeof self->own_id, "%s", config->own_id);
    self->config.own_id = self->own_id;
    snprintf (self->expect_id, sizeof self->expect_id, "%s", expect_id);
    self->fd = -1;
    self->rtt = -1;
    self->started_at = now_ms;
    self->state = LINK_CONNECTING;
    self->reader = ep_frame_reader_new (EP_FRAME_PREJOIN_CAP);
    self->out = ep_frame_queue_new (OUT_CAP);

    //  Addresses in beacons are literals, resolved without a lookup; a
    //  name (--channel-advertise) is looked up, which may block briefly.
    ep_chan_dial_error_t error;
    self->fd = ep_chan_dial (address, EP_CHAN_DIAL_HOSTPORT, &error, NULL, 0);
    if (self->fd < 0) {
        s_close (self, error == EP_CHAN_DIAL_BAD_ADDRESS? "bad-address"
                     : error == EP_CHAN_DIAL_UNRESOLVED? "unresolved"
                     : s_connect_reason (errno));
        return self;
    }
    int one = 1;
    setsockopt (self->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    self->ssl = ep_chan_tls_new (ctx, self->fd);
    self->want_write = true;            //  writable = connected (or failed)
    return self;
}

void
link_destroy (link_t **self_p)
{
    link_t *self = *self_p;
    if (self) {
        s_close (self, "destroyed");
        if (self->ssl)
            SSL_free (self->ssl);
        ep_frame_reader_destroy (&self->reader);
        ep_frame_queue_destroy (&self->out);
        free (self);
        *self_p = NULL;
    }
}

link_state_t
link_state (link_t *self)
{
    return self->state;
}

const char *
link_state_name (link_state_t state)
{
    static const char *names [] = { "connecting", "handshake", "hello", "joined", "closed" };
    return state <= LINK_CLOSED? names [state]: "?";
}

int
link_fd (link_t *self)
{
    return self->fd;
}

short
link_events (link_t *self)
{
    if (self->state == LINK_CLOSED)
        return 0;
    if (self->state == LINK_CONNECTING)
        return ZMQ_POLLOUT;
    return ZMQ_POLLIN | (self->want_write? ZMQ_POLLOUT: 0);
}

//  Writes what is queued, as far as the socket takes it.
static void
s_flush (link_t *self)
{
    size_t len, written;
    const uint8_t *bytes = ep_frame_queue_peek (self->out, &len);
    self->want_write = false;
    if (self->state == LINK_CLOSED || !bytes)
        return;
    ep_chan_io_t io = ep_chan_write (self->ssl, bytes, len, &written);
    ep_frame_queue_consume (self->out, written);
    if (io == EP_CHAN_IO_OK)
        return;
    ERR_clear_error ();
    if (io == EP_CHAN_IO_WANT_WRITE || io == EP_CHAN_IO_WANT_READ)
        self->want_write = io == EP_CHAN_IO_WANT_WRITE;
    else
        s_close (self, "write-error");
}

static void
s_send (link_t *self, const Ep__Frame *frame)
{
    if (ep_frame_queue_push (self->out, frame) != 0)
        s_close (self, "slow-peer");
    else
        s_flush (self);
}

static void
s_hello (link_t *self)
{
    Ep__Hello hello;
    Ep__Frame frame;
    ep_chan_hello (&frame, &hello, PROTOCOL_VERSION, EP__ROLE__ROLE_CTRL, self->own_id);
    self->state = LINK_HELLO;
    s_send (self, &frame);
}

static void
s_handshake (link_t *self)
{
    ep_chan_io_t io = ep_chan_io_of (self->ssl, SSL_do_handshake (self->ssl));
    if (io == EP_CHAN_IO_OK) {
        char role [16], id [65];
        if (ep_pki_peer_identity (self->ssl, role, sizeof role, id, sizeof id) != 0
        ||  !streq (role, "ctrl") || !streq (id, self->expect_id)) {
            //  Another instance on that address now (it restarted there),
            //  or not a controller at all.
            s_close (self, "identity-mismatch");
            return;
        }
        s_hello (self);
        return;
    }
    if (io == EP_CHAN_IO_WANT_READ || io == EP_CHAN_IO_WANT_WRITE) {
        self->want_write = io == EP_CHAN_IO_WANT_WRITE;
        return;
    }
    bool certificate = SSL_get_verify_result (self->ssl) != X509_V_OK;
    ERR_clear_error ();
    s_close (self, certificate? "untrusted-certificate": "tls-error");
}

static void
s_frame (link_t *self, Ep__Frame *frame, int64_t now_ms)
{
    self->last_heard = now_ms;
    switch (frame->body_case) {
        case EP__FRAME__BODY_HELLO_RESULT: {
            if (self->state != LINK_HELLO)
                break;
            Ep__HelloResult *result = frame->hello_result;
            if (!result->status || result->status->code != EP__STATUS__CODE__OK) {
                s_close (self, result->reason? result->reason: "refused");
                break;
            }
            snprintf (self->peer_instance, sizeof self->peer_instance, "%s",
                      result->instance_id? result->instance_id: "");
            self->state = LINK_JOINED;
            self->joined_at = now_ms;
            self->next_ping = now_ms + self->config.heartbeat_ms;
            ep_frame_reader_set_cap (self->reader, EP_FRAME_JOINED_CAP);
            break;
        }
        case EP__FRAME__BODY_PING: {
            Ep__Pong pong;
            Ep__Frame reply;
            ep_chan_pong (&reply, &pong, frame->ping);
            s_send (self, &reply);
            break;
        }
        case EP__FRAME__BODY_PONG:
            if (self->ping_nonce && frame->pong->nonce == self->ping_nonce) {
                self->rtt = (double) (now_ms - self->ping_sent);
                self->ping_nonce = 0;
            }
            break;
        case EP__FRAME__BODY_GOODBYE:
            self->goodbye = true;
            s_close (self, "goodbye");
            break;
        default:
            break;          //  nothing else travels between controllers yet
    }
}

static void
s_read (link_t *self, int64_t now_ms)
{
    ep_chan_io_t io = EP_CHAN_IO_OK;
    Ep__Frame *frame;
    while (self->state != LINK_CLOSED && (frame = ep_chan_next (self->ssl, self->reader, now_ms, &io))) {
        s_frame (self, frame, now_ms);
        ep__frame__free_unpacked (frame, NULL);
    }
    if (self->state == LINK_CLOSED)
        return;
    ep_frame_error_t error = ep_frame_reader_error (self->reader);
    if (error != EP_FRAME_OK)
        s_close (self, ep_frame_error_name (error));
    else
    if (io == EP_CHAN_IO_WANT_WRITE)
        self->want_write = true;
    else
    if (io == EP_CHAN_IO_CLOSED || io == EP_CHAN_IO_EOF || io == EP_CHAN_IO_FAILED) {
        ERR_clear_error ();
        s_close (self, io == EP_CHAN_IO_FAILED? "tls-error": "peer-closed");
    }
}

void
link_handle (link_t *self, int64_t now_ms)
{
    if (self->state == LINK_CONNECTING) {
        int so_error = ep_chan_dial_errno (self->fd);
        if (so_error)
            s_close (self, s_connect_reason (so_error));
        else {
            //  Writable means connected; not yet writable means still going.
            struct sockaddr_storage peer;
            socklen_t peer_len = sizeof peer;
            if (getpeername (self->fd, (struct sockaddr *) &peer, &peer_len) == 0)
                self->state = LINK_HANDSHAKE;
        }
    }
    if (self->state == LINK_HANDSHAKE)
        s_handshake (self);
    if (self->state == LINK_HELLO || self->state == LINK_JOINED) {
        if (self->want_write)
            s_flush (self);
        if (self->state != LINK_CLOSED)
            s_read (self, now_ms);
    }
    if (self->state != LINK_CLOSED && self->state != LINK_JOINED
    &&  now_ms >= self->started_at + self->config.join_timeout_ms)
        s_close (self, "timeout");
    if (self->state == LINK_JOINED) {
        if (now_ms >= self->last_heard + self->config.silence_ms)
            s_close (self, "heartbeat-timeout");
        else
        if (now_ms >= self->next_ping) {
            Ep__Ping ping = EP__PING__INIT;
            self->ping_nonce = (uint64_t) now_ms * 2654435761u + 1;
            self->ping_sent = now_ms;
            ping.has_nonce = ping.has_sent_at_ms = true;
            ping.nonce = self->ping_nonce;
            ping.sent_at_ms = now_ms;
            Ep__Frame frame = EP__FRAME__INIT;
            frame.body_case = EP__FRAME__BODY_PING;
            frame.ping = &ping;
            self->next_ping = now_ms + self->config.heartbeat_ms;
            s_send (self, &frame);
        }
    }
}

int64_t
link_deadline (link_t *self)
{
    switch (self->state) {
        case LINK_CLOSED:
            return INT64_MAX;
        case LINK_JOINED: {
            int64_t silence = self->last_heard + self->config.silence_ms;
            return self->next_ping < silence? self->next_ping: silence;
        }
        default:
            return self->started_at + self->config.join_timeout_ms;
    }
}

void
link_close (link_t *self, const char *reason)
{
    s_close (self, reason);
}

const char *
link_reason (link_t *self)
{
    return self->reason;
}

bool
link_goodbye (link_t *self)
{
    return self->goodbye;
}

const char *
link_peer_instance (link_t *self)
{
    return self->peer_instance;
}

int64_t
link_joined_at (link_t *self)
{
    return self->joined_at;
}

double
link_rtt_ms (link_t *self)
{
    return self->rtt;
}
