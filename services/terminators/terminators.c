/*  terminators.c: the terminator service's state (see terminators.h).

    Memory holds every terminator (termindex: tombstones included, indexes
    by router and by service, per-service counters, timers), so nothing on
    a hot path reads SQL; terminators.db holds the same rows for restarts,
    and the list API pages through its indexes. A change is staged by
    applying it to memory and writing its row inside the open transaction
    (termstage), with the previous value kept in an undo log: a failed
    savepoint or commit puts memory back exactly as it was. The write
    requests are in termwrite.c, the transitions they share with the
    internal work here in termcore.c.

    The model view's observer records, per (router, service), the last
    revision that touched it (for the spin detector) and marks routers and
    services to reconcile; reconciliation runs inside the next batch and
    always compares against the view as it is then, so it is idempotent
    and needs no ordering with the requests of the same batch.
*/
#include "termcore.h"
#include "ep_log.h"
#include "ep_rpc_server.h"
#include <sodium.h>

#define PAGE_DEFAULT    100
#define PAGE_MAX        1000
#define TRIM_IDLE_MS    1000        //  outbox trimmed at least this often when idle

//  ---------------------------------------------------------------------
//  Small helpers

void
terminators_config_defaults (terminators_config_t *config)
{
    memset (config, 0, sizeof *config);
    config->sm.establish_timeout_ms = 10000;
    config->sm.retry_base_ms = 1000;
    config->sm.retry_max_ms = 60000;
    config->sm.retry_cap = 8;
    config->sm.delete_grace_ms = 10000;
    config->sm.tombstone_ttl_ms = 24 * 3600 * 1000;
    config->settle_ms = 3500;
    config->presence_expiry_ms = 3500;
    config->work_budget = 20000;
}

static uint64_t
s_touch_get (terminators_t *self, const char *key)
{
    return (uint64_t) (uintptr_t) zhashx_lookup (self->touch, key);
}

uint64_t
terminators_touch (terminators_t *self, const char *router_id, const char *service_id)
{
    char key [140];
    uint64_t pair = s_touch_get (self, termindex_pair (key, sizeof key, router_id, service_id));
    uint64_t router = s_touch_get (self, termindex_pair (key, sizeof key, router_id, ""));
    uint64_t service = s_touch_get (self, termindex_pair (key, sizeof key, "", service_id));
    uint64_t touch = pair > router? pair: router;
    return touch > service? touch: service;
}

static void
s_touch_set (terminators_t *self, const char *router_id, const char *service_id, uint64_t revision)
{
    char key [140];
    termindex_pair (key, sizeof key, router_id, service_id);
    if (revision > s_touch_get (self, key))
        zhashx_update (self->touch, key, (void *) (uintptr_t) revision);
}

//  ---------------------------------------------------------------------
//  Results

void
terminators_result_init (terminators_result_t *result, const char *request_id)
{
    memset (result, 0, sizeof *result);
    ep__terminator_reply__init (&result->reply);
    result->reply.status = ep_status_ok (&result->status);
    result->reply.request_id = (char *) request_id;
    result->owned = ep_owned_new ();
}

void
terminators_result_clear (terminators_result_t *result)
{
    ep_owned_destroy (&result->owned);
}

//  ---------------------------------------------------------------------
//  Internal work

//  Reconciles the terminators whose ids are listed (and destroys the
//  list). Returns the work done, for the budget.
static size_t
s_work_ids (terminators_t *self, zlistx_t *ids, int64_t now_ms)
{
    size_t examined = zlistx_size (ids);
    for (const char *id = (const char *) zlistx_first (ids); id; id = (const char *) zlistx_next (ids)) {
        termrec_t *record = termindex_lookup (self->index, id);
        if (record)
            termcore_reconcile (self, record, now_ms);
    }
    zlistx_destroy (&ids);
    return examined + 1;
}

