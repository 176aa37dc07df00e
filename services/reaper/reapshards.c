/*  reapshards.c: the reaper's shards in etcd (reapshards.h). */
#include "reapshards.h"
#include "reapkeys.h"
#include "ep_log.h"
#include "ep_shard.h"

#define RELOAD_MS       500         //  a shard whose read failed is read again after this

//  A request in flight: what it was for, and under which ownership.
typedef struct {
    reapshards_t *self;         //  whose
    int shard;                  //  the shard read, or -1 (a batch)
    int64_t revision;           //  the ownership it was made under
    reapbatch_t *batch;         //  a batch (the caller's)
    reapshards_done_fn *done;   //  its callback
    void *arg;                  //  its argument
    int *shards;                //  its shards, in its compares' order
    int64_t *revisions;         //  the create revision each was fenced under
    int nshards;                //  how many
} s_ctx_t;

struct _reapshards_t {
    reapshards_config_t config; //  as given (strings copied below)
    char *prefix;               //  EDGEPLANE_ETCD_PREFIX
    char *id;                   //  this instance
    ep_shards_t *shards;        //  ownership (owns the etcd client)
    int64_t *loaded;            //  per shard: the revision it was read under, 0
    int64_t *adopted;           //  per shard: the revision the service adopted it under, 0
    int64_t *reload_at;         //  per shard: read again at (mono ms), 0
    zhashx_t *keys;             //  outbox seq (decimal) -> its etcd key
};

static s_ctx_t *
s_ctx_new (reapshards_t *self, int shard, int64_t revision)
{
    s_ctx_t *ctx = (s_ctx_t *) zmalloc (sizeof (s_ctx_t));
    ctx->self = self;
    ctx->shard = shard;
    ctx->revision = revision;
    return ctx;
}

static void
s_ctx_destroy (s_ctx_t **ctx_p)
{
    if (*ctx_p) {
        free ((*ctx_p)->shards);
        free ((*ctx_p)->revisions);
        free (*ctx_p);
        *ctx_p = NULL;
    }
}

static void
s_news (reapshards_t *self, reapshards_event_t event, int shard, int64_t revision, const char *why)
{
    reapshards_news_t news = { .event = event, .shard = shard, .revision = revision, .why = why };
    self->config.fn (self->config.arg, &news);
}

//  ---------------------------------------------------------------------
//  Reading a shard

static void
s_on_read (void *arg, const ep_etcd_reply_t *reply, const char *error)
{
    s_ctx_t *ctx = (s_ctx_t *) arg;
    reapshards_t *self = ctx->self;
    int shard = ctx->shard;
    //  Lost or taken again meanwhile: this read is of no use.
    if (ep_shards_held (self->shards, shard) != ctx->revision || self->loaded [shard]) {
        s_ctx_destroy (&ctx);
        return;
    }
    if (!reply || reply->code) {
        ep_log_warn ("reaper: cannot read shard %d: %s; again in %d ms", shard,
                     reply? reply->error: error, RELOAD_MS);
        self->reload_at [shard] = ep_mono_ms () + RELOAD_MS;
        s_ctx_destroy (&ctx);
        return;
    }
    self->loaded [shard] = ctx->revision;
    ep_log_info ("reaper: shard %d is ours (revision %lld): %zu records", shard,
                 (long long) ctx->revision, reply->nkvs);
    reapshards_news_t news = { .event = REAPSHARDS_LOADED, .shard = shard, .revision = ctx->revision,
                               .kvs = reply->kvs, .nkvs = reply->nkvs };
    self->config.fn (self->config.arg, &news);
    s_ctx_destroy (&ctx);
}

static void
s_read_shard (reapshards_t *self, int shard)
{
    self->reload_at [shard] = 0;
    char prefix [REAPKEYS_KEY_MAX];
    uint8_t end [REAPKEYS_KEY_MAX];
    reapkeys_shard (self->prefix, shard, prefix, sizeof prefix);
    ep_etcd_range_t range = { .key = ep_etcd_str (prefix),
                              .range_end = ep_etcd_prefix_end (ep_etcd_str (prefix), end, sizeof end) };
    s_ctx_t *ctx = s_ctx_new (self, shard, ep_shards_held (self->shards, shard));
    if (ep_etcd_range (ep_shards_etcd (self->shards), &range, s_on_read, ctx) != 0) {
        s_ctx_destroy (&ctx);
        self->reload_at [shard] = ep_mono_ms () + RELOAD_MS;
    }
}

//  Forgets the outbox keys of shard (the next owner publishes them).
static void
s_forget_keys (reapshards_t *self, int shard)
{
    zlistx_t *seqs = zhashx_keys (self->keys);
    for (const char *seq = (const char *) zlistx_first (seqs); seq; seq = (const char *) zlistx_next (seqs)) {
        reapkeys_key_t parsed;
        const char *key = (const char *) zhashx_lookup (self->keys, seq);
        if (reapkeys_parse (self->prefix, key, &parsed) != 0 || parsed.shard == shard)
            zhashx_delete (self->keys, seq);
    }
    zlistx_destroy (&seqs);
}

