/*  test_modelstore.c: the model's store contract (modelstore.h), checked
    through the interface only, so that a second backend can run the same
    cases; here against the SQLite backend. */
#include <criterion/criterion.h>
#include "ep_test.h"
#include "modelstore_sqlite.h"

static char *s_dir;
static modelstore_t *s_store;

static void
s_setup (void)
{
    s_dir = ep_tmpdir_new ("modelstore");
    char *path = zsys_sprintf ("%s/model.db", s_dir);
    s_store = modelstore_sqlite_open (path);
    cr_assert_not_null (s_store);
    free (path);
}

static void
s_teardown (void)
{
    modelstore_destroy (&s_store);
    ep_tmpdir_remove (&s_dir);
}

TestSuite (modelstore, .init = s_setup, .fini = s_teardown);

//  Completions record that they were called, and with what.
typedef struct {
    int calls;                  //  done calls
    int rc;                     //  the last outcome
    zlistx_t *ids;              //  rows' ids (entities) or revisions (changes), in order
} s_outcome_t;

static void
s_done (void *arg, int rc, const char *error)
{
    (void) error;
    s_outcome_t *outcome = (s_outcome_t *) arg;
    outcome->calls++;
    outcome->rc = rc;
}

static bool
s_row (void *arg, const modelstore_row_t *row)
{
    s_outcome_t *outcome = (s_outcome_t *) arg;
    cr_assert_gt (row->size, 0);
    if (row->id)
        zlistx_add_end (outcome->ids, zsys_sprintf ("%s", row->id));
    else
        zlistx_add_end (outcome->ids, zsys_sprintf ("%llu", (unsigned long long) row->revision));
    return true;
}

static s_outcome_t
s_outcome (void)
{
    s_outcome_t outcome = { .ids = zlistx_new () };
    zlistx_set_destructor (outcome.ids, (czmq_destructor *) zstr_free);
    return outcome;
}

//  The ids the query's rows gave, joined by spaces; the query completed
//  once with rc 0 before modelstore_read returned (SQLite is inline).
static char *
s_read (modelstore_query_t *query)
{
    s_outcome_t outcome = s_outcome ();
    modelstore_read (s_store, query, s_row, s_done, &outcome);
    cr_assert_eq (outcome.calls, 1);
    cr_assert_eq (outcome.rc, 0);
    char *joined = strdup ("");
    for (char *id = (char *) zlistx_first (outcome.ids); id; id = (char *) zlistx_next (outcome.ids)) {
        char *next = zsys_sprintf ("%s%s%s", joined, *joined? " ": "", id);
        free (joined);
        joined = next;
    }
    zlistx_destroy (&outcome.ids);
    return joined;
}

static int
s_commit (void)
{
    s_outcome_t outcome = s_outcome ();
    modelstore_commit (s_store, s_done, &outcome);
    cr_assert_eq (outcome.calls, 1, "the SQLite store completes inline");
    zlistx_destroy (&outcome.ids);
    return outcome.rc;
}

static int
s_put_service (const char *id, uint64_t version)
{
    Ep__EntityMeta meta = EP__ENTITY_META__INIT;
    meta.has_version = true;
    meta.version = version;
    Ep__Service service = EP__SERVICE__INIT;
    service.id = (char *) id;
    service.name = (char *) id;
    service.meta = &meta;
    Ep__Entity entity = EP__ENTITY__INIT;
    entity.kind_case = EP__ENTITY__KIND_SERVICE;
    entity.service = &service;
    return modelstore_put (s_store, EP__ENTITY_TYPE__ENTITY_SERVICE, id, id, version, &entity);
}

static int
s_put_router (const char *id, const char *hosted_service, uint64_t version)
{
    Ep__HostedService hosted = EP__HOSTED_SERVICE__INIT;
    hosted.service_id = (char *) hosted_service;
    Ep__HostedService *hosted_ptrs [1] = { &hosted };
    Ep__Router router = EP__ROUTER__INIT;
    router.id = (char *) id;
    router.n_hosted = hosted_service? 1: 0;
    router.hosted = hosted_ptrs;
    Ep__Entity entity = EP__ENTITY__INIT;
    entity.kind_case = EP__ENTITY__KIND_ROUTER;
    entity.router = &router;
    return modelstore_put (s_store, EP__ENTITY_TYPE__ENTITY_ROUTER, id, id, version, &entity);
}

