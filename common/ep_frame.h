/*  ep_frame.h: framing of the router-facing control channel (watchdog).

    On the wire each frame is a 4-byte big-endian length, then one protobuf
    ep.Frame of that length. This module is pure (bytes in, frames out; no
    sockets, no clock of its own) so that the watchdog (server) and the router
    agent (client) share it over TLS, and so that it can be fuzzed.

    The reader holds what a hostile or broken peer can make it hold in check:
    - a cap on one frame's length (16 KiB until JOINED, larger after), checked
      on the 4-byte header alone, before any of the body is accepted;
    - buffers that grow with the bytes that actually arrived, never with the
      length a peer announces, and are released when idle;
    - a per-frame deadline, counted from the frame's first byte, which the
      caller's timer enforces with ep_frame_reader_expire (a slowly trickled
      frame is closed rather than held open forever);
    - the count of bytes it holds, for a budget across all connections.
    Every error is fatal for the connection: it is sticky, and comes with a
    short name for metric labels and refusal events, and a sentence for logs.

    The output queue is bounded in bytes, so a peer that stops reading is
    closed at the cap instead of growing the watchdog's memory.
*/
#ifndef EP_FRAME_H_INCLUDED
#define EP_FRAME_H_INCLUDED

#include "ep_prelude.h"
#include "channel.pb-c.h"

//  Cap on one frame's length until the connection is JOINED.
#define EP_FRAME_PREJOIN_CAP        (16u * 1024u)
//  Default cap on one frame's length once JOINED (configurable).
#define EP_FRAME_JOINED_CAP         (4u * 1024u * 1024u)
//  Default time a frame may take from its first byte to its last.
#define EP_FRAME_DEFAULT_TIMEOUT_MS 10000
//  Bytes of the length header.
#define EP_FRAME_HEADER_SIZE        4
//  Buffers grow from, and read ahead by, this many bytes.
#define EP_FRAME_CHUNK              4096

//  Why a reader stopped. Each is fatal for the connection.
typedef enum {
    EP_FRAME_OK = 0,            //  no error: NULL from next () means "need more bytes"
    EP_FRAME_OVERSIZED,         //  announced length above the cap (seen in the header)
    EP_FRAME_MALFORMED,         //  the body is not a valid ep.Frame
    EP_FRAME_EMPTY,             //  length 0, or an ep.Frame with no body set
    EP_FRAME_DEADLINE           //  a frame did not complete within the timeout
} ep_frame_error_t;

//  The error's name for metric labels and refusal events: "ok", "oversized",
//  "malformed", "empty", "deadline".
const char *
    ep_frame_error_name (ep_frame_error_t error);

//  ---------------------------------------------------------------------------
//  Reader: one per connection.
//
//  Zero-copy use with SSL_read (edge-triggered):
//      while ((buf = ep_frame_reader_space (reader, &len))) {
//          int n = SSL_read (ssl, buf, len);       // stop on WANT_READ
//          ep_frame_reader_commit (reader, n, now_ms);
//          while ((frame = ep_frame_reader_next (reader, &error)))
//              handle (frame);                     // then ep__frame__free_unpacked
//          if (error) close ("refused", ep_frame_error_name (error));
//      }
//      re-arm the timer at ep_frame_reader_deadline (reader) (-1: none).
//  Draining next () after every commit keeps the reader at one incomplete
//  frame plus what one read brought; then space () is NULL only on an error.
//
//  Empty frames: a length of 0 and an ep.Frame with no body set are both
//  EP_FRAME_EMPTY. A frame means something only through its body (liveness
//  is Ping/Pong); a body this build does not know also decodes as no body,
//  and is refused the same way: peers speak the version agreed in Hello.

typedef struct _ep_frame_reader_t ep_frame_reader_t;

//  A reader refusing frames longer than cap bytes (after the header), with
//  the default frame timeout.
ep_frame_reader_t *
    ep_frame_reader_new (size_t cap);

void
    ep_frame_reader_destroy (ep_frame_reader_t **self_p);

//  Changes the cap, for frames whose header next () has not yet judged: raise
//  it when the connection JOINs, before calling next () again.
void
    ep_frame_reader_set_cap (ep_frame_reader_t *self, size_t cap);

size_t
    ep_frame_reader_cap (ep_frame_reader_t *self);

//  Changes the time a frame may take from its first byte (ms, > 0).
void
    ep_frame_reader_set_timeout (ep_frame_reader_t *self, int64_t timeout_ms);

