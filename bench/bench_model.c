/*  bench_model.c: the benchmarks' model writes (see bench_model.h). */
#include "bench_model.h"
#include "ep_test.h"

int
bench_model_txn (ep_rpc_client_t *client, Ep__ModelWrite **writes, size_t n, uint64_t *revision,
                 char *err, size_t errlen)
{
    Ep__ModelTxn txn = EP__MODEL_TXN__INIT;
    txn.n_writes = n;
    txn.writes = writes;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.op_case = EP__MODEL_REQUEST__OP_TXN;
    request.txn = &txn;
    Ep__ModelReply *reply = (Ep__ModelReply *) ep_rpc_call (client, &request, &ep__model_reply__descriptor,
                                                            30000, 3, err, errlen);
    if (!reply)
        return -1;
    int rc = 0;
    if (reply->status && reply->status->code != EP__STATUS__CODE__OK)
        rc = ep_errorf (err, errlen, "%s", reply->status->message);
    else
        *revision = reply->revision;
    ep__model_reply__free_unpacked (reply, NULL);
    return rc;
}

//  A create of entity into write.
static void
s_create (Ep__ModelWrite *write, Ep__Entity *entity)
{
    ep__model_write__init (write);
    write->has_op = true;
    write->op = EP__MODEL_WRITE__OP__CREATE;
    write->entity = entity;
}

int
bench_model_fleet (ep_rpc_client_t *client, const char *prefix, int routers, int services,
                   uint64_t *revision, char *err, size_t errlen)
{
    EP_ASSERT (services >= 0 && services <= BENCH_MODEL_SERVICES);
    char names [BENCH_MODEL_SERVICES][16];
    Ep__Service service [BENCH_MODEL_SERVICES];
    Ep__HostedService hosted [BENCH_MODEL_SERVICES];
    Ep__HostedService *hosted_list [BENCH_MODEL_SERVICES];
    //  Static: a transaction's worth is too large for the stack.
    static Ep__Entity entities [BENCH_MODEL_TXN];
    static Ep__ModelWrite writes [BENCH_MODEL_TXN];
    static Ep__ModelWrite *list [BENCH_MODEL_TXN];
    static Ep__Router router [BENCH_MODEL_TXN];
    static char ids [BENCH_MODEL_TXN][72];
    for (int s = 0; s < services; s++) {
        snprintf (names [s], sizeof names [s], "svc%d", s);
        ep__service__init (&service [s]);
        service [s].id = names [s];
        ep__entity__init (&entities [s]);
        entities [s].kind_case = EP__ENTITY__KIND_SERVICE;
        entities [s].service = &service [s];
        s_create (&writes [s], &entities [s]);
        list [s] = &writes [s];
        ep__hosted_service__init (&hosted [s]);
        hosted [s].service_id = names [s];
        hosted_list [s] = &hosted [s];
    }
    if (services > 0 && bench_model_txn (client, list, (size_t) services, revision, err, errlen))
        return -1;
    for (int first = 0; first < routers; first += BENCH_MODEL_TXN) {
        size_t n = 0;
        for (int r = first; r < routers && r < first + BENCH_MODEL_TXN; r++, n++) {
            snprintf (ids [n], sizeof ids [n], "%s%d", prefix, r);
            ep__router__init (&router [n]);
            router [n].id = ids [n];
            router [n].n_hosted = (size_t) services;
            router [n].hosted = services? hosted_list: NULL;
            ep__entity__init (&entities [n]);
            entities [n].kind_case = EP__ENTITY__KIND_ROUTER;
            entities [n].router = &router [n];
            s_create (&writes [n], &entities [n]);
            list [n] = &writes [n];
        }
        if (bench_model_txn (client, list, n, revision, err, errlen))
            return -1;
    }
    return 0;
}
