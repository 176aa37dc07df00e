/*  model_bench.c: durable writes/s through edgeplane-model, and how soon a
    follower sees a write, against raw SQLite in the same run.

    The real edgeplane-bus and edgeplane-model run over CURVE with their
    data in a temporary directory; the raw SQLite baseline writes a file in
    that same directory, so both use the same disk with the same durability
    (WAL, synchronous=FULL: a commit that returned is on disk). An
    ep_follower (with the terminators certificate, as that service follows
    the model) runs in this process's main thread throughout, so the model
    publishes every change to a real subscriber, and its view's observer
    timestamps each create. Cases, interleaved in every repetition:

      model_1     one client, request after reply: creates/s
      raw_txn1    as many rows inserted into a table shaped like the
                  model's entities table, one row per transaction
      model_n     --clients threads (32), each its own ep_rpc_client and
                  CURVE connection, all writing at once: creates/s. The
                  model groups writes that arrive together into one
                  transaction (one fsync); the average group size is read
                  from its /metrics (edgeplane_model_writes_per_commit).
      raw_batch   as many rows inserted in transactions of the model_n
                  case's average group size

    With --store etcd the model keeps its data in a single-member etcd
    that this benchmark starts in the same directory (Debian's etcd 3.4,
    which fsyncs its log: the same durability), and the baselines are raw
    etcd transactions through the same client library (ep_etcd), shaped
    as the model's etcd store commits a batch: a compare on the state
    key's mod revision and one per created entity (absent), then per write
    the entity, its change record and its saved reply, and the state key;
    one transaction in flight at a time, as the model has one batch at a
    time. raw_txn1 has one write per transaction, raw_batch the model_n
    case's average group size.

    Ratios: model_1 / raw_txn1 and model_n / raw_batch. Latencies, p50 and
    p99 per model case: from sending a create to its durable reply, and to
    the follower's observer seeing it. Raw rows are the packed bytes of the
    entity the model stores (a service with a name and two tags, its meta
    included), so both write rows of the same size. CPU per write of the
    model, the bus and this process (clients and follower) is reported too.
    Method and figures: bench/README.md. Prints one JSON object on stdout;
    progress goes to stderr.
*/
#include "ep_prelude.h"
#include "ep_config.h"
#include "ep_etcd.h"
#include "ep_follower.h"
#include "ep_keys.h"
#include "ep_rpc_client.h"
#include "ep_test.h"
#include "bench_util.h"
#include "bench_etcd.h"
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sys/utsname.h>
#include <unistd.h>

#define CLIENTS_MAX     256     //  --clients at most
#define CALL_TIMEOUT_MS 10000   //  per attempt; a timeout is a failed run
#define WRITES_SERIES   "edgeplane_model_writes_per_commit"

//  What every case shares: the services and the keys.
typedef struct {
    char *dir;                  //  temporary directory (model data, raw db)
    char *keys;                 //  keys dir
    ep_proc_t *bus;             //  edgeplane-bus
    ep_proc_t *model;           //  edgeplane-model
    char *model_key;            //  the model's public key
    char *bus_key;              //  the bus's public key
    zcert_t *follower_cert;     //  the follower's certificate (terminators')
    ep_model_view_t *view;      //  the follower's copy of the model
    ep_follower_t *follower;    //  follows the model in this process's main thread
    zpoller_t *poller;          //  on the follower's socket
    size_t tag_bytes;           //  value length of each of the two tags
    int cases;                  //  cases run so far, for fresh ids
    bool etcd_store;            //  --store etcd: the model in etcd, raw etcd baselines
    bench_etcd_t *member;       //  the single etcd member, NULL if none
    ep_etcd_t *etcd;            //  a client of it, for the raw baselines
    int64_t lease_ttl_ms;       //  the models' publisher lease (etcd)
} s_env_t;

//  One load: clients writing creates at once, optionally followed.
typedef struct {
    s_env_t *env;               //  services and keys
    int clients;                //  writer threads
    int per_client;             //  creates each
    char prefix [16];           //  id prefix, fresh per case
    pthread_barrier_t start;    //  clients and the main thread
    atomic_int finished;        //  clients done
    atomic_int failures;        //  failed creates
    char error [512];           //  the first failure
    int64_t *sent_us;           //  per create: when it was sent
    int64_t *replied_us;        //  per create: when its reply came
    int64_t *visible_us;        //  per create: when the follower saw it (0: not yet)
    int visible;                //  creates the follower saw
    size_t entity_bytes;        //  packed size of a stored entity
    int64_t start_us;           //  the clients were released
    int64_t end_us;             //  the last reply arrived
    int64_t cpu_us [3];         //  CPU used meanwhile: model, bus, this process
    double background_cores;    //  CPU other processes used meanwhile, in cores
} s_load_t;

//  Whose CPU a load measures.
enum { CPU_MODEL, CPU_BUS, CPU_CLIENTS };

typedef struct {
    s_load_t *load;             //  the load it is part of
    int index;                  //  client number
    pthread_t thread;           //  its thread
} s_client_t;

