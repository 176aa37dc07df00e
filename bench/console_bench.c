/*  console_bench.c: events/s from the bus to 1, 10 and 100 server-sent
    event clients of edgeplane-console, against the bus's own events/s to
    one subscriber in the same run.

    The real edgeplane-bus, edgeplane-model and edgeplane-console run over
    CURVE on kernel-chosen ports. A publisher in this process (with the
    terminators service's certificate) sends --events stray events as fast
    as it can, then a marker event. Baseline: one ep_subscriber in this
    process, the bus's own consumer: events received / (its marker's
    arrival - the first send). Console cases: K clients hold GET
    /api/events open (HTTP/1.0, read with poll in this process); events/s
    is the events the slowest client received / (the last marker's
    arrival - the first send). Ratios: console / bus. A client dropped at
    its bound (--stream-buffer) counts as a failure and is reported; the
    console's CPU per event delivered to all its clients is reported too.
    Prints one JSON object on stdout; progress goes to stderr.
*/
#include "ep_prelude.h"
#include "ep_config.h"
#include "ep_keys.h"
#include "ep_publisher.h"
#include "ep_subscriber.h"
#include "ep_test.h"
#include "bench_util.h"
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

static char s_marker [32] = "192.0.2.99:1";    //  this burst's last event (its remote_addr)
#define MARKER      s_marker
#define CLIENTS_MAX 1000

typedef struct {
    int fd;                     //  the connection, -1 once closed
    zchunk_t *pending;          //  bytes not parsed yet
    size_t events;              //  data events seen
    bool marker;                //  the marker came
    bool dropped;               //  the console dropped the stream
    int64_t done_us;            //  when the marker came
} s_client_t;

static void
s_stray (ep_publisher_t *publisher, const char *addr)
{
    Ep__StrayEvent stray = EP__STRAY_EVENT__INIT;
    stray.remote_addr = (char *) addr;
    stray.step = "await-hello";
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_STRAY;
    event.stray = &stray;
    if (ep_publisher_send (publisher, "stray.detected", &event) != 0)
        fprintf (stderr, "console_bench: publish refused\n");
}

//  count events, then a marker of its own (a case never sees another's).
static void
s_burst (ep_publisher_t *publisher, int count)
{
    static int bursts;
    snprintf (s_marker, sizeof s_marker, "192.0.2.99:%d", ++bursts);
    char addr [40];
    for (int i = 0; i < count; i++) {
        snprintf (addr, sizeof addr, "198.51.100.%d:%d", i % 250, 1000 + i % 60000);
        s_stray (publisher, addr);
    }
    s_stray (publisher, MARKER);
}

static int
s_open (int port)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) port),
                              .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
    if (fd < 0 || connect (fd, (struct sockaddr *) &sa, sizeof sa) != 0)
        return -1;
    char request [128];
    int length = snprintf (request, sizeof request, "GET /api/events HTTP/1.0\r\nHost: 127.0.0.1:%d\r\n\r\n", port);
    if (send (fd, request, length, MSG_NOSIGNAL) != length)
        return -1;
    fcntl (fd, F_SETFL, fcntl (fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

//  Reads what is there; counts whole events. Cheap parsing: a data event
//  is a block starting "id: ".
static void
s_pump (s_client_t *client)
{
    char buf [65536];
    ssize_t n = -1;             //  -1 until a recv says otherwise
    while (client->fd >= 0 && (n = recv (client->fd, buf, sizeof buf, 0)) != 0) {
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                close (client->fd);
                client->fd = -1;
            }
            break;
        }
        zchunk_extend (client->pending, buf, n);
    }
    if (client->fd >= 0 && n == 0) {
        close (client->fd);
        client->fd = -1;
    }
    char *text = (char *) zchunk_data (client->pending);
    size_t size = zchunk_size (client->pending), used = 0;
    char *end;
    while (used < size && (end = memmem (text + used, size - used, "\n\n", 2))) {
        char *block = text + used;
        size_t length = end - block;
        if (length > 4 && memcmp (block, "id: ", 4) == 0) {
            client->events++;
            if (memmem (block, length, MARKER, strlen (MARKER))) {
                client->marker = true;
                client->done_us = ep_mono_us ();
            }
        }
        else
        if (length > 15 && memcmp (block, "event: dropped", 14) == 0)
            client->dropped = true;
        used = end + 2 - text;
    }
    zchunk_t *rest = zchunk_new (text + used, size - used);
    zchunk_destroy (&client->pending);
    client->pending = rest;
}

static bool
s_done (s_client_t *client)
{
    return client->marker || client->dropped || client->fd < 0;
}

//  Pumps every client until all are done or timeout_ms.
static void
s_pump_all (s_client_t *clients, int count, int timeout_ms)
{
    int64_t deadline = ep_mono_ms () + timeout_ms;
    struct pollfd *fds = (struct pollfd *) calloc (count, sizeof (struct pollfd));
    bool all = false;
    while (!all && ep_mono_ms () < deadline) {
        for (int i = 0; i < count; i++)
            fds [i] = (struct pollfd) { .fd = s_done (&clients [i])? -1: clients [i].fd, .events = POLLIN };
        poll (fds, count, 20);
        all = true;
        for (int i = 0; i < count; i++) {
            if (fds [i].revents)
                s_pump (&clients [i]);
            all &= s_done (&clients [i]);
        }
    }
    free (fds);
}

