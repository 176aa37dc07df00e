/*  ep_chan_io.c: the client half of the control channel (see ep_chan_io.h). */
#include "ep_chan_io.h"
#include "ep_addr.h"
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/err.h>

int
ep_chan_dial (const char *address, int flags, ep_chan_dial_error_t *error,
              char *err, size_t errlen)
{
    //  Brackets around any host (as `--controller [::1]:6262` is written
    //  and checked) come off whatever the flags. A service name parses
    //  either way; with EP_CHAN_DIAL_HOSTPORT it cannot resolve.
    ep_addr_t addr;
    if (ep_addr_parse (&addr, address, EP_ADDR_DIAL | EP_ADDR_SERVICE, NULL, 0) != 0) {
        *error = EP_CHAN_DIAL_BAD_ADDRESS;
        return ep_errorf (err, errlen, "address \"%s\": use host:port", address);
    }
    //  A literal (as in beacons) is taken without a lookup; a name is
    //  looked up, which may block briefly.
    struct sockaddr_storage sa;
    socklen_t len;
    if ((addr.port < 0 && (flags & EP_CHAN_DIAL_HOSTPORT))
    ||  ep_addr_resolve (&addr, &sa, &len, NULL, 0) != 0) {
        *error = EP_CHAN_DIAL_UNRESOLVED;
        return ep_errorf (err, errlen, "cannot resolve %s", addr.host);
    }
    int fd = ep_addr_connect ((struct sockaddr *) &sa, len);
    if (fd < 0) {
        int failure = errno;
        ep_errorf (err, errlen, "cannot connect to %s: %s", address, strerror (failure));
        *error = EP_CHAN_DIAL_CONNECT;
        errno = failure;
        return -1;
    }
    *error = EP_CHAN_DIAL_OK;
    return fd;
}

int
ep_chan_dial_errno (int fd)
{
    int so_error = 0;
    socklen_t len = sizeof so_error;
    if (getsockopt (fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0)
        so_error = errno;
    return so_error;
}

SSL *
ep_chan_tls_new (SSL_CTX *ctx, int fd)
{
    SSL *ssl = SSL_new (ctx);
    EP_ASSERT (ssl);
    SSL_set_fd (ssl, fd);
    SSL_set_connect_state (ssl);
    SSL_set_mode (ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return ssl;
}

ep_chan_io_t
ep_chan_io_of (SSL *ssl, int rc)
{
    if (rc > 0)
        return EP_CHAN_IO_OK;
    switch (SSL_get_error (ssl, rc)) {
        case SSL_ERROR_WANT_READ:
            return EP_CHAN_IO_WANT_READ;
        case SSL_ERROR_WANT_WRITE:
            return EP_CHAN_IO_WANT_WRITE;
        case SSL_ERROR_ZERO_RETURN:
            return EP_CHAN_IO_CLOSED;
        case SSL_ERROR_SYSCALL:
            return ERR_peek_error () == 0? EP_CHAN_IO_EOF: EP_CHAN_IO_FAILED;
        default:
            return EP_CHAN_IO_FAILED;
    }
}

ep_chan_io_t
ep_chan_write (SSL *ssl, const void *data, size_t size, size_t *written)
{
    *written = 0;
    while (*written < size) {
        int n = SSL_write (ssl, (const char *) data + *written, (int) (size - *written));
        ep_chan_io_t io = ep_chan_io_of (ssl, n);
        if (io != EP_CHAN_IO_OK)
            return io;
        *written += n;
    }
    return EP_CHAN_IO_OK;
}

Ep__Frame *
ep_chan_next (SSL *ssl, ep_frame_reader_t *reader, int64_t now_ms, ep_chan_io_t *io)
{
    *io = EP_CHAN_IO_OK;
    while (true) {
        ep_frame_error_t error;
        Ep__Frame *frame = ep_frame_reader_next (reader, &error);
        if (frame || error != EP_FRAME_OK)
            return frame;
        size_t len;
        uint8_t *space = ep_frame_reader_space (reader, &len);
        if (!space)
            return NULL;
        int n = SSL_read (ssl, space, (int) len);
        *io = ep_chan_io_of (ssl, n);
        if (*io != EP_CHAN_IO_OK)
            return NULL;
        ep_frame_reader_commit (reader, n, now_ms);
    }
}

void
ep_chan_hello (Ep__Frame *frame, Ep__Hello *hello, uint32_t protocol_version,
               Ep__Role role, const char *id)
{
    ep__hello__init (hello);
    hello->has_protocol_version = hello->has_role = true;
    hello->protocol_version = protocol_version;
    hello->role = role;
    hello->id = (char *) id;
    hello->version = EP_VERSION;
    ep__frame__init (frame);
    frame->body_case = EP__FRAME__BODY_HELLO;
    frame->hello = hello;
}

uint64_t
ep_chan_ping (Ep__Frame *frame, Ep__Ping *ping, int64_t now_ms)
{
    ep__ping__init (ping);
    ping->has_nonce = ping->has_sent_at_ms = true;
    //  Nonces only need to differ from the one before.
    ping->nonce = (uint64_t) now_ms * 2654435761u + 1;
    ping->sent_at_ms = now_ms;
    ep__frame__init (frame);
    frame->body_case = EP__FRAME__BODY_PING;
    frame->ping = ping;
    return ping->nonce;
}

void
ep_chan_pong (Ep__Frame *frame, Ep__Pong *pong, const Ep__Ping *ping)
{
    ep__pong__init (pong);
    pong->has_nonce = ping->has_nonce;
    pong->nonce = ping->nonce;
    pong->has_sent_at_ms = ping->has_sent_at_ms;
    pong->sent_at_ms = ping->sent_at_ms;
    ep__frame__init (frame);
    frame->body_case = EP__FRAME__BODY_PONG;
    frame->pong = pong;
}
