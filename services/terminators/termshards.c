/*  termshards.c: the terminators' shards in etcd (termshards.h). */
#include "termshards.h"
#include "ep_log.h"
#include "ep_codec.h"
#include "termoutbox.h"

#define MAX_KEY         400
#define TRIM_MS         200         //  published outbox keys are deleted this often at most

//  A transaction in flight (a batch, a trim).
typedef struct {
    termshards_t *self;         //  whose
    termshards_done_fn *done;   //  a batch's callback
    void *arg;                  //  its argument
    zlistx_t *names;            //  a batch's outbox keys, a trim's last keys deleted
} s_ctx_t;

struct _termshards_t {
    ep_shardset_t *set;         //  the shards, read and adopted
    char *prefix;               //  <EDGEPLANE_ETCD_PREFIX>terminators/
    int count;                  //  shards
    termshards_fn *fn;          //  the service's callback
    void *arg;                  //  its argument
    int64_t next_key;           //  outbox keys are numbered from this (never reused)
    termoutbox_t *outbox;       //  events kept, by key and shard, until deleted
    bool trimming;              //  a trim in flight
    int64_t trim_at;            //  next trim (mono ms)
    bool too_large;             //  the last batch had too many operations
};

struct _termshards_batch_t {
    termshards_t *owner;        //  whose
    zlistx_t *names;            //  the outbox keys it registers (one per shard with events)
    zlistx_t **events;          //  per shard: Ep__TerminatorOutboxEntry to put under its key
    char **keys;                //  per shard: that key, NULL if no event
    zlistx_t *ops;              //  ep_etcd_op_t (keys and values in strings)
    zlistx_t *strings;          //  what the ops point to
    bool *touched;              //  per shard
    bool bad;                   //  an op for a shard not ready
    char why [200];             //  which
};

static char *
s_shard_prefix (termshards_t *self, int shard, char *buf, size_t size)
{
    return ep_shardset_shard_prefix (self->set, shard, buf, size);
}

//  ---------------------------------------------------------------------
//  Records in etcd

static uint8_t *
s_pack_record (const termrec_t *record, size_t *size)
{
    Ep__TerminatorRecord msg = EP__TERMINATOR_RECORD__INIT;
    msg.id = (char *) record->id;
    msg.address = record->address;
    msg.service_id = (char *) record->service_id;
    msg.router_id = (char *) record->router_id;
    msg.host_id = (char *) record->host_id;
    msg.has_cost = msg.has_precedence = msg.has_state = msg.has_attempts = true;
    msg.cost = record->cost;
    msg.precedence = record->precedence;
    msg.state = (uint32_t) record->sm.state;
    msg.attempts = record->sm.attempts;
    msg.has_due_ms = msg.has_lacks = msg.has_generation = true;
    msg.due_ms = record->sm.due_ms;
    msg.lacks = record->sm.lacks;
    msg.generation = record->generation;
    msg.has_created_at_ms = msg.has_updated_at_ms = true;
    msg.created_at_ms = record->created_at_ms;
    msg.updated_at_ms = record->updated_at_ms;
    msg.last_error = record->last_error;
    msg.has_model_revision = msg.has_create_revision = true;
    msg.model_revision = record->model_revision;
    msg.create_revision = record->create_revision;
    return ep_codec_pack_bytes (&msg.base, size);
}

