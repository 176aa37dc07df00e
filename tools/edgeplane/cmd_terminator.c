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
    cli_rpc_flags_t rpc_flags;  //  --cert, --server-key, --timeout, --attempts
    bool json;                  //  --json
    char *service;              //  list --service
    char *router;               //  list --router
    char *state;                //  list --state
    int64_t limit;              //  list --limit, 0 = all
    cli_rpc_t *rpc;             //  to the terminator service (connects on its first call)
} s_cmd_t;

static const char *s_states [] = { "establishing", "established", "deleting", "deleted", "failed", NULL };
static const char *s_state_names [] = { "-", "establishing", "established", "deleting", "deleted", "failed" };
static const char *s_precedences [] = { "default", "required", "failed" };

static const cli_service_t s_terminators = {
    "the terminator service", "terminators", "--terminators-api", "EDGEPLANE_TERMINATORS_API",
    "The terminator service's public certificate.", NULL };

static void
s_cmd_destroy (s_cmd_t *self)
{
    cli_rpc_destroy (&self->rpc);
    ep_config_destroy (&self->config);
}

//  Sends request; returns the reply if its status is OK, otherwise says why
//  in one line and returns NULL.
static Ep__TerminatorReply *
s_call (s_cmd_t *self, Ep__TerminatorRequest *request)
{
    return (Ep__TerminatorReply *) cli_rpc_call (self->rpc, &request->base, &request->request_id,
                                                 &ep__terminator_reply__descriptor, false);
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
    Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
    request.op_case = EP__TERMINATOR_REQUEST__OP_LIST;
    request.list = &filter;
    return cli_rpc_list (self->rpc, &request.base, &request.request_id, &filter.base, PAGE_SIZE,
                         (uint64_t) self->limit, &ep__terminator_reply__descriptor, "terminators",
                         &s_terminator_list, self->json);
}

static void
s_usage (const void *arg)
{
    (void) arg;
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
    if (!list && !get)
        return cli_no_subcommand ("terminator", argc, argv, "list or get", s_usage, NULL);
    s_cmd_t self = { 0 };
    snprintf (self.command, sizeof self.command, "terminator %s", argv [1]);
    ep_opt_t opts [9] = {
        { .name = "json", .def = "false", .type = EP_OPT_BOOL, .flag = &self.json,
          .help = "Print JSON (terminators by their proto field names) instead of a table." },
    };
    cli_rpc_options (opts + 1, &self.rpc_flags, &s_terminators);
    const ep_opt_t filters [] = {
        { .name = "service", .type = EP_OPT_ID, .str = &self.service,
          .help = "Only terminators of this service id." },
        { .name = "router", .type = EP_OPT_ID, .str = &self.router,
          .help = "Only terminators of this router id." },
        { .name = "state", .type = EP_OPT_ENUM, .words = s_states, .str = &self.state,
          .help = "Only terminators in this state: establishing, established, deleting, deleted, failed." },
        { .name = "limit", .def = "0", .type = EP_OPT_INT, .num = &self.limit, .min = 0, .max = INT64_MAX,
          .help = "At most this many (0: all, every page)." },
    };
    memcpy (opts + 5, filters, sizeof filters);
    int rc = CLI_OK;
    self.config = cli_parse (self.command,
                             list? "List terminators, filtered by service, router and state."
                                 : "Show one terminator.",
                             list? NULL: "ID", &self.common, opts, list? EP_COUNT (opts): 5,
                             argc - 1, argv + 1);
    self.rpc = cli_rpc_open (self.command, &s_terminators, self.common.terminators_api, self.common.keys_dir,
                             &self.rpc_flags);
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
