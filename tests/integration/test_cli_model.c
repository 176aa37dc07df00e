/*  test_cli_model.c: `edgeplane router|service|identity|controller ...` and
    `edgeplane backup` against a real edgeplane-model (and bus). */
#include <criterion/criterion.h>
#include "ep_test.h"
#include <jansson.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static char *s_dir;             //  data dir of this test
static char *s_env_data;        //  "EDGEPLANE_DATA_DIR=..."
static ep_proc_t *s_bus;        //  the bus the model publishes to
static ep_proc_t *s_model;      //  the model service
static char *s_api;             //  "--model-api=<the model's endpoint>"

//  Runs `edgeplane ARGS` (plus s_api when set); returns its exit status,
//  its stdout in *out and its stderr in *err (either may be NULL).
static int
s_cli (const char *args, char **out, char **err)
{
    char *err_file = zsys_sprintf ("%s/cli.stderr", s_dir);
    char *cmd = zsys_sprintf ("cd '%s' && EDGEPLANE_DATA_DIR='%s' '%s/edgeplane' %s %s 2>'%s'",
                              s_dir, s_dir, EP_BIN_DIR, args, s_api? s_api: "", err_file);
    int rc = ep_run (cmd, out);
    if (err) {
        zchunk_t *chunk = zchunk_slurp (err_file, 0);
        *err = chunk? zchunk_strdup (chunk): strdup ("");
        zchunk_destroy (&chunk);
    }
    free (cmd);
    free (err_file);
    return rc;
}

//  Runs the CLI and expects exit code; returns its stdout.
static char *
s_expect (int code, const char *args)
{
    char *out = NULL, *err = NULL;
    int rc = s_cli (args, &out, &err);
    cr_assert_eq (rc, code, "`edgeplane %s` exited %d, not %d; stdout: %s; stderr: %s",
                  args, rc, code, out, err);
    free (err);
    return out;
}

//  Runs the CLI, expects exit code and a one-line stderr holding every
//  string in want (NULL-terminated).
static void
s_expect_error (int code, const char *args, const char *const *want)
{
    char *out = NULL, *err = NULL;
    int rc = s_cli (args, &out, &err);
    cr_assert_eq (rc, code, "`edgeplane %s` exited %d, not %d; stderr: %s", args, rc, code, err);
    cr_assert (strlen (err) > 0 && strchr (err, '\n') == err + strlen (err) - 1,
               "`edgeplane %s`: not one line on stderr: \"%s\"", args, err);
    for (size_t i = 0; want && want [i]; i++)
        cr_assert (strstr (err, want [i]), "`edgeplane %s`: \"%s\" not in \"%s\"", args, want [i], err);
    free (out);
    free (err);
}

//  Runs the CLI with --json, expects exit 0; returns the parsed output.
static json_t *
s_json (const char *args)
{
    char *full = zsys_sprintf ("%s --json", args);
    char *out = s_expect (0, full);
    json_error_t error;
    json_t *json = json_loads (out, 0, &error);
    cr_assert_not_null (json, "`edgeplane %s`: not JSON (%s): %s", full, error.text, out);
    free (out);
    free (full);
    return json;
}

static void
s_setup (void)
{
    s_dir = ep_tmpdir_new ("cli-model");
    s_env_data = zsys_sprintf ("EDGEPLANE_DATA_DIR=%s", s_dir);
    s_api = NULL;
    char *out = s_expect (0, "pki init");
    free (out);
}

