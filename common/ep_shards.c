/*  ep_shards.c: shard membership on etcd (see ep_shards.h, docs/shards.md). */
#include "ep_shards.h"
#include "ep_log.h"

//  The key prefix when the caller names none.
#define DEFAULT_PREFIX "/edgeplane/shards/"
//  A start-up step that failed (etcd unreachable, no leader) is sent again after.
#define RETRY_MS 500
//  Reads in a row that must disagree with the view before it is read again:
//  one alone may only have crossed an event still on its way.
#define AUDIT_STRIKES 2
//  Longest key prefix accepted (keys add the service and a few words).
#define MAX_PREFIX 200
//  Room for any key built here.
#define MAX_KEY 320

//  Where an instance is: each start-up step waits for its answer.
typedef enum {
    S_COUNT,                    //  the count key: made, or compared
    S_GRANT,                    //  a lease
    S_MEMBER,                   //  the member key under it
    S_LOAD,                     //  a read of the service's keys, then the watch
    S_RUN,                      //  watching and balancing
    S_FAILED                    //  refused (another shard count): the caller exits
} s_state_t;

typedef struct _s_ctx_t s_ctx_t;

//  One request in flight: answers to a request sent under an earlier lease
//  are dropped (the generation moved on).
struct _s_ctx_t {
    ep_shards_t *self;          //  whose
    uint64_t generation;        //  self->generation when sent
    int shard;                  //  the shard acted on, -1 for other requests
    ep_shard_verb_t verb;       //  the action, for a shard
    int64_t sent_at;            //  when sent (ms, monotonic)
    s_ctx_t *prev, *next;       //  the list of requests in flight
};

struct _ep_shards_t {
    ep_shards_config_t config;  //  as given (its strings copied below)
    char *prefix;               //  key prefix
    char *service;              //  whose shards
    char *id;                   //  this instance
    ep_etcd_t *etcd;            //  the client (owned)
    ep_shard_t *view;           //  the shards as the watch tells, NULL before a lease
    s_state_t state;            //  start-up step, or running
    bool busy;                  //  the step's request is in flight
    int64_t retry_at;           //  the step is sent at (ms), after a failure
    uint64_t generation;        //  +1 per lease lost
    int64_t lease;              //  the lease held, 0: none
    int64_t ttl_ms;             //  its TTL as granted (ms)
    int64_t margin_ms;          //  stop acting at TTL minus this
    int64_t alive_sent;         //  when the last keepalive that succeeded was sent (ms)
    int64_t keepalive_at;       //  next keepalive due (ms)
    bool keepalive_busy;        //  one in flight
    ep_etcd_watch_t *watch;     //  on the service's prefix
    bool dirty;                 //  inputs since the last decision
    int64_t *held;              //  per shard: the create revision held under, 0
    char **owner_keys;          //  per shard: its owner key
    char count_key [MAX_KEY];   //  <prefix>count
    char service_prefix [MAX_KEY];  //  <prefix><service>/
    char members_prefix [MAX_KEY];  //  <prefix><service>/members/
    char owners_prefix [MAX_KEY];   //  <prefix><service>/owners/
    char member_key [MAX_KEY];  //  this instance's member key
    uint8_t prefix_end [MAX_KEY];   //  range end of service_prefix
    ep_etcd_bytes_t watch_end;  //  the same as bytes
    s_ctx_t *ctxs;              //  requests in flight
    uint64_t handovers;         //  shards taken from an earlier owner
    uint64_t fenced;            //  writes refused by the fence
    ep_series_t *handovers_series;  //  edgeplane_shard_handovers_total{service}, or NULL
    ep_series_t *fenced_series;     //  edgeplane_shard_fenced_total{service}, or NULL
    ep_series_t *owned_series;      //  edgeplane_shards_owned{service}, or NULL
    ep_series_t *resyncs_series;    //  edgeplane_shard_resyncs_total{service}, or NULL
    bool revoked;               //  the lease revoked at destroy
    zhashx_t *names;            //  member lease (hex) -> its id, for ep_shards_owner_id
    int64_t audit_at;           //  the next read that checks the view (ms)
    bool audit_busy;            //  that read is in flight
    int disagreed;              //  reads in a row that disagreed with the view
    uint64_t resyncs;           //  views read again because they disagreed with etcd
};

//  The start-up steps by name, for logs.
static const char *s_state_names [] = { "writing the shard count", "granting a lease",
    "writing the member key", "reading the shards", "running", "failed" };

static void s_on_step (void *arg, const ep_etcd_reply_t *reply, const char *error);
static void s_on_watch (void *arg, const ep_etcd_reply_t *reply, const char *error);

//  ---------------------------------------------------------------------
//  Requests in flight

