/*  hub.c: the ring of recent events and the per-stream queues (hub.h). */
#include "hub.h"
#include <pthread.h>
#include <time.h>

typedef struct {
    uint64_t seq;               //  its id's sequence number
    int64_t wall_ms;            //  when it was published
    char *data;                 //  its JSON, one line
    size_t size;                //  strlen (data)
} s_entry_t;

struct _hub_stream_t {
    void *handle;               //  the HTTP side's connection
    ep_evmatch_t *match;        //  which events it takes (NULL: all)
    char *buffer;               //  queued bytes, from offset to size
    size_t offset;              //  first byte not yet read
    size_t size;                //  bytes in buffer
    size_t capacity;            //  bytes allocated
    bool asleep;                //  the HTTP side waits for a wake
    bool ending;                //  end once the queue is read (dropped, shutdown)
    bool partial;               //  what was read so far ends inside an event
    int64_t last_ms;            //  when something was last queued
    void *cursor;               //  its place in the hub's list
};

struct _hub_t {
    hub_config_t config;        //  bounds and epoch
    pthread_mutex_t lock;       //  the bus side and the HTTP side share the hub
    hub_handle_fn *sleep;       //  suspends a stream's connection
    hub_handle_fn *wake;        //  resumes it
    void *arg;                  //  for sleep and wake
    s_entry_t *ring;            //  recent events, ring_events slots
    size_t head;                //  slot of the oldest held
    size_t count;               //  events held
    size_t bytes;               //  bytes of JSON held
    uint64_t seq;               //  the last id given
    zlistx_t *streams;          //  open streams (hub_stream_t *, not owned)
    uint64_t dropped;           //  streams dropped at their bound
    bool shutdown;              //  no new stream lives on
};

void
hub_config_defaults (hub_config_t *config)
{
    memset (config, 0, sizeof *config);
    config->epoch = 1;
    config->ring_events = 10000;
    config->ring_bytes = 16u * 1024u * 1024u;
    config->stream_bytes = 1024u * 1024u;
    config->keepalive_ms = 15000;
}

hub_t *
hub_new (const hub_config_t *config, hub_handle_fn *sleep, hub_handle_fn *wake, void *arg)
{
    EP_ASSERT (config && config->ring_events > 0 && config->epoch);
    hub_t *self = (hub_t *) zmalloc (sizeof (hub_t));
    self->config = *config;
    EP_ASSERT (pthread_mutex_init (&self->lock, NULL) == 0);
    self->sleep = sleep;
    self->wake = wake;
    self->arg = arg;
    self->ring = (s_entry_t *) calloc (config->ring_events, sizeof (s_entry_t));
    EP_ASSERT (self->ring);
    self->streams = zlistx_new ();
    return self;
}

static void
s_stream_free (hub_stream_t *stream)
{
    ep_evmatch_destroy (&stream->match);
    free (stream->buffer);
    free (stream);
}

void
hub_destroy (hub_t **self_p)
{
    hub_t *self = *self_p;
    if (self) {
        hub_stream_t *stream;
        while ((stream = (hub_stream_t *) zlistx_detach (self->streams, NULL)))
            s_stream_free (stream);
        zlistx_destroy (&self->streams);
        for (size_t i = 0; i < self->count; i++)
            free (self->ring [(self->head + i) % self->config.ring_events].data);
        free (self->ring);
        pthread_mutex_destroy (&self->lock);
        free (self);
        *self_p = NULL;
    }
}

