/*  reaper_bench.c: sessions reaped per second for one router deletion, and
    memory per tracked session, for the real edgeplane-reaper.

    Each repetition starts a fresh bus, model and reaper (CURVE on every
    socket, as deployed), creates a router, and plays the watchdog and the
    router: it opens N sessions on the router (pipelined, as the watchdog
    relays them), beacons the router's presence, and answers every
    CloseSessions at once with an ack naming all its sessions. Then it
    deletes the router in the model and times the cleanup job from its
    start to its end as the reaper records them (mark TERMINATING in
    batches, CloseSessions in chunks, acks, closes), and from the model's
    reply to the moment the job is seen done.

    Memory per tracked session, two ways: the reaper process's resident set
    after the N opens (and their events) minus before, over N, which also
    counts SQLite's page cache and heap the allocator keeps; and the heap
    the state machine itself holds per open session (reaper.c linked in
    here, mallinfo2 before and after N opens over a real store).

    The anchor: OpenZiti's eventual cleanup deletes sessions in batches of
    1,000 every 2 seconds, 500 sessions/s (about 200 s for 100,000).

    Prints one JSON object on stdout; progress goes to stderr.
*/
#include "ep_prelude.h"
#include "ep_codec.h"
#include "ep_config.h"
#include "ep_keys.h"
#include "ep_publisher.h"
#include "ep_rpc_client.h"
#include "ep_subscriber.h"
#include "ep_test.h"
#include "bench_util.h"
#include "reaper.h"
#include "sessiondb.h"
#include "model.pb-c.h"
#include "sessions.pb-c.h"
#include <jansson.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sys/utsname.h>

#define ANCHOR_PER_S    500.0       //  OpenZiti: 1,000 sessions every 2 s
#define WINDOW          2000        //  opens in flight

//  One repetition's processes and identities.
typedef struct {
    char *dir;                  //  data dir
    char *keys;                 //  keys dir
    ep_proc_t *bus;
    ep_proc_t *model;
    ep_proc_t *reaper;
    const char *reaper_api;     //  its API endpoint
    char *reaper_key;           //  its public key
    zcert_t *watchdog;          //  we play the watchdog
    zcert_t *operator_cert;     //  and read as an operator
    volatile bool stop;         //  router thread: end
    volatile bool ready;        //  router thread: subscribed
    volatile uint64_t acked;    //  sessions the router acked
} s_world_t;

typedef struct {
    double opens_per_s;         //  pipelined opens
    double reaped_per_s;        //  sessions / (job end - job start)
    double reap_seconds;        //  job end - job start
    double end_to_end_seconds;  //  model reply -> job seen done
    double bytes_per_session;   //  RSS delta / sessions
    int64_t rss_before;         //  bytes
    int64_t rss_after;          //  bytes
} s_sample_t;

static int64_t
s_rss (pid_t pid)
{
    char path [64];
    snprintf (path, sizeof path, "/proc/%d/status", (int) pid);
    FILE *file = fopen (path, "r");
    if (!file)
        return -1;
    char line [256];
    int64_t kb = -1;
    while (fgets (line, sizeof line, file))
        if (strncmp (line, "VmRSS:", 6) == 0)
            kb = atoll (line + 6);
    fclose (file);
    return kb * 1024;
}

static int
s_model_write (s_world_t *w, Ep__ModelWrite *write, uint64_t *revision)
{
    char *key = ep_keys_public_txt (w->keys, "model");
    ep_rpc_client_t *client = ep_rpc_client_new (ep_proc_connect_endpoint (w->model, "api"),
                                                 w->operator_cert, key);
    char id [33], err [256];
    ep_rpc_new_id (id);
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.request_id = id;
    request.op_case = EP__MODEL_REQUEST__OP_WRITE;
    request.write = write;
    Ep__ModelReply *reply = (Ep__ModelReply *) ep_rpc_client_call (client, &request.base, id,
                                                                   &ep__model_reply__descriptor, 10000, 3,
                                                                   err, sizeof err);
    int rc = reply && reply->status->code == EP__STATUS__CODE__OK? 0: -1;
    if (rc != 0)
        fprintf (stderr, "reaper_bench: model write failed: %s\n", reply? reply->status->message: err);
    if (reply && revision)
        *revision = reply->revision;
    if (reply)
        ep__model_reply__free_unpacked (reply, NULL);
    ep_rpc_client_destroy (&client);
    free (key);
    return rc;
}

