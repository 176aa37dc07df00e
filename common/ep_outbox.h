/*  ep_outbox.h: a bounded durable outbox in a file of its own, for a
    process that has no database to put one in (the watchdog).

    An event is decided once it is appended and synced (ep_outbox_sync):
    from then on it is sent at least once, across restarts, with the same
    sequence number (its event id is "<owner>:<seq>"). Records stay until
    the caller acknowledges each (ep_outbox_ack: the event came back to the
    publisher's own subscriber through the bus), then the file is cut down.
    Not a heartbeat's seq: a PUB socket drops what it sends on a pipe the
    bus's subscription has not reached yet (a bus restarting), so a later
    message passing proves nothing about an earlier one.

    The file is append-only: a 16-byte header (magic, and the first
    sequence number the file may hold, so numbers are never reused after
    the file is emptied), then one record per event:

        u32 length of the payload   u32 CRC-32 of seq and payload
        u64 seq                     payload: topic, NUL, packed ep.Event

    all little-endian. At open a record that is short or fails its CRC
    ends the file, and it and anything after it are cut off: only the last
    append can be torn (a crash mid-write), and an event whose append did
    not complete was never synced, so it was never acknowledged to anyone
    nor published (the caller publishes after ep_outbox_sync).

    One process at a time: the file is locked (flock) while open, and
    stays locked across the rewrites that cut it down (the new file is
    locked before it is renamed over the old). The kernel drops the lock
    when its holder dies, so an outbox whose lock is free belongs to no
    one: another process may adopt it (ep_outbox_adopt), send what it
    holds under the dead owner's ids, and remove it once all is
    acknowledged (ep_outbox_remove).

    Bounded in events and bytes: a full outbox refuses appends (the caller
    reports it and refuses new work); it never drops a record. Records are
    also kept in memory (they are bounded), so resending reads no file.
    The codec (ep_outbox_encode, ep_outbox_scan) is pure and unit-tested.
*/
#ifndef EP_OUTBOX_H_INCLUDED
#define EP_OUTBOX_H_INCLUDED

#include "ep_prelude.h"

typedef struct _ep_outbox_t ep_outbox_t;

#define EP_OUTBOX_HEADER    16          //  bytes before the first record
#define EP_OUTBOX_OVERHEAD  16          //  bytes of a record besides its payload

//  One record, as scanned or handed out (pointers into the outbox's copy).
typedef struct {
    uint64_t seq;               //  durable sequence number
    const char *topic;          //  its topic
    const uint8_t *body;        //  packed ep.Event
    size_t size;                //  bytes in body
} ep_outbox_record_t;

//  Opens (or creates) the outbox at path and locks it, holding at most
//  max_events records and max_bytes bytes of records. Records left by a
//  previous run are kept, a torn tail cut off (counted in ep_outbox_torn).
//  NULL with the reason in err if the file cannot be read, written or is
//  not an outbox, or (errno EWOULDBLOCK) another process holds it.
ep_outbox_t *
    ep_outbox_open (const char *path, size_t max_events, size_t max_bytes,
                    char *err, size_t errlen);

//  Takes over the outbox at path if no process holds it (its owner
//  died): like ep_outbox_open, unbounded (it is only drained), but never
//  creates it. NULL with errno EWOULDBLOCK (held: its owner lives, or
//  another process adopted it), ENOENT (gone), or another errno and the
//  reason in err.
ep_outbox_t *
    ep_outbox_adopt (const char *path, char *err, size_t errlen);

//  Removes the outbox's file (an adopted outbox, drained) and destroys
//  the object. 0, or -1 with the reason in err (destroyed all the same).
int
    ep_outbox_remove (ep_outbox_t **self_p, char *err, size_t errlen);

//  The file's path.
const char *
    ep_outbox_path (ep_outbox_t *self);

void
    ep_outbox_destroy (ep_outbox_t **self_p);

//  Appends a record of topic and body (not synced yet). Returns its seq
//  (> 0), 0 when the outbox is full (nothing written), or -1 on a write
//  error, with the reason in err.
int64_t
    ep_outbox_append (ep_outbox_t *self, const char *topic, const void *body, size_t size,
                      char *err, size_t errlen);

//  Makes every append durable (one fsync for all of them). 0, or -1 with
//  the reason in err.
int
    ep_outbox_sync (ep_outbox_t *self, char *err, size_t errlen);

//  The next synced record not handed out yet, or false. The record stays
//  valid until it is acknowledged.
bool
    ep_outbox_next (ep_outbox_t *self, ep_outbox_record_t *record);

//  Hands out every unacknowledged record again (the bus lost some).
void
    ep_outbox_rewind (ep_outbox_t *self);

//  The record seq (handed out) was delivered: once every record before it
//  is too, they are forgotten and the file is cut down (emptied when
//  nothing is left, rewritten when the delivered part is most of it; else
//  the header's base moves). An unknown seq is ignored. 0, or -1 with the
//  reason in err.
int
    ep_outbox_ack (ep_outbox_t *self, uint64_t seq, char *err, size_t errlen);

//  Records held (not acknowledged), and their bytes.
size_t
    ep_outbox_count (ep_outbox_t *self);
size_t
    ep_outbox_bytes (ep_outbox_t *self);

//  True if the next append of size bytes would be refused.
bool
    ep_outbox_full (ep_outbox_t *self, size_t size);

//  Records handed out since the oldest unacknowledged one (a rewind
//  hands them out again).
size_t
    ep_outbox_in_flight (ep_outbox_t *self);

//  Bytes cut off a torn tail at open.
size_t
    ep_outbox_torn (ep_outbox_t *self);

//  Pure: writes the record of (seq, topic, body) into out (room for
//  EP_OUTBOX_OVERHEAD + strlen (topic) + 1 + size bytes); returns its size.
size_t
    ep_outbox_encode (uint8_t *out, uint64_t seq, const char *topic, const void *body, size_t size);

//  Pure: calls fn (arg, record) for every whole, valid record of data
//  (after the header) in order; returns the bytes they take: a record
//  that is short, fails its CRC, has no topic or goes back in seq ends
//  the scan (a torn tail).
typedef void (ep_outbox_scan_fn) (void *arg, const ep_outbox_record_t *record);
size_t
    ep_outbox_scan (const uint8_t *data, size_t size, ep_outbox_scan_fn *fn, void *arg);

#endif
