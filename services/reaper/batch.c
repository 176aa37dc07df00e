/*  batch.c: what the open batch changed in memory, put back if its commit
    fails.

    The reaper changes memory as it stages each write, so that the later
    writes of the batch and its tick see the change (an open then a close
    of one session, a job that takes sessions then marks them). A failed
    commit would leave memory ahead of sessions.db. Rather than an inverse
    for every operation on every structure (the hash, the groups' lists,
    the liveness and long-lived heaps, the cleanup planner, the jobs), the
    batch keeps a copy of each session and job the first time it changes
    it (or notes that the batch made it), and the few counters it moves.
    A failed commit takes every session it changed out of memory, puts the
    copies back through the same insert functions a load uses, restores
    the jobs and the counters: memory is what sessions.db holds, as after a
    restart, but with what only memory knows kept (last-seen times and
    byte counters heard since, commands in flight, cadences, presence).
    The cost is one copy per record changed, bounded by the batch.

    What came from an input that will not come again is redone instead:
    a cleanup the batch started from a deletion is wanted again (the
    model says it once), a router it took off the offline list goes back.
    The metrics a batch would move wait for its commit.
*/
#include "reaper_internal.h"

//  Records an array keeps allocated between batches at most: a cleanup's
//  start copies every session it takes, and that batch's array is not
//  kept for the life of the process.
#define KEEP_MAX            4096

//  A session as the batch first found it.
typedef struct {
    char *id;                   //  its id (the copy's, or owned when it is NULL)
    session_t *copy;            //  as it was (NULL: opened by this batch)
    char job [33];              //  its cleanup job then, "" if none
    uint8_t stage;              //  its stage in that cleanup (sweep_stage_t)
    bool dirty;                 //  its counters waited for a flush
    bool age_tracked;           //  it was still to warn long-lived
} s_session_t;

//  A job as the batch first found it.
typedef struct {
    job_t copy;                 //  as it was (its sweep pointer is not used)
    bool created;               //  started by this batch
} s_job_t;

//  A router the batch took off the offline list.
typedef struct {
    char router [65];           //  its id
    int64_t since;              //  offline since (monotonic ms)
} s_offline_t;

//  A close, for the metrics once it commits.
typedef struct {
    const char *reason;         //  close reason (static)
    double latency;             //  from its job's start (s), NAN without a job
} s_close_t;

//  The counters a batch moves, as they were.
typedef struct {
    int64_t closed;             //  CLOSED rows retained
    size_t outbox_count;        //  outbox rows
    size_t in_flight;           //  handed out, not echoed
    int64_t sent_seq;           //  handed out up to
    int64_t oldest_seq;         //  oldest in flight, as last looked at
    int64_t oldest_since;       //  since when
    int64_t next_flush;         //  counters flush due
    int64_t next_prune;         //  pruning due
} s_counters_t;

//  A growable array of records of one size.
typedef struct {
    void *items;                //  the records
    size_t size;                //  used
    size_t capacity;            //  allocated
} s_array_t;

struct _undo_t {
    s_array_t sessions;         //  s_session_t
    s_array_t jobs;             //  s_job_t
    s_array_t offline;          //  s_offline_t
    s_array_t closes;           //  s_close_t
    size_t warned;              //  long-lived warnings
    s_counters_t counters;      //  at the batch's start
};

//  A new zeroed record at the end of array (of records of item_size).
static void *
s_push (s_array_t *array, size_t item_size)
{
    if (array->size == array->capacity) {
        array->capacity = array->capacity? array->capacity * 2: 64;
        array->items = realloc (array->items, array->capacity * item_size);
        EP_ASSERT (array->items);
    }
    void *item = (char *) array->items + array->size++ * item_size;
    memset (item, 0, item_size);
    return item;
}

undo_t *
reaper_undo_new (void)
{
    return (undo_t *) zmalloc (sizeof (undo_t));
}

//  Forgets every record (the copies not put back are freed).
static void
s_reset (undo_t *self)
{
    s_session_t *sessions = (s_session_t *) self->sessions.items;
    for (size_t i = 0; i < self->sessions.size; i++) {
        if (sessions [i].copy)
            free (sessions [i].copy);
        else
            free (sessions [i].id);
    }
    s_array_t *arrays [] = { &self->sessions, &self->jobs, &self->offline, &self->closes };
    for (size_t i = 0; i < EP_COUNT (arrays); i++) {
        arrays [i]->size = 0;
        if (arrays [i]->capacity > KEEP_MAX) {
            free (arrays [i]->items);
            arrays [i]->items = NULL;
            arrays [i]->capacity = 0;
        }
    }
    self->warned = 0;
}

