/*  cli.h: the edgeplane command-line tool's shared pieces.

    Every command is a function taking its own argv (argv [0] is the command
    name); it parses its flags with ep_config (so --help and error messages
    behave like every service's), returns the process exit code, and says
    what went wrong in one line on stderr.
*/
#ifndef CLI_H_INCLUDED
#define CLI_H_INCLUDED

#include "ep_prelude.h"
#include "ep_config.h"
#include "ep_subscriber.h"
#include <jansson.h>

//  Exit codes: 0 success, 1 failure, 2 bad usage (as ep_config).
#define CLI_OK      0
#define CLI_FAIL    1
#define CLI_USAGE   2

int cli_pki (int argc, char **argv);
int cli_health (int argc, char **argv);
int cli_events (int argc, char **argv);
int cli_up (int argc, char **argv);
int cli_status (int argc, char **argv);

//  GETs url within timeout_ms: 0 with the status and body (caller frees),
//  or -1 with the reason in err.
int
    cli_http_get (const char *url, int64_t timeout_ms, int *status, char **body,
                  char *err, size_t errlen);

//  cmd_connections.c: connections across every watchdog instance.
int cli_connections (int argc, char **argv);
//  cmd_shards.c: shard owners across the instances of a sharded service.
int cli_shards (int argc, char **argv);
//  cmd_model.c: the model's entities, and backup.
//  router, service, identity and controller: the kind is argv [0].
int cli_entity (int argc, char **argv);
int cli_backup (int argc, char **argv);
int cli_model (int argc, char **argv);
//  cmd_migrate.c: migrate --to etcd (the embedded model into etcd).
int cli_migrate (int argc, char **argv);
//  cmd_session.c: the reaper's sessions.
int cli_session (int argc, char **argv);
//  cmd_console.c: console url.
int cli_console (int argc, char **argv);

//  cmd_terminator.c: terminator list|get.
int cli_terminator (int argc, char **argv);

//  Parses a command's flags: the shared options (data dir, keys dir, bus
//  addresses, ...) into *common, plus opts. Returns the parsed config
//  (caller destroys). After printing --help it exits 0, after printing a
//  usage error 2, as every service does (ep_config_parse_or_exit).
ep_config_t *
    cli_parse (const char *command, const char *description, const char *usage,
               ep_common_opts_t *common, const ep_opt_t *opts, size_t nopts, int argc, char **argv);

//  For a command whose argv [1] named none of its subcommands: prints
//  usage (arg) and returns CLI_OK if it asked for help (--help, -h, help);
//  otherwise says what was expected ("list or get") and returns CLI_USAGE.
int
    cli_no_subcommand (const char *command, int argc, char **argv, const char *expected,
                       void (*usage) (const void *arg), const void *arg);

//  After `router delete` committed at revision: prints (or adds to json,
//  when not NULL) how many of router_id's sessions the reaper scheduled
//  for cleanup and, with wait, the final counts by close reason (waiting
//  up to wait_timeout_ms). Returns CLI_OK, or CLI_FAIL (said why) if wait
//  could not be honoured; without wait a silent reaper is only a warning.
int
    cli_router_sessions (const char *command, const ep_common_opts_t *common, const char *cert_path,
                         const char *router_id, uint64_t revision, bool wait, int64_t wait_timeout_ms,
                         json_t *json);

//  Loads the CURVE certificate at path or, if path is NULL, at
//  <keys_dir>/curve/<name> ("subscriber.cert_secret", "bus.cert"). NULL
//  after saying "cannot read <what> <file>: <hint>".
zcert_t *
    cli_cert_load (const char *command, const char *keys_dir, const char *path, const char *name,
                   const char *what, const char *hint);

//  The certificates a bus listener needs: ours (cert_path, or
//  <keys_dir>/curve/subscriber.cert_secret) and the bus public one
//  (bus_key_path, or <keys_dir>/curve/bus.cert). Returns 0, or -1 after
//  saying which could not be read (its --cert or --bus-key is the hint);
//  what was read is in *cert_p and *bus_p either way, for the caller to
//  destroy.
int
    cli_bus_certs (const char *command, const char *keys_dir, const char *cert_path, const char *bus_key_path,
                   zcert_t **cert_p, zcert_t **bus_p);

//  A subscriber to the bus at bus_sub (EDGEPLANE_BUS_SUB) with those
//  certificates, or NULL after saying the address is invalid.
ep_subscriber_t *
    cli_bus_subscriber (const char *command, const char *bus_sub, zcert_t *cert, zcert_t *bus);

//  Prints value as indented JSON on stdout and takes it (json_decref).
void
    cli_print_json (json_t *value);

//  Prints "edgeplane <command>: <message>" on stderr; returns CLI_FAIL.
int
    cli_fail (const char *command, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

#endif
