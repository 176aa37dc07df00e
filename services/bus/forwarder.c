/*  forwarder: the bus's forwarding loop shell (see forwarder.h).

    Its own forwarding loop (rather than zmq_proxy) so it can check each
    publisher's role and count messages per stream without a capture socket
    doubling the work. Subscriptions flow upstream to the publishers
    unchanged.
*/
#include "ep_codec.h"
#include "ep_degraded.h"
#include <sodium.h>
#include "ep_event_json.h"
#include "bus.h"
#include "forwarder.h"

#define BATCH 1024              //  messages moved per wake-up before polling again

#define STREAM_MAX 128          //  longest stream name, with its null

typedef struct {
    ep_series_t *in;            //  messages received on this stream
    ep_series_t *out;           //  messages forwarded on this stream
    char name [STREAM_MAX];     //  the stream
} s_stream_counts_t;

struct _forwarder_t {
    ep_service_t *service;      //  shared process scaffolding
    zsock_t *xsub;              //  publishers connect here
    zsock_t *xpub;              //  subscribers connect here
    bool plaintext;             //  no CURVE: benchmarks only, loopback only
    zhashx_t *streams;          //  stream -> s_stream_counts_t
    s_stream_counts_t *last;    //  the stream of the last message forwarded
    ep_counter_t *in;           //  edgeplane_bus_received_total{stream}
    ep_counter_t *out;          //  edgeplane_bus_forwarded_total{stream}
    ep_counter_t *dropped;      //  edgeplane_bus_dropped_total{reason}
    ep_gauge_t *subscriptions;  //  edgeplane_bus_subscriptions
    ep_audit_t *audit;          //  every event as a JSON line, when enabled
    ep_counter_t *audit_errors; //  edgeplane_bus_audit_errors_total
    ep_series_t *audit_skipped; //  edgeplane_bus_audit_skipped_total
    uint64_t seen_skipped;      //  its value last added
    ep_degraded_t *degraded;    //  the audit log's disk is full or failing
    uint64_t service_seq;       //  seq of the bus's own service.* stream
    uint64_t epoch;             //  of that stream
    int64_t epoch_started_ms;   //  of that stream
};

//  Messages mostly come in runs of one stream: a string compare with the
//  last one stands in for hashing the name.
static s_stream_counts_t *
s_counts (forwarder_t *self, const char *stream)
{
    if (self->last && streq (self->last->name, stream))
        return self->last;
    s_stream_counts_t *counts = (s_stream_counts_t *) zhashx_lookup (self->streams, stream);
    if (!counts) {
        counts = (s_stream_counts_t *) zmalloc (sizeof (s_stream_counts_t));
        snprintf (counts->name, sizeof counts->name, "%s", stream);
        const char *values [] = { stream };
        counts->in = ep_counter_series (self->in, values);
        counts->out = ep_counter_series (self->out, values);
        zhashx_insert (self->streams, stream, counts);
    }
    self->last = counts;
    return counts;
}

//  Counts of a run of messages on one stream, added to the metrics once per
//  run rather than twice per message (each add is an atomic update, as the
//  HTTP thread reads them). A run ends with the batch, so /metrics lags by
//  at most one batch.
typedef struct {
    s_stream_counts_t *counts;  //  the run's stream
    uint64_t in;                //  received in the run
    uint64_t out;               //  forwarded in the run
} s_run_t;

static void
s_run_flush (s_run_t *run)
{
    if (run->counts) {
        if (run->in)
            ep_series_add (run->counts->in, (double) run->in);
        if (run->out)
            ep_series_add (run->counts->out, (double) run->out);
    }
    run->in = run->out = 0;
}

static void
s_drop (forwarder_t *self, bus_verdict_t verdict)
{
    const char *values [] = { bus_verdict_name (verdict) };
    ep_counter_inc (self->dropped, values, 1);
}

