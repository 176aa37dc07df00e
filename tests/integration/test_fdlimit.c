/*  test_fdlimit.c: each service at its descriptor limit (set with prlimit
    on the service process, not on the test) keeps serving what it has,
    refuses new work with a reason, does not abort, and takes new work
    once its limit is raised again.

    - The watchdog: routers already joined stay joined, new connections are
      refused with reason fd-limit (log,
      edgeplane_channel_refused_total{reason="fd-limit"} and
      edgeplane_fd_limit_refusals_total{what="channel"}), and once the
      load goes a new router joins.
    - The model with no descriptor spare keeps applying and answering
      writes on the connection it has, refuses a snapshot (which needs a
      read connection to its store) UNAVAILABLE with the reason logged,
      and takes more once its limit is raised.
    - The terminators and the reaper with three descriptors spare: writes
      on the connection they have are applied and answered; new clients
      take the descriptors, /metrics answers on one while it is free (and
      counts the limit reached in edgeplane_fd_limit_reached_total), and
      the next client once none is free waits unanswered (a ZeroMQ
      listener cannot refuse: the log says why); with the limit raised the
      waiting client is answered.
    - The bus, likewise: the publisher and subscriber it has keep flowing,
      a new subscriber with no descriptor free gets nothing, and gets the
      events once the limit is raised.
    - The console: its open event stream keeps receiving events, a new
      HTTP connection for a stream is answered 503 with the reason (log and
      edgeplane_fd_limit_refusals_total{what="http"}), /metrics answers,
      and once the limit is raised a new stream is served.

    Each test asserts the process is alive and wrote no assertion. */
#include <criterion/criterion.h>
#include "ep_stack.h"
#include "ep_codec.h"
#include "ep_keys.h"
#include "ep_pki.h"
#include "ep_publisher.h"
#include "sessions.pb-c.h"
#include "terminators.pb-c.h"
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#define CALL_MS     (10000 * EP_TEST_SLOWDOWN)  //  a call that must be answered
#define UNANSWERED_MS   1000                    //  how long a waiting client is seen not answered

static int
s_open_fds (pid_t pid)
{
    char path [64];
    snprintf (path, sizeof path, "/proc/%d/fd", (int) pid);
    DIR *dir = opendir (path);
    cr_assert_not_null (dir);
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir (dir)))
        count += entry->d_name [0] != '.';
    closedir (dir);
    return count;
}

typedef struct {
    ep_proc_t *watchdog;
    double want;
} s_probe_t;

static double
s_metric (ep_proc_t *watchdog, const char *series)
{
    char *page = ep_http_get (ep_proc_endpoint (watchdog, "http"), "/metrics");
    double value = page? ep_metric_value (page, series): -1;
    free (page);
    return value;
}

static bool
s_joined_at_least (void *arg)
{
    s_probe_t *probe = (s_probe_t *) arg;
    return s_metric (probe->watchdog, "edgeplane_connections{role=\"router\",state=\"joined\"}") >= probe->want;
}

static bool
s_refused_fd_limit (void *arg)
{
    char *log = ep_proc_log (((s_probe_t *) arg)->watchdog);
    bool said = log && strstr (log, "fd-limit");
    free (log);
    return said;
}

static ep_proc_t *
s_fleet (ep_stack_t *stack, const char *prefix, int count, const char *channel)
{
    char dir [512], err [512], number [16];
    snprintf (dir, sizeof dir, "%s/%sfleet", ep_stack_dir (stack), prefix);
    snprintf (number, sizeof number, "%d", count);
    cr_assert_eq (ep_pki_issue_batch (ep_stack_keys (stack), "router", prefix, count, dir, 30, err, sizeof err), 0,
                  "%s", err);
    for (int i = 0; i < count; i++) {
        char id [32];
        snprintf (id, sizeof id, "%s%d", prefix, i);
        ep_stack_router_write (stack, EP__MODEL_WRITE__OP__CREATE, id, NULL, 0);
    }
    const char *args [] = { "--count", number, "--prefix", prefix, "--bundle", dir,
                            "--controller", channel, "--heartbeat", "1s", NULL };
    ep_proc_t *fleet = ep_proc_spawn ("edgeplane-router", args, ep_stack_env (stack));
    cr_assert_not_null (fleet);
    return fleet;
}

//  ---------------------------------------------------------------------
//  Plumbing

