/*  ep_stack.c: the fixture the integration and chaos suites share (ep_stack.h). */
#include <criterion/criterion.h>
#include "ep_stack.h"
#include "ep_codec.h"
#include "ep_keys.h"
#include "ep_pki.h"
#include "ep_pki_tls.h"
#include "ep_rpc_client.h"
#include "ep_etcd_cluster.h"
#include <ctype.h>
#include <signal.h>
#include <stdarg.h>

#define MAX_ENV 24

//  One listener of a service: the option and the variable that place it,
//  the ready file's name for it, and the variable clients reach it by.
typedef struct {
    const char *option;         //  "--pub-listen"; NULL ends the list
    const char *env;            //  "EDGEPLANE_BUS_PUB_LISTEN"
    const char *endpoint;       //  "pub"
    const char *client;         //  "EDGEPLANE_BUS_PUB", or NULL (none)
    bool zmq;                   //  a ZeroMQ endpoint (tcp://), else host:port
} s_listener_t;

//  The services the stack starts by name, in start order.
static const struct {
    const char *name;           //  "bus": edgeplane-bus
    s_listener_t listeners [3]; //  what it listens on, besides HTTP
} s_services [] = {
    { "bus", { { "--pub-listen", "EDGEPLANE_BUS_PUB_LISTEN", "pub", "EDGEPLANE_BUS_PUB", true },
               { "--sub-listen", "EDGEPLANE_BUS_SUB_LISTEN", "sub", "EDGEPLANE_BUS_SUB", true } } },
    { "model", { { "--listen", "EDGEPLANE_MODEL_LISTEN", "api", "EDGEPLANE_MODEL_API", true } } },
    { "terminators", { { "--listen", "EDGEPLANE_TERMINATORS_LISTEN", "api", "EDGEPLANE_TERMINATORS_API", true } } },
    { "reaper", { { "--listen", "EDGEPLANE_REAPER_LISTEN", "api", "EDGEPLANE_REAPER_API", true } } },
    { "watchdog", { { "--listen", "EDGEPLANE_WATCHDOG_LISTEN", "api", "EDGEPLANE_WATCHDOG_API", true },
                    { "--channel-listen", "EDGEPLANE_CHANNEL_LISTEN", "channel", NULL, false } } },
    { "console", { { NULL } } },        //  HTTP only
};
#define SERVICES    EP_COUNT (s_services)
#define BUS         0
#define MODEL       1

struct _ep_stack_t {
    char *dir;                  //  the data dir (removed at the end)
    char *keys;                 //  <dir>/keys
    bool stable;                //  services on fixed ports (EP_STACK_STABLE)
    bool exported;              //  the environment is in this process's too
    ep_proc_t *services [SERVICES]; //  by s_services index; NULL while not running
    int http_ports [SERVICES];  //  stable: each service's HTTP port
    char *env [MAX_ENV + 1];    //  NAME=value, NULL-terminated
    zcert_t *operator_cert;     //  for model calls, once needed
    zcert_t *subscriber_cert;   //  for subscribers, once needed
    ep_rpc_client_t *modelc;    //  to the model, once needed
    zlistx_t *subscribers;      //  ep_subscriber_t, ours to destroy
    zlistx_t *kept;             //  ep_proc_t a test handed us, to stop first
};

static void
s_proc_destroy (void **item)
{
    ep_proc_destroy ((ep_proc_t **) item);
}

static void
s_subscriber_destroy (void **item)
{
    ep_subscriber_destroy ((ep_subscriber_t **) item);
}

//  Every listener and HTTP port of every service, chosen once, into the
//  environment.
static void
s_stable_ports (ep_stack_t *self)
{
    size_t count = SERVICES;
    for (size_t i = 0; i < SERVICES; i++)
        for (const s_listener_t *l = s_services [i].listeners; l->option; l++)
            count++;
    int ports [count];
    ep_test_stable_ports (ports, count);
    size_t next = 0;
    for (size_t i = 0; i < SERVICES; i++) {
        self->http_ports [i] = ports [next++];
        for (const s_listener_t *l = s_services [i].listeners; l->option; l++) {
            int port = ports [next++];
            const char *scheme = l->zmq? "tcp://": "";
            ep_stack_setenv (self, l->env, "%s127.0.0.1:%d", scheme, port);
            if (l->client)
                ep_stack_setenv (self, l->client, "%s127.0.0.1:%d", scheme, port);
        }
    }
    //  For services a launcher starts with this environment: they share
    //  the variable, so the kernel chooses (their ready files say where).
    ep_stack_setenv (self, "EDGEPLANE_HTTP_LISTEN", "127.0.0.1:0");
}

