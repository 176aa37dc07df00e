/*  test_streams.c: publisher -> lossy forwarder -> subscriber over real
    sockets. The forwarder drops one message in the middle of the stream and
    the last one; both losses must be reported, the second by heartbeat. */
#include <criterion/criterion.h>
#include "ep_publisher.h"
#include "ep_subscriber.h"

//  A forwarder actor: XSUB <- publishers, XPUB -> subscribers, dropping the
//  data messages (not heartbeats) whose seq is listed.
static void
s_lossy_forwarder (zsock_t *pipe, void *args)
{
    const uint64_t *drop = (const uint64_t *) args;
    zsock_t *xsub = zsock_new (ZMQ_XSUB);
    zsock_t *xpub = zsock_new (ZMQ_XPUB);
    int in_port = zsock_bind (xsub, "tcp://127.0.0.1:*");
    int out_port = zsock_bind (xpub, "tcp://127.0.0.1:*");
    zsock_signal (pipe, 0);
    zsock_send (pipe, "ii", in_port, out_port);
    zpoller_t *poller = zpoller_new (pipe, xsub, xpub, NULL);
    while (true) {
        void *which = zpoller_wait (poller, -1);
        if (which == pipe || !which)
            break;
        zmsg_t *msg = zmsg_recv (which);
        if (which == xpub) {
            zmsg_send (&msg, xsub);     //  subscriptions upstream
            continue;
        }
        zframe_t *body = zmsg_last (msg);
        Ep__Event *event = ep__event__unpack (NULL, zframe_size (body), zframe_data (body));
        bool dropped = false;
        if (event && event->body_case != EP__EVENT__BODY_HEARTBEAT)
            for (size_t i = 0; drop [i]; i++)
                if (event->meta->seq == drop [i])
                    dropped = true;
        if (event)
            ep__event__free_unpacked (event, NULL);
        if (dropped)
            zmsg_destroy (&msg);
        else
            zmsg_send (&msg, xpub);
    }
    zpoller_destroy (&poller);
    zsock_destroy (&xsub);
    zsock_destroy (&xpub);
}

typedef struct {
    ep_stream_report_t gaps [8];
    size_t gap_count;
    size_t silent;
} s_reports_t;

static void
s_on_report (void *arg, const ep_stream_report_t *report)
{
    s_reports_t *reports = (s_reports_t *) arg;
    if (report->kind == EP_STREAM_GAP && reports->gap_count < 8)
        reports->gaps [reports->gap_count++] = *report;
    if (report->kind == EP_STREAM_SILENT)
        reports->silent++;
}

static void
s_send_one (ep_publisher_t *pub, const char *topic, uint32_t n)
{
    Ep__ChannelEvent body = EP__CHANNEL_EVENT__INIT;
    char detail [32];
    snprintf (detail, sizeof detail, "message %u", n);
    body.detail = detail;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_CHANNEL;
    event.channel = &body;
    cr_assert_eq (ep_publisher_send (pub, topic, &event), 0);
}