static s_ctx_t *
s_ctx_new (ep_shards_t *self, int shard, ep_shard_verb_t verb)
{
    s_ctx_t *ctx = (s_ctx_t *) zmalloc (sizeof (s_ctx_t));
    *ctx = (s_ctx_t) { self, self->generation, shard, verb, ep_mono_ms (), NULL, self->ctxs };
    if (self->ctxs)
        self->ctxs->prev = ctx;
    self->ctxs = ctx;
    return ctx;
}

//  Unlinks and frees ctx; returns a copy, and whether it is of this lease.
static bool
s_ctx_end (s_ctx_t *ctx, s_ctx_t *copy)
{
    ep_shards_t *self = ctx->self;
    if (ctx->prev)
        ctx->prev->next = ctx->next;
    else
        self->ctxs = ctx->next;
    if (ctx->next)
        ctx->next->prev = ctx->prev;
    *copy = *ctx;
    free (ctx);
    return copy->generation == self->generation;
}

static void
s_on_revoked (void *arg, const ep_etcd_reply_t *reply, const char *error)
{
    (void) reply;
    (void) error;
    s_ctx_t copy;
    if (s_ctx_end ((s_ctx_t *) arg, &copy))
        copy.self->revoked = true;
}

static void
s_silent (void *arg, ep_shards_event_t event, int shard, int64_t create_revision, const char *why)
{
    (void) arg;
    (void) event;
    (void) shard;
    (void) create_revision;
    (void) why;
}

static void
s_ignore (void *arg, const ep_etcd_reply_t *reply, const char *error)
{
    (void) reply;
    (void) error;
    s_ctx_t copy;
    s_ctx_end ((s_ctx_t *) arg, &copy);
}

//  ---------------------------------------------------------------------
//  Ownership as the service sees it

static void
s_set_owned_gauge (ep_shards_t *self)
{
    if (self->owned_series)
        ep_series_set (self->owned_series, ep_shards_owned (self));
}

//  This instance stops acting on shard, and tells the service.
static void
s_release (ep_shards_t *self, int shard, const char *why)
{
    int64_t was = self->held [shard];
    self->held [shard] = 0;
    ep_log_info ("shards: %s released shard %d (created at revision %lld): %s",
                 self->service, shard, (long long) was, why);
    self->config.fn (self->config.arg, EP_SHARDS_RELEASED, shard, was, why);
}

//  Tells the service of every shard the view gave or took since the last
//  call: a shard taken away is announced before anything else is done.
static void
s_reconcile (ep_shards_t *self, const char *why)
{
    if (!self->view)
        return;
    for (int s = 0; s < self->config.count; s++) {
        int64_t mine = ep_shard_mine (self->view, s);
        if (mine == self->held [s])
            continue;
        if (self->held [s])
            s_release (self, s, why);
        if (mine) {
            self->held [s] = mine;
            bool handover = ep_shard_had_owner (self->view, s);
            if (handover) {
                self->handovers++;
                if (self->handovers_series)
                    ep_series_add (self->handovers_series, 1);
            }
            ep_log_info ("shards: %s acquired shard %d (created at revision %lld)%s",
                         self->service, s, (long long) mine, handover? ", taken over": "");
            self->config.fn (self->config.arg, EP_SHARDS_ACQUIRED, s, mine, NULL);
        }
    }
    s_set_owned_gauge (self);
}

//  The lease is gone, or may be: stop acting on every shard and start over
//  under a new lease.
static void
s_lose_lease (ep_shards_t *self, const char *why)
{
    ep_log_warn ("shards: %s lease %llx lost: %s; acting on no shard until a new lease",
                 self->service, (unsigned long long) self->lease, why);
    for (int s = 0; s < self->config.count; s++)
        if (self->held [s])
            s_release (self, s, why);
    s_set_owned_gauge (self);
    ep_etcd_watch_cancel (&self->watch);
    //  Revoked, if etcd still has it, so the others take its shards now.
    if (self->lease)
        ep_etcd_lease_revoke (self->etcd, self->lease, s_ignore, s_ctx_new (self, -1, 0));
    self->generation++;
    self->lease = 0;
    ep_shard_destroy (&self->view);
    self->state = S_GRANT;
    self->busy = false;
    self->keepalive_busy = false;
    self->audit_busy = false;
    self->retry_at = 0;
}

//  ---------------------------------------------------------------------
//  Start-up steps

static void
s_fail (ep_shards_t *self, const char *why)
{
    ep_log_error ("shards: %s", why);
    self->state = S_FAILED;
    self->config.fn (self->config.arg, EP_SHARDS_FAILED, -1, 0, why);
}