static int
s_create (s_world_t *w, int kind, const char *id)
{
    Ep__Router router = EP__ROUTER__INIT;
    Ep__Service service = EP__SERVICE__INIT;
    Ep__Identity identity = EP__IDENTITY__INIT;
    Ep__Entity entity = EP__ENTITY__INIT;
    router.id = service.id = identity.id = (char *) id;
    entity.kind_case = (Ep__Entity__KindCase) kind;
    entity.router = &router;
    if (kind == EP__ENTITY__KIND_SERVICE)
        entity.service = &service;
    if (kind == EP__ENTITY__KIND_IDENTITY)
        entity.identity = &identity;
    Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
    write.has_op = true;
    write.op = EP__MODEL_WRITE__OP__CREATE;
    write.entity = &entity;
    return s_model_write (w, &write, NULL);
}

//  The router: beacons its presence and acks every close at once.
static void *
s_router_run (void *arg)
{
    s_world_t *w = (s_world_t *) arg;
    char *bus_key = ep_keys_public_txt (w->keys, "bus");
    zcert_t *sub_cert = ep_keys_load (w->keys, "subscriber");
    ep_subscriber_t *sub = ep_subscriber_new (ep_proc_connect_endpoint (w->bus, "sub"), sub_cert, bus_key,
                                              EP_CODEC_DEFAULT_CAP, NULL, NULL);
    ep_publisher_t *pub = ep_publisher_new (ep_proc_connect_endpoint (w->bus, "pub"), w->watchdog, bus_key,
                                            "watchdog-bench", EP_CODEC_DEFAULT_CAP);
    ep_publisher_declare (pub, "presence");
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    zsock_set_sndhwm (dealer, 0);
    ep_curve_client (dealer, w->watchdog, w->reaper_key);
    zsock_connect (dealer, "%s", w->reaper_api);
    ep_subscriber_subscribe (sub, "cmd.r1.");
    int64_t next_beacon = 0;
    char *routers [] = { "r1" };
    while (!w->stop) {
        if (ep_mono_ms () >= next_beacon) {
            Ep__PresenceEvent presence = EP__PRESENCE_EVENT__INIT;
            presence.instance_id = "watchdog-bench";
            presence.has_instance_epoch = true;
            presence.instance_epoch = ep_publisher_epoch (pub);
            presence.n_routers = 1;
            presence.routers = routers;
            Ep__Event event = EP__EVENT__INIT;
            event.body_case = EP__EVENT__BODY_PRESENCE;
            event.presence = &presence;
            ep_publisher_send (pub, "presence.beacon", &event);
            next_beacon = ep_mono_ms () + 200;
        }
        ep_publisher_tick (pub);
        if (!w->ready && ep_subscriber_wait_stream (sub, "cmd", 0) == 0)
            w->ready = true;
        while (zsock_events (dealer) & ZMQ_POLLIN) {
            zframe_t *reply = zframe_recv (dealer);
            zframe_destroy (&reply);
        }
        Ep__Event *event = ep_subscriber_recv (sub, 20, NULL);
        if (!event)
            continue;
        if (event->body_case == EP__EVENT__BODY_COMMAND
        &&  event->command->kind_case == EP__COMMAND__KIND_CLOSE_SESSIONS) {
            Ep__CloseSessions *close = event->command->close_sessions;
            Ep__CommandAck ack = EP__COMMAND_ACK__INIT;
            ack.command_id = event->command->command_id;
            ack.n_session_ids = close->n_session_ids;
            ack.session_ids = close->session_ids;
            char request_id [160], err [256];
            snprintf (request_id, sizeof request_id, "r1:ack-%s", ack.command_id);
            Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
            request.request_id = request_id;
            request.router_id = "r1";
            request.op_case = EP__SESSION_REQUEST__OP_ACK;
            request.ack = &ack;
            zframe_t *frame = ep_codec_pack (&request.base, EP_CODEC_DEFAULT_CAP, err, sizeof err);
            if (frame && zframe_send (&frame, dealer, 0) == 0)
                w->acked += close->n_session_ids;
        }
    }
    zsock_destroy (&dealer);
    ep_publisher_destroy (&pub);
    ep_subscriber_destroy (&sub);
    zcert_destroy (&sub_cert);
    free (bus_key);
    return NULL;
}

