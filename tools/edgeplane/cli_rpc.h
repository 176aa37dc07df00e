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
#include "common.pb-c.h"

//  The service a command talks to, as its messages name it.
typedef struct {
    const char *label;          //  "the model", "the reaper": "cannot read <label>'s public certificate"
    const char *key_name;       //  "model": its public key is curve/<key_name>.cert in the keys dir
    const char *address_flag;   //  "--model-api"
    const char *address_env;    //  "EDGEPLANE_MODEL_API"
} cli_service_t;

typedef struct _cli_rpc_t cli_rpc_t;

//  A connection-to-be (nothing is read or connected until the first call).
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

//  A list reply's page, as a cli_page_fn finds it in the reply. items is
//  the reply's repeated message field cast to ProtobufCMessage ** (each
//  message starts with its base, which protobuf-c's own code relies on).
typedef struct {
    const Ep__Status *status;   //  the reply's status, NULL when absent (OK)
    ProtobufCMessage **items;   //  the page's items (the reply's repeated field)
    size_t n_items;             //  how many
    char *next_page_token;      //  more pages when set and not empty
} cli_page_t;

//  Finds the page in reply, a message of the reply type given to
//  cli_rpc_pages.
typedef cli_page_t (cli_page_fn) (ProtobufCMessage *reply);

//  Every item a paged list returned, in order (they point into the
//  replies it holds).
typedef struct _cli_pages_t cli_pages_t;

//  Pages through a list: sends request until the last page or limit items
//  (0: all). Before each send it sets the request's filter fields
//  *page_size_p (page_size, or fewer if limit leaves fewer) and
//  *page_token_p (NULL, then the previous page's token); page_fn reads the
//  replies, of type reply_desc. Returns the items, or NULL after saying why
//  nothing came back or what a status that is not OK means (as
//  cli_rpc_send and cli_status_fail say it).
cli_pages_t *
    cli_rpc_pages (cli_rpc_t *self, ProtobufCMessage *request, char **request_id_p,
                   uint32_t *page_size_p, char **page_token_p, uint32_t page_size, uint64_t limit,
                   const ProtobufCMessageDescriptor *reply_desc, cli_page_fn *page_fn);

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
