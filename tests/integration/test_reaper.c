/*  test_reaper.c: the real edgeplane-reaper (with the bus and the model),
    driven by a client that plays the watchdog (a "watchdog" service
    certificate: opens, heartbeats, acks, presence beacons) and the routers
    (a subscriber on cmd.<router>. that answers commands).

    - A router holding many sessions is deleted; its router acks half of the
      closes and ignores the rest: every session is sent a CloseSessions,
      the acked ones end router-deleted, only the ignored ones end forced,
      none before the deadline, all within the deadline plus a small
      constant. The count is EDGEPLANE_TEST_SESSIONS (default 100000).
    - The reaper is SIGKILLed after some but not all session.terminating
      events; after a restart the cleanup completes.
    - A reaper restart does not reap live sessions; a router that goes
      silent has its sessions probed, then expired.
    - Adaptive liveness: a router beating every 2 s gets smaller thresholds
      than one beating every 10 s (the API, the CLI, the gauges), neither
      is reaped falsely, and each silent one is reaped within its own.
    - Roles: only the watchdog speaks for routers, subscribers read nothing.
    - End to end through the real edgeplane-watchdog and a TLS router:
      opens and heartbeats relayed, a deletion's closes delivered to the
      draining router, its acks relayed back.
    - The cleanup order end to end: a router agent hosting a critical and a
      normal service (the criticality from its model slice, in each open);
      deleted, its router is sent no normal session's close before the last
      critical one's.
*/
#include <criterion/criterion.h>
#include "ep_stack.h"
#include "chan_client.h"
#include "ep_codec.h"
#include "ep_keys.h"
#include "ep_pki_tls.h"
#include "ep_publisher.h"
#include "ep_rpc_client.h"
#include "ep_session_pages.h"
#include "ep_subscriber.h"
#include "agent.h"
#include "model.pb-c.h"
#include "sessions.pb-c.h"
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#define CALL_MS 10000

static ep_stack_t *s_stack;     //  keys, bus, model, environment
static const char *s_dir;       //  its data dir
static const char *s_keys;      //  its keys dir
static ep_proc_t *s_bus;        //  its bus
static ep_proc_t *s_reaper;
static char *s_reaper_listen;   //  a stable API address (restarts keep it)
static char *s_reaper_key;      //  the reaper's public key
static zcert_t *s_watchdog_cert;    //  we play the watchdog
static zcert_t *s_operator_cert;

static size_t
s_sessions (void)
{
    const char *text = getenv ("EDGEPLANE_TEST_SESSIONS");
    return text && atol (text) > 0? (size_t) atol (text): 100000;
}

//  ---------------------------------------------------------------------
//  Processes

static void
s_setup (void)
{
    s_stack = ep_stack_new ("reaper-it");
    s_dir = ep_stack_dir (s_stack);
    s_keys = ep_stack_keys (s_stack);
    s_bus = ep_stack_bus (s_stack);
    s_reaper_listen = zsys_sprintf ("tcp://127.0.0.1:%d", ep_test_stable_port ());
    s_reaper_key = ep_keys_public_txt (s_keys, "reaper");
    s_watchdog_cert = ep_keys_load (s_keys, "watchdog");
    s_operator_cert = ep_keys_load (s_keys, "operator");
}

static void
s_teardown (void)
{
    ep_proc_destroy (&s_reaper);
    ep_stack_destroy (&s_stack);
    zstr_free (&s_reaper_listen);
    zstr_free (&s_reaper_key);
    zcert_destroy (&s_watchdog_cert);
    zcert_destroy (&s_operator_cert);
}

//  Starts the reaper with extra arguments (NULL-terminated, may be NULL).
static void
s_reaper_start (const char *const *extra)
{
    const char *args [32] = { "--listen", s_reaper_listen, "--http-listen", "127.0.0.1:0" };
    size_t n = 4;
    for (size_t i = 0; extra && extra [i] && n < EP_COUNT (args) - 1; i++)
        args [n++] = extra [i];
    args [n] = NULL;
    s_reaper = ep_proc_start ("edgeplane-reaper", args, ep_stack_env (s_stack), 20000);
    cr_assert_not_null (s_reaper, "edgeplane-reaper did not start");
}

static void
s_reaper_kill (void)
{
    cr_assert_eq (ep_proc_signal (s_reaper, SIGKILL), 0);
    int status = ep_proc_wait_exit (s_reaper, 10000);
    cr_assert (status != -1 && WIFSIGNALED (status), "the reaper did not die of SIGKILL");
    ep_proc_destroy (&s_reaper);
}

static void
s_reaper_stop (void)
{
    cr_assert_eq (ep_proc_signal (s_reaper, SIGTERM), 0);
    int status = ep_proc_wait_exit (s_reaper, 10000);
    cr_assert (status != -1 && WIFEXITED (status) && WEXITSTATUS (status) == 0,
               "the reaper did not stop cleanly (status %d)", status);
    ep_proc_destroy (&s_reaper);
}

//  ---------------------------------------------------------------------
//  Model

static uint64_t
s_model_write (Ep__ModelWrite *write)
{
    return ep_stack_model_write (s_stack, write);
}

static void
s_create (Ep__EntityType type, const char *id)
{
    Ep__Router router = EP__ROUTER__INIT;
    Ep__Service service = EP__SERVICE__INIT;
    Ep__Identity identity = EP__IDENTITY__INIT;
    router.id = service.id = identity.id = (char *) id;
    ep_entity_write_t write;
    if (type == EP__ENTITY_TYPE__ENTITY_ROUTER)
        s_model_write (ep_entity_write (&write, EP__MODEL_WRITE__OP__CREATE, EP__ENTITY__KIND_ROUTER, &router));
    else
    if (type == EP__ENTITY_TYPE__ENTITY_SERVICE)
        s_model_write (ep_entity_write (&write, EP__MODEL_WRITE__OP__CREATE, EP__ENTITY__KIND_SERVICE, &service));
    else
        s_model_write (ep_entity_write (&write, EP__MODEL_WRITE__OP__CREATE, EP__ENTITY__KIND_IDENTITY, &identity));
}

static uint64_t
s_delete_router (const char *id)
{
    Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
    write.has_op = write.has_type = true;
    write.op = EP__MODEL_WRITE__OP__DELETE;
    write.type = EP__ENTITY_TYPE__ENTITY_ROUTER;
    write.id = (char *) id;
    return s_model_write (&write);
}

static void
s_model_fixture (void)
{
    s_create (EP__ENTITY_TYPE__ENTITY_SERVICE, "svc");
    s_create (EP__ENTITY_TYPE__ENTITY_IDENTITY, "i1");
    s_create (EP__ENTITY_TYPE__ENTITY_ROUTER, "r1");
    s_create (EP__ENTITY_TYPE__ENTITY_ROUTER, "r2");
}

//  ---------------------------------------------------------------------
//  The reaper's API

//  A call as cert; the reply (caller frees) or an assertion failure.
static Ep__SessionReply *
s_call (zcert_t *cert, Ep__SessionRequest *request, const char *request_id)
{
    ep_rpc_client_t *client = ep_rpc_client_new (s_reaper_listen, cert, s_reaper_key);
    char err [256];
    request->request_id = (char *) request_id;
    Ep__SessionReply *reply = ep_rpc_call (client, request, &ep__session_reply__descriptor, CALL_MS, 3,
                                           err, sizeof err);
    request->request_id = NULL;
    ep_rpc_client_destroy (&client);
    cr_assert_not_null (reply, "%s", err);
    return reply;
}

