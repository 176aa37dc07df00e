/*  ep_endpoints.h: lists of ZeroMQ endpoints ("tcp://a:7001,tcp://b:7001").

    Several instances of a service (models, buses) are named by one
    comma-separated list, as EDGEPLANE_MODEL_API or EDGEPLANE_BUS_PUB: an
    RPC client sticks to one and fails over to the next, a publisher or a
    subscriber connects to all. ep_config checks the syntax
    (EP_OPT_ENDPOINTS); this module splits and connects.
*/
#ifndef EP_ENDPOINTS_H_INCLUDED
#define EP_ENDPOINTS_H_INCLUDED

#include "ep_prelude.h"

//  Splits list at commas (empty elements skipped). Returns a
//  NULL-terminated array of strings (free with ep_endpoints_free), count
//  in *count; NULL if the list holds no endpoint.
char **
    ep_endpoints_split (const char *list, size_t *count);

void
    ep_endpoints_free (char ***endpoints_p);

//  Connects sock to every endpoint in list. 0, or -1 if the list is empty
//  or a connect failed (invalid endpoint).
int
    ep_endpoints_connect (zsock_t *sock, const char *list);

#endif
