/*  ep_backoff.h: exponential backoff with jitter.

    Delays grow base, 2*base, 4*base ... up to max; each is drawn uniformly
    from [d/2, d] ("equal jitter") so that a fleet of routers reconnecting
    after an outage spreads out instead of arriving together, while every
    delay still grows.
*/
#ifndef EP_BACKOFF_H_INCLUDED
#define EP_BACKOFF_H_INCLUDED

#include "ep_prelude.h"

typedef struct {
    int64_t base_ms;            //  first delay
    int64_t max_ms;             //  cap on any delay
    uint32_t attempt;           //  failures since the last reset
} ep_backoff_t;

//  A backoff starting at base_ms, never above max_ms.
ep_backoff_t
    ep_backoff (int64_t base_ms, int64_t max_ms);

//  The delay before the next attempt; counts one more failure.
int64_t
    ep_backoff_next (ep_backoff_t *self);

//  Back to the first delay, after a success.
void
    ep_backoff_reset (ep_backoff_t *self);

#endif
