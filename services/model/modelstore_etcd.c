/*  modelstore_etcd.c: the model's store in etcd (see modelstore_etcd.h).

    Batches and commits. The mirror is in modelstore_etcd_mirror.c;
    queries, saved replies and backups in modelstore_etcd_reads.c, over
    the same backend state (modelstore_etcd_int.h).
*/
#include "modelstore_etcd_int.h"
#include "entity.h"
#include "ep_backoff.h"
#include "ep_log.h"
#include <stdarg.h>

#define MAX_TXN_OPS_DEFAULT 128         //  etcd's own default for --max-txn-ops
#define REPLIES_TTL_DEFAULT 600000      //  the model's reply cache keeps them 10 min

//  ---------------------------------------------------------------------
//  Keys and values

void
metcd_failed (metcd_t *self, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (self->error, sizeof self->error, format, args);
    va_end (args);
    self->fault = EP_STORE_FAULT_OTHER;
}

bool
metcd_nospace (metcd_t *self, const ep_etcd_reply_t *reply, const char *what)
{
    //  etcd answers RESOURCE_EXHAUSTED for a request over its size limit
    //  too: only its message tells the quota apart.
    if (!reply || reply->code != EP_ETCD_RESOURCE_EXHAUSTED
    ||  !reply->error || !strstr (reply->error, "space exceeded"))
        return false;
    metcd_failed (self, "etcd refused %s: its database is full (NOSPACE alarm: %s); nothing "
                  "was written. Writes are refused until an operator frees space: compact "
                  "etcd's history (etcdctl compact), defragment every member (etcdctl defrag), "
                  "then disarm the alarm (etcdctl alarm disarm): docs/ha.md, \"etcd is full "
                  "(NOSPACE)\". Reads go on; writes come back by themselves", what, reply->error);
    self->fault = EP_STORE_FAULT_NOSPACE;
    if (self->probe == METCD_PROBE_TAKES)
        self->probe = METCD_PROBE_IDLE;     //  what it learned is older than this
    return true;
}

char *
metcd_key (metcd_t *self, const char *rel)
{
    return zsys_sprintf ("%s%s", self->prefix, rel);
}

const char *
metcd_rel (metcd_t *self, const ep_etcd_kv_t *kv)
{
    if (kv->key_size < self->prefix_size
    ||  memcmp (kv->key, self->prefix, self->prefix_size) != 0)
        return NULL;
    return (const char *) kv->key + self->prefix_size;
}

void
metcd_kv_destroy (metcd_kv_t **kv_p)
{
    metcd_kv_t *kv = *kv_p;
    if (kv) {
        free (kv->value);
        for (size_t i = 0; kv->hosted && kv->hosted [i]; i++)
            free (kv->hosted [i]);
        free (kv->hosted);
        free (kv);
        *kv_p = NULL;
    }
}

void
metcd_kv_free (void **item)
{
    metcd_kv_destroy ((metcd_kv_t **) item);
}

//  A value (NULL: a staged removal) of rel; for entities, what the batch's
//  reads need of it is kept beside it (its version, the routers' hosted
//  services). NULL if an entity's value does not unpack.
metcd_kv_t *
metcd_kv_new (const char *rel, const uint8_t *value, size_t size, int64_t mod)
{
    metcd_kv_t *kv = (metcd_kv_t *) zmalloc (sizeof (metcd_kv_t));
    kv->mod = mod;
    kv->removed = value == NULL;
    if (value) {
        kv->value = (uint8_t *) malloc (size + 1);
        memcpy (kv->value, value, size);
        kv->value [size] = 0;
        kv->size = size;
    }
    if (value && strncmp (rel, METCD_ENTITIES, strlen (METCD_ENTITIES)) == 0) {
        Ep__Entity *entity = ep__entity__unpack (NULL, size, value);
        entity_fields_t fields;
        if (!entity || !entity_fields (entity, &fields)) {
            if (entity)
                ep__entity__free_unpacked (entity, NULL);
            metcd_kv_destroy (&kv);
            return NULL;
        }
        kv->version = *fields.meta? (*fields.meta)->version: 0;
        if (entity->kind_case == EP__ENTITY__KIND_ROUTER) {
            Ep__Router *router = entity->router;
            kv->hosted = (char **) zmalloc ((router->n_hosted + 1) * sizeof (char *));
            for (size_t i = 0; i < router->n_hosted; i++)
                kv->hosted [i] = strdup (router->hosted [i]->service_id?
                                         router->hosted [i]->service_id: "");
        }
        ep__entity__free_unpacked (entity, NULL);
    }
    return kv;
}

