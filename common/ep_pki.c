/*  ep_pki.c: the TLS certificate authority (OpenSSL 3 library calls, never
    the openssl command); the contexts that use its files are ep_pki_tls.

    Every file is written beside its final place and renamed, with its mode
    set before the first byte, so a listener rereading ca.crl never sees
    half a list and a key is never readable by others, even for a moment.
    init and revoke hold an flock on tls/.lock: two revokes at once would
    otherwise each rewrite the CRL from the same old one and lose an entry.
    Issuing only appends to issued.txt (one write per line, O_APPEND), so it
    takes no lock; a certificate issued during a revoke is simply not in it.
*/
#include "ep_pki.h"
#include "ep_file.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

//  Certificates and CRLs start this many seconds in the past, so a peer
//  whose clock is a little behind ours still accepts them.
#define S_SKEW          3600
#define S_CA_DAYS       3650
#define S_SERVER_DAYS   825
//  init renews the server certificate when it has fewer days left than this.
#define S_RENEW_DAYS    30
#define S_URI_PREFIX    "edgeplane://"

//  The CA, loaded once per call (and once per batch).
typedef struct {
    X509 *cert;                 //  the CA certificate (tls/ca.crt)
    EVP_PKEY *key;              //  its private key (tls/ca.key)
    EVP_PKEY_CTX *keygen;       //  makes P-256 keys; set up once, it is reused
    time_t not_after;           //  the CA's end: nothing it issues outlives it
} s_ca_t;

void
ep_pki_ssl_errorf (char *err, size_t errlen, const char *format, ...)
{
    char reason [256] = "no reason given";
    unsigned long code = ERR_peek_error ();
    if (code)
        ERR_error_string_n (code, reason, sizeof reason);
    ERR_clear_error ();
    if (err && errlen) {
        va_list args;
        va_start (args, format);
        int n = vsnprintf (err, errlen, format, args);
        va_end (args);
        if (n >= 0 && (size_t) n < errlen)
            snprintf (err + n, errlen - n, " (OpenSSL: %s)", reason);
    }
}

static bool
s_dir_ok (const char *dir)
{
    return dir && *dir && strlen (dir) <= EP_FILE_DIR_MAX;
}

static bool
s_role_valid (const char *role)
{
    return role && (streq (role, EP_PKI_ROLE_ROUTER) || streq (role, EP_PKI_ROLE_CTRL)
                 || streq (role, EP_PKI_ROLE_CLIENT) || streq (role, EP_PKI_ROLE_ETCD));
}

//  Writes what PEM writer put into the memory BIO mem to path; frees mem.
static int
s_write_bio (BIO *mem, const char *path, mode_t mode, bool sync, char *err, size_t errlen)
{
    char *data = NULL;
    long size = BIO_get_mem_data (mem, &data);
    int rc = ep_file_write (path, data, (size_t) size, mode, sync, err, errlen);
    BIO_free (mem);
    return rc;
}

static int
s_write_cert (X509 *cert, const char *path, char *err, size_t errlen)
{
    BIO *mem = BIO_new (BIO_s_mem ());
    EP_ASSERT (mem && PEM_write_bio_X509 (mem, cert) == 1);
    return s_write_bio (mem, path, 0644, false, err, errlen);
}

static int
s_write_key (EVP_PKEY *key, const char *path, char *err, size_t errlen)
{
    BIO *mem = BIO_new (BIO_s_mem ());
    EP_ASSERT (mem && PEM_write_bio_PrivateKey (mem, key, NULL, NULL, 0, NULL, NULL) == 1);
    return s_write_bio (mem, path, 0600, false, err, errlen);
}

static X509 *
s_read_cert (const char *path, const char *what_to_do, char *err, size_t errlen)
{
    BIO *in = BIO_new_file (path, "r");
    X509 *cert = in? PEM_read_bio_X509 (in, NULL, NULL, NULL): NULL;
    BIO_free (in);
    if (!cert)
        ep_pki_ssl_errorf (err, errlen, "cannot read certificate %s: %s", path, what_to_do);
    return cert;
}

static EVP_PKEY *
s_read_key (const char *path, const char *what_to_do, char *err, size_t errlen)
{
    ep_file_warn_readable ("pki", path);
    BIO *in = BIO_new_file (path, "r");
    EVP_PKEY *key = in? PEM_read_bio_PrivateKey (in, NULL, NULL, NULL): NULL;
    BIO_free (in);
    if (!key)
        ep_pki_ssl_errorf (err, errlen, "cannot read private key %s: %s", path, what_to_do);
    return key;
}

