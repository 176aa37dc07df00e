/*  ep_rpc_server.c: ROUTER side: caps, request ids, reply cache, parked
    retries. */
#include "ep_rpc_server.h"
#include "ep_codec.h"
#include "ep_log.h"
#include "ep_metrics.h"
#include <stdarg.h>

struct _ep_rpc_call_t {
    zframe_t *routing_id;       //  who sent it
    ep_caller_t caller;         //  authenticated identity
    char *request_id;           //  client-chosen id
    char *cache_key;            //  caller key + request id, for parked retries
    zframe_t *payload;          //  request bytes
};

struct _ep_rpc_server_t {
    zsock_t *router;            //  ROUTER socket (borrowed)
    size_t cap;                 //  largest request accepted
    ep_replycache_t *cache;     //  recent replies
    size_t max_replies;         //  the cache's capacity
    zhashx_t *in_flight;        //  cache key -> zlistx of parked routing ids
    uint64_t retries;           //  requests answered from the cache
    uint64_t malformed;         //  requests refused as malformed
    ep_series_t *cache_entries; //  edgeplane_rpc_reply_cache_entries, or NULL
};

//  The reply cache is bounded (max_replies, ttl); its gauge shows it stays
//  so under load (tests/soak judges it against its capacity).
static void
s_cache_gauge (ep_rpc_server_t *self)
{
    if (self->cache_entries)
        ep_series_set (self->cache_entries, (double) ep_replycache_size (self->cache));
}

static void
s_call_destroy (ep_rpc_call_t **call_p)
{
    ep_rpc_call_t *call = *call_p;
    if (call) {
        zframe_destroy (&call->routing_id);
        zframe_destroy (&call->payload);
        free (call->request_id);
        free (call->cache_key);
        free (call);
        *call_p = NULL;
    }
}

static void
s_parked_destroy (void **item)
{
    zlistx_t *list = (zlistx_t *) *item;
    zlistx_destroy (&list);
    *item = NULL;
}

ep_rpc_server_t *
ep_rpc_server_new (zsock_t *router, size_t cap, size_t max_replies, int64_t ttl_ms)
{
    ep_rpc_server_t *self = (ep_rpc_server_t *) zmalloc (sizeof (ep_rpc_server_t));
    self->router = router;
    self->cap = cap;
    self->cache = ep_replycache_new (max_replies, ttl_ms);
    self->max_replies = max_replies;
    self->in_flight = zhashx_new ();
    zhashx_set_destructor (self->in_flight, s_parked_destroy);
    //  Refuse oversized messages in libzmq already: it drops the connection
    //  before buffering them. Applies to connections accepted from now on
    //  (ep_service_api_socket sets it before its bind).
    zsock_set_maxmsgsize (router, (int64_t) cap + 1024);
    return self;
}

void
ep_rpc_server_set_metrics (ep_rpc_server_t *self, ep_metrics_t *metrics)
{
    self->cache_entries = ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_rpc_reply_cache_entries",
        "Replies remembered for retries (the reply cache; bounded by edgeplane_rpc_reply_cache_capacity).",
        0, NULL), NULL);
    ep_series_set (ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_rpc_reply_cache_capacity",
        "Replies the reply cache keeps at most.", 0, NULL), NULL), (double) self->max_replies);
    s_cache_gauge (self);
}

void
ep_rpc_server_destroy (ep_rpc_server_t **self_p)
{
    ep_rpc_server_t *self = *self_p;
    if (self) {
        ep_replycache_destroy (&self->cache);
        zhashx_destroy (&self->in_flight);
        free (self);
        *self_p = NULL;
    }
}

static void
s_send (ep_rpc_server_t *self, zframe_t *routing_id, zframe_t *reply)
{
    zframe_t *to = zframe_dup (routing_id);
    zframe_t *body = zframe_dup (reply);
    //  Never block the service on a slow client: ROUTER drops when the
    //  peer's queue is full or the peer is gone.
    zframe_send (&to, self->router, ZFRAME_MORE | ZFRAME_DONTWAIT);
    zframe_send (&body, self->router, ZFRAME_DONTWAIT);
}

static zframe_t *
s_status_reply (const char *request_id, Ep__Status__Code code, const char *message)
{
    Ep__Status status = EP__STATUS__INIT;
    status.has_code = true;
    status.code = code;
    status.message = (char *) message;
    Ep__ReplyHeader header = EP__REPLY_HEADER__INIT;
    header.request_id = (char *) request_id;
    header.status = &status;
    char err [256];
    zframe_t *frame = ep_codec_pack (&header.base, EP_CODEC_DEFAULT_CAP, err, sizeof err);
    EP_ASSERT (frame);
    return frame;
}

