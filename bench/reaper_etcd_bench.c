/*  reaper_etcd_bench.c: edgeplane-reaper in the etcd mode (#18), three
    instances splitting the shards of one etcd, against raw etcd
    transactions of the same shape in the same run, on this machine.

    The real bus and model run over CURVE; a single-member etcd is started
    here (bench_etcd: Debian's etcd, which fsyncs its log). This process
    plays the watchdog (presence.beacon naming the routers, the opens) and
    the routers (a subscriber on cmd. that acks CloseSessions to the
    instances), as tests/etcd/test_reaper_shards_proc.c does.

    1. One router deletion: N sessions are opened on router r1 through the
       owner of its shard (so they are in one shard, one instance's); r1
       is deleted in the model; the router acks every close. Measured:
       from the model's reply to the deletion to the cleanup job seen done
       (every session closed and acknowledged), polled at the owner every
       20 ms; and the job's own start -> finish.
       Baseline, same run, same etcd: what the reapers wrote to etcd over
       that span, replayed. A watch from the revision before the deletion
       to a marker put once the job was done gives every transaction the
       instances committed under <prefix>reaper/ (one revision each), with
       each operation's key and value size: session records, outbox
       entries and their deletion, counter chunks, job records. Each is
       sent again through the same client library, keys moved under
       another prefix, values of the same sizes, with the reaper's fence:
       a compare on the create revision of the owner key of each shard the
       transaction touches and, on failure, a read of it. One transaction
       in flight at a time, as an instance has one batch in flight.
       Sessions/s = N / the replay's time; ratio = reaper's rate / that
       (goal >= 0.5).
    2. Handover, K times: a router h<k> with M sessions is deleted; the
       router acks the closes of even sessions only, so the cleanup waits
       for the rest (deadline 10 minutes): mid-cleanup. Once it has had a
       CloseSessions, the owner of its shard is SIGKILLed. Measured: from
       the kill to the next CloseSessions for h<k> carrying another owner
       revision (the successor's). The instance is started again (its own
       data directory) and the shards split again before the next kill.
       p50 and p99 reported, goal p99 <= the lease TTL + 2 s.

        reaper_etcd_bench [--quick] [--sessions N] [--kills K] [--handover-sessions M]
                          [--shards 64] [--lease-ttl-ms 2000]
    Prints one JSON object on stdout; progress goes to stderr.
*/
#include "ep_test.h"
#include "ep_stack.h"
#include "bench_util.h"
#include "bench_stack.h"
#include "ep_codec.h"
#include "ep_config.h"
#include "ep_etcd.h"
#include "ep_keys.h"
#include "ep_publisher.h"
#include "ep_rpc_client.h"
#include "ep_shard.h"
#include "ep_subscriber.h"
#include "model.pb-c.h"
#include "sessions.pb-c.h"
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>

#define INSTANCES   3           //  reaper instances
#define WINDOW      2000        //  opens in flight
#define MAX_TXN_OPS 1024        //  etcd's --max-txn-ops and the instances' EDGEPLANE_ETCD_MAX_TXN_OPS
#define KILLS_MAX   50          //  --kills at most
#define ROUTERS_MAX (KILLS_MAX + 1)     //  r1 and h0..h<K-1>
#define PREFIX      "/bench/"   //  the instances' EDGEPLANE_ETCD_PREFIX
#define RAW_PREFIX  "/raw/"     //  the baseline's keys
#define MARKER      PREFIX "~bench/marker"  //  put once the cleanup is done: the capture's end
#define CALL_MS     10000       //  an RPC's timeout

static int s_shards, s_kills;
static int64_t s_sessions, s_handover_sessions, s_ttl_ms;
static bench_stack_t *s_stack;  //  etcd, bus, model, keys, the services' environment
static ep_etcd_t *s_etcd;       //  a client of etcd (status, marker, baseline)
static ep_proc_t *s_reapers [INSTANCES];    //  the instances (NULL while dead)
static zsock_t *s_acks [INSTANCES];         //  a DEALER to each, for the acks
static char *s_reaper_key;
static zcert_t *s_watchdog_cert, *s_operator_cert;   //  the stack's
static ep_rpc_client_t *s_modelc;                   //  the stack's
static ep_publisher_t *s_presence;
static ep_subscriber_t *s_cmds;
static char *s_routers [ROUTERS_MAX];       //  named in the presence beacons
static int s_nrouters;
static int64_t s_next_presence;

//  What the routers heard, per router being watched.
typedef struct {
    const char *router;         //  the router watched, or NULL
    bool ack_all;               //  ack every close, else the even sessions' only
    size_t commands;            //  CloseSessions received for it
    size_t ids;                 //  session ids in them
    int64_t revision;           //  the owner revision of the last one
    int64_t victim;             //  the killed owner's revision (0: none killed)
    int64_t killed_us;          //  when (ep_mono_us)
    int64_t successor_us;       //  the first CloseSessions under another revision after it, 0 if none
} s_watch_t;

static s_watch_t s_watch;

//  ---------------------------------------------------------------------
//  etcd

//  Puts key = value; returns the revision (the create revision of a new key).
static int64_t
s_etcd_put (const char *key, const char *value)
{
    ep_etcd_put_t put = { .key = ep_etcd_str (key), .value = ep_etcd_str (value) };
    bench_etcd_call_t call = { 0 };
    ep_etcd_put (s_etcd, &put, bench_etcd_done, &call);
    bench_etcd_must (s_etcd, &call);
    return call.revision;
}

