/*  test_watchdog_relay_shards.c: the watchdog's relay when the terminators
    service runs as several instances, each owning some shards (a sibling
    of test_watchdog_relay.c, which holds the single-instance cases).
    Against the real edgeplane-watchdog (with bus and model), three stub
    terminators (ROUTER sockets here with the terminators' CURVE
    certificate): the configured endpoint and two "instances" whose
    beacons (cluster.beacon) this test publishes on the bus. A joined
    router's requests and acks go to the instance whose beacon claims the
    router's shard, follow the shard when the beacons swap it, and go back
    to the configured endpoint once the beacons stop; a request in flight
    to an instance the watchdog forgets is answered UNAVAILABLE, retriable.
    The same for the reaper (two stub instances "reap-a", "reap-b"
    beaconing as service "reaper"): a router's session requests and its
    acks of reaper commands go to the owner of its shard, terminators
    requests meanwhile to the terminators' configured endpoint, and a
    session request in flight to a forgotten instance is answered
    UNAVAILABLE, retriable.
    And the router agent
    (tools/edgeplane-router) asks again, with the same request id, a
    terminator create or delete, or a session open or close, answered
    UNAVAILABLE retriable (the instance asked does not own its shard),
    until it succeeds; a session open refused for good is not (before the
    request timeout, a minute here). */
#include <criterion/criterion.h>
#include "ep_stack.h"
#include "ep_wdtest.h"
#include "agent.h"
#include "chan_client.h"
#include "ep_auth.h"
#include "ep_codec.h"
#include "ep_keys.h"
#include "ep_pki.h"
#include "ep_publisher.h"
#include "ep_rpc_server.h"
#include "ep_shard.h"
#include "terminators.pb-c.h"
#include <poll.h>
#include <pthread.h>

#define SHARDS 8                //  the shard count the beacons say

static ep_stack_t *s_stack;     //  keys, bus, model, environment
static const char *s_dir;       //  its data dir
static const char *s_keys;      //  its keys dir
static ep_stub_t s_configured;  //  EDGEPLANE_TERMINATORS_API
static ep_stub_t s_a;           //  terminators instance "term-a"
static ep_stub_t s_b;           //  terminators instance "term-b"
static ep_stub_t s_reaper;      //  EDGEPLANE_REAPER_API
static ep_stub_t s_ra;          //  reaper instance "reap-a"
static ep_stub_t s_rb;          //  reaper instance "reap-b"
static ep_publisher_t *s_pub;   //  beacons and commands, as a terminators instance
static ep_auth_t *s_auth;       //  zauth for the stubs: callers' roles

static void
s_setup (void)
{
    s_stack = ep_stack_new ("watchdog-shards");
    s_dir = ep_stack_dir (s_stack);
    s_keys = ep_stack_keys (s_stack);
    s_auth = ep_auth_new (s_keys);
    cr_assert_not_null (s_auth);
    ep_stub_start (&s_configured, s_keys, "terminators");
    ep_stub_start (&s_a, s_keys, "terminators");
    ep_stub_start (&s_b, s_keys, "terminators");
    ep_stub_start (&s_reaper, s_keys, "reaper");
    ep_stub_start (&s_ra, s_keys, "reaper");
    ep_stub_start (&s_rb, s_keys, "reaper");
    ep_stack_setenv (s_stack, "EDGEPLANE_TERMINATORS_API", "%s", s_configured.endpoint);
    ep_stack_setenv (s_stack, "EDGEPLANE_REAPER_API", "%s", s_reaper.endpoint);
    ep_stack_setenv (s_stack, "EDGEPLANE_LOG_LEVEL", "debug");
    ep_stack_create_service (s_stack, "svc1");
    const char *svc1 [] = { "svc1" };
    ep_stack_router_write (s_stack, EP__MODEL_WRITE__OP__CREATE, "r1", svc1, 1);
    char err [512];
    cr_assert_eq (ep_pki_issue (s_keys, "router", "r1", s_dir, 30, err, sizeof err), 0, "%s", err);
    zcert_t *cert = ep_keys_load (s_keys, "terminators");
    char *bus_key = ep_keys_public_txt (s_keys, "bus");
    s_pub = ep_publisher_new (ep_proc_connect_endpoint (ep_stack_bus (s_stack), "pub"), cert, bus_key,
                              "terminators-test", EP_CODEC_DEFAULT_CAP);
    cr_assert_not_null (s_pub);
    ep_publisher_declare (s_pub, "cluster");
    ep_publisher_declare (s_pub, "cmd");
    free (bus_key);
    zcert_destroy (&cert);
}

