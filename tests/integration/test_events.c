/*  test_events.c: the events the real services publish, as users read
    them (ep_event_json): edge-to-router connections a real router agent
    reports keep its clock and the client's address; an edge client with
    an Identity joins as edge-to-ctrl with every field; entityChange.* from
    the real model name the op and carry the entity; a run of the whole
    stack, every namespace of it, validates against
    docs/events.schema.json; and a refused fleet of router agents retries
    at times spread within the backoff's bounds, as the refusals show. */
#include <criterion/criterion.h>
#include "ep_stack.h"
#include "ep_eventlog.h"
#include "chan_client.h"
#include "ep_pki.h"
#include <signal.h>
#include <unistd.h>

#define VALIDATOR   "/usr/bin/python3 " EP_SOURCE_DIR "/tests/support/validate_events.py"
#define SCHEMA      EP_SOURCE_DIR "/docs/events.schema.json"

static ep_stack_t *s_stack;     //  keys, bus, model, environment
static const char *s_dir;       //  its data dir: certificate bundles
static ep_subscriber_t *s_events;       //  everything on the bus (the stack's)
static ep_eventlog_t *s_log;    //  what it delivered (no heartbeats: it takes them)

static void
s_setup (void)
{
    s_stack = ep_stack_new ("events");
    s_dir = ep_stack_dir (s_stack);
    //  Until a test starts them, nothing listens there.
    ep_stack_setenv (s_stack, "EDGEPLANE_TERMINATORS_API", "tcp://127.0.0.1:1");
    ep_stack_setenv (s_stack, "EDGEPLANE_REAPER_API", "tcp://127.0.0.1:1");
    s_events = ep_stack_subscribe (s_stack, "");
    s_log = ep_eventlog_new (s_events);
}

static void
s_teardown (void)
{
    ep_eventlog_destroy (&s_log);
    s_events = NULL;
    ep_stack_destroy (&s_stack);
}

//  The terminators and the reaper (the agent's requests go there), and
//  routers r1 (hosting svc1) and r2 (svc1, svc2) with their bundles.
static void
s_services (void)
{
    ep_stack_start (s_stack, "terminators", 15000);
    ep_stack_start (s_stack, "reaper", 15000);
    ep_stack_create_service (s_stack, "svc1");
    ep_stack_create_service (s_stack, "svc2");
    const char *both [] = { "svc1", "svc2" };
    ep_stack_router_write (s_stack, EP__MODEL_WRITE__OP__CREATE, "r1", both, 1);
    ep_stack_router_write (s_stack, EP__MODEL_WRITE__OP__CREATE, "r2", both, 2);
    char err [512];
    const char *routers [] = { "r1", "r2" };
    for (size_t i = 0; i < EP_COUNT (routers); i++)
        cr_assert_eq (ep_pki_issue (ep_stack_keys (s_stack), "router", routers [i], s_dir, 30, err, sizeof err),
                      0, "%s", err);
}

static ep_proc_t *
s_watchdog (void)
{
    const char *args [] = { "--channel-listen", "127.0.0.1:0", "--listen", "tcp://127.0.0.1:*",
                            "--http-listen", "127.0.0.1:0", "--stray-grace=500ms", NULL };
    ep_proc_t *watchdog = ep_proc_start ("edgeplane-watchdog", args, ep_stack_env (s_stack), 15000);
    cr_assert_not_null (watchdog, "the watchdog did not start");
    ep_stack_keep (s_stack, watchdog);
    return watchdog;
}

//  The real router agent (edgeplane-router) with args after the
//  controller and bundle (NULL-terminated).
static ep_proc_t *
s_agent (ep_proc_t *watchdog, const char *const *args)
{
    const char *argv [24] = { "--controller", ep_proc_endpoint (watchdog, "channel"), "--bundle", s_dir };
    size_t n = 4;
    for (size_t i = 0; args [i]; i++) {
        EP_ASSERT (n < EP_COUNT (argv) - 1);
        argv [n++] = args [i];
    }
    argv [n] = NULL;
    //  Not waited for: a fleet writes its ready file only once all joined.
    ep_proc_t *agent = ep_proc_spawn ("edgeplane-router", argv, ep_stack_env (s_stack));
    cr_assert_not_null (agent);
    ep_stack_keep (s_stack, agent);
    return agent;
}

