/*  ep_stack.h: the fixture the integration and chaos suites share.

    A temporary data dir with the CURVE keys and a TLS CA, a real bus and a
    real model started on kernel-chosen 127.0.0.1 ports, the environment
    that points further services at them, model writes over RPC as the
    operator, and subscribers to the bus. Or the same on fixed ports, for
    a test that kills and restarts services: each comes back where its
    clients reconnect. Failures assert (Criterion): a fixture that cannot
    start is a failed test, with its reason.
*/
#ifndef EP_STACK_H_INCLUDED
#define EP_STACK_H_INCLUDED

#include "ep_test.h"
#include "ep_subscriber.h"
#include "ep_eventlog.h"
#include "model.pb-c.h"
#include "sessions.pb-c.h"
#include <openssl/ssl.h>

typedef struct _ep_stack_t ep_stack_t;

//  Creates the dir (tag names it), the keys and CA, and starts bus and model.
ep_stack_t *
    ep_stack_new (const char *tag);

//  Flags for ep_stack_new_with, or-ed.
//
//  EP_STACK_STABLE: every service on fixed ports, for a test that restarts
//  them. Each listener (the bus's pub and sub, the model's, terminators',
//  reaper's and watchdog's APIs, the watchdog's control channel) and each
//  service's HTTP port is chosen once below the ephemeral range
//  (ep_test_stable_ports). The environment says where each listens
//  (EDGEPLANE_*_LISTEN) and where clients connect, so a service restarted
//  by ep_stack_start or ep_stack_spawn, or by a launcher the test started
//  with that environment (edgeplane up), comes back where its clients
//  reconnect. One EDGEPLANE_HTTP_LISTEN cannot give each service its own
//  port: it is 127.0.0.1:0 there, and the stack passes a service it starts
//  its own.
//
//  EP_STACK_ENV_ONLY: the dir and the environment only; no keys, no CA, no
//  bus, no model: for a test whose launcher makes and starts them
//  (edgeplane up makes the keys on its first run).
#define EP_STACK_STABLE     1
#define EP_STACK_ENV_ONLY   2

//  Like ep_stack_new, as flags say.
ep_stack_t *
    ep_stack_new_with (const char *tag, int flags);

//  Stops what the test handed it, drops the subscribers, stops the
//  services it started (last started first), removes the dir.
void
    ep_stack_destroy (ep_stack_t **self_p);

const char *
    ep_stack_dir (ep_stack_t *self);
const char *
    ep_stack_keys (ep_stack_t *self);

//  ep_stack_service (self, "bus") and (self, "model").
ep_proc_t *
    ep_stack_bus (ep_stack_t *self);
ep_proc_t *
    ep_stack_model (ep_stack_t *self);

//  The environment for a service: EDGEPLANE_KEYS_DIR, _DATA_DIR, _BUS_PUB,
//  _BUS_SUB, _MODEL_API (on a stable stack every listener's variables and
//  EDGEPLANE_HTTP_LISTEN too), then what ep_stack_setenv added;
//  NULL-terminated, valid until the next ep_stack_setenv.
const char *const *
    ep_stack_env (ep_stack_t *self);

//  The value of name in that environment, or NULL; valid until name is set
//  again (on a stable stack the stack never sets a listener's again).
const char *
    ep_stack_getenv (ep_stack_t *self, const char *name);

