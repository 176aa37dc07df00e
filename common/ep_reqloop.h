/*  ep_reqloop.h: the request loop of a stateful service.

    The model, the terminators and the reaper serve requests the same way:
    read a batch of requests, check the caller's role, split reads from
    writes, open one transaction, stage each write in its own savepoint,
    commit once (one fsync for the batch), answer the writes, hand out
    what the commit produced (publish), and answer the reads from
    committed state. This module is that loop, written once. A reply to a
    write is never sent before its write is durable, and a read is served
    only while no transaction is open, so it sees committed state.

    The service supplies what differs as an ep_reqloop_class_t: its
    Request message, the roles for each request, its read, write, commit
    and output callbacks, and its policy for a failed commit (the model,
    the terminators and the reaper answer UNAVAILABLE and carry on;
    ep_reqloop_crash_only, for a core that cannot undo a batch, stops
    unanswered). The store may complete later: a commit (or a
    read) that returns EP_REQLOOP_LATER completes when the service calls
    ep_reqloop_committed (or ep_reqloop_read_done), say from a networked
    store's completion callback; SQLite completes inline. While a commit is
    in flight no other batch starts and reads wait; requests keep arriving
    and queue. When it completes, the reads that waited are served before
    the next batch opens, so a steady flow of writes cannot starve them.

    How a service uses it:

        static const ep_reqloop_class_t s_class = {
            .descriptor = &ep__terminator_request__descriptor,
            .smaller = "page_size",
            .op_name = s_op_name,           //  metric label
            .roles = s_roles,               //  who may send it
            .admit = s_admit,               //  result, read/write/held
            .reply = s_reply,               //  the result as a Reply
            .error = s_error,               //  the result as an error Reply
            .has_work = s_has_work,         //  a batch without writes?
            .begin = s_begin,               //  transaction + internal work
            .write = s_write,               //  one write, in a savepoint
            .commit = s_commit,             //  0, -1, or EP_REQLOOP_LATER
            .read = s_read,                 //  0, or EP_REQLOOP_LATER
            .commit_failed = ep_reqloop_carry_on,   //  or ep_reqloop_crash_only
            .output = s_publish,            //  drain <core>_next_output
        };
        ep_reqloop_config_t config = { .max_batch = 1000 };
        loop = ep_reqloop_new (&s_class, self, rpc, router, metrics, &config);
        ...
        //  each turn of the service's own poll loop, when router is readable
        //  or ep_reqloop_next_due says so:
        if (ep_reqloop_serve (loop) != 0)
            break;                          //  the policy said stop
        ...
        ep_reqloop_shutdown (loop, "the service is shutting down; retry");
        ep_reqloop_destroy (&loop);

    Metrics: each answered request counts in edgeplane_requests_total{op,
    code} and edgeplane_request_duration_seconds{op} (from its arrival to
    its reply); refusals by role are not counted (ep_rpc_server answers
    them), as before. The service's commit-latency and writes-per-commit
    histograms, when given in the config, are observed per batch.
*/
#ifndef EP_REQLOOP_H_INCLUDED
#define EP_REQLOOP_H_INCLUDED

#include "ep_prelude.h"
#include "ep_metrics.h"
#include "ep_rpc_server.h"

typedef struct _ep_reqloop_t ep_reqloop_t;
typedef struct _ep_req_t ep_req_t;      //  one request being served

//  What a request is, as the service's admit callback decides.
typedef enum {
    EP_REQ_READ,                //  served from committed state, between batches
    EP_REQ_WRITE,               //  staged in the next batch, answered after its commit
    EP_REQ_HELD,                //  the service keeps it; later ep_reqloop_release or _fail
    EP_REQ_REFUSED              //  admit answered it (ep_reqloop_refuse or ep_reqloop_fail)
} ep_req_kind_t;

