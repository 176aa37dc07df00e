/*  outbox.c: events and commands made true by the open transaction,
    staged until it commits, then handed out by reaper_next_output as
    ep_output items (commands first, then events at the rate the shell
    allows).

    Commands are few and go through an ep_output as they are. Session
    events are many (200,000 for a deletion of 100,000 sessions), so each
    waits as one compact allocation and becomes an Ep__Event only when the
    shell takes it: built, published and freed one at a time, its parts
    come from and go back to the allocator's per-thread cache, where eight
    allocations per event staged in bulk and freed in bulk cost the
    reaping benchmark about a tenth of its throughput.
*/
#include "reaper_internal.h"

#define EVENTS_MAX          1000000     //  events waiting for the bus, at most

//  A session event waiting for the commit and the shell.
typedef struct {
    const char *type;           //  created, terminating, closed, reaped, warning (static)
    const char *reason;         //  static, or NULL
    int64_t age_ms;             //  how old the session was
    char strings [];            //  id \0 router \0 identity \0 service \0
} event_out_t;

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
    const char *strings [] = {
        session->id, session->groups [G_ROUTER]->id, session->groups [G_IDENTITY]->id,
        session->groups [G_SERVICE]->id
    };
    size_t lengths [EP_COUNT (strings)], size = 0;
    for (size_t i = 0; i < EP_COUNT (strings); i++)
        size += lengths [i] = strlen (strings [i]) + 1;
    event_out_t *event = (event_out_t *) malloc (sizeof (event_out_t) + size);
    EP_ASSERT (event);
    event->type = type;
    event->reason = reason;
    event->age_ms = reaper_wall (self, now) - session->created_ms;
    char *at = event->strings;
    for (size_t i = 0; i < EP_COUNT (strings); i++) {
        memcpy (at, strings [i], lengths [i]);
        at += lengths [i];
    }
    zlistx_add_end (self->events, event);
    self->events_staged++;
    //  A bus that never comes up must not take all memory: the oldest go.
    if (zlistx_size (self->events) > EVENTS_MAX) {
        event_out_t *oldest = (event_out_t *) zlistx_detach (self->events, NULL);
        if (self->events_staged > zlistx_size (self->events))
            self->events_staged--;
        free (oldest);
        if (self->events_dropped++ % 100000 == 0)
            ep_log_warn ("%llu session events dropped: the bus has not taken them (is it up?)",
                         (unsigned long long) self->events_dropped);
    }
}

//  The Event of a waiting session event, allocated for
//  ep__event__free_unpacked (an ep_output item owns it).
static Ep__Event *
s_session_event (const event_out_t *waiting)
{
    Ep__SessionEvent *body = (Ep__SessionEvent *) malloc (sizeof (Ep__SessionEvent));
    EP_ASSERT (body);
    ep__session_event__init (body);
    const char *at = waiting->strings;
    char **fields [] = { &body->session_id, &body->router_id, &body->identity_id, &body->service_id };
    for (size_t i = 0; i < EP_COUNT (fields); i++) {
        *fields [i] = strdup (at);
        at += strlen (at) + 1;
    }
    body->event_type = strdup (waiting->type);
    body->reason = s_dup (waiting->reason);
    body->has_age_ms = true;
    body->age_ms = waiting->age_ms;
    return s_event_new (EP__EVENT__BODY_SESSION, body);
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

void
reaper_outbox_commit (reaper_t *self)
{
    ep_output_commit (self->commands);
    self->events_staged = 0;
}

void
reaper_outbox_abort (reaper_t *self)
{
    ep_output_abort (self->commands);
    for (; self->events_staged; self->events_staged--) {
        zlistx_last (self->events);
        zlistx_delete (self->events, zlistx_cursor (self->events));
    }
}

ep_output_item_t *
reaper_next_output (reaper_t *self, bool events)
{
    ep_output_item_t *item = ep_output_next (self->commands);
    if (item || !events || zlistx_size (self->events) == self->events_staged)
        return item;
    event_out_t *waiting = (event_out_t *) zlistx_detach (self->events, NULL);
    Ep__Event *event = s_session_event (waiting);
    char topic [32];
    snprintf (topic, sizeof topic, "session.%s", waiting->type);
    free (waiting);
    ep_output_take (self->handout, topic, &event, 0);
    ep_output_commit (self->handout);
    return ep_output_next (self->handout);
}

size_t
reaper_backlog (reaper_t *self)
{
    return zlistx_size (self->events);
}
