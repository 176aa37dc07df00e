/*  ep_eventlog.h: a log of the events a test's subscriber delivers.

    Suites that assert on what a service published read its events into
    one of these and wait for one that matches (with a deadline), so each
    suite does not write its own collector. An entry keeps the topic and
    the fields the suites test, from whichever body the event carries;
    fields an event does not carry stay empty (0, ""); every field is also
    in the event's JSON (ep_event_json, the one rendering users see), which
    suites read for the rest and validate against docs/events.schema.json.
    Entries stay where they are until the log is destroyed (pointers to
    them stay valid).
*/
#ifndef EP_EVENTLOG_H_INCLUDED
#define EP_EVENTLOG_H_INCLUDED

#include "ep_prelude.h"
#include "ep_subscriber.h"
#include <jansson.h>

//  One event, as the suites test it.
typedef struct {
    char topic [96];            //  the bus topic
    char source [96];           //  its stream meta's source id
    uint64_t seq;               //  its stream meta's seq
    int64_t timestamp;          //  its stream meta's publish time, wall ms
    char reason [512];          //  ChannelEvent, ConnectEvent or TerminatorEvent reason
    char id [65];               //  TerminatorEvent: terminator id
    uint32_t total;             //  TerminatorEvent: the service's terminators
    uint32_t usable_default;    //  TerminatorEvent: usable ones of the default kind
    bool online;                //  TerminatorEvent: router online
    char step [32];             //  StrayEvent: the step it stopped at
    char peer_id [65];          //  StrayEvent: peer id
    char type [32];             //  ConnectEvent: type
    char src_type [16];         //  ConnectEvent: source type
    char src_id [65];           //  ConnectEvent: source id
    char src_addr [64];         //  ConnectEvent: source address
    char dst_type [16];         //  ConnectEvent: destination type
    char dst_id [80];           //  ConnectEvent: destination id
    bool connected;             //  ConnectEvent: joined, or left
    int64_t duration;           //  ConnectEvent: of a closed connection
    int64_t event_time;         //  ConnectEvent: when the router saw it (edge-to-router), 0: none
    json_t *json;               //  the whole event as ep_event_json renders it (the log's)
} ep_logged_t;

//  True if event is the one waited for.
typedef bool (ep_eventlog_match_fn) (const ep_logged_t *event, void *arg);

typedef struct _ep_eventlog_t ep_eventlog_t;

//  A log of the events events delivers (borrowed: the subscriber outlives the log).
ep_eventlog_t *
    ep_eventlog_new (ep_subscriber_t *events);

void
    ep_eventlog_destroy (ep_eventlog_t **self_p);

//  Logs what arrives within timeout_ms, then whatever is already waiting.
void
    ep_eventlog_pump (ep_eventlog_t *self, int timeout_ms);

//  Events logged so far.
size_t
    ep_eventlog_size (ep_eventlog_t *self);

//  Event number index (< size).
const ep_logged_t *
    ep_eventlog_get (ep_eventlog_t *self, size_t index);

//  Waits up to timeout_ms for an event on topic (exactly) at index from or
//  later that match accepts (match NULL: any on topic); returns its index,
//  or -1.
int
    ep_eventlog_await (ep_eventlog_t *self, const char *topic, ep_eventlog_match_fn *match,
                       void *arg, size_t from, int timeout_ms);

//  The same, returning the event or NULL.
const ep_logged_t *
    ep_eventlog_await_event (ep_eventlog_t *self, const char *topic, ep_eventlog_match_fn *match,
                             void *arg, int timeout_ms);

//  Events on topic logged so far.
size_t
    ep_eventlog_count (ep_eventlog_t *self, const char *topic);

//  Events logged so far with StreamMeta.event_id event_id (an outbox's
//  resends count each time).
size_t
    ep_eventlog_count_event_id (ep_eventlog_t *self, const char *event_id);

//  A match for ep_eventlog_await: the event's JSON field "id" is the
//  string arg (entityChange.*, whose id names the entity).
bool
    ep_eventlog_match_id (const ep_logged_t *event, void *arg);

//  Writes every event logged so far to path as JSON lines (the audit
//  log's format), for tests/support/validate_events.py. Returns the count.
size_t
    ep_eventlog_write_jsonl (ep_eventlog_t *self, const char *path);

#endif
