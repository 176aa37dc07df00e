/*  terminators.c: the terminator service's state (see terminators.h).

    Memory holds every terminator (tombstones included) with indexes by
    router and by service and per-service counters, so nothing on a hot
    path reads SQL; terminators.db holds the same rows for restarts, and
    the list API pages through its indexes. A change is staged by applying
    it to memory and writing its row inside the open transaction, with the
    previous value kept in an undo log: a failed savepoint or commit puts
    memory back exactly as it was.

    The model view's observer records, per (router, service), the last
    revision that touched it (for the spin detector) and marks routers and
    services to reconcile; reconciliation runs inside the next batch and
    always compares against the view as it is then, so it is idempotent
    and needs no ordering with the requests of the same batch.
*/
#include "terminators.h"
#include "ep_log.h"
#include "termpresence.h"
#include "termstore.h"
#include <sodium.h>
#include <stdarg.h>

#define VALIDATE_MAX    100000      //  terminators in one validate request
#define PAGE_DEFAULT    100
#define PAGE_MAX        1000
#define ADDRESS_MAX     256
#define TRIM_IDLE_MS    1000        //  outbox trimmed at least this often when idle
#define COMMAND_TTL_MS  30000       //  a command's deadline

//  Service counters carried by every event, as in OpenZiti.
typedef struct {
    uint32_t total;             //  live terminators of the service
    uint32_t usable_default;    //  ESTABLISHED, router online, precedence default
    uint32_t usable_required;   //  ESTABLISHED, router online, precedence required
} s_counts_t;

//  One timer: a record's due time (entries go stale when the record's due
//  changes; they are skipped when popped).
typedef struct {
    int64_t due_ms;             //  wall clock
    char id [65];               //  the record
} s_timer_t;

//  What to put back if a savepoint or the commit fails.
typedef enum { UNDO_RECORD, UNDO_KEY, UNDO_DIRTY_ROUTER, UNDO_DIRTY_SERVICE, UNDO_PRESENCE } s_undo_kind_t;

typedef struct {
    s_undo_kind_t kind;         //  what changed
    char *key;                  //  record id, spin key, or router / service id
    termrec_t *record;          //  UNDO_RECORD: the record before (NULL: it did not exist)
    termsm_key_t spin;          //  UNDO_KEY: the key before
    bool had_spin;              //  UNDO_KEY: the key existed
} s_undo_t;

struct _terminators_t {
    ep_store_t *store;          //  terminators.db (borrowed)
    ep_model_view_t *view;      //  the model as followed (borrowed)
    terminators_config_t config;    //  timings
    termpresence_t *presence;   //  routers online
    zhashx_t *records;          //  id -> termrec_t (owned), tombstones included
    zhashx_t *by_router;        //  router -> zhashx (id -> termrec_t), not DELETED
    zhashx_t *by_service;       //  service -> zhashx (id -> termrec_t), not DELETED
    zhashx_t *counts;           //  service -> s_counts_t
    size_t states [TERMSM_STATE_COUNT];     //  records per state
    zhashx_t *keys;             //  "router\x1fservice" -> termsm_key_t (spin detector)
    zhashx_t *touch;            //  "r\x1fs", "r\x1f", "\x1fs" -> last touching revision
    zhashx_t *dirty_routers;    //  routers to reconcile (set)
    zhashx_t *dirty_services;   //  services to reconcile (set)
    zhashx_t *presence_dirty;   //  routers whose presence changed (set)
    s_timer_t *heap;            //  timers, a binary min-heap by due time
    size_t heap_size;           //  entries in use
    size_t heap_cap;            //  entries allocated
    int64_t settle_until_ms;    //  no timers before this (presence unknown after start)
    bool loaded;                //  the model view holds a snapshot: decisions may use it
    bool open;                  //  a batch is open
    bool failed;                //  a store write of the current savepoint failed
    s_undo_t *undo;             //  undo log of the open batch
    size_t undo_size;           //  entries in use
    size_t undo_cap;            //  entries allocated
    ep_output_t *output;        //  events and commands: staged, then ready after the commit
    zhashx_t *commanded;        //  routers sent a command in the open batch
    int64_t published_seq;      //  outbox entries published up to this
    int64_t trimmed_seq;        //  and removed up to this
    int64_t trim_pending_seq;   //  the trim in the open batch
    int64_t last_trim_ms;       //  when the outbox was last trimmed
    uint64_t spins;             //  spins committed
    uint64_t commands;          //  ValidateTerminators commands committed
    uint64_t acks;              //  command acks received
};

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

static void
s_free_hash (void **item)
{
    zhashx_t *hash = (zhashx_t *) *item;
    zhashx_destroy (&hash);
    *item = NULL;
}

static void
s_free_record (void **item)
{
    termrec_destroy ((termrec_t **) item);
}

static char *
s_pair (char *buf, size_t size, const char *router, const char *service)
{
    snprintf (buf, size, "%s\x1f%s", router? router: "", service? service: "");
    return buf;
}

static bool
s_router_enabled (const Ep__Entity *router)
{
    return router && router->router
        && (!router->router->has_enabled || router->router->enabled);
}

//  The router's hosting of service_id in the view, or NULL.
static const Ep__HostedService *
s_hosting (terminators_t *self, const char *router_id, const char *service_id)
{
    const Ep__Entity *router = ep_model_view_get (self->view, EP__ENTITY_TYPE__ENTITY_ROUTER, router_id);
    if (!s_router_enabled (router) || !service_id || !*service_id)
        return NULL;
    for (size_t i = 0; i < router->router->n_hosted; i++)
        if (router->router->hosted [i]->service_id
        &&  streq (router->router->hosted [i]->service_id, service_id))
            return router->router->hosted [i];
    return NULL;
}

//  Why the model does not have router_id host service_id (for messages).
static const char *
s_why_not_hosted (terminators_t *self, const char *router_id, const char *service_id)
{
    const Ep__Entity *router = ep_model_view_get (self->view, EP__ENTITY_TYPE__ENTITY_ROUTER, router_id);
    if (!router)
        return "router-deleted";
    if (!s_router_enabled (router))
        return "router-disabled";
    if (!ep_model_view_get (self->view, EP__ENTITY_TYPE__ENTITY_SERVICE, service_id))
        return "service-deleted";
    return "service-not-hosted";
}

static bool
s_online (terminators_t *self, const char *router_id);

//  Why the router cannot delete its terminators itself (for reasons).
static const char *
s_why_absent (terminators_t *self, const char *router_id)
{
    const Ep__Entity *router = ep_model_view_get (self->view, EP__ENTITY_TYPE__ENTITY_ROUTER, router_id);
    return !router? "router-deleted": !s_router_enabled (router)? "router-disabled": "router-offline";
}

static bool
s_online (terminators_t *self, const char *router_id)
{
    return termpresence_online (self->presence, router_id);
}

