/*  ep_http.h: the /metrics, /healthz and /readyz endpoints of a service.

    libmicrohttpd serves them from its own thread in epoll mode: services
    hold thousands of connections, and select() cannot watch an fd past 1024.
        GET /healthz  200 "ok" while the process runs
        GET /readyz   200 "ready", or 503 "not ready: <reason>"
        GET /metrics  200, the registry in Prometheus text format 0.0.4
    Other paths get 404, other methods 405 (HEAD works like GET).

    A process with routes of its own (the console) sets a handler, which
    sees every request first and answers it or lets these three answer.
    Connections can be suspended and resumed (MHD_suspend_connection), for
    responses that wait for data (server-sent events).
*/
#ifndef EP_HTTP_H_INCLUDED
#define EP_HTTP_H_INCLUDED

#include "ep_prelude.h"
#include "ep_metrics.h"

typedef struct _ep_http_t ep_http_t;
struct MHD_Connection;

//  A process's own routes, called on libmicrohttpd's thread with
//  libmicrohttpd's access handler arguments. Returns true if it answered
//  (*result: what libmicrohttpd gets back, MHD_YES or MHD_NO), false to
//  let /metrics, /healthz, /readyz or the 404 answer.
typedef bool (ep_http_handler_fn) (void *arg, struct MHD_Connection *connection, const char *url,
                                   const char *method, const char *upload_data,
                                   size_t *upload_data_size, void **con_cls, int *result);

//  Starts serving on listen, "HOST:PORT" as ep_addr reads it ("*:9101" or
//  "0.0.0.0:9101" for every IPv4 interface, "[::1]:9101" on IPv6) and PORT
//  0 for one the kernel chooses.
//  metrics must outlive the server. Starts not ready ("starting"). Returns
//  NULL, with the reason logged, if the address is invalid or cannot be bound.
ep_http_t *
    ep_http_new (const char *listen, ep_metrics_t *metrics);

//  Stops the server and nulls *self_p.
void
    ep_http_destroy (ep_http_t **self_p);

//  Sets the handler that sees every request first (see above). Set it
//  before the address is given out: requests before it get the defaults.
void
    ep_http_set_handler (ep_http_t *self, ep_http_handler_fn *handler, void *arg);

//  The TCP port actually bound.
int
    ep_http_port (ep_http_t *self);

//  Where a client on this machine reaches the server, "127.0.0.1:9101" or
//  "[::1]:9101" (a wildcard bound becomes loopback).
const char *
    ep_http_address (ep_http_t *self);

//  Sets what /readyz answers; reason (copied) says why it is not ready.
//  Callable from any thread.
void
    ep_http_set_ready (ep_http_t *self, bool ready, const char *reason);

//  Sets (reason, copied) or clears (NULL) a degraded state apart from
//  readiness: while set, /readyz answers 503 "not ready: <reason>" even
//  once the service is ready, and clearing it restores what readiness
//  says (ep_degraded: a full or failing disk). Callable from any thread.
void
    ep_http_set_degraded (ep_http_t *self, const char *reason);

#endif
