/*  ep_pki_tls.h: the TLS contexts of the router-facing channel.

    Built from the files of the CA (ep_pki): a server context presents the
    control plane's certificate and requires a client certificate from the
    CA that is not in its CRL; a client context presents a bundle's
    certificate and accepts only a server whose certificate chains to the
    CA and says role ctrl. Both are TLS 1.3 only. A context's certificate
    can be replaced in place (ep_pki_ctx_use) and its CRL reloaded
    (ep_pki_reload_crl): connections made before keep what they had.
*/
#ifndef EP_PKI_TLS_H_INCLUDED
#define EP_PKI_TLS_H_INCLUDED

#include "ep_pki.h"

//  A TLS 1.3 server context with the control plane's certificate, which
//  requires a client certificate from the CA that is not in the CRL. No
//  session tickets or cache; buffers released when idle. Returns NULL with
//  a message in err if a file is missing or invalid. Caller frees
//  (SSL_CTX_free).
SSL_CTX *
    ep_pki_server_ctx (const char *keys_dir, char *err, size_t errlen);

//  Rereads tls/ca.crl into ctx (from ep_pki_server_ctx). Handshakes started
//  after the call use the new list; on error (unreadable, not signed by the
//  CA, expired) the old list stays and -1 is returned with a message.
int
    ep_pki_reload_crl (SSL_CTX *ctx, const char *keys_dir, char *err, size_t errlen);

//  True if the certificate ssl's peer presented is in the CRL ctx holds
//  now (after ep_pki_reload_crl): how a listener finds connections made
//  before a revocation. False without a peer certificate.
bool
    ep_pki_peer_revoked (SSL_CTX *ctx, SSL *ssl);

//  A TLS 1.3 client context presenting cert/key (PEM files of a bundle),
//  which accepts only a server whose certificate chains to ca and carries
//  role ctrl. Returns NULL with a message in err. Caller frees.
SSL_CTX *
    ep_pki_client_ctx (const char *cert, const char *key, const char *ca,
                       char *err, size_t errlen);

//  Makes ctx (a server or client context) present cert/key (borrowed; the
//  context takes its own references) from now on: connections made after
//  the call use them, those made before keep theirs. Returns 0, or -1 with
//  a message in err (the context may then hold neither).
int
    ep_pki_ctx_use (SSL_CTX *ctx, X509 *cert, EVP_PKEY *key, char *err, size_t errlen);

//  ep_pki_server_ctx presenting cert/key (borrowed; the context takes its
//  own references) instead of tls/watchdog.crt.
SSL_CTX *
    ep_pki_server_ctx_with (const char *keys_dir, X509 *cert, EVP_PKEY *key,
                            char *err, size_t errlen);

//  ep_pki_client_ctx presenting cert/key (borrowed) and trusting ca (a PEM
//  file).
SSL_CTX *
    ep_pki_client_ctx_with (X509 *cert, EVP_PKEY *key, const char *ca, char *err, size_t errlen);

//  Reads role and id from the SAN URI edgeplane://<role>/<id> of ssl's
//  peer certificate, once the handshake verified it. Returns 0, or -1 if
//  there is no verified peer certificate, no such URI, more than one, a
//  malformed one, or a buffer too small.
int
    ep_pki_peer_identity (SSL *ssl, char *role, size_t rolelen, char *id, size_t idlen);

//  Frees a context (NULL is fine) and sets *ctx_p NULL: its owners outside
//  common/ make no OpenSSL calls of their own.
void
    ep_pki_ctx_free (SSL_CTX **ctx_p);

#endif
