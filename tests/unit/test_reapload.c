/*  test_reapload.c: a shard read from etcd, into the cache
    (services/reaper/reapload): what a new owner's core will load. */
#include <criterion/criterion.h>
#include "reapload.h"
#include "reapkeys.h"

#define TAKEOVER    1700000050000   //  wall clock of the takeover

static struct {
    char dir [64];              //  the cache's directory
    ep_store_t *store;          //  the cache
    sessiondb_t *db;            //  its tables
    ep_etcd_kv_t kvs [16];      //  the shard as read
    size_t nkvs;                //  how many
    char entry_id [96];         //  the outbox entry handed over
} w;

static void
s_setup (void)
{
    memset (&w, 0, sizeof w);
    snprintf (w.dir, sizeof w.dir, "/tmp/reapload-XXXXXX");
    cr_assert_not_null (mkdtemp (w.dir));
    char path [128];
    snprintf (path, sizeof path, "%s/cache.db", w.dir);
    w.store = ep_store_new (path, sessiondb_migrations, sessiondb_migrations_count);
    w.db = sessiondb_new (w.store);
}

static void
s_teardown (void)
{
    for (size_t i = 0; i < w.nkvs; i++) {
        free (w.kvs [i].key);
        free (w.kvs [i].value);
    }
    sessiondb_destroy (&w.db);
    ep_store_destroy (&w.store);
    char command [128];
    snprintf (command, sizeof command, "rm -rf %s", w.dir);
    cr_assert_eq (system (command), 0);
}

TestSuite (reapload, .init = s_setup, .fini = s_teardown);

//  A key-value as etcd returns it (value taken).
static void
s_kv (const char *key, uint8_t *value, size_t size)
{
    ep_etcd_kv_t *kv = &w.kvs [w.nkvs++];
    kv->key = (uint8_t *) strdup (key);
    kv->key_size = strlen (key);
    kv->value = value;
    kv->value_size = size;
}

//  Shard 3's outbox entry reaper/3/40-7, and a session key holding junk.
static void
s_outbox_and_junk (void)
{
    char key [REAPKEYS_KEY_MAX];
    Ep__ReaperOutboxEntry entry = EP__REAPER_OUTBOX_ENTRY__INIT;
    entry.topic = "session.terminating";
    entry.has_event = true;
    entry.event = (ProtobufCBinaryData) { 1, (uint8_t *) "x" };
    entry.event_id = "reaper/3/40-7";
    uint8_t *packed = (uint8_t *) malloc (ep__reaper_outbox_entry__get_packed_size (&entry));
    size_t size = ep__reaper_outbox_entry__pack (&entry, packed);
    s_kv (reapkeys_outbox ("/ep/", 3, 40, 7, key, sizeof key), packed, size);
    s_kv ("/ep/reaper/00003/s/bad", (uint8_t *) strdup ("junk"), 4);
}

static void
s_session (const char *id, int state, const char *reason)
{
    sessiondb_row_t row = {
        .id = id, .router_id = "r1", .identity_id = "i1", .service_id = "svc",
        .type = EP__SESSION_TYPE__BIND, .state = state, .created_ms = 1000, .last_seen_ms = 2000,
        .close_reason = reason, .closed_ms = reason? 3000: 0
    };
    char key [REAPKEYS_KEY_MAX];
    size_t size;
    uint8_t *bytes = reapkeys_pack_session (&row, &size);
    s_kv (reapkeys_session ("/ep/", 3, id, key, sizeof key), bytes, size);
}

static void
s_entry (void *arg, const char *key, const char *topic, const void *event, size_t size,
         const char *event_id)
{
    (void) arg; (void) key; (void) event; (void) size;
    cr_assert_str_eq (topic, "session.terminating");
    snprintf (w.entry_id, sizeof w.entry_id, "%s", event_id);
}

static void
s_row (void *arg, const sessiondb_row_t *row)
{
    *(sessiondb_row_t *) arg = *row;
    ((sessiondb_row_t *) arg)->id = NULL;      //  the strings do not outlive the call
}

