/*  test_watchdog_relay.c: what the watchdog carries for a joined router,
    against the real edgeplane-watchdog (with bus and model) and stub
    terminators and reaper services (ROUTER sockets here, with those
    services' CURVE certificates): requests relayed with the ids and the
    caller the services rely on, replies back with the router's own ids,
    commands and their acks (a deposed shard owner's not delivered), model
    slices, edge-to-router events, and the drain on SIGTERM. Also
    `edgeplane connections` across two instances. */
#include <criterion/criterion.h>
#include "ep_stack.h"
#include "ep_wdtest.h"
#include "ep_eventlog.h"
#include "ep_auth.h"
#include "chan_client.h"
#include "ep_codec.h"
#include "ep_keys.h"
#include "ep_pki_tls.h"
#include "ep_publisher.h"
#include "ep_rpc_client.h"
#include "ep_rpc_server.h"
#include "ep_shard.h"
#include "ep_subscriber.h"
#include "model.pb-c.h"
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static ep_stack_t *s_stack;     //  keys, bus, model, environment
static const char *s_dir;       //  its data dir
static const char *s_keys;      //  its keys dir
static ep_proc_t *s_bus;        //  its bus
static ep_stubs_t s_stubs;      //  the terminators and the reaper, stubbed
static ep_subscriber_t *s_events;       //  connect.* (the stack's)
static zcert_t *s_sub_cert;     //  for our own subscribers

static ep_eventlog_t *s_log;    //  what s_events delivered

static bool
s_from (const ep_logged_t *e, void *src_id)
{
    return streq (e->src_id, (const char *) src_id);
}

//  Waits for an event on topic whose src_id is src_id (NULL: any).
static const ep_logged_t *
s_await (const char *topic, const char *src_id, int timeout_ms)
{
    return ep_eventlog_await_event (s_log, topic, src_id? s_from: NULL, (void *) src_id, timeout_ms);
}

static void
s_setup (void)
{
    s_stack = ep_stack_new ("watchdog-relay");
    s_dir = ep_stack_dir (s_stack);
    s_keys = ep_stack_keys (s_stack);
    s_bus = ep_stack_bus (s_stack);
    ep_stubs_start (&s_stubs, s_stack);
    s_sub_cert = ep_keys_load (s_keys, "subscriber");
    s_events = ep_stack_subscribe (s_stack, "connect.");
    s_log = ep_eventlog_new (s_events);

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
    ep_eventlog_destroy (&s_log);
    s_events = NULL;
    ep_stack_destroy (&s_stack);
    ep_stubs_stop (&s_stubs);
}

static ep_proc_t *
s_watchdog (void)
{
    const char *args [] = { "--channel-listen", "127.0.0.1:0", "--listen", "tcp://127.0.0.1:*",
                            "--http-listen", "127.0.0.1:0", "--heartbeat=10s", "--heartbeat-timeout=30s",
                            "--drain-grace=1s", NULL };
    ep_proc_t *watchdog = ep_proc_start ("edgeplane-watchdog", args, ep_stack_env (s_stack), 15000);
    cr_assert_not_null (watchdog);
    ep_stack_keep (s_stack, watchdog);
    return watchdog;
}

