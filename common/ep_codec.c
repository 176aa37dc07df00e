/*  ep_codec.c: capped protobuf packing and unpacking. */
#include "ep_codec.h"

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
    if (size > cap) {
        snprintf (err, errlen, "%s from %s: %zu bytes exceeds the cap of %zu bytes; dropped",
                  desc->name, sender? sender: "?", size, cap);
        return NULL;
    }
    ProtobufCMessage *msg = protobuf_c_message_unpack (desc, NULL, size, (const uint8_t *) data);
    if (!msg)
        snprintf (err, errlen, "%s from %s: %zu bytes are not a valid %s (truncated or malformed); dropped",
                  desc->name, sender? sender: "?", size, desc->name);
    return msg;
}

ProtobufCMessage *
ep_codec_unpack_frame (const ProtobufCMessageDescriptor *desc, zframe_t *frame,
                       size_t cap, const char *sender, char *err, size_t errlen)
{
    return ep_codec_unpack (desc, zframe_data (frame), zframe_size (frame),
                            cap, sender, err, errlen);
}
