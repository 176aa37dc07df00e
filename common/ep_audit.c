/*  ep_audit.c: the audit log; renames for rotation so that a reader with
    the old file open keeps reading it to its end. */
#include "ep_audit.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

struct _ep_audit_t {
    char *path;                 //  the live file
    int64_t max_bytes;          //  rotate before the file would exceed this; 0 = never
    int backups;                //  rotated files kept: path.1 (newest) .. path.N
    ep_audit_sync_t sync;       //  when lines are forced to the disk
    int64_t interval_ms;        //  INTERVAL: least time between two syncs
    int fd;                     //  O_APPEND descriptor; -1 after a failed reopen
    bool regular;               //  a regular file; a pipe or device neither rotates nor syncs
    int64_t size;               //  bytes in the live file
    bool torn;                  //  a partial line could not be cut off: start with a newline
    bool dirty;                 //  lines written since the last sync
    bool synced_once;           //  INTERVAL: last_sync_ms is meaningful
    int64_t last_sync_ms;       //  INTERVAL: monotonic time of the last sync
    uint64_t lines;             //  lines appended
    uint64_t errors;            //  failures
    uint64_t syncs;             //  fdatasyncs performed
    uint64_t missed;            //  lines not written since the last one that was
    uint64_t skipped;           //  lines not written, in all
    int64_t missed_since_ms;    //  wall ms of the first line missed
    ep_store_fault_t fault;     //  the kind of the last write failure; NONE once one succeeds
    char error [600];           //  the last failure, for the caller's log
};

static const char *s_sync_names [] = { "never", "interval", "always" };

int
ep_audit_sync_parse (const char *text, ep_audit_sync_t *sync)
{
    for (size_t i = 0; text && i < EP_COUNT (s_sync_names); i++)
        if (streq (text, s_sync_names [i])) {
            *sync = (ep_audit_sync_t) i;
            return 0;
        }
    return -1;
}

const char *
ep_audit_sync_name (ep_audit_sync_t sync)
{
    EP_ASSERT ((size_t) sync < EP_COUNT (s_sync_names));
    return s_sync_names [sync];
}

