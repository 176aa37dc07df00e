/*  test_reaper.c: the reaper's state machine (services/reaper/reaper) over
    a real sessions.db, driven without sockets: roles and validation, open /
    close / heartbeat, two-phase cleanup of a deleted router (closes in
    chunks, acks, resends, forced at the deadline and not before), resume
    after a crash mid-cleanup, a shard's cleanup adopted mid-way (the etcd
    mode's takeover), liveness across a restart (nothing expires
    before presence is known; silent sessions are probed, then expired),
    offline routers, identity deletion across routers, reconciliation with
    the model, the cleanup order (criticality, then traffic, then age),
    long-lived warnings (as sessions cross, once, across restarts), the
    migration of a sessions.db of the previous schema; adaptive liveness
    (each router's thresholds from its heartbeat cadence, in the liveness
    read and the gauges; gaps at presence changes) and fixed liveness
    unchanged; a batch that does not commit (a failed commit, a full
    database) leaves memory as before it and its work is done again, and
    while the store takes no writes nothing durable is tried. */
#include <criterion/criterion.h>
#include "ep_test.h"
#include "ep_session_pages.h"
#include "reaper.h"
#include "sessiondb.h"
#include "reapkeys.h"
#include "reapload.h"
#include <unistd.h>

#define WALL0       1795000000000LL     //  wall clock at mono 0
#define START       1000000             //  the test's first monotonic time
#define DEADLINE    10000
#define T1          2000
#define T2          5000
#define PRESENCE    3500
#define GRACE       20000

//  A command as published.
typedef struct {
    char router [65];           //  from the topic
    char id [48];               //  command id
    bool probe;                 //  probe, else close
    char reason [32];           //  close reason
    int64_t deadline;           //  wall clock
    zlistx_t *ids;              //  session ids (owned strings)
} s_command_t;

//  One test's world.
typedef struct {
    char *dir;                  //  temp dir
    char *path;                 //  sessions.db
    ep_store_t *store;          //  its store
    reaper_t *reaper;           //  under test
    reaper_config_t config;     //  its configuration
    int64_t now;                //  the monotonic clock
    zlistx_t *events;           //  "topic id reason" strings, in order
    zlistx_t *commands;         //  s_command_t, in order
    const char *const *held;    //  routers a watchdog beacons at every step (NULL: none)
    ep_metrics_t *metrics;      //  the reaper's registry, if a test gives one
    zlistx_t *ids;              //  event ids of the session events, as handed out
    bool bus_down;              //  s_drain echoes nothing
} s_world_t;

static s_world_t w;

static const ep_caller_t s_watchdog = { "k1", "service", "watchdog" };
static const ep_caller_t s_operator = { "k2", "operator", "operator" };
static const ep_caller_t s_terminators = { "k3", "service", "terminators" };
static const ep_caller_t s_subscriber = { "k4", "subscriber", "subscriber" };

static void
s_command_free (void **item)
{
    s_command_t *command = (s_command_t *) *item;
    if (command) {
        zlistx_destroy (&command->ids);
        free (command);
        *item = NULL;
    }
}

static void
s_publish (const char *topic, Ep__Event *event)
{
    if (event->body_case == EP__EVENT__BODY_SESSION) {
        Ep__SessionEvent *body = event->session;
        zlistx_add_end (w.events, zsys_sprintf ("%s %s %s age=%lld", topic, body->session_id,
                                                body->reason? body->reason: "-", (long long) body->age_ms));
        return;
    }
    cr_assert_eq (event->body_case, EP__EVENT__BODY_COMMAND);
    Ep__Command *body = event->command;
    s_command_t *command = (s_command_t *) zmalloc (sizeof (s_command_t));
    cr_assert_eq (strncmp (topic, "cmd.", 4), 0);
    snprintf (command->router, sizeof command->router, "%.*s", (int) (strlen (topic) - 5), topic + 4);
    cr_assert_str_eq (command->router, body->router_id, "topic %s", topic);
    cr_assert_str_eq (body->reply_to, "reaper");
    snprintf (command->id, sizeof command->id, "%s", body->command_id);
    command->deadline = body->deadline_ms;
    command->ids = zlistx_new ();
    zlistx_set_destructor (command->ids, (czmq_destructor *) zstr_free);
    size_t n = 0;
    char **ids = NULL;
    if (body->kind_case == EP__COMMAND__KIND_PROBE_SESSIONS) {
        command->probe = true;
        n = body->probe_sessions->n_session_ids;
        ids = body->probe_sessions->session_ids;
    }
    else {
        cr_assert_eq (body->kind_case, EP__COMMAND__KIND_CLOSE_SESSIONS);
        snprintf (command->reason, sizeof command->reason, "%s", body->close_sessions->reason);
        n = body->close_sessions->n_session_ids;
        ids = body->close_sessions->session_ids;
    }
    for (size_t i = 0; i < n; i++)
        zlistx_add_end (command->ids, strdup (ids [i]));
    zlistx_add_end (w.commands, command);
}

//  Publishes what the reaper hands out, as the service does (all of it),
//  and, unless w.bus_down, echoes each session event back as the bus
//  does (the acks are committed: a crash after s_drain keeps them).
static void
s_drain (void)
{
    ep_output_item_t *item;
    while ((item = reaper_next_output (w.reaper, true))) {
        s_publish (item->topic, item->event);
        if (item->event->body_case == EP__EVENT__BODY_SESSION) {
            char id [128];
            snprintf (id, sizeof id, "%s:%lld", reaper_outbox_owner (w.reaper), (long long) item->seq);
            zlistx_add_end (w.ids, strdup (id));
            if (!w.bus_down)
                reaper_echo (w.reaper, id);
        }
        ep_output_item_destroy (&item);
    }
    cr_assert_eq (reaper_commit (w.reaper), 0);
}

static void
s_start (void)
{
    w.now += 1;
    w.store = ep_store_new (w.path, sessiondb_migrations, sessiondb_migrations_count);
    cr_assert_not_null (w.store, "%s", ep_store_last_error ());
    w.reaper = reaper_new (w.store, &w.config, w.metrics, w.now, WALL0);
    cr_assert_not_null (w.reaper);
}

//  A crash: memory gone, whatever was committed stays.
static void
s_crash (void)
{
    reaper_destroy (&w.reaper);
    ep_store_destroy (&w.store);
}

static void
s_setup (void)
{
    memset (&w, 0, sizeof w);
    w.dir = ep_tmpdir_new ("reaper-unit");
    w.path = zsys_sprintf ("%s/sessions.db", w.dir);
    w.now = START;
    w.events = zlistx_new ();
    zlistx_set_destructor (w.events, (czmq_destructor *) zstr_free);
    w.commands = zlistx_new ();
    zlistx_set_destructor (w.commands, s_command_free);
    w.ids = zlistx_new ();
    zlistx_set_destructor (w.ids, (czmq_destructor *) zstr_free);
    reaper_config_defaults (&w.config);
    w.config.evasive_ms = T1;
    w.config.expire_ms = T2;
    w.config.deadline_ms = DEADLINE;
    w.config.presence_timeout_ms = PRESENCE;
    w.config.offline_grace_ms = GRACE;
    w.config.flush_ms = 1000;
    w.config.retry_ms = 1000;
    w.config.retry_max_ms = 4000;
    w.config.mark_batch = 5000;
    w.config.chunk = 5000;
    w.config.window = 4;
    s_start ();
}

static void
s_teardown (void)
{
    s_crash ();
    ep_metrics_destroy (&w.metrics);
    zlistx_destroy (&w.events);
    zlistx_destroy (&w.commands);
    zlistx_destroy (&w.ids);
    zstr_free (&w.path);
    ep_tmpdir_remove (&w.dir);
}

//  One main-loop turn at w.now: tick, commit, publish everything.
static void
s_turn (void)
{
    reaper_tick (w.reaper, w.now);
    cr_assert_eq (reaper_commit (w.reaper), 0);
    s_drain ();
}

//  Turns until nothing is due now.
static void
s_settle (void)
{
    for (int i = 0; i < 1000; i++) {
        int64_t due = reaper_tick (w.reaper, w.now);
        cr_assert_eq (reaper_commit (w.reaper), 0);
        s_drain ();
        if (due > w.now)
            return;
    }
    cr_assert_fail ("the reaper never settled");
}

static void
    s_beacon (const char *const *routers);

//  Advances the clock to until, turning at every due time (and every
//  step ms at least), beaconing w.held at each step.
static void
s_advance (int64_t until, int64_t step)
{
    while (w.now < until) {
        if (w.held)
            s_beacon (w.held);
        int64_t due = reaper_tick (w.reaper, w.now);
        cr_assert_eq (reaper_commit (w.reaper), 0);
        s_drain ();
        int64_t next = due > w.now? due: w.now + 1;
        if (next > w.now + step)
            next = w.now + step;
        w.now = next < until? next: until;
    }
    s_settle ();
}

//  Handles request as caller, commits, returns the status code; the reply
//  stays in *result (caller clears).
static Ep__Status__Code
s_call (Ep__SessionRequest *request, const ep_caller_t *caller, reaper_result_t *result)
{
    reaper_result_init (result, "req");
    if (reaper_is_read (request)) {
        cr_assert_eq (reaper_commit (w.reaper), 0);
        reaper_read (w.reaper, request, caller, w.now, result);
    }
    else {
        reaper_handle (w.reaper, request, caller, w.now, result);
        cr_assert_eq (reaper_commit (w.reaper), 0);
    }
    s_drain ();
    return result->status.code;
}

//  Opens a session as its router reports it, with its service's
//  criticality (-1: absent, as from a router that does not say it).
static Ep__Status__Code
s_open_session (const char *id, const char *router, const char *identity, const char *service,
                int criticality, uint32_t priority, uint64_t bytes, int64_t created_at)
{
    Ep__Session session = EP__SESSION__INIT;
    session.has_criticality = criticality >= 0;
    session.criticality = (Ep__Criticality) (criticality >= 0? criticality: 0);
    session.id = (char *) id;
    session.identity_id = (char *) identity;
    session.service_id = (char *) service;
    session.has_type = true;
    session.type = EP__SESSION_TYPE__DIAL;
    session.has_priority = priority > 0;
    session.priority = priority;
    session.has_bytes_rx = bytes > 0;
    session.bytes_rx = bytes;
    session.has_created_at_ms = created_at > 0;
    session.created_at_ms = created_at;
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.router_id = (char *) router;
    request.op_case = EP__SESSION_REQUEST__OP_OPEN;
    request.open = &session;
    reaper_result_t result;
    Ep__Status__Code code = s_call (&request, &s_watchdog, &result);
    if (code == EP__STATUS__CODE__OK) {
        cr_assert_eq (result.reply.n_sessions, 1);
        cr_assert_str_eq (result.reply.sessions [0]->id, id);
        cr_assert_eq (result.reply.sessions [0]->state, EP__SESSION_STATE__ACTIVE);
    }
    reaper_result_clear (&result);
    return code;
}

static Ep__Status__Code
s_open_full (const char *id, const char *router, const char *identity, const char *service,
             uint32_t priority, uint64_t bytes, int64_t created_at)
{
    return s_open_session (id, router, identity, service, -1, priority, bytes, created_at);
}

static void
s_open (const char *id, const char *router, const char *identity, const char *service)
{
    Ep__Status__Code code = s_open_full (id, router, identity, service, 0, 0, 0);
    cr_assert_eq (code, EP__STATUS__CODE__OK, "open %s: code %d", id, code);
}

//  Opens count sessions "<prefix>-<n>" on router in one batch (one commit).
static void
s_open_many (const char *prefix, size_t count, const char *router, const char *identity,
             const char *service)
{
    for (size_t i = 0; i < count; i++) {
        char id [64];
        snprintf (id, sizeof id, "%s-%06zu", prefix, i);
        Ep__Session session = EP__SESSION__INIT;
        session.id = id;
        session.identity_id = (char *) identity;
        session.service_id = (char *) service;
        session.has_type = true;
        session.type = EP__SESSION_TYPE__BIND;
        Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
        request.router_id = (char *) router;
        request.op_case = EP__SESSION_REQUEST__OP_OPEN;
        request.open = &session;
        reaper_result_t result;
        reaper_result_init (&result, "req");
        reaper_handle (w.reaper, &request, &s_watchdog, w.now, &result);
        cr_assert_eq (result.status.code, EP__STATUS__CODE__OK, "%s", result.status.message);
        reaper_result_clear (&result);
    }
    cr_assert_eq (reaper_commit (w.reaper), 0);
    s_drain ();
}

static Ep__Status__Code
s_close (const char *id, const char *router)
{
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.router_id = (char *) router;
    request.op_case = EP__SESSION_REQUEST__OP_CLOSE_ID;
    request.close_id = (char *) id;
    reaper_result_t result;
    Ep__Status__Code code = s_call (&request, &s_watchdog, &result);
    if (code == EP__STATUS__CODE__OK) {
        cr_assert_eq (result.reply.sessions [0]->state, EP__SESSION_STATE__CLOSED);
        cr_assert_str_eq (result.reply.sessions [0]->close_reason, "client-closed");
    }
    reaper_result_clear (&result);
    return code;
}

static void
s_ack (const char *router, const char *command_id, zlistx_t *ids)
{
    Ep__CommandAck ack = EP__COMMAND_ACK__INIT;
    ack.command_id = (char *) command_id;
    ack.n_session_ids = ids? zlistx_size (ids): 0;
    ack.session_ids = (char **) calloc (ack.n_session_ids + 1, sizeof (char *));
    size_t n = 0;
    for (char *id = ids? (char *) zlistx_first (ids): NULL; id; id = (char *) zlistx_next (ids))
        ack.session_ids [n++] = id;
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.router_id = (char *) router;
    request.op_case = EP__SESSION_REQUEST__OP_ACK;
    request.ack = &ack;
    reaper_result_t result;
    cr_assert_eq (s_call (&request, &s_watchdog, &result), EP__STATUS__CODE__OK);
    reaper_result_clear (&result);
    free (ack.session_ids);
}

