/*  ep_test.c: spawning services and waiting with deadlines. */
#include "ep_test.h"
#include <sys/prctl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/inotify.h>
#include <poll.h>
#include <sys/wait.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sodium.h>
#include <unistd.h>

struct _ep_proc_t {
    pid_t pid;                  //  child pid, 0 once reaped
    int status;                 //  wait status once reaped
    char *dir;                  //  temporary directory for ready file and log
    char *ready_path;           //  the ready file
    char *log_path;             //  stdout + stderr of the child
    json_t *ready;              //  parsed ready file, once seen
    zhash_t *connectable;       //  name -> connectable endpoint (owned strings)
};

char *
ep_tmpdir_new (const char *tag)
{
    char *path = zsys_sprintf ("/tmp/edgeplane-test-%s-XXXXXX", tag);
    EP_ASSERT (mkdtemp (path));
    return path;
}

void
ep_tmpdir_remove (char **path_p)
{
    if (*path_p) {
        char *cmd = zsys_sprintf ("rm -rf '%s'", *path_p);
        EP_ASSERT (system (cmd) != -1);
        zstr_free (&cmd);
        zstr_free (path_p);
    }
}

bool
ep_wait_until (bool (*cond) (void *arg), void *arg, int timeout_ms)
{
    int64_t deadline = ep_mono_ms () + timeout_ms;
    while (!cond (arg)) {
        if (ep_mono_ms () >= deadline)
            return cond (arg);
        //  A short poll interval between checks of the condition; the
        //  deadline, not this interval, decides the outcome.
        poll (NULL, 0, 2);
    }
    return true;
}

