/*  reapbatch.c: a batch of the reaper's etcd mode as etcd operations
    (reapbatch.h). */
#include "reapbatch.h"
#include "reapkeys.h"
#include "ep_shard.h"
#include "events.pb-c.h"

#define REASONS_MAX     8           //  reapkeys_reasons, at most

struct _reapbatch_t {
    reapbatch_config_t config;  //  as given
    char *prefix;               //  copied
    zhashx_t *sessions;         //  ids opened, warned, closed
    zhashx_t *pruned;           //  id -> its router (owned)
    zhashx_t *jobs;             //  job ids started, finished, or marking
    zhashx_t *jobs_pruned;      //  job id -> its router, "" if not a router's job (owned)
    zhashx_t *counters;         //  router -> s_chunks_t, its chunks to write or drop (owned)
    zhashx_t *marks;            //  id marked -> its job (owned)
    zhashx_t *closes;           //  id closed -> the job it had before, "" if none (owned)
    zhashx_t *tallies;          //  job id -> its s_count_t by router, across batches (owned)
    bool unsettled;             //  the journal was told something since the last reset
    bool settled;               //  the batch built is durable (reapbatch_settled)
    zlistx_t *outbox;           //  int64_t * seqs added
    zlistx_t *acks;             //  int64_t * seqs echoed
    int64_t *deleted;           //  seqs of acks whose etcd entry the batch deletes
    size_t ndeleted;            //  how many
    size_t deleted_max;         //  allocated
    ep_etcd_op_t *ops;          //  built
    size_t nops;                //  how many
    size_t ops_max;             //  allocated
    zlistx_t *strings;          //  what the ops and entries point to
    reapbatch_entry_t *entries; //  outbox entries written
    size_t nentries;            //  how many
    size_t entries_max;         //  allocated
    bool *touched;              //  per shard
    bool bad;                   //  a shard it touches is not this instance's
    char why [300];             //  which
};

static void
s_free (void **item_p)
{
    free (*item_p);
    *item_p = NULL;
}

static zhashx_t *
s_hash (bool owned)
{
    zhashx_t *hash = zhashx_new ();
    if (owned)
        zhashx_set_destructor (hash, s_free);
    return hash;
}

static zlistx_t *
s_list (void)
{
    zlistx_t *list = zlistx_new ();
    zlistx_set_destructor (list, s_free);
    return list;
}

static void
s_tally_destroy (void **item_p)
{
    zhashx_destroy ((zhashx_t **) item_p);
}

reapbatch_t *
reapbatch_new (const reapbatch_config_t *config)
{
    reapbatch_t *self = (reapbatch_t *) zmalloc (sizeof (reapbatch_t));
    self->config = *config;
    self->prefix = strdup (config->prefix);
    self->sessions = s_hash (false);
    self->pruned = s_hash (true);
    self->jobs = s_hash (false);
    self->jobs_pruned = s_hash (true);
    self->counters = s_hash (true);
    self->marks = s_hash (true);
    self->closes = s_hash (true);
    self->tallies = zhashx_new ();
    zhashx_set_destructor (self->tallies, s_tally_destroy);
    self->outbox = s_list ();
    self->acks = s_list ();
    self->strings = s_list ();
    self->touched = (bool *) calloc ((size_t) config->count, sizeof (bool));
    EP_ASSERT (self->touched);
    return self;
}

void
reapbatch_destroy (reapbatch_t **self_p)
{
    if (*self_p) {
        reapbatch_t *self = *self_p;
        zhashx_destroy (&self->sessions);
        zhashx_destroy (&self->pruned);
        zhashx_destroy (&self->jobs);
        zhashx_destroy (&self->jobs_pruned);
        zhashx_destroy (&self->counters);
        zhashx_destroy (&self->marks);
        zhashx_destroy (&self->closes);
        zhashx_destroy (&self->tallies);
        zlistx_destroy (&self->outbox);
        zlistx_destroy (&self->acks);
        zlistx_destroy (&self->strings);
        free (self->ops);
        free (self->entries);
        free (self->deleted);
        free (self->touched);
        free (self->prefix);
        free (self);
        *self_p = NULL;
    }
}