Test (relay, terminator_and_session_requests_carry_the_routers_ids_and_come_back,
      .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    ep_proc_t *watchdog = s_watchdog ();
    SSL_CTX *ctx = ep_wdtest_router_ctx (s_dir, "r1");
    chan_client_t *router = ep_wdtest_join (ep_proc_endpoint (watchdog, "channel"), ctx, "r1");

    //  A terminator create in which r1 claims to speak for r2.
    Ep__Terminator terminator = EP__TERMINATOR__INIT;
    terminator.id = "t-r1-svc1";
    terminator.service_id = "svc1";
    terminator.router_id = "r2";
    Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
    request.request_id = "req-1";
    request.router_id = "r2";
    request.op_case = EP__TERMINATOR_REQUEST__OP_CREATE;
    request.create = &terminator;
    Ep__Frame frame = EP__FRAME__INIT;
    frame.has_id = true;
    frame.id = 41;
    frame.body_case = EP__FRAME__BODY_TERMINATOR_REQUEST;
    frame.terminator_request = &request;
    ep_wdtest_send (router, &frame);

    ep_rpc_call_t *call = ep_stub_next (&s_stubs.terminators, 5000);
    cr_assert_not_null (call, "the terminators stub got nothing");
    const ep_caller_t *caller = ep_rpc_call_caller (call);
    cr_assert_str_eq (caller->role, "service");
    cr_assert_str_eq (caller->name, "watchdog");
    cr_assert_str_eq (ep_rpc_call_request_id (call), "r1:req-1");
    char err [256];
    Ep__TerminatorRequest *seen = (Ep__TerminatorRequest *) ep_codec_unpack_frame (
        &ep__terminator_request__descriptor, ep_rpc_call_payload (call), EP_CODEC_DEFAULT_CAP, "test",
        err, sizeof err);
    cr_assert_not_null (seen, "%s", err);
    cr_assert_str_eq (seen->router_id, "r1", "the watchdog alone says which router speaks");
    cr_assert_eq (seen->op_case, EP__TERMINATOR_REQUEST__OP_CREATE);
    cr_assert_str_eq (seen->create->id, "t-r1-svc1");
    ep__terminator_request__free_unpacked (seen, NULL);

    Ep__Status ok = EP__STATUS__INIT;
    ok.has_code = true;
    ok.code = EP__STATUS__CODE__OK;
    Ep__Terminator *made [] = { &terminator };
    Ep__TerminatorReply reply = EP__TERMINATOR_REPLY__INIT;
    reply.request_id = (char *) ep_rpc_call_request_id (call);
    reply.status = &ok;
    reply.n_terminators = 1;
    reply.terminators = made;
    zframe_t *packed = ep_codec_pack (&reply.base, EP_CODEC_DEFAULT_CAP, err, sizeof err);
    cr_assert_not_null (packed, "%s", err);
    cr_assert_eq (ep_rpc_server_reply (s_stubs.terminators.rpc, &call, &packed, false), 0);

    Ep__Frame *back = ep_wdtest_expect_frame (router, EP__FRAME__BODY_TERMINATOR_REPLY, 5000);
    cr_assert_not_null (back, "no terminator reply for the router: %s", chan_client_close_reason (router));
    cr_assert (back->has_id && back->id == 41, "the reply carries the request's frame id");
    cr_assert_str_eq (back->terminator_reply->request_id, "req-1", "the router sees its own request id");
    cr_assert_eq (back->terminator_reply->status->code, EP__STATUS__CODE__OK);
    cr_assert_eq (back->terminator_reply->n_terminators, 1);
    ep__frame__free_unpacked (back, NULL);

    //  A session open, to the reaper, with the same guarantees.
    Ep__Session session = EP__SESSION__INIT;
    session.id = "s-1";
    session.router_id = "r2";
    Ep__SessionRequest open = EP__SESSION_REQUEST__INIT;
    open.request_id = "req-2";
    open.router_id = "r2";
    open.op_case = EP__SESSION_REQUEST__OP_OPEN;
    open.open = &session;
    Ep__Frame frame2 = EP__FRAME__INIT;
    frame2.has_id = true;
    frame2.id = 42;
    frame2.body_case = EP__FRAME__BODY_SESSION_REQUEST;
    frame2.session_request = &open;
    ep_wdtest_send (router, &frame2);
    call = ep_stub_next (&s_stubs.reaper, 5000);
    cr_assert_not_null (call, "the reaper stub got nothing");
    cr_assert_str_eq (ep_rpc_call_caller (call)->role, "service");
    cr_assert_str_eq (ep_rpc_call_caller (call)->name, "watchdog");
    cr_assert_str_eq (ep_rpc_call_request_id (call), "r1:req-2");
    Ep__SessionRequest *opened = (Ep__SessionRequest *) ep_codec_unpack_frame (
        &ep__session_request__descriptor, ep_rpc_call_payload (call), EP_CODEC_DEFAULT_CAP, "test",
        err, sizeof err);
    cr_assert_not_null (opened, "%s", err);
    cr_assert_str_eq (opened->router_id, "r1");
    cr_assert_eq (opened->op_case, EP__SESSION_REQUEST__OP_OPEN);
    cr_assert_str_eq (opened->open->id, "s-1");
    ep__session_request__free_unpacked (opened, NULL);
    cr_assert_eq (ep_rpc_server_fail (s_stubs.reaper.rpc, &call, EP__STATUS__CODE__CONFLICT, "already open"), 0);
    back = ep_wdtest_expect_frame (router, EP__FRAME__BODY_SESSION_REPLY, 5000);
    cr_assert_not_null (back, "no session reply for the router");
    cr_assert (back->has_id && back->id == 42);
    cr_assert_str_eq (back->session_reply->request_id, "req-2");
    cr_assert_eq (back->session_reply->status->code, EP__STATUS__CODE__CONFLICT);
    cr_assert_str_eq (back->session_reply->status->message, "already open");
    ep__frame__free_unpacked (back, NULL);

    chan_client_destroy (&router);
    SSL_CTX_free (ctx);
}

//  Sends a SessionRequest get with request_id (may be NULL) in frame id.
static void
s_session_get (chan_client_t *router, const char *request_id, uint64_t frame_id)
{
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.request_id = (char *) request_id;
    request.op_case = EP__SESSION_REQUEST__OP_GET_ID;
    request.get_id = "s-1";
    Ep__Frame frame = EP__FRAME__INIT;
    frame.has_id = true;
    frame.id = frame_id;
    frame.body_case = EP__FRAME__BODY_SESSION_REQUEST;
    frame.session_request = &request;
    ep_wdtest_send (router, &frame);
}

Test (relay, every_router_request_gets_an_answer,
      .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    ep_proc_t *watchdog = s_watchdog ();
    SSL_CTX *ctx = ep_wdtest_router_ctx (s_dir, "r1");
    chan_client_t *router = ep_wdtest_join (ep_proc_endpoint (watchdog, "channel"), ctx, "r1");

    //  No request id: the watchdog answers, the service never sees it.
    s_session_get (router, NULL, 5);
    Ep__Frame *back = ep_wdtest_expect_frame (router, EP__FRAME__BODY_SESSION_REPLY, 5000);
    cr_assert_not_null (back, "a request without an id was not answered");
    cr_assert_eq (back->id, 5);
    cr_assert_eq (back->session_reply->status->code, EP__STATUS__CODE__INVALID_ARGUMENT);
    cr_assert (strstr (back->session_reply->status->message, "request_id"), "%s",
               back->session_reply->status->message);
    ep__frame__free_unpacked (back, NULL);
    //  Longer than the service takes with the router prefix: the same.
    char long_id [200];
    memset (long_id, 'x', sizeof long_id - 1);
    long_id [sizeof long_id - 1] = 0;
    s_session_get (router, long_id, 6);
    back = ep_wdtest_expect_frame (router, EP__FRAME__BODY_SESSION_REPLY, 5000);
    cr_assert_not_null (back);
    cr_assert_eq (back->id, 6);
    cr_assert_str_eq (back->session_reply->request_id, long_id);
    cr_assert_eq (back->session_reply->status->code, EP__STATUS__CODE__INVALID_ARGUMENT);
    ep__frame__free_unpacked (back, NULL);

    //  Any id a router picks is relayed and answered, even one that looks
    //  like the watchdog's own ack ids did.
    s_session_get (router, "ack-1", 8);
    ep_rpc_call_t *call = ep_stub_next (&s_stubs.reaper, 5000);
    cr_assert_not_null (call, "the reaper stub got nothing");
    cr_assert_str_eq (ep_rpc_call_request_id (call), "r1:ack-1");
    ep_rpc_server_fail (s_stubs.reaper.rpc, &call, EP__STATUS__CODE__NOT_FOUND, "no session s-1");
    back = ep_wdtest_expect_frame (router, EP__FRAME__BODY_SESSION_REPLY, 5000);
    cr_assert_not_null (back, "the reply to the router's request was kept from it");
    cr_assert_eq (back->id, 8);
    cr_assert_str_eq (back->session_reply->request_id, "ack-1");
    cr_assert_eq (back->session_reply->status->code, EP__STATUS__CODE__NOT_FOUND);
    ep__frame__free_unpacked (back, NULL);

    chan_client_destroy (&router);
    SSL_CTX_free (ctx);
}

