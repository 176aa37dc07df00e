/*  ep_subscriber.c: SUB socket + tracker + capped decoding. */
#include "ep_endpoints.h"
#include "ep_subscriber.h"
#include "ep_arena.h"
#include "ep_codec.h"
#include "ep_dedupe.h"
#include "ep_keys.h"
#include "ep_publisher.h"
#include <poll.h>

typedef struct {
    char *topic;                //  its topic
    Ep__Event *event;           //  the decoded event
} s_pending_t;

struct _ep_subscriber_t {
    zsock_t *sub;               //  SUB socket on the bus XPUB side
    char *endpoint;             //  for error messages
    size_t cap;                 //  largest Event we decode
    ep_tracker_t *tracker;      //  continuity state
    ep_dedupe_t *dedupe;        //  event ids seen last (outbox resends dropped)
    ep_series_t *m_ids;         //  edgeplane_dedupe_ids{subscriber}, or NULL
    ep_series_t *m_capacity;    //  edgeplane_dedupe_capacity{subscriber}, or NULL
    ep_series_t *m_resent;      //  edgeplane_dedupe_resent_total{subscriber}, or NULL
    bool keep_resent;           //  deliver resends too (ep_subscriber_set_dedupe)
    zlistx_t *pending;          //  events received while waiting for a stream
    uint64_t malformed;         //  undecodable messages dropped
    int64_t next_tick_ms;       //  when the silence check is next due
    int rcvtimeo;               //  ZMQ_RCVTIMEO last set on sub (-1: libzmq's default)
    ep_arena_t *arena;          //  the event recv or read last returned, decoded
    Ep__Event *held;            //  or that event, from pending, on the heap
};

//  Decoded events are small; a block this size holds one without a
//  system allocation, and it grows up to ARENA_MAX to fit larger ones.
#define ARENA_BLOCK 4096
#define ARENA_MAX (256 * 1024)

static void
s_pending_destroy (void **item)
{
    s_pending_t *pending = (s_pending_t *) *item;
    if (pending) {
        free (pending->topic);
        ep__event__free_unpacked (pending->event, NULL);
        free (pending);
        *item = NULL;
    }
}

ep_subscriber_t *
ep_subscriber_new (const char *endpoint, zcert_t *cert, const char *server_key,
                   size_t cap, ep_tracker_report_fn *report, void *arg)
{
    zsock_t *sub = ep_curve_client_socket (ZMQ_SUB, cert, server_key);
    if (!sub)
        return NULL;
    zsock_set_rcvhwm (sub, 100000);
    zsock_set_maxmsgsize (sub, (int64_t) cap + 1024);
    if (ep_endpoints_connect (sub, endpoint) != 0) {
        zsock_destroy (&sub);
        return NULL;
    }
    ep_subscriber_t *self = (ep_subscriber_t *) zmalloc (sizeof (ep_subscriber_t));
    self->sub = sub;
    self->endpoint = strdup (endpoint);
    self->cap = cap;
    self->tracker = ep_tracker_new (ep_wall_ms (), 3 * EP_HEARTBEAT_MS + 500, report, arg);
    self->dedupe = ep_dedupe_new (EP_DEDUPE_WINDOW);
    self->pending = zlistx_new ();
    zlistx_set_destructor (self->pending, s_pending_destroy);
    self->next_tick_ms = ep_mono_ms () + EP_HEARTBEAT_MS;
    self->arena = ep_arena_new (ARENA_BLOCK, ARENA_MAX);
    self->rcvtimeo = -1;
    return self;
}

//  Frees the event recv or read returned last: the caller is done with it.
static void
s_release (ep_subscriber_t *self)
{
    if (self->held) {
        ep__event__free_unpacked (self->held, NULL);
        self->held = NULL;
    }
    ep_arena_reset (self->arena);
}

void
ep_subscriber_destroy (ep_subscriber_t **self_p)
{
    ep_subscriber_t *self = *self_p;
    if (self) {
        s_release (self);
        ep_arena_destroy (&self->arena);
        zsock_destroy (&self->sub);
        ep_tracker_destroy (&self->tracker);
        ep_dedupe_destroy (&self->dedupe);
        zlistx_destroy (&self->pending);
        free (self->endpoint);
        free (self);
        *self_p = NULL;
    }
}

