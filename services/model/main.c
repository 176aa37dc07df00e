/*  edgeplane-model: the router model service.

    The process: options, the shared scaffolding (ep_service), the service
    object (modelsvc.h says what it does), its loop, teardown.
    docs/model.md is the contract.
*/
#include "ep_service.h"
#include "modelsvc.h"
#include "modelstore_etcd.h"

int
main (int argc, char **argv)
{
    static char *listen, *db_path, *store;
    static int64_t retain, max_batch, commit_delay, lease_ttl, reply_ttl;
    static ep_etcd_settings_t etcd;
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
        { .name = "lease-ttl", .env = "EDGEPLANE_MODEL_LEASE_TTL", .def = "10s",
          .type = EP_OPT_DURATION, .num = &lease_ttl, .min = 1000, .max = 600000,
          .help = "etcd store: the publisher's lease TTL; it stops publishing 1/4 TTL before." },
        { .name = "reply-ttl", .env = "EDGEPLANE_MODEL_REPLY_TTL", .def = "10m", .type = EP_OPT_DURATION,
          .num = &reply_ttl, .min = 1000, .max = 86400000,
          .help = "A write's reply is kept this long (in memory and model.db) for a retry of it." },
    };
    //  The etcd store's options are shared with `edgeplane migrate`.
    ep_opt_t all [EP_COUNT (opts) + EP_ETCD_OPTS];
    memcpy (all, opts, sizeof opts);
    ep_etcd_opts (&etcd, all + EP_COUNT (opts));
    ep_service_t *service = ep_service_new ("model",
        "The router model: versioned, durable, with a change stream.",
        EP_HTTP_LISTEN_MODEL, all, EP_COUNT (all), argc, argv);
    modelsvc_config_t config = {
        .listen = listen, .db_path = db_path, .retain = (uint64_t) retain,
        .max_batch = max_batch, .commit_delay_ms = commit_delay, .store = store,
        .etcd_endpoints = etcd.endpoints, .etcd_ca = etcd.ca, .etcd_cert = etcd.cert,
        .etcd_key = etcd.key, .etcd_prefix = etcd.prefix, .etcd_max_txn_ops = etcd.max_txn_ops,
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
