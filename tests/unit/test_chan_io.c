/*  test_chan_io.c: the control channel client's steps (ep_chan_io): dialing
    and its failures, Hello and Pong, and frames over a real TLS 1.3
    connection between ep_pki's contexts on a socket pair. */
#include <criterion/criterion.h>
#include "ep_test.h"
#include "ep_chan_io.h"
#include "ep_pki_tls.h"
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/err.h>

//  A listening socket on 127.0.0.1 at a kernel-chosen port; *port says which.
static int
s_listener (int *port)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert (fd >= 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
    cr_assert_eq (bind (fd, (struct sockaddr *) &addr, sizeof addr), 0);
    cr_assert_eq (listen (fd, 4), 0);
    socklen_t len = sizeof addr;
    cr_assert_eq (getsockname (fd, (struct sockaddr *) &addr, &len), 0);
    *port = ntohs (addr.sin_port);
    return fd;
}

//  Waits for the dialed fd to poll writable, then says how the connect ended.
static int
s_dial_outcome (int fd)
{
    struct pollfd pfd = { .fd = fd, .events = POLLOUT };
    cr_assert_eq (poll (&pfd, 1, 5000), 1, "the connect did not end");
    return ep_chan_dial_errno (fd);
}

Test (chan_io, dial_refuses_an_address_without_host_and_port)
{
    const char *bad [] = { "nohostport", ":6262" };
    for (size_t i = 0; i < EP_COUNT (bad); i++) {
        char err [256] = "";
        ep_chan_dial_error_t error;
        cr_assert_eq (ep_chan_dial (bad [i], 0, &error, err, sizeof err), -1);
        cr_assert_eq (error, EP_CHAN_DIAL_BAD_ADDRESS);
        char want [256];
        snprintf (want, sizeof want, "address \"%s\": use host:port", bad [i]);
        cr_assert_str_eq (err, want);
    }
}

Test (chan_io, dial_connects_to_a_listener)
{
    int port;
    int listener = s_listener (&port);
    char address [64];
    snprintf (address, sizeof address, "127.0.0.1:%d", port);
    ep_chan_dial_error_t error;
    int fd = ep_chan_dial (address, 0, &error, NULL, 0);
    cr_assert (fd >= 0);
    cr_assert_eq (error, EP_CHAN_DIAL_OK);
    cr_assert_eq (s_dial_outcome (fd), 0);
    close (fd);
    close (listener);
}

Test (chan_io, dial_reports_a_refused_connect_at_once_or_once_writable)
{
    int port;
    close (s_listener (&port));         //  nothing listens there now
    char address [64], err [256] = "";
    snprintf (address, sizeof address, "127.0.0.1:%d", port);
    ep_chan_dial_error_t error;
    int fd = ep_chan_dial (address, EP_CHAN_DIAL_HOSTPORT, &error, err, sizeof err);
    if (fd < 0) {
        cr_assert_eq (error, EP_CHAN_DIAL_CONNECT);
        cr_assert_eq (errno, ECONNREFUSED);
        char want [256];
        snprintf (want, sizeof want, "cannot connect to %s: %s", address, strerror (ECONNREFUSED));
        cr_assert_str_eq (err, want);
    }
    else {
        cr_assert_eq (s_dial_outcome (fd), ECONNREFUSED);
        close (fd);
    }
}

