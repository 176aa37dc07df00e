/*  test_up.c: the whole system as a user runs it. `edgeplane up` with a
    fleet of 100 simulated routers; a router deleted sees its sessions
    closed and its terminators go, on `edgeplane events`; then each service
    is killed with SIGKILL in turn, restarted by `edgeplane up`, and the
    system converges: every follower's model digest equals the model's,
    the terminators are the desired set, live routers' sessions are still
    ACTIVE, and a change made while the bus was down reached every follower
    (tests/integration/test_follower.c proves a certain loss is reported). */
#include <criterion/criterion.h>
#include "ep_stack.h"
#include "ep_follower.h"
#include "ep_keys.h"
#include "ep_rpc_client.h"
#include "model.pb-c.h"
#include <sodium.h>
#include <signal.h>

#define ROUTERS 100

static ep_stack_t *s_stack;
static const char *s_dir;
static ep_proc_t *s_up;

static void
s_setup (void)
{
    //  Every service on its own port below the ephemeral range, so a
    //  restarted one comes back where its clients reconnect; HTTP ports are
    //  the kernel's (the ready files say which). Keys are up's to make.
    s_stack = ep_stack_new_with ("up", EP_STACK_STABLE | EP_STACK_ENV_ONLY);
    s_dir = ep_stack_dir (s_stack);
    ep_stack_export (s_stack);      //  for the CLI runs below too
    const char *args [] = { "up", NULL };
    s_up = ep_proc_start ("edgeplane", args, ep_stack_env (s_stack), 60000);
    cr_assert_not_null (s_up, "edgeplane up did not become ready");
}

static void
s_teardown (void)
{
    if (s_up) {
        //  SIGTERM: up stops its children in order.
        ep_proc_signal (s_up, SIGTERM);
        ep_proc_wait_exit (s_up, 20000);
        ep_proc_destroy (&s_up);
    }
    ep_stack_destroy (&s_stack);
}

//  Runs the CLI; returns its status, output (stdout + stderr) in *out.
static int
s_cli (const char *args, char **out)
{
    char *cmd = zsys_sprintf ("'%s/edgeplane' %s 2>&1", EP_BIN_DIR, args);
    int rc = ep_run (cmd, out);
    free (cmd);
    return rc;
}

static void
s_cli_ok (const char *args)
{
    char *out = NULL;
    int rc = s_cli (args, &out);
    cr_assert_eq (rc, 0, "edgeplane %s: %s", args, out);
    free (out);
}

//  Entries of a CLI list --json whose field equals value (NULL: all), or -1.
static int
s_count (const char *args, const char *field, const char *value)
{
    char *out = NULL;
    int rc = s_cli (args, &out);
    json_error_t error;
    json_t *list = rc == 0? json_loads (out, 0, &error): NULL;
    free (out);
    if (!json_is_array (list)) {
        json_decref (list);
        return -1;
    }
    int count = 0;
    size_t i;
    json_t *item;
    json_array_foreach (list, i, item)
        if (!field || streq (json_string_value (json_object_get (item, field)) ?: "", value))
            count++;
    json_decref (list);
    return count;
}

typedef struct {
    const char *args;
    const char *field;
    const char *value;
    int want;
} s_expect_t;

static bool
s_count_is (void *arg)
{
    s_expect_t *expect = (s_expect_t *) arg;
    return s_count (expect->args, expect->field, expect->value) == expect->want;
}

//  The ready file `edgeplane up` keeps for service.
static json_t *
s_ready (const char *service)
{
    char *path = zsys_sprintf ("%s/run/%s.ready", s_dir, service);
    json_t *ready = ep_ready_read (path);
    free (path);
    return ready;
}

static double
s_metric (const char *service, const char *series)
{
    json_t *ready = s_ready (service);
    double value = -1;
    if (ready) {
        char *page = ep_http_get (ep_ready_endpoint (ready, "http"), "/metrics");
        value = page? ep_metric_value (page, series): -1;
        free (page);
        json_decref (ready);
    }
    return value;
}

