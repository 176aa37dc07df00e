/*  reapshards.c: the reaper's shards in etcd (reapshards.h). */
#include "reapshards.h"
#include "reapkeys.h"
#include "ep_log.h"

//  A batch in flight.
typedef struct {
    reapshards_t *self;         //  whose
    reapbatch_t *batch;         //  the batch (the caller's)
    reapshards_done_fn *done;   //  its callback
    void *arg;                  //  its argument
} s_ctx_t;

struct _reapshards_t {
    ep_shardset_t *set;         //  the shards, read and adopted
    ep_service_fds_t fds;       //  their part of the loop
    char *prefix;               //  EDGEPLANE_ETCD_PREFIX
    int count;                  //  shards
    reapshards_fn *fn;          //  the service's callback
    void *arg;                  //  its argument
    zhashx_t *keys;             //  outbox seq (decimal) -> its etcd key
};

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
s_on_news (void *arg, const reapshards_news_t *news)
{
    reapshards_t *self = (reapshards_t *) arg;
    if (news->event == REAPSHARDS_LOADED)
        ep_log_info ("reaper: shard %d is ours (revision %lld): %zu records", news->shard,
                     (long long) news->revision, news->nkvs);
    else
    if (news->event == REAPSHARDS_DROPPED)
        s_forget_keys (self, news->shard);
    self->fn (self->arg, news);
}

//  ---------------------------------------------------------------------
//  Batches

static int64_t
s_revision (void *arg, int shard)
{
    return ep_shardset_revision (((reapshards_t *) arg)->set, shard);
}

void
reapshards_batch_config (reapshards_t *self, reapbatch_config_t *config)
{
    *config = (reapbatch_config_t) { self->prefix, self->count, s_revision,
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
    //  By the cache's seq: a search of every key per delete cost the
    //  outbox's size per echo.
    const int64_t *deleted = reapbatch_deleted (batch, &count);
    for (size_t i = 0; i < count; i++) {
        char name [24];
        snprintf (name, sizeof name, "%lld", (long long) deleted [i]);
        zhashx_delete (self->keys, name);
    }
    reapbatch_settled (batch);
}

static void
s_on_batch (void *arg, const ep_shardset_outcome_t *outcome)
{
    s_ctx_t *ctx = (s_ctx_t *) arg;
    const ep_etcd_reply_t *reply = outcome->reply;
    char why [512];
    int rc = -1;
    if (!reply || reply->code)
        snprintf (why, sizeof why, "etcd did not take the batch: %s", reply? reply->error: outcome->error);
    else
    if (outcome->fenced)
        snprintf (why, sizeof why, "a shard of the batch is another instance's now (fenced)");
    else {
        rc = 0;
        s_settle (ctx->self, ctx->batch);
    }
    ctx->done (ctx->arg, rc, rc? why: NULL);
    free (ctx);
}

int
reapshards_send (reapshards_t *self, reapbatch_t *batch, reapshards_done_fn *done, void *arg,
                 char *err, size_t errlen)
{
    int *touched = (int *) zmalloc (sizeof (int) * (size_t) self->count);
    int ntouched = reapbatch_shards (batch, touched, self->count);
    size_t nops;
    const ep_etcd_op_t *ops = reapbatch_ops (batch, &nops);
    s_ctx_t *ctx = (s_ctx_t *) zmalloc (sizeof (s_ctx_t));
    *ctx = (s_ctx_t) { self, batch, done, arg };
    int rc = ep_shardset_txn (self->set, touched, ntouched, ops, nops, s_on_batch, ctx, err, errlen);
    if (rc != 0)
        free (ctx);
    free (touched);
    return rc;
}

//  ---------------------------------------------------------------------
//  Life cycle and the loop

ep_shardset_t *
reapshards_set (reapshards_t *self)
{
    return self->set;
}

reapshards_t *
reapshards_new (const reapshards_config_t *config, char *err, size_t errlen)
{
    EP_ASSERT (config->prefix && config->id && config->count > 0 && config->fn);
    reapshards_t *self = (reapshards_t *) zmalloc (sizeof (reapshards_t));
    self->prefix = strdup (config->prefix);
    self->count = config->count;
    self->fn = config->fn;
    self->arg = config->arg;
    self->keys = zhashx_new ();
    zhashx_set_destructor (self->keys, (czmq_destructor *) zstr_free);
    ep_shardset_config_t set = *config;
    set.service = "reaper";
    set.fn = s_on_news;
    set.arg = self;
    self->set = ep_shardset_new (&set, err, errlen);
    if (self->set)
        self->fds = ep_shardset_fds (self->set);
    else
        reapshards_destroy (&self);
    return self;
}

void
reapshards_destroy (reapshards_t **self_p)
{
    reapshards_t *self = *self_p;
    if (self) {
        ep_shardset_destroy (&self->set);
        zhashx_destroy (&self->keys);
        free (self->prefix);
        free (self);
        *self_p = NULL;
    }
}

int
reapshards_pollitems (reapshards_t *self, zmq_pollitem_t *items, int max)
{
    return self->fds.fill (self->fds.arg, items, max);
}

long
reapshards_timeout (reapshards_t *self)
{
    return self->fds.due (self->fds.arg);
}

void
reapshards_dispatch (reapshards_t *self, zmq_pollitem_t *items, int nitems)
{
    self->fds.dispatch (self->fds.arg, items, nitems);
}

bool
reapshards_adopt_shard (reapshards_t *self, int shard, int64_t revision)
{
    return ep_shardset_adopt_shard (self->set, shard, revision);
}

int
reapshards_owned (reapshards_t *self)
{
    return ep_shardset_owned (self->set);
}
