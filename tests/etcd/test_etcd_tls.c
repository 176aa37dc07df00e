/*  test_etcd_tls.c: ep_etcd reaches an etcd cluster that requires client
    certificates, with a CA, a member certificate (role etcd) and a client
    certificate (role client) all issued by ep_pki (`edgeplane pki`); a
    client without a certificate is refused with a message. */
#include <criterion/criterion.h>
#include "ep_etcd_cluster.h"
#include "ep_pki.h"
#include "ep_test.h"

static char *s_keys;
static char s_cluster [256];

static void
s_stop (void)
{
    char line [1024];
    snprintf (line, sizeof line, "%s/tests/support/etcd-cluster stop %s", EP_SOURCE_DIR, s_cluster);
    cr_assert_eq (system (line), 0);
    ep_tmpdir_remove (&s_keys);
}

Test (etcd_tls, client_certificates_from_edgeplane_pki)
{
    s_keys = ep_tmpdir_new ("etcd-tls");
    char err [512], tls [512];
    cr_assert_eq (ep_pki_init (s_keys, false, err, sizeof err), 0, "%s", err);
    snprintf (tls, sizeof tls, "%s/bundle", s_keys);
    cr_assert_eq (ep_pki_issue (s_keys, EP_PKI_ROLE_ETCD, "etcd", tls, 30, err, sizeof err), 0, "%s", err);
    cr_assert_eq (ep_pki_issue (s_keys, EP_PKI_ROLE_CLIENT, "client", tls, 30, err, sizeof err), 0, "%s", err);
    snprintf (s_cluster, sizeof s_cluster, "/dev/shm/edgeplane-etcd-tls-%d", (int) getpid ());
    char line [4096];
    snprintf (line, sizeof line, "ETCD_TLS_DIR=%s %s/tests/support/etcd-cluster start %s > /dev/null",
              tls, EP_SOURCE_DIR, s_cluster);
    cr_assert_eq (system (line), 0, "the TLS cluster did not start (logs in %s)", s_cluster);

    char path [512], endpoints [512] = "";
    snprintf (path, sizeof path, "%s/endpoints", s_cluster);
    FILE *file = fopen (path, "r");
    cr_assert (file && fgets (endpoints, sizeof endpoints, file));
    fclose (file);
    endpoints [strcspn (endpoints, "\n")] = 0;
    cr_assert (strncmp (endpoints, "https://", 8) == 0, "%s", endpoints);

    char ca [600], crt [600], key [600];
    snprintf (ca, sizeof ca, "%s/ca.crt", tls);
    snprintf (crt, sizeof crt, "%s/client.crt", tls);
    snprintf (key, sizeof key, "%s/client.key", tls);
    ep_etcd_config_t config = { .endpoints = endpoints, .ca_file = ca, .cert_file = crt,
                                .key_file = key };
    ep_etcd_t *client = ep_etcd_new (&config, err, sizeof err);
    cr_assert (client, "%s", err);
    ep_etcd_capture_t c = { 0 };
    ep_etcd_put_t put = { .key = ep_etcd_str ("/tls/k"), .value = ep_etcd_str ("v") };
    ep_etcd_put (client, &put, ep_etcd_capture, &c);
    cr_assert (ep_etcd_await (client, &c, 5000));
    cr_assert_str_empty (c.error, "%s", c.error);
    cr_assert_eq (c.code, 0, "%s", c.etcd_error);
    memset (&c, 0, sizeof c);
    ep_etcd_range_t range = { .key = ep_etcd_str ("/tls/k") };
    ep_etcd_range (client, &range, ep_etcd_capture, &c);
    cr_assert (ep_etcd_await (client, &c, 5000));
    cr_assert_eq (c.nkvs, 1);
    cr_assert_str_eq (c.values [0], "v");
    ep_etcd_destroy (&client);

    //  The CA alone (no client certificate): the member refuses us.
    ep_etcd_config_t anonymous = { .endpoints = endpoints, .ca_file = ca };
    client = ep_etcd_new (&anonymous, err, sizeof err);
    cr_assert (client, "%s", err);
    memset (&c, 0, sizeof c);
    ep_etcd_range (client, &range, ep_etcd_capture, &c);
    cr_assert (ep_etcd_await (client, &c, 10000));
    cr_assert (c.error [0], "a client without a certificate was served");
    cr_assert (strstr (c.error, "https://127.0.0.1:"), "%s", c.error);
    ep_etcd_destroy (&client);
    s_stop ();
}
