/*  ep_tls_server.c: epoll + OpenSSL + timer heap (see ep_tls_server.h).

    Connections are indexed by fd (dense, reused by the kernel), and timer
    heap entries carry (fd, serial) so an entry for a closed connection or
    an older deadline is recognised and skipped when it comes due.
*/
#include "ep_tls_server.h"
#include "ep_addr.h"
#include "ep_chan_io.h"
#include "ep_fdlimit.h"
#include "ep_heap.h"
#include "ep_log.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#define EVENTS_PER_WAIT 256

struct _ep_tls_conn_t {
    ep_tls_server_t *server;    //  owner
    const ep_tls_handler_t *handler;    //  callbacks
    void *arg;                  //  their argument
    void *user;                 //  the owner's state
    int fd;                     //  socket
    uint32_t serial;            //  tells this connection from later ones on fd
    SSL *ssl;                   //  TLS session
    ep_frame_reader_t *reader;  //  incoming frames
    ep_frame_queue_t *out;      //  outgoing bytes, bounded
    size_t buffered;            //  bytes the reader held last time we looked
    int64_t deadline;           //  the owner's next timer, INT64_MAX if none
    int64_t scheduled;          //  deadline in the heap, INT64_MAX if none
    bool timed;                 //  frames must complete in time
    bool connecting;            //  dialed, TCP connect not yet done
    bool started;               //  handshake attempted
    bool tls_done;              //  handshake complete
    bool counted;               //  counted as unadmitted for its source address
    bool handshaking;           //  counted against max_handshakes
    bool want_write;            //  EPOLLOUT armed
    bool closed;                //  closed, to be freed
    char ip [INET6_ADDRSTRLEN]; //  source address (accepted)
    char remote [INET6_ADDRSTRLEN + 8]; //  "ip:port", or the address dialed
};

typedef struct {
    int64_t deadline;           //  when (first: ep_heap's key)
    int fd;                     //  which connection
    uint32_t serial;            //  and which one on that fd
} s_timer_t;

struct _ep_tls_server_t {
    ep_tls_server_config_t config;      //  limits
    int epoll_fd;               //  the epoll set
    int listen_fd;              //  listener, -1 if none or stopped
    int spare_fd;               //  kept open to accept-and-close at EMFILE
    int port;                   //  port bound
    SSL_CTX *listen_ctx;        //  the listener's context (borrowed)
    ep_tls_conn_config_t listen_config;     //  its connections' setup
    const ep_tls_handler_t *listen_handler; //  and callbacks
    void *listen_arg;           //  their argument
    ep_tls_conn_t **conns;      //  by fd
    int conns_size;             //  slots in conns
    size_t count;               //  open connections
    uint32_t next_serial;       //  serial for the next connection
    ep_heap_t *timers;          //  s_timer_t, soonest first
    zlistx_t *dead;             //  closed connections to free
    zhashx_t *per_source;       //  ip -> unadmitted connections (as a pointer-sized int)
    int handshakes;             //  accepted connections not yet through TLS
    size_t buffered;            //  bytes in flight across connections
    int iter;                   //  iteration cursor (fd)
};

//  -------------------------------------------------------------------------
//  Timers

//  Puts c's next deadline (the owner's, or its partial frame's) in the heap
//  if it changed.
static void
s_schedule (ep_tls_conn_t *c)
{
    if (c->closed)
        return;
    int64_t deadline = c->deadline;
    int64_t frame = c->timed? ep_frame_reader_deadline (c->reader): -1;
    if (frame >= 0 && frame < deadline)
        deadline = frame;
    if (deadline != c->scheduled) {
        c->scheduled = deadline;
        if (deadline != INT64_MAX) {
            s_timer_t timer = { deadline, c->fd, c->serial };
            ep_heap_push (c->server->timers, &timer);
        }
    }
}

//  -------------------------------------------------------------------------
//  Connections

static void
s_source_add (ep_tls_server_t *self, ep_tls_conn_t *c, int delta)
{
    intptr_t n = (intptr_t) zhashx_lookup (self->per_source, c->ip) + delta;
    if (n > 0)
        zhashx_update (self->per_source, c->ip, (void *) n);
    else
        zhashx_delete (self->per_source, c->ip);
}

