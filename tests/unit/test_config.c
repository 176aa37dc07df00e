/*  test_config.c: flags, environment, defaults, checks, --help, exit codes. */
#include <criterion/criterion.h>
#include "ep_test.h"
#include "ep_config.h"
#include <sys/wait.h>
#include <unistd.h>

//  A service-like table: one option of each type.
static char *s_name;
static int64_t s_port;
static int64_t s_grace;
static bool s_verbose;
static char *s_action;
static char *s_listen;
static char *s_http;
static char *s_router;
static const char *s_actions [] = { "disconnect", "log", "none", NULL };

static ep_config_t *
s_config (void)
{
    ep_opt_t opts [] = {
        { .name = "name", .env = "EDGEPLANE_TEST_NAME", .def = "alpha",
          .type = EP_OPT_STRING, .str = &s_name, .help = "A name." },
        { .name = "port", .env = "EDGEPLANE_TEST_PORT", .def = "7001",
          .type = EP_OPT_INT, .num = &s_port, .min = 1, .max = 65535,
          .help = "A port number." },
        { .name = "stray-grace", .env = "EDGEPLANE_STRAY_GRACE", .def = "30s",
          .type = EP_OPT_DURATION, .num = &s_grace, .help = "Join grace period." },
        { .name = "verbose", .env = "EDGEPLANE_TEST_VERBOSE", .def = "false",
          .type = EP_OPT_BOOL, .flag = &s_verbose, .help = "Say more." },
        { .name = "stray-action", .env = "EDGEPLANE_STRAY_ACTION", .def = "disconnect",
          .type = EP_OPT_ENUM, .words = s_actions, .str = &s_action,
          .help = "What to do with a stray connection." },
        { .name = "model-listen", .env = "EDGEPLANE_MODEL_LISTEN", .def = "tcp://127.0.0.1:7001",
          .type = EP_OPT_ENDPOINT, .str = &s_listen, .help = "What the API binds." },
        { .name = "channel-listen", .env = "EDGEPLANE_CHANNEL_LISTEN", .def = "127.0.0.1:6262",
          .type = EP_OPT_HOSTPORT, .str = &s_http, .help = "TLS listener." },
        { .name = "router-id", .type = EP_OPT_ID, .str = &s_router,
          .help = "A router id, flag only." },
    };
    ep_config_t *cfg = ep_config_new ("edgeplane-test", "A test program.");
    ep_config_add (cfg, opts, EP_COUNT (opts));
    return cfg;
}

//  Parses a NULL-terminated argument list (program name implied).
static int
s_parse (ep_config_t *cfg, char *err, const char *first, ...)
{
    char *argv [32] = { "edgeplane-test" };
    int argc = 1;
    va_list args;
    va_start (args, first);
    for (const char *arg = first; arg; arg = va_arg (args, const char *)) {
        EP_ASSERT (argc < 31);
        argv [argc++] = (char *) arg;
    }
    va_end (args);
    argv [argc] = NULL;
    return ep_config_parse (cfg, argc, argv, err, 512);
}

Test (config, defaults)
{
    ep_config_t *cfg = s_config ();
    char err [512];
    cr_assert_eq (s_parse (cfg, err, NULL), 0, "%s", err);
    cr_assert_str_eq (s_name, "alpha");
    cr_assert_eq (s_port, 7001);
    cr_assert_eq (s_grace, 30000);
    cr_assert_not (s_verbose);
    cr_assert_str_eq (s_action, "disconnect");
    cr_assert_str_eq (s_listen, "tcp://127.0.0.1:7001");
    cr_assert_str_eq (s_http, "127.0.0.1:6262");
    cr_assert_null (s_router);
    cr_assert_str_eq (ep_config_source (cfg, "name"), "default");
    cr_assert_eq (ep_config_argc (cfg), 0);
    ep_config_destroy (&cfg);
    cr_assert_null (cfg);
}

