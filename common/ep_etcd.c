/*  ep_etcd.c: an etcd v3 client over its JSON gateway, with libcurl multi. */
#include "ep_etcd.h"
#include "ep_backoff.h"
#include <curl/curl.h>

typedef struct _s_req_t s_req_t;

struct _ep_etcd_t {
    CURLM *multi;                       //  every transfer in flight
    char **endpoints;                   //  base URLs, no trailing slash
    size_t nendpoints;
    size_t current;                     //  index requests go to now
    uint64_t failovers;                 //  moves to another endpoint
    ep_etcd_config_t config;            //  timeouts (strings copied below)
    char *ca_file, *cert_file, *key_file;
    struct { curl_socket_t fd; int what; } socks [EP_ETCD_MAX_FDS];
    int nsocks;                         //  sockets curl asked us to watch
    int64_t timer_at;                   //  zclock_mono of curl's timer, -1 none
    s_req_t *requests;                  //  in flight (list)
    int in_callback;                    //  > 0 while a watch callback runs
};

struct _s_req_t {
    ep_etcd_t *client;
    s_req_t *next;                      //  in client->requests
    ep_etcd_kind_t kind;
    char *body;                         //  request JSON
    CURL *easy;                         //  NULL between attempts
    char *response;                     //  body so far (a watch: the partial line)
    size_t scanned;                     //  a stream's bytes searched for a newline
    size_t size, cap;
    char url [512];
    size_t endpoint;                    //  index of the endpoint of this attempt
    ep_etcd_fn *fn;
    void *arg;
    bool idempotent;                    //  may be retried after being sent
    int tries;                          //  endpoints tried for this request
    //  streams (a watch, a snapshot): the response is lines, each delivered
    bool is_stream;
    bool is_watch;
    bool dead;                          //  canceled from a callback
    bool ended;                         //  etcd canceled it: not resumed
    bool pending;                       //  set up inside a curl callback; added later
    ep_etcd_watch_req_t wreq;           //  the request (key, range_end copied)
    int64_t last_revision;              //  highest revision delivered
    int64_t heard_at;                   //  zclock_mono of the last message
    char *error;                        //  why a watch line failed, for the end
    int quiet_tries;                    //  resumes since the last message heard
    ep_backoff_t backoff;               //  between rounds of every endpoint
    int64_t start_at;                   //  zclock_mono of a delayed resume, 0 none
};

struct _ep_etcd_watch_t {
    s_req_t req;
};

static void s_start (s_req_t *req);

//  req's endpoint failed: move on, unless another request already did
//  (forty requests failing on one dead member move the client once).
static void
s_failover (s_req_t *req, const char *why)
{
    ep_etcd_t *self = req->client;
    if (self->nendpoints > 1 && req->endpoint == self->current) {
        self->current = (self->current + 1) % self->nendpoints;
        self->failovers++;
        zsys_debug ("etcd: %s; moving to %s", why, self->endpoints [self->current]);
    }
}

//  ---------------------------------------------------------------------
//  curl callbacks

static int
s_socket_cb (CURL *easy, curl_socket_t fd, int what, void *arg, void *sockp)
{
    (void) easy, (void) sockp;
    ep_etcd_t *self = arg;
    int i;
    for (i = 0; i < self->nsocks; i++)
        if (self->socks [i].fd == fd)
            break;
    if (what == CURL_POLL_REMOVE) {
        if (i < self->nsocks)
            self->socks [i] = self->socks [--self->nsocks];
        return 0;
    }
    if (i == self->nsocks) {
        if (self->nsocks == EP_ETCD_MAX_FDS)
            return -1;                  //  curl fails that transfer
        self->nsocks++;
    }
    self->socks [i].fd = fd;
    self->socks [i].what = what;
    return 0;
}

static int
s_timer_cb (CURLM *multi, long timeout_ms, void *arg)
{
    (void) multi;
    ep_etcd_t *self = arg;
    self->timer_at = timeout_ms < 0? -1: zclock_mono () + timeout_ms;
    return 0;
}

