/*  test_store.c: the SQLite store: pragmas, migrations, statement cache,
    savepoints, checkpoints, backups, durability across reopen. */
#include <criterion/criterion.h>
#include "ep_test.h"
#include "ep_store.h"
#include <dirent.h>

//  Each migration appends its number to applied, so order and repetition show.
static const char *const s_migrations [] = {
    "CREATE TABLE applied (n INTEGER NOT NULL);"
    "CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT);"
    "INSERT INTO applied (n) VALUES (1)",
    "ALTER TABLE kv ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;"
    "INSERT INTO applied (n) VALUES (2)",
    "CREATE TABLE parent (id INTEGER PRIMARY KEY);"
    "CREATE TABLE child (id INTEGER PRIMARY KEY,"
    "  parent_id INTEGER NOT NULL REFERENCES parent (id));"
    "INSERT INTO applied (n) VALUES (3)",
};

static char *s_dir;
static char *s_path;

static void
s_setup (void)
{
    s_dir = ep_tmpdir_new ("store");
    s_path = zsys_sprintf ("%s/test.db", s_dir);
}

static void
s_teardown (void)
{
    zstr_free (&s_path);
    ep_tmpdir_remove (&s_dir);
}

TestSuite (store, .init = s_setup, .fini = s_teardown);

static ep_store_t *
s_open (size_t count)
{
    ep_store_t *store = ep_store_new (s_path, s_migrations, count);
    cr_assert (store, "ep_store_new: %s", ep_store_last_error ());
    return store;
}

static int64_t
s_int (ep_store_t *store, const char *sql)
{
    sqlite3_stmt *stmt = ep_store_stmt (store, sql);
    cr_assert (stmt, "%s", ep_store_last_error ());
    cr_assert_eq (ep_store_step (store, stmt), 1, "%s: %s", sql, ep_store_last_error ());
    return sqlite3_column_int64 (stmt, 0);
}

//  The applied column as "1,2,3".
static char *
s_applied (ep_store_t *store)
{
    sqlite3_stmt *stmt = ep_store_stmt (store,
        "SELECT coalesce (group_concat (n, ','), '') FROM (SELECT n FROM applied ORDER BY rowid)");
    cr_assert (stmt);
    cr_assert_eq (ep_store_step (store, stmt), 1);
    return strdup ((const char *) sqlite3_column_text (stmt, 0));
}