void
reaper_undo_destroy (undo_t **self_p)
{
    undo_t *self = *self_p;
    if (self) {
        s_reset (self);
        free (self->sessions.items);
        free (self->jobs.items);
        free (self->offline.items);
        free (self->closes.items);
        free (self);
        *self_p = NULL;
    }
}

void
reaper_batch_open (reaper_t *self)
{
    if (self->batch_open)
        return;
    self->batch_open = true;
    //  0 is "no batch yet": once the number wraps, stale marks could
    //  match, so they are cleared (every four billion batches).
    if (++self->batch == 0) {
        session_t *session = (session_t *) zhashx_first (self->sessions);
        for (; session; session = (session_t *) zhashx_next (self->sessions))
            session->batch = 0;
        job_t *job = (job_t *) zhashx_first (self->jobs);
        for (; job; job = (job_t *) zhashx_next (self->jobs))
            job->batch = 0;
        self->batch = 1;
    }
    self->undo->counters = (s_counters_t) {
        self->closed, self->outbox_count, self->in_flight, self->sent_seq, self->oldest_seq,
        self->oldest_since, self->next_flush, self->next_prune
    };
}

//  Keeps a copy of session unless the batch has one. Returns the record
//  made, or NULL.
static s_session_t *
s_keep (reaper_t *self, session_t *session)
{
    if (self->loading)
        return NULL;
    reaper_batch_open (self);
    if (session->batch == self->batch)
        return NULL;
    session->batch = self->batch;
    s_session_t *saved = (s_session_t *) s_push (&self->undo->sessions, sizeof (s_session_t));
    size_t size = sizeof (session_t) + strlen (session->id) + 1;
    saved->copy = (session_t *) malloc (size);
    EP_ASSERT (saved->copy);
    memcpy (saved->copy, session, size);
    saved->id = saved->copy->id;
    job_t *job = reaper_job_of (session);
    snprintf (saved->job, sizeof saved->job, "%s", job? job->id: "");
    saved->stage = session->sweep? (uint8_t) sweep_item_stage (session->sweep): 0;
    saved->dirty = session->dirty >= 0;
    saved->age_tracked = longlived_tracked (&session->age);
    return saved;
}

void
reaper_touch (reaper_t *self, session_t *session)
{
    s_keep (self, session);
}

void
reaper_touch_crossed (reaper_t *self, session_t *session)
{
    s_session_t *saved = s_keep (self, session);
    if (saved)
        saved->age_tracked = true;
}

void
reaper_touch_new (reaper_t *self, session_t *session)
{
    if (self->loading)
        return;
    reaper_batch_open (self);
    session->batch = self->batch;
    s_session_t *saved = (s_session_t *) s_push (&self->undo->sessions, sizeof (s_session_t));
    saved->id = strdup (session->id);
    EP_ASSERT (saved->id);
}

void
reaper_touch_job (reaper_t *self, job_t *job, bool created)
{
    if (self->loading)
        return;
    reaper_batch_open (self);
    if (job->batch == self->batch)
        return;
    job->batch = self->batch;
    s_job_t *saved = (s_job_t *) s_push (&self->undo->jobs, sizeof (s_job_t));
    saved->copy = *job;
    saved->created = created;
}

void
reaper_touch_offline (reaper_t *self, const char *router, int64_t since)
{
    if (self->loading)
        return;
    reaper_batch_open (self);
    s_offline_t *saved = (s_offline_t *) s_push (&self->undo->offline, sizeof (s_offline_t));
    snprintf (saved->router, sizeof saved->router, "%s", router);
    saved->since = since;
}

void
reaper_batch_closed (reaper_t *self, const char *reason, double latency)
{
    s_close_t *close = (s_close_t *) s_push (&self->undo->closes, sizeof (s_close_t));
    close->reason = reason;
    close->latency = latency;
}

void
reaper_batch_warned (reaper_t *self)
{
    self->undo->warned++;
}

void
reaper_batch_keep (reaper_t *self)
{
    undo_t *undo = self->undo;
    s_close_t *closes = (s_close_t *) undo->closes.items;
    for (size_t i = 0; i < undo->closes.size; i++) {
        const char *labels [] = { closes [i].reason };
        if (self->closed_total)
            ep_counter_inc (self->closed_total, labels, 1);
        if (self->latency && !isnan (closes [i].latency))
            ep_histogram_observe (self->latency, labels, closes [i].latency);
    }
    if (self->long_lived && undo->warned)
        ep_series_add (self->long_lived, (double) undo->warned);
    if (self->flushed) {
        for (size_t i = 0; i < self->dirty_size; i++)
            if (self->dirty [i])
                self->dirty [i]->dirty = -1;
        self->dirty_size = 0;
    }
    s_reset (undo);
    self->flushed = false;
    self->batch_open = false;
}

