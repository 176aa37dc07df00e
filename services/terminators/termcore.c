/*  termcore.c: the transitions the terminator core's parts share
    (termcore.h): what the model and presence say about a router, the
    events and commands a transition makes, and the transitions
    themselves. */
#include "termcore.h"
#include "ep_log.h"
#include <stdarg.h>

#define COMMAND_TTL_MS  30000       //  a command's deadline

bool
termcore_router_enabled (const Ep__Entity *router)
{
    return router && router->router
        && (!router->router->has_enabled || router->router->enabled);
}

//  The router's hosting of service_id in the view, or NULL.
const Ep__HostedService *
termcore_hosting (terminators_t *self, const char *router_id, const char *service_id)
{
    const Ep__Entity *router = ep_model_view_get (self->view, EP__ENTITY_TYPE__ENTITY_ROUTER, router_id);
    if (!termcore_router_enabled (router) || !service_id || !*service_id)
        return NULL;
    for (size_t i = 0; i < router->router->n_hosted; i++)
        if (router->router->hosted [i]->service_id
        &&  streq (router->router->hosted [i]->service_id, service_id))
            return router->router->hosted [i];
    return NULL;
}

//  Why the model does not have router_id host service_id (for messages).
const char *
termcore_why_not_hosted (terminators_t *self, const char *router_id, const char *service_id)
{
    const Ep__Entity *router = ep_model_view_get (self->view, EP__ENTITY_TYPE__ENTITY_ROUTER, router_id);
    if (!router)
        return "router-deleted";
    if (!termcore_router_enabled (router))
        return "router-disabled";
    if (!ep_model_view_get (self->view, EP__ENTITY_TYPE__ENTITY_SERVICE, service_id))
        return "service-deleted";
    return "service-not-hosted";
}

//  Why the router cannot delete its terminators itself (for reasons).
static const char *
s_why_absent (terminators_t *self, const char *router_id)
{
    const Ep__Entity *router = ep_model_view_get (self->view, EP__ENTITY_TYPE__ENTITY_ROUTER, router_id);
    return !router? "router-deleted": !termcore_router_enabled (router)? "router-disabled": "router-offline";
}

bool
termcore_online (terminators_t *self, const char *router_id)
{
    return termpresence_online (self->presence, router_id);
}

//  The router is there to delete its terminators itself.
static bool
s_router_present (terminators_t *self, const char *router_id)
{
    return termcore_router_enabled (ep_model_view_get (self->view, EP__ENTITY_TYPE__ENTITY_ROUTER, router_id))
        && termcore_online (self, router_id);
}

termsm_facts_t
termcore_facts (terminators_t *self, const termrec_t *record)
{
    termsm_facts_t facts = {
        .online = termcore_online (self, record->router_id),
        .hosted = termcore_hosting (self, record->router_id, record->service_id) != NULL
    };
    return facts;
}


//  ---------------------------------------------------------------------
//  Events and commands

//  Stages output for event on the topic format says (packed into the
//  outbox when keep).
static void
s_output (terminators_t *self, Ep__Event *event, bool keep, const char *format, ...)
    __attribute__ ((format (printf, 4, 5)));

static void
s_output (terminators_t *self, Ep__Event *event, bool keep, const char *format, ...)
{
    char topic [128];
    va_list args;
    va_start (args, format);
    vsnprintf (topic, sizeof topic, format, args);
    va_end (args);
    size_t size = ep__event__get_packed_size (event);
    uint8_t *bytes = (uint8_t *) malloc (size + 1);
    ep__event__pack (event, bytes);
    ep_output_item_t *output = ep_output_add_packed (self->output, topic, bytes, size, 0);
    EP_ASSERT (output);
    if (keep && !termstage_failed (self->stage)) {
        output->seq = termstore_outbox_add (self->store, topic, bytes, size);
        if (output->seq < 0) {
            ep_log_error ("cannot write the event outbox: %s", ep_store_last_error ());
            termstage_fail (self->stage);
        }
    }
    free (bytes);
}

//  Stages terminator.<type> for record as it is now, with its service's
//  counters after the change.
void
termcore_event (terminators_t *self, const termrec_t *record, const char *type, const char *reason)
{
    Ep__TerminatorEvent body = EP__TERMINATOR_EVENT__INIT;
    body.event_type = (char *) type;
    body.terminator_id = (char *) record->id;
    body.service_id = *record->service_id? (char *) record->service_id: NULL;
    body.router_id = (char *) record->router_id;
    body.host_id = *record->host_id? (char *) record->host_id: NULL;
    body.has_precedence = body.has_static_cost = body.has_router_online = true;
    body.precedence = (Ep__Precedence) record->precedence;
    body.static_cost = record->cost;
    body.router_online = termcore_online (self, record->router_id);
    if (*record->service_id) {
        termindex_counts_t *counts = termindex_counts (self->index, record->service_id);
        body.has_total_terminators = body.has_usable_default_terminators = true;
        body.has_usable_required_terminators = true;
        body.total_terminators = counts->total;
        body.usable_default_terminators = counts->usable_default;
        body.usable_required_terminators = counts->usable_required;
    }
    //  The model revision its lifecycle was last based on, for consumers
    //  that check ordering (docs/terminators.md).
    char text [512];
    snprintf (text, sizeof text, "%s (model revision %llu)", reason? reason: "",
              (unsigned long long) record->model_revision);
    body.reason = text;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_TERMINATOR;
    event.terminator = &body;
    s_output (self, &event, true, "terminator.%s", type);
}