Test (reapload, a_cleanup_still_marking_leaves_its_sessions_to_be_taken_again)
{
    s_session ("s1", EP__SESSION_STATE__ACTIVE, NULL);
    s_session ("s2", EP__SESSION_STATE__ACTIVE, NULL);
    s_session ("s3", EP__SESSION_STATE__CLOSED, "router-deleted");
    reapkeys_job_t job = {
        .job = { .id = "job1", .reason = "router-deleted", .target_type = "router", .target_id = "r1",
                 .started_ms = 1500, .deadline_ms = TAKEOVER + 10000, .scheduled = 3 },
        .marked = 1, .marking_done = false
    };
    job.closed [0] = 1;
    char key [REAPKEYS_KEY_MAX];
    size_t size;
    uint8_t *bytes = reapkeys_pack_job (&job, &size);
    s_kv (reapkeys_job ("/ep/", 3, "job1", key, sizeof key), bytes, size);
    reapkeys_counter_t counters [] = { { "s1", 77, 88, 2500 }, { "s3", 1, 1, 2500 } };
    bytes = reapkeys_pack_counters (counters, 2, &size);
    s_kv (reapkeys_counters ("/ep/", 3, "r1", 0, key, sizeof key), bytes, size);
    s_outbox_and_junk ();

    ep_store_begin (w.store);
    reapload_stats_t stats;
    cr_assert_eq (reapload_shard (w.db, "/ep/", w.kvs, w.nkvs, TAKEOVER, s_entry, NULL, &stats), 0);
    cr_assert_eq (ep_store_commit (w.store), 0);
    cr_assert_eq (stats.open, 2);
    cr_assert_eq (stats.closed, 1);
    cr_assert_eq (stats.jobs, 1);
    cr_assert_eq (stats.marked, 0, "marking was not done: the job takes them again");
    cr_assert_eq (stats.entries, 1);
    cr_assert_eq (stats.skipped, 1);
    cr_assert_str_eq (w.entry_id, "reaper/3/40-7");
    cr_assert_eq (sessiondb_count (w.db, EP__SESSION_STATE__ACTIVE), 2);

    //  Counters kept, liveness counted from the takeover.
    sessiondb_row_t row;
    cr_assert_eq (sessiondb_get (w.db, "s1", s_row, &row), 1);
    cr_assert_eq (row.bytes_rx, 77);
    cr_assert_eq (row.last_seen_ms, TAKEOVER);
    cr_assert_eq (sessiondb_get (w.db, "s2", s_row, &row), 1);
    cr_assert_eq (row.last_seen_ms, TAKEOVER);
    //  A closed session keeps its record as it closed.
    cr_assert_eq (sessiondb_get (w.db, "s3", s_row, &row), 1);
    cr_assert_eq (row.closed_ms, 3000);
}

static void
s_job (void *arg, const sessiondb_job_t *job)
{
    cr_assert_str_eq (job->id, "job1");
    *(int64_t *) arg = job->deadline_ms;
}

//  The shard read, loaded in one transaction.
static void
s_load (reapload_stats_t *stats)
{
    ep_store_begin (w.store);
    cr_assert_eq (reapload_shard (w.db, "/ep/", w.kvs, w.nkvs, TAKEOVER, NULL, NULL, stats), 0);
    cr_assert_eq (ep_store_commit (w.store), 0);
}

Test (reapload, a_cleanup_done_marking_has_its_open_sessions_terminating_with_its_deadline)
{
    s_session ("s1", EP__SESSION_STATE__ACTIVE, NULL);
    s_session ("s2", EP__SESSION_STATE__ACTIVE, NULL);
    reapkeys_job_t job = {
        .job = { .id = "job1", .reason = "router-deleted", .target_type = "router", .target_id = "r1",
                 .started_ms = 1500, .deadline_ms = TAKEOVER + 10000, .scheduled = 2 },
        .marked = 2, .marking_done = true
    };
    char key [REAPKEYS_KEY_MAX];
    size_t size;
    uint8_t *bytes = reapkeys_pack_job (&job, &size);
    s_kv (reapkeys_job ("/ep/", 3, "job1", key, sizeof key), bytes, size);
    reapload_stats_t stats;
    s_load (&stats);
    cr_assert_eq (stats.marked, 2);
    cr_assert_eq (sessiondb_count (w.db, EP__SESSION_STATE__TERMINATING), 2);
    int64_t deadline = 0;
    cr_assert_eq (sessiondb_jobs_running (w.db, s_job, &deadline), 0);
    cr_assert_eq (deadline, TAKEOVER + 10000);
}

