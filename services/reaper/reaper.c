/*  reaper.c: sessions in memory, their transitions on disk, cleanup jobs.

    A session that is not closed is one session_t: a hash entry by id, a
    link in the list of its router, of its identity and of its service (so
    a deletion finds its sessions without a scan), a liveness entry while
    it is ACTIVE and not in a cleanup, and a sweep item while a cleanup job
    holds it. Closing a session writes its row and frees all of that.

    Transitions and who makes them:
        open (router)                    -> ACTIVE              session.created
        close (router)                   ACTIVE|TERMINATING -> CLOSED  session.closed client-closed
        unheard T1 (liveness)            ACTIVE: probe via the router
        unheard T2 after a probe         ACTIVE -> CLOSED       session.reaped expired
        job takes it (deletion, offline) ACTIVE (pending) -> TERMINATING (batched)
                                                                session.terminating <reason>
        router acks the CloseSessions    TERMINATING -> CLOSED  session.closed <reason>
        job deadline                     -> CLOSED              session.reaped forced
*/
#include "reaper.h"
#include "ep_log.h"
#include "fleet.h"
#include "liveness.h"
#include "sessiondb.h"
#include "sweep.h"
#include <jansson.h>
#include <stdarg.h>

#define PAGE_DEFAULT        100         //  sessions per list page by default
#define PAGE_MAX            1000        //  and at most
#define LIVENESS_BATCH      10000       //  liveness verdicts per tick at most
#define PRUNE_EVERY_MS      60000       //  retention pruning period
#define PRUNE_BATCH         10000       //  rows deleted per pruning transaction
#define TOMBSTONES_MAX      100000      //  deleted ids remembered, at most
#define UNSEEN_RECHECK_MS   2000        //  how often a router absent from the view is looked at again
#define JOBS_REPORTED       10          //  cleanup: newest jobs per target
#define EVENTS_MAX          1000000     //  events waiting for the bus, at most

//  The things a session belongs to.
enum { G_ROUTER = 0, G_IDENTITY, G_SERVICE, G_KINDS };
static const char *s_group_types [] = { "router", "identity", "service" };
static const char *s_deleted_reasons [] = { "router-deleted", "identity-deleted", "service-deleted" };
static const Ep__EntityType s_entity_types [] = {
    EP__ENTITY_TYPE__ENTITY_ROUTER, EP__ENTITY_TYPE__ENTITY_IDENTITY, EP__ENTITY_TYPE__ENTITY_SERVICE
};

//  Every close reason; a job counts its closed sessions by these.
static const char *s_reasons [] = {
    "router-deleted", "identity-deleted", "service-deleted", "router-offline",
    "expired", "forced", "client-closed"
};
#define REASONS             EP_COUNT (s_reasons)
#define R_OFFLINE           "router-offline"
#define R_EXPIRED           "expired"
#define R_FORCED            "forced"
#define R_CLIENT            "client-closed"
#define R_LONG_LIVED        "long-lived"
#define PROBE_PREFIX        "probe-"

typedef struct _group_t group_t;
typedef struct _session_t session_t;

//  A router, identity or service that open sessions refer to.
struct _group_t {
    char *id;                   //  its id
    int kind;                   //  G_*
    size_t count;               //  sessions in the list
    session_t *head;            //  its sessions
    bool online;                //  routers: held by a watchdog (fleet)
    int64_t online_since;       //  routers: liveness counts from here
    int64_t offline_since;      //  routers: offline (known) since, -1 if online
};

//  A session that is not closed.
struct _session_t {
    liveness_entry_t live;      //  first: liveness hands entries back
    sweep_item_t *sweep;        //  while a cleanup job holds it
    group_t *groups [G_KINDS];  //  its router, identity, service
    session_t *next [G_KINDS];  //  in each group's list
    session_t *prev [G_KINDS];  //  in each group's list
    int64_t created_ms;         //  wall clock
    uint64_t bytes_rx;          //  cumulative, as last reported
    uint64_t bytes_tx;          //  cumulative, as last reported
    int32_t dirty;              //  slot in the dirty array, -1 when flushed
    uint32_t priority;          //  0 normal, higher cleaned up first
    uint8_t type;               //  Ep__SessionType
    uint8_t state;              //  Ep__SessionState on disk (ACTIVE or TERMINATING)
    char id [];                 //  chosen by the router
};

//  A running cleanup job.
typedef struct {
    char id [33];               //  job id
    const char *reason;         //  the close reason of acked sessions (static)
    int kind;                   //  G_*: what its target is
    char target [65];           //  the target's id
    uint64_t revision;          //  the model revision that deleted it (0: offline)
    int64_t started_ms;         //  wall clock
    int64_t deadline_ms;        //  wall clock
    uint64_t scheduled;         //  sessions taken
    uint64_t closed [REASONS];  //  sessions closed so far, by reason
    sweep_job_t *sweep;         //  its part in the planner
} s_job_t;

//  An event waiting for the commit and the publisher.
typedef struct {
    const char *type;           //  created, terminating, closed, reaped, warning
    const char *reason;         //  static, or NULL
    int64_t age_ms;             //  how old the session was
    char *strings;              //  id \0 router \0 identity \0 service \0 (this allocation)
} s_event_t;

//  A command waiting for the commit and the publisher.
typedef struct {
    char topic [80];            //  cmd.<router>.
    char id [48];               //  command id
    char router [65];           //  its router
    const char *reason;         //  close: why (static)
    bool probe;                 //  probe, else close
    int64_t deadline_ms;        //  wall clock
    size_t count;               //  session ids
    char **ids;                 //  them (into this allocation)
} s_command_out_t;

struct _reaper_t {
    reaper_config_t config;     //  thresholds and batch sizes
    ep_store_t *store;          //  sessions.db (borrowed)
    sessiondb_t *db;            //  its tables
    liveness_t *liveness;       //  ACTIVE sessions not in cleanup
    fleet_t *fleet;             //  routers online
    sweep_t *sweep;             //  the cleanup planner
    zhashx_t *sessions;         //  id -> session_t (key: the session's id)
    zhashx_t *groups [G_KINDS]; //  id -> group_t
    zhashx_t *tombstones [G_KINDS];     //  ids the model deleted
    zhashx_t *unseen;           //  router id -> next check (int64 ms): sessions opened
                                //  for a router absent from our view of the model
    uint64_t presence_revision; //  highest model revision a watchdog's presence reported
    zhashx_t *jobs;             //  id -> s_job_t (running)
    zhashx_t *offline;          //  router id -> group_t: offline routers with sessions
    zhashx_t *probes;           //  router id -> zlistx of session ids evasive this tick
    session_t **dirty;          //  sessions with unflushed counters
    size_t dirty_size;          //  entries used (some NULL)
    size_t dirty_capacity;      //  entries allocated
    zlistx_t *events;           //  s_event_t, waiting to be published
    zlistx_t *commands;         //  s_command_out_t, waiting to be published
    uint64_t events_dropped;    //  events dropped because the bus never took them
    ep_model_view_t *view;      //  the model, once followed (borrowed)
    reaper_publish_fn *publish; //  where events go
    void *publish_arg;          //  for publish
    int64_t wall_offset;        //  wall = monotonic + offset
    int64_t known_at;           //  presence known from then on (INT64_MAX: bus not live yet)
    bool known;                 //  presence is known
    bool in_txn;                //  a transaction is open
    bool broken;                //  a write failed: exit
    int64_t next_flush;         //  counters flush due
    int64_t next_prune;         //  retention pruning due
    size_t active;              //  sessions ACTIVE (pending ones included)
    size_t terminating;         //  sessions TERMINATING
    int64_t closed;             //  CLOSED rows retained
    //  Metrics (NULL without a registry)
    ep_gauge_t *by_state;       //  edgeplane_sessions{state}
    ep_series_t *depth;         //  edgeplane_reaper_cleanup_queue_depth
    ep_series_t *running;       //  edgeplane_reaper_cleanup_jobs
    ep_series_t *online;        //  edgeplane_reaper_routers_online
    ep_counter_t *closed_total; //  edgeplane_reaper_closed_total{reason}
    ep_histogram_t *latency;    //  edgeplane_reaper_reap_latency_seconds{reason}
    ep_counter_t *commands_total;   //  edgeplane_reaper_commands_total{kind}
    ep_series_t *long_lived;    //  edgeplane_reaper_long_lived_total
};

//  ---------------------------------------------------------------------
//  Results

