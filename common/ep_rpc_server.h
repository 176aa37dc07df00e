/*  ep_rpc_server.h: the service side of request/reply (ROUTER).

    Reads requests, checks their size, decodes the request id, and answers
    retries from the reply cache so a retried write is applied once. A retry
    that arrives while the original is still being served (say, waiting for
    a group commit) is parked and gets the same reply. Malformed requests
    get an error reply, never silence and never a crash. Every service's
    Reply carries request_id and status as fields 1 and 2, so a generic
    error reply (ep.ReplyHeader) decodes as any service's Reply.
*/
#ifndef EP_RPC_SERVER_H_INCLUDED
#define EP_RPC_SERVER_H_INCLUDED

#include "ep_prelude.h"
#include "ep_auth.h"
#include "ep_replycache.h"
#include "ep_metrics.h"
#include "common.pb-c.h"

typedef struct _ep_rpc_server_t ep_rpc_server_t;
typedef struct _ep_rpc_call_t ep_rpc_call_t;

//  A server reading from router (borrowed), refusing requests above cap.
//  Replies are remembered for ttl_ms, at most max_replies of them.
ep_rpc_server_t *
    ep_rpc_server_new (zsock_t *router, size_t cap, size_t max_replies, int64_t ttl_ms);

void
    ep_rpc_server_destroy (ep_rpc_server_t **self_p);

//  Exposes the reply cache's size and capacity in metrics, as the gauges
//  edgeplane_rpc_reply_cache_entries and edgeplane_rpc_reply_cache_capacity.
//  ep_reqloop_new calls it; a service serving without a reqloop calls it.
void
    ep_rpc_server_set_metrics (ep_rpc_server_t *self, ep_metrics_t *metrics);

//  Reads one message. Returns a call for the service to handle, or NULL if
//  the message was answered here (retry, malformed) or nothing was read.
ep_rpc_call_t *
    ep_rpc_server_recv (ep_rpc_server_t *self);

//  Sends reply (a packed Reply carrying the call's request id) to the
//  caller and any parked retries; remembers it for retries when remember
//  is true (writes). Takes ownership of *reply_p and *call_p.
int
    ep_rpc_server_reply (ep_rpc_server_t *self, ep_rpc_call_t **call_p,
                         zframe_t **reply_p, bool remember);

//  The reply remembered for call's request (a retry of one answered
//  meanwhile, say by another instance of the service sharing its saved
//  replies), or NULL; borrowed, valid until the next call on self.
zframe_t *
    ep_rpc_server_cached (ep_rpc_server_t *self, ep_rpc_call_t *call);

//  Replies with only a status (code and a printf-style message).
int
    ep_rpc_server_fail (ep_rpc_server_t *self, ep_rpc_call_t **call_p,
                        Ep__Status__Code code, const char *format, ...)
    __attribute__ ((format (printf, 4, 5)));

//  ep_rpc_server_recv, then decodes the payload as a desc message. Returns
//  the request (free it with protobuf_c_message_free_unpacked) and its call
//  in *call_p; NULL if nothing is left to do (nothing read, a retry answered
//  from the cache, or a payload that does not decode: INVALID_ARGUMENT).
ProtobufCMessage *
    ep_rpc_server_recv_request (ep_rpc_server_t *self, const ProtobufCMessageDescriptor *desc,
                                ep_rpc_call_t **call_p);

//  Packs reply and sends it as ep_rpc_server_reply does. Replies are held
//  to the request cap; a larger one becomes FAILED_PRECONDITION telling the
//  caller to "ask for a smaller <smaller>" (say, "page_size").
int
    ep_rpc_server_answer (ep_rpc_server_t *self, ep_rpc_call_t **call_p,
                          const ProtobufCMessage *reply, bool remember, const char *smaller);

//  Replies PERMISSION_DENIED and returns false unless the caller's role is
//  one of allowed (NULL-terminated). On false the call is consumed.
bool
    ep_rpc_server_require_role (ep_rpc_server_t *self, ep_rpc_call_t **call_p,
                                const char *const *allowed);

//  Drops a call unanswered, for a service that is stopping (crash-only):
//  its caller times out and retries elsewhere or after the restart (a
//  retry to this server would wait for the reply that never comes).
void
    ep_rpc_call_destroy (ep_rpc_call_t **call_p);

//  The caller: its CURVE key and role.
const ep_caller_t *
    ep_rpc_call_caller (ep_rpc_call_t *call);

const char *
    ep_rpc_call_request_id (ep_rpc_call_t *call);

//  The request bytes (length already checked against the cap).
zframe_t *
    ep_rpc_call_payload (ep_rpc_call_t *call);

//  Initialises status as OK and returns it, for a reply's status field.
Ep__Status *
    ep_status_ok (Ep__Status *status);

//  Sets status to code with a printf-style message formatted into message
//  (size bytes, owned by the caller and outliving the status).
void
    ep_status_set (Ep__Status *status, char *message, size_t size,
                   Ep__Status__Code code, const char *format, va_list args);

//  A status code's name ("NOT_FOUND"), for metric labels and messages.
const char *
    ep_status_code_name (Ep__Status__Code code);

//  The reply cache (owned by the server), for a service that keeps replies
//  durable: it loads the saved ones into it at start and prunes by its
//  limits (ep_replycache_load, ep_replycache_prune).
ep_replycache_t *
    ep_rpc_server_cache (ep_rpc_server_t *self);

//  Requests answered from the cache, and malformed requests refused.
uint64_t
    ep_rpc_server_retries (ep_rpc_server_t *self);
uint64_t
    ep_rpc_server_malformed (ep_rpc_server_t *self);

#endif