//  Subscribes (on) or unsubscribes prefix. A subscription to part of a
//  stream ("connect.router-to-ctrl") also takes that stream's heartbeats:
//  they show the stream is live and the publisher is not silent (a
//  filtered subscriber judges no gaps); unsubscribing undoes that too.
static void
s_filter (ep_subscriber_t *self, const char *prefix, bool on)
{
    void (*set) (void *, const char *) = on? zsock_set_subscribe: zsock_set_unsubscribe;
    set (self->sub, prefix);
    if (on)
        ep_tracker_subscribe (self->tracker, prefix);
    else
        ep_tracker_unsubscribe (self->tracker, prefix);
    char stream [128];
    if (ep_topic_stream (prefix, stream, sizeof stream) == 0
    &&  !ep_tracker_whole (self->tracker, stream)) {
        char heartbeat [160];
        snprintf (heartbeat, sizeof heartbeat, "%s.heartbeat", stream);
        set (self->sub, heartbeat);
    }
}

void
ep_subscriber_subscribe (ep_subscriber_t *self, const char *prefix)
{
    s_filter (self, prefix, true);
}

void
ep_subscriber_unsubscribe (ep_subscriber_t *self, const char *prefix)
{
    s_filter (self, prefix, false);
}

//  Refreshes the window's gauges, when exported, and counts resent more
//  resends dropped: two atomic stores per event that carries an id.
static void
s_dedupe_gauges (ep_subscriber_t *self, uint64_t resent)
{
    if (self->m_ids) {
        ep_series_set (self->m_ids, (double) ep_dedupe_size (self->dedupe));
        ep_series_set (self->m_capacity, (double) ep_dedupe_window (self->dedupe));
        if (resent)
            ep_series_add (self->m_resent, (double) resent);
    }
}

//  Reads one message with flags (0 or ZMQ_DONTWAIT) and handles it as
//  ep_subscriber_read does, at monotonic time now_ms. *got says whether a
//  message was read at all. Frames go straight into zmq_msg_t on the stack
//  and are decoded from there into the arena, which must be empty: no
//  system allocation per message on the hot path. An event returned lives
//  in the arena until the caller's next call (s_release).
static Ep__Event *
s_read (ep_subscriber_t *self, int flags, char **topic_p, bool *got, int64_t now_ms)
{
    void *sock = zsock_resolve (self->sub);
    zmq_msg_t parts [2];
    zmq_msg_init (&parts [0]);
    *got = zmq_msg_recv (&parts [0], sock, flags) >= 0;
    if (!*got) {
        zmq_msg_close (&parts [0]);
        return NULL;
    }
    //  Read every frame of the message, keeping the first two.
    int count = 1;
    bool more = zmq_msg_more (&parts [0]);
    bool interrupted = false;
    while (more) {
        zmq_msg_t extra;
        zmq_msg_t *into = count < 2? &parts [count]: &extra;
        zmq_msg_init (into);
        if (zmq_msg_recv (into, sock, 0) < 0) {
            zmq_msg_close (into);
            interrupted = true;
            break;
        }
        more = zmq_msg_more (into);
        if (into == &extra)
            zmq_msg_close (&extra);
        count++;
    }
    if (interrupted) {
        //  As zmsg_recv did: what was read is dropped, not counted.
        for (int i = 0; i < (count < 2? count: 2); i++)
            zmq_msg_close (&parts [i]);
        return NULL;
    }
    Ep__Event *event = NULL;
    if (count == 2 && !more) {
        char err [256];
        event = (Ep__Event *) ep_codec_unpack_in (&ep__event__descriptor,
                                                  zmq_msg_data (&parts [1]), zmq_msg_size (&parts [1]),
                                                  self->cap, ep_arena_allocator (self->arena),
                                                  self->endpoint, err, sizeof err);
    }
    Ep__StreamMeta *meta = event? event->meta: NULL;
    bool valid = meta && meta->source_id && meta->stream && meta->has_seq && meta->has_epoch;
    bool deliver = false;
    if (!valid)
        self->malformed++;
    else {
        bool heartbeat = event->body_case == EP__EVENT__BODY_HEARTBEAT;
        bool fresh = ep_tracker_observe (self->tracker, meta->source_id, meta->stream,
                                         meta->epoch, meta->epoch_started_ms, meta->seq,
                                         heartbeat, now_ms);
        deliver = fresh && !heartbeat;
        //  An outbox's resend after a restart comes in a new epoch, so the
        //  tracker takes it as new: its event id says it is not.
        if (deliver && meta->event_id && !self->keep_resent) {
            deliver = ep_dedupe_fresh (self->dedupe, meta->event_id);
            s_dedupe_gauges (self, deliver? 0: 1);
        }
    }
    if (deliver && topic_p) {
        size_t size = zmq_msg_size (&parts [0]);
        char *topic = (char *) malloc (size + 1);
        EP_ASSERT (topic);
        memcpy (topic, zmq_msg_data (&parts [0]), size);
        topic [size] = 0;
        *topic_p = topic;
    }
    for (int i = 0; i < (count < 2? count: 2); i++)
        zmq_msg_close (&parts [i]);
    if (!deliver) {
        //  What failed to decode, too, may have left allocations behind.
        ep_arena_reset (self->arena);
        event = NULL;
    }
    return event;
}