//  Opens n sessions on r1, pipelined. Returns 0 or -1.
static int
s_open_many (s_world_t *w, size_t n)
{
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    zsock_set_sndhwm (dealer, 0);
    zsock_set_rcvhwm (dealer, 0);
    ep_curve_client (dealer, w->watchdog, w->reaper_key);
    zsock_connect (dealer, "%s", w->reaper_api);
    size_t sent = 0, answered = 0;
    int rc = 0;
    zpoller_t *poller = zpoller_new (dealer, NULL);
    while (rc == 0 && answered < n) {
        while (sent < n && sent - answered < WINDOW) {
            char id [32], request_id [64], err [256];
            snprintf (id, sizeof id, "s-%07zu", sent);
            snprintf (request_id, sizeof request_id, "r1:open-%s", id);
            Ep__Session session = EP__SESSION__INIT;
            session.id = id;
            session.identity_id = "i1";
            session.service_id = "svc";
            session.has_type = true;
            session.type = EP__SESSION_TYPE__DIAL;
            session.has_bytes_rx = true;
            session.bytes_rx = sent;
            Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
            request.request_id = request_id;
            request.router_id = "r1";
            request.op_case = EP__SESSION_REQUEST__OP_OPEN;
            request.open = &session;
            zframe_t *frame = ep_codec_pack (&request.base, EP_CODEC_DEFAULT_CAP, err, sizeof err);
            zframe_send (&frame, dealer, 0);
            sent++;
        }
        if (!zpoller_wait (poller, 30000)) {
            fprintf (stderr, "reaper_bench: no open answered for 30 s (%zu of %zu)\n", answered, n);
            rc = -1;
            break;
        }
        zframe_t *frame = zframe_recv (dealer);
        char err [256];
        Ep__SessionReply *reply = (Ep__SessionReply *) ep_codec_unpack_frame (
            &ep__session_reply__descriptor, frame, EP_CODEC_DEFAULT_CAP, "reaper", err, sizeof err);
        zframe_destroy (&frame);
        if (!reply || reply->status->code != EP__STATUS__CODE__OK) {
            fprintf (stderr, "reaper_bench: open failed: %s\n", reply? reply->status->message: err);
            rc = -1;
        }
        if (reply)
            ep__session_reply__free_unpacked (reply, NULL);
        answered++;
    }
    zpoller_destroy (&poller);
    zsock_destroy (&dealer);
    return rc;
}

//  The newest cleanup job of r1 once done (caller frees), or NULL.
static Ep__SessionReply *
s_job_done (s_world_t *w, uint64_t revision, int64_t timeout_ms)
{
    ep_rpc_client_t *client = ep_rpc_client_new (w->reaper_api, w->operator_cert, w->reaper_key);
    int64_t deadline = ep_mono_ms () + timeout_ms;
    Ep__SessionReply *done = NULL;
    while (!done && ep_mono_ms () < deadline) {
        Ep__CleanupQuery query = EP__CLEANUP_QUERY__INIT;
        query.router_id = "r1";
        query.has_min_revision = true;
        query.min_revision = revision;
        Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
        char id [33], err [256];
        ep_rpc_new_id (id);
        request.request_id = id;
        request.op_case = EP__SESSION_REQUEST__OP_CLEANUP;
        request.cleanup = &query;
        Ep__SessionReply *reply = (Ep__SessionReply *) ep_rpc_client_call (
            client, &request.base, id, &ep__session_reply__descriptor, 10000, 3, err, sizeof err);
        if (reply && reply->status->code == EP__STATUS__CODE__OK && reply->n_jobs && reply->jobs [0]->done)
            done = reply;
        else {
            if (reply)
                ep__session_reply__free_unpacked (reply, NULL);
            zclock_sleep (10);      //  polling the job's progress
        }
    }
    ep_rpc_client_destroy (&client);
    return done;
}

//  Sessions the reaper has published events about (created ones included).
static double
s_published (s_world_t *w)
{
    char *metrics = ep_http_get (ep_proc_endpoint (w->reaper, "http"), "/metrics");
    double value = metrics? ep_metric_value (metrics, "edgeplane_published_total{stream=\"session\"}"): -1;
    free (metrics);
    return value;
}

static bool s_show_log;         //  --log: print the reaper's log after each run

