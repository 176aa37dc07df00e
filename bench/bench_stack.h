/*  bench_stack.h: what the etcd benchmarks run their services on: a
    temporary directory with the CURVE keys, a single-member etcd
    (bench_etcd), the real bus and model on kernel-chosen ports, and the
    environment that points a sharded service at them (EDGEPLANE_ETCD_*,
    EDGEPLANE_SHARDS). Compiled into each benchmark with the test support
    (ep_proc), which the benchmark library does not link.
*/
#ifndef BENCH_STACK_H_INCLUDED
#define BENCH_STACK_H_INCLUDED

#include "ep_test.h"
#include "bench_etcd.h"
#include "ep_publisher.h"
#include "ep_rpc_client.h"
#include "ep_subscriber.h"

#define BENCH_STACK_ENV_MAX 24

typedef struct {
    char *dir;                  //  the benchmark's directory (removed at stop)
    char *keys;                 //  its keys (dir/keys)
    bench_etcd_t *member;       //  the etcd member
    ep_proc_t *bus;             //  the real bus
    ep_proc_t *model;           //  the real model
    char *env [BENCH_STACK_ENV_MAX];    //  the services' environment, NULL-terminated
    int nenv;                   //  entries set
    zcert_t *operator_cert;     //  the benchmark reads and writes as the operator
    zcert_t *watchdog_cert;     //  and plays the watchdog
    ep_rpc_client_t *model_client;  //  to the model, as the operator
} bench_stack_t;

//  The directory (tag names it), keys, etcd (its --max-txn-ops and the
//  services' EDGEPLANE_ETCD_MAX_TXN_OPS at max_txn_ops), bus and model, and
//  the environment with EDGEPLANE_ETCD_PREFIX=prefix and EDGEPLANE_SHARDS.
//  NULL if something did not start (stderr says what; the rest is stopped).
bench_stack_t *
    bench_stack_start (const char *tag, const char *prefix, int shards, int max_txn_ops);

//  Adds NAME=value (printf-style) to the environment.
void
    bench_stack_setenv (bench_stack_t *self, const char *format, ...) __attribute__ ((format (printf, 2, 3)));

//  Starts binary with args and the environment, its EDGEPLANE_DATA_DIR
//  dir/<data> (its own local cache), as ep_proc_start; NULL if it did not
//  start within timeout_ms.
ep_proc_t *
    bench_stack_spawn (bench_stack_t *self, const char *binary, const char *const *args, const char *data,
                       int timeout_ms);

//  A publisher on the bus as the watchdog (name: its instance), or NULL.
ep_publisher_t *
    bench_stack_publisher (bench_stack_t *self, const char *name);

//  A subscriber to the bus (the "subscriber" identity), or NULL.
ep_subscriber_t *
    bench_stack_subscriber (bench_stack_t *self);

//  Stops the model, the bus and etcd (SIGKILL with hard: a failure's
//  path), removes the directory. Nulls the caller's pointer.
void
    bench_stack_stop (bench_stack_t **self_p, bool hard);

#endif
