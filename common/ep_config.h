/*  ep_config.h: command-line flags and EDGEPLANE_* environment variables.

    Every binary declares its options once, as a table; this module parses
    them the same way everywhere, so flags, environment, defaults, --help
    and error messages never drift apart between services.

        static int64_t grace;
        static char *action;
        static const char *actions [] = { "disconnect", "log", "none", NULL };
        ep_opt_t opts [] = {
            { .name = "stray-grace", .env = "EDGEPLANE_STRAY_GRACE", .def = "30s",
              .type = EP_OPT_DURATION, .num = &grace, .help = "Join grace period." },
            { .name = "stray-action", .env = "EDGEPLANE_STRAY_ACTION", .def = "disconnect",
              .type = EP_OPT_ENUM, .words = actions, .str = &action,
              .help = "What to do with a stray connection." },
        };
        ep_common_opts_t common;
        ep_config_t *cfg = ep_config_new ("edgeplane-watchdog", "Control-channel watchdog.");
        ep_config_add (cfg, opts, EP_COUNT (opts));     //  --help lists in this order
        ep_common_opts_add (cfg, &common, EP_HTTP_LISTEN_WATCHDOG);
        ep_config_parse_or_exit (cfg, argc, argv);
        ep_log_init_named ("watchdog", common.log_level, common.log_format);

    Precedence: flag > environment > default. Only the winning value is
    checked: a flag overrides a bad environment value. An empty environment
    variable counts as unset. Flags are --name value or --name=value; a bool
    flag alone means true, and takes an explicit value only as --name=false.
    "--" ends the options. Durations are a number and a unit (ms, s, m, h),
    possibly several ("1m30s"); a bare number is refused (30 what?) except 0.
    See docs/config.md.
*/
#ifndef EP_CONFIG_H_INCLUDED
#define EP_CONFIG_H_INCLUDED

#include "ep_prelude.h"

typedef struct _ep_config_t ep_config_t;

//  What an option's value is, and so where it is stored.
typedef enum {
    EP_OPT_STRING,      //  any text -> .str
    EP_OPT_INT,         //  decimal integer, in [min, max] if min < max -> .num
    EP_OPT_DURATION,    //  "500ms", "30s", "2m", "1h", "1m30s", "0" -> .num in ms
                        //  (also limited to [min, max] ms if min < max)
    EP_OPT_BOOL,        //  true/false, yes/no, on/off, 1/0 -> .flag
    EP_OPT_ENUM,        //  one of .words (case-insensitive) -> .str, the canonical word
    EP_OPT_ENDPOINT,    //  ZeroMQ endpoint: tcp://host:port|*, ipc://path, inproc://name -> .str
    EP_OPT_ENDPOINTS,   //  one or more ZeroMQ endpoints, comma-separated (several
                        //  instances of a service: clients fail over, buses are all used) -> .str
    EP_OPT_HOSTPORT,    //  host:port as ep_addr reads it ([v6]:port, *:port), for HTTP and TLS -> .str
    EP_OPT_ID           //  an entity id, [A-Za-z0-9_-]{1,64} -> .str
} ep_opt_type_t;

//  One option. Declare tables with designated initializers; exactly one of
//  str / num / flag is set, matching the type.
typedef struct {
    const char *name;           //  long flag without dashes: "stray-grace"
    const char *env;            //  environment variable, or NULL for a flag only
    const char *def;            //  default, as a user would type it; NULL = unset
    ep_opt_type_t type;         //  how the value is checked and stored
    const char *help;           //  one line for --help
    char **str;                 //  target of string-like types (NULL when unset)
    int64_t *num;               //  target of EP_OPT_INT and EP_OPT_DURATION
    bool *flag;                 //  target of EP_OPT_BOOL
    int64_t min;                //  lower bound, checked only if min < max
    int64_t max;                //  upper bound, checked only if min < max
    const char *const *words;   //  EP_OPT_ENUM: allowed words, NULL-terminated
    const char *def_help;       //  shown as the default in --help instead of def
} ep_opt_t;

//  Whether the program takes positional arguments.
typedef enum {
    EP_ARGS_NONE,       //  any positional argument is an error (services)
    EP_ARGS_ANY,        //  positional arguments may appear among the flags
    EP_ARGS_STOP        //  the first positional argument ends option parsing;
                        //  it and everything after it are positional (a CLI
                        //  whose subcommands parse their own flags)
} ep_args_mode_t;

//  Creates a parser for program (as named in messages, "edgeplane-model")
//  with a one-line description for --help.
ep_config_t *
    ep_config_new (const char *program, const char *description);

//  Destroys the parser and the strings it stored; nulls *self_p.
//  String targets point into the parser: keep it while they are used.
void
    ep_config_destroy (ep_config_t **self_p);

