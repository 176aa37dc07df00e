/*  identity.h: this watchdog instance's TLS identity.

    Its ctrl identity: the bundle given (--ctrl-cert, --ctrl-key), else a
    certificate for its ctrl id issued here, in memory, with the CA key,
    and renewed here before its end (renewal.c decides when). The server
    context (the channel listener presents it) and the client context (the
    instance dials peer controllers with it) present it; a renewal swaps it
    in both, for the connections made after. Without a bundle and without a
    readable CA key the instance has no ctrl identity of its own: it
    listens with tls/watchdog.crt and neither registers nor dials.

    Also the revocation list: tls/ca.crl is reloaded into the server
    context when the file changes, and connections made before are checked
    against it (identity_check_crl).
*/
#ifndef IDENTITY_H_INCLUDED
#define IDENTITY_H_INCLUDED

#include "ep_service.h"
#include "channel.h"

//  The default validity of a certificate issued here (as tls/watchdog.crt).
#define IDENTITY_LIFETIME_MS    (825 * 86400000LL)

typedef struct _identity_t identity_t;

//  The identity for service: ctrl_id (NULL: watchdog-<instance id>, or the
//  bundle's), cert_path and key_path (a bundle, or both NULL), lifetime_ms
//  (of certificates issued here). Returns NULL with the reason in err.
identity_t *
    identity_new (ep_service_t *service, const char *ctrl_id, const char *cert_path,
                  const char *key_path, int64_t lifetime_ms, char *err, size_t errlen);

void
    identity_destroy (identity_t **self_p);

//  Our ctrl id, NULL if we have no ctrl identity of our own.
const char *
    identity_ctrl_id (identity_t *self);

//  The server context (the listener's) and the client context (to dial
//  peers; NULL without a ctrl identity).
SSL_CTX *
    identity_server_ctx (identity_t *self);
SSL_CTX *
    identity_client_ctx (identity_t *self);

//  When identity_check is due (wall ms), INT64_MAX without a ctrl identity.
int64_t
    identity_deadline (identity_t *self);

//  Renews our certificate when renewal_check says so, or warns about a
//  bundle's end.
void
    identity_check (identity_t *self);

//  Reloads tls/ca.crl if it changed, and closes the channel's connections
//  whose certificate it now lists.
void
    identity_check_crl (identity_t *self, channel_t *channel);

#endif