static int
s_run (size_t n, s_sample_t *sample)
{
    s_world_t world = { 0 };
    s_world_t *w = &world;
    w->dir = ep_tmpdir_new ("reaper-bench");
    w->keys = zsys_sprintf ("%s/keys", w->dir);
    char err [256];
    EP_ASSERT (ep_keys_init (w->keys, false, err, sizeof err) == 0);
    char *env [6] = { zsys_sprintf ("EDGEPLANE_DATA_DIR=%s", w->dir), NULL };
    const char *bus_args [] = { "--pub-listen", "tcp://127.0.0.1:*", "--sub-listen", "tcp://127.0.0.1:*",
                                "--http-listen", "127.0.0.1:0", NULL };
    int rc = -1;
    pthread_t thread;
    bool started = false;
    Ep__SessionReply *job = NULL;
    w->bus = ep_proc_start ("edgeplane-bus", bus_args, (const char *const *) env, 10000);
    if (!w->bus)
        goto done;
    env [1] = zsys_sprintf ("EDGEPLANE_BUS_PUB=%s", ep_proc_connect_endpoint (w->bus, "pub"));
    env [2] = zsys_sprintf ("EDGEPLANE_BUS_SUB=%s", ep_proc_connect_endpoint (w->bus, "sub"));
    const char *model_args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", "127.0.0.1:0", NULL };
    w->model = ep_proc_start ("edgeplane-model", model_args, (const char *const *) env, 10000);
    if (!w->model)
        goto done;
    env [3] = zsys_sprintf ("EDGEPLANE_MODEL_API=%s", ep_proc_connect_endpoint (w->model, "api"));
    const char *reaper_args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", "127.0.0.1:0",
                                   "--cleanup-deadline", "10m", NULL };
    w->reaper = ep_proc_start ("edgeplane-reaper", reaper_args, (const char *const *) env, 20000);
    if (!w->reaper)
        goto done;
    w->reaper_api = ep_proc_connect_endpoint (w->reaper, "api");
    w->reaper_key = ep_keys_public_txt (w->keys, "reaper");
    w->watchdog = ep_keys_load (w->keys, "watchdog");
    w->operator_cert = ep_keys_load (w->keys, "operator");
    if (s_create (w, EP__ENTITY__KIND_SERVICE, "svc") || s_create (w, EP__ENTITY__KIND_IDENTITY, "i1")
    ||  s_create (w, EP__ENTITY__KIND_ROUTER, "r1"))
        goto done;
    EP_ASSERT (pthread_create (&thread, NULL, s_router_run, w) == 0);
    started = true;
    int64_t deadline = ep_mono_ms () + 15000;
    while (!w->ready && ep_mono_ms () < deadline)
        zclock_sleep (10);
    if (!w->ready) {
        fprintf (stderr, "reaper_bench: the router never saw the reaper's cmd stream\n");
        goto done;
    }
    pid_t pid = ep_proc_pid (w->reaper);
    sample->rss_before = s_rss (pid);
    int64_t started_us = ep_mono_us ();
    if (s_open_many (w, n) != 0)
        goto done;
    sample->opens_per_s = n / ((ep_mono_us () - started_us) / 1e6);
    //  Memory once the created events are out (the outbox is transient).
    deadline = ep_mono_ms () + 60000;
    while (s_published (w) < (double) n && ep_mono_ms () < deadline)
        zclock_sleep (50);
    sample->rss_after = s_rss (pid);
    sample->bytes_per_session = (double) (sample->rss_after - sample->rss_before) / (double) n;

    Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
    write.has_op = write.has_type = true;
    write.op = EP__MODEL_WRITE__OP__DELETE;
    write.type = EP__ENTITY_TYPE__ENTITY_ROUTER;
    write.id = "r1";
    uint64_t revision = 0;
    int64_t asked_us = ep_mono_us ();
    if (s_model_write (w, &write, &revision) != 0)
        goto done;
    job = s_job_done (w, revision, 600000);
    if (!job) {
        fprintf (stderr, "reaper_bench: the cleanup did not finish\n");
        goto done;
    }
    sample->end_to_end_seconds = (ep_mono_us () - asked_us) / 1e6;
    Ep__CleanupJob *cleanup = job->jobs [0];
    sample->reap_seconds = (cleanup->finished_at_ms - cleanup->started_at_ms) / 1000.0;
    if (sample->reap_seconds <= 0)
        sample->reap_seconds = 0.001;
    sample->reaped_per_s = cleanup->scheduled / sample->reap_seconds;
    uint64_t acked = 0;
    for (size_t i = 0; i < cleanup->n_closed; i++)
        if (streq (cleanup->closed [i]->reason, "router-deleted"))
            acked = cleanup->closed [i]->count;
    if (cleanup->scheduled != n || acked != n)
        fprintf (stderr, "reaper_bench: %llu scheduled, %llu closed by acks, of %zu\n",
                 (unsigned long long) cleanup->scheduled, (unsigned long long) acked, n);
    else
        rc = 0;
