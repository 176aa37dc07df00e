/*  ep_etcd_codec.h: etcd v3 JSON gateway requests and responses, no sockets.

    etcd 3.4's gateway (paths under /v3/) speaks the protobuf messages as
    JSON: keys and values in standard base64, 64-bit integers as strings,
    fields at their zero value omitted (`succeeded` is absent on a failed
    transaction, `kvs`, `count`, `more` when empty, an event's `type` when it
    is a PUT). Streamed calls (watch, lease keepalive) wrap each message in
    {"result": ...}; errors come as {"error": ..., "code": N} (unary) or
    {"error": {"grpc_code": N, "message": ...}} (streams).

    Responses are bytes from the network: ep_etcd_decode length-checks and
    validates every field it returns and reports the first bad one by name
    (with the key when a value does not decode), so a caller never sees a
    half-checked reply. The transport is ep_etcd; this module is what the
    unit tests and the fuzz target exercise.
*/
#ifndef EP_ETCD_CODEC_H_INCLUDED
#define EP_ETCD_CODEC_H_INCLUDED

#include "ep_prelude.h"

//  Largest response body or watch line ep_etcd_decode accepts.
#define EP_ETCD_MAX_BODY (64u * 1024 * 1024)

//  gRPC status codes etcd answers with (in reply->code).
#define EP_ETCD_INVALID_ARGUMENT 3
#define EP_ETCD_NOT_FOUND 5
#define EP_ETCD_FAILED_PRECONDITION 9
#define EP_ETCD_OUT_OF_RANGE 11         //  "required revision has been compacted"
#define EP_ETCD_RESOURCE_EXHAUSTED 8    //  NOSPACE, too many requests
#define EP_ETCD_UNAVAILABLE 14          //  no leader, leader changed, stopping

typedef enum {
    EP_ETCD_RANGE,                      //  /v3/kv/range
    EP_ETCD_PUT,                        //  /v3/kv/put
    EP_ETCD_DELETE,                     //  /v3/kv/deleterange
    EP_ETCD_TXN,                        //  /v3/kv/txn
    EP_ETCD_COMPACT,                    //  /v3/kv/compaction
    EP_ETCD_LEASE_GRANT,                //  /v3/lease/grant
    EP_ETCD_LEASE_KEEPALIVE,            //  /v3/lease/keepalive (one message)
    EP_ETCD_LEASE_REVOKE,               //  /v3/lease/revoke
    EP_ETCD_LEASE_TTL,                  //  /v3/lease/timetolive
    EP_ETCD_WATCH,                      //  /v3/watch (one line of the stream)
    EP_ETCD_STATUS,                     //  /v3/maintenance/status
    EP_ETCD_SNAPSHOT,                   //  /v3/maintenance/snapshot (one line of the stream)
    EP_ETCD_KINDS
} ep_etcd_kind_t;

//  The gateway path of a kind ("/v3/kv/range").
const char *
    ep_etcd_path (ep_etcd_kind_t kind);

//  ---------------------------------------------------------------------
//  Requests (the caller's memory; encoders copy)

typedef struct {
    const void *data;                   //  bytes, may hold NULs
    size_t size;                        //  0 with data NULL: absent
} ep_etcd_bytes_t;

//  A C string as bytes (NULL: absent).
ep_etcd_bytes_t
    ep_etcd_str (const char *string);

typedef struct {
    ep_etcd_bytes_t key;                //  first key
    ep_etcd_bytes_t range_end;          //  absent: key alone; see ep_etcd_prefix_end
    int64_t revision;                   //  0: the newest; else a pinned snapshot
    int64_t limit;                      //  0: no limit (then `more` tells)
    bool keys_only;                     //  no values
    bool count_only;                    //  only `count`
} ep_etcd_range_t;

typedef struct {
    ep_etcd_bytes_t key;
    ep_etcd_bytes_t value;
    int64_t lease;                      //  0: none
    bool prev_kv;                       //  return the previous value
} ep_etcd_put_t;

typedef struct {
    ep_etcd_bytes_t key;
    ep_etcd_bytes_t range_end;
    bool prev_kv;                       //  return the deleted values
} ep_etcd_delete_t;

typedef enum { EP_ETCD_VERSION, EP_ETCD_CREATE, EP_ETCD_MOD, EP_ETCD_VALUE,
               EP_ETCD_LEASE } ep_etcd_target_t;
typedef enum { EP_ETCD_EQUAL, EP_ETCD_GREATER, EP_ETCD_LESS,
               EP_ETCD_NOT_EQUAL } ep_etcd_result_t;

typedef struct {
    ep_etcd_bytes_t key;
    ep_etcd_bytes_t range_end;          //  a range compare: every key in it
    ep_etcd_target_t target;            //  what is compared
    ep_etcd_result_t result;            //  how
    int64_t number;                     //  version, revision or lease compared
    ep_etcd_bytes_t value;              //  for EP_ETCD_VALUE
} ep_etcd_compare_t;

