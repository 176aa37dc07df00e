/*  test_reaper_disk.c: a full disk is a state of the reaper, not a crash
    (issue 21). sessions.db on a small tmpfs this test mounts (as root; it
    skips otherwise) and fills: opens and closes are refused UNAVAILABLE
    with a message that says the disk is full and where, /readyz is 503
    with the reason, edgeplane_store_degraded{reason="disk_full"} is 1, a
    service.degraded event goes out; sessions are listed and got, and
    heartbeats answered, meanwhile. Once the filler is removed it all
    comes back by itself (no restart): ready, recovered, opens and closes
    taken. Every acknowledged session is in sessions.db after a restart,
    no refused one is, and every session event decided (before the disk
    filled, and after) reaches a subscriber. */
#include <criterion/criterion.h>
#include "ep_stack.h"
#include "ep_eventlog.h"
#include "ep_keys.h"
#include "ep_rpc_client.h"
#include "ep_session_pages.h"
#include "sessions.pb-c.h"

#define WAIT_MS     (30000 * EP_TEST_SLOWDOWN)
#define START_MS    (20000 * EP_TEST_SLOWDOWN)
#define IDS_MAX     256

static ep_stack_t *s_stack;     //  keys, bus, model, environment
static ep_subscriber_t *s_events;       //  every event on the bus
static ep_eventlog_t *s_log;    //  what it delivered
static zcert_t *s_watchdog_cert;    //  we play the watchdog
static zcert_t *s_operator_cert;    //  and read as an operator
static char *s_disk;            //  the small tmpfs, while mounted

static void
s_setup (void)
{
    s_stack = ep_stack_new ("reapdisk");
    s_events = ep_stack_subscribe (s_stack, "");
    s_log = ep_eventlog_new (s_events);
    ep_stack_create_service (s_stack, "svc");
    ep_stack_router_write (s_stack, EP__MODEL_WRITE__OP__CREATE, "r1", NULL, 0);
    Ep__Identity identity = EP__IDENTITY__INIT;
    identity.id = "i1";
    ep_entity_write_t write;
    ep_stack_model_write (s_stack, ep_entity_write (&write, EP__MODEL_WRITE__OP__CREATE,
                                                    EP__ENTITY__KIND_IDENTITY, &identity));
    s_watchdog_cert = ep_keys_load (ep_stack_keys (s_stack), "watchdog");
    s_operator_cert = ep_keys_load (ep_stack_keys (s_stack), "operator");
}

//  The reaper goes before its disk, the disk before the stack's dir.
static void
s_teardown (void)
{
    if (ep_stack_service (s_stack, "reaper"))
        free (ep_stack_kill (s_stack, "reaper"));
    ep_small_disk_remove (&s_disk);
    zcert_destroy (&s_watchdog_cert);
    zcert_destroy (&s_operator_cert);
    ep_eventlog_destroy (&s_log);
    s_events = NULL;
    ep_stack_destroy (&s_stack);
}

TestSuite (reaper_disk, .init = s_setup, .fini = s_teardown);

//  A request to the reaper as cert (ep_stack_reaper_call).
static Ep__Status__Code
s_call (zcert_t *cert, Ep__SessionRequest *request, char *message, size_t size, size_t *sessions)
{
    return ep_stack_reaper_call (s_stack, cert, request, message, size, sessions);
}

static Ep__Status__Code
s_open (const char *id, char *message, size_t size)
{
    return ep_stack_session_open (s_stack, s_watchdog_cert, "r1", id, message, size);
}

static Ep__Status__Code
s_close (const char *id, char *message, size_t size)
{
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.router_id = "r1";
    request.op_case = EP__SESSION_REQUEST__OP_CLOSE_ID;
    request.close_id = (char *) id;
    return s_call (s_watchdog_cert, &request, message, size, NULL);
}

//  A heartbeat of ids [0, count) from r1.
static Ep__Status__Code
s_heartbeat (char ids [][32], size_t count)
{
    Ep__SessionHeartbeat__Entry entries [IDS_MAX], *pointers [IDS_MAX];
    for (size_t i = 0; i < count; i++) {
        ep__session_heartbeat__entry__init (&entries [i]);
        entries [i].id = ids [i];
        entries [i].has_bytes_rx = true;
        entries [i].bytes_rx = 1000 + i;
        pointers [i] = &entries [i];
    }
    Ep__SessionHeartbeat heartbeat = EP__SESSION_HEARTBEAT__INIT;
    heartbeat.n_entries = count;
    heartbeat.entries = pointers;
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.router_id = "r1";
    request.op_case = EP__SESSION_REQUEST__OP_HEARTBEAT;
    request.heartbeat = &heartbeat;
    return s_call (s_watchdog_cert, &request, NULL, 0, NULL);
}

