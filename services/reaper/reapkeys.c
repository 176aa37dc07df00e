/*  reapkeys.c: a reaper shard's keys and records in etcd (reapkeys.h). */
#include "reapkeys.h"
#include "ep_shard.h"
#include "ep_codec.h"

#define ID_MAX      64              //  a session, job or router id, at most

//  In the order of the reaper's own list (reaper.c, reaper_reasons).
const char *const reapkeys_reasons [] = {
    "router-deleted", "identity-deleted", "service-deleted", "router-offline",
    "expired", "forced", "client-closed", NULL
};

char *
reapkeys_shard (const char *prefix, int shard, char *buf, size_t size)
{
    snprintf (buf, size, "%sreaper/%05d/", prefix, shard);
    return buf;
}

char *
reapkeys_session (const char *prefix, int shard, const char *id, char *buf, size_t size)
{
    snprintf (buf, size, "%sreaper/%05d/s/%s", prefix, shard, id);
    return buf;
}

char *
reapkeys_job (const char *prefix, int shard, const char *id, char *buf, size_t size)
{
    snprintf (buf, size, "%sreaper/%05d/j/%s", prefix, shard, id);
    return buf;
}

char *
reapkeys_counters (const char *prefix, int shard, const char *router_id, int chunk,
                   char *buf, size_t size)
{
    snprintf (buf, size, "%sreaper/%05d/c/%s/%05d", prefix, shard, router_id, chunk);
    return buf;
}

char *
reapkeys_outbox (const char *prefix, int shard, int64_t revision, int64_t seq, char *buf,
                 size_t size)
{
    //  Zero-padded, so that a range read returns the entries oldest first.
    snprintf (buf, size, "%sreaper/%05d/o/%020lld-%020lld", prefix, shard, (long long) revision,
              (long long) seq);
    return buf;
}

char *
reapkeys_event_id (int shard, int64_t revision, int64_t seq, char *buf, size_t size)
{
    snprintf (buf, size, "reaper/%d/%lld-%lld", shard, (long long) revision, (long long) seq);
    return buf;
}

//  Reads exactly digits decimal digits at *p (advanced). -1 if not.
static int64_t
s_number (const char **p, int digits)
{
    int64_t value = 0;
    for (int i = 0; i < digits; i++, (*p)++) {
        if (**p < '0' || **p > '9')
            return -1;
        value = value * 10 + (**p - '0');
    }
    return value;
}

//  Copies an id up to stop (or the end) into name. -1 if empty or too long.
static int
s_name (const char **p, char stop, char *name)
{
    size_t length = 0;
    while ((*p) [length] && (*p) [length] != stop)
        length++;
    if (length == 0 || length > ID_MAX)
        return -1;
    memcpy (name, *p, length);
    name [length] = 0;
    *p += length;
    return 0;
}

int
reapkeys_parse (const char *prefix, const char *key, reapkeys_key_t *parsed)
{
    memset (parsed, 0, sizeof *parsed);
    size_t length = strlen (prefix);
    if (strncmp (key, prefix, length) || strncmp (key + length, "reaper/", 7))
        return -1;
    const char *p = key + length + 7;
    int64_t shard = s_number (&p, 5);
    if (shard < 0 || *p != '/' || !p [1] || p [2] != '/')
        return -1;
    parsed->shard = (int) shard;
    char kind = p [1];
    p += 3;
    switch (kind) {
        case 's':
        case 'j':
            parsed->kind = kind == 's'? REAPKEYS_SESSION: REAPKEYS_JOB;
            return s_name (&p, 0, parsed->name);
        case 'c': {
            parsed->kind = REAPKEYS_COUNTERS;
            if (s_name (&p, '/', parsed->name) || *p++ != '/')
                return -1;
            int64_t chunk = s_number (&p, 5);
            parsed->chunk = (int) chunk;
            return chunk < 0 || *p? -1: 0;
        }
        case 'o':
            parsed->kind = REAPKEYS_OUTBOX;
            parsed->revision = s_number (&p, 20);
            if (parsed->revision < 0 || *p++ != '-')
                return -1;
            parsed->seq = s_number (&p, 20);
            return parsed->seq < 0 || *p? -1: 0;
        default:
            return -1;
    }
}

//  ---------------------------------------------------------------------
//  Records