void
reapbatch_reset (reapbatch_t *self)
{
    zhashx_purge (self->sessions);
    zhashx_purge (self->pruned);
    zhashx_purge (self->jobs);
    zhashx_purge (self->jobs_pruned);
    zhashx_purge (self->counters);
    zhashx_purge (self->marks);
    zhashx_purge (self->closes);
    //  A batch not durable leaves the cache as it was: its counts go.
    if (self->unsettled && !self->settled)
        zhashx_purge (self->tallies);
    self->unsettled = self->settled = false;
    zlistx_purge (self->outbox);
    zlistx_purge (self->acks);
    zlistx_purge (self->strings);
    self->nops = self->nentries = self->ndeleted = 0;
    memset (self->touched, 0, (size_t) self->config.count * sizeof (bool));
    self->bad = false;
    self->why [0] = 0;
}

//  ---------------------------------------------------------------------
//  The journal

//  A router's chunks a batch writes: a flushed session's is rewritten
//  whole (its open sessions, so closed ones' entries drop out), a closed
//  session's only deleted once no open session is left in it. A close
//  rewrote its chunk once: a cleanup of one router's N sessions wrote the
//  still open ones' counters again with every batch, N squared bytes.
typedef struct {
    uint64_t write;             //  chunks rewritten (deleted if empty)
    uint64_t drop;              //  chunks deleted if empty, else left
} s_chunks_t;

static void
s_touch_counters (reapbatch_t *self, const char *router_id, const char *session_id, bool write)
{
    s_chunks_t *chunks = (s_chunks_t *) zhashx_lookup (self->counters, router_id);
    if (!chunks) {
        chunks = (s_chunks_t *) zmalloc (sizeof *chunks);
        zhashx_insert (self->counters, router_id, chunks);
    }
    uint64_t bit = 1ULL << reapkeys_chunk_of (session_id);
    if (write)
        chunks->write |= bit;
    else
        chunks->drop |= bit;
}

static void
s_seq (zlistx_t *list, int64_t seq)
{
    int64_t *item = (int64_t *) zmalloc (sizeof *item);
    *item = seq;
    zlistx_add_end (list, item);
}

//  What a session's key in self->sessions asks for (bits, as the value).
#define WRITE_RECORD    1           //  its record (opened, warned, closed)
#define WRITE_CHUNK     2           //  its router's chunk (flushed)

static void
s_touch_session (reapbatch_t *self, const char *id, uintptr_t what)
{
    uintptr_t before = (uintptr_t) zhashx_lookup (self->sessions, id);
    zhashx_update (self->sessions, id, (void *) (before | what));
}

void
reapbatch_journal (void *arg, sessiondb_change_t change, const char *id, const char *other,
                   int64_t seq)
{
    reapbatch_t *self = (reapbatch_t *) arg;
    self->unsettled = true;
    switch (change) {
        case SESSIONDB_SESSION:
            s_touch_session (self, id, WRITE_RECORD);
            break;
        case SESSIONDB_CLOSED:
            s_touch_session (self, id, WRITE_RECORD);
            if (!zhashx_lookup (self->closes, id))
                zhashx_insert (self->closes, id, strdup (other? other: ""));
            break;
        case SESSIONDB_MARK:
            //  The job's record says how far it got; the session's own
            //  record does not change (a mark is not written per session).
            zhashx_insert (self->jobs, other, (void *) 1);
            zhashx_update (self->marks, id, strdup (other));
            break;
        case SESSIONDB_COUNTERS:
            //  The router is read back at the build (a flush does not say it).
            s_touch_session (self, id, WRITE_CHUNK);
            break;
        case SESSIONDB_PRUNED:
            zhashx_update (self->pruned, id, strdup (other));
            zhashx_purge (self->tallies);       //  counted again, from the cache
            break;
        case SESSIONDB_JOB:
            zhashx_insert (self->jobs, id, (void *) 1);
            break;
        case SESSIONDB_JOB_PRUNED:
            zhashx_update (self->jobs_pruned, id, strdup (other? other: ""));
            zhashx_purge (self->tallies);
            break;
        case SESSIONDB_UNJOURNALED:
            zhashx_purge (self->tallies);
            break;
        case SESSIONDB_OUTBOX:
            s_seq (self->outbox, seq);
            break;
        case SESSIONDB_OUTBOX_ACK:
            s_seq (self->acks, seq);
            break;
    }
}

