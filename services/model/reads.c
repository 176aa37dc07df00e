/*  reads.c: the model's read requests (see reads.h).

    Each read is a store query whose rows build the reply as they come
    (unpacked, checked against the request's filters and the reply's size
    budget) and whose completion finishes and hands the reply back. With
    SQLite all of it happens before reads_serve returns.
*/
#include "reads.h"
#include "entity.h"
#include "ep_log.h"
#include "ep_model_view.h"

#define SNAPSHOT_IDLE_MS    30000   //  a snapshot not continued for this long ends
#define SNAPSHOT_MAX        16      //  concurrent snapshots; the oldest is ended
#define PAGE_DEFAULT        100
#define PAGE_MAX            1000
#define CHANGES_DEFAULT     1000

struct _reads_t {
    modelstore_t *store;        //  the store (borrowed)
    zhashx_t *snapshots;        //  id -> s_snapshot_t
};

typedef struct {
    char id [17];               //  token prefix
    modelstore_t *store;        //  the store the view is of
    modelstore_view_t *view;    //  the store's view, pinned to revision
    uint64_t revision;          //  the revision it is pinned to
    int64_t last_used_ms;       //  for expiry
} s_snapshot_t;

//  A read in progress: the store query, and what its rows gave so far.
typedef struct {
    reads_t *reads;             //  the reads it is one of
    const Ep__ModelRequest *request;    //  what was asked
    uint64_t revision;          //  the model's revision when it was asked
    const char *generation;     //  and its generation
    model_result_t *result;     //  the answer being built
    model_done_fn *done;        //  the caller's completion
    void *arg;                  //  its argument
    modelstore_query_t query;   //  what the store reads
    uint32_t page_size;         //  list, snapshot: entities per page
    uint32_t rows;              //  snapshot: rows taken
    size_t bytes;               //  snapshot, changes: reply bytes so far
    bool more;                  //  snapshot: rows remain after this page
    s_snapshot_t *snapshot;     //  snapshot: the pinned view
    char after [65];            //  snapshot: the token's last id
    char last [65];             //  list, snapshot: the last id taken
    int last_type;              //  snapshot: the last type taken
    Ep__Entity **entities;      //  status: every entity, for the digest
    size_t count;               //  their number
} s_read_t;

//  ---------------------------------------------------------------------
//  Snapshots

static void
s_snapshot_destroy (void **item)
{
    s_snapshot_t *snapshot = (s_snapshot_t *) *item;
    if (snapshot) {
        modelstore_view_close (snapshot->store, &snapshot->view);
        free (snapshot);
        *item = NULL;
    }
}

void
reads_expire (reads_t *self, int64_t now_ms)
{
    zlistx_t *expired = zlistx_new ();
    s_snapshot_t *snapshot = (s_snapshot_t *) zhashx_first (self->snapshots);
    for (; snapshot; snapshot = (s_snapshot_t *) zhashx_next (self->snapshots))
        if (now_ms - snapshot->last_used_ms >= SNAPSHOT_IDLE_MS)
            zlistx_add_end (expired, snapshot->id);
    for (char *id = (char *) zlistx_first (expired); id; id = (char *) zlistx_next (expired))
        zhashx_delete (self->snapshots, id);
    zlistx_destroy (&expired);
}

//  Opens a store view pinned to the current committed state.
static s_snapshot_t *
s_snapshot_open (reads_t *self, int64_t now_ms)
{
    if (zhashx_size (self->snapshots) >= SNAPSHOT_MAX) {
        //  End the least recently used one.
        s_snapshot_t *oldest = NULL;
        s_snapshot_t *s = (s_snapshot_t *) zhashx_first (self->snapshots);
        for (; s; s = (s_snapshot_t *) zhashx_next (self->snapshots))
            if (!oldest || s->last_used_ms < oldest->last_used_ms)
                oldest = s;
        zhashx_delete (self->snapshots, oldest->id);
    }
    uint64_t revision;
    modelstore_view_t *view = modelstore_view_open (self->store, &revision);
    if (!view) {
        ep_log_error ("snapshot: %s", modelstore_error (self->store));
        return NULL;
    }
    s_snapshot_t *snapshot = (s_snapshot_t *) zmalloc (sizeof (s_snapshot_t));
    snapshot->store = self->store;
    snapshot->view = view;
    snapshot->revision = revision;
    ep_random_hex (snapshot->id, 8);
    snapshot->last_used_ms = now_ms;
    zhashx_insert (self->snapshots, snapshot->id, snapshot);
    return snapshot;
}

//  ---------------------------------------------------------------------
//  Reads

