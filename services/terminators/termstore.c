/*  termstore.c: terminators.db (see termstore.h). */
#include "termstore.h"
#include <stdarg.h>

const char *const termstore_migrations [] = {
    "CREATE TABLE terminators (id TEXT PRIMARY KEY, service_id TEXT NOT NULL,"
    "  router_id TEXT NOT NULL, host_id TEXT NOT NULL, address TEXT,"
    "  cost INTEGER NOT NULL, precedence INTEGER NOT NULL, state INTEGER NOT NULL,"
    "  generation INTEGER NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
    "  last_error TEXT, model_revision INTEGER NOT NULL, attempts INTEGER NOT NULL,"
    "  due_at INTEGER NOT NULL, lacks INTEGER NOT NULL, create_revision INTEGER NOT NULL)"
    "  WITHOUT ROWID;"
    "CREATE INDEX terminators_by_router ON terminators (router_id, id);"
    "CREATE INDEX terminators_by_service ON terminators (service_id, id);"
    "CREATE INDEX terminators_by_state ON terminators (state, id);"
    "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, body BLOB NOT NULL);"
};
const size_t termstore_migrations_count = EP_COUNT (termstore_migrations);

#define COLUMNS "id, service_id, router_id, host_id, address, cost, precedence, state," \
                " generation, created_at, updated_at, last_error, model_revision, attempts," \
                " due_at, lacks, create_revision"

termrec_t *
termrec_new (const char *id)
{
    termrec_t *self = (termrec_t *) zmalloc (sizeof (termrec_t));
    snprintf (self->id, sizeof self->id, "%s", id? id: "");
    return self;
}

termrec_t *
termrec_dup (const termrec_t *self)
{
    termrec_t *copy = (termrec_t *) zmalloc (sizeof (termrec_t));
    termrec_copy (copy, self);
    return copy;
}

void
termrec_copy (termrec_t *dest, const termrec_t *source)
{
    if (dest == source)
        return;
    free (dest->address);
    free (dest->last_error);
    *dest = *source;
    dest->address = source->address? strdup (source->address): NULL;
    dest->last_error = source->last_error? strdup (source->last_error): NULL;
}

void
termrec_destroy (termrec_t **self_p)
{
    termrec_t *self = *self_p;
    if (self) {
        free (self->address);
        free (self->last_error);
        free (self);
        *self_p = NULL;
    }
}

void
termrec_set_error (termrec_t *self, const char *format, ...)
{
    free (self->last_error);
    self->last_error = NULL;
    if (format) {
        va_list args;
        va_start (args, format);
        if (vasprintf (&self->last_error, format, args) < 0)
            self->last_error = NULL;
        va_end (args);
    }
}

void
termrec_set_address (termrec_t *self, const char *address)
{
    free (self->address);
    self->address = address && *address? strdup (address): NULL;
}

