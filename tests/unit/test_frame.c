/*  test_frame.c: control channel framing. Frames survive any chunking;
    oversized, malformed, empty and trickled frames are refused with their
    own error; memory follows the bytes that arrived, not the ones announced;
    the output queue is bounded and supports partial writes. */
#include <criterion/criterion.h>
#include "ep_frame.h"
#include <dirent.h>

//  A wire stream of encoded frames, and where each one is.
typedef struct {
    uint8_t *bytes;             //  the frames back to back, as on the wire
    size_t len;                 //  bytes in the stream
    size_t count;               //  frames in the stream
    size_t *offsets;            //  where each frame starts
    size_t *lengths;            //  each frame's wire length (header included)
} s_stream_t;

static s_stream_t *
s_stream_new (void)
{
    return (s_stream_t *) zmalloc (sizeof (s_stream_t));
}

static void
s_stream_destroy (s_stream_t **self_p)
{
    s_stream_t *self = *self_p;
    free (self->bytes);
    free (self->offsets);
    free (self->lengths);
    free (self);
    *self_p = NULL;
}

static void
s_stream_add (s_stream_t *self, const Ep__Frame *frame)
{
    uint8_t *wire;
    size_t len;
    cr_assert_eq (ep_frame_encode (frame, UINT32_MAX, &wire, &len), 0);
    cr_assert_eq (len, ep_frame_wire_size (frame));
    self->bytes = (uint8_t *) realloc (self->bytes, self->len + len);
    self->offsets = (size_t *) realloc (self->offsets, (self->count + 1) * sizeof (size_t));
    self->lengths = (size_t *) realloc (self->lengths, (self->count + 1) * sizeof (size_t));
    memcpy (self->bytes + self->len, wire, len);
    self->offsets [self->count] = self->len;
    self->lengths [self->count] = len;
    self->len += len;
    self->count++;
    free (wire);
}

//  Asserts that frame, decoded, is frame index of the stream: packing is
//  deterministic, so equal messages pack to equal bytes.
static void
s_stream_check (s_stream_t *self, size_t index, Ep__Frame *frame)
{
    cr_assert_lt (index, self->count, "more frames decoded than sent");
    size_t body = self->lengths [index] - EP_FRAME_HEADER_SIZE;
    cr_assert_eq (ep__frame__get_packed_size (frame), body, "frame %zu differs in size", index);
    uint8_t *packed = (uint8_t *) malloc (body + 1);
    ep__frame__pack (frame, packed);
    cr_assert (memcmp (packed, self->bytes + self->offsets [index] + EP_FRAME_HEADER_SIZE,
                       body) == 0, "frame %zu differs", index);
    free (packed);
}

//  Returns every complete frame, checking each; returns the reader's error.
static ep_frame_error_t
s_drain (ep_frame_reader_t *reader, s_stream_t *stream, size_t *decoded)
{
    ep_frame_error_t error;
    Ep__Frame *frame;
    while ((frame = ep_frame_reader_next (reader, &error))) {
        s_stream_check (stream, (*decoded)++, frame);
        ep__frame__free_unpacked (frame, NULL);
    }
    return error;
}

//  Feeds data at now_ms, draining between feeds until all is taken.
static ep_frame_error_t
s_feed_all (ep_frame_reader_t *reader, const uint8_t *data, size_t len, int64_t now_ms,
            s_stream_t *stream, size_t *decoded)
{
    while (true) {
        size_t consumed;
        int rc = ep_frame_reader_feed (reader, data, len, now_ms, &consumed);
        ep_frame_error_t error = s_drain (reader, stream, decoded);
        if (error)
            return error;
        cr_assert_eq (rc, 0, "feed refused bytes without an error from next ()");
        data += consumed;
        len -= consumed;
        if (len == 0)
            return EP_FRAME_OK;
    }
}

static void
s_add_ping (s_stream_t *stream, uint64_t id, uint64_t nonce)
{
    Ep__Ping ping = EP__PING__INIT;
    ping.has_nonce = true;
    ping.nonce = nonce;
    ping.has_sent_at_ms = true;
    ping.sent_at_ms = 1700000000000 + (int64_t) nonce;
    Ep__Frame frame = EP__FRAME__INIT;
    frame.has_id = true;
    frame.id = id;
    frame.body_case = EP__FRAME__BODY_PING;
    frame.ping = &ping;
    s_stream_add (stream, &frame);
}

static void
s_add_hello (s_stream_t *stream, const char *id)
{
    Ep__Hello hello = EP__HELLO__INIT;
    hello.has_protocol_version = true;
    hello.protocol_version = 1;
    hello.has_role = true;
    hello.role = EP__ROLE__ROLE_ROUTER;
    hello.id = (char *) id;
    hello.version = "0.1.0";
    Ep__Frame frame = EP__FRAME__INIT;
    frame.body_case = EP__FRAME__BODY_HELLO;
    frame.hello = &hello;
    s_stream_add (stream, &frame);
}

