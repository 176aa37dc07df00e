/*  ep_etcd_codec.c: etcd v3 JSON gateway requests and responses, no sockets. */
#include "ep_etcd_codec.h"
#include <jansson.h>
#include <sodium.h>

static const char *s_paths [EP_ETCD_KINDS] = {
    [EP_ETCD_RANGE] = "/v3/kv/range",
    [EP_ETCD_PUT] = "/v3/kv/put",
    [EP_ETCD_DELETE] = "/v3/kv/deleterange",
    [EP_ETCD_TXN] = "/v3/kv/txn",
    [EP_ETCD_COMPACT] = "/v3/kv/compaction",
    [EP_ETCD_LEASE_GRANT] = "/v3/lease/grant",
    [EP_ETCD_LEASE_KEEPALIVE] = "/v3/lease/keepalive",
    [EP_ETCD_LEASE_REVOKE] = "/v3/lease/revoke",
    [EP_ETCD_LEASE_TTL] = "/v3/lease/timetolive",
    [EP_ETCD_WATCH] = "/v3/watch",
    [EP_ETCD_STATUS] = "/v3/maintenance/status",
    [EP_ETCD_SNAPSHOT] = "/v3/maintenance/snapshot",
};

//  How deep txns may nest in a request or a response (etcd allows it; we
//  bound the recursion a hostile body could ask for).
#define S_MAX_DEPTH 4

const char *
ep_etcd_path (ep_etcd_kind_t kind)
{
    return (unsigned) kind < EP_ETCD_KINDS? s_paths [kind]: NULL;
}

ep_etcd_bytes_t
ep_etcd_str (const char *string)
{
    return (ep_etcd_bytes_t) { string, string? strlen (string): 0 };
}

ep_etcd_bytes_t
ep_etcd_prefix_end (ep_etcd_bytes_t prefix, uint8_t *buf, size_t bufsize)
{
    size_t size = prefix.size < bufsize? prefix.size: bufsize;
    if (size)
        memcpy (buf, prefix.data, size);
    while (size > 0) {
        if (buf [size - 1] < 0xff) {
            buf [size - 1]++;
            return (ep_etcd_bytes_t) { buf, size };
        }
        size--;
    }
    //  Every byte 0xff (or empty): "\0" means "to the end of the keyspace".
    buf [0] = 0;
    return (ep_etcd_bytes_t) { buf, 1 };
}

//  ---------------------------------------------------------------------
//  Encoding