done:
    if (job)
        ep__session_reply__free_unpacked (job, NULL);
    w->stop = true;
    if (started)
        pthread_join (thread, NULL);
    if ((rc != 0 || s_show_log) && w->reaper) {
        char *log = ep_proc_log (w->reaper);
        fprintf (stderr, "reaper log:\n%s\n", log);
        free (log);
    }
    ep_proc_destroy (&w->reaper);
    ep_proc_destroy (&w->model);
    ep_proc_destroy (&w->bus);
    zcert_destroy (&w->watchdog);
    zcert_destroy (&w->operator_cert);
    free (w->reaper_key);
    for (size_t i = 0; i < EP_COUNT (env); i++)
        free (env [i]);
    free (w->keys);
    ep_tmpdir_remove (&w->dir);
    return rc;
}

//  Heap bytes the state machine holds per open session: n opens into a
//  reaper over a real store, events drained.
static double
s_state_bytes (size_t n)
{
    char *dir = ep_tmpdir_new ("reaper-bench-state");
    char *path = zsys_sprintf ("%s/sessions.db", dir);
    ep_store_t *store = ep_store_new (path, sessiondb_migrations, sessiondb_migrations_count);
    EP_ASSERT (store);
    reaper_config_t config;
    reaper_config_defaults (&config);
    reaper_t *reaper = reaper_new (store, &config, NULL, ep_mono_ms (), ep_wall_ms () - ep_mono_ms ());
    EP_ASSERT (reaper);
    ep_caller_t watchdog = { "k", "service", "watchdog" };
    malloc_trim (0);
    size_t before = mallinfo2 ().uordblks;
    for (size_t i = 0; i < n; i++) {
        char id [32];
        snprintf (id, sizeof id, "s-%07zu", i);
        Ep__Session session = EP__SESSION__INIT;
        session.id = id;
        session.identity_id = "i1";
        session.service_id = "svc";
        session.has_type = true;
        session.type = EP__SESSION_TYPE__DIAL;
        Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
        request.router_id = "r1";
        request.op_case = EP__SESSION_REQUEST__OP_OPEN;
        request.open = &session;
        reaper_result_t result;
        reaper_result_init (&result, "req");
        reaper_handle (reaper, &request, &watchdog, ep_mono_ms (), &result);
        EP_ASSERT (result.status.code == EP__STATUS__CODE__OK);
        reaper_result_clear (&result);
        if (i % 1000 == 999 || i + 1 == n) {
            EP_ASSERT (reaper_commit (reaper) == 0);
            ep_output_item_t *item;             //  no publisher: outputs dropped
            while ((item = reaper_next_output (reaper, true)))
                ep_output_item_destroy (&item);
        }
    }
    malloc_trim (0);
    size_t after = mallinfo2 ().uordblks;
    reaper_destroy (&reaper);
    ep_store_destroy (&store);
    free (path);
    ep_tmpdir_remove (&dir);
    return ((double) after - (double) before) / (double) n;
}

