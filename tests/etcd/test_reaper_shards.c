/*  test_reaper_shards.c: the reaper's etcd store (services/reaper/reapshards,
    reapbatch, reapkeys) on the fixture cluster, in process: an owner writes
    a cleanup in progress through fenced batches, leaves, and the next owner
    reads the shard back and resumes the cleanup: the sessions whose close
    was not acknowledged are resent, none is forced before the deadline. */
#include <criterion/criterion.h>
#include "ep_etcd_cluster.h"
#include "ep_test.h"
#include "reapshards.h"
#include "reapkeys.h"
#include "reapload.h"

#define SHARDS      4
#define SESSIONS    20000
#define PER_BATCH   900         //  writes per batch: the fixture's --max-txn-ops is 1024
#define ACKED       5000

static char *s_prefix;           //  this test's key prefix

//  One instance: its store module, its cache and its batch.
typedef struct {
    reapshards_t *shards;       //  the store module
    char dir [64];              //  the cache's directory
    ep_store_t *store;          //  the cache
    sessiondb_t *db;            //  its tables
    reapbatch_t *batch;         //  the open batch
    int loaded;                 //  shards LOADED (each counted once)
    bool seen [SHARDS];         //  which were
    bool done;                  //  the last batch's answer came
    int rc;                     //  its outcome
    //  What the last LOADED of router r1's shard held
    size_t open, closed;        //  session records, by state
    reapkeys_job_t job;         //  the job's record
    Ep__ReaperJobRecord *job_msg;   //  what its strings point into
    size_t chunks;              //  counters chunks
    reapload_stats_t stats;     //  what the cache load of r1's shard found
} s_instance_t;

static void
s_on_news (void *arg, const reapshards_news_t *news)
{
    s_instance_t *self = (s_instance_t *) arg;
    if (news->event != REAPSHARDS_LOADED)
        return;
    bool again = self->seen [news->shard];
    self->seen [news->shard] = true;
    self->loaded += !again;
    //  Into the cache, as the service does before the core adopts it. A
    //  shard read again (the lease lost and taken again, on a loaded
    //  machine) is cleared first, as the service does.
    sessiondb_set_journal (self->db, NULL, NULL);
    ep_store_begin (self->store);
    if (again && news->shard == ep_shard_of ("r1", SHARDS)) {
        cr_assert_eq (sessiondb_forget_router (self->db, "r1"), 0);
        self->open = self->closed = self->chunks = 0;
        if (self->job_msg)
            ep__reaper_job_record__free_unpacked (self->job_msg, NULL);
        self->job_msg = NULL;
    }
    reapload_stats_t stats;
    cr_assert_eq (reapload_shard (self->db, s_prefix, news->kvs, news->nkvs, 1700000005000, NULL, NULL,
                                  &stats), 0);
    cr_assert_eq (ep_store_commit (self->store), 0);
    sessiondb_set_journal (self->db, reapbatch_journal, self->batch);
    //  Adopted (the service does so after its last step): ready, fenced.
    cr_assert (reapshards_adopt_shard (self->shards, news->shard, news->revision));
    if (news->shard != ep_shard_of ("r1", SHARDS))
        return;
    self->stats = stats;
    for (size_t i = 0; i < news->nkvs; i++) {
        char key [REAPKEYS_KEY_MAX];
        snprintf (key, sizeof key, "%.*s", (int) news->kvs [i].key_size, (const char *) news->kvs [i].key);
        reapkeys_key_t parsed;
        if (reapkeys_parse (s_prefix, key, &parsed) != 0)
            continue;
        if (parsed.kind == REAPKEYS_SESSION) {
            sessiondb_row_t row;
            Ep__ReaperSessionRecord *msg;
            cr_assert_eq (reapkeys_unpack_session (news->kvs [i].value, news->kvs [i].value_size, &row,
                                                   &msg), 0);
            if (row.state == EP__SESSION_STATE__CLOSED)
                self->closed++;
            else
                self->open++;
            ep__reaper_session_record__free_unpacked (msg, NULL);
        }
        else
        if (parsed.kind == REAPKEYS_JOB)
            cr_assert_eq (reapkeys_unpack_job (news->kvs [i].value, news->kvs [i].value_size, &self->job,
                                               &self->job_msg), 0);
        else
        if (parsed.kind == REAPKEYS_COUNTERS)
            self->chunks++;
    }
}

static void
s_done (void *arg, int rc, const char *why)
{
    s_instance_t *self = (s_instance_t *) arg;
    if (rc)
        fprintf (stderr, "batch: %s\n", why);
    self->done = true;
    self->rc = rc;
}