ep_stack_t *
ep_stack_new (const char *tag)
{
    return ep_stack_new_with (tag, 0);
}

ep_stack_t *
ep_stack_new_with (const char *tag, int flags)
{
    signal (SIGPIPE, SIG_IGN);          //  test clients write to closed sockets too
    zsys_init ();                       //  before any thread opens a socket
    ep_stack_t *self = (ep_stack_t *) zmalloc (sizeof (ep_stack_t));
    self->dir = ep_tmpdir_new (tag);
    self->keys = zsys_sprintf ("%s/keys", self->dir);
    self->stable = (flags & EP_STACK_STABLE) != 0;
    self->subscribers = zlistx_new ();
    zlistx_set_destructor (self->subscribers, s_subscriber_destroy);
    self->kept = zlistx_new ();
    zlistx_set_destructor (self->kept, s_proc_destroy);
    ep_stack_setenv (self, "EDGEPLANE_KEYS_DIR", "%s", self->keys);
    ep_stack_setenv (self, "EDGEPLANE_DATA_DIR", "%s", self->dir);
    if (self->stable)
        s_stable_ports (self);
    if (flags & EP_STACK_ENV_ONLY)
        return self;
    char err [512];
    cr_assert_eq (ep_keys_init (self->keys, false, err, sizeof err), 0, "%s", err);
    cr_assert_eq (ep_pki_init (self->keys, false, err, sizeof err), 0, "%s", err);
    ep_stack_start (self, "bus", 10000);
    ep_stack_start (self, "model", 10000);
    return self;
}

void
ep_stack_destroy (ep_stack_t **self_p)
{
    ep_stack_t *self = *self_p;
    if (!self)
        return;
    zlistx_destroy (&self->kept);
    zlistx_destroy (&self->subscribers);
    ep_rpc_client_destroy (&self->modelc);
    for (size_t i = SERVICES; i-- > 0; )
        ep_proc_destroy (&self->services [i]);
    zcert_destroy (&self->operator_cert);
    zcert_destroy (&self->subscriber_cert);
    for (size_t i = 0; i < MAX_ENV; i++) {
        if (self->exported && self->env [i]) {
            char *name = strdup (self->env [i]);
            *strchr (name, '=') = 0;
            unsetenv (name);
            free (name);
        }
        zstr_free (&self->env [i]);
    }
    zstr_free (&self->keys);
    ep_tmpdir_remove (&self->dir);
    free (self);
    *self_p = NULL;
}

const char *
ep_stack_dir (ep_stack_t *self)
{
    return self->dir;
}

const char *
ep_stack_keys (ep_stack_t *self)
{
    return self->keys;
}

ep_proc_t *
ep_stack_bus (ep_stack_t *self)
{
    return self->services [BUS];
}

ep_proc_t *
ep_stack_model (ep_stack_t *self)
{
    return self->services [MODEL];
}

const char *const *
ep_stack_env (ep_stack_t *self)
{
    return (const char *const *) self->env;
}

//  The index of name's entry in the environment, or of its end.
static size_t
s_env_index (ep_stack_t *self, const char *name)
{
    size_t len = strlen (name), i = 0;
    while (self->env [i] && !(strncmp (self->env [i], name, len) == 0 && self->env [i][len] == '='))
        i++;
    return i;
}

const char *
ep_stack_getenv (ep_stack_t *self, const char *name)
{
    const char *entry = self->env [s_env_index (self, name)];
    return entry? entry + strlen (name) + 1: NULL;
}

void
ep_stack_setenv (ep_stack_t *self, const char *name, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *value = zsys_vprintf (format, args);
    va_end (args);
    char *entry = zsys_sprintf ("%s=%s", name, value);
    free (value);
    size_t i = s_env_index (self, name);
    cr_assert_lt (i, (size_t) MAX_ENV, "more than %d variables in the stack's environment", MAX_ENV);
    zstr_free (&self->env [i]);
    self->env [i] = entry;
}

void
ep_stack_unsetenv (ep_stack_t *self, const char *name)
{
    size_t i = s_env_index (self, name);
    if (!self->env [i])
        return;
    zstr_free (&self->env [i]);
    for (; self->env [i + 1]; i++)      //  close the gap: the list ends at the first NULL
        self->env [i] = self->env [i + 1];
    self->env [i] = NULL;
}

void
ep_stack_export (ep_stack_t *self)
{
    for (size_t i = 0; self->env [i]; i++) {
        char *name = strdup (self->env [i]);
        char *value = strchr (name, '=');
        *value++ = 0;
        setenv (name, value, 1);
        free (name);
    }
    self->exported = true;
}

