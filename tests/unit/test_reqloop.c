/*  test_reqloop.c: the request loop without a service. A fake store
    counts writes: each write stages the next value, a commit makes the
    staged value durable (now, later, or never), a read answers the
    durable value. Checked: batches and their limits, replies only after
    the commit that makes them true, a failed commit under each policy, a
    commit and a read that complete later, roles refused, held writes. */
#include <criterion/criterion.h>
#include "ep_test.h"
#include "ep_auth.h"
#include "ep_codec.h"
#include "ep_keys.h"
#include "ep_reqloop.h"
#include "model.pb-c.h"

//  The fake service and its store.
typedef struct {
    uint64_t durable;           //  value committed
    uint64_t staged;            //  value of the open transaction
    bool open;                  //  a transaction is open
    int fail_begins;            //  begins that fail, from now
    int fail_commits;           //  commits that fail, from now
    int later_commits;          //  commits that complete later, from now
    bool later_reads;           //  reads complete later
    bool hold_writes;           //  admit holds writes
    bool work;                  //  internal work waits (has_work)
    bool not_ready;             //  the store catches up: no batch may begin
    ep_reqloop_policy_t policy; //  for a failed commit
    ep_req_t *held [8];         //  held writes, or later reads
    size_t n_held;
    char log [256];             //  B begin, W write, C commit, O output, R read, A answer
    size_t batches [16];        //  writes per commit
    size_t n_batches;
    size_t in_batch;            //  writes of the open transaction
    size_t outputs;             //  output calls
} s_fake_t;

//  A request's result.
typedef struct {
    Ep__ModelReply reply;
    Ep__Status status;
    char message [128];
    uint64_t value;             //  the value the reply reports
} s_result_t;

static void
s_log (s_fake_t *self, char what)
{
    size_t length = strlen (self->log);
    if (length + 1 < sizeof self->log) {
        self->log [length] = what;
        self->log [length + 1] = 0;
    }
}

static const char *
s_op_name (const ProtobufCMessage *message)
{
    const Ep__ModelRequest *request = (const Ep__ModelRequest *) message;
    return request->op_case == EP__MODEL_REQUEST__OP_TXN? "txn": "get";
}

static const char *const *
s_roles (void *arg, const ProtobufCMessage *message)
{
    (void) arg;
    static const char *writers [] = { EP_ROLE_OPERATOR, NULL };
    static const char *readers [] = { EP_ROLE_OPERATOR, EP_ROLE_SUBSCRIBER, NULL };
    return ((const Ep__ModelRequest *) message)->op_case == EP__MODEL_REQUEST__OP_TXN? writers: readers;
}

static void
s_result_init (s_result_t *result, const char *request_id)
{
    memset (result, 0, sizeof *result);
    ep__model_reply__init (&result->reply);
    ep__status__init (&result->status);
    result->reply.request_id = (char *) request_id;
    result->reply.status = &result->status;
    result->status.has_code = true;
}

static ep_req_kind_t
s_admit (void *arg, ep_req_t *req)
{
    s_fake_t *self = (s_fake_t *) arg;
    s_result_t *result = (s_result_t *) zmalloc (sizeof (s_result_t));
    s_result_init (result, ep_req_request_id (req));
    ep_req_set_result (req, result, free);
    const Ep__ModelRequest *request = (const Ep__ModelRequest *) ep_req_message (req);
    if (request->op_case != EP__MODEL_REQUEST__OP_TXN)
        return EP_REQ_READ;
    if (self->hold_writes) {
        self->held [self->n_held++] = req;
        return EP_REQ_HELD;
    }
    return EP_REQ_WRITE;
}

static const ProtobufCMessage *
s_reply (void *arg, ep_req_t *req, Ep__Status__Code *code)
{
    s_fake_t *self = (s_fake_t *) arg;
    s_result_t *result = (s_result_t *) ep_req_result (req);
    //  The heart of it: nothing is answered before it is durable.
    if (result->status.code == EP__STATUS__CODE__OK)
        cr_assert_leq (result->value, self->durable, "a reply reports %llu before its commit (%llu durable)",
                       (unsigned long long) result->value, (unsigned long long) self->durable);
    cr_assert_not (self->open && strcmp (s_op_name (ep_req_message (req)), "get") == 0,
                   "a read is answered while a transaction is open");
    result->reply.has_revision = true;
    result->reply.revision = result->value;
    *code = result->status.code;
    s_log (self, 'A');
    return &result->reply.base;
}