Test (chan_io, hostport_dial_takes_a_bracketed_host_and_only_a_numeric_port)
{
    int port;
    int listener = s_listener (&port);
    char address [64], err [256] = "";
    snprintf (address, sizeof address, "[127.0.0.1]:%d", port);
    ep_chan_dial_error_t error;
    int fd = ep_chan_dial (address, EP_CHAN_DIAL_HOSTPORT, &error, NULL, 0);
    cr_assert (fd >= 0, "brackets are taken off the host");
    cr_assert_eq (s_dial_outcome (fd), 0);
    close (fd);
    close (listener);

    //  The router's client dials without the flag: brackets come off
    //  there too (`edgeplane-router --controller [::1]:6262`).
    listener = s_listener (&port);
    snprintf (address, sizeof address, "[127.0.0.1]:%d", port);
    fd = ep_chan_dial (address, 0, &error, err, sizeof err);
    cr_assert (fd >= 0, "without the flag: %s", err);
    cr_assert_eq (s_dial_outcome (fd), 0);
    close (fd);
    close (listener);

    //  A service name is a port without EP_CHAN_DIAL_HOSTPORT only.
    cr_assert_eq (ep_chan_dial ("127.0.0.1:ssh", EP_CHAN_DIAL_HOSTPORT, &error, err, sizeof err), -1);
    cr_assert_eq (error, EP_CHAN_DIAL_UNRESOLVED);
    cr_assert_str_eq (err, "cannot resolve 127.0.0.1");
    if (getservbyname ("ssh", "tcp")) {    //  (a system without /etc/services knows no names)
        fd = ep_chan_dial ("127.0.0.1:ssh", 0, &error, err, sizeof err);
        cr_assert_neq (error, EP_CHAN_DIAL_UNRESOLVED, "%s", err);
        if (fd >= 0)
            close (fd);
    }
}

Test (chan_io, hello_and_pong_carry_what_the_peer_checks)
{
    Ep__Hello hello;
    Ep__Frame frame;
    ep_chan_hello (&frame, &hello, 1, EP__ROLE__ROLE_CTRL, "c1");
    uint8_t *bytes;
    size_t size;
    cr_assert_eq (ep_frame_encode (&frame, EP_FRAME_PREJOIN_CAP, &bytes, &size), 0);
    Ep__Frame *decoded = ep__frame__unpack (NULL, size - EP_FRAME_HEADER_SIZE,
                                            bytes + EP_FRAME_HEADER_SIZE);
    free (bytes);
    cr_assert_not_null (decoded);
    cr_assert_eq (decoded->body_case, EP__FRAME__BODY_HELLO);
    cr_assert (decoded->hello->has_protocol_version && decoded->hello->has_role);
    cr_assert_eq (decoded->hello->protocol_version, 1);
    cr_assert_eq (decoded->hello->role, EP__ROLE__ROLE_CTRL);
    cr_assert_str_eq (decoded->hello->id, "c1");
    cr_assert_str_eq (decoded->hello->version, EP_VERSION);
    ep__frame__free_unpacked (decoded, NULL);

    Ep__Ping ping = EP__PING__INIT;
    ping.has_nonce = true;
    ping.nonce = 77;
    Ep__Pong pong;
    ep_chan_pong (&frame, &pong, &ping);
    cr_assert_eq (frame.body_case, EP__FRAME__BODY_PONG);
    cr_assert (frame.pong->has_nonce);
    cr_assert_eq (frame.pong->nonce, 77);
    cr_assert_not (frame.pong->has_sent_at_ms, "only what the Ping had");
    ping.has_sent_at_ms = true;
    ping.sent_at_ms = 123456;
    ep_chan_pong (&frame, &pong, &ping);
    cr_assert (frame.pong->has_sent_at_ms);
    cr_assert_eq (frame.pong->sent_at_ms, 123456);
}

//  ---------------------------------------------------------------------------
//  A TLS connection over a socket pair: the client made by ep_chan_tls_new
//  with a router bundle, the server an ep_pki server context.

static char *s_tmp;
static SSL_CTX *s_client_ctx;
static SSL_CTX *s_server_ctx;
static int s_fds [2];           //  client end, server end (non-blocking)
static SSL *s_client;           //  TLS at the client end
static SSL *s_server;           //  TLS at the server end

