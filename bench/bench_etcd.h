/*  bench_etcd.h: the single-member etcd the etcd benchmarks run against
    (model_bench --store etcd, terminators_etcd_bench): Debian's etcd,
    fsyncing its log as in production, started in the benchmark's own
    directory on the ports it is given, and blocking calls for the
    baselines' setup and the checks around them.
*/
#ifndef BENCH_ETCD_H_INCLUDED
#define BENCH_ETCD_H_INCLUDED

#include "ep_prelude.h"
#include "ep_etcd.h"

#define BENCH_ETCD_BIN "/usr/bin/etcd"

typedef struct _bench_etcd_t bench_etcd_t;

//  What a call's callback reports (bench_etcd_done fills it).
typedef struct {
    bool done;                  //  the reply (or the failure) came
    bool ok;                    //  it applied (a txn: its compares held)
    int64_t revision;           //  the header's revision
    size_t value_size;          //  a range: the first value's size, 0 if none
    size_t values_bytes;        //  a range: all its values' sizes
    size_t nkvs;                //  a range: how many keys
    char error [256];           //  why not
} bench_etcd_call_t;

//  Starts a member in dir/etcd (its log dir/etcd.log) with client and peer
//  on 127.0.0.1:ports [0] and [1], etcd's --max-txn-ops at max_txn_ops,
//  and waits up to 20 s until it answers. NULL if it does not (stderr says
//  why and where its log is).
bench_etcd_t *
    bench_etcd_start (const char *dir, const int ports [2], int max_txn_ops);

//  Stops it (SIGTERM, or SIGKILL with hard: from a failure path) and
//  waits for it. Nulls the caller's pointer.
void
    bench_etcd_stop (bench_etcd_t **self_p, bool hard);

//  Its client URL ("http://127.0.0.1:<port>").
const char *
    bench_etcd_endpoint (bench_etcd_t *self);

//  A client of it (owned by self).
ep_etcd_t *
    bench_etcd_client (bench_etcd_t *self);

//  Its process, for CPU figures.
pid_t
    bench_etcd_pid (bench_etcd_t *self);

//  An ep_etcd_fn filling the bench_etcd_call_t at arg.
void
    bench_etcd_done (void *arg, const ep_etcd_reply_t *reply, const char *error);

//  Polls etcd until call->done or timeout_ms; true if it came.
bool
    bench_etcd_wait (ep_etcd_t *etcd, bench_etcd_call_t *call, int timeout_ms);

//  Waits up to 10 s for call; bench_die if it failed or did not come.
void
    bench_etcd_must (ep_etcd_t *etcd, bench_etcd_call_t *call);

//  The store's current revision (bench_die if etcd does not say).
int64_t
    bench_etcd_revision (ep_etcd_t *etcd);

#endif
