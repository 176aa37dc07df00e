/*  reapsvc_shards.c: the reaper service in the etcd mode (reapsvc.h,
    reapshards.h): writes refused for shards this instance does not own, a
    batch as one fenced etcd transaction (reapbatch), commands carrying
    their fence, events under their etcd entries' ids, shards read into the
    cache and adopted in steps (ep_adopt, reapload, reaper_adopt) or
    forgotten (reaper_forget) between batches, the cluster.beacon. */
#include "reapsvc_internal.h"
#include "ep_log.h"
#include "ep_store.h"
#include "reapkeys.h"
#include "reapload.h"
#include "sessiondb.h"
#include "ep_shard.h"
#include "ep_adopt.h"
#include <unistd.h>

//  ---------------------------------------------------------------------
//  Requests

bool
reapsvc_not_mine (reapsvc_t *self, ep_req_t *req, reaper_result_t *result)
{
    const Ep__SessionRequest *request = (const Ep__SessionRequest *) ep_req_message (req);
    const char *router_id = request->router_id;
    //  No router: the core answers (INVALID_ARGUMENT).
    if (!self->shards || !router_id || !*router_id || ep_shardset_ready (self->set, router_id))
        return false;
    reaper_result_t *answer = result? result: (reaper_result_t *) ep_req_result (req);
    const char *owner = ep_shardset_owner (self->set, router_id);
    bool elsewhere = *owner && !streq (owner, ep_service_source_id (self->service));
    answer->reply.has_retriable = true;
    answer->reply.retriable = true;
    answer->reply.owner = (char *) ep_owned_add (answer->owned, strdup (owner), free);
    char text [300];
    snprintf (text, sizeof text, "router %.64s is in shard %d, which %s%s: retry%s", router_id,
              ep_shardset_shard_of (self->set, router_id), elsewhere? "is owned by ": "",
              elsewhere? owner: "this instance is taking over or has no owner now",
              elsewhere? " (there)": "");
    if (result) {
        snprintf (result->message, sizeof result->message, "%s", text);
        result->status.code = EP__STATUS__CODE__UNAVAILABLE;
        result->status.message = result->message;
    }
    else
        ep_reqloop_fail (self->loop, req, EP__STATUS__CODE__UNAVAILABLE, text);
    return true;
}

//  ---------------------------------------------------------------------
//  Batches

//  The etcd transaction's outcome: the cache and memory follow it.
static void
s_batch_done (void *arg, int rc, const char *why)
{
    reapsvc_t *self = (reapsvc_t *) arg;
    self->committing = false;
    self->between_due = true;
    self->echoed = 0;
    if (rc != 0)
        reaper_refuse (self->reaper, why);
    reapbatch_reset (self->batch);
    rc = reaper_commit (self->reaper);
    if (rc != 0)
        reapsvc_failed (self);
    else
        ep_histogram_observe (self->commit_seconds, NULL, (ep_mono_us () - self->commit_started) / 1e6);
    ep_reqloop_committed (self->loop, rc);
}

int
reapsvc_commit_etcd (reapsvc_t *self)
{
    self->echoed = 0;
    if (!reaper_prepare (self->reaper)) {
        //  Nothing to send (or a batch that failed already): as embedded.
        reapbatch_reset (self->batch);
        return reaper_commit (self->reaper);
    }
    char err [512];
    int rc = reapbatch_build (self->batch, reaper_db (self->reaper), err, sizeof err);
    size_t nops = 0;
    if (rc == 0)
        reapbatch_ops (self->batch, &nops);
    if (rc == 0 && nops == 0) {
        //  The cache alone changed (say, rows only it keeps): done here.
        reapbatch_reset (self->batch);
        return reaper_commit (self->reaper);
    }
    if (rc == 0 && reapshards_send (self->shards, self->batch, s_batch_done, self, err, sizeof err) == 0) {
        self->committing = true;
        self->commit_started = ep_mono_us ();
        return EP_REQLOOP_LATER;
    }
    reaper_refuse (self->reaper, err);
    reapbatch_reset (self->batch);
    return reaper_commit (self->reaper);
}

//  The etcd mode: a command carries its shard and the owner key's create
//  revision, so the watchdog drops it once it has seen a newer owner
//  (docs/shards.md). False if the shard is no longer this instance's.
bool
reapsvc_fence_command (reapsvc_t *self, Ep__Event *event)
{
    return ep_shardset_fence_command (self->set, event);
}

//  ---------------------------------------------------------------------
//  Events and their echoes

