/*  modelstore_etcd_reads.c: the etcd store's commits, queries, saved
    replies and backups (modelstore_etcd.h; the mirror and batches are in
    modelstore_etcd.c).
*/
#include "modelstore_etcd_int.h"
#include "entity.h"
#include "ep_log.h"
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sodium.h>

//  ---------------------------------------------------------------------
//  Commits: one transaction per batch

typedef struct {
    zhashx_t *staged;           //  key -> metcd_kv_t (owned)
    zhashx_t *reads;            //  key -> mod revision read
    int64_t begin_rev;          //  the mirror's revision at begin
    int64_t routers_read_rev;   //  the mirror's when routers were read (0: not)
    uint64_t forget;            //  change records deleted through
    bool lease;                 //  a value goes under the replies' lease
    bool markers;               //  a lease marker goes under a client's lease
    modelstore_done_fn *done;   //  the batch's completion
    void *arg;                  //  its argument
} s_commit_t;

static void
s_commit_free (void *data)
{
    s_commit_t *commit = (s_commit_t *) data;
    zhashx_destroy (&commit->staged);
    zhashx_destroy (&commit->reads);
    free (commit);
}

//  Ends a commit: done reports, and a failure leaves nothing of the batch.
static void
s_commit_end (metcd_t *self, s_commit_t *commit, int64_t revision, bool reload)
{
    self->committing = false;
    if (revision > 0)
        metcd_mirror_commit (self, commit->staged, revision);
    else
    if (reload)
        metcd_resync (self);
    commit->done (commit->arg, revision > 0? 0: -1, revision > 0? "": self->error);
}

//  A commit whose answer was lost: the state key says whether it applied
//  (its value carries the batch's nonce).
static void
s_settle_reply (metcd_t *self, metcd_call_t *call, const ep_etcd_reply_t *reply,
                const char *error)
{
    s_commit_t *commit = (s_commit_t *) call->data;
    char mark [32];
    snprintf (mark, sizeof mark, "batch=%s", self->nonce);
    if (reply && !reply->code && reply->nkvs == 1
    &&  strstr ((const char *) reply->kvs [0].value, mark)) {
        ep_log_warn ("the commit's answer from etcd was lost, but it applied (state key)");
        s_commit_end (self, commit, reply->kvs [0].mod_revision, false);
        return;
    }
    if (!reply || reply->code)
        metcd_failed (self, "etcd did not answer the commit, and then not whether it applied "
                      "(%s): its outcome is unknown; check etcd's health", reply? reply->error: error);
    s_commit_end (self, commit, 0, true);
}

static void
s_commit_reply (metcd_t *self, metcd_call_t *call, const ep_etcd_reply_t *reply,
                const char *error)
{
    s_commit_t *commit = (s_commit_t *) call->data;
    if (!reply) {
        metcd_failed (self, "etcd did not answer the commit (%s) and it did not apply: "
                      "nothing of the batch was written; retry", error);
        char *key = metcd_key (self, METCD_STATE);
        ep_etcd_range_t range = { .key = ep_etcd_str (key) };
        metcd_call_t *settle = metcd_call_new (self, s_settle_reply, commit, s_commit_free);
        call->data = NULL;
        if (ep_etcd_range (self->etcd, &range, metcd_call_cb, settle) != 0) {
            call->data = commit;
            settle->data = NULL;
            metcd_call_drop (settle);
            s_commit_end (self, commit, 0, true);
        }
        free (key);
        return;
    }
    if (metcd_nospace (self, reply, "the commit"))
        s_commit_end (self, commit, 0, false);
    else
    if (reply->code == EP_ETCD_NOT_FOUND && reply->error
    &&  strstr (reply->error, "requested lease not found")) {
        //  A put under a lease that ended (or never was): the whole
        //  transaction is refused. A client's lease (a marker) is its
        //  writer's to renew: the service runs the writes again apart, so
        //  only the one under the dead lease fails. The replies' lease may
        //  be the one gone too (it cannot be told apart): granted afresh.
        self->lease_id = 0;
        self->lease_gone = commit->markers;
        self->retry = !commit->markers;
        metcd_failed (self, "etcd refused the commit: %s (%s); nothing of the batch was written",
                      reply->error, commit->markers? "a write's lease_id ended or was never "
                      "granted: grant another lease and write again": "the saved replies' lease; retry");
        s_commit_end (self, commit, 0, false);
    }
    else
    if (reply->code) {
        bool too_many = reply->code == EP_ETCD_INVALID_ARGUMENT
                     && reply->error && strstr (reply->error, "too many operations");
        self->too_large = too_many;
        metcd_failed (self, "etcd refused the commit: %s%s; nothing of the batch was written",
                      reply->error,
                      too_many? " (raise the cluster's --max-txn-ops and EDGEPLANE_ETCD_MAX_TXN_OPS)":
                      reply->code == EP_ETCD_RESOURCE_EXHAUSTED? " (etcd's request size: lower "
                      "EDGEPLANE_MODEL_MAX_BATCH or raise the cluster's --max-request-bytes)": "");
        s_commit_end (self, commit, 0, false);
    }
    else
    if (!reply->succeeded) {
        metcd_failed (self, "the model in etcd changed under this batch (another model instance "
                      "wrote, or this one's copy was behind): nothing of it was written; retry");
        self->retry = true;
        //  The failure branch read the state key: written since the mirror
        //  saw it, another instance committed, and the watch brings that
        //  commit; else the mirror itself is wrong, and is read again.
        metcd_kv_t *state = (metcd_kv_t *) zhashx_lookup (self->mirror, METCD_STATE);
        const ep_etcd_reply_t *read = reply->nresponses == 1? &reply->responses [0]: NULL;
        int64_t written = read && read->nkvs == 1? read->kvs [0].mod_revision: 0;
        bool behind = written > (state? state->mod: 0);
        if (behind && written > self->catch_up_rev)
            self->catch_up_rev = written;
        s_commit_end (self, commit, 0, !behind);
    }
    else
        s_commit_end (self, commit, reply->header.revision, false);
}

