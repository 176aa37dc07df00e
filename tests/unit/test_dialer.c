/*  test_dialer.c: which peer controllers a watchdog instance dials, and
    when: beacons, link outcomes and time in, dial / hang up out, without
    sockets. */
#include <criterion/criterion.h>
#include "dialer.h"

static const dialer_config_t s_config = {
    .expire_ms = 5000, .backoff_base_ms = 250, .backoff_max_ms = 10000
};

//  The next action at now, or verb 0 if none.
static dialer_action_t
s_next (dialer_t *dialer, int64_t now)
{
    dialer_action_t action;
    memset (&action, 0, sizeof action);
    if (!dialer_next (dialer, now, &action))
        memset (&action, 0, sizeof action);
    return action;
}

Test (dialer, dials_a_peer_only_once_it_has_applied_our_controller_entry)
{
    dialer_t *dialer = dialer_new (&s_config, "watchdog-a");
    dialer_beacon (dialer, "watchdog-b", 7, "watchdog-b", "127.0.0.1:6000", 10, 0);
    cr_assert_eq (s_next (dialer, 0).verb, 0, "not registered yet: nobody is dialed");
    dialer_set_registered (dialer, 12);
    cr_assert_eq (s_next (dialer, 0).verb, 0, "b has applied revision 10, our entry is at 12");
    cr_assert_eq (dialer_deadline (dialer), 5000, "only b's expiry is due");
    dialer_beacon (dialer, "watchdog-b", 7, "watchdog-b", "127.0.0.1:6000", 12, 1000);
    dialer_action_t action = s_next (dialer, 1000);
    cr_assert_eq (action.verb, DIALER_DIAL);
    cr_assert_str_eq (action.instance, "watchdog-b");
    cr_assert_str_eq (action.ctrl_id, "watchdog-b");
    cr_assert_str_eq (action.address, "127.0.0.1:6000");
    cr_assert_eq (s_next (dialer, 1000).verb, 0, "dialed once");
    cr_assert_eq (dialer_linked_count (dialer), 1);
    dialer_destroy (&dialer);
}

Test (dialer, ignores_its_own_beacons_and_incomplete_ones)
{
    dialer_t *dialer = dialer_new (&s_config, "watchdog-a");
    dialer_set_registered (dialer, 1);
    dialer_beacon (dialer, "watchdog-a", 1, "watchdog-a", "127.0.0.1:6000", 5, 0);
    dialer_beacon (dialer, "watchdog-c", 1, NULL, "127.0.0.1:6001", 5, 0);       //  no identity
    dialer_beacon (dialer, "watchdog-d", 1, "watchdog-d", NULL, 5, 0);
    cr_assert_eq (dialer_size (dialer), 0);
    cr_assert_eq (s_next (dialer, 0).verb, 0);
    dialer_destroy (&dialer);
}

Test (dialer, redials_a_lost_link_with_growing_backoff_and_starts_over_after_a_join)
{
    dialer_t *dialer = dialer_new (&s_config, "watchdog-a");
    dialer_set_registered (dialer, 1);
    int64_t now = 0;
    dialer_beacon (dialer, "watchdog-b", 7, "watchdog-b", "127.0.0.1:6000", 5, now);
    cr_assert_eq (s_next (dialer, now).verb, DIALER_DIAL);
    int64_t previous = 0;
    for (int i = 0; i < 4; i++) {
        dialer_unlinked (dialer, "watchdog-b", false, now);
        int64_t due = dialer_deadline (dialer);
        int64_t delay = due - now;
        int64_t full = 250 << i;
        cr_assert (delay >= full / 2 && delay <= full, "attempt %d: delay %lld", i, (long long) delay);
        cr_assert (i == 0 || delay >= previous / 2, "delays grow");
        previous = delay;
        cr_assert_eq (s_next (dialer, due - 1).verb, 0, "not before the backoff");
        now = due;
        dialer_beacon (dialer, "watchdog-b", 7, "watchdog-b", "127.0.0.1:6000", 5, now);
        cr_assert_eq (s_next (dialer, now).verb, DIALER_DIAL);
    }
    dialer_linked (dialer, "watchdog-b", now);
    dialer_unlinked (dialer, "watchdog-b", false, now);
    cr_assert_leq (dialer_deadline (dialer) - now, 250, "a join resets the backoff");
    dialer_destroy (&dialer);
}