//  ---------------------------------------------------------------------
//  Building

//  The shard of router_id if this instance owns it (touched), or -1 (the
//  batch is bad).
static int
s_shard (reapbatch_t *self, const char *router_id)
{
    int shard = ep_shard_of (router_id, self->config.count);
    if (self->config.revision (self->config.arg, shard) <= 0) {
        if (!self->bad)
            snprintf (self->why, sizeof self->why, "shard %d (router %.64s) is no longer this "
                      "instance's", shard, router_id);
        self->bad = true;
        return -1;
    }
    self->touched [shard] = true;
    return shard;
}

static char *
s_keep (reapbatch_t *self, const void *bytes, size_t size)
{
    char *copy = (char *) malloc (size + 1);
    EP_ASSERT (copy);
    memcpy (copy, bytes, size);
    copy [size] = 0;
    zlistx_add_end (self->strings, copy);
    return copy;
}

//  Adds an op; key and value (size bytes; NULL: a delete) are copied.
static void
s_op (reapbatch_t *self, const char *key, const void *value, size_t size)
{
    if (self->nops == self->ops_max) {
        self->ops_max = self->ops_max? self->ops_max * 2: 64;
        self->ops = (ep_etcd_op_t *) realloc (self->ops, self->ops_max * sizeof *self->ops);
        EP_ASSERT (self->ops);
    }
    ep_etcd_op_t *op = &self->ops [self->nops++];
    memset (op, 0, sizeof *op);
    const char *key_copy = s_keep (self, key, strlen (key));
    if (value) {
        op->kind = EP_ETCD_PUT;
        op->u.put.key = ep_etcd_str (key_copy);
        op->u.put.value = (ep_etcd_bytes_t) { (const uint8_t *) s_keep (self, value, size), size };
    }
    else {
        op->kind = EP_ETCD_DELETE;
        op->u.del.key = ep_etcd_str (key_copy);
    }
}

//  ---------------------------------------------------------------------
//  Tallies: a job's sessions by router, kept from batch to batch

//  One router's sessions of a job, as the job's records count them.
typedef struct {
    uint64_t marked;            //  taken: TERMINATING or closed
    uint64_t closed [REASONS_MAX];  //  closed, by reapkeys_reasons
} s_count_t;

//  The count of router in tally, made if need be.
static s_count_t *
s_count (zhashx_t *tally, const char *router_id)
{
    s_count_t *count = (s_count_t *) zhashx_lookup (tally, router_id);
    if (!count) {
        count = (s_count_t *) zmalloc (sizeof *count);
        zhashx_insert (tally, router_id, count);
    }
    return count;
}

static void
s_count_closed (s_count_t *count, const char *reason, uint64_t n)
{
    for (size_t i = 0; reason && reapkeys_reasons [i] && i < REASONS_MAX; i++)
        if (streq (reason, reapkeys_reasons [i]))
            count->closed [i] += n;
}

//  A row of sessiondb_job_routers into a tally.
static void
s_on_job_router (void *arg, const char *router_id, const char *reason, uint64_t n)
{
    s_count_t *count = s_count ((zhashx_t *) arg, router_id);
    count->marked += n;
    s_count_closed (count, reason, n);
}

//  A session the batch closed, into its job's tally if one is kept (else
//  the job is counted from the cache at the build): taken now if it had
//  no job before.
static void
s_tally_close (reapbatch_t *self, const sessiondb_row_t *row, const char *before)
{
    if (!row->job_id)
        return;
    if (*before && !streq (before, row->job_id)) {
        zhashx_delete (self->tallies, before);
        zhashx_delete (self->tallies, row->job_id);
        return;
    }
    zhashx_t *tally = (zhashx_t *) zhashx_lookup (self->tallies, row->job_id);
    if (!tally)
        return;
    s_count_t *count = s_count (tally, row->router_id);
    if (!*before)
        count->marked++;
    s_count_closed (count, row->close_reason, 1);
}

//  A session the batch marked, into its job's tally.
typedef struct {
    reapbatch_t *self;          //  whose
    const char *job;            //  the job that marked it
} s_mark_ctx_t;

