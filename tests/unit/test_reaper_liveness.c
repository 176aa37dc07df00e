/*  test_reaper_liveness.c: the reaper's liveness heap (services/reaper/liveness).
    Thresholds honoured to the millisecond, probes before expiry, floors and
    pauses, and a heap that stays ordered through heavy churn; per-entry
    thresholds (adaptive liveness): each entry judged against its own, a
    change applied at its next look, and none asked for without a callback
    (fixed liveness). */
#include <criterion/criterion.h>
#include "liveness.h"

#define T1 1000
#define T2 3000

//  A floor shared by every entry: the test moves it.
static int64_t s_floor_value = INT64_MIN;

static int64_t
s_floor (void *arg, liveness_entry_t *entry)
{
    (void) arg;
    (void) entry;
    return s_floor_value;
}

//  Runs liveness_next at every ms of [from, to) and records the first
//  verdict of each kind for entry (or -1).
typedef struct {
    int64_t evasive;            //  when it was reported evasive
    int64_t expired;            //  when it was reported expired
    size_t reports;             //  verdicts seen for any entry
} s_seen_t;

static void
s_run (liveness_t *liveness, liveness_entry_t *entry, int64_t from, int64_t to, s_seen_t *seen)
{
    for (int64_t now = from; now < to; now++) {
        liveness_verdict_t verdict;
        liveness_entry_t *next;
        while ((next = liveness_next (liveness, now, s_floor, NULL, &verdict))) {
            seen->reports++;
            if (next != entry)
                continue;
            if (verdict == LIVENESS_EVASIVE && seen->evasive < 0)
                seen->evasive = now;
            if (verdict == LIVENESS_EXPIRED && seen->expired < 0)
                seen->expired = now;
        }
    }
}

Test (reaper_liveness, heard_entries_are_never_reported)
{
    s_floor_value = INT64_MIN;
    liveness_t *liveness = liveness_new (T1, T2);
    liveness_entry_t entries [3] = { { 0 } };
    for (int i = 0; i < 3; i++)
        liveness_track (liveness, &entries [i], 0);
    s_seen_t seen = { -1, -1, 0 };
    for (int64_t now = 0; now < 20000; now += 100) {
        for (int i = 0; i < 3; i++)
            if (now % 500 == 0)
                liveness_heard (liveness, &entries [i], now);
        s_run (liveness, NULL, now, now + 100, &seen);
    }
    cr_assert_eq (seen.reports, 0, "a session heard every 500 ms was reported");
    cr_assert_eq (liveness_size (liveness), 3);
    liveness_destroy (&liveness);
    cr_assert_null (liveness);
}

Test (reaper_liveness, a_silent_entry_is_probed_at_t1_and_expired_at_t2)
{
    s_floor_value = INT64_MIN;
    liveness_t *liveness = liveness_new (T1, T2);
    liveness_entry_t entry = { 0 };
    liveness_track (liveness, &entry, 100);
    s_seen_t seen = { -1, -1, 0 };
    s_run (liveness, &entry, 100, 10000, &seen);
    cr_assert_eq (seen.evasive, 100 + T1, "evasive at %lld", (long long) seen.evasive);
    cr_assert_eq (seen.expired, 100 + T2, "expired at %lld", (long long) seen.expired);
    cr_assert_eq (seen.reports, 2, "one probe, one expiry");
    cr_assert_eq (liveness_size (liveness), 0, "an expired entry is untracked");
    cr_assert_eq (entry.index, 0);
    liveness_destroy (&liveness);
}

Test (reaper_liveness, hearing_after_the_probe_cancels_the_expiry)
{
    s_floor_value = INT64_MIN;
    liveness_t *liveness = liveness_new (T1, T2);
    liveness_entry_t entry = { 0 };
    liveness_track (liveness, &entry, 0);
    s_seen_t seen = { -1, -1, 0 };
    s_run (liveness, &entry, 0, 1500, &seen);
    cr_assert_eq (seen.evasive, T1);
    liveness_heard (liveness, &entry, 1500);         //  the probe's answer
    seen.evasive = -1;
    s_run (liveness, &entry, 1500, 1500 + T1, &seen);
    cr_assert_eq (seen.expired, -1);
    cr_assert_eq (seen.evasive, -1, "heard at 1500: not evasive before %d", 1500 + T1);
    s_run (liveness, &entry, 1500 + T1, 1500 + T1 + 1, &seen);
    cr_assert_eq (seen.evasive, 1500 + T1, "silent again: probed again");
    liveness_destroy (&liveness);
}

