/*  resume.c: first slices for joined routers (see resume.h). */
#include "resume.h"
#include "slicediff.h"
#include "ep_log.h"
#include "ep_rpc_client.h"

#define RPC_TIMEOUT_MS      3000
#define PAGE_CHANGES        10000

//  A router waiting for its first slice.
typedef struct {
    char id [65];               //  its id
    uint64_t revision;          //  the slice revision it holds (0: none)
    char generation [65];       //  of that slice ("" if none)
    bool resumable;             //  protocol 2 or later
} s_waiting_t;

struct _resume_t {
    ep_model_view_t *view;      //  the model as followed (borrowed)
    ep_rpc_client_t *client;    //  the model's API
    resume_send_fn *send;       //  delivers a slice
    void *arg;                  //  for send
    zhashx_t *waiting;          //  router id -> s_waiting_t
    slicediff_t *diff;          //  the last change list fetched, or NULL
    char diff_generation [65];  //  its generation
};

const Ep__Service *
resume_lookup_service (void *view, const char *service_id)
{
    const Ep__Entity *entity = ep_model_view_get ((ep_model_view_t *) view,
                                                  EP__ENTITY_TYPE__ENTITY_SERVICE, service_id);
    return entity? entity->service: NULL;
}

resume_t *
resume_new (ep_service_t *service, const char *model_key, ep_model_view_t *view,
            resume_send_fn *send, void *arg)
{
    ep_rpc_client_t *client = ep_rpc_client_new (ep_service_opts (service)->model_api,
                                                 ep_service_cert (service), model_key);
    if (!client) {
        ep_log_error ("cannot reach the model at %s: check EDGEPLANE_MODEL_API",
                      ep_service_opts (service)->model_api);
        return NULL;
    }
    resume_t *self = (resume_t *) zmalloc (sizeof (resume_t));
    self->view = view;
    self->client = client;
    self->send = send;
    self->arg = arg;
    self->waiting = zhashx_new ();
    zhashx_set_destructor (self->waiting, (czmq_destructor *) zstr_free);
    return self;
}

void
resume_destroy (resume_t **self_p)
{
    resume_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy (&self->waiting);
    slicediff_destroy (&self->diff);
    ep_rpc_client_destroy (&self->client);
    free (self);
    *self_p = NULL;
}

void
resume_queue (resume_t *self, const char *router_id, uint64_t revision, const char *generation,
              bool resumable)
{
    s_waiting_t *waiting = (s_waiting_t *) zmalloc (sizeof (s_waiting_t));
    snprintf (waiting->id, sizeof waiting->id, "%s", router_id);
    snprintf (waiting->generation, sizeof waiting->generation, "%s", generation? generation: "");
    waiting->revision = revision;
    waiting->resumable = resumable;
    zhashx_update (self->waiting, router_id, waiting);
}

void
resume_forget (resume_t *self, const char *router_id)
{
    zhashx_delete (self->waiting, router_id);
}

bool
resume_pending (resume_t *self)
{
    return zhashx_size (self->waiting) > 0;
}

void
resume_full (resume_t *self, const Ep__Router *router, const char *reason, Ep__ModelSlice *slice)
{
    slicediff_full (router, resume_lookup_service, self->view, ep_model_view_revision (self->view),
                    reason, slice);
    slice->generation = (char *) ep_model_view_generation (self->view);
}

//  One page of changes after since; NULL (logged) if the model cannot say.
//  On RESYNC, *oldest is the oldest revision the model retains.
static Ep__ModelReply *
s_changes (resume_t *self, uint64_t since, uint64_t *oldest)
{
    Ep__ChangesRequest changes = EP__CHANGES_REQUEST__INIT;
    changes.has_since_revision = changes.has_max_changes = true;
    changes.since_revision = since;
    changes.max_changes = PAGE_CHANGES;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.op_case = EP__MODEL_REQUEST__OP_CHANGES;
    request.changes = &changes;
    char id [33], err [256];
    ep_rpc_new_id (id);
    request.request_id = id;
    Ep__ModelReply *reply = (Ep__ModelReply *) ep_rpc_client_call (
        self->client, &request.base, id, &ep__model_reply__descriptor, RPC_TIMEOUT_MS, 1, err, sizeof err);
    if (!reply) {
        ep_log_warn ("slices: cannot read the model's changes (%s): sending full slices", err);
        return NULL;
    }
    if (reply->status && reply->status->has_code && reply->status->code != EP__STATUS__CODE__OK) {
        if (reply->status->code == EP__STATUS__CODE__RESYNC && reply->has_oldest_retained)
            *oldest = reply->oldest_retained;
        protobuf_c_message_free_unpacked (&reply->base, NULL);
        return NULL;
    }
    return reply;
}

