/*  terminators_etcd_bench.c: edgeplane-terminators in the etcd mode (#17),
    three instances splitting the shards of one etcd, against raw etcd
    transactions in the same run, on this machine.

    The real bus and model run over CURVE; a single-member etcd is started
    here (as model_bench --store etcd does: Debian's etcd, which fsyncs its
    log). This process plays the watchdog: it publishes presence.beacon
    naming every router, and learns each shard's owner from cluster.beacon
    (address and shards) and from the `owner` of a refusal.

    1. Cold start: the model gets R routers hosting S services; three
       instances start on an empty prefix, split the shards and hear that
       every router is online; then all R x S creates are sent at once
       (pipelined, a window in flight), each to its router's shard's owner
       (a refusal is followed to the owner it names). Measured: from the
       first create to the last ESTABLISHED reply. The etcd revisions the
       run made give the transactions the instances committed, hence the
       writes per transaction.
       Baseline, same run, same etcd: as many raw transactions through the
       same client library, shaped as the instances commit a batch: per
       transaction a compare on the create revision of the owner key of
       every shard the batch touches, a put per terminator of a value the
       size of a stored record, and a put per touched shard of an outbox
       entry the mean size the instances stored (both read back from etcd),
       the stream's next transaction deleting the previous one's entries
       with a range delete per shard (as the instances' trims do); the batch
       size the instances had; three streams (one per instance, each owning
       a third of the shards), each one transaction in flight at a time, as
       an instance has one batch in flight. Ratio: established/s over raw
       writes/s (goal >= 0.5). A stricter second baseline puts only the
       records (ratio_records): what etcd costs without the events.
    2. Handover, K times: with all three up and the shards split, one
       instance (in turn) is SIGKILLed while requests flow; then, for a
       router of each of its shards in turn, a create goes to the shard's
       owner as the survivors' refusals name it. Measured: from the kill to
       the first such create served OK (and to every moved shard served
       OK). The instance is started again (same data directory) and the
       shards split again before the next kill. p50 and p99 reported, goal
       p99 <= the lease TTL + 2 s.

        terminators_etcd_bench [--quick] [--routers R] [--services S] [--kills K]
                               [--shards 64] [--lease-ttl-ms 2000]
    Prints one JSON object on stdout; progress goes to stderr.
*/
#include "ep_test.h"
#include "bench_model.h"
#include "bench_util.h"
#include "bench_stack.h"
#include "ep_codec.h"
#include "ep_etcd.h"
#include "ep_keys.h"
#include "ep_publisher.h"
#include "ep_rpc_client.h"
#include "ep_shard.h"
#include "ep_subscriber.h"
#include "model.pb-c.h"
#include "terminators.pb-c.h"
#include <jansson.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <sys/wait.h>

#define INSTANCES   3           //  terminators instances
#define WINDOW      4000        //  creates in flight, all instances together
#define MAX_TXN_OPS 1024        //  etcd's --max-txn-ops and the instances' EDGEPLANE_ETCD_MAX_TXN_OPS
#define KILLS_MAX   50          //  --kills at most
#define PREFIX      "/bench/"   //  the instances' EDGEPLANE_ETCD_PREFIX
#define RAW_PREFIX  "/raw/"     //  the baseline's keys

static int s_routers, s_services, s_shards = 64, s_kills = -1;
static int64_t s_ttl_ms = 2000;
static bench_stack_t *s_stack; //  etcd, bus, model, keys, the services' environment
static ep_etcd_t *s_etcd;       //  a client of it (status, baseline)
static ep_proc_t *s_terms [INSTANCES];          //  the instances (NULL while dead)
static ep_rpc_client_t *s_clients [INSTANCES];  //  this process, as the watchdog, to each
static char *s_ids [INSTANCES];                 //  their instance ids, from beacons
static int *s_owner;            //  per shard: the instance owning it, -1 if unknown
static int *s_router_of;        //  per shard: a router in it, -1 if none
static ep_rpc_client_t *s_modelc;
static ep_publisher_t *s_presence;
static ep_subscriber_t *s_beacons;
static zcert_t *s_watchdog_cert, *s_operator_cert;
static char *s_terms_key;
static int64_t s_next_presence;

static void
s_die (const char *format, ...) __attribute__ ((format (printf, 1, 2), noreturn));

static void
s_die (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    fprintf (stderr, "terminators_etcd_bench: ");
    vfprintf (stderr, format, args);
    fprintf (stderr, "\n");
    va_end (args);
    for (int i = 0; i < INSTANCES; i++)
        if (s_terms [i]) {
            char *log = ep_proc_log (s_terms [i]);
            fprintf (stderr, "instance %d log (end):\n%s\n", i,
                     log? log + (strlen (log) > 3000? strlen (log) - 3000: 0): "");
            free (log);
            ep_proc_destroy (&s_terms [i]);
        }
    s_etcd = NULL;
    bench_stack_stop (&s_stack, true);
    exit (1);
}

static double
s_seconds (int64_t from_us)
{
    return (ep_mono_us () - from_us) / 1e6;
}

