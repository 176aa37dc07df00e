/*  ep_etcd.h: an etcd v3 client over its JSON gateway, with libcurl.

    Requests go out at once and complete later: each takes a callback
    that gets the decoded reply (ep_etcd_codec.h; an etcd error is a reply
    with code set) or, when no reply could be had or decoded, an error
    text. Several requests are in flight at a time on reused connections
    (curl multi); the client never blocks. It is driven from the caller's
    poll loop:

        zmq_pollitem_t items [1 + EP_ETCD_MAX_FDS];
        items [0] = (zmq_pollitem_t) { zsock_resolve (router), 0, ZMQ_POLLIN, 0 };
        int n = 1 + ep_etcd_pollitems (etcd, items + 1, EP_ETCD_MAX_FDS);
        zmq_poll (items, n, min (my_timeout, ep_etcd_timeout (etcd)));
        ep_etcd_dispatch (etcd, items + 1, n - 1);     //  runs callbacks

    or, in a tool or a test, ep_etcd_wait (etcd, ms) alone.

    Endpoints are a list; the client sticks to one and moves to the next
    when a request cannot reach it or etcd answers UNAVAILABLE (no leader).
    Reads (range, status, lease time-to-live, keepalive) are retried on
    each endpoint in turn; a write is retried only when it was never sent
    (connection refused), since its outcome is otherwise unknown: the
    caller sees "outcome unknown" and decides (the model's transactions
    compare revisions, so a re-run cannot apply twice).

    Watches send `Grpc-Metadata-hasleader: true` (a member cut off from
    its leader ends the stream instead of going silent) and ask for
    progress notifications; a watch whose stream ends, or that hears
    nothing for idle_ms, resumes on the next endpoint from the revision
    after the last one it delivered. A compaction past it is delivered
    (reply->canceled with compact_revision) and ends the watch.

    Callbacks may start requests and cancel watches, not destroy the client.
*/
#ifndef EP_ETCD_H_INCLUDED
#define EP_ETCD_H_INCLUDED

#include "ep_prelude.h"
#include "ep_etcd_codec.h"

//  At most this many sockets to poll at once (pollitems beyond are not
//  filled; curl waits on them at its next timeout).
#define EP_ETCD_MAX_FDS 64

typedef struct _ep_etcd_t ep_etcd_t;
typedef struct _ep_etcd_watch_t ep_etcd_watch_t;

typedef struct {
    const char *endpoints;              //  "http://127.0.0.1:2379,https://b:2379"
    const char *ca_file;                //  PEM CA for https endpoints (NULL: system)
    const char *cert_file;              //  client certificate (PEM), or NULL
    const char *key_file;               //  its key
    int64_t timeout_ms;                 //  per unary request; 0: 5000
    int64_t connect_timeout_ms;         //  per connection attempt; 0: 1000
    int64_t watch_idle_ms;              //  resume a silent watch after; 0: never
} ep_etcd_config_t;

//  A reply, or NULL with error saying what failed (reply and error are
//  valid only during the call).
typedef void (ep_etcd_fn) (void *arg, const ep_etcd_reply_t *reply, const char *error);

//  A client of the endpoints in config. NULL with err on a bad
//  configuration (no endpoint, an unreadable TLS file).
ep_etcd_t *
    ep_etcd_new (const ep_etcd_config_t *config, char *err, size_t errlen);

//  Drops every request in flight without calling its callback.
void
    ep_etcd_destroy (ep_etcd_t **self_p);

//  Unary calls: 0 once queued (fn is called exactly once later), -1 with
//  err if the request could not be encoded.
int
    ep_etcd_range (ep_etcd_t *self, const ep_etcd_range_t *req, ep_etcd_fn *fn, void *arg);
int
    ep_etcd_put (ep_etcd_t *self, const ep_etcd_put_t *req, ep_etcd_fn *fn, void *arg);
int
    ep_etcd_delete (ep_etcd_t *self, const ep_etcd_delete_t *req, ep_etcd_fn *fn, void *arg);
int
    ep_etcd_txn (ep_etcd_t *self, const ep_etcd_txn_t *req, ep_etcd_fn *fn, void *arg,
                 char *err, size_t errlen);
int
    ep_etcd_compact (ep_etcd_t *self, int64_t revision, ep_etcd_fn *fn, void *arg);
int
    ep_etcd_lease_grant (ep_etcd_t *self, int64_t ttl_s, ep_etcd_fn *fn, void *arg);
int
    ep_etcd_lease_keepalive (ep_etcd_t *self, int64_t id, ep_etcd_fn *fn, void *arg);
int
    ep_etcd_lease_revoke (ep_etcd_t *self, int64_t id, ep_etcd_fn *fn, void *arg);
int
    ep_etcd_lease_ttl (ep_etcd_t *self, int64_t id, ep_etcd_fn *fn, void *arg);
//  The status of the current endpoint's member (version, db size, alarms).
int
    ep_etcd_status (ep_etcd_t *self, ep_etcd_fn *fn, void *arg);

//  Streams a snapshot of the current endpoint's member (its database file,
//  as `etcdctl snapshot save` writes it: the file's bytes, then their
//  SHA-256): fn gets each chunk (reply->blob, blob_size), then once NULL
//  with error NULL when the stream ended whole, or NULL with why it did
//  not (the chunks so far are then no snapshot). Not retried elsewhere: the
//  caller starts again. A stream silent for timeout_ms fails.
int
    ep_etcd_snapshot (ep_etcd_t *self, ep_etcd_fn *fn, void *arg);

//  Starts a watch; fn gets each message (created, events, progress,
//  canceled) and, if the watch ends for good, NULL with the reason.
ep_etcd_watch_t *
    ep_etcd_watch (ep_etcd_t *self, const ep_etcd_watch_req_t *req, ep_etcd_fn *fn, void *arg);

//  Stops a watch (fn is not called again); nulls *watch_p.
void
    ep_etcd_watch_cancel (ep_etcd_watch_t **watch_p);

//  Fills up to max pollitems (fd form) with the sockets curl waits on;
//  returns how many.
int
    ep_etcd_pollitems (ep_etcd_t *self, zmq_pollitem_t *items, int max);

//  Milliseconds until the client needs ep_etcd_dispatch without I/O
//  (a curl timer, a watch to check), or -1.
long
    ep_etcd_timeout (ep_etcd_t *self);

//  After zmq_poll: advances transfers on the ready items and due timers,
//  and runs the callbacks of what completed.
void
    ep_etcd_dispatch (ep_etcd_t *self, zmq_pollitem_t *items, int nitems);

//  Polls the client alone for up to timeout_ms, dispatching. Returns the
//  number of requests still in flight (watches included).
int
    ep_etcd_wait (ep_etcd_t *self, long timeout_ms);

//  Requests in flight (watches included).
int
    ep_etcd_in_flight (ep_etcd_t *self);

//  The endpoint requests go to now.
const char *
    ep_etcd_endpoint (ep_etcd_t *self);

//  How many times the client moved to another endpoint.
uint64_t
    ep_etcd_failovers (ep_etcd_t *self);

#endif
