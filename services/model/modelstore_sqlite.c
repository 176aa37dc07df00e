/*  modelstore_sqlite.c: the model's store in SQLite (see modelstore_sqlite.h).

    Tables: meta (revision, generation, restore_pending), entities (packed
    ep.Entity with type, id, name, version), hosted (service_id, router_id:
    which routers host which service), changes (revision, packed
    ModelChange) and replies (ep_replycache's rows). A batch is one
    transaction, a write one savepoint, a commit one fsync.
*/
#include "modelstore_sqlite.h"
#include "ep_log.h"
#include <errno.h>
#include <stdarg.h>
#include <sqlite3.h>

const char *const modelstore_sqlite_migrations [] = {
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE entities (type INTEGER NOT NULL, id TEXT NOT NULL, name TEXT,"
    "  version INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (type, id)) WITHOUT ROWID;"
    "CREATE INDEX entities_by_name ON entities (type, name, id);"
    "CREATE TABLE hosted (service_id TEXT NOT NULL, router_id TEXT NOT NULL,"
    "  PRIMARY KEY (service_id, router_id)) WITHOUT ROWID;"
    "CREATE INDEX hosted_by_router ON hosted (router_id);"
    "CREATE TABLE changes (revision INTEGER PRIMARY KEY, body BLOB NOT NULL);",
    //  2: the replies to writes, for retries across a restart (the table
    //  ep_replycache_save writes; the service fills it in each write's
    //  transaction).
    "CREATE TABLE replies (seq INTEGER PRIMARY KEY, stored_ms INTEGER NOT NULL,"
    "  caller TEXT NOT NULL, request_id TEXT NOT NULL, digest BLOB NOT NULL,"
    "  reply BLOB NOT NULL);"
};
const size_t modelstore_sqlite_migrations_count = EP_COUNT (modelstore_sqlite_migrations);

typedef struct {
    ep_store_t *store;          //  model.db
    bool owned;                 //  store is closed with this
    char error [768];           //  why the last call failed
    ep_store_fault_t fault;     //  its kind
} s_backend_t;

struct _modelstore_view_t {
    sqlite3 *db;                //  read-only connection in a read transaction
};

static void
s_failed (s_backend_t *self, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (self->error, sizeof self->error, format, args);
    va_end (args);
    self->fault = EP_STORE_FAULT_OTHER;
}

//  Records ep_store's reason for the failure of what returned rc.
static int
s_check (s_backend_t *self, int rc)
{
    if (rc < 0) {
        s_failed (self, "%s", ep_store_last_error ());
        self->fault = ep_store_last_fault ();
    }
    return rc < 0? -1: rc;
}

static void
s_destroy (void *backend)
{
    s_backend_t *self = (s_backend_t *) backend;
    if (self->owned)
        ep_store_destroy (&self->store);
    free (self);
}

static const char *
s_error (void *backend)
{
    return ((s_backend_t *) backend)->error;
}

//  ---------------------------------------------------------------------
//  State

static char *
s_meta_get (s_backend_t *self, const char *key)
{
    sqlite3_stmt *stmt = ep_store_stmt (self->store, "SELECT value FROM meta WHERE key = ?1");
    sqlite3_bind_text (stmt, 1, key, -1, SQLITE_STATIC);
    char *value = NULL;
    if (ep_store_step (self->store, stmt) == 1)
        value = strdup ((const char *) sqlite3_column_text (stmt, 0));
    sqlite3_reset (stmt);
    return value;
}

static int
s_meta_set (s_backend_t *self, const char *key, const char *value)
{
    sqlite3_stmt *stmt = ep_store_stmt (self->store,
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)");
    sqlite3_bind_text (stmt, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 2, value, -1, SQLITE_STATIC);
    return ep_store_step (self->store, stmt) < 0? -1: 0;
}

static int
s_state (void *backend, uint64_t *revision, char *generation, bool *restored)
{
    s_backend_t *self = (s_backend_t *) backend;
    char *value = s_meta_get (self, "revision");
    *revision = value? strtoull (value, NULL, 10): 0;
    free (value);
    value = s_meta_get (self, "generation");
    snprintf (generation, 33, "%s", value? value: "");
    free (value);
    value = s_meta_get (self, "restore_pending");
    *restored = value != NULL;
    free (value);
    return 0;
}

static int
s_set_generation (void *backend, const char *generation)
{
    s_backend_t *self = (s_backend_t *) backend;
    int rc = ep_store_begin (self->store);
    if (rc == 0)
        rc = s_meta_set (self, "generation", generation);
    if (rc == 0)
        rc = ep_store_exec (self->store,
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('revision', '0');"
            "DELETE FROM meta WHERE key = 'restore_pending'");
    if (rc == 0)
        rc = ep_store_commit (self->store);
    if (rc != 0) {
        s_failed (self, "%s", ep_store_last_error ());
        if (ep_store_in_transaction (self->store))
            ep_store_rollback (self->store);
    }
    return rc;
}

//  ---------------------------------------------------------------------
//  Batches

static int
s_begin (void *backend)
{
    s_backend_t *self = (s_backend_t *) backend;
    return s_check (self, ep_store_begin (self->store));
}

static bool
s_in_batch (void *backend)
{
    return ep_store_in_transaction (((s_backend_t *) backend)->store);
}

static int
s_write_begin (void *backend)
{
    s_backend_t *self = (s_backend_t *) backend;
    return s_check (self, ep_store_savepoint (self->store, "request"));
}

static void
s_write_end (void *backend, bool keep)
{
    s_backend_t *self = (s_backend_t *) backend;
    //  SQLite rolled the whole batch back (disk full, I/O error): there
    //  is no savepoint left, and the commit reports the failure.
    if (!ep_store_in_transaction (self->store))
        return;
    if (keep)
        EP_ASSERT (ep_store_release (self->store, "request") == 0);
    else
        EP_ASSERT (ep_store_rollback_to (self->store, "request") == 0);
}

static Ep__Entity *
s_get (void *backend, Ep__EntityType type, const char *id)
{
    s_backend_t *self = (s_backend_t *) backend;
    sqlite3_stmt *stmt = ep_store_stmt (self->store,
        "SELECT body FROM entities WHERE type = ?1 AND id = ?2");
    EP_ASSERT (stmt);
    sqlite3_bind_int (stmt, 1, type);
    sqlite3_bind_text (stmt, 2, id, -1, SQLITE_STATIC);
    Ep__Entity *entity = NULL;
    if (ep_store_step (self->store, stmt) == 1)
        entity = ep__entity__unpack (NULL, sqlite3_column_bytes (stmt, 0),
                                     (const uint8_t *) sqlite3_column_blob (stmt, 0));
    sqlite3_reset (stmt);
    return entity;
}

static int
s_hosting (void *backend, const char *service_id, zlistx_t *router_ids)
{
    s_backend_t *self = (s_backend_t *) backend;
    sqlite3_stmt *stmt = ep_store_stmt (self->store,
        "SELECT router_id FROM hosted WHERE service_id = ?1 ORDER BY router_id");
    sqlite3_bind_text (stmt, 1, service_id, -1, SQLITE_STATIC);
    int rc;
    while ((rc = ep_store_step (self->store, stmt)) == 1)
        zlistx_add_end (router_ids, strdup ((const char *) sqlite3_column_text (stmt, 0)));
    return s_check (self, rc);
}

//  Replaces the hosted rows of router_id with those of router (NULL: none).
static int
s_index_hosted (s_backend_t *self, const char *router_id, const Ep__Router *router)
{
    sqlite3_stmt *stmt = ep_store_stmt (self->store, "DELETE FROM hosted WHERE router_id = ?1");
    sqlite3_bind_text (stmt, 1, router_id, -1, SQLITE_STATIC);
    int rc = ep_store_step (self->store, stmt) < 0? -1: 0;
    for (size_t i = 0; rc == 0 && router && i < router->n_hosted; i++) {
        stmt = ep_store_stmt (self->store,
            "INSERT INTO hosted (service_id, router_id) VALUES (?1, ?2)");
        sqlite3_bind_text (stmt, 1, router->hosted [i]->service_id, -1, SQLITE_STATIC);
        sqlite3_bind_text (stmt, 2, router_id, -1, SQLITE_STATIC);
        rc = ep_store_step (self->store, stmt) < 0? -1: 0;
    }
    return rc;
}

static int
s_put (void *backend, Ep__EntityType type, const char *id, const char *name,
       uint64_t version, const Ep__Entity *entity)
{
    s_backend_t *self = (s_backend_t *) backend;
    size_t size;
    uint8_t *body = modelstore_pack (&entity->base, &size);
    sqlite3_stmt *stmt = ep_store_stmt (self->store,
        "INSERT OR REPLACE INTO entities (type, id, name, version, body) VALUES (?1, ?2, ?3, ?4, ?5)");
    EP_ASSERT (stmt);
    sqlite3_bind_int (stmt, 1, type);
    sqlite3_bind_text (stmt, 2, id, -1, SQLITE_STATIC);
    if (name && *name)
        sqlite3_bind_text (stmt, 3, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 4, (sqlite3_int64) version);
    sqlite3_bind_blob (stmt, 5, body, (int) size, SQLITE_STATIC);
    int rc = ep_store_step (self->store, stmt) < 0? -1: 0;
    free (body);
    if (rc == 0 && type == EP__ENTITY_TYPE__ENTITY_ROUTER)
        rc = s_index_hosted (self, id, entity->router);
    return s_check (self, rc);
}

static int
s_remove (void *backend, Ep__EntityType type, const char *id)
{
    s_backend_t *self = (s_backend_t *) backend;
    sqlite3_stmt *stmt = ep_store_stmt (self->store,
        "DELETE FROM entities WHERE type = ?1 AND id = ?2");
    sqlite3_bind_int (stmt, 1, type);
    sqlite3_bind_text (stmt, 2, id, -1, SQLITE_STATIC);
    int rc = ep_store_step (self->store, stmt) < 0? -1: 0;
    if (rc == 0 && type == EP__ENTITY_TYPE__ENTITY_ROUTER)
        rc = s_index_hosted (self, id, NULL);
    return s_check (self, rc);
}

static int
s_record (void *backend, const Ep__ModelChange *change, uint64_t forget_through)
{
    s_backend_t *self = (s_backend_t *) backend;
    size_t size;
    uint8_t *body = modelstore_pack (&change->base, &size);
    sqlite3_stmt *stmt = ep_store_stmt (self->store,
        "INSERT INTO changes (revision, body) VALUES (?1, ?2)");
    sqlite3_bind_int64 (stmt, 1, (sqlite3_int64) change->revision);
    sqlite3_bind_blob (stmt, 2, body, (int) size, SQLITE_STATIC);
    bool ok = ep_store_step (self->store, stmt) >= 0;
    free (body);
    char revision [24];
    snprintf (revision, sizeof revision, "%llu", (unsigned long long) change->revision);
    ok = ok && s_meta_set (self, "revision", revision) == 0;
    if (ok && forget_through > 0) {
        stmt = ep_store_stmt (self->store, "DELETE FROM changes WHERE revision <= ?1");
        sqlite3_bind_int64 (stmt, 1, (sqlite3_int64) forget_through);
        ok = ep_store_step (self->store, stmt) >= 0;
    }
    return s_check (self, ok? 0: -1);
}

static int
s_save_reply (void *backend, const char *caller_key, const char *request_id,
              const void *request, size_t size, zframe_t *reply, int64_t wall_ms)
{
    s_backend_t *self = (s_backend_t *) backend;
    return s_check (self, ep_replycache_save (self->store, caller_key, request_id, request,
                                              size, reply, wall_ms));
}

static int
s_prune_replies (void *backend, ep_replycache_t *cache, int64_t wall_ms, size_t limit)
{
    s_backend_t *self = (s_backend_t *) backend;
    return s_check (self, ep_replycache_prune (cache, self->store, wall_ms, limit));
}

static void
s_commit (void *backend, modelstore_done_fn *done, void *arg)
{
    s_backend_t *self = (s_backend_t *) backend;
    if (!ep_store_in_transaction (self->store)) {
        //  Lost during the batch: the statement that lost it recorded why.
        done (arg, -1, self->error);
        return;
    }
    int rc = s_check (self, ep_store_commit (self->store));
    if (rc != 0 && ep_store_in_transaction (self->store))
        ep_store_rollback (self->store);
    done (arg, rc, rc == 0? "": self->error);
}

static void
s_abandon (void *backend)
{
    s_backend_t *self = (s_backend_t *) backend;
    if (ep_store_in_transaction (self->store))
        ep_store_rollback (self->store);
}

//  ---------------------------------------------------------------------
//  Queries

//  Binds the statement of a LIST query on the main connection.
static sqlite3_stmt *
s_list_stmt (s_backend_t *self, const modelstore_query_t *query)
{
    const char *after = query->after_id? query->after_id: "";
    sqlite3_stmt *stmt;
    if (query->hosts_service) {
        stmt = ep_store_stmt (self->store,
            "SELECT e.body, e.id, e.version FROM hosted h JOIN entities e"
            " ON e.type = 1 AND e.id = h.router_id"
            " WHERE h.service_id = ?1 AND e.id > ?2 ORDER BY e.id");
        sqlite3_bind_text (stmt, 1, query->hosts_service, -1, SQLITE_STATIC);
        sqlite3_bind_text (stmt, 2, after, -1, SQLITE_STATIC);
    }
    else
    if (query->name) {
        stmt = ep_store_stmt (self->store,
            "SELECT body, id, version FROM entities WHERE type = ?1 AND name = ?2 AND id > ?3"
            " ORDER BY id");
        sqlite3_bind_int (stmt, 1, query->type);
        sqlite3_bind_text (stmt, 2, query->name, -1, SQLITE_STATIC);
        sqlite3_bind_text (stmt, 3, after, -1, SQLITE_STATIC);
    }
    else {
        stmt = ep_store_stmt (self->store,
            "SELECT body, id, version FROM entities WHERE type = ?1 AND id > ?2 ORDER BY id");
        sqlite3_bind_int (stmt, 1, query->type);
        sqlite3_bind_text (stmt, 2, after, -1, SQLITE_STATIC);
    }
    return stmt;
}

//  Binds the statement of a query; *cached says whether it is ep_store's
//  (reset after use) or the view's own (finalized).
static sqlite3_stmt *
s_query_stmt (s_backend_t *self, modelstore_query_t *query, bool *cached)
{
    *cached = true;
    sqlite3_stmt *stmt = NULL;
    switch (query->kind) {
        case MODELSTORE_GET:
            stmt = ep_store_stmt (self->store,
                "SELECT body, id, version, type FROM entities WHERE type = ?1 AND id = ?2");
            sqlite3_bind_int (stmt, 1, query->type);
            sqlite3_bind_text (stmt, 2, query->id, -1, SQLITE_STATIC);
            return stmt;
        case MODELSTORE_LIST:
            return s_list_stmt (self, query);
        case MODELSTORE_PAGE:
            *cached = false;
            if (sqlite3_prepare_v2 (query->view->db,
                "SELECT body, id, version, type FROM entities WHERE (type, id) > (?1, ?2)"
                " ORDER BY type, id LIMIT ?3", -1, &stmt, NULL) != SQLITE_OK) {
                s_failed (self, "snapshot page: %s", sqlite3_errmsg (query->view->db));
                sqlite3_finalize (stmt);
                return NULL;
            }
            sqlite3_bind_int (stmt, 1, query->after_type);
            sqlite3_bind_text (stmt, 2, query->after_id? query->after_id: "", -1, SQLITE_STATIC);
            sqlite3_bind_int64 (stmt, 3, query->limit? (sqlite3_int64) query->limit: -1);
            return stmt;
        case MODELSTORE_CHANGES:
            stmt = ep_store_stmt (self->store, "SELECT MIN(revision) FROM changes");
            query->oldest = 0;
            if (ep_store_step (self->store, stmt) == 1)
                query->oldest = (uint64_t) sqlite3_column_int64 (stmt, 0);
            sqlite3_reset (stmt);
            stmt = ep_store_stmt (self->store,
                "SELECT body, NULL, revision FROM changes WHERE revision > ?1"
                " ORDER BY revision LIMIT ?2");
            sqlite3_bind_int64 (stmt, 1, (sqlite3_int64) query->since);
            sqlite3_bind_int64 (stmt, 2, query->limit? (sqlite3_int64) query->limit: -1);
            return stmt;
        case MODELSTORE_ALL:
            return ep_store_stmt (self->store,
                "SELECT body, id, version, type FROM entities ORDER BY type, id");
    }
    return NULL;
}

static void
s_read (void *backend, modelstore_query_t *query, modelstore_row_fn *row_fn,
        modelstore_done_fn *done, void *arg)
{
    s_backend_t *self = (s_backend_t *) backend;
    bool cached;
    sqlite3_stmt *stmt = s_query_stmt (self, query, &cached);
    if (!stmt) {
        done (arg, -1, self->error);
        return;
    }
    int rc;
    while ((rc = cached? ep_store_step (self->store, stmt): sqlite3_step (stmt) == SQLITE_ROW? 1: 0)
           == 1) {
        modelstore_row_t row = {
            .type = query->kind == MODELSTORE_LIST? query->type
                  : (Ep__EntityType) sqlite3_column_int (stmt, 3),
            .id = (const char *) sqlite3_column_text (stmt, 1),
            .revision = (uint64_t) sqlite3_column_int64 (stmt, 2),
            .body = (const uint8_t *) sqlite3_column_blob (stmt, 0),
            .size = (size_t) sqlite3_column_bytes (stmt, 0)
        };
        if (!row_fn (arg, &row))
            break;
    }
    if (cached)
        sqlite3_reset (stmt);
    else
        sqlite3_finalize (stmt);
    rc = s_check (self, rc);
    done (arg, rc < 0? -1: 0, rc < 0? self->error: "");
}

static modelstore_view_t *
s_view_open (void *backend, uint64_t *revision)
{
    s_backend_t *self = (s_backend_t *) backend;
    const char *path = sqlite3_db_filename (ep_store_handle (self->store), "main");
    modelstore_view_t *view = (modelstore_view_t *) zmalloc (sizeof (modelstore_view_t));
    sqlite3_stmt *stmt = NULL;
    bool ok = sqlite3_open_v2 (path, &view->db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK
           && sqlite3_exec (view->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK
           && sqlite3_prepare_v2 (view->db, "SELECT value FROM meta WHERE key = 'revision'",
                                  -1, &stmt, NULL) == SQLITE_OK;
    int step = ok? sqlite3_step (stmt): SQLITE_ERROR;
    *revision = 0;
    if (step == SQLITE_ROW)
        *revision = strtoull ((const char *) sqlite3_column_text (stmt, 0), NULL, 10);
    sqlite3_finalize (stmt);
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        //  A read needs descriptors of its own: say so at the limit.
        int error = view->db? sqlite3_system_errno (view->db): 0;
        s_failed (self, "cannot open a read of %s: %s%s", path,
                  view->db? sqlite3_errmsg (view->db): "out of memory",
                  error == EMFILE || error == ENFILE? " (at the descriptor limit: raise it or lower the load)": "");
        sqlite3_close_v2 (view->db);
        free (view);
        return NULL;
    }
    return view;
}

static void
s_view_close (void *backend, modelstore_view_t *view)
{
    (void) backend;
    sqlite3_exec (view->db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close_v2 (view->db);
    free (view);
}

static int
s_load_replies (void *backend, ep_replycache_t *cache, int64_t wall_ms, int64_t now_ms)
{
    s_backend_t *self = (s_backend_t *) backend;
    return s_check (self, ep_replycache_load (cache, self->store, wall_ms, now_ms));
}

static void
s_backup (void *backend, const char *path, modelstore_done_fn *done, void *arg)
{
    s_backend_t *self = (s_backend_t *) backend;
    if (ep_store_backup (self->store, path) != 0) {
        s_failed (self, "backup to %s failed: %s", path, ep_store_last_error ());
        done (arg, -1, self->error);
        return;
    }
    //  The copy is marked: a store restored from it takes a new generation.
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2 (path, &db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec (db, "INSERT OR REPLACE INTO meta (key, value) VALUES ('restore_pending', '1')",
                           NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        s_failed (self, "backup %s written but not marked: %s", path,
                  db? sqlite3_errmsg (db): "out of memory");
    sqlite3_close_v2 (db);
    done (arg, rc == SQLITE_OK? 0: -1, rc == SQLITE_OK? "": self->error);
}

static void
s_tick (void *backend)
{
    ep_store_checkpoint (((s_backend_t *) backend)->store);
}

static int64_t
s_size (void *backend)
{
    return ep_store_db_size (((s_backend_t *) backend)->store);
}

static ep_store_fault_t
s_fault (void *backend)
{
    return ((s_backend_t *) backend)->fault;
}

static int
s_probe (void *backend)
{
    s_backend_t *self = (s_backend_t *) backend;
    return s_check (self, ep_store_probe (self->store));
}

static const modelstore_ops_t s_ops = {
    .destroy = s_destroy, .error = s_error, .state = s_state,
    .set_generation = s_set_generation, .begin = s_begin, .in_batch = s_in_batch,
    .write_begin = s_write_begin, .write_end = s_write_end, .get = s_get,
    .hosting = s_hosting, .put = s_put, .remove = s_remove, .record = s_record,
    .save_reply = s_save_reply, .prune_replies = s_prune_replies, .commit = s_commit, .abandon = s_abandon,
    .read = s_read, .view_open = s_view_open, .view_close = s_view_close,
    .load_replies = s_load_replies, .backup = s_backup, .tick = s_tick, .size = s_size,
    .fault = s_fault, .probe = s_probe
};

static modelstore_t *
s_new (ep_store_t *store, bool owned)
{
    EP_ASSERT (store);
    s_backend_t *self = (s_backend_t *) zmalloc (sizeof (s_backend_t));
    self->store = store;
    self->owned = owned;
    return modelstore_new (&s_ops, self);
}

modelstore_t *
modelstore_sqlite_new (ep_store_t *store)
{
    return s_new (store, false);
}

modelstore_t *
modelstore_sqlite_open (const char *path)
{
    ep_store_t *store = ep_store_new (path, modelstore_sqlite_migrations,
                                      modelstore_sqlite_migrations_count);
    if (!store) {
        ep_log_error ("cannot open %s: %s", path, ep_store_last_error ());
        return NULL;
    }
    return s_new (store, true);
}
