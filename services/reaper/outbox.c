/*  outbox.c: events and commands made true by the open transaction.

    Session events are durable (docs/events.md "Duplicates"): each is
    packed and written to sessions.db's outbox table in the transaction of
    the change it reports, so an event is decided exactly when its change
    commits, and a restart loses none. reaper_next_output hands the
    committed rows out in seq order, each under the event id
    "<owner>:<seq>" (owner: the reaper's stable id, kept in sessions.db);
    a row is deleted when that id comes back through the bus on our own
    subscription (reaper_echo), the proof the bus took it. Rows handed out
    that nothing acknowledges for RESEND_MS are handed out again under the
    same ids (the bus restarted, or lost them), and a restart hands out
    every row again: consumers drop the repeats by id. The table is
    bounded by config.outbox_max: when full, opens are refused (they would
    add events); closes, heartbeats and cleanup never are, so what they
    decide still goes in, a little past the cap.

    This is the watchdog's scheme (services/watchdog/events.c) over a
    table rather than its file (common/ep_outbox.c): the events must
    commit with the sessions they report, in the same SQLite transaction,
    which a separate file cannot give.

    Commands are not durable: a restart resends what is still due from
    the jobs (cleanup.c). CloseSessions go through an ep_output as they
    are, dropped if their batch fails (the planner sends them again after
    --command-retry). A probe records nothing durable and its session was
    judged probed in memory, whatever the batch's fate: it is ready at
    once, so a failed batch cannot leave a session probed that no router
    was asked about.
*/
#include "reaper_internal.h"

#define RESEND_MS           5000        //  handed out and not echoed this long: again
#define HANDOUT_PAGE        256         //  rows read from the outbox at a time

//  Packs event into the outbox (the open transaction). Returns its seq, or -1.
static int64_t
s_store (reaper_t *self, const char *topic, const Ep__Event *event)
{
    size_t size = ep__event__get_packed_size (event);
    uint8_t stack [1024];
    uint8_t *bytes = size <= sizeof stack? stack: (uint8_t *) malloc (size);
    EP_ASSERT (bytes);
    ep__event__pack (event, bytes);
    int64_t seq = sessiondb_outbox_add (self->db, topic, bytes, size);
    if (bytes != stack)
        free (bytes);
    return seq;
}

static void
s_outbox_gauge (reaper_t *self)
{
    if (self->outbox_depth)
        ep_series_set (self->outbox_depth, (double) self->outbox_count);
}

void
reaper_event (reaper_t *self, session_t *session, const char *type, const char *reason, int64_t now)
{
    if (!reaper_begin (self))
        return;
    Ep__SessionEvent body = EP__SESSION_EVENT__INIT;
    body.session_id = session->id;
    body.router_id = session->groups [G_ROUTER]->id;
    body.identity_id = session->groups [G_IDENTITY]->id;
    body.service_id = session->groups [G_SERVICE]->id;
    body.event_type = (char *) type;
    body.reason = (char *) reason;
    body.has_age_ms = true;
    body.age_ms = reaper_wall (self, now) - session->created_ms;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_SESSION;
    event.session = &body;
    char topic [32];
    snprintf (topic, sizeof topic, "session.%s", type);
    int64_t seq = s_store (self, topic, &event);
    reaper_wrote (self, seq < 0? -1: 0);
    if (seq > 0) {
        self->outbox_count++;
        self->outbox_staged++;
    }
}

