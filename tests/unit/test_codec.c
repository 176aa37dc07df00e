/*  test_codec.c: capped packing and unpacking; hostile input gives errors. */
#include <criterion/criterion.h>
#include "ep_codec.h"
#include "ep_arena.h"
#include "events.pb-c.h"
#include "model.pb-c.h"
#include <sodium.h>

static zframe_t *
s_sample (void)
{
    Ep__Router router = EP__ROUTER__INIT;
    router.id = "r1";
    router.name = "edge router one";
    router.has_enabled = true;
    router.enabled = true;
    Ep__Entity entity = EP__ENTITY__INIT;
    entity.kind_case = EP__ENTITY__KIND_ROUTER;
    entity.router = &router;
    Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
    write.has_op = true;
    write.op = EP__MODEL_WRITE__OP__CREATE;
    write.entity = &entity;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.request_id = "req-1";
    request.op_case = EP__MODEL_REQUEST__OP_WRITE;
    request.write = &write;
    char err [256];
    return ep_codec_pack (&request.base, EP_CODEC_DEFAULT_CAP, err, sizeof err);
}

Test (codec, round_trip)
{
    zframe_t *frame = s_sample ();
    cr_assert_not_null (frame);
    char err [256];
    Ep__ModelRequest *request = (Ep__ModelRequest *) ep_codec_unpack_frame (
        &ep__model_request__descriptor, frame, 1024, "test", err, sizeof err);
    cr_assert_not_null (request, "%s", err);
    cr_assert_str_eq (request->request_id, "req-1");
    cr_assert_eq (request->op_case, EP__MODEL_REQUEST__OP_WRITE);
    cr_assert_str_eq (request->write->entity->router->name, "edge router one");
    ep__model_request__free_unpacked (request, NULL);
    zframe_destroy (&frame);
}

Test (codec, pack_refused_above_cap)
{
    Ep__Status status = EP__STATUS__INIT;
    char big [2000];
    memset (big, 'x', sizeof big - 1);
    big [sizeof big - 1] = 0;
    status.message = big;
    char err [256] = "";
    zframe_t *frame = ep_codec_pack (&status.base, 1000, err, sizeof err);
    cr_assert_null (frame);
    cr_assert (strstr (err, "ep.Status"), "%s", err);
    cr_assert (strstr (err, "exceeds the cap of 1000"), "%s", err);
}

Test (codec, oversized_input_refused_before_unpack)
{
    zframe_t *frame = s_sample ();
    char err [256] = "";
    size_t size = zframe_size (frame);
    void *msg = ep_codec_unpack_frame (&ep__model_request__descriptor, frame,
                                       size - 1, "tcp://10.0.0.9:4000", err, sizeof err);
    cr_assert_null (msg);
    //  The error names type, length and sender.
    cr_assert (strstr (err, "ep.ModelRequest"), "%s", err);
    cr_assert (strstr (err, "tcp://10.0.0.9:4000"), "%s", err);
    char expect [32];
    snprintf (expect, sizeof expect, "%zu bytes", size);
    cr_assert (strstr (err, expect), "%s", err);
    zframe_destroy (&frame);
}

Test (codec, every_truncation_is_an_error_or_a_valid_prefix)
{
    //  Cutting a message anywhere must never crash; cuts inside a field are
    //  errors naming the type.
    zframe_t *frame = s_sample ();
    size_t size = zframe_size (frame);
    size_t errors = 0;
    for (size_t cut = 1; cut < size; cut++) {
        char err [256] = "";
        Ep__ModelRequest *msg = (Ep__ModelRequest *) ep_codec_unpack (
            &ep__model_request__descriptor, zframe_data (frame), cut,
            EP_CODEC_DEFAULT_CAP, "peer", err, sizeof err);
        if (msg)
            ep__model_request__free_unpacked (msg, NULL);
        else {
            errors++;
            cr_assert (strstr (err, "ep.ModelRequest") && strstr (err, "peer"), "%s", err);
        }
    }
    cr_assert_gt (errors, size / 2);
    zframe_destroy (&frame);
}

