/*  requests.c: the writes routers make through the watchdog (open,
    close, heartbeat, ack), each idempotent so a retry needs no reply cache.
    While the store takes no writes (reaper_set_degraded), the ones that
    would write are refused before they try; heartbeats and probe answers
    change only memory and are served.
*/
#include "reaper_internal.h"

//  True (and result refused, retriable) while the store takes no writes.
static bool
s_refused (reaper_t *self, reaper_result_t *result)
{
    if (self->degraded == EP_STORE_FAULT_NONE)
        return false;
    reaper_fail (result, EP__STATUS__CODE__UNAVAILABLE, "the write was not committed: %s",
                 self->degraded_why);
    return true;
}

//  A read of sessions.db failed: this request is answered, the batch goes on.
static void
s_unreadable (reaper_result_t *result)
{
    reaper_fail (result, EP__STATUS__CODE__UNAVAILABLE, "cannot read sessions.db: %s; retry",
                 ep_store_last_error ());
}

static bool
s_is_watchdog (const ep_caller_t *caller)
{
    return caller && streq (caller->role, "service") && streq (caller->name, "watchdog");
}

//  What s_open needs to know of a row found on disk.
typedef struct {
    char router [65];           //  its router
    char reason [64];           //  its close reason
} s_found_t;

static void
s_found (void *arg, const sessiondb_row_t *row)
{
    s_found_t *found = (s_found_t *) arg;
    snprintf (found->router, sizeof found->router, "%s", row->router_id? row->router_id: "");
    snprintf (found->reason, sizeof found->reason, "%s", row->close_reason? row->close_reason: "closed");
}

static void
s_open (reaper_t *self, const Ep__SessionRequest *request, int64_t now, reaper_result_t *result)
{
    const Ep__Session *open = request->open;
    const char *router = request->router_id;
    if (!reaper_valid_id (open->id)) {
        reaper_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                "open.id: use 1 to 64 of A-Z a-z 0-9 _ - (the router chooses it)");
        return;
    }
    if (open->router_id && *open->router_id && !streq (open->router_id, router)) {
        reaper_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                "open.router_id \"%.64s\" is not the router this request comes from (%s)",
                open->router_id, router);
        return;
    }
    if (!reaper_valid_id (open->identity_id) || !reaper_valid_id (open->service_id)) {
        reaper_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                "open: identity_id and service_id are required (1 to 64 of A-Z a-z 0-9 _ -)");
        return;
    }
    if (!open->has_type || (open->type != EP__SESSION_TYPE__DIAL && open->type != EP__SESSION_TYPE__BIND)) {
        reaper_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, "open.type: use dial or bind");
        return;
    }
    session_t *session = (session_t *) zhashx_lookup (self->sessions, open->id);
    if (session) {
        if (streq (session->groups [G_ROUTER]->id, router)
        &&  streq (session->groups [G_IDENTITY]->id, open->identity_id)
        &&  streq (session->groups [G_SERVICE]->id, open->service_id)
        &&  session->type == open->type) {
            sessiondb_row_t row;
            job_t *job = reaper_job_of (session);
            reaper_row_of (self, session, &row, job? job->id: NULL);
            reaper_reply_row (result, &row);         //  opened already: the same answer
        }
        else
            reaper_fail (result, EP__STATUS__CODE__ALREADY_EXISTS,
                    "session %s exists with another router, identity, service or type: pick another id",
                    open->id);
        return;
    }
    //  Not in memory: it never existed, or it is closed (ids are not reused).
    s_found_t found = { "", "" };
    int exists = sessiondb_get (self->db, open->id, s_found, &found);
    if (exists < 0) {
        s_unreadable (result);
        return;
    }
    if (exists && !streq (found.router, router))
        reaper_fail (result, EP__STATUS__CODE__ALREADY_EXISTS,
                "session %s exists on another router: pick another id", open->id);
    else
    if (exists)
        reaper_fail (result, EP__STATUS__CODE__FAILED_PRECONDITION,
                "session %s is closed (%s); session ids are not reused: open a new one",
                open->id, found.reason);
    if (exists)
        return;
    for (int kind = 0; kind < G_KINDS; kind++) {
        const char *id = kind == G_ROUTER? router: kind == G_IDENTITY? open->identity_id: open->service_id;
        if (zhashx_lookup (self->tombstones [kind], id)) {
            reaper_fail (result, EP__STATUS__CODE__FAILED_PRECONDITION,
                    "%s %s was deleted from the model: no new sessions for it", reaper_group_types [kind], id);
            return;
        }
    }
    if (s_refused (self, result))
        return;
    //  Its session.created could not be kept: refused, with what to do,
    //  rather than an event lost. Closes and cleanup are never refused.
    if (reaper_outbox_full (self)) {
        reaper_fail (result, EP__STATUS__CODE__UNAVAILABLE,
                "event-outbox-full: the reaper holds %zu session events the bus has not taken "
                "(--outbox-max); new sessions are refused until it does: check the bus, then retry",
                self->outbox_count);
        return;
    }
    if (!reaper_begin (self))
        return;
    int64_t wall = reaper_wall (self, now);
    //  A number this version does not know (a newer router, or garbage:
    //  protobuf-c takes any) counts as normal rather than refusing the
    //  session, which would leave it untracked.
    int criticality = open->has_criticality? (int) open->criticality: EP__CRITICALITY__CRITICALITY_NORMAL;
    if (criticality < EP__CRITICALITY__CRITICALITY_NORMAL || criticality > EP__CRITICALITY__CRITICALITY_CRITICAL)
        criticality = EP__CRITICALITY__CRITICALITY_NORMAL;
    int64_t created = open->has_created_at_ms && open->created_at_ms > 0 && open->created_at_ms <= wall
                    ? open->created_at_ms: wall;
    sessiondb_row_t row = {
        .id = open->id, .router_id = router, .identity_id = open->identity_id,
        .service_id = open->service_id, .type = open->type, .state = EP__SESSION_STATE__ACTIVE,
        .priority = open->has_priority? open->priority: 0, .criticality = criticality,
        .created_ms = created,
        .last_seen_ms = wall,
        .bytes_rx = open->has_bytes_rx? open->bytes_rx: 0,
        .bytes_tx = open->has_bytes_tx? open->bytes_tx: 0,
    };
    reaper_wrote (self, sessiondb_insert (self->db, &row));
    session = reaper_session_new (self, &row, now);
    reaper_event (self, session, "created", NULL, now);
    reaper_reply_row (result, &row);
    //  A router the view does not hold: created after our view's revision,
    //  or deleted while we were away (our tombstones do not survive a
    //  restart, and a draining router's late open can come after it).
    //  reaper_unseen decides once the view has caught up with the watchdogs.
    if (self->view && !ep_model_view_get (self->view, EP__ENTITY_TYPE__ENTITY_ROUTER, router))
        reaper_unseen_add (self, router, now + UNSEEN_RECHECK_MS);
}