//  The bus's own event (service.degraded): it is the bus, so it stamps
//  the meta itself and sends it straight to the subscribers.
static void
s_send_own (void *arg, const char *topic, Ep__Event *event)
{
    forwarder_t *self = (forwarder_t *) arg;
    Ep__StreamMeta meta = EP__STREAM_META__INIT;
    meta.source_id = (char *) ep_service_source_id (self->service);
    meta.has_epoch = true;
    meta.epoch = self->epoch;
    meta.stream = "service";
    meta.has_seq = true;
    meta.seq = ++self->service_seq;
    meta.has_timestamp_ms = true;
    meta.timestamp_ms = ep_wall_ms ();
    meta.has_epoch_started_ms = true;
    meta.epoch_started_ms = self->epoch_started_ms;
    event->meta = &meta;
    size_t size = ep__event__get_packed_size (event);
    uint8_t *bytes = (uint8_t *) malloc (size);
    EP_ASSERT (bytes);
    ep__event__pack (event, bytes);
    zmq_send (zsock_resolve (self->xpub), topic, strlen (topic), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send (zsock_resolve (self->xpub), bytes, size, ZMQ_DONTWAIT);
    free (bytes);
    event->meta = NULL;
}

//  After an audit write or probe: a full or failing disk degrades the bus
//  (it keeps forwarding), a line written again ends it.
static void
s_audit_state (forwarder_t *self)
{
    uint64_t skipped = ep_audit_skipped (self->audit);
    if (skipped > self->seen_skipped) {
        ep_series_add (self->audit_skipped, (double) (skipped - self->seen_skipped));
        self->seen_skipped = skipped;
    }
    ep_store_fault_t fault = ep_audit_fault (self->audit);
    ep_degraded_update (self->degraded, fault, fault == EP_STORE_FAULT_NONE? NULL: ep_audit_error (self->audit),
                        ep_mono_ms ());
}

//  Appends the event to the audit log (decoded after a length check).
static void
s_audit (forwarder_t *self, zmq_msg_t *topic, zmq_msg_t *body)
{
    char name [256];
    size_t len = zmq_msg_size (topic) < sizeof name - 1? zmq_msg_size (topic): sizeof name - 1;
    memcpy (name, zmq_msg_data (topic), len);
    name [len] = 0;
    char err [256];
    Ep__Event *event = (Ep__Event *) ep_codec_unpack (&ep__event__descriptor, zmq_msg_data (body),
                                                      zmq_msg_size (body), EP_CODEC_DEFAULT_CAP,
                                                      "publisher", err, sizeof err);
    json_t *record = event? ep_event_json (name, event)
                          : json_pack ("{s:s, s:s}", "topic", name, "undecodable", err);
    if (ep_audit_write (self->audit, record) != 0) {
        ep_counter_inc (self->audit_errors, NULL, 1);
        //  Once per gap, not once per event: the gauge and /readyz say it meanwhile.
        if (!ep_degraded_active (self->degraded))
            ep_log_error ("audit log: %s", ep_audit_error (self->audit));
    }
    s_audit_state (self);
    json_decref (record);
    if (event)
        ep__event__free_unpacked (event, NULL);
}

//  Moves up to BATCH messages from publishers to subscribers.
static void
s_forward (forwarder_t *self)
{
    void *xsub = zsock_resolve (self->xsub);
    void *xpub = zsock_resolve (self->xpub);
    s_run_t run = { NULL, 0, 0 };
    for (int n = 0; n < BATCH; n++) {
        zmq_msg_t parts [2];
        zmq_msg_init (&parts [0]);
        if (zmq_msg_recv (&parts [0], xsub, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close (&parts [0]);
            break;
        }
        int count = 1;
        bool more = zmq_msg_more (&parts [0]);
        while (more) {
            //  Read every part of the message, keeping the first two.
            zmq_msg_t extra;
            zmq_msg_t *into = count < 2? &parts [count]: &extra;
            zmq_msg_init (into);
            EP_ASSERT (zmq_msg_recv (into, xsub, 0) >= 0);
            more = zmq_msg_more (into);
            if (into == &extra)
                zmq_msg_close (&extra);
            count++;
        }
        //  Only an authenticated peer has a role; the lookup is skipped in
        //  plaintext, where bus_classify ignores it.
        const char *role = self->plaintext? NULL: zmq_msg_gets (&parts [0], "role");
        char stream [STREAM_MAX];
        bus_verdict_t verdict = bus_classify (role, !self->plaintext, zmq_msg_data (&parts [0]),
                                              zmq_msg_size (&parts [0]), count,
                                              stream, sizeof stream);
        if (verdict == BUS_FORWARD) {
            s_stream_counts_t *counts = s_counts (self, stream);
            if (counts != run.counts) {
                s_run_flush (&run);
                run.counts = counts;
            }
            run.in++;
            if (self->audit)
                s_audit (self, &parts [0], &parts [1]);
            //  XPUB never blocks: a subscriber whose queue is full misses
            //  the message and learns it from the seq.
            if (zmq_msg_send (&parts [0], xpub, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0
            &&  zmq_msg_send (&parts [1], xpub, ZMQ_DONTWAIT) >= 0)
                run.out++;
        }
        else {
            s_drop (self, verdict);
            if (verdict == BUS_DROP_ROLE)
                ep_log_debug ("dropped a message from a peer with role %s: only services publish",
                              role? role: "none");
        }
        for (int i = 0; i < (count < 2? count: 2); i++)
            zmq_msg_close (&parts [i]);
    }
    s_run_flush (&run);
}

//  Passes subscriptions from subscribers up to the publishers.
static void
s_subscribe (forwarder_t *self)
{
    zframe_t *frame = zframe_recv (self->xpub);
    if (!frame)
        return;
    if (zframe_size (frame) > 0) {
        byte kind = zframe_data (frame) [0];
        ep_gauge_add (self->subscriptions, NULL, kind == 1? 1: -1);
        ep_log_debug ("%s \"%.*s\"", kind == 1? "subscribe": "unsubscribe",
                      (int) zframe_size (frame) - 1, (char *) zframe_data (frame) + 1);
    }
    zframe_send (&frame, self->xsub, ZFRAME_DONTWAIT);
}

forwarder_t *
forwarder_new (ep_service_t *service, int hwm, bool plaintext, ep_audit_t **audit)
{
    forwarder_t *self = (forwarder_t *) zmalloc (sizeof (forwarder_t));
    self->service = service;
    self->plaintext = plaintext;
    if (audit) {
        self->audit = *audit;
        *audit = NULL;
    }
    ep_metrics_t *metrics = ep_service_metrics (service);
    const char *stream_label [] = { "stream" };
    const char *reason_label [] = { "reason" };
    self->in = ep_metrics_counter (metrics, "edgeplane_bus_received_total",
                                   "Messages received from publishers, by stream.", 1, stream_label);
    self->out = ep_metrics_counter (metrics, "edgeplane_bus_forwarded_total",
                                    "Messages forwarded to subscribers, by stream.", 1, stream_label);
    self->dropped = ep_metrics_counter (metrics, "edgeplane_bus_dropped_total",
                                        "Messages dropped, by reason.", 1, reason_label);
    self->subscriptions = ep_metrics_gauge (metrics, "edgeplane_bus_subscriptions",
                                            "Subscriptions currently held.", 0, NULL);
    self->audit_errors = ep_metrics_counter (metrics, "edgeplane_bus_audit_errors_total",
                                             "Audit log writes that failed.", 0, NULL);
    self->audit_skipped = ep_counter_series (ep_metrics_counter (metrics, "edgeplane_bus_audit_skipped_total",
        "Events forwarded but not written to the audit log (its disk full or failing): "
        "each gap is marked in the log when writing resumes.", 0, NULL), NULL);
    if (self->audit)
        self->degraded = ep_degraded_new ("bus", ep_audit_path (self->audit), ep_service_http (service),
                                          metrics, s_send_own, self);
    randombytes_buf (&self->epoch, sizeof self->epoch);
    self->epoch_started_ms = ep_wall_ms ();
    self->streams = zhashx_new ();
    zhashx_set_destructor (self->streams, (czmq_destructor *) zstr_free);

    self->xsub = zsock_new (ZMQ_XSUB);
    self->xpub = zsock_new (ZMQ_XPUB);
    EP_ASSERT (self->xsub && self->xpub);
    zsock_set_rcvhwm (self->xsub, hwm);
    zsock_set_sndhwm (self->xpub, hwm);
    //  Accept at least any subscriber's cap, plus the topic.
    zsock_set_maxmsgsize (self->xsub, (int64_t) EP_CODEC_DEFAULT_CAP + 4096);
    zsock_set_heartbeat_ivl (self->xsub, 1000);
    zsock_set_heartbeat_timeout (self->xsub, 3000);
    zsock_set_heartbeat_ivl (self->xpub, 1000);
    zsock_set_heartbeat_timeout (self->xpub, 3000);
    zsock_set_linger (self->xpub, 0);
    return self;
}

void
forwarder_destroy (forwarder_t **self_p)
{
    EP_ASSERT (self_p);
    forwarder_t *self = *self_p;
    if (!self)
        return;
    zsock_destroy (&self->xpub);
    zsock_destroy (&self->xsub);
    ep_audit_destroy (&self->audit);
    ep_degraded_destroy (&self->degraded);
    zhashx_destroy (&self->streams);
    free (self);
    *self_p = NULL;
}

int
forwarder_bind (forwarder_t *self, const char *pub_listen, const char *sub_listen)
{
    int rc = ep_service_bind (self->service, self->xsub, "pub", pub_listen);
    if (rc == 0)
        rc = ep_service_bind (self->service, self->xpub, "sub", sub_listen);
    return rc;
}

int
forwarder_run (forwarder_t *self)
{
    zpoller_t *poller = zpoller_new (ep_service_auth_actor (self->service),
                                     self->xsub, self->xpub, NULL);
    while (!ep_service_interrupted (self->service)) {
        int64_t timeout = 1000;
        if (self->audit) {
            int64_t now = ep_mono_ms ();
            int64_t due = ep_audit_tick (self->audit, now);
            if (due >= 0 && due < timeout)
                timeout = due;
            //  Degraded and no event came to find out: probe (the gap
            //  marker), so readiness comes back by itself.
            if (ep_degraded_probe_due (self->degraded, now)) {
                ep_audit_probe (self->audit);
                s_audit_state (self);
            }
            due = ep_degraded_next (self->degraded, now);
            if (due < timeout)
                timeout = due;
        }
        void *which = ep_service_wait (self->service, poller, timeout);
        if (which == self->xsub)
            s_forward (self);
        else
        if (which == self->xpub)
            s_subscribe (self);
    }
    zpoller_destroy (&poller);
    return 0;
}