Test (codec, garbage_gives_errors_not_crashes)
{
    cr_assert (sodium_init () >= 0);
    uint8_t buf [512];
    size_t rejected = 0;
    for (int round = 0; round < 2000; round++) {
        size_t len = randombytes_uniform (sizeof buf) + 1;
        randombytes_buf (buf, len);
        char err [256];
        ProtobufCMessage *msg = ep_codec_unpack (&ep__model_request__descriptor,
                                                 buf, len, sizeof buf, "fuzz", err, sizeof err);
        if (msg)
            protobuf_c_message_free_unpacked (msg, NULL);
        else
            rejected++;
    }
    cr_assert_gt (rejected, 1000);
}

//  ep_codec_pack_msg packs envelopes on a fast path: the bytes must be
//  protobuf-c's, and a cap one byte short must refuse the message.
static void
s_packs_as_protobuf_c (const ProtobufCMessage *msg)
{
    size_t size = protobuf_c_message_get_packed_size (msg);
    uint8_t *expected = (uint8_t *) malloc (size + 1);
    cr_assert_eq (protobuf_c_message_pack (msg, expected), size);
    zmq_msg_t packed;
    cr_assert_eq (ep_codec_pack_msg (msg, size, &packed), 0);
    cr_assert_eq (zmq_msg_size (&packed), size, "%s: %zu bytes, protobuf-c %zu", msg->descriptor->name,
                  zmq_msg_size (&packed), size);
    cr_assert_eq (memcmp (zmq_msg_data (&packed), expected, size), 0, "%s: packed differently",
                  msg->descriptor->name);
    zmq_msg_close (&packed);
    if (size > 0)
        cr_assert_eq (ep_codec_pack_msg (msg, size - 1, &packed), -1);
    //  An Event's meta given already packed gives the same bytes.
    const Ep__Event *event = (const Ep__Event *) msg;
    if (msg->descriptor == &ep__event__descriptor && event->meta) {
        uint8_t meta [256];
        size_t meta_size = ep__stream_meta__pack (event->meta, meta);
        int rc = ep_codec_pack_envelope (msg, 1, meta, meta_size, size, &packed);
        cr_assert_eq (rc, msg->n_unknown_fields? -2: 0);
        if (rc == 0) {
            cr_assert_eq (zmq_msg_size (&packed), size);
            cr_assert_eq (memcmp (zmq_msg_data (&packed), expected, size), 0);
            zmq_msg_close (&packed);
        }
    }
    free (expected);
}

Test (codec, pack_msg_packs_as_protobuf_c_does)
{
    //  Not an envelope: protobuf-c's own path.
    zframe_t *frame = s_sample ();
    ProtobufCMessage *request = protobuf_c_message_unpack (&ep__model_request__descriptor, NULL,
                                                           zframe_size (frame), zframe_data (frame));
    cr_assert_not_null (request);
    s_packs_as_protobuf_c (request);
    protobuf_c_message_free_unpacked (request, NULL);
    zframe_destroy (&frame);
    //  Envelopes: with and without meta and body, a NULL body pointer.
    Ep__StreamMeta meta = EP__STREAM_META__INIT;
    meta.source_id = "model-1";
    meta.stream = "model";
    meta.has_seq = meta.has_epoch = meta.has_timestamp_ms = true;
    meta.seq = 1u << 20;
    meta.epoch = UINT64_MAX;
    meta.timestamp_ms = -5;             //  negative: ten bytes
    Ep__StrayEvent stray = EP__STRAY_EVENT__INIT;
    stray.remote_addr = "127.0.0.1:5";
    Ep__Event event = EP__EVENT__INIT;
    s_packs_as_protobuf_c (&event.base);
    event.meta = &meta;
    s_packs_as_protobuf_c (&event.base);
    event.body_case = EP__EVENT__BODY_STRAY;
    event.stray = &stray;
    s_packs_as_protobuf_c (&event.base);
    event.meta = NULL;
    s_packs_as_protobuf_c (&event.base);
    event.stray = NULL;
    s_packs_as_protobuf_c (&event.base);
}

