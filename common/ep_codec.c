/*  ep_codec.c: capped protobuf packing and unpacking. */
#include "ep_codec.h"
#include <stdatomic.h>

zframe_t *
ep_codec_pack (const ProtobufCMessage *msg, size_t cap, char *err, size_t errlen)
{
    size_t size = protobuf_c_message_get_packed_size (msg);
    if (size > cap) {
        ep_errorf (err, errlen, "%s: %zu bytes exceeds the cap of %zu bytes; not sent",
                   msg->descriptor->name, size, cap);
        return NULL;
    }
    zframe_t *frame = zframe_new (NULL, size);
    EP_ASSERT (frame);
    size_t packed = protobuf_c_message_pack (msg, zframe_data (frame));
    EP_ASSERT (packed == size);
    return frame;
}

ProtobufCMessage *
ep_codec_unpack (const ProtobufCMessageDescriptor *desc,
                 const void *data, size_t size, size_t cap,
                 const char *sender, char *err, size_t errlen)
{
    return ep_codec_unpack_in (desc, data, size, cap, NULL, sender, err, errlen);
}

//  Reads a varint of at most 5 bytes (a tag or a length) from *p, below end.
//  Through a local pointer: bytes read through *p could alias p itself, and
//  the compiler would reload it for every byte.
static inline bool
s_varint32 (const uint8_t **p, const uint8_t *end, uint32_t *value)
{
    const uint8_t *q = *p;
    if (q < end && *q < 0x80) {         //  tags and short lengths: one byte
        *value = *q;
        *p = q + 1;
        return true;
    }
    uint32_t result = 0;
    for (int i = 0; i < 5 && q < end; i++) {
        uint8_t byte = *q++;
        if (i == 4 && (byte & 0xf0))
            return false;
        result |= (uint32_t) (byte & 0x7f) << (7 * i);
        if (!(byte & 0x80)) {
            *value = result;
            *p = q;
            return true;
        }
    }
    return false;
}

//  Reads a varint of at most 10 bytes from *p, below end, as protobuf-c
//  scans one (the tenth byte gives bit 63 only).
static inline bool
s_varint64 (const uint8_t **p, const uint8_t *end, uint64_t *value)
{
    const uint8_t *q = *p;
    uint64_t result = 0;
    for (int i = 0; i < 10 && q < end; i++) {
        uint8_t byte = *q++;
        result |= (uint64_t) (byte & 0x7f) << (7 * i);
        if (!(byte & 0x80)) {
            *value = result;
            *p = q;
            return true;
        }
    }
    return false;
}

//  True if every field of desc is a proto2 optional varint integer, bool,
//  enum or string (as StreamMeta and most event bodies are; the scalar
//  types our protos use but double): what the flat paths handle.
static bool
s_compute_flat (const ProtobufCMessageDescriptor *desc)
{
    if (desc->n_fields > 64)
        return false;
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *field = &desc->fields [i];
        if (field->label != PROTOBUF_C_LABEL_OPTIONAL)
            return false;
        switch (field->type) {
            case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_ENUM:
            case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_BOOL:
            case PROTOBUF_C_TYPE_STRING:
                break;
            default:
                return false;
        }
    }
    return true;
}

//  True if every field of desc is a singular sub-message (an envelope, as
//  Event is: a meta and a oneof of bodies).
static bool
s_compute_envelope (const ProtobufCMessageDescriptor *desc)
{
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *field = &desc->fields [i];
        if (field->type != PROTOBUF_C_TYPE_MESSAGE
        ||  field->label == PROTOBUF_C_LABEL_REQUIRED || field->label == PROTOBUF_C_LABEL_REPEATED)
            return false;
    }
    return true;
}

//  What the fast paths need to know of a descriptor, as bits.
#define S_FLAT      1           //  s_compute_flat
#define S_ENVELOPE  2           //  s_compute_envelope

//  s_compute_flat and s_compute_envelope, remembered: a direct-mapped
//  cache of descriptors with both answers in the low bits (descriptors are
//  aligned), so a stream of events pays a load and a compare, not a field
//  scan.
_Static_assert (_Alignof (ProtobufCMessageDescriptor) >= 4, "the cache keeps two bits in the pointer");