//  key, kept in keys until the transaction is encoded.
static char *
s_keep (zlistx_t *keys, char *key)
{
    zlistx_add_end (keys, key);
    return key;
}

//  Adds the compares of commit to compares (of room max), keys into keys.
//  Too many for one transaction: one range compare on every entity stands
//  for them (stricter: any entity changed since begin fails the batch).
static size_t
s_compares (metcd_t *self, s_commit_t *commit, ep_etcd_compare_t *compares, size_t max,
            zlistx_t *keys, uint8_t *end, uint8_t *routers_end)
{
    size_t n = 0;
    metcd_kv_t *state = (metcd_kv_t *) zhashx_lookup (self->mirror, METCD_STATE);
    char *key = s_keep (keys, metcd_key (self, METCD_STATE));
    compares [n++] = (ep_etcd_compare_t) { .key = ep_etcd_str (key), .target = EP_ETCD_MOD,
                                           .result = EP_ETCD_EQUAL, .number = state? state->mod: 0 };
    size_t wanted = 1 + zhashx_size (commit->reads) + (commit->routers_read_rev? 1: 0);
    if (wanted > max) {
        key = s_keep (keys, metcd_key (self, METCD_ENTITIES));
        compares [n++] = (ep_etcd_compare_t) { .key = ep_etcd_str (key), .target = EP_ETCD_MOD,
            .result = EP_ETCD_LESS, .number = commit->begin_rev + 1,
            .range_end = ep_etcd_prefix_end (ep_etcd_str (key), end, 512) };
        return n;
    }
    for (int64_t *mod = (int64_t *) zhashx_first (commit->reads); mod;
         mod = (int64_t *) zhashx_next (commit->reads)) {
        key = s_keep (keys, metcd_key (self, (const char *) zhashx_cursor (commit->reads)));
        compares [n++] = (ep_etcd_compare_t) { .key = ep_etcd_str (key), .target = EP_ETCD_MOD,
                                               .result = EP_ETCD_EQUAL, .number = *mod };
    }
    if (commit->routers_read_rev) {
        char rel [32];
        metcd_entity_rel (rel, sizeof rel, EP__ENTITY_TYPE__ENTITY_ROUTER, "");
        key = s_keep (keys, metcd_key (self, rel));
        compares [n++] = (ep_etcd_compare_t) { .key = ep_etcd_str (key), .target = EP_ETCD_MOD,
            .result = EP_ETCD_LESS, .number = commit->routers_read_rev + 1,
            .range_end = ep_etcd_prefix_end (ep_etcd_str (key), routers_end, 512) };
    }
    return n;
}

//  Builds the transaction of commit and sends it.
static void
s_commit_submit (metcd_t *self, s_commit_t *commit)
{
    size_t max = (size_t) self->max_txn_ops;
    size_t nops = zhashx_size (commit->staged) + (commit->forget? 1: 0);
    if (nops > max) {
        metcd_failed (self, "the batch needs %zu operations in one etcd transaction, over "
                      "--max-txn-ops %zu: nothing of it was written; lower EDGEPLANE_MODEL_MAX_BATCH, "
                      "split large transactions, or raise the cluster's --max-txn-ops (and "
                      "EDGEPLANE_ETCD_MAX_TXN_OPS): a write is one revision, so deleting a service "
                      "rewrites every router hosting it in one transaction (docs/etcd.md, \"Limits\")",
                      nops, max);
        self->too_large = true;
        s_commit_end (self, commit, 0, false);
        s_commit_free (commit);
        return;
    }
    zlistx_t *keys = zlistx_new ();
    zlistx_set_destructor (keys, (czmq_destructor *) zstr_free);
    ep_etcd_compare_t *compares = (ep_etcd_compare_t *) calloc (max + 1, sizeof (ep_etcd_compare_t));
    uint8_t end [512], routers_end [512], forget_end [512];
    size_t ncompares = s_compares (self, commit, compares, max, keys, end, routers_end);
    ep_etcd_op_t *ops = (ep_etcd_op_t *) calloc (nops + 1, sizeof (ep_etcd_op_t));
    size_t n = 0;
    for (metcd_kv_t *kv = (metcd_kv_t *) zhashx_first (commit->staged); kv;
         kv = (metcd_kv_t *) zhashx_next (commit->staged)) {
        char *key = s_keep (keys, metcd_key (self, (const char *) zhashx_cursor (commit->staged)));
        if (kv->removed)
            ops [n++] = (ep_etcd_op_t) { .kind = EP_ETCD_DELETE, .u.del = { .key = ep_etcd_str (key) } };
        else
            ops [n++] = (ep_etcd_op_t) { .kind = EP_ETCD_PUT, .u.put = {
                .key = ep_etcd_str (key), .value = { kv->value, kv->size },
                .lease = kv->lease? self->lease_id: kv->lease_id } };
    }
    if (commit->forget) {
        char *from = s_keep (keys, metcd_key (self, METCD_CHANGES));
        char *to = zsys_sprintf ("%s%s%020llu", self->prefix, METCD_CHANGES,
                                 (unsigned long long) commit->forget + 1);
        memcpy (forget_end, to, strlen (to) + 1);
        ops [n++] = (ep_etcd_op_t) { .kind = EP_ETCD_DELETE, .u.del = {
            .key = ep_etcd_str (from), .range_end = { forget_end, strlen (to) } } };
        free (to);
    }
    char *state_key = s_keep (keys, metcd_key (self, METCD_STATE));
    ep_etcd_op_t read_state = { .kind = EP_ETCD_RANGE, .u.range = { .key = ep_etcd_str (state_key) } };
    ep_etcd_txn_t txn = { compares, ncompares, ops, n, &read_state, 1 };
    metcd_call_t *call = metcd_call_new (self, s_commit_reply, commit, s_commit_free);
    char err [256];
    if (ep_etcd_txn (self->etcd, &txn, metcd_call_cb, call, err, sizeof err) != 0) {
        metcd_failed (self, "the commit could not be encoded: %s", err);
        call->data = NULL;
        metcd_call_drop (call);
        s_commit_end (self, commit, 0, false);
        s_commit_free (commit);
    }
    free (ops);
    free (compares);
    zlistx_destroy (&keys);
}

