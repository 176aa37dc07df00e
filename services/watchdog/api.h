/*  api.h: the watchdog's connections API and its connection gauges.

    A ROUTER socket (ep_rpc_server) answering WatchdogRequest.list with the
    connections this instance holds (filtered by role, state or id), for
    operators, services and subscribers; and the gauges that count the same
    connections (edgeplane_connections{role,state},
    edgeplane_channel_buffered_bytes). Also where this instance's API is
    reached, for presence (api_address), and this machine's address toward
    the bus (api_local_host), which stands for a wildcard host.
*/
#ifndef API_H_INCLUDED
#define API_H_INCLUDED

#include "ep_service.h"
#include "channel.h"

typedef struct _api_t api_t;

//  Binds the API on listen; advertise (NULL: the address bound, a
//  wildcard host made this machine's address toward the bus) is what
//  presence says. NULL if it cannot bind.
api_t *
    api_new (ep_service_t *service, const char *listen, const char *advertise);

void
    api_destroy (api_t **self_p);

//  The ROUTER, for the caller's poll.
zsock_t *
    api_socket (api_t *self);

//  Where others reach this instance's API (presence).
const char *
    api_address (api_t *self);

//  Answers the requests waiting, about server's connections (the channel's).
//  Adds to info what the caller knows about c (a router's slice state).
typedef void (api_decorate_fn) (void *arg, channel_conn_t *c, Ep__ConnectionInfo *info);
void
    api_set_decorator (api_t *self, api_decorate_fn *decorate, void *arg);
void
    api_handle (api_t *self, ep_tls_server_t *server);

//  Sets the connection gauges from server (the channel's).
void
    api_gauges (api_t *self, ep_tls_server_t *server);

//  This machine's address toward the bus (bus_pub, "tcp://host:port")
//  into host: what peers on that network can reach; 127.0.0.1 if unknown.
void
    api_local_host (const char *bus_pub, char *host, size_t size);

#endif