//  The jobs as they were: those the batch started go (their sessions are
//  out already) and are wanted again, those it ended come back.
static void
s_jobs_back (reaper_t *self)
{
    s_job_t *jobs = (s_job_t *) self->undo->jobs.items;
    for (size_t i = 0; i < self->undo->jobs.size; i++) {
        const job_t *copy = &jobs [i].copy;
        job_t *job = (job_t *) zhashx_lookup (self->jobs, copy->id);
        if (jobs [i].created) {
            if (job) {
                EP_ASSERT (sweep_job_items (job->sweep) == 0);
                sweep_job_end (self->sweep, &job->sweep);
                zhashx_delete (self->jobs, copy->id);
            }
            //  An offline router's is decided again from the offline list.
            if (!streq (copy->reason, R_OFFLINE))
                reaper_want (self, copy->kind, copy->target, copy->reason, copy->revision);
            continue;
        }
        if (!job)
            job = reaper_job_alloc (self, copy->id, copy->reason, copy->kind, copy->target,
                                    copy->revision, copy->started_ms, copy->deadline_ms);
        job->scheduled = copy->scheduled;
        memcpy (job->closed, copy->closed, sizeof job->closed);
    }
}

//  A session back in memory as the copy has it.
static void
s_session_back (reaper_t *self, s_session_t *saved)
{
    session_t *session = saved->copy;
    saved->copy = NULL;
    saved->id = NULL;
    session->live.index = 0;
    session->age.index = 0;
    session->sweep = NULL;
    session->dirty = -1;
    session->batch = 0;
    reaper_session_link (self, session);
    if (saved->age_tracked)
        longlived_track (self->longlived, &session->age, session->age.crosses);
    if (*saved->job) {
        job_t *job = (job_t *) zhashx_lookup (self->jobs, saved->job);
        EP_ASSERT (job);
        //  A close that was sent goes again (a new command): its answer
        //  may be what this batch could not write.
        reaper_sweep_add (self, job, session, saved->stage != SWEEP_PENDING);
    }
    else
    if (session->state == EP__SESSION_STATE__ACTIVE)
        liveness_restore (self->liveness, &session->live);
    if (saved->dirty)
        reaper_dirty (self, session);
}

void
reaper_batch_undo (reaper_t *self)
{
    if (!self->batch_open)
        return;
    undo_t *undo = self->undo;
    s_session_t *sessions = (s_session_t *) undo->sessions.items;
    //  Out: every session the batch changed, as it is now; what memory
    //  heard of it meanwhile goes into its copy.
    for (size_t i = 0; i < undo->sessions.size; i++) {
        session_t *session = (session_t *) zhashx_lookup (self->sessions, sessions [i].id);
        if (!session)
            continue;
        session_t *copy = sessions [i].copy;
        if (copy) {
            if (session->live.seen > copy->live.seen)
                copy->live.seen = session->live.seen;
            if (session->bytes_rx > copy->bytes_rx)
                copy->bytes_rx = session->bytes_rx;
            if (session->bytes_tx > copy->bytes_tx)
                copy->bytes_tx = session->bytes_tx;
        }
        reaper_session_drop (self, session);
    }
    s_jobs_back (self);
    size_t back = 0;
    for (size_t i = 0; i < undo->sessions.size; i++)
        if (sessions [i].copy) {
            s_session_back (self, &sessions [i]);
            back++;
        }
    s_offline_t *offline = (s_offline_t *) undo->offline.items;
    for (size_t i = 0; i < undo->offline.size; i++) {
        group_t *group = (group_t *) zhashx_lookup (self->groups [G_ROUTER], offline [i].router);
        if (group && !group->online && self->known) {
            group->offline_since = offline [i].since;
            zhashx_update (self->offline, group->id, group);
        }
    }
    const s_counters_t *counters = &undo->counters;
    self->closed = counters->closed;
    self->outbox_count = counters->outbox_count;
    self->in_flight = counters->in_flight;
    self->sent_seq = counters->sent_seq;
    self->oldest_seq = counters->oldest_seq;
    self->oldest_since = counters->oldest_since;
    self->next_flush = counters->next_flush;
    self->next_prune = counters->next_prune;
    ep_log_warn ("batch undone in memory: %zu sessions as they were, %zu opened by it gone, "
                 "%zu jobs as they were; its work is done again once sessions.db takes writes",
                 back, undo->sessions.size - back, undo->jobs.size);
    s_reset (undo);
    self->flushed = false;
    self->batch_open = false;
}

//  ---------------------------------------------------------------------
//  reaper_dump: what memory holds, as sorted lines

