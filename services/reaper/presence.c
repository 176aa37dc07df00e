/*  presence.c: which routers are online (fleet.c, from the watchdogs'
    presence), routers offline past the grace, each router's thresholds
    (cadences.c: learnt from its heartbeat batches, a gap at each presence
    change), and sessions gone quiet (liveness.c's verdicts: probes through
    the router, expiries).
*/
#include "reaper_internal.h"

#define LIVENESS_BATCH      10000       //  liveness verdicts per tick at most

void
reaper_fleet_change (void *arg, const char *router, bool online, int64_t now)
{
    reaper_t *self = (reaper_t *) arg;
    group_t *group = (group_t *) zhashx_lookup (self->groups [G_ROUTER], router);
    //  Offline or back: the time across is no interval of its batches.
    cadences_gap (self->cadences, router);
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

bool
reaper_reachable (void *arg, const char *router)
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

void
reaper_session_thresholds (void *arg, liveness_entry_t *entry, int64_t *evasive_ms, int64_t *expire_ms)
{
    (void) arg;
    group_t *router = ((session_t *) entry)->groups [G_ROUTER];
    *evasive_ms = router->evasive_ms;
    *expire_ms = router->expire_ms;
}

static void
s_gauges (reaper_t *self, const char *router, double evasive_ms, double expire_ms)
{
    if (self->evasive) {
        const char *labels [] = { router };
        ep_gauge_set (self->evasive, labels, evasive_ms / 1000.0);
        ep_gauge_set (self->expire, labels, expire_ms / 1000.0);
    }
}

void
reaper_thresholds (reaper_t *self, group_t *router)
{
    cadences_thresholds (self->cadences, router->id, &router->evasive_ms, &router->expire_ms);
    s_gauges (self, router->id, (double) router->evasive_ms, (double) router->expire_ms);
}

void
reaper_router_beat (reaper_t *self, const char *router, int64_t now)
{
    if (!cadences_heartbeat (self->cadences, router, now))
        return;
    group_t *group = (group_t *) zhashx_lookup (self->groups [G_ROUTER], router);
    int64_t evasive, expire;
    if (group)
        reaper_thresholds (self, group);
    else {
        cadences_thresholds (self->cadences, router, &evasive, &expire);
        s_gauges (self, router, (double) evasive, (double) expire);
    }
    int64_t from, to;
    if (cadences_changed (self->cadences, router, &from, &to)) {
        cadences_thresholds (self->cadences, router, &evasive, &expire);
        ep_log_info ("router %s: session evasive %lld ms -> %lld ms, expire %lld ms (its heartbeat cadence changed)",
                     router, (long long) from, (long long) to, (long long) expire);
    }
}

void
reaper_router_forget (reaper_t *self, const char *router)
{
    cadences_forget (self->cadences, router);
    s_gauges (self, router, NAN, NAN);
}

//  Presence is known from now on: routers not held are offline as of now.
void
reaper_presence_learned (reaper_t *self, int64_t now)
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
        if (streq (type, "join") && presence->routers [i]) {
            //  A join is a reconnect (maybe to another watchdog while the
            //  old one still holds it, so no offline between): a gap.
            cadences_gap (self->cadences, presence->routers [i]);
            fleet_join (self->fleet, presence->instance_id, epoch, presence->routers [i], now);
        }
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
    reaper_command (self, router, command_id, true, NULL, deadline, ids, count);
}

//  Evasive sessions are probed (commands of at most chunk ids), expired
//  ones reaped. Returns false if more verdicts are due now.
bool
reaper_liveness (reaper_t *self, int64_t now)
{
    size_t verdicts = 0;
    liveness_verdict_t verdict;
    liveness_entry_t *entry;
    while (verdicts < LIVENESS_BATCH && !self->failed
       &&  (entry = liveness_next (self->liveness, now, s_floor, self, &verdict))) {
        session_t *session = (session_t *) entry;
        if (verdict == LIVENESS_EVASIVE)
            s_probe (self, session);
        else
            reaper_finish (self, session, R_EXPIRED, "reaped", now);
        verdicts++;
    }
    const char **chunk = (const char **) malloc (self->config.chunk * sizeof (char *));
    zlistx_t *ids;
    for (ids = (zlistx_t *) zhashx_first (self->probes); ids; ids = (zlistx_t *) zhashx_next (self->probes)) {
        const char *router = (const char *) zhashx_cursor (self->probes);
        //  The probe's answer time is its router's T2 - T1 (sessions still
        //  probed are open, so the router's group is there).
        group_t *group = (group_t *) zhashx_lookup (self->groups [G_ROUTER], router);
        int64_t deadline = reaper_wall (self, now)
                         + (group? group->expire_ms - group->evasive_ms: self->config.expire_ms - self->config.evasive_ms);
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
void
reaper_offline (reaper_t *self, int64_t now)
{
    zlistx_t *due = zlistx_new ();
    zlistx_set_destructor (due, (czmq_destructor *) zstr_free);
    group_t *group = (group_t *) zhashx_first (self->offline);
    for (; group; group = (group_t *) zhashx_next (self->offline))
        if (now - group->offline_since >= self->config.offline_grace_ms)
            zlistx_add_end (due, strdup (group->id));
    for (char *id = (char *) zlistx_first (due); id; id = (char *) zlistx_next (due)) {
        group = (group_t *) zhashx_lookup (self->offline, id);
        reaper_touch_offline (self, id, group->offline_since);
        zhashx_delete (self->offline, id);
        ep_log_info ("router %s offline for over %lld ms", id, (long long) self->config.offline_grace_ms);
        reaper_job_start (self, G_ROUTER, id, R_OFFLINE, 0, now);
    }
    zlistx_destroy (&due);
}
