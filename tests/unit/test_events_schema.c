/*  test_events_schema.c: every event body, rendered by ep_event_json,
    validates against docs/events.schema.json, and so do the examples in
    docs/events.md; lines that break the contract are rejected, so the
    check is known to run. Needs /usr/bin/python3 with python3-jsonschema. */
#include <criterion/criterion.h>
#include "ep_event_json.h"
#include "ep_test.h"

#define SCHEMA EP_SOURCE_DIR "/docs/events.schema.json"
#define EVENTS_DOC EP_SOURCE_DIR "/docs/events.md"
#define VALIDATOR "/usr/bin/python3 " EP_SOURCE_DIR "/tests/support/validate_events.py"

static char *s_dir;

static void
s_setup (void)
{
    s_dir = ep_tmpdir_new ("events-schema");
}

static void
s_teardown (void)
{
    ep_tmpdir_remove (&s_dir);
}

TestSuite (events_schema, .init = s_setup, .fini = s_teardown);

//  The events rendered so far, as JSON objects, and the body types seen.
typedef struct {
    json_t *lines;              //  array of rendered events
    bool seen [64];             //  seen [body_case]: a body of that type was rendered
} s_events_t;

static void
s_emit (s_events_t *events, const char *topic, Ep__Event *event, const char *source, uint64_t seq)
{
    char stream [64];
    snprintf (stream, sizeof stream, "%.*s", (int) strcspn (topic, "."), topic);
    Ep__StreamMeta meta = EP__STREAM_META__INIT;
    meta.source_id = (char *) source;
    meta.has_epoch = true;
    meta.epoch = 0x3c9d2e7f104ab865ull;
    meta.stream = stream;
    meta.has_seq = true;
    meta.seq = seq;
    meta.has_timestamp_ms = true;
    meta.timestamp_ms = 1795346624123;
    meta.has_epoch_started_ms = true;
    meta.epoch_started_ms = 1795346000000;
    event->meta = &meta;
    json_array_append_new (events->lines, ep_event_json (topic, event));
    cr_assert ((size_t) event->body_case < EP_COUNT (events->seen));
    events->seen [event->body_case] = true;
    event->meta = NULL;
}

static void
s_heartbeat (s_events_t *events)
{
    Ep__StreamHeartbeat body = EP__STREAM_HEARTBEAT__INIT;
    body.has_interval_ms = true;
    body.interval_ms = 1000;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_HEARTBEAT;
    event.heartbeat = &body;
    s_emit (events, "terminator.heartbeat", &event, "terminators-5be01f", 17);
    s_emit (events, "cmd.heartbeat", &event, "reaper-77a0c3", 3);
}

static void
s_connect (s_events_t *events)
{
    //  Every field, with the OpenZiti names.
    Ep__ConnectEvent body = EP__CONNECT_EVENT__INIT;
    body.type = "router-to-ctrl";
    body.src_type = "router";
    body.src_id = "r1";
    body.src_addr = "127.0.0.1:50412";
    body.dst_type = "ctrl";
    body.dst_id = "watchdog-9f31c2";
    body.dst_addr = "127.0.0.1:6262";
    body.has_connected = true;
    body.connected = false;
    body.has_duration = true;
    body.duration = 3600123;
    body.reason = "heartbeat-timeout";
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_CONNECT;
    event.connect = &body;
    s_emit (events, "connect.router-to-ctrl", &event, "watchdog-9f31c2", 88);

    Ep__ConnectEvent edge = EP__CONNECT_EVENT__INIT;
    edge.type = "edge-to-router";
    edge.src_type = "identity";
    edge.src_id = "laptop-7";
    edge.src_addr = "192.0.2.10:61000";
    edge.dst_type = "router";
    edge.dst_id = "r1";
    edge.dst_addr = "198.51.100.4:3022";
    edge.has_connected = true;
    edge.connected = true;
    edge.has_event_time_ms = true;          //  the router's clock
    edge.event_time_ms = 1795346624871;
    event.connect = &edge;
    s_emit (events, "connect.edge-to-router", &event, "watchdog-9f31c2", 89);
}