static void
s_lease_reply (metcd_t *self, metcd_call_t *call, const ep_etcd_reply_t *reply,
               const char *error)
{
    s_commit_t *commit = (s_commit_t *) call->data;
    if (!reply || reply->code || !reply->lease_id) {
        //  A lease grant is a write: refused over the quota too.
        if (!metcd_nospace (self, reply, "the lease of the saved replies"))
            metcd_failed (self, "etcd granted no lease for the saved replies (%s): nothing of "
                          "the batch was written; retry", reply? reply->error: error);
        s_commit_end (self, commit, 0, false);
        return;
    }
    self->lease_id = reply->lease_id;
    self->lease_minute = ep_wall_ms () / 60000;
    call->data = NULL;
    s_commit_submit (self, commit);
}

//  Takes the open batch over as a commit, with the state written in it.
static s_commit_t *
s_commit_take (metcd_t *self, modelstore_done_fn *done, void *arg)
{
    s_commit_t *commit = (s_commit_t *) zmalloc (sizeof (s_commit_t));
    commit->done = done;
    commit->arg = arg;
    commit->staged = self->staged;
    zhashx_set_destructor (commit->staged, metcd_kv_free);
    self->staged = zhashx_new ();
    commit->reads = self->reads;
    self->reads = zhashx_new ();
    zhashx_set_destructor (self->reads, (czmq_destructor *) zstr_free);
    commit->begin_rev = self->begin_rev;
    commit->routers_read_rev = self->routers_read_rev;
    commit->forget = self->forget;
    for (metcd_kv_t *kv = (metcd_kv_t *) zhashx_first (commit->staged); kv;
         kv = (metcd_kv_t *) zhashx_next (commit->staged))
        commit->lease |= kv->lease, commit->markers |= kv->lease_id != 0;
    if (zhashx_size (commit->staged) || commit->forget) {
        //  Every batch writes the state: the compare on it is what makes
        //  two instances' batches exclusive, and the nonce settles a
        //  commit whose answer was lost.
        metcd_state_t state;
        metcd_state_parse ((metcd_kv_t *) zhashx_lookup (self->mirror, METCD_STATE), &state);
        state.revision = self->staged_revision;
        ep_random_hex (self->nonce, 8);
        char *value = metcd_state_format (self, &state, self->nonce);
        zhashx_update (commit->staged, METCD_STATE,
                       metcd_kv_new (METCD_STATE, (const uint8_t *) value, strlen (value), 0));
        free (value);
    }
    metcd_batch_clear (self);
    return commit;
}

void
metcd_commit (void *backend, modelstore_done_fn *done, void *arg)
{
    metcd_t *self = (metcd_t *) backend;
    if (!self->in_batch || self->stale) {
        if (!self->in_batch)
            metcd_failed (self, "no batch to commit");
        metcd_batch_clear (self);
        done (arg, -1, self->error);
        return;
    }
    self->retry = false;
    self->too_large = false;
    self->lease_gone = false;
    s_commit_t *commit = s_commit_take (self, done, arg);
    if (zhashx_size (commit->staged) == 0) {
        done (arg, 0, "");
        s_commit_free (commit);
        return;
    }
    self->committing = true;
    //  One lease per wall-clock minute for the replies saved in it, living
    //  a minute longer than they must.
    if (commit->lease && (!self->lease_id || self->lease_minute != ep_wall_ms () / 60000)) {
        metcd_call_t *call = metcd_call_new (self, s_lease_reply, commit, s_commit_free);
        if (ep_etcd_lease_grant (self->etcd, self->replies_ttl_ms / 1000 + 60, metcd_call_cb, call) != 0) {
            call->data = NULL;
            metcd_call_drop (call);
            metcd_failed (self, "the lease request could not be encoded");
            s_commit_end (self, commit, 0, false);
            s_commit_free (commit);
        }
        return;
    }
    s_commit_submit (self, commit);
}

