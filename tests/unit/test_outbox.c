/*  test_outbox.c: the durable outbox file (ep_outbox) and the event-id
    window (ep_dedupe): bounds, replay after reopen, a torn tail, ids that
    are never reused, duplicates dropped within the window. */
#include <criterion/criterion.h>
#include "ep_outbox.h"
#include "ep_dedupe.h"
#include <unistd.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <signal.h>
#include <errno.h>

static char s_dir [64];
static char s_path [128];

static void
s_setup (void)
{
    snprintf (s_dir, sizeof s_dir, "/tmp/ep-outbox-XXXXXX");
    cr_assert_not_null (mkdtemp (s_dir));
    snprintf (s_path, sizeof s_path, "%s/watchdog-a.outbox", s_dir);
}

static void
s_teardown (void)
{
    unlink (s_path);
    rmdir (s_dir);
}

static ep_outbox_t *
s_open (size_t events, size_t bytes)
{
    char err [256] = "";
    ep_outbox_t *outbox = ep_outbox_open (s_path, events, bytes, err, sizeof err);
    cr_assert_not_null (outbox, "open: %s", err);
    return outbox;
}

static int64_t
s_append (ep_outbox_t *outbox, const char *body)
{
    char err [256] = "";
    int64_t seq = ep_outbox_append (outbox, "connect.router-to-ctrl", body, strlen (body), err, sizeof err);
    cr_assert_geq (seq, 0, "append: %s", err);
    return seq;
}

TestSuite (outbox, .init = s_setup, .fini = s_teardown);

Test (outbox, records_are_handed_out_only_once_synced_and_in_order)
{
    ep_outbox_t *outbox = s_open (100, 1 << 20);
    cr_assert_eq (s_append (outbox, "one"), 1);
    cr_assert_eq (s_append (outbox, "two"), 2);
    ep_outbox_record_t record;
    cr_assert_not (ep_outbox_next (outbox, &record), "an unsynced record is not decided yet");
    cr_assert_eq (ep_outbox_sync (outbox, NULL, 0), 0);
    cr_assert (ep_outbox_next (outbox, &record));
    cr_assert_eq (record.seq, 1);
    cr_assert_str_eq (record.topic, "connect.router-to-ctrl");
    cr_assert_eq (record.size, 3);
    cr_assert_eq (memcmp (record.body, "one", 3), 0);
    cr_assert (ep_outbox_next (outbox, &record));
    cr_assert_eq (record.seq, 2);
    cr_assert_not (ep_outbox_next (outbox, &record));
    cr_assert_eq (ep_outbox_in_flight (outbox), 2);
    ep_outbox_destroy (&outbox);
}

Test (outbox, unacknowledged_records_are_replayed_after_reopen_with_their_seqs)
{
    ep_outbox_t *outbox = s_open (100, 1 << 20);
    for (int i = 0; i < 5; i++)
        s_append (outbox, "event");
    ep_outbox_sync (outbox, NULL, 0);
    ep_outbox_record_t record;
    for (int i = 0; i < 5; i++)
        ep_outbox_next (outbox, &record);
    cr_assert_eq (ep_outbox_ack (outbox, 2, NULL, 0), 0);
    cr_assert_eq (ep_outbox_count (outbox), 5, "2 is delivered, but 1 is not: both kept");
    cr_assert_eq (ep_outbox_ack (outbox, 1, NULL, 0), 0);
    cr_assert_eq (ep_outbox_count (outbox), 3, "1 and 2 delivered: forgotten");
    ep_outbox_destroy (&outbox);        //  as a SIGKILL would: nothing flushed at close

    outbox = s_open (100, 1 << 20);
    cr_assert_eq (ep_outbox_count (outbox), 3);
    for (uint64_t seq = 3; seq <= 5; seq++) {
        cr_assert (ep_outbox_next (outbox, &record));
        cr_assert_eq (record.seq, seq, "replayed with its own seq (its event id)");
    }
    cr_assert_not (ep_outbox_next (outbox, &record));
    cr_assert_eq (s_append (outbox, "after"), 6, "new records continue the sequence");
    ep_outbox_destroy (&outbox);
}

Test (outbox, seqs_are_never_reused_after_the_outbox_empties)
{
    ep_outbox_t *outbox = s_open (100, 1 << 20);
    s_append (outbox, "a");
    s_append (outbox, "b");
    ep_outbox_sync (outbox, NULL, 0);
    ep_outbox_record_t record;
    while (ep_outbox_next (outbox, &record));
    cr_assert_eq (ep_outbox_ack (outbox, 1, NULL, 0), 0);
    cr_assert_eq (ep_outbox_ack (outbox, 2, NULL, 0), 0);
    cr_assert_eq (ep_outbox_count (outbox), 0);
    struct stat st;
    cr_assert_eq (stat (s_path, &st), 0);
    cr_assert_eq (st.st_size, EP_OUTBOX_HEADER, "an emptied outbox is cut to its header");
    ep_outbox_destroy (&outbox);
    outbox = s_open (100, 1 << 20);
    cr_assert_eq (s_append (outbox, "c"), 3, "the header keeps the next seq");
    ep_outbox_destroy (&outbox);
}