//  Opens count sessions "<prefix>-<n>" on router, pipelined over one
//  DEALER as the watchdog relays them (request ids "<router>:<id>").
static void
s_open_many (const char *prefix, size_t count, const char *router)
{
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    zsock_set_sndhwm (dealer, 0);
    zsock_set_rcvhwm (dealer, 0);
    cr_assert_eq (ep_curve_client (dealer, s_watchdog_cert, s_reaper_key), 0);
    cr_assert_eq (zsock_connect (dealer, "%s", s_reaper_listen), 0);
    size_t sent = 0, answered = 0;
    int64_t deadline = ep_mono_ms () + 120000;
    while (answered < count) {
        while (sent < count && sent - answered < 2000) {
            char id [64], request_id [96];
            snprintf (id, sizeof id, "%s-%06zu", prefix, sent);
            snprintf (request_id, sizeof request_id, "%s:open-%s", router, id);
            Ep__Session session = EP__SESSION__INIT;
            session.id = id;
            session.identity_id = "i1";
            session.service_id = "svc";
            session.has_type = true;
            session.type = sent % 2? EP__SESSION_TYPE__BIND: EP__SESSION_TYPE__DIAL;
            Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
            request.request_id = request_id;
            request.router_id = (char *) router;
            request.op_case = EP__SESSION_REQUEST__OP_OPEN;
            request.open = &session;
            char err [256];
            zframe_t *frame = ep_codec_pack (&request.base, EP_CODEC_DEFAULT_CAP, err, sizeof err);
            cr_assert_not_null (frame);
            cr_assert_eq (zframe_send (&frame, dealer, 0), 0);
            sent++;
        }
        zpoller_t *poller = zpoller_new (dealer, NULL);
        void *which = zpoller_wait (poller, 1000);
        zpoller_destroy (&poller);
        cr_assert (ep_mono_ms () < deadline, "opening took over 2 minutes (%zu of %zu)", answered, count);
        if (!which)
            continue;
        zframe_t *frame = zframe_recv (dealer);
        char err [256];
        Ep__SessionReply *reply = (Ep__SessionReply *) ep_codec_unpack_frame (
            &ep__session_reply__descriptor, frame, EP_CODEC_DEFAULT_CAP, "reaper", err, sizeof err);
        zframe_destroy (&frame);
        cr_assert_not_null (reply, "%s", err);
        cr_assert_eq (reply->status->code, EP__STATUS__CODE__OK, "%s", reply->status->message);
        ep__session_reply__free_unpacked (reply, NULL);
        answered++;
    }
    zsock_destroy (&dealer);
}

static void
s_heartbeat (const char *router, const char *prefix, size_t count)
{
    Ep__SessionHeartbeat__Entry *entries = (Ep__SessionHeartbeat__Entry *) calloc (count, sizeof *entries);
    Ep__SessionHeartbeat__Entry **pointers = (Ep__SessionHeartbeat__Entry **) calloc (count, sizeof *pointers);
    char (*ids) [64] = calloc (count, 64);
    for (size_t i = 0; i < count; i++) {
        ep__session_heartbeat__entry__init (&entries [i]);
        snprintf (ids [i], 64, "%s-%06zu", prefix, i);
        entries [i].id = ids [i];
        entries [i].has_bytes_rx = entries [i].has_bytes_tx = true;
        entries [i].bytes_rx = entries [i].bytes_tx = 1000 + i;
        pointers [i] = &entries [i];
    }
    Ep__SessionHeartbeat heartbeat = EP__SESSION_HEARTBEAT__INIT;
    heartbeat.n_entries = count;
    heartbeat.entries = pointers;
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.router_id = (char *) router;
    request.op_case = EP__SESSION_REQUEST__OP_HEARTBEAT;
    request.heartbeat = &heartbeat;
    Ep__SessionReply *reply = s_call (s_watchdog_cert, &request, NULL);
    cr_assert_eq (reply->status->code, EP__STATUS__CODE__OK, "%s", reply->status->message);
    cr_assert_eq (reply->n_unknown_ids, 0, "heartbeat: %zu unknown, first %s", reply->n_unknown_ids,
                  reply->n_unknown_ids? reply->unknown_ids [0]: "");
    ep__session_reply__free_unpacked (reply, NULL);
    free (ids);
    free (pointers);
    free (entries);
}

//  Calls fn for every session of router (state 0: any), page by page.
static size_t
s_list (const char *router, Ep__SessionState state, void (*fn) (void *, Ep__Session *), void *arg)
{
    ep_session_pages_t *pages = ep_session_pages_new (router, state);
    Ep__SessionRequest *request;
    while ((request = ep_session_pages_next (pages))) {
        Ep__SessionReply *reply = s_call (s_operator_cert, request, NULL);
        cr_assert_eq (reply->status->code, EP__STATUS__CODE__OK, "%s", reply->status->message);
        for (size_t i = 0; fn && i < reply->n_sessions; i++)
            fn (arg, reply->sessions [i]);
        ep_session_pages_took (pages, reply);
        ep__session_reply__free_unpacked (reply, NULL);
    }
    size_t count = ep_session_pages_count (pages);
    ep_session_pages_destroy (&pages);
    return count;
}

//  The newest cleanup job of router, once the reaper has seen revision
//  and the job is done (or NULL after timeout_ms). Caller frees the reply.
static Ep__SessionReply *
s_job_done (const char *router, uint64_t revision, int timeout_ms)
{
    int64_t deadline = ep_mono_ms () + timeout_ms;
    while (ep_mono_ms () < deadline) {
        Ep__CleanupQuery query = EP__CLEANUP_QUERY__INIT;
        query.router_id = (char *) router;
        query.has_min_revision = true;
        query.min_revision = revision;
        Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
        request.op_case = EP__SESSION_REQUEST__OP_CLEANUP;
        request.cleanup = &query;
        Ep__SessionReply *reply = s_call (s_operator_cert, &request, NULL);
        if (reply->status->code == EP__STATUS__CODE__OK && reply->n_jobs && reply->jobs [0]->done)
            return reply;
        cr_assert (reply->status->code == EP__STATUS__CODE__OK
                || reply->status->code == EP__STATUS__CODE__UNAVAILABLE, "%s", reply->status->message);
        ep__session_reply__free_unpacked (reply, NULL);
        zclock_sleep (100);     //  polling an API; the deadline decides
    }
    return NULL;
}

//  ---------------------------------------------------------------------
//  The watchdog's presence and the routers, in threads

typedef struct {
    const char *routers [4];    //  routers our watchdog holds (NULL-terminated)
    volatile bool stop;         //  ask the thread to end
    pthread_t thread;           //  the thread
} s_beacons_t;

static void *
s_beacons_run (void *arg)
{
    s_beacons_t *self = (s_beacons_t *) arg;
    char *bus_key = ep_keys_public_txt (s_keys, "bus");
    ep_publisher_t *publisher = ep_publisher_new (ep_proc_connect_endpoint (s_bus, "pub"), s_watchdog_cert,
                                                  bus_key, "watchdog-test", EP_CODEC_DEFAULT_CAP);
    ep_publisher_declare (publisher, "presence");
    size_t n = 0;
    while (self->routers [n])
        n++;
    while (!self->stop) {
        Ep__PresenceEvent presence = EP__PRESENCE_EVENT__INIT;
        presence.instance_id = "watchdog-test";
        presence.has_instance_epoch = true;
        presence.instance_epoch = ep_publisher_epoch (publisher);
        presence.n_routers = n;
        presence.routers = (char **) self->routers;
        Ep__Event event = EP__EVENT__INIT;
        event.body_case = EP__EVENT__BODY_PRESENCE;
        event.presence = &presence;
        ep_publisher_send (publisher, "presence.beacon", &event);
        ep_publisher_tick (publisher);
        zclock_sleep (200);     //  the beacon period, not a synchronisation
    }
    ep_publisher_destroy (&publisher);
    free (bus_key);
    return NULL;
}

static void
s_beacons_start (s_beacons_t *self)
{
    self->stop = false;
    cr_assert_eq (pthread_create (&self->thread, NULL, s_beacons_run, self), 0);
}

