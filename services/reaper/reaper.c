/*  reaper.c: the reaper's life cycle (load, resume), its transaction and
    its tick (what time makes due, in order). The records and the
    transitions are in reaper_internal.h; each concern has its own file.
    A transaction that fails is undone in memory too (batch.c); while the
    store takes no writes (a full or failing disk, reaper_set_degraded)
    nothing durable is tried: the shell's probe finds out when it can.
*/
#include "reaper_internal.h"

#define PRUNE_EVERY_MS      60000       //  retention pruning period
//  Adaptive T1 is never below this: above what a watchdog failover costs a
//  router's batches. The watchdog's own floor (15 s) is above its
//  failover, and a router's first batch after it rejoins comes one batch
//  period later (5 s, the router agent's default): 20 s. A watchdog that
//  dies outright is covered by presence instead (its routers go offline,
//  and liveness pauses for them).
#define LIVENESS_FLOOR_MS   20000
#define LIVENESS_CEILING_MS 300000      //  and never above this

const char *const reaper_group_types [G_KINDS] = { "router", "identity", "service" };
const char *const reaper_deleted_reasons [G_KINDS] = {
    "router-deleted", "identity-deleted", "service-deleted"
};
const Ep__EntityType reaper_entity_types [G_KINDS] = {
    EP__ENTITY_TYPE__ENTITY_ROUTER, EP__ENTITY_TYPE__ENTITY_IDENTITY, EP__ENTITY_TYPE__ENTITY_SERVICE
};
const char *const reaper_reasons [REASONS] = {
    "router-deleted", "identity-deleted", "service-deleted", "router-offline",
    "expired", "forced", "client-closed"
};

void
reaper_failed (reaper_t *self, const char *what)
{
    reaper_batch_open (self);
    if (self->failed)
        return;
    self->failed = true;
    snprintf (self->failure, sizeof self->failure, "%s", ep_store_last_error ());
    self->fault = ep_store_last_fault ();
    ep_log_error ("%s: %s (the batch is undone)", what, self->failure);
}

//  Opens the transaction on the first write of a batch. Never while the
//  store takes no writes (its callers check first; this is the net).
bool
reaper_begin (reaper_t *self)
{
    if (self->failed)
        return false;
    if (self->degraded != EP_STORE_FAULT_NONE) {
        reaper_batch_open (self);
        self->failed = true;
        snprintf (self->failure, sizeof self->failure, "%s", self->degraded_why);
        self->fault = self->degraded;
        return false;
    }
    if (!self->in_txn) {
        reaper_batch_open (self);
        if (ep_store_begin (self->store) != 0) {
            reaper_failed (self, "cannot start a transaction on sessions.db");
            return false;
        }
        self->in_txn = true;
    }
    return true;
}

void
reaper_wrote (reaper_t *self, int rc)
{
    if (rc != 0)
        reaper_failed (self, "write to sessions.db failed");
}

const char *
reaper_reason (const char *text)
{
    for (size_t i = 0; i < REASONS; i++)
        if (text && streq (text, reaper_reasons [i]))
            return reaper_reasons [i];
    return R_FORCED;
}

