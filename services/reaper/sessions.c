/*  sessions.c: session records in memory: the hash by id, the lists of
    each router, identity and service (groups), the counters staged for the
    next flush (heartbeats only stamp them), and the close that frees them.
    A group a batch empties stays until the batch ends: if its commit fails
    its sessions come back (batch.c), to the same group, as they were.
*/
#include "reaper_internal.h"

void
reaper_group_free (void **item)
{
    group_t *group = (group_t *) *item;
    if (group) {
        free (group->id);
        free (group);
        *item = NULL;
    }
}

//  The group (kind, id), created if absent.
static group_t *
s_group (reaper_t *self, int kind, const char *id, int64_t now)
{
    group_t *group = (group_t *) zhashx_lookup (self->groups [kind], id);
    if (group)
        return group;
    group = (group_t *) zmalloc (sizeof (group_t));
    group->id = strdup (id);
    group->kind = kind;
    group->offline_since = -1;
    if (kind == G_ROUTER) {
        cadences_add (self->cadences, id);
        reaper_thresholds (self, group);
        group->online = fleet_online (self->fleet, id);
        group->online_since = group->online? fleet_online_since (self->fleet, id): now;
        if (self->known && !group->online) {
            group->offline_since = now;
            zhashx_update (self->offline, id, group);
        }
    }
    zhashx_insert (self->groups [kind], id, group);
    return group;
}

static void
s_link (session_t *session, int kind, group_t *group)
{
    session->groups [kind] = group;
    session->prev [kind] = NULL;
    session->next [kind] = group->head;
    if (group->head)
        group->head->prev [kind] = session;
    group->head = session;
    group->count++;
}

static void
s_unlink (reaper_t *self, session_t *session, int kind)
{
    group_t *group = session->groups [kind];
    if (session->prev [kind])
        session->prev [kind]->next [kind] = session->next [kind];
    else
        group->head = session->next [kind];
    if (session->next [kind])
        session->next [kind]->prev [kind] = session->prev [kind];
    if (--group->count == 0) {
        if (kind == G_ROUTER) {
            //  With nothing open here its batches stop (an empty one is
            //  not sent): the time up to its next is no interval. A
            //  deleted router's cadence goes with its last session.
            if (zhashx_lookup (self->tombstones [G_ROUTER], group->id))
                reaper_router_forget (self, group->id);
            else
                cadences_gap (self->cadences, group->id);
        }
        if (!group->emptied) {
            group->emptied = true;
            zlistx_add_end (self->emptied, group);
        }
    }
}

void
reaper_groups_sweep (reaper_t *self)
{
    group_t *group;
    while ((group = (group_t *) zlistx_detach (self->emptied, NULL))) {
        group->emptied = false;
        if (group->count)
            continue;               //  filled again
        if (group->kind == G_ROUTER)
            zhashx_delete (self->offline, group->id);
        char *id = strdup (group->id);
        zhashx_delete (self->groups [group->kind], id);
        free (id);
    }
}

void
reaper_dirty (reaper_t *self, session_t *session)
{
    if (session->dirty >= 0)
        return;
    if (self->dirty_size == self->dirty_capacity) {
        self->dirty_capacity = self->dirty_capacity? self->dirty_capacity * 2: 1024;
        self->dirty = (session_t **) realloc (self->dirty, self->dirty_capacity * sizeof (session_t *));
        EP_ASSERT (self->dirty);
    }
    session->dirty = (int32_t) self->dirty_size;
    self->dirty [self->dirty_size++] = session;
}

//  A session in memory (its row already written or loaded).
session_t *
reaper_session_new (reaper_t *self, const sessiondb_row_t *row, int64_t now)
{
    size_t len = strlen (row->id);
    session_t *session = (session_t *) zmalloc (sizeof (session_t) + len + 1);
    memcpy (session->id, row->id, len + 1);
    session->created_ms = row->created_ms;
    session->bytes_rx = row->bytes_rx;
    session->bytes_tx = row->bytes_tx;
    session->priority = row->priority;
    session->criticality = (uint8_t) row->criticality;
    session->type = (uint8_t) row->type;
    session->state = (uint8_t) row->state;
    session->dirty = -1;
    s_link (session, G_ROUTER, s_group (self, G_ROUTER, row->router_id, now));
    s_link (session, G_IDENTITY, s_group (self, G_IDENTITY, row->identity_id, now));
    s_link (session, G_SERVICE, s_group (self, G_SERVICE, row->service_id, now));
    zhashx_insert (self->sessions, session->id, session);
    if (!row->warned)
        reaper_age_track (self, session);
    session->live.seen = now;
    if (session->state == EP__SESSION_STATE__ACTIVE) {
        liveness_track (self->liveness, &session->live, now);
        self->active++;
    }
    else
        self->terminating++;
    reaper_touch_new (self, session);
    return session;
}

