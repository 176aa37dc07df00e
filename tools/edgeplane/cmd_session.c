/*  edgeplane session list|get|liveness, and the sessions part of
    `edgeplane router delete`: the reaper's API from the command line.

    Requests go to the reaper (EDGEPLANE_REAPER_API) under the operator's
    CURVE certificate; reads are safe to retry. Output is an aligned table,
    or with --json the sessions as ep_message_json renders them (the proto
    field names). After a router deletion the reaper may not have applied
    the model revision yet: the cleanup query names that revision and is
    retried until the reaper has seen it.
*/
#include "cli_rpc.h"
#include "cli_table.h"
#include "ep_event_json.h"
#include "sessions.pb-c.h"

#define PAGE_SIZE       500         //  sessions per list request
#define POLL_MS         200         //  between cleanup status queries

static const cli_service_t s_reaper_service = {
    "the reaper", "reaper", "--reaper-api", "EDGEPLANE_REAPER_API", "The reaper's public certificate.", NULL };

//  A connection to the reaper.
typedef struct {
    const char *command;        //  "session list", for messages
    cli_rpc_t *rpc;             //  to the reaper
} s_reaper_t;

static s_reaper_t
s_reaper_open (const char *command, const ep_common_opts_t *common, const char *cert_path,
               const char *server_key_path, int timeout_ms, int attempts)
{
    return (s_reaper_t) { .command = command,
                          .rpc = cli_rpc_new (command, &s_reaper_service, common->reaper_api,
                                              common->keys_dir, cert_path, server_key_path,
                                              timeout_ms, attempts) };
}

static void
s_reaper_close (s_reaper_t *self)
{
    cli_rpc_destroy (&self->rpc);
}

//  Sends request; returns the reply whatever its status, or NULL after
//  saying why nothing came back (quiet: say nothing).
static Ep__SessionReply *
s_send (s_reaper_t *self, Ep__SessionRequest *request, bool quiet)
{
    return (Ep__SessionReply *) cli_rpc_send (self->rpc, &request->base, &request->request_id,
                                              &ep__session_reply__descriptor, quiet);
}

//  Says what a non-OK status means, in one line. Returns CLI_FAIL.
static int
s_status_fail (s_reaper_t *self, const Ep__Status *status)
{
    return cli_status_fail (self->command, status);
}

//  s_send, and a reply with status OK, or NULL after saying why.
static Ep__SessionReply *
s_call (s_reaper_t *self, Ep__SessionRequest *request)
{
    return (Ep__SessionReply *) cli_rpc_call (self->rpc, &request->base, &request->request_id,
                                              &ep__session_reply__descriptor, false);
}

//  ---------------------------------------------------------------------
//  Output

static const char *
s_enum (const ProtobufCEnumDescriptor *descriptor, int value, size_t prefix)
{
    const ProtobufCEnumValue *found = protobuf_c_enum_descriptor_get_value (descriptor, value);
    return found? found->name + prefix: "-";
}

static void
s_time (cli_table_t *table, int64_t ms, bool set)
{
    char buf [40];
    cli_table_add (table, set && ms > 0? ep_rfc3339 (ms, buf, sizeof buf): "-");
}

//  An enum value's name in lower case, less prefix characters: "DIAL" ->
//  "dial".
static void
s_lower (cli_table_t *table, const ProtobufCEnumDescriptor *descriptor, int value, size_t prefix)
{
    const char *found = s_enum (descriptor, value, 0);
    char *name = strdup (strlen (found) > prefix? found + prefix: found);
    for (char *p = name; *p; p++)
        *p = (char) tolower ((unsigned char) *p);
    cli_table_add (table, name);
    free (name);
}

static void
s_row (cli_table_t *table, const ProtobufCMessage *item)
{
    const Ep__Session *session = (const Ep__Session *) item;
    cli_table_add (table, session->id? session->id: "-");
    cli_table_add (table, session->router_id? session->router_id: "-");
    cli_table_add (table, session->identity_id? session->identity_id: "-");
    cli_table_add (table, session->service_id? session->service_id: "-");
    s_lower (table, &ep__session_type__descriptor, session->type, 0);
    s_lower (table, &ep__session_state__descriptor, session->state, 0);
    s_time (table, session->created_at_ms, session->has_created_at_ms);
    s_time (table, session->last_seen_ms, session->has_last_seen_ms);
    cli_table_addf (table, "%llu", (unsigned long long) session->bytes_rx);
    cli_table_addf (table, "%llu", (unsigned long long) session->bytes_tx);
    //  "CRITICALITY_HIGH" -> "high"
    s_lower (table, &ep__criticality__descriptor, session->criticality, strlen ("CRITICALITY_"));
    cli_table_addf (table, "%u", session->priority);
    cli_table_add (table, session->close_reason? session->close_reason: "-");
}

