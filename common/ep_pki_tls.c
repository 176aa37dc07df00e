/*  ep_pki_tls.c: the TLS contexts of the router-facing channel, built on the
    CA's files (ep_pki_tls.h).

    A verify store holds the CA and its CRL; reloading the CRL installs a
    fresh store, so connections under way keep the one they started with.
*/
#include "ep_pki_tls.h"
#include "ep_file.h"
#include <limits.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

int
ep_pki_peer_identity (SSL *ssl, char *role, size_t rolelen, char *id, size_t idlen)
{
    if (!ssl || !role || !id || SSL_get_verify_result (ssl) != X509_V_OK)
        return -1;
    return ep_pki_cert_identity (SSL_get0_peer_certificate (ssl), role, rolelen, id, idlen);
}

//  A verify store with the CA and the CRL, checking the peer against it.
static X509_STORE *
s_store_new (X509 *ca, X509_CRL *crl)
{
    X509_STORE *store = X509_STORE_new ();
    EP_ASSERT (store);
    EP_ASSERT (X509_STORE_add_cert (store, ca) == 1);
    EP_ASSERT (X509_STORE_add_crl (store, crl) == 1);
    EP_ASSERT (X509_STORE_set_flags (store, X509_V_FLAG_CRL_CHECK) == 1);
    return store;
}

//  Installs a fresh store from tls/ca.crt and tls/ca.crl in ctx. SSL
//  objects take a reference at SSL_new, so connections under way keep the
//  store they started with.
static int
s_load_store (SSL_CTX *ctx, const char *keys_dir, char *err, size_t errlen)
{
    X509 *ca;
    X509_CRL *crl;
    if (ep_pki_read_trust (keys_dir, &ca, &crl, err, errlen))
        return -1;
    X509_STORE *store = s_store_new (ca, crl);
    EP_ASSERT (SSL_CTX_set1_verify_cert_store (ctx, store) == 1);
    X509_STORE_free (store);
    X509_CRL_free (crl);
    X509_free (ca);
    return 0;
}