void
reapsvc_event_id (reapsvc_t *self, int64_t seq, char *id, size_t size)
{
    char local [128];
    snprintf (local, sizeof local, "%s:%lld", reaper_outbox_owner (self->reaper), (long long) seq);
    const char *key = self->shards? reapshards_outbox_key (self->shards, seq): NULL;
    reapkeys_key_t parsed;
    if (!key || reapkeys_parse (self->prefix, key, &parsed) != 0 || parsed.kind != REAPKEYS_OUTBOX) {
        snprintf (id, size, "%s", local);
        return;
    }
    //  The entry's own id, the same the next owner publishes it under.
    reapkeys_event_id (parsed.shard, parsed.revision, parsed.seq, id, size);
    zhashx_update (self->published, id, strdup (local));
}

void
reapsvc_echo (reapsvc_t *self, const char *event_id)
{
    if (!event_id)
        return;
    const char *local = (const char *) zhashx_lookup (self->published, event_id);
    zlistx_add_end (self->echoes, strdup (local? local: event_id));
    if (local)
        zhashx_delete (self->published, event_id);
}

void
reapsvc_echoes (reapsvc_t *self)
{
    char *echo;
    while (self->echoed < self->echo_budget && (echo = (char *) zlistx_detach (self->echoes, NULL))) {
        reaper_echo (self->reaper, echo);
        zstr_free (&echo);
        self->echoed++;
    }
}

//  ---------------------------------------------------------------------
//  Shards come and go

//  What a LOADED news carries to its adoption (ep_adopt's payload): the
//  shard's keys, copied, in reapload_order's order.
typedef struct {
    ep_etcd_kv_t *kvs;          //  the shard's keys (copies)
    size_t nkvs;                //  how many
    size_t records;             //  those that hold a record (the first ones)
    size_t outbox;              //  the first outbox entry: those are taken with the last step
    reapload_stats_t stats;     //  what the steps found
} s_loaded_t;

static void
s_loaded_destroy (s_loaded_t **loaded_p)
{
    s_loaded_t *loaded = *loaded_p;
    if (loaded) {
        for (size_t i = 0; i < loaded->nkvs; i++) {
            free (loaded->kvs [i].key);
            free (loaded->kvs [i].value);
        }
        free (loaded->kvs);
        free (loaded);
        *loaded_p = NULL;
    }
}

static uint8_t *
s_copy (const uint8_t *data, size_t size)
{
    uint8_t *copy = (uint8_t *) malloc (size + 1);
    EP_ASSERT (copy);
    if (size)
        memcpy (copy, data, size);
    copy [size] = 0;
    return copy;
}

//  Shard news go to ep_adopt, applied when no batch is open (the cache's
//  transaction is the batch's meanwhile): drops at once, a shard read a
//  step per turn.
static void
s_on_shards (void *arg, const reapshards_news_t *news)
{
    reapsvc_t *self = (reapsvc_t *) arg;
    if (!ep_shardset_news_loaded (news, self->adopt, &self->shards_failed))
        return;
    s_loaded_t *loaded = (s_loaded_t *) zmalloc (sizeof (s_loaded_t));
    loaded->nkvs = news->nkvs;
    loaded->kvs = (ep_etcd_kv_t *) zmalloc (sizeof (ep_etcd_kv_t) * (news->nkvs? news->nkvs: 1));
    for (size_t i = 0; i < news->nkvs; i++) {
        loaded->kvs [i] = news->kvs [i];
        loaded->kvs [i].key = s_copy (news->kvs [i].key, news->kvs [i].key_size);
        loaded->kvs [i].value = s_copy (news->kvs [i].value, news->kvs [i].value_size);
    }
    loaded->records = reapload_order (self->prefix, loaded->kvs, loaded->nkvs, &loaded->outbox);
    ep_adopt_loaded (self->adopt, news->shard, news->revision, loaded->outbox, loaded);
}

static bool
s_loaded_valid (void *arg, int shard, int64_t revision)
{
    return ep_shardset_loaded (((reapsvc_t *) arg)->set, shard, revision);
}

//  A shard lost forgets every router not ready, but for the shard being
//  adopted (another: ep_adopt voids an adoption its shard's drop hits).
static bool
s_mine (void *arg, const char *router_id)
{
    reapsvc_t *self = (reapsvc_t *) arg;
    return ep_shardset_keeps (self->set, router_id, ep_adopt_shard (self->adopt));
}

//  An outbox entry of a shard taken over: a row of the cache's outbox,
//  known by its etcd key (published under its id, deleted on its echo).
static void
s_on_entry (void *arg, const char *key, const char *topic, const void *event, size_t size,
            const char *event_id)
{
    (void) event_id;            //  made again from the key (reapsvc_event_id)
    reapsvc_t *self = (reapsvc_t *) arg;
    int64_t seq = sessiondb_outbox_add (reaper_db (self->reaper), topic, event, size);
    if (seq > 0)
        reapshards_adopted (self->shards, seq, key);
}