uint8_t *
reapkeys_pack_session (const sessiondb_row_t *row, size_t *size)
{
    Ep__Session session = EP__SESSION__INIT;
    session.id = (char *) row->id;
    session.router_id = (char *) row->router_id;
    session.identity_id = (char *) row->identity_id;
    session.service_id = (char *) row->service_id;
    session.has_type = session.has_state = true;
    session.type = (Ep__SessionType) row->type;
    session.state = (Ep__SessionState) row->state;
    session.has_created_at_ms = session.has_last_seen_ms = true;
    session.created_at_ms = row->created_ms;
    session.last_seen_ms = row->last_seen_ms;
    session.has_bytes_rx = session.has_bytes_tx = true;
    session.bytes_rx = row->bytes_rx;
    session.bytes_tx = row->bytes_tx;
    session.has_priority = row->priority > 0;
    session.priority = row->priority;
    session.has_criticality = row->criticality != 0;
    session.criticality = (Ep__Criticality) row->criticality;
    session.close_reason = (char *) row->close_reason;
    session.has_closed_at_ms = row->state == EP__SESSION_STATE__CLOSED;
    session.closed_at_ms = row->closed_ms;
    session.job_id = (char *) row->job_id;
    Ep__ReaperSessionRecord record = EP__REAPER_SESSION_RECORD__INIT;
    record.session = &session;
    return ep_codec_pack_bytes (&record.base, size);
}

static bool
s_valid_id (const char *id)
{
    return id && *id && strlen (id) <= ID_MAX;
}

int
reapkeys_unpack_session (const void *bytes, size_t size, sessiondb_row_t *row,
                         Ep__ReaperSessionRecord **msg_p)
{
    *msg_p = NULL;
    Ep__ReaperSessionRecord *msg = ep__reaper_session_record__unpack (NULL, size, bytes);
    Ep__Session *session = msg? msg->session: NULL;
    if (!session || !s_valid_id (session->id) || !s_valid_id (session->router_id)
    ||  !s_valid_id (session->identity_id) || !s_valid_id (session->service_id)
    ||  session->state < EP__SESSION_STATE__ACTIVE || session->state > EP__SESSION_STATE__CLOSED) {
        if (msg)
            ep__reaper_session_record__free_unpacked (msg, NULL);
        return -1;
    }
    memset (row, 0, sizeof *row);
    row->id = session->id;
    row->router_id = session->router_id;
    row->identity_id = session->identity_id;
    row->service_id = session->service_id;
    row->type = session->type;
    row->state = session->state;
    row->priority = session->priority;
    row->criticality = session->criticality;
    row->created_ms = session->created_at_ms;
    row->last_seen_ms = session->last_seen_ms;
    row->bytes_rx = session->bytes_rx;
    row->bytes_tx = session->bytes_tx;
    row->close_reason = session->close_reason;
    row->closed_ms = session->closed_at_ms;
    row->job_id = session->job_id;
    *msg_p = msg;
    return 0;
}

uint8_t *
reapkeys_pack_job (const reapkeys_job_t *job, size_t *size)
{
    Ep__CleanupJob cleanup = EP__CLEANUP_JOB__INIT;
    cleanup.id = (char *) job->job.id;
    cleanup.reason = (char *) job->job.reason;
    cleanup.target_type = (char *) job->job.target_type;
    cleanup.target_id = (char *) job->job.target_id;
    cleanup.has_revision = cleanup.has_started_at_ms = cleanup.has_deadline_ms = true;
    cleanup.revision = job->job.revision;
    cleanup.started_at_ms = job->job.started_ms;
    cleanup.deadline_ms = job->job.deadline_ms;
    cleanup.has_done = cleanup.has_scheduled = true;
    cleanup.done = job->job.done;
    cleanup.scheduled = job->job.scheduled;
    cleanup.has_finished_at_ms = job->job.done;
    cleanup.finished_at_ms = job->job.finished_ms;
    Ep__ReasonCount counts [8], *pointers [8];
    for (size_t i = 0; reapkeys_reasons [i]; i++)
        if (job->closed [i]) {
            ep__reason_count__init (&counts [cleanup.n_closed]);
            counts [cleanup.n_closed].reason = (char *) reapkeys_reasons [i];
            counts [cleanup.n_closed].has_count = true;
            counts [cleanup.n_closed].count = job->closed [i];
            pointers [cleanup.n_closed] = &counts [cleanup.n_closed];
            cleanup.n_closed++;
        }
    cleanup.closed = pointers;
    Ep__ReaperJobRecord record = EP__REAPER_JOB_RECORD__INIT;
    record.job = &cleanup;
    record.has_marked = record.has_marking_done = true;
    record.marked = job->marked;
    record.marking_done = job->marking_done;
    return ep_codec_pack_bytes (&record.base, size);
}

