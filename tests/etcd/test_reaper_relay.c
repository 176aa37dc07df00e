/*  test_reaper_relay.c: a router's session requests through a real
    watchdog reach the reaper instance owning its shard. Two
    edgeplane-reaper instances in the etcd mode on the fixture cluster (8
    shards, split between them), a real bus and model (ep_stack), and a
    real edgeplane-watchdog configured with instance 0's endpoint only:
    nothing but the reapers' beacons (cluster.beacon) leads it to instance
    1. Routers joined on its control channel each open a session; an
    instance that does not own the router's shard refuses it (UNAVAILABLE,
    retriable), so an open answered OK was taken by the owner. Every
    router's open is answered OK within a few beacon intervals, those of
    routers whose shard instance 1 owns included, and then at once: asked
    again under a new id, each succeeds on the first try. */
#include <criterion/criterion.h>
#include "ep_etcd_cluster.h"
#include "ep_stack.h"
#include "ep_wdtest.h"
#include "ep_auth.h"
#include "ep_keys.h"
#include "ep_rpc_client.h"
#include "sessions.pb-c.h"

#define SHARDS      8
#define TTL_MS      3000
#define ROUTERS     12

static ep_stack_t *s_stack;     //  keys, bus, model, environment
static char *s_prefix;          //  this test's etcd prefix
static ep_proc_t *s_reapers [2];    //  the two instances
static ep_stub_t s_terminators; //  the watchdog's terminators (not asked here)
static ep_auth_t *s_auth;       //  zauth for the stub
static chan_client_t *s_routers [ROUTERS];  //  joined on the watchdog
static SSL_CTX *s_ctx [ROUTERS];    //  their TLS contexts

static void
s_setup (void)
{
    s_stack = ep_stack_new ("reaper-relay");
    s_prefix = ep_etcd_test_prefix ("reaper-relay");
    ep_stack_sharded_env (s_stack, "reaper", s_prefix, SHARDS, TTL_MS);
    s_auth = ep_auth_new (ep_stack_keys (s_stack));
    cr_assert_not_null (s_auth);
    ep_stub_start (&s_terminators, ep_stack_keys (s_stack), "terminators");
    for (int i = 0; i < 2; i++) {
        ep_stack_setenv (s_stack, "EDGEPLANE_DATA_DIR", "%s/r%d", ep_stack_dir (s_stack), i);
        const char *args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", "127.0.0.1:0", NULL };
        s_reapers [i] = ep_proc_start ("edgeplane-reaper", args, ep_stack_env (s_stack), 20000);
        cr_assert_not_null (s_reapers [i], "edgeplane-reaper %d did not start", i);
    }
    ep_stack_unsetenv (s_stack, "EDGEPLANE_DATA_DIR");
}

static void
s_teardown (void)
{
    for (int r = 0; r < ROUTERS; r++) {
        chan_client_destroy (&s_routers [r]);
        SSL_CTX_free (s_ctx [r]);
    }
    for (int i = 0; i < 2; i++)
        ep_proc_destroy (&s_reapers [i]);
    zstr_free (&s_prefix);
    ep_stack_destroy (&s_stack);
    ep_stub_stop (&s_terminators);
    ep_auth_destroy (&s_auth);
}

static bool
s_split (void *arg)
{
    (void) arg;
    return ep_shards_split (s_reapers, 2, "reaper", SHARDS);
}

TestSuite (reaper_relay, .init = s_setup, .fini = s_teardown, .timeout = 120);

//  Router r opens session s-r-<request_id>; the status code of the
//  watchdog's reply (-1 if none came within 5 s).
static int
s_open (int r, const char *request_id)
{
    char router [16], session_id [64];
    snprintf (router, sizeof router, "r%d", r);
    snprintf (session_id, sizeof session_id, "s-%d-%s", r, request_id);
    Ep__Session session;
    Ep__SessionRequest request;
    ep_session_open_fill (&request, &session, router, session_id);
    request.request_id = (char *) request_id;
    Ep__Frame frame = EP__FRAME__INIT;
    frame.has_id = true;
    frame.id = (uint64_t) r + 1;
    frame.body_case = EP__FRAME__BODY_SESSION_REQUEST;
    frame.session_request = &request;
    ep_wdtest_send (s_routers [r], &frame);
    int code = -1;
    int64_t deadline = ep_mono_ms () + 5000 * EP_TEST_SLOWDOWN;
    while (code == -1 && ep_mono_ms () < deadline) {
        Ep__Frame *back = ep_wdtest_expect_frame (s_routers [r], EP__FRAME__BODY_SESSION_REPLY,
                                                  (int) (deadline - ep_mono_ms ()));
        if (!back)
            break;
        Ep__SessionReply *reply = back->session_reply;
        if (reply->request_id && streq (reply->request_id, request_id)) {
            code = reply->status? (int) reply->status->code: EP__STATUS__CODE__OK;
            if (code == EP__STATUS__CODE__UNAVAILABLE)
                cr_assert (reply->has_retriable && reply->retriable, "r%d: %s", r, reply->status->message);
        }
        ep__frame__free_unpacked (back, NULL);
    }
    return code;
}

