/*  ep_codec.h: protobuf messages <-> ZeroMQ frames, with size caps.

    Every unpack is preceded by a length check against a cap, and every pack
    is refused above the cap, so an oversized or hostile message costs a
    length comparison, never an allocation. Failures come back as a message
    that names the type, the length and the sender; nothing aborts.
*/
#ifndef EP_CODEC_H_INCLUDED
#define EP_CODEC_H_INCLUDED

#include "ep_prelude.h"
#include <protobuf-c/protobuf-c.h>

//  Default cap on one protobuf message on the ZeroMQ side (4 MiB).
#define EP_CODEC_DEFAULT_CAP (4u * 1024u * 1024u)

//  Packs msg into a new frame. Returns NULL if its packed size exceeds cap,
//  with the reason in err.
zframe_t *
    ep_codec_pack (const ProtobufCMessage *msg, size_t cap, char *err, size_t errlen);

//  Packs msg into *out (initialised here) exactly as protobuf_c_message_pack
//  would. Returns -1 with *out untouched if its packed size exceeds cap.
//  Envelopes (every field a singular sub-message, as Event) take a fast
//  path that sizes each sub-message once: protobuf-c sizes it twice, once
//  for the total and again for its length prefix.
int
    ep_codec_pack_msg (const ProtobufCMessage *msg, size_t cap, zmq_msg_t *out);

//  ep_codec_pack_msg for an envelope whose field number field is given
//  already packed (raw_len bytes at raw; what msg holds there is ignored),
//  as a publisher that keeps its StreamMeta's bytes does. Returns -1 over
//  cap, -2 (*out untouched) if msg is no envelope, has unknown fields or no
//  such field: pack it whole instead.
int
    ep_codec_pack_envelope (const ProtobufCMessage *msg, unsigned field, const uint8_t *raw,
                            size_t raw_len, size_t cap, zmq_msg_t *out);

//  Writes value as a protobuf varint (1..10 bytes) at out; returns the byte
//  after it.
uint8_t *
    ep_codec_put_varint (uint8_t *out, uint64_t value);

//  Unpacks size bytes as a desc message after checking size <= cap. sender
//  names the peer for the error text. Returns NULL with the reason in err on
//  an oversized, truncated or malformed input. Free the result with
//  protobuf_c_message_free_unpacked (msg, NULL).
ProtobufCMessage *
    ep_codec_unpack (const ProtobufCMessageDescriptor *desc,
                     const void *data, size_t size, size_t cap,
                     const char *sender, char *err, size_t errlen);

//  ep_codec_unpack drawing memory from allocator (NULL: the system's). Free
//  the result with protobuf_c_message_free_unpacked (msg, allocator), or,
//  from an arena (ep_arena.h), not at all: the arena's reset frees it.
ProtobufCMessage *
    ep_codec_unpack_in (const ProtobufCMessageDescriptor *desc,
                        const void *data, size_t size, size_t cap, ProtobufCAllocator *allocator,
                        const char *sender, char *err, size_t errlen);

//  A deep copy of msg on the heap (packed and unpacked again), to keep a
//  message that lives in an arena. Free it with
//  protobuf_c_message_free_unpacked (copy, NULL).
ProtobufCMessage *
    ep_codec_copy (const ProtobufCMessage *msg);

//  Packs msg into a new buffer (malloc'd, one byte longer than *size, so
//  that an empty message is no NULL), as a store keeps a value. Caller
//  frees.
uint8_t *
    ep_codec_pack_bytes (const ProtobufCMessage *msg, size_t *size);

//  ep_codec_unpack on a frame.
ProtobufCMessage *
    ep_codec_unpack_frame (const ProtobufCMessageDescriptor *desc, zframe_t *frame,
                           size_t cap, const char *sender, char *err, size_t errlen);

#endif
