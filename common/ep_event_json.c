/*  ep_event_json.c: events to JSON by walking protobuf-c descriptors. */
#include "ep_event_json.h"
#include <ctype.h>
#include <errno.h>
#include <sodium.h>

//  2^53: the largest integer every JSON reader (JavaScript) keeps exact.
#define JSON_SAFE_INT (1ull << 53)

static json_t *s_value (const ProtobufCFieldDescriptor *field, const void *member);

static json_t *
s_uint64 (uint64_t value)
{
    if (value < JSON_SAFE_INT)
        return json_integer ((json_int_t) value);
    char text [24];
    snprintf (text, sizeof text, "%llu", (unsigned long long) value);
    return json_string (text);
}

//  Enum values as lower-case names without the prefix all the enum's values
//  share: PRECEDENCE_REQUIRED -> "required", ENTITY_ROUTER -> "router",
//  ESTABLISHED -> "established". Writes ev's word into lower.
static void
s_enum_word (const ProtobufCEnumDescriptor *desc, const ProtobufCEnumValue *ev, char *lower, size_t size)
{
    //  The longest prefix ending in '_' shared by every value name.
    size_t prefix = 0;
    const char *first = desc->values [0].name;
    for (size_t i = 0; first [i]; i++) {
        if (first [i] != '_')
            continue;
        bool shared = desc->n_values > 1;
        for (unsigned v = 1; shared && v < desc->n_values; v++)
            shared = strncmp (desc->values [v].name, first, i + 1) == 0;
        if (!shared)
            break;
        prefix = i + 1;
    }
    const char *name = ev->name [prefix]? ev->name + prefix: ev->name;
    size_t i = 0;
    for (; name [i] && i < size - 1; i++)
        lower [i] = (char) tolower ((unsigned char) name [i]);
    lower [i] = 0;
}

//  Unknown values stay numbers.
static json_t *
s_enum (const ProtobufCEnumDescriptor *desc, int value)
{
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value (desc, value);
    if (!ev)
        return json_integer (value);
    char lower [128];
    s_enum_word (desc, ev, lower, sizeof lower);
    return json_string (lower);
}

static json_t *
s_value (const ProtobufCFieldDescriptor *field, const void *member)
{
    switch (field->type) {
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_SINT32:
        case PROTOBUF_C_TYPE_SFIXED32:
            return json_integer (*(const int32_t *) member);
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_FIXED32:
            return json_integer (*(const uint32_t *) member);
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
            return json_integer (*(const int64_t *) member);
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
            return s_uint64 (*(const uint64_t *) member);
        case PROTOBUF_C_TYPE_FLOAT:
            return json_real (*(const float *) member);
        case PROTOBUF_C_TYPE_DOUBLE:
            return json_real (*(const double *) member);
        case PROTOBUF_C_TYPE_BOOL:
            return json_boolean (*(const protobuf_c_boolean *) member);
        case PROTOBUF_C_TYPE_ENUM:
            return s_enum ((const ProtobufCEnumDescriptor *) field->descriptor,
                           *(const int *) member);
        case PROTOBUF_C_TYPE_STRING: {
            const char *text = *(char *const *) member;
            //  Strings that are not UTF-8 (a hostile peer's) become null
            //  rather than invalid JSON.
            json_t *value = text? json_string (text): NULL;
            return value? value: json_null ();
        }
        case PROTOBUF_C_TYPE_BYTES: {
            const ProtobufCBinaryData *bin = (const ProtobufCBinaryData *) member;
            char *hex = (char *) malloc (bin->len * 2 + 1);
            sodium_bin2hex (hex, bin->len * 2 + 1, bin->data, bin->len);
            json_t *value = json_string (hex);
            free (hex);
            return value;
        }
        case PROTOBUF_C_TYPE_MESSAGE: {
            const ProtobufCMessage *sub = *(ProtobufCMessage *const *) member;
            return sub? ep_message_json (sub): json_null ();
        }
    }
    return json_null ();
}

