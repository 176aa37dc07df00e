/*  termsm.h: the terminator lifecycle as a pure state machine.

        (none) --create--> ESTABLISHING --router online--> ESTABLISHED
        ESTABLISHING --establish timeout--> FAILED --retry (backoff, jitter)--> ...
        ESTABLISHED --router lacks it (validate)--> FAILED --still lacking at the cap--> DELETED
        FAILED --conditions met--> ESTABLISHED;  FAILED --create--> ESTABLISHING
        any live state --delete / model says it goes--> DELETING --> DELETED
        DELETING, DELETED --create based on a newer model revision--> ESTABLISHING

    No clock, no randomness, no storage: times and random numbers come in as
    arguments and every call says which transitions it made, so the service
    (terminators.c) makes them durable and publishes them, and tests drive
    every path directly. The rules that order operations by the model
    revision they were based on, and the spin detector's per-key memory,
    live here too: they are pure decisions on small values.
    docs/terminators.md is the contract.
*/
#ifndef TERMSM_H_INCLUDED
#define TERMSM_H_INCLUDED

#include "ep_prelude.h"

//  States; the numbers are those of ep.TerminatorState.
typedef enum {
    TERMSM_NONE = 0,            //  not known
    TERMSM_ESTABLISHING = 1,    //  durable, waiting for its router to be online
    TERMSM_ESTABLISHED = 2,     //  usable: durable, hosting confirmed, router online
    TERMSM_DELETING = 3,        //  going: waiting for its router's delete (or a grace)
    TERMSM_DELETED = 4,         //  gone; kept as a tombstone for a while
    TERMSM_FAILED = 5           //  not usable; retried with backoff up to a cap
} termsm_state_t;

#define TERMSM_STATE_COUNT 6

//  Timings and limits.
typedef struct {
    int64_t establish_timeout_ms;   //  ESTABLISHING this long (router offline) -> FAILED
    int64_t retry_base_ms;          //  first delay before a FAILED terminator is retried
    int64_t retry_max_ms;           //  cap on one delay
    uint32_t retry_cap;             //  automatic retries at most; then it stays FAILED
    int64_t delete_grace_ms;        //  DELETING waits this long for its router's delete
    int64_t tombstone_ttl_ms;       //  DELETED is kept (and blocks late creates) this long
} termsm_config_t;

//  One terminator's lifecycle state.
typedef struct {
    termsm_state_t state;       //  where it is
    uint32_t attempts;          //  failed attempts since it was last established
    int64_t due_ms;             //  wall clock when its timer fires, 0 for none
    bool lacks;                 //  its router said (validate) it does not have it
} termsm_t;

//  What the service knows about a terminator's surroundings now.
typedef struct {
    bool online;                //  its router is held by a watchdog
    bool hosted;                //  the model has its router host its service
} termsm_facts_t;

//  What one call did: up to three transitions in order, and whether the
//  router should be asked to send its list (a ValidateTerminators command).
typedef struct {
    int count;                  //  transitions made (0..3)
    termsm_state_t from [3];    //  each transition's source
    termsm_state_t to [3];      //  and target
    bool ask_router;            //  ask the router to validate its terminators
} termsm_step_t;

//  How an operation relates to the terminator's last model revision.
typedef enum {
    TERMSM_APPLY = 0,           //  apply it
    TERMSM_STALE                //  it was based on an older model than the terminator's
                                //  last change: refuse it, never compensate
} termsm_order_t;

//  The spin detector's memory of one (router, service) key.
typedef struct {
    bool created;               //  a create was accepted for the key
    bool deleted_since;         //  the key's last live terminator was deleted since
    uint64_t create_revision;   //  the model revision the last accepted create was based on
} termsm_key_t;

//  A create: a new terminator (NONE), a new incarnation of a DELETED or
//  DELETING one, or the router asserting a live one again (which clears
//  lacks). Establishes at once when facts allow.
termsm_step_t
    termsm_create (termsm_t *self, const termsm_config_t *config,
                   termsm_facts_t facts, int64_t now_ms);