//  CPU so far of the model, the bus and this process (clients, follower).
static void
s_cpu_now (s_env_t *env, int64_t cpu [3])
{
    struct rusage usage;
    EP_ASSERT (getrusage (RUSAGE_SELF, &usage) == 0);
    cpu [CPU_MODEL] = bench_proc_cpu_us (ep_proc_pid (env->model));
    cpu [CPU_BUS] = bench_proc_cpu_us (ep_proc_pid (env->bus));
    cpu [CPU_CLIENTS] = (int64_t) (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000000
                      + usage.ru_utime.tv_usec + usage.ru_stime.tv_usec;
}

//  ---------------------------------------------------------------------
//  The model side

//  Fills the id of create number index of load.
static void
s_id (s_load_t *load, int index, char *id, size_t size)
{
    snprintf (id, size, "%s-%07d", load->prefix, index);
}

static void *
s_client_run (void *arg)
{
    s_client_t *self = (s_client_t *) arg;
    s_load_t *load = self->load;
    zcert_t *cert = ep_keys_load (load->env->keys, "operator");
    EP_ASSERT (cert);
    ep_rpc_client_t *client = ep_rpc_client_new (ep_proc_connect_endpoint (load->env->model, "api"),
                                                 cert, load->env->model_key);
    char err [256];
    //  Connect (and finish the CURVE handshake) before the clock starts.
    Ep__StatusRequest status = EP__STATUS_REQUEST__INIT;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.op_case = EP__MODEL_REQUEST__OP_STATUS;
    request.status = &status;
    char request_id [33];
    ep_rpc_new_id (request_id);
    request.request_id = request_id;
    ProtobufCMessage *reply = ep_rpc_client_call (client, &request.base, request_id,
                                                  &ep__model_reply__descriptor,
                                                  CALL_TIMEOUT_MS, 1, err, sizeof err);
    if (reply)
        protobuf_c_message_free_unpacked (reply, NULL);
    pthread_barrier_wait (&load->start);

    //  A service with a name and two tags: a typical small entity.
    char *value = (char *) zmalloc (load->env->tag_bytes + 1);
    memset (value, 'v', load->env->tag_bytes);
    Ep__Tag tags [2] = { EP__TAG__INIT, EP__TAG__INIT };
    Ep__Tag *tag_ptrs [2] = { &tags [0], &tags [1] };
    tags [0].key = "site";
    tags [1].key = "owner";
    tags [0].value = tags [1].value = value;
    Ep__Service service = EP__SERVICE__INIT;
    service.has_enabled = service.enabled = true;
    service.n_tags = 2;
    service.tags = tag_ptrs;
    Ep__Entity entity = EP__ENTITY__INIT;
    entity.kind_case = EP__ENTITY__KIND_SERVICE;
    entity.service = &service;
    Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
    write.has_op = true;
    write.op = EP__MODEL_WRITE__OP__CREATE;
    write.entity = &entity;
    request.op_case = EP__MODEL_REQUEST__OP_WRITE;
    request.write = &write;
    for (int i = 0; i < load->per_client; i++) {
        int index = self->index * load->per_client + i;
        char id [32];
        s_id (load, index, id, sizeof id);
        service.id = service.name = id;
        ep_rpc_new_id (request_id);
        load->sent_us [index] = ep_mono_us ();
        Ep__ModelReply *answer = (Ep__ModelReply *) ep_rpc_client_call (
            client, &request.base, request_id, &ep__model_reply__descriptor,
            CALL_TIMEOUT_MS, 1, err, sizeof err);
        load->replied_us [index] = ep_mono_us ();
        bool ok = answer && (!answer->status || !answer->status->has_code
                             || answer->status->code == EP__STATUS__CODE__OK);
        if (!ok && atomic_fetch_add (&load->failures, 1) == 0)
            snprintf (load->error, sizeof load->error, "create %s: %s", id,
                      answer? answer->status->message: err);
        if (ok && index == 0 && answer->n_entities == 1)
            load->entity_bytes = ep__entity__get_packed_size (answer->entities [0]);
        if (answer)
            ep__model_reply__free_unpacked (answer, NULL);
    }
    free (value);
    ep_rpc_client_destroy (&client);
    zcert_destroy (&cert);
    atomic_fetch_add (&load->finished, 1);
    return NULL;
}

//  The observer: marks creates of this load as visible.
static void
s_on_change (void *arg, const ep_model_event_t *event)
{
    s_load_t *load = (s_load_t *) arg;
    size_t prefix = strlen (load->prefix);
    if (event->kind != EP__MODEL_OP__KIND__CREATED || strncmp (event->id, load->prefix, prefix) != 0)
        return;
    int index = atoi (event->id + prefix + 1);
    if (index >= 0 && index < load->clients * load->per_client && !load->visible_us [index]) {
        load->visible_us [index] = ep_mono_us ();
        load->visible++;
    }
}

//  Runs the follower until done (arg) or timeout_ms; returns done's last
//  value.
static bool
s_pump (s_env_t *env, bool (*done) (void *), void *arg, int timeout_ms)
{
    int64_t deadline = ep_mono_ms () + timeout_ms;
    while (!done (arg)) {
        int64_t left = deadline - ep_mono_ms ();
        if (left <= 0)
            return done (arg);
        int64_t wait = ep_follower_tick (env->follower);
        //  At least every 10 ms: the clients' progress is not on a socket.
        wait = wait < left? wait: left;
        if (zpoller_wait (env->poller, (int) (wait < 10? wait: 10)))
            ep_follower_handle (env->follower);
    }
    return true;
}

static bool
s_live (void *arg)
{
    ep_follower_t *follower = (ep_follower_t *) arg;
    return ep_follower_ready (follower) && streq (ep_follower_state (follower), "live");
}

static bool
s_all_visible (void *arg)
{
    s_load_t *load = (s_load_t *) arg;
    return (atomic_load (&load->finished) == load->clients && atomic_load (&load->failures) > 0)
        || load->visible == load->clients * load->per_client;
}

//  Runs clients x per_client creates at once, while the follower in this
//  thread records when each became visible. Returns 0 or -1.
static int
s_load_run (s_env_t *env, s_load_t *load, int clients, int per_client)
{
    memset (load, 0, sizeof *load);
    load->env = env;
    load->clients = clients;
    load->per_client = per_client;
    snprintf (load->prefix, sizeof load->prefix, "b%d", ++env->cases);
    size_t n = (size_t) clients * (size_t) per_client;
    load->sent_us = (int64_t *) calloc (n, sizeof (int64_t));
    load->replied_us = (int64_t *) calloc (n, sizeof (int64_t));
    load->visible_us = (int64_t *) calloc (n, sizeof (int64_t));
    ep_model_view_set_observer (env->view, s_on_change, load);
    EP_ASSERT (pthread_barrier_init (&load->start, NULL, (unsigned) clients + 1) == 0);
    s_client_t *threads = (s_client_t *) calloc ((size_t) clients, sizeof (s_client_t));
    for (int i = 0; i < clients; i++) {
        threads [i].load = load;
        threads [i].index = i;
        EP_ASSERT (pthread_create (&threads [i].thread, NULL, s_client_run, &threads [i]) == 0);
    }
    pthread_barrier_wait (&load->start);
    load->start_us = ep_mono_us ();
    int64_t cpu_start [3];
    s_cpu_now (env, cpu_start);
    int64_t busy_start = bench_machine_busy_us ();
    int rc = 0;
    if (!s_pump (env, s_all_visible, load, 120000)) {
        fprintf (stderr, "model_bench: the follower saw %d of %zu creates (%s)\n", load->visible, n,
                 ep_follower_last_error (env->follower));
        rc = -1;
    }
    for (int i = 0; i < clients; i++)
        pthread_join (threads [i].thread, NULL);
    s_cpu_now (env, load->cpu_us);
    int64_t busy = bench_machine_busy_us () - busy_start, elapsed = ep_mono_us () - load->start_us;
    for (int i = 0; i < 3; i++) {
        load->cpu_us [i] -= cpu_start [i];
        busy -= load->cpu_us [i];
    }
    load->background_cores = elapsed > 0 && busy > 0? (double) busy / (double) elapsed: 0;
    ep_model_view_set_observer (env->view, NULL, NULL);
    load->end_us = 0;
    for (size_t i = 0; i < n; i++)
        if (load->replied_us [i] > load->end_us)
            load->end_us = load->replied_us [i];
    if (atomic_load (&load->failures) > 0) {
        fprintf (stderr, "model_bench: %d creates failed; first: %s\n",
                 atomic_load (&load->failures), load->error);
        rc = -1;
    }
    pthread_barrier_destroy (&load->start);
    free (threads);
    return rc;
}

static void
s_load_free (s_load_t *load)
{
    free (load->sent_us);
    free (load->replied_us);
    free (load->visible_us);
}

static double
s_load_rate (s_load_t *load)
{
    double seconds = (double) (load->end_us - load->start_us) / 1e6;
    return seconds > 0? load->clients * load->per_client / seconds: 0;
}

//  The model's writes_per_commit histogram: sum and count so far.
static int
s_batch_counts (s_env_t *env, double *sum, double *count)
{
    char *page = ep_http_get (ep_proc_endpoint (env->model, "http"), "/metrics");
    *sum = page? ep_metric_value (page, WRITES_SERIES "_sum"): -1;
    *count = page? ep_metric_value (page, WRITES_SERIES "_count"): -1;
    free (page);
    return *sum >= 0 && *count >= 0? 0: -1;
}

//  ---------------------------------------------------------------------
//  The raw SQLite side

static int
s_exec (sqlite3 *db, const char *sql)
{
    char *message = NULL;
    if (sqlite3_exec (db, sql, NULL, NULL, &message) != SQLITE_OK) {
        fprintf (stderr, "model_bench: sqlite: %s: %s\n", sql, message? message: "?");
        sqlite3_free (message);
        return -1;
    }
    return 0;
}

//  Inserts n rows of row_bytes into a fresh database in dir, batch rows
//  per transaction, with the model's durability; returns rows/s or -1, and
//  the CPU (this process's) per row in *cpu_us.
static double
s_raw_inserts (s_env_t *env, int n, int batch, size_t row_bytes, double *cpu_us)
{
    char *path = zsys_sprintf ("%s/raw-%d.db", env->dir, ++env->cases);
    sqlite3 *db = NULL;
    sqlite3_stmt *insert = NULL;
    double rate = -1;
    uint8_t *body = (uint8_t *) malloc (row_bytes);
    randombytes_buf (body, row_bytes);
    //  The model's pragmas and the shape of its entities table.
    if (sqlite3_open (path, &db) != SQLITE_OK
    ||  s_exec (db, "PRAGMA journal_mode=WAL") || s_exec (db, "PRAGMA synchronous=FULL")
    ||  s_exec (db, "CREATE TABLE entities (type INTEGER NOT NULL, id TEXT NOT NULL, name TEXT,"
                    "  version INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (type, id)) WITHOUT ROWID;"
                    "CREATE INDEX entities_by_name ON entities (type, name, id)")
    ||  sqlite3_prepare_v2 (db, "INSERT INTO entities (type, id, name, version, body)"
                                " VALUES (2, ?1, ?1, ?2, ?3)", -1, &insert, NULL) != SQLITE_OK)
        fprintf (stderr, "model_bench: cannot set up %s: %s\n", path, sqlite3_errmsg (db));
    else {
        int64_t start = ep_mono_us ();
        int64_t cpu_start [3], cpu_end [3];
        s_cpu_now (env, cpu_start);
        bool ok = true;
        for (int i = 0; ok && i < n; i += batch) {
            ok = s_exec (db, "BEGIN") == 0;
            for (int j = i; ok && j < i + batch && j < n; j++) {
                char id [32];
                snprintf (id, sizeof id, "raw-%07d", j);
                //  A different row each time, as entities are.
                body [j % row_bytes] ^= 1;
                sqlite3_bind_text (insert, 1, id, -1, SQLITE_TRANSIENT);
                sqlite3_bind_int64 (insert, 2, j + 1);
                sqlite3_bind_blob (insert, 3, body, (int) row_bytes, SQLITE_STATIC);
                ok = sqlite3_step (insert) == SQLITE_DONE;
                sqlite3_reset (insert);
            }
            ok = ok && s_exec (db, "COMMIT") == 0;
        }
        double seconds = (double) (ep_mono_us () - start) / 1e6;
        s_cpu_now (env, cpu_end);
        *cpu_us = (double) (cpu_end [CPU_CLIENTS] - cpu_start [CPU_CLIENTS]) / n;
        if (ok && seconds > 0)
            rate = n / seconds;
        else
            fprintf (stderr, "model_bench: raw inserts failed: %s\n", sqlite3_errmsg (db));
    }
    sqlite3_finalize (insert);
    sqlite3_close (db);
    unlink (path);
    char *wal = zsys_sprintf ("%s-wal", path), *shm = zsys_sprintf ("%s-shm", path);
    unlink (wal);
    unlink (shm);
    free (wal);
    free (shm);
    free (path);
    free (body);
    return rate;
}

//  ---------------------------------------------------------------------
//  The etcd store's baseline

//  Waits for the call's callback, up to CALL_TIMEOUT_MS.
static bool
s_txn_wait (s_env_t *env, bench_etcd_call_t *txn)
{
    return bench_etcd_wait (env->etcd, txn, CALL_TIMEOUT_MS);
}

//  Starts one etcd member in dir/etcd on two free 127.0.0.1 ports, with
//  the limits the model's etcd store is documented with. Returns 0 or -1.
static int
s_etcd_start (s_env_t *env)
{
    int ports [2];
    ep_test_stable_ports (ports, 2);
    env->member = bench_etcd_start (env->dir, ports, 1024);
    env->etcd = env->member? bench_etcd_client (env->member): NULL;
    return env->member? 0: -1;
}

static void
s_etcd_stop (s_env_t *env)
{
    env->etcd = NULL;
    bench_etcd_stop (&env->member, false);
}

//  n writes of row_bytes, batch per transaction, shaped as the model's etcd
//  store commits them (see the top); returns writes/s or -1, and this
//  process's CPU per write in *cpu_us.
static double
s_raw_txns (s_env_t *env, int n, int batch, size_t row_bytes, double *cpu_us)
{
    int run = ++env->cases;
    uint8_t *body = (uint8_t *) malloc (row_bytes);
    randombytes_buf (body, row_bytes);
    char *state = zsys_sprintf ("/raw-%d/state", run);
    size_t max = (size_t) batch;
    ep_etcd_compare_t *compares = (ep_etcd_compare_t *) calloc (max + 1, sizeof (ep_etcd_compare_t));
    ep_etcd_op_t *ops = (ep_etcd_op_t *) calloc (3 * max + 1, sizeof (ep_etcd_op_t));
    char (*keys) [3][64] = calloc (max, sizeof *keys);
    int64_t state_mod = 0;
    int64_t start = ep_mono_us ();
    int64_t cpu_start [3], cpu_end [3];
    s_cpu_now (env, cpu_start);
    bool ok = true;
    for (int i = 0; ok && i < n; i += batch) {
        size_t nc = 0, no = 0;
        compares [nc++] = (ep_etcd_compare_t) { .key = ep_etcd_str (state), .target = EP_ETCD_MOD,
                                                .result = EP_ETCD_EQUAL, .number = state_mod };
        for (int j = i; j < i + batch && j < n; j++) {
            char (*k) [64] = keys [j - i];
            snprintf (k [0], 64, "/raw-%d/entities/2/raw-%07d", run, j);
            snprintf (k [1], 64, "/raw-%d/changes/%020d", run, j + 1);
            snprintf (k [2], 64, "/raw-%d/replies/%020d", run, j + 1);
            //  A different value each time, as entities are.
            body [j % row_bytes] ^= 1;
            compares [nc++] = (ep_etcd_compare_t) { .key = ep_etcd_str (k [0]), .target = EP_ETCD_CREATE,
                                                    .result = EP_ETCD_EQUAL, .number = 0 };
            for (int w = 0; w < 3; w++)
                ops [no++] = (ep_etcd_op_t) { .kind = EP_ETCD_PUT, .u.put = {
                    .key = ep_etcd_str (k [w]), .value = { body, row_bytes } } };
        }
        char value [32];
        snprintf (value, sizeof value, "%d", i);
        ops [no++] = (ep_etcd_op_t) { .kind = EP_ETCD_PUT, .u.put = {
            .key = ep_etcd_str (state), .value = ep_etcd_str (value) } };
        ep_etcd_txn_t txn = { compares, nc, ops, no, NULL, 0 };
        bench_etcd_call_t result = { 0 };
        char err [256];
        ok = ep_etcd_txn (env->etcd, &txn, bench_etcd_done, &result, err, sizeof err) == 0
          && s_txn_wait (env, &result) && result.ok;
        if (!ok)
            fprintf (stderr, "model_bench: raw etcd transaction %d failed: %s\n", i / batch,
                     *result.error? result.error: err);
        state_mod = result.revision;
    }
    double seconds = (double) (ep_mono_us () - start) / 1e6;
    s_cpu_now (env, cpu_end);
    *cpu_us = (double) (cpu_end [CPU_CLIENTS] - cpu_start [CPU_CLIENTS]) / n;
    free (keys);
    free (ops);
    free (compares);
    free (state);
    free (body);
    return ok && seconds > 0? n / seconds: -1;
}

//  The baseline of the model's store: raw SQLite inserts or etcd transactions.
static double
s_raw (s_env_t *env, int n, int batch, size_t row_bytes, double *cpu_us)
{
    return env->etcd_store? s_raw_txns (env, n, batch, row_bytes, cpu_us):
                            s_raw_inserts (env, n, batch, row_bytes, cpu_us);
}

//  ---------------------------------------------------------------------
//  Figures

//  The p-th percentile (nearest rank) of count values; sorts them.
static double
s_percentile (double *values, size_t count, double p)
{
    if (count == 0)
        return 0;
    qsort (values, count, sizeof (double), bench_compare_doubles);
    size_t rank = (size_t) ceil (p / 100 * (double) count);
    return values [rank > 0? rank - 1: 0];
}

//  The percentiles of the latency distributions (bench/run plots them).
static const double s_cdf_points [] = {
    0, 1, 2, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90,
    92, 94, 95, 96, 97, 98, 99, 99.5, 99.9, 100
};
#define CDF_POINTS (sizeof s_cdf_points / sizeof s_cdf_points [0])

//  Latencies of a followed load, in ms: to the reply and to the follower.
typedef struct {
    double reply_p50, reply_p99;        //  send -> reply (durable)
    double visible_p50, visible_p99;    //  send -> the follower's observer
    double visible_cdf [CDF_POINTS];    //  send -> follower at s_cdf_points
    double reply_cdf [CDF_POINTS];      //  send -> reply at s_cdf_points
} s_latency_t;

static s_latency_t
s_latencies (s_load_t *load)
{
    size_t n = (size_t) load->clients * (size_t) load->per_client;
    double *reply = (double *) malloc (n * sizeof (double));
    double *visible = (double *) malloc (n * sizeof (double));
    for (size_t i = 0; i < n; i++) {
        reply [i] = (double) (load->replied_us [i] - load->sent_us [i]) / 1000;
        visible [i] = (double) (load->visible_us [i] - load->sent_us [i]) / 1000;
    }
    s_latency_t latency = {
        .reply_p50 = s_percentile (reply, n, 50), .reply_p99 = s_percentile (reply, n, 99),
        .visible_p50 = s_percentile (visible, n, 50), .visible_p99 = s_percentile (visible, n, 99)
    };
    for (size_t i = 0; i < CDF_POINTS; i++) {
        latency.visible_cdf [i] = s_percentile (visible, n, s_cdf_points [i]);
        latency.reply_cdf [i] = s_percentile (reply, n, s_cdf_points [i]);
    }
    free (reply);
    free (visible);
    return latency;
}

static json_t *
s_machine (const char *dir)
{
    json_t *machine = bench_machine ();
    //  Which filesystem the databases were on: durability costs depend on it.
    char *cmd = zsys_sprintf ("df -PT '%s' | awk 'NR==2 {print $1 \" \" $2}'", dir);
    char *fs = NULL;
    ep_run (cmd, &fs);
    free (cmd);
    if (fs && strchr (fs, '\n'))
        *strchr (fs, '\n') = 0;
    json_object_set_new (machine, "sqlite", json_string (sqlite3_libversion ()));
    json_object_set_new (machine, "filesystem", json_string (fs? fs: "?"));
    free (fs);
    return machine;
}

//  Starts a model instance (kernel-chosen ports, CURVE) publishing to the
//  bus, its data under dir/model-<instance>. NULL if it did not start.
static ep_proc_t *
s_model_start (s_env_t *env, const char *instance)
{
    char *env_keys = zsys_sprintf ("EDGEPLANE_KEYS_DIR=%s", env->keys);
    char *env_data = zsys_sprintf ("EDGEPLANE_DATA_DIR=%s/model-%s", env->dir, instance);
    char *env_instance = zsys_sprintf ("EDGEPLANE_INSTANCE_ID=%s", instance);
    char *env_ttl = zsys_sprintf ("EDGEPLANE_MODEL_LEASE_TTL=%lldms", (long long) env->lease_ttl_ms);
    char *env_endpoints = zsys_sprintf ("EDGEPLANE_ETCD_ENDPOINTS=%s",
                                        env->member? bench_etcd_endpoint (env->member): "");
    const char *environment [] = { env_keys, env_data, env_instance, env_ttl, "EDGEPLANE_LOG_LEVEL=warn",
                                   env->etcd_store? "EDGEPLANE_MODEL_STORE=etcd": NULL, env_endpoints, NULL };
    char *bus_pub = zsys_sprintf ("--bus-pub=%s", ep_proc_connect_endpoint (env->bus, "pub"));
    const char *model_args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", "127.0.0.1:0",
                                  bus_pub, NULL };
    //  Ready once its mirror holds the prefix: a full run's cases leave
    //  about 130,000 entities in etcd before the failover case starts one.
    ep_proc_t *model = ep_proc_start ("edgeplane-model", model_args, environment, 120000);
    if (!model)
        fprintf (stderr, "model_bench: edgeplane-model (instance %s) did not start\n", instance);
    free (bus_pub);
    free (env_keys);
    free (env_data);
    free (env_instance);
    free (env_ttl);
    free (env_endpoints);
    return model;
}

