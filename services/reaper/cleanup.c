/*  cleanup.c: cleanup jobs and their three phases (mark TERMINATING,
    CloseSessions in windows, force at the deadline; sweep.c decides the
    order and pace), and what starts a job from the model: a deletion, a
    first snapshot that lacks a router, identity or service, or a router
    the view still lacks once it has caught up with the watchdogs.
*/
#include "reaper_internal.h"
#include <jansson.h>

#define TOMBSTONES_MAX      100000      //  deleted ids remembered, at most

job_t *
reaper_job_of (session_t *session)
{
    return session->sweep? (job_t *) sweep_job_user (sweep_item_job (session->sweep)): NULL;
}

void
reaper_job_finish (reaper_t *self, job_t *job, int64_t now)
{
    reaper_touch_job (self, job, false);
    json_t *closed = json_object ();
    uint64_t total = 0;
    for (size_t i = 0; i < REASONS; i++)
        if (job->closed [i]) {
            json_object_set_new (closed, reaper_reasons [i], json_integer ((json_int_t) job->closed [i]));
            total += job->closed [i];
        }
    char *text = json_dumps (closed, JSON_COMPACT | JSON_SORT_KEYS);
    reaper_wrote (self, sessiondb_job_finish (self->db, job->id, reaper_wall (self, now), text));
    ep_log_info ("cleanup %s (%s %s) done: %llu sessions closed %s", job->id, reaper_group_types [job->kind],
                 job->target, (unsigned long long) total, text);
    free (text);
    json_decref (closed);
    sweep_job_end (self->sweep, &job->sweep);
    zhashx_delete (self->jobs, job->id);
}

//  The rank of a criticality in the cleanup order: low, normal, high,
//  critical (the enum puts normal at 0 so an absent field means normal).
static uint64_t
s_rank (uint8_t criticality)
{
    switch (criticality) {
        case EP__CRITICALITY__CRITICALITY_LOW:      return 0;
        case EP__CRITICALITY__CRITICALITY_HIGH:     return 2;
        case EP__CRITICALITY__CRITICALITY_CRITICAL: return 3;
        default:                                    return 1;
    }
}

void
reaper_sweep_add (reaper_t *self, job_t *job, session_t *session, bool marked)
{
    //  Critical services' sessions first, then high, normal, low; within
    //  one criticality the router's own priority, then traffic and age.
    uint64_t urgency = s_rank (session->criticality) << 32 | session->priority;
    session->sweep = sweep_add (self->sweep, job->sweep, session, session->id,
                                session->groups [G_ROUTER]->id, urgency,
                                session->bytes_rx + session->bytes_tx, session->created_ms, marked);
}

//  Hands session to job (marked: TERMINATING on disk already).
void
reaper_take (reaper_t *self, job_t *job, session_t *session, bool marked, int64_t now)
{
    reaper_touch (self, session);
    liveness_untrack (self->liveness, &session->live);
    reaper_sweep_add (self, job, session, marked);
    //  Not while loading (marked): its rows are being read; the tick
    //  warns those that crossed.
    if (!marked)
        reaper_warn_if_due (self, session, now);
}

static char *
s_want_key (int kind, const char *target)
{
    return zsys_sprintf ("%d/%s", kind, target);
}

void
reaper_want (reaper_t *self, int kind, const char *target, const char *reason, uint64_t revision)
{
    reaper_want_t *want = (reaper_want_t *) zmalloc (sizeof (reaper_want_t));
    want->kind = kind;
    snprintf (want->target, sizeof want->target, "%s", target);
    want->reason = reaper_reason (reason);
    want->revision = revision;
    char *key = s_want_key (kind, target);
    zhashx_update (self->wanted, key, want);
    zstr_free (&key);
}

//  One at a time off the table: a start that fails puts its own back.
void
reaper_wanted (reaper_t *self, int64_t now)
{
    reaper_want_t *want;
    while (!self->failed && (want = (reaper_want_t *) zhashx_first (self->wanted))) {
        reaper_want_t copy = *want;
        zhashx_delete (self->wanted, zhashx_cursor (self->wanted));
        reaper_job_start (self, copy.kind, copy.target, copy.reason, copy.revision, now);
    }
}

job_t *
reaper_job_alloc (reaper_t *self, const char *id, const char *reason, int kind, const char *target,
             uint64_t revision, int64_t started_ms, int64_t deadline_ms)
{
    job_t *job = (job_t *) zmalloc (sizeof (job_t));
    snprintf (job->id, sizeof job->id, "%s", id);
    job->reason = reaper_reason (reason);
    job->kind = kind;
    snprintf (job->target, sizeof job->target, "%s", target);
    job->revision = revision;
    job->started_ms = started_ms;
    job->deadline_ms = deadline_ms;
    job->sweep = sweep_job_new (self->sweep, job->id, deadline_ms - self->wall_offset, job);
    zhashx_insert (self->jobs, job->id, job);
    return job;
}

