/*  edgeplane: the command-line tool. Dispatches to one function per
    command; see cli.h. */
#include "cli.h"

typedef struct {
    const char *name;           //  command word
    int (*run) (int argc, char **argv);
    const char *help;           //  one line for the overview
} s_command_t;

static const s_command_t s_commands [] = {
    { "pki",    cli_pki,    "Keys and certificates: init, issue, revoke, issue-curve." },
    { "health", cli_health, "Check a service's /healthz or /readyz URL (exit 0 when it answers 200)." },
    { "up",     cli_up,     "Run the whole control plane on this machine (--demo: with a simulated fleet)." },
    { "status", cli_status, "Health, version and key figures of each service started by `edgeplane up`." },
    { "events", cli_events, "Subscribe to the event bus and print events (--json, --exec CMD)." },
    { "console", cli_console, "Where the operator console is, and its access token: console url." },
    { "connections", cli_connections, "Control-channel connections across every watchdog instance." },
    { "shards", cli_shards, "Which instance owns which shards (sharded services in their etcd mode)." },
    { "router", cli_entity, "Routers in the model: create, get, list, update, delete." },
    { "service", cli_entity, "Services in the model: create, get, list, update, delete." },
    { "identity", cli_entity, "Identities in the model: create, get, list, update, delete." },
    { "controller", cli_entity, "Controllers in the model: create, get, list, update, delete." },
    { "model", cli_model, "The model: status (revision, generation; --digest: every entity's digest); txn FILE (writes, one revision)." },
    { "backup", cli_backup, "Back up the model to FILE on the model service's machine (model.db copy, or etcd snapshot)." },
    { "migrate", cli_migrate, "Copy the embedded model (model.db) into an empty etcd prefix: --to etcd." },
    { "session", cli_session, "Sessions the reaper tracks: list, get, liveness (thresholds per router)." },
    { "terminator", cli_terminator, "Terminators (operators read): list, get." },
};

static void
s_overview (FILE *out)
{
    fprintf (out, "edgeplane %s: control plane for fleets of edge routers.\n\n"
                  "Usage: edgeplane COMMAND [ARGS...]   (edgeplane COMMAND --help for more)\n\n"
                  "Commands:\n", EP_VERSION);
    for (size_t i = 0; i < EP_COUNT (s_commands); i++)
        fprintf (out, "  %-11s %s\n", s_commands [i].name, s_commands [i].help);
}

int
main (int argc, char **argv)
{
    if (argc < 2) {
        s_overview (stderr);
        return CLI_USAGE;
    }
    if (streq (argv [1], "--help") || streq (argv [1], "-h") || streq (argv [1], "help")) {
        s_overview (stdout);
        return CLI_OK;
    }
    if (streq (argv [1], "--version") || streq (argv [1], "version")) {
        printf ("edgeplane %s\n", EP_VERSION);
        return CLI_OK;
    }
    for (size_t i = 0; i < EP_COUNT (s_commands); i++)
        if (streq (argv [1], s_commands [i].name))
            return s_commands [i].run (argc - 1, argv + 1);
    fprintf (stderr, "edgeplane: unknown command \"%s\"; run `edgeplane --help` for the list\n", argv [1]);
    return CLI_USAGE;
}
