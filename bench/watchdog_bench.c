/*  watchdog_bench.c: the watchdog's control channel under load.

    Three measurements against the real edgeplane-watchdog (with the real
    bus and model), each on a watchdog of its own:

    handshakes  full TLS 1.3 mutual-authentication handshakes per second,
                the watchdog against `openssl s_server` with the same
                certificate, key, CA and CRL, both measured in this run by
                the same client, `openssl s_time -new` presenting a router
                bundle's certificate (-cert/-key). s_time makes one
                connection at a time, so the figure is a serial rate that
                includes the client's own work; it is the same client for
                both servers, so the ratio compares the servers. It closes
                each connection as soon as its side of the handshake is
                done (TLS 1.3: before the server has checked the client's
                certificate), so the server finishes that work while the
                next connection starts. Rates are connections / wall time
                of the s_time run (its own "real seconds" are whole seconds).
    memory      RSS of the watchdog before and after N routers joined and
                went idle (source addresses spread over 127.0.0.2 and up,
                one per connection; heartbeats 1 h so nothing moves),
                divided by N; next to it, the heap OpenSSL itself keeps per
                established server connection, measured in this process.
    strays      N raw TCP connections that send nothing, from N source
                addresses, with a 2 s grace: for each, the time the watchdog
                closed it (seen here) minus (the time just before connect +
                grace). The watchdog's grace runs from its accept, which is
                after our connect, so this includes accept delay: lateness
                as the stray sees it. The watchdog's own view comes from
                its stray.detected events (event time - accepted_at).

    --quick scales N down (1,000) and shortens the s_time runs. Prints one
    JSON object on stdout; progress goes to stderr. Method and figures:
    bench/README.md.
*/
#include "ep_prelude.h"
#include "ep_codec.h"
#include "ep_frame.h"
#include "ep_keys.h"
#include "ep_pki_tls.h"
#include "ep_rpc_client.h"
#include "ep_subscriber.h"
#include "ep_test.h"
#include "bench_model.h"
#include "bench_util.h"
#include "model.pb-c.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <malloc.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/err.h>

#define GRACE_MS        2000        //  stray grace of the strays run
#define FIRST_SOURCE    0x7f000002  //  127.0.0.2: the first client source address

//  What this run does.
typedef struct {
    bool quick;                 //  --quick
    int connections;            //  N for the memory run
    int strays;                 //  N for the strays run
    int stime_seconds;          //  -time of each s_time run
    int reps;                   //  s_time runs per server (median taken)
} s_plan_t;

//  The processes and files every run shares.
typedef struct {
    char *dir;                  //  temporary data dir
    char *keys;                 //  its keys dir
    char *env [9];              //  environment for the services
    ep_proc_t *bus;             //  edgeplane-bus
    ep_proc_t *model;           //  edgeplane-model
} s_world_t;

//  -------------------------------------------------------------------------
//  Helpers

static void
s_say (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    fprintf (stderr, "watchdog_bench: ");
    vfprintf (stderr, format, args);
    fprintf (stderr, "\n");
    va_end (args);
}

static void
s_die (const char *what)
{
    s_say ("FAILED: %s", what);
    exit (1);
}

//  VmRSS of pid in KiB, or -1.
static long
s_rss_kb (pid_t pid)
{
    char path [64], line [256];
    snprintf (path, sizeof path, "/proc/%d/status", (int) pid);
    FILE *file = fopen (path, "r");
    long kb = -1;
    while (file && fgets (line, sizeof line, file))
        if (sscanf (line, "VmRSS: %ld kB", &kb) == 1)
            break;
    if (file)
        fclose (file);
    return kb;
}

//  CPU of this process's waited-for children so far, in us.
static int64_t
s_children_cpu_us (void)
{
    struct rusage usage;
    getrusage (RUSAGE_CHILDREN, &usage);
    return (int64_t) (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000000
         + usage.ru_utime.tv_usec + usage.ru_stime.tv_usec;
}

static int
s_port (const char *address)
{
    const char *colon = strrchr (address, ':');
    return colon? atoi (colon + 1): 0;
}

static int
s_compare_double (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y? -1: x > y;
}

//  The q-quantile (0..1) of sorted values.
static double
s_quantile (const double *sorted, size_t count, double q)
{
    if (count == 0)
        return NAN;
    size_t index = (size_t) ceil (q * (double) count);
    return sorted [index? index - 1: 0];
}

//  A TCP socket bound to source address number index (127.0.0.2 + index),
//  connected (blocking) to 127.0.0.1:port. -1 on failure (errno kept).
static int
s_connect_from (int index, int port)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in source = { .sin_family = AF_INET,
                                  .sin_addr.s_addr = htonl (FIRST_SOURCE + (uint32_t) index) };
    struct sockaddr_in server = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) port),
                                  .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
    if (bind (fd, (struct sockaddr *) &source, sizeof source) != 0
    ||  connect (fd, (struct sockaddr *) &server, sizeof server) != 0) {
        int saved = errno;
        close (fd);
        errno = saved;
        return -1;
    }
    return fd;
}

//  The metric series of a watchdog, or -1.
static double
s_metric (ep_proc_t *watchdog, const char *series)
{
    char *page = ep_http_get (ep_proc_endpoint (watchdog, "http"), "/metrics");
    double value = page? ep_metric_value (page, series): -1;
    free (page);
    return value;
}

//  -------------------------------------------------------------------------
//  The world: keys, bus, model