static void
s_send_step (ep_shards_t *self)
{
    s_ctx_t *ctx = s_ctx_new (self, -1, 0);
    char err [256] = "";
    int rc = -1;
    if (self->state == S_COUNT) {
        char count [16];
        snprintf (count, sizeof count, "%d", self->config.count);
        ep_etcd_compare_t absent = { .key = ep_etcd_str (self->count_key), .target = EP_ETCD_CREATE,
                                     .result = EP_ETCD_EQUAL, .number = 0 };
        ep_etcd_op_t put = { .kind = EP_ETCD_PUT, .u.put = { .key = ep_etcd_str (self->count_key),
                                                             .value = ep_etcd_str (count) } };
        ep_etcd_op_t read = { .kind = EP_ETCD_RANGE, .u.range = { .key = ep_etcd_str (self->count_key) } };
        ep_etcd_txn_t txn = { &absent, 1, &put, 1, &read, 1 };
        rc = ep_etcd_txn (self->etcd, &txn, s_on_step, ctx, err, sizeof err);
    }
    else
    if (self->state == S_GRANT)
        rc = ep_etcd_lease_grant (self->etcd, (self->config.ttl_ms + 999) / 1000, s_on_step, ctx);
    else
    if (self->state == S_MEMBER) {
        ep_etcd_put_t put = { .key = ep_etcd_str (self->member_key), .value = ep_etcd_str (self->id),
                              .lease = self->lease };
        rc = ep_etcd_put (self->etcd, &put, s_on_step, ctx);
    }
    else
    if (self->state == S_LOAD) {
        ep_etcd_range_t range = { .key = ep_etcd_str (self->service_prefix), .range_end = self->watch_end };
        rc = ep_etcd_range (self->etcd, &range, s_on_step, ctx);
    }
    if (rc == 0)
        self->busy = true;
    else {
        s_ctx_t copy;
        s_ctx_end (ctx, &copy);
        s_fail (self, err [0]? err: "a request could not be encoded");
    }
}

static void
s_on_count (ep_shards_t *self, const ep_etcd_reply_t *reply)
{
    if (reply->succeeded) {
        ep_log_info ("shards: the shard count is %d (written now, in %s)", self->config.count,
                     self->count_key);
        self->state = S_GRANT;
        return;
    }
    const ep_etcd_reply_t *read = reply->nresponses? &reply->responses [0]: NULL;
    long long theirs = -1;
    if (read && read->nkvs) {
        char *end;
        theirs = strtoll ((const char *) read->kvs [0].value, &end, 10);
        if (*end || end == (char *) read->kvs [0].value)
            theirs = -1;
    }
    if (theirs == self->config.count) {
        self->state = S_GRANT;
        return;
    }
    char why [512];
    if (theirs < 0)
        snprintf (why, sizeof why, "the shard count in etcd (%s) is not a number; this instance "
                  "has EDGEPLANE_SHARDS=%d: repair the key or remove it", self->count_key,
                  self->config.count);
    else
        snprintf (why, sizeof why, "EDGEPLANE_SHARDS is %d here but %lld in etcd (%s), "
                  "written by the first instance: start every instance with %lld shards",
                  self->config.count, theirs, self->count_key, theirs);
    s_fail (self, why);
}

static void
s_on_grant (ep_shards_t *self, const ep_etcd_reply_t *reply, int64_t sent_at)
{
    self->lease = reply->lease_id;
    //  The TTL etcd granted (it may raise a short one), not the one asked.
    self->ttl_ms = reply->ttl * 1000;
    self->margin_ms = self->config.margin_ms? self->config.margin_ms: self->ttl_ms / 4;
    if (self->margin_ms >= self->ttl_ms)
        self->margin_ms = self->ttl_ms / 4;
    self->alive_sent = sent_at;
    self->keepalive_at = sent_at + self->ttl_ms / 3;
    snprintf (self->member_key, sizeof self->member_key, "%.290s%016llx", self->members_prefix,
              (unsigned long long) self->lease);
    self->view = ep_shard_new (self->config.count, self->lease, self->ttl_ms, ep_mono_ms ());
    ep_log_info ("shards: %s lease %llx, TTL %lld s", self->service,
                 (unsigned long long) self->lease, (long long) reply->ttl);
    self->state = S_MEMBER;
}

//  One key of the service's prefix, from the read or the watch, into view
//  (and names, the member ids, unless NULL).
static void
s_apply_kv (ep_shards_t *self, ep_shard_t *view, zhashx_t *names, const ep_etcd_kv_t *kv,
            bool is_delete, int64_t now)
{
    const char *key = (const char *) kv->key;
    size_t members = strlen (self->members_prefix), owners = strlen (self->owners_prefix);
    char *end;
    if (strncmp (key, self->members_prefix, members) == 0) {
        int64_t lease = (int64_t) strtoull (key + members, &end, 16);
        if (*end || end == key + members)
            return;
        //  A member is its lease: a key naming another is not one.
        if (is_delete) {
            ep_shard_member_delete (view, lease, now);
            if (names)
                zhashx_delete (names, key + members);
        }
        else
        if (kv->lease == lease) {
            ep_shard_member_put (view, lease, now);
            if (names)
                zhashx_update (names, key + members, kv->value);
        }
    }
    else
    if (strncmp (key, self->owners_prefix, owners) == 0) {
        long shard = strtol (key + owners, &end, 10);
        if (*end || end == key + owners || shard < 0 || shard >= self->config.count) {
            ep_log_warn ("shards: %s is not a shard of %d: ignored", key, self->config.count);
            return;
        }
        if (is_delete)
            ep_shard_owner_delete (view, (int) shard, kv->mod_revision, now);
        else
            ep_shard_owner_put (view, (int) shard, kv->lease, kv->create_revision,
                                kv->mod_revision, now);
    }
}

