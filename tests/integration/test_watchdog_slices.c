/*  test_watchdog_slices.c: acknowledged, resumable model slices against
    the real edgeplane-watchdog and model: a router that rejoins with the
    revision it acknowledged gets one difference holding exactly what
    touched its slice, or a full slice flagged as such when the changes
    are no longer retained; a router that refuses a slice (NACK) keeps its
    revision and the watchdog says so; a router that stops acknowledging
    turns stale; a router speaking protocol 1 still joins. Also the
    Identities the model enforces on edge clients (edge-to-ctrl) at Hello
    and while they are joined. */
#include <criterion/criterion.h>
#include "ep_stack.h"
#include "ep_wdtest.h"
#include "ep_eventlog.h"
#include "ep_auth.h"
#include "chan_client.h"
#include "ep_codec.h"
#include "ep_keys.h"
#include "ep_pki_tls.h"
#include "ep_rpc_client.h"
#include "ep_rpc_server.h"
#include "ep_subscriber.h"
#include "model.pb-c.h"
#include <stdlib.h>

static const char *s_stale_arg = "--slice-stale=60s";

static ep_stack_t *s_stack;     //  keys, bus, model, environment
static const char *s_dir;       //  its data dir
static const char *s_keys;      //  its keys dir
static ep_proc_t *s_bus;        //  its bus
static ep_stubs_t s_stubs;      //  the terminators and the reaper, stubbed
static ep_subscriber_t *s_events;       //  connect.* (the stack's)
static zcert_t *s_sub_cert;     //  for our own subscribers


static void
s_setup (void)
{
    s_stack = ep_stack_new ("watchdog-slices");
    s_dir = ep_stack_dir (s_stack);
    s_keys = ep_stack_keys (s_stack);
    s_bus = ep_stack_bus (s_stack);
    ep_stubs_start (&s_stubs, s_stack);
    s_sub_cert = ep_keys_load (s_keys, "subscriber");
    s_events = ep_stack_subscribe (s_stack, "router.slice.");

    char err [512];
    ep_stack_create_service (s_stack, "svc1");
    ep_stack_create_service (s_stack, "svc2");
    const char *svc1 [] = { "svc1" };
    ep_stack_router_write (s_stack, EP__MODEL_WRITE__OP__CREATE, "r1", svc1, 1);
    ep_stack_router_write (s_stack, EP__MODEL_WRITE__OP__CREATE, "r2", svc1, 1);
    cr_assert_eq (ep_pki_issue (s_keys, "router", "r1", s_dir, 30, err, sizeof err), 0, "%s", err);
    cr_assert_eq (ep_pki_issue (s_keys, "router", "r2", s_dir, 30, err, sizeof err), 0, "%s", err);
}

static void
s_teardown (void)
{
    zcert_destroy (&s_sub_cert);
    s_events = NULL;
    ep_stack_destroy (&s_stack);
    ep_stubs_stop (&s_stubs);
}

static ep_proc_t *
s_watchdog (void)
{
    const char *args [] = { "--channel-listen", "127.0.0.1:0", "--listen", "tcp://127.0.0.1:*",
                            "--http-listen", "127.0.0.1:0", "--heartbeat=10s", "--heartbeat-timeout=30s",
                            "--drain-grace=1s", s_stale_arg, NULL };
    ep_proc_t *watchdog = ep_proc_start ("edgeplane-watchdog", args, ep_stack_env (s_stack), 15000);
    cr_assert_not_null (watchdog);
    ep_stack_keep (s_stack, watchdog);
    return watchdog;
}


static bool
s_has_service (Ep__Service **services, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (streq (services [i]->id, id))
            return true;
    return false;
}

//  A service's name changed: a change of its settings.
static uint64_t
s_rename (const char *id, const char *name)
{
    Ep__Service service = EP__SERVICE__INIT;
    service.id = (char *) id;
    service.name = (char *) name;
    ep_entity_write_t write;
    return ep_stack_model_write (s_stack, ep_entity_write (&write, EP__MODEL_WRITE__OP__UPDATE,
                                                           EP__ENTITY__KIND_SERVICE, &service));
}

