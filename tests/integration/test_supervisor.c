/*  test_supervisor.c: `edgeplane up` as a supervisor, and `edgeplane
    status` as the way to wait for it. A SIGKILLed `up` takes its services
    with it (no orphan holds a port) and a new `up` starts on the same data
    directory; `status` exits 0 only when all five services are ready, shows
    no shards in the embedded mode, says
    "starting" for one whose ready file is missing while up runs, and names
    the real data directory when no stack runs; `up --demo` with a channel
    address that is not the default still has its demo routers join, and a
    router agent pointed at nothing says so within seconds. */
#include <criterion/criterion.h>
#include "ep_stack.h"
#include "ep_pki.h"
#include <signal.h>

static const char *s_services [] = { "bus", "model", "terminators", "reaper", "watchdog" };

//  Runs the CLI with the stack's environment exported; returns its exit
//  status, output (stdout + stderr) in *out (may be NULL).
static int
s_cli (const char *args, char **out)
{
    char *cmd = zsys_sprintf ("'%s/edgeplane' %s 2>&1", EP_BIN_DIR, args);
    int rc = ep_run (cmd, out);
    free (cmd);
    return rc;
}

static bool
s_status_ok (void *arg)
{
    (void) arg;
    return s_cli ("status", NULL) == 0;
}

//  The pid in service's ready file under dir/run, or 0.
static pid_t
s_ready_pid (const char *dir, const char *service)
{
    char *path = zsys_sprintf ("%s/run/%s.ready", dir, service);
    json_t *ready = ep_ready_read (path);
    free (path);
    pid_t pid = ready? (pid_t) json_integer_value (json_object_get (ready, "pid")): 0;
    json_decref (ready);
    return pid;
}

//  True if pid runs (a zombie waiting for init to reap it does not).
static bool
s_running (pid_t pid)
{
    char path [64], stat [256] = "";
    snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
    FILE *file = fopen (path, "r");
    if (!file)
        return false;
    size_t n = fread (stat, 1, sizeof stat - 1, file);
    fclose (file);
    stat [n] = 0;
    const char *state = strrchr (stat, ')');
    return state && state [1] == ' ' && state [2] != 'Z' && state [2] != 'X';
}

typedef struct {
    pid_t pids [5];
} s_pids_t;

static bool
s_all_gone (void *arg)
{
    s_pids_t *pids = (s_pids_t *) arg;
    for (size_t i = 0; i < EP_COUNT (pids->pids); i++)
        if (s_running (pids->pids [i]))
            return false;
    return true;
}

