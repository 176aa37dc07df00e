/*  test_watchdog_peers.c: watchdog instances as ctrl peers of each other,
    with a real bus and model: each registers its own controller entry
    (with a ctrl certificate it issued itself), hears the other's beacons
    and dials it; each side reports the other's join as a
    connect.ctrl-to-ctrl event and lists it in its connections API; a
    killed peer is reported gone, and a restarted one is dialed again. */
#include <criterion/criterion.h>
#include "ep_ctrl_peers.h"
#include "chan_client.h"
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
static ep_eventlog_t *s_log;    //  connect.ctrl-to-ctrl events seen

static ep_proc_t *
s_watchdog (const char *instance)
{
    return ep_ctrl_watchdog_start (s_stack, instance, NULL);
}

static void
s_setup (void)
{
    s_stack = ep_ctrl_stack_new ("watchdog-peers", &s_log);
    s_dir = ep_stack_dir (s_stack);
    s_keys = ep_stack_keys (s_stack);
}

static void
s_teardown (void)
{
    ep_proc_destroy (&s_a);
    ep_proc_destroy (&s_b);
    ep_eventlog_destroy (&s_log);
    ep_stack_destroy (&s_stack);
}

TestSuite (watchdog_peers, .init = s_setup, .fini = s_teardown, .timeout = 90);

Test (watchdog_peers, two_instances_join_each_other_see_a_kill_and_redial_a_restart)
{
    s_a = s_watchdog ("a1");
    s_b = s_watchdog ("b1");
    //  Each instance dials the other; each reports the one it accepted.
    int ab = ep_ctrl_await (s_log, "watchdog-a1", "watchdog-b1", true, 0, 15000);
    int ba = ep_ctrl_await (s_log, "watchdog-b1", "watchdog-a1", true, 0, 15000);
    cr_assert_geq (ab, 0, "b did not report a's join: %s", ep_proc_log (s_b));
    cr_assert_geq (ba, 0, "a did not report b's join: %s", ep_proc_log (s_a));

    //  Both are controllers in the model, at their channel addresses.
    Ep__ModelReply *reply = ep_ctrl_controller (s_stack, "watchdog-a1");
    cr_assert_eq (reply->status->code, EP__STATUS__CODE__OK, "%s", reply->status->message);
    cr_assert_str_eq (reply->entities [0]->controller->address, ep_proc_endpoint (s_a, "channel"));
    ep__model_reply__free_unpacked (reply, NULL);
    reply = ep_ctrl_controller (s_stack, "watchdog-b1");
    cr_assert_eq (reply->status->code, EP__STATUS__CODE__OK, "%s", reply->status->message);
    ep__model_reply__free_unpacked (reply, NULL);

    //  a's connections API lists b as a joined ctrl peer, and the other way.
    Ep__WatchdogReply *list = ep_ctrl_connections (s_stack, s_a);
    cr_assert_eq (list->n_connections, 1);
    cr_assert_str_eq (list->connections [0]->id, "watchdog-b1");
    cr_assert_str_eq (list->connections [0]->state, "joined");
    ep__watchdog_reply__free_unpacked (list, NULL);
    list = ep_ctrl_connections (s_stack, s_b);
    cr_assert_eq (list->n_connections, 1);
    cr_assert_str_eq (list->connections [0]->id, "watchdog-a1");
    ep__watchdog_reply__free_unpacked (list, NULL);

    //  A router's HelloResult names the instance that holds it.
    char err [512];
    SSL_CTX *ctx = ep_ctrl_router_ctx (s_stack, "r1");
    chan_client_t *client = chan_client_new (ep_proc_endpoint (s_a, "channel"), ctx, 5000, err, sizeof err);
    cr_assert_not_null (client, "%s", err);
    Ep__HelloResult *result = chan_client_hello (client, 1, EP__ROLE__ROLE_ROUTER, "r1", 5000);
    cr_assert_not_null (result);
    cr_assert_str_eq (result->reason, "unknown-router");
    cr_assert_str_eq (result->instance_id, "watchdog-a1");
    ep__hello_result__free_unpacked (result, NULL);
    chan_client_destroy (&client);
    SSL_CTX_free (ctx);

    //  b killed: a reports the connection b made as closed.
    size_t mark = ep_eventlog_size (s_log);
    ep_proc_signal (s_b, SIGKILL);
    cr_assert_neq (ep_proc_wait_exit (s_b, 5000), -1);
    int gone = ep_ctrl_await (s_log, "watchdog-b1", "watchdog-a1", false, mark, 10000);
    cr_assert_geq (gone, 0, "a did not report b's connection closed: %s", ep_proc_log (s_a));
    //  A killed process's socket closes without a TLS close_notify.
    cr_assert (streq (ep_eventlog_get (s_log, (size_t) gone)->reason, "peer-closed") || streq (ep_eventlog_get (s_log, (size_t) gone)->reason, "tls-error"),
               "reason %s", ep_eventlog_get (s_log, (size_t) gone)->reason);
    cr_assert_gt (ep_eventlog_get (s_log, (size_t) gone)->duration, 0);
    ep_proc_destroy (&s_b);

    //  b back (same instance id, new epoch and port): a dials it again,
    //  and it dials a.
    mark = ep_eventlog_size (s_log);
    s_b = s_watchdog ("b1");
    cr_assert_geq (ep_ctrl_await (s_log, "watchdog-a1", "watchdog-b1", true, mark, 15000), 0,
                   "a did not dial the restarted b: %s", ep_proc_log (s_a));
    cr_assert_geq (ep_ctrl_await (s_log, "watchdog-b1", "watchdog-a1", true, mark, 15000), 0,
                   "the restarted b did not dial a: %s", ep_proc_log (s_b));
    reply = ep_ctrl_controller (s_stack, "watchdog-b1");
    cr_assert_str_eq (reply->entities [0]->controller->address, ep_proc_endpoint (s_b, "channel"),
                      "the entry follows b to its new address");
    ep__model_reply__free_unpacked (reply, NULL);

    //  a stopped cleanly: b sees a's connection go, and a's controller
    //  entry (which a created) goes with it.
    mark = ep_eventlog_size (s_log);
    ep_proc_signal (s_a, SIGTERM);
    cr_assert_neq (ep_proc_wait_exit (s_a, 10000), -1);
    cr_assert_geq (ep_ctrl_await (s_log, "watchdog-a1", "watchdog-b1", false, mark, 10000), 0);
    reply = ep_ctrl_controller (s_stack, "watchdog-a1");
    cr_assert_eq (reply->status->code, EP__STATUS__CODE__NOT_FOUND, "a's entry must be gone: %s",
                  ep_proc_log (s_a));
    ep__model_reply__free_unpacked (reply, NULL);
}