Test (config, env_overrides_default)
{
    setenv ("EDGEPLANE_TEST_NAME", "beta", 1);
    setenv ("EDGEPLANE_STRAY_GRACE", "2m", 1);
    setenv ("EDGEPLANE_TEST_VERBOSE", "yes", 1);
    setenv ("EDGEPLANE_STRAY_ACTION", "LOG", 1);
    setenv ("EDGEPLANE_TEST_PORT", "", 1);      //  empty counts as unset
    ep_config_t *cfg = s_config ();
    char err [512];
    cr_assert_eq (s_parse (cfg, err, NULL), 0, "%s", err);
    cr_assert_str_eq (s_name, "beta");
    cr_assert_eq (s_grace, 120000);
    cr_assert (s_verbose);
    cr_assert_str_eq (s_action, "log", "enum stores the canonical word");
    cr_assert_eq (s_port, 7001);
    cr_assert_str_eq (ep_config_source (cfg, "name"), "env");
    cr_assert_str_eq (ep_config_source (cfg, "port"), "default");
    ep_config_destroy (&cfg);
}

Test (config, flag_overrides_env)
{
    setenv ("EDGEPLANE_TEST_NAME", "beta", 1);
    setenv ("EDGEPLANE_STRAY_GRACE", "2m", 1);
    ep_config_t *cfg = s_config ();
    char err [512];
    cr_assert_eq (s_parse (cfg, err, "--name", "gamma", "--stray-grace=500ms", NULL), 0,
                  "%s", err);
    cr_assert_str_eq (s_name, "gamma");
    cr_assert_eq (s_grace, 500);
    cr_assert_str_eq (ep_config_source (cfg, "name"), "flag");
    ep_config_destroy (&cfg);
}

Test (config, flag_overrides_bad_env)
{
    //  Only the winning value is checked.
    setenv ("EDGEPLANE_STRAY_GRACE", "soon", 1);
    ep_config_t *cfg = s_config ();
    char err [512];
    cr_assert_eq (s_parse (cfg, err, "--stray-grace", "1s", NULL), 0, "%s", err);
    cr_assert_eq (s_grace, 1000);
    ep_config_destroy (&cfg);
}

Test (config, equals_and_separate_value_forms)
{
    ep_config_t *cfg = s_config ();
    char err [512];
    cr_assert_eq (s_parse (cfg, err, "--name=x=y", "--port", "80", NULL), 0, "%s", err);
    cr_assert_str_eq (s_name, "x=y");
    cr_assert_eq (s_port, 80);
    cr_assert_eq (s_parse (cfg, err, "--name", "--odd", "--port=81", NULL), 0, "%s", err);
    cr_assert_str_eq (s_name, "--odd", "a separate value is taken as is");
    cr_assert_eq (s_port, 81);
    cr_assert_eq (s_parse (cfg, err, "--name=", NULL), 0, "%s", err);
    cr_assert_str_eq (s_name, "");
    //  Last one wins; a later parse starts from scratch.
    cr_assert_eq (s_parse (cfg, err, "--port=1", "--port=2", NULL), 0, "%s", err);
    cr_assert_eq (s_port, 2);
    cr_assert_eq (s_parse (cfg, err, NULL), 0, "%s", err);
    cr_assert_eq (s_port, 7001);
    ep_config_destroy (&cfg);
}

Test (config, missing_value)
{
    ep_config_t *cfg = s_config ();
    char err [512];
    cr_assert_eq (s_parse (cfg, err, "--stray-grace", NULL), -1);
    cr_assert_str_eq (err, "edgeplane-test: --stray-grace needs a value: "
                           "a duration such as 500ms, 30s or 2m");
    ep_config_destroy (&cfg);
}

Test (config, durations)
{
    struct { const char *text; int64_t ms; } good [] = {
        { "500ms", 500 }, { "30s", 30000 }, { "2m", 120000 }, { "1h", 3600000 },
        { "1m30s", 90000 }, { "0", 0 }, { "0s", 0 }, { "1h1m1s1ms", 3661001 },
    };
    for (size_t i = 0; i < EP_COUNT (good); i++) {
        int64_t ms = -1;
        cr_assert_eq (ep_duration_parse (good [i].text, &ms), 0, "%s", good [i].text);
        cr_assert_eq (ms, good [i].ms, "%s", good [i].text);
    }
    const char *bad [] = { "", "abc", "30", "-5s", "5 s", "5S", "1.5s", "s", "5d",
                           "30s ", "99999999999999999999ms", "9999999999999999h" };
    for (size_t i = 0; i < EP_COUNT (bad); i++) {
        int64_t ms = 7;
        cr_assert_eq (ep_duration_parse (bad [i], &ms), -1, "accepted \"%s\"", bad [i]);
        cr_assert_eq (ms, 7);
    }
}

