/*  termsvc_shards.c: the terminator service in the etcd mode (termsvc.h,
    termshards.h): writes refused for shards this instance does not own, a
    batch as one fenced etcd transaction, commands carrying their fence,
    shards adopted and dropped between batches, the cluster.beacon. */
#include "termsvc_internal.h"
#include "ep_log.h"
#include "ep_publisher.h"
#include "termreply.h"
#include "ep_adopt.h"
#include <unistd.h>

//  The etcd mode: a write about a router whose shard this instance does
//  not own (or has not read yet) is answered UNAVAILABLE, retriable,
//  naming the owner (its address is in its cluster.beacon). True if so.
bool
termsvc_not_mine (termsvc_t *self, ep_req_t *req, const Ep__TerminatorRequest *message)
{
    const char *router_id = message->router_id? message->router_id: "";
    if (!self->shards || ep_shardset_ready (self->set, router_id))
        return false;
    termsvc_request_t *request = (termsvc_request_t *) ep_req_result (req);
    const char *owner = ep_shardset_owner (self->set, router_id);
    snprintf (request->owner, sizeof request->owner, "%s", owner);
    char message_text [300];
    snprintf (message_text, sizeof message_text, "router %s is in shard %d, which %s%s%s: retry "
              "(there)", router_id, ep_shardset_shard_of (self->set, router_id),
              *owner && !streq (owner, ep_service_source_id (self->service))? "is owned by ": "",
              *owner && !streq (owner, ep_service_source_id (self->service))? owner: "",
              *owner && !streq (owner, ep_service_source_id (self->service))? ""
              : "this instance is taking over or has no owner now");
    ep_reqloop_fail (self->loop, req, EP__STATUS__CODE__UNAVAILABLE, message_text);
    return true;
}

//  The etcd mode: the batch's changes into its transaction.
static void
s_batch_record (void *arg, const char *id, const termrec_t *now, const termrec_t *before)
{
    (void) id;
    termshards_batch_record ((termshards_batch_t *) arg, now, before);
}

static void
s_batch_event (void *arg, const ep_output_item_t *item)
{
    const Ep__Event *event = item->event;
    if (item->seq > 0 && event->body_case == EP__EVENT__BODY_TERMINATOR)
        termshards_batch_event ((termshards_batch_t *) arg, item->seq, item->topic,
                                event->terminator->router_id, event);
}

//  The etcd transaction's outcome: the cache and memory follow it.
static void
s_batch_done (void *arg, int rc, const char *why)
{
    termsvc_t *self = (termsvc_t *) arg;
    self->committing = false;
    self->between_due = true;
    if (rc == 0 && terminators_commit (self->core) != 0) {
        //  In etcd but not in memory: only a restart, which reads the
        //  shards again, makes them one.
        ep_log_error ("the batch is in etcd but not in the cache (%s): stopping, to start over "
                      "from etcd", ep_store_last_error ());
        self->shards_failed = true;
    }
    if (rc != 0) {
        snprintf (self->failure, sizeof self->failure, "%s; retry", why);
        terminators_rollback (self->core);
    }
    self->served = true;
    ep_reqloop_committed (self->loop, rc);
}

int
termsvc_commit_etcd (termsvc_t *self)
{
    termshards_batch_t *batch = termshards_batch_new (self->shards);
    terminators_changes (self->core, s_batch_record, s_batch_event, batch);
    if (termshards_batch_empty (batch)) {
        //  Nothing for etcd (say, the cache's outbox trimmed): done here.
        termshards_batch_destroy (&batch);
        return terminators_commit (self->core);
    }
    char err [512];
    if (termshards_batch_send (self->shards, &batch, s_batch_done, self, err, sizeof err) != 0) {
        snprintf (self->failure, sizeof self->failure, "%s; retry", err);
        terminators_rollback (self->core);
        return -1;
    }
    self->committing = true;
    return EP_REQLOOP_LATER;
}