//  Also starts the bus and the model, and points the CLI at the model.
static void
s_setup_model (void)
{
    s_setup ();
    const char *env [] = { s_env_data, NULL };
    const char *bus_args [] = { "--pub-listen", "tcp://127.0.0.1:*", "--sub-listen", "tcp://127.0.0.1:*",
                                "--http-listen", "127.0.0.1:0", NULL };
    s_bus = ep_proc_start ("edgeplane-bus", bus_args, env, 10000);
    cr_assert_not_null (s_bus, "the bus did not start");
    char *bus_pub = zsys_sprintf ("--bus-pub=%s", ep_proc_connect_endpoint (s_bus, "pub"));
    const char *model_args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", "127.0.0.1:0",
                                  bus_pub, NULL };
    s_model = ep_proc_start ("edgeplane-model", model_args, env, 10000);
    free (bus_pub);
    cr_assert_not_null (s_model, "edgeplane-model did not start");
    s_api = zsys_sprintf ("--model-api=%s", ep_proc_connect_endpoint (s_model, "api"));
}

static void
s_teardown (void)
{
    ep_proc_destroy (&s_model);
    ep_proc_destroy (&s_bus);
    zstr_free (&s_api);
    zstr_free (&s_env_data);
    ep_tmpdir_remove (&s_dir);
}

static const char *
s_str (json_t *object, const char *key)
{
    return json_string_value (json_object_get (object, key));
}

static json_int_t
s_version (json_t *entity)
{
    return json_integer_value (json_object_get (json_object_get (entity, "meta"), "version"));
}

Test (cli_model, create_list_get_update_delete, .init = s_setup_model, .fini = s_teardown, .timeout = 60)
{
    json_t *service = s_json ("service create web --tag tier=front");
    cr_assert_str_eq (s_str (service, "id"), "web");
    cr_assert_eq (json_object_get (service, "enabled"), json_true ());
    json_decref (service);

    //  A router hosting it with a cost; the table shows it in aligned columns.
    char *out = s_expect (0, "router create r1 --name edge-one --host web:10:required --tag site=paris --tag rack=3");
    cr_assert (strstr (out, "web:10:required"), "%s", out);
    free (out);
    out = s_expect (0, "router list");
    char *row = strchr (out, '\n');
    cr_assert_not_null (row, "%s", out);
    *row++ = 0;
    cr_assert (strncmp (out, "ID ", 3) == 0, "header: %s", out);
    const char *columns [] = { "NAME", "ENABLED", "VERSION", "HOSTED", "TAGS" };
    const char *values [] = { "edge-one", "true", "2", "web:10:required", "site=paris,rack=3" };
    for (size_t i = 0; i < EP_COUNT (columns); i++) {
        const char *header = strstr (out, columns [i]);
        cr_assert_not_null (header, "no %s column: %s", columns [i], out);
        cr_assert (strncmp (row + (header - out), values [i], strlen (values [i])) == 0,
                   "column %s does not hold %s: \"%s\" / \"%s\"", columns [i], values [i], out, row);
    }
    free (out);

    json_t *list = s_json ("router list");
    cr_assert (json_is_array (list) && json_array_size (list) == 1, "%s", json_dumps (list, 0));
    json_t *router = json_array_get (list, 0);
    cr_assert_str_eq (s_str (router, "id"), "r1");
    json_t *hosted = json_array_get (json_object_get (router, "hosted"), 0);
    cr_assert_str_eq (s_str (hosted, "service_id"), "web");
    cr_assert_eq (json_integer_value (json_object_get (hosted, "cost")), 10);
    cr_assert_str_eq (s_str (hosted, "precedence"), "required");
    cr_assert_eq (json_array_size (json_object_get (router, "tags")), 2);
    json_decref (list);

    //  Filters: by hosted service, by tag, by name.
    list = s_json ("router list --hosts web --tag site=paris --name edge-one");
    cr_assert_eq (json_array_size (list), 1);
    json_decref (list);
    list = s_json ("router list --tag site=london");
    cr_assert_eq (json_array_size (list), 0);
    json_decref (list);

    //  Update with compare-and-swap: absent flags keep their value.
    router = s_json ("router get r1");
    json_int_t version = s_version (router);
    json_decref (router);
    char *args = zsys_sprintf ("router update r1 --disabled --expected-version %lld", (long long) version);
    router = s_json (args);
    cr_assert_eq (json_object_get (router, "enabled"), json_false ());
    cr_assert_str_eq (s_str (router, "name"), "edge-one", "an absent --name keeps the name");
    cr_assert_eq (json_array_size (json_object_get (router, "hosted")), 1, "an absent --host keeps the list");
    cr_assert_gt (s_version (router), version);
    json_decref (router);
    //  The same expected version again is stale now.
    s_expect_error (1, args, (const char *[]) { "edgeplane router update: CONFLICT:", "r1", NULL });
    free (args);
    router = s_json ("router update r1 --clear-tags --disabled=false");
    cr_assert_null (json_object_get (router, "tags"));
    cr_assert_eq (json_object_get (router, "enabled"), json_true ());
    json_decref (router);

    //  Deleting the service takes it off the router in the same revision.
    json_t *deleted = s_json ("service delete web");
    cr_assert_str_eq (s_str (deleted, "deleted"), "web");
    cr_assert_gt (json_integer_value (json_object_get (deleted, "revision")), 0);
    json_decref (deleted);
    router = s_json ("router get r1");
    cr_assert_null (json_object_get (router, "hosted"), "r1 still hosts the deleted service");
    json_decref (router);
    list = s_json ("router list --hosts web");
    cr_assert_eq (json_array_size (list), 0);
    json_decref (list);
    s_expect_error (1, "service get web", (const char *[]) { "edgeplane service get: NOT_FOUND:", NULL });
    out = s_expect (0, "router delete r1");
    cr_assert (strstr (out, "deleted router r1 at revision"), "%s", out);
    free (out);
}

