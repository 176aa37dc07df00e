/*  test_prelude.c: assert, clocks, ids, ready files. */
#include <criterion/criterion.h>
#include "ep_test.h"
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

Test (prelude, id_charset)
{
    cr_assert (ep_id_valid ("router-1_A"));
    cr_assert (!ep_id_valid (""));
    cr_assert (!ep_id_valid ("has.dot"));
    cr_assert (!ep_id_valid ("has space"));
    char long_id [66];
    memset (long_id, 'a', 65);
    long_id [65] = 0;
    cr_assert (!ep_id_valid (long_id));
    long_id [64] = 0;
    cr_assert (ep_id_valid (long_id));
    cr_assert (!ep_id_valid (NULL));
}

Test (prelude, random_hex_is_random_and_sized)
{
    char a [33], b [33];
    ep_random_hex (a, 16);
    ep_random_hex (b, 16);
    cr_assert_eq (strlen (a), 32);
    cr_assert_str_neq (a, b);
}

Test (prelude, clocks_move_forward)
{
    int64_t m1 = ep_mono_us ();
    int64_t m2 = ep_mono_us ();
    cr_assert_geq (m2, m1);
    cr_assert_gt (ep_wall_ms (), 1700000000000LL);
}

Test (prelude, rfc3339)
{
    char buf [40];
    cr_assert_str_eq (ep_rfc3339 (1000123, buf, sizeof buf), "1970-01-01T00:16:40.123Z");
}

Test (prelude, assert_survives_ndebug)
{
    //  EP_ASSERT must abort whatever NDEBUG says: run it in a child.
    pid_t pid = fork ();
    if (pid == 0) {
        close (2);
        EP_ASSERT (1 == 2);
        _exit (0);
    }
    int status;
    waitpid (pid, &status, 0);
    cr_assert (WIFSIGNALED (status));
    cr_assert_eq (WTERMSIG (status), SIGABRT);
}

Test (ready, write_read_endpoints)
{
    char *dir = ep_tmpdir_new ("ready");
    char *path = zsys_sprintf ("%s/x.ready", dir);
    cr_assert_null (ep_ready_read (path));
    json_t *eps = json_pack ("{s:s}", "api", "tcp://0.0.0.0:4567");
    cr_assert_eq (ep_ready_write (path, "model", eps), 0);
    json_decref (eps);
    json_t *ready = ep_ready_read (path);
    cr_assert_not_null (ready);
    cr_assert_str_eq (ep_ready_endpoint (ready, "api"), "tcp://0.0.0.0:4567");
    cr_assert_null (ep_ready_endpoint (ready, "nope"));
    char *local = ep_endpoint_connectable (ep_ready_endpoint (ready, "api"));
    cr_assert_str_eq (local, "tcp://127.0.0.1:4567");
    zstr_free (&local);
    local = ep_endpoint_connectable ("tcp://[::]:4567");
    cr_assert_str_eq (local, "tcp://[::1]:4567", "the IPv6 wildcard becomes ::1");
    zstr_free (&local);
    local = ep_endpoint_connectable ("tcp://[::1]:4567");
    cr_assert_str_eq (local, "tcp://[::1]:4567");
    zstr_free (&local);
    json_decref (ready);
    zstr_free (&path);
    ep_tmpdir_remove (&dir);
}