//  ---------------------------------------------------------------------
//  etcd

//  A blocking call, 10 s at most.
static void
s_call_wait (ep_etcd_t *etcd, bench_etcd_call_t *call)
{
    if (!bench_etcd_wait (etcd, call, 10000) || !call->ok)
        s_die ("etcd: %s", call->done? call->error: "no answer in 10 s");
}

//  etcd's current revision.
static int64_t
s_etcd_revision (void)
{
    bench_etcd_call_t call = { 0 };
    ep_etcd_status (s_etcd, bench_etcd_done, &call);
    s_call_wait (s_etcd, &call);
    return call.revision;
}

//  The mean size of the values the instances stored under kind ("t/": a
//  record, "o/": an outbox entry, one per batch and shard) as of revision
//  (0: now; outbox entries are deleted once published, so they are read as
//  of the middle of the run).
static size_t
s_stored_bytes (const char *kind, int64_t revision)
{
    size_t bytes = 0, keys = 0;
    for (int shard = 0; shard < s_shards; shard++) {
        char key [128];
        uint8_t end [128];
        snprintf (key, sizeof key, PREFIX "terminators/%05d/%s", shard, kind);
        ep_etcd_range_t range = { .key = ep_etcd_str (key), .revision = revision };
        range.range_end = ep_etcd_prefix_end (range.key, end, sizeof end);
        bench_etcd_call_t call = { 0 };
        ep_etcd_range (s_etcd, &range, bench_etcd_done, &call);
        s_call_wait (s_etcd, &call);
        bytes += call.values_bytes;
        keys += call.nkvs;
    }
    if (keys == 0)
        s_die ("nothing in etcd under " PREFIX "terminators/<shard>/%s", kind);
    return (bytes + keys / 2) / keys;
}

//  One stream of the baseline: its terminators, its transactions.
typedef struct {
    ep_etcd_t *etcd;            //  its own client, as each instance has
    int *items;                 //  the terminators it writes (index router x S + service)
    int count;                  //  how many
    int next;                   //  the next to write
    bench_etcd_call_t call;              //  the transaction in flight
    bool busy;                  //  one is
} s_stream_t;