//  The descriptor numbers pid holds in each of three readings of
//  /proc/<pid>/fd, as held [n] for n < *size (caller frees): a descriptor
//  open for an instant (the service's own headroom check) is not one it
//  holds.
static bool *
s_held (pid_t pid, int *size)
{
    int max = 65536;
    unsigned char *seen = (unsigned char *) calloc (max, 1);
    char path [64];
    snprintf (path, sizeof path, "/proc/%d/fd", (int) pid);
    for (int reading = 0; reading < 3; reading++) {
        DIR *dir = opendir (path);
        cr_assert_not_null (dir);
        struct dirent *entry;
        while ((entry = readdir (dir)))
            if (entry->d_name [0] != '.') {
                int fd = atoi (entry->d_name);
                cr_assert (fd >= 0 && fd < max, "descriptor %d", fd);
                seen [fd]++;
            }
        closedir (dir);
    }
    bool *held = (bool *) calloc (max, sizeof (bool));
    for (int fd = 0; fd < max; fd++)
        held [fd] = seen [fd] == 3;
    free (seen);
    *size = max;
    return held;
}

//  Sets pid's soft RLIMIT_NOFILE; the hard one stays, so it can be raised
//  again.
static void
s_set_limit (pid_t pid, long limit)
{
    char command [128];
    snprintf (command, sizeof command, "prlimit --pid %d --nofile=%ld:", (int) pid, limit);
    cr_assert_eq (ep_run (command, NULL), 0, "%s failed", command);
}

//  pid's soft RLIMIT_NOFILE now, from /proc/<pid>/limits.
static long
s_soft_limit (pid_t pid)
{
    char path [64], line [256];
    snprintf (path, sizeof path, "/proc/%d/limits", (int) pid);
    FILE *file = fopen (path, "r");
    cr_assert_not_null (file);
    long soft = -1;
    while (soft < 0 && fgets (line, sizeof line, file))
        if (strncmp (line, "Max open files", 14) == 0)
            soft = atol (line + 14);
    fclose (file);
    cr_assert_gt (soft, 0);
    return soft;
}

typedef struct {
    pid_t pid;
    int count;
} s_fds_wait_t;

static bool
s_fds_at_most (void *arg)
{
    s_fds_wait_t *wait = (s_fds_wait_t *) arg;
    return s_open_fds (wait->pid) <= wait->count;
}

//  Waits until pid holds at most count descriptors: a connection the test
//  made and ended is closed on the service's side too (libmicrohttpd closes
//  after the client has read the answer), before its limit is computed.
static void
s_await_fds (pid_t pid, int count)
{
    s_fds_wait_t wait = { pid, count };
    cr_assert (ep_wait_until (s_fds_at_most, &wait, 5000 * EP_TEST_SLOWDOWN),
               "the service still holds %d descriptors (%d before)", s_open_fds (pid), count);
}

//  Lowers pid's limit so that exactly spare more descriptors can be
//  opened: the limit bounds descriptor numbers, so below it there are
//  spare numbers pid does not hold. Returns the limit it had.
static long
s_limit_leaving (pid_t pid, int spare)
{
    long before = s_soft_limit (pid);
    int size;
    bool *held = s_held (pid, &size);
    int limit = 0, free_below = 0;
    while (limit < size && (held [limit] || free_below < spare)) {
        free_below += !held [limit];
        limit++;
    }
    free (held);
    s_set_limit (pid, limit);
    return before;
}

typedef struct {
    ep_proc_t *proc;
    const char *text;
} s_log_wait_t;

static bool
s_logged (void *arg)
{
    s_log_wait_t *wait = (s_log_wait_t *) arg;
    char *log = ep_proc_log (wait->proc);
    bool said = log && strstr (log, wait->text);
    free (log);
    return said;
}

static void
s_await_log (ep_proc_t *proc, const char *name, const char *text)
{
    s_log_wait_t wait = { proc, text };
    cr_assert (ep_wait_until (s_logged, &wait, 5000 * EP_TEST_SLOWDOWN),
               "the %s did not log \"%s\"", name, text);
}

//  Running, and no assertion in its log (EP_ASSERT's or a library's).
static void
s_assert_alive (ep_proc_t *proc, const char *name)
{
    cr_assert_eq (ep_proc_wait_exit (proc, 0), -1, "the %s died at its descriptor limit", name);
    char *log = ep_proc_log (proc);
    cr_assert_null (log? strcasestr (log, "assertion"): NULL, "the %s logged an assertion:\n%s", name, log);
    free (log);
}