//  Appends size bytes to stream's queue; past its bound the stream is
//  dropped instead (queue freed, a "dropped" event left) unless force.
static void
s_queue (hub_t *self, hub_stream_t *stream, const char *data, size_t size, int64_t now, bool force)
{
    if (stream->ending && !force)
        return;
    if (stream->offset && stream->offset == stream->size)
        stream->offset = stream->size = 0;
    size_t queued = stream->size - stream->offset;
    if (!force && queued + size > self->config.stream_bytes) {
        char notice [256];
        int length = snprintf (notice, sizeof notice,
            "event: dropped\ndata: {\"reason\":\"slow-reader\",\"queued_bytes\":%zu,\"bound_bytes\":%zu,"
            "\"last_seq\":%" PRIu64 "}\n\n", queued, self->config.stream_bytes, self->seq);
        //  The rest of an event the reader has begun stays, so the notice
        //  starts on an event boundary (else the reader sees one garbled
        //  event and no notice).
        char *end = stream->partial? memmem (stream->buffer + stream->offset,
                                              stream->size - stream->offset, "\n\n", 2): NULL;
        if (end)
            stream->size = (size_t) (end + 2 - stream->buffer);
        else
            stream->offset = stream->size = 0;
        self->dropped++;
        s_queue (self, stream, notice, (size_t) length, now, true);
        stream->ending = true;
        return;
    }
    if (stream->size + size > stream->capacity || stream->offset > stream->capacity / 2) {
        if (stream->buffer)     //  a fresh stream has none yet (memmove of NULL is undefined)
            memmove (stream->buffer, stream->buffer + stream->offset, stream->size - stream->offset);
        stream->size -= stream->offset;
        stream->offset = 0;
        if (stream->size + size > stream->capacity) {
            size_t capacity = stream->capacity? stream->capacity: 4096;
            while (capacity < stream->size + size)
                capacity *= 2;
            stream->buffer = (char *) realloc (stream->buffer, capacity);
            EP_ASSERT (stream->buffer);
            stream->capacity = capacity;
        }
    }
    memcpy (stream->buffer + stream->size, data, size);
    stream->size += size;
    stream->last_ms = now;
    if (stream->asleep) {
        stream->asleep = false;
        self->wake (self->arg, stream->handle);
    }
}

//  The SSE frame of one event: its id, then its JSON as one data line.
static char *
s_frame (hub_t *self, uint64_t seq, const char *data, size_t *size)
{
    char *frame = zsys_sprintf ("id: %016" PRIx64 "-%" PRIu64 "\ndata: %s\n\n", self->config.epoch, seq, data);
    *size = strlen (frame);
    return frame;
}

//  Keeps the event in the ring, evicting the oldest beyond the bounds.
static void
s_ring_add (hub_t *self, uint64_t seq, int64_t wall_ms, char *data, size_t size)
{
    size_t slots = self->config.ring_events;
    while (self->count && (self->count == slots || self->bytes + size > self->config.ring_bytes)) {
        s_entry_t *oldest = &self->ring [self->head];
        self->bytes -= oldest->size;
        free (oldest->data);
        oldest->data = NULL;
        self->head = (self->head + 1) % slots;
        self->count--;
    }
    s_entry_t *entry = &self->ring [(self->head + self->count) % slots];
    entry->seq = seq;
    entry->wall_ms = wall_ms;
    entry->data = data;
    entry->size = size;
    self->count++;
    self->bytes += size;
}

uint64_t
hub_publish (hub_t *self, json_t *event, int64_t wall_ms, int64_t now)
{
    EP_ASSERT (self && event);
    char *data = json_dumps (event, JSON_COMPACT);
    EP_ASSERT (data);
    size_t size = strlen (data), frame_size;
    pthread_mutex_lock (&self->lock);
    uint64_t seq = ++self->seq;
    char *frame = s_frame (self, seq, data, &frame_size);
    for (hub_stream_t *stream = (hub_stream_t *) zlistx_first (self->streams); stream;
         stream = (hub_stream_t *) zlistx_next (self->streams))
        if (!stream->match || ep_evmatch_match (stream->match, event))
            s_queue (self, stream, frame, frame_size, now, false);
    s_ring_add (self, seq, wall_ms, data, size);
    pthread_mutex_unlock (&self->lock);
    free (frame);
    return seq;
}

