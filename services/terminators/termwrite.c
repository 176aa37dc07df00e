/*  termwrite.c: the write requests of the terminator core (create,
    update, delete, validate), each staged in its own savepoint
    (terminators_write in terminators.h). Requests speak for their router
    (router_id, vouched for by the watchdog) and carry the model revision
    they were based on: a request older than the terminator's last change
    is stale and changes nothing; the spin detector watches create ->
    delete -> create of one (router, service). docs/terminators.md is the
    contract.
*/
#include "termcore.h"
#include "ep_log.h"
#include <sodium.h>

#define VALIDATE_MAX    100000      //  terminators in one validate request
#define ADDRESS_MAX     256

static bool
s_check_fields (const Ep__Terminator *t, const char *op, terminators_result_t *result)
{
    if (t->host_id && *t->host_id && !ep_id_valid (t->host_id)) {
        termreply_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, false,
                "%s.host_id \"%.64s\": use 1 to 64 of A-Z a-z 0-9 _ - (or leave it out)", op, t->host_id);
        return false;
    }
    if (t->address && strlen (t->address) > ADDRESS_MAX) {
        termreply_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, false,
                "%s.address: at most %d characters", op, ADDRESS_MAX);
        return false;
    }
    if (t->has_cost && t->cost > 65535) {
        termreply_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, false,
                "%s.cost %u: use 0 to 65535", op, t->cost);
        return false;
    }
    if (t->has_precedence && (unsigned) t->precedence > EP__PRECEDENCE__PRECEDENCE_FAILED) {
        termreply_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, false,
                "%s.precedence: use default, required or failed", op);
        return false;
    }
    return true;
}

//  Applies the cost, precedence (and address) t carries to next; true if
//  anything changed.
static bool
s_patch (termrec_t *next, const Ep__Terminator *t, bool address)
{
    bool changed = false;
    if (t->has_cost && t->cost != next->cost) {
        next->cost = t->cost;
        changed = true;
    }
    if (t->has_precedence && (uint32_t) t->precedence != next->precedence) {
        next->precedence = (uint32_t) t->precedence;
        changed = true;
    }
    if (address && t->address && *t->address
    &&  (!next->address || !streq (next->address, t->address))) {
        termrec_set_address (next, t->address);
        changed = true;
    }
    return changed;
}

static void
s_spin (terminators_t *self, const termrec_t *record, const char *router_id, const char *service_id,
        const char *id, uint64_t since, uint64_t touch)
{
    char reason [320];
    snprintf (reason, sizeof reason,
              "create -> delete -> create of %s on router %s for service %s: the earlier create was "
              "based on model revision %llu and nothing touched them since (last touch %llu)",
              id, router_id, service_id, (unsigned long long) since, (unsigned long long) touch);
    ep_log_warn ("terminator spin: %s", reason);
    termrec_t probe;
    memset (&probe, 0, sizeof probe);
    if (record)
        termrec_copy (&probe, record);
    snprintf (probe.id, sizeof probe.id, "%s", id);
    snprintf (probe.router_id, sizeof probe.router_id, "%s", router_id);
    snprintf (probe.service_id, sizeof probe.service_id, "%s", service_id);
    termcore_event (self, &probe, "spin", reason);
    free (probe.address);
    free (probe.last_error);
}

