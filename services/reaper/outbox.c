/*  outbox.c: events and commands made true by the open transaction,
    queued until it commits, then published (commands all, events at the
    rate the caller allows).
*/
#include "reaper_internal.h"

#define EVENTS_MAX          1000000     //  events waiting for the bus, at most

//  An event waiting for the commit and the publisher.
typedef struct {
    const char *type;           //  created, terminating, closed, reaped, warning
    const char *reason;         //  static, or NULL
    int64_t age_ms;             //  how old the session was
    char *strings;              //  id \0 router \0 identity \0 service \0 (this allocation)
} event_out_t;

//  A command waiting for the commit and the publisher.
typedef struct {
    char topic [80];            //  cmd.<router>.
    char id [48];               //  command id
    char router [65];           //  its router
    const char *reason;         //  close: why (static)
    bool probe;                 //  probe, else close
    int64_t deadline_ms;        //  wall clock
    size_t count;               //  session ids
    char **ids;                 //  them (into this allocation)
} command_out_t;

void
reaper_event (reaper_t *self, session_t *session, const char *type, const char *reason, int64_t now)
{
    const char *strings [] = {
        session->id, session->groups [G_ROUTER]->id, session->groups [G_IDENTITY]->id,
        session->groups [G_SERVICE]->id
    };
    size_t size = 0;
    for (size_t i = 0; i < EP_COUNT (strings); i++)
        size += strlen (strings [i]) + 1;
    event_out_t *event = (event_out_t *) malloc (sizeof (event_out_t) + size);
    event->type = type;
    event->reason = reason;
    event->age_ms = reaper_wall (self, now) - session->created_ms;
    event->strings = (char *) (event + 1);
    char *at = event->strings;
    for (size_t i = 0; i < EP_COUNT (strings); i++) {
        size_t len = strlen (strings [i]) + 1;
        memcpy (at, strings [i], len);
        at += len;
    }
    zlistx_add_end (self->events, event);
    //  A bus that never comes up must not take all memory: the oldest go.
    if (zlistx_size (self->events) > EVENTS_MAX) {
        event_out_t *oldest = (event_out_t *) zlistx_detach (self->events, NULL);
        free (oldest);
        if (self->events_dropped++ % 100000 == 0)
            ep_log_warn ("%llu session events dropped: the bus has not taken them (is it up?)",
                         (unsigned long long) self->events_dropped);
    }
}

//  Queues a close or probe command for router with ids [0 .. count).
void
reaper_command (reaper_t *self, const char *router, const char *command_id, bool probe,
           const char *reason, int64_t deadline_ms, const char *const *ids, size_t count)
{
    size_t size = count * sizeof (char *);
    for (size_t i = 0; i < count; i++)
        size += strlen (ids [i]) + 1;
    command_out_t *command = (command_out_t *) zmalloc (sizeof (command_out_t) + size);
    snprintf (command->topic, sizeof command->topic, "cmd.%s.", router);
    snprintf (command->id, sizeof command->id, "%s", command_id);
    snprintf (command->router, sizeof command->router, "%s", router);
    command->reason = reason;
    command->probe = probe;
    command->deadline_ms = deadline_ms;
    command->count = count;
    command->ids = (char **) (command + 1);
    char *at = (char *) (command->ids + count);
    for (size_t i = 0; i < count; i++) {
        size_t len = strlen (ids [i]) + 1;
        memcpy (at, ids [i], len);
        command->ids [i] = at;
        at += len;
    }
    zlistx_add_end (self->commands, command);
    if (self->commands_total) {
        const char *labels [] = { probe? "probe": "close" };
        ep_counter_inc (self->commands_total, labels, 1);
    }
}

size_t
reaper_publish (reaper_t *self, size_t max_events)
{
    command_out_t *command;
    while ((command = (command_out_t *) zlistx_detach (self->commands, NULL))) {
        Ep__CloseSessions close = EP__CLOSE_SESSIONS__INIT;
        Ep__ProbeSessions probe = EP__PROBE_SESSIONS__INIT;
        Ep__Command body = EP__COMMAND__INIT;
        body.command_id = command->id;
        body.router_id = command->router;
        body.reply_to = "reaper";
        body.has_deadline_ms = true;
        body.deadline_ms = command->deadline_ms;
        if (command->probe) {
            probe.n_session_ids = command->count;
            probe.session_ids = command->ids;
            body.kind_case = EP__COMMAND__KIND_PROBE_SESSIONS;
            body.probe_sessions = &probe;
        }
        else {
            close.n_session_ids = command->count;
            close.session_ids = command->ids;
            close.reason = (char *) command->reason;
            body.kind_case = EP__COMMAND__KIND_CLOSE_SESSIONS;
            body.close_sessions = &close;
        }
        Ep__Event event = EP__EVENT__INIT;
        event.body_case = EP__EVENT__BODY_COMMAND;
        event.command = &body;
        if (self->publish)
            self->publish (self->publish_arg, command->topic, &event);
        free (command);
    }
    event_out_t *item;
    size_t sent = 0;
    for (; sent < max_events && (item = (event_out_t *) zlistx_detach (self->events, NULL)); sent++) {
        Ep__SessionEvent body = EP__SESSION_EVENT__INIT;
        body.event_type = (char *) item->type;
        body.session_id = item->strings;
        body.router_id = body.session_id + strlen (body.session_id) + 1;
        body.identity_id = body.router_id + strlen (body.router_id) + 1;
        body.service_id = body.identity_id + strlen (body.identity_id) + 1;
        body.reason = (char *) item->reason;
        body.has_age_ms = true;
        body.age_ms = item->age_ms;
        Ep__Event event = EP__EVENT__INIT;
        event.body_case = EP__EVENT__BODY_SESSION;
        event.session = &body;
        char topic [32];
        snprintf (topic, sizeof topic, "session.%s", item->type);
        if (self->publish)
            self->publish (self->publish_arg, topic, &event);
        free (item);
    }
    return sent;
}

size_t
reaper_backlog (reaper_t *self)
{
    return zlistx_size (self->events);
}