void
reaper_result_init (reaper_result_t *result, const char *request_id)
{
    memset (result, 0, sizeof *result);
    ep__session_reply__init (&result->reply);
    ep__status__init (&result->status);
    result->status.has_code = true;
    result->status.code = EP__STATUS__CODE__OK;
    result->reply.status = &result->status;
    result->reply.request_id = (char *) request_id;
    result->op = "unknown";
    result->owned = ep_owned_new ();
}

void
reaper_result_clear (reaper_result_t *result)
{
    ep_owned_destroy (&result->owned);
}

static void
s_fail (reaper_result_t *result, Ep__Status__Code code, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_fail (reaper_result_t *result, Ep__Status__Code code, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (result->message, sizeof result->message, format, args);
    va_end (args);
    result->status.code = code;
    result->status.message = result->message;
}

static void
s_free_session_msg (void *ptr)
{
    ep__session__free_unpacked ((Ep__Session *) ptr, NULL);
}

static char *
s_dup (const char *text)
{
    return text? strdup (text): NULL;
}

//  Appends a session (from a row) to the reply, allocated as protobuf-c's
//  unpacker would so free_unpacked releases it.
static void
s_reply_row (reaper_result_t *result, const sessiondb_row_t *row)
{
    Ep__SessionReply *reply = &result->reply;
    Ep__Session *session = (Ep__Session *) malloc (sizeof (Ep__Session));
    ep__session__init (session);
    session->id = s_dup (row->id);
    session->router_id = s_dup (row->router_id);
    session->identity_id = s_dup (row->identity_id);
    session->service_id = s_dup (row->service_id);
    session->has_type = session->has_state = true;
    session->type = (Ep__SessionType) row->type;
    session->state = (Ep__SessionState) row->state;
    session->has_created_at_ms = session->has_last_seen_ms = true;
    session->created_at_ms = row->created_ms;
    session->last_seen_ms = row->last_seen_ms;
    session->has_bytes_rx = session->has_bytes_tx = session->has_priority = true;
    session->bytes_rx = row->bytes_rx;
    session->bytes_tx = row->bytes_tx;
    session->priority = row->priority;
    session->close_reason = s_dup (row->close_reason);
    if (row->state == EP__SESSION_STATE__CLOSED) {
        session->has_closed_at_ms = true;
        session->closed_at_ms = row->closed_ms;
    }
    session->job_id = s_dup (row->job_id);
    reply->sessions = (Ep__Session **) realloc (reply->sessions,
                                                (reply->n_sessions + 1) * sizeof (Ep__Session *));
    if (reply->n_sessions == 0)
        ep_owned_add (result->owned, &reply->sessions, (void (*) (void *)) zstr_free);
    reply->sessions [reply->n_sessions++] = (Ep__Session *) ep_owned_add (result->owned, session, s_free_session_msg);
}

//  ---------------------------------------------------------------------
//  Small helpers

static int64_t
s_wall (reaper_t *self, int64_t now)
{
    return now + self->wall_offset;
}

static const char *
s_reason (const char *text)
{
    for (size_t i = 0; i < REASONS; i++)
        if (text && streq (text, s_reasons [i]))
            return s_reasons [i];
    return R_FORCED;
}

static size_t
s_reason_index (const char *reason)
{
    for (size_t i = 0; i < REASONS; i++)
        if (streq (reason, s_reasons [i]))
            return i;
    return 0;
}

static bool
s_is_watchdog (const ep_caller_t *caller)
{
    return caller && streq (caller->role, "service") && streq (caller->name, "watchdog");
}

static bool
s_is_reader (const ep_caller_t *caller)
{
    return caller && (streq (caller->role, "operator") || streq (caller->role, "service"));
}

//  Opens the transaction on the first write of a batch; false if broken.
static bool
s_begin (reaper_t *self)
{
    if (self->broken)
        return false;
    if (!self->in_txn) {
        if (ep_store_begin (self->store) != 0) {
            ep_log_error ("cannot start a transaction on sessions.db: %s", ep_store_last_error ());
            self->broken = true;
            return false;
        }
        self->in_txn = true;
    }
    return true;
}

//  Records a write's outcome; a failure breaks the reaper (crash-only).
static void
s_wrote (reaper_t *self, int rc)
{
    if (rc != 0 && !self->broken) {
        ep_log_error ("write to sessions.db failed: %s", ep_store_last_error ());
        self->broken = true;
    }
}

//  ---------------------------------------------------------------------
//  Outbox

static void
s_event (reaper_t *self, session_t *session, const char *type, const char *reason, int64_t now)
{
    const char *strings [] = {
        session->id, session->groups [G_ROUTER]->id, session->groups [G_IDENTITY]->id,
        session->groups [G_SERVICE]->id
    };
    size_t size = 0;
    for (size_t i = 0; i < EP_COUNT (strings); i++)
        size += strlen (strings [i]) + 1;
    s_event_t *event = (s_event_t *) malloc (sizeof (s_event_t) + size);
    event->type = type;
    event->reason = reason;
    event->age_ms = s_wall (self, now) - session->created_ms;
    event->strings = (char *) (event + 1);
    char *at = event->strings;
    for (size_t i = 0; i < EP_COUNT (strings); i++) {
        size_t len = strlen (strings [i]) + 1;
        memcpy (at, strings [i], len);
        at += len;
    }
    zlistx_add_end (self->events, event);
    //  A bus that never comes up must not take all memory: the oldest go.
    if (zlistx_size (self->events) > EVENTS_MAX) {
        s_event_t *oldest = (s_event_t *) zlistx_detach (self->events, NULL);
        free (oldest);
        if (self->events_dropped++ % 100000 == 0)
            ep_log_warn ("%llu session events dropped: the bus has not taken them (is it up?)",
                         (unsigned long long) self->events_dropped);
    }
}

//  Queues a close or probe command for router with ids [0 .. count).
static void
s_command (reaper_t *self, const char *router, const char *command_id, bool probe,
           const char *reason, int64_t deadline_ms, const char *const *ids, size_t count)
{
    size_t size = count * sizeof (char *);
    for (size_t i = 0; i < count; i++)
        size += strlen (ids [i]) + 1;
    s_command_out_t *command = (s_command_out_t *) zmalloc (sizeof (s_command_out_t) + size);
    snprintf (command->topic, sizeof command->topic, "cmd.%s.", router);
    snprintf (command->id, sizeof command->id, "%s", command_id);
    snprintf (command->router, sizeof command->router, "%s", router);
    command->reason = reason;
    command->probe = probe;
    command->deadline_ms = deadline_ms;
    command->count = count;
    command->ids = (char **) (command + 1);
    char *at = (char *) (command->ids + count);
    for (size_t i = 0; i < count; i++) {
        size_t len = strlen (ids [i]) + 1;
        memcpy (at, ids [i], len);
        command->ids [i] = at;
        at += len;
    }
    zlistx_add_end (self->commands, command);
    if (self->commands_total) {
        const char *labels [] = { probe? "probe": "close" };
        ep_counter_inc (self->commands_total, labels, 1);
    }
}

size_t
reaper_publish (reaper_t *self, size_t max_events)
{
    s_command_out_t *command;
    while ((command = (s_command_out_t *) zlistx_detach (self->commands, NULL))) {
        Ep__CloseSessions close = EP__CLOSE_SESSIONS__INIT;
        Ep__ProbeSessions probe = EP__PROBE_SESSIONS__INIT;
        Ep__Command body = EP__COMMAND__INIT;
        body.command_id = command->id;
        body.router_id = command->router;
        body.reply_to = "reaper";
        body.has_deadline_ms = true;
        body.deadline_ms = command->deadline_ms;
        if (command->probe) {
            probe.n_session_ids = command->count;
            probe.session_ids = command->ids;
            body.kind_case = EP__COMMAND__KIND_PROBE_SESSIONS;
            body.probe_sessions = &probe;
        }
        else {
            close.n_session_ids = command->count;
            close.session_ids = command->ids;
            close.reason = (char *) command->reason;
            body.kind_case = EP__COMMAND__KIND_CLOSE_SESSIONS;
            body.close_sessions = &close;
        }
        Ep__Event event = EP__EVENT__INIT;
        event.body_case = EP__EVENT__BODY_COMMAND;
        event.command = &body;
        if (self->publish)
            self->publish (self->publish_arg, command->topic, &event);
        free (command);
    }
    s_event_t *item;
    size_t sent = 0;
    for (; sent < max_events && (item = (s_event_t *) zlistx_detach (self->events, NULL)); sent++) {
        Ep__SessionEvent body = EP__SESSION_EVENT__INIT;
        body.event_type = (char *) item->type;
        body.session_id = item->strings;
        body.router_id = body.session_id + strlen (body.session_id) + 1;
        body.identity_id = body.router_id + strlen (body.router_id) + 1;
        body.service_id = body.identity_id + strlen (body.identity_id) + 1;
        body.reason = (char *) item->reason;
        body.has_age_ms = true;
        body.age_ms = item->age_ms;
        Ep__Event event = EP__EVENT__INIT;
        event.body_case = EP__EVENT__BODY_SESSION;
        event.session = &body;
        char topic [32];
        snprintf (topic, sizeof topic, "session.%s", item->type);
        if (self->publish)
            self->publish (self->publish_arg, topic, &event);
        free (item);
    }
    return sent;
}

size_t
reaper_backlog (reaper_t *self)
{
    return zlistx_size (self->events);
}

bool
reaper_uncommitted (reaper_t *self)
{
    return self->in_txn;
}

//  ---------------------------------------------------------------------
//  Groups and sessions

static void
s_group_free (void **item)
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
        if (kind == G_ROUTER)
            zhashx_delete (self->offline, group->id);
        char *id = strdup (group->id);
        zhashx_delete (self->groups [kind], id);
        free (id);
    }
}

