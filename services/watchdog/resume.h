/*  resume.h: first slices for routers that joined, full or resumed.

    A router joins with the revision (and generation) of the slice it
    acknowledged. Routers that joined since the last flush are queued;
    resume_flush fetches the model's changes once, from the lowest of their
    revisions (the model's "changes since", paged), and computes each
    router's difference locally (slicediff). A router whose revision is
    not retained by the model, ahead of our view, of another generation,
    or which speaks protocol 1, gets its full slice, flagged with why.
    The last change list is kept while it reaches our view's revision, so
    routers arriving one by one do not refetch it.
*/
#ifndef RESUME_H_INCLUDED
#define RESUME_H_INCLUDED

#include "ep_prelude.h"
#include "ep_service.h"
#include "ep_model_view.h"
#include "channel.pb-c.h"

typedef struct _resume_t resume_t;

//  Delivers slice to router_id (still joined when the caller says so).
typedef void (resume_send_fn) (void *arg, const char *router_id, const Ep__ModelSlice *slice);

//  Reads the model at the service's model API (with model_key) and slices
//  from view (borrowed).
resume_t *
    resume_new (ep_service_t *service, const char *model_key, ep_model_view_t *view,
                resume_send_fn *send, void *arg);
void
    resume_destroy (resume_t **self_p);

//  router_id joined with the slice (revision, generation) it holds;
//  resumable: it speaks protocol 2 or later.
void
    resume_queue (resume_t *self, const char *router_id, uint64_t revision, const char *generation,
                  bool resumable);

//  Forgets a queued router (it left before its slice was sent).
void
    resume_forget (resume_t *self, const char *router_id);

//  True if routers wait for their first slice.
bool
    resume_pending (resume_t *self);

//  Sends every queued router its first slice.
void
    resume_flush (resume_t *self);

//  The full slice of router (borrowed from the view) now, as resume_flush
//  would send it: for pushes outside a join. Free with slicediff_slice_clear.
void
    resume_full (resume_t *self, const Ep__Router *router, const char *reason, Ep__ModelSlice *slice);

//  Looks up a service in view (a slicediff_service_fn).
const Ep__Service *
    resume_lookup_service (void *view, const char *service_id);

#endif
