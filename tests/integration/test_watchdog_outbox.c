/*  test_watchdog_outbox.c: no event a watchdog decided on is lost by its
    death (issue 21). The real bus, model and watchdog on fixed ports. With
    the bus down, routers join and leave (connect events decided into the
    watchdog's outbox, none acknowledged); the watchdog is SIGKILLed; the
    ids its outbox file held are read from the file; then the bus and a
    new watchdog (a new instance id: none is fixed) come back on the same
    data dir, and a subscriber receives every one of those ids (once or
    twice, never zero times) and the dead instance's file is removed. And a
    full outbox (--outbox-max) refuses a join with event-outbox-full, end to
    end, until the bus takes the backlog. */
#include <criterion/criterion.h>
#include "ep_stack.h"
#include "ep_eventlog.h"
#include "ep_outbox.h"
#include "chan_client.h"
#include <dirent.h>
#include <signal.h>

#define ROUTERS     4           //  r0..r3
#define WAIT_MS     (30000 * EP_TEST_SLOWDOWN)

static ep_stack_t *s_stack;     //  keys, bus, model on fixed ports, environment
static ep_subscriber_t *s_events;       //  every event on the bus
static ep_eventlog_t *s_log;    //  what it delivered
static SSL_CTX *s_ctx [ROUTERS];        //  each router's TLS client

static void
s_setup (void)
{
    s_stack = ep_stack_new_with ("wdoutbox", EP_STACK_STABLE);
    //  Nothing listens there: relays are not under test here.
    ep_stack_setenv (s_stack, "EDGEPLANE_TERMINATORS_API", "tcp://127.0.0.1:1");
    ep_stack_setenv (s_stack, "EDGEPLANE_REAPER_API", "tcp://127.0.0.1:1");
    s_events = ep_stack_subscribe (s_stack, "");
    s_log = ep_eventlog_new (s_events);
    ep_stack_create_service (s_stack, "svc1");
    const char *hosted [] = { "svc1" };
    for (int i = 0; i < ROUTERS; i++) {
        char id [16];
        snprintf (id, sizeof id, "r%d", i);
        ep_stack_router_write (s_stack, EP__MODEL_WRITE__OP__CREATE, id, hosted, 1);
        s_ctx [i] = ep_stack_tls_client (s_stack, "router", id);
    }
}

static void
s_teardown (void)
{
    for (int i = 0; i < ROUTERS; i++)
        SSL_CTX_free (s_ctx [i]);
    ep_eventlog_destroy (&s_log);
    s_events = NULL;
    ep_stack_destroy (&s_stack);
}

TestSuite (watchdog_outbox, .init = s_setup, .fini = s_teardown);

//  Router number i says Hello to watchdog; returns the client and the
//  result's reason ("" when welcomed) in reason.
static chan_client_t *
s_hello (ep_proc_t *watchdog, int i, char *reason, size_t size)
{
    char err [512], id [16];
    snprintf (id, sizeof id, "r%d", i);
    chan_client_t *client = chan_client_new (ep_proc_endpoint (watchdog, "channel"), s_ctx [i],
                                             5000 * EP_TEST_SLOWDOWN, err, sizeof err);
    cr_assert_not_null (client, "%s", err);
    Ep__HelloResult *result = chan_client_hello (client, 1, EP__ROLE__ROLE_ROUTER, id, 5000 * EP_TEST_SLOWDOWN);
    cr_assert_not_null (result, "%s: no HelloResult: %s", id, chan_client_close_reason (client));
    snprintf (reason, size, "%s", result->reason? result->reason: "");
    if (!*reason)
        cr_assert_eq (result->status->code, EP__STATUS__CODE__OK, "%s: %s", id, result->status->message);
    ep__hello_result__free_unpacked (result, NULL);
    return client;
}

static chan_client_t *
s_join (ep_proc_t *watchdog, int i)
{
    char reason [64];
    chan_client_t *client = s_hello (watchdog, i, reason, sizeof reason);
    cr_assert_str_empty (reason, "r%d refused: %s", i, reason);
    return client;
}

//  ---------------------------------------------------------------------
//  The outbox file, read as the test's own oracle (ep_outbox_scan)

