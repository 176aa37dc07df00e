/*  channel.c: epoll + OpenSSL + timer heap around conn_t (see channel.h).

    Connections are indexed by fd (dense, reused by the kernel), and timer
    heap entries carry (fd, serial) so an entry for a closed connection or
    an older deadline is recognised and skipped when it comes due. Closed
    connections are freed at the end of channel_process, so nothing in a
    call chain ever touches freed memory.
*/
#include "channel.h"
#include "ep_frame.h"
#include "ep_log.h"
#include "ep_pki_tls.h"
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

struct _channel_conn_t {
    channel_t *channel;         //  owner
    int fd;                     //  socket
    uint32_t serial;            //  tells this connection from later ones on fd
    SSL *ssl;                   //  TLS session
    conn_t *conn;               //  the state machine
    ep_frame_reader_t *reader;  //  incoming frames
    ep_frame_queue_t *out;      //  outgoing bytes, bounded
    size_t buffered;            //  bytes the reader held last time we looked
    int64_t scheduled;          //  deadline in the heap, INT64_MAX if none
    bool tls_done;              //  handshake complete
    bool counted;               //  counted as unjoined for its source address
    bool handshaking;           //  counted against max_handshakes
    bool want_write;            //  EPOLLOUT armed
    bool closed;                //  closed, to be freed
    char ip [INET6_ADDRSTRLEN]; //  source address
    char remote [INET6_ADDRSTRLEN + 8]; //  "ip:port"
};

typedef struct {
    int64_t deadline;           //  when
    int fd;                     //  which connection
    uint32_t serial;            //  and which one on that fd
} s_timer_t;

struct _channel_t {
    channel_config_t config;    //  limits
    channel_handler_t handler;  //  callbacks
    void *arg;                  //  their argument
    SSL_CTX *ctx;               //  server context (borrowed)
    int epoll_fd;               //  the epoll set
    int listen_fd;              //  listener, -1 once stopped
    int spare_fd;               //  kept open to accept-and-close at EMFILE
    int port;                   //  port bound
    channel_conn_t **conns;     //  by fd
    int conns_size;             //  slots in conns
    size_t count;               //  live connections
    uint32_t next_serial;       //  serial for the next connection
    s_timer_t *heap;            //  timer min-heap
    size_t heap_size, heap_max; //  entries used, allocated
    zlistx_t *dead;             //  closed connections to free
    zhashx_t *per_source;       //  ip -> unjoined connections (as a pointer-sized int)
    int handshakes;             //  connections not yet through TLS
    size_t buffered;            //  bytes in flight across connections
    int iter;                   //  iteration cursor (fd)
};

//  -------------------------------------------------------------------------
//  Timer heap

static void
s_heap_push (channel_t *self, int64_t deadline, int fd, uint32_t serial)
{
    if (self->heap_size == self->heap_max) {
        self->heap_max = self->heap_max? self->heap_max * 2: 1024;
        self->heap = (s_timer_t *) realloc (self->heap, self->heap_max * sizeof (s_timer_t));
        EP_ASSERT (self->heap);
    }
    size_t i = self->heap_size++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (self->heap [parent].deadline <= deadline)
            break;
        self->heap [i] = self->heap [parent];
        i = parent;
    }
    self->heap [i] = (s_timer_t) { deadline, fd, serial };
}

static s_timer_t
s_heap_pop (channel_t *self)
{
    s_timer_t top = self->heap [0];
    s_timer_t last = self->heap [--self->heap_size];
    size_t i = 0;
    while (true) {
        size_t child = 2 * i + 1;
        if (child >= self->heap_size)
            break;
        if (child + 1 < self->heap_size && self->heap [child + 1].deadline < self->heap [child].deadline)
            child++;
        if (last.deadline <= self->heap [child].deadline)
            break;
        self->heap [i] = self->heap [child];
        i = child;
    }
    if (self->heap_size)
        self->heap [i] = last;
    return top;
}

//  Puts conn's next deadline in the heap if it moved earlier or changed.
static void
s_schedule (channel_conn_t *c)
{
    if (c->closed)
        return;
    int64_t deadline = conn_deadline (c->conn);
    int64_t frame = ep_frame_reader_deadline (c->reader);
    if (frame >= 0 && frame < deadline)
        deadline = frame;
    if (deadline != c->scheduled) {
        c->scheduled = deadline;
        if (deadline != INT64_MAX)
            s_heap_push (c->channel, deadline, c->fd, c->serial);
    }
}

