/*  cli_rpc.h: one command's connection to a service's API.

    Every command that calls a service does the same things: load the
    operator's CURVE certificate (or --cert) and the service's public key
    (or --server-key), connect on first use, call with a fresh request id,
    and say in one line why nothing came back or why the service said no.
    The messages name the flag and environment variable to check, so they
    are described once per service by a cli_service_t.
*/
#ifndef CLI_RPC_H_INCLUDED
#define CLI_RPC_H_INCLUDED

#include "cli.h"
#include "cli_table.h"
#include "common.pb-c.h"

//  The service a command talks to, as its messages name it.
typedef struct {
    const char *label;          //  "the model", "the reaper": "cannot read <label>'s public certificate"
    const char *key_name;       //  "model": its public key is curve/<key_name>.cert in the keys dir
    const char *address_flag;   //  "--model-api"
    const char *address_env;    //  "EDGEPLANE_MODEL_API"
    const char *key_help;       //  --server-key's help: "The model service's public certificate."
    const char *attempts_help;  //  --attempts's help, NULL for "Attempts before giving up."
} cli_service_t;

//  The flags every command that calls a service takes.
typedef struct {
    char *cert_path;            //  --cert, NULL for curve/operator.cert_secret
    char *server_key_path;      //  --server-key, NULL for curve/<key_name>.cert
    int64_t timeout_ms;         //  --timeout, per attempt
    int64_t attempts;           //  --attempts
    char key_default [96];      //  --server-key's default, as --help shows it
} cli_rpc_flags_t;

//  Writes the options --cert, --server-key, --timeout and --attempts for
//  service into opts (room for 4), their values going to *flags (which
//  must outlive the parse). Returns how many it wrote.
size_t
    cli_rpc_options (ep_opt_t *opts, cli_rpc_flags_t *flags, const cli_service_t *service);

typedef struct _cli_rpc_t cli_rpc_t;

//  A connection-to-be (nothing is read or connected until the first call)
//  with the flags' certificates, timeout and attempts.
cli_rpc_t *
    cli_rpc_open (const char *command, const cli_service_t *service, const char *endpoint,
                  const char *keys_dir, const cli_rpc_flags_t *flags);

//  The same with each value given.
//  cert_path and server_key_path may be NULL for the keys dir's defaults;
//  every string is borrowed and must outlive the object.
cli_rpc_t *
    cli_rpc_new (const char *command, const cli_service_t *service, const char *endpoint,
                 const char *keys_dir, const char *cert_path, const char *server_key_path,
                 int timeout_ms, int attempts);

void
    cli_rpc_destroy (cli_rpc_t **self_p);

//  Sends request, whose request id field is *request_id_p (set for the
//  call, cleared after), and returns the reply of type reply_desc whatever
//  its status; or NULL after saying why nothing came back (unless quiet).
ProtobufCMessage *
    cli_rpc_send (cli_rpc_t *self, ProtobufCMessage *request, char **request_id_p,
                  const ProtobufCMessageDescriptor *reply_desc, bool quiet);

//  cli_rpc_send, and a reply with status OK (or, with exist_ok, also
//  ALREADY_EXISTS); otherwise NULL after saying why in one line. Every
//  reply type has its status in a field named status.
ProtobufCMessage *
    cli_rpc_call (cli_rpc_t *self, ProtobufCMessage *request, char **request_id_p,
                  const ProtobufCMessageDescriptor *reply_desc, bool exist_ok);

//  Every item a paged list returned, in order (they point into the
//  replies it holds).
typedef struct _cli_pages_t cli_pages_t;

//  Pages through a list: sends request until the last page or limit items
//  (0: all). Before each send it sets the fields page_size (page_size, or
//  fewer if limit leaves fewer) and page_token (NULL, then the previous
//  page's token) of filter, the list filter in request, as every list
//  request has them. The replies, of type reply_desc, hold the page's items
//  in their repeated message field named items ("sessions"), with status
//  and next_page_token fields as every list reply has. Returns the items,
//  or NULL after saying why nothing came back or what a status that is not
//  OK means (as cli_rpc_send and cli_status_fail say it).
cli_pages_t *
    cli_rpc_pages (cli_rpc_t *self, ProtobufCMessage *request, char **request_id_p, ProtobufCMessage *filter,
                   uint32_t page_size, uint64_t limit, const ProtobufCMessageDescriptor *reply_desc,
                   const char *items);

//  cli_rpc_pages, then prints the items as list says (cli_list_print).
//  Returns CLI_OK, or CLI_FAIL after saying why.
int
    cli_rpc_list (cli_rpc_t *self, ProtobufCMessage *request, char **request_id_p, ProtobufCMessage *filter,
                  uint32_t page_size, uint64_t limit, const ProtobufCMessageDescriptor *reply_desc,
                  const char *items, const cli_list_t *list, bool json);

void
    cli_pages_destroy (cli_pages_t **self_p);

//  The items, in order; cast to the item type (e.g. Ep__Session **).
ProtobufCMessage **
    cli_pages_items (cli_pages_t *self);

size_t
    cli_pages_size (cli_pages_t *self);

//  Says in one line what a non-OK status means ("NOT_FOUND: router r1 ...",
//  control characters blanked). Returns CLI_FAIL.
int
    cli_status_fail (const char *command, const Ep__Status *status);

//  True if status is present and not OK.
bool
    cli_status_failed (const Ep__Status *status);

#endif