static void
s_on_load (ep_shards_t *self, const ep_etcd_reply_t *reply)
{
    int64_t now = ep_mono_ms ();
    //  A reload (the watch's start was compacted) starts from what etcd
    //  holds; shards held stay held unless the read says otherwise.
    ep_shard_reset (self->view, self->lease, now);
    zhashx_purge (self->names);
    for (size_t i = 0; i < reply->nkvs; i++)
        s_apply_kv (self, self->view, self->names, &reply->kvs [i], false, now);
    ep_shard_caught_up (self->view, reply->header.revision);
    self->audit_at = now + self->ttl_ms;
    self->disagreed = 0;
    ep_etcd_watch_req_t req = { .key = ep_etcd_str (self->service_prefix), .range_end = self->watch_end,
                                .start_revision = reply->header.revision + 1 };
    self->watch = ep_etcd_watch (self->etcd, &req, s_on_watch, self);
    self->state = S_RUN;
    self->dirty = true;
    s_reconcile (self, "its owner key is gone");
}

//  The answer to a start-up step.
static void
s_on_step (void *arg, const ep_etcd_reply_t *reply, const char *error)
{
    s_ctx_t ctx;
    if (!s_ctx_end ((s_ctx_t *) arg, &ctx))
        return;
    ep_shards_t *self = ctx.self;
    self->busy = false;
    if (!reply || reply->code) {
        ep_log_warn ("shards: %s: %s failed: %s; again in %d ms", self->service,
                     s_state_names [self->state], reply? reply->error: error, RETRY_MS);
        self->retry_at = ep_mono_ms () + RETRY_MS;
        return;
    }
    if (self->state == S_COUNT)
        s_on_count (self, reply);
    else
    if (self->state == S_GRANT && (reply->lease_id == 0 || reply->ttl <= 0)) {
        ep_log_warn ("shards: %s: etcd granted no lease; again in %d ms", self->service, RETRY_MS);
        self->retry_at = ep_mono_ms () + RETRY_MS;
    }
    else
    if (self->state == S_GRANT)
        s_on_grant (self, reply, ctx.sent_at);
    else
    if (self->state == S_MEMBER)
        self->state = S_LOAD;
    else
    if (self->state == S_LOAD)
        s_on_load (self, reply);
}

//  ---------------------------------------------------------------------
//  Running

//  Reads the service's keys again and watches from there (S_LOAD): what
//  the view holds is replaced by what etcd holds.
static void
s_read_again (ep_shards_t *self)
{
    ep_etcd_watch_cancel (&self->watch);
    self->state = S_LOAD;
    self->retry_at = 0;
}

static void
s_on_watch (void *arg, const ep_etcd_reply_t *reply, const char *error)
{
    ep_shards_t *self = (ep_shards_t *) arg;
    if (!reply || reply->canceled || reply->code) {
        //  Ended for good (a compacted start): read again, watch again.
        ep_log_warn ("shards: %s: the watch ended (%s); reading the shards again", self->service,
                     reply? (reply->cancel_reason? reply->cancel_reason: "canceled"): error);
        s_read_again (self);
        return;
    }
    int64_t now = ep_mono_ms ();
    for (size_t i = 0; i < reply->nevents; i++)
        s_apply_kv (self, self->view, self->names, &reply->events [i].kv,
                    reply->events [i].is_delete, now);
    ep_shard_caught_up (self->view, reply->header.revision);
    if (reply->nevents)
        s_reconcile (self, "its owner key is gone (the lease ended, or it was evicted)");
    self->dirty = true;
}

static void
s_on_keepalive (void *arg, const ep_etcd_reply_t *reply, const char *error)
{
    s_ctx_t ctx;
    if (!s_ctx_end ((s_ctx_t *) arg, &ctx))
        return;
    ep_shards_t *self = ctx.self;
    self->keepalive_busy = false;
    if (!reply || reply->code) {
        ep_log_warn ("shards: %s: keepalive of lease %llx failed: %s", self->service,
                     (unsigned long long) self->lease, reply? reply->error: error);
        return;
    }
    if (reply->ttl <= 0) {
        s_lose_lease (self, "etcd says it has expired");
        return;
    }
    if (ctx.sent_at > self->alive_sent)
        self->alive_sent = ctx.sent_at;
}