Test (config, bad_duration_names_option_and_env)
{
    setenv ("EDGEPLANE_STRAY_GRACE", "abc", 1);
    ep_config_t *cfg = s_config ();
    char err [512];
    cr_assert_eq (s_parse (cfg, err, NULL), -1);
    cr_assert_str_eq (err, "edgeplane-test: invalid value \"abc\" for --stray-grace "
                           "(EDGEPLANE_STRAY_GRACE): expected a duration such as 500ms, 30s or 2m");
    unsetenv ("EDGEPLANE_STRAY_GRACE");
    cr_assert_eq (s_parse (cfg, err, "--stray-grace=30", NULL), -1);
    cr_assert (strstr (err, "invalid value \"30\" for --stray-grace (EDGEPLANE_STRAY_GRACE)"),
               "%s", err);
    ep_config_destroy (&cfg);
}

Test (config, duration_range)
{
    int64_t ms;
    ep_opt_t opt = { .name = "tick", .env = "EDGEPLANE_TICK", .def = "1s",
                     .type = EP_OPT_DURATION, .num = &ms, .min = 100, .max = 60000 };
    ep_config_t *cfg = ep_config_new ("edgeplane-test", "x");
    ep_config_add (cfg, &opt, 1);
    char err [512];
    cr_assert_eq (s_parse (cfg, err, "--tick=1m", NULL), 0, "%s", err);
    cr_assert_eq (ms, 60000);
    cr_assert_eq (s_parse (cfg, err, "--tick=2m", NULL), -1);
    cr_assert (strstr (err, "expected a duration from 100ms to 1m"), "%s", err);
    cr_assert_eq (s_parse (cfg, err, "--tick=50ms", NULL), -1);
    ep_config_destroy (&cfg);
}

Test (config, int_range)
{
    ep_config_t *cfg = s_config ();
    char err [512];
    cr_assert_eq (s_parse (cfg, err, "--port=65535", NULL), 0, "%s", err);
    cr_assert_eq (s_port, 65535);
    cr_assert_eq (s_parse (cfg, err, "--port=1", NULL), 0, "%s", err);
    cr_assert_eq (s_parse (cfg, err, "--port=0", NULL), -1);
    cr_assert_str_eq (err, "edgeplane-test: invalid value \"0\" for --port "
                           "(EDGEPLANE_TEST_PORT): expected an integer from 1 to 65535");
    cr_assert_eq (s_parse (cfg, err, "--port=65536", NULL), -1);
    const char *bad [] = { "--port=12x", "--port=", "--port= 5", "--port=0x10",
                           "--port=99999999999999999999" };
    for (size_t i = 0; i < EP_COUNT (bad); i++)
        cr_assert_eq (s_parse (cfg, err, bad [i], NULL), -1, "accepted %s", bad [i]);
    ep_config_destroy (&cfg);
}

Test (config, unbounded_int_takes_negatives)
{
    int64_t n;
    ep_opt_t opt = { .name = "offset", .def = "0", .type = EP_OPT_INT, .num = &n };
    ep_config_t *cfg = ep_config_new ("edgeplane-test", "x");
    ep_config_add (cfg, &opt, 1);
    char err [512];
    cr_assert_eq (s_parse (cfg, err, "--offset", "-12", NULL), 0, "%s", err);
    cr_assert_eq (n, -12);
    cr_assert_eq (s_parse (cfg, err, "--offset=abc", NULL), -1);
    cr_assert_str_eq (err, "edgeplane-test: invalid value \"abc\" for --offset: "
                           "expected an integer");
    ep_config_destroy (&cfg);
}

