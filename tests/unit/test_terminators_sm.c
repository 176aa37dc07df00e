/*  test_terminators_sm.c: the terminator lifecycle (termsm) driven directly:
    every path of the state machine, backoff with jitter and its cap, the
    ordering rules by model revision, and the spin detector's key memory. */
#include <criterion/criterion.h>
#include "termsm.h"

static const termsm_config_t s_config = {
    .establish_timeout_ms = 1000, .retry_base_ms = 100, .retry_max_ms = 1000, .retry_cap = 4,
    .delete_grace_ms = 500, .tombstone_ttl_ms = 60000
};
static const termsm_facts_t s_online = { .online = true, .hosted = true };
static const termsm_facts_t s_offline = { .online = false, .hosted = true };

static void
s_assert_step (termsm_step_t step, int count, termsm_state_t last)
{
    cr_assert_eq (step.count, count, "expected %d transitions, got %d", count, step.count);
    for (int i = 0; i < step.count; i++) {
        cr_assert (termsm_allowed (step.from [i], step.to [i]), "%s -> %s is not a lifecycle transition",
                   termsm_state_name (step.from [i]), termsm_state_name (step.to [i]));
        if (i > 0)
            cr_assert_eq (step.from [i], step.to [i - 1], "transitions must chain");
    }
    if (count)
        cr_assert_eq (step.to [count - 1], last);
}

Test (terminators_sm, create_establishes_at_once_when_router_online_and_hosted)
{
    termsm_t sm = { 0 };
    termsm_step_t step = termsm_create (&sm, &s_config, s_online, 5000);
    s_assert_step (step, 2, TERMSM_ESTABLISHED);
    cr_assert_eq (step.from [0], TERMSM_NONE);
    cr_assert_eq (step.to [0], TERMSM_ESTABLISHING);
    cr_assert_eq (sm.state, TERMSM_ESTABLISHED);
    cr_assert_eq (sm.due_ms, 0, "nothing is timed once established");
}

Test (terminators_sm, create_waits_for_router_then_establishes)
{
    termsm_t sm = { 0 };
    s_assert_step (termsm_create (&sm, &s_config, s_offline, 5000), 1, TERMSM_ESTABLISHING);
    cr_assert_eq (sm.due_ms, 6000, "the establish deadline is create + timeout");
    s_assert_step (termsm_evaluate (&sm, &s_config, s_offline, 5500), 0, TERMSM_NONE);
    s_assert_step (termsm_evaluate (&sm, &s_config, s_online, 5600), 1, TERMSM_ESTABLISHED);
    cr_assert_eq (sm.due_ms, 0);
}

Test (terminators_sm, hosting_not_confirmed_does_not_establish)
{
    termsm_t sm = { 0 };
    termsm_facts_t unhosted = { .online = true, .hosted = false };
    s_assert_step (termsm_create (&sm, &s_config, unhosted, 0), 1, TERMSM_ESTABLISHING);
    s_assert_step (termsm_evaluate (&sm, &s_config, unhosted, 10), 0, TERMSM_NONE);
    cr_assert_eq (sm.state, TERMSM_ESTABLISHING);
}

Test (terminators_sm, establish_timeout_fails_then_retries_with_doubling_jittered_backoff_up_to_the_cap)
{
    termsm_t sm = { 0 };
    termsm_create (&sm, &s_config, s_offline, 0);
    int64_t now = sm.due_ms;
    termsm_step_t step = termsm_timer (&sm, &s_config, s_offline, now, 0);
    s_assert_step (step, 1, TERMSM_FAILED);
    cr_assert_not (step.ask_router, "an offline router cannot be asked");
    cr_assert_eq (sm.attempts, 1);
    //  Delays: base * 2^(n-1) capped at max, drawn from [d/2, d].
    int64_t expected [] = { 100, 200, 400, 800 };
    cr_assert (sm.due_ms - now >= expected [0] / 2 && sm.due_ms - now <= expected [0]);
    for (uint32_t n = 2; n <= s_config.retry_cap; n++) {
        now = sm.due_ms;
        step = termsm_timer (&sm, &s_config, s_offline, now, 0xffffffffu);
        s_assert_step (step, 0, TERMSM_NONE);
        cr_assert_eq (sm.state, TERMSM_FAILED);
        cr_assert_eq (sm.attempts, n);
        int64_t delay = sm.due_ms - now;
        cr_assert (delay >= expected [n - 1] / 2 && delay <= expected [n - 1],
                   "retry %u: delay %lld outside [%lld, %lld]", n, (long long) delay,
                   (long long) expected [n - 1] / 2, (long long) expected [n - 1]);
    }
    //  Past the cap: it stays FAILED with no timer, waiting for its router.
    step = termsm_timer (&sm, &s_config, s_offline, sm.due_ms, 7);
    cr_assert_eq (sm.state, TERMSM_FAILED);
    cr_assert_eq (sm.attempts, s_config.retry_cap + 1);
    cr_assert_eq (sm.due_ms, 0, "no more automatic tries past the cap");
    //  The router coming back establishes it.
    s_assert_step (termsm_evaluate (&sm, &s_config, s_online, 99999), 1, TERMSM_ESTABLISHED);
    cr_assert_eq (sm.attempts, 0);
}

