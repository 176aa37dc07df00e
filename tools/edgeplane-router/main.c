/*  edgeplane-router: the router agent, and a fleet simulator.

    One process runs one router (--id) or N of them (--count N --prefix P,
    with bundles from `edgeplane pki issue router --count N --prefix P`),
    each an agent (agent.c) on its own TLS connection, all in one poll loop.
    --stray K holds K connections that never join, to show the watchdog's
    stray detection. With --ready-file, the file appears once every router
    has joined.
*/
#include "agent.h"
#include "ep_addr.h"
#include "ep_config.h"
#include "ep_log.h"
#include "ep_pki_tls.h"
#include "ep_ready.h"
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

//  Opens a TCP connection to address that will never say anything.
static int
s_stray (const char *address)
{
    ep_addr_t addr;
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    if (ep_addr_parse (&addr, address, EP_ADDR_DIAL, NULL, 0) != 0
    ||  ep_addr_resolve (&addr, &sa, &len, NULL, 0) != 0)
        return -1;
    int fd = socket (sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect (fd, (struct sockaddr *) &sa, len) != 0) {
        close (fd);
        fd = -1;
    }
    return fd;
}

//  The routers this process runs, with their TLS contexts, and the stray
//  connections it holds.
typedef struct {
    size_t routers;             //  how many
    agent_t **agents;           //  one per router
    SSL_CTX **contexts;         //  each one's TLS client context
    int *strays;                //  connections that never join (-1: failed)
    int64_t stray_count;        //  how many
    struct pollfd *fds;         //  one per router, for poll
} s_fleet_t;

//  Makes the agents of a fleet: ids <prefix>0.. (count > 0) or id, each
//  with <bundle>/<id>.crt and .key. Returns 0, or -1 after saying why.
static int
s_fleet_init (s_fleet_t *self, const agent_config_t *base, const char *bundle, const char *id,
              const char *prefix, int64_t count)
{
    self->routers = count? (size_t) count: 1;
    self->agents = (agent_t **) calloc (self->routers, sizeof (agent_t *));
    self->contexts = (SSL_CTX **) calloc (self->routers, sizeof (SSL_CTX *));
    self->fds = (struct pollfd *) calloc (self->routers, sizeof (struct pollfd));
    char *ca = zsys_sprintf ("%s/ca.crt", bundle);
    int rc = 0;
    for (size_t i = 0; i < self->routers && rc == 0; i++) {
        char router_id [80];
        if (count)
            snprintf (router_id, sizeof router_id, "%s%zu", prefix, i);
        else
            snprintf (router_id, sizeof router_id, "%s", id);
        char *cert = zsys_sprintf ("%s/%s.crt", bundle, router_id);
        char *key = zsys_sprintf ("%s/%s.key", bundle, router_id);
        char err [512];
        self->contexts [i] = ep_pki_client_ctx (cert, key, ca, err, sizeof err);
        if (!self->contexts [i]) {
            fprintf (stderr, "edgeplane-router: %s\n", err);
            rc = -1;
        }
        else {
            agent_config_t agent = *base;
            agent.id = router_id;
            agent.ctx = self->contexts [i];
            self->agents [i] = agent_new (&agent);
        }
        free (cert);
        free (key);
    }
    free (ca);
    return rc;
}

static void
s_fleet_strays (s_fleet_t *self, const char *controller, int64_t count)
{
    self->stray_count = count;
    self->strays = (int *) calloc (count + 1, sizeof (int));
    for (int64_t i = 0; i < count; i++)
        self->strays [i] = s_stray (controller);
    if (count)
        ep_log_info ("holding %lld connections that never join", (long long) count);
}

//  Prints one line of totals.
static void
s_fleet_progress (s_fleet_t *self, int64_t started)
{
    size_t joined = 0, terminators = 0, open = 0;
    uint64_t acked = 0, ignored = 0;
    for (size_t i = 0; i < self->routers; i++) {
        const agent_stats_t *stats = agent_stats (self->agents [i]);
        joined += stats->joined;
        terminators += stats->terminators;
        open += stats->sessions;
        acked += stats->closes_acked;
        ignored += stats->closes_ignored;
    }
    printf ("%6.1fs routers joined %zu/%zu, terminators %zu, sessions %zu, closes acked %llu, ignored %llu\n",
            (ep_mono_ms () - started) / 1000.0, joined, self->routers, terminators, open,
            (unsigned long long) acked, (unsigned long long) ignored);
    fflush (stdout);
}

