/*  termstore.h: terminators.db, the durable side of the terminator service.

    One row per terminator (tombstones included) holding everything its
    state machine needs to resume after a restart (state, attempts, timer,
    the model revision it was based on), and an outbox of events: events
    are written in the same transaction as the transitions they report and
    published after the commit, so a crash between the two publishes them
    at the next start instead of losing them. termrec_t is the in-memory
    form of a row. SQL only: the service (terminators.c) decides.
*/
#ifndef TERMSTORE_H_INCLUDED
#define TERMSTORE_H_INCLUDED

#include "ep_prelude.h"
#include "ep_store.h"
#include "termsm.h"

//  One terminator.
typedef struct {
    char id [65];               //  chosen by the router, stable across its restarts
    char service_id [65];       //  "" for the tombstone of an id never seen
    char router_id [65];        //  its router: the only one that may change it
    char host_id [65];          //  the identity hosting the service, "" if none
    char *address;              //  where the router reaches the service, NULL if none
    uint32_t cost;              //  0..65535
    uint32_t precedence;        //  an Ep__Precedence
    termsm_t sm;                //  lifecycle state, attempts, timer, lacks
    uint64_t generation;        //  +1 per change
    int64_t created_at_ms;      //  when this incarnation was created (wall clock)
    int64_t updated_at_ms;      //  its last change (wall clock)
    char *last_error;           //  why it is FAILED or DELETED, NULL if nothing to say
    uint64_t model_revision;    //  the model revision its last lifecycle change was based on
    uint64_t create_revision;   //  the model revision its last accepted create was based on
} termrec_t;

//  The schema, for ep_store_new.
extern const char *const termstore_migrations [];
extern const size_t termstore_migrations_count;

//  A zeroed record with id (state TERMSM_NONE).
termrec_t *
    termrec_new (const char *id);

//  A deep copy.
termrec_t *
    termrec_dup (const termrec_t *self);

//  Makes dest a deep copy of source (dest's strings are released first).
void
    termrec_copy (termrec_t *dest, const termrec_t *source);

void
    termrec_destroy (termrec_t **self_p);

//  Sets (printf-style) or clears (format NULL) last_error.
void
    termrec_set_error (termrec_t *self, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

//  Sets address (NULL or "" clears it).
void
    termrec_set_address (termrec_t *self, const char *address);

//  Writes record (insert or replace). Returns 0 or -1 (ep_store_last_error).
int
    termstore_save (ep_store_t *store, const termrec_t *record);

//  Removes the row of id. Returns 0 or -1.
int
    termstore_remove (ep_store_t *store, const char *id);

//  Calls fn (arg, record) for every row; fn takes the record over.
//  Returns 0 or -1.
int
    termstore_load (ep_store_t *store, void (*fn) (void *arg, termrec_t *record), void *arg);

//  Appends to out (termrec_t items the caller destroys) at most limit rows
//  with id > after, in id order, whose service and router are the given
//  ones (NULL: any) and whose state is state (-1: any but DELETED).
//  Returns 0 or -1.
int
    termstore_list (ep_store_t *store, const char *service_id, const char *router_id,
                    int state, const char *after, uint32_t limit, zlistx_t *out);

//  Appends an event to the outbox. Returns its sequence number (> 0), or -1.
int64_t
    termstore_outbox_add (ep_store_t *store, const char *topic, const void *body, size_t size);

//  Removes the outbox entries up to seq (published). Returns 0 or -1.
int
    termstore_outbox_trim (ep_store_t *store, int64_t seq);

//  Calls fn (arg, seq, topic, body, size) for every outbox entry in order.
//  Returns 0 or -1.
int
    termstore_outbox_load (ep_store_t *store,
                           void (*fn) (void *arg, int64_t seq, const char *topic,
                                       const void *body, size_t size),
                           void *arg);

#endif
