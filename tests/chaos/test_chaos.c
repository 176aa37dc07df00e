/*  test_chaos.c: the whole control plane under load, every service and the
    bus SIGKILLed at random moments and restarted, then an oracle of the
    test's own.

    Real processes: bus, model, terminators, reaper and watchdog on stable
    ports (a restarted one comes back where its clients reconnect), and one
    edgeplane-router agent per router (sessions opened, closed and replaced
    every second, terminators for its hosted services). The load, from this
    process: model writes over RPC (each acknowledged one recorded with its
    revision), routers created, re-hosted and deleted, event subscribers and
    model followers (ep_follower) pumped in the same loop. The chaos: one
    service at a time killed with SIGKILL at a random moment, left down for
    a random while (writes and joins fail meanwhile), restarted; each of
    the five at least once.

    Then the load stops, the system settles, and the oracle, computed from
    what this test did and saw (never from what the services say about
    themselves), must hold:
    1. every acknowledged model write is in the model (read back through a
       fresh snapshot): the entity, its content and its revision;
    2. the live terminators are exactly one ESTABLISHED terminator per
       (router alive in the test's record, service it hosts there), with no
       spin counted or announced;
    3. no session of a deleted router is ACTIVE or TERMINATING;
    4. every event subscriber reported each loss it had: the losses are
       derived from the (source, epoch, seq) of the events it delivered,
       and each must lie in a gap it reported; every model follower
       accounted for each revision it did not apply from the stream (lost,
       or held behind a loss: derived from its view's revision around each
       call) with a fetch or a snapshot, and ended with the model's digest
       (resynced), as did the services' own followers.

    The seed is printed; EDGEPLANE_CHAOS_SEED=<seed> replays the same
    decisions (the processes' timing still varies). The short form (the
    default, about 90 s) runs in CI; EDGEPLANE_CHAOS_LONG=1 runs ten minutes
    and EDGEPLANE_CHAOS_SECONDS=<n> any length of chaos.
*/
#include <criterion/criterion.h>
#include "ep_stack.h"
#include "ep_codec.h"
#include "ep_follower.h"
#include "ep_keys.h"
#include "ep_pki.h"
#include "ep_rpc_client.h"
#include "ep_subscriber.h"
#include "model.pb-c.h"
#include <sodium.h>
#include <signal.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>

#define HOSTABLE        4       //  services svc0..svc3 routers may host
#define POOL_SHORT      24      //  router ids available (never reused)
#define POOL_LONG       400
#define POOL_MAX        400
#define ROUTERS_MIN     4       //  live routers kept at least
#define ROUTERS_MAX     12      //  and at most
#define SUBSCRIBERS     3
#define FOLLOWERS       2
#define SETTLE_MS       120000  //  how long the system may take to settle

//  ---------------------------------------------------------------------
//  Deterministic randomness (ep_rand_next: xorshift64*). The writer
//  thread has its own sequence, seeded from the test's seed.

static uint64_t s_rng;

//  ---------------------------------------------------------------------
//  Processes

static ep_stack_t *s_stack;             //  keys, CA, environment, the services on fixed ports
static const char *s_keys;              //  the stack's keys dir
static char *s_fleet;                   //  the routers' bundles
static const char *s_channel;           //  the watchdog's control channel (host:port)
static const char *s_model_api;
static const char *s_bus_sub;

typedef struct {
    const char *name;           //  "bus", "model", ...
    ep_proc_t *proc;            //  running (or starting) process, the stack's; NULL while down
    bool starting;              //  spawned, ready file not seen yet
    int64_t restart_at;         //  while down: when it comes back
    int64_t started_ms;         //  when it was spawned
    int kills;                  //  SIGKILLs survived
} s_service_t;

static s_service_t s_services [] = {
    { .name = "bus" }, { .name = "model" }, { .name = "terminators" }, { .name = "reaper" }, { .name = "watchdog" }
};
#define BUS         0
#define MODEL       1
#define TERMINATORS 2
#define REAPER      3
#define WATCHDOG    4

static zlistx_t *s_logs;        //  the logs of killed incarnations (tails), for a failure report

static void
s_spawn (s_service_t *svc)
{
    svc->proc = ep_stack_spawn (s_stack, svc->name);
    svc->starting = true;
    svc->started_ms = ep_mono_ms ();
}

//  True once svc is up; fails the test if it died or hangs while starting.
static bool
s_up (s_service_t *svc)
{
    if (!svc->proc)
        return false;
    if (svc->starting) {
        if (ep_proc_wait_ready (svc->proc, 0) == 0)
            svc->starting = false;
        else {
            char *log = ep_proc_log (svc->proc);
            cr_assert (ep_proc_wait_exit (svc->proc, 0) == -1, "%s died while starting: %s", svc->name, log);
            cr_assert (ep_mono_ms () - svc->started_ms < 30000, "%s not ready after 30 s: %s", svc->name, log);
            free (log);
        }
    }
    return !svc->starting;
}

static bool
s_up_cond (void *arg)
{
    return s_up ((s_service_t *) arg);
}

static bool
s_all_up (void)
{
    bool up = true;
    for (size_t i = 0; i < EP_COUNT (s_services); i++)
        up &= s_up (&s_services [i]);
    return up;
}

static void
s_kill (s_service_t *svc, int down_ms)
{
    char *log = ep_stack_kill (s_stack, svc->name);
    svc->proc = NULL;
    size_t len = log? strlen (log): 0;
    zlistx_add_end (s_logs, zsys_sprintf ("---- %s (killed):\n%s", svc->name, log? log + (len > 3000? len - 3000: 0): ""));
    free (log);
    svc->kills++;
    svc->restart_at = ep_mono_ms () + down_ms;
}

//  A metric of a running service, or -1.
static double
s_metric (s_service_t *svc, const char *series)
{
    if (!s_up (svc))
        return -1;
    char *page = ep_http_get (ep_proc_endpoint (svc->proc, "http"), "/metrics");
    double value = page? ep_metric_value (page, series): -1;
    free (page);
    return value;
}

//  ---------------------------------------------------------------------
//  The model, as this test wrote it

static zcert_t *s_operator;
static char *s_bus_key, *s_model_key;
static ep_rpc_client_t *s_modelc;

//  One entity the load writes: identity w<n>, created then renamed.
typedef struct {
    char id [24];               //  "w17"
    bool created;               //  a create was acknowledged
    uint64_t acked_revision;    //  revision of its last acknowledged write
    char acked_name [24];       //  the name that write set
    bool in_doubt;              //  a write to it went unanswered (it may commit, even late)
} s_written_t;

