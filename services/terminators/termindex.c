/*  termindex.c: every terminator in memory, indexed (termindex.h). */
#include "termindex.h"
#include "ep_heap.h"

//  One timer: a record's due time (stale when the record's due changes).
typedef struct {
    int64_t due_ms;             //  wall clock (the heap's key: first)
    char id [65];               //  the record
} s_timer_t;

struct _termindex_t {
    termpresence_t *presence;   //  routers online (borrowed)
    zhashx_t *records;          //  id -> termrec_t (owned), tombstones included
    zhashx_t *by_router;        //  router -> zhashx (id -> termrec_t), not DELETED
    zhashx_t *by_service;       //  service -> zhashx (id -> termrec_t), not DELETED
    zhashx_t *counts;           //  service -> termindex_counts_t
    size_t states [TERMSM_STATE_COUNT];     //  records per state
    zhashx_t *keys;             //  "router\x1fservice" -> termsm_key_t (spin detector)
    ep_heap_t *timers;          //  s_timer_t by due time
};

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

termindex_t *
termindex_new (termpresence_t *presence)
{
    termindex_t *self = (termindex_t *) zmalloc (sizeof (termindex_t));
    self->presence = presence;
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
    self->timers = ep_heap_new (sizeof (s_timer_t), NULL, NULL);
    return self;
}

void
termindex_destroy (termindex_t **self_p)
{
    termindex_t *self = *self_p;
    if (self) {
        //  The indexes point into records: they go first.
        zhashx_destroy (&self->by_router);
        zhashx_destroy (&self->by_service);
        zhashx_destroy (&self->records);
        zhashx_destroy (&self->counts);
        zhashx_destroy (&self->keys);
        ep_heap_destroy (&self->timers);
        free (self);
        *self_p = NULL;
    }
}

char *
termindex_pair (char *buf, size_t size, const char *router_id, const char *service_id)
{
    snprintf (buf, size, "%s\x1f%s", router_id? router_id: "", service_id? service_id: "");
    return buf;
}

termrec_t *
termindex_lookup (termindex_t *self, const char *id)
{
    return (termrec_t *) zhashx_lookup (self->records, id);
}

termindex_counts_t *
termindex_counts (termindex_t *self, const char *service_id)
{
    termindex_counts_t *counts = (termindex_counts_t *) zhashx_lookup (self->counts, service_id);
    if (!counts) {
        counts = (termindex_counts_t *) zmalloc (sizeof (termindex_counts_t));
        zhashx_insert (self->counts, service_id, counts);
    }
    return counts;
}

//  Adds (sign 1) or removes (-1) record's share of its service's counters,
//  as if its router's presence were online.
static void
s_count (termindex_t *self, const termrec_t *record, bool online, int sign)
{
    if (!*record->service_id || !termsm_live (record->sm.state))
        return;
    termindex_counts_t *counts = termindex_counts (self, record->service_id);
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
s_account (termindex_t *self, termrec_t *record, bool add)
{
    self->states [record->sm.state] += add? 1: -1;
    s_count (self, record, termpresence_online (self->presence, record->router_id), add? 1: -1);
    if (record->sm.state != TERMSM_DELETED && record->sm.state != TERMSM_NONE) {
        s_index (self->by_router, record->router_id, record, add);
        if (*record->service_id)
            s_index (self->by_service, record->service_id, record, add);
    }
}

static void
s_timer_push (termindex_t *self, int64_t due_ms, const char *id)
{
    s_timer_t timer = { .due_ms = due_ms };
    snprintf (timer.id, sizeof timer.id, "%s", id);
    ep_heap_push (self->timers, &timer);
}

void
termindex_apply (termindex_t *self, const termrec_t *value)
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
        s_timer_push (self, record->sm.due_ms, record->id);
}

void
termindex_forget (termindex_t *self, const char *id)
{
    termrec_t *record = (termrec_t *) zhashx_lookup (self->records, id);
    if (record) {
        s_account (self, record, false);
        zhashx_delete (self->records, id);
    }
}

termrec_t *
termindex_first (termindex_t *self)
{
    return (termrec_t *) zhashx_first (self->records);
}

termrec_t *
termindex_next (termindex_t *self)
{
    return (termrec_t *) zhashx_next (self->records);
}

size_t
termindex_count (termindex_t *self, termsm_state_t state)
{
    return (unsigned) state < TERMSM_STATE_COUNT? self->states [state]: 0;
}