static int
s_compare (const void *a, const void *b)
{
    return strcmp ((const char *) a, (const char *) b);
}

static const char *
s_stage_name (session_t *session)
{
    if (!session->sweep)
        return "-";
    //  Sent or not, it is TERMINATING and its router is to be told.
    return sweep_item_stage (session->sweep) == SWEEP_PENDING? "pending": "marked";
}

char *
reaper_dump (reaper_t *self)
{
    zlistx_t *lines = zlistx_new ();
    zlistx_set_destructor (lines, (czmq_destructor *) zstr_free);
    zlistx_set_comparator (lines, s_compare);
    session_t *session = (session_t *) zhashx_first (self->sessions);
    for (; session; session = (session_t *) zhashx_next (self->sessions)) {
        job_t *job = reaper_job_of (session);
        zlistx_add_end (lines, zsys_sprintf (
            "session %s router=%s identity=%s service=%s state=%d type=%d crit=%d prio=%u created=%lld "
            "rx=%llu tx=%llu seen=%lld live=%s/%lld/%lld age=%s/%lld job=%s/%s stage=%s dirty=%s",
            session->id, session->groups [G_ROUTER]->id, session->groups [G_IDENTITY]->id,
            session->groups [G_SERVICE]->id, session->state, session->type, session->criticality,
            session->priority, (long long) session->created_ms, (unsigned long long) session->bytes_rx,
            (unsigned long long) session->bytes_tx, (long long) session->live.seen,
            session->live.index? "tracked": "-", (long long) session->live.deadline,
            (long long) session->live.probed, longlived_tracked (&session->age)? "tracked": "-",
            (long long) session->age.crosses, job? reaper_group_types [job->kind]: "-",
            job? job->target: "-", s_stage_name (session), session->dirty >= 0? "yes": "no"));
    }
    job_t *job = (job_t *) zhashx_first (self->jobs);
    for (; job; job = (job_t *) zhashx_next (self->jobs)) {
        char closed [256] = "";
        for (size_t i = 0; i < REASONS; i++)
            snprintf (closed + strlen (closed), sizeof closed - strlen (closed), " %llu",
                      (unsigned long long) job->closed [i]);
        zlistx_add_end (lines, zsys_sprintf (
            "job %s/%s reason=%s revision=%llu started=%lld deadline=%lld scheduled=%llu items=%zu closed=%s",
            reaper_group_types [job->kind], job->target, job->reason, (unsigned long long) job->revision,
            (long long) job->started_ms, (long long) job->deadline_ms, (unsigned long long) job->scheduled,
            sweep_job_items (job->sweep), closed));
    }
    for (int kind = 0; kind < G_KINDS; kind++) {
        group_t *group = (group_t *) zhashx_first (self->groups [kind]);
        for (; group; group = (group_t *) zhashx_next (self->groups [kind]))
            zlistx_add_end (lines, zsys_sprintf ("group %s/%s count=%zu offline=%s/%lld",
                reaper_group_types [kind], group->id, group->count,
                zhashx_lookup (self->offline, group->id)? "listed": "-", (long long) group->offline_since));
    }
    reaper_want_t *want = (reaper_want_t *) zhashx_first (self->wanted);
    for (; want; want = (reaper_want_t *) zhashx_next (self->wanted))
        zlistx_add_end (lines, zsys_sprintf ("wanted %s/%s reason=%s", reaper_group_types [want->kind],
                                             want->target, want->reason));
    size_t dirty = 0;
    for (size_t i = 0; i < self->dirty_size; i++)
        dirty += self->dirty [i] != NULL;
    zlistx_add_end (lines, zsys_sprintf (
        "counters active=%zu terminating=%zu closed=%lld outbox=%zu in_flight=%zu sent_seq=%lld "
        "liveness=%zu longlived=%zu cleanup=%zu pending=%zu dirty=%zu offline=%zu",
        self->active, self->terminating, (long long) self->closed, self->outbox_count, self->in_flight,
        (long long) self->sent_seq, liveness_size (self->liveness), longlived_size (self->longlived),
        sweep_size (self->sweep), sweep_pending (self->sweep), dirty, zhashx_size (self->offline)));
    zlistx_sort (lines);
    size_t length = 1;
    for (char *line = (char *) zlistx_first (lines); line; line = (char *) zlistx_next (lines))
        length += strlen (line) + 1;
    char *text = (char *) malloc (length);
    EP_ASSERT (text);
    char *end = text;
    for (char *line = (char *) zlistx_first (lines); line; line = (char *) zlistx_next (lines))
        end += sprintf (end, "%s\n", line);
    *end = 0;
    zlistx_destroy (&lines);
    return text;
}