//  Answers a malformed message directly.
static void
s_refuse (ep_rpc_server_t *self, zframe_t *routing_id, const char *request_id,
          const char *message)
{
    self->malformed++;
    if (!routing_id)
        return;
    zframe_t *reply = s_status_reply (request_id? request_id: "",
                                      EP__STATUS__CODE__INVALID_ARGUMENT, message);
    s_send (self, routing_id, reply);
    zframe_destroy (&reply);
}

ep_rpc_call_t *
ep_rpc_server_recv (ep_rpc_server_t *self)
{
    zmsg_t *msg = zmsg_recv (self->router);
    if (!msg)
        return NULL;
    zframe_t *routing_id = zmsg_pop (msg);
    zframe_t *payload = zmsg_pop (msg);
    ep_rpc_call_t *call = NULL;
    char err [256];
    if (!routing_id || !payload || zmsg_size (msg) != 0)
        s_refuse (self, routing_id, NULL,
                  "a request is exactly one frame holding one protobuf Request");
    else {
        Ep__RequestHeader *header = (Ep__RequestHeader *) ep_codec_unpack_frame (
            &ep__request_header__descriptor, payload, self->cap, "client", err, sizeof err);
        if (!header)
            s_refuse (self, routing_id, NULL, err);
        else
        if (!header->request_id || !*header->request_id || strlen (header->request_id) > 160)
            s_refuse (self, routing_id, header->request_id,
                      "request_id (field 1) is required: 1 to 160 characters chosen by the client, reused on retry");
        else {
            call = (ep_rpc_call_t *) zmalloc (sizeof (ep_rpc_call_t));
            call->routing_id = routing_id;
            call->payload = payload;
            routing_id = payload = NULL;
            call->request_id = strdup (header->request_id);
            ep_caller_from_frame (call->payload, &call->caller);
        }
        if (header)
            ep__request_header__free_unpacked (header, NULL);
    }
    zframe_destroy (&routing_id);
    zframe_destroy (&payload);
    zmsg_destroy (&msg);
    if (!call)
        return NULL;

    //  A retry of a request already answered, or still being served?
    zframe_t *cached = NULL;
    ep_replycache_result_t found = ep_replycache_lookup (
        self->cache, call->caller.key, call->request_id,
        zframe_data (call->payload), zframe_size (call->payload), ep_mono_ms (), &cached);
    s_cache_gauge (self);       //  the lookup expires old entries
    if (found == EP_REPLYCACHE_HIT) {
        self->retries++;
        s_send (self, call->routing_id, cached);
        s_call_destroy (&call);
        return NULL;
    }
    if (found == EP_REPLYCACHE_MISMATCH) {
        ep_rpc_server_fail (self, &call, EP__STATUS__CODE__INVALID_ARGUMENT,
                            "request_id %s was already used for a different request; use a new id for a new request",
                            call->request_id);
        return NULL;
    }
    call->cache_key = zsys_sprintf ("%s\x1f%s", call->caller.key, call->request_id);
    zlistx_t *parked = (zlistx_t *) zhashx_lookup (self->in_flight, call->cache_key);
    if (parked) {
        self->retries++;
        zlistx_add_end (parked, zframe_dup (call->routing_id));
        s_call_destroy (&call);
        return NULL;
    }
    parked = zlistx_new ();
    zlistx_set_destructor (parked, (czmq_destructor *) zframe_destroy);
    zhashx_insert (self->in_flight, call->cache_key, parked);
    return call;
}

int
ep_rpc_server_reply (ep_rpc_server_t *self, ep_rpc_call_t **call_p,
                     zframe_t **reply_p, bool remember)
{
    ep_rpc_call_t *call = *call_p;
    zframe_t *reply = *reply_p;
    EP_ASSERT (call && reply);
    s_send (self, call->routing_id, reply);
    if (call->cache_key) {
        zlistx_t *parked = (zlistx_t *) zhashx_lookup (self->in_flight, call->cache_key);
        zframe_t *routing_id = parked? (zframe_t *) zlistx_first (parked): NULL;
        for (; routing_id; routing_id = (zframe_t *) zlistx_next (parked))
            s_send (self, routing_id, reply);
        zhashx_delete (self->in_flight, call->cache_key);
    }
    if (remember)
        ep_replycache_store (self->cache, call->caller.key, call->request_id,
                             zframe_data (call->payload), zframe_size (call->payload),
                             reply, ep_mono_ms ());
    s_cache_gauge (self);
    zframe_destroy (reply_p);
    s_call_destroy (call_p);
    return 0;
}