//  The router is there to delete its terminators itself.
static bool
s_router_present (terminators_t *self, const char *router_id)
{
    return s_router_enabled (ep_model_view_get (self->view, EP__ENTITY_TYPE__ENTITY_ROUTER, router_id))
        && s_online (self, router_id);
}

static termsm_facts_t
s_facts (terminators_t *self, const termrec_t *record)
{
    termsm_facts_t facts = {
        .online = s_online (self, record->router_id),
        .hosted = s_hosting (self, record->router_id, record->service_id) != NULL
    };
    return facts;
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
    uint64_t pair = s_touch_get (self, s_pair (key, sizeof key, router_id, service_id));
    uint64_t router = s_touch_get (self, s_pair (key, sizeof key, router_id, ""));
    uint64_t service = s_touch_get (self, s_pair (key, sizeof key, "", service_id));
    uint64_t touch = pair > router? pair: router;
    return touch > service? touch: service;
}

static void
s_touch_set (terminators_t *self, const char *router_id, const char *service_id, uint64_t revision)
{
    char key [140];
    s_pair (key, sizeof key, router_id, service_id);
    if (revision > s_touch_get (self, key))
        zhashx_update (self->touch, key, (void *) (uintptr_t) revision);
}

//  ---------------------------------------------------------------------
//  Timers

static void
s_heap_push (terminators_t *self, int64_t due_ms, const char *id)
{
    if (self->heap_size == self->heap_cap) {
        self->heap_cap = self->heap_cap? self->heap_cap * 2: 1024;
        self->heap = (s_timer_t *) realloc (self->heap, self->heap_cap * sizeof (s_timer_t));
        EP_ASSERT (self->heap);
    }
    size_t i = self->heap_size++;
    while (i > 0 && self->heap [(i - 1) / 2].due_ms > due_ms) {
        self->heap [i] = self->heap [(i - 1) / 2];
        i = (i - 1) / 2;
    }
    self->heap [i].due_ms = due_ms;
    snprintf (self->heap [i].id, sizeof self->heap [i].id, "%s", id);
}

static void
s_heap_pop (terminators_t *self)
{
    EP_ASSERT (self->heap_size > 0);
    s_timer_t last = self->heap [--self->heap_size];
    size_t i = 0;
    while (true) {
        size_t child = 2 * i + 1;
        if (child >= self->heap_size)
            break;
        if (child + 1 < self->heap_size && self->heap [child + 1].due_ms < self->heap [child].due_ms)
            child++;
        if (self->heap [child].due_ms >= last.due_ms)
            break;
        self->heap [i] = self->heap [child];
        i = child;
    }
    if (self->heap_size > 0)
        self->heap [i] = last;
}

//  True if the top entry is still its record's timer.
static bool
s_heap_top_valid (terminators_t *self)
{
    termrec_t *record = (termrec_t *) zhashx_lookup (self->records, self->heap [0].id);
    return record && record->sm.due_ms == self->heap [0].due_ms;
}

static void
s_heap_clean (terminators_t *self)
{
    while (self->heap_size && !s_heap_top_valid (self))
        s_heap_pop (self);
    //  Stale entries pile up when due times move; rebuild when they dominate.
    if (self->heap_size > 4096 && self->heap_size > 4 * zhashx_size (self->records)) {
        self->heap_size = 0;
        termrec_t *record = (termrec_t *) zhashx_first (self->records);
        for (; record; record = (termrec_t *) zhashx_next (self->records))
            if (record->sm.due_ms)
                s_heap_push (self, record->sm.due_ms, record->id);
    }
}

//  ---------------------------------------------------------------------
//  Memory: records, indexes, counters

static s_counts_t *
s_counts (terminators_t *self, const char *service_id)
{
    s_counts_t *counts = (s_counts_t *) zhashx_lookup (self->counts, service_id);
    if (!counts) {
        counts = (s_counts_t *) zmalloc (sizeof (s_counts_t));
        zhashx_insert (self->counts, service_id, counts);
    }
    return counts;
}

//  Adds (sign 1) or removes (-1) record's share of its service's counters,
//  as if its router's presence were online.
static void
s_count (terminators_t *self, const termrec_t *record, bool online, int sign)
{
    if (!*record->service_id || !termsm_live (record->sm.state))
        return;
    s_counts_t *counts = s_counts (self, record->service_id);
    counts->total += sign;
    if (record->sm.state == TERMSM_ESTABLISHED && online) {
        if (record->precedence == EP__PRECEDENCE__PRECEDENCE_DEFAULT)
            counts->usable_default += sign;
        else
        if (record->precedence == EP__PRECEDENCE__PRECEDENCE_REQUIRED)
            counts->usable_required += sign;
    }
}

static void
s_index (zhashx_t *index, const char *key, termrec_t *record, bool add)
{
    zhashx_t *members = (zhashx_t *) zhashx_lookup (index, key);
    if (add) {
        if (!members) {
            members = zhashx_new ();
            zhashx_insert (index, key, members);
        }
        zhashx_update (members, record->id, record);
    }
    else
    if (members) {
        zhashx_delete (members, record->id);
        if (zhashx_size (members) == 0)
            zhashx_delete (index, key);
    }
}

//  Adds (or removes) record to (from) the indexes and counters.
static void
s_account (terminators_t *self, termrec_t *record, bool add)
{
    self->states [record->sm.state] += add? 1: -1;
    s_count (self, record, s_online (self, record->router_id), add? 1: -1);
    if (record->sm.state != TERMSM_DELETED && record->sm.state != TERMSM_NONE) {
        s_index (self->by_router, record->router_id, record, add);
        if (*record->service_id)
            s_index (self->by_service, record->service_id, record, add);
    }
}

//  Makes memory hold value for value->id (copied).
static void
s_apply (terminators_t *self, const termrec_t *value)
{
    termrec_t *record = (termrec_t *) zhashx_lookup (self->records, value->id);
    if (record) {
        s_account (self, record, false);
        termrec_copy (record, value);
    }
    else {
        record = termrec_dup (value);
        zhashx_insert (self->records, record->id, record);
    }
    s_account (self, record, true);
    if (record->sm.due_ms)
        s_heap_push (self, record->sm.due_ms, record->id);
}

static void
s_forget (terminators_t *self, const char *id)
{
    termrec_t *record = (termrec_t *) zhashx_lookup (self->records, id);
    if (record) {
        s_account (self, record, false);
        zhashx_delete (self->records, id);
    }
}

//  ---------------------------------------------------------------------
//  Staging with undo

static s_undo_t *
s_undo_push (terminators_t *self, s_undo_kind_t kind, const char *key)
{
    if (self->undo_size == self->undo_cap) {
        self->undo_cap = self->undo_cap? self->undo_cap * 2: 256;
        self->undo = (s_undo_t *) realloc (self->undo, self->undo_cap * sizeof (s_undo_t));
        EP_ASSERT (self->undo);
    }
    s_undo_t *undo = &self->undo [self->undo_size++];
    memset (undo, 0, sizeof *undo);
    undo->kind = kind;
    undo->key = strdup (key);
    return undo;
}

