/*  test_metrics.c: the metrics registry and its Prometheus text rendering. */
#include <criterion/criterion.h>
#include "ep_test.h"
#include "ep_metrics.h"
#include <math.h>
#include <pthread.h>

//  Asserts that the rendered text contains needle, showing both if not.
static void
s_assert_has (const char *text, const char *needle)
{
    cr_assert (strstr (text, needle), "expected in output:\n%s\n--- output:\n%s", needle, text);
}

//  The value of the sample line that starts with prefix ("name{...} "), or NAN.
static double
s_sample (const char *text, const char *prefix)
{
    for (const char *line = text; line && *line; line = strchr (line, '\n')) {
        if (*line == '\n')
            line++;
        if (strncmp (line, prefix, strlen (prefix)) == 0)
            return strtod (line + strlen (prefix), NULL);
    }
    return NAN;
}

Test (metrics, counter_with_labels)
{
    ep_metrics_t *reg = ep_metrics_new ("test");
    ep_counter_t *jobs = ep_metrics_counter (reg, "t_jobs_total", "Jobs done.",
                                             2, (const char *[]) { "op", "code" });
    ep_counter_inc (jobs, (const char *[]) { "create", "OK" }, 1);
    ep_counter_inc (jobs, (const char *[]) { "create", "OK" }, 1);
    ep_series_t *missing = ep_counter_series (jobs, (const char *[]) { "delete", "NOT_FOUND" });
    ep_series_add (missing, 3);
    cr_assert_eq (ep_series_value (missing), 3);
    //  Registering again is a lookup.
    cr_assert_eq (ep_metrics_counter (reg, "t_jobs_total", "Jobs done.",
                                      2, (const char *[]) { "op", "code" }), jobs);

    char *text = ep_metrics_render (reg);
    s_assert_has (text, "# HELP t_jobs_total Jobs done.\n"
                        "# TYPE t_jobs_total counter\n"
                        "t_jobs_total{op=\"create\",code=\"OK\"} 2\n"
                        "t_jobs_total{op=\"delete\",code=\"NOT_FOUND\"} 3\n");
    free (text);
    ep_metrics_destroy (&reg);
    cr_assert_null (reg);
}

Test (metrics, gauge_with_and_without_labels)
{
    ep_metrics_t *reg = ep_metrics_new ("test");
    ep_gauge_t *temp = ep_metrics_gauge (reg, "t_temperature_celsius", "Temperature.", 0, NULL);
    ep_gauge_t *conns = ep_metrics_gauge (reg, "t_connections", "Connections.",
                                          1, (const char *[]) { "state" });
    ep_gauge_set (temp, NULL, 21.5);
    ep_gauge_add (conns, (const char *[]) { "open" }, 5);
    ep_gauge_add (conns, (const char *[]) { "open" }, -7);
    ep_series_t *closing = ep_gauge_series (conns, (const char *[]) { "closing" });
    ep_series_set (closing, 0.1);

    char *text = ep_metrics_render (reg);
    s_assert_has (text, "# TYPE t_temperature_celsius gauge\nt_temperature_celsius 21.5\n");
    s_assert_has (text, "t_connections{state=\"open\"} -2\n"
                        "t_connections{state=\"closing\"} 0.1\n");
    free (text);
    ep_metrics_destroy (&reg);
}

Test (metrics, histogram_buckets_are_cumulative)
{
    ep_metrics_t *reg = ep_metrics_new ("test");
    ep_histogram_t *wait = ep_metrics_histogram (reg, "t_wait_seconds", "Waiting time.",
                                                 1, (const char *[]) { "queue" },
                                                 3, (const double []) { 0.25, 0.5, 1 });
    const char *fast [] = { "fast" };
    //  A bound is inclusive: 0.25 counts in le="0.25".
    ep_histogram_observe (wait, fast, 0.25);
    ep_histogram_observe (wait, fast, 0.125);
    ep_histogram_observe (wait, fast, 0.5);
    ep_histogram_observe (wait, fast, 2);
    cr_assert_eq (ep_series_value (ep_histogram_series (wait, fast)), 4);

    char *text = ep_metrics_render (reg);
    s_assert_has (text, "# TYPE t_wait_seconds histogram\n"
                        "t_wait_seconds_bucket{queue=\"fast\",le=\"0.25\"} 2\n"
                        "t_wait_seconds_bucket{queue=\"fast\",le=\"0.5\"} 3\n"
                        "t_wait_seconds_bucket{queue=\"fast\",le=\"1\"} 3\n"
                        "t_wait_seconds_bucket{queue=\"fast\",le=\"+Inf\"} 4\n"
                        "t_wait_seconds_sum{queue=\"fast\"} 2.875\n"
                        "t_wait_seconds_count{queue=\"fast\"} 4\n");
    free (text);
    ep_metrics_destroy (&reg);
}