static void
s_error (void *arg, ep_req_t *req, Ep__Status__Code code, const char *message)
{
    (void) arg;
    s_result_t *result = (s_result_t *) ep_req_result (req);
    s_result_init (result, ep_req_request_id (req));
    snprintf (result->message, sizeof result->message, "%s", message);
    result->status.code = code;
    result->status.has_code = true;
    result->status.message = result->message;
}

static bool
s_has_work (void *arg)
{
    return ((s_fake_t *) arg)->work;
}

static int
s_begin (void *arg)
{
    s_fake_t *self = (s_fake_t *) arg;
    s_log (self, 'B');
    if (self->fail_begins > 0) {
        self->fail_begins--;
        return -1;
    }
    cr_assert_not (self->open, "one transaction at a time");
    self->open = true;
    self->staged = self->durable;
    self->in_batch = 0;
    self->work = false;
    return 0;
}

static void
s_write (void *arg, ep_req_t *req)
{
    s_fake_t *self = (s_fake_t *) arg;
    cr_assert (self->open);
    s_log (self, 'W');
    ((s_result_t *) ep_req_result (req))->value = ++self->staged;
    self->in_batch++;
}

//  The store's side of a commit.
static int
s_store_commit (s_fake_t *self, bool ok)
{
    self->open = false;
    self->batches [self->n_batches++] = self->in_batch;
    if (!ok)
        return -1;
    self->durable = self->staged;
    return 0;
}

static int
s_commit (void *arg)
{
    s_fake_t *self = (s_fake_t *) arg;
    s_log (self, 'C');
    if (self->later_commits > 0) {
        self->later_commits--;
        return EP_REQLOOP_LATER;
    }
    bool ok = self->fail_commits == 0;
    if (!ok)
        self->fail_commits--;
    return s_store_commit (self, ok);
}

static int
s_read (void *arg, ep_req_t *req)
{
    s_fake_t *self = (s_fake_t *) arg;
    s_log (self, 'R');
    ((s_result_t *) ep_req_result (req))->value = self->durable;
    if (self->later_reads) {
        self->held [self->n_held++] = req;
        return EP_REQLOOP_LATER;
    }
    return 0;
}

static bool
s_ready (void *arg)
{
    return !((s_fake_t *) arg)->not_ready;
}

static ep_reqloop_policy_t
s_commit_failed (void *arg)
{
    return ((s_fake_t *) arg)->policy;
}

static void
s_output (void *arg)
{
    s_fake_t *self = (s_fake_t *) arg;
    s_log (self, 'O');
    self->outputs++;
}

static const ep_reqloop_class_t s_class = {
    .descriptor = &ep__model_request__descriptor,
    .smaller = "page_size",
    .op_name = s_op_name,
    .roles = NULL,
    .admit = s_admit,
    .reply = s_reply,
    .error = s_error,
    .has_work = s_has_work,
    .begin = s_begin,
    .write = s_write,
    .commit = s_commit,
    .read = s_read,
    .commit_failed = s_commit_failed,
    .output = s_output,
};

//  A loop over an inproc ROUTER (no CURVE: no roles) and its client.
typedef struct {
    s_fake_t fake;
    zsock_t *router;
    zsock_t *client;
    ep_rpc_server_t *rpc;
    ep_metrics_t *metrics;
    ep_reqloop_t *loop;
} s_rig_t;

static void
s_rig_new (s_rig_t *rig, const ep_reqloop_class_t *cls, const ep_reqloop_config_t *config)
{
    static int instance;
    memset (rig, 0, sizeof *rig);
    rig->router = zsock_new (ZMQ_ROUTER);
    cr_assert_eq (zsock_bind (rig->router, "inproc://reqloop-%d", ++instance), 0);
    rig->client = zsock_new (ZMQ_DEALER);
    cr_assert_eq (zsock_connect (rig->client, "inproc://reqloop-%d", instance), 0);
    rig->rpc = ep_rpc_server_new (rig->router, 65536, 100, 60000);
    rig->metrics = ep_metrics_new ("reqloop");
    rig->loop = ep_reqloop_new (cls, &rig->fake, rig->rpc, rig->router, rig->metrics, config);
    rig->fake.policy = EP_REQLOOP_CARRY_ON;
}