void
metcd_entity_rel (char *buf, size_t size, Ep__EntityType type, const char *id)
{
    snprintf (buf, size, METCD_ENTITIES "%02d/%s", (int) type, id? id: "");
}

//  The state as its value says; false if value is not a state.
bool
metcd_state_parse (const metcd_kv_t *kv, metcd_state_t *state)
{
    memset (state, 0, sizeof *state);
    if (!kv || kv->removed)
        return kv == NULL;
    unsigned long long revision;
    int restored;
    char generation [33] = "";
    if (sscanf ((const char *) kv->value, "revision=%llu generation=%32s restored=%d",
                &revision, generation, &restored) != 3)
        return false;
    state->revision = revision;
    snprintf (state->generation, sizeof state->generation, "%s",
              strcmp (generation, "-") == 0? "": generation);
    state->restored = restored != 0;
    //  Written since the cluster id is recorded (older state keys lack it).
    const char *cluster = strstr ((const char *) kv->value, " cluster=");
    if (cluster)
        state->cluster_id = strtoull (cluster + strlen (" cluster="), NULL, 16);
    return true;
}

char *
metcd_state_format (metcd_t *self, const metcd_state_t *state, const char *nonce)
{
    uint64_t cluster_id = self->cluster_id? self->cluster_id: state->cluster_id;
    char cluster [40] = "";
    if (cluster_id)
        snprintf (cluster, sizeof cluster, " cluster=%016llx", (unsigned long long) cluster_id);
    return zsys_sprintf ("revision=%llu generation=%s restored=%d batch=%s%s",
                         (unsigned long long) state->revision,
                         *state->generation? state->generation: "-", state->restored? 1: 0,
                         nonce, cluster);
}

//  ---------------------------------------------------------------------
//  Calls in flight: each belongs to the store until its callback runs; a
//  store destroyed first orphans them (the callback then only frees).

metcd_call_t *
metcd_call_new (metcd_t *self, metcd_call_fn *fn, void *data, void (*free_data) (void *))
{
    metcd_call_t *call = (metcd_call_t *) zmalloc (sizeof (metcd_call_t));
    call->self = self;
    call->fn = fn;
    call->data = data;
    call->free_data = free_data;
    call->handle = zlistx_add_end (self->calls, call);
    return call;
}

void
metcd_call_cb (void *arg, const ep_etcd_reply_t *reply, const char *error)
{
    metcd_call_t *call = (metcd_call_t *) arg;
    if (call->self) {
        zlistx_detach (call->self->calls, call->handle);
        call->fn (call->self, call, reply, error);
    }
    if (call->data && call->free_data)
        call->free_data (call->data);
    free (call);
}

//  A call that could not be queued: its callback will not run.
void
metcd_call_drop (metcd_call_t *call)
{
    zlistx_detach (call->self->calls, call->handle);
    call->self = NULL;
    metcd_call_cb (call, NULL, NULL);
}

void
metcd_wait (metcd_t *self, const bool *done)
{
    //  Every request ends within the client's timeouts (and its failover
    //  over the endpoints), so this ends too.
    while (!*done)
        ep_etcd_wait (self->etcd, 1000);
}

//  ---------------------------------------------------------------------
//  Life cycle and state

void
metcd_batch_clear (metcd_t *self)
{
    for (metcd_kv_t *kv = (metcd_kv_t *) zhashx_first (self->staged); kv;
         kv = (metcd_kv_t *) zhashx_next (self->staged))
        metcd_kv_destroy (&kv);
    zhashx_purge (self->staged);
    zhashx_purge (self->reads);
    zlistx_purge (self->undo);
    self->routers_read_rev = 0;
    self->forget = 0;
    self->stale = false;
    self->in_batch = false;
    self->in_write = false;
}

void
metcd_destroy (metcd_t **self_p)
{
    metcd_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    ep_etcd_watch_cancel (&self->watch);
    ep_etcd_watch_cancel (&self->lease_watch);
    zlistx_destroy (&self->expired);
    metcd_backup_drop (self);
    for (metcd_call_t *call = (metcd_call_t *) zlistx_first (self->calls); call;
         call = (metcd_call_t *) zlistx_next (self->calls))
        call->self = NULL;
    zlistx_destroy (&self->calls);
    metcd_batch_clear (self);
    zhashx_destroy (&self->mirror);
    zhashx_destroy (&self->staged);
    zhashx_destroy (&self->reads);
    zlistx_destroy (&self->undo);
    free (self->prefix);
    free (self);
}