static void
s_put (ep_store_t *store, const char *k, const char *v)
{
    sqlite3_stmt *stmt = ep_store_stmt (store, "INSERT INTO kv (k, v) VALUES (?1, ?2)");
    cr_assert (stmt);
    sqlite3_bind_text (stmt, 1, k, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text (stmt, 2, v, -1, SQLITE_TRANSIENT);
    cr_assert_eq (ep_store_step (store, stmt), 0, "%s", ep_store_last_error ());
}

//  All keys as "a,b,c".
static char *
s_keys (ep_store_t *store)
{
    sqlite3_stmt *stmt = ep_store_stmt (store,
        "SELECT coalesce (group_concat (k, ','), '') FROM (SELECT k FROM kv ORDER BY k)");
    cr_assert (stmt);
    cr_assert_eq (ep_store_step (store, stmt), 1);
    return strdup ((const char *) sqlite3_column_text (stmt, 0));
}

Test (store, durability_pragmas_in_effect)
{
    ep_store_t *store = s_open (EP_COUNT (s_migrations));
    sqlite3_stmt *stmt = ep_store_stmt (store, "PRAGMA journal_mode");
    cr_assert_eq (ep_store_step (store, stmt), 1);
    cr_assert_str_eq ((const char *) sqlite3_column_text (stmt, 0), "wal");
    cr_assert_eq (s_int (store, "PRAGMA synchronous"), 2);     //  FULL
    cr_assert_eq (s_int (store, "PRAGMA busy_timeout"), 5000);
    cr_assert_eq (s_int (store, "PRAGMA foreign_keys"), 1);
    ep_store_destroy (&store);
    cr_assert_null (store);
}

//  The etcd modes' caches: migrated, foreign keys on, savepoints roll
//  back, and no file is written beside anything.
Test (store, memory_cache_has_no_files)
{
    ep_store_t *store = ep_store_new (EP_STORE_MEMORY, s_migrations, EP_COUNT (s_migrations));
    cr_assert_not_null (store, "%s", ep_store_last_error ());
    cr_assert_eq (s_int (store, "SELECT count(*) FROM applied"), 3);
    cr_assert_eq (s_int (store, "PRAGMA foreign_keys"), 1);
    cr_assert_eq (ep_store_begin (store), 0);
    cr_assert_eq (ep_store_exec (store, "INSERT INTO kv (k, v) VALUES ('a', '1')"), 0);
    cr_assert_eq (ep_store_commit (store), 0);
    cr_assert_eq (ep_store_checkpoint (store), 0);
    cr_assert_eq (ep_store_wal_size (store), 0);
    cr_assert_eq (s_int (store, "SELECT count(*) FROM kv"), 1);
    cr_assert_eq (access (EP_STORE_MEMORY, F_OK), -1, "no file named " EP_STORE_MEMORY);
    ep_store_destroy (&store);
}

Test (store, foreign_keys_enforced)
{
    ep_store_t *store = s_open (EP_COUNT (s_migrations));
    sqlite3_stmt *stmt = ep_store_stmt (store, "INSERT INTO child (id, parent_id) VALUES (1, 42)");
    cr_assert_eq (ep_store_step (store, stmt), -1);
    cr_assert_eq (sqlite3_errcode (ep_store_handle (store)), SQLITE_CONSTRAINT);
    cr_assert (strstr (ep_store_last_error (), "FOREIGN KEY"), "%s", ep_store_last_error ());
    ep_store_destroy (&store);
}

Test (store, migrations_applied_once_in_order)
{
    ep_store_t *store = s_open (EP_COUNT (s_migrations));
    cr_assert_eq (ep_store_schema_version (store), 3);
    cr_assert_eq (s_int (store, "SELECT version FROM schema_version"), 3);
    cr_assert_eq (s_int (store, "SELECT count (*) FROM schema_version"), 1);
    char *applied = s_applied (store);
    cr_assert_str_eq (applied, "1,2,3");
    free (applied);
    ep_store_destroy (&store);

    //  Reopening with the same migrations runs none of them again.
    store = s_open (EP_COUNT (s_migrations));
    applied = s_applied (store);
    cr_assert_str_eq (applied, "1,2,3");
    free (applied);
    ep_store_destroy (&store);
}

Test (store, reopen_applies_only_new_migrations)
{
    ep_store_t *store = s_open (1);
    cr_assert_eq (ep_store_schema_version (store), 1);
    s_put (store, "a", "1");
    ep_store_destroy (&store);

    store = s_open (EP_COUNT (s_migrations));
    cr_assert_eq (ep_store_schema_version (store), 3);
    char *applied = s_applied (store);
    cr_assert_str_eq (applied, "1,2,3");
    free (applied);
    //  Migration 2 changed the existing table and kept its row.
    cr_assert_eq (s_int (store, "SELECT count (*) FROM kv WHERE k = 'a' AND rev = 0"), 1);
    ep_store_destroy (&store);
}

Test (store, newer_schema_refused)
{
    ep_store_t *store = s_open (EP_COUNT (s_migrations));
    ep_store_destroy (&store);

    store = ep_store_new (s_path, s_migrations, 2);
    cr_assert_null (store);
    const char *error = ep_store_last_error ();
    cr_assert (strstr (error, s_path), "%s", error);
    cr_assert (strstr (error, "was written by a newer edgeplane (schema 3 > 2);"
                              " upgrade the binary or restore a backup"), "%s", error);

    //  The refused database is untouched.
    store = s_open (EP_COUNT (s_migrations));
    cr_assert_eq (s_int (store, "SELECT version FROM schema_version"), 3);
    ep_store_destroy (&store);
}

Test (store, failed_migration_changes_nothing)
{
    const char *const migrations [] = {
        s_migrations [0],
        "INSERT INTO applied (n) VALUES (2); INSERT INTO no_such_table VALUES (1)",
    };
    ep_store_t *store = ep_store_new (s_path, migrations, 2);
    cr_assert_null (store);
    const char *error = ep_store_last_error ();
    cr_assert (strstr (error, "applying migration 2"), "%s", error);
    cr_assert (strstr (error, "no_such_table"), "%s", error);

    //  Migration 1 was rolled back with 2: it runs (once) on the next open.
    store = s_open (1);
    char *applied = s_applied (store);
    cr_assert_str_eq (applied, "1");
    free (applied);
    ep_store_destroy (&store);
}

Test (store, migration_breaking_foreign_keys_refused)
{
    //  Migrations run with foreign keys off (so tables can be rebuilt), but
    //  what they leave behind is checked.
    const char *const migrations [] = {
        s_migrations [0], s_migrations [1], s_migrations [2],
        "INSERT INTO child (id, parent_id) VALUES (1, 42)",
    };
    ep_store_t *store = ep_store_new (s_path, migrations, 4);
    cr_assert_null (store);
    cr_assert (strstr (ep_store_last_error (), "child"), "%s", ep_store_last_error ());
    cr_assert (strstr (ep_store_last_error (), "foreign keys"), "%s", ep_store_last_error ());
}

Test (store, open_errors_say_what_to_do)
{
    ep_store_t *store = ep_store_new ("/nonexistent-dir/x.db", s_migrations, 1);
    cr_assert_null (store);
    cr_assert (strstr (ep_store_last_error (), "/nonexistent-dir/x.db"), "%s", ep_store_last_error ());
    cr_assert (strstr (ep_store_last_error (), "directory exists"), "%s", ep_store_last_error ());

    FILE *file = fopen (s_path, "w");
    cr_assert (file);
    fputs ("this is not a database, but it is long enough to have a header......\n", file);
    fclose (file);
    store = ep_store_new (s_path, s_migrations, 1);
    cr_assert_null (store);
    cr_assert (strstr (ep_store_last_error (), "not a database"), "%s", ep_store_last_error ());
}

Test (store, statement_cache_returns_same_reset_statement)
{
    ep_store_t *store = s_open (EP_COUNT (s_migrations));
    s_put (store, "a", "1");
    s_put (store, "b", "2");

    const char *sql = "SELECT k FROM kv WHERE k >= ?1 ORDER BY k";
    sqlite3_stmt *stmt = ep_store_stmt (store, sql);
    cr_assert (stmt);
    sqlite3_bind_text (stmt, 1, "b", -1, SQLITE_STATIC);
    cr_assert_eq (ep_store_step (store, stmt), 1);
    cr_assert_str_eq ((const char *) sqlite3_column_text (stmt, 0), "b");
    cr_assert (sqlite3_stmt_busy (stmt));

    //  Same text, same statement: no longer mid-result, binding cleared.
    sqlite3_stmt *again = ep_store_stmt (store, sql);
    cr_assert_eq (again, stmt);
    cr_assert_not (sqlite3_stmt_busy (again));
    cr_assert_eq (ep_store_step (store, again), 0);      //  k >= NULL: no rows
    cr_assert_eq (ep_store_stmt (store, sql), stmt);
    cr_assert_eq (sqlite3_bind_text (again, 1, "a", -1, SQLITE_STATIC), SQLITE_OK);
    cr_assert_eq (ep_store_step (store, again), 1);
    cr_assert_str_eq ((const char *) sqlite3_column_text (again, 0), "a");

    cr_assert_neq (ep_store_stmt (store, "SELECT 1"), stmt);
    ep_store_destroy (&store);
}

Test (store, statement_errors_name_the_sql)
{
    ep_store_t *store = s_open (EP_COUNT (s_migrations));
    cr_assert_null (ep_store_stmt (store, "SELEKT nothing"));
    cr_assert (strstr (ep_store_last_error (), "SELEKT nothing"), "%s", ep_store_last_error ());
    cr_assert (strstr (ep_store_last_error (), "syntax error"), "%s", ep_store_last_error ());

    cr_assert_null (ep_store_stmt (store, "SELECT 1; SELECT 2"));
    cr_assert (strstr (ep_store_last_error (), "one statement"), "%s", ep_store_last_error ());
    cr_assert_null (ep_store_stmt (store, "  "));

    s_put (store, "a", "1");
    sqlite3_stmt *stmt = ep_store_stmt (store, "INSERT INTO kv (k, v) VALUES (?1, ?2)");
    sqlite3_bind_text (stmt, 1, "a", -1, SQLITE_STATIC);
    cr_assert_eq (ep_store_step (store, stmt), -1);
    cr_assert_eq (sqlite3_errcode (ep_store_handle (store)), SQLITE_CONSTRAINT);
    cr_assert (strstr (ep_store_last_error (), "INSERT INTO kv"), "%s", ep_store_last_error ());
    cr_assert (strstr (ep_store_last_error (), "UNIQUE"), "%s", ep_store_last_error ());

    cr_assert_eq (ep_store_exec (store, "DROP TABLE no_such_table"), -1);
    cr_assert (strstr (ep_store_last_error (), "DROP TABLE no_such_table"), "%s", ep_store_last_error ());
    ep_store_destroy (&store);
}

Test (store, savepoint_rollback_keeps_rest_of_transaction)
{
    ep_store_t *store = s_open (EP_COUNT (s_migrations));
    cr_assert_not (ep_store_in_transaction (store));
    cr_assert_eq (ep_store_begin (store), 0, "%s", ep_store_last_error ());
    cr_assert (ep_store_in_transaction (store));

    //  Three requests in one group commit; the second one fails part-way.
    cr_assert_eq (ep_store_savepoint (store, "request"), 0);
    s_put (store, "a", "1");
    cr_assert_eq (ep_store_release (store, "request"), 0);

    cr_assert_eq (ep_store_savepoint (store, "request"), 0);
    s_put (store, "b", "2");
    cr_assert_eq (ep_store_rollback_to (store, "request"), 0, "%s", ep_store_last_error ());
    cr_assert (ep_store_in_transaction (store));

    cr_assert_eq (ep_store_savepoint (store, "req-\"3\""), 0, "%s", ep_store_last_error ());
    s_put (store, "c", "3");
    cr_assert_eq (ep_store_release (store, "req-\"3\""), 0);
    cr_assert_eq (ep_store_commit (store), 0, "%s", ep_store_last_error ());
    cr_assert_not (ep_store_in_transaction (store));

    char *keys = s_keys (store);
    cr_assert_str_eq (keys, "a,c");
    free (keys);

    //  The savepoint was released by rollback_to: it is gone.
    cr_assert_eq (ep_store_begin (store), 0);
    cr_assert_eq (ep_store_release (store, "request"), -1);
    cr_assert (strstr (ep_store_last_error (), "no such savepoint"), "%s", ep_store_last_error ());
    cr_assert_eq (ep_store_rollback (store), 0);
    ep_store_destroy (&store);
}

//  SQLite may roll a whole transaction back on its own (a full disk, an
//  I/O error); until the caller ends it, nothing may reach the disk in
//  autocommit, which would be durable while the caller undoes it in memory.
Test (store, a_lost_transaction_refuses_writes_until_it_is_ended)
{
    ep_store_t *store = s_open (EP_COUNT (s_migrations));
    cr_assert_eq (ep_store_begin (store), 0);
    s_put (store, "a", "1");
    cr_assert_eq (ep_store_savepoint (store, "request"), 0);
    //  What SQLite does after SQLITE_FULL or an I/O error, here by hand.
    cr_assert_eq (sqlite3_exec (ep_store_handle (store), "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    cr_assert_not (ep_store_in_transaction (store));
    cr_assert_eq (ep_store_savepoint (store, "request"), -1, "a savepoint would open a new transaction");
    sqlite3_stmt *stmt = ep_store_stmt (store, "INSERT INTO kv (k, v) VALUES ('b', '2')");
    cr_assert_not_null (stmt);
    cr_assert_eq (ep_store_step (store, stmt), -1, "an insert would be committed at once");
    cr_assert_eq (ep_store_exec (store, "INSERT INTO kv (k, v) VALUES ('c', '3')"), -1);
    cr_assert_not (ep_store_in_transaction (store));
    //  Reads still run.
    cr_assert_eq (s_int (store, "SELECT count (*) FROM kv"), 0);
    cr_assert_eq (ep_store_commit (store), -1, "the lost transaction cannot commit");
    //  Ended: writes run again.
    cr_assert_eq (ep_store_begin (store), 0, "%s", ep_store_last_error ());
    s_put (store, "d", "4");
    cr_assert_eq (ep_store_commit (store), 0, "%s", ep_store_last_error ());
    char *keys = s_keys (store);
    cr_assert_str_eq (keys, "d", "nothing of the lost transaction, nor after it, is on disk");
    free (keys);
    ep_store_destroy (&store);
}

Test (store, rollback_discards_transaction)
{
    ep_store_t *store = s_open (EP_COUNT (s_migrations));
    cr_assert_eq (ep_store_begin (store), 0);
    s_put (store, "a", "1");
    cr_assert_eq (ep_store_rollback (store), 0);
    cr_assert_eq (s_int (store, "SELECT count (*) FROM kv"), 0);
    //  Nested BEGIN is an error that is reported, not a crash.
    cr_assert_eq (ep_store_begin (store), 0);
    cr_assert_eq (ep_store_begin (store), -1);
    cr_assert (strstr (ep_store_last_error (), "beginning a transaction"), "%s", ep_store_last_error ());
    ep_store_destroy (&store);      //  rolls the open one back
}

Test (store, checkpoint_truncates_wal)
{
    ep_store_t *store = s_open (EP_COUNT (s_migrations));
    int64_t db_before = ep_store_db_size (store);
    cr_assert_gt (db_before, 0);
    cr_assert_eq (ep_store_begin (store), 0);
    char key [32], value [256];
    memset (value, 'x', sizeof value - 1);
    value [sizeof value - 1] = 0;
    for (int i = 0; i < 500; i++) {
        snprintf (key, sizeof key, "key-%d", i);
        s_put (store, key, value);
    }
    cr_assert_eq (ep_store_commit (store), 0);
    //  A statement left part-way through its rows must not stop it.
    sqlite3_stmt *stmt = ep_store_stmt (store, "SELECT k FROM kv");
    cr_assert_eq (ep_store_step (store, stmt), 1);

    cr_assert_gt (ep_store_wal_size (store), 100 * 1000);
    cr_assert_eq (ep_store_checkpoint (store), 0, "%s", ep_store_last_error ());
    cr_assert_eq (ep_store_wal_size (store), 0);
    cr_assert_gt (ep_store_db_size (store), db_before + 100 * 1000);
    cr_assert_eq (s_int (store, "SELECT count (*) FROM kv"), 500);

    //  Not inside a transaction: that is refused with a reason.
    cr_assert_eq (ep_store_begin (store), 0);
    cr_assert_eq (ep_store_checkpoint (store), -1);
    cr_assert (strstr (ep_store_last_error (), "commit first"), "%s", ep_store_last_error ());
    cr_assert_eq (ep_store_rollback (store), 0);
    ep_store_destroy (&store);
}

Test (store, checkpoint_does_not_wait_for_other_readers)
{
    ep_store_t *store = s_open (EP_COUNT (s_migrations));
    s_put (store, "a", "1");

    //  Another process (say the sqlite3 shell) holds a read snapshot.
    sqlite3 *reader;
    cr_assert_eq (sqlite3_open (s_path, &reader), SQLITE_OK);
    cr_assert_eq (sqlite3_exec (reader, "BEGIN; SELECT count (*) FROM kv", NULL, NULL, NULL), SQLITE_OK);
    s_put (store, "b", "2");

    //  The checkpoint gives up on truncating quickly instead of stalling
    //  the service for the 5 s busy timeout, and is not an error.
    int64_t start = ep_mono_ms ();
    cr_assert_eq (ep_store_checkpoint (store), 0, "%s", ep_store_last_error ());
    cr_assert_lt (ep_mono_ms () - start, 2000);
    cr_assert_gt (ep_store_wal_size (store), 0);
    cr_assert_eq (s_int (store, "PRAGMA busy_timeout"), 5000);

    //  Once the reader is gone the next one finishes the job.
    cr_assert_eq (sqlite3_exec (reader, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    cr_assert_eq (sqlite3_close (reader), SQLITE_OK);
    cr_assert_eq (ep_store_checkpoint (store), 0, "%s", ep_store_last_error ());
    cr_assert_eq (ep_store_wal_size (store), 0);
    ep_store_destroy (&store);
}

//  True if dir holds any file whose name contains part.
static bool
s_dir_has (const char *dir, const char *part)
{
    DIR *handle = opendir (dir);
    cr_assert (handle);
    bool found = false;
    struct dirent *entry;
    while ((entry = readdir (handle)))
        if (strstr (entry->d_name, part))
            found = true;
    closedir (handle);
    return found;
}

Test (store, online_backup_has_same_rows)
{
    ep_store_t *store = s_open (EP_COUNT (s_migrations));
    s_put (store, "a", "1");
    s_put (store, "b", "2");
    cr_assert_gt (ep_store_wal_size (store), 0);    //  rows still in the WAL are copied too

    char *backup_path = zsys_sprintf ("%s/backup.db", s_dir);
    cr_assert_eq (ep_store_backup (store, backup_path), 0, "%s", ep_store_last_error ());
    cr_assert_not (s_dir_has (s_dir, ".partial"));
    s_put (store, "c", "3");                         //  after the backup: not in it

    ep_store_t *copy = ep_store_new (backup_path, s_migrations, EP_COUNT (s_migrations));
    cr_assert (copy, "%s", ep_store_last_error ());
    cr_assert_eq (ep_store_schema_version (copy), 3);
    char *keys = s_keys (copy);
    cr_assert_str_eq (keys, "a,b");
    free (keys);
    cr_assert_eq (s_int (copy, "SELECT count (*) FROM kv WHERE k = 'b' AND v = '2'"), 1);
    ep_store_destroy (&copy);

    cr_assert_eq (ep_store_backup (store, "/nonexistent-dir/backup.db"), -1);
    cr_assert (strstr (ep_store_last_error (), "/nonexistent-dir/backup.db"), "%s", ep_store_last_error ());

    cr_assert_eq (ep_store_begin (store), 0);
    cr_assert_eq (ep_store_backup (store, backup_path), -1);
    cr_assert (strstr (ep_store_last_error (), "commit first"), "%s", ep_store_last_error ());
    cr_assert_eq (ep_store_rollback (store), 0);
    zstr_free (&backup_path);
    ep_store_destroy (&store);
}

Test (store, data_survives_close_and_reopen)
{
    ep_store_t *store = s_open (EP_COUNT (s_migrations));
    cr_assert_eq (ep_store_begin (store), 0);
    s_put (store, "a", "1");
    s_put (store, "b", "2");
    cr_assert_eq (ep_store_commit (store), 0);
    cr_assert_eq (ep_store_begin (store), 0);
    s_put (store, "uncommitted", "x");
    ep_store_destroy (&store);

    store = s_open (EP_COUNT (s_migrations));
    char *keys = s_keys (store);
    cr_assert_str_eq (keys, "a,b");
    free (keys);
    ep_store_destroy (&store);
}

//  A full or failing disk is told apart from other errors (issue 21).
Test (store, sqlite_errors_are_classified_full_failing_or_other)
{
    cr_assert_eq (ep_store_fault_of (SQLITE_OK), EP_STORE_FAULT_NONE);
    cr_assert_eq (ep_store_fault_of (SQLITE_DONE), EP_STORE_FAULT_NONE);
    cr_assert_eq (ep_store_fault_of (SQLITE_FULL), EP_STORE_FAULT_FULL);
    int failing [] = { SQLITE_IOERR, SQLITE_IOERR_WRITE, SQLITE_IOERR_FSYNC, SQLITE_IOERR_SHMSIZE,
                       SQLITE_IOERR_READ, SQLITE_IOERR_TRUNCATE, SQLITE_IOERR_DIR_FSYNC };
    for (size_t i = 0; i < EP_COUNT (failing); i++)
        cr_assert_eq (ep_store_fault_of (failing [i]), EP_STORE_FAULT_FAILING, "code %d", failing [i]);
    int other [] = { SQLITE_CONSTRAINT, SQLITE_CONSTRAINT_UNIQUE, SQLITE_BUSY, SQLITE_ERROR,
                     SQLITE_CORRUPT, SQLITE_READONLY };
    for (size_t i = 0; i < EP_COUNT (other); i++)
        cr_assert_eq (ep_store_fault_of (other [i]), EP_STORE_FAULT_OTHER, "code %d", other [i]);
    cr_assert_str_eq (ep_store_fault_name (EP_STORE_FAULT_FULL), "disk_full");
    cr_assert_str_eq (ep_store_fault_name (EP_STORE_FAULT_FAILING), "disk_failing");
}