static void
s_world_start (s_world_t *world)
{
    world->dir = ep_tmpdir_new ("watchdog-bench");
    world->keys = zsys_sprintf ("%s/keys", world->dir);
    char err [512];
    if (ep_keys_init (world->keys, false, err, sizeof err) || ep_pki_init (world->keys, false, err, sizeof err))
        s_die (err);
    world->env [0] = zsys_sprintf ("EDGEPLANE_KEYS_DIR=%s", world->keys);
    world->env [1] = zsys_sprintf ("EDGEPLANE_DATA_DIR=%s", world->dir);
    world->env [2] = strdup ("EDGEPLANE_LOG_LEVEL=warn");
    const char *bus_args [] = { "--pub-listen", "tcp://127.0.0.1:*", "--sub-listen", "tcp://127.0.0.1:*",
                                "--http-listen", "127.0.0.1:0", NULL };
    world->bus = ep_proc_start ("edgeplane-bus", bus_args, (const char *const *) world->env, 10000);
    if (!world->bus)
        s_die ("the bus did not start");
    world->env [3] = zsys_sprintf ("EDGEPLANE_BUS_PUB=%s", ep_proc_connect_endpoint (world->bus, "pub"));
    world->env [4] = zsys_sprintf ("EDGEPLANE_BUS_SUB=%s", ep_proc_connect_endpoint (world->bus, "sub"));
    const char *model_args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", "127.0.0.1:0", NULL };
    world->model = ep_proc_start ("edgeplane-model", model_args, (const char *const *) world->env, 10000);
    if (!world->model)
        s_die ("the model did not start");
    world->env [5] = zsys_sprintf ("EDGEPLANE_MODEL_API=%s", ep_proc_connect_endpoint (world->model, "api"));
    //  Nothing is relayed in these runs.
    world->env [6] = strdup ("EDGEPLANE_TERMINATORS_API=tcp://127.0.0.1:1");
    world->env [7] = strdup ("EDGEPLANE_REAPER_API=tcp://127.0.0.1:1");
}

static void
s_world_stop (s_world_t *world)
{
    ep_proc_destroy (&world->model);
    ep_proc_destroy (&world->bus);
    for (size_t i = 0; i < EP_COUNT (world->env); i++)
        zstr_free (&world->env [i]);
    zstr_free (&world->keys);
    ep_tmpdir_remove (&world->dir);
}

//  Creates routers <prefix>0 .. <prefix><count-1> in the model.
static void
s_create_routers (s_world_t *world, const char *prefix, int count)
{
    zcert_t *cert = ep_keys_load (world->keys, "operator");
    char *key = ep_keys_public_txt (world->keys, "model");
    ep_rpc_client_t *client = ep_rpc_client_new (ep_proc_connect_endpoint (world->model, "api"), cert, key);
    uint64_t revision;
    char err [512];
    if (bench_model_fleet (client, prefix, count, 0, &revision, err, sizeof err))
        s_die (err);
    ep_rpc_client_destroy (&client);
    free (key);
    zcert_destroy (&cert);
}

static ep_proc_t *
s_watchdog (s_world_t *world, const char *const *extra)
{
    const char *args [24] = { "--channel-listen", "127.0.0.1:0", "--listen", "tcp://127.0.0.1:*",
                              "--http-listen", "127.0.0.1:0", "--max-per-source=1000000", NULL };
    size_t n = 7;
    for (size_t i = 0; extra && extra [i] && n < EP_COUNT (args) - 1; i++)
        args [n++] = extra [i];
    args [n] = NULL;
    ep_proc_t *watchdog = ep_proc_start ("edgeplane-watchdog", args, (const char *const *) world->env, 60000);
    if (!watchdog)
        s_die ("the watchdog did not start");
    return watchdog;
}

//  -------------------------------------------------------------------------
//  Handshakes: openssl s_time against the watchdog and s_server

//  One s_time run against one server.
typedef struct {
    double per_s;               //  handshakes per wall second
    double server_cpu_us;       //  the server's CPU per handshake
    double background_cores;    //  CPU others used meanwhile, in cores
    long count;                 //  handshakes made
} s_run_t;

//  Runs s_time against port (served by process pid) for seconds. Returns
//  0, or -1 if s_time failed.
static int
s_stime (const char *dir, int port, pid_t pid, int seconds, s_run_t *run)
{
    char *cmd = zsys_sprintf ("openssl s_time -connect 127.0.0.1:%d -new -tls1_3 -cert '%s/hs.crt' "
                              "-key '%s/hs.key' -CAfile '%s/ca.crt' -time %d 2>&1",
                              port, dir, dir, dir, seconds);
    char *out = NULL;
    int64_t cpu = bench_proc_cpu_us (pid), client = s_children_cpu_us (), busy = bench_machine_busy_us ();
    int64_t start = ep_mono_us ();
    int rc = ep_run (cmd, &out);
    int64_t wall_us = ep_mono_us () - start;
    cpu = bench_proc_cpu_us (pid) - cpu;
    client = s_children_cpu_us () - client;
    busy = bench_machine_busy_us () - busy;
    run->background_cores = fmax (0, (double) (busy - cpu - client) / (double) wall_us);
    const char *line = out? strstr (out, "real seconds"): NULL;
    //  "<N> connections in <S> real seconds, ...": N is the count.
    while (line && line > out && line [-1] != '\n')
        line--;
    run->count = 0;
    if (rc == 0 && line && sscanf (line, "%ld connections in", &run->count) == 1 && run->count > 0) {
        run->per_s = (double) run->count * 1e6 / (double) wall_us;
        run->server_cpu_us = (double) cpu / (double) run->count;
        rc = 0;
    }
    else {
        s_say ("s_time failed (status %d): %s", rc, out? out: "(no output)");
        rc = -1;
    }
    free (out);
    free (cmd);
    return rc;
}

