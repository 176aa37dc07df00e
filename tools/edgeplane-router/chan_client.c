/*  chan_client.c: TLS client for the control channel. */
#include "chan_client.h"
#include "ep_chan_io.h"
#include <poll.h>
#include <unistd.h>
#include <openssl/err.h>
#include <sodium.h>

struct _chan_client_t {
    int fd;                     //  the TCP socket (non-blocking)
    SSL *ssl;                   //  TLS over it
    ep_frame_reader_t *reader;  //  incoming frames
    bool closed;                //  peer closed or failed
    char reason [256];          //  why
    uint64_t pongs;             //  Pings answered
    int64_t link_delay_ms;      //  simulated link: Pongs held this long
    int64_t link_jitter_ms;     //  +- this much, uniform (order kept, as TCP does)
    double link_drop;           //  share of Pongs never sent
    Ep__Ping held [16];         //  Pongs due, oldest first
    int64_t held_due [16];      //  when each is due (ms)
    int held_count;
};

//  Waits for the socket to be readable or writable as SSL asks (io), until
//  deadline. False on timeout.
static bool
s_wait (chan_client_t *self, ep_chan_io_t io, int64_t deadline)
{
    int64_t left = deadline - ep_mono_ms ();
    if (left <= 0)
        return false;
    struct pollfd pfd = { .fd = self->fd,
                          .events = io == EP_CHAN_IO_WANT_WRITE? POLLOUT: POLLIN };
    return poll (&pfd, 1, (int) left) > 0;
}

static void
s_fail (chan_client_t *self, const char *what)
{
    if (!self->closed) {
        self->closed = true;
        unsigned long code = ERR_get_error ();
        char detail [200] = "";
        if (code)
            ERR_error_string_n (code, detail, sizeof detail);
        snprintf (self->reason, sizeof self->reason, "%s%s%s", what, *detail? ": ": "", detail);
    }
    ERR_clear_error ();
}

chan_client_t *
chan_client_new (const char *address, SSL_CTX *ctx, int timeout_ms, char *err, size_t errlen)
{
    ep_chan_dial_error_t error;
    int fd = ep_chan_dial (address, 0, &error, err, errlen);
    if (fd < 0)
        return NULL;
    chan_client_t *self = (chan_client_t *) zmalloc (sizeof (chan_client_t));
    self->fd = fd;
    int64_t deadline = ep_mono_ms () + timeout_ms;
    int rc = 0;
    struct pollfd pfd = { .fd = self->fd, .events = POLLOUT };
    int so_error = 0;
    int64_t left = deadline - ep_mono_ms ();
    if (left <= 0 || poll (&pfd, 1, (int) left) != 1
    ||  (so_error = ep_chan_dial_errno (self->fd))) {
        snprintf (err, errlen, "cannot connect to %s: %s", address,
                  so_error? strerror (so_error): "timed out");
        rc = -1;
    }
    if (rc == 0) {
        self->ssl = ep_chan_tls_new (ctx, self->fd);
        while (true) {
            ep_chan_io_t io = ep_chan_io_of (self->ssl, SSL_do_handshake (self->ssl));
            if (io == EP_CHAN_IO_OK)
                break;
            if ((io != EP_CHAN_IO_WANT_READ && io != EP_CHAN_IO_WANT_WRITE)
            ||  !s_wait (self, io, deadline)) {
                unsigned long code = ERR_get_error ();
                char detail [200] = "timed out";
                if (code)
                    ERR_error_string_n (code, detail, sizeof detail);
                long verify = SSL_get_verify_result (self->ssl);
                snprintf (err, errlen, "TLS handshake with %s failed: %s%s%s", address, detail,
                          verify != X509_V_OK? "; server certificate: ": "",
                          verify != X509_V_OK? X509_verify_cert_error_string (verify): "");
                ERR_clear_error ();
                rc = -1;
                break;
            }
        }
    }
    if (rc == 0)
        self->reader = ep_frame_reader_new (EP_FRAME_JOINED_CAP);
    else
        chan_client_destroy (&self);
    return self;
}

void
chan_client_destroy (chan_client_t **self_p)
{
    chan_client_t *self = *self_p;
    if (self) {
        if (self->ssl) {
            if (!self->closed)
                SSL_shutdown (self->ssl);
            SSL_free (self->ssl);
        }
        if (self->fd >= 0)
            close (self->fd);
        ep_frame_reader_destroy (&self->reader);
        free (self);
        *self_p = NULL;
    }
}

int
chan_client_send_raw (chan_client_t *self, const void *data, size_t size, int timeout_ms)
{
    int64_t deadline = ep_mono_ms () + timeout_ms;
    size_t done = 0;
    while (!self->closed && done < size) {
        size_t written;
        ep_chan_io_t io = ep_chan_write (self->ssl, (const char *) data + done, size - done, &written);
        done += written;
        if (io == EP_CHAN_IO_OK)
            continue;
        if ((io != EP_CHAN_IO_WANT_READ && io != EP_CHAN_IO_WANT_WRITE)
        ||  !s_wait (self, io, deadline)) {
            if (io != EP_CHAN_IO_WANT_READ && io != EP_CHAN_IO_WANT_WRITE)
                s_fail (self, "write failed");
            return -1;
        }
    }
    return done == size? 0: -1;
}

int
chan_client_send (chan_client_t *self, const Ep__Frame *frame, int timeout_ms)
{
    uint8_t *bytes;
    size_t size;
    if (ep_frame_encode (frame, EP_FRAME_JOINED_CAP, &bytes, &size) != 0)
        return -1;
    int rc = chan_client_send_raw (self, bytes, size, timeout_ms);
    free (bytes);
    return rc;
}