//  The first 52 bits of the model's digest of its entities, as followers
//  export theirs.
static double
s_model_digest52 (void)
{
    const char *keys = ep_stack_keys (s_stack);
    zcert_t *cert = ep_keys_load (keys, "operator");
    char *key = ep_keys_public_txt (keys, "model");
    json_t *ready = s_ready ("model");
    char *api = ep_endpoint_connectable (ep_ready_endpoint (ready, "api"));
    ep_rpc_client_t *client = ep_rpc_client_new (api, cert, key);
    Ep__StatusRequest status = EP__STATUS_REQUEST__INIT;
    status.has_digest = status.digest = true;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.op_case = EP__MODEL_REQUEST__OP_STATUS;
    request.status = &status;
    Ep__ModelReply *reply = ep_rpc_call (client, &request, &ep__model_reply__descriptor, 3000, 3, NULL, 0);
    double value = -1;
    if (reply && reply->digest) {
        uint8_t digest [EP_MODEL_DIGEST_SIZE];
        sodium_hex2bin (digest, sizeof digest, reply->digest, strlen (reply->digest), NULL, NULL, NULL);
        value = ep_model_digest52 (digest);
    }
    if (reply)
        ep__model_reply__free_unpacked (reply, NULL);
    ep_rpc_client_destroy (&client);
    free (api);
    json_decref (ready);
    free (key);
    zcert_destroy (&cert);
    return value;
}

static bool
s_followers_converged (void *arg)
{
    (void) arg;
    double model = s_model_digest52 ();
    if (model < 0)
        return false;
    static const char *followers [] = { "watchdog", "terminators", "reaper" };
    for (size_t i = 0; i < EP_COUNT (followers); i++)
        if (s_metric (followers [i], "edgeplane_model_view_digest52") != model)
            return false;
    return true;
}

//  True once service's ready file names a pid other than *arg's.
typedef struct {
    const char *service;
    json_int_t old_pid;
} s_restart_t;

static bool
s_restarted (void *arg)
{
    s_restart_t *restart = (s_restart_t *) arg;
    json_t *ready = s_ready (restart->service);
    json_int_t pid = ready? json_integer_value (json_object_get (ready, "pid")): 0;
    json_decref (ready);
    return pid > 0 && pid != restart->old_pid;
}

//  The console's /api/fleet shows ROUTERS routers online (arg: its http base).
static bool
s_console_fleet_online (void *arg)
{
    char *body = ep_http_get ((const char *) arg, "/api/fleet");
    json_t *fleet = body? json_loads (body, 0, NULL): NULL;
    free (body);
    int online = 0;
    size_t index;
    json_t *router;
    json_array_foreach (json_object_get (fleet, "routers"), index, router)
        online += json_is_true (json_object_get (router, "online"));
    json_decref (fleet);
    return online == ROUTERS;
}

