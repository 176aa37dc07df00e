/*  test_python_consumer.c: examples/python/edgeplane_consumer.py against the
    real edgeplane-bus.

    The consumer runs under Debian's /usr/bin/python3 as a child whose stdout
    and stderr share one pipe; the test waits on that pipe with deadlines:
    first for its READY line (a heartbeat reached it, so its subscription is
    in place), then for its exit after --count events. Its JSON must equal
    what ep_event_json renders for the same events, and its LOST lines must
    name exactly the seqs a publisher skipped.
*/
#include <criterion/criterion.h>
#include "ep_test.h"
#include "ep_keys.h"
#include "ep_publisher.h"
#include "ep_subscriber.h"
#include "ep_event_json.h"
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define PYTHON      "/usr/bin/python3"
#define EXAMPLES    EP_SOURCE_DIR "/examples/python"

static char *s_dir;             //  data dir of this test
static char *s_keys;            //  its keys dir
static char *s_env_keys;        //  "EDGEPLANE_KEYS_DIR=..."

static void
s_setup (void)
{
    s_dir = ep_tmpdir_new ("pyconsumer");
    s_keys = zsys_sprintf ("%s/keys", s_dir);
    s_env_keys = zsys_sprintf ("EDGEPLANE_KEYS_DIR=%s", s_keys);
    char err [256];
    cr_assert_eq (ep_keys_init (s_keys, false, err, sizeof err), 0, "%s", err);
}

static void
s_teardown (void)
{
    zstr_free (&s_env_keys);
    zstr_free (&s_keys);
    ep_tmpdir_remove (&s_dir);
}

static ep_proc_t *
s_bus (void)
{
    const char *args [] = { "--pub-listen", "tcp://127.0.0.1:*", "--sub-listen", "tcp://127.0.0.1:*",
                            "--http-listen", "127.0.0.1:0", NULL };
    const char *env [] = { s_env_keys, NULL };
    ep_proc_t *bus = ep_proc_start ("edgeplane-bus", args, env, 10000);
    cr_assert_not_null (bus, "edgeplane-bus did not start");
    return bus;
}

//  --------------------------------------------------------------------------
//  The Python consumer as a child process

typedef struct {
    pid_t pid;                  //  the child, 0 once reaped
    int status;                 //  its wait status once reaped
    int fd;                     //  read end of its stdout + stderr
    zchunk_t *out;              //  everything read so far
    bool eof;                   //  the pipe closed: the child is done writing
} s_consumer_t;

//  Starts the consumer on bus endpoint with --json, our keys and the
//  build's descriptor set, plus args (NULL-terminated).
static s_consumer_t *
s_consumer_start (const char *endpoint, const char *const *args)
{
    const char *argv [32] = {
        PYTHON, EXAMPLES "/edgeplane_consumer.py", "--bus", endpoint, "--keys", s_keys,
        "--descriptor-set", EP_DESCRIPTOR_SET, "--json"
    };
    size_t argc = 9;
    for (size_t i = 0; args && args [i]; i++) {
        EP_ASSERT (argc < EP_COUNT (argv) - 1);
        argv [argc++] = args [i];
    }
    argv [argc] = NULL;
    int fds [2];
    EP_ASSERT (pipe2 (fds, O_CLOEXEC) == 0);
    pid_t pid = fork ();
    EP_ASSERT (pid >= 0);
    if (pid == 0) {
        dup2 (fds [1], 1);
        dup2 (fds [1], 2);
        //  Keep __pycache__ out of the source tree.
        setenv ("PYTHONDONTWRITEBYTECODE", "1", 1);
        execv (PYTHON, (char *const *) argv);
        fprintf (stderr, "exec %s: %s\n", PYTHON, strerror (errno));
        _exit (127);
    }
    close (fds [1]);
    EP_ASSERT (fcntl (fds [0], F_SETFL, O_NONBLOCK) == 0);
    s_consumer_t *self = (s_consumer_t *) zmalloc (sizeof (s_consumer_t));
    self->pid = pid;
    self->fd = fds [0];
    self->out = zchunk_new (NULL, 4096);
    return self;
}

//  Waits up to timeout_ms for output and takes what there is.
static void
s_consumer_pump (s_consumer_t *self, int timeout_ms)
{
    if (self->eof)
        return;
    struct pollfd pfd = { .fd = self->fd, .events = POLLIN };
    if (poll (&pfd, 1, timeout_ms) <= 0)
        return;
    char buf [4096];
    ssize_t n = -1;             //  -1 until a recv says otherwise
    while ((n = read (self->fd, buf, sizeof buf)) > 0)
        zchunk_extend (self->out, buf, (size_t) n);
    if (n == 0)
        self->eof = true;
}