//  Leaves the "not yet admitted" and "in handshake" counts when due.
static void
s_uncount (ep_tls_conn_t *c, bool handshake_only)
{
    ep_tls_server_t *self = c->server;
    if (c->handshaking) {
        c->handshaking = false;
        self->handshakes--;
    }
    if (!handshake_only && c->counted) {
        c->counted = false;
        s_source_add (self, c, -1);
    }
}

static void
s_epoll_set (ep_tls_conn_t *c, bool want_write)
{
    if (c->want_write == want_write || c->closed)
        return;
    struct epoll_event ev = { .events = EPOLLIN | (want_write? EPOLLOUT: 0), .data.fd = c->fd };
    EP_ASSERT (epoll_ctl (c->server->epoll_fd, EPOLL_CTL_MOD, c->fd, &ev) == 0);
    c->want_write = want_write;
}

void
ep_tls_conn_close (ep_tls_conn_t *c, const char *reason)
{
    if (c->closed)
        return;
    ep_tls_server_t *self = c->server;
    c->closed = true;
    if (c->handler->closed)
        c->handler->closed (c->arg, c, reason);
    s_uncount (c, false);
    self->buffered -= c->buffered;
    c->buffered = 0;
    epoll_ctl (self->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
    if (c->ssl && c->tls_done) {
        SSL_shutdown (c->ssl);          //  best effort: a close_notify if it fits
        ERR_clear_error ();
    }
    self->conns [c->fd] = NULL;
    self->count--;
    zlistx_add_end (self->dead, c);
}

static void
s_conn_free (ep_tls_conn_t *c)
{
    if (c->handler->released)
        c->handler->released (c->arg, c);
    if (c->ssl)
        SSL_free (c->ssl);
    close (c->fd);
    ep_frame_reader_destroy (&c->reader);
    ep_frame_queue_destroy (&c->out);
    free (c);
}

void
ep_tls_conn_flush (ep_tls_conn_t *c)
{
    size_t len;
    const uint8_t *bytes;
    while (!c->closed && c->tls_done && (bytes = ep_frame_queue_peek (c->out, &len))) {
        int n = SSL_write (c->ssl, bytes, (int) len);
        if (n > 0) {
            ep_frame_queue_consume (c->out, n);
            continue;
        }
        int error = SSL_get_error (c->ssl, n);
        ERR_clear_error ();
        if (error == SSL_ERROR_WANT_WRITE || error == SSL_ERROR_WANT_READ) {
            s_epoll_set (c, true);
            return;
        }
        ep_tls_conn_close (c, "write-error");
        return;
    }
    s_epoll_set (c, false);
}

int
ep_tls_conn_send (ep_tls_conn_t *c, const Ep__Frame *frame)
{
    if (c->closed || !c->tls_done)
        return -1;
    if (ep_frame_queue_push (c->out, frame) != 0) {
        //  It stopped reading: it must not hold our memory or stall others.
        ep_tls_conn_close (c, "slow-consumer");
        return -1;
    }
    ep_tls_conn_flush (c);
    return c->closed? -1: 0;
}

//  A refusal reason for a failed handshake.
static const char *
s_tls_reason (ep_tls_conn_t *c)
{
    long verify = SSL_get_verify_result (c->ssl);
    unsigned long code = ERR_peek_error ();
    int reason = ERR_GET_REASON (code);
    const char *name = "tls-error";
    if (verify == X509_V_ERR_CERT_REVOKED)
        name = "revoked";
    else
    if (verify == X509_V_ERR_CERT_HAS_EXPIRED || verify == X509_V_ERR_CERT_NOT_YET_VALID)
        name = "expired";
    else
    if (verify != X509_V_OK)
        name = "untrusted-certificate";
    else
    if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
        name = "no-certificate";
    else
    if (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_HTTP_REQUEST
    ||  reason == SSL_R_HTTPS_PROXY_REQUEST || reason == SSL_R_PACKET_LENGTH_TOO_LONG
    ||  reason == SSL_R_RECORD_LENGTH_MISMATCH || reason == SSL_R_UNEXPECTED_MESSAGE)
        name = "not-tls";
    else
    if (reason == SSL_R_UNSUPPORTED_PROTOCOL || reason == SSL_R_NO_PROTOCOLS_AVAILABLE
    ||  reason == SSL_R_VERSION_TOO_LOW)
        name = "tls-version";
    if (ep_log_enabled (EP_LOG_DEBUG)) {
        char detail [256] = "";
        ERR_error_string_n (code, detail, sizeof detail);
        ep_log_debug ("TLS handshake with %s failed (%s): %s; certificate: %s", c->remote, name,
                      detail, X509_verify_cert_error_string (verify));
    }
    ERR_clear_error ();
    return name;
}

static void
s_handshake (ep_tls_conn_t *c, int64_t now)
{
    if (!c->started) {
        c->started = true;
        if (c->handler->started)
            c->handler->started (c->arg, c, now);
        if (c->closed)
            return;
    }
    int rc = SSL_do_handshake (c->ssl);
    if (rc == 1) {
        c->tls_done = true;
        s_uncount (c, true);
        if (c->handler->secured)
            c->handler->secured (c->arg, c, now);
        return;
    }
    int error = SSL_get_error (c->ssl, rc);
    if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
        s_epoll_set (c, error == SSL_ERROR_WANT_WRITE);
        return;
    }
    if ((error == SSL_ERROR_SYSCALL || error == SSL_ERROR_ZERO_RETURN) && ERR_peek_error () == 0) {
        ep_tls_conn_close (c, "peer-closed");   //  gone mid-handshake, said nothing wrong
        return;
    }
    const char *reason = s_tls_reason (c);
    if (c->handler->insecure)
        c->handler->insecure (c->arg, c, reason, now);
    else
        ep_tls_conn_close (c, reason);
}