static void
s_teardown (void)
{
    ep_publisher_destroy (&s_pub);
    ep_stack_destroy (&s_stack);
    ep_stub_stop (&s_configured);
    ep_stub_stop (&s_a);
    ep_stub_stop (&s_b);
    ep_stub_stop (&s_reaper);
    ep_stub_stop (&s_ra);
    ep_stub_stop (&s_rb);
    ep_auth_destroy (&s_auth);
}

static ep_proc_t *
s_watchdog (void)
{
    const char *args [] = { "--channel-listen", "127.0.0.1:0", "--listen", "tcp://127.0.0.1:*",
                            "--http-listen", "127.0.0.1:0", "--heartbeat=10s", "--heartbeat-timeout=30s",
                            NULL };
    ep_proc_t *watchdog = ep_proc_start ("edgeplane-watchdog", args, ep_stack_env (s_stack), 15000);
    cr_assert_not_null (watchdog);
    ep_stack_keep (s_stack, watchdog);
    return watchdog;
}

//  A watchdog started and router r1 joined on it (its TLS context in
//  *ctx_p, the caller frees it).
static chan_client_t *
s_join_r1 (SSL_CTX **ctx_p)
{
    ep_proc_t *watchdog = s_watchdog ();
    *ctx_p = ep_wdtest_router_ctx (s_dir, "r1");
    return ep_wdtest_join (ep_proc_endpoint (watchdog, "channel"), *ctx_p, "r1");
}

//  A beacon of service's instance at stub's endpoint owning shard under
//  revision.
static void
s_service_beacon (const char *service, const char *instance, ep_stub_t *stub, uint32_t shard,
                  int64_t revision)
{
    Ep__ShardBeacon beacon = EP__SHARD_BEACON__INIT;
    beacon.service = (char *) service;
    beacon.instance_id = (char *) instance;
    beacon.address = stub->endpoint;
    beacon.has_shard_count = beacon.has_interval_ms = true;
    beacon.shard_count = SHARDS;
    beacon.interval_ms = 1000;
    beacon.n_shards = beacon.n_owner_revisions = 1;
    beacon.shards = &shard;
    beacon.owner_revisions = &revision;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_SHARD_BEACON;
    event.shard_beacon = &beacon;
    ep_publisher_send (s_pub, "cluster.beacon", &event);
}

//  A terminator list request from router, id request_id; for the
//  reaper, an empty session heartbeat.
static void
s_request (chan_client_t *router, const char *request_id, bool reaper)
{
    Ep__TerminatorFilter list = EP__TERMINATOR_FILTER__INIT;
    Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
    request.request_id = (char *) request_id;
    request.op_case = EP__TERMINATOR_REQUEST__OP_LIST;
    request.list = &list;
    Ep__SessionHeartbeat heartbeat = EP__SESSION_HEARTBEAT__INIT;
    Ep__SessionRequest session = EP__SESSION_REQUEST__INIT;
    session.request_id = (char *) request_id;
    session.op_case = EP__SESSION_REQUEST__OP_HEARTBEAT;
    session.heartbeat = &heartbeat;
    Ep__Frame frame = EP__FRAME__INIT;
    frame.has_id = true;
    frame.id = 41;
    frame.body_case = reaper? EP__FRAME__BODY_SESSION_REQUEST: EP__FRAME__BODY_TERMINATOR_REQUEST;
    frame.terminator_request = &request;
    if (reaper)
        frame.session_request = &session;
    ep_wdtest_send (router, &frame);
}

//  The next call at stub whose request id starts with prefix, within
//  timeout_ms; others are dropped. NULL if none came.
static ep_rpc_call_t *
s_call (ep_stub_t *stub, const char *prefix, int timeout_ms)
{
    int64_t deadline = ep_mono_ms () + timeout_ms;
    ep_rpc_call_t *call;
    while ((call = ep_stub_next (stub, (int) (deadline - ep_mono_ms ())))) {
        if (strncmp (ep_rpc_call_request_id (call), prefix, strlen (prefix)) == 0)
            return call;
        ep_rpc_call_destroy (&call);
    }
    return NULL;
}

