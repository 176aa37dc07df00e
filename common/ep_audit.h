/*  ep_audit.h: the audit log, an append-only file of JSON lines.

    The bus (with its audit flag on) writes every event it forwards as one
    line, the canonical rendering of ep_event_json. Each line goes out in a
    single write(2) on an O_APPEND descriptor, so a reader tailing the file
    never sees two records interleaved. The file rotates by size: before a
    line that would take it past max_bytes, path.(N-1) becomes path.N ...
    path becomes path.1 and a fresh path is started; what was in path.N is
    gone. With no backups the file is truncated and starts again.

    How much a power failure can lose depends on the sync policy (see
    docs/audit.md): NEVER leaves writeback to the kernel (up to roughly
    35 s of lines with Linux's defaults); INTERVAL fdatasyncs from the caller's loop at most once
    per interval (lines since the last sync: about one interval plus the
    loop's tick delay); ALWAYS fdatasyncs after every line (nothing that
    ep_audit_write reported written, at the cost of one disk flush per line).
    A process crash loses nothing under any policy: written lines are in
    the kernel.

    Failures (disk full, permissions, a vanished directory) never stop the
    process: the call returns -1, the failure is counted, ep_audit_error ()
    says what happened, and the caller logs it. One writer per file; not
    thread-safe.
*/
#ifndef EP_AUDIT_H_INCLUDED
#define EP_AUDIT_H_INCLUDED

#include "ep_prelude.h"
#include "ep_store.h"
#include <jansson.h>

typedef struct _ep_audit_t ep_audit_t;

//  When written lines are forced to the disk.
typedef enum {
    EP_AUDIT_SYNC_NEVER,        //  never: the kernel writes back when it likes
    EP_AUDIT_SYNC_INTERVAL,     //  at most once per interval, from ep_audit_tick
    EP_AUDIT_SYNC_ALWAYS        //  after every line
} ep_audit_sync_t;

//  The default interval of EP_AUDIT_SYNC_INTERVAL.
#define EP_AUDIT_SYNC_INTERVAL_MS 1000

//  Parses "never", "interval" or "always" into *sync. Returns 0, or -1 for
//  anything else.
int
    ep_audit_sync_parse (const char *text, ep_audit_sync_t *sync);

//  The name of a sync policy, as ep_audit_sync_parse accepts it.
const char *
    ep_audit_sync_name (ep_audit_sync_t sync);

//  Opens (creating it with mode 0640, or appending to it) the audit log at
//  path. max_bytes 0 means never rotate; backups is how many rotated files
//  to keep. Returns NULL with a message naming the path and what to do in
//  err (errlen bytes) if the file cannot be opened for appending.
ep_audit_t *
    ep_audit_new (const char *path, int64_t max_bytes, int backups,
                  ep_audit_sync_t sync, char *err, size_t errlen);

//  Syncs what is not yet on disk, closes the file, nulls *self_p.
void
    ep_audit_destroy (ep_audit_t **self_p);

//  Appends record (an object or array) as one compact JSON line, rotating
//  first if the line would take the file past max_bytes. Returns 0, or -1
//  when the line could not be written or the rotation failed (the line is
//  then still appended to the live file; ep_audit_error says which).
int
    ep_audit_write (ep_audit_t *self, json_t *record);

//  For EP_AUDIT_SYNC_INTERVAL: fdatasyncs if lines were written since the
//  last sync and the interval has passed. now_ms is on the monotonic clock
//  (ep_mono_ms). Returns the ms until a sync will be due, for the caller's
//  poll timeout, or -1 when none is pending (or under the other policies).
int64_t
    ep_audit_tick (ep_audit_t *self, int64_t now_ms);

//  Changes the interval of EP_AUDIT_SYNC_INTERVAL (default 1000 ms).
void
    ep_audit_set_interval (ep_audit_t *self, int64_t interval_ms);

//  Lines this writer has appended since it was opened.
uint64_t
    ep_audit_lines (ep_audit_t *self);

//  Failures so far: lines not written, rotations and syncs that failed.
uint64_t
    ep_audit_errors (ep_audit_t *self);

//  fdatasyncs of the log performed so far.
uint64_t
    ep_audit_syncs (ep_audit_t *self);

//  Lines not written (a full or failing disk, permissions), in all: what
//  the audit log lacks. After such a gap, the next line written is preceded
//  by a marker line {"audit_gap":{"events_not_audited":N,"since_ms":..,
//  "until_ms":..,"reason":"disk_full"}} saying how many are missing there.
uint64_t
    ep_audit_skipped (ep_audit_t *self);

//  The kind of the last write failure: FULL (ENOSPC, EDQUOT), FAILING
//  (EIO, EROFS), OTHER (permissions, a vanished directory), NONE once a
//  line is written again.
ep_store_fault_t
    ep_audit_fault (ep_audit_t *self);

//  While lines are missing, tries to write the gap marker (a small line, to
//  learn whether the disk takes writes again when no event comes): 0 when
//  none is missing any more, -1 while it cannot be written.
int
    ep_audit_probe (ep_audit_t *self);

//  The live file's path.
const char *
    ep_audit_path (ep_audit_t *self);

//  What the last failure was, for the caller's log; "" if none.
const char *
    ep_audit_error (ep_audit_t *self);

#endif