static unsigned
s_kind (const ProtobufCMessageDescriptor *desc)
{
    static _Atomic (uintptr_t) cache [64];
    //  Descriptors sit next to each other: a multiplicative hash spreads them.
    _Atomic (uintptr_t) *slot = &cache [((uint64_t) (uintptr_t) desc * 0x9e3779b97f4a7c15ull) >> 58];
    uintptr_t known = atomic_load_explicit (slot, memory_order_relaxed);
    if ((known & ~(uintptr_t) 3) == (uintptr_t) desc)
        return (unsigned) (known & 3);
    unsigned kind = (s_compute_flat (desc)? S_FLAT: 0) | (s_compute_envelope (desc)? S_ENVELOPE: 0);
    atomic_store_explicit (slot, (uintptr_t) desc | kind, memory_order_relaxed);
    return kind;
}

static bool
s_is_flat (const ProtobufCMessageDescriptor *desc)
{
    return s_kind (desc) & S_FLAT;
}

static bool
s_is_envelope (const ProtobufCMessageDescriptor *desc)
{
    return s_kind (desc) & S_ENVELOPE;
}

static void *
s_alloc (ProtobufCAllocator *allocator, size_t size)
{
    return allocator? allocator->alloc (allocator->allocator_data, size): malloc (size);
}

//  Decodes one value of field (wire type wire) at *p into msg, as
//  protobuf-c would; false if this is not the plain case (the caller falls
//  back to protobuf-c).
static bool
s_flat_value (ProtobufCMessage *msg, const ProtobufCFieldDescriptor *field, uint32_t wire,
              const uint8_t **p, const uint8_t *end, ProtobufCAllocator *allocator)
{
    void *member = (char *) msg + field->offset;
    const uint8_t *start = *p;
    if (field->type == PROTOBUF_C_TYPE_STRING) {
        uint32_t len;
        if (wire != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED || !s_varint32 (p, end, &len)
        ||  len > (size_t) (end - *p))
            return false;
        char *text = (char *) s_alloc (allocator, (size_t) len + 1);
        if (!text)
            return false;
        memcpy (text, *p, len);
        text [len] = 0;
        *(char **) member = text;
        *p += len;
        return true;
    }
    uint64_t v;
    if (wire != PROTOBUF_C_WIRE_TYPE_VARINT || !s_varint64 (p, end, &v))
        return false;
    switch (field->type) {
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_ENUM:
            *(uint32_t *) member = (uint32_t) v;        //  protobuf-c keeps the low 32 bits
            return true;
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_UINT64:
            *(uint64_t *) member = v;
            return true;
        case PROTOBUF_C_TYPE_BOOL:
            //  protobuf-c reads any byte with a bit set as true, even bits a
            //  ten-byte varint cannot hold: those go to protobuf-c.
            if (*p - start == 10)
                return false;
            *(protobuf_c_boolean *) member = v != 0;
            return true;
        default:
            return false;               //  s_is_flat admits no other type
    }
}

