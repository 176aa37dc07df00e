/*  reapload.h: a shard read from etcd, into the local cache.

    In the etcd mode the core runs over a cache of the shards this instance
    owns (a sessions.db of its own), and loads from it as it does from its
    database at a start. A shard taken over is written into the cache from
    its records (reapkeys.h), so that the core's load makes of it what a
    restart makes of sessions.db:

        session records     rows, open or closed (closed ones for reads)
        job records         rows with their deadline, done or running
        a running job       whose record says every session was marked: its
                            target's open sessions are TERMINATING under it
                            (their closes were not acknowledged: resent, not
                            marked again); otherwise they stay ACTIVE and
                            the job takes them again (marking is idempotent)
        counters            the open sessions' bytes and last-seen (never
                            before the takeover: reapkeys_seen)
        outbox entries      handed to the caller, to publish under their ids

    Writes go to the caller's open transaction; tell the journal nothing
    meanwhile (sessiondb_set_journal NULL): they are etcd's already.
*/
#ifndef REAPLOAD_H_INCLUDED
#define REAPLOAD_H_INCLUDED

#include "ep_prelude.h"
#include "ep_etcd.h"
#include "sessiondb.h"

//  An outbox entry of the shard: its key, topic, packed Event and event id.
typedef void (reapload_entry_fn) (void *arg, const char *key, const char *topic,
                                  const void *event, size_t size, const char *event_id);

//  What a load found.
typedef struct {
    size_t open;                //  open sessions
    size_t closed;              //  closed sessions
    size_t jobs;                //  running jobs
    size_t marked;              //  open sessions TERMINATING under a job
    size_t entries;             //  outbox entries
    size_t skipped;             //  records that did not decode (logged)
} reapload_stats_t;

//  Writes the records of one shard (kvs, as read under prefix) into db at
//  wall time takeover_ms. 0, or -1 if a write failed (ep_store_last_error).
//  As reapload_order then reapload_records over them all.
int
    reapload_shard (sessiondb_t *db, const char *prefix, const ep_etcd_kv_t *kvs, size_t nkvs,
                    int64_t takeover_ms, reapload_entry_fn *entry_fn, void *arg,
                    reapload_stats_t *stats);

//  A load in steps (the service's, ep_adopt): orders kvs in place in the
//  order their kinds must be written (sessions, jobs, counters, outbox
//  entries; each kind in key order), keys that hold no record last.
//  Returns the records; *outbox is the index of the first outbox entry.
//  Written in that order, any cut into slices loads what one pass does.
size_t
    reapload_order (const char *prefix, ep_etcd_kv_t *kvs, size_t nkvs, size_t *outbox);

//  Writes ordered kvs (a slice of reapload_order's) into db, as
//  reapload_shard; stats are added to (zero them first).
int
    reapload_records (sessiondb_t *db, const char *prefix, const ep_etcd_kv_t *kvs, size_t nkvs,
                      int64_t takeover_ms, reapload_entry_fn *entry_fn, void *arg,
                      reapload_stats_t *stats);

#endif
