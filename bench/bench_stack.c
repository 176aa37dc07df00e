/*  bench_stack.c: the etcd benchmarks' services (bench_stack.h). */
#include "bench_stack.h"
#include "ep_codec.h"
#include "ep_keys.h"
#include <stdarg.h>

#define DATA_DIR    1           //  env [DATA_DIR] is EDGEPLANE_DATA_DIR (bench_stack_spawn swaps it)

void
bench_stack_setenv (bench_stack_t *self, const char *format, ...)
{
    EP_ASSERT (self->nenv + 1 < BENCH_STACK_ENV_MAX);
    va_list args;
    va_start (args, format);
    char *entry = zsys_vprintf (format, args);
    va_end (args);
    self->env [self->nenv++] = entry;
}

static ep_proc_t *
s_service (bench_stack_t *self, const char *binary, const char *const *args)
{
    ep_proc_t *proc = ep_proc_start (binary, args, (const char *const *) self->env, 10000);
    if (!proc)
        fprintf (stderr, "bench_stack: %s did not start\n", binary);
    return proc;
}

bench_stack_t *
bench_stack_start (const char *tag, const char *prefix, int shards, int max_txn_ops)
{
    bench_stack_t *self = (bench_stack_t *) zmalloc (sizeof (bench_stack_t));
    self->dir = ep_tmpdir_new (tag);
    self->keys = zsys_sprintf ("%s/keys", self->dir);
    char err [512];
    if (ep_keys_init (self->keys, false, err, sizeof err) != 0) {
        fprintf (stderr, "bench_stack: %s\n", err);
        bench_stack_stop (&self, true);
        return NULL;
    }
    int ports [2];
    ep_test_stable_ports (ports, 2);
    self->member = bench_etcd_start (self->dir, ports, max_txn_ops);
    bench_stack_setenv (self, "EDGEPLANE_KEYS_DIR=%s", self->keys);
    bench_stack_setenv (self, "EDGEPLANE_DATA_DIR=%s", self->dir);
    bench_stack_setenv (self, "EDGEPLANE_LOG_LEVEL=warn");
    const char *bus_args [] = { "--pub-listen", "tcp://127.0.0.1:*", "--sub-listen", "tcp://127.0.0.1:*",
                                "--http-listen", "127.0.0.1:0", NULL };
    if (self->member)
        self->bus = s_service (self, "edgeplane-bus", bus_args);
    if (self->bus) {
        bench_stack_setenv (self, "EDGEPLANE_BUS_PUB=%s", ep_proc_connect_endpoint (self->bus, "pub"));
        bench_stack_setenv (self, "EDGEPLANE_BUS_SUB=%s", ep_proc_connect_endpoint (self->bus, "sub"));
        const char *model_args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", "127.0.0.1:0", NULL };
        self->model = s_service (self, "edgeplane-model", model_args);
    }
    if (!self->model) {
        bench_stack_stop (&self, true);
        return NULL;
    }
    bench_stack_setenv (self, "EDGEPLANE_MODEL_API=%s", ep_proc_connect_endpoint (self->model, "api"));
    bench_stack_setenv (self, "EDGEPLANE_ETCD_ENDPOINTS=%s", bench_etcd_endpoint (self->member));
    bench_stack_setenv (self, "EDGEPLANE_ETCD_PREFIX=%s", prefix);
    bench_stack_setenv (self, "EDGEPLANE_SHARDS=%d", shards);
    bench_stack_setenv (self, "EDGEPLANE_ETCD_MAX_TXN_OPS=%d", max_txn_ops);
    self->operator_cert = ep_keys_load (self->keys, "operator");
    self->watchdog_cert = ep_keys_load (self->keys, "watchdog");
    char *model_key = ep_keys_public_txt (self->keys, "model");
    self->model_client = ep_rpc_client_new (ep_proc_connect_endpoint (self->model, "api"), self->operator_cert,
                                            model_key);
    free (model_key);
    return self;
}

ep_publisher_t *
bench_stack_publisher (bench_stack_t *self, const char *name)
{
    char *bus_key = ep_keys_public_txt (self->keys, "bus");
    ep_publisher_t *publisher = ep_publisher_new (ep_proc_connect_endpoint (self->bus, "pub"), self->watchdog_cert,
                                                  bus_key, name, EP_CODEC_DEFAULT_CAP);
    free (bus_key);
    return publisher;
}

ep_subscriber_t *
bench_stack_subscriber (bench_stack_t *self)
{
    char *bus_key = ep_keys_public_txt (self->keys, "bus");
    zcert_t *cert = ep_keys_load (self->keys, "subscriber");
    ep_subscriber_t *subscriber = ep_subscriber_new (ep_proc_connect_endpoint (self->bus, "sub"), cert, bus_key,
                                                     EP_CODEC_DEFAULT_CAP, NULL, NULL);
    zcert_destroy (&cert);
    free (bus_key);
    return subscriber;
}

ep_proc_t *
bench_stack_spawn (bench_stack_t *self, const char *binary, const char *const *args, const char *data,
                   int timeout_ms)
{
    char *shared = self->env [DATA_DIR];
    self->env [DATA_DIR] = zsys_sprintf ("EDGEPLANE_DATA_DIR=%s/%s", self->dir, data);
    ep_proc_t *proc = ep_proc_start (binary, args, (const char *const *) self->env, timeout_ms);
    zstr_free (&self->env [DATA_DIR]);
    self->env [DATA_DIR] = shared;
    return proc;
}

void
bench_stack_stop (bench_stack_t **self_p, bool hard)
{
    if (*self_p) {
        bench_stack_t *self = *self_p;
        ep_rpc_client_destroy (&self->model_client);
        zcert_destroy (&self->operator_cert);
        zcert_destroy (&self->watchdog_cert);
        ep_proc_destroy (&self->model);
        ep_proc_destroy (&self->bus);
        if (self->member)
            bench_etcd_stop (&self->member, hard);
        for (int i = 0; i < self->nenv; i++)
            zstr_free (&self->env [i]);
        zstr_free (&self->keys);
        ep_tmpdir_remove (&self->dir);
        free (self);
        *self_p = NULL;
    }
}