Test (streams, drops_in_middle_and_at_end_are_both_reported)
{
    static const uint64_t drop [] = { 5, 10, 0 };
    zactor_t *forwarder = zactor_new (s_lossy_forwarder, (void *) drop);
    int in_port, out_port;
    zsock_recv (forwarder, "ii", &in_port, &out_port);
    char in_ep [64], out_ep [64];
    snprintf (in_ep, sizeof in_ep, "tcp://127.0.0.1:%d", in_port);
    snprintf (out_ep, sizeof out_ep, "tcp://127.0.0.1:%d", out_port);

    s_reports_t reports = { 0 };
    ep_subscriber_t *sub = ep_subscriber_new (out_ep, NULL, NULL, 65536, s_on_report, &reports);
    ep_subscriber_subscribe (sub, "");
    ep_publisher_t *pub = ep_publisher_new (in_ep, NULL, NULL, "test-a", 65536);
    ep_publisher_set_heartbeat (pub, 100);
    ep_publisher_declare (pub, "test");

    //  Readiness: the subscriber has seen the stream's heartbeat.
    int64_t deadline = ep_mono_ms () + 5000;
    while (!ep_tracker_seen (ep_subscriber_tracker (sub), "test") && ep_mono_ms () < deadline) {
        ep_publisher_tick (pub);
        ep_subscriber_wait_stream (sub, "test", 20);
    }
    cr_assert (ep_tracker_seen (ep_subscriber_tracker (sub), "test"));

    for (uint32_t n = 1; n <= 10; n++)
        s_send_one (pub, "test.x", n);

    //  Receive 1-4 and 6-9, then go quiet but keep heartbeating until the
    //  heartbeat proves seq 10 was lost.
    uint64_t seqs [16];
    size_t got = 0;
    deadline = ep_mono_ms () + 5000;
    while (reports.gap_count < 2 && ep_mono_ms () < deadline) {
        ep_publisher_tick (pub);
        Ep__Event *event = ep_subscriber_recv (sub, 20, NULL);
        if (event) {
            cr_assert_lt (got, 16);
            seqs [got++] = event->meta->seq;
        }
    }
    uint64_t expect [] = { 1, 2, 3, 4, 6, 7, 8, 9 };
    cr_assert_eq (got, EP_COUNT (expect));
    for (size_t i = 0; i < got; i++)
        cr_assert_eq (seqs [i], expect [i]);

    cr_assert_eq (reports.gap_count, 2);
    cr_assert_eq (reports.gaps [0].from, 5);
    cr_assert_eq (reports.gaps [0].to, 5);
    cr_assert_not (reports.gaps [0].via_heartbeat);
    cr_assert_str_eq (reports.gaps [0].stream, "test");
    cr_assert_eq (reports.gaps [1].from, 10);
    cr_assert_eq (reports.gaps [1].to, 10);
    cr_assert (reports.gaps [1].via_heartbeat);
    cr_assert_eq (ep_tracker_lost (ep_subscriber_tracker (sub)), 2);

    ep_publisher_destroy (&pub);
    ep_subscriber_destroy (&sub);
    zactor_destroy (&forwarder);
}

Test (streams, silent_publisher_is_reported)
{
    static const uint64_t drop [] = { 0 };
    zactor_t *forwarder = zactor_new (s_lossy_forwarder, (void *) drop);
    int in_port, out_port;
    zsock_recv (forwarder, "ii", &in_port, &out_port);
    char in_ep [64], out_ep [64];
    snprintf (in_ep, sizeof in_ep, "tcp://127.0.0.1:%d", in_port);
    snprintf (out_ep, sizeof out_ep, "tcp://127.0.0.1:%d", out_port);
    s_reports_t reports = { 0 };
    ep_subscriber_t *sub = ep_subscriber_new (out_ep, NULL, NULL, 65536, s_on_report, &reports);
    ep_subscriber_subscribe (sub, "test.");
    ep_publisher_t *pub = ep_publisher_new (in_ep, NULL, NULL, "test-b", 65536);
    ep_publisher_declare (pub, "test");
    int64_t deadline = ep_mono_ms () + 5000;
    while (!ep_tracker_seen (ep_subscriber_tracker (sub), "test") && ep_mono_ms () < deadline) {
        ep_publisher_tick (pub);
        ep_subscriber_wait_stream (sub, "test", 20);
    }
    cr_assert (ep_tracker_seen (ep_subscriber_tracker (sub), "test"));
    //  The publisher stops heartbeating (it is gone).
    ep_publisher_destroy (&pub);
    deadline = ep_mono_ms () + 8000;
    while (reports.silent == 0 && ep_mono_ms () < deadline)
        ep_subscriber_recv (sub, 100, NULL);
    cr_assert_eq (reports.silent, 1);
    ep_subscriber_destroy (&sub);
    zactor_destroy (&forwarder);
}

Test (streams, oversized_event_is_refused_and_seq_not_consumed)
{
    ep_publisher_t *pub = ep_publisher_new ("tcp://127.0.0.1:1", NULL, NULL, "test-c", 200);
    Ep__ChannelEvent body = EP__CHANNEL_EVENT__INIT;
    char big [400];
    memset (big, 'x', sizeof big - 1);
    big [sizeof big - 1] = 0;
    body.detail = big;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_CHANNEL;
    event.channel = &body;
    cr_assert_eq (ep_publisher_send (pub, "test.big", &event), -1);
    cr_assert_eq (ep_publisher_refused (pub), 1);
    cr_assert_eq (ep_publisher_seq (pub, "test"), 0);
    body.detail = "small";
    cr_assert_eq (ep_publisher_send (pub, "test.small", &event), 0);
    cr_assert_eq (ep_publisher_seq (pub, "test"), 1);
    cr_assert_eq (ep_publisher_send (pub, "no-namespace", &event), -1);
    ep_publisher_destroy (&pub);
}

