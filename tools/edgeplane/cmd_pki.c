/*  edgeplane pki: keys and certificates.
      pki init [--force]                      the control plane's keys and TLS CA
      pki issue ROLE ID [--out DIR] [--days N]
      pki issue ROLE --count N --prefix P     a TLS bundle (or N) for the channel
      pki revoke ID                           every TLS certificate of ID into the CRL
      pki issue-curve ROLE NAME [--out DIR]   a CURVE certificate for a client
*/
#include "cli.h"
#include "ep_keys.h"
#include "ep_pki.h"
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
          .help = "Replace the control plane's own keys and server certificate (the CA and issued ones stay valid)." },
    };
    ep_common_opts_t common;
    ep_config_t *config = cli_parse ("pki init", "Create the keys, TLS CA and certificates the control plane needs (idempotent).",
                                     NULL, &common, opts, EP_COUNT (opts), argc, argv);
    char err [1024];
    int rc = ep_keys_init (common.keys_dir, force, err, sizeof err);
    if (rc == 0)
        rc = ep_pki_init (common.keys_dir, force, err, sizeof err);
    if (rc == 0)
        printf ("keys ready in %s (CURVE in curve/, TLS CA in tls/)\n", common.keys_dir);
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
    ep_config_t *config = cli_parse ("pki issue-curve",
        "Issue a CURVE certificate (role subscriber or operator) that the bus and services accept at once.",
        "subscriber|operator NAME", &common, opts, EP_COUNT (opts), argc, argv);
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

static int
s_issue (int argc, char **argv)
{
    static char *out, *prefix;
    static int64_t days, count;
    ep_opt_t opts [] = {
        { .name = "out", .def = ".", .type = EP_OPT_STRING, .str = &out,
          .help = "Directory for ID.key (keep secret), ID.crt and ca.crt." },
        { .name = "days", .def = "365", .type = EP_OPT_INT, .num = &days, .min = 1, .max = EP_PKI_DAYS_MAX,
          .help = "Validity in days (never beyond the CA's own)." },
        { .name = "count", .def = "0", .type = EP_OPT_INT, .num = &count, .min = 0, .max = 1000000,
          .help = "Issue this many bundles, ids PREFIX0 .. PREFIX<count-1>, instead of one (simulated fleets, etcd members)." },
        { .name = "prefix", .type = EP_OPT_STRING, .str = &prefix,
          .help = "Id prefix for --count." },
    };
    ep_common_opts_t common;
    ep_config_t *config = cli_parse ("pki issue",
        "Issue a TLS bundle (key, certificate with SAN URI edgeplane://ROLE/ID, CA certificate) for the router-facing channel, or for an etcd member (role etcd, valid for DNS ID, localhost and 127.0.0.1).",
        "router|ctrl|client|etcd ID | router|ctrl|client|etcd --count N --prefix P", &common, opts, EP_COUNT (opts),
        argc, argv);
    int rc = CLI_USAGE;
    int nargs = ep_config_argc (config);
    char **args = ep_config_argv (config);
    const char *role = nargs >= 1? args [0]: "";
    if (nargs < 1 || !(streq (role, EP_PKI_ROLE_ROUTER) || streq (role, EP_PKI_ROLE_CTRL)
                    || streq (role, EP_PKI_ROLE_CLIENT) || streq (role, EP_PKI_ROLE_ETCD)))
        fprintf (stderr, "edgeplane pki issue: role \"%s\" is not one of router, ctrl, client, etcd, "
                 "e.g. `edgeplane pki issue router edge-1`\n", role);
    else
    if (count == 0 && (nargs != 2 || prefix))
        fprintf (stderr, "edgeplane pki issue: expected ROLE ID, e.g. `edgeplane pki issue router edge-1` "
                 "(or --count N --prefix P for many)\n");
    else
    if (count == 0 && !ep_id_valid (args [1]))
        fprintf (stderr, "edgeplane pki issue: invalid id \"%s\": use 1 to 64 of A-Z a-z 0-9 _ -\n", args [1]);
    else
    if (count > 0 && (nargs != 1 || !prefix))
        fprintf (stderr, "edgeplane pki issue: --count takes --prefix and no ID, "
                 "e.g. `edgeplane pki issue router --count 1000 --prefix sim-`\n");
    else {
        char err [1024];
        int64_t start = ep_mono_us ();
        int failed = count > 0
            ? ep_pki_issue_batch (common.keys_dir, role, prefix, (int) count, out, (int) days, err, sizeof err)
            : ep_pki_issue (common.keys_dir, role, args [1], out, (int) days, err, sizeof err);
        int64_t elapsed = ep_mono_us () - start;
        if (failed)
            rc = cli_fail ("pki issue", "%s", err);
        else {
            if (count > 0)
                printf ("issued %" PRId64 " %s bundles %s0 .. %s%" PRId64 " in %s (%" PRId64 " ms, %" PRId64 " us each)\n",
                        count, role, prefix, prefix, count - 1, out, elapsed / 1000, elapsed / count);
            else
                printf ("issued %s %s: %s/%s.key (keep secret), %s/%s.crt, %s/ca.crt\n",
                        role, args [1], out, args [1], out, args [1], out);
            rc = CLI_OK;
        }
    }
    ep_config_destroy (&config);
    return rc;
}

static int
s_revoke (int argc, char **argv)
{
    ep_common_opts_t common;
    ep_config_t *config = cli_parse ("pki revoke",
        "Revoke every TLS certificate issued to ID: adds them to the CRL (tls/ca.crl), which the watchdog reloads.",
        "ID", &common, NULL, 0, argc, argv);
    int rc = CLI_USAGE;
    char **args = ep_config_argv (config);
    if (ep_config_argc (config) != 1)
        fprintf (stderr, "edgeplane pki revoke: expected ID, e.g. `edgeplane pki revoke edge-1`\n");
    else {
        char err [1024];
        if (ep_pki_revoke (common.keys_dir, args [0], err, sizeof err) != 0)
            rc = cli_fail ("pki revoke", "%s", err);
        else {
            printf ("revoked every certificate issued to %s: %s/tls/ca.crl updated\n",
                    args [0], common.keys_dir);
            rc = CLI_OK;
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
    if (argc >= 2 && streq (argv [1], "issue"))
        return s_issue (argc - 1, argv + 1);
    if (argc >= 2 && streq (argv [1], "revoke"))
        return s_revoke (argc - 1, argv + 1);
    if (argc >= 2 && streq (argv [1], "issue-curve"))
        return s_issue_curve (argc - 1, argv + 1);
    FILE *out = argc >= 2 && (streq (argv [1], "--help") || streq (argv [1], "-h"))? stdout: stderr;
    fprintf (out, "Usage: edgeplane pki init [--force]\n"
                  "       edgeplane pki issue router|ctrl|client ID [--out DIR] [--days N]\n"
                  "       edgeplane pki issue router|ctrl|client --count N --prefix P [--out DIR] [--days N]\n"
                  "       edgeplane pki revoke ID\n"
                  "       edgeplane pki issue-curve subscriber|operator NAME [--out DIR]\n"
                  "(edgeplane pki SUBCOMMAND --help for more)\n");
    return out == stdout? CLI_OK: CLI_USAGE;
}