Test (supervisor, status_waits_for_all_five_and_a_killed_up_leaves_no_orphans, .timeout = 240)
{
    ep_stack_t *stack = ep_stack_new_with ("supervisor", EP_STACK_STABLE | EP_STACK_ENV_ONLY);
    const char *dir = ep_stack_dir (stack);
    ep_stack_export (stack);
    const char *args [] = { "up", NULL };
    ep_proc_t *up = ep_proc_spawn ("edgeplane", args, ep_stack_env (stack));
    cr_assert_not_null (up);

    //  A script that waits with `until edgeplane status` goes on only once
    //  every service answers ready.
    cr_assert (ep_wait_until (s_status_ok, NULL, 60000), "edgeplane status never exited 0");
    for (size_t i = 0; i < EP_COUNT (s_services); i++) {
        char *path = zsys_sprintf ("%s/run/%s.ready", dir, s_services [i]);
        json_t *ready = ep_ready_read (path);
        free (path);
        cr_assert_not_null (ready, "status exited 0 without %s's ready file", s_services [i]);
        char *body = ep_http_get (ep_ready_endpoint (ready, "http"), "/readyz");
        cr_assert_not_null (body, "status exited 0 while %s's /readyz is not 200", s_services [i]);
        free (body);
        json_decref (ready);
    }
    char *out = NULL;
    cr_assert_eq (s_cli ("status --json", &out), 0, "%s", out);
    json_t *rows = json_loads (out, JSON_DISABLE_EOF_CHECK, NULL);
    cr_assert (json_is_array (rows) && json_array_size (rows) == 5, "status --json: %s", out);
    //  The embedded mode runs nothing on shards: no shards, no listening
    //  for beacons (status stays quick).
    size_t i;
    json_t *row;
    json_array_foreach (rows, i, row) {
        cr_assert_null (json_object_get (row, "shards"), "status --json: %s", out);
        cr_assert_null (json_object_get (json_object_get (row, "figures"), "shards"), "status --json: %s", out);
    }
    free (out);
    json_decref (rows);
    cr_assert_eq (s_cli ("status", &out), 0, "%s", out);
    cr_assert_null (strstr (out, "SHARDED"), "a shards section in the embedded mode: %s", out);
    free (out);

    //  One ready file missing while up runs (a service still starting):
    //  non-zero, "starting", in both forms.
    char *hidden = zsys_sprintf ("%s/run/watchdog.ready", dir);
    char *aside = zsys_sprintf ("%s/run/watchdog.ready.aside", dir);
    cr_assert_eq (rename (hidden, aside), 0);
    cr_assert_neq (s_cli ("status", &out), 0, "status exited 0 without the watchdog's ready file: %s", out);
    cr_assert (strstr (out, "watchdog (starting)"), "status does not say the watchdog is starting: %s", out);
    free (out);
    cr_assert_neq (s_cli ("status --json", &out), 0, "status --json exited 0: %s", out);
    cr_assert (strstr (out, "\"state\": \"starting\"") || strstr (out, "\"state\":\"starting\""),
               "status --json has no starting service: %s", out);
    free (out);
    cr_assert_eq (rename (aside, hidden), 0);
    free (hidden);
    free (aside);
    cr_assert_eq (s_cli ("status", &out), 0, "%s", out);
    free (out);

    //  up SIGKILLed: its services follow it within 2 s, and then status
    //  says down and exits non-zero.
    s_pids_t pids;
    for (size_t i = 0; i < EP_COUNT (s_services); i++) {
        pids.pids [i] = s_ready_pid (dir, s_services [i]);
        cr_assert (pids.pids [i] > 0 && s_running (pids.pids [i]), "no running %s", s_services [i]);
    }
    cr_assert_eq (ep_proc_signal (up, SIGKILL), 0);
    cr_assert_neq (ep_proc_wait_exit (up, 5000), -1);
    cr_assert (ep_wait_until (s_all_gone, &pids, 2000 * EP_TEST_SLOWDOWN),
               "services of a SIGKILLed edgeplane up still run 2 s later (orphans)");
    cr_assert_neq (s_cli ("status", &out), 0, "status exited 0 with no stack: %s", out);
    cr_assert (strstr (out, "down"), "status does not say down: %s", out);
    free (out);
    ep_proc_destroy (&up);

    //  A new up on the same data directory and ports starts.
    up = ep_proc_start ("edgeplane", args, ep_stack_env (stack), 60000);
    cr_assert_not_null (up, "a new edgeplane up on the same data directory did not start");
    cr_assert (ep_wait_until (s_status_ok, NULL, 30000), "status not 0 after the restart");
    ep_proc_signal (up, SIGTERM);
    cr_assert_neq (ep_proc_wait_exit (up, 20000), -1);
    ep_proc_destroy (&up);
    ep_stack_destroy (&stack);
}

Test (supervisor, status_without_a_stack_names_the_data_directory)
{
    char *dir = ep_tmpdir_new ("nostack");
    char *args = zsys_sprintf ("status --data-dir '%s'", dir);
    char *out = NULL;
    cr_assert_neq (s_cli (args, &out), 0, "%s", out);
    char *want = zsys_sprintf ("no service ready files in %s/run", dir);
    cr_assert (strstr (out, want), "the message does not name %s/run: %s", dir, out);
    free (want);
    free (out);
    free (args);
    ep_tmpdir_remove (&dir);
}

