/*  reads.c: what a request is answered with (reaper_result_t), and the
    reads (get, list, cleanup), answered from committed rows with the
    counters and last-seen times that memory knows better overlaid; and
    liveness, each router's thresholds, from memory (cadences.c).
*/
#include "reaper_internal.h"
#include "ep_rpc_server.h"
#include <jansson.h>
#include <stdarg.h>

#define PAGE_DEFAULT        100         //  sessions per list page by default
#define PAGE_MAX            1000        //  and at most
#define JOBS_REPORTED       10          //  cleanup: newest jobs per target

void
reaper_result_init (reaper_result_t *result, const char *request_id)
{
    memset (result, 0, sizeof *result);
    ep__session_reply__init (&result->reply);
    result->reply.status = ep_status_ok (&result->status);
    result->reply.request_id = (char *) request_id;
    result->op = "unknown";
    result->owned = ep_owned_new ();
}

void
reaper_result_clear (reaper_result_t *result)
{
    ep_owned_destroy (&result->owned);
}

void
reaper_fail (reaper_result_t *result, Ep__Status__Code code, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    ep_status_set (&result->status, result->message, sizeof result->message, code, format, args);
    va_end (args);
}

static void
s_free_session_msg (void *ptr)
{
    ep__session__free_unpacked ((Ep__Session *) ptr, NULL);
}

static char *
s_dup (const char *text)
{
    return text? strdup (text): NULL;
}

//  Appends a session (from a row) to the reply, allocated as protobuf-c's
//  unpacker would so free_unpacked releases it.
void
reaper_reply_row (reaper_result_t *result, const sessiondb_row_t *row)
{
    Ep__SessionReply *reply = &result->reply;
    Ep__Session *session = (Ep__Session *) malloc (sizeof (Ep__Session));
    ep__session__init (session);
    session->id = s_dup (row->id);
    session->router_id = s_dup (row->router_id);
    session->identity_id = s_dup (row->identity_id);
    session->service_id = s_dup (row->service_id);
    session->has_type = session->has_state = true;
    session->type = (Ep__SessionType) row->type;
    session->state = (Ep__SessionState) row->state;
    session->has_created_at_ms = session->has_last_seen_ms = true;
    session->created_at_ms = row->created_ms;
    session->last_seen_ms = row->last_seen_ms;
    session->has_bytes_rx = session->has_bytes_tx = session->has_priority = true;
    session->bytes_rx = row->bytes_rx;
    session->bytes_tx = row->bytes_tx;
    session->priority = row->priority;
    session->has_criticality = true;
    session->criticality = (Ep__Criticality) row->criticality;
    session->close_reason = s_dup (row->close_reason);
    if (row->state == EP__SESSION_STATE__CLOSED) {
        session->has_closed_at_ms = true;
        session->closed_at_ms = row->closed_ms;
    }
    session->job_id = s_dup (row->job_id);
    reply->sessions = (Ep__Session **) realloc (reply->sessions,
                                                (reply->n_sessions + 1) * sizeof (Ep__Session *));
    if (reply->n_sessions == 0)
        ep_owned_add (result->owned, &reply->sessions, (void (*) (void *)) zstr_free);
    reply->sessions [reply->n_sessions++] = (Ep__Session *) ep_owned_add (result->owned, session, s_free_session_msg);
}

static bool
s_is_reader (const ep_caller_t *caller)
{
    return caller && (streq (caller->role, "operator") || streq (caller->role, "service"));
}

//  Rows of a listing, overlaid with what memory knows better (counters and
//  last-seen are flushed only periodically).
typedef struct {
    reaper_t *self;             //  the reaper
    reaper_result_t *result;    //  the reply
    size_t limit;               //  rows wanted in the reply
    size_t rows;                //  rows seen (one more than limit: more pages)
    char last [65];             //  the last id put in the reply
} s_listing_t;