//  Starts the cleanup of every open session of (kind, target) that no job
//  holds yet. Returns the job, or NULL if there was nothing to clean.
job_t *
reaper_job_start (reaper_t *self, int kind, const char *target, const char *reason, uint64_t revision,
             int64_t now)
{
    group_t *group = (group_t *) zhashx_lookup (self->groups [kind], target);
    uint64_t count = 0;
    for (session_t *session = group? group->head: NULL; session; session = session->next [kind])
        if (!session->sweep)
            count++;
    if (count == 0)
        return NULL;
    //  A deletion is not told twice: while the store takes no writes, or
    //  if this batch fails, it waits (an offline router stays on the
    //  offline list instead, and is looked at again).
    if (self->degraded != EP_STORE_FAULT_NONE || !reaper_begin (self)) {
        if (!streq (reason, R_OFFLINE))
            reaper_want (self, kind, target, reason, revision);
        return NULL;
    }
    char id [33];
    ep_random_hex (id, 16);
    int64_t started = reaper_wall (self, now);
    job_t *job = reaper_job_alloc (self, id, reason, kind, target, revision, started,
                                started + self->config.deadline_ms);
    reaper_touch_job (self, job, true);
    job->scheduled = count;
    sessiondb_job_t row = {
        .id = job->id, .reason = job->reason, .target_type = reaper_group_types [kind],
        .target_id = target, .revision = revision, .started_ms = started,
        .deadline_ms = job->deadline_ms, .scheduled = count
    };
    reaper_wrote (self, sessiondb_job_insert (self->db, &row));
    for (session_t *session = group->head; session; session = session->next [kind])
        if (!session->sweep)
            reaper_take (self, job, session, false, now);
    ep_log_info ("cleanup %s: %llu sessions of %s %s (%s), deadline in %lld ms", job->id,
                 (unsigned long long) count, reaper_group_types [kind], target, job->reason,
                 (long long) self->config.deadline_ms);
    return job;
}

//  Phase 1: the most urgent pending sessions become TERMINATING.
void
reaper_mark (reaper_t *self, int64_t now)
{
    if (sweep_pending (self->sweep) == 0 || !reaper_begin (self))
        return;
    sweep_item_t **items = (sweep_item_t **) malloc (self->config.mark_batch * sizeof (sweep_item_t *));
    size_t count = sweep_take_pending (self->sweep, items, self->config.mark_batch);
    for (size_t i = 0; i < count; i++) {
        session_t *session = (session_t *) sweep_item_owner (items [i]);
        job_t *job = reaper_job_of (session);
        reaper_touch (self, session);
        reaper_wrote (self, sessiondb_mark (self->db, session->id, job->id));
        session->state = EP__SESSION_STATE__TERMINATING;
        self->active--;
        self->terminating++;
        sweep_marked (self->sweep, items [i]);
        reaper_event (self, session, "terminating", job->reason, now);
    }
    free (items);
    ep_log_debug ("marked %zu sessions TERMINATING, %zu to go", count, sweep_pending (self->sweep));
}

//  Phase 2: CloseSessions to the routers, new and resent.
void
reaper_send (reaper_t *self, int64_t now)
{
    sweep_command_t *command;
    const char **ids = NULL;
    size_t capacity = 0;
    while ((command = sweep_next_command (self->sweep, now))) {
        size_t count = sweep_command_size (command);
        if (count > capacity) {
            capacity = count;
            ids = (const char **) realloc (ids, capacity * sizeof (char *));
        }
        for (size_t i = 0; i < count; i++)
            ids [i] = sweep_command_session (command, i);
        job_t *job = (job_t *) sweep_job_user (sweep_command_job (command));
        reaper_command (self, sweep_command_router (command), sweep_command_id (command), false,
                   job->reason, job->deadline_ms, ids, count);
        ep_log_debug ("CloseSessions %s: %zu sessions to router %s", sweep_command_id (command), count,
                      sweep_command_router (command));
        if (sweep_command_attempt (command) > 1)
            ep_log_debug ("resending %zu closes to router %s (attempt %u)", count,
                          sweep_command_router (command), sweep_command_attempt (command));
    }
    free (ids);
}

//  Leftovers of jobs past their deadline are forced. Returns how many.
size_t
reaper_force (reaper_t *self, int64_t now)
{
    size_t forced = 0;
    sweep_item_t *item;
    while (forced < self->config.mark_batch && !self->failed
       &&  (item = sweep_next_forced (self->sweep, now))) {
        //  The deadline people see is on the wall clock, which may trail
        //  the monotonic one by a millisecond: never force before it.
        job_t *job = (job_t *) sweep_job_user (sweep_item_job (item));
        if (reaper_wall (self, now) < job->deadline_ms)
            break;
        reaper_finish (self, (session_t *) sweep_item_owner (item), R_FORCED, "reaped", now);
        forced++;
    }
    return forced;
}