int
reapkeys_unpack_job (const void *bytes, size_t size, reapkeys_job_t *job,
                     Ep__ReaperJobRecord **msg_p)
{
    *msg_p = NULL;
    Ep__ReaperJobRecord *msg = ep__reaper_job_record__unpack (NULL, size, bytes);
    Ep__CleanupJob *cleanup = msg? msg->job: NULL;
    if (!cleanup || !s_valid_id (cleanup->id) || !s_valid_id (cleanup->target_id)
    ||  !cleanup->reason || !cleanup->target_type || !cleanup->has_deadline_ms) {
        if (msg)
            ep__reaper_job_record__free_unpacked (msg, NULL);
        return -1;
    }
    memset (job, 0, sizeof *job);
    job->job.id = cleanup->id;
    job->job.reason = cleanup->reason;
    job->job.target_type = cleanup->target_type;
    job->job.target_id = cleanup->target_id;
    job->job.revision = cleanup->revision;
    job->job.started_ms = cleanup->started_at_ms;
    job->job.deadline_ms = cleanup->deadline_ms;
    job->job.scheduled = cleanup->scheduled;
    job->job.done = cleanup->done;
    job->job.finished_ms = cleanup->finished_at_ms;
    job->marked = msg->marked;
    job->marking_done = msg->marking_done;
    //  A reason this version does not know is not counted (a newer writer).
    for (size_t c = 0; c < cleanup->n_closed; c++)
        for (size_t i = 0; reapkeys_reasons [i]; i++)
            if (cleanup->closed [c]->reason && streq (cleanup->closed [c]->reason, reapkeys_reasons [i]))
                job->closed [i] = cleanup->closed [c]->count;
    *msg_p = msg;
    return 0;
}

int
reapkeys_chunk_of (const char *id)
{
    return ep_shard_of (id, REAPKEYS_CHUNKS);
}

uint8_t *
reapkeys_pack_counters (const reapkeys_counter_t *entries, size_t count, size_t *size)
{
    Ep__ReaperCounters counters = EP__REAPER_COUNTERS__INIT;
    Ep__ReaperCounters__Entry *items = (Ep__ReaperCounters__Entry *) calloc (count + 1, sizeof *items);
    Ep__ReaperCounters__Entry **pointers = (Ep__ReaperCounters__Entry **) calloc (count + 1,
                                                                                 sizeof *pointers);
    EP_ASSERT (items && pointers);
    for (size_t i = 0; i < count; i++) {
        ep__reaper_counters__entry__init (&items [i]);
        items [i].id = (char *) entries [i].id;
        items [i].has_bytes_rx = items [i].has_bytes_tx = items [i].has_last_seen_ms = true;
        items [i].bytes_rx = entries [i].bytes_rx;
        items [i].bytes_tx = entries [i].bytes_tx;
        items [i].last_seen_ms = entries [i].last_seen_ms;
        pointers [i] = &items [i];
    }
    counters.n_entries = count;
    counters.entries = pointers;
    uint8_t *bytes = ep_codec_pack_bytes (&counters.base, size);
    free (pointers);
    free (items);
    return bytes;
}

//  ---------------------------------------------------------------------
//  Taking a shard over

void
reapkeys_resume (const reapkeys_job_t *job, int64_t now, uint64_t open, reapkeys_resume_t *resume)
{
    memset (resume, 0, sizeof *resume);
    //  The deadline is the record's: the old owner told nobody a later
    //  one, and an earlier one would force sessions their router may
    //  still be closing.
    resume->deadline_ms = job->job.deadline_ms;
    if (job->job.done || open == 0)
        return;
    //  Which of its sessions the old owner marked is not kept (a mark per
    //  session is what the record saves): marking is idempotent, so the
    //  new owner marks what it loaded unless the record says all were.
    resume->mark = !job->marking_done;
    //  An acknowledged close was written as the session's closed record:
    //  an open record is a close nobody acknowledged, sent again.
    resume->resend = now < job->job.deadline_ms;
    resume->force = now >= job->job.deadline_ms;
}

int64_t
reapkeys_seen (int64_t flushed_ms, int64_t takeover_ms)
{
    return flushed_ms > takeover_ms? flushed_ms: takeover_ms;
}