//  Publishes command on cmd.<router>. until the router receives it (the
//  watchdog's subscription may still be on its way to the bus); returns
//  the Command frame. With before, that one is published first each time.
static Ep__Frame *
s_command (chan_client_t *router, const char *router_id, Ep__Command *command,
           Ep__Command *before)
{
    zcert_t *cert = ep_keys_load (s_keys, "reaper");
    char *bus_key = ep_keys_public_txt (s_keys, "bus");
    ep_publisher_t *pub = ep_publisher_new (ep_proc_connect_endpoint (s_bus, "pub"), cert, bus_key,
                                            "reaper-test", EP_CODEC_DEFAULT_CAP);
    ep_publisher_declare (pub, "cmd");
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_COMMAND;
    event.command = command;
    char topic [80];
    snprintf (topic, sizeof topic, "cmd.%s.", router_id);
    Ep__Frame *frame = NULL;
    int64_t deadline = ep_mono_ms () + 10000;
    while (!frame && ep_mono_ms () < deadline) {
        if (before) {
            Ep__Event first = EP__EVENT__INIT;
            first.body_case = EP__EVENT__BODY_COMMAND;
            first.command = before;
            ep_publisher_send (pub, topic, &first);
        }
        ep_publisher_send (pub, topic, &event);
        frame = ep_wdtest_expect_frame (router, EP__FRAME__BODY_COMMAND, 200);
    }
    ep_publisher_destroy (&pub);
    free (bus_key);
    zcert_destroy (&cert);
    return frame;
}

static void
s_ack (chan_client_t *router, const char *command_id)
{
    Ep__Status ok = EP__STATUS__INIT;
    ok.has_code = true;
    ok.code = EP__STATUS__CODE__OK;
    Ep__CommandAck ack = EP__COMMAND_ACK__INIT;
    ack.command_id = (char *) command_id;
    ack.status = &ok;
    char *closed [] = { "s-1", "s-2" };
    ack.n_session_ids = 2;
    ack.session_ids = closed;
    Ep__Frame frame = EP__FRAME__INIT;
    frame.has_id = true;
    frame.id = 7;
    frame.body_case = EP__FRAME__BODY_COMMAND_ACK;
    frame.command_ack = &ack;
    ep_wdtest_send (router, &frame);
}

