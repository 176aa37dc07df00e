/*  sessiondb.c: SQL for sessions and cleanup jobs.

    Sessions live in one WITHOUT ROWID table keyed by id, with an index per
    thing a listing filters on (router, identity, service: each ordered by
    id so pages come straight off the index) and a partial index on the
    closing time of CLOSED rows for pruning. Counters are 64-bit unsigned
    on the wire and signed in SQLite: stored as their bit pattern.
*/
#include "sessiondb.h"
#include "ep_log.h"

const char *const sessiondb_migrations [] = {
    "CREATE TABLE sessions (id TEXT PRIMARY KEY, router_id TEXT NOT NULL, identity_id TEXT NOT NULL,"
    "  service_id TEXT NOT NULL, type INTEGER NOT NULL, state INTEGER NOT NULL,"
    "  priority INTEGER NOT NULL, created_at_ms INTEGER NOT NULL, last_seen_ms INTEGER NOT NULL,"
    "  bytes_rx INTEGER NOT NULL, bytes_tx INTEGER NOT NULL, close_reason TEXT, closed_at_ms INTEGER,"
    "  job_id TEXT) WITHOUT ROWID;"
    "CREATE INDEX sessions_by_router ON sessions (router_id, id);"
    "CREATE INDEX sessions_by_identity ON sessions (identity_id, id);"
    "CREATE INDEX sessions_by_service ON sessions (service_id, id);"
    "CREATE INDEX sessions_closed ON sessions (closed_at_ms) WHERE state = 3;"
    "CREATE TABLE jobs (id TEXT PRIMARY KEY, reason TEXT NOT NULL, target_type TEXT NOT NULL,"
    "  target_id TEXT NOT NULL, revision INTEGER NOT NULL, started_at_ms INTEGER NOT NULL,"
    "  deadline_ms INTEGER NOT NULL, scheduled INTEGER NOT NULL, done INTEGER NOT NULL,"
    "  finished_at_ms INTEGER, closed TEXT) WITHOUT ROWID;"
    "CREATE INDEX jobs_by_target ON jobs (target_type, target_id, started_at_ms);",
    //  2: the service's criticality (cleanup order) and whether the session
    //  was warned long-lived (once per session, across restarts). Sessions
    //  TERMINATING at the upgrade count as warned: the version before warned
    //  when a cleanup took them, and that cleanup ends within its deadline.
    "ALTER TABLE sessions ADD COLUMN criticality INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE sessions ADD COLUMN warned INTEGER NOT NULL DEFAULT 0;"
    "UPDATE sessions SET warned = 1 WHERE state = 2;",
    //  3: the event outbox (issue 21). Each decided event is a row written
    //  in the transaction of the change it reports, deleted when the bus
    //  echoes it back. AUTOINCREMENT: a seq is never reused, even once the
    //  table empties, so "<owner>:<seq>" names one event for ever. meta
    //  keeps the owner (the reaper's stable id), chosen at the first start.
    "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,"
    "  body BLOB NOT NULL);"
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
};
const size_t sessiondb_migrations_count = EP_COUNT (sessiondb_migrations);

#define SESSION_COLUMNS \
    "id, router_id, identity_id, service_id, type, state, priority, created_at_ms," \
    " last_seen_ms, bytes_rx, bytes_tx, close_reason, closed_at_ms, job_id, criticality, warned"

#define JOB_COLUMNS \
    "id, reason, target_type, target_id, revision, started_at_ms, deadline_ms, scheduled," \
    " done, finished_at_ms, closed"

struct _sessiondb_t {
    ep_store_t *store;          //  sessions.db (borrowed)
    sessiondb_journal_fn *journal;  //  told of every write (the etcd mode), or NULL
    void *journal_arg;          //  its argument
    bool batch_indexes;         //  the etcd mode's read-back indexes are made
};