//  What a failed transaction (begin or commit) does, from the service's
//  commit_failed policy.
typedef enum {
    EP_REQLOOP_CARRY_ON,        //  the batch's writes are answered UNAVAILABLE; serving goes on
    EP_REQLOOP_STOP,            //  nothing is answered; ep_reqloop_serve returns -1 from now on
    EP_REQLOOP_RETRY,           //  the batch's writes run once more in the next batch (a write
                                //  that ran twice already is answered UNAVAILABLE)
    EP_REQLOOP_SPLIT            //  as RETRY, but each in a batch of its own: the batch was too
                                //  large for one transaction, though each write may fit
} ep_reqloop_policy_t;

//  A commit or read callback's answer: the outcome comes later.
#define EP_REQLOOP_LATER 1

typedef struct {
    const ProtobufCMessageDescriptor *descriptor;   //  the service's Request message
    const char *smaller;        //  what an oversized reply asks less of ("page_size")
    bool remember_writes;       //  writes' replies stay in the reply cache for retries

    //  The metric label for request (a static string), or NULL for
    //  "unknown"; a callback may change it with ep_req_set_op.
    const char *(*op_name) (const ProtobufCMessage *request);
    //  The roles allowed to send request (NULL-terminated), or NULL for
    //  anyone authenticated. The callback itself may be NULL (no check).
    const char *const *(*roles) (void *arg, const ProtobufCMessage *request);
    //  Gives req its result (ep_req_set_result) and says what it is.
    //  Called once the role passed. May answer it with ep_reqloop_refuse
    //  or ep_reqloop_fail and return EP_REQ_REFUSED.
    ep_req_kind_t (*admit) (void *arg, ep_req_t *req);
    //  The reply to send for req's result, and its status code.
    const ProtobufCMessage *(*reply) (void *arg, ep_req_t *req, Ep__Status__Code *code);
    //  Turns req's result into an error reply (a failed commit, a refusal).
    void (*error) (void *arg, ep_req_t *req, Ep__Status__Code code, const char *message);

    //  True if a batch should run without writes (internal work due).
    //  NULL: only writes make a batch.
    bool (*has_work) (void *arg);
    //  False while the store cannot open a batch yet but will by itself
    //  (it catches up with another writer): writes wait, reads are
    //  served. NULL: always ready.
    bool (*ready) (void *arg);
    //  Opens the batch's transaction and stages internal work. 0 or -1.
    //  NULL: nothing to open.
    int (*begin) (void *arg);
    //  Stages one write in its own savepoint, filling its result (and, if
    //  the service saves replies, ep_req_set_packed).
    void (*write) (void *arg, ep_req_t *req);
    //  Commits the batch: 0 (durable), -1 (undone), or EP_REQLOOP_LATER
    //  (the service calls ep_reqloop_committed with the outcome).
    int (*commit) (void *arg);
    //  Serves a read from committed state: 0 (result filled), or
    //  EP_REQLOOP_LATER (the service calls ep_reqloop_read_done).
    int (*read) (void *arg, ep_req_t *req);
    //  What a failed begin or commit does (ep_reqloop_carry_on,
    //  ep_reqloop_crash_only, or the service's own). A write run again
    //  (EP_REQLOOP_RETRY) that was answered meanwhile (its reply in the
    //  reply cache, from another instance) gets that answer instead.
    ep_reqloop_policy_t (*commit_failed) (void *arg);
    //  Why the batch's transaction failed, for the UNAVAILABLE answers
    //  (the store's message: "the disk is full ...: free space in DIR").
    //  NULL, or NULL returned: a generic "storage error".
    const char *(*failure) (void *arg);
    //  The status of those answers when it is not UNAVAILABLE (a write
    //  the store refused for what it carries, which a retry cannot fix:
    //  the model's write under an ended lease is NOT_FOUND). NULL, or OK
    //  returned: UNAVAILABLE.
    Ep__Status__Code (*failure_code) (void *arg);
    //  A batch committed and its writes are answered: hand out what it
    //  produced (drain <core>_next_output and publish). May be NULL.
    void (*output) (void *arg);
} ep_reqloop_class_t;

typedef struct {
    size_t max_batch;           //  writes per transaction at most (default 1000)
    size_t max_receive;         //  requests read per serve at most (default 4 max_batch)
    int max_rounds;             //  batches per serve at most (default 1)
    int64_t commit_delay_ms;    //  a batch waits this long for more writes (default 0)
    //  "model": edgeplane_model_commit_seconds and _writes_per_commit
    //  observed per commit; NULL: none
    const char *histograms;
} ep_reqloop_config_t;