static void
s_on_shards (void *arg, ep_shards_event_t event, int shard, int64_t create_revision, const char *why)
{
    reapshards_t *self = (reapshards_t *) arg;
    if (event == EP_SHARDS_FAILED) {
        s_news (self, REAPSHARDS_FAILED, -1, 0, why);
        return;
    }
    if (event == EP_SHARDS_ACQUIRED) {
        self->loaded [shard] = self->adopted [shard] = 0;
        s_read_shard (self, shard);
        return;
    }
    //  Released or fenced: whatever it was read under is no longer ours.
    self->loaded [shard] = self->adopted [shard] = 0;
    self->reload_at [shard] = 0;
    s_forget_keys (self, shard);
    s_news (self, REAPSHARDS_DROPPED, shard, create_revision, why);
}

//  ---------------------------------------------------------------------
//  Batches

static int64_t
s_revision (void *arg, int shard)
{
    return reapshards_revision ((reapshards_t *) arg, shard);
}

void
reapshards_batch_config (reapshards_t *self, reapbatch_config_t *config)
{
    *config = (reapbatch_config_t) { self->prefix, self->config.count, s_revision,
                                     reapshards_outbox_key, self };
}

const char *
reapshards_outbox_key (void *arg, int64_t seq)
{
    reapshards_t *self = (reapshards_t *) arg;
    char name [24];
    snprintf (name, sizeof name, "%lld", (long long) seq);
    return (const char *) zhashx_lookup (self->keys, name);
}

void
reapshards_adopted (reapshards_t *self, int64_t seq, const char *key)
{
    char name [24];
    snprintf (name, sizeof name, "%lld", (long long) seq);
    zhashx_update (self->keys, name, strdup (key));
}

//  A durable batch: its entries are known by key from now on; the ones
//  it deleted (echoed) are forgotten.
static void
s_settle (reapshards_t *self, reapbatch_t *batch)
{
    size_t count;
    const reapbatch_entry_t *entries = reapbatch_entries (batch, &count);
    for (size_t i = 0; i < count; i++)
        reapshards_adopted (self, entries [i].seq, entries [i].key);
    const ep_etcd_op_t *ops = reapbatch_ops (batch, &count);
    for (size_t i = 0; i < count; i++) {
        reapkeys_key_t parsed;
        char key [REAPKEYS_KEY_MAX];
        if (ops [i].kind != EP_ETCD_DELETE || ops [i].u.del.key.size >= sizeof key)
            continue;
        memcpy (key, ops [i].u.del.key.data, ops [i].u.del.key.size);
        key [ops [i].u.del.key.size] = 0;
        if (reapkeys_parse (self->prefix, key, &parsed) == 0 && parsed.kind == REAPKEYS_OUTBOX) {
            //  The seq here is the cache's, not the key's: look it up.
            zlistx_t *seqs = zhashx_keys (self->keys);
            for (const char *seq = (const char *) zlistx_first (seqs); seq;
                 seq = (const char *) zlistx_next (seqs))
                if (streq ((const char *) zhashx_lookup (self->keys, seq), key))
                    zhashx_delete (self->keys, seq);
            zlistx_destroy (&seqs);
        }
    }
}

static void
s_on_batch (void *arg, const ep_etcd_reply_t *reply, const char *error)
{
    s_ctx_t *ctx = (s_ctx_t *) arg;
    reapshards_t *self = ctx->self;
    char why [512];
    int rc = -1;
    if (!reply || reply->code)
        snprintf (why, sizeof why, "etcd did not take the batch: %s", reply? reply->error: error);
    else
    if (!reply->succeeded) {
        snprintf (why, sizeof why, "a shard of the batch is another instance's now (fenced)");
        ep_shards_fence_check_all (self->shards, ctx->shards, ctx->revisions, ctx->nshards, reply);
    }
    else {
        rc = 0;
        s_settle (self, ctx->batch);
    }
    ctx->done (ctx->arg, rc, rc? why: NULL);
    s_ctx_destroy (&ctx);
}

int
reapshards_send (reapshards_t *self, reapbatch_t *batch, reapshards_done_fn *done, void *arg,
                 char *err, size_t errlen)
{
    int count = self->config.count;
    int *touched = (int *) zmalloc (sizeof (int) * (size_t) count);
    int ntouched = reapbatch_shards (batch, touched, count);
    ep_etcd_compare_t *compares = (ep_etcd_compare_t *) zmalloc (sizeof (ep_etcd_compare_t) * (size_t) count);
    ep_etcd_op_t *reads = (ep_etcd_op_t *) zmalloc (sizeof (ep_etcd_op_t) * (size_t) count);
    s_ctx_t *ctx = s_ctx_new (self, -1, 0);
    ctx->shards = (int *) zmalloc (sizeof (int) * (size_t) count);
    ctx->revisions = (int64_t *) zmalloc (sizeof (int64_t) * (size_t) count);
    if (ep_shards_fence_all (self->shards, touched, ntouched, compares, reads, ctx->revisions) == 0) {
        memcpy (ctx->shards, touched, sizeof (int) * (size_t) ntouched);
        ctx->nshards = ntouched;
    }
    else {
        snprintf (err, errlen, "a shard of the batch is no longer this instance's");
        s_ctx_destroy (&ctx);
    }
    int rc = -1;
    if (ctx) {
        size_t nops;
        const ep_etcd_op_t *ops = reapbatch_ops (batch, &nops);
        ep_etcd_txn_t txn = { compares, (size_t) ctx->nshards, (ep_etcd_op_t *) ops, nops, reads,
                              (size_t) ctx->nshards };
        ctx->batch = batch;
        ctx->done = done;
        ctx->arg = arg;
        rc = ep_etcd_txn (ep_shards_etcd (self->shards), &txn, s_on_batch, ctx, err, errlen);
        if (rc != 0)
            s_ctx_destroy (&ctx);
    }
    free (reads);
    free (compares);
    free (touched);
    return rc;
}