//  A slice frame of about size bytes: removed names of 1000 bytes each.
static void
s_add_slice (s_stream_t *stream, uint64_t revision, size_t size)
{
    size_t count = size / 1003 + 1;
    char **removed = (char **) calloc (count, sizeof (char *));
    for (size_t i = 0; i < count; i++) {
        removed [i] = (char *) malloc (1001);
        memset (removed [i], 'a' + (int) (i % 26), 1000);
        removed [i][1000] = 0;
    }
    Ep__ModelSlice slice = EP__MODEL_SLICE__INIT;
    slice.has_revision = true;
    slice.revision = revision;
    slice.n_removed = count;
    slice.removed = removed;
    Ep__Frame frame = EP__FRAME__INIT;
    frame.body_case = EP__FRAME__BODY_SLICE;
    frame.slice = &slice;
    s_stream_add (stream, &frame);
    for (size_t i = 0; i < count; i++)
        free (removed [i]);
    free (removed);
}

static uint64_t
s_rand (uint64_t *state)
{
    //  xorshift64*: reproducible from the seed printed on failure.
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 2685821657736338717ull;
}

static char *
s_rand_string (uint64_t *state, size_t max)
{
    size_t len = (size_t) (s_rand (state) % (max + 1));
    char *text = (char *) malloc (len + 1);
    for (size_t i = 0; i < len; i++)
        text [i] = (char) (' ' + s_rand (state) % 95);
    text [len] = 0;
    return text;
}

static void
s_add_random (s_stream_t *stream, uint64_t *state)
{
    Ep__Frame frame = EP__FRAME__INIT;
    frame.has_id = s_rand (state) % 2;
    frame.id = s_rand (state);
    switch (s_rand (state) % 5) {
        case 0:
            s_add_ping (stream, frame.id, s_rand (state));
            return;
        case 1: {
            char *id = s_rand_string (state, 64);
            s_add_hello (stream, id);
            free (id);
            return;
        }
        case 2:
            //  Mostly small, now and then up to 64 KiB.
            s_add_slice (stream, s_rand (state),
                         s_rand (state) % 20? s_rand (state) % 3000: s_rand (state) % 65536);
            return;
        case 3: {
            Ep__Goodbye goodbye = EP__GOODBYE__INIT;
            goodbye.reason = s_rand_string (state, 300);
            goodbye.has_reconnect = true;
            goodbye.reconnect = s_rand (state) % 2;
            frame.body_case = EP__FRAME__BODY_GOODBYE;
            frame.goodbye = &goodbye;
            s_stream_add (stream, &frame);
            free (goodbye.reason);
            return;
        }
        default: {
            Ep__CloseSessions close = EP__CLOSE_SESSIONS__INIT;
            close.n_session_ids = (size_t) (s_rand (state) % 8);
            close.session_ids = (char **) calloc (close.n_session_ids + 1, sizeof (char *));
            for (size_t i = 0; i < close.n_session_ids; i++)
                close.session_ids [i] = s_rand_string (state, 40);
            Ep__Command command = EP__COMMAND__INIT;
            command.command_id = "cmd-1";
            command.router_id = "r1";
            command.kind_case = EP__COMMAND__KIND_CLOSE_SESSIONS;
            command.close_sessions = &close;
            frame.body_case = EP__FRAME__BODY_COMMAND;
            frame.command = &command;
            s_stream_add (stream, &frame);
            for (size_t i = 0; i < close.n_session_ids; i++)
                free (close.session_ids [i]);
            free (close.session_ids);
            return;
        }
    }
}

static s_stream_t *
s_three_frames (void)
{
    s_stream_t *stream = s_stream_new ();
    s_add_hello (stream, "router-1");
    s_add_ping (stream, 7, 42);
    s_add_slice (stream, 9, 2500);
    return stream;
}