//  A record from etcd, or NULL (logged) if it does not decode.
static termrec_t *
s_unpack_record (const ep_etcd_kv_t *kv)
{
    Ep__TerminatorRecord *msg = ep__terminator_record__unpack (NULL, kv->value_size, kv->value);
    if (!msg || !msg->id || !msg->router_id || strlen (msg->id) > 64
    ||  strlen (msg->router_id) > 64 || (msg->service_id && strlen (msg->service_id) > 64)
    ||  (msg->host_id && strlen (msg->host_id) > 64) || msg->state > TERMSM_FAILED) {
        ep_log_warn ("terminators: %s does not hold a terminator record: skipped", kv->key);
        if (msg)
            ep__terminator_record__free_unpacked (msg, NULL);
        return NULL;
    }
    termrec_t *record = termrec_new (msg->id);
    snprintf (record->service_id, sizeof record->service_id, "%s", msg->service_id? msg->service_id: "");
    snprintf (record->router_id, sizeof record->router_id, "%s", msg->router_id);
    snprintf (record->host_id, sizeof record->host_id, "%s", msg->host_id? msg->host_id: "");
    termrec_set_address (record, msg->address);
    record->cost = msg->cost;
    record->precedence = msg->precedence;
    record->sm.state = (termsm_state_t) msg->state;
    record->sm.attempts = msg->attempts;
    record->sm.due_ms = msg->due_ms;
    record->sm.lacks = msg->lacks;
    record->generation = msg->generation;
    record->created_at_ms = msg->created_at_ms;
    record->updated_at_ms = msg->updated_at_ms;
    if (msg->last_error)
        termrec_set_error (record, "%s", msg->last_error);
    record->model_revision = msg->model_revision;
    record->create_revision = msg->create_revision;
    ep__terminator_record__free_unpacked (msg, NULL);
    return record;
}

void
termshards_entry_destroy (termshards_entry_t **entry_p)
{
    termshards_entry_t *entry = *entry_p;
    if (entry) {
        free (entry->key);
        free (entry->topic);
        free (entry->body);
        free (entry->event_id);
        free (entry);
        *entry_p = NULL;
    }
}

//  The events under an outbox key, appended to entries (logged if it does
//  not decode).
static void
s_unpack_entries (const ep_etcd_kv_t *kv, zlistx_t *entries)
{
    Ep__TerminatorOutbox *msg = ep__terminator_outbox__unpack (NULL, kv->value_size, kv->value);
    if (!msg) {
        ep_log_warn ("terminators: %s does not hold outbox entries: skipped", kv->key);
        return;
    }
    for (size_t i = 0; i < msg->n_entries; i++) {
        Ep__TerminatorOutboxEntry *one = msg->entries [i];
        if (!one->topic || !one->has_event || !one->event_id) {
            ep_log_warn ("terminators: %s holds a broken outbox entry: skipped", kv->key);
            continue;
        }
        termshards_entry_t *entry = (termshards_entry_t *) zmalloc (sizeof *entry);
        entry->key = strdup ((const char *) kv->key);
        entry->topic = strdup (one->topic);
        entry->body = (uint8_t *) malloc (one->event.len + 1);
        memcpy (entry->body, one->event.data, one->event.len);
        entry->size = one->event.len;
        entry->event_id = strdup (one->event_id);
        zlistx_add_end (entries, entry);
    }
    ep__terminator_outbox__free_unpacked (msg, NULL);
}

//  ---------------------------------------------------------------------
//  A shard read, or lost

static void
s_ctx_destroy (s_ctx_t **ctx_p)
{
    if (*ctx_p) {
        zlistx_destroy (&(*ctx_p)->names);
        free (*ctx_p);
        *ctx_p = NULL;
    }
}

//  LOADED: its records and outbox entries, read from its keys.
static void
s_on_loaded (termshards_t *self, const ep_shardset_news_t *news)
{
    zlistx_t *records = zlistx_new (), *entries = zlistx_new ();
    zlistx_set_destructor (records, (czmq_destructor *) termrec_destroy);
    zlistx_set_destructor (entries, (czmq_destructor *) termshards_entry_destroy);
    char prefix [MAX_KEY];
    size_t size = strlen (s_shard_prefix (self, news->shard, prefix, sizeof prefix));
    for (size_t i = 0; i < news->nkvs; i++) {
        const ep_etcd_kv_t *kv = &news->kvs [i];
        const char *rest = (const char *) kv->key + size;
        if (kv->key_size <= size + 2)
            continue;
        if (strncmp (rest, "t/", 2) == 0) {
            termrec_t *record = s_unpack_record (kv);
            if (record)
                zlistx_add_end (records, record);
        }
        else
        if (strncmp (rest, "o/", 2) == 0)
            s_unpack_entries (kv, entries);
    }
    ep_log_info ("terminators: shard %d is ours (revision %lld): %zu terminators, %zu events to "
                 "publish", news->shard, (long long) news->revision, zlistx_size (records),
                 zlistx_size (entries));
    self->fn (self->arg, news, records, entries);
    zlistx_destroy (&records);
    zlistx_destroy (&entries);
}

