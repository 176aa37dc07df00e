/*  test_tracker.c: the pure stream-continuity state machine. */
#include <criterion/criterion.h>
#include "ep_tracker.h"

typedef struct {
    ep_stream_report_t reports [32];
    char sources [32][64];
    size_t count;
} s_log_t;

static void
s_record (void *arg, const ep_stream_report_t *report)
{
    s_log_t *log = (s_log_t *) arg;
    cr_assert_lt (log->count, 32);
    log->reports [log->count] = *report;
    snprintf (log->sources [log->count], 64, "%s", report->source_id);
    log->count++;
}

#define T0 1000000      //  subscribe time (wall ms)

static ep_tracker_t *
s_tracker (s_log_t *log, const char *prefix)
{
    memset (log, 0, sizeof *log);
    ep_tracker_t *tracker = ep_tracker_new (T0, 3500, s_record, log);
    ep_tracker_subscribe (tracker, prefix);
    return tracker;
}

Test (tracker, in_order_stream_has_no_reports)
{
    s_log_t log;
    ep_tracker_t *t = s_tracker (&log, "");
    for (uint64_t seq = 1; seq <= 100; seq++)
        cr_assert (ep_tracker_observe (t, "model-a", "model", 7, T0 + 5, seq, false, 10));
    cr_assert (ep_tracker_observe (t, "model-a", "model", 7, T0 + 5, 100, true, 20));
    cr_assert_eq (log.count, 0);
    cr_assert_eq (ep_tracker_lost (t), 0);
    ep_tracker_destroy (&t);
}

Test (tracker, gap_in_the_middle_reports_exact_range)
{
    s_log_t log;
    ep_tracker_t *t = s_tracker (&log, "model.");
    ep_tracker_observe (t, "m", "model", 7, T0 + 5, 1, false, 0);
    ep_tracker_observe (t, "m", "model", 7, T0 + 5, 2, false, 0);
    ep_tracker_observe (t, "m", "model", 7, T0 + 5, 6, false, 0);
    //  Not yet: another bus may bring 3..5 within the reorder delay.
    cr_assert_eq (log.count, 0);
    ep_tracker_tick (t, EP_TRACKER_REORDER_MS - 1);
    cr_assert_eq (log.count, 0);
    ep_tracker_tick (t, EP_TRACKER_REORDER_MS);
    cr_assert_eq (log.count, 1);
    cr_assert_eq (log.reports [0].kind, EP_STREAM_GAP);
    cr_assert_eq (log.reports [0].from, 3);
    cr_assert_eq (log.reports [0].to, 5);
    cr_assert_not (log.reports [0].via_heartbeat);
    cr_assert_eq (ep_tracker_lost (t), 3);
    ep_tracker_destroy (&t);
}

Test (tracker, loss_at_the_end_is_reported_by_heartbeat)
{
    s_log_t log;
    ep_tracker_t *t = s_tracker (&log, "");
    ep_tracker_observe (t, "m", "model", 7, T0 + 5, 1, false, 0);
    ep_tracker_observe (t, "m", "model", 7, T0 + 5, 2, true, 0);   //  heartbeat: 2 was sent
    cr_assert_eq (log.count, 0);
    ep_tracker_tick (t, EP_TRACKER_REORDER_MS);
    cr_assert_eq (log.count, 1);
    cr_assert_eq (log.reports [0].kind, EP_STREAM_GAP);
    cr_assert_eq (log.reports [0].from, 2);
    cr_assert_eq (log.reports [0].to, 2);
    cr_assert (log.reports [0].via_heartbeat);
    //  The same heartbeat again reports nothing new.
    ep_tracker_observe (t, "m", "model", 7, T0 + 5, 2, true, 0);
    ep_tracker_tick (t, 2 * EP_TRACKER_REORDER_MS);
    cr_assert_eq (log.count, 1);
    ep_tracker_destroy (&t);
}

Test (tracker, duplicate_is_counted_silently_and_not_delivered)
{
    s_log_t log;
    ep_tracker_t *t = s_tracker (&log, "");
    ep_tracker_observe (t, "m", "model", 7, T0 + 5, 1, false, 0);
    ep_tracker_observe (t, "m", "model", 7, T0 + 5, 2, false, 0);
    cr_assert_not (ep_tracker_observe (t, "m", "model", 7, T0 + 5, 2, false, 0));
    cr_assert_eq (log.count, 0, "a copy from another bus is not news");
    cr_assert_eq (ep_tracker_duplicates (t), 1);
    ep_tracker_destroy (&t);
}