//  Settings both ends share: TLS 1.3 only, buffers released when idle, no
//  session cache.
static SSL_CTX *
s_ctx_base (const SSL_METHOD *method, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new (method);
    if (!ctx) {
        ep_pki_ssl_errorf (err, errlen, "cannot create a TLS context: check the OpenSSL installation");
        return NULL;
    }
    EP_ASSERT (SSL_CTX_set_min_proto_version (ctx, TLS1_3_VERSION) == 1);
    EP_ASSERT (SSL_CTX_set_max_proto_version (ctx, TLS1_3_VERSION) == 1);
    SSL_CTX_set_mode (ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode (ctx, SSL_SESS_CACHE_OFF);
    return ctx;
}

//  s_ctx_base with cert and key from PEM files.
static SSL_CTX *
s_ctx_new (const SSL_METHOD *method, const char *cert, const char *key, char *err, size_t errlen)
{
    SSL_CTX *ctx = s_ctx_base (method, err, errlen);
    if (!ctx)
        return NULL;
    if (SSL_CTX_use_certificate_file (ctx, cert, SSL_FILETYPE_PEM) != 1) {
        ep_pki_ssl_errorf (err, errlen, "cannot use certificate %s: give a PEM file from "
                   "`edgeplane pki issue` (or run `edgeplane pki init`)", cert);
        SSL_CTX_free (ctx);
        return NULL;
    }
    ep_file_warn_readable ("pki", key);
    if (SSL_CTX_use_PrivateKey_file (ctx, key, SSL_FILETYPE_PEM) != 1
    ||  SSL_CTX_check_private_key (ctx) != 1) {
        ep_pki_ssl_errorf (err, errlen, "cannot use private key %s with %s: give the key of the same "
                   "bundle", key, cert);
        SSL_CTX_free (ctx);
        return NULL;
    }
    return ctx;
}

//  s_ctx_base with cert and key in memory.
static SSL_CTX *
s_ctx_with (const SSL_METHOD *method, X509 *cert, EVP_PKEY *key, char *err, size_t errlen)
{
    SSL_CTX *ctx = cert && key? s_ctx_base (method, err, errlen): NULL;
    if (ctx && (SSL_CTX_use_certificate (ctx, cert) != 1
            ||  SSL_CTX_use_PrivateKey (ctx, key) != 1
            ||  SSL_CTX_check_private_key (ctx) != 1)) {
        ep_pki_ssl_errorf (err, errlen, "cannot use the certificate and key given: they do not belong "
                   "together");
        SSL_CTX_free (ctx);
        ctx = NULL;
    }
    else
    if (!cert || !key)
        ep_errorf (err, errlen, "give a certificate and its key");
    return ctx;
}

//  What a server context needs beyond its certificate: the client
//  certificate check against the CA and the CRL.
static SSL_CTX *
s_server_setup (SSL_CTX *ctx, const char *keys_dir, char *err, size_t errlen)
{
    char ca [PATH_MAX];
    if (ep_pki_path (ca, keys_dir, "ca.crt")) {
        ep_errorf (err, errlen, "invalid keys directory");
        SSL_CTX_free (ctx);
        return NULL;
    }
    //  TLS 1.3 sends tickets even with SSL_OP_NO_TICKET (stateful ones,
    //  which need the cache we turn off): ask for none at all.
    SSL_CTX_set_options (ctx, SSL_OP_NO_TICKET);
    EP_ASSERT (SSL_CTX_set_num_tickets (ctx, 0) == 1);
    SSL_CTX_set_verify (ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_verify_depth (ctx, 1);
    EP_ASSERT (X509_VERIFY_PARAM_set_flags (SSL_CTX_get0_param (ctx), X509_V_FLAG_CRL_CHECK) == 1);
    //  Tells clients which CA to pick a certificate from.
    STACK_OF (X509_NAME) *names = SSL_load_client_CA_file (ca);
    if (names)
        SSL_CTX_set_client_CA_list (ctx, names);
    if (s_load_store (ctx, keys_dir, err, errlen)) {
        SSL_CTX_free (ctx);
        return NULL;
    }
    return ctx;
}

SSL_CTX *
ep_pki_server_ctx (const char *keys_dir, char *err, size_t errlen)
{
    char crt [PATH_MAX], key [PATH_MAX];
    if (ep_pki_path (crt, keys_dir, EP_PKI_SERVER_ID ".crt")
    ||  ep_pki_path (key, keys_dir, EP_PKI_SERVER_ID ".key")) {
        ep_errorf (err, errlen, "invalid keys directory");
        return NULL;
    }
    SSL_CTX *ctx = s_ctx_new (TLS_server_method (), crt, key, err, errlen);
    return ctx? s_server_setup (ctx, keys_dir, err, errlen): NULL;
}

SSL_CTX *
ep_pki_server_ctx_with (const char *keys_dir, X509 *cert, EVP_PKEY *key, char *err, size_t errlen)
{
    SSL_CTX *ctx = s_ctx_with (TLS_server_method (), cert, key, err, errlen);
    return ctx? s_server_setup (ctx, keys_dir, err, errlen): NULL;
}

int
ep_pki_reload_crl (SSL_CTX *ctx, const char *keys_dir, char *err, size_t errlen)
{
    if (!ctx) {
        ep_errorf (err, errlen, "invalid TLS context or keys directory");
        return -1;
    }
    return s_load_store (ctx, keys_dir, err, errlen);
}

bool
ep_pki_peer_revoked (SSL_CTX *ctx, SSL *ssl)
{
    X509 *cert = ssl? SSL_get0_peer_certificate (ssl): NULL;
    X509_STORE *store = NULL;
    if (!ctx || !cert || SSL_CTX_get0_verify_cert_store (ctx, &store) != 1 || !store)
        return false;
    //  The store s_load_store installed: the CA and one CRL. Matching by
    //  certificate checks the issuer as well as the serial.
    STACK_OF (X509_OBJECT) *objects = X509_STORE_get0_objects (store);
    for (int i = 0; i < sk_X509_OBJECT_num (objects); i++) {
        X509_CRL *crl = X509_OBJECT_get0_X509_CRL (sk_X509_OBJECT_value (objects, i));
        X509_REVOKED *entry = NULL;
        if (crl && X509_CRL_get0_by_cert (crl, &entry, cert) == 1)
            return true;
    }
    return false;
}

//  The client's last word on the chain: the server's certificate must say
//  it is a controller (whatever else the CA signed).
static int
s_verify_server (int ok, X509_STORE_CTX *store)
{
    if (ok && X509_STORE_CTX_get_error_depth (store) == 0) {
        char role [16], id [80];
        if (ep_pki_cert_identity (X509_STORE_CTX_get_current_cert (store), role, sizeof role, id, sizeof id)
        ||  !streq (role, EP_PKI_ROLE_CTRL)) {
            X509_STORE_CTX_set_error (store, X509_V_ERR_APPLICATION_VERIFICATION);
            return 0;
        }
    }
    return ok;
}

//  What a client context needs beyond its certificate: the server's chain
//  to ca, and role ctrl in its certificate.
static SSL_CTX *
s_client_setup (SSL_CTX *ctx, const char *ca, char *err, size_t errlen)
{
    if (SSL_CTX_load_verify_locations (ctx, ca, NULL) != 1) {
        ep_pki_ssl_errorf (err, errlen, "cannot read CA certificate %s: give the ca.crt of the bundle", ca);
        SSL_CTX_free (ctx);
        return NULL;
    }
    SSL_CTX_set_verify (ctx, SSL_VERIFY_PEER, s_verify_server);
    SSL_CTX_set_verify_depth (ctx, 1);
    return ctx;
}

SSL_CTX *
ep_pki_client_ctx (const char *cert, const char *key, const char *ca, char *err, size_t errlen)
{
    if (!cert || !key || !ca) {
        ep_errorf (err, errlen, "give the certificate, key and CA certificate of a bundle");
        return NULL;
    }
    SSL_CTX *ctx = s_ctx_new (TLS_client_method (), cert, key, err, errlen);
    return ctx? s_client_setup (ctx, ca, err, errlen): NULL;
}

SSL_CTX *
ep_pki_client_ctx_with (X509 *cert, EVP_PKEY *key, const char *ca, char *err, size_t errlen)
{
    if (!ca) {
        ep_errorf (err, errlen, "give the CA certificate");
        return NULL;
    }
    SSL_CTX *ctx = s_ctx_with (TLS_client_method (), cert, key, err, errlen);
    return ctx? s_client_setup (ctx, ca, err, errlen): NULL;
}

int
ep_pki_ctx_use (SSL_CTX *ctx, X509 *cert, EVP_PKEY *key, char *err, size_t errlen)
{
    //  SSL_new copies the context's certificate into each connection:
    //  connections made before keep what they were made with.
    if (!ctx || !cert || !key
    ||  SSL_CTX_use_certificate (ctx, cert) != 1
    ||  SSL_CTX_use_PrivateKey (ctx, key) != 1
    ||  SSL_CTX_check_private_key (ctx) != 1) {
        ep_pki_ssl_errorf (err, errlen, "cannot use the new certificate and key: they do not belong "
                   "together");
        return -1;
    }
    return 0;
}

void
ep_pki_ctx_free (SSL_CTX **ctx_p)
{
    SSL_CTX_free (*ctx_p);
    *ctx_p = NULL;
}
