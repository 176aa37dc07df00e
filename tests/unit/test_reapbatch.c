/*  test_reapbatch.c: a batch of the reaper's etcd mode as etcd operations
    (services/reaper/reapbatch), from the journal of sessiondb's writes
    over a real cache database. */
#include <criterion/criterion.h>
#include "reapbatch.h"
#include "reapkeys.h"
#include "ep_shard.h"
#include "events.pb-c.h"

#define SHARDS      16

static struct {
    char dir [64];              //  the cache's directory
    ep_store_t *store;          //  the cache
    sessiondb_t *db;            //  its tables
    reapbatch_t *batch;         //  the batch under test
    int64_t owned [SHARDS];     //  owner revision per shard, 0 not owned
    char outbox_key [REAPKEYS_KEY_MAX];     //  the key of outbox seq 1 once written
} w;

static int64_t
s_revision (void *arg, int shard)
{
    (void) arg;
    return w.owned [shard];
}

static const char *
s_outbox_key (void *arg, int64_t seq)
{
    (void) arg;
    return seq == 1 && *w.outbox_key? w.outbox_key: NULL;
}

static void
s_setup (void)
{
    memset (&w, 0, sizeof w);
    snprintf (w.dir, sizeof w.dir, "/tmp/reapbatch-XXXXXX");
    cr_assert_not_null (mkdtemp (w.dir));
    char path [128];
    snprintf (path, sizeof path, "%s/cache.db", w.dir);
    w.store = ep_store_new (path, sessiondb_migrations, sessiondb_migrations_count);
    cr_assert_not_null (w.store);
    w.db = sessiondb_new (w.store);
    for (int shard = 0; shard < SHARDS; shard++)
        w.owned [shard] = 100 + shard;
    reapbatch_config_t config = { "/ep/", SHARDS, s_revision, s_outbox_key, NULL };
    w.batch = reapbatch_new (&config);
    sessiondb_set_journal (w.db, reapbatch_journal, w.batch);
}

static void
s_teardown (void)
{
    reapbatch_destroy (&w.batch);
    sessiondb_destroy (&w.db);
    ep_store_destroy (&w.store);
    char command [128];
    snprintf (command, sizeof command, "rm -rf %s", w.dir);
    cr_assert_eq (system (command), 0);
}

TestSuite (reapbatch, .init = s_setup, .fini = s_teardown);

static void
s_open (const char *id, const char *router_id)
{
    sessiondb_row_t row = {
        .id = id, .router_id = router_id, .identity_id = "i1", .service_id = "svc",
        .type = EP__SESSION_TYPE__DIAL, .state = EP__SESSION_STATE__ACTIVE,
        .created_ms = 1000, .last_seen_ms = 1000
    };
    cr_assert_eq (sessiondb_insert (w.db, &row), 0);
}

//  Builds the open batch and commits the cache; the ops' count.
static size_t
s_build (void)
{
    char err [300];
    cr_assert_eq (reapbatch_build (w.batch, w.db, err, sizeof err), 0, "%s", err);
    cr_assert_eq (ep_store_commit (w.store), 0);
    size_t count;
    reapbatch_ops (w.batch, &count);
    return count;
}

//  The op on key, or NULL.
static const ep_etcd_op_t *
s_op (const char *key)
{
    size_t count;
    const ep_etcd_op_t *ops = reapbatch_ops (w.batch, &count);
    for (size_t i = 0; i < count; i++) {
        const ep_etcd_bytes_t *op_key = ops [i].kind == EP_ETCD_PUT? &ops [i].u.put.key
                                                                  : &ops [i].u.del.key;
        if (op_key->size == strlen (key) && !memcmp (op_key->data, key, op_key->size))
            return &ops [i];
    }
    return NULL;
}

static void
s_no_key_twice (void)
{
    size_t count;
    const ep_etcd_op_t *ops = reapbatch_ops (w.batch, &count);
    for (size_t i = 0; i < count; i++)
        for (size_t j = i + 1; j < count; j++) {
            const ep_etcd_bytes_t *a = ops [i].kind == EP_ETCD_PUT? &ops [i].u.put.key: &ops [i].u.del.key;
            const ep_etcd_bytes_t *b = ops [j].kind == EP_ETCD_PUT? &ops [j].u.put.key: &ops [j].u.del.key;
            cr_assert (a->size != b->size || memcmp (a->data, b->data, a->size), "a key twice");
        }
}