static void
s_bind_text (sqlite3_stmt *stmt, int index, const char *text)
{
    if (text)
        sqlite3_bind_text (stmt, index, text, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null (stmt, index);
}

int
termstore_save (ep_store_t *store, const termrec_t *record)
{
    sqlite3_stmt *stmt = ep_store_stmt (store,
        "INSERT OR REPLACE INTO terminators (" COLUMNS ") VALUES"
        " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)");
    EP_ASSERT (stmt);
    sqlite3_bind_text (stmt, 1, record->id, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 2, record->service_id, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 3, record->router_id, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 4, record->host_id, -1, SQLITE_STATIC);
    s_bind_text (stmt, 5, record->address);
    sqlite3_bind_int64 (stmt, 6, record->cost);
    sqlite3_bind_int64 (stmt, 7, record->precedence);
    sqlite3_bind_int (stmt, 8, record->sm.state);
    sqlite3_bind_int64 (stmt, 9, (sqlite3_int64) record->generation);
    sqlite3_bind_int64 (stmt, 10, record->created_at_ms);
    sqlite3_bind_int64 (stmt, 11, record->updated_at_ms);
    s_bind_text (stmt, 12, record->last_error);
    sqlite3_bind_int64 (stmt, 13, (sqlite3_int64) record->model_revision);
    sqlite3_bind_int64 (stmt, 14, record->sm.attempts);
    sqlite3_bind_int64 (stmt, 15, record->sm.due_ms);
    sqlite3_bind_int (stmt, 16, record->sm.lacks);
    sqlite3_bind_int64 (stmt, 17, (sqlite3_int64) record->create_revision);
    return ep_store_step (store, stmt) < 0? -1: 0;
}

int
termstore_remove (ep_store_t *store, const char *id)
{
    sqlite3_stmt *stmt = ep_store_stmt (store, "DELETE FROM terminators WHERE id = ?1");
    EP_ASSERT (stmt);
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
    return ep_store_step (store, stmt) < 0? -1: 0;
}

static void
s_copy_text (char *dest, size_t size, sqlite3_stmt *stmt, int column)
{
    const char *text = (const char *) sqlite3_column_text (stmt, column);
    snprintf (dest, size, "%s", text? text: "");
}

static char *
s_dup_text (sqlite3_stmt *stmt, int column)
{
    const char *text = (const char *) sqlite3_column_text (stmt, column);
    return text? strdup (text): NULL;
}

//  The record in the current row of a SELECT COLUMNS.
static termrec_t *
s_row (sqlite3_stmt *stmt)
{
    termrec_t *record = termrec_new (NULL);
    s_copy_text (record->id, sizeof record->id, stmt, 0);
    s_copy_text (record->service_id, sizeof record->service_id, stmt, 1);
    s_copy_text (record->router_id, sizeof record->router_id, stmt, 2);
    s_copy_text (record->host_id, sizeof record->host_id, stmt, 3);
    record->address = s_dup_text (stmt, 4);
    record->cost = (uint32_t) sqlite3_column_int64 (stmt, 5);
    record->precedence = (uint32_t) sqlite3_column_int64 (stmt, 6);
    int state = sqlite3_column_int (stmt, 7);
    record->sm.state = state > 0 && state < TERMSM_STATE_COUNT? (termsm_state_t) state: TERMSM_FAILED;
    record->generation = (uint64_t) sqlite3_column_int64 (stmt, 8);
    record->created_at_ms = sqlite3_column_int64 (stmt, 9);
    record->updated_at_ms = sqlite3_column_int64 (stmt, 10);
    record->last_error = s_dup_text (stmt, 11);
    record->model_revision = (uint64_t) sqlite3_column_int64 (stmt, 12);
    record->sm.attempts = (uint32_t) sqlite3_column_int64 (stmt, 13);
    record->sm.due_ms = sqlite3_column_int64 (stmt, 14);
    record->sm.lacks = sqlite3_column_int (stmt, 15) != 0;
    record->create_revision = (uint64_t) sqlite3_column_int64 (stmt, 16);
    return record;
}

int
termstore_load (ep_store_t *store, void (*fn) (void *arg, termrec_t *record), void *arg)
{
    sqlite3_stmt *stmt = ep_store_stmt (store, "SELECT " COLUMNS " FROM terminators");
    EP_ASSERT (stmt);
    int rc;
    while ((rc = ep_store_step (store, stmt)) == 1)
        fn (arg, s_row (stmt));
    sqlite3_reset (stmt);
    return rc < 0? -1: 0;
}

int
termstore_list (ep_store_t *store, const char *service_id, const char *router_id,
                int state, const char *after, uint32_t limit, zlistx_t *out)
{
    //  One statement per leading filter, so each walks its own index in
    //  id order; the other filters are checked on the way.
    const char *sql;
    if (router_id)
        sql = "SELECT " COLUMNS " FROM terminators WHERE router_id = ?2 AND (?1 IS NULL OR service_id = ?1)"
              " AND (state = ?3 OR (?3 = -1 AND state != 4)) AND id > ?4 ORDER BY id LIMIT ?5";
    else
    if (service_id)
        sql = "SELECT " COLUMNS " FROM terminators WHERE service_id = ?1"
              " AND (state = ?3 OR (?3 = -1 AND state != 4)) AND id > ?4 ORDER BY id LIMIT ?5";
    else
    if (state >= 0)
        sql = "SELECT " COLUMNS " FROM terminators WHERE state = ?3 AND id > ?4 ORDER BY id LIMIT ?5";
    else
        sql = "SELECT " COLUMNS " FROM terminators WHERE state != 4 AND id > ?4 ORDER BY id LIMIT ?5";
    sqlite3_stmt *stmt = ep_store_stmt (store, sql);
    EP_ASSERT (stmt);
    s_bind_text (stmt, 1, service_id);
    s_bind_text (stmt, 2, router_id);
    sqlite3_bind_int (stmt, 3, state);
    sqlite3_bind_text (stmt, 4, after? after: "", -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 5, limit);
    int rc;
    while ((rc = ep_store_step (store, stmt)) == 1)
        zlistx_add_end (out, s_row (stmt));
    sqlite3_reset (stmt);
    return rc < 0? -1: 0;
}

int64_t
termstore_outbox_add (ep_store_t *store, const char *topic, const void *body, size_t size)
{
    sqlite3_stmt *stmt = ep_store_stmt (store, "INSERT INTO outbox (topic, body) VALUES (?1, ?2)");
    EP_ASSERT (stmt);
    sqlite3_bind_text (stmt, 1, topic, -1, SQLITE_STATIC);
    sqlite3_bind_blob (stmt, 2, body, (int) size, SQLITE_STATIC);
    if (ep_store_step (store, stmt) < 0)
        return -1;
    return (int64_t) sqlite3_last_insert_rowid (ep_store_handle (store));
}

int
termstore_outbox_trim (ep_store_t *store, int64_t seq)
{
    sqlite3_stmt *stmt = ep_store_stmt (store, "DELETE FROM outbox WHERE seq <= ?1");
    EP_ASSERT (stmt);
    sqlite3_bind_int64 (stmt, 1, seq);
    return ep_store_step (store, stmt) < 0? -1: 0;
}

int
termstore_outbox_load (ep_store_t *store,
                       void (*fn) (void *arg, int64_t seq, const char *topic,
                                   const void *body, size_t size),
                       void *arg)
{
    sqlite3_stmt *stmt = ep_store_stmt (store, "SELECT seq, topic, body FROM outbox ORDER BY seq");
    EP_ASSERT (stmt);
    int rc;
    while ((rc = ep_store_step (store, stmt)) == 1)
        fn (arg, sqlite3_column_int64 (stmt, 0), (const char *) sqlite3_column_text (stmt, 1),
            sqlite3_column_blob (stmt, 2), (size_t) sqlite3_column_bytes (stmt, 2));
    sqlite3_reset (stmt);
    return rc < 0? -1: 0;
}