static void
s_tls_setup (void)
{
    s_tmp = ep_tmpdir_new ("chan_io");
    char keys [512], out [512], cert [1024], key [1024], ca [1024], err [512] = "";
    snprintf (keys, sizeof keys, "%s/keys", s_tmp);
    snprintf (out, sizeof out, "%s/bundles", s_tmp);
    cr_assert_eq (ep_pki_init (keys, false, err, sizeof err), 0, "%s", err);
    cr_assert_eq (ep_pki_issue (keys, "router", "r1", out, 30, err, sizeof err), 0, "%s", err);
    snprintf (cert, sizeof cert, "%s/r1.crt", out);
    snprintf (key, sizeof key, "%s/r1.key", out);
    snprintf (ca, sizeof ca, "%s/ca.crt", out);
    s_client_ctx = ep_pki_client_ctx (cert, key, ca, err, sizeof err);
    cr_assert_not_null (s_client_ctx, "%s", err);
    s_server_ctx = ep_pki_server_ctx (keys, err, sizeof err);
    cr_assert_not_null (s_server_ctx, "%s", err);
    cr_assert_eq (socketpair (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, s_fds), 0);
    s_client = ep_chan_tls_new (s_client_ctx, s_fds [0]);
    s_server = SSL_new (s_server_ctx);
    SSL_set_fd (s_server, s_fds [1]);
    SSL_set_accept_state (s_server);
    SSL_set_mode (s_server, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    //  Both ends step until both finished; the client's steps go through
    //  ep_chan_io_of, which must say "again" until it is done.
    bool client_ok = false, server_ok = false;
    for (int round = 0; round < 50 && !(client_ok && server_ok); round++) {
        if (!client_ok) {
            ep_chan_io_t io = ep_chan_io_of (s_client, SSL_do_handshake (s_client));
            cr_assert (io == EP_CHAN_IO_OK || io == EP_CHAN_IO_WANT_READ || io == EP_CHAN_IO_WANT_WRITE,
                       "client handshake: %d", io);
            client_ok = io == EP_CHAN_IO_OK;
        }
        if (!server_ok) {
            ep_chan_io_t io = ep_chan_io_of (s_server, SSL_do_handshake (s_server));
            cr_assert (io == EP_CHAN_IO_OK || io == EP_CHAN_IO_WANT_READ || io == EP_CHAN_IO_WANT_WRITE,
                       "server handshake: %d", io);
            server_ok = io == EP_CHAN_IO_OK;
        }
    }
    cr_assert (client_ok && server_ok, "the handshake did not finish");
}

static void
s_tls_teardown (void)
{
    SSL_free (s_client);
    SSL_free (s_server);
    close (s_fds [0]);
    close (s_fds [1]);
    SSL_CTX_free (s_client_ctx);
    SSL_CTX_free (s_server_ctx);
    ep_tmpdir_remove (&s_tmp);
    ERR_clear_error ();
}

//  The server sends size bytes of data, all of them.
static void
s_server_send (const void *data, size_t size)
{
    size_t written;
    cr_assert_eq (ep_chan_write (s_server, data, size, &written), EP_CHAN_IO_OK);
    cr_assert_eq (written, size);
}

static Ep__Frame
s_ping_frame (Ep__Ping *ping, uint64_t nonce)
{
    ep__ping__init (ping);
    ping->has_nonce = true;
    ping->nonce = nonce;
    Ep__Frame frame = EP__FRAME__INIT;
    frame.body_case = EP__FRAME__BODY_PING;
    frame.ping = ping;
    return frame;
}

Test (chan_io, next_waits_for_the_whole_frame_then_returns_it,
      .init = s_tls_setup, .fini = s_tls_teardown)
{
    ep_frame_reader_t *reader = ep_frame_reader_new (EP_FRAME_PREJOIN_CAP);
    ep_chan_io_t io;
    cr_assert_null (ep_chan_next (s_client, reader, 0, &io));
    cr_assert_eq (io, EP_CHAN_IO_WANT_READ, "nothing sent yet");

    Ep__Ping ping;
    Ep__Frame frame = s_ping_frame (&ping, 42);
    uint8_t *bytes;
    size_t size;
    cr_assert_eq (ep_frame_encode (&frame, EP_FRAME_PREJOIN_CAP, &bytes, &size), 0);
    s_server_send (bytes, 3);           //  part of the header
    cr_assert_null (ep_chan_next (s_client, reader, 0, &io));
    cr_assert_eq (io, EP_CHAN_IO_WANT_READ);
    s_server_send (bytes + 3, size - 3);
    Ep__Frame *got = ep_chan_next (s_client, reader, 0, &io);
    cr_assert_not_null (got);
    cr_assert_eq (got->body_case, EP__FRAME__BODY_PING);
    cr_assert_eq (got->ping->nonce, 42);
    ep__frame__free_unpacked (got, NULL);
    free (bytes);
    ep_frame_reader_destroy (&reader);
}

Test (chan_io, next_stops_on_a_frame_above_the_cap_with_the_reader_error,
      .init = s_tls_setup, .fini = s_tls_teardown)
{
    ep_frame_reader_t *reader = ep_frame_reader_new (EP_FRAME_PREJOIN_CAP);
    uint8_t header [4] = { 0, 1, 0, 0 };       //  64 KiB announced
    s_server_send (header, sizeof header);
    ep_chan_io_t io;
    cr_assert_null (ep_chan_next (s_client, reader, 0, &io));
    cr_assert_eq (io, EP_CHAN_IO_OK, "no socket trouble");
    cr_assert_eq (ep_frame_reader_error (reader), EP_FRAME_OVERSIZED);
    ep_frame_reader_destroy (&reader);
}

Test (chan_io, next_says_closed_after_the_peers_close_notify,
      .init = s_tls_setup, .fini = s_tls_teardown)
{
    ep_frame_reader_t *reader = ep_frame_reader_new (EP_FRAME_PREJOIN_CAP);
    SSL_shutdown (s_server);
    ep_chan_io_t io;
    cr_assert_null (ep_chan_next (s_client, reader, 0, &io));
    cr_assert_eq (io, EP_CHAN_IO_CLOSED);
    ep_frame_reader_destroy (&reader);
}

Test (chan_io, next_says_the_connection_ended_without_close_notify,
      .init = s_tls_setup, .fini = s_tls_teardown)
{
    ep_frame_reader_t *reader = ep_frame_reader_new (EP_FRAME_PREJOIN_CAP);
    shutdown (s_fds [1], SHUT_WR);
    ep_chan_io_t io;
    cr_assert_null (ep_chan_next (s_client, reader, 0, &io));
    //  OpenSSL 3 reports an EOF without close_notify as an error of its
    //  own unless told to ignore it; either way it is not "closed".
    cr_assert (io == EP_CHAN_IO_EOF || io == EP_CHAN_IO_FAILED, "io %d", io);
    ep_frame_reader_destroy (&reader);
}

Test (chan_io, write_says_how_far_it_got_when_the_socket_is_full,
      .init = s_tls_setup, .fini = s_tls_teardown)
{
    size_t size = 8 * 1024 * 1024;      //  far more than a socket pair holds
    uint8_t *data = (uint8_t *) calloc (1, size);
    size_t written;
    ep_chan_io_t io = ep_chan_write (s_client, data, size, &written);
    cr_assert_eq (io, EP_CHAN_IO_WANT_WRITE);
    cr_assert (written > 0 && written < size, "written %zu", written);

    //  The server reads some; the rest goes on from where it stopped.
    size_t done = written, received = 0;
    uint8_t buffer [16384];
    while (done < size) {
        int n = SSL_read (s_server, buffer, sizeof buffer);
        if (n > 0)
            received += n;
        io = ep_chan_write (s_client, data + done, size - done, &written);
        done += written;
        cr_assert (io == EP_CHAN_IO_OK || io == EP_CHAN_IO_WANT_WRITE, "io %d", io);
    }
    while (received < size) {           //  all of it is in the socket now
        int n = SSL_read (s_server, buffer, sizeof buffer);
        cr_assert (n > 0, "%zu of %zu bytes arrived", received, size);
        received += n;
    }
    cr_assert_eq (received, size);
    free (data);
}