//  The router's presence changed: establish what waited for it, finish
//  deletions it can no longer confirm, ask it about what it lacks.
static size_t
s_work_presence (terminators_t *self, const char *router_id, int64_t now_ms)
{
    zlistx_t *ids = termindex_router_ids (self->index, router_id);
    size_t examined = zlistx_size (ids);
    bool ask = false;
    for (const char *id = (const char *) zlistx_first (ids); id; id = (const char *) zlistx_next (ids)) {
        termrec_t *record = termindex_lookup (self->index, id);
        if (!record)
            continue;
        if (record->sm.state == TERMSM_ESTABLISHING || record->sm.state == TERMSM_FAILED) {
            termrec_t *next = termrec_dup (record);
            termsm_step_t step = termsm_evaluate (&next->sm, &self->config.sm, termcore_facts (self, next), now_ms);
            if (step.count) {
                termrec_set_error (next, NULL);
                termcore_commit_step (self, next, step, now_ms, "router-online");
            }
            else
            if (next->sm.lacks && termcore_online (self, router_id))
                ask = true;
            termrec_destroy (&next);
        }
        else
            termcore_reconcile (self, record, now_ms);
    }
    if (ask)
        termcore_command (self, router_id, now_ms);
    zlistx_destroy (&ids);
    return examined + 1;
}

static void
s_work_timer (terminators_t *self, termrec_t *record, int64_t now_ms)
{
    if (record->sm.state == TERMSM_DELETED) {
        termstage_remove (self->stage, record->id);      //  the tombstone's time is up
        return;
    }
    termrec_t *next = termrec_dup (record);
    termsm_facts_t facts = termcore_facts (self, next);
    bool lacked = next->sm.lacks;
    termsm_step_t step = termsm_timer (&next->sm, &self->config.sm, facts, now_ms, randombytes_random ());
    const char *reason = "timer";
    if (next->sm.state == TERMSM_FAILED) {
        const char *why = next->sm.lacks? "its router does not have it (validate)"
                        : !facts.online? "its router is offline"
                        : "its hosting is not confirmed by the model";
        if (next->sm.due_ms)
            termrec_set_error (next, "%s; attempt %u of %u", why, next->sm.attempts,
                               self->config.sm.retry_cap);
        else
            termrec_set_error (next, "%s; gave up retrying after %u attempts, waiting for the router",
                               why, self->config.sm.retry_cap);
        reason = next->last_error;
    }
    else
    if (next->sm.state == TERMSM_ESTABLISHED) {
        termrec_set_error (next, NULL);
        reason = "retry";
    }
    else
    if (next->sm.state == TERMSM_DELETED && lacked) {
        termrec_set_error (next, "its router kept saying it does not have it (%u validations)",
                           self->config.sm.retry_cap);
        reason = "router-lacks-it";
    }
    else
    if (next->sm.state == TERMSM_DELETED)
        reason = "delete-grace-expired";
    termcore_commit_step_as (self, next, step, now_ms, reason, lacked);
    if (step.ask_router)
        termcore_command (self, next->router_id, now_ms);
    termrec_destroy (&next);
}

//  Copies the first key of set into id; false if set is empty.
static bool
s_first_key (zhashx_t *set, char id [65])
{
    if (!zhashx_first (set))
        return false;
    snprintf (id, 65, "%s", (const char *) zhashx_cursor (set));
    return true;
}

void
terminators_work (terminators_t *self, int64_t now_ms)
{
    EP_ASSERT (self->open);
    if (!self->loaded)
        return;                 //  an empty view would retire everything
    termstage_mark_t mark = termstage_savepoint (self->stage, "work");
    size_t budget = self->config.work_budget;
    char id [65];
    while (budget > 0 && !termstage_failed (self->stage) && s_first_key (self->dirty_routers, id)) {
        termstage_consume (self->stage, self->dirty_routers, id);
        size_t cost = s_work_ids (self, termindex_router_ids (self->index, id), now_ms);
        budget = cost < budget? budget - cost: 0;
    }
    while (budget > 0 && !termstage_failed (self->stage) && s_first_key (self->dirty_services, id)) {
        termstage_consume (self->stage, self->dirty_services, id);
        size_t cost = s_work_ids (self, termindex_service_ids (self->index, id), now_ms);
        budget = cost < budget? budget - cost: 0;
    }
    while (budget > 0 && !termstage_failed (self->stage) && s_first_key (self->presence_dirty, id)) {
        termstage_consume (self->stage, self->presence_dirty, id);
        size_t cost = s_work_presence (self, id, now_ms);
        budget = cost < budget? budget - cost: 0;
    }
    while (budget > 0 && !termstage_failed (self->stage) && now_ms >= self->settle_until_ms) {
        termrec_t *record = termindex_take_due (self->index, now_ms);
        if (!record)
            break;
        s_work_timer (self, record, now_ms);
        budget--;
    }
    if (self->published_seq > self->trimmed_seq) {
        if (termstore_outbox_trim (self->store, self->published_seq) == 0)
            self->trim_pending_seq = self->published_seq;
        else
            termstage_fail (self->stage);
    }
    if (termstage_release (self->stage, mark) != 0) {
        self->trim_pending_seq = 0;
        ep_log_error ("internal work rolled back: %s", ep_store_last_error ());
    }
}