static void
s_rig_destroy (s_rig_t *rig)
{
    ep_reqloop_destroy (&rig->loop);
    ep_metrics_destroy (&rig->metrics);
    ep_rpc_server_destroy (&rig->rpc);
    zsock_destroy (&rig->client);
    zsock_destroy (&rig->router);
}

//  Sends a write (txn) or a read (get) with request id id.
static void
s_send (zsock_t *client, const char *id, bool write)
{
    Ep__ModelTxn txn = EP__MODEL_TXN__INIT;
    Ep__ModelGet get = EP__MODEL_GET__INIT;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.request_id = (char *) id;
    if (write) {
        request.op_case = EP__MODEL_REQUEST__OP_TXN;
        request.txn = &txn;
    }
    else {
        request.op_case = EP__MODEL_REQUEST__OP_GET;
        request.get = &get;
    }
    char err [256];
    zframe_t *frame = ep_codec_pack (&request.base, 65536, err, sizeof err);
    cr_assert_not_null (frame, "%s", err);
    cr_assert_eq (zframe_send (&frame, client, 0), 0);
}

//  The next reply, or NULL if none is waiting (inproc: sent means queued).
static Ep__ModelReply *
s_next_reply (zsock_t *client)
{
    if (!(zsock_events (client) & ZMQ_POLLIN))
        return NULL;
    zframe_t *frame = zframe_recv (client);
    Ep__ModelReply *reply = ep__model_reply__unpack (NULL, zframe_size (frame), zframe_data (frame));
    zframe_destroy (&frame);
    cr_assert_not_null (reply);
    return reply;
}

static void
s_expect_reply (zsock_t *client, const char *id, Ep__Status__Code code, uint64_t revision)
{
    Ep__ModelReply *reply = s_next_reply (client);
    cr_assert_not_null (reply, "no reply to %s", id);
    cr_assert_str_eq (reply->request_id, id);
    cr_assert_eq (reply->status->code, code, "%s: code %d, expected %d (%s)", id,
                  reply->status->code, code, reply->status->message);
    if (code == EP__STATUS__CODE__OK)
        cr_assert_eq (reply->revision, revision, "%s: revision %llu, expected %llu", id,
                      (unsigned long long) reply->revision, (unsigned long long) revision);
    ep__model_reply__free_unpacked (reply, NULL);
}

static void
s_expect_silence (zsock_t *client)
{
    Ep__ModelReply *reply = s_next_reply (client);
    cr_assert_null (reply, "unexpected reply to %s", reply? reply->request_id: "");
}

Test (reqloop, writes_are_batched_and_answered_after_their_commit_reads_after)
{
    s_rig_t rig;
    ep_reqloop_config_t config = { .max_batch = 2, .max_rounds = 8 };
    s_rig_new (&rig, &s_class, &config);
    s_send (rig.client, "w1", true);
    s_send (rig.client, "r1", false);
    s_send (rig.client, "w2", true);
    s_send (rig.client, "w3", true);
    s_send (rig.client, "w4", true);
    s_send (rig.client, "w5", true);
    cr_assert_eq (ep_reqloop_serve (rig.loop), 0);
    cr_assert_eq (rig.fake.n_batches, 3);
    cr_assert_eq (rig.fake.batches [0], 2);
    cr_assert_eq (rig.fake.batches [1], 2);
    cr_assert_eq (rig.fake.batches [2], 1);
    cr_assert_str_eq (rig.fake.log, "BWWCAAOBWWCAAOBWCAORA",
                      "each batch: begin, writes, commit, answers, output; then reads");
    s_expect_reply (rig.client, "w1", EP__STATUS__CODE__OK, 1);
    s_expect_reply (rig.client, "w2", EP__STATUS__CODE__OK, 2);
    s_expect_reply (rig.client, "w3", EP__STATUS__CODE__OK, 3);
    s_expect_reply (rig.client, "w4", EP__STATUS__CODE__OK, 4);
    s_expect_reply (rig.client, "w5", EP__STATUS__CODE__OK, 5);
    s_expect_reply (rig.client, "r1", EP__STATUS__CODE__OK, 5);
    s_expect_silence (rig.client);
    cr_assert_eq (ep_reqloop_next_due (rig.loop), INT64_MAX);
    //  Each request counts once, by op and code.
    char *text = ep_metrics_render (rig.metrics);
    cr_assert (strstr (text, "edgeplane_requests_total{op=\"txn\",code=\"OK\"} 5"), "%s", text);
    cr_assert (strstr (text, "edgeplane_requests_total{op=\"get\",code=\"OK\"} 1"), "%s", text);
    free (text);
    s_rig_destroy (&rig);
}

