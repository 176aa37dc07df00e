/*  test_cmdage.c: the watchdog's command-age check (services/watchdog/
    cmdage), without sockets: a command from an owner older than the
    newest seen for its service and shard is stale, the same or a newer one
    is delivered, an unsharded one always is, and services are apart. */
#include <criterion/criterion.h>
#include "cmdage.h"
#include "ep_shard.h"

//  A command fenced by service's owner of shard at revision (service NULL:
//  unsharded).
static Ep__Command
s_command (const char *service, uint32_t shard, int64_t revision)
{
    Ep__Command command = EP__COMMAND__INIT;
    command.command_id = "c-1";
    command.router_id = "r1";
    if (service) {
        command.shard_service = (char *) service;
        command.has_shard = command.has_owner_revision = true;
        command.shard = shard;
        command.owner_revision = revision;
    }
    return command;
}

static cmdage_verdict_t
s_check (cmdage_t *ages, const char *service, uint32_t shard, int64_t revision)
{
    Ep__Command command = s_command (service, shard, revision);
    return cmdage_check (ages, &command).verdict;
}

Test (cmdage, an_older_owner_is_stale_the_same_or_a_newer_one_delivered)
{
    cmdage_t *ages = cmdage_new ();
    cr_assert_eq (s_check (ages, "reaper", 7, 10), CMDAGE_DELIVER, "the first owner seen");
    cr_assert_eq (s_check (ages, "reaper", 7, 10), CMDAGE_DELIVER, "the same owner again");
    cr_assert_eq (s_check (ages, "reaper", 7, 20), CMDAGE_DELIVER, "a newer owner");
    cr_assert_eq (cmdage_newest (ages, "reaper", 7), 20);
    Ep__Command old = s_command ("reaper", 7, 10);
    cmdage_result_t result = cmdage_check (ages, &old);
    cr_assert_eq (result.verdict, CMDAGE_STALE, "the deposed owner");
    cr_assert_eq (result.newest, 20, "the newest seen, for the log");
    cr_assert_eq (cmdage_newest (ages, "reaper", 7), 20, "a stale command changes nothing");
    cr_assert_eq (s_check (ages, "reaper", 7, 19), CMDAGE_STALE);
    cr_assert_eq (s_check (ages, "reaper", 7, 20), CMDAGE_DELIVER, "the newest still is");
    cr_assert_eq (s_check (ages, "reaper", 8, 10), CMDAGE_DELIVER, "shards are apart");
    cmdage_destroy (&ages);
    cr_assert_null (ages);
}

//  The new owner's beacon is heard before any command of its own: the
//  deposed owner's commands are stale already.
Test (cmdage, an_owners_beacon_makes_older_commands_stale)
{
    cmdage_t *ages = cmdage_new ();
    cr_assert_eq (s_check (ages, "terminators", 3, 10), CMDAGE_DELIVER);
    cmdage_owner (ages, "terminators", 3, 25);
    cr_assert_eq (cmdage_newest (ages, "terminators", 3), 25);
    cr_assert_eq (s_check (ages, "terminators", 3, 10), CMDAGE_STALE, "the deposed owner");
    cr_assert_eq (s_check (ages, "terminators", 3, 25), CMDAGE_DELIVER, "the owner that beaconed");
    cmdage_owner (ages, "terminators", 3, 10);
    cr_assert_eq (cmdage_newest (ages, "terminators", 3), 25, "a late beacon of the old owner changes nothing");
    cmdage_owner (ages, "terminators", EP_SHARD_MAX_COUNT, 30);
    cmdage_owner (ages, "bad service!", 3, 30);
    cmdage_owner (ages, NULL, 3, 30);
    cr_assert_eq (cmdage_newest (ages, "terminators", 3), 25, "out-of-range beacons are ignored");
    cmdage_destroy (&ages);
}

Test (cmdage, an_unsharded_command_is_always_delivered)
{
    cmdage_t *ages = cmdage_new ();
    cr_assert_eq (s_check (ages, "reaper", 7, 20), CMDAGE_DELIVER);
    for (int i = 0; i < 3; i++)
        cr_assert_eq (s_check (ages, NULL, 0, 0), CMDAGE_UNSHARDED);
    cr_assert_eq (cmdage_newest (ages, "reaper", 7), 20);
    cmdage_destroy (&ages);
}

Test (cmdage, services_are_apart)
{
    cmdage_t *ages = cmdage_new ();
    cr_assert_eq (s_check (ages, "reaper", 7, 500), CMDAGE_DELIVER);
    cr_assert_eq (s_check (ages, "terminators", 7, 30), CMDAGE_DELIVER,
                  "another service's owners have their own revisions");
    cr_assert_eq (s_check (ages, "terminators", 7, 20), CMDAGE_STALE);
    cr_assert_eq (s_check (ages, "reaper", 7, 499), CMDAGE_STALE);
    cr_assert_eq (cmdage_newest (ages, "terminators", 7), 30);
    cr_assert_eq (cmdage_newest (ages, "reaper", 7), 500);
    cr_assert_eq (cmdage_newest (ages, "model", 7), 0, "never seen");
    cmdage_destroy (&ages);
}

Test (cmdage, a_malformed_fence_is_not_delivered)
{
    cmdage_t *ages = cmdage_new ();
    Ep__Command partial = s_command ("reaper", 7, 10);
    partial.has_owner_revision = false;
    cmdage_result_t result = cmdage_check (ages, &partial);
    cr_assert_eq (result.verdict, CMDAGE_BAD);
    cr_assert (strstr (result.why, "together"), "%s", result.why);
    partial = s_command (NULL, 0, 0);
    partial.has_shard = true;           //  a shard alone
    cr_assert_eq (cmdage_check (ages, &partial).verdict, CMDAGE_BAD);
    cr_assert_eq (s_check (ages, "reaper", 7, 0), CMDAGE_BAD, "no revision");
    cr_assert_eq (s_check (ages, "reaper", 7, -3), CMDAGE_BAD);
    cr_assert_eq (s_check (ages, "reaper", EP_SHARD_MAX_COUNT, 10), CMDAGE_BAD);
    cr_assert_eq (s_check (ages, "reaper", EP_SHARD_MAX_COUNT - 1, 10), CMDAGE_DELIVER);
    cr_assert_eq (s_check (ages, "", 7, 10), CMDAGE_BAD);
    Ep__Command spaced = s_command ("re aper", 7, 10);
    result = cmdage_check (ages, &spaced);
    cr_assert_eq (result.verdict, CMDAGE_BAD, "a label value must be an id");
    cr_assert (strstr (result.why, "re aper"), "%s", result.why);
    cr_assert_eq (cmdage_newest (ages, "reaper", 7), 0, "nothing malformed was remembered");
    cmdage_destroy (&ages);
}

Test (cmdage, services_are_bounded)
{
    cmdage_t *ages = cmdage_new ();
    char name [16];
    for (int i = 0; i < CMDAGE_MAX_SERVICES; i++) {
        snprintf (name, sizeof name, "svc%d", i);
        cr_assert_eq (s_check (ages, name, 0, 1), CMDAGE_DELIVER);
    }
    Ep__Command extra = s_command ("one-more", 0, 1);
    cmdage_result_t result = cmdage_check (ages, &extra);
    cr_assert_eq (result.verdict, CMDAGE_BAD, "past the bound");
    cr_assert (strstr (result.why, "one-more"), "%s", result.why);
    cr_assert_eq (s_check (ages, "svc0", 0, 2), CMDAGE_DELIVER, "known services still judged");
    cmdage_destroy (&ages);
}