static int
s_record (uint64_t revision, uint64_t forget_through)
{
    Ep__ModelChange change = EP__MODEL_CHANGE__INIT;
    change.has_revision = true;
    change.revision = revision;
    return modelstore_record (s_store, &change, forget_through);
}

static bool
s_exists (Ep__EntityType type, const char *id)
{
    Ep__Entity *entity = modelstore_get (s_store, type, id);
    if (entity)
        ep__entity__free_unpacked (entity, NULL);
    return entity != NULL;
}

Test (modelstore, a_write_undone_leaves_the_rest_of_its_batch)
{
    cr_assert_eq (modelstore_begin (s_store), 0);
    cr_assert (modelstore_in_batch (s_store));
    cr_assert_eq (modelstore_write_begin (s_store), 0);
    cr_assert_eq (s_put_service ("kept", 1), 0);
    modelstore_write_end (s_store, true);
    cr_assert_eq (modelstore_write_begin (s_store), 0);
    cr_assert_eq (s_put_service ("undone", 1), 0);
    cr_assert (s_exists (EP__ENTITY_TYPE__ENTITY_SERVICE, "undone"), "a batch reads what it staged");
    modelstore_write_end (s_store, false);
    cr_assert_not (s_exists (EP__ENTITY_TYPE__ENTITY_SERVICE, "undone"));
    cr_assert_eq (s_commit (), 0);
    cr_assert_not (modelstore_in_batch (s_store));
    cr_assert (s_exists (EP__ENTITY_TYPE__ENTITY_SERVICE, "kept"));
    cr_assert_not (s_exists (EP__ENTITY_TYPE__ENTITY_SERVICE, "undone"));

    //  An abandoned batch keeps nothing.
    cr_assert_eq (modelstore_begin (s_store), 0);
    cr_assert_eq (modelstore_write_begin (s_store), 0);
    cr_assert_eq (s_put_service ("abandoned", 1), 0);
    modelstore_write_end (s_store, true);
    modelstore_abandon (s_store);
    cr_assert_not (modelstore_in_batch (s_store));
    cr_assert_not (s_exists (EP__ENTITY_TYPE__ENTITY_SERVICE, "abandoned"));
}

Test (modelstore, the_hosted_index_follows_routers_inside_the_batch)
{
    cr_assert_eq (modelstore_begin (s_store), 0);
    cr_assert_eq (s_put_service ("s1", 1), 0);
    cr_assert_eq (s_put_router ("r2", "s1", 2), 0);
    cr_assert_eq (s_put_router ("r1", "s1", 3), 0);
    zlistx_t *routers = zlistx_new ();
    zlistx_set_destructor (routers, (czmq_destructor *) zstr_free);
    cr_assert_eq (modelstore_hosting (s_store, "s1", routers), 0);
    cr_assert_eq (zlistx_size (routers), 2);
    cr_assert_str_eq ((char *) zlistx_first (routers), "r1", "in id order");
    zlistx_purge (routers);
    cr_assert_eq (s_put_router ("r2", NULL, 4), 0);            //  stops hosting
    cr_assert_eq (modelstore_remove (s_store, EP__ENTITY_TYPE__ENTITY_ROUTER, "r1"), 0);
    cr_assert_eq (modelstore_hosting (s_store, "s1", routers), 0);
    cr_assert_eq (zlistx_size (routers), 0);
    zlistx_destroy (&routers);
    cr_assert_eq (s_commit (), 0);

    modelstore_query_t list = { .kind = MODELSTORE_LIST, .type = EP__ENTITY_TYPE__ENTITY_ROUTER };
    char *ids = s_read (&list);
    cr_assert_str_eq (ids, "r2");
    free (ids);
}

