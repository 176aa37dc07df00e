/*  crashvfs.c: a SQLite VFS that simulates power loss, for durability tests.

    Built as a shared library and LD_PRELOADed into a service (or dlopened
    by a test): its constructor registers "crashvfs", a wrapper around the
    default "unix" VFS, and makes it the default. Every xWrite is kept in
    memory (reads see it, xFileSize counts it); only xSync writes it to the
    real file and then syncs that. So `kill -9` of the process loses exactly
    the writes that were never synced, as a power cut would, and a test can
    show that every acknowledged write was synced first.

    Pending writes are kept per path, shared by every handle on that path in
    the process, like the OS page cache: a second connection (the model's
    snapshot reads) sees what the first wrote, and a sync through any handle
    makes the path's writes durable. xTruncate applies the pending writes
    first. Shared memory (-shm, the WAL index) is not wrapped: the unix VFS
    maps it itself, and after a crash the next opener rebuilds it from the
    WAL. xFetch (mmap reads) is not offered, so every read comes through
    xRead and sees the pending writes.

    EDGEPLANE_CRASHVFS_STATS=path: after each sync, one fixed-width line
    "syncs N writes N" is written at offset 0 of that file (one pwrite), so
    a test can count fsyncs even after the process was killed.

    EDGEPLANE_CRASHVFS_SYNC_US=N: every sync takes N microseconds before the
    data reaches the file, as a real disk's flush does. A kill in that time
    loses the writes being synced; without it a service that replied before
    its sync finished would lose the race only rarely on a fast disk.
*/
#include <sqlite3.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  One write not yet synced.
typedef struct {
    sqlite3_int64 offset;       //  where it goes
    int size;                   //  how many bytes
    unsigned char *data;        //  the bytes
} s_write_t;

//  What is pending for one path (kept for the life of the process).
typedef struct s_path {
    char *name;                 //  the file's full path
    s_write_t *writes;          //  pending writes, oldest first
    size_t count;               //  how many
    size_t capacity;            //  allocated
    sqlite3_int64 end;          //  largest offset + size pending, 0 if none
    struct s_path *next;        //  next path
} s_path_t;

//  A handle: our methods, the path's state, then the unix VFS's file.
typedef struct {
    sqlite3_file base;          //  pMethods: ours
    s_path_t *path;             //  pending state, NULL for files not buffered
    sqlite3_file *real;         //  the unix file, allocated right after us
} s_file_t;

static sqlite3_vfs *s_real_vfs;     //  the wrapped "unix" VFS
static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;  //  guards everything below
static s_path_t *s_paths;           //  every path seen
static unsigned long long s_syncs;  //  xSync calls
static unsigned long long s_writes; //  xWrite calls
static int s_stats_fd = -1;         //  EDGEPLANE_CRASHVFS_STATS, or -1
static useconds_t s_sync_us;        //  EDGEPLANE_CRASHVFS_SYNC_US: simulated flush time

static s_path_t *
s_path_find (const char *name)
{
    s_path_t *path = s_paths;
    while (path && strcmp (path->name, name) != 0)
        path = path->next;
    if (!path) {
        path = (s_path_t *) calloc (1, sizeof (s_path_t));
        path->name = strdup (name);
        path->next = s_paths;
        s_paths = path;
    }
    return path;
}

static void
s_path_drop (s_path_t *path)
{
    for (size_t i = 0; i < path->count; i++)
        free (path->writes [i].data);
    path->count = 0;
    path->end = 0;
}

//  Writes everything pending for the path through real. Lock held.
static int
s_path_apply (s_path_t *path, sqlite3_file *real)
{
    int rc = SQLITE_OK;
    for (size_t i = 0; i < path->count && rc == SQLITE_OK; i++)
        rc = real->pMethods->xWrite (real, path->writes [i].data, path->writes [i].size,
                                     path->writes [i].offset);
    if (rc == SQLITE_OK)
        s_path_drop (path);
    return rc;
}

