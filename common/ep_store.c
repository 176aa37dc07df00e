/*  ep_store.c: the embedded SQLite store of a stateful service.

    A thin layer over one SQLite connection that fixes, once for every
    service, the choices that decide whether data survives: WAL with
    synchronous=FULL (a commit that returned is on disk), migrations applied
    atomically with a recorded schema version (a newer database is refused,
    never silently downgraded), and errors that say what was being done.
    docs/store.md explains the guarantees and how to use group commit.
*/
#include "ep_prelude.h"
#include "ep_store.h"
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sys/stat.h>
#include <unistd.h>

//  How long a statement waits for another connection's lock before failing
//  busy. Only other processes (the sqlite3 shell, a second service by
//  mistake) hold locks: within a service one connection does everything.
#define EP_STORE_BUSY_TIMEOUT_MS 5000

//  How long a checkpoint waits for other connections' readers: short, since
//  it runs on the service's event loop and an unfinished one resumes later.
#define EP_STORE_CHECKPOINT_WAIT_MS 100

struct _ep_store_t {
    sqlite3 *db;                //  The connection; owned
    char *path;                 //  The database file, for error messages
    zhashx_t *stmts;            //  SQL text -> prepared sqlite3_stmt, finalized on removal
    int schema_version;         //  Migrations applied, as recorded in schema_version
    char *dir;                  //  The directory holding path, for "free space in"
    bool reopen;                //  An I/O error was seen: reopen before the next transaction
    bool batch;                 //  Between ep_store_begin and its commit or rollback
};

//  Why the last failing call in this thread failed. Per thread because each
//  service actor owns its own store and reads its own errors.
static _Thread_local char s_error [768];
//  Its kind (ep_store_last_fault).
static _Thread_local ep_store_fault_t s_fault;

static int
s_error_set (const char *format, ...) __attribute__ ((format (printf, 1, 2)));

static int
s_error_set (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (s_error, sizeof s_error, format, args);
    va_end (args);
    s_fault = EP_STORE_FAULT_NONE;
    return -1;
}