Test (up, fleet_deletion_and_every_service_killed_in_turn_converge,
      .init = s_setup, .fini = s_teardown, .timeout = 600)
{
    //  The model: two services, a hundred routers hosting both.
    s_cli_ok ("service create s1");
    s_cli_ok ("service create s2");
    char args [256];
    snprintf (args, sizeof args, "router create --count %d --prefix fleet- --host s1 --host s2", ROUTERS);
    s_cli_ok (args);
    //  The agent's sessions belong to identity id-<router>; the reaper
    //  keeps only sessions whose identity the model has.
    snprintf (args, sizeof args, "identity create --count %d --prefix id-fleet-", ROUTERS);
    s_cli_ok (args);
    snprintf (args, sizeof args, "pki issue router --count %d --prefix fleet- --out '%s/fleet'", ROUTERS, s_dir);
    s_cli_ok (args);

    //  Everything that happens, as JSON lines.
    const char *events_args [] = { "events", "--json", NULL };
    ep_proc_t *events = ep_proc_start ("edgeplane", events_args, ep_stack_env (s_stack), 30000);
    cr_assert_not_null (events);

    //  The fleet: ready once every router has joined.
    char fleet_dir [512], count [16], channel [64];
    snprintf (fleet_dir, sizeof fleet_dir, "%s/fleet", s_dir);
    snprintf (count, sizeof count, "%d", ROUTERS);
    json_t *watchdog_ready = s_ready ("watchdog");
    snprintf (channel, sizeof channel, "%s", ep_ready_endpoint (watchdog_ready, "channel"));
    json_decref (watchdog_ready);
    const char *fleet_args [] = { "--count", count, "--prefix", "fleet-", "--bundle", fleet_dir,
                                  "--controller", channel, "--sessions", "2", "--heartbeat", "1s", NULL };
    ep_proc_t *fleet = ep_proc_start ("edgeplane-router", fleet_args, ep_stack_env (s_stack), 120000);
    cr_assert_not_null (fleet, "the fleet did not join");

    //  The console: its address printed first, its fleet the one that joined.
    json_t *console_ready = s_ready ("console");
    cr_assert_not_null (console_ready, "up started no console");
    char console_http [128];
    snprintf (console_http, sizeof console_http, "%s", ep_ready_endpoint (console_ready, "http"));
    json_decref (console_ready);
    char *up_log = ep_proc_log (s_up), *open_line = zsys_sprintf ("open %s\n", console_http);
    cr_assert (strstr (up_log, open_line) && strstr (up_log, open_line) < strstr (up_log, "edgeplane is up"),
               "up did not print \"%s\" first: %s", open_line, up_log);
    free (open_line);
    free (up_log);
    cr_assert (ep_wait_until (s_console_fleet_online, console_http, 20000),
               "the console did not show the %d routers online", ROUTERS);
    //  `events --filter` (the console's matcher) takes only fleet-7's events.
    const char *filter_args [] = { "events", "--json", "--filter", "router_id=fleet-7", "--filter",
                                   "namespace=session", NULL };
    ep_proc_t *filtered = ep_proc_start ("edgeplane", filter_args, ep_stack_env (s_stack), 30000);
    cr_assert_not_null (filtered);

    //  Terminators and sessions for every router.
    s_expect_t terminators = { "terminator list --json", "state", "established", 2 * ROUTERS };
    cr_assert (ep_wait_until (s_count_is, &terminators, 60000), "terminators: %d of %d established",
               s_count (terminators.args, "state", "established"), 2 * ROUTERS);
    s_expect_t sessions = { "session list --state active --json", NULL, NULL, 2 * ROUTERS };
    cr_assert (ep_wait_until (s_count_is, &sessions, 60000), "sessions: %d of %d active",
               s_count (sessions.args, NULL, NULL), 2 * ROUTERS);

    //  A router deleted: its sessions closed, its terminators gone, and
    //  the events say so.
    s_cli_ok ("router delete fleet-7 --wait --wait-timeout 60s");
    s_expect_t gone = { "terminator list --router fleet-7 --json", NULL, NULL, 0 };
    cr_assert (ep_wait_until (s_count_is, &gone, 30000), "fleet-7's terminators did not go");
    s_expect_t closed = { "session list --router fleet-7 --state active --json", NULL, NULL, 0 };
    cr_assert (ep_wait_until (s_count_is, &closed, 30000), "fleet-7's sessions are still active");
    char *log = ep_proc_log (events);
    cr_assert (strstr (log, "\"namespace\":\"session\"") && strstr (log, "router-deleted"),
               "no session event with reason router-deleted on edgeplane events");
    cr_assert (strstr (log, "\"terminator_id\"") && strstr (log, "fleet-7"),
               "no terminator event for fleet-7 on edgeplane events");
    free (log);
    log = ep_proc_log (filtered);
    int lines = 0;
    for (char *line = log, *end; (end = strchr (line, '\n')); line = end + 1) {
        if (strncmp (line, "edgeplane events: ", 18) == 0)
            continue;           //  a loss report on stderr, not an event
        char *router = strstr (line, "\"router_id\":\"fleet-7\"");
        const char *session = "{\"namespace\":\"session\",";
        cr_assert (!strncmp (line, session, strlen (session)) && router && router < end,
                   "--filter let through: %.*s", (int) (end - line), line);
        lines++;
    }
    cr_assert_geq (lines, 2, "--filter router_id=fleet-7 showed %d of fleet-7's session events", lines);
    free (log);
    ep_proc_destroy (&filtered);

    //  Each service killed in turn; up restarts it; everything converges.
    static const char *services [] = { "bus", "model", "terminators", "reaper", "watchdog" };
    for (size_t i = 0; i < EP_COUNT (services); i++) {
        json_t *ready = s_ready (services [i]);
        cr_assert_not_null (ready, "no ready file for %s", services [i]);
        s_restart_t restart = { services [i], json_integer_value (json_object_get (ready, "pid")) };
        json_decref (ready);
        cr_assert_eq (kill ((pid_t) restart.old_pid, SIGKILL), 0);
        if (streq (services [i], "bus")) {
            //  A change while the bus is down: its model.change may never
            //  reach the followers; they must notice and fetch it.
            s_cli_ok ("service update s2 --name renamed-while-the-bus-was-down");
        }
        cr_assert (ep_wait_until (s_restarted, &restart, 60000), "%s was not restarted", services [i]);
        cr_assert (ep_wait_until (s_followers_converged, NULL, 60000),
                   "after killing %s the followers' digests differ from the model's", services [i]);
        terminators.want = 2 * (ROUTERS - 1);
        cr_assert (ep_wait_until (s_count_is, &terminators, 60000),
                   "after killing %s: %d terminators established, want %d", services [i],
                   s_count (terminators.args, "state", "established"), terminators.want);
        sessions.want = 2 * (ROUTERS - 1);
        cr_assert (ep_wait_until (s_count_is, &sessions, 60000),
                   "after killing %s: %d sessions active, want %d", services [i],
                   s_count (sessions.args, NULL, NULL), sessions.want);
    }
    ep_proc_destroy (&fleet);
    ep_proc_destroy (&events);
}
