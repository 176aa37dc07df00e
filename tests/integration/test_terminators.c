/*  test_terminators.c: the real edgeplane-terminators (with bus and model),
    driven by a client that plays the watchdog's part: it speaks for
    routers over the API (certificate "watchdog") and publishes their
    presence on the bus. Roles, establishment from presence, waiting for
    the model revision a request saw, the spin detector failing on a
    misbehaving client and staying quiet on a legitimate un-host/re-host,
    reconciliation with the model, kill -9, and the CLI. */
#include <criterion/criterion.h>
#include "ep_stack.h"
#include "ep_eventlog.h"
#include "ep_codec.h"
#include "ep_keys.h"
#include "ep_publisher.h"
#include "ep_rpc_client.h"
#include "ep_subscriber.h"
#include "model.pb-c.h"
#include "terminators.pb-c.h"
#include <jansson.h>
#include <signal.h>
#include <sys/wait.h>

#define CALL_MS 5000

static ep_stack_t *s_stack;     //  keys, bus, model, environment
static const char *s_dir;       //  its data dir
static const char *s_keys;      //  its keys dir
static ep_proc_t *s_bus;        //  its bus
static ep_proc_t *s_terms;      //  the service under test
static int s_port;              //  its API port (kept across restarts)
static char *s_terms_key;       //  its public key
static zcert_t *s_watchdog_cert;
static zcert_t *s_operator_cert;
static ep_rpc_client_t *s_watchdog;     //  we, as the watchdog
static ep_rpc_client_t *s_operator;     //  we, as an operator
static ep_publisher_t *s_presence;      //  presence.*, as the watchdog
static ep_subscriber_t *s_events;       //  terminator.* and cmd.*
static uint64_t s_epoch;                //  our presence epoch

//  ---------------------------------------------------------------------
//  Events seen on the bus

static ep_eventlog_t *s_log;    //  what s_events delivered

static bool
s_about (const ep_logged_t *event, void *id)
{
    return streq (event->id, (const char *) id);
}

//  Waits for an event on topic about id (NULL: any).
static const ep_logged_t *
s_await (const char *topic, const char *id, int timeout_ms)
{
    return ep_eventlog_await_event (s_log, topic, id? s_about: NULL, (void *) id, timeout_ms);
}

//  ---------------------------------------------------------------------
//  The model

static uint64_t
s_model_write (Ep__ModelWrite *write)
{
    return ep_stack_model_write (s_stack, write);
}

static uint64_t
s_service (const char *id)
{
    return ep_stack_create_service (s_stack, id);
}

//  Creates or updates router id hosting the services listed (NULL-ended).
static uint64_t
s_router (Ep__ModelWrite__Op op, const char *id, const char *const *services)
{
    size_t count = 0;
    while (services && services [count])
        count++;
    return ep_stack_router_write (s_stack, op, id, services, count);
}

static uint64_t
s_delete_router (const char *id)
{
    return ep_stack_delete_router (s_stack, id);
}

//  ---------------------------------------------------------------------
//  The terminator service's API

static Ep__Status__Code
s_code (const Ep__TerminatorReply *reply)
{
    return reply->status && reply->status->has_code? reply->status->code: EP__STATUS__CODE__OK;
}

static const char *
s_message (const Ep__TerminatorReply *reply)
{
    return reply->status && reply->status->message? reply->status->message: "";
}

//  A call that must be answered with code; returns the reply (caller frees).
static Ep__TerminatorReply *
s_expect (ep_rpc_client_t *client, Ep__TerminatorRequest *request, Ep__Status__Code code)
{
    Ep__TerminatorReply *reply = ep_rpc_call (client, request, &ep__terminator_reply__descriptor,
                                              CALL_MS, 1, NULL, 0);
    cr_assert_not_null (reply, "no reply");
    cr_assert_eq (s_code (reply), code, "expected code %d, got %d: %s", code, s_code (reply), s_message (reply));
    return reply;
}

//  Creates id on router for service based on revision; returns the state.
static Ep__TerminatorState
s_create (const char *router, const char *id, const char *service, uint64_t revision, Ep__Status__Code code)
{
    Ep__Terminator t = EP__TERMINATOR__INIT;
    t.id = (char *) id;
    t.service_id = (char *) service;
    Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
    request.router_id = (char *) router;
    request.has_model_revision = true;
    request.model_revision = revision;
    request.op_case = EP__TERMINATOR_REQUEST__OP_CREATE;
    request.create = &t;
    Ep__TerminatorReply *reply = s_expect (s_watchdog, &request, code);
    Ep__TerminatorState state = reply->n_terminators? reply->terminators [0]->state: 0;
    ep__terminator_reply__free_unpacked (reply, NULL);
    return state;
}