//  Joins as router id speaking version, holding (revision, generation);
//  returns the first slice frame (the caller frees it) in *slice_frame.
static chan_client_t *
s_join_at (ep_proc_t *watchdog, SSL_CTX *ctx, const char *id, uint32_t version, uint64_t revision,
           const char *generation, Ep__Frame **slice_frame)
{
    char err [512];
    chan_client_t *client = chan_client_new (ep_proc_endpoint (watchdog, "channel"), ctx, 5000, err, sizeof err);
    cr_assert_not_null (client, "%s", err);
    Ep__HelloResult *result = chan_client_hello_at (client, version, EP__ROLE__ROLE_ROUTER, id, revision,
                                                    generation, 5000);
    cr_assert_not_null (result, "no HelloResult: %s", chan_client_close_reason (client));
    cr_assert_eq (result->status->code, EP__STATUS__CODE__OK, "%s", result->status->message);
    ep__hello_result__free_unpacked (result, NULL);
    *slice_frame = ep_wdtest_expect_frame (client, EP__FRAME__BODY_SLICE, 5000 * EP_TEST_SLOWDOWN);
    cr_assert_not_null (*slice_frame, "no slice after joining");
    return client;
}

static void
s_ack (chan_client_t *client, uint64_t revision)
{
    Ep__SliceAck ack = EP__SLICE_ACK__INIT;
    ack.has_revision = true;
    ack.revision = revision;
    Ep__Frame frame = EP__FRAME__INIT;
    frame.body_case = EP__FRAME__BODY_SLICE_ACK;
    frame.slice_ack = &ack;
    ep_wdtest_send (client, &frame);
}

//  The next router.slice.<type> event about router within timeout_ms.
static Ep__ChannelEvent *
s_slice_event (const char *type, const char *router, int timeout_ms)
{
    char want [64];
    snprintf (want, sizeof want, "router.slice.%s", type);
    int64_t deadline = ep_mono_ms () + timeout_ms;
    while (ep_mono_ms () < deadline) {
        char *topic = NULL;
        Ep__Event *event = ep_subscriber_recv (s_events, (int) (deadline - ep_mono_ms ()), &topic);
        bool hit = event && topic && streq (topic, want) && event->body_case == EP__EVENT__BODY_CHANNEL
                && event->channel->id && streq (event->channel->id, router);
        zstr_free (&topic);
        if (hit)
            return event->channel;
    }
    return NULL;
}

