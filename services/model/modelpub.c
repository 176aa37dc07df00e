/*  modelpub.c: which model instance publishes (see modelpub.h). */
#include "modelpub.h"
#include "ep_log.h"
#include "model.pb-c.h"

#define KEY_PUBLISHER   "publisher"     //  the election key, under the holder's lease
#define KEY_CHECKPOINT  "checkpoint"    //  "revision=N generation=G": published through N
#define KEY_CHANGES     "changes/"      //  the change records (modelstore_etcd)
#define KEY_STATE       "state"         //  the model's state (modelstore_etcd)
#define CHECKPOINT_MS   1000            //  how often the checkpoint is written
#define RETRY_MS        1000            //  a failed grant or campaign is tried again after
#define PAGE            500             //  change records per range page

typedef enum { CALL_GRANT, CALL_KEEPALIVE, CALL_CAMPAIGN, CALL_RANGE, CALL_CHECKPOINT } s_kind_t;

//  A request in flight: what it was for, as things stood when it was sent.
typedef struct {
    modelpub_t *self;           //  the publisher
    s_kind_t kind;              //  what it is
    uint64_t term;              //  self->term when sent: a later term ignores it
    int64_t sent_ms;            //  when it was sent
    uint64_t value;             //  checkpoint: the revision written
} s_call_t;

struct _modelpub_t {
    modelpub_config_t config;   //  as given (strings copied below)
    char *prefix;               //  the prefix
    char *name;                 //  this instance
    uint64_t term;              //  +1 at each grant: replies of earlier ones are stale
    int64_t lease_id;           //  this instance's lease (0: none yet)
    int64_t ttl_ms;             //  its TTL as etcd granted it
    int64_t last_ok_ms;         //  sending of the last successful grant or keepalive
    int64_t next_keepalive_ms;  //  when the next keepalive goes
    bool keepalive_out;         //  a keepalive is in flight
    bool granting;              //  a grant is in flight
    bool campaigning;           //  a campaign is in flight
    int64_t retry_ms;           //  grant or campaign again at (0: not due)
    bool publishing;            //  holds the key
    ep_etcd_watch_t *watch;     //  the key (not publishing) or the records (publishing)
    char generation [33];       //  of the last revision published
    uint64_t published;         //  the last revision published (or resumed after)
    uint64_t checkpointed;      //  the checkpoint's revision
    bool checkpoint_out;        //  a checkpoint write is in flight
    int64_t next_checkpoint_ms; //  when the next is due
    char *range_from;           //  the catch-up range's next key (NULL: none running)
    int64_t range_rev;          //  pinned at this etcd revision
    bool revoked;               //  the lease revoked at stop
    bool unanchored;            //  elected without a checkpoint: publishes once one is written
};

static void s_grant (modelpub_t *self, int64_t now);
static void s_campaign (modelpub_t *self, int64_t now);
static void s_checkpoint (modelpub_t *self, int64_t now);

static s_call_t *
s_call (modelpub_t *self, s_kind_t kind, int64_t now)
{
    s_call_t *call = (s_call_t *) zmalloc (sizeof (s_call_t));
    call->self = self;
    call->kind = kind;
    call->term = self->term;
    call->sent_ms = now;
    return call;
}

//  The publisher a reply is for, or NULL if its call is of an earlier term
//  (the reply changes nothing); *copy gets what the call carried. Frees it.
static modelpub_t *
s_answered (void *arg, s_call_t *copy)
{
    *copy = *(s_call_t *) arg;
    free (arg);
    return copy->term == copy->self->term? copy->self: NULL;
}

static char *
s_key (modelpub_t *self, const char *rel)
{
    return zsys_sprintf ("%s%s", self->prefix, rel);
}