static void
s_start (s_instance_t *self, const char *id)
{
    memset (self, 0, sizeof *self);
    reapshards_config_t config = {
        .etcd = { .endpoints = ep_etcd_cluster_endpoints (), .timeout_ms = 3000 },
        .prefix = s_prefix, .id = id, .count = SHARDS, .ttl_ms = 5000, .fn = s_on_news, .arg = self
    };
    char err [256];
    self->shards = reapshards_new (&config, err, sizeof err);
    cr_assert_not_null (self->shards, "%s", err);
    snprintf (self->dir, sizeof self->dir, "/tmp/reapshards-XXXXXX");
    cr_assert_not_null (mkdtemp (self->dir));
    char path [128];
    snprintf (path, sizeof path, "%s/cache.db", self->dir);
    self->store = ep_store_new (path, sessiondb_migrations, sessiondb_migrations_count);
    self->db = sessiondb_new (self->store);
    reapbatch_config_t batch;
    reapshards_batch_config (self->shards, &batch);
    self->batch = reapbatch_new (&batch);
    sessiondb_set_journal (self->db, reapbatch_journal, self->batch);
}

static void
s_stop (s_instance_t *self)
{
    reapshards_destroy (&self->shards);
    reapbatch_destroy (&self->batch);
    sessiondb_destroy (&self->db);
    ep_store_destroy (&self->store);
    if (self->job_msg)
        ep__reaper_job_record__free_unpacked (self->job_msg, NULL);
    char command [128];
    snprintf (command, sizeof command, "rm -rf %s", self->dir);
    cr_assert_eq (system (command), 0);
}

//  Runs the instance's loop until cond (arg) or timeout_ms.
static bool
s_until (s_instance_t *self, bool (*cond) (s_instance_t *), int timeout_ms)
{
    int64_t deadline = ep_mono_ms () + timeout_ms;
    while (!cond (self) && ep_mono_ms () < deadline) {
        zmq_pollitem_t items [EP_ETCD_MAX_FDS];
        int n = reapshards_pollitems (self->shards, items, EP_ETCD_MAX_FDS);
        long timeout = reapshards_timeout (self->shards);
        zmq_poll (items, n, timeout < 0 || timeout > 100? 100: timeout);
        reapshards_dispatch (self->shards, items, n);
    }
    return cond (self);
}

static bool
s_owns_all (s_instance_t *self)
{
    return reapshards_owned (self->shards) == SHARDS;
}

static bool
s_answered (s_instance_t *self)
{
    return self->done;
}

//  Builds the open batch, sends it and waits for its answer; the cache
//  commits only if etcd took it. Returns the batch's operations.
static size_t
s_commit (s_instance_t *self)
{
    char err [300];
    cr_assert_eq (reapbatch_build (self->batch, self->db, err, sizeof err), 0, "%s", err);
    size_t nops;
    reapbatch_ops (self->batch, &nops);
    self->done = false;
    cr_assert_eq (reapshards_send (self->shards, self->batch, s_done, self, err, sizeof err), 0, "%s", err);
    cr_assert (s_until (self, s_answered, 10000));
    cr_assert_eq (self->rc, 0);
    cr_assert_eq (ep_store_commit (self->store), 0);
    reapbatch_reset (self->batch);
    return nops;
}

static void
s_row (void *arg, const sessiondb_row_t *row)
{
    *(sessiondb_row_t *) arg = *row;
    ((sessiondb_row_t *) arg)->id = NULL;      //  the strings do not outlive the call
}