//  Undoes the log back to mark (restore = false: just forgets it).
static void
s_undo_to (terminators_t *self, size_t mark, bool restore)
{
    while (self->undo_size > mark) {
        s_undo_t *undo = &self->undo [--self->undo_size];
        if (restore) {
            switch (undo->kind) {
                case UNDO_RECORD:
                    if (undo->record)
                        s_apply (self, undo->record);
                    else
                        s_forget (self, undo->key);
                    break;
                case UNDO_KEY:
                    if (undo->had_spin) {
                        termsm_key_t *key = (termsm_key_t *) zhashx_lookup (self->keys, undo->key);
                        if (!key) {
                            key = (termsm_key_t *) zmalloc (sizeof (termsm_key_t));
                            zhashx_insert (self->keys, undo->key, key);
                        }
                        *key = undo->spin;
                    }
                    else
                        zhashx_delete (self->keys, undo->key);
                    break;
                case UNDO_DIRTY_ROUTER:
                    zhashx_update (self->dirty_routers, undo->key, (void *) 1);
                    break;
                case UNDO_DIRTY_SERVICE:
                    zhashx_update (self->dirty_services, undo->key, (void *) 1);
                    break;
                case UNDO_PRESENCE:
                    zhashx_update (self->presence_dirty, undo->key, (void *) 1);
                    break;
            }
        }
        termrec_destroy (&undo->record);
        free (undo->key);
    }
}

//  Stages value as the new content of its record: memory now, the row in
//  the transaction, the old content in the undo log.
static void
s_stage (terminators_t *self, const termrec_t *value)
{
    EP_ASSERT (self->open);
    termrec_t *before = (termrec_t *) zhashx_lookup (self->records, value->id);
    s_undo_t *undo = s_undo_push (self, UNDO_RECORD, value->id);
    undo->record = before? termrec_dup (before): NULL;
    s_apply (self, value);
    if (termstore_save (self->store, value) != 0) {
        ep_log_error ("cannot save terminator %s: %s", value->id, ep_store_last_error ());
        self->failed = true;
    }
}

static void
s_stage_forget (terminators_t *self, const char *id)
{
    termrec_t *before = (termrec_t *) zhashx_lookup (self->records, id);
    if (!before)
        return;
    s_undo_t *undo = s_undo_push (self, UNDO_RECORD, id);
    undo->record = termrec_dup (before);
    char key [65];
    snprintf (key, sizeof key, "%s", id);
    s_forget (self, key);
    if (termstore_remove (self->store, key) != 0) {
        ep_log_error ("cannot remove terminator %s: %s", key, ep_store_last_error ());
        self->failed = true;
    }
}

static termsm_key_t *
s_key_stage (terminators_t *self, const char *router_id, const char *service_id)
{
    char key [140];
    s_pair (key, sizeof key, router_id, service_id);
    termsm_key_t *spin = (termsm_key_t *) zhashx_lookup (self->keys, key);
    s_undo_t *undo = s_undo_push (self, UNDO_KEY, key);
    undo->had_spin = spin != NULL;
    if (spin)
        undo->spin = *spin;
    else {
        spin = (termsm_key_t *) zmalloc (sizeof (termsm_key_t));
        zhashx_insert (self->keys, key, spin);
    }
    return spin;
}

//  Takes id out of set (a dirty set) for this batch; put back on failure.
static void
s_consume (terminators_t *self, zhashx_t *set, s_undo_kind_t kind, const char *id)
{
    char key [65];
    snprintf (key, sizeof key, "%s", id);
    s_undo_push (self, kind, key);
    zhashx_delete (set, key);
}

typedef struct {
    size_t undo;                //  undo log size at the start
    size_t staged;              //  staged outputs at the start
    char name [16];             //  savepoint name
} s_mark_t;

static s_mark_t
s_savepoint (terminators_t *self, const char *name)
{
    s_mark_t mark = { self->undo_size, ep_output_mark (self->output), "" };
    snprintf (mark.name, sizeof mark.name, "%s", name);
    self->failed = ep_store_savepoint (self->store, name) != 0;
    return mark;
}

//  Ends a savepoint: kept, or undone (memory, outputs, rows) if a store
//  write failed. Returns 0 or -1.
static int
s_release (terminators_t *self, s_mark_t mark)
{
    if (!self->failed && ep_store_release (self->store, mark.name) == 0)
        return 0;
    if (ep_store_in_transaction (self->store))
        ep_store_rollback_to (self->store, mark.name);
    s_undo_to (self, mark.undo, true);
    ep_output_undo (self->output, mark.staged);
    self->failed = false;
    return -1;
}

//  ---------------------------------------------------------------------
//  Events and commands

//  Stages output for event (packed into the outbox when keep).
static void
s_output (terminators_t *self, const char *topic, Ep__Event *event, bool keep)
{
    size_t size = ep__event__get_packed_size (event);
    uint8_t *bytes = (uint8_t *) malloc (size + 1);
    ep__event__pack (event, bytes);
    ep_output_item_t *output = ep_output_add_packed (self->output, topic, bytes, size, 0);
    EP_ASSERT (output);
    if (keep) {
        output->seq = termstore_outbox_add (self->store, topic, bytes, size);
        if (output->seq < 0) {
            ep_log_error ("cannot write the event outbox: %s", ep_store_last_error ());
            self->failed = true;
        }
    }
    free (bytes);
}

//  Stages terminator.<type> for record as it is now, with its service's
//  counters after the change.
static void
s_event (terminators_t *self, const termrec_t *record, const char *type, const char *reason)
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
    body.router_online = s_online (self, record->router_id);
    if (*record->service_id) {
        s_counts_t *counts = s_counts (self, record->service_id);
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
    char topic [64];
    snprintf (topic, sizeof topic, "terminator.%s", type);
    s_output (self, topic, &event, true);
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
            s_event (self, record, "created", reason);
        else
        if (to == TERMSM_ESTABLISHED)
            s_event (self, record, "established", reason);
        else
        if (to == TERMSM_FAILED)
            s_event (self, record, "failed", record->last_error? record->last_error: reason);
        else
        if (to == TERMSM_DELETED)
            s_event (self, record, "deleted", reason);
    }
}

//  Asks router_id (once per batch) to send its terminators for validation.
static void
s_command (terminators_t *self, const char *router_id, int64_t now_ms)
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
    char topic [96];
    snprintf (topic, sizeof topic, "cmd.%s.", router_id);
    s_output (self, topic, &event, false);
}

//  ---------------------------------------------------------------------
//  Transitions shared by requests and internal work

//  True if another live terminator of (router, service) exists besides id.
static bool
s_other_live (terminators_t *self, const termrec_t *record)
{
    zhashx_t *mine = (zhashx_t *) zhashx_lookup (self->by_router, record->router_id);
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
        termsm_key_t *key = s_key_stage (self, record->router_id, record->service_id);
        termsm_key_delete (key);
    }
}