//  A follower of the model at api (one endpoint or a list) in this
//  process, as a service follows it, with its own certificate: the model
//  publishes every change to a real subscriber. Returns 0 once it is live.
static int
s_follower_start (s_env_t *env, const char *api)
{
    env->follower = ep_follower_new (ep_proc_connect_endpoint (env->bus, "sub"), api,
                                     env->follower_cert, env->bus_key, env->model_key, env->view);
    EP_ASSERT (env->follower);
    env->poller = zpoller_new (ep_follower_socket (env->follower),
                               ep_follower_rpc_socket (env->follower), NULL);
    if (!s_pump (env, s_live, env->follower, 120000)) {
        fprintf (stderr, "model_bench: the follower never went live: %s\n",
                 ep_follower_last_error (env->follower));
        return -1;
    }
    return 0;
}

//  Starts the bus, the model and a follower of the model in this process.
//  Returns 0 or -1.
static int
s_env_start (s_env_t *env)
{
    if (env->etcd_store && s_etcd_start (env) != 0)
        return -1;
    char *env_keys = zsys_sprintf ("EDGEPLANE_KEYS_DIR=%s", env->keys);
    const char *environment [] = { env_keys, "EDGEPLANE_LOG_LEVEL=warn", NULL };
    const char *bus_args [] = { "--pub-listen", "tcp://127.0.0.1:*", "--sub-listen", "tcp://127.0.0.1:*",
                                "--http-listen", "127.0.0.1:0", NULL };
    env->bus = ep_proc_start ("edgeplane-bus", bus_args, environment, 10000);
    free (env_keys);
    if (!env->bus) {
        fprintf (stderr, "model_bench: edgeplane-bus did not start\n");
        return -1;
    }
    env->model = s_model_start (env, "a");
    if (!env->model)
        return -1;
    env->model_key = ep_keys_public_txt (env->keys, "model");
    env->bus_key = ep_keys_public_txt (env->keys, "bus");
    env->follower_cert = ep_keys_load (env->keys, "terminators");
    env->view = ep_model_view_new ();
    return s_follower_start (env, ep_proc_connect_endpoint (env->model, "api"));
}