//  ---------------------------------------------------------------------
//  Life cycle and the loop

reapshards_t *
reapshards_new (const reapshards_config_t *config, char *err, size_t errlen)
{
    EP_ASSERT (config->prefix && config->id && config->count > 0 && config->fn);
    reapshards_t *self = (reapshards_t *) zmalloc (sizeof (reapshards_t));
    self->config = *config;
    self->prefix = strdup (config->prefix);
    self->id = strdup (config->id);
    self->config.prefix = self->prefix;
    self->config.id = self->id;
    char *shards_prefix = zsys_sprintf ("%sshards/", config->prefix);
    ep_shards_config_t shards = { .etcd = config->etcd, .prefix = shards_prefix,
                                  .service = "reaper", .id = config->id,
                                  .count = config->count, .ttl_ms = config->ttl_ms,
                                  .metrics = config->metrics, .fn = s_on_shards, .arg = self };
    self->loaded = (int64_t *) zmalloc (sizeof (int64_t) * (size_t) config->count);
    self->adopted = (int64_t *) zmalloc (sizeof (int64_t) * (size_t) config->count);
    self->reload_at = (int64_t *) zmalloc (sizeof (int64_t) * (size_t) config->count);
    self->keys = zhashx_new ();
    zhashx_set_destructor (self->keys, (czmq_destructor *) zstr_free);
    self->shards = ep_shards_new (&shards, err, errlen);
    zstr_free (&shards_prefix);
    if (!self->shards)
        reapshards_destroy (&self);
    return self;
}

void
reapshards_destroy (reapshards_t **self_p)
{
    reapshards_t *self = *self_p;
    if (self) {
        ep_shards_destroy (&self->shards);
        zhashx_destroy (&self->keys);
        free (self->loaded);
        free (self->adopted);
        free (self->reload_at);
        free (self->prefix);
        free (self->id);
        free (self);
        *self_p = NULL;
    }
}

int
reapshards_pollitems (reapshards_t *self, zmq_pollitem_t *items, int max)
{
    return ep_shards_pollitems (self->shards, items, max);
}

long
reapshards_timeout (reapshards_t *self)
{
    long timeout = ep_shards_timeout (self->shards);
    int64_t now = ep_mono_ms ();
    for (int s = 0; s < self->config.count; s++)
        if (self->reload_at [s]) {
            long due = (long) (self->reload_at [s] > now? self->reload_at [s] - now: 0);
            if (timeout < 0 || due < timeout)
                timeout = due;
        }
    return timeout;
}

void
reapshards_dispatch (reapshards_t *self, zmq_pollitem_t *items, int nitems)
{
    ep_shards_dispatch (self->shards, items, nitems);
    int64_t now = ep_mono_ms ();
    for (int s = 0; s < self->config.count; s++)
        if (self->reload_at [s] && now >= self->reload_at [s] && ep_shards_held (self->shards, s))
            s_read_shard (self, s);
}

int
reapshards_shard_of (reapshards_t *self, const char *router_id)
{
    return ep_shard_of (router_id, self->config.count);
}

int64_t
reapshards_revision (reapshards_t *self, int shard)
{
    if (shard < 0 || shard >= self->config.count)
        return 0;
    int64_t held = ep_shards_held (self->shards, shard);
    return held && held == self->adopted [shard]? held: 0;
}

bool
reapshards_loaded (reapshards_t *self, int shard, int64_t revision)
{
    return shard >= 0 && shard < self->config.count && revision && self->loaded [shard] == revision
        && ep_shards_held (self->shards, shard) == revision;
}

bool
reapshards_adopt_shard (reapshards_t *self, int shard, int64_t revision)
{
    if (!reapshards_loaded (self, shard, revision))
        return false;
    self->adopted [shard] = revision;
    return true;
}

bool
reapshards_ready (reapshards_t *self, const char *router_id)
{
    return reapshards_revision (self, reapshards_shard_of (self, router_id)) > 0;
}

const char *
reapshards_owner (reapshards_t *self, const char *router_id)
{
    const char *owner = ep_shards_owner_id (self->shards, reapshards_shard_of (self, router_id));
    return owner? owner: "";
}

int
reapshards_owned (reapshards_t *self)
{
    int count = 0;
    for (int s = 0; s < self->config.count; s++)
        count += reapshards_revision (self, s) > 0;
    return count;
}