Test (frame, split_at_every_byte_boundary)
{
    s_stream_t *stream = s_three_frames ();
    for (size_t split = 0; split <= stream->len; split++) {
        ep_frame_reader_t *reader = ep_frame_reader_new (EP_FRAME_PREJOIN_CAP);
        size_t decoded = 0;
        cr_assert_eq (s_feed_all (reader, stream->bytes, split, 1, stream, &decoded), EP_FRAME_OK);
        cr_assert_eq (s_feed_all (reader, stream->bytes + split, stream->len - split, 2,
                                  stream, &decoded), EP_FRAME_OK);
        cr_assert_eq (decoded, stream->count, "split at %zu: %zu frames", split, decoded);
        cr_assert_eq (ep_frame_reader_buffered (reader), 0);
        cr_assert_eq (ep_frame_reader_deadline (reader), -1);
        ep_frame_reader_destroy (&reader);
        cr_assert_null (reader);
    }
    //  And one byte at a time, through the zero-copy calls.
    ep_frame_reader_t *reader = ep_frame_reader_new (EP_FRAME_PREJOIN_CAP);
    size_t decoded = 0;
    for (size_t i = 0; i < stream->len; i++) {
        size_t room;
        uint8_t *space = ep_frame_reader_space (reader, &room);
        cr_assert_not_null (space);
        cr_assert_gt (room, 0);
        *space = stream->bytes [i];
        ep_frame_reader_commit (reader, 1, (int64_t) i);
        cr_assert_eq (s_drain (reader, stream, &decoded), EP_FRAME_OK);
    }
    cr_assert_eq (decoded, stream->count);
    ep_frame_reader_destroy (&reader);
    s_stream_destroy (&stream);
}

Test (frame, several_frames_in_one_feed)
{
    s_stream_t *stream = s_stream_new ();
    for (uint64_t i = 0; i < 20; i++)
        s_add_ping (stream, i, i * 3);
    ep_frame_reader_t *reader = ep_frame_reader_new (EP_FRAME_PREJOIN_CAP);
    size_t consumed;
    cr_assert_eq (ep_frame_reader_feed (reader, stream->bytes, stream->len, 5, &consumed), 0);
    cr_assert_eq (consumed, stream->len);
    cr_assert_eq (ep_frame_reader_buffered (reader), stream->len);
    cr_assert_eq (ep_frame_reader_deadline (reader), -1, "only whole frames: nothing to time");
    size_t decoded = 0;
    cr_assert_eq (s_drain (reader, stream, &decoded), EP_FRAME_OK);
    cr_assert_eq (decoded, 20);
    cr_assert_eq (ep_frame_reader_buffered (reader), 0);
    cr_assert_eq (ep_frame_reader_allocated (reader), 0, "idle reader holds no buffer");
    ep_frame_reader_destroy (&reader);
    s_stream_destroy (&stream);
}

Test (frame, oversized_detected_from_header_alone)
{
    ep_frame_reader_t *reader = ep_frame_reader_new (EP_FRAME_PREJOIN_CAP);
    const uint8_t header [4] = { 0x01, 0x00, 0x00, 0x00 };      //  16 MiB
    size_t room;
    uint8_t *space = ep_frame_reader_space (reader, &room);
    cr_assert_geq (room, 4);
    memcpy (space, header, 4);
    ep_frame_reader_commit (reader, 4, 100);
    cr_assert_eq (ep_frame_reader_buffered (reader), 4);
    cr_assert_leq (ep_frame_reader_allocated (reader), EP_FRAME_CHUNK,
                   "the announced 16 MiB must not be allocated");
    //  No room is offered for the body.
    cr_assert_null (ep_frame_reader_space (reader, &room));
    cr_assert_eq (room, 0);
    ep_frame_error_t error = EP_FRAME_OK;
    cr_assert_null (ep_frame_reader_next (reader, &error));
    cr_assert_eq (error, EP_FRAME_OVERSIZED);
    cr_assert_eq (ep_frame_reader_error (reader), EP_FRAME_OVERSIZED);
    cr_assert_str_eq (ep_frame_error_name (error), "oversized");
    const char *detail = ep_frame_reader_detail (reader);
    cr_assert (strstr (detail, "16777216") && strstr (detail, "16384"), "%s", detail);
    //  Sticky: more bytes are refused and next () keeps saying why.
    const uint8_t more [8] = { 0 };
    size_t consumed;
    cr_assert_eq (ep_frame_reader_feed (reader, more, sizeof more, 101, &consumed), -1);
    cr_assert_eq (consumed, 0);
    cr_assert_null (ep_frame_reader_next (reader, &error));
    cr_assert_eq (error, EP_FRAME_OVERSIZED);
    cr_assert_leq (ep_frame_reader_buffered (reader), 4);
    ep_frame_reader_destroy (&reader);
}

Test (frame, cap_is_inclusive)
{
    s_stream_t *stream = s_stream_new ();
    s_add_ping (stream, 1, 2);
    size_t body = stream->len - EP_FRAME_HEADER_SIZE;
    ep_frame_reader_t *reader = ep_frame_reader_new (body);
    size_t decoded = 0;
    cr_assert_eq (s_feed_all (reader, stream->bytes, stream->len, 0, stream, &decoded), EP_FRAME_OK);
    cr_assert_eq (decoded, 1);
    ep_frame_reader_destroy (&reader);

    reader = ep_frame_reader_new (body - 1);
    decoded = 0;
    cr_assert_eq (s_feed_all (reader, stream->bytes, stream->len, 0, stream, &decoded),
                  EP_FRAME_OVERSIZED);
    cr_assert_eq (decoded, 0);
    ep_frame_reader_destroy (&reader);

    uint8_t *wire;
    size_t len;
    Ep__Ping ping = EP__PING__INIT;
    Ep__Frame frame = EP__FRAME__INIT;
    frame.body_case = EP__FRAME__BODY_PING;
    frame.ping = &ping;
    frame.has_id = true;
    frame.id = 1000;
    cr_assert_eq (ep_frame_encode (&frame, 2, &wire, &len), -1, "the writer refuses above the cap");
    s_stream_destroy (&stream);
}

