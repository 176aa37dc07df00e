/*  ep_frame.c: length-prefixed ep.Frame reader and output queue.

    Both keep bytes in one linear buffer [head, fill) that grows with what
    arrives and is freed when it empties, so an idle connection holds no
    buffer at all. The reader also keeps scan, the start of the first frame
    not yet complete: everything in [head, scan) is whole frames waiting for
    next (), and [scan, fill) is the frame being read, whose first byte set
    the deadline. Caps are judged by next () on the frame at head, so a cap
    raised on JOIN applies to the frames after Hello even if they arrived
    in the same read.
*/
#include "ep_frame.h"
#include <inttypes.h>
#include <stdarg.h>

typedef struct {
    uint8_t *data;              //  the allocation; NULL when released
    size_t size;                //  bytes allocated
    size_t head;                //  first byte not yet consumed
    size_t fill;                //  end of the bytes held
} s_buf_t;

struct _ep_frame_reader_t {
    s_buf_t buf;                //  bytes received and not yet returned as frames
    size_t scan;                //  start of the first incomplete frame (head <= scan <= fill)
    size_t cap;                 //  longest frame length accepted
    int64_t timeout_ms;         //  time a frame may take from its first byte to its last
    int64_t started_ms;         //  when the incomplete frame's first byte came; -1: none
    bool late;                  //  the incomplete frame passed its deadline
    ep_frame_error_t error;     //  what stopped the reader; sticky
    char detail [200];          //  that error in a sentence, for logs
};

struct _ep_frame_queue_t {
    s_buf_t buf;                //  encoded frames; [head, fill) pending
    size_t cap;                 //  most bytes pending at once
};

const char *
ep_frame_error_name (ep_frame_error_t error)
{
    switch (error) {
        case EP_FRAME_OK:        return "ok";
        case EP_FRAME_OVERSIZED: return "oversized";
        case EP_FRAME_MALFORMED: return "malformed";
        case EP_FRAME_EMPTY:     return "empty";
        case EP_FRAME_DEADLINE:  return "deadline";
    }
    return "unknown";
}

//  ---------------------------------------------------------------------------
//  The shared buffer

static void
s_buf_release (s_buf_t *buf)
{
    free (buf->data);
    memset (buf, 0, sizeof (s_buf_t));
}

//  Moves the held bytes to the start; returns how far they moved.
static size_t
s_buf_compact (s_buf_t *buf)
{
    size_t shift = buf->head;
    if (shift) {
        memmove (buf->data, buf->data + shift, buf->fill - shift);
        buf->fill -= shift;
        buf->head = 0;
    }
    return shift;
}

static void
s_buf_resize (s_buf_t *buf, size_t size)
{
    EP_ASSERT (buf->head == 0 && size >= buf->fill && size > 0);
    uint8_t *data = (uint8_t *) realloc (buf->data, size);
    EP_ASSERT (data);
    buf->data = data;
    buf->size = size;
}

static uint32_t
s_get_length (const uint8_t *p)
{
    return ((uint32_t) p [0] << 24) | ((uint32_t) p [1] << 16)
         | ((uint32_t) p [2] << 8) | (uint32_t) p [3];
}

static void
s_put_length (uint8_t *p, uint32_t length)
{
    p [0] = (uint8_t) (length >> 24);
    p [1] = (uint8_t) (length >> 16);
    p [2] = (uint8_t) (length >> 8);
    p [3] = (uint8_t) length;
}

//  The length field is 32 bits: no cap above that means anything.
static size_t
s_clamp_cap (size_t cap)
{
    return cap > UINT32_MAX? UINT32_MAX: cap;
}

//  ---------------------------------------------------------------------------
//  Reader

ep_frame_reader_t *
ep_frame_reader_new (size_t cap)
{
    ep_frame_reader_t *self = (ep_frame_reader_t *) zmalloc (sizeof (ep_frame_reader_t));
    self->cap = s_clamp_cap (cap);
    self->timeout_ms = EP_FRAME_DEFAULT_TIMEOUT_MS;
    self->started_ms = -1;
    return self;
}