Test (slices, a_rejoining_router_gets_one_difference_with_exactly_what_touched_its_slice,
      .init = s_setup, .fini = s_teardown, .timeout = 90)
{
    ep_stack_create_service (s_stack, "svc3");
    const char *hosts [] = { "svc1", "svc2" };
    ep_stack_router_write (s_stack, EP__MODEL_WRITE__OP__UPDATE, "r1", hosts, 2);
    ep_proc_t *watchdog = s_watchdog ();
    SSL_CTX *ctx = ep_wdtest_router_ctx (s_dir, "r1");
    Ep__Frame *frame;
    chan_client_t *router = s_join_at (watchdog, ctx, "r1", 2, 0, NULL, &frame);
    cr_assert (frame->slice->full);
    cr_assert_str_eq (frame->slice->full_reason, "join");
    cr_assert_not_null (frame->slice->router, "protocol 2: the slice carries the router's own entity");
    cr_assert_eq (frame->slice->n_services, 2, "and the services it hosts");
    uint64_t held = frame->slice->revision;
    char *generation = strdup (frame->slice->generation);
    s_ack (router, held);
    ep__frame__free_unpacked (frame, NULL);
    chan_client_destroy (&router);

    //  Ten changes; three touch r1's slice (svc1 renamed, r1 hosts svc3
    //  too, svc2 renamed).
    ep_stack_create_service (s_stack, "svc4");                      //  1
    s_rename ("svc1", "one");                                       //  2: r1's
    ep_stack_create_service (s_stack, "svc5");                      //  3
    const char *r2 [] = { "svc2" };
    ep_stack_router_write (s_stack, EP__MODEL_WRITE__OP__UPDATE, "r2", r2, 1);   //  4
    const char *more [] = { "svc1", "svc2", "svc3" };
    ep_stack_router_write (s_stack, EP__MODEL_WRITE__OP__UPDATE, "r1", more, 3); //  5: r1's
    s_rename ("svc4", "four");                                      //  6
    const char *r2b [] = { "svc4" };
    ep_stack_router_write (s_stack, EP__MODEL_WRITE__OP__UPDATE, "r2", r2b, 1);  //  7
    s_rename ("svc2", "two");                                       //  8: r1's
    s_rename ("svc5", "five");                                      //  9
    uint64_t now = s_rename ("svc4", "quatre");                     //  10
    cr_assert_eq (now, held + 10);

    //  The watchdog must have followed all ten before r1 rejoins.
    router = NULL;
    int64_t deadline = ep_mono_ms () + 5000 * EP_TEST_SLOWDOWN;
    do {
        chan_client_destroy (&router);
        router = s_join_at (watchdog, ctx, "r1", 2, held, generation, &frame);
        if (frame->slice->revision == now)
            break;
        ep__frame__free_unpacked (frame, NULL);
        frame = NULL;
        s_ack (router, held);
    } while (ep_mono_ms () < deadline);
    cr_assert_not_null (frame, "the watchdog never reached revision %llu", (unsigned long long) now);
    Ep__ModelSlice *diff = frame->slice;
    cr_assert_not (diff->full, "a difference, not a full slice (%s)", diff->full_reason? diff->full_reason: "");
    cr_assert_eq (diff->since_revision, held);
    cr_assert_not_null (diff->router, "r1's own entity changed (change 5)");
    cr_assert_eq (diff->router->n_hosted, 3);
    cr_assert_eq (diff->n_hosted, 1, "svc3 newly hosted, nothing else");
    cr_assert_str_eq (diff->hosted [0]->service_id, "svc3");
    cr_assert_eq (diff->n_services, 3);
    cr_assert (s_has_service (diff->services, diff->n_services, "svc1"));
    cr_assert (s_has_service (diff->services, diff->n_services, "svc2"));
    cr_assert (s_has_service (diff->services, diff->n_services, "svc3"));
    for (size_t i = 0; i < diff->n_services; i++)
        if (streq (diff->services [i]->id, "svc1"))
            cr_assert_str_eq (diff->services [i]->name, "one", "svc1 at its current settings");
    cr_assert_eq (diff->n_removed, 0);
    size_t diff_bytes = ep__model_slice__get_packed_size (diff);
    ep__frame__free_unpacked (frame, NULL);
    chan_client_destroy (&router);

    //  The full slice of the same router now is larger.
    router = s_join_at (watchdog, ctx, "r1", 2, 0, NULL, &frame);
    cr_assert (frame->slice->full);
    cr_assert_eq (frame->slice->revision, now);
    cr_assert_lt (diff_bytes, ep__model_slice__get_packed_size (frame->slice));
    ep__frame__free_unpacked (frame, NULL);
    chan_client_destroy (&router);

    //  A router speaking protocol 1 still joins and gets its full slice.
    router = s_join_at (watchdog, ctx, "r1", 1, held, NULL, &frame);
    cr_assert (frame->slice->full);
    cr_assert_eq (frame->slice->n_hosted, 3);
    cr_assert_null (frame->slice->router, "protocol 1 has no router entity");
    ep__frame__free_unpacked (frame, NULL);
    chan_client_destroy (&router);
    free (generation);
    SSL_CTX_free (ctx);
}

static void
s_setup_retain_3 (void)
{
    setenv ("EDGEPLANE_MODEL_RETAIN", "3", 1);
    s_setup ();
}

Test (slices, past_the_retained_changes_a_full_slice_flagged_as_such,
      .init = s_setup_retain_3, .fini = s_teardown, .timeout = 90)
{
    ep_proc_t *watchdog = s_watchdog ();
    SSL_CTX *ctx = ep_wdtest_router_ctx (s_dir, "r1");
    Ep__Frame *frame;
    chan_client_t *router = s_join_at (watchdog, ctx, "r1", 2, 0, NULL, &frame);
    uint64_t held = frame->slice->revision;
    char *generation = strdup (frame->slice->generation);
    ep__frame__free_unpacked (frame, NULL);
    chan_client_destroy (&router);
    uint64_t now = 0;
    for (int i = 0; i < 6; i++) {
        char name [16];
        snprintf (name, sizeof name, "n%d", i);
        now = s_rename ("svc1", name);
    }
    int64_t deadline = ep_mono_ms () + 5000 * EP_TEST_SLOWDOWN;
    do {
        router = s_join_at (watchdog, ctx, "r1", 2, held, generation, &frame);
        if (frame->slice->revision == now)
            break;
        ep__frame__free_unpacked (frame, NULL);
        frame = NULL;
        chan_client_destroy (&router);
    } while (ep_mono_ms () < deadline);
    cr_assert_not_null (frame);
    cr_assert (frame->slice->full, "6 changes with 3 retained: a full slice");
    cr_assert_str_eq (frame->slice->full_reason, "not-retained");
    cr_assert_eq (frame->slice->n_hosted, 1);
    ep__frame__free_unpacked (frame, NULL);
    chan_client_destroy (&router);
    free (generation);
    SSL_CTX_free (ctx);
}