typedef struct {
    ep_etcd_kind_t kind;                //  EP_ETCD_RANGE, _PUT, _DELETE or _TXN
    union {
        ep_etcd_range_t range;
        ep_etcd_put_t put;
        ep_etcd_delete_t del;
        const struct _ep_etcd_txn_t *txn;   //  nested (etcd 3.3+)
    } u;
} ep_etcd_op_t;

typedef struct _ep_etcd_txn_t {
    const ep_etcd_compare_t *compare;
    size_t ncompare;
    const ep_etcd_op_t *success;
    size_t nsuccess;
    const ep_etcd_op_t *failure;
    size_t nfailure;
} ep_etcd_txn_t;

typedef struct {
    ep_etcd_bytes_t key;
    ep_etcd_bytes_t range_end;
    int64_t start_revision;             //  0: from now
    bool progress_notify;               //  empty messages when idle
    bool prev_kv;                       //  deleted/overwritten values too
} ep_etcd_watch_req_t;

//  The range end covering every key that starts with prefix (prefix with
//  its last byte below 0xff incremented; "\0" when none is). Writes it into
//  buf of size bufsize (>= prefix size) and returns it as bytes.
ep_etcd_bytes_t
    ep_etcd_prefix_end (ep_etcd_bytes_t prefix, uint8_t *buf, size_t bufsize);

//  Request bodies (heap strings, caller frees), NULL on a bad request
//  (err says why: an op kind out of range, a nested txn too deep).
char *
    ep_etcd_encode_range (const ep_etcd_range_t *req);
char *
    ep_etcd_encode_put (const ep_etcd_put_t *req);
char *
    ep_etcd_encode_delete (const ep_etcd_delete_t *req);
char *
    ep_etcd_encode_txn (const ep_etcd_txn_t *req, char *err, size_t errlen);
char *
    ep_etcd_encode_watch (const ep_etcd_watch_req_t *req);
//  {"revision": rev} for compaction, {"TTL": ttl}, {"ID": id}, {"ID": id, "keys": false}.
char *
    ep_etcd_encode_compact (int64_t revision);
char *
    ep_etcd_encode_lease_grant (int64_t ttl_s);
char *
    ep_etcd_encode_lease_id (int64_t id);

//  ---------------------------------------------------------------------
//  Responses (owned by the reply; valid until ep_etcd_reply_destroy)

typedef struct {
    uint64_t cluster_id;
    uint64_t member_id;
    int64_t revision;                   //  the store's revision when served
    int64_t raft_term;
} ep_etcd_header_t;

typedef struct {
    uint8_t *key;                       //  NUL-terminated too (key [key_size] == 0)
    size_t key_size;
    uint8_t *value;                     //  NUL-terminated too
    size_t value_size;
    int64_t create_revision;            //  0 in a DELETE event's kv
    int64_t mod_revision;
    int64_t version;                    //  1 at creation, +1 per write
    int64_t lease;
} ep_etcd_kv_t;

typedef struct {
    bool is_delete;                     //  else a put
    ep_etcd_kv_t kv;
    bool has_prev;                      //  prev_kv present
    ep_etcd_kv_t prev_kv;
} ep_etcd_event_t;

typedef struct _ep_etcd_reply_t ep_etcd_reply_t;

struct _ep_etcd_reply_t {
    ep_etcd_kind_t kind;                //  what was decoded
    int code;                           //  0, or etcd's gRPC error code
    char *error;                        //  etcd's error message, NULL on success
    ep_etcd_header_t header;
    //  range, put (prev_kv), delete (prev_kvs)
    ep_etcd_kv_t *kvs;
    size_t nkvs;
    int64_t count;                      //  range: keys in the range (all pages)
    bool more;                          //  range: a limit cut it short
    int64_t deleted;                    //  delete: how many
    //  txn
    bool succeeded;                     //  the compares held
    ep_etcd_reply_t *responses;         //  one per op of the branch run
    size_t nresponses;
    //  lease
    int64_t lease_id;
    int64_t ttl;                        //  remaining (-1: no such lease)
    int64_t granted_ttl;
    //  watch
    int64_t watch_id;
    bool created;                       //  the watch was created
    bool canceled;                      //  the server ended it
    int64_t compact_revision;           //  why: start_revision was compacted
    char *cancel_reason;
    bool progress;                      //  no events, not created nor canceled
    ep_etcd_event_t *events;
    size_t nevents;
    //  status
    char *version;
    int64_t db_size;
    int64_t db_size_in_use;
    uint64_t leader;
    int64_t raft_index;
    char **alarms;                      //  "NOSPACE", "CORRUPT" (from status errors)
    size_t nalarms;
    //  snapshot: one chunk of the database file (the last one: its SHA-256)
    uint8_t *blob;
    size_t blob_size;
    uint64_t remaining_bytes;           //  of the database after this chunk
};

//  Decodes the body of a kind's response (one line for a watch). Returns
//  the reply, or NULL with err naming the field at fault (and the key, for
//  a value or key that does not decode). An etcd error is a reply with
//  code and error set, not NULL.
ep_etcd_reply_t *
    ep_etcd_decode (ep_etcd_kind_t kind, const char *body, size_t size,
                    char *err, size_t errlen);

void
    ep_etcd_reply_destroy (ep_etcd_reply_t **self_p);

#endif
