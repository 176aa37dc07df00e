/*  ep_http.c: /metrics, /healthz and /readyz on libmicrohttpd.

    We bind the listening socket ourselves (ep_addr: an IPv6 socket for an
    IPv6 address) and hand it to libmicrohttpd, so a bad or busy address is
    reported with its errno and a hint, not lost in a generic start failure.
    libmicrohttpd closes that socket on stop.
*/
#include "ep_prelude.h"
#include "ep_http.h"
#include "ep_addr.h"
#include "ep_fdlimit.h"
#include <microhttpd.h>
#include <pthread.h>
#include <unistd.h>

#define EP_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

//  The socket context of a connection accepted at the descriptor limit.
static char s_at_limit_mark;

struct _ep_http_t {
    struct MHD_Daemon *daemon;  //  libmicrohttpd, serving from its own thread
    ep_metrics_t *metrics;      //  what /metrics renders, not owned
    pthread_mutex_t lock;       //  guards ready and reason
    bool ready;                 //  what /readyz answers
    char *reason;               //  why not ready
    char *degraded;             //  why the store cannot take writes, or NULL
    ep_http_handler_fn *handler;    //  the process's own routes, or NULL
    void *handler_arg;          //  for handler
    int port;                   //  the port bound
    char address [EP_ADDR_TEXT_MAX];    //  where a local client reaches us
};

//  Marks a connection that leaves fewer than EP_FDLIMIT_HEADROOM
//  descriptors free once accepted: its requests for the process's own
//  routes are refused (s_handle_request). Every answer here is queued on
//  the first call, so libmicrohttpd closes the connection after it.
static void
s_notify (void *cls, struct MHD_Connection *connection, void **socket_context,
          enum MHD_ConnectionNotificationCode toe)
{
    (void) cls;
    (void) connection;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED)
        *socket_context = ep_fdlimit_reached ()? &s_at_limit_mark: NULL;
}