static const char *s_header [] = { "ID", "ROUTER", "IDENTITY", "SERVICE", "TYPE", "STATE", "CREATED",
                                   "LAST SEEN", "RX", "TX", "CRITICALITY", "PRIORITY", "REASON" };
static const cli_list_t s_sessions = { s_header, EP_COUNT (s_header), s_row, NULL };

//  A duration in seconds, "-" if unknown.
static void
s_seconds (cli_table_t *table, int64_t ms, bool known)
{
    if (known && ms > 0)
        cli_table_addf (table, "%.1fs", ms / 1000.0);
    else
        cli_table_add (table, "-");
}

static void
s_router_row (cli_table_t *table, const ProtobufCMessage *item)
{
    const Ep__RouterLiveness *router = (const Ep__RouterLiveness *) item;
    cli_table_add (table, router->router_id? router->router_id: "-");
    cli_table_add (table, router->online? "yes": "no");
    cli_table_addf (table, "%llu", (unsigned long long) router->sessions);
    cli_table_addf (table, "%u", router->samples);
    s_seconds (table, router->interval_ms, router->has_interval_ms);
    s_seconds (table, router->evasive_ms, router->has_evasive_ms);
    s_seconds (table, router->expire_ms, router->has_expire_ms);
    cli_table_add (table, router->learnt? "learnt": "fixed");
}

static const char *s_router_header [] = { "ROUTER", "ONLINE", "SESSIONS", "INTERVALS", "P99 INTERVAL",
                                          "EVASIVE", "EXPIRE", "THRESHOLDS" };
static const cli_list_t s_routers = { s_router_header, EP_COUNT (s_router_header), s_router_row, NULL };

//  ---------------------------------------------------------------------
//  session list | get | liveness

static const char *s_states [] = { "active", "terminating", "closed", NULL };

static int
s_list (s_reaper_t *reaper, const char *router, const char *identity, const char *service,
        const char *state, int64_t limit, bool json)
{
    Ep__SessionFilter filter = EP__SESSION_FILTER__INIT;
    filter.router_id = (char *) router;
    filter.identity_id = (char *) identity;
    filter.service_id = (char *) service;
    for (int i = 0; state && s_states [i]; i++)
        if (streq (state, s_states [i])) {
            filter.has_state = true;
            filter.state = (Ep__SessionState) (i + 1);
        }
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.op_case = EP__SESSION_REQUEST__OP_LIST;
    request.list = &filter;
    return cli_rpc_list (reaper->rpc, &request.base, &request.request_id, &filter.base, PAGE_SIZE,
                         (uint64_t) limit, &ep__session_reply__descriptor, "sessions", &s_sessions, json);
}

static int
s_get (s_reaper_t *reaper, const char *id, bool json)
{
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.op_case = EP__SESSION_REQUEST__OP_GET_ID;
    request.get_id = (char *) id;
    Ep__SessionReply *reply = s_call (reaper, &request);
    if (!reply)
        return CLI_FAIL;
    int rc = CLI_OK;
    if (reply->n_sessions < 1)
        rc = cli_fail (reaper->command, "the reaper's reply holds no session (a bug in the reaper)");
    else
        cli_list_print_one (&s_sessions, &reply->sessions [0]->base, json);
    ep__session_reply__free_unpacked (reply, NULL);
    return rc;
}

//  One router's liveness thresholds, or every router's, page by page.
static int
s_liveness (s_reaper_t *reaper, const char *router, int64_t limit, bool json)
{
    Ep__LivenessQuery query = EP__LIVENESS_QUERY__INIT;
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.op_case = EP__SESSION_REQUEST__OP_LIVENESS;
    request.liveness = &query;
    if (!router)
        return cli_rpc_list (reaper->rpc, &request.base, &request.request_id, &query.base, PAGE_SIZE,
                             (uint64_t) limit, &ep__session_reply__descriptor, "routers", &s_routers, json);
    query.router_id = (char *) router;
    Ep__SessionReply *reply = s_call (reaper, &request);
    if (!reply)
        return CLI_FAIL;
    int rc = CLI_OK;
    if (reply->n_routers < 1)
        rc = cli_fail (reaper->command, "the reaper's reply holds no router (a bug in the reaper)");
    else
        cli_list_print_one (&s_routers, &reply->routers [0]->base, json);
    ep__session_reply__free_unpacked (reply, NULL);
    return rc;
}