bool
terminators_has_work (terminators_t *self, int64_t now_ms)
{
    if (!self->loaded)
        return false;
    if (zhashx_size (self->dirty_routers) || zhashx_size (self->dirty_services)
    ||  zhashx_size (self->presence_dirty))
        return true;
    if (self->published_seq > self->trimmed_seq && now_ms - self->last_trim_ms >= TRIM_IDLE_MS)
        return true;
    if (now_ms < self->settle_until_ms)
        return false;
    int64_t timer = termindex_next_timer (self->index);
    return timer && timer <= now_ms;
}

int64_t
terminators_next_due (terminators_t *self, int64_t now_ms, int64_t cap_ms)
{
    if (terminators_has_work (self, now_ms))
        return 0;
    int64_t due = cap_ms;
    if (self->published_seq > self->trimmed_seq && self->last_trim_ms + TRIM_IDLE_MS - now_ms < due)
        due = self->last_trim_ms + TRIM_IDLE_MS - now_ms;
    int64_t timer = termindex_next_timer (self->index);
    if (timer) {
        int64_t at = timer > self->settle_until_ms? timer: self->settle_until_ms;
        if (at - now_ms < due)
            due = at - now_ms;
    }
    return due > 0? due: 0;
}

//  ---------------------------------------------------------------------
//  Batches

int
terminators_begin (terminators_t *self)
{
    EP_ASSERT (!self->open);
    if (ep_store_begin (self->store) != 0)
        return -1;
    self->open = true;
    self->trim_pending_seq = 0;
    zhashx_purge (self->commanded);
    return 0;
}

int
terminators_commit (terminators_t *self)
{
    EP_ASSERT (self->open);
    int rc = ep_store_in_transaction (self->store)? ep_store_commit (self->store): -1;
    if (rc != 0) {
        ep_log_error ("commit failed, batch undone: %s", ep_store_last_error ());
        terminators_rollback (self);
        return rc;
    }
    termstage_keep (self->stage);
    ep_output_item_t *output = ep_output_first_staged (self->output);
    for (; output; output = ep_output_next_staged (self->output)) {
        if (output->event->body_case == EP__EVENT__BODY_TERMINATOR
        &&  output->event->terminator->event_type
        &&  streq (output->event->terminator->event_type, "spin"))
            self->spins++;
        if (output->event->body_case == EP__EVENT__BODY_COMMAND)
            self->commands++;
    }
    ep_output_commit (self->output);
    if (self->trim_pending_seq) {
        self->trimmed_seq = self->trim_pending_seq;
        self->last_trim_ms = ep_wall_ms ();
    }
    self->trim_pending_seq = 0;
    self->open = false;
    return rc;
}

void
terminators_rollback (terminators_t *self)
{
    EP_ASSERT (self->open);
    if (ep_store_in_transaction (self->store))
        ep_store_rollback (self->store);
    termstage_undo (self->stage);
    self->trim_pending_seq = 0;
    self->open = false;
}

typedef struct {
    terminators_t *self;
    void (*fn) (void *arg, const char *id, const termrec_t *now, const termrec_t *before);
    void *arg;
} s_changes_t;

