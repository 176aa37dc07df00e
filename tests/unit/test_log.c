/*  test_log.c: log records, both forms, level filtering, whole lines. */
#include <criterion/criterion.h>
#include "ep_test.h"
#include "ep_log.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <unistd.h>

//  A pipe the log writes into; records are read back from its other end.
static int s_pipe [2];

static void
s_capture (void)
{
    EP_ASSERT (pipe2 (s_pipe, O_NONBLOCK | O_CLOEXEC) == 0);
    ep_log_set_fd (s_pipe [1]);
}

//  Everything logged so far (records are written synchronously). Caller frees.
static char *
s_captured (void)
{
    static char buf [65536];
    ssize_t n = read (s_pipe [0], buf, sizeof buf - 1);
    buf [n > 0 ? n : 0] = 0;
    return strdup (buf);
}

static bool
s_matches (const char *text, const char *pattern)
{
    regex_t re;
    EP_ASSERT (regcomp (&re, pattern, REG_EXTENDED | REG_NOSUB) == 0);
    bool ok = regexec (&re, text, 0, NULL, 0) == 0;
    regfree (&re);
    return ok;
}

#define S_TS "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z"

//  Milliseconds since the epoch of an RFC 3339 UTC timestamp with ms.
static int64_t
s_parse_ts (const char *ts)
{
    struct tm tm = { 0 };
    const char *rest = strptime (ts, "%Y-%m-%dT%H:%M:%S", &tm);
    cr_assert_not_null (rest);
    int ms;
    cr_assert_eq (sscanf (rest, ".%3dZ", &ms), 1);
    return (int64_t) timegm (&tm) * 1000 + ms;
}

Test (log, text_record_has_timestamp_level_service_message)
{
    s_capture ();
    ep_log_init ("model", EP_LOG_INFO, EP_LOG_TEXT);
    int64_t before = ep_wall_ms ();
    ep_log_info ("router %s joined after %d ms", "r1", 42);
    int64_t after = ep_wall_ms ();
    char *out = s_captured ();
    cr_assert (s_matches (out, "^" S_TS " info model: router r1 joined after 42 ms\n$"),
               "got: %s", out);
    int64_t ts = s_parse_ts (out);
    cr_assert (ts >= before - 1 && ts <= after, "timestamp %s is not now", out);
    free (out);
}

Test (log, json_record_has_every_field)
{
    s_capture ();
    ep_log_init ("reaper", EP_LOG_DEBUG, EP_LOG_JSON);
    int64_t before = ep_wall_ms ();
    ep_log_warn ("session %s \"expired\"\nafter %ds", "s-1", 90);
    int64_t after = ep_wall_ms ();
    char *out = s_captured ();
    //  Exactly one line, the message's newline escaped inside it.
    char *nl = strchr (out, '\n');
    cr_assert_not_null (nl);
    cr_assert_eq (nl [1], 0, "more than one line: %s", out);
    json_error_t error;
    json_t *doc = json_loads (out, 0, &error);
    cr_assert_not_null (doc, "not JSON: %s (%s)", out, error.text);
    cr_assert_eq (json_object_size (doc), 4);
    cr_assert_str_eq (json_string_value (json_object_get (doc, "level")), "warn");
    cr_assert_str_eq (json_string_value (json_object_get (doc, "service")), "reaper");
    cr_assert_str_eq (json_string_value (json_object_get (doc, "msg")),
                      "session s-1 \"expired\"\nafter 90s");
    const char *ts = json_string_value (json_object_get (doc, "ts"));
    cr_assert (ts && s_matches (ts, "^" S_TS "$"), "ts: %s", ts);
    int64_t ms = s_parse_ts (ts);
    cr_assert (ms >= before - 1 && ms <= after);
    //  Fields in the documented order, for people reading raw lines.
    cr_assert (strstr (out, "{\"ts\":") == out, "got: %s", out);
    json_decref (doc);
    free (out);
}

Test (log, json_survives_invalid_utf8)
{
    s_capture ();
    ep_log_init ("bus", EP_LOG_INFO, EP_LOG_JSON);
    ep_log_error ("bad byte \xff here");
    char *out = s_captured ();
    json_t *doc = json_loads (out, 0, NULL);
    cr_assert_not_null (doc, "got: %s", out);
    cr_assert_str_eq (json_string_value (json_object_get (doc, "msg")), "bad byte ? here");
    json_decref (doc);
    free (out);
}

Test (log, text_record_stays_on_one_line)
{
    s_capture ();
    ep_log_init ("bus", EP_LOG_INFO, EP_LOG_TEXT);
    ep_log_error ("two\nlines\r and \x1b[31mescape");
    char *out = s_captured ();
    cr_assert (s_matches (out, "^" S_TS " error bus: two lines  and  \\[31mescape\n$"),
               "got: %s", out);
    free (out);
}

Test (log, level_filtering)
{
    s_capture ();
    ep_log_init ("watchdog", EP_LOG_WARN, EP_LOG_TEXT);
    cr_assert (ep_log_enabled (EP_LOG_ERROR));
    cr_assert (ep_log_enabled (EP_LOG_WARN));
    cr_assert (!ep_log_enabled (EP_LOG_INFO));
    cr_assert (!ep_log_enabled (EP_LOG_DEBUG));
    ep_log_debug ("d");
    ep_log_info ("i");
    ep_log_warn ("w");
    ep_log_error ("e");
    char *out = s_captured ();
    cr_assert (s_matches (out, "^" S_TS " warn watchdog: w\n" S_TS " error watchdog: e\n$"),
               "got: %s", out);
    free (out);

    ep_log_set_level (EP_LOG_DEBUG);
    cr_assert_eq (ep_log_level (), EP_LOG_DEBUG);
    ep_log_debug ("now visible");
    out = s_captured ();
    cr_assert (s_matches (out, "^" S_TS " debug watchdog: now visible\n$"), "got: %s", out);
    free (out);

    ep_log_set_level (EP_LOG_ERROR);
    ep_log_warn ("hidden");
    out = s_captured ();
    cr_assert_str_empty (out);
    free (out);
}