//  Stages next (a changed copy of a record) with the events of step. A
//  live terminator that stops being live counts for the spin detector,
//  unless repair (its router said it does not have it: no churn).
static void
s_commit_step_as (terminators_t *self, termrec_t *next, termsm_step_t step, int64_t now_ms,
                  const char *reason, bool repair)
{
    bool was_live = false;
    termrec_t *before = (termrec_t *) zhashx_lookup (self->records, next->id);
    if (before)
        was_live = termsm_live (before->sm.state);
    next->generation++;
    next->updated_at_ms = now_ms;
    s_stage (self, next);
    if (was_live && !termsm_live (next->sm.state) && !repair)
        s_key_gone (self, (termrec_t *) zhashx_lookup (self->records, next->id));
    s_step_events (self, (termrec_t *) zhashx_lookup (self->records, next->id), step, reason);
}

static void
s_commit_step (terminators_t *self, termrec_t *next, termsm_step_t step, int64_t now_ms,
               const char *reason)
{
    s_commit_step_as (self, next, step, now_ms, reason, false);
}

//  The model says record goes.
static void
s_retire (terminators_t *self, const termrec_t *record, bool router_present, const char *why,
          int64_t now_ms)
{
    termrec_t *next = termrec_dup (record);
    termsm_step_t step = termsm_retire (&next->sm, &self->config.sm, router_present, now_ms);
    uint64_t revision = ep_model_view_revision (self->view);
    if (revision > next->model_revision)
        next->model_revision = revision;
    termrec_set_error (next, "%s at model revision %llu", why, (unsigned long long) revision);
    s_commit_step (self, next, step, now_ms, why);
    termrec_destroy (&next);
}

static void
s_confirm (terminators_t *self, const termrec_t *record, const char *why, int64_t now_ms)
{
    termrec_t *next = termrec_dup (record);
    termsm_step_t step = termsm_confirm (&next->sm, &self->config.sm, now_ms);
    if (step.count)
        s_commit_step (self, next, step, now_ms, why);
    termrec_destroy (&next);
}

//  Checks one terminator against the model and presence.
static void
s_reconcile (terminators_t *self, const termrec_t *record, int64_t now_ms)
{
    if (termsm_live (record->sm.state)) {
        if (!s_hosting (self, record->router_id, record->service_id))
            s_retire (self, record, s_router_present (self, record->router_id),
                      s_why_not_hosted (self, record->router_id, record->service_id), now_ms);
    }
    else
    if (record->sm.state == TERMSM_DELETING && !s_router_present (self, record->router_id))
        s_confirm (self, record, s_why_absent (self, record->router_id), now_ms);
}

//  Ids of the members of index [key] (a copy: staging changes the index).
static zlistx_t *
s_member_ids (zhashx_t *index, const char *key)
{
    zhashx_t *members = (zhashx_t *) zhashx_lookup (index, key);
    return members? zhashx_keys (members): zlistx_new ();
}

//  ---------------------------------------------------------------------
//  Internal work

static size_t
s_work_router (terminators_t *self, const char *router_id, int64_t now_ms)
{
    zlistx_t *ids = s_member_ids (self->by_router, router_id);
    size_t examined = zlistx_size (ids);
    for (const char *id = (const char *) zlistx_first (ids); id; id = (const char *) zlistx_next (ids)) {
        termrec_t *record = (termrec_t *) zhashx_lookup (self->records, id);
        if (record)
            s_reconcile (self, record, now_ms);
    }
    zlistx_destroy (&ids);
    return examined + 1;
}

static size_t
s_work_service (terminators_t *self, const char *service_id, int64_t now_ms)
{
    zlistx_t *ids = s_member_ids (self->by_service, service_id);
    size_t examined = zlistx_size (ids);
    for (const char *id = (const char *) zlistx_first (ids); id; id = (const char *) zlistx_next (ids)) {
        termrec_t *record = (termrec_t *) zhashx_lookup (self->records, id);
        if (record)
            s_reconcile (self, record, now_ms);
    }
    zlistx_destroy (&ids);
    return examined + 1;
}

//  The router's presence changed: establish what waited for it, finish
//  deletions it can no longer confirm, ask it about what it lacks.
static size_t
s_work_presence (terminators_t *self, const char *router_id, int64_t now_ms)
{
    zlistx_t *ids = s_member_ids (self->by_router, router_id);
    size_t examined = zlistx_size (ids);
    bool ask = false;
    for (const char *id = (const char *) zlistx_first (ids); id; id = (const char *) zlistx_next (ids)) {
        termrec_t *record = (termrec_t *) zhashx_lookup (self->records, id);
        if (!record)
            continue;
        if (record->sm.state == TERMSM_ESTABLISHING || record->sm.state == TERMSM_FAILED) {
            termrec_t *next = termrec_dup (record);
            termsm_step_t step = termsm_evaluate (&next->sm, &self->config.sm, s_facts (self, next), now_ms);
            if (step.count) {
                termrec_set_error (next, NULL);
                s_commit_step (self, next, step, now_ms, "router-online");
            }
            else
            if (next->sm.lacks && s_online (self, router_id))
                ask = true;
            termrec_destroy (&next);
        }
        else
            s_reconcile (self, record, now_ms);
    }
    if (ask)
        s_command (self, router_id, now_ms);
    zlistx_destroy (&ids);
    return examined + 1;
}