static s_written_t *s_written;
static size_t s_written_count, s_written_cap;

enum { R_UNUSED, R_LIVE, R_DELETED };
typedef struct {
    char id [24];               //  "chaos-7"
    int state;                  //  R_UNUSED, R_LIVE (created in the model), R_DELETED
    bool hosts [HOSTABLE];      //  its hosted services, as last acknowledged (or pending)
    int pending;                //  a write not yet acknowledged: 0, 'c'reate, 'd'elete, 'u'pdate
    bool in_doubt;              //  a call of the pending write went unanswered (it may have committed)
    ep_proc_t *agent;           //  its edgeplane-router
    int64_t stop_at;            //  deleted: when its agent stops (0: stopped)
} s_router_t;

static s_router_t s_routers [POOL_MAX];
static int s_pool;              //  ids in use in this run

static struct {
    uint64_t router_writes, router_retries, creates, deletes, rehosts;
    uint64_t spin_events, events;
} s_stats;

//  Sends a model request, in up to attempts attempts of 700 ms under one
//  request id; returns the reply (caller frees) or NULL if none came (the
//  write may or may not have committed).
static Ep__ModelReply *
s_model_call_with (ep_rpc_client_t *client, Ep__ModelRequest *request, int attempts)
{
    return ep_rpc_call (client, request, &ep__model_reply__descriptor, 700, attempts, NULL, 0);
}

static Ep__ModelReply *
s_model_call (Ep__ModelRequest *request)
{
    return s_model_call_with (s_modelc, request, 2);
}

static Ep__Status__Code
s_code (Ep__ModelReply *reply)
{
    return reply->status && reply->status->has_code? reply->status->code: EP__STATUS__CODE__OK;
}

//  The writer thread: identities created and renamed as fast as the
//  model acknowledges them, whatever is being killed meanwhile, so kills
//  land on writes in flight. It owns s_written until it is joined.
typedef struct {
    ep_rpc_client_t *client;    //  its own connection to the model
    uint64_t rng;               //  its own sequence
    atomic_bool stop;           //  set by the test
    uint64_t acked;             //  writes acknowledged
    uint64_t unanswered;        //  writes without an answer, UNAVAILABLE, or failed while in doubt
    uint64_t resent;            //  writes answered OK on a resend (after a model crash, say)
    uint64_t wrong;             //  writes answered as if an earlier attempt had not been answered
    char wrong_first [256];     //  the first of those
} s_writer_t;

static s_writer_t s_writer;
static pthread_t s_writer_thread;
static bool s_writer_running;

static void
s_writer_join (void)
{
    if (s_writer_running) {
        atomic_store (&s_writer.stop, true);
        pthread_join (s_writer_thread, NULL);
        s_writer_running = false;
    }
    ep_rpc_client_destroy (&s_writer.client);
}

static void
s_load_write (s_writer_t *self)
{
    s_written_t *w;
    bool create = s_written_count == 0 || ep_rand_next (&self->rng) % 100 < 60;
    if (create) {
        if (s_written_count == s_written_cap) {
            s_written_cap = s_written_cap? s_written_cap * 2: 1024;
            s_written = (s_written_t *) realloc (s_written, s_written_cap * sizeof (s_written_t));
        }
        w = &s_written [s_written_count++];
        memset (w, 0, sizeof *w);
        snprintf (w->id, sizeof w->id, "w%zu", s_written_count - 1);
    }
    else
        w = &s_written [ep_rand_next (&self->rng) % s_written_count];
    bool in_doubt = w->in_doubt;
    char name [24];
    snprintf (name, sizeof name, "n%llu", (unsigned long long) ep_rand_next (&self->rng) % 1000000);
    Ep__Identity identity = EP__IDENTITY__INIT;
    identity.id = w->id;
    identity.name = name;
    ep_entity_write_t write;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.op_case = EP__MODEL_REQUEST__OP_WRITE;
    request.write = ep_entity_write (&write, w->created? EP__MODEL_WRITE__OP__UPDATE: EP__MODEL_WRITE__OP__CREATE,
                                     EP__ENTITY__KIND_IDENTITY, &identity);
    //  Resent for 3.5 s, longer than the model stays down (2 s at most)
    //  plus its start: a write in flight when the model dies is resent to
    //  the next incarnation, which must answer it as the first would have.
    Ep__ModelReply *reply = s_model_call_with (self->client, &request, 5);
    if (reply && s_code (reply) == EP__STATUS__CODE__OK && reply->has_revision) {
        w->created = true;
        w->acked_revision = reply->revision;
        snprintf (w->acked_name, sizeof w->acked_name, "%s", name);
        self->acked++;
        self->resent += ep_rpc_client_attempts (self->client) > 1;
    }
    else
    if (reply && s_code (reply) != EP__STATUS__CODE__UNAVAILABLE && !in_doubt) {
        //  Every earlier write to this entity was answered, so this one
        //  cannot fail, even when its first attempt committed just before
        //  the model died: the model keeps its replies across restarts
        //  and answers the resend with the first one (a create answered
        //  ALREADY_EXISTS is what losing them looked like).
        if (self->wrong++ == 0)
            snprintf (self->wrong_first, sizeof self->wrong_first, "%s of %s answered %d: %s",
                      write.write.op == EP__MODEL_WRITE__OP__CREATE? "create": "update", w->id,
                      (int) s_code (reply), reply->status && reply->status->message?
                      reply->status->message: "");
        w->in_doubt = true;
    }
    else {
        //  No answer (the model was killed or is down, every attempt
        //  lost), UNAVAILABLE, or an entity in doubt already: the outcome is unknown, so this
        //  write is not checked, nor, from now on, the exact content of
        //  the entity (a resend of it may still be in the model's input),
        //  and a later create of it may find it there (ALREADY_EXISTS).
        w->in_doubt = true;
        self->unanswered++;
    }
    if (reply)
        ep__model_reply__free_unpacked (reply, NULL);
}

static void *
s_writer_run (void *arg)
{
    s_writer_t *self = (s_writer_t *) arg;
    while (!atomic_load (&self->stop)) {
        s_load_write (self);
        //  Load pacing (a few hundred writes a second at most), not
        //  synchronisation.
        poll (NULL, 0, (int) (ep_rand_next (&self->rng) % 8));
    }
    return NULL;
}