//  openssl s_server with the watchdog's certificate, key, CA and CRL,
//  requiring a client certificate, TLS 1.3, no tickets or cache.
static pid_t
s_server_start (s_world_t *world, int port)
{
    char accept [32], cert [1024], key [1024], ca [1024], crl [1024], log [1024];
    snprintf (accept, sizeof accept, "127.0.0.1:%d", port);
    snprintf (cert, sizeof cert, "%s/tls/watchdog.crt", world->keys);
    snprintf (key, sizeof key, "%s/tls/watchdog.key", world->keys);
    snprintf (ca, sizeof ca, "%s/tls/ca.crt", world->keys);
    snprintf (crl, sizeof crl, "%s/tls/ca.crl", world->keys);
    snprintf (log, sizeof log, "%s/s_server.log", world->dir);
    pid_t pid = fork ();
    if (pid == 0) {
        int fd = open (log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2 (fd, 1);
        dup2 (fd, 2);
        execlp ("openssl", "openssl", "s_server", "-accept", accept, "-cert", cert, "-key", key,
                "-CAfile", ca, "-CRL", crl, "-crl_check", "-Verify", "1", "-verify_return_error",
                "-verify_quiet", "-tls1_3", "-num_tickets", "0", "-no_cache", "-quiet", (char *) NULL);
        _exit (127);
    }
    //  Ready once it accepts TCP (the probe is a failed handshake to it).
    int64_t deadline = ep_mono_ms () + 10000;
    while (ep_mono_ms () < deadline) {
        int fd = socket (AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) port),
                                    .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
        bool up = connect (fd, (struct sockaddr *) &addr, sizeof addr) == 0;
        close (fd);
        if (up)
            return pid;
        struct pollfd none;
        poll (&none, 0, 20);        //  retry pace while the server starts
    }
    kill (pid, SIGKILL);
    waitpid (pid, NULL, 0);
    return -1;
}

static json_t *
s_handshakes (s_world_t *world, const s_plan_t *plan)
{
    char err [512];
    if (ep_pki_issue (world->keys, "router", "hs", world->dir, 30, err, sizeof err))
        s_die (err);
    ep_proc_t *watchdog = s_watchdog (world, NULL);
    int watchdog_port = s_port (ep_proc_endpoint (watchdog, "channel"));
    int server_port = ep_test_stable_port ();
    pid_t server = s_server_start (world, server_port);
    if (server < 0)
        s_die ("openssl s_server did not start (is openssl installed?)");
    double ours [16], theirs [16], ours_cpu [16], theirs_cpu [16], background = 0;
    long ours_n = 0, theirs_n = 0;
    for (int rep = 0; rep < plan->reps; rep++) {
        //  Alternated, so a change in the machine's load hits both.
        s_run_t run;
        s_say ("handshakes: rep %d/%d, watchdog", rep + 1, plan->reps);
        if (s_stime (world->dir, watchdog_port, ep_proc_pid (watchdog), plan->stime_seconds, &run))
            s_die ("an s_time run against the watchdog failed");
        ours [rep] = run.per_s;
        ours_cpu [rep] = run.server_cpu_us;
        ours_n += run.count;
        background = fmax (background, run.background_cores);
        s_say ("handshakes: rep %d/%d, openssl s_server", rep + 1, plan->reps);
        if (s_stime (world->dir, server_port, server, plan->stime_seconds, &run))
            s_die ("an s_time run against openssl s_server failed");
        theirs [rep] = run.per_s;
        theirs_cpu [rep] = run.server_cpu_us;
        theirs_n += run.count;
        background = fmax (background, run.background_cores);
    }
    int reps = plan->reps;
    double ours_min = ours [0], ours_max = ours [0], theirs_min = theirs [0], theirs_max = theirs [0];
    for (int rep = 1; rep < reps; rep++) {
        ours_min = fmin (ours_min, ours [rep]);
        ours_max = fmax (ours_max, ours [rep]);
        theirs_min = fmin (theirs_min, theirs [rep]);
        theirs_max = fmax (theirs_max, theirs [rep]);
    }
    qsort (ours, reps, sizeof (double), s_compare_double);
    qsort (theirs, reps, sizeof (double), s_compare_double);
    qsort (ours_cpu, reps, sizeof (double), s_compare_double);
    qsort (theirs_cpu, reps, sizeof (double), s_compare_double);
    double ours_median = ours [reps / 2], theirs_median = theirs [reps / 2];
    double ours_cpu_median = ours_cpu [reps / 2], theirs_cpu_median = theirs_cpu [reps / 2];
    //  Every s_time handshake completed on the watchdog's side too (the
    //  client's certificate was checked and accepted): none was refused.
    double refused = s_metric (watchdog, "controller_connection_duration_seconds_count{outcome=\"refused\"}");
    double ended = s_metric (watchdog, "controller_connection_duration_seconds_count{outcome=\"error\"}");
    kill (server, SIGTERM);
    waitpid (server, NULL, 0);
    ep_proc_destroy (&watchdog);
    if (refused > 0)
        s_die ("the watchdog refused s_time connections: the figure would not be full handshakes");
    return json_pack ("{s:f, s:f, s:f, s:[f,f], s:[f,f], s:f, s:f, s:f, s:I, s:I, s:i, s:i, s:f, s:f}",
                      "watchdog_handshakes_per_s", ours_median, "s_server_handshakes_per_s", theirs_median,
                      "ratio_handshakes", ours_median / theirs_median,
                      "watchdog_handshakes_per_s_range", ours_min, ours_max,
                      "s_server_handshakes_per_s_range", theirs_min, theirs_max,
                      "watchdog_cpu_us_per_handshake", ours_cpu_median,
                      "s_server_cpu_us_per_handshake", theirs_cpu_median,
                      "ratio_cpu_per_handshake", theirs_cpu_median / ours_cpu_median,
                      "handshakes_watchdog", (json_int_t) ours_n, "handshakes_s_server", (json_int_t) theirs_n,
                      "handshake_reps", reps, "handshake_seconds_per_run", plan->stime_seconds,
                      "watchdog_closed_after_handshake", ended, "background_cores_max", background);
}

//  -------------------------------------------------------------------------
//  Memory: N joined, idle routers

//  Sends Hello for id on ssl (blocking).
static int
s_send_hello (SSL *ssl, const char *id)
{
    Ep__Hello hello = EP__HELLO__INIT;
    hello.has_protocol_version = hello.has_role = true;
    hello.protocol_version = 1;
    hello.role = EP__ROLE__ROLE_ROUTER;
    hello.id = (char *) id;
    Ep__Frame frame = EP__FRAME__INIT;
    frame.body_case = EP__FRAME__BODY_HELLO;
    frame.hello = &hello;
    uint8_t *bytes;
    size_t size;
    if (ep_frame_encode (&frame, EP_FRAME_PREJOIN_CAP, &bytes, &size) != 0)
        return -1;
    int rc = SSL_write (ssl, bytes, (int) size) == (int) size? 0: -1;
    free (bytes);
    return rc;
}

