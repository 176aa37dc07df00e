/*  test_adopt.c: ep_adopt, the shard news and the stepping of an adoption,
    without sockets or clocks: at most one step per turn of a bounded size,
    drops first and never behind an adoption, an adoption voided by its
    shard's drop or by a lost ownership, stale reads never stepped. */
#include <criterion/criterion.h>
#include "ep_adopt.h"

#define SHARDS 8

static int64_t s_held [SHARDS];     //  the ownership the valid check sees
static int s_freed;                 //  payloads destroyed

static bool
s_valid (void *arg, int shard, int64_t revision)
{
    (void) arg;
    return s_held [shard] == revision;
}

static void
s_free (void **payload)
{
    free (*payload);
    *payload = NULL;
    s_freed++;
}

static ep_adopt_t *
s_new (size_t step)
{
    memset (s_held, 0, sizeof s_held);
    s_freed = 0;
    ep_adopt_config_t config = { .service = "test", .step = step, .valid = s_valid,
                                 .destructor = s_free };
    return ep_adopt_new (&config);
}

static void
s_loaded (ep_adopt_t *adopt, int shard, int64_t revision, size_t total)
{
    s_held [shard] = revision;
    ep_adopt_loaded (adopt, shard, revision, total, malloc (1));
}

Test (adopt, a_shard_is_adopted_one_bounded_step_per_turn)
{
    ep_adopt_t *adopt = s_new (100);
    s_loaded (adopt, 3, 7, 250);
    cr_assert (ep_adopt_pending (adopt));
    size_t expect [][2] = { { 0, 100 }, { 100, 200 }, { 200, 250 } };
    ep_adopt_action_t action;
    for (int turn = 0; turn < 3; turn++) {
        ep_adopt_turn (adopt);
        cr_assert (ep_adopt_next (adopt, &action));
        cr_assert_eq (action.kind, EP_ADOPT_STEP);
        cr_assert_eq (action.shard, 3);
        cr_assert_eq (action.revision, 7);
        cr_assert_eq (action.from, expect [turn][0]);
        cr_assert_eq (action.to, expect [turn][1]);
        cr_assert_eq (action.total, 250);
        cr_assert_eq (action.steps, (size_t) turn + 1);
        cr_assert_eq (action.first, turn == 0);
        cr_assert_eq (action.last, turn == 2);
        cr_assert_not_null (action.payload);
        //  One step per turn: nothing more until the next.
        cr_assert_not (ep_adopt_next (adopt, &action));
        cr_assert_eq (ep_adopt_shard (adopt), turn < 2? 3: -1);
        cr_assert_eq (ep_adopt_pending (adopt), turn < 2);
    }
    cr_assert_eq (ep_adopt_steps (adopt), 3);
    ep_adopt_destroy (&adopt);
    cr_assert_eq (s_freed, 1);
}

Test (adopt, an_empty_shard_is_one_step_first_and_last_and_shards_go_one_at_a_time)
{
    ep_adopt_t *adopt = s_new (100);
    s_loaded (adopt, 1, 5, 0);
    s_loaded (adopt, 2, 6, 150);
    ep_adopt_action_t action;
    ep_adopt_turn (adopt);
    cr_assert (ep_adopt_next (adopt, &action));
    cr_assert (action.kind == EP_ADOPT_STEP && action.shard == 1 && action.first && action.last);
    cr_assert_eq (action.to, 0);
    cr_assert_not (ep_adopt_next (adopt, &action));
    ep_adopt_turn (adopt);
    cr_assert (ep_adopt_next (adopt, &action));
    cr_assert (action.shard == 2 && action.first && !action.last && action.to == 100);
    ep_adopt_turn (adopt);
    cr_assert (ep_adopt_next (adopt, &action));
    cr_assert (action.shard == 2 && !action.first && action.last && action.to == 150);
    ep_adopt_destroy (&adopt);
}

Test (adopt, a_drop_of_another_shard_goes_first_without_waiting_for_the_adoption)
{
    ep_adopt_t *adopt = s_new (10);
    s_loaded (adopt, 1, 5, 100);
    ep_adopt_action_t action;
    ep_adopt_turn (adopt);
    cr_assert (ep_adopt_next (adopt, &action) && action.kind == EP_ADOPT_STEP);
    ep_adopt_dropped (adopt, 4, 9, "lease lost");
    //  Same turn: the drop still comes (drops never wait), the step not.
    cr_assert (ep_adopt_next (adopt, &action));
    cr_assert_eq (action.kind, EP_ADOPT_DROP);
    cr_assert_eq (action.shard, 4);
    cr_assert_str_eq (action.why, "lease lost");
    cr_assert_not (ep_adopt_next (adopt, &action));
    cr_assert_eq (ep_adopt_shard (adopt), 1);
    ep_adopt_turn (adopt);
    cr_assert (ep_adopt_next (adopt, &action));
    cr_assert (action.kind == EP_ADOPT_STEP && action.shard == 1 && action.from == 10);
    ep_adopt_destroy (&adopt);
}

