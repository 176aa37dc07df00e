/*  test_backoff.c: exponential growth, cap, jitter, reset. */
#include <criterion/criterion.h>
#include "ep_backoff.h"

Test (backoff, grows_exponentially_within_jitter_and_caps)
{
    ep_backoff_t b = ep_backoff (100, 1000);
    int64_t expect [] = { 100, 200, 400, 800, 1000, 1000 };
    for (size_t i = 0; i < EP_COUNT (expect); i++) {
        int64_t d = ep_backoff_next (&b);
        cr_assert (d >= expect [i] / 2 && d <= expect [i],
                   "attempt %zu: %lld not in [%lld, %lld]", i, (long long) d,
                   (long long) expect [i] / 2, (long long) expect [i]);
    }
    ep_backoff_reset (&b);
    int64_t d = ep_backoff_next (&b);
    cr_assert (d >= 50 && d <= 100);
}

Test (backoff, jitter_spreads_delays)
{
    //  1000 fresh backoffs at a 10 s cap: delays must not all coincide.
    int64_t min = INT64_MAX, max = 0;
    for (int i = 0; i < 1000; i++) {
        ep_backoff_t b = ep_backoff (10000, 10000);
        int64_t d = ep_backoff_next (&b);
        if (d < min) min = d;
        if (d > max) max = d;
    }
    cr_assert_gt (max - min, 2500);
}
