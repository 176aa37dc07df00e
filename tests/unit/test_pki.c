/*  test_pki.c: the TLS CA, bundles, revocation, and real TLS 1.3
    handshakes between the contexts ep_pki builds (over a BIO pair). */
#include <criterion/criterion.h>
#include "ep_test.h"
#include "ep_pki_tls.h"
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

static char *s_tmp;
static char s_keys [512];       //  keys directory of the test (not created yet)
static char s_out [512];        //  where bundles go

static void
s_setup (void)
{
    s_tmp = ep_tmpdir_new ("pki");
    snprintf (s_keys, sizeof s_keys, "%s/etc/keys", s_tmp);
    snprintf (s_out, sizeof s_out, "%s/bundles", s_tmp);
}

static void
s_teardown (void)
{
    ep_tmpdir_remove (&s_tmp);
}

static void
s_init (const char *keys, bool force)
{
    char err [512] = "";
    cr_assert_eq (ep_pki_init (keys, force, err, sizeof err), 0, "init: %s", err);
}

static void
s_issue (const char *keys, const char *role, const char *id)
{
    char err [512] = "";
    cr_assert_eq (ep_pki_issue (keys, role, id, s_out, 30, err, sizeof err), 0, "issue: %s", err);
}

static mode_t
s_mode (const char *dir, const char *name)
{
    char path [1024];
    snprintf (path, sizeof path, "%s/%s", dir, name);
    struct stat st;
    cr_assert_eq (stat (path, &st), 0, "missing %s", path);
    return st.st_mode & 0777;
}

//  Whole file; caller frees.
static char *
s_slurp (const char *dir, const char *name)
{
    char path [1024];
    snprintf (path, sizeof path, "%s/%s", dir, name);
    char *cmd = zsys_sprintf ("cat '%s'", path);
    char *text = NULL;
    cr_assert_eq (ep_run (cmd, &text), 0, "cannot read %s", path);
    free (cmd);
    return text;
}

static X509 *
s_cert (const char *dir, const char *name)
{
    char path [1024];
    snprintf (path, sizeof path, "%s/%s", dir, name);
    FILE *file = fopen (path, "r");
    cr_assert_not_null (file, "missing %s", path);
    X509 *cert = PEM_read_X509 (file, NULL, NULL, NULL);
    fclose (file);
    cr_assert_not_null (cert, "not a certificate: %s", path);
    return cert;
}

static X509_CRL *
s_crl (void)
{
    char path [1024];
    snprintf (path, sizeof path, "%s/tls/ca.crl", s_keys);
    FILE *file = fopen (path, "r");
    cr_assert_not_null (file);
    X509_CRL *crl = PEM_read_X509_CRL (file, NULL, NULL, NULL);
    fclose (file);
    cr_assert_not_null (crl);
    return crl;
}

static long
s_crl_number (X509_CRL *crl)
{
    ASN1_INTEGER *number = X509_CRL_get_ext_d2i (crl, NID_crl_number, NULL, NULL);
    cr_assert_not_null (number);
    long value = ASN1_INTEGER_get (number);
    ASN1_INTEGER_free (number);
    return value;
}

//  Entries in crl (an empty CRL has no list at all).
static int
s_revoked (X509_CRL *crl)
{
    STACK_OF (X509_REVOKED) *entries = X509_CRL_get_REVOKED (crl);
    return entries? sk_X509_REVOKED_num (entries): 0;
}

static char *
s_tls (const char *keys)
{
    return zsys_sprintf ("%s/tls", keys);
}

static SSL_CTX *
s_server (const char *keys)
{
    char err [512] = "";
    SSL_CTX *ctx = ep_pki_server_ctx (keys, err, sizeof err);
    cr_assert_not_null (ctx, "server ctx: %s", err);
    return ctx;
}

//  A client context from the bundle of id in s_out.
static SSL_CTX *
s_client (const char *id)
{
    char cert [1024], key [1024], ca [1024], err [512] = "";
    snprintf (cert, sizeof cert, "%s/%s.crt", s_out, id);
    snprintf (key, sizeof key, "%s/%s.key", s_out, id);
    snprintf (ca, sizeof ca, "%s/ca.crt", s_out);
    SSL_CTX *ctx = ep_pki_client_ctx (cert, key, ca, err, sizeof err);
    cr_assert_not_null (ctx, "client ctx: %s", err);
    return ctx;
}