//  Size of one element of a repeated field, for walking its array.
static size_t
s_element_size (const ProtobufCFieldDescriptor *field)
{
    switch (field->type) {
        case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64: case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
            return 8;
        case PROTOBUF_C_TYPE_DOUBLE:
            return sizeof (double);
        case PROTOBUF_C_TYPE_BOOL:
            return sizeof (protobuf_c_boolean);
        case PROTOBUF_C_TYPE_ENUM:
            return sizeof (int);
        case PROTOBUF_C_TYPE_STRING: case PROTOBUF_C_TYPE_MESSAGE:
            return sizeof (void *);
        case PROTOBUF_C_TYPE_BYTES:
            return sizeof (ProtobufCBinaryData);
        default:
            return 4;
    }
}

json_t *
ep_message_json (const ProtobufCMessage *msg)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    json_t *object = json_object ();
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *field = &desc->fields [i];
        const char *base = (const char *) msg;
        const void *member = base + field->offset;
        if (field->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t count = *(const size_t *) (base + field->quantifier_offset);
            if (count == 0)
                continue;
            json_t *array = json_array ();
            const char *items = *(char *const *) member;
            for (size_t j = 0; j < count; j++)
                json_array_append_new (array, s_value (field, items + j * s_element_size (field)));
            json_object_set_new (object, field->name, array);
            continue;
        }
        bool present;
        if (field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
            present = *(const uint32_t *) (base + field->quantifier_offset) == field->id;
        else
        if (field->type == PROTOBUF_C_TYPE_STRING || field->type == PROTOBUF_C_TYPE_MESSAGE)
            present = *(void *const *) member != NULL;
        else
        if (field->quantifier_offset)
            present = *(const protobuf_c_boolean *) (base + field->quantifier_offset);
        else
            present = true;
        if (present)
            json_object_set_new (object, field->name, s_value (field, member));
    }
    return object;
}

json_t *
ep_event_json (const char *topic, const Ep__Event *event)
{
    json_t *object = json_object ();
    const Ep__StreamMeta *meta = event->meta;
    const char *dot = strchr (topic, '.');
    char stream [128] = "";
    if (dot && (size_t) (dot - topic) < sizeof stream) {
        memcpy (stream, topic, dot - topic);
        stream [dot - topic] = 0;
    }
    json_object_set_new (object, "namespace", json_string (stream));
    json_object_set_new (object, "type", json_string (dot? dot + 1: topic));
    if (meta) {
        char ts [40], epoch [17];
        ep_rfc3339 (meta->timestamp_ms, ts, sizeof ts);
        snprintf (epoch, sizeof epoch, "%016llx", (unsigned long long) meta->epoch);
        json_object_set_new (object, "event_src_id",
                             meta->source_id? json_string (meta->source_id): json_null ());
        json_object_set_new (object, "timestamp", json_string (ts));
        json_object_set_new (object, "stream", meta->stream? json_string (meta->stream): json_null ());
        json_object_set_new (object, "seq", s_uint64 (meta->seq));
        json_object_set_new (object, "epoch", json_string (epoch));
        if (meta->event_id) {
            json_t *id = json_string (meta->event_id);
            json_object_set_new (object, "event_id", id? id: json_null ());
        }
    }
    //  The body's fields, flattened: the one member of the oneof that is set.
    const ProtobufCMessageDescriptor *desc = event->base.descriptor;
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *field = &desc->fields [i];
        if (!(field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        ||  (uint32_t) event->body_case != field->id)
            continue;
        const ProtobufCMessage *body =
            *(ProtobufCMessage *const *) ((const char *) event + field->offset);
        if (!body)
            break;
        json_t *fields = ep_message_json (body);
        const char *key;
        json_t *value;
        json_object_foreach (fields, key, value)
            if (!json_object_get (object, key) || streq (key, "type"))
                json_object_set (object, key, value);
        json_decref (fields);
        break;
    }
    return object;
}

