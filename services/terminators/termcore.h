/*  termcore.h: the terminator core's state and the transitions its parts
    share. Private to the core: terminators.c (life cycle, batches,
    internal work, reads, the model and presence), termwrite.c (the write
    requests) and termcore.c (the transitions both make). Everything else
    uses terminators.h.

    A transition stages a changed copy of a record (termstage: memory and
    row, undoable) and the events it makes (ep_output, through the
    outbox), so that a failed savepoint takes both back.
*/
#ifndef TERMCORE_H_INCLUDED
#define TERMCORE_H_INCLUDED

#include "terminators.h"
#include "termindex.h"
#include "termpresence.h"
#include "termreply.h"
#include "termstage.h"
#include "termstore.h"

struct _terminators_t {
    ep_store_t *store;          //  terminators.db (borrowed)
    ep_model_view_t *view;      //  the model as followed (borrowed)
    terminators_config_t config;    //  timings
    termpresence_t *presence;   //  routers online
    termindex_t *index;         //  every terminator in memory
    ep_output_t *output;        //  events and commands: staged, then ready after the commit
    termstage_t *stage;         //  the open batch's changes, undoable
    zhashx_t *touch;            //  "r\x1fs", "r\x1f", "\x1fs" -> last touching revision
    zhashx_t *dirty_routers;    //  routers to reconcile (set)
    zhashx_t *dirty_services;   //  services to reconcile (set)
    zhashx_t *presence_dirty;   //  routers whose presence changed (set)
    int64_t settle_until_ms;    //  no timers before this (presence unknown after start)
    bool loaded;                //  the model view holds a snapshot: decisions may use it
    bool open;                  //  a batch is open
    zhashx_t *commanded;        //  routers sent a command in the open batch
    int64_t published_seq;      //  outbox entries published up to this
    int64_t trimmed_seq;        //  and removed up to this
    int64_t trim_pending_seq;   //  the trim in the open batch
    int64_t last_trim_ms;       //  when the outbox was last trimmed
    uint64_t spins;             //  spins committed
    uint64_t commands;          //  ValidateTerminators commands committed
    uint64_t acks;              //  command acks received
};

//  True if the model has router enabled.
bool
    termcore_router_enabled (const Ep__Entity *router);

//  The router's hosting of service_id in the view, or NULL.
const Ep__HostedService *
    termcore_hosting (terminators_t *self, const char *router_id, const char *service_id);

//  Why the model does not have router_id host service_id (for messages).
const char *
    termcore_why_not_hosted (terminators_t *self, const char *router_id, const char *service_id);

//  True if a watchdog holds router_id.
bool
    termcore_online (terminators_t *self, const char *router_id);

//  record, as it is now, into result's reply.
void
    termcore_reply (terminators_t *self, const termrec_t *record, terminators_result_t *result);

//  What the state machine needs to know about record's router and hosting.
termsm_facts_t
    termcore_facts (terminators_t *self, const termrec_t *record);

//  Stages terminator.<type> for record as it is now, with its service's
//  counters after the change.
void
    termcore_event (terminators_t *self, const termrec_t *record, const char *type, const char *reason);

//  Asks router_id (once per batch) to send its terminators for validation.
void
    termcore_command (terminators_t *self, const char *router_id, int64_t now_ms);

//  Stages next (a changed copy of a record) with the events of step. A
//  live terminator that stops being live counts for the spin detector,
//  unless repair (its router said it does not have it: no churn).
void
    termcore_commit_step_as (terminators_t *self, termrec_t *next, termsm_step_t step, int64_t now_ms,
                             const char *reason, bool repair);
void
    termcore_commit_step (terminators_t *self, termrec_t *next, termsm_step_t step, int64_t now_ms,
                          const char *reason);

//  The model says record goes.
void
    termcore_retire (terminators_t *self, const termrec_t *record, bool router_present, const char *why,
                     int64_t now_ms);

//  The router confirmed (or can no longer confirm) record's deletion.
void
    termcore_confirm (terminators_t *self, const termrec_t *record, const char *why, int64_t now_ms);

//  Checks one terminator against the model and presence.
void
    termcore_reconcile (terminators_t *self, const termrec_t *record, int64_t now_ms);

#endif
