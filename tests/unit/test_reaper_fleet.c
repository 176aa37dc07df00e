/*  test_reaper_fleet.c: router presence as the reaper sees it
    (services/reaper/fleet): beacons, joins and leaves, several instances
    holding a router, silent and restarted instances. */
#include <criterion/criterion.h>
#include "fleet.h"

#define TIMEOUT 3500

//  Transitions the fleet reported, as "+r1@100" / "-r1@200".
static char s_log [4096];

static void
s_change (void *arg, const char *router, bool online, int64_t now)
{
    (void) arg;
    size_t len = strlen (s_log);
    snprintf (s_log + len, sizeof s_log - len, "%s%c%s@%lld", len? " ": "", online? '+': '-',
              router, (long long) now);
}

static fleet_t *
s_fleet (void)
{
    s_log [0] = 0;
    return fleet_new (TIMEOUT, s_change, NULL);
}

Test (reaper_fleet, a_beacon_sets_exactly_the_routers_online)
{
    fleet_t *fleet = s_fleet ();
    char *routers [] = { "r1", "r2" };
    fleet_beacon (fleet, "w1", 7, routers, 2, 100);
    cr_assert_str_eq (s_log, "+r1@100 +r2@100");
    cr_assert (fleet_online (fleet, "r1") && fleet_online (fleet, "r2"));
    cr_assert_not (fleet_online (fleet, "r3"));
    cr_assert_eq (fleet_online_since (fleet, "r1"), 100);
    //  The same beacon again changes nothing.
    fleet_beacon (fleet, "w1", 7, routers, 2, 1100);
    cr_assert_str_eq (s_log, "+r1@100 +r2@100");
    cr_assert_eq (fleet_online_since (fleet, "r1"), 100);
    //  A beacon without r2: r2 left.
    fleet_beacon (fleet, "w1", 7, routers, 1, 2100);
    cr_assert_str_eq (s_log, "+r1@100 +r2@100 -r2@2100");
    cr_assert_eq (fleet_online_since (fleet, "r2"), -1);
    cr_assert_eq (fleet_routers (fleet), 1);
    fleet_destroy (&fleet);
    cr_assert_null (fleet);
}

Test (reaper_fleet, a_router_moving_between_instances_never_looks_offline)
{
    fleet_t *fleet = s_fleet ();
    fleet_join (fleet, "w1", 1, "r1", 100);
    fleet_join (fleet, "w2", 2, "r1", 200);         //  newest join wins ...
    fleet_leave (fleet, "w1", 1, "r1", 300);        //  ... the other closes its copy
    cr_assert_str_eq (s_log, "+r1@100");
    cr_assert (fleet_online (fleet, "r1"));
    fleet_leave (fleet, "w2", 2, "r1", 400);
    cr_assert_str_eq (s_log, "+r1@100 -r1@400");
    cr_assert_eq (fleet_instances (fleet), 2);
    fleet_destroy (&fleet);
}

Test (reaper_fleet, a_silent_instance_holds_nothing_after_the_timeout)
{
    fleet_t *fleet = s_fleet ();
    char *routers [] = { "r1", "r2" };
    fleet_beacon (fleet, "w1", 1, routers, 2, 0);
    fleet_join (fleet, "w2", 5, "r2", 500);
    cr_assert_eq (fleet_tick (fleet, TIMEOUT - 1), TIMEOUT);
    cr_assert_str_eq (s_log, "+r1@0 +r2@0", "not before the timeout");
    fleet_tick (fleet, TIMEOUT);
    cr_assert_str_eq (s_log, "+r1@0 +r2@0 -r1@3500", "r2 is still held by w2");
    cr_assert_eq (fleet_instances (fleet), 1);
    cr_assert (fleet_online (fleet, "r2"));
    fleet_tick (fleet, 500 + TIMEOUT);
    cr_assert_not (fleet_online (fleet, "r2"));
    cr_assert_eq (fleet_tick (fleet, 10000), INT64_MAX);
    fleet_destroy (&fleet);
}

Test (reaper_fleet, a_restarted_instance_drops_what_it_held)
{
    fleet_t *fleet = s_fleet ();
    char *routers [] = { "r1", "r2" };
    fleet_beacon (fleet, "w1", 1, routers, 2, 0);
    //  Same instance id, new epoch: its old connections are gone; it holds
    //  what its new beacon lists (r2 reconnected already, r1 not yet).
    fleet_beacon (fleet, "w1", 2, routers + 1, 1, 1000);
    cr_assert (strstr (s_log, "-r1@1000") && strstr (s_log, "-r2@1000"), "%s", s_log);
    cr_assert_str_eq (s_log + strlen (s_log) - 8, "+r2@1000", "%s", s_log);
    cr_assert_not (fleet_online (fleet, "r1"));
    cr_assert_eq (fleet_online_since (fleet, "r2"), 1000, "a new online period");
    fleet_destroy (&fleet);
}

Test (reaper_fleet, empty_router_ids_are_ignored)
{
    fleet_t *fleet = s_fleet ();
    char *routers [] = { "", NULL, "r1" };
    fleet_beacon (fleet, "w1", 1, routers, 3, 0);
    fleet_join (fleet, "w1", 1, "", 0);
    fleet_leave (fleet, "w1", 1, NULL, 0);
    cr_assert_str_eq (s_log, "+r1@0");
    cr_assert_eq (fleet_routers (fleet), 1);
    fleet_destroy (&fleet);
}
