/*  test_event_json.c: the canonical JSON rendering of events. */
#include <criterion/criterion.h>
#include "ep_event_json.h"

static Ep__StreamMeta s_meta = EP__STREAM_META__INIT;

static void
s_stamp (Ep__Event *event)
{
    s_meta.source_id = "watchdog-1a2b";
    s_meta.has_epoch = true;
    s_meta.epoch = 0xfedcba9876543210ull;
    s_meta.stream = "connect";
    s_meta.has_seq = true;
    s_meta.seq = 42;
    s_meta.has_timestamp_ms = true;
    s_meta.timestamp_ms = 1000123;
    event->meta = &s_meta;
}

Test (event_json, connect_event_has_openziti_field_names)
{
    Ep__ConnectEvent body = EP__CONNECT_EVENT__INIT;
    body.type = "router-to-ctrl";
    body.src_type = "router";
    body.src_id = "r1";
    body.src_addr = "127.0.0.1:50000";
    body.dst_type = "ctrl";
    body.dst_id = "watchdog-1a2b";
    body.dst_addr = "127.0.0.1:6262";
    body.has_connected = true;
    body.connected = true;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_CONNECT;
    event.connect = &body;
    s_stamp (&event);
    json_t *json = ep_event_json ("connect.router-to-ctrl", &event);
    cr_assert_str_eq (json_string_value (json_object_get (json, "namespace")), "connect");
    cr_assert_str_eq (json_string_value (json_object_get (json, "event_src_id")), "watchdog-1a2b");
    cr_assert_str_eq (json_string_value (json_object_get (json, "timestamp")), "1970-01-01T00:16:40.123Z");
    cr_assert_str_eq (json_string_value (json_object_get (json, "type")), "router-to-ctrl");
    cr_assert_eq (json_integer_value (json_object_get (json, "seq")), 42);
    cr_assert_str_eq (json_string_value (json_object_get (json, "epoch")), "fedcba9876543210");
    const char *fields [] = { "src_type", "src_id", "src_addr", "dst_type", "dst_id", "dst_addr" };
    for (size_t i = 0; i < EP_COUNT (fields); i++)
        cr_assert (json_is_string (json_object_get (json, fields [i])), "%s", fields [i]);
    cr_assert (json_is_true (json_object_get (json, "connected")));
    cr_assert_null (json_object_get (json, "duration"), "absent optional fields are absent");
    json_decref (json);
}

Test (event_json, enums_are_lower_case_names_without_prefix)
{
    Ep__TerminatorEvent body = EP__TERMINATOR_EVENT__INIT;
    body.event_type = "created";
    body.terminator_id = "t1";
    body.has_precedence = true;
    body.precedence = EP__PRECEDENCE__PRECEDENCE_REQUIRED;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_TERMINATOR;
    event.terminator = &body;
    s_stamp (&event);
    json_t *json = ep_event_json ("terminator.created", &event);
    cr_assert_str_eq (json_string_value (json_object_get (json, "precedence")), "required");
    json_decref (json);
}

Test (event_json, repeated_and_nested_fields)
{
    Ep__PresenceEvent body = EP__PRESENCE_EVENT__INIT;
    char *routers [] = { "r1", "r2" };
    body.n_routers = 2;
    body.routers = routers;
    body.has_instance_epoch = true;
    body.instance_epoch = UINT64_MAX;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_PRESENCE;
    event.presence = &body;
    s_stamp (&event);
    json_t *json = ep_event_json ("presence.beacon", &event);
    json_t *array = json_object_get (json, "routers");
    cr_assert_eq (json_array_size (array), 2);
    cr_assert_str_eq (json_string_value (json_array_get (array, 1)), "r2");
    //  Beyond 2^53 integers are strings, so JavaScript readers stay exact.
    cr_assert_str_eq (json_string_value (json_object_get (json, "instance_epoch")),
                      "18446744073709551615");
    json_decref (json);
}