static void
s_on_action (void *arg, const ep_etcd_reply_t *reply, const char *error)
{
    s_ctx_t ctx;
    if (!s_ctx_end ((s_ctx_t *) arg, &ctx))
        return;
    ep_shards_t *self = ctx.self;
    int64_t now = ep_mono_ms ();
    if (!reply || reply->code) {
        ep_log_warn ("shards: %s: action on shard %d: %s", self->service, ctx.shard,
                     reply? reply->error: error);
        ep_shard_settled (self->view, ctx.shard, ctx.verb, false, 0, now);
    }
    else
        ep_shard_settled (self->view, ctx.shard, ctx.verb, reply->succeeded, reply->header.revision,
                          now);
    s_reconcile (self, "its owner key is gone");
    self->dirty = true;
}

static void
s_send_action (ep_shards_t *self, const ep_shard_action_t *action)
{
    const char *key = self->owner_keys [action->shard];
    bool acquire = action->verb == EP_SHARD_ACQUIRE;
    ep_etcd_compare_t compare = { .key = ep_etcd_str (key), .target = EP_ETCD_CREATE,
                                  .result = EP_ETCD_EQUAL,
                                  .number = acquire? 0: action->create_revision };
    ep_etcd_op_t op;
    if (acquire)
        op = (ep_etcd_op_t) { .kind = EP_ETCD_PUT, .u.put = { .key = ep_etcd_str (key),
                              .value = ep_etcd_str (self->id), .lease = self->lease } };
    else
        op = (ep_etcd_op_t) { .kind = EP_ETCD_DELETE, .u.del = { .key = ep_etcd_str (key) } };
    ep_etcd_txn_t txn = { &compare, 1, &op, 1, NULL, 0 };
    s_ctx_t *ctx = s_ctx_new (self, action->shard, action->verb);
    char err [256];
    if (ep_etcd_txn (self->etcd, &txn, s_on_action, ctx, err, sizeof err)) {
        s_ctx_t copy;
        s_ctx_end (ctx, &copy);
        ep_log_warn ("shards: %s: shard %d: %s", self->service, action->shard, err);
        ep_shard_settled (self->view, action->shard, action->verb, false, 0, ep_mono_ms ());
    }
}

//  The audit: every TTL the service's keys are read and compared with the
//  view. The watch is the view's only input, and a view that missed an
//  event (seen with etcd 3.4 across member failures: a member key's delete
//  never delivered, so a dead member is counted for ever and the survivors
//  stop at a fair share that leaves shards unowned) would never be mended
//  by it. A read can cross an event still on its way, so only reads that
//  disagree AUDIT_STRIKES times in a row make the view be read again.
static void
s_on_audit (void *arg, const ep_etcd_reply_t *reply, const char *error)
{
    s_ctx_t ctx;
    if (!s_ctx_end ((s_ctx_t *) arg, &ctx))
        return;
    ep_shards_t *self = ctx.self;
    self->audit_busy = false;
    int64_t now = ep_mono_ms ();
    self->audit_at = now + self->ttl_ms;
    if (self->state != S_RUN)
        return;
    if (!reply || reply->code) {
        ep_log_warn ("shards: %s: reading the shards to check the view: %s", self->service,
                     reply? reply->error: error);
        return;
    }
    ep_shard_t *read = ep_shard_new (self->config.count, self->lease, self->ttl_ms, now);
    for (size_t i = 0; i < reply->nkvs; i++)
        s_apply_kv (self, read, NULL, &reply->kvs [i], false, now);
    char why [256];
    bool agrees = ep_shard_agrees (self->view, read, why, sizeof why);
    ep_shard_destroy (&read);
    if (agrees) {
        self->disagreed = 0;
        return;
    }
    if (++self->disagreed < AUDIT_STRIKES) {
        ep_log_info ("shards: %s: the view disagrees with etcd (%s): checking again",
                     self->service, why);
        self->audit_at = now + self->ttl_ms / 3;
        return;
    }
    ep_log_warn ("shards: %s: the view disagreed with etcd on %d reads in a row (%s): the "
                 "watch missed an event; reading the shards again", self->service,
                 self->disagreed, why);
    self->resyncs++;
    if (self->resyncs_series)
        ep_series_add (self->resyncs_series, 1);
    s_read_again (self);
}

static void
s_audit (ep_shards_t *self, int64_t now)
{
    if (self->audit_busy || now < self->audit_at)
        return;
    ep_etcd_range_t range = { .key = ep_etcd_str (self->service_prefix), .range_end = self->watch_end };
    s_ctx_t *ctx = s_ctx_new (self, -1, 0);
    if (ep_etcd_range (self->etcd, &range, s_on_audit, ctx) == 0)
        self->audit_busy = true;
    else {
        s_ctx_t copy;
        s_ctx_end (ctx, &copy);
        self->audit_at = now + self->ttl_ms;
    }
}

