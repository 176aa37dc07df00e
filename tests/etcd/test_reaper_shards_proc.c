/*  test_reaper_shards_proc.c: edgeplane-reaper in the etcd mode, two real
    instances on the fixture cluster (a real bus and model from ep_stack),
    4 shards, a 5 s lease: issue #18 part 3's acceptance.

    20,000 sessions are opened on router r1 through the instance owning
    its shard (the other answers UNAVAILABLE, retriable, naming it); r1 is
    deleted in the model; the test plays r1 (a subscriber on cmd.r1. that
    acks the closes of even sessions, to whichever instance owns the
    shard). Once r1 has been sent some closes and the cleanup is not done,
    the owner is SIGKILLed. The survivor takes every shard within the
    lease, resumes the cleanup from etcd and finishes it: every session
    CLOSED, acknowledged (router-deleted) or forced, and none forced
    before the job's deadline; the odd ones (never acked) all forced. The
    commands carry the fence (shard_service "reaper", the owner revision). */
#include <criterion/criterion.h>
#include "ep_etcd_cluster.h"
#include "ep_stack.h"
#include "ep_codec.h"
#include "ep_keys.h"
#include "ep_rpc_client.h"
#include "ep_session_pages.h"
#include "ep_publisher.h"
#include "ep_subscriber.h"
#include "model.pb-c.h"
#include "sessions.pb-c.h"
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#define SHARDS      4
#define TTL_MS      5000
#define SESSIONS    20000
#define CALL_MS     5000

static ep_stack_t *s_stack;
static char *s_prefix;          //  this test's etcd prefix
static ep_proc_t *s_reapers [2];    //  the two instances
static volatile bool s_dead [2];    //  killed: not to be called
static char *s_key;             //  the reapers' public key
static zcert_t *s_watchdog;     //  we play the watchdog
static zcert_t *s_operator;     //  and read as an operator

static ep_proc_t *
s_start (int i)
{
    ep_stack_setenv (s_stack, "EDGEPLANE_DATA_DIR", "%s/r%d", ep_stack_dir (s_stack), i);
    const char *args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", "127.0.0.1:0",
                            "--cleanup-deadline", "20s", "--event-rate", "20000", NULL };
    ep_proc_t *proc = ep_proc_start ("edgeplane-reaper", args, ep_stack_env (s_stack), 20000);
    cr_assert_not_null (proc, "edgeplane-reaper %d did not start", i);
    return proc;
}

static double
s_owned (int i)
{
    if (s_dead [i])
        return 0;
    char *page = ep_http_get (ep_proc_endpoint (s_reapers [i], "http"), "/metrics");
    if (!page)
        return -1;
    double value = ep_metric_value (page, "edgeplane_reaper_shards_owned");
    free (page);
    return value;
}

static bool
s_split (void *arg)
{
    (void) arg;
    double a = s_owned (0), b = s_owned (1);
    return a > 0 && b > 0 && a + b == SHARDS;
}

static bool
s_survivor_owns_all (void *arg)
{
    return s_owned (*(int *) arg) == SHARDS;
}

//  A call to instance i as cert; the reply (caller frees) or NULL.
static Ep__SessionReply *
s_call (int i, zcert_t *cert, Ep__SessionRequest *request, int timeout_ms)
{
    if (s_dead [i])
        return NULL;
    ep_rpc_client_t *client = ep_rpc_client_new (ep_proc_connect_endpoint (s_reapers [i], "api"), cert, s_key);
    Ep__SessionReply *reply = ep_rpc_call (client, request, &ep__session_reply__descriptor, timeout_ms, 1,
                                           NULL, 0);
    ep_rpc_client_destroy (&client);
    return reply;
}

static Ep__Status__Code
s_code (const Ep__SessionReply *reply)
{
    return reply->status? reply->status->code: EP__STATUS__CODE__OK;
}

//  The instance owning router's shard: an empty heartbeat to each, one
//  answers OK, the other UNAVAILABLE, retriable, naming the owner.
static int
s_owner_of (const char *router)
{
    Ep__SessionHeartbeat heartbeat = EP__SESSION_HEARTBEAT__INIT;
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.router_id = (char *) router;
    request.op_case = EP__SESSION_REQUEST__OP_HEARTBEAT;
    request.heartbeat = &heartbeat;
    int owner = -1, refused = 0;
    for (int i = 0; i < 2; i++) {
        Ep__SessionReply *reply = s_call (i, s_watchdog, &request, CALL_MS);
        cr_assert_not_null (reply, "instance %d did not answer", i);
        if (s_code (reply) == EP__STATUS__CODE__OK)
            owner = i;
        else {
            cr_assert_eq (s_code (reply), EP__STATUS__CODE__UNAVAILABLE, "%s", reply->status->message);
            cr_assert (reply->has_retriable && reply->retriable);
            cr_assert (reply->owner && *reply->owner, "no owner named: %s", reply->status->message);
            refused++;
        }
        ep__session_reply__free_unpacked (reply, NULL);
    }
    cr_assert (owner >= 0 && refused == 1, "owner %d, refusals %d", owner, refused);
    return owner;
}