Test (terminators_sm, a_retry_with_the_router_online_establishes)
{
    termsm_t sm = { 0 };
    termsm_create (&sm, &s_config, s_offline, 0);
    termsm_timer (&sm, &s_config, s_offline, sm.due_ms, 1);
    s_assert_step (termsm_timer (&sm, &s_config, s_online, sm.due_ms, 1), 1, TERMSM_ESTABLISHED);
}

Test (terminators_sm, backoff_stays_within_jitter_bounds_and_the_max)
{
    for (uint32_t attempt = 1; attempt < 40; attempt++) {
        int64_t full = 100;
        for (uint32_t i = 1; i < attempt && full < 1000; i++)
            full *= 2;
        if (full > 1000)
            full = 1000;
        int64_t low = INT64_MAX, high = 0;
        for (uint32_t r = 0; r < 5000; r++) {
            int64_t delay = termsm_backoff (&s_config, attempt, r * 2654435761u);
            cr_assert (delay >= full / 2 && delay <= full, "attempt %u: %lld", attempt, (long long) delay);
            low = delay < low? delay: low;
            high = delay > high? delay: high;
        }
        cr_assert (high - low > full / 4, "attempt %u: jitter should spread delays (%lld..%lld)",
                   attempt, (long long) low, (long long) high);
    }
}

Test (terminators_sm, router_lacking_it_fails_it_until_the_router_creates_it_again)
{
    termsm_t sm = { 0 };
    termsm_create (&sm, &s_config, s_online, 0);
    termsm_step_t step = termsm_lacks (&sm, &s_config, 100, 0);
    s_assert_step (step, 1, TERMSM_FAILED);
    cr_assert (sm.lacks);
    cr_assert_gt (sm.due_ms, 100);
    //  Online and hosted, but the router said it does not have it.
    s_assert_step (termsm_evaluate (&sm, &s_config, s_online, 150), 0, TERMSM_NONE);
    step = termsm_timer (&sm, &s_config, s_online, sm.due_ms, 0);
    cr_assert_eq (sm.state, TERMSM_FAILED);
    cr_assert (step.ask_router, "a retry asks the online router to validate");
    //  The router creates it again.
    step = termsm_create (&sm, &s_config, s_online, sm.due_ms + 1);
    s_assert_step (step, 2, TERMSM_ESTABLISHED);
    cr_assert_eq (step.from [0], TERMSM_FAILED);
    cr_assert_not (sm.lacks);
}

Test (terminators_sm, router_delete_goes_through_deleting_to_deleted)
{
    termsm_t sm = { 0 };
    termsm_create (&sm, &s_config, s_online, 0);
    s_assert_step (termsm_delete (&sm, &s_config, 100), 2, TERMSM_DELETED);
    cr_assert_eq (sm.due_ms, 100 + s_config.tombstone_ttl_ms, "the tombstone's purge time");
    s_assert_step (termsm_delete (&sm, &s_config, 200), 0, TERMSM_NONE);
}

Test (terminators_sm, retire_waits_for_a_present_router_or_deletes_at_once)
{
    termsm_t sm = { 0 };
    termsm_create (&sm, &s_config, s_online, 0);
    s_assert_step (termsm_retire (&sm, &s_config, true, 100), 1, TERMSM_DELETING);
    cr_assert_eq (sm.due_ms, 100 + s_config.delete_grace_ms);
    s_assert_step (termsm_timer (&sm, &s_config, s_online, sm.due_ms, 0), 1, TERMSM_DELETED);

    termsm_t gone = { 0 };
    termsm_create (&gone, &s_config, s_online, 0);
    s_assert_step (termsm_retire (&gone, &s_config, false, 100), 2, TERMSM_DELETED);

    termsm_t confirmed = { 0 };
    termsm_create (&confirmed, &s_config, s_online, 0);
    termsm_retire (&confirmed, &s_config, true, 100);
    s_assert_step (termsm_confirm (&confirmed, &s_config, 120), 1, TERMSM_DELETED);
    s_assert_step (termsm_confirm (&confirmed, &s_config, 130), 0, TERMSM_NONE);
}