//  One TLS connection over an in-memory BIO pair.
typedef struct {
    SSL *client;                //  the connecting end
    SSL *server;                //  the accepting end
    bool client_ok;             //  the client completed its handshake
    bool server_ok;             //  the server completed its handshake
} s_conn_t;

static bool
s_wants (SSL *ssl, int rc)
{
    int code = SSL_get_error (ssl, rc);
    return code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE;
}

//  Runs the handshake until both ends finished or one failed. TLS 1.3
//  clients finish before the server has checked their certificate, so a
//  connection is established only when the server also finished.
static s_conn_t
s_handshake (SSL_CTX *client_ctx, SSL_CTX *server_ctx)
{
    s_conn_t conn = { SSL_new (client_ctx), SSL_new (server_ctx), false, false };
    cr_assert (conn.client && conn.server);
    BIO *client_bio, *server_bio;
    cr_assert_eq (BIO_new_bio_pair (&client_bio, 0, &server_bio, 0), 1);
    SSL_set_bio (conn.client, client_bio, client_bio);
    SSL_set_bio (conn.server, server_bio, server_bio);
    SSL_set_connect_state (conn.client);
    SSL_set_accept_state (conn.server);
    bool failed = false;
    for (int round = 0; round < 20 && !failed && !(conn.client_ok && conn.server_ok); round++) {
        if (!conn.client_ok) {
            int rc = SSL_do_handshake (conn.client);
            conn.client_ok = rc == 1;
            failed = rc != 1 && !s_wants (conn.client, rc);
        }
        if (!conn.server_ok && !failed) {
            int rc = SSL_do_handshake (conn.server);
            conn.server_ok = rc == 1;
            failed = rc != 1 && !s_wants (conn.server, rc);
        }
    }
    ERR_clear_error ();
    return conn;
}

static void
s_conn_free (s_conn_t *conn)
{
    SSL_free (conn->client);
    SSL_free (conn->server);
}

//  True if a connection from the bundle of id to keys' server gets through.
static bool
s_accepted (const char *id, SSL_CTX *server_ctx)
{
    SSL_CTX *client_ctx = s_client (id);
    s_conn_t conn = s_handshake (client_ctx, server_ctx);
    bool ok = conn.client_ok && conn.server_ok;
    s_conn_free (&conn);
    SSL_CTX_free (client_ctx);
    return ok;
}

