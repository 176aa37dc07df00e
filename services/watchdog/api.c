/*  api.c: the connections API and gauges (see api.h). */
#include "api.h"
#include "ep_addr.h"
#include "ep_codec.h"
#include "ep_rpc_server.h"
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

struct _api_t {
    ep_service_t *service;      //  our service (borrowed)
    zsock_t *socket;            //  ROUTER: the connections API
    ep_rpc_server_t *rpc;       //  its request handling
    char *address;              //  where others reach it (presence)
    ep_gauge_t *connections;    //  edgeplane_connections{role,state}
    ep_series_t *buffered;      //  edgeplane_channel_buffered_bytes
    api_decorate_fn *decorate;  //  adds what the watchdog knows (slices), or NULL
    void *decorate_arg;         //  for decorate
};

static int64_t
s_wall_of (int64_t mono_ms)
{
    return ep_wall_ms () - (ep_mono_ms () - mono_ms);
}

void
api_local_host (const char *bus_pub, char *host, size_t size)
{
    snprintf (host, size, "127.0.0.1");
    //  A UDP socket "connected" to the bus sends nothing; the kernel picks
    //  the local address it would use. A name is looked up for IPv4, as
    //  the bus's wildcard binds are.
    ep_addr_t bus;
    struct sockaddr_storage sa;
    socklen_t len;
    if (strncmp (bus_pub, "tcp://", 6) != 0
    ||  ep_addr_parse (&bus, bus_pub + 6, EP_ADDR_DIAL, NULL, 0) != 0)
        return;
    if (bus.family == AF_UNSPEC)
        bus.family = AF_INET;
    if (ep_addr_resolve (&bus, &sa, &len, NULL, 0) != 0)
        return;
    int fd = socket (sa.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_storage local;
    socklen_t local_len = sizeof local;
    if (fd >= 0 && connect (fd, (struct sockaddr *) &sa, len) == 0
    &&  getsockname (fd, (struct sockaddr *) &local, &local_len) == 0)
        inet_ntop (local.ss_family, local.ss_family == AF_INET
                   ? (void *) &((struct sockaddr_in *) &local)->sin_addr
                   : (void *) &((struct sockaddr_in6 *) &local)->sin6_addr, host, (socklen_t) size);
    if (fd >= 0)
        close (fd);
}

//  Where this instance's API is reached, for presence: --advertise, else
//  the endpoint bound; a wildcard host becomes this machine's address
//  toward the bus, or 127.0.0.1. Not EDGEPLANE_WATCHDOG_API: that names
//  the service, which is every instance at once when several run behind
//  one name (compose --scale).
static char *
s_address (api_t *self, const char *advertise)
{
    if (advertise)
        return strdup (advertise);
    char *bound = zsock_last_endpoint (self->socket);
    if (strncmp (bound, "tcp://0.0.0.0:", 14) != 0)
        return bound;
    char host [INET6_ADDRSTRLEN], text [EP_ADDR_TEXT_MAX];
    api_local_host (ep_service_opts (self->service)->bus_pub, host, sizeof host);
    char *address = zsys_sprintf ("tcp://%s", ep_addr_join (host, atoi (bound + 14), text, sizeof text));
    free (bound);
    return address;
}

api_t *
api_new (ep_service_t *service, const char *listen, const char *advertise)
{
    api_t *self = (api_t *) zmalloc (sizeof (api_t));
    self->service = service;
    ep_metrics_t *metrics = ep_service_metrics (service);
    const char *role_state [] = { "role", "state" };
    self->connections = ep_metrics_gauge (metrics, "edgeplane_connections",
        "Connections held, by role and state.", 2, role_state);
    self->buffered = ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_channel_buffered_bytes",
        "Bytes of partial frames held.", 0, NULL), NULL);
    self->socket = ep_service_api_socket (service, listen, EP_CODEC_DEFAULT_CAP, 0);
    if (!self->socket) {
        api_destroy (&self);
        return NULL;
    }
    self->rpc = ep_rpc_server_new (self->socket, EP_CODEC_DEFAULT_CAP, 1000, 60000);
    ep_rpc_server_set_metrics (self->rpc, metrics);     //  no reqloop here
    self->address = s_address (self, advertise);
    return self;
}

void
api_destroy (api_t **self_p)
{
    api_t *self = *self_p;
    if (self) {
        ep_rpc_server_destroy (&self->rpc);
        zsock_destroy (&self->socket);
        free (self->address);
        free (self);
        *self_p = NULL;
    }
}

zsock_t *
api_socket (api_t *self)
{
    return self->socket;
}

void
api_set_decorator (api_t *self, api_decorate_fn *decorate, void *arg)
{
    self->decorate = decorate;
    self->decorate_arg = arg;
}

const char *
api_address (api_t *self)
{
    return self->address;
}