//  The events a step's transitions make, as OpenZiti's lifecycle shows
//  them: created, established, failed, deleted (DELETING and a FAILED
//  terminator asserted again are not announced).
static void
s_step_events (terminators_t *self, const termrec_t *record, termsm_step_t step, const char *reason)
{
    for (int i = 0; i < step.count; i++) {
        termsm_state_t from = step.from [i], to = step.to [i];
        if (to == TERMSM_ESTABLISHING && from != TERMSM_FAILED)
            termcore_event (self, record, "created", reason);
        else
        if (to == TERMSM_ESTABLISHED)
            termcore_event (self, record, "established", reason);
        else
        if (to == TERMSM_FAILED)
            termcore_event (self, record, "failed", record->last_error? record->last_error: reason);
        else
        if (to == TERMSM_DELETED)
            termcore_event (self, record, "deleted", reason);
    }
}

//  Asks router_id (once per batch) to send its terminators for validation.
void
termcore_command (terminators_t *self, const char *router_id, int64_t now_ms)
{
    if (zhashx_lookup (self->commanded, router_id))
        return;
    zhashx_insert (self->commanded, router_id, (void *) 1);
    char id [33];
    ep_random_hex (id, 16);
    Ep__ValidateTerminators validate = EP__VALIDATE_TERMINATORS__INIT;
    Ep__Command command = EP__COMMAND__INIT;
    command.command_id = id;
    command.router_id = (char *) router_id;
    command.reply_to = "terminators";
    command.has_deadline_ms = true;
    command.deadline_ms = now_ms + COMMAND_TTL_MS;
    command.kind_case = EP__COMMAND__KIND_VALIDATE_TERMINATORS;
    command.validate_terminators = &validate;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_COMMAND;
    event.command = &command;
    s_output (self, &event, false, "cmd.%s.", router_id);
}

//  ---------------------------------------------------------------------
//  Transitions shared by requests and internal work

//  True if another live terminator of (router, service) exists besides id.
static bool
s_other_live (terminators_t *self, const termrec_t *record)
{
    zhashx_t *mine = termindex_of_router (self->index, record->router_id);
    termrec_t *other = mine? (termrec_t *) zhashx_first (mine): NULL;
    for (; other; other = (termrec_t *) zhashx_next (mine))
        if (other != record && termsm_live (other->sm.state)
        &&  streq (other->service_id, record->service_id))
            return true;
    return false;
}

//  record went from live to not live: the spin detector's key remembers.
static void
s_key_gone (terminators_t *self, const termrec_t *record)
{
    if (*record->service_id && !s_other_live (self, record)) {
        termsm_key_t *key = termstage_key (self->stage, record->router_id, record->service_id);
        termsm_key_delete (key);
    }
}

//  Stages next (a changed copy of a record) with the events of step. A
//  live terminator that stops being live counts for the spin detector,
//  unless repair (its router said it does not have it: no churn).
void
termcore_commit_step_as (terminators_t *self, termrec_t *next, termsm_step_t step, int64_t now_ms,
                  const char *reason, bool repair)
{
    bool was_live = false;
    termrec_t *before = termindex_lookup (self->index, next->id);
    if (before)
        was_live = termsm_live (before->sm.state);
    next->generation++;
    next->updated_at_ms = now_ms;
    termstage_put (self->stage, next);
    if (was_live && !termsm_live (next->sm.state) && !repair)
        s_key_gone (self, termindex_lookup (self->index, next->id));
    s_step_events (self, termindex_lookup (self->index, next->id), step, reason);
}

void
termcore_commit_step (terminators_t *self, termrec_t *next, termsm_step_t step, int64_t now_ms,
               const char *reason)
{
    termcore_commit_step_as (self, next, step, now_ms, reason, false);
}

//  The model says record goes.
void
termcore_retire (terminators_t *self, const termrec_t *record, bool router_present, const char *why,
          int64_t now_ms)
{
    termrec_t *next = termrec_dup (record);
    termsm_step_t step = termsm_retire (&next->sm, &self->config.sm, router_present, now_ms);
    uint64_t revision = ep_model_view_revision (self->view);
    if (revision > next->model_revision)
        next->model_revision = revision;
    termrec_set_error (next, "%s at model revision %llu", why, (unsigned long long) revision);
    termcore_commit_step (self, next, step, now_ms, why);
    termrec_destroy (&next);
}

void
termcore_confirm (terminators_t *self, const termrec_t *record, const char *why, int64_t now_ms)
{
    termrec_t *next = termrec_dup (record);
    termsm_step_t step = termsm_confirm (&next->sm, &self->config.sm, now_ms);
    if (step.count)
        termcore_commit_step (self, next, step, now_ms, why);
    termrec_destroy (&next);
}

//  Checks one terminator against the model and presence.
void
termcore_reconcile (terminators_t *self, const termrec_t *record, int64_t now_ms)
{
    if (termsm_live (record->sm.state)) {
        if (!termcore_hosting (self, record->router_id, record->service_id))
            termcore_retire (self, record, s_router_present (self, record->router_id),
                      termcore_why_not_hosted (self, record->router_id, record->service_id), now_ms);
    }
    else
    if (record->sm.state == TERMSM_DELETING && !s_router_present (self, record->router_id))
        termcore_confirm (self, record, s_why_absent (self, record->router_id), now_ms);
}

void
termcore_reply (terminators_t *self, const termrec_t *record, terminators_result_t *result)
{
    termreply_terminator (result, record, termcore_online (self, record->router_id));
}