static void
s_on_news (void *arg, const ep_shardset_news_t *news)
{
    termshards_t *self = (termshards_t *) arg;
    if (news->event == EP_SHARDSET_LOADED)
        s_on_loaded (self, news);
    else {
        //  Lost: the next owner publishes its outbox entries.
        if (news->event == EP_SHARDSET_DROPPED)
            termoutbox_forget_shard (self->outbox, news->shard);
        self->fn (self->arg, news, NULL, NULL);
    }
}

//  ---------------------------------------------------------------------
//  Batches

static void
s_outbox_entry_free (Ep__TerminatorOutboxEntry *entry)
{
    free (entry->topic);
    free (entry->event.data);
    free (entry->event_id);
    free (entry);
}

termshards_batch_t *
termshards_batch_new (termshards_t *self)
{
    termshards_batch_t *batch = (termshards_batch_t *) zmalloc (sizeof *batch);
    batch->owner = self;
    batch->ops = zlistx_new ();
    zlistx_set_destructor (batch->ops, (czmq_destructor *) zstr_free);
    batch->strings = zlistx_new ();
    zlistx_set_destructor (batch->strings, (czmq_destructor *) zstr_free);
    batch->touched = (bool *) zmalloc (sizeof (bool) * (size_t) self->count);
    batch->names = zlistx_new ();
    zlistx_set_destructor (batch->names, (czmq_destructor *) zstr_free);
    batch->events = (zlistx_t **) zmalloc (sizeof (zlistx_t *) * (size_t) self->count);
    batch->keys = (char **) zmalloc (sizeof (char *) * (size_t) self->count);
    return batch;
}

void
termshards_batch_destroy (termshards_batch_t **batch_p)
{
    termshards_batch_t *batch = *batch_p;
    if (batch) {
        zlistx_destroy (&batch->ops);
        zlistx_destroy (&batch->strings);
        zlistx_destroy (&batch->names);
        for (int s = 0; s < batch->owner->count; s++) {
            Ep__TerminatorOutboxEntry *entry;
            while (batch->events [s]
               &&  (entry = (Ep__TerminatorOutboxEntry *) zlistx_detach (batch->events [s], NULL)))
                s_outbox_entry_free (entry);
            zlistx_destroy (&batch->events [s]);
            free (batch->keys [s]);
        }
        free (batch->events);
        free (batch->keys);
        free (batch->touched);
        free (batch);
        *batch_p = NULL;
    }
}

bool
termshards_batch_empty (termshards_batch_t *batch)
{
    return zlistx_size (batch->ops) == 0 && !batch->bad;
}

//  The shard of router_id if this instance may write it, else -1 (noted).
static int
s_batch_shard (termshards_batch_t *batch, const char *router_id)
{
    termshards_t *self = batch->owner;
    int shard = ep_shard_of (router_id, self->count);
    if (!ep_shardset_revision (self->set, shard)) {
        if (!batch->bad)
            snprintf (batch->why, sizeof batch->why, "shard %d (router %s) is no longer this "
                      "instance's", shard, router_id);
        batch->bad = true;
        return -1;
    }
    batch->touched [shard] = true;
    return shard;
}

//  Adds an op; key and value (size bytes, or NULL) are copied.
static void
s_batch_op (termshards_batch_t *batch, ep_etcd_kind_t kind, const char *key,
            const void *value, size_t size)
{
    char *key_copy = strdup (key);
    zlistx_add_end (batch->strings, key_copy);
    ep_etcd_op_t *op = (ep_etcd_op_t *) zmalloc (sizeof *op);
    op->kind = kind;
    if (kind == EP_ETCD_PUT) {
        char *value_copy = (char *) malloc (size + 1);
        memcpy (value_copy, value, size);
        value_copy [size] = 0;
        zlistx_add_end (batch->strings, value_copy);
        op->u.put.key = ep_etcd_str (key_copy);
        op->u.put.value = (ep_etcd_bytes_t) { (const uint8_t *) value_copy, size };
    }
    else
        op->u.del.key = ep_etcd_str (key_copy);
    zlistx_add_end (batch->ops, op);
}