Test (reqloop, rounds_bound_the_batches_of_one_serve_and_internal_work_makes_a_batch)
{
    s_rig_t rig;
    ep_reqloop_config_t config = { .max_batch = 1, .max_rounds = 1 };
    s_rig_new (&rig, &s_class, &config);
    s_send (rig.client, "w1", true);
    s_send (rig.client, "w2", true);
    ep_reqloop_serve (rig.loop);
    s_expect_reply (rig.client, "w1", EP__STATUS__CODE__OK, 1);
    s_expect_silence (rig.client);
    cr_assert_eq (ep_reqloop_waiting (rig.loop), 1);
    cr_assert_eq (ep_reqloop_next_due (rig.loop), 0, "a write waits: serve again at once");
    ep_reqloop_serve (rig.loop);
    s_expect_reply (rig.client, "w2", EP__STATUS__CODE__OK, 2);
    //  No request, but internal work: a batch of none.
    ep_reqloop_serve (rig.loop);
    cr_assert_eq (rig.fake.n_batches, 2);
    rig.fake.work = true;
    ep_reqloop_serve (rig.loop);
    cr_assert_eq (rig.fake.n_batches, 3);
    cr_assert_eq (rig.fake.batches [2], 0);
    s_rig_destroy (&rig);
}

Test (reqloop, a_commit_delay_lets_a_batch_wait_for_more_writes)
{
    s_rig_t rig;
    ep_reqloop_config_t config = { .max_batch = 10, .commit_delay_ms = 50 };
    s_rig_new (&rig, &s_class, &config);
    s_send (rig.client, "w1", true);
    s_send (rig.client, "w2", true);
    int64_t started = ep_mono_ms ();
    ep_reqloop_serve (rig.loop);
    cr_assert_geq (ep_mono_ms () - started, 50, "the batch waited for more writes");
    cr_assert_eq (rig.fake.n_batches, 1);
    cr_assert_eq (rig.fake.batches [0], 2, "both writes share one commit");
    s_expect_reply (rig.client, "w1", EP__STATUS__CODE__OK, 1);
    s_expect_reply (rig.client, "w2", EP__STATUS__CODE__OK, 2);
    //  Only reads: no batch to wait for.
    s_send (rig.client, "r1", false);
    ep_reqloop_serve (rig.loop);
    cr_assert_eq (rig.fake.n_batches, 1);
    s_expect_reply (rig.client, "r1", EP__STATUS__CODE__OK, 2);
    s_rig_destroy (&rig);
}

Test (reqloop, a_failed_commit_answers_unavailable_and_carries_on)
{
    s_rig_t rig;
    s_rig_new (&rig, &s_class, NULL);
    rig.fake.fail_commits = 1;
    s_send (rig.client, "w1", true);
    s_send (rig.client, "w2", true);
    s_send (rig.client, "r1", false);
    cr_assert_eq (ep_reqloop_serve (rig.loop), 0);
    s_expect_reply (rig.client, "w1", EP__STATUS__CODE__UNAVAILABLE, 0);
    s_expect_reply (rig.client, "w2", EP__STATUS__CODE__UNAVAILABLE, 0);
    s_expect_reply (rig.client, "r1", EP__STATUS__CODE__OK, 0);
    cr_assert_eq (rig.fake.outputs, 0, "nothing is handed out for a failed commit");
    //  A failed begin: the same answer, nothing staged.
    rig.fake.fail_begins = 1;
    s_send (rig.client, "w3", true);
    cr_assert_eq (ep_reqloop_serve (rig.loop), 0);
    s_expect_reply (rig.client, "w3", EP__STATUS__CODE__UNAVAILABLE, 0);
    //  And the next batch commits.
    s_send (rig.client, "w4", true);
    cr_assert_eq (ep_reqloop_serve (rig.loop), 0);
    s_expect_reply (rig.client, "w4", EP__STATUS__CODE__OK, 1);
    cr_assert_eq (rig.fake.outputs, 1);
    cr_assert_not (ep_reqloop_stopped (rig.loop));
    char *text = ep_metrics_render (rig.metrics);
    cr_assert (strstr (text, "edgeplane_requests_total{op=\"txn\",code=\"UNAVAILABLE\"} 3"), "%s", text);
    free (text);
    s_rig_destroy (&rig);
}