//  Opens count sessions of r1, s00000 on, in a batch of their own.
static void
s_open_many (int count)
{
    ep_store_begin (w.store);
    char id [32];
    for (int i = 0; i < count; i++) {
        snprintf (id, sizeof id, "s%05d", i);
        s_open (id, "r1");
    }
    s_build ();
    reapbatch_reset (w.batch);
}

//  How many ops are on keys holding infix ("/c/": counter chunks), and how
//  many of them deletes.
static size_t
s_count_prefix_kind (const char *infix, size_t *deletes)
{
    size_t count, found = 0;
    *deletes = 0;
    const ep_etcd_op_t *ops = reapbatch_ops (w.batch, &count);
    for (size_t i = 0; i < count; i++) {
        const ep_etcd_bytes_t *op_key = ops [i].kind == EP_ETCD_PUT? &ops [i].u.put.key
                                                                  : &ops [i].u.del.key;
        char key [REAPKEYS_KEY_MAX];
        snprintf (key, sizeof key, "%.*s", (int) op_key->size, (const char *) op_key->data);
        if (strstr (key, infix)) {
            found++;
            *deletes += ops [i].kind == EP_ETCD_DELETE;
        }
    }
    return found;
}

static size_t
s_count_prefix (const char *infix)
{
    size_t deletes;
    return s_count_prefix_kind (infix, &deletes);
}

Test (reapbatch, opens_are_one_record_each_in_their_routers_shard)
{
    ep_store_begin (w.store);
    s_open ("s1", "r1");
    s_open ("s2", "r1");
    s_open ("s3", "r2");
    cr_assert_eq (s_build (), 3);
    char key [REAPKEYS_KEY_MAX];
    const ep_etcd_op_t *op = s_op (reapkeys_session ("/ep/", ep_shard_of ("r2", SHARDS), "s3",
                                                     key, sizeof key));
    cr_assert_not_null (op);
    cr_assert_eq (op->kind, EP_ETCD_PUT);
    sessiondb_row_t row;
    Ep__ReaperSessionRecord *msg;
    cr_assert_eq (reapkeys_unpack_session (op->u.put.value.data, op->u.put.value.size, &row, &msg), 0);
    cr_assert_str_eq (row.router_id, "r2");
    cr_assert_eq (row.state, EP__SESSION_STATE__ACTIVE);
    ep__reaper_session_record__free_unpacked (msg, NULL);
    int shards [SHARDS];
    int count = reapbatch_shards (w.batch, shards, SHARDS);
    cr_assert_eq (count, ep_shard_of ("r1", SHARDS) == ep_shard_of ("r2", SHARDS)? 1: 2);
}

Test (reapbatch, a_cleanup_of_twenty_thousand_sessions_is_one_job_record_not_a_mark_each)
{
    s_open_many (20000);
    char id [32];

    ep_store_begin (w.store);
    sessiondb_job_t job = {
        .id = "job1", .reason = "router-deleted", .target_type = "router", .target_id = "r1",
        .revision = 7, .started_ms = 5000, .deadline_ms = 20000, .scheduled = 20000
    };
    cr_assert_eq (sessiondb_job_insert (w.db, &job), 0);
    for (int i = 0; i < 20000; i++) {
        snprintf (id, sizeof id, "s%05d", i);
        cr_assert_eq (sessiondb_mark (w.db, id, "job1"), 0);
    }
    cr_assert_eq (s_build (), 1);
    char key [REAPKEYS_KEY_MAX];
    const ep_etcd_op_t *op = s_op (reapkeys_job ("/ep/", ep_shard_of ("r1", SHARDS), "job1",
                                                 key, sizeof key));
    cr_assert_not_null (op);
    reapkeys_job_t record;
    Ep__ReaperJobRecord *msg;
    cr_assert_eq (reapkeys_unpack_job (op->u.put.value.data, op->u.put.value.size, &record, &msg), 0);
    cr_assert_eq (record.marked, 20000);
    cr_assert (record.marking_done);
    cr_assert_eq (record.job.deadline_ms, 20000);
    ep__reaper_job_record__free_unpacked (msg, NULL);
    reapbatch_reset (w.batch);

    //  Acks close sessions: their closed records and the job's counts;
    //  their chunks, which still hold open sessions, are not rewritten.
    ep_store_begin (w.store);
    for (int i = 0; i < 3; i++) {
        snprintf (id, sizeof id, "s%05d", i);
        cr_assert_eq (sessiondb_close (w.db, id, "router-deleted", 6000, 6000, 10, 20, "job1"), 0);
    }
    s_build ();
    s_no_key_twice ();
    op = s_op (reapkeys_job ("/ep/", ep_shard_of ("r1", SHARDS), "job1", key, sizeof key));
    cr_assert_not_null (op, "the job's record follows its closes");
    cr_assert_eq (reapkeys_unpack_job (op->u.put.value.data, op->u.put.value.size, &record, &msg), 0);
    cr_assert_eq (record.closed [0], 3);
    ep__reaper_job_record__free_unpacked (msg, NULL);
    op = s_op (reapkeys_session ("/ep/", ep_shard_of ("r1", SHARDS), "s00001", key, sizeof key));
    cr_assert_not_null (op);
    sessiondb_row_t row;
    Ep__ReaperSessionRecord *row_msg;
    cr_assert_eq (reapkeys_unpack_session (op->u.put.value.data, op->u.put.value.size, &row, &row_msg), 0);
    cr_assert_eq (row.state, EP__SESSION_STATE__CLOSED);
    cr_assert_str_eq (row.close_reason, "router-deleted");
    ep__reaper_session_record__free_unpacked (row_msg, NULL);
    cr_assert_eq (s_count_prefix ("/c/"), 0, "a close rewrites no chunk");
}