//  Everything the consumer wrote so far, NUL-terminated. Caller frees.
static char *
s_consumer_text (s_consumer_t *self)
{
    return zchunk_strdup (self->out);
}

//  True if the consumer wrote a line that starts with prefix.
static bool
s_consumer_has_line (s_consumer_t *self, const char *prefix)
{
    char *text = s_consumer_text (self);
    bool found = strncmp (text, prefix, strlen (prefix)) == 0;
    for (char *nl = strchr (text, '\n'); nl && !found; nl = strchr (nl + 1, '\n'))
        found = strncmp (nl + 1, prefix, strlen (prefix)) == 0;
    free (text);
    return found;
}

//  Pumps output until the consumer wrote a line starting with prefix,
//  calling tick (if any) between waits, for at most timeout_ms.
static bool
s_consumer_await_line (s_consumer_t *self, const char *prefix,
                       void (*tick) (void *arg), void *arg, int timeout_ms)
{
    int64_t deadline = ep_mono_ms () + timeout_ms;
    while (!s_consumer_has_line (self, prefix)) {
        if (self->eof || ep_mono_ms () >= deadline)
            return false;
        if (tick)
            tick (arg);
        s_consumer_pump (self, 20);
    }
    return true;
}

//  Waits up to timeout_ms for the consumer to close its output and exit.
//  Returns its wait status, or -1 if it is still running.
static int
s_consumer_wait_exit (s_consumer_t *self, int timeout_ms)
{
    int64_t deadline = ep_mono_ms () + timeout_ms;
    while (!self->eof && ep_mono_ms () < deadline)
        s_consumer_pump (self, (int) (deadline - ep_mono_ms ()));
    if (self->pid) {
        //  The pipe closed, so the child is exiting: bounded by the deadline.
        while (waitpid (self->pid, &self->status, WNOHANG) == 0) {
            if (ep_mono_ms () >= deadline)
                return -1;
            poll (NULL, 0, 5);
        }
        self->pid = 0;
    }
    return self->status;
}

//  Kills the consumer if it still runs, reaps it.
static void
s_consumer_destroy (s_consumer_t **self_p)
{
    s_consumer_t *self = *self_p;
    if (self) {
        if (self->pid) {
            kill (self->pid, SIGKILL);
            waitpid (self->pid, NULL, 0);
        }
        close (self->fd);
        zchunk_destroy (&self->out);
        free (self);
        *self_p = NULL;
    }
}

//  The consumer's JSON lines, parsed, in order. Caller json_decref ().
static json_t *
s_consumer_events (s_consumer_t *self)
{
    json_t *events = json_array ();
    char *text = s_consumer_text (self);
    char *save = NULL;
    for (char *line = strtok_r (text, "\n", &save); line; line = strtok_r (NULL, "\n", &save)) {
        if (*line != '{')
            continue;
        json_error_t error;
        json_t *event = json_loads (line, 0, &error);
        cr_assert_not_null (event, "not JSON: %s (%s)", line, error.text);
        json_array_append_new (events, event);
    }
    free (text);
    return events;
}

//  Fails the test with the consumer's output unless cond.
#define s_assert_output(consumer, cond, ...) do { \
    if (!(cond)) { \
        char *text_ = s_consumer_text (consumer); \
        fprintf (stderr, "consumer output:\n%s\n", text_); \
        free (text_); \
        cr_assert_fail (__VA_ARGS__); \
    } \
} while (0)

//  --------------------------------------------------------------------------
//  Events through ep_publisher, compared with the C rendering

static void
s_tick_publisher (void *arg)
{
    ep_publisher_tick ((ep_publisher_t *) arg);
}

static void
s_publish_connect (ep_publisher_t *pub, bool connected)
{
    Ep__ConnectEvent body = EP__CONNECT_EVENT__INIT;
    body.type = "router-to-ctrl";
    body.src_type = "router";
    body.src_id = "router-1";
    body.src_addr = "127.0.0.1:40001";
    body.dst_type = "ctrl";
    body.dst_id = "ctrl-a";
    body.dst_addr = "127.0.0.1:6262";
    body.has_connected = true;
    body.connected = connected;
    if (!connected) {
        body.has_duration = true;
        body.duration = 1500;
        body.reason = "closed by peer";
    }
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_CONNECT;
    event.connect = &body;
    cr_assert_eq (ep_publisher_send (pub, "connect.router-to-ctrl", &event), 0);
}

