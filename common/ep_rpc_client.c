/*  ep_rpc_client.c: DEALER with per-attempt timeout, reconnect and resend,
    blocking (ep_rpc_client_call) or not (send, take, expire). */
#include "ep_rpc_client.h"
#include "ep_codec.h"
#include "ep_endpoints.h"
#include "ep_fdlimit.h"
#include "ep_keys.h"
#include "ep_log.h"
#include "common.pb-c.h"
#include <errno.h>

struct _ep_rpc_client_t {
    zsock_t *dealer;            //  current connection, NULL between attempts
    char *endpoint;             //  where the service is: one or a comma-separated list
    char **endpoints;           //  the list, split (NULL-terminated)
    size_t count;               //  endpoints in it
    size_t current;             //  the one we stick to until it fails
    uint64_t failovers;         //  moves to the next endpoint
    zcert_t *cert;              //  our CURVE certificate (borrowed), or NULL
    char *server_key;           //  the service's public key, or NULL
    int attempts;               //  attempts of the last call
    int socket_errno;           //  why the last socket could not be made, or 0
    char waiting [33];          //  the request id sent without waiting, "" if none
    int64_t deadline;           //  when it expires (monotonic ms)
    int timeout_ms;             //  its timeout, for the message
};

static zsock_t *
s_connect (ep_rpc_client_t *self)
{
    zsock_t *dealer = ep_curve_client_socket (ZMQ_DEALER, self->cert, self->server_key);
    if (!dealer) {
        self->socket_errno = errno? errno: EMFILE;
        return NULL;
    }
    self->socket_errno = 0;
    zsock_set_linger (dealer, 0);
    zsock_set_maxmsgsize (dealer, (int64_t) EP_CODEC_DEFAULT_CAP + 1024);
    if (zsock_connect (dealer, "%s", self->endpoints [self->current]) != 0)
        zsock_destroy (&dealer);
    return dealer;
}

ep_rpc_client_t *
ep_rpc_client_new (const char *endpoint, zcert_t *cert, const char *server_key)
{
    ep_rpc_client_t *self = (ep_rpc_client_t *) zmalloc (sizeof (ep_rpc_client_t));
    self->endpoint = strdup (endpoint);
    self->endpoints = ep_endpoints_split (endpoint, &self->count);
    self->cert = cert;
    self->server_key = server_key? strdup (server_key): NULL;
    //  Every endpoint must be valid now, not at the first failover.
    for (self->current = 0; self->endpoints && self->current < self->count; self->current++) {
        zsock_destroy (&self->dealer);
        if (!(self->dealer = s_connect (self)))
            break;
    }
    //  One endpoint: keep the connection just made (a second would cost
    //  the service a descriptor and a handshake for nothing).
    bool several = self->count > 1;
    self->current = 0;
    if (self->dealer && several) {
        zsock_destroy (&self->dealer);
        self->dealer = s_connect (self);
    }
    if (!self->dealer)
        ep_rpc_client_destroy (&self);
    return self;
}

void
ep_rpc_client_destroy (ep_rpc_client_t **self_p)
{
    ep_rpc_client_t *self = *self_p;
    if (self) {
        zsock_destroy (&self->dealer);
        free (self->endpoint);
        ep_endpoints_free (&self->endpoints);
        free (self->server_key);
        free (self);
        *self_p = NULL;
    }
}

//  After an attempt that got no answer: a fresh connection, to the next
//  instance if there are several (the request id makes a resend safe:
//  instances share the reply cache). Disconnect and connect on the same
//  socket, not a new one: what was queued to the old peer is dropped with
//  its pipe, a half-dead TCP connection is closed, and a caller polling
//  the socket keeps polling the right one.
static void
s_move (ep_rpc_client_t *self)
{
    if (!self->dealer)
        return;
    zsock_disconnect (self->dealer, "%s", self->endpoints [self->current]);
    if (self->count > 1) {
        self->current = (self->current + 1) % self->count;
        self->failovers++;
    }
    //  The endpoint's syntax was checked at ep_rpc_client_new; what can
    //  still fail is the process (no descriptors left, the context ending
    //  at exit). Then calls time out, and the next timeout moves again.
    if (zsock_connect (self->dealer, "%s", self->endpoints [self->current]) != 0)
        ep_log_error ("cannot connect to %s: %s", self->endpoints [self->current],
                      zmq_strerror (zmq_errno ()));
}