static void
s_balance (ep_shards_t *self, int64_t now)
{
    //  On an input, or when a decision is due without one (a release
    //  once membership is stable, a hysteresis ending, a retry).
    if (!self->dirty && !ep_shard_due (self->view, now))
        return;
    self->dirty = false;
    ep_shard_action_t actions [64];
    size_t n;
    do {
        n = ep_shard_decide (self->view, now, actions, EP_COUNT (actions));
        //  Shards given up are announced before their keys are deleted.
        s_reconcile (self, "given up to balance the shards among the members");
        for (size_t i = 0; i < n; i++)
            s_send_action (self, &actions [i]);
    } while (n == EP_COUNT (actions));
}

//  Runs what is due: the lease guard, the keepalive, a start-up step, the
//  balancing.
static void
s_tick (ep_shards_t *self)
{
    if (self->state == S_FAILED)
        return;
    int64_t now = ep_mono_ms ();
    if (self->lease && !ep_shard_lease_fresh (self->alive_sent, self->ttl_ms, self->margin_ms, now)) {
        char why [160];
        snprintf (why, sizeof why, "no keepalive succeeded for %lld ms (TTL %lld ms, margin %lld ms)",
                  (long long) (now - self->alive_sent), (long long) self->ttl_ms,
                  (long long) self->margin_ms);
        s_lose_lease (self, why);
    }
    if (self->lease && !self->keepalive_busy && now >= self->keepalive_at) {
        self->keepalive_at = now + self->ttl_ms / 3;
        self->keepalive_busy = true;
        ep_etcd_lease_keepalive (self->etcd, self->lease, s_on_keepalive, s_ctx_new (self, -1, 0));
    }
    if (self->state != S_RUN && !self->busy && now >= self->retry_at)
        s_send_step (self);
    if (self->state == S_RUN) {
        s_audit (self, now);
        s_balance (self, now);
    }
}

//  ---------------------------------------------------------------------
//  The interface

static int
s_check_config (const ep_shards_config_t *config, char *err, size_t errlen)
{
    if (!config->service || !ep_id_valid (config->service))
        return ep_errorf (err, errlen, "shards: the service name must be 1 to 64 of A-Z a-z 0-9 _ -");
    if (!config->id || !ep_id_valid (config->id))
        return ep_errorf (err, errlen, "shards: the instance id must be 1 to 64 of A-Z a-z 0-9 _ -");
    if (config->count < 1 || config->count > EP_SHARD_MAX_COUNT)
        return ep_errorf (err, errlen, "shards: EDGEPLANE_SHARDS is %d: use 1 to %d",
                          config->count, EP_SHARD_MAX_COUNT);
    if (config->ttl_ms < 1000)
        return ep_errorf (err, errlen, "shards: the lease TTL must be 1 s or more");
    if (config->prefix && (strlen (config->prefix) > MAX_PREFIX || !config->prefix [0]))
        return ep_errorf (err, errlen, "shards: the key prefix must be 1 to %d bytes", MAX_PREFIX);
    EP_ASSERT (config->fn);
    return 0;
}

ep_shards_t *
ep_shards_new (const ep_shards_config_t *config, char *err, size_t errlen)
{
    if (s_check_config (config, err, errlen))
        return NULL;
    ep_etcd_t *etcd = ep_etcd_new (&config->etcd, err, errlen);
    if (!etcd)
        return NULL;
    ep_shards_t *self = (ep_shards_t *) zmalloc (sizeof (ep_shards_t));
    self->config = *config;
    self->etcd = etcd;
    self->prefix = strdup (config->prefix? config->prefix: DEFAULT_PREFIX);
    self->service = strdup (config->service);
    self->id = strdup (config->id);
    snprintf (self->count_key, MAX_KEY, "%.200scount", self->prefix);
    snprintf (self->service_prefix, MAX_KEY, "%.200s%.64s/", self->prefix, self->service);
    snprintf (self->members_prefix, MAX_KEY, "%.270smembers/", self->service_prefix);
    snprintf (self->owners_prefix, MAX_KEY, "%.270sowners/", self->service_prefix);
    self->watch_end = ep_etcd_prefix_end (ep_etcd_str (self->service_prefix), self->prefix_end,
                                          sizeof self->prefix_end);
    self->held = (int64_t *) zmalloc (sizeof (int64_t) * (size_t) config->count);
    self->names = zhashx_new ();
    zhashx_set_destructor (self->names, (czmq_destructor *) zstr_free);
    zhashx_set_duplicator (self->names, (czmq_duplicator *) strdup);
    self->owner_keys = (char **) zmalloc (sizeof (char *) * (size_t) config->count);
    for (int s = 0; s < config->count; s++) {
        char key [MAX_KEY];
        snprintf (key, sizeof key, "%.290s%05d", self->owners_prefix, s);
        self->owner_keys [s] = strdup (key);
    }
    if (config->metrics) {
        const char *labels [] = { "service" };
        const char *values [] = { self->service };
        self->handovers_series = ep_counter_series (ep_metrics_counter (config->metrics,
            "edgeplane_shard_handovers_total",
            "Shards this instance took over from an earlier owner (a lease that ended, a release).",
            1, labels), values);
        self->fenced_series = ep_counter_series (ep_metrics_counter (config->metrics,
            "edgeplane_shard_fenced_total",
            "Writes as a shard's owner refused because this instance no longer owned it.",
            1, labels), values);
        self->resyncs_series = ep_counter_series (ep_metrics_counter (config->metrics,
            "edgeplane_shard_resyncs_total",
            "Views of the shards read again because two reads in a row disagreed with them "
            "(the watch missed an event).", 1, labels), values);
        self->owned_series = ep_gauge_series (ep_metrics_gauge (config->metrics,
            "edgeplane_shards_owned", "Shards this instance owns.", 1, labels), values);
    }
    self->state = S_COUNT;
    return self;
}

