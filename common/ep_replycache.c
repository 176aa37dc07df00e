/*  ep_replycache.c: a hash for lookups plus a list in arrival order, so that
    expiry by age or count pops from the front: O(1) per request. The
    durable rows mirror that list: seq is the arrival order, and pruning
    pops from its front too. */
#include "ep_replycache.h"
#include <sodium.h>

#define DIGEST_SIZE 16

typedef struct {
    char *key;                  //  "caller\x1frequest_id"
    zframe_t *reply;            //  the reply sent
    uint8_t digest [DIGEST_SIZE]; //  digest of the request bytes
    int64_t stored_ms;          //  when it was stored
    void *handle;               //  its place in the arrival list
} s_entry_t;

struct _ep_replycache_t {
    size_t max_entries;         //  cap on entries
    int64_t ttl_ms;             //  cap on age
    zhashx_t *entries;          //  key -> s_entry_t (not owned)
    zlistx_t *order;            //  s_entry_t in arrival order (owned)
};

static void
s_entry_destroy (void **item)
{
    s_entry_t *entry = (s_entry_t *) *item;
    if (entry) {
        free (entry->key);
        zframe_destroy (&entry->reply);
        free (entry);
        *item = NULL;
    }
}

ep_replycache_t *
ep_replycache_new (size_t max_entries, int64_t ttl_ms)
{
    EP_ASSERT (max_entries > 0 && ttl_ms > 0);
    EP_ASSERT (sodium_init () >= 0);
    ep_replycache_t *self = (ep_replycache_t *) zmalloc (sizeof (ep_replycache_t));
    self->max_entries = max_entries;
    self->ttl_ms = ttl_ms;
    self->entries = zhashx_new ();
    self->order = zlistx_new ();
    zlistx_set_destructor (self->order, s_entry_destroy);
    return self;
}

void
ep_replycache_destroy (ep_replycache_t **self_p)
{
    ep_replycache_t *self = *self_p;
    if (self) {
        zhashx_destroy (&self->entries);
        zlistx_destroy (&self->order);
        free (self);
        *self_p = NULL;
    }
}

static void
s_expire (ep_replycache_t *self, int64_t now_ms)
{
    s_entry_t *oldest;
    while ((oldest = (s_entry_t *) zlistx_first (self->order))
    &&     (zlistx_size (self->order) > self->max_entries
        ||  now_ms - oldest->stored_ms >= self->ttl_ms)) {
        zhashx_delete (self->entries, oldest->key);
        zlistx_delete (self->order, oldest->handle);
    }
}

static char *
s_key (const char *caller_key, const char *request_id)
{
    return zsys_sprintf ("%s\x1f%s", caller_key? caller_key: "", request_id);
}

static void
s_digest (const void *data, size_t size, uint8_t *digest)
{
    crypto_generichash (digest, DIGEST_SIZE, (const unsigned char *) data, size, NULL, 0);
}

ep_replycache_result_t
ep_replycache_lookup (ep_replycache_t *self, const char *caller_key,
                      const char *request_id, const void *request, size_t size,
                      int64_t now_ms, zframe_t **reply_p)
{
    s_expire (self, now_ms);
    char *key = s_key (caller_key, request_id);
    s_entry_t *entry = (s_entry_t *) zhashx_lookup (self->entries, key);
    free (key);
    if (!entry)
        return EP_REPLYCACHE_MISS;
    uint8_t digest [DIGEST_SIZE];
    s_digest (request, size, digest);
    if (sodium_memcmp (digest, entry->digest, DIGEST_SIZE) != 0)
        return EP_REPLYCACHE_MISMATCH;
    *reply_p = entry->reply;
    return EP_REPLYCACHE_HIT;
}

//  Adds an entry (reply copied), replacing any for the same key, which
//  moves to the end of the arrival order as a new entry would.
static void
s_insert (ep_replycache_t *self, char *key, const uint8_t *digest, zframe_t *reply,
          int64_t stored_ms, int64_t now_ms)
{
    s_entry_t *old = (s_entry_t *) zhashx_lookup (self->entries, key);
    if (old) {
        zhashx_delete (self->entries, key);
        zlistx_delete (self->order, old->handle);
    }
    s_entry_t *entry = (s_entry_t *) zmalloc (sizeof (s_entry_t));
    entry->key = key;
    entry->reply = zframe_dup (reply);
    memcpy (entry->digest, digest, DIGEST_SIZE);
    entry->stored_ms = stored_ms;
    entry->handle = zlistx_add_end (self->order, entry);
    zhashx_insert (self->entries, key, entry);
    s_expire (self, now_ms);
}