static void
s_env_stop (s_env_t *env)
{
    zpoller_destroy (&env->poller);
    ep_follower_destroy (&env->follower);
    ep_model_view_destroy (&env->view);
    zcert_destroy (&env->follower_cert);
    ep_proc_destroy (&env->model);
    ep_proc_destroy (&env->bus);
    s_etcd_stop (env);
    zstr_free (&env->model_key);
    zstr_free (&env->bus_key);
    zstr_free (&env->keys);
    ep_tmpdir_remove (&env->dir);
}

//  ---------------------------------------------------------------------
//  Failover (--store etcd): a second instance on the same prefix. While
//  one client writes as fast as it is answered, through both instances,
//  the publisher is SIGKILLed; the failover is the time from the kill to
//  the follower seeing the first write sent after it (the next published
//  change). The killed instance is started again; the next repetition
//  kills whichever publishes then.

typedef struct {
    s_env_t *env;               //  services and keys
    char api [256];             //  both instances' API endpoints
    char prefix [16];           //  id prefix of this repetition
    atomic_bool stop;           //  the writer stops
    atomic_int next;            //  the index the writer sends next
    int after_kill;             //  the first index sent after the kill (-1: no kill yet)
    int64_t killed_us;          //  when the publisher was killed
    int64_t failover_us;        //  kill -> the first write after it seen (0: not yet)
    pthread_t thread;           //  the writer
} s_failover_t;