static void
s_beacons_stop (s_beacons_t *self)
{
    self->stop = true;
    pthread_join (self->thread, NULL);
}

//  A router answering its commands.
typedef struct {
    char id [65];               //  router id
    bool (*acks) (const char *session);  //  close: which sessions it closes
    bool answer_probes;         //  probe: answer with every id (alive)
    pthread_mutex_t lock;       //  guards what follows
    zhashx_t *closes;           //  session id -> first CloseSessions time (wall ms)
    zhashx_t *probes;           //  session id -> first ProbeSessions time (wall ms)
    size_t commands;            //  commands received
    volatile bool ready;        //  subscribed and live
    volatile bool stop;         //  ask the thread to end
    pthread_t thread;           //  the thread
} s_router_t;

static void
s_router_ack (s_router_t *self, const char *command_id, char **ids, size_t n)
{
    Ep__CommandAck ack = EP__COMMAND_ACK__INIT;
    ack.command_id = (char *) command_id;
    ack.n_session_ids = n;
    ack.session_ids = ids;
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.router_id = self->id;
    request.op_case = EP__SESSION_REQUEST__OP_ACK;
    request.ack = &ack;
    char request_id [160];
    snprintf (request_id, sizeof request_id, "%s:ack-%s", self->id, command_id);
    Ep__SessionReply *reply = s_call (s_watchdog_cert, &request, request_id);
    cr_assert_eq (reply->status->code, EP__STATUS__CODE__OK, "%s", reply->status->message);
    ep__session_reply__free_unpacked (reply, NULL);
}

static void *
s_router_run (void *arg)
{
    s_router_t *self = (s_router_t *) arg;
    zcert_t *cert = ep_keys_load (s_keys, "subscriber");
    char *bus_key = ep_keys_public_txt (s_keys, "bus");
    ep_subscriber_t *sub = ep_subscriber_new (ep_proc_connect_endpoint (s_bus, "sub"), cert, bus_key,
                                              EP_CODEC_DEFAULT_CAP, NULL, NULL);
    char topic [80];
    snprintf (topic, sizeof topic, "cmd.%s.", self->id);
    ep_subscriber_subscribe (sub, topic);
    //  The reaper declares the cmd stream: its heartbeat proves we get it.
    while (!self->stop && ep_subscriber_wait_stream (sub, "cmd", 200) != 0)
        ;
    self->ready = true;
    while (!self->stop) {
        Ep__Event *event = ep_subscriber_recv (sub, 50, NULL);
        if (!event)
            continue;
        if (event->body_case == EP__EVENT__BODY_COMMAND) {
            Ep__Command *command = event->command;
            bool probe = command->kind_case == EP__COMMAND__KIND_PROBE_SESSIONS;
            size_t n = probe? command->probe_sessions->n_session_ids: command->close_sessions->n_session_ids;
            char **ids = probe? command->probe_sessions->session_ids: command->close_sessions->session_ids;
            char **answer = (char **) calloc (n + 1, sizeof (char *));
            size_t answered = 0;
            int64_t now = ep_wall_ms ();
            pthread_mutex_lock (&self->lock);
            self->commands++;
            for (size_t i = 0; i < n; i++) {
                zhashx_t *seen = probe? self->probes: self->closes;
                if (!zhashx_lookup (seen, ids [i])) {
                    int64_t *at = (int64_t *) malloc (sizeof (int64_t));
                    *at = now;
                    zhashx_insert (seen, ids [i], at);
                }
                if (probe? self->answer_probes: (self->acks && self->acks (ids [i])))
                    answer [answered++] = ids [i];
            }
            pthread_mutex_unlock (&self->lock);
            if (!probe || self->answer_probes)
                s_router_ack (self, command->command_id, answer, answered);
            free (answer);
        }
    }
    ep_subscriber_destroy (&sub);
    free (bus_key);
    zcert_destroy (&cert);
    return NULL;
}

static bool
s_router_ready (void *arg)
{
    return ((s_router_t *) arg)->ready;
}

static void
s_router_start (s_router_t *self, const char *id, bool (*acks) (const char *), bool answer_probes)
{
    memset (self, 0, sizeof *self);
    snprintf (self->id, sizeof self->id, "%s", id);
    self->acks = acks;
    self->answer_probes = answer_probes;
    pthread_mutex_init (&self->lock, NULL);
    self->closes = zhashx_new ();
    zhashx_set_destructor (self->closes, (czmq_destructor *) zstr_free);
    self->probes = zhashx_new ();
    zhashx_set_destructor (self->probes, (czmq_destructor *) zstr_free);
    cr_assert_eq (pthread_create (&self->thread, NULL, s_router_run, self), 0);
    cr_assert (ep_wait_until (s_router_ready, self, 15000),
               "the router's subscription never saw the cmd stream");
}

static void
s_router_stop (s_router_t *self)
{
    self->stop = true;
    pthread_join (self->thread, NULL);
    zhashx_destroy (&self->closes);
    zhashx_destroy (&self->probes);
    pthread_mutex_destroy (&self->lock);
}

static size_t
s_router_count (s_router_t *self, bool probes)
{
    pthread_mutex_lock (&self->lock);
    size_t count = zhashx_size (probes? self->probes: self->closes);
    pthread_mutex_unlock (&self->lock);
    return count;
}

static bool
s_even (const char *session)
{
    const char *dash = strrchr (session, '-');
    return dash && atol (dash + 1) % 2 == 0;
}

//  ---------------------------------------------------------------------

typedef struct {
    int64_t deadline;           //  the job's deadline (wall ms)
    size_t acked;               //  closed router-deleted
    size_t forced;              //  closed forced
    size_t other;               //  anything else
    size_t early;               //  forced before the deadline
    int64_t last_closed;        //  the latest closed_at_ms
} s_outcome_t;

static void
s_tally (void *arg, Ep__Session *session)
{
    s_outcome_t *outcome = (s_outcome_t *) arg;
    cr_assert_eq (session->state, EP__SESSION_STATE__CLOSED, "%s is not closed", session->id);
    const char *reason = session->close_reason? session->close_reason: "";
    if (streq (reason, "router-deleted") && s_even (session->id))
        outcome->acked++;
    else
    if (streq (reason, "forced") && !s_even (session->id)) {
        outcome->forced++;
        if (session->closed_at_ms < outcome->deadline)
            outcome->early++;
    }
    else
        outcome->other++;
    if (session->closed_at_ms > outcome->last_closed)
        outcome->last_closed = session->closed_at_ms;
}

