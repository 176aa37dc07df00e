/*  edgeplane migrate --to etcd: the embedded model (model.db) into etcd.

    Copies every entity and retained change record of a stopped model's
    SQLite database into an empty etcd prefix, in the etcd store's layout
    (modelstore_etcd_import: the restore's loader), with the state marked
    restored, so the model started with EDGEPLANE_MODEL_STORE=etcd goes on
    from the same revision with the same entities under a new generation
    (followers resync). The model's lock on the data directory is taken for
    the copy: a running model refuses it, and no model starts during it.
    The options are the model's own (same flags, same variables), so the
    environment the model will run with is the one to migrate with.
    docs/ha.md, "Migrate from the embedded store".
*/
#include "cli.h"
#include "ep_lock.h"
#include "ep_etcd.h"
#include "modelstore_etcd.h"
#include "modelstore_sqlite.h"
#include <errno.h>
#include <libgen.h>
#include <sys/stat.h>

int
cli_migrate (int argc, char **argv)
{
    static char *to, *db_path, *endpoints, *ca, *cert, *key, *prefix;
    static int64_t max_txn_ops;
    static const char *targets [] = { "etcd", NULL };
    ep_opt_t opts [] = {
        { .name = "to", .type = EP_OPT_ENUM, .words = targets, .str = &to,
          .help = "Where the model goes: etcd (the only target)." },
        { .name = "db", .env = "EDGEPLANE_MODEL_DB", .type = EP_OPT_STRING, .str = &db_path,
          .def_help = "$EDGEPLANE_DATA_DIR/model.db", .help = "The model's SQLite database." },
        { .name = "etcd-endpoints", .env = "EDGEPLANE_ETCD_ENDPOINTS", .type = EP_OPT_STRING,
          .str = &endpoints, .help = "The cluster's client URLs, comma-separated." },
        { .name = "etcd-ca", .env = "EDGEPLANE_ETCD_CA", .type = EP_OPT_STRING, .str = &ca,
          .help = "The CA of https endpoints (PEM; default: the system's)." },
        { .name = "etcd-cert", .env = "EDGEPLANE_ETCD_CERT", .type = EP_OPT_STRING, .str = &cert,
          .help = "The model's client certificate (edgeplane pki issue client model)." },
        { .name = "etcd-key", .env = "EDGEPLANE_ETCD_KEY", .type = EP_OPT_STRING, .str = &key,
          .help = "Its key." },
        { .name = "etcd-prefix", .env = "EDGEPLANE_ETCD_PREFIX", .def = "/edgeplane/",
          .type = EP_OPT_STRING, .str = &prefix,
          .help = "The prefix of the model's keys (ends in /); must hold no key." },
        { .name = "etcd-max-txn-ops", .env = "EDGEPLANE_ETCD_MAX_TXN_OPS", .def = "128",
          .type = EP_OPT_INT, .num = &max_txn_ops, .min = 8, .max = 1000000,
          .help = "The cluster's --max-txn-ops (the copy's transactions fit it)." },
    };
    ep_common_opts_t common;
    ep_config_t *config = cli_parse ("migrate",
        "Copy the embedded model (model.db, the model stopped) into an empty etcd prefix; "
        "the model started on etcd goes on with every entity under a new generation.",
        NULL, &common, opts, EP_COUNT (opts), argc, argv);
    int rc = CLI_OK;
    if (!to) {
        fprintf (stderr, "edgeplane migrate: say where to: `edgeplane migrate --to etcd`\n");
        rc = CLI_USAGE;
    }
    else
    if (!endpoints || !*endpoints)
        rc = cli_fail ("migrate", "needs EDGEPLANE_ETCD_ENDPOINTS (or --etcd-endpoints): the cluster's "
                       "client URLs, comma-separated, as the model will use them");
    else
    if (!cert != !key)
        rc = cli_fail ("migrate", "EDGEPLANE_ETCD_CERT and EDGEPLANE_ETCD_KEY go together: the model's "
                       "client certificate and key (edgeplane pki issue client model)");
    char *path = db_path && *db_path? strdup (db_path): zsys_sprintf ("%s/model.db", common.data_dir);
    char *copy = strdup (path);
    char *dir = strdup (dirname (copy));
    free (copy);
    struct stat st;
    if (rc == CLI_OK && stat (path, &st) != 0)
        rc = cli_fail ("migrate", "no model database at %s (%s): give the model's data directory "
                       "(EDGEPLANE_DATA_DIR, --data-dir) or --db", path, strerror (errno));
    //  The model's own lock: a running model holds it; holding it here
    //  keeps one from starting on the database while it is copied.
    ep_lock_t *lock = NULL;
    if (rc == CLI_OK) {
        pid_t holder;
        lock = ep_lock_new (dir, "model", &holder);
        if (!lock && holder >= 0)
            rc = cli_fail ("migrate", "edgeplane-model (pid %d) is running on %s (it holds %s/model.lock): "
                           "stop it first; the copy must be of a model that takes no more writes",
                           (int) holder, dir, dir);
        else
        if (!lock)
            rc = cli_fail ("migrate", "cannot lock %s/model.lock: %s", dir, strerror (errno));
    }
    modelstore_t *source = NULL;
    if (rc == CLI_OK) {
        source = modelstore_sqlite_open (path);
        if (!source)
            rc = cli_fail ("migrate", "cannot open %s (the log says why)", path);
    }
    ep_etcd_t *etcd = NULL;
    char err [1024];
    if (rc == CLI_OK) {
        ep_etcd_config_t etcd_config = { .endpoints = endpoints, .ca_file = ca,
                                         .cert_file = cert, .key_file = key };
        etcd = ep_etcd_new (&etcd_config, err, sizeof err);
        if (!etcd)
            rc = cli_fail ("migrate", "EDGEPLANE_ETCD_ENDPOINTS %s: %s", endpoints, err);
    }
    modelstore_etcd_import_t copied;
    if (rc == CLI_OK) {
        modelstore_etcd_config_t store = { .etcd = etcd, .prefix = prefix, .max_txn_ops = max_txn_ops };
        if (modelstore_etcd_import (&store, source, &copied, err, sizeof err) != 0)
            rc = cli_fail ("migrate", "%s", err);
    }
    if (rc == CLI_OK) {
        printf ("copied %zu entities and %zu change records (revisions %llu..%llu) of %s "
                "into etcd %s, prefix %s, at revision %llu\n",
                copied.entities, copied.changes, (unsigned long long) copied.oldest,
                (unsigned long long) copied.revision, path, endpoints, prefix,
                (unsigned long long) copied.revision);
        printf ("next: start edgeplane-model with EDGEPLANE_MODEL_STORE=etcd and these "
                "EDGEPLANE_ETCD_* settings; it takes a new generation (followers resync). "
                "Keep %s as it is: the model no longer reads it (saved replies were not copied).\n",
                path);
    }
    ep_etcd_destroy (&etcd);
    modelstore_destroy (&source);
    ep_lock_destroy (&lock);
    free (dir);
    free (path);
    ep_config_destroy (&config);
    return rc;
}