//  Runs every agent in one poll loop until Ctrl-C or run_for ms (0: no
//  limit), printing progress every so often (0: never) and writing
//  ready_file (if not NULL) once every router has joined.
static void
s_fleet_run (s_fleet_t *self, int64_t run_for, int64_t every, const char *ready_file, const char *controller)
{
    int64_t started = ep_mono_ms ();
    int64_t next_progress = started + every;
    bool ready = false;
    while (!zsys_interrupted && (run_for == 0 || ep_mono_ms () - started < run_for)) {
        int64_t now = ep_mono_ms ();
        int64_t timeout = 1000;
        size_t joined = 0;
        for (size_t i = 0; i < self->routers; i++) {
            self->fds [i] = (struct pollfd) { .fd = agent_fd (self->agents [i]), .events = POLLIN };
            int64_t due = agent_deadline (self->agents [i]) - now;
            if (due < timeout)
                timeout = due < 0? 0: due;
            joined += agent_stats (self->agents [i])->joined;
        }
        if (!ready && joined == self->routers && ready_file) {
            json_t *endpoints = json_pack ("{s:s}", "controller", controller);
            ep_ready_write (ready_file, "router", endpoints);
            json_decref (endpoints);
            ready = true;
        }
        if (poll (self->fds, self->routers, (int) timeout) < 0 && !zsys_interrupted)
            break;
        for (size_t i = 0; i < self->routers; i++) {
            if (self->fds [i].revents)
                agent_handle (self->agents [i]);
            agent_tick (self->agents [i]);
        }
        if (every && ep_mono_ms () >= next_progress) {
            s_fleet_progress (self, started);
            next_progress = ep_mono_ms () + every;
        }
    }
}

static void
s_fleet_end (s_fleet_t *self)
{
    for (size_t i = 0; i < self->routers; i++) {
        if (self->agents [i]) {
            const agent_stats_t *stats = agent_stats (self->agents [i]);
            if (!stats->joined && *stats->last_error)
                ep_log_warn ("router %s not joined: %s", agent_id (self->agents [i]), stats->last_error);
            agent_destroy (&self->agents [i]);
        }
        if (self->contexts [i])
            SSL_CTX_free (self->contexts [i]);
    }
    for (int64_t i = 0; i < self->stray_count; i++)
        if (self->strays [i] >= 0)
            close (self->strays [i]);
    free (self->strays);
    free (self->fds);
    free (self->agents);
    free (self->contexts);
}