//  The reader refused input: the owner decides (it closes, usually).
static void
s_bad_input (ep_tls_conn_t *c, const char *reason, int64_t now)
{
    if (c->handler->bad_input)
        c->handler->bad_input (c->arg, c, reason, now);
    else
        ep_tls_conn_close (c, reason);
}

static void
s_read (ep_tls_conn_t *c, int64_t now)
{
    ep_tls_server_t *self = c->server;
    size_t len;
    uint8_t *space;
    while (!c->closed && (space = ep_frame_reader_space (c->reader, &len))) {
        int n = SSL_read (c->ssl, space, (int) len);
        if (n <= 0) {
            int error = SSL_get_error (c->ssl, n);
            if (error == SSL_ERROR_WANT_READ)
                break;
            if (error == SSL_ERROR_WANT_WRITE) {
                s_epoll_set (c, true);
                break;
            }
            bool clean = error == SSL_ERROR_ZERO_RETURN
                      || (error == SSL_ERROR_SYSCALL && ERR_peek_error () == 0);
            ERR_clear_error ();
            ep_tls_conn_close (c, clean? "peer-closed": "tls-error");
            return;
        }
        ep_frame_reader_commit (c->reader, n, now);
        ep_frame_error_t error;
        Ep__Frame *frame;
        while (!c->closed && (frame = ep_frame_reader_next (c->reader, &error))) {
            if (c->handler->frame)
                c->handler->frame (c->arg, c, frame, now);
            else
                ep__frame__free_unpacked (frame, NULL);
        }
        if (c->closed)
            return;
        size_t held = ep_frame_reader_buffered (c->reader);
        self->buffered += held - c->buffered;
        c->buffered = held;
        if (error != EP_FRAME_OK) {
            s_bad_input (c, ep_frame_error_name (error), now);
            return;
        }
        if (self->config.budget && self->buffered > self->config.budget && c->buffered > 0) {
            //  Over the global budget: the peer holding a partial frame now
            //  is the one pushing it over.
            s_bad_input (c, "budget", now);
            return;
        }
    }
    s_schedule (c);
}

//  A dialed socket polled writable: connected, or failed.
static void
s_connected (ep_tls_conn_t *c)
{
    int so_error = ep_chan_dial_errno (c->fd);
    if (so_error) {
        ep_tls_conn_close (c, so_error == ECONNREFUSED? "refused": "connect-error");
        return;
    }
    //  Writable means connected; not yet writable means still going.
    struct sockaddr_storage peer;
    socklen_t peer_len = sizeof peer;
    if (getpeername (c->fd, (struct sockaddr *) &peer, &peer_len) == 0)
        c->connecting = false;
}