static void
s_list_row (void *arg, const sessiondb_row_t *row)
{
    s_listing_t *listing = (s_listing_t *) arg;
    if (listing->rows++ >= listing->limit)
        return;
    sessiondb_row_t copy = *row;
    session_t *session = row->state != EP__SESSION_STATE__CLOSED
                       ? (session_t *) zhashx_lookup (listing->self->sessions, row->id): NULL;
    if (session) {
        copy.bytes_rx = session->bytes_rx;
        copy.bytes_tx = session->bytes_tx;
        copy.last_seen_ms = reaper_wall (listing->self, session->live.seen);
    }
    reaper_reply_row (listing->result, &copy);
    snprintf (listing->last, sizeof listing->last, "%s", row->id);
}

//  A job as the cleanup reply shows it.
typedef struct {
    reaper_t *self;             //  the reaper
    reaper_result_t *result;    //  the reply
} s_jobs_t;

static void
s_free_job_msg (void *ptr)
{
    ep__cleanup_job__free_unpacked ((Ep__CleanupJob *) ptr, NULL);
}

static Ep__CleanupJob *
s_job_msg (reaper_result_t *result, const char *id, const char *reason, const char *target_type,
           const char *target_id, uint64_t revision, int64_t started, int64_t deadline)
{
    Ep__SessionReply *reply = &result->reply;
    Ep__CleanupJob *job = (Ep__CleanupJob *) malloc (sizeof (Ep__CleanupJob));
    ep__cleanup_job__init (job);
    job->id = s_dup (id);
    job->reason = s_dup (reason);
    job->target_type = s_dup (target_type);
    job->target_id = s_dup (target_id);
    job->has_revision = job->has_started_at_ms = job->has_deadline_ms = job->has_done = true;
    job->revision = revision;
    job->started_at_ms = started;
    job->deadline_ms = deadline;
    job->has_scheduled = job->has_remaining = true;
    reply->jobs = (Ep__CleanupJob **) realloc (reply->jobs, (reply->n_jobs + 1) * sizeof (Ep__CleanupJob *));
    if (reply->n_jobs == 0)
        ep_owned_add (result->owned, &reply->jobs, (void (*) (void *)) zstr_free);
    reply->jobs [reply->n_jobs++] = job;
    ep_owned_add (result->owned, job, s_free_job_msg);
    return job;
}

static void
s_job_count (Ep__CleanupJob *job, const char *reason, uint64_t count)
{
    Ep__ReasonCount *item = (Ep__ReasonCount *) malloc (sizeof (Ep__ReasonCount));
    ep__reason_count__init (item);
    item->reason = strdup (reason);
    item->has_count = true;
    item->count = count;
    job->closed = (Ep__ReasonCount **) realloc (job->closed, (job->n_closed + 1) * sizeof (Ep__ReasonCount *));
    job->closed [job->n_closed++] = item;
}

//  A job (running, or finished and read from disk) for the reply.
static void
s_job_row (void *arg, const sessiondb_job_t *row)
{
    s_jobs_t *jobs = (s_jobs_t *) arg;
    job_t *running = (job_t *) zhashx_lookup (jobs->self->jobs, row->id);
    Ep__CleanupJob *job = s_job_msg (jobs->result, row->id, row->reason, row->target_type,
                                     row->target_id, row->revision, row->started_ms, row->deadline_ms);
    job->scheduled = row->scheduled;
    if (running) {
        job->remaining = sweep_job_items (running->sweep);
        for (size_t i = 0; i < REASONS; i++)
            if (running->closed [i])
                s_job_count (job, reaper_reasons [i], running->closed [i]);
        return;
    }
    job->done = row->done;
    if (row->done) {
        job->has_finished_at_ms = true;
        job->finished_at_ms = row->finished_ms;
    }
    json_t *closed = row->closed? json_loads (row->closed, 0, NULL): NULL;
    const char *reason;
    json_t *count;
    json_object_foreach (closed, reason, count)
        s_job_count (job, reason, (uint64_t) json_integer_value (count));
    json_decref (closed);
}

