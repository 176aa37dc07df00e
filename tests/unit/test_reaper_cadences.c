/*  test_reaper_cadences.c: each router's session thresholds from the
    cadence of its heartbeat batches (services/reaper/cadences). One beat
    per batch, not per message; a fast router's thresholds below a slow
    one's; T2 in the configured proportion to T1, within the bounds; a gap
    at a presence change drops the interval across it; fixed mode keeps
    --evasive and --expire whatever the cadence; changes beyond 2x
    reported; routers listed in id order, a page at a time. */
#include <criterion/criterion.h>
#include "cadences.h"

#define T1 60000
#define T2 180000

static cadences_t *
s_new (bool adaptive, int min_samples)
{
    cadences_config_t config = { .adaptive = adaptive, .evasive_ms = T1, .expire_ms = T2 };
    ep_cadence_defaults (&config.cadence);
    config.cadence.min_samples = min_samples;
    config.cadence.window = 8;
    config.cadence.min_ms = 1000;
    config.cadence.max_ms = 100000;
    return cadences_new (&config);
}

//  Beats router every period ms from *now, count times, each batch in
//  messages messages 10 ms apart.
static void
s_beats (cadences_t *cadences, const char *router, int64_t *now, int64_t period, int count, int messages)
{
    for (int i = 0; i < count; i++) {
        for (int m = 0; m < messages; m++) {
            bool beat = cadences_heartbeat (cadences, router, *now + m * 10);
            cr_assert_eq (beat, m == 0, "message %d of a batch %s a beat", m, beat? "was": "was not");
        }
        *now += period;
    }
}

Test (reaper_cadences, a_fast_router_gets_smaller_thresholds_than_a_slow_one)
{
    cadences_t *cadences = s_new (true, 4);
    int64_t fast = 0, slow = 0;
    s_beats (cadences, "fast", &fast, 2000, 5, 3);      //  batches of 3 messages: one beat each
    s_beats (cadences, "slow", &slow, 10000, 5, 1);
    cadences_info_t info;
    cr_assert (cadences_info (cadences, "fast", &info));
    cr_assert (info.learnt);
    cr_assert_eq (info.samples, 4, "one interval per batch, not per message: %d", info.samples);
    cr_assert_eq (info.interval_ms, 2000);
    cr_assert_eq (info.evasive_ms, 5000, "2000 x 2.5: %lld", (long long) info.evasive_ms);
    cr_assert_eq (info.expire_ms, 15000, "T2 keeps T2/T1 = 3: %lld", (long long) info.expire_ms);
    int64_t evasive, expire;
    cadences_thresholds (cadences, "slow", &evasive, &expire);
    cr_assert_eq (evasive, 25000);
    cr_assert_eq (expire, 75000);
    //  Bounds: a very slow router stops at the ceiling, a very fast one at
    //  the floor (T2 in proportion to the bounded T1).
    int64_t glacial = 0, rapid = 0;
    s_beats (cadences, "glacial", &glacial, 60000, 5, 1);
    s_beats (cadences, "rapid", &rapid, 300, 5, 1);
    cadences_thresholds (cadences, "glacial", &evasive, &expire);
    cr_assert_eq (evasive, 100000);
    cr_assert_eq (expire, 300000);
    cadences_thresholds (cadences, "rapid", &evasive, &expire);
    cr_assert_eq (evasive, 1000);
    cr_assert_eq (expire, 3000);
    //  An unknown router has the fixed ones.
    cadences_thresholds (cadences, "nobody", &evasive, &expire);
    cr_assert_eq (evasive, T1);
    cr_assert_eq (expire, T2);
    cr_assert_not (cadences_info (cadences, "nobody", &info));
    cadences_destroy (&cadences);
    cr_assert_null (cadences);
}

Test (reaper_cadences, until_learnt_the_fixed_thresholds_hold)
{
    cadences_t *cadences = s_new (true, 4);
    int64_t now = 0;
    cadences_add (cadences, "r1");
    s_beats (cadences, "r1", &now, 2000, 4, 1);         //  3 intervals of the 4 needed
    cadences_info_t info;
    cr_assert (cadences_info (cadences, "r1", &info));
    cr_assert_not (info.learnt);
    cr_assert_eq (info.samples, 3);
    cr_assert_eq (info.evasive_ms, T1);
    cr_assert_eq (info.expire_ms, T2);
    s_beats (cadences, "r1", &now, 2000, 1, 1);
    cr_assert (cadences_info (cadences, "r1", &info));
    cr_assert (info.learnt);
    cr_assert_eq (info.evasive_ms, 5000);
    cadences_destroy (&cadences);
}