//  Reads frames on ssl (blocking, the socket has a receive timeout) until
//  the HelloResult; true if it says OK.
static bool
s_hello_ok (SSL *ssl)
{
    ep_frame_reader_t *reader = ep_frame_reader_new (EP_FRAME_JOINED_CAP);
    bool ok = false, done = false;
    while (!done) {
        ep_frame_error_t error;
        Ep__Frame *frame = ep_frame_reader_next (reader, &error);
        if (frame) {
            if (frame->body_case == EP__FRAME__BODY_HELLO_RESULT) {
                ok = frame->hello_result->status && frame->hello_result->status->code == EP__STATUS__CODE__OK;
                done = true;
            }
            ep__frame__free_unpacked (frame, NULL);
            continue;
        }
        size_t len;
        uint8_t *space = ep_frame_reader_space (reader, &len);
        int n = error == EP_FRAME_OK && space? SSL_read (ssl, space, (int) len): -1;
        if (n <= 0)
            done = true;
        else
            ep_frame_reader_commit (reader, (size_t) n, ep_mono_ms ());
    }
    ep_frame_reader_destroy (&reader);
    return ok;
}

//  What s_all_joined waits for.
typedef struct {
    ep_proc_t *watchdog;        //  whose gauge
    int joined;                 //  should say this
} s_settled_t;

static bool
s_all_joined (void *arg)
{
    s_settled_t *settled = (s_settled_t *) arg;
    return s_metric (settled->watchdog, "edgeplane_connections{role=\"router\",state=\"joined\"}")
        == settled->joined;
}

static bool
s_wants (SSL *ssl, int rc)
{
    int code = SSL_get_error (ssl, rc);
    return code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE;
}

//  The floor under the watchdog's figure: heap bytes OpenSSL holds per
//  established server connection (the watchdog's server context, a
//  router's client certificate), measured in this process over
//  socketpairs, after a warm-up round. Returns bytes per connection.
static double
s_tls_floor (s_world_t *world, const char *fleet, int count)
{
    char err [512], cert [1024], key [1024], ca [1024];
    snprintf (cert, sizeof cert, "%s/b0.crt", fleet);
    snprintf (key, sizeof key, "%s/b0.key", fleet);
    snprintf (ca, sizeof ca, "%s/ca.crt", fleet);
    SSL_CTX *server_ctx = ep_pki_server_ctx (world->keys, err, sizeof err);
    SSL_CTX *client_ctx = ep_pki_client_ctx (cert, key, ca, err, sizeof err);
    if (!server_ctx || !client_ctx)
        s_die (err);
    SSL **kept = (SSL **) calloc ((size_t) count, sizeof (SSL *));
    int *fds = (int *) calloc ((size_t) count, sizeof (int));
    double bytes = 0;
    for (int round = 0; round < 2; round++) {
        struct mallinfo2 before = mallinfo2 ();
        for (int i = 0; i < count; i++) {
            int pair [2];
            EP_ASSERT (socketpair (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pair) == 0);
            SSL *client = SSL_new (client_ctx), *server = SSL_new (server_ctx);
            SSL_set_fd (client, pair [0]);
            SSL_set_fd (server, pair [1]);
            SSL_set_mode (server, SSL_MODE_RELEASE_BUFFERS);
            SSL_set_connect_state (client);
            SSL_set_accept_state (server);
            bool client_ok = false, server_ok = false;
            for (int step = 0; step < 20 && !(client_ok && server_ok); step++) {
                int rc;
                if (!client_ok && !(client_ok = (rc = SSL_do_handshake (client)) == 1) && !s_wants (client, rc))
                    s_die ("in-process handshake failed (client)");
                if (!server_ok && !(server_ok = (rc = SSL_do_handshake (server)) == 1) && !s_wants (server, rc))
                    s_die ("in-process handshake failed (server)");
            }
            SSL_free (client);
            close (pair [0]);
            if (round == 0) {
                SSL_free (server);
                close (pair [1]);
            }
            else {
                kept [i] = server;
                fds [i] = pair [1];
            }
        }
        struct mallinfo2 after = mallinfo2 ();
        bytes = ((double) after.uordblks - (double) before.uordblks) / count;
    }
    for (int i = 0; i < count; i++) {
        SSL_free (kept [i]);
        close (fds [i]);
    }
    ERR_clear_error ();
    free (kept);
    free (fds);
    SSL_CTX_free (server_ctx);
    SSL_CTX_free (client_ctx);
    return bytes;
}