static void
s_stray (s_events_t *events)
{
    Ep__StrayEvent body = EP__STRAY_EVENT__INIT;
    body.remote_addr = "203.0.113.7:40022";
    body.has_accepted_at_ms = true;
    body.accepted_at_ms = 1795346594000;
    body.has_protocol_version = true;
    body.protocol_version = 1;
    body.step = "await-hello";
    body.action = "disconnect";
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_STRAY;
    event.stray = &body;
    s_emit (events, "stray.detected", &event, "watchdog-9f31c2", 4);

    Ep__StrayEvent peer = EP__STRAY_EVENT__INIT;
    peer.remote_addr = "10.0.0.9:51000";
    peer.has_accepted_at_ms = true;
    peer.accepted_at_ms = 1795346620000;
    peer.step = "not-member";
    peer.action = "disconnect";
    peer.peer_id = "ctrl-old";
    event.stray = &peer;
    s_emit (events, "cluster.peer.not_member", &event, "watchdog-9f31c2", 1);
}

//  Entities of every kind, with everything filled in, for model and
//  entityChange events.
typedef struct {
    Ep__Principal principal;            //  who changed them
    Ep__EntityMeta meta;                //  shared by every entity
    Ep__HostedService hosted;           //  the router's one hosted service
    Ep__HostedService *hosted_list [1]; //  the router's hosted list
    Ep__Tag tag;                        //  the one tag
    Ep__Tag *tag_list [1];              //  the tag list of router and service
    Ep__Router router;                  //  a router
    Ep__Service service;                //  a service
    Ep__Identity identity;              //  an identity
    Ep__Controller controller;          //  a controller
    Ep__Entity entity [4];              //  the four above as entities, in that order
} s_entities_t;

static void
s_entities_init (s_entities_t *self)
{
    self->principal = (Ep__Principal) EP__PRINCIPAL__INIT;
    self->principal.key = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";
    self->principal.role = "operator";
    self->principal.name = "alice";
    self->meta = (Ep__EntityMeta) EP__ENTITY_META__INIT;
    self->meta.has_version = true;
    self->meta.version = 57;
    self->meta.has_create_revision = true;
    self->meta.create_revision = 12;
    self->meta.has_created_at_ms = true;
    self->meta.created_at_ms = 1795000000000;
    self->meta.has_updated_at_ms = true;
    self->meta.updated_at_ms = 1795346624000;
    self->meta.updated_by = &self->principal;
    self->hosted = (Ep__HostedService) EP__HOSTED_SERVICE__INIT;
    self->hosted.service_id = "echo";
    self->hosted.has_cost = true;
    self->hosted.cost = 10;
    self->hosted.has_precedence = true;
    self->hosted.precedence = EP__PRECEDENCE__PRECEDENCE_REQUIRED;
    self->hosted_list [0] = &self->hosted;
    self->tag = (Ep__Tag) EP__TAG__INIT;
    self->tag.key = "region";
    self->tag.value = "eu-west";
    self->tag_list [0] = &self->tag;

    self->router = (Ep__Router) EP__ROUTER__INIT;
    self->router.id = "r1";
    self->router.name = "edge-router-1";
    self->router.has_enabled = true;
    self->router.enabled = true;
    self->router.n_hosted = 1;
    self->router.hosted = self->hosted_list;
    self->router.n_tags = 1;
    self->router.tags = self->tag_list;
    self->router.meta = &self->meta;
    self->service = (Ep__Service) EP__SERVICE__INIT;
    self->service.id = "echo";
    self->service.name = "echo";
    self->service.has_enabled = true;
    self->service.enabled = true;
    self->service.n_tags = 1;
    self->service.tags = self->tag_list;
    self->service.has_criticality = true;
    self->service.criticality = EP__CRITICALITY__CRITICALITY_CRITICAL;
    self->service.meta = &self->meta;
    self->identity = (Ep__Identity) EP__IDENTITY__INIT;
    self->identity.id = "laptop-7";
    self->identity.name = "Laptop 7";
    self->identity.has_enabled = true;
    self->identity.enabled = false;
    self->identity.meta = &self->meta;
    self->controller = (Ep__Controller) EP__CONTROLLER__INIT;
    self->controller.id = "ctrl-a";
    self->controller.address = "ctrl-a.example.net:6262";
    self->controller.meta = &self->meta;

    for (int i = 0; i < 4; i++)
        self->entity [i] = (Ep__Entity) EP__ENTITY__INIT;
    self->entity [0].kind_case = EP__ENTITY__KIND_ROUTER;
    self->entity [0].router = &self->router;
    self->entity [1].kind_case = EP__ENTITY__KIND_SERVICE;
    self->entity [1].service = &self->service;
    self->entity [2].kind_case = EP__ENTITY__KIND_IDENTITY;
    self->entity [2].identity = &self->identity;
    self->entity [3].kind_case = EP__ENTITY__KIND_CONTROLLER;
    self->entity [3].controller = &self->controller;
}