Test (reaper_it, a_deleted_router_acking_half_ends_acked_and_forced_on_time,
      .init = s_setup, .fini = s_teardown, .timeout = 280)
{
    size_t n = s_sessions ();
    const char *args [] = { "--cleanup-deadline", "8s", NULL };
    s_reaper_start (args);
    s_model_fixture ();
    //  Static: a failed assertion leaves the test with the threads running.
    static s_beacons_t beacons = { .routers = { "r1", NULL } };
    s_beacons_start (&beacons);
    static s_router_t router;
    s_router_start (&router, "r1", s_even, true);
    int64_t started = ep_mono_ms ();
    s_open_many ("s", n, "r1");
    fprintf (stderr, "opened %zu sessions in %lld ms\n", n, (long long) (ep_mono_ms () - started));
    cr_assert_eq (s_list ("r1", EP__SESSION_STATE__ACTIVE, NULL, NULL), n);

    int64_t deleted = ep_wall_ms ();
    uint64_t revision = s_delete_router ("r1");
    Ep__SessionReply *reply = s_job_done ("r1", revision, 120000);
    cr_assert_not_null (reply, "the cleanup did not finish in 2 minutes");
    Ep__CleanupJob *job = reply->jobs [0];
    fprintf (stderr, "cleanup of %zu sessions took %lld ms (deadline %lld ms after start)\n", n,
             (long long) (job->finished_at_ms - job->started_at_ms),
             (long long) (job->deadline_ms - job->started_at_ms));
    cr_assert_str_eq (job->reason, "router-deleted");
    cr_assert_eq (job->revision, revision);
    cr_assert_eq (job->scheduled, n);
    cr_assert_geq (job->started_at_ms, deleted - 1000);
    cr_assert_eq (job->n_closed, 2);

    //  The router was sent a CloseSessions for every session.
    cr_assert_eq (s_router_count (&router, false), n, "the router got closes for %zu of %zu",
                  s_router_count (&router, false), n);
    //  Acked ones router-deleted, ignored ones forced: not before the
    //  deadline, all within the deadline plus 2 s (forcing 50,000 takes
    //  longer under the sanitizers).
    s_outcome_t outcome = { .deadline = job->deadline_ms };
    cr_assert_eq (s_list ("r1", 0, s_tally, &outcome), n);
    cr_assert_eq (outcome.other, 0, "%zu sessions ended otherwise", outcome.other);
    cr_assert_eq (outcome.acked, (n + 1) / 2);
    cr_assert_eq (outcome.forced, n / 2);
    cr_assert_eq (outcome.early, 0, "%zu forced before the deadline", outcome.early);
    cr_assert_leq (outcome.last_closed, job->deadline_ms + 2000 * EP_TEST_SLOWDOWN,
                   "the last closed %lld ms after the deadline",
                   (long long) (outcome.last_closed - job->deadline_ms));
    ep__session_reply__free_unpacked (reply, NULL);

    char *metrics = ep_http_get (ep_proc_endpoint (s_reaper, "http"), "/metrics");
    cr_assert_not_null (metrics);
    cr_assert_eq (ep_metric_value (metrics, "edgeplane_sessions{state=\"active\"}"), 0, "%s", metrics);
    cr_assert_eq (ep_metric_value (metrics, "edgeplane_sessions{state=\"terminating\"}"), 0);
    cr_assert_eq (ep_metric_value (metrics, "edgeplane_sessions{state=\"closed\"}"), (double) n);
    cr_assert_eq (ep_metric_value (metrics, "edgeplane_reaper_cleanup_queue_depth"), 0);
    cr_assert_eq (ep_metric_value (metrics, "edgeplane_reaper_closed_total{reason=\"forced\"}"), (double) (n / 2));
    cr_assert_eq (ep_metric_value (metrics, "edgeplane_reaper_reap_latency_seconds_count{reason=\"router-deleted\"}"),
                  (double) ((n + 1) / 2));
    free (metrics);
    s_router_stop (&router);
    s_beacons_stop (&beacons);
}

Test (reaper_it, a_reaper_killed_mid_cleanup_completes_it_after_a_restart,
      .init = s_setup, .fini = s_teardown, .timeout = 280)
{
    size_t n = s_sessions () < 20000? s_sessions (): 20000;
    const char *args [] = { "--cleanup-deadline", "15s", "--mark-batch", "500", "--event-rate", "20000", NULL };
    s_reaper_start (args);
    s_model_fixture ();
    //  Static: a failed assertion leaves the test with the threads running.
    static s_beacons_t beacons = { .routers = { "r1", NULL } };
    s_beacons_start (&beacons);
    static s_router_t router;
    s_router_start (&router, "r1", s_even, true);
    s_open_many ("k", n, "r1");
    //  Count session.terminating as the reaper publishes them.
    zcert_t *cert = ep_keys_load (s_keys, "subscriber");
    char *bus_key = ep_keys_public_txt (s_keys, "bus");
    ep_subscriber_t *sub = ep_subscriber_new (ep_proc_connect_endpoint (s_bus, "sub"), cert, bus_key,
                                              EP_CODEC_DEFAULT_CAP, NULL, NULL);
    ep_subscriber_subscribe (sub, "session.terminating");
    cr_assert_eq (ep_subscriber_wait_stream (sub, "session", 10000), 0);
    uint64_t revision = s_delete_router ("r1");
    size_t seen = 0;
    int64_t deadline = ep_mono_ms () + 60000;
    while (seen == 0 && ep_mono_ms () < deadline) {
        Ep__Event *event = ep_subscriber_recv (sub, 100, NULL);
        if (event) {
            seen++;
        }
    }
    s_reaper_kill ();
    //  Whatever was already queued to us was published before the kill.
    Ep__Event *event;
    while ((event = ep_subscriber_recv (sub, 200, NULL))) {
        seen++;
    }
    fprintf (stderr, "killed after %zu of %zu session.terminating events\n", seen, n);
    cr_assert (seen >= 1 && seen <= n - 1, "killed after %zu of %zu events", seen, n);
    ep_subscriber_destroy (&sub);
    free (bus_key);
    zcert_destroy (&cert);

    s_reaper_start (args);
    Ep__SessionReply *reply = s_job_done ("r1", revision, 120000);
    cr_assert_not_null (reply, "the cleanup did not complete after the restart");
    cr_assert_eq (reply->jobs [0]->scheduled, n);
    uint64_t closed = 0;
    for (size_t i = 0; i < reply->jobs [0]->n_closed; i++)
        closed += reply->jobs [0]->closed [i]->count;
    cr_assert_eq (closed, n);
    ep__session_reply__free_unpacked (reply, NULL);
    cr_assert_eq (s_list ("r1", EP__SESSION_STATE__ACTIVE, NULL, NULL), 0);
    cr_assert_eq (s_list ("r1", EP__SESSION_STATE__TERMINATING, NULL, NULL), 0);
    cr_assert_eq (s_list ("r1", EP__SESSION_STATE__CLOSED, NULL, NULL), n);
    cr_assert_eq (s_router_count (&router, false), n, "every session was sent a close");
    s_router_stop (&router);
    s_beacons_stop (&beacons);
}

//  A quiet session after its router went silent at `silent`: probed at
//  least --evasive later, expired after the probe's answer time, reason
//  expired.
typedef struct {
    s_router_t *router;         //  who received the probes
    int64_t silent;             //  when the router went silent (wall ms)
    size_t checked;             //  sessions checked
} s_check_t;

static void
s_expired (void *arg, Ep__Session *session)
{
    s_check_t *check = (s_check_t *) arg;
    cr_assert_str_eq (session->close_reason, "expired");
    pthread_mutex_lock (&check->router->lock);
    int64_t *probed = (int64_t *) zhashx_lookup (check->router->probes, session->id);
    pthread_mutex_unlock (&check->router->lock);
    cr_assert_not_null (probed, "%s was not probed", session->id);
    //  (A few ms of slack: the two processes read the wall clock apart.)
    cr_assert_geq (*probed, check->silent + 1000 - 20, "probed %lld ms after silence",
                   (long long) (*probed - check->silent));
    cr_assert_geq (session->closed_at_ms, *probed + 2000 - 20, "expired %lld ms after its probe",
                   (long long) (session->closed_at_ms - *probed));
    cr_assert_geq (session->closed_at_ms, check->silent + 3000 - 20, "expired %lld ms after silence",
                   (long long) (session->closed_at_ms - check->silent));
    check->checked++;
}