static size_t
s_service_index (const char *name)
{
    for (size_t i = 0; i < SERVICES; i++)
        if (streq (s_services [i].name, name))
            return i;
    cr_assert_fail ("ep_stack has no service \"%s\": give bus, model, terminators, reaper, watchdog or console", name);
    return 0;
}

//  Spawns service index: listeners as the environment says on a stable
//  stack, else the kernel's; HTTP on its own port, which the environment
//  cannot give.
static ep_proc_t *
s_spawn (ep_stack_t *self, size_t index)
{
    const char *name = s_services [index].name;
    if (self->services [index])
        free (ep_stack_kill (self, name));
    const char *args [2 * EP_COUNT (s_services [0].listeners) + 3];
    size_t n = 0;
    if (!self->stable)
        for (const s_listener_t *l = s_services [index].listeners; l->option; l++) {
            args [n++] = l->option;
            args [n++] = l->zmq? "tcp://127.0.0.1:*": "127.0.0.1:0";
        }
    char http [32];
    snprintf (http, sizeof http, "127.0.0.1:%d", self->http_ports [index]);
    args [n++] = "--http-listen";
    args [n++] = http;
    args [n] = NULL;
    char binary [64];
    snprintf (binary, sizeof binary, "edgeplane-%s", name);
    self->services [index] = ep_proc_spawn (binary, args, ep_stack_env (self));
    cr_assert_not_null (self->services [index], "%s could not be spawned", binary);
    return self->services [index];
}

ep_proc_t *
ep_stack_spawn (ep_stack_t *self, const char *name)
{
    cr_assert (self->stable, "ep_stack_spawn needs a stable stack (EP_STACK_STABLE): on kernel-chosen "
               "ports the environment follows a service once it is ready; use ep_stack_start");
    return s_spawn (self, s_service_index (name));
}

ep_proc_t *
ep_stack_start (ep_stack_t *self, const char *name, int timeout_ms)
{
    size_t index = s_service_index (name);
    ep_proc_t *proc = s_spawn (self, index);
    if (ep_proc_wait_ready (proc, timeout_ms) != 0) {
        char *log = ep_proc_log (proc);
        cr_assert_fail ("the %s did not start: %s", name, log? log: "");
    }
    if (!self->stable)
        for (const s_listener_t *l = s_services [index].listeners; l->option; l++)
            if (l->client)
                ep_stack_setenv (self, l->client, "%s", ep_proc_connect_endpoint (proc, l->endpoint));
    if (index == MODEL)
        ep_rpc_client_destroy (&self->modelc);      //  a new one finds it where it is now
    return proc;
}

char *
ep_stack_kill (ep_stack_t *self, const char *name)
{
    ep_proc_t **proc = &self->services [s_service_index (name)];
    cr_assert_not_null (*proc, "%s is not running", name);
    ep_proc_signal (*proc, SIGKILL);    //  fails only for one already reaped
    cr_assert_neq (ep_proc_wait_exit (*proc, 10000), -1, "%s survived SIGKILL", name);
    char *log = ep_proc_log (*proc);
    ep_proc_destroy (proc);
    return log;
}

ep_proc_t *
ep_stack_service (ep_stack_t *self, const char *name)
{
    return self->services [s_service_index (name)];
}

void
ep_stack_keep (ep_stack_t *self, ep_proc_t *proc)
{
    zlistx_add_end (self->kept, proc);
}

//  The certificate name from the keys, loaded into *cert_p once.
static zcert_t *
s_cert (const char *keys, const char *name, zcert_t **cert_p)
{
    if (!*cert_p)
        *cert_p = ep_keys_load (keys, name);
    cr_assert_not_null (*cert_p, "no %s certificate in %s", name, keys);
    return *cert_p;
}

Ep__ModelReply *
ep_stack_model_call (ep_stack_t *self, Ep__ModelRequest *request)
{
    if (!self->modelc) {
        cr_assert_not_null (self->services [MODEL], "the model is not running");
        char *key = ep_keys_public_txt (self->keys, "model");
        self->modelc = ep_rpc_client_new (ep_proc_connect_endpoint (self->services [MODEL], "api"),
                                          s_cert (self->keys, "operator", &self->operator_cert), key);
        free (key);
        cr_assert_not_null (self->modelc);
    }
    char err [256];
    Ep__ModelReply *reply = ep_rpc_call (self->modelc, request, &ep__model_reply__descriptor, 10000, 3,
                                         err, sizeof err);
    cr_assert_not_null (reply, "the model did not answer: %s", err);
    return reply;
}