//  ep_codec_unpack_in takes a fast path for envelopes (Event: a meta and a
//  oneof body) and falls back to protobuf-c for anything but the plain
//  case. Whatever the input, it must give what protobuf-c gives: both fail,
//  or both decode to messages that pack to the same bytes.
static void
s_same_as_protobuf_c (const uint8_t *data, size_t size, ep_arena_t *arena)
{
    ProtobufCMessage *reference = protobuf_c_message_unpack (&ep__event__descriptor, NULL, size, data);
    char err [256];
    for (int with_arena = 0; with_arena < 2; with_arena++) {
        ProtobufCAllocator *allocator = with_arena? ep_arena_allocator (arena): NULL;
        ProtobufCMessage *ours = ep_codec_unpack_in (&ep__event__descriptor, data, size, 65536,
                                                     allocator, "test", err, sizeof err);
        cr_assert_eq (ours == NULL, reference == NULL, "%zu bytes: protobuf-c %s, ours %s", size,
                      reference? "decodes": "fails", ours? "decodes": "fails");
        if (ours) {
            size_t a = protobuf_c_message_get_packed_size (ours);
            size_t b = protobuf_c_message_get_packed_size (reference);
            cr_assert_eq (a, b);
            uint8_t *pa = (uint8_t *) malloc (a + 1), *pb = (uint8_t *) malloc (b + 1);
            protobuf_c_message_pack (ours, pa);
            protobuf_c_message_pack (reference, pb);
            cr_assert_eq (memcmp (pa, pb, a), 0, "%zu bytes: decoded differently", size);
            cr_assert_eq (((Ep__Event *) ours)->body_case, ((Ep__Event *) reference)->body_case);
            free (pa);
            free (pb);
            if (!with_arena)
                protobuf_c_message_free_unpacked (ours, NULL);
        }
        ep_arena_reset (arena);
    }
    if (reference) {
        s_packs_as_protobuf_c (reference);
        protobuf_c_message_free_unpacked (reference, NULL);
    }
}

static size_t
s_pack_event (Ep__Event *event, uint8_t *out, size_t cap)
{
    size_t size = ep__event__get_packed_size (event);
    cr_assert_leq (size, cap);
    return ep__event__pack (event, out);
}

Test (codec, envelope_fast_path_decodes_as_protobuf_c_does)
{
    ep_arena_t *arena = ep_arena_new (4096, 65536);
    Ep__StreamMeta meta = EP__STREAM_META__INIT;
    meta.source_id = "watchdog-1";
    meta.stream = "connect";
    meta.has_seq = true;
    meta.seq = 300;
    meta.has_epoch = true;
    meta.epoch = 0x123456789abcdefull;
    Ep__ConnectEvent connect = EP__CONNECT_EVENT__INIT;
    connect.src_id = "r1";
    connect.reason = "closed by peer";
    connect.has_connected = true;
    Ep__ChannelEvent channel = EP__CHANNEL_EVENT__INIT;
    channel.reason = "bench";
    channel.detail = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    Ep__StreamHeartbeat heartbeat = EP__STREAM_HEARTBEAT__INIT;
    char *routers [] = { "r1", "r2", "r3" };
    Ep__PresenceEvent presence = EP__PRESENCE_EVENT__INIT;
    presence.instance_id = "t-1";
    presence.n_routers = 3;
    presence.routers = routers;

    //  Plain events of several bodies, an empty body, no meta, no body.
    uint8_t plain [8][512];
    size_t sizes [8];
    size_t count = 0;
    Ep__Event event = EP__EVENT__INIT;
    event.meta = &meta;
    event.body_case = EP__EVENT__BODY_CONNECT;
    event.connect = &connect;
    sizes [count] = s_pack_event (&event, plain [count], sizeof plain [0]);
    count++;
    event.body_case = EP__EVENT__BODY_CHANNEL;
    event.channel = &channel;
    sizes [count] = s_pack_event (&event, plain [count], sizeof plain [0]);
    count++;
    event.body_case = EP__EVENT__BODY_HEARTBEAT;
    event.heartbeat = &heartbeat;       //  packs to an empty sub-message
    sizes [count] = s_pack_event (&event, plain [count], sizeof plain [0]);
    count++;
    event.body_case = EP__EVENT__BODY_PRESENCE;
    event.presence = &presence;
    sizes [count] = s_pack_event (&event, plain [count], sizeof plain [0]);
    count++;
    event.meta = NULL;
    sizes [count] = s_pack_event (&event, plain [count], sizeof plain [0]);
    count++;
    event.meta = &meta;
    event.body_case = EP__EVENT__BODY__NOT_SET;
    sizes [count] = s_pack_event (&event, plain [count], sizeof plain [0]);
    count++;
    for (size_t i = 0; i < count; i++)
        s_same_as_protobuf_c (plain [i], sizes [i], arena);
    s_same_as_protobuf_c (plain [0], 0, arena);

    //  Not plain: a field twice (merged), two members of the oneof (the
    //  last wins), an unknown field (kept), a body before the meta.
    uint8_t joined [1200];
    memcpy (joined, plain [0], sizes [0]);
    memcpy (joined + sizes [0], plain [1], sizes [1]);
    s_same_as_protobuf_c (joined, sizes [0] + sizes [1], arena);
    memcpy (joined, plain [5], sizes [5]);
    memcpy (joined + sizes [5], plain [0], sizes [0]);
    s_same_as_protobuf_c (joined, sizes [5] + sizes [0], arena);
    uint8_t unknown [] = { 0xa0, 0x03, 0x07 };     //  field 52, varint 7
    memcpy (joined, plain [1], sizes [1]);
    memcpy (joined + sizes [1], unknown, sizeof unknown);
    s_same_as_protobuf_c (joined, sizes [1] + sizeof unknown, arena);
    memcpy (joined, plain [4], sizes [4]);
    memcpy (joined + sizes [4], plain [5], sizes [5]);
    s_same_as_protobuf_c (joined, sizes [4] + sizes [5], arena);
    //  A second, different meta: protobuf-c merges it field by field.
    Ep__StreamMeta other = EP__STREAM_META__INIT;
    other.stream = "other";
    Ep__Event second = EP__EVENT__INIT;
    second.meta = &other;
    memcpy (joined, plain [0], sizes [0]);
    size_t more = s_pack_event (&second, joined + sizes [0], sizeof joined - sizes [0]);
    s_same_as_protobuf_c (joined, sizes [0] + more, arena);

    //  Every truncation, and random corruption, of every plain event.
    for (size_t i = 0; i < count; i++)
        for (size_t cut = 0; cut < sizes [i]; cut++)
            s_same_as_protobuf_c (plain [i], cut, arena);
    uint32_t seed = 12345;
    for (int round = 0; round < 20000; round++) {
        size_t i = (size_t) round % count;
        uint8_t mutated [512];
        memcpy (mutated, plain [i], sizes [i]);
        for (int flips = 0; flips < 1 + round % 3; flips++) {
            seed = seed * 1103515245 + 12345;
            size_t at = (seed >> 8) % sizes [i];
            seed = seed * 1103515245 + 12345;
            mutated [at] ^= (uint8_t) (1u << ((seed >> 16) % 8));
        }
        s_same_as_protobuf_c (mutated, sizes [i], arena);
    }
    ep_arena_destroy (&arena);
}