//  Heartbeats every session in ids (NULL-terminated) with rx bytes.
static void
s_heartbeat (const char *router, const char *const *ids, uint64_t rx, zlistx_t *unknown)
{
    size_t n = 0;
    while (ids [n])
        n++;
    Ep__SessionHeartbeat__Entry entries [n];
    Ep__SessionHeartbeat__Entry *pointers [n];
    for (size_t i = 0; i < n; i++) {
        ep__session_heartbeat__entry__init (&entries [i]);
        entries [i].id = (char *) ids [i];
        entries [i].has_bytes_rx = true;
        entries [i].bytes_rx = rx;
        pointers [i] = &entries [i];
    }
    Ep__SessionHeartbeat heartbeat = EP__SESSION_HEARTBEAT__INIT;
    heartbeat.n_entries = n;
    heartbeat.entries = pointers;
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.router_id = (char *) router;
    request.op_case = EP__SESSION_REQUEST__OP_HEARTBEAT;
    request.heartbeat = &heartbeat;
    reaper_result_t result;
    cr_assert_eq (s_call (&request, &s_watchdog, &result), EP__STATUS__CODE__OK);
    for (size_t i = 0; unknown && i < result.reply.n_unknown_ids; i++)
        zlistx_add_end (unknown, strdup (result.reply.unknown_ids [i]));
    reaper_result_clear (&result);
}

//  The session as get shows it (state, reason into buffers); false if absent.
static bool
s_get (const char *id, Ep__SessionState *state, char *reason, uint64_t *rx)
{
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.op_case = EP__SESSION_REQUEST__OP_GET_ID;
    request.get_id = (char *) id;
    reaper_result_t result;
    Ep__Status__Code code = s_call (&request, &s_operator, &result);
    if (code == EP__STATUS__CODE__OK) {
        *state = result.reply.sessions [0]->state;
        if (reason)
            snprintf (reason, 32, "%s", result.reply.sessions [0]->close_reason?
                      result.reply.sessions [0]->close_reason: "");
        if (rx)
            *rx = result.reply.sessions [0]->bytes_rx;
    }
    reaper_result_clear (&result);
    return code == EP__STATUS__CODE__OK;
}

//  Sessions listed with the filter (every page).
static size_t
s_count (const char *router, Ep__SessionState state)
{
    ep_session_pages_t *pages = ep_session_pages_new (router, state);
    Ep__SessionRequest *request;
    while ((request = ep_session_pages_next (pages))) {
        reaper_result_t result;
        cr_assert_eq (s_call (request, &s_operator, &result), EP__STATUS__CODE__OK, "%s",
                      result.status.message);
        ep_session_pages_took (pages, &result.reply);
        reaper_result_clear (&result);
    }
    size_t count = ep_session_pages_count (pages);
    ep_session_pages_destroy (&pages);
    return count;
}

static void
s_delete (Ep__EntityType type, const char *id, uint64_t revision)
{
    ep_model_event_t event = { .kind = EP__MODEL_OP__KIND__DELETED, .type = type, .id = id,
                               .revision = revision };
    reaper_model_event (w.reaper, &event, w.now);
}

static size_t
s_events (const char *prefix)
{
    size_t count = 0;
    for (char *event = (char *) zlistx_first (w.events); event; event = (char *) zlistx_next (w.events))
        if (strncmp (event, prefix, strlen (prefix)) == 0)
            count++;
    return count;
}

//  The age_ms of the only event starting with prefix (asserted: one).
static int64_t
s_event_age (const char *prefix)
{
    cr_assert_eq (s_events (prefix), 1, "not one \"%s\" event", prefix);
    for (char *event = (char *) zlistx_first (w.events); event; event = (char *) zlistx_next (w.events))
        if (strncmp (event, prefix, strlen (prefix)) == 0)
            return atoll (strstr (event, " age=") + 5);
    return -1;
}

//  Presence: the bus is live and a watchdog holds routers (NULL-terminated).
static void
s_beacon (const char *const *routers)
{
    size_t n = 0;
    while (routers [n])
        n++;
    Ep__PresenceEvent presence = EP__PRESENCE_EVENT__INIT;
    presence.instance_id = "watchdog-1";
    presence.has_instance_epoch = true;
    presence.instance_epoch = 42;
    presence.n_routers = n;
    presence.routers = (char **) routers;
    reaper_presence (w.reaper, "beacon", &presence, w.now);
}

static void
s_reset_outputs (void)
{
    zlistx_purge (w.events);
    zlistx_purge (w.commands);
}

//  ---------------------------------------------------------------------

Test (reaper, only_the_watchdog_speaks_for_routers_and_input_is_checked,
      .init = s_setup, .fini = s_teardown)
{
    Ep__Session session = EP__SESSION__INIT;
    session.id = "s1";
    session.identity_id = "i1";
    session.service_id = "svc";
    session.has_type = true;
    session.type = EP__SESSION_TYPE__DIAL;
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.router_id = "r1";
    request.op_case = EP__SESSION_REQUEST__OP_OPEN;
    request.open = &session;
    reaper_result_t result;
    cr_assert_eq (s_call (&request, &s_operator, &result), EP__STATUS__CODE__PERMISSION_DENIED);
    cr_assert (strstr (result.status.message, "watchdog"), "%s", result.status.message);
    reaper_result_clear (&result);
    cr_assert_eq (s_call (&request, &s_terminators, &result), EP__STATUS__CODE__PERMISSION_DENIED);
    reaper_result_clear (&result);
    request.router_id = NULL;
    cr_assert_eq (s_call (&request, &s_watchdog, &result), EP__STATUS__CODE__INVALID_ARGUMENT);
    reaper_result_clear (&result);
    request.router_id = "r1";
    session.id = "bad id!";
    cr_assert_eq (s_call (&request, &s_watchdog, &result), EP__STATUS__CODE__INVALID_ARGUMENT);
    cr_assert (strstr (result.status.message, "open.id"), "%s", result.status.message);
    reaper_result_clear (&result);
    session.id = "s1";
    session.has_type = false;
    cr_assert_eq (s_call (&request, &s_watchdog, &result), EP__STATUS__CODE__INVALID_ARGUMENT);
    cr_assert (strstr (result.status.message, "dial or bind"), "%s", result.status.message);
    reaper_result_clear (&result);
    session.has_type = true;
    session.router_id = "r2";
    cr_assert_eq (s_call (&request, &s_watchdog, &result), EP__STATUS__CODE__INVALID_ARGUMENT);
    reaper_result_clear (&result);
    session.router_id = NULL;
    cr_assert_eq (s_call (&request, &s_watchdog, &result), EP__STATUS__CODE__OK);
    reaper_result_clear (&result);
    //  Reads: operators and services; subscribers not.
    Ep__SessionRequest list = EP__SESSION_REQUEST__INIT;
    list.op_case = EP__SESSION_REQUEST__OP_LIST;
    cr_assert_eq (s_call (&list, &s_subscriber, &result), EP__STATUS__CODE__PERMISSION_DENIED);
    reaper_result_clear (&result);
    cr_assert_eq (s_call (&list, &s_terminators, &result), EP__STATUS__CODE__OK);
    cr_assert_eq (result.reply.n_sessions, 1);
    reaper_result_clear (&result);
    Ep__SessionRequest empty = EP__SESSION_REQUEST__INIT;
    cr_assert_eq (s_call (&empty, &s_watchdog, &result), EP__STATUS__CODE__INVALID_ARGUMENT);
    reaper_result_clear (&result);
    Ep__SessionFilter filter = EP__SESSION_FILTER__INIT;
    filter.router_id = "no good";
    list.list = &filter;
    cr_assert_eq (s_call (&list, &s_operator, &result), EP__STATUS__CODE__INVALID_ARGUMENT);
    reaper_result_clear (&result);
}

Test (reaper, opens_are_idempotent_and_ids_are_never_reused, .init = s_setup, .fini = s_teardown)
{
    s_open ("s1", "r1", "i1", "svc");
    s_open ("s1", "r1", "i1", "svc");
    cr_assert_eq (s_events ("session.created s1"), 1, "a repeated open is the same open");
    cr_assert_eq (s_open_full ("s1", "r1", "i2", "svc", 0, 0, 0), EP__STATUS__CODE__ALREADY_EXISTS);
    cr_assert_eq (s_open_full ("s1", "r2", "i1", "svc", 0, 0, 0), EP__STATUS__CODE__ALREADY_EXISTS);
    cr_assert_eq (s_close ("s1", "r2"), EP__STATUS__CODE__NOT_FOUND, "another router cannot close it");
    cr_assert_eq (s_close ("s1", "r1"), EP__STATUS__CODE__OK);
    cr_assert_eq (s_events ("session.closed s1 client-closed"), 1);
    cr_assert_eq (s_close ("s1", "r1"), EP__STATUS__CODE__OK, "closing twice answers the same");
    cr_assert_eq (s_events ("session.closed"), 1);
    cr_assert_eq (s_open_full ("s1", "r1", "i1", "svc", 0, 0, 0), EP__STATUS__CODE__FAILED_PRECONDITION,
                  "a closed session is not reopened");
    cr_assert_eq (s_close ("nope", "r1"), EP__STATUS__CODE__NOT_FOUND);
    Ep__SessionState state;
    char reason [32];
    cr_assert (s_get ("s1", &state, reason, NULL));
    cr_assert_eq (state, EP__SESSION_STATE__CLOSED);
    cr_assert_str_eq (reason, "client-closed");
    cr_assert_eq (reaper_count (w.reaper, EP__SESSION_STATE__CLOSED), 1);
    cr_assert_eq (reaper_count (w.reaper, EP__SESSION_STATE__ACTIVE), 0);
}

Test (reaper, heartbeats_update_counters_and_name_unknown_sessions, .init = s_setup, .fini = s_teardown)
{
    s_open ("s1", "r1", "i1", "svc");
    s_open ("s2", "r1", "i1", "svc");
    s_open ("s3", "r2", "i1", "svc");
    cr_assert_eq (s_close ("s2", "r1"), EP__STATUS__CODE__OK);
    zlistx_t *unknown = zlistx_new ();
    zlistx_set_destructor (unknown, (czmq_destructor *) zstr_free);
    const char *ids [] = { "s1", "s2", "s3", "ghost", NULL };
    s_heartbeat ("r1", ids, 12345, unknown);
    //  s2 is closed, s3 is another router's, ghost never existed.
    cr_assert_eq (zlistx_size (unknown), 3);
    Ep__SessionState state;
    uint64_t rx = 0;
    cr_assert (s_get ("s1", &state, NULL, &rx));
    cr_assert_eq (rx, 12345, "get shows counters not flushed yet");
    //  After a flush and a restart, the counters are on disk.
    w.now += 1500;
    s_turn ();
    s_crash ();
    s_start ();
    cr_assert (s_get ("s1", &state, NULL, &rx));
    cr_assert_eq (rx, 12345);
    zlistx_destroy (&unknown);
}

//  The acceptance scenario in small: a deleted router with thousands of
//  sessions; its router acks half of every close and ignores the rest.
Test (reaper, a_deleted_routers_sessions_are_closed_in_two_phases, .init = s_setup, .fini = s_teardown)
{
    enum { N = 12000 };
    s_open_many ("a", N, "r1", "i1", "svc");
    s_open ("other", "r2", "i1", "svc");
    const char *held [] = { "r1", "r2", NULL };
    w.held = held;
    reaper_bus_live (w.reaper, w.now);
    s_advance (w.now + PRESENCE, 100);
    cr_assert (reaper_presence_known (w.reaper));
    s_reset_outputs ();
    int64_t deleted_at = w.now;
    s_delete (EP__ENTITY_TYPE__ENTITY_ROUTER, "r1", 7);
    cr_assert_eq (s_open_full ("late", "r1", "i1", "svc", 0, 0, 0), EP__STATUS__CODE__FAILED_PRECONDITION,
                  "no new sessions on a deleted router");
    s_settle ();
    cr_assert_eq (s_events ("session.terminating"), N);
    cr_assert_eq (s_events ("session.terminating a-000000 router-deleted"), 1);
    cr_assert_eq (reaper_count (w.reaper, EP__SESSION_STATE__TERMINATING), N);
    cr_assert_eq (s_count ("r1", EP__SESSION_STATE__TERMINATING), N, "TERMINATING is durable");
    //  CloseSessions: chunks of at most 5000, a window of 4 unanswered.
    cr_assert_eq (zlistx_size (w.commands), 3);
    zhashx_t *received = zhashx_new ();
    size_t acked = 0;
    for (int round = 0; round < 100 && zlistx_size (w.commands); round++) {
        s_command_t *command;
        while ((command = (s_command_t *) zlistx_detach (w.commands, NULL))) {
            cr_assert_str_eq (command->router, "r1");
            cr_assert_not (command->probe);
            cr_assert_str_eq (command->reason, "router-deleted");
            cr_assert_leq (zlistx_size (command->ids), 5000);
            cr_assert_eq (command->deadline, WALL0 + deleted_at + DEADLINE);
            zlistx_t *closing = zlistx_new ();
            for (char *id = (char *) zlistx_first (command->ids); id; id = (char *) zlistx_next (command->ids)) {
                zhashx_update (received, id, (void *) 1);
                if (atoi (id + 2) % 2 == 0)
                    zlistx_add_end (closing, id);          //  acks the even ones
            }
            acked += zlistx_size (closing);
            s_ack ("r1", command->id, closing);
            zlistx_destroy (&closing);
            s_command_free ((void **) &command);
        }
        //  Resends of the odd ones come while the deadline is ahead.
        if (w.now + 1000 < deleted_at + DEADLINE)
            s_advance (w.now + 1000, 100);
    }
    cr_assert_eq (zhashx_size (received), N, "every session went to the router");
    cr_assert_eq (s_events ("session.closed"), N / 2);
    cr_assert_eq (s_events ("session.reaped a-"), 0, "nothing forced before the deadline");
    s_advance (deleted_at + DEADLINE - 1, 100);
    cr_assert_eq (s_events ("session.reaped a-"), 0, "nothing forced before the deadline");
    w.now = deleted_at + DEADLINE;
    s_settle ();
    cr_assert_eq (s_events ("session.reaped a-"), N / 2);
    cr_assert_eq (s_events ("session.reaped a-000001 forced"), 1);
    cr_assert_eq (s_events ("session.closed a-000000 router-deleted"), 1);
    cr_assert_eq (s_count ("r1", EP__SESSION_STATE__ACTIVE), 0);
    cr_assert_eq (s_count ("r1", EP__SESSION_STATE__TERMINATING), 0);
    cr_assert_eq (s_count ("r1", EP__SESSION_STATE__CLOSED), N);
    cr_assert_eq (s_events ("session.reaped other expired"), 1, "r2's session, never heard, expired");
    cr_assert_eq (reaper_queue_depth (w.reaper), 0);
    cr_assert_eq (reaper_jobs (w.reaper), 0);
    //  The job, as the CLI reads it.
    Ep__CleanupQuery query = EP__CLEANUP_QUERY__INIT;
    query.router_id = "r1";
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.op_case = EP__SESSION_REQUEST__OP_CLEANUP;
    request.cleanup = &query;
    reaper_result_t result;
    cr_assert_eq (s_call (&request, &s_operator, &result), EP__STATUS__CODE__OK);
    cr_assert_eq (result.reply.n_jobs, 1);
    Ep__CleanupJob *job = result.reply.jobs [0];
    cr_assert (job->done);
    cr_assert_eq (job->scheduled, N);
    cr_assert_eq (job->revision, 7);
    cr_assert_str_eq (job->reason, "router-deleted");
    cr_assert_eq (job->n_closed, 2);
    for (size_t i = 0; i < job->n_closed; i++)
        cr_assert_eq (job->closed [i]->count, N / 2, "%s", job->closed [i]->reason);
    reaper_result_clear (&result);
    cr_assert_eq (acked, N / 2);
    zhashx_destroy (&received);
}