Test (reaper_it, a_restart_spares_live_sessions_and_a_silent_router_is_probed_then_expired,
      .init = s_setup, .fini = s_teardown, .timeout = 120)
{
    enum { LIVE = 300, QUIET = 200 };
    //  Fixed thresholds: this asserts --evasive and --expire to the
    //  second (adaptive ones are adaptive_thresholds_follow_each_router's).
    const char *args [] = { "--evasive", "1s", "--expire", "3s", "--presence-timeout", "1s",
                            "--liveness", "fixed", NULL };
    s_reaper_start (args);
    s_model_fixture ();
    //  Static: a failed assertion leaves the test with the threads running.
    static s_beacons_t beacons = { .routers = { "r1", "r2", NULL } };
    s_beacons_start (&beacons);
    static s_router_t r1, r2;
    s_router_start (&r1, "r1", NULL, true);
    s_router_start (&r2, "r2", NULL, false);        //  r2 will not answer probes
    s_open_many ("live", LIVE, "r1");
    s_open_many ("quiet", QUIET, "r2");
    //  Both routers heartbeat every 300 ms, across a reaper restart.
    int64_t until = ep_mono_ms () + 2000;
    while (ep_mono_ms () < until) {
        s_heartbeat ("r1", "live", LIVE);
        s_heartbeat ("r2", "quiet", QUIET);
        zclock_sleep (300);     //  the heartbeat period, not a synchronisation
    }
    s_reaper_stop ();
    int64_t down = ep_mono_ms ();
    while (ep_mono_ms () < down + 4000)         //  down longer than --expire
        zclock_sleep (100);
    s_reaper_start (args);
    until = ep_mono_ms () + 7000;               //  > 2 x --expire after the restart
    int64_t last_r2 = 0;
    while (ep_mono_ms () < until) {
        s_heartbeat ("r1", "live", LIVE);
        s_heartbeat ("r2", "quiet", QUIET);
        last_r2 = ep_wall_ms ();
        zclock_sleep (300);
    }
    cr_assert_eq (s_list (NULL, EP__SESSION_STATE__ACTIVE, NULL, NULL), LIVE + QUIET,
                  "a restart must not reap live sessions");
    cr_assert_eq (s_router_count (&r1, true) + s_router_count (&r2, true), 0, "live sessions were probed");
    //  r2 goes silent (still online: its watchdog keeps beaconing).
    int64_t silent = last_r2;
    until = ep_mono_ms () + 8000;
    while (ep_mono_ms () < until && s_list ("r2", EP__SESSION_STATE__CLOSED, NULL, NULL) < QUIET) {
        s_heartbeat ("r1", "live", LIVE);
        zclock_sleep (300);
    }
    cr_assert_eq (s_list ("r2", EP__SESSION_STATE__CLOSED, NULL, NULL), QUIET, "r2's sessions did not expire");
    cr_assert_eq (s_router_count (&r2, true), QUIET, "every quiet session was probed first");
    cr_assert_eq (s_list ("r1", EP__SESSION_STATE__ACTIVE, NULL, NULL), LIVE);
    //  Each was probed (after --evasive), then expired (after --expire).
    s_check_t check = { &r2, silent, 0 };
    cr_assert_eq (s_list ("r2", 0, s_expired, &check), QUIET);
    cr_assert_eq (check.checked, QUIET);
    s_router_stop (&r1);
    s_router_stop (&r2);
    s_beacons_stop (&beacons);
}

Test (reaper_it, only_the_watchdog_speaks_for_routers, .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    s_reaper_start (NULL);
    Ep__Session session = EP__SESSION__INIT;
    session.id = "x";
    session.identity_id = "i1";
    session.service_id = "svc";
    session.has_type = true;
    session.type = EP__SESSION_TYPE__DIAL;
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.router_id = "r1";
    request.op_case = EP__SESSION_REQUEST__OP_OPEN;
    request.open = &session;
    Ep__SessionReply *reply = s_call (s_operator_cert, &request, NULL);
    cr_assert_eq (reply->status->code, EP__STATUS__CODE__PERMISSION_DENIED, "%d %s", reply->status->code,
                  reply->status->message);
    ep__session_reply__free_unpacked (reply, NULL);
    zcert_t *subscriber = ep_keys_load (s_keys, "subscriber");
    Ep__SessionFilter filter = EP__SESSION_FILTER__INIT;
    Ep__SessionRequest list = EP__SESSION_REQUEST__INIT;
    list.op_case = EP__SESSION_REQUEST__OP_LIST;
    list.list = &filter;
    reply = s_call (subscriber, &list, NULL);
    cr_assert_eq (reply->status->code, EP__STATUS__CODE__PERMISSION_DENIED);
    ep__session_reply__free_unpacked (reply, NULL);
    zcert_destroy (&subscriber);
    reply = s_call (s_watchdog_cert, &request, "r1:open-x");
    cr_assert_eq (reply->status->code, EP__STATUS__CODE__OK, "%s", reply->status->message);
    ep__session_reply__free_unpacked (reply, NULL);
    //  Garbage gets an answer, not silence.
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    cr_assert_eq (ep_curve_client (dealer, s_watchdog_cert, s_reaper_key), 0);
    cr_assert_eq (zsock_connect (dealer, "%s", s_reaper_listen), 0);
    zstr_send (dealer, "\x0a\xff\xff garbage");
    zsock_set_rcvtimeo (dealer, 5000);
    zframe_t *frame = zframe_recv (dealer);
    cr_assert_not_null (frame, "no answer to a malformed request");
    zframe_destroy (&frame);
    zsock_destroy (&dealer);
}