static bool
s_at_limit (struct MHD_Connection *connection)
{
    const union MHD_ConnectionInfo *info = MHD_get_connection_info (connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info && info->socket_context == &s_at_limit_mark;
}

static enum MHD_Result
s_reply (struct MHD_Connection *connection, unsigned int status,
         const char *type, char *body)
{
    struct MHD_Response *response =
        MHD_create_response_from_buffer (strlen (body), body, MHD_RESPMEM_MUST_FREE);
    if (!response) {
        free (body);
        return MHD_NO;
    }
    MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header (response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
        MHD_add_response_header (response, MHD_HTTP_HEADER_RETRY_AFTER, "5");
    enum MHD_Result rc = MHD_queue_response (connection, status, response);
    MHD_destroy_response (response);
    return rc;
}

//  Called on libmicrohttpd's thread for each request. Every request here
//  has no body, so we answer on the first call.
static enum MHD_Result
s_handle_request (void *cls, struct MHD_Connection *connection, const char *url,
                  const char *method, const char *version, const char *upload_data,
                  size_t *upload_data_size, void **con_cls)
{
    (void) version;
    ep_http_t *self = (ep_http_t *) cls;
    bool builtin = streq (url, "/metrics") || streq (url, "/healthz") || streq (url, "/readyz");
    //  A process's own routes are refused on a connection accepted at the
    //  descriptor limit (a console stream would hold it for good); the
    //  three above are short and say what state the process is in.
    if (self->handler && !builtin && s_at_limit (connection)) {
        ep_fdlimit_refused (EP_FDLIMIT_HTTP);
        return s_reply (connection, MHD_HTTP_SERVICE_UNAVAILABLE, "application/json",
                        strdup ("{\"error\":\"at the descriptor limit: new connections are refused until "
                                "some close; try again later\"}"));
    }
    int result;
    if (self->handler && self->handler (self->handler_arg, connection, url, method, upload_data,
                                        upload_data_size, con_cls, &result))
        return (enum MHD_Result) result;
    const char *text = "text/plain; charset=utf-8";

    if (!streq (method, MHD_HTTP_METHOD_GET) && !streq (method, MHD_HTTP_METHOD_HEAD))
        return s_reply (connection, MHD_HTTP_METHOD_NOT_ALLOWED, text,
                        zsys_sprintf ("method %s not allowed: use GET\n", method));
    if (streq (url, "/metrics"))
        return s_reply (connection, MHD_HTTP_OK, EP_METRICS_CONTENT_TYPE,
                        ep_metrics_render (self->metrics));
    if (streq (url, "/healthz"))
        return s_reply (connection, MHD_HTTP_OK, text, strdup ("ok\n"));
    if (streq (url, "/readyz")) {
        pthread_mutex_lock (&self->lock);
        //  Starting wins: a service that is not up yet says so first.
        bool ready = self->ready && !self->degraded;
        char *body = ready? strdup ("ready\n"):
                     zsys_sprintf ("not ready: %s\n", self->ready? self->degraded: self->reason);
        pthread_mutex_unlock (&self->lock);
        return s_reply (connection, ready? MHD_HTTP_OK: MHD_HTTP_SERVICE_UNAVAILABLE,
                        text, body);
    }
    return s_reply (connection, MHD_HTTP_NOT_FOUND, text,
                    strdup ("not found: try /metrics, /healthz or /readyz\n"));
}

ep_http_t *
ep_http_new (const char *listen, ep_metrics_t *metrics)
{
    EP_ASSERT (metrics);
    ep_http_t *self = (ep_http_t *) zmalloc (sizeof (ep_http_t));
    EP_ASSERT (pthread_mutex_init (&self->lock, NULL) == 0);
    self->metrics = metrics;
    self->reason = strdup ("starting");

    ep_addr_t addr;
    char error [256] = "";
    int fd = -1;
    if (ep_addr_parse (&addr, listen, 0, error, sizeof error) == 0
    &&  (fd = ep_addr_listen (&addr, 512, error, sizeof error)) >= 0) {
        self->port = ep_addr_port (fd);
        //  Suspend and resume cost one eventfd, and let a response wait
        //  for data without a thread or a spin (the console's streams).
        ep_addr_local (fd, self->address, sizeof self->address);
        //  epoll, not select (): fd numbers past 1024 must work.
        self->daemon = MHD_start_daemon (
            MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG
            | MHD_ALLOW_SUSPEND_RESUME,
            0, NULL, NULL, s_handle_request, self,
            MHD_OPTION_LISTEN_SOCKET, fd,
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) 30,
            MHD_OPTION_NOTIFY_CONNECTION, s_notify, NULL,
            MHD_OPTION_END);
        if (!self->daemon) {
            snprintf (error, sizeof error, "libmicrohttpd did not start (see its message above)");
            close (fd);         //  only MHD_stop_daemon closes it for us
        }
    }
    if (!self->daemon) {
        zsys_error ("ep_http: cannot serve HTTP: %s (set another address with --http-listen"
                    " or EDGEPLANE_HTTP_LISTEN)", error);
        ep_http_destroy (&self);
    }
    return self;
}

void
ep_http_destroy (ep_http_t **self_p)
{
    ep_http_t *self = *self_p;
    if (self) {
        if (self->daemon)
            MHD_stop_daemon (self->daemon);
        pthread_mutex_destroy (&self->lock);
        free (self->reason);
        free (self->degraded);
        free (self);
        *self_p = NULL;
    }
}

void
ep_http_set_handler (ep_http_t *self, ep_http_handler_fn *handler, void *arg)
{
    EP_ASSERT (self);
    self->handler_arg = arg;
    self->handler = handler;
}

int
ep_http_port (ep_http_t *self)
{
    EP_ASSERT (self);
    return self->port;
}

const char *
ep_http_address (ep_http_t *self)
{
    EP_ASSERT (self);
    return self->address;
}

void
ep_http_set_ready (ep_http_t *self, bool ready, const char *reason)
{
    EP_ASSERT (self);
    char *copy = strdup (reason? reason: "unspecified");
    pthread_mutex_lock (&self->lock);
    self->ready = ready;
    free (self->reason);
    self->reason = copy;
    pthread_mutex_unlock (&self->lock);
}

void
ep_http_set_degraded (ep_http_t *self, const char *reason)
{
    EP_ASSERT (self);
    char *copy = reason? strdup (reason): NULL;
    pthread_mutex_lock (&self->lock);
    free (self->degraded);
    self->degraded = copy;
    pthread_mutex_unlock (&self->lock);
}