Test (modelstore, change_records_are_retained_from_the_oldest_kept)
{
    cr_assert_eq (modelstore_begin (s_store), 0);
    for (uint64_t revision = 1; revision <= 5; revision++)
        cr_assert_eq (s_record (revision, revision > 3? revision - 3: 0), 0);
    cr_assert_eq (s_commit (), 0);
    modelstore_query_t changes = { .kind = MODELSTORE_CHANGES, .since = 0 };
    char *revisions = s_read (&changes);
    cr_assert_str_eq (revisions, "3 4 5");
    cr_assert_eq (changes.oldest, 3);
    free (revisions);
    changes = (modelstore_query_t) { .kind = MODELSTORE_CHANGES, .since = 3, .limit = 1 };
    revisions = s_read (&changes);
    cr_assert_str_eq (revisions, "4");
    free (revisions);
    uint64_t revision;
    char generation [33];
    bool restored;
    cr_assert_eq (modelstore_state (s_store, &revision, generation, &restored), 0);
    cr_assert_eq (revision, 5, "the last record is the store's revision");
}

Test (modelstore, a_view_stays_at_its_revision_while_writes_go_on)
{
    cr_assert_eq (modelstore_begin (s_store), 0);
    cr_assert_eq (s_put_service ("a", 1), 0);
    cr_assert_eq (s_record (1, 0), 0);
    cr_assert_eq (s_commit (), 0);
    uint64_t pinned;
    modelstore_view_t *view = modelstore_view_open (s_store, &pinned);
    cr_assert_not_null (view, "%s", modelstore_error (s_store));
    cr_assert_eq (pinned, 1);

    cr_assert_eq (modelstore_begin (s_store), 0);
    cr_assert_eq (s_put_service ("b", 2), 0);
    cr_assert_eq (s_record (2, 0), 0);
    cr_assert_eq (s_commit (), 0);

    modelstore_query_t page = { .kind = MODELSTORE_PAGE, .view = view, .after_id = "" };
    char *ids = s_read (&page);
    cr_assert_str_eq (ids, "a", "the view does not see revision 2");
    free (ids);
    modelstore_query_t list = { .kind = MODELSTORE_LIST, .type = EP__ENTITY_TYPE__ENTITY_SERVICE };
    ids = s_read (&list);
    cr_assert_str_eq (ids, "a b");
    free (ids);
    modelstore_view_close (s_store, &view);
    cr_assert_null (view);
}

Test (modelstore, saved_replies_commit_with_their_batch)
{
    zframe_t *reply = zframe_new ("reply", 5);
    cr_assert_eq (modelstore_begin (s_store), 0);
    cr_assert_eq (modelstore_save_reply (s_store, "K", "kept", "request", 7, reply, 1000), 0);
    cr_assert_eq (s_commit (), 0);
    cr_assert_eq (modelstore_begin (s_store), 0);
    cr_assert_eq (modelstore_save_reply (s_store, "K", "abandoned", "request", 7, reply, 1000), 0);
    modelstore_abandon (s_store);
    ep_replycache_t *cache = ep_replycache_new (10, 60000);
    cr_assert_eq (modelstore_load_replies (s_store, cache, 2000, 0), 1);
    zframe_t *found = NULL;
    cr_assert_eq (ep_replycache_lookup (cache, "K", "kept", "request", 7, 0, &found), EP_REPLYCACHE_HIT);
    cr_assert (zframe_eq (found, reply));
    ep_replycache_destroy (&cache);
    zframe_destroy (&reply);
}

Test (modelstore, a_backup_restored_says_so_until_a_new_generation)
{
    cr_assert_eq (modelstore_set_generation (s_store, "g1"), 0);
    char *backup = zsys_sprintf ("%s/backup.db", s_dir);
    s_outcome_t outcome = s_outcome ();
    modelstore_backup (s_store, backup, s_done, &outcome);
    cr_assert_eq (outcome.calls, 1);
    cr_assert_eq (outcome.rc, 0);
    zlistx_destroy (&outcome.ids);

    modelstore_t *restored_store = modelstore_sqlite_open (backup);
    cr_assert_not_null (restored_store);
    uint64_t revision;
    char generation [33];
    bool restored;
    cr_assert_eq (modelstore_state (restored_store, &revision, generation, &restored), 0);
    cr_assert (restored);
    cr_assert_str_eq (generation, "g1");
    cr_assert_eq (modelstore_set_generation (restored_store, "g2"), 0);
    cr_assert_eq (modelstore_state (restored_store, &revision, generation, &restored), 0);
    cr_assert_not (restored);
    cr_assert_str_eq (generation, "g2");
    modelstore_destroy (&restored_store);

    cr_assert_eq (modelstore_state (s_store, &revision, generation, &restored), 0);
    cr_assert_not (restored, "the original is not marked");
    free (backup);
}