//  Sends router r's pending write once. Returns true once it is settled
//  (acknowledged, or found done by an earlier attempt whose reply was lost).
static bool
s_router_write (int r)
{
    s_router_t *router = &s_routers [r];
    char identity_id [40];
    snprintf (identity_id, sizeof identity_id, "id-%s", router->id);
    Ep__HostedService hosted [HOSTABLE], *hosted_list [HOSTABLE];
    char names [HOSTABLE][8];
    size_t n_hosted = 0;
    for (int s = 0; s < HOSTABLE; s++)
        if (router->hosts [s]) {
            ep__hosted_service__init (&hosted [n_hosted]);
            snprintf (names [s], sizeof names [s], "svc%d", s);
            hosted [n_hosted].service_id = names [s];
            hosted_list [n_hosted] = &hosted [n_hosted];
            n_hosted++;
        }
    Ep__Router body = EP__ROUTER__INIT;
    body.id = router->id;
    body.has_enabled = true;
    body.enabled = true;
    body.hosted = hosted_list;
    body.n_hosted = n_hosted;
    Ep__Identity identity = EP__IDENTITY__INIT;
    identity.id = identity_id;
    ep_entity_write_t identity_write, router_write;
    Ep__ModelWrite removal = EP__MODEL_WRITE__INIT;
    Ep__ModelWrite *write_list [2];
    Ep__ModelTxn txn = EP__MODEL_TXN__INIT;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    char *clear [] = { "hosted" };
    if (router->pending == 'c') {
        //  The identity its sessions belong to, and the router, in one revision.
        write_list [0] = ep_entity_write (&identity_write, EP__MODEL_WRITE__OP__CREATE, EP__ENTITY__KIND_IDENTITY,
                                          &identity);
        write_list [1] = ep_entity_write (&router_write, EP__MODEL_WRITE__OP__CREATE, EP__ENTITY__KIND_ROUTER, &body);
        txn.writes = write_list;
        txn.n_writes = 2;
        request.op_case = EP__MODEL_REQUEST__OP_TXN;
        request.txn = &txn;
    }
    else
    if (router->pending == 'd') {
        removal.has_op = removal.has_type = true;
        removal.op = EP__MODEL_WRITE__OP__DELETE;
        removal.type = EP__ENTITY_TYPE__ENTITY_ROUTER;
        removal.id = router->id;
        request.op_case = EP__MODEL_REQUEST__OP_WRITE;
        request.write = &removal;
    }
    else {
        request.op_case = EP__MODEL_REQUEST__OP_WRITE;
        request.write = ep_entity_write (&router_write, EP__MODEL_WRITE__OP__UPDATE, EP__ENTITY__KIND_ROUTER, &body);
        if (n_hosted == 0) {
            request.write->clear = clear;
            request.write->n_clear = 1;
        }
    }
    Ep__ModelReply *reply = s_model_call (&request);
    s_stats.router_writes++;
    if (!reply) {
        router->in_doubt = true;
        s_stats.router_retries++;
        return false;
    }
    //  Done already only if an earlier call went unanswered: within one
    //  call, a resend whose first attempt committed gets the first reply,
    //  even from a model restarted meanwhile.
    Ep__Status__Code code = s_code (reply);
    bool settled = code == EP__STATUS__CODE__OK
               ||  (router->pending == 'c' && code == EP__STATUS__CODE__ALREADY_EXISTS && router->in_doubt)
               ||  (router->pending == 'd' && code == EP__STATUS__CODE__NOT_FOUND && router->in_doubt);
    cr_assert (settled || code == EP__STATUS__CODE__UNAVAILABLE,
               "router write '%c' on %s (%s): status %d %s", router->pending, router->id,
               router->in_doubt? "an earlier call unanswered": "every earlier call answered", (int) code,
               reply->status && reply->status->message? reply->status->message: "");
    ep__model_reply__free_unpacked (reply, NULL);
    if (!settled) {
        s_stats.router_retries++;
        return false;
    }
    if (router->pending == 'c') {
        //  Its agent: joins, hosts, opens and churns sessions.
        const char *args [] = { "--id", router->id, "--bundle", s_fleet, "--controller", s_channel,
                                "--sessions", "3", "--churn", "1", "--heartbeat", "1s", NULL };
        router->agent = ep_proc_spawn ("edgeplane-router", args, ep_stack_env (s_stack));
        s_stats.creates++;
    }
    else
    if (router->pending == 'd') {
        //  Its agent stays a while: reconnecting, refused, asked to close.
        router->stop_at = ep_mono_ms () + ep_rand_pick (&s_rng, 6000);
        s_stats.deletes++;
    }
    else
        s_stats.rehosts++;
    router->pending = 0;
    router->in_doubt = false;
    return true;
}

//  Routers' unsettled writes are sent again, oldest router first.
static void
s_router_flush (void)
{
    for (int r = 0; r < s_pool; r++)
        if (s_routers [r].pending && s_up (&s_services [MODEL]))
            s_router_write (r);
}

static void
s_router_action (void)
{
    int live = 0, unused = -1;
    for (int r = 0; r < s_pool; r++) {
        live += s_routers [r].state == R_LIVE;
        if (unused < 0 && s_routers [r].state == R_UNUSED)
            unused = r;
    }
    int action = ep_rand_pick (&s_rng, 100);
    if (unused >= 0 && (live < ROUTERS_MIN || (action < 35 && live < ROUTERS_MAX))) {
        s_router_t *router = &s_routers [unused];
        router->state = R_LIVE;
        for (int s = 0; s < HOSTABLE; s++)
            router->hosts [s] = ep_rand_pick (&s_rng, 100) < 60;
        router->pending = 'c';
        s_router_write (unused);
        return;
    }
    //  A live router with nothing pending.
    int candidates [POOL_MAX], n = 0;
    for (int r = 0; r < s_pool; r++)
        if (s_routers [r].state == R_LIVE && !s_routers [r].pending)
            candidates [n++] = r;
    if (n == 0)
        return;
    int r = candidates [ep_rand_pick (&s_rng, n)];
    if (action < 65 && live > ROUTERS_MIN) {
        s_routers [r].state = R_DELETED;
        s_routers [r].pending = 'd';
    }
    else {
        s_routers [r].hosts [ep_rand_pick (&s_rng, HOSTABLE)] ^= true;
        s_routers [r].pending = 'u';
    }
    s_router_write (r);
}

//  Deleted routers' agents stop when due (all of them when force).
static void
s_stop_agents (bool force)
{
    for (int r = 0; r < s_pool; r++) {
        s_router_t *router = &s_routers [r];
        if (router->state == R_DELETED && !router->pending && router->agent
        &&  (force || ep_mono_ms () >= router->stop_at)) {
            ep_proc_signal (router->agent, SIGTERM);
            ep_proc_wait_exit (router->agent, 5000);
            ep_proc_destroy (&router->agent);
        }
    }
}