Test (reaper_it, end_to_end_through_the_real_watchdog, .init = s_setup, .fini = s_teardown, .timeout = 120)
{
    enum { N = 10 };
    signal (SIGPIPE, SIG_IGN);
    char err [512];
    cr_assert_eq (ep_pki_issue (s_keys, "router", "r1", s_dir, 30, err, sizeof err), 0, "%s", err);
    const char *args [] = { "--cleanup-deadline", "4s", NULL };
    s_reaper_start (args);
    s_model_fixture ();
    ep_stack_setenv (s_stack, "EDGEPLANE_REAPER_API", "%s", s_reaper_listen);
    ep_stack_setenv (s_stack, "EDGEPLANE_TERMINATORS_API", "tcp://127.0.0.1:1");
    const char *watchdog_args [] = { "--channel-listen", "127.0.0.1:0", "--listen", "tcp://127.0.0.1:*",
                                     "--http-listen", "127.0.0.1:0", "--drain-grace", "8s", NULL };
    ep_proc_t *watchdog = ep_proc_start ("edgeplane-watchdog", watchdog_args, ep_stack_env (s_stack), 15000);
    cr_assert_not_null (watchdog);
    char *cert = zsys_sprintf ("%s/r1.crt", s_dir), *key = zsys_sprintf ("%s/r1.key", s_dir);
    char *ca = zsys_sprintf ("%s/ca.crt", s_dir);
    SSL_CTX *ctx = ep_pki_client_ctx (cert, key, ca, err, sizeof err);
    cr_assert_not_null (ctx, "%s", err);
    chan_client_t *router = chan_client_new (ep_proc_endpoint (watchdog, "channel"), ctx, 5000, err, sizeof err);
    cr_assert_not_null (router, "%s", err);
    Ep__HelloResult *hello = chan_client_hello (router, 1, EP__ROLE__ROLE_ROUTER, "r1", 5000);
    cr_assert_not_null (hello);
    cr_assert_eq (hello->status->code, EP__STATUS__CODE__OK, "%s", hello->status->message);
    ep__hello_result__free_unpacked (hello, NULL);

    //  The router opens its sessions through the watchdog.
    for (uint64_t i = 0; i < N; i++) {
        char id [16], request_id [32];
        snprintf (id, sizeof id, "e-%02d", (int) i);
        snprintf (request_id, sizeof request_id, "open-%s", id);
        Ep__Session session = EP__SESSION__INIT;
        session.id = id;
        session.identity_id = "i1";
        session.service_id = "svc";
        session.has_type = true;
        session.type = EP__SESSION_TYPE__DIAL;
        Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
        request.request_id = request_id;
        request.op_case = EP__SESSION_REQUEST__OP_OPEN;
        request.open = &session;
        Ep__Frame frame = EP__FRAME__INIT;
        frame.has_id = true;
        frame.id = 100 + i;
        frame.body_case = EP__FRAME__BODY_SESSION_REQUEST;
        frame.session_request = &request;
        cr_assert_eq (chan_client_send (router, &frame, 5000), 0);
    }
    size_t opened = 0;
    int64_t deadline = ep_mono_ms () + 15000;
    while (opened < N && ep_mono_ms () < deadline) {
        Ep__Frame *frame = chan_client_recv (router, 200);
        if (frame && frame->body_case == EP__FRAME__BODY_SESSION_REPLY) {
            cr_assert_eq (frame->session_reply->status->code, EP__STATUS__CODE__OK, "%s",
                          frame->session_reply->status->message);
            cr_assert_eq (strncmp (frame->session_reply->request_id, "open-e-", 7), 0,
                          "the router sees its own request id: %s", frame->session_reply->request_id);
            opened++;
        }
        if (frame)
            ep__frame__free_unpacked (frame, NULL);
    }
    cr_assert_eq (opened, N, "%zu of %d opens answered through the watchdog", opened, N);
    cr_assert_eq (s_list ("r1", EP__SESSION_STATE__ACTIVE, NULL, NULL), N);

    //  Deleted: the watchdog drains the router, which still gets the
    //  reaper's closes and acks all but e-09.
    uint64_t revision = s_delete_router ("r1");
    size_t closes = 0;
    bool goodbye = false;
    deadline = ep_mono_ms () + 30000;
    Ep__SessionReply *reply = NULL;
    while (!reply && ep_mono_ms () < deadline && !chan_client_closed (router)) {
        Ep__Frame *frame = chan_client_recv (router, 200);
        if (frame && frame->body_case == EP__FRAME__BODY_GOODBYE)
            goodbye = true;
        if (frame && frame->body_case == EP__FRAME__BODY_COMMAND
        &&  frame->command->kind_case == EP__COMMAND__KIND_CLOSE_SESSIONS) {
            Ep__CloseSessions *close = frame->command->close_sessions;
            cr_assert_str_eq (close->reason, "router-deleted");
            char *closed [N];
            size_t n = 0;
            for (size_t i = 0; i < close->n_session_ids; i++)
                if (!streq (close->session_ids [i], "e-09") && n < N)
                    closed [n++] = close->session_ids [i];
            closes++;
            Ep__CommandAck ack = EP__COMMAND_ACK__INIT;
            ack.command_id = frame->command->command_id;
            ack.n_session_ids = n;
            ack.session_ids = closed;
            Ep__Frame answer = EP__FRAME__INIT;
            answer.body_case = EP__FRAME__BODY_COMMAND_ACK;
            answer.command_ack = &ack;
            cr_assert_eq (chan_client_send (router, &answer, 5000), 0);
        }
        if (frame)
            ep__frame__free_unpacked (frame, NULL);
        if (closes)
            reply = s_job_done ("r1", revision, 1);
    }
    if (!reply)
        reply = s_job_done ("r1", revision, 20000);
    cr_assert (goodbye, "the deleted router was not drained");
    cr_assert_gt (closes, 0, "no CloseSessions reached the router through the watchdog");
    cr_assert_not_null (reply, "the cleanup did not finish");
    Ep__CleanupJob *job = reply->jobs [0];
    cr_assert_eq (job->scheduled, N);
    if (job->n_closed != 2) {             //  what went wrong, for the reader
        char *log = ep_proc_log (watchdog);
        fprintf (stderr, "watchdog log:\n%s\n", log);
        free (log);
        log = ep_proc_log (s_reaper);
        fprintf (stderr, "reaper log:\n%s\n", log);
        free (log);
    }
    for (size_t i = 0; i < job->n_closed; i++)
        cr_assert_eq (job->closed [i]->count, streq (job->closed [i]->reason, "forced")? 1: N - 1,
                      "%s: %llu", job->closed [i]->reason, (unsigned long long) job->closed [i]->count);
    ep__session_reply__free_unpacked (reply, NULL);
    chan_client_destroy (&router);
    SSL_CTX_free (ctx);
    free (cert);
    free (key);
    free (ca);
    ep_proc_destroy (&watchdog);
}

//  ---------------------------------------------------------------------
//  Adaptive liveness

//  The reaper's liveness read of router (the reply; caller frees).
static Ep__RouterLiveness *
s_router_liveness (const char *router, Ep__SessionReply **reply)
{
    Ep__LivenessQuery query = EP__LIVENESS_QUERY__INIT;
    query.router_id = (char *) router;
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.op_case = EP__SESSION_REQUEST__OP_LIVENESS;
    request.liveness = &query;
    *reply = s_call (s_operator_cert, &request, NULL);
    cr_assert_eq ((*reply)->status->code, EP__STATUS__CODE__OK, "%s", (*reply)->status->message);
    cr_assert_eq ((*reply)->n_routers, 1);
    return (*reply)->routers [0];
}

//  `edgeplane session liveness --json`: router's object in its output.
static json_t *
s_cli_liveness (const char *router)
{
    char *cmd = zsys_sprintf ("EDGEPLANE_DATA_DIR='%s' EDGEPLANE_KEYS_DIR='%s' EDGEPLANE_REAPER_API='%s' "
                              "'%s/edgeplane' session liveness --json 2>&1", s_dir, s_keys, s_reaper_listen,
                              EP_BIN_DIR);
    char *out = NULL;
    int rc = ep_run (cmd, &out);
    cr_assert_eq (rc, 0, "`edgeplane session liveness` exited %d: %s", rc, out);
    json_error_t error;
    json_t *all = json_loads (out, 0, &error);
    cr_assert (json_is_array (all), "not a JSON list: %s", out);
    json_t *found = NULL, *item;
    size_t i;
    json_array_foreach (all, i, item)
        if (streq (json_string_value (json_object_get (item, "router_id")), router))
            found = json_incref (item);
    cr_assert_not_null (found, "%s is not in: %s", router, out);
    json_decref (all);
    free (out);
    free (cmd);
    return found;
}

static double
s_gauge (const char *name, const char *router)
{
    char series [160];
    snprintf (series, sizeof series, "%s{router=\"%s\"}", name, router);
    char *metrics = ep_http_get (ep_proc_endpoint (s_reaper, "http"), "/metrics");
    double value = metrics? ep_metric_value (metrics, series): -1;
    free (metrics);
    return value;
}

//  Every session of a silent router reaped expired within its own T2 of
//  its last heartbeat (sent at last, wall ms), never before.
typedef struct {
    int64_t last;               //  its last heartbeat was sent then (wall ms)
    int64_t expire;             //  its T2 as the reaper reported it (ms)
    size_t checked;             //  sessions checked
} s_reaped_t;

static void
s_reaped_within (void *arg, Ep__Session *session)
{
    s_reaped_t *check = (s_reaped_t *) arg;
    cr_assert_str_eq (session->close_reason, "expired", "%s", session->id);
    int64_t after = session->closed_at_ms - check->last;
    //  (A few ms of slack: the processes read the wall clock apart.)
    cr_assert_geq (after, check->expire - 20, "%s reaped %lld ms after its last heartbeat, its T2 is %lld",
                   session->id, (long long) after, (long long) check->expire);
    //  The look, the commit and the test's own polling.
    cr_assert_leq (after, check->expire + 1500 * EP_TEST_SLOWDOWN,
                   "%s reaped %lld ms after its last heartbeat, its T2 is %lld",
                   session->id, (long long) after, (long long) check->expire);
    check->checked++;
}

static bool
s_all_closed (void *arg)
{
    const char *router = (const char *) arg;
    return s_list (router, EP__SESSION_STATE__ACTIVE, NULL, NULL) == 0;
}

