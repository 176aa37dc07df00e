/*  ep_service.c: process scaffolding shared by every service. */
#include "ep_service.h"
#include "ep_fdlimit.h"
#include "ep_lock.h"
#include "ep_publisher.h"
#include "ep_ready.h"
#include <errno.h>
#include <libgen.h>
#include <signal.h>

struct _ep_service_t {
    char *name;                 //  "bus", "model", ...
    char *source_id;            //  "<name>-<instance>"
    ep_config_t *config;        //  parsed options (owns their strings)
    ep_common_opts_t opts;      //  the shared options
    ep_auth_t *auth;            //  zauth; the process exits if it dies
    zcert_t *cert;              //  this service's CURVE certificate
    ep_metrics_t *metrics;      //  registry behind /metrics
    ep_http_t *http;            //  /metrics, /healthz, /readyz
    json_t *endpoints;          //  label -> endpoint actually bound
    bool plaintext;             //  bind without CURVE (loopback only)
    ep_lock_t *lock;            //  <name>.lock beside the database, if taken
    ep_service_fds_t fds;       //  descriptors outside ZeroMQ (fill NULL: none)
};

ep_service_t *
ep_service_new (const char *name, const char *description, const char *http_default,
                const ep_opt_t *opts, size_t nopts, int argc, char **argv)
{
    ep_service_t *self = (ep_service_t *) zmalloc (sizeof (ep_service_t));
    self->name = strdup (name);
    char program [64];
    snprintf (program, sizeof program, "edgeplane-%s", name);
    self->config = ep_config_new (program, description);
    ep_common_opts_add (self->config, &self->opts, http_default);
    if (opts && nopts)
        ep_config_add (self->config, opts, nopts);
    ep_config_parse_or_exit (self->config, argc, argv);
    if (ep_log_init_named (name, self->opts.log_level, self->opts.log_format) != 0) {
        fprintf (stderr, "%s: cannot start logging\n", program);
        exit (2);
    }
    self->source_id = ep_source_id (name, self->opts.instance_id);
    //  czmq's own handlers turn SIGINT/SIGTERM into zsys_interrupted. A
    //  peer that closes while we write to it must give EPIPE (handled where
    //  we write), not SIGPIPE, which would kill the process without a word.
    signal (SIGPIPE, SIG_IGN);
    zsys_init ();
    zsys_set_logident (program);

    //  zauth first: a CURVE server bound before it runs would admit anyone
    //  who knows its public key.
    self->auth = ep_auth_new (self->opts.keys_dir);
    if (self->auth)
        self->cert = ep_keys_load (self->opts.keys_dir, name);
    if (self->cert) {
        self->metrics = ep_metrics_new (name);
        self->http = ep_http_new (self->opts.http_listen, self->metrics);
    }
    if (!self->http) {
        ep_log_error ("%s did not start (see above); keys dir %s, data dir %s",
                      program, self->opts.keys_dir, self->opts.data_dir);
        ep_service_destroy (&self);
        exit (1);
    }
    ep_http_set_ready (self->http, false, "starting");
    self->endpoints = json_object ();
    ep_log_info ("%s %s starting as %s", program, EP_VERSION, self->source_id);
    return self;
}

void
ep_service_destroy (ep_service_t **self_p)
{
    ep_service_t *self = *self_p;
    if (self) {
        json_decref (self->endpoints);
        ep_lock_destroy (&self->lock);
        ep_http_destroy (&self->http);
        ep_metrics_destroy (&self->metrics);
        zcert_destroy (&self->cert);
        ep_auth_destroy (&self->auth);
        ep_config_destroy (&self->config);
        free (self->source_id);
        free (self->name);
        free (self);
        *self_p = NULL;
    }
}