static void
s_set_bytes (json_t *obj, const char *name, ep_etcd_bytes_t bytes)
{
    if (!bytes.data && !bytes.size)
        return;
    size_t len = sodium_base64_encoded_len (bytes.size, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = malloc (len);
    assert (b64);
    sodium_bin2base64 (b64, len, bytes.data, bytes.size, sodium_base64_VARIANT_ORIGINAL);
    json_object_set_new (obj, name, json_string (b64));
    free (b64);
}

static void
s_set_int (json_t *obj, const char *name, int64_t value)
{
    if (value == 0)
        return;
    char text [24];
    snprintf (text, sizeof text, "%" PRId64, value);
    json_object_set_new (obj, name, json_string (text));
}

static char *
s_dump (json_t *obj)
{
    char *text = json_dumps (obj, JSON_COMPACT);
    json_decref (obj);
    assert (text);
    return text;
}

static json_t *
s_range (const ep_etcd_range_t *req)
{
    json_t *obj = json_object ();
    s_set_bytes (obj, "key", req->key);
    s_set_bytes (obj, "range_end", req->range_end);
    s_set_int (obj, "revision", req->revision);
    s_set_int (obj, "limit", req->limit);
    if (req->keys_only)
        json_object_set_new (obj, "keys_only", json_true ());
    if (req->count_only)
        json_object_set_new (obj, "count_only", json_true ());
    return obj;
}

static json_t *
s_put (const ep_etcd_put_t *req)
{
    json_t *obj = json_object ();
    s_set_bytes (obj, "key", req->key);
    //  An empty value is legal: send "" so the field is explicit.
    if (!req->value.data && !req->value.size)
        json_object_set_new (obj, "value", json_string (""));
    else
        s_set_bytes (obj, "value", req->value);
    s_set_int (obj, "lease", req->lease);
    if (req->prev_kv)
        json_object_set_new (obj, "prev_kv", json_true ());
    return obj;
}

static json_t *
s_delete (const ep_etcd_delete_t *req)
{
    json_t *obj = json_object ();
    s_set_bytes (obj, "key", req->key);
    s_set_bytes (obj, "range_end", req->range_end);
    if (req->prev_kv)
        json_object_set_new (obj, "prev_kv", json_true ());
    return obj;
}

static json_t *s_txn (const ep_etcd_txn_t *req, int depth, char *err, size_t errlen);

static json_t *
s_ops (const ep_etcd_op_t *ops, size_t nops, int depth, char *err, size_t errlen)
{
    json_t *array = json_array ();
    for (size_t i = 0; i < nops; i++) {
        json_t *op = json_object ();
        const ep_etcd_op_t *o = &ops [i];
        json_t *inner = NULL;
        const char *name = NULL;
        if (o->kind == EP_ETCD_RANGE)
            inner = s_range (&o->u.range), name = "request_range";
        else
        if (o->kind == EP_ETCD_PUT)
            inner = s_put (&o->u.put), name = "request_put";
        else
        if (o->kind == EP_ETCD_DELETE)
            inner = s_delete (&o->u.del), name = "request_delete_range";
        else
        if (o->kind == EP_ETCD_TXN && o->u.txn)
            inner = s_txn (o->u.txn, depth + 1, err, errlen), name = "request_txn";
        else
            ep_errorf (err, errlen, "txn op %zu: kind %d is not range, put, delete or txn",
                       i, (int) o->kind);
        if (!inner) {
            json_decref (op);
            json_decref (array);
            return NULL;
        }
        json_object_set_new (op, name, inner);
        json_array_append_new (array, op);
    }
    return array;
}

static const char *s_targets [] = { "VERSION", "CREATE", "MOD", "VALUE", "LEASE" };
static const char *s_target_fields [] = {
    "version", "create_revision", "mod_revision", "value", "lease" };
static const char *s_results [] = { "EQUAL", "GREATER", "LESS", "NOT_EQUAL" };

static json_t *
s_compare (const ep_etcd_compare_t *c)
{
    json_t *obj = json_object ();
    s_set_bytes (obj, "key", c->key);
    s_set_bytes (obj, "range_end", c->range_end);
    json_object_set_new (obj, "target", json_string (s_targets [c->target]));
    json_object_set_new (obj, "result", json_string (s_results [c->result]));
    const char *field = s_target_fields [c->target];
    if (c->target == EP_ETCD_VALUE)
        json_object_set_new (obj, field, json_string (""));
    if (c->target == EP_ETCD_VALUE)
        s_set_bytes (obj, field, c->value);
    else {
        //  Zero is meaningful here ("the key does not exist"): always sent.
        char text [24];
        snprintf (text, sizeof text, "%" PRId64, c->number);
        json_object_set_new (obj, field, json_string (text));
    }
    return obj;
}

static json_t *
s_txn (const ep_etcd_txn_t *req, int depth, char *err, size_t errlen)
{
    if (depth > S_MAX_DEPTH) {
        ep_errorf (err, errlen, "txn nested deeper than %d", S_MAX_DEPTH);
        return NULL;
    }
    json_t *obj = json_object ();
    json_t *compare = json_array ();
    for (size_t i = 0; i < req->ncompare; i++) {
        const ep_etcd_compare_t *c = &req->compare [i];
        if ((unsigned) c->target > EP_ETCD_LEASE || (unsigned) c->result > EP_ETCD_NOT_EQUAL) {
            ep_errorf (err, errlen, "txn compare %zu: target %d or result %d out of range",
                       i, (int) c->target, (int) c->result);
            json_decref (compare);
            json_decref (obj);
            return NULL;
        }
        json_array_append_new (compare, s_compare (c));
    }
    json_object_set_new (obj, "compare", compare);
    json_t *success = s_ops (req->success, req->nsuccess, depth, err, errlen);
    json_t *failure = success? s_ops (req->failure, req->nfailure, depth, err, errlen): NULL;
    if (!success || !failure) {
        json_decref (success);
        json_decref (obj);
        return NULL;
    }
    json_object_set_new (obj, "success", success);
    json_object_set_new (obj, "failure", failure);
    return obj;
}

char *
ep_etcd_encode_range (const ep_etcd_range_t *req)
{
    return s_dump (s_range (req));
}

char *
ep_etcd_encode_put (const ep_etcd_put_t *req)
{
    return s_dump (s_put (req));
}

char *
ep_etcd_encode_delete (const ep_etcd_delete_t *req)
{
    return s_dump (s_delete (req));
}

char *
ep_etcd_encode_txn (const ep_etcd_txn_t *req, char *err, size_t errlen)
{
    json_t *obj = s_txn (req, 0, err, errlen);
    return obj? s_dump (obj): NULL;
}

char *
ep_etcd_encode_watch (const ep_etcd_watch_req_t *req)
{
    json_t *create = json_object ();
    s_set_bytes (create, "key", req->key);
    s_set_bytes (create, "range_end", req->range_end);
    s_set_int (create, "start_revision", req->start_revision);
    if (req->progress_notify)
        json_object_set_new (create, "progress_notify", json_true ());
    if (req->prev_kv)
        json_object_set_new (create, "prev_kv", json_true ());
    json_t *obj = json_object ();
    json_object_set_new (obj, "create_request", create);
    return s_dump (obj);
}

char *
ep_etcd_encode_compact (int64_t revision)
{
    json_t *obj = json_object ();
    s_set_int (obj, "revision", revision);
    return s_dump (obj);
}

char *
ep_etcd_encode_lease_grant (int64_t ttl_s)
{
    json_t *obj = json_object ();
    s_set_int (obj, "TTL", ttl_s);
    return s_dump (obj);
}

char *
ep_etcd_encode_lease_id (int64_t id)
{
    json_t *obj = json_object ();
    s_set_int (obj, "ID", id);
    return s_dump (obj);
}

//  ---------------------------------------------------------------------
//  Decoding: every accessor checks the JSON type and range, and names the
//  field it refuses in err (path is the field's place, "kvs[2].value").

typedef struct {
    char *err;
    size_t errlen;
} s_ctx_t;

static int
s_fail (s_ctx_t *ctx, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (ctx->err, ctx->errlen, format, args);
    va_end (args);
    return -1;
}

//  A 64-bit integer sent as a decimal string (a JSON number is tolerated).
//  Absent: 0. Unsigned fields (ids) go through *u.
static int
s_get_int (s_ctx_t *ctx, json_t *obj, const char *path, const char *name,
           int64_t *value, uint64_t *u)
{
    json_t *field = json_object_get (obj, name);
    if (value) *value = 0;
    if (u) *u = 0;
    if (!field || json_is_null (field))
        return 0;
    if (json_is_integer (field)) {
        json_int_t n = json_integer_value (field);
        if (value) *value = n;
        if (u) *u = (uint64_t) n;
        return 0;
    }
    const char *text = json_string_value (field);
    size_t len = text? json_string_length (field): 0;
    if (!text || len == 0 || len > 20)
        return s_fail (ctx, "%s%s: not an integer string", path, name);
    const char *p = text;
    bool negative = *p == '-';
    if (negative)
        p++;
    if (!*p)
        return s_fail (ctx, "%s%s: not an integer string", path, name);
    uint64_t n = 0;
    for (; *p; p++) {
        uint64_t digit = (uint64_t) (*p - '0');
        if (*p < '0' || *p > '9'
        ||  n > UINT64_MAX / 10 || (n == UINT64_MAX / 10 && digit > UINT64_MAX % 10))
            return s_fail (ctx, "%s%s: \"%.24s\" is not an integer", path, name, text);
        n = n * 10 + digit;
    }
    if (u) {
        if (negative)
            return s_fail (ctx, "%s%s: negative id", path, name);
        *u = n;
    }
    if (value) {
        if (n > (negative? (uint64_t) INT64_MAX + 1: (uint64_t) INT64_MAX))
            return s_fail (ctx, "%s%s: %.24s is out of range", path, name, text);
        *value = negative? (int64_t) (0 - n): (int64_t) n;
    }
    return 0;
}

static int
s_get_bool (s_ctx_t *ctx, json_t *obj, const char *path, const char *name, bool *value)
{
    json_t *field = json_object_get (obj, name);
    *value = false;
    if (!field || json_is_null (field))
        return 0;
    if (!json_is_boolean (field))
        return s_fail (ctx, "%s%s: not a boolean", path, name);
    *value = json_is_true (field);
    return 0;
}

static int
s_get_string (s_ctx_t *ctx, json_t *obj, const char *path, const char *name, char **value)
{
    json_t *field = json_object_get (obj, name);
    *value = NULL;
    if (!field || json_is_null (field))
        return 0;
    if (!json_is_string (field))
        return s_fail (ctx, "%s%s: not a string", path, name);
    *value = strdup (json_string_value (field));
    assert (*value);
    return 0;
}

//  Base64 bytes, NUL-terminated in a fresh buffer. Absent: empty.
static int
s_get_b64 (s_ctx_t *ctx, json_t *obj, const char *path, const char *name,
           uint8_t **data, size_t *size)
{
    json_t *field = json_object_get (obj, name);
    *data = NULL;
    *size = 0;
    const char *text = "";
    size_t len = 0;
    if (field && !json_is_null (field)) {
        if (!json_is_string (field))
            return s_fail (ctx, "%s%s: not a base64 string", path, name);
        text = json_string_value (field);
        len = json_string_length (field);
    }
    size_t cap = len / 4 * 3 + 3;
    uint8_t *buf = malloc (cap + 1);
    assert (buf);
    size_t out = 0;
    if (len && sodium_base642bin (buf, cap, text, len, NULL, &out, NULL,
                                  sodium_base64_VARIANT_ORIGINAL) != 0) {
        free (buf);
        return s_fail (ctx, "%s%s: not standard base64", path, name);
    }
    buf [out] = 0;
    *data = buf;
    *size = out;
    return 0;
}

static void
s_kv_free (ep_etcd_kv_t *kv)
{
    free (kv->key);
    free (kv->value);
    memset (kv, 0, sizeof *kv);
}

//  Printable form of a key for messages: at most 64 bytes, others escaped.
static void
s_key_text (const uint8_t *key, size_t size, char *out, size_t outsize)
{
    size_t o = 0;
    for (size_t i = 0; i < size && o + 5 < outsize && i < 64; i++) {
        if (key [i] >= 0x20 && key [i] < 0x7f)
            out [o++] = (char) key [i];
        else
            o += (size_t) snprintf (out + o, outsize - o, "\\x%02x", key [i]);
    }
    out [o] = 0;
}

static int
s_kv (s_ctx_t *ctx, json_t *obj, const char *path, ep_etcd_kv_t *kv)
{
    memset (kv, 0, sizeof *kv);
    if (!json_is_object (obj))
        return s_fail (ctx, "%s: not an object", path);
    char sub [96];
    snprintf (sub, sizeof sub, "%s.", path);
    if (s_get_b64 (ctx, obj, sub, "key", &kv->key, &kv->key_size))
        return -1;
    if (kv->key_size == 0)
        return s_fail (ctx, "%skey: missing", sub), s_kv_free (kv), -1;
    if (s_get_b64 (ctx, obj, sub, "value", &kv->value, &kv->value_size)) {
        char key [300];
        s_key_text (kv->key, kv->key_size, key, sizeof key);
        size_t used = strlen (ctx->err);
        snprintf (ctx->err + used, ctx->errlen - used, " (key %s)", key);
        s_kv_free (kv);
        return -1;
    }
    if (s_get_int (ctx, obj, sub, "create_revision", &kv->create_revision, NULL)
    ||  s_get_int (ctx, obj, sub, "mod_revision", &kv->mod_revision, NULL)
    ||  s_get_int (ctx, obj, sub, "version", &kv->version, NULL)
    ||  s_get_int (ctx, obj, sub, "lease", &kv->lease, NULL)) {
        s_kv_free (kv);
        return -1;
    }
    if (kv->mod_revision < 0 || kv->create_revision < 0 || kv->version < 0)
        return s_fail (ctx, "%s: negative revision or version", path), s_kv_free (kv), -1;
    return 0;
}

//  An array field of objects (absent: none), each decoded by s_kv.
static int
s_kvs (s_ctx_t *ctx, json_t *obj, const char *name, ep_etcd_kv_t **kvs, size_t *nkvs)
{
    json_t *array = json_object_get (obj, name);
    if (!array || json_is_null (array))
        return 0;
    if (!json_is_array (array))
        return s_fail (ctx, "%s: not an array", name);
    size_t n = json_array_size (array);
    *kvs = calloc (n? n: 1, sizeof **kvs);
    assert (*kvs);
    for (size_t i = 0; i < n; i++) {
        char path [64];
        snprintf (path, sizeof path, "%s[%zu]", name, i);
        if (s_kv (ctx, json_array_get (array, i), path, &(*kvs) [i]))
            return -1;
        *nkvs = i + 1;
    }
    return 0;
}

static int
s_header (s_ctx_t *ctx, json_t *obj, ep_etcd_header_t *header)
{
    json_t *h = json_object_get (obj, "header");
    if (!h || json_is_null (h))
        return 0;
    if (!json_is_object (h))
        return s_fail (ctx, "header: not an object");
    if (s_get_int (ctx, h, "header.", "cluster_id", NULL, &header->cluster_id)
    ||  s_get_int (ctx, h, "header.", "member_id", NULL, &header->member_id)
    ||  s_get_int (ctx, h, "header.", "revision", &header->revision, NULL)
    ||  s_get_int (ctx, h, "header.", "raft_term", &header->raft_term, NULL))
        return -1;
    if (header->revision < 0)
        return s_fail (ctx, "header.revision: negative");
    return 0;
}

static int s_body (s_ctx_t *ctx, ep_etcd_kind_t kind, json_t *obj, ep_etcd_reply_t *reply,
                   int depth);

static int
s_txn_responses (s_ctx_t *ctx, json_t *obj, ep_etcd_reply_t *reply, int depth)
{
    if (s_get_bool (ctx, obj, "", "succeeded", &reply->succeeded))
        return -1;
    json_t *array = json_object_get (obj, "responses");
    if (!array || json_is_null (array))
        return 0;
    if (!json_is_array (array))
        return s_fail (ctx, "responses: not an array");
    size_t n = json_array_size (array);
    reply->responses = calloc (n? n: 1, sizeof *reply->responses);
    assert (reply->responses);
    static const struct { const char *name; ep_etcd_kind_t kind; } s_kinds [] = {
        { "response_range", EP_ETCD_RANGE }, { "response_put", EP_ETCD_PUT },
        { "response_delete_range", EP_ETCD_DELETE }, { "response_txn", EP_ETCD_TXN } };
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_array_get (array, i);
        ep_etcd_reply_t *sub = &reply->responses [i];
        reply->nresponses = i + 1;
        json_t *inner = NULL;
        for (size_t k = 0; k < EP_COUNT (s_kinds) && !inner; k++)
            if ((inner = json_object_get (item, s_kinds [k].name)))
                sub->kind = s_kinds [k].kind;
        if (!inner || !json_is_object (inner))
            return s_fail (ctx, "responses[%zu]: no response_range/put/delete_range/txn", i);
        if (s_body (ctx, sub->kind, inner, sub, depth + 1))
            return -1;
    }
    return 0;
}