static const char *
s_text (const ep_logged_t *e, const char *field)
{
    return json_string_value (json_object_get (e->json, field));
}

static json_int_t
s_int (const ep_logged_t *e, const char *field)
{
    json_t *value = json_object_get (e->json, field);
    cr_assert (json_is_integer (value), "%s: %s is not an integer", e->topic, field);
    return json_integer_value (value);
}

//  Events on topic that match accepts (NULL: any) logged so far.
static size_t
s_count (const char *topic, ep_eventlog_match_fn *match, void *arg)
{
    size_t count = 0;
    for (size_t i = 0; i < ep_eventlog_size (s_log); i++) {
        const ep_logged_t *e = ep_eventlog_get (s_log, i);
        count += streq (e->topic, topic) && (!match || match (e, arg));
    }
    return count;
}

//  Waits up to timeout_ms until count such events are logged.
static bool
s_await_count (const char *topic, ep_eventlog_match_fn *match, void *arg, size_t count, int timeout_ms)
{
    int64_t deadline = ep_mono_ms () + timeout_ms;
    while (s_count (topic, match, arg) < count) {
        int64_t left = deadline - ep_mono_ms ();
        if (left <= 0)
            return false;
        ep_eventlog_pump (s_log, left < 50? (int) left: 50);
    }
    return true;
}

//  Waits until the model's entityChange stream is heard (a heartbeat or an
//  event, kept for the log): our subscription is in place, so no change
//  made from now on is missed.
static void
s_await_subscribed (void)
{
    cr_assert_eq (ep_subscriber_wait_stream (s_events, "entityChange", 10000 * EP_TEST_SLOWDOWN), 0,
                  "the bus never delivered the model's entityChange stream");
}

static bool
s_edge_left (const ep_logged_t *e, void *router)
{
    return streq (e->dst_id, (const char *) router) && !e->connected;
}

Test (events, edge_connections_a_real_router_reports_keep_its_time_and_the_clients_address,
      .init = s_setup, .fini = s_teardown, .timeout = 90)
{
    s_services ();
    ep_proc_t *watchdog = s_watchdog ();
    int64_t started = ep_wall_ms ();
    //  Three sessions, one replaced every 250 ms: edge connects and
    //  disconnects, reported with every 200 ms heartbeat batch.
    const char *args [] = { "--id", "r1", "--sessions", "3", "--churn", "4", "--heartbeat", "200ms", NULL };
    s_agent (watchdog, args);
    cr_assert (s_await_count ("connect.edge-to-router", s_edge_left, "r1", 2, 20000 * EP_TEST_SLOWDOWN),
               "the agent's session closes were not reported as edge disconnects");

    zhashx_t *connects = zhashx_new ();         //  src_addr -> its connect's event_time_ms
    size_t left = 0;
    for (size_t i = 0; i < ep_eventlog_size (s_log); i++) {
        const ep_logged_t *e = ep_eventlog_get (s_log, i);
        if (!streq (e->topic, "connect.edge-to-router"))
            continue;
        cr_assert_str_eq (s_text (e, "type"), "edge-to-router");
        cr_assert_str_eq (s_text (e, "src_type"), "identity");
        cr_assert_str_eq (s_text (e, "src_id"), "id-r1", "the agent's clients are identity id-<router>");
        cr_assert_str_eq (s_text (e, "dst_type"), "router");
        cr_assert_str_eq (s_text (e, "dst_id"), "r1", "the router as its certificate says");
        cr_assert (json_is_boolean (json_object_get (e->json, "connected")));
        //  The router's clock (this machine's): after the agent started,
        //  before the watchdog published it.
        int64_t seen = s_int (e, "event_time_ms");
        cr_assert (seen >= started - 1 && seen <= e->timestamp,
                   "event_time_ms %lld is not between the agent's start %lld and the publish time %lld",
                   (long long) seen, (long long) started, (long long) e->timestamp);
        //  The client's real address (the agent makes them up in
        //  198.51.100.0/24, ports from 1024), never a placeholder.
        const char *from = s_text (e, "src_addr");
        unsigned host = 0, port = 0;
        char end;
        cr_assert (from && sscanf (from, "198.51.100.%u:%u%c", &host, &port, &end) == 2
                   && host >= 1 && host <= 254 && port >= 1024, "src_addr %s", from? from: "(none)");
        char key [64];
        snprintf (key, sizeof key, "%s", from);
        if (e->connected)
            zhashx_update (connects, key, (void *) (intptr_t) seen);
        else {
            //  A disconnect names the address its connect reported.
            cr_assert (zhashx_lookup (connects, key), "a disconnect from %s, which no connect reported", from);
            cr_assert_geq (seen, (int64_t) (intptr_t) zhashx_lookup (connects, key),
                           "%s: disconnected before it connected, by the router's clock", from);
            left++;
        }
    }
    cr_assert_geq (left, 2);
    zhashx_destroy (&connects);
}