Test (reapbatch, a_flush_writes_its_routers_chunks_not_the_sessions_records)
{
    ep_store_begin (w.store);
    s_open ("s1", "r1");
    s_open ("s2", "r1");
    s_build ();
    reapbatch_reset (w.batch);
    ep_store_begin (w.store);
    cr_assert_eq (sessiondb_counters (w.db, "s1", 9000, 111, 222), 0);
    cr_assert_eq (sessiondb_counters (w.db, "s2", 9000, 333, 444), 0);
    size_t count = s_build ();
    char key [REAPKEYS_KEY_MAX];
    cr_assert_null (s_op (reapkeys_session ("/ep/", ep_shard_of ("r1", SHARDS), "s1", key, sizeof key)));
    int chunk = reapkeys_chunk_of ("s1");
    const ep_etcd_op_t *op = s_op (reapkeys_counters ("/ep/", ep_shard_of ("r1", SHARDS), "r1", chunk,
                                                      key, sizeof key));
    cr_assert_not_null (op);
    cr_assert_eq (count, chunk == reapkeys_chunk_of ("s2")? 1: 2);
    Ep__ReaperCounters *counters = ep__reaper_counters__unpack (NULL, op->u.put.value.size,
                                                                op->u.put.value.data);
    cr_assert_not_null (counters);
    bool found = false;
    for (size_t i = 0; i < counters->n_entries; i++)
        if (streq (counters->entries [i]->id, "s1")) {
            found = true;
            cr_assert_eq (counters->entries [i]->bytes_rx, 111);
            cr_assert_eq (counters->entries [i]->last_seen_ms, 9000);
        }
    cr_assert (found);
    ep__reaper_counters__free_unpacked (counters, NULL);
}

Test (reapbatch, a_flush_then_a_close_in_one_batch_writes_the_closed_record)
{
    ep_store_begin (w.store);
    s_open ("s1", "r1");
    s_build ();
    reapbatch_reset (w.batch);
    ep_store_begin (w.store);
    cr_assert_eq (sessiondb_counters (w.db, "s1", 9000, 1, 2), 0);
    cr_assert_eq (sessiondb_close (w.db, "s1", "client-closed", 9500, 9500, 3, 4, NULL), 0);
    s_build ();
    char key [REAPKEYS_KEY_MAX];
    const ep_etcd_op_t *op = s_op (reapkeys_session ("/ep/", ep_shard_of ("r1", SHARDS), "s1", key,
                                                     sizeof key));
    cr_assert_not_null (op, "the close is written though a flush came first");
    sessiondb_row_t row;
    Ep__ReaperSessionRecord *msg;
    cr_assert_eq (reapkeys_unpack_session (op->u.put.value.data, op->u.put.value.size, &row, &msg), 0);
    cr_assert_eq (row.state, EP__SESSION_STATE__CLOSED);
    ep__reaper_session_record__free_unpacked (msg, NULL);
}

