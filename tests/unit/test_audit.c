/*  test_audit.c: the audit log: lines, rotation, sync policies, failures. */
#include <criterion/criterion.h>
#include "ep_audit.h"
#include "ep_test.h"
#include <sys/stat.h>
#include <unistd.h>

static char *s_dir;
static char s_path [512];

static void
s_setup (void)
{
    s_dir = ep_tmpdir_new ("audit");
    snprintf (s_path, sizeof s_path, "%s/audit.jsonl", s_dir);
}

static void
s_teardown (void)
{
    ep_tmpdir_remove (&s_dir);
}

TestSuite (audit, .init = s_setup, .fini = s_teardown);

//  A record whose line length does not depend on n, for 10 <= n <= 99.
static json_t *
s_record (int n)
{
    return json_pack ("{s:i, s:s}", "n", n, "pad", "xxxxxxxx");
}

static size_t
s_line_size (void)
{
    json_t *record = s_record (10);
    char *text = json_dumps (record, JSON_COMPACT);
    size_t size = strlen (text) + 1;
    free (text);
    json_decref (record);
    return size;
}

static void
s_write (ep_audit_t *audit, int from, int to)
{
    for (int n = from; n <= to; n++) {
        json_t *record = s_record (n);
        cr_assert_eq (ep_audit_write (audit, record), 0, "%s", ep_audit_error (audit));
        json_decref (record);
    }
}

//  The n of every line of file, comma-separated ("10,11,12"); "-" when the
//  file does not exist. Asserts that every line is one JSON object.
static char *
s_ns (const char *file)
{
    FILE *in = fopen (file, "r");
    if (!in)
        return strdup ("-");
    char *ns = strdup ("");
    char line [1024];
    while (fgets (line, sizeof line, in)) {
        cr_assert (strchr (line, '\n'), "every line ends with a newline");
        json_error_t error;
        json_t *record = json_loads (line, 0, &error);
        cr_assert (json_is_object (record), "not one JSON object: %s (%s)", line, error.text);
        char *more = zsys_sprintf ("%s%s%d", ns, *ns? ",": "",
                                   (int) json_integer_value (json_object_get (record, "n")));
        free (ns);
        ns = more;
        json_decref (record);
    }
    fclose (in);
    return ns;
}

static void
s_assert_ns (const char *file, const char *expected)
{
    char *ns = s_ns (file);
    cr_assert_str_eq (ns, expected, "%s", file);
    free (ns);
}

static void
s_assert_backup (int i, const char *expected)
{
    char file [600];
    snprintf (file, sizeof file, "%s.%d", s_path, i);
    s_assert_ns (file, expected);
}

Test (audit, lines_are_appended_and_each_parses)
{
    char err [512] = "";
    ep_audit_t *audit = ep_audit_new (s_path, 0, 3, EP_AUDIT_SYNC_NEVER, err, sizeof err);
    cr_assert_not_null (audit, "%s", err);
    s_write (audit, 10, 14);
    //  A newline inside a value is escaped: still one line per record.
    json_t *record = json_pack ("{s:i, s:s}", "n", 15, "text", "two\nlines");
    cr_assert_eq (ep_audit_write (audit, record), 0);
    json_decref (record);
    cr_assert_eq (ep_audit_lines (audit), 6);
    cr_assert_eq (ep_audit_errors (audit), 0);
    s_assert_ns (s_path, "10,11,12,13,14,15");
    ep_audit_destroy (&audit);
    cr_assert_null (audit);
}

Test (audit, new_file_has_mode_0640)
{
    umask (022);
    char err [512];
    ep_audit_t *audit = ep_audit_new (s_path, 0, 1, EP_AUDIT_SYNC_NEVER, err, sizeof err);
    cr_assert_not_null (audit, "%s", err);
    struct stat st;
    cr_assert_eq (stat (s_path, &st), 0);
    cr_assert_eq (st.st_mode & 0777, 0640, "mode %o", st.st_mode & 0777);
    ep_audit_destroy (&audit);
}

Test (audit, rotation_keeps_n_backups_newest_in_live_file)
{
    size_t line = s_line_size ();
    char err [512];
    //  Exactly three lines fit in a file.
    ep_audit_t *audit = ep_audit_new (s_path, 3 * line, 2, EP_AUDIT_SYNC_NEVER, err, sizeof err);
    cr_assert_not_null (audit, "%s", err);
    s_write (audit, 10, 12);
    //  A file filled exactly to max_bytes has not rotated yet.
    s_assert_ns (s_path, "10,11,12");
    s_assert_backup (1, "-");
    s_write (audit, 13, 13);
    s_assert_ns (s_path, "13");
    s_assert_backup (1, "10,11,12");
    s_write (audit, 14, 20);
    s_assert_ns (s_path, "19,20");
    s_assert_backup (1, "16,17,18");
    s_assert_backup (2, "13,14,15");
    s_assert_backup (3, "-");
    cr_assert_eq (ep_audit_lines (audit), 11);
    cr_assert_eq (ep_audit_errors (audit), 0);
    ep_audit_destroy (&audit);
}