static void
s_work_timer (terminators_t *self, termrec_t *record, int64_t now_ms)
{
    if (record->sm.state == TERMSM_DELETED) {
        s_stage_forget (self, record->id);      //  the tombstone's time is up
        return;
    }
    termrec_t *next = termrec_dup (record);
    termsm_facts_t facts = s_facts (self, next);
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
    s_commit_step_as (self, next, step, now_ms, reason, lacked);
    if (step.ask_router)
        s_command (self, next->router_id, now_ms);
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
    s_mark_t mark = s_savepoint (self, "work");
    size_t budget = self->config.work_budget;
    char id [65];
    while (budget > 0 && !self->failed && s_first_key (self->dirty_routers, id)) {
        s_consume (self, self->dirty_routers, UNDO_DIRTY_ROUTER, id);
        size_t cost = s_work_router (self, id, now_ms);
        budget = cost < budget? budget - cost: 0;
    }
    while (budget > 0 && !self->failed && s_first_key (self->dirty_services, id)) {
        s_consume (self, self->dirty_services, UNDO_DIRTY_SERVICE, id);
        size_t cost = s_work_service (self, id, now_ms);
        budget = cost < budget? budget - cost: 0;
    }
    while (budget > 0 && !self->failed && s_first_key (self->presence_dirty, id)) {
        s_consume (self, self->presence_dirty, UNDO_PRESENCE, id);
        size_t cost = s_work_presence (self, id, now_ms);
        budget = cost < budget? budget - cost: 0;
    }
    while (budget > 0 && !self->failed && now_ms >= self->settle_until_ms) {
        s_heap_clean (self);
        if (!self->heap_size || self->heap [0].due_ms > now_ms)
            break;
        termrec_t *record = (termrec_t *) zhashx_lookup (self->records, self->heap [0].id);
        s_heap_pop (self);
        s_work_timer (self, record, now_ms);
        budget--;
    }
    if (self->published_seq > self->trimmed_seq) {
        if (termstore_outbox_trim (self->store, self->published_seq) == 0)
            self->trim_pending_seq = self->published_seq;
        else
            self->failed = true;
    }
    if (s_release (self, mark) != 0) {
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
    s_heap_clean (self);
    return self->heap_size && self->heap [0].due_ms <= now_ms;
}

int64_t
terminators_next_due (terminators_t *self, int64_t now_ms, int64_t cap_ms)
{
    if (terminators_has_work (self, now_ms))
        return 0;
    int64_t due = cap_ms;
    if (self->published_seq > self->trimmed_seq && self->last_trim_ms + TRIM_IDLE_MS - now_ms < due)
        due = self->last_trim_ms + TRIM_IDLE_MS - now_ms;
    if (self->heap_size) {
        int64_t at = self->heap [0].due_ms > self->settle_until_ms? self->heap [0].due_ms: self->settle_until_ms;
        if (at - now_ms < due)
            due = at - now_ms;
    }
    return due > 0? due: 0;
}

//  ---------------------------------------------------------------------
//  Replies

void
terminators_result_init (terminators_result_t *result, const char *request_id)
{
    memset (result, 0, sizeof *result);
    ep__terminator_reply__init (&result->reply);
    ep__status__init (&result->status);
    result->status.has_code = true;
    result->status.code = EP__STATUS__CODE__OK;
    result->reply.status = &result->status;
    result->reply.request_id = (char *) request_id;
    result->owned = ep_owned_new ();
}

static void
s_release_terminator (void *ptr)
{
    ep__terminator__free_unpacked ((Ep__Terminator *) ptr, NULL);
}

void
terminators_result_clear (terminators_result_t *result)
{
    ep_owned_destroy (&result->owned);
}

static void
s_fail (terminators_result_t *result, Ep__Status__Code code, bool retriable, const char *format, ...)
    __attribute__ ((format (printf, 4, 5)));

static void
s_fail (terminators_result_t *result, Ep__Status__Code code, bool retriable, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (result->message, sizeof result->message, format, args);
    va_end (args);
    result->status.code = code;
    result->status.message = result->message;
    result->reply.has_retriable = true;
    result->reply.retriable = retriable;
}

//  A deep copy of t, owned by result (what it points to may change before
//  the reply is packed).
static Ep__Terminator *
s_copy (const Ep__Terminator *t, terminators_result_t *result)
{
    size_t size = ep__terminator__get_packed_size (t);
    uint8_t *bytes = (uint8_t *) malloc (size + 1);
    ep__terminator__pack (t, bytes);
    Ep__Terminator *copy = ep__terminator__unpack (NULL, size, bytes);
    free (bytes);
    EP_ASSERT (copy);
    return (Ep__Terminator *) ep_owned_add (result->owned, copy, s_release_terminator);
}

//  A copy of record as a message (owned by result).
static Ep__Terminator *
s_message (terminators_t *self, const termrec_t *record, terminators_result_t *result)
{
    Ep__Terminator t = EP__TERMINATOR__INIT;
    t.id = (char *) record->id;
    t.service_id = *record->service_id? (char *) record->service_id: NULL;
    t.router_id = (char *) record->router_id;
    t.host_id = *record->host_id? (char *) record->host_id: NULL;
    t.address = record->address;
    t.has_cost = t.has_precedence = t.has_state = t.has_generation = true;
    t.cost = record->cost;
    t.precedence = (Ep__Precedence) record->precedence;
    t.state = (Ep__TerminatorState) record->sm.state;
    t.generation = record->generation;
    t.has_created_at_ms = t.has_updated_at_ms = t.has_model_revision = true;
    t.created_at_ms = record->created_at_ms;
    t.updated_at_ms = record->updated_at_ms;
    t.last_error = record->last_error;
    t.model_revision = record->model_revision;
    t.has_router_online = t.has_attempts = true;
    t.router_online = s_online (self, record->router_id);
    t.attempts = record->sm.attempts;
    if (record->sm.state == TERMSM_FAILED && record->sm.due_ms) {
        t.has_next_attempt_at_ms = true;
        t.next_attempt_at_ms = record->sm.due_ms;
    }
    return s_copy (&t, result);
}

static void
s_reply_add (Ep__Terminator ***array, size_t *count, Ep__Terminator *item, terminators_result_t *result)
{
    if (*count == 0)
        ep_owned_add (result->owned, array, (void (*) (void *)) zstr_free);
    *array = (Ep__Terminator **) realloc (*array, (*count + 1) * sizeof (Ep__Terminator *));
    (*array) [(*count)++] = item;
}

static void
s_reply_terminator (terminators_t *self, const termrec_t *record, terminators_result_t *result)
{
    s_reply_add (&result->reply.terminators, &result->reply.n_terminators,
                 s_message (self, record, result), result);
}

//  ---------------------------------------------------------------------
//  Writes

static bool
s_check_fields (const Ep__Terminator *t, const char *op, terminators_result_t *result)
{
    if (t->host_id && *t->host_id && !ep_id_valid (t->host_id)) {
        s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, false,
                "%s.host_id \"%.64s\": use 1 to 64 of A-Z a-z 0-9 _ - (or leave it out)", op, t->host_id);
        return false;
    }
    if (t->address && strlen (t->address) > ADDRESS_MAX) {
        s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, false,
                "%s.address: at most %d characters", op, ADDRESS_MAX);
        return false;
    }
    if (t->has_cost && t->cost > 65535) {
        s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, false,
                "%s.cost %u: use 0 to 65535", op, t->cost);
        return false;
    }
    if (t->has_precedence && (unsigned) t->precedence > EP__PRECEDENCE__PRECEDENCE_FAILED) {
        s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, false,
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
    s_event (self, &probe, "spin", reason);
    free (probe.address);
    free (probe.last_error);
}

