/*  ep_reqloop.c: the request loop of a stateful service (ep_reqloop.h). */
#include "ep_reqloop.h"
#include "ep_log.h"

struct _ep_req_t {
    ep_rpc_call_t *call;        //  the call (answered once)
    ProtobufCMessage *message;  //  decoded request
    const char *op;             //  metric label
    int64_t started_us;         //  arrival, for the duration metric
    void *result;               //  the service's result
    void (*release) (void *result);     //  frees result
    zframe_t *packed;           //  the reply packed by the service, or NULL
    int runs;                   //  batches it was staged in
};

struct _ep_reqloop_t {
    const ep_reqloop_class_t *cls;      //  the service's callbacks
    void *arg;                  //  for them
    ep_rpc_server_t *rpc;       //  request ids, reply cache, roles (borrowed)
    zsock_t *router;            //  the API socket (borrowed)
    ep_metrics_t *metrics;      //  request counters (borrowed, may be NULL)
    ep_reqloop_config_t config; //  limits
    ep_histogram_t *commit_seconds; //  observed per commit, or NULL
    ep_histogram_t *batch_writes;   //  writes per commit, or NULL
    zlistx_t *writes;           //  ep_req_t waiting for a batch, in arrival order
    zlistx_t *reads;            //  ep_req_t waiting for no transaction to be open
    zlistx_t *batch;            //  ep_req_t of the batch being staged or committed
    bool committing;            //  a commit is in flight (EP_REQLOOP_LATER)
    int64_t commit_started_us;  //  when it was asked for
    bool stopped;               //  a failed commit's policy said stop
    size_t singles;             //  batches of one write to run (EP_REQLOOP_SPLIT)
};

static void
s_req_destroy (ep_req_t **req_p)
{
    ep_req_t *req = *req_p;
    if (req) {
        if (req->release && req->result)
            req->release (req->result);
        if (req->message)
            protobuf_c_message_free_unpacked (req->message, NULL);
        zframe_destroy (&req->packed);
        //  Dropped unanswered (a stop): the caller retries elsewhere.
        ep_rpc_call_destroy (&req->call);
        free (req);
        *req_p = NULL;
    }
}

static void
s_req_free (void **item)
{
    s_req_destroy ((ep_req_t **) item);
}

//  The service's commit histograms: one transaction's time (its fsync
//  included) and how many writes shared it.
static void
s_histograms (ep_reqloop_t *self, ep_metrics_t *metrics, const char *service)
{
    static const double commit_bounds [] = { 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1 };
    static const double batch_bounds [] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 1024 };
    char name [96];
    snprintf (name, sizeof name, "edgeplane_%s_commit_seconds", service);
    self->commit_seconds = ep_metrics_histogram (metrics, name,
        "Time to commit one batch's transaction (its fsync included).", 0, NULL,
        EP_COUNT (commit_bounds), commit_bounds);
    snprintf (name, sizeof name, "edgeplane_%s_writes_per_commit", service);
    self->batch_writes = ep_metrics_histogram (metrics, name,
        "Write requests sharing one transaction and fsync.", 0, NULL,
        EP_COUNT (batch_bounds), batch_bounds);
}

ep_reqloop_t *
ep_reqloop_new (const ep_reqloop_class_t *cls, void *arg, ep_rpc_server_t *rpc,
                zsock_t *router, ep_metrics_t *metrics, const ep_reqloop_config_t *config)
{
    EP_ASSERT (cls && cls->descriptor && cls->admit && cls->reply && cls->error);
    EP_ASSERT (cls->write && cls->commit && cls->read && cls->commit_failed);
    EP_ASSERT (rpc && router);
    ep_reqloop_t *self = (ep_reqloop_t *) zmalloc (sizeof (ep_reqloop_t));
    self->cls = cls;
    self->arg = arg;
    self->rpc = rpc;
    self->router = router;
    self->metrics = metrics;
    if (metrics)
        ep_rpc_server_set_metrics (rpc, metrics);
    if (config)
        self->config = *config;
    if (!self->config.max_batch)
        self->config.max_batch = 1000;
    if (!self->config.max_receive)
        self->config.max_receive = 4 * self->config.max_batch;
    if (self->config.max_rounds < 1)
        self->config.max_rounds = 1;
    if (metrics && self->config.histograms)
        s_histograms (self, metrics, self->config.histograms);
    self->writes = zlistx_new ();
    self->reads = zlistx_new ();
    self->batch = zlistx_new ();
    zlistx_set_destructor (self->writes, s_req_free);
    zlistx_set_destructor (self->reads, s_req_free);
    zlistx_set_destructor (self->batch, s_req_free);
    return self;
}

