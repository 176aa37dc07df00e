/*  ep_stack.c: the fixture the integration suites share (ep_stack.h). */
#include <criterion/criterion.h>
#include "ep_stack.h"
#include "ep_codec.h"
#include "ep_keys.h"
#include "ep_pki.h"
#include "ep_rpc_client.h"
#include <signal.h>
#include <stdarg.h>

#define MAX_ENV 24

struct _ep_stack_t {
    char *dir;                  //  the data dir (removed at the end)
    char *keys;                 //  <dir>/keys
    ep_proc_t *bus;             //  edgeplane-bus
    ep_proc_t *model;           //  edgeplane-model
    char *env [MAX_ENV + 1];    //  NAME=value, NULL-terminated
    zcert_t *operator_cert;     //  for model calls
    zcert_t *subscriber_cert;   //  for subscribers
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

ep_stack_t *
ep_stack_new (const char *tag)
{
    signal (SIGPIPE, SIG_IGN);          //  test clients write to closed sockets too
    zsys_init ();                       //  before any thread opens a socket
    ep_stack_t *self = (ep_stack_t *) zmalloc (sizeof (ep_stack_t));
    self->dir = ep_tmpdir_new (tag);
    self->keys = zsys_sprintf ("%s/keys", self->dir);
    self->subscribers = zlistx_new ();
    zlistx_set_destructor (self->subscribers, s_subscriber_destroy);
    self->kept = zlistx_new ();
    zlistx_set_destructor (self->kept, s_proc_destroy);
    char err [512];
    cr_assert_eq (ep_keys_init (self->keys, false, err, sizeof err), 0, "%s", err);
    cr_assert_eq (ep_pki_init (self->keys, false, err, sizeof err), 0, "%s", err);
    ep_stack_setenv (self, "EDGEPLANE_KEYS_DIR", "%s", self->keys);
    ep_stack_setenv (self, "EDGEPLANE_DATA_DIR", "%s", self->dir);
    const char *bus_args [] = { "--pub-listen", "tcp://127.0.0.1:*", "--sub-listen", "tcp://127.0.0.1:*",
                                "--http-listen", "127.0.0.1:0", NULL };
    self->bus = ep_proc_start ("edgeplane-bus", bus_args, ep_stack_env (self), 10000);
    cr_assert_not_null (self->bus, "the bus did not start");
    ep_stack_setenv (self, "EDGEPLANE_BUS_PUB", "%s", ep_proc_connect_endpoint (self->bus, "pub"));
    ep_stack_setenv (self, "EDGEPLANE_BUS_SUB", "%s", ep_proc_connect_endpoint (self->bus, "sub"));
    const char *model_args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", "127.0.0.1:0", NULL };
    self->model = ep_proc_start ("edgeplane-model", model_args, ep_stack_env (self), 10000);
    cr_assert_not_null (self->model, "the model did not start");
    ep_stack_setenv (self, "EDGEPLANE_MODEL_API", "%s", ep_proc_connect_endpoint (self->model, "api"));
    self->operator_cert = ep_keys_load (self->keys, "operator");
    self->subscriber_cert = ep_keys_load (self->keys, "subscriber");
    cr_assert (self->operator_cert && self->subscriber_cert);
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
    ep_proc_destroy (&self->model);
    ep_proc_destroy (&self->bus);
    zcert_destroy (&self->operator_cert);
    zcert_destroy (&self->subscriber_cert);
    for (size_t i = 0; i < MAX_ENV; i++)
        zstr_free (&self->env [i]);
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
    return self->bus;
}

ep_proc_t *
ep_stack_model (ep_stack_t *self)
{
    return self->model;
}

const char *const *
ep_stack_env (ep_stack_t *self)
{
    return (const char *const *) self->env;
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
    size_t len = strlen (name), i = 0;
    while (self->env [i] && !(strncmp (self->env [i], name, len) == 0 && self->env [i][len] == '='))
        i++;
    cr_assert_lt (i, (size_t) MAX_ENV, "more than %d variables in the stack's environment", MAX_ENV);
    zstr_free (&self->env [i]);
    self->env [i] = entry;
}

void
ep_stack_unsetenv (ep_stack_t *self, const char *name)
{
    size_t len = strlen (name), i = 0;
    while (self->env [i] && !(strncmp (self->env [i], name, len) == 0 && self->env [i][len] == '='))
        i++;
    if (!self->env [i])
        return;
    zstr_free (&self->env [i]);
    for (; self->env [i + 1]; i++)      //  close the gap: the list ends at the first NULL
        self->env [i] = self->env [i + 1];
    self->env [i] = NULL;
}

void
ep_stack_keep (ep_stack_t *self, ep_proc_t *proc)
{
    zlistx_add_end (self->kept, proc);
}

Ep__ModelReply *
ep_stack_model_call (ep_stack_t *self, Ep__ModelRequest *request)
{
    if (!self->modelc) {
        char *key = ep_keys_public_txt (self->keys, "model");
        self->modelc = ep_rpc_client_new (ep_proc_connect_endpoint (self->model, "api"),
                                          self->operator_cert, key);
        free (key);
        cr_assert_not_null (self->modelc);
    }
    char id [33], err [256];
    ep_rpc_new_id (id);
    request->request_id = id;
    Ep__ModelReply *reply = (Ep__ModelReply *) ep_rpc_client_call (
        self->modelc, &request->base, id, &ep__model_reply__descriptor, 10000, 3, err, sizeof err);
    request->request_id = NULL;
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

uint64_t
ep_stack_create_service (ep_stack_t *self, const char *id)
{
    Ep__Service service = EP__SERVICE__INIT;
    service.id = (char *) id;
    Ep__Entity entity = EP__ENTITY__INIT;
    entity.kind_case = EP__ENTITY__KIND_SERVICE;
    entity.service = &service;
    Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
    write.has_op = true;
    write.op = EP__MODEL_WRITE__OP__CREATE;
    write.entity = &entity;
    return ep_stack_model_write (self, &write);
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
    Ep__Entity entity = EP__ENTITY__INIT;
    entity.kind_case = EP__ENTITY__KIND_ROUTER;
    entity.router = &router;
    Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
    write.has_op = true;
    write.op = op;
    write.entity = &entity;
    //  An update replaces the fields it sets; an empty list sets nothing,
    //  so un-hosting everything says so.
    char *clear [] = { "hosted" };
    if (op == EP__MODEL_WRITE__OP__UPDATE && count == 0) {
        write.n_clear = 1;
        write.clear = clear;
    }
    return ep_stack_model_write (self, &write);
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

ep_subscriber_t *
ep_stack_subscribe (ep_stack_t *self, const char *prefix)
{
    char *bus_key = ep_keys_public_txt (self->keys, "bus");
    ep_subscriber_t *subscriber = ep_subscriber_new (ep_proc_connect_endpoint (self->bus, "sub"),
                                                     self->subscriber_cert, bus_key,
                                                     EP_CODEC_DEFAULT_CAP, NULL, NULL);
    free (bus_key);
    cr_assert_not_null (subscriber);
    ep_subscriber_subscribe (subscriber, prefix);
    zlistx_add_end (self->subscribers, subscriber);
    return subscriber;
}
