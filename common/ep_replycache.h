/*  ep_replycache.h: recent replies by (caller, request id).

    Clients choose request ids and reuse them when they retry, so a write
    service that remembers its recent replies can answer a retry with the
    original reply instead of applying the write twice or answering a false
    CONFLICT. Entries expire by age and by count (oldest first). A digest of
    the request is kept too: the same id with different content is a client
    bug, and is answered as such rather than with an unrelated reply.
*/
#ifndef EP_REPLYCACHE_H_INCLUDED
#define EP_REPLYCACHE_H_INCLUDED

#include "ep_prelude.h"

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

#endif
