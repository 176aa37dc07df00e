/*  test_renewal.c: when a watchdog instance renews its own ctrl
    certificate, or warns about a bundle's end: times in, action and the
    next time to look out. */
#include <criterion/criterion.h>
#include "renewal.h"

#define DAY (24 * 3600 * 1000LL)

//  The action at now, with *next.
static renewal_action_t
s_check (int64_t start, int64_t end, bool renewable, int64_t now, int64_t *next)
{
    *next = -1;
    return renewal_check (start, end, renewable, now, next);
}

Test (renewal, own_certificate_is_renewed_after_two_thirds_of_its_lifetime)
{
    int64_t next;
    //  6 s from t=1000: due at 5000.
    cr_assert_eq (s_check (1000, 7000, true, 1000, &next), RENEWAL_WAIT);
    cr_assert_eq (next, 5000, "look again when it is due");
    cr_assert_eq (s_check (1000, 7000, true, 4999, &next), RENEWAL_WAIT);
    cr_assert_eq (next, 5000);
    cr_assert_eq (s_check (1000, 7000, true, 5000, &next), RENEWAL_RENEW);
    cr_assert_eq (s_check (1000, 7000, true, 6500, &next), RENEWAL_RENEW);
    //  825 days: due after 550.
    cr_assert_eq (s_check (0, 825 * DAY, true, 549 * DAY, &next), RENEWAL_WAIT);
    cr_assert_eq (next, 550 * DAY);
    cr_assert_eq (s_check (0, 825 * DAY, true, 550 * DAY, &next), RENEWAL_RENEW);
}

Test (renewal, a_failed_renewal_is_retried_after_a_twentieth_of_the_lifetime_within_bounds)
{
    int64_t next;
    //  The retry time is where the caller looks again if issuing failed.
    cr_assert_eq (s_check (0, 60000, true, 40000, &next), RENEWAL_RENEW);
    cr_assert_eq (next, 43000, "1/20 of 60 s");
    cr_assert_eq (s_check (0, 6000, true, 4000, &next), RENEWAL_RENEW);
    cr_assert_eq (next, 5000, "at least a second");
    cr_assert_eq (s_check (0, 825 * DAY, true, 600 * DAY, &next), RENEWAL_RENEW);
    cr_assert_eq (next, 600 * DAY + 3600 * 1000, "at most an hour");
    //  Past its end it is still ours to renew.
    cr_assert_eq (s_check (0, 6000, true, 9000, &next), RENEWAL_RENEW);
    cr_assert_eq (next, 10000);
}

Test (renewal, a_bundle_is_never_renewed_but_warned_about_in_its_last_thirty_days)
{
    int64_t next;
    //  365 days: 2/3 is day 243, 30 days before the end is day 335: the later.
    cr_assert_eq (s_check (0, 365 * DAY, false, 300 * DAY, &next), RENEWAL_WAIT);
    cr_assert_eq (next, 335 * DAY);
    cr_assert_eq (s_check (0, 365 * DAY, false, 335 * DAY, &next), RENEWAL_WARN);
    cr_assert_eq (next, 336 * DAY, "daily");
    cr_assert_eq (s_check (0, 365 * DAY, false, 364 * DAY + 5, &next), RENEWAL_WARN);
    cr_assert_eq (next, 365 * DAY, "and at its end");
    cr_assert_eq (s_check (0, 365 * DAY, false, 365 * DAY, &next), RENEWAL_EXPIRED);
    cr_assert_eq (next, 366 * DAY);
    //  A short one (a day): from 2/3 of it.
    cr_assert_eq (s_check (0, 3 * DAY, false, DAY, &next), RENEWAL_WAIT);
    cr_assert_eq (next, 2 * DAY);
    cr_assert_eq (s_check (0, 3 * DAY, false, 2 * DAY, &next), RENEWAL_WARN);
    cr_assert_eq (next, 3 * DAY);
}

Test (renewal, a_certificate_without_lifetime_is_due_at_once)
{
    int64_t next;
    cr_assert_eq (s_check (5000, 5000, true, 5000, &next), RENEWAL_RENEW);
    cr_assert_eq (next, 6000);
    cr_assert_eq (s_check (5000, 4000, false, 5000, &next), RENEWAL_EXPIRED);
    cr_assert_str_eq (renewal_action_name (RENEWAL_RENEW), "renew");
    cr_assert_str_eq (renewal_action_name (RENEWAL_WARN), "warn");
}