static int
s_fail (ep_audit_t *self, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static int
s_fail (ep_audit_t *self, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (self->error, sizeof self->error, format, args);
    va_end (args);
    self->errors++;
    return -1;
}

//  Makes a rename or a creation in the log's directory durable. Best
//  effort: a failure here loses at most the name, never written lines.
static void
s_sync_dir (ep_audit_t *self)
{
    char *dir = strdup (self->path);
    char *slash = strrchr (dir, '/');
    if (slash)
        *(slash == dir? slash + 1: slash) = 0;
    int fd = open (slash? dir: ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        if (fsync (fd) != 0)
            s_fail (self, "audit log %s: fsync of its directory failed: %s",
                    self->path, strerror (errno));
        close (fd);
    }
    free (dir);
}

static int
s_sync (ep_audit_t *self)
{
    if (!self->dirty)
        return 0;
    if (self->regular) {
        if (fdatasync (self->fd) != 0)
            return s_fail (self, "audit log %s: fdatasync failed: %s; lines since the "
                           "last sync may not survive a power failure",
                           self->path, strerror (errno));
        self->syncs++;
    }
    self->dirty = false;
    return 0;
}

static int
s_open (ep_audit_t *self)
{
    //  O_EXCL first, to know whether the name is new and needs its directory synced.
    bool created = true;
    int fd = open (self->path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0 && errno == EEXIST) {
        created = false;
        fd = open (self->path, O_WRONLY | O_APPEND | O_CLOEXEC);
    }
    struct stat st;
    if (fd < 0 || fstat (fd, &st) != 0) {
        int error = errno;
        if (fd >= 0)
            close (fd);
        return s_fail (self, "audit log %s: cannot open it for appending: %s; make sure its "
                       "directory exists and is writable by this user, or choose another path",
                       self->path, strerror (error));
    }
    self->fd = fd;
    self->regular = S_ISREG (st.st_mode);
    self->size = self->regular? (int64_t) st.st_size: 0;
    self->torn = false;
    if (created && self->sync != EP_AUDIT_SYNC_NEVER)
        s_sync_dir (self);
    return 0;
}

ep_audit_t *
ep_audit_new (const char *path, int64_t max_bytes, int backups,
              ep_audit_sync_t sync, char *err, size_t errlen)
{
    EP_ASSERT (path && max_bytes >= 0 && backups >= 0);
    EP_ASSERT ((size_t) sync < EP_COUNT (s_sync_names));
    ep_audit_t *self = (ep_audit_t *) zmalloc (sizeof (ep_audit_t));
    self->path = strdup (path);
    self->max_bytes = max_bytes;
    self->backups = backups;
    self->sync = sync;
    self->interval_ms = EP_AUDIT_SYNC_INTERVAL_MS;
    self->fd = -1;
    if (s_open (self) != 0) {
        ep_errorf (err, errlen, "%s", self->error);
        ep_audit_destroy (&self);
    }
    return self;
}

void
ep_audit_destroy (ep_audit_t **self_p)
{
    ep_audit_t *self = *self_p;
    if (self) {
        if (self->fd >= 0) {
            s_sync (self);
            close (self->fd);
        }
        free (self->path);
        free (self);
        *self_p = NULL;
    }
}

//  path -> path.1 -> ... -> path.N (which is overwritten), then the caller
//  reopens path. With no backups, truncates instead.
static int
s_rotate (ep_audit_t *self)
{
    //  The file about to become a backup is made as durable as the policy
    //  promises its lines; a failure is counted and rotation goes on.
    if (self->sync != EP_AUDIT_SYNC_NEVER)
        s_sync (self);
    if (self->backups == 0) {
        if (ftruncate (self->fd, 0) != 0)
            return s_fail (self, "audit log %s: cannot truncate it to rotate: %s; the line "
                           "was appended beyond the size limit", self->path, strerror (errno));
        self->size = 0;
        self->torn = false;
        return 0;
    }
    int rc = 0;
    for (int i = self->backups; i >= 1 && rc == 0; i--) {
        char *from = i > 1? zsys_sprintf ("%s.%d", self->path, i - 1): strdup (self->path);
        char *to = zsys_sprintf ("%s.%d", self->path, i);
        //  A missing file is a gap in the chain (or a live file someone
        //  removed): nothing to keep.
        if (rename (from, to) != 0 && errno != ENOENT)
            rc = s_fail (self, "audit log %s: cannot rename %s to %s to rotate: %s; check "
                         "the directory's permissions; the line was appended beyond the "
                         "size limit", self->path, from, to, strerror (errno));
        free (from);
        free (to);
    }
    if (rc == 0) {
        close (self->fd);
        self->fd = -1;
        self->dirty = false;
        if (self->sync != EP_AUDIT_SYNC_NEVER)
            s_sync_dir (self);
    }
    return rc;
}

//  A full or failing disk: the bus reports it (ep_degraded) and waits it out.
static ep_store_fault_t
s_fault_of (int error)
{
    if (error == ENOSPC || error == EDQUOT)
        return EP_STORE_FAULT_FULL;
    if (error == EIO || error == EROFS)
        return EP_STORE_FAULT_FAILING;
    return EP_STORE_FAULT_OTHER;
}

static int s_append (ep_audit_t *self, char *text);

//  A line was not written: counted, for the gap marker and the metrics.
static int
s_missed (ep_audit_t *self)
{
    if (!self->missed++)
        self->missed_since_ms = ep_wall_ms ();
    self->skipped++;
    return -1;
}

//  After lines were missed, the line that says how many, ahead of the
//  next one that is written: a reader sees the gap where it was.
static int
s_write_gap (ep_audit_t *self)
{
    json_t *marker = json_pack ("{s:{s:I, s:I, s:I, s:s}}", "audit_gap",
        "events_not_audited", (json_int_t) self->missed,
        "since_ms", (json_int_t) self->missed_since_ms,
        "until_ms", (json_int_t) ep_wall_ms (), "reason", ep_store_fault_name (self->fault));
    char *text = json_dumps (marker, JSON_COMPACT);
    json_decref (marker);
    EP_ASSERT (text);
    int rc = s_append (self, text);
    if (rc != -2)
        self->missed = 0;
    return rc == -2? -1: 0;
}

int
ep_audit_write (ep_audit_t *self, json_t *record)
{
    char *text = json_dumps (record, JSON_COMPACT);
    if (!text)
        return s_fail (self, "audit log %s: a record could not be rendered as JSON "
                       "(not an object or array, or out of memory); it was dropped", self->path);
    if (self->missed && s_write_gap (self) != 0) {
        free (text);
        return s_missed (self);
    }
    int rc = s_append (self, text);
    return rc == -2? s_missed (self): rc;
}

int
ep_audit_probe (ep_audit_t *self)
{
    return self->missed? s_write_gap (self): 0;
}

//  Appends text (taken over) as one line: 0, -1 if it was written but a
//  rotation or sync failed, -2 if it was not written.
static int
s_append (ep_audit_t *self, char *text)
{
    //  One buffer, so the line goes out in one write(2).
    size_t size = strlen (text);
    char *line = (char *) malloc (size + 2);
    size_t len = 0;
    if (self->torn)
        line [len++] = '\n';
    memcpy (line + len, text, size);
    len += size;
    line [len++] = '\n';
    free (text);

    int rc = 0;
    if (self->fd >= 0 && self->regular && self->max_bytes > 0 && self->size > 0
    &&  self->size + (int64_t) len > self->max_bytes)
        rc = s_rotate (self);
    if (self->fd < 0 && s_open (self) != 0) {
        free (line);
        self->fault = s_fault_of (errno);
        return -2;
    }
    ssize_t written;
    do
        written = write (self->fd, line, len);
    while (written < 0 && errno == EINTR);
    free (line);
    if (written == (ssize_t) len) {
        self->fault = EP_STORE_FAULT_NONE;
        self->size += written;
        self->torn = false;
        self->lines++;
        self->dirty = true;
        if (self->sync == EP_AUDIT_SYNC_ALWAYS && s_sync (self) != 0)
            rc = -1;
        return rc;
    }
    int error = written < 0? errno: ENOSPC;
    //  A partial line is cut off again, so that every line stays one record.
    if (written > 0 && !(self->regular && ftruncate (self->fd, self->size) == 0)) {
        self->size += written;
        self->torn = true;
    }
    self->fault = s_fault_of (error);
    s_fail (self, "audit log %s: a line was not written: %s; free space on its "
            "filesystem or check the file's permissions; events are still forwarded, and "
            "auditing resumes by itself", self->path, strerror (error));
    return -2;
}

int64_t
ep_audit_tick (ep_audit_t *self, int64_t now_ms)
{
    if (self->sync != EP_AUDIT_SYNC_INTERVAL || !self->dirty)
        return -1;
    if (self->synced_once && now_ms - self->last_sync_ms < self->interval_ms)
        return self->last_sync_ms + self->interval_ms - now_ms;
    //  On failure the lines stay dirty and the next interval tries again.
    s_sync (self);
    self->synced_once = true;
    self->last_sync_ms = now_ms;
    return self->dirty? self->interval_ms: -1;
}

void
ep_audit_set_interval (ep_audit_t *self, int64_t interval_ms)
{
    EP_ASSERT (interval_ms >= 0);
    self->interval_ms = interval_ms;
}

uint64_t
ep_audit_lines (ep_audit_t *self)
{
    return self->lines;
}

uint64_t
ep_audit_errors (ep_audit_t *self)
{
    return self->errors;
}

uint64_t
ep_audit_syncs (ep_audit_t *self)
{
    return self->syncs;
}

const char *
ep_audit_error (ep_audit_t *self)
{
    return self->error;
}

uint64_t
ep_audit_skipped (ep_audit_t *self)
{
    return self->skipped;
}

ep_store_fault_t
ep_audit_fault (ep_audit_t *self)
{
    return self->fault;
}

const char *
ep_audit_path (ep_audit_t *self)
{
    return self->path;
}