//  The session's state as the reaper's get shows it, 0 if it has none.
static Ep__SessionState
s_state (const char *id)
{
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.op_case = EP__SESSION_REQUEST__OP_GET_ID;
    request.get_id = (char *) id;
    char *key = ep_keys_public_txt (ep_stack_keys (s_stack), "reaper");
    ep_rpc_client_t *client = ep_rpc_client_new (ep_stack_getenv (s_stack, "EDGEPLANE_REAPER_API"),
                                                 s_operator_cert, key);
    free (key);
    char err [256];
    Ep__SessionReply *reply = (Ep__SessionReply *) ep_rpc_call (
        client, &request, &ep__session_reply__descriptor, 10000 * EP_TEST_SLOWDOWN, 3, err, sizeof err);
    ep_rpc_client_destroy (&client);
    cr_assert_not_null (reply, "%s", err);
    Ep__SessionState state = reply->status->code == EP__STATUS__CODE__OK && reply->n_sessions == 1
                           ? reply->sessions [0]->state: 0;
    cr_assert (reply->status->code == EP__STATUS__CODE__OK || reply->status->code == EP__STATUS__CODE__NOT_FOUND,
               "get %s: %s", id, reply->status->message);
    ep__session_reply__free_unpacked (reply, NULL);
    return state;
}

//  Sessions the list shows in state (every page).
static size_t
s_listed (Ep__SessionState state)
{
    ep_session_pages_t *pages = ep_session_pages_new ("r1", state);
    Ep__SessionRequest *request;
    size_t count = 0;
    while ((request = ep_session_pages_next (pages))) {
        char *key = ep_keys_public_txt (ep_stack_keys (s_stack), "reaper");
        ep_rpc_client_t *client = ep_rpc_client_new (ep_stack_getenv (s_stack, "EDGEPLANE_REAPER_API"),
                                                     s_operator_cert, key);
        free (key);
        char err [256];
        Ep__SessionReply *reply = (Ep__SessionReply *) ep_rpc_call (
            client, request, &ep__session_reply__descriptor, 10000 * EP_TEST_SLOWDOWN, 3, err, sizeof err);
        ep_rpc_client_destroy (&client);
        cr_assert_not_null (reply, "%s", err);
        cr_assert_eq (reply->status->code, EP__STATUS__CODE__OK, "list: %s", reply->status->message);
        ep_session_pages_took (pages, reply);
        ep__session_reply__free_unpacked (reply, NULL);
    }
    count = ep_session_pages_count (pages);
    ep_session_pages_destroy (&pages);
    return count;
}

static double
s_metric (const char *series)
{
    char *page = ep_http_get (ep_proc_connect_endpoint (ep_stack_service (s_stack, "reaper"), "http"),
                              "/metrics");
    cr_assert_not_null (page);
    double value = ep_metric_value (page, series);
    free (page);
    return value;
}

static bool
s_is_ready (void *arg)
{
    (void) arg;
    char *body = ep_readyz (ep_proc_connect_endpoint (ep_stack_service (s_stack, "reaper"), "http"));
    bool ready = streq (body, "ready\n");
    free (body);
    return ready;
}

static bool
s_degraded_event (const ep_logged_t *event, void *state)
{
    json_t *value = json_object_get (event->json, "state");
    json_t *service = json_object_get (event->json, "service");
    return value && streq (json_string_value (value), (const char *) state)
        && service && streq (json_string_value (service), "reaper");
}

static bool
s_session_event (const ep_logged_t *event, void *id)
{
    json_t *value = json_object_get (event->json, "session_id");
    return value && streq (json_string_value (value), (const char *) id);
}

//  The message a refusal carries: the disk is full, and where.
static void
s_assert_disk_message (const char *what, const char *message)
{
    cr_assert (strstr (message, "the disk is full") && strstr (message, s_disk),
               "%s: the message must say the disk is full and where (%s): %s", what, s_disk, message);
}