//  A get or list, answered from every shard's records in etcd.
typedef struct {
    termsvc_t *self;            //  whose
    ep_req_t *req;              //  the read, NULL once answered at shutdown
} s_read_t;

static void
s_read_done (void *arg, zlistx_t *records, const char *why)
{
    s_read_t *read = (s_read_t *) arg;
    termsvc_t *self = read->self;
    void *handle = zlistx_find (self->reads, read);
    if (handle)
        zlistx_detach (self->reads, handle);
    if (!read->req) {
        free (read);
        return;
    }
    const Ep__TerminatorRequest *request = (const Ep__TerminatorRequest *) ep_req_message (read->req);
    terminators_result_t *result = &((termsvc_request_t *) ep_req_result (read->req))->result;
    if (records)
        terminators_read_records (self->core, request, records, result);
    else
        termreply_fail (result, EP__STATUS__CODE__UNAVAILABLE, true, "%s", why);
    ep_reqloop_read_done (self->loop, read->req);
    free (read);
}

int
termsvc_read_etcd (termsvc_t *self, ep_req_t *req)
{
    const Ep__TerminatorRequest *request = (const Ep__TerminatorRequest *) ep_req_message (req);
    if (request->op_case != EP__TERMINATOR_REQUEST__OP_GET_ID
    &&  request->op_case != EP__TERMINATOR_REQUEST__OP_LIST)
        return -1;
    s_read_t *read = (s_read_t *) zmalloc (sizeof (s_read_t));
    *read = (s_read_t) { self, req };
    if (termshards_read_all (self->shards, s_read_done, read) == 0) {
        zlistx_add_end (self->reads, read);
        return 0;
    }
    free (read);
    return -1;
}

//  The etcd mode: a command carries its shard and the owner key's create
//  revision, so the watchdog drops it once it has seen a newer owner
//  (docs/shards.md). False if the shard is no longer this instance's.
bool
termsvc_fence_command (termsvc_t *self, Ep__Event *event)
{
    return ep_shardset_fence_command (self->set, event);
}

//  ---------------------------------------------------------------------
//  The etcd mode: shards come and go

//  What a LOADED news carries to its adoption (ep_adopt's payload).
typedef struct {
    zlistx_t *records;          //  termrec_t, taken a step at a time
    zlistx_t *entries;          //  termshards_entry_t, taken with the last step
} s_loaded_t;

static void
s_loaded_destroy (s_loaded_t **loaded_p)
{
    s_loaded_t *loaded = *loaded_p;
    if (loaded) {
        zlistx_destroy (&loaded->records);
        zlistx_destroy (&loaded->entries);
        free (loaded);
        *loaded_p = NULL;
    }
}

//  Moves every item of from into a new list with destructor.
static zlistx_t *
s_take_all (zlistx_t *from, czmq_destructor *destructor)
{
    zlistx_t *list = zlistx_new ();
    zlistx_set_destructor (list, destructor);
    void *item;
    while (from && (item = zlistx_detach (from, NULL)))
        zlistx_add_end (list, item);
    return list;
}

//  Shard news go to ep_adopt, applied when no batch is open (the core
//  changes only then): drops at once, a shard read a step per turn.
static void
s_on_shards (void *arg, const ep_shardset_news_t *news, zlistx_t *records, zlistx_t *entries)
{
    termsvc_t *self = (termsvc_t *) arg;
    if (!ep_shardset_news_loaded (news, self->adopt, &self->shards_failed))
        return;
    s_loaded_t *loaded = (s_loaded_t *) zmalloc (sizeof (s_loaded_t));
    loaded->records = s_take_all (records, (czmq_destructor *) termrec_destroy);
    loaded->entries = s_take_all (entries, (czmq_destructor *) termshards_entry_destroy);
    ep_adopt_loaded (self->adopt, news->shard, news->revision, zlistx_size (loaded->records), loaded);
}