//  The value of series on proc's /metrics (a new connection), which must
//  answer.
static double
s_scraped (ep_proc_t *proc, const char *name, const char *series)
{
    char *page = ep_http_get (ep_proc_endpoint (proc, "http"), "/metrics");
    cr_assert_not_null (page, "the %s's /metrics did not answer", name);
    double value = ep_metric_value (page, series);
    free (page);
    return value;
}

//  ---------------------------------------------------------------------
//  The watchdog and the model

Test (fdlimit, watchdog_at_its_descriptor_limit_keeps_its_routers_refuses_new_ones_and_recovers, .timeout = 120)
{
    ep_stack_t *stack = ep_stack_new ("fdlimit");
    ep_proc_t *watchdog = ep_stack_start (stack, "watchdog", 20000);
    const char *channel = ep_proc_endpoint (watchdog, "channel");
    s_probe_t probe = { watchdog, 5 };
    ep_proc_t *first = s_fleet (stack, "a-", 5, channel);
    cr_assert (ep_wait_until (s_joined_at_least, &probe, 30000), "the first fleet did not join");

    //  The soft limit (the hard one stays, so it can be raised again): what
    //  it holds now plus two.
    pid_t pid = ep_proc_pid (watchdog);
    int limit = s_open_fds (pid) + 2;
    char command [128];
    snprintf (command, sizeof command, "prlimit --pid %d --nofile=%d:", (int) pid, limit);
    cr_assert_eq (ep_run (command, NULL), 0, "%s failed", command);
    ep_proc_t *second = s_fleet (stack, "b-", 6, channel);
    cr_assert (ep_wait_until (s_refused_fd_limit, &probe, 20000), "no fd-limit refusal in the watchdog's log");

    //  The load goes: the watchdog still runs, the first fleet is joined,
    //  the refusals are counted, and a new router joins.
    ep_proc_destroy (&second);
    s_assert_alive (watchdog, "watchdog");
    cr_assert (ep_wait_until (s_joined_at_least, &probe, 10000), "the first fleet left the watchdog");
    cr_assert_gt (s_metric (watchdog, "edgeplane_channel_refused_total{reason=\"fd-limit\"}"), 0);
    cr_assert_gt (s_metric (watchdog, "edgeplane_fd_limit_refusals_total{what=\"channel\"}"), 0);
    ep_proc_t *third = s_fleet (stack, "c-", 1, channel);
    probe.want = 6;
    cr_assert (ep_wait_until (s_joined_at_least, &probe, 30000), "no new router joined after the load went");
    ep_proc_destroy (&third);
    ep_proc_destroy (&first);
    ep_stack_destroy (&stack);
}

Test (fdlimit, model_at_its_descriptor_limit_keeps_serving_its_connected_clients, .timeout = 60)
{
    ep_stack_t *stack = ep_stack_new ("fdlimit-model");
    ep_stack_create_service (stack, "before");      //  the stack's client is connected now
    pid_t pid = ep_proc_pid (ep_stack_service (stack, "model"));
    long before = s_limit_leaving (pid, 0);
    //  Not one descriptor spare: writes on the open connection are still
    //  applied and answered (each asserts OK), and the model runs.
    for (int i = 0; i < 20; i++) {
        char id [32];
        snprintf (id, sizeof id, "at-limit-%d", i);
        ep_stack_create_service (stack, id);
    }
    s_assert_alive (ep_stack_service (stack, "model"), "model");
    //  A snapshot needs descriptors of its own (a read connection to the
    //  store): refused UNAVAILABLE, and the log says why.
    Ep__SnapshotRequest snapshot = EP__SNAPSHOT_REQUEST__INIT;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.op_case = EP__MODEL_REQUEST__OP_SNAPSHOT;
    request.snapshot = &snapshot;
    Ep__ModelReply *reply = ep_stack_model_call (stack, &request);
    cr_assert (reply->status && reply->status->code == EP__STATUS__CODE__UNAVAILABLE,
               "a snapshot at the limit: %s", reply->status? reply->status->message: "OK");
    ep__model_reply__free_unpacked (reply, NULL);
    char *log = ep_proc_log (ep_stack_service (stack, "model"));
    cr_assert (log && strstr (log, "at the descriptor limit: raise it"), "the model did not say why:\n%s", log);
    free (log);
    s_set_limit (pid, before);
    ep_stack_create_service (stack, "after");
    reply = ep_stack_model_call (stack, &request);
    cr_assert (!reply->status || reply->status->code == EP__STATUS__CODE__OK,
               "a snapshot after the limit was raised: %s", reply->status->message);
    ep__model_reply__free_unpacked (reply, NULL);
    ep_stack_destroy (&stack);
}