//  total raw writes in transactions of batch, shaped as the instances'
//  (see the top); returns writes/s. With outbox_bytes, each transaction
//  also puts one outbox entry of that size per shard it touches, and the
//  stream's next transaction deletes them with one range delete per shard
//  (the instances trim in transactions of their own): what the instances
//  write in all.
static double
s_raw_txns (int total, int batch, size_t record_bytes, size_t outbox_bytes)
{
    static int run;
    run++;
    //  The owner keys, one per shard, with their create revisions.
    int64_t *fence = (int64_t *) calloc ((size_t) s_shards, sizeof (int64_t));
    for (int shard = 0; shard < s_shards; shard++) {
        char key [64];
        snprintf (key, sizeof key, RAW_PREFIX "%d/owners/%d", run, shard);
        ep_etcd_put_t put = { .key = ep_etcd_str (key), .value = ep_etcd_str ("raw") };
        bench_etcd_call_t call = { 0 };
        ep_etcd_put (s_etcd, &put, bench_etcd_done, &call);
        s_call_wait (s_etcd, &call);
        fence [shard] = call.revision;
    }
    s_stream_t streams [INSTANCES];
    for (int c = 0; c < INSTANCES; c++) {
        memset (&streams [c], 0, sizeof streams [c]);
        ep_etcd_config_t config = { .endpoints = bench_etcd_endpoint (s_stack->member), .timeout_ms = 10000 };
        char err [256];
        streams [c].etcd = ep_etcd_new (&config, err, sizeof err);
        streams [c].items = (int *) calloc ((size_t) total, sizeof (int));
    }
    //  Each stream owns the shards congruent to it: its routers' terminators in order.
    for (int i = 0; i < total; i++) {
        char router [16];
        snprintf (router, sizeof router, "r%d", i / s_services);
        s_stream_t *stream = &streams [ep_shard_of (router, s_shards) % INSTANCES];
        stream->items [stream->count++] = i;
    }
    uint8_t *body = (uint8_t *) malloc (record_bytes);
    memset (body, 'x', record_bytes);
    ep_etcd_compare_t *compares = (ep_etcd_compare_t *) calloc ((size_t) s_shards, sizeof (ep_etcd_compare_t));
    ep_etcd_op_t *ops = (ep_etcd_op_t *) calloc ((size_t) batch + 2 * (size_t) s_shards, sizeof (ep_etcd_op_t));
    char (*keys) [64] = calloc ((size_t) batch, 64);
    //  Per stream, the shards its last transaction put outbox entries in.
    int *trim = (int *) calloc ((size_t) s_shards * INSTANCES, sizeof (int));
    int previous [INSTANCES] = { 0 };
    int64_t sequence = 0;
    char (*outbox_keys) [64] = calloc ((size_t) s_shards * 3, 64);
    uint8_t *event = (uint8_t *) calloc (1, outbox_bytes + 1);
    memset (event, 'e', outbox_bytes);
    char (*fence_keys) [64] = calloc ((size_t) s_shards, 64);
    bool *touched = (bool *) calloc ((size_t) s_shards, sizeof (bool));
    for (int shard = 0; shard < s_shards; shard++)
        snprintf (fence_keys [shard], 64, RAW_PREFIX "%d/owners/%d", run, shard);
    int64_t started = ep_mono_us ();
    int done = 0;
    while (done < total) {
        for (int c = 0; c < INSTANCES; c++) {
            s_stream_t *stream = &streams [c];
            if (stream->busy && stream->call.done) {
                if (!stream->call.ok)
                    s_die ("raw etcd transaction: %s", stream->call.error);
                stream->busy = false;
            }
            if (stream->busy || stream->next >= stream->count)
                continue;
            memset (touched, 0, (size_t) s_shards);
            size_t nc = 0, no = 0, n = 0, nk = 0;
            int *mine = trim + (size_t) s_shards * (size_t) c;
            //  The keys below this transaction's sequence number, per shard
            //  the last one touched: a range that cannot meet its own puts.
            sequence++;
            for (int k = 0; k < previous [c]; k++) {
                char *from = outbox_keys [nk++], *to = outbox_keys [nk++];
                snprintf (from, 64, RAW_PREFIX "%d/terminators/%05d/o/", run, mine [k]);
                snprintf (to, 64, RAW_PREFIX "%d/terminators/%05d/o/%020lld", run, mine [k], (long long) sequence);
                ops [no++] = (ep_etcd_op_t) { .kind = EP_ETCD_DELETE, .u.del = {
                    .key = ep_etcd_str (from), .range_end = ep_etcd_str (to) } };
            }
            previous [c] = 0;
            for (; n < (size_t) batch && stream->next < stream->count; n++) {
                int i = stream->items [stream->next++];
                char router [16];
                snprintf (router, sizeof router, "r%d", i / s_services);
                int shard = ep_shard_of (router, s_shards);
                if (!touched [shard]) {
                    touched [shard] = true;
                    compares [nc++] = (ep_etcd_compare_t) { .key = ep_etcd_str (fence_keys [shard]),
                        .target = EP_ETCD_CREATE, .result = EP_ETCD_EQUAL, .number = fence [shard] };
                    if (outbox_bytes) {
                        char *key = outbox_keys [nk++];
                        snprintf (key, 64, RAW_PREFIX "%d/terminators/%05d/o/%020lld", run, shard,
                                  (long long) sequence);
                        ops [no++] = (ep_etcd_op_t) { .kind = EP_ETCD_PUT, .u.put = {
                            .key = ep_etcd_str (key), .value = { event, outbox_bytes } } };
                        mine [previous [c]++] = shard;
                    }
                }
                snprintf (keys [n], 64, RAW_PREFIX "%d/terminators/%05d/t/%s-s%d", run, shard, router,
                          i % s_services);
                body [i % record_bytes] ^= 1;
                ops [no++] = (ep_etcd_op_t) { .kind = EP_ETCD_PUT, .u.put = {
                    .key = ep_etcd_str (keys [n]), .value = { body, record_bytes } } };
            }
            ep_etcd_txn_t txn = { compares, nc, ops, no, NULL, 0 };
            char err [256];
            memset (&stream->call, 0, sizeof stream->call);
            if (ep_etcd_txn (stream->etcd, &txn, bench_etcd_done, &stream->call, err, sizeof err) != 0)
                s_die ("raw etcd transaction: %s", err);
            stream->busy = true;
            done += (int) n;
        }
        //  Each client is polled in turn: a short wait, so that none idles long.
        for (int c = 0; c < INSTANCES; c++)
            if (streams [c].busy && !streams [c].call.done)
                ep_etcd_wait (streams [c].etcd, 1);
    }
    for (int c = 0; c < INSTANCES; c++) {
        s_stream_t *stream = &streams [c];
        int64_t deadline = ep_mono_ms () + 10000;
        while (stream->busy && !stream->call.done && ep_mono_ms () < deadline)
            ep_etcd_wait (stream->etcd, 10);
        if (stream->busy && !stream->call.ok)
            s_die ("raw etcd transaction: %s", stream->call.done? stream->call.error: "no answer");
    }
    double seconds = s_seconds (started);
    for (int c = 0; c < INSTANCES; c++) {
        ep_etcd_destroy (&streams [c].etcd);
        free (streams [c].items);
    }
    free (event);
    free (trim);
    free (outbox_keys);
    free (touched);
    free (fence_keys);
    free (keys);
    free (ops);
    free (compares);
    free (body);
    free (fence);
    return total / seconds;
}

//  ---------------------------------------------------------------------
//  The model

//  S services and R routers each hosting all of them.
static uint64_t
s_populate (void)
{
    uint64_t revision = 0;
    char err [256];
    if (bench_model_fleet (s_modelc, "r", s_routers, s_services, &revision, err, sizeof err))
        s_die ("model: %s", err);
    return revision;
}

//  ---------------------------------------------------------------------
//  The instances, presence and beacons