Test (cli_model, create_without_id_prints_the_generated_one, .init = s_setup_model, .fini = s_teardown,
      .timeout = 60)
{
    json_t *identity = s_json ("identity create --name alice");
    const char *id = s_str (identity, "id");
    cr_assert (id && ep_id_valid (id), "no generated id: %s", json_dumps (identity, 0));
    char *args = zsys_sprintf ("identity get %s", id);
    char *out = s_expect (0, args);
    cr_assert (strstr (out, id) && strstr (out, "alice"), "%s", out);
    free (out);
    free (args);
    json_decref (identity);

    json_t *controller = s_json ("controller create c1 --address 10.0.0.1:6262");
    cr_assert_str_eq (s_str (controller, "address"), "10.0.0.1:6262");
    json_decref (controller);
    out = s_expect (0, "controller list");
    cr_assert (strstr (out, "ADDRESS") && strstr (out, "10.0.0.1:6262"), "%s", out);
    free (out);
}

Test (cli_model, create_exist_ok_and_count_make_seeding_repeatable, .init = s_setup_model,
      .fini = s_teardown, .timeout = 60)
{
    //  --exist-ok: the second create succeeds and shows the entity unchanged.
    json_t *service = s_json ("service create web --name first");
    json_decref (service);
    service = s_json ("service create web --name second --exist-ok");
    cr_assert_str_eq (s_str (service, "id"), "web");
    cr_assert_str_eq (s_str (service, "name"), "first", "--exist-ok changed the existing entity");
    json_decref (service);

    //  --count: N routers <prefix>0..N-1; a second run with --exist-ok
    //  completes a partial batch (fleet-2 exists already) and fails without it.
    json_t *router = s_json ("router create fleet-2 --host web");
    json_decref (router);
    json_t *list = s_json ("router create --count 4 --prefix fleet- --host web --exist-ok");
    cr_assert_eq (json_array_size (list), 4, "%s", json_dumps (list, 0));
    for (size_t i = 0; i < 4; i++) {
        char id [16];
        snprintf (id, sizeof id, "fleet-%zu", i);
        json_t *entity = json_array_get (list, i);
        cr_assert_str_eq (s_str (entity, "id"), id);
        cr_assert_str_eq (s_str (json_array_get (json_object_get (entity, "hosted"), 0), "service_id"), "web");
    }
    json_decref (list);
    list = s_json ("router list");
    cr_assert_eq (json_array_size (list), 4);
    json_decref (list);
    s_expect_error (1, "router create --count 4 --prefix fleet- --host web",
                    (const char *[]) { "ALREADY_EXISTS", "fleet-0", NULL });
    //  The default prefix is the kind's word.
    list = s_json ("identity create --count 2");
    cr_assert_str_eq (s_str (json_array_get (list, 1), "id"), "identity-1");
    json_decref (list);
    s_expect_error (2, "router create r9 --count 2", (const char *[]) { "not both", NULL });
    s_expect_error (2, "router create --prefix x-", (const char *[]) { "goes with --count", NULL });
    s_expect_error (2, "router create --count 2 --prefix 'bad id'", (const char *[]) { "--prefix", NULL });
}