//  ---------------------------------------------------------------------
//  Event subscribers: what each delivered, and the losses it reported

typedef struct {
    char key [160];             //  "source|stream"
    uint64_t epoch;
    uint64_t from, to;          //  seqs, inclusive
} s_range_t;

typedef struct {
    char key [160];
    uint64_t epoch;             //  epoch of the last delivered event
    uint64_t seq;               //  its seq
} s_last_t;

typedef struct {
    const char *prefix;         //  what it subscribed to (whole streams)
    ep_subscriber_t *sub;
    zhashx_t *last;             //  key -> s_last_t
    zlistx_t *lost;             //  s_range_t: losses derived from what it delivered
    zlistx_t *reported;         //  s_range_t: gaps it reported
    uint64_t events, derived, reported_count, restarts;
} s_events_t;

static s_events_t s_subs [SUBSCRIBERS] = { { .prefix = "" }, { .prefix = "session." }, { .prefix = "terminator." } };

static void
s_add_range (zlistx_t *list, const char *key, uint64_t epoch, uint64_t from, uint64_t to)
{
    s_range_t *range = (s_range_t *) zmalloc (sizeof (s_range_t));
    snprintf (range->key, sizeof range->key, "%s", key);
    range->epoch = epoch;
    range->from = from;
    range->to = to;
    zlistx_add_end (list, range);
}

static void
s_on_report (void *arg, const ep_stream_report_t *report)
{
    s_events_t *self = (s_events_t *) arg;
    char key [160];
    snprintf (key, sizeof key, "%s|%s", report->source_id, report->stream);
    if (report->kind == EP_STREAM_GAP) {
        s_add_range (self->reported, key, report->epoch, report->from, report->to);
        self->reported_count++;
    }
    if (report->kind == EP_STREAM_RESTART)
        self->restarts++;
}

static void
s_pump_events (void)
{
    for (int i = 0; i < SUBSCRIBERS; i++) {
        s_events_t *self = &s_subs [i];
        char *topic = NULL;
        Ep__Event *event;
        for (int n = 0; n < 5000 && (event = ep_subscriber_recv (self->sub, 0, &topic)); n++) {
            self->events++;
            s_stats.events++;
            if (streq (topic, "terminator.spin"))
                s_stats.spin_events++;
            Ep__StreamMeta *meta = event->meta;
            cr_assert (meta && meta->source_id && meta->stream, "event %s without its stream meta", topic);
            char key [160];
            snprintf (key, sizeof key, "%s|%s", meta->source_id, meta->stream);
            s_last_t *last = (s_last_t *) zhashx_lookup (self->last, key);
            if (!last) {
                last = (s_last_t *) zmalloc (sizeof (s_last_t));
                snprintf (last->key, sizeof last->key, "%s", key);
                zhashx_insert (self->last, key, last);
            }
            else
            if (meta->epoch != last->epoch) {
                //  The source restarted while we listened: its new epoch
                //  must be seen from seq 1.
                if (meta->seq > 1)
                    s_add_range (self->lost, key, meta->epoch, 1, meta->seq - 1);
            }
            else {
                cr_assert_gt (meta->seq, last->seq, "%s delivered seq %llu after %llu", key,
                              (unsigned long long) meta->seq, (unsigned long long) last->seq);
                if (meta->seq > last->seq + 1)
                    s_add_range (self->lost, key, meta->epoch, last->seq + 1, meta->seq - 1);
            }
            last->epoch = meta->epoch;
            last->seq = meta->seq;
            zstr_free (&topic);         //  the event is the subscriber's (lent)
        }
    }
}

//  Losses of self that no gap report covers (0 if all were reported);
//  *first describes the first one.
static uint64_t
s_unreported (s_events_t *self, char **first)
{
    uint64_t missing = 0;
    for (s_range_t *lost = (s_range_t *) zlistx_first (self->lost); lost; lost = (s_range_t *) zlistx_next (self->lost)) {
        self->derived += lost->to - lost->from + 1;
        for (uint64_t seq = lost->from; seq <= lost->to; seq++) {
            bool covered = false;
            for (s_range_t *gap = (s_range_t *) zlistx_first (self->reported); gap && !covered;
                 gap = (s_range_t *) zlistx_next (self->reported))
                covered = gap->epoch == lost->epoch && streq (gap->key, lost->key)
                       && gap->from <= seq && seq <= gap->to;
            if (!covered) {
                if (missing++ == 0 && first && !*first)
                    *first = zsys_sprintf ("subscriber \"%s\": %s epoch %llu seq %llu lost and not reported",
                                           self->prefix, lost->key, (unsigned long long) lost->epoch,
                                           (unsigned long long) seq);
            }
        }
    }
    return missing;
}

//  ---------------------------------------------------------------------
//  Model followers: how each revision reached the view

typedef struct {
    ep_follower_t *follower;
    ep_model_view_t *view;
    uint64_t streamed;          //  revisions applied from the stream
    uint64_t recovered;         //  revisions applied or jumped over by a fetch, after the first snapshot
    uint64_t episodes;          //  steps that did so
    uint64_t unaccounted;       //  steps that moved the view outside the stream without a fetch
} s_follower_t;

static s_follower_t s_followers [FOLLOWERS];
static zpoller_t *s_poller;     //  every follower's and subscriber's socket

static uint64_t
s_fetches (s_follower_t *self)
{
    return ep_follower_catchups (self->follower) + ep_follower_snapshots (self->follower);
}

//  One step of a follower, handle or tick, and how it moved the view: by a
//  fetch completed in it (a catch-up or a snapshot: replies are taken in
//  both), or by the stream (handle only: a tick applies no change of the
//  stream, so a tick that moves the view without a fetch is unaccounted).
static void
s_step (s_follower_t *self, bool handle)
{
    uint64_t before = ep_model_view_revision (self->view);
    bool loaded = ep_follower_ready (self->follower);
    uint64_t fetches = s_fetches (self);
    if (handle)
        ep_follower_handle (self->follower);
    else
        ep_follower_tick (self->follower);
    uint64_t after = ep_model_view_revision (self->view);
    if (after == before)
        return;
    uint64_t moved = after > before? after - before: 0;
    if (s_fetches (self) != fetches) {
        if (loaded) {
            self->recovered += moved;
            self->episodes++;
        }
    }
    else
    if (handle)
        self->streamed += moved;
    else
    if (loaded) {
        self->recovered += moved;
        self->episodes++;
        self->unaccounted++;
    }
}