//  "revision=N generation=G ..." (the state's and the checkpoint's form).
static bool
s_parse (const ep_etcd_reply_t *reply, uint64_t *revision, char *generation)
{
    unsigned long long number;
    char word [33] = "";
    if (!reply || reply->nkvs != 1
    ||  sscanf ((const char *) reply->kvs [0].value, "revision=%llu generation=%32s", &number, word) != 2)
        return false;
    *revision = number;
    snprintf (generation, 33, "%s", word);
    return true;
}

//  ---------------------------------------------------------------------
//  Losing and giving up

//  A revoke's outcome: *arg set to true if arg is not NULL. A revoke that
//  fails leaves a lease that expires by itself.
static void
s_revoked (void *arg, const ep_etcd_reply_t *reply, const char *error)
{
    (void) reply, (void) error;
    if (arg)
        *(bool *) arg = true;
}

//  Stops publishing (or campaigning) and starts again with a new lease:
//  the old one may be gone, or must go so that another instance takes over.
static void
s_restart (modelpub_t *self, int64_t now, const char *why)
{
    if (self->publishing)
        ep_log_warn ("no longer the model's publisher (%s): stopped publishing after revision %llu",
                     why, (unsigned long long) self->published);
    self->publishing = self->unanchored = false;
    ep_etcd_watch_cancel (&self->watch);
    zstr_free (&self->range_from);
    if (self->lease_id)
        ep_etcd_lease_revoke (self->config.etcd, self->lease_id, s_revoked, NULL);
    self->lease_id = 0;
    self->term++;
    self->keepalive_out = self->campaigning = self->checkpoint_out = false;
    s_grant (self, now);
}

//  True if the lease is young enough to publish at now; else steps down.
static bool
s_may_publish (modelpub_t *self, int64_t now)
{
    if (!self->publishing)
        return false;
    if (now - self->last_ok_ms < self->ttl_ms - self->ttl_ms / 4)
        return true;
    char why [96];
    snprintf (why, sizeof why, "no keepalive of its lease for %lld ms of its %lld",
              (long long) (now - self->last_ok_ms), (long long) self->ttl_ms);
    s_restart (self, now, why);
    return false;
}

//  ---------------------------------------------------------------------
//  Publishing the records

static int
s_kv_cmp (const void *a, const void *b)
{
    const ep_etcd_kv_t *x = *(const ep_etcd_kv_t *const *) a, *y = *(const ep_etcd_kv_t *const *) b;
    return strcmp ((const char *) x->key, (const char *) y->key);
}

//  Publishes the records among kvs (any order: one etcd revision holds a
//  batch's records in no particular order) above the last one published.
static void
s_publish_kvs (modelpub_t *self, const ep_etcd_kv_t **kvs, size_t n)
{
    qsort (kvs, n, sizeof *kvs, s_kv_cmp);
    for (size_t i = 0; i < n; i++) {
        if (!s_may_publish (self, ep_mono_ms ()))
            return;
        Ep__ModelChange *change = ep__model_change__unpack (NULL, kvs [i]->value_size, kvs [i]->value);
        if (!change || !change->has_revision) {
            ep_log_warn ("etcd key %s is not a change record: skipped", (const char *) kvs [i]->key);
            if (change)
                ep__model_change__free_unpacked (change, NULL);
            continue;
        }
        if (change->revision > self->published) {
            Ep__Event event = EP__EVENT__INIT;
            event.body_case = EP__EVENT__BODY_MODEL_CHANGE;
            event.model_change = change;
            self->config.publish (self->config.arg, &event);
            self->published = change->revision;
            snprintf (self->generation, sizeof self->generation, "%s",
                      change->generation? change->generation: "");
        }
        ep__model_change__free_unpacked (change, NULL);
    }
}