//  ---------------------------------------------------------------------
//  The flat path (messages of varint scalars and strings: StreamMeta, most
//  event bodies) against protobuf-c, on generated field sequences that mix
//  the plain case with every way out of it.

static uint32_t s_seed = 424242;

static uint32_t
s_rand (uint32_t bound)
{
    s_seed = s_seed * 1103515245 + 12345;
    return (s_seed >> 8) % bound;
}

//  Appends a varint of exactly len bytes (1..10) holding random bits, or
//  (one in three) zero bits but in its last byte.
static size_t
s_put_raw_varint (uint8_t *out, unsigned len)
{
    bool sparse = s_rand (3) == 0;
    for (unsigned i = 0; i < len; i++)
        out [i] = (uint8_t) ((i + 1 < len? 0x80: 0) | (sparse && i + 1 < len? 0: s_rand (128)));
    if (len > 1 && out [len - 1] == 0)
        out [len - 1] = (uint8_t) (1 + s_rand (127));
    return len;
}

//  Random fields of desc (mostly well formed) into out; returns the size.
static size_t
s_random_fields (const ProtobufCMessageDescriptor *desc, uint8_t *out, size_t cap)
{
    size_t size = 0;
    unsigned fields = s_rand (9);
    for (unsigned f = 0; f < fields && size + 64 < cap; f++) {
        const ProtobufCFieldDescriptor *field = &desc->fields [s_rand (desc->n_fields)];
        uint32_t id = s_rand (10) == 0? 1 + s_rand (40): field->id;
        bool string = field->type == PROTOBUF_C_TYPE_STRING;
        uint32_t wire = s_rand (8) == 0? s_rand (6): string? 2: 0;
        size += (size_t) (ep_codec_put_varint (out + size, (uint64_t) id << 3 | wire) - (out + size));
        if (wire == 0)
        {
            unsigned pick = s_rand (4);
            size += s_put_raw_varint (out + size, pick == 0? 10: pick == 1? 1 + s_rand (10): 1 + s_rand (2));
        }
        else
        if (wire == 2) {
            unsigned len = s_rand (20);
            out [size++] = (uint8_t) (s_rand (20) == 0? len + 1 + s_rand (3): len);
            for (unsigned i = 0; i < len; i++)
                out [size++] = (uint8_t) ('a' + s_rand (26));
        }
        else
        if (wire == 1 || wire == 5) {
            unsigned len = wire == 1? 8: 4;
            for (unsigned i = 0; i < len; i++)
                out [size++] = (uint8_t) s_rand (256);
        }
    }
    return size;
}