//  Opens count sessions "s-<n>" on router through instance i, pipelined
//  over one DEALER as the watchdog relays them.
static void
s_open_many (int i, const char *router, size_t count)
{
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    zsock_set_sndhwm (dealer, 0);
    zsock_set_rcvhwm (dealer, 0);
    cr_assert_eq (ep_curve_client (dealer, s_watchdog, s_key), 0);
    cr_assert_eq (zsock_connect (dealer, "%s", ep_proc_connect_endpoint (s_reapers [i], "api")), 0);
    size_t sent = 0, answered = 0;
    int64_t deadline = ep_mono_ms () + 60000;
    zpoller_t *poller = zpoller_new (dealer, NULL);
    while (answered < count) {
        while (sent < count && sent - answered < 2000) {
            char id [64], request_id [96];
            snprintf (id, sizeof id, "s-%06zu", sent);
            snprintf (request_id, sizeof request_id, "%s:open-%s", router, id);
            Ep__Session session = EP__SESSION__INIT;
            session.id = id;
            session.identity_id = "i1";
            session.service_id = "svc";
            session.has_type = true;
            session.type = EP__SESSION_TYPE__DIAL;
            Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
            request.request_id = request_id;
            request.router_id = (char *) router;
            request.op_case = EP__SESSION_REQUEST__OP_OPEN;
            request.open = &session;
            char err [256];
            zframe_t *frame = ep_codec_pack (&request.base, EP_CODEC_DEFAULT_CAP, err, sizeof err);
            cr_assert_not_null (frame, "%s", err);
            cr_assert_eq (zframe_send (&frame, dealer, 0), 0);
            sent++;
        }
        cr_assert (ep_mono_ms () < deadline, "opening took over a minute (%zu of %zu)", answered, count);
        if (!zpoller_wait (poller, 1000))
            continue;
        zframe_t *frame = zframe_recv (dealer);
        char err [256];
        Ep__SessionReply *reply = (Ep__SessionReply *) ep_codec_unpack_frame (
            &ep__session_reply__descriptor, frame, EP_CODEC_DEFAULT_CAP, "reaper", err, sizeof err);
        zframe_destroy (&frame);
        cr_assert_not_null (reply, "%s", err);
        cr_assert_eq (s_code (reply), EP__STATUS__CODE__OK, "%s", reply->status->message);
        ep__session_reply__free_unpacked (reply, NULL);
        answered++;
    }
    zpoller_destroy (&poller);
    zsock_destroy (&dealer);
}

static void
s_model_create (Ep__Entity__KindCase kind, const char *id)
{
    Ep__Router router = EP__ROUTER__INIT;
    Ep__Service service = EP__SERVICE__INIT;
    Ep__Identity identity = EP__IDENTITY__INIT;
    router.id = service.id = identity.id = (char *) id;
    void *entity = kind == EP__ENTITY__KIND_ROUTER? (void *) &router
                 : kind == EP__ENTITY__KIND_SERVICE? (void *) &service: (void *) &identity;
    ep_entity_write_t write;
    ep_stack_model_write (s_stack, ep_entity_write (&write, EP__MODEL_WRITE__OP__CREATE, kind, entity));
}

static uint64_t
s_delete_router (const char *id)
{
    Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
    write.has_op = write.has_type = true;
    write.op = EP__MODEL_WRITE__OP__DELETE;
    write.type = EP__ENTITY_TYPE__ENTITY_ROUTER;
    write.id = (char *) id;
    return ep_stack_model_write (s_stack, &write);
}

//  ---------------------------------------------------------------------
//  Our watchdog's presence: r1 online (closes go to online routers)

static volatile bool s_beacons_stop;

