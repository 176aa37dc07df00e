/*  ep_replycache.c: a hash for lookups plus a list in arrival order, so that
    expiry by age or count pops from the front: O(1) per request. */
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

void
ep_replycache_store (ep_replycache_t *self, const char *caller_key,
                     const char *request_id, const void *request, size_t size,
                     zframe_t *reply, int64_t now_ms)
{
    char *key = s_key (caller_key, request_id);
    s_entry_t *old = (s_entry_t *) zhashx_lookup (self->entries, key);
    if (old) {
        zhashx_delete (self->entries, key);
        zlistx_delete (self->order, old->handle);
    }
    s_entry_t *entry = (s_entry_t *) zmalloc (sizeof (s_entry_t));
    entry->key = key;
    entry->reply = zframe_dup (reply);
    s_digest (request, size, entry->digest);
    entry->stored_ms = now_ms;
    entry->handle = zlistx_add_end (self->order, entry);
    zhashx_insert (self->entries, key, entry);
    s_expire (self, now_ms);
}

size_t
ep_replycache_size (ep_replycache_t *self)
{
    return zlistx_size (self->order);
}
