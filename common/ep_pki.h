/*  ep_pki.h: the control plane's TLS certificate authority.

    Routers, peer controllers and clients reach the watchdog over TLS 1.3
    with mutual authentication; this module owns the files that makes
    possible (layout in docs/keys.md), and ep_pki_tls builds the OpenSSL
    contexts both ends use from them:
        <keys>/tls/ca.key, ca.crt       the CA (P-256), key mode 0600
        <keys>/tls/ca.crl               revoked certificates, signed by the CA
        <keys>/tls/watchdog.key, .crt   the control plane's own certificate
        <keys>/tls/issued.txt           every serial issued, with role and id
    A certificate says who holds it in one SAN URI, edgeplane://<role>/<id>
    (role router, ctrl or client). Only ctrl certificates may act as TLS
    servers (extendedKeyUsage serverAuth), so a client that verifies the
    chain against ca.crt and finds role ctrl in the server's URI knows it
    reached the control plane; ep_pki_client_ctx (ep_pki_tls) checks both.
*/
#ifndef EP_PKI_H_INCLUDED
#define EP_PKI_H_INCLUDED

#include "ep_prelude.h"
#include <openssl/ssl.h>

//  The roles a certificate's SAN URI can carry.
#define EP_PKI_ROLE_ROUTER  "router"
#define EP_PKI_ROLE_CTRL    "ctrl"
#define EP_PKI_ROLE_CLIENT  "client"
//  An etcd member (issue 16): a TLS server and its peers' client, valid for
//  DNS <id> (its host name), localhost, 127.0.0.1 and ::1. The model
//  reaches etcd with a role client certificate.
#define EP_PKI_ROLE_ETCD    "etcd"

//  The id in the control plane's own certificate (tls/watchdog.crt):
//  edgeplane://ctrl/watchdog.
#define EP_PKI_SERVER_ID    "watchdog"

//  Validity of an issued certificate unless told otherwise, and the most
//  one may ask for (never beyond the CA's own end either).
#define EP_PKI_DAYS_DEFAULT 365
#define EP_PKI_DAYS_MAX     3650

//  Creates what is missing under <keys_dir>/tls (the directories included):
//  the CA, an empty CRL, the index of issued certificates, and the control
//  plane's server certificate (role ctrl, id "watchdog", also valid for
//  DNS localhost and IP 127.0.0.1 / ::1). Existing files are kept; the
//  server certificate is renewed when missing, not from this CA or within
//  30 days of its end, and always if force. The CA itself is never replaced
//  (that would invalidate every issued bundle). Returns 0, or -1 with a
//  message for the user in err.
int
    ep_pki_init (const char *keys_dir, bool force, char *err, size_t errlen);

//  Issues a bundle for role (router, ctrl, client or etcd) and id into out_dir
//  (created 0700 if missing): <id>.key (P-256, 0600), <id>.crt (SAN URI
//  edgeplane://<role>/<id>, valid days days, 1..EP_PKI_DAYS_MAX) and a copy
//  of ca.crt. The serial is recorded in tls/issued.txt before the files
//  are written. Existing files of that name are replaced; so the id "ca"
//  and out_dir tls/ are refused. Returns 0, or -1 with a message in err.
int
    ep_pki_issue (const char *keys_dir, const char *role, const char *id,
                  const char *out_dir, int days, char *err, size_t errlen);

//  ep_pki_issue for count ids <prefix>0 .. <prefix><count-1> with the CA
//  loaded once (simulated fleets): one directory, one ca.crt. Stops at the
//  first failure (bundles written so far stay, and are recorded). Returns
//  0, or -1 with a message for the user in err.
int
    ep_pki_issue_batch (const char *keys_dir, const char *role, const char *prefix,
                        int count, const char *out_dir, int days,
                        char *err, size_t errlen);

//  Revokes every certificate issued to id (whatever its role): adds their
//  serials to tls/ca.crl, re-signed with the next crlNumber and replaced
//  atomically. Revoking again is harmless. Listeners see the change after
//  ep_pki_reload_crl. Returns 0, or -1 with a message (no such id, ...).
int
    ep_pki_revoke (const char *keys_dir, const char *id, char *err, size_t errlen);

//  Issues a certificate for role/id in memory, signed with the CA key of
//  keys_dir (readable is enough: nothing is written, nothing is recorded in
//  tls/issued.txt): a new P-256 key, SAN URI edgeplane://<role>/<id> (plus
//  localhost, 127.0.0.1 and ::1 for role ctrl, like the server
//  certificate), valid until seconds from now (1 to EP_PKI_DAYS_MAX days;
//  never past the CA's end). How a watchdog instance gets, and renews, its
//  own ctrl identity. Returns 0 with *cert_p and *key_p (caller frees with
//  X509_free / EVP_PKEY_free), or -1 with a message in err.
int
    ep_pki_issue_memory (const char *keys_dir, const char *role, const char *id, int64_t seconds,
                         X509 **cert_p, EVP_PKEY **key_p, char *err, size_t errlen);

//  cert's notBefore and notAfter, in seconds since the epoch. Returns 0 or -1.
int
    ep_pki_cert_validity (X509 *cert, int64_t *not_before, int64_t *not_after);

//  Reads a certificate and its private key (PEM files of a bundle) and
//  checks that they belong together. Returns 0, or -1 with a message.
int
    ep_pki_read_pair (const char *cert_path, const char *key_path, X509 **cert_p,
                      EVP_PKEY **key_p, char *err, size_t errlen);

//  Role and id from cert's one edgeplane://<role>/<id> SAN URI. Returns 0
//  or -1 (none, several, malformed).
int
    ep_pki_cert_identity (X509 *cert, char *role, size_t rolelen, char *id, size_t idlen);

//  The path of name in the CA's directory, <keys_dir>/tls/<name>, into buf
//  (PATH_MAX bytes). Returns 0, or -1 if keys_dir is empty or too long.
int
    ep_pki_path (char *buf, const char *keys_dir, const char *name);

//  Reads the CA certificate and its CRL (tls/ca.crt, tls/ca.crl), checking
//  that the CA signed the CRL and that the CRL has not expired. Returns 0
//  with both (caller frees with X509_free / X509_CRL_free), or -1 with a
//  message in err.
int
    ep_pki_read_trust (const char *keys_dir, X509 **ca_p, X509_CRL **crl_p,
                       char *err, size_t errlen);

//  ep_errorf, followed by OpenSSL's reason for the failure (the first error
//  in its queue, the root cause); empties the queue.
void
    ep_pki_ssl_errorf (char *err, size_t errlen, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

//  Frees a certificate and key (from ep_pki_read_pair, ep_pki_issue_memory;
//  either may be NULL) and sets both pointers NULL: their owners outside
//  common/ make no OpenSSL calls of their own.
void
    ep_pki_pair_free (X509 **cert_p, EVP_PKEY **key_p);

#endif