static void
s_delete (const char *router, const char *id, uint64_t revision, Ep__Status__Code code)
{
    Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
    request.router_id = (char *) router;
    request.has_model_revision = true;
    request.model_revision = revision;
    request.op_case = EP__TERMINATOR_REQUEST__OP_DELETE_ID;
    request.delete_id = (char *) id;
    ep__terminator_reply__free_unpacked (s_expect (s_watchdog, &request, code), NULL);
}

static Ep__TerminatorState
s_state (const char *id)
{
    Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
    request.op_case = EP__TERMINATOR_REQUEST__OP_GET_ID;
    request.get_id = (char *) id;
    Ep__TerminatorReply *reply = ep_rpc_call (s_operator, &request, &ep__terminator_reply__descriptor,
                                              CALL_MS, 1, NULL, 0);
    cr_assert_not_null (reply);
    Ep__TerminatorState state = s_code (reply) == EP__STATUS__CODE__OK? reply->terminators [0]->state: 0;
    ep__terminator_reply__free_unpacked (reply, NULL);
    return state;
}

typedef struct {
    const char *id;
    Ep__TerminatorState state;
} s_state_wait_t;

static bool
s_has_state (void *arg)
{
    s_state_wait_t *wait = (s_state_wait_t *) arg;
    return s_state (wait->id) == wait->state;
}

static void
s_await_state (const char *id, Ep__TerminatorState state, int timeout_ms)
{
    s_state_wait_t wait = { id, state };
    cr_assert (ep_wait_until (s_has_state, &wait, timeout_ms), "%s did not reach state %d (is %d)",
               id, state, s_state (id));
}

//  The model revision the service has applied.
static uint64_t
s_applied (void)
{
    Ep__TerminatorFilter filter = EP__TERMINATOR_FILTER__INIT;
    filter.has_page_size = true;
    filter.page_size = 1;
    Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
    request.op_case = EP__TERMINATOR_REQUEST__OP_LIST;
    request.list = &filter;
    Ep__TerminatorReply *reply = ep_rpc_call (s_operator, &request, &ep__terminator_reply__descriptor,
                                              CALL_MS, 1, NULL, 0);
    cr_assert_not_null (reply);
    uint64_t revision = reply->model_revision;
    ep__terminator_reply__free_unpacked (reply, NULL);
    return revision;
}

static double
s_metric (const char *series)
{
    char *page = ep_http_get (ep_proc_endpoint (s_terms, "http"), "/metrics");
    cr_assert_not_null (page);
    double value = ep_metric_value (page, series);
    free (page);
    return value;
}

//  ---------------------------------------------------------------------
//  Presence, as the watchdog publishes it

static void
s_presence_send (const char *type, const char *router)
{
    Ep__PresenceEvent body = EP__PRESENCE_EVENT__INIT;
    body.instance_id = "watchdog-itest";
    body.has_instance_epoch = true;
    body.instance_epoch = s_epoch;
    char *routers [] = { (char *) router };
    body.routers = routers;
    body.n_routers = 1;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_PRESENCE;
    event.presence = &body;
    char topic [32];
    snprintf (topic, sizeof topic, "presence.%s", type);
    cr_assert_eq (ep_publisher_send (s_presence, topic, &event), 0);
}

typedef struct {
    const char *type;
    const char *router;
    double expected;
} s_presence_wait_t;

static bool
s_presence_seen (void *arg)
{
    s_presence_wait_t *wait = (s_presence_wait_t *) arg;
    //  Sent again until seen: our first messages may go before the bus
    //  has passed the service's subscription up to us.
    s_presence_send (wait->type, wait->router);
    return s_metric ("edgeplane_terminators_routers_online") == wait->expected;
}

//  Joins or leaves router; waits until the service counts online routers.
static void
s_presence_wait (const char *type, const char *router, double online_after)
{
    s_presence_wait_t wait = { type, router, online_after };
    cr_assert (ep_wait_until (s_presence_seen, &wait, 10000), "presence.%s %s not seen", type, router);
}

//  ---------------------------------------------------------------------

//  Starts the service (on its database at db, or NULL: in the data dir).
static void
s_start_terms_on (const char *db)
{
    char listen [64];
    snprintf (listen, sizeof listen, "tcp://127.0.0.1:%d", s_port);
    const char *args [] = { "--listen", listen, "--http-listen", "127.0.0.1:0",
                            "--establish-timeout", "1s", "--retry-base", "100ms", "--retry-max", "500ms",
                            "--retry-cap", "3", "--delete-grace", "500ms", "--park-timeout", "1500ms",
                            "--settle", "0", "--presence-expiry", "1h",
                            db? "--db": NULL, db, NULL };
    s_terms = ep_proc_start ("edgeplane-terminators", args, ep_stack_env (s_stack), 20000);
    cr_assert_not_null (s_terms, "edgeplane-terminators did not start");
}