void
ep_reqloop_destroy (ep_reqloop_t **self_p)
{
    ep_reqloop_t *self = *self_p;
    if (self) {
        zlistx_destroy (&self->writes);
        zlistx_destroy (&self->reads);
        zlistx_destroy (&self->batch);
        free (self);
        *self_p = NULL;
    }
}

//  Sends req's reply, counts it, and frees req.
static void
s_answer (ep_reqloop_t *self, ep_req_t *req, bool remember)
{
    Ep__Status__Code code = EP__STATUS__CODE__OK;
    const ProtobufCMessage *reply = self->cls->reply (self->arg, req, &code);
    if (req->packed)
        ep_rpc_server_reply (self->rpc, &req->call, &req->packed, remember);
    else
        ep_rpc_server_answer (self->rpc, &req->call, reply, remember,
                              self->cls->smaller? self->cls->smaller: "request");
    if (self->metrics)
        ep_metrics_request_done (self->metrics, req->op? req->op: "unknown",
                                 ep_status_code_name (code),
                                 (ep_mono_us () - req->started_us) / 1e6);
    s_req_destroy (&req);
}

void
ep_reqloop_fail (ep_reqloop_t *self, ep_req_t *req, Ep__Status__Code code, const char *message)
{
    //  A reply packed for a write that did not commit must not go out.
    zframe_destroy (&req->packed);
    self->cls->error (self->arg, req, code, message);
    s_answer (self, req, false);
}

void
ep_reqloop_refuse (ep_reqloop_t *self, ep_req_t *req, Ep__Status__Code code, const char *message)
{
    ep_rpc_server_fail (self->rpc, &req->call, code, "%s", message);
    s_req_destroy (&req);
}

//  Reads one request and sorts it: a read, a write, held, or answered.
static void
s_receive (ep_reqloop_t *self)
{
    ep_rpc_call_t *call;
    ProtobufCMessage *message = ep_rpc_server_recv_request (self->rpc, self->cls->descriptor, &call);
    if (!message)
        return;
    const char *const *allowed = self->cls->roles? self->cls->roles (self->arg, message): NULL;
    if (allowed && !ep_rpc_server_require_role (self->rpc, &call, allowed)) {
        protobuf_c_message_free_unpacked (message, NULL);
        return;
    }
    ep_req_t *req = (ep_req_t *) zmalloc (sizeof (ep_req_t));
    req->call = call;
    req->message = message;
    req->op = self->cls->op_name? self->cls->op_name (message): NULL;
    req->started_us = ep_mono_us ();
    switch (self->cls->admit (self->arg, req)) {
        case EP_REQ_READ:  zlistx_add_end (self->reads, req); break;
        case EP_REQ_WRITE: zlistx_add_end (self->writes, req); break;
        default:           break;   //  held by the service, or answered
    }
}

//  Reads what waits on the socket, up to max_receive requests.
static void
s_receive_waiting (ep_reqloop_t *self)
{
    for (size_t i = 0; i < self->config.max_receive && (zsock_events (self->router) & ZMQ_POLLIN); i++)
        s_receive (self);
}

//  With a commit delay, a batch that has writes waits up to the delay for
//  more writes to share its fsync.
static void
s_linger (ep_reqloop_t *self)
{
    if (self->config.commit_delay_ms <= 0 || zlistx_size (self->writes) == 0 || self->committing)
        return;
    int64_t deadline = ep_mono_ms () + self->config.commit_delay_ms;
    zpoller_t *poller = zpoller_new (self->router, NULL);
    while (zlistx_size (self->writes) < self->config.max_batch
       &&  zlistx_size (self->writes) + zlistx_size (self->reads) < self->config.max_receive) {
        int64_t left = deadline - ep_mono_ms ();
        if (!(zsock_events (self->router) & ZMQ_POLLIN)
        &&  (left <= 0 || !zpoller_wait (poller, (int) left)))
            break;
        s_receive (self);
    }
    zpoller_destroy (&poller);
}

//  Drops what waits unanswered (the policy said stop).
static void
s_drop_all (ep_reqloop_t *self)
{
    zlistx_purge (self->batch);
    zlistx_purge (self->writes);
    zlistx_purge (self->reads);
}