//  The watchdog's joined routers, from its /metrics (-1 if unknown).
static double
s_joined (const char *dir)
{
    char *path = zsys_sprintf ("%s/run/watchdog.ready", dir);
    json_t *ready = ep_ready_read (path);
    free (path);
    char *page = ready? ep_http_get (ep_ready_endpoint (ready, "http"), "/metrics"): NULL;
    double value = page? ep_metric_value (page, "edgeplane_connections{role=\"router\",state=\"joined\"}"): -1;
    free (page);
    json_decref (ready);
    return value;
}

static bool
s_demo_joined (void *arg)
{
    return s_joined ((const char *) arg) >= 5;
}

Test (supervisor, demo_routers_join_on_a_channel_address_that_is_not_the_default, .timeout = 180)
{
    //  Every listener on a stable port that is not the default, and no
    //  client address in the environment: up must take each from the ready
    //  file of what is dialed.
    ep_stack_t *stack = ep_stack_new_with ("demo", EP_STACK_STABLE | EP_STACK_ENV_ONLY);
    static const char *clients [] = { "EDGEPLANE_BUS_PUB", "EDGEPLANE_BUS_SUB", "EDGEPLANE_MODEL_API",
                                      "EDGEPLANE_TERMINATORS_API", "EDGEPLANE_REAPER_API",
                                      "EDGEPLANE_WATCHDOG_API", "EDGEPLANE_CONTROLLER" };
    for (size_t i = 0; i < EP_COUNT (clients); i++)
        ep_stack_unsetenv (stack, clients [i]);
    const char *channel = ep_stack_getenv (stack, "EDGEPLANE_CHANNEL_LISTEN");
    cr_assert (channel && !strstr (channel, ":6262"), "the channel address is the default: %s", channel);
    const char *args [] = { "up", "--demo", NULL };
    ep_proc_t *up = ep_proc_start ("edgeplane", args, ep_stack_env (stack), 60000);
    cr_assert_not_null (up, "edgeplane up --demo did not become ready");
    const char *dir = ep_stack_dir (stack);
    cr_assert (ep_wait_until (s_demo_joined, (void *) dir, 30000 * EP_TEST_SLOWDOWN),
               "%.0f of 5 demo routers joined the watchdog on %s", s_joined (dir), channel);
    ep_proc_signal (up, SIGTERM);
    cr_assert_neq (ep_proc_wait_exit (up, 20000), -1);
    ep_proc_destroy (&up);
    ep_stack_destroy (&stack);
}

typedef struct {
    ep_proc_t *proc;
} s_agent_t;

static bool
s_says_cannot_connect (void *arg)
{
    char *log = ep_proc_log (((s_agent_t *) arg)->proc);
    bool said = log && strstr (log, "cannot connect to the controller at 127.0.0.1:");
    free (log);
    return said;
}

Test (supervisor, a_router_agent_that_cannot_connect_says_so_within_seconds, .timeout = 60)
{
    //  A port nothing listens on (a stable port is free when chosen).
    char controller [64], dir [512];
    snprintf (controller, sizeof controller, "127.0.0.1:%d", ep_test_stable_port ());
    ep_stack_t *stack = ep_stack_new ("agent");
    char err [512];
    snprintf (dir, sizeof dir, "%s/fleet", ep_stack_dir (stack));
    cr_assert_eq (ep_pki_issue_batch (ep_stack_keys (stack), "router", "r-", 1, dir, 30, err, sizeof err), 0,
                  "%s", err);
    const char *args [] = { "--count", "1", "--prefix", "r-", "--bundle", dir, "--controller", controller, NULL };
    s_agent_t agent = { ep_proc_spawn ("edgeplane-router", args, ep_stack_env (stack)) };
    cr_assert_not_null (agent.proc);
    cr_assert (ep_wait_until (s_says_cannot_connect, &agent, 5000 * EP_TEST_SLOWDOWN),
               "the agent did not say it cannot connect within 5 s");
    ep_proc_destroy (&agent.proc);
    ep_stack_destroy (&stack);
}