//  The bus to one subscriber: events/s.
static double
s_bus_case (ep_publisher_t *publisher, const char *bus_sub, zcert_t *cert, const char *bus_key, int events)
{
    ep_subscriber_t *sub = ep_subscriber_new (bus_sub, cert, bus_key, 1 << 20, NULL, NULL);
    ep_subscriber_subscribe (sub, "stray.");
    //  Live once a probe comes through.
    int64_t deadline = ep_mono_ms () + 10000;
    bool live = false;
    while (!live && ep_mono_ms () < deadline) {
        s_stray (publisher, "192.0.2.1:1");
        ep_publisher_tick (publisher);
        live = ep_subscriber_recv (sub, 100, NULL) != NULL;
    }
    while (ep_subscriber_recv (sub, 200, NULL))
        ;
    int64_t start = ep_mono_us ();
    s_burst (publisher, events);
    size_t received = 0;
    //  (The marker compared below is this burst's.)
    int64_t end = 0;
    char *topic = NULL;
    Ep__Event *event;
    while ((event = ep_subscriber_recv (sub, 5000, &topic))) {
        received++;
        bool marker = event->stray && event->stray->remote_addr && streq (event->stray->remote_addr, MARKER);
        zstr_free (&topic);
        if (marker) {
            end = ep_mono_us ();
            break;
        }
    }
    ep_subscriber_destroy (&sub);
    if (!end)
        return 0;
    return received * 1e6 / (end - start);
}

//  count clients of the console: events/s of the slowest; *dropped gets
//  how many were dropped, *cpu_us the console's CPU meanwhile.
static double
s_console_case (ep_publisher_t *publisher, ep_proc_t *console, int count, int events, int *dropped,
                double *cpu_us)
{
    const char *http = ep_proc_connect_endpoint (console, "http");
    int port = atoi (strrchr (http, ':') + 1);
    s_client_t *clients = (s_client_t *) calloc (count, sizeof (s_client_t));
    for (int i = 0; i < count; i++) {
        clients [i].fd = s_open (port);
        clients [i].pending = zchunk_new (NULL, 0);
    }
    //  Every stream is open, and the publisher reaches the console, once a
    //  probe reaches every client.
    int64_t deadline = ep_mono_ms () + 20000;
    bool live = false;
    while (!live && ep_mono_ms () < deadline) {
        s_stray (publisher, "192.0.2.1:1");
        ep_publisher_tick (publisher);
        s_pump_all (clients, count, 100);
        live = true;
        for (int i = 0; i < count; i++)
            live &= clients [i].events > 0;
    }
    s_pump_all (clients, count, 300);
    for (int i = 0; i < count; i++) {
        clients [i].events = 0;
        clients [i].marker = false;
    }
    int64_t cpu = bench_proc_cpu_us (ep_proc_pid (console));
    int64_t start = ep_mono_us ();
    s_burst (publisher, events);
    s_pump_all (clients, count, 120000);
    *cpu_us = (double) (bench_proc_cpu_us (ep_proc_pid (console)) - cpu);
    size_t slowest = SIZE_MAX;
    int64_t end = 0;
    *dropped = 0;
    for (int i = 0; i < count; i++) {
        if (!clients [i].marker)
            fprintf (stderr, "console_bench: client %d: %zu events, %s%s\n", i, clients [i].events,
                     clients [i].fd < 0? "closed": "open", clients [i].dropped? ", dropped": "");
        *dropped += clients [i].dropped;
        if (clients [i].events < slowest)
            slowest = clients [i].events;
        if (clients [i].done_us > end)
            end = clients [i].done_us;
        if (clients [i].fd >= 0)
            close (clients [i].fd);
        zchunk_destroy (&clients [i].pending);
    }
    free (clients);
    if (!live || end <= start)
        fprintf (stderr, "console_bench: %d clients: %s\n", count,
                 live? "the marker never came": "not every stream was live within 20 s");
    return end > start && live? slowest * 1e6 / (end - start): 0;
}

