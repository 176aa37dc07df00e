/*  ep_ctrl_peers.c: the watchdog ctrl-peer suites' shared helpers. */
#include <criterion/criterion.h>
#include "ep_ctrl_peers.h"
#include "ep_keys.h"
#include "ep_pki_tls.h"
#include "ep_rpc_client.h"
#include "ep_subscriber.h"

typedef struct {
    const char *src;            //  the dialing controller
    const char *dst;            //  the reporting instance
    bool connected;             //  a join, or a close
} s_ctrl_match_t;

static bool
s_ctrl_match (const ep_logged_t *event, void *arg)
{
    s_ctrl_match_t *match = (s_ctrl_match_t *) arg;
    return streq (event->src_id, match->src) && streq (event->dst_id, match->dst)
        && event->connected == match->connected;
}

int
ep_ctrl_await (ep_eventlog_t *log, const char *src, const char *dst, bool connected,
               size_t from, int timeout_ms)
{
    s_ctrl_match_t match = { src, dst, connected };
    return ep_eventlog_await (log, "connect.ctrl-to-ctrl", s_ctrl_match, &match, from, timeout_ms);
}

ep_stack_t *
ep_ctrl_stack_new (const char *tag, ep_eventlog_t **log_p)
{
    ep_stack_t *stack = ep_stack_new (tag);
    cr_assert_not_null (stack);
    ep_stack_setenv (stack, "EDGEPLANE_TERMINATORS_API", "tcp://127.0.0.1:1");
    ep_stack_setenv (stack, "EDGEPLANE_REAPER_API", "tcp://127.0.0.1:1");
    *log_p = ep_eventlog_new (ep_stack_subscribe (stack, "connect.ctrl-to-ctrl"));
    return stack;
}

ep_proc_t *
ep_ctrl_watchdog_start (ep_stack_t *stack, const char *instance, const char *const *extra)
{
    char id [64];
    snprintf (id, sizeof id, "--instance-id=%s", instance);
    //  At debug, a failure's log shows every dial and why it failed.
    const char *args [24] = { "--channel-listen", "127.0.0.1:0", "--listen", "tcp://127.0.0.1:*",
                              "--http-listen", "127.0.0.1:0", "--heartbeat=200ms",
                              "--heartbeat-timeout=2s", "--log-level=debug", id };
    size_t count = 10;
    for (size_t i = 0; extra && extra [i]; i++) {
        cr_assert_lt (count, EP_COUNT (args) - 1, "too many flags for watchdog %s", instance);
        args [count++] = extra [i];
    }
    args [count] = NULL;
    ep_proc_t *watchdog = ep_proc_start ("edgeplane-watchdog", args, ep_stack_env (stack), 15000);
    cr_assert_not_null (watchdog, "watchdog %s did not start", instance);
    return watchdog;
}

SSL_CTX *
ep_ctrl_router_ctx (ep_stack_t *stack, const char *id)
{
    const char *dir = ep_stack_dir (stack);
    char err [512];
    cr_assert_eq (ep_pki_issue (ep_stack_keys (stack), "router", id, dir, 30, err, sizeof err), 0, "%s", err);
    char *cert = zsys_sprintf ("%s/%s.crt", dir, id), *key = zsys_sprintf ("%s/%s.key", dir, id);
    char *ca = zsys_sprintf ("%s/ca.crt", dir);
    SSL_CTX *ctx = ep_pki_client_ctx (cert, key, ca, err, sizeof err);
    cr_assert_not_null (ctx, "%s", err);
    free (cert);
    free (key);
    free (ca);
    return ctx;
}

Ep__ModelReply *
ep_ctrl_controller (ep_stack_t *stack, const char *id)
{
    Ep__ModelGet get = EP__MODEL_GET__INIT;
    get.has_type = true;
    get.type = EP__ENTITY_TYPE__ENTITY_CONTROLLER;
    get.id = (char *) id;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.op_case = EP__MODEL_REQUEST__OP_GET;
    request.get = &get;
    return ep_stack_model_call (stack, &request);
}

Ep__WatchdogReply *
ep_ctrl_connections (ep_stack_t *stack, ep_proc_t *watchdog)
{
    zcert_t *cert = ep_keys_load (ep_stack_keys (stack), "subscriber");
    char *key = ep_keys_public_txt (ep_stack_keys (stack), "watchdog");
    cr_assert (cert && key);
    ep_rpc_client_t *client = ep_rpc_client_new (ep_proc_connect_endpoint (watchdog, "api"), cert, key);
    Ep__ConnectionFilter filter = EP__CONNECTION_FILTER__INIT;
    filter.role = "ctrl";
    Ep__WatchdogRequest request = EP__WATCHDOG_REQUEST__INIT;
    request.op_case = EP__WATCHDOG_REQUEST__OP_LIST;
    request.list = &filter;
    char err [256];
    Ep__WatchdogReply *reply = ep_rpc_call (client, &request, &ep__watchdog_reply__descriptor, 3000, 3,
                                            err, sizeof err);
    cr_assert_not_null (reply, "%s", err);
    cr_assert_eq (reply->status->code, EP__STATUS__CODE__OK);
    ep_rpc_client_destroy (&client);
    zcert_destroy (&cert);
    free (key);
    return reply;
}