//  ---------------------------------------------------------------------
//  The terminators and the reaper: ZeroMQ APIs

typedef struct {
    const char *name;           //  the service
    void (*prepare) (ep_stack_t *stack);    //  what the model needs first
    //  The n-th write, as the watchdog: must be answered OK.
    void (*write) (ep_rpc_client_t *watchdog, int n);
    //  A read, as an operator: true if answered OK within timeout_ms.
    bool (*read) (ep_rpc_client_t *client, int timeout_ms);
} s_api_t;

static uint64_t s_router_revision;      //  the revision the router r1 was written at

//  A service svc and a router r1 hosting it.
static void
s_router_fixture (ep_stack_t *stack)
{
    ep_stack_create_service (stack, "svc");
    s_router_revision = ep_stack_router_write (stack, EP__MODEL_WRITE__OP__CREATE, "r1",
                                               (const char *[]) { "svc" }, 1);
}

static void
s_terminator_create (ep_rpc_client_t *watchdog, int n)
{
    char id [32], err [256] = "";
    snprintf (id, sizeof id, "t%d", n);
    Ep__Terminator terminator = EP__TERMINATOR__INIT;
    terminator.id = id;
    terminator.service_id = "svc";
    Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
    request.router_id = "r1";
    request.has_model_revision = true;
    request.model_revision = s_router_revision;
    request.op_case = EP__TERMINATOR_REQUEST__OP_CREATE;
    request.create = &terminator;
    Ep__TerminatorReply *reply = ep_rpc_call (watchdog, &request, &ep__terminator_reply__descriptor,
                                              CALL_MS, 1, err, sizeof err);
    cr_assert_not_null (reply, "create %s: %s", id, err);
    cr_assert (!reply->status || !reply->status->has_code || reply->status->code == EP__STATUS__CODE__OK,
               "create %s: %s", id, reply->status->message);
    ep__terminator_reply__free_unpacked (reply, NULL);
}

static bool
s_terminator_list (ep_rpc_client_t *client, int timeout_ms)
{
    Ep__TerminatorFilter filter = EP__TERMINATOR_FILTER__INIT;
    Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
    request.op_case = EP__TERMINATOR_REQUEST__OP_LIST;
    request.list = &filter;
    Ep__TerminatorReply *reply = ep_rpc_call (client, &request, &ep__terminator_reply__descriptor,
                                              timeout_ms, 1, NULL, 0);
    bool answered = reply && (!reply->status || !reply->status->has_code
                              || reply->status->code == EP__STATUS__CODE__OK);
    if (reply)
        ep__terminator_reply__free_unpacked (reply, NULL);
    return answered;
}

static void
s_session_open (ep_rpc_client_t *watchdog, int n)
{
    char id [32], request_id [64], err [256] = "";
    snprintf (id, sizeof id, "s%d", n);
    snprintf (request_id, sizeof request_id, "r1:open-%s", id);
    Ep__Session session = EP__SESSION__INIT;
    session.id = id;
    session.identity_id = "i1";
    session.service_id = "svc";
    session.has_type = true;
    session.type = EP__SESSION_TYPE__DIAL;
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.request_id = request_id;
    request.router_id = "r1";
    request.op_case = EP__SESSION_REQUEST__OP_OPEN;
    request.open = &session;
    Ep__SessionReply *reply = ep_rpc_call (watchdog, &request, &ep__session_reply__descriptor,
                                           CALL_MS, 1, err, sizeof err);
    cr_assert_not_null (reply, "open %s: %s", id, err);
    cr_assert (!reply->status || !reply->status->has_code || reply->status->code == EP__STATUS__CODE__OK,
               "open %s: %s", id, reply->status->message);
    ep__session_reply__free_unpacked (reply, NULL);
}