//  ---------------------------------------------------------------------
//  Scans: ranges read page by page at one revision

typedef struct _s_scan_t s_scan_t;

//  Takes one key of the scan: 1 if it counts as a row, 0 if skipped, -1 to stop.
typedef int (s_scan_kv_fn) (s_scan_t *scan, const char *rel, const ep_etcd_kv_t *kv);
//  The scan's outcome.
typedef void (s_scan_end_fn) (s_scan_t *scan, int rc, const char *error);

typedef struct {
    bool done;                  //  the scan ended
    int rc;                     //  how
    int count;                  //  rows it counted
} s_result_t;

struct _s_scan_t {
    metcd_t *self;              //  the store
    char *within;               //  the keys under this (relative to the prefix)
    char *from;                 //  next page from this key
    bool after;                 //  or just after it
    int64_t revision;           //  pinned (0: the first page's)
    uint32_t left;              //  rows still wanted, if limited
    bool limited;               //  a limit applies
    bool filtered;              //  rows are skipped by a filter: pages of METCD_PAGE
    s_scan_kv_fn *kv_fn;        //  each key
    s_scan_end_fn *end_fn;      //  the end
    modelstore_query_t *query;  //  a query's
    modelstore_row_fn *row;     //  its rows
    modelstore_done_fn *done;   //  its completion
    void *arg;                  //  their argument
    ep_replycache_t *cache;     //  saved replies are loaded into it
    int64_t wall_ms, now_ms;    //  at these times
    s_result_t *result;         //  a blocking caller's
};

static void
s_scan_free (void *data)
{
    s_scan_t *scan = (s_scan_t *) data;
    free (scan->within);
    free (scan->from);
    free (scan);
}

static s_scan_t *
s_scan_new (metcd_t *self, const char *within, const char *from, bool after, int64_t revision)
{
    s_scan_t *scan = (s_scan_t *) zmalloc (sizeof (s_scan_t));
    scan->self = self;
    scan->within = strdup (within);
    scan->from = strdup (from);
    scan->after = after;
    scan->revision = revision;
    return scan;
}

static void s_scan_page (s_scan_t *scan);

static void
s_scan_reply (metcd_t *self, metcd_call_t *call, const ep_etcd_reply_t *reply, const char *error)
{
    s_scan_t *scan = (s_scan_t *) call->data;
    if (!reply || reply->code) {
        if (reply && reply->code == EP_ETCD_OUT_OF_RANGE)
            metcd_failed (self, "etcd compacted revision %lld of this read: start it again",
                          (long long) scan->revision);
        else
            metcd_failed (self, "cannot read %s%s from etcd: %s", self->prefix, scan->within,
                          reply? reply->error: error);
        scan->end_fn (scan, -1, self->error);
        return;
    }
    if (!scan->revision)
        scan->revision = reply->header.revision;
    bool stop = false;
    for (size_t i = 0; !stop && i < reply->nkvs; i++) {
        const char *rel = metcd_rel (self, &reply->kvs [i]);
        int taken = rel? scan->kv_fn (scan, rel, &reply->kvs [i]): 0;
        if (taken > 0 && scan->limited)
            scan->left--;
        stop = taken < 0 || (scan->limited && scan->left == 0);
    }
    if (stop || !reply->more || reply->nkvs == 0) {
        scan->end_fn (scan, 0, "");
        return;
    }
    free (scan->from);
    scan->from = strdup (metcd_rel (self, &reply->kvs [reply->nkvs - 1]));
    scan->after = true;
    call->data = NULL;          //  the scan goes on in the next call
    s_scan_page (scan);
}

static void
s_scan_page (s_scan_t *scan)
{
    metcd_t *self = scan->self;
    char *key = metcd_key (self, scan->from);
    char *within = metcd_key (self, scan->within);
    uint8_t end [512];
    ep_etcd_range_t range = { .key = { key, strlen (key) + (scan->after? 1: 0) },
                              .revision = scan->revision, .limit = METCD_PAGE };
    range.range_end = ep_etcd_prefix_end (ep_etcd_str (within), end, sizeof end);
    if (scan->limited && scan->left < METCD_PAGE && !scan->filtered)
        range.limit = scan->left;
    metcd_call_t *call = metcd_call_new (self, s_scan_reply, scan, s_scan_free);
    if (ep_etcd_range (self->etcd, &range, metcd_call_cb, call) != 0) {
        call->data = NULL;
        metcd_call_drop (call);
        metcd_failed (self, "a range of %s could not be encoded", scan->within);
        scan->end_fn (scan, -1, self->error);
        s_scan_free (scan);
    }
    free (within);
    free (key);
}

static void
s_scan_start (s_scan_t *scan, s_scan_kv_fn *kv_fn, s_scan_end_fn *end_fn)
{
    scan->kv_fn = kv_fn;
    scan->end_fn = end_fn;
    s_scan_page (scan);
}

//  ---------------------------------------------------------------------
//  Queries

static void
s_query_end (s_scan_t *scan, int rc, const char *error)
{
    scan->done (scan->arg, rc, error);
}

