/*  ep_dedupe.h: the one duplicate filter for event ids, a bounded window
    of the ids seen last.

    The outboxes (reaper, watchdog) send every event at least once, with a
    StreamMeta.event_id that is the same on every resend (docs/events.md,
    "Duplicates"). A consumer drops an id it has seen; a resend follows its
    original closely (it is the unacknowledged tail of an outbox, sent
    again after a restart or a bus outage), so a window of the last N ids
    catches it and memory stays bounded. An id older than the window is
    let through again: at-least-once, never zero times. Pure: no sockets,
    no clocks. ep_subscriber uses it; so can any other consumer.
*/
#ifndef EP_DEDUPE_H_INCLUDED
#define EP_DEDUPE_H_INCLUDED

#include "ep_prelude.h"

typedef struct _ep_dedupe_t ep_dedupe_t;

//  The window a subscriber keeps by default: ids, not bytes. Each id
//  held costs about 120 bytes (its copy, a hash item, a ring slot:
//  measured with mallinfo2), so a full default window is about 7.5 MiB;
//  it fills at the rate events with ids arrive (55 minutes at 20 a
//  second) and then stays that size.
//  Services take another size from --dedupe-window (EDGEPLANE_DEDUPE_WINDOW).
#define EP_DEDUPE_WINDOW 65536
#define EP_DEDUPE_WINDOW_TEXT "65536"  //  the same, as an option's default

//  A filter remembering the last window ids (window > 0).
ep_dedupe_t *
    ep_dedupe_new (size_t window);

void
    ep_dedupe_destroy (ep_dedupe_t **self_p);

//  True if id is new (it is remembered, the oldest forgotten when the
//  window is full); false if it is in the window (a duplicate, counted).
bool
    ep_dedupe_fresh (ep_dedupe_t *self, const char *id);

//  Ids remembered now: at most ep_dedupe_window.
size_t
    ep_dedupe_size (ep_dedupe_t *self);

//  The most ids remembered (the window given at new or resize).
size_t
    ep_dedupe_window (ep_dedupe_t *self);

//  Makes the window hold window ids (> 0) from now on, keeping the newest
//  it holds (as many as fit) and forgetting the others.
void
    ep_dedupe_resize (ep_dedupe_t *self, size_t window);

//  Duplicates found so far.
uint64_t
    ep_dedupe_duplicates (ep_dedupe_t *self);

#endif