void
termshards_batch_record (termshards_batch_t *batch, const termrec_t *now, const termrec_t *before)
{
    const termrec_t *which = now? now: before;
    int shard = s_batch_shard (batch, which->router_id);
    if (shard < 0)
        return;
    char key [MAX_KEY], prefix [300];
    snprintf (key, sizeof key, "%.300st/%.64s", s_shard_prefix (batch->owner, shard, prefix, sizeof prefix),
              which->id);
    //  A terminator that moved to another router (a new incarnation) is
    //  another shard's now: its old key goes.
    if (now && before && ep_shard_of (before->router_id, batch->owner->count) != shard) {
        int old = s_batch_shard (batch, before->router_id);
        char old_key [MAX_KEY];
        if (old >= 0) {
            snprintf (old_key, sizeof old_key, "%.300st/%.64s",
                      s_shard_prefix (batch->owner, old, prefix, sizeof prefix), before->id);
            s_batch_op (batch, EP_ETCD_DELETE, old_key, NULL, 0);
        }
    }
    if (now) {
        size_t size;
        uint8_t *bytes = s_pack_record (now, &size);
        s_batch_op (batch, EP_ETCD_PUT, key, bytes, size);
        free (bytes);
    }
    else
        s_batch_op (batch, EP_ETCD_DELETE, key, NULL, 0);
}

void
termshards_batch_event (termshards_batch_t *batch, int64_t seq, const char *topic,
                        const char *router_id, const Ep__Event *event)
{
    termshards_t *self = batch->owner;
    int shard = s_batch_shard (batch, router_id && *router_id? router_id: "");
    if (shard < 0)
        return;
    char prefix [300], event_id [160];
    if (!batch->keys [shard]) {
        //  One key for the batch's events of this shard, numbered here,
        //  not by the cache's seq, which a rolled-back batch gives out
        //  again (and a batch whose outcome was unknown may have landed).
        batch->keys [shard] = zsys_sprintf ("%.300so/%020lld-%020lld",
            s_shard_prefix (self, shard, prefix, sizeof prefix),
            (long long) ep_shardset_adopted (self->set, shard), (long long) ++self->next_key);
        batch->events [shard] = zlistx_new ();
        zlistx_add_end (batch->names, strdup (batch->keys [shard]));
    }
    const char *number = strrchr (batch->keys [shard], '/') + 1;
    snprintf (event_id, sizeof event_id, "terminators/%d/%.41s.%zu", shard, number,
              zlistx_size (batch->events [shard]));
    Ep__TerminatorOutboxEntry *entry = (Ep__TerminatorOutboxEntry *) zmalloc (sizeof *entry);
    ep__terminator_outbox_entry__init (entry);
    entry->topic = strdup (topic);
    entry->has_event = true;
    entry->event.len = ep__event__get_packed_size (event);
    entry->event.data = (uint8_t *) malloc (entry->event.len + 1);
    ep__event__pack (event, entry->event.data);
    entry->event_id = strdup (event_id);
    zlistx_add_end (batch->events [shard], entry);
    //  Known from now on, so that its publication carries the id; forgotten
    //  with the batch if it does not land.
    termoutbox_event (self->outbox, seq, shard, batch->keys [shard], event_id);
}

//  Puts each shard's events under its key: an op per shard.
static void
s_batch_outbox (termshards_batch_t *batch)
{
    for (int s = 0; s < batch->owner->count; s++) {
        if (!batch->keys [s])
            continue;
        Ep__TerminatorOutbox outbox = EP__TERMINATOR_OUTBOX__INIT;
        outbox.n_entries = zlistx_size (batch->events [s]);
        outbox.entries = (Ep__TerminatorOutboxEntry **) zmalloc (sizeof (void *) * (outbox.n_entries + 1));
        size_t i = 0;
        for (Ep__TerminatorOutboxEntry *entry = (Ep__TerminatorOutboxEntry *) zlistx_first (batch->events [s]);
             entry; entry = (Ep__TerminatorOutboxEntry *) zlistx_next (batch->events [s]))
            outbox.entries [i++] = entry;
        size_t size;
        uint8_t *packed = ep_codec_pack_bytes (&outbox.base, &size);
        s_batch_op (batch, EP_ETCD_PUT, batch->keys [s], packed, size);
        free (packed);
        free (outbox.entries);
    }
}