static json_t *
s_memory (s_world_t *world, const s_plan_t *plan)
{
    int count = plan->connections;
    char err [512];
    char *fleet = zsys_sprintf ("%s/fleet", world->dir);
    s_say ("memory: issuing %d router bundles", count);
    if (ep_pki_issue_batch (world->keys, "router", "b", count, fleet, 30, err, sizeof err))
        s_die (err);
    s_say ("memory: creating %d routers in the model", count);
    s_create_routers (world, "b", count);
    const char *extra [] = { "--heartbeat=1h", "--heartbeat-timeout=1h", "--stray-grace=1h", NULL };
    ep_proc_t *watchdog = s_watchdog (world, extra);
    pid_t pid = ep_proc_pid (watchdog);
    int port = s_port (ep_proc_endpoint (watchdog, "channel"));
    //  It follows the model before it listens: the routers are in its view.
    long before_kb = s_rss_kb (pid);

    char cert [1024], key [1024], ca [1024];
    snprintf (cert, sizeof cert, "%s/b0.crt", fleet);
    snprintf (key, sizeof key, "%s/b0.key", fleet);
    snprintf (ca, sizeof ca, "%s/ca.crt", fleet);
    SSL_CTX *ctx = ep_pki_client_ctx (cert, key, ca, err, sizeof err);
    if (!ctx)
        s_die (err);
    SSL_CTX_set_mode (ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL **ssls = (SSL **) calloc ((size_t) count, sizeof (SSL *));
    int *fds = (int *) calloc ((size_t) count, sizeof (int));
    //  Each client sends its Hello right after its side of the handshake,
    //  without waiting: the watchdog works through the queue meanwhile.
    s_say ("memory: connecting %d routers", count);
    int64_t start = ep_mono_us ();
    int made = 0;
    const char *stopped = NULL;
    for (; made < count && !stopped; made++) {
        char id [32];
        snprintf (id, sizeof id, "b%d", made);
        fds [made] = s_connect_from (made, port);
        if (fds [made] < 0) {
            stopped = strerror (errno);
            break;
        }
        struct timeval timeout = { .tv_sec = 30 };
        setsockopt (fds [made], SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        SSL *ssl = ssls [made] = SSL_new (ctx);
        snprintf (cert, sizeof cert, "%s/%s.crt", fleet, id);
        snprintf (key, sizeof key, "%s/%s.key", fleet, id);
        SSL_set_fd (ssl, fds [made]);
        if (SSL_use_certificate_file (ssl, cert, SSL_FILETYPE_PEM) != 1
        ||  SSL_use_PrivateKey_file (ssl, key, SSL_FILETYPE_PEM) != 1
        ||  SSL_connect (ssl) != 1 || s_send_hello (ssl, id) != 0) {
            stopped = "TLS handshake or Hello failed";
            ERR_clear_error ();
            made++;
            break;
        }
    }
    s_say ("memory: %d handshakes and Hellos sent in %.1f s", made, (double) (ep_mono_us () - start) / 1e6);
    int joined = 0;
    for (int i = 0; i < made; i++)
        joined += ssls [i] && s_hello_ok (ssls [i]);
    double join_seconds = (double) (ep_mono_us () - start) / 1e6;
    if (stopped)
        s_say ("memory: stopped after %d connections: %s", made, stopped);
    s_say ("memory: %d joined in %.1f s", joined, join_seconds);
    //  Settled: the watchdog's own count says every one is joined.
    s_settled_t settled = { watchdog, joined };
    if (!ep_wait_until (s_all_joined, &settled, 30000))
        s_say ("memory: the watchdog does not count %d joined routers", joined);
    long after_kb = s_rss_kb (pid);
    struct rlimit limit;
    getrlimit (RLIMIT_NOFILE, &limit);
    for (int i = 0; i < made; i++) {
        if (ssls [i])
            SSL_free (ssls [i]);
        if (fds [i] >= 0)
            close (fds [i]);
    }
    free (ssls);
    free (fds);
    SSL_CTX_free (ctx);
    ep_proc_destroy (&watchdog);
    if (joined == 0)
        s_die ("no router joined");
    s_say ("memory: OpenSSL's own share, in process");
    double floor = s_tls_floor (world, fleet, count < 1000? count: 1000);
    free (fleet);
    double per = (double) (after_kb - before_kb) * 1024.0 / joined;
    return json_pack ("{s:i, s:i, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:I, s:s?}",
                      "memory_connections", count, "memory_joined", joined,
                      "rss_before_kb", (json_int_t) before_kb, "rss_after_kb", (json_int_t) after_kb,
                      "bytes_per_connection", per, "openssl_bytes_per_connection", floor,
                      "watchdog_own_bytes_per_connection", per - floor,
                      "join_seconds", join_seconds, "joins_per_s", joined / join_seconds,
                      "fd_limit", (json_int_t) limit.rlim_cur, "stopped", stopped);
}

//  -------------------------------------------------------------------------
//  Strays: N silent connections, each closed at its grace

//  Takes closes from epoll without blocking longer than timeout_ms.
static void
s_take_closes (int epoll_fd, int *fds, int64_t *closed_us, int *closed, int timeout_ms)
{
    struct epoll_event events [256];
    int n = epoll_wait (epoll_fd, events, 256, timeout_ms);
    int64_t now = ep_mono_us ();
    for (int i = 0; i < n; i++) {
        int index = (int) events [i].data.u32;
        char byte;
        ssize_t got = recv (fds [index], &byte, 1, MSG_DONTWAIT);
        if (got == 0 || (got < 0 && errno != EAGAIN)) {
            closed_us [index] = now;
            epoll_ctl (epoll_fd, EPOLL_CTL_DEL, fds [index], NULL);
            (*closed)++;
        }
    }
}

static json_t *
s_strays (s_world_t *world, const s_plan_t *plan)
{
    int count = plan->strays;
    char grace [32];
    snprintf (grace, sizeof grace, "--stray-grace=%dms", GRACE_MS);
    const char *extra [] = { grace, "--stray-action=disconnect", NULL };
    ep_proc_t *watchdog = s_watchdog (world, extra);
    int port = s_port (ep_proc_endpoint (watchdog, "channel"));
    //  The watchdog's own view: each stray.detected event's time against
    //  its accepted_at (ms), which leaves out the accept delay.
    zcert_t *cert = ep_keys_load (world->keys, "subscriber");
    char *bus_key = ep_keys_public_txt (world->keys, "bus");
    ep_subscriber_t *sub = ep_subscriber_new (ep_proc_connect_endpoint (world->bus, "sub"), cert, bus_key,
                                              EP_CODEC_DEFAULT_CAP, NULL, NULL);
    ep_subscriber_subscribe (sub, "stray.detected");
    if (ep_subscriber_wait_stream (sub, "stray", 10000) != 0)
        s_die ("no heartbeat of the watchdog's stray stream");
    int *fds = (int *) calloc ((size_t) count, sizeof (int));
    int64_t *connected_us = (int64_t *) calloc ((size_t) count, sizeof (int64_t));
    int64_t *closed_us = (int64_t *) calloc ((size_t) count, sizeof (int64_t));
    int epoll_fd = epoll_create1 (EPOLL_CLOEXEC);
    int made = 0, closed = 0;
    s_say ("strays: %d silent connections, grace %d ms", count, GRACE_MS);
    //  Closes are taken between connects too: the first ones come due
    //  while later ones are still being made.
    for (; made < count; made++) {
        //  Taken before connect: the watchdog accepts after this, so the
        //  lateness measured is never less than the real one.
        connected_us [made] = ep_mono_us ();
        fds [made] = s_connect_from (made, port);
        if (fds [made] < 0)
            s_die ("connect failed (fd limit?)");
        struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t) made };
        EP_ASSERT (epoll_ctl (epoll_fd, EPOLL_CTL_ADD, fds [made], &ev) == 0);
        s_take_closes (epoll_fd, fds, closed_us, &closed, 0);
    }
    double connect_seconds = (double) (ep_mono_us () - connected_us [0]) / 1e6;
    s_say ("strays: %d connected in %.2f s", made, connect_seconds);
    int64_t deadline = ep_mono_ms () + GRACE_MS + 60000;
    while (closed < made && ep_mono_ms () < deadline)
        s_take_closes (epoll_fd, fds, closed_us, &closed, 100);
    double *late = (double *) calloc ((size_t) made + 1, sizeof (double));
    size_t n = 0;
    for (int i = 0; i < made; i++)
        if (closed_us [i])
            late [n++] = (double) (closed_us [i] - connected_us [i]) / 1000.0 - GRACE_MS;
    qsort (late, n, sizeof (double), s_compare_double);
    double reported = s_metric (watchdog, "controller_stray_connections_total{step=\"accepted\"}");
    double *seen = (double *) calloc ((size_t) made + 1, sizeof (double));
    size_t events = 0;
    Ep__Event *event;
    while (events < (size_t) made && (event = ep_subscriber_recv (sub, 5000, NULL))) {
        if (event->body_case == EP__EVENT__BODY_STRAY && event->meta && event->stray->has_accepted_at_ms)
            seen [events++] = (double) (event->meta->timestamp_ms - event->stray->accepted_at_ms) - GRACE_MS;
    }
    qsort (seen, events, sizeof (double), s_compare_double);
    json_t *result = json_pack ("{s:i, s:i, s:f, s:i, s:f, s:f, s:f, s:f, s:f, s:i, s:f, s:f, s:f}",
                                "strays", made, "stray_grace_ms", GRACE_MS,
                                "stray_connect_seconds", connect_seconds,
                                "strays_not_closed", made - (int) n,
                                "stray_lateness_p50_ms", s_quantile (late, n, 0.5),
                                "stray_lateness_p99_ms", s_quantile (late, n, 0.99),
                                "stray_lateness_max_ms", n? late [n - 1]: NAN,
                                "stray_lateness_min_ms", n? late [0]: NAN, "strays_reported", reported,
                                "stray_events", (int) events,
                                "stray_detection_p50_ms", s_quantile (seen, events, 0.5),
                                "stray_detection_p99_ms", s_quantile (seen, events, 0.99),
                                "stray_detection_max_ms", events? seen [events - 1]: NAN);
    //  The distributions, for bench/run's plot: [percentile, ms] pairs.
    static const double points [] = { 0, 1, 2, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75,
                                      80, 85, 90, 92, 94, 95, 96, 97, 98, 99, 99.5, 99.9, 100 };
    json_t *late_cdf = json_array (), *seen_cdf = json_array ();
    for (size_t i = 0; i < EP_COUNT (points); i++) {
        if (n)
            json_array_append_new (late_cdf, json_pack ("[f, f]", points [i], s_quantile (late, n, points [i] / 100)));
        if (events)
            json_array_append_new (seen_cdf, json_pack ("[f, f]", points [i], s_quantile (seen, events, points [i] / 100)));
    }
    json_object_set_new (result, "stray_lateness_cdf_ms", late_cdf);
    json_object_set_new (result, "stray_detection_cdf_ms", seen_cdf);
    free (seen);
    ep_subscriber_destroy (&sub);
    free (bus_key);
    zcert_destroy (&cert);
    for (int i = 0; i < made; i++)
        close (fds [i]);
    close (epoll_fd);
    free (late);
    free (fds);
    free (connected_us);
    free (closed_us);
    ep_proc_destroy (&watchdog);
    return result;
}