Test (metrics, default_buckets_without_labels)
{
    ep_metrics_t *reg = ep_metrics_new ("test");
    ep_histogram_t *lat = ep_metrics_histogram (reg, "t_latency_seconds", "Latency.",
                                                0, NULL, 0, NULL);
    ep_histogram_observe (lat, NULL, 0.003);
    char *text = ep_metrics_render (reg);
    s_assert_has (text, "t_latency_seconds_bucket{le=\"0.005\"} 1\n");
    s_assert_has (text, "t_latency_seconds_bucket{le=\"10\"} 1\n"
                        "t_latency_seconds_bucket{le=\"+Inf\"} 1\n"
                        "t_latency_seconds_sum 0.003\n"
                        "t_latency_seconds_count 1\n");
    free (text);
    ep_metrics_destroy (&reg);
}

Test (metrics, escaping)
{
    ep_metrics_t *reg = ep_metrics_new ("test");
    ep_counter_t *c = ep_metrics_counter (reg, "t_odd_total",
                                          "Back\\slash, \"quotes\" and\nnewline.",
                                          1, (const char *[]) { "path" });
    ep_counter_inc (c, (const char *[]) { "C:\\dir \"x\"\nnext" }, 1);
    char *text = ep_metrics_render (reg);
    //  HELP escapes backslash and newline only; label values also quotes.
    s_assert_has (text, "# HELP t_odd_total Back\\\\slash, \"quotes\" and\\nnewline.\n");
    s_assert_has (text, "t_odd_total{path=\"C:\\\\dir \\\"x\\\"\\nnext\"} 1\n");
    free (text);
    ep_metrics_destroy (&reg);
}

Test (metrics, standard_metrics)
{
    ep_metrics_t *reg = ep_metrics_new ("model");
    ep_metrics_request_done (reg, "create", "OK", 0.02);
    ep_counter_inc (ep_metrics_published (reg), (const char *[]) { "model" }, 2);
    ep_counter_inc (ep_metrics_stream_gaps (reg), (const char *[]) { "model" }, 1);
    char *text = ep_metrics_render (reg);

    s_assert_has (text, "edgeplane_build_info{service=\"model\",version=\"" EP_VERSION "\"} 1\n");
    s_assert_has (text, "edgeplane_requests_total{op=\"create\",code=\"OK\"} 1\n");
    s_assert_has (text, "edgeplane_request_duration_seconds_bucket{op=\"create\",le=\"0.025\"} 1\n");
    s_assert_has (text, "edgeplane_request_duration_seconds_count{op=\"create\"} 1\n");
    s_assert_has (text, "edgeplane_published_total{stream=\"model\"} 2\n");
    s_assert_has (text, "edgeplane_stream_gaps_total{stream=\"model\"} 1\n");
    s_assert_has (text, "# TYPE process_cpu_seconds_total counter\n");

    //  Process metrics come from this very process.
    double open_fds = s_sample (text, "process_open_fds ");
    double max_fds = s_sample (text, "process_max_fds ");
    cr_assert (open_fds >= 3 && open_fds <= max_fds, "open %g max %g", open_fds, max_fds);
    cr_assert_gt (s_sample (text, "process_resident_memory_bytes "), 1e5);
    cr_assert_gt (s_sample (text, "process_virtual_memory_bytes "),
                  s_sample (text, "process_resident_memory_bytes "));
    cr_assert_geq (s_sample (text, "process_cpu_seconds_total "), 0);
    double start = s_sample (text, "process_start_time_seconds ");
    double now = ep_wall_ms () / 1000.0;
    cr_assert (start > now - 600 && start < now + 2, "start %f now %f", start, now);

    //  One more fd shows at the next render.
    FILE *extra = fopen ("/dev/null", "r");
    free (text);
    text = ep_metrics_render (reg);
    cr_assert_eq (s_sample (text, "process_open_fds "), open_fds + 1);
    fclose (extra);
    free (text);
    ep_metrics_destroy (&reg);
}