Test (tracker, filtered_subscriber_reports_no_false_gaps)
{
    s_log_t log;
    //  Only one type of the connect stream: seq jumps are other types.
    ep_tracker_t *t = s_tracker (&log, "connect.router-to-ctrl");
    cr_assert_not (ep_tracker_whole (t, "connect"));
    ep_tracker_observe (t, "w", "connect", 7, T0 + 5, 1, false, 0);
    ep_tracker_observe (t, "w", "connect", 7, T0 + 5, 5, false, 0);
    ep_tracker_observe (t, "w", "connect", 7, T0 + 5, 9, false, 0);
    ep_tracker_observe (t, "w", "connect", 7, T0 + 5, 12, true, 0);
    cr_assert_eq (log.count, 0);
    ep_tracker_destroy (&t);
}

Test (tracker, whole_stream_prefixes)
{
    s_log_t log;
    ep_tracker_t *t = s_tracker (&log, "conn");
    cr_assert (ep_tracker_whole (t, "connect"));
    cr_assert_not (ep_tracker_whole (t, "model"));
    ep_tracker_subscribe (t, "model.");
    cr_assert (ep_tracker_whole (t, "model"));
    cr_assert_not (ep_tracker_whole (t, "modelx"));
    ep_tracker_destroy (&t);
}

Test (tracker, many_narrow_prefixes_never_cover_a_stream)
{
    ep_tracker_t *t = ep_tracker_new (0, 3000, NULL, NULL);
    //  The watchdog's shape: one prefix per joined router.
    for (int i = 0; i < 10000; i++) {
        char prefix [32];
        snprintf (prefix, sizeof prefix, "cmd.r%d.", i);
        ep_tracker_subscribe (t, prefix);
    }
    ep_tracker_subscribe (t, "presence.join");
    cr_assert_not (ep_tracker_whole (t, "cmd"));
    cr_assert_not (ep_tracker_whole (t, "presence"));
    ep_tracker_subscribe (t, "cmd.");
    cr_assert (ep_tracker_whole (t, "cmd"));
    ep_tracker_unsubscribe (t, "cmd.r7.");
    cr_assert (ep_tracker_whole (t, "cmd"), "a narrow unsubscribe leaves the whole one");
    ep_tracker_unsubscribe (t, "cmd.");
    cr_assert_not (ep_tracker_whole (t, "cmd"));
    ep_tracker_subscribe (t, "pres");
    cr_assert (ep_tracker_whole (t, "presence"));
    ep_tracker_destroy (&t);
}

Test (tracker, joining_mid_stream_is_not_a_gap)
{
    s_log_t log;
    ep_tracker_t *t = s_tracker (&log, "");
    //  The publisher started before we subscribed: seq 500 is our start.
    ep_tracker_observe (t, "m", "model", 7, T0 - 60000, 500, false, 0);
    ep_tracker_observe (t, "m", "model", 7, T0 - 60000, 501, false, 0);
    cr_assert_eq (log.count, 0);
    ep_tracker_destroy (&t);
}

Test (tracker, publisher_born_after_us_must_start_at_one)
{
    s_log_t log;
    ep_tracker_t *t = s_tracker (&log, "");
    ep_tracker_observe (t, "m", "model", 7, T0 + 100, 3, false, 0);
    ep_tracker_tick (t, EP_TRACKER_REORDER_MS);
    cr_assert_eq (log.count, 1);
    cr_assert_eq (log.reports [0].kind, EP_STREAM_GAP);
    cr_assert_eq (log.reports [0].from, 1);
    cr_assert_eq (log.reports [0].to, 2);
    ep_tracker_destroy (&t);
}

Test (tracker, restart_is_reported_and_new_epoch_checked_from_one)
{
    s_log_t log;
    ep_tracker_t *t = s_tracker (&log, "");
    ep_tracker_observe (t, "m", "model", 7, T0 + 5, 1, false, 0);
    ep_tracker_observe (t, "m", "model", 7, T0 + 5, 2, false, 0);
    //  Same source, new epoch; its first message seen is seq 2.
    cr_assert (ep_tracker_observe (t, "m", "model", 9, T0 + 50, 2, false, 0));
    ep_tracker_tick (t, EP_TRACKER_REORDER_MS);
    cr_assert_eq (log.count, 2);
    cr_assert_eq (log.reports [0].kind, EP_STREAM_RESTART);
    cr_assert_eq (log.reports [0].epoch, 9);
    cr_assert_eq (log.reports [1].kind, EP_STREAM_GAP);
    cr_assert_eq (log.reports [1].from, 1);
    cr_assert_eq (log.reports [1].to, 1);
    //  A straggler of the old epoch is not delivered.
    cr_assert_not (ep_tracker_observe (t, "m", "model", 7, T0 + 5, 3, false, 0));
    ep_tracker_destroy (&t);
}