static void
s_changed (void *arg, const char *id, const termrec_t *before)
{
    s_changes_t *changes = (s_changes_t *) arg;
    const termrec_t *now = termindex_lookup (changes->self->index, id);
    if (now || before)
        changes->fn (changes->arg, id, now, before);
}

void
terminators_changes (terminators_t *self,
                     void (*fn) (void *arg, const char *id, const termrec_t *now,
                                 const termrec_t *before),
                     void (*out) (void *arg, const ep_output_item_t *item), void *arg)
{
    EP_ASSERT (self->open);
    s_changes_t changes = { self, fn, arg };
    termstage_each_changed (self->stage, s_changed, &changes);
    ep_output_item_t *item = ep_output_first_staged (self->output);
    for (; item; item = ep_output_next_staged (self->output))
        out (arg, item);
}

void
terminators_adopt (terminators_t *self, termrec_t **record_p)
{
    EP_ASSERT (!self->open);
    termrec_t *record = *record_p;
    //  The cache only: etcd holds it already.
    if (termstore_save (self->store, record) != 0)
        ep_log_error ("cannot cache terminator %s: %s", record->id, ep_store_last_error ());
    termindex_apply (self->index, record);
    zhashx_update (self->dirty_routers, record->router_id, (void *) 1);
    termrec_destroy (record_p);
}

void
terminators_adopted (terminators_t *self)
{
    EP_ASSERT (!self->open);
    termindex_load_keys (self->index);
}

int64_t
terminators_adopt_event (terminators_t *self, const char *topic, const void *body, size_t size)
{
    EP_ASSERT (!self->open);
    Ep__Event *event = ep__event__unpack (NULL, size, (const uint8_t *) body);
    if (!event)
        return -1;
    int64_t seq = termstore_outbox_add (self->store, topic, body, size);
    if (seq < 0) {
        ep__event__free_unpacked (event, NULL);
        return -1;
    }
    ep_output_take (self->output, topic, &event, seq);
    ep_output_commit (self->output);
    return seq;
}

size_t
terminators_drop (terminators_t *self, bool (*mine) (void *arg, const char *router_id), void *arg)
{
    EP_ASSERT (!self->open);
    zlistx_t *ids = zlistx_new ();
    zlistx_set_destructor (ids, (czmq_destructor *) zstr_free);
    for (termrec_t *record = termindex_first (self->index); record;
         record = termindex_next (self->index))
        if (!mine (arg, record->router_id))
            zlistx_add_end (ids, strdup (record->id));
    for (char *id = (char *) zlistx_first (ids); id; id = (char *) zlistx_next (ids)) {
        if (termstore_remove (self->store, id) != 0)
            ep_log_error ("cannot uncache terminator %s: %s", id, ep_store_last_error ());
        termindex_forget (self->index, id);
    }
    size_t dropped = zlistx_size (ids);
    zlistx_destroy (&ids);
    return dropped;
}

ep_output_item_t *
terminators_next_output (terminators_t *self)
{
    return ep_output_next (self->output);
}

void
terminators_published (terminators_t *self, int64_t seq)
{
    if (seq > self->published_seq)
        self->published_seq = seq;
}

static void
s_replay_one (void *arg, int64_t seq, const char *topic, const void *body, size_t size)
{
    terminators_t *self = (terminators_t *) arg;
    Ep__Event *event = ep__event__unpack (NULL, size, (const uint8_t *) body);
    if (!event) {
        ep_log_warn ("outbox entry %lld does not decode; dropped", (long long) seq);
        terminators_published (self, seq);
        return;
    }
    ep_output_take (self->output, topic? topic: "terminator.unknown", &event, seq);
}

int
terminators_replay_outbox (terminators_t *self)
{
    EP_ASSERT (!self->open);
    size_t before = ep_output_ready (self->output);
    int rc = termstore_outbox_load (self->store, s_replay_one, self);
    //  Committed by the earlier run: ready now, ahead of anything new.
    ep_output_commit (self->output);
    if (rc != 0)
        return -1;
    return (int) (ep_output_ready (self->output) - before);
}

//  ---------------------------------------------------------------------
//  Reads