//  -------------------------------------------------------------------------
//  Connections

static void
s_source_add (channel_t *self, channel_conn_t *c, int delta)
{
    intptr_t n = (intptr_t) zhashx_lookup (self->per_source, c->ip) + delta;
    if (n > 0)
        zhashx_update (self->per_source, c->ip, (void *) n);
    else
        zhashx_delete (self->per_source, c->ip);
}

//  Leaves the "not yet joined" and "in handshake" counts when due.
static void
s_uncount (channel_conn_t *c, bool handshake_only)
{
    channel_t *self = c->channel;
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
s_epoll_set (channel_conn_t *c, bool want_write)
{
    if (c->want_write == want_write || c->closed)
        return;
    struct epoll_event ev = { .events = EPOLLIN | (want_write? EPOLLOUT: 0), .data.fd = c->fd };
    EP_ASSERT (epoll_ctl (c->channel->epoll_fd, EPOLL_CTL_MOD, c->fd, &ev) == 0);
    c->want_write = want_write;
}

static void s_close (channel_conn_t *c, const char *reason);
static void s_act (channel_conn_t *c, conn_actions_t *actions);

//  Writes what is queued, as far as the socket takes it.
static void
s_flush (channel_conn_t *c)
{
    size_t len;
    const uint8_t *bytes;
    while (!c->closed && (bytes = ep_frame_queue_peek (c->out, &len))) {
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
        s_close (c, "write-error");
        return;
    }
    s_epoll_set (c, false);
}

int
channel_conn_send (channel_conn_t *c, const Ep__Frame *frame)
{
    if (c->closed || !c->tls_done)
        return -1;
    if (ep_frame_queue_push (c->out, frame) != 0) {
        //  It stopped reading: it must not hold our memory or stall others.
        s_close (c, "slow-consumer");
        return -1;
    }
    s_flush (c);
    return c->closed? -1: 0;
}

static void
s_close (channel_conn_t *c, const char *reason)
{
    if (c->closed)
        return;
    channel_t *self = c->channel;
    int64_t now = ep_mono_ms ();
    int64_t joined_at = conn_joined_at (c->conn);
    conn_actions_t actions;
    conn_closed (c->conn, reason, now, &actions);
    c->closed = true;
    if ((actions.flags & CONN_LEAVE) && self->handler.left)
        self->handler.left (self->arg, c, reason, now - joined_at);
    if (self->handler.ended)
        self->handler.ended (self->arg, c, conn_outcome (c->conn),
                             (now - conn_accepted_at (c->conn)) / 1000.0);
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
s_conn_free (channel_conn_t *c)
{
    if (c->ssl)
        SSL_free (c->ssl);
    close (c->fd);
    conn_destroy (&c->conn);
    ep_frame_reader_destroy (&c->reader);
    ep_frame_queue_destroy (&c->out);
    free (c);
}

static void
s_act (channel_conn_t *c, conn_actions_t *a)
{
    channel_t *self = c->channel;
    if (a->flags & CONN_SEND)
        channel_conn_send (c, &a->frame);
    if ((a->flags & CONN_REPORT_STRAY) && self->handler.stray)
        self->handler.stray (self->arg, c, a->step);
    if ((a->flags & CONN_NOT_MEMBER) && self->handler.not_member)
        self->handler.not_member (self->arg, c);
    if ((a->flags & CONN_REPORT_REFUSAL) && self->handler.refused)
        self->handler.refused (self->arg, c, a->reason);
    if ((a->flags & CONN_JOIN) && !c->closed) {
        s_uncount (c, false);
        ep_frame_reader_set_cap (c->reader, self->config.joined_cap);
        if (self->handler.joined)
            self->handler.joined (self->arg, c);
    }
    if (a->flags & CONN_CLOSE) {
        //  Let a final frame (HelloResult with the reason) go out first.
        if (!c->closed)
            s_flush (c);
        s_close (c, a->reason? a->reason: "closed");
    }
    s_schedule (c);
}

//  A refusal reason for a failed handshake.
static const char *
s_tls_reason (channel_conn_t *c)
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
        ep_log_debug ("TLS handshake from %s failed (%s): %s; certificate: %s", c->remote, name,
                      detail, X509_verify_cert_error_string (verify));
    }
    ERR_clear_error ();
    return name;
}