Test (reqloop, a_batch_that_lost_a_race_runs_once_more_when_the_store_is_ready)
{
    s_rig_t rig;
    ep_reqloop_class_t cls = s_class;
    cls.ready = s_ready;
    s_rig_new (&rig, &cls, NULL);
    rig.fake.policy = EP_REQLOOP_RETRY;
    rig.fake.fail_commits = 1;
    s_send (rig.client, "w1", true);
    s_send (rig.client, "w2", true);
    cr_assert_eq (ep_reqloop_serve (rig.loop), 0);
    s_expect_silence (rig.client);
    cr_assert_eq (ep_reqloop_waiting (rig.loop), 2, "both wait to run again");
    //  Not before the store is ready: no begin, and nothing due.
    rig.fake.not_ready = true;
    rig.fake.log [0] = 0;
    cr_assert_eq (ep_reqloop_serve (rig.loop), 0);
    cr_assert_str_eq (rig.fake.log, "");
    cr_assert_eq (ep_reqloop_next_due (rig.loop), INT64_MAX);
    rig.fake.not_ready = false;
    cr_assert_eq (ep_reqloop_next_due (rig.loop), 0);
    cr_assert_eq (ep_reqloop_serve (rig.loop), 0);
    s_expect_reply (rig.client, "w1", EP__STATUS__CODE__OK, 1);
    s_expect_reply (rig.client, "w2", EP__STATUS__CODE__OK, 2);
    //  Once more only: a second loss is answered UNAVAILABLE.
    rig.fake.fail_commits = 2;
    s_send (rig.client, "w3", true);
    cr_assert_eq (ep_reqloop_serve (rig.loop), 0);
    s_expect_silence (rig.client);
    cr_assert_eq (ep_reqloop_serve (rig.loop), 0);
    s_expect_reply (rig.client, "w3", EP__STATUS__CODE__UNAVAILABLE, 0);
    s_rig_destroy (&rig);
}

Test (reqloop, a_batch_too_large_runs_its_writes_again_each_in_a_batch_of_its_own)
{
    s_rig_t rig;
    s_rig_new (&rig, &s_class, NULL);
    rig.fake.policy = EP_REQLOOP_SPLIT;
    rig.fake.fail_commits = 1;
    s_send (rig.client, "w1", true);
    s_send (rig.client, "w2", true);
    s_send (rig.client, "w3", true);
    cr_assert_eq (ep_reqloop_serve (rig.loop), 0);
    s_expect_silence (rig.client);
    cr_assert_eq (ep_reqloop_waiting (rig.loop), 3, "all wait to run again");
    while (ep_reqloop_waiting (rig.loop) && ep_reqloop_serve (rig.loop) == 0)
        ;
    s_expect_reply (rig.client, "w1", EP__STATUS__CODE__OK, 1);
    s_expect_reply (rig.client, "w2", EP__STATUS__CODE__OK, 2);
    s_expect_reply (rig.client, "w3", EP__STATUS__CODE__OK, 3);
    cr_assert_eq (rig.fake.n_batches, 4, "the failed one, then one a write");
    cr_assert_eq (rig.fake.batches [0], 3);
    for (size_t i = 1; i < 4; i++)
        cr_assert_eq (rig.fake.batches [i], 1, "batch %zu", i);
    //  Then batches are whole again.
    s_send (rig.client, "w4", true);
    s_send (rig.client, "w5", true);
    cr_assert_eq (ep_reqloop_serve (rig.loop), 0);
    s_expect_reply (rig.client, "w4", EP__STATUS__CODE__OK, 4);
    s_expect_reply (rig.client, "w5", EP__STATUS__CODE__OK, 5);
    cr_assert_eq (rig.fake.batches [4], 2);
    s_rig_destroy (&rig);
}