static bool
s_client_is (const ep_logged_t *e, void *id)
{
    return streq (e->src_id, (const char *) id);
}

static bool
s_client_left (const ep_logged_t *e, void *id)
{
    return streq (e->src_id, (const char *) id) && !e->connected;
}

Test (events, an_edge_client_with_an_identity_joins_as_edge_to_ctrl_with_every_field,
      .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    Ep__Identity identity = EP__IDENTITY__INIT;
    identity.id = "alice";
    identity.has_enabled = true;
    identity.enabled = true;
    ep_entity_write_t write;
    ep_stack_model_write (s_stack, ep_entity_write (&write, EP__MODEL_WRITE__OP__CREATE,
                                                    EP__ENTITY__KIND_IDENTITY, &identity));
    ep_proc_t *watchdog = s_watchdog ();
    const char *channel = ep_proc_endpoint (watchdog, "channel");
    SSL_CTX *ctx = ep_stack_tls_client (s_stack, "client", "alice");
    char err [512], from [64];
    chan_client_t *client = chan_client_new (channel, ctx, 5000, err, sizeof err);
    cr_assert_not_null (client, "%s", err);
    ep_sock_name (chan_client_fd (client), from, sizeof from);
    Ep__HelloResult *result = chan_client_hello (client, 2, EP__ROLE__ROLE_CLIENT, "alice", 5000);
    cr_assert_not_null (result, "no HelloResult: %s", chan_client_close_reason (client));
    cr_assert_eq (result->status->code, EP__STATUS__CODE__OK, "%s", result->status->message);
    ep__hello_result__free_unpacked (result, NULL);
    int64_t joined = ep_mono_ms ();

    const ep_logged_t *e = ep_eventlog_await_event (s_log, "connect.edge-to-ctrl", s_client_is, "alice",
                                                    5000 * EP_TEST_SLOWDOWN);
    cr_assert_not_null (e, "no connect.edge-to-ctrl for alice's join");
    cr_assert_str_eq (s_text (e, "namespace"), "connect");
    cr_assert_str_eq (s_text (e, "type"), "edge-to-ctrl");
    cr_assert_str_eq (s_text (e, "src_type"), "client");
    cr_assert_str_eq (s_text (e, "src_id"), "alice");
    cr_assert_str_eq (s_text (e, "src_addr"), from, "the client's own address");
    cr_assert_str_eq (s_text (e, "dst_type"), "ctrl");
    cr_assert_str_eq (s_text (e, "dst_id"), s_text (e, "event_src_id"), "the instance that accepted it");
    cr_assert_str_eq (s_text (e, "dst_addr"), channel, "where it was reached");
    cr_assert (json_is_true (json_object_get (e->json, "connected")));
    //  Its id in the watchdog's outbox: "<source id>:<durable seq>".
    char prefix [160];
    snprintf (prefix, sizeof prefix, "%s:", s_text (e, "event_src_id"));
    cr_assert (strncmp (s_text (e, "event_id"), prefix, strlen (prefix)) == 0, "%s", s_text (e, "event_id"));
    cr_assert_eq (json_object_size (e->json), 8 + 7, "a join has no duration, reason or event time");

    //  It leaves: the same connection, closed, with how long and why.
    chan_client_destroy (&client);
    e = ep_eventlog_await_event (s_log, "connect.edge-to-ctrl", s_client_left, "alice", 5000 * EP_TEST_SLOWDOWN);
    cr_assert_not_null (e, "no connect.edge-to-ctrl for alice's leaving");
    cr_assert_str_eq (s_text (e, "src_addr"), from);
    cr_assert_str_eq (s_text (e, "reason"), "peer-closed");
    int64_t duration = s_int (e, "duration");
    cr_assert (duration >= 0 && duration <= ep_mono_ms () - joined + 1000,
               "duration %lld ms for a connection open %lld ms", (long long) duration,
               (long long) (ep_mono_ms () - joined));
    cr_assert_null (json_object_get (e->json, "event_time_ms"), "only edge-to-router has the router's time");
    SSL_CTX_free (ctx);
}

