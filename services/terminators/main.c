/*  edgeplane-terminators: the terminator lifecycle service.

    The process: options, the shared scaffolding (ep_service), the service
    object (termsvc.h says what it does), its loop, teardown.
    docs/terminators.md is the contract.
*/
#include "ep_service.h"
#include "ep_subscriber.h"
#include "ep_shardset.h"
#include "termsvc.h"

int
main (int argc, char **argv)
{
    static char *listen, *db_path;
    static int64_t max_batch, park_timeout, establish_timeout, retry_base, retry_max, retry_cap;
    static int64_t delete_grace, tombstone_ttl, presence_expiry, settle, dedupe_window;
    static ep_shardset_opts_t sharding;
    ep_opt_t opts [] = {
        { .name = "listen", .env = "EDGEPLANE_TERMINATORS_LISTEN", .def = EP_DEFAULT_TERMINATORS_API,
          .type = EP_OPT_ENDPOINT, .str = &listen, .help = "Where the terminators API binds." },
        { .name = "db", .env = "EDGEPLANE_TERMINATORS_DB", .type = EP_OPT_STRING, .str = &db_path,
          .def_help = "$EDGEPLANE_DATA_DIR/terminators.db", .help = "The terminators' SQLite database." },
        { .name = "max-batch", .env = "EDGEPLANE_TERMINATORS_MAX_BATCH", .def = "1000", .type = EP_OPT_INT,
          .num = &max_batch, .min = 1, .max = 100000,
          .help = "Write requests served per transaction (one fsync) at most." },
        { .name = "park-timeout", .env = "EDGEPLANE_TERMINATORS_PARK_TIMEOUT", .def = "10s",
          .type = EP_OPT_DURATION, .num = &park_timeout, .min = 1, .max = 600000,
          .help = "How long a request waits for the model revision it was based on (then: retry)." },
        { .name = "establish-timeout", .env = "EDGEPLANE_TERMINATORS_ESTABLISH_TIMEOUT", .def = "10s",
          .type = EP_OPT_DURATION, .num = &establish_timeout, .min = 1, .max = 86400000,
          .help = "A terminator whose router is not online this long after its create is FAILED." },
        { .name = "retry-base", .env = "EDGEPLANE_TERMINATORS_RETRY_BASE", .def = "1s",
          .type = EP_OPT_DURATION, .num = &retry_base, .min = 1, .max = 86400000,
          .help = "First delay before a FAILED terminator is tried again (doubling, with jitter)." },
        { .name = "retry-max", .env = "EDGEPLANE_TERMINATORS_RETRY_MAX", .def = "1m",
          .type = EP_OPT_DURATION, .num = &retry_max, .min = 1, .max = 86400000,
          .help = "Longest delay between two tries of a FAILED terminator." },
        { .name = "retry-cap", .env = "EDGEPLANE_TERMINATORS_RETRY_CAP", .def = "8", .type = EP_OPT_INT,
          .num = &retry_cap, .min = 0, .max = 1000,
          .help = "Automatic tries of a FAILED terminator; then it waits for its router." },
        { .name = "delete-grace", .env = "EDGEPLANE_TERMINATORS_DELETE_GRACE", .def = "10s",
          .type = EP_OPT_DURATION, .num = &delete_grace, .min = 0, .max = 86400000,
          .help = "How long a terminator the model retired waits for its router's delete." },
        { .name = "tombstone-ttl", .env = "EDGEPLANE_TERMINATORS_TOMBSTONE_TTL", .def = "24h",
          .type = EP_OPT_DURATION, .num = &tombstone_ttl, .min = 1, .max = INT64_MAX,
          .help = "How long a deleted terminator is kept to refuse late creates." },
        { .name = "presence-expiry", .env = "EDGEPLANE_TERMINATORS_PRESENCE_EXPIRY", .def = "3500ms",
          .type = EP_OPT_DURATION, .num = &presence_expiry, .min = 10, .max = 3600000,
          .help = "A watchdog instance unheard this long loses its routers (beacons come every second)." },
        { .name = "settle", .env = "EDGEPLANE_TERMINATORS_SETTLE", .def = "3500ms",
          .type = EP_OPT_DURATION, .num = &settle, .min = 0, .max = 3600000,
          .help = "After a start, timers wait this long for presence to be known again." },
        ep_subscriber_window_opt (&dedupe_window),
    };
    ep_opt_t all [EP_COUNT (opts) + EP_SHARDSET_OPTS];
    memcpy (all, opts, sizeof opts);
    ep_shardset_opts (&sharding, "EDGEPLANE_TERMINATORS_",
                      "sqlite (terminators.db, one instance) or etcd (several instances on shards).",
                      all + EP_COUNT (opts));
    ep_service_t *service = ep_service_new ("terminators",
        "Terminator lifecycle: idempotent, ordered by model revision, no spin.",
        EP_HTTP_LISTEN_TERMINATORS, all, EP_COUNT (all), argc, argv);
    termsvc_config_t config = {
        .listen = listen, .db_path = db_path,
        .max_batch = max_batch, .park_timeout_ms = park_timeout, .dedupe_window = dedupe_window,
        .sharded = sharding
    };
    terminators_config_defaults (&config.core);
    config.core.sm.establish_timeout_ms = establish_timeout;
    config.core.sm.retry_base_ms = retry_base;
    config.core.sm.retry_max_ms = retry_max > retry_base? retry_max: retry_base;
    config.core.sm.retry_cap = (uint32_t) retry_cap;
    config.core.sm.delete_grace_ms = delete_grace;
    config.core.sm.tombstone_ttl_ms = tombstone_ttl;
    config.core.presence_expiry_ms = presence_expiry;
    config.core.settle_ms = settle;

    termsvc_t *terminators = termsvc_new (service, &config);
    int rc = terminators? 0: -1;
    while (rc == 0 && !ep_service_interrupted (service))
        rc = termsvc_turn (terminators);
    ep_log_info ("stopping");
    termsvc_destroy (&terminators);
    ep_service_destroy (&service);
    return rc == 0? 0: 1;
}