Test (cli_model, list_pages_through_everything_unless_limited, .init = s_setup_model, .fini = s_teardown,
      .timeout = 120)
{
    //  More than one page (100) of services, created in one shell.
    char *cmd = zsys_sprintf ("cd '%s' && for i in $(seq 1 130); do EDGEPLANE_DATA_DIR='%s' '%s/edgeplane' "
                              "service create s$i %s >/dev/null || exit 1; done", s_dir, s_dir, EP_BIN_DIR, s_api);
    cr_assert_eq (ep_run (cmd, NULL), 0);
    free (cmd);
    json_t *list = s_json ("service list");
    cr_assert_eq (json_array_size (list), 130);
    json_decref (list);
    list = s_json ("service list --limit 120");
    cr_assert_eq (json_array_size (list), 120);
    json_decref (list);
}

//  --criticality round trip: set at create, shown by get and list (JSON and
//  table), kept by an update that does not name it, changed by one that
//  does; absent at create it is normal; a word it does not know is a usage
//  error naming the four.
Test (cli_model, a_services_criticality_round_trips, .init = s_setup_model, .fini = s_teardown, .timeout = 60)
{
    json_t *service = s_json ("service create pay --criticality critical");
    cr_assert_str_eq (s_str (service, "criticality"), "critical");
    json_decref (service);
    service = s_json ("service create web");
    cr_assert_str_eq (s_str (service, "criticality"), "normal", "a service is normal unless said");
    json_decref (service);
    service = s_json ("service update pay --name payments");
    cr_assert_str_eq (s_str (service, "criticality"), "critical", "an update without the flag changed it");
    json_decref (service);
    service = s_json ("service update web --criticality LOW");
    cr_assert_str_eq (s_str (service, "criticality"), "low");
    json_decref (service);
    service = s_json ("service get pay");
    cr_assert_str_eq (s_str (service, "criticality"), "critical");
    cr_assert_str_eq (s_str (service, "name"), "payments");
    json_decref (service);
    json_t *list = s_json ("service list");
    cr_assert_eq (json_array_size (list), 2);
    cr_assert_str_eq (s_str (json_array_get (list, 0), "id"), "pay");
    cr_assert_str_eq (s_str (json_array_get (list, 0), "criticality"), "critical");
    cr_assert_str_eq (s_str (json_array_get (list, 1), "criticality"), "low");
    json_decref (list);
    //  The table has a CRITICALITY column, the value under it.
    char *out = s_expect (0, "service list");
    char *header_end = strchr (out, '\n');
    cr_assert_not_null (header_end);
    cr_assert (strstr (out, "CRITICALITY") && strstr (out, "CRITICALITY") < header_end, "%s", out);
    char *pay = strstr (out, "\npay ");
    cr_assert (pay && strstr (pay, " critical ") && strstr (pay, " critical ") < strchr (pay + 1, '\n'),
               "%s", out);
    free (out);
    out = s_expect (0, "service get web");
    cr_assert (strstr (out, " low "), "%s", out);
    free (out);
    s_expect_error (2, "service update web --criticality urgent",
                    (const char *[]) { "criticality", "critical, high, normal, low", NULL });
    out = s_expect (0, "service create --help");
    cr_assert (strstr (out, "--criticality"), "%s", out);
    free (out);
}

