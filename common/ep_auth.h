/*  ep_auth.h: who may talk to a service, and who is talking.

    ep_auth runs czmq's zauth (the ZAP handler) over <keys>/authorized, so a
    CURVE server socket (ep_curve_server) admits only clients whose public
    certificate is there; new files are seen on the next handshake. zauth
    hands each certificate's metadata to libzmq, which attaches it to every
    message: ep_caller_from_frame reads it back as the caller's identity.

    Death watch contract. Without a ZAP handler libzmq admits ANY client that
    knows the server key, so a service must not outlive its zauth:
      - create ep_auth before binding anything, keep it until the end;
      - add ep_auth_actor (auth) to the service's zpoller (or zloop) and never
        read from it: once started, zauth sends nothing unless it has died;
      - when the poller reports it readable, call ep_auth_check (auth), which
        logs and exits the process at once if zauth has died.
    A service that does not poll calls ep_auth_check on each loop iteration.
*/
#ifndef EP_AUTH_H_INCLUDED
#define EP_AUTH_H_INCLUDED

#include "ep_prelude.h"

typedef struct _ep_auth_t ep_auth_t;

//  The authenticated peer behind a message: its Z85 public key and the
//  role and name its certificate carries.
typedef struct {
    char key [41];              //  Z85 public key (the ZAP User-Id)
    char role [32];             //  certificate metadata "role"
    char name [65];             //  certificate metadata "name" (an id)
} ep_caller_t;

//  Starts zauth with CURVE on <keys_dir>/authorized. Returns NULL, after
//  logging what to do, if that directory is missing or zauth cannot start.
ep_auth_t *
    ep_auth_new (const char *keys_dir);

//  Stops zauth (also after it died) and nulls the pointer.
void
    ep_auth_destroy (ep_auth_t **self_p);

//  The zauth actor, to add to a zpoller: readable only if zauth died. Do not
//  read from it.
zactor_t *
    ep_auth_actor (ep_auth_t *self);

//  True if zauth has died (checked without blocking or consuming anything).
bool
    ep_auth_dead (ep_auth_t *self);

//  Exits the process (ep_auth_fatal) if zauth has died; returns otherwise.
void
    ep_auth_check (ep_auth_t *self);

//  Logs that authentication is gone and exits with status 1 at once,
//  without the cleanup that could block or admit one more client.
void
    ep_auth_fatal (void) __attribute__ ((noreturn));

//  Fills caller from any frame of a message received on a CURVE server
//  socket (a ROUTER's routing-id frame included). Returns 0, or -1 (caller
//  cleared) if the frame carries no CURVE identity with a role and a name.
int
    ep_caller_from_frame (zframe_t *frame, ep_caller_t *caller);

//  True if role is in allowed, a NULL-terminated list. False for NULL or "".
bool
    ep_role_allowed (const char *role, const char *const *allowed);

#endif
