/*  test_replycache.c: retried requests get their first reply. */
#include <criterion/criterion.h>
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