static void
s_publish_stray (ep_publisher_t *pub)
{
    Ep__StrayEvent body = EP__STRAY_EVENT__INIT;
    body.remote_addr = "127.0.0.1:50000";
    body.has_accepted_at_ms = true;
    body.accepted_at_ms = 1700000000123;
    body.step = "await-hello";
    body.action = "disconnect";
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_STRAY;
    event.stray = &body;
    cr_assert_eq (ep_publisher_send (pub, "stray.detected", &event), 0);
}

//  An enum and a uint64 beyond 2^53 and a repeated field: the renderings
//  must agree on those too.
static void
s_publish_presence_and_terminator (ep_publisher_t *pub)
{
    char *routers [] = { "router-1", "router-2" };
    Ep__PresenceEvent presence = EP__PRESENCE_EVENT__INIT;
    presence.instance_id = "watchdog-1";
    presence.has_instance_epoch = true;
    presence.instance_epoch = 0xfedcba9876543210ull;
    presence.n_routers = 2;
    presence.routers = routers;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_PRESENCE;
    event.presence = &presence;
    cr_assert_eq (ep_publisher_send (pub, "presence.beacon", &event), 0);

    Ep__TerminatorEvent terminator = EP__TERMINATOR_EVENT__INIT;
    terminator.event_type = "created";
    terminator.terminator_id = "t-1";
    terminator.has_precedence = true;
    terminator.precedence = EP__PRECEDENCE__PRECEDENCE_REQUIRED;
    terminator.has_router_online = true;
    terminator.router_online = true;
    Ep__Event event2 = EP__EVENT__INIT;
    event2.body_case = EP__EVENT__BODY_TERMINATOR;
    event2.terminator = &terminator;
    cr_assert_eq (ep_publisher_send (pub, "terminator.created", &event2), 0);
}