Test (reaper_disk, a_full_disk_refuses_writes_serves_reads_and_recovers_by_itself,
      .timeout = 240 * EP_TEST_SLOWDOWN)
{
    char why [256];
    s_disk = ep_small_disk_new (ep_stack_dir (s_stack), "disk", "4m", why, sizeof why);
    if (!s_disk)
        cr_skip_test ("%s", why);
    char *filler = zsys_sprintf ("%s/filler", s_disk);
    ep_stack_setenv (s_stack, "EDGEPLANE_REAPER_DB", "%s/sessions.db", s_disk);
    ep_stack_start (s_stack, "reaper", START_MS);
    cr_assert_eq (s_metric ("edgeplane_store_degraded{reason=\"disk_full\"}"), 0, "the gauge exists at 0");

    //  Acknowledged before: opens, and a close.
    static char acked [IDS_MAX][32];
    size_t n_acked = 0;
    char message [1024];
    for (int i = 0; i < 10; i++) {
        snprintf (acked [n_acked], sizeof acked [0], "before-%d", i);
        cr_assert_eq (s_open (acked [n_acked], message, sizeof message), EP__STATUS__CODE__OK,
                      "open: %s", message);
        n_acked++;
    }
    cr_assert_eq (s_close ("before-0", message, sizeof message), EP__STATUS__CODE__OK, "%s", message);

    //  Full. The WAL may still have room for a write or two; every open
    //  answered OK is acknowledged and must survive, the others are the
    //  refused ones.
    cr_assert_eq (ep_small_disk_fill (filler), 0, "filling %s: %s", filler, strerror (errno));
    static char refused [16][32];
    size_t n_refused = 0;
    for (int i = 0; n_refused < 3 && i < 100; i++) {
        char id [32];
        snprintf (id, sizeof id, "during-%d", i);
        Ep__Status__Code code = s_open (id, message, sizeof message);
        if (code == EP__STATUS__CODE__OK) {
            cr_assert_lt (n_acked, IDS_MAX);
            snprintf (acked [n_acked++], sizeof acked [0], "%s", id);
            continue;
        }
        cr_assert_eq (code, EP__STATUS__CODE__UNAVAILABLE, "open %s: %s", id, message);
        s_assert_disk_message ("open", message);
        snprintf (refused [n_refused++], sizeof refused [0], "%s", id);
    }
    cr_assert_eq (n_refused, 3, "opens were refused on a full disk");
    for (size_t i = 0; i < n_refused; i++)
        cr_assert_eq (s_state (refused [i]), 0, "%s was refused but is there", refused [i]);
    cr_assert_eq (s_close ("before-1", message, sizeof message), EP__STATUS__CODE__UNAVAILABLE, "%s", message);
    s_assert_disk_message ("close", message);
    cr_assert_eq (s_state ("before-1"), EP__SESSION_STATE__ACTIVE, "the refused close did not happen");
    char *body = ep_readyz (ep_proc_connect_endpoint (ep_stack_service (s_stack, "reaper"), "http"));
    cr_assert (strstr (body, "not ready") && strstr (body, "disk_full") && strstr (body, s_disk),
               "/readyz must say why: %s", body);
    free (body);
    cr_assert_eq (s_metric ("edgeplane_store_degraded{reason=\"disk_full\"}"), 1);
    cr_assert_not_null (ep_eventlog_await_event (s_log, "service.degraded", s_degraded_event, "degraded", WAIT_MS),
                        "no service.degraded event (state degraded) from the reaper");
    //  Reads, and heartbeats (memory only), are served meanwhile.
    cr_assert_eq (s_listed (EP__SESSION_STATE__ACTIVE), n_acked - 1);
    cr_assert_eq (s_state ("before-3"), EP__SESSION_STATE__ACTIVE);
    cr_assert_eq (s_state ("before-0"), EP__SESSION_STATE__CLOSED);
    cr_assert_eq (s_heartbeat (acked, n_acked), EP__STATUS__CODE__OK, "heartbeats are answered");

    //  Space comes back: no restart, no write needed to notice.
    cr_assert_eq (unlink (filler), 0);
    cr_assert (ep_wait_until (s_is_ready, NULL, WAIT_MS), "/readyz did not turn ready after space was freed");
    cr_assert_eq (s_metric ("edgeplane_store_degraded{reason=\"disk_full\"}"), 0);
    cr_assert_not_null (ep_eventlog_await_event (s_log, "service.degraded", s_degraded_event, "recovered", WAIT_MS),
                        "no service.degraded event (state recovered)");
    for (int i = 0; i < 10; i++) {
        snprintf (acked [n_acked], sizeof acked [0], "after-%d", i);
        cr_assert_eq (s_open (acked [n_acked], message, sizeof message), EP__STATUS__CODE__OK,
                      "open after: %s", message);
        n_acked++;
    }
    cr_assert_eq (s_close ("before-1", message, sizeof message), EP__STATUS__CODE__OK, "%s", message);

    //  Every session event decided reaches the subscriber: none is lost
    //  to the full disk (the outbox rows written before it filled are
    //  handed out, and deleted once it takes writes again).
    for (size_t i = 0; i < n_acked; i++)
        cr_assert_not_null (ep_eventlog_await_event (s_log, "session.created", s_session_event, acked [i], WAIT_MS),
                            "no session.created for %s", acked [i]);
    cr_assert_not_null (ep_eventlog_await_event (s_log, "session.closed", s_session_event, "before-0", WAIT_MS));
    cr_assert_not_null (ep_eventlog_await_event (s_log, "session.closed", s_session_event, "before-1", WAIT_MS));
    for (size_t i = 0; i < n_refused; i++)
        cr_assert_eq (ep_eventlog_await (s_log, "session.created", s_session_event, refused [i], 0, 0), -1,
                      "an event for %s, which was refused", refused [i]);

    //  Every acknowledged write is on disk, and no refused one.
    ep_stack_start (s_stack, "reaper", START_MS);
    for (size_t i = 0; i < n_acked; i++) {
        Ep__SessionState expect = streq (acked [i], "before-0") || streq (acked [i], "before-1")
                                ? EP__SESSION_STATE__CLOSED: EP__SESSION_STATE__ACTIVE;
        cr_assert_eq (s_state (acked [i]), expect, "%s was acknowledged but is not as it was", acked [i]);
    }
    for (size_t i = 0; i < n_refused; i++)
        cr_assert_eq (s_state (refused [i]), 0, "%s was refused but is on disk", refused [i]);
    cr_assert_eq (s_listed (EP__SESSION_STATE__ACTIVE), n_acked - 2);
    zstr_free (&filler);
}