//  Sets name=value (printf-style) in that environment, replacing any.
void
    ep_stack_setenv (ep_stack_t *self, const char *name, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

//  Removes name from that environment, if there.
void
    ep_stack_unsetenv (ep_stack_t *self, const char *name);

//  Sets that environment, as it is now, in this process too, for the CLI
//  runs a test makes (they inherit it); destroy takes it out again.
void
    ep_stack_export (ep_stack_t *self);

//  The services the stack starts by name: "bus", "model", "terminators",
//  "reaper", "watchdog" and "console" (edgeplane-<name>), with its environment. On a
//  stable stack they listen where the environment says, HTTP on their own
//  port; otherwise on kernel-chosen ports, which the environment then
//  points at (clients made before, subscribers for one, do not follow a
//  restart there).

//  Starts name, waits up to timeout_ms for it to be ready and asserts it
//  was (with its log). One already running is SIGKILLed first: a restart.
//  The stack owns it and stops it at destroy.
ep_proc_t *
    ep_stack_start (ep_stack_t *self, const char *name, int timeout_ms);

//  The same on a stable stack without waiting, for a test that keeps
//  working while it comes up (ep_proc_wait_ready says when it is ready).
ep_proc_t *
    ep_stack_spawn (ep_stack_t *self, const char *name);

//  SIGKILLs name, reaps it (asserting it died within 10 s) and forgets it.
//  Returns what it wrote to stderr and stdout, for a failure report
//  (caller frees).
char *
    ep_stack_kill (ep_stack_t *self, const char *name);

//  name as last started, or NULL (not started, or killed).
ep_proc_t *
    ep_stack_service (ep_stack_t *self, const char *name);

//  Hands proc (a service a test started) to the stack, which stops it
//  first at destroy, even when an assertion ended the test early.
void
    ep_stack_keep (ep_stack_t *self, ep_proc_t *proc);

//  A ModelWrite that creates or updates one entity, with the Entity it
//  points at, on the caller's stack: the builder the suites share.
typedef struct {
    Ep__ModelWrite write;       //  the write (what requests point at)
    Ep__Entity entity;          //  the entity it writes
} ep_entity_write_t;

//  Fills self to write (op: CREATE or UPDATE) body, an Ep__Router,
//  Ep__Service, Ep__Identity or Ep__Controller as kind says; returns
//  &self->write.
Ep__ModelWrite *
    ep_entity_write (ep_entity_write_t *self, Ep__ModelWrite__Op op, Ep__Entity__KindCase kind, void *body);

//  Sends request (with a fresh request id unless one is set, as
//  ep_rpc_call) to the model as the operator and returns the reply,
//  whatever its status (caller frees).
Ep__ModelReply *
    ep_stack_model_call (ep_stack_t *self, Ep__ModelRequest *request);

//  One write, which must succeed; returns its revision.
uint64_t
    ep_stack_model_write (ep_stack_t *self, Ep__ModelWrite *write);

//  Writes of the common kinds, each of which must succeed; the revision.
//  A router write creates (op CREATE) or replaces (op UPDATE) the router
//  hosting services (count 0 on UPDATE: none).
uint64_t
    ep_stack_create_service (ep_stack_t *self, const char *id);

//  Creates services (probe0, probe1, ...) until log, a subscriber of
//  entityChange, delivers one's creation: log is back on a restarted bus.
//  0, or -1 after timeout_ms.
int
    ep_stack_await_resubscribed (ep_stack_t *self, ep_eventlog_t *log, int timeout_ms);
uint64_t
    ep_stack_router_write (ep_stack_t *self, Ep__ModelWrite__Op op, const char *id,
                           const char *const *services, size_t count);
uint64_t
    ep_stack_delete_router (ep_stack_t *self, const char *id);

//  Issues a certificate bundle for role ("router", "client", "ctrl") and
//  id into the stack's dir (which holds ca.crt) and returns a TLS client
//  context with it (caller frees with SSL_CTX_free).
SSL_CTX *
    ep_stack_tls_client (ep_stack_t *self, const char *role, const char *id);

//  A subscriber (role subscriber) to topics starting with prefix ("" for
//  all). The stack destroys it.
ep_subscriber_t *
    ep_stack_subscribe (ep_stack_t *self, const char *prefix);

//  Sends request to the stack's reaper as cert (3 attempts); asserts a
//  reply came. Returns its status code; its message into message (if not
//  NULL), its sessions counted into *sessions (if not NULL).
Ep__Status__Code
    ep_stack_reaper_call (ep_stack_t *self, zcert_t *cert, Ep__SessionRequest *request,
                          char *message, size_t size, size_t *sessions);

//  Fills request, with session as its body, to open session id (a dial
//  of service "svc" by identity "i1") on router_id; no request id.
void
    ep_session_open_fill (Ep__SessionRequest *request, Ep__Session *session, const char *router_id,
                          const char *id);

//  Sets the environment for service ("terminators", "reaper") in the etcd
//  mode on the fixture cluster (ep_etcd_cluster_endpoints, which must be
//  up): its store, the endpoints, prefix, EDGEPLANE_SHARDS (shards) and
//  its lease TTL (ttl_ms).
void
    ep_stack_sharded_env (ep_stack_t *self, const char *service, const char *prefix, int shards, int ttl_ms);

//  True once the n instances of service (edgeplane-<service>, their
//  /metrics saying edgeplane_<service>_shards_owned) each own some of the
//  shards and together all of them. NULL or killed ones own none.
bool
    ep_shards_split (ep_proc_t **instances, size_t n, const char *service, int shards);

//  Opens session id (a dial of service "svc" by identity "i1") on router_id
//  as cert, through ep_stack_reaper_call.
Ep__Status__Code
    ep_stack_session_open (ep_stack_t *self, zcert_t *cert, const char *router_id,
                           const char *id, char *message, size_t size);

#endif