static void
s_watch_records (void *arg, const ep_etcd_reply_t *reply, const char *error)
{
    modelpub_t *self = (modelpub_t *) arg;
    if (!reply || reply->canceled || reply->code) {
        //  Compacted past it, most often: read the records again.
        self->watch = NULL;
        s_restart (self, ep_mono_ms (), reply? "the watch of the change records ended": error);
        return;
    }
    const ep_etcd_kv_t *kvs [reply->nevents + 1];
    size_t n = 0;
    for (size_t i = 0; i < reply->nevents; i++)
        if (!reply->events [i].is_delete)
            kvs [n++] = &reply->events [i].kv;
    s_publish_kvs (self, kvs, n);
}

static void s_range (modelpub_t *self);

static void
s_range_reply (void *arg, const ep_etcd_reply_t *reply, const char *error)
{
    s_call_t call;
    modelpub_t *self = s_answered (arg, &call);
    if (!self || !self->range_from)
        return;
    if (!reply || reply->code) {
        s_restart (self, ep_mono_ms (), reply? reply->error: error);
        return;
    }
    if (!self->range_rev)
        self->range_rev = reply->header.revision;
    const ep_etcd_kv_t *kvs [reply->nkvs + 1];
    for (size_t i = 0; i < reply->nkvs; i++)
        kvs [i] = &reply->kvs [i];
    s_publish_kvs (self, kvs, reply->nkvs);
    if (!self->publishing)
        return;
    zstr_free (&self->range_from);
    if (reply->more && reply->nkvs) {
        //  The next page: after the last key.
        self->range_from = strdup ((const char *) reply->kvs [reply->nkvs - 1].key);
        s_range (self);
        return;
    }
    char *key = s_key (self, KEY_CHANGES);
    uint8_t end [512];
    ep_etcd_watch_req_t req = { .key = ep_etcd_str (key), .start_revision = self->range_rev + 1,
                                .progress_notify = true };
    req.range_end = ep_etcd_prefix_end (req.key, end, sizeof end);
    self->watch = ep_etcd_watch (self->config.etcd, &req, s_watch_records, self);
    free (key);
}

//  The next page of the records to publish on taking the key.
static void
s_range (modelpub_t *self)
{
    char *prefix = s_key (self, KEY_CHANGES);
    uint8_t end [512];
    bool after = self->range_rev != 0;
    ep_etcd_range_t range = { .key = { self->range_from, strlen (self->range_from) + (after? 1: 0) },
                              .range_end = ep_etcd_prefix_end (ep_etcd_str (prefix), end, sizeof end),
                              .revision = self->range_rev, .limit = PAGE };
    s_call_t *call = s_call (self, CALL_RANGE, ep_mono_ms ());
    if (ep_etcd_range (self->config.etcd, &range, s_range_reply, call) != 0) {
        free (call);
        s_restart (self, ep_mono_ms (), "the range request could not be encoded");
    }
    free (prefix);
}

//  ---------------------------------------------------------------------
//  The election

static void
s_watch_key (void *arg, const ep_etcd_reply_t *reply, const char *error)
{
    modelpub_t *self = (modelpub_t *) arg;
    (void) error;
    bool gone = !reply || reply->canceled || reply->code;
    for (size_t i = 0; reply && i < reply->nevents; i++)
        gone |= reply->events [i].is_delete;
    if (gone) {
        if (reply)
            ep_etcd_watch_cancel (&self->watch);
        self->watch = NULL;
        s_campaign (self, ep_mono_ms ());
    }
}

