/*  test_cli_beacons.c: the CLI's shard owners from beacons
    (tools/edgeplane/cli_beacons), without a bus: shard lists compressed
    to ranges, each instance's last beacon kept, instances listed by
    service then id, and the cover judged complete only when every shard
    has exactly one owner. */
#include <criterion/criterion.h>
#include "cli_beacons.h"

static char *
s_ranges (const uint32_t *shards, size_t n, size_t size)
{
    static char buf [256];
    cr_assert_leq (size, sizeof buf);
    memset (buf, 'x', sizeof buf);
    cli_shard_ranges (shards, n, buf, size);
    return buf;
}

Test (cli_beacons, shard_lists_compress_to_ranges)
{
    const uint32_t mixed [] = { 0, 1, 2, 3, 7, 9, 10, 11, 12, 42 };
    cr_assert_str_eq (s_ranges (mixed, EP_COUNT (mixed), 256), "0-3,7,9-12,42");
    const uint32_t one [] = { 5 };
    cr_assert_str_eq (s_ranges (one, 1, 256), "5");
    const uint32_t pair [] = { 5, 6 };
    cr_assert_str_eq (s_ranges (pair, 2, 256), "5-6");
    const uint32_t apart [] = { 1, 3, 5 };
    cr_assert_str_eq (s_ranges (apart, 3, 256), "1,3,5");
    cr_assert_str_eq (s_ranges (NULL, 0, 256), "");
    uint32_t all [64];
    for (uint32_t s = 0; s < 64; s++)
        all [s] = s;
    cr_assert_str_eq (s_ranges (all, 64, 256), "0-63");
    //  Too small: whole pieces only, then "..."; never past size.
    cr_assert_str_eq (s_ranges (mixed, EP_COUNT (mixed), 10), "0-3,7...");
    cr_assert_str_eq (s_ranges (mixed, EP_COUNT (mixed), 14), "0-3,7,9-12,42");
    cr_assert_str_eq (s_ranges (mixed, EP_COUNT (mixed), 13), "0-3,7...");
    cr_assert_str_eq (s_ranges (mixed, EP_COUNT (mixed), 3), "");
}

static void
s_heard (cli_beacons_t *beacons, const char *service, const char *id, uint32_t count,
         const uint32_t *shards, size_t n)
{
    Ep__ShardBeacon beacon = EP__SHARD_BEACON__INIT;
    beacon.service = (char *) service;
    beacon.instance_id = (char *) id;
    beacon.address = (char *) "tcp://127.0.0.1:1";
    beacon.has_shard_count = true;
    beacon.shard_count = count;
    beacon.n_shards = n;
    beacon.shards = (uint32_t *) shards;
    cli_beacons_heard (beacons, &beacon);
}

Test (cli_beacons, the_last_beacon_of_each_instance_counts_and_the_cover_is_judged)
{
    cli_beacons_t *beacons = cli_beacons_new ();
    char why [256];
    cr_assert_not (cli_beacons_complete (beacons, "terminators", why, sizeof why), "nothing heard");
    const uint32_t low [] = { 0, 1, 2, 3 }, high [] = { 4, 5, 6, 7 }, most [] = { 1, 2, 3, 4, 5, 6, 7 };
    s_heard (beacons, "terminators", "b", 8, most, EP_COUNT (most));
    s_heard (beacons, "terminators", "a", 8, low, EP_COUNT (low));
    cr_assert_not (cli_beacons_complete (beacons, "terminators", why, sizeof why));
    cr_assert (strstr (why, "0 of 8 terminators shards have no owner, 3 have several"), "%s", why);
    //  b's next beacon: it released 1-3, the cover is whole.
    s_heard (beacons, "terminators", "b", 8, high, EP_COUNT (high));
    cr_assert (cli_beacons_complete (beacons, "terminators", why, sizeof why), "%s", why);
    cr_assert_eq (cli_beacons_count (beacons, "terminators"), 8);
    //  Another service apart; a beacon with no id ignored.
    s_heard (beacons, "reaper", "c", 4, low, EP_COUNT (low));
    s_heard (beacons, "reaper", "", 4, low, EP_COUNT (low));
    cr_assert_eq (cli_beacons_size (beacons, NULL), 3);
    cr_assert_eq (cli_beacons_size (beacons, "terminators"), 2);
    cr_assert (cli_beacons_complete (beacons, "reaper", why, sizeof why), "%s", why);
    cr_assert_not (cli_beacons_complete (beacons, "watchdog", why, sizeof why));
    //  By service, then id.
    const char *order [][2] = { { "reaper", "c" }, { "terminators", "a" }, { "terminators", "b" } };
    size_t n = 0;
    for (const cli_owner_t *owner = cli_beacons_first (beacons); owner; owner = cli_beacons_next (beacons), n++) {
        cr_assert_lt (n, 3);
        cr_assert_str_eq (owner->service, order [n][0]);
        cr_assert_str_eq (owner->id, order [n][1]);
    }
    cr_assert_eq (n, 3);
    const cli_owner_t *first = cli_beacons_first (beacons);
    json_t *json = cli_owner_json (first);
    cr_assert_str_eq (json_string_value (json_object_get (json, "instance")), "c");
    cr_assert_eq (json_array_size (json_object_get (json, "shards")), 4);
    json_decref (json);
    cli_beacons_destroy (&beacons);
    cr_assert_null (beacons);
}