static void
s_destroy (void *backend)
{
    metcd_t *self = (metcd_t *) backend;
    metcd_destroy (&self);
}

static const char *
s_error (void *backend)
{
    return ((metcd_t *) backend)->error;
}

static ep_store_fault_t
s_fault (void *backend)
{
    return ((metcd_t *) backend)->fault;
}

static void
s_probe_reply (metcd_t *self, metcd_call_t *call, const ep_etcd_reply_t *reply, const char *error)
{
    (void) call, (void) error;
    if (metcd_nospace (self, reply, "a write"))
        self->probe = METCD_PROBE_REFUSED;
    else
    if (reply && !reply->code)
        self->probe = METCD_PROBE_TAKES;
    else
        //  Not reached, or another refusal: it says nothing of the quota.
        self->probe = METCD_PROBE_IDLE;
}

//  Over etcd's quota (NOSPACE), whether etcd takes writes again, without
//  writing: a transaction whose compare never holds (a mod revision below
//  0) and whose success branch puts. etcd costs a transaction by its puts
//  whether they apply or not, so it refuses this one while the alarm is
//  raised, and answers it (not succeeded, no revision made) once space was
//  freed and the alarm disarmed. Asynchronous: the answer counts at the
//  next call (the service probes every half second while degraded).
static int
s_probe (void *backend)
{
    metcd_t *self = (metcd_t *) backend;
    if (self->probe == METCD_PROBE_TAKES) {
        self->probe = METCD_PROBE_IDLE;
        self->fault = EP_STORE_FAULT_NONE;
        return 0;
    }
    if (self->probe != METCD_PROBE_OUT) {
        char *key = metcd_key (self, METCD_STATE);
        ep_etcd_compare_t never = { .key = ep_etcd_str (key), .target = EP_ETCD_MOD,
                                    .result = EP_ETCD_LESS, .number = 0 };
        ep_etcd_op_t put = { .kind = EP_ETCD_PUT, .u.put = { .key = ep_etcd_str (key) } };
        ep_etcd_txn_t txn = { &never, 1, &put, 1, NULL, 0 };
        metcd_call_t *call = metcd_call_new (self, s_probe_reply, NULL, NULL);
        char err [256];
        if (ep_etcd_txn (self->etcd, &txn, metcd_call_cb, call, err, sizeof err) == 0)
            self->probe = METCD_PROBE_OUT;
        else
            metcd_call_drop (call);
        free (key);
    }
    //  Not known to take writes yet: still the reason it was degraded.
    if (self->fault != EP_STORE_FAULT_NOSPACE) {
        ep_etcd_reply_t nospace = { .code = EP_ETCD_RESOURCE_EXHAUSTED,
                                    .error = (char *) "etcdserver: mvcc: database space exceeded" };
        metcd_nospace (self, &nospace, "a write");
    }
    return -1;
}

static int
s_state (void *backend, uint64_t *revision, char *generation, bool *restored)
{
    metcd_t *self = (metcd_t *) backend;
    metcd_state_t state;
    if (!metcd_state_parse ((metcd_kv_t *) zhashx_lookup (self->mirror, METCD_STATE), &state)) {
        metcd_failed (self, "the etcd key %s%s is not the model's state: is the prefix another "
                      "program's? Use an EDGEPLANE_ETCD_PREFIX of the model's own", self->prefix,
                      METCD_STATE);
        return -1;
    }
    *revision = state.revision;
    snprintf (generation, 33, "%s", state.generation);
    //  A state written in another cluster: this one was restored from a
    //  snapshot of it (`etcdctl snapshot restore` makes a new cluster), and
    //  the model's revisions may have gone backwards.
    *restored = state.restored
             || (state.cluster_id && self->cluster_id && state.cluster_id != self->cluster_id);
    return 0;
}

typedef struct {
    bool done;                  //  the callback ran
    bool ok;                    //  the txn applied
    int64_t revision;           //  at this etcd revision
} s_sync_t;

static void
s_sync_reply (metcd_t *self, metcd_call_t *call, const ep_etcd_reply_t *reply, const char *error)
{
    s_sync_t *sync = (s_sync_t *) call->data;
    sync->done = true;
    if (!reply || reply->code)
        metcd_failed (self, "etcd: %s", reply? reply->error: error);
    else
    if (!reply->succeeded)
        metcd_failed (self, "the model's state in etcd changed meanwhile (another model instance?)");
    else {
        sync->ok = true;
        sync->revision = reply->header.revision;
    }
}

