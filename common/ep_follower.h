/*  ep_follower.h: keeps an ep_model_view up to date with the model service.

    Every model follower (terminators, reaper, watchdog, CLI) needs the same
    plumbing, and getting it subtly wrong loses changes, so it lives here:
    subscribe to "model." on the bus, wait for the stream's first heartbeat
    (the subscription is live, so nothing published after the snapshot can
    be missed), read a paged snapshot pinned to one revision, then apply the
    changes above it. A gap (a revision missing, a seq gap or a heartbeat
    proving a loss), a model restart or a silent stream makes the follower
    fetch "changes since" from the model API; RESYNC (no longer retained) or
    a new generation makes it take a new snapshot. Calls to an unreachable
    API are retried with jittered exponential backoff, moving to the next
    model instance when EDGEPLANE_MODEL_API lists several.

    It runs inside the caller's single-threaded loop and never blocks it:
    calls to the model API are sent, and their replies read when the
    caller's poller says they came, so a slow or dead model never delays
    the caller's other work (a watchdog's heartbeats):

        zpoller_t *poller = zpoller_new (ep_follower_socket (follower),
                                         ep_follower_rpc_socket (follower), ...);
        while (!zsys_interrupted) {
            int64_t wait = ep_follower_tick (follower);
            void *which = zpoller_wait (poller, (int) wait);
            if (which == ep_follower_socket (follower)
            ||  which == ep_follower_rpc_socket (follower))
                ep_follower_handle (follower);
            ...
        }

    One call is in flight at a time (a snapshot page or a batch of
    changes); a large snapshot is read page by page as replies come. While
    a snapshot or a catch-up is in progress the view keeps its previous
    content; a new snapshot replaces it in one step, and the view's
    observer hears about every entity that differs (ep_model_view_adopt),
    so services react to what they missed.
*/
#ifndef EP_FOLLOWER_H_INCLUDED
#define EP_FOLLOWER_H_INCLUDED

#include "ep_prelude.h"
#include "ep_model_view.h"
#include "ep_metrics.h"

typedef struct _ep_follower_t ep_follower_t;

//  A follower that keeps view (borrowed) up to date, subscribing at bus_sub
//  (the bus's XPUB side) and calling the model API at model_api. With cert
//  (borrowed: it must outlive the follower) both connections are CURVE
//  clients of the servers with public keys bus_key and model_key; with cert
//  NULL they are plaintext (tests). Returns NULL if an endpoint is invalid.
ep_follower_t *
    ep_follower_new (const char *bus_sub, const char *model_api, zcert_t *cert,
                     const char *bus_key, const char *model_key, ep_model_view_t *view);

void
    ep_follower_destroy (ep_follower_t **self_p);

//  The SUB socket, for the caller's poller.
zsock_t *
    ep_follower_socket (ep_follower_t *self);

//  The model API's socket, for the caller's poller too (the same socket
//  for the follower's life).
zsock_t *
    ep_follower_rpc_socket (ep_follower_t *self);

//  Reads what is waiting on both sockets (a reply from the model API; at
//  most a bounded batch of the stream) and applies model changes. Never
//  blocks. Returns 0.
int
    ep_follower_handle (ep_follower_t *self);

//  Does the work that is due (silence checks, asking for a snapshot page
//  or a batch of changes, giving up on a call past its deadline) and
//  returns the ms until it next needs a call (0: more work is waiting),
//  for the caller's poll timeout. Never blocks.
int64_t
    ep_follower_tick (ep_follower_t *self);

//  True once a snapshot has been loaded; stays true during later resyncs
//  (the view keeps its last content until the new snapshot is complete).
bool
    ep_follower_ready (ep_follower_t *self);

//  Runs the follower (ticks and reads) until the view holds at least the
//  model's revision as of this call (asked with a status request) and
//  nothing is being fetched, or until timeout_ms. For the CLI and tests.
//  Returns 0, or -1 on timeout.
int
    ep_follower_sync (ep_follower_t *self, int timeout_ms);

//  What the follower is doing: "waiting-for-stream", "snapshot",
//  "catch-up" or "live" (for /readyz and logs).
const char *
    ep_follower_state (ep_follower_t *self);

//  The last error from the model API ("" if none), for logs and /readyz.
const char *
    ep_follower_last_error (ep_follower_t *self);

//  Snapshots loaded, the first one included.
uint64_t
    ep_follower_snapshots (ep_follower_t *self);

//  Snapshots taken again after the first (changes no longer retained, new
//  generation, inconsistent answers).
uint64_t
    ep_follower_resyncs (ep_follower_t *self);

//  Losses detected: seq gaps (by message or heartbeat) on the model stream
//  and revisions found missing when applying.
uint64_t
    ep_follower_gaps (ep_follower_t *self);

//  "Changes since" fetches completed.
uint64_t
    ep_follower_catchups (ep_follower_t *self);

//  Failed calls to the model API (no reply, or an error status).
uint64_t
    ep_follower_api_failures (ep_follower_t *self);

//  Per-attempt timeout of a model API call (default 2000 ms).
void
    ep_follower_set_rpc_timeout (ep_follower_t *self, int timeout_ms);

//  Backoff between failed API calls: from base_ms doubling to max_ms, with
//  jitter (default 200 ms .. 10 s).
void
    ep_follower_set_retry (ep_follower_t *self, int64_t base_ms, int64_t max_ms);

//  Entities per snapshot page requested (default 0: the service's default).
void
    ep_follower_set_page_size (ep_follower_t *self, uint32_t page_size);

//  Exports the follower's state in metrics (borrowed; call once):
//  edgeplane_model_view_revision, edgeplane_model_view_entities,
//  edgeplane_model_view_digest52 (the first 52 bits of the view's digest,
//  recomputed at most once a second when the view changed: compare it with
//  the model's status digest), edgeplane_follower_{snapshots,resyncs,
//  catchups}_total and edgeplane_stream_gaps_total{stream="model"}.
void
    ep_follower_set_metrics (ep_follower_t *self, ep_metrics_t *metrics);

//  The first 52 bits of a digest as a number (exact in a double).
double
    ep_model_digest52 (const uint8_t *digest);

#endif