static bool
s_append (s_req_t *req, const char *data, size_t size)
{
    if (req->size + size > EP_ETCD_MAX_BODY)
        return false;
    if (req->size + size + 1 > req->cap) {
        size_t cap = req->cap? req->cap: 4096;
        while (cap < req->size + size + 1)
            cap *= 2;
        char *grown = realloc (req->response, cap);
        if (!grown)
            return false;
        req->response = grown;
        req->cap = cap;
    }
    memcpy (req->response + req->size, data, size);
    req->size += size;
    req->response [req->size] = 0;
    return true;
}

//  One line of a stream: decoded and handed to the caller.
static void
s_stream_line (s_req_t *req, const char *line, size_t size)
{
    char err [256];
    ep_etcd_reply_t *reply = ep_etcd_decode (req->kind, line, size, err, sizeof err);
    req->heard_at = zclock_mono ();
    req->quiet_tries = 0;
    ep_backoff_reset (&req->backoff);
    if (!reply) {
        //  A line we cannot read: end this stream (a watch resumes elsewhere).
        zsys_warning ("etcd: stream from %s: %s", req->url, err);
        free (req->error);
        req->error = strdup (err);
        return;
    }
    if (!req->is_watch) {
        //  A snapshot: an error line ends it; chunks go to the caller.
        if (reply->code) {
            free (req->error);
            req->error = zsys_sprintf ("etcd error %d: %s", reply->code, reply->error);
        }
        else {
            req->client->in_callback++;
            req->fn (req->arg, reply, NULL);
            req->client->in_callback--;
        }
        ep_etcd_reply_destroy (&reply);
        return;
    }
    if (reply->nevents)
        req->last_revision = reply->events [reply->nevents - 1].kv.mod_revision;
    else
    if (reply->header.revision > req->last_revision
    &&  (reply->progress || (reply->created && req->wreq.start_revision == 0)))
        req->last_revision = reply->header.revision;
    req->client->in_callback++;
    req->fn (req->arg, reply, NULL);
    req->client->in_callback--;
    //  Canceled by etcd (a compacted start revision): resuming would fail
    //  the same way, so the stream ends here and the caller re-reads.
    if (reply->canceled)
        req->ended = true;
    ep_etcd_reply_destroy (&reply);
}

static size_t
s_write_cb (char *data, size_t one, size_t size, void *arg)
{
    s_req_t *req = arg;
    (void) one;
    if (!req->is_stream)
        return s_append (req, data, size)? size: 0;
    if (!s_append (req, data, size))
        return 0;
    //  Deliver every complete line; keep the rest for the next chunk. Only
    //  the new bytes are searched: a watch message of many megabytes comes
    //  in thousands of chunks, and searching it whole each time is quadratic.
    size_t start = 0;
    for (size_t i = req->scanned; i < req->size && !req->dead && !req->ended && !req->error; i++)
        if (req->response [i] == '\n') {
            if (i > start)
                s_stream_line (req, req->response + start, i - start);
            start = i + 1;
        }
    if (req->dead || req->ended || req->error)
        return 0;                       //  aborts the transfer
    memmove (req->response, req->response + start, req->size - start);
    req->size -= start;
    req->scanned = req->size;           //  what is left holds no newline
    return size;
}

//  ---------------------------------------------------------------------
//  Requests