static void *
s_failover_writer (void *arg)
{
    s_failover_t *self = (s_failover_t *) arg;
    zcert_t *cert = ep_keys_load (self->env->keys, "operator");
    EP_ASSERT (cert);
    ep_rpc_client_t *client = ep_rpc_client_new (self->api, cert, self->env->model_key);
    EP_ASSERT (client);
    Ep__Service service = EP__SERVICE__INIT;
    Ep__Entity entity = EP__ENTITY__INIT;
    entity.kind_case = EP__ENTITY__KIND_SERVICE;
    entity.service = &service;
    Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
    write.has_op = true;
    write.op = EP__MODEL_WRITE__OP__CREATE;
    write.entity = &entity;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.op_case = EP__MODEL_REQUEST__OP_WRITE;
    request.write = &write;
    while (!atomic_load (&self->stop)) {
        char id [32], request_id [33], err [256];
        snprintf (id, sizeof id, "%s-%07d", self->prefix, atomic_load (&self->next));
        service.id = service.name = id;
        ep_rpc_new_id (request_id);
        request.request_id = request_id;
        //  Short attempts: a call to the killed instance moves to the other.
        ProtobufCMessage *reply = ep_rpc_client_call (client, &request.base, request_id,
                                                      &ep__model_reply__descriptor, 500, 40, err, sizeof err);
        if (reply)
            protobuf_c_message_free_unpacked (reply, NULL);
        atomic_fetch_add (&self->next, 1);
    }
    ep_rpc_client_destroy (&client);
    zcert_destroy (&cert);
    return NULL;
}

