/*  outbox.c: events and commands made true by the open transaction,
    staged in two ep_outputs (so that commands can go out first and events
    at the rate the shell allows) and ready once the transaction commits.

    Each output is built as protobuf-c's unpacker would build it (every
    part its own allocation) and handed over with ep_output_take: no copy
    through the wire form for the 200,000 events of a large deletion.
*/
#include "reaper_internal.h"

#define EVENTS_MAX          1000000     //  events waiting for the bus, at most

static char *
s_dup (const char *text)
{
    return text? strdup (text): NULL;
}

//  An Event around body, allocated for ep__event__free_unpacked.
static Ep__Event *
s_event_new (Ep__Event__BodyCase body_case, void *body)
{
    Ep__Event *event = (Ep__Event *) malloc (sizeof (Ep__Event));
    EP_ASSERT (event);
    ep__event__init (event);
    event->body_case = body_case;
    if (body_case == EP__EVENT__BODY_SESSION)
        event->session = (Ep__SessionEvent *) body;
    else
        event->command = (Ep__Command *) body;
    return event;
}

void
reaper_event (reaper_t *self, session_t *session, const char *type, const char *reason, int64_t now)
{
    Ep__SessionEvent *body = (Ep__SessionEvent *) malloc (sizeof (Ep__SessionEvent));
    EP_ASSERT (body);
    ep__session_event__init (body);
    body->event_type = strdup (type);
    body->session_id = strdup (session->id);
    body->router_id = strdup (session->groups [G_ROUTER]->id);
    body->identity_id = strdup (session->groups [G_IDENTITY]->id);
    body->service_id = strdup (session->groups [G_SERVICE]->id);
    body->reason = s_dup (reason);
    body->has_age_ms = true;
    body->age_ms = reaper_wall (self, now) - session->created_ms;
    Ep__Event *event = s_event_new (EP__EVENT__BODY_SESSION, body);
    char topic [32];
    snprintf (topic, sizeof topic, "session.%s", type);
    ep_output_take (self->events, topic, &event, 0);
    //  A bus that never comes up must not take all memory: the oldest go.
    if (ep_output_ready (self->events) + ep_output_staged (self->events) > EVENTS_MAX) {
        ep_output_item_t *oldest = ep_output_next (self->events);
        ep_output_item_destroy (&oldest);
        if (self->events_dropped++ % 100000 == 0)
            ep_log_warn ("%llu session events dropped: the bus has not taken them (is it up?)",
                         (unsigned long long) self->events_dropped);
    }
}

//  Stages a close or probe command for router with ids [0 .. count).
void
reaper_command (reaper_t *self, const char *router, const char *command_id, bool probe,
                const char *reason, int64_t deadline_ms, const char *const *ids, size_t count)
{
    char **copies = (char **) malloc ((count? count: 1) * sizeof (char *));
    EP_ASSERT (copies);
    for (size_t i = 0; i < count; i++)
        copies [i] = strdup (ids [i]);
    Ep__Command *body = (Ep__Command *) malloc (sizeof (Ep__Command));
    EP_ASSERT (body);
    ep__command__init (body);
    body->command_id = strdup (command_id);
    body->router_id = strdup (router);
    body->reply_to = strdup ("reaper");
    body->has_deadline_ms = true;
    body->deadline_ms = deadline_ms;
    if (probe) {
        Ep__ProbeSessions *kind = (Ep__ProbeSessions *) malloc (sizeof (Ep__ProbeSessions));
        EP_ASSERT (kind);
        ep__probe_sessions__init (kind);
        kind->n_session_ids = count;
        kind->session_ids = copies;
        body->kind_case = EP__COMMAND__KIND_PROBE_SESSIONS;
        body->probe_sessions = kind;
    }
    else {
        Ep__CloseSessions *kind = (Ep__CloseSessions *) malloc (sizeof (Ep__CloseSessions));
        EP_ASSERT (kind);
        ep__close_sessions__init (kind);
        kind->n_session_ids = count;
        kind->session_ids = copies;
        kind->reason = s_dup (reason);
        body->kind_case = EP__COMMAND__KIND_CLOSE_SESSIONS;
        body->close_sessions = kind;
    }
    Ep__Event *event = s_event_new (EP__EVENT__BODY_COMMAND, body);
    char topic [80];
    snprintf (topic, sizeof topic, "cmd.%s.", router);
    ep_output_take (self->commands, topic, &event, 0);
    if (self->commands_total) {
        const char *labels [] = { probe? "probe": "close" };
        ep_counter_inc (self->commands_total, labels, 1);
    }
}

ep_output_item_t *
reaper_next_output (reaper_t *self, bool events)
{
    ep_output_item_t *item = ep_output_next (self->commands);
    if (!item && events)
        item = ep_output_next (self->events);
    return item;
}

size_t
reaper_backlog (reaper_t *self)
{
    return ep_output_ready (self->events) + ep_output_staged (self->events);
}
