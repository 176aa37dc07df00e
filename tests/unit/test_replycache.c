/*  test_replycache.c: retried requests get their first reply, also from
    replies saved in a store and loaded by a new cache (a restart). */
#include <criterion/criterion.h>
#include "ep_test.h"
#include "ep_replycache.h"

static zframe_t *
s_frame (const char *text)
{
    return zframe_new (text, strlen (text));
}

Test (replycache, hit_returns_the_first_reply)
{
    ep_replycache_t *cache = ep_replycache_new (100, 60000);
    zframe_t *reply = s_frame ("reply-1");
    ep_replycache_store (cache, "keyA", "id1", "req", 3, reply, 0);
    zframe_destroy (&reply);
    zframe_t *found = NULL;
    cr_assert_eq (ep_replycache_lookup (cache, "keyA", "id1", "req", 3, 10, &found), EP_REPLYCACHE_HIT);
    cr_assert (zframe_streq (found, "reply-1"));
    ep_replycache_destroy (&cache);
}

Test (replycache, ids_are_per_caller)
{
    ep_replycache_t *cache = ep_replycache_new (100, 60000);
    zframe_t *reply = s_frame ("for A");
    ep_replycache_store (cache, "keyA", "id1", "req", 3, reply, 0);
    zframe_destroy (&reply);
    zframe_t *found = NULL;
    cr_assert_eq (ep_replycache_lookup (cache, "keyB", "id1", "req", 3, 0, &found), EP_REPLYCACHE_MISS);
    ep_replycache_destroy (&cache);
}

Test (replycache, same_id_different_request_is_a_mismatch)
{
    ep_replycache_t *cache = ep_replycache_new (100, 60000);
    zframe_t *reply = s_frame ("r");
    ep_replycache_store (cache, "k", "id1", "create x", 8, reply, 0);
    zframe_destroy (&reply);
    zframe_t *found = NULL;
    cr_assert_eq (ep_replycache_lookup (cache, "k", "id1", "create y", 8, 0, &found),
                  EP_REPLYCACHE_MISMATCH);
    ep_replycache_destroy (&cache);
}

Test (replycache, expires_by_age_and_by_count)
{
    ep_replycache_t *cache = ep_replycache_new (3, 1000);
    zframe_t *reply = s_frame ("r");
    char id [8];
    for (int i = 0; i < 5; i++) {
        snprintf (id, sizeof id, "id%d", i);
        ep_replycache_store (cache, "k", id, "q", 1, reply, i);
    }
    cr_assert_eq (ep_replycache_size (cache), 3);
    zframe_t *found = NULL;
    cr_assert_eq (ep_replycache_lookup (cache, "k", "id0", "q", 1, 10, &found), EP_REPLYCACHE_MISS);
    cr_assert_eq (ep_replycache_lookup (cache, "k", "id4", "q", 1, 10, &found), EP_REPLYCACHE_HIT);
    //  After the ttl everything is gone.
    cr_assert_eq (ep_replycache_lookup (cache, "k", "id4", "q", 1, 2000, &found), EP_REPLYCACHE_MISS);
    cr_assert_eq (ep_replycache_size (cache), 0);
    zframe_destroy (&reply);
    ep_replycache_destroy (&cache);
}

//  ---------------------------------------------------------------------
//  Durable entries

//  The table as a service's migration creates it (ep_replycache.h).
static const char *const s_migrations [] = {
    "CREATE TABLE replies (seq INTEGER PRIMARY KEY, stored_ms INTEGER NOT NULL,"
    "  caller TEXT NOT NULL, request_id TEXT NOT NULL, digest BLOB NOT NULL,"
    "  reply BLOB NOT NULL);"
};

#define WALL0   1700000000000ll     //  a wall-clock time in ms
#define TTL     1000

static char *s_dir;
static char *s_path;

static void
s_setup (void)
{
    s_dir = ep_tmpdir_new ("replycache");
    s_path = zsys_sprintf ("%s/replies.db", s_dir);
}

static void
s_teardown (void)
{
    zstr_free (&s_path);
    ep_tmpdir_remove (&s_dir);
}

static ep_store_t *
s_open (void)
{
    ep_store_t *store = ep_store_new (s_path, s_migrations, EP_COUNT (s_migrations));
    cr_assert (store, "%s", ep_store_last_error ());
    return store;
}

