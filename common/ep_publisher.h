/*  ep_publisher.h: the publishing side of an event stream.

    Wraps a PUB socket connected to the bus. Every message is an ep.Event
    sent as [topic][Event]; the publisher stamps its StreamMeta (source_id,
    epoch, stream = the topic up to its first '.', seq +1 per stream,
    timestamps) and sends "<stream>.heartbeat" about every second per stream
    with the last seq, so subscribers notice a loss at the end of a stream and
    a publisher that went quiet. Messages above the cap are refused and
    counted, never sent.
*/
#ifndef EP_PUBLISHER_H_INCLUDED
#define EP_PUBLISHER_H_INCLUDED

#include "ep_prelude.h"
#include "events.pb-c.h"

typedef struct _ep_publisher_t ep_publisher_t;

//  How often heartbeats go out per stream.
#define EP_HEARTBEAT_MS 1000

//  A publisher named source_id ("<service>-<instance>") connected to the
//  bus at endpoint (its XSUB side; a comma-separated list: every bus, each
//  event sent to all). With cert and server_key set the socket
//  is a CURVE client. Returns NULL if endpoint is invalid.
ep_publisher_t *
    ep_publisher_new (const char *endpoint, zcert_t *cert, const char *server_key,
                      const char *source_id, size_t cap);

void
    ep_publisher_destroy (ep_publisher_t **self_p);

//  Starts heartbeats for stream before its first message, so subscribers
//  can see the stream is live (followers wait for the first heartbeat).
void
    ep_publisher_declare (ep_publisher_t *self, const char *stream);

//  Stamps and sends event on topic ("<stream>.<type>..."). Returns 0, or -1
//  when the topic is invalid or the packed event exceeds the cap (counted
//  in ep_publisher_refused; the seq is not consumed).
int
    ep_publisher_send (ep_publisher_t *self, const char *topic, Ep__Event *event);

//  As ep_publisher_send, with StreamMeta.event_id set to event_id (an
//  outbox's stable id of the event, the same on every resend; NULL: none).
int
    ep_publisher_send_id (ep_publisher_t *self, const char *topic, Ep__Event *event,
                          const char *event_id);

//  Sends heartbeats that are due. Returns the ms until the next one is due,
//  for the caller's poll timeout.
int64_t
    ep_publisher_tick (ep_publisher_t *self);

//  Messages sent on stream so far (its last seq).
uint64_t
    ep_publisher_seq (ep_publisher_t *self, const char *stream);

//  Messages refused for exceeding the cap.
uint64_t
    ep_publisher_refused (ep_publisher_t *self);

//  This process's epoch (random per publisher).
uint64_t
    ep_publisher_epoch (ep_publisher_t *self);

//  Changes the heartbeat interval (tests, benchmarks).
void
    ep_publisher_set_heartbeat (ep_publisher_t *self, int64_t interval_ms);

//  A source id "<service>-<instance>", instance random when NULL or empty.
char *
    ep_source_id (const char *service, const char *instance_id);

//  The stream (namespace) of topic written into buf; -1 if topic has no
//  namespace ("x" or ".x").
int
    ep_topic_stream (const char *topic, char *buf, size_t size);

#endif
