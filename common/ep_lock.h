/*  ep_lock.h: one writer per data directory.

    A stateful service of the embedded mode (model, terminators, reaper)
    takes <dir>/<service>.lock with flock before it opens its database, and
    holds it until it exits: a second instance on the same data refuses to
    start instead of writing under the first. flock, not fcntl: an fcntl
    lock belongs to the process and is released when any descriptor of the
    file closes, and SQLite's own connections open and close the database
    behind our back. The lock file is separate from the database, opened
    close-on-exec, never unlinked (unlinking would let a newcomer lock a
    new inode while the holder keeps the old one), and holds the holder's
    pid so that the refusal can name it. The kernel releases the lock when
    the holder dies, however it dies.
*/
#ifndef EP_LOCK_H_INCLUDED
#define EP_LOCK_H_INCLUDED

#include "ep_prelude.h"
#include <sys/types.h>

typedef struct _ep_lock_t ep_lock_t;

//  Takes <dir>/<name>.lock without waiting and writes our pid in it.
//  Returns the lock, or NULL: with *holder set to the pid of the process
//  holding it (0 if it has not written its pid yet) and errno EWOULDBLOCK,
//  or with *holder -1 and errno set if the file cannot be opened or locked.
ep_lock_t *
    ep_lock_new (const char *dir, const char *name, pid_t *holder);

//  Releases the lock (the file stays); nulls *self_p.
void
    ep_lock_destroy (ep_lock_t **self_p);

//  The lock file's path.
const char *
    ep_lock_path (ep_lock_t *self);

//  True if some process holds <dir>/<name>.lock; *pid gets its pid (0 if
//  unknown). Probes with a shared lock taken and dropped at once, so a
//  holder is never disturbed.
bool
    ep_lock_held (const char *dir, const char *name, pid_t *pid);

#endif