//  Writes (op) the entity of type ("service", "identity", "router",
//  "controller") id, its name (a controller's address) set to name; the
//  revision.
static uint64_t
s_entity (Ep__ModelWrite__Op op, const char *type, const char *id, const char *name)
{
    static const char *types [] = { "", "router", "service", "identity", "controller" };
    Ep__EntityType entity_type = EP__ENTITY_TYPE__ENTITY_UNSPECIFIED;
    for (size_t i = 1; i < EP_COUNT (types); i++)
        if (streq (types [i], type))
            entity_type = (Ep__EntityType) i;
    cr_assert_neq (entity_type, EP__ENTITY_TYPE__ENTITY_UNSPECIFIED, "no entity type %s", type);
    if (op == EP__MODEL_WRITE__OP__DELETE) {
        Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
        write.has_op = write.has_type = true;
        write.op = op;
        write.type = entity_type;
        write.id = (char *) id;
        return ep_stack_model_write (s_stack, &write);
    }
    Ep__Router router = EP__ROUTER__INIT;
    Ep__Service service = EP__SERVICE__INIT;
    Ep__Identity identity = EP__IDENTITY__INIT;
    Ep__Controller controller = EP__CONTROLLER__INIT;
    router.id = service.id = identity.id = controller.id = (char *) id;
    router.name = service.name = identity.name = (char *) name;
    controller.address = (char *) name;
    void *bodies [] = { NULL, &router, &service, &identity, &controller };
    Ep__Entity__KindCase kinds [] = { 0, EP__ENTITY__KIND_ROUTER, EP__ENTITY__KIND_SERVICE,
                                      EP__ENTITY__KIND_IDENTITY, EP__ENTITY__KIND_CONTROLLER };
    ep_entity_write_t write;
    return ep_stack_model_write (s_stack, ep_entity_write (&write, op, kinds [entity_type], bodies [entity_type]));
}

//  An event whose revision is *arg.
static bool
s_at_revision (const ep_logged_t *e, void *arg)
{
    json_t *revision = json_object_get (e->json, "revision");
    return json_is_integer (revision) && (uint64_t) json_integer_value (revision) == *(uint64_t *) arg;
}

//  Writes the log as JSON lines and validates them (options: "" or
//  "--all-namespaces"); asserts they are valid.
static void
s_assert_valid (const char *options)
{
    char *path = zsys_sprintf ("%s/events.jsonl", s_dir);
    size_t count = ep_eventlog_write_jsonl (s_log, path);
    char *command = zsys_sprintf (VALIDATOR " %s " SCHEMA " '%s' 2>&1", options, path);
    char *out = NULL;
    int status = ep_run (command, &out);
    cr_assert_eq (status, 0, "%zu real events against the schema (exit %d):\n%s", count, status, out);
    free (out);
    free (command);
    free (path);
}