Test (audit, rotated_file_is_fresh_with_mode_0640)
{
    umask (022);
    size_t line = s_line_size ();
    char err [512];
    ep_audit_t *audit = ep_audit_new (s_path, line, 1, EP_AUDIT_SYNC_ALWAYS, err, sizeof err);
    cr_assert_not_null (audit, "%s", err);
    s_write (audit, 10, 11);
    struct stat st;
    cr_assert_eq (stat (s_path, &st), 0);
    cr_assert_eq (st.st_mode & 0777, 0640, "mode %o", st.st_mode & 0777);
    cr_assert_eq (st.st_size, (off_t) line);
    s_assert_backup (1, "10");
    ep_audit_destroy (&audit);
}

Test (audit, no_backups_truncates_and_restarts)
{
    size_t line = s_line_size ();
    char err [512];
    ep_audit_t *audit = ep_audit_new (s_path, 3 * line, 0, EP_AUDIT_SYNC_NEVER, err, sizeof err);
    cr_assert_not_null (audit, "%s", err);
    s_write (audit, 10, 16);
    s_assert_ns (s_path, "16");
    s_assert_backup (1, "-");
    cr_assert_eq (ep_audit_errors (audit), 0);
    ep_audit_destroy (&audit);
}

Test (audit, reopen_appends_and_counts_the_existing_size)
{
    size_t line = s_line_size ();
    char err [512];
    ep_audit_t *audit = ep_audit_new (s_path, 0, 1, EP_AUDIT_SYNC_NEVER, err, sizeof err);
    cr_assert_not_null (audit, "%s", err);
    s_write (audit, 10, 11);
    ep_audit_destroy (&audit);

    audit = ep_audit_new (s_path, 3 * line, 1, EP_AUDIT_SYNC_NEVER, err, sizeof err);
    cr_assert_not_null (audit, "%s", err);
    s_write (audit, 12, 12);
    s_assert_ns (s_path, "10,11,12");
    //  The two lines from before count towards the size limit.
    s_write (audit, 13, 13);
    s_assert_ns (s_path, "13");
    s_assert_backup (1, "10,11,12");
    cr_assert_eq (ep_audit_lines (audit), 2, "lines counts this writer's lines");
    ep_audit_destroy (&audit);
}

Test (audit, always_syncs_every_line_and_never_does_not)
{
    char err [512];
    ep_audit_t *audit = ep_audit_new (s_path, 0, 1, EP_AUDIT_SYNC_ALWAYS, err, sizeof err);
    cr_assert_not_null (audit, "%s", err);
    s_write (audit, 10, 12);
    cr_assert_eq (ep_audit_syncs (audit), 3);
    cr_assert_eq (ep_audit_tick (audit, 0), -1, "nothing is left for the tick");
    ep_audit_destroy (&audit);

    audit = ep_audit_new (s_path, 0, 1, EP_AUDIT_SYNC_NEVER, err, sizeof err);
    cr_assert_not_null (audit, "%s", err);
    s_write (audit, 13, 15);
    cr_assert_eq (ep_audit_tick (audit, 1000000), -1);
    cr_assert_eq (ep_audit_syncs (audit), 0);
    ep_audit_destroy (&audit);
    s_assert_ns (s_path, "10,11,12,13,14,15");
}

Test (audit, interval_syncs_at_most_once_per_interval)
{
    char err [512];
    ep_audit_t *audit = ep_audit_new (s_path, 0, 1, EP_AUDIT_SYNC_INTERVAL, err, sizeof err);
    cr_assert_not_null (audit, "%s", err);
    cr_assert_eq (ep_audit_tick (audit, 5000), -1, "nothing written, nothing pending");
    cr_assert_eq (ep_audit_syncs (audit), 0);

    s_write (audit, 10, 10);
    cr_assert_eq (ep_audit_syncs (audit), 0, "writing does not sync");
    cr_assert_eq (ep_audit_tick (audit, 5000), -1, "the first tick syncs at once");
    cr_assert_eq (ep_audit_syncs (audit), 1);

    s_write (audit, 11, 12);
    cr_assert_eq (ep_audit_tick (audit, 5200), 800);
    cr_assert_eq (ep_audit_tick (audit, 5999), 1);
    cr_assert_eq (ep_audit_syncs (audit), 1);
    cr_assert_eq (ep_audit_tick (audit, 6000), -1);
    cr_assert_eq (ep_audit_syncs (audit), 2);
    cr_assert_eq (ep_audit_tick (audit, 9000), -1, "nothing new, no sync");
    cr_assert_eq (ep_audit_syncs (audit), 2);

    ep_audit_set_interval (audit, 50);
    s_write (audit, 13, 13);
    cr_assert_eq (ep_audit_tick (audit, 9010), -1);
    cr_assert_eq (ep_audit_syncs (audit), 3);
    cr_assert_eq (ep_audit_errors (audit), 0);
    ep_audit_destroy (&audit);
}