//  Writes the state key if it is still at the mirror's mod revision,
//  waiting for the outcome. Returns 0 or -1.
static int
s_state_write (metcd_t *self, const metcd_state_t *state)
{
    metcd_kv_t *old = (metcd_kv_t *) zhashx_lookup (self->mirror, METCD_STATE);
    char *key = metcd_key (self, METCD_STATE);
    ep_random_hex (self->nonce, 8);
    char *value = metcd_state_format (self, state, self->nonce);
    ep_etcd_compare_t compare = { .key = ep_etcd_str (key), .target = EP_ETCD_MOD,
                                  .result = EP_ETCD_EQUAL, .number = old? old->mod: 0 };
    ep_etcd_op_t put = { .kind = EP_ETCD_PUT,
                         .u.put = { .key = ep_etcd_str (key), .value = ep_etcd_str (value) } };
    ep_etcd_txn_t txn = { &compare, 1, &put, 1, NULL, 0 };
    s_sync_t sync = { 0 };
    metcd_call_t *call = metcd_call_new (self, s_sync_reply, &sync, NULL);
    char err [256];
    if (ep_etcd_txn (self->etcd, &txn, metcd_call_cb, call, err, sizeof err) != 0) {
        metcd_call_drop (call);
        metcd_failed (self, "etcd: %s", err);
    }
    else
        metcd_wait (self, &sync.done);
    if (sync.ok)
        metcd_mirror_apply (self->mirror, METCD_STATE, (const uint8_t *) value, strlen (value),
                        sync.revision);
    free (value);
    free (key);
    return sync.ok? 0: -1;
}

static int
s_set_generation (void *backend, const char *generation)
{
    metcd_t *self = (metcd_t *) backend;
    metcd_state_t state;
    if (s_state (backend, &state.revision, state.generation, &state.restored) != 0)
        return -1;
    snprintf (state.generation, sizeof state.generation, "%s", generation);
    state.restored = false;
    return s_state_write (self, &state);
}

//  ---------------------------------------------------------------------
//  Batches

static int
s_begin (void *backend)
{
    metcd_t *self = (metcd_t *) backend;
    EP_ASSERT (!self->in_batch);
    self->lease_gone = false;
    if (self->committing) {
        metcd_failed (self, "a commit to etcd is still in flight; retry");
        return -1;
    }
    if (self->mirror_bad) {
        metcd_resync (self);
        metcd_failed (self, "the model store is reloading its copy of etcd (after a conflicting "
                      "write or a lost watch); retry");
        return -1;
    }
    if (self->mirror_rev < self->catch_up_rev) {
        metcd_failed (self, "the model store's copy of etcd is catching up with another "
                      "instance's write; retry");
        return -1;
    }
    metcd_state_t state;
    if (s_state (backend, &state.revision, state.generation, &state.restored) != 0)
        return -1;
    self->staged_revision = state.revision;
    self->begin_rev = self->mirror_rev;
    self->in_batch = true;
    return 0;
}

static int
s_current (void *backend, uint64_t *revision, char *generation)
{
    bool restored;
    return s_state (backend, revision, generation, &restored) == 0? 1: 0;
}

static bool
s_ready (void *backend)
{
    metcd_t *self = (metcd_t *) backend;
    //  A mirror to reload is reloaded by the begin it refuses.
    return !self->committing && !self->reloading && self->mirror_rev >= self->catch_up_rev;
}

static bool
s_retry (void *backend)
{
    return ((metcd_t *) backend)->retry;
}

static bool
s_too_large (void *backend)
{
    return ((metcd_t *) backend)->too_large;
}

static bool
s_lease_gone (void *backend)
{
    return ((metcd_t *) backend)->lease_gone;
}

static bool
s_in_batch (void *backend)
{
    return ((metcd_t *) backend)->in_batch;
}

static int
s_write_begin (void *backend)
{
    metcd_t *self = (metcd_t *) backend;
    self->in_write = true;
    self->undo_revision = self->staged_revision;
    self->undo_forget = self->forget;
    return 0;
}

typedef struct {
    char *rel;                  //  the key staged
    metcd_kv_t *prev;           //  what was staged before (NULL: nothing)
} s_undo_t;

