/*  edgeplane-watchdog: the control-channel listener and connection watchdog.

    The process: options, the service scaffolding (ep_service), the
    watchdog service object (watchdog.c: what it does and which module does
    each part), its loop, teardown.
*/
#include "ep_service.h"
#include "ep_pki.h"
#include "ep_subscriber.h"
#include "events.h"
#include "watchdog.h"
#include <sys/resource.h>

//  As many connections as the hard limit allows.
static void
s_raise_fd_limit (void)
{
    struct rlimit limit;
    if (getrlimit (RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit (RLIMIT_NOFILE, &limit);
    }
    getrlimit (RLIMIT_NOFILE, &limit);
    ep_log_info ("file descriptor limit %llu", (unsigned long long) limit.rlim_cur);
}

int
main (int argc, char **argv)
{
    static char *channel_listen, *listen, *advertise, *stray_action, *stray_log_level;
    static char *ctrl_id, *ctrl_cert, *ctrl_key, *channel_advertise;
    static int64_t ctrl_lease_ttl;
    static int64_t grace, heartbeat, heartbeat_timeout, frame_timeout, drain_grace;
    static int64_t liveness_floor, liveness_ceiling;
    static char *liveness;
    static const char *liveness_words [] = { "adaptive", "fixed", NULL };
    static int64_t joined_cap, out_cap, budget, max_handshakes, max_per_source, ctrl_lifetime;
    static int64_t slice_stale;
    static int64_t outbox_max, outbox_bytes, dedupe_window;
    ep_opt_t opts [] = {
        { .name = "channel-listen", .env = "EDGEPLANE_CHANNEL_LISTEN", .def = EP_DEFAULT_CHANNEL_LISTEN,
          .type = EP_OPT_HOSTPORT, .str = &channel_listen, .help = "The TLS control channel routers dial." },
        { .name = "listen", .env = "EDGEPLANE_WATCHDOG_LISTEN", .def = EP_DEFAULT_WATCHDOG_API,
          .type = EP_OPT_ENDPOINT, .str = &listen, .help = "Where the watchdog API binds." },
        { .name = "advertise", .env = "EDGEPLANE_WATCHDOG_ADVERTISE", .type = EP_OPT_ENDPOINT, .str = &advertise,
          .def_help = "the API address bound; for *, this host's address toward the bus",
          .help = "This instance's API address in its presence beacons (behind NAT)." },
        { .name = "channel-advertise", .env = "EDGEPLANE_CHANNEL_ADVERTISE", .type = EP_OPT_HOSTPORT,
          .str = &channel_advertise,
          .def_help = "the channel address bound; for 0.0.0.0, this host's address toward the bus",
          .help = "Where peer controllers reach this instance's channel (beacons, its controller entry)." },
        { .name = "ctrl-id", .env = "EDGEPLANE_CTRL_ID", .type = EP_OPT_ID, .str = &ctrl_id,
          .def_help = "watchdog-<instance id>, or the id in --ctrl-cert",
          .help = "This instance's ctrl id: its channel certificate and its controller entry." },
        { .name = "ctrl-cert", .env = "EDGEPLANE_CTRL_CERT", .type = EP_OPT_STRING, .str = &ctrl_cert,
          .def_help = "one issued at start with tls/ca.key",
          .help = "This instance's ctrl certificate (a bundle's .crt from `edgeplane pki issue ctrl ID`)." },
        { .name = "ctrl-key", .env = "EDGEPLANE_CTRL_KEY", .type = EP_OPT_STRING, .str = &ctrl_key,
          .def_help = "with --ctrl-cert",
          .help = "The private key of --ctrl-cert." },
        { .name = "ctrl-cert-lifetime", .env = "EDGEPLANE_CTRL_CERT_LIFETIME", .def = "19800h",
          .type = EP_OPT_DURATION, .num = &ctrl_lifetime, .min = 3000,
          .max = (int64_t) EP_PKI_DAYS_MAX * 86400000, .def_help = "825 days (19800h)",
          .help = "Validity of a ctrl certificate issued here; renewed after 2/3 of it (not a bundle's)." },
        { .name = "ctrl-lease-ttl", .env = "EDGEPLANE_CTRL_LEASE_TTL", .def = "10s",
          .type = EP_OPT_DURATION, .num = &ctrl_lease_ttl, .min = 1000, .max = 3600000,
          .help = "With the model in etcd, the controller entry lives under a lease of this TTL: "
                  "gone this long after the instance dies (kept alive every third of it)." },
        { .name = "stray-grace", .env = "EDGEPLANE_STRAY_GRACE", .def = "30s", .type = EP_OPT_DURATION,
          .num = &grace, .min = 1, .max = 3600000,
          .help = "A connection not joined this long after TCP accept is stray." },
        { .name = "stray-action", .env = "EDGEPLANE_STRAY_ACTION", .def = "disconnect", .type = EP_OPT_ENUM,
          .words = events_stray_actions, .str = &stray_action, .help = "What to do with a stray: none, log or disconnect." },
        { .name = "stray-log-level", .env = "EDGEPLANE_STRAY_LOG_LEVEL", .def = "warn", .type = EP_OPT_ENUM,
          .words = ep_log_level_names, .str = &stray_log_level,
          .help = "Level of the stray's log line (actions log and disconnect): error, warn, info or debug." },
        { .name = "heartbeat", .env = "EDGEPLANE_HEARTBEAT", .def = "10s", .type = EP_OPT_DURATION,
          .num = &heartbeat, .min = 10, .max = 3600000, .help = "Ping joined peers this often." },
        { .name = "heartbeat-timeout", .env = "EDGEPLANE_HEARTBEAT_TIMEOUT", .def = "30s",
          .type = EP_OPT_DURATION, .num = &heartbeat_timeout, .min = 10, .max = 3600000,
          .help = "Close a joined peer unheard for this long (adaptive: until its cadence is learnt)." },
        { .name = "liveness", .env = "EDGEPLANE_LIVENESS", .def = "adaptive", .type = EP_OPT_ENUM,
          .words = liveness_words, .str = &liveness,
          .help = "adaptive: each peer's timeout from its heartbeat cadence; fixed: --heartbeat-timeout." },
        { .name = "liveness-floor", .env = "EDGEPLANE_LIVENESS_FLOOR", .def = "15s", .type = EP_OPT_DURATION,
          .num = &liveness_floor, .min = 10, .max = 3600000,
          .help = "Adaptive timeouts are never shorter (keep it above a watchdog failover)." },
        { .name = "liveness-ceiling", .env = "EDGEPLANE_LIVENESS_CEILING", .def = "5m", .type = EP_OPT_DURATION,
          .num = &liveness_ceiling, .min = 10, .max = 3600000,
          .help = "Adaptive timeouts are never longer." },
        { .name = "frame-timeout", .env = "EDGEPLANE_FRAME_TIMEOUT", .def = "10s", .type = EP_OPT_DURATION,
          .num = &frame_timeout, .min = 10, .max = 600000,
          .help = "A frame must arrive whole within this from its first byte." },
        { .name = "drain-grace", .env = "EDGEPLANE_DRAIN_GRACE", .def = "10s", .type = EP_OPT_DURATION,
          .num = &drain_grace, .min = 1, .max = 600000,
          .help = "A draining router (deleted, or shutdown) is closed after this." },
        { .name = "frame-cap", .env = "EDGEPLANE_FRAME_CAP", .def = "4194304", .type = EP_OPT_INT,
          .num = &joined_cap, .min = 16384, .max = 64 * 1024 * 1024,
          .help = "Largest frame from a joined peer, bytes (16 KiB before joining)." },
        { .name = "out-cap", .env = "EDGEPLANE_OUT_CAP", .def = "8388608", .type = EP_OPT_INT,
          .num = &out_cap, .min = 65536, .max = INT64_MAX,
          .help = "Bytes queued to one peer before it is closed as not reading." },
        { .name = "budget", .env = "EDGEPLANE_CHANNEL_BUDGET", .def = "268435456", .type = EP_OPT_INT,
          .num = &budget, .min = 65536, .max = INT64_MAX,
          .help = "Bytes of partial frames held across all connections." },
        { .name = "max-handshakes", .env = "EDGEPLANE_MAX_HANDSHAKES", .def = "20000", .type = EP_OPT_INT,
          .num = &max_handshakes, .min = 1, .max = 1000000,
          .help = "Connections not yet through TLS, at most." },
        { .name = "max-per-source", .env = "EDGEPLANE_MAX_PER_SOURCE", .def = "5000", .type = EP_OPT_INT,
          .num = &max_per_source, .min = 1, .max = 1000000,
          .help = "Connections not yet joined from one source address, at most." },
        { .name = "slice-stale", .env = "EDGEPLANE_SLICE_STALE", .def = "60s", .type = EP_OPT_DURATION,
          .num = &slice_stale, .min = 10, .max = 86400000,
          .help = "A router whose acknowledged slice has been superseded this long is stale (router.slice.stale)." },
        { .name = "outbox-max", .env = "EDGEPLANE_OUTBOX_MAX", .def = "100000", .type = EP_OPT_INT,
          .num = &outbox_max, .min = 1, .max = 100000000,
          .help = "Events decided and not yet back through the bus, at most; when full, joins are refused." },
        { .name = "outbox-bytes", .env = "EDGEPLANE_OUTBOX_BYTES", .def = "67108864", .type = EP_OPT_INT,
          .num = &outbox_bytes, .min = 65536, .max = INT64_MAX,
          .help = "Bytes of those events, at most (the file <data>/<source id>.outbox)." },
        ep_subscriber_window_opt (&dedupe_window),
    };
    ep_service_t *service = ep_service_new ("watchdog", "Control-channel listener and connection watchdog.",
                                            EP_HTTP_LISTEN_WATCHDOG, opts, EP_COUNT (opts), argc, argv);
    s_raise_fd_limit ();
    watchdog_config_t config = {
        .channel_listen = channel_listen, .channel_advertise = channel_advertise,
        .listen = listen, .advertise = advertise,
        .ctrl_id = ctrl_id, .ctrl_cert = ctrl_cert, .ctrl_key = ctrl_key,
        .ctrl_lifetime_ms = ctrl_lifetime, .grace_ms = grace, .heartbeat_ms = heartbeat,
        .heartbeat_timeout_ms = heartbeat_timeout, .frame_timeout_ms = frame_timeout,
        .drain_grace_ms = drain_grace, .joined_cap = joined_cap, .out_cap = out_cap,
        .budget = budget, .max_handshakes = max_handshakes, .max_per_source = max_per_source,
        .slice_stale_ms = slice_stale, .outbox_max = outbox_max, .outbox_bytes = outbox_bytes,
        .dedupe_window = dedupe_window, .ctrl_lease_ttl_ms = ctrl_lease_ttl
    };
    config.adaptive = streq (liveness, "adaptive");
    config.liveness_floor_ms = liveness_floor;
    config.liveness_ceiling_ms = liveness_ceiling > liveness_floor? liveness_ceiling: liveness_floor;
    for (int i = 0; events_stray_actions [i]; i++)
        if (streq (events_stray_actions [i], stray_action))
            config.stray_action = i;
    EP_ASSERT (ep_log_level_parse (stray_log_level, &config.stray_log_level) == 0);
    watchdog_t *watchdog = watchdog_new (service, &config);
    int rc = watchdog_start (watchdog);
    if (rc == 0)
        rc = watchdog_run (watchdog);
    watchdog_destroy (&watchdog);
    ep_service_destroy (&service);
    return rc == 0? 0: 1;
}