static void
s_read_cleanup (reaper_t *self, const Ep__CleanupQuery *query, reaper_result_t *result)
{
    uint64_t revision = self->view? ep_model_view_revision (self->view): 0;
    result->reply.has_model_revision = true;
    result->reply.model_revision = revision;
    if (query->has_min_revision && query->min_revision > revision) {
        reaper_fail (result, EP__STATUS__CODE__UNAVAILABLE,
                "the reaper has applied model revision %llu, not yet %llu: retry shortly",
                (unsigned long long) revision, (unsigned long long) query->min_revision);
        return;
    }
    const char *type = query->router_id? "router": query->identity_id? "identity"
                     : query->service_id? "service": NULL;
    const char *target = query->router_id? query->router_id: query->identity_id? query->identity_id
                       : query->service_id;
    if ((type && !reaper_valid_id (target)) || (!type && !reaper_valid_id (query->job_id))) {
        reaper_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                "cleanup: give one of router_id, identity_id, service_id or job_id");
        return;
    }
    s_jobs_t jobs = { self, result };
    if (sessiondb_jobs_find (self->db, type, target, query->job_id, JOBS_REPORTED, s_job_row, &jobs) < 0)
        reaper_fail (result, EP__STATUS__CODE__UNAVAILABLE, "cannot read sessions.db now; retry");
}

static void
s_free_router_msg (void *ptr)
{
    ep__router_liveness__free_unpacked ((Ep__RouterLiveness *) ptr, NULL);
}

//  Appends router's thresholds, cadence and sessions to the reply.
static void
s_router_row (reaper_t *self, reaper_result_t *result, const char *id, const cadences_info_t *info)
{
    Ep__SessionReply *reply = &result->reply;
    Ep__RouterLiveness *router = (Ep__RouterLiveness *) malloc (sizeof (Ep__RouterLiveness));
    ep__router_liveness__init (router);
    router->router_id = strdup (id);
    router->has_evasive_ms = router->has_expire_ms = router->has_learnt = true;
    router->evasive_ms = info->evasive_ms;
    router->expire_ms = info->expire_ms;
    router->learnt = info->learnt;
    router->has_samples = router->has_interval_ms = true;
    router->samples = (uint32_t) info->samples;
    router->interval_ms = info->interval_ms;
    group_t *group = (group_t *) zhashx_lookup (self->groups [G_ROUTER], id);
    router->has_sessions = router->has_online = true;
    router->sessions = group? group->count: 0;
    router->online = fleet_online (self->fleet, id);
    reply->routers = (Ep__RouterLiveness **) realloc (reply->routers,
                                                      (reply->n_routers + 1) * sizeof (Ep__RouterLiveness *));
    if (reply->n_routers == 0)
        ep_owned_add (result->owned, &reply->routers, (void (*) (void *)) zstr_free);
    reply->routers [reply->n_routers++] = (Ep__RouterLiveness *) ep_owned_add (result->owned, router,
                                                                                s_free_router_msg);
}

//  One router's liveness, or a page of all of them by id.
static void
s_read_liveness (reaper_t *self, const Ep__LivenessQuery *query, reaper_result_t *result)
{
    const char *token = query->page_token && *query->page_token? query->page_token: NULL;
    if ((query->router_id && !ep_id_valid (query->router_id)) || (token && !ep_id_valid (token))) {
        reaper_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                "liveness: router_id and page_token are router ids (1 to 64 of A-Z a-z 0-9 _ -)");
        return;
    }
    cadences_info_t info;
    if (query->router_id) {
        if (!cadences_info (self->cadences, query->router_id, &info))
            reaper_fail (result, EP__STATUS__CODE__NOT_FOUND,
                    "router %s has no session here and sent no heartbeat since the reaper started",
                    query->router_id);
        else
            s_router_row (self, result, query->router_id, &info);
        return;
    }
    size_t page = query->has_page_size && query->page_size? query->page_size: PAGE_DEFAULT;
    if (page > PAGE_MAX)
        page = PAGE_MAX;
    const char **ids = (const char **) malloc ((page + 1) * sizeof (char *));
    size_t count = cadences_routers (self->cadences, token, ids, page + 1);
    for (size_t i = 0; i < count && i < page; i++)
        if (cadences_info (self->cadences, ids [i], &info))
            s_router_row (self, result, ids [i], &info);
    if (count > page)
        result->reply.next_page_token = (char *) ep_owned_add (result->owned, strdup (ids [page - 1]), free);
    free (ids);
}