int
ep_service_bind (ep_service_t *self, zsock_t *sock, const char *label, const char *endpoint)
{
    if (self->plaintext) {
        if (!ep_service_loopback (endpoint)) {
            ep_log_error ("refusing to bind %s to %s without CURVE: plaintext is for loopback only; use 127.0.0.1 or drop --plaintext",
                          label, endpoint);
            return -1;
        }
        ep_log_warn ("%s is bound WITHOUT authentication or encryption (plaintext mode)", label);
    }
    else
    if (ep_curve_server (sock, self->cert) != 0) {
        ep_log_error ("cannot secure the %s socket: the %s certificate has no secret key; run `edgeplane pki init --force`",
                      label, self->name);
        return -1;
    }
    if (zsock_bind (sock, "%s", endpoint) < 0) {
        ep_log_error ("cannot bind %s to %s: %s; is another process using it? choose another address",
                      label, endpoint, zmq_strerror (zmq_errno ()));
        return -1;
    }
    char *bound = zsock_last_endpoint (sock);
    json_object_set_new (self->endpoints, label, json_string (bound));
    ep_log_info ("%s bound on %s", label, bound);
    free (bound);
    return 0;
}

zsock_t *
ep_service_api_socket (ep_service_t *self, const char *endpoint, size_t cap, int hwm)
{
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    EP_ASSERT (router);
    //  Before the bind: libzmq applies it to the connections it accepts.
    zsock_set_maxmsgsize (router, (int64_t) cap + 1024);
    if (hwm > 0) {
        zsock_set_sndhwm (router, hwm);
        zsock_set_rcvhwm (router, hwm);
    }
    zsock_set_heartbeat_ivl (router, 1000);
    zsock_set_heartbeat_timeout (router, 3000);
    if (ep_service_bind (self, router, "api", endpoint) != 0)
        zsock_destroy (&router);
    return router;
}

void
ep_service_record (ep_service_t *self, const char *label, const char *endpoint)
{
    json_object_set_new (self->endpoints, label, json_string (endpoint));
}

void
ep_service_check_auth (ep_service_t *self)
{
    ep_auth_check (self->auth);
}

void
ep_service_set_plaintext (ep_service_t *self, bool plaintext)
{
    self->plaintext = plaintext;
}

bool
ep_service_loopback (const char *endpoint)
{
    return strncmp (endpoint, "tcp://127.", 10) == 0
        || strncmp (endpoint, "tcp://localhost:", 16) == 0
        || strncmp (endpoint, "ipc://", 6) == 0
        || strncmp (endpoint, "inproc://", 9) == 0;
}

int
ep_service_secure_client (ep_service_t *self, zsock_t *sock, const char *server)
{
    char *key = ep_keys_public_txt (self->opts.keys_dir, server);
    int rc = key? ep_curve_client (sock, self->cert, key): -1;
    free (key);
    return rc;
}

void
ep_service_lock_or_exit (ep_service_t *self, const char *db_path, const char *several)
{
    char *copy = strdup (db_path);
    char *dir = strdup (dirname (copy));
    free (copy);
    pid_t holder;
    EP_ASSERT (!self->lock);
    self->lock = ep_lock_new (dir, self->name, &holder);
    if (!self->lock && holder >= 0) {
        char pid [64] = "a process that has not written its pid yet";
        if (holder > 0)
            snprintf (pid, sizeof pid, "pid %d", (int) holder);
        ep_log_error ("another edgeplane-%s (%s) is using the data directory %s (it holds %s/%s.lock); "
                      "stop it first, or give this one another data directory; %s",
                      self->name, pid, dir, dir, self->name, several);
    }
    else
    if (!self->lock)
        ep_log_error ("cannot lock %s/%s.lock: %s; check the data directory exists and is writable",
                      dir, self->name, strerror (errno));
    free (dir);
    if (!self->lock) {
        ep_service_destroy (&self);
        exit (2);
    }
}