Test (config, enum)
{
    ep_config_t *cfg = s_config ();
    char err [512];
    cr_assert_eq (s_parse (cfg, err, "--stray-action", "none", NULL), 0, "%s", err);
    cr_assert_str_eq (s_action, "none");
    cr_assert_eq (s_parse (cfg, err, "--stray-action=kill", NULL), -1);
    cr_assert_str_eq (err, "edgeplane-test: invalid value \"kill\" for --stray-action "
                           "(EDGEPLANE_STRAY_ACTION): expected one of disconnect, log, none");
    ep_config_destroy (&cfg);
}

Test (config, bool)
{
    ep_config_t *cfg = s_config ();
    char err [512];
    cr_assert_eq (s_parse (cfg, err, "--verbose", NULL), 0, "%s", err);
    cr_assert (s_verbose);
    setenv ("EDGEPLANE_TEST_VERBOSE", "on", 1);
    cr_assert_eq (s_parse (cfg, err, "--verbose=false", NULL), 0, "%s", err);
    cr_assert_not (s_verbose);
    cr_assert_eq (s_parse (cfg, err, NULL), 0, "%s", err);
    cr_assert (s_verbose);
    setenv ("EDGEPLANE_TEST_VERBOSE", "0", 1);
    cr_assert_eq (s_parse (cfg, err, NULL), 0, "%s", err);
    cr_assert_not (s_verbose);
    setenv ("EDGEPLANE_TEST_VERBOSE", "maybe", 1);
    cr_assert_eq (s_parse (cfg, err, NULL), -1);
    cr_assert_str_eq (err, "edgeplane-test: invalid value \"maybe\" for --verbose "
                           "(EDGEPLANE_TEST_VERBOSE): expected true or false");
    ep_config_destroy (&cfg);
}

Test (config, bool_flag_does_not_swallow_next_argument)
{
    ep_config_t *cfg = s_config ();
    ep_config_set_args (cfg, EP_ARGS_ANY, "FILE...");
    char err [512];
    cr_assert_eq (s_parse (cfg, err, "--verbose", "false", NULL), 0, "%s", err);
    cr_assert (s_verbose);
    cr_assert_eq (ep_config_argc (cfg), 1);
    cr_assert_str_eq (ep_config_argv (cfg) [0], "false");
    ep_config_destroy (&cfg);
}

Test (config, endpoints_and_addresses)
{
    ep_config_t *cfg = s_config ();
    char err [512];
    const char *good_ep [] = { "tcp://127.0.0.1:7001", "tcp://*:7001", "tcp://model:7001",
                               "tcp://127.0.0.1:*", "tcp://[::1]:0", "ipc:///tmp/x.sock",
                               "inproc://model" };
    for (size_t i = 0; i < EP_COUNT (good_ep); i++) {
        char *arg = zsys_sprintf ("--model-listen=%s", good_ep [i]);
        cr_assert_eq (s_parse (cfg, err, arg, NULL), 0, "%s", err);
        cr_assert_str_eq (s_listen, good_ep [i]);
        zstr_free (&arg);
    }
    const char *bad_ep [] = { "127.0.0.1:7001", "tcp://127.0.0.1", "tcp://:7001",
                              "tcp://h:70000", "tcp://h:x", "udp://h:1", "ipc://", "tcp://::1:5" };
    for (size_t i = 0; i < EP_COUNT (bad_ep); i++) {
        char *arg = zsys_sprintf ("--model-listen=%s", bad_ep [i]);
        cr_assert_eq (s_parse (cfg, err, arg, NULL), -1, "accepted %s", bad_ep [i]);
        cr_assert (strstr (err, "expected a ZeroMQ endpoint such as tcp://127.0.0.1:7001"),
                   "%s", err);
        zstr_free (&arg);
    }
    const char *good_hp [] = { "127.0.0.1:9101", "0.0.0.0:0", "localhost:80", "[::1]:9101" };
    for (size_t i = 0; i < EP_COUNT (good_hp); i++) {
        setenv ("EDGEPLANE_CHANNEL_LISTEN", good_hp [i], 1);
        cr_assert_eq (s_parse (cfg, err, NULL), 0, "%s", err);
        cr_assert_str_eq (s_http, good_hp [i]);
    }
    const char *bad_hp [] = { ":9101", "9101", "host", "tcp://h:1", "h:*", "::1:80", "h:-1" };
    for (size_t i = 0; i < EP_COUNT (bad_hp); i++) {
        setenv ("EDGEPLANE_CHANNEL_LISTEN", bad_hp [i], 1);
        cr_assert_eq (s_parse (cfg, err, NULL), -1, "accepted %s", bad_hp [i]);
        cr_assert (strstr (err, "(EDGEPLANE_CHANNEL_LISTEN): expected host:port"), "%s", err);
    }
    ep_config_destroy (&cfg);
}

