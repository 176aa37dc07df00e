/*  ep_shardset.c: a sharded service's shards, read and adopted (ep_shardset.h). */
#include "ep_shardset.h"
#include "ep_log.h"

#define RELOAD_MS       500         //  a shard whose read failed is read again after this
#define MAX_KEY         400         //  a shard's key prefix, at most

//  A request in flight: what it was for, and under which ownership.
typedef struct {
    ep_shardset_t *self;        //  whose
    int shard;                  //  the shard read, or -1 (a transaction)
    int64_t revision;           //  the ownership it was made under
    ep_shardset_txn_fn *fn;     //  a transaction's callback
    void *arg;                  //  its argument
    int *shards;                //  a transaction's shards, in its compares' order
    int64_t *revisions;         //  the create revision each was fenced under
    int nshards;                //  how many
} s_ctx_t;

struct _ep_shardset_t {
    ep_shardset_config_t config;    //  as given (strings copied below)
    char *prefix;               //  EDGEPLANE_ETCD_PREFIX
    char *service;              //  whose shards
    ep_shards_t *shards;        //  ownership (owns the etcd client)
    int64_t *loaded;            //  per shard: the revision it was read under, 0 (owns the block)
    int64_t *adopted;           //  per shard: the revision the service adopted it under, 0
    int64_t *reload_at;         //  per shard: read again at (mono ms), 0
    ep_series_t *owned;         //  edgeplane_<service>_shards_owned, or NULL
};

static s_ctx_t *
s_ctx_new (ep_shardset_t *self, int shard, int64_t revision)
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
s_news (ep_shardset_t *self, ep_shardset_event_t event, int shard, int64_t revision, const char *why)
{
    ep_shardset_news_t news = { .event = event, .shard = shard, .revision = revision, .why = why };
    self->config.fn (self->config.arg, &news);
}

//  ---------------------------------------------------------------------
//  Reading a shard

static void
s_on_read (void *arg, const ep_etcd_reply_t *reply, const char *error)
{
    s_ctx_t *ctx = (s_ctx_t *) arg;
    ep_shardset_t *self = ctx->self;
    int shard = ctx->shard;
    //  Lost or taken again meanwhile: this read is of no use.
    if (ep_shards_held (self->shards, shard) != ctx->revision || self->loaded [shard]) {
        s_ctx_destroy (&ctx);
        return;
    }
    if (!reply || reply->code) {
        ep_log_warn ("%s: cannot read shard %d: %s; again in %d ms", self->service, shard,
                     reply? reply->error: error, RELOAD_MS);
        self->reload_at [shard] = ep_mono_ms () + RELOAD_MS;
        s_ctx_destroy (&ctx);
        return;
    }
    self->loaded [shard] = ctx->revision;
    ep_shardset_news_t news = { .event = EP_SHARDSET_LOADED, .shard = shard, .revision = ctx->revision,
                                .kvs = reply->kvs, .nkvs = reply->nkvs };
    self->config.fn (self->config.arg, &news);
    s_ctx_destroy (&ctx);
}

static void
s_read_shard (ep_shardset_t *self, int shard)
{
    self->reload_at [shard] = 0;
    char prefix [MAX_KEY];
    uint8_t end [MAX_KEY];
    ep_shardset_shard_prefix (self, shard, prefix, sizeof prefix);
    ep_etcd_range_t range = { .key = ep_etcd_str (prefix),
                              .range_end = ep_etcd_prefix_end (ep_etcd_str (prefix), end, sizeof end) };
    s_ctx_t *ctx = s_ctx_new (self, shard, ep_shards_held (self->shards, shard));
    if (ep_etcd_range (ep_shards_etcd (self->shards), &range, s_on_read, ctx) != 0) {
        s_ctx_destroy (&ctx);
        self->reload_at [shard] = ep_mono_ms () + RELOAD_MS;
    }
}