static void
s_undo_free (void **item)
{
    s_undo_t *undo = (s_undo_t *) *item;
    if (undo) {
        free (undo->rel);
        metcd_kv_destroy (&undo->prev);
        free (undo);
        *item = NULL;
    }
}

//  Stages kv (NULL: stages nothing for rel), keeping what it replaces for
//  an undo of the write.
static void
s_stage (metcd_t *self, const char *rel, metcd_kv_t *kv)
{
    metcd_kv_t *prev = (metcd_kv_t *) zhashx_lookup (self->staged, rel);
    if (prev)
        zhashx_delete (self->staged, rel);      //  no destructor: prev is ours now
    if (self->in_write) {
        s_undo_t *undo = (s_undo_t *) zmalloc (sizeof (s_undo_t));
        undo->rel = strdup (rel);
        undo->prev = prev;
        zlistx_add_end (self->undo, undo);
    }
    else
        metcd_kv_destroy (&prev);
    if (kv)
        zhashx_insert (self->staged, rel, kv);
}

static void
s_write_end (void *backend, bool keep)
{
    metcd_t *self = (metcd_t *) backend;
    if (!keep) {
        for (s_undo_t *undo = (s_undo_t *) zlistx_last (self->undo); undo;
             undo = (s_undo_t *) zlistx_prev (self->undo)) {
            metcd_kv_t *now = (metcd_kv_t *) zhashx_lookup (self->staged, undo->rel);
            zhashx_delete (self->staged, undo->rel);
            metcd_kv_destroy (&now);
            if (undo->prev)
                zhashx_insert (self->staged, undo->rel, undo->prev);
            undo->prev = NULL;
        }
        self->staged_revision = self->undo_revision;
        self->forget = self->undo_forget;
    }
    zlistx_purge (self->undo);
    self->in_write = false;
}

//  The value of rel in the batch's view (NULL: absent), recording the mod
//  revision the batch read for the commit's compares.
static const metcd_kv_t *
s_view_lookup (metcd_t *self, const char *rel)
{
    metcd_kv_t *kv = self->in_batch? (metcd_kv_t *) zhashx_lookup (self->staged, rel): NULL;
    if (kv)
        return kv->removed? NULL: kv;
    kv = (metcd_kv_t *) zhashx_lookup (self->mirror, rel);
    if (self->in_batch && !zhashx_lookup (self->reads, rel)) {
        int64_t *mod = (int64_t *) malloc (sizeof (int64_t));
        *mod = kv? kv->mod: 0;
        zhashx_insert (self->reads, rel, mod);
    }
    return kv;
}

static Ep__Entity *
s_get (void *backend, Ep__EntityType type, const char *id)
{
    metcd_t *self = (metcd_t *) backend;
    char rel [128];
    metcd_entity_rel (rel, sizeof rel, type, id);
    const metcd_kv_t *kv = s_view_lookup (self, rel);
    return kv? ep__entity__unpack (NULL, kv->size, kv->value): NULL;
}

static bool
s_hosts (const metcd_kv_t *kv, const char *service_id)
{
    for (size_t i = 0; kv && !kv->removed && kv->hosted && kv->hosted [i]; i++)
        if (streq (kv->hosted [i], service_id))
            return true;
    return false;
}

static int
s_hosting (void *backend, const char *service_id, zlistx_t *router_ids)
{
    metcd_t *self = (metcd_t *) backend;
    char routers [32];
    metcd_entity_rel (routers, sizeof routers, EP__ENTITY_TYPE__ENTITY_ROUTER, "");
    size_t routers_size = strlen (routers);
    //  The whole range of routers was read: the commit compares it.
    if (self->in_batch && !self->routers_read_rev)
        self->routers_read_rev = self->mirror_rev;
    zlistx_t *found = zlistx_new ();
    zlistx_set_comparator (found, (czmq_comparator *) strcmp);
    for (metcd_kv_t *kv = (metcd_kv_t *) zhashx_first (self->mirror); kv;
         kv = (metcd_kv_t *) zhashx_next (self->mirror)) {
        const char *rel = (const char *) zhashx_cursor (self->mirror);
        if (strncmp (rel, routers, routers_size) == 0
        &&  !(self->in_batch && zhashx_lookup (self->staged, rel)) && s_hosts (kv, service_id))
            zlistx_add_end (found, (void *) (rel + routers_size));
    }
    for (metcd_kv_t *kv = self->in_batch? (metcd_kv_t *) zhashx_first (self->staged): NULL; kv;
         kv = (metcd_kv_t *) zhashx_next (self->staged)) {
        const char *rel = (const char *) zhashx_cursor (self->staged);
        if (strncmp (rel, routers, routers_size) == 0 && s_hosts (kv, service_id))
            zlistx_add_end (found, (void *) (rel + routers_size));
    }
    zlistx_sort (found);
    for (char *id = (char *) zlistx_first (found); id; id = (char *) zlistx_next (found))
        zlistx_add_end (router_ids, strdup (id));
    zlistx_destroy (&found);
    return 0;
}