static void
s_on_marked (void *arg, const sessiondb_row_t *row)
{
    s_mark_ctx_t *ctx = (s_mark_ctx_t *) arg;
    zhashx_t *tally = (zhashx_t *) zhashx_lookup (ctx->self->tallies, ctx->job);
    if (tally)
        s_count (tally, row->router_id)->marked++;
}

//  The batch's marks into the tallies kept (before any is counted afresh:
//  a fresh count has them already). A mark whose row is gone was pruned
//  or forgotten, which dropped the tallies.
static int
s_tally_marks (reapbatch_t *self, sessiondb_t *db)
{
    for (char *job = (char *) zhashx_first (self->marks); job; job = (char *) zhashx_next (self->marks)) {
        if (!zhashx_lookup (self->tallies, job))
            continue;
        s_mark_ctx_t ctx = { self, job };
        //  The hash's cursor is its key: sessiondb_get does not touch it.
        if (sessiondb_get (db, (const char *) zhashx_cursor (self->marks), s_on_marked, &ctx) < 0)
            return -1;
    }
    return 0;
}

//  The tally of job id: kept, or counted from the cache (a GROUP BY over
//  the job's sessions, once per job, not once per batch).
static zhashx_t *
s_tally (reapbatch_t *self, sessiondb_t *db, const char *id)
{
    zhashx_t *tally = (zhashx_t *) zhashx_lookup (self->tallies, id);
    if (tally)
        return tally;
    tally = s_hash (true);
    if (sessiondb_job_routers (db, id, s_on_job_router, tally) != 0) {
        zhashx_destroy (&tally);
        return NULL;
    }
    zhashx_insert (self->tallies, id, tally);
    return tally;
}

//  ---------------------------------------------------------------------
//  Building, continued

static void
s_on_session (void *arg, const sessiondb_row_t *row)
{
    reapbatch_t *self = (reapbatch_t *) arg;
    int shard = s_shard (self, row->router_id);
    if (shard < 0)
        return;
    //  A flush alone writes the router's chunk, not the session's record.
    uintptr_t what = (uintptr_t) zhashx_lookup (self->sessions, row->id);
    if (what & WRITE_RECORD) {
        char key [REAPKEYS_KEY_MAX];
        size_t size;
        uint8_t *bytes = reapkeys_pack_session (row, &size);
        s_op (self, reapkeys_session (self->prefix, shard, row->id, key, sizeof key), bytes, size);
        free (bytes);
    }
    //  A flushed session changes its chunk; a closed one leaves its entry
    //  there (the loader takes a closed record's counters, not the
    //  chunk's), and counts in its job's record.
    if (what & WRITE_CHUNK)
        s_touch_counters (self, row->router_id, row->id, true);
    else
    if (row->state == EP__SESSION_STATE__CLOSED)
        s_touch_counters (self, row->router_id, row->id, false);
    if (row->state == EP__SESSION_STATE__CLOSED && row->job_id)
        zhashx_insert (self->jobs, row->job_id, (void *) 1);
    const char *before = (const char *) zhashx_lookup (self->closes, row->id);
    if (before && row->state == EP__SESSION_STATE__CLOSED)
        s_tally_close (self, row, before);
}

//  One job's counts per shard, from its sessions.
typedef struct {
    reapbatch_t *self;          //  whose
    reapkeys_job_t *per_shard;  //  count of them
    bool *has;                  //  shards it has sessions in
    uint64_t marked;            //  in every shard
} s_job_ctx_t;

//  A router's count of the job, into the records of its shard.
static void
s_job_router (s_job_ctx_t *ctx, const char *router_id, const s_count_t *count)
{
    int shard = s_shard (ctx->self, router_id);
    if (shard < 0)
        return;
    ctx->has [shard] = true;
    ctx->per_shard [shard].marked += count->marked;
    ctx->marked += count->marked;
    for (size_t i = 0; i < REASONS_MAX; i++)
        ctx->per_shard [shard].closed [i] += count->closed [i];
}