static int
s_by_id (const void *a, const void *b)
{
    return strcmp (((const termrec_t *) a)->id, ((const termrec_t *) b)->id);
}

//  As termstore_list, over records (any order) instead of the store.
static void
s_list_records (zlistx_t *records, const char *service, const char *router, int state,
                const char *after, uint32_t limit, zlistx_t *rows)
{
    zlistx_t *kept = zlistx_new ();
    zlistx_set_comparator (kept, s_by_id);
    for (termrec_t *r = (termrec_t *) zlistx_first (records); r; r = (termrec_t *) zlistx_next (records)) {
        if ((service && !streq (r->service_id, service)) || (router && !streq (r->router_id, router))
        ||  (state >= 0? (int) r->sm.state != state: r->sm.state == TERMSM_DELETED)
        ||  strcmp (r->id, after) <= 0)
            continue;
        zlistx_add_end (kept, r);
    }
    zlistx_sort (kept);
    termrec_t *r = (termrec_t *) zlistx_first (kept);
    for (uint32_t n = 0; r && n < limit; n++, r = (termrec_t *) zlistx_next (kept))
        zlistx_add_end (rows, termrec_dup (r));
    zlistx_destroy (&kept);
}

//  list: from the store, or from records when given (the etcd mode).
static void
s_list (terminators_t *self, const Ep__TerminatorFilter *filter, zlistx_t *records,
        terminators_result_t *result)
{
    const char *service = filter && filter->service_id && *filter->service_id? filter->service_id: NULL;
    const char *router = filter && filter->router_id && *filter->router_id? filter->router_id: NULL;
    if ((service && !ep_id_valid (service)) || (router && !ep_id_valid (router))) {
        termreply_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, false,
                "list: service_id and router_id are entity ids (1 to 64 of A-Z a-z 0-9 _ -)");
        return;
    }
    int state = -1;
    if (filter && filter->has_state && filter->state != EP__TERMINATOR_STATE__TERMINATOR_STATE_UNSPECIFIED) {
        if ((unsigned) filter->state >= TERMSM_STATE_COUNT) {
            termreply_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, false,
                    "list.state: use establishing, established, deleting, deleted or failed");
            return;
        }
        state = (int) filter->state;
    }
    uint32_t page = filter && filter->has_page_size && filter->page_size? filter->page_size: PAGE_DEFAULT;
    if (page > PAGE_MAX)
        page = PAGE_MAX;
    zlistx_t *rows = zlistx_new ();
    const char *after = filter && filter->page_token? filter->page_token: "";
    if (records)
        s_list_records (records, service, router, state, after, page + 1, rows);
    else
    if (termstore_list (self->store, service, router, state, after, page + 1, rows) != 0)
        termreply_fail (result, EP__STATUS__CODE__UNAVAILABLE, true, "cannot read the terminator store now; retry");
    uint32_t count = 0;
    for (termrec_t *row = (termrec_t *) zlistx_first (rows); row; row = (termrec_t *) zlistx_next (rows)) {
        if (count++ == page) {
            result->reply.next_page_token = (char *) ep_owned_add (result->owned, strdup (result->reply.terminators
                                            [page - 1]->id), free);
            break;
        }
        termcore_reply (self, row, result);
    }
    for (termrec_t *row = (termrec_t *) zlistx_first (rows); row; row = (termrec_t *) zlistx_next (rows))
        termrec_destroy (&row);
    zlistx_destroy (&rows);
}

void
terminators_read (terminators_t *self, const Ep__TerminatorRequest *request, int64_t now_ms,
                  terminators_result_t *result)
{
    (void) now_ms;
    EP_ASSERT (!self->open);
    result->reply.has_model_revision = true;
    result->reply.model_revision = ep_model_view_revision (self->view);
    switch (request->op_case) {
        case EP__TERMINATOR_REQUEST__OP_GET_ID: {
            termrec_t *record = request->get_id? termindex_lookup (self->index, request->get_id): NULL;
            if (!record)
                termreply_fail (result, EP__STATUS__CODE__NOT_FOUND, false, "terminator %.64s does not exist",
                        request->get_id? request->get_id: "");
            else
                termcore_reply (self, record, result);
            break;
        }
        case EP__TERMINATOR_REQUEST__OP_LIST:
            s_list (self, request->list, NULL, result);
            break;
        case EP__TERMINATOR_REQUEST__OP_ACK:
            self->acks++;
            ep_log_debug ("router %s acknowledged command %s", request->router_id? request->router_id: "?",
                          request->ack && request->ack->command_id? request->ack->command_id: "?");
            break;
        default:
            termreply_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, false,
                    "request has no operation: set one of create, update, delete_id, get_id, list, validate, ack");
            break;
    }
}