Test (slices, a_router_that_cannot_apply_a_slice_keeps_its_revision_and_is_reported,
      .init = s_setup, .fini = s_teardown, .timeout = 90)
{
    ep_proc_t *watchdog = s_watchdog ();
    //  The real router agent, serving at most 1 service.
    const char *args [] = { "--controller", ep_proc_endpoint (watchdog, "channel"), "--bundle", s_dir,
                            "--id", "r1", "--sessions", "0", "--max-services", "1", NULL };
    ep_proc_t *agent = ep_proc_start ("edgeplane-router", args, ep_stack_env (s_stack), 15000);
    cr_assert_not_null (agent);
    ep_stack_keep (s_stack, agent);
    //  Joined with svc1 (one service): acknowledged.
    uint64_t held = ep_stack_router_write (s_stack, EP__MODEL_WRITE__OP__UPDATE, "r1",
                                           (const char *[]) { "svc1" }, 1);
    const char *both [] = { "svc1", "svc2" };
    uint64_t refused = ep_stack_router_write (s_stack, EP__MODEL_WRITE__OP__UPDATE, "r1", both, 2);
    Ep__ChannelEvent *event = s_slice_event ("rejected", "r1", 10000 * EP_TEST_SLOWDOWN);
    cr_assert_not_null (event, "no router.slice.rejected");
    cr_assert_eq (event->revision, refused);
    cr_assert_eq (event->acked_revision, held, "the router keeps the revision it held");
    cr_assert (event->reason && strstr (event->reason, "at most 1"), "the router's reason: %s",
               event->reason? event->reason: "(none)");
}

static void
s_setup_stale (void)
{
    s_stale_arg = "--slice-stale=1s";
    s_setup ();
}

Test (slices, a_router_that_stops_acknowledging_turns_stale,
      .init = s_setup_stale, .fini = s_teardown, .timeout = 90)
{
    ep_proc_t *watchdog = s_watchdog ();
    SSL_CTX *ctx = ep_wdtest_router_ctx (s_dir, "r2");
    Ep__Frame *frame;
    chan_client_t *router = s_join_at (watchdog, ctx, "r2", 2, 0, NULL, &frame);
    uint64_t held = frame->slice->revision;
    s_ack (router, held);
    ep__frame__free_unpacked (frame, NULL);
    //  The model moves on; r2 acknowledges nothing more.
    int64_t changed = ep_mono_ms ();
    uint64_t now = s_rename ("svc1", "moved");
    Ep__ChannelEvent *event = s_slice_event ("stale", "r2", 10000 * EP_TEST_SLOWDOWN);
    cr_assert_not_null (event, "no router.slice.stale");
    cr_assert_geq (ep_mono_ms () - changed, 1000, "not stale before the bound");
    cr_assert_eq (event->acked_revision, held);
    cr_assert_geq (event->revision, now);
    cr_assert_gt (event->age_ms, 1000);
    chan_client_destroy (&router);
    SSL_CTX_free (ctx);
}

//  Writes Identity id (enabled or not), creating it if create.
static uint64_t
s_identity (const char *id, bool enabled, bool create)
{
    Ep__Identity identity = EP__IDENTITY__INIT;
    identity.id = (char *) id;
    identity.has_enabled = true;
    identity.enabled = enabled;
    ep_entity_write_t write;
    return ep_stack_model_write (s_stack, ep_entity_write (&write, create? EP__MODEL_WRITE__OP__CREATE
                                                           : EP__MODEL_WRITE__OP__UPDATE,
                                                           EP__ENTITY__KIND_IDENTITY, &identity));
}

