/*  ep_store.h: the embedded SQLite store of a stateful service.

    One ep_store_t is one connection to one database file, owned by one
    thread (the service's actor). It opens the file durably (WAL,
    synchronous=FULL, foreign keys on, 5 s busy timeout), brings the schema
    up to date with the service's migrations, caches prepared statements by
    their SQL text, and wraps transactions, savepoints, WAL checkpoints and
    online backups. See docs/store.md for the guarantees and for group commit.

    Errors: every function that fails records why (what it was doing, the
    database path and SQLite's message) in a per-thread buffer read with
    ep_store_last_error (), like errno or dlerror (). The module never prints
    and never aborts on a failure a user or the disk can cause; EP_ASSERT
    fires only on programmer errors (NULL arguments, a close with statements
    still open).
*/
#ifndef EP_STORE_H_INCLUDED
#define EP_STORE_H_INCLUDED

#include "ep_prelude.h"
#include <sqlite3.h>

typedef struct _ep_store_t ep_store_t;

//  What kind of failure a store error is. A full or failing disk is a
//  state the service reports and waits out (docs/store.md, "A full or
//  failing disk"), not a reason to stop.
typedef enum {
    EP_STORE_FAULT_NONE,        //  no error, or one that is not SQLite's
    EP_STORE_FAULT_FULL,        //  SQLITE_FULL: no space left on the disk
    EP_STORE_FAULT_FAILING,     //  SQLITE_IOERR_*: the disk refused a read, write or fsync
    EP_STORE_FAULT_OTHER,       //  any other SQLite error (constraint, bad SQL, busy, ...)
    EP_STORE_FAULT_NOSPACE      //  etcd's NOSPACE alarm: its quota is exceeded (the model's
                                //  etcd store; an operator frees space, docs/ha.md)
} ep_store_fault_t;

//  The path of an in-memory database: the cache of a store kept elsewhere
//  (the etcd modes' shard caches, docs/store.md), which nothing reads after
//  a restart, so it pays for neither a journal file nor page writes.
#define EP_STORE_MEMORY ":memory:"

//  Opens (creating) the database at path (or EP_STORE_MEMORY) and applies
//  migrations [0..count) whose 1-based number is above the recorded schema
//  version, all in one transaction. Refuses a database whose version is
//  above count. Returns NULL on failure: see ep_store_last_error ().
ep_store_t *
    ep_store_new (const char *path, const char *const *migrations, size_t count);

//  Finalizes the cached statements and closes the database; an open
//  transaction is rolled back. Nulls the caller's pointer.
void
    ep_store_destroy (ep_store_t **self_p);

//  Why the last failing ep_store call in this thread failed ("" if none).
//  Valid until the next failing call in this thread.
const char *
    ep_store_last_error (void);

//  The kind of the last failing ep_store call in this thread (with
//  ep_store_last_error): NONE if none, or if the failure was not SQLite's.
ep_store_fault_t
    ep_store_last_fault (void);

//  The kind of an SQLite result code (extended or primary): pure.
ep_store_fault_t
    ep_store_fault_of (int sqlite_rc);

//  "disk_full", "disk_failing", "etcd_nospace", "other" or "none": the metric label and
//  the reason the service.degraded event carries.
const char *
    ep_store_fault_name (ep_store_fault_t fault);

//  The schema version recorded in the database (the migrations applied).
int
    ep_store_schema_version (ep_store_t *self);

//  The raw connection, for what this module does not wrap. Do not close it.
sqlite3 *
    ep_store_handle (ep_store_t *self);

//  The prepared statement for sql (one statement), prepared once and cached
//  by its text; returned reset with its bindings cleared, so one use at a
//  time per text. Do not finalize it. Returns NULL on failure (bad SQL).
sqlite3_stmt *
    ep_store_stmt (ep_store_t *self, const char *sql);

//  Steps stmt: returns 1 if a row is ready, 0 when done, -1 on error (the
//  statement is reset and the error recorded with its SQL).
int
    ep_store_step (ep_store_t *self, sqlite3_stmt *stmt);

//  Runs sql (one or more statements, no results wanted). Returns 0 or -1.
int
    ep_store_exec (ep_store_t *self, const char *sql);

//  Starts a write transaction (BEGIN IMMEDIATE: takes the write lock now,
//  waiting up to the busy timeout, so a later statement cannot fail busy).
//  After an I/O error the connection is first closed and opened again
//  (its cached pages are not trusted after a failed fsync); if that
//  fails, so does the begin, and the next begin tries again.
int
    ep_store_begin (ep_store_t *self);

//  Commits the open transaction; once it returns 0 the data is on disk.
int
    ep_store_commit (ep_store_t *self);

//  Rolls the open transaction back.
int
    ep_store_rollback (ep_store_t *self);

//  True while a transaction is open. After a failed statement, false means
//  SQLite rolled the whole transaction back (disk full, I/O error, ...).
//  Until the commit or rollback that ends it, such a lost transaction
//  refuses every write (ep_store_step of a writing statement, ep_store_exec,
//  savepoints, ep_store_commit: -1, the error staying the one of the
//  statement that lost it), so nothing the caller will undo in memory can
//  reach the disk in autocommit. Reads still run.
bool
    ep_store_in_transaction (ep_store_t *self);

//  Opens savepoint name (any string; it is quoted) inside the transaction.
int
    ep_store_savepoint (ep_store_t *self, const char *name);

//  Releases savepoint name, keeping its changes in the transaction.
int
    ep_store_release (ep_store_t *self, const char *name);

//  Undoes everything since savepoint name and releases it; the rest of the
//  transaction stays.
int
    ep_store_rollback_to (ep_store_t *self, const char *name);

//  Copies the WAL back into the database and truncates the WAL to zero
//  bytes (TRUNCATE), waiting at most 100 ms for other connections; if they
//  stay busy it checkpoints what it can and returns 0 (the next call
//  finishes). Call it from a timer, outside a transaction; it resets every
//  cached statement (one left mid-result would block it).
int
    ep_store_checkpoint (ep_store_t *self);

//  Tries a small durable write outside a transaction (rewrites the schema
//  version row and commits): 0 once the disk takes writes again, -1 (with
//  ep_store_last_fault) while it does not. What a degraded service calls
//  from its timer when no write of its own comes to find out.
int
    ep_store_probe (ep_store_t *self);

//  The directory holding the database: where space must be freed.
const char *
    ep_store_dir (ep_store_t *self);

//  Size of the WAL file in bytes (0 if there is none), or -1 on error.
int64_t
    ep_store_wal_size (ep_store_t *self);

//  Size of the database in bytes (page_count * page_size), or -1 on error.
int64_t
    ep_store_db_size (ep_store_t *self);

//  Writes a consistent copy of the database to dest_path with SQLite's
//  online backup API; the file appears atomically (written beside it, then
//  renamed) and replaces any file there. Call it outside a transaction;
//  it resets every cached statement.
int
    ep_store_backup (ep_store_t *self, const char *dest_path);

#endif