//  Adds count options (the table is copied; targets must outlive parsing).
//  A duplicate name or a malformed entry is a programming error (assert).
void
    ep_config_add (ep_config_t *self, const ep_opt_t *opts, size_t count);

//  Says whether positional arguments are accepted; usage names them in
//  --help ("COMMAND [ARGS...]"). The default is EP_ARGS_NONE.
void
    ep_config_set_args (ep_config_t *self, ep_args_mode_t mode, const char *usage);

//  Parses argv (argv [0] is skipped) and the environment, and stores every
//  option's value. Returns 0; 1 if --help or -h was given (nothing stored);
//  or -1 with a one-line message in err ("edgeplane-model: invalid value
//  ..."). err may be NULL.
int
    ep_config_parse (ep_config_t *self, int argc, char **argv, char *err, size_t errlen);

//  ep_config_parse for main (): prints --help to stdout and exits 0, or
//  prints the error to stderr and exits 2; returns only on success.
void
    ep_config_parse_or_exit (ep_config_t *self, int argc, char **argv);

//  The --help text: description, usage, every option with its environment
//  variable, default and help. Caller frees.
char *
    ep_config_help (ep_config_t *self);

//  Positional arguments found by the last parse: count, and a
//  NULL-terminated array (owned by the parser; strings are argv's).
int
    ep_config_argc (ep_config_t *self);
char **
    ep_config_argv (ep_config_t *self);

//  Where the value of option name came from in the last parse: "flag",
//  "env", "default" or "derived"; NULL if there is no such option.
const char *
    ep_config_source (ep_config_t *self, const char *name);

//  Parses a duration ("500ms", "30s", "2m", "1h", "1m30s", "0") into ms.
//  Returns 0 or -1.
int
    ep_duration_parse (const char *text, int64_t *ms);

//  ---------------------------------------------------------------------
//  Options every service shares (docs/config.md).

//  Where others reach each service, and what it binds by default.
#define EP_DEFAULT_BUS_PUB          "tcp://127.0.0.1:7100"
#define EP_DEFAULT_BUS_SUB          "tcp://127.0.0.1:7101"
#define EP_DEFAULT_MODEL_API        "tcp://127.0.0.1:7001"
#define EP_DEFAULT_TERMINATORS_API  "tcp://127.0.0.1:7011"
#define EP_DEFAULT_REAPER_API       "tcp://127.0.0.1:7021"
#define EP_DEFAULT_WATCHDOG_API     "tcp://127.0.0.1:7031"
#define EP_DEFAULT_CHANNEL_LISTEN   "127.0.0.1:6262"

//  Each service's /metrics, /healthz, /readyz address (EDGEPLANE_HTTP_LISTEN).
#define EP_HTTP_LISTEN_MODEL        "127.0.0.1:9101"
#define EP_HTTP_LISTEN_TERMINATORS  "127.0.0.1:9102"
#define EP_HTTP_LISTEN_REAPER       "127.0.0.1:9103"
#define EP_HTTP_LISTEN_WATCHDOG     "127.0.0.1:9104"
#define EP_HTTP_LISTEN_BUS          "127.0.0.1:9105"
//  The console serves its page and API on its HTTP port (EDGEPLANE_CONSOLE_LISTEN).
#define EP_HTTP_LISTEN_CONSOLE      "127.0.0.1:8080"

//  The shared options' values after parsing. Strings belong to the parser.
typedef struct {
    char *data_dir;             //  EDGEPLANE_DATA_DIR: databases, keys, audit log
    char *keys_dir;             //  EDGEPLANE_KEYS_DIR: data_dir/keys unless set
    char *bus_pub;              //  EDGEPLANE_BUS_PUB: where publishers reach the bus
    char *bus_sub;              //  EDGEPLANE_BUS_SUB: where subscribers reach the bus
    char *model_api;            //  EDGEPLANE_MODEL_API
    char *terminators_api;      //  EDGEPLANE_TERMINATORS_API
    char *reaper_api;           //  EDGEPLANE_REAPER_API
    char *watchdog_api;         //  EDGEPLANE_WATCHDOG_API
    char *http_listen;          //  EDGEPLANE_HTTP_LISTEN; NULL if not declared
    char *log_level;            //  EDGEPLANE_LOG_LEVEL: error, warn, info, debug
    char *log_format;           //  EDGEPLANE_LOG_FORMAT: text, json
    char *ready_file;           //  --ready-file: NULL unless given
    char *instance_id;          //  EDGEPLANE_INSTANCE_ID: random hex unless set
} ep_common_opts_t;

//  Adds the shared options to self, storing into *opts (zeroed here), and
//  arranges that after parsing keys_dir and instance_id are derived when
//  unset. http_listen is this service's default for --http-listen, or NULL
//  for a program without an HTTP port (the option is then not declared).
void
    ep_common_opts_add (ep_config_t *self, ep_common_opts_t *opts, const char *http_listen);

#endif