static void
s_dirty (reaper_t *self, session_t *session)
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
static session_t *
s_session_new (reaper_t *self, const sessiondb_row_t *row, int64_t now)
{
    size_t len = strlen (row->id);
    session_t *session = (session_t *) zmalloc (sizeof (session_t) + len + 1);
    memcpy (session->id, row->id, len + 1);
    session->created_ms = row->created_ms;
    session->bytes_rx = row->bytes_rx;
    session->bytes_tx = row->bytes_tx;
    session->priority = row->priority;
    session->type = (uint8_t) row->type;
    session->state = (uint8_t) row->state;
    session->dirty = -1;
    s_link (session, G_ROUTER, s_group (self, G_ROUTER, row->router_id, now));
    s_link (session, G_IDENTITY, s_group (self, G_IDENTITY, row->identity_id, now));
    s_link (session, G_SERVICE, s_group (self, G_SERVICE, row->service_id, now));
    zhashx_insert (self->sessions, session->id, session);
    session->live.seen = now;
    if (session->state == EP__SESSION_STATE__ACTIVE) {
        liveness_track (self->liveness, &session->live, now);
        self->active++;
    }
    else
        self->terminating++;
    return session;
}

static void
s_session_free (reaper_t *self, session_t *session)
{
    EP_ASSERT (!session->sweep);
    liveness_untrack (self->liveness, &session->live);
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

//  The row of an in-memory session, as a reply shows it.
static void
s_row_of (reaper_t *self, session_t *session, sessiondb_row_t *row, const char *job_id)
{
    memset (row, 0, sizeof *row);
    row->id = session->id;
    row->router_id = session->groups [G_ROUTER]->id;
    row->identity_id = session->groups [G_IDENTITY]->id;
    row->service_id = session->groups [G_SERVICE]->id;
    row->type = session->type;
    row->state = session->state;
    row->priority = session->priority;
    row->created_ms = session->created_ms;
    row->last_seen_ms = s_wall (self, session->live.seen);
    row->bytes_rx = session->bytes_rx;
    row->bytes_tx = session->bytes_tx;
    row->job_id = job_id;
}

//  ---------------------------------------------------------------------
//  Jobs

static s_job_t *
s_job_of (session_t *session)
{
    return session->sweep? (s_job_t *) sweep_job_user (sweep_item_job (session->sweep)): NULL;
}

static void
s_job_finish (reaper_t *self, s_job_t *job, int64_t now)
{
    json_t *closed = json_object ();
    uint64_t total = 0;
    for (size_t i = 0; i < REASONS; i++)
        if (job->closed [i]) {
            json_object_set_new (closed, s_reasons [i], json_integer ((json_int_t) job->closed [i]));
            total += job->closed [i];
        }
    char *text = json_dumps (closed, JSON_COMPACT | JSON_SORT_KEYS);
    s_wrote (self, sessiondb_job_finish (self->db, job->id, s_wall (self, now), text));
    ep_log_info ("cleanup %s (%s %s) done: %llu sessions closed %s", job->id, s_group_types [job->kind],
                 job->target, (unsigned long long) total, text);
    free (text);
    json_decref (closed);
    sweep_job_end (self->sweep, &job->sweep);
    zhashx_delete (self->jobs, job->id);
}

//  Closes a session: its row, its event, its job's count; frees it.
static void
s_finish (reaper_t *self, session_t *session, const char *reason, const char *event_type, int64_t now)
{
    if (!s_begin (self))
        return;
    s_job_t *job = s_job_of (session);
    s_wrote (self, sessiondb_close (self->db, session->id, reason, s_wall (self, now),
                                    s_wall (self, session->live.seen), session->bytes_rx,
                                    session->bytes_tx, job? job->id: NULL));
    s_event (self, session, event_type, reason, now);
    if (self->closed_total) {
        const char *labels [] = { reason };
        ep_counter_inc (self->closed_total, labels, 1);
    }
    if (job) {
        if (self->latency) {
            const char *labels [] = { reason };
            ep_histogram_observe (self->latency, labels, (s_wall (self, now) - job->started_ms) / 1000.0);
        }
        job->closed [s_reason_index (reason)]++;
        sweep_done (self->sweep, &session->sweep);
        if (sweep_job_items (job->sweep) == 0)
            s_job_finish (self, job, now);
    }
    self->closed++;
    s_session_free (self, session);
}

//  Hands session to job (marked: TERMINATING on disk already).
static void
s_take (reaper_t *self, s_job_t *job, session_t *session, bool marked, int64_t now)
{
    liveness_untrack (self->liveness, &session->live);
    session->sweep = sweep_add (self->sweep, job->sweep, session, session->id,
                                session->groups [G_ROUTER]->id, session->priority,
                                session->bytes_rx + session->bytes_tx, session->created_ms, marked);
    if (!marked && s_wall (self, now) - session->created_ms >= self->config.long_lived_ms) {
        s_event (self, session, "warning", R_LONG_LIVED, now);
        if (self->long_lived)
            ep_series_add (self->long_lived, 1);
    }
}

static s_job_t *
s_job_alloc (reaper_t *self, const char *id, const char *reason, int kind, const char *target,
             uint64_t revision, int64_t started_ms, int64_t deadline_ms)
{
    s_job_t *job = (s_job_t *) zmalloc (sizeof (s_job_t));
    snprintf (job->id, sizeof job->id, "%s", id);
    job->reason = s_reason (reason);
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
static s_job_t *
s_job_start (reaper_t *self, int kind, const char *target, const char *reason, uint64_t revision,
             int64_t now)
{
    group_t *group = (group_t *) zhashx_lookup (self->groups [kind], target);
    uint64_t count = 0;
    for (session_t *session = group? group->head: NULL; session; session = session->next [kind])
        if (!session->sweep)
            count++;
    if (count == 0 || !s_begin (self))
        return NULL;
    char id [33];
    ep_random_hex (id, 16);
    int64_t started = s_wall (self, now);
    s_job_t *job = s_job_alloc (self, id, reason, kind, target, revision, started,
                                started + self->config.deadline_ms);
    job->scheduled = count;
    sessiondb_job_t row = {
        .id = job->id, .reason = job->reason, .target_type = s_group_types [kind],
        .target_id = target, .revision = revision, .started_ms = started,
        .deadline_ms = job->deadline_ms, .scheduled = count
    };
    s_wrote (self, sessiondb_job_insert (self->db, &row));
    for (session_t *session = group->head; session; session = session->next [kind])
        if (!session->sweep)
            s_take (self, job, session, false, now);
    ep_log_info ("cleanup %s: %llu sessions of %s %s (%s), deadline in %lld ms", job->id,
                 (unsigned long long) count, s_group_types [kind], target, job->reason,
                 (long long) self->config.deadline_ms);
    return job;
}

//  ---------------------------------------------------------------------
//  Presence

static void
s_fleet_change (void *arg, const char *router, bool online, int64_t now)
{
    reaper_t *self = (reaper_t *) arg;
    group_t *group = (group_t *) zhashx_lookup (self->groups [G_ROUTER], router);
    if (online)
        sweep_router_back (self->sweep, router, now);
    if (!group)
        return;
    group->online = online;
    if (online) {
        group->online_since = now;
        group->offline_since = -1;
        zhashx_delete (self->offline, router);
    }
    else
    if (self->known) {
        group->offline_since = now;
        zhashx_update (self->offline, router, group);
    }
}

static bool
s_reachable (void *arg, const char *router)
{
    reaper_t *self = (reaper_t *) arg;
    //  Until presence is known a command may as well go: it is dropped if
    //  nobody holds the router.
    return !self->known || fleet_online (self->fleet, router);
}

static int64_t
s_floor (void *arg, liveness_entry_t *entry)
{
    reaper_t *self = (reaper_t *) arg;
    group_t *router = ((session_t *) entry)->groups [G_ROUTER];
    if (!self->known || !router->online)
        return LIVENESS_PAUSED;
    return router->online_since;
}

//  Presence is known from now on: routers not held are offline as of now.
static void
s_presence_known (reaper_t *self, int64_t now)
{
    self->known = true;
    ep_log_info ("presence known: %zu routers online, %zu instances", fleet_routers (self->fleet),
                 fleet_instances (self->fleet));
    group_t *group = (group_t *) zhashx_first (self->groups [G_ROUTER]);
    for (; group; group = (group_t *) zhashx_next (self->groups [G_ROUTER])) {
        group->online = fleet_online (self->fleet, group->id);
        if (group->online) {
            group->online_since = fleet_online_since (self->fleet, group->id);
            group->offline_since = -1;
        }
        else {
            group->offline_since = now;
            zhashx_update (self->offline, group->id, group);
        }
    }
}

void
reaper_presence (reaper_t *self, const char *type, const Ep__PresenceEvent *presence, int64_t now)
{
    if (!presence->instance_id || !*presence->instance_id)
        return;
    uint64_t epoch = presence->has_instance_epoch? presence->instance_epoch: 0;
    if (presence->has_model_revision && presence->model_revision > self->presence_revision)
        self->presence_revision = presence->model_revision;
    if (streq (type, "beacon"))
        fleet_beacon (self->fleet, presence->instance_id, epoch, presence->routers,
                      presence->n_routers, now);
    else
    for (size_t i = 0; i < presence->n_routers; i++) {
        if (streq (type, "join"))
            fleet_join (self->fleet, presence->instance_id, epoch, presence->routers [i], now);
        else
        if (streq (type, "leave"))
            fleet_leave (self->fleet, presence->instance_id, epoch, presence->routers [i], now);
    }
}

void
reaper_bus_live (reaper_t *self, int64_t now)
{
    if (self->known_at == INT64_MAX)
        self->known_at = now + self->config.presence_timeout_ms;
}

bool
reaper_presence_known (reaper_t *self)
{
    return self->known;
}

//  ---------------------------------------------------------------------
//  Model

static int
s_kind_of (Ep__EntityType type)
{
    for (int kind = 0; kind < G_KINDS; kind++)
        if (s_entity_types [kind] == type)
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
        s_job_start (self, kind, event->id, s_deleted_reasons [kind], event->revision, now);
    }
    else
        zhashx_delete (self->tombstones [kind], event->id);
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
            if (!ep_model_view_get (view, s_entity_types [kind], group->id))
                zlistx_add_end (missing, strdup (group->id));
        for (char *id = (char *) zlistx_first (missing); id; id = (char *) zlistx_next (missing)) {
            ep_log_info ("%s %s is not in the model (deleted while the reaper was away?)",
                         s_group_types [kind], id);
            s_job_start (self, kind, id, s_deleted_reasons [kind], ep_model_view_revision (view), now);
        }
        zlistx_destroy (&missing);
    }
}

