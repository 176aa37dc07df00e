/*  edgeplane status: health, version, model revision and key figures of
    each service that `edgeplane up` started (their ready files under
    <data>/run say where each one's HTTP port is), and the shards each
    instance of a sharded service owns, from their beacons on the bus. */
#include "cli.h"
#include "cli_beacons.h"
#include "cli_table.h"
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
    { "terminators", "shards",     "edgeplane_shards_owned" },
    { "reaper",      "sessions",   "edgeplane_sessions" },
    { "reaper",      "shards",     "edgeplane_shards_owned" },
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

//  Where to hear the beacons, when a service here runs on shards (its
//  /metrics has edgeplane_shards_owned): in the embedded mode nothing
//  beacons, so status does not wait for nothing there. The bus given
//  (flag or environment), else the one `up` started (its ready file).
//  NULL: do not listen.
static char *
s_beacon_bus (const char *data_dir, const char *given, bool sharded)
{
    if (!sharded)
        return NULL;
    if (given)
        return strdup (given);
    char *path = zsys_sprintf ("%s/run/bus.ready", data_dir);
    json_t *ready = ep_ready_read (path);
    free (path);
    const char *sub = ready? ep_ready_endpoint (ready, "sub"): NULL;
    char *bus = sub? ep_endpoint_connectable (sub): NULL;
    json_decref (ready);
    return bus;
}

//  The beacons heard on bus within listen_ms; NULL (said why on stderr)
//  when we cannot listen: no certificate, a bad address.
static cli_beacons_t *
s_listen (const char *keys_dir, const char *bus, int64_t listen_ms)
{
    const char *hint = "shards not shown (`edgeplane pki init` makes it)";
    zcert_t *cert = cli_cert_load ("status", keys_dir, NULL, "subscriber.cert_secret", "the certificate", hint);
    zcert_t *bus_key = cert? cli_cert_load ("status", keys_dir, NULL, "bus.cert", "the bus public certificate",
                                            hint): NULL;
    ep_subscriber_t *sub = NULL;
    if (bus_key
    &&  !(sub = ep_subscriber_new (bus, cert, zcert_public_txt (bus_key), 4u * 1024u * 1024u, NULL, NULL)))
        cli_fail ("status", "invalid bus address %s (EDGEPLANE_BUS_SUB): shards not shown", bus);
    cli_beacons_t *beacons = NULL;
    if (sub) {
        beacons = cli_beacons_new ();
        cli_beacons_listen (beacons, sub, NULL, listen_ms);
    }
    ep_subscriber_destroy (&sub);
    zcert_destroy (&bus_key);
    zcert_destroy (&cert);
    return beacons;
}

//  Each sharded service's owners into its entry in all, as `edgeplane
//  shards --json` gives them: {"shard_count", "complete", "instances"}.
static void
s_shards_json (cli_beacons_t *beacons, json_t *all)
{
    size_t i;
    json_t *entry;
    json_array_foreach (all, i, entry) {
        const char *service = json_string_value (json_object_get (entry, "service"));
        if (cli_beacons_size (beacons, service) == 0)
            continue;
        char why [256];
        bool complete = cli_beacons_complete (beacons, service, why, sizeof why);
        json_t *instances = json_array ();
        for (const cli_owner_t *owner = cli_beacons_first (beacons); owner; owner = cli_beacons_next (beacons))
            if (streq (owner->service, service))
                json_array_append_new (instances, cli_owner_json (owner));
        json_object_set_new (entry, "shards", json_pack ("{s:i, s:b, s:o}", "shard_count",
                             (int) cli_beacons_count (beacons, service), "complete", complete,
                             "instances", instances));
    }
}

//  The shards section: one row per instance heard, then what is wrong
//  with each service's cover (a handover in progress), if anything.
static void
s_shards_print (cli_beacons_t *beacons)
{
    static const char *header [] = { "SHARDED", "INSTANCE", "ADDRESS", "OWNED", "SHARDS" };
    cli_table_t *table = cli_table_new (header, EP_COUNT (header));
    zlistx_t *services = zlistx_new ();
    zlistx_set_destructor (services, (czmq_destructor *) zstr_free);
    for (const cli_owner_t *owner = cli_beacons_first (beacons); owner; owner = cli_beacons_next (beacons)) {
        char ranges [4096];
        cli_shard_ranges (owner->shards, owner->nshards, ranges, sizeof ranges);
        cli_table_add (table, owner->service);
        cli_table_add (table, owner->id);
        cli_table_add (table, owner->address);
        cli_table_addf (table, "%zu", owner->nshards);
        cli_table_add (table, ranges);
        const char *last = (const char *) zlistx_last (services);
        if (!last || !streq (last, owner->service))
            zlistx_add_end (services, strdup (owner->service));
    }
    printf ("\n");
    cli_table_print (table);
    cli_table_destroy (&table);
    for (const char *service = (const char *) zlistx_first (services); service;
         service = (const char *) zlistx_next (services)) {
        char why [256];
        if (!cli_beacons_complete (beacons, service, why, sizeof why))
            printf ("%s\n", why);
    }
    zlistx_destroy (&services);
}

int
cli_status (int argc, char **argv)
{
    static bool json;
    static int64_t listen_ms;
    ep_opt_t opts [] = {
        { .name = "json", .def = "false", .type = EP_OPT_BOOL, .flag = &json, .help = "Print JSON." },
        { .name = "shards-listen", .def = "1500ms", .type = EP_OPT_DURATION, .num = &listen_ms, .min = 0,
          .max = 60000, .help = "How long to listen for the sharded services' beacons (one a second per "
          "instance), when one of the services runs on shards; 0: never." },
    };
    ep_common_opts_t common;
    ep_config_t *config = cli_parse ("status", "Health, version and key figures of each service, and the "
                                     "shards each sharded instance owns; exits 0 only when all five are "
                                     "healthy and ready.", NULL, &common, opts, EP_COUNT (opts), argc, argv);
    //  Ours: common's strings belong to config.
    char *data_dir = strdup (common.data_dir);
    char *keys_dir = strdup (common.keys_dir);
    const char *source = ep_config_source (config, "bus-sub");
    char *bus_given = source && (streq (source, "flag") || streq (source, "env"))? strdup (common.bus_sub): NULL;
    ep_config_destroy (&config);
    static const char *services [] = { "bus", "model", "terminators", "reaper", "watchdog" };
    bool supervised = s_supervisor_alive (data_dir);
    json_t *all = json_array ();
    int ready = 0, present = 0;
    bool sharded = false;
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
        if (json_object_get (json_object_get (entry, "figures"), "shards"))
            sharded = true;
        if (!json)
            printf ("%s\n", row);
        json_array_append_new (all, entry);
    }
    fflush (stdout);
    char *bus = listen_ms > 0? s_beacon_bus (data_dir, bus_given, sharded): NULL;
    cli_beacons_t *beacons = bus? s_listen (keys_dir, bus, listen_ms): NULL;
    if (beacons && json)
        s_shards_json (beacons, all);
    else
    if (beacons && cli_beacons_size (beacons, NULL) > 0)
        s_shards_print (beacons);
    else
    if (beacons && sharded)
        printf ("\nno shard beacon on the bus %s within %lld ms\n", bus, (long long) listen_ms);
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
    cli_beacons_destroy (&beacons);
    free (bus);
    free (bus_given);
    free (keys_dir);
    free (data_dir);
    return rc;
}
