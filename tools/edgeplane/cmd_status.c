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

int
cli_status (int argc, char **argv)
{
    static bool json;
    ep_opt_t opts [] = {
        { .name = "json", .def = "false", .type = EP_OPT_BOOL, .flag = &json, .help = "Print JSON." },
    };
    ep_common_opts_t common;
    ep_config_t *config = cli_parse ("status", "Health, version and key figures of each running service.",
                                     NULL, &common, opts, EP_COUNT (opts), argc, argv);
    static const char *services [] = { "bus", "model", "terminators", "reaper", "watchdog" };
    json_t *all = json_array ();
    int healthy = 0, found = 0;
    if (!json)
        printf ("%-12s %-8s %-8s %-8s %-8s %s\n", "SERVICE", "PID", "HEALTH", "READY", "VERSION", "FIGURES");
    for (size_t i = 0; i < EP_COUNT (services); i++) {
        char *path = zsys_sprintf ("%s/run/%s.ready", common.data_dir, services [i]);
        json_t *ready = ep_ready_read (path);
        free (path);
        if (!ready)
            continue;
        found++;
        const char *http = ep_ready_endpoint (ready, "http");
        json_int_t pid = json_integer_value (json_object_get (ready, "pid"));
        bool alive = pid > 0 && kill ((pid_t) pid, 0) == 0;
        char err [256], *body = NULL;
        int status = 0;
        char url [256];
        snprintf (url, sizeof url, "%s/healthz", http? http: "");
        bool health = alive && http && cli_http_get (url, 2000, &status, &body, err, sizeof err) == 0 && status == 200;
        free (body);
        body = NULL;
        snprintf (url, sizeof url, "%s/readyz", http? http: "");
        bool is_ready = health && cli_http_get (url, 2000, &status, &body, err, sizeof err) == 0 && status == 200;
        free (body);
        body = NULL;
        snprintf (url, sizeof url, "%s/metrics", http? http: "");
        char *page = NULL;
        if (health && cli_http_get (url, 2000, &status, &page, err, sizeof err) != 0)
            page = NULL;
        char version [32] = "?";
        const char *build = page? strstr (page, "version=\""): NULL;
        if (build)
            sscanf (build + 9, "%31[^\"]", version);
        json_t *entry = json_pack ("{s:s, s:I, s:b, s:b, s:s, s:s}", "service", services [i],
                                   "pid", pid, "healthy", health, "ready", is_ready,
                                   "version", version, "http", http? http: "");
        json_t *figures = json_object ();
        char line [256] = "";
        for (size_t f = 0; page && f < EP_COUNT (s_figures); f++) {
            if (!streq (s_figures [f].service, services [i]))
                continue;
            double value = s_metric (page, s_figures [f].series);
            if (value < 0)
                continue;
            json_object_set_new (figures, s_figures [f].label, json_real (value));
            size_t used = strlen (line);
            snprintf (line + used, sizeof line - used, "%s%s %.0f", used? ", ": "", s_figures [f].label, value);
        }
        json_object_set_new (entry, "figures", figures);
        json_array_append_new (all, entry);
        healthy += health;
        if (!json)
            printf ("%-12s %-8lld %-8s %-8s %-8s %s\n", services [i], (long long) pid,
                    health? "ok": alive? "failing": "down", is_ready? "yes": "no", version, line);
        free (page);
        json_decref (ready);
    }
    if (json)
        cli_print_json (all);
    else
        json_decref (all);
    ep_config_destroy (&config);
    if (found == 0)
        return cli_fail ("status", "no service ready files in %s/run: is `edgeplane up` running with this data dir?",
                         common.data_dir);
    return healthy == found? CLI_OK: CLI_FAIL;
}