Test (frame, malformed_body)
{
    //  0xff: field 31, wire type 7, which does not exist.
    const uint8_t bytes [] = { 0, 0, 0, 3, 0xff, 0xff, 0xff };
    ep_frame_reader_t *reader = ep_frame_reader_new (EP_FRAME_PREJOIN_CAP);
    size_t consumed;
    cr_assert_eq (ep_frame_reader_feed (reader, bytes, sizeof bytes, 0, &consumed), 0);
    ep_frame_error_t error;
    cr_assert_null (ep_frame_reader_next (reader, &error));
    cr_assert_eq (error, EP_FRAME_MALFORMED);
    cr_assert_str_eq (ep_frame_error_name (error), "malformed");
    cr_assert (strstr (ep_frame_reader_detail (reader), "not a valid ep.Frame"));
    cr_assert_null (ep_frame_reader_next (reader, &error));
    cr_assert_eq (error, EP_FRAME_MALFORMED);
    ep_frame_reader_destroy (&reader);

    //  A body cut short inside a string is malformed too.
    const uint8_t cut [] = { 0, 0, 0, 4, 0x12, 0x08, 0x1a, 0x05 };   //  hello { id: 5 bytes... }
    reader = ep_frame_reader_new (EP_FRAME_PREJOIN_CAP);
    cr_assert_eq (ep_frame_reader_feed (reader, cut, sizeof cut, 0, &consumed), 0);
    cr_assert_null (ep_frame_reader_next (reader, &error));
    cr_assert_eq (error, EP_FRAME_MALFORMED);
    ep_frame_reader_destroy (&reader);
}

Test (frame, empty_frames_refused)
{
    ep_frame_error_t error;
    size_t consumed;
    //  Length 0.
    const uint8_t zero [] = { 0, 0, 0, 0 };
    ep_frame_reader_t *reader = ep_frame_reader_new (EP_FRAME_PREJOIN_CAP);
    cr_assert_eq (ep_frame_reader_feed (reader, zero, sizeof zero, 0, &consumed), 0);
    cr_assert_null (ep_frame_reader_next (reader, &error));
    cr_assert_eq (error, EP_FRAME_EMPTY);
    cr_assert_str_eq (ep_frame_error_name (error), "empty");
    ep_frame_reader_destroy (&reader);

    //  A Frame with an id and no body.
    const uint8_t no_body [] = { 0, 0, 0, 2, 0x08, 0x07 };   //  id: 7
    reader = ep_frame_reader_new (EP_FRAME_PREJOIN_CAP);
    cr_assert_eq (ep_frame_reader_feed (reader, no_body, sizeof no_body, 0, &consumed), 0);
    cr_assert_null (ep_frame_reader_next (reader, &error));
    cr_assert_eq (error, EP_FRAME_EMPTY);
    ep_frame_reader_destroy (&reader);

    //  A body this version does not know (field 99) decodes as no body.
    const uint8_t unknown [] = { 0, 0, 0, 3, 0x98, 0x06, 0x01 };  //  field 99, varint 1
    reader = ep_frame_reader_new (EP_FRAME_PREJOIN_CAP);
    cr_assert_eq (ep_frame_reader_feed (reader, unknown, sizeof unknown, 0, &consumed), 0);
    cr_assert_null (ep_frame_reader_next (reader, &error));
    cr_assert_eq (error, EP_FRAME_EMPTY);
    cr_assert (strstr (ep_frame_reader_detail (reader), "protocol version"));
    ep_frame_reader_destroy (&reader);
}

Test (frame, error_names_distinct)
{
    ep_frame_error_t errors [] = { EP_FRAME_OK, EP_FRAME_OVERSIZED, EP_FRAME_MALFORMED,
                                   EP_FRAME_EMPTY, EP_FRAME_DEADLINE };
    for (size_t i = 0; i < EP_COUNT (errors); i++)
        for (size_t j = i + 1; j < EP_COUNT (errors); j++) {
            cr_assert_neq (errors [i], errors [j]);
            cr_assert_str_neq (ep_frame_error_name (errors [i]), ep_frame_error_name (errors [j]));
        }
    cr_assert_str_eq (ep_frame_error_name (EP_FRAME_DEADLINE), "deadline");
}