//  ---------------------------------------------------------------------
//  The model

static void
s_model_write (Ep__ModelWrite *write)
{
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.op_case = EP__MODEL_REQUEST__OP_WRITE;
    request.write = write;
    char err [256];
    Ep__ModelReply *reply = ep_rpc_call (s_modelc, &request, &ep__model_reply__descriptor, CALL_MS, 3,
                                         err, sizeof err);
    if (!reply || (reply->status && reply->status->code != EP__STATUS__CODE__OK))
        bench_die ("model write: %s", reply? reply->status->message: err);
    ep__model_reply__free_unpacked (reply, NULL);
}

static void
s_model_create (Ep__Entity__KindCase kind, const char *id)
{
    Ep__Router router = EP__ROUTER__INIT;
    Ep__Service service = EP__SERVICE__INIT;
    Ep__Identity identity = EP__IDENTITY__INIT;
    router.id = service.id = identity.id = (char *) id;
    void *body = kind == EP__ENTITY__KIND_ROUTER? (void *) &router
               : kind == EP__ENTITY__KIND_SERVICE? (void *) &service: (void *) &identity;
    ep_entity_write_t write;
    s_model_write (ep_entity_write (&write, EP__MODEL_WRITE__OP__CREATE, kind, body));
}

static void
s_model_delete_router (const char *id)
{
    Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
    write.has_op = write.has_type = true;
    write.op = EP__MODEL_WRITE__OP__DELETE;
    write.type = EP__ENTITY_TYPE__ENTITY_ROUTER;
    write.id = (char *) id;
    s_model_write (&write);
}

//  ---------------------------------------------------------------------
//  The routers: presence, and the acks of their CloseSessions

static bool
s_even (const char *session)
{
    const char *dash = strrchr (session, '-');
    return dash && atol (dash + 1) % 2 == 0;
}

//  presence.beacon naming every router, every 200 ms.
static void
s_presence_beacon (void)
{
    ep_publisher_tick (s_presence);
    if (ep_mono_ms () < s_next_presence)
        return;
    Ep__PresenceEvent presence = EP__PRESENCE_EVENT__INIT;
    presence.instance_id = "watchdog-bench";
    presence.has_instance_epoch = true;
    presence.instance_epoch = ep_publisher_epoch (s_presence);
    presence.n_routers = (size_t) s_nrouters;
    presence.routers = s_routers;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_PRESENCE;
    event.presence = &presence;
    ep_publisher_send (s_presence, "presence.beacon", &event);
    s_next_presence = ep_mono_ms () + 200;
}

//  The ack of command, to every live instance: the owner takes it, the
//  others refuse it (the owner may be dead or not known yet).
static void
s_ack (const Ep__Command *command, char **ids, size_t n, const char *router)
{
    Ep__CommandAck ack = EP__COMMAND_ACK__INIT;
    ack.command_id = command->command_id;
    ack.n_session_ids = n;
    ack.session_ids = ids;
    char request_id [200], err [256];
    snprintf (request_id, sizeof request_id, "%s:ack-%s", router, command->command_id);
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.request_id = request_id;
    request.router_id = (char *) router;
    request.op_case = EP__SESSION_REQUEST__OP_ACK;
    request.ack = &ack;
    for (int i = 0; i < INSTANCES; i++) {
        if (!s_acks [i])
            continue;
        zframe_t *frame = ep_codec_pack (&request.base, EP_CODEC_DEFAULT_CAP, err, sizeof err);
        if (!frame || zframe_send (&frame, s_acks [i], ZFRAME_DONTWAIT) != 0)
            zframe_destroy (&frame);
    }
}

static void
s_on_close (const Ep__Command *command)
{
    const char *router = command->router_id;
    if (!s_watch.router || !router || !streq (router, s_watch.router))
        return;
    size_t n = command->close_sessions->n_session_ids;
    char **ids = command->close_sessions->session_ids;
    s_watch.commands++;
    s_watch.ids += n;
    int64_t revision = command->has_owner_revision? command->owner_revision: 0;
    s_watch.revision = revision;
    if (s_watch.victim && revision != s_watch.victim && !s_watch.successor_us)
        s_watch.successor_us = ep_mono_us ();
    char **acked = (char **) calloc (n + 1, sizeof (char *));
    size_t nacked = 0;
    for (size_t i = 0; i < n; i++)
        if (s_watch.ack_all || s_even (ids [i]))
            acked [nacked++] = ids [i];
    s_ack (command, acked, nacked, router);
    free (acked);
}

//  The routers' turn: beacons, the commands that came (within timeout_ms),
//  the instances' replies to the acks (dropped).
static void
s_capture_pump (void);

static void
s_pump (int timeout_ms)
{
    s_capture_pump ();
    s_presence_beacon ();
    Ep__Event *event;
    while ((event = ep_subscriber_recv (s_cmds, timeout_ms, NULL))) {
        timeout_ms = 0;
        if (event->body_case == EP__EVENT__BODY_COMMAND
        &&  event->command->kind_case == EP__COMMAND__KIND_CLOSE_SESSIONS)
            s_on_close (event->command);
        s_presence_beacon ();
    }
    for (int i = 0; i < INSTANCES; i++)
        while (s_acks [i] && (zsock_events (s_acks [i]) & ZMQ_POLLIN)) {
            zframe_t *reply = zframe_recv (s_acks [i]);
            zframe_destroy (&reply);
        }
}

