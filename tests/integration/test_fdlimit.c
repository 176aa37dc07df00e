/*  test_fdlimit.c: the watchdog at its descriptor limit (set with prlimit
    on the service process, not on the test). Routers already joined stay
    joined, new connections are refused with reason fd-limit (log and
    edgeplane_channel_refused_total{reason="fd-limit"}), the process does
    not abort, and once the load goes a new router joins. The model with
    no descriptor spare keeps applying and answering writes on the
    connection it has, and takes more once its limit is raised. */
#include <criterion/criterion.h>
#include "ep_stack.h"
#include "ep_pki.h"
#include <dirent.h>
#include <signal.h>

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
    cr_assert_eq (kill (pid, 0), 0, "the watchdog died at its descriptor limit");
    cr_assert (ep_wait_until (s_joined_at_least, &probe, 10000), "the first fleet left the watchdog");
    cr_assert_gt (s_metric (watchdog, "edgeplane_channel_refused_total{reason=\"fd-limit\"}"), 0);
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
    char command [128];
    int open_fds = s_open_fds (pid);
    snprintf (command, sizeof command, "prlimit --pid %d --nofile=%d:", (int) pid, open_fds);
    cr_assert_eq (ep_run (command, NULL), 0, "%s failed", command);
    //  Not one descriptor spare: writes on the open connection are still
    //  applied and answered (each asserts OK), and the model runs.
    for (int i = 0; i < 20; i++) {
        char id [32];
        snprintf (id, sizeof id, "at-limit-%d", i);
        ep_stack_create_service (stack, id);
    }
    cr_assert_eq (kill (pid, 0), 0, "the model died at its descriptor limit");
    snprintf (command, sizeof command, "prlimit --pid %d --nofile=1024:", (int) pid);
    cr_assert_eq (ep_run (command, NULL), 0);
    ep_stack_create_service (stack, "after");
    ep_stack_destroy (&stack);
}