static void
s_easy_setup (s_req_t *req)
{
    ep_etcd_t *self = req->client;
    req->endpoint = self->current;
    snprintf (req->url, sizeof req->url, "%s%s", self->endpoints [self->current],
              ep_etcd_path (req->kind));
    CURL *easy = curl_easy_init ();
    assert (easy);
    curl_easy_setopt (easy, CURLOPT_URL, req->url);
    curl_easy_setopt (easy, CURLOPT_POSTFIELDS, req->body);
    curl_easy_setopt (easy, CURLOPT_WRITEFUNCTION, s_write_cb);
    curl_easy_setopt (easy, CURLOPT_WRITEDATA, req);
    curl_easy_setopt (easy, CURLOPT_PRIVATE, req);
    curl_easy_setopt (easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt (easy, CURLOPT_CONNECTTIMEOUT_MS, (long) self->config.connect_timeout_ms);
    if (!req->is_stream)
        curl_easy_setopt (easy, CURLOPT_TIMEOUT_MS, (long) self->config.timeout_ms);
    else
    if (!req->is_watch) {
        //  A snapshot takes as long as the database is large: it fails
        //  when it stalls instead.
        curl_easy_setopt (easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt (easy, CURLOPT_LOW_SPEED_TIME, (long) (self->config.timeout_ms + 999) / 1000);
    }
    static struct curl_slist *s_headers;
    static struct curl_slist *s_watch_headers;
    if (!s_headers) {
        s_headers = curl_slist_append (NULL, "Content-Type: application/json");
        s_watch_headers = curl_slist_append (NULL, "Content-Type: application/json");
        s_watch_headers = curl_slist_append (s_watch_headers, "Grpc-Metadata-hasleader: true");
    }
    curl_easy_setopt (easy, CURLOPT_HTTPHEADER, req->is_watch? s_watch_headers: s_headers);
    if (self->ca_file)
        curl_easy_setopt (easy, CURLOPT_CAINFO, self->ca_file);
    if (self->cert_file) {
        curl_easy_setopt (easy, CURLOPT_SSLCERT, self->cert_file);
        curl_easy_setopt (easy, CURLOPT_SSLKEY, self->key_file);
    }
    req->easy = easy;
}

static void
s_start (s_req_t *req)
{
    req->size = 0;
    req->scanned = 0;
    s_easy_setup (req);
    req->tries++;
    req->heard_at = zclock_mono ();
    //  curl refuses handles added from inside its own callbacks (a watch
    //  callback that sends a request): those start at the next dispatch.
    if (req->client->in_callback) {
        req->pending = true;
        return;
    }
    CURLMcode rc = curl_multi_add_handle (req->client->multi, req->easy);
    if (rc != CURLM_OK)
        zsys_error ("etcd: cannot start a request to %s: %s", req->url, curl_multi_strerror (rc));
}

static void
s_unlink (s_req_t *req)
{
    s_req_t **p = &req->client->requests;
    while (*p && *p != req)
        p = &(*p)->next;
    if (*p)
        *p = req->next;
    if (req->easy) {
        if (!req->pending)
            curl_multi_remove_handle (req->client->multi, req->easy);
        curl_easy_cleanup (req->easy);
        req->easy = NULL;
    }
}

static void
s_req_free (s_req_t *req)
{
    free (req->body);
    free (req->response);
    free (req->error);
    free ((void *) req->wreq.key.data);
    free ((void *) req->wreq.range_end.data);
    free (req);
}

static int
s_submit (ep_etcd_t *self, ep_etcd_kind_t kind, char *body, bool idempotent,
          ep_etcd_fn *fn, void *arg)
{
    if (!body)
        return -1;
    s_req_t *req = calloc (1, sizeof *req);
    assert (req);
    req->client = self;
    req->kind = kind;
    req->body = body;
    req->fn = fn;
    req->arg = arg;
    req->idempotent = idempotent;
    req->next = self->requests;
    self->requests = req;
    s_start (req);
    return 0;
}

int
ep_etcd_range (ep_etcd_t *self, const ep_etcd_range_t *req, ep_etcd_fn *fn, void *arg)
{
    return s_submit (self, EP_ETCD_RANGE, ep_etcd_encode_range (req), true, fn, arg);
}

int
ep_etcd_put (ep_etcd_t *self, const ep_etcd_put_t *req, ep_etcd_fn *fn, void *arg)
{
    return s_submit (self, EP_ETCD_PUT, ep_etcd_encode_put (req), false, fn, arg);
}

int
ep_etcd_delete (ep_etcd_t *self, const ep_etcd_delete_t *req, ep_etcd_fn *fn, void *arg)
{
    return s_submit (self, EP_ETCD_DELETE, ep_etcd_encode_delete (req), false, fn, arg);
}

int
ep_etcd_txn (ep_etcd_t *self, const ep_etcd_txn_t *req, ep_etcd_fn *fn, void *arg,
             char *err, size_t errlen)
{
    return s_submit (self, EP_ETCD_TXN, ep_etcd_encode_txn (req, err, errlen), false, fn, arg);
}

int
ep_etcd_compact (ep_etcd_t *self, int64_t revision, ep_etcd_fn *fn, void *arg)
{
    return s_submit (self, EP_ETCD_COMPACT, ep_etcd_encode_compact (revision), true, fn, arg);
}

int
ep_etcd_lease_grant (ep_etcd_t *self, int64_t ttl_s, ep_etcd_fn *fn, void *arg)
{
    return s_submit (self, EP_ETCD_LEASE_GRANT, ep_etcd_encode_lease_grant (ttl_s), false,
                     fn, arg);
}

int
ep_etcd_lease_keepalive (ep_etcd_t *self, int64_t id, ep_etcd_fn *fn, void *arg)
{
    return s_submit (self, EP_ETCD_LEASE_KEEPALIVE, ep_etcd_encode_lease_id (id), true, fn, arg);
}

int
ep_etcd_lease_revoke (ep_etcd_t *self, int64_t id, ep_etcd_fn *fn, void *arg)
{
    return s_submit (self, EP_ETCD_LEASE_REVOKE, ep_etcd_encode_lease_id (id), true, fn, arg);
}

int
ep_etcd_lease_ttl (ep_etcd_t *self, int64_t id, ep_etcd_fn *fn, void *arg)
{
    return s_submit (self, EP_ETCD_LEASE_TTL, ep_etcd_encode_lease_id (id), true, fn, arg);
}

int
ep_etcd_status (ep_etcd_t *self, ep_etcd_fn *fn, void *arg)
{
    return s_submit (self, EP_ETCD_STATUS, strdup ("{}"), true, fn, arg);
}

int
ep_etcd_snapshot (ep_etcd_t *self, ep_etcd_fn *fn, void *arg)
{
    s_req_t *req = calloc (1, sizeof *req);
    assert (req);
    req->client = self;
    req->kind = EP_ETCD_SNAPSHOT;
    req->is_stream = true;
    req->body = strdup ("{}");
    req->fn = fn;
    req->arg = arg;
    req->next = self->requests;
    self->requests = req;
    s_start (req);
    return 0;
}

static ep_etcd_bytes_t
s_bytes_dup (ep_etcd_bytes_t bytes)
{
    if (!bytes.data && !bytes.size)
        return bytes;
    void *copy = malloc (bytes.size + 1);
    assert (copy);
    memcpy (copy, bytes.data, bytes.size);
    return (ep_etcd_bytes_t) { copy, bytes.size };
}

ep_etcd_watch_t *
ep_etcd_watch (ep_etcd_t *self, const ep_etcd_watch_req_t *wreq, ep_etcd_fn *fn, void *arg)
{
    ep_etcd_watch_t *watch = calloc (1, sizeof *watch);
    assert (watch);
    s_req_t *req = &watch->req;
    req->client = self;
    req->kind = EP_ETCD_WATCH;
    req->is_stream = true;
    req->is_watch = true;
    req->wreq = *wreq;
    req->wreq.key = s_bytes_dup (wreq->key);
    req->wreq.range_end = s_bytes_dup (wreq->range_end);
    req->wreq.progress_notify = true;
    req->last_revision = wreq->start_revision > 0? wreq->start_revision - 1: 0;
    req->body = ep_etcd_encode_watch (&req->wreq);
    req->fn = fn;
    req->arg = arg;
    req->backoff = ep_backoff (100, 2000);
    req->next = self->requests;
    self->requests = req;
    s_start (req);
    return watch;
}

void
ep_etcd_watch_cancel (ep_etcd_watch_t **watch_p)
{
    assert (watch_p);
    ep_etcd_watch_t *watch = *watch_p;
    if (!watch)
        return;
    *watch_p = NULL;
    if (watch->req.client->in_callback) {
        //  Inside this client's write callback: the transfer is aborted
        //  on return and freed when curl reports it done.
        watch->req.dead = true;
        return;
    }
    s_unlink (&watch->req);
    s_req_free (&watch->req);
}

//  ---------------------------------------------------------------------
//  Completions

//  A watch's stream ended (or went silent): resume from the revision after
//  the last delivered one, on the next endpoint.
static void
s_watch_resume (s_req_t *req, const char *why)
{
    ep_etcd_t *self = req->client;
    s_failover (req, why);
    if (req->easy) {
        curl_multi_remove_handle (self->multi, req->easy);
        curl_easy_cleanup (req->easy);
        req->easy = NULL;
    }
    free (req->body);
    req->wreq.start_revision = req->last_revision + 1;
    req->body = ep_etcd_encode_watch (&req->wreq);
    free (req->error);
    req->error = NULL;
    //  Every endpoint tried without a word: wait before the next round, so
    //  a cluster that is down costs no busy loop.
    if (++req->quiet_tries >= (int) self->nendpoints)
        req->start_at = zclock_mono () + ep_backoff_next (&req->backoff);
    else
        s_start (req);
}

static bool
s_transport_retry (s_req_t *req, CURLcode code)
{
    bool unsent = code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST
               || code == CURLE_SSL_CONNECT_ERROR;
    return (unsent || req->idempotent) && req->tries < (int) req->client->nendpoints;
}

static void
s_complete (ep_etcd_t *self, s_req_t *req, CURLcode code)
{
    long status = 0;
    curl_easy_getinfo (req->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle (self->multi, req->easy);
    curl_easy_cleanup (req->easy);
    req->easy = NULL;
    if (req->is_watch) {
        if (req->dead) {
            s_unlink (req);
            s_req_free (req);
        }
        else
        if (!req->ended) {
            char why [1024];
            snprintf (why, sizeof why, "watch on %.400s ended (%.500s)", req->url,
                      req->error? req->error: curl_easy_strerror (code));
            s_watch_resume (req, why);
        }
        return;
    }
    char err [1024];
    if (req->is_stream) {
        //  A snapshot: whole if the transfer ended well (its last line may
        //  lack the newline).
        if (code == CURLE_OK && !req->error && req->size > 0)
            s_stream_line (req, req->response, req->size);
        if (code == CURLE_OK && !req->error && status == 200)
            *err = 0;
        else
            snprintf (err, sizeof err, "snapshot from %.400s cut short: %.500s", req->url,
                      req->error? req->error: code != CURLE_OK? curl_easy_strerror (code)
                    : "HTTP status not 200");
        if (*err)
            s_failover (req, err);
        s_unlink (req);
        req->fn (req->arg, NULL, *err? err: NULL);
        s_req_free (req);
        return;
    }
    ep_etcd_reply_t *reply = NULL;
    if (code != CURLE_OK) {
        snprintf (err, sizeof err, "%.400s: %.200s", req->url, curl_easy_strerror (code));
        s_failover (req, err);
        if (s_transport_retry (req, code)) {
            s_start (req);
            return;
        }
        if (!req->idempotent && code != CURLE_COULDNT_CONNECT)
            snprintf (err + strlen (err), sizeof err - strlen (err), " (outcome unknown)");
    }
    else {
        reply = ep_etcd_decode (req->kind, req->response? req->response: "",
                                req->size, err, sizeof err);
        if (!reply)
            snprintf (err + strlen (err), sizeof err - strlen (err), " (HTTP %ld from %.400s)",
                      status, req->url);
        else
        if (reply->code == EP_ETCD_UNAVAILABLE) {
            s_failover (req, reply->error);
            if (req->idempotent && req->tries < (int) self->nendpoints) {
                ep_etcd_reply_destroy (&reply);
                s_start (req);
                return;
            }
        }
    }
    s_unlink (req);
    req->fn (req->arg, reply, reply? NULL: err);
    ep_etcd_reply_destroy (&reply);
    s_req_free (req);
}

static void
s_reap (ep_etcd_t *self)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read (self->multi, &left)))
        if (msg->msg == CURLMSG_DONE) {
            s_req_t *req = NULL;
            curl_easy_getinfo (msg->easy_handle, CURLINFO_PRIVATE, (char **) &req);
            s_complete (self, req, msg->data.result);
        }
}