//  ---------------------------------------------------------------------
//  The instances

static double
s_metric (int i, const char *series)
{
    if (!s_reapers [i])
        return -1;
    char *page = ep_http_get (ep_proc_endpoint (s_reapers [i], "http"), "/metrics");
    double value = page? ep_metric_value (page, series): -1;
    free (page);
    return value;
}

static void
s_start (int i)
{
    char data [16];
    snprintf (data, sizeof data, "r%d", i);
    const char *args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", "127.0.0.1:0",
                            "--cleanup-deadline", "10m", NULL };
    s_reapers [i] = bench_stack_spawn (s_stack, "edgeplane-reaper", args, data, 60000);
    if (!s_reapers [i])
        bench_die ("edgeplane-reaper %d did not start", i);
    s_acks [i] = zsock_new (ZMQ_DEALER);
    zsock_set_sndhwm (s_acks [i], 0);
    if (ep_curve_client (s_acks [i], s_watchdog_cert, s_reaper_key) != 0
    ||  zsock_connect (s_acks [i], "%s", ep_proc_connect_endpoint (s_reapers [i], "api")) != 0)
        bench_die ("cannot connect to instance %d", i);
}

static void
s_kill (int i)
{
    if (ep_proc_signal (s_reapers [i], SIGKILL) != 0)
        bench_die ("cannot kill instance %d", i);
    int status = ep_proc_wait_exit (s_reapers [i], 10000);
    if (status == -1 || !WIFSIGNALED (status))
        bench_die ("instance %d did not die of SIGKILL", i);
    zsock_destroy (&s_acks [i]);
    ep_proc_destroy (&s_reapers [i]);
}

//  All instances up, every shard owned and read, none above a fair share + 1.
static bool
s_split (void *arg)
{
    (void) arg;
    s_pump (20);
    int share = (s_shards + INSTANCES - 1) / INSTANCES;
    double owned = 0;
    for (int i = 0; i < INSTANCES; i++) {
        double mine = s_metric (i, "edgeplane_reaper_shards_owned");
        if (mine < 1 || mine > share + 1)
            return false;
        owned += mine;
    }
    return owned == s_shards;
}

static void
s_settle (int timeout_ms)
{
    if (!ep_wait_until (s_split, NULL, timeout_ms))
        bench_die ("the instances did not split the shards within %d ms (owned %.0f, %.0f, %.0f)", timeout_ms,
               s_metric (0, "edgeplane_reaper_shards_owned"), s_metric (1, "edgeplane_reaper_shards_owned"),
               s_metric (2, "edgeplane_reaper_shards_owned"));
}

//  A call to instance i as cert; the reply (caller frees) or NULL.
static Ep__SessionReply *
s_call (int i, zcert_t *cert, Ep__SessionRequest *request)
{
    if (!s_reapers [i])
        return NULL;
    ep_rpc_client_t *client = ep_rpc_client_new (ep_proc_connect_endpoint (s_reapers [i], "api"), cert,
                                                 s_reaper_key);
    Ep__SessionReply *reply = ep_rpc_call (client, request, &ep__session_reply__descriptor, CALL_MS, 1,
                                           NULL, 0);
    ep_rpc_client_destroy (&client);
    return reply;
}

static Ep__Status__Code
s_code (const Ep__SessionReply *reply)
{
    return reply->status? reply->status->code: EP__STATUS__CODE__OK;
}

//  The instance owning router's shard and ready: the one answering an
//  empty heartbeat OK (the others refuse it, naming the owner).
static bool
s_find_owner (void *arg)
{
    int *owner = (int *) arg;
    s_pump (10);
    Ep__SessionHeartbeat heartbeat = EP__SESSION_HEARTBEAT__INIT;
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.router_id = s_routers [s_nrouters - 1];
    request.op_case = EP__SESSION_REQUEST__OP_HEARTBEAT;
    request.heartbeat = &heartbeat;
    for (int i = 0; i < INSTANCES; i++) {
        Ep__SessionReply *reply = s_call (i, s_watchdog_cert, &request);
        bool ok = reply && s_code (reply) == EP__STATUS__CODE__OK;
        if (reply)
            ep__session_reply__free_unpacked (reply, NULL);
        if (ok) {
            *owner = i;
            return true;
        }
    }
    return false;
}

//  A router in the model and the beacons; the instance owning its shard.
static int
s_new_router (const char *id)
{
    if (s_nrouters == ROUTERS_MAX)
        bench_die ("too many routers");
    s_model_create (EP__ENTITY__KIND_ROUTER, id);
    s_routers [s_nrouters++] = strdup (id);
    s_next_presence = 0;
    int owner = -1;
    if (!ep_wait_until (s_find_owner, &owner, 20000))
        bench_die ("no instance owns router %s's shard", id);
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
    if (ep_curve_client (dealer, s_watchdog_cert, s_reaper_key) != 0
    ||  zsock_connect (dealer, "%s", ep_proc_connect_endpoint (s_reapers [i], "api")) != 0)
        bench_die ("cannot connect to instance %d", i);
    size_t sent = 0, answered = 0;
    int64_t deadline = ep_mono_ms () + 300000;
    zpoller_t *poller = zpoller_new (dealer, NULL);
    while (answered < count) {
        while (sent < count && sent - answered < WINDOW) {
            char id [64], request_id [96], err [256];
            snprintf (id, sizeof id, "%s-%07zu", router, sent);
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
            zframe_t *frame = ep_codec_pack (&request.base, EP_CODEC_DEFAULT_CAP, err, sizeof err);
            if (!frame || zframe_send (&frame, dealer, 0) != 0)
                bench_die ("open: %s", err);
            sent++;
        }
        if (ep_mono_ms () > deadline)
            bench_die ("opening took over 5 minutes (%zu of %zu)", answered, count);
        s_pump (0);
        if (!zpoller_wait (poller, 100))
            continue;
        zframe_t *frame = zframe_recv (dealer);
        char err [256];
        Ep__SessionReply *reply = (Ep__SessionReply *) ep_codec_unpack_frame (
            &ep__session_reply__descriptor, frame, EP_CODEC_DEFAULT_CAP, "reaper", err, sizeof err);
        zframe_destroy (&frame);
        if (!reply || s_code (reply) != EP__STATUS__CODE__OK)
            bench_die ("open refused: %s", reply? reply->status->message: err);
        ep__session_reply__free_unpacked (reply, NULL);
        answered++;
    }
    zpoller_destroy (&poller);
    zsock_destroy (&dealer);
}