//  The entity rows of queries: filtered by LIST's name and hosts_service.
static int
s_entity_kv (s_scan_t *scan, const char *rel, const ep_etcd_kv_t *kv)
{
    Ep__Entity *entity = ep__entity__unpack (NULL, kv->value_size, kv->value);
    entity_fields_t fields;
    if (!entity || !entity_fields (entity, &fields)) {
        if (entity)
            ep__entity__free_unpacked (entity, NULL);
        ep_log_warn ("etcd key %s%s is not a packed entity: skipped", scan->self->prefix, rel);
        return 0;
    }
    const modelstore_query_t *query = scan->query;
    bool match = !query->name || (fields.name && *fields.name && streq (*fields.name, query->name));
    if (query->hosts_service) {
        match = false;
        for (size_t i = 0; entity->router && i < entity->router->n_hosted; i++)
            match |= entity->router->hosted [i]->service_id
                  && streq (entity->router->hosted [i]->service_id, query->hosts_service);
    }
    modelstore_row_t row = {
        .type = (Ep__EntityType) atoi (rel + strlen (METCD_ENTITIES)),
        .id = rel + strlen (METCD_ENTITIES) + 3,
        .revision = *fields.meta? (*fields.meta)->version: 0,
        .body = kv->value, .size = kv->value_size
    };
    ep__entity__free_unpacked (entity, NULL);
    if (!match)
        return 0;
    return scan->row (scan->arg, &row)? 1: -1;
}

static int
s_change_kv (s_scan_t *scan, const char *rel, const ep_etcd_kv_t *kv)
{
    modelstore_row_t row = { .revision = strtoull (rel + strlen (METCD_CHANGES), NULL, 10),
                             .body = kv->value, .size = kv->value_size };
    return scan->row (scan->arg, &row)? 1: -1;
}

static int
s_oldest_kv (s_scan_t *scan, const char *rel, const ep_etcd_kv_t *kv)
{
    (void) kv;
    scan->query->oldest = strtoull (rel + strlen (METCD_CHANGES), NULL, 10);
    return -1;
}

//  CHANGES: the oldest record known, then the records after since, at
//  the revision the first read was served at.
static void
s_oldest_end (s_scan_t *scan, int rc, const char *error)
{
    if (rc != 0) {
        s_query_end (scan, rc, error);
        return;
    }
    char from [64];
    snprintf (from, sizeof from, METCD_CHANGES "%020llu", (unsigned long long) scan->query->since + 1);
    s_scan_t *changes = s_scan_new (scan->self, METCD_CHANGES, from, false, scan->revision);
    *changes = (s_scan_t) { .self = changes->self, .within = changes->within, .from = changes->from,
                            .revision = changes->revision, .query = scan->query, .row = scan->row,
                            .done = scan->done, .arg = scan->arg,
                            .limited = scan->query->limit > 0, .left = scan->query->limit };
    s_scan_start (changes, s_change_kv, s_query_end);
}

struct _modelstore_view_t {
    int64_t etcd_rev;           //  the etcd revision its ranges are pinned at
};

void
metcd_read (void *backend, modelstore_query_t *query, modelstore_row_fn *row,
            modelstore_done_fn *done, void *arg)
{
    metcd_t *self = (metcd_t *) backend;
    char within [64], from [160];
    int64_t revision = 0;
    bool after = query->after_id && *query->after_id;
    s_scan_kv_fn *kv_fn = s_entity_kv;
    s_scan_end_fn *end_fn = s_query_end;
    switch (query->kind) {
        case MODELSTORE_GET: {
            char rel [128];
            metcd_entity_rel (rel, sizeof rel, query->type, query->id);
            metcd_kv_t *kv = (metcd_kv_t *) zhashx_lookup (self->mirror, rel);
            if (kv) {
                modelstore_row_t found = { .type = query->type, .id = query->id,
                                           .revision = kv->version, .body = kv->value,
                                           .size = kv->size };
                row (arg, &found);
            }
            done (arg, 0, "");
            return;
        }
        case MODELSTORE_LIST:
            metcd_entity_rel (within, sizeof within, query->type, "");
            metcd_entity_rel (from, sizeof from, query->type, after? query->after_id: "");
            break;
        case MODELSTORE_PAGE:
            snprintf (within, sizeof within, "%s", METCD_ENTITIES);
            metcd_entity_rel (from, sizeof from, (Ep__EntityType) query->after_type,
                              after? query->after_id: "");
            revision = query->view->etcd_rev;
            break;
        case MODELSTORE_ALL:
            snprintf (within, sizeof within, "%s", METCD_ENTITIES);
            snprintf (from, sizeof from, "%s", METCD_ENTITIES);
            break;
        case MODELSTORE_CHANGES:
            query->oldest = 0;
            snprintf (within, sizeof within, "%s", METCD_CHANGES);
            snprintf (from, sizeof from, "%s", METCD_CHANGES);
            kv_fn = s_oldest_kv;
            end_fn = s_oldest_end;
            break;
    }
    s_scan_t *scan = s_scan_new (self, within, from, after && query->kind != MODELSTORE_ALL, revision);
    scan->query = query;
    scan->row = row;
    scan->done = done;
    scan->arg = arg;
    scan->filtered = query->name || query->hosts_service;
    scan->limited = (query->kind == MODELSTORE_PAGE && query->limit > 0)
                 || query->kind == MODELSTORE_CHANGES;
    scan->left = query->kind == MODELSTORE_CHANGES? 1: query->limit;
    s_scan_start (scan, kv_fn, end_fn);
}

