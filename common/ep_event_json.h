/*  ep_event_json.h: the one JSON rendering of events.

    Everything that prints or stores events (the audit log, `edgeplane
    events --json`, --exec) uses this, so a field has one name everywhere.
    OpenZiti-compatible names first: namespace (the stream), event_src_id
    (the publisher), timestamp (RFC 3339 UTC); then ours: type (the topic
    after the namespace), stream, seq, epoch (hex). The body's fields follow
    at the top level under their proto names (ConnectEvent gives src_type,
    src_id, src_addr, dst_type, dst_id, dst_addr, connected, duration,
    reason). Rendering walks the protobuf descriptors, so a new event type
    needs no code here. docs/events.schema.json describes the result.
*/
#ifndef EP_EVENT_JSON_H_INCLUDED
#define EP_EVENT_JSON_H_INCLUDED

#include "ep_prelude.h"
#include "events.pb-c.h"
#include <jansson.h>

//  The JSON object for event published on topic. Caller json_decref ().
json_t *
    ep_event_json (const char *topic, const Ep__Event *event);

//  Any protobuf message as a JSON object (proto field names; enums as
//  lower-case names without their type prefix; 64-bit integers beyond 2^53
//  as decimal strings; bytes as hex). Caller json_decref ().
json_t *
    ep_message_json (const ProtobufCMessage *msg);

//  The reverse of ep_message_json: fills msg (initialised, its fields
//  unset) from the JSON object under the same names (enums by the same
//  lower-case names, or their full names or numbers; 64-bit integers also
//  as decimal strings). Strings and sub-messages are malloc'd, so
//  protobuf_c_message_free_unpacked (msg, NULL) frees them (and msg).
//  Bytes and floating-point fields are refused. Returns 0, or -1 with
//  "PATH.FIELD: what was wrong and what to write" in err, where path names
//  object (e.g. "fields"; NULL or "" for none).
int
    ep_message_from_json (ProtobufCMessage *msg, const json_t *object, const char *path,
                          char *err, size_t errlen);

//  One human-readable line for the event (no newline). Caller frees.
char *
    ep_event_text (const char *topic, const Ep__Event *event);

#endif