//  Until the stub at want gets a request: the beacons (each instance
//  owning one shard, a the one before, b the other; the terminators'
//  term-a and term-b, or the reaper's reap-a and reap-b) published again
//  and a request to that service (tag-<n>, a fresh id each time: those
//  heard before the beacons go elsewhere) sent, every 250 ms. Returns
//  want's call, or NULL after 10 s.
static ep_rpc_call_t *
s_route_to (chan_client_t *router, bool reaper, const char *tag, ep_stub_t *want, uint32_t a_shard,
            int64_t a_rev, uint32_t b_shard, int64_t b_rev)
{
    const char *service = reaper? "reaper": "terminators";
    char prefix [64];
    snprintf (prefix, sizeof prefix, "r1:%s-", tag);
    ep_rpc_call_t *call = NULL;
    int64_t deadline = ep_mono_ms () + 10000 * EP_TEST_SLOWDOWN;
    for (int n = 0; !call && ep_mono_ms () < deadline; n++) {
        if (a_rev)
            s_service_beacon (service, reaper? "reap-a": "term-a", reaper? &s_ra: &s_a, a_shard, a_rev);
        if (b_rev)
            s_service_beacon (service, reaper? "reap-b": "term-b", reaper? &s_rb: &s_b, b_shard, b_rev);
        char id [64];
        snprintf (id, sizeof id, "%s-%d", tag, n);
        s_request (router, id, reaper);
        call = s_call (want, prefix, 250);
    }
    return call;
}

//  The terminators' s_route_to.
static ep_rpc_call_t *
s_route (chan_client_t *router, const char *tag, ep_stub_t *want, uint32_t a_shard, int64_t a_rev,
         uint32_t b_shard, int64_t b_rev)
{
    return s_route_to (router, false, tag, want, a_shard, a_rev, b_shard, b_rev);
}

//  Answers call OK at stub and checks router gets the reply (a
//  terminators reply, or the reaper's session reply).
static void
s_answer_as (ep_stub_t *stub, ep_rpc_call_t *call, chan_client_t *router, bool reaper)
{
    char expected [64];
    snprintf (expected, sizeof expected, "%s", strchr (ep_rpc_call_request_id (call), ':') + 1);
    cr_assert_eq (ep_rpc_server_fail (stub->rpc, &call, EP__STATUS__CODE__OK, "done"), 0);
    Ep__Frame *back = ep_wdtest_expect_frame (
        router, reaper? EP__FRAME__BODY_SESSION_REPLY: EP__FRAME__BODY_TERMINATOR_REPLY, 5000);
    cr_assert_not_null (back, "no reply for the router: %s", chan_client_close_reason (router));
    cr_assert_str_eq (reaper? back->session_reply->request_id: back->terminator_reply->request_id, expected);
    ep__frame__free_unpacked (back, NULL);
}

static void
s_answer (ep_stub_t *stub, ep_rpc_call_t *call, chan_client_t *router)
{
    s_answer_as (stub, call, router, false);
}

