/*  test_console.c: edgeplane-console as a real process on kernel-chosen
    ports, against a real bus and model (and a watchdog with router agents
    for the fleet): /api/fleet, server-sent events to 200 clients, a slow
    reader dropped at its bound, Last-Event-ID across a restart, and access
    on a bind that is not loopback. */
#include <criterion/criterion.h>
#include "ep_stack.h"
#include "ep_addr.h"
#include "ep_keys.h"
#include "ep_pki.h"
#include "ep_pki_tls.h"
#include "ep_publisher.h"
#include "agent.h"
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#define MARKER  "192.0.2.99:1"      //  the remote_addr of the event that ends a burst

// ---------------------------------------------------------------------------
//  HTTP, by hand: HTTP/1.0, so a stream is plain bytes until the close.

//  A connected socket to 127.0.0.1:port (rcvbuf > 0 sets SO_RCVBUF first).
static int
s_connect (int port, int rcvbuf)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq (fd, 0);
    if (rcvbuf > 0)
        setsockopt (fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) port),
                              .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
    cr_assert_eq (connect (fd, (struct sockaddr *) &sa, sizeof sa), 0, "connect: %s", strerror (errno));
    struct timeval timeout = { 10 * EP_TEST_SLOWDOWN, 0 };
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    return fd;
}

static void
s_send_request (int fd, const char *method, const char *path, const char *headers)
{
    char *request = zsys_sprintf ("%s %s HTTP/1.0\r\n%s\r\n", method, path,
                                  headers? headers: "Host: 127.0.0.1\r\n");
    cr_assert_eq (send (fd, request, strlen (request), MSG_NOSIGNAL), (ssize_t) strlen (request));
    free (request);
}

typedef struct {
    int status;                 //  HTTP status, -1 if none
    char *head;                 //  status line and headers
    char *body;                 //  the rest
} s_reply_t;

static s_reply_t
s_request (int port, const char *method, const char *path, const char *headers)
{
    int fd = s_connect (port, 0);
    s_send_request (fd, method, path, headers);
    zchunk_t *data = zchunk_new (NULL, 0);
    char buf [8192];
    ssize_t n = -1;             //  -1 until a recv says otherwise
    while ((n = recv (fd, buf, sizeof buf, 0)) > 0)
        zchunk_extend (data, buf, n);
    close (fd);
    char *text = zchunk_strdup (data);
    zchunk_destroy (&data);
    s_reply_t reply = { -1, NULL, NULL };
    char *blank = strstr (text, "\r\n\r\n");
    if (blank && sscanf (text, "HTTP/1.%*d %d", &reply.status) == 1) {
        reply.body = strdup (blank + 4);
        *blank = 0;
        reply.head = strdup (text);
    }
    free (text);
    return reply;
}

static void
s_reply_free (s_reply_t *reply)
{
    free (reply->head);
    free (reply->body);
}

static int
s_port (ep_proc_t *console)
{
    const char *http = ep_proc_connect_endpoint (console, "http");
    cr_assert_not_null (http);
    return atoi (strrchr (http, ':') + 1);
}

// ---------------------------------------------------------------------------
//  A server-sent events client, read without blocking.

typedef struct {
    int fd;                     //  the connection, -1 once closed
    zchunk_t *pending;          //  bytes not parsed yet
    bool head_done;             //  the HTTP head was read
    int status;                 //  its status
    uint64_t epoch;             //  of the ids seen
    uint64_t first;             //  seq of the first event
    uint64_t last;              //  seq of the last event
    size_t events;              //  data events
    bool in_order;              //  each id was the one after the last
    bool dropped;               //  an "event: dropped" came
    char *missed;               //  the data of a "missed" event, if one came
    bool marker;                //  the end-of-burst event came
    char *last_id;              //  the last id, as text
} s_sse_t;

static s_sse_t *
s_sse_open (int port, const char *path, const char *headers, int rcvbuf)
{
    s_sse_t *self = (s_sse_t *) zmalloc (sizeof (s_sse_t));
    self->fd = s_connect (port, rcvbuf);
    self->pending = zchunk_new (NULL, 0);
    self->in_order = true;
    s_send_request (self->fd, "GET", path, headers);
    fcntl (self->fd, F_SETFL, fcntl (self->fd, F_GETFL) | O_NONBLOCK);
    return self;
}

static void
s_sse_destroy (s_sse_t **self_p)
{
    s_sse_t *self = *self_p;
    if (self->fd >= 0)
        close (self->fd);
    zchunk_destroy (&self->pending);
    free (self->missed);
    free (self->last_id);
    free (self);
    *self_p = NULL;
}