uint64_t
ep_stack_model_write (ep_stack_t *self, Ep__ModelWrite *write)
{
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.op_case = EP__MODEL_REQUEST__OP_WRITE;
    request.write = write;
    Ep__ModelReply *reply = ep_stack_model_call (self, &request);
    cr_assert_eq (reply->status->code, EP__STATUS__CODE__OK, "%s", reply->status->message);
    uint64_t revision = reply->revision;
    ep__model_reply__free_unpacked (reply, NULL);
    return revision;
}

Ep__ModelWrite *
ep_entity_write (ep_entity_write_t *self, Ep__ModelWrite__Op op, Ep__Entity__KindCase kind, void *body)
{
    ep__entity__init (&self->entity);
    self->entity.kind_case = kind;
    switch (kind) {
        case EP__ENTITY__KIND_ROUTER: self->entity.router = (Ep__Router *) body; break;
        case EP__ENTITY__KIND_SERVICE: self->entity.service = (Ep__Service *) body; break;
        case EP__ENTITY__KIND_IDENTITY: self->entity.identity = (Ep__Identity *) body; break;
        case EP__ENTITY__KIND_CONTROLLER: self->entity.controller = (Ep__Controller *) body; break;
        default: EP_ASSERT (!"an entity kind");
    }
    ep__model_write__init (&self->write);
    self->write.has_op = true;
    self->write.op = op;
    self->write.entity = &self->entity;
    return &self->write;
}

uint64_t
ep_stack_create_service (ep_stack_t *self, const char *id)
{
    Ep__Service service = EP__SERVICE__INIT;
    service.id = (char *) id;
    ep_entity_write_t write;
    return ep_stack_model_write (self, ep_entity_write (&write, EP__MODEL_WRITE__OP__CREATE,
                                                        EP__ENTITY__KIND_SERVICE, &service));
}

uint64_t
ep_stack_router_write (ep_stack_t *self, Ep__ModelWrite__Op op, const char *id,
                       const char *const *services, size_t count)
{
    Ep__HostedService hosted [count + 1];
    Ep__HostedService *list [count + 1];
    for (size_t i = 0; i < count; i++) {
        ep__hosted_service__init (&hosted [i]);
        hosted [i].service_id = (char *) services [i];
        list [i] = &hosted [i];
    }
    Ep__Router router = EP__ROUTER__INIT;
    router.id = (char *) id;
    router.n_hosted = count;
    router.hosted = list;
    ep_entity_write_t entity;
    Ep__ModelWrite *write = ep_entity_write (&entity, op, EP__ENTITY__KIND_ROUTER, &router);
    //  An update replaces the fields it sets; an empty list sets nothing,
    //  so un-hosting everything says so.
    char *clear [] = { "hosted" };
    if (op == EP__MODEL_WRITE__OP__UPDATE && count == 0) {
        write->n_clear = 1;
        write->clear = clear;
    }
    return ep_stack_model_write (self, write);
}

uint64_t
ep_stack_delete_router (ep_stack_t *self, const char *id)
{
    Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
    write.has_op = write.has_type = true;
    write.op = EP__MODEL_WRITE__OP__DELETE;
    write.type = EP__ENTITY_TYPE__ENTITY_ROUTER;
    write.id = (char *) id;
    return ep_stack_model_write (self, &write);
}

SSL_CTX *
ep_stack_tls_client (ep_stack_t *self, const char *role, const char *id)
{
    char err [512];
    cr_assert_eq (ep_pki_issue (self->keys, role, id, self->dir, 30, err, sizeof err), 0, "%s", err);
    char *cert = zsys_sprintf ("%s/%s.crt", self->dir, id);
    char *key = zsys_sprintf ("%s/%s.key", self->dir, id);
    char *ca = zsys_sprintf ("%s/ca.crt", self->dir);
    SSL_CTX *ctx = ep_pki_client_ctx (cert, key, ca, err, sizeof err);
    cr_assert_not_null (ctx, "%s", err);
    free (cert);
    free (key);
    free (ca);
    return ctx;
}

ep_subscriber_t *
ep_stack_subscribe (ep_stack_t *self, const char *prefix)
{
    cr_assert_not_null (self->services [BUS], "the bus is not running");
    char *bus_key = ep_keys_public_txt (self->keys, "bus");
    ep_subscriber_t *subscriber = ep_subscriber_new (ep_proc_connect_endpoint (self->services [BUS], "sub"),
                                                     s_cert (self->keys, "subscriber", &self->subscriber_cert),
                                                     bus_key,
                                                     EP_CODEC_DEFAULT_CAP, NULL, NULL);
    free (bus_key);
    cr_assert_not_null (subscriber);
    ep_subscriber_subscribe (subscriber, prefix);
    zlistx_add_end (self->subscribers, subscriber);
    return subscriber;
}

