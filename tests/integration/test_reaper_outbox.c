/*  test_reaper_outbox.c: no session event the reaper decided is lost by
    its death (issue 21). The real bus, model and reaper on fixed ports.
    With the bus down, sessions are opened and closed (their events
    decided into sessions.db's outbox table, none echoed); the reaper is
    SIGKILLed; the ids the table held are read from sessions.db; then the
    bus and the reaper come back on the same data dir, and a subscriber
    receives every one of those ids (once or twice, never zero times) and
    the table empties. And a full outbox (--outbox-max) refuses an open
    with event-outbox-full, end to end, until the bus takes the backlog.

    The subscriber must be back on the bus before the reaper restarts (as
    in test_watchdog_outbox.c): an event is acknowledged when it passes
    the bus, so one a consumer must see has to find it subscribed. */
#include <criterion/criterion.h>
#include "ep_stack.h"
#include "ep_eventlog.h"
#include "ep_keys.h"
#include "ep_rpc_client.h"
#include "sessions.pb-c.h"
#include <sqlite3.h>

#define WAIT_MS     (30000 * EP_TEST_SLOWDOWN)
#define START_MS    (20000 * EP_TEST_SLOWDOWN)

static ep_stack_t *s_stack;     //  keys, bus, model on fixed ports, environment
static ep_subscriber_t *s_events;       //  every event on the bus
static ep_eventlog_t *s_log;    //  what it delivered
static zcert_t *s_watchdog_cert;    //  we play the watchdog

static void
s_setup (void)
{
    s_stack = ep_stack_new_with ("reapoutbox", EP_STACK_STABLE);
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
}

static void
s_teardown (void)
{
    zcert_destroy (&s_watchdog_cert);
    ep_eventlog_destroy (&s_log);
    s_events = NULL;
    ep_stack_destroy (&s_stack);
}

TestSuite (reaper_outbox, .init = s_setup, .fini = s_teardown);

//  A request to the reaper as the watchdog; the status code, the message
//  into message.
static Ep__Status__Code
s_call (Ep__SessionRequest *request, char *message, size_t size)
{
    return ep_stack_reaper_call (s_stack, s_watchdog_cert, request, message, size, NULL);
}

static Ep__Status__Code
s_open (const char *id, char *message, size_t size)
{
    return ep_stack_session_open (s_stack, s_watchdog_cert, "r1", id, message, size);
}

static void
s_open_ok (const char *id)
{
    char message [512];
    cr_assert_eq (s_open (id, message, sizeof message), EP__STATUS__CODE__OK, "open %s: %s", id, message);
}

static void
s_close_ok (const char *id)
{
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.router_id = "r1";
    request.op_case = EP__SESSION_REQUEST__OP_CLOSE_ID;
    request.close_id = (char *) id;
    char message [512];
    cr_assert_eq (s_call (&request, message, sizeof message), EP__STATUS__CODE__OK, "close %s: %s",
                  id, message);
}

//  ---------------------------------------------------------------------
//  sessions.db's outbox, read as the test's own oracle

typedef struct {
    char ids [64][160];         //  "<owner>:<seq>" of each row
    size_t count;               //  rows
    size_t created;             //  of them on session.created
    size_t closed;              //  of them on session.closed
} s_ids_t;

//  Reads the outbox rows of <data>/sessions.db into ids.
static void
s_read_outbox (s_ids_t *ids)
{
    memset (ids, 0, sizeof *ids);
    char *path = zsys_sprintf ("%s/sessions.db", ep_stack_dir (s_stack));
    sqlite3 *db;
    cr_assert_eq (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK, "%s", path);
    free (path);
    sqlite3_busy_timeout (db, 5000);
    sqlite3_stmt *stmt;
    cr_assert_eq (sqlite3_prepare_v2 (db,
        "SELECT (SELECT value FROM meta WHERE key = 'outbox_owner'), seq, topic FROM outbox ORDER BY seq",
        -1, &stmt, NULL), SQLITE_OK, "%s", sqlite3_errmsg (db));
    while (sqlite3_step (stmt) == SQLITE_ROW) {
        const char *topic = (const char *) sqlite3_column_text (stmt, 2);
        if (ids->count < EP_COUNT (ids->ids))
            snprintf (ids->ids [ids->count++], sizeof ids->ids [0], "%s:%lld",
                      (const char *) sqlite3_column_text (stmt, 0), (long long) sqlite3_column_int64 (stmt, 1));
        ids->created += streq (topic, "session.created");
        ids->closed += streq (topic, "session.closed");
    }
    sqlite3_finalize (stmt);
    sqlite3_close (db);
}

