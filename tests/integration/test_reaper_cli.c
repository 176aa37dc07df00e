/*  test_reaper_cli.c: `edgeplane session list|get` and the sessions part of
    `edgeplane router delete [--wait]` against a real reaper (with the bus
    and the model). The test plays the watchdog (opens) and a router that
    closes the even sessions it is asked to close. */
#include <criterion/criterion.h>
#include "ep_test.h"
#include "ep_codec.h"
#include "ep_keys.h"
#include "ep_rpc_client.h"
#include "ep_subscriber.h"
#include "model.pb-c.h"
#include "sessions.pb-c.h"
#include <jansson.h>
#include <pthread.h>

static char *s_dir;             //  data dir (keys in it)
static char *s_env [6];         //  environment for the services
static char *s_cli_env;         //  the same, for the CLI's shell command
static ep_proc_t *s_bus;
static ep_proc_t *s_model;
static ep_proc_t *s_reaper;

static void
s_setup (void)
{
    zsys_init ();
    s_dir = ep_tmpdir_new ("reaper-cli");
    char *keys = zsys_sprintf ("%s/keys", s_dir);
    char err [512];
    cr_assert_eq (ep_keys_init (keys, false, err, sizeof err), 0, "%s", err);
    free (keys);
    s_env [0] = zsys_sprintf ("EDGEPLANE_DATA_DIR=%s", s_dir);
    const char *bus_args [] = { "--pub-listen", "tcp://127.0.0.1:*", "--sub-listen", "tcp://127.0.0.1:*",
                                "--http-listen", "127.0.0.1:0", NULL };
    s_bus = ep_proc_start ("edgeplane-bus", bus_args, (const char *const *) s_env, 10000);
    cr_assert_not_null (s_bus);
    s_env [1] = zsys_sprintf ("EDGEPLANE_BUS_PUB=%s", ep_proc_connect_endpoint (s_bus, "pub"));
    s_env [2] = zsys_sprintf ("EDGEPLANE_BUS_SUB=%s", ep_proc_connect_endpoint (s_bus, "sub"));
    const char *model_args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", "127.0.0.1:0", NULL };
    s_model = ep_proc_start ("edgeplane-model", model_args, (const char *const *) s_env, 10000);
    cr_assert_not_null (s_model);
    s_env [3] = zsys_sprintf ("EDGEPLANE_MODEL_API=%s", ep_proc_connect_endpoint (s_model, "api"));
    const char *reaper_args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", "127.0.0.1:0",
                                   "--cleanup-deadline", "3s", NULL };
    s_reaper = ep_proc_start ("edgeplane-reaper", reaper_args, (const char *const *) s_env, 20000);
    cr_assert_not_null (s_reaper);
    s_env [4] = zsys_sprintf ("EDGEPLANE_REAPER_API=%s", ep_proc_connect_endpoint (s_reaper, "api"));
    s_cli_env = zsys_sprintf ("EDGEPLANE_DATA_DIR='%s' EDGEPLANE_MODEL_API='%s' EDGEPLANE_REAPER_API='%s'",
                              s_dir, ep_proc_connect_endpoint (s_model, "api"),
                              ep_proc_connect_endpoint (s_reaper, "api"));
}

static void
s_teardown (void)
{
    ep_proc_destroy (&s_reaper);
    ep_proc_destroy (&s_model);
    ep_proc_destroy (&s_bus);
    for (size_t i = 0; i < EP_COUNT (s_env); i++)
        zstr_free (&s_env [i]);
    zstr_free (&s_cli_env);
    ep_tmpdir_remove (&s_dir);
}

