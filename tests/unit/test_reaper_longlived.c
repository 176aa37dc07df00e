/*  test_reaper_longlived.c: the heap of sessions waiting to cross
    --long-lived (services/reaper/longlived). Each entry is handed out once,
    at its crossing time and not a millisecond before, in crossing order,
    whatever order it was tracked in; one untracked first never is; and a
    look at the heap when nothing has crossed hands out nothing, however
    many entries wait. */
#include <criterion/criterion.h>
#include "longlived.h"

#define N 10000

Test (reaper_longlived, entries_come_out_once_in_crossing_order_at_their_time)
{
    longlived_t *longlived = longlived_new ();
    longlived_entry_t *entries = (longlived_entry_t *) calloc (N, sizeof (longlived_entry_t));
    //  Tracked in a scrambled order; crossing times 1000 .. 1000 + N - 1.
    for (size_t i = 0; i < N; i++)
        longlived_track (longlived, &entries [(i * 7919) % N], 1000 + (int64_t) ((i * 7919) % N));
    cr_assert_eq (longlived_size (longlived), N);
    cr_assert_eq (longlived_due (longlived), 1000);
    //  Every other one closes before it crosses.
    for (size_t i = 1; i < N; i += 2)
        longlived_untrack (longlived, &entries [i]);
    cr_assert_eq (longlived_size (longlived), N / 2);
    size_t out = 0;
    for (int64_t now = 0; now < 1000 + N + 10; now++) {
        longlived_entry_t *entry;
        while ((entry = longlived_next (longlived, now))) {
            size_t i = (size_t) (entry - entries);
            cr_assert_eq (i % 2, 0, "entry %zu was untracked", i);
            cr_assert_eq (entry->crosses, now, "entry %zu came out at %lld, crosses at %lld", i,
                          (long long) now, (long long) entry->crosses);
            cr_assert_not (longlived_tracked (entry));
            out++;
        }
    }
    cr_assert_eq (out, N / 2);
    cr_assert_eq (longlived_size (longlived), 0);
    cr_assert_eq (longlived_due (longlived), INT64_MAX);
    cr_assert_null (longlived_next (longlived, INT64_MAX));
    //  Untracking what is not tracked does nothing; tracking again works.
    longlived_untrack (longlived, &entries [0]);
    longlived_track (longlived, &entries [0], 5);
    cr_assert (longlived_tracked (&entries [0]));
    cr_assert_null (longlived_next (longlived, 4));
    cr_assert_eq (longlived_next (longlived, 5), &entries [0]);
    free (entries);
    longlived_destroy (&longlived);
    cr_assert_null (longlived);
}

Test (reaper_longlived, nothing_crossed_is_one_look_at_the_top)
{
    longlived_t *longlived = longlived_new ();
    longlived_entry_t *entries = (longlived_entry_t *) calloc (N, sizeof (longlived_entry_t));
    for (size_t i = 0; i < N; i++)
        longlived_track (longlived, &entries [i], 1000000 + (int64_t) i);
    //  The top alone decides: a million looks before anyone crosses leave
    //  every entry tracked (and take no time to speak of).
    size_t out = 0;
    for (int64_t now = 0; now < 1000000; now++)
        out += longlived_next (longlived, now) != NULL;
    cr_assert_eq (out, 0);
    cr_assert_eq (longlived_size (longlived), N);
    free (entries);
    longlived_destroy (&longlived);
}