static void
s_create (terminators_t *self, const char *router_id, uint64_t revision, const Ep__Terminator *t,
          int64_t now_ms, terminators_result_t *result)
{
    if (!t || !ep_id_valid (t->id)) {
        s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, false,
                "create.id: the router's id for the terminator, 1 to 64 of A-Z a-z 0-9 _ -");
        return;
    }
    if (!ep_id_valid (t->service_id)) {
        s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, false,
                "create.service_id: the id of a service the router hosts is required");
        return;
    }
    if (t->router_id && *t->router_id && !streq (t->router_id, router_id)) {
        s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, false,
                "create.router_id %.64s differs from the router the request speaks for (%s)",
                t->router_id, router_id);
        return;
    }
    if (!s_check_fields (t, "create", result))
        return;
    const char *host = t->host_id? t->host_id: "";
    termrec_t *record = (termrec_t *) zhashx_lookup (self->records, t->id);
    if (record && !streq (record->router_id, router_id)) {
        s_fail (result, EP__STATUS__CODE__CONFLICT, false,
                "terminator %s belongs to router %s: the router must choose another id",
                t->id, record->router_id);
        return;
    }
    if (record && termsm_live (record->sm.state)
    &&  (!streq (record->service_id, t->service_id) || !streq (record->host_id, host))) {
        s_fail (result, EP__STATUS__CODE__CONFLICT, false,
                "terminator %s exists for service %s%s%s: the router must choose another id",
                t->id, record->service_id, *record->host_id? " and host ": "", record->host_id);
        return;
    }
    uint64_t view = ep_model_view_revision (self->view);
    const Ep__HostedService *hosting = s_hosting (self, router_id, t->service_id);
    if (!hosting) {
        s_fail (result, EP__STATUS__CODE__FAILED_PRECONDITION, false,
                "router %s does not host service %s at model revision %llu (%s): it gets the change "
                "in its model slice and must not create this terminator",
                router_id, t->service_id, (unsigned long long) view,
                s_why_not_hosted (self, router_id, t->service_id));
        return;
    }
    termsm_state_t state = record? record->sm.state: TERMSM_NONE;
    termsm_order_t order = termsm_order_create (state, record? record->model_revision: 0, revision);
    uint64_t touch = terminators_touch (self, router_id, t->service_id);
    termsm_key_t *key = s_key_stage (self, router_id, t->service_id);
    uint64_t since = key->create_revision;
    if (termsm_key_create (key, touch, revision, order == TERMSM_APPLY))
        s_spin (self, record, router_id, t->service_id, t->id, since, touch);
    if (order == TERMSM_STALE) {
        s_fail (result, EP__STATUS__CODE__FAILED_PRECONDITION, false,
                "terminator %s was deleted based on model revision %llu; this create is based on "
                "revision %llu, so it was sent before the delete and does not bring it back (create "
                "again with a newer model revision if the router hosts the service again)",
                t->id, (unsigned long long) record->model_revision, (unsigned long long) revision);
        s_reply_terminator (self, record, result);
        return;
    }
    termrec_t *next = record? termrec_dup (record): termrec_new (t->id);
    termsm_facts_t facts = { .online = s_online (self, router_id), .hosted = true };
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
        s_commit_step (self, next, step, now_ms, reason);
    if (patched)
        s_event (self, (termrec_t *) zhashx_lookup (self->records, t->id), "updated", "router-created-again");
    termrec_destroy (&next);
    s_reply_terminator (self, (termrec_t *) zhashx_lookup (self->records, t->id), result);
}

static void
s_delete (terminators_t *self, const char *router_id, uint64_t revision, const char *id,
          int64_t now_ms, terminators_result_t *result)
{
    if (!ep_id_valid (id)) {
        s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, false,
                "delete_id: the terminator's id, 1 to 64 of A-Z a-z 0-9 _ -");
        return;
    }
    termrec_t *record = (termrec_t *) zhashx_lookup (self->records, id);
    if (!record) {
        //  Not known (yet): a tombstone keeps a late create from bringing it back.
        termrec_t *tombstone = termrec_new (id);
        snprintf (tombstone->router_id, sizeof tombstone->router_id, "%s", router_id);
        tombstone->sm.state = TERMSM_DELETED;
        tombstone->sm.due_ms = now_ms + self->config.sm.tombstone_ttl_ms;
        tombstone->model_revision = revision;
        tombstone->created_at_ms = now_ms;
        termrec_set_error (tombstone, "deleted before it was created (tombstone)");
        s_commit_step (self, tombstone, (termsm_step_t) { 0 }, now_ms, NULL);
        termrec_destroy (&tombstone);
        s_reply_terminator (self, (termrec_t *) zhashx_lookup (self->records, id), result);
        return;
    }
    if (!streq (record->router_id, router_id)) {
        s_fail (result, EP__STATUS__CODE__PERMISSION_DENIED, false,
                "terminator %s belongs to router %s: only its router may delete it", id, record->router_id);
        return;
    }
    if (termsm_order_change (record->sm.state, record->model_revision, revision) == TERMSM_STALE) {
        s_fail (result, EP__STATUS__CODE__FAILED_PRECONDITION, false,
                "terminator %s was created again based on model revision %llu, after this delete "
                "(based on %llu) was sent: it stays", id, (unsigned long long) record->model_revision,
                (unsigned long long) revision);
        s_reply_terminator (self, record, result);
        return;
    }
    termrec_t *next = termrec_dup (record);
    termsm_step_t step = termsm_delete (&next->sm, &self->config.sm, now_ms);
    bool newer = revision > next->model_revision;
    if (newer)
        next->model_revision = revision;
    if (step.count) {
        termrec_set_error (next, "deleted by its router");
        s_commit_step (self, next, step, now_ms, "router-deleted");
    }
    else
    if (newer)      //  deleted already; the tombstone now covers the newer revision
        s_commit_step (self, next, step, now_ms, NULL);
    termrec_destroy (&next);
    s_reply_terminator (self, (termrec_t *) zhashx_lookup (self->records, id), result);
}

static void
s_update (terminators_t *self, const char *router_id, uint64_t revision, const Ep__Terminator *t,
          int64_t now_ms, terminators_result_t *result)
{
    if (!t || !ep_id_valid (t->id)) {
        s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, false,
                "update.id: the terminator's id, 1 to 64 of A-Z a-z 0-9 _ -");
        return;
    }
    if (!s_check_fields (t, "update", result))
        return;
    termrec_t *record = (termrec_t *) zhashx_lookup (self->records, t->id);
    if (!record) {
        s_fail (result, EP__STATUS__CODE__NOT_FOUND, true,
                "terminator %s is not known (yet): create it first", t->id);
        return;
    }
    if (!streq (record->router_id, router_id)) {
        s_fail (result, EP__STATUS__CODE__PERMISSION_DENIED, false,
                "terminator %s belongs to router %s: only its router may change it", t->id, record->router_id);
        return;
    }
    if (record->sm.state == TERMSM_DELETED) {
        s_fail (result, EP__STATUS__CODE__NOT_FOUND, false, "terminator %s was deleted", t->id);
        return;
    }
    if (record->sm.state == TERMSM_DELETING) {
        s_fail (result, EP__STATUS__CODE__FAILED_PRECONDITION, false,
                "terminator %s is being deleted (%s)", t->id, record->last_error? record->last_error: "");
        return;
    }
    if (termsm_order_change (record->sm.state, record->model_revision, revision) == TERMSM_STALE) {
        s_fail (result, EP__STATUS__CODE__FAILED_PRECONDITION, false,
                "terminator %s was changed based on model revision %llu, newer than this update's %llu",
                t->id, (unsigned long long) record->model_revision, (unsigned long long) revision);
        s_reply_terminator (self, record, result);
        return;
    }
    termrec_t *next = termrec_dup (record);
    bool changed = s_patch (next, t, false);
    if (changed || revision > next->model_revision) {
        if (revision > next->model_revision)
            next->model_revision = revision;
        s_commit_step (self, next, (termsm_step_t) { 0 }, now_ms, NULL);
        if (changed)
            s_event (self, (termrec_t *) zhashx_lookup (self->records, t->id), "updated", "router-updated");
    }
    termrec_destroy (&next);
    s_reply_terminator (self, (termrec_t *) zhashx_lookup (self->records, t->id), result);
}