static void
s_pump_followers (void)
{
    for (int i = 0; i < FOLLOWERS; i++) {
        s_step (&s_followers [i], true);
        s_step (&s_followers [i], false);
    }
}

//  ---------------------------------------------------------------------
//  Reading the system back

//  Runs the CLI; returns its status, output in *out.
static int
s_cli (const char *args, char **out)
{
    char *cmd = zsys_sprintf ("'%s/edgeplane' %s 2>&1", EP_BIN_DIR, args);
    int rc = ep_run (cmd, out);
    free (cmd);
    return rc;
}

//  The JSON array a CLI list --json prints, or NULL.
static json_t *
s_cli_list (const char *args)
{
    char *out = NULL;
    int rc = s_cli (args, &out);
    json_error_t error;
    json_t *list = rc == 0 && out? json_loads (out, 0, &error): NULL;
    free (out);
    if (!json_is_array (list)) {
        json_decref (list);
        return NULL;
    }
    return list;
}

static const char *
s_field (json_t *object, const char *name)
{
    const char *value = json_string_value (json_object_get (object, name));
    return value? value: "";
}

//  NULL if the live terminators are exactly the desired set, all
//  established; else what differs.
static char *
s_terminators_differ (size_t *checked)
{
    json_t *list = s_cli_list ("terminator list --json");
    if (!list)
        return strdup ("terminator list failed");
    int count [POOL_MAX][HOSTABLE];
    memset (count, 0, sizeof count);
    char *problem = NULL;
    size_t i;
    json_t *item;
    json_array_foreach (list, i, item) {
        const char *router_id = s_field (item, "router_id");
        const char *service_id = s_field (item, "service_id");
        int r = -1, s = -1;
        for (int k = 0; k < s_pool; k++)
            if (streq (s_routers [k].id, router_id))
                r = k;
        if (strncmp (service_id, "svc", 3) == 0)
            s = atoi (service_id + 3);
        if (r < 0 || s < 0 || s >= HOSTABLE) {
            problem = zsys_sprintf ("terminator %s of unknown router %s / service %s",
                                    s_field (item, "id"), router_id, service_id);
            break;
        }
        count [r][s]++;
        if (!streq (s_field (item, "state"), "established") && !problem)
            problem = zsys_sprintf ("terminator %s (%s, %s) is %s", s_field (item, "id"), router_id,
                                    service_id, s_field (item, "state"));
    }
    json_decref (list);
    for (int r = 0; r < s_pool && !problem; r++)
        for (int s = 0; s < HOSTABLE && !problem; s++) {
            int want = s_routers [r].state == R_LIVE && s_routers [r].hosts [s];
            if (count [r][s] != want)
                problem = zsys_sprintf ("%s hosts svc%d: %d terminators, want %d", s_routers [r].id, s,
                                        count [r][s], want);
            *checked += want;
        }
    return problem;
}

//  NULL if no session of a deleted router is active or terminating.
static char *
s_sessions_differ (size_t *checked)
{
    for (int r = 0; r < s_pool; r++) {
        if (s_routers [r].state != R_DELETED)
            continue;
        char *args = zsys_sprintf ("session list --router %s --json", s_routers [r].id);
        json_t *list = s_cli_list (args);
        free (args);
        if (!list)
            return zsys_sprintf ("session list --router %s failed", s_routers [r].id);
        size_t i;
        json_t *item;
        json_array_foreach (list, i, item) {
            const char *state = s_field (item, "state");
            if (streq (state, "active") || streq (state, "terminating")) {
                char *problem = zsys_sprintf ("session %s of deleted router %s is %s", s_field (item, "id"),
                                              s_routers [r].id, state);
                json_decref (list);
                return problem;
            }
        }
        *checked += json_array_size (list);
        json_decref (list);
    }
    return NULL;
}

//  The model's revision and the first 52 bits of its digest, or -1.
static double
s_model_digest52 (uint64_t *revision)
{
    Ep__StatusRequest status = EP__STATUS_REQUEST__INIT;
    status.has_digest = status.digest = true;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.op_case = EP__MODEL_REQUEST__OP_STATUS;
    request.status = &status;
    Ep__ModelReply *reply = s_model_call (&request);
    double value = -1;
    if (reply && reply->digest) {
        uint8_t digest [EP_MODEL_DIGEST_SIZE];
        sodium_hex2bin (digest, sizeof digest, reply->digest, strlen (reply->digest), NULL, NULL, NULL);
        value = ep_model_digest52 (digest);
        *revision = reply->revision;
    }
    if (reply)
        ep__model_reply__free_unpacked (reply, NULL);
    return value;
}

static double
s_view_digest52 (ep_model_view_t *view)
{
    uint8_t digest [EP_MODEL_DIGEST_SIZE];
    ep_model_view_digest (view, digest);
    return ep_model_digest52 (digest);
}

//  NULL once every follower (ours and the services') holds the model's digest.
static char *
s_followers_differ (void)
{
    uint64_t revision = 0;
    double model = s_model_digest52 (&revision);
    if (model < 0)
        return strdup ("no digest from the model");
    for (int i = 0; i < FOLLOWERS; i++)
        if (ep_model_view_revision (s_followers [i].view) != revision
        ||  s_view_digest52 (s_followers [i].view) != model)
            return zsys_sprintf ("follower %d at revision %llu, model at %llu (digests %s)", i,
                                 (unsigned long long) ep_model_view_revision (s_followers [i].view),
                                 (unsigned long long) revision,
                                 s_view_digest52 (s_followers [i].view) == model? "equal": "differ");
    static const int services [] = { TERMINATORS, REAPER, WATCHDOG };
    for (size_t i = 0; i < EP_COUNT (services); i++)
        if (s_metric (&s_services [services [i]], "edgeplane_model_view_digest52") != model)
            return zsys_sprintf ("%s's model view differs from the model (revision %.0f, model %llu)",
                                 s_services [services [i]].name,
                                 s_metric (&s_services [services [i]], "edgeplane_model_view_revision"),
                                 (unsigned long long) revision);
    return NULL;
}

//  ---------------------------------------------------------------------
//  Setup