static void
s_stats_write (void)
{
    if (s_stats_fd < 0)
        return;
    char line [64];
    int size = snprintf (line, sizeof line, "syncs %020llu writes %020llu\n", s_syncs, s_writes);
    if (pwrite (s_stats_fd, line, (size_t) size, 0) != size)
        return;                 //  a test reading it will notice the stale count
}

//  ---------------------------------------------------------------------
//  File methods

static int
s_close (sqlite3_file *file)
{
    s_file_t *self = (s_file_t *) file;
    //  Pending writes outlive the handle, as dirty pages outlive an fd.
    return self->real->pMethods->xClose (self->real);
}

static int
s_read (sqlite3_file *file, void *buf, int amount, sqlite3_int64 offset)
{
    s_file_t *self = (s_file_t *) file;
    int rc = self->real->pMethods->xRead (self->real, buf, amount, offset);
    if (!self->path || (rc != SQLITE_OK && rc != SQLITE_IOERR_SHORT_READ))
        return rc;
    pthread_mutex_lock (&s_lock);
    s_path_t *path = self->path;
    for (size_t i = 0; i < path->count; i++) {
        s_write_t *write = &path->writes [i];
        sqlite3_int64 from = write->offset > offset? write->offset: offset;
        sqlite3_int64 to = write->offset + write->size < offset + amount?
                           write->offset + write->size: offset + amount;
        if (from < to)
            memcpy ((unsigned char *) buf + (from - offset), write->data + (from - write->offset),
                    (size_t) (to - from));
    }
    //  Short only if the pending writes do not reach the end either; the
    //  tail past both ends is zeros already (the unix VFS filled it).
    if (rc == SQLITE_IOERR_SHORT_READ && path->end >= offset + amount)
        rc = SQLITE_OK;
    pthread_mutex_unlock (&s_lock);
    return rc;
}

static int
s_write (sqlite3_file *file, const void *buf, int amount, sqlite3_int64 offset)
{
    s_file_t *self = (s_file_t *) file;
    pthread_mutex_lock (&s_lock);
    s_writes++;
    if (!self->path) {
        pthread_mutex_unlock (&s_lock);
        return self->real->pMethods->xWrite (self->real, buf, amount, offset);
    }
    s_path_t *path = self->path;
    //  A write that covers earlier ones replaces them (a page written
    //  twice), so memory and read overlays stay bounded by what changed.
    size_t kept = 0;
    for (size_t i = 0; i < path->count; i++) {
        s_write_t *write = &path->writes [i];
        if (write->offset >= offset && write->offset + write->size <= offset + amount)
            free (write->data);
        else
            path->writes [kept++] = *write;
    }
    path->count = kept;
    if (path->count == path->capacity) {
        path->capacity = path->capacity? path->capacity * 2: 64;
        path->writes = (s_write_t *) realloc (path->writes, path->capacity * sizeof (s_write_t));
    }
    s_write_t *write = &path->writes [path->count++];
    write->offset = offset;
    write->size = amount;
    write->data = (unsigned char *) malloc ((size_t) amount);
    memcpy (write->data, buf, (size_t) amount);
    if (offset + amount > path->end)
        path->end = offset + amount;
    pthread_mutex_unlock (&s_lock);
    return SQLITE_OK;
}

static int
s_truncate (sqlite3_file *file, sqlite3_int64 size)
{
    s_file_t *self = (s_file_t *) file;
    int rc = SQLITE_OK;
    if (self->path) {
        pthread_mutex_lock (&s_lock);
        rc = s_path_apply (self->path, self->real);
        pthread_mutex_unlock (&s_lock);
    }
    return rc == SQLITE_OK? self->real->pMethods->xTruncate (self->real, size): rc;
}

static int
s_sync (sqlite3_file *file, int flags)
{
    s_file_t *self = (s_file_t *) file;
    //  The flush takes time, and until it ends nothing is on the disk.
    if (s_sync_us)
        usleep (s_sync_us);
    pthread_mutex_lock (&s_lock);
    int rc = self->path? s_path_apply (self->path, self->real): SQLITE_OK;
    if (rc == SQLITE_OK)
        rc = self->real->pMethods->xSync (self->real, flags);
    s_syncs++;
    s_stats_write ();
    pthread_mutex_unlock (&s_lock);
    return rc;
}

