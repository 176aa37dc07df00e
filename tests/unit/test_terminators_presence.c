/*  test_terminators_presence.c: router presence from watchdog join, leave
    and beacon events (termpresence): moves between instances, restarts
    (epoch changes) and silent instances. */
#include <criterion/criterion.h>
#include "termpresence.h"

static void
s_apply (termpresence_t *presence, const char *type, const char *instance, uint64_t epoch,
         const char *r1, const char *r2, int64_t now)
{
    char *routers [2] = { (char *) r1, (char *) r2 };
    termpresence_apply (presence, type, instance, epoch, routers, r2? 2: r1? 1: 0, now);
}

//  The status change reported for router (NULL if none), and forgets them.
static void *
s_change (termpresence_t *presence, const char *router)
{
    zhashx_t *changes = termpresence_changes (presence);
    void *status = zhashx_lookup (changes, router);
    zhashx_destroy (&changes);
    return status;
}

Test (terminators_presence, join_and_leave)
{
    termpresence_t *presence = termpresence_new (3500);
    cr_assert_not (termpresence_online (presence, "r1"));
    s_apply (presence, "join", "wd-a", 7, "r1", NULL, 0);
    cr_assert (termpresence_online (presence, "r1"));
    cr_assert_eq (s_change (presence, "r1"), TERMPRESENCE_ONLINE);
    s_apply (presence, "leave", "wd-a", 7, "r1", NULL, 10);
    cr_assert_not (termpresence_online (presence, "r1"));
    cr_assert_eq (s_change (presence, "r1"), TERMPRESENCE_OFFLINE);
    cr_assert_eq (termpresence_routers (presence), 0);
    termpresence_destroy (&presence);
    cr_assert_null (presence);
}

Test (terminators_presence, a_router_moving_between_instances_never_looks_offline)
{
    termpresence_t *presence = termpresence_new (3500);
    s_apply (presence, "join", "wd-a", 1, "r1", NULL, 0);
    s_change (presence, "r1");
    //  The newest join wins: B takes it, then A closes its copy.
    s_apply (presence, "join", "wd-b", 2, "r1", NULL, 10);
    s_apply (presence, "leave", "wd-a", 1, "r1", NULL, 20);
    cr_assert (termpresence_online (presence, "r1"));
    cr_assert_null (s_change (presence, "r1"), "no change is reported for a move");
    //  Beacons of A no longer list it, B's still do.
    s_apply (presence, "beacon", "wd-a", 1, NULL, NULL, 1000);
    s_apply (presence, "beacon", "wd-b", 2, "r1", NULL, 1000);
    cr_assert (termpresence_online (presence, "r1"));
    cr_assert_eq (termpresence_instances (presence), 2);
    termpresence_destroy (&presence);
}

Test (terminators_presence, a_beacon_is_the_whole_list)
{
    termpresence_t *presence = termpresence_new (3500);
    s_apply (presence, "beacon", "wd-a", 1, "r1", "r2", 0);
    cr_assert (termpresence_online (presence, "r1") && termpresence_online (presence, "r2"));
    s_change (presence, "r1");
    s_apply (presence, "beacon", "wd-a", 1, "r2", NULL, 1000);
    cr_assert_not (termpresence_online (presence, "r1"), "a router missing from the beacon left");
    cr_assert (termpresence_online (presence, "r2"));
    zhashx_t *changes = termpresence_changes (presence);
    cr_assert_eq (zhashx_size (changes), 1);
    cr_assert_eq (zhashx_lookup (changes, "r1"), TERMPRESENCE_OFFLINE);
    zhashx_destroy (&changes);
    termpresence_destroy (&presence);
}

Test (terminators_presence, a_restarted_instance_loses_what_it_held)
{
    termpresence_t *presence = termpresence_new (3500);
    s_apply (presence, "beacon", "wd-a", 1, "r1", "r2", 0);
    s_apply (presence, "join", "wd-a", 2, "r3", NULL, 100);     //  new epoch
    cr_assert_not (termpresence_online (presence, "r1"));
    cr_assert_not (termpresence_online (presence, "r2"));
    cr_assert (termpresence_online (presence, "r3"));
    termpresence_destroy (&presence);
}

Test (terminators_presence, silent_instances_expire_and_beaconing_ones_do_not)
{
    termpresence_t *presence = termpresence_new (3500);
    s_apply (presence, "beacon", "wd-a", 1, "r1", NULL, 0);
    s_apply (presence, "beacon", "wd-b", 1, "r2", NULL, 0);
    for (int64_t now = 1000; now <= 5000; now += 1000) {
        s_apply (presence, "beacon", "wd-b", 1, "r2", NULL, now);
        termpresence_expire (presence, now);
    }
    cr_assert_not (termpresence_online (presence, "r1"), "wd-a fell silent");
    cr_assert (termpresence_online (presence, "r2"));
    cr_assert_eq (termpresence_instances (presence), 1);
    termpresence_destroy (&presence);
}

Test (terminators_presence, junk_is_ignored)
{
    termpresence_t *presence = termpresence_new (3500);
    s_apply (presence, "join", "wd-a", 1, "bad id!", NULL, 0);
    s_apply (presence, "dance", "wd-a", 1, "r1", NULL, 0);
    s_apply (presence, "join", "", 1, "r1", NULL, 0);
    termpresence_apply (presence, NULL, "wd-a", 1, NULL, 0, 0);
    cr_assert_eq (termpresence_routers (presence), 0);
    termpresence_destroy (&presence);
}