static void
s_model (s_events_t *events)
{
    s_entities_t entities;
    s_entities_init (&entities);

    Ep__ModelOp created = EP__MODEL_OP__INIT;
    created.has_kind = true;
    created.kind = EP__MODEL_OP__KIND__CREATED;
    created.has_type = true;
    created.type = EP__ENTITY_TYPE__ENTITY_ROUTER;
    created.id = "r1";
    created.entity = &entities.entity [0];
    char *added [] = { "echo" };
    char *removed [] = { "ssh", "web" };
    created.n_hosted_added = 1;
    created.hosted_added = added;
    created.n_hosted_removed = 2;
    created.hosted_removed = removed;
    Ep__ModelOp deleted = EP__MODEL_OP__INIT;
    deleted.has_kind = true;
    deleted.kind = EP__MODEL_OP__KIND__DELETED;
    deleted.has_type = true;
    deleted.type = EP__ENTITY_TYPE__ENTITY_SERVICE;
    deleted.id = "ssh";
    Ep__ModelOp *ops [] = { &created, &deleted };

    Ep__ModelChange body = EP__MODEL_CHANGE__INIT;
    body.has_revision = true;
    body.revision = 58;
    body.generation = "6f1c0a9e2b7d4c35";
    body.principal = &entities.principal;
    body.n_ops = EP_COUNT (ops);
    body.ops = ops;
    body.has_part = true;
    body.part = 1;
    body.has_parts = true;
    body.parts = 1;
    body.has_committed_at_ms = true;
    body.committed_at_ms = 1795346624100;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_MODEL_CHANGE;
    event.model_change = &body;
    s_emit (events, "model.change", &event, "model-8b21de", 58);

    const char *topics [] = {
        "entityChange.router.updated", "entityChange.service.created",
        "entityChange.identity.deleted", "entityChange.controller.created"
    };
    const char *types [] = { "router", "service", "identity", "controller" };
    const char *ops_names [] = { "updated", "created", "deleted", "created" };
    const char *ids [] = { "r1", "echo", "laptop-7", "ctrl-a" };
    for (int i = 0; i < 4; i++) {
        Ep__EntityChange change = EP__ENTITY_CHANGE__INIT;
        change.entity_type = (char *) types [i];
        change.op = (char *) ops_names [i];
        change.has_revision = true;
        change.revision = 58 + i;
        change.id = (char *) ids [i];
        change.entity = &entities.entity [i];
        change.principal = &entities.principal;
        Ep__Event changed = EP__EVENT__INIT;
        changed.body_case = EP__EVENT__BODY_ENTITY_CHANGE;
        changed.entity_change = &change;
        s_emit (events, topics [i], &changed, "model-8b21de", 200 + i);
    }
}