static void
s_start_terms (void)
{
    s_start_terms_on (NULL);
}

static void
s_setup (void)
{
    s_stack = ep_stack_new ("terminators-it");
    s_dir = ep_stack_dir (s_stack);
    s_keys = ep_stack_keys (s_stack);
    s_bus = ep_stack_bus (s_stack);
    s_port = ep_test_stable_port ();
    s_start_terms ();

    s_terms_key = ep_keys_public_txt (s_keys, "terminators");
    s_watchdog_cert = ep_keys_load (s_keys, "watchdog");
    s_operator_cert = ep_keys_load (s_keys, "operator");
    s_watchdog = ep_rpc_client_new (ep_proc_connect_endpoint (s_terms, "api"), s_watchdog_cert, s_terms_key);
    s_operator = ep_rpc_client_new (ep_proc_connect_endpoint (s_terms, "api"), s_operator_cert, s_terms_key);
    char *bus_key = ep_keys_public_txt (s_keys, "bus");
    s_presence = ep_publisher_new (ep_proc_connect_endpoint (s_bus, "pub"), s_watchdog_cert, bus_key,
                                   "watchdog-itest", EP_CODEC_DEFAULT_CAP);
    s_events = ep_subscriber_new (ep_proc_connect_endpoint (s_bus, "sub"), s_operator_cert, bus_key,
                                  EP_CODEC_DEFAULT_CAP, NULL, NULL);
    free (bus_key);
    ep_subscriber_subscribe (s_events, "terminator.");
    ep_subscriber_subscribe (s_events, "cmd.");
    cr_assert_eq (ep_subscriber_wait_stream (s_events, "terminator", 10000), 0,
                  "the service's terminator stream is not heard");
    s_log = ep_eventlog_new (s_events);
    s_epoch = 1;
}

static void
s_teardown (void)
{
    ep_eventlog_destroy (&s_log);
    ep_subscriber_destroy (&s_events);
    ep_publisher_destroy (&s_presence);
    ep_rpc_client_destroy (&s_watchdog);
    ep_rpc_client_destroy (&s_operator);
    zcert_destroy (&s_watchdog_cert);
    zcert_destroy (&s_operator_cert);
    zstr_free (&s_terms_key);
    ep_proc_destroy (&s_terms);
    ep_stack_destroy (&s_stack);
}

TestSuite (terminators_it, .init = s_setup, .fini = s_teardown, .timeout = 90);

Test (terminators_it, only_the_watchdog_speaks_for_routers_and_operators_read)
{
    s_service ("svc1");
    uint64_t revision = s_router (EP__MODEL_WRITE__OP__CREATE, "r1", (const char *[]) { "svc1", NULL });
    Ep__Terminator t = EP__TERMINATOR__INIT;
    t.id = "t1";
    t.service_id = "svc1";
    Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
    request.router_id = "r1";
    request.has_model_revision = true;
    request.model_revision = revision;
    request.op_case = EP__TERMINATOR_REQUEST__OP_CREATE;
    request.create = &t;
    //  An operator, and another service, may not speak for a router.
    ep__terminator_reply__free_unpacked (s_expect (s_operator, &request, EP__STATUS__CODE__PERMISSION_DENIED), NULL);
    zcert_t *model_cert = ep_keys_load (s_keys, "model");
    ep_rpc_client_t *other = ep_rpc_client_new (ep_proc_connect_endpoint (s_terms, "api"), model_cert, s_terms_key);
    Ep__TerminatorReply *reply = s_expect (other, &request, EP__STATUS__CODE__PERMISSION_DENIED);
    cr_assert (strstr (s_message (reply), "watchdog"), "%s", s_message (reply));
    ep__terminator_reply__free_unpacked (reply, NULL);
    ep_rpc_client_destroy (&other);
    zcert_destroy (&model_cert);
    //  Subscribers may not even read.
    zcert_t *sub_cert = ep_keys_load (s_keys, "subscriber");
    ep_rpc_client_t *subscriber = ep_rpc_client_new (ep_proc_connect_endpoint (s_terms, "api"), sub_cert, s_terms_key);
    Ep__TerminatorRequest get = EP__TERMINATOR_REQUEST__INIT;
    get.op_case = EP__TERMINATOR_REQUEST__OP_GET_ID;
    get.get_id = "t1";
    ep__terminator_reply__free_unpacked (s_expect (subscriber, &get, EP__STATUS__CODE__PERMISSION_DENIED), NULL);
    ep_rpc_client_destroy (&subscriber);
    zcert_destroy (&sub_cert);
    //  The watchdog may; the operator reads it.
    ep__terminator_reply__free_unpacked (s_expect (s_watchdog, &request, EP__STATUS__CODE__OK), NULL);
    reply = s_expect (s_operator, &get, EP__STATUS__CODE__OK);
    cr_assert_str_eq (reply->terminators [0]->router_id, "r1");
    ep__terminator_reply__free_unpacked (reply, NULL);
    //  Garbage gets an answer, not silence.
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    zcert_apply (s_watchdog_cert, dealer);
    zsock_set_curve_serverkey (dealer, s_terms_key);
    cr_assert_eq (zsock_connect (dealer, "%s", ep_proc_connect_endpoint (s_terms, "api")), 0);
    zframe_t *junk = zframe_new ("\x0a\x03" "abc" "\xff\xff", 7);
    zframe_send (&junk, dealer, 0);
    zpoller_t *poller = zpoller_new (dealer, NULL);
    cr_assert_not_null (zpoller_wait (poller, CALL_MS), "malformed input must get a reply");
    zpoller_destroy (&poller);
    zsock_destroy (&dealer);
}