static void
s_handshake (channel_conn_t *c, int64_t now)
{
    conn_actions_t actions;
    if (conn_state (c->conn) == CONN_ACCEPTED) {
        conn_tls_started (c->conn, now, &actions);
        s_act (c, &actions);
    }
    int rc = SSL_do_handshake (c->ssl);
    if (rc == 1) {
        c->tls_done = true;
        s_uncount (c, true);
        char role [16], id [65];
        if (ep_pki_peer_identity (c->ssl, role, sizeof role, id, sizeof id) != 0) {
            conn_tls_failed (c->conn, "bad-certificate", now, &actions);
            s_act (c, &actions);
            return;
        }
        conn_tls_done (c->conn, role, id, now, &actions);
        s_act (c, &actions);
        return;
    }
    int error = SSL_get_error (c->ssl, rc);
    if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
        s_epoll_set (c, error == SSL_ERROR_WANT_WRITE);
        return;
    }
    if ((error == SSL_ERROR_SYSCALL || error == SSL_ERROR_ZERO_RETURN) && ERR_peek_error () == 0) {
        s_close (c, "peer-closed");         //  gone mid-handshake, said nothing wrong
        return;
    }
    conn_tls_failed (c->conn, s_tls_reason (c), now, &actions);
    s_act (c, &actions);
}

static void
s_frame (channel_conn_t *c, Ep__Frame *frame, int64_t now)
{
    channel_t *self = c->channel;
    conn_peer_t peer = CONN_PEER_OK;
    if (frame->body_case == EP__FRAME__BODY_HELLO && conn_state (c->conn) == CONN_AWAIT_HELLO)
        peer = self->handler.verdict (self->arg, conn_role (c->conn), conn_id (c->conn));
    conn_actions_t actions;
    bool relay = conn_frame (c->conn, frame, peer, now, &actions);
    s_act (c, &actions);
    if (relay && !c->closed && self->handler.frame)
        self->handler.frame (self->arg, c, frame);
    else
        ep__frame__free_unpacked (frame, NULL);
}

static void
s_read (channel_conn_t *c, int64_t now)
{
    channel_t *self = c->channel;
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
            s_close (c, clean? "peer-closed": "tls-error");
            return;
        }
        ep_frame_reader_commit (c->reader, n, now);
        ep_frame_error_t error;
        Ep__Frame *frame;
        while (!c->closed && (frame = ep_frame_reader_next (c->reader, &error)))
            s_frame (c, frame, now);
        if (c->closed)
            return;
        size_t held = ep_frame_reader_buffered (c->reader);
        self->buffered += held - c->buffered;
        c->buffered = held;
        if (error != EP_FRAME_OK) {
            conn_actions_t actions;
            conn_bad_input (c->conn, ep_frame_error_name (error), now, &actions);
            s_act (c, &actions);
            return;
        }
        if (self->buffered > self->config.budget && c->buffered > 0) {
            //  Over the global budget: the peer holding a partial frame now
            //  is the one pushing it over.
            conn_actions_t actions;
            conn_bad_input (c->conn, "budget", now, &actions);
            s_act (c, &actions);
            return;
        }
    }
    s_schedule (c);
}

static void
s_accept (channel_t *self)
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
                //  Out of descriptors: accept with the spare and close at
                //  once, so the peer learns it and the backlog drains.
                close (self->spare_fd);
                fd = accept (self->listen_fd, NULL, NULL);
                if (fd >= 0)
                    close (fd);
                self->spare_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
                if (self->handler.rejected)
                    self->handler.rejected (self->arg, "?", "fd-limit");
                continue;
            }
            break;          //  EAGAIN: accepted everything waiting
        }
        channel_conn_t *c = (channel_conn_t *) zmalloc (sizeof (channel_conn_t));
        c->channel = self;
        c->fd = fd;
        char port [8] = "";
        if (addr.ss_family == AF_INET) {
            struct sockaddr_in *in = (struct sockaddr_in *) &addr;
            inet_ntop (AF_INET, &in->sin_addr, c->ip, sizeof c->ip);
            snprintf (port, sizeof port, "%u", ntohs (in->sin_port));
        }
        else {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &addr;
            inet_ntop (AF_INET6, &in6->sin6_addr, c->ip, sizeof c->ip);
            snprintf (port, sizeof port, "%u", ntohs (in6->sin6_port));
        }
        snprintf (c->remote, sizeof c->remote, "%s:%s", c->ip, port);
        const char *reject = NULL;
        if (self->handshakes >= self->config.max_handshakes)
            reject = "handshake-cap";
        else
        if ((intptr_t) zhashx_lookup (self->per_source, c->ip) >= self->config.max_per_source)
            reject = "source-cap";
        if (reject || fd >= self->conns_size) {
            if (self->handler.rejected)
                self->handler.rejected (self->arg, c->remote, reject? reject: "fd-limit");
            close (fd);
            free (c);
            continue;
        }
        int one = 1;
        setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->serial = ++self->next_serial;
        c->scheduled = INT64_MAX;
        c->conn = conn_new (&self->config.conn, ep_mono_ms ());
        c->reader = ep_frame_reader_new (EP_FRAME_PREJOIN_CAP);
        ep_frame_reader_set_timeout (c->reader, self->config.frame_timeout_ms);
        c->out = ep_frame_queue_new (self->config.out_cap);
        c->ssl = SSL_new (self->ctx);
        EP_ASSERT (c->ssl);
        SSL_set_fd (c->ssl, fd);
        SSL_set_accept_state (c->ssl);
        SSL_set_mode (c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
                              | SSL_MODE_RELEASE_BUFFERS);
        c->handshaking = c->counted = true;
        self->handshakes++;
        s_source_add (self, c, 1);
        struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
        EP_ASSERT (epoll_ctl (self->epoll_fd, EPOLL_CTL_ADD, fd, &ev) == 0);
        self->conns [fd] = c;
        self->count++;
        s_schedule (c);
    }
}

