/*  termindex.h: every terminator in memory, indexed for the hot paths.

    The terminator service never reads SQL to decide: it keeps every
    terminator (tombstones included) here, with indexes by router and by
    service, the counters each service's events carry (total, usable by
    precedence, which depend on the router's presence), the number of
    terminators per state, the spin detector's memory per (router,
    service), and the timers (a min-heap of due times over common/ep_heap;
    an entry goes stale when its record's due time changes and is skipped).
    No store and no undo: termstage.c stages changes through it and puts
    them back if a savepoint fails.
*/
#ifndef TERMINDEX_H_INCLUDED
#define TERMINDEX_H_INCLUDED

#include "ep_prelude.h"
#include "termpresence.h"
#include "termstore.h"
#include "terminators.pb-c.h"

typedef struct _termindex_t termindex_t;

//  Service counters carried by every event, as in OpenZiti.
typedef struct {
    uint32_t total;             //  live terminators of the service
    uint32_t usable_default;    //  ESTABLISHED, router online, precedence default
    uint32_t usable_required;   //  ESTABLISHED, router online, precedence required
} termindex_counts_t;

//  An index whose counters follow presence (borrowed).
termindex_t *
    termindex_new (termpresence_t *presence);

void
    termindex_destroy (termindex_t **self_p);

//  "router\x1fservice" in buf (either may be NULL or ""): the key of a
//  pair, of a router ("router\x1f") or of a service ("\x1fservice").
char *
    termindex_pair (char *buf, size_t size, const char *router_id, const char *service_id);

//  The record with id, or NULL. Valid until the next change of that id.
termrec_t *
    termindex_lookup (termindex_t *self, const char *id);

//  Makes memory hold value for value->id (copied): indexes, counters and
//  its timer follow.
void
    termindex_apply (termindex_t *self, const termrec_t *value);

//  Removes id (nothing if unknown).
void
    termindex_forget (termindex_t *self, const char *id);

//  Every record (tombstones included): first, then next until NULL. Do
//  not change the index while walking it.
termrec_t *
    termindex_first (termindex_t *self);
termrec_t *
    termindex_next (termindex_t *self);

//  Records in state (DELETED: tombstones).
size_t
    termindex_count (termindex_t *self, termsm_state_t state);

//  The counters of service_id (created at zero if it has none).
termindex_counts_t *
    termindex_counts (termindex_t *self, const char *service_id);

//  The router's presence flipped to online: its terminators' share of
//  their services' counters follows. Returns false if it has none.
bool
    termindex_recount (termindex_t *self, const char *router_id, bool online);

//  The router's (service's) terminators that are not DELETED, id ->
//  termrec_t, or NULL if it has none.
zhashx_t *
    termindex_of_router (termindex_t *self, const char *router_id);
zhashx_t *
    termindex_of_service (termindex_t *self, const char *service_id);

//  A copy of the ids of the router's (service's) terminators, for a walk
//  that changes the index. The caller destroys it.
zlistx_t *
    termindex_router_ids (termindex_t *self, const char *router_id);
zlistx_t *
    termindex_service_ids (termindex_t *self, const char *service_id);

//  The routers that have terminators (a copy; the caller destroys it).
zlistx_t *
    termindex_routers (termindex_t *self);

//  The spin detector's memory of (router, service) by termindex_pair key,
//  or NULL.
termsm_key_t *
    termindex_key (termindex_t *self, const char *key);

//  Sets the memory of key to value (copied).
void
    termindex_key_set (termindex_t *self, const char *key, const termsm_key_t *value);

void
    termindex_key_remove (termindex_t *self, const char *key);

//  Builds the spin detector's memory from the records loaded: live
//  terminators first, then the latest create of pairs that have none left.
void
    termindex_load_keys (termindex_t *self);

//  The earliest due time of a timer (wall clock ms), or 0 if none.
int64_t
    termindex_next_timer (termindex_t *self);

//  The record whose timer is due at now_ms (taken off the heap), or NULL.
termrec_t *
    termindex_take_due (termindex_t *self, int64_t now_ms);

#endif