Test (reaper_shards, a_new_owner_resumes_a_cleanup_in_progress, .timeout = 120)
{
    cr_assert (ep_etcd_cluster_endpoints (), "no etcd cluster: run this suite through ctest");
    s_prefix = ep_etcd_test_prefix ("reaper-shards");
    s_instance_t a, b;
    s_start (&a, "reaper-a");
    cr_assert (s_until (&a, s_owns_all, 15000), "a owns %d shards", reapshards_owned (a.shards));

    //  20,000 sessions open, then a cleanup takes them all and 5,000 are acked.
    char id [32];
    for (int i = 0; i < SESSIONS; i++) {
        if (i % PER_BATCH == 0)
            ep_store_begin (a.store);
        snprintf (id, sizeof id, "s%05d", i);
        sessiondb_row_t row = { .id = id, .router_id = "r1", .identity_id = "i1", .service_id = "svc",
                                .type = EP__SESSION_TYPE__DIAL, .state = EP__SESSION_STATE__ACTIVE,
                                .created_ms = 1000, .last_seen_ms = 1000 };
        cr_assert_eq (sessiondb_insert (a.db, &row), 0);
        if (i % PER_BATCH == PER_BATCH - 1 || i == SESSIONS - 1)
            s_commit (&a);
    }
    //  A flush of every tenth session's counters: r1's chunks.
    uint64_t flushed = 0;
    ep_store_begin (a.store);
    for (int i = 0; i < SESSIONS; i += 10) {
        snprintf (id, sizeof id, "s%05d", i);
        cr_assert_eq (sessiondb_counters (a.db, id, 1700000000500, 7, 8), 0);
        flushed |= 1ULL << reapkeys_chunk_of (id);
    }
    cr_assert_eq (s_commit (&a), (size_t) __builtin_popcountll (flushed));
    int64_t deadline = 1700000000000 + 15000;
    ep_store_begin (a.store);
    sessiondb_job_t job = { .id = "job1", .reason = "router-deleted", .target_type = "router",
                            .target_id = "r1", .revision = 9, .started_ms = 1700000000000,
                            .deadline_ms = deadline, .scheduled = SESSIONS };
    cr_assert_eq (sessiondb_job_insert (a.db, &job), 0);
    for (int i = 0; i < SESSIONS; i++) {
        snprintf (id, sizeof id, "s%05d", i);
        cr_assert_eq (sessiondb_mark (a.db, id, "job1"), 0);
    }
    //  20,000 marks: one job record.
    cr_assert_eq (s_commit (&a), 1);
    //  Acks, a batch at a time.
    for (int i = 0; i < ACKED; i++) {
        if (i % PER_BATCH == 0)
            ep_store_begin (a.store);
        snprintf (id, sizeof id, "s%05d", i);
        cr_assert_eq (sessiondb_close (a.db, id, "router-deleted", 1700000001000, 1700000001000, 5, 6,
                                       "job1"), 0);
        if (i % PER_BATCH == PER_BATCH - 1 || i == ACKED - 1)
            s_commit (&a);
    }

    //  a leaves (its lease revoked); b takes every shard and reads them.
    s_start (&b, "reaper-b");
    s_stop (&a);
    cr_assert (s_until (&b, s_owns_all, 15000), "b owns %d shards", reapshards_owned (b.shards));
    cr_assert_eq (b.loaded, SHARDS);
    cr_assert_eq (b.open, SESSIONS - ACKED);
    cr_assert_eq (b.closed, ACKED);
    cr_assert_str_eq (b.job.job.id, "job1");
    cr_assert_eq (b.job.job.deadline_ms, deadline);
    cr_assert_eq (b.job.marked, SESSIONS);
    cr_assert (b.job.marking_done);
    cr_assert_eq (b.job.closed [0], ACKED);
    //  The flush's chunks of r1's counters, as the closes left them (a
    //  close rewrites none; each still holds open sessions).
    cr_assert_eq (b.chunks, (size_t) __builtin_popcountll (flushed));

    //  b's cache holds the cleanup as a restart would find it: the closes
    //  not acknowledged TERMINATING under the running job, with its deadline.
    cr_assert_eq (b.stats.open, SESSIONS - ACKED);
    cr_assert_eq (b.stats.marked, SESSIONS - ACKED);
    cr_assert_eq (b.stats.jobs, 1);
    cr_assert_eq (sessiondb_count (b.db, EP__SESSION_STATE__TERMINATING), SESSIONS - ACKED);
    cr_assert_eq (sessiondb_count (b.db, EP__SESSION_STATE__CLOSED), ACKED);
    cr_assert_eq (sessiondb_count (b.db, EP__SESSION_STATE__ACTIVE), 0);

    //  An open session's counters come from its chunk, a closed one's
    //  from its closed record (not from the entry its chunk still holds).
    sessiondb_row_t got;
    cr_assert_eq (sessiondb_get (b.db, "s05000", s_row, &got), 1);
    cr_assert_eq (got.bytes_rx, 7);
    cr_assert_eq (sessiondb_get (b.db, "s00010", s_row, &got), 1);
    cr_assert_eq (got.state, EP__SESSION_STATE__CLOSED);
    cr_assert_eq (got.bytes_rx, 5);
    cr_assert_eq (got.bytes_tx, 6);

    //  Before the deadline: the unacknowledged closes are resent, nothing forced.
    reapkeys_resume_t resume;
    reapkeys_resume (&b.job, deadline - 1, b.open, &resume);
    cr_assert (resume.resend);
    cr_assert_not (resume.force);
    cr_assert_not (resume.mark);
    reapkeys_resume (&b.job, deadline, b.open, &resume);
    cr_assert (resume.force);

    //  b writes to the shard as its owner: its fence holds.
    ep_store_begin (b.store);
    sessiondb_row_t row = { .id = "s9999", .router_id = "r1", .identity_id = "i1", .service_id = "svc",
                            .type = EP__SESSION_TYPE__DIAL, .state = EP__SESSION_STATE__ACTIVE,
                            .created_ms = 1000, .last_seen_ms = 1000 };
    cr_assert_eq (sessiondb_insert (b.db, &row), 0);
    s_commit (&b);
    s_stop (&b);
    free (s_prefix);
}
