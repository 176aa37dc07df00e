/*  web.h: the console's HTTP routes, on the service's ep_http server.

        GET  /               the page (embedded, no external fetch)
        GET  /api/fleet      the fleet view (console_fleet_text)
        GET  /api/events     server-sent events (hub.h); query parameters
                             filter (ep_evmatch.h), Last-Event-ID resumes
        GET  /api/stats      per-minute aggregates, ?window=1h (at most)
        POST /api/login      Authorization: Bearer <token> -> the cookie
    /metrics, /healthz and /readyz stay ep_http's. Every request but
    /healthz and /readyz passes access.h first; a refusal is a 401 with
    no body. No CORS headers, nothing writes.
*/
#ifndef WEB_H_INCLUDED
#define WEB_H_INCLUDED

#include "ep_prelude.h"
#include "ep_http.h"
#include "access.h"
#include "console.h"

typedef struct _web_t web_t;

//  Serves console's routes on http with access's rules (both borrowed).
web_t *
    web_new (ep_http_t *http, console_t *console, access_t *access);

void
    web_destroy (web_t **self_p);

//  The hub's sleep and wake for streams whose handle is a libmicrohttpd
//  connection (console_new takes them).
void
    web_sleep (void *arg, void *handle);
void
    web_wake (void *arg, void *handle);

//  The request a fuzzer or a test gives the access and filter checks:
//  the outcome, 200 or the status a real request would get.
int
    web_check (access_t *access, const char *host, const char *authorization, const char *cookie,
               const char *query, const char *last_event_id);

#endif