//  The shards touched, ascending, into shards; how many.
static int
s_touched (termshards_t *self, const bool *touched, int *shards)
{
    int n = 0;
    for (int s = 0; s < self->count; s++)
        if (touched [s])
            shards [n++] = s;
    return n;
}

static void
s_forget_names (termshards_t *self, zlistx_t *names)
{
    size_t size = strlen (self->prefix);
    for (const char *key = (const char *) zlistx_first (names); key;
         key = (const char *) zlistx_next (names))
        termoutbox_forget_key (self->outbox, atoi (key + size), key);
}

static void
s_on_batch (void *arg, const ep_shardset_outcome_t *outcome)
{
    s_ctx_t *ctx = (s_ctx_t *) arg;
    termshards_t *self = ctx->self;
    const ep_etcd_reply_t *reply = outcome->reply;
    char why [512];
    int rc = -1;
    if (!reply) {
        //  Sent, unanswered: it may have landed. Memory is undone, so the
        //  shards it touched are dropped (the service forgets them) and
        //  read again from etcd, whatever happened.
        snprintf (why, sizeof why, "etcd did not answer the batch (%s); its shards are read again",
                  outcome->error);
        for (int i = 0; i < outcome->nshards; i++)
            ep_shardset_reread (self->set, outcome->shards [i], outcome->revisions [i],
                                "the outcome of a write is unknown: reading the shard again");
    }
    else
    if (reply->code) {
        snprintf (why, sizeof why, "etcd did not take the batch: %s", reply->error);
        self->too_large = reply->error && strstr (reply->error, "too many operations");
    }
    else
    if (outcome->fenced)
        snprintf (why, sizeof why, "a shard of the batch is another instance's now (fenced)");
    else
        rc = 0;
    if (rc != 0)
        s_forget_names (self, ctx->names);
    ctx->done (ctx->arg, rc, rc? why: NULL);
    s_ctx_destroy (&ctx);
}

//  The batch's ops, in an array.
static ep_etcd_op_t *
s_ops (termshards_batch_t *batch, size_t *nops)
{
    *nops = zlistx_size (batch->ops);
    ep_etcd_op_t *ops = (ep_etcd_op_t *) zmalloc (sizeof (ep_etcd_op_t) * (*nops + 1));
    size_t i = 0;
    for (ep_etcd_op_t *op = (ep_etcd_op_t *) zlistx_first (batch->ops); op;
         op = (ep_etcd_op_t *) zlistx_next (batch->ops))
        ops [i++] = *op;
    return ops;
}

int
termshards_batch_send (termshards_t *self, termshards_batch_t **batch_p,
                       termshards_done_fn *done, void *arg, char *err, size_t errlen)
{
    termshards_batch_t *batch = *batch_p;
    s_batch_outbox (batch);
    int *shards = (int *) zmalloc (sizeof (int) * (size_t) self->count);
    int nshards = s_touched (self, batch->touched, shards);
    size_t nops;
    ep_etcd_op_t *ops = s_ops (batch, &nops);
    int rc = -1;
    self->too_large = false;
    if (batch->bad)
        snprintf (err, errlen, "%s", batch->why);
    else {
        s_ctx_t *ctx = (s_ctx_t *) zmalloc (sizeof (s_ctx_t));
        *ctx = (s_ctx_t) { self, done, arg, batch->names };
        batch->names = NULL;
        rc = ep_shardset_txn (self->set, shards, nshards, ops, nops, s_on_batch, ctx, err, errlen);
        if (rc != 0) {
            s_forget_names (self, ctx->names);
            s_ctx_destroy (&ctx);
        }
    }
    if (batch->names)
        s_forget_names (self, batch->names);
    free (ops);
    free (shards);
    termshards_batch_destroy (batch_p);
    return rc;
}