void
ep_rpc_new_id (char id [33])
{
    ep_random_hex (id, 16);
}

//  Waits for the reply to request_id until deadline; NULL on timeout.
static zframe_t *
s_await (ep_rpc_client_t *self, const char *request_id, int64_t deadline)
{
    zpoller_t *poller = zpoller_new (self->dealer, NULL);
    zframe_t *reply = NULL;
    while (!reply) {
        int64_t left = deadline - ep_mono_ms ();
        if (left <= 0 || !zpoller_wait (poller, (int) left))
            break;
        zframe_t *frame = zframe_recv (self->dealer);
        if (!frame)
            break;
        char err [256];
        Ep__ReplyHeader *header = (Ep__ReplyHeader *) ep_codec_unpack_frame (
            &ep__reply_header__descriptor, frame, EP_CODEC_DEFAULT_CAP, self->endpoints [self->current],
            err, sizeof err);
        if (header && header->request_id && streq (header->request_id, request_id))
            reply = frame;
        else
            zframe_destroy (&frame);        //  late reply to an abandoned attempt
        if (header)
            ep__reply_header__free_unpacked (header, NULL);
    }
    zpoller_destroy (&poller);
    return reply;
}

ProtobufCMessage *
ep_rpc_client_call (ep_rpc_client_t *self, const ProtobufCMessage *request,
                    const char *request_id, const ProtobufCMessageDescriptor *reply_desc,
                    int timeout_ms, int attempts, char *err, size_t errlen)
{
    EP_ASSERT (attempts >= 1 && timeout_ms > 0);
    zframe_t *packed = ep_codec_pack (request, EP_CODEC_DEFAULT_CAP, err, errlen);
    if (!packed)
        return NULL;
    zframe_t *reply = NULL;
    for (self->attempts = 1; self->attempts <= attempts; self->attempts++) {
        if (!self->dealer && !(self->dealer = s_connect (self)))
            break;
        zframe_t *copy = zframe_dup (packed);
        if (zframe_send (&copy, self->dealer, ZFRAME_DONTWAIT) == 0)
            reply = s_await (self, request_id, ep_mono_ms () + timeout_ms);
        else
            zframe_destroy (&copy);
        if (reply)
            break;
        s_move (self);
    }
    zframe_destroy (&packed);
    if (!reply && !self->dealer && self->socket_errno) {
        ep_errorf (err, errlen, "cannot open a socket to %s: %s (the process is at its descriptor limit: "
                   "raise `ulimit -n` or lower the load)", self->endpoint, strerror (self->socket_errno));
        return NULL;
    }
    if (!reply && ep_fdlimit_reached ()) {
        //  The socket stays, but its connection needs a descriptor too.
        ep_errorf (err, errlen, "no reply from %s: the process is at its descriptor limit, so no "
                   "connection can be made (raise `ulimit -n` or lower the load)", self->endpoint);
        if (self->attempts > attempts)
            self->attempts = attempts;
        return NULL;
    }
    if (!reply) {
        ep_errorf (err, errlen, "no reply from %s after %d attempt%s of %d ms: is the service running and is the address right?",
                   self->endpoint, attempts, attempts == 1? "": "s", timeout_ms);
        if (self->attempts > attempts)
            self->attempts = attempts;
        return NULL;
    }
    ProtobufCMessage *msg = ep_codec_unpack_frame (reply_desc, reply, EP_CODEC_DEFAULT_CAP,
                                                   self->endpoints [self->current], err, errlen);
    zframe_destroy (&reply);
    return msg;
}

