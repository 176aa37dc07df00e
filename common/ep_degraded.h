/*  ep_degraded.h: a service's "the disk is full (or failing)" state.

    A full or failing disk is a state, not a crash (issue 21): the
    service keeps serving reads, answers writes UNAVAILABLE with the
    store's message, and says so in three places, the same in every
    service: /readyz turns 503 with the reason, the gauge
    edgeplane_store_degraded{reason="disk_full"|"disk_failing"|"etcd_nospace"}
    is 1 (etcd_nospace: the model's etcd store, over etcd's quota), and a
    service.degraded event (state "degraded", then "recovered") goes out
    directly on the bus (never through a durable outbox: the disk is what
    fails). The service reports the outcome of each durable write it tries
    (ep_degraded_update); while degraded it also probes the disk on a timer
    (ep_degraded_probe_due), so it recovers by itself even when no write
    comes. Failures of other kinds (a constraint) neither start nor end it.
*/
#ifndef EP_DEGRADED_H_INCLUDED
#define EP_DEGRADED_H_INCLUDED

#include "ep_prelude.h"
#include "ep_http.h"
#include "ep_metrics.h"
#include "ep_store.h"
#include "events.pb-c.h"

typedef struct _ep_degraded_t ep_degraded_t;

//  Sends event on topic ("service.degraded"), or drops it if it cannot.
typedef void (ep_degraded_publish_fn) (void *arg, const char *topic, Ep__Event *event);

//  The state of service ("model") storing to path. http, metrics and
//  publish may be NULL (tests); all are borrowed.
ep_degraded_t *
    ep_degraded_new (const char *service, const char *path, ep_http_t *http,
                     ep_metrics_t *metrics, ep_degraded_publish_fn *publish, void *arg);

void
    ep_degraded_destroy (ep_degraded_t **self_p);

//  A durable write was tried: fault NONE if it was taken (ends a degraded
//  state), FULL, FAILING or NOSPACE (starts one, or updates its reason),
//  OTHER (ignored). message: the store's error. now_ms: monotonic, for probes.
void
    ep_degraded_update (ep_degraded_t *self, ep_store_fault_t fault, const char *message,
                        int64_t now_ms);

//  True while degraded; the reason ("disk_full", "disk_failing", "etcd_nospace") and the
//  store's message then.
bool
    ep_degraded_active (ep_degraded_t *self);
ep_store_fault_t
    ep_degraded_fault (ep_degraded_t *self);
const char *
    ep_degraded_message (ep_degraded_t *self);

//  True when degraded and a probe is due at now_ms (then the next is
//  scheduled); ms until the next probe (INT64_MAX when not degraded).
bool
    ep_degraded_probe_due (ep_degraded_t *self, int64_t now_ms);
int64_t
    ep_degraded_next (ep_degraded_t *self, int64_t now_ms);

//  For a service over an ep_store: when a probe is due (degraded), tries
//  ep_store_probe and reports its outcome. Call between transactions.
void
    ep_degraded_probe_store (ep_degraded_t *self, ep_store_t *store, int64_t now_ms);

#endif