Test (relay, a_command_reaches_the_router_and_its_ack_the_commander,
      .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    ep_proc_t *watchdog = s_watchdog ();
    SSL_CTX *ctx = ep_wdtest_router_ctx (s_dir, "r1");
    chan_client_t *router = ep_wdtest_join (ep_proc_endpoint (watchdog, "channel"), ctx, "r1");

    //  From the reaper: close two sessions.
    char *ids [] = { "s-1", "s-2" };
    Ep__CloseSessions close = EP__CLOSE_SESSIONS__INIT;
    close.n_session_ids = 2;
    close.session_ids = ids;
    close.reason = "router-deleted";
    Ep__Command command = EP__COMMAND__INIT;
    command.command_id = "cmd-close-1";
    command.router_id = "r1";
    command.reply_to = "reaper";
    command.kind_case = EP__COMMAND__KIND_CLOSE_SESSIONS;
    command.close_sessions = &close;
    Ep__Frame *frame = s_command (router, "r1", &command, NULL);
    cr_assert_not_null (frame, "the command did not reach the router");
    cr_assert_str_eq (frame->command->command_id, "cmd-close-1");
    cr_assert_eq (frame->command->kind_case, EP__COMMAND__KIND_CLOSE_SESSIONS);
    cr_assert_eq (frame->command->close_sessions->n_session_ids, 2);
    ep__frame__free_unpacked (frame, NULL);

    s_ack (router, "cmd-close-1");
    ep_rpc_call_t *call = ep_stub_next (&s_stubs.reaper, 5000);
    cr_assert_not_null (call, "the ack did not reach the reaper");
    cr_assert_str_eq (ep_rpc_call_caller (call)->name, "watchdog");
    char err [256];
    Ep__SessionRequest *request = (Ep__SessionRequest *) ep_codec_unpack_frame (
        &ep__session_request__descriptor, ep_rpc_call_payload (call), EP_CODEC_DEFAULT_CAP, "test",
        err, sizeof err);
    cr_assert_not_null (request, "%s", err);
    cr_assert_eq (request->op_case, EP__SESSION_REQUEST__OP_ACK);
    cr_assert_str_eq (request->router_id, "r1");
    cr_assert_str_eq (request->ack->command_id, "cmd-close-1");
    cr_assert_eq (request->ack->n_session_ids, 2);
    //  Its own request id, which no id a router picks can be: a retried ack
    //  is the same request to the reaper.
    cr_assert_str_eq (ep_rpc_call_request_id (call), "r1/ack/cmd-close-1");
    ep__session_request__free_unpacked (request, NULL);
    ep_rpc_server_fail (s_stubs.reaper.rpc, &call, EP__STATUS__CODE__OK, "acked");

    //  From the terminators service: validate, acked to it.
    Ep__ValidateTerminators validate = EP__VALIDATE_TERMINATORS__INIT;
    Ep__Command check = EP__COMMAND__INIT;
    check.command_id = "cmd-validate-1";
    check.router_id = "r1";
    check.reply_to = "terminators";
    check.kind_case = EP__COMMAND__KIND_VALIDATE_TERMINATORS;
    check.validate_terminators = &validate;
    //  Published for r1 but naming r2 (a commander's bug): not delivered,
    //  though it goes out before the good one each time.
    Ep__Command stray = EP__COMMAND__INIT;
    stray.command_id = "cmd-misaddressed";
    stray.router_id = "r2";
    stray.kind_case = EP__COMMAND__KIND_VALIDATE_TERMINATORS;
    stray.validate_terminators = &validate;
    SSL_CTX *ctx2 = ep_wdtest_router_ctx (s_dir, "r2");
    chan_client_t *r2 = ep_wdtest_join (ep_proc_endpoint (watchdog, "channel"), ctx2, "r2");
    frame = s_command (router, "r1", &check, &stray);
    cr_assert_not_null (frame, "the validate command did not reach the router");
    cr_assert_str_eq (frame->command->command_id, "cmd-validate-1", "a misaddressed command was delivered");
    ep__frame__free_unpacked (frame, NULL);
    //  The watchdog handled every misaddressed copy before that one: had
    //  one gone to r2, it would come before r2's own command.
    Ep__Command own = EP__COMMAND__INIT;
    own.command_id = "cmd-r2";
    own.router_id = "r2";
    own.kind_case = EP__COMMAND__KIND_VALIDATE_TERMINATORS;
    own.validate_terminators = &validate;
    frame = s_command (r2, "r2", &own, NULL);
    cr_assert_not_null (frame, "r2's command did not reach it");
    cr_assert_str_eq (frame->command->command_id, "cmd-r2", "r2 got a command published for r1");
    chan_client_destroy (&r2);
    SSL_CTX_free (ctx2);
    ep__frame__free_unpacked (frame, NULL);
    s_ack (router, "cmd-validate-1");
    call = ep_stub_next (&s_stubs.terminators, 5000);
    cr_assert_not_null (call, "the ack did not reach the terminators service");
    Ep__TerminatorRequest *tr = (Ep__TerminatorRequest *) ep_codec_unpack_frame (
        &ep__terminator_request__descriptor, ep_rpc_call_payload (call), EP_CODEC_DEFAULT_CAP, "test",
        err, sizeof err);
    cr_assert_not_null (tr, "%s", err);
    cr_assert_eq (tr->op_case, EP__TERMINATOR_REQUEST__OP_ACK);
    cr_assert_str_eq (tr->router_id, "r1");
    cr_assert_str_eq (tr->ack->command_id, "cmd-validate-1");
    cr_assert_str_eq (ep_rpc_call_request_id (call), "r1/ack/cmd-validate-1");
    ep__terminator_request__free_unpacked (tr, NULL);
    ep_rpc_server_fail (s_stubs.terminators.rpc, &call, EP__STATUS__CODE__OK, "acked");

    chan_client_destroy (&router);
    SSL_CTX_free (ctx);
}

//  The stale-command count of the watchdog whose /metrics is at http.
typedef struct {
    const char *http;           //  its http endpoint
    const char *series;         //  the series waited for
    double want;                //  its value
} s_scrape_t;

static bool
s_series_is (void *arg)
{
    s_scrape_t *scrape = (s_scrape_t *) arg;
    char *page = ep_http_get (scrape->http, "/metrics");
    bool is = page && ep_metric_value (page, scrape->series) == scrape->want;
    free (page);
    return is;
}

//  The id of the next command r1 receives other than copies of skip, or
//  NULL. Caller frees.
static char *
s_next_command (chan_client_t *router, const char *skip)
{
    int64_t deadline = ep_mono_ms () + 5000;
    while (ep_mono_ms () < deadline) {
        Ep__Frame *frame = ep_wdtest_expect_frame (router, EP__FRAME__BODY_COMMAND, 200);
        char *id = frame? strdup (frame->command->command_id): NULL;
        if (frame)
            ep__frame__free_unpacked (frame, NULL);
        if (id && (!skip || !streq (id, skip)))
            return id;
        free (id);
    }
    return NULL;
}