Ep__Event *
ep_subscriber_read (ep_subscriber_t *self, char **topic_p)
{
    s_release (self);
    bool got;
    return s_read (self, 0, topic_p, &got, ep_mono_ms ());
}

//  Runs the silence check if it is due at now_ms.
static void
s_tick (ep_subscriber_t *self, int64_t now_ms)
{
    if (now_ms >= self->next_tick_ms) {
        ep_tracker_tick (self->tracker, now_ms);
        self->next_tick_ms = now_ms + EP_HEARTBEAT_MS / 4;
    }
}

void
ep_subscriber_tick (ep_subscriber_t *self)
{
    s_tick (self, ep_mono_ms ());
}

//  Waits up to timeout_ms (-1 forever) for the socket to be readable.
static bool
s_readable (ep_subscriber_t *self, int64_t timeout_ms)
{
    struct pollfd pfd = { .fd = zsock_fd (self->sub), .events = POLLIN };
    if (zsock_events (self->sub) & ZMQ_POLLIN)
        return true;
    //  The ZeroMQ fd is edge-triggered: it signals changes, so re-check the
    //  socket's own events after every wake-up.
    int64_t deadline = timeout_ms < 0? INT64_MAX: ep_mono_ms () + timeout_ms;
    while (true) {
        int64_t left = deadline - ep_mono_ms ();
        if (left <= 0)
            return false;
        int wait = left > EP_HEARTBEAT_MS / 4? EP_HEARTBEAT_MS / 4: (int) left;
        if (poll (&pfd, 1, wait) < 0 && zsys_interrupted)
            return false;
        if (zsock_events (self->sub) & ZMQ_POLLIN)
            return true;
        ep_subscriber_tick (self);
    }
}

int
ep_subscriber_wait_stream (ep_subscriber_t *self, const char *stream, int timeout_ms)
{
    s_release (self);
    int64_t deadline = ep_mono_ms () + timeout_ms;
    while (!ep_tracker_seen (self->tracker, stream)) {
        int64_t left = deadline - ep_mono_ms ();
        if (left <= 0 || !s_readable (self, left))
            return -1;
        char *topic = NULL;
        bool got;
        Ep__Event *event = s_read (self, 0, &topic, &got, ep_mono_ms ());
        if (event) {
            //  Kept for later recv calls: off the arena, onto the heap.
            s_pending_t *pending = (s_pending_t *) zmalloc (sizeof (s_pending_t));
            pending->topic = topic;
            pending->event = (Ep__Event *) ep_codec_copy (&event->base);
            zlistx_add_end (self->pending, pending);
            ep_arena_reset (self->arena);
        }
    }
    return 0;
}

