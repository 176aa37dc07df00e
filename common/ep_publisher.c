/*  ep_publisher.c: stamped, capped publishing with per-stream heartbeats. */
#include "ep_publisher.h"
#include <sodium.h>

#define STREAM_MAX 128          //  longest stream name, with its null

typedef struct {
    uint64_t seq;               //  last seq sent
    int64_t next_heartbeat_ms;  //  monotonic time the next heartbeat is due
    char name [STREAM_MAX];     //  the stream
    size_t name_len;            //  its length
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
    zsock_t *pub = zsock_new (ZMQ_PUB);
    EP_ASSERT (pub);
    zsock_set_sndhwm (pub, 100000);
    zsock_set_linger (pub, 1000);
    zsock_set_heartbeat_ivl (pub, 1000);
    zsock_set_heartbeat_timeout (pub, 3000);
    if (cert) {
        zcert_apply (cert, pub);
        zsock_set_curve_serverkey (pub, server_key);
    }
    if (zsock_connect (pub, "%s", endpoint) != 0) {
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

static s_stream_t *
s_stream (ep_publisher_t *self, const char *name)
{
    s_stream_t *stream = (s_stream_t *) zhashx_lookup (self->streams, name);
    if (!stream) {
        stream = (s_stream_t *) zmalloc (sizeof (s_stream_t));
        //  First heartbeat right away: subscribers waiting for one should
        //  not wait a whole interval.
        stream->next_heartbeat_ms = ep_mono_ms ();
        snprintf (stream->name, sizeof stream->name, "%s", name);
        stream->name_len = strlen (stream->name);
        zhashx_insert (self->streams, name, stream);
    }
    return stream;
}

void
ep_publisher_declare (ep_publisher_t *self, const char *stream)
{
    s_stream (self, stream);
}

//  Stamps meta on event and sends it; seq is the value to stamp.
static int
s_send (ep_publisher_t *self, const char *topic, const char *stream,
        uint64_t seq, Ep__Event *event)
{
    Ep__StreamMeta meta = EP__STREAM_META__INIT;
    meta.source_id = self->source_id;
    meta.has_epoch = true;
    meta.epoch = self->epoch;
    meta.stream = (char *) stream;
    meta.has_seq = true;
    meta.seq = seq;
    meta.has_timestamp_ms = true;
    meta.timestamp_ms = ep_wall_ms ();
    meta.has_epoch_started_ms = true;
    meta.epoch_started_ms = self->epoch_started_ms;
    Ep__StreamMeta *saved = event->meta;
    event->meta = &meta;
    //  ep_codec_pack's cap check, packing straight into a zmq_msg_t and
    //  sending the topic from our string: no zframe allocations per event.
    size_t size = protobuf_c_message_get_packed_size (&event->base);
    if (size > self->cap) {
        event->meta = saved;
        self->refused++;
        return -1;
    }
    zmq_msg_t body;
    EP_ASSERT (zmq_msg_init_size (&body, size) == 0);
    EP_ASSERT (protobuf_c_message_pack (&event->base, (uint8_t *) zmq_msg_data (&body)) == size);
    event->meta = saved;
    void *pub = zsock_resolve (self->pub);
    zmq_send (pub, topic, strlen (topic), ZMQ_SNDMORE);
    if (zmq_msg_send (&body, pub, 0) < 0)
        zmq_msg_close (&body);
    return 0;
}

int
ep_publisher_send (ep_publisher_t *self, const char *topic, Ep__Event *event)
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
    if (s_send (self, topic, stream->name, stream->seq + 1, event) != 0)
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
            s_send (self, topic, name, stream->seq, &event);
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

const char *
ep_publisher_source_id (ep_publisher_t *self)
{
    return self->source_id;
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
