/*  test_cadence.c: the heartbeat cadence estimator, without sockets or clocks. */
#include <criterion/criterion.h>
#include "ep_cadence.h"

static ep_cadence_config_t
s_config (int64_t min_ms, int64_t max_ms)
{
    ep_cadence_config_t config;
    ep_cadence_defaults (&config);
    config.min_ms = min_ms;
    config.max_ms = max_ms;
    config.factor = 2;
    return config;
}

//  Beats every period_ms +- jitter_ms (uniform), dropping drop of them.
static int64_t
s_feed (ep_cadence_t *cadence, int64_t now, int beats, int64_t period_ms, int64_t jitter_ms,
        double drop)
{
    for (int i = 0; i < beats; i++) {
        now += period_ms;
        if (drop > 0 && rand () < drop * RAND_MAX)
            continue;
        int64_t skew = jitter_ms? rand () % (2 * jitter_ms + 1) - jitter_ms: 0;
        ep_cadence_beat (cadence, now + skew);
    }
    return now;
}

Test (cadence, fixed_value_holds_until_enough_samples)
{
    ep_cadence_config_t config = s_config (100, 60000);
    ep_cadence_t *cadence = ep_cadence_new (&config);
    cr_assert_eq (ep_cadence_timeout (cadence, 30000), 30000);
    s_feed (cadence, 0, config.min_samples, 1000, 0, 0);    //  min_samples beats: one fewer interval
    cr_assert_eq (ep_cadence_samples (cadence), config.min_samples - 1);
    cr_assert_eq (ep_cadence_timeout (cadence, 30000), 30000);
    ep_cadence_beat (cadence, (config.min_samples + 1) * 1000);
    cr_assert_eq (ep_cadence_timeout (cadence, 30000), 2000, "1 s cadence times factor 2");
    ep_cadence_destroy (&cadence);
    cr_assert_null (cadence);
}

Test (cadence, steady_near_link_is_tighter_than_jittery_far_link)
{
    srand (2);
    ep_cadence_config_t config = s_config (100, 60000);
    ep_cadence_t *near = ep_cadence_new (&config);
    ep_cadence_t *far = ep_cadence_new (&config);
    s_feed (near, 0, 200, 1000, 2, 0);
    s_feed (far, 0, 200, 1000, 100, 0);      //  +-100 ms on each arrival: intervals 800..1200
    int64_t t_near = ep_cadence_timeout (near, 30000);
    int64_t t_far = ep_cadence_timeout (far, 30000);
    cr_assert (t_near >= 2000 && t_near <= 2010, "near %lld", (long long) t_near);
    cr_assert (t_far > t_near && t_far <= 2400, "far %lld", (long long) t_far);
    cr_assert (ep_cadence_percentile_ms (far) >= 1150, "p99 sees the jitter");
    ep_cadence_destroy (&near);
    ep_cadence_destroy (&far);
}

Test (cadence, dropped_heartbeats_widen_the_timeout_beyond_the_longest_gap_seen)
{
    srand (20);
    ep_cadence_config_t config = s_config (100, 60000);
    ep_cadence_t *cadence = ep_cadence_new (&config);
    s_feed (cadence, 0, 500, 1000, 0, 0.2);
    //  20 % lost: gaps of 2 and 3 periods are common in a window of 64,
    //  and the timeout must cover them with margin.
    int64_t timeout = ep_cadence_timeout (cadence, 30000);
    cr_assert (timeout >= 4000, "timeout %lld", (long long) timeout);
    ep_cadence_destroy (&cadence);
}

Test (cadence, bounds_hold)
{
    ep_cadence_config_t config = s_config (5000, 8000);
    ep_cadence_t *cadence = ep_cadence_new (&config);
    cr_assert_eq (ep_cadence_timeout (cadence, 30000), 30000, "the fixed value, until learnt");
    s_feed (cadence, 0, 20, 100, 0, 0);
    cr_assert_eq (ep_cadence_timeout (cadence, 30000), 5000, "floor");
    ep_cadence_t *slow = ep_cadence_new (&config);
    s_feed (slow, 0, 20, 60000, 0, 0);
    cr_assert_eq (ep_cadence_timeout (slow, 30000), 8000, "ceiling");
    ep_cadence_destroy (&cadence);
    ep_cadence_destroy (&slow);
}

Test (cadence, a_presence_change_is_not_an_interval)
{
    ep_cadence_config_t config = s_config (100, 600000);
    ep_cadence_t *cadence = ep_cadence_new (&config);
    int64_t now = s_feed (cadence, 0, 20, 1000, 0, 0);
    ep_cadence_gap (cadence);
    now += 120000;                      //  two minutes offline
    ep_cadence_beat (cadence, now);
    cr_assert_eq (ep_cadence_samples (cadence), 19);
    cr_assert_eq (ep_cadence_timeout (cadence, 30000), 2000);
    ep_cadence_beat (cadence, now + 1000);
    cr_assert_eq (ep_cadence_samples (cadence), 20);
    ep_cadence_destroy (&cadence);
}

Test (cadence, window_forgets_old_cadence)
{
    ep_cadence_config_t config = s_config (100, 600000);
    ep_cadence_t *cadence = ep_cadence_new (&config);
    int64_t now = s_feed (cadence, 0, 100, 10000, 0, 0);
    cr_assert_eq (ep_cadence_timeout (cadence, 30000), 20000);
    s_feed (cadence, now, config.window, 1000, 0, 0);
    cr_assert_eq (ep_cadence_timeout (cadence, 30000), 2000);
    ep_cadence_destroy (&cadence);
}

Test (cadence, changes_beyond_a_factor_of_two_are_reported_once)
{
    ep_cadence_config_t config = s_config (100, 600000);
    ep_cadence_t *cadence = ep_cadence_new (&config);
    int64_t from = 0, to = 0;
    cr_assert_not (ep_cadence_changed (cadence, 30000, &from, &to), "first value is the reference");
    int64_t now = s_feed (cadence, 0, 20, 10000, 0, 0);     //  20 s: within 2x of 30 s
    cr_assert_not (ep_cadence_changed (cadence, 30000, &from, &to));
    s_feed (cadence, now, config.window, 1000, 0, 0);       //  2 s
    cr_assert (ep_cadence_changed (cadence, 30000, &from, &to));
    cr_assert_eq (from, 30000);
    cr_assert_eq (to, 2000);
    cr_assert_not (ep_cadence_changed (cadence, 30000, &from, &to));
    ep_cadence_destroy (&cadence);
}