//  The facts changed (router online, model): ESTABLISHING or FAILED ->
//  ESTABLISHED when its router is online, its hosting confirmed and the
//  router has not said it lacks it; otherwise nothing.
termsm_step_t
    termsm_evaluate (termsm_t *self, const termsm_config_t *config,
                     termsm_facts_t facts, int64_t now_ms);

//  Its timer fired (now_ms >= due_ms): ESTABLISHING -> FAILED; FAILED ->
//  ESTABLISHED or the next retry (backoff with jitter from random), with no
//  more retries past the cap, except that one its router keeps saying it
//  lacks is deleted at the cap; DELETING -> DELETED (grace over). DELETED:
//  nothing (the caller purges the tombstone).
termsm_step_t
    termsm_timer (termsm_t *self, const termsm_config_t *config,
                  termsm_facts_t facts, int64_t now_ms, uint32_t random);

//  Its router said it lacks it: a live terminator -> FAILED, retried.
termsm_step_t
    termsm_lacks (termsm_t *self, const termsm_config_t *config, int64_t now_ms,
                  uint32_t random);

//  Its router deleted it: a live or DELETING terminator -> DELETED,
//  through DELETING.
termsm_step_t
    termsm_delete (termsm_t *self, const termsm_config_t *config, int64_t now_ms);

//  The model says it goes (router deleted or disabled, service no longer
//  hosted): -> DELETING, waiting up to the grace for its router's delete,
//  or straight on to DELETED when the router is not there to delete it.
termsm_step_t
    termsm_retire (termsm_t *self, const termsm_config_t *config, bool router_present,
                   int64_t now_ms);

//  DELETING -> DELETED: its router confirmed, or is gone.
termsm_step_t
    termsm_confirm (termsm_t *self, const termsm_config_t *config, int64_t now_ms);

//  The delay before retry number attempt (1-based): base * 2^(attempt-1)
//  capped at max, then drawn from [d/2, d] by random ("equal jitter").
int64_t
    termsm_backoff (const termsm_config_t *config, uint32_t attempt, uint32_t random);

//  A create based on model revision request_rev, for a terminator in state
//  whose last lifecycle change was based on record_rev. A live one takes
//  any create (idempotent); a DELETING or DELETED one only a create based
//  on a strictly newer revision: an equal or older one was sent before the
//  delete, and must not bring it back.
termsm_order_t
    termsm_order_create (termsm_state_t state, uint64_t record_rev, uint64_t request_rev);

//  A delete or update of a live terminator: stale when based on an older
//  revision than the terminator's last change (a delete overtaken by a
//  newer create, an update overtaken by a newer one).
termsm_order_t
    termsm_order_change (termsm_state_t state, uint64_t record_rev, uint64_t request_rev);

//  Spin detection. Call on every create of the key (accepted or refused)
//  based on model revision revision, with touch, the last model revision
//  known to have touched the key (the caller has applied the model up to
//  revision at least). Returns true when this create follows a create ->
//  delete of the key and no model revision touched the key after the one
//  the earlier create was based on: a spin. "In between" is measured in
//  the revisions the routers saw, not in the order requests arrived, so a
//  late create never makes an honest re-host look like a spin.
bool
    termsm_key_create (termsm_key_t *self, uint64_t touch, uint64_t revision, bool accepted);

//  The key's last live terminator went.
void
    termsm_key_delete (termsm_key_t *self);

//  True for ESTABLISHING, ESTABLISHED and FAILED: the terminator exists.
bool
    termsm_live (termsm_state_t state);

//  True if from -> to is a transition of the lifecycle.
bool
    termsm_allowed (termsm_state_t from, termsm_state_t to);

//  "establishing", "established", ... ("none" for TERMSM_NONE).
const char *
    termsm_state_name (termsm_state_t state);

//  The state named name (case-insensitive), or -1.
int
    termsm_state_parse (const char *name);

#endif