int
main (int argc, char **argv)
{
    static bool quick, show_log;
    static int64_t sessions, reps;
    ep_opt_t opts [] = {
        { .name = "quick", .def = "false", .type = EP_OPT_BOOL, .flag = &quick,
          .help = "A small run (20,000 sessions, one repetition)." },
        { .name = "sessions", .def = "0", .type = EP_OPT_INT, .num = &sessions, .min = 0, .max = 10000000,
          .help = "Sessions on the deleted router (0: 100,000; 20,000 with --quick)." },
        { .name = "reps", .def = "0", .type = EP_OPT_INT, .num = &reps, .min = 0, .max = 20,
          .help = "Repetitions, medians reported (0: 3, 1 with --quick)." },
        { .name = "log", .def = "false", .type = EP_OPT_BOOL, .flag = &show_log,
          .help = "Print the reaper's log after each run (EDGEPLANE_LOG_LEVEL=debug for more)." },
    };
    ep_config_t *config = ep_config_new ("reaper_bench",
        "Sessions reaped per second for one router deletion, and memory per tracked session.");
    ep_config_add (config, opts, EP_COUNT (opts));
    ep_config_parse_or_exit (config, argc, argv);
    if (!sessions)
        sessions = quick? 20000: 100000;
    if (!reps)
        reps = quick? 1: 3;
    s_show_log = show_log;
    signal (SIGPIPE, SIG_IGN);
    zsys_init ();
    double reaped [20], reap_s [20], e2e [20], bytes [20], opens [20];
    json_t *runs = json_array ();
    int rc = 0;
    for (int rep = 0; rep < reps; rep++) {
        s_sample_t sample = { 0 };
        if (s_run ((size_t) sessions, &sample) != 0) {
            fprintf (stderr, "reaper_bench: repetition %d failed (see above)\n", rep + 1);
            rc = 1;
            break;
        }
        fprintf (stderr, "reaper_bench: rep %d: %lld sessions reaped in %.2f s (%.0f/s, %.2f s end to end),"
                 " %.0f bytes per tracked session, %.0f opens/s\n", rep + 1, (long long) sessions,
                 sample.reap_seconds, sample.reaped_per_s, sample.end_to_end_seconds,
                 sample.bytes_per_session, sample.opens_per_s);
        reaped [rep] = sample.reaped_per_s;
        reap_s [rep] = sample.reap_seconds;
        e2e [rep] = sample.end_to_end_seconds;
        bytes [rep] = sample.bytes_per_session;
        opens [rep] = sample.opens_per_s;
        json_array_append_new (runs, json_pack ("{s:i, s:o, s:o, s:o, s:o, s:o, s:I, s:I}",
            "rep", rep + 1, "reaped_per_s", bench_real (sample.reaped_per_s),
            "reap_seconds", bench_real (sample.reap_seconds), "end_to_end_seconds", bench_real (sample.end_to_end_seconds),
            "bytes_per_session", bench_real (sample.bytes_per_session), "opens_per_s", bench_real (sample.opens_per_s),
            "rss_before", (json_int_t) sample.rss_before, "rss_after", (json_int_t) sample.rss_after));
    }
    double state_bytes = rc == 0? s_state_bytes ((size_t) sessions): 0;
    if (rc == 0)
        fprintf (stderr, "reaper_bench: the state machine holds %.0f heap bytes per open session\n", state_bytes);
    if (rc == 0) {
        char date [40];
        struct utsname uts;
        uname (&uts);
        double median = bench_median (reaped, (int) reps);
        json_t *result = json_object ();
        json_object_set_new (result, "benchmark", json_string ("reaper"));
        json_object_set_new (result, "date", json_string (ep_rfc3339 (ep_wall_ms (), date, sizeof date)));
        json_object_set_new (result, "mode", json_string (quick? "quick": "full"));
        json_object_set_new (result, "sessions", json_integer ((json_int_t) sessions));
        json_object_set_new (result, "reaped_per_s", bench_real (median));
        json_object_set_new (result, "reap_seconds", bench_real (bench_median (reap_s, (int) reps)));
        json_object_set_new (result, "end_to_end_seconds", bench_real (bench_median (e2e, (int) reps)));
        json_object_set_new (result, "bytes_per_session", bench_real (bench_median (bytes, (int) reps)));
        json_object_set_new (result, "state_bytes_per_session", bench_real (state_bytes));
        json_object_set_new (result, "opens_per_s", bench_real (bench_median (opens, (int) reps)));
        json_object_set_new (result, "anchor_openziti_per_s", bench_real (ANCHOR_PER_S));
        json_object_set_new (result, "anchor_openziti_seconds", bench_real (sessions / ANCHOR_PER_S));
        json_object_set_new (result, "ratio_vs_openziti", bench_real (median / ANCHOR_PER_S));
        json_object_set_new (result, "reps", json_integer ((json_int_t) reps));
        json_object_set_new (result, "machine", json_pack ("{s:s, s:s, s:I}", "sysname", uts.sysname,
                                                           "machine", uts.machine,
                                                           "cpus", (json_int_t) sysconf (_SC_NPROCESSORS_ONLN)));
        json_object_set_new (result, "runs", runs);
        char *text = json_dumps (result, JSON_INDENT (2) | JSON_REAL_PRECISION (10));
        printf ("%s\n", text);
        free (text);
        json_decref (result);
    }
    else
        json_decref (runs);
    ep_config_destroy (&config);
    return rc;
}