Ep__Event *
ep_subscriber_recv (ep_subscriber_t *self, int timeout_ms, char **topic_p)
{
    s_release (self);
    s_pending_t *pending = (s_pending_t *) zlistx_detach (self->pending, NULL);
    if (pending) {
        //  Held, and freed at the next call, as an arena event would be.
        self->held = pending->event;
        if (topic_p)
            *topic_p = pending->topic;
        else
            free (pending->topic);
        free (pending);
        return self->held;
    }
    //  timeout 0 still reads what is already waiting.
    int64_t deadline = timeout_ms < 0? INT64_MAX: ep_mono_ms () + timeout_ms;
    while (true) {
        int64_t now = ep_mono_ms ();
        s_tick (self, now);
        //  Try to read first: while messages stream in, this skips the
        //  poll and the ZMQ_EVENTS query s_readable would cost per message.
        bool got;
        Ep__Event *event = s_read (self, ZMQ_DONTWAIT, topic_p, &got, now);
        if (event)
            return event;
        if (got)
            continue;           //  a heartbeat or a duplicate: next one
        //  Nothing waiting: block in libzmq's own receive until a message,
        //  the next silence check or the deadline. A wake-up then costs the
        //  system calls a raw blocking zmq_msg_recv makes; polling the
        //  socket's fd and re-reading ZMQ_EVENTS around it cost twice that.
        int64_t left = deadline == INT64_MAX? INT64_MAX: deadline - ep_mono_ms ();
        if (left <= 0)
            return NULL;
        int wait = left > EP_HEARTBEAT_MS / 4? EP_HEARTBEAT_MS / 4: (int) left;
        if (wait != self->rcvtimeo) {
            zsock_set_rcvtimeo (self->sub, wait);
            self->rcvtimeo = wait;
        }
        event = s_read (self, 0, topic_p, &got, ep_mono_ms ());
        if (event)
            return event;
        if (!got && zsys_interrupted)
            return NULL;
    }
}

zsock_t *
ep_subscriber_socket (ep_subscriber_t *self)
{
    return self->sub;
}

ep_tracker_t *
ep_subscriber_tracker (ep_subscriber_t *self)
{
    return self->tracker;
}

void
ep_subscriber_set_dedupe (ep_subscriber_t *self, bool on)
{
    EP_ASSERT (self);
    self->keep_resent = !on;
}

uint64_t
ep_subscriber_resent (ep_subscriber_t *self)
{
    return ep_dedupe_duplicates (self->dedupe);
}

void
ep_subscriber_set_dedupe_window (ep_subscriber_t *self, size_t window)
{
    EP_ASSERT (self && window > 0);
    ep_dedupe_resize (self->dedupe, window);
    s_dedupe_gauges (self, 0);
}

ep_opt_t
ep_subscriber_window_opt (int64_t *window)
{
    ep_opt_t opt = {
        .name = "dedupe-window", .env = "EDGEPLANE_DEDUPE_WINDOW", .def = EP_DEDUPE_WINDOW_TEXT,
        .type = EP_OPT_INT, .num = window, .min = 1, .max = 16 * 1024 * 1024,
        .help = "Event ids each bus subscriber remembers, to drop an outbox's resends "
                "(about 120 bytes each: 7.5 MiB for 65536, once full)."
    };
    return opt;
}

void
ep_subscriber_set_metrics (ep_subscriber_t *self, ep_metrics_t *metrics, const char *name)
{
    EP_ASSERT (self && metrics && name);
    const char *label [] = { "subscriber" }, *value [] = { name };
    self->m_ids = ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_dedupe_ids",
        "Event ids a subscriber remembers to drop resends by (bounded by edgeplane_dedupe_capacity).",
        1, label), value);
    self->m_capacity = ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_dedupe_capacity",
        "Event ids a subscriber remembers at most (--dedupe-window).", 1, label), value);
    self->m_resent = ep_counter_series (ep_metrics_counter (metrics, "edgeplane_dedupe_resent_total",
        "Events a subscriber dropped because their event id was delivered already (an outbox's resend).",
        1, label), value);
    s_dedupe_gauges (self, ep_dedupe_duplicates (self->dedupe));
}

uint64_t
ep_subscriber_malformed (ep_subscriber_t *self)
{
    return self->malformed;
}