Test (audit, sync_policy_names)
{
    ep_audit_sync_t sync;
    cr_assert_eq (ep_audit_sync_parse ("never", &sync), 0);
    cr_assert_eq (sync, EP_AUDIT_SYNC_NEVER);
    cr_assert_eq (ep_audit_sync_parse ("interval", &sync), 0);
    cr_assert_eq (sync, EP_AUDIT_SYNC_INTERVAL);
    cr_assert_eq (ep_audit_sync_parse ("always", &sync), 0);
    cr_assert_eq (sync, EP_AUDIT_SYNC_ALWAYS);
    cr_assert_eq (ep_audit_sync_parse ("sometimes", &sync), -1);
    cr_assert_eq (ep_audit_sync_parse (NULL, &sync), -1);
    cr_assert_str_eq (ep_audit_sync_name (EP_AUDIT_SYNC_INTERVAL), "interval");
}

Test (audit, unopenable_path_names_it_and_says_what_to_do)
{
    char err [512] = "";
    const char *path = "/nonexistent-edgeplane-dir/audit.jsonl";
    ep_audit_t *audit = ep_audit_new (path, 0, 1, EP_AUDIT_SYNC_NEVER, err, sizeof err);
    cr_assert_null (audit);
    cr_assert (strstr (err, path), "%s", err);
    cr_assert (strstr (err, "No such file or directory"), "%s", err);
    cr_assert (strstr (err, "make sure its directory exists"), "%s", err);

    //  A directory where the file should be.
    audit = ep_audit_new (s_dir, 0, 1, EP_AUDIT_SYNC_NEVER, err, sizeof err);
    cr_assert_null (audit);
    cr_assert (strstr (err, s_dir), "%s", err);
}

Test (audit, disk_full_is_counted_not_fatal)
{
    char err [512];
    ep_audit_t *audit = ep_audit_new ("/dev/full", 0, 1, EP_AUDIT_SYNC_ALWAYS, err, sizeof err);
    cr_assert_not_null (audit, "%s", err);
    json_t *record = s_record (10);
    cr_assert_eq (ep_audit_write (audit, record), -1);
    cr_assert_eq (ep_audit_write (audit, record), -1);
    json_decref (record);
    cr_assert_eq (ep_audit_errors (audit), 2);
    cr_assert_eq (ep_audit_lines (audit), 0);
    cr_assert (strstr (ep_audit_error (audit), "/dev/full"), "%s", ep_audit_error (audit));
    cr_assert (strstr (ep_audit_error (audit), "No space left on device"), "%s",
               ep_audit_error (audit));
    ep_audit_destroy (&audit);
}

Test (audit, failed_rotation_keeps_the_line_and_reports)
{
    size_t line = s_line_size ();
    char backup [600];
    snprintf (backup, sizeof backup, "%s.1", s_path);
    //  A directory in the way of path.1: renaming the live file onto it fails.
    cr_assert_eq (mkdir (backup, 0755), 0);
    char err [512];
    ep_audit_t *audit = ep_audit_new (s_path, line, 1, EP_AUDIT_SYNC_NEVER, err, sizeof err);
    cr_assert_not_null (audit, "%s", err);
    s_write (audit, 10, 10);
    json_t *record = s_record (11);
    cr_assert_eq (ep_audit_write (audit, record), -1);
    json_decref (record);
    cr_assert_eq (ep_audit_errors (audit), 1);
    cr_assert (strstr (ep_audit_error (audit), "cannot rename"), "%s", ep_audit_error (audit));
    s_assert_ns (s_path, "10,11");
    cr_assert_eq (ep_audit_lines (audit), 2);
    ep_audit_destroy (&audit);
}

Test (audit, record_that_is_not_json_text_is_refused)
{
    char err [512];
    ep_audit_t *audit = ep_audit_new (s_path, 0, 1, EP_AUDIT_SYNC_NEVER, err, sizeof err);
    cr_assert_not_null (audit, "%s", err);
    json_t *scalar = json_integer (7);
    cr_assert_eq (ep_audit_write (audit, scalar), -1);
    json_decref (scalar);
    cr_assert_eq (ep_audit_errors (audit), 1);
    cr_assert_eq (ep_audit_lines (audit), 0);
    s_write (audit, 10, 10);
    s_assert_ns (s_path, "10");
    ep_audit_destroy (&audit);
}
