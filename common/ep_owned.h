/*  ep_owned.h: allocations released together.

    A pure state machine answers with a protobuf reply that points into
    strings, arrays and messages it allocated for that reply. Each is
    registered here with the function that releases it, and the whole set
    goes when the result is cleared: the reply itself stays a plain
    stack-or-struct message that never needs a free of its own.
*/
#ifndef EP_OWNED_H_INCLUDED
#define EP_OWNED_H_INCLUDED

#include "ep_prelude.h"

typedef struct _ep_owned_t ep_owned_t;

ep_owned_t *
    ep_owned_new (void);

//  Releases everything added, newest last (in the order added).
void
    ep_owned_destroy (ep_owned_t **self_p);

//  Registers ptr to be released by release; returns ptr, so a caller can
//  write `reply->token = ep_owned_add (owned, strdup (t), free)`.
void *
    ep_owned_add (ep_owned_t *self, void *ptr, void (*release) (void *ptr));

#endif