//  Took the key: publishes the records after the checkpoint (or, with no
//  checkpoint of this generation, from the model's revision on).
static void
s_elected (modelpub_t *self, const ep_etcd_reply_t *reply)
{
    uint64_t checkpoint = 0, revision = 0;
    char checkpoint_gen [33] = "", generation [33] = "";
    bool has_checkpoint = reply->nresponses == 3
                       && s_parse (&reply->responses [1], &checkpoint, checkpoint_gen);
    if (reply->nresponses == 3)
        s_parse (&reply->responses [2], &revision, generation);
    //  A checkpoint written before the model had a generation is of this one.
    bool resume = has_checkpoint && checkpoint <= revision
               && (streq (checkpoint_gen, generation) || streq (checkpoint_gen, "-"));
    self->publishing = true;
    self->published = self->checkpointed = resume? checkpoint: revision;
    snprintf (self->generation, sizeof self->generation, "%s", generation);
    ep_log_info ("now the model's publisher (lease %llx, TTL %lld ms): publishing from revision %llu "
                 "(%s)", (unsigned long long) self->lease_id, (long long) self->ttl_ms,
                 (unsigned long long) self->published + 1,
                 resume? "the checkpoint": "no checkpoint of this generation: the model's revision");
    char from [64];
    snprintf (from, sizeof from, KEY_CHANGES "%020llu", (unsigned long long) self->published + 1);
    self->range_from = s_key (self, from);
    self->range_rev = 0;
    self->unanchored = !resume;
    if (resume)
        s_range (self);
    else
        //  Nothing published before the checkpoint says where from: a
        //  publisher that dies next resumes from there, not from its
        //  model's revision then.
        s_checkpoint (self, ep_mono_ms ());
}

static void
s_campaign_reply (void *arg, const ep_etcd_reply_t *reply, const char *error)
{
    s_call_t call;
    modelpub_t *self = s_answered (arg, &call);
    if (!self)
        return;
    self->campaigning = false;
    int64_t now = ep_mono_ms ();
    if (!reply || reply->code) {
        ep_log_warn ("cannot campaign for the model's publisher key: %s; trying again",
                     reply? reply->error: error);
        self->retry_ms = now + RETRY_MS;
        return;
    }
    if (reply->succeeded) {
        s_elected (self, reply);
        return;
    }
    const ep_etcd_reply_t *holder = reply->nresponses == 1? &reply->responses [0]: NULL;
    if (!holder || holder->nkvs != 1) {
        s_campaign (self, now);         //  gone meanwhile
        return;
    }
    ep_log_info ("the model's publisher is %s: watching its key", (const char *) holder->kvs [0].value);
    char *key = s_key (self, KEY_PUBLISHER);
    ep_etcd_watch_req_t req = { .key = ep_etcd_str (key), .start_revision = reply->header.revision + 1,
                                .progress_notify = true };
    self->watch = ep_etcd_watch (self->config.etcd, &req, s_watch_key, self);
    free (key);
}

//  Creates the key under this instance's lease if it is absent, and reads
//  the checkpoint and the model's state in the same transaction.
static void
s_campaign (modelpub_t *self, int64_t now)
{
    if (!self->lease_id || self->campaigning || self->publishing)
        return;
    char *key = s_key (self, KEY_PUBLISHER), *checkpoint = s_key (self, KEY_CHECKPOINT),
         *state = s_key (self, KEY_STATE);
    ep_etcd_compare_t absent = { .key = ep_etcd_str (key), .target = EP_ETCD_CREATE,
                                 .result = EP_ETCD_EQUAL, .number = 0 };
    ep_etcd_op_t success [3] = {
        { .kind = EP_ETCD_PUT, .u.put = { .key = ep_etcd_str (key), .value = ep_etcd_str (self->name),
                                          .lease = self->lease_id } },
        { .kind = EP_ETCD_RANGE, .u.range = { .key = ep_etcd_str (checkpoint) } },
        { .kind = EP_ETCD_RANGE, .u.range = { .key = ep_etcd_str (state) } } };
    ep_etcd_op_t failure = { .kind = EP_ETCD_RANGE, .u.range = { .key = ep_etcd_str (key) } };
    ep_etcd_txn_t txn = { &absent, 1, success, 3, &failure, 1 };
    s_call_t *call = s_call (self, CALL_CAMPAIGN, now);
    char err [256];
    if (ep_etcd_txn (self->config.etcd, &txn, s_campaign_reply, call, err, sizeof err) != 0) {
        ep_log_warn ("cannot campaign for the model's publisher key: %s", err);
        free (call);
        self->retry_ms = now + RETRY_MS;
    }
    else
        self->campaigning = true;
    free (state);
    free (checkpoint);
    free (key);
}