//  The batch's transaction failed (at begin or commit): the policy decides.
static void
s_batch_failed (ep_reqloop_t *self, const char *generic)
{
    ep_reqloop_policy_t policy = self->cls->commit_failed (self->arg);
    if (policy == EP_REQLOOP_STOP) {
        self->stopped = true;
        s_drop_all (self);
        return;
    }
    if (policy == EP_REQLOOP_RETRY || policy == EP_REQLOOP_SPLIT) {
        //  Back to the head of the queue, in their order; a write that ran
        //  twice already is answered below. Split: each runs alone, so a
        //  write too large to share a transaction fails only itself.
        ep_req_t *req = (ep_req_t *) zlistx_last (self->batch);
        while (req) {
            void *handle = zlistx_cursor (self->batch);
            ep_req_t *prev = (ep_req_t *) zlistx_prev (self->batch);
            if (req->runs < 2) {
                zlistx_detach (self->batch, handle);
                zframe_destroy (&req->packed);
                zlistx_add_start (self->writes, req);
                if (policy == EP_REQLOOP_SPLIT)
                    self->singles++;
            }
            req = prev;
        }
    }
    const char *why = self->cls->failure? self->cls->failure (self->arg): NULL;
    char message [1024];
    if (why && *why)
        snprintf (message, sizeof message, "the write was not committed: %s", why);
    else
        snprintf (message, sizeof message, "%s", generic);
    Ep__Status__Code code = self->cls->failure_code? self->cls->failure_code (self->arg):
                                                     EP__STATUS__CODE__OK;
    if (code == EP__STATUS__CODE__OK)
        code = EP__STATUS__CODE__UNAVAILABLE;
    ep_req_t *req;
    while ((req = (ep_req_t *) zlistx_detach (self->batch, NULL)))
        ep_reqloop_fail (self, req, code, message);
}

//  The batch's commit has its outcome: answers the writes, then hands out
//  what the commit produced.
static void
s_batch_done (ep_reqloop_t *self, int rc)
{
    self->committing = false;
    if (self->commit_seconds)
        ep_histogram_observe (self->commit_seconds, NULL,
                              (ep_mono_us () - self->commit_started_us) / 1e6);
    if (self->batch_writes)
        ep_histogram_observe (self->batch_writes, NULL, (double) zlistx_size (self->batch));
    if (rc != 0) {
        s_batch_failed (self, "the write was not committed (storage error); retry");
        return;
    }
    ep_req_t *req;
    while ((req = (ep_req_t *) zlistx_detach (self->batch, NULL)))
        s_answer (self, req, self->cls->remember_writes);
    if (self->cls->output)
        self->cls->output (self->arg);
}

//  One batch: begin, up to max_batch writes, commit. Returns 0 if it
//  ended (committed or failed), 1 if its commit completes later.
static int
s_batch (ep_reqloop_t *self)
{
    ep_req_t *req;
    size_t answered = 0;
    size_t max_batch = self->singles? 1: self->config.max_batch;
    if (self->singles)
        self->singles--;
    while (zlistx_size (self->batch) < max_batch
       &&  (req = (ep_req_t *) zlistx_detach (self->writes, NULL))) {
        zframe_t *cached = req->runs? ep_rpc_server_cached (self->rpc, req->call): NULL;
        if (cached) {
            //  Run again after a lost race: its first answer came meanwhile.
            zframe_t *reply = zframe_dup (cached);
            ep_req_set_packed (req, &reply);
            s_answer (self, req, false);
            answered++;
            continue;
        }
        req->runs++;
        zlistx_add_end (self->batch, req);
    }
    if (answered && zlistx_size (self->batch) == 0
    &&  !(self->cls->has_work && self->cls->has_work (self->arg)))
        return 0;
    if (self->cls->begin && self->cls->begin (self->arg) != 0) {
        s_batch_failed (self, "the store cannot take writes now; retry");
        return 0;
    }
    for (req = (ep_req_t *) zlistx_first (self->batch); req;
         req = (ep_req_t *) zlistx_next (self->batch))
        self->cls->write (self->arg, req);
    self->commit_started_us = ep_mono_us ();
    self->committing = true;
    int rc = self->cls->commit (self->arg);
    if (rc == EP_REQLOOP_LATER)
        return 1;
    s_batch_done (self, rc == 0? 0: -1);
    return 0;
}