Test (reaper_liveness, nothing_is_judged_while_paused_and_a_probe_gets_its_answer_time)
{
    s_floor_value = LIVENESS_PAUSED;
    liveness_t *liveness = liveness_new (T1, T2);
    liveness_entry_t entry = { 0 };
    liveness_track (liveness, &entry, 0);
    s_seen_t seen = { -1, -1, 0 };
    s_run (liveness, &entry, 0, 20000, &seen);
    cr_assert_eq (seen.reports, 0, "paused (presence unknown): nothing judged");
    //  Presence known at 20000, with the router online since long ago: the
    //  session is long silent, yet it is probed first and expires only
    //  T2 - T1 after the probe.
    s_floor_value = INT64_MIN;
    s_run (liveness, &entry, 20000, 30000, &seen);
    cr_assert_geq (seen.evasive, 20000);
    cr_assert_lt (seen.evasive, 20000 + T1 + 1);
    cr_assert_eq (seen.expired, seen.evasive + (T2 - T1), "expired %lld, probed %lld",
                  (long long) seen.expired, (long long) seen.evasive);
    liveness_destroy (&liveness);
}

Test (reaper_liveness, silence_counts_from_the_floor)
{
    liveness_t *liveness = liveness_new (T1, T2);
    liveness_entry_t entry = { 0 };
    liveness_track (liveness, &entry, 0);
    //  The router came (back) online at 5000: its sessions get a fresh window.
    s_floor_value = 5000;
    s_seen_t seen = { -1, -1, 0 };
    s_run (liveness, &entry, 0, 20000, &seen);
    cr_assert_eq (seen.evasive, 5000 + T1);
    cr_assert_eq (seen.expired, 5000 + T2);
    liveness_destroy (&liveness);
}

//  Verdicts come out in deadline order through random tracking, hearing
//  and untracking of many entries (the heap stays a heap).
Test (reaper_liveness, order_survives_churn)
{
    s_floor_value = INT64_MIN;
    enum { N = 20000 };
    liveness_t *liveness = liveness_new (T1, T2);
    liveness_entry_t *entries = (liveness_entry_t *) calloc (N, sizeof (liveness_entry_t));
    int64_t *last_heard = (int64_t *) calloc (N, sizeof (int64_t));
    srandom (7);
    for (int i = 0; i < N; i++) {
        last_heard [i] = random () % 5000;
        liveness_track (liveness, &entries [i], last_heard [i]);
    }
    for (int i = 0; i < N; i += 3) {
        liveness_untrack (liveness, &entries [i]);
        liveness_untrack (liveness, &entries [i]);      //  twice is harmless
    }
    for (int i = 1; i < N; i += 3) {
        last_heard [i] += random () % 3000;
        liveness_heard (liveness, &entries [i], last_heard [i]);
    }
    cr_assert_eq (liveness_size (liveness), N - (N + 2) / 3);
    size_t expired = 0;
    int64_t previous = 0;
    for (int64_t now = 0; now < 20000; now += 7) {
        liveness_verdict_t verdict;
        liveness_entry_t *entry;
        while ((entry = liveness_next (liveness, now, s_floor, NULL, &verdict))) {
            size_t i = (size_t) (entry - entries);
            cr_assert (i % 3 != 0, "an untracked entry was reported");
            if (verdict == LIVENESS_EXPIRED) {
                cr_assert_geq (now, last_heard [i] + T2);
                cr_assert_lt (now, last_heard [i] + T2 + 2 * 7);
                cr_assert_geq (now, previous - 7);
                previous = now;
                expired++;
            }
            else
                cr_assert_geq (now, last_heard [i] + T1);
        }
    }
    cr_assert_eq (expired, N - (N + 2) / 3, "every silent entry expires once");
    cr_assert_eq (liveness_size (liveness), 0);
    cr_assert_eq (liveness_due (liveness), INT64_MAX);
    liveness_destroy (&liveness);
    free (entries);
    free (last_heard);
}

