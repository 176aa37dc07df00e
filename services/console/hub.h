/*  hub.h: the console's server-sent event streams, without sockets.

    Every event the console takes from the bus gets the next id of this
    console, "<epoch>-<seq>" (the epoch: 16 hex digits drawn at start, so a
    restarted console never reuses an id), goes into a ring of recent events
    (bounded in events and bytes) and into the queue of every open stream
    whose matcher takes it. A queue is bounded in bytes: a stream that
    reaches its bound is dropped (its queue freed, one "dropped" event
    left for it) and the others never wait for it. Last-Event-ID resumes
    from the ring; a resume the ring cannot serve (too old, or another
    epoch) first gets a "missed" event saying how many events and since
    when. An idle stream gets a comment line every keepalive period.

    Two threads use a hub: the bus side publishes and ticks, the HTTP side
    opens, reads and closes streams; a mutex inside makes that safe. The
    HTTP side gives each stream a handle; the hub calls sleep (handle) when
    a read finds the queue empty and wake (handle) when data arrives for a
    sleeping stream, both with its lock held, so a wake never precedes its
    sleep. No sockets, no clocks: times come in as arguments.
*/
#ifndef HUB_H_INCLUDED
#define HUB_H_INCLUDED

#include "ep_prelude.h"
#include "ep_evmatch.h"
#include <jansson.h>

typedef struct _hub_t hub_t;
typedef struct _hub_stream_t hub_stream_t;

//  Called with the hub's lock held: must not call back into the hub.
typedef void (hub_handle_fn) (void *arg, void *handle);

typedef struct {
    uint64_t epoch;             //  this console's epoch (nonzero)
    size_t ring_events;         //  events the ring holds at most
    size_t ring_bytes;          //  bytes of event JSON the ring holds at most
    size_t stream_bytes;        //  bytes a stream's queue holds at most
    int64_t keepalive_ms;       //  a comment line after this much silence
    int64_t started_wall_ms;    //  when this epoch began (for "missed")
} hub_config_t;

//  What hub_read found.
typedef enum {
    HUB_DATA,                   //  bytes copied
    HUB_EMPTY,                  //  nothing now: the stream sleeps until woken
    HUB_END                     //  dropped or shut down, and all sent: end the stream
} hub_read_t;

//  Sets the defaults (ring 10,000 events / 16 MiB, 1 MiB per stream, 15 s).
void
    hub_config_defaults (hub_config_t *config);

hub_t *
    hub_new (const hub_config_t *config, hub_handle_fn *sleep, hub_handle_fn *wake, void *arg);

void
    hub_destroy (hub_t **self_p);

//  Takes one event (borrowed, as ep_event_json made it) published at
//  wall_ms, taken at now (the tick clock): gives it the next id, keeps it
//  in the ring and queues it on every stream that matches. Returns the
//  id's sequence number.
uint64_t
    hub_publish (hub_t *self, json_t *event, int64_t wall_ms, int64_t now);

//  Queues a comment on every stream silent for the keepalive period.
//  Returns when the next one is due (same clock as now).
int64_t
    hub_tick (hub_t *self, int64_t now);

//  Opens a stream for handle with matcher match (taken over; NULL: all)
//  and the client's Last-Event-ID (NULL if none). The replay it asks for,
//  or a "missed" event first, is queued at once.
hub_stream_t *
    hub_open (hub_t *self, ep_evmatch_t *match, const char *last_event_id, void *handle, int64_t now);

//  Copies up to max bytes of stream's queue into buffer; *copied says how
//  many. On HUB_EMPTY the stream is asleep (sleep (handle) was called).
hub_read_t
    hub_read (hub_t *self, hub_stream_t *stream, char *buffer, size_t max, size_t *copied);

//  Forgets stream (its connection ended) and nulls *stream_p.
void
    hub_close (hub_t *self, hub_stream_t **stream_p);

//  Ends every stream once its queue is sent (and wakes the sleeping ones):
//  before the HTTP server stops.
void
    hub_shutdown (hub_t *self);

//  Parses a Last-Event-ID, "<16 hex>-<decimal>". Returns 0 or -1.
int
    hub_parse_id (const char *text, uint64_t *epoch, uint64_t *seq);

//  Counters, for /metrics and tests.
size_t
    hub_streams (hub_t *self);
uint64_t
    hub_dropped (hub_t *self);
uint64_t
    hub_seq (hub_t *self);
uint64_t
    hub_epoch (hub_t *self);

#endif