//  One event block (without its blank line).
static void
s_sse_event (s_sse_t *self, char *block)
{
    char *save = NULL, *kind = NULL, *id = NULL, *data = NULL;
    for (char *line = strtok_r (block, "\n", &save); line; line = strtok_r (NULL, "\n", &save)) {
        if (strncmp (line, "event: ", 7) == 0)
            kind = line + 7;
        else
        if (strncmp (line, "id: ", 4) == 0)
            id = line + 4;
        else
        if (strncmp (line, "data: ", 6) == 0)
            data = line + 6;
    }
    if (kind && streq (kind, "dropped"))
        self->dropped = true;
    else
    if (kind && streq (kind, "missed")) {
        free (self->missed);
        self->missed = strdup (data? data: "");
    }
    else
    if (id && data) {
        uint64_t epoch = 0, seq = 0;
        char hex [17];
        cr_assert_eq (sscanf (id, "%16[0-9a-f]-%" SCNu64, hex, &seq), 2, "id %s", id);
        epoch = strtoull (hex, NULL, 16);
        if (self->events && (epoch != self->epoch || seq != self->last + 1))
            self->in_order = false;
        if (!self->events)
            self->first = seq;
        self->epoch = epoch;
        self->last = seq;
        self->events++;
        free (self->last_id);
        self->last_id = strdup (id);
        if (strstr (data, MARKER))
            self->marker = true;
    }
}

//  Reads what is there and parses every whole event. Returns false once
//  the stream has ended.
static bool
s_sse_pump (s_sse_t *self)
{
    char buf [65536];
    ssize_t n = -1;             //  -1 until a recv says otherwise
    while (self->fd >= 0 && (n = recv (self->fd, buf, sizeof buf, 0)) != 0) {
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            close (self->fd);
            self->fd = -1;
            break;
        }
        zchunk_extend (self->pending, buf, n);
    }
    if (n == 0 && self->fd >= 0) {
        close (self->fd);
        self->fd = -1;
    }
    char *text = (char *) zchunk_data (self->pending);
    size_t size = zchunk_size (self->pending), used = 0;
    if (!self->head_done) {
        char *blank = memmem (text, size, "\r\n\r\n", 4);
        if (!blank)
            return self->fd >= 0;
        sscanf (text, "HTTP/1.%*d %d", &self->status);
        self->head_done = true;
        used = blank + 4 - text;
    }
    while (used < size) {
        char *end = memmem (text + used, size - used, "\n\n", 2);
        if (!end)
            break;
        char *block = strndup (text + used, end - (text + used));
        s_sse_event (self, block);
        free (block);
        used = end + 2 - text;
    }
    zchunk_t *rest = zchunk_new (text + used, size - used);
    zchunk_destroy (&self->pending);
    self->pending = rest;
    return self->fd >= 0;
}

//  Pumps every client until done (client) is true for all or timeout_ms.
static bool
s_pump_all (s_sse_t **clients, size_t count, bool (*done) (s_sse_t *), int timeout_ms)
{
    int64_t deadline = ep_mono_ms () + timeout_ms;
    struct pollfd *fds = (struct pollfd *) calloc (count, sizeof (struct pollfd));
    bool all = false;
    while (!all && ep_mono_ms () < deadline) {
        for (size_t i = 0; i < count; i++)
            fds [i] = (struct pollfd) { .fd = clients [i]->fd, .events = POLLIN };
        poll (fds, count, 50);
        all = true;
        for (size_t i = 0; i < count; i++) {
            if (fds [i].revents || clients [i]->fd >= 0)
                s_sse_pump (clients [i]);
            all &= done (clients [i]);
        }
    }
    free (fds);
    return all;
}

static bool
s_opened (s_sse_t *client)
{
    return client->head_done;
}

static bool
s_finished (s_sse_t *client)
{
    return client->marker || client->dropped || client->fd < 0;
}

// ---------------------------------------------------------------------------
//  Publishing on the bus as a service would.

typedef struct {
    ep_publisher_t *publisher;  //  on the bus's pub side, as the terminators service
    zcert_t *cert;              //  its certificate
} s_pub_t;

static s_pub_t
s_pub_new (ep_stack_t *stack)
{
    s_pub_t pub;
    pub.cert = ep_keys_load (ep_stack_keys (stack), "terminators");
    char *bus_key = ep_keys_public_txt (ep_stack_keys (stack), "bus");
    pub.publisher = ep_publisher_new (ep_stack_getenv (stack, "EDGEPLANE_BUS_PUB"), pub.cert, bus_key,
                                      "terminators-test", 1 << 20);
    free (bus_key);
    cr_assert_not_null (pub.publisher);
    return pub;
}