static void
s_failover_seen (void *arg, const ep_model_event_t *event)
{
    s_failover_t *self = (s_failover_t *) arg;
    size_t prefix = strlen (self->prefix);
    if (self->after_kill < 0 || self->failover_us || event->kind != EP__MODEL_OP__KIND__CREATED
    ||  strncmp (event->id, self->prefix, prefix) != 0)
        return;
    if (atoi (event->id + prefix + 1) >= self->after_kill)
        self->failover_us = ep_mono_us () - self->killed_us;
}

static bool
s_failover_done (void *arg)
{
    return ((s_failover_t *) arg)->failover_us > 0;
}

//  Which of the two instances publishes: 0 or 1 once exactly one says so
//  on its /metrics, -1 until then.
static int
s_publisher (ep_proc_t *models [2])
{
    int publisher = -1, count = 0;
    for (int i = 0; i < 2; i++) {
        char *page = ep_http_get (ep_proc_endpoint (models [i], "http"), "/metrics");
        if (page && ep_metric_value (page, "edgeplane_model_publisher") == 1) {
            publisher = i;
            count++;
        }
        free (page);
    }
    return count == 1? publisher: -1;
}

//  Runs reps failovers; their times in ms go to times. Returns 0 or -1.
static int
s_failovers (s_env_t *env, int reps, double *times)
{
    static const char *names [2] = { "a", "b" };
    ep_proc_t *models [2] = { env->model, s_model_start (env, "b") };
    env->model = NULL;          //  owned here now; given back at the end
    int rc = models [1]? 0: -1;
    s_failover_t self = { .env = env };
    if (rc == 0) {
        //  The follower of the earlier cases asks one instance; this one both.
        zpoller_destroy (&env->poller);
        ep_follower_destroy (&env->follower);
        snprintf (self.api, sizeof self.api, "%s,%s", ep_proc_connect_endpoint (models [0], "api"),
                  ep_proc_connect_endpoint (models [1], "api"));
        rc = s_follower_start (env, self.api);
    }
    for (int rep = 0; rc == 0 && rep < reps; rep++) {
        snprintf (self.prefix, sizeof self.prefix, "f%d", ++env->cases);
        self.after_kill = -1;
        self.failover_us = 0;
        atomic_store (&self.stop, false);
        atomic_store (&self.next, 0);
        int64_t deadline = ep_mono_ms () + 3 * env->lease_ttl_ms + 10000;
        int publisher;
        while ((publisher = s_publisher (models)) < 0 && ep_mono_ms () < deadline)
            s_pump (env, s_failover_done, &self, 100);
        if (publisher < 0) {
            fprintf (stderr, "model_bench: no single publisher among the two instances\n");
            rc = -1;
            break;
        }
        ep_model_view_set_observer (env->view, s_failover_seen, &self);
        EP_ASSERT (pthread_create (&self.thread, NULL, s_failover_writer, &self) == 0);
        //  Writes flowing before the kill.
        while (atomic_load (&self.next) < 20 && ep_mono_ms () < deadline)
            s_pump (env, s_failover_done, &self, 10);
        self.killed_us = ep_mono_us ();
        ep_proc_signal (models [publisher], SIGKILL);
        self.after_kill = atomic_load (&self.next) + 1;
        s_pump (env, s_failover_done, &self, (int) (3 * env->lease_ttl_ms + 10000));
        atomic_store (&self.stop, true);
        pthread_join (self.thread, NULL);
        ep_model_view_set_observer (env->view, NULL, NULL);
        ep_proc_destroy (&models [publisher]);
        if (!self.failover_us) {
            fprintf (stderr, "model_bench: no write published after the publisher's kill\n");
            rc = -1;
            break;
        }
        times [rep] = (double) self.failover_us / 1000;
        fprintf (stderr, "model_bench: failover %d: %.0f ms (lease TTL %lld ms)\n", rep + 1, times [rep],
                 (long long) env->lease_ttl_ms);
        //  Back, on new ports: the follower and the writer get the new list.
        models [publisher] = s_model_start (env, names [publisher]);
        if (!models [publisher]) {
            rc = -1;
            break;
        }
        zpoller_destroy (&env->poller);
        ep_follower_destroy (&env->follower);
        snprintf (self.api, sizeof self.api, "%s,%s", ep_proc_connect_endpoint (models [0], "api"),
                  ep_proc_connect_endpoint (models [1], "api"));
        rc = s_follower_start (env, self.api);
    }
    env->model = models [0]? models [0]: models [1];
    ep_proc_destroy (models [0]? &models [1]: &models [0]);
    return rc;
}

//  The figures of one model case, for the median over repetitions.
typedef struct {
    double rate [20];           //  writes/s
    double cpu [3][20];         //  model, bus, clients: us per write
    double latency [4][20];     //  visible p50, p99, reply p50, p99 (ms)
    s_latency_t last;           //  the last repetition's distributions
} s_figures_t;