Test (relay, a_command_from_a_deposed_shard_owner_never_reaches_the_router,
      .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    ep_proc_t *watchdog = s_watchdog ();
    SSL_CTX *ctx = ep_wdtest_router_ctx (s_dir, "r1");
    chan_client_t *router = ep_wdtest_join (ep_proc_endpoint (watchdog, "channel"), ctx, "r1");
    //  One publisher throughout: what it sends reaches the watchdog in order.
    zcert_t *cert = ep_keys_load (s_keys, "reaper");
    char *bus_key = ep_keys_public_txt (s_keys, "bus");
    ep_publisher_t *pub = ep_publisher_new (ep_proc_connect_endpoint (s_bus, "pub"), cert, bus_key,
                                            "reaper-test", EP_CODEC_DEFAULT_CAP);
    ep_publisher_declare (pub, "cmd");
    char *ids [] = { "s-1" };
    Ep__CloseSessions close = EP__CLOSE_SESSIONS__INIT;
    close.n_session_ids = 1;
    close.session_ids = ids;
    Ep__Command command = EP__COMMAND__INIT;
    command.router_id = "r1";
    command.reply_to = "reaper";
    command.kind_case = EP__COMMAND__KIND_CLOSE_SESSIONS;
    command.close_sessions = &close;
    command.shard_service = "reaper";
    command.has_shard = command.has_owner_revision = true;
    command.shard = (uint32_t) ep_shard_of ("r1", EP_SHARD_DEFAULT_COUNT);
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_COMMAND;
    event.command = &command;

    //  The owner created at revision 10: delivered (published until the
    //  watchdog's subscription has reached the bus).
    command.command_id = "from-10";
    command.owner_revision = 10;
    char *got = NULL;
    int64_t deadline = ep_mono_ms () + 10000;
    while (!got && ep_mono_ms () < deadline) {
        ep_publisher_send (pub, "cmd.r1.", &event);
        got = s_next_command (router, NULL);
    }
    cr_assert_not_null (got, "the command from revision 10 did not reach the router");
    cr_assert_str_eq (got, "from-10");
    free (got);
    //  A newer owner (revision 20): delivered, after any copies of the first.
    command.command_id = "from-20";
    command.owner_revision = 20;
    ep_publisher_send (pub, "cmd.r1.", &event);
    got = s_next_command (router, "from-10");
    cr_assert_not_null (got, "the command from revision 20 did not reach the router");
    cr_assert_str_eq (got, "from-20");
    free (got);
    //  The owner of revision 10 again, deposed: not delivered. The one sent
    //  after it is the next the router gets.
    command.command_id = "from-10-again";
    command.owner_revision = 10;
    ep_publisher_send (pub, "cmd.r1.", &event);
    command.command_id = "from-20-again";
    command.owner_revision = 20;
    ep_publisher_send (pub, "cmd.r1.", &event);
    got = s_next_command (router, NULL);
    cr_assert_not_null (got, "the second command from revision 20 did not reach the router");
    cr_assert_str_eq (got, "from-20-again", "the deposed owner's command was delivered");
    free (got);

    s_scrape_t scrape = { ep_proc_endpoint (watchdog, "http"),
                          "edgeplane_commands_stale_total{service=\"reaper\"}", 1 };
    cr_assert (ep_wait_until (s_series_is, &scrape, 5000), "%s is not 1", scrape.series);
    scrape.series = "edgeplane_commands_stale_total{service=\"terminators\"}";
    scrape.want = 0;
    cr_assert (s_series_is (&scrape), "%s is not 0", scrape.series);
    char *log = ep_proc_log (watchdog);
    char line [200];
    snprintf (line, sizeof line, "command from-10-again for router r1 from a deposed reaper owner: "
              "shard %u, owner revision 10, older than 20 seen: not delivered", command.shard);
    cr_assert (log && strstr (log, line), "no log line: %s", line);
    free (log);

    ep_publisher_destroy (&pub);
    free (bus_key);
    zcert_destroy (&cert);
    chan_client_destroy (&router);
    SSL_CTX_free (ctx);
}

static bool
s_has (Ep__HostedService **hosted, size_t count, const char *service)
{
    for (size_t i = 0; i < count; i++)
        if (streq (hosted [i]->service_id, service))
            return true;
    return false;
}

Test (relay, a_router_gets_its_full_slice_on_join_then_deltas,
      .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    ep_proc_t *watchdog = s_watchdog ();
    SSL_CTX *ctx = ep_wdtest_router_ctx (s_dir, "r1");
    chan_client_t *router = ep_wdtest_join (ep_proc_endpoint (watchdog, "channel"), ctx, "r1");
    Ep__Frame *frame = ep_wdtest_expect_frame (router, EP__FRAME__BODY_SLICE, 5000);
    cr_assert_not_null (frame, "no model slice on join");
    Ep__ModelSlice *slice = frame->slice;
    cr_assert (slice->has_full && slice->full, "the first slice is full");
    cr_assert_eq (slice->n_hosted, 1);
    cr_assert_str_eq (slice->hosted [0]->service_id, "svc1");
    cr_assert_eq (slice->n_removed, 0);
    cr_assert (slice->has_revision && slice->revision > 0);
    uint64_t revision = slice->revision;
    ep__frame__free_unpacked (frame, NULL);

    //  r1 now hosts svc2 instead of svc1.
    const char *svc2 [] = { "svc2" };
    ep_stack_router_write (s_stack, EP__MODEL_WRITE__OP__UPDATE, "r1", svc2, 1);
    frame = ep_wdtest_expect_frame (router, EP__FRAME__BODY_SLICE, 5000);
    cr_assert_not_null (frame, "no delta slice after the update");
    slice = frame->slice;
    cr_assert (slice->has_full && !slice->full, "an update sends a delta");
    cr_assert_gt (slice->revision, revision);
    cr_assert_eq (slice->n_hosted, 1);
    cr_assert (s_has (slice->hosted, slice->n_hosted, "svc2"), "svc2 added");
    cr_assert_eq (slice->n_removed, 1);
    cr_assert_str_eq (slice->removed [0], "svc1");
    ep__frame__free_unpacked (frame, NULL);

    //  An update of another router sends r1 nothing; the next one for r1 does.
    const char *both [] = { "svc1", "svc2" };
    ep_stack_router_write (s_stack, EP__MODEL_WRITE__OP__UPDATE, "r2", both, 2);
    ep_stack_router_write (s_stack, EP__MODEL_WRITE__OP__UPDATE, "r1", both, 2);
    frame = ep_wdtest_expect_frame (router, EP__FRAME__BODY_SLICE, 5000);
    cr_assert_not_null (frame);
    cr_assert_eq (frame->slice->n_hosted, 1);
    cr_assert_str_eq (frame->slice->hosted [0]->service_id, "svc1", "only the change is sent");
    cr_assert_eq (frame->slice->n_removed, 0);
    ep__frame__free_unpacked (frame, NULL);

    chan_client_destroy (&router);
    SSL_CTX_free (ctx);
}