static void
s_pub_destroy (s_pub_t *pub)
{
    ep_publisher_destroy (&pub->publisher);
    zcert_destroy (&pub->cert);
}

static void
s_stray (s_pub_t *pub, const char *remote_addr)
{
    Ep__StrayEvent stray = EP__STRAY_EVENT__INIT;
    stray.remote_addr = (char *) remote_addr;
    stray.step = "await-hello";
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_STRAY;
    event.stray = &stray;
    cr_assert_eq (ep_publisher_send (pub->publisher, "stray.detected", &event), 0);
}

//  Publishes probes until client has received one: the publisher's
//  connection through the bus to the console is up.
static void
s_pub_prove (s_pub_t *pub, s_sse_t *client)
{
    int64_t deadline = ep_mono_ms () + 15000 * EP_TEST_SLOWDOWN;
    while (!client->events && ep_mono_ms () < deadline) {
        s_stray (pub, "192.0.2.1:1");
        ep_publisher_tick (pub->publisher);
        struct pollfd fd = { .fd = client->fd, .events = POLLIN };
        poll (&fd, 1, 100);
        s_sse_pump (client);
    }
    cr_assert_gt (client->events, 0, "no event reached the console's stream in 15 s");
}

static double
s_metric (ep_proc_t *console, const char *series)
{
    char *body = ep_http_get (ep_proc_connect_endpoint (console, "http"), "/metrics");
    cr_assert_not_null (body);
    char *line = zsys_sprintf ("\n%s ", series);
    char *at = strstr (body, line);
    cr_assert_not_null (at, "no %s in /metrics", series);
    double value = atof (at + strlen (line));
    free (line);
    free (body);
    return value;
}

// ---------------------------------------------------------------------------

typedef struct {
    agent_t **agents;           //  the routers
    size_t count;               //  how many
    volatile bool stop;         //  set to end the thread
} s_fleet_t;

static void *
s_fleet_run (void *arg)
{
    s_fleet_t *fleet = (s_fleet_t *) arg;
    while (!fleet->stop) {
        struct pollfd fds [8];
        for (size_t i = 0; i < fleet->count; i++)
            fds [i] = (struct pollfd) { .fd = agent_fd (fleet->agents [i]), .events = POLLIN };
        poll (fds, fleet->count, 20);
        for (size_t i = 0; i < fleet->count; i++) {
            if (fds [i].revents)
                agent_handle (fleet->agents [i]);
            agent_tick (fleet->agents [i]);
        }
    }
    return NULL;
}

typedef struct {
    ep_proc_t *console;         //  what we ask
    size_t online;              //  routers that must be online
    json_t *fleet;              //  the last /api/fleet
} s_fleet_wait_t;

static bool
s_fleet_online (void *arg)
{
    s_fleet_wait_t *wait = (s_fleet_wait_t *) arg;
    char *body = ep_http_get (ep_proc_connect_endpoint (wait->console, "http"), "/api/fleet");
    json_decref (wait->fleet);
    wait->fleet = body? json_loads (body, 0, NULL): NULL;
    free (body);
    size_t online = 0, index;
    json_t *router;
    json_array_foreach (json_object_get (wait->fleet, "routers"), index, router)
        online += json_is_true (json_object_get (router, "online"));
    return online == wait->online;
}