//  ---------------------------------------------------------------------
//  Requests from routers (through the watchdog)

static bool
s_valid_id (const char *id)
{
    return id && ep_id_valid (id);
}

//  What s_open needs to know of a row found on disk.
typedef struct {
    char router [65];           //  its router
    char reason [64];           //  its close reason
} s_found_t;

static void
s_found (void *arg, const sessiondb_row_t *row)
{
    s_found_t *found = (s_found_t *) arg;
    snprintf (found->router, sizeof found->router, "%s", row->router_id? row->router_id: "");
    snprintf (found->reason, sizeof found->reason, "%s", row->close_reason? row->close_reason: "closed");
}

static void
s_open (reaper_t *self, const Ep__SessionRequest *request, int64_t now, reaper_result_t *result)
{
    const Ep__Session *open = request->open;
    const char *router = request->router_id;
    if (!s_valid_id (open->id)) {
        s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                "open.id: use 1 to 64 of A-Z a-z 0-9 _ - (the router chooses it)");
        return;
    }
    if (open->router_id && *open->router_id && !streq (open->router_id, router)) {
        s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                "open.router_id \"%.64s\" is not the router this request comes from (%s)",
                open->router_id, router);
        return;
    }
    if (!s_valid_id (open->identity_id) || !s_valid_id (open->service_id)) {
        s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                "open: identity_id and service_id are required (1 to 64 of A-Z a-z 0-9 _ -)");
        return;
    }
    if (!open->has_type || (open->type != EP__SESSION_TYPE__DIAL && open->type != EP__SESSION_TYPE__BIND)) {
        s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, "open.type: use dial or bind");
        return;
    }
    session_t *session = (session_t *) zhashx_lookup (self->sessions, open->id);
    if (session) {
        if (streq (session->groups [G_ROUTER]->id, router)
        &&  streq (session->groups [G_IDENTITY]->id, open->identity_id)
        &&  streq (session->groups [G_SERVICE]->id, open->service_id)
        &&  session->type == open->type) {
            sessiondb_row_t row;
            s_job_t *job = s_job_of (session);
            s_row_of (self, session, &row, job? job->id: NULL);
            s_reply_row (result, &row);         //  opened already: the same answer
        }
        else
            s_fail (result, EP__STATUS__CODE__ALREADY_EXISTS,
                    "session %s exists with another router, identity, service or type: pick another id",
                    open->id);
        return;
    }
    //  Not in memory: it never existed, or it is closed (ids are not reused).
    s_found_t found = { "", "" };
    int exists = sessiondb_get (self->db, open->id, s_found, &found);
    if (exists < 0) {
        s_wrote (self, -1);
        return;
    }
    if (exists && !streq (found.router, router))
        s_fail (result, EP__STATUS__CODE__ALREADY_EXISTS,
                "session %s exists on another router: pick another id", open->id);
    else
    if (exists)
        s_fail (result, EP__STATUS__CODE__FAILED_PRECONDITION,
                "session %s is closed (%s); session ids are not reused: open a new one",
                open->id, found.reason);
    if (exists)
        return;
    for (int kind = 0; kind < G_KINDS; kind++) {
        const char *id = kind == G_ROUTER? router: kind == G_IDENTITY? open->identity_id: open->service_id;
        if (zhashx_lookup (self->tombstones [kind], id)) {
            s_fail (result, EP__STATUS__CODE__FAILED_PRECONDITION,
                    "%s %s was deleted from the model: no new sessions for it", s_group_types [kind], id);
            return;
        }
    }
    if (!s_begin (self))
        return;
    int64_t wall = s_wall (self, now);
    int64_t created = open->has_created_at_ms && open->created_at_ms > 0 && open->created_at_ms <= wall
                    ? open->created_at_ms: wall;
    sessiondb_row_t row = {
        .id = open->id, .router_id = router, .identity_id = open->identity_id,
        .service_id = open->service_id, .type = open->type, .state = EP__SESSION_STATE__ACTIVE,
        .priority = open->has_priority? open->priority: 0, .created_ms = created,
        .last_seen_ms = wall,
        .bytes_rx = open->has_bytes_rx? open->bytes_rx: 0,
        .bytes_tx = open->has_bytes_tx? open->bytes_tx: 0,
    };
    s_wrote (self, sessiondb_insert (self->db, &row));
    session = s_session_new (self, &row, now);
    s_event (self, session, "created", NULL, now);
    s_reply_row (result, &row);
    //  A router the view does not hold: created after our view's revision,
    //  or deleted while we were away (our tombstones do not survive a
    //  restart, and a draining router's late open can come after it).
    //  s_unseen decides once the view has caught up with the watchdogs.
    if (self->view && !ep_model_view_get (self->view, EP__ENTITY_TYPE__ENTITY_ROUTER, router)
    &&  !zhashx_lookup (self->unseen, router)) {
        int64_t *check = (int64_t *) zmalloc (sizeof (int64_t));
        *check = now + UNSEEN_RECHECK_MS;
        zhashx_insert (self->unseen, router, check);
    }
}

//  A row read from disk for a reply, if it is on the given router.
typedef struct {
    reaper_result_t *result;    //  the reply to add it to
    const char *router;         //  the router it must be on (NULL: any)
    bool found;                 //  it was, and was added
} s_lookup_t;

