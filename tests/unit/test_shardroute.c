/*  test_shardroute.c: the watchdog's map of shard owners from beacons
    (services/watchdog/shardroute), without sockets or clocks: a router's
    request goes to the live instance whose beacon claims its shard, to
    none when no live beacon does, to the newer owner when two claim it,
    and an instance silent for 3.5 intervals is forgotten; one route per
    service (the terminators, the reaper) fed every beacon keeps each
    service's owners apart. */
#include <criterion/criterion.h>
#include "shardroute.h"
#include "ep_shard.h"

#define COUNT 8

//  A beacon of instance at address owning shards (n of them) under
//  revisions (NULL: unknown), every 1000 ms.
static int
s_beacon (shardroute_t *route, const char *instance, const char *address, const uint32_t *shards,
          const int64_t *revisions, size_t n, int64_t now_ms)
{
    shardroute_beacon_t beacon = {
        .service = "terminators", .instance = instance, .address = address, .count = COUNT,
        .shards = shards, .revisions = revisions, .n = n, .interval_ms = 1000
    };
    return shardroute_beacon (route, &beacon, now_ms);
}

//  A router id in shard (of COUNT), found by trying r0, r1, ...
static const char *
s_router_in (uint32_t shard, char *buf, size_t size)
{
    for (int i = 0; i < 10000; i++) {
        snprintf (buf, size, "r%d", i);
        if ((uint32_t) ep_shard_of (buf, COUNT) == shard)
            return buf;
    }
    cr_assert_fail ("no router id in shard %u", shard);
    return NULL;
}

static void
s_expect (shardroute_t *route, const char *router, int64_t now_ms, const char *address, const char *why)
{
    const char *owner = shardroute_owner (route, router, now_ms);
    if (address)
        cr_assert (owner && streq (owner, address), "%s: expected %s, got %s", why, address,
                   owner? owner: "NULL");
    else
        cr_assert_null (owner, "%s: expected none, got %s", why, owner);
}

Test (shardroute, a_router_goes_to_the_instance_claiming_its_shard)
{
    shardroute_t *route = shardroute_new ("terminators");
    char r2 [16], r5 [16];
    s_router_in (2, r2, sizeof r2);
    s_router_in (5, r5, sizeof r5);
    s_expect (route, r2, 0, NULL, "no beacon yet");
    const uint32_t a [] = { 0, 1, 2, 3 }, b [] = { 4, 5, 6, 7 };
    cr_assert_eq (s_beacon (route, "a", "tcp://10.0.0.5:5556", a, NULL, 4, 0), 0);
    s_expect (route, r2, 10, "tcp://10.0.0.5:5556", "a owns shard 2");
    s_expect (route, r5, 10, NULL, "nobody claims shard 5 yet");
    cr_assert_eq (s_beacon (route, "b", "tcp://10.0.0.6:5556", b, NULL, 4, 20), 0);
    s_expect (route, r5, 30, "tcp://10.0.0.6:5556", "b owns shard 5");
    s_expect (route, r2, 30, "tcp://10.0.0.5:5556", "a still owns shard 2");
    cr_assert_eq (shardroute_size (route), 2);

    //  Shards move: the next beacons say so, and routes follow.
    const uint32_t a2 [] = { 0, 1, 3 }, b2 [] = { 2, 4, 5, 6, 7 };
    cr_assert_eq (s_beacon (route, "a", "tcp://10.0.0.5:5556", a2, NULL, 3, 1000), 0);
    s_expect (route, r2, 1000, NULL, "released by a, not yet claimed by b");
    cr_assert_eq (s_beacon (route, "b", "tcp://10.0.0.6:5556", b2, NULL, 5, 1010), 0);
    s_expect (route, r2, 1010, "tcp://10.0.0.6:5556", "b took shard 2");
    shardroute_destroy (&route);
    cr_assert_null (route);
}

Test (shardroute, a_silent_instance_is_forgotten_after_three_and_a_half_intervals)
{
    shardroute_t *route = shardroute_new ("terminators");
    char r2 [16];
    s_router_in (2, r2, sizeof r2);
    const uint32_t a [] = { 2 };
    s_beacon (route, "a", "tcp://a:1", a, NULL, 1, 0);
    s_expect (route, r2, 3499, "tcp://a:1", "3.5 intervals not yet over");
    cr_assert_eq (shardroute_expire (route, 3499), 0);
    cr_assert (shardroute_knows (route, "tcp://a:1"));
    s_expect (route, r2, 3500, NULL, "silent for 3.5 intervals: not used");
    cr_assert_eq (shardroute_expire (route, 3500), 1);
    cr_assert_not (shardroute_knows (route, "tcp://a:1"), "its connection can go");
    cr_assert_eq (shardroute_size (route), 0);
    //  It comes back with its next beacon.
    s_beacon (route, "a", "tcp://a:1", a, NULL, 1, 5000);
    s_expect (route, r2, 5000, "tcp://a:1", "heard again");

    //  The interval is the instance's own: 200 ms means gone after 700 ms.
    shardroute_beacon_t fast = {
        .service = "terminators", .instance = "f", .address = "tcp://f:1", .count = COUNT,
        .shards = (const uint32_t []) { 3 }, .n = 1, .interval_ms = 200
    };
    cr_assert_eq (shardroute_beacon (route, &fast, 6000), 0);
    cr_assert_eq (shardroute_expire (route, 6699), 0);
    cr_assert_eq (shardroute_expire (route, 6700), 1);
    cr_assert (shardroute_knows (route, "tcp://a:1"), "a beaconed at 5000: still there");
    shardroute_destroy (&route);
}