void
reaper_session_link (reaper_t *self, session_t *session)
{
    for (int kind = 0; kind < G_KINDS; kind++)
        s_link (session, kind, session->groups [kind]);
    zhashx_insert (self->sessions, session->id, session);
    if (session->state == EP__SESSION_STATE__ACTIVE)
        self->active++;
    else
        self->terminating++;
}

static void
s_session_free (reaper_t *self, session_t *session)
{
    EP_ASSERT (!session->sweep);
    liveness_untrack (self->liveness, &session->live);
    longlived_untrack (self->longlived, &session->age);
    if (session->dirty >= 0)
        self->dirty [session->dirty] = NULL;
    if (session->state == EP__SESSION_STATE__ACTIVE)
        self->active--;
    else
        self->terminating--;
    zhashx_delete (self->sessions, session->id);
    for (int kind = 0; kind < G_KINDS; kind++)
        s_unlink (self, session, kind);
    free (session);
}

void
reaper_session_drop (reaper_t *self, session_t *session)
{
    if (session->sweep)
        sweep_done (self->sweep, &session->sweep);
    s_session_free (self, session);
}

//  The row of an in-memory session, as a reply shows it.
void
reaper_row_of (reaper_t *self, session_t *session, sessiondb_row_t *row, const char *job_id)
{
    memset (row, 0, sizeof *row);
    row->id = session->id;
    row->router_id = session->groups [G_ROUTER]->id;
    row->identity_id = session->groups [G_IDENTITY]->id;
    row->service_id = session->groups [G_SERVICE]->id;
    row->type = session->type;
    row->state = session->state;
    row->priority = session->priority;
    row->criticality = session->criticality;
    row->warned = !longlived_tracked (&session->age);
    row->created_ms = session->created_ms;
    row->last_seen_ms = reaper_wall (self, session->live.seen);
    row->bytes_rx = session->bytes_rx;
    row->bytes_tx = session->bytes_tx;
    row->job_id = job_id;
}

//  Closes a session: its row, its event, its job's count; frees it.
void
reaper_finish (reaper_t *self, session_t *session, const char *reason, const char *event_type, int64_t now)
{
    job_t *job = reaper_job_of (session);
    reaper_touch (self, session);
    if (job)
        reaper_touch_job (self, job, false);
    if (!reaper_begin (self))
        return;
    reaper_wrote (self, sessiondb_close (self->db, session->id, reason, reaper_wall (self, now),
                                    reaper_wall (self, session->live.seen), session->bytes_rx,
                                    session->bytes_tx, job? job->id: NULL));
    reaper_event (self, session, event_type, reason, now);
    reaper_batch_closed (self, reason, job? (reaper_wall (self, now) - job->started_ms) / 1000.0: NAN);
    if (job) {
        job->closed [reaper_reason_index (reason)]++;
        sweep_done (self->sweep, &session->sweep);
        if (sweep_job_items (job->sweep) == 0)
            reaper_job_finish (self, job, now);
    }
    self->closed++;
    s_session_free (self, session);
}

//  The dirty set is emptied only once the rows commit (reaper_batch_keep):
//  if they do not, the next flush writes them again. The tick flushes
//  last in a batch, so nothing is made dirty after it.
void
reaper_flush (reaper_t *self, int64_t now)
{
    if (self->dirty_size && reaper_begin (self)) {
        for (size_t i = 0; i < self->dirty_size; i++) {
            session_t *session = self->dirty [i];
            if (session)
                reaper_wrote (self, sessiondb_counters (self->db, session->id,
                                                        reaper_wall (self, session->live.seen),
                                                        session->bytes_rx, session->bytes_tx));
        }
        self->flushed = true;
    }
    self->next_flush = now + self->config.flush_ms;
}