Test (reqloop, a_failed_commit_under_crash_only_stops_unanswered)
{
    s_rig_t rig;
    s_rig_new (&rig, &s_class, NULL);
    rig.fake.policy = EP_REQLOOP_STOP;
    rig.fake.fail_commits = 1;
    s_send (rig.client, "w1", true);
    s_send (rig.client, "r1", false);
    cr_assert_eq (ep_reqloop_serve (rig.loop), -1);
    cr_assert (ep_reqloop_stopped (rig.loop));
    s_expect_silence (rig.client);
    cr_assert_eq (rig.fake.outputs, 0);
    //  Stopped stays stopped: nothing more is read or answered.
    s_send (rig.client, "w2", true);
    cr_assert_eq (ep_reqloop_serve (rig.loop), -1);
    s_expect_silence (rig.client);
    cr_assert_eq (rig.fake.n_batches, 1);
    s_rig_destroy (&rig);
}

Test (reqloop, a_commit_that_completes_later_holds_replies_and_reads_until_then)
{
    s_rig_t rig;
    s_rig_new (&rig, &s_class, NULL);
    rig.fake.later_commits = 1;
    s_send (rig.client, "w1", true);
    s_send (rig.client, "r1", false);
    cr_assert_eq (ep_reqloop_serve (rig.loop), 0);
    cr_assert (ep_reqloop_committing (rig.loop));
    s_expect_silence (rig.client);
    //  More arrives while the commit is in flight: queued, no new batch.
    s_send (rig.client, "w2", true);
    s_send (rig.client, "r2", false);
    cr_assert_eq (ep_reqloop_serve (rig.loop), 0);
    s_expect_silence (rig.client);
    cr_assert_eq (ep_reqloop_next_due (rig.loop), INT64_MAX, "nothing to do until the commit completes");
    cr_assert_str_eq (rig.fake.log, "BWC");
    //  The store completes: the batch is answered, then the reads that
    //  waited for it (from the state it made durable), and only then the
    //  next batch (inline this time): with writes always waiting, reads
    //  served after the next batch would wait for ever on a store that
    //  commits later.
    ep_reqloop_committed (rig.loop, s_store_commit (&rig.fake, true));
    cr_assert_not (ep_reqloop_committing (rig.loop));
    cr_assert_str_eq (rig.fake.log, "BWCAORARABWCAO");
    s_expect_reply (rig.client, "w1", EP__STATUS__CODE__OK, 1);
    s_expect_reply (rig.client, "r1", EP__STATUS__CODE__OK, 1);
    s_expect_reply (rig.client, "r2", EP__STATUS__CODE__OK, 1);
    s_expect_reply (rig.client, "w2", EP__STATUS__CODE__OK, 2);
    //  A later commit that fails: answered UNAVAILABLE when it completes.
    rig.fake.later_commits = 1;
    s_send (rig.client, "w3", true);
    ep_reqloop_serve (rig.loop);
    s_expect_silence (rig.client);
    ep_reqloop_committed (rig.loop, s_store_commit (&rig.fake, false));
    s_expect_reply (rig.client, "w3", EP__STATUS__CODE__UNAVAILABLE, 0);
    s_rig_destroy (&rig);
}

Test (reqloop, a_read_that_completes_later_is_answered_then)
{
    s_rig_t rig;
    s_rig_new (&rig, &s_class, NULL);
    rig.fake.later_reads = true;
    s_send (rig.client, "r1", false);
    ep_reqloop_serve (rig.loop);
    s_expect_silence (rig.client);
    cr_assert_eq (rig.fake.n_held, 1);
    ep_reqloop_read_done (rig.loop, rig.fake.held [0]);
    s_expect_reply (rig.client, "r1", EP__STATUS__CODE__OK, 0);
    s_rig_destroy (&rig);
}

Test (reqloop, held_writes_join_a_batch_when_released_or_are_failed)
{
    s_rig_t rig;
    s_rig_new (&rig, &s_class, NULL);
    rig.fake.hold_writes = true;
    s_send (rig.client, "w1", true);
    s_send (rig.client, "w2", true);
    ep_reqloop_serve (rig.loop);
    s_expect_silence (rig.client);
    cr_assert_eq (rig.fake.n_batches, 0);
    ep_reqloop_release (rig.loop, rig.fake.held [0]);
    ep_reqloop_fail (rig.loop, rig.fake.held [1], EP__STATUS__CODE__UNAVAILABLE, "waited too long");
    s_expect_reply (rig.client, "w2", EP__STATUS__CODE__UNAVAILABLE, 0);
    cr_assert_eq (ep_reqloop_next_due (rig.loop), 0);
    ep_reqloop_serve (rig.loop);
    s_expect_reply (rig.client, "w1", EP__STATUS__CODE__OK, 1);
    s_rig_destroy (&rig);
}

