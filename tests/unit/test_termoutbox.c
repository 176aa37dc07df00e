/*  test_termoutbox.c: the etcd mode's outbox bookkeeping (termoutbox): a
    shard's outbox is deletable up to the last key whose events, and every
    earlier key's, are published; never past an event still waiting; a
    batch that did not land takes its key away; a lost shard is forgotten. */
#include <criterion/criterion.h>
#include "termoutbox.h"

#define K1 "/p/terminators/00003/o/00000000000000000010-00000000000000000001"
#define K2 "/p/terminators/00003/o/00000000000000000010-00000000000000000002"
#define K3 "/p/terminators/00003/o/00000000000000000010-00000000000000000003"

Test (termoutbox, a_shard_is_trimmable_up_to_its_last_fully_published_key_in_order)
{
    termoutbox_t *box = termoutbox_new (8);
    termoutbox_event (box, 1, 3, K1, "t/3/10-1.0");
    termoutbox_event (box, 2, 3, K1, "t/3/10-1.1");
    termoutbox_event (box, 3, 3, K2, "t/3/10-2.0");
    termoutbox_event (box, 4, 3, K3, "t/3/10-3.0");
    cr_assert_str_eq (termoutbox_event_id (box, 2), "t/3/10-1.1");
    cr_assert_null (termoutbox_trimmable (box, 3));
    termoutbox_published (box, 1);
    cr_assert_null (termoutbox_trimmable (box, 3), "K1 still has an event waiting");
    termoutbox_published (box, 2);
    cr_assert_str_eq (termoutbox_trimmable (box, 3), K1);
    //  K3 published before K2: the range stops at K1 until K2 is.
    termoutbox_published (box, 4);
    cr_assert_str_eq (termoutbox_trimmable (box, 3), K1);
    termoutbox_published (box, 3);
    cr_assert_str_eq (termoutbox_trimmable (box, 3), K3);
    cr_assert_null (termoutbox_event_id (box, 3), "a published event is forgotten");
    termoutbox_trimmed (box, 3, K2);
    cr_assert_str_eq (termoutbox_trimmable (box, 3), K3);
    termoutbox_trimmed (box, 3, K3);
    cr_assert_null (termoutbox_trimmable (box, 3));
    cr_assert_eq (termoutbox_size (box), 0);
    termoutbox_destroy (&box);
}

Test (termoutbox, a_key_that_did_not_land_and_a_lost_shard_are_forgotten)
{
    termoutbox_t *box = termoutbox_new (8);
    termoutbox_event (box, 1, 3, K1, "a");
    termoutbox_event (box, 2, 3, K2, "b");
    termoutbox_event (box, 3, 5, K1, "c");
    termoutbox_forget_key (box, 3, K2);
    cr_assert_null (termoutbox_event_id (box, 2));
    cr_assert_str_eq (termoutbox_event_id (box, 1), "a");
    termoutbox_published (box, 1);
    cr_assert_str_eq (termoutbox_trimmable (box, 3), K1);
    termoutbox_forget_shard (box, 3);
    cr_assert_null (termoutbox_trimmable (box, 3));
    cr_assert_str_eq (termoutbox_event_id (box, 3), "c", "another shard's events stay");
    cr_assert_eq (termoutbox_size (box), 1);
    termoutbox_published (box, 99);     //  unknown: ignored
    termoutbox_destroy (&box);
}
