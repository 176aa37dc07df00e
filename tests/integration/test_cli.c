/*  test_cli.c: the edgeplane command-line tool against a real bus. */
#include <criterion/criterion.h>
#include "ep_test.h"
#include "ep_keys.h"
#include "ep_publisher.h"
#include <sys/stat.h>

static char *s_dir;             //  data dir of this test
static char *s_env_data;        //  "EDGEPLANE_DATA_DIR=..."

static void
s_setup (void)
{
    s_dir = ep_tmpdir_new ("cli");
    s_env_data = zsys_sprintf ("EDGEPLANE_DATA_DIR=%s", s_dir);
}

static void
s_teardown (void)
{
    zstr_free (&s_env_data);
    ep_tmpdir_remove (&s_dir);
}

//  Runs the CLI with args; returns its exit status, output in *out.
static int
s_cli (const char *args, char **out)
{
    char *cmd = zsys_sprintf ("EDGEPLANE_DATA_DIR='%s' '%s/edgeplane' %s 2>&1", s_dir, EP_BIN_DIR, args);
    int rc = ep_run (cmd, out);
    free (cmd);
    return rc;
}

static ep_proc_t *
s_bus (void)
{
    const char *args [] = { "--pub-listen", "tcp://127.0.0.1:*", "--sub-listen", "tcp://127.0.0.1:*",
                            "--http-listen", "127.0.0.1:0", NULL };
    const char *env [] = { s_env_data, NULL };
    return ep_proc_start ("edgeplane-bus", args, env, 10000);
}

static ep_publisher_t *
s_publisher (ep_proc_t *bus, zcert_t **cert_p)
{
    char *keys = zsys_sprintf ("%s/keys", s_dir);
    *cert_p = ep_keys_load (keys, "watchdog");
    char *key = ep_keys_public_txt (keys, "bus");
    ep_publisher_t *pub = ep_publisher_new (ep_proc_connect_endpoint (bus, "pub"),
                                            *cert_p, key, "watchdog-test", 65536);
    ep_publisher_set_heartbeat (pub, 50);
    ep_publisher_declare (pub, "connect");
    ep_publisher_declare (pub, "stray");
    free (key);
    free (keys);
    return pub;
}

//  Starts `edgeplane events ARGS` and ticks pub until it is ready.
static ep_proc_t *
s_events (const char *const *args, ep_publisher_t *pub)
{
    const char *env [] = { s_env_data, NULL };
    ep_proc_t *events = ep_proc_spawn ("edgeplane", args, env);
    int64_t deadline = ep_mono_ms () + 15000;
    while (ep_proc_wait_ready (events, 20) != 0 && ep_mono_ms () < deadline)
        ep_publisher_tick (pub);
    cr_assert_not_null (ep_proc_endpoint (events, "bus"), "edgeplane events never became ready");
    return events;
}

static void
s_connect_event (ep_publisher_t *pub, const char *topic, const char *router)
{
    Ep__ConnectEvent body = EP__CONNECT_EVENT__INIT;
    body.type = strchr (topic, '.') + 1;
    body.src_type = "router";
    body.src_id = (char *) router;
    body.src_addr = "127.0.0.1:40000";
    body.dst_type = "ctrl";
    body.dst_id = "watchdog-test";
    body.dst_addr = "127.0.0.1:6262";
    body.has_connected = true;
    body.connected = true;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_CONNECT;
    event.connect = &body;
    cr_assert_eq (ep_publisher_send (pub, topic, &event), 0);
}

static bool
s_exited (void *arg)
{
    return ep_proc_wait_exit ((ep_proc_t *) arg, 0) != -1;
}

Test (cli, pki_init_is_idempotent_and_secrets_are_private, .init = s_setup, .fini = s_teardown)
{
    char *out = NULL;
    cr_assert_eq (s_cli ("pki init", &out), 0, "%s", out);
    free (out);
    char *path = zsys_sprintf ("%s/keys/curve/bus.cert", s_dir);
    char *before = NULL, *after = NULL;
    char *cat = zsys_sprintf ("cat '%s'", path);
    ep_run (cat, &before);
    cr_assert_eq (s_cli ("pki init", &out), 0, "%s", out);
    free (out);
    ep_run (cat, &after);
    cr_assert_str_eq (before, after, "a second init must keep the keys");
    struct stat st;
    char *secret = zsys_sprintf ("%s/keys/curve/model.cert_secret", s_dir);
    cr_assert_eq (stat (secret, &st), 0);
    cr_assert_eq (st.st_mode & 0777, 0600);
    free (before);
    free (after);
    free (cat);
    free (secret);
    free (path);
}