//  A terminator the router must create (id NULL: the router picks one):
//  only what the router needs, none of our state.
static void
s_to_create (const char *router_id, const char *id, const char *service_id,
             const termrec_t *record, const Ep__HostedService *hosting, terminators_result_t *result)
{
    Ep__Terminator t = EP__TERMINATOR__INIT;
    t.id = (char *) id;
    t.service_id = (char *) service_id;
    t.router_id = (char *) router_id;
    if (record) {
        t.host_id = *record->host_id? (char *) record->host_id: NULL;
        t.address = record->address;
    }
    if (hosting) {
        t.has_cost = t.has_precedence = true;
        t.cost = hosting->cost;
        t.precedence = hosting->precedence;
    }
    s_reply_add (&result->reply.to_create, &result->reply.n_to_create, s_copy (&t, result), result);
}

static void
s_to_delete (const char *id, terminators_result_t *result)
{
    char **array = result->reply.to_delete;
    if (result->reply.n_to_delete == 0)
        ep_owned_add (result->owned, &result->reply.to_delete, (void (*) (void *)) zstr_free);
    array = (char **) realloc (array, (result->reply.n_to_delete + 1) * sizeof (char *));
    array [result->reply.n_to_delete++] = (char *) ep_owned_add (result->owned, strdup (id), free);
    result->reply.to_delete = array;
}

static void
s_validate (terminators_t *self, const char *router_id, const Ep__TerminatorValidate *validate,
            int64_t now_ms, terminators_result_t *result)
{
    size_t n = validate? validate->n_terminators: 0;
    if (n > VALIDATE_MAX) {
        s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, false,
                "validate: at most %d terminators per request", VALIDATE_MAX);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const Ep__Terminator *t = validate->terminators [i];
        if (!ep_id_valid (t->id) || (t->service_id && *t->service_id && !ep_id_valid (t->service_id))) {
            s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, false,
                    "validate.terminators[%zu]: needs a valid id (and service_id, if set)", i);
            return;
        }
    }
    const Ep__Entity *router = ep_model_view_get (self->view, EP__ENTITY_TYPE__ENTITY_ROUTER, router_id);
    bool present = s_router_enabled (router);
    zhashx_t *listed = zhashx_new ();          //  ids the router holds
    zhashx_t *covered = zhashx_new ();         //  hosted services it has a terminator for
    for (size_t i = 0; i < n; i++) {
        const Ep__Terminator *t = validate->terminators [i];
        zhashx_update (listed, t->id, (void *) 1);
        termrec_t *record = (termrec_t *) zhashx_lookup (self->records, t->id);
        if (record && !streq (record->router_id, router_id)) {
            s_to_delete (t->id, result);
            continue;
        }
        const char *service = record && *record->service_id? record->service_id
                            : t->service_id? t->service_id: "";
        const Ep__HostedService *hosting = s_hosting (self, router_id, service);
        if (record && termsm_live (record->sm.state)) {
            if (!hosting) {
                s_to_delete (t->id, result);
                s_retire (self, record, present, s_why_not_hosted (self, router_id, service), now_ms);
                continue;
            }
            zhashx_update (covered, service, (void *) 1);
            if (record->sm.lacks || record->sm.state != TERMSM_ESTABLISHED) {
                termrec_t *next = termrec_dup (record);
                bool lacked = next->sm.lacks;
                next->sm.lacks = false;
                termsm_step_t step = termsm_evaluate (&next->sm, &self->config.sm, s_facts (self, next), now_ms);
                if (step.count)
                    termrec_set_error (next, NULL);
                if (step.count || lacked)
                    s_commit_step (self, next, step, now_ms, "router-validated");
                termrec_destroy (&next);
            }
        }
        else
        if (record)     //  DELETING or DELETED: the router must let it go
            s_to_delete (t->id, result);
        else
        if (hosting) {  //  never arrived here: the router sends its create again
            s_to_create (router_id, t->id, service, NULL, hosting, result);
            zhashx_update (covered, service, (void *) 1);
        }
        else
            s_to_delete (t->id, result);
    }
    //  What we hold for the router that it did not list.
    zlistx_t *ids = s_member_ids (self->by_router, router_id);
    for (const char *id = (const char *) zlistx_first (ids); id; id = (const char *) zlistx_next (ids)) {
        termrec_t *record = (termrec_t *) zhashx_lookup (self->records, id);
        if (!record || zhashx_lookup (listed, id))
            continue;
        if (record->sm.state == TERMSM_DELETING)
            s_confirm (self, record, "router-confirmed", now_ms);
        else
        if (termsm_live (record->sm.state)) {
            const Ep__HostedService *hosting = s_hosting (self, router_id, record->service_id);
            if (!hosting)
                s_retire (self, record, false, s_why_not_hosted (self, router_id, record->service_id), now_ms);
            else {
                termrec_t *next = termrec_dup (record);
                termsm_step_t step = termsm_lacks (&next->sm, &self->config.sm, now_ms, randombytes_random ());
                termrec_set_error (next, "its router does not have it (validate); it was told to create it");
                s_commit_step (self, next, step, now_ms, "router-lacks-it");
                termrec_destroy (&next);
                s_to_create (router_id, id, record->service_id,
                             (termrec_t *) zhashx_lookup (self->records, id), hosting, result);
                zhashx_update (covered, record->service_id, (void *) 1);
            }
        }
    }
    zlistx_destroy (&ids);
    //  Hosted services without any terminator: the router picks ids.
    for (size_t i = 0; present && i < router->router->n_hosted; i++) {
        const Ep__HostedService *hosting = router->router->hosted [i];
        if (hosting->service_id && !zhashx_lookup (covered, hosting->service_id))
            s_to_create (router_id, NULL, hosting->service_id, NULL, hosting, result);
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
        s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, false,
                "router_id: the router the request speaks for (set by the watchdog) is required");
        return;
    }
    uint64_t revision = request->has_model_revision? request->model_revision: 0;
    s_mark_t mark = s_savepoint (self, "request");
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
            s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, false, "not a write request");
            break;
    }
    if (s_release (self, mark) != 0) {
        terminators_result_clear (result);
        terminators_result_init (result, result->reply.request_id);
        s_fail (result, EP__STATUS__CODE__UNAVAILABLE, true,
                "the terminator store cannot take writes now; retry");
    }
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
    self->failed = false;
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
        if (ep_store_in_transaction (self->store))
            ep_store_rollback (self->store);
        s_undo_to (self, 0, true);
        ep_output_abort (self->output);
    }
    else {
        s_undo_to (self, 0, false);
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
    }
    self->trim_pending_seq = 0;
    self->open = false;
    return rc;
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