Test (outbox, a_torn_tail_is_cut_and_the_whole_records_kept)
{
    ep_outbox_t *outbox = s_open (100, 1 << 20);
    s_append (outbox, "first");
    s_append (outbox, "second");
    ep_outbox_sync (outbox, NULL, 0);
    ep_outbox_destroy (&outbox);
    //  A crash in the middle of a third append: half a record at the end.
    uint8_t record [64];
    size_t size = ep_outbox_encode (record, 3, "stray.detected", "third", 5);
    int fd = open (s_path, O_WRONLY | O_APPEND);
    cr_assert_geq (fd, 0);
    cr_assert_eq (write (fd, record, size / 2), (ssize_t) (size / 2));
    close (fd);

    outbox = s_open (100, 1 << 20);
    cr_assert_eq (ep_outbox_count (outbox), 2);
    cr_assert_eq (ep_outbox_torn (outbox), size / 2);
    cr_assert_eq (s_append (outbox, "third again"), 3, "the torn record's seq was never decided");
    ep_outbox_sync (outbox, NULL, 0);
    ep_outbox_destroy (&outbox);
    outbox = s_open (100, 1 << 20);
    cr_assert_eq (ep_outbox_count (outbox), 3, "appends after a cut tail survive the next open");
    cr_assert_eq (ep_outbox_torn (outbox), 0);
    ep_outbox_destroy (&outbox);
}

static void
s_count (void *arg, const ep_outbox_record_t *record)
{
    (void) record;
    (*(size_t *) arg)++;
}

Test (outbox, scan_stops_at_a_bad_checksum_or_a_seq_going_back)
{
    uint8_t data [256];
    size_t one = ep_outbox_encode (data, 5, "a.b", "x", 1);
    size_t two = ep_outbox_encode (data + one, 6, "a.b", "y", 1);
    size_t seen = 0;
    cr_assert_eq (ep_outbox_scan (data, one + two, s_count, &seen), one + two);
    cr_assert_eq (seen, 2);
    data [one + two - 1] ^= 0xff;
    seen = 0;
    cr_assert_eq (ep_outbox_scan (data, one + two, s_count, &seen), one);
    cr_assert_eq (seen, 1);
    ep_outbox_encode (data + one, 5, "a.b", "y", 1);
    seen = 0;
    cr_assert_eq (ep_outbox_scan (data, one + two, s_count, &seen), one, "seq 5 twice: not a record");
    //  A record with a matching CRC but no topic was never appended:
    //  damage (the fuzzer forged one), so the scan ends before it.
    size_t empty = ep_outbox_encode (data + one, 6, "", "y", 1);
    seen = 0;
    cr_assert_eq (ep_outbox_scan (data, one + empty, s_count, &seen), one, "an empty topic: not a record");
    cr_assert_eq (seen, 1);
}

Test (outbox, a_full_outbox_refuses_appends_and_drops_nothing)
{
    ep_outbox_t *outbox = s_open (3, 1 << 20);
    for (int i = 0; i < 3; i++)
        cr_assert_gt (s_append (outbox, "e"), 0);
    cr_assert (ep_outbox_full (outbox, 1));
    cr_assert_eq (s_append (outbox, "e"), 0, "refused, not dropped");
    cr_assert_eq (ep_outbox_count (outbox), 3);
    ep_outbox_sync (outbox, NULL, 0);
    ep_outbox_record_t record;
    ep_outbox_next (outbox, &record);
    ep_outbox_ack (outbox, record.seq, NULL, 0);
    cr_assert_not (ep_outbox_full (outbox, 1), "room again once one is delivered");
    cr_assert_eq (s_append (outbox, "e"), 4);
    ep_outbox_destroy (&outbox);

    unlink (s_path);
    outbox = s_open (1000, 3 * (EP_OUTBOX_OVERHEAD + 40));
    size_t taken = 0;
    while (s_append (outbox, "0123456789") > 0)
        taken++;
    cr_assert_eq (taken, 3, "bounded in bytes too");
    ep_outbox_destroy (&outbox);
}

