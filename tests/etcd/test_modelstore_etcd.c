/*  test_modelstore_etcd.c: the model's store contract (modelstore_cases.inc)
    on the etcd backend, each test under its own prefix of the fixture's
    cluster; and what only a shared store can do: two instances on one
    prefix, of which a batch decided on a stale mirror fails whole. */
#include <criterion/criterion.h>
#include "ep_etcd_cluster.h"
#include "ep_test.h"
#include "modelstore_etcd.h"

static char *s_dir;
static char *s_prefix;
static ep_etcd_t *s_etcd;
static modelstore_t *s_store;

#define MODELSTORE_INLINE false

static modelstore_t *
s_open_on (const char *prefix)
{
    char err [512] = "";
    modelstore_etcd_config_t config = { .etcd = s_etcd, .prefix = prefix };
    modelstore_t *store = modelstore_etcd_new (&config, err, sizeof err);
    cr_assert_not_null (store, "%s", err);
    return store;
}

static modelstore_t *
s_open_again (void)
{
    return s_open_on (s_prefix);
}

static char *s_restored_dir;        //  a single-member etcd restored from a backup
static ep_etcd_t *s_restored_etcd;  //  its client

//  The backup (an etcd snapshot) restored as a new cluster: the store on
//  the same prefix there.
static modelstore_t *
s_restore (const char *backup)
{
    const char *endpoint = NULL;
    s_restored_dir = ep_etcd_restored_start (backup, &endpoint);
    cr_assert (s_restored_dir, "etcdctl snapshot restore of %s or its member failed", backup);
    char err [512] = "";
    ep_etcd_config_t config = { .endpoints = endpoint, .timeout_ms = 3000, .connect_timeout_ms = 500 };
    s_restored_etcd = ep_etcd_new (&config, err, sizeof err);
    cr_assert (s_restored_etcd, "%s", err);
    modelstore_etcd_config_t store = { .etcd = s_restored_etcd, .prefix = s_prefix };
    modelstore_t *restored = modelstore_etcd_new (&store, err, sizeof err);
    cr_assert_not_null (restored, "%s", err);
    return restored;
}

static char *
s_backup_path (void)
{
    return zsys_sprintf ("%s/backup.etcd", s_dir);
}

static void
s_poll (void)
{
    ep_etcd_wait (s_etcd, s_restored_etcd? 50: 100);
    if (s_restored_etcd)
        ep_etcd_wait (s_restored_etcd, 50);
}

static void
s_setup (void)
{
    const char *endpoints = ep_etcd_cluster_endpoints ();
    cr_assert (endpoints, "no etcd cluster: run this suite through ctest (fixture etcd_cluster)");
    char err [256];
    ep_etcd_config_t config = { .endpoints = endpoints, .timeout_ms = 3000,
                                .connect_timeout_ms = 500, .watch_idle_ms = 3000 };
    s_etcd = ep_etcd_new (&config, err, sizeof err);
    cr_assert (s_etcd, "%s", err);
    s_dir = ep_tmpdir_new ("modelstore-etcd");
    s_prefix = ep_etcd_test_prefix ("modelstore");
    s_store = s_open_again ();
}

static void
s_teardown (void)
{
    modelstore_destroy (&s_store);
    ep_etcd_destroy (&s_etcd);
    ep_etcd_destroy (&s_restored_etcd);
    ep_etcd_restored_stop (&s_restored_dir);
    free (s_prefix);
    ep_tmpdir_remove (&s_dir);
}

TestSuite (modelstore, .init = s_setup, .fini = s_teardown);

#include "../unit/modelstore_cases.inc"

//  Stages in store a batch that reads service x, writes it with value
//  name, records revision 1 and saves a reply.
static void
s_stage_contender (modelstore_t *store, const char *name)
{
    cr_assert_eq (modelstore_begin (store), 0, "%s", modelstore_error (store));
    cr_assert_eq (modelstore_write_begin (store), 0);
    Ep__Entity *x = modelstore_get (store, EP__ENTITY_TYPE__ENTITY_SERVICE, "x");
    cr_assert_null (x);
    Ep__Service service = EP__SERVICE__INIT;
    service.id = (char *) "x";
    service.name = (char *) name;
    Ep__Entity entity = EP__ENTITY__INIT;
    entity.kind_case = EP__ENTITY__KIND_SERVICE;
    entity.service = &service;
    cr_assert_eq (modelstore_put (store, EP__ENTITY_TYPE__ENTITY_SERVICE, "x", name, 1, &entity), 0);
    cr_assert_eq (modelstore_put (store, EP__ENTITY_TYPE__ENTITY_SERVICE, name, name, 1, &entity), 0);
    Ep__ModelChange change = EP__MODEL_CHANGE__INIT;
    change.has_revision = true;
    change.revision = 1;
    cr_assert_eq (modelstore_record (store, &change, 0), 0);
    zframe_t *reply = zframe_new (name, strlen (name));
    cr_assert_eq (modelstore_save_reply (store, "K", name, "request", 7, reply, zclock_time ()), 0);
    zframe_destroy (&reply);
    modelstore_write_end (store, true);
}