Test (config, ids)
{
    ep_config_t *cfg = s_config ();
    char err [512];
    cr_assert_eq (s_parse (cfg, err, "--router-id", "edge-1_a", NULL), 0, "%s", err);
    cr_assert_str_eq (s_router, "edge-1_a");
    cr_assert_eq (s_parse (cfg, err, "--router-id", "a.b", NULL), -1);
    cr_assert_str_eq (err, "edgeplane-test: invalid value \"a.b\" for --router-id: "
                           "expected an id of 1 to 64 letters, digits, '_' or '-'");
    ep_config_destroy (&cfg);
}

Test (config, unknown_flag_refused)
{
    ep_config_t *cfg = s_config ();
    char err [512];
    cr_assert_eq (s_parse (cfg, err, "--nmae=x", NULL), -1);
    cr_assert_str_eq (err, "edgeplane-test: unknown option --nmae; see edgeplane-test --help");
    cr_assert_eq (s_parse (cfg, err, "-v", NULL), -1);
    cr_assert_str_eq (err, "edgeplane-test: unknown option -v; see edgeplane-test --help");
    ep_config_destroy (&cfg);
}

Test (config, positional_arguments)
{
    ep_config_t *cfg = s_config ();
    char err [512];
    //  Refused by default.
    cr_assert_eq (s_parse (cfg, err, "extra", NULL), -1);
    cr_assert (strstr (err, "unexpected argument \"extra\""), "%s", err);
    cr_assert (strstr (err, "--help"), "%s", err);

    //  Among flags.
    ep_config_set_args (cfg, EP_ARGS_ANY, "FILE...");
    cr_assert_eq (s_parse (cfg, err, "a", "--port=5", "b", "--", "--port=6", NULL), 0, "%s", err);
    cr_assert_eq (s_port, 5);
    cr_assert_eq (ep_config_argc (cfg), 3);
    cr_assert_str_eq (ep_config_argv (cfg) [0], "a");
    cr_assert_str_eq (ep_config_argv (cfg) [1], "b");
    cr_assert_str_eq (ep_config_argv (cfg) [2], "--port=6");
    cr_assert_null (ep_config_argv (cfg) [3]);

    //  First one stops option parsing: the rest belongs to a subcommand.
    ep_config_set_args (cfg, EP_ARGS_STOP, "COMMAND [ARGS...]");
    cr_assert_eq (s_parse (cfg, err, "--port=7", "router", "list", "--json", NULL), 0, "%s", err);
    cr_assert_eq (s_port, 7);
    cr_assert_eq (ep_config_argc (cfg), 3);
    cr_assert_str_eq (ep_config_argv (cfg) [0], "router");
    cr_assert_str_eq (ep_config_argv (cfg) [2], "--json");
    cr_assert_eq (s_parse (cfg, err, "router", "--help", NULL), 0, "%s", err);
    ep_config_destroy (&cfg);
}