static void
s_terminator (s_events_t *events)
{
    Ep__TerminatorEvent body = EP__TERMINATOR_EVENT__INIT;
    body.event_type = "established";
    body.terminator_id = "r1-echo-0";
    body.service_id = "echo";
    body.router_id = "r1";
    body.host_id = "server-3";
    body.has_precedence = true;
    body.precedence = EP__PRECEDENCE__PRECEDENCE_DEFAULT;
    body.has_static_cost = true;
    body.static_cost = 10;
    body.has_router_online = true;
    body.router_online = true;
    body.has_total_terminators = true;
    body.total_terminators = 3;
    body.has_usable_default_terminators = true;
    body.usable_default_terminators = 2;
    body.has_usable_required_terminators = true;
    body.usable_required_terminators = 1;
    body.reason = "router-joined";
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_TERMINATOR;
    event.terminator = &body;
    s_emit (events, "terminator.established", &event, "terminators-5be01f", 18);
}

static void
s_session (s_events_t *events)
{
    Ep__SessionEvent body = EP__SESSION_EVENT__INIT;
    body.event_type = "reaped";
    body.session_id = "s-4c1d9a";
    body.router_id = "r1";
    body.identity_id = "laptop-7";
    body.service_id = "echo";
    body.reason = "router-deleted";
    body.has_age_ms = true;
    body.age_ms = 93000;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_SESSION;
    event.session = &body;
    s_emit (events, "session.reaped", &event, "reaper-77a0c3", 912);
}

static void
s_presence (s_events_t *events)
{
    Ep__PresenceEvent body = EP__PRESENCE_EVENT__INIT;
    body.instance_id = "watchdog-9f31c2";
    body.has_instance_epoch = true;
    body.instance_epoch = 0xd2f4a61b9c3e0857ull;    //  beyond 2^53: a string
    body.api_address = "tcp://10.0.0.5:7031";
    body.channel_address = "10.0.0.5:6262";
    char *routers [] = { "r1", "r2" };
    body.n_routers = 2;
    body.routers = routers;
    body.has_joined_at_ms = true;
    body.joined_at_ms = 1795346000500;
    body.ctrl_id = "watchdog-9f31c2";
    body.has_model_revision = true;
    body.model_revision = 42;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_PRESENCE;
    event.presence = &body;
    //  A seq beyond 2^53 is a string too.
    s_emit (events, "presence.beacon", &event, "watchdog-9f31c2", 9007199254740993ull);
}

static void
s_command (s_events_t *events)
{
    char *sessions [] = { "s-4c1d9a", "s-77e0b2" };
    Ep__CloseSessions close = EP__CLOSE_SESSIONS__INIT;
    close.n_session_ids = 2;
    close.session_ids = sessions;
    close.reason = "router-deleted";
    Ep__Command body = EP__COMMAND__INIT;
    body.command_id = "c-81f0";
    body.router_id = "r1";
    body.reply_to = "reaper";
    body.has_deadline_ms = true;
    body.deadline_ms = 1795346654123;
    body.shard_service = "reaper";      //  a sharded publisher's fence
    body.has_shard = body.has_owner_revision = true;
    body.shard = 44;                    //  "r1" of 64
    body.owner_revision = 1207;
    body.kind_case = EP__COMMAND__KIND_CLOSE_SESSIONS;
    body.close_sessions = &close;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_COMMAND;
    event.command = &body;
    s_emit (events, "cmd.r1.", &event, "reaper-77a0c3", 4);

    Ep__ProbeSessions probe = EP__PROBE_SESSIONS__INIT;
    probe.n_session_ids = 1;
    probe.session_ids = sessions;
    body.kind_case = EP__COMMAND__KIND_PROBE_SESSIONS;
    body.probe_sessions = &probe;
    s_emit (events, "cmd.r1.", &event, "reaper-77a0c3", 5);

    Ep__ValidateTerminators validate = EP__VALIDATE_TERMINATORS__INIT;
    body.kind_case = EP__COMMAND__KIND_VALIDATE_TERMINATORS;
    body.validate_terminators = &validate;
    body.reply_to = "terminators";
    s_emit (events, "cmd.r1.", &event, "terminators-5be01f", 9);
}

