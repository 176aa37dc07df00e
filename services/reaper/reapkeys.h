/*  reapkeys.h: what a reaper shard keeps in etcd, and what its next owner
    makes of it (the etcd mode, docs/reaper.md "On shards").

    etcd takes small values and small transactions, so a shard keeps only
    what a new owner needs to go on, not the embedded mode's rows:

        <prefix>reaper/<shard, 5 digits>/s/<session id>        ReaperSessionRecord
        <prefix>reaper/<shard>/j/<job id>                      ReaperJobRecord
        <prefix>reaper/<shard>/c/<router id>/<chunk, 5>        ReaperCounters
        <prefix>reaper/<shard>/o/<owner revision, 20>-<seq, 20>  ReaperOutboxEntry

    A session's record is written when it opens and when it closes; a
    cleanup job is one record per target (a deleted router...) and shard,
    with its deadline and how far it got, not a mark per session; byte
    counters and last-seen times are flushed per router as aggregates, its
    sessions spread over REAPKEYS_CHUNKS values by a hash of their id (a
    chunk of a router with 20,000 sessions is about 15 KB), every
    --flush-interval.

    Taking a shard over is a restart for its sessions (reapkeys_resume,
    reapkeys_seen): the job's deadline is the record's (never earlier),
    its sessions still open are the ones whose close was not acknowledged
    and are sent their CloseSessions again, and nothing expires before its
    router is heard from again or the offline grace has passed since the
    takeover.

    Pure: keys, records and decisions; no etcd call, no clock.
*/
#ifndef REAPKEYS_H_INCLUDED
#define REAPKEYS_H_INCLUDED

#include "ep_prelude.h"
#include "sessiondb.h"
#include "sessions.pb-c.h"

#define REAPKEYS_KEY_MAX    400         //  a key's size, at most (ids are 64 at most)
#define REAPKEYS_CHUNKS     64          //  a router's counters are spread over this many values

typedef enum {
    REAPKEYS_SESSION,                   //  s/<session id>
    REAPKEYS_JOB,                       //  j/<job id>
    REAPKEYS_COUNTERS,                  //  c/<router id>/<chunk>
    REAPKEYS_OUTBOX                     //  o/<owner revision>-<seq>
} reapkeys_kind_t;

//  A key taken apart.
typedef struct {
    reapkeys_kind_t kind;               //  which record
    int shard;                          //  its shard
    char name [65];                     //  the session, job or router id ("" for the outbox)
    int chunk;                          //  COUNTERS: the chunk
    int64_t revision;                   //  OUTBOX: the owner revision it was written under
    int64_t seq;                        //  OUTBOX: its seq under that revision
} reapkeys_key_t;

//  The keys (buf, size at least REAPKEYS_KEY_MAX; returned). prefix is
//  EDGEPLANE_ETCD_PREFIX ("/edgeplane/").
char *
    reapkeys_shard (const char *prefix, int shard, char *buf, size_t size);
char *
    reapkeys_session (const char *prefix, int shard, const char *id, char *buf, size_t size);
char *
    reapkeys_job (const char *prefix, int shard, const char *id, char *buf, size_t size);
char *
    reapkeys_counters (const char *prefix, int shard, const char *router_id, int chunk,
                       char *buf, size_t size);
char *
    reapkeys_outbox (const char *prefix, int shard, int64_t revision, int64_t seq,
                     char *buf, size_t size);

//  An outbox entry's StreamMeta.event_id: "reaper/<shard>/<revision>-<seq>",
//  kept with the entry, so the next owner publishes it under the same id.
char *
    reapkeys_event_id (int shard, int64_t revision, int64_t seq, char *buf, size_t size);

//  Takes key apart. 0, or -1 if it is not a reaper shard's record key.
int
    reapkeys_parse (const char *prefix, const char *key, reapkeys_key_t *parsed);

//  A session's record from its row (open, or closed with its reason).
//  Caller frees the bytes.
uint8_t *
    reapkeys_pack_session (const sessiondb_row_t *row, size_t *size);

//  A session's record into row, whose strings point into *msg_p (free it
//  with ep__reaper_session_record__free_unpacked once done with row).
//  -1 if the bytes are not a valid record (no id, router, identity or
//  service; an id over 64; an unknown state).
int
    reapkeys_unpack_session (const void *bytes, size_t size, sessiondb_row_t *row,
                             Ep__ReaperSessionRecord **msg_p);

//  A job in one shard: the embedded mode's row, and how far it got.
typedef struct {
    sessiondb_job_t job;                //  id, reason, target, revision, times, scheduled
    uint64_t marked;                    //  sessions marked TERMINATING so far
    bool marking_done;                  //  every session it took is marked
    uint64_t closed [8];                //  closed so far, by reason (reapkeys_reasons order)
} reapkeys_job_t;

//  The close reasons counted in reapkeys_job_t.closed, NULL-terminated.
extern const char *const reapkeys_reasons [];

uint8_t *
    reapkeys_pack_job (const reapkeys_job_t *job, size_t *size);

//  As reapkeys_unpack_session: job's strings point into *msg_p (free it
//  with ep__reaper_job_record__free_unpacked). -1 if invalid.
int
    reapkeys_unpack_job (const void *bytes, size_t size, reapkeys_job_t *job,
                         Ep__ReaperJobRecord **msg_p);

//  One session's counters, for an aggregate.
typedef struct {
    const char *id;                     //  the session
    uint64_t bytes_rx;                  //  cumulative
    uint64_t bytes_tx;                  //  cumulative
    int64_t last_seen_ms;               //  wall clock
} reapkeys_counter_t;

//  The chunk of a router's counters session id is in.
int
    reapkeys_chunk_of (const char *id);

//  An aggregate of count sessions' counters.
uint8_t *
    reapkeys_pack_counters (const reapkeys_counter_t *entries, size_t count, size_t *size);

//  What a new owner does with a running job it loaded.
typedef struct {
    int64_t deadline_ms;                //  wall clock: the record's, never earlier
    bool mark;                          //  some of its sessions are not marked yet: go on marking
    bool resend;                        //  its sessions still open: CloseSessions again (unacked)
    bool force;                         //  the deadline has passed: force what is still open
} reapkeys_resume_t;

//  The new owner's plan for job at wall time now, with open sessions of
//  its target still open in the shard.
void
    reapkeys_resume (const reapkeys_job_t *job, int64_t now, uint64_t open,
                     reapkeys_resume_t *resume);

//  The last-seen a new owner gives a loaded session (wall clock): as a
//  restart does, the takeover time, or the flushed one if later (a clock
//  step), so a session expires only once unheard for T2 since the takeover.
int64_t
    reapkeys_seen (int64_t flushed_ms, int64_t takeover_ms);

#endif
