/*  test_output.c: a core's outputs leave only after their commit, in the
    order staged, and a savepoint or commit that is undone takes its
    outputs with it. */
#include <criterion/criterion.h>
#include "ep_output.h"

//  A command event for router (built on the stack, as cores do).
static ep_output_item_t *
s_add (ep_output_t *output, const char *topic, const char *router)
{
    Ep__Command command = EP__COMMAND__INIT;
    command.router_id = (char *) router;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_COMMAND;
    event.command = &command;
    return ep_output_add (output, topic, &event, 0);
}

static void
s_expect_next (ep_output_t *output, const char *topic, const char *router)
{
    ep_output_item_t *item = ep_output_next (output);
    cr_assert_not_null (item, "expected %s", topic);
    cr_assert_str_eq (item->topic, topic);
    cr_assert_eq (item->event->body_case, EP__EVENT__BODY_COMMAND);
    cr_assert_str_eq (item->event->command->router_id, router);
    ep_output_item_destroy (&item);
    cr_assert_null (item);
}

Test (output, nothing_is_ready_before_the_commit_then_all_in_order)
{
    ep_output_t *output = ep_output_new ();
    s_add (output, "cmd.r1.", "r1");
    s_add (output, "cmd.r2.", "r2");
    cr_assert_null (ep_output_next (output), "staged outputs wait for the commit");
    cr_assert_eq (ep_output_staged (output), 2);
    cr_assert_eq (ep_output_commit (output), 2);
    cr_assert_eq (ep_output_ready (output), 2);
    cr_assert_eq (ep_output_staged (output), 0);
    s_add (output, "cmd.r3.", "r3");
    s_expect_next (output, "cmd.r1.", "r1");
    s_expect_next (output, "cmd.r2.", "r2");
    cr_assert_null (ep_output_next (output), "r3 is not committed yet");
    ep_output_commit (output);
    s_expect_next (output, "cmd.r3.", "r3");
    ep_output_destroy (&output);
    cr_assert_null (output);
}

Test (output, an_undone_savepoint_drops_only_its_own_outputs)
{
    ep_output_t *output = ep_output_new ();
    s_add (output, "cmd.a.", "a");
    size_t mark = ep_output_mark (output);
    s_add (output, "cmd.b.", "b");
    s_add (output, "cmd.c.", "c");
    ep_output_undo (output, mark);
    s_add (output, "cmd.d.", "d");
    ep_output_commit (output);
    s_expect_next (output, "cmd.a.", "a");
    s_expect_next (output, "cmd.d.", "d");
    cr_assert_null (ep_output_next (output));
    ep_output_destroy (&output);
}

Test (output, a_failed_commit_drops_what_it_staged_but_not_what_was_ready)
{
    ep_output_t *output = ep_output_new ();
    s_add (output, "cmd.a.", "a");
    ep_output_commit (output);
    s_add (output, "cmd.b.", "b");
    ep_output_abort (output);
    cr_assert_eq (ep_output_staged (output), 0);
    s_expect_next (output, "cmd.a.", "a");
    cr_assert_null (ep_output_next (output));
    //  Staged and ready outputs left at destroy are freed with the queue.
    s_add (output, "cmd.c.", "c");
    ep_output_commit (output);
    s_add (output, "cmd.d.", "d");
    ep_output_destroy (&output);
}

Test (output, items_own_a_copy_and_keep_the_core_s_number)
{
    ep_output_t *output = ep_output_new ();
    char router [8] = "r1";
    ep_output_item_t *item = s_add (output, "terminator.created", router);
    item->seq = 42;
    strcpy (router, "xx");      //  the core's buffers change after staging
    uint8_t bytes [64];
    Ep__Command command = EP__COMMAND__INIT;
    command.router_id = "r2";
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_COMMAND;
    event.command = &command;
    size_t size = ep__event__pack (&event, bytes);
    cr_assert_not_null (ep_output_add_packed (output, "cmd.r2.", bytes, size, 7));
    Ep__Event *taken = ep__event__unpack (NULL, size, bytes);
    cr_assert_not_null (ep_output_take (output, "cmd.r3.", &taken, 0));
    cr_assert_null (taken, "take takes ownership");
    int count = 0;
    for (ep_output_item_t *staged = ep_output_first_staged (output); staged;
         staged = ep_output_next_staged (output))
        count++;
    cr_assert_eq (count, 3);
    ep_output_commit (output);
    item = ep_output_next (output);
    cr_assert_eq (item->seq, 42);
    cr_assert_str_eq (item->event->command->router_id, "r1");
    ep_output_item_destroy (&item);
    item = ep_output_next (output);
    cr_assert_eq (item->seq, 7);
    ep_output_item_destroy (&item);
    s_expect_next (output, "cmd.r3.", "r2");
    ep_output_destroy (&output);
}