void
ep_frame_reader_destroy (ep_frame_reader_t **self_p)
{
    ep_frame_reader_t *self = *self_p;
    if (self) {
        s_buf_release (&self->buf);
        free (self);
        *self_p = NULL;
    }
}

void
ep_frame_reader_set_cap (ep_frame_reader_t *self, size_t cap)
{
    self->cap = s_clamp_cap (cap);
}

size_t
ep_frame_reader_cap (ep_frame_reader_t *self)
{
    return self->cap;
}

void
ep_frame_reader_set_timeout (ep_frame_reader_t *self, int64_t timeout_ms)
{
    EP_ASSERT (timeout_ms > 0);
    self->timeout_ms = timeout_ms;
}

uint8_t *
ep_frame_reader_space (ep_frame_reader_t *self, size_t *len)
{
    s_buf_t *buf = &self->buf;
    *len = 0;
    if (self->error || self->late)
        return NULL;
    if (self->scan > buf->head) {
        //  Whole frames wait for next (): take what fits, never grow.
        *len = buf->size - buf->fill;
        return *len? buf->data + buf->fill: NULL;
    }
    //  At most one incomplete frame is held: size the buffer for it.
    size_t partial = buf->fill - buf->head;
    uint64_t missing;               //  bytes the frame still needs
    if (partial < EP_FRAME_HEADER_SIZE)
        missing = EP_FRAME_HEADER_SIZE - partial;
    else {
        uint32_t length = s_get_length (buf->data + buf->head);
        if (length > self->cap)
            return NULL;            //  next () refuses it
        missing = (uint64_t) EP_FRAME_HEADER_SIZE + length - partial;
    }
    self->scan -= s_buf_compact (buf);
    //  Grow by what arrived (doubling) and never past the frame plus one
    //  chunk of read-ahead; shrink back when that is far less than we hold.
    uint64_t grow = buf->fill > EP_FRAME_CHUNK? buf->fill: EP_FRAME_CHUNK;
    if (grow > missing + EP_FRAME_CHUNK)
        grow = missing + EP_FRAME_CHUNK;
    size_t target = buf->fill + (size_t) grow;
    size_t room = buf->size - buf->fill;
    if (room < missing && room < EP_FRAME_CHUNK / 2)
        s_buf_resize (buf, target);
    else
    if (buf->size > 2 * target)
        s_buf_resize (buf, target);
    *len = buf->size - buf->fill;
    return buf->data + buf->fill;
}

void
ep_frame_reader_commit (ep_frame_reader_t *self, size_t n, int64_t now_ms)
{
    s_buf_t *buf = &self->buf;
    EP_ASSERT (n <= buf->size - buf->fill);
    if (n == 0)
        return;
    if (self->scan == buf->fill)
        self->started_ms = now_ms;      //  the first byte of a new frame
    buf->fill += n;
    //  Step over the frames this completed; the bytes after the last of them
    //  arrived now, so the next frame's clock starts now.
    while (buf->fill - self->scan >= EP_FRAME_HEADER_SIZE) {
        uint64_t total = (uint64_t) EP_FRAME_HEADER_SIZE
                       + s_get_length (buf->data + self->scan);
        if (buf->fill - self->scan < total)
            break;
        self->scan += (size_t) total;
        self->started_ms = self->scan < buf->fill? now_ms: -1;
    }
}

int
ep_frame_reader_feed (ep_frame_reader_t *self, const uint8_t *data, size_t len,
                      int64_t now_ms, size_t *consumed)
{
    *consumed = 0;
    while (*consumed < len) {
        size_t room;
        uint8_t *space = ep_frame_reader_space (self, &room);
        if (!space)
            break;
        size_t n = len - *consumed < room? len - *consumed: room;
        memcpy (space, data + *consumed, n);
        ep_frame_reader_commit (self, n, now_ms);
        *consumed += n;
    }
    if (*consumed < len
    && (self->error || self->late || self->scan == self->buf.head))
        return -1;                      //  next () will report an error
    return 0;
}