Test (tracker, silent_publisher_then_resumed)
{
    s_log_t log;
    ep_tracker_t *t = s_tracker (&log, "");
    ep_tracker_observe (t, "m", "model", 7, T0 + 5, 1, false, 1000);
    cr_assert_eq (ep_tracker_tick (t, 4000), 0);
    cr_assert_eq (log.count, 0);
    cr_assert_eq (ep_tracker_tick (t, 4500), 1);
    cr_assert_eq (log.count, 1);
    cr_assert_eq (log.reports [0].kind, EP_STREAM_SILENT);
    cr_assert_str_eq (log.sources [0], "m");
    ep_tracker_tick (t, 9000);             //  reported once, not every tick
    cr_assert_eq (log.count, 1);
    ep_tracker_observe (t, "m", "model", 7, T0 + 5, 1, true, 9100);
    cr_assert_eq (log.count, 2);
    cr_assert_eq (log.reports [1].kind, EP_STREAM_RESUMED);
    ep_tracker_destroy (&t);
}

Test (tracker, streams_of_one_source_are_independent)
{
    s_log_t log;
    ep_tracker_t *t = s_tracker (&log, "");
    ep_tracker_observe (t, "w", "connect", 7, T0 + 5, 1, false, 0);
    ep_tracker_observe (t, "w", "stray", 7, T0 + 5, 1, false, 0);
    ep_tracker_observe (t, "w", "connect", 7, T0 + 5, 2, false, 0);
    ep_tracker_observe (t, "w", "stray", 7, T0 + 5, 2, false, 0);
    cr_assert_eq (log.count, 0);
    cr_assert (ep_tracker_seen (t, "stray"));
    cr_assert_not (ep_tracker_seen (t, "model"));
    ep_tracker_destroy (&t);
}

//  The tracker caches the last source and each stream's wholeness: both
//  must follow interleaved sources and subscriptions changed mid-stream.
Test (tracker, interleaved_sources_keep_their_own_state)
{
    s_log_t log;
    ep_tracker_t *t = s_tracker (&log, "");
    for (uint64_t seq = 1; seq <= 10; seq++) {
        ep_tracker_observe (t, "a", "model", 7, T0 + 5, seq, false, 0);
        ep_tracker_observe (t, "b", "model", 8, T0 + 5, seq, false, 0);
        ep_tracker_observe (t, "a", "connect", 9, T0 + 5, seq, false, 0);
    }
    cr_assert_eq (log.count, 0);
    ep_tracker_observe (t, "b", "model", 8, T0 + 5, 13, false, 0);
    ep_tracker_observe (t, "a", "model", 7, T0 + 5, 11, false, 0);
    ep_tracker_tick (t, EP_TRACKER_REORDER_MS);
    cr_assert_eq (log.count, 1);
    cr_assert_str_eq (log.sources [0], "b");
    cr_assert_eq (log.reports [0].from, 11);
    cr_assert_eq (log.reports [0].to, 12);
    cr_assert (ep_tracker_seen (t, "connect"));
    ep_tracker_destroy (&t);
}

Test (tracker, wholeness_follows_subscriptions_changed_mid_stream)
{
    s_log_t log;
    ep_tracker_t *t = s_tracker (&log, "connect.router-to-ctrl");
    ep_tracker_observe (t, "w", "connect", 7, T0 + 5, 1, false, 0);
    ep_tracker_observe (t, "w", "connect", 7, T0 + 5, 5, false, 0);
    cr_assert_eq (log.count, 0, "a filtered subscriber judges no gaps");
    ep_tracker_subscribe (t, "connect.");
    ep_tracker_observe (t, "w", "connect", 7, T0 + 5, 9, false, 0);
    ep_tracker_tick (t, EP_TRACKER_REORDER_MS);
    cr_assert_eq (log.count, 1, "now the stream is whole: 6..8 are lost");
    cr_assert_eq (log.reports [0].from, 6);
    cr_assert_eq (log.reports [0].to, 8);
    ep_tracker_unsubscribe (t, "connect.");
    ep_tracker_observe (t, "w", "connect", 7, T0 + 5, 20, false, 0);
    ep_tracker_tick (t, 2 * EP_TRACKER_REORDER_MS);
    cr_assert_eq (log.count, 1, "filtered again: no gap");
    ep_tracker_destroy (&t);
}

