/*  ep_lock.c: one writer per data directory (flock on <service>.lock). */
#include "ep_lock.h"
#include "ep_file.h"
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

struct _ep_lock_t {
    int fd;                     //  the locked file, close-on-exec
    char path [PATH_MAX];       //  <dir>/<name>.lock
};

//  Reads the pid a holder wrote in fd; 0 if none (yet).
static pid_t
s_read_pid (int fd)
{
    char text [32];
    ssize_t n = pread (fd, text, sizeof text - 1, 0);
    if (n <= 0)
        return 0;
    text [n] = 0;
    long pid = strtol (text, NULL, 10);
    return pid > 0 && pid <= INT32_MAX? (pid_t) pid: 0;
}

ep_lock_t *
ep_lock_new (const char *dir, const char *name, pid_t *holder)
{
    *holder = -1;
    if (strlen (dir) > EP_FILE_DIR_MAX) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    ep_lock_t *self = (ep_lock_t *) zmalloc (sizeof (ep_lock_t));
    ep_file_path (self->path, "%s/%s.lock", dir, name);
    self->fd = open (self->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (self->fd < 0) {
        free (self);
        return NULL;
    }
    if (flock (self->fd, LOCK_EX | LOCK_NB) != 0) {
        int error = errno;
        if (error == EWOULDBLOCK)
            *holder = s_read_pid (self->fd);
        close (self->fd);
        free (self);
        errno = error;
        return NULL;
    }
    //  Ours now: the pid of a previous holder is stale.
    char text [32];
    int size = snprintf (text, sizeof text, "%d\n", (int) getpid ());
    if (ftruncate (self->fd, 0) != 0 || pwrite (self->fd, text, (size_t) size, 0) != size) {
        int error = errno;
        close (self->fd);
        free (self);
        errno = error;
        return NULL;
    }
    *holder = 0;
    return self;
}

void
ep_lock_destroy (ep_lock_t **self_p)
{
    ep_lock_t *self = *self_p;
    if (self) {
        close (self->fd);       //  releases the flock
        free (self);
        *self_p = NULL;
    }
}

const char *
ep_lock_path (ep_lock_t *self)
{
    return self->path;
}

bool
ep_lock_held (const char *dir, const char *name, pid_t *pid)
{
    *pid = 0;
    if (strlen (dir) > EP_FILE_DIR_MAX)
        return false;
    char path [PATH_MAX];
    ep_file_path (path, "%s/%s.lock", dir, name);
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;           //  never locked here
    bool held = false;
    if (flock (fd, LOCK_SH | LOCK_NB) == 0)
        flock (fd, LOCK_UN);
    else
    if (errno == EWOULDBLOCK) {
        held = true;
        *pid = s_read_pid (fd);
    }
    close (fd);
    return held;
}