Test (reapbatch, a_write_for_a_shard_not_owned_fails_the_batch_naming_it)
{
    w.owned [ep_shard_of ("r1", SHARDS)] = 0;
    ep_store_begin (w.store);
    s_open ("s1", "r1");
    char err [300];
    cr_assert_eq (reapbatch_build (w.batch, w.db, err, sizeof err), -1);
    char expected [64];
    snprintf (expected, sizeof expected, "shard %d (router r1)", ep_shard_of ("r1", SHARDS));
    cr_assert (strstr (err, expected), "%s", err);
    ep_store_rollback (w.store);
}

Test (reapbatch, events_go_to_the_outbox_with_their_ids_and_echoes_delete_them)
{
    ep_store_begin (w.store);
    s_open ("s1", "r1");
    Ep__SessionEvent session = EP__SESSION_EVENT__INIT;
    session.event_type = "created";
    session.session_id = "s1";
    session.router_id = "r1";
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_SESSION;
    event.session = &session;
    uint8_t body [256];
    size_t size = ep__event__pack (&event, body);
    cr_assert_eq (sessiondb_outbox_add (w.db, "session.created", body, size), 1);
    s_build ();
    size_t count;
    const reapbatch_entry_t *entries = reapbatch_entries (w.batch, &count);
    cr_assert_eq (count, 1);
    int shard = ep_shard_of ("r1", SHARDS);
    char expected [96];
    reapkeys_event_id (shard, w.owned [shard], 1, expected, sizeof expected);
    cr_assert_str_eq (entries [0].event_id, expected);
    const ep_etcd_op_t *op = s_op (entries [0].key);
    cr_assert_not_null (op);
    Ep__ReaperOutboxEntry *entry = ep__reaper_outbox_entry__unpack (NULL, op->u.put.value.size,
                                                                   op->u.put.value.data);
    cr_assert_not_null (entry);
    cr_assert_str_eq (entry->topic, "session.created");
    cr_assert_str_eq (entry->event_id, expected);
    ep__reaper_outbox_entry__free_unpacked (entry, NULL);
    snprintf (w.outbox_key, sizeof w.outbox_key, "%s", entries [0].key);
    reapbatch_reset (w.batch);

    ep_store_begin (w.store);
    cr_assert_eq (sessiondb_outbox_ack (w.db, 1, 1), 1);
    cr_assert_eq (s_build (), 1);
    op = s_op (w.outbox_key);
    cr_assert_not_null (op);
    cr_assert_eq (op->kind, EP_ETCD_DELETE);
}

Test (reapbatch, pruning_deletes_the_records)
{
    ep_store_begin (w.store);
    s_open ("s1", "r1");
    cr_assert_eq (sessiondb_close (w.db, "s1", "client-closed", 2000, 2000, 0, 0, NULL), 0);
    s_build ();
    reapbatch_reset (w.batch);
    ep_store_begin (w.store);
    cr_assert_eq (sessiondb_prune (w.db, 3000, 100), 1);
    cr_assert_eq (s_build (), 1);
    char key [REAPKEYS_KEY_MAX];
    const ep_etcd_op_t *op = s_op (reapkeys_session ("/ep/", ep_shard_of ("r1", SHARDS), "s1", key,
                                                     sizeof key));
    cr_assert_not_null (op);
    cr_assert_eq (op->kind, EP_ETCD_DELETE);
}

Test (reapbatch, without_a_journal_nothing_is_told)
{
    sessiondb_set_journal (w.db, NULL, NULL);
    ep_store_begin (w.store);
    s_open ("s1", "r1");
    cr_assert_eq (s_build (), 0);
}