static void
s_create (terminators_t *self, const char *router_id, uint64_t revision, const Ep__Terminator *t,
          int64_t now_ms, terminators_result_t *result)
{
    if (!t || !ep_id_valid (t->id)) {
        termreply_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, false,
                "create.id: the router's id for the terminator, 1 to 64 of A-Z a-z 0-9 _ -");
        return;
    }
    if (!ep_id_valid (t->service_id)) {
        termreply_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, false,
                "create.service_id: the id of a service the router hosts is required");
        return;
    }
    if (t->router_id && *t->router_id && !streq (t->router_id, router_id)) {
        termreply_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, false,
                "create.router_id %.64s differs from the router the request speaks for (%s)",
                t->router_id, router_id);
        return;
    }
    if (!s_check_fields (t, "create", result))
        return;
    const char *host = t->host_id? t->host_id: "";
    termrec_t *record = termindex_lookup (self->index, t->id);
    if (record && !streq (record->router_id, router_id)) {
        termreply_fail (result, EP__STATUS__CODE__CONFLICT, false,
                "terminator %s belongs to router %s: the router must choose another id",
                t->id, record->router_id);
        return;
    }
    if (record && termsm_live (record->sm.state)
    &&  (!streq (record->service_id, t->service_id) || !streq (record->host_id, host))) {
        termreply_fail (result, EP__STATUS__CODE__CONFLICT, false,
                "terminator %s exists for service %s%s%s: the router must choose another id",
                t->id, record->service_id, *record->host_id? " and host ": "", record->host_id);
        return;
    }
    uint64_t view = ep_model_view_revision (self->view);
    const Ep__HostedService *hosting = termcore_hosting (self, router_id, t->service_id);
    if (!hosting) {
        termreply_fail (result, EP__STATUS__CODE__FAILED_PRECONDITION, false,
                "router %s does not host service %s at model revision %llu (%s): it gets the change "
                "in its model slice and must not create this terminator",
                router_id, t->service_id, (unsigned long long) view,
                termcore_why_not_hosted (self, router_id, t->service_id));
        return;
    }
    termsm_state_t state = record? record->sm.state: TERMSM_NONE;
    termsm_order_t order = termsm_order_create (state, record? record->model_revision: 0, revision);
    uint64_t touch = terminators_touch (self, router_id, t->service_id);
    termsm_key_t *key = termstage_key (self->stage, router_id, t->service_id);
    uint64_t since = key->create_revision;
    if (termsm_key_create (key, touch, revision, order == TERMSM_APPLY))
        s_spin (self, record, router_id, t->service_id, t->id, since, touch);
    if (order == TERMSM_STALE) {
        termreply_fail (result, EP__STATUS__CODE__FAILED_PRECONDITION, false,
                "terminator %s was deleted based on model revision %llu; this create is based on "
                "revision %llu, so it was sent before the delete and does not bring it back (create "
                "again with a newer model revision if the router hosts the service again)",
                t->id, (unsigned long long) record->model_revision, (unsigned long long) revision);
        termcore_reply (self, record, result);
        return;
    }
    termrec_t *next = record? termrec_dup (record): termrec_new (t->id);
    termsm_facts_t facts = { .online = termcore_online (self, router_id), .hosted = true };
    const char *reason = "router-created";
    bool changed, patched = false;
    if (termsm_live (state)) {
        //  The router asserts it again: idempotent; a newer create may
        //  carry new cost, precedence or address.
        patched = revision >= next->model_revision && s_patch (next, t, true);
        changed = patched || next->sm.lacks || revision > next->model_revision
               || revision > next->create_revision;
        if (revision > next->model_revision)
            next->model_revision = revision;
        reason = "router-asserted";
    }
    else {
        //  New, or a new incarnation of a deleted one.
        if (record)
            ep_log_info ("terminator %s comes back: created based on model revision %llu, after its "
                         "deletion based on %llu", t->id, (unsigned long long) revision,
                         (unsigned long long) record->model_revision);
        snprintf (next->service_id, sizeof next->service_id, "%s", t->service_id);
        snprintf (next->host_id, sizeof next->host_id, "%s", host);
        termrec_set_address (next, t->address);
        next->cost = t->has_cost? t->cost: 0;
        next->precedence = t->has_precedence? (uint32_t) t->precedence: EP__PRECEDENCE__PRECEDENCE_DEFAULT;
        next->created_at_ms = now_ms;
        next->model_revision = revision;
        termrec_set_error (next, NULL);
        changed = true;
    }
    snprintf (next->router_id, sizeof next->router_id, "%s", router_id);
    if (revision > next->create_revision || !termsm_live (state))
        next->create_revision = revision;
    termsm_step_t step = termsm_create (&next->sm, &self->config.sm, facts, now_ms);
    if (step.count && next->sm.state == TERMSM_ESTABLISHED)
        termrec_set_error (next, NULL);
    if (changed || step.count)
        termcore_commit_step (self, next, step, now_ms, reason);
    if (patched)
        termcore_event (self, termindex_lookup (self->index, t->id), "updated", "router-created-again");
    termrec_destroy (&next);
    termcore_reply (self, termindex_lookup (self->index, t->id), result);
}