Test (console, fleet_lists_the_routers_the_agents_joined, .timeout = 120)
{
    ep_stack_t *stack = ep_stack_new ("console-fleet");
    ep_stack_setenv (stack, "EDGEPLANE_TERMINATORS_API", "tcp://127.0.0.1:1");
    ep_stack_setenv (stack, "EDGEPLANE_REAPER_API", "tcp://127.0.0.1:1");
    ep_stack_create_service (stack, "svc1");
    const char *hosted [] = { "svc1" }, *ids [] = { "r1", "r2", "r3" };
    uint64_t revision = 0;
    char err [512];
    for (size_t i = 0; i < 3; i++) {
        revision = ep_stack_router_write (stack, EP__MODEL_WRITE__OP__CREATE, ids [i], hosted, 1);
        cr_assert_eq (ep_pki_issue (ep_stack_keys (stack), "router", ids [i], ep_stack_dir (stack), 30,
                                    err, sizeof err), 0, "%s", err);
    }
    ep_stack_start (stack, "watchdog", 15000 * EP_TEST_SLOWDOWN);
    ep_proc_t *console = ep_stack_start (stack, "console", 15000 * EP_TEST_SLOWDOWN);
    const char *channel = ep_proc_connect_endpoint (ep_stack_service (stack, "watchdog"), "channel");

    s_fleet_t fleet = { (agent_t **) calloc (3, sizeof (agent_t *)), 3, false };
    SSL_CTX *contexts [3];
    char *ca = zsys_sprintf ("%s/ca.crt", ep_stack_dir (stack));
    for (size_t i = 0; i < 3; i++) {
        char *cert = zsys_sprintf ("%s/%s.crt", ep_stack_dir (stack), ids [i]);
        char *key = zsys_sprintf ("%s/%s.key", ep_stack_dir (stack), ids [i]);
        contexts [i] = ep_pki_client_ctx (cert, key, ca, err, sizeof err);
        cr_assert_not_null (contexts [i], "%s", err);
        agent_config_t config = { .id = ids [i], .ctx = contexts [i], .controller = channel,
                                  .sessions = 2, .ack_share = 1, .heartbeat_ms = 500,
                                  .backoff_base_ms = 100, .backoff_max_ms = 1000, .request_timeout_ms = 2000 };
        fleet.agents [i] = agent_new (&config);
        free (cert);
        free (key);
    }
    free (ca);
    pthread_t thread;
    cr_assert_eq (pthread_create (&thread, NULL, s_fleet_run, &fleet), 0);

    s_fleet_wait_t wait = { console, 3, NULL };
    bool online = ep_wait_until (s_fleet_online, &wait, 15000 * EP_TEST_SLOWDOWN);
    char *text = json_dumps (wait.fleet, JSON_COMPACT);
    cr_assert (online, "the console did not show 3 routers online: %s", text);
    free (text);
    cr_assert_geq (json_integer_value (json_object_get (wait.fleet, "revision")), (json_int_t) revision);
    size_t index;
    json_t *router;
    json_array_foreach (json_object_get (wait.fleet, "routers"), index, router) {
        cr_assert_str_eq (json_string_value (json_object_get (router, "id")), ids [index]);
        cr_assert (json_is_true (json_object_get (router, "in_model")));
        cr_assert_not_null (json_string_value (json_object_get (router, "instance")));
    }
    cr_assert_eq (json_array_size (json_object_get (wait.fleet, "members")), 1);

    //  Deleting a router turns it offline, then out of the view.
    ep_stack_delete_router (stack, "r2");
    wait.online = 2;
    cr_assert (ep_wait_until (s_fleet_online, &wait, 15000 * EP_TEST_SLOWDOWN), "r2 is still online");
    json_decref (wait.fleet);

    fleet.stop = true;
    pthread_join (thread, NULL);
    for (size_t i = 0; i < 3; i++) {
        agent_destroy (&fleet.agents [i]);
        SSL_CTX_free (contexts [i]);
    }
    free (fleet.agents);
    ep_stack_destroy (&stack);
}

typedef struct {
    s_pub_t *pub;               //  where to publish
    int count;                  //  events in the burst
} s_burst_t;

static void *
s_burst_run (void *arg)
{
    s_burst_t *burst = (s_burst_t *) arg;
    char addr [32];
    for (int i = 0; i < burst->count; i++) {
        snprintf (addr, sizeof addr, "198.51.100.%d:%d", i % 250, 1000 + i);
        s_stray (burst->pub, addr);
    }
    s_stray (burst->pub, MARKER);
    return NULL;
}

#define CLIENTS 200
#define BURST   10000