//  100,000 sessions heard on every heartbeat round cost no verdicts and
//  each is looked at about once per evasive period (lazy rescheduling).
Test (reaper_liveness, heartbeats_cost_o1_and_reschedules_are_rare)
{
    s_floor_value = INT64_MIN;
    enum { N = 100000 };
    liveness_t *liveness = liveness_new (T1, T2);
    liveness_entry_t *entries = (liveness_entry_t *) calloc (N, sizeof (liveness_entry_t));
    for (int i = 0; i < N; i++)
        liveness_track (liveness, &entries [i], 0);
    size_t looks = 0;
    for (int64_t now = 0; now < 10 * T1; now += 250) {
        for (int i = 0; i < N; i++)
            liveness_heard (liveness, &entries [i], now);
        int64_t before = liveness_due (liveness);
        liveness_verdict_t verdict;
        cr_assert_null (liveness_next (liveness, now, s_floor, NULL, &verdict));
        if (before <= now)
            looks++;
    }
    //  The heap top came due about once per T1 (the whole heap was
    //  rescheduled then), not on every heartbeat round.
    cr_assert_leq (looks, 10 + 1, "looks %zu", looks);
    liveness_destroy (&liveness);
    free (entries);
}

//  Per-entry thresholds (the reaper's adaptive liveness): each entry's are
//  its own, asked of the caller whenever it is scheduled or judged.
typedef struct {
    int64_t evasive;            //  T1 of the entries of this "router"
    int64_t expire;             //  T2
} s_pair_t;

typedef struct {
    liveness_entry_t live;      //  first: liveness hands entries back
    s_pair_t *thresholds;       //  its router's
} s_owned_t;

static size_t s_asked;          //  how often the callback was asked

static void
s_thresholds (void *arg, liveness_entry_t *entry, int64_t *evasive, int64_t *expire)
{
    (void) arg;
    s_pair_t *pair = ((s_owned_t *) entry)->thresholds;
    *evasive = pair->evasive;
    *expire = pair->expire;
    s_asked++;
}

//  Runs liveness_next at every ms of [from, to), recording the first
//  verdicts of each entry of entries [0 .. n).
static void
s_run_each (liveness_t *liveness, s_owned_t *entries, s_seen_t *seen, size_t n, int64_t from, int64_t to)
{
    for (int64_t now = from; now < to; now++) {
        liveness_verdict_t verdict;
        liveness_entry_t *next;
        while ((next = liveness_next (liveness, now, s_floor, NULL, &verdict))) {
            size_t i = (size_t) ((s_owned_t *) next - entries);
            cr_assert_lt (i, n);
            seen [i].reports++;
            if (verdict == LIVENESS_EVASIVE && seen [i].evasive < 0)
                seen [i].evasive = now;
            if (verdict == LIVENESS_EXPIRED && seen [i].expired < 0)
                seen [i].expired = now;
        }
    }
}

Test (reaper_liveness, each_entry_is_judged_against_its_own_thresholds)
{
    s_floor_value = INT64_MIN;
    liveness_t *liveness = liveness_new (T1, T2);
    s_pair_t fast = { 500, 1500 }, slow = { 2500, 7500 };
    liveness_set_thresholds (liveness, s_thresholds, NULL);
    s_owned_t entries [2] = { { .thresholds = &fast }, { .thresholds = &slow } };
    liveness_track (liveness, &entries [0].live, 100);
    liveness_track (liveness, &entries [1].live, 100);
    s_seen_t seen [2] = { { -1, -1, 0 }, { -1, -1, 0 } };
    s_run_each (liveness, entries, seen, 2, 100, 20000);
    //  Not the tracker's T1 (1000) and T2 (3000): each its own.
    cr_assert_eq (seen [0].evasive, 100 + 500, "fast evasive at %lld", (long long) seen [0].evasive);
    cr_assert_eq (seen [0].expired, 100 + 1500, "fast expired at %lld", (long long) seen [0].expired);
    cr_assert_eq (seen [1].evasive, 100 + 2500, "slow evasive at %lld", (long long) seen [1].evasive);
    cr_assert_eq (seen [1].expired, 100 + 7500, "slow expired at %lld", (long long) seen [1].expired);
    cr_assert_eq (seen [0].reports + seen [1].reports, 4, "one probe and one expiry each");
    liveness_destroy (&liveness);
}