Test (event_json, invalid_utf8_becomes_null_not_invalid_json)
{
    Ep__ChannelEvent body = EP__CHANNEL_EVENT__INIT;
    body.detail = "bad \xff\xfe bytes";
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_CHANNEL;
    event.channel = &body;
    s_stamp (&event);
    json_t *json = ep_event_json ("channel.refused", &event);
    cr_assert (json_is_null (json_object_get (json, "detail")));
    char *text = json_dumps (json, 0);
    cr_assert_not_null (text);
    free (text);
    json_decref (json);
}

Test (event_json, text_line_names_topic_source_and_fields)
{
    Ep__StrayEvent body = EP__STRAY_EVENT__INIT;
    body.remote_addr = "127.0.0.1:40000";
    body.step = "await-hello";
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_STRAY;
    event.stray = &body;
    s_stamp (&event);
    char *line = ep_event_text ("stray.detected", &event);
    cr_assert (strstr (line, "stray.detected"), "%s", line);
    cr_assert (strstr (line, "src=watchdog-1a2b"), "%s", line);
    cr_assert (strstr (line, "step=await-hello"), "%s", line);
    cr_assert (strstr (line, "remote_addr=127.0.0.1:40000"), "%s", line);
    cr_assert_null (strchr (line, '\n'));
    free (line);
}

//  ep_message_from_json reads what ep_message_json writes.
Test (event_json, message_from_json_reads_back_what_is_written)
{
    Ep__HostedService hosted = EP__HOSTED_SERVICE__INIT;
    hosted.service_id = "web";
    hosted.has_cost = true;
    hosted.cost = 10;
    hosted.has_precedence = true;
    hosted.precedence = EP__PRECEDENCE__PRECEDENCE_REQUIRED;
    Ep__HostedService *hosted_p [] = { &hosted };
    Ep__Tag tag = EP__TAG__INIT;
    tag.key = "site";
    tag.value = "paris";
    Ep__Tag *tags_p [] = { &tag };
    Ep__EntityMeta meta = EP__ENTITY_META__INIT;
    meta.has_version = true;
    meta.version = (1ull << 60) + 3;        //  written as a string
    Ep__Router router = EP__ROUTER__INIT;
    router.id = "edge-1";
    router.name = "Edge one";
    router.has_enabled = true;
    router.enabled = false;
    router.n_hosted = 1;
    router.hosted = hosted_p;
    router.n_tags = 1;
    router.tags = tags_p;
    router.meta = &meta;
    Ep__Entity entity = EP__ENTITY__INIT;
    entity.kind_case = EP__ENTITY__KIND_ROUTER;
    entity.router = &router;
    json_t *json = ep_message_json (&entity.base);

    Ep__Entity *back = (Ep__Entity *) malloc (sizeof (Ep__Entity));
    ep__entity__init (back);
    char err [256] = "";
    cr_assert_eq (ep_message_from_json (&back->base, json, NULL, err, sizeof err), 0, "%s", err);
    json_t *again = ep_message_json (&back->base);
    cr_assert (json_equal (json, again));
    cr_assert_eq (back->kind_case, EP__ENTITY__KIND_ROUTER);
    cr_assert_eq (back->router->hosted [0]->precedence, EP__PRECEDENCE__PRECEDENCE_REQUIRED);
    cr_assert (back->router->has_enabled && !back->router->enabled);
    cr_assert_eq (back->router->meta->version, (1ull << 60) + 3);
    //  And it packs: a well-formed message.
    cr_assert_gt (ep__entity__get_packed_size (back), 0);
    ep__entity__free_unpacked (back, NULL);
    json_decref (again);
    json_decref (json);
}