//  A row read from disk for a reply, if it is on the given router.
typedef struct {
    reaper_result_t *result;    //  the reply to add it to
    const char *router;         //  the router it must be on (NULL: any)
    bool found;                 //  it was, and was added
} s_lookup_t;

static void
s_lookup_row (void *arg, const sessiondb_row_t *row)
{
    s_lookup_t *lookup = (s_lookup_t *) arg;
    if (lookup->router && !streq (row->router_id, lookup->router))
        return;
    reaper_reply_row (lookup->result, row);
    lookup->found = true;
}

static void
s_close (reaper_t *self, const Ep__SessionRequest *request, int64_t now, reaper_result_t *result)
{
    const char *id = request->close_id;
    if (!reaper_valid_id (id)) {
        reaper_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, "close_id: a session id is required");
        return;
    }
    session_t *session = (session_t *) zhashx_lookup (self->sessions, id);
    if (session && streq (session->groups [G_ROUTER]->id, request->router_id)) {
        if (s_refused (self, result))
            return;
        sessiondb_row_t row;
        job_t *job = reaper_job_of (session);
        reaper_row_of (self, session, &row, job? job->id: NULL);
        row.state = EP__SESSION_STATE__CLOSED;
        row.close_reason = R_CLIENT;
        row.closed_ms = reaper_wall (self, now);
        reaper_reply_row (result, &row);         //  copied before reaper_finish frees the session
        reaper_finish (self, session, R_CLIENT, "closed", now);
        return;
    }
    //  Closed already (a late retry, say): the same outcome, from disk.
    s_lookup_t lookup = { result, request->router_id, false };
    if (!session && sessiondb_get (self->db, id, s_lookup_row, &lookup) < 0)
        s_unreadable (result);
    else
    if (!lookup.found)
        reaper_fail (result, EP__STATUS__CODE__NOT_FOUND, "session %s is not on router %s",
                id, request->router_id);
}