static void
s_usage (const void *arg)
{
    (void) arg;
    printf ("Usage: edgeplane session SUBCOMMAND [ARGS...] [OPTIONS]\n\n"
            "Subcommands:\n"
            "  list         List sessions, every page, ordered by id (filters: --router, --identity,\n"
            "               --service, --state).\n"
            "  get ID       Show one session.\n"
            "  liveness     Each router's session thresholds (evasive, expire), learnt from its\n"
            "               heartbeat cadence or fixed, by router id (--router: one).\n\n"
            "(edgeplane session SUBCOMMAND --help for its options)\n");
}

int
cli_session (int argc, char **argv)
{
    bool list = argc >= 2 && streq (argv [1], "list");
    bool get = argc >= 2 && streq (argv [1], "get");
    bool liveness = argc >= 2 && streq (argv [1], "liveness");
    if (!list && !get && !liveness)
        return cli_no_subcommand ("session", argc, argv, "list, get or liveness", s_usage, NULL);
    static char *router, *identity, *service, *state;
    static int64_t limit;
    static bool json;
    static cli_rpc_flags_t rpc;
    ep_opt_t filters [] = {
        { .name = "router", .type = EP_OPT_ID, .str = &router, .help = "Only sessions on this router." },
        { .name = "identity", .type = EP_OPT_ID, .str = &identity, .help = "Only sessions of this identity." },
        { .name = "service", .type = EP_OPT_ID, .str = &service, .help = "Only sessions of this service." },
        { .name = "state", .type = EP_OPT_ENUM, .words = s_states, .str = &state,
          .help = "Only sessions in this state: active, terminating or closed." },
        { .name = "limit", .def = "0", .type = EP_OPT_INT, .num = &limit, .min = 0, .max = INT64_MAX,
          .help = "At most this many (0: all, every page)." },
    };
    ep_opt_t opts [EP_COUNT (filters) + 5];
    size_t nopts = 0;
    for (size_t i = 0; list && i < EP_COUNT (filters); i++)
        opts [nopts++] = filters [i];
    if (liveness) {
        opts [nopts++] = (ep_opt_t) { .name = "router", .type = EP_OPT_ID, .str = &router,
                                      .help = "Only this router." };
        opts [nopts++] = filters [EP_COUNT (filters) - 1];             //  --limit
    }
    opts [nopts++] = (ep_opt_t) { .name = "json", .def = "false", .type = EP_OPT_BOOL, .flag = &json,
                                  .help = liveness? "Print JSON (routers by their proto field names) instead of a table."
                                                  : "Print JSON (sessions by their proto field names) instead of a table." };
    nopts += cli_rpc_options (opts + nopts, &rpc, &s_reaper_service);
    ep_common_opts_t common;
    const char *command = list? "session list": get? "session get": "session liveness";
    const char *about = list? "List sessions, every page, ordered by id."
                      : get? "Show one session."
                      : "Each router's session thresholds: evasive (probe) and expire (reap), learnt from its "
                        "heartbeat cadence (--liveness adaptive) or the fixed --evasive and --expire.";
    ep_config_t *config = cli_parse (command, about, get? "ID": NULL, &common, opts, nopts, argc - 1, argv + 1);
    s_reaper_t reaper = s_reaper_open (command, &common, rpc.cert_path, rpc.server_key_path,
                                       (int) rpc.timeout_ms, (int) rpc.attempts);
    int rc;
    if (get && ep_config_argc (config) != 1) {
        fprintf (stderr, "edgeplane session get: expected one session ID, e.g. `edgeplane session get s-4c1d9a`\n");
        rc = CLI_USAGE;
    }
    else
    if (get)
        rc = s_get (&reaper, ep_config_argv (config) [0], json);
    else
    if (liveness)
        rc = s_liveness (&reaper, router, limit, json);
    else
        rc = s_list (&reaper, router, identity, service, state, limit, json);
    s_reaper_close (&reaper);
    ep_config_destroy (&config);
    return rc;
}

//  ---------------------------------------------------------------------
//  After `edgeplane router delete`

//  The job of router that the deletion at revision started, from reply;
//  NULL if none (the router had no open session).
static Ep__CleanupJob *
s_job_of (Ep__SessionReply *reply, uint64_t revision)
{
    for (size_t i = 0; i < reply->n_jobs; i++)
        if (reply->jobs [i]->revision >= revision)
            return reply->jobs [i];
    return NULL;
}

