/*  test_datalock.c: one writer per data directory in the embedded mode.
    A second model, terminators or reaper on a data directory in use exits
    2 naming the holder's pid (and, for the model, the etcd store), and the
    first keeps serving; `edgeplane up` refuses a data directory whose
    services still run, naming their pids. */
#include <criterion/criterion.h>
#include "ep_stack.h"
#include <signal.h>
#include <sys/wait.h>

//  Starts a second name on the stack's data directory (its own ports) and
//  asserts it exits 2 with a message naming holder's pid; returns its log.
static char *
s_second_refused (ep_stack_t *stack, const char *name, ep_proc_t *holder)
{
    char binary [64];
    snprintf (binary, sizeof binary, "edgeplane-%s", name);
    const char *args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", "127.0.0.1:0", NULL };
    ep_proc_t *second = ep_proc_spawn (binary, args, ep_stack_env (stack));
    cr_assert_not_null (second);
    int status = ep_proc_wait_exit (second, 15000);
    char *log = ep_proc_log (second);
    cr_assert (status != -1 && WIFEXITED (status) && WEXITSTATUS (status) == 2,
               "a second %s on a data directory in use must exit 2 (status %d): %s", name, status, log);
    char pid [32];
    snprintf (pid, sizeof pid, "pid %d", (int) ep_proc_pid (holder));
    cr_assert (strstr (log, pid), "the refusal names the holder (%s): %s", pid, log);
    cr_assert (strstr (log, "etcd"), "the refusal points at the etcd store: %s", log);
    cr_assert (strstr (log, ep_stack_dir (stack)), "the refusal names the directory: %s", log);
    ep_proc_destroy (&second);
    return log;
}

//  The holder still answers /readyz and has not exited.
static void
s_still_serving (ep_proc_t *proc, const char *name)
{
    cr_assert_eq (ep_proc_wait_exit (proc, 0), -1, "the first %s exited", name);
    char *body = ep_http_get (ep_proc_endpoint (proc, "http"), "/readyz");
    cr_assert_not_null (body, "the first %s no longer answers /readyz", name);
    free (body);
}

Test (datalock, second_model_exits_2_and_the_first_keeps_serving)
{
    ep_stack_t *stack = ep_stack_new ("datalock-model");
    ep_proc_t *model = ep_stack_model (stack);
    uint64_t before = ep_stack_create_service (stack, "web");
    char *log = s_second_refused (stack, "model", model);
    cr_assert (strstr (log, "EDGEPLANE_MODEL_STORE=etcd"), "%s", log);
    free (log);
    s_still_serving (model, "model");
    uint64_t after = ep_stack_create_service (stack, "ssh");
    cr_assert_eq (after, before + 1, "the first model kept its revisions");
    ep_stack_destroy (&stack);
}

Test (datalock, second_reaper_and_terminators_exit_2)
{
    ep_stack_t *stack = ep_stack_new ("datalock-reaper");
    ep_proc_t *reaper = ep_stack_start (stack, "reaper", 20000);
    ep_proc_t *terminators = ep_stack_start (stack, "terminators", 20000);
    free (s_second_refused (stack, "reaper", reaper));
    free (s_second_refused (stack, "terminators", terminators));
    s_still_serving (reaper, "reaper");
    s_still_serving (terminators, "terminators");
    ep_stack_destroy (&stack);
}

Test (datalock, lock_goes_with_a_killed_holder)
{
    //  SIGKILL leaves the lock file, not the lock: the next start succeeds.
    ep_stack_t *stack = ep_stack_new ("datalock-kill");
    ep_stack_start (stack, "reaper", 20000);
    free (ep_stack_kill (stack, "reaper"));
    ep_stack_start (stack, "reaper", 20000);
    ep_stack_destroy (&stack);
}

Test (datalock, up_refuses_a_data_directory_whose_services_run)
{
    ep_stack_t *stack = ep_stack_new ("datalock-up");
    ep_proc_t *model = ep_stack_model (stack);
    ep_proc_t *reaper = ep_stack_start (stack, "reaper", 20000);
    ep_stack_export (stack);
    char *cmd = zsys_sprintf ("'%s/edgeplane' up 2>&1", EP_BIN_DIR);
    char *out = NULL;
    int rc = ep_run (cmd, &out);
    free (cmd);
    cr_assert_neq (rc, 0, "up started over running services: %s", out);
    char model_pid [32], reaper_pid [32];
    snprintf (model_pid, sizeof model_pid, "model (pid %d)", (int) ep_proc_pid (model));
    snprintf (reaper_pid, sizeof reaper_pid, "reaper (pid %d)", (int) ep_proc_pid (reaper));
    cr_assert (out && strstr (out, model_pid) && strstr (out, reaper_pid),
               "up names the running services' pids: %s", out);
    cr_assert (strstr (out, ep_stack_dir (stack)), "%s", out);
    free (out);
    s_still_serving (model, "model");
    ep_stack_destroy (&stack);
}