Test (reqloop, shutdown_answers_what_waits)
{
    s_rig_t rig;
    ep_reqloop_config_t config = { .max_batch = 1 };
    s_rig_new (&rig, &s_class, &config);
    s_send (rig.client, "w1", true);
    s_send (rig.client, "w2", true);
    ep_reqloop_serve (rig.loop);
    s_expect_reply (rig.client, "w1", EP__STATUS__CODE__OK, 1);
    ep_reqloop_shutdown (rig.loop, "shutting down; retry");
    s_expect_reply (rig.client, "w2", EP__STATUS__CODE__UNAVAILABLE, 0);
    s_rig_destroy (&rig);
}

//  Roles need CURVE: a real key directory and ZAP handler over tcp.
Test (reqloop, a_role_not_allowed_is_refused_before_the_service_sees_it)
{
    char *dir = ep_tmpdir_new ("reqloop");
    char *keys = zsys_sprintf ("%s/keys", dir);
    char err [256];
    cr_assert_eq (ep_keys_init (keys, false, err, sizeof err), 0, "%s", err);
    ep_auth_t *auth = ep_auth_new (keys);
    cr_assert_not_null (auth);
    ep_reqloop_class_t cls = s_class;
    cls.roles = s_roles;
    s_rig_t rig;
    memset (&rig, 0, sizeof rig);
    rig.router = zsock_new (ZMQ_ROUTER);
    zcert_t *server_cert = ep_keys_load (keys, "model");
    ep_curve_server (rig.router, server_cert);
    int port = zsock_bind (rig.router, "tcp://127.0.0.1:*");
    cr_assert_gt (port, 0);
    rig.rpc = ep_rpc_server_new (rig.router, 65536, 100, 60000);
    rig.metrics = ep_metrics_new ("reqloop");
    rig.loop = ep_reqloop_new (&cls, &rig.fake, rig.rpc, rig.router, rig.metrics, NULL);
    rig.client = zsock_new (ZMQ_DEALER);
    zcert_t *client_cert = ep_keys_load (keys, "subscriber");
    char *server_key = ep_keys_public_txt (keys, "model");
    ep_curve_client (rig.client, client_cert, server_key);
    cr_assert_eq (zsock_connect (rig.client, "tcp://127.0.0.1:%d", port), 0);
    s_send (rig.client, "w1", true);
    s_send (rig.client, "r1", false);
    //  Serve until both are answered (tcp: arrival takes its time).
    zpoller_t *poller = zpoller_new (rig.router, rig.client, NULL);
    Ep__ModelReply *replies [2] = { NULL, NULL };
    int64_t deadline = ep_mono_ms () + 5000 * EP_TEST_SLOWDOWN;
    size_t got = 0;
    while (got < 2 && ep_mono_ms () < deadline) {
        void *which = zpoller_wait (poller, 100);
        if (which == rig.router)
            ep_reqloop_serve (rig.loop);
        else
        if (which == rig.client) {
            zframe_t *frame = zframe_recv (rig.client);
            replies [got++] = ep__model_reply__unpack (NULL, zframe_size (frame), zframe_data (frame));
            zframe_destroy (&frame);
        }
    }
    cr_assert_eq (got, 2);
    cr_assert_str_eq (replies [0]->request_id, "w1");
    cr_assert_eq (replies [0]->status->code, EP__STATUS__CODE__PERMISSION_DENIED);
    cr_assert_str_eq (replies [1]->request_id, "r1");
    cr_assert_eq (replies [1]->status->code, EP__STATUS__CODE__OK);
    cr_assert_str_eq (rig.fake.log, "RA", "the refused write never reached the service");
    for (size_t i = 0; i < 2; i++)
        ep__model_reply__free_unpacked (replies [i], NULL);
    zpoller_destroy (&poller);
    free (server_key);
    zcert_destroy (&client_cert);
    zcert_destroy (&server_cert);
    s_rig_destroy (&rig);
    ep_auth_destroy (&auth);
    free (keys);
    ep_tmpdir_remove (&dir);
}