//  -------------------------------------------------------------------------
//  Reconnect storm: N routers rejoin a restarted watchdog with the model
//  100 revisions ahead, once asking for full slices (they hold none), once
//  resuming from the revision they hold; bytes the watchdog sent in slices
//  and time until every router has its slice, both in this run.

#define STORM_SERVICES  20          //  services hosted (5 per router)
#define STORM_CHANGES   100         //  revisions the model moves on

//  One write in the model as the operator; dies on failure.
static void
s_storm_write (ep_rpc_client_t *client, Ep__ModelWrite *write)
{
    char id [33], err [512];
    ep_rpc_new_id (id);
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.request_id = id;
    request.op_case = EP__MODEL_REQUEST__OP_WRITE;
    request.write = write;
    Ep__ModelReply *reply = (Ep__ModelReply *) ep_rpc_client_call (
        client, &request.base, id, &ep__model_reply__descriptor, 30000, 3, err, sizeof err);
    if (!reply || !reply->status || reply->status->code != EP__STATUS__CODE__OK)
        s_die (reply && reply->status && reply->status->message? reply->status->message: err);
    ep__model_reply__free_unpacked (reply, NULL);
}

//  Creates (or renames) service id.
static void
s_storm_service (ep_rpc_client_t *client, const char *id, const char *name, bool create)
{
    Ep__Service service = EP__SERVICE__INIT;
    service.id = (char *) id;
    service.name = (char *) name;
    Ep__Entity entity = EP__ENTITY__INIT;
    entity.kind_case = EP__ENTITY__KIND_SERVICE;
    entity.service = &service;
    Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
    write.has_op = true;
    write.op = create? EP__MODEL_WRITE__OP__CREATE: EP__MODEL_WRITE__OP__UPDATE;
    write.entity = &entity;
    s_storm_write (client, &write);
}

