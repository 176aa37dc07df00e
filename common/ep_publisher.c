/*  ep_publisher.c: stamped, capped publishing with per-stream heartbeats. */
#include "ep_endpoints.h"
#include "ep_publisher.h"
#include "ep_codec.h"
#include "ep_keys.h"
#include <sodium.h>

#define STREAM_MAX 128          //  longest stream name, with its null

//  StreamMeta fields 4 and 5 (seq, timestamp_ms) as tag + varint: at most.
#define META_VARYING_MAX (2 * (1 + 10))

typedef struct {
    uint64_t seq;               //  last seq sent
    int64_t next_heartbeat_ms;  //  monotonic time the next heartbeat is due
    char name [STREAM_MAX];     //  the stream
    size_t name_len;            //  its length
    size_t meta_head_len;       //  bytes in meta_head
    uint8_t meta_head [];       //  StreamMeta fields 1-3, packed: constant per stream
} s_stream_t;

struct _ep_publisher_t {
    zsock_t *pub;               //  PUB socket connected to the bus
    char *source_id;            //  "<service>-<instance>"
    uint64_t epoch;             //  random per start
    int64_t epoch_started_ms;   //  wall clock at start
    size_t cap;                 //  largest packed Event we send
    int64_t heartbeat_ms;       //  heartbeat interval
    zhashx_t *streams;          //  stream name -> s_stream_t
    s_stream_t *last;           //  the stream sent on last
    uint64_t refused;           //  events refused for size
    uint8_t meta_tail [11];     //  StreamMeta field 6, packed: constant per publisher
    size_t meta_tail_len;       //  bytes in meta_tail
};

int
ep_topic_stream (const char *topic, char *buf, size_t size)
{
    const char *dot = strchr (topic, '.');
    if (!dot || dot == topic || (size_t) (dot - topic) >= size)
        return -1;
    memcpy (buf, topic, dot - topic);
    buf [dot - topic] = 0;
    return 0;
}

char *
ep_source_id (const char *service, const char *instance_id)
{
    if (instance_id && *instance_id)
        return zsys_sprintf ("%s-%s", service, instance_id);
    char random [13];
    ep_random_hex (random, 6);
    return zsys_sprintf ("%s-%s", service, random);
}

ep_publisher_t *
ep_publisher_new (const char *endpoint, zcert_t *cert, const char *server_key,
                  const char *source_id, size_t cap)
{
    zsock_t *pub = ep_curve_client_socket (ZMQ_PUB, cert, server_key);
    if (!pub)
        return NULL;
    zsock_set_sndhwm (pub, 100000);
    zsock_set_linger (pub, 1000);
    if (ep_endpoints_connect (pub, endpoint) != 0) {
        zsock_destroy (&pub);
        return NULL;
    }
    ep_publisher_t *self = (ep_publisher_t *) zmalloc (sizeof (ep_publisher_t));
    self->pub = pub;
    self->source_id = strdup (source_id);
    EP_ASSERT (sodium_init () >= 0);
    do
        randombytes_buf (&self->epoch, sizeof self->epoch);
    while (self->epoch == 0);
    self->epoch_started_ms = ep_wall_ms ();
    uint8_t *tail = self->meta_tail;
    *tail++ = 6 << 3 | PROTOBUF_C_WIRE_TYPE_VARINT;
    tail = ep_codec_put_varint (tail, (uint64_t) self->epoch_started_ms);
    self->meta_tail_len = (size_t) (tail - self->meta_tail);
    self->cap = cap;
    self->heartbeat_ms = EP_HEARTBEAT_MS;
    self->streams = zhashx_new ();
    zhashx_set_destructor (self->streams, (czmq_destructor *) zstr_free);
    return self;
}

void
ep_publisher_destroy (ep_publisher_t **self_p)
{
    ep_publisher_t *self = *self_p;
    if (self) {
        zsock_destroy (&self->pub);
        zhashx_destroy (&self->streams);
        free (self->source_id);
        free (self);
        *self_p = NULL;
    }
}