size_t
reaper_reason_index (const char *reason)
{
    for (size_t i = 0; i < REASONS; i++)
        if (streq (reason, reaper_reasons [i]))
            return i;
    return 0;
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

//  While the store takes no writes: presence only. Every verdict, cleanup
//  phase, flush and pruning waits (each would write), and so do the
//  CloseSessions (their acks could not be written): the probe ends it.
static int64_t
s_tick_degraded (reaper_t *self, int64_t now)
{
    int64_t due = fleet_tick (self->fleet, now);
    if (!self->known && now >= self->known_at)
        reaper_presence_learned (self, now);
    if (!self->known && self->known_at < due)
        due = self->known_at;
    //  Echoed rows wait undeleted: the resend clock starts again after.
    self->oldest_seq = 0;
    s_gauges (self);
    return due;
}

int64_t
reaper_tick (reaper_t *self, int64_t now)
{
    if (self->degraded != EP_STORE_FAULT_NONE)
        return s_tick_degraded (self, now);
    int64_t due = fleet_tick (self->fleet, now);
    if (!self->known && now >= self->known_at)
        reaper_presence_learned (self, now);
    bool more = false;
    if (self->known) {
        reaper_offline (self, now);
        more |= !reaper_liveness (self, now);
    }
    more |= !reaper_long_lived (self, now);
    reaper_unseen (self, now);
    reaper_wanted (self, now);
    more |= zhashx_size (self->wanted) > 0 && !self->failed;
    reaper_mark (self, now);
    reaper_send (self, now);
    more |= reaper_force (self, now) == self->config.mark_batch;
    int64_t resend = reaper_outbox_tick (self, now);
    if (resend < due)
        due = resend;
    if (now >= self->next_flush)
        reaper_flush (self, now);
    if (now >= self->next_prune && !self->prune_held && reaper_begin (self)) {
        int pruned = sessiondb_prune (self->db, reaper_wall (self, now) - self->config.retention_ms,
                                      (int) self->config.prune_batch);
        reaper_wrote (self, pruned < 0? -1: 0);
        if (pruned > 0)
            self->closed -= pruned;
        self->next_prune = pruned == (int) self->config.prune_batch? now: now + PRUNE_EVERY_MS;
    }
    s_gauges (self);
    if (more || sweep_pending (self->sweep))
        return now;
    int64_t candidates [] = {
        sweep_due (self->sweep, now), self->next_flush, self->next_prune,
        self->known? liveness_due (self->liveness): self->known_at, reaper_long_lived_due (self)
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

bool
reaper_uncommitted (reaper_t *self)
{
    return self->in_txn || self->batch_open
        || (zlistx_size (self->acks) && self->degraded == EP_STORE_FAULT_NONE);
}

bool
reaper_prepare (reaper_t *self)
{
    if (self->degraded == EP_STORE_FAULT_NONE)
        reaper_outbox_acks (self);
    return self->in_txn && !self->failed;
}

void
reaper_refuse (reaper_t *self, const char *why)
{
    reaper_batch_open (self);
    if (self->failed)
        return;
    self->failed = true;
    snprintf (self->failure, sizeof self->failure, "%s", why);
    self->fault = EP_STORE_FAULT_NONE;
    ep_log_warn ("the batch was not taken: %s (the batch is undone)", why);
}

int
reaper_commit (reaper_t *self)
{
    //  Made already if reaper_prepare ran for this batch.
    if (self->degraded == EP_STORE_FAULT_NONE && !self->acks_applied)
        reaper_outbox_acks (self);
    if (self->in_txn && !self->failed && ep_store_commit (self->store) != 0)
        reaper_failed (self, "cannot commit to sessions.db");
    //  Ended even if SQLite rolled it back already (a full disk, an I/O
    //  error): until then the store refuses every write. Its reason is
    //  kept (reaper_failure), whatever this rollback says.
    if (self->failed && self->in_txn)
        ep_store_rollback (self->store);
    self->in_txn = false;
    int rc = self->failed? -1: 0;
    if (self->failed) {
        reaper_outbox_abort (self);
        reaper_batch_undo (self);
    }
    else {
        reaper_outbox_commit (self);
        reaper_batch_keep (self);
    }
    self->failed = false;
    reaper_groups_sweep (self);
    s_gauges (self);
    return rc;
}

void
reaper_set_degraded (reaper_t *self, ep_store_fault_t fault, const char *why)
{
    if (fault != EP_STORE_FAULT_FULL && fault != EP_STORE_FAULT_FAILING)
        fault = EP_STORE_FAULT_NONE;
    self->degraded = fault;
    snprintf (self->degraded_why, sizeof self->degraded_why, "%s", fault? (why? why: ""): "");
}

const char *
reaper_failure (reaper_t *self)
{
    return self->failure;
}

ep_store_fault_t
reaper_fault (reaper_t *self)
{
    return self->fault;
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
reaper_config_defaults (reaper_config_t *config)
{
    *config = (reaper_config_t) {
        .evasive_ms = 60000, .expire_ms = 180000, .offline_grace_ms = 120000,
        .deadline_ms = 15000, .presence_timeout_ms = 3500, .flush_ms = 5000,
        .long_lived_ms = 24 * 3600 * 1000LL, .retention_ms = 24 * 3600 * 1000LL,
        .retry_ms = 1000, .retry_max_ms = 8000, .mark_batch = 5000, .prune_batch = 10000,
        .chunk = 5000, .window = 4,
        .outbox_max = 1000000, .adaptive = true
    };
    ep_cadence_defaults (&config->cadence);
    config->cadence.min_ms = LIVENESS_FLOOR_MS;
    config->cadence.max_ms = LIVENESS_CEILING_MS;
}

//  Loading: what the running jobs and open sessions on disk become.
typedef struct {
    reaper_t *self;             //  the reaper
    int64_t now;                //  the load time
    zlistx_t *orphans;          //  ids of TERMINATING sessions whose job row is gone
    zlistx_t *jobs;             //  job_t loaded now (not the ones memory held already)
} s_load_t;

static void
s_load_count (void *arg, const char *reason, uint64_t count)
{
    job_t *job = (job_t *) arg;
    job->closed [reaper_reason_index (reaper_reason (reason))] += count;
}

static void
s_load_job (void *arg, const sessiondb_job_t *row)
{
    s_load_t *load = (s_load_t *) arg;
    //  An adoption (reaper_adopt) finds the jobs memory has too.
    if (zhashx_lookup (load->self->jobs, row->id))
        return;
    int kind = G_ROUTER;
    for (int k = 0; k < G_KINDS; k++)
        if (streq (row->target_type, reaper_group_types [k]))
            kind = k;
    job_t *job = reaper_job_alloc (load->self, row->id, row->reason, kind, row->target_id,
                                row->revision, row->started_ms, row->deadline_ms);
    job->scheduled = row->scheduled;
    zlistx_add_end (load->jobs, job);
}

static void
s_load_session (void *arg, const sessiondb_row_t *row)
{
    s_load_t *load = (s_load_t *) arg;
    reaper_t *self = load->self;
    if (zhashx_lookup (self->sessions, row->id))
        return;
    session_t *session = reaper_session_new (self, row, load->now);
    if (session->state == EP__SESSION_STATE__TERMINATING) {
        job_t *job = row->job_id? (job_t *) zhashx_lookup (self->jobs, row->job_id): NULL;
        if (job)
            reaper_take (self, job, session, true, load->now);
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
    job_t *job = (job_t *) zlistx_first (load->jobs);
    for (; job; job = (job_t *) zlistx_next (load->jobs)) {
        if (sessiondb_job_counts (self->db, job->id, s_load_count, job) != 0)
            return -1;
        group_t *group = (group_t *) zhashx_lookup (self->groups [job->kind], job->target);
        for (session_t *session = group? group->head: NULL; session; session = session->next [job->kind])
            if (!session->sweep && session->created_ms <= job->started_ms)
                reaper_take (self, job, session, false, now);
    }
    for (const char *id = (const char *) zlistx_first (load->orphans); id;
         id = (const char *) zlistx_next (load->orphans)) {
        session_t *session = (session_t *) zhashx_lookup (self->sessions, id);
        if (session)
            reaper_finish (self, session, R_FORCED, "reaped", now);
    }
    zlistx_t *empty = zlistx_new ();
    for (job = (job_t *) zlistx_first (load->jobs); job; job = (job_t *) zlistx_next (load->jobs))
        if (sweep_job_items (job->sweep) == 0)
            zlistx_add_end (empty, job);
    for (job = (job_t *) zlistx_first (empty); job; job = (job_t *) zlistx_next (empty))
        if (reaper_begin (self))
            reaper_job_finish (self, job, now);
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
    cadences_config_t cadences = {
        config->adaptive, config->cadence, config->evasive_ms, config->expire_ms
    };
    self->cadences = cadences_new (&cadences);
    //  Fixed: the tracker's two thresholds for every session, as before.
    if (config->adaptive)
        liveness_set_thresholds (self->liveness, reaper_session_thresholds, self);
    self->longlived = longlived_new ();
    self->fleet = fleet_new (config->presence_timeout_ms, reaper_fleet_change, self);
    sweep_config_t sweep = { config->window, config->chunk, config->retry_ms, config->retry_max_ms };
    self->sweep = sweep_new (&sweep, reaper_reachable, self);
    self->sessions = zhashx_new ();
    zhashx_set_key_duplicator (self->sessions, NULL);
    zhashx_set_key_destructor (self->sessions, NULL);
    for (int kind = 0; kind < G_KINDS; kind++) {
        self->groups [kind] = zhashx_new ();
        zhashx_set_destructor (self->groups [kind], reaper_group_free);
        self->tombstones [kind] = zhashx_new ();
    }
    self->jobs = zhashx_new ();
    zhashx_set_destructor (self->jobs, (czmq_destructor *) zstr_free);
    self->unseen = zhashx_new ();
    zhashx_set_destructor (self->unseen, (czmq_destructor *) zstr_free);
    self->offline = zhashx_new ();
    self->probes = zhashx_new ();
    zhashx_set_destructor (self->probes, (czmq_destructor *) zlistx_destroy);
    self->acks = zlistx_new ();
    zlistx_set_destructor (self->acks, (czmq_destructor *) zstr_free);
    self->handout = ep_output_new ();
    self->commands = ep_output_new ();
    self->probe_out = ep_output_new ();
    self->undo = reaper_undo_new ();
    self->emptied = zlistx_new ();
    self->wanted = zhashx_new ();
    zhashx_set_destructor (self->wanted, (czmq_destructor *) zstr_free);
    self->loading = true;
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
        const char *router [] = { "router" };
        self->evasive = ep_metrics_gauge (metrics, "edgeplane_reaper_session_evasive_seconds",
            "Silence after which a router's sessions are probed (T1: learnt from its heartbeat cadence, or fixed).",
            1, router);
        self->expire = ep_metrics_gauge (metrics, "edgeplane_reaper_session_expire_seconds",
            "Silence after which a router's sessions are reaped, probed first (T2: learnt or fixed).", 1, router);
        self->long_lived = ep_counter_series (ep_metrics_counter (metrics, "edgeplane_reaper_long_lived_total",
            "Sessions that crossed --long-lived (session.warning, once per session).", 0, NULL), NULL);
        //  As the watchdog's (services/watchdog/events.c): one name for every outbox.
        self->outbox_depth = ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_outbox_events",
            "Events decided and not yet back through the bus (the durable outbox).", 0, NULL), NULL);
        self->outbox_refused = ep_counter_series (ep_metrics_counter (metrics, "edgeplane_outbox_refused_total",
            "Events and joins refused because the outbox was full.", 0, NULL), NULL);
        ep_series_set (ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_outbox_capacity",
            "Events the outbox holds before new work is refused (--outbox-max).", 0, NULL), NULL),
            (double) config->outbox_max);
    }
    s_load_t load = { self, now, zlistx_new (), zlistx_new () };
    zlistx_set_destructor (load.orphans, (czmq_destructor *) zstr_free);
    self->closed = sessiondb_count (self->db, EP__SESSION_STATE__CLOSED);
    int rc = self->closed < 0? -1: 0;
    if (rc == 0)
        rc = sessiondb_owner (self->db, config->owner? config->owner: "reaper", self->owner,
                              sizeof self->owner);
    int64_t outbox = rc == 0? sessiondb_outbox_count (self->db): -1;
    if (outbox < 0)
        rc = -1;
    else
        self->outbox_count = (size_t) outbox;
    if (outbox > 0)
        ep_log_info ("event outbox: %lld session events of a previous run to publish again "
                     "(under their ids %s:<seq>)", (long long) outbox, self->owner);
    if (rc == 0)
        rc = sessiondb_jobs_running (self->db, s_load_job, &load);
    if (rc == 0)
        rc = sessiondb_load_open (self->db, s_load_session, &load);
    if (rc == 0)
        rc = s_resume (self, &load, now);
    self->loading = false;
    zlistx_destroy (&load.orphans);
    zlistx_destroy (&load.jobs);
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

int
reaper_adopt (reaper_t *self, int64_t now)
{
    EP_ASSERT (!self->batch_open);
    s_load_t load = { self, now, zlistx_new (), zlistx_new () };
    zlistx_set_destructor (load.orphans, (czmq_destructor *) zstr_free);
    size_t jobs = zhashx_size (self->jobs), active = self->active, terminating = self->terminating;
    self->loading = true;
    int rc = sessiondb_jobs_running (self->db, s_load_job, &load);
    if (rc == 0)
        rc = sessiondb_load_open (self->db, s_load_session, &load);
    if (rc == 0)
        rc = s_resume (self, &load, now);
    self->loading = false;
    zlistx_destroy (&load.orphans);
    zlistx_destroy (&load.jobs);
    //  The shard's outbox entries were written into the cache beside its
    //  sessions (the service did): they are handed out as the others.
    int64_t outbox = rc == 0? sessiondb_outbox_count (self->db): -1;
    if (outbox >= 0)
        self->outbox_count = (size_t) outbox;
    if (rc != 0)
        ep_log_error ("cannot adopt the sessions loaded: %s", ep_store_last_error ());
    else
        ep_log_info ("adopted %zu active and %zu terminating sessions, %zu cleanup jobs",
                     self->active - active, self->terminating - terminating,
                     zhashx_size (self->jobs) - jobs);
    s_gauges (self);
    return rc;
}

void
reaper_hold_prune (reaper_t *self, bool holding)
{
    self->prune_held = holding;
}

sessiondb_t *
reaper_db (reaper_t *self)
{
    return self->db;
}

int
reaper_forget (reaper_t *self, reaper_mine_fn *mine, void *arg)
{
    EP_ASSERT (!self->batch_open);
    zlistx_t *routers = zlistx_new ();
    zlistx_set_destructor (routers, (czmq_destructor *) zstr_free);
    for (group_t *group = (group_t *) zhashx_first (self->groups [G_ROUTER]); group;
         group = (group_t *) zhashx_next (self->groups [G_ROUTER]))
        if (!mine (arg, group->id))
            zlistx_add_end (routers, strdup (group->id));
    //  Jobs of other targets that hold sessions now: one left empty by the
    //  forgetting ends here (one empty already is the tick's to finish).
    zlistx_t *holding = zlistx_new ();
    for (job_t *job = (job_t *) zhashx_first (self->jobs); job; job = (job_t *) zhashx_next (self->jobs))
        if (job->kind != G_ROUTER && sweep_job_items (job->sweep) > 0)
            zlistx_add_end (holding, job);
    int forgotten = 0;
    for (const char *router = (const char *) zlistx_first (routers); router;
         router = (const char *) zlistx_next (routers)) {
        group_t *group = (group_t *) zhashx_lookup (self->groups [G_ROUTER], router);
        while (group && group->head) {
            reaper_session_drop (self, group->head);
            forgotten++;
        }
        zhashx_delete (self->offline, router);
    }
    //  A router's job goes with its router; another target's job ends here
    //  only once it holds nothing (its sessions of other shards stay).
    zlistx_t *gone = zlistx_new ();
    for (job_t *job = (job_t *) zhashx_first (self->jobs); job; job = (job_t *) zhashx_next (self->jobs))
        if (job->kind == G_ROUTER && !mine (arg, job->target))
            zlistx_add_end (gone, job);
    for (job_t *job = (job_t *) zlistx_first (holding); job; job = (job_t *) zlistx_next (holding))
        if (sweep_job_items (job->sweep) == 0)
            zlistx_add_end (gone, job);
    zlistx_destroy (&holding);
    for (job_t *job = (job_t *) zlistx_first (gone); job; job = (job_t *) zlistx_next (gone)) {
        sweep_job_end (self->sweep, &job->sweep);
        zhashx_delete (self->jobs, job->id);
    }
    zlistx_destroy (&gone);
    reaper_groups_sweep (self);
    int rc = ep_store_begin (self->store);
    for (const char *router = (const char *) zlistx_first (routers); router && rc == 0;
         router = (const char *) zlistx_next (routers))
        rc = sessiondb_forget_router (self->db, router);
    if (rc == 0)
        rc = ep_store_commit (self->store);
    else
        ep_store_rollback (self->store);
    if (rc != 0)
        ep_log_error ("cannot forget the sessions of shards no longer ours: %s", ep_store_last_error ());
    else
    if (forgotten)
        ep_log_info ("forgot %d sessions of %zu routers whose shards are another instance's",
                     forgotten, zlistx_size (routers));
    zlistx_destroy (&routers);
    s_gauges (self);
    return rc == 0? forgotten: -1;
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
        longlived_destroy (&self->longlived);
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
        zlistx_destroy (&self->acks);
        zlistx_destroy (&self->emptied);
        zhashx_destroy (&self->wanted);
        reaper_undo_destroy (&self->undo);
        ep_output_destroy (&self->handout);
        ep_output_destroy (&self->commands);
        ep_output_destroy (&self->probe_out);
        fleet_destroy (&self->fleet);
        cadences_destroy (&self->cadences);
        sessiondb_destroy (&self->db);
        free (self->dirty);
        free (self);
        *self_p = NULL;
    }
}