typedef struct {
    char ids [64][160];         //  "<owner>:<seq>" of each record
    size_t count;               //  records
    size_t connects;            //  of them on connect.*
    const char *owner;          //  the file's source id
} s_ids_t;

static void
s_collect (void *arg, const ep_outbox_record_t *record)
{
    s_ids_t *ids = (s_ids_t *) arg;
    if (ids->count < EP_COUNT (ids->ids))
        snprintf (ids->ids [ids->count++], sizeof ids->ids [0], "%s:%llu", ids->owner,
                  (unsigned long long) record->seq);
    if (strncmp (record->topic, "connect.", 8) == 0)
        ids->connects++;
}

//  Reads the records of <dir>/<owner>.outbox into ids (none if it is gone).
static void
s_read_outbox (const char *dir, const char *owner, s_ids_t *ids)
{
    memset (ids, 0, sizeof *ids);
    ids->owner = owner;
    char *path = zsys_sprintf ("%s/%s.outbox", dir, owner);
    FILE *file = fopen (path, "rb");
    free (path);
    if (!file)
        return;
    static uint8_t data [1 << 20];
    size_t size = fread (data, 1, sizeof data, file);
    fclose (file);
    if (size > EP_OUTBOX_HEADER)
        ep_outbox_scan (data + EP_OUTBOX_HEADER, size - EP_OUTBOX_HEADER, s_collect, ids);
}

//  The one outbox file in dir: its owner (the name before .outbox) into owner.
static void
s_outbox_owner (const char *dir, char *owner, size_t size)
{
    DIR *listing = opendir (dir);
    cr_assert_not_null (listing);
    struct dirent *entry;
    int found = 0;
    while ((entry = readdir (listing))) {
        size_t len = strlen (entry->d_name);
        if (len > 7 && streq (entry->d_name + len - 7, ".outbox")) {
            snprintf (owner, size, "%.*s", (int) (len - 7), entry->d_name);
            found++;
        }
    }
    closedir (listing);
    cr_assert_eq (found, 1, "one watchdog, one outbox file");
}

typedef struct {
    const char *dir;            //  the data dir
    const char *owner;          //  whose outbox
    size_t connects;            //  connect events it must hold, at least
} s_outbox_wait_t;

static bool
s_outbox_holds (void *arg)
{
    s_outbox_wait_t *wait = (s_outbox_wait_t *) arg;
    s_ids_t ids;
    s_read_outbox (wait->dir, wait->owner, &ids);
    return ids.connects >= wait->connects;
}

static bool
s_outbox_empty (void *arg)
{
    s_outbox_wait_t *wait = (s_outbox_wait_t *) arg;
    s_ids_t ids;
    s_read_outbox (wait->dir, wait->owner, &ids);
    return ids.count == 0;
}