//  A command from the service (a terminators validation, or the reaper's
//  close sessions) reaches router r1 while the beacons say its second
//  instance (term-b, reap-b) owns r1's shard mine (13) and the first
//  other (12); r1's ack goes to that owner.
static void
s_command_acked (chan_client_t *router, bool reaper, uint32_t mine, uint32_t other)
{
    const char *service = reaper? "reaper": "terminators";
    ep_stub_t *a = reaper? &s_ra: &s_a, *b = reaper? &s_rb: &s_b;
    const char *a_id = reaper? "reap-a": "term-a", *b_id = reaper? "reap-b": "term-b";
    const char *command_id = reaper? "cmd-close-1": "cmd-validate-1";
    Ep__ValidateTerminators validate = EP__VALIDATE_TERMINATORS__INIT;
    Ep__CloseSessions close = EP__CLOSE_SESSIONS__INIT;
    Ep__Command command = EP__COMMAND__INIT;
    command.command_id = (char *) command_id;
    command.router_id = "r1";
    command.reply_to = (char *) service;
    command.kind_case = reaper? EP__COMMAND__KIND_CLOSE_SESSIONS: EP__COMMAND__KIND_VALIDATE_TERMINATORS;
    if (reaper)
        command.close_sessions = &close;
    else
        command.validate_terminators = &validate;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_COMMAND;
    event.command = &command;
    Ep__Frame *frame = NULL;
    int64_t deadline = ep_mono_ms () + 10000 * EP_TEST_SLOWDOWN;
    while (!frame && ep_mono_ms () < deadline) {
        s_service_beacon (service, a_id, a, other, 12);
        s_service_beacon (service, b_id, b, mine, 13);
        ep_publisher_send (s_pub, "cmd.r1.", &event);
        frame = ep_wdtest_expect_frame (router, EP__FRAME__BODY_COMMAND, 250);
    }
    cr_assert_not_null (frame, "the command did not reach r1");
    ep__frame__free_unpacked (frame, NULL);
    Ep__Status ok = EP__STATUS__INIT;
    ok.has_code = true;
    ok.code = EP__STATUS__CODE__OK;
    Ep__CommandAck ack = EP__COMMAND_ACK__INIT;
    ack.command_id = (char *) command_id;
    ack.status = &ok;
    Ep__Frame ack_frame = EP__FRAME__INIT;
    ack_frame.has_id = true;
    ack_frame.id = 7;
    ack_frame.body_case = EP__FRAME__BODY_COMMAND_ACK;
    ack_frame.command_ack = &ack;
    ep_wdtest_send (router, &ack_frame);
    s_service_beacon (service, b_id, b, mine, 13);
    ep_rpc_call_t *call = s_call (b, "r1/ack/", 5000);
    cr_assert_not_null (call, "the ack did not reach %s, the owner of r1's shard", b_id);
    char expected [64];
    snprintf (expected, sizeof expected, "r1/ack/%s", command_id);
    cr_assert_str_eq (ep_rpc_call_request_id (call), expected);
    ep_rpc_call_destroy (&call);
    call = s_call (a, "r1/ack/", 300);
    cr_assert_null (call, "%s, which does not own r1's shard, got the ack", a_id);
}

Test (relay_shards, requests_and_acks_go_to_the_owner_of_the_routers_shard,
      .init = s_setup, .fini = s_teardown, .timeout = 120)
{
    SSL_CTX *ctx;
    chan_client_t *router = s_join_r1 (&ctx);
    uint32_t mine = (uint32_t) ep_shard_of ("r1", SHARDS), other = (mine + 1) % SHARDS;

    //  term-a owns r1's shard: r1's requests reach it, and none term-b.
    ep_rpc_call_t *call = s_route (router, "first", &s_a, mine, 10, other, 11);
    cr_assert_not_null (call, "r1's request never reached term-a, the owner of its shard %u", mine);
    cr_assert_str_eq (ep_rpc_call_caller (call)->name, "watchdog");
    s_answer (&s_a, call, router);
    call = s_call (&s_b, "r1:", 300);
    cr_assert_null (call, "term-b, which does not own shard %u, got %s", mine,
                    call? ep_rpc_call_request_id (call): "");

    //  The shard moves to term-b (a newer owner key): requests follow it.
    call = s_route (router, "moved", &s_b, other, 12, mine, 13);
    cr_assert_not_null (call, "r1's request never reached term-b once it owned shard %u", mine);
    s_answer (&s_b, call, router);

    //  A command's ack goes to the owner too.
    s_command_acked (router, false, mine, other);

    //  The beacons stop: after 3.5 intervals both instances are forgotten
    //  and requests go to the configured endpoint again.
    call = s_route (router, "alone", &s_configured, 0, 0, 0, 0);
    cr_assert_not_null (call, "with no beacon left, r1's request never reached the configured endpoint");
    s_answer (&s_configured, call, router);

    chan_client_destroy (&router);
    SSL_CTX_free (ctx);
}

