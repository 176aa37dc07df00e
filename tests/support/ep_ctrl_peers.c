/*  ep_ctrl_peers.c: the watchdog ctrl-peer suites' shared helpers. */
#include <criterion/criterion.h>
#include "ep_ctrl_peers.h"
#include "ep_keys.h"
#include "ep_pki_tls.h"
#include "ep_rpc_client.h"
#include "ep_subscriber.h"

#define LOG_MAX 256             //  events kept; later ones are not logged

struct _ep_ctrl_log_t {
    ep_subscriber_t *events;    //  where events come from (borrowed)
    ep_ctrl_event_t seen [LOG_MAX]; //  logged so far
    size_t count;               //  entries in seen
};

ep_ctrl_log_t *
ep_ctrl_log_new (ep_subscriber_t *events)
{
    ep_ctrl_log_t *self = (ep_ctrl_log_t *) zmalloc (sizeof (ep_ctrl_log_t));
    self->events = events;
    return self;
}

void
ep_ctrl_log_destroy (ep_ctrl_log_t **self_p)
{
    if (*self_p) {
        free (*self_p);
        *self_p = NULL;
    }
}

size_t
ep_ctrl_log_size (ep_ctrl_log_t *self)
{
    return self->count;
}

const ep_ctrl_event_t *
ep_ctrl_log_get (ep_ctrl_log_t *self, size_t index)
{
    cr_assert_lt (index, self->count);
    return &self->seen [index];
}

//  Logs what arrives within timeout_ms, then whatever is already waiting.
static void
s_pump (ep_ctrl_log_t *self, int timeout_ms)
{
    char *topic = NULL;
    Ep__Event *event = ep_subscriber_recv (self->events, timeout_ms, &topic);
    while (event) {
        if (streq (topic, "connect.ctrl-to-ctrl") && event->body_case == EP__EVENT__BODY_CONNECT
        &&  self->count < LOG_MAX) {
            Ep__ConnectEvent *connect = event->connect;
            ep_ctrl_event_t *e = &self->seen [self->count++];
            snprintf (e->src_id, sizeof e->src_id, "%s", connect->src_id? connect->src_id: "");
            snprintf (e->dst_id, sizeof e->dst_id, "%s", connect->dst_id? connect->dst_id: "");
            snprintf (e->reason, sizeof e->reason, "%s", connect->reason? connect->reason: "");
            e->connected = connect->connected;
            e->duration = connect->duration;
        }
        zstr_free (&topic);
        event = ep_subscriber_recv (self->events, 0, &topic);
    }
}

int
ep_ctrl_log_await (ep_ctrl_log_t *self, const char *src, const char *dst, bool connected,
                   size_t from, int timeout_ms)
{
    int64_t deadline = ep_mono_ms () + timeout_ms;
    while (true) {
        for (size_t i = from; i < self->count; i++)
            if (streq (self->seen [i].src_id, src) && streq (self->seen [i].dst_id, dst)
            &&  self->seen [i].connected == connected)
                return (int) i;
        int64_t left = deadline - ep_mono_ms ();
        if (left <= 0)
            return -1;
        s_pump (self, (int) (left < 50? left: 50));
    }
}

ep_stack_t *
ep_ctrl_stack_new (const char *tag, ep_ctrl_log_t **log_p)
{
    ep_stack_t *stack = ep_stack_new (tag);
    cr_assert_not_null (stack);
    ep_stack_setenv (stack, "EDGEPLANE_TERMINATORS_API", "tcp://127.0.0.1:1");
    ep_stack_setenv (stack, "EDGEPLANE_REAPER_API", "tcp://127.0.0.1:1");
    *log_p = ep_ctrl_log_new (ep_stack_subscribe (stack, "connect.ctrl-to-ctrl"));
    return stack;
}

ep_proc_t *
ep_ctrl_watchdog_start (ep_stack_t *stack, const char *instance, const char *const *extra)
{
    char id [64];
    snprintf (id, sizeof id, "--instance-id=%s", instance);
    const char *args [24] = { "--channel-listen", "127.0.0.1:0", "--listen", "tcp://127.0.0.1:*",
                              "--http-listen", "127.0.0.1:0", "--heartbeat=200ms",
                              "--heartbeat-timeout=2s", id };
    size_t count = 9;
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
    char id [33], err [256];
    ep_rpc_new_id (id);
    request.request_id = id;
    request.op_case = EP__WATCHDOG_REQUEST__OP_LIST;
    request.list = &filter;
    Ep__WatchdogReply *reply = (Ep__WatchdogReply *) ep_rpc_client_call (
        client, &request.base, id, &ep__watchdog_reply__descriptor, 3000, 3, err, sizeof err);
    cr_assert_not_null (reply, "%s", err);
    cr_assert_eq (reply->status->code, EP__STATUS__CODE__OK);
    ep_rpc_client_destroy (&client);
    zcert_destroy (&cert);
    free (key);
    return reply;
}