void
ep_shards_destroy (ep_shards_t **self_p)
{
    if (!*self_p)
        return;
    ep_shards_t *self = *self_p;
    ep_etcd_watch_cancel (&self->watch);
    if (self->lease) {
        //  Answers still to come are dropped, and the service hears nothing.
        self->generation++;
        self->config.fn = s_silent;
        //  Sent and given a moment: the others need not wait out the TTL.
        ep_etcd_lease_revoke (self->etcd, self->lease, s_on_revoked, s_ctx_new (self, -1, 0));
        for (int64_t until = ep_mono_ms () + 500; !self->revoked && ep_mono_ms () < until; )
            ep_etcd_wait (self->etcd, 100);
    }
    ep_etcd_destroy (&self->etcd);
    while (self->ctxs) {
        s_ctx_t copy;
        s_ctx_end (self->ctxs, &copy);
    }
    for (int s = 0; s < self->config.count; s++)
        free (self->owner_keys [s]);
    free (self->owner_keys);
    zhashx_destroy (&self->names);
    free (self->held);
    ep_shard_destroy (&self->view);
    free (self->prefix);
    free (self->service);
    free (self->id);
    free (self);
    *self_p = NULL;
}

int
ep_shards_pollitems (ep_shards_t *self, zmq_pollitem_t *items, int max)
{
    return ep_etcd_pollitems (self->etcd, items, max);
}

static void
s_earliest (int64_t *at, int64_t when)
{
    if (*at < 0 || when < *at)
        *at = when;
}

long
ep_shards_timeout (ep_shards_t *self)
{
    int64_t now = ep_mono_ms ();
    long etcd = ep_etcd_timeout (self->etcd);
    int64_t at = etcd < 0? -1: now + etcd;
    if (self->state == S_FAILED)
        return etcd;
    if (self->lease) {
        s_earliest (&at, self->alive_sent + self->ttl_ms - self->margin_ms);
        if (!self->keepalive_busy)
            s_earliest (&at, self->keepalive_at);
    }
    if (self->state != S_RUN && !self->busy)
        s_earliest (&at, self->retry_at);
    if (self->state == S_RUN) {
        if (self->dirty)
            s_earliest (&at, now);
        if (!self->audit_busy)
            s_earliest (&at, self->audit_at);
        int64_t due = ep_shard_due_at (self->view);
        if (due >= 0)
            s_earliest (&at, due);
    }
    if (at < 0)
        return -1;
    return at <= now? 0: (long) (at - now);
}

void
ep_shards_dispatch (ep_shards_t *self, zmq_pollitem_t *items, int nitems)
{
    ep_etcd_dispatch (self->etcd, items, nitems);
    s_tick (self);
}

ep_etcd_t *
ep_shards_etcd (ep_shards_t *self)
{
    return self->etcd;
}

int
ep_shards_fence (ep_shards_t *self, int shard, ep_etcd_compare_t *compare,
                 ep_etcd_op_t *read, int64_t *revision)
{
    if (shard < 0 || shard >= self->config.count || !self->held [shard])
        return -1;
    const char *key = self->owner_keys [shard];
    *compare = (ep_etcd_compare_t) { .key = ep_etcd_str (key), .target = EP_ETCD_CREATE,
                                     .result = EP_ETCD_EQUAL, .number = self->held [shard] };
    *read = (ep_etcd_op_t) { .kind = EP_ETCD_RANGE, .u.range = { .key = ep_etcd_str (key) } };
    *revision = self->held [shard];
    return 0;
}

