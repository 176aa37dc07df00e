/*  termids.h: the terminator ids a router agent keeps, one per hosted service.

    A router chooses its terminators' ids, and the services key their
    idempotent creates and deletes on them: a router that restarts must
    ask with the same ids, so they are kept in a file in the state
    directory ("service_id terminator_id" per line), written whole or not
    at all. Without a state directory they last as long as the process.
*/
#ifndef TERMIDS_H_INCLUDED
#define TERMIDS_H_INCLUDED

#include "ep_prelude.h"

typedef struct _termids_t termids_t;

//  Loads router_id's ids from state_dir (NULL: none kept on disk).
termids_t *
    termids_new (const char *state_dir, const char *router_id);

void
    termids_destroy (termids_t **self_p);

//  The terminator id of service_id, a new one (saved at once) if it has
//  none yet. The object keeps it.
const char *
    termids_get (termids_t *self, const char *service_id);

#endif