Test (console, two_hundred_streams_each_get_every_event_of_a_burst_in_order, .timeout = 240)
{
    ep_stack_t *stack = ep_stack_new ("console-sse");
    ep_stack_setenv (stack, "EDGEPLANE_CONSOLE_STREAM_BYTES", "%d", 8 << 20);
    ep_proc_t *console = ep_stack_start (stack, "console", 15000 * EP_TEST_SLOWDOWN);
    int port = s_port (console);
    s_pub_t pub = s_pub_new (stack);
    s_sse_t *probe = s_sse_open (port, "/api/events", NULL, 0);
    s_pub_prove (&pub, probe);
    s_sse_destroy (&probe);

    s_sse_t *clients [CLIENTS];
    for (size_t i = 0; i < CLIENTS; i++)
        clients [i] = s_sse_open (port, "/api/events", NULL, 0);
    cr_assert (s_pump_all (clients, CLIENTS, s_opened, 20000 * EP_TEST_SLOWDOWN), "not every stream opened");
    //  Every stream is registered once the console counts it.
    int64_t deadline = ep_mono_ms () + 10000;
    //  (The probe's stream may linger, suspended, until the next event.)
    while (s_metric (console, "edgeplane_console_streams") < CLIENTS && ep_mono_ms () < deadline)
        s_pump_all (clients, CLIENTS, s_opened, 50);
    cr_assert_geq (s_metric (console, "edgeplane_console_streams"), CLIENTS);
    uint64_t before = (uint64_t) s_metric (console, "edgeplane_console_events_total");

    s_burst_t burst = { &pub, BURST };
    pthread_t thread;
    cr_assert_eq (pthread_create (&thread, NULL, s_burst_run, &burst), 0);
    bool finished = s_pump_all (clients, CLIENTS, s_finished, 120000 * EP_TEST_SLOWDOWN);
    pthread_join (thread, NULL);
    cr_assert (finished, "some streams neither ended the burst nor were dropped");

    uint64_t taken = (uint64_t) s_metric (console, "edgeplane_console_events_total");
    size_t complete = 0, dropped = 0;
    for (size_t i = 0; i < CLIENTS; i++) {
        s_sse_t *client = clients [i];
        cr_assert_eq (client->status, 200);
        if (client->dropped) {
            dropped++;
            cr_assert (client->in_order, "client %zu: what came before the drop was out of order", i);
            continue;
        }
        cr_assert (client->marker, "client %zu ended without the marker or a drop notice", i);
        cr_assert (client->in_order, "client %zu: ids not consecutive", i);
        cr_assert_eq (client->first, before + 1, "client %zu: first id %" PRIu64 ", expected %" PRIu64,
                      i, client->first, before + 1);
        cr_assert_eq (client->last, taken, "client %zu: the marker is not the console's last event", i);
        cr_assert_eq (client->events, taken - before);
        complete++;
    }
    cr_assert_eq (complete + dropped, CLIENTS);
    cr_assert_eq ((double) dropped, s_metric (console, "edgeplane_console_streams_dropped_total"));
    cr_assert_gt (complete, 0, "every stream was dropped");
    cr_log_info ("console took %" PRIu64 " of %d events; %zu streams complete, %zu dropped",
                 taken - before, BURST + 1, complete, dropped);
    for (size_t i = 0; i < CLIENTS; i++)
        s_sse_destroy (&clients [i]);
    s_pub_destroy (&pub);
    ep_stack_destroy (&stack);
}

//  Publishes count events at rate events/s (in bursts every 10 ms), then the marker.
typedef struct {
    s_pub_t *pub;               //  where
    int count;                  //  how many
    int rate;                   //  per second
} s_paced_t;

static void *
s_paced_run (void *arg)
{
    s_paced_t *paced = (s_paced_t *) arg;
    int64_t start = ep_mono_ms ();
    char addr [32];
    for (int i = 0; i < paced->count; i++) {
        while ((ep_mono_ms () - start) * paced->rate / 1000 < i)
            zclock_sleep (5);
        snprintf (addr, sizeof addr, "198.51.100.%d:%d", i % 250, 1000 + i);
        s_stray (paced->pub, addr);
    }
    s_stray (paced->pub, MARKER);
    return NULL;
}

#define READERS 10
#define PACED   4000
#define RATE    2000

