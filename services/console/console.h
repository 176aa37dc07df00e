/*  console.h: the console service object, without sockets.

    Holds what the console knows (cfleet.h), its per-minute aggregates
    (stats.h) and its event streams (hub.h), and turns what main.c brings
    (bus events, the model's routers, the watchdogs' connection lists) into
    updates of all three. The bus side calls the update functions, the HTTP
    side the renderers; a lock inside keeps them apart (the hub has its own).
*/
#ifndef CONSOLE_H_INCLUDED
#define CONSOLE_H_INCLUDED

#include "ep_prelude.h"
#include "events.pb-c.h"
#include "cfleet.h"
#include "hub.h"
#include "stats.h"

typedef struct _console_t console_t;

console_t *
    console_new (const hub_config_t *hub_config, int stats_minutes, hub_handle_fn *sleep, hub_handle_fn *wake,
                 void *arg);

void
    console_destroy (console_t **self_p);

//  One event taken from the bus on topic at wall_ms (now: the tick clock):
//  into the fleet, the aggregates and every stream that takes it.
void
    console_event (console_t *self, const char *topic, const Ep__Event *event, int64_t wall_ms, int64_t now);

//  The same for an event already rendered as JSON (tests, benchmarks).
void
    console_event_json (console_t *self, json_t *event, int64_t wall_ms, int64_t now);

//  A router of the model (exists false: deleted) and the revision reflected.
void
    console_router (console_t *self, const char *id, const char *name, bool enabled, bool exists);
void
    console_revision (console_t *self, uint64_t revision, const char *generation);

//  What a watchdog instance answered (a JSON array of ConnectionInfo).
void
    console_connections (console_t *self, const char *instance, json_t *connections, int64_t wall_ms);

//  Forgets instances silent for timeout_ms.
void
    console_expire (console_t *self, int64_t wall_ms, int64_t timeout_ms);

//  Instance id -> API address of every watchdog heard. Caller destroys.
zhashx_t *
    console_instances (console_t *self);

//  /api/fleet and /api/stats, as compact JSON text. Caller frees.
char *
    console_fleet_text (console_t *self, int64_t wall_ms);
char *
    console_stats_text (console_t *self, int64_t wall_ms, int64_t window_ms);

hub_t *
    console_hub (console_t *self);

#endif