//  Receives one [topic][Event] from sub within timeout_ms; returns the
//  Event's bytes (caller frees) or NULL.
static zframe_t *
s_recv_body (zsock_t *sub, int timeout_ms)
{
    zsock_set_rcvtimeo (sub, timeout_ms);
    zmsg_t *msg = zmsg_recv (sub);
    if (!msg)
        return NULL;
    cr_assert_eq (zmsg_size (msg), 2);
    zframe_t *body = zmsg_last (msg);
    zmsg_remove (msg, body);
    zmsg_destroy (&msg);
    return body;
}

//  The publisher packs StreamMeta by hand: what it sends must be the bytes
//  protobuf-c gives for the same event, meta included, on the fast path and
//  on the fallback for events with unknown fields.
Test (streams, publisher_packs_events_as_protobuf_c_does)
{
    zsock_t *sub = zsock_new (ZMQ_SUB);
    zsock_set_subscribe (sub, "");
    int port = zsock_bind (sub, "tcp://127.0.0.1:*");
    cr_assert_gt (port, 0);
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    ep_publisher_t *pub = ep_publisher_new (endpoint, NULL, NULL, "test-pack", 65536);
    Ep__ChannelEvent channel = EP__CHANNEL_EVENT__INIT;
    channel.reason = "joined";
    channel.remote_addr = "127.0.0.1:40000";
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_CHANNEL;
    event.channel = &channel;
    //  PUB drops until connected: send until one arrives.
    zframe_t *body = NULL;
    int64_t deadline = ep_mono_ms () + 5000;
    while (!body && ep_mono_ms () < deadline) {
        cr_assert_eq (ep_publisher_send (pub, "chan.joined", &event), 0);
        body = s_recv_body (sub, 20);
    }
    cr_assert_not_null (body, "the publisher's events never arrived");
    zframe_destroy (&body);
    while ((body = s_recv_body (sub, 50)))
        zframe_destroy (&body);

    //  An event with an unknown field, as one decoded and relayed would be.
    uint8_t with_unknown [64];
    Ep__Event plain = EP__EVENT__INIT;
    plain.body_case = EP__EVENT__BODY_CHANNEL;
    plain.channel = &channel;
    size_t size = ep__event__pack (&plain, with_unknown);
    const uint8_t unknown [] = { 0xa0, 0x03, 0x07 };    //  field 52, varint 7
    memcpy (with_unknown + size, unknown, sizeof unknown);
    Ep__Event *relayed = ep__event__unpack (NULL, size + sizeof unknown, with_unknown);
    cr_assert_not_null (relayed);
    cr_assert_eq (relayed->base.n_unknown_fields, 1);

    const char *topics [] = { "chan.joined", "longer-stream-name.x", "chan.again" };
    Ep__Event *events [] = { &event, relayed, &event };
    for (size_t i = 0; i < 3; i++) {
        char stream [64];
        cr_assert_eq (ep_topic_stream (topics [i], stream, sizeof stream), 0);
        uint64_t seq = ep_publisher_seq (pub, stream) + 1;
        int64_t before = ep_wall_ms ();
        cr_assert_eq (ep_publisher_send (pub, topics [i], events [i]), 0);
        int64_t after = ep_wall_ms ();
        body = s_recv_body (sub, 5000);
        cr_assert_not_null (body);
        Ep__Event *got = ep__event__unpack (NULL, zframe_size (body), zframe_data (body));
        cr_assert_not_null (got, "%s: the publisher's bytes do not decode", topics [i]);
        Ep__StreamMeta *meta = got->meta;
        cr_assert_not_null (meta);
        cr_assert_str_eq (meta->source_id, "test-pack");
        cr_assert_str_eq (meta->stream, stream);
        cr_assert (meta->has_epoch && meta->epoch == ep_publisher_epoch (pub));
        cr_assert (meta->has_seq && meta->seq == seq);
        cr_assert (meta->has_timestamp_ms && meta->timestamp_ms >= before && meta->timestamp_ms <= after);
        cr_assert (meta->has_epoch_started_ms && meta->epoch_started_ms <= before);
        cr_assert_eq (got->body_case, EP__EVENT__BODY_CHANNEL);
        cr_assert_str_eq (got->channel->remote_addr, "127.0.0.1:40000");
        cr_assert_eq (got->base.n_unknown_fields, events [i]->base.n_unknown_fields);
        //  Canonical: protobuf-c packs what it decoded to the same bytes.
        uint8_t repacked [256];
        cr_assert_eq (ep__event__get_packed_size (got), zframe_size (body));
        ep__event__pack (got, repacked);
        cr_assert_eq (memcmp (repacked, zframe_data (body), zframe_size (body)), 0,
                      "%s: packed unlike protobuf-c", topics [i]);
        ep__event__free_unpacked (got, NULL);
        zframe_destroy (&body);
    }
    ep__event__free_unpacked (relayed, NULL);
    ep_publisher_destroy (&pub);
    zsock_destroy (&sub);
}

