/*  cli.c: the pieces every command shares (see cli.h). */
#include "cli.h"
#include "ep_log.h"
#include <stdarg.h>

int
cli_fail (const char *command, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char message [1024];
    vsnprintf (message, sizeof message, format, args);
    va_end (args);
    fprintf (stderr, "edgeplane %s: %s\n", command, message);
    return CLI_FAIL;
}

void
cli_print_json (json_t *value)
{
    char *text = json_dumps (value, JSON_INDENT (2));
    printf ("%s\n", text);
    free (text);
    json_decref (value);
}

ep_config_t *
cli_parse (const char *command, const char *description, const char *usage,
           ep_common_opts_t *common, const ep_opt_t *opts, size_t nopts, int argc, char **argv)
{
    char program [64];
    snprintf (program, sizeof program, "edgeplane %s", command);
    ep_config_t *config = ep_config_new (program, description);
    ep_common_opts_add (config, common, NULL);
    if (opts && nopts)
        ep_config_add (config, opts, nopts);
    ep_config_set_args (config, usage? EP_ARGS_ANY: EP_ARGS_NONE, usage);
    char err [512];
    int rc = ep_config_parse (config, argc, argv, err, sizeof err);
    if (rc == 0) {
        ep_log_init_named ("edgeplane", common->log_level, common->log_format);
        return config;
    }
    if (rc == 1) {
        char *help = ep_config_help (config);
        fputs (help, stdout);
        free (help);
    }
    else
        fprintf (stderr, "%s\n", err);
    ep_config_destroy (&config);
    exit (rc == 1? CLI_OK: CLI_USAGE);
}

zcert_t *
cli_cert_load (const char *command, const char *keys_dir, const char *path, const char *name,
               const char *what, const char *hint)
{
    char *file = path? strdup (path): zsys_sprintf ("%s/curve/%s", keys_dir, name);
    zcert_t *cert = zcert_load (file);
    if (!cert)
        cli_fail (command, "cannot read %s %s: %s", what, file, hint);
    free (file);
    return cert;
}

int
cli_no_subcommand (const char *command, int argc, char **argv, const char *expected,
                   void (*usage) (const void *arg), const void *arg)
{
    if (argc >= 2 && (streq (argv [1], "--help") || streq (argv [1], "-h") || streq (argv [1], "help"))) {
        usage (arg);
        return CLI_OK;
    }
    fprintf (stderr, "edgeplane %s: %s%s%sexpected %s (see edgeplane %s --help)\n", command,
             argc >= 2? "unknown subcommand \"": "", argc >= 2? argv [1]: "", argc >= 2? "\"; ": "",
             expected, command);
    return CLI_USAGE;
}