//  Reads path and checks that the CA signed it and that it is still valid.
static X509_CRL *
s_read_crl (const char *path, X509 *ca, char *err, size_t errlen)
{
    BIO *in = BIO_new_file (path, "r");
    X509_CRL *crl = in? PEM_read_bio_X509_CRL (in, NULL, NULL, NULL): NULL;
    BIO_free (in);
    if (!crl) {
        ep_pki_ssl_errorf (err, errlen, "cannot read CRL %s: run `edgeplane pki init` to create it", path);
        return NULL;
    }
    if (X509_NAME_cmp (X509_CRL_get_issuer (crl), X509_get_subject_name (ca)) != 0
    ||  X509_CRL_verify (crl, X509_get0_pubkey (ca)) != 1) {
        ep_pki_ssl_errorf (err, errlen, "CRL %s is not signed by this CA: move it away and run "
                   "`edgeplane pki init` for an empty one, then revoke again", path);
        X509_CRL_free (crl);
        return NULL;
    }
    const ASN1_TIME *next = X509_CRL_get0_nextUpdate (crl);
    if (next && X509_cmp_time (next, NULL) <= 0) {
        ep_errorf (err, errlen, "CRL %s has expired, and with it the CA (they end together): "
                   "move the tls directory away, run `edgeplane pki init` for a new CA and issue "
                   "every bundle again", path);
        X509_CRL_free (crl);
        return NULL;
    }
    return crl;
}

//  Takes an exclusive lock on tls/.lock; returns its fd (close to unlock).
static int
s_lock (const char *tls, char *err, size_t errlen)
{
    char path [PATH_MAX];
    ep_file_path (path, "%s/.lock", tls);
    int fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || flock (fd, LOCK_EX) != 0) {
        ep_errorf (err, errlen, "cannot lock %s: %s", path, strerror (errno));
        if (fd >= 0)
            close (fd);
        return -1;
    }
    return fd;
}

//  ---------------------------------------------------------------------
//  Certificates

static void
s_ca_free (s_ca_t *ca)
{
    X509_free (ca->cert);
    EVP_PKEY_free (ca->key);
    EVP_PKEY_CTX_free (ca->keygen);
    memset (ca, 0, sizeof *ca);
}

static EVP_PKEY *
s_key_new (s_ca_t *ca)
{
    EVP_PKEY *key = NULL;
    return EVP_PKEY_generate (ca->keygen, &key) == 1? key: NULL;
}

//  Sets up ca->keygen and ca->not_after once cert and key are there.
static int
s_ca_ready (s_ca_t *ca, char *err, size_t errlen)
{
    ca->keygen = EVP_PKEY_CTX_new_from_name (NULL, "EC", NULL);
    if (!ca->keygen
    ||  EVP_PKEY_keygen_init (ca->keygen) != 1
    ||  EVP_PKEY_CTX_set_group_name (ca->keygen, "P-256") != 1) {
        ep_pki_ssl_errorf (err, errlen, "cannot make P-256 keys: check the OpenSSL installation");
        return -1;
    }
    if (ca->cert) {
        struct tm tm;
        EP_ASSERT (ASN1_TIME_to_tm (X509_get0_notAfter (ca->cert), &tm) == 1);
        ca->not_after = timegm (&tm);
    }
    return 0;
}

