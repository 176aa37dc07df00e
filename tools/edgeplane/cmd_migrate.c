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
    static char *to, *db_path;
    static ep_etcd_settings_t etcd;
    static const char *targets [] = { "etcd", NULL };
    ep_opt_t opts [2 + EP_ETCD_OPTS] = {
        { .name = "to", .type = EP_OPT_ENUM, .words = targets, .str = &to,
          .help = "Where the model goes: etcd (the only target)." },
        { .name = "db", .env = "EDGEPLANE_MODEL_DB", .type = EP_OPT_STRING, .str = &db_path,
          .def_help = "$EDGEPLANE_DATA_DIR/model.db", .help = "The model's SQLite database." },
    };
    //  The model's own etcd options: the same settings it will run with.
    ep_etcd_opts (&etcd, opts + 2);
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
    ep_etcd_t *client = NULL;
    char err [1024];
    if (rc == CLI_OK) {
        client = ep_etcd_settings_client (&etcd, 0, err, sizeof err);
        if (!client)
            rc = cli_fail ("migrate", "%s", err);
    }
    modelstore_etcd_import_t copied;
    if (rc == CLI_OK) {
        modelstore_etcd_config_t store = { .etcd = client, .prefix = etcd.prefix,
                                           .max_txn_ops = etcd.max_txn_ops };
        if (modelstore_etcd_import (&store, source, &copied, err, sizeof err) != 0)
            rc = cli_fail ("migrate", "%s", err);
    }
    if (rc == CLI_OK) {
        printf ("copied %zu entities and %zu change records (revisions %llu..%llu) of %s "
                "into etcd %s, prefix %s, at revision %llu\n",
                copied.entities, copied.changes, (unsigned long long) copied.oldest,
                (unsigned long long) copied.revision, path, etcd.endpoints, etcd.prefix,
                (unsigned long long) copied.revision);
        printf ("next: start edgeplane-model with EDGEPLANE_MODEL_STORE=etcd and these "
                "EDGEPLANE_ETCD_* settings; it takes a new generation (followers resync). "
                "Keep %s as it is: the model no longer reads it (saved replies were not copied).\n",
                path);
    }
    ep_etcd_destroy (&client);
    modelstore_destroy (&source);
    ep_lock_destroy (&lock);
    free (dir);
    free (path);
    ep_config_destroy (&config);
    return rc;
}
