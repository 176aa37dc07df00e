/*  edgeplane terminator list|get: the terminator service's API from the
    command line, for operators (read only: routers change terminators
    through the watchdog).

    Requests go with the rpc client under the operator's CURVE certificate;
    list pages through every page (or --limit). Output is an aligned table,
    or with --json the terminators as ep_message_json renders them (proto
    field names, as in docs/terminators.md). Failures print the reply's
    status in one line and exit 1; usage errors exit 2.
*/
#include "cli_rpc.h"
#include "cli_table.h"
#include "terminators.pb-c.h"

#define PAGE_SIZE 500

//  One invocation: its flags and its connection.
typedef struct {
    char command [32];          //  "terminator list", for messages
    ep_config_t *config;        //  the parser; owns the flags' strings
    ep_common_opts_t common;    //  shared options (keys dir, API addresses, ...)
    char *cert_path;            //  --cert
    char *server_key_path;      //  --server-key
    bool json;                  //  --json
    int64_t timeout_ms;         //  --timeout, per attempt
    int64_t attempts;           //  --attempts
    char *service;              //  list --service
    char *router;               //  list --router
    char *state;                //  list --state
    int64_t limit;              //  list --limit, 0 = all
    cli_rpc_t *rpc;             //  to the terminators service, once needed
} s_cmd_t;

static const char *s_states [] = { "establishing", "established", "deleting", "deleted", "failed", NULL };
static const char *s_state_names [] = { "-", "establishing", "established", "deleting", "deleted", "failed" };
static const char *s_precedences [] = { "default", "required", "failed" };

static const cli_service_t s_terminators = {
    "the terminator service", "terminators", "--terminators-api", "EDGEPLANE_TERMINATORS_API" };

static void
s_cmd_destroy (s_cmd_t *self)
{
    cli_rpc_destroy (&self->rpc);
    ep_config_destroy (&self->config);
}

//  The connection to the terminator service, made on first use.
static cli_rpc_t *
s_rpc (s_cmd_t *self)
{
    if (!self->rpc)
        self->rpc = cli_rpc_new (self->command, &s_terminators, self->common.terminators_api,
                                 self->common.keys_dir, self->cert_path, self->server_key_path,
                                 (int) self->timeout_ms, (int) self->attempts);
    return self->rpc;
}

//  Sends request; returns the reply if its status is OK, otherwise says why
//  in one line and returns NULL.
static Ep__TerminatorReply *
s_call (s_cmd_t *self, Ep__TerminatorRequest *request)
{
    Ep__TerminatorReply *reply = (Ep__TerminatorReply *) cli_rpc_send (
        s_rpc (self), &request->base, &request->request_id, &ep__terminator_reply__descriptor, false);
    if (reply && cli_status_failed (reply->status)) {
        cli_status_fail (self->command, reply->status);
        ep__terminator_reply__free_unpacked (reply, NULL);
        return NULL;
    }
    return reply;
}

static void
s_row (cli_table_t *table, const ProtobufCMessage *item)
{
    const Ep__Terminator *t = (const Ep__Terminator *) item;
    cli_table_add (table, t->id? t->id: "");
    cli_table_add (table, t->service_id? t->service_id: "-");
    cli_table_add (table, t->router_id? t->router_id: "-");
    cli_table_add (table, (unsigned) t->state < EP_COUNT (s_state_names)? s_state_names [t->state]: "?");
    cli_table_add (table, t->router_online? "yes": "no");
    cli_table_add (table, (unsigned) t->precedence < EP_COUNT (s_precedences)? s_precedences [t->precedence]: "?");
    cli_table_addf (table, "%u", t->cost);
    cli_table_addf (table, "%llu", (unsigned long long) t->generation);
    cli_table_add (table, t->last_error && *t->last_error? t->last_error: "-");
}

//  Terminators as a table (the header even when there are none) or JSON.
static const char *s_header [] = { "ID", "SERVICE", "ROUTER", "STATE", "ONLINE", "PRECEDENCE",
                                   "COST", "GENERATION", "LAST ERROR" };
static const cli_list_t s_terminator_list = { s_header, EP_COUNT (s_header), s_row, NULL };

static int
s_get (s_cmd_t *self, const char *id)
{
    Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
    request.op_case = EP__TERMINATOR_REQUEST__OP_GET_ID;
    request.get_id = (char *) id;
    Ep__TerminatorReply *reply = s_call (self, &request);
    if (!reply)
        return CLI_FAIL;
    int rc = CLI_OK;
    if (reply->n_terminators < 1)
        rc = cli_fail (self->command, "the reply holds no terminator (a bug in the terminator service)");
    else
        cli_list_print_one (&s_terminator_list, &reply->terminators [0]->base, self->json);
    ep__terminator_reply__free_unpacked (reply, NULL);
    return rc;
}

//  A list reply's page: its terminators.
static cli_page_t
s_page (ProtobufCMessage *message)
{
    Ep__TerminatorReply *reply = (Ep__TerminatorReply *) message;
    return (cli_page_t) { reply->status, (ProtobufCMessage **) reply->terminators, reply->n_terminators,
                          reply->next_page_token };
}