Test (python_consumer, json_lines_match_the_c_rendering_field_for_field,
      .init = s_setup, .fini = s_teardown, .timeout = 90)
{
    ep_proc_t *bus = s_bus ();
    zcert_t *pub_cert = ep_keys_load (s_keys, "watchdog");
    zcert_t *sub_cert = ep_keys_load (s_keys, "subscriber");
    char *bus_key = ep_keys_public_txt (s_keys, "bus");
    ep_publisher_t *pub = ep_publisher_new (ep_proc_connect_endpoint (bus, "pub"),
                                            pub_cert, bus_key, "watchdog-py", 65536);
    ep_publisher_set_heartbeat (pub, 50);
    const char *streams [] = { "connect", "stray", "presence", "terminator" };
    for (size_t i = 0; i < EP_COUNT (streams); i++)
        ep_publisher_declare (pub, streams [i]);

    //  The reference: a C subscriber rendering with ep_event_json.
    ep_subscriber_t *reference = ep_subscriber_new (ep_proc_connect_endpoint (bus, "sub"),
                                                    sub_cert, bus_key, 65536, NULL, NULL);
    ep_subscriber_subscribe (reference, "");
    const char *args [] = { "--count", "5", NULL };
    s_consumer_t *consumer = s_consumer_start (ep_proc_connect_endpoint (bus, "sub"), args);

    bool ready = s_consumer_await_line (consumer, "READY", s_tick_publisher, pub, 30000);
    s_assert_output (consumer, ready, "the consumer never printed READY");
    int64_t deadline = ep_mono_ms () + 10000;
    for (size_t i = 0; i < EP_COUNT (streams); i++)
        while (!ep_tracker_seen (ep_subscriber_tracker (reference), streams [i])
           &&  ep_mono_ms () < deadline) {
            ep_publisher_tick (pub);
            ep_subscriber_wait_stream (reference, streams [i], 20);
        }
    //  READY says one heartbeat came; the consumer subscribed to "" in one
    //  go, so it takes every stream the reference takes.

    s_publish_connect (pub, true);
    s_publish_stray (pub);
    s_publish_connect (pub, false);
    s_publish_presence_and_terminator (pub);

    json_t *expected = json_array ();
    while (json_array_size (expected) < 5) {
        char *topic = NULL;
        Ep__Event *event = ep_subscriber_recv (reference, 5000, &topic);
        cr_assert_not_null (event, "the reference subscriber got %zu of 5 events",
                            json_array_size (expected));
        json_array_append_new (expected, ep_event_json (topic, event));
        free (topic);
    }
    int status = s_consumer_wait_exit (consumer, 20000);
    s_assert_output (consumer, status != -1 && WIFEXITED (status) && WEXITSTATUS (status) == 0,
                     "the consumer did not exit 0 after --count 5 (status %d)", status);

    json_t *got = s_consumer_events (consumer);
    s_assert_output (consumer, json_array_size (got) == 5, "expected 5 JSON lines");
    for (size_t i = 0; i < 5; i++) {
        char *want = json_dumps (json_array_get (expected, i), JSON_SORT_KEYS);
        char *have = json_dumps (json_array_get (got, i), JSON_SORT_KEYS);
        cr_assert (json_equal (json_array_get (expected, i), json_array_get (got, i)),
                   "event %zu differs:\n  C:      %s\n  Python: %s", i, want, have);
        free (want);
        free (have);
    }
    //  And what the rendering must say, spelled out.
    json_t *join = json_array_get (got, 0);
    cr_assert_str_eq (json_string_value (json_object_get (join, "namespace")), "connect");
    cr_assert_str_eq (json_string_value (json_object_get (join, "type")), "router-to-ctrl");
    cr_assert_str_eq (json_string_value (json_object_get (join, "event_src_id")), "watchdog-py");
    cr_assert_eq (json_integer_value (json_object_get (join, "seq")), 1);
    cr_assert_str_eq (json_string_value (json_object_get (join, "src_type")), "router");
    cr_assert_str_eq (json_string_value (json_object_get (join, "src_id")), "router-1");
    cr_assert_str_eq (json_string_value (json_object_get (join, "dst_addr")), "127.0.0.1:6262");
    cr_assert (json_is_true (json_object_get (join, "connected")));
    const char *ts = json_string_value (json_object_get (join, "timestamp"));
    cr_assert (ts && strlen (ts) == 24 && ts [10] == 'T' && ts [23] == 'Z', "timestamp %s", ts);
    char epoch [17];
    snprintf (epoch, sizeof epoch, "%016llx", (unsigned long long) ep_publisher_epoch (pub));
    cr_assert_str_eq (json_string_value (json_object_get (join, "epoch")), epoch);

    json_t *stray = json_array_get (got, 1);
    cr_assert_str_eq (json_string_value (json_object_get (stray, "namespace")), "stray");
    cr_assert_str_eq (json_string_value (json_object_get (stray, "type")), "detected");
    cr_assert_eq (json_integer_value (json_object_get (stray, "seq")), 1);
    cr_assert_str_eq (json_string_value (json_object_get (stray, "step")), "await-hello");
    cr_assert_eq (json_integer_value (json_object_get (stray, "accepted_at_ms")), 1700000000123);

    json_t *leave = json_array_get (got, 2);
    cr_assert_eq (json_integer_value (json_object_get (leave, "seq")), 2);
    cr_assert (json_is_false (json_object_get (leave, "connected")));
    cr_assert_eq (json_integer_value (json_object_get (leave, "duration")), 1500);
    cr_assert_str_eq (json_string_value (json_object_get (leave, "reason")), "closed by peer");

    json_t *presence = json_array_get (got, 3);
    cr_assert_str_eq (json_string_value (json_object_get (presence, "instance_epoch")),
                      "18364758544493064720");
    cr_assert_eq (json_array_size (json_object_get (presence, "routers")), 2);
    json_t *terminator = json_array_get (got, 4);
    cr_assert_str_eq (json_string_value (json_object_get (terminator, "precedence")), "required");

    s_assert_output (consumer, !s_consumer_has_line (consumer, "LOST"), "false loss reported");
    json_decref (got);
    json_decref (expected);
    s_consumer_destroy (&consumer);
    ep_subscriber_destroy (&reference);
    ep_publisher_destroy (&pub);
    free (bus_key);
    zcert_destroy (&pub_cert);
    zcert_destroy (&sub_cert);
    ep_proc_destroy (&bus);
}

//  --------------------------------------------------------------------------
//  A publisher that skips seqs, stamped by hand: to a subscriber that is
//  exactly what a loss on the way looks like.

typedef struct {
    zsock_t *pub;               //  PUB on the bus, CURVE with a service cert
    int64_t started_ms;         //  its epoch's start (before the consumers)
} s_lossy_t;