//  Watches silent for longer than watch_idle_ms resume elsewhere.
static void
s_check_watches (ep_etcd_t *self)
{
    if (self->config.watch_idle_ms <= 0)
        return;
    int64_t now = zclock_mono ();
    for (s_req_t *req = self->requests; req; req = req->next)
        if (req->is_watch && req->easy && !req->dead
        &&  now - req->heard_at > self->config.watch_idle_ms)
            s_watch_resume (req, "watch silent past its idle limit");
}

int
ep_etcd_pollitems (ep_etcd_t *self, zmq_pollitem_t *items, int max)
{
    int n = 0;
    for (int i = 0; i < self->nsocks && n < max; i++) {
        short events = 0;
        if (self->socks [i].what & CURL_POLL_IN)
            events |= ZMQ_POLLIN;
        if (self->socks [i].what & CURL_POLL_OUT)
            events |= ZMQ_POLLOUT;
        items [n++] = (zmq_pollitem_t) { NULL, self->socks [i].fd, events, 0 };
    }
    return n;
}

long
ep_etcd_timeout (ep_etcd_t *self)
{
    int64_t now = zclock_mono ();
    int64_t at = self->timer_at;
    for (s_req_t *req = self->requests; req; req = req->next) {
        if (req->pending || req->dead)
            return 0;
        if (req->start_at && (at < 0 || req->start_at < at))
            at = req->start_at;
    }
    if (self->config.watch_idle_ms > 0)
        for (s_req_t *req = self->requests; req; req = req->next)
            if (req->is_watch && req->easy) {
                int64_t due = req->heard_at + self->config.watch_idle_ms + 1;
                if (at < 0 || due < at)
                    at = due;
            }
    if (at < 0)
        return -1;
    return at <= now? 0: (long) (at - now);
}

