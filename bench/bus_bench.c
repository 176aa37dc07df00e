/*  bus_bench.c: events/s through edgeplane-bus, against raw PUB/SUB.

    Four cases, all measured in the same run so the machine is the same:
    raw libzmq PUB -> SUB (one hop) and ep_publisher -> edgeplane-bus ->
    ep_subscriber (two hops, protobuf events, seq tracking), each in
    plaintext and with CURVE, with the same topic and body sizes. Sender and
    receiver are forked processes, so each has its own ZeroMQ context and
    I/O thread, as real services do; the bus is the real binary.

    Flow control: PUB drops at its high-water mark instead of blocking, so a
    sender that runs ahead measures drops, not throughput. The sender keeps
    at most --window messages (20000) ahead of the highest seq the receiver
    reported (a pipe, every ACK_EVERY messages). That is under half of every
    HWM on the path (100000), because a libzmq pipe's writer learns what
    was read only every HWM/2 messages; so nothing is dropped for lack of
    room and the rate measured at the receiver is the lossless rate. Losses
    are still counted from the seqs, never assumed away. Method and
    figures: bench/README.md.

    Prints one JSON object on stdout; progress goes to stderr.
*/
#include "ep_prelude.h"
#include "ep_config.h"
#include "ep_keys.h"
#include "ep_publisher.h"
#include "ep_subscriber.h"
#include "ep_test.h"
#include "bench_util.h"
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#define TOPIC       "bench.event"   //  topic of every timed message
#define STREAM      "bench"         //  its stream
#define HWM         100000          //  raw sockets' HWM, as ep_publisher/ep_subscriber set
#define ACK_EVERY   1024            //  receiver reports its seq this often
#define CAP         65536           //  codec cap on both ends

#define MAX_SUBS    8               //  most subscribers (--subscribers)

//  What travels on the ack pipe, receivers -> sender: one s_ack_t per write.
#define ACK_SEQ     0                   //  the highest seq this receiver has
#define ACK_READY   1                   //  warm-up seen: start the timed run
#define ACK_BOUND   2                   //  raw receiver bound; endpoint in shared
#define ACK_DONE    3                   //  receiver finished; results in shared

typedef struct {
    uint32_t receiver;          //  which receiver (0 .. subscribers - 1)
    uint32_t kind;              //  ACK_*
    uint64_t seq;               //  ACK_SEQ: its highest seq
} s_ack_t;

//  One case to run.
typedef struct {
    const char *name;           //  "raw_plain", "bus_curve", ...
    bool bus;                   //  through edgeplane-bus, else raw PUB/SUB
    bool curve;                 //  CURVE on every hop
    uint64_t n;                 //  timed messages
    const char *keys;           //  keys dir (bus cases)
    char pub_endpoint [256];    //  where the sender connects (bus cases)
    char sub_endpoint [256];    //  where the receiver connects (bus cases)
    pid_t bus_pid;              //  the bus process (bus cases)
    int subscribers;            //  receivers, each getting every message
    int receiver;               //  in a receiver: which one it is
} s_case_t;

//  Results the children leave in shared memory for the parent, one per
//  receiver; the sender writes its own figures into the first.
typedef struct {
    char endpoint [256];        //  raw: where the receiver bound
    uint64_t delivered;         //  timed messages received
    uint64_t lost_detected;     //  losses the receiver proved from seqs
    uint64_t duplicates;        //  duplicates reported
    int64_t first_us;           //  arrival of the first timed message
    int64_t last_us;            //  arrival of the last one
    int64_t receiver_cpu_us;    //  receiver CPU during the timed run
    int64_t sender_cpu_us;      //  sender CPU during the timed run
    int64_t bus_cpu_start_us;   //  bus CPU when the timed run started
    int64_t bus_cpu_end_us;     //  bus CPU when the receiver finished
    int64_t start_us;           //  when the sender started the timed run
    int64_t end_us;             //  when the receiver finished it
    int64_t busy_start_us;      //  machine-wide busy CPU at start_us
    int64_t busy_end_us;        //  and at end_us
} s_shared_t;

//  One measurement of one case.
typedef struct {
    double msgs_per_s;          //  delivered rate at the receiver
    uint64_t delivered;         //  messages that arrived
    uint64_t lost;              //  n - delivered
    double seconds;             //  first to last arrival
    double bus_cpu_us;          //  bus CPU per delivered event (bus cases)
    double total_cpu_us;        //  all processes' CPU per delivered event
    double sender_cpu_us;       //  the sender's CPU per delivered event
    double receiver_cpu_us;     //  the receiver's CPU per delivered event
    double background_cores;    //  CPU others used meanwhile, in cores
} s_sample_t;