//  Runs `edgeplane ARGS`; returns its exit status, stdout in *out and
//  stderr in *err (either may be NULL; caller frees).
static int
s_cli (const char *args, char **out, char **err)
{
    char *err_file = zsys_sprintf ("%s/cli.stderr", s_dir);
    char *cmd = zsys_sprintf ("cd '%s' && %s '%s/edgeplane' %s 2>'%s'", s_dir, s_cli_env, EP_BIN_DIR,
                              args, err_file);
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

static char *
s_expect (int code, const char *args)
{
    char *out = NULL, *err = NULL;
    int rc = s_cli (args, &out, &err);
    cr_assert_eq (rc, code, "`edgeplane %s` exited %d, not %d; stdout: %s; stderr: %s", args, rc, code, out, err);
    free (err);
    return out;
}

static json_t *
s_json (const char *args)
{
    char *out = s_expect (0, args);
    json_error_t error;
    json_t *json = json_loads (out, 0, &error);
    cr_assert_not_null (json, "`edgeplane %s` printed no JSON: %s (%s)", args, out, error.text);
    free (out);
    return json;
}

//  Opens sessions "<prefix>-<n>" on router as the watchdog would relay them.
static void
s_open (const char *prefix, size_t count, const char *router)
{
    char *keys = zsys_sprintf ("%s/keys", s_dir);
    zcert_t *cert = ep_keys_load (keys, "watchdog");
    char *key = ep_keys_public_txt (keys, "reaper");
    ep_rpc_client_t *client = ep_rpc_client_new (ep_proc_connect_endpoint (s_reaper, "api"), cert, key);
    for (size_t i = 0; i < count; i++) {
        char id [64], request_id [96], err [256];
        snprintf (id, sizeof id, "%s-%04zu", prefix, i);
        snprintf (request_id, sizeof request_id, "%s:%s", router, id);
        Ep__Session session = EP__SESSION__INIT;
        session.id = id;
        session.identity_id = "i1";
        session.service_id = "svc";
        session.has_type = true;
        session.type = EP__SESSION_TYPE__DIAL;
        session.has_priority = i == 3;
        session.priority = 7;
        session.has_criticality = i == 4;
        session.criticality = EP__CRITICALITY__CRITICALITY_HIGH;
        Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
        request.request_id = request_id;
        request.router_id = (char *) router;
        request.op_case = EP__SESSION_REQUEST__OP_OPEN;
        request.open = &session;
        Ep__SessionReply *reply = ep_rpc_call (client, &request, &ep__session_reply__descriptor, 5000, 3,
                                               err, sizeof err);
        cr_assert_not_null (reply, "%s", err);
        cr_assert_eq (reply->status->code, EP__STATUS__CODE__OK, "%s", reply->status->message);
        ep__session_reply__free_unpacked (reply, NULL);
    }
    ep_rpc_client_destroy (&client);
    free (key);
    zcert_destroy (&cert);
    free (keys);
}

//  A router that closes the even sessions of every CloseSessions it gets.
typedef struct {
    char id [65];               //  router id
    volatile bool ready;        //  subscribed and live
    volatile bool stop;         //  ask the thread to end
    pthread_t thread;           //  the thread
} s_router_t;

static void *
s_router_run (void *arg)
{
    s_router_t *self = (s_router_t *) arg;
    char *keys = zsys_sprintf ("%s/keys", s_dir);
    zcert_t *sub_cert = ep_keys_load (keys, "subscriber");
    zcert_t *cert = ep_keys_load (keys, "watchdog");
    char *bus_key = ep_keys_public_txt (keys, "bus");
    char *reaper_key = ep_keys_public_txt (keys, "reaper");
    ep_subscriber_t *sub = ep_subscriber_new (ep_proc_connect_endpoint (s_bus, "sub"), sub_cert, bus_key,
                                              EP_CODEC_DEFAULT_CAP, NULL, NULL);
    ep_rpc_client_t *client = ep_rpc_client_new (ep_proc_connect_endpoint (s_reaper, "api"), cert, reaper_key);
    char topic [80];
    snprintf (topic, sizeof topic, "cmd.%s.", self->id);
    ep_subscriber_subscribe (sub, topic);
    while (!self->stop && ep_subscriber_wait_stream (sub, "cmd", 200) != 0)
        ;
    self->ready = true;
    while (!self->stop) {
        Ep__Event *event = ep_subscriber_recv (sub, 50, NULL);
        if (event && event->body_case == EP__EVENT__BODY_COMMAND
        &&  event->command->kind_case == EP__COMMAND__KIND_CLOSE_SESSIONS) {
            Ep__CloseSessions *close = event->command->close_sessions;
            char **even = (char **) calloc (close->n_session_ids + 1, sizeof (char *));
            size_t n = 0;
            for (size_t i = 0; i < close->n_session_ids; i++)
                if (atoi (strrchr (close->session_ids [i], '-') + 1) % 2 == 0)
                    even [n++] = close->session_ids [i];
            Ep__CommandAck ack = EP__COMMAND_ACK__INIT;
            ack.command_id = event->command->command_id;
            ack.n_session_ids = n;
            ack.session_ids = even;
            Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
            request.router_id = self->id;
            request.op_case = EP__SESSION_REQUEST__OP_ACK;
            request.ack = &ack;
            char request_id [160];
            snprintf (request_id, sizeof request_id, "%s:ack-%s", self->id, ack.command_id);
            request.request_id = request_id;
            Ep__SessionReply *reply = ep_rpc_call (client, &request, &ep__session_reply__descriptor, 5000, 3,
                                                   NULL, 0);
            if (reply)
                ep__session_reply__free_unpacked (reply, NULL);
            free (even);
        }
    }
    ep_rpc_client_destroy (&client);
    ep_subscriber_destroy (&sub);
    free (bus_key);
    free (reaper_key);
    zcert_destroy (&cert);
    zcert_destroy (&sub_cert);
    free (keys);
    return NULL;
}

static bool
s_router_ready (void *arg)
{
    return ((s_router_t *) arg)->ready;
}

Test (reaper_cli, session_list_and_get, .init = s_setup, .fini = s_teardown, .timeout = 120)
{
    free (s_expect (0, "service create svc"));
    free (s_expect (0, "identity create i1"));
    free (s_expect (0, "router create r1"));
    s_open ("a", 12, "r1");
    json_t *all = s_json ("session list --json");
    cr_assert_eq (json_array_size (all), 12);
    json_t *first = json_array_get (all, 0);
    cr_assert_str_eq (json_string_value (json_object_get (first, "id")), "a-0000");
    cr_assert_str_eq (json_string_value (json_object_get (first, "state")), "active");
    cr_assert_str_eq (json_string_value (json_object_get (first, "type")), "dial");
    json_decref (all);
    json_t *some = s_json ("session list --router r1 --state active --limit 5 --json");
    cr_assert_eq (json_array_size (some), 5);
    json_decref (some);
    json_t *none = s_json ("session list --state closed --json");
    cr_assert_eq (json_array_size (none), 0);
    json_decref (none);
    char *table = s_expect (0, "session list --identity i1");
    cr_assert (strstr (table, "ID") && strstr (table, "LAST SEEN") && strstr (table, "a-0011"), "%s", table);
    free (table);
    json_t *one = s_json ("session get a-0003 --json");
    cr_assert_str_eq (json_string_value (json_object_get (one, "router_id")), "r1");
    cr_assert_eq (json_integer_value (json_object_get (one, "priority")), 7);
    cr_assert_str_eq (json_string_value (json_object_get (one, "criticality")), "normal");
    json_decref (one);
    one = s_json ("session get a-0004 --json");
    cr_assert_str_eq (json_string_value (json_object_get (one, "criticality")), "high");
    json_decref (one);
    table = s_expect (0, "session get a-0004");
    cr_assert (strstr (table, "CRITICALITY") && strstr (table, " high "), "%s", table);
    free (table);
    char *out = NULL, *err = NULL;
    cr_assert_eq (s_cli ("session get nope", &out, &err), 1);
    cr_assert (strstr (err, "NOT_FOUND") && strstr (err, "nope"), "%s", err);
    cr_assert_eq (strchr (err, '\n'), err + strlen (err) - 1, "one line: %s", err);
    free (out);
    free (err);
    cr_assert_eq (s_cli ("session list --state sleepy", NULL, NULL), 2);
    cr_assert_eq (s_cli ("session frobnicate", NULL, NULL), 2);
    cr_assert_eq (s_cli ("session get", NULL, NULL), 2);
    free (s_expect (0, "session --help"));
    free (s_expect (0, "session list --help"));
    cr_assert_eq (s_cli ("session list --reaper-api tcp://127.0.0.1:1 --timeout 300ms --attempts 1", NULL, NULL), 1);
}

Test (reaper_cli, router_delete_says_what_is_scheduled_and_waits_for_the_counts,
      .init = s_setup, .fini = s_teardown, .timeout = 120)
{
    free (s_expect (0, "service create svc"));
    free (s_expect (0, "identity create i1"));
    free (s_expect (0, "router create r1"));
    free (s_expect (0, "router create r2"));
    free (s_expect (0, "router create r3"));
    s_open ("x", 10, "r1");
    s_open ("y", 20, "r2");
    //  r1: how many sessions the reaper took.
    char *out = s_expect (0, "router delete r1");
    cr_assert (strstr (out, "deleted router r1 at revision"), "%s", out);
    cr_assert (strstr (out, "10 sessions scheduled for cleanup"), "%s", out);
    free (out);
    //  r2, whose router closes the even ones: final counts.
    s_router_t router = { .id = "r2" };
    cr_assert_eq (pthread_create (&router.thread, NULL, s_router_run, &router), 0);
    cr_assert (ep_wait_until (s_router_ready, &router, 15000));
    json_t *json = s_json ("router delete r2 --wait --json");
    cr_assert_eq (json_integer_value (json_object_get (json, "sessions_scheduled")), 20);
    json_t *closed = json_object_get (json, "sessions_closed");
    cr_assert_eq (json_integer_value (json_object_get (closed, "router-deleted")), 10, "%s",
                  json_dumps (json, 0));
    cr_assert_eq (json_integer_value (json_object_get (closed, "forced")), 10);
    cr_assert_not_null (json_object_get (json, "cleanup_job"));
    json_decref (json);
    router.stop = true;
    pthread_join (router.thread, NULL);
    json_t *left = s_json ("session list --router r2 --state terminating --json");
    cr_assert_eq (json_array_size (left), 0);
    json_decref (left);
    //  A router without sessions.
    out = s_expect (0, "router delete r3 --wait");
    cr_assert (strstr (out, "0 sessions scheduled"), "%s", out);
    cr_assert (strstr (out, "sessions closed: none"), "%s", out);
    free (out);
}