static void
s_delete (terminators_t *self, const char *router_id, uint64_t revision, const char *id,
          int64_t now_ms, terminators_result_t *result)
{
    if (!ep_id_valid (id)) {
        termreply_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, false,
                "delete_id: the terminator's id, 1 to 64 of A-Z a-z 0-9 _ -");
        return;
    }
    termrec_t *record = termindex_lookup (self->index, id);
    if (!record) {
        //  Not known (yet): a tombstone keeps a late create from bringing it back.
        termrec_t *tombstone = termrec_new (id);
        snprintf (tombstone->router_id, sizeof tombstone->router_id, "%s", router_id);
        tombstone->sm.state = TERMSM_DELETED;
        tombstone->sm.due_ms = now_ms + self->config.sm.tombstone_ttl_ms;
        tombstone->model_revision = revision;
        tombstone->created_at_ms = now_ms;
        termrec_set_error (tombstone, "deleted before it was created (tombstone)");
        termcore_commit_step (self, tombstone, (termsm_step_t) { 0 }, now_ms, NULL);
        termrec_destroy (&tombstone);
        termcore_reply (self, termindex_lookup (self->index, id), result);
        return;
    }
    if (!streq (record->router_id, router_id)) {
        termreply_fail (result, EP__STATUS__CODE__PERMISSION_DENIED, false,
                "terminator %s belongs to router %s: only its router may delete it", id, record->router_id);
        return;
    }
    if (termsm_order_change (record->sm.state, record->model_revision, revision) == TERMSM_STALE) {
        termreply_fail (result, EP__STATUS__CODE__FAILED_PRECONDITION, false,
                "terminator %s was created again based on model revision %llu, after this delete "
                "(based on %llu) was sent: it stays", id, (unsigned long long) record->model_revision,
                (unsigned long long) revision);
        termcore_reply (self, record, result);
        return;
    }
    termrec_t *next = termrec_dup (record);
    termsm_step_t step = termsm_delete (&next->sm, &self->config.sm, now_ms);
    bool newer = revision > next->model_revision;
    if (newer)
        next->model_revision = revision;
    if (step.count) {
        termrec_set_error (next, "deleted by its router");
        termcore_commit_step (self, next, step, now_ms, "router-deleted");
    }
    else
    if (newer)      //  deleted already; the tombstone now covers the newer revision
        termcore_commit_step (self, next, step, now_ms, NULL);
    termrec_destroy (&next);
    termcore_reply (self, termindex_lookup (self->index, id), result);
}

