/*  slicediff.h: a router's model slice, full or as the merged difference
    since a revision it acknowledged, as a pure module (no sockets, no
    clocks, no store).

    A slice holds what a router needs to act alone: its own Router entity
    (enabled, tags, hosted costs) and the Service entities it hosts. A
    router that reconnects with Hello.model_revision R gets one difference
    between its slice at R and its slice now, computed from the model's
    change list after R (ModelChange, as the model's "changes since"
    returns it): not a replay of every global change, only what touched
    this router's slice, each entity once, at its current state.

    For a reconnect storm the caller fetches the changes once, from the
    lowest R, into one slicediff_t, and asks it for each router's
    difference: a router whose R is before the first change held cannot be
    resumed (slicediff_resume returns -1) and gets a full slice.
*/
#ifndef SLICEDIFF_H_INCLUDED
#define SLICEDIFF_H_INCLUDED

#include "ep_prelude.h"
#include "channel.pb-c.h"

typedef struct _slicediff_t slicediff_t;

//  Looks up the current Service entity service_id (NULL: none); borrowed.
typedef const Ep__Service *(slicediff_service_fn) (void *arg, const char *service_id);

//  A change list covering revisions (since, until]: changes must hold every
//  revision in that range, in order (copies are kept; the caller keeps
//  its own).
slicediff_t *
    slicediff_new (uint64_t since, Ep__ModelChange **changes, size_t n_changes);
void
    slicediff_destroy (slicediff_t **self_p);

//  The revision the list starts after, and the last one it holds.
uint64_t
    slicediff_since (slicediff_t *self);
uint64_t
    slicediff_until (slicediff_t *self);

//  Fills slice (initialised by the caller) with the full slice of router
//  (its current entity) at revision: the caller frees it with
//  slicediff_slice_clear. reason says why it is full.
void
    slicediff_full (const Ep__Router *router, slicediff_service_fn *lookup, void *arg,
                    uint64_t revision, const char *reason, Ep__ModelSlice *slice);

//  Fills slice with a router's own change from before to after, pushed
//  as it happens (not full, at revision): the router entity (after), the
//  services added to its hosted list or hosted at another cost or
//  precedence (hosted), the settings of those newly hosted (services,
//  looked up), and the services no longer hosted (removed).
void
    slicediff_push (const Ep__Router *before, const Ep__Router *after, slicediff_service_fn *lookup, void *arg,
                    uint64_t revision, Ep__ModelSlice *slice);

//  Fills slice with the difference for router_id (its current entity
//  router, NULL if deleted) between revision from and the list's last
//  revision: the router entity if a change touched it, the services added
//  to its hosted list or hosted and changed (hosted and services), the
//  services no longer hosted (removed). Returns 0, or -1 if from is before
//  the list (not retained: send a full slice).
int
    slicediff_resume (slicediff_t *self, const char *router_id, const Ep__Router *router,
                      uint64_t from, slicediff_service_fn *lookup, void *arg,
                      Ep__ModelSlice *slice);

//  Frees what slicediff_full, slicediff_push or slicediff_resume put in
//  slice.
void
    slicediff_slice_clear (Ep__ModelSlice *slice);

#endif