//  A router beating every 2 s and one every 10 s (the periods of the
//  issue), the estimator configured small to learn within the test:
//  2 intervals (--liveness-samples 2), a window of 8, a floor of 1 s. The
//  fixed T1 (20 s) and T2 (22 s) hold until then; learnt T2 is T1 x 1.1.
//  About 55 s in all: 20 s of beats, then the slow router's T2 (~27 s).
Test (reaper_it, adaptive_thresholds_follow_each_router, .init = s_setup, .fini = s_teardown, .timeout = 180)
{
    enum { N = 20 };
    const char *args [] = { "--evasive", "20s", "--expire", "22s", "--presence-timeout", "1s",
                            "--liveness-floor", "1s", "--liveness-samples", "2", "--liveness-window", "8",
                            NULL };
    s_reaper_start (args);
    s_model_fixture ();
    static s_beacons_t beacons = { .routers = { "r1", "r2", NULL } };
    s_beacons_start (&beacons);
    static s_router_t r1, r2;                       //  neither answers probes
    s_router_start (&r1, "r1", NULL, false);
    s_router_start (&r2, "r2", NULL, false);
    s_open_many ("fast", N, "r1");
    s_open_many ("slow", N, "r2");
    //  r1 beats every 2 s, r2 every 10 s, for 20 s: 10 and 2 intervals.
    int64_t start = ep_mono_ms (), last_r1 = 0, last_r2 = 0;
    for (int64_t t = 0; t <= 20000; t += 2000) {
        int64_t due = start + t;
        while (ep_mono_ms () < due)
            zclock_sleep ((int) (due - ep_mono_ms ()));     //  the heartbeat period, not a synchronisation
        last_r1 = ep_wall_ms ();
        s_heartbeat ("r1", "fast", N);
        if (t % 10000 == 0) {
            last_r2 = ep_wall_ms ();
            s_heartbeat ("r2", "slow", N);
        }
    }
    cr_assert_eq (s_list (NULL, EP__SESSION_STATE__CLOSED, NULL, NULL), 0, "a heartbeating session was reaped");
    cr_assert_eq (s_router_count (&r1, true) + s_router_count (&r2, true), 0, "a heartbeating session was probed");
    Ep__SessionReply *fast_reply, *slow_reply;
    Ep__RouterLiveness *fast = s_router_liveness ("r1", &fast_reply);
    Ep__RouterLiveness *slow = s_router_liveness ("r2", &slow_reply);
    fprintf (stderr, "r1: T1 %lld T2 %lld (p99 %lld, %u intervals); r2: T1 %lld T2 %lld (p99 %lld, %u intervals)\n",
             (long long) fast->evasive_ms, (long long) fast->expire_ms, (long long) fast->interval_ms,
             fast->samples, (long long) slow->evasive_ms, (long long) slow->expire_ms,
             (long long) slow->interval_ms, slow->samples);
    cr_assert (fast->learnt && slow->learnt, "not learnt: r1 %d, r2 %d", fast->learnt, slow->learnt);
    cr_assert_eq (fast->samples, 8, "r1: %u intervals (a window of 8)", fast->samples);
    cr_assert_eq (slow->samples, 2);
    cr_assert_lt (fast->evasive_ms, slow->evasive_ms);
    cr_assert_lt (fast->expire_ms, slow->expire_ms);
    cr_assert (fast->evasive_ms < 20000 && fast->expire_ms > fast->evasive_ms, "r1's T1 is not learnt");
    cr_assert_eq (fast->sessions, N);
    cr_assert (fast->online && slow->online);
    //  The CLI and the gauges say the same.
    json_t *cli = s_cli_liveness ("r2");
    cr_assert_eq (json_integer_value (json_object_get (cli, "evasive_ms")), slow->evasive_ms);
    cr_assert_eq (json_integer_value (json_object_get (cli, "expire_ms")), slow->expire_ms);
    cr_assert (json_is_true (json_object_get (cli, "learnt")));
    json_decref (cli);
    cr_assert_eq (s_gauge ("edgeplane_reaper_session_evasive_seconds", "r1"), fast->evasive_ms / 1000.0);
    cr_assert_eq (s_gauge ("edgeplane_reaper_session_expire_seconds", "r2"), slow->expire_ms / 1000.0);
    //  Both are silent from here (still online): each is reaped within its
    //  own T2, r1's long before r2's.
    s_reaped_t fast_check = { last_r1, fast->expire_ms, 0 }, slow_check = { last_r2, slow->expire_ms, 0 };
    int64_t fast_wait = last_r1 + fast->expire_ms + 3000 * EP_TEST_SLOWDOWN - ep_wall_ms ();
    cr_assert (ep_wait_until (s_all_closed, "r1", (int) (fast_wait > 0? fast_wait: 1)),
               "r1's sessions not reaped within its T2 (%lld ms)", (long long) fast->expire_ms);
    cr_assert_eq (s_list ("r2", EP__SESSION_STATE__CLOSED, NULL, NULL), 0, "r2 was judged by r1's thresholds");
    int64_t slow_wait = last_r2 + slow->expire_ms + 3000 * EP_TEST_SLOWDOWN - ep_wall_ms ();
    cr_assert (ep_wait_until (s_all_closed, "r2", (int) (slow_wait > 0? slow_wait: 1)),
               "r2's sessions not reaped within its T2 (%lld ms)", (long long) slow->expire_ms);
    cr_assert_eq (s_list ("r1", 0, s_reaped_within, &fast_check), N);
    cr_assert_eq (s_list ("r2", 0, s_reaped_within, &slow_check), N);
    cr_assert_eq (fast_check.checked + slow_check.checked, 2 * N);
    cr_assert_eq (s_router_count (&r1, true), N, "every r1 session was probed first");
    cr_assert_eq (s_router_count (&r2, true), N, "every r2 session was probed first");
    ep__session_reply__free_unpacked (fast_reply, NULL);
    ep__session_reply__free_unpacked (slow_reply, NULL);
    s_router_stop (&r1);
    s_router_stop (&r2);
    s_beacons_stop (&beacons);
}

//  The cleanup order, end to end

//  One router agent, run in a thread (its own loop, as edgeplane-router's).
typedef struct {
    agent_t *agent;             //  the router
    volatile bool stop;         //  ask the thread to end
    pthread_t thread;           //  the thread
} s_agent_run_t;

static void *
s_agent_run (void *arg)
{
    s_agent_run_t *self = (s_agent_run_t *) arg;
    while (!self->stop) {
        struct pollfd fd = { .fd = agent_fd (self->agent), .events = POLLIN };
        if (poll (&fd, fd.fd >= 0? 1: 0, 20) > 0 && fd.revents)
            agent_handle (self->agent);
        agent_tick (self->agent);
    }
    return NULL;
}

//  The sessions of r1 as the reaper shows them: id -> its service and
//  criticality ("pay critical").
static void
s_collect (void *arg, Ep__Session *session)
{
    const char *names [] = { "normal", "low", "high", "critical" };
    int criticality = (int) session->criticality;
    zhashx_update ((zhashx_t *) arg, session->id,
                   zsys_sprintf ("%s %s", session->service_id? session->service_id: "-",
                                 criticality >= 0 && criticality < 4? names [criticality]: "?"));
}

//  The CloseSessions the reaper published, as they come off the bus: each
//  session's first, in order.
typedef struct {
    zlistx_t *order;            //  session ids, in the order first sent a close
    zhashx_t *sent;             //  id -> the command (1-based) that first carried it
    size_t commands;            //  CloseSessions seen (resends included)
} s_closes_t;

//  Records what sub holds, waiting up to timeout_ms for each event.
static void
s_record (ep_subscriber_t *sub, s_closes_t *closes, int timeout_ms)
{
    Ep__Event *event;
    while ((event = ep_subscriber_recv (sub, timeout_ms, NULL))) {
        if (event->body_case != EP__EVENT__BODY_COMMAND
        ||  event->command->kind_case != EP__COMMAND__KIND_CLOSE_SESSIONS)
            continue;
        Ep__CloseSessions *close = event->command->close_sessions;
        closes->commands++;
        for (size_t i = 0; i < close->n_session_ids; i++)
            if (!zhashx_lookup (closes->sent, close->session_ids [i])) {
                zhashx_insert (closes->sent, close->session_ids [i], (void *) (uintptr_t) closes->commands);
                zlistx_add_end (closes->order, strdup (close->session_ids [i]));
            }
    }
}