Test (reaper, the_most_urgent_sessions_are_closed_first, .init = s_setup, .fini = s_teardown)
{
    w.config.chunk = 2;
    s_crash ();
    s_start ();
    int64_t wall = WALL0 + w.now;
    cr_assert_eq (s_open_full ("plain-old", "r1", "i1", "svc", 0, 10, wall - 50000), EP__STATUS__CODE__OK);
    cr_assert_eq (s_open_full ("plain-new", "r1", "i1", "svc", 0, 10, wall - 1000), EP__STATUS__CODE__OK);
    cr_assert_eq (s_open_full ("busy", "r1", "i1", "svc", 0, 1000000, wall - 100), EP__STATUS__CODE__OK);
    cr_assert_eq (s_open_full ("critical", "r1", "i1", "svc", 9, 0, wall), EP__STATUS__CODE__OK);
    s_delete (EP__ENTITY_TYPE__ENTITY_ROUTER, "r1", 3);
    s_settle ();
    cr_assert_eq (zlistx_size (w.commands), 2);
    s_command_t *first = (s_command_t *) zlistx_first (w.commands);
    cr_assert_str_eq ((char *) zlistx_first (first->ids), "critical");
    cr_assert_str_eq ((char *) zlistx_next (first->ids), "busy");
    s_command_t *second = (s_command_t *) zlistx_next (w.commands);
    cr_assert_str_eq ((char *) zlistx_first (second->ids), "plain-old");
    cr_assert_str_eq ((char *) zlistx_next (second->ids), "plain-new");
}

//  A session's criticality (its service's, as its router says) orders the
//  cleanup before anything else: critical, high, normal, low; within one,
//  more traffic first, then older. Absent or a number this version does
//  not know is normal. It survives a restart (it is in the row).
Test (reaper, critical_sessions_close_before_high_normal_and_low_then_by_traffic_then_age,
      .init = s_setup, .fini = s_teardown)
{
    w.config.chunk = 1;                         //  one command per session: their order is the order
    w.config.window = 16;
    s_crash ();
    s_start ();
    int64_t wall = WALL0 + w.now;
    enum {
        C = EP__CRITICALITY__CRITICALITY_CRITICAL, H = EP__CRITICALITY__CRITICALITY_HIGH,
        N = EP__CRITICALITY__CRITICALITY_NORMAL, L = EP__CRITICALITY__CRITICALITY_LOW
    };
    struct { const char *id; int criticality; uint64_t bytes; int64_t age; } spec [] = {
        { "low-busy-old", L, 9000000, 90000 },
        { "normal-quiet-old", N, 10, 50000 },
        { "normal-unsaid-busy", -1, 5000, 1000 },
        { "normal-quiet-new", N, 10, 1000 },
        { "normal-odd-number", 7, 10, 20000 },
        { "high-quiet", H, 0, 100 },
        { "critical-quiet-new", C, 0, 10 },
        { "critical-busy", C, 100000, 10 },
        { "critical-quiet-old", C, 0, 30000 },
        { "low-quiet", L, 0, 10 },
        { "high-busy", H, 70000, 100 },
    };
    for (size_t i = 0; i < EP_COUNT (spec); i++)
        cr_assert_eq (s_open_session (spec [i].id, "r1", "i1", "svc", spec [i].criticality, 0,
                                      spec [i].bytes, wall - spec [i].age), EP__STATUS__CODE__OK);
    //  What the reaper shows: the criticality it will order by.
    const char *shown [] = { "critical-busy", "normal-odd-number", "normal-unsaid-busy", "low-quiet" };
    const int expect [] = { C, N, N, L };
    for (size_t i = 0; i < EP_COUNT (shown); i++) {
        Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
        request.op_case = EP__SESSION_REQUEST__OP_GET_ID;
        request.get_id = (char *) shown [i];
        reaper_result_t result;
        cr_assert_eq (s_call (&request, &s_operator, &result), EP__STATUS__CODE__OK);
        cr_assert (result.reply.sessions [0]->has_criticality);
        cr_assert_eq ((int) result.reply.sessions [0]->criticality, expect [i], "%s", shown [i]);
        reaper_result_clear (&result);
    }
    s_crash ();
    s_start ();
    s_delete (EP__ENTITY_TYPE__ENTITY_ROUTER, "r1", 3);
    s_settle ();
    const char *order [] = {
        "critical-busy", "critical-quiet-old", "critical-quiet-new", "high-busy", "high-quiet",
        "normal-unsaid-busy", "normal-quiet-old", "normal-odd-number", "normal-quiet-new",
        "low-busy-old", "low-quiet"
    };
    cr_assert_eq (zlistx_size (w.commands), EP_COUNT (order));
    size_t i = 0;
    for (s_command_t *command = (s_command_t *) zlistx_first (w.commands); command;
         command = (s_command_t *) zlistx_next (w.commands), i++) {
        cr_assert_eq (zlistx_size (command->ids), 1);
        cr_assert_str_eq ((char *) zlistx_first (command->ids), order [i], "close %zu", i);
    }
    //  Marking went in the same order (one priority queue for both phases).
    i = 0;
    for (char *event = (char *) zlistx_first (w.events); event; event = (char *) zlistx_next (w.events)) {
        if (strncmp (event, "session.terminating ", 20) != 0)
            continue;
        cr_assert_eq (strncmp (event + 20, order [i], strlen (order [i])), 0, "%s", event);
        cr_assert_eq (event [20 + strlen (order [i])], ' ', "%s", event);
        i++;
    }
    cr_assert_eq (i, EP_COUNT (order));
}

//  A session raises session.warning long-lived when it crosses --long-lived,
//  with no cleanup, to the millisecond (the tick wakes for it), once; many
//  crossing together are warned in batches, each once; a cleanup that takes
//  them later warns nobody again, and one crossing with nothing else due
//  is noticed at its time all the same.
Test (reaper, a_session_crossing_long_lived_warns_once_without_a_cleanup, .init = s_setup, .fini = s_teardown)
{
    w.config.long_lived_ms = 10000;
    w.config.mark_batch = 2;
    s_crash ();
    s_start ();
    int64_t t0 = w.now, wall = WALL0 + w.now;
    //  Crossing times off the flush period (1 s), so only the crossing
    //  itself can wake the tick then.
    for (int i = 0; i < 5; i++) {
        char id [16];
        snprintf (id, sizeof id, "old-%d", i);
        cr_assert_eq (s_open_full (id, "r1", "i1", "svc", 0, 0, wall - 6000 + 337), EP__STATUS__CODE__OK);
    }
    cr_assert_eq (s_open_full ("mid", "r1", "i1", "svc", 0, 0, wall - 4000 + 337), EP__STATUS__CODE__OK);
    s_open ("new", "r1", "i1", "svc");
    s_advance (t0 + 4337 - 1, 100000);
    cr_assert_eq (s_events ("session.warning"), 0, "warned before crossing");
    s_advance (t0 + 8000, 100000);
    cr_assert_eq (s_events ("session.warning"), 6);
    for (int i = 0; i < 5; i++) {
        char prefix [48];
        snprintf (prefix, sizeof prefix, "session.warning old-%d long-lived", i);
        int64_t age = s_event_age (prefix);
        //  Batches of 2: the last ones one turn (1 ms in s_advance) later.
        cr_assert (age >= 10000 && age <= 10002, "%s: age %lld", prefix, (long long) age);
    }
    cr_assert_eq (s_event_age ("session.warning mid long-lived"), 10000, "not warned as it crossed");
    cr_assert_eq (s_events ("session.warning new"), 0);
    cr_assert_eq (s_events ("session.terminating"), 0, "no cleanup was needed");
    //  A cleanup now: "new" has not crossed, the others were warned.
    s_delete (EP__ENTITY_TYPE__ENTITY_ROUTER, "r1", 3);
    s_settle ();
    cr_assert_eq (s_events ("session.terminating"), 7);
    cr_assert_eq (s_events ("session.warning"), 6);
    //  Alone: a session with nothing else to do but cross.
    s_reset_outputs ();
    int64_t t1 = w.now;
    cr_assert_eq (s_open_full ("lone", "r2", "i1", "svc", 0, 0, WALL0 + w.now - 9000 + 451),
                  EP__STATUS__CODE__OK);
    s_advance (t1 + 5000, 100000);
    cr_assert_eq (s_event_age ("session.warning lone long-lived"), 10000);
}

//  The warning is noted with the session: a restart does not raise it
//  again, a session that crossed while the reaper was down is warned once
//  after the start, one that crosses later once at its time, and a cleanup
//  after all that raises none.
Test (reaper, the_long_lived_warning_is_not_repeated_after_a_restart, .init = s_setup, .fini = s_teardown)
{
    w.config.long_lived_ms = 10000;
    s_crash ();
    s_start ();
    int64_t t0 = w.now, wall = WALL0 + w.now;
    cr_assert_eq (s_open_full ("a", "r1", "i1", "svc", 0, 0, wall - 20000), EP__STATUS__CODE__OK);
    cr_assert_eq (s_open_full ("b", "r1", "i1", "svc", 0, 0, wall - 5000 + 337), EP__STATUS__CODE__OK);
    cr_assert_eq (s_open_full ("c", "r1", "i1", "svc", 0, 0, wall), EP__STATUS__CODE__OK);
    s_turn ();
    cr_assert_eq (s_events ("session.warning a long-lived"), 1);
    cr_assert_eq (s_events ("session.warning"), 1);
    //  Down from t0 to t0 + 8000: b crosses meanwhile.
    s_crash ();
    w.now = t0 + 8000 - 1;
    s_start ();
    s_settle ();
    cr_assert_eq (s_events ("session.warning a "), 1, "a was warned again after the restart");
    cr_assert_eq (s_events ("session.warning b long-lived"), 1, "b crossed while the reaper was down");
    s_advance (t0 + 12000, 100000);
    cr_assert_eq (s_event_age ("session.warning c long-lived"), 10000);
    cr_assert_eq (s_events ("session.warning"), 3);
    s_crash ();
    s_start ();
    s_settle ();
    s_delete (EP__ENTITY_TYPE__ENTITY_ROUTER, "r1", 3);
    s_settle ();
    cr_assert_eq (s_events ("session.terminating"), 3);
    cr_assert_eq (s_events ("session.warning"), 3, "a restart or a cleanup warned again");
}

//  sessions.db of the schema before criticality and warnings: its sessions
//  are normal; an ACTIVE one past --long-lived is warned once; a
//  TERMINATING one is not (the version before warned when its cleanup took
//  it).
Test (reaper, a_sessions_db_of_the_previous_schema_is_migrated, .init = s_setup, .fini = s_teardown)
{
    w.config.long_lived_ms = 3600000;
    s_crash ();
    cr_assert_eq (unlink (w.path), 0);
    ep_store_t *store = ep_store_new (w.path, sessiondb_migrations, 1);
    cr_assert_not_null (store, "%s", ep_store_last_error ());
    int64_t wall = WALL0 + w.now, old = wall - 2 * 3600000;
    char *sql = zsys_sprintf (
        "INSERT INTO jobs VALUES ('j1', 'identity-deleted', 'identity', 'i9', 4, %lld, %lld, 1, 0, NULL, NULL);"
        "INSERT INTO sessions VALUES ('up-active', 'r1', 'i1', 'svc', 1, 1, 0, %lld, %lld, 0, 0, NULL, NULL, NULL);"
        "INSERT INTO sessions VALUES ('up-terminating', 'r1', 'i9', 'svc', 1, 2, 0, %lld, %lld, 0, 0, NULL, NULL, 'j1');",
        (long long) wall, (long long) wall + DEADLINE, (long long) old, (long long) wall,
        (long long) old, (long long) wall);
    cr_assert_eq (ep_store_exec (store, sql), 0, "%s", ep_store_last_error ());
    free (sql);
    ep_store_destroy (&store);
    s_start ();
    s_settle ();
    cr_assert_eq (s_events ("session.warning up-active long-lived"), 1);
    cr_assert_eq (s_events ("session.warning"), 1);
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.op_case = EP__SESSION_REQUEST__OP_GET_ID;
    request.get_id = "up-active";
    reaper_result_t result;
    cr_assert_eq (s_call (&request, &s_operator, &result), EP__STATUS__CODE__OK);
    cr_assert_eq (result.reply.sessions [0]->criticality, EP__CRITICALITY__CRITICALITY_NORMAL);
    reaper_result_clear (&result);
}