Test (tracker, long_source_ids_are_told_apart)
{
    //  Two ids that agree on their first 300 characters.
    char a [320], b [320];
    memset (a, 'x', 310);
    memcpy (b, a, 310);
    a [310] = 'a';
    b [310] = 'b';
    a [311] = b [311] = 0;
    s_log_t log;
    ep_tracker_t *t = s_tracker (&log, "");
    ep_tracker_observe (t, a, "model", 7, T0 + 5, 1, false, 0);
    ep_tracker_observe (t, b, "model", 7, T0 + 5, 1, false, 0);
    ep_tracker_observe (t, a, "model", 7, T0 + 5, 2, false, 0);
    ep_tracker_observe (t, b, "model", 7, T0 + 5, 2, false, 0);
    cr_assert_eq (log.count, 0, "no duplicate: they are two sources");
    ep_tracker_destroy (&t);
}

//  ---------------------------------------------------------------------
//  Two buses: each message once per bus, each bus in order, the buses in
//  any order; a bus that dies loses what it held.

//  Feeds seq of source "m" on stream "model" (epoch 7) at now; delivered?
static bool
s_msg (ep_tracker_t *t, uint64_t seq, int64_t now)
{
    return ep_tracker_observe (t, "m", "model", 7, T0 + 5, seq, false, now);
}

Test (tracker, two_paths_deliver_each_message_once_without_reports)
{
    s_log_t log;
    ep_tracker_t *t = s_tracker (&log, "");
    //  Bus A ahead of bus B by three messages, interleaved.
    size_t delivered = 0;
    for (uint64_t seq = 1; seq <= 100; seq++) {
        delivered += s_msg (t, seq, (int64_t) seq);
        if (seq > 3)
            delivered += s_msg (t, seq - 3, (int64_t) seq);
    }
    for (uint64_t seq = 98; seq <= 100; seq++)
        delivered += s_msg (t, seq, 100);
    ep_tracker_tick (t, 100 + EP_TRACKER_REORDER_MS);
    cr_assert_eq (delivered, 100);
    cr_assert_eq (ep_tracker_duplicates (t), 100);
    cr_assert_eq (log.count, 0);
    cr_assert_eq (ep_tracker_lost (t), 0);
    ep_tracker_destroy (&t);
}

Test (tracker, late_fill_from_the_other_path_is_delivered_not_a_gap)
{
    s_log_t log;
    ep_tracker_t *t = s_tracker (&log, "");
    for (uint64_t seq = 1; seq <= 3; seq++)
        cr_assert (s_msg (t, seq, 0));
    //  Bus A lost 4 and 5 (killed and restarted); it delivers 6, 7 first.
    cr_assert (s_msg (t, 6, 10));
    cr_assert (s_msg (t, 7, 10));
    ep_tracker_tick (t, 10 + EP_TRACKER_REORDER_MS - 1);
    cr_assert_eq (log.count, 0);
    //  Bus B, slower, brings 4..7: the fills are delivered, 6 and 7 dropped.
    cr_assert (s_msg (t, 4, 50));
    cr_assert (s_msg (t, 5, 50));
    cr_assert_not (s_msg (t, 6, 50));
    cr_assert_not (s_msg (t, 7, 50));
    ep_tracker_tick (t, 1000);
    cr_assert_eq (log.count, 0);
    cr_assert_eq (ep_tracker_duplicates (t), 2);
    //  And the hot path is back: in order, nothing pending.
    cr_assert (s_msg (t, 8, 1000));
    cr_assert_not (s_msg (t, 8, 1000));
    ep_tracker_destroy (&t);
}