void
ep_etcd_dispatch (ep_etcd_t *self, zmq_pollitem_t *items, int nitems)
{
    int running;
    for (int i = 0; i < nitems; i++) {
        int flags = 0;
        if (items [i].revents & ZMQ_POLLIN)
            flags |= CURL_CSELECT_IN;
        if (items [i].revents & ZMQ_POLLOUT)
            flags |= CURL_CSELECT_OUT;
        if (items [i].revents & ZMQ_POLLERR)
            flags |= CURL_CSELECT_ERR;
        if (flags)
            curl_multi_socket_action (self->multi, items [i].fd, flags, &running);
    }
    if (self->timer_at >= 0 && zclock_mono () >= self->timer_at) {
        self->timer_at = -1;
        curl_multi_socket_action (self->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    s_reap (self);
    //  Watches canceled from another's callback: their transfer is idle.
    s_req_t *next;
    for (s_req_t *req = self->requests; req; req = next) {
        next = req->next;
        if (req->dead) {
            s_unlink (req);
            s_req_free (req);
        }
        else
        if (req->start_at && zclock_mono () >= req->start_at) {
            req->start_at = 0;
            s_start (req);
        }
        else
        if (req->pending) {
            req->pending = false;
            curl_multi_add_handle (self->multi, req->easy);
            curl_multi_socket_action (self->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        }
    }
    s_check_watches (self);
}

int
ep_etcd_wait (ep_etcd_t *self, long timeout_ms)
{
    zmq_pollitem_t items [EP_ETCD_MAX_FDS];
    int n = ep_etcd_pollitems (self, items, EP_ETCD_MAX_FDS);
    long t = ep_etcd_timeout (self);
    if (t < 0 || t > timeout_ms)
        t = timeout_ms;
    zmq_poll (items, n, t);
    ep_etcd_dispatch (self, items, n);
    return ep_etcd_in_flight (self);
}

int
ep_etcd_in_flight (ep_etcd_t *self)
{
    int n = 0;
    for (s_req_t *req = self->requests; req; req = req->next)
        n++;
    return n;
}

const char *
ep_etcd_endpoint (ep_etcd_t *self)
{
    return self->endpoints [self->current];
}

uint64_t
ep_etcd_failovers (ep_etcd_t *self)
{
    return self->failovers;
}

//  ---------------------------------------------------------------------

static int
s_parse_endpoints (ep_etcd_t *self, const char *list, char *err, size_t errlen)
{
    char *copy = strdup (list? list: "");
    char *save = NULL;
    for (char *item = strtok_r (copy, ", ", &save); item; item = strtok_r (NULL, ", ", &save)) {
        size_t len = strlen (item);
        while (len && item [len - 1] == '/')
            item [--len] = 0;
        if (len == 0 || len > 400)
            continue;
        char *url = malloc (len + 16);
        assert (url);
        snprintf (url, len + 16, "%s%s", strstr (item, "://")? "": "http://", item);
        self->endpoints = realloc (self->endpoints, (self->nendpoints + 1) * sizeof (char *));
        assert (self->endpoints);
        self->endpoints [self->nendpoints++] = url;
    }
    free (copy);
    if (self->nendpoints == 0)
        return ep_errorf (err, errlen, "no etcd endpoint in \"%s\": give a comma-separated "
                          "list such as http://127.0.0.1:2379", list? list: "");
    return 0;
}

static int
s_check_file (const char *what, const char *path, char *err, size_t errlen)
{
    if (path && access (path, R_OK) != 0)
        return ep_errorf (err, errlen, "etcd %s %s: %s", what, path, strerror (errno));
    return 0;
}

ep_etcd_t *
ep_etcd_new (const ep_etcd_config_t *config, char *err, size_t errlen)
{
    static bool s_curl_ready;
    if (!s_curl_ready) {
        curl_global_init (CURL_GLOBAL_DEFAULT);
        s_curl_ready = true;
    }
    if (s_check_file ("CA file", config->ca_file, err, errlen)
    ||  s_check_file ("client certificate", config->cert_file, err, errlen)
    ||  s_check_file ("client key", config->key_file, err, errlen))
        return NULL;
    if (!config->cert_file != !config->key_file) {
        ep_errorf (err, errlen, "etcd client TLS needs both a certificate and its key");
        return NULL;
    }
    ep_etcd_t *self = calloc (1, sizeof *self);
    assert (self);
    if (s_parse_endpoints (self, config->endpoints, err, errlen)) {
        ep_etcd_destroy (&self);
        return NULL;
    }
    self->config = *config;
    if (self->config.timeout_ms <= 0)
        self->config.timeout_ms = 5000;
    if (self->config.connect_timeout_ms <= 0)
        self->config.connect_timeout_ms = 1000;
    self->ca_file = config->ca_file? strdup (config->ca_file): NULL;
    self->cert_file = config->cert_file? strdup (config->cert_file): NULL;
    self->key_file = config->key_file? strdup (config->key_file): NULL;
    self->timer_at = -1;
    self->multi = curl_multi_init ();
    assert (self->multi);
    //  One connection a request in flight (the gateway is HTTP/1.1): beyond
    //  the sockets the caller polls, curl fails a transfer (the socket
    //  callback refuses it), so requests past the limit wait in curl's queue.
    curl_multi_setopt (self->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long) EP_ETCD_MAX_FDS);
    curl_multi_setopt (self->multi, CURLMOPT_SOCKETFUNCTION, s_socket_cb);
    curl_multi_setopt (self->multi, CURLMOPT_SOCKETDATA, self);
    curl_multi_setopt (self->multi, CURLMOPT_TIMERFUNCTION, s_timer_cb);
    curl_multi_setopt (self->multi, CURLMOPT_TIMERDATA, self);
    return self;
}

void
ep_etcd_destroy (ep_etcd_t **self_p)
{
    assert (self_p);
    ep_etcd_t *self = *self_p;
    if (!self)
        return;
    while (self->requests) {
        s_req_t *req = self->requests;
        s_unlink (req);
        s_req_free (req);
    }
    if (self->multi)
        curl_multi_cleanup (self->multi);
    for (size_t i = 0; i < self->nendpoints; i++)
        free (self->endpoints [i]);
    free (self->endpoints);
    free (self->ca_file);
    free (self->cert_file);
    free (self->key_file);
    free (self);
    *self_p = NULL;
}
