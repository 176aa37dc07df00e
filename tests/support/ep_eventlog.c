/*  ep_eventlog.c: a log of the events a test's subscriber delivers. */
#include "ep_eventlog.h"
#include "ep_event_json.h"

struct _ep_eventlog_t {
    ep_subscriber_t *events;    //  where events come from (borrowed)
    ep_logged_t **seen;         //  logged so far, each its own allocation
    size_t count;               //  entries in seen
    size_t cap;                 //  room in seen
};

ep_eventlog_t *
ep_eventlog_new (ep_subscriber_t *events)
{
    EP_ASSERT (events);
    ep_eventlog_t *self = (ep_eventlog_t *) zmalloc (sizeof (ep_eventlog_t));
    self->events = events;
    return self;
}

void
ep_eventlog_destroy (ep_eventlog_t **self_p)
{
    ep_eventlog_t *self = *self_p;
    if (self) {
        for (size_t i = 0; i < self->count; i++) {
            json_decref (self->seen [i]->json);
            free (self->seen [i]);
        }
        free (self->seen);
        free (self);
        *self_p = NULL;
    }
}

#define S_COPY(dst, src) snprintf ((dst), sizeof (dst), "%s", (src)? (src): "")

//  The fields the suites test, from event's body.
static void
s_fill (ep_logged_t *e, const char *topic, const Ep__Event *event)
{
    S_COPY (e->topic, topic);
    if (event->meta) {
        S_COPY (e->source, event->meta->source_id);
        e->seq = event->meta->seq;
        e->timestamp = event->meta->timestamp_ms;
    }
    e->json = ep_event_json (topic, event);
    EP_ASSERT (e->json);
    if (event->body_case == EP__EVENT__BODY_TERMINATOR) {
        const Ep__TerminatorEvent *body = event->terminator;
        S_COPY (e->id, body->terminator_id);
        S_COPY (e->reason, body->reason);
        e->total = body->total_terminators;
        e->usable_default = body->usable_default_terminators;
        e->online = body->router_online;
    }
    if (event->body_case == EP__EVENT__BODY_STRAY) {
        S_COPY (e->step, event->stray->step);
        S_COPY (e->peer_id, event->stray->peer_id);
    }
    if (event->body_case == EP__EVENT__BODY_CHANNEL)
        S_COPY (e->reason, event->channel->reason);
    if (event->body_case == EP__EVENT__BODY_CONNECT) {
        const Ep__ConnectEvent *c = event->connect;
        S_COPY (e->type, c->type);
        S_COPY (e->src_type, c->src_type);
        S_COPY (e->src_id, c->src_id);
        S_COPY (e->src_addr, c->src_addr);
        S_COPY (e->dst_type, c->dst_type);
        S_COPY (e->dst_id, c->dst_id);
        S_COPY (e->reason, c->reason);
        e->connected = c->connected;
        e->duration = c->duration;
        e->event_time = c->has_event_time_ms? c->event_time_ms: 0;
    }
}

void
ep_eventlog_pump (ep_eventlog_t *self, int timeout_ms)
{
    char *topic = NULL;
    Ep__Event *event = ep_subscriber_recv (self->events, timeout_ms, &topic);
    while (event) {
        if (self->count == self->cap) {
            self->cap = self->cap? self->cap * 2: 256;
            self->seen = (ep_logged_t **) realloc (self->seen, self->cap * sizeof (ep_logged_t *));
            EP_ASSERT (self->seen);
        }
        ep_logged_t *entry = (ep_logged_t *) zmalloc (sizeof (ep_logged_t));
        s_fill (entry, topic, event);
        self->seen [self->count++] = entry;
        zstr_free (&topic);     //  the event is the subscriber's (lent)
        event = ep_subscriber_recv (self->events, 0, &topic);
    }
}

size_t
ep_eventlog_size (ep_eventlog_t *self)
{
    return self->count;
}

const ep_logged_t *
ep_eventlog_get (ep_eventlog_t *self, size_t index)
{
    EP_ASSERT (index < self->count);
    return self->seen [index];
}

int
ep_eventlog_await (ep_eventlog_t *self, const char *topic, ep_eventlog_match_fn *match, void *arg,
                   size_t from, int timeout_ms)
{
    int64_t deadline = ep_mono_ms () + timeout_ms;
    size_t checked = from;
    while (true) {
        for (; checked < self->count; checked++) {
            const ep_logged_t *e = self->seen [checked];
            if (streq (e->topic, topic) && (!match || match (e, arg)))
                return (int) checked;
        }
        int64_t left = deadline - ep_mono_ms ();
        if (left <= 0)
            return -1;
        ep_eventlog_pump (self, (int) (left < 50? left: 50));
    }
}

const ep_logged_t *
ep_eventlog_await_event (ep_eventlog_t *self, const char *topic, ep_eventlog_match_fn *match,
                         void *arg, int timeout_ms)
{
    int index = ep_eventlog_await (self, topic, match, arg, 0, timeout_ms);
    return index < 0? NULL: self->seen [index];
}

size_t
ep_eventlog_count (ep_eventlog_t *self, const char *topic)
{
    size_t count = 0;
    for (size_t i = 0; i < self->count; i++)
        count += streq (self->seen [i]->topic, topic);
    return count;
}

size_t
ep_eventlog_count_event_id (ep_eventlog_t *self, const char *event_id)
{
    size_t count = 0;
    for (size_t i = 0; i < self->count; i++) {
        json_t *id = json_object_get (self->seen [i]->json, "event_id");
        count += json_is_string (id) && streq (json_string_value (id), event_id);
    }
    return count;
}

bool
ep_eventlog_match_id (const ep_logged_t *event, void *arg)
{
    json_t *id = json_object_get (event->json, "id");
    return json_is_string (id) && streq (json_string_value (id), (const char *) arg);
}

size_t
ep_eventlog_write_jsonl (ep_eventlog_t *self, const char *path)
{
    FILE *file = fopen (path, "w");
    EP_ASSERT (file);
    for (size_t i = 0; i < self->count; i++) {
        char *line = json_dumps (self->seen [i]->json, JSON_COMPACT);
        EP_ASSERT (line);
        fprintf (file, "%s\n", line);
        free (line);
    }
    EP_ASSERT (fclose (file) == 0);
    return self->count;
}