Test (pki, init_creates_the_ca_crl_and_server_certificate_privately,
      .init = s_setup, .fini = s_teardown)
{
    s_init (s_keys, false);
    char *tls = s_tls (s_keys);
    cr_assert_eq (s_mode (s_keys, "tls"), 0700);
    cr_assert_eq (s_mode (tls, "ca.key"), 0600);
    cr_assert_eq (s_mode (tls, "ca.crt"), 0644);
    cr_assert_eq (s_mode (tls, "ca.crl"), 0644);
    cr_assert_eq (s_mode (tls, "watchdog.key"), 0600);
    cr_assert_eq (s_mode (tls, "watchdog.crt"), 0644);
    cr_assert_eq (s_mode (tls, "issued.txt"), 0600);

    X509 *ca = s_cert (tls, "ca.crt");
    cr_assert_eq (X509_check_ca (ca), 1, "basicConstraints CA:TRUE");
    cr_assert (X509_get_extension_flags (ca) & EXFLAG_SS, "self-signed");
    cr_assert_eq (X509_get_key_usage (ca), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
    char cn [64];
    X509_NAME_get_text_by_NID (X509_get_subject_name (ca), NID_commonName, cn, sizeof cn);
    cr_assert_str_eq (cn, "edgeplane CA");
    char group [32];
    cr_assert_eq (EVP_PKEY_get_group_name (X509_get0_pubkey (ca), group, sizeof group, NULL), 1);
    cr_assert_str_eq (group, "prime256v1");
    int days = 0, secs = 0;
    cr_assert_eq (ASN1_TIME_diff (&days, &secs, NULL, X509_get0_notAfter (ca)), 1);
    cr_assert (days > 3640 && days <= 3650, "10 years, not %d days", days);

    X509_CRL *crl = s_crl ();
    cr_assert_eq (X509_CRL_verify (crl, X509_get0_pubkey (ca)), 1, "CRL signed by the CA");
    cr_assert_eq (s_revoked (crl), 0);
    cr_assert_eq (ASN1_TIME_diff (&days, &secs, NULL, X509_CRL_get0_nextUpdate (crl)), 1);
    cr_assert (days > 3600, "nextUpdate far ahead, not in %d days", days);
    cr_assert_eq (s_crl_number (crl), 1);

    //  The server certificate: a controller, reachable as localhost.
    X509 *server = s_cert (tls, "watchdog.crt");
    cr_assert_eq (X509_verify (server, X509_get0_pubkey (ca)), 1);
    cr_assert_eq (X509_check_host (server, "localhost", 0, 0, NULL), 1);
    cr_assert_eq (X509_check_ip_asc (server, "127.0.0.1", 0), 1);
    cr_assert (X509_get_extended_key_usage (server) & XKU_SSL_SERVER);
    cr_assert_eq (X509_check_ca (server), 0);
    char *issued = s_slurp (tls, "issued.txt");
    cr_assert (strstr (issued, " ctrl watchdog "), "%s", issued);
    free (issued);
    X509_free (server);
    X509_CRL_free (crl);
    X509_free (ca);
    free (tls);
}

Test (pki, init_is_idempotent_and_force_renews_only_the_server_certificate,
      .init = s_setup, .fini = s_teardown)
{
    s_init (s_keys, false);
    char *tls = s_tls (s_keys);
    char *ca = s_slurp (tls, "ca.crt");
    char *server = s_slurp (tls, "watchdog.crt");
    char *crl = s_slurp (tls, "ca.crl");
    chmod (tls, 0755);
    s_init (s_keys, false);
    cr_assert_eq (s_mode (s_keys, "tls"), 0700, "init makes tls/ private again");
    char *ca2 = s_slurp (tls, "ca.crt");
    char *server2 = s_slurp (tls, "watchdog.crt");
    char *crl2 = s_slurp (tls, "ca.crl");
    cr_assert_str_eq (ca, ca2);
    cr_assert_str_eq (server, server2);
    cr_assert_str_eq (crl, crl2);

    s_init (s_keys, true);
    char *ca3 = s_slurp (tls, "ca.crt");
    char *server3 = s_slurp (tls, "watchdog.crt");
    cr_assert_str_eq (ca, ca3, "--force keeps the CA: issued bundles stay valid");
    cr_assert_str_neq (server, server3, "--force renews the server certificate");

    //  A missing server key is made again, not an error.
    char path [1024];
    snprintf (path, sizeof path, "%s/watchdog.key", tls);
    cr_assert_eq (unlink (path), 0);
    s_init (s_keys, false);
    cr_assert_eq (s_mode (tls, "watchdog.key"), 0600);

    //  A CA certificate without its key is a clear error.
    snprintf (path, sizeof path, "%s/ca.key", tls);
    cr_assert_eq (unlink (path), 0);
    char err [512] = "";
    cr_assert_eq (ep_pki_init (s_keys, false, err, sizeof err), -1);
    cr_assert (strstr (err, "ca.key is missing") && strstr (err, "backup"), "%s", err);
    free (ca); free (ca2); free (ca3);
    free (server); free (server2); free (server3);
    free (crl); free (crl2);
    free (tls);
}

Test (pki, issued_router_bundle_handshakes_and_carries_its_identity,
      .init = s_setup, .fini = s_teardown)
{
    s_init (s_keys, false);
    s_issue (s_keys, "router", "r1");
    cr_assert_eq (s_mode (s_out, "r1.key"), 0600);
    cr_assert_eq (s_mode (s_out, "r1.crt"), 0644);
    cr_assert_eq (s_mode (s_out, "ca.crt"), 0644);
    cr_assert_eq (s_mode (s_tmp, "bundles"), 0700);

    X509 *cert = s_cert (s_out, "r1.crt");
    X509 *ca = s_cert (s_out, "ca.crt");
    cr_assert_eq (X509_verify (cert, X509_get0_pubkey (ca)), 1, "signed by the CA");
    cr_assert_eq (X509_get_extended_key_usage (cert), XKU_SSL_CLIENT, "clientAuth only");
    BIGNUM *serial = ASN1_INTEGER_to_BN (X509_get0_serialNumber (cert), NULL);
    cr_assert (BN_num_bits (serial) > 100 && BN_num_bits (serial) <= 128, "random 128-bit serial");
    BN_free (serial);

    SSL_CTX *server_ctx = s_server (s_keys);
    SSL_CTX *client_ctx = s_client ("r1");
    s_conn_t conn = s_handshake (client_ctx, server_ctx);
    cr_assert (conn.client_ok && conn.server_ok, "handshake: server verify %ld",
               SSL_get_verify_result (conn.server));
    cr_assert_eq (SSL_version (conn.server), TLS1_3_VERSION);
    char role [16], id [80];
    cr_assert_eq (ep_pki_peer_identity (conn.server, role, sizeof role, id, sizeof id), 0);
    cr_assert_str_eq (role, "router");
    cr_assert_str_eq (id, "r1");
    //  And the router knows it reached a controller.
    cr_assert_eq (ep_pki_peer_identity (conn.client, role, sizeof role, id, sizeof id), 0);
    cr_assert_str_eq (role, "ctrl");
    cr_assert_str_eq (id, "watchdog");
    //  A buffer too small is refused, not truncated.
    cr_assert_eq (ep_pki_peer_identity (conn.server, role, sizeof role, id, 2), -1);
    s_conn_free (&conn);

    //  The recorded serial is the certificate's.
    BIGNUM *bn = ASN1_INTEGER_to_BN (X509_get0_serialNumber (cert), NULL);
    char *hex = BN_bn2hex (bn);
    char *tls = s_tls (s_keys);
    char *issued = s_slurp (tls, "issued.txt");
    char *line = zsys_sprintf ("%s router r1 ", hex);
    cr_assert (strstr (issued, line), "%s not in %s", line, issued);
    free (line);
    free (issued);
    free (tls);
    OPENSSL_free (hex);
    BN_free (bn);
    SSL_CTX_free (client_ctx);
    SSL_CTX_free (server_ctx);
    X509_free (ca);
    X509_free (cert);
}

Test (pki, server_context_is_tls13_only_without_tickets_or_cache,
      .init = s_setup, .fini = s_teardown)
{
    s_init (s_keys, false);
    SSL_CTX *ctx = s_server (s_keys);
    cr_assert_eq (SSL_CTX_get_min_proto_version (ctx), TLS1_3_VERSION);
    cr_assert (SSL_CTX_get_options (ctx) & SSL_OP_NO_TICKET);
    cr_assert_eq (SSL_CTX_get_num_tickets (ctx), 0);
    cr_assert_eq (SSL_CTX_get_session_cache_mode (ctx), SSL_SESS_CACHE_OFF);
    cr_assert (SSL_CTX_get_mode (ctx) & SSL_MODE_RELEASE_BUFFERS);
    cr_assert_eq (SSL_CTX_get_verify_mode (ctx), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
    SSL_CTX_free (ctx);
}

Test (pki, certificates_of_another_ca_are_refused_both_ways, .init = s_setup, .fini = s_teardown)
{
    char other [600];
    snprintf (other, sizeof other, "%s/other-keys", s_tmp);
    s_init (s_keys, false);
    s_init (other, false);
    s_issue (other, "router", "intruder");     //  out/ca.crt is now the other CA
    SSL_CTX *server_ctx = s_server (s_keys);
    SSL_CTX *client_ctx = s_client ("intruder");
    s_conn_t conn = s_handshake (client_ctx, server_ctx);
    cr_assert_not (conn.client_ok && conn.server_ok);
    s_conn_free (&conn);
    SSL_CTX_free (client_ctx);

    //  The server refuses the client whatever the client trusts.
    char cert [1024], key [1024], ca [1024], err [512] = "";
    snprintf (cert, sizeof cert, "%s/intruder.crt", s_out);
    snprintf (key, sizeof key, "%s/intruder.key", s_out);
    snprintf (ca, sizeof ca, "%s/tls/ca.crt", s_keys);
    client_ctx = ep_pki_client_ctx (cert, key, ca, err, sizeof err);
    cr_assert_not_null (client_ctx, "%s", err);
    conn = s_handshake (client_ctx, server_ctx);
    cr_assert (conn.client_ok, "the client trusts the server");
    cr_assert_not (conn.server_ok);
    cr_assert_eq (SSL_get_verify_result (conn.server), X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
    char role [16], id [80];
    cr_assert_eq (ep_pki_peer_identity (conn.server, role, sizeof role, id, sizeof id), -1);
    s_conn_free (&conn);
    SSL_CTX_free (client_ctx);
    SSL_CTX_free (server_ctx);
}

Test (pki, revoked_certificate_is_refused_after_reload_and_others_still_accepted,
      .init = s_setup, .fini = s_teardown)
{
    s_init (s_keys, false);
    s_issue (s_keys, "router", "r1");
    s_issue (s_keys, "router", "r2");
    SSL_CTX *server_ctx = s_server (s_keys);
    cr_assert (s_accepted ("r1", server_ctx));
    char err [512] = "";
    cr_assert_eq (ep_pki_revoke (s_keys, "r1", err, sizeof err), 0, "%s", err);
    X509_CRL *crl = s_crl ();
    cr_assert_eq (s_revoked (crl), 1);
    cr_assert_eq (s_crl_number (crl), 2);
    X509_CRL_free (crl);
    cr_assert (s_accepted ("r1", server_ctx), "the listener sees the CRL only once reloaded");

    cr_assert_eq (ep_pki_reload_crl (server_ctx, s_keys, err, sizeof err), 0, "%s", err);
    SSL_CTX *client_ctx = s_client ("r1");
    s_conn_t conn = s_handshake (client_ctx, server_ctx);
    cr_assert_not (conn.server_ok);
    cr_assert_eq (SSL_get_verify_result (conn.server), X509_V_ERR_CERT_REVOKED);
    s_conn_free (&conn);
    SSL_CTX_free (client_ctx);
    cr_assert (s_accepted ("r2", server_ctx));

    //  Revoking again adds nothing but a new number.
    cr_assert_eq (ep_pki_revoke (s_keys, "r1", err, sizeof err), 0, "%s", err);
    crl = s_crl ();
    cr_assert_eq (s_revoked (crl), 1);
    cr_assert_eq (s_crl_number (crl), 3);
    X509_CRL_free (crl);

    //  A new certificate for r1 gets in again.
    s_issue (s_keys, "router", "r1");
    cr_assert (s_accepted ("r1", server_ctx));

    //  A broken CRL file leaves the loaded list in place.
    char *tls = s_tls (s_keys);
    char *cmd = zsys_sprintf ("cp '%s/r2.crt' '%s/r2.saved' && echo garbage > '%s/ca.crl'",
                              s_out, s_out, tls);
    cr_assert_eq (ep_run (cmd, NULL), 0);
    cr_assert_eq (ep_pki_reload_crl (server_ctx, s_keys, err, sizeof err), -1);
    cr_assert (strstr (err, "ca.crl") && strstr (err, "OpenSSL"), "%s", err);
    cr_assert (s_accepted ("r2", server_ctx));

    cr_assert_eq (ep_pki_revoke (s_keys, "nobody", err, sizeof err), -1);
    cr_assert (strstr (err, "no certificate was issued to 'nobody'"), "%s", err);
    free (cmd);
    free (tls);
    SSL_CTX_free (server_ctx);
}

Test (pki, connections_made_before_a_revocation_are_found_after_reload,
      .init = s_setup, .fini = s_teardown)
{
    s_init (s_keys, false);
    s_issue (s_keys, "router", "r1");
    s_issue (s_keys, "router", "r2");
    SSL_CTX *server_ctx = s_server (s_keys);
    SSL_CTX *ctx1 = s_client ("r1"), *ctx2 = s_client ("r2");
    s_conn_t one = s_handshake (ctx1, server_ctx);
    s_conn_t two = s_handshake (ctx2, server_ctx);
    cr_assert (one.server_ok && two.server_ok);
    cr_assert_not (ep_pki_peer_revoked (server_ctx, one.server));
    char err [512] = "";
    cr_assert_eq (ep_pki_revoke (s_keys, "r1", err, sizeof err), 0, "%s", err);
    cr_assert_not (ep_pki_peer_revoked (server_ctx, one.server), "seen only once reloaded");
    cr_assert_eq (ep_pki_reload_crl (server_ctx, s_keys, err, sizeof err), 0, "%s", err);
    cr_assert (ep_pki_peer_revoked (server_ctx, one.server));
    cr_assert_not (ep_pki_peer_revoked (server_ctx, two.server));
    cr_assert_not (ep_pki_peer_revoked (NULL, one.server));
    cr_assert_not (ep_pki_peer_revoked (server_ctx, NULL));
    s_conn_free (&one);
    s_conn_free (&two);
    SSL_CTX_free (ctx1);
    SSL_CTX_free (ctx2);
    SSL_CTX_free (server_ctx);
}

Test (pki, revoke_covers_every_certificate_of_the_id, .init = s_setup, .fini = s_teardown)
{
    s_init (s_keys, false);
    s_issue (s_keys, "router", "r1");
    char *cmd = zsys_sprintf ("mv '%s/r1.crt' '%s/old.crt' && mv '%s/r1.key' '%s/old.key'",
                              s_out, s_out, s_out, s_out);
    cr_assert_eq (ep_run (cmd, NULL), 0);
    s_issue (s_keys, "router", "r1");
    char err [512] = "";
    cr_assert_eq (ep_pki_revoke (s_keys, "r1", err, sizeof err), 0, "%s", err);
    SSL_CTX *server_ctx = s_server (s_keys);
    cr_assert_not (s_accepted ("old", server_ctx));
    cr_assert_not (s_accepted ("r1", server_ctx));
    free (cmd);
    SSL_CTX_free (server_ctx);
}

Test (pki, tls12_client_is_refused, .init = s_setup, .fini = s_teardown)
{
    s_init (s_keys, false);
    s_issue (s_keys, "router", "r1");
    SSL_CTX *server_ctx = s_server (s_keys);
    SSL_CTX *client_ctx = s_client ("r1");
    cr_assert_eq (SSL_CTX_set_min_proto_version (client_ctx, TLS1_2_VERSION), 1);
    cr_assert_eq (SSL_CTX_set_max_proto_version (client_ctx, TLS1_2_VERSION), 1);
    s_conn_t conn = s_handshake (client_ctx, server_ctx);
    cr_assert_not (conn.client_ok);
    cr_assert_not (conn.server_ok);
    s_conn_free (&conn);
    SSL_CTX_free (client_ctx);
    SSL_CTX_free (server_ctx);
}

//  Re-signs tls/watchdog.crt with the CA key as a router's certificate
//  (serverAuth kept): what a CA bug or a stolen server key might produce.
static void
s_forge_server_as_router (void)
{
    char *tls = s_tls (s_keys);
    X509 *cert = s_cert (tls, "watchdog.crt");
    char path [1024];
    snprintf (path, sizeof path, "%s/ca.key", tls);
    FILE *file = fopen (path, "r");
    EVP_PKEY *ca_key = PEM_read_PrivateKey (file, NULL, NULL, NULL);
    fclose (file);
    cr_assert_not_null (ca_key);
    X509_EXTENSION *san = X509V3_EXT_conf_nid (NULL, NULL, NID_subject_alt_name,
                                               "URI:edgeplane://router/fake");
    int at = X509_get_ext_by_NID (cert, NID_subject_alt_name, -1);
    X509_EXTENSION_free (X509_delete_ext (cert, at));
    cr_assert_eq (X509_add_ext (cert, san, -1), 1);
    cr_assert (X509_sign (cert, ca_key, EVP_sha256 ()) > 0);
    snprintf (path, sizeof path, "%s/watchdog.crt", tls);
    file = fopen (path, "w");
    cr_assert_eq (PEM_write_X509 (file, cert), 1);
    fclose (file);
    X509_EXTENSION_free (san);
    EVP_PKEY_free (ca_key);
    X509_free (cert);
    free (tls);
}

Test (pki, client_accepts_only_a_controller_as_server, .init = s_setup, .fini = s_teardown)
{
    s_init (s_keys, false);
    s_issue (s_keys, "router", "r1");
    s_forge_server_as_router ();
    SSL_CTX *server_ctx = s_server (s_keys);
    SSL_CTX *client_ctx = s_client ("r1");
    s_conn_t conn = s_handshake (client_ctx, server_ctx);
    cr_assert_not (conn.client_ok);
    cr_assert_eq (SSL_get_verify_result (conn.client), X509_V_ERR_APPLICATION_VERIFICATION);
    s_conn_free (&conn);
    SSL_CTX_free (client_ctx);
    SSL_CTX_free (server_ctx);
}

Test (pki, ctrl_bundles_can_serve_and_dial, .init = s_setup, .fini = s_teardown)
{
    s_init (s_keys, false);
    s_issue (s_keys, "ctrl", "c2");
    X509 *cert = s_cert (s_out, "c2.crt");
    cr_assert_eq (X509_get_extended_key_usage (cert), XKU_SSL_CLIENT | XKU_SSL_SERVER);
    X509_free (cert);
    SSL_CTX *server_ctx = s_server (s_keys);
    cr_assert (s_accepted ("c2", server_ctx), "a peer controller dials in");
    SSL_CTX_free (server_ctx);
}

Test (pki, batch_issues_many_bundles_quickly, .init = s_setup, .fini = s_teardown)
{
    s_init (s_keys, false);
    char err [512] = "";
    int64_t start = ep_mono_us ();
    cr_assert_eq (ep_pki_issue_batch (s_keys, "router", "sim-", 200, s_out, 7, err, sizeof err),
                  0, "%s", err);
    int64_t elapsed = ep_mono_us () - start;
    cr_log_info ("batch: 200 bundles in %" PRId64 " ms (%" PRId64 " us each)",
                 elapsed / 1000, elapsed / 200);
    cr_assert_lt (elapsed, 20 * 1000 * 1000, "200 bundles took %" PRId64 " ms", elapsed / 1000);
    cr_assert_eq (s_mode (s_out, "sim-0.key"), 0600);
    cr_assert_eq (s_mode (s_out, "sim-199.key"), 0600);
    cr_assert_eq (s_mode (s_out, "sim-199.crt"), 0644);
    char path [1024];
    snprintf (path, sizeof path, "%s/sim-200.crt", s_out);
    cr_assert_not (zsys_file_exists (path));

    //  Every bundle recorded once, each with its own serial.
    char *tls = s_tls (s_keys);
    char *cmd = zsys_sprintf ("grep -c ' router sim-' '%s/issued.txt' && "
                              "cut -d' ' -f1 '%s/issued.txt' | sort -u | wc -l", tls, tls);
    char *out = NULL;
    cr_assert_eq (ep_run (cmd, &out), 0);
    cr_assert_str_eq (out, "200\n201\n", "%s", out);
    SSL_CTX *server_ctx = s_server (s_keys);
    cr_assert (s_accepted ("sim-137", server_ctx));
    SSL_CTX_free (server_ctx);
    free (out);
    free (cmd);
    free (tls);
}

Test (pki, mistakes_get_messages_that_say_what_to_do, .init = s_setup, .fini = s_teardown)
{
    char err [512] = "";
    cr_assert_eq (ep_pki_issue (s_keys, "router", "r1", s_out, 30, err, sizeof err), -1);
    cr_assert (strstr (err, "edgeplane pki init"), "%s", err);
    cr_assert_null (ep_pki_server_ctx (s_keys, err, sizeof err));
    cr_assert (strstr (err, "watchdog.crt") && strstr (err, "OpenSSL"), "%s", err);
    s_init (s_keys, false);
    cr_assert_eq (ep_pki_issue (s_keys, "admin", "r1", s_out, 30, err, sizeof err), -1);
    cr_assert (strstr (err, "router, ctrl or client"), "%s", err);
    cr_assert_eq (ep_pki_issue (s_keys, "router", "r/1", s_out, 30, err, sizeof err), -1);
    cr_assert (strstr (err, "invalid id"), "%s", err);
    cr_assert_eq (ep_pki_issue (s_keys, "router", "ca", s_out, 30, err, sizeof err), -1);
    cr_assert (strstr (err, "reserved"), "%s", err);
    char tls [600];
    snprintf (tls, sizeof tls, "%s/../keys/tls", s_keys);
    cr_assert_eq (ep_pki_issue (s_keys, "router", "r1", tls, 30, err, sizeof err), -1);
    cr_assert (strstr (err, "holds the CA"), "%s", err);
    cr_assert_eq (ep_pki_issue (s_keys, "router", "r1", s_out, 0, err, sizeof err), -1);
    cr_assert (strstr (err, "1 to 3650"), "%s", err);
    cr_assert_eq (ep_pki_issue_batch (s_keys, "router", "x/", 3, s_out, 30, err, sizeof err), -1);
    cr_assert (strstr (err, "invalid prefix"), "%s", err);
    char long_prefix [70];
    memset (long_prefix, 'p', 63);
    long_prefix [63] = 0;
    cr_assert_eq (ep_pki_issue_batch (s_keys, "router", long_prefix, 11, s_out, 30,
                                      err, sizeof err), -1, "id p...10 is 65 characters");
    char cert [1024];
    snprintf (cert, sizeof cert, "%s/nothing.crt", s_tmp);
    cr_assert_null (ep_pki_client_ctx (cert, cert, cert, err, sizeof err));
    cr_assert (strstr (err, "nothing.crt") && strstr (err, "edgeplane pki issue"), "%s", err);
}

Test (pki, memory_certificates_last_the_seconds_asked_and_contexts_take_a_new_one,
      .init = s_setup, .fini = s_teardown)
{
    s_init (s_keys, false);
    s_issue (s_keys, "router", "r1");
    char err [512] = "";
    X509 *first = NULL, *second = NULL;
    EVP_PKEY *first_key = NULL, *second_key = NULL;
    int64_t now = (int64_t) time (NULL);
    cr_assert_eq (ep_pki_issue_memory (s_keys, "ctrl", "c1", 90, &first, &first_key, err, sizeof err),
                  0, "%s", err);
    int64_t not_before, not_after;
    cr_assert_eq (ep_pki_cert_validity (first, &not_before, &not_after), 0);
    cr_assert (not_after >= now + 90 && not_after <= now + 92, "not after %lld, now %lld",
               (long long) not_after, (long long) now);
    cr_assert_lt (not_before, now, "starts in the past, for peers whose clock is behind");
    cr_assert_eq (ep_pki_issue_memory (s_keys, "ctrl", "c1", 0, &second, &second_key, err, sizeof err),
                  -1);
    cr_assert_eq (ep_pki_issue_memory (s_keys, "ctrl", "c1", 200, &second, &second_key, err,
                                       sizeof err), 0, "%s", err);

    //  A server context made with the first presents the second after
    //  ep_pki_ctx_use; a connection made before keeps the first.
    SSL_CTX *server_ctx = ep_pki_server_ctx_with (s_keys, first, first_key, err, sizeof err);
    cr_assert_not_null (server_ctx, "%s", err);
    SSL_CTX *client_ctx = s_client ("r1");
    s_conn_t before = s_handshake (client_ctx, server_ctx);
    cr_assert (before.client_ok && before.server_ok);
    cr_assert_eq (ep_pki_ctx_use (server_ctx, second, second_key, err, sizeof err), 0, "%s", err);
    s_conn_t after = s_handshake (client_ctx, server_ctx);
    cr_assert (after.client_ok && after.server_ok);
    cr_assert_eq (X509_cmp (SSL_get0_peer_certificate (after.client), second), 0, "the new one");
    cr_assert_eq (X509_cmp (SSL_get_certificate (before.server), first), 0, "the old one stays");
    //  A key that is not the certificate's is refused.
    cr_assert_eq (ep_pki_ctx_use (server_ctx, second, first_key, err, sizeof err), -1);
    cr_assert (strstr (err, "do not belong together"), "%s", err);
    s_conn_free (&before);
    s_conn_free (&after);
    SSL_CTX_free (client_ctx);
    SSL_CTX_free (server_ctx);
    X509_free (first);
    X509_free (second);
    EVP_PKEY_free (first_key);
    EVP_PKEY_free (second_key);
}

Test (pki, etcd_member_certificate_is_a_server_for_its_host_name,
      .init = s_setup, .fini = s_teardown)
{
    //  An etcd member (issue 16) serves clients and peers under its host
    //  name; a client certificate is no server.
    s_init (s_keys, false);
    s_issue (s_keys, EP_PKI_ROLE_ETCD, "etcd1");
    s_issue (s_keys, EP_PKI_ROLE_CLIENT, "model");
    char crt [1024], key [1024], err [512];
    X509 *cert = NULL;
    EVP_PKEY *pkey = NULL;
    snprintf (crt, sizeof crt, "%s/etcd1.crt", s_out);
    snprintf (key, sizeof key, "%s/etcd1.key", s_out);
    cr_assert_eq (ep_pki_read_pair (crt, key, &cert, &pkey, err, sizeof err), 0, "%s", err);
    cr_assert_eq (X509_check_purpose (cert, X509_PURPOSE_SSL_SERVER, 0), 1);
    cr_assert_eq (X509_check_purpose (cert, X509_PURPOSE_SSL_CLIENT, 0), 1);
    cr_assert_eq (X509_check_host (cert, "etcd1", 0, 0, NULL), 1);
    cr_assert_eq (X509_check_host (cert, "localhost", 0, 0, NULL), 1);
    cr_assert_eq (X509_check_ip_asc (cert, "127.0.0.1", 0), 1);
    char role [32], id [80];
    cr_assert_eq (ep_pki_cert_identity (cert, role, sizeof role, id, sizeof id), 0);
    cr_assert_str_eq (role, "etcd");
    X509_free (cert);
    EVP_PKEY_free (pkey);

    snprintf (crt, sizeof crt, "%s/model.crt", s_out);
    snprintf (key, sizeof key, "%s/model.key", s_out);
    cr_assert_eq (ep_pki_read_pair (crt, key, &cert, &pkey, err, sizeof err), 0, "%s", err);
    cr_assert_eq (X509_check_purpose (cert, X509_PURPOSE_SSL_SERVER, 0), 0);
    cr_assert_eq (X509_check_purpose (cert, X509_PURPOSE_SSL_CLIENT, 0), 1);
    X509_free (cert);
    EVP_PKEY_free (pkey);
}