static void
s_list (terminators_t *self, const Ep__TerminatorFilter *filter, terminators_result_t *result)
{
    const char *service = filter && filter->service_id && *filter->service_id? filter->service_id: NULL;
    const char *router = filter && filter->router_id && *filter->router_id? filter->router_id: NULL;
    if ((service && !ep_id_valid (service)) || (router && !ep_id_valid (router))) {
        s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, false,
                "list: service_id and router_id are entity ids (1 to 64 of A-Z a-z 0-9 _ -)");
        return;
    }
    int state = -1;
    if (filter && filter->has_state && filter->state != EP__TERMINATOR_STATE__TERMINATOR_STATE_UNSPECIFIED) {
        if ((unsigned) filter->state >= TERMSM_STATE_COUNT) {
            s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, false,
                    "list.state: use establishing, established, deleting, deleted or failed");
            return;
        }
        state = (int) filter->state;
    }
    uint32_t page = filter && filter->has_page_size && filter->page_size? filter->page_size: PAGE_DEFAULT;
    if (page > PAGE_MAX)
        page = PAGE_MAX;
    zlistx_t *rows = zlistx_new ();
    if (termstore_list (self->store, service, router, state,
                        filter && filter->page_token? filter->page_token: "", page + 1, rows) != 0)
        s_fail (result, EP__STATUS__CODE__UNAVAILABLE, true, "cannot read the terminator store now; retry");
    uint32_t count = 0;
    for (termrec_t *row = (termrec_t *) zlistx_first (rows); row; row = (termrec_t *) zlistx_next (rows)) {
        if (count++ == page) {
            result->reply.next_page_token = (char *) ep_owned_add (result->owned, strdup (result->reply.terminators
                                            [page - 1]->id), free);
            break;
        }
        s_reply_terminator (self, row, result);
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
            termrec_t *record = request->get_id? (termrec_t *) zhashx_lookup (self->records, request->get_id): NULL;
            if (!record)
                s_fail (result, EP__STATUS__CODE__NOT_FOUND, false, "terminator %.64s does not exist",
                        request->get_id? request->get_id: "");
            else
                s_reply_terminator (self, record, result);
            break;
        }
        case EP__TERMINATOR_REQUEST__OP_LIST:
            s_list (self, request->list, result);
            break;
        case EP__TERMINATOR_REQUEST__OP_ACK:
            self->acks++;
            ep_log_debug ("router %s acknowledged command %s", request->router_id? request->router_id: "?",
                          request->ack && request->ack->command_id? request->ack->command_id: "?");
            break;
        default:
            s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, false,
                    "request has no operation: set one of create, update, delete_id, get_id, list, validate, ack");
            break;
    }
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
        bool was = s_router_enabled (event->before), is = s_router_enabled (event->after);
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
        if (zhashx_lookup (self->by_router, event->id))
            zhashx_update (self->dirty_routers, event->id, (void *) 1);
    }
    else
    if (event->type == EP__ENTITY_TYPE__ENTITY_SERVICE) {
        bool was = event->before && (!event->before->service->has_enabled || event->before->service->enabled);
        bool is = event->after && (!event->after->service->has_enabled || event->after->service->enabled);
        if (!event->before || !event->after || was != is)
            s_touch_set (self, "", event->id, revision);
        if (!event->after && zhashx_lookup (self->by_service, event->id))
            zhashx_update (self->dirty_services, event->id, (void *) 1);
    }
}

void
terminators_model_loaded (terminators_t *self)
{
    self->loaded = true;
    zlistx_t *routers = zhashx_keys (self->by_router);
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
        bool online = status == TERMPRESENCE_ONLINE;
        zhashx_t *mine = (zhashx_t *) zhashx_lookup (self->by_router, router_id);
        if (!mine)
            continue;
        for (termrec_t *record = (termrec_t *) zhashx_first (mine); record;
             record = (termrec_t *) zhashx_next (mine)) {
            s_count (self, record, !online, -1);
            s_count (self, record, online, 1);
        }
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
    s_apply (self, record);
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
    self->records = zhashx_new ();
    zhashx_set_destructor (self->records, s_free_record);
    self->by_router = zhashx_new ();
    zhashx_set_destructor (self->by_router, s_free_hash);
    self->by_service = zhashx_new ();
    zhashx_set_destructor (self->by_service, s_free_hash);
    self->counts = zhashx_new ();
    zhashx_set_destructor (self->counts, (czmq_destructor *) zstr_free);
    self->keys = zhashx_new ();
    zhashx_set_destructor (self->keys, (czmq_destructor *) zstr_free);
    self->touch = zhashx_new ();
    self->dirty_routers = zhashx_new ();
    self->dirty_services = zhashx_new ();
    self->presence_dirty = zhashx_new ();
    self->commanded = zhashx_new ();
    self->output = ep_output_new ();
    self->settle_until_ms = now_ms + config->settle_ms;
    self->last_trim_ms = now_ms;
    if (termstore_load (store, s_load_one, self) != 0) {
        ep_log_error ("cannot load the terminators: %s", ep_store_last_error ());
        terminators_destroy (&self);
        return NULL;
    }
    //  The spin detector's memory: live terminators first, then the
    //  latest create of keys that have none left.
    for (int pass = 0; pass < 2; pass++) {
        termrec_t *record = (termrec_t *) zhashx_first (self->records);
        for (; record; record = (termrec_t *) zhashx_next (self->records)) {
            if (!*record->service_id || termsm_live (record->sm.state) != (pass == 0))
                continue;
            char key [140];
            s_pair (key, sizeof key, record->router_id, record->service_id);
            termsm_key_t *spin = (termsm_key_t *) zhashx_lookup (self->keys, key);
            if (pass == 1 && spin && !spin->deleted_since)
                continue;           //  a live terminator holds the key
            if (!spin) {
                spin = (termsm_key_t *) zmalloc (sizeof (termsm_key_t));
                zhashx_insert (self->keys, key, spin);
            }
            if (record->create_revision >= spin->create_revision) {
                spin->created = true;
                spin->deleted_since = pass == 1;
                spin->create_revision = record->create_revision;
            }
        }
    }
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
            s_undo_to (self, 0, false);
        }
        ep_model_view_set_observer (self->view, NULL, NULL);
        termpresence_destroy (&self->presence);
        zhashx_destroy (&self->by_router);
        zhashx_destroy (&self->by_service);
        zhashx_destroy (&self->records);
        zhashx_destroy (&self->counts);
        zhashx_destroy (&self->keys);
        zhashx_destroy (&self->touch);
        zhashx_destroy (&self->dirty_routers);
        zhashx_destroy (&self->dirty_services);
        zhashx_destroy (&self->presence_dirty);
        zhashx_destroy (&self->commanded);
        ep_output_destroy (&self->output);
        free (self->undo);
        free (self->heap);
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
    return (unsigned) state < TERMSM_STATE_COUNT? self->states [state]: 0;
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
    return s_online (self, router_id);
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