static double
s_metric (int i, const char *series)
{
    if (!s_terms [i])
        return -1;
    char *page = ep_http_get (ep_proc_endpoint (s_terms [i], "http"), "/metrics");
    double value = page? ep_metric_value (page, series): -1;
    free (page);
    return value;
}

//  presence.beacon naming every router, about every second.
static void
s_presence_beacon (void)
{
    if (ep_mono_ms () < s_next_presence)
        return;
    char **routers = (char **) calloc ((size_t) s_routers + 1, sizeof (char *));
    char *storage = (char *) calloc ((size_t) s_routers, 16);
    for (int r = 0; r < s_routers; r++) {
        routers [r] = storage + 16 * r;
        snprintf (routers [r], 16, "r%d", r);
    }
    Ep__PresenceEvent body = EP__PRESENCE_EVENT__INIT;
    body.instance_id = "watchdog-bench";
    body.has_instance_epoch = true;
    body.instance_epoch = 1;
    body.routers = routers;
    body.n_routers = (size_t) s_routers;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_PRESENCE;
    event.presence = &body;
    ep_publisher_send (s_presence, "presence.beacon", &event);
    ep_publisher_tick (s_presence);
    free (storage);
    free (routers);
    s_next_presence = ep_mono_ms () + 1000;
}

//  Takes the cluster.beacons that came: who listens where, owning what.
static void
s_beacons_drain (int timeout_ms)
{
    char *topic = NULL;
    Ep__Event *event;
    while ((event = ep_subscriber_recv (s_beacons, timeout_ms, &topic))) {
        timeout_ms = 0;
        if (event->body_case != EP__EVENT__BODY_SHARD_BEACON || !event->shard_beacon->address)
            continue;
        Ep__ShardBeacon *beacon = event->shard_beacon;
        for (int i = 0; i < INSTANCES; i++) {
            if (!s_terms [i] || !streq (beacon->address, ep_proc_connect_endpoint (s_terms [i], "api")))
                continue;
            if (!s_ids [i] || !streq (s_ids [i], beacon->instance_id)) {
                zstr_free (&s_ids [i]);
                s_ids [i] = strdup (beacon->instance_id);
            }
            for (size_t k = 0; k < beacon->n_shards; k++)
                if (beacon->shards [k] < (uint32_t) s_shards)
                    s_owner [beacon->shards [k]] = i;
        }
    }
    zstr_free (&topic);
}

//  The instance whose id is id, or -1.
static int
s_instance_of (const char *id)
{
    for (int i = 0; i < INSTANCES; i++)
        if (s_terms [i] && s_ids [i] && id && streq (s_ids [i], id))
            return i;
    return -1;
}

static void
s_start (int i)
{
    char data [16];
    snprintf (data, sizeof data, "t%d", i);
    const char *args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", "127.0.0.1:0", "--settle", "0",
                            "--presence-expiry", "30s", "--log-level", "warn", NULL };
    s_terms [i] = bench_stack_spawn (s_stack, "edgeplane-terminators", args, data, 60000);
    if (!s_terms [i])
        s_die ("edgeplane-terminators %d did not start", i);
    s_clients [i] = ep_rpc_client_new (ep_proc_connect_endpoint (s_terms [i], "api"), s_watchdog_cert,
                                       s_terms_key);
    zstr_free (&s_ids [i]);
}

//  All instances up, every shard owned, none above the cap (fair share + 1),
//  every router online everywhere, and the beacons saying the same.
static bool
s_settled (void *arg)
{
    (void) arg;
    s_presence_beacon ();
    s_beacons_drain (100);
    int share = (s_shards + INSTANCES - 1) / INSTANCES;
    double owned = 0;
    for (int i = 0; i < INSTANCES; i++) {
        double mine = s_metric (i, "edgeplane_terminators_shards_owned");
        if (mine < 1 || mine > share + 1 || !s_ids [i]
        ||  s_metric (i, "edgeplane_terminators_routers_online") != s_routers)
            return false;
        owned += mine;
    }
    if (owned != s_shards)
        return false;
    int beaconed [INSTANCES] = { 0 };
    for (int shard = 0; shard < s_shards; shard++)
        if (s_owner [shard] >= 0)
            beaconed [s_owner [shard]]++;
    for (int i = 0; i < INSTANCES; i++)
        if (beaconed [i] != (int) s_metric (i, "edgeplane_terminators_shards_owned"))
            return false;
    return true;
}

static void
s_settle (int timeout_ms)
{
    if (!ep_wait_until (s_settled, NULL, timeout_ms))
        s_die ("the instances did not split the shards within %d ms (owned %.0f, %.0f, %.0f)", timeout_ms,
               s_metric (0, "edgeplane_terminators_shards_owned"), s_metric (1, "edgeplane_terminators_shards_owned"),
               s_metric (2, "edgeplane_terminators_shards_owned"));
}