//  A router of 2,000 sessions, all flushed once (64 chunks), closed in
//  batches of 200 as a cleanup does: a close writes its closed record and
//  no chunk while its chunk still holds an open session; the batch that
//  closes a chunk's last open session deletes it, so the router's last
//  close leaves none of its chunks.
Test (reapbatch, closes_write_no_chunk_and_the_routers_last_closes_delete_them)
{
    s_open_many (2000);
    char id [32];
    ep_store_begin (w.store);
    for (int i = 0; i < 2000; i++) {
        snprintf (id, sizeof id, "s%05d", i);
        cr_assert_eq (sessiondb_counters (w.db, id, 9000, 1, 2), 0);
    }
    cr_assert_eq (s_build (), REAPKEYS_CHUNKS, "a flush writes the chunks, not the records");
    cr_assert_eq (s_count_prefix ("/c/"), REAPKEYS_CHUNKS);
    reapbatch_reset (w.batch);

    bool live [REAPKEYS_CHUNKS];
    for (int chunk = 0; chunk < REAPKEYS_CHUNKS; chunk++)
        live [chunk] = true;
    for (int first = 0; first < 2000; first += 200) {
        ep_store_begin (w.store);
        for (int i = first; i < first + 200; i++) {
            snprintf (id, sizeof id, "s%05d", i);
            cr_assert_eq (sessiondb_close (w.db, id, "router-deleted", 9500, 9500, 3, 4, NULL), 0);
        }
        size_t ops = s_build ();
        s_no_key_twice ();
        cr_assert_eq (s_count_prefix ("/s/"), 200, "each close writes its closed record");
        size_t deletes;
        size_t chunks = s_count_prefix_kind ("/c/", &deletes);
        cr_assert_eq (chunks, deletes, "a close rewrites no chunk, it may only delete one");
        cr_assert_leq (ops, 200 + chunks);
        //  A chunk is deleted once its last open session has closed.
        for (int chunk = 0; chunk < REAPKEYS_CHUNKS; chunk++) {
            bool open = false;
            for (int i = first + 200; i < 2000 && !open; i++) {
                snprintf (id, sizeof id, "s%05d", i);
                open = reapkeys_chunk_of (id) == chunk;
            }
            char key [REAPKEYS_KEY_MAX];
            const ep_etcd_op_t *op = s_op (reapkeys_counters ("/ep/", ep_shard_of ("r1", SHARDS), "r1",
                                                              chunk, key, sizeof key));
            if (open)
                cr_assert_null (op, "chunk %d still has an open session", chunk);
            else
            if (live [chunk]) {
                cr_assert_not_null (op, "chunk %d lost its last open session", chunk);
                cr_assert_eq (op->kind, EP_ETCD_DELETE);
                live [chunk] = false;
            }
        }
        reapbatch_reset (w.batch);
    }
    for (int chunk = 0; chunk < REAPKEYS_CHUNKS; chunk++)
        cr_assert (!live [chunk], "chunk %d outlives the router's last close", chunk);
}

//  A flush of one open session rewrites its chunk with the open sessions
//  only: the closed ones' entries, left there by their closes, drop out.
Test (reapbatch, a_flush_after_closes_rewrites_the_chunk_without_the_closed_sessions)
{
    //  Three sessions of one chunk.
    char ids [3][32];
    int found = 0;
    for (int i = 0; found < 3; i++) {
        snprintf (ids [found], sizeof ids [found], "s%05d", i);
        if (reapkeys_chunk_of (ids [found]) == 7)
            found++;
    }
    ep_store_begin (w.store);
    for (int i = 0; i < 3; i++)
        s_open (ids [i], "r1");
    s_build ();
    reapbatch_reset (w.batch);
    ep_store_begin (w.store);
    for (int i = 0; i < 3; i++)
        cr_assert_eq (sessiondb_counters (w.db, ids [i], 9000, 1, 2), 0);
    cr_assert_eq (s_build (), 1);
    reapbatch_reset (w.batch);

    ep_store_begin (w.store);
    cr_assert_eq (sessiondb_close (w.db, ids [0], "client-closed", 9500, 9500, 3, 4, NULL), 0);
    cr_assert_eq (sessiondb_close (w.db, ids [1], "client-closed", 9500, 9500, 3, 4, NULL), 0);
    cr_assert_eq (s_build (), 2, "two closed records");
    cr_assert_eq (s_count_prefix ("/c/"), 0, "the chunk still holds an open session");
    reapbatch_reset (w.batch);

    ep_store_begin (w.store);
    cr_assert_eq (sessiondb_counters (w.db, ids [2], 9900, 50, 60), 0);
    cr_assert_eq (s_build (), 1);
    char key [REAPKEYS_KEY_MAX];
    const ep_etcd_op_t *op = s_op (reapkeys_counters ("/ep/", ep_shard_of ("r1", SHARDS), "r1", 7,
                                                      key, sizeof key));
    cr_assert_not_null (op);
    cr_assert_eq (op->kind, EP_ETCD_PUT);
    Ep__ReaperCounters *counters = ep__reaper_counters__unpack (NULL, op->u.put.value.size,
                                                                op->u.put.value.data);
    cr_assert_not_null (counters);
    cr_assert_eq (counters->n_entries, 1, "the closed sessions' entries are dropped");
    cr_assert_str_eq (counters->entries [0]->id, ids [2]);
    cr_assert_eq (counters->entries [0]->bytes_rx, 50);
    ep__reaper_counters__free_unpacked (counters, NULL);
}