Test (shardroute, of_two_live_claims_the_newer_owner_wins)
{
    shardroute_t *route = shardroute_new ("terminators");
    char r2 [16];
    s_router_in (2, r2, sizeof r2);
    const uint32_t shard [] = { 2 };
    //  The new owner's first beacon comes before the old owner's last.
    s_beacon (route, "new", "tcp://new:1", shard, (const int64_t []) { 90 }, 1, 0);
    s_beacon (route, "old", "tcp://old:1", shard, (const int64_t []) { 40 }, 1, 10);
    s_expect (route, r2, 20, "tcp://new:1", "the higher owner revision, whatever the order");
    //  The old owner goes silent: the new one alone.
    s_beacon (route, "new", "tcp://new:1", shard, (const int64_t []) { 90 }, 1, 3000);
    shardroute_expire (route, 3600);
    cr_assert_not (shardroute_knows (route, "tcp://old:1"));
    s_expect (route, r2, 3600, "tcp://new:1", "the old owner forgotten");
    //  The old owner alive again but claiming under its old key: still not it.
    s_beacon (route, "old", "tcp://old:1", shard, (const int64_t []) { 40 }, 1, 3700);
    s_expect (route, r2, 3700, "tcp://new:1", "an older key never wins");
    shardroute_destroy (&route);
}

Test (shardroute, beacons_of_other_services_and_malformed_ones_are_ignored)
{
    shardroute_t *route = shardroute_new ("terminators");
    char r2 [16];
    s_router_in (2, r2, sizeof r2);
    const uint32_t two [] = { 2 }, out [] = { COUNT };
    shardroute_beacon_t beacon = {
        .service = "reaper", .instance = "x", .address = "tcp://x:1", .count = COUNT,
        .shards = two, .n = 1, .interval_ms = 1000
    };
    cr_assert_eq (shardroute_beacon (route, &beacon, 0), -1, "another service");
    beacon.service = NULL;
    cr_assert_eq (shardroute_beacon (route, &beacon, 0), -1, "no service");
    beacon.service = "terminators";
    beacon.count = 0;
    cr_assert_eq (shardroute_beacon (route, &beacon, 0), -1, "no shard count");
    beacon.count = COUNT;
    beacon.address = "";
    cr_assert_eq (shardroute_beacon (route, &beacon, 0), -1, "no address");
    beacon.address = "tcp://x:1";
    beacon.shards = out;
    cr_assert_eq (shardroute_beacon (route, &beacon, 0), -1, "a shard out of range");
    cr_assert_eq (shardroute_size (route), 0);
    s_expect (route, r2, 0, NULL, "nothing taken");
    //  Not sorted as it should be: still found.
    beacon.shards = (const uint32_t []) { 6, 2, 0 };
    beacon.n = 3;
    cr_assert_eq (shardroute_beacon (route, &beacon, 0), 0);
    s_expect (route, r2, 0, "tcp://x:1", "unsorted shards");
    shardroute_destroy (&route);
    shardroute_destroy (&route);        //  a NULL object is fine
}

Test (shardroute, one_route_per_service_fed_every_beacon_keeps_each_services_owners)
{
    //  As the watchdog's relay: every cluster.beacon goes to both routes,
    //  and each takes only its own service's instances.
    shardroute_t *routes [2] = { shardroute_new ("terminators"), shardroute_new ("reaper") };
    char r2 [16];
    s_router_in (2, r2, sizeof r2);
    const uint32_t two [] = { 2 };
    shardroute_beacon_t beacons [] = {
        { .service = "terminators", .instance = "t1", .address = "tcp://t1:5556", .count = COUNT,
          .shards = two, .n = 1, .interval_ms = 1000 },
        { .service = "reaper", .instance = "p1", .address = "tcp://p1:5557", .count = COUNT,
          .shards = two, .n = 1, .interval_ms = 1000 },
    };
    for (size_t b = 0; b < 2; b++)
        for (size_t r = 0; r < 2; r++)
            cr_assert_eq (shardroute_beacon (routes [r], &beacons [b], 0), b == r? 0: -1);
    s_expect (routes [0], r2, 10, "tcp://t1:5556", "the terminators' owner of shard 2");
    s_expect (routes [1], r2, 10, "tcp://p1:5557", "the reaper's owner of shard 2");
    cr_assert_eq (shardroute_size (routes [0]), 1);
    cr_assert_eq (shardroute_size (routes [1]), 1);
    cr_assert (!shardroute_knows (routes [0], "tcp://p1:5557"), "a reaper instance in the terminators' route");
    //  The reaper instance goes silent: only its route forgets it.
    shardroute_beacon (routes [0], &beacons [0], 3000);
    cr_assert_eq (shardroute_expire (routes [1], 4000), 1);
    cr_assert_eq (shardroute_expire (routes [0], 4000), 0);
    s_expect (routes [1], r2, 4000, NULL, "the reaper's owner forgotten: the configured endpoint");
    s_expect (routes [0], r2, 4000, "tcp://t1:5556", "the terminators' owner still beaconing");
    shardroute_destroy (&routes [0]);
    shardroute_destroy (&routes [1]);
}