//  Records "<path>: <purpose>: <SQLite's message from db>"; returns -1.
//  A full or failing disk gets a message that says so, where, and that
//  writes resume by themselves; an I/O error on our own connection marks
//  it for a reopen (after a failed fsync the kernel may have dropped the
//  dirty pages and cleared the error: what SQLite caches cannot be trusted).
static int
s_fail (ep_store_t *self, sqlite3 *db, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static int
s_fail (ep_store_t *self, sqlite3 *db, const char *format, ...)
{
    char purpose [384];
    va_list args;
    va_start (args, format);
    vsnprintf (purpose, sizeof purpose, format, args);
    va_end (args);
    int code = db? sqlite3_extended_errcode (db): SQLITE_NOMEM;
    ep_store_fault_t fault = ep_store_fault_of (code);
    if (fault == EP_STORE_FAULT_FULL)
        s_error_set ("%s: %s: the disk is full (%s): free space in %s;"
                     " writes resume by themselves once there is room",
                     self->path, purpose, sqlite3_errmsg (db), self->dir);
    else
    if (fault == EP_STORE_FAULT_FAILING)
        s_error_set ("%s: %s: the disk is failing (%s, code %d): check the disk holding %s"
                     " (dmesg); writes resume by themselves once it takes them",
                     self->path, purpose, sqlite3_errmsg (db), code, self->dir);
    else
        s_error_set ("%s: %s: %s", self->path, purpose, db? sqlite3_errmsg (db): "out of memory");
    s_fault = fault;
    if (fault == EP_STORE_FAULT_FAILING && db == self->db)
        self->reopen = true;
    return -1;
}

ep_store_fault_t
ep_store_fault_of (int sqlite_rc)
{
    switch (sqlite_rc & 0xff) {
        case SQLITE_OK:
        case SQLITE_ROW:
        case SQLITE_DONE:
            return EP_STORE_FAULT_NONE;
        case SQLITE_FULL:
            return EP_STORE_FAULT_FULL;
        case SQLITE_IOERR:
            //  ENOSPC on a write SQLite makes SQLITE_FULL; a few paths
            //  (growing the shared-memory file on tmpfs) say IOERR_SHMSIZE
            //  or IOERR_WRITE for the same cause, and are treated as failing:
            //  the service waits them out the same way.
            return EP_STORE_FAULT_FAILING;
        default:
            return EP_STORE_FAULT_OTHER;
    }
}

const char *
ep_store_fault_name (ep_store_fault_t fault)
{
    switch (fault) {
        case EP_STORE_FAULT_NONE:    return "none";
        case EP_STORE_FAULT_FULL:    return "disk_full";
        case EP_STORE_FAULT_FAILING: return "disk_failing";
        case EP_STORE_FAULT_NOSPACE: return "etcd_nospace";
        default:                     return "other";
    }
}

ep_store_fault_t
ep_store_last_fault (void)
{
    return s_fault;
}

static int
s_exec (ep_store_t *self, const char *sql, const char *purpose)
{
    if (sqlite3_exec (self->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return s_fail (self, self->db, "%s", purpose);
    return 0;
}

//  True when SQLite rolled back the transaction ep_store_begin opened (a
//  full disk, an I/O error) before its commit or rollback: a write now
//  would run in autocommit, durable at once, and a SAVEPOINT would open a
//  new transaction that its RELEASE commits. Either would put on disk
//  what the caller is about to undo in memory, so both are refused; the
//  error stays the one of the statement that lost the transaction.
static bool
s_lost (ep_store_t *self)
{
    return self->batch && sqlite3_get_autocommit (self->db);
}

//  Runs a one-row, one-column query (a pragma, a version) into *value.
static int
s_query_int (ep_store_t *self, const char *sql, const char *purpose, int64_t *value)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2 (self->db, sql, -1, &stmt, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW)
        *value = sqlite3_column_int64 (stmt, 0);
    else
        s_fail (self, self->db, "%s", purpose);
    sqlite3_finalize (stmt);
    return rc == SQLITE_ROW ? 0 : -1;
}

static void
s_stmt_destroy (void **item_p)
{
    sqlite3_finalize ((sqlite3_stmt *) *item_p);
    *item_p = NULL;
}

//  A cached statement left part-way through its rows keeps a read snapshot
//  open, which stops a checkpoint from finishing and would pin a backup to
//  old data; between requests none is in use, so resetting them is safe.
static void
s_reset_all (ep_store_t *self)
{
    sqlite3_stmt *stmt = (sqlite3_stmt *) zhashx_first (self->stmts);
    while (stmt) {
        sqlite3_reset (stmt);
        stmt = (sqlite3_stmt *) zhashx_next (self->stmts);
    }
}

//  Opens the file and sets the durability pragmas. Foreign keys are turned
//  on after the migrations, which run without them (see s_migrate).
static int
s_open (ep_store_t *self)
{
    if (sqlite3_open_v2 (self->path, &self->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
        return s_fail (self, self->db,
                       "cannot open the database (check that its directory exists and is writable)");
    sqlite3_busy_timeout (self->db, EP_STORE_BUSY_TIMEOUT_MS);
    //  "string" must name a column, not quietly become a string literal.
    sqlite3_db_config (self->db, SQLITE_DBCONFIG_DQS_DML, 0, NULL);
    sqlite3_db_config (self->db, SQLITE_DBCONFIG_DQS_DDL, 0, NULL);

    //  In memory: no file to journal or sync (a cache, ep_store.h).
    if (streq (self->path, EP_STORE_MEMORY))
        return 0;
    //  journal_mode answers with the mode it actually got: a filesystem
    //  without shared memory support leaves the old one in place.
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2 (self->db, "PRAGMA journal_mode=WAL", -1, &stmt, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step (stmt);
    if (rc != SQLITE_ROW) {
        s_fail (self, self->db, "cannot switch to WAL (is it an SQLite database?)");
        sqlite3_finalize (stmt);
        return -1;
    }
    const char *mode = (const char *) sqlite3_column_text (stmt, 0);
    if (!mode || strcmp (mode, "wal") != 0) {
        s_error_set ("%s: the database cannot use WAL (journal mode stays '%s');"
                     " keep the data directory on a local filesystem",
                     self->path, mode? mode: "?");
        sqlite3_finalize (stmt);
        return -1;
    }
    sqlite3_finalize (stmt);
    return s_exec (self, "PRAGMA synchronous=FULL", "setting synchronous=FULL");
}

//  Brings the schema to version count inside the open transaction.
static int
s_migrate_txn (ep_store_t *self, const char *const *migrations, size_t count)
{
    //  One row, enforced by the CHECK, so the version cannot be ambiguous.
    if (s_exec (self,
                "CREATE TABLE IF NOT EXISTS schema_version ("
                "  id INTEGER PRIMARY KEY CHECK (id = 1),"
                "  version INTEGER NOT NULL);"
                "INSERT OR IGNORE INTO schema_version (id, version) VALUES (1, 0)",
                "creating the schema_version table"))
        return -1;
    int64_t version;
    if (s_query_int (self, "SELECT version FROM schema_version WHERE id = 1",
                     "reading the schema version", &version))
        return -1;
    if (version < 0)
        return s_error_set ("%s has schema version %lld, which no edgeplane writes;"
                            " restore a backup", self->path, (long long) version);
    if ((uint64_t) version > count)
        return s_error_set ("%s was written by a newer edgeplane (schema %lld > %zu);"
                            " upgrade the binary or restore a backup",
                            self->path, (long long) version, count);

    for (size_t i = (size_t) version; i < count; i++) {
        EP_ASSERT (migrations [i]);
        char purpose [64];
        snprintf (purpose, sizeof purpose, "applying migration %zu", i + 1);
        char *update = sqlite3_mprintf ("UPDATE schema_version SET version = %lld",
                                       (long long) i + 1);
        EP_ASSERT (update);
        int rc = s_exec (self, migrations [i], purpose);
        if (rc == 0)
            rc = s_exec (self, update, "recording the schema version");
        sqlite3_free (update);
        if (rc)
            return -1;
    }
    if ((size_t) version < count) {
        //  Migrations ran with foreign keys off; check what they left.
        sqlite3_stmt *stmt = NULL;
        int rc = sqlite3_prepare_v2 (self->db, "PRAGMA foreign_key_check", -1, &stmt, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_step (stmt);
        if (rc == SQLITE_ROW)
            s_error_set ("%s: migrations %lld..%zu leave rows in table %s that break"
                         " its foreign keys; fix the migration", self->path,
                         (long long) version + 1, count,
                         (const char *) sqlite3_column_text (stmt, 0));
        else
        if (rc != SQLITE_DONE)
            s_fail (self, self->db, "checking foreign keys after migrations");
        sqlite3_finalize (stmt);
        if (rc != SQLITE_DONE)
            return -1;
    }
    self->schema_version = (int) count;
    return 0;
}

//  Applies the migrations the database lacks in one transaction, so a
//  failed upgrade leaves it exactly as the previous binary knew it.
//  Foreign keys are off while they run, as SQLite's procedure for changing
//  a table requires (dropping a parent table would otherwise cascade), and
//  the result is checked before the commit.
static int
s_migrate (ep_store_t *self, const char *const *migrations, size_t count)
{
    if (s_exec (self, "PRAGMA foreign_keys=OFF", "turning foreign keys off for migrations")
    ||  ep_store_begin (self))
        return -1;
    int rc = s_migrate_txn (self, migrations, count);
    if (rc == 0)
        rc = ep_store_commit (self);
    if (rc)
        //  Keeps the first error: this one would only say why it failed.
        sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
    self->batch = false;
    return rc;
}

ep_store_t *
ep_store_new (const char *path, const char *const *migrations, size_t count)
{
    EP_ASSERT (path);
    EP_ASSERT (migrations || count == 0);
    ep_store_t *self = (ep_store_t *) zmalloc (sizeof (ep_store_t));
    self->path = strdup (path);
    EP_ASSERT (self->path);
    char *copy = strdup (path);
    EP_ASSERT (copy);
    self->dir = strdup (dirname (copy));
    EP_ASSERT (self->dir);
    free (copy);
    self->stmts = zhashx_new ();
    zhashx_set_destructor (self->stmts, s_stmt_destroy);

    if (s_open (self)
    ||  s_migrate (self, migrations, count)
    ||  s_exec (self, "PRAGMA foreign_keys=ON", "turning foreign keys on"))
        ep_store_destroy (&self);
    return self;
}

void
ep_store_destroy (ep_store_t **self_p)
{
    EP_ASSERT (self_p);
    if (*self_p) {
        ep_store_t *self = *self_p;
        zhashx_destroy (&self->stmts);
        //  Busy only if a statement or backup made on the raw handle is
        //  still open: a programmer error, and the file would stay open.
        int rc = sqlite3_close (self->db);
        EP_ASSERT (rc == SQLITE_OK);
        free (self->path);
        free (self->dir);
        free (self);
        *self_p = NULL;
    }
}

const char *
ep_store_last_error (void)
{
    return s_error;
}

int
ep_store_schema_version (ep_store_t *self)
{
    EP_ASSERT (self);
    return self->schema_version;
}

sqlite3 *
ep_store_handle (ep_store_t *self)
{
    EP_ASSERT (self);
    return self->db;
}

sqlite3_stmt *
ep_store_stmt (ep_store_t *self, const char *sql)
{
    EP_ASSERT (self);
    EP_ASSERT (sql);
    sqlite3_stmt *stmt = (sqlite3_stmt *) zhashx_lookup (self->stmts, sql);
    if (stmt) {
        //  reset returns the last step's error, which was reported then.
        sqlite3_reset (stmt);
        sqlite3_clear_bindings (stmt);
        return stmt;
    }
    const char *tail = NULL;
    if (sqlite3_prepare_v3 (self->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                            &stmt, &tail) != SQLITE_OK) {
        s_fail (self, self->db, "preparing \"%.200s\"", sql);
        return NULL;
    }
    while (tail && isspace ((unsigned char) *tail))
        tail++;
    if (!stmt || (tail && *tail)) {
        sqlite3_finalize (stmt);
        s_error_set ("%s: ep_store_stmt takes exactly one statement, not \"%.200s\";"
                     " use ep_store_exec for several", self->path, sql);
        return NULL;
    }
    int rc = zhashx_insert (self->stmts, sql, stmt);
    EP_ASSERT (rc == 0);
    return stmt;
}

int
ep_store_step (ep_store_t *self, sqlite3_stmt *stmt)
{
    EP_ASSERT (self);
    EP_ASSERT (stmt);
    if (s_lost (self) && !sqlite3_stmt_readonly (stmt))
        return -1;
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    s_fail (self, self->db, "running \"%.200s\"", sqlite3_sql (stmt));
    sqlite3_reset (stmt);
    return -1;
}

int
ep_store_exec (ep_store_t *self, const char *sql)
{
    EP_ASSERT (self);
    EP_ASSERT (sql);
    if (s_lost (self))
        return -1;
    if (sqlite3_exec (self->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return s_fail (self, self->db, "running \"%.200s\"", sql);
    return 0;
}

//  Closes the connection and opens it again (after an I/O error). The
//  cached statements go with it; nobody holds one between calls.
static int
s_reopen (ep_store_t *self)
{
    zhashx_purge (self->stmts);
    //  _v2: a statement made on the raw handle and not yet finalized
    //  keeps the old connection alive until it is, instead of failing.
    sqlite3_close_v2 (self->db);
    self->db = NULL;
    if (s_open (self) != 0
    ||  s_exec (self, "PRAGMA foreign_keys=ON", "turning foreign keys on")) {
        //  Keeps the reason; the next begin tries again. A handle that
        //  failed to open still answers reads of what is on disk.
        self->reopen = true;
        return -1;
    }
    self->reopen = false;
    return 0;
}

int
ep_store_begin (ep_store_t *self)
{
    EP_ASSERT (self);
    if (self->reopen && !ep_store_in_transaction (self) && s_reopen (self) != 0)
        return -1;
    if (s_exec (self, "BEGIN IMMEDIATE", "beginning a transaction") != 0)
        return -1;
    self->batch = true;
    return 0;
}

int
ep_store_probe (ep_store_t *self)
{
    EP_ASSERT (self);
    //  The row is rewritten as it is, so the probe changes nothing; the
    //  page still goes to the WAL and through an fsync, as a write would.
    int rc = ep_store_begin (self);
    if (rc == 0)
        rc = s_exec (self, "UPDATE schema_version SET version = version", "probing the disk");
    if (rc == 0)
        rc = s_exec (self, "COMMIT", "probing the disk (committing)");
    if (rc != 0 && ep_store_in_transaction (self))
        //  Keeps the probe's error: this one would only say why it failed.
        sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
    self->batch = false;
    return rc;
}

const char *
ep_store_dir (ep_store_t *self)
{
    EP_ASSERT (self);
    return self->dir;
}

int
ep_store_commit (ep_store_t *self)
{
    EP_ASSERT (self);
    if (s_lost (self)) {
        self->batch = false;
        return -1;
    }
    self->batch = false;
    return s_exec (self, "COMMIT", "committing");
}

int
ep_store_rollback (ep_store_t *self)
{
    EP_ASSERT (self);
    self->batch = false;
    return s_exec (self, "ROLLBACK", "rolling back");
}

bool
ep_store_in_transaction (ep_store_t *self)
{
    EP_ASSERT (self);
    return !sqlite3_get_autocommit (self->db);
}

//  Runs format (with the savepoint name quoted as an identifier, %w).
static int
s_savepoint_exec (ep_store_t *self, const char *format, const char *name, const char *purpose)
{
    EP_ASSERT (self);
    EP_ASSERT (name);
    if (s_lost (self))
        return -1;
    char *sql = sqlite3_mprintf (format, name, name);
    EP_ASSERT (sql);
    int rc = 0;
    if (sqlite3_exec (self->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        rc = s_fail (self, self->db, "%s %s", purpose, name);
    sqlite3_free (sql);
    return rc;
}

int
ep_store_savepoint (ep_store_t *self, const char *name)
{
    return s_savepoint_exec (self, "SAVEPOINT \"%w\"", name, "opening savepoint");
}

int
ep_store_release (ep_store_t *self, const char *name)
{
    return s_savepoint_exec (self, "RELEASE \"%w\"", name, "releasing savepoint");
}

int
ep_store_rollback_to (ep_store_t *self, const char *name)
{
    return s_savepoint_exec (self, "ROLLBACK TO \"%w\"; RELEASE \"%w\"", name,
                             "rolling back to savepoint");
}

//  TRUNCATE rather than PASSIVE: SQLite's automatic checkpoints (every
//  1000 pages, at commit) are already passive and keep the WAL from
//  growing without bound, but they never shrink the file, so one burst
//  would leave a large WAL on disk for good. TRUNCATE empties it. It must
//  wait for readers; with one connection per service there are none but
//  ourselves, so the wait is bounded short and, if another process is
//  reading, the checkpoint does what PASSIVE would and the next one ends it.
int
ep_store_checkpoint (ep_store_t *self)
{
    EP_ASSERT (self);
    if (ep_store_in_transaction (self))
        return s_error_set ("%s: checkpoint inside a transaction; commit first", self->path);
    s_reset_all (self);
    sqlite3_busy_timeout (self->db, EP_STORE_CHECKPOINT_WAIT_MS);
    int rc = sqlite3_wal_checkpoint_v2 (self->db, "main", SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY)
        s_fail (self, self->db, "checkpointing the WAL");
    sqlite3_busy_timeout (self->db, EP_STORE_BUSY_TIMEOUT_MS);
    return rc == SQLITE_OK || rc == SQLITE_BUSY? 0: -1;
}

int64_t
ep_store_wal_size (ep_store_t *self)
{
    EP_ASSERT (self);
    if (streq (self->path, EP_STORE_MEMORY))
        return 0;
    const char *wal = sqlite3_filename_wal (sqlite3_db_filename (self->db, "main"));
    struct stat st;
    if (stat (wal, &st) == 0)
        return (int64_t) st.st_size;
    if (errno == ENOENT)
        return 0;
    return s_error_set ("%s: cannot read the size of %s: %s", self->path, wal, strerror (errno));
}

int64_t
ep_store_db_size (ep_store_t *self)
{
    EP_ASSERT (self);
    int64_t pages, page_size;
    if (s_query_int (self, "PRAGMA page_count", "reading the page count", &pages)
    ||  s_query_int (self, "PRAGMA page_size", "reading the page size", &page_size))
        return -1;
    return pages * page_size;
}

//  Makes a rename durable. Best effort: the backup file itself is already
//  complete and synced, only its name could be lost in a crash.
static void
s_sync_dir (const char *file)
{
    char *copy = strdup (file);
    EP_ASSERT (copy);
    int fd = open (dirname (copy), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync (fd);
        close (fd);
    }
    free (copy);
}

int
ep_store_backup (ep_store_t *self, const char *dest_path)
{
    EP_ASSERT (self);
    EP_ASSERT (dest_path);
    //  Our own connection's uncommitted changes would be copied too.
    if (ep_store_in_transaction (self))
        return s_error_set ("%s: backup inside a transaction; commit first", self->path);
    s_reset_all (self);

    char suffix [17];
    ep_random_hex (suffix, 8);
    char *partial = zsys_sprintf ("%s.partial-%s", dest_path, suffix);
    EP_ASSERT (partial);
    sqlite3 *dest = NULL;
    int rc = sqlite3_open_v2 (partial, &dest, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc == SQLITE_OK) {
        //  Errors of init and step land in the destination connection.
        sqlite3_backup *backup = sqlite3_backup_init (dest, "main", self->db, "main");
        if (backup) {
            //  All pages in one step: one consistent snapshot, and our
            //  databases are small enough that the pause does not matter.
            rc = sqlite3_backup_step (backup, -1);
            int finish_rc = sqlite3_backup_finish (backup);
            rc = rc == SQLITE_DONE? finish_rc: rc;
        }
        else
            rc = sqlite3_errcode (dest);
    }
    if (rc != SQLITE_OK)
        s_fail (self, dest, "writing a backup to %s (check that its directory exists"
                " and is writable, and that there is space)", dest_path);
    //  The destination holds nothing else open: closing cannot be busy.
    int close_rc = sqlite3_close (dest);
    EP_ASSERT (close_rc == SQLITE_OK);

    if (rc == SQLITE_OK && rename (partial, dest_path) != 0)
        rc = s_error_set ("%s: moving the backup into place as %s: %s",
                          self->path, dest_path, strerror (errno));
    if (rc == SQLITE_OK)
        s_sync_dir (dest_path);
    else
        unlink (partial);
    zstr_free (&partial);
    return rc == SQLITE_OK? 0: -1;
}