static bool
s_session_list (ep_rpc_client_t *client, int timeout_ms)
{
    Ep__SessionFilter filter = EP__SESSION_FILTER__INIT;
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.op_case = EP__SESSION_REQUEST__OP_LIST;
    request.list = &filter;
    Ep__SessionReply *reply = ep_rpc_call (client, &request, &ep__session_reply__descriptor,
                                           timeout_ms, 1, NULL, 0);
    bool answered = reply && (!reply->status || !reply->status->has_code
                              || reply->status->code == EP__STATUS__CODE__OK);
    if (reply)
        ep__session_reply__free_unpacked (reply, NULL);
    return answered;
}

//  The service with three descriptors spare: the watchdog's connection
//  keeps being answered; two new clients take two descriptors, /metrics
//  answers on the third (and says the limit was reached), a third client
//  takes it and a fourth waits unanswered; the log says why; with the
//  limit raised the fourth is answered.
static void
s_api_at_limit (const s_api_t *api)
{
    char tag [64];
    snprintf (tag, sizeof tag, "fdlimit-%s", api->name);
    ep_stack_t *stack = ep_stack_new (tag);
    ep_proc_t *proc = ep_stack_start (stack, api->name, 20000);
    api->prepare (stack);
    const char *keys = ep_stack_keys (stack);
    char *key = ep_keys_public_txt (keys, api->name);
    zcert_t *watchdog_cert = ep_keys_load (keys, "watchdog");
    zcert_t *operator_cert = ep_keys_load (keys, "operator");
    const char *endpoint = ep_proc_connect_endpoint (proc, "api");
    ep_rpc_client_t *watchdog = ep_rpc_client_new (endpoint, watchdog_cert, key);
    cr_assert_not_null (watchdog);
    api->write (watchdog, 0);
    pid_t pid = ep_proc_pid (proc);
    int settled = s_open_fds (pid);
    cr_assert_eq (s_scraped (proc, api->name, "edgeplane_fd_limit_reached_total"), 0);
    s_await_fds (pid, settled);
    long before = s_limit_leaving (pid, 3);
    s_await_log (proc, api->name, "at the descriptor limit: fewer than");
    //  One at a time, so that which ones get in is known.
    ep_rpc_client_t *clients [4];
    for (int i = 0; i < 4; i++) {
        clients [i] = ep_rpc_client_new (endpoint, operator_cert, key);
        cr_assert_not_null (clients [i]);
        if (i < 3)
            cr_assert (api->read (clients [i], CALL_MS), "new client %d was not answered with a descriptor free", i);
        if (i == 1)
            cr_assert_eq (s_scraped (proc, api->name, "edgeplane_fd_limit_reached_total"), 1);
    }
    cr_assert_not (api->read (clients [3], UNANSWERED_MS), "a new client was answered with no descriptor free");
    for (int n = 1; n <= 10; n++)
        api->write (watchdog, n);
    s_assert_alive (proc, api->name);

    s_set_limit (pid, before);
    cr_assert (api->read (clients [3], CALL_MS), "the waiting client was not answered once the limit was raised");
    api->write (watchdog, 11);
    s_await_log (proc, api->name, "descriptors free again");
    cr_assert_eq (s_scraped (proc, api->name, "edgeplane_fd_limit_reached_total"), 1);
    s_assert_alive (proc, api->name);

    for (int i = 0; i < 4; i++)
        ep_rpc_client_destroy (&clients [i]);
    ep_rpc_client_destroy (&watchdog);
    zcert_destroy (&operator_cert);
    zcert_destroy (&watchdog_cert);
    free (key);
    ep_stack_destroy (&stack);
}

Test (fdlimit, terminators_at_their_descriptor_limit_keep_their_clients_new_ones_wait_until_it_is_raised, .timeout = 90)
{
    s_api_t api = { "terminators", s_router_fixture, s_terminator_create, s_terminator_list };
    s_api_at_limit (&api);
}

Test (fdlimit, reaper_at_its_descriptor_limit_keeps_its_clients_new_ones_wait_until_it_is_raised, .timeout = 90)
{
    s_api_t api = { "reaper", s_router_fixture, s_session_open, s_session_list };
    s_api_at_limit (&api);
}

//  ---------------------------------------------------------------------
//  The bus

typedef struct {
    ep_publisher_t *publisher;  //  publishes on fdtest
    ep_subscriber_t *subscriber;    //  takes fdtest.
    uint64_t after;             //  the seq an event must be above
} s_flow_t;