static void
s_service (s_events_t *events)
{
    Ep__ServiceEvent body = EP__SERVICE_EVENT__INIT;
    body.service = "model";
    body.state = "degraded";
    body.reason = "disk_full";
    body.path = "/var/lib/edgeplane/model.db";
    body.detail = "/var/lib/edgeplane/model.db: committing: the disk is full (database or disk is full)";
    body.has_since_ms = true;
    body.since_ms = 1795346624871;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_SERVICE;
    event.service = &body;
    s_emit (events, "service.degraded", &event, "model-1a2b3c", 1);
    body.state = "recovered";
    s_emit (events, "service.degraded", &event, "model-1a2b3c", 2);
}

static void
s_channel (s_events_t *events)
{
    Ep__ChannelEvent body = EP__CHANNEL_EVENT__INIT;
    body.reason = "certificate-mismatch";
    body.remote_addr = "203.0.113.7:40022";
    body.role = "router";
    body.id = "r9";
    body.detail = "Hello id r9 does not match the certificate's id r8";
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_CHANNEL;
    event.channel = &body;
    s_emit (events, "channel.refused", &event, "watchdog-9f31c2", 12);
    //  Text that is not UTF-8 (from a hostile peer) renders as null.
    body.detail = "bad \xff\xfe bytes";
    s_emit (events, "channel.refused", &event, "watchdog-9f31c2", 13);
}

static void
s_router (s_events_t *events)
{
    Ep__ChannelEvent body = EP__CHANNEL_EVENT__INIT;
    body.reason = "it would host 2 services and this router serves at most 1 (--max-services)";
    body.role = "router";
    body.id = "r1";
    body.has_revision = body.has_acked_revision = true;
    body.revision = 61;
    body.acked_revision = 58;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_CHANNEL;
    event.channel = &body;
    s_emit (events, "router.slice.rejected", &event, "watchdog-9f31c2", 3);
    Ep__ChannelEvent stale = EP__CHANNEL_EVENT__INIT;
    stale.role = "router";
    stale.id = "r2";
    stale.has_revision = stale.has_acked_revision = stale.has_age_ms = true;
    stale.revision = 64;
    stale.acked_revision = 58;
    stale.age_ms = 61200;
    event.channel = &stale;
    s_emit (events, "router.slice.stale", &event, "watchdog-9f31c2", 4);
}

static void
s_cluster (s_events_t *events)
{
    uint32_t shards [] = { 3, 17, 40 };
    int64_t revisions [] = { 812, 1040, 1041 };
    Ep__ShardBeacon beacon = EP__SHARD_BEACON__INIT;
    beacon.service = "terminators";
    beacon.instance_id = "term-a";
    beacon.address = "tcp://10.0.0.5:5556";
    beacon.has_shard_count = beacon.has_interval_ms = true;
    beacon.shard_count = 64;
    beacon.interval_ms = 1000;
    beacon.n_shards = beacon.n_owner_revisions = 3;
    beacon.shards = shards;
    beacon.owner_revisions = revisions;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_SHARD_BEACON;
    event.shard_beacon = &beacon;
    s_emit (events, "cluster.beacon", &event, "terminators-5be01f", 120);
    Ep__ShardBeacon idle = EP__SHARD_BEACON__INIT;     //  a member owning nothing yet
    idle.service = "terminators";
    idle.instance_id = "term-b";
    idle.address = "tcp://10.0.0.6:5556";
    idle.has_shard_count = idle.has_interval_ms = true;
    idle.shard_count = 64;
    idle.interval_ms = 1000;
    event.shard_beacon = &idle;
    s_emit (events, "cluster.beacon", &event, "terminators-77c01a", 1);

    Ep__ShardEvent shard = EP__SHARD_EVENT__INIT;
    shard.service = "terminators";
    shard.instance_id = "term-a";
    shard.has_shard = shard.has_owner_revision = true;
    shard.shard = 40;
    shard.owner_revision = 1041;
    event.body_case = EP__EVENT__BODY_SHARD;
    event.shard = &shard;
    s_emit (events, "cluster.shard.acquired", &event, "terminators-5be01f", 121);
    shard.reason = "lease lost";
    s_emit (events, "cluster.shard.released", &event, "terminators-5be01f", 122);
}