static void
s_figures_add (s_figures_t *self, int rep, s_load_t *load)
{
    double n = (double) load->clients * load->per_client;
    self->rate [rep] = s_load_rate (load);
    for (int who = 0; who < 3; who++)
        self->cpu [who][rep] = (double) load->cpu_us [who] / n;
    s_latency_t latency = s_latencies (load);
    self->latency [0][rep] = latency.visible_p50;
    self->latency [1][rep] = latency.visible_p99;
    self->latency [2][rep] = latency.reply_p50;
    self->latency [3][rep] = latency.reply_p99;
    self->last = latency;
}

//  Adds the medians of figures to result, keys ending in suffix.
static void
s_figures_report (s_figures_t *self, int reps, const char *suffix, json_t *result)
{
    static const char *whose [] = { "model", "bus", "clients" };
    static const char *latencies [] = { "visible_p50_ms", "visible_p99_ms", "reply_p50_ms", "reply_p99_ms" };
    char key [64];
    snprintf (key, sizeof key, "model_writes_per_s_%s", suffix);
    json_object_set_new (result, key, json_integer ((json_int_t) bench_median (self->rate, (size_t) reps)));
    for (int i = 0; i < 4; i++) {
        snprintf (key, sizeof key, "%s_%s", latencies [i], suffix);
        json_object_set_new (result, key, bench_real (bench_median (self->latency [i], (size_t) reps)));
    }
    for (int who = 0; who < 3; who++) {
        snprintf (key, sizeof key, "%s_cpu_us_per_write_%s", whose [who], suffix);
        json_object_set_new (result, key, bench_real (bench_median (self->cpu [who], (size_t) reps)));
    }
    //  Distributions of the last repetition: [percentile, ms] pairs.
    json_t *visible = json_array (), *reply = json_array ();
    for (size_t i = 0; i < CDF_POINTS; i++) {
        json_array_append_new (visible, json_pack ("[f, o]", s_cdf_points [i], bench_real (self->last.visible_cdf [i])));
        json_array_append_new (reply, json_pack ("[f, o]", s_cdf_points [i], bench_real (self->last.reply_cdf [i])));
    }
    snprintf (key, sizeof key, "visible_cdf_ms_%s", suffix);
    json_object_set_new (result, key, visible);
    snprintf (key, sizeof key, "reply_cdf_ms_%s", suffix);
    json_object_set_new (result, key, reply);
}