//  The service's load in steps (ep_adopt): the records ordered once, then
//  written a slice at a time, each in a transaction of its own, load what
//  one pass loads, whatever the cut; the outbox entries come last.
Test (reapload, a_shard_ordered_and_loaded_one_record_a_step_is_what_one_load_makes)
{
    char key [REAPKEYS_KEY_MAX];
    size_t size;
    //  In etcd's key order: the job ("j/") before its sessions ("s/").
    reapkeys_job_t job = {
        .job = { .id = "job1", .reason = "router-deleted", .target_type = "router", .target_id = "r1",
                 .started_ms = 1500, .deadline_ms = TAKEOVER + 10000, .scheduled = 2 },
        .marked = 2, .marking_done = true
    };
    uint8_t *bytes = reapkeys_pack_job (&job, &size);
    s_kv (reapkeys_job ("/ep/", 3, "job1", key, sizeof key), bytes, size);
    s_outbox_and_junk ();
    s_session ("s1", EP__SESSION_STATE__ACTIVE, NULL);
    s_session ("s2", EP__SESSION_STATE__ACTIVE, NULL);

    size_t outbox;
    size_t records = reapload_order ("/ep/", w.kvs, w.nkvs, &outbox);
    //  s1, s2 and the job (the junk key counts as a record: a session key,
    //  skipped when written), then the entry.
    cr_assert_eq (records, 5);
    cr_assert_eq (outbox, 4);
    cr_assert (strstr ((const char *) w.kvs [4].key, "/o/"), "%s", (const char *) w.kvs [4].key);
    cr_assert (strstr ((const char *) w.kvs [3].key, "/j/"), "%s", (const char *) w.kvs [3].key);
    reapload_stats_t stats = { 0 };
    for (size_t i = 0; i < records; i++) {
        ep_store_begin (w.store);
        cr_assert_eq (reapload_records (w.db, "/ep/", w.kvs + i, 1, TAKEOVER, s_entry, NULL, &stats), 0);
        cr_assert_eq (ep_store_commit (w.store), 0);
    }
    cr_assert_eq (stats.open, 2);
    cr_assert_eq (stats.marked, 2, "the job was written before its sessions");
    cr_assert_eq (stats.entries, 1);
    cr_assert_eq (stats.skipped, 1);
    cr_assert_eq (sessiondb_count (w.db, EP__SESSION_STATE__TERMINATING), 2);
    cr_assert_str_eq (w.entry_id, "reaper/3/40-7");
}

//  A close writes the session's closed record, not its chunk: the chunk
//  (read first, "c/" before "s/") still holds the entry it had at its last
//  flush; the closed session keeps its record's final counters.
Test (reapload, a_chunk_entry_of_a_closed_session_does_not_revive_its_counters)
{
    char key [REAPKEYS_KEY_MAX];
    size_t size;
    reapkeys_counter_t counters [] = { { "s1", 77, 88, 2500 }, { "s2", 5, 6, 2500 }, { "s9", 1, 1, 2500 } };
    uint8_t *bytes = reapkeys_pack_counters (counters, 3, &size);
    s_kv (reapkeys_counters ("/ep/", 3, "r1", 0, key, sizeof key), bytes, size);
    s_session ("s1", EP__SESSION_STATE__ACTIVE, NULL);
    sessiondb_row_t closed = {
        .id = "s2", .router_id = "r1", .identity_id = "i1", .service_id = "svc",
        .type = EP__SESSION_TYPE__BIND, .state = EP__SESSION_STATE__CLOSED, .created_ms = 1000,
        .last_seen_ms = 2000, .close_reason = "client-closed", .closed_ms = 3000,
        .bytes_rx = 500, .bytes_tx = 600
    };
    bytes = reapkeys_pack_session (&closed, &size);
    s_kv (reapkeys_session ("/ep/", 3, "s2", key, sizeof key), bytes, size);

    reapload_stats_t stats;
    s_load (&stats);
    cr_assert_eq (stats.open, 1);
    cr_assert_eq (stats.closed, 1);
    sessiondb_row_t row;
    cr_assert_eq (sessiondb_get (w.db, "s1", s_row, &row), 1);
    cr_assert_eq (row.bytes_rx, 77, "an open session's counters come from its chunk");
    cr_assert_eq (sessiondb_get (w.db, "s2", s_row, &row), 1);
    cr_assert_eq (row.state, EP__SESSION_STATE__CLOSED);
    cr_assert_eq (row.bytes_rx, 500, "a closed session's counters are its record's");
    cr_assert_eq (row.bytes_tx, 600);
    cr_assert_eq (row.last_seen_ms, 2000);
    cr_assert_eq (sessiondb_get (w.db, "s9", s_row, &row), 0, "an unknown session is not made");
}