//  ---------------------------------------------------------------------
//  The lease

static void
s_grant_reply (void *arg, const ep_etcd_reply_t *reply, const char *error)
{
    s_call_t call;
    modelpub_t *self = s_answered (arg, &call);
    if (!self)
        return;
    int64_t sent = call.sent_ms;
    self->granting = false;
    int64_t now = ep_mono_ms ();
    if (!reply || reply->code || !reply->lease_id || reply->ttl <= 0) {
        ep_log_warn ("etcd granted no lease to the model's publisher election (%s); trying again",
                     reply? (reply->error? reply->error: "no lease"): error);
        self->retry_ms = now + RETRY_MS;
        return;
    }
    self->lease_id = reply->lease_id;
    //  As granted: etcd raises a TTL below its minimum.
    self->ttl_ms = reply->ttl * 1000;
    self->last_ok_ms = sent;
    self->next_keepalive_ms = sent + self->ttl_ms / 3;
    s_campaign (self, now);
}

static void
s_grant (modelpub_t *self, int64_t now)
{
    self->retry_ms = 0;
    int64_t ttl_s = (self->config.lease_ttl_ms + 999) / 1000;
    s_call_t *call = s_call (self, CALL_GRANT, now);
    if (ep_etcd_lease_grant (self->config.etcd, ttl_s > 0? ttl_s: 1, s_grant_reply, call) != 0) {
        free (call);
        self->retry_ms = now + RETRY_MS;
    }
    else
        self->granting = true;
}

static void
s_keepalive_reply (void *arg, const ep_etcd_reply_t *reply, const char *error)
{
    s_call_t call;
    modelpub_t *self = s_answered (arg, &call);
    if (!self)
        return;
    int64_t sent = call.sent_ms;
    self->keepalive_out = false;
    if (!reply || reply->code) {
        ep_log_warn ("the keepalive of the model's publisher lease failed: %s",
                     reply? reply->error: error);
        return;                 //  the next one may pass; aging decides
    }
    if (reply->ttl <= 0) {
        s_restart (self, ep_mono_ms (), "its lease expired");
        return;
    }
    //  The lease lives at least TTL from when this was sent.
    if (sent > self->last_ok_ms)
        self->last_ok_ms = sent;
}

//  ---------------------------------------------------------------------
//  Checkpoints

static void
s_checkpoint_reply (void *arg, const ep_etcd_reply_t *reply, const char *error)
{
    s_call_t call;
    modelpub_t *self = s_answered (arg, &call);
    if (!self)
        return;
    uint64_t revision = call.value;
    self->checkpoint_out = false;
    if (!reply || reply->code)
        ep_log_warn ("cannot write the model's publisher checkpoint: %s", reply? reply->error: error);
    else
    if (!reply->succeeded)
        s_restart (self, ep_mono_ms (), "its key is no longer under its lease");
    else {
        if (revision > self->checkpointed)
            self->checkpointed = revision;
        if (self->unanchored) {
            self->unanchored = false;
            s_range (self);
        }
    }
}

//  Writes how far this instance published, if it still holds the key.
static void
s_checkpoint (modelpub_t *self, int64_t now)
{
    char *key = s_key (self, KEY_PUBLISHER), *checkpoint = s_key (self, KEY_CHECKPOINT);
    char *value = zsys_sprintf ("revision=%llu generation=%s", (unsigned long long) self->published,
                                *self->generation? self->generation: "-");
    ep_etcd_compare_t held = { .key = ep_etcd_str (key), .target = EP_ETCD_LEASE,
                               .result = EP_ETCD_EQUAL, .number = self->lease_id };
    ep_etcd_op_t put = { .kind = EP_ETCD_PUT, .u.put = { .key = ep_etcd_str (checkpoint),
                                                         .value = ep_etcd_str (value) } };
    ep_etcd_txn_t txn = { &held, 1, &put, 1, NULL, 0 };
    s_call_t *call = s_call (self, CALL_CHECKPOINT, now);
    call->value = self->published;
    char err [256];
    if (ep_etcd_txn (self->config.etcd, &txn, s_checkpoint_reply, call, err, sizeof err) != 0) {
        ep_log_warn ("cannot write the model's publisher checkpoint: %s", err);
        free (call);
    }
    else
        self->checkpoint_out = true;
    free (value);
    free (checkpoint);
    free (key);
}