Test (terminators_it, a_terminator_is_established_once_its_router_is_online)
{
    s_service ("svc1");
    uint64_t revision = s_router (EP__MODEL_WRITE__OP__CREATE, "r1", (const char *[]) { "svc1", NULL });
    cr_assert_eq (s_create ("r1", "t1", "svc1", revision, EP__STATUS__CODE__OK), EP__TERMINATOR_STATE__ESTABLISHING);
    cr_assert_not_null (s_await ("terminator.created", "t1", 5000));
    s_presence_wait ("join", "r1", 1);
    s_await_state ("t1", EP__TERMINATOR_STATE__ESTABLISHED, 5000);
    const ep_logged_t *established = s_await ("terminator.established", "t1", 5000);
    cr_assert_not_null (established);
    cr_assert (established->online);
    cr_assert_eq (established->total, 1);
    cr_assert_eq (established->usable_default, 1);
    //  It stays established after a restart of the service, and a new
    //  create of it is idempotent.
    cr_assert_eq (s_create ("r1", "t1", "svc1", revision, EP__STATUS__CODE__OK), EP__TERMINATOR_STATE__ESTABLISHED);
    cr_assert_eq (s_metric ("edgeplane_terminators{state=\"established\"}"), 1);
}

Test (terminators_it, a_request_waits_for_the_model_revision_it_was_based_on)
{
    s_service ("svc1");
    uint64_t revision = s_router (EP__MODEL_WRITE__OP__CREATE, "r1", (const char *[]) { "svc1", NULL });
    //  The router saw revision + 1 (r2's creation) before this service did.
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    zcert_apply (s_watchdog_cert, dealer);
    zsock_set_curve_serverkey (dealer, s_terms_key);
    cr_assert_eq (zsock_connect (dealer, "%s", ep_proc_connect_endpoint (s_terms, "api")), 0);
    Ep__Terminator t = EP__TERMINATOR__INIT;
    t.id = "t2";
    t.service_id = "svc1";
    Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
    request.request_id = "early";
    request.router_id = "r2";
    request.has_model_revision = true;
    request.model_revision = revision + 1;
    request.op_case = EP__TERMINATOR_REQUEST__OP_CREATE;
    request.create = &t;
    char err [256];
    zframe_t *frame = ep_codec_pack (&request.base, EP_CODEC_DEFAULT_CAP, err, sizeof err);
    zframe_send (&frame, dealer, 0);
    zpoller_t *poller = zpoller_new (dealer, NULL);
    cr_assert_null (zpoller_wait (poller, 500), "the service must wait for revision %llu, not answer",
                    (unsigned long long) revision + 1);
    cr_assert_eq (s_metric ("edgeplane_terminators_parked"), 1);
    //  The revision arrives: r2 hosts svc1.
    cr_assert_eq (s_router (EP__MODEL_WRITE__OP__CREATE, "r2", (const char *[]) { "svc1", NULL }), revision + 1);
    cr_assert_not_null (zpoller_wait (poller, CALL_MS), "no reply once the revision arrived");
    frame = zframe_recv (dealer);
    Ep__TerminatorReply *reply = (Ep__TerminatorReply *) ep_codec_unpack_frame (
        &ep__terminator_reply__descriptor, frame, EP_CODEC_DEFAULT_CAP, "terminators", err, sizeof err);
    zframe_destroy (&frame);
    cr_assert_not_null (reply);
    cr_assert_eq (s_code (reply), EP__STATUS__CODE__OK, "%s", s_message (reply));
    cr_assert_str_eq (reply->request_id, "early");
    cr_assert_geq (reply->model_revision, revision + 1);
    ep__terminator_reply__free_unpacked (reply, NULL);
    zpoller_destroy (&poller);
    zsock_destroy (&dealer);
    //  A revision that does not come: told to retry after the park timeout.
    t.id = "t3";
    request.request_id = NULL;
    request.router_id = "r1";
    request.model_revision = revision + 1000;
    reply = ep_rpc_call (s_watchdog, &request, &ep__terminator_reply__descriptor, CALL_MS, 1, NULL, 0);
    cr_assert_not_null (reply);
    cr_assert_eq (s_code (reply), EP__STATUS__CODE__UNAVAILABLE, "%s", s_message (reply));
    cr_assert (reply->has_retriable && reply->retriable);
    cr_assert (strstr (s_message (reply), "retry"), "%s", s_message (reply));
    ep__terminator_reply__free_unpacked (reply, NULL);
    cr_assert_eq (s_metric ("edgeplane_terminators_park_timeouts_total"), 1);
}