//  A new connection on fd (accepted, or dialed) in the set.
static ep_tls_conn_t *
s_conn_new (ep_tls_server_t *self, int fd, SSL_CTX *ctx, const ep_tls_conn_config_t *config,
            const ep_tls_handler_t *handler, void *arg)
{
    ep_tls_conn_t *c = (ep_tls_conn_t *) zmalloc (sizeof (ep_tls_conn_t));
    c->server = self;
    c->handler = handler;
    c->arg = arg;
    c->fd = fd;
    int one = 1;
    setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->serial = ++self->next_serial;
    c->deadline = c->scheduled = INT64_MAX;
    c->reader = ep_frame_reader_new (config->frame_cap);
    c->timed = config->frame_timeout_ms > 0;
    if (c->timed)
        ep_frame_reader_set_timeout (c->reader, config->frame_timeout_ms);
    c->out = ep_frame_queue_new (config->out_cap);
    c->ssl = SSL_new (ctx);
    EP_ASSERT (c->ssl);
    SSL_set_fd (c->ssl, fd);
    SSL_set_mode (c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
                          | SSL_MODE_RELEASE_BUFFERS);
    self->conns [fd] = c;
    self->count++;
    return c;
}

//  Accepting with the spare: out of descriptors, accept and close at once,
//  so the peer learns it and the backlog drains.
static void
s_accept_spare (ep_tls_server_t *self)
{
    close (self->spare_fd);
    int fd = accept (self->listen_fd, NULL, NULL);
    if (fd >= 0)
        close (fd);
    self->spare_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
    ep_fdlimit_refused (EP_FDLIMIT_CHANNEL);
    if (self->listen_handler->rejected)
        self->listen_handler->rejected (self->listen_arg, "?", "fd-limit");
}

static void
s_accept (ep_tls_server_t *self)
{
    while (self->listen_fd >= 0) {
        struct sockaddr_storage addr;
        socklen_t addr_len = sizeof addr;
        int fd = accept4 (self->listen_fd, (struct sockaddr *) &addr, &addr_len,
                          SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if ((errno == EMFILE || errno == ENFILE) && self->spare_fd >= 0) {
                s_accept_spare (self);
                continue;
            }
            break;          //  EAGAIN: accepted everything waiting
        }
        char ip [INET6_ADDRSTRLEN] = "", remote [INET6_ADDRSTRLEN + 8];
        if (addr.ss_family == AF_INET)
            inet_ntop (AF_INET, &((struct sockaddr_in *) &addr)->sin_addr, ip, sizeof ip);
        else
            inet_ntop (AF_INET6, &((struct sockaddr_in6 *) &addr)->sin6_addr, ip, sizeof ip);
        ep_addr_format ((struct sockaddr *) &addr, remote, sizeof remote);
        const char *reject = NULL;
        if (self->config.max_handshakes && self->handshakes >= self->config.max_handshakes)
            reject = "handshake-cap";
        else
        if (self->config.max_per_source
        &&  (intptr_t) zhashx_lookup (self->per_source, ip) >= self->config.max_per_source)
            reject = "source-cap";
        if (reject || fd >= self->conns_size) {
            if (!reject)
                ep_fdlimit_refused (EP_FDLIMIT_CHANNEL);
            if (self->listen_handler->rejected)
                self->listen_handler->rejected (self->listen_arg, remote, reject? reject: "fd-limit");
            close (fd);
            continue;
        }
        ep_tls_conn_t *c = s_conn_new (self, fd, self->listen_ctx, &self->listen_config,
                                       self->listen_handler, self->listen_arg);
        memcpy (c->ip, ip, sizeof ip);
        memcpy (c->remote, remote, sizeof remote);
        SSL_set_accept_state (c->ssl);
        c->handshaking = c->counted = true;
        self->handshakes++;
        s_source_add (self, c, 1);
        struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
        EP_ASSERT (epoll_ctl (self->epoll_fd, EPOLL_CTL_ADD, fd, &ev) == 0);
        if (c->handler->accepted)
            c->handler->accepted (c->arg, c, ep_mono_ms ());
        s_schedule (c);
    }
}

//  -------------------------------------------------------------------------

ep_tls_server_t *
ep_tls_server_new (const ep_tls_server_config_t *config)
{
    ep_tls_server_t *self = (ep_tls_server_t *) zmalloc (sizeof (ep_tls_server_t));
    self->config = *config;
    self->listen_fd = self->spare_fd = -1;
    struct rlimit limit;
    getrlimit (RLIMIT_NOFILE, &limit);
    self->conns_size = limit.rlim_cur > 1048576? 1048576: (int) limit.rlim_cur;
    self->conns = (ep_tls_conn_t **) calloc (self->conns_size, sizeof (ep_tls_conn_t *));
    self->timers = ep_heap_new (sizeof (s_timer_t), NULL, NULL);
    self->dead = zlistx_new ();
    self->per_source = zhashx_new ();
    self->epoll_fd = epoll_create1 (EPOLL_CLOEXEC);
    EP_ASSERT (self->conns && self->epoll_fd >= 0);
    return self;
}