static int
s_file_size (sqlite3_file *file, sqlite3_int64 *size)
{
    s_file_t *self = (s_file_t *) file;
    int rc = self->real->pMethods->xFileSize (self->real, size);
    if (rc == SQLITE_OK && self->path) {
        pthread_mutex_lock (&s_lock);
        if (self->path->end > *size)
            *size = self->path->end;
        pthread_mutex_unlock (&s_lock);
    }
    return rc;
}

static int
s_lock_file (sqlite3_file *file, int level)
{
    s_file_t *self = (s_file_t *) file;
    return self->real->pMethods->xLock (self->real, level);
}

static int
s_unlock_file (sqlite3_file *file, int level)
{
    s_file_t *self = (s_file_t *) file;
    return self->real->pMethods->xUnlock (self->real, level);
}

static int
s_check_reserved (sqlite3_file *file, int *out)
{
    s_file_t *self = (s_file_t *) file;
    return self->real->pMethods->xCheckReservedLock (self->real, out);
}

static int
s_file_control (sqlite3_file *file, int op, void *arg)
{
    s_file_t *self = (s_file_t *) file;
    return self->real->pMethods->xFileControl (self->real, op, arg);
}

static int
s_sector_size (sqlite3_file *file)
{
    s_file_t *self = (s_file_t *) file;
    return self->real->pMethods->xSectorSize (self->real);
}

static int
s_device_characteristics (sqlite3_file *file)
{
    s_file_t *self = (s_file_t *) file;
    //  No atomic batch writes: every write must come through xWrite.
    return self->real->pMethods->xDeviceCharacteristics (self->real) & ~SQLITE_IOCAP_BATCH_ATOMIC;
}

static int
s_shm_map (sqlite3_file *file, int region, int size, int extend, void volatile **out)
{
    s_file_t *self = (s_file_t *) file;
    return self->real->pMethods->xShmMap (self->real, region, size, extend, out);
}

static int
s_shm_lock (sqlite3_file *file, int offset, int n, int flags)
{
    s_file_t *self = (s_file_t *) file;
    return self->real->pMethods->xShmLock (self->real, offset, n, flags);
}

static void
s_shm_barrier (sqlite3_file *file)
{
    s_file_t *self = (s_file_t *) file;
    self->real->pMethods->xShmBarrier (self->real);
}

static int
s_shm_unmap (sqlite3_file *file, int delete_flag)
{
    s_file_t *self = (s_file_t *) file;
    return self->real->pMethods->xShmUnmap (self->real, delete_flag);
}

//  Version 2: shared memory, but no xFetch, so SQLite never reads through
//  an mmap that would bypass the pending writes.
static const sqlite3_io_methods s_methods = {
    2, s_close, s_read, s_write, s_truncate, s_sync, s_file_size, s_lock_file,
    s_unlock_file, s_check_reserved, s_file_control, s_sector_size,
    s_device_characteristics, s_shm_map, s_shm_lock, s_shm_barrier, s_shm_unmap,
    NULL, NULL
};

//  ---------------------------------------------------------------------
//  VFS methods

static int
s_open (sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out_flags)
{
    (void) vfs;
    s_file_t *self = (s_file_t *) file;
    memset (self, 0, sizeof *self);
    self->real = (sqlite3_file *) (self + 1);
    int rc = s_real_vfs->xOpen (s_real_vfs, name, self->real, flags, out_flags);
    if (rc != SQLITE_OK) {
        if (self->real->pMethods)
            self->real->pMethods->xClose (self->real);
        return rc;
    }
    //  The files that carry data across a crash; temporary ones do not.
    if (name && (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_JOURNAL
                          | SQLITE_OPEN_SUPER_JOURNAL))) {
        pthread_mutex_lock (&s_lock);
        self->path = s_path_find (name);
        pthread_mutex_unlock (&s_lock);
    }
    self->base.pMethods = &s_methods;
    return SQLITE_OK;
}