Test (terminators_it, a_misbehaving_client_that_spins_raises_the_counter_and_the_event)
{
    s_service ("svc1");
    uint64_t revision = s_router (EP__MODEL_WRITE__OP__CREATE, "r1", (const char *[]) { "svc1", NULL });
    s_presence_wait ("join", "r1", 1);
    cr_assert_eq (s_metric ("edgeplane_terminator_spins_total"), 0);
    s_create ("r1", "spinner", "svc1", revision, EP__STATUS__CODE__OK);
    s_delete ("r1", "spinner", revision, EP__STATUS__CODE__OK);
    //  Nothing changed in the model for (r1, svc1), and it creates again.
    s_create ("r1", "spinner", "svc1", revision, EP__STATUS__CODE__FAILED_PRECONDITION);
    cr_assert_not_null (s_await ("terminator.spin", "spinner", 5000), "no terminator.spin event");
    cr_assert_eq (s_metric ("edgeplane_terminator_spins_total"), 1);
    //  The late create did not bring it back.
    cr_assert_eq (s_state ("spinner"), EP__TERMINATOR_STATE__DELETED);
}

Test (terminators_it, a_legitimate_unhost_and_rehost_through_the_model_is_no_spin)
{
    s_service ("svc1");
    s_service ("svc2");
    uint64_t revision = s_router (EP__MODEL_WRITE__OP__CREATE, "r1", (const char *[]) { "svc1", "svc2", NULL });
    s_presence_wait ("join", "r1", 1);
    //  The router keeps its id for (r1, svc1) forever, as real routers do.
    cr_assert_eq (s_create ("r1", "stable", "svc1", revision, EP__STATUS__CODE__OK), EP__TERMINATOR_STATE__ESTABLISHED);
    for (int cycle = 0; cycle < 3; cycle++) {
        uint64_t unhosted = s_router (EP__MODEL_WRITE__OP__UPDATE, "r1", (const char *[]) { "svc2", NULL });
        s_await_state ("stable", EP__TERMINATOR_STATE__DELETING, 5000);
        s_delete ("r1", "stable", unhosted, EP__STATUS__CODE__OK);
        cr_assert_eq (s_state ("stable"), EP__TERMINATOR_STATE__DELETED);
        uint64_t rehosted = s_router (EP__MODEL_WRITE__OP__UPDATE, "r1", (const char *[]) { "svc1", "svc2", NULL });
        cr_assert_eq (s_create ("r1", "stable", "svc1", rehosted, EP__STATUS__CODE__OK), EP__TERMINATOR_STATE__ESTABLISHED);
    }
    cr_assert_eq (s_metric ("edgeplane_terminator_spins_total"), 0);
    ep_eventlog_pump (s_log, 200);
    cr_assert_eq (ep_eventlog_count (s_log, "terminator.spin"), 0);
    cr_assert_geq (ep_eventlog_count (s_log, "terminator.deleted"), 3);
}

