/*  edgeplane-model: the router model service.

    The process: options, the shared scaffolding (ep_service), the service
    object (modelsvc.h says what it does), its loop, teardown.
    docs/model.md is the contract.
*/
#include "ep_service.h"
#include "modelsvc.h"

int
main (int argc, char **argv)
{
    static char *listen, *db_path, *store, *etcd_endpoints, *etcd_ca, *etcd_cert, *etcd_key,
                *etcd_prefix;
    static int64_t retain, max_batch, commit_delay, etcd_max_txn_ops, lease_ttl, reply_ttl;
    static const char *stores [] = { "sqlite", "etcd", NULL };
    ep_opt_t opts [] = {
        { .name = "listen", .env = "EDGEPLANE_MODEL_LISTEN", .def = EP_DEFAULT_MODEL_API,
          .type = EP_OPT_ENDPOINT, .str = &listen, .help = "Where the model API binds." },
        { .name = "db", .env = "EDGEPLANE_MODEL_DB", .type = EP_OPT_STRING, .str = &db_path,
          .def_help = "$EDGEPLANE_DATA_DIR/model.db", .help = "The model's SQLite database." },
        { .name = "retain", .env = "EDGEPLANE_MODEL_RETAIN", .def = "100000", .type = EP_OPT_INT,
          .num = &retain, .min = 1, .max = 100000000,
          .help = "Revisions kept in the change log (older ones: followers re-snapshot)." },
        { .name = "max-batch", .env = "EDGEPLANE_MODEL_MAX_BATCH", .def = "256", .type = EP_OPT_INT,
          .num = &max_batch, .min = 1, .max = 100000,
          .help = "Requests served per transaction (one fsync) at most." },
        { .name = "commit-delay", .env = "EDGEPLANE_MODEL_COMMIT_DELAY", .def = "0",
          .type = EP_OPT_DURATION, .num = &commit_delay, .min = 0, .max = 1000,
          .help = "Latency a write may wait for others to share its fsync." },
        { .name = "store", .env = "EDGEPLANE_MODEL_STORE", .def = "sqlite", .type = EP_OPT_ENUM,
          .words = stores, .str = &store,
          .help = "Where the model lives: sqlite (model.db) or etcd (several instances, docs/etcd.md)." },
        { .name = "etcd-endpoints", .env = "EDGEPLANE_ETCD_ENDPOINTS", .type = EP_OPT_STRING,
          .str = &etcd_endpoints, .help = "etcd store: the cluster's client URLs, comma-separated." },
        { .name = "etcd-ca", .env = "EDGEPLANE_ETCD_CA", .type = EP_OPT_STRING, .str = &etcd_ca,
          .help = "etcd store: the CA of https endpoints (PEM; default: the system's)." },
        { .name = "etcd-cert", .env = "EDGEPLANE_ETCD_CERT", .type = EP_OPT_STRING, .str = &etcd_cert,
          .help = "etcd store: the model's client certificate (edgeplane pki issue client model)." },
        { .name = "etcd-key", .env = "EDGEPLANE_ETCD_KEY", .type = EP_OPT_STRING, .str = &etcd_key,
          .help = "etcd store: its key." },
        { .name = "etcd-prefix", .env = "EDGEPLANE_ETCD_PREFIX", .def = "/edgeplane/",
          .type = EP_OPT_STRING, .str = &etcd_prefix,
          .help = "etcd store: the prefix of the model's keys (ends in /)." },
        { .name = "etcd-max-txn-ops", .env = "EDGEPLANE_ETCD_MAX_TXN_OPS", .def = "128",
          .type = EP_OPT_INT, .num = &etcd_max_txn_ops, .min = 8, .max = 1000000,
          .help = "etcd store: the cluster's --max-txn-ops (batches are sized to fit)." },
        { .name = "lease-ttl", .env = "EDGEPLANE_MODEL_LEASE_TTL", .def = "10s",
          .type = EP_OPT_DURATION, .num = &lease_ttl, .min = 1000, .max = 600000,
          .help = "etcd store: the publisher's lease TTL; it stops publishing 1/4 TTL before." },
        { .name = "reply-ttl", .env = "EDGEPLANE_MODEL_REPLY_TTL", .def = "10m", .type = EP_OPT_DURATION,
          .num = &reply_ttl, .min = 1000, .max = 86400000,
          .help = "A write's reply is kept this long (in memory and model.db) for a retry of it." },
    };
    ep_service_t *service = ep_service_new ("model",
        "The router model: versioned, durable, with a change stream.",
        EP_HTTP_LISTEN_MODEL, opts, EP_COUNT (opts), argc, argv);
    modelsvc_config_t config = {
        .listen = listen, .db_path = db_path, .retain = (uint64_t) retain,
        .max_batch = max_batch, .commit_delay_ms = commit_delay, .store = store,
        .etcd_endpoints = etcd_endpoints, .etcd_ca = etcd_ca, .etcd_cert = etcd_cert,
        .etcd_key = etcd_key, .etcd_prefix = etcd_prefix, .etcd_max_txn_ops = etcd_max_txn_ops,
        .lease_ttl_ms = lease_ttl, .reply_ttl_ms = reply_ttl
    };
    modelsvc_t *model = modelsvc_new (service, &config);
    int rc = model? 0: -1;
    while (rc == 0 && !ep_service_interrupted (service))
        rc = modelsvc_turn (model);
    ep_log_info ("stopping");
    modelsvc_destroy (&model);
    ep_service_destroy (&service);
    return rc == 0? 0: 1;
}
