/*  bench_model.h: what the benchmarks write to the model through its API:
    one transaction, and a fleet (services svc0.., routers <prefix>0..
    each hosting all of them) in transactions of BENCH_MODEL_TXN writes.
*/
#ifndef BENCH_MODEL_H_INCLUDED
#define BENCH_MODEL_H_INCLUDED

#include "ep_prelude.h"
#include "ep_rpc_client.h"
#include "model.pb-c.h"

#define BENCH_MODEL_TXN     500     //  writes per transaction of a fleet
#define BENCH_MODEL_SERVICES 64     //  services a fleet hosts, at most

//  Commits the n writes as one transaction (as the client's identity),
//  setting *revision. Returns 0, or -1 with the reason in err.
int
    bench_model_txn (ep_rpc_client_t *client, Ep__ModelWrite **writes, size_t n, uint64_t *revision,
                     char *err, size_t errlen);

//  Creates services svc0 .. svc<services-1> (none when 0), then routers
//  <prefix>0 .. <prefix><routers-1> each hosting all of them, setting
//  *revision to the last transaction's. Returns 0, or -1 with the reason
//  in err.
int
    bench_model_fleet (ep_rpc_client_t *client, const char *prefix, int routers, int services,
                       uint64_t *revision, char *err, size_t errlen);

#endif