static int
s_events (s_ctx_t *ctx, json_t *obj, ep_etcd_reply_t *reply)
{
    json_t *array = json_object_get (obj, "events");
    if (!array || json_is_null (array))
        return 0;
    if (!json_is_array (array))
        return s_fail (ctx, "events: not an array");
    size_t n = json_array_size (array);
    reply->events = calloc (n? n: 1, sizeof *reply->events);
    assert (reply->events);
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_array_get (array, i);
        ep_etcd_event_t *event = &reply->events [i];
        char path [48];
        if (!json_is_object (item))
            return s_fail (ctx, "events[%zu]: not an object", i);
        json_t *type = json_object_get (item, "type");
        if (type && !json_is_null (type)) {
            const char *t = json_string_value (type);
            if (!t || (strcmp (t, "PUT") && strcmp (t, "DELETE")))
                return s_fail (ctx, "events[%zu].type: not PUT or DELETE", i);
            event->is_delete = streq (t, "DELETE");
        }
        snprintf (path, sizeof path, "events[%zu].kv", i);
        if (s_kv (ctx, json_object_get (item, "kv"), path, &event->kv))
            return -1;
        reply->nevents = i + 1;
        json_t *prev = json_object_get (item, "prev_kv");
        if (prev && !json_is_null (prev)) {
            snprintf (path, sizeof path, "events[%zu].prev_kv", i);
            if (s_kv (ctx, prev, path, &event->prev_kv))
                return -1;
            event->has_prev = true;
        }
    }
    return 0;
}