//  Offline for a minute, then back: the minute is not an interval (it
//  would make the router's p99 a minute, and its T1 the ceiling).
Test (reaper_cadences, a_gap_at_a_presence_change_drops_the_interval_across_it)
{
    cadences_t *cadences = s_new (true, 4);
    int64_t now = 0;
    s_beats (cadences, "r1", &now, 2000, 5, 1);
    cadences_gap (cadences, "r1");                      //  offline
    now += 60000;
    cadences_gap (cadences, "r1");                      //  online again
    s_beats (cadences, "r1", &now, 2000, 3, 1);
    cadences_info_t info;
    cr_assert (cadences_info (cadences, "r1", &info));
    cr_assert_eq (info.samples, 4 + 2, "the beat after the gap begins anew: %d", info.samples);
    cr_assert_eq (info.interval_ms, 2000, "p99 %lld: the gap counted", (long long) info.interval_ms);
    cr_assert_eq (info.evasive_ms, 5000);
    //  Without the gap the minute counts (the control).
    cadences_t *control = s_new (true, 4);
    now = 0;
    s_beats (control, "r1", &now, 2000, 5, 1);
    now += 60000;
    s_beats (control, "r1", &now, 2000, 3, 1);
    cr_assert (cadences_info (control, "r1", &info));
    cr_assert_eq (info.samples, 4 + 3);
    cr_assert_gt (info.interval_ms, 60000);
    //  A gap mid-batch: the next message begins a batch of its own.
    int64_t last = now - 2000;
    cr_assert_not (cadences_heartbeat (control, "r1", last + 5), "the control: same batch");
    cadences_gap (control, "r1");
    cr_assert (cadences_heartbeat (control, "r1", last + 10));
    //  A gap for a router never heard of creates nothing.
    cadences_gap (control, "ghost");
    cr_assert_eq (cadences_size (control), 1);
    cadences_destroy (&control);
    cadences_destroy (&cadences);
}

Test (reaper_cadences, fixed_keeps_evasive_and_expire_whatever_the_cadence)
{
    cadences_t *cadences = s_new (false, 4);
    int64_t now = 0;
    s_beats (cadences, "r1", &now, 2000, 20, 1);
    cadences_info_t info;
    cr_assert (cadences_info (cadences, "r1", &info));
    cr_assert_not (info.learnt);
    cr_assert_eq (info.samples, 8, "the cadence is still shown: %d", info.samples);
    cr_assert_eq (info.interval_ms, 2000);
    cr_assert_eq (info.evasive_ms, T1);
    cr_assert_eq (info.expire_ms, T2);
    int64_t from, to;
    cr_assert_not (cadences_changed (cadences, "r1", &from, &to));
    cadences_destroy (&cadences);
}

Test (reaper_cadences, a_change_beyond_twice_is_reported_once)
{
    cadences_t *cadences = s_new (true, 4);
    int64_t now = 0, from = 0, to = 0;
    cadences_add (cadences, "r1");
    cr_assert_not (cadences_changed (cadences, "r1", &from, &to), "the first value is the reference");
    s_beats (cadences, "r1", &now, 2000, 5, 1);
    cr_assert (cadences_changed (cadences, "r1", &from, &to));
    cr_assert_eq (from, T1);
    cr_assert_eq (to, 5000);
    cr_assert_not (cadences_changed (cadences, "r1", &from, &to), "reported once");
    now += 1000;
    s_beats (cadences, "r1", &now, 3000, 1, 1);         //  p99 3000: T1 7500, within 2x
    cr_assert_not (cadences_changed (cadences, "r1", &from, &to));
    cadences_destroy (&cadences);
}

Test (reaper_cadences, routers_are_listed_in_id_order_a_page_at_a_time_and_forgotten)
{
    cadences_t *cadences = s_new (true, 4);
    const char *names [] = { "r3", "r1", "r5", "r2", "r4" };
    for (size_t i = 0; i < 5; i++)
        cadences_add (cadences, names [i]);
    cadences_add (cadences, "r1");                      //  twice is once
    cr_assert_eq (cadences_size (cadences), 5);
    const char *ids [5];
    size_t n = cadences_routers (cadences, NULL, ids, 2);
    cr_assert_eq (n, 2);
    cr_assert_str_eq (ids [0], "r1");
    cr_assert_str_eq (ids [1], "r2");
    n = cadences_routers (cadences, "r2", ids, 5);
    cr_assert_eq (n, 3);
    cr_assert_str_eq (ids [0], "r3");
    cr_assert_str_eq (ids [2], "r5");
    cadences_forget (cadences, "r3");
    cadences_forget (cadences, "r3");
    n = cadences_routers (cadences, "r2", ids, 5);
    cr_assert_eq (n, 2);
    cr_assert_str_eq (ids [0], "r4");
    cadences_info_t info;
    cr_assert_not (cadences_info (cadences, "r3", &info));
    cadences_destroy (&cadences);
}