//  Writes the events as JSON lines to dir/name; returns the path.
static char *
s_write_lines (json_t *lines, const char *name)
{
    char *path = zsys_sprintf ("%s/%s", s_dir, name);
    FILE *out = fopen (path, "w");
    cr_assert_not_null (out);
    size_t i;
    json_t *line;
    json_array_foreach (lines, i, line) {
        char *text = json_dumps (line, JSON_COMPACT);
        cr_assert_not_null (text);
        fprintf (out, "%s\n", text);
        free (text);
    }
    fclose (out);
    return path;
}

static int
s_validate (const char *options, const char *path, char **out)
{
    char *command = zsys_sprintf (VALIDATOR " %s '%s' '%s' 2>&1", options, SCHEMA, path);
    int status = ep_run (command, out);
    free (command);
    return status;
}

static json_t *
s_all_events (void)
{
    s_events_t events = { .lines = json_array () };
    s_heartbeat (&events);
    s_connect (&events);
    s_stray (&events);
    s_model (&events);
    s_terminator (&events);
    s_session (&events);
    s_presence (&events);
    s_command (&events);
    s_channel (&events);
    s_router (&events);
    s_service (&events);
    s_cluster (&events);
    //  A new body type in events.proto needs an event here (and a schema entry).
    const ProtobufCMessageDescriptor *desc = &ep__event__descriptor;
    for (unsigned i = 0; i < desc->n_fields; i++)
        if (desc->fields [i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
            cr_assert (events.seen [desc->fields [i].id],
                       "no test event with body %s", desc->fields [i].name);
    return events.lines;
}

Test (events_schema, every_body_type_validates)
{
    json_t *lines = s_all_events ();
    char *path = s_write_lines (lines, "events.jsonl");
    char *out = NULL;
    int status = s_validate ("--all-namespaces", path, &out);
    cr_assert_eq (status, 0, "validation failed (exit %d):\n%s", status, out);
    cr_assert (strstr (out, "valid"), "%s", out);
    free (out);
    free (path);
    json_decref (lines);
}

Test (events_schema, docs_examples_validate_and_cover_every_namespace)
{
    char *out = NULL;
    int status = s_validate ("--all-namespaces", EVENTS_DOC, &out);
    cr_assert_eq (status, 0, "docs/events.md examples (exit %d):\n%s", status, out);
    free (out);
}

//  Takes the first event of namespace ns and type type from the rendered set.
static json_t *
s_pick (json_t *lines, const char *ns, const char *type)
{
    size_t i;
    json_t *line;
    json_array_foreach (lines, i, line)
        if (streq (json_string_value (json_object_get (line, "namespace")), ns)
        &&  streq (json_string_value (json_object_get (line, "type")), type))
            return json_deep_copy (line);
    cr_assert_fail ("no %s.%s event", ns, type);
    return NULL;
}

static void
s_assert_rejected (json_t *line, const char *why, const char *expected)
{
    json_t *lines = json_array ();
    json_array_append_new (lines, line);
    char *path = s_write_lines (lines, "wrong.jsonl");
    char *out = NULL;
    int status = s_validate ("", path, &out);
    cr_assert_eq (status, 1, "%s: expected a rejection, got exit %d:\n%s", why, status, out);
    cr_assert (strstr (out, expected), "%s: expected '%s' in:\n%s", why, expected, out);
    free (out);
    free (path);
    json_decref (lines);
}

Test (events_schema, wrong_lines_are_rejected)
{
    json_t *lines = s_all_events ();
    json_t *line;

    line = s_pick (lines, "connect", "router-to-ctrl");
    json_object_del (line, "event_src_id");
    s_assert_rejected (line, "missing event_src_id",
                       "'event_src_id' is a required property");

    line = s_pick (lines, "session", "reaped");
    json_object_set_new (line, "seq", json_string ("42"));
    s_assert_rejected (line, "seq as a short string", "seq: '42' is not valid");

    line = s_pick (lines, "terminator", "established");
    json_object_set_new (line, "precedence", json_string ("mandatory"));
    s_assert_rejected (line, "unknown precedence", "precedence: 'mandatory' is not valid");

    line = s_pick (lines, "connect", "router-to-ctrl");
    json_object_set_new (line, "colour", json_string ("blue"));
    s_assert_rejected (line, "undocumented field", "'colour' was unexpected");

    line = s_pick (lines, "connect", "router-to-ctrl");
    json_object_set_new (line, "session_id", json_string ("s-1"));
    s_assert_rejected (line, "another namespace's field", "'session_id' was unexpected");

    line = s_pick (lines, "stray", "detected");
    json_object_set_new (line, "epoch", json_string ("3c9d2e7f104ab86"));
    s_assert_rejected (line, "short epoch", "epoch: '3c9d2e7f104ab86' does not match");

    line = s_pick (lines, "presence", "beacon");
    json_object_set_new (line, "timestamp", json_string ("yesterday"));
    s_assert_rejected (line, "timestamp not RFC 3339", "timestamp: 'yesterday' does not match");

    line = s_pick (lines, "cmd", "r1.");
    json_object_set_new (line, "type", json_string ("r1"));
    s_assert_rejected (line, "cmd topic without its trailing dot",
                       "type: 'r1' does not match");

    line = s_pick (lines, "session", "reaped");
    json_object_set_new (line, "stream", json_string ("terminator"));
    s_assert_rejected (line, "stream other than the namespace", "stream: 'session' was expected");

    line = s_pick (lines, "model", "change");
    json_t *router = json_object_get (json_object_get (json_array_get (
        json_object_get (line, "ops"), 0), "entity"), "router");
    json_object_set_new (router, "enabled", json_string ("yes"));
    s_assert_rejected (line, "nested field of the wrong type", "ops/0/entity/router/enabled");

    line = s_pick (lines, "model", "change");
    json_object_set_new (line, "namespace", json_string ("weather"));
    s_assert_rejected (line, "unknown namespace", "namespace: 'weather' is not one of");

    //  The router's own time belongs to edge-to-router only.
    line = s_pick (lines, "connect", "router-to-ctrl");
    json_object_set_new (line, "event_time_ms", json_integer (1795346624871));
    s_assert_rejected (line, "event_time_ms on router-to-ctrl", "should not be valid");

    line = s_pick (lines, "connect", "edge-to-router");
    json_object_set_new (line, "event_time_ms", json_string ("1795346624871"));
    s_assert_rejected (line, "event_time_ms as a string", "event_time_ms: '1795346624871' is not of type");

    line = s_pick (lines, "router", "slice.stale");
    json_object_set_new (line, "remote_addr", json_string ("203.0.113.7:40022"));
    s_assert_rejected (line, "a field router.slice does not have", "'remote_addr' was unexpected");

    line = s_pick (lines, "router", "slice.rejected");
    json_object_set_new (line, "type", json_string ("slice.lost"));
    s_assert_rejected (line, "an unknown router type", "type: 'slice.lost' is not one of");

    line = s_pick (lines, "cluster", "beacon");
    json_object_del (line, "address");
    s_assert_rejected (line, "a beacon without its address", "'address' is a required property");

    line = s_pick (lines, "cluster", "shard.acquired");
    json_object_set_new (line, "shards", json_pack ("[i]", 40));
    s_assert_rejected (line, "a beacon's field on a shard event", "'shards' was unexpected");

    json_decref (lines);
}