//  The first instance of the service (term-a, reap-a) owns r1's shard
//  and takes its request, then dies unanswering. Its beacons stop: once
//  it is forgotten (3.5 intervals of 1 s), the watchdog answers the
//  request UNAVAILABLE, retriable, so r1 asks again at once rather than
//  at its request timeout.
static void
s_lost_request_answered (chan_client_t *router, bool reaper)
{
    const char *name = reaper? "reap-a": "term-a";
    uint32_t mine = (uint32_t) ep_shard_of ("r1", SHARDS);
    ep_rpc_call_t *call = s_route_to (router, reaper, "lost", reaper? &s_ra: &s_a, mine, 10, 0, 0);
    cr_assert_not_null (call, "r1's request never reached %s, the owner of its shard %u", name, mine);
    char id [64];
    snprintf (id, sizeof id, "%s", strchr (ep_rpc_call_request_id (call), ':') + 1);
    ep_rpc_call_destroy (&call);

    bool answered = false;
    int64_t deadline = ep_mono_ms () + 8000 * EP_TEST_SLOWDOWN;
    while (!answered && ep_mono_ms () < deadline) {
        Ep__Frame *back = ep_wdtest_expect_frame (
            router, reaper? EP__FRAME__BODY_SESSION_REPLY: EP__FRAME__BODY_TERMINATOR_REPLY, 500);
        const char *request_id = !back? NULL: reaper? back->session_reply->request_id
                                                    : back->terminator_reply->request_id;
        if (request_id && streq (request_id, id)) {
            const Ep__Status *status = reaper? back->session_reply->status: back->terminator_reply->status;
            bool retriable = reaper? back->session_reply->has_retriable && back->session_reply->retriable
                                   : back->terminator_reply->has_retriable && back->terminator_reply->retriable;
            cr_assert (status && status->code == EP__STATUS__CODE__UNAVAILABLE);
            cr_assert (retriable, "the %s reply is not retriable", reaper? "session": "terminators");
            answered = true;
        }
        if (back)
            ep__frame__free_unpacked (back, NULL);
    }
    cr_assert (answered, "r1's request %s, in flight to %s when it was forgotten, was not answered", id, name);
}

Test (relay_shards, requests_in_flight_to_a_forgotten_instance_are_answered_retriable,
      .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    SSL_CTX *ctx;
    chan_client_t *router = s_join_r1 (&ctx);
    s_lost_request_answered (router, false);
    s_lost_request_answered (router, true);
    chan_client_destroy (&router);
    SSL_CTX_free (ctx);
}

Test (relay_shards, session_requests_and_acks_go_to_the_reaper_owning_the_routers_shard,
      .init = s_setup, .fini = s_teardown, .timeout = 120)
{
    SSL_CTX *ctx;
    chan_client_t *router = s_join_r1 (&ctx);
    uint32_t mine = (uint32_t) ep_shard_of ("r1", SHARDS), other = (mine + 1) % SHARDS;

    //  reap-a owns r1's shard: r1's session requests reach it, none reap-b.
    ep_rpc_call_t *call = s_route_to (router, true, "first", &s_ra, mine, 10, other, 11);
    cr_assert_not_null (call, "r1's session request never reached reap-a, the owner of its shard %u", mine);
    cr_assert_str_eq (ep_rpc_call_caller (call)->name, "watchdog");
    s_answer_as (&s_ra, call, router, true);
    call = s_call (&s_rb, "r1:", 300);
    cr_assert_null (call, "reap-b, which does not own shard %u, got %s", mine,
                    call? ep_rpc_call_request_id (call): "");

    //  The reaper's beacons do not route the terminators' requests.
    call = s_route (router, "terms", &s_configured, 0, 0, 0, 0);
    cr_assert_not_null (call, "r1's terminators request never reached the terminators' configured endpoint");
    s_answer (&s_configured, call, router);

    //  The shard moves to reap-b: session requests follow it, and r1's
    //  ack of a close sessions command goes there too.
    call = s_route_to (router, true, "moved", &s_rb, other, 12, mine, 13);
    cr_assert_not_null (call, "r1's session request never reached reap-b once it owned shard %u", mine);
    s_answer_as (&s_rb, call, router, true);
    s_command_acked (router, true, mine, other);

    //  The beacons stop: requests go to the reaper's configured endpoint.
    call = s_route_to (router, true, "alone", &s_reaper, 0, 0, 0, 0);
    cr_assert_not_null (call, "with no beacon left, r1's session request never reached the configured reaper");
    s_answer_as (&s_reaper, call, router, true);
    chan_client_destroy (&router);
    SSL_CTX_free (ctx);
}

//  One router agent, run in a thread (its own loop, as edgeplane-router's).
typedef struct {
    agent_t *agent;             //  the router
    volatile bool stop;         //  ask the thread to end
    pthread_t thread;           //  the thread
} s_agent_run_t;

static void *
s_agent_run (void *arg)
{
    s_agent_run_t *self = (s_agent_run_t *) arg;
    while (!self->stop) {
        struct pollfd fd = { .fd = agent_fd (self->agent), .events = POLLIN };
        if (poll (&fd, fd.fd >= 0? 1: 0, 20) > 0 && fd.revents)
            agent_handle (self->agent);
        agent_tick (self->agent);
    }
    return NULL;
}