Test (outbox, rewind_hands_out_the_unacknowledged_again)
{
    ep_outbox_t *outbox = s_open (100, 1 << 20);
    s_append (outbox, "a");
    s_append (outbox, "b");
    ep_outbox_sync (outbox, NULL, 0);
    ep_outbox_record_t record;
    s_append (outbox, "c");
    ep_outbox_sync (outbox, NULL, 0);
    while (ep_outbox_next (outbox, &record));
    ep_outbox_ack (outbox, 1, NULL, 0);
    ep_outbox_ack (outbox, 3, NULL, 0);
    ep_outbox_rewind (outbox);
    cr_assert (ep_outbox_next (outbox, &record));
    cr_assert_eq (record.seq, 2, "only the undelivered are handed out again");
    cr_assert_not (ep_outbox_next (outbox, &record));
    ep_outbox_ack (outbox, 2, NULL, 0);
    cr_assert_eq (ep_outbox_count (outbox), 0);
    ep_outbox_destroy (&outbox);
}

Test (outbox, a_file_that_is_not_an_outbox_is_refused_with_a_reason)
{
    int fd = open (s_path, O_WRONLY | O_CREAT, 0600);
    cr_assert_eq (write (fd, "hello, this is not an outbox", 28), 28);
    close (fd);
    char err [256] = "";
    cr_assert_null (ep_outbox_open (s_path, 10, 1000, err, sizeof err));
    cr_assert (strstr (err, "not an event outbox"), "%s", err);
}

Test (dedupe, a_repeated_id_is_dropped_within_the_window)
{
    ep_dedupe_t *dedupe = ep_dedupe_new (3);
    cr_assert (ep_dedupe_fresh (dedupe, "watchdog-a:1"));
    cr_assert (ep_dedupe_fresh (dedupe, "watchdog-a:2"));
    cr_assert_not (ep_dedupe_fresh (dedupe, "watchdog-a:1"));
    cr_assert (ep_dedupe_fresh (dedupe, "watchdog-b:1"), "ids of another outbox are distinct");
    cr_assert_eq (ep_dedupe_duplicates (dedupe), 1);
    ep_dedupe_destroy (&dedupe);
}

Test (dedupe, the_window_is_bounded_and_forgets_the_oldest)
{
    ep_dedupe_t *dedupe = ep_dedupe_new (3);
    char id [32];
    for (int i = 1; i <= 10; i++) {
        snprintf (id, sizeof id, "reaper-x:%d", i);
        cr_assert (ep_dedupe_fresh (dedupe, id));
    }
    cr_assert_eq (ep_dedupe_size (dedupe), 3);
    cr_assert_not (ep_dedupe_fresh (dedupe, "reaper-x:10"));
    cr_assert_not (ep_dedupe_fresh (dedupe, "reaper-x:8"));
    cr_assert (ep_dedupe_fresh (dedupe, "reaper-x:1"),
               "older than the window: delivered again (at least once, never zero)");
    ep_dedupe_destroy (&dedupe);
}

Test (dedupe, a_smaller_window_keeps_the_newest_ids)
{
    ep_dedupe_t *dedupe = ep_dedupe_new (5);
    char id [32];
    for (int i = 1; i <= 7; i++) {          //  wrapped: 3 .. 7 held, oldest not at slot 0
        snprintf (id, sizeof id, "reaper-x:%d", i);
        cr_assert (ep_dedupe_fresh (dedupe, id));
    }
    ep_dedupe_resize (dedupe, 2);
    cr_assert_eq (ep_dedupe_window (dedupe), 2);
    cr_assert_eq (ep_dedupe_size (dedupe), 2);
    cr_assert_not (ep_dedupe_fresh (dedupe, "reaper-x:7"));
    cr_assert_not (ep_dedupe_fresh (dedupe, "reaper-x:6"));
    cr_assert (ep_dedupe_fresh (dedupe, "reaper-x:5"), "forgotten by the resize");
    //  5 went in over 6, the oldest: 7 and 5 held.
    cr_assert (ep_dedupe_fresh (dedupe, "reaper-x:6"));
    cr_assert_not (ep_dedupe_fresh (dedupe, "reaper-x:5"));
    cr_assert_eq (ep_dedupe_size (dedupe), 2);
    ep_dedupe_destroy (&dedupe);
}

Test (dedupe, a_larger_window_keeps_every_id_in_order)
{
    ep_dedupe_t *dedupe = ep_dedupe_new (3);
    char id [32];
    for (int i = 1; i <= 4; i++) {          //  2 .. 4 held
        snprintf (id, sizeof id, "watchdog-a:%d", i);
        cr_assert (ep_dedupe_fresh (dedupe, id));
    }
    ep_dedupe_resize (dedupe, 5);
    cr_assert_eq (ep_dedupe_window (dedupe), 5);
    cr_assert_eq (ep_dedupe_size (dedupe), 3);
    cr_assert (ep_dedupe_fresh (dedupe, "watchdog-a:5"));
    cr_assert (ep_dedupe_fresh (dedupe, "watchdog-a:6"));
    cr_assert_eq (ep_dedupe_size (dedupe), 5, "the window grew: nothing forgotten yet");
    cr_assert (ep_dedupe_fresh (dedupe, "watchdog-a:7"));
    cr_assert (ep_dedupe_fresh (dedupe, "watchdog-a:2"), "the oldest went first");
    for (int i = 4; i <= 7; i++) {
        snprintf (id, sizeof id, "watchdog-a:%d", i);
        cr_assert_not (ep_dedupe_fresh (dedupe, id), "%s still held", id);
    }
    ep_dedupe_destroy (&dedupe);
}

