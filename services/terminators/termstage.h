/*  termstage.h: a batch's changes, staged so that they can be undone.

    The terminator service applies a change to memory (termindex) the
    moment it stages it, and writes its row in the open transaction, so
    later requests of the same batch see it; what memory held before goes
    to an undo log. Each request and the internal work run in a savepoint:
    if a store write inside it failed, the savepoint is rolled back and
    memory, the outputs staged since (ep_output) and the dirty-set entries
    consumed since are put back exactly as they were; a failed commit puts
    back the whole batch. Nothing staged is visible outside the service
    before the commit.

        mark = termstage_savepoint (stage, "request");
        termstage_put (stage, next);            //  memory + row, undo kept
        if (termstage_release (stage, mark) != 0)
            ...the request is answered UNAVAILABLE
        ...
        termstage_keep (stage)  or  termstage_undo (stage)
*/
#ifndef TERMSTAGE_H_INCLUDED
#define TERMSTAGE_H_INCLUDED

#include "ep_prelude.h"
#include "ep_output.h"
#include "ep_store.h"
#include "termindex.h"

typedef struct _termstage_t termstage_t;

//  Where a savepoint began.
typedef struct {
    size_t undo;                //  undo log size at the start
    size_t staged;              //  staged outputs at the start
    char name [16];             //  savepoint name
} termstage_mark_t;

//  Staging over store, index and output (all borrowed).
termstage_t *
    termstage_new (ep_store_t *store, termindex_t *index, ep_output_t *output);

void
    termstage_destroy (termstage_t **self_p);

//  Opens a savepoint named name (a short identifier).
termstage_mark_t
    termstage_savepoint (termstage_t *self, const char *name);

//  Ends a savepoint: kept (0), or undone (-1: memory, outputs, rows) if a
//  store write inside it failed.
int
    termstage_release (termstage_t *self, termstage_mark_t mark);

//  A store write of the current savepoint failed (termstage_release will
//  undo it); true once one did.
void
    termstage_fail (termstage_t *self);
bool
    termstage_failed (termstage_t *self);

//  Stages value as the new content of its record: memory now, the row in
//  the transaction, the old content in the undo log.
void
    termstage_put (termstage_t *self, const termrec_t *value);

//  Stages the removal of id (a tombstone whose time is up).
void
    termstage_remove (termstage_t *self, const char *id);

//  The spin detector's memory of (router, service), to change in place:
//  its value now is kept for undo, and it is created if missing.
termsm_key_t *
    termstage_key (termstage_t *self, const char *router_id, const char *service_id);

//  Takes id out of set (a set of ids to work on) for this batch; it is
//  put back if the savepoint or the batch is undone.
void
    termstage_consume (termstage_t *self, zhashx_t *set, const char *id);

//  Calls fn (arg, id, before) once for each record the open batch
//  changed (before: its content when the batch opened, NULL if it did not
//  exist), for a store that writes the batch elsewhere (the etcd mode).
void
    termstage_each_changed (termstage_t *self,
                            void (*fn) (void *arg, const char *id, const termrec_t *before),
                            void *arg);

//  The batch committed: forget the undo log.
void
    termstage_keep (termstage_t *self);

//  The batch failed: put everything back (outputs: ep_output_abort).
void
    termstage_undo (termstage_t *self);

#endif