//  Router <prefix>i hosts svc(i%20) .. svc(i%20+4).
static void
s_storm_router (ep_rpc_client_t *client, const char *id, int i)
{
    Ep__HostedService hosted [5], *list [5];
    char ids [5][16];
    for (int k = 0; k < 5; k++) {
        snprintf (ids [k], sizeof ids [k], "svc%d", (i + k) % STORM_SERVICES);
        ep__hosted_service__init (&hosted [k]);
        hosted [k].service_id = ids [k];
        hosted [k].has_cost = true;
        hosted [k].cost = (uint32_t) (10 * k + 1);
        list [k] = &hosted [k];
    }
    Ep__Router router = EP__ROUTER__INIT;
    router.id = (char *) id;
    router.hosted = list;
    router.n_hosted = 5;
    Ep__Entity entity = EP__ENTITY__INIT;
    entity.kind_case = EP__ENTITY__KIND_ROUTER;
    entity.router = &router;
    Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
    write.has_op = true;
    write.op = EP__MODEL_WRITE__OP__UPDATE;
    write.entity = &entity;
    s_storm_write (client, &write);
}

//  Reads frames on ssl until a ModelSlice; its revision in *revision and
//  generation (malloc'd) in *generation if asked. False if none came.
static bool
s_storm_slice (SSL *ssl, uint64_t *revision, char **generation)
{
    ep_frame_reader_t *reader = ep_frame_reader_new (EP_FRAME_JOINED_CAP);
    bool got = false, done = false;
    while (!done) {
        ep_frame_error_t error;
        Ep__Frame *frame = ep_frame_reader_next (reader, &error);
        if (frame) {
            if (frame->body_case == EP__FRAME__BODY_SLICE) {
                *revision = frame->slice->revision;
                if (generation && frame->slice->generation)
                    *generation = strdup (frame->slice->generation);
                got = done = true;
            }
            ep__frame__free_unpacked (frame, NULL);
            continue;
        }
        size_t len;
        uint8_t *space = ep_frame_reader_space (reader, &len);
        int n = error == EP_FRAME_OK && space? SSL_read (ssl, space, (int) len): -1;
        if (n <= 0)
            done = true;
        else
            ep_frame_reader_commit (reader, (size_t) n, ep_mono_ms ());
    }
    ep_frame_reader_destroy (&reader);
    return got;
}