Test (config, help_lists_every_option)
{
    ep_config_t *cfg = s_config ();
    ep_common_opts_t common;
    ep_common_opts_add (cfg, &common, EP_HTTP_LISTEN_MODEL);
    char err [512];
    //  --help wins over any mistake on the line, but not when it is a value.
    cr_assert_eq (s_parse (cfg, err, "--port=bad", "--help", NULL), 1);
    cr_assert_eq (s_parse (cfg, err, "--bogus", "extra", "--help", NULL), 1);
    cr_assert_eq (s_parse (cfg, err, "--name", "--help", NULL), 0, "%s", err);
    cr_assert_str_eq (common.data_dir, "./edgeplane-data");
    cr_assert_eq (s_parse (cfg, err, "--", "--help", NULL), -1);
    cr_assert_eq (s_parse (cfg, err, "-h", NULL), 1);
    char *help = ep_config_help (cfg);
    const char *must [] = {
        "A test program.", "Usage: edgeplane-test [OPTIONS]",
        "--name TEXT", "EDGEPLANE_TEST_NAME", "default alpha", "A name.",
        "--port N", "EDGEPLANE_TEST_PORT",
        "--stray-grace DURATION", "EDGEPLANE_STRAY_GRACE", "default 30s", "Join grace period.",
        "--verbose[=BOOL]", "EDGEPLANE_TEST_VERBOSE",
        "--stray-action disconnect|log|none", "EDGEPLANE_STRAY_ACTION",
        "--model-listen ENDPOINT", "EDGEPLANE_MODEL_LISTEN",
        "--channel-listen HOST:PORT", "EDGEPLANE_CHANNEL_LISTEN",
        "--router-id ID", "--data-dir", "EDGEPLANE_DATA_DIR", "default ./edgeplane-data",
        "--keys-dir", "EDGEPLANE_KEYS_DIR", "default $EDGEPLANE_DATA_DIR/keys",
        "--bus-pub", "EDGEPLANE_BUS_PUB", "--bus-sub", "EDGEPLANE_BUS_SUB",
        "--model-api", "EDGEPLANE_MODEL_API", "--terminators-api", "EDGEPLANE_TERMINATORS_API",
        "--reaper-api", "EDGEPLANE_REAPER_API", "--watchdog-api", "EDGEPLANE_WATCHDOG_API",
        "--http-listen HOST:PORT", "EDGEPLANE_HTTP_LISTEN", "default 127.0.0.1:9101",
        "--log-level error|warn|info|debug", "EDGEPLANE_LOG_LEVEL",
        "--log-format text|json", "EDGEPLANE_LOG_FORMAT",
        "--ready-file TEXT  (default none)", "--instance-id ID", "EDGEPLANE_INSTANCE_ID",
        "-h, --help",
    };
    for (size_t i = 0; i < EP_COUNT (must); i++)
        cr_assert (strstr (help, must [i]), "help lacks \"%s\":\n%s", must [i], help);
    free (help);
    ep_config_destroy (&cfg);
}

Test (config, common_defaults_and_derivations)
{
    ep_config_t *cfg = ep_config_new ("edgeplane-reaper", "Session reaper.");
    ep_common_opts_t common;
    ep_common_opts_add (cfg, &common, EP_HTTP_LISTEN_REAPER);
    char err [512];
    cr_assert_eq (s_parse (cfg, err, NULL), 0, "%s", err);
    cr_assert_str_eq (common.data_dir, "./edgeplane-data");
    cr_assert_str_eq (common.keys_dir, "./edgeplane-data/keys");
    cr_assert_str_eq (ep_config_source (cfg, "keys-dir"), "derived");
    cr_assert_str_eq (common.bus_pub, "tcp://127.0.0.1:7100");
    cr_assert_str_eq (common.bus_sub, "tcp://127.0.0.1:7101");
    cr_assert_str_eq (common.model_api, "tcp://127.0.0.1:7001");
    cr_assert_str_eq (common.terminators_api, "tcp://127.0.0.1:7011");
    cr_assert_str_eq (common.reaper_api, "tcp://127.0.0.1:7021");
    cr_assert_str_eq (common.watchdog_api, "tcp://127.0.0.1:7031");
    cr_assert_str_eq (common.http_listen, "127.0.0.1:9103");
    cr_assert_str_eq (common.log_level, "info");
    cr_assert_str_eq (common.log_format, "text");
    cr_assert_null (common.ready_file);
    cr_assert (ep_id_valid (common.instance_id));
    cr_assert_eq (strlen (common.instance_id), 16);
    ep_config_destroy (&cfg);
}

