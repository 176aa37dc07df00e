/*  ep_subscriber.h: the receiving side of event streams.

    A SUB socket on the bus's XPUB side, a tracker (ep_tracker.h) that turns
    what arrives into gap, duplicate, restart and silence reports, and a
    decoder that length-checks before unpacking. Heartbeats are consumed
    here; the caller sees events and reports. An event whose
    StreamMeta.event_id was delivered already (an outbox resent it) is
    dropped here too (ep_dedupe.h), so every consumer on ep_subscriber
    sees each event id once.

    Events are lent, not given: the subscriber decodes each into an arena
    (ep_arena.h) and frees it at the caller's next recv, read or
    wait_stream, or at destroy. Callers never free an event; one that keeps
    an event, or part of one, beyond that copies it (ep_codec_copy).
*/
#ifndef EP_SUBSCRIBER_H_INCLUDED
#define EP_SUBSCRIBER_H_INCLUDED

#include "ep_prelude.h"
#include "ep_tracker.h"
#include "ep_metrics.h"
#include "ep_config.h"
#include "events.pb-c.h"

typedef struct _ep_subscriber_t ep_subscriber_t;

//  A subscriber connected to endpoint (the bus's XPUB side; a comma-separated
//  list: every bus, the tracker drops the copies); with cert and
//  server_key a CURVE client. Reports go to report(arg, ...) (may be NULL).
//  Returns NULL if endpoint is invalid.
ep_subscriber_t *
    ep_subscriber_new (const char *endpoint, zcert_t *cert, const char *server_key,
                       size_t cap, ep_tracker_report_fn *report, void *arg);

void
    ep_subscriber_destroy (ep_subscriber_t **self_p);

//  Subscribes to topics starting with prefix ("" = everything). A prefix
//  that names part of a stream also takes the stream's heartbeats.
void
    ep_subscriber_subscribe (ep_subscriber_t *self, const char *prefix);

//  Stops taking topics starting with prefix (as subscribed before).
void
    ep_subscriber_unsubscribe (ep_subscriber_t *self, const char *prefix);

//  Waits up to timeout_ms for the first message or heartbeat of stream (of
//  any stream when NULL), so
//  the caller knows its subscription has reached the publishers. Events
//  that arrive meanwhile are kept for ep_subscriber_recv. Returns 0 or -1.
//  Frees the event recv or read returned last.
int
    ep_subscriber_wait_stream (ep_subscriber_t *self, const char *stream, int timeout_ms);

//  The next event (not a heartbeat), waiting up to timeout_ms (-1 forever).
//  Returns NULL on timeout or interrupt. *topic_p receives the topic (caller
//  frees) if topic_p is not NULL. The event belongs to the subscriber: it
//  stays valid until the next recv, read or wait_stream on this
//  subscriber, or its destroy. Do not free it.
Ep__Event *
    ep_subscriber_recv (ep_subscriber_t *self, int timeout_ms, char **topic_p);

//  Runs the silence check now (recv does it too).
void
    ep_subscriber_tick (ep_subscriber_t *self);

//  The underlying socket, for a caller's poller.
zsock_t *
    ep_subscriber_socket (ep_subscriber_t *self);

//  Handles one message that is waiting on the socket; returns the event if
//  it is one to deliver, NULL otherwise (heartbeat, duplicate, undecodable).
//  For callers that poll the socket themselves. The event is lent as by
//  ep_subscriber_recv, and the one returned before is freed.
Ep__Event *
    ep_subscriber_read (ep_subscriber_t *self, char **topic_p);

ep_tracker_t *
    ep_subscriber_tracker (ep_subscriber_t *self);

//  Events dropped because their event id was seen already (an outbox's
//  resend: ep_dedupe.h).
uint64_t
    ep_subscriber_resent (ep_subscriber_t *self);

//  Turns the dropping of resent event ids off (on by default). For a
//  consumer that checks each stream's seqs itself: a resend carries a seq
//  of its own, and dropping it would leave a hole the tracker never saw.
void
    ep_subscriber_set_dedupe (ep_subscriber_t *self, bool on);

//  Sizes the window of event ids resends are dropped by (ep_dedupe.h;
//  EP_DEDUPE_WINDOW until set): window ids (> 0) from now on, the newest
//  held kept. Services take it from --dedupe-window.
void
    ep_subscriber_set_dedupe_window (ep_subscriber_t *self, size_t window);

//  The option a service with bus subscribers declares to size their
//  windows (docs/config.md): --dedupe-window (EDGEPLANE_DEDUPE_WINDOW,
//  default EP_DEDUPE_WINDOW) into *window. For an ep_opt_t table:
//  { ..., ep_subscriber_window_opt (&window), ... }.
ep_opt_t
    ep_subscriber_window_opt (int64_t *window);

//  Exports the window in metrics, each series labelled subscriber=name
//  (one name per subscriber of the service): edgeplane_dedupe_ids (ids
//  held), edgeplane_dedupe_capacity (the most it holds) and
//  edgeplane_dedupe_resent_total (events dropped as resends).
void
    ep_subscriber_set_metrics (ep_subscriber_t *self, ep_metrics_t *metrics, const char *name);

//  Messages dropped because they could not be decoded.
uint64_t
    ep_subscriber_malformed (ep_subscriber_t *self);

#endif