//  A watchdog started and router agent r1 running on it in run's thread,
//  holding sessions, replacing churn_per_s a second; its TLS context
//  returned (the caller frees it). A minute's request timeout: only the
//  retry of a refusal asks again within a test.
static SSL_CTX *
s_agent_start (s_agent_run_t *run, int sessions, double churn_per_s)
{
    ep_proc_t *watchdog = s_watchdog ();
    SSL_CTX *ctx = ep_wdtest_router_ctx (s_dir, "r1");
    agent_config_t config = { .id = "r1", .ctx = ctx, .controller = ep_proc_connect_endpoint (watchdog, "channel"),
                              .sessions = sessions, .churn_per_s = churn_per_s, .ack_share = 1.0,
                              .heartbeat_ms = 500, .backoff_base_ms = 100, .backoff_max_ms = 1000,
                              .request_timeout_ms = 60000 };
    run->agent = agent_new (&config);
    run->stop = false;
    cr_assert_eq (pthread_create (&run->thread, NULL, s_agent_run, run), 0);
    return ctx;
}

//  Answers call at stub with code (a refusal): retriable, as an instance
//  that does not own r1's shard says (naming the owner), or for good; a
//  reaper's session reply, or a terminators reply.
static void
s_refuse (ep_stub_t *stub, ep_rpc_call_t **call_p, bool reaper, Ep__Status__Code code, bool retriable)
{
    Ep__Status status = EP__STATUS__INIT;
    status.has_code = true;
    status.code = code;
    status.message = retriable? "shard 3 is owned by another instance": "refused for good";
    Ep__SessionReply session = EP__SESSION_REPLY__INIT;
    Ep__TerminatorReply terminator = EP__TERMINATOR_REPLY__INIT;
    session.request_id = terminator.request_id = (char *) ep_rpc_call_request_id (*call_p);
    session.status = terminator.status = &status;
    session.has_retriable = terminator.has_retriable = true;
    session.retriable = terminator.retriable = retriable;
    session.owner = terminator.owner = retriable? (reaper? "reap-b": "term-b"): NULL;
    char err [256];
    zframe_t *packed = ep_codec_pack (reaper? &session.base: &terminator.base, EP_CODEC_DEFAULT_CAP,
                                      err, sizeof err);
    cr_assert_not_null (packed, "%s", err);
    cr_assert_eq (ep_rpc_server_reply (stub->rpc, call_p, &packed, false), 0);
}

static bool
s_confirmed (void *arg)
{
    return agent_stats ((agent_t *) arg)->terminators == 1;
}

Test (relay_shards, the_router_agent_asks_again_a_create_refused_as_retriable,
      .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    //  Static: a failed assertion leaves the test with the thread running.
    static s_agent_run_t run;
    SSL_CTX *ctx = s_agent_start (&run, 0, 0);

    //  The instance asked does not own r1's shard: UNAVAILABLE, retriable,
    //  naming the owner.
    ep_rpc_call_t *call = s_call (&s_configured, "r1:t:svc1", 15000 * EP_TEST_SLOWDOWN);
    cr_assert_not_null (call, "the agent's terminator create never came");
    int64_t refused = ep_mono_ms ();
    s_refuse (&s_configured, &call, false, EP__STATUS__CODE__UNAVAILABLE, true);

    //  Asked again, the same request id, well before the request timeout.
    call = s_call (&s_configured, "r1:t:svc1", 10000 * EP_TEST_SLOWDOWN);
    cr_assert_not_null (call, "the refused create was not asked again");
    cr_assert_str_eq (ep_rpc_call_request_id (call), "r1:t:svc1");
    cr_assert_lt (ep_mono_ms () - refused, 10000 * EP_TEST_SLOWDOWN);
    cr_assert_eq (ep_rpc_server_fail (s_configured.rpc, &call, EP__STATUS__CODE__OK, "created"), 0);
    cr_assert (ep_wait_until (s_confirmed, run.agent, 10000 * EP_TEST_SLOWDOWN),
               "the agent did not take the create as done");
    cr_assert_geq (agent_stats (run.agent)->retries, 1);

    //  Un-hosted: its delete, refused as retriable, is asked again too.
    ep_stack_router_write (s_stack, EP__MODEL_WRITE__OP__UPDATE, "r1", NULL, 0);
    call = s_call (&s_configured, "r1:d:svc1", 15000 * EP_TEST_SLOWDOWN);
    cr_assert_not_null (call, "the agent's terminator delete never came");
    refused = ep_mono_ms ();
    s_refuse (&s_configured, &call, false, EP__STATUS__CODE__UNAVAILABLE, true);
    call = s_call (&s_configured, "r1:d:svc1", 10000 * EP_TEST_SLOWDOWN);
    cr_assert_not_null (call, "the refused delete was not asked again");
    cr_assert_lt (ep_mono_ms () - refused, 10000 * EP_TEST_SLOWDOWN);
    cr_assert_eq (ep_rpc_server_fail (s_configured.rpc, &call, EP__STATUS__CODE__OK, "deleted"), 0);

    run.stop = true;
    pthread_join (run.thread, NULL);
    agent_destroy (&run.agent);
    SSL_CTX_free (ctx);
}