Test (reaper, a_restart_mid_cleanup_resumes_it_with_the_same_deadline, .init = s_setup, .fini = s_teardown)
{
    enum { N = 5000 };
    w.config.mark_batch = 1000;
    s_crash ();
    s_start ();
    s_open_many ("b", N, "r1", "i1", "svc");
    int64_t deleted_at = w.now;
    s_delete (EP__ENTITY_TYPE__ENTITY_ROUTER, "r1", 9);
    s_turn ();                                  //  one batch marked and committed
    cr_assert_eq (s_events ("session.terminating"), 1000);
    //  Killed; back 2 s later.
    s_crash ();
    w.now += 2000;
    s_start ();
    s_reset_outputs ();
    cr_assert_eq (reaper_jobs (w.reaper), 1);
    cr_assert_eq (reaper_count (w.reaper, EP__SESSION_STATE__TERMINATING), 1000);
    cr_assert_eq (reaper_queue_depth (w.reaper), N, "the unmarked ones are taken again");
    s_settle ();
    cr_assert_eq (reaper_count (w.reaper, EP__SESSION_STATE__TERMINATING), N);
    size_t sent = 0;
    for (s_command_t *command = (s_command_t *) zlistx_first (w.commands); command;
         command = (s_command_t *) zlistx_next (w.commands))
        sent += zlistx_size (command->ids);
    cr_assert_eq (sent, N, "every session is sent a close after the restart");
    //  Nobody acks: forced at the original deadline, not later, not before.
    s_advance (deleted_at + DEADLINE - 1, 200);
    cr_assert_eq (s_events ("session.reaped"), 0);
    w.now = deleted_at + DEADLINE;
    s_settle ();
    cr_assert_eq (s_events ("session.reaped"), N);
    cr_assert_eq (s_count ("r1", EP__SESSION_STATE__ACTIVE) + s_count ("r1", EP__SESSION_STATE__TERMINATING), 0);
}

//  The etcd mode's takeover: a shard's records (as reapkeys packs them)
//  written into the running reaper's store by reapload, then adopted.
static void
s_adopt_kv (ep_etcd_kv_t *kv, const char *key, uint8_t *value, size_t size)
{
    kv->key = (uint8_t *) strdup (key);
    kv->key_size = strlen (key);
    kv->value = value;
    kv->value_size = size;
}

//  Writes r1's shard as its old owner left it into the store (reapload):
//  n sessions, a cleanup that marked them all, acked of them acknowledged,
//  its deadline at wall time deadline (with_job false: the n sessions
//  open, no cleanup).
static void
s_load_shard_of (int n, int acked, int64_t deadline, bool with_job)
{
    ep_etcd_kv_t *kvs = (ep_etcd_kv_t *) calloc ((size_t) n + 1, sizeof *kvs);
    char key [REAPKEYS_KEY_MAX], id [16];
    size_t size;
    for (int i = 0; i < n; i++) {
        snprintf (id, sizeof id, "t%04d", i);
        sessiondb_row_t row = {
            .id = id, .router_id = "r1", .identity_id = "i1", .service_id = "svc",
            .type = EP__SESSION_TYPE__DIAL, .state = i < acked? EP__SESSION_STATE__CLOSED
                                                              : EP__SESSION_STATE__ACTIVE,
            .created_ms = WALL0, .last_seen_ms = WALL0, .close_reason = i < acked? "router-deleted": NULL,
            .closed_ms = i < acked? WALL0 + w.now: 0, .job_id = i < acked? "job9": NULL
        };
        uint8_t *bytes = reapkeys_pack_session (&row, &size);
        s_adopt_kv (&kvs [i], reapkeys_session ("/ep/", 5, id, key, sizeof key), bytes, size);
    }
    reapkeys_job_t job = {
        .job = { .id = "job9", .reason = "router-deleted", .target_type = "router", .target_id = "r1",
                 .revision = 9, .started_ms = WALL0 + w.now - 9000, .deadline_ms = deadline,
                 .scheduled = (uint64_t) n },
        .marked = (uint64_t) n, .marking_done = true
    };
    job.closed [0] = (uint64_t) acked;
    uint8_t *bytes = reapkeys_pack_job (&job, &size);
    s_adopt_kv (&kvs [n], reapkeys_job ("/ep/", 5, "job9", key, sizeof key), bytes, size);
    size_t records = (size_t) n + (with_job? 1: 0);
    sessiondb_t *db = sessiondb_new (w.store);
    cr_assert_eq (ep_store_begin (w.store), 0);
    reapload_stats_t stats;
    cr_assert_eq (reapload_shard (db, "/ep/", kvs, records, WALL0 + w.now, NULL, NULL, &stats), 0);
    cr_assert_eq (ep_store_commit (w.store), 0);
    sessiondb_destroy (&db);
    for (int i = 0; i <= n; i++) {
        free (kvs [i].key);
        free (kvs [i].value);
    }
    free (kvs);
    cr_assert_eq (stats.marked, with_job? (size_t) (n - acked): 0);
}

static void
s_load_shard (int n, int acked, int64_t deadline)
{
    s_load_shard_of (n, acked, deadline, true);
}

Test (reaper, a_shard_taken_over_mid_cleanup_is_resent_and_forced_at_its_deadline_not_before,
      .init = s_setup, .fini = s_teardown)
{
    enum { N = 2000 };
    //  This instance already holds a router of its own.
    s_open ("own1", "r3", "i1", "svc");
    //  The shard of r1 as its old owner left it: N sessions, a cleanup that
    //  marked them all, 500 acknowledged, a deadline 6 s from now.
    int64_t deadline = WALL0 + w.now + 6000;
    s_load_shard (N, 500, deadline);

    cr_assert_eq (reaper_adopt (w.reaper, w.now), 0);
    cr_assert_eq (reaper_jobs (w.reaper), 1);
    cr_assert_eq (reaper_count (w.reaper, EP__SESSION_STATE__TERMINATING), N - 500);
    cr_assert_eq (reaper_count (w.reaper, EP__SESSION_STATE__ACTIVE), 1, "its own session untouched");
    //  Adopting again takes nothing twice.
    cr_assert_eq (reaper_adopt (w.reaper, w.now), 0);
    cr_assert_eq (reaper_count (w.reaper, EP__SESSION_STATE__TERMINATING), N - 500);
    s_reset_outputs ();
    s_settle ();
    size_t sent = 0;
    for (s_command_t *command = (s_command_t *) zlistx_first (w.commands); command;
         command = (s_command_t *) zlistx_next (w.commands))
        sent += zlistx_size (command->ids);
    cr_assert_eq (sent, N - 500, "every close not acknowledged is sent again");
    cr_assert_eq (s_events ("session.terminating"), 0, "marked by the old owner: not again");
    //  Nobody acks: forced at the job's deadline, not before.
    s_advance (deadline - WALL0 - 1, 200);
    cr_assert_eq (s_events ("session.reaped"), 0);
    w.now = deadline - WALL0;
    s_settle ();
    cr_assert_eq (s_events ("session.reaped"), N - 500);
    cr_assert_eq (s_count ("r1", EP__SESSION_STATE__TERMINATING) + s_count ("r1", EP__SESSION_STATE__ACTIVE), 0);
    cr_assert_eq (reaper_count (w.reaper, EP__SESSION_STATE__ACTIVE), 1);
}

static bool
s_not_r1 (void *arg, const char *router_id)
{
    (void) arg;
    return !streq (router_id, "r1");
}

Test (reaper, a_shard_lost_is_forgotten_without_closing_and_can_come_back, .init = s_setup, .fini = s_teardown)
{
    s_open ("own1", "r3", "i1", "svc");
    int64_t deadline = WALL0 + w.now + 6000;
    s_load_shard (100, 10, deadline);
    cr_assert_eq (reaper_adopt (w.reaper, w.now), 0);
    cr_assert_eq (reaper_count (w.reaper, EP__SESSION_STATE__TERMINATING), 90);
    s_settle ();
    s_reset_outputs ();
    //  Lost: nothing of r1 is left, nothing was closed, no command goes out.
    cr_assert_eq (reaper_forget (w.reaper, s_not_r1, NULL), 90);
    cr_assert_eq (reaper_count (w.reaper, EP__SESSION_STATE__TERMINATING), 0);
    cr_assert_eq (reaper_count (w.reaper, EP__SESSION_STATE__ACTIVE), 1);
    cr_assert_eq (reaper_jobs (w.reaper), 0);
    cr_assert_eq (reaper_queue_depth (w.reaper), 0);
    s_advance (deadline - WALL0 + 1000, 200);
    cr_assert_eq (zlistx_size (w.events), 0);
    cr_assert_eq (zlistx_size (w.commands), 0);
    cr_assert_eq (s_count ("r1", EP__SESSION_STATE__CLOSED), 0, "its rows left the store too");
    //  Back (taken over again): loaded and adopted again, forced at the deadline.
    s_load_shard (100, 10, deadline + 5000);
    cr_assert_eq (reaper_adopt (w.reaper, w.now), 0);
    cr_assert_eq (reaper_count (w.reaper, EP__SESSION_STATE__TERMINATING), 90);
    w.now = deadline - WALL0 + 5000;
    s_settle ();
    cr_assert_eq (s_events ("session.reaped"), 90);
}

Test (reaper, a_batch_etcd_refuses_is_undone_and_one_it_takes_commits, .init = s_setup, .fini = s_teardown)
{
    Ep__Session session = EP__SESSION__INIT;
    session.id = "e1";
    session.identity_id = "i1";
    session.service_id = "svc";
    session.has_type = true;
    session.type = EP__SESSION_TYPE__DIAL;
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.router_id = "r1";
    request.op_case = EP__SESSION_REQUEST__OP_OPEN;
    request.open = &session;
    reaper_result_t result;
    reaper_result_init (&result, "req");
    reaper_handle (w.reaper, &request, &s_watchdog, w.now, &result);
    reaper_result_clear (&result);
    cr_assert (reaper_prepare (w.reaper), "an open batch to send");
    reaper_refuse (w.reaper, "a shard of the batch is another instance's now (fenced)");
    cr_assert_eq (reaper_commit (w.reaper), -1);
    cr_assert (strstr (reaper_failure (w.reaper), "fenced"));
    cr_assert_eq (reaper_count (w.reaper, EP__SESSION_STATE__ACTIVE), 0, "undone");
    cr_assert_eq (s_count ("r1", EP__SESSION_STATE__ACTIVE), 0);
    s_drain ();
    cr_assert_eq (s_events ("session.created"), 0);
    //  Asked again, taken.
    reaper_result_init (&result, "req");
    reaper_handle (w.reaper, &request, &s_watchdog, w.now, &result);
    reaper_result_clear (&result);
    cr_assert (reaper_prepare (w.reaper));
    cr_assert_eq (reaper_commit (w.reaper), 0);
    s_drain ();
    cr_assert_eq (reaper_count (w.reaper, EP__SESSION_STATE__ACTIVE), 1);
    cr_assert_eq (s_events ("session.created"), 1);
    //  Nothing open: nothing to send.
    cr_assert_not (reaper_prepare (w.reaper));
    cr_assert_eq (reaper_commit (w.reaper), 0);
}

Test (reaper, a_client_close_during_cleanup_counts_as_such, .init = s_setup, .fini = s_teardown)
{
    s_open ("c1", "r1", "i1", "svc");
    s_open ("c2", "r1", "i1", "svc");
    s_delete (EP__ENTITY_TYPE__ENTITY_ROUTER, "r1", 2);
    s_settle ();
    cr_assert_eq (s_close ("c1", "r1"), EP__STATUS__CODE__OK);
    w.now += DEADLINE;
    s_settle ();
    Ep__SessionState state;
    char reason [32];
    cr_assert (s_get ("c1", &state, reason, NULL));
    cr_assert_str_eq (reason, "client-closed");
    cr_assert (s_get ("c2", &state, reason, NULL));
    cr_assert_str_eq (reason, "forced");
}

Test (reaper, a_restart_resets_last_seen_and_nothing_expires_before_presence_is_known,
      .init = s_setup, .fini = s_teardown)
{
    s_open ("live", "r1", "i1", "svc");
    s_open ("quiet", "r1", "i1", "svc");
    s_crash ();
    w.now += 60000;                             //  down for a minute (>> T2)
    s_start ();
    //  The bus is not live yet: presence unknown, nothing judged.
    s_advance (w.now + 4 * T2, 100);
    cr_assert_eq (s_events ("session.reaped"), 0);
    cr_assert_eq (zlistx_size (w.commands), 0, "no probes before presence is known");
    //  The bus comes alive; r1 is held; "live" heartbeats all along.
    reaper_bus_live (w.reaper, w.now);
    const char *held [] = { "r1", NULL };
    const char *live [] = { "live", NULL };
    int64_t known = w.now + PRESENCE;
    w.held = held;
    while (w.now < known + 3 * T2) {
        s_heartbeat ("r1", live, 1, NULL);
        s_advance (w.now + 500, 100);
        cr_assert (reaper_presence_known (w.reaper) == (w.now >= known));
    }
    //  "quiet" was probed (once router presence was known), then expired.
    Ep__SessionState state;
    char reason [32];
    cr_assert (s_get ("live", &state, NULL, NULL));
    cr_assert_eq (state, EP__SESSION_STATE__ACTIVE);
    cr_assert (s_get ("quiet", &state, reason, NULL));
    cr_assert_eq (state, EP__SESSION_STATE__CLOSED);
    cr_assert_str_eq (reason, "expired");
    s_command_t *probe = (s_command_t *) zlistx_first (w.commands);
    cr_assert_not_null (probe);
    cr_assert (probe->probe);
    cr_assert_eq (zlistx_size (probe->ids), 1);
    cr_assert_str_eq ((char *) zlistx_first (probe->ids), "quiet");
}

Test (reaper, a_silent_router_is_probed_then_expired_and_a_probe_answer_saves, .init = s_setup, .fini = s_teardown)
{
    reaper_bus_live (w.reaper, w.now);
    const char *held [] = { "r1", NULL };
    w.held = held;
    s_advance (w.now + PRESENCE, 100);
    cr_assert (reaper_presence_known (w.reaper));
    s_open ("p1", "r1", "i1", "svc");
    s_open ("p2", "r1", "i1", "svc");
    int64_t opened = w.now;
    //  The router stays online (beacons) but says nothing about its sessions.
    while (zlistx_size (w.commands) == 0)
        s_advance (w.now + 100, 100);
    cr_assert_geq (w.now - opened, T1, "probed before T1");
    cr_assert_leq (w.now - opened, T1 + 200);
    s_command_t *probe = (s_command_t *) zlistx_first (w.commands);
    cr_assert (probe->probe);
    cr_assert_eq (zlistx_size (probe->ids), 2);
    cr_assert_eq (strncmp (probe->id, "probe-", 6), 0);
    cr_assert_eq (probe->deadline, WALL0 + w.now + T2 - T1);
    //  The router answers the probe for p1 only: p1 is alive.
    zlistx_t *alive = zlistx_new ();
    zlistx_add_end (alive, "p1");
    s_ack ("r1", probe->id, alive);
    zlistx_destroy (&alive);
    s_advance (opened + T2 + 500, 100);
    Ep__SessionState state;
    char reason [32];
    cr_assert (s_get ("p2", &state, reason, NULL));
    cr_assert_eq (state, EP__SESSION_STATE__CLOSED);
    cr_assert_str_eq (reason, "expired");
    cr_assert (s_get ("p1", &state, NULL, NULL));
    cr_assert_eq (state, EP__SESSION_STATE__ACTIVE, "answered the probe");
    cr_assert_eq (s_events ("session.reaped p2 expired"), 1);
}