//  CPU so far (us): the instances together, etcd, and the machine's busy time.
static void
s_cpu (int64_t cpu [3])
{
    cpu [0] = 0;
    for (int i = 0; i < INSTANCES; i++)
        cpu [0] += s_terms [i]? bench_proc_cpu_us (ep_proc_pid (s_terms [i])): 0;
    cpu [1] = bench_proc_cpu_us (bench_etcd_pid (s_stack->member));
    cpu [2] = bench_machine_busy_us ();
}

//  ---------------------------------------------------------------------
//  Cold start

//  Sends create i (router i / S, service i % S) to instance to.
static void
s_send_create (zsock_t *dealer, size_t i, uint64_t revision)
{
    int r = (int) (i / (size_t) s_services), s = (int) (i % (size_t) s_services);
    char id [32], service [16], router [16], request_id [32];
    snprintf (id, sizeof id, "r%d-s%d", r, s);
    snprintf (service, sizeof service, "svc%d", s);
    snprintf (router, sizeof router, "r%d", r);
    snprintf (request_id, sizeof request_id, "%zu", i);
    Ep__Terminator t = EP__TERMINATOR__INIT;
    t.id = id;
    t.service_id = service;
    t.has_cost = true;
    t.cost = (uint32_t) s;
    Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
    request.request_id = request_id;
    request.router_id = router;
    request.has_model_revision = true;
    request.model_revision = revision;
    request.op_case = EP__TERMINATOR_REQUEST__OP_CREATE;
    request.create = &t;
    char err [256];
    zframe_t *frame = ep_codec_pack (&request.base, EP_CODEC_DEFAULT_CAP, err, sizeof err);
    if (!frame)
        s_die ("%s", err);
    zframe_send (&frame, dealer, 0);
}

static int
s_shard_of_create (size_t i)
{
    char router [32];
    snprintf (router, sizeof router, "r%zu", i / (size_t) s_services);
    return ep_shard_of (router, s_shards);
}

//  Every create, pipelined, each to its shard's owner; returns the seconds
//  from the first send to the last ESTABLISHED reply, and the refusals
//  followed in *refused.
static double
s_create_all (uint64_t revision, size_t *refused)
{
    size_t total = (size_t) s_routers * (size_t) s_services;
    zsock_t *dealers [INSTANCES];
    zpoller_t *poller = zpoller_new (NULL);
    for (int d = 0; d < INSTANCES; d++) {
        dealers [d] = zsock_new (ZMQ_DEALER);
        zsock_set_sndhwm (dealers [d], 0);
        zsock_set_rcvhwm (dealers [d], 0);
        zcert_apply (s_watchdog_cert, dealers [d]);
        zsock_set_curve_serverkey (dealers [d], s_terms_key);
        if (zsock_connect (dealers [d], "%s", ep_proc_connect_endpoint (s_terms [d], "api")) != 0)
            s_die ("cannot connect to instance %d", d);
        zpoller_add (poller, dealers [d]);
    }
    size_t done = 0, next = 0, inflight = 0;
    *refused = 0;
    int64_t started = ep_mono_us ();
    while (done < total) {
        for (; inflight < WINDOW && next < total; next++, inflight++) {
            int owner = s_owner [s_shard_of_create (next)];
            s_send_create (dealers [owner >= 0? owner: (int) (next % INSTANCES)], next, revision);
        }
        if (!zpoller_wait (poller, 30000))
            s_die ("no reply for 30 s (%zu of %zu done)", done, total);
        for (int d = 0; d < INSTANCES; d++) {
            while (zsock_events (dealers [d]) & ZMQ_POLLIN) {
                zframe_t *frame = zframe_recv (dealers [d]);
                char err [256];
                Ep__TerminatorReply *reply = (Ep__TerminatorReply *) ep_codec_unpack_frame (
                    &ep__terminator_reply__descriptor, frame, EP_CODEC_DEFAULT_CAP, "terminators", err, sizeof err);
                zframe_destroy (&frame);
                if (!reply)
                    s_die ("%s", err);
                size_t i = (size_t) strtoull (reply->request_id, NULL, 10);
                Ep__Status__Code code = reply->status && reply->status->has_code? reply->status->code:
                                        EP__STATUS__CODE__OK;
                if (code == EP__STATUS__CODE__UNAVAILABLE && reply->retriable) {
                    //  Not this instance's shard: to the owner it names, or the next one.
                    int owner = s_instance_of (reply->owner);
                    int shard = s_shard_of_create (i);
                    s_owner [shard] = owner >= 0? owner: (d + 1) % INSTANCES;
                    s_send_create (dealers [s_owner [shard]], i, revision);
                    (*refused)++;
                    ep__terminator_reply__free_unpacked (reply, NULL);
                    continue;
                }
                if (code != EP__STATUS__CODE__OK)
                    s_die ("create %s refused: %s", reply->request_id, reply->status->message);
                if (reply->n_terminators != 1 || reply->terminators [0]->state != EP__TERMINATOR_STATE__ESTABLISHED)
                    s_die ("create %s: not established at once (the router is online)", reply->request_id);
                ep__terminator_reply__free_unpacked (reply, NULL);
                inflight--;
                done++;
            }
        }
        s_presence_beacon ();
    }
    double seconds = s_seconds (started);
    zpoller_destroy (&poller);
    for (int d = 0; d < INSTANCES; d++)
        zsock_destroy (&dealers [d]);
    return seconds;
}