//  Completes a read: a store failure is answered UNAVAILABLE.
static void
s_read_end (s_read_t *read, int rc)
{
    if (rc != 0 && read->result->status.code == EP__STATUS__CODE__OK)
        model_result_fail (read->result, EP__STATUS__CODE__UNAVAILABLE,
                           "cannot read the store now; retry");
    read->done (read->arg, 0);
    for (size_t i = 0; i < read->count; i++)
        ep__entity__free_unpacked (read->entities [i], NULL);
    free (read->entities);
    free (read);
}

static void
s_read_submit (s_read_t *read, modelstore_kind_t kind, modelstore_row_fn *row,
               modelstore_done_fn *done)
{
    read->query.kind = kind;
    modelstore_read (read->reads->store, &read->query, row, done, read);
}

//  Adds the entity of row to the reply.
static void
s_add_row (s_read_t *read, const modelstore_row_t *row)
{
    Ep__Entity *entity = ep__entity__unpack (NULL, row->size, row->body);
    if (entity) {
        model_result_add_entity (read->result, entity);
        ep__entity__free_unpacked (entity, NULL);
    }
}

static bool
s_get_row (void *arg, const modelstore_row_t *row)
{
    s_add_row ((s_read_t *) arg, row);
    return false;
}

static void
s_get_done (void *arg, int rc, const char *error)
{
    (void) error;
    s_read_t *read = (s_read_t *) arg;
    if (rc == 0 && read->result->reply.n_entities == 0)
        model_result_fail (read->result, EP__STATUS__CODE__NOT_FOUND, "%s %s does not exist",
                           entity_type_name (read->query.type), read->query.id);
    else
    if (rc == 0) {
        read->result->reply.has_revision = true;
        read->result->reply.revision = read->revision;
    }
    s_read_end (read, rc);
}

static void
s_read_get (s_read_t *read)
{
    const Ep__ModelGet *get = read->request->get;
    Ep__EntityType type = get->has_type? get->type: EP__ENTITY_TYPE__ENTITY_UNSPECIFIED;
    if (!entity_type_valid (type)
    ||  !get->id || !ep_id_valid (get->id)) {
        model_result_fail (read->result, EP__STATUS__CODE__INVALID_ARGUMENT,
                           "get: needs type (router, service, identity, controller) and a valid id");
        s_read_end (read, 0);
        return;
    }
    read->query.type = type;
    read->query.id = get->id;
    s_read_submit (read, MODELSTORE_GET, s_get_row, s_get_done);
}

static bool
s_page_row (void *arg, const modelstore_row_t *row)
{
    s_read_t *read = (s_read_t *) arg;
    //  A page ends at page_size entities, or before it outgrows one
    //  message.
    size_t size = row->size + 8;
    if (read->rows == read->page_size || (read->rows > 0 && read->bytes + size > MODEL_REPLY_BUDGET)) {
        read->more = true;
        return false;
    }
    read->bytes += size;
    s_add_row (read, row);
    read->last_type = row->type;
    snprintf (read->last, sizeof read->last, "%s", row->id);
    read->rows++;
    return true;
}

static void
s_page_done (void *arg, int rc, const char *error)
{
    (void) error;
    s_read_t *read = (s_read_t *) arg;
    model_result_t *result = read->result;
    s_snapshot_t *snapshot = read->snapshot;
    result->reply.has_revision = true;
    result->reply.revision = snapshot->revision;
    result->reply.generation = (char *) read->generation;
    if (read->more) {
        char *token = zsys_sprintf ("%s:%d:%s", snapshot->id, read->last_type, read->last);
        result->reply.next_page_token = (char *) ep_owned_add (result->owned, token, free);
    }
    else
        zhashx_delete (read->reads->snapshots, snapshot->id);
    s_read_end (read, rc);
}

static void
s_read_snapshot (s_read_t *read, int64_t now_ms)
{
    const Ep__SnapshotRequest *snap = read->request->snapshot;
    read->page_size = snap->has_page_size && snap->page_size? snap->page_size: PAGE_DEFAULT;
    if (read->page_size > PAGE_MAX)
        read->page_size = PAGE_MAX;
    if (snap->page_token && *snap->page_token) {
        char id [17] = "";
        if (sscanf (snap->page_token, "%16[0-9a-f]:%d:%64[A-Za-z0-9_-]", id,
                    &read->query.after_type, read->after) != 3
        ||  !(read->snapshot = (s_snapshot_t *) zhashx_lookup (read->reads->snapshots, id)))
            model_result_fail (read->result, EP__STATUS__CODE__FAILED_PRECONDITION,
                               "snapshot page token unknown or expired (idle over %d s): start a new snapshot",
                               SNAPSHOT_IDLE_MS / 1000);
    }
    else
    if (!(read->snapshot = s_snapshot_open (read->reads, now_ms)))
        model_result_fail (read->result, EP__STATUS__CODE__UNAVAILABLE,
                           "cannot read the store now; retry");
    if (!read->snapshot) {
        s_read_end (read, 0);
        return;
    }
    //  The view must outlive the page read: with a store that completes
    //  later, expiry and eviction would have to skip a view being read.
    read->snapshot->last_used_ms = now_ms;
    read->query.view = read->snapshot->view;
    read->query.after_id = read->after;
    read->query.limit = read->page_size + 1;
    s_read_submit (read, MODELSTORE_PAGE, s_page_row, s_page_done);
}