int
main (int argc, char **argv)
{
    static bool quick;
    static int64_t reps, n_single, per_client, clients, tag_bytes, lease_ttl, failovers;
    static char *store;
    static const char *stores [] = { "sqlite", "etcd", NULL };
    ep_opt_t opts [] = {
        { .name = "store", .def = "sqlite", .type = EP_OPT_ENUM, .words = stores, .str = &store,
          .help = "The model's store: sqlite (raw SQLite baselines) or etcd (a single-member etcd "
                  "started here, raw etcd transaction baselines)." },
        { .name = "quick", .def = "false", .type = EP_OPT_BOOL, .flag = &quick,
          .help = "Smaller runs, one repetition (well under 30 s)." },
        { .name = "reps", .def = "0", .type = EP_OPT_INT, .num = &reps, .min = 0, .max = 20,
          .help = "Repetitions of every case, medians reported (0: 1 quick, 3 full)." },
        { .name = "n-single", .def = "0", .type = EP_OPT_INT, .num = &n_single, .min = 0, .max = 10000000,
          .help = "Creates by the single client (0: 2000 quick, 10000 full)." },
        { .name = "clients", .def = "32", .type = EP_OPT_INT, .num = &clients, .min = 2, .max = CLIENTS_MAX,
          .help = "Clients of the concurrent case." },
        { .name = "per-client", .def = "0", .type = EP_OPT_INT, .num = &per_client, .min = 0, .max = 1000000,
          .help = "Creates by each concurrent client (0: 150 quick, 1000 full)." },
        { .name = "lease-ttl", .def = "3s", .type = EP_OPT_DURATION, .num = &lease_ttl, .min = 1000, .max = 60000,
          .help = "The model instances' publisher lease (EDGEPLANE_MODEL_LEASE_TTL), for the failover case." },
        { .name = "failovers", .def = "-1", .type = EP_OPT_INT, .num = &failovers, .min = -1, .max = 20,
          .help = "With --store etcd: publisher kills to time (-1: 2 quick, 7 full; 0: none)." },
        { .name = "tag-bytes", .def = "48", .type = EP_OPT_INT, .num = &tag_bytes, .min = 0, .max = 256,
          .help = "Value length of each of the entity's two tags (sets the row size)." },
    };
    ep_config_t *config = ep_config_new ("model_bench",
        "Durable writes/s through edgeplane-model and write -> follower latency, "
        "against raw SQLite inserts measured in the same run.");
    ep_config_add (config, opts, EP_COUNT (opts));
    ep_config_parse_or_exit (config, argc, argv);
    if (!reps)
        reps = quick? 1: 3;
    if (!n_single)
        n_single = quick? 2000: 10000;
    if (!per_client)
        per_client = quick? 150: 1000;

    if (failovers < 0)
        failovers = quick? 2: 7;
    s_env_t env = { .tag_bytes = (size_t) tag_bytes, .etcd_store = streq (store, "etcd"),
                    .lease_ttl_ms = lease_ttl };
    //  The model's database and the raw one share this directory: same disk.
    env.dir = ep_tmpdir_new ("model-bench");
    env.keys = zsys_sprintf ("%s/keys", env.dir);
    char err [256];
    EP_ASSERT (ep_keys_init (env.keys, false, err, sizeof err) == 0);
    int rc = s_env_start (&env);

    //  Warm up: connections, the database file, the page cache; and the
    //  size of a stored entity, which the raw rows copy.
    s_load_t load = { 0 };
    if (rc == 0)
        rc = s_load_run (&env, &load, 4, 50);
    size_t row_bytes = load.entity_bytes;
    s_load_free (&load);
    if (rc == 0 && row_bytes == 0) {
        fprintf (stderr, "model_bench: the create replies carry no entity: cannot size the raw rows\n");
        rc = -1;
    }

    s_figures_t single = { 0 }, concurrent = { 0 };
    double raw_1 [20], raw_batch [20], batches [20], raw_cpu_1 [20], raw_cpu_batch [20];
    double background = 0;      //  most CPU others used during a model case, in cores
    json_t *runs = json_array ();
    //  Cases interleave within a repetition, so a slow spell of the disk
    //  hits the model and the baseline alike.
    for (int rep = 0; rc == 0 && rep < reps; rep++) {
        rc = s_load_run (&env, &load, 1, (int) n_single);
        s_figures_add (&single, rep, &load);
        background = fmax (background, load.background_cores);
        s_load_free (&load);
        raw_1 [rep] = rc == 0? s_raw (&env, (int) n_single, 1, row_bytes, &raw_cpu_1 [rep]): -1;
        double sum0, count0, sum1, count1;
        if (raw_1 [rep] <= 0 || s_batch_counts (&env, &sum0, &count0) != 0) {
            rc = -1;
            break;
        }
        rc = s_load_run (&env, &load, (int) clients, (int) per_client);
        s_figures_add (&concurrent, rep, &load);
        background = fmax (background, load.background_cores);
        s_load_free (&load);
        if (rc != 0 || s_batch_counts (&env, &sum1, &count1) != 0 || count1 <= count0) {
            fprintf (stderr, "model_bench: cannot read %s from the model's /metrics\n", WRITES_SERIES);
            rc = -1;
            break;
        }
        batches [rep] = (sum1 - sum0) / (count1 - count0);
        int batch = (int) lround (batches [rep]);
        raw_batch [rep] = s_raw (&env, (int) (clients * per_client), batch > 0? batch: 1,
                                 row_bytes, &raw_cpu_batch [rep]);
        if (raw_batch [rep] <= 0) {
            rc = -1;
            break;
        }
        fprintf (stderr, "model_bench: rep %d: 1 client %.0f/s (raw %.0f/s), %d clients %.0f/s "
                 "(raw at %.1f rows/txn %.0f/s); visible p50/p99 %.2f/%.2f ms (1), %.2f/%.2f ms (%d); "
                 "others used up to %.2f cores\n",
                 rep + 1, single.rate [rep], raw_1 [rep], (int) clients, concurrent.rate [rep],
                 batches [rep], raw_batch [rep], single.latency [0][rep], single.latency [1][rep],
                 concurrent.latency [0][rep], concurrent.latency [1][rep], (int) clients, background);
        json_array_append_new (runs, json_pack ("{s:i, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
            "rep", rep + 1, "model_writes_per_s_1", bench_real (single.rate [rep]),
            "raw_inserts_per_s_txn1", bench_real (raw_1 [rep]),
            "model_writes_per_s_n", bench_real (concurrent.rate [rep]),
            "raw_inserts_per_s_batch", bench_real (raw_batch [rep]),
            "writes_per_commit", bench_real (batches [rep]),
            "visible_p50_ms_1", bench_real (single.latency [0][rep]),
            "visible_p99_ms_1", bench_real (single.latency [1][rep]),
            "visible_p50_ms_n", bench_real (concurrent.latency [0][rep]),
            "visible_p99_ms_n", bench_real (concurrent.latency [1][rep])));
    }
    double failover [20];
    if (rc == 0 && env.etcd_store && failovers > 0)
        rc = s_failovers (&env, (int) failovers, failover);
    if (rc == 0) {
        double model_1 = bench_median (single.rate, (size_t) reps);
        double model_n = bench_median (concurrent.rate, (size_t) reps);
        double raw_1_median = bench_median (raw_1, (size_t) reps);
        double raw_batch_median = bench_median (raw_batch, (size_t) reps);
        char date [32];
        json_t *result = json_object ();
        json_object_set_new (result, "benchmark", json_string (env.etcd_store? "model_etcd": "model"));
        json_object_set_new (result, "store", json_string (store));
        json_object_set_new (result, "date", json_string (ep_rfc3339 (ep_wall_ms (), date, sizeof date)));
        json_object_set_new (result, "mode", json_string (quick? "quick": "full"));
        json_object_set_new (result, "clients", json_integer (clients));
        json_object_set_new (result, "raw_inserts_per_s_txn1", json_integer ((json_int_t) raw_1_median));
        json_object_set_new (result, "ratio_1", bench_real (model_1 / raw_1_median));
        json_object_set_new (result, "raw_inserts_per_s_batch", json_integer ((json_int_t) raw_batch_median));
        json_object_set_new (result, "ratio_n", bench_real (model_n / raw_batch_median));
        json_object_set_new (result, "writes_per_commit", bench_real (bench_median (batches, (size_t) reps)));
        s_figures_report (&single, (int) reps, "1", result);
        s_figures_report (&concurrent, (int) reps, "n", result);
        json_object_set_new (result, "raw_cpu_us_per_insert_txn1", bench_real (bench_median (raw_cpu_1, (size_t) reps)));
        json_object_set_new (result, "raw_cpu_us_per_insert_batch", bench_real (bench_median (raw_cpu_batch, (size_t) reps)));
        json_object_set_new (result, "background_cores_max", bench_real (background));
        json_object_set_new (result, "row_bytes", json_integer ((json_int_t) row_bytes));
        if (env.etcd_store && failovers > 0) {
            //  Goal: p99 within the lease TTL + 1 s (the publisher's lease
            //  must end before another takes over).
            json_object_set_new (result, "lease_ttl_ms", json_integer (lease_ttl));
            json_object_set_new (result, "failovers", json_integer (failovers));
            json_object_set_new (result, "failover_p50_ms", bench_real (s_percentile (failover, (size_t) failovers, 50)));
            json_object_set_new (result, "failover_p99_ms", bench_real (s_percentile (failover, (size_t) failovers, 99)));
            json_object_set_new (result, "failover_goal_ms", json_integer (lease_ttl + 1000));
        }
        json_object_set_new (result, "n", json_pack ("{s:I, s:I}", "single", (json_int_t) n_single,
                                                     "concurrent", (json_int_t) (clients * per_client)));
        json_object_set_new (result, "reps", json_integer (reps));
        json_object_set_new (result, "machine", s_machine (env.dir));
        json_object_set_new (result, "runs", runs);
        runs = NULL;
        char *text = json_dumps (result, JSON_INDENT (2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION (6));
        printf ("%s\n", text);
        free (text);
        json_decref (result);
    }
    json_decref (runs);
    s_env_stop (&env);
    ep_config_destroy (&config);
    return rc == 0? 0: 1;
}