Test (reaper_liveness, a_threshold_change_applies_at_the_next_look)
{
    s_floor_value = INT64_MIN;
    liveness_t *liveness = liveness_new (T1, T2);
    liveness_set_thresholds (liveness, s_thresholds, NULL);
    s_pair_t pair = { 4000, 12000 };
    s_owned_t entry = { .thresholds = &pair };
    liveness_track (liveness, &entry.live, 0);
    s_seen_t seen = { -1, -1, 0 };
    //  Heard until 3000; its thresholds shrink at 3500 (its router's
    //  cadence was learnt). Its next look is the one scheduled with the
    //  old T1 (4000); from there the new ones hold.
    for (int64_t now = 0; now <= 3000; now += 500) {
        liveness_heard (liveness, &entry.live, now);
        s_run_each (liveness, &entry, &seen, 1, now, now + 500);
    }
    pair = (s_pair_t) { 1000, 2000 };
    s_run_each (liveness, &entry, &seen, 1, 3500, 20000);
    cr_assert_eq (seen.evasive, 4000, "probed at the look the old T1 set (%lld)", (long long) seen.evasive);
    cr_assert_eq (seen.expired, 5000, "expired at 3000 + the new T2 (%lld)", (long long) seen.expired);
    //  And grown thresholds are never judged early: a new entry heard at
    //  20000 whose T1 grows to 6000 before its first look (at 21000).
    pair = (s_pair_t) { 1000, 2000 };
    s_owned_t grown = { .thresholds = &pair };
    liveness_track (liveness, &grown.live, 20000);
    pair = (s_pair_t) { 6000, 9000 };
    seen = (s_seen_t) { -1, -1, 0 };
    s_run_each (liveness, &grown, &seen, 1, 20000, 40000);
    cr_assert_eq (seen.evasive, 26000, "probed at %lld", (long long) seen.evasive);
    cr_assert_eq (seen.expired, 29000, "expired at %lld", (long long) seen.expired);
    liveness_destroy (&liveness);
}

//  A probed entry heard again is looked at one of its own T1 later.
Test (reaper_liveness, a_probed_entry_heard_is_rescheduled_by_its_own_t1)
{
    s_floor_value = INT64_MIN;
    liveness_t *liveness = liveness_new (T1, T2);
    liveness_set_thresholds (liveness, s_thresholds, NULL);
    s_pair_t pair = { 300, 5000 };
    s_owned_t entry = { .thresholds = &pair };
    liveness_track (liveness, &entry.live, 0);
    s_seen_t seen = { -1, -1, 0 };
    s_run_each (liveness, &entry, &seen, 1, 0, 301);
    cr_assert_eq (seen.evasive, 300);
    liveness_heard (liveness, &entry.live, 400);
    cr_assert_eq (liveness_due (liveness), 400 + 300, "due %lld", (long long) liveness_due (liveness));
    liveness_destroy (&liveness);
}

//  Without a thresholds callback nothing asks for one: the tracker's two
//  apply to every entry (the reaper's --liveness fixed).
Test (reaper_liveness, without_a_callback_the_trackers_thresholds_hold)
{
    s_floor_value = INT64_MIN;
    s_asked = 0;
    liveness_t *liveness = liveness_new (T1, T2);
    s_pair_t pair = { 100, 200 };
    s_owned_t entry = { .thresholds = &pair };
    liveness_track (liveness, &entry.live, 0);
    s_seen_t seen = { -1, -1, 0 };
    s_run_each (liveness, &entry, &seen, 1, 0, 10000);
    cr_assert_eq (seen.evasive, T1);
    cr_assert_eq (seen.expired, T2);
    cr_assert_eq (s_asked, 0);
    liveness_destroy (&liveness);
}