Test (relay, edge_connects_reported_by_a_router_become_bus_events,
      .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    ep_proc_t *watchdog = s_watchdog ();
    SSL_CTX *ctx = ep_wdtest_router_ctx (s_dir, "r1");
    chan_client_t *router = ep_wdtest_join (ep_proc_endpoint (watchdog, "channel"), ctx, "r1");
    cr_assert_not_null (s_await ("connect.router-to-ctrl", "r1", 5000), "the join was not announced");

    Ep__EdgeConnect up = EP__EDGE_CONNECT__INIT;
    up.identity_id = "id-alice";
    up.src_addr = "203.0.113.7:50000";
    up.dst_addr = "198.51.100.1:3022";
    up.has_connected = true;
    up.connected = true;
    up.has_timestamp_ms = true;
    up.timestamp_ms = 1795346594123;        //  the router's clock
    Ep__EdgeConnect down = EP__EDGE_CONNECT__INIT;
    down.identity_id = "id-bob";
    down.src_addr = "203.0.113.8:50001";
    down.has_connected = true;
    down.connected = false;
    down.has_duration_ms = true;
    down.duration_ms = 1234;
    down.reason = "client-closed";
    Ep__EdgeConnect *events [] = { &up, &down };
    Ep__EdgeConnectBatch batch = EP__EDGE_CONNECT_BATCH__INIT;
    batch.n_events = 2;
    batch.events = events;
    Ep__Frame frame = EP__FRAME__INIT;
    frame.body_case = EP__FRAME__BODY_EDGE_CONNECTS;
    frame.edge_connects = &batch;
    ep_wdtest_send (router, &frame);

    const ep_logged_t *alice = s_await ("connect.edge-to-router", "id-alice", 5000);
    cr_assert_not_null (alice, "no connect.edge-to-router event");
    cr_assert_str_eq (alice->type, "edge-to-router");
    cr_assert_str_eq (alice->src_type, "identity");
    cr_assert_str_eq (alice->src_addr, "203.0.113.7:50000");
    cr_assert_str_eq (alice->dst_type, "router");
    cr_assert_str_eq (alice->dst_id, "r1", "the router is who the certificate says");
    cr_assert (alice->connected);
    cr_assert_eq (alice->event_time, 1795346594123, "the router's timestamp kept as event_time");
    const ep_logged_t *bob = s_await ("connect.edge-to-router", "id-bob", 5000);
    cr_assert_not_null (bob);
    cr_assert_not (bob->connected);
    cr_assert_eq (bob->duration, 1234);
    cr_assert_str_eq (bob->reason, "client-closed");

    chan_client_destroy (&router);
    SSL_CTX_free (ctx);
}

//  True if a TCP connection to address ("host:port") is accepted.
static bool
s_can_connect (const char *address)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons (atoi (strrchr (address, ':') + 1)),
                                .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
    bool ok = connect (fd, (struct sockaddr *) &addr, sizeof addr) == 0;
    close (fd);
    return ok;
}

Test (relay, sigterm_stops_accepting_sends_goodbye_and_exits_0,
      .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    ep_proc_t *watchdog = s_watchdog ();
    char *channel = strdup (ep_proc_endpoint (watchdog, "channel"));
    SSL_CTX *ctx1 = ep_wdtest_router_ctx (s_dir, "r1");
    SSL_CTX *ctx2 = ep_wdtest_router_ctx (s_dir, "r2");
    chan_client_t *r1 = ep_wdtest_join (ep_proc_endpoint (watchdog, "channel"), ctx1, "r1");
    chan_client_t *r2 = ep_wdtest_join (ep_proc_endpoint (watchdog, "channel"), ctx2, "r2");
    cr_assert (s_can_connect (channel));

    cr_assert_eq (ep_proc_signal (watchdog, SIGTERM), 0);
    chan_client_t *routers [] = { r1, r2 };
    for (size_t i = 0; i < EP_COUNT (routers); i++) {
        Ep__Frame *frame = ep_wdtest_expect_frame (routers [i], EP__FRAME__BODY_GOODBYE, 5000);
        cr_assert_not_null (frame, "router %zu was not told goodbye", i + 1);
        cr_assert (frame->goodbye->has_reconnect && frame->goodbye->reconnect,
                   "routers are told to reconnect elsewhere");
        cr_assert_str_eq (frame->goodbye->reason, "shutdown");
        ep__frame__free_unpacked (frame, NULL);
    }
    //  The listener closed before the goodbyes went out.
    cr_assert_not (s_can_connect (channel), "still accepting after SIGTERM");
    //  The routers leave; the process exits 0.
    chan_client_destroy (&r1);
    chan_client_destroy (&r2);
    int status = ep_proc_wait_exit (watchdog, 10000);
    cr_assert_neq (status, -1, "the watchdog did not exit after SIGTERM");
    cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0, "exit status %d", status);
    free (channel);
    SSL_CTX_free (ctx1);
    SSL_CTX_free (ctx2);
}

