/*  fuzz_frame.c: the control channel's frame reader fed hostile bytes in
    random-sized chunks, until it stops with an error or the bytes run out.

    Input: one byte that steers the pre-JOIN cap and the chunking, then the
    stream. Nothing may crash, leak or read out of bounds (ASan); beyond
    that the fuzzer aborts when the reader breaks a promise: memory beyond a
    small multiple of the bytes it holds, more bytes held than one frame
    under the cap, refusing bytes without an error, or frames and error
    that depend on how the bytes were chunked. Frames decoded are sent
    through an output queue and read back, to exercise the writer too.

    Re-encoding a decoded frame is not always decodable: protobuf-c 1.4
    keeps an unknown field whose tag is a non-minimal varint of field 0
    ("80 00"), re-packs it minimally ("00"), and refuses that on unpack.
    So the read-back is checked against unpacking each encoding alone. */
#include "ep_frame.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

//  What a run decoded: each frame re-packed, length-prefixed, and the error.
typedef struct {
    zchunk_t *frames;           //  the frames, as a wire stream
    size_t count;               //  frames decoded
    ep_frame_error_t error;     //  the error that stopped the reader
    size_t readable;            //  frames before the first whose encoding won't unpack
    bool unreadable;            //  some frame's encoding won't unpack
} s_result_t;

static uint64_t
s_rand (uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 2685821657736338717ull;
}

static void
s_record (s_result_t *result, ep_frame_queue_t *queue, Ep__Frame *frame)
{
    uint8_t *wire;
    size_t len;
    EP_ASSERT (ep_frame_encode (frame, UINT32_MAX, &wire, &len) == 0);
    zchunk_extend (result->frames, wire, len);
    Ep__Frame *again = ep__frame__unpack (NULL, len - EP_FRAME_HEADER_SIZE,
                                          wire + EP_FRAME_HEADER_SIZE);
    if (again)
        EP_ASSERT (again->body_case == frame->body_case);
    else
        result->unreadable = true;
    if (!result->unreadable)
        result->readable++;
    ep__frame__free_unpacked (again, NULL);
    free (wire);
    EP_ASSERT (ep_frame_queue_push (queue, frame) == 0);
    result->count++;
}

//  Reads stream (size bytes) in one go (chunked false) or in chunks steered
//  by steer; returns what was decoded.
static s_result_t
s_run (const uint8_t *stream, size_t size, uint8_t steer, bool chunked)
{
    s_result_t result = { zchunk_new (NULL, 0), 0, EP_FRAME_OK, 0, false };
    ep_frame_queue_t *queue = ep_frame_queue_new (SIZE_MAX);
    ep_frame_reader_t *reader = ep_frame_reader_new ((steer & 7) * 128u);
    ep_frame_reader_set_timeout (reader, 1000000000);
    uint64_t state = steer * 0x9E3779B97F4A7C15ull + 1;
    size_t offset = 0;
    int64_t now = 0;
    bool expired = false;
    while (true) {
        //  Drain; the first frame is Hello: the connection JOINs.
        Ep__Frame *frame;
        while ((frame = ep_frame_reader_next (reader, &result.error))) {
            if (result.count == 0)
                ep_frame_reader_set_cap (reader, 1024u * 1024u);
            s_record (&result, queue, frame);
            ep__frame__free_unpacked (frame, NULL);
        }
        if (result.error)
            break;
        //  Drained: at most one frame under the cap is held.
        EP_ASSERT (ep_frame_reader_buffered (reader)
                   < EP_FRAME_HEADER_SIZE + ep_frame_reader_cap (reader));
        if (offset == size) {
            //  The peer went quiet: a partial frame runs into its deadline.
            if (expired || ep_frame_reader_expire (reader, now + 2000000000) == 0)
                break;
            expired = true;
            continue;
        }
        size_t n = size - offset;
        if (chunked) {
            size_t most = s_rand (&state) % 4? 8: n;
            n = 1 + (size_t) (s_rand (&state) % (n < most? n: most));
        }
        size_t taken;
        if (chunked && s_rand (&state) % 2) {
            size_t room;
            uint8_t *space = ep_frame_reader_space (reader, &room);
            if (!space) {
                //  Drained and still refusing: next () must say why.
                EP_ASSERT (ep_frame_reader_next (reader, &result.error) == NULL);
                EP_ASSERT (result.error != EP_FRAME_OK);
                break;
            }
            EP_ASSERT (room > 0);
            EP_ASSERT (ep_frame_reader_allocated (reader)
                       <= 4 * ep_frame_reader_buffered (reader) + 2 * EP_FRAME_CHUNK);
            taken = n < room? n: room;
            memcpy (space, stream + offset, taken);
            ep_frame_reader_commit (reader, taken, now);
        }
        else
        if (ep_frame_reader_feed (reader, stream + offset, n, now, &taken) == -1) {
            EP_ASSERT (ep_frame_reader_next (reader, &result.error) == NULL);
            EP_ASSERT (result.error != EP_FRAME_OK);
            break;
        }
        //  A drained reader takes bytes unless it has an error to report.
        EP_ASSERT (taken > 0);
        offset += taken;
        now++;
    }
    //  What the queue sends reads back as the same frames.
    ep_frame_reader_t *check = ep_frame_reader_new (SIZE_MAX);
    size_t len;
    const uint8_t *pending = ep_frame_queue_peek (queue, &len);
    EP_ASSERT (len == zchunk_size (result.frames));
    EP_ASSERT (len == 0 || memcmp (pending, zchunk_data (result.frames), len) == 0);
    size_t taken;
    EP_ASSERT (ep_frame_reader_feed (check, pending, len, 0, &taken) == 0);
    size_t count = 0;
    Ep__Frame *frame;
    ep_frame_error_t error;
    while ((frame = ep_frame_reader_next (check, &error))) {
        ep__frame__free_unpacked (frame, NULL);
        count++;
    }
    EP_ASSERT (count == result.readable && taken == len);
    EP_ASSERT (error == (result.unreadable? EP_FRAME_MALFORMED: EP_FRAME_OK));
    ep_frame_queue_consume (queue, len);
    EP_ASSERT (ep_frame_queue_allocated (queue) == 0);
    ep_frame_reader_destroy (&check);
    ep_frame_queue_destroy (&queue);
    ep_frame_reader_destroy (&reader);
    return result;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    s_result_t whole = s_run (data + 1, size - 1, data [0], false);
    s_result_t chunked = s_run (data + 1, size - 1, data [0], true);
    //  Chunking changes nothing a peer can observe.
    EP_ASSERT (whole.error == chunked.error);
    EP_ASSERT (whole.count == chunked.count);
    EP_ASSERT (zchunk_size (whole.frames) == zchunk_size (chunked.frames));
    EP_ASSERT (zchunk_size (whole.frames) == 0
            || memcmp (zchunk_data (whole.frames), zchunk_data (chunked.frames),
                       zchunk_size (whole.frames)) == 0);
    zchunk_destroy (&whole.frames);
    zchunk_destroy (&chunked.frames);
    return 0;
}
