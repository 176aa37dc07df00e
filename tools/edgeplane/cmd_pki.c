/*  edgeplane pki: keys and certificates.
      pki init [--force]                      the control plane's keys
      pki issue-curve ROLE NAME [--out DIR]   a CURVE certificate for a client
*/
#include "cli.h"
#include "ep_keys.h"
#include <errno.h>

//  Copies a small file; returns 0 or -1 with errno set.
static int
s_copy (const char *src, const char *dst)
{
    FILE *in = fopen (src, "rb");
    if (!in)
        return -1;
    FILE *out = fopen (dst, "wb");
    int rc = out? 0: -1;
    char buf [4096];
    size_t n;
    while (rc == 0 && (n = fread (buf, 1, sizeof buf, in)) > 0)
        if (fwrite (buf, 1, n, out) != n)
            rc = -1;
    if (out && fclose (out) != 0)
        rc = -1;
    fclose (in);
    return rc;
}

static int
s_init (int argc, char **argv)
{
    static bool force;
    ep_opt_t opts [] = {
        { .name = "force", .def = "false", .type = EP_OPT_BOOL, .flag = &force,
          .help = "Replace the control plane's own keys (issued ones stay authorised)." },
    };
    ep_common_opts_t common;
    int code;
    ep_config_t *config = cli_parse ("pki init", "Create the keys and certificates the control plane needs (idempotent).",
                                     NULL, &common, opts, EP_COUNT (opts), argc, argv, &code);
    if (!config)
        return code;
    char err [512];
    int rc = ep_keys_init (common.keys_dir, force, err, sizeof err);
    if (rc == 0)
        printf ("keys ready in %s\n", common.keys_dir);
    else
        cli_fail ("pki init", "%s", err);
    ep_config_destroy (&config);
    return rc == 0? CLI_OK: CLI_FAIL;
}

static int
s_issue_curve (int argc, char **argv)
{
    static char *out;
    ep_opt_t opts [] = {
        { .name = "out", .def = ".", .type = EP_OPT_STRING, .str = &out,
          .help = "Directory for NAME.cert, NAME.cert_secret and the services' public certs (bus.cert, model.cert, ...)." },
    };
    ep_common_opts_t common;
    int code;
    ep_config_t *config = cli_parse ("pki issue-curve",
        "Issue a CURVE certificate (role subscriber or operator) that the bus and services accept at once.",
        "subscriber|operator NAME", &common, opts, EP_COUNT (opts), argc, argv, &code);
    if (!config)
        return code;
    int rc = CLI_USAGE;
    char **args = ep_config_argv (config);
    if (ep_config_argc (config) != 2)
        fprintf (stderr, "edgeplane pki issue-curve: expected ROLE NAME, e.g. `edgeplane pki issue-curve subscriber grafana`\n");
    else
    if (!streq (args [0], EP_ROLE_SUBSCRIBER) && !streq (args [0], EP_ROLE_OPERATOR))
        fprintf (stderr, "edgeplane pki issue-curve: role \"%s\" is not one of subscriber, operator\n", args [0]);
    else {
        char err [512];
        if (zsys_dir_create ("%s", out) != 0 && errno != EEXIST)
            rc = cli_fail ("pki issue-curve", "cannot create %s: %s", out, strerror (errno));
        else
        if (ep_keys_issue (common.keys_dir, args [1], args [0], out, err, sizeof err) != 0)
            rc = cli_fail ("pki issue-curve", "%s", err);
        else {
            //  The holder also needs the services' public keys to connect.
            rc = CLI_OK;
            for (size_t i = 0; rc == CLI_OK && ep_keys_services [i]; i++) {
                char *src = zsys_sprintf ("%s/curve/%s.cert", common.keys_dir, ep_keys_services [i]);
                char *dst = zsys_sprintf ("%s/%s.cert", out, ep_keys_services [i]);
                if (s_copy (src, dst) != 0)
                    rc = cli_fail ("pki issue-curve", "issued, but cannot copy %s to %s: %s",
                                   src, dst, strerror (errno));
                free (src);
                free (dst);
            }
            if (rc == CLI_OK)
                printf ("issued %s %s: %s/%s.cert_secret (keep secret), %s/%s.cert, and the services' public keys %s/<service>.cert\n",
                        args [0], args [1], out, args [1], out, args [1], out);
        }
    }
    ep_config_destroy (&config);
    return rc;
}

int
cli_pki (int argc, char **argv)
{
    if (argc >= 2 && streq (argv [1], "init"))
        return s_init (argc - 1, argv + 1);
    if (argc >= 2 && streq (argv [1], "issue-curve"))
        return s_issue_curve (argc - 1, argv + 1);
    FILE *out = argc >= 2 && (streq (argv [1], "--help") || streq (argv [1], "-h"))? stdout: stderr;
    fprintf (out, "Usage: edgeplane pki init [--force]\n"
                  "       edgeplane pki issue-curve subscriber|operator NAME [--out DIR]\n"
                  "(edgeplane pki SUBCOMMAND --help for more)\n");
    return out == stdout? CLI_OK: CLI_USAGE;
}
