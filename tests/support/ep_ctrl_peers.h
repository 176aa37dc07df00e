/*  ep_ctrl_peers.h: what the watchdog ctrl-peer suites share.

    A wait for a connect.ctrl-to-ctrl event in an event log, starting a test watchdog on the stack, the model's
    Controller entry, and a watchdog's ctrl connections through its API.
    Criterion asserts inside: for tests only.
*/
#ifndef EP_CTRL_PEERS_H_INCLUDED
#define EP_CTRL_PEERS_H_INCLUDED

#include "ep_stack.h"
#include "ep_eventlog.h"
#include "channel.pb-c.h"
#include "model.pb-c.h"
#include <openssl/ssl.h>

//  Waits up to timeout_ms for a connect.ctrl-to-ctrl event src -> dst (dst
//  reports it) with connected, at index from or later in log; returns its
//  index, or -1.
int
    ep_ctrl_await (ep_eventlog_t *log, const char *src, const char *dst, bool connected,
                   size_t from, int timeout_ms);

//  A stack (bus, model, keys) for ctrl-peer tests, its relays pointing
//  nowhere (they are not under test), with connect.ctrl-to-ctrl events
//  logged in *log_p (destroy the log before the stack).
ep_stack_t *
    ep_ctrl_stack_new (const char *tag, ep_eventlog_t **log_p);

//  Starts edgeplane-watchdog as instance on stack (kernel-chosen ports,
//  200 ms heartbeats), with extra flags (NULL-terminated, may be NULL);
//  asserts it became ready.
ep_proc_t *
    ep_ctrl_watchdog_start (ep_stack_t *stack, const char *instance, const char *const *extra);

//  A TLS client context with a router bundle for id, issued from the
//  stack's CA into its dir (caller frees with SSL_CTX_free).
SSL_CTX *
    ep_ctrl_router_ctx (ep_stack_t *stack, const char *id);

//  The model's answer for controller id (caller frees).
Ep__ModelReply *
    ep_ctrl_controller (ep_stack_t *stack, const char *id);

//  What watchdog's connections API lists for role ctrl, asked with the
//  subscriber certificate (caller frees).
Ep__WatchdogReply *
    ep_ctrl_connections (ep_stack_t *stack, ep_proc_t *watchdog);

#endif