static int
s_kind_of (Ep__EntityType type)
{
    for (int kind = 0; kind < G_KINDS; kind++)
        if (reaper_entity_types [kind] == type)
            return kind;
    return -1;
}

void
reaper_model_event (reaper_t *self, const ep_model_event_t *event, int64_t now)
{
    int kind = s_kind_of (event->type);
    if (kind < 0 || !event->id)
        return;
    if (kind == G_ROUTER)
        zhashx_delete (self->unseen, event->id);     //  the view knows it now, either way
    if (event->kind == EP__MODEL_OP__KIND__DELETED) {
        if (zhashx_size (self->tombstones [kind]) >= TOMBSTONES_MAX)
            zhashx_purge (self->tombstones [kind]);
        zhashx_update (self->tombstones [kind], event->id, (void *) 1);
        if (kind == G_ROUTER)
            reaper_router_forget (self, event->id);
        reaper_job_start (self, kind, event->id, reaper_deleted_reasons [kind], event->revision, now);
    }
    else {
        zhashx_delete (self->tombstones [kind], event->id);
        char *key = s_want_key (kind, event->id);
        zhashx_delete (self->wanted, key);          //  back before its cleanup could start
        zstr_free (&key);
    }
}

void
reaper_model_ready (reaper_t *self, ep_model_view_t *view, int64_t now)
{
    self->view = view;
    for (int kind = 0; kind < G_KINDS; kind++) {
        zlistx_t *missing = zlistx_new ();
        zlistx_set_destructor (missing, (czmq_destructor *) zstr_free);
        group_t *group = (group_t *) zhashx_first (self->groups [kind]);
        for (; group; group = (group_t *) zhashx_next (self->groups [kind]))
            if (!ep_model_view_get (view, reaper_entity_types [kind], group->id))
                zlistx_add_end (missing, strdup (group->id));
        for (char *id = (char *) zlistx_first (missing); id; id = (char *) zlistx_next (missing)) {
            ep_log_info ("%s %s is not in the model (deleted while the reaper was away?)",
                         reaper_group_types [kind], id);
            reaper_job_start (self, kind, id, reaper_deleted_reasons [kind], ep_model_view_revision (view), now);
        }
        zlistx_destroy (&missing);
    }
}

void
reaper_adopted_routers (reaper_t *self, int64_t now)
{
    if (!self->view)
        return;                 //  reaper_model_ready looks at every group
    group_t *group = (group_t *) zhashx_first (self->groups [G_ROUTER]);
    for (; group; group = (group_t *) zhashx_next (self->groups [G_ROUTER]))
        if (!ep_model_view_get (self->view, EP__ENTITY_TYPE__ENTITY_ROUTER, group->id))
            reaper_unseen_add (self, group->id, now);
}

void
reaper_unseen_add (reaper_t *self, const char *router, int64_t at)
{
    if (zhashx_lookup (self->unseen, router))
        return;
    int64_t *check = (int64_t *) zmalloc (sizeof (int64_t));
    *check = at;
    zhashx_insert (self->unseen, router, check);
}

//  Routers sessions were opened for while our view did not hold them. A
//  watchdog relays only for routers its own view holds, and its presence
//  reports that view's revision; once ours has reached the highest such
//  revision and still lacks the router, the model deleted it: its sessions
//  are cleaned up as for a deletion (not after the offline grace).
void
reaper_unseen (reaper_t *self, int64_t now)
{
    if (!self->view)
        return;
    uint64_t revision = ep_model_view_revision (self->view);
    zlistx_t *deleted = zlistx_new ();
    zlistx_set_destructor (deleted, (czmq_destructor *) zstr_free);
    int64_t *check = (int64_t *) zhashx_first (self->unseen);
    for (; check; check = (int64_t *) zhashx_next (self->unseen)) {
        if (now < *check)
            continue;
        const char *router = (const char *) zhashx_cursor (self->unseen);
        if (ep_model_view_get (self->view, EP__ENTITY_TYPE__ENTITY_ROUTER, router)
        ||  (self->presence_revision > 0 && revision >= self->presence_revision))
            zlistx_add_end (deleted, strdup (router));
        else
            *check = now + UNSEEN_RECHECK_MS;
    }
    for (char *id = (char *) zlistx_first (deleted); id; id = (char *) zlistx_next (deleted)) {
        zhashx_delete (self->unseen, id);
        if (ep_model_view_get (self->view, EP__ENTITY_TYPE__ENTITY_ROUTER, id))
            continue;
        ep_log_info ("router %s is not in the model at revision %llu (deleted): its sessions are cleaned up",
                     id, (unsigned long long) revision);
        reaper_job_start (self, G_ROUTER, id, reaper_deleted_reasons [G_ROUTER], revision, now);
    }
    zlistx_destroy (&deleted);
}