bool
termshards_too_large (termshards_t *self)
{
    return self->too_large;
}

//  ---------------------------------------------------------------------
//  Reading every shard

typedef struct {
    termshards_t *self;         //  whose
    termshards_all_fn *fn;      //  the reader's callback
    void *arg;                  //  its argument
} s_all_t;

static void
s_on_all (void *arg, const ep_etcd_reply_t *reply, const char *error)
{
    s_all_t *all = (s_all_t *) arg;
    if (!reply || reply->code) {
        char why [512];
        snprintf (why, sizeof why, "cannot read the terminators in etcd: %s; retry",
                  reply? reply->error: error);
        all->fn (all->arg, NULL, why);
        free (all);
        return;
    }
    zlistx_t *records = zlistx_new ();
    zlistx_set_destructor (records, (czmq_destructor *) termrec_destroy);
    size_t size = strlen (all->self->prefix);
    for (size_t i = 0; i < reply->nkvs; i++) {
        const ep_etcd_kv_t *kv = &reply->kvs [i];
        //  <prefix><shard, 5 digits>/t/<id>: records only, not the outbox.
        if (kv->key_size > size + 8 && strncmp ((const char *) kv->key + size + 5, "/t/", 3) == 0) {
            termrec_t *record = s_unpack_record (kv);
            if (record)
                zlistx_add_end (records, record);
        }
    }
    all->fn (all->arg, records, NULL);
    zlistx_destroy (&records);
    free (all);
}

int
termshards_read_all (termshards_t *self, termshards_all_fn *fn, void *arg)
{
    uint8_t end [MAX_KEY];
    ep_etcd_range_t range = { .key = ep_etcd_str (self->prefix),
                              .range_end = ep_etcd_prefix_end (ep_etcd_str (self->prefix), end, sizeof end) };
    s_all_t *all = (s_all_t *) zmalloc (sizeof (s_all_t));
    *all = (s_all_t) { self, fn, arg };
    if (ep_etcd_range (ep_shards_etcd (ep_shardset_shards (self->set)), &range, s_on_all, all) != 0) {
        free (all);
        return -1;
    }
    return 0;
}

//  ---------------------------------------------------------------------
//  The outbox

const char *
termshards_event_id (termshards_t *self, int64_t seq)
{
    return termoutbox_event_id (self->outbox, seq);
}

void
termshards_adopted (termshards_t *self, int64_t seq, const termshards_entry_t *adopted)
{
    int shard = atoi (adopted->key + strlen (self->prefix));
    if (shard >= 0 && shard < self->count)
        termoutbox_event (self->outbox, seq, shard, adopted->key, adopted->event_id);
}

void
termshards_published (termshards_t *self, int64_t seq)
{
    termoutbox_published (self->outbox, seq);
}

static void
s_on_trim (void *arg, const ep_shardset_outcome_t *outcome)
{
    s_ctx_t *ctx = (s_ctx_t *) arg;
    termshards_t *self = ctx->self;
    const ep_etcd_reply_t *reply = outcome->reply;
    self->trimming = false;
    if (!reply || reply->code)
        ep_log_warn ("terminators: cannot delete published events: %s (again later)",
                     reply? reply->error: outcome->error);
    else
    if (!outcome->fenced) {
        //  Deleted up to these keys: forgotten. Not: the next trim tries
        //  again (or, the shard lost, its next owner publishes them again:
        //  at least once, and consumers drop repeats by event id).
        size_t size = strlen (self->prefix);
        for (const char *upto = (const char *) zlistx_first (ctx->names); upto;
             upto = (const char *) zlistx_next (ctx->names)) {
            int shard = atoi (upto + size);
            if (ep_shardset_revision (self->set, shard))
                termoutbox_trimmed (self->outbox, shard, upto);
        }
    }
    s_ctx_destroy (&ctx);
}

//  True if every shard of shards [0..n) is held: a write without its
//  fence would be unconditional.
static bool
s_held (termshards_t *self, const int *shards, int n)
{
    for (int i = 0; i < n; i++)
        if (!ep_shards_held (ep_shardset_shards (self->set), shards [i]))
            return false;
    return true;
}