//  Asks for router's cleanup jobs until the reaper has seen revision;
//  NULL (said why, unless quiet) if it did not answer by deadline.
static Ep__SessionReply *
s_cleanup (s_reaper_t *reaper, const char *router, uint64_t revision, int64_t deadline, bool quiet)
{
    Ep__CleanupQuery query = EP__CLEANUP_QUERY__INIT;
    query.router_id = (char *) router;
    query.has_min_revision = true;
    query.min_revision = revision;
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.op_case = EP__SESSION_REQUEST__OP_CLEANUP;
    request.cleanup = &query;
    while (true) {
        Ep__SessionReply *reply = s_send (reaper, &request, quiet);
        if (!reply)
            return NULL;
        Ep__Status__Code code = reply->status? reply->status->code: EP__STATUS__CODE__OK;
        if (code == EP__STATUS__CODE__OK)
            return reply;
        if (code != EP__STATUS__CODE__UNAVAILABLE || ep_mono_ms () >= deadline) {
            if (!quiet)
                s_status_fail (reaper, reply->status);
            ep__session_reply__free_unpacked (reply, NULL);
            return NULL;
        }
        ep__session_reply__free_unpacked (reply, NULL);
        zclock_sleep (POLL_MS);     //  the reaper catches up with the model
    }
}

//  "50000 router-deleted, 50000 forced" into a JSON object and a line.
static char *
s_counts (Ep__CleanupJob *job, json_t *object)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    for (size_t i = 0; i < job->n_closed; i++) {
        fprintf (out, "%s%llu %s", i? ", ": "", (unsigned long long) job->closed [i]->count,
                 job->closed [i]->reason);
        json_object_set_new (object, job->closed [i]->reason, json_integer ((json_int_t) job->closed [i]->count));
    }
    if (job->n_closed == 0)
        fprintf (out, "none");
    fclose (out);
    return text;
}

int
cli_router_sessions (const char *command, const ep_common_opts_t *common, const char *cert_path,
                     const char *router_id, uint64_t revision, bool wait, int64_t wait_timeout_ms,
                     json_t *json)
{
    //  Without --wait this is a courtesy: a short budget, and no failure
    //  if the reaper does not answer (the cleanup happens anyway).
    s_reaper_t reaper = s_reaper_open (command, common, cert_path, NULL, 2000, 1);
    int64_t deadline = ep_mono_ms () + (wait? wait_timeout_ms: 10000);
    Ep__SessionReply *reply = s_cleanup (&reaper, router_id, revision, deadline, !wait);
    if (!reply) {
        s_reaper_close (&reaper);
        if (wait)
            return CLI_FAIL;
        fprintf (stderr, "edgeplane %s: the reaper (%s) did not say how many sessions of %s it is "
                 "cleaning up; they are cleaned up anyway (see `edgeplane session list --router %s`)\n",
                 command, common->reaper_api, router_id, router_id);
        return CLI_OK;
    }
    Ep__CleanupJob *job = s_job_of (reply, revision);
    uint64_t scheduled = job? job->scheduled: 0;
    char deadline_text [40] = "";
    if (job)
        ep_rfc3339 (job->deadline_ms, deadline_text, sizeof deadline_text);
    if (json) {
        json_object_set_new (json, "sessions_scheduled", json_integer ((json_int_t) scheduled));
        if (job)
            json_object_set_new (json, "cleanup_job", json_string (job->id));
    }
    else
    if (job)
        printf ("%llu sessions scheduled for cleanup (job %s, forced at %s if the router does not close them)\n",
                (unsigned long long) scheduled, job->id, deadline_text);
    else
        printf ("0 sessions scheduled for cleanup (the router had none open)\n");
    char job_id [80];
    snprintf (job_id, sizeof job_id, "%s", job? job->id: "");
    bool done = !job || job->done;
    int rc = CLI_OK;
    while (wait && !done) {
        ep__session_reply__free_unpacked (reply, NULL);
        if (ep_mono_ms () >= deadline) {
            reply = NULL;
            rc = cli_fail (command, "the cleanup of %s's sessions is not done after %lld ms: "
                           "see `edgeplane session list --router %s --state terminating`",
                           router_id, (long long) wait_timeout_ms, router_id);
            break;
        }
        zclock_sleep (POLL_MS);     //  polling the job's progress
        reply = s_cleanup (&reaper, router_id, revision, deadline, false);
        if (!reply) {
            rc = CLI_FAIL;
            break;
        }
        job = NULL;
        for (size_t i = 0; i < reply->n_jobs; i++)
            if (streq (reply->jobs [i]->id, job_id))
                job = reply->jobs [i];
        done = !job || job->done;
    }
    if (wait && rc == CLI_OK) {
        json_t *closed = json_object ();
        char *text = job? s_counts (job, closed): strdup ("none");
        if (json)
            json_object_set_new (json, "sessions_closed", closed);
        else {
            printf ("sessions closed: %s\n", text);
            json_decref (closed);
        }
        free (text);
    }
    if (reply)
        ep__session_reply__free_unpacked (reply, NULL);
    s_reaper_close (&reaper);
    return rc;
}