static void
s_on_job (void *arg, const sessiondb_job_t *job)
{
    s_job_ctx_t *ctx = (s_job_ctx_t *) arg;
    reapbatch_t *self = ctx->self;
    //  A router's job has its record in the router's shard even before it
    //  took a session there.
    if (streq (job->target_type, "router")) {
        int shard = s_shard (self, job->target_id);
        if (shard >= 0)
            ctx->has [shard] = true;
    }
    for (int shard = 0; shard < self->config.count; shard++) {
        if (!ctx->has [shard])
            continue;
        reapkeys_job_t *record = &ctx->per_shard [shard];
        record->job = *job;
        record->marking_done = job->done || ctx->marked >= job->scheduled;
        char key [REAPKEYS_KEY_MAX];
        size_t size;
        uint8_t *bytes = reapkeys_pack_job (record, &size);
        s_op (self, reapkeys_job (self->prefix, shard, job->id, key, sizeof key), bytes, size);
        free (bytes);
    }
}

static int
s_build_job (reapbatch_t *self, sessiondb_t *db, const char *id)
{
    s_job_ctx_t ctx = { self, NULL, NULL, 0 };
    ctx.per_shard = (reapkeys_job_t *) calloc ((size_t) self->config.count, sizeof *ctx.per_shard);
    ctx.has = (bool *) calloc ((size_t) self->config.count, sizeof *ctx.has);
    EP_ASSERT (ctx.per_shard && ctx.has);
    zhashx_t *tally = s_tally (self, db, id);
    int rc = tally? 0: -1;
    for (s_count_t *count = tally? (s_count_t *) zhashx_first (tally): NULL; count;
         count = (s_count_t *) zhashx_next (tally))
        s_job_router (&ctx, (const char *) zhashx_cursor (tally), count);
    if (rc == 0 && sessiondb_jobs_find (db, NULL, NULL, id, 1, s_on_job, &ctx) < 0)
        rc = -1;
    free (ctx.per_shard);
    free (ctx.has);
    return rc;
}

//  The open sessions of one router, into the chunks to write, counted in
//  the chunks to drop.
typedef struct {
    reapbatch_t *self;          //  whose
    s_chunks_t wanted;          //  the chunks
    uint64_t open;              //  chunks to drop that still have an open session
    zlistx_t *chunks [REAPKEYS_CHUNKS];     //  reapkeys_counter_t (ids owned in strings)
} s_counters_ctx_t;

static void
s_on_open (void *arg, const sessiondb_row_t *row)
{
    s_counters_ctx_t *ctx = (s_counters_ctx_t *) arg;
    int chunk = reapkeys_chunk_of (row->id);
    ctx->open |= ctx->wanted.drop & 1ULL << chunk;
    if (!(ctx->wanted.write & 1ULL << chunk))
        return;
    reapkeys_counter_t *entry = (reapkeys_counter_t *) zmalloc (sizeof *entry);
    entry->id = s_keep (ctx->self, row->id, strlen (row->id));
    entry->bytes_rx = row->bytes_rx;
    entry->bytes_tx = row->bytes_tx;
    entry->last_seen_ms = row->last_seen_ms;
    zlistx_add_end (ctx->chunks [chunk], entry);
}

//  An open session's id, for chunks to drop only: the read stops once
//  every one of them is known to keep an open session (a cleanup's batch
//  then reads a few hundred ids, not every open session of the router).
static bool
s_on_open_id (void *arg, const char *id)
{
    s_counters_ctx_t *ctx = (s_counters_ctx_t *) arg;
    ctx->open |= ctx->wanted.drop & 1ULL << reapkeys_chunk_of (id);
    return ctx->open != ctx->wanted.drop;
}