Test (dialer, hangs_up_when_beacons_stop_and_forgets_the_peer)
{
    dialer_t *dialer = dialer_new (&s_config, "watchdog-a");
    dialer_set_registered (dialer, 1);
    dialer_beacon (dialer, "watchdog-b", 7, "watchdog-b", "127.0.0.1:6000", 5, 0);
    cr_assert_eq (s_next (dialer, 0).verb, DIALER_DIAL);
    dialer_beacon (dialer, "watchdog-b", 7, "watchdog-b", "127.0.0.1:6000", 5, 1000);
    cr_assert_eq (s_next (dialer, 5999).verb, 0);
    dialer_action_t action = s_next (dialer, 6000);
    cr_assert_eq (action.verb, DIALER_HANGUP);
    cr_assert_str_eq (action.instance, "watchdog-b");
    cr_assert_str_eq (action.reason, "beacons-stopped");
    cr_assert_eq (dialer_size (dialer), 0);
    cr_assert_eq (dialer_deadline (dialer), INT64_MAX);
    //  A peer that expires while not linked goes without a hang-up.
    dialer_beacon (dialer, "watchdog-c", 1, "watchdog-c", "127.0.0.1:6001", 0, 7000);
    cr_assert_eq (s_next (dialer, 12000).verb, 0);
    cr_assert_eq (dialer_size (dialer), 0);
    dialer_destroy (&dialer);
}

Test (dialer, a_restarted_peer_is_hung_up_on_and_dialed_again_at_once)
{
    dialer_t *dialer = dialer_new (&s_config, "watchdog-a");
    dialer_set_registered (dialer, 1);
    dialer_beacon (dialer, "watchdog-b", 7, "watchdog-b", "127.0.0.1:6000", 5, 0);
    cr_assert_eq (s_next (dialer, 0).verb, DIALER_DIAL);
    //  Same instance id, new epoch and port: it restarted.
    dialer_beacon (dialer, "watchdog-b", 8, "watchdog-b", "127.0.0.1:6002", 5, 100);
    dialer_action_t action = s_next (dialer, 100);
    cr_assert_eq (action.verb, DIALER_HANGUP);
    cr_assert_str_eq (action.reason, "restarted");
    action = s_next (dialer, 100);
    cr_assert_eq (action.verb, DIALER_DIAL);
    cr_assert_str_eq (action.address, "127.0.0.1:6002");
    dialer_destroy (&dialer);
}

Test (dialer, a_peer_that_said_goodbye_is_not_dialed_again_before_a_new_epoch)
{
    dialer_t *dialer = dialer_new (&s_config, "watchdog-a");
    dialer_set_registered (dialer, 1);
    dialer_beacon (dialer, "watchdog-b", 7, "watchdog-b", "127.0.0.1:6000", 5, 0);
    cr_assert_eq (s_next (dialer, 0).verb, DIALER_DIAL);
    dialer_unlinked (dialer, "watchdog-b", true, 0);
    //  It beacons on while it drains.
    dialer_beacon (dialer, "watchdog-b", 7, "watchdog-b", "127.0.0.1:6000", 5, 1000);
    cr_assert_eq (s_next (dialer, 4000).verb, 0);
    dialer_beacon (dialer, "watchdog-b", 9, "watchdog-b", "127.0.0.1:6000", 5, 4000);
    cr_assert_eq (s_next (dialer, 4000).verb, DIALER_DIAL, "a new epoch is dialed");
    dialer_destroy (&dialer);
}