Test (console, a_reader_that_stops_is_dropped_at_its_bound_and_the_others_keep_their_rate, .timeout = 180)
{
    ep_stack_t *stack = ep_stack_new ("console-slow");
    ep_stack_setenv (stack, "EDGEPLANE_CONSOLE_STREAM_BYTES", "65536");
    ep_proc_t *console = ep_stack_start (stack, "console", 15000 * EP_TEST_SLOWDOWN);
    int port = s_port (console);
    s_pub_t pub = s_pub_new (stack);
    s_sse_t *probe = s_sse_open (port, "/api/events", NULL, 0);
    s_pub_prove (&pub, probe);
    s_sse_destroy (&probe);

    //  The slow reader: a small receive buffer, and it never reads.
    s_sse_t *slow = s_sse_open (port, "/api/events", NULL, 4096);
    s_sse_t *readers [READERS];
    for (size_t i = 0; i < READERS; i++)
        readers [i] = s_sse_open (port, "/api/events", NULL, 0);
    cr_assert (s_pump_all (readers, READERS, s_opened, 10000 * EP_TEST_SLOWDOWN));
    int64_t deadline = ep_mono_ms () + 10000;
    while (s_metric (console, "edgeplane_console_streams") < READERS + 1 && ep_mono_ms () < deadline)
        s_pump_all (readers, READERS, s_opened, 50);

    s_paced_t paced = { &pub, PACED, RATE };
    pthread_t thread;
    int64_t started = ep_mono_ms ();
    cr_assert_eq (pthread_create (&thread, NULL, s_paced_run, &paced), 0);
    //  Each reader's rate over the second half of the run, when the slow
    //  one is long past its bound.
    bool finished = s_pump_all (readers, READERS, s_finished, 60000 * EP_TEST_SLOWDOWN);
    int64_t elapsed = ep_mono_ms () - started;
    pthread_join (thread, NULL);
    cr_assert (finished);
    cr_assert_eq (s_metric (console, "edgeplane_console_streams_dropped_total"), 1,
                  "the slow stream was not dropped at its bound (or others were)");
    for (size_t i = 0; i < READERS; i++) {
        cr_assert (readers [i]->marker && !readers [i]->dropped && readers [i]->in_order, "reader %zu", i);
        cr_assert_geq (readers [i]->events, PACED * 0.99, "reader %zu got %zu events", i, readers [i]->events);
    }
    //  The readers kept the publishing rate: all of it arrived within the
    //  publishing time plus a little.
    double rate = readers [0]->events * 1000.0 / elapsed;
    cr_log_info ("readers: %.0f events/s with a stalled stream (published at %d/s)", rate, RATE);
    cr_assert_geq (rate, RATE * 0.8 / EP_TEST_SLOWDOWN, "readers slowed to %.0f events/s", rate);
    //  The slow one, once it reads, finds the drop notice, then the end.
    fcntl (slow->fd, F_SETFL, fcntl (slow->fd, F_GETFL) & ~O_NONBLOCK);
    while (s_sse_pump (slow))
        ;
    cr_assert (slow->dropped, "the stalled stream was not told it was dropped");
    cr_assert_lt (slow->events, PACED / 2);
    s_sse_destroy (&slow);
    for (size_t i = 0; i < READERS; i++)
        s_sse_destroy (&readers [i]);
    s_pub_destroy (&pub);
    ep_stack_destroy (&stack);
}

//  Reads client until it has count events more than before (or the timeout).
static void
s_read_events (s_sse_t *client, size_t count)
{
    size_t want = client->events + count;
    int64_t deadline = ep_mono_ms () + 15000 * EP_TEST_SLOWDOWN;
    while (client->events < want && ep_mono_ms () < deadline) {
        struct pollfd fd = { .fd = client->fd, .events = POLLIN };
        poll (&fd, 1, 50);
        s_sse_pump (client);
    }
    cr_assert_geq (client->events, want, "%zu events, expected %zu", client->events, want);
}

static void
s_publish_n (s_pub_t *pub, int count)
{
    char addr [32];
    for (int i = 0; i < count; i++) {
        snprintf (addr, sizeof addr, "203.0.113.%d:%d", i % 250, 2000 + i);
        s_stray (pub, addr);
    }
}

static s_sse_t *
s_resume (int port, const char *last_id)
{
    char headers [256];
    snprintf (headers, sizeof headers, "Host: 127.0.0.1\r\nLast-Event-ID: %s\r\n", last_id);
    return s_sse_open (port, "/api/events", headers, 0);
}