static int
s_watch (s_ctx_t *ctx, json_t *obj, ep_etcd_reply_t *reply)
{
    if (s_get_int (ctx, obj, "", "watch_id", &reply->watch_id, NULL)
    ||  s_get_bool (ctx, obj, "", "created", &reply->created)
    ||  s_get_bool (ctx, obj, "", "canceled", &reply->canceled)
    ||  s_get_int (ctx, obj, "", "compact_revision", &reply->compact_revision, NULL)
    ||  s_get_string (ctx, obj, "", "cancel_reason", &reply->cancel_reason)
    ||  s_events (ctx, obj, reply))
        return -1;
    reply->progress = !reply->created && !reply->canceled && reply->nevents == 0;
    return 0;
}

static int
s_status (s_ctx_t *ctx, json_t *obj, ep_etcd_reply_t *reply)
{
    if (s_get_string (ctx, obj, "", "version", &reply->version)
    ||  s_get_int (ctx, obj, "", "dbSize", &reply->db_size, NULL)
    ||  s_get_int (ctx, obj, "", "dbSizeInUse", &reply->db_size_in_use, NULL)
    ||  s_get_int (ctx, obj, "", "leader", NULL, &reply->leader)
    ||  s_get_int (ctx, obj, "", "raftIndex", &reply->raft_index, NULL))
        return -1;
    json_t *errors = json_object_get (obj, "errors");
    if (!errors || json_is_null (errors))
        return 0;
    if (!json_is_array (errors))
        return s_fail (ctx, "errors: not an array");
    size_t n = json_array_size (errors);
    reply->alarms = calloc (n? n: 1, sizeof (char *));
    assert (reply->alarms);
    for (size_t i = 0; i < n; i++) {
        const char *text = json_string_value (json_array_get (errors, i));
        if (!text)
            return s_fail (ctx, "errors[%zu]: not a string", i);
        reply->alarms [reply->nalarms++] = strdup (text);
    }
    return 0;
}