static void
s_lossy_send (s_lossy_t *self, const char *topic, uint64_t seq, bool heartbeat)
{
    Ep__StreamMeta meta = EP__STREAM_META__INIT;
    meta.source_id = "model-lossy";
    meta.has_epoch = true;
    meta.epoch = 42;
    meta.stream = "test";
    meta.has_seq = true;
    meta.seq = seq;
    meta.has_timestamp_ms = true;
    meta.timestamp_ms = ep_wall_ms ();
    meta.has_epoch_started_ms = true;
    meta.epoch_started_ms = self->started_ms;
    Ep__StreamHeartbeat beat = EP__STREAM_HEARTBEAT__INIT;
    Ep__ChannelEvent body = EP__CHANNEL_EVENT__INIT;
    body.detail = "lossy";
    Ep__Event event = EP__EVENT__INIT;
    event.meta = &meta;
    if (heartbeat) {
        event.body_case = EP__EVENT__BODY_HEARTBEAT;
        event.heartbeat = &beat;
    }
    else {
        event.body_case = EP__EVENT__BODY_CHANNEL;
        event.channel = &body;
    }
    size_t size = ep__event__get_packed_size (&event);
    uint8_t *bytes = (uint8_t *) malloc (size);
    ep__event__pack (&event, bytes);
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, topic);
    zmsg_addmem (msg, bytes, size);
    free (bytes);
    cr_assert_eq (zmsg_send (&msg, self->pub), 0);
}

static void
s_lossy_heartbeat (void *arg)
{
    s_lossy_send ((s_lossy_t *) arg, "test.heartbeat", 0, true);
}

//  The seqs of the consumer's JSON lines and its LOST lines, in the order
//  written, as one string: "1 2 LOST:3..4 5 ...".
static char *
s_consumer_story (s_consumer_t *consumer)
{
    zchunk_t *story = zchunk_new (NULL, 256);
    char *text = s_consumer_text (consumer);
    char *save = NULL;
    for (char *line = strtok_r (text, "\n", &save); line; line = strtok_r (NULL, "\n", &save)) {
        char word [64] = "";
        if (*line == '{') {
            json_t *event = json_loads (line, 0, NULL);
            snprintf (word, sizeof word, "%lld ",
                      (long long) json_integer_value (json_object_get (event, "seq")));
            json_decref (event);
        }
        else
        if (strncmp (line, "LOST model-lossy test ", 22) == 0)
            snprintf (word, sizeof word, "LOST:%s ", line + 22);
        else
        if (strncmp (line, "LOST", 4) == 0)
            snprintf (word, sizeof word, "LOST? ");
        zchunk_extend (story, word, strlen (word));
    }
    free (text);
    char *result = zchunk_strdup (story);
    zchunk_destroy (&story);
    return result;
}

Test (python_consumer, skipped_seqs_are_reported_as_exact_lost_ranges_only_for_whole_streams,
      .init = s_setup, .fini = s_teardown, .timeout = 90)
{
    ep_proc_t *bus = s_bus ();
    zcert_t *cert = ep_keys_load (s_keys, "model");
    char *bus_key = ep_keys_public_txt (s_keys, "bus");
    s_lossy_t lossy = { zsock_new (ZMQ_PUB), ep_wall_ms () };
    cr_assert_eq (ep_curve_client (lossy.pub, cert, bus_key), 0);
    cr_assert_eq (zsock_connect (lossy.pub, "%s", ep_proc_connect_endpoint (bus, "pub")), 0);

    //  One consumer takes the whole stream, one only test.item (it gets
    //  test.heartbeat too, or it would never be READY).
    const char *whole_args [] = { "--count", "4", NULL };
    const char *filtered_args [] = { "--count", "4", "--prefix", "test.item", NULL };
    s_consumer_t *whole = s_consumer_start (ep_proc_connect_endpoint (bus, "sub"), whole_args);
    s_consumer_t *filtered = s_consumer_start (ep_proc_connect_endpoint (bus, "sub"), filtered_args);
    bool ready = s_consumer_await_line (whole, "READY", s_lossy_heartbeat, &lossy, 30000);
    s_assert_output (whole, ready, "the whole-stream consumer never printed READY");
    ready = s_consumer_await_line (filtered, "READY", s_lossy_heartbeat, &lossy, 30000);
    s_assert_output (filtered, ready, "the filtered consumer never printed READY");

    //  3 and 4 skipped mid-stream; 6 and 7 skipped at the end, which only
    //  the heartbeat (last seq 7) proves; then 8.
    s_lossy_send (&lossy, "test.item", 1, false);
    s_lossy_send (&lossy, "test.item", 2, false);
    s_lossy_send (&lossy, "test.item", 5, false);
    s_lossy_send (&lossy, "test.heartbeat", 7, true);
    s_lossy_send (&lossy, "test.item", 8, false);

    int status = s_consumer_wait_exit (whole, 20000);
    s_assert_output (whole, status != -1 && WIFEXITED (status) && WEXITSTATUS (status) == 0,
                     "the whole-stream consumer did not exit 0 (status %d)", status);
    status = s_consumer_wait_exit (filtered, 20000);
    s_assert_output (filtered, status != -1 && WIFEXITED (status) && WEXITSTATUS (status) == 0,
                     "the filtered consumer did not exit 0 (status %d)", status);

    char *story = s_consumer_story (whole);
    s_assert_output (whole, streq (story, "1 2 LOST:3..4 5 LOST:6..7 8 "), "got: %s", story);
    free (story);
    story = s_consumer_story (filtered);
    s_assert_output (filtered, streq (story, "1 2 5 8 "), "got: %s", story);
    free (story);

    s_consumer_destroy (&filtered);
    s_consumer_destroy (&whole);
    zsock_destroy (&lossy.pub);
    free (bus_key);
    zcert_destroy (&cert);
    ep_proc_destroy (&bus);
}