static void
s_lookup_row (void *arg, const sessiondb_row_t *row)
{
    s_lookup_t *lookup = (s_lookup_t *) arg;
    if (lookup->router && !streq (row->router_id, lookup->router))
        return;
    s_reply_row (lookup->result, row);
    lookup->found = true;
}

static void
s_close (reaper_t *self, const Ep__SessionRequest *request, int64_t now, reaper_result_t *result)
{
    const char *id = request->close_id;
    if (!s_valid_id (id)) {
        s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, "close_id: a session id is required");
        return;
    }
    session_t *session = (session_t *) zhashx_lookup (self->sessions, id);
    if (session && streq (session->groups [G_ROUTER]->id, request->router_id)) {
        sessiondb_row_t row;
        s_job_t *job = s_job_of (session);
        s_row_of (self, session, &row, job? job->id: NULL);
        row.state = EP__SESSION_STATE__CLOSED;
        row.close_reason = R_CLIENT;
        row.closed_ms = s_wall (self, now);
        s_reply_row (result, &row);         //  copied before s_finish frees the session
        s_finish (self, session, R_CLIENT, "closed", now);
            return;
    }
    //  Closed already (a late retry, say): the same outcome, from disk.
    s_lookup_t lookup = { result, request->router_id, false };
    if (!session && sessiondb_get (self->db, id, s_lookup_row, &lookup) < 0)
        s_wrote (self, -1);
    if (!lookup.found)
        s_fail (result, EP__STATUS__CODE__NOT_FOUND, "session %s is not on router %s",
                id, request->router_id);
}

static void
s_heartbeat (reaper_t *self, const Ep__SessionRequest *request, int64_t now, reaper_result_t *result)
{
    const Ep__SessionHeartbeat *heartbeat = request->heartbeat;
    Ep__SessionReply *reply = &result->reply;
    for (size_t i = 0; i < heartbeat->n_entries; i++) {
        const Ep__SessionHeartbeat__Entry *entry = heartbeat->entries [i];
        session_t *session = entry->id && *entry->id
                           ? (session_t *) zhashx_lookup (self->sessions, entry->id): NULL;
        if (!session || !streq (session->groups [G_ROUTER]->id, request->router_id)) {
            //  Unknown or closed here: the router should close it.
            if (!reply->unknown_ids) {
                reply->unknown_ids = (char **) calloc (heartbeat->n_entries, sizeof (char *));
                ep_owned_add (result->owned, reply->unknown_ids, free);
            }
            if (entry->id)
                reply->unknown_ids [reply->n_unknown_ids++] = entry->id;
            continue;
        }
        if (entry->has_bytes_rx && entry->bytes_rx > session->bytes_rx)
            session->bytes_rx = entry->bytes_rx;
        if (entry->has_bytes_tx && entry->bytes_tx > session->bytes_tx)
            session->bytes_tx = entry->bytes_tx;
        liveness_heard (self->liveness, &session->live, now);
        s_dirty (self, session);
    }
}

static void
s_ack (reaper_t *self, const Ep__SessionRequest *request, int64_t now)
{
    const Ep__CommandAck *ack = request->ack;
    const char *command_id = ack->command_id? ack->command_id: "";
    //  A probe's ack lists the sessions the router still holds; any other
    //  ack (a CloseSessions', or one from before a restart) those it closed.
    bool probe = strncmp (command_id, PROBE_PREFIX, strlen (PROBE_PREFIX)) == 0;
    bool known = !probe && sweep_answered (self->sweep, command_id);
    ep_log_debug ("router %s acked %s%s with %zu sessions (%zu in cleanup)", request->router_id, command_id,
                  probe || known? "": " (not outstanding)", ack->n_session_ids, sweep_size (self->sweep));
    for (size_t i = 0; i < ack->n_session_ids; i++) {
        const char *id = ack->session_ids [i];
        session_t *session = id? (session_t *) zhashx_lookup (self->sessions, id): NULL;
        if (!session || !streq (session->groups [G_ROUTER]->id, request->router_id))
            continue;
        if (session->sweep && !probe)
            s_finish (self, session, s_job_of (session)->reason, "closed", now);
        else
        if (!session->sweep)
            liveness_heard (self->liveness, &session->live, now);
    }
}

bool
reaper_is_read (const Ep__SessionRequest *request)
{
    return request->op_case == EP__SESSION_REQUEST__OP_GET_ID
        || request->op_case == EP__SESSION_REQUEST__OP_LIST
        || request->op_case == EP__SESSION_REQUEST__OP_CLEANUP;
}

void
reaper_handle (reaper_t *self, const Ep__SessionRequest *request, const ep_caller_t *caller,
               int64_t now, reaper_result_t *result)
{
    switch (request->op_case) {
        case EP__SESSION_REQUEST__OP_OPEN:      result->op = "open"; break;
        case EP__SESSION_REQUEST__OP_CLOSE_ID:  result->op = "close"; break;
        case EP__SESSION_REQUEST__OP_HEARTBEAT: result->op = "heartbeat"; break;
        case EP__SESSION_REQUEST__OP_ACK:       result->op = "ack"; break;
        default:
            if (reaper_is_read (request))
                reaper_read (self, request, caller, now, result);
            else
                s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                        "request has no operation: set one of open, close_id, heartbeat, ack, get_id, list, cleanup");
            return;
    }
    //  Only the watchdog speaks for routers; it names the router.
    if (!s_is_watchdog (caller)) {
        s_fail (result, EP__STATUS__CODE__PERMISSION_DENIED,
                "%s: only the watchdog (role service, name watchdog) speaks for routers", result->op);
        return;
    }
    if (!s_valid_id (request->router_id)) {
        s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                "router_id: the router this request speaks for is required");
        return;
    }
    if ((request->op_case == EP__SESSION_REQUEST__OP_OPEN && !request->open)
    ||  (request->op_case == EP__SESSION_REQUEST__OP_HEARTBEAT && !request->heartbeat)
    ||  (request->op_case == EP__SESSION_REQUEST__OP_ACK && !request->ack)) {
        s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, "%s: the operation is empty", result->op);
        return;
    }
    switch (request->op_case) {
        case EP__SESSION_REQUEST__OP_OPEN:      s_open (self, request, now, result); break;
        case EP__SESSION_REQUEST__OP_CLOSE_ID:  s_close (self, request, now, result); break;
        case EP__SESSION_REQUEST__OP_HEARTBEAT: s_heartbeat (self, request, now, result); break;
        default:                                s_ack (self, request, now); break;
    }
}

//  ---------------------------------------------------------------------
//  Reads

//  Rows of a listing, overlaid with what memory knows better (counters and
//  last-seen are flushed only periodically).
typedef struct {
    reaper_t *self;             //  the reaper
    reaper_result_t *result;    //  the reply
    size_t limit;               //  rows wanted in the reply
    size_t rows;                //  rows seen (one more than limit: more pages)
    char last [65];             //  the last id put in the reply
} s_listing_t;

static void
s_list_row (void *arg, const sessiondb_row_t *row)
{
    s_listing_t *listing = (s_listing_t *) arg;
    if (listing->rows++ >= listing->limit)
        return;
    sessiondb_row_t copy = *row;
    session_t *session = row->state != EP__SESSION_STATE__CLOSED
                       ? (session_t *) zhashx_lookup (listing->self->sessions, row->id): NULL;
    if (session) {
        copy.bytes_rx = session->bytes_rx;
        copy.bytes_tx = session->bytes_tx;
        copy.last_seen_ms = s_wall (listing->self, session->live.seen);
    }
    s_reply_row (listing->result, &copy);
    snprintf (listing->last, sizeof listing->last, "%s", row->id);
}

//  A job as the cleanup reply shows it.
typedef struct {
    reaper_t *self;             //  the reaper
    reaper_result_t *result;    //  the reply
} s_jobs_t;

static void
s_free_job_msg (void *ptr)
{
    ep__cleanup_job__free_unpacked ((Ep__CleanupJob *) ptr, NULL);
}

static Ep__CleanupJob *
s_job_msg (reaper_result_t *result, const char *id, const char *reason, const char *target_type,
           const char *target_id, uint64_t revision, int64_t started, int64_t deadline)
{
    Ep__SessionReply *reply = &result->reply;
    Ep__CleanupJob *job = (Ep__CleanupJob *) malloc (sizeof (Ep__CleanupJob));
    ep__cleanup_job__init (job);
    job->id = s_dup (id);
    job->reason = s_dup (reason);
    job->target_type = s_dup (target_type);
    job->target_id = s_dup (target_id);
    job->has_revision = job->has_started_at_ms = job->has_deadline_ms = job->has_done = true;
    job->revision = revision;
    job->started_at_ms = started;
    job->deadline_ms = deadline;
    job->has_scheduled = job->has_remaining = true;
    reply->jobs = (Ep__CleanupJob **) realloc (reply->jobs, (reply->n_jobs + 1) * sizeof (Ep__CleanupJob *));
    if (reply->n_jobs == 0)
        ep_owned_add (result->owned, &reply->jobs, (void (*) (void *)) zstr_free);
    reply->jobs [reply->n_jobs++] = job;
    ep_owned_add (result->owned, job, s_free_job_msg);
    return job;
}