modelstore_view_t *
metcd_view_open (void *backend, uint64_t *revision)
{
    metcd_t *self = (metcd_t *) backend;
    metcd_state_t state;
    metcd_state_parse ((metcd_kv_t *) zhashx_lookup (self->mirror, METCD_STATE), &state);
    *revision = state.revision;
    //  The mirror holds every change up to its revision: the model's state
    //  is the same there as at the state key's own.
    modelstore_view_t *view = (modelstore_view_t *) zmalloc (sizeof (modelstore_view_t));
    view->etcd_rev = self->mirror_rev;
    return view;
}

void
metcd_view_close (void *backend, modelstore_view_t *view)
{
    (void) backend;
    free (view);
}

//  ---------------------------------------------------------------------
//  Saved replies

static int
s_reply_kv (s_scan_t *scan, const char *rel, const ep_etcd_kv_t *kv)
{
    int rc = ep_replycache_entry_load (scan->cache, kv->value, kv->value_size, scan->wall_ms,
                                       scan->now_ms);
    if (rc < 0)
        ep_log_warn ("etcd key %s%s is not a saved reply: skipped", scan->self->prefix, rel);
    if (rc > 0)
        scan->result->count++;
    return rc > 0? 1: 0;
}

static void
s_blocking_end (s_scan_t *scan, int rc, const char *error)
{
    (void) error;
    scan->result->done = true;
    scan->result->rc = rc;
}

int
metcd_load_replies (void *backend, ep_replycache_t *cache, int64_t wall_ms, int64_t now_ms)
{
    metcd_t *self = (metcd_t *) backend;
    s_scan_t *scan = s_scan_new (self, METCD_REPLIES, METCD_REPLIES, false, 0);
    s_result_t result = { 0 };
    //  From now on the watch adds the replies other instances save, so a
    //  retry sent to this one gets the first reply too.
    self->cache = cache;
    scan->cache = cache;
    scan->wall_ms = wall_ms;
    scan->now_ms = now_ms;
    scan->result = &result;
    s_scan_start (scan, s_reply_kv, s_blocking_end);
    metcd_wait (self, &result.done);
    return result.rc == 0? result.count: -1;
}

//  ---------------------------------------------------------------------
//  Backups: an etcd snapshot of the member the client talks to (the whole
//  cluster's keys, as `etcdctl snapshot save` writes them), into a file
//  beside path renamed over it once complete and durable. A cluster made
//  from it by `etcdctl snapshot restore` has a new cluster id, which the
//  state key's tells apart: the model takes a new generation there.

typedef struct {
    metcd_t *self;              //  the store, NULL once it is destroyed
    FILE *file;                 //  the temporary file
    char *tmp, *path;           //  its name, and the backup's
    uint64_t bytes;             //  written so far
    crypto_hash_sha256_state sha;   //  of the chunks before the last one
    uint8_t *held;              //  the last chunk so far: the SHA-256 if it is the last
    size_t held_size;
    char error [512];           //  why it failed
    modelstore_done_fn *done;   //  the caller's
    void *arg;
} s_snapshot_t;