static int
s_build_counters (reapbatch_t *self, sessiondb_t *db, const char *router_id, const s_chunks_t *wanted)
{
    int shard = s_shard (self, router_id);
    if (shard < 0)
        return 0;
    s_counters_ctx_t ctx = { self, *wanted, 0, { NULL } };
    for (int chunk = 0; chunk < REAPKEYS_CHUNKS; chunk++)
        ctx.chunks [chunk] = s_list ();
    int rc = wanted->write? sessiondb_router_open (db, router_id, s_on_open, &ctx)
                          : sessiondb_router_open_ids (db, router_id, s_on_open_id, &ctx);
    //  A chunk to drop with an open session left keeps its closed entries
    //  until that session's flush or close.
    uint64_t mask = wanted->write | (wanted->drop & ~ctx.open);
    for (int chunk = 0; rc == 0 && chunk < REAPKEYS_CHUNKS; chunk++) {
        if (!(mask & 1ULL << chunk))
            continue;
        char key [REAPKEYS_KEY_MAX];
        reapkeys_counters (self->prefix, shard, router_id, chunk, key, sizeof key);
        size_t count = zlistx_size (ctx.chunks [chunk]);
        if (count == 0) {
            s_op (self, key, NULL, 0);
            continue;
        }
        reapkeys_counter_t *entries = (reapkeys_counter_t *) malloc (count * sizeof *entries);
        EP_ASSERT (entries);
        size_t i = 0;
        for (reapkeys_counter_t *entry = (reapkeys_counter_t *) zlistx_first (ctx.chunks [chunk]);
             entry; entry = (reapkeys_counter_t *) zlistx_next (ctx.chunks [chunk]))
            entries [i++] = *entry;
        size_t size;
        uint8_t *bytes = reapkeys_pack_counters (entries, count, &size);
        s_op (self, key, bytes, size);
        free (bytes);
        free (entries);
    }
    for (int chunk = 0; chunk < REAPKEYS_CHUNKS; chunk++)
        zlistx_destroy (&ctx.chunks [chunk]);
    return rc;
}

//  One outbox row read back from the cache.
typedef struct {
    reapbatch_t *self;          //  whose
    int rc;                     //  -1 if it does not decode
} s_outbox_ctx_t;

static void
s_on_outbox (void *arg, int64_t seq, const char *topic, const void *body, size_t size)
{
    s_outbox_ctx_t *ctx = (s_outbox_ctx_t *) arg;
    reapbatch_t *self = ctx->self;
    Ep__Event *event = ep__event__unpack (NULL, size, (const uint8_t *) body);
    if (!event) {
        ctx->rc = -1;
        return;
    }
    const char *router_id = event->body_case == EP__EVENT__BODY_SESSION && event->session->router_id?
                            event->session->router_id: "";
    int shard = s_shard (self, router_id);
    ep__event__free_unpacked (event, NULL);
    if (shard < 0)
        return;
    int64_t revision = self->config.revision (self->config.arg, shard);
    char key [REAPKEYS_KEY_MAX], event_id [96];
    reapkeys_outbox (self->prefix, shard, revision, seq, key, sizeof key);
    reapkeys_event_id (shard, revision, seq, event_id, sizeof event_id);
    Ep__ReaperOutboxEntry entry = EP__REAPER_OUTBOX_ENTRY__INIT;
    entry.topic = (char *) topic;
    entry.has_event = true;
    entry.event = (ProtobufCBinaryData) { size, (uint8_t *) body };
    entry.event_id = event_id;
    size_t packed_size = ep__reaper_outbox_entry__get_packed_size (&entry);
    uint8_t *packed = (uint8_t *) malloc (packed_size + 1);
    EP_ASSERT (packed);
    ep__reaper_outbox_entry__pack (&entry, packed);
    s_op (self, key, packed, packed_size);
    free (packed);
    if (self->nentries == self->entries_max) {
        self->entries_max = self->entries_max? self->entries_max * 2: 16;
        self->entries = (reapbatch_entry_t *) realloc (self->entries,
                                                       self->entries_max * sizeof *self->entries);
        EP_ASSERT (self->entries);
    }
    self->entries [self->nentries++] = (reapbatch_entry_t) {
        seq, shard, s_keep (self, key, strlen (key)), s_keep (self, event_id, strlen (event_id))
    };
}