static void
s_job_count (Ep__CleanupJob *job, const char *reason, uint64_t count)
{
    Ep__ReasonCount *item = (Ep__ReasonCount *) malloc (sizeof (Ep__ReasonCount));
    ep__reason_count__init (item);
    item->reason = strdup (reason);
    item->has_count = true;
    item->count = count;
    job->closed = (Ep__ReasonCount **) realloc (job->closed, (job->n_closed + 1) * sizeof (Ep__ReasonCount *));
    job->closed [job->n_closed++] = item;
}

//  A job (running, or finished and read from disk) for the reply.
static void
s_job_row (void *arg, const sessiondb_job_t *row)
{
    s_jobs_t *jobs = (s_jobs_t *) arg;
    s_job_t *running = (s_job_t *) zhashx_lookup (jobs->self->jobs, row->id);
    Ep__CleanupJob *job = s_job_msg (jobs->result, row->id, row->reason, row->target_type,
                                     row->target_id, row->revision, row->started_ms, row->deadline_ms);
    job->scheduled = row->scheduled;
    if (running) {
        job->remaining = sweep_job_items (running->sweep);
        for (size_t i = 0; i < REASONS; i++)
            if (running->closed [i])
                s_job_count (job, s_reasons [i], running->closed [i]);
        return;
    }
    job->done = row->done;
    if (row->done) {
        job->has_finished_at_ms = true;
        job->finished_at_ms = row->finished_ms;
    }
    json_t *closed = row->closed? json_loads (row->closed, 0, NULL): NULL;
    const char *reason;
    json_t *count;
    json_object_foreach (closed, reason, count)
        s_job_count (job, reason, (uint64_t) json_integer_value (count));
    json_decref (closed);
}

static void
s_read_cleanup (reaper_t *self, const Ep__CleanupQuery *query, reaper_result_t *result)
{
    uint64_t revision = self->view? ep_model_view_revision (self->view): 0;
    result->reply.has_model_revision = true;
    result->reply.model_revision = revision;
    if (query->has_min_revision && query->min_revision > revision) {
        s_fail (result, EP__STATUS__CODE__UNAVAILABLE,
                "the reaper has applied model revision %llu, not yet %llu: retry shortly",
                (unsigned long long) revision, (unsigned long long) query->min_revision);
        return;
    }
    const char *type = query->router_id? "router": query->identity_id? "identity"
                     : query->service_id? "service": NULL;
    const char *target = query->router_id? query->router_id: query->identity_id? query->identity_id
                       : query->service_id;
    if ((type && !s_valid_id (target)) || (!type && !s_valid_id (query->job_id))) {
        s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                "cleanup: give one of router_id, identity_id, service_id or job_id");
        return;
    }
    s_jobs_t jobs = { self, result };
    if (sessiondb_jobs_find (self->db, type, target, query->job_id, JOBS_REPORTED, s_job_row, &jobs) < 0)
        s_fail (result, EP__STATUS__CODE__UNAVAILABLE, "cannot read sessions.db now; retry");
}

void
reaper_read (reaper_t *self, const Ep__SessionRequest *request, const ep_caller_t *caller,
             int64_t now, reaper_result_t *result)
{
    (void) now;
    EP_ASSERT (!self->in_txn);
    result->op = request->op_case == EP__SESSION_REQUEST__OP_GET_ID? "get"
               : request->op_case == EP__SESSION_REQUEST__OP_LIST? "list": "cleanup";
    if (!s_is_reader (caller)) {
        s_fail (result, EP__STATUS__CODE__PERMISSION_DENIED,
                "%s: sessions are readable by operators and services only", result->op);
        return;
    }
    if (request->op_case == EP__SESSION_REQUEST__OP_GET_ID) {
        if (!s_valid_id (request->get_id)) {
            s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, "get_id: a session id is required");
            return;
        }
        s_listing_t listing = { self, result, 1, 0, "" };
        int found = sessiondb_get (self->db, request->get_id, s_list_row, &listing);
        if (found < 0)
            s_fail (result, EP__STATUS__CODE__UNAVAILABLE, "cannot read sessions.db now; retry");
        else
        if (found == 0)
            s_fail (result, EP__STATUS__CODE__NOT_FOUND,
                    "session %s does not exist (or closed longer ago than the retention)", request->get_id);
        return;
    }
    if (request->op_case == EP__SESSION_REQUEST__OP_CLEANUP) {
        if (!request->cleanup)
            s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, "cleanup: the query is empty");
        else
            s_read_cleanup (self, request->cleanup, result);
        return;
    }
    Ep__SessionFilter empty = EP__SESSION_FILTER__INIT;
    const Ep__SessionFilter *filter = request->list? request->list: &empty;
    const char *ids [] = { filter->router_id, filter->identity_id, filter->service_id };
    const char *names [] = { "router_id", "identity_id", "service_id" };
    for (size_t i = 0; i < EP_COUNT (ids); i++)
        if (ids [i] && !ep_id_valid (ids [i])) {
            s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                    "list.%s \"%.64s\": use 1 to 64 of A-Z a-z 0-9 _ -", names [i], ids [i]);
            return;
        }
    if (filter->has_state && filter->state > EP__SESSION_STATE__CLOSED) {
        s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, "list.state: use active, terminating or closed");
        return;
    }
    if (filter->page_token && *filter->page_token && !ep_id_valid (filter->page_token)) {
        s_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                "list.page_token: pass the next_page_token of the previous page");
        return;
    }
    size_t page = filter->has_page_size && filter->page_size? filter->page_size: PAGE_DEFAULT;
    if (page > PAGE_MAX)
        page = PAGE_MAX;
    s_listing_t listing = { self, result, page, 0, "" };
    if (sessiondb_list (self->db, filter, filter->page_token, page + 1, s_list_row, &listing) < 0) {
        s_fail (result, EP__STATUS__CODE__UNAVAILABLE, "cannot read sessions.db now; retry");
        return;
    }
    if (listing.rows > page)
        result->reply.next_page_token = (char *) ep_owned_add (result->owned, strdup (listing.last), free);
}

//  ---------------------------------------------------------------------
//  Time

//  Phase 1: the most urgent pending sessions become TERMINATING.
static void
s_mark (reaper_t *self, int64_t now)
{
    if (sweep_pending (self->sweep) == 0 || !s_begin (self))
        return;
    sweep_item_t **items = (sweep_item_t **) malloc (self->config.mark_batch * sizeof (sweep_item_t *));
    size_t count = sweep_take_pending (self->sweep, items, self->config.mark_batch);
    for (size_t i = 0; i < count; i++) {
        session_t *session = (session_t *) sweep_item_owner (items [i]);
        s_job_t *job = s_job_of (session);
        s_wrote (self, sessiondb_mark (self->db, session->id, job->id));
        session->state = EP__SESSION_STATE__TERMINATING;
        self->active--;
        self->terminating++;
        sweep_marked (self->sweep, items [i]);
        s_event (self, session, "terminating", job->reason, now);
    }
    free (items);
    ep_log_debug ("marked %zu sessions TERMINATING, %zu to go", count, sweep_pending (self->sweep));
}