int64_t
hub_tick (hub_t *self, int64_t now)
{
    EP_ASSERT (self);
    int64_t next = now + self->config.keepalive_ms;
    pthread_mutex_lock (&self->lock);
    for (hub_stream_t *stream = (hub_stream_t *) zlistx_first (self->streams); stream;
         stream = (hub_stream_t *) zlistx_next (self->streams)) {
        if (now - stream->last_ms >= self->config.keepalive_ms)
            s_queue (self, stream, ": keepalive\n\n", 13, now, false);
        if (stream->last_ms + self->config.keepalive_ms < next)
            next = stream->last_ms + self->config.keepalive_ms;
    }
    pthread_mutex_unlock (&self->lock);
    return next;
}

int
hub_parse_id (const char *text, uint64_t *epoch, uint64_t *seq)
{
    if (!text || strlen (text) < 18 || strlen (text) > 40 || text [16] != '-')
        return -1;
    uint64_t e = 0, s = 0;
    for (int i = 0; i < 16; i++) {
        int c = tolower ((unsigned char) text [i]);
        int digit = isdigit (c)? c - '0': (c >= 'a' && c <= 'f')? c - 'a' + 10: -1;
        if (digit < 0)
            return -1;
        e = e * 16 + (uint64_t) digit;
    }
    for (const char *c = text + 17; *c; c++) {
        if (!isdigit ((unsigned char) *c) || s > (UINT64_MAX - 9) / 10)
            return -1;
        s = s * 10 + (uint64_t) (*c - '0');
    }
    *epoch = e;
    *seq = s;
    return 0;
}