int
main (int argc, char **argv)
{
    static char *controller, *bundle, *id, *prefix, *state_dir, *log_level, *log_format, *ready_file;
    static int64_t count, sessions, stray, heartbeat, run_for, progress, protocol, max_services;
    static int64_t link_delay, link_jitter;
    static char *link_drop_text;
    static char *churn_text, *ack_text;
    static const char *formats [] = { "text", "json", NULL };
    ep_opt_t opts [] = {
        { .name = "controller", .env = "EDGEPLANE_CONTROLLER", .def = EP_DEFAULT_CHANNEL_LISTEN,
          .type = EP_OPT_HOSTPORT, .str = &controller,
          .help = "The control channel (host:port), resolved at every connect." },
        { .name = "bundle", .env = "EDGEPLANE_ROUTER_BUNDLE", .def = ".", .type = EP_OPT_STRING, .str = &bundle,
          .help = "Directory with <id>.crt, <id>.key and ca.crt (from `edgeplane pki issue router`)." },
        { .name = "id", .env = "EDGEPLANE_ROUTER_ID", .type = EP_OPT_STRING, .str = &id,
          .help = "This router's id (one router)." },
        { .name = "count", .def = "0", .type = EP_OPT_INT, .num = &count, .min = 0, .max = 1000000,
          .help = "Simulate this many routers, ids <prefix>0 .. <prefix>N-1." },
        { .name = "prefix", .def = "router-", .type = EP_OPT_STRING, .str = &prefix,
          .help = "Id prefix of simulated routers." },
        { .name = "state-dir", .env = "EDGEPLANE_ROUTER_STATE", .type = EP_OPT_STRING, .str = &state_dir,
          .def_help = "the bundle directory", .help = "Where terminator ids are kept across restarts." },
        { .name = "sessions", .def = "5", .type = EP_OPT_INT, .num = &sessions, .min = 0, .max = 10000000,
          .help = "Sessions each router holds open." },
        { .name = "churn", .def = "0", .type = EP_OPT_STRING, .str = &churn_text,
          .help = "Sessions each router closes and replaces per second." },
        { .name = "ack-share", .def = "1", .type = EP_OPT_STRING, .str = &ack_text,
          .help = "Share of CloseSessions acknowledged, 0 to 1." },
        { .name = "heartbeat", .def = "5s", .type = EP_OPT_DURATION, .num = &heartbeat, .min = 10, .max = 3600000,
          .help = "Session heartbeat batch period." },
        { .name = "link-delay", .def = "0", .type = EP_OPT_DURATION, .num = &link_delay, .min = 0, .max = 600000,
          .help = "Simulated link: hold each heartbeat reply this long." },
        { .name = "link-jitter", .def = "0", .type = EP_OPT_DURATION, .num = &link_jitter, .min = 0, .max = 600000,
          .help = "Simulated link: +- this much on each reply's delay." },
        { .name = "link-drop", .def = "0", .type = EP_OPT_STRING, .str = &link_drop_text,
          .help = "Simulated link: share of heartbeat replies lost, 0 to 1." },
        { .name = "stray", .def = "0", .type = EP_OPT_INT, .num = &stray, .min = 0, .max = 100000,
          .help = "Also hold this many connections that never join." },
        { .name = "run-for", .def = "0", .type = EP_OPT_DURATION, .num = &run_for, .min = 0, .max = INT64_MAX,
          .help = "Stop after this long (0: until Ctrl-C)." },
        { .name = "progress", .def = "0", .type = EP_OPT_DURATION, .num = &progress, .min = 0, .max = INT64_MAX,
          .help = "Print a progress line this often (0: only for 50 routers or more, every 5s)." },
        { .name = "log-level", .env = "EDGEPLANE_LOG_LEVEL", .def = "info", .type = EP_OPT_ENUM,
          .words = ep_log_level_names, .str = &log_level, .help = "error, warn, info or debug." },
        { .name = "log-format", .env = "EDGEPLANE_LOG_FORMAT", .def = "text", .type = EP_OPT_ENUM,
          .words = formats, .str = &log_format, .help = "text or json." },
        { .name = "protocol-version", .def = "2", .type = EP_OPT_INT, .num = &protocol, .min = 1, .max = 2,
          .help = "Channel protocol version to speak (1: full slices at every join, no NACK)." },
        { .name = "max-services", .def = "0", .type = EP_OPT_INT, .num = &max_services, .min = 0, .max = 1000000,
          .help = "Refuse (NACK) a slice hosting more services than this (0: no limit)." },
        { .name = "ready-file", .type = EP_OPT_STRING, .str = &ready_file,
          .help = "Write this file once every router has joined." },
    };
    ep_config_t *config = ep_config_new ("edgeplane-router", "Router agent and fleet simulator.");
    ep_config_add (config, opts, EP_COUNT (opts));
    ep_config_parse_or_exit (config, argc, argv);
    ep_log_init_named ("router", log_level, log_format);
    signal (SIGPIPE, SIG_IGN);
    zsys_init ();
    char *end;
    double churn = strtod (churn_text, &end);
    double ack_share = *end? -1: strtod (ack_text, &end);
    double link_drop = *end? -1: strtod (link_drop_text, &end);
    if (churn < 0 || ack_share < 0 || ack_share > 1 || link_drop < 0 || link_drop > 1 || *end) {
        fprintf (stderr, "edgeplane-router: --churn takes a number >= 0, --ack-share and --link-drop a number from 0 to 1\n");
        return 2;
    }
    if (!id && count == 0) {
        fprintf (stderr, "edgeplane-router: give --id ID (one router) or --count N (a fleet)\n");
        return 2;
    }
    struct rlimit limit;
    if (getrlimit (RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit (RLIMIT_NOFILE, &limit);
    }
    agent_config_t base = {
        .controller = controller, .state_dir = state_dir? state_dir: bundle, .sessions = (int) sessions,
        .churn_per_s = churn, .ack_share = ack_share, .heartbeat_ms = heartbeat,
        .backoff_base_ms = 200, .backoff_max_ms = 30000, .request_timeout_ms = 5000,
        .protocol_version = (uint32_t) protocol, .max_services = (int) max_services,
        .link_delay_ms = link_delay, .link_jitter_ms = link_jitter, .link_drop = link_drop
    };
    s_fleet_t fleet = { 0 };
    int rc = s_fleet_init (&fleet, &base, bundle, id, prefix, count) == 0? 0: 1;
    s_fleet_strays (&fleet, controller, stray);
    if (rc == 0)
        s_fleet_run (&fleet, run_for, progress? progress: (fleet.routers >= 50? 5000: 0), ready_file, controller);
    s_fleet_end (&fleet);
    ep_config_destroy (&config);
    return rc;
}
