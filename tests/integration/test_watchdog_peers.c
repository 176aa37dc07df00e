/*  test_watchdog_peers.c: watchdog instances as ctrl peers of each other,
    with a real bus and model: each registers its own controller entry
    (with a ctrl certificate it issued itself), hears the other's beacons
    and dials it; each side reports the other's join as a
    connect.ctrl-to-ctrl event and lists it in its connections API; a
    killed peer is reported gone, and a restarted one is dialed again. */
#include <criterion/criterion.h>
#include "ep_stack.h"
#include "ep_chan_client.h"
#include "ep_codec.h"
#include "ep_keys.h"
#include "ep_pki.h"
#include "ep_rpc_client.h"
#include "ep_subscriber.h"
#include "model.pb-c.h"
#include <signal.h>

static ep_stack_t *s_stack;     //  keys, bus, model, environment
static const char *s_dir;       //  its data dir
static const char *s_keys;      //  its keys dir
static ep_proc_t *s_a, *s_b;    //  the two watchdogs
static ep_subscriber_t *s_events;   //  connect.ctrl-to-ctrl (the stack's)
static zcert_t *s_sub_cert;     //  for the connections API

//  connect.ctrl-to-ctrl events seen so far.
typedef struct {
    char src_id [65];
    char dst_id [65];
    char reason [48];
    bool connected;
    int64_t duration;
} s_connect_t;

static s_connect_t s_seen [256];
static size_t s_seen_count;

static void
s_pump (int timeout_ms)
{
    char *topic = NULL;
    Ep__Event *event = ep_subscriber_recv (s_events, timeout_ms, &topic);
    while (event) {
        if (streq (topic, "connect.ctrl-to-ctrl") && event->body_case == EP__EVENT__BODY_CONNECT
        &&  s_seen_count < EP_COUNT (s_seen)) {
            Ep__ConnectEvent *connect = event->connect;
            s_connect_t *e = &s_seen [s_seen_count++];
            snprintf (e->src_id, sizeof e->src_id, "%s", connect->src_id? connect->src_id: "");
            snprintf (e->dst_id, sizeof e->dst_id, "%s", connect->dst_id? connect->dst_id: "");
            snprintf (e->reason, sizeof e->reason, "%s", connect->reason? connect->reason: "");
            e->connected = connect->connected;
            e->duration = connect->duration;
        }
        zstr_free (&topic);
        event = ep_subscriber_recv (s_events, 0, &topic);
    }
}

//  Waits for a ctrl-to-ctrl event src -> dst (dst reports it) with
//  connected, at index from or later; returns its index, or -1.
static int
s_await (const char *src, const char *dst, bool connected, size_t from, int timeout_ms)
{
    int64_t deadline = ep_mono_ms () + timeout_ms;
    while (true) {
        for (size_t i = from; i < s_seen_count; i++)
            if (streq (s_seen [i].src_id, src) && streq (s_seen [i].dst_id, dst)
            &&  s_seen [i].connected == connected)
                return (int) i;
        int64_t left = deadline - ep_mono_ms ();
        if (left <= 0)
            return -1;
        s_pump ((int) (left < 50? left: 50));
    }
}

//  The controller entry id, or NULL (caller frees the reply).
static Ep__ModelReply *
s_controller (const char *id)
{
    Ep__ModelGet get = EP__MODEL_GET__INIT;
    get.has_type = true;
    get.type = EP__ENTITY_TYPE__ENTITY_CONTROLLER;
    get.id = (char *) id;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.op_case = EP__MODEL_REQUEST__OP_GET;
    request.get = &get;
    return ep_stack_model_call (s_stack, &request);
}

static ep_proc_t *
s_watchdog (const char *instance)
{
    char id [64];
    snprintf (id, sizeof id, "--instance-id=%s", instance);
    const char *args [] = { "--channel-listen", "127.0.0.1:0", "--listen", "tcp://127.0.0.1:*",
                            "--http-listen", "127.0.0.1:0", "--heartbeat=200ms",
                            "--heartbeat-timeout=2s", id, NULL };
    ep_proc_t *watchdog = ep_proc_start ("edgeplane-watchdog", args, ep_stack_env (s_stack), 15000);
    cr_assert_not_null (watchdog);
    return watchdog;
}

static void
s_setup (void)
{
    s_stack = ep_stack_new ("watchdog-peers");
    s_dir = ep_stack_dir (s_stack);
    s_keys = ep_stack_keys (s_stack);
    //  Nothing listens there: relays are not under test here.
    ep_stack_setenv (s_stack, "EDGEPLANE_TERMINATORS_API", "tcp://127.0.0.1:1");
    ep_stack_setenv (s_stack, "EDGEPLANE_REAPER_API", "tcp://127.0.0.1:1");
    s_sub_cert = ep_keys_load (s_keys, "subscriber");
    s_events = ep_stack_subscribe (s_stack, "connect.ctrl-to-ctrl");
    s_seen_count = 0;
}

static void
s_teardown (void)
{
    ep_proc_destroy (&s_a);
    ep_proc_destroy (&s_b);
    zcert_destroy (&s_sub_cert);
    s_events = NULL;
    ep_stack_destroy (&s_stack);
}

//  What watchdog's connections API lists for role ctrl.
static Ep__WatchdogReply *
s_ctrl_connections (ep_proc_t *watchdog)
{
    char *key = ep_keys_public_txt (s_keys, "watchdog");
    ep_rpc_client_t *client = ep_rpc_client_new (ep_proc_connect_endpoint (watchdog, "api"), s_sub_cert, key);
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
    free (key);
    return reply;
}