void
ep_replycache_store (ep_replycache_t *self, const char *caller_key,
                     const char *request_id, const void *request, size_t size,
                     zframe_t *reply, int64_t now_ms)
{
    uint8_t digest [DIGEST_SIZE];
    s_digest (request, size, digest);
    s_insert (self, s_key (caller_key, request_id), digest, reply, now_ms, now_ms);
}

size_t
ep_replycache_size (ep_replycache_t *self)
{
    return zlistx_size (self->order);
}

//  ---------------------------------------------------------------------
//  Durable entries

int
ep_replycache_save (ep_store_t *store, const char *caller_key,
                    const char *request_id, const void *request, size_t size,
                    zframe_t *reply, int64_t wall_ms)
{
    uint8_t digest [DIGEST_SIZE];
    s_digest (request, size, digest);
    sqlite3_stmt *stmt = ep_store_stmt (store,
        "INSERT INTO replies (stored_ms, caller, request_id, digest, reply) VALUES (?1, ?2, ?3, ?4, ?5)");
    if (!stmt)
        return -1;
    sqlite3_bind_int64 (stmt, 1, wall_ms);
    sqlite3_bind_text (stmt, 2, caller_key? caller_key: "", -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 3, request_id, -1, SQLITE_STATIC);
    sqlite3_bind_blob (stmt, 4, digest, DIGEST_SIZE, SQLITE_STATIC);
    //  A zero-length blob binds as NULL unless its pointer is non-NULL.
    sqlite3_bind_blob (stmt, 5, zframe_size (reply)? zframe_data (reply): (void *) "",
                       (int) zframe_size (reply), SQLITE_STATIC);
    int rc = ep_store_step (store, stmt) < 0? -1: 0;
    sqlite3_reset (stmt);
    return rc;
}

//  The newest seq in store (0 if none) into *seq. Returns 0 or -1.
static int
s_newest (ep_store_t *store, int64_t *seq)
{
    sqlite3_stmt *stmt = ep_store_stmt (store, "SELECT MAX(seq) FROM replies");
    if (!stmt)
        return -1;
    int rc = ep_store_step (store, stmt);
    *seq = rc == 1? sqlite3_column_int64 (stmt, 0): 0;
    sqlite3_reset (stmt);
    return rc < 0? -1: 0;
}

//  The statement sql over the rows, and where the rows kept end: a row at
//  seq *over or before is more than max_entries behind the newest, one
//  stored at *expired or before is older than the ttl. NULL if the store
//  failed.
static sqlite3_stmt *
s_rows (ep_replycache_t *self, ep_store_t *store, const char *sql, int64_t now_wall_ms,
        int64_t *over, int64_t *expired)
{
    int64_t newest;
    if (s_newest (store, &newest))
        return NULL;
    *over = newest - (int64_t) self->max_entries;
    *expired = now_wall_ms - self->ttl_ms;
    return ep_store_stmt (store, sql);
}

int
ep_replycache_load (ep_replycache_t *self, ep_store_t *store,
                    int64_t now_wall_ms, int64_t now_ms)
{
    int64_t over, expired;
    sqlite3_stmt *stmt = s_rows (self, store,
        "SELECT stored_ms, caller, request_id, digest, reply FROM replies"
        " WHERE seq > ?1 AND stored_ms > ?2 ORDER BY seq", now_wall_ms, &over, &expired);
    if (!stmt)
        return -1;
    sqlite3_bind_int64 (stmt, 1, over);
    sqlite3_bind_int64 (stmt, 2, expired);
    int loaded = 0, rc;
    while ((rc = ep_store_step (store, stmt)) == 1) {
        if (sqlite3_column_bytes (stmt, 3) != DIGEST_SIZE)
            continue;           //  not a row this module wrote
        //  As old as it is by the wall clock; a clock set back since makes
        //  it new, not older than new.
        int64_t age = now_wall_ms - sqlite3_column_int64 (stmt, 0);
        if (age < 0)
            age = 0;
        zframe_t *reply = zframe_new (sqlite3_column_blob (stmt, 4),
                                      (size_t) sqlite3_column_bytes (stmt, 4));
        s_insert (self, s_key ((const char *) sqlite3_column_text (stmt, 1),
                               (const char *) sqlite3_column_text (stmt, 2)),
                  (const uint8_t *) sqlite3_column_blob (stmt, 3), reply, now_ms - age, now_ms);
        zframe_destroy (&reply);
        loaded++;
    }
    sqlite3_reset (stmt);
    return rc < 0? -1: loaded;
}