Test (cli_model, server_errors_exit_1_naming_the_field, .init = s_setup_model, .fini = s_teardown,
      .timeout = 60)
{
    s_expect_error (1, "router create 'bad id!'",
                    (const char *[]) { "edgeplane router create: INVALID_ARGUMENT:", "router.id", NULL });
    s_expect_error (1, "router create r1 --host nosuch",
                    (const char *[]) { "FAILED_PRECONDITION", "nosuch", "create it first", NULL });
    char *out = s_expect (0, "service create web");
    free (out);
    s_expect_error (1, "service create web",
                    (const char *[]) { "edgeplane service create: ALREADY_EXISTS:", "web", NULL });
    s_expect_error (1, "router update nosuch --name x",
                    (const char *[]) { "NOT_FOUND", "nosuch", NULL });
    s_expect_error (1, "service delete web --expected-version 99",
                    (const char *[]) { "CONFLICT", NULL });
}

Test (cli_model, backup_writes_the_file, .init = s_setup_model, .fini = s_teardown, .timeout = 60)
{
    char *out = s_expect (0, "service create web");
    free (out);
    //  A relative FILE is made absolute (the CLI runs in s_dir).
    out = s_expect (0, "backup model-backup.db");
    char *path = zsys_sprintf ("%s/model-backup.db", s_dir);
    cr_assert (strstr (out, path), "the absolute path is not printed: %s", out);
    free (out);
    struct stat st;
    cr_assert_eq (stat (path, &st), 0, "no backup at %s", path);
    cr_assert_gt (st.st_size, 0);
    free (path);
    json_t *backup = s_json ("backup second.db");
    cr_assert_gt (json_integer_value (json_object_get (backup, "revision")), 0);
    json_decref (backup);
    s_expect_error (1, "backup /nonexistent-dir/x.db", (const char *[]) { "edgeplane backup:", NULL });
}

//  model status: the revision of the last write, the generation, and with
//  --digest the digest of every entity: the same for the same model (as
//  two instances or a follower must agree), another after a write.
Test (cli_model, model_status_gives_the_revision_and_the_digest, .init = s_setup_model, .fini = s_teardown,
      .timeout = 60)
{
    json_t *created = s_json ("service create web");
    json_int_t revision = s_version (created);     //  the version is the revision that wrote it
    cr_assert_gt (revision, 0);
    json_decref (created);
    json_t *status = s_json ("model status");
    cr_assert_eq (json_integer_value (json_object_get (status, "revision")), revision);
    cr_assert_gt (strlen (s_str (status, "generation")), 0);
    cr_assert_null (json_object_get (status, "digest"), "a digest without --digest");
    json_decref (status);
    json_t *one = s_json ("model status --digest");
    json_t *again = s_json ("model status --digest");
    const char *digest = s_str (one, "digest");
    cr_assert (digest && strlen (digest) >= 32 && strspn (digest, "0123456789abcdef") == strlen (digest),
               "not a hex digest: %s", digest? digest: "(none)");
    cr_assert_str_eq (s_str (again, "digest"), digest);
    json_decref (s_json ("service create api"));
    json_t *after = s_json ("model status --digest");
    cr_assert_eq (json_integer_value (json_object_get (after, "revision")), revision + 1);
    cr_assert_str_neq (s_str (after, "digest"), digest, "a write did not change the digest");
    json_decref (one);
    json_decref (again);
    json_decref (after);
    char *out = s_expect (0, "model status --digest");
    cr_assert (strstr (out, "digest "), "%s", out);
    free (out);
    s_expect_error (2, "model stats", (const char *[]) { "model status", NULL });
}

//  Writes text to name in the test's directory (the CLI runs there).
static void
s_file (const char *name, const char *text)
{
    char *path = zsys_sprintf ("%s/%s", s_dir, name);
    FILE *file = fopen (path, "w");
    cr_assert_not_null (file, "%s", path);
    fputs (text, file);
    fclose (file);
    free (path);
}

