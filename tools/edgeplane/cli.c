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
cli_bus_certs (const char *command, const char *keys_dir, const char *cert_path, const char *bus_key_path,
               zcert_t **cert_p, zcert_t **bus_p)
{
    *cert_p = cli_cert_load (command, keys_dir, cert_path, "subscriber.cert_secret", "the certificate",
                             "run `edgeplane pki init`, or pass --cert with one from `edgeplane pki issue-curve`");
    *bus_p = *cert_p? cli_cert_load (command, keys_dir, bus_key_path, "bus.cert", "the bus public certificate",
                                     "pass --bus-key (bus.cert from `edgeplane pki issue-curve`)"): NULL;
    return *bus_p? 0: -1;
}

ep_subscriber_t *
cli_bus_subscriber (const char *command, const char *bus_sub, zcert_t *cert, zcert_t *bus)
{
    ep_subscriber_t *sub = ep_subscriber_new (bus_sub, cert, zcert_public_txt (bus), 4u * 1024u * 1024u,
                                              NULL, NULL);
    if (!sub)
        cli_fail (command, "invalid bus address %s (EDGEPLANE_BUS_SUB)", bus_sub);
    return sub;
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