bool
reaper_outbox_full (reaper_t *self)
{
    if (!self->config.outbox_max || self->outbox_count < self->config.outbox_max)
        return false;
    if (self->outbox_refused)
        ep_series_add (self->outbox_refused, 1);
    if (!self->outbox_full)
        ep_log_error ("event outbox full (%zu session events the bus has not taken): new sessions "
                      "refused until it drains; is the bus up?", self->outbox_count);
    self->outbox_full = true;
    return true;
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

static char *
s_dup (const char *text)
{
    return text? strdup (text): NULL;
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
    ep_output_take (probe? self->probe_out: self->commands, topic, &event, 0);
    if (probe)
        ep_output_commit (self->probe_out);
}

void
reaper_outbox_commit (reaper_t *self)
{
    ep_output_commit (self->commands);
    if (self->acks_applied)
        zlistx_purge (self->acks);      //  their rows are gone
    self->acks_applied = false;
    self->outbox_staged = 0;
    if (self->outbox_full && self->outbox_count < self->config.outbox_max) {
        self->outbox_full = false;
        ep_log_info ("event outbox has room again (%zu events): new sessions accepted",
                     self->outbox_count);
    }
    s_outbox_gauge (self);
}

//  outbox_count and in_flight are put back with the batch's counters
//  (batch.c); the echoes stay, their rows to delete at the next commit.
void
reaper_outbox_abort (reaper_t *self)
{
    ep_output_abort (self->commands);
    self->acks_applied = false;
    self->outbox_staged = 0;
}

//  A row sessiondb_outbox_next found, as an item of the handout.
static void
s_row (void *arg, int64_t seq, const char *topic, const void *body, size_t size)
{
    reaper_t *self = (reaper_t *) arg;
    self->sent_seq = seq;
    if (ep_output_add_packed (self->handout, topic, body, size, seq))
        self->in_flight++;
    else
        ep_log_warn ("outbox row %lld does not decode: skipped (it stays until acknowledged)",
                     (long long) seq);
}

//  Counted as handed out: a CloseSessions of a failed batch never is.
static void
s_count_command (reaper_t *self, ep_output_item_t *item)
{
    if (self->commands_total) {
        const char *labels [] = {
            item->event->command->kind_case == EP__COMMAND__KIND_PROBE_SESSIONS? "probe": "close"
        };
        ep_counter_inc (self->commands_total, labels, 1);
    }
}

ep_output_item_t *
reaper_next_output (reaper_t *self, bool events)
{
    ep_output_item_t *item = ep_output_next (self->commands);
    if (!item)
        item = ep_output_next (self->probe_out);
    if (item)
        s_count_command (self, item);
    if (item || !events)
        return item;
    //  Rows are read a page at a time (one query, not one per event),
    //  and only committed ones: none while a transaction is open.
    item = ep_output_next (self->handout);
    if (!item && !self->in_txn && self->outbox_count > self->in_flight) {
        int found = sessiondb_outbox_next (self->db, self->sent_seq, HANDOUT_PAGE, s_row, self);
        if (found < 0)
            ep_log_error ("cannot read the event outbox: %s", ep_store_last_error ());
        ep_output_commit (self->handout);
        item = ep_output_next (self->handout);
    }
    return item;
}

size_t
reaper_backlog (reaper_t *self)
{
    return self->outbox_count > self->in_flight? self->outbox_count - self->in_flight: 0;
}

const char *
reaper_outbox_owner (reaper_t *self)
{
    return self->owner;
}

void
reaper_echo (reaper_t *self, const char *event_id)
{
    size_t len = strlen (self->owner);
    if (!event_id || strncmp (event_id, self->owner, len) != 0 || event_id [len] != ':')
        return;                 //  not one of ours (another reaper's, or none)
    char *end;
    long long seq = strtoll (event_id + len + 1, &end, 10);
    if (seq <= 0 || *end)
        return;
    int64_t *ack = (int64_t *) malloc (sizeof (int64_t));
    EP_ASSERT (ack);
    *ack = seq;
    zlistx_add_end (self->acks, ack);
}

//  Deletes the rows first .. last, all echoed.
static void
s_ack_run (reaper_t *self, int64_t first, int64_t last)
{
    //  Rows up to sent_seq were handed out (counted in flight), the others
    //  not since a rewind: the two parts are counted apart.
    int64_t split [2][2] = {
        { first, last < self->sent_seq? last: self->sent_seq },
        { first > self->sent_seq? first: self->sent_seq + 1, last }
    };
    for (int part = 0; part < 2; part++) {
        if (split [part][0] > split [part][1])
            continue;
        int deleted = sessiondb_outbox_ack (self->db, split [part][0], split [part][1]);
        reaper_wrote (self, deleted < 0? -1: 0);
        if (deleted <= 0)
            continue;
        self->outbox_count -= (size_t) deleted < self->outbox_count? (size_t) deleted: self->outbox_count;
        if (part == 0)
            self->in_flight -= (size_t) deleted < self->in_flight? (size_t) deleted: self->in_flight;
    }
}

bool
reaper_outbox_acks (reaper_t *self)
{
    if (zlistx_size (self->acks) == 0 || !reaper_begin (self))
        return false;
    //  Echoes come mostly in seq order: each run of consecutive seqs is
    //  one DELETE.
    int64_t first = 0, last = 0;
    for (int64_t *ack = (int64_t *) zlistx_first (self->acks); ack;
         ack = (int64_t *) zlistx_next (self->acks)) {
        if (first && *ack == last + 1) {
            last = *ack;
            continue;
        }
        if (first)
            s_ack_run (self, first, last);
        first = last = *ack;
    }
    s_ack_run (self, first, last);
    self->acks_applied = true;
    return true;
}

int64_t
reaper_outbox_tick (reaper_t *self, int64_t now)
{
    //  While the store takes no writes, echoed rows cannot be deleted
    //  and would look lost: nothing is resent until it does.
    if (!self->in_flight || self->degraded != EP_STORE_FAULT_NONE) {
        self->oldest_seq = 0;
        return INT64_MAX;
    }
    //  The oldest row handed out and not echoed: when it has been waiting
    //  RESEND_MS, the bus lost it (and likely what followed): every row
    //  is handed out again, from the first, under its own id.
    int64_t oldest = sessiondb_outbox_first (self->db);
    if (oldest < 0) {
        ep_log_error ("cannot read the event outbox: %s", ep_store_last_error ());
        return INT64_MAX;
    }
    if (oldest == 0 || oldest > self->sent_seq) {
        self->in_flight = 0;        //  all echoed (counts drift if acks came late)
        self->oldest_seq = 0;
        return INT64_MAX;
    }
    if (oldest != self->oldest_seq) {
        self->oldest_seq = oldest;
        self->oldest_since = now;
    }
    if (now - self->oldest_since < RESEND_MS)
        return self->oldest_since + RESEND_MS;
    ep_log_warn ("session event %s:%lld was handed to the bus %d ms ago and has not come back: "
                 "publishing the %zu events not echoed again under the same ids (is the bus up?)",
                 self->owner, (long long) oldest, RESEND_MS, self->outbox_count);
    self->sent_seq = 0;
    self->in_flight = 0;
    self->oldest_seq = 0;
    return now;
}