int
ep_service_ready (ep_service_t *self)
{
    char http [300];
    snprintf (http, sizeof http, "http://%s", ep_http_address (self->http));
    json_object_set_new (self->endpoints, "http", json_string (http));
    if (self->opts.ready_file
    &&  ep_ready_write (self->opts.ready_file, self->name, self->endpoints) != 0) {
        ep_log_error ("cannot write the ready file %s: %s; check the directory exists and is writable",
                      self->opts.ready_file, strerror (errno));
        return -1;
    }
    ep_http_set_ready (self->http, true, NULL);
    ep_log_info ("ready");
    return 0;
}

void *
ep_service_wait (ep_service_t *self, zpoller_t *poller, int64_t timeout_ms)
{
    if (timeout_ms < 0)
        timeout_ms = 0;
    void *which = zpoller_wait (poller, (int) (timeout_ms > INT32_MAX? INT32_MAX: timeout_ms));
    if (which == ep_service_auth_actor (self))
        ep_auth_check (self->auth);
    //  A ZeroMQ listener cannot refuse at the limit (ep_fdlimit.h): the
    //  log says why new clients wait.
    ep_fdlimit_watch (ep_mono_ms ());
    return which == ep_service_auth_actor (self)? NULL: which;
}

void
ep_service_add_fds (ep_service_t *self, const ep_service_fds_t *fds)
{
    EP_ASSERT (!self->fds.fill && fds->fill && fds->due && fds->dispatch);
    self->fds = *fds;
}

zsock_t *
ep_service_poll (ep_service_t *self, zsock_t **socks, size_t nsocks, int64_t timeout_ms)
{
    EP_ASSERT (nsocks <= EP_SERVICE_POLL_SOCKS);
    zmq_pollitem_t items [1 + EP_SERVICE_POLL_SOCKS + EP_SERVICE_POLL_FDS];
    size_t n = 0;
    items [n++] = (zmq_pollitem_t) { zsock_resolve (ep_service_auth_actor (self)), 0, ZMQ_POLLIN, 0 };
    for (size_t i = 0; i < nsocks; i++)
        items [n++] = (zmq_pollitem_t) { zsock_resolve (socks [i]), 0, ZMQ_POLLIN, 0 };
    int nfds = 0;
    if (self->fds.fill) {
        nfds = self->fds.fill (self->fds.arg, items + n, EP_SERVICE_POLL_FDS);
        long due = self->fds.due (self->fds.arg);
        if (due >= 0 && due < timeout_ms)
            timeout_ms = due;
    }
    if (timeout_ms < 0)
        timeout_ms = 0;
    if (zmq_poll (items, (int) n + nfds, (long) (timeout_ms > INT32_MAX? INT32_MAX: timeout_ms)) < 0)
        for (size_t i = 0; i < n + (size_t) nfds; i++)
            items [i].revents = 0;      //  interrupted: nothing is ready
    if (self->fds.dispatch)
        self->fds.dispatch (self->fds.arg, items + n, nfds);
    if (items [0].revents & ZMQ_POLLIN)
        ep_auth_check (self->auth);
    ep_fdlimit_watch (ep_mono_ms ());
    for (size_t i = 0; i < nsocks; i++)
        if (items [1 + i].revents & ZMQ_POLLIN)
            return socks [i];
    return NULL;
}

bool
ep_service_interrupted (ep_service_t *self)
{
    (void) self;
    return zsys_interrupted != 0;
}

const ep_common_opts_t *
ep_service_opts (ep_service_t *self)
{
    return &self->opts;
}

const char *
ep_service_name (ep_service_t *self)
{
    return self->name;
}

const char *
ep_service_source_id (ep_service_t *self)
{
    return self->source_id;
}

zcert_t *
ep_service_cert (ep_service_t *self)
{
    return self->cert;
}

zactor_t *
ep_service_auth_actor (ep_service_t *self)
{
    return ep_auth_actor (self->auth);
}

ep_metrics_t *
ep_service_metrics (ep_service_t *self)
{
    return self->metrics;
}

ep_http_t *
ep_service_http (ep_service_t *self)
{
    return self->http;
}