static int
s_delete (sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    (void) vfs;
    //  A deleted file's pending writes go with it.
    pthread_mutex_lock (&s_lock);
    for (s_path_t *path = s_paths; path; path = path->next)
        if (strcmp (path->name, name) == 0)
            s_path_drop (path);
    pthread_mutex_unlock (&s_lock);
    return s_real_vfs->xDelete (s_real_vfs, name, sync_dir);
}

static int
s_access (sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    (void) vfs;
    return s_real_vfs->xAccess (s_real_vfs, name, flags, out);
}

static int
s_full_pathname (sqlite3_vfs *vfs, const char *name, int size, char *out)
{
    (void) vfs;
    return s_real_vfs->xFullPathname (s_real_vfs, name, size, out);
}

static void *
s_dl_open (sqlite3_vfs *vfs, const char *name)
{
    (void) vfs;
    return s_real_vfs->xDlOpen (s_real_vfs, name);
}

static void
s_dl_error (sqlite3_vfs *vfs, int size, char *out)
{
    (void) vfs;
    s_real_vfs->xDlError (s_real_vfs, size, out);
}

static void (*s_dl_sym (sqlite3_vfs *vfs, void *handle, const char *symbol)) (void)
{
    (void) vfs;
    return s_real_vfs->xDlSym (s_real_vfs, handle, symbol);
}

static void
s_dl_close (sqlite3_vfs *vfs, void *handle)
{
    (void) vfs;
    s_real_vfs->xDlClose (s_real_vfs, handle);
}

static int
s_randomness (sqlite3_vfs *vfs, int size, char *out)
{
    (void) vfs;
    return s_real_vfs->xRandomness (s_real_vfs, size, out);
}

static int
s_sleep (sqlite3_vfs *vfs, int micros)
{
    (void) vfs;
    return s_real_vfs->xSleep (s_real_vfs, micros);
}

static int
s_current_time (sqlite3_vfs *vfs, double *out)
{
    (void) vfs;
    return s_real_vfs->xCurrentTime (s_real_vfs, out);
}

static int
s_last_error (sqlite3_vfs *vfs, int size, char *out)
{
    (void) vfs;
    return s_real_vfs->xGetLastError (s_real_vfs, size, out);
}

static int
s_current_time_int64 (sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    (void) vfs;
    return s_real_vfs->xCurrentTimeInt64 (s_real_vfs, out);
}

static sqlite3_vfs s_vfs = {
    2, 0, 0, NULL, "crashvfs", NULL,
    s_open, s_delete, s_access, s_full_pathname, s_dl_open, s_dl_error, s_dl_sym,
    s_dl_close, s_randomness, s_sleep, s_current_time, s_last_error,
    s_current_time_int64, NULL, NULL, NULL
};

__attribute__ ((constructor)) static void
s_register (void)
{
    s_real_vfs = sqlite3_vfs_find ("unix");
    if (!s_real_vfs) {
        fprintf (stderr, "crashvfs: SQLite has no \"unix\" VFS to wrap\n");
        abort ();
    }
    s_vfs.szOsFile = (int) sizeof (s_file_t) + s_real_vfs->szOsFile;
    s_vfs.mxPathname = s_real_vfs->mxPathname;
    const char *stats = getenv ("EDGEPLANE_CRASHVFS_STATS");
    if (stats && *stats) {
        s_stats_fd = open (stats, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        s_stats_write ();
    }
    const char *sync_us = getenv ("EDGEPLANE_CRASHVFS_SYNC_US");
    if (sync_us)
        s_sync_us = (useconds_t) strtoul (sync_us, NULL, 10);
    if (sqlite3_vfs_register (&s_vfs, 1) != SQLITE_OK) {
        fprintf (stderr, "crashvfs: cannot register the VFS\n");
        abort ();
    }
}