//  ---------------------------------------------------------------------
//  Life cycle

modelpub_t *
modelpub_new (const modelpub_config_t *config)
{
    EP_ASSERT (config->etcd && config->prefix && config->name && config->publish);
    modelpub_t *self = (modelpub_t *) zmalloc (sizeof (modelpub_t));
    self->config = *config;
    self->prefix = strdup (config->prefix);
    self->name = strdup (config->name);
    s_grant (self, ep_mono_ms ());
    return self;
}

void
modelpub_stop (modelpub_t *self)
{
    if (!self)
        return;
    ep_etcd_watch_cancel (&self->watch);
    self->publishing = false;
    self->term++;               //  replies still in flight change nothing
    if (!self->lease_id)
        return;
    //  The flag is the object's: it outlives any dispatch of the reply.
    if (ep_etcd_lease_revoke (self->config.etcd, self->lease_id, s_revoked, &self->revoked) == 0) {
        int64_t deadline = ep_mono_ms () + 1000;
        while (!self->revoked && ep_mono_ms () < deadline)
            ep_etcd_wait (self->config.etcd, 100);
    }
    self->lease_id = 0;
}

void
modelpub_destroy (modelpub_t **self_p)
{
    modelpub_t *self = *self_p;
    if (self) {
        zstr_free (&self->range_from);
        free (self->prefix);
        free (self->name);
        free (self);
        *self_p = NULL;
    }
}

int64_t
modelpub_tick (modelpub_t *self, int64_t now)
{
    if (self->retry_ms && now >= self->retry_ms) {
        self->retry_ms = 0;
        if (!self->lease_id && !self->granting)
            s_grant (self, now);
        else
            s_campaign (self, now);
    }
    s_may_publish (self, now);
    if (self->lease_id && !self->keepalive_out && now >= self->next_keepalive_ms) {
        s_call_t *call = s_call (self, CALL_KEEPALIVE, now);
        if (ep_etcd_lease_keepalive (self->config.etcd, self->lease_id, s_keepalive_reply, call) == 0)
            self->keepalive_out = true;
        else
            free (call);
        self->next_keepalive_ms = now + self->ttl_ms / 3;
    }
    if (self->publishing && !self->checkpoint_out && now >= self->next_checkpoint_ms) {
        if (self->published > self->checkpointed || self->unanchored)
            s_checkpoint (self, now);
        self->next_checkpoint_ms = now + CHECKPOINT_MS;
    }
    int64_t next = INT64_MAX;
    if (self->retry_ms)
        next = self->retry_ms - now;
    if (self->lease_id && self->next_keepalive_ms - now < next)
        next = self->next_keepalive_ms - now;
    if (self->publishing) {
        int64_t aged = self->last_ok_ms + self->ttl_ms - self->ttl_ms / 4 - now;
        if (aged < next)
            next = aged;
        if (self->next_checkpoint_ms - now < next)
            next = self->next_checkpoint_ms - now;
    }
    return next > 0? next: 0;
}

bool
modelpub_publishing (modelpub_t *self)
{
    return self->publishing;
}

uint64_t
modelpub_published (modelpub_t *self)
{
    return self->published;
}

int64_t
modelpub_ttl_ms (modelpub_t *self)
{
    return self->ttl_ms;
}