Test (frame, deadline_from_first_byte)
{
    s_stream_t *stream = s_stream_new ();
    s_add_ping (stream, 1, 1);
    s_add_ping (stream, 2, 2);
    size_t first = stream->lengths [0];
    ep_frame_reader_t *reader = ep_frame_reader_new (EP_FRAME_PREJOIN_CAP);
    ep_frame_reader_set_timeout (reader, 5000);
    size_t decoded = 0;
    cr_assert_eq (ep_frame_reader_deadline (reader), -1, "idle: no deadline");

    //  Trickled bytes do not move the deadline: it counts from the first.
    s_feed_all (reader, stream->bytes, 1, 1000, stream, &decoded);
    cr_assert_eq (ep_frame_reader_deadline (reader), 6000);
    s_feed_all (reader, stream->bytes + 1, 3, 2000, stream, &decoded);
    cr_assert_eq (ep_frame_reader_deadline (reader), 6000);
    cr_assert_eq (ep_frame_reader_expire (reader, 5999), 0);

    //  Completing the frame clears it, even before next () returns the frame.
    size_t consumed;
    ep_frame_reader_feed (reader, stream->bytes + 4, first - 4, 3000, &consumed);
    cr_assert_eq (ep_frame_reader_deadline (reader), -1);
    cr_assert_eq (s_drain (reader, stream, &decoded), EP_FRAME_OK);
    cr_assert_eq (decoded, 1);
    cr_assert_eq (ep_frame_reader_expire (reader, 100000), 0, "nothing partial to expire");
    ep_frame_reader_destroy (&reader);

    //  A whole frame and the start of the next in one read: the next one's
    //  clock starts at that read; the whole frame is delivered before the
    //  deadline error.
    reader = ep_frame_reader_new (EP_FRAME_PREJOIN_CAP);
    ep_frame_reader_set_timeout (reader, 5000);
    decoded = 0;
    cr_assert_eq (ep_frame_reader_feed (reader, stream->bytes, first + 2, 7000, &consumed), 0);
    cr_assert_eq (ep_frame_reader_deadline (reader), 12000);
    cr_assert_eq (ep_frame_reader_expire (reader, 11999), 0);
    cr_assert_eq (ep_frame_reader_expire (reader, 12000), -1);
    size_t room;
    cr_assert_null (ep_frame_reader_space (reader, &room), "a late reader takes no bytes");
    ep_frame_error_t error;
    Ep__Frame *frame = ep_frame_reader_next (reader, &error);
    cr_assert_not_null (frame);
    s_stream_check (stream, 0, frame);
    ep__frame__free_unpacked (frame, NULL);
    cr_assert_null (ep_frame_reader_next (reader, &error));
    cr_assert_eq (error, EP_FRAME_DEADLINE);
    cr_assert (strstr (ep_frame_reader_detail (reader), "5000 ms"), "%s",
               ep_frame_reader_detail (reader));
    cr_assert_eq (ep_frame_reader_deadline (reader), -1, "stopped: nothing left to time");
    cr_assert_eq (ep_frame_reader_feed (reader, stream->bytes + first + 2, 1, 12001, &consumed), -1);
    ep_frame_reader_destroy (&reader);
    s_stream_destroy (&stream);
}

Test (frame, cap_raised_after_join)
{
    s_stream_t *stream = s_stream_new ();
    s_add_hello (stream, "router-1");
    s_add_slice (stream, 1, 40000);                     //  above 16 KiB
    cr_assert_gt (stream->lengths [1], EP_FRAME_PREJOIN_CAP);

    //  Hello and the big frame arrive together; the cap is raised on JOIN,
    //  after next () returned Hello and before it is called again.
    ep_frame_reader_t *reader = ep_frame_reader_new (EP_FRAME_PREJOIN_CAP);
    size_t consumed;
    cr_assert_eq (ep_frame_reader_feed (reader, stream->bytes, stream->len, 0, &consumed), 0);
    cr_assert_lt (consumed, stream->len, "the reader stops while Hello waits");
    ep_frame_error_t error;
    Ep__Frame *frame = ep_frame_reader_next (reader, &error);
    cr_assert_not_null (frame);
    cr_assert_eq (frame->body_case, EP__FRAME__BODY_HELLO);
    ep__frame__free_unpacked (frame, NULL);
    ep_frame_reader_set_cap (reader, EP_FRAME_JOINED_CAP);
    cr_assert_eq (ep_frame_reader_cap (reader), EP_FRAME_JOINED_CAP);
    size_t decoded = 1;
    cr_assert_eq (s_feed_all (reader, stream->bytes + consumed, stream->len - consumed, 0,
                              stream, &decoded), EP_FRAME_OK);
    cr_assert_eq (decoded, 2);
    ep_frame_reader_destroy (&reader);

    //  Without the JOIN the big frame is oversized, after Hello is delivered.
    reader = ep_frame_reader_new (EP_FRAME_PREJOIN_CAP);
    decoded = 0;
    cr_assert_eq (s_feed_all (reader, stream->bytes, stream->len, 0, stream, &decoded),
                  EP_FRAME_OVERSIZED);
    cr_assert_eq (decoded, 1);
    ep_frame_reader_destroy (&reader);
    s_stream_destroy (&stream);
}