static int
s_put (void *backend, Ep__EntityType type, const char *id, const char *name,
       uint64_t version, const Ep__Entity *entity)
{
    (void) name, (void) version;        //  both are in the packed entity
    metcd_t *self = (metcd_t *) backend;
    char rel [128];
    metcd_entity_rel (rel, sizeof rel, type, id);
    size_t size;
    uint8_t *body = modelstore_pack (&entity->base, &size);
    metcd_kv_t *kv = metcd_kv_new (rel, body, size, 0);
    free (body);
    if (!kv) {
        metcd_failed (self, "entity %s does not pack", rel);
        return -1;
    }
    s_stage (self, rel, kv);
    return 0;
}

static int
s_remove (void *backend, Ep__EntityType type, const char *id)
{
    metcd_t *self = (metcd_t *) backend;
    char rel [128];
    metcd_entity_rel (rel, sizeof rel, type, id);
    //  Removing what only this batch created stages nothing.
    metcd_kv_t *committed = (metcd_kv_t *) zhashx_lookup (self->mirror, rel);
    s_stage (self, rel, committed? metcd_kv_new (rel, NULL, 0, 0): NULL);
    return 0;
}

static int
s_record (void *backend, const Ep__ModelChange *change, uint64_t forget_through)
{
    metcd_t *self = (metcd_t *) backend;
    if (change->revision != self->staged_revision + 1) {
        //  The model's revision is behind the store's: another instance
        //  committed since this one started. Nothing of the batch may go.
        self->stale = true;
        metcd_failed (self, "revision %llu is not the next in etcd (the model there is at %llu: "
                      "another model instance wrote to the prefix); retry",
                      (unsigned long long) change->revision,
                      (unsigned long long) self->staged_revision);
        return -1;
    }
    char rel [64];
    snprintf (rel, sizeof rel, METCD_CHANGES "%020llu", (unsigned long long) change->revision);
    size_t size;
    uint8_t *body = modelstore_pack (&change->base, &size);
    s_stage (self, rel, metcd_kv_new (rel, body, size, 0));
    free (body);
    self->staged_revision = change->revision;
    if (forget_through > self->forget) {
        //  Records of this batch past retention are not written at all
        //  (a put inside the delete range is refused by etcd).
        self->forget = forget_through;
        zlistx_t *forgotten = zlistx_new ();
        for (void *kv = zhashx_first (self->staged); kv; kv = zhashx_next (self->staged)) {
            const char *key = (const char *) zhashx_cursor (self->staged);
            if (strncmp (key, METCD_CHANGES, strlen (METCD_CHANGES)) == 0
            &&  strtoull (key + strlen (METCD_CHANGES), NULL, 10) <= forget_through)
                zlistx_add_end (forgotten, strdup (key));
        }
        for (char *key = (char *) zlistx_first (forgotten); key; key = (char *) zlistx_next (forgotten)) {
            s_stage (self, key, NULL);
            free (key);
        }
        zlistx_destroy (&forgotten);
    }
    return 0;
}

static int
s_save_reply (void *backend, const char *caller_key, const char *request_id,
              const void *request, size_t size, zframe_t *reply, int64_t wall_ms)
{
    metcd_t *self = (metcd_t *) backend;
    char rel [96];
    snprintf (rel, sizeof rel, METCD_REPLIES "%020lld-%s-%08x", (long long) wall_ms,
              self->instance, ++self->reply_seq);
    size_t packed_size;
    uint8_t *packed = ep_replycache_entry_pack (caller_key, request_id, request, size, reply,
                                                wall_ms, &packed_size);
    metcd_kv_t *kv = metcd_kv_new (rel, packed, packed_size, 0);
    kv->lease = true;
    free (packed);
    s_stage (self, rel, kv);
    return 0;
}