//  The cleanup job of router as instance i holds it, once done, or NULL
//  (*refused: i does not own the router's shard now).
static Ep__SessionReply *
s_job_done (int i, const char *router, bool *refused)
{
    Ep__CleanupQuery query = EP__CLEANUP_QUERY__INIT;
    query.router_id = (char *) router;
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.op_case = EP__SESSION_REQUEST__OP_CLEANUP;
    request.cleanup = &query;
    Ep__SessionReply *reply = s_call (i, s_operator_cert, &request);
    *refused = !reply || s_code (reply) != EP__STATUS__CODE__OK || !reply->n_jobs;
    if (reply && s_code (reply) == EP__STATUS__CODE__OK && reply->n_jobs && reply->jobs [0]->done)
        return reply;
    if (reply)
        ep__session_reply__free_unpacked (reply, NULL);
    return NULL;
}

//  CPU so far (us): the instances together, etcd, and the machine's busy time.
static void
s_cpu (int64_t cpu [3])
{
    cpu [0] = 0;
    for (int i = 0; i < INSTANCES; i++)
        cpu [0] += s_reapers [i]? bench_proc_cpu_us (ep_proc_pid (s_reapers [i])): 0;
    cpu [1] = bench_proc_cpu_us (bench_etcd_pid (s_stack->member));
    cpu [2] = bench_machine_busy_us ();
}

//  ---------------------------------------------------------------------
//  What the instances wrote: captured by a watch, replayed raw

typedef struct {
    bool is_delete;             //  else a put
    char *key;                  //  under RAW_PREFIX
    size_t value_size;          //  a put's
    char kind;                  //  the record: 's', 'j', 'c', 'o' (reapkeys.h)
    int shard;                  //  its shard
} s_op_t;

typedef struct {
    s_op_t *ops;                //  every op, transaction after transaction
    size_t nops, max;
    size_t *txn_at;             //  where each transaction starts in ops
    size_t ntxns, txns_max;
    int64_t revision;           //  the last op's revision
    int64_t until;              //  ops after this revision are left out (0: none yet)
    bool done;                  //  the marker came
    bool failed;                //  the watch ended
    ep_etcd_t *etcd;            //  the watch's own client
    ep_etcd_watch_t *watch;     //  live from the revision before the deletion
} s_capture_t;

static s_capture_t s_capture;   //  the cleanup's, while it runs

static void
s_capture_event (s_capture_t *self, const ep_etcd_event_t *event)
{
    const char *key = (const char *) event->kv.key;
    if (streq (key, MARKER)) {
        self->done = true;
        return;
    }
    const char *reaper = PREFIX "reaper/";
    if (strncmp (key, reaper, strlen (reaper)) != 0 || (self->until && event->kv.mod_revision > self->until))
        return;
    const char *rest = key + strlen (reaper);
    if (self->nops == self->max) {
        self->max = self->max? 2 * self->max: 4096;
        self->ops = (s_op_t *) realloc (self->ops, self->max * sizeof (s_op_t));
    }
    if (!self->ntxns || event->kv.mod_revision != self->revision) {
        if (self->ntxns == self->txns_max) {
            self->txns_max = self->txns_max? 2 * self->txns_max: 1024;
            self->txn_at = (size_t *) realloc (self->txn_at, self->txns_max * sizeof (size_t));
        }
        self->txn_at [self->ntxns++] = self->nops;
        self->revision = event->kv.mod_revision;
    }
    s_op_t *op = &self->ops [self->nops++];
    op->is_delete = event->is_delete;
    op->key = zsys_sprintf (RAW_PREFIX "reaper/%s", rest);
    op->value_size = event->is_delete? 0: event->kv.value_size;
    op->shard = atoi (rest);
    const char *slash = strchr (rest, '/');
    op->kind = slash? slash [1]: '?';
}

static void
s_on_watch (void *arg, const ep_etcd_reply_t *reply, const char *error)
{
    s_capture_t *self = (s_capture_t *) arg;
    if (!reply || reply->canceled) {
        fprintf (stderr, "reaper_etcd_bench: the watch ended: %s\n", reply? reply->cancel_reason: error);
        self->failed = true;
        return;
    }
    for (size_t i = 0; i < reply->nevents; i++)
        s_capture_event (self, &reply->events [i]);
}