//  Deletes each shard's published outbox keys with one range delete, in
//  one fenced transaction.
static void
s_trim (termshards_t *self)
{
    self->trim_at = ep_mono_ms () + TRIM_MS;
    termshards_batch_t *batch = termshards_batch_new (self);
    char prefix [300];
    for (int shard = 0; shard < self->count; shard++) {
        const char *upto = ep_shardset_adopted (self->set, shard)
                         ? termoutbox_trimmable (self->outbox, shard): NULL;
        if (!upto)
            continue;
        //  [<shard>/o/, upto + "\0"): every key up to upto, included.
        char *from = zsys_sprintf ("%so/", s_shard_prefix (self, shard, prefix, sizeof prefix));
        size_t size = strlen (upto);
        uint8_t *end = (uint8_t *) zmalloc (size + 2);
        memcpy (end, upto, size);
        zlistx_add_end (batch->strings, from);
        zlistx_add_end (batch->strings, end);
        ep_etcd_op_t *op = (ep_etcd_op_t *) zmalloc (sizeof *op);
        op->kind = EP_ETCD_DELETE;
        op->u.del.key = ep_etcd_str (from);
        op->u.del.range_end = (ep_etcd_bytes_t) { end, size + 1 };
        zlistx_add_end (batch->ops, op);
        zlistx_add_end (batch->names, strdup (upto));
        batch->touched [shard] = true;
    }
    int *shards = (int *) zmalloc (sizeof (int) * (size_t) self->count);
    int nshards = s_touched (self, batch->touched, shards);
    size_t nops;
    ep_etcd_op_t *ops = s_ops (batch, &nops);
    s_ctx_t *ctx = (s_ctx_t *) zmalloc (sizeof (s_ctx_t));
    *ctx = (s_ctx_t) { .self = self, .names = batch->names };
    batch->names = NULL;
    char err [256];
    if (nops == 0 || !s_held (self, shards, nshards))
        s_ctx_destroy (&ctx);
    else
    if (ep_shardset_txn (self->set, shards, nshards, ops, nops, s_on_trim, ctx, err, sizeof err) == 0)
        self->trimming = true;
    else {
        ep_log_warn ("terminators: cannot delete published events: %s", err);
        s_ctx_destroy (&ctx);
    }
    free (ops);
    free (shards);
    termshards_batch_destroy (&batch);
}

//  ---------------------------------------------------------------------
//  Life cycle and the loop

static long
s_trim_due (void *arg)
{
    termshards_t *self = (termshards_t *) arg;
    if (!termoutbox_keys (self->outbox) || self->trimming)
        return -1;
    int64_t now = ep_mono_ms ();
    return (long) (self->trim_at > now? self->trim_at - now: 0);
}

static void
s_trim_tick (void *arg)
{
    termshards_t *self = (termshards_t *) arg;
    if (!self->trimming && ep_mono_ms () >= self->trim_at && termoutbox_keys (self->outbox))
        s_trim (self);
}

termshards_t *
termshards_new (const termshards_config_t *config, char *err, size_t errlen)
{
    EP_ASSERT (config->fn);
    termshards_t *self = (termshards_t *) zmalloc (sizeof (termshards_t));
    self->prefix = zsys_sprintf ("%sterminators/", config->shards.prefix);
    self->count = config->shards.count;
    self->fn = config->fn;
    self->arg = config->arg;
    self->outbox = termoutbox_new (self->count);
    ep_shardset_config_t set = config->shards;
    set.service = "terminators";
    set.fn = s_on_news;
    set.due = s_trim_due;
    set.tick = s_trim_tick;
    set.arg = self;
    self->set = ep_shardset_new (&set, err, errlen);
    if (!self->set)
        termshards_destroy (&self);
    return self;
}

void
termshards_destroy (termshards_t **self_p)
{
    termshards_t *self = *self_p;
    if (self) {
        ep_shardset_destroy (&self->set);
        termoutbox_destroy (&self->outbox);
        free (self->prefix);
        free (self);
        *self_p = NULL;
    }
}

ep_shardset_t *
termshards_set (termshards_t *self)
{
    return self->set;
}