ep_shard_fence_t
ep_shards_fence_check (ep_shards_t *self, int shard, int64_t revision,
                       const ep_etcd_reply_t *reply)
{
    if (!reply || reply->code || reply->succeeded || shard < 0 || shard >= self->config.count)
        return EP_SHARD_STILL_OWNER;
    const ep_etcd_reply_t *read = reply->nresponses && reply->responses [0].kind == EP_ETCD_RANGE
                                ? &reply->responses [0]: NULL;
    const ep_etcd_kv_t *kv = read && read->nkvs? &read->kvs [0]: NULL;
    ep_shard_fence_t verdict = ep_shard_fence_verdict (self->held [shard], revision, kv != NULL,
                                                       kv? kv->create_revision: 0);
    if (verdict == EP_SHARD_STILL_OWNER)
        return verdict;
    self->fenced++;
    if (self->fenced_series)
        ep_series_add (self->fenced_series, 1);
    char why [200];
    if (kv)
        snprintf (why, sizeof why, "a write as owner of shard %d (created at revision %lld) was "
                  "refused: the shard is another owner's since revision %lld", shard,
                  (long long) revision, (long long) kv->create_revision);
    else
        snprintf (why, sizeof why, "a write as owner of shard %d (created at revision %lld) was "
                  "refused: the shard has no owner key any more", shard, (long long) revision);
    ep_log_warn ("shards: %s fenced: %s%s", self->service, why,
                 verdict == EP_SHARD_FENCED? "; dropping the shard": " (already dropped)");
    if (verdict == EP_SHARD_FENCED) {
        self->held [shard] = 0;
        if (self->view) {
            //  What the read found is the newest state of the key.
            if (kv)
                ep_shard_owner_put (self->view, shard, kv->lease, kv->create_revision,
                                    kv->mod_revision, ep_mono_ms ());
            else
                ep_shard_owner_delete (self->view, shard, reply->header.revision, ep_mono_ms ());
            self->dirty = true;
        }
        s_set_owned_gauge (self);
        self->config.fn (self->config.arg, EP_SHARDS_FENCED, shard, revision, why);
    }
    return verdict;
}

int
ep_shards_fence_all (ep_shards_t *self, const int *shards, int n, ep_etcd_compare_t *compares,
                     ep_etcd_op_t *reads, int64_t *revisions)
{
    for (int i = 0; i < n; i++)
        if (ep_shards_fence (self, shards [i], &compares [i], &reads [i], &revisions [i]) != 0)
            return -1;
    return 0;
}

void
ep_shards_fence_check_all (ep_shards_t *self, const int *shards, const int64_t *revisions, int n,
                           const ep_etcd_reply_t *reply)
{
    if (!reply || reply->code || reply->succeeded)
        return;
    for (int i = 0; i < n && (size_t) i < reply->nresponses; i++) {
        //  The failure branch's reads, one owner key each, in fence order.
        ep_etcd_reply_t one = *reply;
        one.responses = &reply->responses [i];
        one.nresponses = 1;
        ep_shards_fence_check (self, shards [i], revisions [i], &one);
    }
}

int64_t
ep_shards_held (ep_shards_t *self, int shard)
{
    return shard >= 0 && shard < self->config.count? self->held [shard]: 0;
}

const char *
ep_shards_owner_id (ep_shards_t *self, int shard)
{
    if (!self->view || shard < 0 || shard >= self->config.count)
        return NULL;
    int64_t create;
    int64_t lease = ep_shard_owner (self->view, shard, &create);
    if (lease <= 0)
        return NULL;
    char hex [17];
    snprintf (hex, sizeof hex, "%016llx", (unsigned long long) lease);
    return (const char *) zhashx_lookup (self->names, hex);
}

int
ep_shards_owned (ep_shards_t *self)
{
    int n = 0;
    for (int s = 0; s < self->config.count; s++)
        n += self->held [s] != 0;
    return n;
}

int
ep_shards_members (ep_shards_t *self)
{
    return self->view? ep_shard_members (self->view): 0;
}

int64_t
ep_shards_lease (ep_shards_t *self)
{
    return self->lease;
}

uint64_t
ep_shards_handovers (ep_shards_t *self)
{
    return self->handovers;
}

uint64_t
ep_shards_resyncs (ep_shards_t *self)
{
    return self->resyncs;
}

ep_shard_t *
ep_shards_view (ep_shards_t *self)
{
    return self->view;
}

uint64_t
ep_shards_fenced (ep_shards_t *self)
{
    return self->fenced;
}

char *
ep_shards_advertise (const char *configured, const char *bound)
{
    if (configured && *configured)
        return strdup (configured);
    const char *port = bound? strrchr (bound, ':'): NULL;
    if (!port)
        return strdup (bound? bound: "");
    if (strncmp (bound, "tcp://0.0.0.0:", 14) && strncmp (bound, "tcp://[::]:", 11)
    &&  strncmp (bound, "tcp://*:", 8))
        return strdup (bound);
    char host [256] = "localhost";
    gethostname (host, sizeof host - 1);
    return zsys_sprintf ("tcp://%s%s", host, port);
}