static void
s_update (terminators_t *self, const char *router_id, uint64_t revision, const Ep__Terminator *t,
          int64_t now_ms, terminators_result_t *result)
{
    if (!t || !ep_id_valid (t->id)) {
        termreply_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, false,
                "update.id: the terminator's id, 1 to 64 of A-Z a-z 0-9 _ -");
        return;
    }
    if (!s_check_fields (t, "update", result))
        return;
    termrec_t *record = termindex_lookup (self->index, t->id);
    if (!record) {
        termreply_fail (result, EP__STATUS__CODE__NOT_FOUND, true,
                "terminator %s is not known (yet): create it first", t->id);
        return;
    }
    if (!streq (record->router_id, router_id)) {
        termreply_fail (result, EP__STATUS__CODE__PERMISSION_DENIED, false,
                "terminator %s belongs to router %s: only its router may change it", t->id, record->router_id);
        return;
    }
    if (record->sm.state == TERMSM_DELETED) {
        termreply_fail (result, EP__STATUS__CODE__NOT_FOUND, false, "terminator %s was deleted", t->id);
        return;
    }
    if (record->sm.state == TERMSM_DELETING) {
        termreply_fail (result, EP__STATUS__CODE__FAILED_PRECONDITION, false,
                "terminator %s is being deleted (%s)", t->id, record->last_error? record->last_error: "");
        return;
    }
    if (termsm_order_change (record->sm.state, record->model_revision, revision) == TERMSM_STALE) {
        termreply_fail (result, EP__STATUS__CODE__FAILED_PRECONDITION, false,
                "terminator %s was changed based on model revision %llu, newer than this update's %llu",
                t->id, (unsigned long long) record->model_revision, (unsigned long long) revision);
        termcore_reply (self, record, result);
        return;
    }
    termrec_t *next = termrec_dup (record);
    bool changed = s_patch (next, t, false);
    if (changed || revision > next->model_revision) {
        if (revision > next->model_revision)
            next->model_revision = revision;
        termcore_commit_step (self, next, (termsm_step_t) { 0 }, now_ms, NULL);
        if (changed)
            termcore_event (self, termindex_lookup (self->index, t->id), "updated", "router-updated");
    }
    termrec_destroy (&next);
    termcore_reply (self, termindex_lookup (self->index, t->id), result);
}

static void
s_validate (terminators_t *self, const char *router_id, const Ep__TerminatorValidate *validate,
            int64_t now_ms, terminators_result_t *result)
{
    size_t n = validate? validate->n_terminators: 0;
    if (n > VALIDATE_MAX) {
        termreply_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, false,
                "validate: at most %d terminators per request", VALIDATE_MAX);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const Ep__Terminator *t = validate->terminators [i];
        if (!ep_id_valid (t->id) || (t->service_id && *t->service_id && !ep_id_valid (t->service_id))) {
            termreply_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, false,
                    "validate.terminators[%zu]: needs a valid id (and service_id, if set)", i);
            return;
        }
    }
    const Ep__Entity *router = ep_model_view_get (self->view, EP__ENTITY_TYPE__ENTITY_ROUTER, router_id);
    bool present = termcore_router_enabled (router);
    zhashx_t *listed = zhashx_new ();          //  ids the router holds
    zhashx_t *covered = zhashx_new ();         //  hosted services it has a terminator for
    for (size_t i = 0; i < n; i++) {
        const Ep__Terminator *t = validate->terminators [i];
        zhashx_update (listed, t->id, (void *) 1);
        termrec_t *record = termindex_lookup (self->index, t->id);
        if (record && !streq (record->router_id, router_id)) {
            termreply_to_delete (result, t->id);
            continue;
        }
        const char *service = record && *record->service_id? record->service_id
                            : t->service_id? t->service_id: "";
        const Ep__HostedService *hosting = termcore_hosting (self, router_id, service);
        if (record && termsm_live (record->sm.state)) {
            if (!hosting) {
                termreply_to_delete (result, t->id);
                termcore_retire (self, record, present, termcore_why_not_hosted (self, router_id, service), now_ms);
                continue;
            }
            zhashx_update (covered, service, (void *) 1);
            if (record->sm.lacks || record->sm.state != TERMSM_ESTABLISHED) {
                termrec_t *next = termrec_dup (record);
                bool lacked = next->sm.lacks;
                next->sm.lacks = false;
                termsm_step_t step = termsm_evaluate (&next->sm, &self->config.sm, termcore_facts (self, next), now_ms);
                if (step.count)
                    termrec_set_error (next, NULL);
                if (step.count || lacked)
                    termcore_commit_step (self, next, step, now_ms, "router-validated");
                termrec_destroy (&next);
            }
        }
        else
        if (record)     //  DELETING or DELETED: the router must let it go
            termreply_to_delete (result, t->id);
        else
        if (hosting) {  //  never arrived here: the router sends its create again
            termreply_to_create (result, router_id, t->id, service, NULL, hosting);
            zhashx_update (covered, service, (void *) 1);
        }
        else
            termreply_to_delete (result, t->id);
    }
    //  What we hold for the router that it did not list.
    zlistx_t *ids = termindex_router_ids (self->index, router_id);
    for (const char *id = (const char *) zlistx_first (ids); id; id = (const char *) zlistx_next (ids)) {
        termrec_t *record = termindex_lookup (self->index, id);
        if (!record || zhashx_lookup (listed, id))
            continue;
        if (record->sm.state == TERMSM_DELETING)
            termcore_confirm (self, record, "router-confirmed", now_ms);
        else
        if (termsm_live (record->sm.state)) {
            const Ep__HostedService *hosting = termcore_hosting (self, router_id, record->service_id);
            if (!hosting)
                termcore_retire (self, record, false, termcore_why_not_hosted (self, router_id, record->service_id), now_ms);
            else {
                termrec_t *next = termrec_dup (record);
                termsm_step_t step = termsm_lacks (&next->sm, &self->config.sm, now_ms, randombytes_random ());
                termrec_set_error (next, "its router does not have it (validate); it was told to create it");
                termcore_commit_step (self, next, step, now_ms, "router-lacks-it");
                termrec_destroy (&next);
                termreply_to_create (result, router_id, id, record->service_id,
                             termindex_lookup (self->index, id), hosting);
                zhashx_update (covered, record->service_id, (void *) 1);
            }
        }
    }
    zlistx_destroy (&ids);
    //  Hosted services without any terminator: the router picks ids.
    for (size_t i = 0; present && i < router->router->n_hosted; i++) {
        const Ep__HostedService *hosting = router->router->hosted [i];
        if (hosting->service_id && !zhashx_lookup (covered, hosting->service_id))
            termreply_to_create (result, router_id, NULL, hosting->service_id, NULL, hosting);
    }
    zhashx_destroy (&listed);
    zhashx_destroy (&covered);
}