void
reaper_read (reaper_t *self, const Ep__SessionRequest *request, const ep_caller_t *caller,
             int64_t now, reaper_result_t *result)
{
    (void) now;
    EP_ASSERT (!self->in_txn);
    result->op = request->op_case == EP__SESSION_REQUEST__OP_GET_ID? "get"
               : request->op_case == EP__SESSION_REQUEST__OP_LIST? "list"
               : request->op_case == EP__SESSION_REQUEST__OP_LIVENESS? "liveness": "cleanup";
    if (!s_is_reader (caller)) {
        reaper_fail (result, EP__STATUS__CODE__PERMISSION_DENIED,
                "%s: sessions are readable by operators and services only", result->op);
        return;
    }
    if (request->op_case == EP__SESSION_REQUEST__OP_GET_ID) {
        if (!reaper_valid_id (request->get_id)) {
            reaper_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, "get_id: a session id is required");
            return;
        }
        s_listing_t listing = { self, result, 1, 0, "" };
        int found = sessiondb_get (self->db, request->get_id, s_list_row, &listing);
        if (found < 0)
            reaper_fail (result, EP__STATUS__CODE__UNAVAILABLE, "cannot read sessions.db now; retry");
        else
        if (found == 0)
            reaper_fail (result, EP__STATUS__CODE__NOT_FOUND,
                    "session %s does not exist (or closed longer ago than the retention)", request->get_id);
        return;
    }
    if (request->op_case == EP__SESSION_REQUEST__OP_LIVENESS) {
        Ep__LivenessQuery all = EP__LIVENESS_QUERY__INIT;
        s_read_liveness (self, request->liveness? request->liveness: &all, result);
        return;
    }
    if (request->op_case == EP__SESSION_REQUEST__OP_CLEANUP) {
        if (!request->cleanup)
            reaper_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, "cleanup: the query is empty");
        else
            s_read_cleanup (self, request->cleanup, result);
        return;
    }
    Ep__SessionFilter empty = EP__SESSION_FILTER__INIT;
    const Ep__SessionFilter *filter = request->list? request->list: &empty;
    const char *ids [] = { filter->router_id, filter->identity_id, filter->service_id };
    const char *names [] = { "router_id", "identity_id", "service_id" };
    for (size_t i = 0; i < EP_COUNT (ids); i++)
        if (ids [i] && !ep_id_valid (ids [i])) {
            reaper_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                    "list.%s \"%.64s\": use 1 to 64 of A-Z a-z 0-9 _ -", names [i], ids [i]);
            return;
        }
    if (filter->has_state && filter->state > EP__SESSION_STATE__CLOSED) {
        reaper_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT, "list.state: use active, terminating or closed");
        return;
    }
    if (filter->page_token && *filter->page_token && !ep_id_valid (filter->page_token)) {
        reaper_fail (result, EP__STATUS__CODE__INVALID_ARGUMENT,
                "list.page_token: pass the next_page_token of the previous page");
        return;
    }
    size_t page = filter->has_page_size && filter->page_size? filter->page_size: PAGE_DEFAULT;
    if (page > PAGE_MAX)
        page = PAGE_MAX;
    s_listing_t listing = { self, result, page, 0, "" };
    if (sessiondb_list (self->db, filter, filter->page_token, page + 1, s_list_row, &listing) < 0) {
        reaper_fail (result, EP__STATUS__CODE__UNAVAILABLE, "cannot read sessions.db now; retry");
        return;
    }
    if (listing.rows > page)
        result->reply.next_page_token = (char *) ep_owned_add (result->owned, strdup (listing.last), free);
}
