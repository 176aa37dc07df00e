/*  edgeplane-reaper: the session reaper.

    The process: options, the shared scaffolding (ep_service), the service
    object (reapsvc.h says what it does), its loop, teardown.
    docs/reaper.md is the contract.
*/
#include "ep_service.h"
#include "ep_subscriber.h"
#include "reapsvc.h"

int
main (int argc, char **argv)
{
    static char *listen, *db_path;
    static int64_t evasive, expire, grace, deadline, presence, flush, long_lived, retention;
    static int64_t retry, mark_batch, chunk, window, max_batch, event_rate, outbox_max;
    static int64_t liveness_floor, liveness_ceiling, samples, intervals, dedupe_window;
    static char *liveness;
    static ep_shardset_opts_t sharding;
    static const char *liveness_words [] = { "adaptive", "fixed", NULL };
    ep_opt_t opts [] = {
        { .name = "listen", .env = "EDGEPLANE_REAPER_LISTEN", .def = EP_DEFAULT_REAPER_API,
          .type = EP_OPT_ENDPOINT, .str = &listen, .help = "Where the reaper API binds." },
        { .name = "db", .env = "EDGEPLANE_REAPER_DB", .type = EP_OPT_STRING, .str = &db_path,
          .def_help = "$EDGEPLANE_DATA_DIR/sessions.db", .help = "The reaper's SQLite database." },
        { .name = "evasive", .env = "EDGEPLANE_SESSION_EVASIVE", .def = "60s", .type = EP_OPT_DURATION,
          .num = &evasive, .min = 10, .max = 86400000,
          .help = "A session unheard this long is probed through its router." },
        { .name = "expire", .env = "EDGEPLANE_SESSION_EXPIRE", .def = "3m", .type = EP_OPT_DURATION,
          .num = &expire, .min = 20, .max = 86400000,
          .help = "A session unheard this long (and probed) is reaped as expired; above --evasive." },
        { .name = "liveness", .env = "EDGEPLANE_SESSION_LIVENESS", .def = "adaptive", .type = EP_OPT_ENUM,
          .words = liveness_words, .str = &liveness,
          .help = "adaptive: each router's --evasive from its heartbeat cadence, --expire in proportion; "
                  "fixed: --evasive and --expire for every router." },
        { .name = "liveness-floor", .env = "EDGEPLANE_SESSION_LIVENESS_FLOOR", .def = "20s",
          .type = EP_OPT_DURATION, .num = &liveness_floor, .min = 10, .max = 86400000,
          .help = "An adaptive --evasive is never shorter (keep it above a watchdog failover)." },
        { .name = "liveness-ceiling", .env = "EDGEPLANE_SESSION_LIVENESS_CEILING", .def = "5m",
          .type = EP_OPT_DURATION, .num = &liveness_ceiling, .min = 10, .max = 86400000,
          .help = "An adaptive --evasive is never longer." },
        { .name = "liveness-samples", .env = "EDGEPLANE_SESSION_LIVENESS_SAMPLES", .def = "16",
          .type = EP_OPT_INT, .num = &samples, .min = 1, .max = 4096,
          .help = "Intervals between a router's heartbeat batches needed before its thresholds are learnt." },
        { .name = "liveness-window", .env = "EDGEPLANE_SESSION_LIVENESS_WINDOW", .def = "64",
          .type = EP_OPT_INT, .num = &intervals, .min = 1, .max = 4096,
          .help = "The newest intervals a router's thresholds are learnt from (at least --liveness-samples)." },
        { .name = "offline-grace", .env = "EDGEPLANE_ROUTER_OFFLINE_GRACE", .def = "2m",
          .type = EP_OPT_DURATION, .num = &grace, .min = 10, .max = 86400000,
          .help = "A router offline this long has its sessions cleaned up." },
        { .name = "cleanup-deadline", .env = "EDGEPLANE_CLEANUP_DEADLINE", .def = "15s",
          .type = EP_OPT_DURATION, .num = &deadline, .min = 10, .max = 86400000,
          .help = "A cleanup forces the sessions its router has not closed after this." },
        { .name = "presence-timeout", .env = "EDGEPLANE_PRESENCE_TIMEOUT", .def = "3500ms",
          .type = EP_OPT_DURATION, .num = &presence, .min = 10, .max = 600000,
          .help = "A watchdog whose beacons stop this long holds no router." },
        { .name = "flush-interval", .env = "EDGEPLANE_SESSION_FLUSH", .def = "5s", .type = EP_OPT_DURATION,
          .num = &flush, .min = 10, .max = 3600000,
          .help = "Byte counters and last-seen times are written this often." },
        { .name = "long-lived", .env = "EDGEPLANE_SESSION_LONG_LIVED", .def = "24h",
          .type = EP_OPT_DURATION, .num = &long_lived, .min = 1, .max = INT64_MAX,
          .help = "A session raises session.warning (once) when it grows older than this." },
        { .name = "retention", .env = "EDGEPLANE_SESSION_RETENTION", .def = "24h", .type = EP_OPT_DURATION,
          .num = &retention, .min = 1, .max = INT64_MAX,
          .help = "Closed sessions and finished cleanup jobs are kept this long." },
        { .name = "command-retry", .env = "EDGEPLANE_COMMAND_RETRY", .def = "1s", .type = EP_OPT_DURATION,
          .num = &retry, .min = 10, .max = 600000,
          .help = "Closes a router has not acked are resent after this, doubling up to 8 times it." },
        { .name = "mark-batch", .env = "EDGEPLANE_CLEANUP_BATCH", .def = "5000", .type = EP_OPT_INT,
          .num = &mark_batch, .min = 1, .max = 1000000,
          .help = "Sessions marked TERMINATING (or forced, or warned long-lived) per transaction." },
        { .name = "close-chunk", .env = "EDGEPLANE_CLOSE_CHUNK", .def = "5000", .type = EP_OPT_INT,
          .num = &chunk, .min = 1, .max = 50000, .help = "Session ids per CloseSessions or ProbeSessions." },
        { .name = "close-window", .env = "EDGEPLANE_CLOSE_WINDOW", .def = "4", .type = EP_OPT_INT,
          .num = &window, .min = 1, .max = 1000,
          .help = "CloseSessions a router has not answered, at most." },
        { .name = "max-batch", .env = "EDGEPLANE_REAPER_MAX_BATCH", .def = "1000", .type = EP_OPT_INT,
          .num = &max_batch, .min = 1, .max = 100000, .help = "Requests served per transaction at most." },
        { .name = "event-rate", .env = "EDGEPLANE_SESSION_EVENT_RATE", .def = "100000", .type = EP_OPT_INT,
          .num = &event_rate, .min = 100, .max = 100000000,
          .help = "Session events published per second at most (commands are not limited)." },
        { .name = "outbox-max", .env = "EDGEPLANE_SESSION_OUTBOX_MAX", .def = "1000000", .type = EP_OPT_INT,
          .num = &outbox_max, .min = 1, .max = 100000000,
          .help = "Session events kept in sessions.db until the bus echoes them, at most; when full, "
                  "new sessions are refused (event-outbox-full)." },
        ep_subscriber_window_opt (&dedupe_window),
    };
    ep_opt_t all [EP_COUNT (opts) + EP_SHARDSET_OPTS];
    memcpy (all, opts, sizeof opts);
    ep_shardset_opts (&sharding, REAPSVC_SHARD_ENV, REAPSVC_STORE_HELP, all + EP_COUNT (opts));
    ep_service_t *service = ep_service_new ("reaper",
        "The session reaper: liveness and two-phase cleanup of sessions.",
        EP_HTTP_LISTEN_REAPER, all, EP_COUNT (all), argc, argv);
    if (expire <= evasive) {
        ep_log_error ("--expire (%lld ms) must be longer than --evasive (%lld ms)",
                      (long long) expire, (long long) evasive);
        ep_service_destroy (&service);
        return 2;
    }
    if (samples > intervals) {
        ep_log_error ("--liveness-samples (%lld) must not exceed --liveness-window (%lld)",
                      (long long) samples, (long long) intervals);
        ep_service_destroy (&service);
        return 2;
    }
    reapsvc_config_t config = {
        .listen = listen, .db_path = db_path, .max_batch = max_batch, .event_rate = event_rate,
        .dedupe_window = dedupe_window
    };
    config.sharded = sharding;
    reaper_config_defaults (&config.core);
    config.core.evasive_ms = evasive;
    config.core.expire_ms = expire;
    config.core.adaptive = streq (liveness, "adaptive");
    config.core.cadence.min_ms = liveness_floor;
    config.core.cadence.max_ms = liveness_ceiling > liveness_floor? liveness_ceiling: liveness_floor;
    config.core.cadence.min_samples = (int) samples;
    config.core.cadence.window = (int) intervals;
    config.core.offline_grace_ms = grace;
    config.core.deadline_ms = deadline;
    config.core.presence_timeout_ms = presence;
    config.core.flush_ms = flush;
    config.core.long_lived_ms = long_lived;
    config.core.retention_ms = retention;
    config.core.retry_ms = retry;
    config.core.retry_max_ms = retry * 8;
    config.core.mark_batch = (size_t) mark_batch;
    config.core.chunk = (size_t) chunk;
    config.core.window = (size_t) window;
    config.core.outbox_max = (size_t) outbox_max;

    reapsvc_t *reaper = reapsvc_new (service, &config);
    int rc = reaper? 0: -1;
    while (rc == 0 && !ep_service_interrupted (service))
        rc = reapsvc_turn (reaper);
    ep_log_info ("stopping");
    reapsvc_destroy (&reaper);
    ep_service_destroy (&service);
    return rc == 0? 0: 1;
}