//  The record of job1 in router_id's shard the batch wrote: marked, and
//  closed by router-deleted (-1 each if it wrote none).
static void
s_job_counts (const char *router_id, int64_t *marked, int64_t *closed)
{
    char key [REAPKEYS_KEY_MAX];
    const ep_etcd_op_t *op = s_op (reapkeys_job ("/ep/", ep_shard_of (router_id, SHARDS), "job1",
                                                 key, sizeof key));
    *marked = *closed = -1;
    if (!op)
        return;
    reapkeys_job_t record;
    Ep__ReaperJobRecord *msg;
    cr_assert_eq (reapkeys_unpack_job (op->u.put.value.data, op->u.put.value.size, &record, &msg), 0);
    *marked = (int64_t) record.marked;
    *closed = (int64_t) record.closed [0];
    ep__reaper_job_record__free_unpacked (msg, NULL);
}

static void
s_expect_counts (const char *router_id, int64_t marked, int64_t closed)
{
    int64_t got_marked, got_closed;
    s_job_counts (router_id, &got_marked, &got_closed);
    cr_assert (got_marked == marked && got_closed == closed, "%s: %lld marked, %lld closed, not %lld, %lld",
               router_id, (long long) got_marked, (long long) got_closed, (long long) marked,
               (long long) closed);
}

static void
s_mark_range (int from, int to)
{
    char id [32];
    for (int i = from; i < to; i++) {
        snprintf (id, sizeof id, "s%05d", i);
        cr_assert_eq (sessiondb_mark (w.db, id, "job1"), 0);
    }
}

static void
s_close (const char *id, const char *job)
{
    cr_assert_eq (sessiondb_close (w.db, id, "router-deleted", 6000, 6000, 1, 2, job), 0);
}

//  The batch built and committed was durable: the next one follows on.
static void
s_settle (void)
{
    reapbatch_settled (w.batch);
    reapbatch_reset (w.batch);
}

Test (reapbatch, a_jobs_counts_follow_its_batches_without_counting_its_sessions_again)
{
    s_open_many (100);
    cr_assert_neq (ep_shard_of ("r1", SHARDS), ep_shard_of ("r9", SHARDS));
    ep_store_begin (w.store);
    s_open ("p1", "r9");
    sessiondb_job_t job = {
        .id = "job1", .reason = "router-deleted", .target_type = "router", .target_id = "r1",
        .revision = 7, .started_ms = 5000, .deadline_ms = 20000, .scheduled = 100
    };
    cr_assert_eq (sessiondb_job_insert (w.db, &job), 0);
    s_mark_range (0, 40);
    s_build ();
    s_expect_counts ("r1", 40, 0);
    s_settle ();

    //  Counted from what the batch did: marks, closes of sessions marked
    //  before, in this batch, or never (taken at the close), a close that
    //  keeps the job it had.
    ep_store_begin (w.store);
    s_mark_range (40, 100);
    s_close ("s00001", "job1");
    s_close ("s00002", NULL);
    s_close ("s00050", "job1");
    s_close ("p1", "job1");
    s_build ();
    s_expect_counts ("r1", 100, 3);
    s_expect_counts ("r9", 1, 1);
    s_settle ();

    //  A batch that did not commit: the cache rolls back, and its counts
    //  go with it (the next batch counts from the cache).
    ep_store_begin (w.store);
    s_close ("s00003", "job1");
    char err [300];
    cr_assert_eq (reapbatch_build (w.batch, w.db, err, sizeof err), 0, "%s", err);
    s_expect_counts ("r1", 100, 4);
    ep_store_rollback (w.store);
    reapbatch_reset (w.batch);
    ep_store_begin (w.store);
    s_close ("s00004", "job1");
    s_build ();
    s_expect_counts ("r1", 100, 4);
    s_settle ();

    //  Rows changed untold (a router forgotten): counted again.
    ep_store_begin (w.store);
    cr_assert_eq (sessiondb_forget_router (w.db, "r9"), 0);
    cr_assert_eq (ep_store_commit (w.store), 0);
    ep_store_begin (w.store);
    s_close ("s00005", "job1");
    s_build ();
    s_expect_counts ("r1", 100, 5);
    s_expect_counts ("r9", -1, -1);
}