bool
terminators_is_write (const Ep__TerminatorRequest *request)
{
    switch (request->op_case) {
        case EP__TERMINATOR_REQUEST__OP_CREATE:
        case EP__TERMINATOR_REQUEST__OP_UPDATE:
        case EP__TERMINATOR_REQUEST__OP_DELETE_ID:
        case EP__TERMINATOR_REQUEST__OP_VALIDATE:
            return true;
        default:
            return false;
    }
}

void
terminators_write (terminators_t *self, const Ep__TerminatorRequest *request, int64_t now_ms,
                   terminators_result_t *result)
{
    EP_ASSERT (self->open);
    result->reply.has_model_revision = true;
    result->reply.model_revision = ep_model_view_revision (self->view);
    const char *router_id = request->router_id;
    if (!ep_id_valid (router_id)) {
        termreply_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, false,
                "router_id: the router the request speaks for (set by the watchdog) is required");
        return;
    }
    uint64_t revision = request->has_model_revision? request->model_revision: 0;
    termstage_mark_t mark = termstage_savepoint (self->stage, "request");
    switch (request->op_case) {
        case EP__TERMINATOR_REQUEST__OP_CREATE:
            s_create (self, router_id, revision, request->create, now_ms, result);
            break;
        case EP__TERMINATOR_REQUEST__OP_UPDATE:
            s_update (self, router_id, revision, request->update, now_ms, result);
            break;
        case EP__TERMINATOR_REQUEST__OP_DELETE_ID:
            s_delete (self, router_id, revision, request->delete_id, now_ms, result);
            break;
        case EP__TERMINATOR_REQUEST__OP_VALIDATE:
            s_validate (self, router_id, request->validate, now_ms, result);
            break;
        default:
            termreply_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, false, "not a write request");
            break;
    }
    if (termstage_release (self->stage, mark) != 0) {
        terminators_result_clear (result);
        terminators_result_init (result, result->reply.request_id);
        termreply_fail (result, EP__STATUS__CODE__UNAVAILABLE, true,
                "the terminator store cannot take writes now (%s); retry", ep_store_last_error ());
    }
}