char *
ep_event_text (const char *topic, const Ep__Event *event)
{
    json_t *object = ep_event_json (topic, event);
    static const char *header [] = {
        "namespace", "type", "event_src_id", "timestamp", "stream", "seq", "epoch"
    };
    zchunk_t *line = zchunk_new (NULL, 256);
    char ts_src [512];
    json_t *seq = json_object_get (object, "seq");
    char *seq_text = json_dumps (seq, JSON_ENCODE_ANY);
    snprintf (ts_src, sizeof ts_src, "%s %s src=%s seq=%s",
              json_string_value (json_object_get (object, "timestamp")), topic,
              json_string_value (json_object_get (object, "event_src_id")),
              seq_text? seq_text: "?");
    free (seq_text);
    zchunk_extend (line, ts_src, strlen (ts_src));
    const char *key;
    json_t *value;
    json_object_foreach (object, key, value) {
        bool skip = false;
        for (size_t i = 0; i < EP_COUNT (header); i++)
            skip |= streq (key, header [i]);
        if (skip)
            continue;
        char *text = json_is_string (value)? strdup (json_string_value (value))
                                           : json_dumps (value, JSON_ENCODE_ANY | JSON_COMPACT);
        char *pair = zsys_sprintf (" %s=%s", key, text? text: "?");
        zchunk_extend (line, pair, strlen (pair));
        free (pair);
        free (text);
    }
    json_decref (object);
    char *result = zchunk_strdup (line);
    zchunk_destroy (&line);
    return result;
}

//  ---------------------------------------------------------------------
//  JSON to messages (ep_message_from_json)

static int s_read_value (const ProtobufCFieldDescriptor *field, const json_t *value, void *slot,
                         const char *where, char *err, size_t errlen);

//  A JSON integer (or, for 64-bit fields, a decimal string) within
//  [min, max]; the unsigned 64-bit case checks max only.
static int
s_read_integer (const json_t *value, bool is_unsigned, int64_t min, uint64_t max, int64_t *out,
                const char *where, char *err, size_t errlen)
{
    if (json_is_integer (value)) {
        json_int_t number = json_integer_value (value);
        if (number < min || (number > 0 && (uint64_t) number > max)) {
            snprintf (err, errlen, "%s: %lld is out of range: write an integer from %lld to %llu", where,
                      (long long) number, (long long) min, (unsigned long long) max);
            return -1;
        }
        *out = number;
        return 0;
    }
    const char *text = json_string_value (value);
    if (text && max > INT32_MAX && isdigit ((unsigned char) *text)) {
        char *end = NULL;
        errno = 0;
        unsigned long long number = strtoull (text, &end, 10);
        if (!*end && errno == 0 && number <= max && (is_unsigned || number <= INT64_MAX)) {
            *out = (int64_t) number;
            return 0;
        }
    }
    snprintf (err, errlen, "%s: expected an integer from %lld to %llu", where, (long long) min,
              (unsigned long long) max);
    return -1;
}

static int
s_read_value (const ProtobufCFieldDescriptor *field, const json_t *value, void *slot,
              const char *where, char *err, size_t errlen)
{
    int64_t number = 0;
    switch (field->type) {
        case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
            if (s_read_integer (value, false, INT32_MIN, INT32_MAX, &number, where, err, errlen))
                return -1;
            *(int32_t *) slot = (int32_t) number;
            return 0;
        case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
            if (s_read_integer (value, true, 0, UINT32_MAX, &number, where, err, errlen))
                return -1;
            *(uint32_t *) slot = (uint32_t) number;
            return 0;
        case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
            if (s_read_integer (value, false, INT64_MIN, INT64_MAX, &number, where, err, errlen))
                return -1;
            *(int64_t *) slot = number;
            return 0;
        case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
            if (s_read_integer (value, true, 0, UINT64_MAX, &number, where, err, errlen))
                return -1;
            *(uint64_t *) slot = (uint64_t) number;
            return 0;
        case PROTOBUF_C_TYPE_BOOL:
            if (!json_is_boolean (value)) {
                snprintf (err, errlen, "%s: expected true or false", where);
                return -1;
            }
            *(protobuf_c_boolean *) slot = json_is_true (value);
            return 0;
        case PROTOBUF_C_TYPE_ENUM: {
            const ProtobufCEnumDescriptor *desc = (const ProtobufCEnumDescriptor *) field->descriptor;
            const char *text = json_string_value (value);
            for (unsigned v = 0; v < desc->n_values; v++) {
                char word [128];
                s_enum_word (desc, &desc->values [v], word, sizeof word);
                if ((text && (streq (text, word) || streq (text, desc->values [v].name)))
                ||  (json_is_integer (value) && json_integer_value (value) == desc->values [v].value)) {
                    *(int *) slot = desc->values [v].value;
                    return 0;
                }
            }
            //  What to write: the words, as ep_message_json prints them.
            size_t used = (size_t) snprintf (err, errlen, "%s: expected one of", where);
            for (unsigned v = 0; v < desc->n_values && used < errlen; v++) {
                char word [128];
                s_enum_word (desc, &desc->values [v], word, sizeof word);
                used += (size_t) snprintf (err + used, errlen - used, "%s %s", v? ",": "", word);
            }
            return -1;
        }
        case PROTOBUF_C_TYPE_STRING:
            if (!json_is_string (value)) {
                snprintf (err, errlen, "%s: expected a string", where);
                return -1;
            }
            *(char **) slot = strdup (json_string_value (value));
            return 0;
        case PROTOBUF_C_TYPE_MESSAGE: {
            const ProtobufCMessageDescriptor *desc = (const ProtobufCMessageDescriptor *) field->descriptor;
            if (!json_is_object (value)) {
                snprintf (err, errlen, "%s: expected an object (a %s)", where, desc->short_name);
                return -1;
            }
            ProtobufCMessage *sub = (ProtobufCMessage *) malloc (desc->sizeof_message);
            protobuf_c_message_init (desc, sub);
            *(ProtobufCMessage **) slot = sub;
            return ep_message_from_json (sub, value, where, err, errlen);
        }
        default:
            snprintf (err, errlen, "%s: this field's type cannot be read from JSON", where);
            return -1;
    }
}

