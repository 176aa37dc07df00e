/*  test_reapkeys.c: a reaper shard's keys and records in etcd
    (services/reaper/reapkeys), and what a new owner makes of them. */
#include <criterion/criterion.h>
#include "reapkeys.h"

Test (reapkeys, keys_are_under_the_shard_prefix_and_parse_back)
{
    char key [REAPKEYS_KEY_MAX];
    reapkeys_key_t parsed;
    cr_assert_str_eq (reapkeys_shard ("/ep/", 7, key, sizeof key), "/ep/reaper/00007/");

    reapkeys_session ("/ep/", 7, "s-1", key, sizeof key);
    cr_assert_str_eq (key, "/ep/reaper/00007/s/s-1");
    cr_assert_eq (reapkeys_parse ("/ep/", key, &parsed), 0);
    cr_assert_eq (parsed.kind, REAPKEYS_SESSION);
    cr_assert_eq (parsed.shard, 7);
    cr_assert_str_eq (parsed.name, "s-1");

    reapkeys_job ("/ep/", 63, "job_9", key, sizeof key);
    cr_assert_eq (reapkeys_parse ("/ep/", key, &parsed), 0);
    cr_assert_eq (parsed.kind, REAPKEYS_JOB);
    cr_assert_eq (parsed.shard, 63);
    cr_assert_str_eq (parsed.name, "job_9");

    reapkeys_counters ("/ep/", 1, "r1", 3, key, sizeof key);
    cr_assert_str_eq (key, "/ep/reaper/00001/c/r1/00003");
    cr_assert_eq (reapkeys_parse ("/ep/", key, &parsed), 0);
    cr_assert_eq (parsed.kind, REAPKEYS_COUNTERS);
    cr_assert_str_eq (parsed.name, "r1");
    cr_assert_eq (parsed.chunk, 3);

    reapkeys_outbox ("/ep/", 2, 1234, 56, key, sizeof key);
    cr_assert_eq (reapkeys_parse ("/ep/", key, &parsed), 0);
    cr_assert_eq (parsed.kind, REAPKEYS_OUTBOX);
    cr_assert_eq (parsed.revision, 1234);
    cr_assert_eq (parsed.seq, 56);
    cr_assert_str_eq (reapkeys_event_id (2, 1234, 56, key, sizeof key), "reaper/2/1234-56");
}

Test (reapkeys, outbox_keys_sort_oldest_first)
{
    char a [REAPKEYS_KEY_MAX], b [REAPKEYS_KEY_MAX], c [REAPKEYS_KEY_MAX];
    reapkeys_outbox ("/ep/", 0, 9, 99, a, sizeof a);
    reapkeys_outbox ("/ep/", 0, 9, 100, b, sizeof b);
    reapkeys_outbox ("/ep/", 0, 10, 1, c, sizeof c);
    cr_assert_lt (strcmp (a, b), 0);
    cr_assert_lt (strcmp (b, c), 0);
}

Test (reapkeys, other_keys_are_not_taken_for_records)
{
    reapkeys_key_t parsed;
    const char *bad [] = {
        "/other/reaper/00001/s/x", "/ep/terminators/00001/t/x", "/ep/reaper/1/s/x",
        "/ep/reaper/00001/s/", "/ep/reaper/00001/x/y", "/ep/reaper/00001/c/r1",
        "/ep/reaper/00001/c/r1/3", "/ep/reaper/00001/o/12-34", "/ep/reaper/00001/",
        "/ep/reaper/00001/s/0123456789012345678901234567890123456789012345678901234567890123456789"
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++)
        cr_assert_eq (reapkeys_parse ("/ep/", bad [i], &parsed), -1, "%s", bad [i]);
}

Test (reapkeys, a_session_record_round_trips_open_and_closed)
{
    sessiondb_row_t row = {
        .id = "s1", .router_id = "r1", .identity_id = "i1", .service_id = "svc",
        .type = EP__SESSION_TYPE__DIAL, .state = EP__SESSION_STATE__ACTIVE, .priority = 3,
        .criticality = EP__CRITICALITY__CRITICALITY_HIGH, .created_ms = 1000, .last_seen_ms = 2000
    };
    size_t size;
    uint8_t *bytes = reapkeys_pack_session (&row, &size);
    sessiondb_row_t back;
    Ep__ReaperSessionRecord *msg;
    cr_assert_eq (reapkeys_unpack_session (bytes, size, &back, &msg), 0);
    cr_assert_str_eq (back.id, "s1");
    cr_assert_str_eq (back.router_id, "r1");
    cr_assert_str_eq (back.service_id, "svc");
    cr_assert_eq (back.state, EP__SESSION_STATE__ACTIVE);
    cr_assert_eq (back.priority, 3);
    cr_assert_eq (back.criticality, EP__CRITICALITY__CRITICALITY_HIGH);
    cr_assert_eq (back.created_ms, 1000);
    cr_assert_null (back.close_reason);
    ep__reaper_session_record__free_unpacked (msg, NULL);
    free (bytes);

    row.state = EP__SESSION_STATE__CLOSED;
    row.close_reason = "router-deleted";
    row.closed_ms = 5000;
    row.bytes_rx = 1ULL << 40;
    row.job_id = "job1";
    bytes = reapkeys_pack_session (&row, &size);
    cr_assert_eq (reapkeys_unpack_session (bytes, size, &back, &msg), 0);
    cr_assert_eq (back.state, EP__SESSION_STATE__CLOSED);
    cr_assert_str_eq (back.close_reason, "router-deleted");
    cr_assert_eq (back.closed_ms, 5000);
    cr_assert_eq (back.bytes_rx, 1ULL << 40);
    cr_assert_str_eq (back.job_id, "job1");
    ep__reaper_session_record__free_unpacked (msg, NULL);
    free (bytes);

    //  Small enough for etcd many times over in one transaction.
    cr_assert_lt (size, 200);
    cr_assert_eq (reapkeys_unpack_session ("\x0a\x02\x0a\x00", 4, &back, &msg), -1);
    cr_assert_null (msg);
}