static void
s_setup (void)
{
    //  Every listener on its own port below the ephemeral range, so a
    //  restarted service comes back where its clients reconnect.
    s_stack = ep_stack_new_with ("chaos", EP_STACK_STABLE);
    //  Deleted routers' sessions are forced closed after 5 s, not 15 (the
    //  reaper's setting: it starts after this).
    ep_stack_setenv (s_stack, "EDGEPLANE_CLEANUP_DEADLINE", "5s");
    ep_stack_export (s_stack);      //  for the CLI runs too
    s_keys = ep_stack_keys (s_stack);
    s_fleet = zsys_sprintf ("%s/fleet", ep_stack_dir (s_stack));
    s_channel = ep_stack_getenv (s_stack, "EDGEPLANE_CHANNEL_LISTEN");
    s_model_api = ep_stack_getenv (s_stack, "EDGEPLANE_MODEL_API");
    s_bus_sub = ep_stack_getenv (s_stack, "EDGEPLANE_BUS_SUB");
    s_logs = zlistx_new ();
    zlistx_set_destructor (s_logs, (czmq_destructor *) zstr_free);
    memset (&s_stats, 0, sizeof s_stats);
}

static void
s_teardown (void)
{
    s_writer_join ();
    zpoller_destroy (&s_poller);
    for (int i = 0; i < FOLLOWERS; i++) {
        ep_follower_destroy (&s_followers [i].follower);
        ep_model_view_destroy (&s_followers [i].view);
    }
    for (int i = 0; i < SUBSCRIBERS; i++) {
        ep_subscriber_destroy (&s_subs [i].sub);
        zhashx_destroy (&s_subs [i].last);
        zlistx_destroy (&s_subs [i].lost);
        zlistx_destroy (&s_subs [i].reported);
    }
    for (int r = 0; r < POOL_MAX; r++)
        ep_proc_destroy (&s_routers [r].agent);
    for (size_t i = 0; i < EP_COUNT (s_services); i++)
        s_services [i].proc = NULL;     //  the stack's: it stops them, last first
    ep_stack_destroy (&s_stack);
    ep_rpc_client_destroy (&s_modelc);
    zcert_destroy (&s_operator);
    zstr_free (&s_bus_key);
    zstr_free (&s_model_key);
    free (s_written);
    s_written = NULL;
    zlistx_destroy (&s_logs);
    zstr_free (&s_fleet);
}

static void
s_report_failure (void)
{
    for (char *log = (char *) zlistx_first (s_logs); log; log = (char *) zlistx_next (s_logs))
        fprintf (stderr, "%s\n", log);
    for (size_t i = 0; i < EP_COUNT (s_services); i++)
        if (s_services [i].proc) {
            char *log = ep_proc_log (s_services [i].proc);
            size_t len = log? strlen (log): 0;
            fprintf (stderr, "---- %s (running):\n%s\n", s_services [i].name, log? log + (len > 4000? len - 4000: 0): "");
            free (log);
        }
}

//  One turn of the background work: followers and subscribers pumped,
//  services that are due restarted.
static void
s_turn (void)
{
    //  Wait for input (briefly: timers are due too), so the loop does not
    //  take a core from the services.
    zpoller_wait (s_poller, 10);
    s_pump_followers ();
    s_pump_events ();
    for (size_t i = 0; i < EP_COUNT (s_services); i++)
        if (!s_services [i].proc && ep_mono_ms () >= s_services [i].restart_at)
            s_spawn (&s_services [i]);
}