//  Where the next read may write, and how much (*len > 0). Returns NULL with
//  *len 0 when the reader takes no bytes now: complete frames wait for
//  next (), or next () will report an error. Valid until the next call.
uint8_t *
    ep_frame_reader_space (ep_frame_reader_t *self, size_t *len);

//  Accepts n bytes written at space (), received at now_ms (monotonic).
void
    ep_frame_reader_commit (ep_frame_reader_t *self, size_t n, int64_t now_ms);

//  Copies up to len bytes in, received at now_ms; *consumed says how many.
//  Returns 0; when *consumed < len, call next () and feed the rest. Returns
//  -1 when the reader takes no more bytes because next () will report an
//  error (after any complete frames before it).
int
    ep_frame_reader_feed (ep_frame_reader_t *self, const uint8_t *data, size_t len,
                          int64_t now_ms, size_t *consumed);

//  The next complete frame (free with ep__frame__free_unpacked (f, NULL)), or
//  NULL with *error EP_FRAME_OK (need more bytes) or the error that stopped
//  the reader (every later call returns it too). error may be NULL.
Ep__Frame *
    ep_frame_reader_next (ep_frame_reader_t *self, ep_frame_error_t *error);

//  When the incomplete frame must be complete (its first byte's now_ms plus
//  the timeout), or -1 when no frame is partly read.
int64_t
    ep_frame_reader_deadline (ep_frame_reader_t *self);

//  For the caller's timer: returns -1 if at now_ms the incomplete frame is
//  past its deadline (the reader then takes no more bytes, and next ()
//  reports EP_FRAME_DEADLINE after the complete frames before it), else 0.
int
    ep_frame_reader_expire (ep_frame_reader_t *self, int64_t now_ms);

//  Bytes received and not yet returned as frames: bytes in flight.
size_t
    ep_frame_reader_buffered (ep_frame_reader_t *self);

//  Bytes of buffer currently allocated (0 when idle).
size_t
    ep_frame_reader_allocated (ep_frame_reader_t *self);

//  The error that stopped the reader (EP_FRAME_OK while it is working).
ep_frame_error_t
    ep_frame_reader_error (ep_frame_reader_t *self);

//  A sentence for logs about that error (lengths, cap, timeout); "" if none.
const char *
    ep_frame_reader_detail (ep_frame_reader_t *self);

//  ---------------------------------------------------------------------------
//  Writer.

//  Bytes frame takes on the wire: the header plus its packed length.
size_t
    ep_frame_wire_size (const Ep__Frame *frame);

//  Encodes frame with its header into a new buffer (*out, *len; caller
//  frees). Returns -1, with nothing allocated, if its packed length exceeds
//  cap. The frame must have a body (the peer would refuse it as empty).
int
    ep_frame_encode (const Ep__Frame *frame, size_t cap, uint8_t **out, size_t *len);

//  An output queue: encoded frames waiting for SSL_write, bounded in bytes.
//  peek () gives every pending byte, contiguous; the buffer may move on
//  push (), so use SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER (and
//  SSL_MODE_ENABLE_PARTIAL_WRITE); between consumes the pending bytes only
//  grow at the tail, so a retry after WANT_WRITE resends the same bytes.
typedef struct _ep_frame_queue_t ep_frame_queue_t;

//  A queue holding at most cap bytes of encoded frames.
ep_frame_queue_t *
    ep_frame_queue_new (size_t cap);

void
    ep_frame_queue_destroy (ep_frame_queue_t **self_p);

void
    ep_frame_queue_set_cap (ep_frame_queue_t *self, size_t cap);

//  Encodes frame (which must have a body) at the tail. Returns -1, with
//  nothing queued, if the queue would exceed its cap: the peer is not
//  reading, close it.
int
    ep_frame_queue_push (ep_frame_queue_t *self, const Ep__Frame *frame);

//  The pending bytes (*len of them), or NULL with *len 0 when empty. Valid
//  until the next push or consume.
const uint8_t *
    ep_frame_queue_peek (ep_frame_queue_t *self, size_t *len);

//  Drops the first n pending bytes (n <= pending), after a write took them.
void
    ep_frame_queue_consume (ep_frame_queue_t *self, size_t n);

//  Bytes pending.
size_t
    ep_frame_queue_size (ep_frame_queue_t *self);

//  Bytes of buffer allocated (0 when empty).
size_t
    ep_frame_queue_allocated (ep_frame_queue_t *self);

#endif