Test (reaper, a_router_offline_past_the_grace_is_cleaned_up, .init = s_setup, .fini = s_teardown)
{
    s_open ("o1", "r1", "i1", "svc");
    s_open ("o2", "r2", "i1", "svc");
    reaper_bus_live (w.reaper, w.now);
    const char *both [] = { "r1", "r2", NULL }, *only_r2 [] = { "r2", NULL };
    w.held = both;
    s_advance (w.now + PRESENCE, 100);
    cr_assert (reaper_presence_known (w.reaper));
    //  r1's watchdog stops listing it.
    w.held = only_r2;
    int64_t gone = w.now;
    const char *ids [] = { "o2", NULL };
    while (w.now < gone + GRACE - 1) {
        s_heartbeat ("r2", ids, 1, NULL);
        s_advance (w.now + 500 < gone + GRACE - 1? w.now + 500: gone + GRACE - 1, 100);
    }
    cr_assert_eq (s_events ("session.terminating"), 0, "not before the grace");
    while (w.now < gone + GRACE + DEADLINE + 500) {
        s_heartbeat ("r2", ids, 1, NULL);
        s_advance (w.now + 500, 100);
    }
    cr_assert_eq (s_events ("session.terminating o1 router-offline"), 1);
    cr_assert_eq (s_events ("session.reaped o1 forced"), 1);
    for (s_command_t *command = (s_command_t *) zlistx_first (w.commands); command;
         command = (s_command_t *) zlistx_next (w.commands))
        cr_assert (command->probe || !streq (command->router, "r1"),
                   "no CloseSessions to an offline router");
    Ep__SessionState state;
    cr_assert (s_get ("o2", &state, NULL, NULL));
    cr_assert_eq (state, EP__SESSION_STATE__ACTIVE);
}

Test (reaper, an_identity_deletion_spans_routers, .init = s_setup, .fini = s_teardown)
{
    s_open ("x1", "r1", "gone", "svc");
    s_open ("x2", "r2", "gone", "svc");
    s_open ("x3", "r2", "stays", "svc");
    s_delete (EP__ENTITY_TYPE__ENTITY_IDENTITY, "gone", 4);
    s_settle ();
    cr_assert_eq (s_events ("session.terminating"), 2);
    cr_assert_eq (zlistx_size (w.commands), 2);
    for (s_command_t *command = (s_command_t *) zlistx_first (w.commands); command;
         command = (s_command_t *) zlistx_next (w.commands)) {
        cr_assert_eq (zlistx_size (command->ids), 1);
        cr_assert_str_eq (command->reason, "identity-deleted");
        char *id = (char *) zlistx_first (command->ids);
        zlistx_t *ids = zlistx_new ();
        zlistx_add_end (ids, id);
        s_ack (command->router, command->id, ids);
        zlistx_destroy (&ids);
    }
    cr_assert_eq (s_events ("session.closed x1 identity-deleted"), 1);
    cr_assert_eq (s_events ("session.closed x2 identity-deleted"), 1);
    Ep__SessionState state;
    cr_assert (s_get ("x3", &state, NULL, NULL));
    cr_assert_eq (state, EP__SESSION_STATE__ACTIVE);
    cr_assert_eq (s_open_full ("x4", "r1", "gone", "svc", 0, 0, 0), EP__STATUS__CODE__FAILED_PRECONDITION);
    //  Re-created in the model: sessions may open again.
    ep_model_event_t created = { .kind = EP__MODEL_OP__KIND__CREATED,
                                 .type = EP__ENTITY_TYPE__ENTITY_IDENTITY, .id = "gone", .revision = 5 };
    reaper_model_event (w.reaper, &created, w.now);
    s_open ("x4", "r1", "gone", "svc");
}

Test (reaper, what_the_model_lost_while_the_reaper_was_away_is_cleaned_up, .init = s_setup, .fini = s_teardown)
{
    s_open ("m1", "r1", "i1", "svc");
    s_open ("m2", "r2", "i1", "svc");
    ep_model_view_t *view = ep_model_view_new ();
    ep_model_view_reset (view, "gen-1", 12);
    Ep__Router router = EP__ROUTER__INIT;
    router.id = "r1";
    Ep__Identity identity = EP__IDENTITY__INIT;
    identity.id = "i1";
    Ep__Service service = EP__SERVICE__INIT;
    service.id = "svc";
    Ep__Entity entities [3] = { EP__ENTITY__INIT, EP__ENTITY__INIT, EP__ENTITY__INIT };
    entities [0].kind_case = EP__ENTITY__KIND_ROUTER;
    entities [0].router = &router;
    entities [1].kind_case = EP__ENTITY__KIND_IDENTITY;
    entities [1].identity = &identity;
    entities [2].kind_case = EP__ENTITY__KIND_SERVICE;
    entities [2].service = &service;
    for (int i = 0; i < 3; i++)
        cr_assert_eq (ep_model_view_put (view, &entities [i]), 0);
    //  Before the model is followed, a cleanup query cannot be answered
    //  for a revision.
    Ep__CleanupQuery query = EP__CLEANUP_QUERY__INIT;
    query.router_id = "r2";
    query.has_min_revision = true;
    query.min_revision = 12;
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.op_case = EP__SESSION_REQUEST__OP_CLEANUP;
    request.cleanup = &query;
    reaper_result_t result;
    cr_assert_eq (s_call (&request, &s_operator, &result), EP__STATUS__CODE__UNAVAILABLE);
    reaper_result_clear (&result);
    reaper_model_ready (w.reaper, view, w.now);
    s_settle ();
    cr_assert_eq (s_events ("session.terminating m2 router-deleted"), 1);
    cr_assert_eq (s_events ("session.terminating m1"), 0);
    cr_assert_eq (s_call (&request, &s_operator, &result), EP__STATUS__CODE__OK);
    cr_assert_eq (result.reply.n_jobs, 1);
    cr_assert_eq (result.reply.jobs [0]->scheduled, 1);
    cr_assert_eq (result.reply.jobs [0]->remaining, 1);
    cr_assert_not (result.reply.jobs [0]->done);
    cr_assert_eq (result.reply.model_revision, 12);
    reaper_result_clear (&result);
    s_crash ();                                 //  before the view goes
    ep_model_view_destroy (&view);
    s_start ();
}

Test (reaper, a_long_lived_session_in_a_cleanup_raises_a_warning, .init = s_setup, .fini = s_teardown)
{
    w.config.long_lived_ms = 3600000;
    s_crash ();
    s_start ();
    int64_t wall = WALL0 + w.now;
    cr_assert_eq (s_open_full ("ancient", "r1", "i1", "svc", 0, 0, wall - 2 * 3600000), EP__STATUS__CODE__OK);
    cr_assert_eq (s_open_full ("young", "r1", "i1", "svc", 0, 0, wall - 1000), EP__STATUS__CODE__OK);
    cr_assert_eq (s_open_full ("future", "r1", "i1", "svc", 0, 0, wall + 3600000), EP__STATUS__CODE__OK);
    s_delete (EP__ENTITY_TYPE__ENTITY_SERVICE, "svc", 3);
    s_settle ();
    cr_assert_eq (s_events ("session.warning ancient long-lived"), 1);
    cr_assert_eq (s_events ("session.warning"), 1);
    cr_assert_eq (s_events ("session.terminating young service-deleted"), 1);
}

//  view holds router alone, at revision.
static void
s_view_of_router (ep_model_view_t *view, const char *router_id, uint64_t revision)
{
    ep_model_view_reset (view, "gen-1", revision);
    Ep__Router router = EP__ROUTER__INIT;
    router.id = (char *) router_id;
    Ep__Entity entity = EP__ENTITY__INIT;
    entity.kind_case = EP__ENTITY__KIND_ROUTER;
    entity.router = &router;
    cr_assert_eq (ep_model_view_put (view, &entity), 0);
}

//  A watchdog's beacon: it holds the n routers held, its view at revision.
static void
s_watchdog_beacon (const char **held, size_t n, uint64_t revision)
{
    Ep__PresenceEvent presence = EP__PRESENCE_EVENT__INIT;
    presence.instance_id = "watchdog-1";
    presence.has_instance_epoch = true;
    presence.instance_epoch = 42;
    presence.n_routers = n;
    presence.routers = (char **) held;
    presence.has_model_revision = true;
    presence.model_revision = revision;
    reaper_presence (w.reaper, "beacon", &presence, w.now);
}

//  A late open for a router the model deleted while the reaper was away
//  (its tombstone did not survive the restart): once the reaper's view has
//  reached the revision the watchdogs report and still lacks the router,
//  the session is cleaned up as for a deletion, not after the offline
//  grace. While the view lags behind the watchdogs, it is left alone (the
//  router may be new).
Test (reaper, a_late_open_for_a_router_deleted_while_away_is_cleaned_up, .init = s_setup, .fini = s_teardown)
{
    ep_model_view_t *view = ep_model_view_new ();
    s_view_of_router (view, "r1", 12);
    reaper_model_ready (w.reaper, view, w.now);
    //  A watchdog whose view is ahead of ours (revision 20).
    const char *held [] = { "r1", "late", NULL };
    s_watchdog_beacon (held, 2, 20);
    s_open ("l1", "late", "i1", "svc");
    s_open ("l2", "r1", "i1", "svc");
    s_advance (w.now + 10000, 500);
    cr_assert_eq (s_events ("session.terminating"), 0, "our view (12) lags the watchdog's (20): wait");
    //  Our view catches up to 20 without the router: it was deleted.
    s_view_of_router (view, "r1", 20);
    s_advance (w.now + 5000, 500);
    cr_assert_eq (s_events ("session.terminating l1 router-deleted"), 1);
    cr_assert_eq (s_events ("session.terminating l2"), 0, "a router the view holds is left alone");
    s_crash ();                                 //  before the view goes
    ep_model_view_destroy (&view);
    s_start ();
}

//  A shard taken over after its router left the model (while its owner
//  was gone, or while the shard was adopted: the model's event found none
//  of its sessions in memory): once the view has caught up with the
//  watchdogs and lacks the router, its sessions are cleaned up.
Test (reaper, an_adopted_shards_router_deleted_meanwhile_is_cleaned_up, .init = s_setup, .fini = s_teardown)
{
    ep_model_view_t *view = ep_model_view_new ();
    s_view_of_router (view, "r3", 20);
    reaper_model_ready (w.reaper, view, w.now);
    const char *held [] = { "r3", NULL };
    s_watchdog_beacon (held, 1, 20);
    s_open ("own1", "r3", "i1", "svc");
    //  r1's shard, as its old owner left it: 50 sessions open, no cleanup.
    s_load_shard_of (50, 0, 0, false);
    cr_assert_eq (reaper_adopt (w.reaper, w.now), 0);
    cr_assert_eq (reaper_count (w.reaper, EP__SESSION_STATE__ACTIVE), 51);
    reaper_adopted_routers (w.reaper, w.now);
    s_advance (w.now + 1000, 500);
    cr_assert_eq (s_events ("session.terminating"), 50, "r1's sessions are not being cleaned up");
    cr_assert_eq (s_events ("session.terminating own1"), 0, "a router the view holds is left alone");
    s_crash ();                                 //  before the view goes
    ep_model_view_destroy (&view);
    s_start ();
}

//  ---------------------------------------------------------------------
//  Adaptive liveness

//  Restarts the reaper with adaptive (or fixed) liveness learning from 4
//  intervals, T1 between 1 s and 100 s, fixed T1 30 s and T2 45 s.
static void
s_liveness_start (bool adaptive)
{
    s_crash ();
    w.config.adaptive = adaptive;
    w.config.evasive_ms = 30000;
    w.config.expire_ms = 45000;
    w.config.offline_grace_ms = 120000;
    w.config.cadence.min_samples = 4;
    w.config.cadence.window = 64;
    w.config.cadence.min_ms = 1000;
    w.config.cadence.max_ms = 100000;
    w.metrics = ep_metrics_new ("reaper");
    s_start ();
    reaper_bus_live (w.reaper, w.now);
}

//  The liveness read of router (one), or NULL-terminated fills of all.
static Ep__Status__Code
s_liveness (const char *router, const char *token, uint32_t page, const ep_caller_t *caller,
            reaper_result_t *result)
{
    Ep__LivenessQuery query = EP__LIVENESS_QUERY__INIT;
    query.router_id = (char *) router;
    query.page_token = (char *) token;
    query.has_page_size = page > 0;
    query.page_size = page;
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.op_case = EP__SESSION_REQUEST__OP_LIVENESS;
    request.liveness = &query;
    return s_call (&request, caller, result);
}

//  One router's liveness as the read shows it (copied out).
static Ep__RouterLiveness
s_router_liveness (const char *router)
{
    reaper_result_t result;
    Ep__Status__Code code = s_liveness (router, NULL, 0, &s_operator, &result);
    cr_assert_eq (code, EP__STATUS__CODE__OK, "liveness %s: %s", router, result.status.message);
    cr_assert_eq (result.reply.n_routers, 1);
    Ep__RouterLiveness copy = *result.reply.routers [0];
    cr_assert_str_eq (copy.router_id, router);
    copy.router_id = NULL;
    reaper_result_clear (&result);
    return copy;
}

static double
s_gauge (const char *name, const char *router)
{
    char series [160];
    snprintf (series, sizeof series, "%s{router=\"%s\"}", name, router);
    char *page = ep_metrics_render (w.metrics);
    double value = ep_metric_value (page, series);
    free (page);
    return value;
}

