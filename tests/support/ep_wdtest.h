/*  ep_wdtest.h: what the watchdog's suites play around a real watchdog: a
    router on the control channel (its TLS context from a bundle, a join,
    the next frame of a kind), and stub services the watchdog relays to (a
    CURVE ROUTER with the service's own certificate, answering by hand).
    Each helper asserts what must hold for the test to go on. */
#ifndef EP_WDTEST_H_INCLUDED
#define EP_WDTEST_H_INCLUDED

#include "ep_test.h"
#include "ep_rpc_server.h"
#include "ep_auth.h"
#include "ep_stack.h"
#include "chan_client.h"
#include <openssl/ssl.h>

//  A stub service: a CURVE ROUTER with the service's certificate.
typedef struct {
    zsock_t *sock;              //  ROUTER, bound on a kernel-chosen port
    ep_rpc_server_t *rpc;       //  request ids, callers, replies
    char *endpoint;             //  where it is bound
} ep_stub_t;

//  Binds stub as service ("terminators", "reaper") with its certificate
//  from keys_dir, on a kernel-chosen 127.0.0.1 port.
void
    ep_stub_start (ep_stub_t *stub, const char *keys_dir, const char *service);

void
    ep_stub_stop (ep_stub_t *stub);

//  The services a watchdog relays to, as stubs, and zauth for their
//  callers' roles.
typedef struct {
    ep_auth_t *auth;            //  zauth: the callers' roles
    ep_stub_t terminators;      //  "terminators"
    ep_stub_t reaper;           //  "reaper"
} ep_stubs_t;

//  Starts both stubs with the stack's keys and points the stack's
//  environment (EDGEPLANE_TERMINATORS_API, _REAPER_API) at them; the
//  watchdogs it starts log at debug (a failure's log shows the relay).
void
    ep_stubs_start (ep_stubs_t *self, ep_stack_t *stack);

//  Stops both stubs and zauth (after the stack's processes are gone).
void
    ep_stubs_stop (ep_stubs_t *self);

//  The next request the stub receives within timeout_ms, or NULL.
ep_rpc_call_t *
    ep_stub_next (ep_stub_t *stub, int timeout_ms);

//  A router's client TLS context from dir/<id>.crt, <id>.key, ca.crt.
SSL_CTX *
    ep_wdtest_router_ctx (const char *dir, const char *id);

//  A router id that has joined the channel at endpoint (HelloResult OK).
chan_client_t *
    ep_wdtest_join (const char *endpoint, SSL_CTX *ctx, const char *id);

//  The next frame of type body within timeout_ms (others are skipped),
//  or NULL. Caller frees.
Ep__Frame *
    ep_wdtest_expect_frame (chan_client_t *client, Ep__Frame__BodyCase body, int timeout_ms);

//  Sends frame; asserts it went.
void
    ep_wdtest_send (chan_client_t *client, Ep__Frame *frame);

#endif