//  cluster.shard.acquired|released
static void
s_shard_event (reapsvc_t *self, const char *topic, int shard, int64_t revision, const char *why)
{
    ep_shardset_event (self->set, self->publisher, topic, ep_service_source_id (self->service), shard,
                       revision, why);
}

//  The routers of a shard the cache still holds rows of (closed sessions,
//  done jobs: reaper_forget knew only what memory held).
typedef struct {
    reapsvc_t *self;            //  whose
    int shard;                  //  the shard read again
    zlistx_t *routers;          //  its routers in the cache
} s_stale_t;

static void
s_on_router (void *arg, const char *router_id)
{
    s_stale_t *stale = (s_stale_t *) arg;
    if (router_id && ep_shardset_shard_of (stale->self->set, router_id) == stale->shard)
        zlistx_add_end (stale->routers, strdup (router_id));
}

//  Clears the cache of what it holds of shard (in the open transaction):
//  etcd is the truth, and its records are written afresh.
static bool
s_mine_not_stale (void *arg, const char *router_id)
{
    s_stale_t *stale = (s_stale_t *) arg;
    return ep_shardset_ready (stale->self->set, router_id)
        && ep_shardset_shard_of (stale->self->set, router_id) != stale->shard;
}

static int
s_clear_shard (reapsvc_t *self, sessiondb_t *db, int shard)
{
    s_stale_t stale = { self, shard, zlistx_new () };
    zlistx_set_destructor (stale.routers, (czmq_destructor *) zstr_free);
    int rc = sessiondb_routers (db, s_on_router, &stale);
    for (const char *router = (const char *) zlistx_first (stale.routers); router && rc == 0;
         router = (const char *) zlistx_next (stale.routers))
        rc = sessiondb_forget_router (db, router);
    zlistx_destroy (&stale.routers);
    return rc;
}

//  A step of a shard's adoption (ep_adopt checked it is still ours under
//  the revision read): its records [from, to) into the cache, in one
//  transaction of their own, its journal off (they are etcd's already);
//  the first clears what the cache still held of the shard; the last also
//  writes its outbox entries (few: the published ones are deleted) and
//  takes the shard into memory as a start loads (reaper_adopt). Until
//  then memory holds none of it, so the core acts on none of it; requests
//  for its routers are answered UNAVAILABLE, retriable (reapsvc_not_mine);
//  a batch may not write it, and the pruning, which scans the cache,
//  waits (reaper_hold_prune).
static int
s_adopt_step (reapsvc_t *self, const ep_adopt_action_t *action)
{
    s_loaded_t *loaded = (s_loaded_t *) action->payload;
    sessiondb_t *db = reaper_db (self->reaper);
    if (action->first) {
        //  Memory holds none of the shard, unless it was read twice unannounced.
        s_stale_t stale = { self, action->shard, NULL };
        reaper_forget (self->reaper, s_mine_not_stale, &stale);
    }
    sessiondb_set_journal (db, NULL, NULL);
    int64_t takeover = ep_wall_ms ();
    int rc = ep_store_begin (self->store);
    if (rc == 0 && action->first)
        rc = s_clear_shard (self, db, action->shard);
    if (rc == 0)
        rc = reapload_records (db, self->prefix, loaded->kvs + action->from, action->to - action->from,
                               takeover, s_on_entry, self, &loaded->stats);
    if (rc == 0 && action->last)
        rc = reapload_records (db, self->prefix, loaded->kvs + loaded->outbox,
                               loaded->records - loaded->outbox, takeover, s_on_entry, self,
                               &loaded->stats);
    if (rc == 0)
        rc = ep_store_commit (self->store);
    else
        ep_store_rollback (self->store);
    sessiondb_set_journal (db, reapbatch_journal, self->batch);
    if (rc != 0 || !action->last)
        return rc;
    if (reaper_adopt (self->reaper, ep_mono_ms ()) != 0)
        return -1;
    ep_shardset_adopt_shard (self->set, action->shard, action->revision);
    self->adopted = true;
    reapload_stats_t *stats = &loaded->stats;
    ep_log_info ("reaper: shard %d adopted in %zu steps: %zu open and %zu closed sessions, %zu "
                 "cleanups running (%zu sessions TERMINATING), %zu events to publish", action->shard,
                 action->steps, stats->open, stats->closed, stats->jobs, stats->marked, stats->entries);
    s_shard_event (self, "cluster.shard.acquired", action->shard, action->revision, NULL);
    return 0;
}