int
ep_rpc_client_send (ep_rpc_client_t *self, const ProtobufCMessage *request,
                    const char *request_id, int timeout_ms, char *err, size_t errlen)
{
    EP_ASSERT (timeout_ms > 0 && strlen (request_id) < sizeof self->waiting);
    self->waiting [0] = 0;
    zframe_t *packed = ep_codec_pack (request, EP_CODEC_DEFAULT_CAP, err, errlen);
    if (!packed)
        return -1;
    if (zframe_send (&packed, self->dealer, ZFRAME_DONTWAIT) != 0) {
        //  No peer connected yet (a DEALER with no pipe refuses at once):
        //  the caller retries after its backoff, as after a timeout.
        zframe_destroy (&packed);
        ep_errorf (err, errlen, "cannot send to %s: %s (is the service running and is the address right?)",
                   self->endpoints [self->current], zmq_strerror (zmq_errno ()));
        s_move (self);
        return -1;
    }
    snprintf (self->waiting, sizeof self->waiting, "%s", request_id);
    self->deadline = ep_mono_ms () + timeout_ms;
    self->timeout_ms = timeout_ms;
    self->attempts = 1;
    return 0;
}

zsock_t *
ep_rpc_client_socket (ep_rpc_client_t *self)
{
    return self->dealer;
}

bool
ep_rpc_client_waiting (ep_rpc_client_t *self)
{
    return *self->waiting != 0;
}

int64_t
ep_rpc_client_deadline (ep_rpc_client_t *self)
{
    return *self->waiting? self->deadline: -1;
}

ProtobufCMessage *
ep_rpc_client_take (ep_rpc_client_t *self, const ProtobufCMessageDescriptor *reply_desc,
                    char *err, size_t errlen)
{
    *err = 0;
    while (zsock_events (self->dealer) & ZMQ_POLLIN) {
        zframe_t *frame = zframe_recv (self->dealer);     //  POLLIN: one is waiting
        if (!frame)
            break;
        if (!*self->waiting) {
            zframe_destroy (&frame);        //  late reply to an abandoned request
            continue;
        }
        char why [256];
        Ep__ReplyHeader *header = (Ep__ReplyHeader *) ep_codec_unpack_frame (
            &ep__reply_header__descriptor, frame, EP_CODEC_DEFAULT_CAP, self->endpoints [self->current],
            why, sizeof why);
        bool ours = header && header->request_id && streq (header->request_id, self->waiting);
        if (header)
            ep__reply_header__free_unpacked (header, NULL);
        if (!ours) {
            zframe_destroy (&frame);
            continue;
        }
        self->waiting [0] = 0;
        ProtobufCMessage *msg = ep_codec_unpack_frame (reply_desc, frame, EP_CODEC_DEFAULT_CAP,
                                                       self->endpoints [self->current], err, errlen);
        zframe_destroy (&frame);
        return msg;
    }
    return NULL;
}

bool
ep_rpc_client_expire (ep_rpc_client_t *self, int64_t now_ms, char *err, size_t errlen)
{
    if (!*self->waiting || now_ms < self->deadline)
        return false;
    if (ep_fdlimit_reached ())
        ep_errorf (err, errlen, "no reply from %s: the process is at its descriptor limit, so no "
                   "connection can be made (raise `ulimit -n` or lower the load)", self->endpoints [self->current]);
    else
        ep_errorf (err, errlen, "no reply from %s within %d ms: is the service running and is the address right?",
                   self->endpoints [self->current], self->timeout_ms);
    self->waiting [0] = 0;
    s_move (self);
    return true;
}

void
ep_rpc_client_move (ep_rpc_client_t *self)
{
    self->waiting [0] = 0;
    s_move (self);
}

int
ep_rpc_client_attempts (ep_rpc_client_t *self)
{
    return self->attempts;
}

const char *
ep_rpc_client_endpoint (ep_rpc_client_t *self)
{
    return self->endpoints [self->current];
}

uint64_t
ep_rpc_client_failovers (ep_rpc_client_t *self)
{
    return self->failovers;
}