Test (config, keys_dir_follows_data_dir)
{
    ep_config_t *cfg = ep_config_new ("edgeplane-model", "Router model.");
    ep_common_opts_t common;
    ep_common_opts_add (cfg, &common, EP_HTTP_LISTEN_MODEL);
    char err [512];
    setenv ("EDGEPLANE_DATA_DIR", "/var/lib/edgeplane", 1);
    cr_assert_eq (s_parse (cfg, err, NULL), 0, "%s", err);
    cr_assert_str_eq (common.keys_dir, "/var/lib/edgeplane/keys");
    cr_assert_eq (s_parse (cfg, err, "--data-dir", "/srv/ep/", NULL), 0, "%s", err);
    cr_assert_str_eq (common.keys_dir, "/srv/ep/keys");
    setenv ("EDGEPLANE_KEYS_DIR", "/etc/edgeplane/keys", 1);
    cr_assert_eq (s_parse (cfg, err, NULL), 0, "%s", err);
    cr_assert_str_eq (common.keys_dir, "/etc/edgeplane/keys");
    cr_assert_str_eq (ep_config_source (cfg, "keys-dir"), "env");
    ep_config_destroy (&cfg);
}

Test (config, common_values_checked)
{
    ep_config_t *cfg = ep_config_new ("edgeplane-bus", "Event bus.");
    ep_common_opts_t common;
    ep_common_opts_add (cfg, &common, EP_HTTP_LISTEN_BUS);
    char err [512];
    setenv ("EDGEPLANE_INSTANCE_ID", "bus-a", 1);
    setenv ("EDGEPLANE_LOG_LEVEL", "debug", 1);
    setenv ("EDGEPLANE_LOG_FORMAT", "json", 1);
    cr_assert_eq (s_parse (cfg, err, "--ready-file", "/tmp/bus.ready", NULL), 0, "%s", err);
    cr_assert_str_eq (common.instance_id, "bus-a");
    cr_assert_str_eq (common.log_level, "debug");
    cr_assert_str_eq (common.log_format, "json");
    cr_assert_str_eq (common.ready_file, "/tmp/bus.ready");
    cr_assert_str_eq (common.http_listen, "127.0.0.1:9105");
    setenv ("EDGEPLANE_LOG_LEVEL", "loud", 1);
    cr_assert_eq (s_parse (cfg, err, NULL), -1);
    cr_assert_str_eq (err, "edgeplane-bus: invalid value \"loud\" for --log-level "
                           "(EDGEPLANE_LOG_LEVEL): expected one of error, warn, info, debug");
    unsetenv ("EDGEPLANE_LOG_LEVEL");
    setenv ("EDGEPLANE_BUS_PUB", "localhost:7100", 1);
    cr_assert_eq (s_parse (cfg, err, NULL), -1);
    cr_assert (strstr (err, "--bus-pub (EDGEPLANE_BUS_PUB)"), "%s", err);
    ep_config_destroy (&cfg);
}

Test (config, no_http_listen_for_programs_without_http)
{
    ep_config_t *cfg = ep_config_new ("edgeplane", "The CLI.");
    ep_common_opts_t common;
    ep_common_opts_add (cfg, &common, NULL);
    char err [512];
    cr_assert_eq (s_parse (cfg, err, NULL), 0, "%s", err);
    cr_assert_null (common.http_listen);
    cr_assert_null (ep_config_source (cfg, "http-listen"));
    cr_assert_eq (s_parse (cfg, err, "--http-listen=127.0.0.1:1", NULL), -1);
    ep_config_destroy (&cfg);
}

//  A whole file as a string, cut after its first line when first_line:
//  under ASan the child's exit may add sanitizer notes to stderr.
static char *
s_slurp (const char *path, bool first_line)
{
    FILE *file = fopen (path, "r");
    EP_ASSERT (file);
    char *text = (char *) zmalloc (65536);
    size_t n = fread (text, 1, 65535, file);
    text [n] = 0;
    fclose (file);
    char *nl = strchr (text, '\n');
    if (first_line && nl)
        nl [1] = 0;
    return text;
}

//  The child's parser, reachable from a global so that a leak checker
//  running at exit () does not count it (and change the exit code).
static ep_config_t *s_child_cfg;