static int
s_list (s_cmd_t *self)
{
    Ep__TerminatorFilter filter = EP__TERMINATOR_FILTER__INIT;
    filter.service_id = self->service;
    filter.router_id = self->router;
    if (self->state) {
        for (int i = 0; s_states [i]; i++)
            if (strcasecmp (self->state, s_states [i]) == 0) {
                filter.has_state = true;
                filter.state = (Ep__TerminatorState) (i + 1);
            }
    }
    filter.has_page_size = true;
    Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
    request.op_case = EP__TERMINATOR_REQUEST__OP_LIST;
    request.list = &filter;
    cli_pages_t *pages = cli_rpc_pages (s_rpc (self), &request.base, &request.request_id,
                                        &filter.page_size, &filter.page_token, PAGE_SIZE,
                                        (uint64_t) self->limit, &ep__terminator_reply__descriptor, s_page);
    if (!pages)
        return CLI_FAIL;
    cli_list_print (&s_terminator_list, cli_pages_items (pages), cli_pages_size (pages), self->json);
    cli_pages_destroy (&pages);
    return CLI_OK;
}

static void
s_usage (void)
{
    printf ("Usage: edgeplane terminator SUBCOMMAND [ARGS...] [OPTIONS]\n\n"
            "Subcommands:\n"
            "  list         List terminators (live ones unless --state), every page, ordered by id.\n"
            "  get ID       Show one terminator (deleted ones too, while their tombstone lasts).\n"
            "\n(edgeplane terminator SUBCOMMAND --help for its options)\n");
}

int
cli_terminator (int argc, char **argv)
{
    bool list = argc >= 2 && streq (argv [1], "list");
    bool get = argc >= 2 && streq (argv [1], "get");
    if (!list && !get) {
        if (argc >= 2 && (streq (argv [1], "--help") || streq (argv [1], "-h") || streq (argv [1], "help"))) {
            s_usage ();
            return CLI_OK;
        }
        fprintf (stderr, "edgeplane terminator: %s%s%sexpected list or get (see edgeplane terminator --help)\n",
                 argc >= 2? "unknown subcommand \"": "", argc >= 2? argv [1]: "", argc >= 2? "\"; ": "");
        return CLI_USAGE;
    }
    s_cmd_t self = { 0 };
    snprintf (self.command, sizeof self.command, "terminator %s", argv [1]);
    ep_opt_t opts [] = {
        { .name = "json", .def = "false", .type = EP_OPT_BOOL, .flag = &self.json,
          .help = "Print JSON (terminators by their proto field names) instead of a table." },
        { .name = "cert", .type = EP_OPT_STRING, .str = &self.cert_path,
          .def_help = "$EDGEPLANE_KEYS_DIR/curve/operator.cert_secret",
          .help = "Our CURVE certificate (secret file), e.g. from `edgeplane pki issue-curve operator NAME`." },
        { .name = "server-key", .type = EP_OPT_STRING, .str = &self.server_key_path,
          .def_help = "$EDGEPLANE_KEYS_DIR/curve/terminators.cert",
          .help = "The terminator service's public certificate." },
        { .name = "timeout", .def = "3s", .type = EP_OPT_DURATION, .num = &self.timeout_ms,
          .min = 1, .max = 600000, .help = "How long to wait for each attempt's reply." },
        { .name = "attempts", .def = "3", .type = EP_OPT_INT, .num = &self.attempts,
          .min = 1, .max = 100, .help = "Attempts before giving up." },
        { .name = "service", .type = EP_OPT_ID, .str = &self.service,
          .help = "Only terminators of this service id." },
        { .name = "router", .type = EP_OPT_ID, .str = &self.router,
          .help = "Only terminators of this router id." },
        { .name = "state", .type = EP_OPT_ENUM, .words = s_states, .str = &self.state,
          .help = "Only terminators in this state: establishing, established, deleting, deleted, failed." },
        { .name = "limit", .def = "0", .type = EP_OPT_INT, .num = &self.limit, .min = 0, .max = INT64_MAX,
          .help = "At most this many (0: all, every page)." },
    };
    int rc = CLI_OK;
    self.config = cli_parse (self.command,
                             list? "List terminators, filtered by service, router and state."
                                 : "Show one terminator.",
                             list? NULL: "ID", &self.common, opts, list? EP_COUNT (opts): 5,
                             argc - 1, argv + 1);
    if (self.config) {
        int nargs = ep_config_argc (self.config);
        if (get && nargs != 1) {
            fprintf (stderr, "edgeplane terminator get: expected one ID, e.g. `edgeplane terminator get 3f9a...`\n");
            rc = CLI_USAGE;
        }
        else
            rc = list? s_list (&self): s_get (&self, ep_config_argv (self.config) [0]);
    }
    s_cmd_destroy (&self);
    return rc;
}
