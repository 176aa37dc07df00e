/*  edgeplane status: health, version, model revision and key figures of
    each service that `edgeplane up` started (their ready files under
    <data>/run say where each one's HTTP port is). */
#include "cli.h"
#include "ep_ready.h"
#include <signal.h>
#include <sys/types.h>

typedef struct {
    const char *service;        //  which service
    const char *label;          //  what the figure is
    const char *series;         //  metric series, exactly as rendered
} s_figure_t;

static const s_figure_t s_figures [] = {
    { "bus",         "forwarded",  "edgeplane_bus_forwarded_total" },
    { "model",       "revision",   "edgeplane_model_revision" },
    { "model",       "db bytes",   "edgeplane_model_db_bytes" },
    { "watchdog",    "routers",    "edgeplane_connections{role=\"router\",state=\"joined\"}" },
    { "watchdog",    "strays",     "controller_stray_connections_total" },
    { "terminators", "terminators","edgeplane_terminators" },
    { "reaper",      "sessions",   "edgeplane_sessions" },
};

//  Sums every sample of the metric named name (all label sets) in page;
//  with labels in series, only that sample. -1 if none.
static double
s_metric (const char *page, const char *series)
{
    double sum = -1;
    size_t len = strlen (series);
    bool exact = strchr (series, '{') != NULL;
    for (const char *line = page; line && *line; ) {
        if (*line != '#' && strncmp (line, series, len) == 0
        &&  (line [len] == ' ' || (!exact && line [len] == '{'))) {
            const char *value = strchr (line + len, ' ');
            if (exact)
                value = line + len;
            if (value) {
                sum = (sum < 0? 0: sum) + atof (value + 1);
                if (exact)
                    break;
            }
        }
        line = strchr (line, '\n');
        if (line)
            line++;
    }
    return sum;
}

//  True if pid runs: a zombie (a service whose supervisor was killed, not
//  yet reaped) answers kill (pid, 0) but is down.
static bool
s_running (pid_t pid)
{
    if (pid <= 0 || kill (pid, 0) != 0)
        return false;
    char path [64], stat [512] = "";
    snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
    FILE *file = fopen (path, "r");
    if (!file)
        return true;            //  no /proc: trust kill
    size_t n = fread (stat, 1, sizeof stat - 1, file);
    fclose (file);
    stat [n] = 0;
    const char *state = strrchr (stat, ')');
    return !(state && state [1] == ' ' && (state [2] == 'Z' || state [2] == 'X'));
}

//  True if the `edgeplane up` that wrote <data>/run/up.pid still runs.
static bool
s_supervisor_alive (const char *data_dir)
{
    char *path = zsys_sprintf ("%s/run/up.pid", data_dir);
    FILE *file = fopen (path, "r");
    free (path);
    int pid = 0;
    if (file) {
        if (fscanf (file, "%d", &pid) != 1)
            pid = 0;
        fclose (file);
    }
    return s_running ((pid_t) pid);
}

//  GETs base + path; true on a 200 answer. *page_p (if not NULL) gets the body.
static bool
s_get_ok (const char *base, const char *path, char **page_p)
{
    char url [256], err [256], *body = NULL;
    int status = 0;
    snprintf (url, sizeof url, "%s%s", base, path);
    bool ok = cli_http_get (url, 2000, &status, &body, err, sizeof err) == 0 && status == 200;
    if (ok && page_p)
        *page_p = body;
    else
        free (body);
    return ok;
}

