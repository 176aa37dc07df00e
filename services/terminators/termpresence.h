/*  termpresence.h: which routers are online, from the watchdogs' presence.

    Every watchdog instance publishes presence.join / presence.leave when a
    router joins or leaves it, and every second a presence.beacon listing
    all the routers it holds, under its instance id and epoch. A router is
    online while at least one live instance holds it (two may, briefly,
    when a router moves: the newest join wins and the other sends leave).
    An instance whose beacons stop for longer than the expiry, or whose
    epoch changes (a restart), loses every router it held. No sockets and
    no clock: events and times come in as arguments, and the routers whose
    status flipped are collected for the caller.
*/
#ifndef TERMPRESENCE_H_INCLUDED
#define TERMPRESENCE_H_INCLUDED

#include "ep_prelude.h"

typedef struct _termpresence_t termpresence_t;

//  An empty view: nobody online. Instances silent for expiry_ms expire.
termpresence_t *
    termpresence_new (int64_t expiry_ms);

void
    termpresence_destroy (termpresence_t **self_p);

//  Applies one presence event of type "join", "leave" or "beacon" from
//  instance_id (at its epoch) naming routers, received at now_ms. Other
//  types and invalid router ids are ignored.
void
    termpresence_apply (termpresence_t *self, const char *type, const char *instance_id,
                        uint64_t epoch, char *const *routers, size_t n, int64_t now_ms);

//  Drops the instances not heard from for longer than the expiry.
void
    termpresence_expire (termpresence_t *self, int64_t now_ms);

//  True if router is held by a live instance.
bool
    termpresence_online (termpresence_t *self, const char *router);

//  Routers online, and instances known.
size_t
    termpresence_routers (termpresence_t *self);
size_t
    termpresence_instances (termpresence_t *self);

//  The routers whose status changed since the last call (router id -> its
//  status now, as a pointer: TERMPRESENCE_ONLINE or TERMPRESENCE_OFFLINE).
//  The caller destroys the hash.
zhashx_t *
    termpresence_changes (termpresence_t *self);

#define TERMPRESENCE_OFFLINE ((void *) 1)
#define TERMPRESENCE_ONLINE  ((void *) 2)

#endif