Test (terminators_sm, a_newer_create_brings_back_a_deleting_or_deleted_one)
{
    termsm_t sm = { 0 };
    termsm_create (&sm, &s_config, s_online, 0);
    termsm_retire (&sm, &s_config, true, 10);
    s_assert_step (termsm_create (&sm, &s_config, s_online, 20), 2, TERMSM_ESTABLISHED);
    termsm_delete (&sm, &s_config, 30);
    termsm_step_t step = termsm_create (&sm, &s_config, s_offline, 40);
    s_assert_step (step, 1, TERMSM_ESTABLISHING);
    cr_assert_eq (step.from [0], TERMSM_DELETED);
}

Test (terminators_sm, random_walks_only_make_lifecycle_transitions)
{
    srand (42);
    for (int walk = 0; walk < 2000; walk++) {
        termsm_t sm = { 0 };
        int64_t now = 0;
        for (int i = 0; i < 40; i++) {
            now += rand () % 2000;
            termsm_facts_t facts = { .online = rand () % 2, .hosted = rand () % 4 != 0 };
            termsm_state_t before = sm.state;
            termsm_step_t step;
            switch (rand () % 7) {
                case 0: step = termsm_create (&sm, &s_config, facts, now); break;
                case 1: step = termsm_evaluate (&sm, &s_config, facts, now); break;
                case 2: step = sm.due_ms && now >= sm.due_ms? termsm_timer (&sm, &s_config, facts, now, (uint32_t) rand ())
                                                             : termsm_evaluate (&sm, &s_config, facts, now); break;
                case 3: step = termsm_lacks (&sm, &s_config, now, (uint32_t) rand ()); break;
                case 4: step = termsm_delete (&sm, &s_config, now); break;
                case 5: step = termsm_retire (&sm, &s_config, rand () % 2, now); break;
                default: step = termsm_confirm (&sm, &s_config, now); break;
            }
            for (int t = 0; t < step.count; t++)
                cr_assert (termsm_allowed (step.from [t], step.to [t]));
            cr_assert_eq (step.count? step.from [0]: before, before, "a step starts where the state was");
            cr_assert_eq (step.count? step.to [step.count - 1]: before, sm.state, "and ends where it is");
            if (sm.state == TERMSM_ESTABLISHED)
                cr_assert (sm.due_ms == 0 && sm.attempts == 0);
            if (sm.state == TERMSM_DELETED)
                cr_assert_not (sm.lacks);
        }
    }
}

Test (terminators_sm, creates_are_ordered_by_model_revision)
{
    //  Live: idempotent, whatever the revision.
    cr_assert_eq (termsm_order_create (TERMSM_ESTABLISHED, 10, 3), TERMSM_APPLY);
    cr_assert_eq (termsm_order_create (TERMSM_NONE, 0, 0), TERMSM_APPLY);
    //  Deleted or being deleted: only a strictly newer create brings it back.
    cr_assert_eq (termsm_order_create (TERMSM_DELETED, 10, 10), TERMSM_STALE, "sent before the delete");
    cr_assert_eq (termsm_order_create (TERMSM_DELETED, 10, 9), TERMSM_STALE);
    cr_assert_eq (termsm_order_create (TERMSM_DELETED, 10, 11), TERMSM_APPLY);
    cr_assert_eq (termsm_order_create (TERMSM_DELETING, 10, 10), TERMSM_STALE);
    cr_assert_eq (termsm_order_create (TERMSM_DELETING, 10, 12), TERMSM_APPLY);
    //  A delete or update overtaken by a newer create stays away.
    cr_assert_eq (termsm_order_change (TERMSM_ESTABLISHED, 10, 9), TERMSM_STALE);
    cr_assert_eq (termsm_order_change (TERMSM_ESTABLISHED, 10, 10), TERMSM_APPLY);
    cr_assert_eq (termsm_order_change (TERMSM_FAILED, 10, 11), TERMSM_APPLY);
    cr_assert_eq (termsm_order_change (TERMSM_DELETING, 10, 1), TERMSM_APPLY,
                  "any delete from its router confirms a DELETING one");
}