zframe_t *
ep_rpc_server_cached (ep_rpc_server_t *self, ep_rpc_call_t *call)
{
    zframe_t *cached = NULL;
    ep_replycache_result_t found = ep_replycache_lookup (
        self->cache, call->caller.key, call->request_id,
        zframe_data (call->payload), zframe_size (call->payload), ep_mono_ms (), &cached);
    return found == EP_REPLYCACHE_HIT? cached: NULL;
}

int
ep_rpc_server_fail (ep_rpc_server_t *self, ep_rpc_call_t **call_p,
                    Ep__Status__Code code, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char message [512];
    vsnprintf (message, sizeof message, format, args);
    va_end (args);
    zframe_t *reply = s_status_reply ((*call_p)->request_id, code, message);
    //  Refusals are not remembered: a retry after the cause is fixed (a key
    //  authorised, a bad field corrected under a new id) is judged afresh.
    return ep_rpc_server_reply (self, call_p, &reply, false);
}

ProtobufCMessage *
ep_rpc_server_recv_request (ep_rpc_server_t *self, const ProtobufCMessageDescriptor *desc,
                            ep_rpc_call_t **call_p)
{
    *call_p = NULL;
    ep_rpc_call_t *call = ep_rpc_server_recv (self);
    if (!call)
        return NULL;
    char err [256];
    ProtobufCMessage *request = ep_codec_unpack_frame (desc, call->payload, self->cap,
                                                       call->caller.name, err, sizeof err);
    if (!request) {
        self->malformed++;
        ep_rpc_server_fail (self, &call, EP__STATUS__CODE__INVALID_ARGUMENT, "%s", err);
        return NULL;
    }
    *call_p = call;
    return request;
}

int
ep_rpc_server_answer (ep_rpc_server_t *self, ep_rpc_call_t **call_p,
                      const ProtobufCMessage *reply, bool remember, const char *smaller)
{
    char err [256];
    zframe_t *frame = ep_codec_pack (reply, self->cap, err, sizeof err);
    if (!frame) {
        ep_log_warn ("reply too large: %s", err);
        return ep_rpc_server_fail (self, call_p, EP__STATUS__CODE__FAILED_PRECONDITION,
                                   "the reply would exceed %zu bytes: ask for a smaller %s",
                                   self->cap, smaller);
    }
    return ep_rpc_server_reply (self, call_p, &frame, remember);
}

Ep__Status *
ep_status_ok (Ep__Status *status)
{
    ep__status__init (status);
    status->has_code = true;
    status->code = EP__STATUS__CODE__OK;
    return status;
}

void
ep_status_set (Ep__Status *status, char *message, size_t size,
               Ep__Status__Code code, const char *format, va_list args)
{
    vsnprintf (message, size, format, args);
    status->code = code;
    status->message = message;
}

const char *
ep_status_code_name (Ep__Status__Code code)
{
    const ProtobufCEnumValue *value =
        protobuf_c_enum_descriptor_get_value (&ep__status__code__descriptor, code);
    return value? value->name: "UNKNOWN";
}

bool
ep_rpc_server_require_role (ep_rpc_server_t *self, ep_rpc_call_t **call_p,
                            const char *const *allowed)
{
    const ep_caller_t *caller = &(*call_p)->caller;
    if (ep_role_allowed (caller->role, allowed))
        return true;
    char roles [128] = "";
    for (size_t i = 0; allowed [i]; i++) {
        if (i)
            strncat (roles, ", ", sizeof roles - strlen (roles) - 1);
        strncat (roles, allowed [i], sizeof roles - strlen (roles) - 1);
    }
    ep_rpc_server_fail (self, call_p, EP__STATUS__CODE__PERMISSION_DENIED,
                        "role \"%s\" may not do this (allowed: %s); use a certificate with one of those roles",
                        *caller->role? caller->role: "none", roles);
    return false;
}

void
ep_rpc_call_destroy (ep_rpc_call_t **call_p)
{
    s_call_destroy (call_p);
}

const ep_caller_t *
ep_rpc_call_caller (ep_rpc_call_t *call)
{
    return &call->caller;
}

const char *
ep_rpc_call_request_id (ep_rpc_call_t *call)
{
    return call->request_id;
}

zframe_t *
ep_rpc_call_payload (ep_rpc_call_t *call)
{
    return call->payload;
}

ep_replycache_t *
ep_rpc_server_cache (ep_rpc_server_t *self)
{
    return self->cache;
}

uint64_t
ep_rpc_server_retries (ep_rpc_server_t *self)
{
    return self->retries;
}

uint64_t
ep_rpc_server_malformed (ep_rpc_server_t *self)
{
    return self->malformed;
}