//  Watches every transaction under <prefix>reaper/ after revision from,
//  live (the history afterwards would be one message of the whole cleanup,
//  which etcd's gateway takes minutes to encode); s_pump dispatches it.
static void
s_capture_start (s_capture_t *capture, int64_t from)
{
    memset (capture, 0, sizeof *capture);
    ep_etcd_config_t config = { .endpoints = bench_etcd_endpoint (s_stack->member), .timeout_ms = 60000 };
    char err [256];
    if (!(capture->etcd = ep_etcd_new (&config, err, sizeof err)))
        bench_die ("etcd client: %s", err);
    uint8_t end [64];
    ep_etcd_watch_req_t req = { .key = ep_etcd_str (PREFIX), .start_revision = from + 1 };
    req.range_end = ep_etcd_prefix_end (req.key, end, sizeof end);
    capture->watch = ep_etcd_watch (capture->etcd, &req, s_on_watch, capture);
}

//  The watch's turn (nothing when no capture runs).
static void
s_capture_pump (void)
{
    if (s_capture.etcd)
        ep_etcd_wait (s_capture.etcd, 0);
}

//  Ends the capture at revision until: the ops after it are left out; the
//  marker put after it ends the watch.
static void
s_capture_end (s_capture_t *capture, int64_t until)
{
    capture->until = until;
    s_etcd_put (MARKER, "end");
    int64_t deadline = ep_mono_ms () + 120000;
    while (!capture->done && !capture->failed && ep_mono_ms () < deadline)
        ep_etcd_wait (capture->etcd, 100);
    ep_etcd_watch_cancel (&capture->watch);
    ep_etcd_destroy (&capture->etcd);
    if (!capture->done)
        bench_die ("the watch did not reach the marker");
}

static void
s_capture_free (s_capture_t *capture)
{
    for (size_t i = 0; i < capture->nops; i++)
        free (capture->ops [i].key);
    free (capture->ops);
    free (capture->txn_at);
}

//  Sends every captured transaction again under RAW_PREFIX, one in
//  flight, with the reaper's fence; returns the seconds it took.
static double
s_replay (const s_capture_t *capture)
{
    //  The owner keys, one per shard, with their create revisions.
    int64_t *fence = (int64_t *) calloc ((size_t) s_shards, sizeof (int64_t));
    char (*fence_keys) [64] = calloc ((size_t) s_shards, 64);
    for (int shard = 0; shard < s_shards; shard++) {
        snprintf (fence_keys [shard], 64, RAW_PREFIX "shards/reaper/owners/%05d", shard);
        fence [shard] = s_etcd_put (fence_keys [shard], "raw-owner");
    }
    size_t largest = 0;
    for (size_t i = 0; i < capture->nops; i++)
        largest = capture->ops [i].value_size > largest? capture->ops [i].value_size: largest;
    uint8_t *value = (uint8_t *) malloc (largest + 1);
    memset (value, 'v', largest + 1);
    ep_etcd_op_t *ops = (ep_etcd_op_t *) calloc (capture->nops + 1, sizeof (ep_etcd_op_t));
    ep_etcd_compare_t *compares = (ep_etcd_compare_t *) calloc ((size_t) s_shards, sizeof (ep_etcd_compare_t));
    ep_etcd_op_t *reads = (ep_etcd_op_t *) calloc ((size_t) s_shards, sizeof (ep_etcd_op_t));
    bool *touched = (bool *) calloc ((size_t) s_shards, sizeof (bool));
    int64_t started = ep_mono_us ();
    for (size_t t = 0; t < capture->ntxns; t++) {
        size_t first = capture->txn_at [t];
        size_t last = t + 1 < capture->ntxns? capture->txn_at [t + 1]: capture->nops;
        size_t nops = 0, nc = 0;
        memset (touched, 0, (size_t) s_shards);
        for (size_t i = first; i < last; i++) {
            const s_op_t *op = &capture->ops [i];
            if (op->is_delete)
                ops [nops++] = (ep_etcd_op_t) { .kind = EP_ETCD_DELETE, .u.del = { .key = ep_etcd_str (op->key) } };
            else {
                value [i % (largest + 1)] ^= 1;     //  not the same value twice
                ops [nops++] = (ep_etcd_op_t) { .kind = EP_ETCD_PUT, .u.put = {
                    .key = ep_etcd_str (op->key), .value = { value, op->value_size } } };
            }
            int shard = op->shard >= 0 && op->shard < s_shards? op->shard: 0;
            if (!touched [shard]) {
                touched [shard] = true;
                compares [nc] = (ep_etcd_compare_t) { .key = ep_etcd_str (fence_keys [shard]),
                    .target = EP_ETCD_CREATE, .result = EP_ETCD_EQUAL, .number = fence [shard] };
                reads [nc++] = (ep_etcd_op_t) { .kind = EP_ETCD_RANGE, .u.range = {
                    .key = ep_etcd_str (fence_keys [shard]) } };
            }
        }
        ep_etcd_txn_t txn = { compares, nc, ops, nops, reads, nc };
        bench_etcd_call_t call = { 0 };
        char err [256];
        if (ep_etcd_txn (s_etcd, &txn, bench_etcd_done, &call, err, sizeof err) != 0)
            bench_die ("raw etcd transaction: %s", err);
        bench_etcd_must (s_etcd, &call);
    }
    double seconds = bench_seconds (started);
    free (touched);
    free (reads);
    free (compares);
    free (ops);
    free (value);
    free (fence_keys);
    free (fence);
    return seconds;
}