//  Adds extension nid (OpenSSL config syntax in value) to cert.
static void
s_add_ext (X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb (&ctx);
    X509V3_set_ctx (&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_nconf_nid (NULL, &ctx, nid, value);
    //  Values are ours and ids are checked: a failure is a bug.
    EP_ASSERT (ext && X509_add_ext (cert, ext, -1) == 1);
    X509_EXTENSION_free (ext);
}

//  A random positive 128-bit serial (RFC 5280 allows up to 20 octets).
static void
s_serial_set (X509 *cert)
{
    BIGNUM *bn = BN_new ();
    EP_ASSERT (bn);
    do
        EP_ASSERT (BN_rand (bn, 128, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1);
    while (BN_is_zero (bn));
    EP_ASSERT (BN_to_ASN1_INTEGER (bn, X509_get_serialNumber (cert)));
    BN_free (bn);
}

//  Puts key's public half in cert. X509_set_pubkey goes through OpenSSL
//  3.0's encoders (about 180 us a key, most of a batch's time); setting the
//  encoded point directly takes 10. The certificate then holds no decoded
//  key object, which one we only sign and write never needs; the CA's own
//  certificate, which we verify with, takes the slow way.
static void
s_set_pubkey (X509 *cert, EVP_PKEY *key, bool fast)
{
    if (!fast) {
        EP_ASSERT (X509_set_pubkey (cert, key) == 1);
        return;
    }
    unsigned char *point = NULL;
    size_t size = EVP_PKEY_get1_encoded_public_key (key, &point);
    EP_ASSERT (size > 0 && size < INT_MAX);
    EP_ASSERT (X509_PUBKEY_set0_param (X509_get_X509_PUBKEY (cert),
                                       OBJ_nid2obj (NID_X9_62_id_ecPublicKey), V_ASN1_OBJECT,
                                       OBJ_nid2obj (NID_X9_62_prime256v1), point, (int) size) == 1);
}

//  A certificate for key: subject O=edgeplane, OU=role, CN=cn, valid from
//  now (less the skew) until seconds from now, but not past the CA's end;
//  issuer is the CA (or the certificate itself when ca->cert is NULL: the CA).
static X509 *
s_cert_new (s_ca_t *ca, EVP_PKEY *key, const char *role, const char *cn, int64_t seconds)
{
    X509 *cert = X509_new ();
    EP_ASSERT (cert);
    EP_ASSERT (X509_set_version (cert, X509_VERSION_3) == 1);
    s_serial_set (cert);
    X509_NAME *name = X509_get_subject_name (cert);
    X509_NAME_add_entry_by_txt (name, "O", MBSTRING_ASC, (const unsigned char *) "edgeplane", -1, -1, 0);
    if (role)
        X509_NAME_add_entry_by_txt (name, "OU", MBSTRING_ASC, (const unsigned char *) role, -1, -1, 0);
    X509_NAME_add_entry_by_txt (name, "CN", MBSTRING_ASC, (const unsigned char *) cn, -1, -1, 0);
    X509 *issuer = ca->cert? ca->cert: cert;
    EP_ASSERT (X509_set_issuer_name (cert, X509_get_subject_name (issuer)) == 1);
    time_t now = time (NULL);
    time_t end = now + (time_t) seconds;
    if (ca->cert && end > ca->not_after)
        end = ca->not_after;
    EP_ASSERT (ASN1_TIME_set (X509_getm_notBefore (cert), now - S_SKEW));
    EP_ASSERT (ASN1_TIME_set (X509_getm_notAfter (cert), end));
    s_set_pubkey (cert, key, ca->cert != NULL);
    s_add_ext (cert, issuer, NID_subject_key_identifier, "hash");
    s_add_ext (cert, issuer, NID_authority_key_identifier, "keyid:always");
    return cert;
}

static int
s_sign (X509 *cert, EVP_PKEY *key, char *err, size_t errlen)
{
    if (X509_sign (cert, key, EVP_sha256 ()) <= 0) {
        ep_pki_ssl_errorf (err, errlen, "cannot sign a certificate with the CA key");
        return -1;
    }
    return 0;
}

//  A leaf certificate for role/id, signed by the CA. server adds the names
//  a local client checks (localhost, 127.0.0.1, ::1) to the URI.
static X509 *
s_leaf_new (s_ca_t *ca, EVP_PKEY *key, const char *role, const char *id, int64_t seconds,
            bool server, char *err, size_t errlen)
{
    X509 *cert = s_cert_new (ca, key, role, id, seconds);
    s_add_ext (cert, ca->cert, NID_basic_constraints, "critical,CA:FALSE");
    s_add_ext (cert, ca->cert, NID_key_usage, "critical,digitalSignature");
    //  Only a controller may be a TLS server of the channel: its clients
    //  rely on that (they also check role ctrl in the URI, so an etcd
    //  member, a server of etcd's own clients and peers, is not one).
    bool etcd = streq (role, EP_PKI_ROLE_ETCD);
    s_add_ext (cert, ca->cert, NID_ext_key_usage,
               streq (role, EP_PKI_ROLE_CTRL) || etcd? "clientAuth,serverAuth": "clientAuth");
    char san [512];
    if (etcd)
        snprintf (san, sizeof san, "URI:" S_URI_PREFIX "%s/%s,DNS:%s,DNS:localhost,"
                  "IP:127.0.0.1,IP:::1", role, id, id);
    else
        snprintf (san, sizeof san, "URI:" S_URI_PREFIX "%s/%s%s", role, id,
                  server? ",DNS:localhost,IP:127.0.0.1,IP:::1": "");
    s_add_ext (cert, ca->cert, NID_subject_alt_name, san);
    if (s_sign (cert, ca->key, err, errlen)) {
        X509_free (cert);
        return NULL;
    }
    return cert;
}

//  Loads the CA of keys_dir.
static int
s_ca_load (const char *keys_dir, s_ca_t *ca, char *err, size_t errlen)
{
    memset (ca, 0, sizeof *ca);
    char crt [PATH_MAX], key [PATH_MAX];
    ep_file_path (crt, "%s/tls/ca.crt", keys_dir);
    ep_file_path (key, "%s/tls/ca.key", keys_dir);
    if (!ep_file_exists (crt) || !ep_file_exists (key)) {
        ep_errorf (err, errlen, "no TLS CA in %s/tls: run `edgeplane pki init` first", keys_dir);
        return -1;
    }
    const char *todo = "restore it from a backup, or move tls/ away and run `edgeplane pki init` "
                       "for a new CA (every bundle must then be issued again)";
    ca->cert = s_read_cert (crt, todo, err, errlen);
    if (ca->cert)
        ca->key = s_read_key (key, todo, err, errlen);
    if (ca->key && X509_check_private_key (ca->cert, ca->key) != 1) {
        ep_pki_ssl_errorf (err, errlen, "%s does not belong to %s: %s", key, crt, todo);
        s_ca_free (ca);
        return -1;
    }
    if (!ca->key || s_ca_ready (ca, err, errlen)) {
        s_ca_free (ca);
        return -1;
    }
    return 0;
}

//  Creates tls/ca.key and tls/ca.crt.
static int
s_ca_create (const char *tls, s_ca_t *ca, char *err, size_t errlen)
{
    memset (ca, 0, sizeof *ca);
    if (s_ca_ready (ca, err, errlen))
        return -1;
    ca->key = s_key_new (ca);
    if (!ca->key) {
        ep_pki_ssl_errorf (err, errlen, "cannot generate the CA key");
        s_ca_free (ca);
        return -1;
    }
    X509 *cert = s_cert_new (ca, ca->key, NULL, "edgeplane CA", (int64_t) S_CA_DAYS * 86400);
    s_add_ext (cert, cert, NID_basic_constraints, "critical,CA:TRUE");
    s_add_ext (cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign");
    char crt [PATH_MAX], key [PATH_MAX];
    ep_file_path (crt, "%s/ca.crt", tls);
    ep_file_path (key, "%s/ca.key", tls);
    //  The key first: a certificate alone would be a CA nobody can use.
    if (s_sign (cert, ca->key, err, errlen)
    ||  s_write_key (ca->key, key, err, errlen)
    ||  s_write_cert (cert, crt, err, errlen)) {
        X509_free (cert);
        s_ca_free (ca);
        return -1;
    }
    ca->cert = cert;
    struct tm tm;
    EP_ASSERT (ASN1_TIME_to_tm (X509_get0_notAfter (cert), &tm) == 1);
    ca->not_after = timegm (&tm);
    return 0;
}

//  ---------------------------------------------------------------------
//  The index of issued certificates: one line per certificate,
//  "<serial hex> <role> <id> <not-after>", appended before its files exist.

//  Opens tls/issued.txt for appending (created if missing).
static int
s_index_open (const char *keys_dir, char *err, size_t errlen)
{
    char path [PATH_MAX];
    ep_file_path (path, "%s/tls/issued.txt", keys_dir);
    int fd = open (path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        ep_errorf (err, errlen, "cannot open %s: %s", path, strerror (errno));
    return fd;
}

static int
s_index_append (int fd, X509 *cert, const char *role, const char *id, char *err, size_t errlen)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN (X509_get0_serialNumber (cert), NULL);
    char *hex = bn? BN_bn2hex (bn): NULL;
    EP_ASSERT (hex);
    struct tm tm;
    EP_ASSERT (ASN1_TIME_to_tm (X509_get0_notAfter (cert), &tm) == 1);
    char end [32];
    strftime (end, sizeof end, "%Y-%m-%dT%H:%M:%SZ", &tm);
    char line [256];
    int size = snprintf (line, sizeof line, "%s %s %s %s\n", hex, role, id, end);
    EP_ASSERT (size > 0 && (size_t) size < sizeof line);
    OPENSSL_free (hex);
    BN_free (bn);
    //  One write per line: concurrent issuers never interleave within one.
    if (write (fd, line, (size_t) size) != size) {
        ep_errorf (err, errlen, "cannot record the certificate in tls/issued.txt: %s",
                   strerror (errno));
        return -1;
    }
    return 0;
}

//  Issues role/id into dir: <id>.key and <id>.crt, recorded in the index
//  first; sync makes the record durable before the files exist.
static int
s_issue_one (s_ca_t *ca, int index_fd, const char *role, const char *id, int days,
             bool server, const char *dir, bool sync, char *err, size_t errlen)
{
    EVP_PKEY *key = s_key_new (ca);
    if (!key) {
        ep_pki_ssl_errorf (err, errlen, "cannot generate a P-256 key");
        return -1;
    }
    X509 *cert = s_leaf_new (ca, key, role, id, (int64_t) days * 86400, server, err, errlen);
    int rc = cert? 0: -1;
    if (rc == 0)
        rc = s_index_append (index_fd, cert, role, id, err, errlen);
    if (rc == 0 && sync && fdatasync (index_fd) != 0) {
        ep_errorf (err, errlen, "cannot save tls/issued.txt: %s", strerror (errno));
        rc = -1;
    }
    char path [PATH_MAX];
    if (rc == 0) {
        ep_file_path (path, "%s/%s.key", dir, id);
        rc = s_write_key (key, path, err, errlen);
    }
    if (rc == 0) {
        ep_file_path (path, "%s/%s.crt", dir, id);
        rc = s_write_cert (cert, path, err, errlen);
    }
    X509_free (cert);
    EVP_PKEY_free (key);
    return rc;
}

//  ---------------------------------------------------------------------
//  The CRL

//  Signs and writes path: old's entries (old may be NULL) plus the count
//  serials not in it yet, with old's crlNumber + 1 (or 1).
static int
s_crl_write (s_ca_t *ca, X509_CRL *old, ASN1_INTEGER **serials, size_t count,
             const char *path, char *err, size_t errlen)
{
    X509_CRL *crl = X509_CRL_new ();
    EP_ASSERT (crl);
    EP_ASSERT (X509_CRL_set_version (crl, X509_CRL_VERSION_2) == 1);
    EP_ASSERT (X509_CRL_set_issuer_name (crl, X509_get_subject_name (ca->cert)) == 1);
    time_t now = time (NULL);
    ASN1_TIME *last = ASN1_TIME_set (NULL, now - S_SKEW);
    //  Far ahead (the CA's end): a CRL past its nextUpdate fails every handshake.
    ASN1_TIME *next = ASN1_TIME_set (NULL, ca->not_after);
    ASN1_TIME *at = ASN1_TIME_set (NULL, now);
    EP_ASSERT (last && next && at);
    EP_ASSERT (X509_CRL_set1_lastUpdate (crl, last) == 1);
    EP_ASSERT (X509_CRL_set1_nextUpdate (crl, next) == 1);

    STACK_OF (X509_REVOKED) *kept = old? X509_CRL_get_REVOKED (old): NULL;
    for (int i = 0; i < sk_X509_REVOKED_num (kept); i++) {
        X509_REVOKED *dup = X509_REVOKED_dup (sk_X509_REVOKED_value (kept, i));
        EP_ASSERT (dup && X509_CRL_add0_revoked (crl, dup) == 1);
    }
    for (size_t i = 0; i < count; i++) {
        X509_REVOKED *entry = NULL;
        if (old && X509_CRL_get0_by_serial (old, &entry, serials [i]) == 1)
            continue;               //  revoked before
        entry = X509_REVOKED_new ();
        EP_ASSERT (entry);
        EP_ASSERT (X509_REVOKED_set_serialNumber (entry, serials [i]) == 1);
        EP_ASSERT (X509_REVOKED_set_revocationDate (entry, at) == 1);
        EP_ASSERT (X509_CRL_add0_revoked (crl, entry) == 1);
    }

    BIGNUM *number = BN_new ();
    EP_ASSERT (number);
    ASN1_INTEGER *old_number = old? X509_CRL_get_ext_d2i (old, NID_crl_number, NULL, NULL): NULL;
    if (old_number)
        EP_ASSERT (ASN1_INTEGER_to_BN (old_number, number));
    EP_ASSERT (BN_add_word (number, 1) == 1);
    ASN1_INTEGER *new_number = BN_to_ASN1_INTEGER (number, NULL);
    EP_ASSERT (new_number && X509_CRL_add1_ext_i2d (crl, NID_crl_number, new_number, 0, 0) == 1);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb (&ctx);
    X509V3_set_ctx (&ctx, ca->cert, NULL, NULL, crl, 0);
    X509_EXTENSION *aki = X509V3_EXT_nconf_nid (NULL, &ctx, NID_authority_key_identifier,
                                                "keyid:always");
    EP_ASSERT (aki && X509_CRL_add_ext (crl, aki, -1) == 1);
    X509_EXTENSION_free (aki);
    EP_ASSERT (X509_CRL_sort (crl) == 1);

    int rc = 0;
    if (X509_CRL_sign (crl, ca->key, EVP_sha256 ()) <= 0) {
        ep_pki_ssl_errorf (err, errlen, "cannot sign the CRL with the CA key");
        rc = -1;
    }
    if (rc == 0) {
        BIO *mem = BIO_new (BIO_s_mem ());
        EP_ASSERT (mem && PEM_write_bio_X509_CRL (mem, crl) == 1);
        rc = s_write_bio (mem, path, 0644, true, err, errlen);
    }
    ASN1_INTEGER_free (new_number);
    ASN1_INTEGER_free (old_number);
    BN_free (number);
    ASN1_TIME_free (last);
    ASN1_TIME_free (next);
    ASN1_TIME_free (at);
    X509_CRL_free (crl);
    return rc;
}

//  True if the server certificate in tls/ is usable as it is: its key
//  matches, this CA signed it, and it has more than S_RENEW_DAYS left.
static bool
s_server_current (s_ca_t *ca, const char *tls)
{
    char crt [PATH_MAX], key [PATH_MAX];
    ep_file_path (crt, "%s/%s.crt", tls, EP_PKI_SERVER_ID);
    ep_file_path (key, "%s/%s.key", tls, EP_PKI_SERVER_ID);
    if (!ep_file_exists (crt) || !ep_file_exists (key))
        return false;
    X509 *cert = s_read_cert (crt, "", NULL, 0);
    EVP_PKEY *pkey = cert? s_read_key (key, "", NULL, 0): NULL;
    time_t limit = time (NULL) + (time_t) S_RENEW_DAYS * 86400;
    bool current = pkey
                && X509_check_private_key (cert, pkey) == 1
                && X509_verify (cert, X509_get0_pubkey (ca->cert)) == 1
                && X509_cmp_time (X509_get0_notAfter (cert), &limit) > 0;
    ERR_clear_error ();
    X509_free (cert);
    EVP_PKEY_free (pkey);
    return current;
}

int
ep_pki_init (const char *keys_dir, bool force, char *err, size_t errlen)
{
    if (!s_dir_ok (keys_dir)) {
        ep_errorf (err, errlen, "invalid keys directory: give a path shorter than %d characters",
                   EP_FILE_DIR_MAX);
        return -1;
    }
    char tls [PATH_MAX];
    ep_file_path (tls, "%s/tls", keys_dir);
    if (ep_file_mkdirs (keys_dir, 0700, err, errlen) || ep_file_mkdirs (tls, 0700, err, errlen))
        return -1;
    //  Secrets live here: whatever made the directory, it is ours alone.
    if (chmod (tls, 0700) != 0) {
        ep_errorf (err, errlen, "cannot make %s private: %s", tls, strerror (errno));
        return -1;
    }
    int lock = s_lock (tls, err, errlen);
    if (lock < 0)
        return -1;

    char ca_crt [PATH_MAX], ca_key [PATH_MAX], crl_path [PATH_MAX];
    ep_file_path (ca_crt, "%s/ca.crt", tls);
    ep_file_path (ca_key, "%s/ca.key", tls);
    ep_file_path (crl_path, "%s/ca.crl", tls);
    s_ca_t ca;
    int rc = 0;
    bool have_crt = ep_file_exists (ca_crt), have_key = ep_file_exists (ca_key);
    if (!have_crt && !have_key)
        rc = s_ca_create (tls, &ca, err, errlen);
    else
    if (have_crt != have_key) {
        ep_errorf (err, errlen, "%s exists but %s is missing: restore it from a backup, or "
                   "move %s away and run `edgeplane pki init` again for a new CA (every bundle "
                   "must then be issued again)", have_crt? ca_crt: ca_key, have_crt? ca_key: ca_crt, tls);
        rc = -1;
    }
    else
    if ((rc = s_ca_load (keys_dir, &ca, err, errlen)) == 0 && chmod (ca_key, 0600) != 0) {
        ep_errorf (err, errlen, "cannot make %s private: %s", ca_key, strerror (errno));
        s_ca_free (&ca);
        rc = -1;
    }
    if (rc != 0) {
        close (lock);
        return -1;
    }
    if (!ep_file_exists (crl_path))
        rc = s_crl_write (&ca, NULL, NULL, 0, crl_path, err, errlen);
    else {
        X509_CRL *crl = s_read_crl (crl_path, ca.cert, err, errlen);
        rc = crl? 0: -1;
        X509_CRL_free (crl);
    }
    int index = rc == 0? s_index_open (keys_dir, err, errlen): -1;
    if (index < 0)
        rc = -1;
    if (rc == 0 && (force || !s_server_current (&ca, tls)))
        rc = s_issue_one (&ca, index, EP_PKI_ROLE_CTRL, EP_PKI_SERVER_ID,
                          S_SERVER_DAYS, true, tls, true, err, errlen);
    if (index >= 0)
        close (index);
    s_ca_free (&ca);
    close (lock);
    return rc;
}

//  What issue and issue_batch share: checks, the CA, out_dir, the index.
static int
s_issue_start (const char *keys_dir, const char *role, const char *out_dir, int days,
               s_ca_t *ca, int *index_fd, char *err, size_t errlen)
{
    if (!s_role_valid (role)) {
        ep_errorf (err, errlen, "invalid role '%s': use router, ctrl or client", role? role: "");
        return -1;
    }
    if (days < 1 || days > EP_PKI_DAYS_MAX) {
        ep_errorf (err, errlen, "invalid validity of %d days: use 1 to %d", days, EP_PKI_DAYS_MAX);
        return -1;
    }
    if (!s_dir_ok (keys_dir) || !s_dir_ok (out_dir)) {
        ep_errorf (err, errlen, "invalid keys or output directory: give paths shorter than %d "
                   "characters", EP_FILE_DIR_MAX);
        return -1;
    }
    if (s_ca_load (keys_dir, ca, err, errlen))
        return -1;
    //  Bundle files there would replace the CA or the server's own.
    char tls [PATH_MAX], real_tls [PATH_MAX], real_out [PATH_MAX];
    ep_file_path (tls, "%s/tls", keys_dir);
    if (realpath (tls, real_tls) && realpath (out_dir, real_out) && streq (real_tls, real_out)) {
        ep_errorf (err, errlen, "%s holds the CA: choose another output directory", tls);
        s_ca_free (ca);
        return -1;
    }
    if (!ep_file_exists (out_dir) && ep_file_mkdirs (out_dir, 0700, err, errlen)) {
        s_ca_free (ca);
        return -1;
    }
    *index_fd = s_index_open (keys_dir, err, errlen);
    if (*index_fd < 0) {
        s_ca_free (ca);
        return -1;
    }
    return 0;
}

//  The CA's certificate goes with every bundle: the holder verifies the
//  server with it.
static int
s_issue_finish (s_ca_t *ca, int index_fd, const char *out_dir, int rc, char *err, size_t errlen)
{
    if (rc == 0 && fdatasync (index_fd) != 0) {
        ep_errorf (err, errlen, "cannot save tls/issued.txt: %s", strerror (errno));
        rc = -1;
    }
    char path [PATH_MAX];
    ep_file_path (path, "%s/ca.crt", out_dir);
    if (rc == 0)
        rc = s_write_cert (ca->cert, path, err, errlen);
    close (index_fd);
    s_ca_free (ca);
    return rc;
}

int
ep_pki_issue (const char *keys_dir, const char *role, const char *id,
              const char *out_dir, int days, char *err, size_t errlen)
{
    if (!ep_id_valid (id)) {
        ep_errorf (err, errlen, "invalid id '%s': use 1 to 64 of A-Z a-z 0-9 _ -", id? id: "");
        return -1;
    }
    //  ca.crt in the bundle is the CA's.
    if (streq (id, "ca")) {
        ep_errorf (err, errlen, "the id 'ca' is reserved (bundles hold the CA as ca.crt): "
                   "choose another id");
        return -1;
    }
    s_ca_t ca;
    int index;
    if (s_issue_start (keys_dir, role, out_dir, days, &ca, &index, err, errlen))
        return -1;
    int rc = s_issue_one (&ca, index, role, id, days, false, out_dir, true, err, errlen);
    return s_issue_finish (&ca, index, out_dir, rc, err, errlen);
}

int
ep_pki_issue_batch (const char *keys_dir, const char *role, const char *prefix,
                    int count, const char *out_dir, int days, char *err, size_t errlen)
{
    if (count < 1) {
        ep_errorf (err, errlen, "invalid count %d: issue at least one", count);
        return -1;
    }
    //  The longest id is the last one; if it is valid, all are.
    char id [80];
    snprintf (id, sizeof id, "%s%d", prefix? prefix: "", count - 1);
    if (!prefix || strlen (prefix) > 64 || !ep_id_valid (id)) {
        ep_errorf (err, errlen, "invalid prefix '%s': ids <prefix><number> must be 1 to 64 of "
                   "A-Z a-z 0-9 _ -", prefix? prefix: "");
        return -1;
    }
    s_ca_t ca;
    int index;
    if (s_issue_start (keys_dir, role, out_dir, days, &ca, &index, err, errlen))
        return -1;
    int rc = 0;
    //  One fdatasync of the index at the end, not one per certificate: a
    //  crash may lose records of bundles nobody has received yet.
    for (int i = 0; rc == 0 && i < count; i++) {
        snprintf (id, sizeof id, "%s%d", prefix, i);
        rc = s_issue_one (&ca, index, role, id, days, false, out_dir, false, err, errlen);
    }
    return s_issue_finish (&ca, index, out_dir, rc, err, errlen);
}

//  Collects into *serials_p the serials issued.txt lists for id.
static int
s_index_find (const char *keys_dir, const char *id, ASN1_INTEGER ***serials_p,
              size_t *count_p, char *err, size_t errlen)
{
    char path [PATH_MAX];
    ep_file_path (path, "%s/tls/issued.txt", keys_dir);
    FILE *file = fopen (path, "r");
    if (!file) {
        ep_errorf (err, errlen, "cannot read %s: %s; run `edgeplane pki init` first",
                   path, strerror (errno));
        return -1;
    }
    ASN1_INTEGER **serials = NULL;
    size_t count = 0;
    char line [512];
    while (fgets (line, sizeof line, file)) {
        char serial [128], role [32], owner [128];
        if (sscanf (line, "%127s %31s %127s", serial, role, owner) != 3 || !streq (owner, id))
            continue;
        BIGNUM *bn = NULL;
        if (!BN_hex2bn (&bn, serial)) {
            ERR_clear_error ();
            continue;               //  not a record
        }
        serials = realloc (serials, (count + 1) * sizeof *serials);
        EP_ASSERT (serials);
        serials [count] = BN_to_ASN1_INTEGER (bn, NULL);
        EP_ASSERT (serials [count]);
        count++;
        BN_free (bn);
    }
    fclose (file);
    *serials_p = serials;
    *count_p = count;
    return 0;
}

int
ep_pki_revoke (const char *keys_dir, const char *id, char *err, size_t errlen)
{
    if (!ep_id_valid (id)) {
        ep_errorf (err, errlen, "invalid id '%s': use 1 to 64 of A-Z a-z 0-9 _ -", id? id: "");
        return -1;
    }
    if (!s_dir_ok (keys_dir)) {
        ep_errorf (err, errlen, "invalid keys directory");
        return -1;
    }
    char tls [PATH_MAX], crl_path [PATH_MAX];
    ep_file_path (tls, "%s/tls", keys_dir);
    ep_file_path (crl_path, "%s/ca.crl", tls);
    s_ca_t ca;
    if (s_ca_load (keys_dir, &ca, err, errlen))
        return -1;
    int lock = s_lock (tls, err, errlen);
    ASN1_INTEGER **serials = NULL;
    size_t count = 0;
    int rc = lock < 0? -1: s_index_find (keys_dir, id, &serials, &count, err, errlen);
    if (rc == 0 && count == 0) {
        ep_errorf (err, errlen, "no certificate was issued to '%s' by this CA (see %s/issued.txt)",
                   id, tls);
        rc = -1;
    }
    X509_CRL *old = NULL;
    if (rc == 0 && !(old = s_read_crl (crl_path, ca.cert, err, errlen)))
        rc = -1;
    if (rc == 0)
        rc = s_crl_write (&ca, old, serials, count, crl_path, err, errlen);
    X509_CRL_free (old);
    for (size_t i = 0; i < count; i++)
        ASN1_INTEGER_free (serials [i]);
    free (serials);
    if (lock >= 0)
        close (lock);
    s_ca_free (&ca);
    return rc;
}

int
ep_pki_path (char *buf, const char *keys_dir, const char *name)
{
    if (!s_dir_ok (keys_dir))
        return -1;
    ep_file_path (buf, "%s/tls/%s", keys_dir, name);
    return 0;
}

int
ep_pki_read_trust (const char *keys_dir, X509 **ca_p, X509_CRL **crl_p, char *err, size_t errlen)
{
    char crt [PATH_MAX], crl_path [PATH_MAX];
    if (!s_dir_ok (keys_dir))
        return ep_errorf (err, errlen, "invalid keys directory");
    ep_file_path (crt, "%s/tls/ca.crt", keys_dir);
    ep_file_path (crl_path, "%s/tls/ca.crl", keys_dir);
    X509 *ca = s_read_cert (crt, "run `edgeplane pki init` to create the CA", err, errlen);
    X509_CRL *crl = ca? s_read_crl (crl_path, ca, err, errlen): NULL;
    if (!crl) {
        X509_free (ca);
        return -1;
    }
    *ca_p = ca;
    *crl_p = crl;
    return 0;
}

int
ep_pki_issue_memory (const char *keys_dir, const char *role, const char *id, int64_t seconds,
                     X509 **cert_p, EVP_PKEY **key_p, char *err, size_t errlen)
{
    *cert_p = NULL;
    *key_p = NULL;
    if (!s_role_valid (role) || !ep_id_valid (id) || seconds < 1
    ||  seconds > (int64_t) EP_PKI_DAYS_MAX * 86400) {
        ep_errorf (err, errlen, "invalid role, id or validity for a certificate (%s/%s, %lld seconds)",
                   role? role: "", id? id: "", (long long) seconds);
        return -1;
    }
    if (!s_dir_ok (keys_dir)) {
        ep_errorf (err, errlen, "invalid keys directory");
        return -1;
    }
    s_ca_t ca;
    if (s_ca_load (keys_dir, &ca, err, errlen))
        return -1;
    EVP_PKEY *key = s_key_new (&ca);
    X509 *cert = key? s_leaf_new (&ca, key, role, id, seconds, streq (role, EP_PKI_ROLE_CTRL),
                                  err, errlen): NULL;
    if (!key)
        ep_pki_ssl_errorf (err, errlen, "cannot generate a P-256 key");
    s_ca_free (&ca);
    if (!cert) {
        EVP_PKEY_free (key);
        return -1;
    }
    //  s_leaf_new leaves the public key encoded only (enough to sign and
    //  write); a TLS context wants it decoded: round-trip through DER.
    unsigned char *der = NULL;
    int size = i2d_X509 (cert, &der);
    const unsigned char *in = der;
    X509 *decoded = size > 0? d2i_X509 (NULL, &in, size): NULL;
    OPENSSL_free (der);
    X509_free (cert);
    if (!decoded) {
        ep_pki_ssl_errorf (err, errlen, "cannot encode a certificate");
        EVP_PKEY_free (key);
        return -1;
    }
    cert = decoded;
    *cert_p = cert;
    *key_p = key;
    return 0;
}

int
ep_pki_read_pair (const char *cert_path, const char *key_path, X509 **cert_p,
                  EVP_PKEY **key_p, char *err, size_t errlen)
{
    const char *todo = "give the .crt and .key of one bundle from `edgeplane pki issue`";
    X509 *cert = s_read_cert (cert_path, todo, err, errlen);
    EVP_PKEY *key = cert? s_read_key (key_path, todo, err, errlen): NULL;
    if (key && X509_check_private_key (cert, key) != 1) {
        ep_pki_ssl_errorf (err, errlen, "%s does not belong to %s: %s", key_path, cert_path, todo);
        EVP_PKEY_free (key);
        key = NULL;
    }
    if (!key) {
        X509_free (cert);
        return -1;
    }
    *cert_p = cert;
    *key_p = key;
    return 0;
}

int
ep_pki_cert_identity (X509 *cert, char *role, size_t rolelen, char *id, size_t idlen)
{
    GENERAL_NAMES *names = cert? X509_get_ext_d2i (cert, NID_subject_alt_name, NULL, NULL): NULL;
    char uri [128] = "";
    int found = 0;
    for (int i = 0; i < sk_GENERAL_NAME_num (names); i++) {
        GENERAL_NAME *name = sk_GENERAL_NAME_value (names, i);
        if (name->type != GEN_URI)
            continue;
        const char *data = (const char *) ASN1_STRING_get0_data (name->d.uniformResourceIdentifier);
        size_t size = (size_t) ASN1_STRING_length (name->d.uniformResourceIdentifier);
        if (size < strlen (S_URI_PREFIX) || memcmp (data, S_URI_PREFIX, strlen (S_URI_PREFIX)))
            continue;
        found++;
        //  Too long, or with a NUL inside: malformed.
        if (size >= sizeof uri || memchr (data, 0, size))
            found++;
        else {
            memcpy (uri, data, size);
            uri [size] = 0;
        }
    }
    GENERAL_NAMES_free (names);
    ERR_clear_error ();
    if (found != 1)
        return -1;
    char *role_start = uri + strlen (S_URI_PREFIX);
    char *slash = strchr (role_start, '/');
    if (!slash)
        return -1;
    *slash = 0;
    const char *id_start = slash + 1;
    if (!s_role_valid (role_start) || !ep_id_valid (id_start)
    ||  strlen (role_start) >= rolelen || strlen (id_start) >= idlen)
        return -1;
    strcpy (role, role_start);
    strcpy (id, id_start);
    return 0;
}

int
ep_pki_cert_validity (X509 *cert, int64_t *not_before, int64_t *not_after)
{
    struct tm before, after;
    if (!cert || ASN1_TIME_to_tm (X509_get0_notBefore (cert), &before) != 1
    ||  ASN1_TIME_to_tm (X509_get0_notAfter (cert), &after) != 1)
        return -1;
    *not_before = (int64_t) timegm (&before);
    *not_after = (int64_t) timegm (&after);
    return 0;
}

void
ep_pki_pair_free (X509 **cert_p, EVP_PKEY **key_p)
{
    X509_free (*cert_p);
    EVP_PKEY_free (*key_p);
    *cert_p = NULL;
    *key_p = NULL;
}
