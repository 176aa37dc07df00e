/*  test_owned.c: allocations registered together are released together,
    each by its own function, in the order added. */
#include <criterion/criterion.h>
#include "ep_owned.h"

static char s_log [64];         //  which releases ran, in order

static void
s_release_a (void *ptr)
{
    strcat (s_log, "a");
    free (ptr);
}

static void
s_release_b (void *ptr)
{
    strcat (s_log, "b");
    free (ptr);
}

Test (owned, releases_everything_in_order_with_its_own_function)
{
    s_log [0] = 0;
    ep_owned_t *owned = ep_owned_new ();
    char *text = strdup ("x");
    cr_assert_eq (ep_owned_add (owned, text, s_release_a), text, "add returns what it was given");
    ep_owned_add (owned, malloc (16), s_release_b);
    ep_owned_add (owned, malloc (16), s_release_a);
    cr_assert_str_eq (s_log, "", "nothing released before destroy");
    ep_owned_destroy (&owned);
    cr_assert_null (owned);
    cr_assert_str_eq (s_log, "aba");
    ep_owned_destroy (&owned);     //  twice is harmless
}

Test (owned, empty_set_is_destroyed_cleanly)
{
    ep_owned_t *owned = ep_owned_new ();
    ep_owned_destroy (&owned);
    cr_assert_null (owned);
}