Test (terminators_it, deleting_or_disabling_a_router_in_the_model_deletes_its_terminators)
{
    s_service ("svc1");
    s_service ("svc2");
    s_router (EP__MODEL_WRITE__OP__CREATE, "r1", (const char *[]) { "svc1", "svc2", NULL });
    uint64_t revision = s_router (EP__MODEL_WRITE__OP__CREATE, "r2", (const char *[]) { "svc1", NULL });
    s_presence_wait ("join", "r1", 1);
    s_presence_wait ("join", "r2", 2);
    s_create ("r1", "a", "svc1", revision, EP__STATUS__CODE__OK);
    s_create ("r1", "b", "svc2", revision, EP__STATUS__CODE__OK);
    s_create ("r2", "c", "svc1", revision, EP__STATUS__CODE__OK);
    s_delete_router ("r1");
    s_await_state ("a", EP__TERMINATOR_STATE__DELETED, 5000);
    s_await_state ("b", EP__TERMINATOR_STATE__DELETED, 5000);
    cr_assert_eq (s_state ("c"), EP__TERMINATOR_STATE__ESTABLISHED);
    Ep__Router router = EP__ROUTER__INIT;
    router.id = "r2";
    router.has_enabled = true;
    router.enabled = false;
    Ep__Entity entity = EP__ENTITY__INIT;
    entity.kind_case = EP__ENTITY__KIND_ROUTER;
    entity.router = &router;
    Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
    write.has_op = true;
    write.op = EP__MODEL_WRITE__OP__UPDATE;
    write.entity = &entity;
    s_model_write (&write);
    s_await_state ("c", EP__TERMINATOR_STATE__DELETED, 5000);
    const ep_logged_t *deleted = NULL;
    for (int i = 0; i < 3; i++)
        cr_assert_not_null (deleted = s_await ("terminator.deleted", (const char *[]) { "a", "b", "c" } [i], 5000));
    cr_assert_eq (s_metric ("edgeplane_terminators{state=\"established\"}"), 0);
}

Test (terminators_it, kill_9_loses_nothing_that_was_acknowledged)
{
    s_service ("svc1");
    uint64_t revision = s_router (EP__MODEL_WRITE__OP__CREATE, "r1", (const char *[]) { "svc1", NULL });
    s_presence_wait ("join", "r1", 1);
    char id [32];
    for (int i = 0; i < 50; i++) {
        snprintf (id, sizeof id, "k%d", i);
        s_create ("r1", id, "svc1", revision, EP__STATUS__CODE__OK);
    }
    s_delete ("r1", "early", revision, EP__STATUS__CODE__OK);     //  a tombstone
    cr_assert_eq (ep_proc_signal (s_terms, SIGKILL), 0);
    int status = ep_proc_wait_exit (s_terms, 10000);
    cr_assert (status != -1 && WIFSIGNALED (status));
    ep_proc_destroy (&s_terms);
    s_start_terms ();
    for (int i = 0; i < 50; i++) {
        snprintf (id, sizeof id, "k%d", i);
        Ep__TerminatorState state = s_state (id);
        cr_assert (state == EP__TERMINATOR_STATE__ESTABLISHED || state == EP__TERMINATOR_STATE__ESTABLISHING,
                   "%s is %d after the restart", id, state);
    }
    s_create ("r1", "early", "svc1", revision, EP__STATUS__CODE__FAILED_PRECONDITION);
    //  Presence comes back with the watchdog's next join or beacon.
    s_epoch++;
    s_presence_wait ("join", "r1", 1);
    s_await_state ("k0", EP__TERMINATOR_STATE__ESTABLISHED, 5000);
    cr_assert_geq (s_applied (), revision);
}

Test (terminators_it, the_cli_lists_and_gets_terminators)
{
    s_service ("svc1");
    s_service ("svc2");
    s_router (EP__MODEL_WRITE__OP__CREATE, "r1", (const char *[]) { "svc1", "svc2", NULL });
    uint64_t revision = s_router (EP__MODEL_WRITE__OP__CREATE, "r2", (const char *[]) { "svc1", NULL });
    s_create ("r1", "one", "svc1", revision, EP__STATUS__CODE__OK);
    s_create ("r1", "two", "svc2", revision, EP__STATUS__CODE__OK);
    s_create ("r2", "three", "svc1", revision, EP__STATUS__CODE__OK);
    const char *api = ep_proc_connect_endpoint (s_terms, "api");
    char *cmd = zsys_sprintf ("EDGEPLANE_DATA_DIR='%s' '%s/edgeplane' terminator list --router r1 --json "
                              "--terminators-api '%s'", s_dir, EP_BIN_DIR, api);
    char *out = NULL;
    cr_assert_eq (ep_run (cmd, &out), 0, "%s", out);
    json_error_t error;
    json_t *list = json_loads (out, 0, &error);
    cr_assert_not_null (list, "not JSON: %s", out);
    cr_assert_eq (json_array_size (list), 2);
    cr_assert_str_eq (json_string_value (json_object_get (json_array_get (list, 0), "id")), "one");
    cr_assert_str_eq (json_string_value (json_object_get (json_array_get (list, 0), "state")), "establishing");
    json_decref (list);
    zstr_free (&out);
    free (cmd);
    cmd = zsys_sprintf ("EDGEPLANE_DATA_DIR='%s' '%s/edgeplane' terminator list --service svc1 --state establishing "
                        "--terminators-api '%s'", s_dir, EP_BIN_DIR, api);
    cr_assert_eq (ep_run (cmd, &out), 0, "%s", out);
    cr_assert (strstr (out, "ID") && strstr (out, "one") && strstr (out, "three") && !strstr (out, "two"), "%s", out);
    zstr_free (&out);
    free (cmd);
    cmd = zsys_sprintf ("EDGEPLANE_DATA_DIR='%s' '%s/edgeplane' terminator get three --json "
                        "--terminators-api '%s'", s_dir, EP_BIN_DIR, api);
    cr_assert_eq (ep_run (cmd, &out), 0, "%s", out);
    json_t *one = json_loads (out, 0, &error);
    cr_assert_str_eq (json_string_value (json_object_get (one, "router_id")), "r2");
    json_decref (one);
    zstr_free (&out);
    free (cmd);
    cmd = zsys_sprintf ("EDGEPLANE_DATA_DIR='%s' '%s/edgeplane' terminator get nope --terminators-api '%s' 2>&1",
                        s_dir, EP_BIN_DIR, api);
    cr_assert_eq (ep_run (cmd, &out), 1);
    cr_assert (strstr (out, "NOT_FOUND"), "%s", out);
    zstr_free (&out);
    free (cmd);
}