//  Runs `edgeplane ARGS` against this test's bus and keys; returns its exit
//  status, stdout in *out and stderr in *err.
static int
s_cli (const char *args, char **out, char **err)
{
    char *err_file = zsys_sprintf ("%s/cli.stderr", s_dir);
    char *cmd = zsys_sprintf ("EDGEPLANE_KEYS_DIR='%s' EDGEPLANE_BUS_SUB=%s '%s/edgeplane' %s 2>'%s'",
                              s_keys, ep_proc_connect_endpoint (s_bus, "sub"), EP_BIN_DIR, args, err_file);
    int rc = ep_run (cmd, out);
    zchunk_t *chunk = zchunk_slurp (err_file, 0);
    *err = chunk? zchunk_strdup (chunk): strdup ("");
    zchunk_destroy (&chunk);
    free (cmd);
    free (err_file);
    return rc;
}

//  Publishes the beacon of a watchdog instance that does not answer, until
//  stopped (a thread, while the CLI runs).
typedef struct {
    volatile bool stop;
    pthread_t thread;
} s_ghost_t;

static void *
s_ghost_run (void *arg)
{
    s_ghost_t *ghost = (s_ghost_t *) arg;
    zcert_t *cert = ep_keys_load (s_keys, "watchdog");
    char *bus_key = ep_keys_public_txt (s_keys, "bus");
    ep_publisher_t *pub = ep_publisher_new (ep_proc_connect_endpoint (s_bus, "pub"), cert, bus_key,
                                            "watchdog-ghost", EP_CODEC_DEFAULT_CAP);
    ep_publisher_declare (pub, "presence");
    Ep__PresenceEvent beacon = EP__PRESENCE_EVENT__INIT;
    beacon.instance_id = "watchdog-ghost";
    beacon.api_address = "tcp://127.0.0.1:1";
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_PRESENCE;
    event.presence = &beacon;
    while (!ghost->stop) {
        ep_publisher_send (pub, "presence.beacon", &event);
        ep_publisher_tick (pub);
        zclock_sleep (100);     //  a beacon's period, not synchronisation
    }
    ep_publisher_destroy (&pub);
    free (bus_key);
    zcert_destroy (&cert);
    return NULL;
}

//  The entry of id in a JSON array of connections, or NULL.
static json_t *
s_entry (json_t *array, const char *id)
{
    size_t i;
    json_t *entry;
    json_array_foreach (array, i, entry)
        if (streq (json_string_value (json_object_get (entry, "id")), id))
            return entry;
    return NULL;
}

Test (connections, the_cli_lists_every_instances_connections,
      .init = s_setup, .fini = s_teardown, .timeout = 90)
{
    ep_proc_t *a = s_watchdog ();
    ep_proc_t *b = s_watchdog ();
    SSL_CTX *ctx1 = ep_wdtest_router_ctx (s_dir, "r1");
    SSL_CTX *ctx2 = ep_wdtest_router_ctx (s_dir, "r2");
    chan_client_t *r1 = ep_wdtest_join (ep_proc_endpoint (a, "channel"), ctx1, "r1");
    chan_client_t *r2 = ep_wdtest_join (ep_proc_endpoint (b, "channel"), ctx2, "r2");
    const ep_logged_t *joined1 = s_await ("connect.router-to-ctrl", "r1", 5000);
    const ep_logged_t *joined2 = s_await ("connect.router-to-ctrl", "r2", 5000);
    cr_assert (joined1 && joined2);
    char *instance_a = strdup (joined1->dst_id), *instance_b = strdup (joined2->dst_id);
    cr_assert_str_neq (instance_a, instance_b);
    //  The instances dial each other as ctrl peers: each lists the other.
    cr_assert_not_null (s_await ("connect.ctrl-to-ctrl", instance_b, 15000));
    cr_assert_not_null (s_await ("connect.ctrl-to-ctrl", instance_a, 15000));
    //  One connection to a that never speaks.
    const char *channel = ep_proc_endpoint (a, "channel");
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons (atoi (strrchr (channel, ':') + 1)),
                                .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
    cr_assert_eq (connect (fd, (struct sockaddr *) &addr, sizeof addr), 0);

    //  Everything, as JSON.
    char *out = NULL, *err = NULL;
    int rc = s_cli ("connections --json --discover=5s", &out, &err);
    cr_assert_eq (rc, 0, "exit %d: %s", rc, err);
    json_error_t error;
    json_t *all = json_loads (out, 0, &error);
    cr_assert (json_is_array (all), "not a JSON array (%s): %s", error.text, out);
    cr_assert_eq (json_array_size (all), 5, "two routers, a stray, two ctrl peers: %s", out);
    json_t *e1 = s_entry (all, "r1"), *e2 = s_entry (all, "r2"), *stray = s_entry (all, "");
    cr_assert (e1 && e2 && stray, "%s", out);
    json_t *peer_b = s_entry (all, instance_b), *peer_a = s_entry (all, instance_a);
    cr_assert (peer_a && peer_b, "%s", out);
    cr_assert_str_eq (json_string_value (json_object_get (peer_b, "instance_id")), instance_a);
    cr_assert_str_eq (json_string_value (json_object_get (peer_b, "role")), "ctrl");
    cr_assert_str_eq (json_string_value (json_object_get (peer_b, "state")), "joined");
    cr_assert_str_eq (json_string_value (json_object_get (peer_a, "instance_id")), instance_b);
    cr_assert_str_eq (json_string_value (json_object_get (e1, "instance_id")), instance_a);
    cr_assert_str_eq (json_string_value (json_object_get (e2, "instance_id")), instance_b);
    cr_assert_str_eq (json_string_value (json_object_get (e1, "role")), "router");
    cr_assert_str_eq (json_string_value (json_object_get (e1, "state")), "joined");
    cr_assert (json_is_number (json_object_get (e1, "rtt_ms")));
    //  Routers: their slice lag (model revision minus what they acknowledged).
    cr_assert (json_object_get (e1, "acked_revision") && json_object_get (e1, "slice_lag"),
               "no slice lag for a router");
    cr_assert (json_object_get (e1, "acked_age_ms"));
    cr_assert (json_string_value (json_object_get (e1, "remote_addr")));
    cr_assert_str_eq (json_string_value (json_object_get (stray, "instance_id")), instance_a);
    cr_assert_str_eq (json_string_value (json_object_get (stray, "state")), "accepted");
    json_decref (all);
    free (out);
    free (err);

    //  Joined routers, as a table.
    rc = s_cli ("connections --role router --state joined --discover=5s", &out, &err);
    cr_assert_eq (rc, 0, "exit %d: %s", rc, err);
    cr_assert (strncmp (out, "INSTANCE", 8) == 0, "%s", out);
    const char *columns [] = { "ROLE", "ID", "STATE", "REMOTE", "RTT", "JITTER", "SLICE", "(lag " };
    for (size_t i = 0; i < EP_COUNT (columns); i++)
        cr_assert (strstr (out, columns [i]), "no column %s: %s", columns [i], out);
    size_t lines = 0;
    for (const char *c = out; *c; c++)
        lines += *c == '\n';
    cr_assert_eq (lines, 3, "a header and two routers: %s", out);
    char *row1 = strstr (out, instance_a), *row2 = strstr (out, instance_b);
    cr_assert (row1 && row2, "%s", out);
    cr_assert (strstr (out, " r1 ") && strstr (out, " r2 ") && strstr (out, " joined "), "%s", out);
    cr_assert_null (strstr (out, "accepted"), "filtered by state: %s", out);
    free (out);
    free (err);

    //  An instance that beacons but does not answer: named, exit 1, the
    //  others still printed.
    s_ghost_t ghost = { .stop = false };
    cr_assert_eq (pthread_create (&ghost.thread, NULL, s_ghost_run, &ghost), 0);
    rc = s_cli ("connections --json --discover=3s --timeout=300ms --attempts=1", &out, &err);
    ghost.stop = true;
    pthread_join (ghost.thread, NULL);
    cr_assert_eq (rc, 1, "exit %d: %s", rc, err);
    cr_assert (strstr (err, "watchdog-ghost") && strstr (err, "tcp://127.0.0.1:1") && strstr (err, "did not answer"),
               "%s", err);
    all = json_loads (out, 0, &error);
    cr_assert_eq (json_array_size (all), 5, "%s", out);
    json_decref (all);
    free (out);
    free (err);

    //  No watchdog on that bus: one line that says what to check.
    rc = s_cli ("connections --bus-sub=tcp://127.0.0.1:1 --discover=300ms", &out, &err);
    cr_assert_eq (rc, 1, "exit %d: %s", rc, err);
    cr_assert (strstr (err, "no watchdog beacon") && strchr (err, '\n') == err + strlen (err) - 1, "%s", err);
    free (out);
    free (err);

    close (fd);
    free (instance_a);
    free (instance_b);
    chan_client_destroy (&r1);
    chan_client_destroy (&r2);
    SSL_CTX_free (ctx1);
    SSL_CTX_free (ctx2);
}