TestSuite (watchdog_peers, .init = s_setup, .fini = s_teardown, .timeout = 90);

Test (watchdog_peers, two_instances_join_each_other_see_a_kill_and_redial_a_restart)
{
    s_a = s_watchdog ("a1");
    s_b = s_watchdog ("b1");
    //  Each instance dials the other; each reports the one it accepted.
    int ab = s_await ("watchdog-a1", "watchdog-b1", true, 0, 15000);
    int ba = s_await ("watchdog-b1", "watchdog-a1", true, 0, 15000);
    cr_assert_geq (ab, 0, "b did not report a's join: %s", ep_proc_log (s_b));
    cr_assert_geq (ba, 0, "a did not report b's join: %s", ep_proc_log (s_a));

    //  Both are controllers in the model, at their channel addresses.
    Ep__ModelReply *reply = s_controller ("watchdog-a1");
    cr_assert_eq (reply->status->code, EP__STATUS__CODE__OK, "%s", reply->status->message);
    cr_assert_str_eq (reply->entities [0]->controller->address, ep_proc_endpoint (s_a, "channel"));
    ep__model_reply__free_unpacked (reply, NULL);
    reply = s_controller ("watchdog-b1");
    cr_assert_eq (reply->status->code, EP__STATUS__CODE__OK, "%s", reply->status->message);
    ep__model_reply__free_unpacked (reply, NULL);

    //  a's connections API lists b as a joined ctrl peer, and the other way.
    Ep__WatchdogReply *list = s_ctrl_connections (s_a);
    cr_assert_eq (list->n_connections, 1);
    cr_assert_str_eq (list->connections [0]->id, "watchdog-b1");
    cr_assert_str_eq (list->connections [0]->state, "joined");
    ep__watchdog_reply__free_unpacked (list, NULL);
    list = s_ctrl_connections (s_b);
    cr_assert_eq (list->n_connections, 1);
    cr_assert_str_eq (list->connections [0]->id, "watchdog-a1");
    ep__watchdog_reply__free_unpacked (list, NULL);

    //  A router's HelloResult names the instance that holds it.
    char err [512];
    cr_assert_eq (ep_pki_issue (s_keys, "router", "r1", s_dir, 30, err, sizeof err), 0, "%s", err);
    char *cert = zsys_sprintf ("%s/r1.crt", s_dir), *key = zsys_sprintf ("%s/r1.key", s_dir);
    char *ca = zsys_sprintf ("%s/ca.crt", s_dir);
    SSL_CTX *ctx = ep_pki_client_ctx (cert, key, ca, err, sizeof err);
    cr_assert_not_null (ctx, "%s", err);
    ep_chan_client_t *client = ep_chan_client_new (ep_proc_endpoint (s_a, "channel"), ctx, 5000, err, sizeof err);
    cr_assert_not_null (client, "%s", err);
    Ep__HelloResult *result = ep_chan_client_hello (client, 1, EP__ROLE__ROLE_ROUTER, "r1", 5000);
    cr_assert_not_null (result);
    cr_assert_str_eq (result->reason, "unknown-router");
    cr_assert_str_eq (result->instance_id, "watchdog-a1");
    ep__hello_result__free_unpacked (result, NULL);
    ep_chan_client_destroy (&client);
    SSL_CTX_free (ctx);
    free (cert);
    free (key);
    free (ca);

    //  b killed: a reports the connection b made as closed.
    size_t mark = s_seen_count;
    ep_proc_signal (s_b, SIGKILL);
    cr_assert_neq (ep_proc_wait_exit (s_b, 5000), -1);
    int gone = s_await ("watchdog-b1", "watchdog-a1", false, mark, 10000);
    cr_assert_geq (gone, 0, "a did not report b's connection closed: %s", ep_proc_log (s_a));
    //  A killed process's socket closes without a TLS close_notify.
    cr_assert (streq (s_seen [gone].reason, "peer-closed") || streq (s_seen [gone].reason, "tls-error"),
               "reason %s", s_seen [gone].reason);
    cr_assert_gt (s_seen [gone].duration, 0);
    ep_proc_destroy (&s_b);

    //  b back (same instance id, new epoch and port): a dials it again,
    //  and it dials a.
    mark = s_seen_count;
    s_b = s_watchdog ("b1");
    cr_assert_geq (s_await ("watchdog-a1", "watchdog-b1", true, mark, 15000), 0,
                   "a did not dial the restarted b: %s", ep_proc_log (s_a));
    cr_assert_geq (s_await ("watchdog-b1", "watchdog-a1", true, mark, 15000), 0,
                   "the restarted b did not dial a: %s", ep_proc_log (s_b));
    reply = s_controller ("watchdog-b1");
    cr_assert_str_eq (reply->entities [0]->controller->address, ep_proc_endpoint (s_b, "channel"),
                      "the entry follows b to its new address");
    ep__model_reply__free_unpacked (reply, NULL);

    //  a stopped cleanly: b sees a's connection go, and a's controller
    //  entry (which a created) goes with it.
    mark = s_seen_count;
    ep_proc_signal (s_a, SIGTERM);
    cr_assert_neq (ep_proc_wait_exit (s_a, 10000), -1);
    cr_assert_geq (s_await ("watchdog-a1", "watchdog-b1", false, mark, 10000), 0);
    reply = s_controller ("watchdog-a1");
    cr_assert_eq (reply->status->code, EP__STATUS__CODE__NOT_FOUND, "a's entry must be gone: %s",
                  ep_proc_log (s_a));
    ep__model_reply__free_unpacked (reply, NULL);
}