Test (terminators_sm, spin_is_create_delete_create_without_a_touching_revision)
{
    termsm_key_t key = { 0 };
    //  Created based on revision 5; the last touch known is 5.
    cr_assert_not (termsm_key_create (&key, 5, 5, true));
    termsm_key_delete (&key);
    cr_assert (termsm_key_create (&key, 5, 5, true), "create -> delete -> create with no touch is a spin");
    //  Once counted, creating again is not another spin.
    cr_assert_not (termsm_key_create (&key, 5, 5, true));
    //  A newer request revision does not hide it: the model did not touch the key.
    termsm_key_delete (&key);
    cr_assert (termsm_key_create (&key, 5, 9, true));
}

Test (terminators_sm, unhost_rehost_through_the_model_is_no_spin)
{
    termsm_key_t key = { 0 };
    cr_assert_not (termsm_key_create (&key, 5, 5, true));
    termsm_key_delete (&key);               //  un-hosted at revision 6...
    cr_assert_not (termsm_key_create (&key, 7, 7, true), "...and re-hosted at 7: the model touched the key");
    termsm_key_delete (&key);
    cr_assert (termsm_key_create (&key, 7, 7, true));
}

Test (terminators_sm, a_late_create_does_not_make_a_rehost_look_like_a_spin)
{
    //  The router created based on 100; the model un-hosted (150) and
    //  re-hosted (160) before the create arrived; the router, learning
    //  150, deletes; learning 160, creates again.
    termsm_key_t key = { 0 };
    cr_assert_not (termsm_key_create (&key, 160, 100, true));
    termsm_key_delete (&key);
    cr_assert_not (termsm_key_create (&key, 160, 160, true), "touches 150 and 160 lie after 100");
}

Test (terminators_sm, a_refused_create_counts_one_spin_per_cycle)
{
    termsm_key_t key = { 0 };
    termsm_key_create (&key, 5, 5, true);
    termsm_key_delete (&key);
    cr_assert (termsm_key_create (&key, 5, 5, false), "a refused create after a delete is still a spin");
    cr_assert_not (termsm_key_create (&key, 5, 5, false), "its retries are not new spins");
    termsm_key_delete (&key);
    cr_assert (termsm_key_create (&key, 5, 5, false), "another delete -> create cycle is");
    //  A refused create never counts as the first create.
    termsm_key_t fresh = { 0 };
    cr_assert_not (termsm_key_create (&fresh, 1, 1, false));
    termsm_key_delete (&fresh);
    cr_assert_not (termsm_key_create (&fresh, 1, 1, true));
}

Test (terminators_sm, state_names_round_trip)
{
    for (int state = TERMSM_ESTABLISHING; state < TERMSM_STATE_COUNT; state++)
        cr_assert_eq (termsm_state_parse (termsm_state_name (state)), state);
    cr_assert_eq (termsm_state_parse ("ESTABLISHED"), TERMSM_ESTABLISHED);
    cr_assert_eq (termsm_state_parse ("bogus"), -1);
    cr_assert_eq (termsm_state_parse (NULL), -1);
}

Test (terminators_sm, a_router_that_keeps_lacking_it_has_it_deleted_at_the_cap)
{
    termsm_t sm = { 0 };
    termsm_create (&sm, &s_config, s_online, 0);
    termsm_lacks (&sm, &s_config, 0, 0);
    termsm_step_t step = { 0 };
    for (uint32_t i = 0; i < s_config.retry_cap; i++) {
        cr_assert_eq (sm.state, TERMSM_FAILED);
        step = termsm_timer (&sm, &s_config, s_online, sm.due_ms, 0);
    }
    s_assert_step (step, 2, TERMSM_DELETED);
    cr_assert_eq (step.from [0], TERMSM_FAILED);
    //  An offline router's terminator is never deleted for failing.
    termsm_t offline = { 0 };
    termsm_create (&offline, &s_config, s_offline, 0);
    for (int i = 0; i < 20 && offline.due_ms; i++)
        termsm_timer (&offline, &s_config, s_offline, offline.due_ms, 0);
    cr_assert_eq (offline.state, TERMSM_FAILED);
    cr_assert_eq (offline.due_ms, 0);
}