//  Both decode the same (packing back to the same bytes) or both fail.
static void
s_flat_same (const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t size)
{
    char err [256];
    ProtobufCMessage *reference = protobuf_c_message_unpack (desc, NULL, size, data);
    ProtobufCMessage *ours = ep_codec_unpack (desc, data, size, 65536, "test", err, sizeof err);
    cr_assert_eq (ours == NULL, reference == NULL, "%s, %zu bytes: protobuf-c %s, ours %s", desc->name,
                  size, reference? "decodes": "fails", ours? "decodes": "fails");
    if (ours) {
        size_t a = protobuf_c_message_get_packed_size (ours);
        cr_assert_eq (a, protobuf_c_message_get_packed_size (reference));
        uint8_t *pa = (uint8_t *) malloc (a + 1), *pb = (uint8_t *) malloc (a + 1);
        protobuf_c_message_pack (ours, pa);
        protobuf_c_message_pack (reference, pb);
        cr_assert_eq (memcmp (pa, pb, a), 0, "%s, %zu bytes: decoded differently", desc->name, size);
        free (pa);
        free (pb);
        //  And what decoded packs back as protobuf-c packs it (flat path).
        s_packs_as_protobuf_c (reference);
        protobuf_c_message_free_unpacked (ours, NULL);
        protobuf_c_message_free_unpacked (reference, NULL);
    }
}

Test (codec, flat_path_decodes_as_protobuf_c_does)
{
    const ProtobufCMessageDescriptor *bodies [] = {
        &ep__connect_event__descriptor, &ep__channel_event__descriptor, &ep__stray_event__descriptor,
        &ep__stream_heartbeat__descriptor
    };
    ep_arena_t *arena = ep_arena_new (4096, 65536);
    int decoded = 0;
    for (int round = 0; round < 30000; round++) {
        //  Alone (a flat top-level message) and as an Event's meta and body.
        uint8_t meta [512], body [512], event [1200];
        const ProtobufCMessageDescriptor *desc = bodies [round % EP_COUNT (bodies)];
        size_t meta_size = s_random_fields (&ep__stream_meta__descriptor, meta, sizeof meta);
        size_t body_size = s_random_fields (desc, body, sizeof body);
        s_flat_same (&ep__stream_meta__descriptor, meta, meta_size);
        s_flat_same (desc, body, body_size);
        //  Status: a flat message with an enum (negative values take ten
        //  bytes), outside events.
        uint8_t status [512];
        s_flat_same (&ep__status__descriptor, status,
                     s_random_fields (&ep__status__descriptor, status, sizeof status));
        size_t size = 0;
        event [size++] = 0x0a;
        size += (size_t) (ep_codec_put_varint (event + size, meta_size) - (event + size));
        memcpy (event + size, meta, meta_size);
        size += meta_size;
        const ProtobufCFieldDescriptor *member = NULL;
        for (unsigned i = 0; i < ep__event__descriptor.n_fields; i++)
            if (ep__event__descriptor.fields [i].descriptor == desc)
                member = &ep__event__descriptor.fields [i];
        cr_assert_not_null (member);
        size += (size_t) (ep_codec_put_varint (event + size, (uint64_t) member->id << 3 | 2) - (event + size));
        size += (size_t) (ep_codec_put_varint (event + size, body_size) - (event + size));
        memcpy (event + size, body, body_size);
        size += body_size;
        s_same_as_protobuf_c (event, size, arena);
        Ep__Event *check = ep__event__unpack (NULL, size, event);
        decoded += check != NULL;
        ep__event__free_unpacked (check, NULL);
    }
    //  The generator is no use if nearly everything fails.
    cr_assert_gt (decoded, 3000, "only %d of 30000 generated events decode", decoded);
    ep_arena_destroy (&arena);
}