Test (terminators_it, a_router_lacking_a_terminator_is_asked_to_validate_and_its_ack_is_counted)
{
    s_service ("svc1");
    uint64_t revision = s_router (EP__MODEL_WRITE__OP__CREATE, "r1", (const char *[]) { "svc1", NULL });
    s_presence_wait ("join", "r1", 1);
    s_create ("r1", "t1", "svc1", revision, EP__STATUS__CODE__OK);
    //  The router's list is empty: it lacks t1.
    Ep__TerminatorValidate validate = EP__TERMINATOR_VALIDATE__INIT;
    Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
    request.router_id = "r1";
    request.has_model_revision = true;
    request.model_revision = revision;
    request.op_case = EP__TERMINATOR_REQUEST__OP_VALIDATE;
    request.validate = &validate;
    Ep__TerminatorReply *reply = s_expect (s_watchdog, &request, EP__STATUS__CODE__OK);
    cr_assert_eq (reply->n_to_create, 1);
    cr_assert_str_eq (reply->to_create [0]->id, "t1");
    ep__terminator_reply__free_unpacked (reply, NULL);
    cr_assert_eq (s_state ("t1"), EP__TERMINATOR_STATE__FAILED);
    cr_assert_not_null (s_await ("terminator.failed", "t1", 5000));
    //  A retry asks the router, through the watchdog holding it, to validate.
    cr_assert_not_null (s_await ("cmd.r1.", NULL, 5000), "no ValidateTerminators command for r1");
    Ep__CommandAck ack = EP__COMMAND_ACK__INIT;
    ack.command_id = "some-command";
    Ep__TerminatorRequest acked = EP__TERMINATOR_REQUEST__INIT;
    acked.router_id = "r1";
    acked.op_case = EP__TERMINATOR_REQUEST__OP_ACK;
    acked.ack = &ack;
    ep__terminator_reply__free_unpacked (s_expect (s_watchdog, &acked, EP__STATUS__CODE__OK), NULL);
    cr_assert_eq (s_metric ("edgeplane_terminator_commands_total{result=\"acked\"}"), 1);
    cr_assert_geq (s_metric ("edgeplane_terminator_commands_total{result=\"sent\"}"), 1);
    //  The router creates it again.
    cr_assert_eq (s_create ("r1", "t1", "svc1", revision, EP__STATUS__CODE__OK), EP__TERMINATOR_STATE__ESTABLISHED);
}

//  ---------------------------------------------------------------------
//  A full disk is a state, not a crash (issue 21): terminators.db on a
//  small tmpfs this test mounts and fills.

static bool
s_is_ready (void *arg)
{
    (void) arg;
    char *body = ep_readyz (ep_proc_endpoint (s_terms, "http"));
    bool ready = streq (body, "ready\n");
    free (body);
    return ready;
}

static bool
s_in_state (const ep_logged_t *event, void *state)
{
    json_t *value = json_object_get (event->json, "state");
    return value && streq (json_string_value (value), (const char *) state);
}