//  An outbox's resend arrives in a new epoch, where the tracker takes it
//  as new: the subscriber drops it by its event id, which is in the meta
//  as sent.
Test (streams, resent_event_ids_are_dropped_by_the_subscriber)
{
    static const uint64_t drop [] = { 0 };
    zactor_t *forwarder = zactor_new (s_lossy_forwarder, (void *) drop);
    int in_port, out_port;
    zsock_recv (forwarder, "ii", &in_port, &out_port);
    char in_ep [64], out_ep [64];
    snprintf (in_ep, sizeof in_ep, "tcp://127.0.0.1:%d", in_port);
    snprintf (out_ep, sizeof out_ep, "tcp://127.0.0.1:%d", out_port);
    ep_subscriber_t *sub = ep_subscriber_new (out_ep, NULL, NULL, 65536, NULL, NULL);
    ep_subscriber_subscribe (sub, "test.");
    Ep__ChannelEvent body = EP__CHANNEL_EVENT__INIT;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_CHANNEL;
    event.channel = &body;
    //  Two runs of one publisher (two epochs), each sending id 1 until it
    //  comes back (a PUB drops until connected), the second as a resend.
    size_t got = 0, sent = 0;
    for (int run = 0; run < 2; run++) {
        ep_publisher_t *pub = ep_publisher_new (in_ep, NULL, NULL, "test-o", 65536);
        bool back = false;
        int64_t deadline = ep_mono_ms () + 5000;
        while (!back && ep_mono_ms () < deadline) {
            cr_assert_eq (ep_publisher_send_id (pub, "test.x", &event, "test-o:1"), 0);
            sent++;
            Ep__Event *received = ep_subscriber_recv (sub, 50, NULL);
            if (received) {
                cr_assert_str_eq (received->meta->event_id, "test-o:1");
                got++;
            }
            //  Delivered once; later copies are counted as resent.
            back = got == 1 && ep_subscriber_resent (sub) >= (uint64_t) run;
        }
        cr_assert (back, "run %d: the event never came", run);
        ep_publisher_destroy (&pub);
    }
    while (ep_subscriber_recv (sub, 100, NULL))
        got++;
    cr_assert_eq (got, 1, "test-o:1 was sent %zu times and must be delivered once", sent);
    cr_assert_geq (ep_subscriber_resent (sub), 1);
    ep_subscriber_destroy (&sub);
    zactor_destroy (&forwarder);
}

