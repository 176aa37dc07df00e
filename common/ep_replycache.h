/*  ep_replycache.h: recent replies by (caller, request id).

    Clients choose request ids and reuse them when they retry, so a write
    service that remembers its recent replies can answer a retry with the
    original reply instead of applying the write twice or answering a false
    CONFLICT. Entries expire by age and by count (oldest first). A digest of
    the request is kept too: the same id with different content is a client
    bug, and is answered as such rather than with an unrelated reply.

    The cache lives in memory. A service with a store can also make its
    write replies durable (ep_replycache_save, _load, _prune below): each
    reply is written in the transaction of the write it answers, so it
    rides that commit, and the entries still within the limits are loaded
    back at start. A retry of a write acknowledged (or committed and not
    yet answered) just before a crash then gets its first reply too.
*/
#ifndef EP_REPLYCACHE_H_INCLUDED
#define EP_REPLYCACHE_H_INCLUDED

#include "ep_prelude.h"
#include "ep_store.h"

typedef struct _ep_replycache_t ep_replycache_t;

typedef enum {
    EP_REPLYCACHE_MISS = 0,     //  not seen (or expired): handle the request
    EP_REPLYCACHE_HIT,          //  seen with the same content: resend the reply
    EP_REPLYCACHE_MISMATCH      //  seen with different content: refuse
} ep_replycache_result_t;

//  A cache of at most max_entries replies, each kept at most ttl_ms.
ep_replycache_t *
    ep_replycache_new (size_t max_entries, int64_t ttl_ms);

void
    ep_replycache_destroy (ep_replycache_t **self_p);

//  Looks up (caller_key, request_id) for a request with these bytes. On a
//  hit *reply_p is set to the stored reply (borrowed, valid until the next
//  store or expiry).
ep_replycache_result_t
    ep_replycache_lookup (ep_replycache_t *self, const char *caller_key,
                          const char *request_id, const void *request, size_t size,
                          int64_t now_ms, zframe_t **reply_p);

//  Remembers reply (copied) for (caller_key, request_id) and the request's
//  bytes' digest.
void
    ep_replycache_store (ep_replycache_t *self, const char *caller_key,
                         const char *request_id, const void *request, size_t size,
                         zframe_t *reply, int64_t now_ms);

size_t
    ep_replycache_size (ep_replycache_t *self);

//  ---------------------------------------------------------------------
//  Durable entries. The service's migrations create the table (a literal
//  copy in the migration: a shipped migration never changes):
//
//      CREATE TABLE replies (seq INTEGER PRIMARY KEY, stored_ms INTEGER NOT NULL,
//        caller TEXT NOT NULL, request_id TEXT NOT NULL, digest BLOB NOT NULL,
//        reply BLOB NOT NULL);
//
//  seq is the arrival order; stored_ms is wall-clock time (the in-memory
//  cache runs on the caller's clock, monotonic in services, which does not
//  survive a reboot). Rows are only read at start, in seq order, where a
//  later row for the same (caller, request id) replaces an earlier one as
//  a store does in memory: no index beyond seq, so a row costs one b-tree
//  insert.

//  Records reply for (caller_key, request_id) and the request bytes' digest
//  in store at wall-clock wall_ms. Call it inside the transaction holding
//  the write the reply answers, so both commit or neither; the in-memory
//  entry is made when the reply is sent (ep_replycache_store). Returns 0 or
//  -1 (ep_store_last_error says why).
int
    ep_replycache_save (ep_store_t *store, const char *caller_key,
                        const char *request_id, const void *request, size_t size,
                        zframe_t *reply, int64_t wall_ms);

//  Loads into self the rows of store that its limits keep at wall-clock
//  now_wall_ms (the newest max_entries, younger than ttl_ms), each as old
//  as it was (now_ms is self's clock). Returns the number of entries
//  loaded, or -1.
int
    ep_replycache_load (ep_replycache_t *self, ep_store_t *store,
                        int64_t now_wall_ms, int64_t now_ms);

//  Deletes the oldest rows of store that self's limits drop at wall-clock
//  now_wall_ms (beyond the newest max_entries, or ttl_ms old), oldest
//  first, stopping at the first row kept or after limit rows (0: no
//  limit), so the work per call is bounded. Returns the number deleted, or
//  -1.
int
    ep_replycache_prune (ep_replycache_t *self, ep_store_t *store,
                         int64_t now_wall_ms, size_t limit);

//  The same durable entry as one value, for a store of keys and values
//  (the model's etcd store), which keeps them in arrival order by key:
//  the wall-clock time, the request's digest, the caller key, the request
//  id and the reply. Returns the bytes (caller frees) and their size.
uint8_t *
    ep_replycache_entry_pack (const char *caller_key, const char *request_id,
                              const void *request, size_t size, zframe_t *reply,
                              int64_t wall_ms, size_t *packed_size);

//  Loads one packed entry into self, as ep_replycache_load does a row
//  (entries loaded in arrival order). Returns 1 if loaded, 0 if self's
//  limits drop it (too old), -1 if data is not an entry.
int
    ep_replycache_entry_load (ep_replycache_t *self, const uint8_t *data, size_t size,
                              int64_t now_wall_ms, int64_t now_ms);

#endif