static int
s_body (s_ctx_t *ctx, ep_etcd_kind_t kind, json_t *obj, ep_etcd_reply_t *reply, int depth)
{
    reply->kind = kind;
    if (depth > S_MAX_DEPTH)
        return s_fail (ctx, "responses nested deeper than %d", S_MAX_DEPTH);
    if (s_header (ctx, obj, &reply->header))
        return -1;
    switch (kind) {
        case EP_ETCD_RANGE:
            if (s_kvs (ctx, obj, "kvs", &reply->kvs, &reply->nkvs)
            ||  s_get_int (ctx, obj, "", "count", &reply->count, NULL)
            ||  s_get_bool (ctx, obj, "", "more", &reply->more))
                return -1;
            if (reply->count < 0 || (uint64_t) reply->count < reply->nkvs)
                return s_fail (ctx, "count: %" PRId64 " is below the %zu kvs returned",
                               reply->count, reply->nkvs);
            return 0;
        case EP_ETCD_PUT: {
            json_t *prev = json_object_get (obj, "prev_kv");
            if (!prev || json_is_null (prev))
                return 0;
            reply->kvs = calloc (1, sizeof *reply->kvs);
            assert (reply->kvs);
            if (s_kv (ctx, prev, "prev_kv", reply->kvs))
                return -1;
            reply->nkvs = 1;
            return 0;
        }
        case EP_ETCD_DELETE:
            //  -1 on failure (a bare || would make it 1, which the caller
            //  takes for an etcd error and returns as a reply).
            return s_get_int (ctx, obj, "", "deleted", &reply->deleted, NULL)
                || s_kvs (ctx, obj, "prev_kvs", &reply->kvs, &reply->nkvs)? -1: 0;
        case EP_ETCD_TXN:
            return s_txn_responses (ctx, obj, reply, depth);
        case EP_ETCD_LEASE_GRANT:
        case EP_ETCD_LEASE_KEEPALIVE:
        case EP_ETCD_LEASE_TTL:
            if (s_get_int (ctx, obj, "", "ID", &reply->lease_id, NULL)
            ||  s_get_int (ctx, obj, "", "TTL", &reply->ttl, NULL)
            ||  s_get_int (ctx, obj, "", "grantedTTL", &reply->granted_ttl, NULL))
                return -1;
            //  A keepalive of an expired lease answers TTL 0 (field omitted).
            if (kind == EP_ETCD_LEASE_KEEPALIVE && reply->ttl == 0)
                reply->ttl = -1;
            return 0;
        case EP_ETCD_WATCH:
            return s_watch (ctx, obj, reply);
        case EP_ETCD_STATUS:
            return s_status (ctx, obj, reply);
        case EP_ETCD_SNAPSHOT:
            return s_get_int (ctx, obj, "", "remaining_bytes", NULL, &reply->remaining_bytes)
                || s_get_b64 (ctx, obj, "", "blob", &reply->blob, &reply->blob_size)? -1: 0;
        default:
            return 0;
    }
}