//  The deletes the batch makes (pruned records, echoed events).
static void
s_build_deletes (reapbatch_t *self)
{
    char key [REAPKEYS_KEY_MAX];
    for (char *router = (char *) zhashx_first (self->pruned); router;
         router = (char *) zhashx_next (self->pruned)) {
        int shard = s_shard (self, router);
        if (shard >= 0)
            s_op (self, reapkeys_session (self->prefix, shard, (const char *) zhashx_cursor (self->pruned),
                                          key, sizeof key), NULL, 0);
    }
    for (char *router = (char *) zhashx_first (self->jobs_pruned); router;
         router = (char *) zhashx_next (self->jobs_pruned)) {
        const char *id = (const char *) zhashx_cursor (self->jobs_pruned);
        //  Another target's job may have records in any shard owned here.
        for (int shard = 0; shard < self->config.count; shard++)
            if (*router? shard == s_shard (self, router)
                       : self->config.revision (self->config.arg, shard) > 0) {
                self->touched [shard] = true;
                s_op (self, reapkeys_job (self->prefix, shard, id, key, sizeof key), NULL, 0);
            }
    }
    for (int64_t *seq = (int64_t *) zlistx_first (self->acks); seq;
         seq = (int64_t *) zlistx_next (self->acks)) {
        const char *outbox_key = self->config.outbox_key (self->config.arg, *seq);
        reapkeys_key_t parsed;
        if (outbox_key && reapkeys_parse (self->prefix, outbox_key, &parsed) == 0
        &&  self->config.revision (self->config.arg, parsed.shard) > 0) {
            self->touched [parsed.shard] = true;
            s_op (self, outbox_key, NULL, 0);
            if (self->ndeleted == self->deleted_max) {
                self->deleted_max = self->deleted_max? self->deleted_max * 2: 64;
                self->deleted = (int64_t *) realloc (self->deleted, self->deleted_max * sizeof *self->deleted);
                EP_ASSERT (self->deleted);
            }
            self->deleted [self->ndeleted++] = *seq;
        }
    }
}

int
reapbatch_build (reapbatch_t *self, sessiondb_t *db, char *err, size_t errlen)
{
    int rc = 0;
    //  Over a copy of the ids: s_on_session looks the hash up, which
    //  would move its cursor.
    zlistx_t *ids = zhashx_keys (self->sessions);
    for (const char *id = (const char *) zlistx_first (ids); id && rc == 0;
         id = (const char *) zlistx_next (ids))
        if (!zhashx_lookup (self->pruned, id) && sessiondb_get (db, id, s_on_session, self) < 0)
            rc = -1;
    zlistx_destroy (&ids);
    if (rc == 0)
        rc = s_tally_marks (self, db);
    for (void *touched = zhashx_first (self->jobs); touched && rc == 0;
         touched = zhashx_next (self->jobs)) {
        const char *id = (const char *) zhashx_cursor (self->jobs);
        if (!zhashx_lookup (self->jobs_pruned, id))
            rc = s_build_job (self, db, id);
    }
    for (s_chunks_t *chunks = (s_chunks_t *) zhashx_first (self->counters); chunks && rc == 0;
         chunks = (s_chunks_t *) zhashx_next (self->counters))
        rc = s_build_counters (self, db, (const char *) zhashx_cursor (self->counters), chunks);
    s_outbox_ctx_t outbox = { self, 0 };
    for (int64_t *seq = (int64_t *) zlistx_first (self->outbox); seq && rc == 0 && outbox.rc == 0;
         seq = (int64_t *) zlistx_next (self->outbox))
        if (sessiondb_outbox_next (db, *seq - 1, 1, s_on_outbox, &outbox) < 0)
            rc = -1;
    if (rc != 0 || outbox.rc != 0) {
        snprintf (err, errlen, "the batch's rows cannot be read back from the cache: %s",
                  ep_store_last_error ());
        return -1;
    }
    s_build_deletes (self);
    if (self->bad) {
        snprintf (err, errlen, "%s", self->why);
        return -1;
    }
    return 0;
}

const ep_etcd_op_t *
reapbatch_ops (reapbatch_t *self, size_t *count)
{
    *count = self->nops;
    return self->ops;
}

int
reapbatch_shards (reapbatch_t *self, int *shards, int max)
{
    int count = 0;
    for (int shard = 0; shard < self->config.count && count < max; shard++)
        if (self->touched [shard])
            shards [count++] = shard;
    return count;
}

const reapbatch_entry_t *
reapbatch_entries (reapbatch_t *self, size_t *count)
{
    *count = self->nentries;
    return self->entries;
}

const int64_t *
reapbatch_deleted (reapbatch_t *self, size_t *count)
{
    *count = self->ndeleted;
    return self->deleted;
}

void
reapbatch_settled (reapbatch_t *self)
{
    self->settled = true;
}