static void
s_on_shards (void *arg, ep_shards_event_t event, int shard, int64_t create_revision, const char *why)
{
    ep_shardset_t *self = (ep_shardset_t *) arg;
    if (event == EP_SHARDS_FAILED) {
        s_news (self, EP_SHARDSET_FAILED, -1, 0, why);
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
    s_news (self, EP_SHARDSET_DROPPED, shard, create_revision, why);
}

void
ep_shardset_reread (ep_shardset_t *self, int shard, int64_t revision, const char *why)
{
    if (ep_shards_held (self->shards, shard) != revision)
        return;                 //  lost meanwhile: its DROPPED came already
    self->loaded [shard] = self->adopted [shard] = 0;
    s_news (self, EP_SHARDSET_DROPPED, shard, revision, why);
    s_read_shard (self, shard);
}

//  ---------------------------------------------------------------------
//  Transactions

static void
s_on_txn (void *arg, const ep_etcd_reply_t *reply, const char *error)
{
    s_ctx_t *ctx = (s_ctx_t *) arg;
    ep_shardset_outcome_t outcome = { reply, error, reply && !reply->code && !reply->succeeded,
                                      ctx->shards, ctx->revisions, ctx->nshards };
    if (outcome.fenced)
        ep_shards_fence_check_all (ctx->self->shards, ctx->shards, ctx->revisions, ctx->nshards, reply);
    ctx->fn (ctx->arg, &outcome);
    s_ctx_destroy (&ctx);
}

int
ep_shardset_txn (ep_shardset_t *self, const int *shards, int nshards, const ep_etcd_op_t *ops,
                 size_t nops, ep_shardset_txn_fn *fn, void *arg, char *err, size_t errlen)
{
    size_t n = (size_t) nshards + 1;
    ep_etcd_compare_t *compares = (ep_etcd_compare_t *) zmalloc (sizeof (ep_etcd_compare_t) * n);
    ep_etcd_op_t *reads = (ep_etcd_op_t *) zmalloc (sizeof (ep_etcd_op_t) * n);
    s_ctx_t *ctx = s_ctx_new (self, -1, 0);
    ctx->shards = (int *) zmalloc (sizeof (int) * n);
    ctx->revisions = (int64_t *) zmalloc (sizeof (int64_t) * n);
    int rc = -1;
    if (ep_shards_fence_all (self->shards, shards, nshards, compares, reads, ctx->revisions) != 0)
        snprintf (err, errlen, "a shard of the batch is no longer this instance's");
    else {
        memcpy (ctx->shards, shards, sizeof (int) * (size_t) nshards);
        ctx->nshards = nshards;
        ctx->fn = fn;
        ctx->arg = arg;
        ep_etcd_txn_t txn = { compares, (size_t) nshards, (ep_etcd_op_t *) ops, nops, reads,
                              (size_t) nshards };
        rc = ep_etcd_txn (ep_shards_etcd (self->shards), &txn, s_on_txn, ctx, err, errlen);
    }
    if (rc != 0)
        s_ctx_destroy (&ctx);
    free (reads);
    free (compares);
    return rc;
}

//  ---------------------------------------------------------------------
//  On the bus

int
ep_shardset_beacon (ep_shardset_t *self, ep_publisher_t *publisher, const char *id,
                    const char *address, int64_t interval_ms)
{
    int count = self->config.count, owned = 0;
    uint32_t *shards = (uint32_t *) zmalloc (sizeof (uint32_t) * (size_t) count);
    int64_t *revisions = (int64_t *) zmalloc (sizeof (int64_t) * (size_t) count);
    for (int s = 0; s < count; s++)
        if ((revisions [owned] = ep_shardset_revision (self, s)) > 0)
            shards [owned++] = (uint32_t) s;
    Ep__ShardBeacon beacon = EP__SHARD_BEACON__INIT;
    beacon.service = self->service;
    beacon.instance_id = (char *) id;
    beacon.address = (char *) address;
    beacon.has_shard_count = beacon.has_interval_ms = true;
    beacon.shard_count = (uint32_t) count;
    beacon.interval_ms = interval_ms;
    beacon.n_shards = beacon.n_owner_revisions = (size_t) owned;
    beacon.shards = shards;
    beacon.owner_revisions = revisions;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_SHARD_BEACON;
    event.shard_beacon = &beacon;
    ep_publisher_send (publisher, "cluster.beacon", &event);
    if (self->owned)
        ep_series_set (self->owned, (double) owned);
    free (shards);
    free (revisions);
    return owned;
}

void
ep_shardset_event (ep_shardset_t *self, ep_publisher_t *publisher, const char *topic,
                   const char *id, int shard, int64_t revision, const char *why)
{
    Ep__ShardEvent body = EP__SHARD_EVENT__INIT;
    body.service = self->service;
    body.instance_id = (char *) id;
    body.has_shard = body.has_owner_revision = true;
    body.shard = (uint32_t) shard;
    body.owner_revision = revision;
    body.reason = (char *) why;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_SHARD;
    event.shard = &body;
    ep_publisher_send (publisher, topic, &event);
}

bool
ep_shardset_fence_command (ep_shardset_t *self, Ep__Event *event)
{
    if (event->body_case != EP__EVENT__BODY_COMMAND || !event->command->router_id)
        return true;
    Ep__Command *command = event->command;
    int shard = ep_shardset_shard_of (self, command->router_id);
    int64_t revision = ep_shardset_revision (self, shard);
    if (!revision)
        return false;
    free (command->shard_service);
    command->shard_service = strdup (self->service);    //  freed with the event
    command->has_shard = command->has_owner_revision = true;
    command->shard = (uint32_t) shard;
    command->owner_revision = revision;
    return true;
}

//  ---------------------------------------------------------------------
//  Options

void
ep_shardset_opts (ep_shardset_opts_t *values, const char *env, const char *store_help, ep_opt_t *opts)
{
    static const char *stores [] = { "sqlite", "etcd", NULL };
    snprintf (values->envs [0], sizeof values->envs [0], "%sSTORE", env);
    snprintf (values->envs [1], sizeof values->envs [1], "%sLEASE_TTL", env);
    snprintf (values->envs [2], sizeof values->envs [2], "%sADVERTISE", env);
    ep_opt_t own [] = {
        { .name = "store", .env = values->envs [0], .def = "sqlite", .type = EP_OPT_ENUM,
          .words = stores, .str = &values->store, .help = store_help },
        { .name = "shards", .env = "EDGEPLANE_SHARDS", .def = "64", .type = EP_OPT_INT,
          .num = &values->shards, .min = 1, .max = EP_SHARD_MAX_COUNT,
          .help = "etcd store: routers are spread over this many shards (the same on every instance)." },
        { .name = "lease-ttl", .env = values->envs [1], .def = "10s",
          .type = EP_OPT_DURATION, .num = &values->lease_ttl, .min = 2000, .max = 600000,
          .help = "etcd store: the shard ownership lease; a lost instance's shards move after it." },
        { .name = "advertise", .env = values->envs [2], .type = EP_OPT_STRING,
          .str = &values->advertise, .def_help = "the bound endpoint, with this host's name for *",
          .help = "etcd store: the API endpoint the watchdogs reach this instance at." },
    };
    memcpy (opts, own, sizeof own);
    ep_etcd_opts (&values->etcd, opts + EP_COUNT (own));
}

int
ep_shardset_configure (ep_shardset_config_t *config, const ep_shardset_opts_t *opts, const char *service,
                       const char *id, ep_metrics_t *metrics, char *err, size_t errlen)
{
    *config = (ep_shardset_config_t) {
        .prefix = opts->etcd.prefix? opts->etcd.prefix: "/edgeplane/", .id = id,
        .count = (int) opts->shards, .ttl_ms = opts->lease_ttl, .metrics = metrics, .service = service };
    if (ep_etcd_settings_config (&opts->etcd, &config->etcd, err, errlen) != 0)
        return -1;
    config->etcd.timeout_ms = 3000;
    config->etcd.watch_idle_ms = 10000;
    return 0;
}

void
ep_shardset_start (ep_shardset_t *self, ep_service_t *service, const char *advertise)
{
    ep_service_fds_t fds = ep_shardset_fds (self);
    ep_service_add_fds (service, &fds);
    ep_log_info ("%s: etcd mode, %d shards, lease TTL %lld ms, advertised as %s", self->service,
                 self->config.count, (long long) self->config.ttl_ms, advertise);
}

bool
ep_shardset_opts_etcd (const ep_shardset_opts_t *values)
{
    return values->store && streq (values->store, "etcd");
}

//  ---------------------------------------------------------------------
//  Life cycle and the loop

void
ep_shardset_destroy (ep_shardset_t **self_p)
{
    ep_shardset_t *self = *self_p;
    if (self) {
        ep_shards_destroy (&self->shards);      //  revokes the lease
        zstr_free (&self->prefix);
        zstr_free (&self->service);
        free (self->loaded);
        free (self);
        *self_p = NULL;
    }
}

ep_shardset_t *
ep_shardset_new (const ep_shardset_config_t *config, char *err, size_t errlen)
{
    EP_ASSERT (config->prefix && config->id && config->service && config->count > 0 && config->fn);
    ep_shardset_t *self = (ep_shardset_t *) zmalloc (sizeof (ep_shardset_t));
    self->config = *config;
    self->prefix = strdup (config->prefix);
    self->service = strdup (config->service);
    self->config.prefix = self->prefix;
    self->config.id = NULL;     //  ep_shards keeps it
    self->config.service = self->service;
    //  One block for the three per-shard arrays.
    size_t count = (size_t) config->count;
    self->loaded = (int64_t *) zmalloc (sizeof (int64_t) * count * 3);
    self->adopted = self->loaded + count;
    self->reload_at = self->adopted + count;
    char *shards_prefix = zsys_sprintf ("%sshards/", config->prefix);
    ep_shards_config_t shards = { .etcd = config->etcd, .prefix = shards_prefix,
                                  .service = config->service, .id = config->id,
                                  .count = config->count, .ttl_ms = config->ttl_ms,
                                  .metrics = config->metrics, .fn = s_on_shards, .arg = self };
    self->shards = ep_shards_new (&shards, err, errlen);
    zstr_free (&shards_prefix);
    if (self->shards && config->metrics) {
        char *name = zsys_sprintf ("edgeplane_%s_shards_owned", config->service);
        self->owned = ep_gauge_series (ep_metrics_gauge (config->metrics, name,
            "Shards this instance owns and has read (the etcd mode).", 0, NULL), NULL);
        zstr_free (&name);
    }
    if (self->shards)
        return self;
    ep_shardset_destroy (&self);
    return NULL;
}

static int
s_fill (void *arg, zmq_pollitem_t *items, int max)
{
    return ep_shards_pollitems (((ep_shardset_t *) arg)->shards, items, max);
}

static long
s_due (void *arg)
{
    ep_shardset_t *self = (ep_shardset_t *) arg;
    long timeout = ep_shards_timeout (self->shards);
    int64_t now = ep_mono_ms ();
    for (int s = 0; s < self->config.count; s++)
        if (self->reload_at [s]) {
            long due = (long) (self->reload_at [s] > now? self->reload_at [s] - now: 0);
            if (timeout < 0 || due < timeout)
                timeout = due;
        }
    long due = self->config.due? self->config.due (self->config.arg): -1;
    if (due >= 0 && (timeout < 0 || due < timeout))
        timeout = due;
    return timeout;
}

static void
s_dispatch (void *arg, zmq_pollitem_t *items, int nitems)
{
    ep_shardset_t *self = (ep_shardset_t *) arg;
    ep_shards_dispatch (self->shards, items, nitems);
    int64_t now = ep_mono_ms ();
    for (int s = 0; s < self->config.count; s++)
        if (self->reload_at [s] && now >= self->reload_at [s] && ep_shards_held (self->shards, s))
            s_read_shard (self, s);
    if (self->config.tick)
        self->config.tick (self->config.arg);
}

ep_service_fds_t
ep_shardset_fds (ep_shardset_t *self)
{
    return (ep_service_fds_t) { .fill = s_fill, .due = s_due, .dispatch = s_dispatch, .arg = self };
}

ep_shards_t *
ep_shardset_shards (ep_shardset_t *self)
{
    return self->shards;
}

char *
ep_shardset_shard_prefix (ep_shardset_t *self, int shard, char *buf, size_t size)
{
    snprintf (buf, size, "%s%s/%05d/", self->prefix, self->service, shard);
    return buf;
}

int
ep_shardset_shard_of (ep_shardset_t *self, const char *router_id)
{
    return ep_shard_of (router_id, self->config.count);
}

int64_t
ep_shardset_revision (ep_shardset_t *self, int shard)
{
    if (shard < 0 || shard >= self->config.count)
        return 0;
    int64_t held = ep_shards_held (self->shards, shard);
    return held && held == self->adopted [shard]? held: 0;
}

int64_t
ep_shardset_adopted (ep_shardset_t *self, int shard)
{
    return shard >= 0 && shard < self->config.count? self->adopted [shard]: 0;
}

bool
ep_shardset_loaded (ep_shardset_t *self, int shard, int64_t revision)
{
    return shard >= 0 && shard < self->config.count && revision && self->loaded [shard] == revision
        && ep_shards_held (self->shards, shard) == revision;
}

bool
ep_shardset_adopt_shard (ep_shardset_t *self, int shard, int64_t revision)
{
    if (!ep_shardset_loaded (self, shard, revision))
        return false;
    self->adopted [shard] = revision;
    return true;
}

bool
ep_shardset_ready (ep_shardset_t *self, const char *router_id)
{
    return ep_shardset_revision (self, ep_shardset_shard_of (self, router_id)) > 0;
}

const char *
ep_shardset_owner (ep_shardset_t *self, const char *router_id)
{
    const char *owner = ep_shards_owner_id (self->shards, ep_shardset_shard_of (self, router_id));
    return owner? owner: "";
}

int
ep_shardset_owned (ep_shardset_t *self)
{
    int count = 0;
    for (int s = 0; s < self->config.count; s++)
        count += ep_shardset_revision (self, s) > 0;
    return count;
}

bool
ep_shardset_keeps (ep_shardset_t *self, const char *router_id, int adopting)
{
    return ep_shardset_ready (self, router_id) || ep_shardset_shard_of (self, router_id) == adopting;
}

bool
ep_shardset_news_loaded (const ep_shardset_news_t *news, ep_adopt_t *adopt, bool *failed)
{
    if (news->event == EP_SHARDSET_FAILED) {
        ep_log_error ("%s", news->why);
        *failed = true;
        return false;
    }
    if (news->event == EP_SHARDSET_DROPPED) {
        ep_adopt_dropped (adopt, news->shard, news->revision, news->why);
        return false;
    }
    return true;
}