//  Phase 2: CloseSessions to the routers, new and resent.
static void
s_send (reaper_t *self, int64_t now)
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
        s_job_t *job = (s_job_t *) sweep_job_user (sweep_command_job (command));
        s_command (self, sweep_command_router (command), sweep_command_id (command), false,
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
static size_t
s_force (reaper_t *self, int64_t now)
{
    size_t forced = 0;
    sweep_item_t *item;
    while (forced < self->config.mark_batch && !self->broken
       &&  (item = sweep_next_forced (self->sweep, now))) {
        //  The deadline people see is on the wall clock, which may trail
        //  the monotonic one by a millisecond: never force before it.
        s_job_t *job = (s_job_t *) sweep_job_user (sweep_item_job (item));
        if (s_wall (self, now) < job->deadline_ms)
            break;
        s_finish (self, (session_t *) sweep_item_owner (item), R_FORCED, "reaped", now);
        forced++;
    }
    return forced;
}

static void
s_probe (reaper_t *self, session_t *session)
{
    const char *router = session->groups [G_ROUTER]->id;
    zlistx_t *ids = (zlistx_t *) zhashx_lookup (self->probes, router);
    if (!ids) {
        ids = zlistx_new ();
        zlistx_set_destructor (ids, (czmq_destructor *) zstr_free);
        zhashx_insert (self->probes, router, ids);
    }
    zlistx_add_end (ids, strdup (session->id));
}

static void
s_probe_command (reaper_t *self, const char *router, const char **ids, size_t count, int64_t deadline)
{
    char command_id [48];
    snprintf (command_id, sizeof command_id, "%s", PROBE_PREFIX);
    ep_random_hex (command_id + strlen (PROBE_PREFIX), 16);
    s_command (self, router, command_id, true, NULL, deadline, ids, count);
}

//  Evasive sessions are probed (commands of at most chunk ids), expired
//  ones reaped. Returns false if more verdicts are due now.
static bool
s_liveness (reaper_t *self, int64_t now)
{
    size_t verdicts = 0;
    liveness_verdict_t verdict;
    liveness_entry_t *entry;
    while (verdicts < LIVENESS_BATCH && !self->broken
       &&  (entry = liveness_next (self->liveness, now, s_floor, self, &verdict))) {
        session_t *session = (session_t *) entry;
        if (verdict == LIVENESS_EVASIVE)
            s_probe (self, session);
        else
            s_finish (self, session, R_EXPIRED, "reaped", now);
        verdicts++;
    }
    int64_t deadline = s_wall (self, now) + self->config.expire_ms - self->config.evasive_ms;
    const char **chunk = (const char **) malloc (self->config.chunk * sizeof (char *));
    zlistx_t *ids;
    for (ids = (zlistx_t *) zhashx_first (self->probes); ids; ids = (zlistx_t *) zhashx_next (self->probes)) {
        const char *router = (const char *) zhashx_cursor (self->probes);
        size_t count = 0;
        for (const char *id = (const char *) zlistx_first (ids); id; id = (const char *) zlistx_next (ids)) {
            chunk [count++] = id;
            if (count == self->config.chunk) {
                s_probe_command (self, router, chunk, count, deadline);
                count = 0;
            }
        }
        if (count)
            s_probe_command (self, router, chunk, count, deadline);
    }
    free (chunk);
    zhashx_purge (self->probes);
    return verdicts < LIVENESS_BATCH;
}

//  Routers offline longer than the grace get their sessions cleaned up.
static void
s_offline (reaper_t *self, int64_t now)
{
    zlistx_t *due = zlistx_new ();
    zlistx_set_destructor (due, (czmq_destructor *) zstr_free);
    group_t *group = (group_t *) zhashx_first (self->offline);
    for (; group; group = (group_t *) zhashx_next (self->offline))
        if (now - group->offline_since >= self->config.offline_grace_ms)
            zlistx_add_end (due, strdup (group->id));
    for (char *id = (char *) zlistx_first (due); id; id = (char *) zlistx_next (due)) {
        zhashx_delete (self->offline, id);
        ep_log_info ("router %s offline for over %lld ms", id, (long long) self->config.offline_grace_ms);
        s_job_start (self, G_ROUTER, id, R_OFFLINE, 0, now);
    }
    zlistx_destroy (&due);
}

static void
s_flush (reaper_t *self, int64_t now)
{
    if (self->dirty_size && s_begin (self))
        for (size_t i = 0; i < self->dirty_size; i++) {
            session_t *session = self->dirty [i];
            if (!session)
                continue;
            s_wrote (self, sessiondb_counters (self->db, session->id, s_wall (self, session->live.seen),
                                               session->bytes_rx, session->bytes_tx));
            session->dirty = -1;
        }
    self->dirty_size = 0;
    self->next_flush = now + self->config.flush_ms;
}

static void
s_gauges (reaper_t *self)
{
    if (!self->by_state)
        return;
    const char *active [] = { "active" }, *terminating [] = { "terminating" }, *closed [] = { "closed" };
    ep_gauge_set (self->by_state, active, (double) self->active);
    ep_gauge_set (self->by_state, terminating, (double) self->terminating);
    ep_gauge_set (self->by_state, closed, (double) self->closed);
    ep_series_set (self->depth, (double) sweep_size (self->sweep));
    ep_series_set (self->running, (double) zhashx_size (self->jobs));
    ep_series_set (self->online, (double) fleet_routers (self->fleet));
}

//  Routers sessions were opened for while our view did not hold them. A
//  watchdog relays only for routers its own view holds, and its presence
//  reports that view's revision; once ours has reached the highest such
//  revision and still lacks the router, the model deleted it: its sessions
//  are cleaned up as for a deletion (not after the offline grace).
static void
s_unseen (reaper_t *self, int64_t now)
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
        s_job_start (self, G_ROUTER, id, s_deleted_reasons [G_ROUTER], revision, now);
    }
    zlistx_destroy (&deleted);
}

int64_t
reaper_tick (reaper_t *self, int64_t now)
{
    if (self->broken)
        return now + 1000;
    int64_t due = fleet_tick (self->fleet, now);
    if (!self->known && now >= self->known_at)
        s_presence_known (self, now);
    bool more = false;
    if (self->known) {
        s_offline (self, now);
        more |= !s_liveness (self, now);
    }
    s_unseen (self, now);
    s_mark (self, now);
    s_send (self, now);
    more |= s_force (self, now) == self->config.mark_batch;
    if (now >= self->next_flush)
        s_flush (self, now);
    if (now >= self->next_prune && s_begin (self)) {
        int pruned = sessiondb_prune (self->db, s_wall (self, now) - self->config.retention_ms, PRUNE_BATCH);
        s_wrote (self, pruned < 0? -1: 0);
        if (pruned > 0)
            self->closed -= pruned;
        self->next_prune = pruned == PRUNE_BATCH? now: now + PRUNE_EVERY_MS;
    }
    s_gauges (self);
    if (more || sweep_pending (self->sweep))
        return now;
    int64_t candidates [] = {
        sweep_due (self->sweep, now), self->next_flush, self->next_prune,
        self->known? liveness_due (self->liveness): self->known_at
    };
    for (size_t i = 0; i < EP_COUNT (candidates); i++)
        if (candidates [i] < due)
            due = candidates [i];
    group_t *group = (group_t *) zhashx_first (self->offline);
    for (; group; group = (group_t *) zhashx_next (self->offline))
        if (group->offline_since + self->config.offline_grace_ms < due)
            due = group->offline_since + self->config.offline_grace_ms;
    int64_t *check = (int64_t *) zhashx_first (self->unseen);
    for (; check; check = (int64_t *) zhashx_next (self->unseen))
        if (*check < due)
            due = *check;
    return due;
}

int
reaper_commit (reaper_t *self)
{
    if (self->in_txn && !self->broken && ep_store_commit (self->store) != 0) {
        ep_log_error ("cannot commit to sessions.db: %s", ep_store_last_error ());
        self->broken = true;
    }
    self->in_txn = false;
    return self->broken? -1: 0;
}

bool
reaper_broken (reaper_t *self)
{
    return self->broken;
}

size_t
reaper_count (reaper_t *self, Ep__SessionState state)
{
    return state == EP__SESSION_STATE__ACTIVE? self->active
         : state == EP__SESSION_STATE__TERMINATING? self->terminating
         : state == EP__SESSION_STATE__CLOSED? (size_t) self->closed: 0;
}

size_t
reaper_queue_depth (reaper_t *self)
{
    return sweep_size (self->sweep);
}

size_t
reaper_jobs (reaper_t *self)
{
    return zhashx_size (self->jobs);
}

void
reaper_set_wall_offset (reaper_t *self, int64_t wall_offset)
{
    self->wall_offset = wall_offset;
}

void
reaper_set_publisher (reaper_t *self, reaper_publish_fn *publish, void *arg)
{
    self->publish = publish;
    self->publish_arg = arg;
}

//  ---------------------------------------------------------------------
//  Life cycle

void
reaper_config_defaults (reaper_config_t *config)
{
    *config = (reaper_config_t) {
        .evasive_ms = 60000, .expire_ms = 180000, .offline_grace_ms = 120000,
        .deadline_ms = 15000, .presence_timeout_ms = 3500, .flush_ms = 5000,
        .long_lived_ms = 24 * 3600 * 1000LL, .retention_ms = 24 * 3600 * 1000LL,
        .retry_ms = 1000, .retry_max_ms = 8000, .mark_batch = 5000, .chunk = 5000, .window = 4
    };
}

