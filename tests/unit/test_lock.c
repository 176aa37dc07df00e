/*  test_lock.c: one holder per lock file, its pid inside, released on destroy only. */
#include <criterion/criterion.h>
#include "ep_lock.h"
#include "ep_test.h"
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

Test (lock, second_taker_is_refused_with_the_holders_pid)
{
    char *dir = ep_tmpdir_new ("lock");
    pid_t holder = 99, pid = 99;
    cr_assert_not (ep_lock_held (dir, "model", &pid), "no lock file yet");
    cr_assert_eq (pid, 0);
    ep_lock_t *first = ep_lock_new (dir, "model", &holder);
    cr_assert_not_null (first);
    cr_assert_eq (holder, 0);
    //  flock conflicts between open file descriptions, even in one process.
    ep_lock_t *second = ep_lock_new (dir, "model", &holder);
    cr_assert_null (second);
    cr_assert_eq (errno, EWOULDBLOCK);
    cr_assert_eq (holder, getpid (), "the refusal names the holder (%d)", (int) holder);
    cr_assert (ep_lock_held (dir, "model", &pid));
    cr_assert_eq (pid, getpid ());
    //  Another service's lock in the same directory is independent.
    ep_lock_t *other = ep_lock_new (dir, "reaper", &holder);
    cr_assert_not_null (other);
    ep_lock_destroy (&other);
    ep_lock_destroy (&first);
    cr_assert_null (first);
    cr_assert_not (ep_lock_held (dir, "model", &pid), "released on destroy");
    second = ep_lock_new (dir, "model", &holder);
    cr_assert_not_null (second, "taken again once released");
    ep_lock_destroy (&second);
    ep_tmpdir_remove (&dir);
}

Test (lock, closing_another_descriptor_of_the_file_keeps_it)
{
    //  The fcntl trap: a POSIX record lock goes when any descriptor of the
    //  file closes. flock stays with the holder's descriptor.
    char *dir = ep_tmpdir_new ("lock");
    pid_t holder;
    ep_lock_t *lock = ep_lock_new (dir, "terminators", &holder);
    cr_assert_not_null (lock);
    int fd = open (ep_lock_path (lock), O_RDWR);
    cr_assert_geq (fd, 0);
    close (fd);
    pid_t pid;
    cr_assert (ep_lock_held (dir, "terminators", &pid));
    cr_assert_eq (pid, getpid ());
    ep_lock_destroy (&lock);
    ep_tmpdir_remove (&dir);
}

Test (lock, descriptor_is_close_on_exec_and_probe_does_not_disturb)
{
    char *dir = ep_tmpdir_new ("lock");
    pid_t holder, pid;
    ep_lock_t *lock = ep_lock_new (dir, "reaper", &holder);
    cr_assert_not_null (lock);
    //  Find our descriptor of the lock file and check FD_CLOEXEC.
    bool found = false;
    for (int fd = 3; fd < 1024 && !found; fd++) {
        char link [64], target [4096];
        snprintf (link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink (link, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target [n] = 0;
        if (streq (target, ep_lock_path (lock))) {
            found = true;
            cr_assert (fcntl (fd, F_GETFD) & FD_CLOEXEC, "the lock descriptor must not leak into children");
        }
    }
    cr_assert (found);
    for (int i = 0; i < 3; i++)
        cr_assert (ep_lock_held (dir, "reaper", &pid));
    ep_lock_t *again = ep_lock_new (dir, "reaper", &holder);
    cr_assert_null (again, "a probe never releases the holder's lock");
    ep_lock_destroy (&lock);
    ep_tmpdir_remove (&dir);
}

Test (lock, unwritable_directory_is_an_error_not_a_holder)
{
    pid_t holder;
    ep_lock_t *lock = ep_lock_new ("/nonexistent/edgeplane", "model", &holder);
    cr_assert_null (lock);
    cr_assert_eq (holder, -1);
    cr_assert_eq (errno, ENOENT);
}