//  The sender's view of the ack pipe.
typedef struct {
    int fd;                     //  read end
    int receivers;              //  how many report on it
    uint64_t seen [MAX_SUBS];   //  highest seq each receiver reported
    uint64_t acked;             //  the lowest of those: the slowest receiver
    int bound;                  //  ACK_BOUNDs seen
    int ready;                  //  ACK_READYs seen
    int done;                   //  ACK_DONEs seen
} s_acks_t;

//  The timed message's body, built once in the parent.
static Ep__Event s_event = EP__EVENT__INIT;
static Ep__ChannelEvent s_channel = EP__CHANNEL_EVENT__INIT;
static uint8_t *s_raw_body;     //  raw cases: the same number of bytes
static size_t s_body_size;      //  packed Event size = raw body size
static uint64_t s_window;       //  most messages in flight (--window)

//  The sender marks the start of the timed run, the receiver its end.
static void
s_mark_start (s_case_t *c, s_shared_t *shared)
{
    shared->start_us = ep_mono_us ();
    shared->busy_start_us = bench_machine_busy_us ();
    if (c->bus)
        shared->bus_cpu_start_us = bench_proc_cpu_us (c->bus_pid);
}

static void
s_mark_end (s_case_t *c, s_shared_t *shared)
{
    shared->end_us = ep_mono_us ();
    shared->busy_end_us = bench_machine_busy_us ();
    if (c->bus)
        shared->bus_cpu_end_us = bench_proc_cpu_us (c->bus_pid);
}

static void
s_ack_send (s_case_t *c, int fd, uint32_t kind, uint64_t seq)
{
    //  16 bytes is below PIPE_BUF: each write arrives whole, and reads
    //  (of a multiple of 16 bytes) never split one.
    s_ack_t ack = { .receiver = (uint32_t) c->receiver, .kind = kind, .seq = seq };
    EP_ASSERT (write (fd, &ack, sizeof ack) == (ssize_t) sizeof ack);
}

//  Reads what the receiver reported, waiting up to timeout_ms for it.
//  Returns -1 once the receiver has gone (pipe closed).
static int
s_acks_read (s_acks_t *self, int timeout_ms)
{
    struct pollfd pfd = { .fd = self->fd, .events = POLLIN };
    if (poll (&pfd, 1, timeout_ms) <= 0)
        return 0;
    s_ack_t acks [256];
    ssize_t got = read (self->fd, acks, sizeof acks);
    if (got <= 0)
        return -1;
    for (size_t i = 0; i < (size_t) got / sizeof acks [0]; i++) {
        if (acks [i].kind == ACK_READY)
            self->ready++;
        else
        if (acks [i].kind == ACK_BOUND)
            self->bound++;
        else
        if (acks [i].kind == ACK_DONE)
            self->done++;
        else
        if (acks [i].receiver < MAX_SUBS && acks [i].seq > self->seen [acks [i].receiver])
            self->seen [acks [i].receiver] = acks [i].seq;
    }
    //  The window follows the slowest receiver: PUB drops for each pipe
    //  on its own, so the fullest one decides.
    uint64_t lowest = UINT64_MAX;
    for (int r = 0; r < self->receivers; r++)
        lowest = self->seen [r] < lowest? self->seen [r]: lowest;
    self->acked = lowest;
    return 0;
}

//  Waits until sending seq keeps fewer than s_window messages in flight;
//  tick (may be NULL) runs between waits. Returns -1 if the receiver made
//  no progress for 10 s or went away.
static int
s_window_wait (s_acks_t *acks, uint64_t seq, ep_publisher_t *tick)
{
    int64_t deadline = ep_mono_ms () + 10000;
    while (seq - 1 - acks->acked >= s_window) {
        if (ep_mono_ms () > deadline || s_acks_read (acks, 100) != 0)
            return -1;
        if (tick)
            ep_publisher_tick (tick);
    }
    return 0;
}

//  Waits up to timeout_ms until every receiver has sent what *count
//  counts, reading acks; tick as above.
static int
s_acks_until (s_acks_t *acks, int *count, int timeout_ms, ep_publisher_t *tick)
{
    int64_t deadline = ep_mono_ms () + timeout_ms;
    while (*count < acks->receivers) {
        if (ep_mono_ms () > deadline || s_acks_read (acks, 20) != 0)
            return -1;
        if (tick)
            ep_publisher_tick (tick);
    }
    return 0;
}

//  ---------------------------------------------------------------------
//  Raw libzmq: the baseline.

static void
s_raw_curve (void *sock, zcert_t *own, zcert_t *server)
{
    EP_ASSERT (zmq_setsockopt (sock, ZMQ_CURVE_PUBLICKEY, zcert_public_key (own), 32) == 0);
    EP_ASSERT (zmq_setsockopt (sock, ZMQ_CURVE_SECRETKEY, zcert_secret_key (own), 32) == 0);
    if (server)
        EP_ASSERT (zmq_setsockopt (sock, ZMQ_CURVE_SERVERKEY, zcert_public_key (server), 32) == 0);
    else {
        int on = 1;
        EP_ASSERT (zmq_setsockopt (sock, ZMQ_CURVE_SERVER, &on, sizeof on) == 0);
    }
}

