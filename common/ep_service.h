/*  ep_service.h: the shape every service process shares.

    malamute's main, once: configuration -> logging -> zauth (before any
    bind) -> the service's CURVE certificate -> metrics and the HTTP port ->
    (the service binds its sockets through ep_service_bind) -> ready file
    -> run -> teardown in reverse. A service's main.c then holds only what
    is its own.
*/
#ifndef EP_SERVICE_H_INCLUDED
#define EP_SERVICE_H_INCLUDED

#include "ep_prelude.h"
#include "ep_auth.h"
#include "ep_config.h"
#include "ep_http.h"
#include "ep_keys.h"
#include "ep_log.h"
#include "ep_metrics.h"

typedef struct _ep_service_t ep_service_t;

//  Starts the shared part of service name ("bus", "model", ...): parses
//  argv and the environment (the common options plus opts), starts logging,
//  zauth and the HTTP server, loads <keys>/curve/<name>.cert_secret. Exits
//  2 on a bad option and 1 on a start failure, after saying what to do.
ep_service_t *
    ep_service_new (const char *name, const char *description, const char *http_default,
                    const ep_opt_t *opts, size_t nopts, int argc, char **argv);

//  Tears down in reverse order; nulls *self_p.
void
    ep_service_destroy (ep_service_t **self_p);

//  Makes sock a CURVE server with this service's certificate, binds it to
//  endpoint and records the endpoint actually bound under label for the
//  ready file. Returns 0, or -1 after logging why and what to do.
int
    ep_service_bind (ep_service_t *self, zsock_t *sock, const char *label,
                     const char *endpoint);

//  A ROUTER for the service's request API, bound as "api" to endpoint.
//  libzmq drops a connection sending a message over cap (+ 1 KiB of
//  envelope) before buffering it; ZeroMQ heartbeats notice a client that
//  died without closing; hwm bounds each queue (0: libzmq's default).
//  NULL after logging why.
zsock_t *
    ep_service_api_socket (ep_service_t *self, const char *endpoint, size_t cap, int hwm);

//  Binds without CURVE from now on: for benchmarks and debugging only.
//  Refused (-1, logged) unless endpoint is loopback, ipc or inproc; callers
//  check each endpoint with ep_service_loopback first.
void
    ep_service_set_plaintext (ep_service_t *self, bool plaintext);

//  True if endpoint cannot be reached from another machine.
bool
    ep_service_loopback (const char *endpoint);

//  Records an endpoint the service serves without ep_service_bind (the
//  watchdog's TLS channel) for the ready file.
void
    ep_service_record (ep_service_t *self, const char *label, const char *endpoint);

//  Exits the process if zauth died: for loops that poll the auth actor
//  themselves (zmq_poll) instead of using ep_service_wait.
void
    ep_service_check_auth (ep_service_t *self);

//  Makes sock a CURVE client of the service whose public certificate is
//  <keys>/curve/<server>.cert. Returns 0 or -1 (logged).
int
    ep_service_secure_client (ep_service_t *self, zsock_t *sock, const char *server);

//  Takes <directory of db_path>/<name>.lock (ep_lock) for the life of the
//  service: one writer per data directory. If another process holds it,
//  logs its pid and what to do (several: how to run several instances)
//  and exits 2. Call before opening the database.
void
    ep_service_lock_or_exit (ep_service_t *self, const char *db_path, const char *several);

//  Writes the ready file (when --ready-file was given) with every bound
//  endpoint and the HTTP one, and marks /readyz ready.
int
    ep_service_ready (ep_service_t *self);

//  Waits on poller (which must include ep_service_auth_actor) for at most
//  timeout_ms. Exits the process if zauth died; logs when the process
//  reaches its descriptor limit and leaves it (ep_fdlimit_watch). Returns the readable socket,
//  or NULL on timeout or interrupt (check ep_service_interrupted).
void *
    ep_service_wait (ep_service_t *self, zpoller_t *poller, int64_t timeout_ms);

//  Descriptors outside ZeroMQ that a loop waits on beside its sockets (a
//  libcurl client: ep_etcd): fill writes up to max pollitems (fd form,
//  with the events wanted) and returns how many; due says in how many ms
//  the source needs dispatch without I/O (-1: no need); dispatch runs after
//  every wait with the items fill wrote (and their revents).
typedef struct {
    int (*fill) (void *arg, zmq_pollitem_t *items, int max);
    long (*due) (void *arg);
    void (*dispatch) (void *arg, zmq_pollitem_t *items, int nitems);
    void *arg;
} ep_service_fds_t;

//  At most this many sockets for ep_service_poll, and descriptors per wait.
#define EP_SERVICE_POLL_SOCKS   8
#define EP_SERVICE_POLL_FDS     64

//  Adds the one source of descriptors ep_service_poll waits on.
void
    ep_service_add_fds (ep_service_t *self, const ep_service_fds_t *fds);

//  ep_service_wait for a loop whose waits include descriptors outside
//  ZeroMQ: waits on the auth actor, socks (nsocks of them) and the source
//  added with ep_service_add_fds for at most timeout_ms (less if the
//  source is due), then dispatches the source. Returns the first readable
//  of socks, or NULL.
zsock_t *
    ep_service_poll (ep_service_t *self, zsock_t **socks, size_t nsocks, int64_t timeout_ms);

//  True once SIGINT or SIGTERM arrived.
bool
    ep_service_interrupted (ep_service_t *self);

const ep_common_opts_t *
    ep_service_opts (ep_service_t *self);
const char *
    ep_service_name (ep_service_t *self);
//  "<name>-<instance id>": this process's source id on the bus.
const char *
    ep_service_source_id (ep_service_t *self);
zcert_t *
    ep_service_cert (ep_service_t *self);
zactor_t *
    ep_service_auth_actor (ep_service_t *self);
ep_metrics_t *
    ep_service_metrics (ep_service_t *self);
ep_http_t *
    ep_service_http (ep_service_t *self);

#endif