static void *
s_beacons_run (void *arg)
{
    (void) arg;
    char *bus_key = ep_keys_public_txt (ep_stack_keys (s_stack), "bus");
    ep_publisher_t *publisher = ep_publisher_new (ep_proc_connect_endpoint (ep_stack_bus (s_stack), "pub"),
                                                  s_watchdog, bus_key, "watchdog-test", EP_CODEC_DEFAULT_CAP);
    ep_publisher_declare (publisher, "presence");
    const char *routers [] = { "r1" };
    while (!s_beacons_stop) {
        Ep__PresenceEvent presence = EP__PRESENCE_EVENT__INIT;
        presence.instance_id = "watchdog-test";
        presence.has_instance_epoch = true;
        presence.instance_epoch = ep_publisher_epoch (publisher);
        presence.n_routers = 1;
        presence.routers = (char **) routers;
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

//  ---------------------------------------------------------------------
//  Router r1: acks the closes of even sessions to the shard's owner

typedef struct {
    pthread_mutex_t lock;       //  guards what follows
    zhashx_t *closes;           //  session ids sent a CloseSessions
    size_t commands;            //  CloseSessions received
    size_t unfenced;            //  commands without the reaper's fence
    volatile bool ready;        //  subscribed and live
    volatile bool stop;         //  ask the thread to end
    pthread_t thread;
} s_router_t;

static bool
s_even (const char *session)
{
    const char *dash = strrchr (session, '-');
    return dash && atol (dash + 1) % 2 == 0;
}

//  The ack to whichever instance takes it (one may be dead, or not own
//  the shard yet): lost during the takeover, the close is sent again.
static void
s_ack (const char *command_id, char **ids, size_t n)
{
    Ep__CommandAck ack = EP__COMMAND_ACK__INIT;
    ack.command_id = (char *) command_id;
    ack.n_session_ids = n;
    ack.session_ids = ids;
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.router_id = "r1";
    request.op_case = EP__SESSION_REQUEST__OP_ACK;
    request.ack = &ack;
    for (int i = 0; i < 2; i++) {
        Ep__SessionReply *reply = s_call (i, s_watchdog, &request, 2000);
        bool taken = reply && s_code (reply) == EP__STATUS__CODE__OK;
        if (reply)
            ep__session_reply__free_unpacked (reply, NULL);
        if (taken)
            return;
    }
}

static void *
s_router_run (void *arg)
{
    s_router_t *self = (s_router_t *) arg;
    zcert_t *cert = ep_keys_load (ep_stack_keys (s_stack), "subscriber");
    char *bus_key = ep_keys_public_txt (ep_stack_keys (s_stack), "bus");
    ep_subscriber_t *sub = ep_subscriber_new (ep_proc_connect_endpoint (ep_stack_bus (s_stack), "sub"), cert,
                                              bus_key, EP_CODEC_DEFAULT_CAP, NULL, NULL);
    ep_subscriber_subscribe (sub, "cmd.r1.");
    while (!self->stop && ep_subscriber_wait_stream (sub, "cmd", 200) != 0)
        ;
    self->ready = true;
    while (!self->stop) {
        Ep__Event *event = ep_subscriber_recv (sub, 50, NULL);
        if (!event || event->body_case != EP__EVENT__BODY_COMMAND
        ||  event->command->kind_case != EP__COMMAND__KIND_CLOSE_SESSIONS)
            continue;
        Ep__Command *command = event->command;
        size_t n = command->close_sessions->n_session_ids;
        char **ids = command->close_sessions->session_ids;
        char **acked = (char **) calloc (n + 1, sizeof (char *));
        size_t nacked = 0;
        pthread_mutex_lock (&self->lock);
        self->commands++;
        if (!command->shard_service || !streq (command->shard_service, "reaper")
        ||  !command->has_owner_revision || !command->owner_revision)
            self->unfenced++;
        for (size_t i = 0; i < n; i++) {
            zhashx_update (self->closes, ids [i], (void *) 1);
            if (s_even (ids [i]))
                acked [nacked++] = ids [i];
        }
        pthread_mutex_unlock (&self->lock);
        s_ack (command->command_id, acked, nacked);
        free (acked);
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

static size_t
s_router_closes (s_router_t *self)
{
    pthread_mutex_lock (&self->lock);
    size_t count = zhashx_size (self->closes);
    pthread_mutex_unlock (&self->lock);
    return count;
}

static bool
s_some_closes (void *arg)
{
    return s_router_closes ((s_router_t *) arg) >= 200;
}

//  ---------------------------------------------------------------------

static void
s_setup (void)
{
    const char *endpoints = ep_etcd_cluster_endpoints ();
    cr_assert (endpoints, "no etcd cluster: run this suite through ctest (fixture etcd_cluster)");
    s_stack = ep_stack_new ("reaper-shards-proc");
    s_prefix = ep_etcd_test_prefix ("reaper-proc");
    ep_stack_setenv (s_stack, "EDGEPLANE_REAPER_STORE", "etcd");
    ep_stack_setenv (s_stack, "EDGEPLANE_ETCD_ENDPOINTS", "%s", endpoints);
    ep_stack_setenv (s_stack, "EDGEPLANE_ETCD_PREFIX", "%s", s_prefix);
    ep_stack_setenv (s_stack, "EDGEPLANE_ETCD_MAX_TXN_OPS", "1000");
    ep_stack_setenv (s_stack, "EDGEPLANE_SHARDS", "%d", SHARDS);
    ep_stack_setenv (s_stack, "EDGEPLANE_REAPER_LEASE_TTL", "%dms", TTL_MS);
    s_watchdog = ep_keys_load (ep_stack_keys (s_stack), "watchdog");
    s_operator = ep_keys_load (ep_stack_keys (s_stack), "operator");
    s_key = ep_keys_public_txt (ep_stack_keys (s_stack), "reaper");
    for (int i = 0; i < 2; i++)
        s_reapers [i] = s_start (i);
}

//  The tail of instance i's log, on stderr (a failure's context).
static void
s_log_tail (int i)
{
    char *log = s_reapers [i]? ep_proc_log (s_reapers [i]): NULL;
    size_t size = log? strlen (log): 0;
    fprintf (stderr, "--- reaper %d, the end of its log:\n%s\n", i, log? log + (size > 6000? size - 6000: 0): "");
    free (log);
    char *page = s_reapers [i] && !s_dead [i]? ep_http_get (ep_proc_endpoint (s_reapers [i], "http"), "/metrics")
               : NULL;
    for (char *line = page? strtok (page, "\n"): NULL; line; line = strtok (NULL, "\n"))
        if (*line != '#' && (strstr (line, "reaper") || strstr (line, "sessions{") || strstr (line, "outbox")
                         ||  strstr (line, "shard") || strstr (line, "requests_total")))
            fprintf (stderr, "%s\n", line);
    free (page);
}

static void
s_teardown (void)
{
    if (getenv ("EP_TEST_LOGS"))
        for (int i = 0; i < 2; i++)
            s_log_tail (i);
    for (int i = 0; i < 2; i++)
        ep_proc_destroy (&s_reapers [i]);
    zcert_destroy (&s_watchdog);
    zcert_destroy (&s_operator);
    zstr_free (&s_key);
    zstr_free (&s_prefix);
    ep_stack_destroy (&s_stack);
}

//  The cleanup job of r1 as instance i holds it, once done, or NULL.
static Ep__SessionReply *
s_job_done (int i, uint64_t revision)
{
    Ep__CleanupQuery query = EP__CLEANUP_QUERY__INIT;
    query.router_id = "r1";
    query.has_min_revision = true;
    query.min_revision = revision;
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.op_case = EP__SESSION_REQUEST__OP_CLEANUP;
    request.cleanup = &query;
    Ep__SessionReply *reply = s_call (i, s_operator, &request, CALL_MS);
    if (reply && s_code (reply) == EP__STATUS__CODE__OK && reply->n_jobs && reply->jobs [0]->done)
        return reply;
    if (reply)
        ep__session_reply__free_unpacked (reply, NULL);
    return NULL;
}

typedef struct {
    int instance;               //  the survivor
    uint64_t revision;          //  the deletion's
    Ep__SessionReply *reply;    //  its job, done
} s_done_t;

static bool
s_done (void *arg)
{
    s_done_t *done = (s_done_t *) arg;
    done->reply = s_job_done (done->instance, done->revision);
    return done->reply != NULL;
}

typedef struct {
    int64_t deadline;           //  the job's deadline (wall ms)
    size_t acked, forced, other, early, odd_acked;
} s_outcome_t;

static void
s_tally (s_outcome_t *outcome, const Ep__Session *session)
{
    const char *reason = session->close_reason? session->close_reason: "";
    if (session->state != EP__SESSION_STATE__CLOSED)
        outcome->other++;
    else
    if (streq (reason, "router-deleted")) {
        outcome->acked++;
        outcome->odd_acked += !s_even (session->id);
    }
    else
    if (streq (reason, "forced")) {
        outcome->forced++;
        outcome->early += session->closed_at_ms < outcome->deadline;
    }
    else
        outcome->other++;
}

Test (reaper_shards_proc, a_reaper_killed_mid_cleanup_is_finished_by_its_successor,
      .init = s_setup, .fini = s_teardown, .timeout = 240)
{
    cr_assert (ep_wait_until (s_split, NULL, 20000), "the shards were not split: %g and %g",
               s_owned (0), s_owned (1));
    s_model_create (EP__ENTITY__KIND_SERVICE, "svc");
    s_model_create (EP__ENTITY__KIND_IDENTITY, "i1");
    s_model_create (EP__ENTITY__KIND_ROUTER, "r1");
    int owner = s_owner_of ("r1"), survivor = 1 - owner;
    pthread_t beacons;
    cr_assert_eq (pthread_create (&beacons, NULL, s_beacons_run, NULL), 0);
    //  Static: a failed assertion leaves the test with the thread running.
    static s_router_t router;
    pthread_mutex_init (&router.lock, NULL);
    router.closes = zhashx_new ();
    cr_assert_eq (pthread_create (&router.thread, NULL, s_router_run, &router), 0);
    cr_assert (ep_wait_until (s_router_ready, &router, 15000), "r1 never saw the cmd stream");

    int64_t started = ep_mono_ms ();
    s_open_many (owner, "r1", SESSIONS);
    fprintf (stderr, "opened %d sessions through instance %d in %lld ms\n", SESSIONS, owner,
             (long long) (ep_mono_ms () - started));

    //  r1 deleted: SIGKILL its shard's owner once the cleanup is under way.
    uint64_t revision = s_delete_router ("r1");
    cr_assert (ep_wait_until (s_some_closes, &router, 30000), "r1 was sent %zu closes",
               s_router_closes (&router));
    Ep__SessionReply *early = s_job_done (owner, revision);
    cr_assert_null (early, "the cleanup was done before the kill: the test did not test");
    cr_assert_eq (ep_proc_signal (s_reapers [owner], SIGKILL), 0);
    s_dead [owner] = true;
    int status = ep_proc_wait_exit (s_reapers [owner], 10000);
    cr_assert (status != -1 && WIFSIGNALED (status), "the owner did not die of SIGKILL");
    size_t before = s_router_closes (&router);
    fprintf (stderr, "killed instance %d after %zu of %d sessions were sent a close\n", owner, before,
             SESSIONS);

    //  The survivor takes every shard and finishes the cleanup.
    cr_assert (ep_wait_until (s_survivor_owns_all, &survivor, TTL_MS + 8000),
               "the survivor owns %g shards", s_owned (survivor));
    int64_t took_over = ep_wall_ms ();
    s_done_t done = { survivor, revision, NULL };
    cr_assert (ep_wait_until (s_done, &done, 120000), "the survivor did not finish the cleanup");
    Ep__CleanupJob *job = done.reply->jobs [0];
    cr_assert_str_eq (job->reason, "router-deleted");
    cr_assert_eq (job->scheduled, SESSIONS);

    //  Every session closed: acked, or forced at the deadline, never before.
    s_outcome_t outcome = { .deadline = job->deadline_ms };
    ep_session_pages_t *pages = ep_session_pages_new ("r1", 0);
    Ep__SessionRequest *request;
    while ((request = ep_session_pages_next (pages))) {
        Ep__SessionReply *reply = s_call (survivor, s_operator, request, CALL_MS);
        cr_assert_not_null (reply);
        cr_assert_eq (s_code (reply), EP__STATUS__CODE__OK, "%s", reply->status->message);
        for (size_t i = 0; i < reply->n_sessions; i++)
            s_tally (&outcome, reply->sessions [i]);
        ep_session_pages_took (pages, reply);
        ep__session_reply__free_unpacked (reply, NULL);
    }
    size_t listed = ep_session_pages_count (pages);
    ep_session_pages_destroy (&pages);
    fprintf (stderr, "survivor: %zu acked, %zu forced, %zu other\n", outcome.acked, outcome.forced,
             outcome.other);
    cr_assert_eq (listed, SESSIONS);
    cr_assert_eq (outcome.other, 0, "%zu sessions not closed as a cleanup closes", outcome.other);
    cr_assert_eq (outcome.acked + outcome.forced, SESSIONS);
    cr_assert_eq (outcome.odd_acked, 0);
    cr_assert_geq (outcome.forced, SESSIONS / 2, "every odd session is forced");
    cr_assert_eq (outcome.early, 0, "%zu forced before the deadline", outcome.early);
    //  Resent before the deadline, when the takeover left time for it (a
    //  loaded machine may take the shard too late: then all is forced).
    if (took_over + 5000 < job->deadline_ms)
        cr_assert_gt (s_router_closes (&router), before, "the survivor sent closes of its own");
    cr_assert_eq (router.unfenced, 0, "%zu commands without the reaper's fence", router.unfenced);
    ep__session_reply__free_unpacked (done.reply, NULL);
    router.stop = true;
    pthread_join (router.thread, NULL);
    s_beacons_stop = true;
    pthread_join (beacons, NULL);
    zhashx_destroy (&router.closes);
    pthread_mutex_destroy (&router.lock);
}