//  ---------------------------------------------------------------------
//  Handover

//  A create of a fresh terminator for router to instance i: OK, refused
//  (*owner: the owner it names, -1 for none known) or no answer.
typedef enum { S_OK, S_REFUSED, S_SILENT } s_outcome_t;

static s_outcome_t
s_probe (int i, const char *router, int *owner)
{
    static int seq;
    char id [64];
    snprintf (id, sizeof id, "h-%s-%d", router, ++seq);
    Ep__Terminator t = EP__TERMINATOR__INIT;
    t.id = id;
    t.service_id = "svc0";
    Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
    request.router_id = (char *) router;
    request.op_case = EP__TERMINATOR_REQUEST__OP_CREATE;
    request.create = &t;
    Ep__TerminatorReply *reply = (Ep__TerminatorReply *) ep_rpc_call (
        s_clients [i], &request, &ep__terminator_reply__descriptor, 1000, 1, NULL, 0);
    if (!reply)
        return S_SILENT;
    Ep__Status__Code code = reply->status && reply->status->has_code? reply->status->code: EP__STATUS__CODE__OK;
    *owner = code == EP__STATUS__CODE__OK? i: s_instance_of (reply->owner);
    if (code != EP__STATUS__CODE__OK && code != EP__STATUS__CODE__UNAVAILABLE)
        s_die ("probe for %s at instance %d: %s", router, i, reply->status->message);
    ep__terminator_reply__free_unpacked (reply, NULL);
    return code == EP__STATUS__CODE__OK? S_OK: S_REFUSED;
}

//  Kills instance victim while probes flow; *first_ms: until the first
//  probe for one of its shards was served OK elsewhere, *all_ms: until one
//  for each was.
static void
s_handover (int victim, double *first_ms, double *all_ms)
{
    int moved [EP_SHARD_MAX_COUNT], nmoved = 0;
    for (int shard = 0; shard < s_shards; shard++)
        if (s_owner [shard] == victim && s_router_of [shard] >= 0)
            moved [nmoved++] = shard;
    if (nmoved == 0)
        s_die ("instance %d owns no shard with a router", victim);
    //  Requests flowing to every instance before the kill.
    for (int k = 0; k < nmoved; k++) {
        char router [16];
        snprintf (router, sizeof router, "r%d", s_router_of [moved [k]]);
        int owner;
        if (s_probe (victim, router, &owner) != S_OK)
            s_die ("instance %d did not serve %s before the kill", victim, router);
    }
    bool *served = (bool *) calloc ((size_t) nmoved, sizeof (bool));
    int nserved = 0, turn = 0;
    int64_t killed = ep_mono_us ();
    ep_proc_signal (s_terms [victim], SIGKILL);
    ep_proc_wait_exit (s_terms [victim], 5000);
    ep_rpc_client_destroy (&s_clients [victim]);
    ep_proc_destroy (&s_terms [victim]);
    for (int shard = 0; shard < s_shards; shard++)
        if (s_owner [shard] == victim)
            s_owner [shard] = -1;
    *first_ms = *all_ms = 0;
    int64_t deadline = ep_mono_ms () + 3 * s_ttl_ms + 10000;
    while (nserved < nmoved && ep_mono_ms () < deadline) {
        for (int k = 0; k < nmoved; k++) {
            if (served [k])
                continue;
            int shard = moved [k];
            char router [16];
            snprintf (router, sizeof router, "r%d", s_router_of [shard]);
            //  To the owner last named, else to the survivors in turn.
            int to = s_owner [shard];
            if (to < 0 || !s_terms [to])
                do
                    to = turn++ % INSTANCES;
                while (!s_terms [to]);
            int owner = -1;
            s_outcome_t outcome = s_probe (to, router, &owner);
            if (outcome == S_OK) {
                double ms = (ep_mono_us () - killed) / 1e3;
                if (!nserved)
                    *first_ms = ms;
                served [k] = true;
                if (++nserved == nmoved)
                    *all_ms = ms;
            }
            s_owner [shard] = outcome == S_REFUSED && owner != victim? owner: -1;
        }
        s_presence_beacon ();
        //  No owner named yet: the lease has not expired; do not spin.
        zclock_sleep (10);
    }
    free (served);
    if (nserved < nmoved)
        s_die ("%d of %d moved shards served within %lld ms of the kill", nserved, nmoved,
               (long long) (3 * s_ttl_ms + 10000));
}

//  ---------------------------------------------------------------------

