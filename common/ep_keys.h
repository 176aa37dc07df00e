/*  ep_keys.h: the control plane's CURVE certificates and keys directory.

    Every ZeroMQ socket inside the control plane runs CURVE; this module owns
    the files that makes possible (layout in docs/keys.md):
        <keys>/curve/<name>.cert          public certificate (role, name in metadata)
        <keys>/curve/<name>.cert_secret   secret certificate, mode 0600
        <keys>/authorized/<name>.cert     public certificates the services accept
    curve/ is mode 0700. authorized/ is the directory zauth watches (see
    ep_auth.h), so a certificate issued while services run is accepted
    without a restart. Every certificate carries both a `role` and a `name`:
    a certificate without them would let its holder claim them itself.
*/
#ifndef EP_KEYS_H_INCLUDED
#define EP_KEYS_H_INCLUDED

#include "ep_prelude.h"

//  The roles a certificate's `role` metadata can hold.
#define EP_ROLE_SERVICE     "service"
#define EP_ROLE_OPERATOR    "operator"
#define EP_ROLE_SUBSCRIBER  "subscriber"
//  Reads the bus and the read-only APIs (model reads, watchdog lists),
//  nothing else: the console's role.
#define EP_ROLE_VIEWER      "viewer"

//  The services that get a certificate of their own (role "service", name =
//  the service), NULL-terminated.
extern const char *const ep_keys_services [];

//  Creates what is missing under keys_dir (the directory itself included):
//  one certificate per service, plus `operator`, `subscriber` and `console`
//  (role viewer), each with its public part in authorized/, and the
//  console's access token <keys>/console.token (mode 0600). Existing certificates are kept unless
//  force, which replaces the control plane's own ones (issued ones stay).
//  Returns 0, or -1 with a message for the user in err.
int
    ep_keys_init (const char *keys_dir, bool force, char *err, size_t errlen);

//  Creates a new certificate named name (an id, not already authorized) with
//  role (service, operator, subscriber or viewer), writes <out_dir>/<name>.cert and
//  <name>.cert_secret (0600), then authorizes it: running services accept it
//  at once. Returns 0, or -1 with a message for the user in err.
int
    ep_keys_issue (const char *keys_dir, const char *name, const char *role,
                   const char *out_dir, char *err, size_t errlen);

//  Loads <keys>/curve/<name>.cert_secret (public + secret key, metadata).
//  Returns NULL, after logging which file is missing and what to run, if it
//  cannot. Caller destroys.
zcert_t *
    ep_keys_load (const char *keys_dir, const char *name);

//  The Z85 public key of <keys>/curve/<name>.cert: what a client needs to
//  reach the server called name. NULL (logged) if absent. Caller frees.
char *
    ep_keys_public_txt (const char *keys_dir, const char *name);

//  Makes sock a CURVE server with cert's keys and ZAP enabled, so zauth
//  decides who gets in. Call before binding. Returns -1 if cert has no
//  secret key.
int
    ep_curve_server (zsock_t *sock, zcert_t *cert);

//  Makes sock a CURVE client with cert's keys, talking to the server whose
//  Z85 public key is server_public_txt. Call before connecting. Returns -1
//  if cert has no secret key or the server key is not 40 Z85 characters.
int
    ep_curve_client (zsock_t *sock, zcert_t *cert, const char *server_public_txt);

//  A new socket of type for a client of a service (publisher, subscriber,
//  RPC): ZMTP heartbeats every second, a peer silent for 3 s is gone, and
//  with cert (else plaintext) CURVE toward server_key. Set the options
//  that differ, then connect.
zsock_t *
    ep_curve_client_socket (int type, zcert_t *cert, const char *server_key);

#endif