//  An adoption voided midway (its shard lost or read again): the rows its
//  steps wrote leave the cache (memory took none of them).
static int
s_adopt_abort (reapsvc_t *self, int shard)
{
    sessiondb_t *db = reaper_db (self->reaper);
    sessiondb_set_journal (db, NULL, NULL);
    int rc = ep_store_begin (self->store);
    if (rc == 0)
        rc = s_clear_shard (self, db, shard);
    if (rc == 0)
        rc = ep_store_commit (self->store);
    else
        ep_store_rollback (self->store);
    sessiondb_set_journal (db, reapbatch_journal, self->batch);
    ep_log_info ("reaper: shard %d lost or read again while adopted: what was taken so far forgotten",
                 shard);
    return rc;
}

//  Applies the shard news that came, first in the turn (no batch is open:
//  a step is a transaction of its own): every drop, and a step of the
//  shard being adopted.
void
reapsvc_apply_news (reapsvc_t *self)
{
    ep_adopt_turn (self->adopt);
    ep_adopt_action_t action;
    while (!self->shards_failed && ep_adopt_next (self->adopt, &action)) {
        int rc = 0;
        if (action.kind == EP_ADOPT_STEP)
            rc = s_adopt_step (self, &action);
        else
        if (action.kind == EP_ADOPT_ABORT)
            rc = s_adopt_abort (self, action.shard);
        else {
            int forgotten = reaper_forget (self->reaper, s_mine, self);
            ep_log_info ("reaper: shard %d is no longer ours (%s): %d sessions forgotten",
                         action.shard, action.why, forgotten);
            s_shard_event (self, "cluster.shard.released", action.shard, action.revision, action.why);
        }
        if (rc != 0) {
            //  The cache and etcd disagree now: only a start over makes them one.
            ep_log_error ("reaper: cannot take shard %d into the cache: %s; stopping, to start over "
                          "from etcd", action.shard, ep_store_last_error ());
            self->shards_failed = true;
        }
    }
    reaper_hold_prune (self->reaper, ep_adopt_shard (self->adopt) >= 0);
    //  Its routers may have left the model while their previous owner was
    //  gone or while the shard was adopted: the model's event found none of
    //  their sessions in memory.
    if (self->adopted && !self->shards_failed) {
        self->adopted = false;
        reaper_adopted_routers (self->reaper, ep_mono_ms ());
    }
}

bool
reapsvc_adopting (reapsvc_t *self)
{
    return self->adopt && ep_adopt_pending (self->adopt);
}

//  ---------------------------------------------------------------------
//  Life cycle

bool
reapsvc_shards_ready (void *arg)
{
    reapsvc_t *self = (reapsvc_t *) arg;
    return !self->shards || !self->between_due;
}

int
reapsvc_open_shards (reapsvc_t *self, const reapsvc_config_t *config)
{
    reapshards_config_t shards;
    char err [768];
    if (ep_shardset_configure (&shards, &config->sharded, "reaper", ep_service_source_id (self->service),
                               ep_service_metrics (self->service), err, sizeof err) != 0) {
        ep_log_error ("EDGEPLANE_REAPER_STORE=etcd: %s", err);
        return -1;
    }
    self->advertise = ep_shards_advertise (config->sharded.advertise, zsock_last_endpoint (self->router));
    self->prefix = strdup (shards.prefix);
    self->adopt = ep_adopt_new (&(ep_adopt_config_t) {
        .service = "reaper", .metrics = ep_service_metrics (self->service),
        .valid = s_loaded_valid, .arg = self, .destructor = (czmq_destructor *) s_loaded_destroy });
    self->echoes = zlistx_new ();
    zlistx_set_destructor (self->echoes, (czmq_destructor *) zstr_free);
    self->published = zhashx_new ();
    zhashx_set_destructor (self->published, (czmq_destructor *) zstr_free);
    shards.fn = s_on_shards;
    shards.arg = self;
    self->shards = reapshards_new (&shards, err, sizeof err);
    if (!self->shards) {
        ep_log_error ("EDGEPLANE_REAPER_STORE=etcd: %s", err);
        return -1;
    }
    self->set = reapshards_set (self->shards);
    reapbatch_config_t batch;
    reapshards_batch_config (self->shards, &batch);
    self->batch = reapbatch_new (&batch);
    sessiondb_set_journal (reaper_db (self->reaper), reapbatch_journal, self->batch);
    ep_shardset_start (self->set, self->service, self->advertise);
    return 0;
}

void
reapsvc_close_shards (reapsvc_t *self)
{
    reapshards_destroy (&self->shards);
    self->set = NULL;
    if (self->reaper)
        sessiondb_set_journal (reaper_db (self->reaper), NULL, NULL);
    reapbatch_destroy (&self->batch);
    ep_adopt_destroy (&self->adopt);
    zlistx_destroy (&self->echoes);
    zhashx_destroy (&self->published);
    free (self->advertise);
    self->advertise = NULL;
    free (self->prefix);
    self->prefix = NULL;
}