Test (python_consumer, refused_certificate_ends_it_wrong_bus_key_warns_ctrl_c_exits_0,
      .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    ep_proc_t *bus = s_bus ();
    const char *endpoint = ep_proc_connect_endpoint (bus, "sub");

    //  A certificate the bus never authorised: a message, status 1.
    zcert_t *stranger = zcert_new ();
    char *path = zsys_sprintf ("%s/stranger.cert", s_dir);
    cr_assert_eq (zcert_save (stranger, path), 0);
    char *secret_path = zsys_sprintf ("%s_secret", path);
    const char *stranger_args [] = { "--cert", secret_path, NULL };
    s_consumer_t *consumer = s_consumer_start (endpoint, stranger_args);
    int status = s_consumer_wait_exit (consumer, 30000);
    s_assert_output (consumer, status != -1 && WIFEXITED (status) && WEXITSTATUS (status) == 1,
                     "a refused consumer did not exit 1 (status %d)", status);
    s_assert_output (consumer, s_consumer_has_line (consumer,
                     "edgeplane_consumer: the bus refused our certificate"), "no reason given");
    s_consumer_destroy (&consumer);

    //  The model's public key where the bus's belongs: a warning, retries,
    //  and Ctrl-C ends it cleanly.
    char *model_cert = zsys_sprintf ("%s/curve/model.cert", s_keys);
    const char *wrong_key_args [] = { "--server-key-file", model_cert, NULL };
    consumer = s_consumer_start (endpoint, wrong_key_args);
    bool warned = s_consumer_await_line (consumer, "WARNING the CURVE handshake with the bus failed",
                                         NULL, NULL, 30000);
    s_assert_output (consumer, warned, "no warning about the wrong bus key");
    cr_assert_eq (kill (consumer->pid, SIGINT), 0);
    status = s_consumer_wait_exit (consumer, 20000);
    s_assert_output (consumer, status != -1 && WIFEXITED (status) && WEXITSTATUS (status) == 0,
                     "Ctrl-C did not end the consumer with status 0 (status %d)", status);
    s_assert_output (consumer, !s_consumer_has_line (consumer, "Traceback"), "a traceback on Ctrl-C");

    s_consumer_destroy (&consumer);
    zstr_free (&model_cert);
    zstr_free (&secret_path);
    zstr_free (&path);
    zcert_destroy (&stranger);
    ep_proc_destroy (&bus);
}

Test (python_consumer, python_unit_tests_pass, .timeout = 60)
{
    char *out = NULL;
    int rc = ep_run ("PYTHONDONTWRITEBYTECODE=1 EP_DESCRIPTOR_SET='" EP_DESCRIPTOR_SET "' "
                     PYTHON " '" EXAMPLES "/test_edgeplane_consumer.py' -v 2>&1", &out);
    cr_assert_eq (rc, 0, "python unit tests failed:\n%s", out);
    //  They ran, rather than being skipped for want of the descriptor set.
    cr_assert_null (strstr (out, "skipped"), "%s", out);
    free (out);
}