//  Publishes one event on fdtest and takes what the subscriber has: true
//  once an event published after flow->after arrived.
static bool
s_flowed (void *arg)
{
    s_flow_t *flow = (s_flow_t *) arg;
    Ep__ChannelEvent body = EP__CHANNEL_EVENT__INIT;
    body.detail = "fdlimit";
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_CHANNEL;
    event.channel = &body;
    cr_assert_eq (ep_publisher_send (flow->publisher, "fdtest.ping", &event), 0);
    Ep__Event *got;
    while ((got = ep_subscriber_recv (flow->subscriber, 0, NULL)))
        if (got->meta && got->meta->seq > flow->after)
            return true;
    return false;
}

//  The bus with three descriptors spare: its publisher and subscriber keep
//  flowing; two new subscribers take two descriptors, /metrics answers on
//  the third, a third subscriber takes it and a fourth gets nothing; with
//  the limit raised the fourth gets the events.
Test (fdlimit, bus_at_its_descriptor_limit_keeps_its_streams_a_new_subscriber_waits_until_it_is_raised, .timeout = 90)
{
    ep_stack_t *stack = ep_stack_new ("fdlimit-bus");
    ep_proc_t *bus = ep_stack_bus (stack);
    char *key = ep_keys_public_txt (ep_stack_keys (stack), "bus");
    zcert_t *cert = ep_keys_load (ep_stack_keys (stack), "terminators");
    ep_publisher_t *publisher = ep_publisher_new (ep_proc_connect_endpoint (bus, "pub"), cert, key,
                                                  "fdlimit-test", EP_CODEC_DEFAULT_CAP);
    cr_assert_not_null (publisher);
    s_flow_t flow = { publisher, ep_stack_subscribe (stack, "fdtest."), 0 };
    ep_subscriber_t *old = flow.subscriber;
    cr_assert (ep_wait_until (s_flowed, &flow, CALL_MS), "no event through the bus");
    pid_t pid = ep_proc_pid (bus);
    int settled = s_open_fds (pid);
    cr_assert_eq (s_scraped (bus, "bus", "edgeplane_fd_limit_reached_total"), 0);
    s_await_fds (pid, settled);

    long before = s_limit_leaving (pid, 3);
    s_await_log (bus, "bus", "at the descriptor limit: fewer than");
    ep_subscriber_t *subscribers [4];
    for (int i = 0; i < 4; i++) {
        subscribers [i] = ep_stack_subscribe (stack, "fdtest.");
        flow = (s_flow_t) { publisher, subscribers [i], ep_publisher_seq (publisher, "fdtest") };
        if (i < 3)
            cr_assert (ep_wait_until (s_flowed, &flow, CALL_MS), "new subscriber %d got nothing with a descriptor free", i);
        if (i == 1)
            cr_assert_eq (s_scraped (bus, "bus", "edgeplane_fd_limit_reached_total"), 1);
    }
    cr_assert_not (ep_wait_until (s_flowed, &flow, UNANSWERED_MS), "a new subscriber got events with no descriptor free");
    flow = (s_flow_t) { publisher, old, ep_publisher_seq (publisher, "fdtest") };
    cr_assert (ep_wait_until (s_flowed, &flow, CALL_MS), "the subscriber the bus had got nothing at the limit");
    s_assert_alive (bus, "bus");

    s_set_limit (pid, before);
    flow = (s_flow_t) { publisher, subscribers [3], ep_publisher_seq (publisher, "fdtest") };
    cr_assert (ep_wait_until (s_flowed, &flow, CALL_MS), "the waiting subscriber got nothing once the limit was raised");
    s_await_log (bus, "bus", "descriptors free again");
    s_assert_alive (bus, "bus");
    ep_publisher_destroy (&publisher);
    zcert_destroy (&cert);
    free (key);
    ep_stack_destroy (&stack);
}

//  ---------------------------------------------------------------------
//  The console

typedef struct {
    int fd;                     //  the connection
    zchunk_t *seen;             //  every byte read from it
    bool closed;                //  the server closed it
} s_http_t;