Test (relay_shards, the_router_agent_asks_again_a_session_request_refused_as_retriable,
      .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    //  One session, replaced every 2 s once confirmed.
    static s_agent_run_t run;
    SSL_CTX *ctx = s_agent_start (&run, 1, 0.5);

    //  The open, refused as by an instance taking over r1's shard.
    ep_rpc_call_t *call = s_call (&s_reaper, "r1:s:", 15000 * EP_TEST_SLOWDOWN);
    cr_assert_not_null (call, "the agent's session open never came");
    char open_id [96];
    snprintf (open_id, sizeof open_id, "%s", ep_rpc_call_request_id (call));
    s_refuse (&s_reaper, &call, true, EP__STATUS__CODE__UNAVAILABLE, true);
    int64_t refused = ep_mono_ms ();

    //  Asked again, the same request id, well before the request timeout;
    //  OK this time: the session is confirmed.
    call = s_call (&s_reaper, "r1:s:", 10000 * EP_TEST_SLOWDOWN);
    cr_assert_not_null (call, "the refused open was not asked again");
    cr_assert_str_eq (ep_rpc_call_request_id (call), open_id);
    cr_assert_lt (ep_mono_ms () - refused, 10000 * EP_TEST_SLOWDOWN);
    cr_assert_eq (ep_rpc_server_fail (s_reaper.rpc, &call, EP__STATUS__CODE__OK, "opened"), 0);
    cr_assert_geq (agent_stats (run.agent)->retries, 1);

    //  Churn, which replaces only a confirmed session (so its close says
    //  the open was taken as done): its close (refused as retriable), then
    //  the next session's open (refused for good), in that order.
    char close_id [96];
    snprintf (close_id, sizeof close_id, "r1:c:%s", open_id + strlen ("r1:s:"));
    call = s_call (&s_reaper, "r1:c:", 15000 * EP_TEST_SLOWDOWN);
    cr_assert_not_null (call, "the agent's session close never came");
    cr_assert_str_eq (ep_rpc_call_request_id (call), close_id);
    s_refuse (&s_reaper, &call, true, EP__STATUS__CODE__UNAVAILABLE, true);
    call = s_call (&s_reaper, "r1:s:", 10000 * EP_TEST_SLOWDOWN);
    cr_assert_not_null (call, "the next session's open never came");
    char next_id [96];
    snprintf (next_id, sizeof next_id, "%s", ep_rpc_call_request_id (call));
    s_refuse (&s_reaper, &call, true, EP__STATUS__CODE__FAILED_PRECONDITION, false);

    //  Within 3 s (a retry is due within 100 ms): the close asked again,
    //  the refused open not (heartbeats dropped).
    bool closed = false;
    int64_t deadline = ep_mono_ms () + 3000 * EP_TEST_SLOWDOWN;
    while (ep_mono_ms () < deadline) {
        call = ep_stub_next (&s_reaper, (int) (deadline - ep_mono_ms ()));
        if (!call)
            break;
        const char *id = ep_rpc_call_request_id (call);
        cr_assert_str_neq (id, next_id, "an open refused for good was asked again");
        if (streq (id, close_id)) {
            closed = true;
            cr_assert_eq (ep_rpc_server_fail (s_reaper.rpc, &call, EP__STATUS__CODE__OK, "closed"), 0);
        }
        ep_rpc_call_destroy (&call);
    }
    cr_assert (closed, "the refused close was not asked again");
    cr_assert_eq (agent_stats (run.agent)->sessions, 0);

    run.stop = true;
    pthread_join (run.thread, NULL);
    agent_destroy (&run.agent);
    SSL_CTX_free (ctx);
}