//  Each refusal names the field, with its path, and says what to write.
Test (event_json, message_from_json_names_the_bad_field)
{
    const struct { const char *json; const char *message; } cases [] = {
        { "{\"router\": {\"hosted\": [{\"service_id\": \"a\"}, {\"cost\": \"x\"}]}}",
          "fields.router.hosted[1].cost: expected an integer from 0 to 4294967295" },
        { "{\"router\": {\"hosted\": [{\"precedence\": \"sometimes\"}]}}",
          "fields.router.hosted[0].precedence: expected one of default, required, failed" },
        { "{\"router\": {\"nmae\": \"x\"}}", "fields.router.nmae: no such field in a Router; it has id," },
        { "{\"router\": {\"enabled\": 1}}", "fields.router.enabled: expected true or false" },
        { "{\"router\": {\"tags\": {}}}", "fields.router.tags: expected an array" },
        { "{\"router\": {\"id\": \"a\"}, \"service\": {\"id\": \"b\"}}", "give only one of" },
        { "{\"router\": 3}", "fields.router: expected an object (a Router)" },
    };
    for (size_t i = 0; i < EP_COUNT (cases); i++) {
        json_t *json = json_loads (cases [i].json, 0, NULL);
        cr_assert (json, "%s", cases [i].json);
        Ep__Entity *entity = (Ep__Entity *) malloc (sizeof (Ep__Entity));
        ep__entity__init (entity);
        char err [512] = "";
        cr_assert_eq (ep_message_from_json (&entity->base, json, "fields", err, sizeof err), -1, "%s", cases [i].json);
        cr_assert (strstr (err, cases [i].message), "%s: got \"%s\"", cases [i].json, err);
        //  A half-read message frees cleanly (the sanitizer stage checks).
        ep__entity__free_unpacked (entity, NULL);
        json_decref (json);
    }
}

//  cluster.beacon and cluster.shard.*: the sharded services' beacons and
//  handovers, under their proto names, repeated fields as arrays.
Test (event_json, shard_beacon_and_shard_event)
{
    uint32_t shards [] = { 3, 17 };
    int64_t revisions [] = { 812, 1040 };
    Ep__ShardBeacon beacon = EP__SHARD_BEACON__INIT;
    beacon.service = "terminators";
    beacon.instance_id = "term-a";
    beacon.address = "tcp://10.0.0.5:5556";
    beacon.has_shard_count = beacon.has_interval_ms = true;
    beacon.shard_count = 64;
    beacon.interval_ms = 1000;
    beacon.n_shards = beacon.n_owner_revisions = 2;
    beacon.shards = shards;
    beacon.owner_revisions = revisions;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_SHARD_BEACON;
    event.shard_beacon = &beacon;
    s_stamp (&event);
    json_t *json = ep_event_json ("cluster.beacon", &event);
    cr_assert_str_eq (json_string_value (json_object_get (json, "namespace")), "cluster");
    cr_assert_str_eq (json_string_value (json_object_get (json, "type")), "beacon");
    cr_assert_str_eq (json_string_value (json_object_get (json, "address")), "tcp://10.0.0.5:5556");
    cr_assert_eq (json_integer_value (json_object_get (json, "shard_count")), 64);
    cr_assert_eq (json_integer_value (json_array_get (json_object_get (json, "shards"), 1)), 17);
    cr_assert_eq (json_integer_value (json_array_get (json_object_get (json, "owner_revisions"), 0)), 812);
    json_decref (json);

    Ep__ShardEvent shard = EP__SHARD_EVENT__INIT;
    shard.service = "terminators";
    shard.instance_id = "term-a";
    shard.has_shard = shard.has_owner_revision = true;
    shard.shard = 0;                    //  present though 0: has_shard says so
    shard.owner_revision = 1040;
    shard.reason = "lease lost";
    event.body_case = EP__EVENT__BODY_SHARD;
    event.shard = &shard;
    json = ep_event_json ("cluster.shard.released", &event);
    cr_assert_str_eq (json_string_value (json_object_get (json, "type")), "shard.released");
    cr_assert (json_is_integer (json_object_get (json, "shard")));
    cr_assert_eq (json_integer_value (json_object_get (json, "shard")), 0);
    cr_assert_str_eq (json_string_value (json_object_get (json, "reason")), "lease lost");
    json_decref (json);
}