//  A loop reading requests through rpc from router (both borrowed),
//  counting in metrics (borrowed), calling cls with arg.
ep_reqloop_t *
    ep_reqloop_new (const ep_reqloop_class_t *cls, void *arg, ep_rpc_server_t *rpc,
                    zsock_t *router, ep_metrics_t *metrics, const ep_reqloop_config_t *config);

//  Destroys the loop; requests still queued are dropped unanswered (call
//  ep_reqloop_shutdown first to answer them).
void
    ep_reqloop_destroy (ep_reqloop_t **self_p);

//  Reads the requests waiting (up to max_receive), runs batches (up to
//  max_rounds) while writes or internal work wait, then serves the reads.
//  Returns 0, or -1 once a failed commit's policy said stop.
int
    ep_reqloop_serve (ep_reqloop_t *self);

//  The outcome of a commit that returned EP_REQLOOP_LATER: 0 durable, -1
//  undone. Answers the batch, and serves what waited for it. Call it from
//  the store's completion (on the loop's thread), never from inside the
//  commit callback (that returns 0 or -1 instead).
void
    ep_reqloop_committed (ep_reqloop_t *self, int rc);

//  A read that returned EP_REQLOOP_LATER has its result: answers it.
void
    ep_reqloop_read_done (ep_reqloop_t *self, ep_req_t *req);

//  A write the service held (EP_REQ_HELD) joins the next batch.
void
    ep_reqloop_release (ep_reqloop_t *self, ep_req_t *req);

//  Answers req (held, or in admit) with an error through the class's
//  error callback, counted in the metrics, and frees it.
void
    ep_reqloop_fail (ep_reqloop_t *self, ep_req_t *req, Ep__Status__Code code,
                     const char *message);

//  Answers req (in admit) with only a status, not counted (a refusal
//  before any work, as ep_rpc_server_require_role does), and frees it.
void
    ep_reqloop_refuse (ep_reqloop_t *self, ep_req_t *req, Ep__Status__Code code,
                       const char *message);

//  Answers every queued request (not those the service holds) with
//  UNAVAILABLE and message, for a clean stop.
void
    ep_reqloop_shutdown (ep_reqloop_t *self, const char *message);

//  Milliseconds until the loop has work without new input: 0 if writes
//  wait for a batch, none is in flight and the store is ready, else
//  INT64_MAX.
int64_t
    ep_reqloop_next_due (ep_reqloop_t *self);

//  Writes waiting for a batch; true while a commit is in flight; true
//  once the policy said stop.
size_t
    ep_reqloop_waiting (ep_reqloop_t *self);
bool
    ep_reqloop_committing (ep_reqloop_t *self);
bool
    ep_reqloop_stopped (ep_reqloop_t *self);

//  Stock policies for a failed commit.
ep_reqloop_policy_t
    ep_reqloop_carry_on (void *arg);
ep_reqloop_policy_t
    ep_reqloop_crash_only (void *arg);

//  A request: its decoded message, call, caller and request id.
const ProtobufCMessage *
    ep_req_message (ep_req_t *req);
ep_rpc_call_t *
    ep_req_call (ep_req_t *req);
const ep_caller_t *
    ep_req_caller (ep_req_t *req);
const char *
    ep_req_request_id (ep_req_t *req);

//  The service's result for req, freed with release when req is done.
void
    ep_req_set_result (ep_req_t *req, void *result, void (*release) (void *result));
void *
    ep_req_result (ep_req_t *req);

//  The reply already packed (a service that saves replies in the
//  transaction sends the bytes it saved). Takes *packed_p. Dropped if the
//  commit fails.
void
    ep_req_set_packed (ep_req_t *req, zframe_t **packed_p);

//  The metric label.
void
    ep_req_set_op (ep_req_t *req, const char *op);
const char *
    ep_req_op (ep_req_t *req);

#endif