Test (console, last_event_id_resumes_and_a_restart_says_what_was_missed, .timeout = 180)
{
    ep_stack_t *stack = ep_stack_new_with ("console-resume", EP_STACK_STABLE);
    ep_stack_setenv (stack, "EDGEPLANE_CONSOLE_RING", "50");
    ep_proc_t *console = ep_stack_start (stack, "console", 15000 * EP_TEST_SLOWDOWN);
    int port = s_port (console);
    s_pub_t pub = s_pub_new (stack);
    s_sse_t *client = s_sse_open (port, "/api/events", NULL, 0);
    s_pub_prove (&pub, client);
    char *last = strdup (client->last_id);
    uint64_t seq = client->last;
    s_sse_destroy (&client);

    //  10 events while away: the ring has them all.
    s_publish_n (&pub, 10);
    client = s_resume (port, last);
    s_read_events (client, 10);
    cr_assert_null (client->missed, "a resume the ring serves got a missed event: %s", client->missed);
    cr_assert_eq (client->first, seq + 1);
    cr_assert (client->in_order);
    free (last);
    last = strdup (client->last_id);
    seq = client->last;
    s_sse_destroy (&client);

    //  100 while away: the ring (50) lost the first 50 of them.
    s_publish_n (&pub, 100);
    int64_t deadline = ep_mono_ms () + 10000;
    while (s_metric (console, "edgeplane_console_events_total") < seq + 100 && ep_mono_ms () < deadline)
        zclock_sleep (20);
    client = s_resume (port, last);
    s_read_events (client, 50);
    cr_assert_not_null (client->missed, "no missed event for a resume the ring cannot serve");
    json_t *missed = json_loads (client->missed, 0, NULL);
    uint64_t taken = (uint64_t) s_metric (console, "edgeplane_console_events_total");
    cr_assert_eq (json_integer_value (json_object_get (missed, "missed")), (json_int_t) (taken - 50 - seq),
                  "%s", client->missed);
    cr_assert_str_eq (json_string_value (json_object_get (missed, "reason")), "too-old");
    cr_assert_eq (client->first, taken - 49);
    json_decref (missed);
    free (last);
    last = strdup (client->last_id);
    s_sse_destroy (&client);

    //  A restart (another epoch): told so, then live events again.
    free (ep_stack_kill (stack, "console"));
    console = ep_stack_start (stack, "console", 15000 * EP_TEST_SLOWDOWN);
    cr_assert_eq (s_port (console), port, "the restarted console is not on the same port");
    client = s_resume (port, last);
    s_pub_prove (&pub, client);
    cr_assert_not_null (client->missed, "no missed event after a restart");
    missed = json_loads (client->missed, 0, NULL);
    cr_assert_str_eq (json_string_value (json_object_get (missed, "reason")), "restart", "%s", client->missed);
    cr_assert (json_is_integer (json_object_get (missed, "missed")));
    cr_assert_not_null (json_string_value (json_object_get (missed, "since")));
    json_decref (missed);
    uint64_t old_epoch = strtoull (last, NULL, 16);
    cr_assert_neq (client->epoch, old_epoch, "a restarted console reused its epoch");
    free (last);
    s_sse_destroy (&client);
    s_pub_destroy (&pub);
    ep_stack_destroy (&stack);
}

//  CPU time (user + system, ms) process pid has used, from /proc.
static int64_t
s_cpu_ms (pid_t pid)
{
    char path [64], line [1024];
    snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
    FILE *file = fopen (path, "r");
    cr_assert_not_null (file);
    cr_assert_not_null (fgets (line, sizeof line, file));
    fclose (file);
    //  Fields 14 and 15 (utime, stime), counted after the command's ")".
    unsigned long utime = 0, stime = 0;
    char *after = strrchr (line, ')');
    cr_assert (after && sscanf (after + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                                &utime, &stime) == 2);
    return (int64_t) (utime + stime) * 1000 / sysconf (_SC_CLK_TCK);
}

static bool
s_console_ready (void *arg)
{
    char *body = ep_readyz (ep_proc_endpoint ((ep_proc_t *) arg, "http"));
    bool ready = streq (body, "ready\n");
    free (body);
    return ready;
}

//  Its loop once mixed a wait with a time and never slept: a whole core,
//  all the time. Idle, it must sleep.
Test (console, an_idle_console_sleeps, .timeout = 60)
{
    ep_stack_t *stack = ep_stack_new ("console-idle");
    const char *args [] = { "--http-listen", "127.0.0.1:0", NULL };
    ep_proc_t *console = ep_proc_start ("edgeplane-console", args, ep_stack_env (stack), 15000 * EP_TEST_SLOWDOWN);
    cr_assert_not_null (console);
    ep_stack_keep (stack, console);
    cr_assert (ep_wait_until (s_console_ready, console, 15000 * EP_TEST_SLOWDOWN), "the console never got ready");
    //  A measurement over a window, not a wait for something.
    int64_t cpu = s_cpu_ms (ep_proc_pid (console)), started = ep_mono_ms ();
    zclock_sleep (3000);
    int64_t used = s_cpu_ms (ep_proc_pid (console)) - cpu, elapsed = ep_mono_ms () - started;
    cr_assert_lt (used * 100, elapsed * 20, "idle, the console used %lld ms of CPU in %lld ms",
                  (long long) used, (long long) elapsed);
    ep_stack_destroy (&stack);
}