//  Advances in steps of 100 ms until an event starting with prefix is
//  published; returns when, or -1 after until.
static int64_t
s_until_event (const char *prefix, int64_t until)
{
    while (w.now < until) {
        if (s_events (prefix))
            return w.now;
        s_advance (w.now + 100, 100);
    }
    return s_events (prefix)? w.now: -1;
}

//  The first probe command to router, or NULL.
static s_command_t *
s_probe_of (const char *router)
{
    for (s_command_t *command = (s_command_t *) zlistx_first (w.commands); command;
         command = (s_command_t *) zlistx_next (w.commands))
        if (command->probe && streq (command->router, router))
            return command;
    return NULL;
}

Test (reaper, each_router_is_judged_by_its_own_heartbeat_cadence, .init = s_setup, .fini = s_teardown)
{
    s_liveness_start (true);
    const char *held [] = { "fast", "slow", NULL };
    w.held = held;
    s_advance (w.now + PRESENCE, 100);
    cr_assert (reaper_presence_known (w.reaper));
    s_open ("f1", "fast", "i1", "svc");
    s_open ("f2", "fast", "i1", "svc");
    s_open ("s1", "slow", "i1", "svc");
    const char *fast [] = { "f1", "f2", NULL }, *slow [] = { "s1", NULL };
    //  Until learnt both have the fixed thresholds.
    Ep__RouterLiveness info = s_router_liveness ("fast");
    cr_assert_not (info.learnt);
    cr_assert_eq (info.evasive_ms, 30000);
    cr_assert_eq (info.expire_ms, 45000);
    cr_assert_eq (info.sessions, 2);
    cr_assert (info.online);
    //  fast beats every 2 s, slow every 10 s, for 50 s.
    int64_t start = w.now, last_fast = 0, last_slow = 0;
    for (int64_t t = 0; t <= 50000; t += 1000) {
        if (t % 2000 == 0) {
            s_heartbeat ("fast", fast, (uint64_t) t, NULL);
            last_fast = w.now;
        }
        if (t % 10000 == 0) {
            s_heartbeat ("slow", slow, (uint64_t) t, NULL);
            last_slow = w.now;
        }
        s_advance (start + t + 1000, 100);
    }
    cr_assert_eq (s_events ("session.reaped"), 0, "a heartbeating session was reaped");
    cr_assert_eq (zlistx_size (w.commands), 0, "a heartbeating session was probed");
    Ep__RouterLiveness f = s_router_liveness ("fast"), l = s_router_liveness ("slow");
    cr_assert (f.learnt && l.learnt);
    cr_assert_eq (f.interval_ms, 2000);
    cr_assert_eq (f.samples, 25);
    cr_assert_eq (f.evasive_ms, 5000, "2 s x 2.5: %lld", (long long) f.evasive_ms);
    cr_assert_eq (f.expire_ms, 7500, "x 45/30: %lld", (long long) f.expire_ms);
    cr_assert_eq (l.interval_ms, 10000);
    cr_assert_eq (l.evasive_ms, 25000);
    cr_assert_eq (l.expire_ms, 37500);
    cr_assert_eq (s_gauge ("edgeplane_reaper_session_evasive_seconds", "fast"), 5.0);
    cr_assert_eq (s_gauge ("edgeplane_reaper_session_expire_seconds", "slow"), 37.5);
    //  Both go silent (still online): each probed at its own T1, reaped at
    //  its own T2, the probe carrying its own answer time.
    int64_t reaped_fast = s_until_event ("session.reaped f1 expired", w.now + 60000);
    cr_assert_eq (reaped_fast, last_fast + 7500, "fast reaped %lld ms after silence",
                  (long long) (reaped_fast - last_fast));
    cr_assert_eq (s_events ("session.reaped f2 expired"), 1);
    s_command_t *probe = s_probe_of ("fast");
    cr_assert_not_null (probe, "fast was not probed first");
    cr_assert_eq (zlistx_size (probe->ids), 2);
    cr_assert_eq (probe->deadline, WALL0 + last_fast + 5000 + 2500, "probe answer time T2 - T1");
    cr_assert_eq (s_events ("session.reaped s1"), 0, "slow judged by fast's thresholds");
    int64_t reaped_slow = s_until_event ("session.reaped s1 expired", w.now + 60000);
    cr_assert_eq (reaped_slow, last_slow + 37500, "slow reaped %lld ms after silence",
                  (long long) (reaped_slow - last_slow));
    probe = s_probe_of ("slow");
    cr_assert_not_null (probe, "slow was not probed first");
    cr_assert_eq (probe->deadline, WALL0 + last_slow + 25000 + 12500);
}

//  A router offline for a while, then a failover (a join at another
//  watchdog): neither time across is an interval of its cadence.
Test (reaper, presence_changes_are_gaps_in_a_routers_cadence, .init = s_setup, .fini = s_teardown)
{
    s_liveness_start (true);
    const char *held [] = { "r1", NULL }, *none [] = { NULL };
    w.held = held;
    s_advance (w.now + PRESENCE, 100);
    s_open ("a", "r1", "i1", "svc");
    const char *ids [] = { "a", NULL };
    for (int i = 0; i <= 5; i++) {              //  beats at 0 .. 10 s: 5 intervals
        s_heartbeat ("r1", ids, 1, NULL);
        s_advance (w.now + 2000, 100);
    }
    w.held = none;                              //  offline for 15 s
    s_advance (w.now + 15000, 100);
    w.held = held;                              //  back (its beacon first)
    s_advance (w.now + 100, 100);
    for (int i = 0; i <= 3; i++) {              //  3 more intervals
        s_heartbeat ("r1", ids, 1, NULL);
        s_advance (w.now + 2000, 100);
    }
    Ep__RouterLiveness info = s_router_liveness ("r1");
    cr_assert_eq (info.samples, 5 + 3, "%u intervals: the offline time counted", info.samples);
    cr_assert_eq (info.interval_ms, 2000);
    //  A reconnect to another watchdog, 6 s without a batch, while the
    //  first still holds it (so it never looks offline).
    s_advance (w.now + 4000, 100);
    Ep__PresenceEvent join = EP__PRESENCE_EVENT__INIT;
    char *routers [] = { "r1" };
    join.instance_id = "watchdog-2";
    join.has_instance_epoch = true;
    join.instance_epoch = 7;
    join.n_routers = 1;
    join.routers = routers;
    reaper_presence (w.reaper, "join", &join, w.now);
    s_heartbeat ("r1", ids, 1, NULL);
    s_advance (w.now + 2000, 100);
    s_heartbeat ("r1", ids, 1, NULL);
    info = s_router_liveness ("r1");
    cr_assert_eq (info.samples, 5 + 3 + 1, "%u intervals", info.samples);
    cr_assert_eq (info.interval_ms, 2000, "the failover counted: p99 %lld", (long long) info.interval_ms);
    cr_assert_eq (info.evasive_ms, 5000);
    //  A restart forgets every cadence: the fixed thresholds again.
    s_crash ();
    s_start ();
    info = s_router_liveness ("r1");
    cr_assert_eq (info.samples, 0);
    cr_assert_not (info.learnt);
    cr_assert_eq (info.evasive_ms, 30000);
}

//  --liveness fixed: the same cadence changes nothing, to the millisecond.
Test (reaper, fixed_liveness_keeps_evasive_and_expire_for_every_router, .init = s_setup, .fini = s_teardown)
{
    s_liveness_start (false);
    const char *held [] = { "fast", NULL };
    w.held = held;
    s_advance (w.now + PRESENCE, 100);
    s_open ("f1", "fast", "i1", "svc");
    const char *ids [] = { "f1", NULL };
    int64_t last = 0;
    for (int i = 0; i <= 10; i++) {
        s_heartbeat ("fast", ids, 1, NULL);
        last = w.now;
        s_advance (w.now + 2000, 100);
    }
    Ep__RouterLiveness info = s_router_liveness ("fast");
    cr_assert_not (info.learnt);
    cr_assert_eq (info.samples, 10, "the cadence is still shown");
    cr_assert_eq (info.evasive_ms, 30000);
    cr_assert_eq (info.expire_ms, 45000);
    cr_assert_eq (s_gauge ("edgeplane_reaper_session_evasive_seconds", "fast"), 30.0);
    int64_t reaped = s_until_event ("session.reaped f1 expired", w.now + 60000);
    cr_assert_eq (reaped, last + 45000, "reaped %lld ms after silence", (long long) (reaped - last));
    s_command_t *probe = s_probe_of ("fast");
    cr_assert_not_null (probe);
    cr_assert_eq (probe->deadline, WALL0 + last + 30000 + 15000);
}

Test (reaper, the_liveness_read_pages_by_router_and_checks_its_input, .init = s_setup, .fini = s_teardown)
{
    const char *routers [] = { "r3", "r1", "r2" };
    for (size_t i = 0; i < 3; i++) {
        char id [8];
        snprintf (id, sizeof id, "s%zu", i);
        s_open (id, routers [i], "i1", "svc");
    }
    reaper_result_t result;
    cr_assert_eq (s_liveness (NULL, NULL, 2, &s_operator, &result), EP__STATUS__CODE__OK);
    cr_assert_eq (result.reply.n_routers, 2);
    cr_assert_str_eq (result.reply.routers [0]->router_id, "r1");
    cr_assert_str_eq (result.reply.routers [1]->router_id, "r2");
    cr_assert_str_eq (result.reply.next_page_token, "r2");
    reaper_result_clear (&result);
    cr_assert_eq (s_liveness (NULL, "r2", 2, &s_terminators, &result), EP__STATUS__CODE__OK);
    cr_assert_eq (result.reply.n_routers, 1);
    cr_assert_str_eq (result.reply.routers [0]->router_id, "r3");
    cr_assert_null (result.reply.next_page_token);
    reaper_result_clear (&result);
    cr_assert_eq (s_liveness ("r9", NULL, 0, &s_operator, &result), EP__STATUS__CODE__NOT_FOUND);
    reaper_result_clear (&result);
    cr_assert_eq (s_liveness ("bad id", NULL, 0, &s_operator, &result), EP__STATUS__CODE__INVALID_ARGUMENT);
    reaper_result_clear (&result);
    cr_assert_eq (s_liveness (NULL, NULL, 0, &s_subscriber, &result), EP__STATUS__CODE__PERMISSION_DENIED);
    reaper_result_clear (&result);
    //  A deleted router is forgotten (its sessions go to a cleanup).
    s_delete (EP__ENTITY_TYPE__ENTITY_ROUTER, "r1", 9);
    cr_assert_eq (s_liveness ("r1", NULL, 0, &s_operator, &result), EP__STATUS__CODE__NOT_FOUND);
    reaper_result_clear (&result);
}

//  ---------------------------------------------------------------------
//  The event outbox (outbox.c): durable session events

//  Rows in sessions.db's outbox table.
static int64_t
s_outbox_rows (void)
{
    sqlite3_stmt *stmt;
    cr_assert_eq (sqlite3_prepare_v2 (ep_store_handle (w.store), "SELECT COUNT(*) FROM outbox", -1,
                                      &stmt, NULL), SQLITE_OK);
    cr_assert_eq (sqlite3_step (stmt), SQLITE_ROW);
    int64_t rows = sqlite3_column_int64 (stmt, 0);
    sqlite3_finalize (stmt);
    return rows;
}

//  The ids handed out so far, joined by spaces.
static char *
s_ids (void)
{
    char *joined = strdup ("");
    for (char *id = (char *) zlistx_first (w.ids); id; id = (char *) zlistx_next (w.ids)) {
        char *longer = zsys_sprintf ("%s%s%s", joined, *joined? " ": "", id);
        free (joined);
        joined = longer;
    }
    return joined;
}

//  Echoes every id handed out so far, as the bus would, and commits.
static void
s_echo_all (void)
{
    for (char *id = (char *) zlistx_first (w.ids); id; id = (char *) zlistx_next (w.ids))
        reaper_echo (w.reaper, id);
    cr_assert_eq (reaper_commit (w.reaper), 0);
}

//  A decided event is a row until its echo: a restart hands every row out
//  again under the id it had, from the owner sessions.db keeps (not the
//  candidate of the new start); once echoed, nothing comes out again.
Test (reaper, events_are_kept_until_echoed_and_a_restart_resends_them_under_their_ids,
      .init = s_setup, .fini = s_teardown)
{
    //  s_setup's start chose the owner: the default candidate, "reaper".
    w.bus_down = true;
    s_open ("s1", "r1", "i1", "svc");
    cr_assert_eq (s_close ("s1", "r1"), EP__STATUS__CODE__OK);
    s_open ("s2", "r1", "i1", "svc");
    cr_assert_eq (s_events ("session."), 3);
    char *first = s_ids ();
    cr_assert_str_eq (first, "reaper:1 reaper:2 reaper:3");
    cr_assert_eq (s_outbox_rows (), 3, "every decided event is a row");
    cr_assert_eq (reaper_backlog (w.reaper), 0, "all handed out");
    s_turn ();
    cr_assert_eq (s_events ("session."), 3, "handed out once while in flight");

    s_crash ();
    w.config.owner = "reaper-second";
    s_start ();
    cr_assert_str_eq (reaper_outbox_owner (w.reaper), "reaper", "the owner is sessions.db's");
    cr_assert_eq (reaper_backlog (w.reaper), 3);
    s_reset_outputs ();
    zlistx_purge (w.ids);
    s_turn ();
    char *again = s_ids ();
    cr_assert_str_eq (again, first, "the same events under the same ids");
    cr_assert_eq (s_events ("session.created s1"), 1);
    cr_assert_eq (s_events ("session.closed s1 client-closed"), 1);
    cr_assert_eq (s_events ("session.created s2"), 1);
    free (again);
    s_echo_all ();
    cr_assert_eq (s_outbox_rows (), 0, "echoed rows are deleted");
    //  Only our own ids acknowledge: another reaper's, or a malformed one, not.
    s_open ("s3", "r1", "i1", "svc");
    cr_assert_eq (s_outbox_rows (), 1);
    reaper_echo (w.reaper, "reaperx:4");
    reaper_echo (w.reaper, "reaper:4x");
    reaper_echo (w.reaper, "other:4");
    reaper_echo (w.reaper, "reaper:");
    cr_assert_eq (reaper_commit (w.reaper), 0);
    cr_assert_eq (s_outbox_rows (), 1);
    reaper_echo (w.reaper, "reaper:4");
    cr_assert_eq (reaper_commit (w.reaper), 0);
    cr_assert_eq (s_outbox_rows (), 0);

    s_crash ();
    s_start ();
    s_reset_outputs ();
    s_settle ();
    cr_assert_eq (s_events ("session."), 0, "nothing echoed is sent again");
    free (first);
}

