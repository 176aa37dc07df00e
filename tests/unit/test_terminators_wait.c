/*  test_terminators_wait.c: the terminators loop's sleep (termwait): the
    nearest deadline, never negative; and while a batch's etcd transaction
    is in flight, the core's timers that cannot run then (presence expiry,
    internal work) do not make it poll without sleeping. */
#include <criterion/criterion.h>
#include "termwait.h"

static termwait_t
s_idle (void)
{
    return (termwait_t) { .publisher = 1000, .follower = 250, .park = INT64_MAX, .expire = 500,
                          .gauges = 900, .work = INT64_MAX, .degraded = INT64_MAX, .beacon = 700 };
}

Test (terminators_wait, sleeps_until_the_nearest_deadline_and_never_negative)
{
    termwait_t due = s_idle ();
    cr_assert_eq (termwait_timeout (&due), 250);
    due.park = 40;
    cr_assert_eq (termwait_timeout (&due), 40);
    due.gauges = -30;
    cr_assert_eq (termwait_timeout (&due), 0);
}

Test (terminators_wait, the_cores_timers_are_due_now_when_no_batch_is_in_flight)
{
    termwait_t due = s_idle ();
    due.expire = -2000;
    cr_assert_eq (termwait_timeout (&due), 0);
    due = s_idle ();
    due.work = 0;
    cr_assert_eq (termwait_timeout (&due), 0);
}

Test (terminators_wait, a_transaction_in_flight_does_not_spin_on_the_cores_timers)
{
    //  As seen in bench/terminators_etcd_bench: expiry 2 s late and work due,
    //  while the batch's transaction is in flight.
    termwait_t due = s_idle ();
    due.expire = -2000;
    due.work = 0;
    due.committing = true;
    cr_assert_eq (termwait_timeout (&due), 250, "the loop would spin until the answer");
    //  The other deadlines still count.
    due.beacon = 0;
    cr_assert_eq (termwait_timeout (&due), 0);
}