static void
s_snapshot_chunk (void *arg, const ep_etcd_reply_t *reply, const char *error)
{
    s_snapshot_t *snap = (s_snapshot_t *) arg;
    if (reply) {
        if (!*snap->error && fwrite (reply->blob, 1, reply->blob_size, snap->file) != reply->blob_size)
            snprintf (snap->error, sizeof snap->error, "cannot write %s: %s", snap->tmp, strerror (errno));
        snap->bytes += reply->blob_size;
        //  etcd's last chunk is the SHA-256 of the others: checked here so
        //  that a damaged transfer fails now, not at the restore.
        if (snap->held)
            crypto_hash_sha256_update (&snap->sha, snap->held, snap->held_size);
        free (snap->held);
        snap->held = (uint8_t *) malloc (reply->blob_size + 1);
        memcpy (snap->held, reply->blob, reply->blob_size);
        snap->held_size = reply->blob_size;
        return;
    }
    //  The end: whole (error NULL) or not.
    if (error && !*snap->error)
        snprintf (snap->error, sizeof snap->error, "%s", error);
    uint8_t sha [crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final (&snap->sha, sha);
    if (!*snap->error && (snap->bytes <= sizeof sha || snap->held_size != sizeof sha
                          || memcmp (sha, snap->held, sizeof sha) != 0))
        snprintf (snap->error, sizeof snap->error, "the snapshot etcd sent does not end with the "
                  "SHA-256 of its bytes (%llu bytes): damaged or cut short",
                  (unsigned long long) snap->bytes);
    if (!*snap->error && (fflush (snap->file) != 0 || fsync (fileno (snap->file)) != 0))
        snprintf (snap->error, sizeof snap->error, "cannot write %s: %s", snap->tmp, strerror (errno));
    if (fclose (snap->file) != 0 && !*snap->error)
        snprintf (snap->error, sizeof snap->error, "cannot write %s: %s", snap->tmp, strerror (errno));
    if (!*snap->error && rename (snap->tmp, snap->path) != 0)
        snprintf (snap->error, sizeof snap->error, "cannot rename %s to %s: %s", snap->tmp,
                  snap->path, strerror (errno));
    if (*snap->error)
        remove (snap->tmp);
    else {
        //  The rename durable too.
        char *copy = strdup (snap->path);
        int dir = open (dirname (copy), O_RDONLY | O_DIRECTORY);
        if (dir >= 0) {
            fsync (dir);
            close (dir);
        }
        free (copy);
    }
    metcd_t *self = snap->self;
    if (self) {
        self->snapshot = NULL;
        if (*snap->error)
            metcd_failed (self, "backup to %s failed: %s", snap->path, snap->error);
        snap->done (snap->arg, *snap->error? -1: 0, *snap->error? self->error: "");
    }
    free (snap->held);
    free (snap->tmp);
    free (snap->path);
    free (snap);
}

void
metcd_backup (void *backend, const char *path, modelstore_done_fn *done, void *arg)
{
    metcd_t *self = (metcd_t *) backend;
    if (self->snapshot) {
        metcd_failed (self, "a backup is already being written; retry when it is done");
        done (arg, -1, self->error);
        return;
    }
    s_snapshot_t *snap = (s_snapshot_t *) zmalloc (sizeof (s_snapshot_t));
    snap->path = strdup (path);
    char nonce [9];
    ep_random_hex (nonce, 4);
    snap->tmp = zsys_sprintf ("%s.tmp-%s", path, nonce);
    int fd = open (snap->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    snap->file = fd >= 0? fdopen (fd, "wb"): NULL;
    if (!snap->file) {
        metcd_failed (self, "cannot write the backup %s: %s", snap->tmp, strerror (errno));
        if (fd >= 0)
            close (fd);
        free (snap->tmp);
        free (snap->path);
        free (snap);
        done (arg, -1, self->error);
        return;
    }
    crypto_hash_sha256_init (&snap->sha);
    snap->self = self;
    snap->done = done;
    snap->arg = arg;
    self->snapshot = snap;
    ep_etcd_snapshot (self->etcd, s_snapshot_chunk, snap);
}

void
metcd_backup_drop (metcd_t *self)
{
    //  The stream goes on into the file (the client outlives the store);
    //  nobody is told.
    if (self->snapshot)
        ((s_snapshot_t *) self->snapshot)->self = NULL;
    self->snapshot = NULL;
}

//  ---------------------------------------------------------------------
//  Loads into an empty prefix (migrations)

static void
s_load_reply (metcd_t *self, metcd_call_t *call, const ep_etcd_reply_t *reply,
                 const char *error)
{
    s_result_t *result = (s_result_t *) call->data;
    result->done = true;
    result->rc = reply && !reply->code && (reply->kind != EP_ETCD_TXN || reply->succeeded)? 0: -1;
    result->count = reply? (int) reply->count: 0;
    if (result->rc != 0)
        metcd_failed (self, "%s", reply? (reply->error? reply->error: "the prefix is no longer empty"): error);
}

//  Puts keys [from, to) of a load in one transaction, if the prefix
//  holds no state yet (a second load racing this one fails).
static int
s_load_put (metcd_t *self, zlistx_t *keys, zlistx_t *values, size_t from, size_t to)
{
    ep_etcd_op_t *ops = (ep_etcd_op_t *) calloc (to - from + 1, sizeof (ep_etcd_op_t));
    zlistx_t *full = zlistx_new ();
    zlistx_set_destructor (full, (czmq_destructor *) zstr_free);
    char *rel = (char *) zlistx_first (keys);
    zchunk_t *value = (zchunk_t *) zlistx_first (values);
    for (size_t i = 0; rel; i++, rel = (char *) zlistx_next (keys), value = (zchunk_t *) zlistx_next (values))
        if (i >= from && i < to) {
            char *key = s_keep (full, metcd_key (self, rel));
            ops [i - from] = (ep_etcd_op_t) { .kind = EP_ETCD_PUT, .u.put = { .key = ep_etcd_str (key),
                .value = { zchunk_data (value), zchunk_size (value) } } };
        }
    char *state = metcd_key (self, METCD_STATE);
    ep_etcd_compare_t absent = { .key = ep_etcd_str (state), .target = EP_ETCD_CREATE,
                                 .result = EP_ETCD_EQUAL, .number = 0 };
    ep_etcd_txn_t txn = { &absent, 1, ops, to - from, NULL, 0 };
    s_result_t result = { 0 };
    metcd_call_t *call = metcd_call_new (self, s_load_reply, &result, NULL);
    char err [256];
    if (ep_etcd_txn (self->etcd, &txn, metcd_call_cb, call, err, sizeof err) != 0) {
        metcd_call_drop (call);
        metcd_failed (self, "%s", err);
    }
    else
        metcd_wait (self, &result.done);
    free (state);
    zlistx_destroy (&full);
    free (ops);
    return result.done? result.rc: -1;
}

//  Loads keys and values (the state key last) into the empty prefix of
//  self: the loader of migrations. Returns 0 or -1 (why in
//  self->error).
static int
s_load (metcd_t *self, zlistx_t *keys, zlistx_t *values)
{
    size_t size = strlen (self->prefix);
    if (size == 0 || self->prefix [size - 1] != '/' || size > 200) {
        metcd_failed (self, "etcd prefix '%s': use a path of at most 200 characters ending in / "
                      "(/edgeplane/)", self->prefix);
        return -1;
    }
    //  The prefix must be empty: a load does not merge.
    uint8_t end [512];
    ep_etcd_range_t range = { .key = ep_etcd_str (self->prefix), .count_only = true };
    range.range_end = ep_etcd_prefix_end (range.key, end, sizeof end);
    s_result_t result = { 0 };
    metcd_call_t *call = metcd_call_new (self, s_load_reply, &result, NULL);
    if (ep_etcd_range (self->etcd, &range, metcd_call_cb, call) != 0)
        metcd_call_drop (call);
    else
        metcd_wait (self, &result.done);
    int rc = result.done && result.rc == 0? 0: -1;
    if (rc == 0 && result.count > 0) {
        metcd_failed (self, "%s holds %d keys: load into an empty prefix (another "
                      "EDGEPLANE_ETCD_PREFIX, or delete that one first)", self->prefix, result.count);
        rc = -1;
    }
    //  In transactions of at most --max-txn-ops, the state key last: a
    //  load cut short leaves no state, and the model refuses nothing
    //  but starts a new store; run the load again after deleting it.
    size_t count = zlistx_size (keys), step = (size_t) self->max_txn_ops;
    EP_ASSERT (count > 0);
    for (size_t from = 0; rc == 0 && from < count - 1; from += step)
        rc = s_load_put (self, keys, values, from, from + step < count - 1? from + step: count - 1);
    if (rc == 0)
        rc = s_load_put (self, keys, values, count - 1, count);
    return rc;
}

//  ---------------------------------------------------------------------
//  Migrations: another store's entities and change records, in this
//  store's layout, through the loader above.

typedef struct {
    zlistx_t *keys;             //  keys under the prefix
    zlistx_t *values;           //  their values (zchunk_t)
    bool changes;               //  the rows are change records (else entities)
    size_t rows;                //  rows taken by the query
    bool done;                  //  the query ended
    int rc;                     //  how
    char error [512];           //  why it failed
} s_import_t;

static bool
s_import_row (void *arg, const modelstore_row_t *row)
{
    s_import_t *import = (s_import_t *) arg;
    char rel [256];
    if (!import->changes)
        metcd_entity_rel (rel, sizeof rel, row->type, row->id);
    else
        snprintf (rel, sizeof rel, METCD_CHANGES "%020llu", (unsigned long long) row->revision);
    zlistx_add_end (import->keys, strdup (rel));
    zlistx_add_end (import->values, zchunk_new (row->body, row->size));
    import->rows++;
    return true;
}

static void
s_import_done (void *arg, int rc, const char *error)
{
    s_import_t *import = (s_import_t *) arg;
    import->done = true;
    import->rc = rc;
    snprintf (import->error, sizeof import->error, "%s", error? error: "");
}

//  Runs query on source into import; 0 or -1 (why in import->error).
static int
s_import_query (modelstore_t *source, modelstore_query_t *query, s_import_t *import)
{
    import->done = false;
    modelstore_read (source, query, s_import_row, s_import_done, import);
    //  A source that completes inline (SQLite, the only one to migrate from).
    EP_ASSERT (import->done);
    return import->rc;
}

int
modelstore_etcd_import (const modelstore_etcd_config_t *config, modelstore_t *source,
                        modelstore_etcd_import_t *summary, char *err, size_t errlen)
{
    memset (summary, 0, sizeof *summary);
    metcd_t *self = metcd_new (config);
    s_import_t import = { .keys = zlistx_new (), .values = zlistx_new () };
    zlistx_set_destructor (import.keys, (czmq_destructor *) zstr_free);
    zlistx_set_destructor (import.values, (czmq_destructor *) zchunk_destroy);
    metcd_state_t state = { 0 };
    bool restored;
    int rc = modelstore_state (source, &state.revision, state.generation, &restored);
    if (rc != 0)
        snprintf (import.error, sizeof import.error, "%s", modelstore_error (source));
    modelstore_query_t all = { .kind = MODELSTORE_ALL };
    if (rc == 0)
        rc = s_import_query (source, &all, &import);
    summary->entities = import.rows;
    //  The retained change records too: the model's history in etcd goes
    //  on from the same revision (followers resync anyway: new generation).
    modelstore_query_t changes = { .kind = MODELSTORE_CHANGES, .since = 0 };
    import.changes = true;
    if (rc == 0)
        rc = s_import_query (source, &changes, &import);
    summary->changes = import.rows - summary->entities;
    summary->oldest = changes.oldest;
    summary->revision = state.revision;
    if (rc != 0)
        snprintf (err, errlen, "cannot read the model to migrate: %s", import.error);
    else {
        //  Marked restored: the model takes a new generation at its start.
        state.restored = true;
        zlistx_add_end (import.keys, strdup (METCD_STATE));
        char *value = metcd_state_format (self, &state, "migrated");
        zlistx_add_end (import.values, zchunk_new (value, strlen (value)));
        free (value);
        rc = s_load (self, import.keys, import.values);
        if (rc != 0)
            snprintf (err, errlen, "migration into %s failed: %s", self->prefix, self->error);
    }
    zlistx_destroy (&import.keys);
    zlistx_destroy (&import.values);
    metcd_destroy (&self);
    return rc;
}

//  ---------------------------------------------------------------------
//  Housekeeping

void
metcd_tick (void *backend)
{
    metcd_t *self = (metcd_t *) backend;
    if (self->mirror_bad && !self->in_batch && !self->committing)
        metcd_resync (self);
}

int64_t
metcd_size (void *backend)
{
    (void) backend;
    return -1;
}