Test (events, entity_changes_from_the_real_model_name_the_op_and_carry_the_entity,
      .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    s_await_subscribed ();
    const char *types [] = { "service", "identity", "router", "controller" };
    const char *names [] = { "first", "second" };
    const char *addresses [] = { "10.0.0.9:6262", "10.0.0.9:6263" };
    for (size_t t = 0; t < EP_COUNT (types); t++) {
        const char *type = types [t];
        char id [32];
        snprintf (id, sizeof id, "%s-x", type);
        const char *const *value = streq (type, "controller")? addresses: names;
        uint64_t created = s_entity (EP__MODEL_WRITE__OP__CREATE, type, id, value [0]);
        uint64_t updated = s_entity (EP__MODEL_WRITE__OP__UPDATE, type, id, value [1]);
        uint64_t deleted = s_entity (EP__MODEL_WRITE__OP__DELETE, type, id, NULL);
        uint64_t revisions [] = { created, updated, deleted };
        const char *ops [] = { "created", "updated", "deleted" };
        for (size_t o = 0; o < 3; o++) {
            char topic [64];
            snprintf (topic, sizeof topic, "entityChange.%s.%s", type, ops [o]);
            const ep_logged_t *e = ep_eventlog_await_event (s_log, topic, s_at_revision, &revisions [o],
                                                            5000 * EP_TEST_SLOWDOWN);
            cr_assert_not_null (e, "no %s at revision %llu", topic, (unsigned long long) revisions [o]);
            cr_assert_str_eq (s_text (e, "namespace"), "entityChange");
            cr_assert (strncmp (s_text (e, "event_src_id"), "model-", 6) == 0);
            cr_assert_str_eq (s_text (e, "entity_type"), type);
            cr_assert_str_eq (s_text (e, "op"), ops [o]);
            json_t *principal = json_object_get (e->json, "principal");
            cr_assert_str_eq (json_string_value (json_object_get (principal, "role")), "operator",
                              "%s: who made it", topic);
            const char *key = json_string_value (json_object_get (principal, "key"));
            cr_assert (key && strlen (key) == 40, "%s: the caller's CURVE key in Z85", topic);
            json_t *entity = json_object_get (e->json, "entity");
            if (o == 2) {
                //  A deletion carries no entity, but says which one went,
                //  as model.change at that revision does.
                cr_assert_null (entity, "%s", topic);
                cr_assert_str_eq (s_text (e, "id"), id, "%s: the deleted entity's id", topic);
                const ep_logged_t *change = ep_eventlog_await_event (s_log, "model.change", s_at_revision,
                                                                     &revisions [o], 5000 * EP_TEST_SLOWDOWN);
                cr_assert_not_null (change);
                json_t *op = json_array_get (json_object_get (change->json, "ops"), 0);
                cr_assert_str_eq (json_string_value (json_object_get (op, "id")), id);
                cr_assert_str_eq (json_string_value (json_object_get (op, "kind")), "deleted");
                cr_assert_eq (json_object_size (e->json), 7 + 5, "%s: fields", topic);
                continue;
            }
            cr_assert_eq (json_object_size (e->json), 7 + 6, "%s: fields", topic);
            cr_assert_str_eq (s_text (e, "id"), id, "%s: the entity's id", topic);
            cr_assert_eq (json_object_size (entity), 1, "%s: an entity of one kind", topic);
            json_t *body = json_object_get (entity, type);
            cr_assert_not_null (body, "%s: the entity is a %s", topic, type);
            cr_assert_str_eq (json_string_value (json_object_get (body, "id")), id);
            cr_assert_str_eq (json_string_value (json_object_get (body, streq (type, "controller")? "address": "name")),
                              value [o], "%s: the entity after the change", topic);
            json_t *meta = json_object_get (body, "meta");
            cr_assert_eq ((uint64_t) json_integer_value (json_object_get (meta, "version")), revisions [o]);
            cr_assert_eq ((uint64_t) json_integer_value (json_object_get (meta, "create_revision")), created);
            cr_assert_eq (s_count (topic, s_at_revision, &revisions [o]), 1, "%s: once", topic);
        }
    }
    s_assert_valid ("");
}

//  Any event whose topic starts with prefix (the log has no heartbeats).
static bool
s_topic_starts (const char *prefix)
{
    for (size_t i = 0; i < ep_eventlog_size (s_log); i++)
        if (strncmp (ep_eventlog_get (s_log, i)->topic, prefix, strlen (prefix)) == 0)
            return true;
    return false;
}

