/*  ep_metrics.h: a metrics registry rendered in the Prometheus text format.

    Every service exports counters, gauges and histograms on /metrics
    (text exposition format 0.0.4). A metric family has a name, help text
    and a fixed list of label names; a series is one combination of label
    values, created on first use and kept until the registry is destroyed.

        const char *labels [] = { "op", "code" };
        ep_counter_t *c = ep_metrics_counter (reg, "x_requests_total", "Requests.", 2, labels);
        ep_counter_inc (c, (const char *[]) { "create", "OK" }, 1);

    Updating through the family looks the series up under the registry lock;
    on a hot path keep the series pointer instead (ep_counter_series) and
    update it with ep_series_add / _set / _observe, which are lock-free.

    Thread safety: every function may be called from any thread. Values are
    C11 atomics; the registry structure and rendering share one mutex, so
    the HTTP thread renders while the service thread updates.

    Mistakes in names, label counts or kinds are programming errors and stop
    the process with EP_ASSERT; nothing here fails at run time otherwise.
*/
#ifndef EP_METRICS_H_INCLUDED
#define EP_METRICS_H_INCLUDED

#include "ep_prelude.h"

typedef struct _ep_metrics_t ep_metrics_t;
typedef struct _ep_counter_t ep_counter_t;
typedef struct _ep_gauge_t ep_gauge_t;
typedef struct _ep_histogram_t ep_histogram_t;
typedef struct _ep_series_t ep_series_t;

//  Creates a registry holding the metrics every service exports:
//  edgeplane_build_info{service,version}, process_* (refreshed from /proc at
//  each render) and the families below with accessors.
ep_metrics_t *
    ep_metrics_new (const char *service);

//  Destroys the registry and every family and series in it; nulls *self_p.
void
    ep_metrics_destroy (ep_metrics_t **self_p);

//  Registers a counter family, or returns the existing one of that name
//  (which must be a counter with the same label names). labels holds
//  nlabels label names; NULL when nlabels is 0.
ep_counter_t *
    ep_metrics_counter (ep_metrics_t *self, const char *name, const char *help,
                        size_t nlabels, const char *const *labels);

//  Registers or returns a gauge family; as ep_metrics_counter.
ep_gauge_t *
    ep_metrics_gauge (ep_metrics_t *self, const char *name, const char *help,
                      size_t nlabels, const char *const *labels);

//  Registers or returns a histogram family with nbounds strictly increasing
//  finite upper bounds (the +Inf bucket is implicit). bounds NULL means the
//  default latency buckets, 5 ms to 10 s. "le" is not a valid label name.
ep_histogram_t *
    ep_metrics_histogram (ep_metrics_t *self, const char *name, const char *help,
                          size_t nlabels, const char *const *labels,
                          size_t nbounds, const double *bounds);

//  Renders every family in the text exposition format 0.0.4. Caller frees.
char *
    ep_metrics_render (ep_metrics_t *self);

//  The families every service exports (docs/architecture.md, "Public interface").
//  edgeplane_published_total{stream}: events published, by stream.
ep_counter_t *
    ep_metrics_published (ep_metrics_t *self);
//  edgeplane_stream_gaps_total{stream}: sequence gaps seen, by stream.
ep_counter_t *
    ep_metrics_stream_gaps (ep_metrics_t *self);

//  Counts one handled request: requests_total{op,code} += 1 and observes
//  seconds in request_duration_seconds{op}.
void
    ep_metrics_request_done (ep_metrics_t *self, const char *op, const char *code,
                             double seconds);

//  The series of a family for label values (one per label name), created
//  at 0 on first use. Valid until the registry is destroyed.
ep_series_t *
    ep_counter_series (ep_counter_t *self, const char *const *values);
ep_series_t *
    ep_gauge_series (ep_gauge_t *self, const char *const *values);
ep_series_t *
    ep_histogram_series (ep_histogram_t *self, const char *const *values);

//  Shorthands that look the series up then update it: a counter grows by
//  delta (>= 0), a gauge is set or moved, a histogram observes value.
void
    ep_counter_inc (ep_counter_t *self, const char *const *values, double delta);
void
    ep_gauge_set (ep_gauge_t *self, const char *const *values, double value);
void
    ep_gauge_add (ep_gauge_t *self, const char *const *values, double delta);
void
    ep_histogram_observe (ep_histogram_t *self, const char *const *values, double value);

//  Adds delta to a counter (delta >= 0) or gauge series.
void
    ep_series_add (ep_series_t *self, double delta);

//  Sets a gauge series.
void
    ep_series_set (ep_series_t *self, double value);

//  Records one observation in a histogram series.
void
    ep_series_observe (ep_series_t *self, double value);

//  The current value of a counter or gauge series; for a histogram series,
//  the number of observations.
double
    ep_series_value (ep_series_t *self);

#endif