//  The api_address of the next beacon whose channel address is channel.
static char *
s_beacon_api (const char *channel)
{
    char *bus_key = ep_keys_public_txt (s_keys, "bus");
    ep_subscriber_t *sub = ep_subscriber_new (ep_proc_connect_endpoint (s_bus, "sub"), s_sub_cert, bus_key,
                                              EP_CODEC_DEFAULT_CAP, NULL, NULL);
    ep_subscriber_subscribe (sub, "presence.beacon");
    char *api = NULL;
    int64_t deadline = ep_mono_ms () + 10000;
    while (!api && ep_mono_ms () < deadline) {
        Ep__Event *event = ep_subscriber_recv (sub, 500, NULL);
        if (event && event->body_case == EP__EVENT__BODY_PRESENCE && event->presence->channel_address
        &&  streq (event->presence->channel_address, channel) && event->presence->api_address)
            api = strdup (event->presence->api_address);
    }
    ep_subscriber_destroy (&sub);
    free (bus_key);
    return api;
}

Test (connections, beacons_name_each_instances_own_api_address,
      .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    //  Both have EDGEPLANE_WATCHDOG_API set, as in compose, where it names
    //  the service (all instances): it is not what a beacon says.
    ep_stack_setenv (s_stack, "EDGEPLANE_WATCHDOG_API", "tcp://127.0.0.1:7031");
    const char *args [] = { "--channel-listen", "127.0.0.1:0", "--listen", "tcp://127.0.0.1:*",
                            "--http-listen", "127.0.0.1:0", NULL, NULL };
    ep_proc_t *plain = ep_proc_start ("edgeplane-watchdog", args, ep_stack_env (s_stack), 15000);
    cr_assert_not_null (plain);
    ep_stack_keep (s_stack, plain);
    args [6] = "--advertise=tcp://192.0.2.10:7031";
    ep_proc_t *natted = ep_proc_start ("edgeplane-watchdog", args, ep_stack_env (s_stack), 15000);
    cr_assert_not_null (natted);
    ep_stack_keep (s_stack, natted);
    ep_stack_unsetenv (s_stack, "EDGEPLANE_WATCHDOG_API");

    char *api = s_beacon_api (ep_proc_endpoint (plain, "channel"));
    cr_assert_not_null (api, "no beacon from the first instance");
    cr_assert_str_eq (api, ep_proc_endpoint (plain, "api"), "the address it bound");
    free (api);
    api = s_beacon_api (ep_proc_endpoint (natted, "channel"));
    cr_assert_not_null (api, "no beacon from the second instance");
    cr_assert_str_eq (api, "tcp://192.0.2.10:7031", "--advertise wins");
    free (api);
}