//  Serves the reads that wait, from committed state.
static void
s_reads (ep_reqloop_t *self)
{
    ep_req_t *req;
    while (!self->committing && !self->stopped
       &&  (req = (ep_req_t *) zlistx_detach (self->reads, NULL)))
        if (self->cls->read (self->arg, req) != EP_REQLOOP_LATER)
            s_answer (self, req, false);
}

//  Batches while writes or internal work wait (up to max_rounds), then
//  the reads.
static void
s_run (ep_reqloop_t *self)
{
    for (int round = 0; round < self->config.max_rounds; round++) {
        if (self->committing || self->stopped)
            break;
        if (zlistx_size (self->writes) == 0
        &&  !(self->cls->has_work && self->cls->has_work (self->arg)))
            break;
        if (self->cls->ready && !self->cls->ready (self->arg))
            break;
        if (s_batch (self) != 0)
            break;
    }
    s_reads (self);
}

int
ep_reqloop_serve (ep_reqloop_t *self)
{
    if (!self->stopped) {
        s_receive_waiting (self);
        s_linger (self);
        s_run (self);
    }
    return self->stopped? -1: 0;
}

void
ep_reqloop_committed (ep_reqloop_t *self, int rc)
{
    EP_ASSERT (self->committing);
    s_batch_done (self, rc == 0? 0: -1);
    //  The reads that waited for this commit go first: with writes always
    //  waiting, the next batch would open at once and a store whose commits
    //  complete later (etcd) would starve them (a follower's catch-up went
    //  unanswered for seconds under load).
    s_reads (self);
    s_run (self);
}

void
ep_reqloop_read_done (ep_reqloop_t *self, ep_req_t *req)
{
    s_answer (self, req, false);
}

void
ep_reqloop_release (ep_reqloop_t *self, ep_req_t *req)
{
    zlistx_add_end (self->writes, req);
}

void
ep_reqloop_shutdown (ep_reqloop_t *self, const char *message)
{
    zlistx_t *waiting [] = { self->writes, self->reads };
    for (size_t i = 0; i < EP_COUNT (waiting); i++) {
        ep_req_t *req;
        while ((req = (ep_req_t *) zlistx_detach (waiting [i], NULL)))
            ep_reqloop_fail (self, req, EP__STATUS__CODE__UNAVAILABLE, message);
    }
}

int64_t
ep_reqloop_next_due (ep_reqloop_t *self)
{
    return zlistx_size (self->writes) && !self->committing && !self->stopped
        && !(self->cls->ready && !self->cls->ready (self->arg))? 0: INT64_MAX;
}

size_t
ep_reqloop_waiting (ep_reqloop_t *self)
{
    return zlistx_size (self->writes);
}

bool
ep_reqloop_committing (ep_reqloop_t *self)
{
    return self->committing;
}

bool
ep_reqloop_stopped (ep_reqloop_t *self)
{
    return self->stopped;
}

ep_reqloop_policy_t
ep_reqloop_carry_on (void *arg)
{
    (void) arg;
    return EP_REQLOOP_CARRY_ON;
}

ep_reqloop_policy_t
ep_reqloop_crash_only (void *arg)
{
    (void) arg;
    ep_log_error ("stopping unanswered: the store did not take a write (see above); "
                  "fix the disk and restart, state is reloaded from it");
    return EP_REQLOOP_STOP;
}

const ProtobufCMessage *
ep_req_message (ep_req_t *req)
{
    return req->message;
}

ep_rpc_call_t *
ep_req_call (ep_req_t *req)
{
    return req->call;
}

const ep_caller_t *
ep_req_caller (ep_req_t *req)
{
    return ep_rpc_call_caller (req->call);
}

const char *
ep_req_request_id (ep_req_t *req)
{
    return ep_rpc_call_request_id (req->call);
}

void
ep_req_set_result (ep_req_t *req, void *result, void (*release) (void *result))
{
    if (req->release && req->result && req->result != result)
        req->release (req->result);
    req->result = result;
    req->release = release;
}

void *
ep_req_result (ep_req_t *req)
{
    return req->result;
}

void
ep_req_set_packed (ep_req_t *req, zframe_t **packed_p)
{
    zframe_destroy (&req->packed);
    req->packed = *packed_p;
    *packed_p = NULL;
}

void
ep_req_set_op (ep_req_t *req, const char *op)
{
    req->op = op;
}

const char *
ep_req_op (ep_req_t *req)
{
    return req->op;
}