//  True if instance i owns router r's shard: as the watchdog, an empty
//  heartbeat for r to i is answered OK (elsewhere UNAVAILABLE).
static bool
s_owns (int i, int r)
{
    char router [16];
    snprintf (router, sizeof router, "r%d", r);
    zcert_t *watchdog = ep_keys_load (ep_stack_keys (s_stack), "watchdog");
    char *key = ep_keys_public_txt (ep_stack_keys (s_stack), "reaper");
    ep_rpc_client_t *client = ep_rpc_client_new (ep_proc_connect_endpoint (s_reapers [i], "api"), watchdog, key);
    Ep__SessionHeartbeat heartbeat = EP__SESSION_HEARTBEAT__INIT;
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.router_id = router;
    request.op_case = EP__SESSION_REQUEST__OP_HEARTBEAT;
    request.heartbeat = &heartbeat;
    char err [256];
    Ep__SessionReply *reply = ep_rpc_call (client, &request, &ep__session_reply__descriptor, 5000, 3,
                                           err, sizeof err);
    cr_assert_not_null (reply, "probe of instance %d: %s", i, err);
    bool owned = !reply->status || reply->status->code == EP__STATUS__CODE__OK;
    ep__session_reply__free_unpacked (reply, NULL);
    ep_rpc_client_destroy (&client);
    free (key);
    zcert_destroy (&watchdog);
    return owned;
}

Test (reaper_relay, session_requests_reach_the_reaper_owning_the_routers_shard)
{
    cr_assert (ep_wait_until (s_split, NULL, 15000 * EP_TEST_SLOWDOWN), "the %d shards were not split", SHARDS);
    ep_stack_setenv (s_stack, "EDGEPLANE_REAPER_API", "%s", ep_proc_connect_endpoint (s_reapers [0], "api"));
    ep_stack_setenv (s_stack, "EDGEPLANE_TERMINATORS_API", "%s", s_terminators.endpoint);
    ep_proc_t *watchdog = ep_stack_start (s_stack, "watchdog", 15000);

    ep_stack_create_service (s_stack, "svc1");
    const char *services [] = { "svc1" };
    int at_1 = 0;
    for (int r = 0; r < ROUTERS; r++) {
        char id [16];
        snprintf (id, sizeof id, "r%d", r);
        ep_stack_router_write (s_stack, EP__MODEL_WRITE__OP__CREATE, id, services, 1);
        s_ctx [r] = ep_stack_tls_client (s_stack, "router", id);
        s_routers [r] = ep_wdtest_join (ep_proc_connect_endpoint (watchdog, "channel"), s_ctx [r], id);
        at_1 += s_owns (1, r) && !s_owns (0, r);
    }
    //  Instance 1 owns some routers' shards: only the beacons lead there.
    cr_assert (at_1 > 0 && at_1 < ROUTERS, "instance 1 owns %d of the %d routers' shards", at_1, ROUTERS);

    //  Until the watchdog has heard both beacons, the opens of instance 1's
    //  routers go to instance 0 and are refused as retriable: asked again.
    int64_t started = ep_mono_ms ();
    for (int r = 0; r < ROUTERS; r++) {
        int code = EP__STATUS__CODE__UNAVAILABLE;
        for (int n = 0; code == EP__STATUS__CODE__UNAVAILABLE && ep_mono_ms () - started < 10000 * EP_TEST_SLOWDOWN;
             n++) {
            char request_id [32];
            snprintf (request_id, sizeof request_id, "open-%d", n);
            code = s_open (r, request_id);
            if (code == EP__STATUS__CODE__UNAVAILABLE)
                zclock_sleep (250);     //  the retry's backoff, not a synchronisation
        }
        cr_assert_eq (code, EP__STATUS__CODE__OK, "r%d's session open: code %d, %lld ms after the first", r,
                      code, (long long) (ep_mono_ms () - started));
    }
    //  Now every open goes straight to its owner.
    for (int r = 0; r < ROUTERS; r++)
        cr_assert_eq (s_open (r, "again"), EP__STATUS__CODE__OK, "r%d's second open was not taken at once", r);
}
