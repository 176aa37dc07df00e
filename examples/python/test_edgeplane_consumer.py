#!/usr/bin/python3
"""test_edgeplane_consumer.py: unit tests of the example consumer's loss
detection and rendering, on synthetic sequences (no bus needed).

    EP_DESCRIPTOR_SET=build/gen/edgeplane.desc /usr/bin/python3 test_edgeplane_consumer.py

tests/integration/test_python_consumer.c runs this under ctest; the rendering
tests need the descriptor set and are skipped without it.
"""

import os
import unittest

import edgeplane_consumer as consumer

SUBSCRIBED_MS = 1_000_000       # when the tracker's subscriber subscribed
BEFORE = SUBSCRIBED_MS - 5000   # a publisher already running then
AFTER = SUBSCRIBED_MS + 5000    # a publisher that started later


def feed(tracker, steps, source="s", stream="test", epoch=1, started=BEFORE):
    """Feeds steps (an int: a message with that seq; "hb N": a heartbeat with
    last seq N); returns the seqs delivered and the notes, in order."""
    story = []
    for step in steps:
        heartbeat = isinstance(step, str)
        seq = int(step.split()[1]) if heartbeat else step
        deliver, notes = tracker.observe(source, stream, epoch, started, seq, heartbeat)
        story += notes
        if deliver and not heartbeat:
            story.append(seq)
    return story


class TrackerTest(unittest.TestCase):

    def tracker(self, *prefixes):
        return consumer.StreamTracker(prefixes or [""], SUBSCRIBED_MS)

    def test_an_unbroken_stream_reports_nothing(self):
        t = self.tracker()
        self.assertEqual(feed(t, ["hb 0", 1, 2, 3, "hb 3", 4]), [1, 2, 3, 4])
        self.assertEqual(t.lost, 0)

    def test_a_jump_reports_exactly_the_missing_range(self):
        t = self.tracker()
        self.assertEqual(feed(t, ["hb 0", 1, 2, 5, 6]), [1, 2, "LOST s test 3..4", 5, 6])
        self.assertEqual(t.lost, 2)

    def test_a_heartbeat_proves_a_loss_at_the_end_of_a_stream_once(self):
        t = self.tracker()
        self.assertEqual(feed(t, [1, 2, "hb 4", "hb 4", 5]), [1, 2, "LOST s test 3..4", 5])
        self.assertEqual(t.lost, 2)

    def test_a_filtered_subscription_never_reports_a_loss(self):
        t = self.tracker("test.item")
        self.assertEqual(feed(t, ["hb 0", 1, 5, "hb 9", 12]), [1, 5, 12])
        self.assertEqual(t.lost, 0)

    def test_duplicates_are_reported_and_not_delivered(self):
        t = self.tracker()
        self.assertEqual(feed(t, [1, 2, 2, 1, 3]), [1, 2, "DUPLICATE s test 2",
                                                   "DUPLICATE s test 1", 3])

    def test_a_new_epoch_restarts_from_1_and_stragglers_of_the_old_are_dropped(self):
        t = self.tracker()
        feed(t, [1, 2, 3])
        self.assertEqual(feed(t, [1, 2], epoch=2, started=BEFORE + 1),
                         ["RESTART s test", 1, 2])
        self.assertEqual(feed(t, [4], epoch=1, started=BEFORE), [])
        self.assertEqual(feed(t, [4], epoch=2, started=BEFORE + 1), ["LOST s test 3..3", 4])

    def test_a_publisher_born_after_we_subscribed_is_owed_everything_from_seq_1(self):
        t = self.tracker()
        self.assertEqual(feed(t, [3], started=AFTER), ["LOST s test 1..2", 3])

    def test_a_publisher_already_running_is_taken_from_what_we_see_first(self):
        t = self.tracker()
        self.assertEqual(feed(t, [40, 41]), [40, 41])
        t = self.tracker()
        self.assertEqual(feed(t, ["hb 40", 41]), [41])

    def test_sources_and_streams_are_tracked_apart(self):
        t = self.tracker()
        self.assertEqual(feed(t, [1, 2], source="a") + feed(t, [1, 3], source="b")
                         + feed(t, [1], source="a", stream="other"),
                         [1, 2, 1, "LOST b test 2..2", 3, 1])


class SubscriptionTest(unittest.TestCase):

    def test_whole_means_some_prefix_is_a_prefix_of_the_stream_and_a_dot(self):
        for prefix in ["", "te", "test", "test."]:
            self.assertTrue(consumer.whole([prefix], "test"), prefix)
        for prefix in ["test.item", "tests", "other"]:
            self.assertFalse(consumer.whole([prefix], "test"), prefix)

    def test_a_partial_prefix_also_takes_its_streams_heartbeats(self):
        self.assertEqual(consumer.subscriptions([""]), [""])
        self.assertEqual(consumer.subscriptions(["connect."]), ["connect."])
        self.assertEqual(consumer.subscriptions(["connect.router-to-ctrl", "connect.ctrl-to-ctrl"]),
                         ["connect.router-to-ctrl", "connect.ctrl-to-ctrl", "connect.heartbeat"])
        self.assertEqual(consumer.subscriptions(["connect.router-to-ctrl", "conn"]),
                         ["connect.router-to-ctrl", "conn"])


