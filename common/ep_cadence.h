/*  ep_cadence.h: a liveness timeout learnt from a peer's heartbeat cadence.

    Pure: the caller says when a heartbeat arrived (now_ms) and when a gap
    must not count (a presence change: reconnect, offline/online); the
    estimator keeps the last `window` inter-arrival times and answers

        timeout = clamp (percentile (intervals, p) * factor, min_ms, max_ms)

    Until min_samples intervals are known, the caller's fixed value holds
    as it is. No sockets, no clocks. Used by the watchdog (one per
    connection: Pong and Ping arrivals) and meant for the reaper (one per
    router: session heartbeat batches).
*/
#ifndef EP_CADENCE_H_INCLUDED
#define EP_CADENCE_H_INCLUDED

#include "ep_prelude.h"

typedef struct {
    int window;                 //  intervals kept (the newest)
    int min_samples;            //  intervals needed before the estimate counts
    double percentile;          //  0 < p <= 1, e.g. 0.99
    double factor;              //  safety factor on the percentile, >= 1
    int64_t min_ms;             //  floor: above a watchdog or shard failover
    int64_t max_ms;             //  ceiling
} ep_cadence_config_t;

typedef struct _ep_cadence_t ep_cadence_t;

//  Fills config with the defaults: window 64, min_samples 16, p 0.99,
//  factor 2.5, floor 15 s, ceiling 300 s. Why: with 20 % of beats lost,
//  16 samples and 2.5 x the worst gap seen keep false closes rare (a
//  simulation: under 2 % over 60 beats) while a clean 10 s cadence gets
//  25 s, below the fixed 30 s.
void
    ep_cadence_defaults (ep_cadence_config_t *config);

ep_cadence_t *
    ep_cadence_new (const ep_cadence_config_t *config);

void
    ep_cadence_destroy (ep_cadence_t **self_p);

//  A heartbeat arrived at now_ms. The interval from the previous one is a
//  sample, unless a gap was declared since.
void
    ep_cadence_beat (ep_cadence_t *self, int64_t now_ms);

//  A presence change: the time up to the next beat is not an interval.
void
    ep_cadence_gap (ep_cadence_t *self);

//  Intervals known (at most window).
int
    ep_cadence_samples (ep_cadence_t *self);

//  The configured percentile of the known intervals (ms), 0 if none.
int64_t
    ep_cadence_percentile_ms (ep_cadence_t *self);

//  The effective timeout: learnt, or fixed_ms before min_samples.
int64_t
    ep_cadence_timeout (ep_cadence_t *self, int64_t fixed_ms);

//  True when the effective timeout moved beyond a factor of two from the
//  last one reported (or the first learnt one): from and to are set, and
//  the new value becomes the reference. For logging.
bool
    ep_cadence_changed (ep_cadence_t *self, int64_t fixed_ms, int64_t *from, int64_t *to);

#endif