//  Saves (caller, id) for request "q-<id>" with reply "r-<id>" at wall_ms,
//  in a transaction of its own.
static void
s_save (ep_store_t *store, const char *caller, const char *id, int64_t wall_ms)
{
    char request [64], text [64];
    snprintf (request, sizeof request, "q-%s", id);
    snprintf (text, sizeof text, "r-%s", id);
    zframe_t *reply = s_frame (text);
    cr_assert_eq (ep_store_begin (store), 0);
    cr_assert_eq (ep_replycache_save (store, caller, id, request, strlen (request), reply, wall_ms), 0,
                  "%s", ep_store_last_error ());
    cr_assert_eq (ep_store_commit (store), 0);
    zframe_destroy (&reply);
}

//  Looks (caller, id) up with the bytes s_save used for it.
static ep_replycache_result_t
s_lookup (ep_replycache_t *cache, const char *caller, const char *id, int64_t now_ms,
          zframe_t **found)
{
    char request [64];
    snprintf (request, sizeof request, "q-%s", id);
    return ep_replycache_lookup (cache, caller, id, request, strlen (request), now_ms, found);
}

static int64_t
s_rows (ep_store_t *store)
{
    sqlite3_stmt *stmt = ep_store_stmt (store, "SELECT COUNT(*) FROM replies");
    cr_assert_eq (ep_store_step (store, stmt), 1);
    int64_t rows = sqlite3_column_int64 (stmt, 0);
    sqlite3_reset (stmt);
    return rows;
}

Test (replycache, saved_replies_answer_retries_after_a_reopen, .init = s_setup, .fini = s_teardown)
{
    ep_store_t *store = s_open ();
    s_save (store, "keyA", "id1", WALL0);
    s_save (store, "keyB", "id1", WALL0);
    //  A write whose transaction rolled back leaves no reply behind.
    zframe_t *reply = s_frame ("lost");
    cr_assert_eq (ep_store_begin (store), 0);
    cr_assert_eq (ep_replycache_save (store, "keyA", "id2", "q-id2", 5, reply, WALL0), 0);
    cr_assert_eq (ep_store_rollback (store), 0);
    zframe_destroy (&reply);
    ep_store_destroy (&store);

    store = s_open ();
    ep_replycache_t *cache = ep_replycache_new (100, TTL);
    cr_assert_eq (ep_replycache_load (cache, store, WALL0 + 10, 50), 2, "%s", ep_store_last_error ());
    zframe_t *found = NULL;
    cr_assert_eq (s_lookup (cache, "keyA", "id1", 50, &found), EP_REPLYCACHE_HIT);
    cr_assert (zframe_streq (found, "r-id1"));
    cr_assert_eq (s_lookup (cache, "keyB", "id1", 50, &found), EP_REPLYCACHE_HIT);
    cr_assert_eq (s_lookup (cache, "keyC", "id1", 50, &found), EP_REPLYCACHE_MISS);
    cr_assert_eq (s_lookup (cache, "keyA", "id2", 50, &found), EP_REPLYCACHE_MISS);
    //  The digest was saved too: other bytes under the same id are refused.
    cr_assert_eq (ep_replycache_lookup (cache, "keyA", "id1", "other", 5, 50, &found),
                  EP_REPLYCACHE_MISMATCH);
    ep_replycache_destroy (&cache);
    ep_store_destroy (&store);
}

Test (replycache, loaded_replies_keep_their_age, .init = s_setup, .fini = s_teardown)
{
    ep_store_t *store = s_open ();
    s_save (store, "k", "expired", WALL0 - TTL);
    s_save (store, "k", "old", WALL0 - TTL + 100);
    s_save (store, "k", "future", WALL0 + 5000);      //  the clock was set back since
    ep_replycache_t *cache = ep_replycache_new (100, TTL);
    //  The cache's own clock (monotonic in a service) starts anywhere.
    cr_assert_eq (ep_replycache_load (cache, store, WALL0, 7), 2);
    zframe_t *found = NULL;
    cr_assert_eq (s_lookup (cache, "k", "expired", 7, &found), EP_REPLYCACHE_MISS);
    cr_assert_eq (s_lookup (cache, "k", "old", 7 + 99, &found), EP_REPLYCACHE_HIT);
    cr_assert_eq (s_lookup (cache, "k", "future", 7 + 99, &found), EP_REPLYCACHE_HIT);
    //  "old" expires when it would have without the restart; "future"
    //  counts as new, not as older than new.
    cr_assert_eq (s_lookup (cache, "k", "old", 7 + 100, &found), EP_REPLYCACHE_MISS);
    cr_assert_eq (s_lookup (cache, "k", "future", 7 + TTL - 1, &found), EP_REPLYCACHE_HIT);
    cr_assert_eq (s_lookup (cache, "k", "future", 7 + TTL, &found), EP_REPLYCACHE_MISS);
    ep_replycache_destroy (&cache);
    ep_store_destroy (&store);
}