static int
s_prune_replies (void *backend, ep_replycache_t *cache, int64_t wall_ms, size_t limit)
{
    //  Their lease expires them: nothing to stage.
    (void) backend, (void) cache, (void) wall_ms, (void) limit;
    return 0;
}

//  ---------------------------------------------------------------------
//  Lease markers: leases/<tt>/<id>, the entity's version as its value,
//  under the etcd lease; etcd deletes it when the lease ends.

static int
s_lease (void *backend, Ep__EntityType type, const char *id, uint64_t version, int64_t lease_id)
{
    metcd_t *self = (metcd_t *) backend;
    char entity [128], rel [160];
    metcd_entity_rel (entity, sizeof entity, type, id);
    snprintf (rel, sizeof rel, METCD_LEASES "%s", entity + strlen (METCD_ENTITIES));
    char value [64];
    snprintf (value, sizeof value, "version=%llu", (unsigned long long) version);
    metcd_kv_t *kv = metcd_kv_new (rel, (const uint8_t *) value, strlen (value), 0);
    kv->lease_id = lease_id;
    s_stage (self, rel, kv);
    return 0;
}

static bool
s_expired (void *backend, modelstore_expired_t *expired)
{
    metcd_t *self = (metcd_t *) backend;
    modelstore_expired_t *first = (modelstore_expired_t *) zlistx_detach (self->expired, NULL);
    if (first) {
        *expired = *first;
        free (first);
    }
    return first != NULL;
}

static void s_lease_watch_start (metcd_t *self, int64_t from);

//  A marker deleted (nothing else deletes them): its lease ended. Its
//  previous value says which version of the entity lived under it.
static void
s_lease_watch_reply (void *arg, const ep_etcd_reply_t *reply, const char *error)
{
    metcd_t *self = (metcd_t *) arg;
    if (!reply || reply->canceled || reply->code) {
        //  Compacted past it (or ended for good): on from what is left.
        int64_t from = reply && reply->compact_revision? reply->compact_revision: self->lease_watch_rev + 1;
        ep_log_warn ("the model's watch of lease markers ended (%s): resuming at etcd revision %lld",
                     reply? (reply->cancel_reason? reply->cancel_reason: "canceled"): error,
                     (long long) from);
        self->lease_watch = NULL;
        s_lease_watch_start (self, from);
        return;
    }
    for (size_t i = 0; i < reply->nevents; i++) {
        const ep_etcd_event_t *event = &reply->events [i];
        const char *rel = metcd_rel (self, &event->kv);
        int type, at = 0;
        unsigned long long version;
        if (!rel || !event->is_delete || !event->has_prev
        ||  sscanf (rel, METCD_LEASES "%2d/%n", &type, &at) != 1 || !at
        ||  sscanf ((const char *) event->prev_kv.value, "version=%llu", &version) != 1)
            continue;
        modelstore_expired_t *expired = (modelstore_expired_t *) zmalloc (sizeof *expired);
        expired->type = (Ep__EntityType) type;
        snprintf (expired->id, sizeof expired->id, "%s", rel + at);
        expired->version = version;
        zlistx_add_end (self->expired, expired);
    }
    if (reply->header.revision > self->lease_watch_rev)
        self->lease_watch_rev = reply->header.revision;
}

static void
s_lease_watch_start (metcd_t *self, int64_t from)
{
    uint8_t end [512];
    char *key = metcd_key (self, METCD_LEASES);
    ep_etcd_watch_req_t req = { .key = ep_etcd_str (key), .start_revision = from,
                                .prev_kv = true };
    req.range_end = ep_etcd_prefix_end (req.key, end, sizeof end);
    self->lease_watch = ep_etcd_watch (self->etcd, &req, s_lease_watch_reply, self);
    free (key);
}

static void
s_abandon (void *backend)
{
    metcd_batch_clear ((metcd_t *) backend);
}

//  ---------------------------------------------------------------------
//  Construction

static const modelstore_ops_t s_ops = {
    .destroy = s_destroy, .error = s_error, .state = s_state,
    .set_generation = s_set_generation, .begin = s_begin, .in_batch = s_in_batch,
    .write_begin = s_write_begin, .write_end = s_write_end, .get = s_get,
    .hosting = s_hosting, .put = s_put, .remove = s_remove, .record = s_record,
    .save_reply = s_save_reply, .prune_replies = s_prune_replies, .commit = metcd_commit,
    .abandon = s_abandon, .read = metcd_read, .view_open = metcd_view_open,
    .view_close = metcd_view_close, .load_replies = metcd_load_replies, .backup = metcd_backup,
    .tick = metcd_tick, .size = metcd_size, .current = s_current, .ready = s_ready,
    .retry = s_retry, .lease = s_lease, .expired = s_expired,
    .fault = s_fault, .probe = s_probe, .too_large = s_too_large,
    .lease_gone = s_lease_gone
};