//  The capture's shape, per record kind: puts, their mean size, deletes.
static json_t *
s_shape (const s_capture_t *capture)
{
    json_t *shape = json_object ();
    const char *kinds = "sjco";
    const char *names [] = { "session_records", "job_records", "counter_chunks", "outbox_entries" };
    for (int k = 0; k < 4; k++) {
        size_t puts = 0, deletes = 0, bytes = 0;
        for (size_t i = 0; i < capture->nops; i++)
            if (capture->ops [i].kind == kinds [k]) {
                puts += !capture->ops [i].is_delete;
                deletes += capture->ops [i].is_delete;
                bytes += capture->ops [i].value_size;
            }
        json_object_set_new (shape, names [k], json_pack ("{s:I, s:I, s:I}", "puts", (json_int_t) puts,
            "mean_bytes", (json_int_t) (puts? bytes / puts: 0), "deletes", (json_int_t) deletes));
    }
    return shape;
}

//  ---------------------------------------------------------------------
//  1. One router deletion

typedef struct {
    double reap_s;              //  deletion -> job seen done
    double job_s;               //  the job's own start -> finish
    double raw_s;               //  the replay
    double reapers_cpu_us, etcd_cpu_us, raw_etcd_cpu_us;    //  per session
    double bench_cpu_us;        //  per session: this process (routers, watch) during the cleanup
    double busy_cores;          //  the machine during the cleanup
    double opens_per_s;
    json_t *shape;              //  s_shape
    size_t txns, ops;           //  captured
} s_reap_t;

typedef struct {
    int owner;                  //  the instance that holds the job, as last found
    Ep__SessionReply *reply;    //  its job, done
} s_done_t;

//  The owner, and the others while it does not hold the job: an instance
//  that loses its lease mid-cleanup loses the shard, and the job goes on
//  where the shard went (the others hold no such job, or refuse).
static bool
s_reaped (void *arg)
{
    s_done_t *done = (s_done_t *) arg;
    s_pump (20);
    bool refused = true;
    for (int k = 0; k < INSTANCES && refused && !done->reply; k++) {
        int i = (done->owner + k) % INSTANCES;
        if (s_reapers [i] && (done->reply = s_job_done (i, "r1", &refused)) && i != done->owner) {
            fprintf (stderr, "the cleanup of r1 ended at instance %d, not %d (its shard moved)\n", i,
                     done->owner);
            done->owner = i;
        }
    }
    return done->reply != NULL;
}

static void
s_reap (s_reap_t *result)
{
    int owner = s_new_router ("r1");
    s_watch = (s_watch_t) { .router = "r1", .ack_all = true };
    int64_t started = ep_mono_us ();
    s_open_many (owner, "r1", (size_t) s_sessions);
    result->opens_per_s = s_sessions / bench_seconds (started);
    fprintf (stderr, "opened %lld sessions on r1 through instance %d in %.2f s\n", (long long) s_sessions,
             owner, bench_seconds (started));
    int64_t revision = bench_etcd_revision (s_etcd);
    int64_t cpu0 [3], cpu1 [3], cpu2 [3];
    s_capture_start (&s_capture, revision);
    s_cpu (cpu0);
    int64_t self0 = bench_self_cpu_us ();
    started = ep_mono_us ();
    s_model_delete_router ("r1");
    s_done_t done = { owner, NULL };
    if (!ep_wait_until (s_reaped, &done, 600000))
        bench_die ("the cleanup of r1 was not done in 10 minutes (%zu closes sent)", s_watch.ids);
    result->reap_s = bench_seconds (started);
    s_cpu (cpu1);
    result->bench_cpu_us = (double) (bench_self_cpu_us () - self0) / (double) s_sessions;
    //  The transactions the replay sends: those committed by now.
    int64_t until = bench_etcd_revision (s_etcd);
    Ep__CleanupJob *job = done.reply->jobs [0];
    result->job_s = (job->finished_at_ms - job->started_at_ms) / 1000.0;
    uint64_t acked = 0;
    for (size_t i = 0; i < job->n_closed; i++)
        if (streq (job->closed [i]->reason, "router-deleted"))
            acked = job->closed [i]->count;
    if (job->scheduled != (uint64_t) s_sessions || acked != (uint64_t) s_sessions)
        bench_die ("%llu scheduled, %llu closed by acks, of %lld", (unsigned long long) job->scheduled,
               (unsigned long long) acked, (long long) s_sessions);
    ep__session_reply__free_unpacked (done.reply, NULL);
    fprintf (stderr, "reaped %lld sessions in %.2f s from the deletion (the job: %.2f s), %zu CloseSessions\n",
             (long long) s_sessions, result->reap_s, result->job_s, s_watch.commands);
    s_watch = (s_watch_t) { 0 };
    //  What they wrote, then the same raw.
    s_capture_t *capture = &s_capture;
    s_capture_end (capture, until);
    result->txns = capture->ntxns;
    result->ops = capture->nops;
    result->shape = s_shape (capture);
    //  The history is read: compacted, its space is reused by the replay
    //  (etcd's quota counts the whole backend, history included).
    bench_etcd_call_t compact = { 0 };
    ep_etcd_compact (s_etcd, bench_etcd_revision (s_etcd), bench_etcd_done, &compact);
    bench_etcd_must (s_etcd, &compact);
    int64_t raw0 [3];
    s_cpu (raw0);
    result->raw_s = s_replay (capture);
    s_cpu (cpu2);
    s_capture_free (capture);
    result->reapers_cpu_us = (double) (cpu1 [0] - cpu0 [0]) / (double) s_sessions;
    result->etcd_cpu_us = (double) (cpu1 [1] - cpu0 [1]) / (double) s_sessions;
    result->raw_etcd_cpu_us = (double) (cpu2 [1] - raw0 [1]) / (double) s_sessions;
    result->busy_cores = (double) (cpu1 [2] - cpu0 [2]) / (result->reap_s * 1e6);
    fprintf (stderr, "raw etcd, the same %zu transactions (%zu ops): %.2f s; ratio %.2f\n", result->txns,
             result->ops, result->raw_s, result->raw_s / result->reap_s);
}