static bool
s_outbox_gone (void *arg)
{
    s_outbox_wait_t *wait = (s_outbox_wait_t *) arg;
    char *path = zsys_sprintf ("%s/%s.outbox", wait->dir, wait->owner);
    bool gone = access (path, F_OK) != 0;
    free (path);
    return gone;
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

Test (watchdog_outbox, a_sigkilled_watchdogs_decided_events_reach_subscribers_after_a_restart,
      .timeout = 180 * EP_TEST_SLOWDOWN)
{
    const char *dir = ep_stack_dir (s_stack);
    ep_proc_t *first = ep_stack_start (s_stack, "watchdog", 15000 * EP_TEST_SLOWDOWN);
    char owner [160];
    s_outbox_owner (dir, owner, sizeof owner);

    //  The bus goes: nothing the watchdog decides from now on comes back.
    free (ep_stack_kill (s_stack, "bus"));
    chan_client_t *clients [ROUTERS];
    for (int i = 0; i < ROUTERS; i++)
        clients [i] = s_join (first, i);
    chan_client_destroy (&clients [0]);         //  r0 leaves: a connect event with its duration
    chan_client_destroy (&clients [1]);
    s_outbox_wait_t wait = { dir, owner, ROUTERS + 2 };
    cr_assert (ep_wait_until (s_outbox_holds, &wait, WAIT_MS),
               "the watchdog recorded 4 joins and 2 leaves in its outbox");

    //  Killed with them queued; its file says what it had decided on.
    char *log = ep_stack_kill (s_stack, "watchdog");
    free (log);
    for (int i = 2; i < ROUTERS; i++)
        chan_client_destroy (&clients [i]);
    s_ids_t decided;
    s_read_outbox (dir, owner, &decided);
    cr_assert_geq (decided.connects, ROUTERS + 2);
    cr_assert_lt (decided.count, EP_COUNT (decided.ids));
    for (size_t i = 0; i < decided.count; i++)
        cr_assert_eq (ep_eventlog_count_event_id (s_log, decided.ids [i]), 0, "%s was not delivered: the bus was down",
                      decided.ids [i]);

    //  The bus and a new watchdog (a new instance id) on the same data,
    //  once the subscriber is back on the bus: an event is acknowledged
    //  when it passes the bus, so one a consumer must see has to find it
    //  subscribed.
    ep_stack_start (s_stack, "bus", 15000 * EP_TEST_SLOWDOWN);
    s_resubscribed ();
    ep_proc_t *second = ep_stack_start (s_stack, "watchdog", 15000 * EP_TEST_SLOWDOWN);
    if (!ep_wait_until (s_all_delivered, &decided, WAIT_MS)) {
        for (size_t i = 0; i < decided.count; i++)
            fprintf (stderr, "%s delivered %zu times\n", decided.ids [i],
                     ep_eventlog_count_event_id (s_log, decided.ids [i]));
        char *text = ep_proc_log (second);
        cr_assert_fail ("every event the killed watchdog decided on reaches the subscriber: %s", text);
    }
    for (size_t i = 0; i < decided.count; i++) {
        size_t times = ep_eventlog_count_event_id (s_log, decided.ids [i]);
        cr_assert (times == 1 || times == 2, "%s delivered %zu times", decided.ids [i], times);
    }
    cr_assert (ep_wait_until (s_outbox_gone, &wait, WAIT_MS),
               "the dead instance's outbox is removed once all its events came back");
    char *second_log = ep_proc_log (second);
    cr_assert (strstr (second_log, "adopted"), "the new watchdog says it adopted the file: %s", second_log);
    free (second_log);
}

Test (watchdog_outbox, a_full_outbox_refuses_a_join_with_event_outbox_full_until_the_bus_takes_it,
      .timeout = 180 * EP_TEST_SLOWDOWN)
{
    const char *dir = ep_stack_dir (s_stack);
    ep_stack_setenv (s_stack, "EDGEPLANE_OUTBOX_MAX", "4");
    ep_proc_t *watchdog = ep_stack_start (s_stack, "watchdog", 15000 * EP_TEST_SLOWDOWN);
    char owner [160];
    s_outbox_owner (dir, owner, sizeof owner);
    //  Its own presence.join goes through the outbox too: wait until the
    //  bus has taken it, so the room left is known.
    s_outbox_wait_t wait = { dir, owner, 0 };
    cr_assert (ep_wait_until (s_outbox_empty, &wait, WAIT_MS), "the bus takes the first events");

    free (ep_stack_kill (s_stack, "bus"));
    chan_client_t *r0 = s_join (watchdog, 0);
    chan_client_t *r1 = s_join (watchdog, 1);
    wait.connects = 2;
    cr_assert (ep_wait_until (s_outbox_holds, &wait, WAIT_MS),
               "two joins (a connect and a presence event each) fill an outbox of four");
    char reason [64];
    chan_client_t *r2 = s_hello (watchdog, 2, reason, sizeof reason);
    cr_assert_str_eq (reason, "event-outbox-full", "a third join is refused with its reason");
    chan_client_destroy (&r2);

    //  The bus comes back and takes the backlog: joins are welcome again.
    ep_stack_start (s_stack, "bus", 15000 * EP_TEST_SLOWDOWN);
    cr_assert (ep_wait_until (s_outbox_empty, &wait, WAIT_MS), "the bus takes the backlog");
    chan_client_t *again = s_join (watchdog, 2);
    char *page = ep_http_get (ep_proc_connect_endpoint (watchdog, "http"), "/metrics");
    cr_assert_not_null (page);
    cr_assert_geq (ep_metric_value (page, "edgeplane_outbox_refused_total"), 1, "the refusal is counted");
    free (page);
    chan_client_destroy (&again);
    chan_client_destroy (&r1);
    chan_client_destroy (&r0);
}