static zcert_t *s_server_cert;  //  raw CURVE: the receiver's keys
static zcert_t *s_client_cert;  //  raw CURVE: the sender's keys

static int
s_raw_send (void *pub, uint64_t seq)
{
    memcpy (s_raw_body, &seq, sizeof seq);
    if (zmq_send (pub, TOPIC, strlen (TOPIC), ZMQ_SNDMORE) < 0
    ||  zmq_send (pub, s_raw_body, s_body_size, 0) < 0)
        return -1;
    return 0;
}

static int
s_raw_sender (s_case_t *c, s_shared_t *shared, int ack_fd)
{
    s_acks_t acks = { .fd = ack_fd, .receivers = c->subscribers };
    if (s_acks_until (&acks, &acks.bound, 10000, NULL) != 0)
        return 1;
    void *ctx = zmq_ctx_new ();
    void *pub = zmq_socket (ctx, ZMQ_PUB);
    int hwm = HWM, linger = 1000;
    zmq_setsockopt (pub, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt (pub, ZMQ_LINGER, &linger, sizeof linger);
    if (c->curve)
        s_raw_curve (pub, s_client_cert, s_server_cert);
    //  Fan-out: one PUB connected to every receiver, so each message goes
    //  down as many pipes as the bus's XPUB would send it.
    for (int r = 0; r < c->subscribers; r++)
        EP_ASSERT (zmq_connect (pub, shared [r].endpoint) == 0);

    //  Warm-up: seq 0 until the receiver has one, so its subscription has
    //  reached us and nothing timed goes to a PUB without subscribers.
    int64_t deadline = ep_mono_ms () + 10000;
    while (acks.ready < acks.receivers && ep_mono_ms () < deadline) {
        s_raw_send (pub, 0);
        if (s_acks_read (&acks, 10) != 0)
            break;
    }
    int rc = acks.ready == acks.receivers? 0: 1;
    s_mark_start (c, shared);
    int64_t cpu = bench_self_cpu_us ();
    for (uint64_t seq = 1; rc == 0 && seq <= c->n; seq++) {
        if (s_window_wait (&acks, seq, NULL) != 0 || s_raw_send (pub, seq) != 0)
            rc = 1;
    }
    if (rc == 0)
        rc = s_acks_until (&acks, &acks.done, 30000, NULL) == 0? 0: 1;
    shared->sender_cpu_us = bench_self_cpu_us () - cpu;
    zmq_close (pub);
    zmq_ctx_term (ctx);
    return rc;
}

static int
s_raw_receiver (s_case_t *c, s_shared_t *shared, int ack_fd)
{
    void *ctx = zmq_ctx_new ();
    void *sub = zmq_socket (ctx, ZMQ_SUB);
    int hwm = HWM, linger = 0, timeout = 10000;
    zmq_setsockopt (sub, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt (sub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt (sub, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt (sub, ZMQ_SUBSCRIBE, STREAM ".", strlen (STREAM "."));
    if (c->curve)
        s_raw_curve (sub, s_server_cert, NULL);
    EP_ASSERT (zmq_bind (sub, "tcp://127.0.0.1:*") == 0);
    size_t size = sizeof shared->endpoint;
    EP_ASSERT (zmq_getsockopt (sub, ZMQ_LAST_ENDPOINT, shared->endpoint, &size) == 0);
    s_ack_send (c, ack_fd, ACK_BOUND, 0);

    zmq_msg_t topic, body;
    zmq_msg_init (&topic);
    zmq_msg_init (&body);
    int rc = 1;
    //  The first warm-up message proves the path; then the timed run.
    if (zmq_msg_recv (&topic, sub, 0) >= 0 && zmq_msg_recv (&body, sub, 0) >= 0) {
        rc = 0;
        s_ack_send (c, ack_fd, ACK_READY, 0);
    }
    int64_t cpu = bench_self_cpu_us ();
    //  A silence of 3 s ends the run: the rest was lost.
    timeout = 3000;
    zmq_setsockopt (sub, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    uint64_t last_seq = 0;
    while (rc == 0 && last_seq < c->n) {
        if (zmq_msg_recv (&topic, sub, 0) < 0 || zmq_msg_recv (&body, sub, 0) < 0)
            break;
        uint64_t seq = 0;
        if (zmq_msg_size (&body) >= sizeof seq)
            memcpy (&seq, zmq_msg_data (&body), sizeof seq);
        if (seq == 0)
            continue;           //  a late warm-up message
        int64_t now = ep_mono_us ();
        if (shared->delivered++ == 0)
            shared->first_us = now;
        shared->last_us = now;
        if (seq <= last_seq)
            shared->duplicates++;
        else {
            shared->lost_detected += seq - last_seq - 1;
            last_seq = seq;
        }
        if (shared->delivered % ACK_EVERY == 0)
            s_ack_send (c, ack_fd, ACK_SEQ, last_seq);
    }
    shared->receiver_cpu_us = bench_self_cpu_us () - cpu;
    s_mark_end (c, shared);
    s_ack_send (c, ack_fd, ACK_DONE, 0);
    zmq_msg_close (&topic);
    zmq_msg_close (&body);
    zmq_close (sub);
    zmq_ctx_term (ctx);
    return rc;
}

//  ---------------------------------------------------------------------
//  Through the bus: ep_publisher -> edgeplane-bus -> ep_subscriber.

static int
s_bus_sender (s_case_t *c, s_shared_t *shared, int ack_fd)
{
    zcert_t *cert = c->curve? ep_keys_load (c->keys, "model"): NULL;
    char *key = c->curve? ep_keys_public_txt (c->keys, "bus"): NULL;
    ep_publisher_t *pub = ep_publisher_new (c->pub_endpoint, cert, key, "bench-pub", CAP);
    EP_ASSERT (pub);
    //  Frequent heartbeats: the first one that reaches the subscriber ends
    //  the warm-up, the last one proves losses at the tail.
    ep_publisher_set_heartbeat (pub, 100);
    ep_publisher_declare (pub, STREAM);
    s_acks_t acks = { .fd = ack_fd, .receivers = c->subscribers };
    int rc = s_acks_until (&acks, &acks.ready, 10000, pub) == 0? 0: 1;

    s_mark_start (c, shared);
    int64_t cpu = bench_self_cpu_us ();
    for (uint64_t seq = 1; rc == 0 && seq <= c->n; seq++) {
        if (s_window_wait (&acks, seq, pub) != 0
        ||  ep_publisher_send (pub, TOPIC, &s_event) != 0)
            rc = 1;
        if (seq % ACK_EVERY == 0)
            ep_publisher_tick (pub);
    }
    if (rc == 0)
        rc = s_acks_until (&acks, &acks.done, 30000, pub) == 0? 0: 1;
    shared->sender_cpu_us = bench_self_cpu_us () - cpu;
    ep_publisher_destroy (&pub);
    zcert_destroy (&cert);
    free (key);
    zsys_shutdown ();
    return rc;
}

static void
s_on_report (void *arg, const ep_stream_report_t *report)
{
    if (report->kind == EP_STREAM_DUPLICATE)
        ((s_shared_t *) arg)->duplicates++;
}

static int
s_bus_receiver (s_case_t *c, s_shared_t *shared, int ack_fd)
{
    zcert_t *cert = c->curve? ep_keys_load (c->keys, "subscriber"): NULL;
    char *key = c->curve? ep_keys_public_txt (c->keys, "bus"): NULL;
    ep_subscriber_t *sub = ep_subscriber_new (c->sub_endpoint, cert, key, CAP,
                                              s_on_report, shared);
    EP_ASSERT (sub);
    ep_subscriber_subscribe (sub, STREAM ".");
    int rc = ep_subscriber_wait_stream (sub, STREAM, 10000) == 0? 0: 1;
    if (rc == 0)
        s_ack_send (c, ack_fd, ACK_READY, 0);
    ep_tracker_t *tracker = ep_subscriber_tracker (sub);
    int64_t cpu = bench_self_cpu_us ();
    int64_t progress_ms = ep_mono_ms ();
    uint64_t last_seq = 0;
    while (rc == 0 && last_seq < c->n) {
        Ep__Event *event = ep_subscriber_recv (sub, 200, NULL);
        if (!event) {
            //  Done when every seq is delivered or proven lost (the
            //  publisher's heartbeat carries its last seq); a silence of
            //  3 s ends a broken run.
            if (shared->delivered + ep_tracker_lost (tracker) >= c->n
            ||  ep_mono_ms () - progress_ms > 3000)
                break;
            continue;
        }
        int64_t now = ep_mono_us ();
        progress_ms = now / 1000;
        if (shared->delivered++ == 0)
            shared->first_us = now;
        shared->last_us = now;
        last_seq = event->meta->seq;
        if (shared->delivered % ACK_EVERY == 0)
            s_ack_send (c, ack_fd, ACK_SEQ, last_seq);
    }
    shared->receiver_cpu_us = bench_self_cpu_us () - cpu;
    s_mark_end (c, shared);
    shared->lost_detected = ep_tracker_lost (tracker);
    s_ack_send (c, ack_fd, ACK_DONE, 0);
    ep_subscriber_destroy (&sub);
    zcert_destroy (&cert);
    free (key);
    zsys_shutdown ();
    return rc;
}

//  ---------------------------------------------------------------------
//  The parent: one case at a time.

static ep_proc_t *
s_bus_start (s_case_t *c)
{
    char *env_keys = zsys_sprintf ("EDGEPLANE_KEYS_DIR=%s", c->keys);
    const char *args [] = { "--pub-listen", "tcp://127.0.0.1:*", "--sub-listen", "tcp://127.0.0.1:*",
                            "--http-listen", "127.0.0.1:0", "--log-level", "warn",
                            c->curve? NULL: "--plaintext", NULL };
    const char *env [] = { env_keys, NULL };
    ep_proc_t *bus = ep_proc_start ("edgeplane-bus", args, env, 10000);
    if (bus) {
        snprintf (c->pub_endpoint, sizeof c->pub_endpoint, "%s", ep_proc_connect_endpoint (bus, "pub"));
        snprintf (c->sub_endpoint, sizeof c->sub_endpoint, "%s", ep_proc_connect_endpoint (bus, "sub"));
        c->bus_pid = ep_proc_pid (bus);
    }
    zstr_free (&env_keys);
    return bus;
}

//  Waits for child until deadline_ms; kills it after. Returns its exit code.
static int
s_child_wait (pid_t pid, int64_t deadline_ms)
{
    int status = 0;
    while (waitpid (pid, &status, WNOHANG) == 0) {
        if (ep_mono_ms () > deadline_ms) {
            fprintf (stderr, "bus_bench: child %d overran its deadline; killing it\n", (int) pid);
            kill (pid, SIGKILL);
            waitpid (pid, &status, 0);
            return 1;
        }
        poll (NULL, 0, 10);     //  polling interval; the deadline decides
    }
    return WIFEXITED (status)? WEXITSTATUS (status): 1;
}

static pid_t
s_fork (int (*body) (s_case_t *, s_shared_t *, int), s_case_t *c, s_shared_t *shared,
        int keep_fd, int close_fd)
{
    fflush (stdout);
    fflush (stderr);
    pid_t pid = fork ();
    EP_ASSERT (pid >= 0);
    if (pid == 0) {
        close (close_fd);
        _exit (body (c, shared, keep_fd));
    }
    return pid;
}

static int
s_run_case (s_case_t *c, s_sample_t *sample)
{
    int subs = c->subscribers;
    size_t shared_size = (size_t) subs * sizeof (s_shared_t);
    s_shared_t *shared = (s_shared_t *) mmap (NULL, shared_size, PROT_READ | PROT_WRITE,
                                              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    EP_ASSERT (shared != MAP_FAILED);
    memset (shared, 0, shared_size);
    ep_proc_t *bus = c->bus? s_bus_start (c): NULL;
    if (c->bus && !bus) {
        munmap (shared, shared_size);
        return -1;
    }
    int fds [2];
    EP_ASSERT (pipe (fds) == 0);
    pid_t receivers [MAX_SUBS];
    for (int r = 0; r < subs; r++) {
        c->receiver = r;
        receivers [r] = s_fork (c->bus? s_bus_receiver: s_raw_receiver, c, &shared [r], fds [1], fds [0]);
    }
    c->receiver = 0;
    pid_t sender = s_fork (c->bus? s_bus_sender: s_raw_sender, c, shared, fds [0], fds [1]);
    close (fds [0]);
    close (fds [1]);
    int64_t deadline = ep_mono_ms () + 60000 + (int64_t) (c->n / 5) * subs;
    int rc_receiver = 0;
    for (int r = 0; r < subs; r++)
        rc_receiver |= s_child_wait (receivers [r], deadline);
    int rc_sender = s_child_wait (sender, deadline);
    if (bus && (rc_receiver || rc_sender)) {
        char *log = ep_proc_log (bus);
        fprintf (stderr, "bus_bench: edgeplane-bus output:\n%s\n", log? log: "(none)");
        zstr_free (&log);
    }
    if (bus) {
        //  A clean stop, so a profiler around the bus can write its data.
        ep_proc_signal (bus, SIGTERM);
        ep_proc_wait_exit (bus, 5000);
        ep_proc_destroy (&bus);
    }

    //  Over all receivers: deliveries from the first arrival anywhere to
    //  the last; the run ends with the last receiver to finish.
    uint64_t delivered = 0, lost_detected = 0, duplicates = 0;
    int64_t first = INT64_MAX, last = 0, receivers_cpu = 0;
    s_shared_t *ender = &shared [0];
    bool short_run = false;
    for (int r = 0; r < subs; r++) {
        delivered += shared [r].delivered;
        lost_detected += shared [r].lost_detected;
        duplicates += shared [r].duplicates;
        receivers_cpu += shared [r].receiver_cpu_us;
        if (shared [r].delivered < 2)
            short_run = true;
        else {
            first = shared [r].first_us < first? shared [r].first_us: first;
            last = shared [r].last_us > last? shared [r].last_us: last;
        }
        if (shared [r].end_us > ender->end_us)
            ender = &shared [r];
    }
    int rc = rc_receiver || rc_sender || short_run? -1: 0;
    memset (sample, 0, sizeof *sample);
    sample->delivered = delivered;
    sample->lost = c->n * (uint64_t) subs - delivered;
    sample->seconds = rc == 0? (double) (last - first) / 1e6: 0;
    if (rc == 0 && sample->seconds > 0)
        sample->msgs_per_s = (double) (delivered - (uint64_t) subs) / sample->seconds;
    double bus_cpu = c->bus? (double) (ender->bus_cpu_end_us - shared [0].bus_cpu_start_us): 0;
    if (delivered) {
        sample->bus_cpu_us = bus_cpu / (double) delivered;
        sample->sender_cpu_us = (double) shared [0].sender_cpu_us / (double) delivered;
        sample->receiver_cpu_us = (double) receivers_cpu / (double) delivered;
        sample->total_cpu_us = sample->bus_cpu_us + sample->sender_cpu_us + sample->receiver_cpu_us;
    }
    //  Machine-wide busy time minus ours: someone else's load, which
    //  makes this run's figures suspect.
    double ours = bus_cpu + (double) shared [0].sender_cpu_us + (double) receivers_cpu;
    if (ender->end_us > shared [0].start_us)
        sample->background_cores = fmax (0, (double) (ender->busy_end_us - shared [0].busy_start_us) - ours)
                                 / (double) (ender->end_us - shared [0].start_us);
    if (lost_detected != sample->lost || duplicates)
        fprintf (stderr, "bus_bench: %s: %llu lost, %llu proven from seqs, %llu duplicates\n",
                 c->name, (unsigned long long) sample->lost,
                 (unsigned long long) lost_detected,
                 (unsigned long long) duplicates);
    munmap (shared, shared_size);
    return rc;
}

//  ---------------------------------------------------------------------

//  Pads the timed event's detail so that it packs, stamped as the publisher
//  stamps it mid-run, to size bytes. Returns -1 if size is too small.
static int
s_event_build (size_t size)
{
    static Ep__StreamMeta meta = EP__STREAM_META__INIT;
    meta.source_id = "bench-pub";
    meta.has_epoch = meta.has_seq = meta.has_timestamp_ms = meta.has_epoch_started_ms = true;
    meta.epoch = UINT64_MAX / 3;        //  random epochs take 10 bytes
    meta.stream = STREAM;
    meta.seq = 100000;                  //  3 bytes, as most seqs of a run
    meta.timestamp_ms = meta.epoch_started_ms = ep_wall_ms ();
    s_channel.reason = "bench";
    s_channel.remote_addr = "127.0.0.1:40000";
    s_channel.role = "service";
    s_channel.id = "bench";
    s_event.body_case = EP__EVENT__BODY_CHANNEL;
    s_event.channel = &s_channel;
    s_event.meta = &meta;
    char *detail = (char *) zmalloc (size + 1);
    s_channel.detail = detail;
    size_t packed = 0;
    for (size_t pad = 0; pad <= size; pad++) {
        memset (detail, 'x', pad);
        detail [pad] = 0;
        packed = protobuf_c_message_get_packed_size (&s_event.base);
        if (packed >= size)
            break;
    }
    //  The publisher stamps its own meta.
    s_event.meta = NULL;
    s_body_size = size;
    s_raw_body = (uint8_t *) zmalloc (size);
    memset (s_raw_body, 'x', size);
    return packed == size? 0: -1;
}

int
main (int argc, char **argv)
{
    static bool quick, plain_only;
    static int64_t size, reps, n_plain, n_curve, window, subscribers;
    ep_opt_t opts [] = {
        { .name = "quick", .def = "false", .type = EP_OPT_BOOL, .flag = &quick,
          .help = "Smaller runs (200k plaintext, 50k CURVE messages, one repetition)." },
        { .name = "size", .def = "200", .type = EP_OPT_INT, .num = &size, .min = 80, .max = 60000,
          .help = "Packed event size in bytes; raw messages get bodies of this size." },
        { .name = "reps", .def = "0", .type = EP_OPT_INT, .num = &reps, .min = 0, .max = 20,
          .help = "Repetitions of every case; best throughput, median CPU (0: 1 quick, 5 full)." },
        { .name = "n-plain", .def = "0", .type = EP_OPT_INT, .num = &n_plain, .min = 0, .max = 100000000,
          .help = "Messages per plaintext case (0: 200000 quick, 2000000 full)." },
        { .name = "n-curve", .def = "0", .type = EP_OPT_INT, .num = &n_curve, .min = 0, .max = 100000000,
          .help = "Messages per CURVE case (0: 50000 quick, 500000 full)." },
        { .name = "window", .def = "20000", .type = EP_OPT_INT, .num = &window, .min = 4 * ACK_EVERY, .max = 100000000,
          .help = "Most messages in flight; keep it under half of every HWM (100000) or PUB drops." },
        { .name = "subscribers", .def = "1", .type = EP_OPT_INT, .num = &subscribers, .min = 1, .max = MAX_SUBS,
          .help = "Receivers per case, each getting every message (fan-out); rates count every delivery." },
        { .name = "plain-only", .def = "false", .type = EP_OPT_BOOL, .flag = &plain_only,
          .help = "Run the plaintext cases only (for sweeps)." },
    };
    ep_config_t *config = ep_config_new ("bus_bench",
        "Events/s through edgeplane-bus as a ratio to raw libzmq PUB/SUB, measured in the same run.");
    ep_config_add (config, opts, EP_COUNT (opts));
    ep_config_parse_or_exit (config, argc, argv);
    if (!reps)
        reps = quick? 1: 5;
    if (!n_plain)
        n_plain = quick? 200000: 2000000;
    if (!n_curve)
        n_curve = quick? 50000: 500000;
    s_window = (uint64_t) window;
    signal (SIGPIPE, SIG_IGN);
    if (s_event_build ((size_t) size) != 0) {
        fprintf (stderr, "bus_bench: cannot build an event of exactly %lld bytes; try another --size\n",
                 (long long) size);
        return 2;
    }
    //  No ZeroMQ socket in this process before the forks: each child
    //  starts its own context.
    char *dir = ep_tmpdir_new ("bench");
    char *keys = zsys_sprintf ("%s/keys", dir);
    char err [256];
    EP_ASSERT (ep_keys_init (keys, false, err, sizeof err) == 0);
    s_server_cert = zcert_new ();
    s_client_cert = zcert_new ();

    s_case_t cases [] = {
        { .name = "raw_plain", .bus = false, .curve = false, .n = (uint64_t) n_plain },
        { .name = "bus_plain", .bus = true,  .curve = false, .n = (uint64_t) n_plain },
        { .name = "raw_curve", .bus = false, .curve = true,  .n = (uint64_t) n_curve },
        { .name = "bus_curve", .bus = true,  .curve = true,  .n = (uint64_t) n_curve },
    };
    enum { NCASES = 4 };
    int ncases = plain_only? 2: NCASES;
    for (int i = 0; i < NCASES; i++)
        cases [i].subscribers = (int) subscribers;
    double rates [NCASES][20], bus_cpu [NCASES][20], total_cpu [NCASES][20];
    uint64_t lost [NCASES] = { 0 };
    json_t *runs = json_array ();
    double background = 0;      //  most CPU others used during any case
    int rc = 0;
    //  Cases interleave within each repetition, so a slow spell of the
    //  machine hits baseline and bus alike.
    for (int rep = 0; rc == 0 && rep < reps; rep++) {
        for (int i = 0; rc == 0 && i < ncases; i++) {
            s_case_t *c = &cases [i];
            c->keys = keys;
            s_sample_t sample;
            if (s_run_case (c, &sample) != 0) {
                fprintf (stderr, "bus_bench: %s failed (see above)\n", c->name);
                rc = 1;
                break;
            }
            fprintf (stderr, "bus_bench: %-9s rep %d: %10.0f msgs/s, %llu lost, total CPU %.2f us/msg,"
                     " others used %.2f cores meanwhile\n",
                     c->name, rep + 1, sample.msgs_per_s, (unsigned long long) sample.lost,
                     sample.total_cpu_us, sample.background_cores);
            if (sample.background_cores > background)
                background = sample.background_cores;
            rates [i][rep] = sample.msgs_per_s;
            bus_cpu [i][rep] = sample.bus_cpu_us;
            total_cpu [i][rep] = sample.total_cpu_us;
            lost [i] += sample.lost;
            json_array_append_new (runs, json_pack ("{s:s, s:i, s:o, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o}",
                "case", c->name, "rep", rep + 1, "msgs_per_s", bench_real (sample.msgs_per_s),
                "delivered", (json_int_t) sample.delivered, "lost", (json_int_t) sample.lost,
                "seconds", bench_real (sample.seconds), "bus_cpu_us_per_msg", bench_real (sample.bus_cpu_us),
                "sender_cpu_us_per_msg", bench_real (sample.sender_cpu_us),
                "receiver_cpu_us_per_msg", bench_real (sample.receiver_cpu_us),
                "total_cpu_us_per_msg", bench_real (sample.total_cpu_us),
                "background_cores", bench_real (sample.background_cores)));
        }
    }
    if (rc == 0) {
        //  Throughput: the best repetition of each case. Noise on a shared
        //  machine only ever slows a run down, so the best is the closest
        //  to what the machine can do, for baseline and bus alike. CPU per
        //  event: the median.
        double best [NCASES], median [NCASES], median_bus_cpu [NCASES], median_total_cpu [NCASES];
        for (int i = 0; i < NCASES; i++) {
            best [i] = 0;
            if (i >= ncases) {
                median [i] = median_bus_cpu [i] = median_total_cpu [i] = 0;
                continue;
            }
            for (int rep = 0; rep < reps; rep++)
                best [i] = fmax (best [i], rates [i][rep]);
            median [i] = bench_median (rates [i], (size_t) reps);
            median_bus_cpu [i] = bench_median (bus_cpu [i], (size_t) reps);
            median_total_cpu [i] = bench_median (total_cpu [i], (size_t) reps);
        }
        char date [32];
        json_t *result = json_object ();
        json_object_set_new (result, "benchmark", json_string ("bus"));
        json_object_set_new (result, "date", json_string (ep_rfc3339 (ep_wall_ms (), date, sizeof date)));
        json_object_set_new (result, "mode", json_string (quick? "quick": "full"));
        json_object_set_new (result, "statistic", json_string ("throughput: best repetition; CPU: median"));
        json_object_set_new (result, "raw_plain_msgs_per_s", json_integer ((json_int_t) best [0]));
        json_object_set_new (result, "bus_plain_msgs_per_s", json_integer ((json_int_t) best [1]));
        json_object_set_new (result, "ratio_plain", bench_real (best [1] / best [0]));
        json_object_set_new (result, "raw_curve_msgs_per_s", json_integer ((json_int_t) best [2]));
        json_object_set_new (result, "bus_curve_msgs_per_s", json_integer ((json_int_t) best [3]));
        json_object_set_new (result, "ratio_curve", bench_real ((best [2] > 0? best [3] / best [2]: 0)));
        json_object_set_new (result, "median", json_pack ("{s:I, s:I, s:o, s:I, s:I, s:o}",
            "raw_plain_msgs_per_s", (json_int_t) median [0], "bus_plain_msgs_per_s", (json_int_t) median [1],
            "ratio_plain", bench_real (median [1] / median [0]),
            "raw_curve_msgs_per_s", (json_int_t) median [2], "bus_curve_msgs_per_s", (json_int_t) median [3],
            "ratio_curve", bench_real ((median [2] > 0? median [3] / median [2]: 0))));
        json_object_set_new (result, "bus_cpu_us_per_event_plain", bench_real (median_bus_cpu [1]));
        json_object_set_new (result, "bus_cpu_us_per_event_curve", bench_real (median_bus_cpu [3]));
        json_object_set_new (result, "total_cpu_us_per_event_plain", bench_real (median_total_cpu [1]));
        json_object_set_new (result, "total_cpu_us_per_event_curve", bench_real (median_total_cpu [3]));
        json_object_set_new (result, "raw_total_cpu_us_per_msg_plain", bench_real (median_total_cpu [0]));
        json_object_set_new (result, "raw_total_cpu_us_per_msg_curve", bench_real (median_total_cpu [2]));
        json_object_set_new (result, "losses", json_pack ("{s:I, s:I, s:I, s:I}",
            "raw_plain", (json_int_t) lost [0], "bus_plain", (json_int_t) lost [1],
            "raw_curve", (json_int_t) lost [2], "bus_curve", (json_int_t) lost [3]));
        if (plain_only) {
            const char *curve_keys [] = { "raw_curve_msgs_per_s", "bus_curve_msgs_per_s", "ratio_curve",
                                          "bus_cpu_us_per_event_curve", "total_cpu_us_per_event_curve",
                                          "raw_total_cpu_us_per_msg_curve" };
            for (size_t k = 0; k < EP_COUNT (curve_keys); k++)
                json_object_del (result, curve_keys [k]);
        }
        json_object_set_new (result, "subscribers", json_integer ((json_int_t) subscribers));
        json_object_set_new (result, "message_size", json_integer ((json_int_t) s_body_size));
        json_object_set_new (result, "topic_size", json_integer ((json_int_t) strlen (TOPIC)));
        json_object_set_new (result, "n", json_pack ("{s:I, s:I}",
            "plain", (json_int_t) n_plain, "curve", (json_int_t) n_curve));
        json_object_set_new (result, "reps", json_integer (reps));
        json_object_set_new (result, "window", json_integer ((json_int_t) s_window));
        json_object_set_new (result, "background_cores_max", bench_real (background));
        json_object_set_new (result, "machine", bench_machine ());
        json_object_set_new (result, "runs", runs);
        runs = NULL;
        char *text = json_dumps (result, JSON_INDENT (2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION (6));
        printf ("%s\n", text);
        free (text);
        json_decref (result);
    }
    json_decref (runs);
    zcert_destroy (&s_server_cert);
    zcert_destroy (&s_client_cert);
    zstr_free (&keys);
    ep_tmpdir_remove (&dir);
    free (s_channel.detail);
    free (s_raw_body);
    ep_config_destroy (&config);
    return rc;
}