int
main (int argc, char **argv)
{
    static bool quick;
    static int64_t events, reps;
    ep_opt_t opts [] = {
        { .name = "quick", .def = "false", .type = EP_OPT_BOOL, .flag = &quick, .help = "A short run." },
        { .name = "events", .def = "50000", .type = EP_OPT_INT, .num = &events, .min = 100, .max = 10000000,
          .help = "Events per case." },
        { .name = "reps", .def = "3", .type = EP_OPT_INT, .num = &reps, .min = 1, .max = 100,
          .help = "Repetitions (the median is reported)." },
    };
    ep_config_t *config = ep_config_new ("console_bench",
        "Events/s from the bus to 1, 10 and 100 SSE clients of the console, against the bus to one subscriber.");
    ep_config_add (config, opts, EP_COUNT (opts));
    ep_config_parse_or_exit (config, argc, argv);
    if (quick) {
        events = 5000;
        reps = 1;
    }
    zsys_init ();
    zsys_set_max_sockets (0);
    char *dir = ep_tmpdir_new ("console-bench");
    char *keys = zsys_sprintf ("%s/keys", dir);
    char err [512];
    EP_ASSERT (ep_keys_init (keys, false, err, sizeof err) == 0);
    char *env_keys = zsys_sprintf ("EDGEPLANE_KEYS_DIR=%s", keys);
    char *env_data = zsys_sprintf ("EDGEPLANE_DATA_DIR=%s/data", dir);
    const char *environment [] = { env_keys, env_data, "EDGEPLANE_LOG_LEVEL=warn",
                                   "EDGEPLANE_CONSOLE_STREAM_BYTES=268435456", NULL };
    const char *bus_args [] = { "--pub-listen", "tcp://127.0.0.1:*", "--sub-listen", "tcp://127.0.0.1:*",
                                "--http-listen", "127.0.0.1:0", NULL };
    ep_proc_t *bus = ep_proc_start ("edgeplane-bus", bus_args, environment, 10000);
    EP_ASSERT (bus);
    char *bus_pub = zsys_sprintf ("--bus-pub=%s", ep_proc_connect_endpoint (bus, "pub"));
    char *bus_sub = zsys_sprintf ("--bus-sub=%s", ep_proc_connect_endpoint (bus, "sub"));
    const char *model_args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", "127.0.0.1:0", bus_pub, NULL };
    ep_proc_t *model = ep_proc_start ("edgeplane-model", model_args, environment, 10000);
    EP_ASSERT (model);
    char *model_api = zsys_sprintf ("--model-api=%s", ep_proc_connect_endpoint (model, "api"));
    const char *console_args [] = { "--http-listen", "127.0.0.1:0", bus_sub, model_api, NULL };
    ep_proc_t *console = ep_proc_start ("edgeplane-console", console_args, environment, 15000);
    if (!console) {
        fprintf (stderr, "console_bench: edgeplane-console did not start\n");
        return 1;
    }
    zcert_t *cert = ep_keys_load (keys, "terminators");
    char *bus_key = ep_keys_public_txt (keys, "bus");
    ep_publisher_t *publisher = ep_publisher_new (ep_proc_connect_endpoint (bus, "pub"), cert, bus_key,
                                                  "terminators-bench", 1 << 20);
    static const int counts [] = { 1, 10, 100 };
    double bus_rates [100], rates [3][100], cpu [3][100];
    int dropped [3] = { 0, 0, 0 };
    for (int rep = 0; rep < reps; rep++) {
        bus_rates [rep] = s_bus_case (publisher, ep_proc_connect_endpoint (bus, "sub"), cert, bus_key, (int) events);
        for (int c = 0; c < 3; c++) {
            int lost = 0;
            double cpu_us = 0;
            rates [c][rep] = s_console_case (publisher, console, counts [c], (int) events, &lost, &cpu_us);
            cpu [c][rep] = cpu_us / events;
            dropped [c] += lost;
        }
        fprintf (stderr, "console_bench: rep %d: bus %.0f/s; console 1: %.0f/s, 10: %.0f/s, 100: %.0f/s\n",
                 rep + 1, bus_rates [rep], rates [0][rep], rates [1][rep], rates [2][rep]);
    }
    double bus_rate = bench_median (bus_rates, reps);
    json_t *result = json_pack ("{s:s, s:s, s:o, s:I, s:I, s:o}", "bench", "console",
                                "mode", quick? "quick": "full", "machine", bench_machine (),
                                "events", (json_int_t) events, "reps", (json_int_t) reps,
                                "bus_events_per_s", bench_real (bus_rate));
    for (int c = 0; c < 3; c++) {
        char key [64];
        double rate = bench_median (rates [c], reps);
        snprintf (key, sizeof key, "console_events_per_s_%d", counts [c]);
        json_object_set_new (result, key, bench_real (rate));
        snprintf (key, sizeof key, "ratio_%d", counts [c]);
        json_object_set_new (result, key, bench_real (bus_rate > 0? rate / bus_rate: 0));
        snprintf (key, sizeof key, "console_cpu_us_per_event_%d", counts [c]);
        json_object_set_new (result, key, bench_real (bench_median (cpu [c], reps)));
        snprintf (key, sizeof key, "dropped_streams_%d", counts [c]);
        json_object_set_new (result, key, json_integer (dropped [c]));
    }
    char *text = json_dumps (result, JSON_INDENT (2));
    printf ("%s\n", text);
    free (text);
    json_decref (result);
    ep_publisher_destroy (&publisher);
    zcert_destroy (&cert);
    free (bus_key);
    ep_proc_destroy (&console);
    ep_proc_destroy (&model);
    ep_proc_destroy (&bus);
    free (bus_pub);
    free (bus_sub);
    free (model_api);
    free (env_keys);
    free (env_data);
    free (keys);
    ep_tmpdir_remove (&dir);
    ep_config_destroy (&config);
    return 0;
}
