/*  edgeplane up [--demo]: the whole control plane on one machine.

    Creates the data directory and, on first run, the keys and the TLS CA;
    starts bus, model, terminators, reaper, watchdog and console as child processes
    on 127.0.0.1, each with a ready file under <data>/run; restarts one that
    dies, with backoff; prints the endpoints once all are ready; stops
    everything in reverse order on Ctrl-C or SIGTERM. --demo also seeds
    services and routers, issues their certificates and runs a small
    simulated fleet (plus one connection that never joins), and prints the
    events as they happen, so a new user sees terminators, sessions, a
    stray connection and events within seconds.
*/
#include "cli.h"
#include "ep_backoff.h"
#include "ep_codec.h"
#include "ep_event_json.h"
#include "ep_keys.h"
#include "ep_lock.h"
#include "ep_pki.h"
#include "ep_ready.h"
#include "ep_rpc_client.h"
#include "ep_subscriber.h"
#include "model.pb-c.h"
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEMO_ROUTERS 5

typedef struct {
    const char *name;           //  "bus", "model", ... ("router" for the demo fleet)
    char *binary;               //  path
    char **argv;                //  NULL-terminated (owned)
    char *ready_path;           //  its ready file
    char *log_path;             //  its output
    pid_t pid;                  //  running child, 0 if none
    ep_backoff_t backoff;       //  restart delays
    int64_t restart_at;         //  when to start it again (0: not waiting)
    int restarts;               //  times restarted
    json_t *ready;              //  parsed ready file, once seen
} s_child_t;