Test (cli, usage_errors_exit_2_with_a_reason, .init = s_setup, .fini = s_teardown)
{
    char *out = NULL;
    cr_assert_eq (s_cli ("no-such-command", &out), 2);
    cr_assert (strstr (out, "unknown command"), "%s", out);
    free (out);
    cr_assert_eq (s_cli ("health", &out), 2);
    cr_assert (strstr (out, "URL"), "%s", out);
    free (out);
    cr_assert_eq (s_cli ("pki issue-curve admin x", &out), 2);
    cr_assert (strstr (out, "subscriber, operator"), "%s", out);
    free (out);
    cr_assert_eq (s_cli ("events --count=-1", &out), 2);
    free (out);
    cr_assert_eq (s_cli ("events --help", &out), 0);
    cr_assert (strstr (out, "--exec") && strstr (out, "EDGEPLANE_BUS_SUB"), "%s", out);
    free (out);
}

//  A service that cannot start: `up` stops, names it, and shows why (the
//  last lines of its log), so the user need not go looking.
Test (cli, up_shows_why_a_service_did_not_start, .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    char *out = NULL;
    char *cmd = zsys_sprintf ("EDGEPLANE_DATA_DIR='%s' EDGEPLANE_BUS_PUB_LISTEN=tcp://127.0.0.1:99999 "
                              "'%s/edgeplane' up 2>&1", s_dir, EP_BIN_DIR);
    cr_assert_eq (ep_run (cmd, &out), 1, "%s", out);
    free (cmd);
    cr_assert (strstr (out, "bus did not become ready"), "%s", out);
    cr_assert (strstr (out, "the last lines of"), "%s", out);
    cr_assert (strstr (out, "expected a ZeroMQ endpoint"), "the bus's own reason is shown: %s", out);
    free (out);
}

Test (cli, health_checks_a_real_service, .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    char *out = NULL;
    cr_assert_eq (s_cli ("pki init", &out), 0);
    free (out);
    ep_proc_t *bus = s_bus ();
    cr_assert_not_null (bus);
    char *args = zsys_sprintf ("health %s/readyz", ep_proc_endpoint (bus, "http"));
    cr_assert_eq (s_cli (args, &out), 0, "%s", out);
    cr_assert (strstr (out, "ready"), "%s", out);
    free (out);
    free (args);
    cr_assert_eq (s_cli ("health http://127.0.0.1:1/healthz", &out), 1);
    cr_assert (strstr (out, "cannot connect"), "%s", out);
    free (out);
    ep_proc_destroy (&bus);
}

Test (cli, events_json_filters_by_namespace_and_type, .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    char *out = NULL;
    cr_assert_eq (s_cli ("pki init", &out), 0);
    free (out);
    ep_proc_t *bus = s_bus ();
    cr_assert_not_null (bus);
    zcert_t *cert;
    ep_publisher_t *pub = s_publisher (bus, &cert);
    char *bus_sub = zsys_sprintf ("--bus-sub=%s", ep_proc_connect_endpoint (bus, "sub"));
    const char *args [] = { "events", "--json", "--namespace", "connect", "--type", "router-to-ctrl",
                            "--count", "2", bus_sub, NULL };
    ep_proc_t *events = s_events (args, pub);
    s_connect_event (pub, "connect.ctrl-to-ctrl", "peer");     //  other type: filtered out
    s_connect_event (pub, "connect.router-to-ctrl", "r1");
    s_connect_event (pub, "connect.router-to-ctrl", "r2");
    cr_assert (ep_wait_until (s_exited, events, 10000), "events did not stop after --count 2");
    char *log = ep_proc_log (events);
    char *save = NULL;
    int lines = 0;
    for (char *line = strtok_r (log, "\n", &save); line; line = strtok_r (NULL, "\n", &save)) {
        json_error_t error;
        json_t *json = json_loads (line, 0, &error);
        cr_assert_not_null (json, "not JSON: %s", line);
        cr_assert_str_eq (json_string_value (json_object_get (json, "namespace")), "connect");
        cr_assert_str_eq (json_string_value (json_object_get (json, "type")), "router-to-ctrl");
        cr_assert_str_eq (json_string_value (json_object_get (json, "src_id")), lines == 0? "r1": "r2");
        cr_assert_str_eq (json_string_value (json_object_get (json, "event_src_id")), "watchdog-test");
        json_decref (json);
        lines++;
    }
    cr_assert_eq (lines, 2);
    free (log);
    //  The output validates against the published schema.
    char *jsonl = zsys_sprintf ("%s/events.jsonl", s_dir);
    log = ep_proc_log (events);
    FILE *file = fopen (jsonl, "w");
    fputs (log, file);
    fclose (file);
    char *validate = zsys_sprintf ("/usr/bin/python3 %s/tests/support/validate_events.py "
                                   "%s/docs/events.schema.json '%s' 2>&1",
                                   EP_SOURCE_DIR, EP_SOURCE_DIR, jsonl);
    char *verdict = NULL;
    cr_assert_eq (ep_run (validate, &verdict), 0, "%s", verdict);
    free (verdict);
    free (validate);
    free (jsonl);
    free (log);
    free (bus_sub);
    ep_proc_destroy (&events);
    ep_publisher_destroy (&pub);
    zcert_destroy (&cert);
    ep_proc_destroy (&bus);
}