//  -------------------------------------------------------------------------

channel_t *
channel_new (const char *address, SSL_CTX *ctx, const channel_config_t *config,
             const channel_handler_t *handler, void *arg, char *err, size_t errlen)
{
    char host [128];
    const char *colon = strrchr (address, ':');
    if (!colon || (size_t) (colon - address) >= sizeof host) {
        snprintf (err, errlen, "channel address \"%s\": use host:port", address);
        return NULL;
    }
    memcpy (host, address, colon - address);
    host [colon - address] = 0;
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) atoi (colon + 1)) };
    if (streq (host, "*") || streq (host, "0.0.0.0"))
        addr.sin_addr.s_addr = htonl (INADDR_ANY);
    else
    if (inet_pton (AF_INET, host, &addr.sin_addr) != 1) {
        snprintf (err, errlen, "channel address \"%s\": the host must be an IPv4 address or *", address);
        return NULL;
    }
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind (fd, (struct sockaddr *) &addr, sizeof addr) != 0 || listen (fd, 4096) != 0) {
        snprintf (err, errlen, "cannot listen on %s: %s; is another process using it?",
                  address, strerror (errno));
        if (fd >= 0)
            close (fd);
        return NULL;
    }
    socklen_t len = sizeof addr;
    getsockname (fd, (struct sockaddr *) &addr, &len);

    channel_t *self = (channel_t *) zmalloc (sizeof (channel_t));
    self->config = *config;
    self->handler = *handler;
    self->arg = arg;
    self->ctx = ctx;
    self->listen_fd = fd;
    self->port = ntohs (addr.sin_port);
    self->spare_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
    struct rlimit limit;
    getrlimit (RLIMIT_NOFILE, &limit);
    self->conns_size = limit.rlim_cur > 1048576? 1048576: (int) limit.rlim_cur;
    self->conns = (channel_conn_t **) calloc (self->conns_size, sizeof (channel_conn_t *));
    self->dead = zlistx_new ();
    self->per_source = zhashx_new ();
    self->epoll_fd = epoll_create1 (EPOLL_CLOEXEC);
    EP_ASSERT (self->conns && self->epoll_fd >= 0);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
    EP_ASSERT (epoll_ctl (self->epoll_fd, EPOLL_CTL_ADD, fd, &ev) == 0);
    return self;
}

void
channel_destroy (channel_t **self_p)
{
    channel_t *self = *self_p;
    if (!self)
        return;
    for (int fd = 0; fd < self->conns_size; fd++)
        if (self->conns [fd])
            s_conn_free (self->conns [fd]);
    channel_conn_t *c;
    while ((c = (channel_conn_t *) zlistx_detach (self->dead, NULL)))
        s_conn_free (c);
    zlistx_destroy (&self->dead);
    zhashx_destroy (&self->per_source);
    if (self->listen_fd >= 0)
        close (self->listen_fd);
    if (self->spare_fd >= 0)
        close (self->spare_fd);
    close (self->epoll_fd);
    free (self->conns);
    free (self->heap);
    free (self);
    *self_p = NULL;
}

