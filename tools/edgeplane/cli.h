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

//  Exit codes: 0 success, 1 failure, 2 bad usage (as ep_config).
#define CLI_OK      0
#define CLI_FAIL    1
#define CLI_USAGE   2

int cli_pki (int argc, char **argv);
int cli_health (int argc, char **argv);
int cli_events (int argc, char **argv);
//  cmd_model.c: the model's entities, and backup.
int cli_router (int argc, char **argv);
int cli_service (int argc, char **argv);
int cli_identity (int argc, char **argv);
int cli_controller (int argc, char **argv);
int cli_backup (int argc, char **argv);
//  cmd_terminator.c: terminator list|get.
int cli_terminator (int argc, char **argv);

//  Parses a command's flags: the shared options (data dir, keys dir, bus
//  addresses, ...) plus opts. Returns 0, or an exit code to return now
//  (help shown: 0 via *exit_code; error: 2).
ep_config_t *
    cli_parse (const char *command, const char *description, const char *usage,
               ep_common_opts_t *common, const ep_opt_t *opts, size_t nopts,
               int argc, char **argv, int *exit_code);

//  Prints "edgeplane <command>: <message>" on stderr; returns CLI_FAIL.
int
    cli_fail (const char *command, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

#endif
