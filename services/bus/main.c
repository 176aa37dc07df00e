/*  edgeplane-bus: the event broker.

    XSUB where services publish, XPUB where anyone authorised subscribes,
    CURVE on both. The forwarding loop is in forwarder.c, the decision on
    each message in bus.c. Losses are never silent: every message carries
    its publisher's seq, and subscribers detect gaps (ep_subscriber).
*/
#include "ep_service.h"
#include "ep_audit.h"
#include "forwarder.h"

//  Opens the audit log when a path is set. Returns 0 or -1.
static int
s_open_audit (const char *path, int64_t max, int64_t backups, const char *fsync,
              ep_audit_t **audit)
{
    if (!path)
        return 0;
    ep_audit_sync_t sync;
    EP_ASSERT (ep_audit_sync_parse (fsync, &sync) == 0);
    char err [512];
    *audit = ep_audit_new (path, max, (int) backups, sync, err, sizeof err);
    if (!*audit) {
        ep_log_error ("%s", err);
        return -1;
    }
    ep_log_info ("audit log %s (rotate at %lld bytes, %lld backups, fsync %s)", path,
                 (long long) max, (long long) backups, fsync);
    return 0;
}

int
main (int argc, char **argv)
{
    static char *pub_listen, *sub_listen;
    static int64_t hwm;
    static bool plaintext;
    static char *audit_path, *audit_fsync;
    static int64_t audit_max, audit_backups;
    static const char *fsync_words [] = { "never", "interval", "always", NULL };
    ep_opt_t opts [] = {
        { .name = "pub-listen", .env = "EDGEPLANE_BUS_PUB_LISTEN", .def = EP_DEFAULT_BUS_PUB,
          .type = EP_OPT_ENDPOINT, .str = &pub_listen,
          .help = "Where publishers connect (the XSUB side)." },
        { .name = "sub-listen", .env = "EDGEPLANE_BUS_SUB_LISTEN", .def = EP_DEFAULT_BUS_SUB,
          .type = EP_OPT_ENDPOINT, .str = &sub_listen,
          .help = "Where subscribers connect (the XPUB side)." },
        { .name = "hwm", .env = "EDGEPLANE_BUS_HWM", .def = "100000", .type = EP_OPT_INT,
          .num = &hwm, .min = 1, .max = 10000000,
          .help = "Messages queued per peer before the bus drops for that peer." },
        { .name = "plaintext", .env = "EDGEPLANE_BUS_PLAINTEXT", .def = "false",
          .type = EP_OPT_BOOL, .flag = &plaintext,
          .help = "No CURVE, anyone may publish: for benchmarks on loopback only." },
        { .name = "audit-log", .env = "EDGEPLANE_AUDIT_LOG", .type = EP_OPT_STRING, .str = &audit_path,
          .help = "Write every event as one JSON line to this file (docs/audit.md); off when unset." },
        { .name = "audit-max-size", .env = "EDGEPLANE_AUDIT_MAX_SIZE", .def = "104857600",
          .type = EP_OPT_INT, .num = &audit_max, .min = 0, .max = INT64_MAX,
          .help = "Rotate the audit log at this many bytes (0: never)." },
        { .name = "audit-backups", .env = "EDGEPLANE_AUDIT_BACKUPS", .def = "5", .type = EP_OPT_INT,
          .num = &audit_backups, .min = 0, .max = 1000, .help = "Rotated audit files kept." },
        { .name = "audit-fsync", .env = "EDGEPLANE_AUDIT_FSYNC", .def = "interval", .type = EP_OPT_ENUM,
          .words = fsync_words, .str = &audit_fsync,
          .help = "never, interval (about once a second) or always (after every line)." },
    };
    ep_service_t *service = ep_service_new ("bus", "Event broker: services publish, anyone authorised subscribes.",
                                            EP_HTTP_LISTEN_BUS, opts, EP_COUNT (opts), argc, argv);
    ep_service_set_plaintext (service, plaintext);
    ep_audit_t *audit = NULL;
    int rc = s_open_audit (audit_path, audit_max, audit_backups, audit_fsync, &audit);
    forwarder_t *forwarder = forwarder_new (service, (int) hwm, plaintext, &audit);
    if (rc == 0)
        rc = forwarder_bind (forwarder, pub_listen, sub_listen);
    if (rc == 0)
        rc = ep_service_ready (service);
    if (rc == 0)
        rc = forwarder_run (forwarder);
    ep_log_info ("stopping");
    forwarder_destroy (&forwarder);
    ep_service_destroy (&service);
    return rc == 0? 0: 1;
}