//  Fills info with what conn c is.
static void
s_info (api_t *self, Ep__ConnectionInfo *info, channel_conn_t *c)
{
    conn_t *conn = channel_conn_state (c);
    ep__connection_info__init (info);
    info->instance_id = (char *) ep_service_source_id (self->service);
    info->role = (char *) conn_role (conn);
    info->id = (char *) conn_id (conn);
    info->state = (char *) conn_state_name (conn_state (conn));
    info->remote_addr = (char *) ep_tls_conn_remote (c);
    info->has_accepted_at_ms = true;
    info->accepted_at_ms = s_wall_of (conn_accepted_at (conn));
    if (conn_joined_at (conn)) {
        info->has_joined_at_ms = true;
        info->joined_at_ms = s_wall_of (conn_joined_at (conn));
    }
    info->has_protocol_version = conn_version (conn) > 0;
    info->protocol_version = conn_version (conn);
    info->has_rtt_ms = info->has_jitter_ms = info->has_stray = true;
    info->rtt_ms = conn_rtt_ms (conn);
    info->jitter_ms = conn_jitter_ms (conn);
    info->stray = conn_was_stray (conn);
    if (self->decorate)
        self->decorate (self->decorate_arg, c, info);
    info->has_heartbeat_timeout_ms = conn_state (conn) == CONN_JOINED;
    info->heartbeat_timeout_ms = conn_heartbeat_timeout_ms (conn);
}

//  Answers list: the connections that pass filter.
static void
s_list (api_t *self, ep_rpc_call_t **call, ep_tls_server_t *server, Ep__ConnectionFilter *filter)
{
    size_t max = ep_tls_server_size (server);
    Ep__ConnectionInfo *infos = (Ep__ConnectionInfo *) calloc (max + 1, sizeof (Ep__ConnectionInfo));
    Ep__ConnectionInfo **list = (Ep__ConnectionInfo **) calloc (max + 1, sizeof (Ep__ConnectionInfo *));
    size_t n = 0;
    channel_conn_t *c = ep_tls_server_first (server);
    for (; c && n < max; c = ep_tls_server_next (server)) {
        conn_t *conn = channel_conn_state (c);
        if ((filter->role && !streq (filter->role, conn_role (conn)))
        ||  (filter->state && !streq (filter->state, conn_state_name (conn_state (conn))))
        ||  (filter->id && !streq (filter->id, conn_id (conn))))
            continue;
        s_info (self, &infos [n], c);
        list [n] = &infos [n];
        n++;
    }
    Ep__Status ok = EP__STATUS__INIT;
    Ep__WatchdogReply reply = EP__WATCHDOG_REPLY__INIT;
    reply.request_id = (char *) ep_rpc_call_request_id (*call);
    reply.status = &ok;
    reply.instance_id = (char *) ep_service_source_id (self->service);
    reply.n_connections = n;
    reply.connections = list;
    ep_rpc_server_answer (self->rpc, call, &reply.base, false, "result (filter by role, state or id)");
    free (list);
    free (infos);
}

void
api_handle (api_t *self, ep_tls_server_t *server)
{
    while (zsock_events (self->socket) & ZMQ_POLLIN) {
        ep_rpc_call_t *call;
        Ep__WatchdogRequest *request = (Ep__WatchdogRequest *) ep_rpc_server_recv_request (
            self->rpc, &ep__watchdog_request__descriptor, &call);
        if (!request)
            continue;
        static const char *readers [] = { "operator", "service", "subscriber", "viewer", NULL };
        if (!ep_rpc_server_require_role (self->rpc, &call, readers))
            ;
        else
        if (request->op_case != EP__WATCHDOG_REQUEST__OP_LIST)
            ep_rpc_server_fail (self->rpc, &call, EP__STATUS__CODE__INVALID_ARGUMENT,
                                "request has no operation: set list");
        else
            s_list (self, &call, server, request->list);
        ep__watchdog_request__free_unpacked (request, NULL);
    }
}

void
api_gauges (api_t *self, ep_tls_server_t *server)
{
    static const char *roles [] = { "router", "ctrl", "client", "" };
    size_t counts [4][6] = { { 0 } };
    channel_conn_t *c = ep_tls_server_first (server);
    for (; c; c = ep_tls_server_next (server)) {
        conn_t *conn = channel_conn_state (c);
        size_t role = 3;
        for (size_t r = 0; r < 3; r++)
            if (streq (conn_role (conn), roles [r]))
                role = r;
        counts [role][conn_state (conn)]++;
    }
    for (size_t r = 0; r < 4; r++)
        for (int s = CONN_ACCEPTED; s < CONN_CLOSED; s++) {
            const char *labels [] = { *roles [r]? roles [r]: "unknown", conn_state_name (s) };
            ep_gauge_set (self->connections, labels, (double) counts [r][s]);
        }
    ep_series_set (self->buffered, (double) ep_tls_server_buffered (server));
}