Test (console, a_bind_that_is_not_loopback_needs_the_token_and_our_host_name, .timeout = 120)
{
    ep_stack_t *stack = ep_stack_new ("console-access");
    ep_stack_setenv (stack, "EDGEPLANE_CONSOLE_HOSTS", "127.0.0.1,console.example");
    const char *args [] = { "--http-listen", "0.0.0.0:0", NULL };
    ep_proc_t *console = ep_proc_start ("edgeplane-console", args, ep_stack_env (stack), 15000 * EP_TEST_SLOWDOWN);
    cr_assert_not_null (console);
    ep_stack_keep (stack, console);
    int port = s_port (console);
    char *path = zsys_sprintf ("%s/console.token", ep_stack_keys (stack));
    FILE *file = fopen (path, "r");
    cr_assert_not_null (file, "pki init made no token");
    char token [160] = "";
    cr_assert_not_null (fgets (token, sizeof token, file));
    fclose (file);
    free (path);
    token [strcspn (token, "\n")] = 0;
    char bearer [300], foreign [300];
    snprintf (bearer, sizeof bearer, "Host: 127.0.0.1\r\nAuthorization: Bearer %s\r\n", token);
    snprintf (foreign, sizeof foreign, "Host: evil.example\r\nAuthorization: Bearer %s\r\n", token);

    //  The page itself is static and holds no data: it shows the sign-in
    //  form, so it is served without a token (not to a foreign Host).
    s_reply_t page = s_request (port, "GET", "/", NULL);
    cr_assert_eq (page.status, 200, "the page without a token: %d", page.status);
    cr_assert (strstr (page.body, "login-form") && !strstr (page.body, "\"revision\":"), "not the page, or it carries data");
    s_reply_free (&page);
    page = s_request (port, "GET", "/", foreign);
    cr_assert_eq (page.status, 401, "the page with a foreign Host: %d", page.status);
    s_reply_free (&page);
    const char *paths [] = { "/api/fleet", "/api/events", "/api/stats", "/metrics" };
    for (size_t i = 0; i < EP_COUNT (paths); i++) {
        s_reply_t reply = s_request (port, "GET", paths [i], NULL);
        cr_assert_eq (reply.status, 401, "%s without a token: %d", paths [i], reply.status);
        cr_assert_str_eq (reply.body, "", "a refusal carries no data");
        cr_assert_null (strcasestr (reply.head, "Access-Control"), "CORS headers: %s", reply.head);
        s_reply_free (&reply);
        reply = s_request (port, "GET", paths [i], foreign);
        cr_assert_eq (reply.status, 401, "%s with a foreign Host: %d", paths [i], reply.status);
        cr_assert_str_eq (reply.body, "");
        s_reply_free (&reply);
    }
    s_reply_t reply = s_request (port, "GET", "/api/fleet", bearer);
    cr_assert_eq (reply.status, 200);
    cr_assert_null (strcasestr (reply.head, "Access-Control"));
    s_reply_free (&reply);
    reply = s_request (port, "GET", "/healthz", "Host: 127.0.0.1\r\n");
    cr_assert_eq (reply.status, 200, "probes need no token");
    s_reply_free (&reply);

    //  The login: a wrong token is refused, the right one gives the cookie.
    reply = s_request (port, "POST", "/api/login", "Host: 127.0.0.1\r\nAuthorization: Bearer nope\r\nContent-Length: 0\r\n");
    cr_assert_eq (reply.status, 401);
    s_reply_free (&reply);
    char login [400];
    snprintf (login, sizeof login, "%sContent-Length: 0\r\n", bearer);
    reply = s_request (port, "POST", "/api/login", login);
    cr_assert_eq (reply.status, 204);
    char *set = strcasestr (reply.head, "Set-Cookie: ");
    cr_assert_not_null (set, "%s", reply.head);
    cr_assert (strstr (set, "HttpOnly") && strstr (set, "SameSite=Strict"), "%s", set);
    char cookie [300];
    snprintf (cookie, sizeof cookie, "Host: console.example:%d\r\nCookie: %.*s\r\n", port,
              (int) strcspn (set + 12, ";\r"), set + 12);
    s_reply_free (&reply);
    reply = s_request (port, "GET", "/api/stats?window=5m", cookie);
    cr_assert_eq (reply.status, 200, "the cookie did not admit: %s", cookie);
    json_t *stats = json_loads (reply.body, 0, NULL);
    cr_assert_eq (json_array_size (json_object_get (stats, "minutes")), 5);
    json_decref (stats);
    s_reply_free (&reply);
    //  Read-only: no other method.
    reply = s_request (port, "DELETE", "/api/fleet", bearer);
    cr_assert_eq (reply.status, 405);
    s_reply_free (&reply);
    ep_stack_destroy (&stack);
}
