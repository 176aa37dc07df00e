/*  termshards.h: the terminators' etcd mode, the store module that keeps
    each shard's terminators and event outbox in etcd.

    Several instances of the terminator service share the fleet: routers
    map to shards (ep_shard_of), and each shard has one owner at a time
    (common/ep_shards: ownership under leases, balancing, fencing;
    docs/shards.md). This module is what an owner keeps in etcd and how:

        acquired    the shard's keys are read, and the records and outbox
                    entries handed to the service (LOADED), which adopts
                    them; until then the shard is not ready
        a batch     one transaction: a fence (the owner key's create
                    revision) for every shard it touches, then its puts
                    and deletes; refused by a fence, the shard is dropped
        published   an event's outbox key is deleted (in batches, fenced)
        lost        released, fenced, or the lease ended: DROPPED, and
                    the service forgets the shard's terminators

    Keys, under <EDGEPLANE_ETCD_PREFIX>terminators/:
        <shard, 5 digits>/t/<terminator id>              TerminatorRecord
        <shard>/o/<owner revision, 20>-<seq, 20>         TerminatorOutboxEntry
    An outbox entry's event id is "terminators/<shard>/<owner revision>-<seq>":
    kept with it, so the next owner publishes it under the same id and
    consumers drop the repeat. The shards' own keys are under
    <EDGEPLANE_ETCD_PREFIX>shards/. docs/terminators.md, "On shards".
*/
#ifndef TERMSHARDS_H_INCLUDED
#define TERMSHARDS_H_INCLUDED

#include "ep_prelude.h"
#include "ep_etcd.h"
#include "ep_metrics.h"
#include "ep_shardset.h"
#include "events.pb-c.h"
#include "termstore.h"

typedef struct _termshards_t termshards_t;
typedef struct _termshards_batch_t termshards_batch_t;

//  An outbox entry read with a shard.
typedef struct {
    char *key;                  //  its etcd key
    char *topic;                //  "terminator.<type>"
    uint8_t *body;              //  the packed Event
    size_t size;                //  its size
    char *event_id;             //  StreamMeta.event_id
} termshards_entry_t;

void
    termshards_entry_destroy (termshards_entry_t **entry_p);

//  What the service hears: ep_shardset's news (its service is
//  "terminators"); on LOADED, records (termrec_t items: take them with
//  zlistx_detach) and entries (termshards_entry_t items, oldest first),
//  read from the shard's keys; else NULL.
typedef void (termshards_fn) (void *arg, const ep_shardset_news_t *news, zlistx_t *records,
                              zlistx_t *entries);

typedef struct {
    ep_shardset_config_t shards;    //  the shards (its service, fn and arg are termshards')
    termshards_fn *fn;          //  the service's callback
    void *arg;                  //  its argument
} termshards_config_t;

//  Joins the shards (asynchronous). NULL with err on a bad configuration.
termshards_t *
    termshards_new (const termshards_config_t *config, char *err, size_t errlen);

//  Leaves: the lease is revoked, so the others take the shards at once.
void
    termshards_destroy (termshards_t **self_p);

//  The shards, read and adopted: ownership, readiness, the loop's part.
ep_shardset_t *
    termshards_set (termshards_t *self);

//  A batch's transaction, built from terminators_changes.
termshards_batch_t *
    termshards_batch_new (termshards_t *self);

//  A terminator's new content (put) or its removal (now NULL: before says
//  whose router it was).
void
    termshards_batch_record (termshards_batch_t *self, const termrec_t *now,
                             const termrec_t *before);

//  An event the batch keeps in the outbox (seq > 0), about router_id.
void
    termshards_batch_event (termshards_batch_t *self, int64_t seq, const char *topic,
                            const char *router_id, const Ep__Event *event);

//  True if the batch has nothing for etcd (internal work that changed no
//  terminator and kept no event): it is durable as it is.
bool
    termshards_batch_empty (termshards_batch_t *self);

//  Destroys a batch that is not sent.
void
    termshards_batch_destroy (termshards_batch_t **self_p);

//  The outcome of a batch: 0 durable, -1 not (why says).
typedef void (termshards_done_fn) (void *arg, int rc, const char *why);

//  Sends the batch (destroyed here): done is called once, later. -1 with
//  err if it cannot be sent (a shard it touches is not this instance's,
//  or nothing encodes); then done is not called.
int
    termshards_batch_send (termshards_t *self, termshards_batch_t **batch_p,
                           termshards_done_fn *done, void *arg, char *err, size_t errlen);

//  True if the last batch failed because it had more operations than
//  the cluster takes in one transaction (smaller batches will do).
bool
    termshards_too_large (termshards_t *self);

//  Every terminator in etcd, of every shard: fn (arg, records) with a list
//  of termrec_t (NULL, and why, if etcd could not be read). For reads
//  that must see the whole fleet (get, list). 0, or -1 if not sent.
typedef void (termshards_all_fn) (void *arg, zlistx_t *records, const char *why);
int
    termshards_read_all (termshards_t *self, termshards_all_fn *fn, void *arg);

//  The event id of outbox entry seq (sent or adopted), or NULL.
const char *
    termshards_event_id (termshards_t *self, int64_t seq);

//  An adopted entry (LOADED) is queued here as seq.
void
    termshards_adopted (termshards_t *self, int64_t seq, const termshards_entry_t *entry);

//  Outbox entry seq is published: its key is deleted (batched, fenced).
void
    termshards_published (termshards_t *self, int64_t seq);

#endif