Test (log, a_level_chosen_at_run_time_is_written_and_filtered_like_the_fixed_ones)
{
    s_capture ();
    ep_log_init ("watchdog", EP_LOG_INFO, EP_LOG_TEXT);
    ep_log_at (EP_LOG_ERROR, "stray %d", 1);
    ep_log_at (EP_LOG_WARN, "stray %d", 2);
    ep_log_at (EP_LOG_INFO, "stray %d", 3);
    ep_log_at (EP_LOG_DEBUG, "stray %d", 4);
    char *out = s_captured ();
    cr_assert (s_matches (out, "^" S_TS " error watchdog: stray 1\n" S_TS " warn watchdog: stray 2\n"
                          S_TS " info watchdog: stray 3\n$"), "got: %s", out);
    free (out);
}

Test (log, names_parse)
{
    ep_log_level_t level;
    ep_log_format_t format;
    const char *names [] = { "error", "warn", "info", "debug" };
    for (size_t i = 0; i < EP_COUNT (names); i++) {
        cr_assert_eq (ep_log_level_parse (names [i], &level), 0);
        cr_assert_eq (level, (ep_log_level_t) i);
        cr_assert_str_eq (ep_log_level_name (level), names [i]);
    }
    //  The words options take are the same names, in level order.
    for (size_t i = 0; i < EP_COUNT (names); i++)
        cr_assert_str_eq (ep_log_level_names [i], names [i]);
    cr_assert_null (ep_log_level_names [EP_COUNT (names)]);
    cr_assert_eq (ep_log_level_parse ("verbose", &level), -1);
    cr_assert_eq (ep_log_level_parse (NULL, &level), -1);
    cr_assert_eq (ep_log_format_parse ("json", &format), 0);
    cr_assert_eq (format, EP_LOG_JSON);
    cr_assert_eq (ep_log_format_parse ("text", &format), 0);
    cr_assert_eq (format, EP_LOG_TEXT);
    cr_assert_eq (ep_log_format_parse ("xml", &format), -1);

    s_capture ();
    cr_assert_eq (ep_log_init_named ("terminators", "debug", "json"), 0);
    cr_assert_eq (ep_log_level (), EP_LOG_DEBUG);
    cr_assert_eq (ep_log_init_named ("x", "loud", "json"), -1);
    cr_assert_eq (ep_log_level (), EP_LOG_DEBUG, "a refused init changed the level");
    ep_log_debug ("still terminators");
    char *out = s_captured ();
    json_t *doc = json_loads (out, 0, NULL);
    cr_assert_not_null (doc, "got: %s", out);
    cr_assert_str_eq (json_string_value (json_object_get (doc, "service")), "terminators");
    json_decref (doc);
    free (out);
}

Test (log, keeps_errno)
{
    s_capture ();
    errno = ENOENT;
    ep_log_info ("x");
    cr_assert_eq (errno, ENOENT);
}

//  Threads logging at once into one file: every line must come out whole.
#define S_THREADS 4
#define S_RECORDS 500

static void *
s_logger (void *arg)
{
    int id = (int) (intptr_t) arg;
    for (int i = 0; i < S_RECORDS; i++)
        ep_log_info ("thread %d record %d padding %0200d", id, i, 0);
    return NULL;
}

Test (log, threads_do_not_interleave)
{
    char *dir = ep_tmpdir_new ("log");
    char *path = zsys_sprintf ("%s/log", dir);
    int fd = open (path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    cr_assert_geq (fd, 0);
    ep_log_set_fd (fd);
    ep_log_init ("model", EP_LOG_INFO, EP_LOG_TEXT);
    pthread_t threads [S_THREADS];
    for (int t = 0; t < S_THREADS; t++)
        cr_assert_eq (pthread_create (&threads [t], NULL, s_logger, (void *) (intptr_t) t), 0);
    for (int t = 0; t < S_THREADS; t++)
        pthread_join (threads [t], NULL);
    ep_log_set_fd (-1);
    close (fd);

    FILE *file = fopen (path, "r");
    cr_assert_not_null (file);
    char line [1024];
    int lines = 0;
    int next [S_THREADS] = { 0 };
    regex_t re;
    EP_ASSERT (regcomp (&re, "^" S_TS " info model: thread [0-9] record [0-9]+ padding 0{200}\n$",
                        REG_EXTENDED | REG_NOSUB) == 0);
    while (fgets (line, sizeof line, file)) {
        cr_assert_eq (regexec (&re, line, 0, NULL, 0), 0, "broken line: %s", line);
        int id, record;
        cr_assert_eq (sscanf (strstr (line, "thread "), "thread %d record %d", &id, &record), 2);
        cr_assert_eq (record, next [id]++, "thread %d lost or reordered a record", id);
        lines++;
    }
    regfree (&re);
    fclose (file);
    cr_assert_eq (lines, S_THREADS * S_RECORDS);
    zstr_free (&path);
    ep_tmpdir_remove (&dir);
}