Test (modelstore, two_instances_on_one_prefix_one_wins_the_other_is_undone_whole)
{
    modelstore_t *other = s_open_again ();
    s_stage_contender (s_store, "first");
    s_stage_contender (other, "second");
    //  Both in flight at once: exactly one applies.
    s_outcome_t a = s_outcome (), b = s_outcome ();
    modelstore_commit (s_store, s_done, &a);
    modelstore_commit (other, s_done, &b);
    int64_t deadline = zclock_mono () + S_DEADLINE_MS;
    while ((!a.calls || !b.calls) && zclock_mono () < deadline)
        s_poll ();
    cr_assert (a.calls == 1 && b.calls == 1);
    cr_assert_eq ((a.rc == 0) + (b.rc == 0), 1, "exactly one commits (%d, %d)", a.rc, b.rc);
    modelstore_t *winner = a.rc == 0? s_store: other, *loser = a.rc == 0? other: s_store;
    const char *won = a.rc == 0? "first": "second", *lost = a.rc == 0? "second": "first";
    cr_assert (strstr (modelstore_error (loser), "changed under this batch"), "%s",
               modelstore_error (loser));
    //  The loser may run its batch again once it caught up with the winner.
    cr_assert (modelstore_retry (loser));
    cr_assert_not (modelstore_retry (winner));
    zlistx_destroy (&a.ids);
    zlistx_destroy (&b.ids);

    //  A third instance sees the winner's batch whole and nothing of the loser's.
    modelstore_t *third = s_open_again ();
    Ep__Entity *x = modelstore_get (third, EP__ENTITY_TYPE__ENTITY_SERVICE, "x");
    cr_assert_not_null (x);
    cr_assert_str_eq (x->service->name, won);
    ep__entity__free_unpacked (x, NULL);
    x = modelstore_get (third, EP__ENTITY_TYPE__ENTITY_SERVICE, won);
    cr_assert_not_null (x);
    ep__entity__free_unpacked (x, NULL);
    cr_assert_null (modelstore_get (third, EP__ENTITY_TYPE__ENTITY_SERVICE, lost));
    ep_replycache_t *cache = ep_replycache_new (10, 60000);
    cr_assert_eq (modelstore_load_replies (third, cache, zclock_time (), 0), 1, "the winner's reply only");
    zframe_t *found = NULL;
    cr_assert_eq (ep_replycache_lookup (cache, "K", lost, "request", 7, 0, &found), EP_REPLYCACHE_MISS);
    ep_replycache_destroy (&cache);
    modelstore_query_t changes = { .kind = MODELSTORE_CHANGES };
    char *revisions = s_read_on (third, &changes);
    cr_assert_str_eq (revisions, "1");
    free (revisions);

    //  The loser reloads its mirror; its next batch sees revision 1, and
    //  writing revision 1 again is refused before it reaches etcd.
    deadline = zclock_mono () + S_DEADLINE_MS;
    while (modelstore_begin (loser) != 0 && zclock_mono () < deadline)
        s_poll ();
    cr_assert (modelstore_in_batch (loser), "%s", modelstore_error (loser));
    cr_assert (modelstore_ready (loser));
    uint64_t current = 0;
    char generation [33];
    cr_assert_eq (modelstore_current (loser, &current, generation), 1);
    cr_assert_eq (current, 1, "the loser knows the winner's revision");
    x = modelstore_get (loser, EP__ENTITY_TYPE__ENTITY_SERVICE, "x");
    cr_assert_not_null (x, "the loser's mirror has the winner's write");
    ep__entity__free_unpacked (x, NULL);
    Ep__ModelChange change = EP__MODEL_CHANGE__INIT;
    change.has_revision = true;
    change.revision = 1;
    cr_assert_neq (modelstore_record (loser, &change, 0), 0);
    cr_assert (strstr (modelstore_error (loser), "not the next"), "%s", modelstore_error (loser));
    cr_assert_neq (s_commit_on (loser), 0);
    modelstore_destroy (&third);
    modelstore_destroy (&other);
}

Test (modelstore, a_batch_over_max_txn_ops_fails_whole_and_says_what_to_do)
{
    char err [512];
    modelstore_etcd_config_t config = { .etcd = s_etcd, .prefix = s_prefix, .max_txn_ops = 4 };
    modelstore_t *small = modelstore_etcd_new (&config, err, sizeof err);
    cr_assert_not_null (small, "%s", err);
    cr_assert_eq (modelstore_begin (small), 0);
    char id [8];
    for (int i = 0; i < 5; i++) {
        Ep__Service service = EP__SERVICE__INIT;
        snprintf (id, sizeof id, "s%d", i);
        service.id = id;
        Ep__Entity entity = EP__ENTITY__INIT;
        entity.kind_case = EP__ENTITY__KIND_SERVICE;
        entity.service = &service;
        cr_assert_eq (modelstore_put (small, EP__ENTITY_TYPE__ENTITY_SERVICE, id, id, 1, &entity), 0);
    }
    cr_assert_neq (s_commit_on (small), 0);
    cr_assert (strstr (modelstore_error (small), "max-txn-ops"), "%s", modelstore_error (small));
    cr_assert_null (modelstore_get (s_store, EP__ENTITY_TYPE__ENTITY_SERVICE, "s0"));
    modelstore_destroy (&small);
}