//  What the etcd mode's batch reads back from the cache at every commit
//  (reapbatch.h): a router's open sessions (the chunks a close may empty),
//  a job's sessions by router and reason (its records). Without them each
//  read visits every row of the router or of the table: a cleanup of one
//  router's N sessions cost N rows per batch, N squared in all. Both
//  cover their reads; made only for the cache: the embedded mode never
//  reads these, and would pay for them at every open, mark and close.
static const char *const s_batch_indexes =
    "CREATE INDEX IF NOT EXISTS sessions_by_router_state ON sessions (router_id, state, id);"
    "CREATE INDEX IF NOT EXISTS sessions_by_job ON sessions (job_id, router_id, close_reason)"
    "  WHERE job_id IS NOT NULL;";

void
sessiondb_set_journal (sessiondb_t *self, sessiondb_journal_fn *fn, void *arg)
{
    self->journal = fn;
    self->journal_arg = arg;
    if (fn && !self->batch_indexes) {
        //  Without them the reads are right, only slower.
        if (ep_store_exec (self->store, s_batch_indexes) == 0)
            self->batch_indexes = true;
        else
            ep_log_warn ("cannot index the cache for the batches' reads: %s", ep_store_last_error ());
    }
    if (fn)
        fn (arg, SESSIONDB_UNJOURNALED, NULL, NULL, 0);
}

//  rc of a write, told to the journal if it succeeded.
static int
s_tell (sessiondb_t *self, int rc, sessiondb_change_t change, const char *id, const char *other,
        int64_t seq)
{
    if (rc == 0 && self->journal)
        self->journal (self->journal_arg, change, id, other, seq);
    return rc;
}

sessiondb_t *
sessiondb_new (ep_store_t *store)
{
    sessiondb_t *self = (sessiondb_t *) zmalloc (sizeof (sessiondb_t));
    self->store = store;
    return self;
}

void
sessiondb_destroy (sessiondb_t **self_p)
{
    if (*self_p) {
        free (*self_p);
        *self_p = NULL;
    }
}