//  Nothing leaves before its commit: the open transaction's rows are not
//  handed out.
Test (reaper, events_are_handed_out_only_once_committed, .init = s_setup, .fini = s_teardown)
{
    Ep__Session session = EP__SESSION__INIT;
    session.id = "s1";
    session.identity_id = "i1";
    session.service_id = "svc";
    session.has_type = true;
    session.type = EP__SESSION_TYPE__DIAL;
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.router_id = "r1";
    request.op_case = EP__SESSION_REQUEST__OP_OPEN;
    request.open = &session;
    reaper_result_t result;
    reaper_result_init (&result, "req");
    reaper_handle (w.reaper, &request, &s_watchdog, w.now, &result);
    cr_assert_eq (result.status.code, EP__STATUS__CODE__OK);
    reaper_result_clear (&result);
    cr_assert (reaper_uncommitted (w.reaper));
    cr_assert_null (reaper_next_output (w.reaper, true), "handed out before the commit");
    cr_assert_eq (reaper_commit (w.reaper), 0);
    s_drain ();
    cr_assert_eq (s_events ("session.created s1"), 1);
}

//  Rows handed out and not echoed go out again, same ids, once the oldest
//  has waited 5 s; echoed ones do not.
Test (reaper, unechoed_events_are_resent_after_5s_under_the_same_ids, .init = s_setup, .fini = s_teardown)
{
    w.bus_down = true;
    s_open ("s1", "r1", "i1", "svc");
    s_open ("s2", "r1", "i1", "svc");
    int64_t sent = w.now;
    char *first = s_ids ();
    s_advance (sent + 4900, 100);
    cr_assert_eq (s_events ("session.created"), 2, "not before 5 s");
    s_advance (sent + 5200, 100);
    cr_assert_eq (s_events ("session.created"), 4, "both again after 5 s");
    cr_assert_eq (s_events ("session.created s1"), 2);
    zlistx_t *all = w.ids;
    cr_assert_eq (zlistx_size (all), 4);
    char *joined = s_ids ();
    char *expect = zsys_sprintf ("%s %s", first, first);
    cr_assert_str_eq (joined, expect, "the same ids again");
    free (joined);
    free (expect);
    //  The bus is back: the next resend is echoed, and that is the last.
    w.bus_down = false;
    s_advance (w.now + 5200, 100);
    cr_assert_eq (s_events ("session.created"), 6);
    cr_assert_eq (s_outbox_rows (), 0);
    s_advance (w.now + 20000, 1000);
    cr_assert_eq (s_events ("session.created"), 6, "echoed events are not resent");
    free (first);
}

//  A full outbox refuses opens with what to do, and only opens: closes
//  and heartbeats go on (their events beyond the cap); once the bus has
//  taken the backlog, opens are accepted again.
Test (reaper, a_full_outbox_refuses_opens_and_nothing_else, .init = s_setup, .fini = s_teardown)
{
    s_crash ();
    w.config.outbox_max = 3;
    w.metrics = ep_metrics_new ("reaper");
    s_start ();
    w.bus_down = true;
    s_open ("a", "r1", "i1", "svc");
    s_open ("b", "r1", "i1", "svc");
    s_open ("c", "r1", "i1", "svc");
    Ep__Session session = EP__SESSION__INIT;
    session.id = "d";
    session.identity_id = "i1";
    session.service_id = "svc";
    session.has_type = true;
    session.type = EP__SESSION_TYPE__DIAL;
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.router_id = "r1";
    request.op_case = EP__SESSION_REQUEST__OP_OPEN;
    request.open = &session;
    reaper_result_t result;
    cr_assert_eq (s_call (&request, &s_watchdog, &result), EP__STATUS__CODE__UNAVAILABLE);
    cr_assert (strstr (result.status.message, "event-outbox-full"), "%s", result.status.message);
    cr_assert (strstr (result.status.message, "bus"), "%s", result.status.message);
    reaper_result_clear (&result);
    cr_assert_eq (s_count (NULL, EP__SESSION_STATE__ACTIVE), 3, "d was not opened");
    //  A repeated open of an open session is the same answer, not an event.
    s_open ("a", "r1", "i1", "svc");
    cr_assert_eq (s_close ("a", "r1"), EP__STATUS__CODE__OK, "closes go on");
    const char *ids [] = { "b", "c", NULL };
    s_heartbeat ("r1", ids, 10, NULL);
    cr_assert_eq (s_outbox_rows (), 4, "the close's event is kept beyond the cap");
    char *page = ep_metrics_render (w.metrics);
    cr_assert_eq (ep_metric_value (page, "edgeplane_outbox_refused_total"), 1, "%s", page);
    cr_assert_eq (ep_metric_value (page, "edgeplane_outbox_events"), 4, "%s", page);
    free (page);
    //  The bus takes the backlog: opens again.
    s_echo_all ();
    cr_assert_eq (s_outbox_rows (), 0);
    s_open ("d", "r1", "i1", "svc");
    s_turn ();
    page = ep_metrics_render (w.metrics);
    cr_assert_eq (ep_metric_value (page, "edgeplane_outbox_events"), 1, "%s", page);
    free (page);
}

//  ---------------------------------------------------------------------
//  A batch that does not commit (issue 21): memory is put back as the
//  store has it, and what the batch would have done is done again.

static int s_fail_commits;      //  commits the hook still fails
static int s_commits_seen;      //  commits the hook saw

static int
s_commit_hook (void *arg)
{
    (void) arg;
    s_commits_seen++;
    if (s_fail_commits > 0) {
        s_fail_commits--;
        return 1;               //  SQLite turns the COMMIT into a ROLLBACK
    }
    return 0;
}

static void
s_hook (void)
{
    s_fail_commits = 0;
    s_commits_seen = 0;
    sqlite3_commit_hook (ep_store_handle (w.store), s_commit_hook, NULL);
}

//  Hands request to the reaper in the open batch (no commit): its code.
static Ep__Status__Code
s_stage (Ep__SessionRequest *request, char *message, size_t size)
{
    reaper_result_t result;
    reaper_result_init (&result, "req");
    reaper_handle (w.reaper, request, &s_watchdog, w.now, &result);
    Ep__Status__Code code = result.status.code;
    if (message)
        snprintf (message, size, "%s", result.status.message? result.status.message: "");
    reaper_result_clear (&result);
    return code;
}

static Ep__Status__Code
s_stage_open (const char *id, const char *router, const char *identity, char *message, size_t size)
{
    Ep__Session session = EP__SESSION__INIT;
    session.id = (char *) id;
    session.identity_id = (char *) identity;
    session.service_id = "svc";
    session.has_type = true;
    session.type = EP__SESSION_TYPE__DIAL;
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.router_id = (char *) router;
    request.op_case = EP__SESSION_REQUEST__OP_OPEN;
    request.open = &session;
    return s_stage (&request, message, size);
}

static Ep__Status__Code
s_stage_close (const char *id, const char *router, char *message, size_t size)
{
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.router_id = (char *) router;
    request.op_case = EP__SESSION_REQUEST__OP_CLOSE_ID;
    request.close_id = (char *) id;
    return s_stage (&request, message, size);
}

//  An ack of command_id from router naming ids (NULL-terminated).
static Ep__Status__Code
s_stage_ack (const char *router, const char *command_id, const char *const *ids, char *message,
             size_t size)
{
    Ep__CommandAck ack = EP__COMMAND_ACK__INIT;
    ack.command_id = (char *) command_id;
    while (ids [ack.n_session_ids])
        ack.n_session_ids++;
    ack.session_ids = (char **) ids;
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.router_id = (char *) router;
    request.op_case = EP__SESSION_REQUEST__OP_ACK;
    request.ack = &ack;
    return s_stage (&request, message, size);
}

//  The events published so far, sorted, one a line.
static char *
s_sorted_events (void)
{
    zlistx_t *sorted = zlistx_new ();       //  borrows w.events' strings
    for (char *event = (char *) zlistx_first (w.events); event; event = (char *) zlistx_next (w.events))
        zlistx_add_end (sorted, event);
    zlistx_set_comparator (sorted, (czmq_comparator *) strcmp);
    zlistx_sort (sorted);
    char *text = strdup ("");
    for (char *event = (char *) zlistx_first (sorted); event; event = (char *) zlistx_next (sorted)) {
        char *longer = zsys_sprintf ("%s%s\n", text, event);
        free (text);
        text = longer;
    }
    zlistx_destroy (&sorted);
    return text;
}

//  The batch under test: a deletion (unless again: the model says it
//  once), an open, a client close, an ack closing two sessions of a
//  cleanup, and the tick (a crossing, marks, a flush).
static int
s_mixed_batch (bool again, const char *command_id)
{
    if (!again)
        s_delete (EP__ENTITY_TYPE__ENTITY_IDENTITY, "i3", 9);
    cr_assert_eq (s_stage_open ("n1", "r1", "i1", NULL, 0), EP__STATUS__CODE__OK);
    cr_assert_eq (s_stage_close ("a1", "r1", NULL, 0), EP__STATUS__CODE__OK);
    const char *acked [] = { "b1", "b2", NULL };
    cr_assert_eq (s_stage_ack ("r2", command_id, acked, NULL, 0), EP__STATUS__CODE__OK);
    reaper_tick (w.reaper, w.now);
    return reaper_commit (w.reaper);
}

//  Sessions on three routers (presence known), r2 deleted and its
//  CloseSessions out, counters waiting for a flush, a3 about to cross
//  --long-lived; then the mixed batch. fail: its first commit fails
//  (memory must then be as before it, the deletion wanted again, nothing
//  handed out), and the watchdog sends its requests again. The outcome:
//  memory and the events, to compare with a run where nothing failed.
static void
s_mixed_run (bool fail, char **dump, char **events)
{
    s_teardown ();
    s_setup ();
    w.config.long_lived_ms = 60000;
    s_crash ();
    s_start ();
    s_hook ();
    reaper_bus_live (w.reaper, w.now);
    const char *held [] = { "r1", "r2", "r3", NULL };
    w.held = held;
    s_advance (w.now + PRESENCE, 100);
    cr_assert (reaper_presence_known (w.reaper));
    s_open ("a1", "r1", "i1", "svc");
    s_open ("a2", "r1", "i1", "svc");
    cr_assert_eq (s_open_full ("a3", "r1", "i1", "svc", 0, 0, WALL0 + w.now - 60000 + 500),
                  EP__STATUS__CODE__OK);
    const char *b [] = { "b1", "b2", "b3", "b4" };
    for (size_t i = 0; i < EP_COUNT (b); i++)
        s_open (b [i], "r2", "i2", "svc");
    s_open ("c1", "r3", "i3", "svc");
    s_open ("c2", "r3", "i3", "svc");
    s_delete (EP__ENTITY_TYPE__ENTITY_ROUTER, "r2", 5);
    s_settle ();
    cr_assert_eq (zlistx_size (w.commands), 1, "r2's CloseSessions");
    char command_id [48];
    snprintf (command_id, sizeof command_id, "%s", ((s_command_t *) zlistx_first (w.commands))->id);
    const char *a2 [] = { "a2", NULL };
    s_heartbeat ("r1", a2, 100, NULL);
    s_reset_outputs ();
    w.now += 1100;              //  a3 crossed, a flush is due, nothing is evasive yet

    if (fail) {
        char *before = reaper_dump (w.reaper);
        s_fail_commits = 1;
        cr_assert_eq (s_mixed_batch (false, command_id), -1, "the commit fails");
        cr_assert_eq (s_fail_commits, 0);
        char *after = reaper_dump (w.reaper);
        char *expect = zsys_sprintf ("%swanted identity/i3 reason=identity-deleted\n", before);
        cr_assert_str_eq (after, expect, "memory is as before the batch (the deletion wanted again)");
        cr_assert_null (reaper_next_output (w.reaper, true), "nothing of the batch is handed out");
        Ep__SessionState state;
        cr_assert_not (s_get ("n1", &state, NULL, NULL), "n1 was not opened");
        cr_assert (s_get ("a1", &state, NULL, NULL));
        cr_assert_eq (state, EP__SESSION_STATE__ACTIVE);
        free (before);
        free (after);
        free (expect);
        //  The watchdog's retries; the deletion is started from "wanted".
        cr_assert_eq (s_mixed_batch (true, command_id), 0);
    }
    else
        cr_assert_eq (s_mixed_batch (false, command_id), 0);
    s_drain ();
    s_settle ();
    cr_assert_eq (s_events ("session.terminating c"), 2);
    cr_assert_eq (s_events ("session.created n1"), 1);
    cr_assert_eq (s_events ("session.closed a1 client-closed"), 1);
    cr_assert_eq (s_events ("session.closed b"), 2);
    cr_assert_eq (s_events ("session.warning a3 long-lived"), 1);
    *dump = reaper_dump (w.reaper);
    *events = s_sorted_events ();
}

Test (reaper, a_failed_commit_leaves_memory_as_before_the_batch_and_its_work_is_done_again,
      .init = s_setup, .fini = s_teardown)
{
    char *dump, *events, *failed_dump, *failed_events;
    s_mixed_run (false, &dump, &events);
    s_mixed_run (true, &failed_dump, &failed_events);
    cr_assert_str_eq (failed_dump, dump, "the same memory as if nothing had failed");
    cr_assert_str_eq (failed_events, events, "the same events, once each");
    free (dump);
    free (events);
    free (failed_dump);
    free (failed_events);
}

