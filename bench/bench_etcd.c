/*  bench_etcd.c: the benchmarks' etcd member (bench_etcd.h). */
#include "bench_etcd.h"
#include "bench_util.h"
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#define START_MS    20000       //  how long a start may take
#define CALL_MS     10000       //  the client's timeout per call

struct _bench_etcd_t {
    pid_t pid;                  //  the member
    char endpoint [64];         //  its client URL
    ep_etcd_t *client;          //  a client of it
};

void
bench_etcd_done (void *arg, const ep_etcd_reply_t *reply, const char *error)
{
    bench_etcd_call_t *call = (bench_etcd_call_t *) arg;
    call->done = true;
    call->ok = reply && !reply->code && (reply->kind != EP_ETCD_TXN || reply->succeeded);
    call->revision = reply? reply->header.revision: 0;
    call->value_size = reply && reply->nkvs? reply->kvs [0].value_size: 0;
    call->nkvs = reply? reply->nkvs: 0;
    call->values_bytes = 0;
    for (size_t i = 0; i < call->nkvs; i++)
        call->values_bytes += reply->kvs [i].value_size;
    if (!call->ok)
        snprintf (call->error, sizeof call->error, "%s", reply? (reply->error? reply->error: "compare failed"):
                  error? error: "?");
}

bool
bench_etcd_wait (ep_etcd_t *etcd, bench_etcd_call_t *call, int timeout_ms)
{
    int64_t deadline = ep_mono_ms () + timeout_ms;
    while (!call->done && ep_mono_ms () < deadline)
        ep_etcd_wait (etcd, 50);
    return call->done;
}

void
bench_etcd_must (ep_etcd_t *etcd, bench_etcd_call_t *call)
{
    if (!bench_etcd_wait (etcd, call, 10000) || !call->ok)
        bench_die ("etcd: %s", call->done? call->error: "no answer in 10 s");
}

int64_t
bench_etcd_revision (ep_etcd_t *etcd)
{
    bench_etcd_call_t call = { 0 };
    ep_etcd_status (etcd, bench_etcd_done, &call);
    bench_etcd_must (etcd, &call);
    return call.revision;
}

bench_etcd_t *
bench_etcd_start (const char *dir, const int ports [2], int max_txn_ops)
{
    bench_etcd_t *self = (bench_etcd_t *) zmalloc (sizeof (bench_etcd_t));
    char peer [64], cluster [96], max_ops [32];
    snprintf (self->endpoint, sizeof self->endpoint, "http://127.0.0.1:%d", ports [0]);
    snprintf (peer, sizeof peer, "http://127.0.0.1:%d", ports [1]);
    snprintf (cluster, sizeof cluster, "bench=%s", peer);
    snprintf (max_ops, sizeof max_ops, "--max-txn-ops=%d", max_txn_ops);
    char *data = zsys_sprintf ("%s/etcd", dir);
    char *log = zsys_sprintf ("%s/etcd.log", dir);
    //  --logger=zap: Debian's 3.4.23 panics at start with its default logger.
    char *argv [] = { BENCH_ETCD_BIN, "--name", "bench", "--data-dir", data, "--logger=zap",
                      "--log-level=error", "--listen-client-urls", self->endpoint,
                      "--advertise-client-urls", self->endpoint, "--listen-peer-urls", peer,
                      "--initial-advertise-peer-urls", peer, "--initial-cluster", cluster, max_ops,
                      "--max-request-bytes=4194304", "--quota-backend-bytes=2147483648", NULL };
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init (&actions);
    posix_spawn_file_actions_addopen (&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2 (&actions, 1, 2);
    extern char **environ;
    int rc = posix_spawn (&self->pid, BENCH_ETCD_BIN, &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy (&actions);
    free (data);
    bool up = false;
    if (rc != 0) {
        fprintf (stderr, "cannot start %s: %s (apt-get install etcd-server)\n", BENCH_ETCD_BIN, strerror (rc));
        self->pid = 0;
    }
    else {
        char err [256];
        ep_etcd_config_t config = { .endpoints = self->endpoint, .timeout_ms = CALL_MS };
        self->client = ep_etcd_new (&config, err, sizeof err);
        EP_ASSERT (self->client);
        int64_t deadline = ep_mono_ms () + START_MS;
        while (!up && ep_mono_ms () < deadline) {
            bench_etcd_call_t call = { 0 };
            ep_etcd_status (self->client, bench_etcd_done, &call);
            up = bench_etcd_wait (self->client, &call, 1000) && call.ok;
        }
        if (!up)
            fprintf (stderr, "etcd did not answer at %s within %d s (its log: %s)\n",
                     self->endpoint, START_MS / 1000, log);
    }
    free (log);
    if (!up)
        bench_etcd_stop (&self, true);
    return self;
}

void
bench_etcd_stop (bench_etcd_t **self_p, bool hard)
{
    bench_etcd_t *self = *self_p;
    if (self) {
        ep_etcd_destroy (&self->client);
        if (self->pid > 0) {
            kill (self->pid, hard? SIGKILL: SIGTERM);
            waitpid (self->pid, NULL, 0);
        }
        free (self);
        *self_p = NULL;
    }
}

const char *
bench_etcd_endpoint (bench_etcd_t *self)
{
    return self->endpoint;
}

ep_etcd_t *
bench_etcd_client (bench_etcd_t *self)
{
    return self->client;
}

pid_t
bench_etcd_pid (bench_etcd_t *self)
{
    return self->pid;
}
