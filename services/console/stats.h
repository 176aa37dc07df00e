/*  stats.h: per-minute aggregates of the bus events, for /api/stats.

    For each of the last STATS_MINUTES minutes: connects, disconnects,
    strays, refusals, sessions opened, closed and reaped, terminator
    transitions and spins; connects and disconnects per router and per
    source address, strays and refusals per source address and per reason
    (a stray's reason is the step it reached). Each breakdown holds at most
    STATS_MAX_KEYS keys a minute (the rest is counted under "other").
    Times are wall-clock ms, passed in; no sockets, no clocks.
*/
#ifndef STATS_H_INCLUDED
#define STATS_H_INCLUDED

#include "ep_prelude.h"
#include <jansson.h>

typedef struct _stats_t stats_t;

#define STATS_MINUTES   60      //  minutes kept at most: the longest window
#define STATS_MAX_KEYS  500     //  keys per breakdown per minute

//  Keeps the last minutes minutes (1 to STATS_MINUTES; the memory grows
//  until that many are held, then stays).
stats_t *
    stats_new (int minutes);

void
    stats_destroy (stats_t **self_p);

//  Counts one bus event (ep_event_json's shape) seen at wall_ms.
void
    stats_event (stats_t *self, json_t *event, int64_t wall_ms);

//  The minutes of the last window_ms (at most the minutes kept) up to
//  wall_ms, oldest first, every minute present (zero if quiet). Caller
//  json_decref ().
json_t *
    stats_json (stats_t *self, int64_t wall_ms, int64_t window_ms);

#endif