Test (events, every_namespace_the_real_services_publish_validates_against_the_schema,
      .init = s_setup, .fini = s_teardown, .timeout = 120)
{
    s_services ();
    Ep__Identity identity = EP__IDENTITY__INIT;
    identity.id = "alice";
    identity.has_enabled = true;
    identity.enabled = true;
    ep_entity_write_t alice_write;
    ep_stack_model_write (s_stack, ep_entity_write (&alice_write, EP__MODEL_WRITE__OP__CREATE,
                                                    EP__ENTITY__KIND_IDENTITY, &identity));
    ep_proc_t *watchdog = s_watchdog ();
    const char *channel = ep_proc_endpoint (watchdog, "channel");
    s_await_subscribed ();
    ep_stack_create_service (s_stack, "svc3");
    //  r1 joins and holds sessions; r2 serves at most 1 of its 2 services,
    //  so it refuses its slice.
    const char *r1 [] = { "--id", "r1", "--sessions", "2", "--heartbeat", "200ms", NULL };
    s_agent (watchdog, r1);
    const char *r2 [] = { "--id", "r2", "--sessions", "0", "--max-services", "1", NULL };
    s_agent (watchdog, r2);
    //  An edge client, a stray, a non-member, bytes that are not TLS.
    char err [512];
    SSL_CTX *alice_ctx = ep_stack_tls_client (s_stack, "client", "alice");
    chan_client_t *alice = chan_client_new (channel, alice_ctx, 5000, err, sizeof err);
    cr_assert_not_null (alice, "%s", err);
    Ep__HelloResult *result = chan_client_hello (alice, 2, EP__ROLE__ROLE_CLIENT, "alice", 5000);
    cr_assert (result && result->status->code == EP__STATUS__CODE__OK, "alice was not admitted");
    ep__hello_result__free_unpacked (result, NULL);
    int quiet = ep_tcp_connect (channel);
    cr_assert_geq (quiet, 0);
    SSL_CTX *ctrl_ctx = ep_stack_tls_client (s_stack, "ctrl", "ctrl-old");
    chan_client_t *outsider = chan_client_new (channel, ctrl_ctx, 5000, err, sizeof err);
    cr_assert_not_null (outsider, "%s", err);
    result = chan_client_hello (outsider, 2, EP__ROLE__ROLE_CTRL, "ctrl-old", 5000);
    cr_assert (result && streq (result->reason, "not-member"));
    ep__hello_result__free_unpacked (result, NULL);
    int garbage = ep_tcp_connect (channel);
    cr_assert_eq (write (garbage, "GET / HTTP/1.0\r\n\r\n", 18), 18);
    //  Once r1's sessions are open (and reported as edge connections, with
    //  its next heartbeat batch), deleting it makes the reaper command it
    //  to close them.
    cr_assert (s_await_count ("session.created", NULL, NULL, 2, 20000 * EP_TEST_SLOWDOWN), "r1's sessions");
    cr_assert (s_await_count ("connect.edge-to-router", NULL, NULL, 2, 10000 * EP_TEST_SLOWDOWN), "r1's edges");
    ep_stack_delete_router (s_stack, "r1");

    //  Every namespace (and the connect types), with a real body each.
    const char *wanted [] = {
        "connect.router-to-ctrl", "connect.edge-to-router", "connect.edge-to-ctrl", "stray.detected",
        "cluster.peer.not_member", "presence.join", "presence.beacon", "terminator.", "session.created",
        "model.change", "entityChange.service.created", "cmd.r1.", "channel.refused", "router.slice.rejected"
    };
    int64_t deadline = ep_mono_ms () + 30000 * EP_TEST_SLOWDOWN;
    for (size_t i = 0; i < EP_COUNT (wanted); i++) {
        while (!s_topic_starts (wanted [i]) && ep_mono_ms () < deadline)
            ep_eventlog_pump (s_log, 50);
        cr_assert (s_topic_starts (wanted [i]), "no %s event from the real services", wanted [i]);
    }
    //  ...and the schema's list of namespaces has no other. service.degraded
    //  needs a full disk, which this stack does not have: model_it's
    //  a_full_disk_... test makes one, and test_events_schema validates
    //  the event's rendering.
    s_assert_valid ("--all-namespaces --except=service");

    chan_client_destroy (&outsider);
    chan_client_destroy (&alice);
    close (garbage);
    close (quiet);
    SSL_CTX_free (ctrl_ctx);
    SSL_CTX_free (alice_ctx);
}

