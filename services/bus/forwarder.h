/*  forwarder: the bus's forwarding loop shell.

    Owns the XSUB and XPUB sockets, moves messages between them in batches
    and counts them per stream; bus.c decides what each message is. Kept
    out of main.c so main.c reads as the process shape.
*/
#ifndef FORWARDER_H_INCLUDED
#define FORWARDER_H_INCLUDED

#include "ep_service.h"
#include "ep_audit.h"

typedef struct _forwarder_t forwarder_t;

//  Creates the sockets (hwm messages queued per peer) and the metrics in
//  the service's registry. audit may be NULL; the forwarder takes it.
forwarder_t *
    forwarder_new (ep_service_t *service, int hwm, bool plaintext, ep_audit_t **audit);

void
    forwarder_destroy (forwarder_t **self_p);

//  Binds the publishers' and subscribers' sides. Returns 0 or -1.
int
    forwarder_bind (forwarder_t *self, const char *pub_listen, const char *sub_listen);

//  Runs until the service is interrupted. Returns 0.
int
    forwarder_run (forwarder_t *self);

#endif