static bool
s_list_row (void *arg, const modelstore_row_t *row)
{
    s_read_t *read = (s_read_t *) arg;
    model_result_t *result = read->result;
    Ep__Entity *entity = ep__entity__unpack (NULL, row->size, row->body);
    if (!entity)
        return true;
    bool more = true;
    if (entity_tags_match (entity, read->request->list)) {
        if (result->reply.n_entities == read->page_size) {
            result->reply.next_page_token = (char *) ep_owned_add (result->owned,
                                                                   strdup (read->last), free);
            more = false;
        }
        else {
            model_result_add_entity (result, entity);
            snprintf (read->last, sizeof read->last, "%s", row->id);
        }
    }
    ep__entity__free_unpacked (entity, NULL);
    return more;
}

static void
s_list_done (void *arg, int rc, const char *error)
{
    (void) error;
    s_read_t *read = (s_read_t *) arg;
    read->result->reply.has_revision = true;
    read->result->reply.revision = read->revision;
    s_read_end (read, rc);
}

static void
s_read_list (s_read_t *read)
{
    const Ep__ListFilter *filter = read->request->list;
    Ep__EntityType type = filter->has_type? filter->type: EP__ENTITY_TYPE__ENTITY_UNSPECIFIED;
    if (!entity_type_valid (type))
        model_result_fail (read->result, EP__STATUS__CODE__INVALID_ARGUMENT,
                           "list.type: use router, service, identity or controller");
    else
    if (filter->hosts_service && type != EP__ENTITY_TYPE__ENTITY_ROUTER)
        model_result_fail (read->result, EP__STATUS__CODE__INVALID_ARGUMENT,
                           "list.hosts_service applies to routers only");
    if (read->result->status.code != EP__STATUS__CODE__OK) {
        s_read_end (read, 0);
        return;
    }
    read->page_size = filter->has_page_size && filter->page_size? filter->page_size: PAGE_DEFAULT;
    if (read->page_size > PAGE_MAX)
        read->page_size = PAGE_MAX;
    read->query.type = type;
    read->query.name = filter->hosts_service? NULL: filter->name;
    read->query.hosts_service = filter->hosts_service;
    read->query.after_id = filter->page_token;
    s_read_submit (read, MODELSTORE_LIST, s_list_row, s_list_done);
}

//  True if the changes after since are no longer all retained.
static bool
s_past_retention (uint64_t since, uint64_t oldest)
{
    return oldest == 0 || since + 1 < oldest;
}

static bool
s_changes_row (void *arg, const modelstore_row_t *row)
{
    s_read_t *read = (s_read_t *) arg;
    if (s_past_retention (read->query.since, read->query.oldest))
        return false;
    //  Stop before the reply outgrows one message; the caller asks again
    //  from the last revision it got.
    size_t size = row->size + 8;
    if (read->result->reply.n_changes > 0 && read->bytes + size > MODEL_REPLY_BUDGET)
        return false;
    read->bytes += size;
    Ep__ModelChange *change = ep__model_change__unpack (NULL, row->size, row->body);
    EP_ASSERT (change);
    model_result_add_change (read->result, change);
    return true;
}

static void
s_changes_done (void *arg, int rc, const char *error)
{
    (void) error;
    s_read_t *read = (s_read_t *) arg;
    model_result_t *result = read->result;
    uint64_t since = read->query.since, oldest = read->query.oldest;
    if (rc == 0 && s_past_retention (since, oldest)) {
        model_result_fail (result, EP__STATUS__CODE__RESYNC,
                           "changes after revision %llu are no longer retained (oldest is %llu): take a snapshot",
                           (unsigned long long) since, (unsigned long long) oldest);
        result->reply.has_oldest_retained = true;
        result->reply.oldest_retained = oldest;
    }
    s_read_end (read, rc);
}

static void
s_read_changes (s_read_t *read)
{
    const Ep__ChangesRequest *changes = read->request->changes;
    uint64_t since = changes->has_since_revision? changes->since_revision: 0;
    uint32_t max = changes->has_max_changes && changes->max_changes? changes->max_changes: CHANGES_DEFAULT;
    if (max > CHANGES_DEFAULT * 10)
        max = CHANGES_DEFAULT * 10;
    read->result->reply.has_revision = true;
    read->result->reply.revision = read->revision;
    read->result->reply.generation = (char *) read->generation;
    if (since >= read->revision) {
        s_read_end (read, 0);
        return;
    }
    read->query.since = since;
    read->query.limit = max;
    s_read_submit (read, MODELSTORE_CHANGES, s_changes_row, s_changes_done);
}