//  A channel.refused about router id arg (a string).
static bool
s_refused (const ep_logged_t *e, void *id)
{
    const char *refused = json_string_value (json_object_get (e->json, "id"));
    return refused && streq (refused, (const char *) id) && streq (e->reason, "unknown-router");
}

//  The agent reconnects after 200 ms doubling to 30 s, each delay drawn
//  from [d/2, d] (README, "To join a router"). Routers not in the model
//  are refused at each Hello, so their refusals time every attempt.
Test (events, a_refused_fleet_retries_at_spread_times_within_the_backoff_bounds,
      .init = s_setup, .fini = s_teardown, .timeout = 120)
{
    enum { ROUTERS = 6, ATTEMPTS = 6 };
    char err [512];
    for (int i = 0; i < ROUTERS; i++) {
        char id [16];
        snprintf (id, sizeof id, "x-%d", i);
        cr_assert_eq (ep_pki_issue (ep_stack_keys (s_stack), "router", id, s_dir, 30, err, sizeof err), 0, "%s", err);
    }
    ep_proc_t *watchdog = s_watchdog ();
    char count [8];
    snprintf (count, sizeof count, "%d", ROUTERS);
    const char *args [] = { "--count", count, "--prefix", "x-", "--sessions", "0", NULL };
    ep_proc_t *agent = s_agent (watchdog, args);

    //  Attempts 1..6 take at most 0.2 + 0.4 + 0.8 + 1.6 + 3.2 s after the first.
    int64_t deadline = ep_mono_ms () + 30000 * EP_TEST_SLOWDOWN;
    for (int i = 0; i < ROUTERS; i++) {
        char id [16];
        snprintf (id, sizeof id, "x-%d", i);
        cr_assert (s_await_count ("channel.refused", s_refused, id, ATTEMPTS, (int) (deadline - ep_mono_ms ())),
                   "%s was refused %zu times, not %d", id, s_count ("channel.refused", s_refused, id), ATTEMPTS);
    }
    ep_proc_signal (agent, SIGKILL);

    //  A retry's delay is in [d/2, d]. The refusals' publish times (ms)
    //  add the attempt's own time (connect, handshake, Hello; the fleet
    //  makes them in turn, in one loop), which only delays a retry.
    const int64_t slack = 300 * EP_TEST_SLOWDOWN;
    double low = 2, high = -1;          //  delays of attempts 3..5 as a share of [d/2, d]
    for (int i = 0; i < ROUTERS; i++) {
        char id [16];
        snprintf (id, sizeof id, "x-%d", i);
        int64_t at [ATTEMPTS];
        int n = 0;
        for (size_t j = 0; j < ep_eventlog_size (s_log) && n < ATTEMPTS; j++) {
            const ep_logged_t *e = ep_eventlog_get (s_log, j);
            if (streq (e->topic, "channel.refused") && s_refused (e, id))
                at [n++] = e->timestamp;
        }
        for (int k = 0; k + 1 < ATTEMPTS; k++) {
            int64_t d = 200LL << k, gap = at [k + 1] - at [k];
            cr_assert_geq (gap, d / 2 - 2, "%s retry %d came %lld ms after the last, before its backoff's %lld",
                           id, k + 1, (long long) gap, (long long) d / 2);
            cr_assert_leq (gap, d + slack, "%s retry %d came %lld ms after the last, past its backoff's %lld",
                           id, k + 1, (long long) gap, (long long) d);
            if (k >= 2) {
                double share = (double) (gap - d / 2) / (double) (d / 2);
                low = share < low? share: low;
                high = share > high? share: high;
            }
        }
    }
    //  Without jitter every share would be about 1: all retries together.
    cr_assert_geq (high - low, 0.3, "retries not spread over [d/2, d]: shares %.2f .. %.2f", low, high);
}