Test (replycache, load_keeps_the_newest_entries_up_to_the_count, .init = s_setup, .fini = s_teardown)
{
    ep_store_t *store = s_open ();
    char id [8];
    for (int i = 0; i < 5; i++) {
        snprintf (id, sizeof id, "id%d", i);
        s_save (store, "k", id, WALL0 + i);
    }
    //  The same id saved again later (its first row expired from memory
    //  before the retry): the later reply wins, as in memory.
    zframe_t *reply = s_frame ("r-id4-again");
    cr_assert_eq (ep_store_begin (store), 0);
    cr_assert_eq (ep_replycache_save (store, "k", "id4", "q-id4", 5, reply, WALL0 + 5), 0);
    cr_assert_eq (ep_store_commit (store), 0);
    zframe_destroy (&reply);
    ep_replycache_t *cache = ep_replycache_new (3, TTL);
    cr_assert_eq (ep_replycache_load (cache, store, WALL0 + 10, 0), 3);
    cr_assert_eq (ep_replycache_size (cache), 2);
    zframe_t *found = NULL;
    for (int i = 0; i < 3; i++) {
        snprintf (id, sizeof id, "id%d", i);
        cr_assert_eq (s_lookup (cache, "k", id, 0, &found), EP_REPLYCACHE_MISS, "%s", id);
    }
    cr_assert_eq (s_lookup (cache, "k", "id3", 0, &found), EP_REPLYCACHE_HIT);
    cr_assert_eq (s_lookup (cache, "k", "id4", 0, &found), EP_REPLYCACHE_HIT);
    cr_assert (zframe_streq (found, "r-id4-again"));
    ep_replycache_destroy (&cache);
    ep_store_destroy (&store);
}

Test (replycache, prune_drops_what_the_limits_drop_a_bounded_batch_at_a_time,
      .init = s_setup, .fini = s_teardown)
{
    ep_store_t *store = s_open ();
    ep_replycache_t *cache = ep_replycache_new (4, TTL);
    char id [8];
    //  Three old rows, then seven young ones: over the count by six.
    for (int i = 0; i < 10; i++) {
        snprintf (id, sizeof id, "id%d", i);
        s_save (store, "k", id, i < 3? WALL0 - TTL: WALL0 + i);
    }
    cr_assert_eq (ep_replycache_prune (cache, store, WALL0 + 10, 2), 2, "%s", ep_store_last_error ());
    cr_assert_eq (s_rows (store), 8);
    cr_assert_eq (ep_replycache_prune (cache, store, WALL0 + 10, 0), 4);
    cr_assert_eq (s_rows (store), 4);
    //  Within the limits: nothing to do.
    cr_assert_eq (ep_replycache_prune (cache, store, WALL0 + 10, 0), 0);
    cr_assert_eq (s_rows (store), 4);
    //  What is kept is what a load takes.
    cr_assert_eq (ep_replycache_load (cache, store, WALL0 + 10, 0), 4);
    zframe_t *found = NULL;
    cr_assert_eq (s_lookup (cache, "k", "id6", 0, &found), EP_REPLYCACHE_HIT);
    cr_assert_eq (s_lookup (cache, "k", "id5", 0, &found), EP_REPLYCACHE_MISS);
    //  By age: the oldest first, up to the first young one.
    cr_assert_eq (ep_replycache_prune (cache, store, WALL0 + 7 + TTL, 0), 2);
    cr_assert_eq (s_rows (store), 2);
    cr_assert_eq (ep_replycache_prune (cache, store, WALL0 + 8 + TTL, 1), 1);
    cr_assert_eq (ep_replycache_prune (cache, store, WALL0 + 8 + TTL, 1), 0);
    cr_assert_eq (s_rows (store), 1);
    //  Pruning rides the caller's transaction and rolls back with it.
    cr_assert_eq (ep_store_begin (store), 0);
    cr_assert_eq (ep_replycache_prune (cache, store, WALL0 + 10 + TTL, 0), 1);
    cr_assert_eq (ep_store_rollback (store), 0);
    cr_assert_eq (s_rows (store), 1);
    ep_replycache_destroy (&cache);
    ep_store_destroy (&store);
}