metcd_t *
metcd_new (const modelstore_etcd_config_t *config)
{
    metcd_t *self = (metcd_t *) zmalloc (sizeof (metcd_t));
    self->etcd = config->etcd;
    self->prefix = strdup (config->prefix);
    self->prefix_size = strlen (self->prefix);
    self->max_txn_ops = config->max_txn_ops > 0? config->max_txn_ops: MAX_TXN_OPS_DEFAULT;
    self->replies_ttl_ms = config->replies_ttl_ms > 0? config->replies_ttl_ms: REPLIES_TTL_DEFAULT;
    self->calls = zlistx_new ();
    self->mirror = zhashx_new ();
    zhashx_set_destructor (self->mirror, metcd_kv_free);
    self->staged = zhashx_new ();
    self->reads = zhashx_new ();
    zhashx_set_destructor (self->reads, (czmq_destructor *) zstr_free);
    self->undo = zlistx_new ();
    zlistx_set_destructor (self->undo, s_undo_free);
    ep_random_hex (self->instance, 4);
    self->expired = zlistx_new ();
    zlistx_set_destructor (self->expired, (czmq_destructor *) zstr_free);
    return self;
}

typedef struct {
    bool done;                  //  the status call completed
    char error [512];           //  why it failed, "" if a member answered
} s_reach_t;

static void
s_reach_done (void *arg, const ep_etcd_reply_t *reply, const char *error)
{
    (void) reply;
    s_reach_t *reach = (s_reach_t *) arg;
    reach->done = true;
    snprintf (reach->error, sizeof reach->error, "%s", error? error: "");
}

int
modelstore_etcd_reachable (ep_etcd_t *etcd, const char *endpoints, modelstore_etcd_waiting_fn *waiting,
                           void *arg)
{
    ep_backoff_t backoff = ep_backoff (250, 5000);
    bool waited = false;
    while (!zsys_interrupted) {
        s_reach_t reach = { false, "" };
        ep_etcd_status (etcd, s_reach_done, &reach);
        while (!reach.done && !zsys_interrupted)
            ep_etcd_wait (etcd, 100);
        if (reach.done && !*reach.error) {
            if (waited)
                ep_log_info ("etcd answers at %s: loading the model", ep_etcd_endpoint (etcd));
            return 0;
        }
        if (!reach.done)
            break;
        char reason [768];
        snprintf (reason, sizeof reason, "cannot reach etcd at %s (each endpoint tried; last: %s): "
                  "retrying with backoff; check that a member runs there", endpoints, reach.error);
        if (!waited)
            ep_log_error ("%s", reason);
        waited = true;
        waiting (arg, reason);
        int64_t until = ep_mono_ms () + ep_backoff_next (&backoff);
        while (ep_mono_ms () < until && !zsys_interrupted)
            zclock_sleep ((int) (until - ep_mono_ms () < 100? until - ep_mono_ms (): 100));
    }
    return -1;
}

modelstore_t *
modelstore_etcd_new (const modelstore_etcd_config_t *config, char *err, size_t errlen)
{
    EP_ASSERT (config->etcd && config->prefix);
    size_t size = strlen (config->prefix);
    if (size == 0 || config->prefix [size - 1] != '/' || size > 200) {
        snprintf (err, errlen, "etcd prefix '%s': use a path of at most 200 characters ending "
                  "in / (/edgeplane/)", config->prefix);
        return NULL;
    }
    metcd_t *self = metcd_new (config);
    metcd_reload (self);
    while (self->reloading)
        ep_etcd_wait (self->etcd, 1000);
    metcd_state_t state;
    if (self->mirror_bad
    ||  !metcd_state_parse ((metcd_kv_t *) zhashx_lookup (self->mirror, METCD_STATE), &state)) {
        snprintf (err, errlen, "%s", self->mirror_bad? self->error:
                  "the prefix holds a state key that is not the model's: use a prefix of the model's own");
        s_destroy (self);
        return NULL;
    }
    self->lease_watch_rev = self->mirror_rev;
    s_lease_watch_start (self, self->mirror_rev + 1);
    return modelstore_new (&s_ops, self);
}