//  The window is sized by the service and exported: the ids it holds
//  stay at its capacity, and the resends it dropped are counted.
Test (streams, the_dedupe_window_is_sized_and_in_the_metrics)
{
    static const uint64_t drop [] = { 0 };
    zactor_t *forwarder = zactor_new (s_lossy_forwarder, (void *) drop);
    int in_port, out_port;
    zsock_recv (forwarder, "ii", &in_port, &out_port);
    char in_ep [64], out_ep [64];
    snprintf (in_ep, sizeof in_ep, "tcp://127.0.0.1:%d", in_port);
    snprintf (out_ep, sizeof out_ep, "tcp://127.0.0.1:%d", out_port);
    ep_metrics_t *metrics = ep_metrics_new ("test");
    ep_subscriber_t *sub = ep_subscriber_new (out_ep, NULL, NULL, 65536, NULL, NULL);
    ep_subscriber_set_dedupe_window (sub, 2);
    ep_subscriber_set_metrics (sub, metrics, "events");
    const char *label [] = { "subscriber" }, *value [] = { "events" };
    ep_series_t *ids = ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_dedupe_ids", "", 1, label), value);
    ep_series_t *capacity = ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_dedupe_capacity", "", 1, label),
                                             value);
    ep_series_t *resent = ep_counter_series (ep_metrics_counter (metrics, "edgeplane_dedupe_resent_total", "", 1,
                                                                 label), value);
    cr_assert_eq (ep_series_value (capacity), 2);
    cr_assert_eq (ep_series_value (ids), 0);
    ep_subscriber_subscribe (sub, "test.");
    Ep__ChannelEvent body = EP__CHANNEL_EVENT__INIT;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_CHANNEL;
    event.channel = &body;
    ep_publisher_t *pub = ep_publisher_new (in_ep, NULL, NULL, "test-o", 65536);
    //  Ids 1 to 3, each sent until it comes back (a PUB drops until
    //  connected): copies after the first are resends.
    for (int i = 1; i <= 3; i++) {
        char id [32];
        snprintf (id, sizeof id, "test-o:%d", i);
        bool back = false;
        int64_t deadline = ep_mono_ms () + 5000;
        while (!back && ep_mono_ms () < deadline) {
            cr_assert_eq (ep_publisher_send_id (pub, "test.x", &event, id), 0);
            Ep__Event *received = ep_subscriber_recv (sub, 50, NULL);
            back = received && streq (received->meta->event_id, id);
        }
        cr_assert (back, "%s never came", id);
        cr_assert_eq (ep_series_value (ids), i < 2? i: 2, "after %s", id);
    }
    //  One more copy of the newest: dropped, counted.
    uint64_t before = ep_subscriber_resent (sub);
    int64_t deadline = ep_mono_ms () + 5000;
    while (ep_subscriber_resent (sub) == before && ep_mono_ms () < deadline) {
        cr_assert_eq (ep_publisher_send_id (pub, "test.x", &event, "test-o:3"), 0);
        cr_assert_null (ep_subscriber_recv (sub, 50, NULL), "a resend was delivered");
    }
    cr_assert_gt (ep_subscriber_resent (sub), before);
    cr_assert_eq (ep_series_value (resent), (double) ep_subscriber_resent (sub));
    cr_assert_eq (ep_series_value (ids), 2, "bounded by the window");
    ep_publisher_destroy (&pub);
    ep_subscriber_destroy (&sub);
    ep_metrics_destroy (&metrics);
    zactor_destroy (&forwarder);
}

//  A consumer that checks seqs itself turns the dropping off: it gets each
//  resend (with its own seq), while a default subscriber gets the id once.
Test (streams, a_subscriber_with_dedupe_off_takes_resends)
{
    static const uint64_t drop [] = { 0 };
    zactor_t *forwarder = zactor_new (s_lossy_forwarder, (void *) drop);
    int in_port, out_port;
    zsock_recv (forwarder, "ii", &in_port, &out_port);
    char in_ep [64], out_ep [64];
    snprintf (in_ep, sizeof in_ep, "tcp://127.0.0.1:%d", in_port);
    snprintf (out_ep, sizeof out_ep, "tcp://127.0.0.1:%d", out_port);
    ep_subscriber_t *once = ep_subscriber_new (out_ep, NULL, NULL, 65536, NULL, NULL);
    ep_subscriber_t *every = ep_subscriber_new (out_ep, NULL, NULL, 65536, NULL, NULL);
    ep_subscriber_subscribe (once, "test.");
    ep_subscriber_subscribe (every, "test.");
    ep_subscriber_set_dedupe (every, false);
    Ep__ChannelEvent body = EP__CHANNEL_EVENT__INIT;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_CHANNEL;
    event.channel = &body;
    ep_publisher_t *pub = ep_publisher_new (in_ep, NULL, NULL, "test-o", 65536);
    size_t got_once = 0, got_every = 0;
    int64_t deadline = ep_mono_ms () + 5000;
    while (got_every < 3 && ep_mono_ms () < deadline) {
        cr_assert_eq (ep_publisher_send_id (pub, "test.x", &event, "test-o:1"), 0);
        if (ep_subscriber_recv (every, 50, NULL))
            got_every++;
        while (ep_subscriber_recv (once, 0, NULL))
            got_once++;
    }
    cr_assert_geq (got_every, 3, "the dedupe-off subscriber got %zu copies", got_every);
    while (ep_subscriber_recv (once, 100, NULL))
        got_once++;
    cr_assert_eq (got_once, 1, "the default subscriber got test-o:1 %zu times", got_once);
    cr_assert_eq (ep_subscriber_resent (every), 0);
    ep_publisher_destroy (&pub);
    ep_subscriber_destroy (&once);
    ep_subscriber_destroy (&every);
    zactor_destroy (&forwarder);
}