//  Loading: what the running jobs and open sessions on disk become.
typedef struct {
    reaper_t *self;             //  the reaper
    int64_t now;                //  the load time
    zlistx_t *orphans;          //  ids of TERMINATING sessions whose job row is gone
} s_load_t;

static void
s_load_count (void *arg, const char *reason, uint64_t count)
{
    s_job_t *job = (s_job_t *) arg;
    job->closed [s_reason_index (s_reason (reason))] += count;
}

static void
s_load_job (void *arg, const sessiondb_job_t *row)
{
    s_load_t *load = (s_load_t *) arg;
    int kind = G_ROUTER;
    for (int k = 0; k < G_KINDS; k++)
        if (streq (row->target_type, s_group_types [k]))
            kind = k;
    s_job_t *job = s_job_alloc (load->self, row->id, row->reason, kind, row->target_id,
                                row->revision, row->started_ms, row->deadline_ms);
    job->scheduled = row->scheduled;
}

static void
s_load_session (void *arg, const sessiondb_row_t *row)
{
    s_load_t *load = (s_load_t *) arg;
    reaper_t *self = load->self;
    session_t *session = s_session_new (self, row, load->now);
    if (session->state == EP__SESSION_STATE__TERMINATING) {
        s_job_t *job = row->job_id? (s_job_t *) zhashx_lookup (self->jobs, row->job_id): NULL;
        if (job)
            s_take (self, job, session, true, load->now);
        else
            zlistx_add_end (load->orphans, strdup (session->id));
    }
}

//  After loading: resumed jobs take again the sessions they had taken but
//  not marked (those of their target older than the job); orphans (their
//  job row is gone, which only a hand can do) are forced; empty jobs end.
static int
s_resume (reaper_t *self, s_load_t *load, int64_t now)
{
    s_job_t *job = (s_job_t *) zhashx_first (self->jobs);
    for (; job; job = (s_job_t *) zhashx_next (self->jobs)) {
        if (sessiondb_job_counts (self->db, job->id, s_load_count, job) != 0)
            return -1;
        group_t *group = (group_t *) zhashx_lookup (self->groups [job->kind], job->target);
        for (session_t *session = group? group->head: NULL; session; session = session->next [job->kind])
            if (!session->sweep && session->created_ms <= job->started_ms)
                s_take (self, job, session, false, now);
    }
    for (const char *id = (const char *) zlistx_first (load->orphans); id;
         id = (const char *) zlistx_next (load->orphans)) {
        session_t *session = (session_t *) zhashx_lookup (self->sessions, id);
        if (session)
            s_finish (self, session, R_FORCED, "reaped", now);
    }
    zlistx_t *empty = zlistx_new ();
    for (job = (s_job_t *) zhashx_first (self->jobs); job; job = (s_job_t *) zhashx_next (self->jobs))
        if (sweep_job_items (job->sweep) == 0)
            zlistx_add_end (empty, job);
    for (job = (s_job_t *) zlistx_first (empty); job; job = (s_job_t *) zlistx_next (empty))
        if (s_begin (self))
            s_job_finish (self, job, now);
    zlistx_destroy (&empty);
    return reaper_commit (self);
}

reaper_t *
reaper_new (ep_store_t *store, const reaper_config_t *config, ep_metrics_t *metrics,
            int64_t now, int64_t wall_offset)
{
    reaper_t *self = (reaper_t *) zmalloc (sizeof (reaper_t));
    self->config = *config;
    self->store = store;
    self->wall_offset = wall_offset;
    self->db = sessiondb_new (store);
    self->liveness = liveness_new (config->evasive_ms, config->expire_ms);
    self->fleet = fleet_new (config->presence_timeout_ms, s_fleet_change, self);
    sweep_config_t sweep = { config->window, config->chunk, config->retry_ms, config->retry_max_ms };
    self->sweep = sweep_new (&sweep, s_reachable, self);
    self->sessions = zhashx_new ();
    zhashx_set_key_duplicator (self->sessions, NULL);
    zhashx_set_key_destructor (self->sessions, NULL);
    for (int kind = 0; kind < G_KINDS; kind++) {
        self->groups [kind] = zhashx_new ();
        zhashx_set_destructor (self->groups [kind], s_group_free);
        self->tombstones [kind] = zhashx_new ();
    }
    self->jobs = zhashx_new ();
    zhashx_set_destructor (self->jobs, (czmq_destructor *) zstr_free);
    self->unseen = zhashx_new ();
    zhashx_set_destructor (self->unseen, (czmq_destructor *) zstr_free);
    self->offline = zhashx_new ();
    self->probes = zhashx_new ();
    zhashx_set_destructor (self->probes, (czmq_destructor *) zlistx_destroy);
    self->events = zlistx_new ();
    zlistx_set_destructor (self->events, (czmq_destructor *) zstr_free);
    self->commands = zlistx_new ();
    zlistx_set_destructor (self->commands, (czmq_destructor *) zstr_free);
    self->known_at = INT64_MAX;
    self->next_flush = now + config->flush_ms;
    self->next_prune = now;
    if (metrics) {
        const char *state [] = { "state" }, *reason [] = { "reason" }, *kind [] = { "kind" };
        self->by_state = ep_metrics_gauge (metrics, "edgeplane_sessions",
            "Sessions by state (closed: rows retained).", 1, state);
        self->depth = ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_reaper_cleanup_queue_depth",
            "Sessions taken by a cleanup job and not closed yet.", 0, NULL), NULL);
        self->running = ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_reaper_cleanup_jobs",
            "Cleanup jobs running.", 0, NULL), NULL);
        self->online = ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_reaper_routers_online",
            "Routers held by a watchdog, as presence says.", 0, NULL), NULL);
        self->closed_total = ep_metrics_counter (metrics, "edgeplane_reaper_closed_total",
            "Sessions closed, by reason.", 1, reason);
        static const double bounds [] = { 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300 };
        self->latency = ep_metrics_histogram (metrics, "edgeplane_reaper_reap_latency_seconds",
            "From a cleanup job's start to the close of each of its sessions, by close reason.",
            1, reason, EP_COUNT (bounds), bounds);
        self->commands_total = ep_metrics_counter (metrics, "edgeplane_reaper_commands_total",
            "Commands published to routers (resends included), by kind.", 1, kind);
        self->long_lived = ep_counter_series (ep_metrics_counter (metrics, "edgeplane_reaper_long_lived_total",
            "Long-lived sessions taken by a cleanup (session.warning).", 0, NULL), NULL);
    }
    s_load_t load = { self, now, zlistx_new () };
    zlistx_set_destructor (load.orphans, (czmq_destructor *) zstr_free);
    self->closed = sessiondb_count (self->db, EP__SESSION_STATE__CLOSED);
    int rc = self->closed < 0? -1: 0;
    if (rc == 0)
        rc = sessiondb_jobs_running (self->db, s_load_job, &load);
    if (rc == 0)
        rc = sessiondb_load_open (self->db, s_load_session, &load);
    if (rc == 0)
        rc = s_resume (self, &load, now);
    zlistx_destroy (&load.orphans);
    if (rc != 0) {
        ep_log_error ("cannot load sessions.db: %s", ep_store_last_error ());
        reaper_destroy (&self);
        return NULL;
    }
    ep_log_info ("loaded %zu active and %zu terminating sessions, %zu cleanup jobs (%zu sessions to clean)",
                 self->active, self->terminating, zhashx_size (self->jobs), sweep_size (self->sweep));
    s_gauges (self);
    return self;
}

void
reaper_destroy (reaper_t **self_p)
{
    reaper_t *self = *self_p;
    if (self) {
        if (self->in_txn)
            ep_store_rollback (self->store);
        sweep_destroy (&self->sweep);
        liveness_destroy (&self->liveness);
        session_t *session = (session_t *) zhashx_first (self->sessions);
        for (; session; session = (session_t *) zhashx_next (self->sessions))
            free (session);
        zhashx_destroy (&self->sessions);
        for (int kind = 0; kind < G_KINDS; kind++) {
            zhashx_destroy (&self->groups [kind]);
            zhashx_destroy (&self->tombstones [kind]);
        }
        zhashx_destroy (&self->jobs);
        zhashx_destroy (&self->unseen);
        zhashx_destroy (&self->offline);
        zhashx_destroy (&self->probes);
        zlistx_destroy (&self->events);
        zlistx_destroy (&self->commands);
        fleet_destroy (&self->fleet);
        sessiondb_destroy (&self->db);
        free (self->dirty);
        free (self);
        *self_p = NULL;
    }
}