Test (adopt, a_drop_of_the_shard_under_way_aborts_it_then_drops_it)
{
    ep_adopt_t *adopt = s_new (10);
    s_loaded (adopt, 1, 5, 100);
    ep_adopt_action_t action;
    ep_adopt_turn (adopt);
    cr_assert (ep_adopt_next (adopt, &action) && action.kind == EP_ADOPT_STEP);
    //  The same revision read again after an unknown outcome: drop, then
    //  the new read (valid again by the time it is applied).
    ep_adopt_dropped (adopt, 1, 5, "read again");
    s_loaded (adopt, 1, 5, 30);
    ep_adopt_turn (adopt);
    cr_assert (ep_adopt_next (adopt, &action));
    cr_assert_eq (action.kind, EP_ADOPT_ABORT);
    cr_assert_eq (action.shard, 1);
    cr_assert_eq (ep_adopt_shard (adopt), -1);
    cr_assert (ep_adopt_next (adopt, &action));
    cr_assert_eq (action.kind, EP_ADOPT_DROP);
    cr_assert (ep_adopt_next (adopt, &action));
    //  The fresh read starts over from its first record.
    cr_assert (action.kind == EP_ADOPT_STEP && action.first && action.total == 30 && action.to == 10);
    ep_adopt_destroy (&adopt);
    cr_assert_eq (s_freed, 2);
}

Test (adopt, a_drop_voids_the_older_reads_of_its_shard_queued_before_it)
{
    ep_adopt_t *adopt = s_new (10);
    s_loaded (adopt, 2, 5, 10);     //  stale: dropped and read again under 5 below
    ep_adopt_dropped (adopt, 2, 5, "read again");
    s_loaded (adopt, 2, 5, 20);
    ep_adopt_action_t action;
    ep_adopt_turn (adopt);
    cr_assert (ep_adopt_next (adopt, &action) && action.kind == EP_ADOPT_DROP);
    cr_assert (ep_adopt_next (adopt, &action) && action.kind == EP_ADOPT_STEP);
    cr_assert_eq (action.total, 20, "the stale read of 10 records was stepped");
    cr_assert_eq (s_freed, 1);
    ep_adopt_destroy (&adopt);
}

Test (adopt, an_ownership_lost_mid_adoption_aborts_it_and_a_stale_read_is_never_stepped)
{
    ep_adopt_t *adopt = s_new (10);
    s_loaded (adopt, 1, 5, 100);
    s_loaded (adopt, 2, 6, 10);
    s_loaded (adopt, 3, 8, 10);
    ep_adopt_action_t action;
    ep_adopt_turn (adopt);
    cr_assert (ep_adopt_next (adopt, &action) && action.kind == EP_ADOPT_STEP && action.shard == 1);
    s_held [1] = 0;                 //  the lease ended; its DROPPED not heard yet
    s_held [2] = 11;                //  taken again under another revision
    ep_adopt_turn (adopt);
    cr_assert (ep_adopt_next (adopt, &action));
    cr_assert (action.kind == EP_ADOPT_ABORT && action.shard == 1);
    cr_assert (ep_adopt_next (adopt, &action));
    cr_assert (action.kind == EP_ADOPT_STEP && action.shard == 3, "shard %d stepped", action.shard);
    cr_assert_not (ep_adopt_pending (adopt));
    ep_adopt_destroy (&adopt);
    cr_assert_eq (s_freed, 3);
}

Test (adopt, the_step_comes_from_the_environment_when_not_given)
{
    unsetenv ("EDGEPLANE_ADOPT_STEP");
    cr_assert_eq (ep_adopt_step_env (), EP_ADOPT_RECORDS);
    setenv ("EDGEPLANE_ADOPT_STEP", "7", 1);
    cr_assert_eq (ep_adopt_step_env (), 7);
    setenv ("EDGEPLANE_ADOPT_STEP", "0", 1);
    cr_assert_eq (ep_adopt_step_env (), EP_ADOPT_RECORDS);
    setenv ("EDGEPLANE_ADOPT_STEP", "3", 1);
    ep_adopt_t *adopt = s_new (0);
    s_loaded (adopt, 0, 1, 7);
    ep_adopt_action_t action;
    ep_adopt_turn (adopt);
    cr_assert (ep_adopt_next (adopt, &action) && action.to == 3);
    ep_adopt_destroy (&adopt);
    unsetenv ("EDGEPLANE_ADOPT_STEP");
}
