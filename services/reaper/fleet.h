/*  fleet.h: which routers are online, from the watchdogs' presence events.

    Every watchdog instance publishes presence.join / presence.leave for one
    router and, every second, presence.beacon listing all the routers it
    holds, under its instance id and epoch. A router is online while at
    least one live instance holds it (two may, briefly, while it moves).
    An instance whose beacons stop for timeout_ms, or that comes back with
    another epoch (it restarted, so its connections are gone), no longer
    holds anything. Pure state machine: events and times come in as
    arguments, transitions go out through a callback.
*/
#ifndef FLEET_H_INCLUDED
#define FLEET_H_INCLUDED

#include "ep_prelude.h"

typedef struct _fleet_t fleet_t;

//  Called when router goes online or offline, at now (monotonic ms).
typedef void (fleet_change_fn) (void *arg, const char *router, bool online, int64_t now);

//  A fleet where an instance unheard for timeout_ms is gone.
fleet_t *
    fleet_new (int64_t timeout_ms, fleet_change_fn *change, void *arg);

void
    fleet_destroy (fleet_t **self_p);

//  A beacon: instance (with epoch) holds exactly routers [0 .. count).
void
    fleet_beacon (fleet_t *self, const char *instance, uint64_t epoch,
                  char **routers, size_t count, int64_t now);

//  A join or leave of router at instance.
void
    fleet_join (fleet_t *self, const char *instance, uint64_t epoch, const char *router,
                int64_t now);
void
    fleet_leave (fleet_t *self, const char *instance, uint64_t epoch, const char *router,
                 int64_t now);

//  Forgets instances unheard for the timeout (their routers go offline).
//  Returns when the next instance would time out (INT64_MAX if none).
int64_t
    fleet_tick (fleet_t *self, int64_t now);

//  True while some live instance holds router.
bool
    fleet_online (fleet_t *self, const char *router);

//  Since when router has been online (monotonic ms), or -1 if offline.
int64_t
    fleet_online_since (fleet_t *self, const char *router);

//  Live instances, and routers online.
size_t
    fleet_instances (fleet_t *self);
size_t
    fleet_routers (fleet_t *self);

#endif