Test (reapkeys, a_job_record_keeps_its_deadline_progress_and_counts)
{
    reapkeys_job_t job = {
        .job = { .id = "job1", .reason = "router-deleted", .target_type = "router",
                 .target_id = "r1", .revision = 42, .started_ms = 1000, .deadline_ms = 16000,
                 .scheduled = 20000 },
        .marked = 5000, .marking_done = false
    };
    job.closed [0] = 1200;      //  router-deleted: acknowledged
    job.closed [6] = 3;         //  client-closed
    size_t size;
    uint8_t *bytes = reapkeys_pack_job (&job, &size);
    reapkeys_job_t back;
    Ep__ReaperJobRecord *msg;
    cr_assert_eq (reapkeys_unpack_job (bytes, size, &back, &msg), 0);
    cr_assert_str_eq (back.job.id, "job1");
    cr_assert_str_eq (back.job.target_id, "r1");
    cr_assert_eq (back.job.revision, 42);
    cr_assert_eq (back.job.deadline_ms, 16000);
    cr_assert_eq (back.job.scheduled, 20000);
    cr_assert_eq (back.marked, 5000);
    cr_assert_not (back.marking_done);
    cr_assert_eq (back.closed [0], 1200);
    cr_assert_eq (back.closed [5], 0);
    cr_assert_eq (back.closed [6], 3);
    //  One record for 20,000 sessions, not a mark each.
    cr_assert_lt (size, 200);
    ep__reaper_job_record__free_unpacked (msg, NULL);
    free (bytes);
}

Test (reapkeys, counters_are_one_aggregate_per_chunk)
{
    reapkeys_counter_t entries [1000];
    char ids [1000][16];
    for (size_t i = 0; i < 1000; i++) {
        snprintf (ids [i], sizeof ids [i], "s%zu", i);
        entries [i] = (reapkeys_counter_t) { ids [i], i, 2 * i, 1700000000000 + (int64_t) i };
    }
    size_t size;
    uint8_t *bytes = reapkeys_pack_counters (entries, 1000, &size);
    Ep__ReaperCounters *msg = ep__reaper_counters__unpack (NULL, size, bytes);
    cr_assert_not_null (msg);
    cr_assert_eq (msg->n_entries, 1000);
    cr_assert_str_eq (msg->entries [999]->id, "s999");
    cr_assert_eq (msg->entries [999]->bytes_tx, 1998);
    //  Well under etcd's request limit (1.5 MiB by default).
    cr_assert_lt (size, 64 * 1024);
    ep__reaper_counters__free_unpacked (msg, NULL);
    free (bytes);
}

Test (reapkeys, a_new_owner_resends_what_was_not_acknowledged_and_forces_only_at_the_deadline)
{
    reapkeys_job_t job = {
        .job = { .id = "job1", .reason = "router-deleted", .target_type = "router",
                 .target_id = "r1", .started_ms = 1000, .deadline_ms = 16000 },
        .marked = 5000
    };
    reapkeys_resume_t resume;
    //  Taken over mid-marking, before the deadline.
    reapkeys_resume (&job, 9000, 18000, &resume);
    cr_assert_eq (resume.deadline_ms, 16000);
    cr_assert (resume.mark);
    cr_assert (resume.resend);
    cr_assert_not (resume.force);

    //  Every session marked: no marking, still resending.
    job.marking_done = true;
    reapkeys_resume (&job, 15999, 100, &resume);
    cr_assert_not (resume.mark);
    cr_assert (resume.resend);
    cr_assert_not (resume.force);

    //  At the deadline, and not before: forced.
    reapkeys_resume (&job, 16000, 100, &resume);
    cr_assert (resume.force);
    cr_assert_not (resume.resend);
    cr_assert_eq (resume.deadline_ms, 16000);

    //  Nothing open, or done: nothing to do.
    reapkeys_resume (&job, 9000, 0, &resume);
    cr_assert_not (resume.mark || resume.resend || resume.force);
    job.job.done = true;
    reapkeys_resume (&job, 9000, 10, &resume);
    cr_assert_not (resume.mark || resume.resend || resume.force);
}

Test (reapkeys, a_takeover_counts_liveness_from_the_takeover)
{
    //  Flushed long ago: heard at the takeover, as after a restart.
    cr_assert_eq (reapkeys_seen (1000, 50000), 50000);
    //  A flushed time ahead of this instance's clock is kept.
    cr_assert_eq (reapkeys_seen (60000, 50000), 60000);
}