static bool
s_outbox_empty (void *arg)
{
    (void) arg;
    s_ids_t ids;
    s_read_outbox (&ids);
    return ids.count == 0;
}

static bool
s_all_delivered (void *arg)
{
    s_ids_t *ids = (s_ids_t *) arg;
    ep_eventlog_pump (s_log, 100);
    for (size_t i = 0; i < ids->count; i++)
        if (ep_eventlog_count_event_id (s_log, ids->ids [i]) == 0)
            return false;
    return true;
}

//  Model writes until the subscriber delivers one: it is back on the bus.
static void
s_resubscribed (void)
{
    cr_assert_eq (ep_stack_await_resubscribed (s_stack, s_log, WAIT_MS), 0,
                  "the subscriber did not come back to the restarted bus");
}

Test (reaper_outbox, a_sigkilled_reapers_decided_events_reach_subscribers_after_a_restart,
      .timeout = 180 * EP_TEST_SLOWDOWN)
{
    ep_stack_start (s_stack, "reaper", START_MS);
    //  The bus goes: nothing the reaper decides from now on comes back.
    free (ep_stack_kill (s_stack, "bus"));
    const char *ids [] = { "s0", "s1", "s2", "s3", "s4" };
    for (size_t i = 0; i < EP_COUNT (ids); i++)
        s_open_ok (ids [i]);
    s_close_ok ("s0");
    s_close_ok ("s1");

    //  Killed with them queued; sessions.db says what it had decided
    //  (each answer came after the commit that holds its event).
    free (ep_stack_kill (s_stack, "reaper"));
    s_ids_t decided;
    s_read_outbox (&decided);
    cr_assert_geq (decided.created, EP_COUNT (ids), "every open's session.created is a row");
    cr_assert_geq (decided.closed, 2, "every close's session.closed is a row");
    cr_assert_lt (decided.count, EP_COUNT (decided.ids));
    for (size_t i = 0; i < decided.count; i++)
        cr_assert_eq (ep_eventlog_count_event_id (s_log, decided.ids [i]), 0, "%s was not delivered: the bus was down",
                      decided.ids [i]);

    //  The bus, the subscriber back on it, then the reaper on the same data.
    ep_stack_start (s_stack, "bus", START_MS);
    s_resubscribed ();
    ep_proc_t *second = ep_stack_start (s_stack, "reaper", START_MS);
    if (!ep_wait_until (s_all_delivered, &decided, WAIT_MS)) {
        for (size_t i = 0; i < decided.count; i++)
            fprintf (stderr, "%s delivered %zu times\n", decided.ids [i],
                     ep_eventlog_count_event_id (s_log, decided.ids [i]));
        char *text = ep_proc_log (second);
        cr_assert_fail ("every event the killed reaper decided reaches the subscriber: %s", text);
    }
    for (size_t i = 0; i < decided.count; i++) {
        size_t times = ep_eventlog_count_event_id (s_log, decided.ids [i]);
        cr_assert (times == 1 || times == 2, "%s delivered %zu times", decided.ids [i], times);
    }
    cr_assert (ep_wait_until (s_outbox_empty, NULL, WAIT_MS),
               "the rows are deleted once their events came back");
    char *log = ep_proc_log (second);
    cr_assert (strstr (log, "to publish again"), "the new reaper says it resends: %s", log);
    free (log);
}

Test (reaper_outbox, a_full_outbox_refuses_an_open_with_event_outbox_full_until_the_bus_takes_it,
      .timeout = 180 * EP_TEST_SLOWDOWN)
{
    ep_stack_setenv (s_stack, "EDGEPLANE_SESSION_OUTBOX_MAX", "3");
    ep_proc_t *reaper = ep_stack_start (s_stack, "reaper", START_MS);
    free (ep_stack_kill (s_stack, "bus"));
    s_open_ok ("a");
    s_open_ok ("b");
    s_open_ok ("c");
    char message [512];
    cr_assert_eq (s_open ("d", message, sizeof message), EP__STATUS__CODE__UNAVAILABLE,
                  "a fourth open is refused: %s", message);
    cr_assert (strstr (message, "event-outbox-full"), "with its reason: %s", message);
    s_close_ok ("a");           //  closes go on

    //  The bus comes back and takes the backlog: opens are accepted again.
    ep_stack_start (s_stack, "bus", START_MS);
    cr_assert (ep_wait_until (s_outbox_empty, NULL, WAIT_MS), "the bus takes the backlog");
    s_open_ok ("d");
    char *page = ep_http_get (ep_proc_connect_endpoint (reaper, "http"), "/metrics");
    cr_assert_not_null (page);
    cr_assert_geq (ep_metric_value (page, "edgeplane_outbox_refused_total"), 1, "the refusal is counted");
    free (page);
}