static void
s_heartbeat (reaper_t *self, const Ep__SessionRequest *request, int64_t now, reaper_result_t *result)
{
    const Ep__SessionHeartbeat *heartbeat = request->heartbeat;
    Ep__SessionReply *reply = &result->reply;
    reaper_router_beat (self, request->router_id, now);
    for (size_t i = 0; i < heartbeat->n_entries; i++) {
        const Ep__SessionHeartbeat__Entry *entry = heartbeat->entries [i];
        session_t *session = entry->id && *entry->id
                           ? (session_t *) zhashx_lookup (self->sessions, entry->id): NULL;
        if (!session || !streq (session->groups [G_ROUTER]->id, request->router_id)) {
            //  Unknown or closed here: the router should close it.
            if (!reply->unknown_ids) {
                reply->unknown_ids = (char **) calloc (heartbeat->n_entries, sizeof (char *));
                ep_owned_add (result->owned, reply->unknown_ids, free);
            }
            if (entry->id)
                reply->unknown_ids [reply->n_unknown_ids++] = entry->id;
            continue;
        }
        if (entry->has_bytes_rx && entry->bytes_rx > session->bytes_rx)
            session->bytes_rx = entry->bytes_rx;
        if (entry->has_bytes_tx && entry->bytes_tx > session->bytes_tx)
            session->bytes_tx = entry->bytes_tx;
        liveness_heard (self->liveness, &session->live, now);
        reaper_dirty (self, session);
    }
}

static void
s_ack (reaper_t *self, const Ep__SessionRequest *request, int64_t now, reaper_result_t *result)
{
    const Ep__CommandAck *ack = request->ack;
    const char *command_id = ack->command_id? ack->command_id: "";
    //  A probe's ack lists the sessions the router still holds; any other
    //  ack (a CloseSessions', or one from before a restart) those it closed.
    bool probe = strncmp (command_id, PROBE_PREFIX, strlen (PROBE_PREFIX)) == 0;
    //  Closes cannot be written: the command stays unanswered, and is
    //  sent again once they can (the router acks it again).
    if (!probe && s_refused (self, result))
        return;
    bool known = !probe && sweep_answered (self->sweep, command_id);
    ep_log_debug ("router %s acked %s%s with %zu sessions (%zu in cleanup)", request->router_id, command_id,
                  probe || known? "": " (not outstanding)", ack->n_session_ids, sweep_size (self->sweep));
    for (size_t i = 0; i < ack->n_session_ids; i++) {
        const char *id = ack->session_ids [i];
        session_t *session = id? (session_t *) zhashx_lookup (self->sessions, id): NULL;
        if (!session || !streq (session->groups [G_ROUTER]->id, request->router_id))
            continue;
        if (session->sweep && !probe)
            reaper_finish (self, session, reaper_job_of (session)->reason, "closed", now);
        else
        if (!session->sweep)
            liveness_heard (self->liveness, &session->live, now);
    }
}

bool
reaper_is_read (const Ep__SessionRequest *request)
{
    return request->op_case == EP__SESSION_REQUEST__OP_GET_ID
        || request->op_case == EP__SESSION_REQUEST__OP_LIST
        || request->op_case == EP__SESSION_REQUEST__OP_CLEANUP
        || request->op_case == EP__SESSION_REQUEST__OP_LIVENESS;
}

void
reaper_handle (reaper_t *self, const Ep__SessionRequest *request, const ep_caller_t *caller,
               int64_t now, reaper_result_t *result)
{
    switch (request->op_case) {
        case EP__SESSION_REQUEST__OP_OPEN:      result->op = "open"; break;
        case EP__SESSION_REQUEST__OP_CLOSE_ID:  result->op = "close"; break;
        case EP__SESSION_REQUEST__OP_HEARTBEAT: result->op = "heartbeat"; break;
        case EP__SESSION_REQUEST__OP_ACK:       result->op = "ack"; break;
        default:
            if (reaper_is_read (request))
                reaper_read (self, request, caller, now, result);
            else
                reaper_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                        "request has no operation: set one of open, close_id, heartbeat, ack, get_id, list, cleanup, liveness");
            return;
    }
    //  Only the watchdog speaks for routers; it names the router.
    if (!s_is_watchdog (caller)) {
        reaper_fail (result, EP__STATUS__CODE__PERMISSION_DENIED,
                "%s: only the watchdog (role service, name watchdog) speaks for routers", result->op);
        return;
    }
    if (!reaper_valid_id (request->router_id)) {
        reaper_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                "router_id: the router this request speaks for is required");
        return;
    }
    if ((request->op_case == EP__SESSION_REQUEST__OP_OPEN && !request->open)
    ||  (request->op_case == EP__SESSION_REQUEST__OP_HEARTBEAT && !request->heartbeat)
    ||  (request->op_case == EP__SESSION_REQUEST__OP_ACK && !request->ack)) {
        reaper_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, "%s: the operation is empty", result->op);
        return;
    }
    switch (request->op_case) {
        case EP__SESSION_REQUEST__OP_OPEN:      s_open (self, request, now, result); break;
        case EP__SESSION_REQUEST__OP_CLOSE_ID:  s_close (self, request, now, result); break;
        case EP__SESSION_REQUEST__OP_HEARTBEAT: s_heartbeat (self, request, now, result); break;
        default:                                s_ack (self, request, now, result); break;
    }
}
