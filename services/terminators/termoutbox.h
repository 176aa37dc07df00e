/*  termoutbox.h: the etcd mode's outbox bookkeeping, pure (no etcd, no
    clock): which events wait under which key, and how far each shard's
    outbox may be deleted.

    In the etcd mode a batch keeps the events it commits for one shard in
    one outbox key (<shard>/o/<owner revision>-<number>, in key order the
    order they were committed in, termshards.c); each event has its event
    id and the cache's sequence number. Events are published in commit
    order, so once every event of a key and of every key before it is
    published, the shard's outbox up to that key can go in one range
    delete: one etcd operation per shard per trim, not one per event.

        termoutbox_event (box, seq, shard, key, event_id)   as a batch stages it
        termoutbox_forget_key (box, shard, key)             the batch did not land
        termoutbox_published (box, seq)                     sent on the bus
        upto = termoutbox_trimmable (box, shard)            delete <shard>/o/ .. upto
        termoutbox_trimmed (box, shard, upto)               deleted
*/
#ifndef TERMOUTBOX_H_INCLUDED
#define TERMOUTBOX_H_INCLUDED

#include "ep_prelude.h"

typedef struct _termoutbox_t termoutbox_t;

//  Bookkeeping for count shards.
termoutbox_t *
    termoutbox_new (int count);

void
    termoutbox_destroy (termoutbox_t **self_p);

//  Event seq (> 0, unique while kept) is under key of shard, with
//  event_id. A key is added to its shard's outbox at its first event;
//  keys must come in key order per shard.
void
    termoutbox_event (termoutbox_t *self, int64_t seq, int shard, const char *key,
                      const char *event_id);

//  The event id of seq, or NULL if it is not kept here.
const char *
    termoutbox_event_id (termoutbox_t *self, int64_t seq);

//  Seq is published: it no longer holds its key back. Unknown seqs are
//  ignored.
void
    termoutbox_published (termoutbox_t *self, int64_t seq);

//  The last key of shard whose events, and every earlier key's, are all
//  published, or NULL if none is (nothing to delete).
const char *
    termoutbox_trimmable (termoutbox_t *self, int shard);

//  The shard's keys up to upto (included) were deleted: forgotten.
void
    termoutbox_trimmed (termoutbox_t *self, int shard, const char *upto);

//  Forgets key of shard and its events (its batch did not land).
void
    termoutbox_forget_key (termoutbox_t *self, int shard, const char *key);

//  Forgets the whole shard (it is another instance's now).
void
    termoutbox_forget_shard (termoutbox_t *self, int shard);

//  Keys kept (not deleted yet), all shards.
size_t
    termoutbox_keys (termoutbox_t *self);

//  Events kept, all shards.
size_t
    termoutbox_size (termoutbox_t *self);

#endif