bool
termindex_recount (termindex_t *self, const char *router_id, bool online)
{
    zhashx_t *mine = (zhashx_t *) zhashx_lookup (self->by_router, router_id);
    if (!mine)
        return false;
    for (termrec_t *record = (termrec_t *) zhashx_first (mine); record;
         record = (termrec_t *) zhashx_next (mine)) {
        s_count (self, record, !online, -1);
        s_count (self, record, online, 1);
    }
    return true;
}

zhashx_t *
termindex_of_router (termindex_t *self, const char *router_id)
{
    return (zhashx_t *) zhashx_lookup (self->by_router, router_id);
}

zhashx_t *
termindex_of_service (termindex_t *self, const char *service_id)
{
    return (zhashx_t *) zhashx_lookup (self->by_service, service_id);
}

//  Ids of the members of index [key] (a copy: staging changes the index).
static zlistx_t *
s_member_ids (zhashx_t *index, const char *key)
{
    zhashx_t *members = (zhashx_t *) zhashx_lookup (index, key);
    return members? zhashx_keys (members): zlistx_new ();
}

zlistx_t *
termindex_router_ids (termindex_t *self, const char *router_id)
{
    return s_member_ids (self->by_router, router_id);
}

zlistx_t *
termindex_service_ids (termindex_t *self, const char *service_id)
{
    return s_member_ids (self->by_service, service_id);
}

zlistx_t *
termindex_routers (termindex_t *self)
{
    return zhashx_keys (self->by_router);
}

termsm_key_t *
termindex_key (termindex_t *self, const char *key)
{
    return (termsm_key_t *) zhashx_lookup (self->keys, key);
}

void
termindex_key_set (termindex_t *self, const char *key, const termsm_key_t *value)
{
    termsm_key_t *spin = (termsm_key_t *) zhashx_lookup (self->keys, key);
    if (!spin) {
        spin = (termsm_key_t *) zmalloc (sizeof (termsm_key_t));
        zhashx_insert (self->keys, key, spin);
    }
    *spin = *value;
}

void
termindex_key_remove (termindex_t *self, const char *key)
{
    zhashx_delete (self->keys, key);
}

void
termindex_load_keys (termindex_t *self)
{
    for (int pass = 0; pass < 2; pass++) {
        termrec_t *record = (termrec_t *) zhashx_first (self->records);
        for (; record; record = (termrec_t *) zhashx_next (self->records)) {
            if (!*record->service_id || termsm_live (record->sm.state) != (pass == 0))
                continue;
            char key [140];
            termindex_pair (key, sizeof key, record->router_id, record->service_id);
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
}

//  True if the top entry is still its record's timer.
static bool
s_timer_valid (termindex_t *self, const s_timer_t *timer)
{
    termrec_t *record = (termrec_t *) zhashx_lookup (self->records, timer->id);
    return record && record->sm.due_ms == timer->due_ms;
}

//  Drops stale entries from the top; rebuilds when they dominate.
static void
s_timers_clean (termindex_t *self)
{
    s_timer_t *top;
    while ((top = (s_timer_t *) ep_heap_top (self->timers)) && !s_timer_valid (self, top))
        ep_heap_pop (self->timers, NULL);
    //  Stale entries pile up when due times move; rebuild when they dominate.
    size_t size = ep_heap_size (self->timers);
    if (size > 4096 && size > 4 * zhashx_size (self->records)) {
        ep_heap_clear (self->timers);
        termrec_t *record = (termrec_t *) zhashx_first (self->records);
        for (; record; record = (termrec_t *) zhashx_next (self->records))
            if (record->sm.due_ms)
                s_timer_push (self, record->sm.due_ms, record->id);
    }
}

int64_t
termindex_next_timer (termindex_t *self)
{
    s_timers_clean (self);
    s_timer_t *top = (s_timer_t *) ep_heap_top (self->timers);
    return top? top->due_ms: 0;
}

termrec_t *
termindex_take_due (termindex_t *self, int64_t now_ms)
{
    s_timers_clean (self);
    s_timer_t *top = (s_timer_t *) ep_heap_top (self->timers);
    if (!top || top->due_ms > now_ms)
        return NULL;
    termrec_t *record = (termrec_t *) zhashx_lookup (self->records, top->id);
    ep_heap_pop (self->timers, NULL);
    return record;
}