Test (frame, memory_follows_bytes_not_announcement)
{
    //  A peer announcing 4 MiB (within the cap) and sending a little.
    ep_frame_reader_t *reader = ep_frame_reader_new (8u * 1024u * 1024u);
    uint8_t header [4] = { 0x00, 0x40, 0x00, 0x00 };
    size_t consumed;
    cr_assert_eq (ep_frame_reader_feed (reader, header, 4, 0, &consumed), 0);
    uint8_t byte = 0x0a;
    cr_assert_eq (ep_frame_reader_feed (reader, &byte, 1, 0, &consumed), 0);
    cr_assert_eq (ep_frame_reader_buffered (reader), 5);
    cr_assert_leq (ep_frame_reader_allocated (reader), EP_FRAME_CHUNK);

    //  As bytes arrive the buffer stays within a small multiple of them.
    uint8_t *chunk = (uint8_t *) calloc (1, 100000);
    for (int i = 0; i < 10; i++) {
        cr_assert_eq (ep_frame_reader_feed (reader, chunk, 100000, 0, &consumed), 0);
        cr_assert_eq (consumed, 100000);
        size_t buffered = ep_frame_reader_buffered (reader);
        cr_assert_leq (ep_frame_reader_allocated (reader), 2 * buffered + EP_FRAME_CHUNK,
                       "%zu allocated for %zu bytes",
                       ep_frame_reader_allocated (reader), buffered);
    }
    free (chunk);
    ep_frame_reader_destroy (&reader);
}

Test (frame, buffer_shrinks_after_large_frame)
{
    s_stream_t *stream = s_stream_new ();
    s_add_slice (stream, 1, 1000000);
    s_add_ping (stream, 1, 1);
    ep_frame_reader_t *reader = ep_frame_reader_new (EP_FRAME_JOINED_CAP);
    size_t decoded = 0;
    //  The large frame alone: released once it is returned.
    size_t big = stream->lengths [0];
    cr_assert_eq (s_feed_all (reader, stream->bytes, big - 1, 0, stream, &decoded), EP_FRAME_OK);
    cr_assert_geq (ep_frame_reader_allocated (reader), big - 1);
    cr_assert_eq (s_feed_all (reader, stream->bytes + big - 1, 1, 0, stream, &decoded), EP_FRAME_OK);
    cr_assert_eq (decoded, 1);
    cr_assert_eq (ep_frame_reader_allocated (reader), 0);
    ep_frame_reader_destroy (&reader);

    //  The large frame with the start of the next: the buffer shrinks to
    //  the small frame's size as soon as the large one is returned.
    reader = ep_frame_reader_new (EP_FRAME_JOINED_CAP);
    decoded = 0;
    cr_assert_eq (s_feed_all (reader, stream->bytes, big + 3, 0, stream, &decoded), EP_FRAME_OK);
    cr_assert_eq (decoded, 1);
    cr_assert_eq (ep_frame_reader_buffered (reader), 3);
    size_t room;
    cr_assert_not_null (ep_frame_reader_space (reader, &room));
    cr_assert_leq (ep_frame_reader_allocated (reader), 2 * EP_FRAME_CHUNK);
    cr_assert_eq (s_feed_all (reader, stream->bytes + big + 3, stream->len - big - 3, 0,
                              stream, &decoded), EP_FRAME_OK);
    cr_assert_eq (decoded, 2);
    cr_assert_eq (ep_frame_reader_allocated (reader), 0);
    ep_frame_reader_destroy (&reader);
    s_stream_destroy (&stream);
}