class DedupeTest(unittest.TestCase):

    def test_a_repeated_event_id_is_dropped_and_others_pass(self):
        dedupe = consumer.Dedupe()
        self.assertTrue(dedupe.fresh("watchdog-a:1"))
        self.assertTrue(dedupe.fresh("watchdog-a:2"))
        self.assertFalse(dedupe.fresh("watchdog-a:1"), "a resend")
        self.assertTrue(dedupe.fresh("watchdog-b:1"), "another publisher's outbox")
        self.assertTrue(dedupe.fresh(""), "events without an id are not judged by it")
        self.assertTrue(dedupe.fresh(""))

    def test_the_window_is_bounded_and_forgets_the_oldest(self):
        dedupe = consumer.Dedupe(window=3)
        for i in range(1, 11):
            self.assertTrue(dedupe.fresh(f"reaper-x:{i}"))
        self.assertEqual(len(dedupe.ids), 3)
        self.assertFalse(dedupe.fresh("reaper-x:10"))
        self.assertFalse(dedupe.fresh("reaper-x:8"))
        self.assertTrue(dedupe.fresh("reaper-x:1"), "older than the window: delivered again, never lost")


DESCRIPTOR_SET = os.environ.get("EP_DESCRIPTOR_SET", "")


@unittest.skipUnless(os.path.exists(DESCRIPTOR_SET), "set EP_DESCRIPTOR_SET to build/gen/edgeplane.desc")
class RenderTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.Event = consumer.load_event_class(DESCRIPTOR_SET)

    def event(self):
        event = self.Event()
        event.meta.source_id = "watchdog-1"
        event.meta.epoch = 0xabc
        event.meta.stream = "connect"
        event.meta.seq = 7
        event.meta.timestamp_ms = 1234
        return event

    def test_connect_event_has_openziti_names_and_its_body_flattened(self):
        event = self.event()
        event.connect.type = "router-to-ctrl"
        event.connect.src_id = "r1"
        event.connect.connected = False
        event.connect.duration = 1500
        self.assertEqual(consumer.event_dict("connect.router-to-ctrl", event), {
            "namespace": "connect", "type": "router-to-ctrl", "event_src_id": "watchdog-1",
            "timestamp": "1970-01-01T00:00:01.234Z", "stream": "connect", "seq": 7,
            "epoch": "0000000000000abc", "src_id": "r1", "connected": False, "duration": 1500})

    def test_enums_big_integers_and_repeated_fields_render_like_the_c_side(self):
        event = self.event()
        event.meta.seq = 2 ** 60
        event.terminator.precedence = 1                 # PRECEDENCE_REQUIRED
        fields = consumer.event_dict("terminator.created", event)
        self.assertEqual(fields["precedence"], "required")
        self.assertEqual(fields["seq"], str(2 ** 60))
        event = self.event()
        event.presence.instance_epoch = 2 ** 53
        event.presence.routers.extend(["a", "b"])
        fields = consumer.event_dict("presence.beacon", event)
        self.assertEqual(fields["instance_epoch"], "9007199254740992")
        self.assertEqual(fields["routers"], ["a", "b"])

    def test_a_message_without_stream_meta_is_refused(self):
        good = self.event()
        good.connect.src_id = "r1"
        self.assertIsNotNone(consumer.decode([b"connect.x", good.SerializeToString()],
                                             self.Event, 1024))
        bare = self.Event()
        bare.connect.src_id = "r1"
        self.assertIsNone(consumer.decode([b"connect.x", bare.SerializeToString()], self.Event, 1024))
        self.assertIsNone(consumer.decode([b"connect.x", b"\xff\xff\xff"], self.Event, 1024))
        self.assertIsNone(consumer.decode([b"connect.x", good.SerializeToString()], self.Event, 4))
        self.assertIsNone(consumer.decode([b"connect.x"], self.Event, 1024))

    def test_event_id_is_rendered_when_set(self):
        event = self.event()
        event.meta.event_id = "watchdog-1:42"
        event.connect.src_id = "r1"
        fields = consumer.event_dict("connect.router-to-ctrl", event)
        self.assertEqual(fields["event_id"], "watchdog-1:42")
        self.assertNotIn("event_id", consumer.event_dict("connect.router-to-ctrl", self.event()))
        self.assertNotIn("event_id=", consumer.event_text("connect.router-to-ctrl", fields))

    def test_text_line_reads_time_topic_source_seq_then_fields(self):
        event = self.event()
        event.stray.step = "await-hello"
        event.stray.accepted_at_ms = 5
        fields = consumer.event_dict("stray.detected", event)
        self.assertEqual(consumer.event_text("stray.detected", fields),
                         "1970-01-01T00:00:01.234Z stray.detected src=watchdog-1 seq=7 "
                         "accepted_at_ms=5 step=await-hello")


if __name__ == "__main__":
    unittest.main()
