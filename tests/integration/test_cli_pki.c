/*  test_cli_pki.c: `edgeplane pki init|issue|revoke` (the TLS half): exit
    codes, files, modes, and the CRL the commands leave behind. */
#include <criterion/criterion.h>
#include "ep_test.h"
#include "ep_pki.h"
#include <openssl/pem.h>
#include <sys/stat.h>

static char *s_dir;             //  data dir of this test

static void
s_setup (void)
{
    s_dir = ep_tmpdir_new ("cli-pki");
}

static void
s_teardown (void)
{
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

//  Runs the CLI, asserts its exit status and that its output has expect.
static void
s_expect (const char *args, int status, const char *expect)
{
    char *out = NULL;
    int rc = s_cli (args, &out);
    cr_assert_eq (rc, status, "`edgeplane %s` exited %d: %s", args, rc, out);
    cr_assert (strstr (out, expect), "`edgeplane %s` did not say \"%s\": %s", args, expect, out);
    free (out);
}

static mode_t
s_mode (const char *sub, const char *name)
{
    char *path = zsys_sprintf ("%s/%s/%s", s_dir, sub, name);
    struct stat st;
    cr_assert_eq (stat (path, &st), 0, "missing %s", path);
    free (path);
    return st.st_mode & 0777;
}

static X509 *
s_cert (const char *sub, const char *name)
{
    char *path = zsys_sprintf ("%s/%s/%s", s_dir, sub, name);
    FILE *file = fopen (path, "r");
    cr_assert_not_null (file, "missing %s", path);
    X509 *cert = PEM_read_X509 (file, NULL, NULL, NULL);
    fclose (file);
    cr_assert_not_null (cert);
    free (path);
    return cert;
}

//  True if the CRL in the keys directory lists cert.
static bool
s_revoked (X509 *cert)
{
    char *path = zsys_sprintf ("%s/keys/tls/ca.crl", s_dir);
    FILE *file = fopen (path, "r");
    cr_assert_not_null (file);
    X509_CRL *crl = PEM_read_X509_CRL (file, NULL, NULL, NULL);
    fclose (file);
    cr_assert_not_null (crl);
    X509_REVOKED *entry = NULL;
    bool revoked = X509_CRL_get0_by_serial (crl, &entry, X509_get0_serialNumber (cert)) == 1;
    X509_CRL_free (crl);
    free (path);
    return revoked;
}

Test (cli_pki, init_creates_the_tls_ca_privately_and_keeps_it, .init = s_setup, .fini = s_teardown)
{
    s_expect ("pki init", 0, "TLS CA in tls/");
    cr_assert_eq (s_mode ("keys", "tls"), 0700);
    cr_assert_eq (s_mode ("keys/tls", "ca.key"), 0600);
    cr_assert_eq (s_mode ("keys/tls", "ca.crt"), 0644);
    cr_assert_eq (s_mode ("keys/tls", "ca.crl"), 0644);
    cr_assert_eq (s_mode ("keys/tls", "watchdog.key"), 0600);
    cr_assert_eq (s_mode ("keys/tls", "watchdog.crt"), 0644);
    cr_assert_eq (s_mode ("keys/curve", "watchdog.cert_secret"), 0600, "the CURVE half too");
    X509 *before = s_cert ("keys/tls", "ca.crt");
    s_expect ("pki init", 0, "keys ready");
    s_expect ("pki init --force", 0, "keys ready");
    X509 *after = s_cert ("keys/tls", "ca.crt");
    cr_assert_eq (X509_cmp (before, after), 0, "init, even --force, keeps the CA");
    X509_free (before);
    X509_free (after);
}

Test (cli_pki, issue_writes_bundles_and_refuses_mistakes, .init = s_setup, .fini = s_teardown)
{
    s_expect ("pki issue router edge-1 --out bundle", 1, "edgeplane pki init");
    s_expect ("pki init", 0, "keys ready");
    char *args = zsys_sprintf ("pki issue router edge-1 --days 30 --out '%s/bundle'", s_dir);
    s_expect (args, 0, "issued router edge-1");
    free (args);
    cr_assert_eq (s_mode ("bundle", "edge-1.key"), 0600);
    cr_assert_eq (s_mode ("bundle", "edge-1.crt"), 0644);
    cr_assert_eq (s_mode ("bundle", "ca.crt"), 0644);
    X509 *cert = s_cert ("bundle", "edge-1.crt");
    int days = 0, secs = 0;
    cr_assert_eq (ASN1_TIME_diff (&days, &secs, NULL, X509_get0_notAfter (cert)), 1);
    cr_assert (days >= 29 && days <= 30, "--days 30 gave %d", days);
    X509_free (cert);

    args = zsys_sprintf ("pki issue client --count 50 --prefix sim- --out '%s/fleet'", s_dir);
    s_expect (args, 0, "issued 50 client bundles sim-0 .. sim-49");
    free (args);
    cr_assert_eq (s_mode ("fleet", "sim-49.key"), 0600);
    cr_assert_eq (s_mode ("fleet", "ca.crt"), 0644);

    s_expect ("pki issue admin edge-2", 2, "router, ctrl, client");
    s_expect ("pki issue router", 2, "expected ROLE ID");
    s_expect ("pki issue router a b", 2, "expected ROLE ID");
    s_expect ("pki issue router a/b", 2, "invalid id");
    s_expect ("pki issue router --count 5", 2, "--prefix");
    s_expect ("pki issue router edge-2 --days 0", 2, "--days");
    s_expect ("pki issue --help", 0, "--count");
    s_expect ("pki", 2, "pki revoke ID");
}

Test (cli_pki, revoke_puts_every_certificate_of_the_id_in_the_crl, .init = s_setup, .fini = s_teardown)
{
    s_expect ("pki init", 0, "keys ready");
    char *args = zsys_sprintf ("pki issue router edge-1 --out '%s/one'", s_dir);
    s_expect (args, 0, "issued");
    free (args);
    args = zsys_sprintf ("pki issue router edge-1 --out '%s/two'", s_dir);
    s_expect (args, 0, "issued");
    free (args);
    args = zsys_sprintf ("pki issue router edge-2 --out '%s/one'", s_dir);
    s_expect (args, 0, "issued");
    free (args);
    X509 *first = s_cert ("one", "edge-1.crt");
    X509 *second = s_cert ("two", "edge-1.crt");
    X509 *other = s_cert ("one", "edge-2.crt");
    cr_assert_not (s_revoked (first));

    s_expect ("pki revoke edge-1", 0, "revoked every certificate issued to edge-1");
    cr_assert (s_revoked (first));
    cr_assert (s_revoked (second));
    cr_assert_not (s_revoked (other));
    cr_assert_eq (s_mode ("keys/tls", "ca.crl"), 0644);
    s_expect ("pki revoke edge-1", 0, "revoked");
    s_expect ("pki revoke nobody", 1, "no certificate was issued to 'nobody'");
    s_expect ("pki revoke", 2, "expected ID");
    X509_free (first);
    X509_free (second);
    X509_free (other);
}