static json_int_t
s_revision (void)
{
    json_t *status = s_json ("model status");
    json_int_t revision = json_integer_value (json_object_get (status, "revision"));
    json_decref (status);
    return revision;
}

//  model txn: two creates and a CAS update are one revision; each
//  entity's meta.version is that revision.
Test (cli_model, txn_writes_several_entities_at_one_revision, .init = s_setup_model, .fini = s_teardown,
      .timeout = 60)
{
    json_decref (s_json ("service create web"));
    json_t *hot = s_json ("router create hot --name hot");
    json_int_t hot_version = json_integer_value (json_object_get (json_object_get (hot, "meta"), "version"));
    json_decref (hot);
    json_int_t before = s_revision ();
    char *text = zsys_sprintf (
        "[{\"op\": \"create\", \"kind\": \"router\", \"id\": \"txn-a\", \"fields\": {\"name\": \"A\","
        "   \"tags\": [{\"key\": \"site\", \"value\": \"paris\"}], \"hosted\": [{\"service_id\": \"web\","
        "   \"cost\": 7, \"precedence\": \"required\"}]}},"
        " {\"op\": \"create\", \"kind\": \"router\", \"id\": \"txn-b\"},"
        " {\"op\": \"update\", \"kind\": \"router\", \"id\": \"hot\", \"fields\": {\"name\": \"hot-2\"},"
        "  \"expected_version\": %lld}]", (long long) hot_version);
    s_file ("txn.json", text);
    free (text);
    json_t *txn = s_json ("model txn txn.json");
    json_int_t revision = json_integer_value (json_object_get (txn, "revision"));
    cr_assert_eq (revision, before + 1, "one revision: %lld after %lld", (long long) revision, (long long) before);
    json_t *writes = json_object_get (txn, "writes");
    cr_assert_eq (json_array_size (writes), 3);
    const char *ids [] = { "txn-a", "txn-b", "hot" };
    for (size_t i = 0; i < 3; i++) {
        json_t *write = json_array_get (writes, i);
        cr_assert_str_eq (s_str (write, "id"), ids [i]);
        cr_assert_str_eq (s_str (write, "op"), i < 2? "create": "update");
        //  And the model agrees: each entity is at the txn's revision.
        char *args = zsys_sprintf ("router get %s", ids [i]);
        json_t *got = s_json (args);
        json_int_t version = json_integer_value (json_object_get (json_object_get (got, "meta"), "version"));
        cr_assert_eq (version, revision, "%s is at %lld, not the txn's %lld", ids [i], (long long) version,
                      (long long) revision);
        json_decref (got);
        free (args);
    }
    cr_assert_eq (s_revision (), revision);
    //  The fields were read by their proto names, enums by their words.
    json_t *a = s_json ("router get txn-a");
    cr_assert_str_eq (s_str (a, "name"), "A");
    json_t *hosted = json_array_get (json_object_get (a, "hosted"), 0);
    cr_assert_str_eq (s_str (hosted, "service_id"), "web");
    cr_assert_eq (json_integer_value (json_object_get (hosted, "cost")), 7);
    cr_assert_str_eq (s_str (hosted, "precedence"), "required");
    cr_assert_str_eq (s_str (json_array_get (json_object_get (a, "tags"), 0), "value"), "paris");
    json_decref (a);
    json_t *hot2 = s_json ("router get hot");
    cr_assert_str_eq (s_str (hot2, "name"), "hot-2");
    json_decref (hot2);
    json_decref (txn);
    //  From stdin, a delete and a clear; the table names each write.
    s_file ("txn2.json", "[{\"op\": \"delete\", \"kind\": \"router\", \"id\": \"txn-b\"},"
                         " {\"op\": \"update\", \"kind\": \"router\", \"id\": \"txn-a\", \"clear\": [\"hosted\"]}]");
    char *out = s_expect (0, "model txn - <txn2.json");
    char *line = zsys_sprintf ("committed 2 writes at revision %lld", (long long) revision + 1);
    cr_assert (strstr (out, line) && strstr (out, "delete") && strstr (out, "txn-b"), "%s", out);
    free (line);
    free (out);
    s_expect_error (1, "router get txn-b", (const char *[]) { "NOT_FOUND", NULL });
    a = s_json ("router get txn-a");
    cr_assert_null (json_object_get (a, "hosted"));
    json_decref (a);
}