//  A registry with every kind, labels needing escaping and the standard
//  metrics, as services will expose it.
static ep_metrics_t *
s_full_registry (void)
{
    ep_metrics_t *reg = ep_metrics_new ("promtool");
    ep_counter_inc (ep_metrics_counter (reg, "t_events_total", "Events, by \"kind\".\nSecond line \\.",
                                        1, (const char *[]) { "kind" }),
                    (const char *[]) { "back\\slash \"quoted\"\nnewline" }, 7);
    ep_gauge_set (ep_metrics_gauge (reg, "t_queue_depth", "Items queued.", 0, NULL), NULL, -3.25);
    ep_histogram_observe (ep_metrics_histogram (reg, "t_wait_seconds", "Waiting time.",
                                                2, (const char *[]) { "queue", "prio" },
                                                2, (const double []) { 0.1, 1 }),
                          (const char *[]) { "a\"b", "high" }, 0.5);
    ep_metrics_request_done (reg, "list", "OK", 0.001);
    return reg;
}

static int
s_promtool_check (const char *text)
{
    char *dir = ep_tmpdir_new ("metrics");
    char *path = zsys_sprintf ("%s/metrics.txt", dir);
    FILE *file = fopen (path, "w");
    cr_assert_not_null (file);
    fputs (text, file);
    fclose (file);
    char *command = zsys_sprintf ("/usr/bin/promtool check metrics < '%s' 2>&1", path);
    char *out = NULL;
    int status = ep_run (command, &out);
    if (status != 0)
        cr_log_info ("promtool (exit %d): %s", status, out);
    free (out);
    zstr_free (&command);
    zstr_free (&path);
    ep_tmpdir_remove (&dir);
    return status;
}

Test (metrics, promtool_accepts_rendering)
{
    ep_metrics_t *reg = s_full_registry ();
    char *text = ep_metrics_render (reg);
    cr_assert_eq (s_promtool_check (text), 0, "promtool rejected:\n%s", text);
    free (text);
    ep_metrics_destroy (&reg);
}

Test (metrics, promtool_rejects_broken_text)
{
    //  Proves the check above runs: an unescaped quote breaks the format.
    const char *broken = "# HELP t_x_total X.\n# TYPE t_x_total counter\n"
                         "t_x_total{a=\"un\"escaped\"} 1\n";
    cr_assert_neq (s_promtool_check (broken), 0);
}

typedef struct {
    ep_counter_t *counter;      //  updated through lookups
    ep_series_t *series;        //  the same series, updated directly
    ep_series_t *histogram;     //  a histogram series observed alongside
} race_t;

#define RACE_ROUNDS 50000

static void *
s_racer (void *arg)
{
    race_t *race = (race_t *) arg;
    for (int i = 0; i < RACE_ROUNDS; i++) {
        ep_series_add (race->series, 1);
        ep_counter_inc (race->counter, (const char *[]) { "shared" }, 1);
        ep_series_observe (race->histogram, 0.5);
    }
    return NULL;
}

Test (metrics, concurrent_updates_are_exact)
{
    ep_metrics_t *reg = ep_metrics_new ("test");
    race_t race;
    race.counter = ep_metrics_counter (reg, "t_race_total", "Race.", 1, (const char *[]) { "k" });
    race.series = ep_counter_series (race.counter, (const char *[]) { "shared" });
    race.histogram = ep_histogram_series (
        ep_metrics_histogram (reg, "t_race_seconds", "Race.", 0, NULL, 0, NULL), NULL);

    pthread_t threads [2];
    for (size_t i = 0; i < EP_COUNT (threads); i++)
        cr_assert_eq (pthread_create (&threads [i], NULL, s_racer, &race), 0);
    //  Render while they update, as the HTTP thread does.
    for (int i = 0; i < 20; i++)
        free (ep_metrics_render (reg));
    for (size_t i = 0; i < EP_COUNT (threads); i++)
        pthread_join (threads [i], NULL);

    cr_assert_eq (ep_series_value (race.series), 4 * RACE_ROUNDS);
    cr_assert_eq (ep_series_value (race.histogram), 2 * RACE_ROUNDS);
    char *text = ep_metrics_render (reg);
    cr_assert_eq (s_sample (text, "t_race_total{k=\"shared\"} "), 4 * RACE_ROUNDS);
    cr_assert_eq (s_sample (text, "t_race_seconds_sum "), RACE_ROUNDS);
    cr_assert_eq (s_sample (text, "t_race_seconds_count "), 2 * RACE_ROUNDS);
    free (text);
    ep_metrics_destroy (&reg);
}