//  Client id's Hello: the HelloResult (caller frees) and the client in *client_p.
static Ep__HelloResult *
s_client_hello (ep_proc_t *watchdog, const char *id, chan_client_t **client_p)
{
    char err [512];
    SSL_CTX *ctx = ep_wdtest_router_ctx (s_dir, id);
    *client_p = chan_client_new (ep_proc_endpoint (watchdog, "channel"), ctx, 5000, err, sizeof err);
    SSL_CTX_free (ctx);
    cr_assert_not_null (*client_p, "%s", err);
    Ep__HelloResult *result = chan_client_hello (*client_p, 2, EP__ROLE__ROLE_CLIENT, id, 5000);
    cr_assert_not_null (result, "no HelloResult: %s", chan_client_close_reason (*client_p));
    return result;
}

//  The next connect.edge-to-ctrl event about client id, connected or not.
static Ep__ConnectEvent *
s_edge_event (ep_subscriber_t *sub, const char *id, bool connected, int timeout_ms)
{
    int64_t deadline = ep_mono_ms () + timeout_ms;
    while (ep_mono_ms () < deadline) {
        char *topic = NULL;
        Ep__Event *event = ep_subscriber_recv (sub, (int) (deadline - ep_mono_ms ()), &topic);
        bool hit = event && topic && streq (topic, "connect.edge-to-ctrl")
                && event->body_case == EP__EVENT__BODY_CONNECT && event->connect->src_id
                && streq (event->connect->src_id, id) && event->connect->connected == connected;
        zstr_free (&topic);
        if (hit)
            return event->connect;
    }
    return NULL;
}

Test (identities, an_edge_client_needs_an_enabled_identity_and_goes_when_it_is_disabled,
      .init = s_setup, .fini = s_teardown, .timeout = 90)
{
    char err [512];
    cr_assert_eq (ep_pki_issue (s_keys, "client", "alice", s_dir, 30, err, sizeof err), 0, "%s", err);
    cr_assert_eq (ep_pki_issue (s_keys, "client", "bob", s_dir, 30, err, sizeof err), 0, "%s", err);
    s_identity ("alice", true, true);
    ep_subscriber_t *edges = ep_stack_subscribe (s_stack, "connect.edge-to-ctrl");
    ep_proc_t *watchdog = s_watchdog ();

    //  No Identity: refused with its own reason.
    chan_client_t *bob;
    Ep__HelloResult *result = s_client_hello (watchdog, "bob", &bob);
    cr_assert_eq (result->status->code, EP__STATUS__CODE__PERMISSION_DENIED);
    cr_assert_str_eq (result->reason, "unknown-identity");
    ep__hello_result__free_unpacked (result, NULL);
    chan_client_destroy (&bob);

    //  An enabled Identity joins: connect.edge-to-ctrl.
    chan_client_t *alice;
    result = s_client_hello (watchdog, "alice", &alice);
    cr_assert_eq (result->status->code, EP__STATUS__CODE__OK, "%s", result->status->message);
    ep__hello_result__free_unpacked (result, NULL);
    Ep__ConnectEvent *joined = s_edge_event (edges, "alice", true, 5000 * EP_TEST_SLOWDOWN);
    cr_assert_not_null (joined, "no connect.edge-to-ctrl for alice's join");
    cr_assert_str_eq (joined->src_type, "client");
    cr_assert_str_eq (joined->dst_type, "ctrl");
    cr_assert (joined->src_addr && strncmp (joined->src_addr, "127.0.0.1:", 10) == 0);

    //  Disabled: its open connection is closed within 1 s, with a
    //  disconnect event saying why.
    s_identity ("alice", false, false);
    int64_t disabled = ep_mono_ms ();
    while (!chan_client_closed (alice) && ep_mono_ms () - disabled < 1000 * EP_TEST_SLOWDOWN) {
        Ep__Frame *frame = chan_client_recv (alice, 50);
        if (frame)
            ep__frame__free_unpacked (frame, NULL);
    }
    cr_assert (chan_client_closed (alice), "alice's connection still open %lld ms after the Identity was disabled",
               (long long) (ep_mono_ms () - disabled));
    Ep__ConnectEvent *left = s_edge_event (edges, "alice", false, 5000 * EP_TEST_SLOWDOWN);
    cr_assert_not_null (left, "no disconnect event for alice");
    cr_assert_str_eq (left->reason, "identity-disabled");
    chan_client_destroy (&alice);

    //  ...and refused at Hello while disabled.
    result = s_client_hello (watchdog, "alice", &alice);
    cr_assert_str_eq (result->reason, "identity-disabled");
    ep__hello_result__free_unpacked (result, NULL);
    chan_client_destroy (&alice);
}