//  A txn with one failing write changes nothing; the error names the write.
Test (cli_model, txn_with_a_failing_write_changes_nothing, .init = s_setup_model, .fini = s_teardown,
      .timeout = 60)
{
    json_decref (s_json ("router create hot"));
    json_int_t before = s_revision ();
    s_file ("txn.json",
            "[{\"op\": \"create\", \"kind\": \"router\", \"id\": \"txn-c\"},"
            " {\"op\": \"update\", \"kind\": \"router\", \"id\": \"hot\", \"fields\": {\"name\": \"x\"},"
            "  \"expected_version\": 999}]");
    s_expect_error (1, "model txn txn.json", (const char *[]) {
        "edgeplane model txn:", "CONFLICT", "write 2:", "router hot is at version", "not 999", NULL });
    s_expect_error (1, "router get txn-c", (const char *[]) { "NOT_FOUND", NULL });
    cr_assert_eq (s_revision (), before);
}

//  A malformed file exits 2 naming the write (from 1) and what to write;
//  nothing reaches the model.
Test (cli_model, txn_malformed_file_exits_2_naming_the_write, .init = s_setup, .fini = s_teardown)
{
    const struct { const char *json; const char *want [3]; } cases [] = {
        { "[{\"op\": \"create\", \"kind\": \"router\"", { "bad.json:1:", "expected a JSON array" } },
        { "{}", { "bad.json: expected a JSON array of at least one write" } },
        { "[]", { "bad.json: expected a JSON array of at least one write" } },
        { "[{\"op\": \"create\", \"kind\": \"router\"}, {\"op\": \"upsert\", \"kind\": \"router\", \"id\": \"x\"}]",
          { "write 2 (of 2): op:", "\"create\", \"update\" or \"delete\"" } },
        { "[{\"op\": \"create\", \"kind\": \"rooter\"}]", { "write 1 (of 1): kind:", "\"router\"" } },
        { "[{\"op\": \"update\", \"kind\": \"router\", \"fields\": {\"name\": \"n\"}}]",
          { "write 1 (of 1): id:", "1 to 64" } },
        { "[{\"op\": \"create\", \"kind\": \"router\", \"id\": \"a\", \"fields\": {\"hosted\": [{\"cost\": \"x\"}]}}]",
          { "write 1 (of 1): fields.hosted[0].cost: expected an integer from 0 to" } },
        { "[{\"op\": \"create\", \"kind\": \"service\", \"id\": \"a\", \"fields\": {\"hosted\": []}}]",
          { "fields.hosted: no such field in a Service", "criticality" } },
        { "[{\"op\": \"create\", \"kind\": \"router\", \"id\": \"a\", \"feilds\": {}}]",
          { "write 1 (of 1): feilds: not a key of a write", "fields" } },
        { "[{\"op\": \"update\", \"kind\": \"router\", \"id\": \"a\", \"fields\": {\"meta\": {\"version\": 3}}}]",
          { "fields.meta:", "expected_version" } },
        { "[{\"op\": \"delete\", \"kind\": \"router\", \"id\": \"a\", \"fields\": {}}]", { "fields: a delete has none" } },
        { "[{\"op\": \"update\", \"kind\": \"service\", \"id\": \"a\", \"clear\": [\"hosted\"]}]", { "clear:", "[\"tags\"]" } },
        { "[{\"op\": \"update\", \"kind\": \"router\", \"id\": \"a\", \"expected_version\": -1, \"fields\": {}}]",
          { "expected_version: write the version" } },
        { "[{\"op\": \"update\", \"kind\": \"router\", \"id\": \"a\"}]", { "fields: an update needs fields" } },
        { "[3]", { "write 1 (of 1): expected an object" } },
    };
    for (size_t i = 0; i < EP_COUNT (cases); i++) {
        s_file ("bad.json", cases [i].json);
        //  No model runs: a file that passed would fail to connect (exit 1).
        s_expect_error (2, "model txn bad.json --timeout 100ms --attempts 1 --model-api tcp://127.0.0.1:9",
                        (const char *[]) { "edgeplane model txn: ", cases [i].want [0], cases [i].want [1], NULL });
    }
    s_expect_error (2, "model txn", (const char *[]) { "expected one FILE", NULL });
    s_expect_error (2, "model txn nonexistent.json", (const char *[]) { "nonexistent.json", NULL });
    char *out = s_expect (0, "model txn --help");
    cr_assert (strstr (out, "FILE|-") && strstr (out, "expected_version") && strstr (out, "--json"), "%s", out);
    free (out);
    out = s_expect (0, "model --help");
    cr_assert (strstr (out, "txn FILE|-") && strstr (out, "status"), "%s", out);
    free (out);
}