static void
s_pong_now (chan_client_t *self, const Ep__Ping *ping)
{
    Ep__Pong pong;
    Ep__Frame frame;
    ep_chan_pong (&frame, &pong, ping);
    if (chan_client_send (self, &frame, 1000) == 0)
        self->pongs++;
}

//  A Ping: answered now, or later through the simulated link.
static void
s_pong (chan_client_t *self, const Ep__Ping *ping)
{
    //  libsodium's generator: random () was never seeded, so every agent
    //  (and every run) dropped and delayed the same beats.
    if (self->link_drop > 0 && randombytes_uniform (1000000) < self->link_drop * 1000000)
        return;
    if (self->link_delay_ms <= 0 && self->link_jitter_ms <= 0) {
        s_pong_now (self, ping);
        return;
    }
    if (self->held_count == (int) EP_COUNT (self->held))
        return;                 //  a link this slow loses what does not fit
    int64_t skew = self->link_jitter_ms > 0? (int64_t) randombytes_uniform ((uint32_t) (2 * self->link_jitter_ms + 1)) - self->link_jitter_ms: 0;
    int64_t due = ep_mono_ms () + self->link_delay_ms + skew;
    if (self->held_count && due < self->held_due [self->held_count - 1])
        due = self->held_due [self->held_count - 1];
    self->held [self->held_count] = *ping;
    self->held_due [self->held_count++] = due;
}

void
chan_client_set_link (chan_client_t *self, int64_t delay_ms, int64_t jitter_ms, double drop)
{
    self->link_delay_ms = delay_ms;
    self->link_jitter_ms = jitter_ms;
    self->link_drop = drop;
}

int64_t
chan_client_flush (chan_client_t *self)
{
    int64_t now = ep_mono_ms ();
    int sent = 0;
    while (sent < self->held_count && self->held_due [sent] <= now && !self->closed)
        s_pong_now (self, &self->held [sent++]);
    memmove (self->held, self->held + sent, sizeof (Ep__Ping) * (size_t) (self->held_count - sent));
    memmove (self->held_due, self->held_due + sent, sizeof (int64_t) * (size_t) (self->held_count - sent));
    self->held_count -= sent;
    return self->held_count? self->held_due [0]: INT64_MAX;
}

Ep__Frame *
chan_client_recv (chan_client_t *self, int timeout_ms)
{
    int64_t deadline = ep_mono_ms () + timeout_ms;
    while (!self->closed) {
        ep_chan_io_t io;
        Ep__Frame *frame = ep_chan_next (self->ssl, self->reader, ep_mono_ms (), &io);
        if (frame) {
            if (frame->body_case == EP__FRAME__BODY_PING) {
                s_pong (self, frame->ping);
                ep__frame__free_unpacked (frame, NULL);
                continue;
            }
            return frame;
        }
        if (ep_frame_reader_error (self->reader) != EP_FRAME_OK) {
            s_fail (self, ep_frame_reader_detail (self->reader));
            return NULL;
        }
        if (io == EP_CHAN_IO_OK)
            return NULL;            //  the reader takes no bytes now
        if (io == EP_CHAN_IO_WANT_READ || io == EP_CHAN_IO_WANT_WRITE) {
            if (!s_wait (self, io, deadline))
                return NULL;
            continue;
        }
        s_fail (self, io == EP_CHAN_IO_CLOSED? "closed by the server": "connection lost");
    }
    return NULL;
}

Ep__HelloResult *
chan_client_hello (chan_client_t *self, uint32_t version, Ep__Role role,
                      const char *id, int timeout_ms)
{
    return chan_client_hello_at (self, version, role, id, 0, NULL, timeout_ms);
}

Ep__HelloResult *
chan_client_hello_at (chan_client_t *self, uint32_t version, Ep__Role role, const char *id,
                      uint64_t model_revision, const char *generation, int timeout_ms)
{
    Ep__Hello hello;
    Ep__Frame frame;
    ep_chan_hello (&frame, &hello, version, role, id);
    hello.has_model_revision = model_revision > 0;
    hello.model_revision = model_revision;
    hello.model_generation = (char *) generation;
    if (chan_client_send (self, &frame, timeout_ms) != 0)
        return NULL;
    int64_t deadline = ep_mono_ms () + timeout_ms;
    while (true) {
        int64_t left = deadline - ep_mono_ms ();
        Ep__Frame *reply = left > 0? chan_client_recv (self, (int) left): NULL;
        if (!reply)
            return NULL;
        if (reply->body_case == EP__FRAME__BODY_HELLO_RESULT) {
            Ep__HelloResult *result = reply->hello_result;
            reply->hello_result = NULL;
            reply->body_case = EP__FRAME__BODY__NOT_SET;
            ep__frame__free_unpacked (reply, NULL);
            return result;
        }
        ep__frame__free_unpacked (reply, NULL);
    }
}

bool
chan_client_closed (chan_client_t *self)
{
    return self->closed;
}

const char *
chan_client_close_reason (chan_client_t *self)
{
    return self->reason;
}

int
chan_client_fd (chan_client_t *self)
{
    return self->fd;
}

X509 *
chan_client_peer_cert (chan_client_t *self)
{
    return SSL_get0_peer_certificate (self->ssl);
}

uint64_t
chan_client_pongs (chan_client_t *self)
{
    return self->pongs;
}