int
ep_message_from_json (ProtobufCMessage *msg, const json_t *object, const char *path,
                      char *err, size_t errlen)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    if (!json_is_object (object)) {
        snprintf (err, errlen, "%s: expected an object (a %s)", path && *path? path: "(top)", desc->short_name);
        return -1;
    }
    const char *key;
    json_t *value;
    json_object_foreach ((json_t *) object, key, value) {
        char where [256];
        snprintf (where, sizeof where, "%s%s%s", path && *path? path: "", path && *path? ".": "", key);
        const ProtobufCFieldDescriptor *field = protobuf_c_message_descriptor_get_field_by_name (desc, key);
        if (!field) {
            size_t used = (size_t) snprintf (err, errlen, "%s: no such field in a %s; it has", where,
                                             desc->short_name);
            for (unsigned i = 0; i < desc->n_fields && used < errlen; i++)
                used += (size_t) snprintf (err + used, errlen - used, "%s %s", i? ",": "", desc->fields [i].name);
            return -1;
        }
        char *base = (char *) msg;
        void *member = base + field->offset;
        if (field->label == PROTOBUF_C_LABEL_REPEATED) {
            if (!json_is_array (value)) {
                snprintf (err, errlen, "%s: expected an array", where);
                return -1;
            }
            size_t *count = (size_t *) (base + field->quantifier_offset);
            size_t size = s_element_size (field);
            char *items = (char *) calloc (json_array_size (value) + 1, size);
            *(char **) member = items;
            //  The count grows with each element read, so a failure leaves
            //  a message free_unpacked can free.
            for (size_t j = 0; j < json_array_size (value); j++) {
                char item_where [300];
                snprintf (item_where, sizeof item_where, "%s[%zu]", where, j);
                if (s_read_value (field, json_array_get (value, j), items + j * size, item_where, err, errlen)) {
                    //  A message's element is allocated before it is read.
                    *count = j + (field->type == PROTOBUF_C_TYPE_MESSAGE && ((void **) items) [j]);
                    return -1;
                }
                *count = j + 1;
            }
            continue;
        }
        if (field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t *which = (uint32_t *) (base + field->quantifier_offset);
            if (*which) {
                //  The oneof's members share memory: one only.
                const ProtobufCFieldDescriptor *other = protobuf_c_message_descriptor_get_field (desc, *which);
                snprintf (err, errlen, "%s: give only one of %s and %s", where, other? other->name: "?", key);
                return -1;
            }
            *which = field->id;
        }
        else
        if (field->quantifier_offset && field->type != PROTOBUF_C_TYPE_STRING
        &&  field->type != PROTOBUF_C_TYPE_MESSAGE)
            *(protobuf_c_boolean *) (base + field->quantifier_offset) = true;
        if (s_read_value (field, value, member, where, err, errlen))
            return -1;
    }
    return 0;
}