Test (cli, events_exec_runs_per_event_and_survives_a_failing_command,
      .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    char *out = NULL;
    cr_assert_eq (s_cli ("pki init", &out), 0);
    free (out);
    ep_proc_t *bus = s_bus ();
    zcert_t *cert;
    ep_publisher_t *pub = s_publisher (bus, &cert);
    char *bus_sub = zsys_sprintf ("--bus-sub=%s", ep_proc_connect_endpoint (bus, "sub"));
    //  The command appends its stdin to a file, and fails on r1's event.
    char *sink = zsys_sprintf ("%s/sink.jsonl", s_dir);
    char *cmd = zsys_sprintf ("--exec=cat >> '%s'; grep -q '\"src_id\":\"r1\"' '%s' && "
                              "! grep -q r2 '%s' && exit 3; exit 0", sink, sink, sink);
    const char *args [] = { "events", "--namespace", "connect", "--count", "2", bus_sub, cmd, NULL };
    ep_proc_t *events = s_events (args, pub);
    s_connect_event (pub, "connect.router-to-ctrl", "r1");
    s_connect_event (pub, "connect.router-to-ctrl", "r2");
    cr_assert (ep_wait_until (s_exited, events, 10000));
    char *log = ep_proc_log (events);
    cr_assert (strstr (log, "--exec command failed (status 3)"), "%s", log);
    char *cat = zsys_sprintf ("cat '%s'", sink);
    char *sunk = NULL;
    ep_run (cat, &sunk);
    cr_assert (strstr (sunk, "\"src_id\":\"r1\"") && strstr (sunk, "\"src_id\":\"r2\""),
               "both events reach the command: %s", sunk);
    free (sunk);
    free (cat);
    free (log);
    free (cmd);
    free (sink);
    free (bus_sub);
    ep_proc_destroy (&events);
    ep_publisher_destroy (&pub);
    zcert_destroy (&cert);
    ep_proc_destroy (&bus);
}

Test (cli, issued_subscriber_is_accepted_without_restarting_the_bus,
      .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    char *out = NULL;
    cr_assert_eq (s_cli ("pki init", &out), 0);
    free (out);
    ep_proc_t *bus = s_bus ();
    zcert_t *cert;
    ep_publisher_t *pub = s_publisher (bus, &cert);
    //  Issued after the bus started.
    char *issue = zsys_sprintf ("pki issue-curve subscriber grafana --out '%s/bundle'", s_dir);
    cr_assert_eq (s_cli (issue, &out), 0, "%s", out);
    free (out);
    char *cert_arg = zsys_sprintf ("--cert=%s/bundle/grafana.cert_secret", s_dir);
    char *key_arg = zsys_sprintf ("--server-key=%s/bundle/bus.cert", s_dir);
    char *bus_sub = zsys_sprintf ("--bus-sub=%s", ep_proc_connect_endpoint (bus, "sub"));
    const char *args [] = { "events", "--json", "--namespace", "stray", "--count", "1",
                            cert_arg, key_arg, bus_sub, NULL };
    ep_proc_t *events = s_events (args, pub);
    Ep__StrayEvent body = EP__STRAY_EVENT__INIT;
    body.remote_addr = "127.0.0.1:5555";
    body.step = "await-hello";
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_STRAY;
    event.stray = &body;
    cr_assert_eq (ep_publisher_send (pub, "stray.detected", &event), 0);
    cr_assert (ep_wait_until (s_exited, events, 10000));
    char *log = ep_proc_log (events);
    cr_assert (strstr (log, "\"step\":\"await-hello\""), "%s", log);
    free (log);
    free (issue);
    free (cert_arg);
    free (key_arg);
    free (bus_sub);
    ep_proc_destroy (&events);
    ep_publisher_destroy (&pub);
    zcert_destroy (&cert);
    ep_proc_destroy (&bus);
}