//  Fetches the changes (since, view revision] into self->diff; since moves
//  up to what the model retains. Returns 0, or -1 (no list).
static int
s_fetch (resume_t *self, uint64_t since)
{
    uint64_t until = ep_model_view_revision (self->view), oldest = 0;
    const char *generation = ep_model_view_generation (self->view);
    slicediff_destroy (&self->diff);
    Ep__ModelChange **changes = NULL;
    Ep__ModelReply **replies = NULL;
    size_t n_changes = 0, n_replies = 0;
    uint64_t at = since;
    int rc = 0;
    while (at < until) {
        Ep__ModelReply *reply = s_changes (self, at, &oldest);
        if (!reply && oldest > 0 && at == since && n_replies == 0 && oldest - 1 > since) {
            since = at = oldest - 1;        //  older routers get full slices
            oldest = 0;
            continue;
        }
        if (!reply || !reply->generation || !streq (reply->generation, generation)) {
            rc = -1;
            if (reply)
                protobuf_c_message_free_unpacked (&reply->base, NULL);
            break;
        }
        replies = (Ep__ModelReply **) realloc (replies, (n_replies + 1) * sizeof *replies);
        replies [n_replies++] = reply;
        uint64_t before = at;
        for (size_t i = 0; i < reply->n_changes; i++) {
            Ep__ModelChange *change = reply->changes [i];
            if (change->revision <= at || change->revision > until)
                continue;           //  a part of one already seen, or past our view
            changes = (Ep__ModelChange **) realloc (changes, (n_changes + 1) * sizeof *changes);
            changes [n_changes++] = change;
            if (change->part == change->parts || !change->has_parts)
                at = change->revision;
        }
        if (at == before) {
            rc = -1;                //  no progress: do not loop
            break;
        }
    }
    if (rc == 0) {
        self->diff = slicediff_new (since, changes, n_changes);
        snprintf (self->diff_generation, sizeof self->diff_generation, "%s", generation);
    }
    for (size_t i = 0; i < n_replies; i++)
        protobuf_c_message_free_unpacked (&replies [i]->base, NULL);
    free (replies);
    free (changes);
    return rc;
}

//  Sends waiting its slice: resumed from the list if it can be, else full.
static void
s_deliver (resume_t *self, s_waiting_t *waiting)
{
    const Ep__Entity *entity = ep_model_view_get (self->view, EP__ENTITY_TYPE__ENTITY_ROUTER, waiting->id);
    if (!entity)
        return;                 //  deleted meanwhile: it is being drained
    const char *generation = ep_model_view_generation (self->view);
    Ep__ModelSlice slice = EP__MODEL_SLICE__INIT;
    const char *why = NULL;
    if (!waiting->resumable)
        why = "protocol-1";
    else
    if (waiting->revision == 0)
        why = "join";
    else
    if (!generation || !streq (waiting->generation, generation))
        why = "generation";
    else
    if (waiting->revision > ep_model_view_revision (self->view))
        why = "unknown-revision";
    else
    if (!self->diff || slicediff_resume (self->diff, waiting->id, entity->router, waiting->revision,
                                         resume_lookup_service, self->view, &slice) != 0)
        why = "not-retained";
    if (why)
        resume_full (self, entity->router, why, &slice);
    else
        slice.generation = (char *) generation;
    self->send (self->arg, waiting->id, &slice);
    slicediff_slice_clear (&slice);
}

void
resume_flush (resume_t *self)
{
    if (zhashx_size (self->waiting) == 0)
        return;
    //  The lowest revision that could be resumed: fetch once from there.
    const char *generation = ep_model_view_generation (self->view);
    uint64_t now = ep_model_view_revision (self->view), lowest = UINT64_MAX;
    s_waiting_t *waiting = (s_waiting_t *) zhashx_first (self->waiting);
    for (; waiting; waiting = (s_waiting_t *) zhashx_next (self->waiting))
        if (waiting->resumable && waiting->revision > 0 && waiting->revision <= now
        &&  generation && streq (waiting->generation, generation) && waiting->revision < lowest)
            lowest = waiting->revision;
    if (lowest != UINT64_MAX) {
        bool covers = self->diff && streq (self->diff_generation, generation)
                   && slicediff_since (self->diff) <= lowest && slicediff_until (self->diff) == now;
        if (!covers && lowest < now)
            s_fetch (self, lowest);
        else
        if (!covers) {          //  everyone is current: an empty list
            slicediff_destroy (&self->diff);
            self->diff = slicediff_new (now, NULL, 0);
            snprintf (self->diff_generation, sizeof self->diff_generation, "%s", generation);
        }
    }
    for (waiting = (s_waiting_t *) zhashx_first (self->waiting); waiting;
         waiting = (s_waiting_t *) zhashx_next (self->waiting))
        s_deliver (self, waiting);
    zhashx_purge (self->waiting);
}
