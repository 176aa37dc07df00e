/*  ep_rpc_client.h: request/reply client (DEALER) with timeout and retry.

    Each call carries a request id chosen here; a retry resends the same
    bytes with the same id, so a write service that keeps recent replies
    (ep_replycache) answers it with the original reply and applies it once.
    On a timeout the socket is closed and a fresh one connects, so a peer
    that restarted (or a half-dead TCP connection) does not strand us.
    Replies with other request ids (late answers to abandoned attempts) are
    discarded.

    Several instances of a service: endpoint is a comma-separated list
    (EDGEPLANE_MODEL_API=tcp://a:7001,tcp://b:7001). The client sticks to
    one instance and moves to the next when an attempt gets no answer (a
    dead, stopped or cut-off instance); a call with attempts >= 2 thus
    reaches a live one within one timeout per dead one. The instances
    present one CURVE server key (the data directory's, shared).

    A caller that must not block (a follower inside a service's loop, whose
    heartbeats cannot wait for the model) uses the same client without
    waiting: ep_rpc_client_send sends one attempt, the caller polls
    ep_rpc_client_socket with its other sockets, ep_rpc_client_take returns
    the reply once it came, and ep_rpc_client_expire gives the attempt up
    at its deadline, moving to the next instance as a call does. The socket
    stays the same for the client's life (a move disconnects and connects
    it), so it can sit in the caller's poller. One request at a time.
*/
#ifndef EP_RPC_CLIENT_H_INCLUDED
#define EP_RPC_CLIENT_H_INCLUDED

#include "ep_prelude.h"
#include <protobuf-c/protobuf-c.h>

typedef struct _ep_rpc_client_t ep_rpc_client_t;

//  A client of the service at endpoint (one, or a comma-separated list of
//  its instances); with cert and server_key a CURVE client. Returns NULL if
//  an endpoint is invalid or no socket can be made (the process is at its
//  descriptor limit; ep_rpc_client_call says so too when a reconnect cannot
//  get one).
ep_rpc_client_t *
    ep_rpc_client_new (const char *endpoint, zcert_t *cert, const char *server_key);

void
    ep_rpc_client_destroy (ep_rpc_client_t **self_p);

//  Writes a fresh request id (32 hex characters) into id.
void
    ep_rpc_new_id (char id [33]);

//  Sends request (whose request_id field is request_id) and waits up to
//  timeout_ms per attempt, for at most attempts attempts. Returns the reply
//  decoded as reply_desc, or NULL with the reason in err. Free the reply
//  with protobuf_c_message_free_unpacked (reply, NULL).
ProtobufCMessage *
    ep_rpc_client_call (ep_rpc_client_t *self, const ProtobufCMessage *request,
                        const char *request_id, const ProtobufCMessageDescriptor *reply_desc,
                        int timeout_ms, int attempts, char *err, size_t errlen);

//  Sends request (whose request_id field is request_id), one attempt
//  that expires after timeout_ms, without waiting. Returns 0, or -1 with
//  the reason in err (it could not be packed or sent). A request still
//  waiting is abandoned (its late reply is dropped by id).
int
    ep_rpc_client_send (ep_rpc_client_t *self, const ProtobufCMessage *request,
                        const char *request_id, int timeout_ms, char *err, size_t errlen);

//  The DEALER to poll for replies (the same for the client's life).
zsock_t *
    ep_rpc_client_socket (ep_rpc_client_t *self);

//  True while a request sent with ep_rpc_client_send awaits its reply.
bool
    ep_rpc_client_waiting (ep_rpc_client_t *self);

//  When the waiting request expires (monotonic ms), or -1 if none waits.
int64_t
    ep_rpc_client_deadline (ep_rpc_client_t *self);

//  Reads what arrived without blocking. Returns the reply to the waiting
//  request decoded as reply_desc (it no longer waits), or NULL: with err
//  "" if it has not come yet, or the reason if it came and does not
//  decode (it no longer waits either).
ProtobufCMessage *
    ep_rpc_client_take (ep_rpc_client_t *self, const ProtobufCMessageDescriptor *reply_desc,
                        char *err, size_t errlen);

//  At or past the waiting request's deadline (now_ms, monotonic): gives
//  it up, moves to the next instance, returns true with the reason in err.
bool
    ep_rpc_client_expire (ep_rpc_client_t *self, int64_t now_ms, char *err, size_t errlen);

//  Moves to the next instance of the list now (one that answered it cannot
//  serve: UNAVAILABLE, its store unreachable), abandoning a waiting request.
void
    ep_rpc_client_move (ep_rpc_client_t *self);

//  Attempts the last call took (1 when the first attempt was answered).
int
    ep_rpc_client_attempts (ep_rpc_client_t *self);

//  The endpoint the client talks to now (one of the list).
const char *
    ep_rpc_client_endpoint (ep_rpc_client_t *self);

//  Times the client moved to the next endpoint of its list.
uint64_t
    ep_rpc_client_failovers (ep_rpc_client_t *self);

#endif