//  {"error": "text", "code": N} or, in a stream, {"error": {"grpc_code": N,
//  "message": "text"}}. Returns 1 if obj was an error (decoded), 0 if not.
static int
s_error (s_ctx_t *ctx, json_t *obj, ep_etcd_reply_t *reply)
{
    json_t *error = json_object_get (obj, "error");
    if (!error)
        return 0;
    json_t *holder = json_is_object (error)? error: obj;
    json_t *code = json_object_get (holder, json_is_object (error)? "grpc_code": "code");
    json_t *message = json_object_get (holder, "message");
    const char *text = json_string_value (message);
    if (!text)
        text = json_string_value (error);
    if (!json_is_integer (code) || !text)
        return s_fail (ctx, "error: needs an integer code and a message");
    reply->code = (int) json_integer_value (code);
    if (reply->code <= 0)
        reply->code = EP_ETCD_UNAVAILABLE;
    reply->error = strdup (text);
    return 1;
}

ep_etcd_reply_t *
ep_etcd_decode (ep_etcd_kind_t kind, const char *body, size_t size, char *err, size_t errlen)
{
    s_ctx_t ctx = { err, errlen };
    if ((unsigned) kind >= EP_ETCD_KINDS) {
        s_fail (&ctx, "unknown response kind %d", (int) kind);
        return NULL;
    }
    if (size > EP_ETCD_MAX_BODY) {
        s_fail (&ctx, "%s: response of %zu bytes is over the %u limit", s_paths [kind],
                size, EP_ETCD_MAX_BODY);
        return NULL;
    }
    json_error_t jerr;
    json_t *root = json_loadb (body, size, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object (root)) {
        s_fail (&ctx, "%s: not a JSON object (%s)", s_paths [kind],
                root? "another JSON value": jerr.text);
        json_decref (root);
        return NULL;
    }
    ep_etcd_reply_t *reply = calloc (1, sizeof *reply);
    assert (reply);
    reply->kind = kind;
    int rc = s_error (&ctx, root, reply);
    if (rc == 0) {
        //  Streams wrap each message in "result"; unary calls do not.
        json_t *obj = root;
        json_t *result = json_object_get (root, "result");
        if (result) {
            if (!json_is_object (result))
                rc = s_fail (&ctx, "result: not an object");
            obj = result;
        }
        if (rc == 0)
            rc = s_body (&ctx, kind, obj, reply, 0);
    }
    json_decref (root);
    if (rc < 0) {
        ep_etcd_reply_destroy (&reply);
        return NULL;
    }
    return reply;
}

static void
s_reply_free (ep_etcd_reply_t *self)
{
    for (size_t i = 0; i < self->nkvs; i++)
        s_kv_free (&self->kvs [i]);
    free (self->kvs);
    for (size_t i = 0; i < self->nresponses; i++)
        s_reply_free (&self->responses [i]);
    free (self->responses);
    for (size_t i = 0; i < self->nevents; i++) {
        s_kv_free (&self->events [i].kv);
        s_kv_free (&self->events [i].prev_kv);
    }
    free (self->events);
    for (size_t i = 0; i < self->nalarms; i++)
        free (self->alarms [i]);
    free (self->alarms);
    free (self->error);
    free (self->cancel_reason);
    free (self->version);
    free (self->blob);
}

void
ep_etcd_reply_destroy (ep_etcd_reply_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        s_reply_free (*self_p);
        free (*self_p);
        *self_p = NULL;
    }
}
