/*  ep_stack.h: the fixture the integration suites share.

    A temporary data dir with the CURVE keys and a TLS CA, a real bus and a
    real model started on kernel-chosen 127.0.0.1 ports, the environment
    that points further services at them, model writes over RPC as the
    operator, and subscribers to the bus. Failures assert (Criterion): a
    fixture that cannot start is a failed test, with its reason.
*/
#ifndef EP_STACK_H_INCLUDED
#define EP_STACK_H_INCLUDED

#include "ep_test.h"
#include "ep_subscriber.h"
#include "model.pb-c.h"

typedef struct _ep_stack_t ep_stack_t;

//  Creates the dir (tag names it), the keys and CA, and starts bus and model.
ep_stack_t *
    ep_stack_new (const char *tag);

//  Stops the bus and model, drops the subscribers, removes the dir.
void
    ep_stack_destroy (ep_stack_t **self_p);

const char *
    ep_stack_dir (ep_stack_t *self);
const char *
    ep_stack_keys (ep_stack_t *self);
ep_proc_t *
    ep_stack_bus (ep_stack_t *self);
ep_proc_t *
    ep_stack_model (ep_stack_t *self);

//  The environment for a service: EDGEPLANE_KEYS_DIR, _DATA_DIR, _BUS_PUB,
//  _BUS_SUB, _MODEL_API, then what ep_stack_setenv added; NULL-terminated,
//  valid until the next ep_stack_setenv.
const char *const *
    ep_stack_env (ep_stack_t *self);

//  Sets name=value (printf-style) in that environment, replacing any.
void
    ep_stack_setenv (ep_stack_t *self, const char *name, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

//  Removes name from that environment, if there.
void
    ep_stack_unsetenv (ep_stack_t *self, const char *name);

//  Hands proc (a service a test started) to the stack, which stops it
//  first at destroy, even when an assertion ended the test early.
void
    ep_stack_keep (ep_stack_t *self, ep_proc_t *proc);

//  Sends request (its request id is filled in) to the model as the
//  operator and returns the reply, whatever its status (caller frees).
Ep__ModelReply *
    ep_stack_model_call (ep_stack_t *self, Ep__ModelRequest *request);

//  One write, which must succeed; returns its revision.
uint64_t
    ep_stack_model_write (ep_stack_t *self, Ep__ModelWrite *write);

//  Writes of the common kinds, each of which must succeed; the revision.
//  A router write creates (op CREATE) or replaces (op UPDATE) the router
//  hosting services (count 0 on UPDATE: none).
uint64_t
    ep_stack_create_service (ep_stack_t *self, const char *id);
uint64_t
    ep_stack_router_write (ep_stack_t *self, Ep__ModelWrite__Op op, const char *id,
                           const char *const *services, size_t count);
uint64_t
    ep_stack_delete_router (ep_stack_t *self, const char *id);

//  A subscriber (role subscriber) to topics starting with prefix ("" for
//  all). The stack destroys it.
ep_subscriber_t *
    ep_stack_subscribe (ep_stack_t *self, const char *prefix);

#endif
