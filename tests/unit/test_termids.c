/*  test_termids.c: the router agent's terminator ids (tools/edgeplane-router
    termids.c) last across restarts in the state directory, and for the
    process's life without one. */
#include <criterion/criterion.h>
#include "ep_test.h"
#include "termids.h"

Test (termids, an_id_is_kept_across_a_restart)
{
    char *dir = ep_tmpdir_new ("termids");
    termids_t *ids = termids_new (dir, "r1");
    char first [33];
    snprintf (first, sizeof first, "%s", termids_get (ids, "svc-a"));
    cr_assert_eq (strlen (first), 32);
    cr_assert_str_eq (termids_get (ids, "svc-a"), first, "asked again: the same id");
    cr_assert_str_neq (termids_get (ids, "svc-b"), first, "another service: another id");
    termids_destroy (&ids);
    cr_assert_null (ids);
    ids = termids_new (dir, "r1");
    cr_assert_str_eq (termids_get (ids, "svc-a"), first, "restarted: the id from the file");
    termids_destroy (&ids);
    ids = termids_new (dir, "r2");
    cr_assert_str_neq (termids_get (ids, "svc-a"), first, "another router keeps its own file");
    termids_destroy (&ids);
    ep_tmpdir_remove (&dir);
}

Test (termids, without_a_state_directory_ids_last_the_process)
{
    termids_t *ids = termids_new (NULL, "r1");
    char first [33];
    snprintf (first, sizeof first, "%s", termids_get (ids, "svc-a"));
    cr_assert_str_eq (termids_get (ids, "svc-a"), first);
    termids_destroy (&ids);
}