Test (frame, queue_cap_and_partial_consume)
{
    s_stream_t *stream = s_stream_new ();
    s_add_ping (stream, 1, 1);
    size_t one = stream->len;
    ep_frame_queue_t *queue = ep_frame_queue_new (5 * one + 2);
    size_t len, consumed;
    cr_assert_null (ep_frame_queue_peek (queue, &len));
    cr_assert_eq (len, 0);
    Ep__Ping ping = EP__PING__INIT;
    ping.has_nonce = true;
    ping.nonce = 1;
    ping.has_sent_at_ms = true;
    ping.sent_at_ms = 1700000000001;
    Ep__Frame frame = EP__FRAME__INIT;
    frame.has_id = true;
    frame.id = 1;
    frame.body_case = EP__FRAME__BODY_PING;
    frame.ping = &ping;
    for (int i = 0; i < 5; i++)
        cr_assert_eq (ep_frame_queue_push (queue, &frame), 0);
    cr_assert_eq (ep_frame_queue_size (queue), 5 * one);
    //  The sixth would pass the cap: refused, nothing queued.
    cr_assert_eq (ep_frame_queue_push (queue, &frame), -1);
    cr_assert_eq (ep_frame_queue_size (queue), 5 * one);

    //  What the queue sends is read by a peer's reader as the frames pushed.
    ep_frame_reader_t *reader = ep_frame_reader_new (EP_FRAME_PREJOIN_CAP);
    int frames = 0;

    //  A write that took 3 bytes, then a retry that sees the rest.
    const uint8_t *pending = ep_frame_queue_peek (queue, &len);
    cr_assert_eq (len, 5 * one);
    cr_assert (memcmp (pending, stream->bytes, one) == 0);
    cr_assert_eq (ep_frame_reader_feed (reader, pending, 3, 0, &consumed), 0);
    ep_frame_queue_consume (queue, 3);
    pending = ep_frame_queue_peek (queue, &len);
    cr_assert_eq (len, 5 * one - 3);
    cr_assert (memcmp (pending, stream->bytes + 3, one - 3) == 0);
    //  Still no room for a whole frame more.
    cr_assert_eq (ep_frame_queue_push (queue, &frame), -1);
    cr_assert_eq (ep_frame_queue_size (queue), 5 * one - 3);
    //  The rest of the first frame goes: room again, and a push appends at
    //  the tail without touching the pending head.
    cr_assert_eq (ep_frame_reader_feed (reader, pending, one - 3, 0, &consumed), 0);
    ep_frame_queue_consume (queue, one - 3);
    cr_assert_eq (ep_frame_queue_push (queue, &frame), 0);
    pending = ep_frame_queue_peek (queue, &len);
    cr_assert_eq (len, 5 * one);
    cr_assert (memcmp (pending, stream->bytes, one) == 0);

    while ((pending = ep_frame_queue_peek (queue, &len))) {
        size_t n = len < 7? len: 7;             //  short writes
        cr_assert_eq (ep_frame_reader_feed (reader, pending, n, 0, &consumed), 0);
        cr_assert_eq (consumed, n);
        ep_frame_queue_consume (queue, n);
        Ep__Frame *decoded;
        while ((decoded = ep_frame_reader_next (reader, NULL))) {
            s_stream_check (stream, 0, decoded);
            ep__frame__free_unpacked (decoded, NULL);
            frames++;
        }
    }
    cr_assert_eq (frames, 6);
    cr_assert_eq (ep_frame_queue_size (queue), 0);
    cr_assert_eq (ep_frame_queue_allocated (queue), 0, "empty queue holds no buffer");

    //  A frame bigger than the whole cap is refused outright.
    ep_frame_queue_set_cap (queue, one - 1);
    cr_assert_eq (ep_frame_queue_push (queue, &frame), -1);
    cr_assert_eq (ep_frame_queue_size (queue), 0);
    ep_frame_queue_destroy (&queue);
    cr_assert_null (queue);
    ep_frame_reader_destroy (&reader);
    s_stream_destroy (&stream);
}

Test (frame, queue_shrinks_after_burst)
{
    ep_frame_queue_t *queue = ep_frame_queue_new (4u * 1024u * 1024u);
    Ep__Ping ping = EP__PING__INIT;
    Ep__Frame frame = EP__FRAME__INIT;
    frame.body_case = EP__FRAME__BODY_PING;
    frame.ping = &ping;
    size_t one = ep_frame_wire_size (&frame);
    while (ep_frame_queue_size (queue) < 1000000)
        cr_assert_eq (ep_frame_queue_push (queue, &frame), 0);
    cr_assert_geq (ep_frame_queue_allocated (queue), 1000000);
    //  The peer catches up but the queue never empties: it shrinks anyway.
    ep_frame_queue_consume (queue, ep_frame_queue_size (queue) - 10 * one);
    cr_assert_leq (ep_frame_queue_allocated (queue), EP_FRAME_CHUNK);
    cr_assert_eq (ep_frame_queue_size (queue), 10 * one);
    ep_frame_queue_destroy (&queue);
}

