/*  cfleet.h: the console's view of the fleet, bounded, without sockets.

    Fed with the model's routers (ep_model_view's observer), the events the
    console takes from the bus (as ep_event_json renders them: presence,
    connect, terminator, session, stray, channel) and the watchdogs'
    connection lists; rendered as the one JSON document of /api/fleet.
    Every map and list has a bound (CFLEET_MAX_*): what would exceed it is
    counted in "overflow", never grown. Times are wall-clock ms, passed in.
*/
#ifndef CFLEET_H_INCLUDED
#define CFLEET_H_INCLUDED

#include "ep_prelude.h"
#include <jansson.h>

typedef struct _cfleet_t cfleet_t;

#define CFLEET_MAX_ROUTERS       100000  //  routers known (model or presence)
#define CFLEET_MAX_TERMINATORS   200000  //  terminators followed
#define CFLEET_MAX_SOURCES       1000    //  source addresses counted (strays, refusals)
#define CFLEET_RECENT            100     //  recent strays and refusals kept
#define CFLEET_FLAPS             32      //  disconnect times kept per router
#define CFLEET_TREND             30      //  RTT samples kept per router

cfleet_t *
    cfleet_new (void);

void
    cfleet_destroy (cfleet_t **self_p);

//  A router of the model: exists false when it was deleted.
void
    cfleet_model_router (cfleet_t *self, const char *id, const char *name, bool enabled, bool exists);

//  The model revision (and generation) the view reflects.
void
    cfleet_set_revision (cfleet_t *self, uint64_t revision, const char *generation);

//  One bus event (borrowed JSON, ep_event_json's shape) seen at wall_ms.
void
    cfleet_event (cfleet_t *self, json_t *event, int64_t wall_ms);

//  What watchdog instance answered to "list" (borrowed array of
//  ConnectionInfo JSON objects), at wall_ms.
void
    cfleet_connections (cfleet_t *self, const char *instance, json_t *connections, int64_t wall_ms);

//  Forgets the routers of instances silent for timeout_ms (their beacons stopped).
void
    cfleet_expire (cfleet_t *self, int64_t wall_ms, int64_t timeout_ms);

//  Watchdog instances known, with their API addresses: instance id ->
//  api address (the caller destroys the hash).
zhashx_t *
    cfleet_instances (cfleet_t *self);

//  The whole view as /api/fleet's document. Caller json_decref ().
json_t *
    cfleet_json (cfleet_t *self, int64_t wall_ms);

#endif