Test (cli_model, usage_errors_exit_2_and_every_subcommand_has_help, .init = s_setup, .fini = s_teardown)
{
    //  None of these reaches a service.
    const char *const usage [] = {
        "router", "router frob", "router get", "router get a b", "router list extra",
        "router create --host web:x", "router create --host web:1:sometimes", "router create --host",
        "router create --tag novalue", "router list --limit=-1", "router update r1",
        "service create --host web", "controller create c1", "controller create --address 1.2.3.4:5",
        "backup", "backup a b", "router create --expected-version 3",
    };
    for (size_t i = 0; i < EP_COUNT (usage); i++)
        s_expect_error (2, usage [i], NULL);
    const char *const kinds [] = { "router", "service", "identity", "controller" };
    const char *const verbs [] = { "create", "get", "list", "update", "delete" };
    for (size_t k = 0; k < EP_COUNT (kinds); k++) {
        for (size_t v = 0; v < EP_COUNT (verbs); v++) {
            char *args = zsys_sprintf ("%s %s --help", kinds [k], verbs [v]);
            char *out = s_expect (0, args);
            cr_assert (strstr (out, "--model-api") && strstr (out, "--json"), "%s: %s", args, out);
            free (out);
            free (args);
        }
        char *args = zsys_sprintf ("%s --help", kinds [k]);
        char *out = s_expect (0, args);
        cr_assert (strstr (out, "update ID"), "%s", out);
        free (out);
        free (args);
    }
    char *out = s_expect (0, "router create --help");
    cr_assert (strstr (out, "--host") && strstr (out, "repeatable"), "%s", out);
    free (out);
    out = s_expect (0, "backup --help");
    cr_assert (strstr (out, "FILE"), "%s", out);
    free (out);
}

Test (cli_model, unreachable_service_says_what_to_check, .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    //  A port that is bound but not listening refuses every connection.
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
    socklen_t len = sizeof addr;
    cr_assert_eq (bind (fd, (struct sockaddr *) &addr, sizeof addr), 0);
    cr_assert_eq (getsockname (fd, (struct sockaddr *) &addr, &len), 0);
    char *args = zsys_sprintf ("router list --timeout 200ms --attempts 2 --model-api tcp://127.0.0.1:%d",
                               ntohs (addr.sin_port));
    s_expect_error (1, args, (const char *[]) {
        "edgeplane router list:", "no reply", "after 2 attempts", "is the service running",
        "--model-api", "EDGEPLANE_MODEL_API", NULL });
    free (args);
    close (fd);
}

Test (cli_model, missing_certificate_says_what_to_run, .init = s_setup, .fini = s_teardown)
{
    s_expect_error (1, "router list --cert /nonexistent/operator.cert_secret",
                    (const char *[]) { "cannot read the certificate", "edgeplane pki init", NULL });
}