ep_proc_t *
ep_proc_spawn (const char *binary, const char *const *args, const char *const *env)
{
    ep_proc_t *self = (ep_proc_t *) zmalloc (sizeof (ep_proc_t));
    self->dir = ep_tmpdir_new (binary);
    self->ready_path = zsys_sprintf ("%s/%s.ready", self->dir, binary);
    self->log_path = zsys_sprintf ("%s/%s.log", self->dir, binary);
    self->connectable = zhash_new ();
    zhash_autofree (self->connectable);

    char *path = zsys_sprintf ("%s/%s", EP_BIN_DIR, binary);
    const char *argv [64];
    size_t argc = 0;
    argv [argc++] = path;
    for (size_t i = 0; args && args [i]; i++) {
        EP_ASSERT (argc < EP_COUNT (argv) - 3);
        argv [argc++] = args [i];
    }
    argv [argc++] = "--ready-file";
    argv [argc++] = self->ready_path;
    argv [argc] = NULL;

    pid_t parent = getpid ();
    pid_t pid = fork ();
    EP_ASSERT (pid >= 0);
    if (pid == 0) {
        //  A test that dies (a crash, a timeout's SIGKILL) skips its
        //  teardown: its services go with it instead of living on as
        //  orphans holding ports and files. (Spawn from the thread that
        //  lives as long as the child: the signal follows that thread.)
        if (prctl (PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid () != parent)
            _exit (127);
        int fd = open (self->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2 (fd, 1);
            dup2 (fd, 2);
            close (fd);
        }
        for (size_t i = 0; env && env [i]; i++)
            putenv ((char *) env [i]);
        execv (path, (char *const *) argv);
        fprintf (stderr, "exec %s: %s\n", path, strerror (errno));
        _exit (127);
    }
    self->pid = pid;
    zstr_free (&path);
    return self;
}

//  Reaps the child if it has exited; true if it is gone.
static bool
s_reaped (ep_proc_t *self)
{
    if (self->pid == 0)
        return true;
    int status;
    if (waitpid (self->pid, &status, WNOHANG) == self->pid) {
        self->status = status;
        self->pid = 0;
        return true;
    }
    return false;
}

int
ep_proc_wait_ready (ep_proc_t *self, int timeout_ms)
{
    //  inotify on the directory wakes us when the ready file is renamed in;
    //  the deadline bounds the wait.
    int ifd = inotify_init1 (IN_CLOEXEC | IN_NONBLOCK);
    EP_ASSERT (ifd >= 0);
    EP_ASSERT (inotify_add_watch (ifd, self->dir, IN_MOVED_TO | IN_CLOSE_WRITE) >= 0);
    int64_t deadline = ep_mono_ms () + timeout_ms;
    int rc = -1;
    while (true) {
        self->ready = ep_ready_read (self->ready_path);
        if (self->ready) {
            //  Every connectable form now, once: ep_proc_connect_endpoint
            //  then only reads, and threads may call it at once.
            const char *name;
            json_t *bound;
            json_object_foreach (json_object_get (self->ready, "endpoints"), name, bound) {
                if (!json_is_string (bound))
                    continue;
                char *local = ep_endpoint_connectable (json_string_value (bound));
                zhash_update (self->connectable, name, local);
                zstr_free (&local);
            }
            rc = 0;
            break;
        }
        if (s_reaped (self))
            break;              //  died before it was ready
        int64_t left = deadline - ep_mono_ms ();
        if (left <= 0)
            break;
        struct pollfd pfd = { .fd = ifd, .events = POLLIN };
        //  Wake at least every 50 ms to notice a child that died.
        if (poll (&pfd, 1, left < 50? (int) left: 50) > 0) {
            char buf [4096];
            while (read (ifd, buf, sizeof buf) > 0)
                ;
        }
    }
    close (ifd);
    return rc;
}

ep_proc_t *
ep_proc_start (const char *binary, const char *const *args,
               const char *const *env, int timeout_ms)
{
    ep_proc_t *self = ep_proc_spawn (binary, args, env);
    if (ep_proc_wait_ready (self, timeout_ms) == 0)
        return self;
    char *log = ep_proc_log (self);
    fprintf (stderr, "ep_proc_start: %s not ready within %d ms; its output:\n%s\n",
             binary, timeout_ms, log? log: "(none)");
    zstr_free (&log);
    ep_proc_destroy (&self);
    return NULL;
}

const char *
ep_proc_ready_path (ep_proc_t *self)
{
    return self->ready_path;
}

const char *
ep_proc_endpoint (ep_proc_t *self, const char *name)
{
    return self->ready? ep_ready_endpoint (self->ready, name): NULL;
}

const char *
ep_proc_connect_endpoint (ep_proc_t *self, const char *name)
{
    //  A lookup only (the forms are made when the ready file is read): the
    //  benchmarks' client threads call this at once, and a zhash_update
    //  here freed the string another thread was reading (a double free
    //  that aborted model_bench once in CI).
    return (const char *) zhash_lookup (self->connectable, name);
}

pid_t
ep_proc_pid (ep_proc_t *self)
{
    return self->pid;
}

int
ep_proc_signal (ep_proc_t *self, int sig)
{
    return self->pid? kill (self->pid, sig): -1;
}

static bool
s_exited (void *arg)
{
    return s_reaped ((ep_proc_t *) arg);
}

int
ep_proc_wait_exit (ep_proc_t *self, int timeout_ms)
{
    return ep_wait_until (s_exited, self, timeout_ms)? self->status: -1;
}

char *
ep_proc_log (ep_proc_t *self)
{
    zfile_t *file = zfile_new (NULL, self->log_path);
    char *text = NULL;
    if (zfile_input (file) == 0) {
        zchunk_t *chunk = zfile_read (file, zfile_cursize (file), 0);
        if (chunk) {
            text = zchunk_strdup (chunk);
            zchunk_destroy (&chunk);
        }
    }
    zfile_destroy (&file);
    return text;
}

void
ep_proc_destroy (ep_proc_t **self_p)
{
    ep_proc_t *self = *self_p;
    if (!self)
        return;
    if (self->pid) {
        kill (self->pid, SIGKILL);
        waitpid (self->pid, &self->status, 0);
    }
    json_decref (self->ready);
    zhash_destroy (&self->connectable);
    ep_tmpdir_remove (&self->dir);
    zstr_free (&self->ready_path);
    zstr_free (&self->log_path);
    free (self);
    *self_p = NULL;
}

int
ep_run (const char *command, char **out)
{
    FILE *pipe = popen (command, "r");
    if (!pipe)
        return -1;
    zchunk_t *chunk = zchunk_new (NULL, 0);
    char buf [4096];
    size_t n;
    while ((n = fread (buf, 1, sizeof buf, pipe)) > 0)
        zchunk_extend (chunk, buf, n);
    int status = pclose (pipe);
    if (out)
        *out = zchunk_strdup (chunk);
    zchunk_destroy (&chunk);
    return status == -1? -1: WEXITSTATUS (status);
}

int
ep_test_stable_port (void)
{
    int low = 32768;
    FILE *range = fopen ("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (range) {
        if (fscanf (range, "%d", &low) != 1)
            low = 32768;
        fclose (range);
    }
    EP_ASSERT (low > 11000 && sodium_init () >= 0);
    for (int attempt = 0; attempt < 1000; attempt++) {
        int port = 10000 + (int) randombytes_uniform ((uint32_t) (low - 10000));
        int fd = socket (AF_INET, SOCK_STREAM, 0);
        EP_ASSERT (fd >= 0);
        struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons (port),
                                    .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
        int rc = bind (fd, (struct sockaddr *) &addr, sizeof addr);
        close (fd);
        if (rc == 0)
            return port;
    }
    EP_ASSERT (!"no free port below the ephemeral range");
    return -1;
}

void
ep_test_stable_ports (int *ports, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        bool unique;
        do {
            ports [i] = ep_test_stable_port ();
            unique = true;
            for (size_t j = 0; j < i; j++)
                unique &= ports [j] != ports [i];
        } while (!unique);
    }
}