Test (dedupe, an_empty_window_resizes)
{
    ep_dedupe_t *dedupe = ep_dedupe_new (EP_DEDUPE_WINDOW);
    ep_dedupe_resize (dedupe, 1);
    cr_assert_eq (ep_dedupe_size (dedupe), 0);
    cr_assert (ep_dedupe_fresh (dedupe, "a:1"));
    cr_assert (ep_dedupe_fresh (dedupe, "a:2"));
    cr_assert (ep_dedupe_fresh (dedupe, "a:1"), "a window of one holds the last id only");
    cr_assert_eq (ep_dedupe_size (dedupe), 1);
    ep_dedupe_destroy (&dedupe);
}

//  The lock: an open outbox is no one else's. A child process owns one
//  (it appends, and an ack rewrites the file: the lock must survive the
//  rename), then dies by SIGKILL; only then may it be adopted.
Test (outbox, an_outbox_is_locked_while_its_owner_lives_and_adopted_once_it_dies)
{
    int ready [2], hold [2];
    cr_assert_eq (pipe (ready), 0);
    cr_assert_eq (pipe (hold), 0);
    pid_t child = fork ();
    cr_assert_geq (child, 0);
    if (child == 0) {
        ep_outbox_t *outbox = ep_outbox_open (s_path, 10, 100000, NULL, 0);
        if (!outbox)
            _exit (1);
        for (int i = 0; i < 3; i++)
            ep_outbox_append (outbox, "connect.router-to-ctrl", "event", 5, NULL, 0);
        ep_outbox_sync (outbox, NULL, 0);
        ep_outbox_record_t record;
        ep_outbox_next (outbox, &record);
        ep_outbox_ack (outbox, record.seq, NULL, 0);    //  seq 1 delivered: base moves
        char byte = 'r';
        if (write (ready [1], &byte, 1) != 1)
            _exit (1);
        if (read (hold [0], &byte, 1) < 0)              //  until killed
            _exit (1);
        _exit (0);
    }
    close (ready [1]);
    close (hold [0]);
    char byte;
    cr_assert_eq (read (ready [0], &byte, 1), 1, "the child opened its outbox");

    char err [512] = "";
    errno = 0;
    cr_assert_null (ep_outbox_adopt (s_path, err, sizeof err), "its owner lives");
    cr_assert_eq (errno, EWOULDBLOCK);
    errno = 0;
    cr_assert_null (ep_outbox_open (s_path, 10, 100000, err, sizeof err), "nor may a second owner open it");
    cr_assert_eq (errno, EWOULDBLOCK);
    cr_assert (strstr (err, "in use by another process"), "%s", err);

    kill (child, SIGKILL);
    int status;
    cr_assert_eq (waitpid (child, &status, 0), child);
    cr_assert (WIFSIGNALED (status));

    ep_outbox_t *adopted = ep_outbox_adopt (s_path, err, sizeof err);
    cr_assert_not_null (adopted, "its owner died: %s", err);
    cr_assert_eq (ep_outbox_count (adopted), 2, "the undelivered ones");
    errno = 0;
    cr_assert_null (ep_outbox_adopt (s_path, NULL, 0), "one adopter at a time");
    cr_assert_eq (errno, EWOULDBLOCK);
    ep_outbox_record_t record;
    cr_assert (ep_outbox_next (adopted, &record));
    cr_assert_eq (record.seq, 2, "with their original seqs");
    cr_assert (ep_outbox_next (adopted, &record));
    cr_assert_eq (record.seq, 3);
    ep_outbox_ack (adopted, 2, NULL, 0);
    ep_outbox_ack (adopted, 3, NULL, 0);
    cr_assert_eq (ep_outbox_count (adopted), 0);
    cr_assert_eq (ep_outbox_remove (&adopted, err, sizeof err), 0, "%s", err);
    cr_assert_null (adopted);
    cr_assert_not (access (s_path, F_OK) == 0, "removed once drained");
    errno = 0;
    cr_assert_null (ep_outbox_adopt (s_path, NULL, 0));
    cr_assert_eq (errno, ENOENT, "adopting never creates an outbox");
    cr_assert_not (access (s_path, F_OK) == 0);
    close (ready [0]);
    close (hold [1]);
}
