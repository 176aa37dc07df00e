/*  ep_tracker.h: stream continuity, as a pure state machine.

    Every published message carries (source_id, epoch, stream, seq); each
    publisher also sends a heartbeat per stream about every second carrying
    its last seq. The tracker is fed what a subscriber received and reports
    what it can prove: gaps (with the exact missing range), duplicates,
    publisher restarts and publishers gone silent. It reads no sockets and no
    clocks: times come in as arguments, reports go out through a callback.

    Only streams the subscriber takes whole can have gaps: a subscription to
    "connect.router-to-ctrl" sees a subset of the connect stream, so its seq
    jumps are not losses. A stream is whole when some subscribed prefix is a
    prefix of "<stream>." (e.g. "", "conn", "connect.").

    Several buses: a subscriber of every bus gets each message once per
    bus, each bus in order but the buses in any order, and a bus that dies
    loses what it held. So a whole stream keeps a window of the 64 seqs
    above the last one accounted for: a copy is dropped and counted
    (ep_tracker_duplicates), never reported; a message above a hole is
    delivered at once and the hole's fill too when it comes; a hole (or
    a tail a heartbeat announced) is a gap only once it has waited the
    reorder delay (ep_tracker_tick reports it) or 64 later seqs arrived.
*/
#ifndef EP_TRACKER_H_INCLUDED
#define EP_TRACKER_H_INCLUDED

#include "ep_prelude.h"

//  How long a hole waits for its fill from another bus by default.
#define EP_TRACKER_REORDER_MS 200

typedef enum {
    EP_STREAM_GAP = 1,          //  messages from..to were lost
    EP_STREAM_DUPLICATE,        //  not reported any more: copies are counted (ep_tracker_duplicates)
    EP_STREAM_RESTART,          //  the source started a new epoch
    EP_STREAM_SILENT,           //  nothing from the source for silent_after_ms
    EP_STREAM_RESUMED           //  a silent source was heard again
} ep_stream_event_t;

typedef struct {
    ep_stream_event_t kind;     //  what happened
    const char *source_id;      //  the publisher
    const char *stream;         //  its stream (namespace)
    uint64_t epoch;             //  the epoch concerned (the new one on RESTART)
    uint64_t from;              //  GAP: first lost seq; DUPLICATE: the seq
    uint64_t to;                //  GAP: last lost seq (inclusive)
    bool via_heartbeat;         //  GAP: proven by a heartbeat, not a message
} ep_stream_report_t;

typedef void (ep_tracker_report_fn) (void *arg, const ep_stream_report_t *report);

typedef struct _ep_tracker_t ep_tracker_t;

//  A tracker for a subscriber that subscribed at wall-clock time
//  subscribed_wall_ms; sources silent for silent_after_ms are reported.
ep_tracker_t *
    ep_tracker_new (int64_t subscribed_wall_ms, int64_t silent_after_ms,
                    ep_tracker_report_fn *report, void *arg);

void
    ep_tracker_destroy (ep_tracker_t **self_p);

//  Records a subscribed topic prefix.
void
    ep_tracker_subscribe (ep_tracker_t *self, const char *prefix);

//  Forgets a subscribed topic prefix (one occurrence).
void
    ep_tracker_unsubscribe (ep_tracker_t *self, const char *prefix);

//  True if the subscriber takes stream whole (so seq jumps are losses).
bool
    ep_tracker_whole (ep_tracker_t *self, const char *stream);

//  Feeds one received message (heartbeat true for a stream heartbeat, whose
//  seq is the publisher's last seq). Returns true if the message is new and
//  should be delivered, false for a duplicate or a stale epoch.
bool
    ep_tracker_observe (ep_tracker_t *self, const char *source_id, const char *stream,
                        uint64_t epoch, int64_t epoch_started_ms, uint64_t seq,
                        bool heartbeat, int64_t now_ms);

//  Reports holes older than the reorder delay as gaps, and sources silent
//  since now_ms - silent_after_ms. Returns the number of sources silent.
size_t
    ep_tracker_tick (ep_tracker_t *self, int64_t now_ms);

//  True once a message or heartbeat of stream (any stream when NULL) has
//  been observed.
bool
    ep_tracker_seen (ep_tracker_t *self, const char *stream);

//  Total messages proven lost so far (sum of gap sizes).
uint64_t
    ep_tracker_lost (ep_tracker_t *self);

//  Copies dropped so far (a message seen before, by another bus).
uint64_t
    ep_tracker_duplicates (ep_tracker_t *self);

//  How long a hole waits for its fill before it is a gap (default
//  EP_TRACKER_REORDER_MS).
void
    ep_tracker_set_reorder (ep_tracker_t *self, int64_t reorder_ms);

#endif