void
terminators_read_records (terminators_t *self, const Ep__TerminatorRequest *request,
                          zlistx_t *records, terminators_result_t *result)
{
    result->reply.has_model_revision = true;
    result->reply.model_revision = ep_model_view_revision (self->view);
    if (request->op_case == EP__TERMINATOR_REQUEST__OP_LIST) {
        s_list (self, request->list, records, result);
        return;
    }
    EP_ASSERT (request->op_case == EP__TERMINATOR_REQUEST__OP_GET_ID);
    termrec_t *record = (termrec_t *) zlistx_first (records);
    while (record && !(request->get_id && streq (record->id, request->get_id)))
        record = (termrec_t *) zlistx_next (records);
    if (!record)
        termreply_fail (result, EP__STATUS__CODE__NOT_FOUND, false, "terminator %.64s does not exist",
                request->get_id? request->get_id: "");
    else
        termcore_reply (self, record, result);
}

//  ---------------------------------------------------------------------
//  The model and presence

static void
s_on_model (void *arg, const ep_model_event_t *event)
{
    terminators_t *self = (terminators_t *) arg;
    uint64_t revision = event->revision;
    if (event->type == EP__ENTITY_TYPE__ENTITY_ROUTER) {
        const Ep__Router *before = event->before? event->before->router: NULL;
        const Ep__Router *after = event->after? event->after->router: NULL;
        bool was = termcore_router_enabled (event->before), is = termcore_router_enabled (event->after);
        if (!before || !after || was != is)
            s_touch_set (self, event->id, "", revision);
        //  Each hosted service that appeared, went, or changed cost or precedence.
        for (size_t i = 0; after && i < after->n_hosted; i++) {
            const Ep__HostedService *now = after->hosted [i], *then = NULL;
            for (size_t j = 0; before && j < before->n_hosted; j++)
                if (before->hosted [j]->service_id && now->service_id
                &&  streq (before->hosted [j]->service_id, now->service_id))
                    then = before->hosted [j];
            if (!then || then->cost != now->cost || then->precedence != now->precedence)
                s_touch_set (self, event->id, now->service_id, revision);
        }
        for (size_t j = 0; before && j < before->n_hosted; j++) {
            bool kept = false;
            for (size_t i = 0; after && i < after->n_hosted; i++)
                kept |= before->hosted [j]->service_id && after->hosted [i]->service_id
                     && streq (before->hosted [j]->service_id, after->hosted [i]->service_id);
            if (!kept)
                s_touch_set (self, event->id, before->hosted [j]->service_id, revision);
        }
        if (termindex_of_router (self->index, event->id))
            zhashx_update (self->dirty_routers, event->id, (void *) 1);
    }
    else
    if (event->type == EP__ENTITY_TYPE__ENTITY_SERVICE) {
        bool was = event->before && (!event->before->service->has_enabled || event->before->service->enabled);
        bool is = event->after && (!event->after->service->has_enabled || event->after->service->enabled);
        if (!event->before || !event->after || was != is)
            s_touch_set (self, "", event->id, revision);
        if (!event->after && termindex_of_service (self->index, event->id))
            zhashx_update (self->dirty_services, event->id, (void *) 1);
    }
}

void
terminators_model_loaded (terminators_t *self)
{
    self->loaded = true;
    zlistx_t *routers = termindex_routers (self->index);
    for (const char *id = (const char *) zlistx_first (routers); id; id = (const char *) zlistx_next (routers))
        zhashx_update (self->dirty_routers, id, (void *) 1);
    zlistx_destroy (&routers);
}