//  Runs ep_config_parse_or_exit in a child; returns its exit status and
//  what it printed on stdout and stderr (caller frees).
static int
s_run_or_exit (char **out, char **errout, const char *first, ...)
{
    char *argv [16] = { "edgeplane-test" };
    int argc = 1;
    va_list args;
    va_start (args, first);
    for (const char *arg = first; arg; arg = va_arg (args, const char *))
        argv [argc++] = (char *) arg;
    va_end (args);

    char *dir = ep_tmpdir_new ("config");
    char *out_path = zsys_sprintf ("%s/out", dir);
    char *err_path = zsys_sprintf ("%s/err", dir);
    pid_t pid = fork ();
    EP_ASSERT (pid >= 0);
    if (pid == 0) {
        EP_ASSERT (freopen (out_path, "w", stdout));
        EP_ASSERT (freopen (err_path, "w", stderr));
        s_child_cfg = s_config ();
        ep_config_parse_or_exit (s_child_cfg, argc, argv);
        ep_config_destroy (&s_child_cfg);
        _exit (42);             //  parsed fine
    }
    int status;
    EP_ASSERT (waitpid (pid, &status, 0) == pid);
    EP_ASSERT (WIFEXITED (status));
    *out = s_slurp (out_path, false);
    *errout = s_slurp (err_path, true);
    zstr_free (&out_path);
    zstr_free (&err_path);
    ep_tmpdir_remove (&dir);
    return WEXITSTATUS (status);
}

Test (config, or_exit_codes)
{
    char *out, *err;
    cr_assert_eq (s_run_or_exit (&out, &err, "--stray-grace", "abc", NULL), 2);
    cr_assert_str_empty (out);
    cr_assert_str_eq (err, "edgeplane-test: invalid value \"abc\" for --stray-grace "
                           "(EDGEPLANE_STRAY_GRACE): expected a duration such as 500ms, 30s or 2m\n");
    free (out);
    free (err);

    cr_assert_eq (s_run_or_exit (&out, &err, "--bogus", NULL), 2);
    cr_assert_str_eq (err, "edgeplane-test: unknown option --bogus; see edgeplane-test --help\n");
    free (out);
    free (err);

    cr_assert_eq (s_run_or_exit (&out, &err, "--help", NULL), 0);
    cr_assert (strstr (out, "EDGEPLANE_STRAY_GRACE"), "%s", out);
    cr_assert_null (strstr (err, "edgeplane-test"), "%s", err);
    free (out);
    free (err);

    cr_assert_eq (s_run_or_exit (&out, &err, "--port", "9", NULL), 42);
    cr_assert_str_empty (err);
    free (out);
    free (err);
}

Test (config, endpoint_lists_for_several_instances)
{
    //  EDGEPLANE_MODEL_API, _BUS_PUB, _BUS_SUB, _TERMINATORS_API and
    //  _REAPER_API name several instances; each element is checked.
    const char *good [] = { "tcp://10.0.0.1:7001", "tcp://10.0.0.1:7001,tcp://10.0.0.2:7001",
                            "tcp://[::1]:7001,ipc:///tmp/model" };
    for (size_t i = 0; i < EP_COUNT (good); i++) {
        ep_config_t *cfg = ep_config_new ("edgeplane-test", "A test program.");
        ep_common_opts_t common;
        ep_common_opts_add (cfg, &common, EP_HTTP_LISTEN_REAPER);
        char err [512];
        cr_assert_eq (s_parse (cfg, err, "--model-api", good [i], "--bus-sub", good [i], NULL), 0,
                      "%s: %s", good [i], err);
        cr_assert_str_eq (common.model_api, good [i]);
        cr_assert_str_eq (common.bus_sub, good [i]);
        ep_config_destroy (&cfg);
    }
    const char *bad [] = { "tcp://10.0.0.1:7001,", ",tcp://10.0.0.1:7001", "tcp://a:1,,tcp://b:2",
                           "tcp://10.0.0.1:7001,10.0.0.2:7001", "," };
    for (size_t i = 0; i < EP_COUNT (bad); i++) {
        ep_config_t *cfg = ep_config_new ("edgeplane-test", "A test program.");
        ep_common_opts_t common;
        ep_common_opts_add (cfg, &common, EP_HTTP_LISTEN_REAPER);
        char err [512];
        cr_assert_eq (s_parse (cfg, err, "--bus-pub", bad [i], NULL), -1, "%s accepted", bad [i]);
        cr_assert (strstr (err, "separated by commas"), "%s", err);
        ep_config_destroy (&cfg);
    }
}
