/*  modelsvc.h: the model service object, everything main.c builds.

    One loop: serve requests through ep_reqloop, a batch at a time. The
    writes that arrive together share one transaction (a savepoint each)
    and one commit (one fsync); only then are they answered and their
    changes published (model.change in revision order, in parts if large,
    and one entityChange.<type>.<op> per op), and then the reads are served
    from committed state. A reply is never sent before its write is
    durable. The replies to writes are saved in the same transaction (the
    reply cache made durable), so a write retried after a crash is
    answered, not applied again. A failed commit answers its writes
    UNAVAILABLE and serving goes on. With the model in etcd every instance
    takes writes (a batch that lost to another instance's commit runs once
    more) and the elected one publishes, from the change records
    (modelpub.h). docs/model.md is the contract.
*/
#ifndef MODELSVC_H_INCLUDED
#define MODELSVC_H_INCLUDED

#include "ep_service.h"

typedef struct _modelsvc_t modelsvc_t;

typedef struct {
    const char *listen;         //  where the API binds
    const char *db_path;        //  model.db, or NULL for <data dir>/model.db
    uint64_t retain;            //  revisions kept in the change log
    int64_t max_batch;          //  requests served per transaction at most
    int64_t commit_delay_ms;    //  latency a write may wait for others to share its fsync
    const char *store;          //  "sqlite" (model.db, the default) or "etcd"
    const char *etcd_endpoints; //  etcd: client URLs, comma-separated
    const char *etcd_ca;        //  etcd: CA of https endpoints (NULL: the system's)
    const char *etcd_cert;      //  etcd: the model's client certificate (edgeplane pki)
    const char *etcd_key;       //  etcd: its key
    const char *etcd_prefix;    //  etcd: the model's keys' prefix ("/edgeplane/")
    int64_t etcd_max_txn_ops;   //  etcd: the cluster's --max-txn-ops
    int64_t lease_ttl_ms;       //  etcd: the publisher election's lease TTL (etcd may raise it)
    int64_t reply_ttl_ms;       //  how long a write's reply is kept for its retries
} modelsvc_config_t;

//  The service over the process scaffolding (borrowed): opens the store,
//  loads the saved replies, reaches the bus, binds the API, says ready.
//  Returns NULL after logging why.
modelsvc_t *
    modelsvc_new (ep_service_t *service, const modelsvc_config_t *config);

//  Answers the requests still waiting UNAVAILABLE, then closes everything.
void
    modelsvc_destroy (modelsvc_t **self_p);

//  One turn of the loop: waits for input or the next due time, then
//  handles what came. Returns 0, or -1 to stop.
int
    modelsvc_turn (modelsvc_t *self);

#endif
