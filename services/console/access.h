/*  access.h: who may read the console, decided from untrusted bytes.

    Pure functions over header values, so they are unit-tested and fuzzed
    without a socket:
      - the Host header must name one of the configured names (with or
        without the port): a page from another site that rebinds its DNS
        name to this address still sends its own name (DNS rebinding);
      - when a token is required (the console is bound to an address that
        is not loopback), a request must carry it as "Authorization:
        Bearer <token>", or carry the cookie POST /api/login hands out for
        it (EventSource cannot send a header). The cookie's value is a
        keyed hash of the token, so it dies with the token and a restart
        keeps it valid.
*/
#ifndef ACCESS_H_INCLUDED
#define ACCESS_H_INCLUDED

#include "ep_prelude.h"

typedef struct _access_t access_t;

#define ACCESS_COOKIE   "edgeplane_console"     //  the cookie's name
#define ACCESS_TOKEN_MAX 128                    //  bytes in a token at most

//  hosts: comma-separated names a Host header may carry ("localhost,
//  127.0.0.1,console.example.com"); token: NULL when none is required.
access_t *
    access_new (const char *hosts, const char *token);

void
    access_destroy (access_t **self_p);

//  True if host (a Host header value, NULL if absent) names us.
bool
    access_host_ok (access_t *self, const char *host);

//  True if no token is required, or authorization (an Authorization header
//  value) or cookie (a Cookie header value) carries it. Either may be NULL.
bool
    access_allowed (access_t *self, const char *authorization, const char *cookie);

//  True if authorization carries the token (what POST /api/login checks).
bool
    access_bearer_ok (access_t *self, const char *authorization);

//  The Set-Cookie header value for a login. NULL if no token is required.
const char *
    access_set_cookie (access_t *self);

bool
    access_token_required (access_t *self);

//  True if listen ("HOST:PORT", as ep_addr reads it) can only be reached
//  from this machine: 127.0.0.0/8 or ::1. A wildcard, a name that does
//  not resolve to loopback, or an invalid address is not.
bool
    access_loopback (const char *listen);

//  Reads a token file (one line of 32..128 printable bytes). Returns a new
//  string or NULL with the reason in err.
char *
    access_token_read (const char *path, char *err, size_t errlen);

#endif