Test (chaos, every_service_killed_at_random_under_load_and_the_oracle_holds,
      .init = s_setup, .fini = s_teardown, .timeout = 1800)
{
    const char *seed_text = getenv ("EDGEPLANE_CHAOS_SEED");
    uint64_t seed = seed_text? strtoull (seed_text, NULL, 10): (uint64_t) ep_wall_ms () ^ ((uint64_t) getpid () << 20);
    if (seed == 0)
        seed = 1;
    s_rng = seed;
    bool long_form = getenv ("EDGEPLANE_CHAOS_LONG") && atoi (getenv ("EDGEPLANE_CHAOS_LONG")) > 0;
    int seconds = long_form? 600: 60;
    if (getenv ("EDGEPLANE_CHAOS_SECONDS"))
        seconds = atoi (getenv ("EDGEPLANE_CHAOS_SECONDS"));
    s_pool = long_form || seconds > 120? POOL_LONG: POOL_SHORT;
    fprintf (stderr, "chaos: seed %llu, %d s of chaos (replay with EDGEPLANE_CHAOS_SEED=%llu)\n",
             (unsigned long long) seed, seconds, (unsigned long long) seed);
    int64_t test_start = ep_mono_ms ();

    //  The stack, in order (each waits for the ones before it); bus and
    //  model came up with it.
    for (size_t i = 0; i < EP_COUNT (s_services); i++) {
        s_services [i].proc = ep_stack_service (s_stack, s_services [i].name);
        if (!s_services [i].proc)
            s_spawn (&s_services [i]);
        cr_assert (ep_wait_until (s_up_cond, &s_services [i], 30000), "%s did not start",
                   s_services [i].name);
    }
    s_operator = ep_keys_load (s_keys, "operator");
    s_bus_key = ep_keys_public_txt (s_keys, "bus");
    s_model_key = ep_keys_public_txt (s_keys, "model");
    s_modelc = ep_rpc_client_new (s_model_api, s_operator, s_model_key);
    char err [512];
    for (int r = 0; r < s_pool; r++) {
        memset (&s_routers [r], 0, sizeof s_routers [r]);
        snprintf (s_routers [r].id, sizeof s_routers [r].id, "chaos-%d", r);
    }
    cr_assert_eq (ep_pki_issue_batch (s_keys, "router", "chaos-", s_pool, s_fleet, 30, err, sizeof err), 0,
                  "%s", err);
    for (int s = 0; s < HOSTABLE; s++) {
        char name [8];
        snprintf (name, sizeof name, "svc%d", s);
        Ep__Service service = EP__SERVICE__INIT;
        service.id = name;
        ep_entity_write_t write;
        Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
        request.op_case = EP__MODEL_REQUEST__OP_WRITE;
        request.write = ep_entity_write (&write, EP__MODEL_WRITE__OP__CREATE, EP__ENTITY__KIND_SERVICE, &service);
        Ep__ModelReply *reply = s_model_call (&request);
        cr_assert (reply && s_code (reply) == EP__STATUS__CODE__OK, "creating %s failed", name);
        ep__model_reply__free_unpacked (reply, NULL);
    }
    for (int i = 0; i < SUBSCRIBERS; i++) {
        s_subs [i].sub = ep_subscriber_new (s_bus_sub, s_operator, s_bus_key, EP_CODEC_DEFAULT_CAP, s_on_report,
                                            &s_subs [i]);
        ep_subscriber_subscribe (s_subs [i].sub, s_subs [i].prefix);
        //  Seqs are checked here, one by one: an outbox's resend has a seq
        //  of its own, so it is taken, not dropped as a duplicate id.
        ep_subscriber_set_dedupe (s_subs [i].sub, false);
        s_subs [i].last = zhashx_new ();
        zhashx_set_destructor (s_subs [i].last, (czmq_destructor *) zstr_free);
        s_subs [i].lost = zlistx_new ();
        zlistx_set_destructor (s_subs [i].lost, (czmq_destructor *) zstr_free);
        s_subs [i].reported = zlistx_new ();
        zlistx_set_destructor (s_subs [i].reported, (czmq_destructor *) zstr_free);
        cr_assert_eq (ep_subscriber_wait_stream (s_subs [i].sub, NULL, 10000), 0, "subscriber %d heard nothing", i);
    }
    for (int i = 0; i < FOLLOWERS; i++) {
        s_followers [i].view = ep_model_view_new ();
        s_followers [i].follower = ep_follower_new (s_bus_sub, s_model_api, s_operator, s_bus_key, s_model_key,
                                                    s_followers [i].view);
        ep_follower_set_rpc_timeout (s_followers [i].follower, 500);
    }
    s_poller = zpoller_new (NULL);
    for (int i = 0; i < FOLLOWERS; i++) {
        zpoller_add (s_poller, ep_follower_socket (s_followers [i].follower));
        zpoller_add (s_poller, ep_follower_rpc_socket (s_followers [i].follower));
    }
    for (int i = 0; i < SUBSCRIBERS; i++)
        zpoller_add (s_poller, ep_subscriber_socket (s_subs [i].sub));
    for (int r = 0; r < ROUTERS_MIN + 2; r++)
        s_router_action ();

    //  Chaos: the first five kills take every service once, in a random
    //  order; then any service.
    int order [5] = { 0, 1, 2, 3, 4 };
    for (int i = 4; i > 0; i--) {
        int j = ep_rand_pick (&s_rng, i + 1), t = order [i];
        order [i] = order [j];
        order [j] = t;
    }
    int kills = 0;
    int64_t end = ep_mono_ms () + (int64_t) seconds * 1000;
    int64_t next_kill = ep_mono_ms () + 2000 + ep_rand_pick (&s_rng, 3000);
    int64_t next_router = ep_mono_ms () + 1000;
    s_writer.client = ep_rpc_client_new (s_model_api, s_operator, s_model_key);
    s_writer.rng = seed ^ 0x9e3779b97f4a7c15ull;
    atomic_store (&s_writer.stop, false);
    cr_assert_eq (pthread_create (&s_writer_thread, NULL, s_writer_run, &s_writer), 0);
    s_writer_running = true;
    while (ep_mono_ms () < end) {
        s_turn ();
        int64_t now = ep_mono_ms ();
        if (now >= next_kill && s_all_up ()) {
            int which = kills < 5? order [kills]: ep_rand_pick (&s_rng, 5);
            //  Down from an instant to two seconds: the others notice, or not.
            s_kill (&s_services [which], ep_rand_pick (&s_rng, 2000));
            kills++;
            next_kill = ep_mono_ms () + 3000 + ep_rand_pick (&s_rng, 5000);
        }
        if (now >= next_router) {
            s_router_flush ();
            if (s_up (&s_services [MODEL]))
                s_router_action ();
            next_router = ep_mono_ms () + 500 + ep_rand_pick (&s_rng, 1500);
        }
        s_stop_agents (false);
    }
    //  Kills that came late in the window.
    while (kills < 5) {
        while (!s_all_up ())
            s_turn ();
        s_kill (&s_services [order [kills++]], ep_rand_pick (&s_rng, 2000));
    }

    //  The load stops; routers' writes in doubt are settled; the system
    //  settles.
    s_writer_join ();
    int64_t chaos_end = ep_mono_ms ();
    fprintf (stderr, "chaos: settling after %d kills\n", kills);
    int64_t deadline = ep_mono_ms () + SETTLE_MS;
    bool pending = true;
    while (pending && ep_mono_ms () < deadline) {
        s_turn ();
        pending = false;
        for (int r = 0; r < s_pool; r++)
            pending |= s_routers [r].pending != 0;
        if (pending && s_up (&s_services [MODEL]))
            s_router_flush ();
    }
    cr_assert (!pending, "router writes still unanswered after %d s", SETTLE_MS / 1000);
    s_stop_agents (true);
    char *followers = NULL, *terminators = NULL, *sessions = NULL;
    size_t terminators_checked = 0, sessions_checked = 0;
    int64_t next_check = 0, next_report = ep_mono_ms () + 10000;
    bool settled = false;
    while (!settled && ep_mono_ms () < deadline) {
        s_turn ();
        if (ep_mono_ms () < next_check || !s_all_up ())
            continue;
        zstr_free (&followers);
        zstr_free (&terminators);
        zstr_free (&sessions);
        terminators_checked = sessions_checked = 0;
        followers = s_followers_differ ();
        terminators = s_terminators_differ (&terminators_checked);
        sessions = s_sessions_differ (&sessions_checked);
        settled = !followers && !terminators && !sessions;
        next_check = ep_mono_ms () + 500;
        if (!settled && ep_mono_ms () >= next_report) {
            //  What is still unsettled, every 10 s: a slow settle says why.
            fprintf (stderr, "chaos: still settling: %s%s%s\n", followers? followers: "",
                     terminators? terminators: "", sessions? sessions: "");
            next_report = ep_mono_ms () + 10000;
        }
    }
    cr_assert (settled || followers || terminators || sessions, "services not all up after %d s", SETTLE_MS / 1000);
    //  Late events reach the subscribers.
    int64_t drain = ep_mono_ms () + 2500;
    while (ep_mono_ms () < drain)
        s_turn ();
    int64_t settled_ms = ep_mono_ms () - chaos_end;
    if (followers || terminators || sessions)
        s_report_failure ();
    cr_assert_null (followers, "followers: %s (seed %llu)", followers, (unsigned long long) seed);
    cr_assert_null (terminators, "terminators: %s (seed %llu)", terminators, (unsigned long long) seed);
    cr_assert_null (sessions, "sessions: %s (seed %llu)", sessions, (unsigned long long) seed);
    cr_assert_gt (terminators_checked, 0, "no terminator to check: the fleet hosts nothing");

    //  1. Every acknowledged write, read back from a fresh snapshot; and
    //  every write answered, resends after a model crash included.
    cr_assert_eq (s_writer.wrong, 0, "%llu writes answered wrongly, first: %s (seed %llu)",
                  (unsigned long long) s_writer.wrong, s_writer.wrong_first, (unsigned long long) seed);
    ep_model_view_t *model = ep_model_view_new ();
    ep_follower_t *reader = ep_follower_new (s_bus_sub, s_model_api, s_operator, s_bus_key, s_model_key, model);
    cr_assert_eq (ep_follower_sync (reader, 30000), 0, "no snapshot of the model");
    size_t writes_checked = 0;
    for (size_t i = 0; i < s_written_count; i++) {
        s_written_t *w = &s_written [i];
        if (!w->created)
            continue;
        const Ep__Entity *entity = ep_model_view_get (model, EP__ENTITY_TYPE__ENTITY_IDENTITY, w->id);
        cr_assert (entity && entity->identity && entity->identity->meta,
                   "acknowledged write of %s (revision %llu) is not in the model (seed %llu)", w->id,
                   (unsigned long long) w->acked_revision, (unsigned long long) seed);
        uint64_t version = entity->identity->meta->version;
        cr_assert_geq (version, w->acked_revision, "%s at version %llu, acknowledged at %llu (seed %llu)", w->id,
                       (unsigned long long) version, (unsigned long long) w->acked_revision,
                       (unsigned long long) seed);
        if (!w->in_doubt) {
            cr_assert_eq (version, w->acked_revision, "%s at version %llu, last written at %llu (seed %llu)",
                          w->id, (unsigned long long) version, (unsigned long long) w->acked_revision,
                          (unsigned long long) seed);
            cr_assert_str_eq (entity->identity->name, w->acked_name, "%s lost its acknowledged name (seed %llu)",
                              w->id, (unsigned long long) seed);
        }
        writes_checked++;
    }
    //  The routers as acknowledged.
    for (int r = 0; r < s_pool; r++) {
        s_router_t *router = &s_routers [r];
        const Ep__Entity *entity = ep_model_view_get (model, EP__ENTITY_TYPE__ENTITY_ROUTER, router->id);
        cr_assert_eq (entity != NULL, router->state == R_LIVE, "router %s %s the model (seed %llu)", router->id,
                      entity? "is still in": "is missing from", (unsigned long long) seed);
        if (entity) {
            bool hosts [HOSTABLE] = { false };
            for (size_t h = 0; h < entity->router->n_hosted; h++)
                hosts [atoi (entity->router->hosted [h]->service_id + 3)] = true;
            for (int s = 0; s < HOSTABLE; s++)
                cr_assert_eq (hosts [s], router->hosts [s], "router %s hosted list differs at svc%d (seed %llu)",
                              router->id, s, (unsigned long long) seed);
        }
        writes_checked += router->state != R_UNUSED;
    }
    ep_follower_destroy (&reader);
    ep_model_view_destroy (&model);

    //  2. No spin, counted or announced.
    double spins = s_metric (&s_services [TERMINATORS], "edgeplane_terminator_spins_total");
    cr_assert_eq (spins, 0, "spins counted by the terminators service (seed %llu)", (unsigned long long) seed);
    cr_assert_eq (s_stats.spin_events, 0, "terminator.spin events (seed %llu)", (unsigned long long) seed);

    //  4. Losses reported.
    char *first = NULL;
    uint64_t unreported = 0, derived = 0, reported = 0;
    for (int i = 0; i < SUBSCRIBERS; i++) {
        unreported += s_unreported (&s_subs [i], &first);
        derived += s_subs [i].derived;
        reported += s_subs [i].reported_count;
        cr_assert_gt (s_subs [i].events, 0, "subscriber \"%s\" delivered nothing", s_subs [i].prefix);
    }
    cr_assert_eq (unreported, 0, "%llu lost events not reported: %s (seed %llu)", (unsigned long long) unreported,
                  first, (unsigned long long) seed);
    uint64_t recovered = 0, episodes = 0, gaps = 0, catchups = 0, resyncs = 0;
    for (int i = 0; i < FOLLOWERS; i++) {
        s_follower_t *f = &s_followers [i];
        cr_assert_eq (f->unaccounted, 0, "follower %d applied revisions outside its stream without a fetch (seed %llu)",
                      i, (unsigned long long) seed);
        recovered += f->recovered;
        episodes += f->episodes;
        gaps += ep_follower_gaps (f->follower);
        catchups += ep_follower_catchups (f->follower);
        resyncs += ep_follower_resyncs (f->follower);
    }
    cr_assert_geq (s_services [BUS].kills + s_services [MODEL].kills + s_services [TERMINATORS].kills
                   + s_services [REAPER].kills + s_services [WATCHDOG].kills, 5);
    for (size_t i = 0; i < EP_COUNT (s_services); i++)
        cr_assert_gt (s_services [i].kills, 0, "%s was never killed", s_services [i].name);
    cr_assert_gt (s_writer.acked, 0);
    cr_assert_gt (s_stats.deletes, 0, "no router was deleted");

    fprintf (stderr, "chaos: seed %llu, %d s chaos + %.1f s settling (%.1f s in all); kills: bus %d, model %d, "
             "terminators %d, reaper %d, watchdog %d; writes checked %zu (%llu acknowledged, %llu on a resend, %llu unanswered; "
             "routers created %llu, deleted %llu, re-hosted %llu); terminators checked %zu; sessions of deleted "
             "routers checked %zu; events %llu, lost %llu (all reported, %llu gap reports); followers: %llu "
             "revisions streamed, %llu recovered in %llu fetches (gaps %llu, catch-ups %llu, resyncs %llu)\n",
             (unsigned long long) seed, seconds, settled_ms / 1000.0, (ep_mono_ms () - test_start) / 1000.0,
             s_services [BUS].kills, s_services [MODEL].kills, s_services [TERMINATORS].kills,
             s_services [REAPER].kills, s_services [WATCHDOG].kills, writes_checked,
             (unsigned long long) s_writer.acked, (unsigned long long) s_writer.resent,
             (unsigned long long) s_writer.unanswered,
             (unsigned long long) s_stats.creates, (unsigned long long) s_stats.deletes,
             (unsigned long long) s_stats.rehosts, terminators_checked, sessions_checked,
             (unsigned long long) s_stats.events, (unsigned long long) derived, (unsigned long long) reported,
             (unsigned long long) (s_followers [0].streamed + s_followers [1].streamed),
             (unsigned long long) recovered, (unsigned long long) episodes, (unsigned long long) gaps,
             (unsigned long long) catchups, (unsigned long long) resyncs);
    free (first);
}