//  Connects to port and sends GET path as HTTP/1.0: the answer ends when
//  the server closes.
static s_http_t *
s_http_open (int port, const char *path)
{
    s_http_t *self = (s_http_t *) zmalloc (sizeof (s_http_t));
    self->fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq (self->fd, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons (port),
                                .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
    cr_assert_eq (connect (self->fd, (struct sockaddr *) &addr, sizeof addr), 0);
    char request [256];
    int len = snprintf (request, sizeof request, "GET %s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\n\r\n", path, port);
    cr_assert_eq (send (self->fd, request, len, MSG_NOSIGNAL), len);
    self->seen = zchunk_new (NULL, 0);
    return self;
}

static void
s_http_destroy (s_http_t **self_p)
{
    s_http_t *self = *self_p;
    close (self->fd);
    zchunk_destroy (&self->seen);
    free (self);
    *self_p = NULL;
}

//  Reads until text was seen (NULL: until the server closes) or timeout_ms
//  passed; true if it was.
static bool
s_http_wait (s_http_t *self, const char *text, int timeout_ms)
{
    int64_t deadline = ep_mono_ms () + timeout_ms;
    while (true) {
        char *all = zchunk_strdup (self->seen);
        bool found = text? strstr (all, text) != NULL: self->closed;
        free (all);
        int64_t left = deadline - ep_mono_ms ();
        if (found || self->closed || left <= 0)
            return found;
        struct pollfd item = { self->fd, POLLIN, 0 };
        if (poll (&item, 1, (int) left) > 0) {
            char buf [4096];
            ssize_t n = recv (self->fd, buf, sizeof buf, 0);
            if (n > 0)
                zchunk_extend (self->seen, buf, n);
            else
                self->closed = true;
        }
    }
}

//  The console with two descriptors spare: its open event stream keeps
//  receiving events, each new stream is answered 503 with the reason and
//  closed, /metrics answers and counts them; with the limit raised a new
//  stream is served.
Test (fdlimit, console_at_its_descriptor_limit_keeps_its_streams_refuses_new_ones_with_503_and_recovers, .timeout = 90)
{
    ep_stack_t *stack = ep_stack_new ("fdlimit-console");
    ep_proc_t *console = ep_stack_start (stack, "console", 20000);
    const char *http = ep_proc_connect_endpoint (console, "http");
    int port = atoi (strrchr (http, ':') + 1);
    s_http_t *old = s_http_open (port, "/api/events");
    cr_assert (s_http_wait (old, ": edgeplane-console", CALL_MS), "no event stream");
    ep_stack_create_service (stack, "before-limit");
    cr_assert (s_http_wait (old, "before-limit", CALL_MS), "the stream did not carry the model's event");

    pid_t pid = ep_proc_pid (console);
    long before = s_limit_leaving (pid, 2);
    s_await_log (console, "console", "at the descriptor limit: fewer than");
    for (int i = 0; i < 3; i++) {
        s_http_t *refused = s_http_open (port, "/api/events");
        cr_assert (s_http_wait (refused, NULL, CALL_MS), "a new stream at the limit was not closed");
        char *text = zchunk_strdup (refused->seen);
        cr_assert (strlen (text) > 12 && strncmp (text + 9, "503", 3) == 0 && strstr (text, "descriptor limit"),
                   "a new stream at the limit was answered:\n%s", text);
        free (text);
        s_http_destroy (&refused);
    }
    ep_stack_create_service (stack, "at-limit");
    cr_assert (s_http_wait (old, "at-limit", CALL_MS), "the open stream stopped at the limit");
    cr_assert_eq (s_scraped (console, "console", "edgeplane_fd_limit_refusals_total{what=\"http\"}"), 3);
    cr_assert_eq (s_scraped (console, "console", "edgeplane_fd_limit_reached_total"), 1);
    s_await_log (console, "console", "refused new HTTP connections (503)");
    s_assert_alive (console, "console");

    s_set_limit (pid, before);
    s_http_t *fresh = s_http_open (port, "/api/events");
    cr_assert (s_http_wait (fresh, ": edgeplane-console", CALL_MS), "no new stream once the limit was raised");
    ep_stack_create_service (stack, "after-limit");
    cr_assert (s_http_wait (fresh, "after-limit", CALL_MS), "the new stream did not carry the model's event");
    cr_assert (s_http_wait (old, "after-limit", CALL_MS), "the old stream did not carry the model's event");
    s_await_log (console, "console", "descriptors free again");
    s_assert_alive (console, "console");
    s_http_destroy (&fresh);
    s_http_destroy (&old);
    ep_stack_destroy (&stack);
}