Test (terminators_it, a_full_disk_refuses_writes_serves_reads_and_recovers_by_itself)
{
    char why [256];
    char *disk = ep_small_disk_new (s_dir, "disk", "4m", why, sizeof why);
    if (!disk)
        cr_skip_test ("%s", why);
    char *db = zsys_sprintf ("%s/terminators.db", disk);
    char *filler = zsys_sprintf ("%s/filler", disk);
    ep_proc_destroy (&s_terms);
    s_start_terms_on (db);
    ep_subscriber_subscribe (s_events, "service.degraded");
    ep_subscriber_subscribe (s_events, "service.heartbeat");
    cr_assert_eq (ep_subscriber_wait_stream (s_events, "service", 10000), 0,
                  "the service's service stream is not heard");
    cr_assert_eq (s_metric ("edgeplane_store_degraded{reason=\"disk_full\"}"), 0, "the gauge exists at 0");

    s_service ("svc1");
    uint64_t revision = s_router (EP__MODEL_WRITE__OP__CREATE, "r1", (const char *[]) { "svc1", NULL });
    enum { BEFORE = 10, AFTER = 10 };
    char id [32];
    for (int i = 0; i < BEFORE; i++) {
        snprintf (id, sizeof id, "before-%d", i);
        s_create ("r1", id, "svc1", revision, EP__STATUS__CODE__OK);
    }

    //  Full: writes refused with the reason and the place, and none of
    //  them stays in memory either (the core is not ahead of the disk).
    cr_assert_eq (ep_small_disk_fill (filler), 0, "filling %s: %s", filler, strerror (errno));
    for (int i = 0; i < 3; i++) {
        snprintf (id, sizeof id, "refused-%d", i);
        Ep__Terminator t = EP__TERMINATOR__INIT;
        t.id = id;
        t.service_id = "svc1";
        Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
        request.router_id = "r1";
        request.has_model_revision = true;
        request.model_revision = revision;
        request.op_case = EP__TERMINATOR_REQUEST__OP_CREATE;
        request.create = &t;
        Ep__TerminatorReply *reply = s_expect (s_watchdog, &request, EP__STATUS__CODE__UNAVAILABLE);
        cr_assert (strstr (s_message (reply), "disk is full") && strstr (s_message (reply), disk),
                   "the message must say the disk is full and where: %s", s_message (reply));
        cr_assert (reply->has_retriable && reply->retriable);
        ep__terminator_reply__free_unpacked (reply, NULL);
        cr_assert_eq (s_state (id), 0, "%s was refused but is in memory", id);
    }
    char *body = ep_readyz (ep_proc_endpoint (s_terms, "http"));
    cr_assert (strstr (body, "not ready") && strstr (body, "disk_full") && strstr (body, disk),
               "/readyz must say why: %s", body);
    free (body);
    cr_assert_eq (s_metric ("edgeplane_store_degraded{reason=\"disk_full\"}"), 1);
    cr_assert_not_null (ep_eventlog_await_event (s_log, "service.degraded", s_in_state, "degraded", 5000),
                        "no service.degraded event (state degraded)");
    //  Reads are served meanwhile, from memory (get) and from the database (list).
    cr_assert_neq (s_state ("before-3"), 0);
    cr_assert_geq (s_applied (), revision);

    //  Space comes back: no restart, no write needed to notice.
    cr_assert_eq (unlink (filler), 0);
    cr_assert (ep_wait_until (s_is_ready, NULL, 10000 * EP_TEST_SLOWDOWN),
               "/readyz did not turn ready after space was freed");
    cr_assert_eq (s_metric ("edgeplane_store_degraded{reason=\"disk_full\"}"), 0);
    cr_assert_not_null (ep_eventlog_await_event (s_log, "service.degraded", s_in_state, "recovered", 5000),
                        "no service.degraded event (state recovered)");
    for (int i = 0; i < AFTER; i++) {
        snprintf (id, sizeof id, "after-%d", i);
        s_create ("r1", id, "svc1", revision, EP__STATUS__CODE__OK);
    }

    //  Every acknowledged write survives a restart from that disk, and no refused one.
    ep_proc_destroy (&s_terms);
    s_start_terms_on (db);
    for (int i = 0; i < BEFORE + AFTER; i++) {
        snprintf (id, sizeof id, i < BEFORE? "before-%d": "after-%d", i < BEFORE? i: i - BEFORE);
        cr_assert_neq (s_state (id), 0, "%s was acknowledged but is lost", id);
    }
    for (int i = 0; i < 3; i++) {
        snprintf (id, sizeof id, "refused-%d", i);
        cr_assert_eq (s_state (id), 0, "%s was refused but is on disk", id);
    }
    ep_proc_destroy (&s_terms);
    ep_small_disk_remove (&disk);
    zstr_free (&filler);
    zstr_free (&db);
}