void
ep_tls_server_destroy (ep_tls_server_t **self_p)
{
    ep_tls_server_t *self = *self_p;
    if (!self)
        return;
    for (int fd = 0; fd < self->conns_size; fd++)
        if (self->conns [fd])
            s_conn_free (self->conns [fd]);
    ep_tls_conn_t *c;
    while ((c = (ep_tls_conn_t *) zlistx_detach (self->dead, NULL)))
        s_conn_free (c);
    zlistx_destroy (&self->dead);
    zhashx_destroy (&self->per_source);
    ep_tls_server_stop_accepting (self);
    if (self->spare_fd >= 0)
        close (self->spare_fd);
    close (self->epoll_fd);
    ep_heap_destroy (&self->timers);
    free (self->conns);
    free (self);
    *self_p = NULL;
}

int
ep_tls_server_listen (ep_tls_server_t *self, const char *address, SSL_CTX *ctx,
                      const ep_tls_conn_config_t *config, const ep_tls_handler_t *handler,
                      void *arg, char *err, size_t errlen)
{
    EP_ASSERT (self->listen_fd < 0);
    ep_addr_t addr;
    char why [300];
    if (ep_addr_parse (&addr, address, 0, why, sizeof why) != 0)
        return ep_errorf (err, errlen, "channel address \"%s\": %s", address, why);
    //  An IPv6 socket for an IPv6 address, IPv4 for "*" and IPv4 ones.
    int fd = ep_addr_listen (&addr, 4096, err, errlen);
    if (fd < 0)
        return -1;
    self->listen_fd = fd;
    self->port = ep_addr_port (fd);
    self->listen_ctx = ctx;
    self->listen_config = *config;
    self->listen_handler = handler;
    self->listen_arg = arg;
    self->spare_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
    EP_ASSERT (epoll_ctl (self->epoll_fd, EPOLL_CTL_ADD, fd, &ev) == 0);
    return 0;
}

int
ep_tls_server_port (ep_tls_server_t *self)
{
    return self->port;
}

char *
ep_tls_server_address (ep_tls_server_t *self, char *buf, size_t size)
{
    return self->listen_fd >= 0? ep_addr_local (self->listen_fd, buf, size): NULL;
}

void
ep_tls_server_stop_accepting (ep_tls_server_t *self)
{
    if (self->listen_fd >= 0) {
        epoll_ctl (self->epoll_fd, EPOLL_CTL_DEL, self->listen_fd, NULL);
        close (self->listen_fd);
        self->listen_fd = -1;
    }
}

ep_tls_conn_t *
ep_tls_server_dial (ep_tls_server_t *self, const char *address, SSL_CTX *ctx,
                    const ep_tls_conn_config_t *config, const ep_tls_handler_t *handler,
                    void *arg, const char **reason)
{
    //  Addresses in beacons are literals, resolved without a lookup; a
    //  name (--channel-advertise) is looked up, which may block briefly.
    ep_chan_dial_error_t error;
    int fd = ep_chan_dial (address, EP_CHAN_DIAL_HOSTPORT, &error, NULL, 0);
    if (fd < 0 || fd >= self->conns_size) {
        *reason = error == EP_CHAN_DIAL_BAD_ADDRESS? "bad-address"
                : error == EP_CHAN_DIAL_UNRESOLVED? "unresolved"
                : fd >= 0? "connect-error"
                : errno == ECONNREFUSED? "refused": "connect-error";
        if (fd >= 0)
            close (fd);
        return NULL;
    }
    ep_tls_conn_t *c = s_conn_new (self, fd, ctx, config, handler, arg);
    snprintf (c->remote, sizeof c->remote, "%s", address);
    SSL_set_connect_state (c->ssl);
    c->connecting = c->want_write = true;       //  writable = connected (or failed)
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.fd = fd };
    EP_ASSERT (epoll_ctl (self->epoll_fd, EPOLL_CTL_ADD, fd, &ev) == 0);
    *reason = NULL;
    return c;
}

