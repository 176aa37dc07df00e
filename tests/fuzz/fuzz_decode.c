/*  fuzz_decode.c: every decoder that reads untrusted bytes, fed the same
    input: channel frames, each service's requests, bus events (and their
    JSON rendering), the generic request and reply headers. Nothing may
    crash, leak or read out of bounds (ASan), whatever the bytes; events
    decode as protobuf-c alone decodes them. */
#include "ep_codec.h"
#include "ep_event_json.h"
#include "channel.pb-c.h"
#include "events.pb-c.h"
#include "model.pb-c.h"
#include "sessions.pb-c.h"
#include "terminators.pb-c.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

//  Aborts unless ours and protobuf-c's decodings of the same bytes agree:
//  both failed, or both pack back to the same bytes.
static void
s_same (const ProtobufCMessage *ours, const ProtobufCMessage *reference)
{
    if ((ours == NULL) != (reference == NULL))
        abort ();
    if (!ours)
        return;
    size_t a = protobuf_c_message_get_packed_size (ours);
    if (a != protobuf_c_message_get_packed_size (reference))
        abort ();
    uint8_t *pa = (uint8_t *) malloc (a + 1), *pb = (uint8_t *) malloc (a + 1);
    protobuf_c_message_pack (ours, pa);
    protobuf_c_message_pack (reference, pb);
    if (memcmp (pa, pb, a) != 0)
        abort ();
    free (pa);
    free (pb);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    static const ProtobufCMessageDescriptor *types [] = {
        &ep__frame__descriptor, &ep__model_request__descriptor,
        &ep__terminator_request__descriptor, &ep__session_request__descriptor,
        &ep__request_header__descriptor, &ep__reply_header__descriptor,
        &ep__model_reply__descriptor, &ep__watchdog_request__descriptor,
        &ep__terminator_reply__descriptor, &ep__session_reply__descriptor,
        &ep__stream_meta__descriptor, &ep__status__descriptor,
        &ep__connect_event__descriptor, &ep__channel_event__descriptor,
    };
    char err [256];
    //  Flat types (only scalars and strings) take ep_codec's flat path:
    //  every type must decode exactly as protobuf-c alone decodes it.
    for (size_t i = 0; i < EP_COUNT (types); i++) {
        ProtobufCMessage *msg = ep_codec_unpack (types [i], data, size, 65536, "fuzz", err, sizeof err);
        ProtobufCMessage *reference = protobuf_c_message_unpack (types [i], NULL, size, data);
        s_same (msg, reference);
        if (reference)
            protobuf_c_message_free_unpacked (reference, NULL);
        if (msg)
            protobuf_c_message_free_unpacked (msg, NULL);
    }
    Ep__Event *event = (Ep__Event *) ep_codec_unpack (&ep__event__descriptor, data, size,
                                                      65536, "fuzz", err, sizeof err);
    //  Events take ep_codec's envelope fast path: the same holds.
    ProtobufCMessage *reference = protobuf_c_message_unpack (&ep__event__descriptor, NULL, size, data);
    s_same (event? &event->base: NULL, reference);
    if (reference)
        protobuf_c_message_free_unpacked (reference, NULL);
    if (event) {
        json_t *json = ep_event_json ("fuzz.event", event);
        char *text = json_dumps (json, 0);
        free (text);
        json_decref (json);
        ep__event__free_unpacked (event, NULL);
    }
    return 0;
}