//  Presence flipped for some routers: their services' counters follow at
//  once; state changes wait for the next batch.
static void
s_presence_changes (terminators_t *self)
{
    zhashx_t *changes = termpresence_changes (self->presence);
    for (void *status = zhashx_first (changes); status; status = zhashx_next (changes)) {
        const char *router_id = (const char *) zhashx_cursor (changes);
        if (!termindex_recount (self->index, router_id, status == TERMPRESENCE_ONLINE))
            continue;
        zhashx_update (self->presence_dirty, router_id, (void *) 1);
    }
    zhashx_destroy (&changes);
}

void
terminators_presence (terminators_t *self, const char *topic, const Ep__PresenceEvent *event,
                      int64_t mono_ms)
{
    EP_ASSERT (!self->open);
    if (!topic || strncmp (topic, "presence.", 9) != 0 || !event->instance_id)
        return;
    termpresence_apply (self->presence, topic + 9, event->instance_id, event->instance_epoch,
                        event->routers, event->n_routers, mono_ms);
    s_presence_changes (self);
}

void
terminators_presence_expire (terminators_t *self, int64_t mono_ms)
{
    EP_ASSERT (!self->open);
    termpresence_expire (self->presence, mono_ms);
    s_presence_changes (self);
}

//  ---------------------------------------------------------------------
//  Life cycle

static void
s_load_one (void *arg, termrec_t *record)
{
    terminators_t *self = (terminators_t *) arg;
    termindex_apply (self->index, record);
    termrec_destroy (&record);
}

terminators_t *
terminators_new (ep_store_t *store, ep_model_view_t *view, const terminators_config_t *config,
                 int64_t now_ms)
{
    terminators_t *self = (terminators_t *) zmalloc (sizeof (terminators_t));
    self->store = store;
    self->view = view;
    self->config = *config;
    self->presence = termpresence_new (config->presence_expiry_ms);
    self->index = termindex_new (self->presence);
    self->touch = zhashx_new ();
    self->dirty_routers = zhashx_new ();
    self->dirty_services = zhashx_new ();
    self->presence_dirty = zhashx_new ();
    self->commanded = zhashx_new ();
    self->output = ep_output_new ();
    self->stage = termstage_new (store, self->index, self->output);
    self->settle_until_ms = now_ms + config->settle_ms;
    self->last_trim_ms = now_ms;
    if (termstore_load (store, s_load_one, self) != 0) {
        ep_log_error ("cannot load the terminators: %s", ep_store_last_error ());
        terminators_destroy (&self);
        return NULL;
    }
    termindex_load_keys (self->index);
    ep_model_view_set_observer (view, s_on_model, self);
    return self;
}

void
terminators_destroy (terminators_t **self_p)
{
    terminators_t *self = *self_p;
    if (self) {
        if (self->open) {
            ep_store_rollback (self->store);
            termstage_keep (self->stage);
        }
        ep_model_view_set_observer (self->view, NULL, NULL);
        zhashx_destroy (&self->touch);
        zhashx_destroy (&self->dirty_routers);
        zhashx_destroy (&self->dirty_services);
        zhashx_destroy (&self->presence_dirty);
        zhashx_destroy (&self->commanded);
        termstage_destroy (&self->stage);
        ep_output_destroy (&self->output);
        termindex_destroy (&self->index);
        termpresence_destroy (&self->presence);
        free (self);
        *self_p = NULL;
    }
}

//  ---------------------------------------------------------------------
//  Figures

uint64_t
terminators_spins (terminators_t *self)
{
    return self->spins;
}

size_t
terminators_count (terminators_t *self, termsm_state_t state)
{
    return termindex_count (self->index, state);
}

size_t
terminators_routers_online (terminators_t *self)
{
    return termpresence_routers (self->presence);
}

size_t
terminators_instances (terminators_t *self)
{
    return termpresence_instances (self->presence);
}

bool
terminators_router_online (terminators_t *self, const char *router_id)
{
    return termcore_online (self, router_id);
}

uint64_t
terminators_commands (terminators_t *self)
{
    return self->commands;
}

uint64_t
terminators_acks (terminators_t *self)
{
    return self->acks;
}