//  ---------------------------------------------------------------------
//  2. Handover

static bool
s_some_closes (void *arg)
{
    (void) arg;
    s_pump (20);
    return s_watch.commands > 0;
}

static bool
s_successor_closes (void *arg)
{
    (void) arg;
    s_pump (5);
    return s_watch.successor_us != 0;
}

//  Kill k: returns ms from the SIGKILL to the successor's first close.
static double
s_handover (int k)
{
    char router [16];
    snprintf (router, sizeof router, "h%d", k);
    int victim = s_new_router (router);
    s_open_many (victim, router, (size_t) s_handover_sessions);
    s_watch = (s_watch_t) { .router = s_routers [s_nrouters - 1] };
    s_model_delete_router (router);
    if (!ep_wait_until (s_some_closes, NULL, 30000))
        bench_die ("%s was sent no close in 30 s", router);
    s_watch.victim = s_watch.revision;
    if (!s_watch.victim)
        bench_die ("a CloseSessions without the owner revision");
    s_watch.killed_us = ep_mono_us ();
    s_kill (victim);
    int timeout = (int) (3 * s_ttl_ms + 20000);
    if (!ep_wait_until (s_successor_closes, NULL, timeout))
        bench_die ("no successor sent %s a close within %d ms of the kill", router, timeout);
    double ms = (s_watch.successor_us - s_watch.killed_us) / 1e3;
    s_watch = (s_watch_t) { 0 };
    s_start (victim);
    s_settle (60000);
    return ms;
}

//  ---------------------------------------------------------------------

static void
s_setup (void)
{
    if (!(s_stack = bench_stack_start ("reaper-etcd-bench", PREFIX, s_shards, MAX_TXN_OPS)))
        bench_die ("no etcd, bus and model to measure with");
    s_etcd = bench_etcd_client (s_stack->member);
    bench_stack_setenv (s_stack, "EDGEPLANE_REAPER_STORE=etcd");
    bench_stack_setenv (s_stack, "EDGEPLANE_REAPER_LEASE_TTL=%lldms", (long long) s_ttl_ms);
    s_operator_cert = s_stack->operator_cert;
    s_watchdog_cert = s_stack->watchdog_cert;
    s_modelc = s_stack->model_client;
    s_reaper_key = ep_keys_public_txt (s_stack->keys, "reaper");
    s_presence = bench_stack_publisher (s_stack, "watchdog-bench");
    ep_publisher_declare (s_presence, "presence");
    s_cmds = bench_stack_subscriber (s_stack);
    if (!s_cmds)
        bench_die ("cannot subscribe to the bus");
    ep_subscriber_subscribe (s_cmds, "cmd.");
    s_model_create (EP__ENTITY__KIND_SERVICE, "svc");
    s_model_create (EP__ENTITY__KIND_IDENTITY, "i1");
}

//  Stops everything started; on a failure (bench_die), with the instances'
//  logs first and etcd killed.
static void
s_stop (bool failed)
{
    for (int i = 0; i < INSTANCES; i++) {
        if (failed && s_reapers [i]) {
            char *log = ep_proc_log (s_reapers [i]);
            size_t size = log? strlen (log): 0;
            fprintf (stderr, "instance %d log (end):\n%s\n", i, log? log + (size > 3000? size - 3000: 0): "");
            free (log);
        }
        zsock_destroy (&s_acks [i]);
        ep_proc_destroy (&s_reapers [i]);
    }
    for (int i = 0; i < s_nrouters; i++)
        zstr_free (&s_routers [i]);
    ep_subscriber_destroy (&s_cmds);
    ep_publisher_destroy (&s_presence);
    zstr_free (&s_reaper_key);
    s_etcd = NULL;
    bench_stack_stop (&s_stack, failed);
}

static void
s_failed (void)
{
    s_stop (true);
}

