/*  ep_codec.c: capped protobuf packing and unpacking. */
#include "ep_codec.h"
#include <stdatomic.h>

zframe_t *
ep_codec_pack (const ProtobufCMessage *msg, size_t cap, char *err, size_t errlen)
{
    size_t size = protobuf_c_message_get_packed_size (msg);
    if (size > cap) {
        snprintf (err, errlen, "%s: %zu bytes exceeds the cap of %zu bytes; not sent",
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
static bool
s_varint32 (const uint8_t **p, const uint8_t *end, uint32_t *value)
{
    uint32_t result = 0;
    for (int i = 0; i < 5 && *p < end; i++) {
        uint8_t byte = *(*p)++;
        if (i == 4 && (byte & 0xf0))
            return false;
        result |= (uint32_t) (byte & 0x7f) << (7 * i);
        if (!(byte & 0x80)) {
            *value = result;
            return true;
        }
    }
    return false;
}

//  True if every field of desc is a singular sub-message (an envelope, as
//  Event is: a meta and a oneof of bodies). The last envelope found is
//  remembered, so a stream of events pays one compare, not a field scan.
static bool
s_is_envelope (const ProtobufCMessageDescriptor *desc)
{
    static _Atomic (const ProtobufCMessageDescriptor *) last_envelope;
    if (atomic_load_explicit (&last_envelope, memory_order_relaxed) == desc)
        return true;
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *field = &desc->fields [i];
        if (field->type != PROTOBUF_C_TYPE_MESSAGE
        ||  field->label == PROTOBUF_C_LABEL_REQUIRED || field->label == PROTOBUF_C_LABEL_REPEATED)
            return false;
    }
    atomic_store_explicit (&last_envelope, desc, memory_order_relaxed);
    return true;
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
            *slot = protobuf_c_message_unpack ((const ProtobufCMessageDescriptor *) field->descriptor,
                                               allocator, len, p);
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
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    size_t sizes [ENVELOPE_FIELDS_MAX];
    size_t total = 0;
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *field = &desc->fields [i];
        const ProtobufCMessage *sub = NULL;
        if (field->id == raw_field)
            sizes [i] = raw_len;
        else
        if ((sub = s_envelope_field (msg, field)))
            sizes [i] = protobuf_c_message_get_packed_size (sub);
        else
            continue;
        total += s_varint_size ((uint64_t) field->id << 3) + s_varint_size (sizes [i]) + sizes [i];
    }
    if (total > cap)
        return -1;
    EP_ASSERT (zmq_msg_init_size (out, total) == 0);
    uint8_t *start = (uint8_t *) zmq_msg_data (out), *p = start;
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *field = &desc->fields [i];
        const ProtobufCMessage *sub = field->id == raw_field? NULL: s_envelope_field (msg, field);
        if (field->id != raw_field && !sub)
            continue;
        p = ep_codec_put_varint (p, ((uint64_t) field->id << 3) | PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED);
        p = ep_codec_put_varint (p, sizes [i]);
        if (sub)
            EP_ASSERT (protobuf_c_message_pack (sub, p) == sizes [i]);
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
    size_t size = protobuf_c_message_get_packed_size (msg);
    if (size > cap)
        return -1;
    EP_ASSERT (zmq_msg_init_size (out, size) == 0);
    EP_ASSERT (protobuf_c_message_pack (msg, (uint8_t *) zmq_msg_data (out)) == size);
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
        snprintf (err, errlen, "%s from %s: %zu bytes exceeds the cap of %zu bytes; dropped",
                  desc->name, sender? sender: "?", size, cap);
        return NULL;
    }
    ProtobufCMessage *msg = NULL;
    if (s_is_envelope (desc))
        msg = s_unpack_envelope (desc, allocator, (const uint8_t *) data, size);
    if (!msg)
        msg = protobuf_c_message_unpack (desc, allocator, size, (const uint8_t *) data);
    if (!msg)
        snprintf (err, errlen, "%s from %s: %zu bytes are not a valid %s (truncated or malformed); dropped",
                  desc->name, sender? sender: "?", size, desc->name);
    return msg;
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