//  What a heartbeat told is not undone: a session back from an undone
//  close keeps its counters and last-seen.
Test (reaper, a_heartbeat_in_a_failed_batch_keeps_what_it_heard, .init = s_setup, .fini = s_teardown)
{
    s_hook ();
    s_open ("s1", "r1", "i1", "svc");
    s_open ("s2", "r1", "i1", "svc");
    w.now += 10;
    const char *ids [] = { "s1", "s2", NULL };
    size_t n = 2;
    Ep__SessionHeartbeat__Entry entries [2], *pointers [2];
    for (size_t i = 0; i < n; i++) {
        ep__session_heartbeat__entry__init (&entries [i]);
        entries [i].id = (char *) ids [i];
        entries [i].has_bytes_rx = true;
        entries [i].bytes_rx = 500;
        pointers [i] = &entries [i];
    }
    Ep__SessionHeartbeat heartbeat = EP__SESSION_HEARTBEAT__INIT;
    heartbeat.n_entries = n;
    heartbeat.entries = pointers;
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.router_id = "r1";
    request.op_case = EP__SESSION_REQUEST__OP_HEARTBEAT;
    request.heartbeat = &heartbeat;
    cr_assert_eq (s_stage (&request, NULL, 0), EP__STATUS__CODE__OK);
    cr_assert_eq (s_stage_close ("s2", "r1", NULL, 0), EP__STATUS__CODE__OK);
    s_fail_commits = 1;
    cr_assert_eq (reaper_commit (w.reaper), -1);
    char *dump = reaper_dump (w.reaper);
    char *seen = zsys_sprintf ("rx=500 tx=0 seen=%lld ", (long long) w.now);
    char *s1 = strstr (dump, "session s1 "), *s2 = strstr (dump, "session s2 ");
    cr_assert (s1 && s2, "%s", dump);
    cr_assert (strstr (s1, seen) && strstr (s2, seen), "heard: %s\n%s", seen, dump);
    cr_assert (strstr (s2, "state=1 "), "s2 is open again: %s", dump);
    free (seen);
    free (dump);
    uint64_t rx;
    Ep__SessionState state;
    cr_assert (s_get ("s2", &state, NULL, &rx));
    cr_assert_eq (state, EP__SESSION_STATE__ACTIVE);
    cr_assert_eq (rx, 500);
    cr_assert_eq (s_close ("s2", "r1"), EP__STATUS__CODE__OK, "the close again, taken");
}

//  Verdicts and an offline cleanup that fail are decided again, none is
//  lost: a silent session is reaped and an offline router's sessions
//  cleaned up once commits are taken. A probe, which writes nothing, goes
//  out whatever its batch's fate.
Test (reaper, an_expiry_and_an_offline_cleanup_that_fail_are_decided_again, .init = s_setup,
      .fini = s_teardown)
{
    s_hook ();
    s_open ("e1", "r1", "i1", "svc");
    s_open ("o1", "r2", "i1", "svc");
    reaper_bus_live (w.reaper, w.now);
    const char *both [] = { "r1", "r2", NULL }, *only_r1 [] = { "r1", NULL };
    w.held = both;
    s_advance (w.now + PRESENCE, 100);
    cr_assert (reaper_presence_known (w.reaper));
    w.held = only_r1;
    w.bus_down = true;          //  no echo to delete: only the transitions write
    int64_t until = w.now + PRESENCE + GRACE + T2 + 1000;
    s_fail_commits = 1000000;
    size_t failed = 0;
    for (; w.now < until; w.now += 100) {
        s_beacon (only_r1);
        reaper_tick (w.reaper, w.now);
        failed += reaper_commit (w.reaper) != 0;
        ep_output_item_t *item;
        while ((item = reaper_next_output (w.reaper, true))) {
            s_publish (item->topic, item->event);
            ep_output_item_destroy (&item);
        }
    }
    cr_assert_gt (failed, 0);
    cr_assert_eq (s_events ("session.reaped"), 0, "no event of a batch that failed");
    cr_assert_eq (s_events ("session.terminating"), 0, "no event of a batch that failed");
    size_t probes = 0;
    for (s_command_t *command = (s_command_t *) zlistx_first (w.commands); command;
         command = (s_command_t *) zlistx_next (w.commands))
        probes += command->probe && streq (command->router, "r1");
    cr_assert_gt (probes, 0, "e1 was probed");
    char *dump = reaper_dump (w.reaper);
    cr_assert (strstr (dump, "session e1 ") && strstr (dump, "session o1 "), "both open: %s", dump);
    cr_assert (strstr (dump, "group router/r2 count=1 offline=listed/"), "r2 still offline: %s", dump);
    free (dump);
    //  Commits are taken again.
    s_fail_commits = 0;
    w.bus_down = false;
    s_settle ();
    cr_assert_eq (s_events ("session.reaped e1 expired"), 1);
    cr_assert_eq (s_events ("session.terminating o1 router-offline"), 1);
}

//  SQLITE_FULL from a statement (the database at its page limit): the
//  batch fails as disk_full with the store's message, memory holds none
//  of it, and once there is room the same opens are taken.
Test (reaper, a_full_database_fails_the_batch_as_disk_full, .init = s_setup, .fini = s_teardown)
{
    s_open ("s0", "r1", "i1", "svc");
    sqlite3_stmt *stmt;
    cr_assert_eq (sqlite3_prepare_v2 (ep_store_handle (w.store), "PRAGMA page_count", -1, &stmt, NULL),
                  SQLITE_OK);
    cr_assert_eq (sqlite3_step (stmt), SQLITE_ROW);
    char *limit = zsys_sprintf ("PRAGMA max_page_count = %d", sqlite3_column_int (stmt, 0));
    sqlite3_finalize (stmt);
    cr_assert_eq (ep_store_exec (w.store, limit), 0, "%s", ep_store_last_error ());
    free (limit);
    char *before = reaper_dump (w.reaper);
    enum { N = 300 };
    char id [80];
    for (int i = 0; i < N; i++) {
        snprintf (id, sizeof id, "a-long-session-id-to-fill-pages-quickly-%06d", i);
        s_stage_open (id, "r1", "i1", NULL, 0);
    }
    reaper_tick (w.reaper, w.now);
    cr_assert_eq (reaper_commit (w.reaper), -1, "the database is full");
    cr_assert_eq (reaper_fault (w.reaper), EP_STORE_FAULT_FULL);
    cr_assert (strstr (reaper_failure (w.reaper), "the disk is full"), "%s", reaper_failure (w.reaper));
    char *after = reaper_dump (w.reaper);
    cr_assert_str_eq (after, before, "none of the batch is in memory");
    free (before);
    free (after);
    cr_assert_null (reaper_next_output (w.reaper, true));
    cr_assert_eq (s_count (NULL, EP__SESSION_STATE__ACTIVE), 1);
    cr_assert_eq (ep_store_exec (w.store, "PRAGMA max_page_count = 1000000"), 0);
    for (int i = 0; i < N; i++) {
        snprintf (id, sizeof id, "a-long-session-id-to-fill-pages-quickly-%06d", i);
        cr_assert_eq (s_stage_open (id, "r1", "i1", NULL, 0), EP__STATUS__CODE__OK);
    }
    cr_assert_eq (reaper_commit (w.reaper), 0, "%s", reaper_failure (w.reaper));
    s_drain ();
    cr_assert_eq (s_count (NULL, EP__SESSION_STATE__ACTIVE), N + 1);
    cr_assert_eq (s_events ("session.created a-long"), N);
}

//  While the store takes no writes nothing durable is tried: writes are
//  refused with the store's message, heartbeats, probe answers and reads
//  served, deletions and deadlines wait; afterwards all of it is done.
Test (reaper, while_degraded_writes_are_refused_and_nothing_durable_is_tried, .init = s_setup,
      .fini = s_teardown)
{
    w.metrics = ep_metrics_new ("reaper");
    s_crash ();
    s_start ();
    s_hook ();
    s_open ("s1", "r1", "i1", "svc");
    s_open ("s2", "r2", "i1", "svc");
    s_delete (EP__ENTITY_TYPE__ENTITY_ROUTER, "r2", 3);
    s_settle ();
    cr_assert_eq (zlistx_size (w.commands), 1);
    char command_id [48];
    snprintf (command_id, sizeof command_id, "%s", ((s_command_t *) zlistx_first (w.commands))->id);
    s_reset_outputs ();
    int64_t degraded_at = w.now;
    const char *why = "/data/sessions.db: committing: the disk is full (database or disk is full): "
                      "free space in /data; writes resume by themselves once there is room";
    reaper_set_degraded (w.reaper, EP_STORE_FAULT_FULL, why);
    int commits = s_commits_seen;

    char message [1024];
    cr_assert_eq (s_stage_open ("n1", "r1", "i1", message, sizeof message), EP__STATUS__CODE__UNAVAILABLE);
    cr_assert (strstr (message, "the disk is full") && strstr (message, "free space in /data"), "%s", message);
    cr_assert_eq (s_stage_close ("s1", "r1", message, sizeof message), EP__STATUS__CODE__UNAVAILABLE);
    cr_assert (strstr (message, "the disk is full"), "%s", message);
    const char *closed [] = { "s2", NULL };
    cr_assert_eq (s_stage_ack ("r2", command_id, closed, message, sizeof message),
                  EP__STATUS__CODE__UNAVAILABLE);
    const char *held [] = { "s1", NULL };
    cr_assert_eq (s_stage_ack ("r1", "probe-0123456789abcdef", held, NULL, 0), EP__STATUS__CODE__OK);
    const char *ids [] = { "s1", NULL };
    s_heartbeat ("r1", ids, 42, NULL);
    s_open ("s1", "r1", "i1", "svc");           //  open already: answered from memory
    s_delete (EP__ENTITY_TYPE__ENTITY_IDENTITY, "i1", 4);
    cr_assert_eq (reaper_jobs (w.reaper), 1, "the deletion waits");
    s_advance (degraded_at + DEADLINE + 2000, 100);
    cr_assert_not (reaper_uncommitted (w.reaper));
    cr_assert_eq (s_commits_seen, commits, "no transaction was tried");
    cr_assert_eq (s_events ("session."), 0);
    Ep__SessionState state;
    uint64_t rx;
    cr_assert (s_get ("s2", &state, NULL, NULL), "reads are served");
    cr_assert_eq (state, EP__SESSION_STATE__TERMINATING, "not forced yet");
    cr_assert (s_get ("s1", &state, NULL, &rx));
    cr_assert_eq (rx, 42, "heard");

    reaper_set_degraded (w.reaper, EP_STORE_FAULT_NONE, NULL);
    s_settle ();
    cr_assert_eq (s_events ("session.reaped s2 forced"), 1, "past its deadline");
    cr_assert_eq (s_events ("session.terminating s1 identity-deleted"), 1, "the deletion, done");
    cr_assert_eq (s_open_full ("n1", "r1", "i9", "svc", 0, 0, 0), EP__STATUS__CODE__OK);
    char *page = ep_metrics_render (w.metrics);
    cr_assert_eq (ep_metric_value (page, "edgeplane_reaper_closed_total{reason=\"forced\"}"), 1, "%s", page);
    free (page);
}

//  A batch that forces a cleanup's last sessions ends the job; undone,
//  the job is back with its sessions, and ends once, with its counts.
Test (reaper, a_cleanup_ended_by_a_failed_batch_comes_back_and_ends_once, .init = s_setup,
      .fini = s_teardown)
{
    s_hook ();
    s_open ("f1", "r1", "i1", "svc");
    s_open ("f2", "r1", "i1", "svc");
    int64_t deleted_at = w.now;
    s_delete (EP__ENTITY_TYPE__ENTITY_ROUTER, "r1", 3);
    s_settle ();
    cr_assert_eq (s_events ("session.terminating f"), 2);
    cr_assert_eq (zlistx_size (w.commands), 1);
    s_reset_outputs ();
    w.now = deleted_at + DEADLINE;
    char *before = reaper_dump (w.reaper);
    s_fail_commits = 1;
    reaper_tick (w.reaper, w.now);
    cr_assert_eq (reaper_commit (w.reaper), -1);
    char *after = reaper_dump (w.reaper);
    cr_assert_str_eq (after, before, "the job and its sessions as before the batch");
    cr_assert_eq (reaper_jobs (w.reaper), 1);
    cr_assert_null (reaper_next_output (w.reaper, true));
    free (before);
    free (after);
    s_settle ();
    cr_assert_eq (s_events ("session.reaped f1 forced"), 1);
    cr_assert_eq (s_events ("session.reaped f2 forced"), 1);
    cr_assert_eq (reaper_jobs (w.reaper), 0);
    Ep__CleanupQuery query = EP__CLEANUP_QUERY__INIT;
    query.router_id = "r1";
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.op_case = EP__SESSION_REQUEST__OP_CLEANUP;
    request.cleanup = &query;
    reaper_result_t result;
    cr_assert_eq (s_call (&request, &s_operator, &result), EP__STATUS__CODE__OK);
    cr_assert_eq (result.reply.n_jobs, 1);
    cr_assert (result.reply.jobs [0]->done);
    cr_assert_eq (result.reply.jobs [0]->n_closed, 1);
    cr_assert_str_eq (result.reply.jobs [0]->closed [0]->reason, "forced");
    cr_assert_eq (result.reply.jobs [0]->closed [0]->count, 2, "counted once");
    reaper_result_clear (&result);
}

//  Closed rows past the retention are pruned prune_batch per transaction
//  (the etcd mode sizes it to what one etcd transaction takes: a larger
//  batch would be refused, and tried again the same, for ever).
Test (reaper, closed_rows_are_pruned_at_most_prune_batch_per_transaction, .init = s_setup, .fini = s_teardown)
{
    w.config.retention_ms = 1000;
    w.config.prune_batch = 3;
    s_crash ();
    s_start ();
    char id [16];
    for (int i = 0; i < 7; i++) {
        snprintf (id, sizeof id, "p%d", i);
        s_open (id, "r1", "i1", "svc");
        s_close (id, "r1");
    }
    s_turn ();
    cr_assert_eq (reaper_count (w.reaper, EP__SESSION_STATE__CLOSED), 7);
    w.now += 61000;                         //  past the retention and the pruning period
    size_t left [] = { 4, 1, 0 };
    for (size_t i = 0; i < EP_COUNT (left); i++) {
        s_turn ();
        cr_assert_eq (reaper_count (w.reaper, EP__SESSION_STATE__CLOSED), left [i],
                      "turn %zu: %zu closed rows left", i, reaper_count (w.reaper, EP__SESSION_STATE__CLOSED));
    }
}