int
ep_tls_server_fd (ep_tls_server_t *self)
{
    return self->epoll_fd;
}

int64_t
ep_tls_server_deadline (ep_tls_server_t *self)
{
    s_timer_t *top = (s_timer_t *) ep_heap_top (self->timers);
    return top? top->deadline: INT64_MAX;
}

//  One ready socket.
static void
s_ready (ep_tls_conn_t *c, uint32_t events, int64_t now)
{
    if (c->connecting) {
        s_connected (c);
        if (c->closed || c->connecting)
            return;
    }
    if (!c->tls_done) {
        s_handshake (c, now);
        if (!c->closed && c->tls_done)
            s_read (c, now);    //  the first frame may have come with the handshake
        return;
    }
    if ((events & EPOLLOUT) && !c->closed)
        ep_tls_conn_flush (c);
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !c->closed)
        s_read (c, now);
}

//  Due timers: a partial frame past its time, or the owner's deadline.
static void
s_timers (ep_tls_server_t *self)
{
    int64_t now = ep_mono_ms ();
    s_timer_t *top;
    while ((top = (s_timer_t *) ep_heap_top (self->timers)) && top->deadline <= now) {
        s_timer_t timer;
        ep_heap_pop (self->timers, &timer);
        ep_tls_conn_t *c = timer.fd < self->conns_size? self->conns [timer.fd]: NULL;
        if (!c || c->serial != timer.serial || c->scheduled != timer.deadline)
            continue;       //  stale: closed, or rescheduled since
        c->scheduled = INT64_MAX;
        if (c->timed && ep_frame_reader_expire (c->reader, now) != 0)
            s_bad_input (c, "slow-frame", now);
        else
        if (c->handler->timer)
            c->handler->timer (c->arg, c, now);
        s_schedule (c);
    }
}

void
ep_tls_server_process (ep_tls_server_t *self)
{
    struct epoll_event events [EVENTS_PER_WAIT];
    int n;
    do {
        n = epoll_wait (self->epoll_fd, events, EVENTS_PER_WAIT, 0);
        int64_t now = ep_mono_ms ();
        for (int i = 0; i < n; i++) {
            int fd = events [i].data.fd;
            if (fd == self->listen_fd) {
                s_accept (self);
                continue;
            }
            ep_tls_conn_t *c = fd < self->conns_size? self->conns [fd]: NULL;
            if (c)
                s_ready (c, events [i].events, now);
        }
    } while (n == EVENTS_PER_WAIT);
    s_timers (self);
    ep_tls_conn_t *dead;
    while ((dead = (ep_tls_conn_t *) zlistx_detach (self->dead, NULL)))
        s_conn_free (dead);
}

ep_tls_conn_t *
ep_tls_server_first (ep_tls_server_t *self)
{
    self->iter = -1;
    return ep_tls_server_next (self);
}

ep_tls_conn_t *
ep_tls_server_next (ep_tls_server_t *self)
{
    while (++self->iter < self->conns_size)
        if (self->conns [self->iter])
            return self->conns [self->iter];
    return NULL;
}

size_t
ep_tls_server_size (ep_tls_server_t *self)
{
    return self->count;
}

size_t
ep_tls_server_buffered (ep_tls_server_t *self)
{
    return self->buffered;
}

//  -------------------------------------------------------------------------

void
ep_tls_conn_set_deadline (ep_tls_conn_t *c, int64_t deadline_ms)
{
    c->deadline = deadline_ms;
    s_schedule (c);
}

void
ep_tls_conn_set_frame_cap (ep_tls_conn_t *c, size_t cap)
{
    ep_frame_reader_set_cap (c->reader, cap);
}

void
ep_tls_conn_admit (ep_tls_conn_t *c)
{
    s_uncount (c, false);
}

void
ep_tls_conn_set_user (ep_tls_conn_t *c, void *user)
{
    c->user = user;
}

void *
ep_tls_conn_user (ep_tls_conn_t *c)
{
    return c->user;
}

bool
ep_tls_conn_closed (ep_tls_conn_t *c)
{
    return c->closed;
}

bool
ep_tls_conn_secured (ep_tls_conn_t *c)
{
    return c->tls_done;
}

SSL *
ep_tls_conn_ssl (ep_tls_conn_t *c)
{
    return c->ssl;
}

const char *
ep_tls_conn_remote (ep_tls_conn_t *c)
{
    return c->remote;
}