int
ep_stack_await_resubscribed (ep_stack_t *self, ep_eventlog_t *log, int timeout_ms)
{
    int64_t deadline = ep_mono_ms () + timeout_ms;
    for (int n = 0; ep_mono_ms () < deadline; n++) {
        char id [32];
        snprintf (id, sizeof id, "probe%d", n);
        ep_stack_create_service (self, id);
        if (ep_eventlog_await_event (log, "entityChange.service.created", ep_eventlog_match_id, id, 1000))
            return 0;
    }
    return -1;
}

Ep__Status__Code
ep_stack_reaper_call (ep_stack_t *self, zcert_t *cert, Ep__SessionRequest *request,
                      char *message, size_t size, size_t *sessions)
{
    char *key = ep_keys_public_txt (ep_stack_keys (self), "reaper");
    ep_rpc_client_t *client = ep_rpc_client_new (ep_stack_getenv (self, "EDGEPLANE_REAPER_API"), cert, key);
    free (key);
    char err [256];
    Ep__SessionReply *reply = (Ep__SessionReply *) ep_rpc_call (
        client, request, &ep__session_reply__descriptor, 10000 * EP_TEST_SLOWDOWN, 3, err, sizeof err);
    ep_rpc_client_destroy (&client);
    cr_assert_not_null (reply, "%s", err);
    Ep__Status__Code code = reply->status->code;
    if (message)
        snprintf (message, size, "%s", reply->status->message? reply->status->message: "");
    if (sessions)
        *sessions = reply->n_sessions;
    ep__session_reply__free_unpacked (reply, NULL);
    return code;
}

void
ep_session_open_fill (Ep__SessionRequest *request, Ep__Session *session, const char *router_id, const char *id)
{
    ep__session__init (session);
    session->id = (char *) id;
    session->identity_id = "i1";
    session->service_id = "svc";
    session->has_type = true;
    session->type = EP__SESSION_TYPE__DIAL;
    ep__session_request__init (request);
    request->router_id = (char *) router_id;
    request->op_case = EP__SESSION_REQUEST__OP_OPEN;
    request->open = session;
}

void
ep_stack_sharded_env (ep_stack_t *self, const char *service, const char *prefix, int shards, int ttl_ms)
{
    const char *endpoints = ep_etcd_cluster_endpoints ();
    cr_assert (endpoints, "no etcd cluster: run this suite through ctest (fixture etcd_cluster)");
    char store [64], ttl [64];
    snprintf (store, sizeof store, "EDGEPLANE_%s_STORE", service);
    snprintf (ttl, sizeof ttl, "EDGEPLANE_%s_LEASE_TTL", service);
    for (char *c = store; *c; c++)
        *c = (char) toupper ((unsigned char) *c);
    for (char *c = ttl; *c; c++)
        *c = (char) toupper ((unsigned char) *c);
    ep_stack_setenv (self, store, "etcd");
    ep_stack_setenv (self, "EDGEPLANE_ETCD_ENDPOINTS", "%s", endpoints);
    ep_stack_setenv (self, "EDGEPLANE_ETCD_PREFIX", "%s", prefix);
    ep_stack_setenv (self, "EDGEPLANE_SHARDS", "%d", shards);
    ep_stack_setenv (self, ttl, "%dms", ttl_ms);
}

bool
ep_shards_split (ep_proc_t **instances, size_t n, const char *service, int shards)
{
    char metric [96];
    snprintf (metric, sizeof metric, "edgeplane_%s_shards_owned", service);
    double total = 0;
    bool each = true;
    for (size_t i = 0; i < n; i++) {
        char *page = instances [i]? ep_http_get (ep_proc_endpoint (instances [i], "http"), "/metrics"): NULL;
        double owned = page? ep_metric_value (page, metric): 0;
        free (page);
        each &= owned > 0;
        total += owned;
    }
    return each && total == shards;
}

Ep__Status__Code
ep_stack_session_open (ep_stack_t *self, zcert_t *cert, const char *router_id,
                       const char *id, char *message, size_t size)
{
    Ep__Session session;
    Ep__SessionRequest request;
    ep_session_open_fill (&request, &session, router_id, id);
    return ep_stack_reaper_call (self, cert, &request, message, size, NULL);
}