Test (tracker, a_hole_no_path_fills_is_a_gap_after_the_delay)
{
    s_log_t log;
    ep_tracker_t *t = s_tracker (&log, "");
    ep_tracker_set_reorder (t, 500);
    s_msg (t, 1, 0);
    s_msg (t, 2, 0);
    s_msg (t, 5, 100);          //  3, 4 missing
    s_msg (t, 9, 200);          //  6..8 missing: a second hole
    ep_tracker_tick (t, 599);
    cr_assert_eq (log.count, 0);
    ep_tracker_tick (t, 600);   //  the first hole's delay is over
    cr_assert_eq (log.count, 1);
    cr_assert_eq (log.reports [0].kind, EP_STREAM_GAP);
    cr_assert_eq (log.reports [0].from, 3);
    cr_assert_eq (log.reports [0].to, 4);
    cr_assert_not (log.reports [0].via_heartbeat);
    //  Each hole gets a full delay once it is the oldest (conservative).
    cr_assert (s_msg (t, 7, 700));  //  a late fill inside the second
    ep_tracker_tick (t, 1099);
    cr_assert_eq (log.count, 1);
    ep_tracker_tick (t, 1100);
    cr_assert_eq (log.count, 2);
    cr_assert_eq (log.reports [1].from, 6);
    cr_assert_eq (log.reports [1].to, 6);
    ep_tracker_tick (t, 1599);
    cr_assert_eq (log.count, 2);
    ep_tracker_tick (t, 1600);
    cr_assert_eq (log.count, 3);
    cr_assert_eq (log.reports [2].from, 8);
    cr_assert_eq (log.reports [2].to, 8);
    cr_assert_eq (ep_tracker_lost (t), 4);
    //  A fill after the gap was reported is too late: not delivered twice
    //  by anyone, dropped as a copy.
    cr_assert_not (s_msg (t, 3, 1200));
    ep_tracker_destroy (&t);
}

Test (tracker, heartbeat_tail_loss_waits_for_the_other_path)
{
    s_log_t log;
    ep_tracker_t *t = s_tracker (&log, "");
    s_msg (t, 1, 0);
    //  Bus A's heartbeat says 3 was sent; bus B brings 2 and 3 in time.
    ep_tracker_observe (t, "m", "model", 7, T0 + 5, 3, true, 10);
    cr_assert (s_msg (t, 2, 50));
    cr_assert (s_msg (t, 3, 60));
    ep_tracker_tick (t, 1000);
    cr_assert_eq (log.count, 0);
    //  Now 4 and 5 are sent, bus A dies with them, bus B lost them too.
    ep_tracker_observe (t, "m", "model", 7, T0 + 5, 5, true, 2000);
    ep_tracker_tick (t, 2000 + EP_TRACKER_REORDER_MS);
    cr_assert_eq (log.count, 1);
    cr_assert_eq (log.reports [0].kind, EP_STREAM_GAP);
    cr_assert_eq (log.reports [0].from, 4);
    cr_assert_eq (log.reports [0].to, 5);
    cr_assert (log.reports [0].via_heartbeat);
    ep_tracker_destroy (&t);
}

Test (tracker, far_jump_gives_up_below_the_window_at_once)
{
    s_log_t log;
    ep_tracker_t *t = s_tracker (&log, "");
    s_msg (t, 1, 0);
    cr_assert (s_msg (t, 3, 0));        //  2 waits
    cr_assert (s_msg (t, 200, 0));      //  beyond the window (64 seqs): 2 and 4..136 are lost now
    cr_assert_eq (log.count, 2);
    cr_assert_eq (log.reports [0].from, 2);
    cr_assert_eq (log.reports [0].to, 2);
    cr_assert_eq (log.reports [1].from, 4);
    cr_assert_eq (log.reports [1].to, 136);
    //  137..199 still wait for a fill.
    cr_assert (s_msg (t, 199, 10));
    ep_tracker_tick (t, EP_TRACKER_REORDER_MS);
    cr_assert_eq (log.count, 3);
    cr_assert_eq (log.reports [2].from, 137);
    cr_assert_eq (log.reports [2].to, 198);
    cr_assert_not (s_msg (t, 200, 300));
    ep_tracker_destroy (&t);
}

Test (tracker, restart_on_one_path_while_the_other_lags)
{
    s_log_t log;
    ep_tracker_t *t = s_tracker (&log, "");
    s_msg (t, 1, 0);
    s_msg (t, 2, 0);
    //  The publisher restarts (epoch 9); bus A brings its 1 first.
    cr_assert (ep_tracker_observe (t, "m", "model", 9, T0 + 50, 1, false, 10));
    //  Bus B still has the old epoch's 2 and 3: stragglers, not delivered.
    cr_assert_not (s_msg (t, 3, 20));
    //  Bus B's copy of the new epoch's 1 is a copy.
    cr_assert_not (ep_tracker_observe (t, "m", "model", 9, T0 + 50, 1, false, 30));
    ep_tracker_tick (t, 1000);
    cr_assert_eq (log.count, 1);
    cr_assert_eq (log.reports [0].kind, EP_STREAM_RESTART);
    ep_tracker_destroy (&t);
}