static json_t *
s_result (bool quick, const s_reap_t *reap, double *handovers)
{
    double rate = s_sessions / reap->reap_s, raw = s_sessions / reap->raw_s;
    json_t *result = json_pack ("{s:s, s:s, s:i, s:i, s:I, s:I}", "benchmark", "reaper_etcd",
        "mode", quick? "quick": "full", "instances", INSTANCES, "shards", s_shards,
        "sessions", (json_int_t) s_sessions, "lease_ttl_ms", (json_int_t) s_ttl_ms);
    json_object_set_new (result, "reap_seconds", bench_real (reap->reap_s));
    json_object_set_new (result, "job_seconds", bench_real (reap->job_s));
    json_object_set_new (result, "reaped_per_s", bench_real (rate));
    json_object_set_new (result, "raw_etcd_seconds", bench_real (reap->raw_s));
    json_object_set_new (result, "raw_etcd_sessions_per_s", bench_real (raw));
    json_object_set_new (result, "ratio", bench_real (rate / raw));
    json_object_set_new (result, "time_100k_s", bench_real (100000.0 / rate));
    json_object_set_new (result, "etcd_txns", json_integer ((json_int_t) reap->txns));
    json_object_set_new (result, "etcd_ops", json_integer ((json_int_t) reap->ops));
    json_object_set_new (result, "sessions_per_txn", bench_real ((double) s_sessions / (double) reap->txns));
    json_object_set_new (result, "shape", json_incref (reap->shape));
    json_object_set_new (result, "opens_per_s", bench_real (reap->opens_per_s));
    json_object_set_new (result, "reapers_cpu_us_per_session", bench_real (reap->reapers_cpu_us));
    json_object_set_new (result, "etcd_cpu_us_per_session", bench_real (reap->etcd_cpu_us));
    json_object_set_new (result, "raw_etcd_cpu_us_per_session", bench_real (reap->raw_etcd_cpu_us));
    json_object_set_new (result, "bench_cpu_us_per_session", bench_real (reap->bench_cpu_us));
    json_object_set_new (result, "machine_busy_cores", bench_real (reap->busy_cores));
    if (s_kills > 0) {
        json_t *list = json_array ();
        for (int k = 0; k < s_kills; k++)
            json_array_append_new (list, bench_real (handovers [k]));
        json_object_set_new (result, "handovers_ms", list);
        json_object_set_new (result, "kills", json_integer (s_kills));
        json_object_set_new (result, "handover_sessions", json_integer ((json_int_t) s_handover_sessions));
        json_object_set_new (result, "handover_p50_ms", bench_real (bench_percentile (handovers, s_kills, 50)));
        json_object_set_new (result, "handover_p99_ms", bench_real (bench_percentile (handovers, s_kills, 99)));
        json_object_set_new (result, "handover_goal_ms", json_integer (s_ttl_ms + 2000));
    }
    char date [40];
    json_object_set_new (result, "date", json_string (ep_rfc3339 (ep_wall_ms (), date, sizeof date)));
    json_object_set_new (result, "machine", bench_machine ());
    return result;
}

int
main (int argc, char **argv)
{
    static bool quick;
    static int64_t sessions, kills, handover_sessions, shards, ttl_ms;
    ep_opt_t opts [] = {
        { .name = "quick", .def = "false", .type = EP_OPT_BOOL, .flag = &quick,
          .help = "A small run (2,000 sessions, 2 kills of 500 sessions): CI's." },
        { .name = "sessions", .def = "0", .type = EP_OPT_INT, .num = &sessions, .min = 0, .max = 10000000,
          .help = "Sessions on the deleted router (0: 100,000; 2,000 with --quick)." },
        { .name = "kills", .def = "-1", .type = EP_OPT_INT, .num = &kills, .min = -1, .max = KILLS_MAX,
          .help = "Handovers mid-cleanup (-1: 20; 2 with --quick)." },
        { .name = "handover-sessions", .def = "0", .type = EP_OPT_INT, .num = &handover_sessions, .min = 0,
          .max = 1000000, .help = "Sessions on each router of a handover (0: 2,000; 500 with --quick)." },
        { .name = "shards", .def = "64", .type = EP_OPT_INT, .num = &shards, .min = INSTANCES,
          .max = EP_SHARD_MAX_COUNT, .help = "EDGEPLANE_SHARDS." },
        { .name = "lease-ttl-ms", .def = "2000", .type = EP_OPT_INT, .num = &ttl_ms, .min = 1000, .max = 60000,
          .help = "The instances' shard lease TTL." },
    };
    ep_config_t *config = ep_config_new ("reaper_etcd_bench",
        "The reaper on etcd, three instances: sessions reaped/s after one router deletion against its etcd "
        "transactions replayed raw, and the handover after a SIGKILL mid-cleanup.");
    ep_config_add (config, opts, EP_COUNT (opts));
    ep_config_parse_or_exit (config, argc, argv);
    ep_config_destroy (&config);
    s_sessions = sessions? sessions: quick? 2000: 100000;
    s_kills = kills >= 0? (int) kills: quick? 2: 20;
    s_handover_sessions = handover_sessions? handover_sessions: quick? 500: 2000;
    s_shards = (int) shards;
    s_ttl_ms = ttl_ms;
    signal (SIGPIPE, SIG_IGN);
    zsys_init ();
    zsys_set_logstream (NULL);
    bench_on_die (s_failed);
    s_setup ();
    int64_t started = ep_mono_us ();
    for (int i = 0; i < INSTANCES; i++)
        s_start (i);
    s_settle (60000);
    fprintf (stderr, "three instances split %d shards in %.2f s\n", s_shards, bench_seconds (started));

    s_reap_t reap = { 0 };
    s_reap (&reap);
    double handovers [KILLS_MAX];
    for (int k = 0; k < s_kills; k++) {
        handovers [k] = s_handover (k);
        fprintf (stderr, "kill %d: the successor's first close %.0f ms after the SIGKILL (lease TTL %lld ms)\n",
                 k + 1, handovers [k], (long long) s_ttl_ms);
    }
    json_t *result = s_result (quick, &reap, handovers);
    char *text = json_dumps (result, JSON_INDENT (2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION (10));
    printf ("%s\n", text);
    free (text);
    json_decref (result);
    json_decref (reap.shape);
    bench_on_die (NULL);
    s_stop (false);
    return 0;
}