static void
s_rfc3339 (int64_t wall_ms, char *out, size_t size)
{
    time_t seconds = (time_t) (wall_ms / 1000);
    struct tm tm;
    gmtime_r (&seconds, &tm);
    char date [32];
    strftime (date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf (out, size, "%s.%03dZ", date, (int) (wall_ms % 1000));
}

//  Queues what a resume from (epoch, seq) needs: a "missed" event if the
//  ring cannot serve it, then the events after it that the stream takes.
static void
s_resume (hub_t *self, hub_stream_t *stream, const char *last_event_id, int64_t now)
{
    uint64_t epoch = 0, seq = 0;
    bool parsed = hub_parse_id (last_event_id, &epoch, &seq) == 0;
    uint64_t first = self->count? self->ring [self->head].seq: self->seq + 1;
    if (parsed && epoch == self->config.epoch && seq > self->seq)
        return;                 //  an id we never gave: nothing to replay
    uint64_t from = first;      //  first seq to replay
    if (parsed && epoch == self->config.epoch && seq + 1 >= first)
        from = seq + 1;
    else {
        //  Too old, another epoch (a restart) or an id not ours: say what
        //  is lost, then replay everything held.
        const char *reason = !parsed? "unknown-id": epoch != self->config.epoch? "restart": "too-old";
        uint64_t missed = epoch == self->config.epoch? first - 1 - seq: first - 1;
        char since [40], until [40], notice [512];
        s_rfc3339 (epoch == self->config.epoch? now: self->config.started_wall_ms, since, sizeof since);
        //  now is the tick clock, not a wall time: an empty ring ends the gap at this epoch's start
        s_rfc3339 (self->count? self->ring [self->head].wall_ms: self->config.started_wall_ms, until, sizeof until);
        if (epoch == self->config.epoch)    //  we do not keep when evicted events were published
            snprintf (since, sizeof since, "unknown");
        int length = snprintf (notice, sizeof notice,
            "event: missed\ndata: {\"missed\":%" PRIu64 ",\"exact\":%s,\"reason\":\"%s\",\"since_id\":\"%s\","
            "\"since\":\"%s\",\"until\":\"%s\",\"epoch\":\"%016" PRIx64 "\"}\n\n",
            missed, streq (reason, "too-old")? "true": "false", reason, parsed? last_event_id: "",
            since, until, self->config.epoch);
        s_queue (self, stream, notice, (size_t) length, now, false);
    }
    for (size_t i = 0; i < self->count && !stream->ending; i++) {
        s_entry_t *entry = &self->ring [(self->head + i) % self->config.ring_events];
        if (entry->seq < from)
            continue;
        bool take = !stream->match;
        if (!take) {
            json_t *event = json_loads (entry->data, 0, NULL);
            take = event && ep_evmatch_match (stream->match, event);
            json_decref (event);
        }
        if (take) {
            size_t size;
            char *frame = s_frame (self, entry->seq, entry->data, &size);
            s_queue (self, stream, frame, size, now, false);
            free (frame);
        }
    }
}

hub_stream_t *
hub_open (hub_t *self, ep_evmatch_t *match, const char *last_event_id, void *handle, int64_t now)
{
    EP_ASSERT (self);
    hub_stream_t *stream = (hub_stream_t *) zmalloc (sizeof (hub_stream_t));
    stream->handle = handle;
    stream->match = match;
    stream->last_ms = now;
    pthread_mutex_lock (&self->lock);
    //  A first line at once: proxies and browsers see the stream is open.
    s_queue (self, stream, ": edgeplane-console\n\n", 21, now, false);
    if (last_event_id)
        s_resume (self, stream, last_event_id, now);
    stream->ending |= self->shutdown;
    stream->cursor = zlistx_add_end (self->streams, stream);
    pthread_mutex_unlock (&self->lock);
    return stream;
}

hub_read_t
hub_read (hub_t *self, hub_stream_t *stream, char *buffer, size_t max, size_t *copied)
{
    EP_ASSERT (self && stream);
    hub_read_t result;
    pthread_mutex_lock (&self->lock);
    size_t queued = stream->size - stream->offset;
    *copied = queued < max? queued: max;
    if (*copied) {
        memcpy (buffer, stream->buffer + stream->offset, *copied);
        stream->offset += *copied;
        //  Every event ends in a blank line ("\n\n").
        stream->partial = *copied < 2 || buffer [*copied - 1] != '\n' || buffer [*copied - 2] != '\n';
        result = HUB_DATA;
    }
    else
    if (stream->ending)
        result = HUB_END;
    else {
        stream->asleep = true;
        self->sleep (self->arg, stream->handle);
        result = HUB_EMPTY;
    }
    pthread_mutex_unlock (&self->lock);
    return result;
}

void
hub_close (hub_t *self, hub_stream_t **stream_p)
{
    EP_ASSERT (self);
    hub_stream_t *stream = *stream_p;
    if (stream) {
        pthread_mutex_lock (&self->lock);
        zlistx_detach (self->streams, stream->cursor);
        pthread_mutex_unlock (&self->lock);
        s_stream_free (stream);
        *stream_p = NULL;
    }
}

void
hub_shutdown (hub_t *self)
{
    EP_ASSERT (self);
    pthread_mutex_lock (&self->lock);
    self->shutdown = true;
    for (hub_stream_t *stream = (hub_stream_t *) zlistx_first (self->streams); stream;
         stream = (hub_stream_t *) zlistx_next (self->streams)) {
        stream->ending = true;
        if (stream->asleep) {
            stream->asleep = false;
            self->wake (self->arg, stream->handle);
        }
    }
    pthread_mutex_unlock (&self->lock);
}

size_t
hub_streams (hub_t *self)
{
    pthread_mutex_lock (&self->lock);
    size_t n = zlistx_size (self->streams);
    pthread_mutex_unlock (&self->lock);
    return n;
}

uint64_t
hub_dropped (hub_t *self)
{
    pthread_mutex_lock (&self->lock);
    uint64_t n = self->dropped;
    pthread_mutex_unlock (&self->lock);
    return n;
}

uint64_t
hub_seq (hub_t *self)
{
    pthread_mutex_lock (&self->lock);
    uint64_t n = self->seq;
    pthread_mutex_unlock (&self->lock);
    return n;
}

uint64_t
hub_epoch (hub_t *self)
{
    return self->config.epoch;
}