static bool
s_loaded_valid (void *arg, int shard, int64_t revision)
{
    return ep_shardset_loaded (((termsvc_t *) arg)->set, shard, revision);
}

typedef struct {
    termsvc_t *self;            //  whose
    int shard;                  //  the shard whose records go
} s_drop_arg_t;

static bool
s_not_in_shard (void *arg, const char *router_id)
{
    s_drop_arg_t *drop = (s_drop_arg_t *) arg;
    return ep_shardset_shard_of (drop->self->set, router_id) != drop->shard;
}

//  A shard lost forgets every router not ready, but for the shard being
//  adopted (another: ep_adopt voids an adoption its shard's drop hits).
static bool
s_mine (void *arg, const char *router_id)
{
    termsvc_t *self = (termsvc_t *) arg;
    return ep_shardset_keeps (self->set, router_id, ep_adopt_shard (self->adopt));
}

//  cluster.shard.acquired|released
static void
s_shard_event (termsvc_t *self, const char *topic, int shard, int64_t revision, const char *why)
{
    ep_shardset_event (self->set, self->publisher, topic, ep_service_source_id (self->service), shard,
                       revision, why);
}

//  True if entry's body unpacks as an Event.
static bool
s_is_event (const termshards_entry_t *entry)
{
    Ep__Event *event = ep__event__unpack (NULL, entry->size, (const uint8_t *) entry->body);
    if (event)
        ep__event__free_unpacked (event, NULL);
    return event != NULL;
}

//  The adopted shard's outbox events, into the cache's outbox.
static void
s_adopt_entries (termsvc_t *self, int shard, zlistx_t *entries)
{
    termshards_entry_t *entry;
    for (entry = (termshards_entry_t *) zlistx_first (entries); entry;
         entry = (termshards_entry_t *) zlistx_next (entries)) {
        int64_t seq = terminators_adopt_event (self->core, entry->topic, entry->body, entry->size);
        if (seq > 0)
            termshards_adopted (self->shards, seq, entry);
        else
        if (s_is_event (entry)) {
            //  Untracked, its key would go with the shard's next
            //  trim unpublished: only a restart, which reads the
            //  shard again, keeps it at least once.
            ep_log_error ("terminators: shard %d: event %s could not be cached (%s): stopping, "
                          "to start over from etcd", shard, entry->event_id, ep_store_last_error ());
            self->shards_failed = true;
        }
        else
            ep_log_error ("terminators: shard %d: outbox event %s is not an Event (%zu bytes): "
                          "dropped, as nothing can publish it", shard, entry->event_id, entry->size);
    }
}

//  One step of a shard's adoption (ep_adopt checked it is still ours under
//  the revision read). Until the last the shard is not ready: requests for
//  its routers are answered UNAVAILABLE, retriable (termsvc_not_mine), a
//  batch may not write it, and the core's work waits (termsvc_adopting),
//  so nothing acts on its records half in. Its outbox events come with the
//  last step (they are few: published ones are trimmed), so none is
//  published from a shard not adopted.
static void
s_adopt_step (termsvc_t *self, const ep_adopt_action_t *action)
{
    s_loaded_t *loaded = (s_loaded_t *) action->payload;
    if (action->first) {
        //  Whatever memory held of the shard goes first: etcd is the truth.
        s_drop_arg_t drop = { self, action->shard };
        terminators_drop (self->core, s_not_in_shard, &drop);
    }
    termrec_t *record;
    for (size_t i = action->from; i < action->to
         && (record = (termrec_t *) zlistx_detach (loaded->records, NULL)); i++)
        terminators_adopt (self->core, &record);
    if (!action->last)
        return;
    ep_shardset_adopt_shard (self->set, action->shard, action->revision);
    terminators_adopted (self->core);
    s_adopt_entries (self, action->shard, loaded->entries);
    ep_log_info ("terminators: shard %d adopted: %zu terminators in %zu steps", action->shard,
                 action->total, action->steps);
    s_shard_event (self, "cluster.shard.acquired", action->shard, action->revision, NULL);
}