int
main (int argc, char **argv)
{
    bool quick = false;
    for (int i = 1; i < argc; i++) {
        if (streq (argv [i], "--quick"))
            quick = true;
        else
        if (streq (argv [i], "--routers") && i + 1 < argc)
            s_routers = atoi (argv [++i]);
        else
        if (streq (argv [i], "--services") && i + 1 < argc)
            s_services = atoi (argv [++i]);
        else
        if (streq (argv [i], "--kills") && i + 1 < argc)
            s_kills = atoi (argv [++i]);
        else
        if (streq (argv [i], "--shards") && i + 1 < argc)
            s_shards = atoi (argv [++i]);
        else
        if (streq (argv [i], "--lease-ttl-ms") && i + 1 < argc)
            s_ttl_ms = atoll (argv [++i]);
        else {
            fprintf (stderr, "usage: terminators_etcd_bench [--quick] [--routers R] [--services S (<= 64)] "
                     "[--kills K] [--shards 64] [--lease-ttl-ms 2000]\n");
            return 2;
        }
    }
    if (!s_routers)
        s_routers = quick? 500: 10000;
    if (!s_services)
        s_services = 10;
    if (s_kills < 0)
        s_kills = quick? 3: 10;
    if (s_routers < 1 || s_services < 1 || s_services > BENCH_MODEL_SERVICES || s_kills > KILLS_MAX || s_shards < INSTANCES
    ||  s_shards > EP_SHARD_MAX_COUNT || s_ttl_ms < 1000) {
        fprintf (stderr, "terminators_etcd_bench: need routers >= 1, 1 <= services <= 64, kills <= %d, "
                 "%d <= shards <= %d, lease TTL >= 1000 ms\n", KILLS_MAX, INSTANCES, EP_SHARD_MAX_COUNT);
        return 2;
    }
    signal (SIGPIPE, SIG_IGN);
    zsys_init ();
    zsys_set_logstream (NULL);
    s_owner = (int *) malloc ((size_t) s_shards * sizeof (int));
    s_router_of = (int *) malloc ((size_t) s_shards * sizeof (int));
    for (int shard = 0; shard < s_shards; shard++)
        s_owner [shard] = s_router_of [shard] = -1;
    for (int r = 0; r < s_routers; r++) {
        char router [16];
        snprintf (router, sizeof router, "r%d", r);
        int shard = ep_shard_of (router, s_shards);
        if (s_router_of [shard] < 0)
            s_router_of [shard] = r;
    }
    if (!(s_stack = bench_stack_start ("terminators-etcd-bench", PREFIX, s_shards, MAX_TXN_OPS)))
        s_die ("no etcd, bus and model to measure with");
    s_etcd = bench_etcd_client (s_stack->member);
    bench_stack_setenv (s_stack, "EDGEPLANE_TERMINATORS_STORE=etcd");
    bench_stack_setenv (s_stack, "EDGEPLANE_TERMINATORS_LEASE_TTL=%lldms", (long long) s_ttl_ms);
    s_operator_cert = s_stack->operator_cert;
    s_watchdog_cert = s_stack->watchdog_cert;
    s_modelc = s_stack->model_client;
    s_presence = bench_stack_publisher (s_stack, "watchdog-bench");
    s_beacons = bench_stack_subscriber (s_stack);
    if (!s_beacons)
        s_die ("cannot subscribe to the bus");
    ep_subscriber_subscribe (s_beacons, "cluster.beacon");
    s_terms_key = ep_keys_public_txt (s_stack->keys, "terminators");
    size_t total = (size_t) s_routers * (size_t) s_services;

    //  1. The model, then three instances on an empty prefix.
    int64_t started = ep_mono_us ();
    uint64_t revision = s_populate ();
    fprintf (stderr, "model: %d routers x %d services at revision %llu in %.2f s\n", s_routers, s_services,
             (unsigned long long) revision, s_seconds (started));
    started = ep_mono_us ();
    for (int i = 0; i < INSTANCES; i++)
        s_start (i);
    s_settle (60000);
    double settle_s = s_seconds (started);
    fprintf (stderr, "three instances split %d shards and hear %d routers in %.2f s\n", s_shards, s_routers,
             settle_s);
    int64_t revision_before = s_etcd_revision ();
    size_t refused = 0;
    int64_t cpu0 [3], cpu1 [3], cpu2 [3];
    s_cpu (cpu0);
    double establish_s = s_create_all (revision, &refused);
    s_cpu (cpu1);
    int64_t txns = s_etcd_revision () - revision_before;
    double rate = (double) total / establish_s;
    double per_txn = txns > 0? (double) total / (double) txns: 1;
    fprintf (stderr, "established %zu terminators in %.2f s (%.0f/s; %zu refusals followed; "
             "%lld etcd revisions, %.1f terminators each)\n", total, establish_s, rate, refused,
             (long long) txns, per_txn);
    size_t record_bytes = s_stored_bytes ("t/", 0);
    size_t outbox_bytes = s_stored_bytes ("o/", revision_before + txns / 2);
    int batch = (int) lround (per_txn);
    batch = batch < 1? 1: batch > MAX_TXN_OPS / 4? MAX_TXN_OPS / 4: batch;
    int64_t raw_cpu0 [3];
    s_cpu (raw_cpu0);
    //  What the instances write: the records, the outbox entries, their deletion.
    double raw = s_raw_txns ((int) total, batch, record_bytes, outbox_bytes);
    s_cpu (cpu2);
    //  And the records alone.
    double raw_records = s_raw_txns ((int) total, batch, record_bytes, 0);
    //  CPU per terminator (us): instances, etcd; and the machine's cores busy.
    double terms_cpu = (double) (cpu1 [0] - cpu0 [0]) / (double) total;
    double etcd_cpu = (double) (cpu1 [1] - cpu0 [1]) / (double) total;
    double raw_etcd_cpu = (double) (cpu2 [1] - raw_cpu0 [1]) / (double) total;
    double busy_cores = (double) (cpu1 [2] - cpu0 [2]) / (establish_s * 1e6);
    fprintf (stderr, "CPU per terminator: instances %.0f us, etcd %.0f us (raw: etcd %.0f us); machine busy %.2f cores\n",
             terms_cpu, etcd_cpu, raw_etcd_cpu, busy_cores);
    fprintf (stderr, "raw etcd, the instances' shape: %zu puts of %zu bytes, %d per transaction, + a %zu-byte "
             "outbox entry per shard touched, range-deleted by the next; 3 streams: %.0f/s; ratio %.2f\n",
             total, record_bytes, batch, outbox_bytes, raw, rate / raw);
    fprintf (stderr, "raw etcd, the records alone: %.0f/s; ratio %.2f\n", raw_records, rate / raw_records);

    //  2. Handover.
    double first [KILLS_MAX], all [KILLS_MAX];
    for (int k = 0; k < s_kills; k++) {
        int victim = k % INSTANCES;
        s_handover (victim, &first [k], &all [k]);
        fprintf (stderr, "kill %d (instance %d): first moved shard served after %.0f ms, all after %.0f ms "
                 "(lease TTL %lld ms)\n", k + 1, victim, first [k], all [k], (long long) s_ttl_ms);
        s_start (victim);
        s_settle (60000);
    }

    json_t *result = json_pack ("{s:s, s:i, s:i, s:i, s:I, s:i, s:I, s:f, s:f, s:f, s:I, s:I, s:f, s:I, s:i, s:f, s:f}",
        "benchmark", "terminators_etcd", "instances", INSTANCES, "shards", s_shards, "routers", s_routers,
        "terminators", (json_int_t) total, "services", s_services, "lease_ttl_ms", (json_int_t) s_ttl_ms,
        "settle_s", settle_s, "establish_s", establish_s, "establish_per_s", rate,
        "refusals_followed", (json_int_t) refused, "etcd_revisions", (json_int_t) txns,
        "terminators_per_txn", per_txn, "record_bytes", (json_int_t) record_bytes, "raw_batch", batch,
        "raw_etcd_writes_per_s", raw, "ratio", rate / raw);
    json_object_set_new (result, "time_100k_s", json_real (100000.0 / rate));
    json_object_set_new (result, "outbox_bytes", json_integer ((json_int_t) outbox_bytes));
    json_object_set_new (result, "raw_etcd_records_writes_per_s", json_real (raw_records));
    json_object_set_new (result, "ratio_records", json_real (rate / raw_records));
    json_object_set_new (result, "instances_cpu_us_per_terminator", json_real (terms_cpu));
    json_object_set_new (result, "etcd_cpu_us_per_terminator", json_real (etcd_cpu));
    json_object_set_new (result, "raw_etcd_cpu_us_per_write", json_real (raw_etcd_cpu));
    json_object_set_new (result, "machine_busy_cores", json_real (busy_cores));
    if (s_kills > 0) {
        json_t *list = json_array ();
        for (int k = 0; k < s_kills; k++)
            json_array_append_new (list, json_pack ("[f, f]", first [k], all [k]));
        json_object_set_new (result, "handovers_ms", list);
        json_object_set_new (result, "kills", json_integer (s_kills));
        json_object_set_new (result, "handover_p50_ms", json_real (bench_percentile (first, s_kills, 50)));
        json_object_set_new (result, "handover_p99_ms", json_real (bench_percentile (first, s_kills, 99)));
        json_object_set_new (result, "handover_all_p50_ms", json_real (bench_percentile (all, s_kills, 50)));
        json_object_set_new (result, "handover_all_p99_ms", json_real (bench_percentile (all, s_kills, 99)));
        json_object_set_new (result, "handover_goal_ms", json_integer (s_ttl_ms + 2000));
    }
    char date [40];
    json_object_set_new (result, "date", json_string (ep_rfc3339 (ep_wall_ms (), date, sizeof date)));
    json_object_set_new (result, "mode", json_string (quick? "quick": "full"));
    char *text = json_dumps (result, JSON_INDENT (2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION (6));
    printf ("%s\n", text);
    free (text);
    json_decref (result);

    for (int i = 0; i < INSTANCES; i++) {
        ep_rpc_client_destroy (&s_clients [i]);
        ep_proc_destroy (&s_terms [i]);
        zstr_free (&s_ids [i]);
    }
    ep_subscriber_destroy (&s_beacons);
    ep_publisher_destroy (&s_presence);
    zstr_free (&s_terms_key);
    s_etcd = NULL;
    bench_stack_stop (&s_stack, false);
    free (s_owner);
    free (s_router_of);
    return 0;
}