char *
ep_http_get (const char *base, const char *path)
{
    int port = 0;
    const char *colon = strrchr (base, ':');
    if (!colon || sscanf (colon + 1, "%d", &port) != 1)
        return NULL;
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons (port),
                                .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
    struct timeval timeout = { .tv_sec = 5 };
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    char *body = NULL;
    if (connect (fd, (struct sockaddr *) &addr, sizeof addr) == 0) {
        char request [512];
        //  Host, as a browser sends it (the console checks it).
        int len = snprintf (request, sizeof request, "GET %s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\n\r\n", path, port);
        if (write (fd, request, len) == len) {
            zchunk_t *chunk = zchunk_new (NULL, 0);
            char buf [4096];
            ssize_t n;
            while ((n = read (fd, buf, sizeof buf)) > 0)
                zchunk_extend (chunk, buf, n);
            char *text = zchunk_strdup (chunk);
            zchunk_destroy (&chunk);
            char *start = text? strstr (text, "\r\n\r\n"): NULL;
            if (start && strncmp (text, "HTTP/1.", 7) == 0 && strncmp (text + 9, "200", 3) == 0)
                body = strdup (start + 4);
            free (text);
        }
    }
    close (fd);
    return body;
}

double
ep_metric_value (const char *page, const char *series)
{
    size_t len = strlen (series);
    for (const char *line = page; line && *line; ) {
        if (strncmp (line, series, len) == 0 && line [len] == ' ')
            return atof (line + len + 1);
        line = strchr (line, '\n');
        if (line)
            line++;
    }
    return -1;
}

uint64_t
ep_rand_next (uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 2685821657736338717ull;
}

int
ep_rand_pick (uint64_t *state, int n)
{
    return (int) (ep_rand_next (state) % (uint64_t) n);
}

void *
ep_rpc_call (ep_rpc_client_t *client, void *request, const ProtobufCMessageDescriptor *reply_desc,
             int timeout_ms, int attempts, char *err, size_t errlen)
{
    ProtobufCMessage *message = (ProtobufCMessage *) request;
    const ProtobufCFieldDescriptor *field =
        protobuf_c_message_descriptor_get_field_by_name (message->descriptor, "request_id");
    EP_ASSERT (field && field->type == PROTOBUF_C_TYPE_STRING);
    char **slot = (char **) ((char *) request + field->offset);
    char *given = *slot;
    char fresh [33];
    if (!given || !*given) {
        ep_rpc_new_id (fresh);
        *slot = fresh;
    }
    char scratch [256];
    if (!err) {
        err = scratch;
        errlen = sizeof scratch;
    }
    void *reply = ep_rpc_client_call (client, message, *slot, reply_desc, timeout_ms, attempts, err, errlen);
    *slot = given;
    return reply;
}

int
ep_tcp_connect (const char *address)
{
    const char *colon = strrchr (address, ':');
    if (!colon)
        return -1;
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) atoi (colon + 1)),
                                .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
    if (fd >= 0 && connect (fd, (struct sockaddr *) &addr, sizeof addr) != 0) {
        close (fd);
        fd = -1;
    }
    return fd;
}

void
ep_sock_name (int fd, char *buf, size_t size)
{
    struct sockaddr_in addr;
    socklen_t len = sizeof addr;
    EP_ASSERT (getsockname (fd, (struct sockaddr *) &addr, &len) == 0 && addr.sin_family == AF_INET);
    char ip [INET_ADDRSTRLEN];
    inet_ntop (AF_INET, &addr.sin_addr, ip, sizeof ip);
    snprintf (buf, size, "%s:%u", ip, (unsigned) ntohs (addr.sin_port));
}

char *
ep_small_disk_new (const char *dir, const char *name, const char *size, char *why, size_t why_size)
{
    if (geteuid () != 0) {
        snprintf (why, why_size, "mounting a small tmpfs needs root (run as root to test a full disk)");
        return NULL;
    }
    char *path = zsys_sprintf ("%s/%s", dir, name);
    char options [64];
    snprintf (options, sizeof options, "size=%s", size);
    if (mkdir (path, 0700) != 0 || mount ("tmpfs", path, "tmpfs", 0, options) != 0) {
        snprintf (why, why_size, "cannot mount a tmpfs on %s (%s): no full disk to test here",
                  path, strerror (errno));
        zstr_free (&path);
    }
    return path;
}

void
ep_small_disk_remove (char **path_p)
{
    if (*path_p) {
        umount2 (*path_p, MNT_DETACH);
        zstr_free (path_p);
    }
}

int
ep_small_disk_fill (const char *path)
{
    int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return -1;
    static char block [4096];
    while (write (fd, block, sizeof block) > 0)
        ;
    int error = errno;
    close (fd);
    errno = error;
    return error == ENOSPC? 0: -1;
}

char *
ep_readyz (const char *base)
{
    char *command = zsys_sprintf ("curl -s --max-time 5 %s/readyz", base);
    char *out = NULL;
    ep_run (command, &out);
    zstr_free (&command);
    return out? out: strdup ("");
}

Ep__Status__Code
ep_status_code (const Ep__Status *status)
{
    return status && status->has_code? status->code: EP__STATUS__CODE__OK;
}