static bool
s_all_open (void *arg)
{
    return s_list ("r1", EP__SESSION_STATE__ACTIVE, NULL, NULL) == *(size_t *) arg;
}

Test (reaper_it, a_deleted_routers_critical_sessions_are_closed_before_its_normal_ones,
      .init = s_setup, .fini = s_teardown, .timeout = 240)
{
    size_t n = 40;
    signal (SIGPIPE, SIG_IGN);
    char err [512];
    cr_assert_eq (ep_pki_issue (s_keys, "router", "r1", s_dir, 30, err, sizeof err), 0, "%s", err);
    //  Small commands, two unanswered at a time, marked four at a time: the
    //  order is decided again at every step, not once.
    const char *args [] = { "--cleanup-deadline", "60s", "--close-chunk", "3", "--close-window", "2",
                            "--mark-batch", "4", NULL };
    s_reaper_start (args);
    Ep__Service pay = EP__SERVICE__INIT;
    pay.id = "pay";
    pay.has_criticality = true;
    pay.criticality = EP__CRITICALITY__CRITICALITY_CRITICAL;
    ep_entity_write_t write;
    s_model_write (ep_entity_write (&write, EP__MODEL_WRITE__OP__CREATE, EP__ENTITY__KIND_SERVICE, &pay));
    s_create (EP__ENTITY_TYPE__ENTITY_SERVICE, "web");          //  normal: not said
    s_create (EP__ENTITY_TYPE__ENTITY_IDENTITY, "id-r1");       //  the agent's client
    const char *hosted [] = { "pay", "web" };
    ep_stack_router_write (s_stack, EP__MODEL_WRITE__OP__CREATE, "r1", hosted, 2);
    ep_stack_setenv (s_stack, "EDGEPLANE_REAPER_API", "%s", s_reaper_listen);
    ep_stack_setenv (s_stack, "EDGEPLANE_TERMINATORS_API", "tcp://127.0.0.1:1");
    const char *watchdog_args [] = { "--channel-listen", "127.0.0.1:0", "--listen", "tcp://127.0.0.1:*",
                                     "--http-listen", "127.0.0.1:0", "--drain-grace", "60s", NULL };
    ep_proc_t *watchdog = ep_proc_start ("edgeplane-watchdog", watchdog_args, ep_stack_env (s_stack),
                                         15000 * EP_TEST_SLOWDOWN);
    cr_assert_not_null (watchdog);
    ep_stack_keep (s_stack, watchdog);

    //  What the reaper publishes to r1, in order, as the watchdog gets it.
    zcert_t *sub_cert = ep_keys_load (s_keys, "subscriber");
    char *bus_key = ep_keys_public_txt (s_keys, "bus");
    ep_subscriber_t *sub = ep_subscriber_new (ep_proc_connect_endpoint (s_bus, "sub"), sub_cert, bus_key,
                                              EP_CODEC_DEFAULT_CAP, NULL, NULL);
    ep_subscriber_subscribe (sub, "cmd.r1.");
    cr_assert_eq (ep_subscriber_wait_stream (sub, "cmd", 15000 * EP_TEST_SLOWDOWN), 0,
                  "no heartbeat of the reaper's cmd stream");

    char *cert = zsys_sprintf ("%s/r1.crt", s_dir), *key = zsys_sprintf ("%s/r1.key", s_dir);
    char *ca = zsys_sprintf ("%s/ca.crt", s_dir);
    SSL_CTX *ctx = ep_pki_client_ctx (cert, key, ca, err, sizeof err);
    cr_assert_not_null (ctx, "%s", err);
    agent_config_t config = { .id = "r1", .ctx = ctx, .controller = ep_proc_connect_endpoint (watchdog, "channel"),
                              .sessions = (int) n, .ack_share = 1, .heartbeat_ms = 500,
                              .backoff_base_ms = 100, .backoff_max_ms = 1000, .request_timeout_ms = 2000 };
    //  Static: a failed assertion leaves the test with the thread running.
    static s_agent_run_t run;
    run.agent = agent_new (&config);
    run.stop = false;
    cr_assert_eq (pthread_create (&run.thread, NULL, s_agent_run, &run), 0);
    cr_assert (ep_wait_until (s_all_open, &n, 30000 * EP_TEST_SLOWDOWN),
               "the agent's %zu sessions did not all reach the reaper", n);

    //  Each session says its service's criticality, from the agent's slice.
    zhashx_t *sessions = zhashx_new ();
    zhashx_set_destructor (sessions, (czmq_destructor *) zstr_free);
    cr_assert_eq (s_list ("r1", EP__SESSION_STATE__ACTIVE, s_collect, sessions), n);
    size_t critical = 0, normal = 0;
    for (char *what = (char *) zhashx_first (sessions); what; what = (char *) zhashx_next (sessions)) {
        cr_assert (streq (what, "pay critical") || streq (what, "web normal"), "%s: %s",
                   (char *) zhashx_cursor (sessions), what);
        critical += streq (what, "pay critical");
        normal += streq (what, "web normal");
    }
    cr_assert (critical > 0 && normal > 0, "the agent spread %zu sessions as %zu critical, %zu normal",
               n, critical, normal);

    uint64_t revision = s_delete_router ("r1");
    s_closes_t closes = { zlistx_new (), zhashx_new (), 0 };
    zlistx_set_destructor (closes.order, (czmq_destructor *) zstr_free);
    Ep__SessionReply *reply = NULL;
    int64_t deadline = ep_mono_ms () + 60000 * EP_TEST_SLOWDOWN;
    while (!reply && ep_mono_ms () < deadline) {
        s_record (sub, &closes, 50);
        reply = s_job_done ("r1", revision, 1);
    }
    cr_assert_not_null (reply, "the cleanup of r1 did not finish");
    s_record (sub, &closes, 200);               //  what the bus still holds for us
    run.stop = true;
    pthread_join (run.thread, NULL);

    zlistx_t *order = closes.order;
    cr_assert_eq (zlistx_size (order), n, "%zu of %zu sessions were sent a close", zlistx_size (order), n);
    size_t position = 0, last_critical = 0, first_normal = SIZE_MAX;
    uintptr_t last_critical_command = 0, first_normal_command = UINTPTR_MAX;
    char *trace = NULL;
    size_t trace_size = 0;
    FILE *out = open_memstream (&trace, &trace_size);
    for (char *id = (char *) zlistx_first (order); id; id = (char *) zlistx_next (order), position++) {
        const char *what = (const char *) zhashx_lookup (sessions, id);
        cr_assert_not_null (what, "a close for %s, which r1 did not hold", id);
        uintptr_t command = (uintptr_t) zhashx_lookup (closes.sent, id);
        fprintf (out, " %s(%s#%lu)", id, strchr (what, ' ') + 1, (unsigned long) command);
        if (streq (what, "pay critical")) {
            last_critical = position;
            last_critical_command = command;
        }
        else
        if (first_normal == SIZE_MAX) {
            first_normal = position;
            first_normal_command = command;
        }
    }
    fclose (out);
    cr_assert_lt (last_critical, first_normal, "a normal session was sent a close before a critical one:%s",
                  trace);
    cr_assert_leq (last_critical_command, first_normal_command, "%s", trace);
    cr_assert_geq (closes.commands, n / 3, "fewer commands than --close-chunk 3 makes: %zu", closes.commands);
    free (trace);
    ep__session_reply__free_unpacked (reply, NULL);
    zlistx_destroy (&closes.order);
    zhashx_destroy (&closes.sent);
    zhashx_destroy (&sessions);
    agent_destroy (&run.agent);
    SSL_CTX_free (ctx);
    ep_subscriber_destroy (&sub);
    free (bus_key);
    zcert_destroy (&sub_cert);
    free (cert);
    free (key);
    free (ca);
}