//  Applies the shard news that came (no batch is open): every drop, and a
//  step of the shard being adopted.
void
termsvc_apply_news (termsvc_t *self)
{
    ep_adopt_turn (self->adopt);
    ep_adopt_action_t action;
    while (!self->shards_failed && ep_adopt_next (self->adopt, &action)) {
        if (action.kind == EP_ADOPT_STEP)
            s_adopt_step (self, &action);
        else
        if (action.kind == EP_ADOPT_ABORT) {
            s_drop_arg_t drop = { self, action.shard };
            size_t dropped = terminators_drop (self->core, s_not_in_shard, &drop);
            ep_log_info ("terminators: shard %d lost or read again while adopted: %zu terminators "
                         "taken so far forgotten", action.shard, dropped);
        }
        else {
            size_t dropped = terminators_drop (self->core, s_mine, self);
            ep_log_info ("terminators: shard %d is no longer ours (%s): %zu terminators forgotten",
                         action.shard, action.why, dropped);
            s_shard_event (self, "cluster.shard.released", action.shard, action.revision, action.why);
        }
    }
}

bool
termsvc_adopting (termsvc_t *self)
{
    return self->adopt && ep_adopt_pending (self->adopt);
}

//  Joins the shards in etcd, with this instance's endpoint for the beacon.
int
termsvc_open_shards (termsvc_t *self, const termsvc_config_t *config)
{
    termshards_config_t shards = { .fn = s_on_shards, .arg = self };
    char err [768];
    if (ep_shardset_configure (&shards.shards, &config->sharded, "terminators",
                               ep_service_source_id (self->service), ep_service_metrics (self->service),
                               err, sizeof err) != 0) {
        ep_log_error ("EDGEPLANE_TERMINATORS_STORE=etcd: %s", err);
        return -1;
    }
    self->advertise = ep_shards_advertise (config->sharded.advertise, zsock_last_endpoint (self->router));
    self->adopt = ep_adopt_new (&(ep_adopt_config_t) {
        .service = "terminators", .metrics = ep_service_metrics (self->service),
        .valid = s_loaded_valid, .arg = self, .destructor = (czmq_destructor *) s_loaded_destroy });
    self->reads = zlistx_new ();
    self->shards = termshards_new (&shards, err, sizeof err);
    if (!self->shards) {
        ep_log_error ("EDGEPLANE_TERMINATORS_STORE=etcd: %s", err);
        return -1;
    }
    self->set = termshards_set (self->shards);
    ep_shardset_start (self->set, self->service, self->advertise);
    return 0;
}

bool
termsvc_shards_ready (void *arg)
{
    termsvc_t *self = (termsvc_t *) arg;
    return !self->shards || !self->between_due;
}

void
termsvc_close_shards (termsvc_t *self)
{
    //  The reads waiting for etcd are answered now; their replies, if any
    //  come while the lease is revoked, are ignored.
    for (s_read_t *read = (s_read_t *) zlistx_first (self->reads); read;
         read = (s_read_t *) zlistx_next (self->reads)) {
        terminators_result_t *result = &((termsvc_request_t *) ep_req_result (read->req))->result;
        termreply_fail (result, EP__STATUS__CODE__UNAVAILABLE, true,
                        "the terminator service is shutting down; retry");
        ep_reqloop_read_done (self->loop, read->req);
        read->req = NULL;
    }
    termshards_destroy (&self->shards);
    self->set = NULL;
    s_read_t *read;
    while (self->reads && (read = (s_read_t *) zlistx_detach (self->reads, NULL)))
        free (read);
    zlistx_destroy (&self->reads);
    ep_adopt_destroy (&self->adopt);
    free (self->advertise);
    self->advertise = NULL;
}