//  Decodes a flat message (s_is_flat) in one pass: protobuf-c scans the
//  input twice, looks each field up by binary search and keeps a scan
//  record per field, which for small messages costs more than the values.
//  Only the plain case: each field at most once, at most one member of a
//  oneof, wire types as declared, no unknown field. Anything else returns
//  NULL and the caller runs protobuf-c, so the result is always the one
//  protobuf-c would give.
static ProtobufCMessage *
s_unpack_flat (const ProtobufCMessageDescriptor *desc, ProtobufCAllocator *allocator,
               const uint8_t *data, size_t size)
{
    ProtobufCMessage *msg = (ProtobufCMessage *) s_alloc (allocator, desc->sizeof_message);
    if (!msg)
        return NULL;
    protobuf_c_message_init (desc, msg);
    const uint8_t *p = data, *end = data + size;
    uint64_t seen = 0;              //  by field index
    unsigned next = 0;              //  fields mostly come in order: look from here first
    bool plain = true;
    while (plain && p < end) {
        uint32_t key;
        plain = s_varint32 (&p, end, &key);
        if (!plain)
            break;
        uint32_t id = key >> 3;
        //  Fields come in order, some absent: step forward to id.
        while (next < desc->n_fields && desc->fields [next].id < id)
            next++;
        const ProtobufCFieldDescriptor *field = next < desc->n_fields && desc->fields [next].id == id
            ? &desc->fields [next]: protobuf_c_message_descriptor_get_field (desc, id);
        unsigned index = field? (unsigned) (field - desc->fields): 0;
        plain = field && !(seen & (1ull << index));
        if (plain && (field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
            plain = *(uint32_t *) ((char *) msg + field->quantifier_offset) == 0;
        if (plain)
            plain = s_flat_value (msg, field, key & 7, &p, end, allocator);
        if (plain) {
            seen |= 1ull << index;
            next = index + 1;
            if (field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
                *(uint32_t *) ((char *) msg + field->quantifier_offset) = field->id;
            else
            if (field->quantifier_offset)
                *(protobuf_c_boolean *) ((char *) msg + field->quantifier_offset) = true;
        }
    }
    if (plain)
        return msg;
    protobuf_c_message_free_unpacked (msg, allocator);
    return NULL;
}

//  protobuf_c_message_unpack, after the flat path for a flat desc.
static ProtobufCMessage *
s_unpack (const ProtobufCMessageDescriptor *desc, ProtobufCAllocator *allocator,
          const uint8_t *data, size_t size)
{
    ProtobufCMessage *msg = s_is_flat (desc)? s_unpack_flat (desc, allocator, data, size): NULL;
    return msg? msg: protobuf_c_message_unpack (desc, allocator, size, data);
}

//  Unpacks an envelope's own fields here and only its sub-messages with
//  protobuf-c: its generic machinery costs about as much per message as the
//  fields themselves, and the envelope's share of it is saved. Only the
//  plain case is taken: each field once, at most one member of a oneof, no
//  unknown field, valid varints and lengths, sub-messages protobuf-c
//  accepts. Anything else returns NULL and the caller runs protobuf-c on the
//  whole input, so the result is always the one protobuf-c would give.
static ProtobufCMessage *
s_unpack_envelope (const ProtobufCMessageDescriptor *desc, ProtobufCAllocator *allocator,
                   const uint8_t *data, size_t size)
{
    ProtobufCMessage *msg = (ProtobufCMessage *) (allocator
        ? allocator->alloc (allocator->allocator_data, desc->sizeof_message)
        : malloc (desc->sizeof_message));
    if (!msg)
        return NULL;
    protobuf_c_message_init (desc, msg);
    const uint8_t *p = data, *end = data + size;
    bool plain = true;
    while (plain && p < end) {
        uint32_t key, len;
        plain = s_varint32 (&p, end, &key) && (key & 7) == PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED
             && s_varint32 (&p, end, &len) && len <= (size_t) (end - p);
        //  An unknown field: protobuf-c keeps it.
        const ProtobufCFieldDescriptor *field = plain
            ? protobuf_c_message_descriptor_get_field (desc, key >> 3): NULL;
        //  Oneof members share one slot: set means seen, or a sibling seen
        //  (protobuf-c merges or replaces).
        ProtobufCMessage **slot = field? (ProtobufCMessage **) ((char *) msg + field->offset): NULL;
        plain = slot && !*slot;
        if (plain) {
            if (field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
                *(uint32_t *) ((char *) msg + field->quantifier_offset) = field->id;
            *slot = s_unpack ((const ProtobufCMessageDescriptor *) field->descriptor,
                              allocator, p, len);
            plain = *slot != NULL;
            p += len;
        }
    }
    if (plain)
        return msg;
    protobuf_c_message_free_unpacked (msg, allocator);
    return NULL;
}

//  Envelopes with more fields than this take protobuf-c's path.
#define ENVELOPE_FIELDS_MAX 32

static size_t
s_varint_size (uint64_t value)
{
    size_t size = 1;
    while (value >= 0x80) {
        value >>= 7;
        size++;
    }
    return size;
}

uint8_t *
ep_codec_put_varint (uint8_t *out, uint64_t value)
{
    while (value >= 0x80) {
        *out++ = (uint8_t) (value | 0x80);
        value >>= 7;
    }
    *out++ = (uint8_t) value;
    return out;
}

//  ---------------------------------------------------------------------
//  Flat packing: what s_is_flat admits, packed as protobuf-c packs it
//  without its per-field dispatch (and without the second sizing pass its
//  pack makes for a sub-message's length prefix).

//  The value of field in msg as protobuf-c would write it, or false if
//  protobuf-c writes nothing for it (proto2: has_ unset, a NULL or default
//  string, another member of its oneof). *text is set for strings.
static bool
s_flat_field (const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *field,
              uint64_t *value, const char **text)
{
    const char *base = (const char *) msg;
    const void *member = base + field->offset;
    if (field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        if (*(const uint32_t *) (base + field->quantifier_offset) != field->id)
            return false;
    }
    else
    if (field->type != PROTOBUF_C_TYPE_STRING
    &&  !*(const protobuf_c_boolean *) (base + field->quantifier_offset))
        return false;
    switch (field->type) {
        case PROTOBUF_C_TYPE_STRING:
            *text = *(const char *const *) member;
            return *text && *text != field->default_value;
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_ENUM:
            //  Negative: ten bytes, sign-extended, as protobuf-c writes it.
            *value = (uint64_t) (int64_t) *(const int32_t *) member;
            return true;
        case PROTOBUF_C_TYPE_UINT32:
            *value = *(const uint32_t *) member;
            return true;
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_UINT64:
            *value = *(const uint64_t *) member;
            return true;
        case PROTOBUF_C_TYPE_BOOL:
            *value = *(const protobuf_c_boolean *) member? 1: 0;
            return true;
        default:
            EP_ASSERT (false);          //  s_is_flat admits no other type
            return false;
    }
}

//  True if msg packs on the flat path: a flat type, no unknown fields.
static bool
s_packs_flat (const ProtobufCMessage *msg)
{
    return msg->n_unknown_fields == 0 && s_is_flat (msg->descriptor);
}

//  The next field of msg from *i on that protobuf-c would write, with its
//  value (s_flat_field); false after the last.
static inline bool
s_flat_next (const ProtobufCMessage *msg, unsigned *i, const ProtobufCFieldDescriptor **field,
             uint64_t *value, const char **text)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    while (*i < desc->n_fields) {
        *field = &desc->fields [(*i)++];
        if (s_flat_field (msg, *field, value, text))
            return true;
    }
    return false;
}

static size_t
s_flat_size (const ProtobufCMessage *msg)
{
    size_t size = 0;
    const ProtobufCFieldDescriptor *field;
    uint64_t value = 0;
    const char *text = NULL;
    for (unsigned i = 0; s_flat_next (msg, &i, &field, &value, &text); ) {
        size += s_varint_size ((uint64_t) field->id << 3);
        if (field->type == PROTOBUF_C_TYPE_STRING) {
            size_t len = strlen (text);
            size += s_varint_size (len) + len;
        }
        else
            size += s_varint_size (value);
    }
    return size;
}

static uint8_t *
s_flat_pack (const ProtobufCMessage *msg, uint8_t *out)
{
    const ProtobufCFieldDescriptor *field;
    uint64_t value = 0;
    const char *text = NULL;
    for (unsigned i = 0; s_flat_next (msg, &i, &field, &value, &text); ) {
        if (field->type == PROTOBUF_C_TYPE_STRING) {
            size_t len = strlen (text);
            out = ep_codec_put_varint (out, (uint64_t) field->id << 3 | PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED);
            out = ep_codec_put_varint (out, len);
            memcpy (out, text, len);
            out += len;
        }
        else {
            out = ep_codec_put_varint (out, (uint64_t) field->id << 3 | PROTOBUF_C_WIRE_TYPE_VARINT);
            out = ep_codec_put_varint (out, value);
        }
    }
    return out;
}

//  protobuf_c_message_get_packed_size and _pack, flat messages on the
//  flat path.
static size_t
s_packed_size (const ProtobufCMessage *msg)
{
    return s_packs_flat (msg)? s_flat_size (msg): protobuf_c_message_get_packed_size (msg);
}

static size_t
s_pack (const ProtobufCMessage *msg, uint8_t *out)
{
    if (s_packs_flat (msg))
        return (size_t) (s_flat_pack (msg, out) - out);
    return protobuf_c_message_pack (msg, out);
}

//  The sub-message in field of envelope msg, NULL where protobuf-c would
//  pack nothing: an unset oneof member or a NULL pointer.
static const ProtobufCMessage *
s_envelope_field (const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *field)
{
    const char *base = (const char *) msg;
    if ((field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
    &&  *(const uint32_t *) (base + field->quantifier_offset) != field->id)
        return NULL;
    return *(const ProtobufCMessage *const *) (base + field->offset);
}

//  Packs envelope msg, field raw_field taken as the packed bytes raw (0:
//  none), into *out. Fields go in the descriptor's order (by number), as
//  protobuf-c writes them: tag, length, the sub-message.
static int
s_pack_envelope (const ProtobufCMessage *msg, unsigned raw_field, const uint8_t *raw,
                 size_t raw_len, size_t cap, zmq_msg_t *out)
{
    //  The fields present, once: an envelope's oneof has many members and
    //  only one is set.
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    const ProtobufCFieldDescriptor *fields [ENVELOPE_FIELDS_MAX];
    const ProtobufCMessage *subs [ENVELOPE_FIELDS_MAX];
    size_t sizes [ENVELOPE_FIELDS_MAX];
    size_t count = 0, total = 0;
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *field = &desc->fields [i];
        const ProtobufCMessage *sub = field->id == raw_field? NULL: s_envelope_field (msg, field);
        if (field->id != raw_field && !sub)
            continue;
        fields [count] = field;
        subs [count] = sub;
        sizes [count] = sub? s_packed_size (sub): raw_len;
        total += s_varint_size ((uint64_t) field->id << 3) + s_varint_size (sizes [count]) + sizes [count];
        count++;
    }
    if (total > cap)
        return -1;
    EP_ASSERT (zmq_msg_init_size (out, total) == 0);
    uint8_t *start = (uint8_t *) zmq_msg_data (out), *p = start;
    for (size_t i = 0; i < count; i++) {
        p = ep_codec_put_varint (p, ((uint64_t) fields [i]->id << 3) | PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED);
        p = ep_codec_put_varint (p, sizes [i]);
        if (subs [i])
            EP_ASSERT (s_pack (subs [i], p) == sizes [i]);
        else
            memcpy (p, raw, raw_len);
        p += sizes [i];
    }
    EP_ASSERT ((size_t) (p - start) == total);
    return 0;
}

//  True if msg can take the envelope path.
static bool
s_packs_as_envelope (const ProtobufCMessage *msg)
{
    return s_is_envelope (msg->descriptor) && msg->descriptor->n_fields <= ENVELOPE_FIELDS_MAX
        && msg->n_unknown_fields == 0;
}

int
ep_codec_pack_msg (const ProtobufCMessage *msg, size_t cap, zmq_msg_t *out)
{
    if (s_packs_as_envelope (msg))
        return s_pack_envelope (msg, 0, NULL, 0, cap, out);
    size_t size = s_packed_size (msg);
    if (size > cap)
        return -1;
    EP_ASSERT (zmq_msg_init_size (out, size) == 0);
    EP_ASSERT (s_pack (msg, (uint8_t *) zmq_msg_data (out)) == size);
    return 0;
}

int
ep_codec_pack_envelope (const ProtobufCMessage *msg, unsigned field, const uint8_t *raw,
                        size_t raw_len, size_t cap, zmq_msg_t *out)
{
    EP_ASSERT (field > 0);
    if (!s_packs_as_envelope (msg)
    ||  !protobuf_c_message_descriptor_get_field (msg->descriptor, field))
        return -2;
    return s_pack_envelope (msg, field, raw, raw_len, cap, out);
}

ProtobufCMessage *
ep_codec_unpack_in (const ProtobufCMessageDescriptor *desc,
                    const void *data, size_t size, size_t cap, ProtobufCAllocator *allocator,
                    const char *sender, char *err, size_t errlen)
{
    if (size > cap) {
        ep_errorf (err, errlen, "%s from %s: %zu bytes exceeds the cap of %zu bytes; dropped",
                   desc->name, sender? sender: "?", size, cap);
        return NULL;
    }
    ProtobufCMessage *msg = NULL;
    if (s_is_envelope (desc))
        msg = s_unpack_envelope (desc, allocator, (const uint8_t *) data, size);
    if (!msg)
        msg = s_unpack (desc, allocator, (const uint8_t *) data, size);
    if (!msg)
        ep_errorf (err, errlen, "%s from %s: %zu bytes are not a valid %s (truncated or malformed); dropped",
                   desc->name, sender? sender: "?", size, desc->name);
    return msg;
}

uint8_t *
ep_codec_pack_bytes (const ProtobufCMessage *msg, size_t *size)
{
    *size = protobuf_c_message_get_packed_size (msg);
    uint8_t *bytes = (uint8_t *) malloc (*size + 1);
    EP_ASSERT (bytes);
    protobuf_c_message_pack (msg, bytes);
    return bytes;
}

ProtobufCMessage *
ep_codec_copy (const ProtobufCMessage *msg)
{
    size_t size = protobuf_c_message_get_packed_size (msg);
    uint8_t stack [1024];
    uint8_t *buffer = size <= sizeof stack? stack: (uint8_t *) malloc (size);
    EP_ASSERT (buffer);
    EP_ASSERT (protobuf_c_message_pack (msg, buffer) == size);
    //  What was decoded packs back into something that decodes.
    ProtobufCMessage *copy = protobuf_c_message_unpack (msg->descriptor, NULL, size, buffer);
    EP_ASSERT (copy);
    if (buffer != stack)
        free (buffer);
    return copy;
}

ProtobufCMessage *
ep_codec_unpack_frame (const ProtobufCMessageDescriptor *desc, zframe_t *frame,
                       size_t cap, const char *sender, char *err, size_t errlen)
{
    return ep_codec_unpack (desc, zframe_data (frame), zframe_size (frame),
                            cap, sender, err, errlen);
}