static void
s_text (sqlite3_stmt *stmt, int column, const char *value)
{
    if (value)
        sqlite3_bind_text (stmt, column, value, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null (stmt, column);
}

static int
s_done (sessiondb_t *self, sqlite3_stmt *stmt)
{
    return stmt && ep_store_step (self->store, stmt) == 0? 0: -1;
}

int
sessiondb_insert (sessiondb_t *self, const sessiondb_row_t *row)
{
    sqlite3_stmt *stmt = ep_store_stmt (self->store,
        "INSERT INTO sessions (" SESSION_COLUMNS ")"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)");
    if (!stmt)
        return -1;
    s_text (stmt, 1, row->id);
    s_text (stmt, 2, row->router_id);
    s_text (stmt, 3, row->identity_id);
    s_text (stmt, 4, row->service_id);
    sqlite3_bind_int (stmt, 5, row->type);
    sqlite3_bind_int (stmt, 6, row->state);
    sqlite3_bind_int64 (stmt, 7, row->priority);
    sqlite3_bind_int64 (stmt, 8, row->created_ms);
    sqlite3_bind_int64 (stmt, 9, row->last_seen_ms);
    sqlite3_bind_int64 (stmt, 10, (sqlite3_int64) row->bytes_rx);
    sqlite3_bind_int64 (stmt, 11, (sqlite3_int64) row->bytes_tx);
    s_text (stmt, 12, row->close_reason);
    if (row->closed_ms)
        sqlite3_bind_int64 (stmt, 13, row->closed_ms);
    s_text (stmt, 14, row->job_id);
    sqlite3_bind_int (stmt, 15, row->criticality);
    sqlite3_bind_int (stmt, 16, row->warned);
    return s_tell (self, s_done (self, stmt), SESSIONDB_SESSION, row->id, NULL, 0);
}

int
sessiondb_mark (sessiondb_t *self, const char *id, const char *job_id)
{
    sqlite3_stmt *stmt = ep_store_stmt (self->store,
        "UPDATE sessions SET state = 2, job_id = ?2 WHERE id = ?1");
    if (!stmt)
        return -1;
    s_text (stmt, 1, id);
    s_text (stmt, 2, job_id);
    return s_tell (self, s_done (self, stmt), SESSIONDB_MARK, id, job_id, 0);
}

int
sessiondb_warned (sessiondb_t *self, const char *id)
{
    sqlite3_stmt *stmt = ep_store_stmt (self->store, "UPDATE sessions SET warned = 1 WHERE id = ?1");
    if (!stmt)
        return -1;
    s_text (stmt, 1, id);
    return s_tell (self, s_done (self, stmt), SESSIONDB_SESSION, id, NULL, 0);
}

//  The job session id has now (a copy, NULL if none), for the journal
//  (*failed: the read failed).
static char *
s_job_of (sessiondb_t *self, const char *id, bool *failed)
{
    sqlite3_stmt *stmt = ep_store_stmt (self->store, "SELECT job_id FROM sessions WHERE id = ?1");
    if (!stmt) {
        *failed = true;
        return NULL;
    }
    s_text (stmt, 1, id);
    int rc = ep_store_step (self->store, stmt);
    const char *job = rc == 1? (const char *) sqlite3_column_text (stmt, 0): NULL;
    char *copy = job? strdup (job): NULL;
    sqlite3_reset (stmt);
    *failed = rc < 0;
    return copy;
}

int
sessiondb_close (sessiondb_t *self, const char *id, const char *reason, int64_t closed_ms,
                 int64_t last_seen_ms, uint64_t bytes_rx, uint64_t bytes_tx, const char *job_id)
{
    //  The etcd mode's batch counts a job's sessions from what they were.
    bool failed = false;
    char *before = self->journal? s_job_of (self, id, &failed): NULL;
    if (failed)
        return -1;
    sqlite3_stmt *stmt = ep_store_stmt (self->store,
        "UPDATE sessions SET state = 3, close_reason = ?2, closed_at_ms = ?3, last_seen_ms = ?4,"
        " bytes_rx = ?5, bytes_tx = ?6, job_id = COALESCE (?7, job_id) WHERE id = ?1");
    if (!stmt)
        return -1;
    s_text (stmt, 1, id);
    s_text (stmt, 2, reason);
    sqlite3_bind_int64 (stmt, 3, closed_ms);
    sqlite3_bind_int64 (stmt, 4, last_seen_ms);
    sqlite3_bind_int64 (stmt, 5, (sqlite3_int64) bytes_rx);
    sqlite3_bind_int64 (stmt, 6, (sqlite3_int64) bytes_tx);
    s_text (stmt, 7, job_id);
    int rc = s_tell (self, s_done (self, stmt), SESSIONDB_CLOSED, id, before, 0);
    free (before);
    return rc;
}

int
sessiondb_counters (sessiondb_t *self, const char *id, int64_t last_seen_ms,
                    uint64_t bytes_rx, uint64_t bytes_tx)
{
    sqlite3_stmt *stmt = ep_store_stmt (self->store,
        "UPDATE sessions SET last_seen_ms = ?2, bytes_rx = ?3, bytes_tx = ?4 WHERE id = ?1");
    if (!stmt)
        return -1;
    s_text (stmt, 1, id);
    sqlite3_bind_int64 (stmt, 2, last_seen_ms);
    sqlite3_bind_int64 (stmt, 3, (sqlite3_int64) bytes_rx);
    sqlite3_bind_int64 (stmt, 4, (sqlite3_int64) bytes_tx);
    return s_tell (self, s_done (self, stmt), SESSIONDB_COUNTERS, id, NULL, 0);
}

static const char *
s_column_text (sqlite3_stmt *stmt, int column)
{
    return (const char *) sqlite3_column_text (stmt, column);
}

//  Where the rows of a query go: to row or to job, with arg.
typedef struct {
    sessiondb_row_fn *row;      //  sessions
    sessiondb_job_fn *job;      //  jobs
    void *arg;                  //  for them
} s_visit_t;

//  Reads the row stmt is on (SESSION_COLUMNS) and gives it to visit->row.
static void
s_row (sqlite3_stmt *stmt, const s_visit_t *visit)
{
    sessiondb_row_t row = {
        .id = s_column_text (stmt, 0),
        .router_id = s_column_text (stmt, 1),
        .identity_id = s_column_text (stmt, 2),
        .service_id = s_column_text (stmt, 3),
        .type = sqlite3_column_int (stmt, 4),
        .state = sqlite3_column_int (stmt, 5),
        .priority = (uint32_t) sqlite3_column_int64 (stmt, 6),
        .created_ms = sqlite3_column_int64 (stmt, 7),
        .last_seen_ms = sqlite3_column_int64 (stmt, 8),
        .bytes_rx = (uint64_t) sqlite3_column_int64 (stmt, 9),
        .bytes_tx = (uint64_t) sqlite3_column_int64 (stmt, 10),
        .close_reason = s_column_text (stmt, 11),
        .closed_ms = sqlite3_column_int64 (stmt, 12),
        .job_id = s_column_text (stmt, 13),
        .criticality = sqlite3_column_int (stmt, 14),
        .warned = sqlite3_column_int (stmt, 15) != 0,
    };
    visit->row (visit->arg, &row);
}

//  Reads the row stmt is on (JOB_COLUMNS) and gives it to visit->job.
static void
s_job (sqlite3_stmt *stmt, const s_visit_t *visit)
{
    sessiondb_job_t job = {
        .id = s_column_text (stmt, 0),
        .reason = s_column_text (stmt, 1),
        .target_type = s_column_text (stmt, 2),
        .target_id = s_column_text (stmt, 3),
        .revision = (uint64_t) sqlite3_column_int64 (stmt, 4),
        .started_ms = sqlite3_column_int64 (stmt, 5),
        .deadline_ms = sqlite3_column_int64 (stmt, 6),
        .scheduled = (uint64_t) sqlite3_column_int64 (stmt, 7),
        .done = sqlite3_column_int (stmt, 8) != 0,
        .finished_ms = sqlite3_column_int64 (stmt, 9),
        .closed = s_column_text (stmt, 10),
    };
    visit->job (visit->arg, &job);
}

//  Steps stmt to the end, giving each row to read. Returns rows or -1.
static int
s_each (sessiondb_t *self, sqlite3_stmt *stmt,
        void (*read) (sqlite3_stmt *stmt, const s_visit_t *visit), const s_visit_t *visit)
{
    if (!stmt)
        return -1;
    int rows = 0, rc;
    while ((rc = ep_store_step (self->store, stmt)) == 1) {
        read (stmt, visit);
        rows++;
    }
    sqlite3_reset (stmt);
    return rc < 0? -1: rows;
}

//  A session query's rows to fn. Returns rows or -1.
static int
s_rows (sessiondb_t *self, sqlite3_stmt *stmt, sessiondb_row_fn *fn, void *arg)
{
    s_visit_t visit = { .row = fn, .arg = arg };
    return s_each (self, stmt, s_row, &visit);
}

int
sessiondb_load_open (sessiondb_t *self, sessiondb_row_fn *fn, void *arg)
{
    sqlite3_stmt *stmt = ep_store_stmt (self->store,
        "SELECT " SESSION_COLUMNS " FROM sessions WHERE state IN (1, 2)");
    return s_rows (self, stmt, fn, arg) < 0? -1: 0;
}

int
sessiondb_get (sessiondb_t *self, const char *id, sessiondb_row_fn *fn, void *arg)
{
    sqlite3_stmt *stmt = ep_store_stmt (self->store,
        "SELECT " SESSION_COLUMNS " FROM sessions WHERE id = ?1");
    if (!stmt)
        return -1;
    s_text (stmt, 1, id);
    int rows = s_rows (self, stmt, fn, arg);
    return rows < 0? -1: rows > 0;
}

int
sessiondb_list (sessiondb_t *self, const Ep__SessionFilter *filter, const char *after,
                size_t limit, sessiondb_row_fn *fn, void *arg)
{
    //  The most selective index that the filter names leads; the other
    //  conditions filter its rows. Each index is ordered by id.
    #define FILTERS " (?1 IS NULL OR router_id = ?1) AND (?2 IS NULL OR identity_id = ?2)" \
                    " AND (?3 IS NULL OR service_id = ?3) AND (?4 IS NULL OR state = ?4) AND id > ?5" \
                    " ORDER BY id LIMIT ?6"
    const char *sql =
        filter->router_id? "SELECT " SESSION_COLUMNS " FROM sessions INDEXED BY sessions_by_router"
                           " WHERE router_id = ?1 AND" FILTERS
      : filter->identity_id? "SELECT " SESSION_COLUMNS " FROM sessions INDEXED BY sessions_by_identity"
                             " WHERE identity_id = ?2 AND" FILTERS
      : filter->service_id? "SELECT " SESSION_COLUMNS " FROM sessions INDEXED BY sessions_by_service"
                            " WHERE service_id = ?3 AND" FILTERS
      : "SELECT " SESSION_COLUMNS " FROM sessions WHERE" FILTERS;
    #undef FILTERS
    sqlite3_stmt *stmt = ep_store_stmt (self->store, sql);
    if (!stmt)
        return -1;
    s_text (stmt, 1, filter->router_id);
    s_text (stmt, 2, filter->identity_id);
    s_text (stmt, 3, filter->service_id);
    if (filter->has_state && filter->state)
        sqlite3_bind_int (stmt, 4, filter->state);
    s_text (stmt, 5, after? after: "");
    sqlite3_bind_int64 (stmt, 6, (sqlite3_int64) limit);
    return s_rows (self, stmt, fn, arg);
}

int64_t
sessiondb_count (sessiondb_t *self, int state)
{
    sqlite3_stmt *stmt = ep_store_stmt (self->store, "SELECT COUNT(*) FROM sessions WHERE state = ?1");
    if (!stmt)
        return -1;
    sqlite3_bind_int (stmt, 1, state);
    int64_t count = ep_store_step (self->store, stmt) == 1? sqlite3_column_int64 (stmt, 0): -1;
    sqlite3_reset (stmt);
    return count;
}

//  The journal's part of a prune: the ids about to go, told first.
static int
s_tell_pruned (sessiondb_t *self, int64_t before_ms, size_t limit)
{
    sqlite3_stmt *stmt = ep_store_stmt (self->store,
        "SELECT id, router_id FROM sessions WHERE state = 3 AND closed_at_ms < ?1 LIMIT ?2");
    if (!stmt)
        return -1;
    sqlite3_bind_int64 (stmt, 1, before_ms);
    sqlite3_bind_int64 (stmt, 2, (sqlite3_int64) limit);
    int rc;
    while ((rc = ep_store_step (self->store, stmt)) == 1)
        s_tell (self, 0, SESSIONDB_PRUNED, s_column_text (stmt, 0), s_column_text (stmt, 1), 0);
    sqlite3_reset (stmt);
    if (rc < 0)
        return -1;
    stmt = ep_store_stmt (self->store,
        "SELECT id, target_type, target_id FROM jobs WHERE done = 1 AND finished_at_ms < ?1");
    if (!stmt)
        return -1;
    sqlite3_bind_int64 (stmt, 1, before_ms);
    while ((rc = ep_store_step (self->store, stmt)) == 1)
        s_tell (self, 0, SESSIONDB_JOB_PRUNED, s_column_text (stmt, 0),
                streq (s_column_text (stmt, 1), "router")? s_column_text (stmt, 2): NULL, 0);
    sqlite3_reset (stmt);
    return rc < 0? -1: 0;
}

int
sessiondb_prune (sessiondb_t *self, int64_t before_ms, size_t limit)
{
    if (self->journal && s_tell_pruned (self, before_ms, limit) != 0)
        return -1;
    sqlite3_stmt *stmt = ep_store_stmt (self->store,
        "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions"
        " WHERE state = 3 AND closed_at_ms < ?1 LIMIT ?2)");
    if (!stmt)
        return -1;
    sqlite3_bind_int64 (stmt, 1, before_ms);
    sqlite3_bind_int64 (stmt, 2, (sqlite3_int64) limit);
    if (s_done (self, stmt) != 0)
        return -1;
    int deleted = sqlite3_changes (ep_store_handle (self->store));
    stmt = ep_store_stmt (self->store, "DELETE FROM jobs WHERE done = 1 AND finished_at_ms < ?1");
    if (!stmt)
        return -1;
    sqlite3_bind_int64 (stmt, 1, before_ms);
    return s_done (self, stmt) == 0? deleted: -1;
}

int
sessiondb_job_insert (sessiondb_t *self, const sessiondb_job_t *job)
{
    sqlite3_stmt *stmt = ep_store_stmt (self->store,
        "INSERT INTO jobs (" JOB_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, NULL, NULL)");
    if (!stmt)
        return -1;
    s_text (stmt, 1, job->id);
    s_text (stmt, 2, job->reason);
    s_text (stmt, 3, job->target_type);
    s_text (stmt, 4, job->target_id);
    sqlite3_bind_int64 (stmt, 5, (sqlite3_int64) job->revision);
    sqlite3_bind_int64 (stmt, 6, job->started_ms);
    sqlite3_bind_int64 (stmt, 7, job->deadline_ms);
    sqlite3_bind_int64 (stmt, 8, (sqlite3_int64) job->scheduled);
    return s_tell (self, s_done (self, stmt), SESSIONDB_JOB, job->id, NULL, 0);
}

int
sessiondb_job_finish (sessiondb_t *self, const char *id, int64_t finished_ms, const char *closed_json)
{
    sqlite3_stmt *stmt = ep_store_stmt (self->store,
        "UPDATE jobs SET done = 1, finished_at_ms = ?2, closed = ?3 WHERE id = ?1");
    if (!stmt)
        return -1;
    s_text (stmt, 1, id);
    sqlite3_bind_int64 (stmt, 2, finished_ms);
    s_text (stmt, 3, closed_json);
    return s_tell (self, s_done (self, stmt), SESSIONDB_JOB, id, NULL, 0);
}

//  A job query's rows to fn. Returns rows or -1.
static int
s_jobs (sessiondb_t *self, sqlite3_stmt *stmt, sessiondb_job_fn *fn, void *arg)
{
    s_visit_t visit = { .job = fn, .arg = arg };
    return s_each (self, stmt, s_job, &visit);
}

int
sessiondb_jobs_running (sessiondb_t *self, sessiondb_job_fn *fn, void *arg)
{
    sqlite3_stmt *stmt = ep_store_stmt (self->store,
        "SELECT " JOB_COLUMNS " FROM jobs WHERE done = 0 ORDER BY started_at_ms");
    return s_jobs (self, stmt, fn, arg) < 0? -1: 0;
}

int
sessiondb_jobs_find (sessiondb_t *self, const char *target_type, const char *target_id,
                     const char *id, size_t limit, sessiondb_job_fn *fn, void *arg)
{
    sqlite3_stmt *stmt;
    if (target_type) {
        stmt = ep_store_stmt (self->store,
            "SELECT " JOB_COLUMNS " FROM jobs WHERE target_type = ?1 AND target_id = ?2"
            " ORDER BY started_at_ms DESC, id LIMIT ?3");
        if (!stmt)
            return -1;
        s_text (stmt, 1, target_type);
        s_text (stmt, 2, target_id);
        sqlite3_bind_int64 (stmt, 3, (sqlite3_int64) limit);
    }
    else {
        stmt = ep_store_stmt (self->store, "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?1");
        if (!stmt)
            return -1;
        s_text (stmt, 1, id);
    }
    return s_jobs (self, stmt, fn, arg);
}

//  The statement of sql with ?1 bound to value, or NULL.
static sqlite3_stmt *
s_query (sessiondb_t *self, const char *sql, const char *value)
{
    sqlite3_stmt *stmt = ep_store_stmt (self->store, sql);
    if (stmt)
        s_text (stmt, 1, value);
    return stmt;
}

int
sessiondb_job_counts (sessiondb_t *self, const char *id, sessiondb_count_fn *fn, void *arg)
{
    sqlite3_stmt *stmt = s_query (self,
        "SELECT close_reason, COUNT(*) FROM sessions WHERE job_id = ?1 AND state = 3 GROUP BY close_reason", id);
    if (!stmt)
        return -1;
    int rc;
    while ((rc = ep_store_step (self->store, stmt)) == 1)
        fn (arg, s_column_text (stmt, 0)? s_column_text (stmt, 0): "", (uint64_t) sqlite3_column_int64 (stmt, 1));
    sqlite3_reset (stmt);
    return rc < 0? -1: 0;
}

int
sessiondb_job_routers (sessiondb_t *self, const char *id, sessiondb_job_router_fn *fn, void *arg)
{
    sqlite3_stmt *stmt = s_query (self,
        "SELECT router_id, close_reason, count(*) FROM sessions WHERE job_id = ?1"
        " GROUP BY router_id, close_reason", id);
    if (!stmt)
        return -1;
    int rc;
    while ((rc = ep_store_step (self->store, stmt)) == 1)
        fn (arg, s_column_text (stmt, 0), s_column_text (stmt, 1),
            (uint64_t) sqlite3_column_int64 (stmt, 2));
    sqlite3_reset (stmt);
    return rc < 0? -1: 0;
}

int
sessiondb_routers (sessiondb_t *self, sessiondb_router_fn *fn, void *arg)
{
    sqlite3_stmt *stmt = ep_store_stmt (self->store,
        "SELECT router_id FROM sessions UNION SELECT target_id FROM jobs WHERE target_type = 'router'");
    if (!stmt)
        return -1;
    int rc;
    while ((rc = ep_store_step (self->store, stmt)) == 1)
        fn (arg, s_column_text (stmt, 0));
    sqlite3_reset (stmt);
    return rc < 0? -1: 0;
}

int
sessiondb_router_open (sessiondb_t *self, const char *router_id, sessiondb_row_fn *fn, void *arg)
{
    sqlite3_stmt *stmt = ep_store_stmt (self->store,
        "SELECT " SESSION_COLUMNS " FROM sessions WHERE router_id = ?1 AND state < 3 ORDER BY id");
    if (!stmt)
        return -1;
    s_text (stmt, 1, router_id);
    return s_rows (self, stmt, fn, arg) < 0? -1: 0;
}

int
sessiondb_router_open_ids (sessiondb_t *self, const char *router_id, sessiondb_id_fn *fn, void *arg)
{
    sqlite3_stmt *stmt = s_query (self, "SELECT id FROM sessions WHERE router_id = ?1 AND state < 3",
                                  router_id);
    if (!stmt)
        return -1;
    int rc;
    while ((rc = ep_store_step (self->store, stmt)) == 1 && fn (arg, s_column_text (stmt, 0)))
        ;
    sqlite3_reset (stmt);
    return rc < 0? -1: 0;
}

int
sessiondb_forget_router (sessiondb_t *self, const char *router_id)
{
    sqlite3_stmt *stmt = ep_store_stmt (self->store, "DELETE FROM sessions WHERE router_id = ?1");
    if (!stmt)
        return -1;
    s_text (stmt, 1, router_id);
    if (s_done (self, stmt) != 0)
        return -1;
    stmt = ep_store_stmt (self->store,
        "DELETE FROM jobs WHERE target_type = 'router' AND target_id = ?1");
    if (!stmt)
        return -1;
    s_text (stmt, 1, router_id);
    return s_tell (self, s_done (self, stmt), SESSIONDB_UNJOURNALED, router_id, NULL, 0);
}

int
sessiondb_owner (sessiondb_t *self, const char *candidate, char *owner, size_t size)
{
    sqlite3_stmt *stmt = ep_store_stmt (self->store,
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('outbox_owner', ?1)");
    if (!stmt)
        return -1;
    s_text (stmt, 1, candidate);
    if (s_done (self, stmt) != 0)
        return -1;
    stmt = ep_store_stmt (self->store, "SELECT value FROM meta WHERE key = 'outbox_owner'");
    if (!stmt)
        return -1;
    int rc = ep_store_step (self->store, stmt) == 1? 0: -1;
    if (rc == 0)
        snprintf (owner, size, "%s", s_column_text (stmt, 0));
    sqlite3_reset (stmt);
    return rc;
}

int64_t
sessiondb_outbox_add (sessiondb_t *self, const char *topic, const void *body, size_t size)
{
    sqlite3_stmt *stmt = ep_store_stmt (self->store, "INSERT INTO outbox (topic, body) VALUES (?1, ?2)");
    if (!stmt)
        return -1;
    s_text (stmt, 1, topic);
    sqlite3_bind_blob (stmt, 2, body, (int) size, SQLITE_STATIC);
    if (s_done (self, stmt) != 0)
        return -1;
    int64_t seq = sqlite3_last_insert_rowid (ep_store_handle (self->store));
    s_tell (self, 0, SESSIONDB_OUTBOX, NULL, NULL, seq);
    return seq;
}

int
sessiondb_outbox_next (sessiondb_t *self, int64_t after, size_t limit, sessiondb_outbox_fn *fn, void *arg)
{
    sqlite3_stmt *stmt = ep_store_stmt (self->store,
        "SELECT seq, topic, body FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2");
    if (!stmt)
        return -1;
    sqlite3_bind_int64 (stmt, 1, after);
    sqlite3_bind_int64 (stmt, 2, (sqlite3_int64) limit);
    int rows = 0, rc;
    while ((rc = ep_store_step (self->store, stmt)) == 1) {
        fn (arg, sqlite3_column_int64 (stmt, 0), s_column_text (stmt, 1),
            sqlite3_column_blob (stmt, 2), (size_t) sqlite3_column_bytes (stmt, 2));
        rows++;
    }
    sqlite3_reset (stmt);
    return rc < 0? -1: rows;
}

int
sessiondb_outbox_ack (sessiondb_t *self, int64_t first, int64_t last)
{
    sqlite3_stmt *stmt = ep_store_stmt (self->store, "DELETE FROM outbox WHERE seq BETWEEN ?1 AND ?2");
    if (!stmt)
        return -1;
    sqlite3_bind_int64 (stmt, 1, first);
    sqlite3_bind_int64 (stmt, 2, last);
    if (s_done (self, stmt) != 0)
        return -1;
    int deleted = sqlite3_changes (ep_store_handle (self->store));
    //  Echoes come mostly in order: a run is short.
    for (int64_t seq = first; self->journal && seq <= last; seq++)
        s_tell (self, 0, SESSIONDB_OUTBOX_ACK, NULL, NULL, seq);
    return deleted;
}

int64_t
sessiondb_outbox_count (sessiondb_t *self)
{
    sqlite3_stmt *stmt = ep_store_stmt (self->store, "SELECT COUNT(*) FROM outbox");
    if (!stmt)
        return -1;
    int64_t count = ep_store_step (self->store, stmt) == 1? sqlite3_column_int64 (stmt, 0): -1;
    sqlite3_reset (stmt);
    return count;
}

int64_t
sessiondb_outbox_first (sessiondb_t *self)
{
    sqlite3_stmt *stmt = ep_store_stmt (self->store, "SELECT MIN(seq) FROM outbox");
    if (!stmt)
        return -1;
    int64_t seq = ep_store_step (self->store, stmt) == 1? sqlite3_column_int64 (stmt, 0): -1;
    sqlite3_reset (stmt);
    return seq;
}