static bool
s_all_row (void *arg, const modelstore_row_t *row)
{
    s_read_t *read = (s_read_t *) arg;
    read->entities = (Ep__Entity **) realloc (read->entities, (read->count + 1) * sizeof (Ep__Entity *));
    read->entities [read->count++] = ep__entity__unpack (NULL, row->size, row->body);
    return true;
}

static void
s_status_done (void *arg, int rc, const char *error)
{
    (void) error;
    s_read_t *read = (s_read_t *) arg;
    if (rc == 0) {
        //  The same digest followers compute over their copies.
        uint8_t digest [EP_MODEL_DIGEST_SIZE];
        ep_model_digest_entities (read->entities, read->count, digest);
        char *hex = (char *) malloc (2 * EP_MODEL_DIGEST_SIZE + 1);
        ep_model_digest_hex (digest, hex);
        read->result->reply.digest = (char *) ep_owned_add (read->result->owned, hex, free);
    }
    s_read_end (read, rc);
}

static void
s_read_status (s_read_t *read)
{
    const Ep__StatusRequest *status = read->request->status;
    read->result->reply.has_revision = true;
    read->result->reply.revision = read->revision;
    read->result->reply.generation = (char *) read->generation;
    if (status && status->has_digest && status->digest)
        s_read_submit (read, MODELSTORE_ALL, s_all_row, s_status_done);
    else
        s_read_end (read, 0);
}

static void
s_backup_done (void *arg, int rc, const char *error)
{
    s_read_t *read = (s_read_t *) arg;
    if (rc != 0)
        model_result_fail (read->result, EP__STATUS__CODE__FAILED_PRECONDITION, "%s", error);
    read->result->reply.has_revision = true;
    read->result->reply.revision = read->revision;
    s_read_end (read, 0);
}

static void
s_read_backup (s_read_t *read)
{
    const char *path = read->request->backup? read->request->backup->path: NULL;
    if (!path || !*path) {
        model_result_fail (read->result, EP__STATUS__CODE__FAILED_PRECONDITION,
                           "backup.path: a file path on the model service's machine is required");
        s_backup_done (read, 0, "");
    }
    else
        modelstore_backup (read->reads->store, path, s_backup_done, read);
}

void
reads_serve (reads_t *self, const Ep__ModelRequest *request, uint64_t revision,
             const char *generation, int64_t now_ms, model_result_t *result,
             model_done_fn *done, void *arg)
{
    s_read_t *read = (s_read_t *) zmalloc (sizeof (s_read_t));
    *read = (s_read_t) { .reads = self, .request = request, .revision = revision,
                         .generation = generation, .result = result, .done = done, .arg = arg };
    switch (request->op_case) {
        case EP__MODEL_REQUEST__OP_GET:      s_read_get (read); break;
        case EP__MODEL_REQUEST__OP_LIST:     s_read_list (read); break;
        case EP__MODEL_REQUEST__OP_SNAPSHOT: s_read_snapshot (read, now_ms); break;
        case EP__MODEL_REQUEST__OP_CHANGES:  s_read_changes (read); break;
        case EP__MODEL_REQUEST__OP_STATUS:   s_read_status (read); break;
        case EP__MODEL_REQUEST__OP_BACKUP:   s_read_backup (read); break;
        default:
            model_result_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                               "request has no operation: set one of write, txn, get, list, snapshot, changes, status, backup");
            s_read_end (read, 0);
    }
}

static void
s_entities_done (void *arg, int rc, const char *error)
{
    (void) rc, (void) error;
    ((s_read_t *) arg)->more = true;
}

Ep__Entity **
reads_entities (reads_t *self, size_t *count)
{
    s_read_t read = { .reads = self, .query.kind = MODELSTORE_ALL };
    modelstore_read (self->store, &read.query, s_all_row, s_entities_done, &read);
    EP_ASSERT (read.more);      //  a store that completes inline
    *count = read.count;
    return read.entities;
}

reads_t *
reads_new (modelstore_t *store)
{
    reads_t *self = (reads_t *) zmalloc (sizeof (reads_t));
    self->store = store;
    self->snapshots = zhashx_new ();
    zhashx_set_destructor (self->snapshots, s_snapshot_destroy);
    return self;
}

void
reads_destroy (reads_t **self_p)
{
    reads_t *self = *self_p;
    if (self) {
        zhashx_destroy (&self->snapshots);
        free (self);
        *self_p = NULL;
    }
}