static Ep__Frame *
s_fail (ep_frame_reader_t *self, ep_frame_error_t error, ep_frame_error_t *error_p,
        const char *format, ...)
{
    self->error = error;
    va_list args;
    va_start (args, format);
    vsnprintf (self->detail, sizeof self->detail, format, args);
    va_end (args);
    if (error_p)
        *error_p = error;
    return NULL;
}

Ep__Frame *
ep_frame_reader_next (ep_frame_reader_t *self, ep_frame_error_t *error_p)
{
    s_buf_t *buf = &self->buf;
    if (error_p)
        *error_p = self->error;
    if (self->error)
        return NULL;
    if (buf->fill - buf->head >= EP_FRAME_HEADER_SIZE) {
        uint32_t length = s_get_length (buf->data + buf->head);
        if (length > self->cap)
            return s_fail (self, EP_FRAME_OVERSIZED, error_p,
                "peer announced a frame of %" PRIu32 " bytes, above the cap of %zu; "
                "refused before its body (a legitimate peer must send smaller frames)",
                length, self->cap);
        if (length == 0)
            return s_fail (self, EP_FRAME_EMPTY, error_p,
                "peer sent a frame of length 0 (every frame must carry a body)");
        if (buf->head < self->scan) {
            Ep__Frame *frame = ep__frame__unpack (
                NULL, length, buf->data + buf->head + EP_FRAME_HEADER_SIZE);
            buf->head += EP_FRAME_HEADER_SIZE + length;
            if (buf->head == buf->fill) {
                s_buf_release (buf);    //  idle: hold no memory
                self->scan = 0;
            }
            if (!frame)
                return s_fail (self, EP_FRAME_MALFORMED, error_p,
                    "peer sent a frame of %" PRIu32 " bytes that is not a valid ep.Frame "
                    "(corrupt, or not this protocol)", length);
            if (frame->body_case == EP__FRAME__BODY__NOT_SET) {
                ep__frame__free_unpacked (frame, NULL);
                return s_fail (self, EP_FRAME_EMPTY, error_p,
                    "peer sent a frame of %" PRIu32 " bytes with no body this version "
                    "knows (check the protocol version it announced in Hello)", length);
            }
            return frame;
        }
    }
    if (self->late)
        return s_fail (self, EP_FRAME_DEADLINE, error_p,
            "peer did not complete a frame within %" PRId64 " ms of its first byte "
            "(%zu bytes of it arrived)", self->timeout_ms, buf->fill - self->scan);
    return NULL;
}

int64_t
ep_frame_reader_deadline (ep_frame_reader_t *self)
{
    if (self->error || self->started_ms < 0)
        return -1;
    return self->started_ms + self->timeout_ms;
}

int
ep_frame_reader_expire (ep_frame_reader_t *self, int64_t now_ms)
{
    if (!self->late && !self->error && self->started_ms >= 0
    &&  now_ms >= self->started_ms + self->timeout_ms)
        self->late = true;
    return self->late? -1: 0;
}

size_t
ep_frame_reader_buffered (ep_frame_reader_t *self)
{
    return self->buf.fill - self->buf.head;
}

size_t
ep_frame_reader_allocated (ep_frame_reader_t *self)
{
    return self->buf.size;
}

ep_frame_error_t
ep_frame_reader_error (ep_frame_reader_t *self)
{
    return self->error;
}

const char *
ep_frame_reader_detail (ep_frame_reader_t *self)
{
    return self->detail;
}

//  ---------------------------------------------------------------------------
//  Writer

size_t
ep_frame_wire_size (const Ep__Frame *frame)
{
    return EP_FRAME_HEADER_SIZE + ep__frame__get_packed_size (frame);
}