//  One service's row: its ready file says where to ask; without one it is
//  "starting" while its supervisor runs, else "down". Returns its entry;
//  *line gets the text row.
static json_t *
s_service_status (const char *data_dir, const char *service, bool supervised, char *row, size_t rowlen)
{
    char *path = zsys_sprintf ("%s/run/%s.ready", data_dir, service);
    json_t *ready = ep_ready_read (path);
    free (path);
    const char *http = ready? ep_ready_endpoint (ready, "http"): NULL;
    json_int_t pid = ready? json_integer_value (json_object_get (ready, "pid")): 0;
    bool alive = s_running ((pid_t) pid);
    char *page = NULL;
    bool health = alive && http && s_get_ok (http, "/healthz", NULL);
    bool is_ready = health && s_get_ok (http, "/readyz", NULL);
    if (health && !s_get_ok (http, "/metrics", &page))
        page = NULL;
    const char *state = is_ready? "ready": health? "not-ready": alive? "failing":
                        !ready && supervised? "starting": "down";
    char version [32] = "?";
    const char *build = page? strstr (page, "version=\""): NULL;
    if (build)
        sscanf (build + 9, "%31[^\"]", version);
    json_t *entry = json_pack ("{s:s, s:I, s:s, s:b, s:b, s:s, s:s}", "service", service,
                               "pid", pid, "state", state, "healthy", health, "ready", is_ready,
                               "version", version, "http", http? http: "");
    json_t *figures = json_object ();
    char line [256] = "";
    for (size_t f = 0; page && f < EP_COUNT (s_figures); f++) {
        if (!streq (s_figures [f].service, service))
            continue;
        double value = s_metric (page, s_figures [f].series);
        if (value < 0)
            continue;
        json_object_set_new (figures, s_figures [f].label, json_real (value));
        size_t used = strlen (line);
        snprintf (line + used, sizeof line - used, "%s%s %.0f", used? ", ": "", s_figures [f].label, value);
    }
    json_object_set_new (entry, "figures", figures);
    snprintf (row, rowlen, "%-12s %-8lld %-10s %-8s %-8s %s", service, (long long) pid,
              health? "ok": state, is_ready? "yes": "no", version, line);
    free (page);
    json_decref (ready);
    return entry;
}

int
cli_status (int argc, char **argv)
{
    static bool json;
    ep_opt_t opts [] = {
        { .name = "json", .def = "false", .type = EP_OPT_BOOL, .flag = &json, .help = "Print JSON." },
    };
    ep_common_opts_t common;
    ep_config_t *config = cli_parse ("status", "Health, version and key figures of each service; "
                                     "exits 0 only when all five are healthy and ready.",
                                     NULL, &common, opts, EP_COUNT (opts), argc, argv);
    //  Ours: common's strings belong to config.
    char *data_dir = strdup (common.data_dir);
    ep_config_destroy (&config);
    static const char *services [] = { "bus", "model", "terminators", "reaper", "watchdog" };
    bool supervised = s_supervisor_alive (data_dir);
    json_t *all = json_array ();
    int ready = 0, present = 0;
    char waiting [256] = "";
    if (!json)
        printf ("%-12s %-8s %-10s %-8s %-8s %s\n", "SERVICE", "PID", "HEALTH", "READY", "VERSION", "FIGURES");
    for (size_t i = 0; i < EP_COUNT (services); i++) {
        char row [512];
        json_t *entry = s_service_status (data_dir, services [i], supervised, row, sizeof row);
        const char *state = json_string_value (json_object_get (entry, "state"));
        if (streq (state, "ready"))
            ready++;
        else {
            size_t used = strlen (waiting);
            snprintf (waiting + used, sizeof waiting - used, "%s%s (%s)", used? ", ": "", services [i], state);
        }
        if (json_integer_value (json_object_get (entry, "pid")) > 0)
            present++;
        if (!json)
            printf ("%s\n", row);
        json_array_append_new (all, entry);
    }
    if (json)
        cli_print_json (all);
    else
        json_decref (all);
    int rc = CLI_OK;
    if (present == 0 && !supervised)
        rc = cli_fail ("status", "no service ready files in %s/run: is `edgeplane up` running with this data dir?",
                       data_dir);
    else
    if (ready < (int) EP_COUNT (services))
        rc = cli_fail ("status", "%d of %zu services ready; not yet: %s", ready, EP_COUNT (services), waiting);
    free (data_dir);
    return rc;
}