Test (frame, random_round_trip)
{
    uint64_t seed = (uint64_t) ep_wall_ms () | 1;
    uint64_t state = seed;
    s_stream_t *stream = s_stream_new ();
    for (int i = 0; i < 2000; i++)
        s_add_random (stream, &state);

    //  Through a queue with short writes, into a reader by random chunks,
    //  alternating the zero-copy calls and feed (), timed so no deadline hits.
    ep_frame_queue_t *queue = ep_frame_queue_new (256 * 1024);
    ep_frame_reader_t *reader = ep_frame_reader_new (EP_FRAME_PREJOIN_CAP);
    ep_frame_reader_set_cap (reader, EP_FRAME_JOINED_CAP);
    size_t pushed = 0, decoded = 0;
    int64_t now = 0;
    while (decoded < stream->count) {
        //  Push what fits; the queue refuses past its cap.
        while (pushed < stream->count) {
            const uint8_t *body = stream->bytes + stream->offsets [pushed] + EP_FRAME_HEADER_SIZE;
            Ep__Frame *frame = ep__frame__unpack (NULL, stream->lengths [pushed] - EP_FRAME_HEADER_SIZE, body);
            cr_assert_not_null (frame);
            int rc = ep_frame_queue_push (queue, frame);
            ep__frame__free_unpacked (frame, NULL);
            if (rc)
                break;
            pushed++;
        }
        cr_assert_leq (ep_frame_queue_size (queue), 256 * 1024);
        size_t len;
        const uint8_t *pending = ep_frame_queue_peek (queue, &len);
        cr_assert_not_null (pending, "seed %" PRIu64, seed);
        size_t n = 1 + (size_t) (s_rand (&state) % (s_rand (&state) % 3? 64: 40000));
        if (n > len)
            n = len;
        now++;
        if (s_rand (&state) % 2) {
            size_t consumed;
            cr_assert_eq (ep_frame_reader_feed (reader, pending, n, now, &consumed), 0);
            n = consumed;
        }
        else {
            size_t room;
            uint8_t *space = ep_frame_reader_space (reader, &room);
            cr_assert_not_null (space, "seed %" PRIu64, seed);
            cr_assert_leq (ep_frame_reader_allocated (reader),
                           4 * ep_frame_reader_buffered (reader) + 2 * EP_FRAME_CHUNK,
                           "seed %" PRIu64, seed);
            if (n > room)
                n = room;
            memcpy (space, pending, n);
            ep_frame_reader_commit (reader, n, now);
        }
        ep_frame_queue_consume (queue, n);
        cr_assert_eq (s_drain (reader, stream, &decoded), EP_FRAME_OK, "seed %" PRIu64, seed);
        int64_t deadline = ep_frame_reader_deadline (reader);
        cr_assert (deadline == -1 || deadline > now, "seed %" PRIu64, seed);
    }
    cr_assert_eq (decoded, stream->count);
    cr_assert_eq (ep_frame_reader_buffered (reader), 0);
    cr_assert_eq (ep_frame_reader_allocated (reader), 0);
    cr_assert_eq (ep_frame_queue_allocated (queue), 0);
    ep_frame_reader_destroy (&reader);
    ep_frame_queue_destroy (&queue);
    s_stream_destroy (&stream);
}

Test (frame, fuzz_seeds_are_valid_streams)
{
    //  Each seed: one byte that steers the fuzzer's chunking, then frames.
    const char *dir_path = EP_SOURCE_DIR "/tests/fuzz/corpus/frame";
    DIR *dir = opendir (dir_path);
    cr_assert_not_null (dir, "%s", dir_path);
    int seeds = 0;
    struct dirent *entry;
    while ((entry = readdir (dir))) {
        if (entry->d_name [0] == '.')
            continue;
        char *path = zsys_sprintf ("%s/%s", dir_path, entry->d_name);
        zfile_t *file = zfile_new (NULL, path);
        cr_assert_eq (zfile_input (file), 0, "%s", path);
        zchunk_t *chunk = zfile_read (file, zfile_cursize (file), 0);
        cr_assert_gt (zchunk_size (chunk), 1);
        ep_frame_reader_t *reader = ep_frame_reader_new (EP_FRAME_JOINED_CAP);
        size_t consumed;
        cr_assert_eq (ep_frame_reader_feed (reader, zchunk_data (chunk) + 1,
                                            zchunk_size (chunk) - 1, 0, &consumed), 0, "%s", path);
        int frames = 0;
        ep_frame_error_t error;
        Ep__Frame *frame;
        while ((frame = ep_frame_reader_next (reader, &error))) {
            ep__frame__free_unpacked (frame, NULL);
            frames++;
        }
        cr_assert_eq (error, EP_FRAME_OK, "%s: %s", path, ep_frame_reader_detail (reader));
        cr_assert_gt (frames, 0, "%s", path);
        cr_assert_eq (ep_frame_reader_buffered (reader), 0, "%s", path);
        ep_frame_reader_destroy (&reader);
        zchunk_destroy (&chunk);
        zfile_destroy (&file);
        zstr_free (&path);
        seeds++;
    }
    closedir (dir);
    cr_assert_geq (seeds, 3);
}