int
channel_fd (channel_t *self)
{
    return self->epoll_fd;
}

int
channel_port (channel_t *self)
{
    return self->port;
}

int64_t
channel_deadline (channel_t *self)
{
    return self->heap_size? self->heap [0].deadline: INT64_MAX;
}

void
channel_process (channel_t *self)
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
            channel_conn_t *c = fd < self->conns_size? self->conns [fd]: NULL;
            if (!c)
                continue;
            if (!c->tls_done) {
                s_handshake (c, now);
                if (!c->closed && c->tls_done)
                    s_read (c, now);    //  the Hello may have come with the handshake
                continue;
            }
            if ((events [i].events & EPOLLOUT) && !c->closed)
                s_flush (c);
            if ((events [i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !c->closed)
                s_read (c, now);
        }
    } while (n == EVENTS_PER_WAIT);

    int64_t now = ep_mono_ms ();
    while (self->heap_size && self->heap [0].deadline <= now) {
        s_timer_t timer = s_heap_pop (self);
        channel_conn_t *c = timer.fd < self->conns_size? self->conns [timer.fd]: NULL;
        if (!c || c->serial != timer.serial || c->scheduled != timer.deadline)
            continue;       //  stale: closed, or rescheduled since
        c->scheduled = INT64_MAX;
        conn_actions_t actions;
        if (ep_frame_reader_expire (c->reader, now) != 0) {
            conn_bad_input (c->conn, "slow-frame", now, &actions);
            s_act (c, &actions);
            continue;
        }
        conn_tick (c->conn, now, &actions);
        s_act (c, &actions);
    }
    channel_conn_t *dead;
    while ((dead = (channel_conn_t *) zlistx_detach (self->dead, NULL)))
        s_conn_free (dead);
}

channel_conn_t *
channel_find (channel_t *self, const char *role, const char *id)
{
    //  A linear scan: used per command and per relay reply, with at most a
    //  few thousand routers per instance. The watchdog keeps its own index
    //  of joined routers for hot paths.
    for (int fd = 0; fd < self->conns_size; fd++) {
        channel_conn_t *c = self->conns [fd];
        if (c && !c->closed && conn_state (c->conn) >= CONN_JOINED
        &&  conn_state (c->conn) < CONN_CLOSED
        &&  streq (conn_role (c->conn), role) && streq (conn_id (c->conn), id))
            return c;
    }
    return NULL;
}

int
channel_send (channel_t *self, const char *role, const char *id, const Ep__Frame *frame)
{
    channel_conn_t *c = channel_find (self, role, id);
    return c? channel_conn_send (c, frame): -1;
}

void
channel_drain (channel_t *self, channel_conn_t *c, const char *reason, bool reconnect)
{
    (void) self;
    conn_actions_t actions;
    conn_drain (c->conn, reason, reconnect, ep_mono_ms (), &actions);
    s_act (c, &actions);
}

void
channel_close (channel_t *self, channel_conn_t *c, const char *reason)
{
    (void) self;
    s_close (c, reason);
}

size_t
channel_close_revoked (channel_t *self)
{
    size_t closed = 0;
    for (int fd = 0; fd < self->conns_size; fd++) {
        channel_conn_t *c = self->conns [fd];
        if (c && !c->closed && c->tls_done && ep_pki_peer_revoked (self->ctx, c->ssl)) {
            conn_actions_t actions;
            conn_revoked (c->conn, ep_mono_ms (), &actions);
            s_act (c, &actions);
            closed++;
        }
    }
    return closed;
}

void
channel_stop_accepting (channel_t *self)
{
    if (self->listen_fd >= 0) {
        epoll_ctl (self->epoll_fd, EPOLL_CTL_DEL, self->listen_fd, NULL);
        close (self->listen_fd);
        self->listen_fd = -1;
    }
}

channel_conn_t *
channel_first (channel_t *self)
{
    self->iter = -1;
    return channel_next (self);
}

channel_conn_t *
channel_next (channel_t *self)
{
    while (++self->iter < self->conns_size)
        if (self->conns [self->iter])
            return self->conns [self->iter];
    return NULL;
}

size_t
channel_size (channel_t *self)
{
    return self->count;
}

size_t
channel_buffered (channel_t *self)
{
    return self->buffered;
}

conn_t *
channel_conn_state (channel_conn_t *c)
{
    return c->conn;
}

const char *
channel_conn_remote (channel_conn_t *c)
{
    return c->remote;
}