//  One storm: count routers connect (all handshakes and Hellos first, then
//  the answers), holding held (0: none) of generation. Returns seconds
//  until every one had its slice; the revision it got in *revision.
static double
s_storm_round (s_world_t *world, const char *fleet, int count, ep_proc_t *watchdog, uint64_t held,
               char **generation, uint64_t *revision)
{
    (void) world;
    int port = s_port (ep_proc_endpoint (watchdog, "channel"));
    char err [512], cert [1024], key [1024], ca [1024];
    snprintf (ca, sizeof ca, "%s/ca.crt", fleet);
    snprintf (cert, sizeof cert, "%s/s0.crt", fleet);
    snprintf (key, sizeof key, "%s/s0.key", fleet);
    SSL_CTX *ctx = ep_pki_client_ctx (cert, key, ca, err, sizeof err);
    if (!ctx)
        s_die (err);
    SSL **ssls = (SSL **) calloc ((size_t) count, sizeof (SSL *));
    int *fds = (int *) calloc ((size_t) count, sizeof (int));
    int64_t start = ep_mono_us ();
    for (int i = 0; i < count; i++) {
        char id [32];
        snprintf (id, sizeof id, "s%d", i);
        fds [i] = s_connect_from (i, port);
        if (fds [i] < 0)
            s_die ("connect failed");
        struct timeval timeout = { .tv_sec = 30 };
        setsockopt (fds [i], SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        SSL *ssl = ssls [i] = SSL_new (ctx);
        snprintf (cert, sizeof cert, "%s/%s.crt", fleet, id);
        snprintf (key, sizeof key, "%s/%s.key", fleet, id);
        SSL_set_fd (ssl, fds [i]);
        Ep__Hello hello = EP__HELLO__INIT;
        hello.has_protocol_version = hello.has_role = true;
        hello.protocol_version = 2;
        hello.role = EP__ROLE__ROLE_ROUTER;
        hello.id = id;
        hello.has_model_revision = held > 0;
        hello.model_revision = held;
        hello.model_generation = held > 0? *generation: NULL;
        Ep__Frame frame = EP__FRAME__INIT;
        frame.body_case = EP__FRAME__BODY_HELLO;
        frame.hello = &hello;
        uint8_t *bytes;
        size_t size;
        if (SSL_use_certificate_file (ssl, cert, SSL_FILETYPE_PEM) != 1
        ||  SSL_use_PrivateKey_file (ssl, key, SSL_FILETYPE_PEM) != 1
        ||  SSL_connect (ssl) != 1
        ||  ep_frame_encode (&frame, EP_FRAME_PREJOIN_CAP, &bytes, &size) != 0)
            s_die ("TLS handshake or Hello failed");
        if (SSL_write (ssl, bytes, (int) size) != (int) size)
            s_die ("Hello not sent");
        free (bytes);
    }
    int got = 0;
    for (int i = 0; i < count; i++)
        got += s_storm_slice (ssls [i], revision, !*generation && i == 0? generation: NULL);
    double seconds = (double) (ep_mono_us () - start) / 1e6;
    if (got != count)
        s_die ("not every router got its slice");
    for (int i = 0; i < count; i++) {
        SSL_free (ssls [i]);
        close (fds [i]);
    }
    free (ssls);
    free (fds);
    SSL_CTX_free (ctx);
    return seconds;
}

static json_t *
s_storm (s_world_t *world, const s_plan_t *plan)
{
    int count = plan->quick? 500: 2000;
    char err [512];
    char *fleet = zsys_sprintf ("%s/storm", world->dir);
    s_say ("storm: issuing %d router bundles", count);
    if (ep_pki_issue_batch (world->keys, "router", "s", count, fleet, 30, err, sizeof err))
        s_die (err);
    s_create_routers (world, "s", count);
    zcert_t *cert = ep_keys_load (world->keys, "operator");
    char *model_key = ep_keys_public_txt (world->keys, "model");
    ep_rpc_client_t *client = ep_rpc_client_new (ep_proc_connect_endpoint (world->model, "api"), cert, model_key);
    for (int k = 0; k < STORM_SERVICES; k++) {
        char id [16];
        snprintf (id, sizeof id, "svc%d", k);
        s_storm_service (client, id, id, true);
    }
    for (int k = 0; k < 9; k++) {
        char id [16];
        snprintf (id, sizeof id, "other%d", k);
        s_storm_service (client, id, id, true);
    }
    s_say ("storm: %d routers hosting 5 of %d services each", count, STORM_SERVICES);
    for (int i = 0; i < count; i++) {
        char id [16];
        snprintf (id, sizeof id, "s%d", i);
        s_storm_router (client, id, i);
    }
    const char *extra [] = { "--heartbeat=1h", "--heartbeat-timeout=1h", "--stray-grace=1h", NULL };
    //  Every router joins once and holds its slice.
    ep_proc_t *watchdog = s_watchdog (world, extra);
    char *generation = NULL;
    uint64_t held = 0, revision = 0;
    s_storm_round (world, fleet, count, watchdog, 0, &generation, &held);
    ep_proc_destroy (&watchdog);
    //  The model moves on 100 revisions while the watchdog is down: one in
    //  ten renames a hosted service (a quarter of the routers host it), the
    //  others touch services nobody hosts.
    for (int k = 0; k < STORM_CHANGES; k++) {
        char id [16], name [32];
        if (k % 10 == 0)
            snprintf (id, sizeof id, "svc%d", k / 10);
        else
            snprintf (id, sizeof id, "other%d", k % 9);
        snprintf (name, sizeof name, "rev%d", k);
        s_storm_service (client, id, name, false);
    }
    //  Baseline: full slices (the routers say they hold none).
    watchdog = s_watchdog (world, extra);
    double full_s = s_storm_round (world, fleet, count, watchdog, 0, &generation, &revision);
    double full_bytes = s_metric (watchdog, "edgeplane_watchdog_slice_bytes_total{kind=\"full\"}");
    ep_proc_destroy (&watchdog);
    //  Resumed: the same routers with the revision they hold.
    watchdog = s_watchdog (world, extra);
    double diff_s = s_storm_round (world, fleet, count, watchdog, held, &generation, &revision);
    double diff_bytes = s_metric (watchdog, "edgeplane_watchdog_slice_bytes_total{kind=\"diff\"}");
    double diff_full = s_metric (watchdog, "edgeplane_watchdog_slice_bytes_total{kind=\"full\"}");
    ep_proc_destroy (&watchdog);
    if (diff_full > 0)
        s_say ("storm: %.0f bytes of full slices in the resumed round", diff_full);
    s_say ("storm: %d routers, %d revisions behind: full %.0f bytes in %.2f s, resumed %.0f bytes in %.2f s",
           count, (int) (revision - held), full_bytes, full_s, diff_bytes, diff_s);
    ep_rpc_client_destroy (&client);
    free (model_key);
    zcert_destroy (&cert);
    free (generation);
    free (fleet);
    double resumed = diff_bytes + (diff_full > 0? diff_full: 0);
    return json_pack ("{s:i, s:I, s:f, s:f, s:f, s:f, s:f, s:f}",
                      "storm_routers", count, "storm_revisions_behind", (json_int_t) (revision - held),
                      "storm_full_bytes", full_bytes, "storm_full_seconds", full_s,
                      "storm_resumed_bytes", resumed, "storm_resumed_seconds", diff_s,
                      "storm_bytes_ratio", resumed > 0? full_bytes / resumed: 0,
                      "storm_time_ratio", diff_s > 0? full_s / diff_s: 0);
}
//  -------------------------------------------------------------------------

int
main (int argc, char **argv)
{
    const char *only = NULL;    //  one measurement only (profiling)
    s_plan_t plan = { .quick = false, .connections = 10000, .strays = 10000, .stime_seconds = 5, .reps = 5 };
    for (int i = 1; i < argc; i++) {
        if (streq (argv [i], "--quick"))
            plan = (s_plan_t) { .quick = true, .connections = 1000, .strays = 1000, .stime_seconds = 1, .reps = 3 };
        else
        if (strncmp (argv [i], "--connections=", 14) == 0)
            plan.connections = plan.strays = atoi (argv [i] + 14);
        else
        if (strncmp (argv [i], "--only=", 7) == 0)
            only = argv [i] + 7;
        else {
            fprintf (stderr, "usage: watchdog_bench [--quick] [--connections=N] [--only=handshakes|memory|strays|storm]\n");
            return 2;
        }
    }
    signal (SIGPIPE, SIG_IGN);
    //  N clients here, N connections there: both need the descriptors.
    struct rlimit limit;
    getrlimit (RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;
    setrlimit (RLIMIT_NOFILE, &limit);
    int most = (int) (limit.rlim_cur > 1000000? 1000000: limit.rlim_cur) - 200;
    if (plan.connections > most) {
        s_say ("the descriptor limit is %llu: %d connections instead of %d",
               (unsigned long long) limit.rlim_cur, most, plan.connections);
        plan.connections = plan.strays = most;
    }
    zsys_init ();
    zsys_set_logstream (stderr);
    s_world_t world = { 0 };
    s_world_start (&world);
    char date [40];
    ep_rfc3339 (ep_wall_ms (), date, sizeof date);
    json_t *result = json_pack ("{s:s, s:s, s:o}", "date", date, "mode", plan.quick? "quick": "full",
                                "machine", bench_machine ());
    //  One flat object, as bench/run reads it: every key names its figure.
    json_t *part = NULL;
    if (!only || streq (only, "handshakes"))
        json_object_update (result, part = s_handshakes (&world, &plan));
    json_decref (part);
    part = NULL;
    if (!only || streq (only, "memory"))
        json_object_update (result, part = s_memory (&world, &plan));
    json_decref (part);
    part = NULL;
    if (!only || streq (only, "strays"))
        json_object_update (result, part = s_strays (&world, &plan));
    json_decref (part);
    part = NULL;
    if (!only || streq (only, "storm"))
        json_object_update (result, part = s_storm (&world, &plan));
    json_decref (part);
    s_world_stop (&world);
    char *text = json_dumps (result, JSON_INDENT (2));
    printf ("%s\n", text);
    free (text);
    json_decref (result);
    return 0;
}