static char *
s_bin_dir (void)
{
    char path [4096];
    ssize_t n = readlink ("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0)
        return strdup (".");
    path [n] = 0;
    return strdup (dirname (path));
}

//  Starts child. Between fork and exec the child makes only
//  async-signal-safe calls: the log is opened before the fork. It dies with
//  us (SIGKILL as its parent-death signal, so a killed `edgeplane up`
//  leaves no orphan holding the ports); if we died before prctl took
//  effect, its parent is no longer the pid saved before the fork and it
//  exits at once.
static int
s_start (s_child_t *child)
{
    unlink (child->ready_path);
    json_decref (child->ready);
    child->ready = NULL;
    int log = open (child->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log < 0) {
        fprintf (stderr, "edgeplane up: cannot open %s: %s\n", child->log_path, strerror (errno));
        return -1;
    }
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid < 0) {
        close (log);
        return -1;
    }
    if (pid == 0) {
        setpgid (0, 0);         //  Ctrl-C reaches us; we stop the children in order
        if (prctl (PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid () != parent)
            _exit (126);
        dup2 (log, 2);          //  dup2 clears O_CLOEXEC on the copies
        dup2 (log, 1);
        execv (child->binary, child->argv);
        static const char failed [] = "edgeplane up: cannot run ";
        if (write (2, failed, sizeof failed - 1) > 0 && write (2, child->binary, strlen (child->binary)) > 0)
            (void) !write (2, "\n", 1);
        _exit (127);
    }
    close (log);
    child->pid = pid;
    child->restart_at = 0;
    return 0;
}

static void
s_stop (s_child_t *child, int64_t grace_ms)
{
    if (!child->pid)
        return;
    kill (child->pid, SIGTERM);
    int64_t deadline = ep_mono_ms () + grace_ms;
    int status;
    while (waitpid (child->pid, &status, WNOHANG) == 0) {
        if (ep_mono_ms () >= deadline) {
            kill (child->pid, SIGKILL);
            waitpid (child->pid, &status, 0);
            break;
        }
        zclock_sleep (20);      //  polling a child's exit; the deadline decides
    }
    child->pid = 0;
}

//  Reaps children that exited and schedules their restart.
static void
s_reap (s_child_t *children, size_t count)
{
    int status;
    pid_t pid;
    while ((pid = waitpid (-1, &status, WNOHANG)) > 0)
        for (size_t i = 0; i < count; i++)
            if (children [i].pid == pid) {
                children [i].pid = 0;
                int64_t delay = ep_backoff_next (&children [i].backoff);
                children [i].restart_at = ep_mono_ms () + delay;
                fprintf (stderr, "edgeplane up: %s exited (%s %d); restarting in %lld ms (log: %s)\n",
                         children [i].name, WIFSIGNALED (status)? "signal": "status",
                         WIFSIGNALED (status)? WTERMSIG (status): WEXITSTATUS (status),
                         (long long) delay, children [i].log_path);
            }
}

//  Copies the last lines of path to stderr, indented: the reason a
//  service did not start is usually its last words.
static void
s_print_tail (const char *path, int lines)
{
    FILE *file = fopen (path, "r");
    if (!file)
        return;
    char *ring [lines];
    memset (ring, 0, sizeof ring);
    int count = 0;
    char *line = NULL;
    size_t size = 0;
    while (getline (&line, &size, file) != -1) {
        free (ring [count % lines]);
        ring [count++ % lines] = strdup (line);
    }
    free (line);
    fclose (file);
    if (count > 0)
        fprintf (stderr, "edgeplane up: the last lines of %s:\n", path);
    for (int i = count > lines? count - lines: 0; i < count; i++) {
        const char *text = ring [i % lines];
        fprintf (stderr, "    %s%s", text, text [0] && text [strlen (text) - 1] == '\n'? "": "\n");
    }
    for (int i = 0; i < lines; i++)
        free (ring [i]);
}

//  Waits until child's ready file appears (or it dies, or timeout).
static bool
s_await_ready (s_child_t *child, int timeout_ms)
{
    int64_t deadline = ep_mono_ms () + timeout_ms;
    while (!zsys_interrupted && ep_mono_ms () < deadline) {
        if ((child->ready = ep_ready_read (child->ready_path)))
            return true;
        int status;
        if (child->pid && waitpid (child->pid, &status, WNOHANG) == child->pid) {
            child->pid = 0;
            return false;
        }
        zclock_sleep (20);      //  polling a file with a deadline
    }
    return false;
}

//  The demo's model: three services, DEMO_ROUTERS routers hosting them.
static int
s_seed (const char *keys_dir, const char *model_api)
{
    zcert_t *cert = ep_keys_load (keys_dir, "operator");
    char *key = ep_keys_public_txt (keys_dir, "model");
    ep_rpc_client_t *client = cert && key? ep_rpc_client_new (model_api, cert, key): NULL;
    int rc = client? 0: -1;
    static const char *services [] = { "web", "ssh", "db" };
    //  Services, routers, and the identity each router's sessions belong
    //  to (the agent's id-<router>).
    size_t n_writes = EP_COUNT (services) + 2 * DEMO_ROUTERS;
    Ep__ModelWrite writes [EP_COUNT (services) + 2 * DEMO_ROUTERS];
    Ep__ModelWrite *list [EP_COUNT (services) + 2 * DEMO_ROUTERS];
    Ep__Entity entities [EP_COUNT (services) + 2 * DEMO_ROUTERS];
    Ep__Identity identities [DEMO_ROUTERS];
    char identity_ids [DEMO_ROUTERS][24];
    Ep__Service service_msgs [EP_COUNT (services)];
    Ep__Router routers [DEMO_ROUTERS];
    Ep__HostedService hosted [EP_COUNT (services)];
    Ep__HostedService *hosted_list [EP_COUNT (services)];
    char ids [DEMO_ROUTERS][16];
    for (size_t i = 0; i < EP_COUNT (services); i++) {
        ep__service__init (&service_msgs [i]);
        service_msgs [i].id = (char *) services [i];
        ep__entity__init (&entities [i]);
        entities [i].kind_case = EP__ENTITY__KIND_SERVICE;
        entities [i].service = &service_msgs [i];
        ep__hosted_service__init (&hosted [i]);
        hosted [i].service_id = (char *) services [i];
        hosted [i].has_cost = true;
        hosted [i].cost = 10 * (uint32_t) (i + 1);
        hosted_list [i] = &hosted [i];
    }
    for (size_t i = 0; i < DEMO_ROUTERS; i++) {
        snprintf (ids [i], sizeof ids [i], "demo-%zu", i);
        ep__router__init (&routers [i]);
        routers [i].id = ids [i];
        routers [i].n_hosted = 1 + i % EP_COUNT (services);
        routers [i].hosted = hosted_list;
        Ep__Entity *entity = &entities [EP_COUNT (services) + i];
        ep__entity__init (entity);
        entity->kind_case = EP__ENTITY__KIND_ROUTER;
        entity->router = &routers [i];
        snprintf (identity_ids [i], sizeof identity_ids [i], "id-demo-%zu", i);
        ep__identity__init (&identities [i]);
        identities [i].id = identity_ids [i];
        entity = &entities [EP_COUNT (services) + DEMO_ROUTERS + i];
        ep__entity__init (entity);
        entity->kind_case = EP__ENTITY__KIND_IDENTITY;
        entity->identity = &identities [i];
    }
    for (size_t i = 0; i < n_writes; i++) {
        ep__model_write__init (&writes [i]);
        writes [i].has_op = true;
        writes [i].op = EP__MODEL_WRITE__OP__CREATE;
        writes [i].entity = &entities [i];
        list [i] = &writes [i];
    }
    //  One by one, so that a second run (entities already there) is fine.
    for (size_t i = 0; rc == 0 && i < n_writes; i++) {
        char id [33], err [256];
        ep_rpc_new_id (id);
        Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
        request.request_id = id;
        request.op_case = EP__MODEL_REQUEST__OP_WRITE;
        request.write = list [i];
        Ep__ModelReply *reply = (Ep__ModelReply *) ep_rpc_client_call (client, &request.base, id,
                                                                       &ep__model_reply__descriptor,
                                                                       3000, 3, err, sizeof err);
        if (!reply) {
            fprintf (stderr, "edgeplane up: seeding the demo model failed: %s\n", err);
            rc = -1;
        }
        else {
            if (reply->status->code != EP__STATUS__CODE__OK && reply->status->code != EP__STATUS__CODE__ALREADY_EXISTS) {
                fprintf (stderr, "edgeplane up: seeding the demo model failed: %s\n", reply->status->message);
                rc = -1;
            }
            ep__model_reply__free_unpacked (reply, NULL);
        }
    }
    ep_rpc_client_destroy (&client);
    free (key);
    zcert_destroy (&cert);
    return rc;
}

static char **
s_argv (const char *binary, const char *const *args)
{
    size_t n = 0;
    while (args [n])
        n++;
    char **argv = (char **) calloc (n + 2, sizeof (char *));
    argv [0] = strdup (binary);
    for (size_t i = 0; i < n; i++)
        argv [i + 1] = strdup (args [i]);
    return argv;
}

//  One `edgeplane up`: its children and what it prints.
typedef struct {
    const ep_common_opts_t *common; //  data and keys dirs, bus address, ready file
    char *run_dir;              //  <data>/run: ready files and logs
    char *bin;                  //  where our binaries are
    s_child_t children [8];     //  the services, in start order, then the demo fleet
    size_t count;               //  children in use
    ep_subscriber_t *events;    //  the demo's event printer, or NULL
    zcert_t *sub_cert;          //  its certificate
    char *pid_file;             //  <data>/run/up.pid, written once we supervise
} s_up_t;

//  Writes our pid to <data>/run/up.pid: `edgeplane status` tells a service
//  still starting (its supervisor alive) from one that is down.
static int
s_pid_file_write (s_up_t *self)
{
    self->pid_file = zsys_sprintf ("%s/up.pid", self->run_dir);
    FILE *file = fopen (self->pid_file, "w");
    bool written = file && fprintf (file, "%d\n", (int) getpid ()) > 0;
    if (file && fclose (file) != 0)
        written = false;
    if (!written)
        return cli_fail ("up", "cannot write %s: %s", self->pid_file, strerror (errno));
    return CLI_OK;
}

//  Adds a child: name, run as binary with args plus its ready file.
static s_child_t *
s_child_add (s_up_t *self, const char *name, char *binary, const char *const *args)
{
    EP_ASSERT (self->count < EP_COUNT (self->children));
    s_child_t *child = &self->children [self->count++];
    child->name = name;
    child->binary = binary;
    child->ready_path = zsys_sprintf ("%s/%s.ready", self->run_dir, name);
    child->log_path = zsys_sprintf ("%s/%s.log", self->run_dir, name);
    const char *argv [24];
    size_t n = 0;
    for (; args && args [n]; n++) {
        EP_ASSERT (n < EP_COUNT (argv) - 3);
        argv [n] = args [n];
    }
    argv [n++] = "--ready-file";
    argv [n++] = child->ready_path;
    argv [n] = NULL;
    child->argv = s_argv (child->binary, argv);
    child->backoff = ep_backoff (500, 30000);
    return child;
}

//  Where each service is dialed, as the environment every later child
//  (services, the demo fleet) and we read it: from the ready file of what
//  they dial, so a non-default listen address reaches its dialers.
static void
s_export_endpoints (s_child_t *child)
{
    static const struct { const char *service, *endpoint, *env; } dialed [] = {
        { "bus",         "pub",     "EDGEPLANE_BUS_PUB" },
        { "bus",         "sub",     "EDGEPLANE_BUS_SUB" },
        { "model",       "api",     "EDGEPLANE_MODEL_API" },
        { "terminators", "api",     "EDGEPLANE_TERMINATORS_API" },
        { "reaper",      "api",     "EDGEPLANE_REAPER_API" },
        { "watchdog",    "api",     "EDGEPLANE_WATCHDOG_API" },
        { "watchdog",    "channel", "EDGEPLANE_CONTROLLER" },
    };
    for (size_t i = 0; i < EP_COUNT (dialed); i++) {
        const char *endpoint = streq (dialed [i].service, child->name)?
                               ep_ready_endpoint (child->ready, dialed [i].endpoint): NULL;
        char *connectable = endpoint? ep_endpoint_connectable (endpoint): NULL;
        if (connectable)
            setenv (dialed [i].env, connectable, 1);
        free (connectable);
    }
}

//  Starts the services in order: each waits for the ones before it (the
//  watchdog follows the model, everyone publishes to the bus).
static int
s_services_start (s_up_t *self)
{
    static const char *services [] = { "bus", "model", "terminators", "reaper", "watchdog", "console" };
    for (size_t i = 0; i < EP_COUNT (services); i++) {
        char *binary = zsys_sprintf ("%s/edgeplane-%s", self->bin, services [i]);
        if (access (binary, X_OK) != 0) {
            fprintf (stderr, "edgeplane up: %s is not built yet; running without it\n", binary);
            free (binary);
            continue;
        }
        s_child_add (self, services [i], binary, NULL);
    }
    int rc = CLI_OK;
    for (size_t i = 0; i < self->count && rc == CLI_OK && !zsys_interrupted; i++) {
        s_child_t *child = &self->children [i];
        if (s_start (child) != 0 || !s_await_ready (child, 30000)) {
            rc = cli_fail ("up", "%s did not become ready; see %s", child->name, child->log_path);
            s_print_tail (child->log_path, 10);
        }
        else
            s_export_endpoints (child);
    }
    return rc;
}

//  Prints every service's endpoints and writes them, as "<service>.<name>",
//  to the ready file if one was asked for.
static int
s_announce (s_up_t *self)
{
    for (size_t i = 0; i < self->count; i++)
        if (streq (self->children [i].name, "console")) {
            const char *http = ep_ready_endpoint (self->children [i].ready, "http");
            if (http)
                printf ("open %s\n", http);
        }
    printf ("edgeplane is up (data in %s):\n", self->common->data_dir);
    for (size_t i = 0; i < self->count; i++) {
        char *text = json_dumps (json_object_get (self->children [i].ready, "endpoints"), JSON_COMPACT);
        printf ("  %-12s pid %-7d %s\n", self->children [i].name, (int) self->children [i].pid, text);
        free (text);
    }
    printf ("Events: edgeplane events   Status: edgeplane status   Stop: Ctrl-C\n");
    fflush (stdout);
    if (!self->common->ready_file)
        return CLI_OK;
    json_t *endpoints = json_object ();
    for (size_t i = 0; i < self->count; i++) {
        const char *key;
        json_t *value;
        json_object_foreach (json_object_get (self->children [i].ready, "endpoints"), key, value) {
            char name [96];
            snprintf (name, sizeof name, "%s.%s", self->children [i].name, key);
            json_object_set (endpoints, name, value);
        }
    }
    int rc = CLI_OK;
    if (ep_ready_write (self->common->ready_file, "up", endpoints) != 0)
        rc = cli_fail ("up", "cannot write the ready file %s", self->common->ready_file);
    json_decref (endpoints);
    return rc;
}

//  The demo: seeds the model, issues the fleet's certificates (once),
//  subscribes to the events it prints, and starts the fleet.
static int
s_demo_start (s_up_t *self)
{
    const char *model_api = NULL;
    for (size_t i = 0; i < self->count; i++)
        if (streq (self->children [i].name, "model"))
            model_api = ep_ready_endpoint (self->children [i].ready, "api");
    char *api = model_api? ep_endpoint_connectable (model_api): NULL;
    const char *keys_dir = self->common->keys_dir;
    char *fleet = zsys_sprintf ("%s/demo-fleet", self->common->data_dir);
    int rc = CLI_OK;
    char err [512];
    if (!api || s_seed (keys_dir, api) != 0)
        rc = CLI_FAIL;
    else {
        struct stat st;
        char *probe = zsys_sprintf ("%s/demo-0.crt", fleet);
        if (stat (probe, &st) != 0
        &&  ep_pki_issue_batch (keys_dir, "router", "demo-", DEMO_ROUTERS, fleet, 30, err, sizeof err) != 0)
            rc = cli_fail ("up", "issuing the demo fleet's certificates: %s", err);
        free (probe);
    }
    free (api);
    if (rc == CLI_OK) {
        //  Print events as they happen, from the start of the fleet.
        char *bus_key = ep_keys_public_txt (keys_dir, "bus");
        self->sub_cert = ep_keys_load (keys_dir, "subscriber");
        const char *bus_sub = getenv ("EDGEPLANE_BUS_SUB")?: self->common->bus_sub;
        self->events = ep_subscriber_new (bus_sub, self->sub_cert, bus_key, EP_CODEC_DEFAULT_CAP, NULL, NULL);
        free (bus_key);
        static const char *topics [] = { "connect.", "stray.", "terminator.", "session.", "presence.join" };
        for (size_t i = 0; self->events && i < EP_COUNT (topics); i++)
            ep_subscriber_subscribe (self->events, topics [i]);
        char count_arg [16];
        snprintf (count_arg, sizeof count_arg, "%d", DEMO_ROUTERS);
        const char *args [] = { "--count", count_arg, "--prefix", "demo-", "--bundle", fleet,
                                "--sessions", "3", "--churn", "0.2", "--heartbeat", "2s",
                                "--stray", "1", NULL };
        s_child_t *child = s_child_add (self, "router", zsys_sprintf ("%s/edgeplane-router", self->bin), args);
        if (s_start (child) != 0)
            rc = cli_fail ("up", "cannot start the demo fleet");
        else
            printf ("demo: %d routers (demo-0..%d) and one connection that never joins; events:\n",
                    DEMO_ROUTERS, DEMO_ROUTERS - 1);
        fflush (stdout);
    }
    free (fleet);
    return rc;
}

//  Until Ctrl-C: restarts children that died (after their backoff) and
//  prints the demo's events.
static void
s_supervise (s_up_t *self)
{
    while (!zsys_interrupted) {
        s_reap (self->children, self->count);
        for (size_t i = 0; i < self->count; i++) {
            s_child_t *child = &self->children [i];
            if (!child->pid && child->restart_at && ep_mono_ms () >= child->restart_at) {
                child->restarts++;
                s_start (child);
            }
        }
        if (self->events) {
            char *topic = NULL;
            Ep__Event *event;
            while ((event = ep_subscriber_recv (self->events, 200, &topic))) {
                char *line = ep_event_text (topic, event);
                printf ("%s\n", line);
                fflush (stdout);
                free (line);
                zstr_free (&topic);
            }
        }
        else {
            //  Nothing to print: check on the children a few times a second.
            poll (NULL, 0, 250);
        }
    }
}

//  Stops the children in reverse order and frees what self holds.
static void
s_up_end (s_up_t *self)
{
    for (size_t i = self->count; i-- > 0; ) {
        s_child_t *child = &self->children [i];
        s_stop (child, 5000);
        for (char **arg = child->argv; arg && *arg; arg++)
            free (*arg);
        free (child->argv);
        free (child->binary);
        free (child->ready_path);
        free (child->log_path);
        json_decref (child->ready);
    }
    if (self->pid_file)
        unlink (self->pid_file);
    free (self->pid_file);
    ep_subscriber_destroy (&self->events);
    zcert_destroy (&self->sub_cert);
    free (self->bin);
    free (self->run_dir);
}

//  Refuses a data directory whose stateful services still run (orphans of
//  a killed `edgeplane up`, or another stack): their locks tell, with pids.
static int
s_check_idle (const char *data_dir)
{
    static const char *stateful [] = { "model", "terminators", "reaper" };
    char running [256] = "", pids [128] = "";
    for (size_t i = 0; i < EP_COUNT (stateful); i++) {
        pid_t pid;
        if (ep_lock_held (data_dir, stateful [i], &pid)) {
            size_t used = strlen (running), pused = strlen (pids);
            snprintf (running + used, sizeof running - used, "%s%s (pid %d)",
                      used? ", ": "", stateful [i], (int) pid);
            if (pid > 0)
                snprintf (pids + pused, sizeof pids - pused, " %d", (int) pid);
        }
    }
    if (!running [0])
        return CLI_OK;
    return cli_fail ("up", "services still run on the data directory %s: %s; stop them first "
                     "(kill%s) or choose another --data-dir", data_dir, running, pids);
}

int
cli_up (int argc, char **argv)
{
    static bool demo;
    ep_opt_t opts [] = {
        { .name = "demo", .def = "false", .type = EP_OPT_BOOL, .flag = &demo,
          .help = "Also seed a model, run a small simulated fleet and a stray, and print events." },
    };
    ep_common_opts_t common;
    ep_config_t *config = cli_parse ("up", "Run the whole control plane on this machine (Ctrl-C stops it).",
                                     NULL, &common, opts, EP_COUNT (opts), argc, argv);
    signal (SIGPIPE, SIG_IGN);
    zsys_init ();
    s_up_t self = { .common = &common };
    char err [512];
    int rc = CLI_OK;
    self.run_dir = zsys_sprintf ("%s/run", common.data_dir);
    rc = s_check_idle (common.data_dir);
    if (rc == CLI_OK && zsys_dir_create ("%s", self.run_dir) != 0 && errno != EEXIST)
        rc = cli_fail ("up", "cannot create %s: %s", self.run_dir, strerror (errno));
    if (rc == CLI_OK)
        rc = s_pid_file_write (&self);
    if (rc == CLI_OK && (ep_keys_init (common.keys_dir, false, err, sizeof err) != 0
                     ||  ep_pki_init (common.keys_dir, false, err, sizeof err) != 0))
        rc = cli_fail ("up", "%s", err);
    if (rc == CLI_OK) {
        //  Children inherit the environment; the demo shortens the stray
        //  grace so its stray shows within seconds.
        setenv ("EDGEPLANE_DATA_DIR", common.data_dir, 1);
        setenv ("EDGEPLANE_KEYS_DIR", common.keys_dir, 1);
        if (demo && !getenv ("EDGEPLANE_STRAY_GRACE"))
            setenv ("EDGEPLANE_STRAY_GRACE", "3s", 1);
        self.bin = s_bin_dir ();
        rc = s_services_start (&self);
        if (rc == CLI_OK && !zsys_interrupted)
            rc = s_announce (&self);
        if (rc == CLI_OK && demo && !zsys_interrupted)
            rc = s_demo_start (&self);
        if (rc == CLI_OK)
            s_supervise (&self);
        printf ("\nedgeplane up: stopping\n");
    }
    s_up_end (&self);
    ep_config_destroy (&config);
    return rc;
}