int
ep_replycache_prune (ep_replycache_t *self, ep_store_t *store,
                     int64_t now_wall_ms, size_t limit)
{
    //  The rows to drop are a prefix in seq order, as in memory: find where
    //  it ends (reading at most limit rows), then delete it in one range.
    int64_t over, expired;
    sqlite3_stmt *stmt = s_rows (self, store, "SELECT seq, stored_ms FROM replies ORDER BY seq LIMIT ?1",
                                 now_wall_ms, &over, &expired);
    if (!stmt)
        return -1;
    sqlite3_bind_int64 (stmt, 1, limit? (int64_t) limit: -1);
    int64_t last = 0;
    int count = 0, rc;
    while ((rc = ep_store_step (store, stmt)) == 1) {
        int64_t seq = sqlite3_column_int64 (stmt, 0);
        if (seq > over && sqlite3_column_int64 (stmt, 1) > expired)
            break;
        last = seq;
        count++;
    }
    sqlite3_reset (stmt);
    if (rc < 0)
        return -1;
    if (count == 0)
        return 0;
    stmt = ep_store_stmt (store, "DELETE FROM replies WHERE seq <= ?1");
    if (!stmt)
        return -1;
    sqlite3_bind_int64 (stmt, 1, last);
    rc = ep_store_step (store, stmt);
    sqlite3_reset (stmt);
    return rc < 0? -1: count;
}

//  ---------------------------------------------------------------------
//  Durable entries as values: "EPR1", stored_ms (8 bytes, big-endian),
//  the digest, the caller key and the request id (each a 2-byte length
//  then the bytes), then the reply.

#define ENTRY_MAGIC "EPR1"

uint8_t *
ep_replycache_entry_pack (const char *caller_key, const char *request_id,
                          const void *request, size_t size, zframe_t *reply,
                          int64_t wall_ms, size_t *packed_size)
{
    const char *caller = caller_key? caller_key: "";
    size_t caller_size = strlen (caller), id_size = strlen (request_id);
    EP_ASSERT (caller_size <= UINT16_MAX && id_size <= UINT16_MAX);
    *packed_size = 4 + 8 + DIGEST_SIZE + 2 + caller_size + 2 + id_size + zframe_size (reply);
    uint8_t *data = (uint8_t *) malloc (*packed_size + 1);
    uint8_t *p = data;
    memcpy (p, ENTRY_MAGIC, 4);
    p += 4;
    for (int i = 7; i >= 0; i--)
        *p++ = (uint8_t) ((uint64_t) wall_ms >> (8 * i));
    s_digest (request, size, p);
    p += DIGEST_SIZE;
    *p++ = (uint8_t) (caller_size >> 8);
    *p++ = (uint8_t) caller_size;
    memcpy (p, caller, caller_size);
    p += caller_size;
    *p++ = (uint8_t) (id_size >> 8);
    *p++ = (uint8_t) id_size;
    memcpy (p, request_id, id_size);
    p += id_size;
    if (zframe_size (reply))
        memcpy (p, zframe_data (reply), zframe_size (reply));
    return data;
}

//  A length-prefixed string of data at *offset into buf (of bufsize);
//  false if it does not fit.
static bool
s_entry_string (const uint8_t *data, size_t size, size_t *offset, char *buf, size_t bufsize)
{
    if (*offset + 2 > size)
        return false;
    size_t length = ((size_t) data [*offset] << 8) | data [*offset + 1];
    *offset += 2;
    if (*offset + length > size || length >= bufsize)
        return false;
    memcpy (buf, data + *offset, length);
    buf [length] = 0;
    *offset += length;
    return true;
}

int
ep_replycache_entry_load (ep_replycache_t *self, const uint8_t *data, size_t size,
                          int64_t now_wall_ms, int64_t now_ms)
{
    if (size < 4 + 8 + DIGEST_SIZE || memcmp (data, ENTRY_MAGIC, 4) != 0)
        return -1;
    uint64_t stored = 0;
    for (int i = 0; i < 8; i++)
        stored = (stored << 8) | data [4 + i];
    const uint8_t *digest = data + 12;
    size_t offset = 12 + DIGEST_SIZE;
    char caller [UINT16_MAX + 1], request_id [UINT16_MAX + 1];
    if (!s_entry_string (data, size, &offset, caller, sizeof caller)
    ||  !s_entry_string (data, size, &offset, request_id, sizeof request_id))
        return -1;
    //  As old as it is by the wall clock (a clock set back makes it new).
    int64_t age = now_wall_ms - (int64_t) stored;
    if (age < 0)
        age = 0;
    if (age >= self->ttl_ms)
        return 0;
    zframe_t *reply = zframe_new (data + offset, size - offset);
    s_insert (self, s_key (caller, request_id), digest, reply, now_ms - age, now_ms);
    zframe_destroy (&reply);
    return 1;
}