//  Writes frame, packed_size bytes long, with its header at out.
static void
s_pack (const Ep__Frame *frame, size_t packed_size, uint8_t *out)
{
    s_put_length (out, (uint32_t) packed_size);
    size_t packed = ep__frame__pack (frame, out + EP_FRAME_HEADER_SIZE);
    EP_ASSERT (packed == packed_size);
}

int
ep_frame_encode (const Ep__Frame *frame, size_t cap, uint8_t **out, size_t *len)
{
    EP_ASSERT (frame->body_case != EP__FRAME__BODY__NOT_SET);
    size_t packed_size = ep__frame__get_packed_size (frame);
    if (packed_size > s_clamp_cap (cap))
        return -1;
    *len = EP_FRAME_HEADER_SIZE + packed_size;
    *out = (uint8_t *) malloc (*len);
    EP_ASSERT (*out);
    s_pack (frame, packed_size, *out);
    return 0;
}

ep_frame_queue_t *
ep_frame_queue_new (size_t cap)
{
    ep_frame_queue_t *self = (ep_frame_queue_t *) zmalloc (sizeof (ep_frame_queue_t));
    self->cap = cap;
    return self;
}

void
ep_frame_queue_destroy (ep_frame_queue_t **self_p)
{
    ep_frame_queue_t *self = *self_p;
    if (self) {
        s_buf_release (&self->buf);
        free (self);
        *self_p = NULL;
    }
}

void
ep_frame_queue_set_cap (ep_frame_queue_t *self, size_t cap)
{
    self->cap = cap;
}

int
ep_frame_queue_push (ep_frame_queue_t *self, const Ep__Frame *frame)
{
    EP_ASSERT (frame->body_case != EP__FRAME__BODY__NOT_SET);
    s_buf_t *buf = &self->buf;
    size_t packed_size = ep__frame__get_packed_size (frame);
    size_t pending = buf->fill - buf->head;
    if (packed_size > UINT32_MAX
    ||  pending > self->cap
    ||  packed_size + EP_FRAME_HEADER_SIZE > self->cap - pending)
        return -1;
    size_t need = EP_FRAME_HEADER_SIZE + packed_size;
    if (buf->size - buf->fill < need) {
        s_buf_compact (buf);
        if (buf->size - buf->fill < need) {
            //  Double, within the cap, so that many small pushes copy little.
            size_t target = buf->size * 2 > EP_FRAME_CHUNK? buf->size * 2: EP_FRAME_CHUNK;
            if (target > self->cap)
                target = self->cap;
            if (target < buf->fill + need)
                target = buf->fill + need;
            s_buf_resize (buf, target);
        }
    }
    s_pack (frame, packed_size, buf->data + buf->fill);
    buf->fill += need;
    return 0;
}

const uint8_t *
ep_frame_queue_peek (ep_frame_queue_t *self, size_t *len)
{
    *len = self->buf.fill - self->buf.head;
    return *len? self->buf.data + self->buf.head: NULL;
}

void
ep_frame_queue_consume (ep_frame_queue_t *self, size_t n)
{
    s_buf_t *buf = &self->buf;
    EP_ASSERT (n <= buf->fill - buf->head);
    buf->head += n;
    size_t pending = buf->fill - buf->head;
    if (pending == 0)
        s_buf_release (buf);            //  idle: hold no memory
    else
    if (buf->size > 4 * EP_FRAME_CHUNK && pending < buf->size / 4) {
        //  A large burst went out and the queue never emptied: shrink.
        s_buf_compact (buf);
        s_buf_resize (buf, pending * 2 > EP_FRAME_CHUNK? pending * 2: EP_FRAME_CHUNK);
    }
}

size_t
ep_frame_queue_size (ep_frame_queue_t *self)
{
    return self->buf.fill - self->buf.head;
}

size_t
ep_frame_queue_allocated (ep_frame_queue_t *self)
{
    return self->buf.size;
}