//  Appends a length-delimited field (tag id) holding text at out.
static uint8_t *
s_put_string (uint8_t *out, unsigned id, const char *text, size_t len)
{
    *out++ = (uint8_t) (id << 3 | PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED);
    out = ep_codec_put_varint (out, len);
    memcpy (out, text, len);
    return out + len;
}

static s_stream_t *
s_stream (ep_publisher_t *self, const char *name)
{
    s_stream_t *stream = (s_stream_t *) zhashx_lookup (self->streams, name);
    if (!stream) {
        //  source_id, epoch and stream never change: packed once, here.
        size_t id_len = strlen (self->source_id);
        size_t head_max = (1 + 10 + id_len) + (1 + 10) + (1 + 10 + STREAM_MAX);
        stream = (s_stream_t *) zmalloc (sizeof (s_stream_t) + head_max);
        //  First heartbeat right away: subscribers waiting for one should
        //  not wait a whole interval.
        stream->next_heartbeat_ms = ep_mono_ms ();
        snprintf (stream->name, sizeof stream->name, "%s", name);
        stream->name_len = strlen (stream->name);
        uint8_t *head = s_put_string (stream->meta_head, 1, self->source_id, id_len);
        *head++ = 2 << 3 | PROTOBUF_C_WIRE_TYPE_VARINT;
        head = ep_codec_put_varint (head, self->epoch);
        head = s_put_string (head, 3, stream->name, stream->name_len);
        stream->meta_head_len = (size_t) (head - stream->meta_head);
        EP_ASSERT (stream->meta_head_len <= head_max);
        zhashx_insert (self->streams, name, stream);
    }
    return stream;
}

void
ep_publisher_declare (ep_publisher_t *self, const char *stream)
{
    s_stream (self, stream);
}

//  Stamps meta on event and sends it; seq is the value to stamp, event_id
//  the outbox's id of the event or NULL.
static int
s_send (ep_publisher_t *self, const char *topic, s_stream_t *stream,
        uint64_t seq, Ep__Event *event, const char *event_id)
{
    //  The StreamMeta by hand, as protobuf-c packs it (fields in order,
    //  each present): the stream's constant head, seq and timestamp, the
    //  publisher's constant tail. Packing it through protobuf-c cost as
    //  much as sending the event.
    int64_t now = ep_wall_ms ();
    uint8_t stack [512];
    size_t id_len = event_id? strlen (event_id): 0;
    size_t meta_max = stream->meta_head_len + META_VARYING_MAX + self->meta_tail_len
                    + (event_id? 1 + 10 + id_len: 0);
    uint8_t *meta = meta_max <= sizeof stack? stack: (uint8_t *) malloc (meta_max);
    EP_ASSERT (meta);
    memcpy (meta, stream->meta_head, stream->meta_head_len);
    uint8_t *p = meta + stream->meta_head_len;
    *p++ = 4 << 3 | PROTOBUF_C_WIRE_TYPE_VARINT;
    p = ep_codec_put_varint (p, seq);
    *p++ = 5 << 3 | PROTOBUF_C_WIRE_TYPE_VARINT;
    p = ep_codec_put_varint (p, (uint64_t) now);
    memcpy (p, self->meta_tail, self->meta_tail_len);
    p += self->meta_tail_len;
    if (event_id)
        p = s_put_string (p, 7, event_id, id_len);
    //  Packed straight into a zmq_msg_t, the topic sent from our string: no
    //  zframe allocations per event.
    zmq_msg_t body;
    int rc = ep_codec_pack_envelope (&event->base, 1, meta, (size_t) (p - meta), self->cap, &body);
    if (meta != stack)
        free (meta);
    if (rc == -2) {
        //  Unknown fields (a relayed event): protobuf-c packs it whole.
        Ep__StreamMeta fields = EP__STREAM_META__INIT;
        fields.source_id = self->source_id;
        fields.has_epoch = fields.has_seq = fields.has_timestamp_ms = true;
        fields.has_epoch_started_ms = true;
        fields.epoch = self->epoch;
        fields.stream = stream->name;
        fields.seq = seq;
        fields.timestamp_ms = now;
        fields.epoch_started_ms = self->epoch_started_ms;
        fields.event_id = (char *) event_id;
        Ep__StreamMeta *saved = event->meta;
        event->meta = &fields;
        rc = ep_codec_pack_msg (&event->base, self->cap, &body);
        event->meta = saved;
    }
    if (rc != 0) {
        self->refused++;
        return -1;
    }
    void *pub = zsock_resolve (self->pub);
    zmq_send (pub, topic, strlen (topic), ZMQ_SNDMORE);
    if (zmq_msg_send (&body, pub, 0) < 0)
        zmq_msg_close (&body);
    return 0;
}

