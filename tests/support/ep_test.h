/*  ep_test.h: test plumbing shared by every suite.

    ep_proc spawns a real service process on kernel-chosen ports, waits for
    its ready file with a deadline, and kills it. ep_wait_until waits for a
    condition with a deadline. Nothing here sleeps as synchronisation.
*/
#ifndef EP_TEST_H_INCLUDED
#define EP_TEST_H_INCLUDED

#include "ep_prelude.h"

//  How much slower the code under test runs than in a plain build: timing
//  allowances that measure the machine, not a deadline the code itself must
//  keep, are multiplied by it. ASan + UBSan builds run two to three times
//  slower, more on a loaded 2-core machine.
#ifdef EP_SANITIZED
#   define EP_TEST_SLOWDOWN 3
#else
#   define EP_TEST_SLOWDOWN 1
#endif
#include "ep_ready.h"
#include "ep_rpc_client.h"
#include "common.pb-c.h"
#include <sys/types.h>

typedef struct _ep_proc_t ep_proc_t;

//  Starts EP_BIN_DIR/<binary> with args (NULL-terminated, may be NULL) plus
//  "--ready-file <dir>/<binary>.ready", and environment env (NULL-terminated
//  "NAME=value" strings added to this process's environment, may be NULL).
//  Waits up to timeout_ms for the ready file. Returns NULL (and kills the
//  child) if it did not become ready; its stderr is in ep_proc_log ().
ep_proc_t *
    ep_proc_start (const char *binary, const char *const *args,
                   const char *const *env, int timeout_ms);

//  Same, but the caller waits with ep_proc_wait_ready (for a child that is
//  expected to fail, for example).
ep_proc_t *
    ep_proc_spawn (const char *binary, const char *const *args, const char *const *env);

//  Waits up to timeout_ms for the ready file. Returns 0 or -1.
int
    ep_proc_wait_ready (ep_proc_t *self, int timeout_ms);

//  The endpoint named name in the ready file, or NULL.
const char *
    ep_proc_endpoint (ep_proc_t *self, const char *name);

//  The endpoint named name, rewritten for a local client (0.0.0.0 -> 127.0.0.1).
//  Valid until the process is destroyed; safe from several threads at once.
const char *
    ep_proc_connect_endpoint (ep_proc_t *self, const char *name);

pid_t
    ep_proc_pid (ep_proc_t *self);

//  Sends sig to the process.
int
    ep_proc_signal (ep_proc_t *self, int sig);

//  Waits up to timeout_ms for the process to exit. Returns its wait status,
//  or -1 if it is still running.
int
    ep_proc_wait_exit (ep_proc_t *self, int timeout_ms);

//  What the process wrote to stderr and stdout so far (a file's contents).
char *
    ep_proc_log (ep_proc_t *self);

//  The path of its ready file (which it writes once ready).
const char *
    ep_proc_ready_path (ep_proc_t *self);

//  SIGKILLs the process if running, reaps it, removes its files.
void
    ep_proc_destroy (ep_proc_t **self_p);

//  A fresh temporary directory, removed recursively by ep_tmpdir_remove.
char *
    ep_tmpdir_new (const char *tag);
void
    ep_tmpdir_remove (char **path_p);

//  Waits until cond (arg) is true or timeout_ms passes; returns cond's last value.
bool
    ep_wait_until (bool (*cond) (void *arg), void *arg, int timeout_ms);

//  A plain TCP connection to 127.0.0.1 at the port of address (a ready
//  file's "127.0.0.1:port"), or -1; the caller closes it. For a peer that
//  says nothing (a stray) or sends bytes that are not TLS.
int
    ep_tcp_connect (const char *address);

//  The local address of socket fd as "ip:port" (what a server sees as
//  its remote address) into buf.
void
    ep_sock_name (int fd, char *buf, size_t size);

//  A free TCP port on 127.0.0.1 below the kernel's ephemeral range, for a
//  server that must come back on the same port after a restart: outgoing
//  connections (clients reconnecting meanwhile) take their source ports
//  from the ephemeral range, so they can never take this one.
int
    ep_test_stable_port (void);

//  count distinct such ports into ports (a stack of services on fixed ports).
void
    ep_test_stable_ports (int *ports, size_t count);

//  GETs path from an http://host:port base (a ready file's "http"
//  endpoint); returns the body of a 200 answer, or NULL. Caller frees.
char *
    ep_http_get (const char *base, const char *path);

//  The value of the sample `series` (name with labels, exactly as
//  rendered) in a Prometheus text page, or -1 if absent.
double
    ep_metric_value (const char *page, const char *series);

//  A full disk (issue 21): mounts a tmpfs of size ("4m") on dir/name
//  (created) and returns its path (caller frees; ep_small_disk_remove
//  unmounts), or NULL with why in why (the test then skips: it needs root).
char *
    ep_small_disk_new (const char *dir, const char *name, const char *size,
                       char *why, size_t why_size);
void
    ep_small_disk_remove (char **path_p);

//  Fills the filesystem holding path with the one file path until a write
//  fails: 0 if it failed with ENOSPC, -1 (errno) if not. unlink (path)
//  frees the space.
int
    ep_small_disk_fill (const char *path);

//  What /readyz of an http://host:port base answers, 200 or 503 (its
//  body: "ready\n", "not ready: ..."), "" if nothing. Caller frees.
char *
    ep_readyz (const char *base);

//  A reply's status code: OK when the reply carries none (the wire omits
//  a zero status).
Ep__Status__Code
    ep_status_code (const Ep__Status *status);

//  Runs a shell command; returns its exit status (or -1), output in *out if
//  out is not NULL (caller frees).
int
    ep_run (const char *command, char **out);

//  Sends request (an RPC request message: any with a string request_id)
//  through client and returns the reply (reply_desc's type; caller frees),
//  or NULL with why in err (err may be NULL). A request_id already set is
//  kept (a resend, a router's "<router>:<id>"); an empty one gets a fresh
//  id for the call and is empty again after it. Up to attempts sends,
//  timeout_ms each, as ep_rpc_client_call.
void *
    ep_rpc_call (ep_rpc_client_t *client, void *request, const ProtobufCMessageDescriptor *reply_desc,
                 int timeout_ms, int attempts, char *err, size_t errlen);

//  A seeded xorshift64* sequence: the same seed gives the same choices, so
//  a randomized test can be replayed from the seed it prints. *state must
//  not be 0.
uint64_t
    ep_rand_next (uint64_t *state);

//  A number in [0, n), n > 0, from the sequence.
int
    ep_rand_pick (uint64_t *state, int n);

#endif