int
ep_publisher_send (ep_publisher_t *self, const char *topic, Ep__Event *event)
{
    return ep_publisher_send_id (self, topic, event, NULL);
}

int
ep_publisher_send_id (ep_publisher_t *self, const char *topic, Ep__Event *event,
                      const char *event_id)
{
    //  Events mostly come in runs on one stream: when the topic is
    //  "<last stream>.", skip parsing it and hashing the name.
    s_stream_t *stream = self->last;
    if (!stream || strncmp (topic, stream->name, stream->name_len) != 0
    ||  topic [stream->name_len] != '.') {
        char name [STREAM_MAX];
        if (ep_topic_stream (topic, name, sizeof name) != 0)
            return -1;
        stream = s_stream (self, name);
        self->last = stream;
    }
    if (s_send (self, topic, stream, stream->seq + 1, event, event_id) != 0)
        return -1;
    stream->seq++;
    return 0;
}

int64_t
ep_publisher_tick (ep_publisher_t *self)
{
    int64_t now = ep_mono_ms ();
    int64_t next = self->heartbeat_ms;
    s_stream_t *stream = (s_stream_t *) zhashx_first (self->streams);
    for (; stream; stream = (s_stream_t *) zhashx_next (self->streams)) {
        if (now >= stream->next_heartbeat_ms) {
            const char *name = (const char *) zhashx_cursor (self->streams);
            char topic [160];
            snprintf (topic, sizeof topic, "%s.heartbeat", name);
            Ep__StreamHeartbeat heartbeat = EP__STREAM_HEARTBEAT__INIT;
            heartbeat.has_interval_ms = true;
            heartbeat.interval_ms = (uint32_t) self->heartbeat_ms;
            Ep__Event event = EP__EVENT__INIT;
            event.body_case = EP__EVENT__BODY_HEARTBEAT;
            event.heartbeat = &heartbeat;
            s_send (self, topic, stream, stream->seq, &event, NULL);
            stream->next_heartbeat_ms = now + self->heartbeat_ms;
        }
        int64_t due = stream->next_heartbeat_ms - now;
        if (due < next)
            next = due;
    }
    return next;
}

uint64_t
ep_publisher_seq (ep_publisher_t *self, const char *stream)
{
    s_stream_t *s = (s_stream_t *) zhashx_lookup (self->streams, stream);
    return s? s->seq: 0;
}

uint64_t
ep_publisher_refused (ep_publisher_t *self)
{
    return self->refused;
}

uint64_t
ep_publisher_epoch (ep_publisher_t *self)
{
    return self->epoch;
}

void
ep_publisher_set_heartbeat (ep_publisher_t *self, int64_t interval_ms)
{
    EP_ASSERT (interval_ms > 0);
    self->heartbeat_ms = interval_ms;
    s_stream_t *stream = (s_stream_t *) zhashx_first (self->streams);
    for (; stream; stream = (s_stream_t *) zhashx_next (self->streams))
        stream->next_heartbeat_ms = ep_mono_ms ();
}
