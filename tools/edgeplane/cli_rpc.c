/*  cli_rpc.c: one command's connection to a service's API (cli_rpc.h).
*/
#include "cli_rpc.h"
#include "ep_rpc_client.h"
#include <ctype.h>

struct _cli_rpc_t {
    const char *command;        //  "router create", for messages
    const cli_service_t *service;   //  whom we call, for messages
    const char *endpoint;       //  its API address
    const char *keys_dir;       //  for the default certificate and key
    const char *cert_path;      //  --cert, or NULL for curve/operator.cert_secret
    const char *server_key_path;    //  --server-key, or NULL for curve/<key_name>.cert
    int timeout_ms;             //  per attempt
    int attempts;               //  attempts per call
    zcert_t *cert;              //  our certificate (the client borrows it)
    ep_rpc_client_t *client;    //  once connected
};

cli_rpc_t *
cli_rpc_new (const char *command, const cli_service_t *service, const char *endpoint,
             const char *keys_dir, const char *cert_path, const char *server_key_path,
             int timeout_ms, int attempts)
{
    cli_rpc_t *self = (cli_rpc_t *) zmalloc (sizeof (cli_rpc_t));
    *self = (cli_rpc_t) { .command = command, .service = service, .endpoint = endpoint,
                          .keys_dir = keys_dir, .cert_path = cert_path,
                          .server_key_path = server_key_path, .timeout_ms = timeout_ms,
                          .attempts = attempts };
    return self;
}

cli_rpc_t *
cli_rpc_open (const char *command, const cli_service_t *service, const char *endpoint,
              const char *keys_dir, const cli_rpc_flags_t *flags)
{
    return cli_rpc_new (command, service, endpoint, keys_dir, flags->cert_path, flags->server_key_path,
                        (int) flags->timeout_ms, (int) flags->attempts);
}

size_t
cli_rpc_options (ep_opt_t *opts, cli_rpc_flags_t *flags, const cli_service_t *service)
{
    snprintf (flags->key_default, sizeof flags->key_default, "$EDGEPLANE_KEYS_DIR/curve/%s.cert",
              service->key_name);
    const ep_opt_t rpc [] = {
        { .name = "cert", .type = EP_OPT_STRING, .str = &flags->cert_path,
          .def_help = "$EDGEPLANE_KEYS_DIR/curve/operator.cert_secret",
          .help = "Our CURVE certificate (secret file), e.g. from `edgeplane pki issue-curve operator NAME`." },
        { .name = "server-key", .type = EP_OPT_STRING, .str = &flags->server_key_path,
          .def_help = flags->key_default, .help = service->key_help },
        { .name = "timeout", .def = "3s", .type = EP_OPT_DURATION, .num = &flags->timeout_ms,
          .min = 1, .max = 600000, .help = "How long to wait for each attempt's reply." },
        { .name = "attempts", .def = "3", .type = EP_OPT_INT, .num = &flags->attempts, .min = 1, .max = 100,
          .help = service->attempts_help? service->attempts_help: "Attempts before giving up." },
    };
    memcpy (opts, rpc, sizeof rpc);
    return EP_COUNT (rpc);
}

void
cli_rpc_destroy (cli_rpc_t **self_p)
{
    cli_rpc_t *self = *self_p;
    if (!self)
        return;
    ep_rpc_client_destroy (&self->client);
    zcert_destroy (&self->cert);
    free (self);
    *self_p = NULL;
}

//  Loads the certificates and connects, or says why not. 0 or -1.
static int
s_connect (cli_rpc_t *self)
{
    const cli_service_t *service = self->service;
    self->cert = cli_cert_load (self->command, self->keys_dir, self->cert_path, "operator.cert_secret",
                                "the certificate", "run `edgeplane pki init`, or pass --cert with one from "
                                "`edgeplane pki issue-curve operator NAME`");
    char name [64], what [96], hint [128];
    snprintf (name, sizeof name, "%s.cert", service->key_name);
    snprintf (what, sizeof what, "%s's public certificate", service->label);
    snprintf (hint, sizeof hint, "pass --server-key (curve/%s.cert in the control plane's keys directory)",
              service->key_name);
    zcert_t *server = self->cert? cli_cert_load (self->command, self->keys_dir, self->server_key_path, name,
                                                 what, hint): NULL;
    if (server
    &&  !(self->client = ep_rpc_client_new (self->endpoint, self->cert, zcert_public_txt (server))))
        cli_fail (self->command, "cannot connect to %s: check %s (%s)",
                  self->endpoint, service->address_flag, service->address_env);
    zcert_destroy (&server);
    return self->client? 0: -1;
}

ProtobufCMessage *
cli_rpc_send (cli_rpc_t *self, ProtobufCMessage *request, char **request_id_p,
              const ProtobufCMessageDescriptor *reply_desc, bool quiet)
{
    if (!self->client && s_connect (self))
        return NULL;
    char id [33], err [512];
    ep_rpc_new_id (id);
    *request_id_p = id;
    ProtobufCMessage *reply = ep_rpc_client_call (self->client, request, id, reply_desc,
                                                  self->timeout_ms, self->attempts, err, sizeof err);
    *request_id_p = NULL;
    if (!reply && !quiet)
        cli_fail (self->command, "%s (the address is %s or %s)", err,
                  self->service->address_flag, self->service->address_env);
    return reply;
}

//  The field name of reply, which must be there (a reply type's shape).
static void *
s_field (const ProtobufCMessage *reply, const char *name, const ProtobufCFieldDescriptor **field_p)
{
    const ProtobufCFieldDescriptor *field =
        protobuf_c_message_descriptor_get_field_by_name (reply->descriptor, name);
    EP_ASSERT (field);
    if (field_p)
        *field_p = field;
    return (char *) reply + field->offset;
}

static const Ep__Status *
s_status (const ProtobufCMessage *reply)
{
    return *(Ep__Status **) s_field (reply, "status", NULL);
}

ProtobufCMessage *
cli_rpc_call (cli_rpc_t *self, ProtobufCMessage *request, char **request_id_p,
              const ProtobufCMessageDescriptor *reply_desc, bool exist_ok)
{
    ProtobufCMessage *reply = cli_rpc_send (self, request, request_id_p, reply_desc, false);
    const Ep__Status *status = reply? s_status (reply): NULL;
    if (exist_ok && status && status->has_code && status->code == EP__STATUS__CODE__ALREADY_EXISTS)
        return reply;
    if (cli_status_failed (status)) {
        cli_status_fail (self->command, status);
        protobuf_c_message_free_unpacked (reply, NULL);
        return NULL;
    }
    return reply;
}

struct _cli_pages_t {
    zlistx_t *replies;          //  the pages' replies, which the items point into
    ProtobufCMessage **items;   //  every page's items, in order
    size_t count;               //  how many
};

static void
s_reply_destroy (ProtobufCMessage **reply_p)
{
    if (*reply_p)
        protobuf_c_message_free_unpacked (*reply_p, NULL);
    *reply_p = NULL;
}

cli_pages_t *
cli_rpc_pages (cli_rpc_t *self, ProtobufCMessage *request, char **request_id_p, ProtobufCMessage *filter,
               uint32_t page_size, uint64_t limit, const ProtobufCMessageDescriptor *reply_desc,
               const char *items)
{
    const ProtobufCFieldDescriptor *size_field;
    uint32_t *page_size_p = (uint32_t *) s_field (filter, "page_size", &size_field);
    EP_ASSERT (size_field->type == PROTOBUF_C_TYPE_UINT32);
    if (size_field->quantifier_offset)      //  has_page_size
        *(protobuf_c_boolean *) ((char *) filter + size_field->quantifier_offset) = true;
    char **page_token_p = (char **) s_field (filter, "page_token", NULL);
    cli_pages_t *pages = (cli_pages_t *) zmalloc (sizeof (cli_pages_t));
    pages->replies = zlistx_new ();
    zlistx_set_destructor (pages->replies, (czmq_destructor *) s_reply_destroy);
    char *token = NULL;
    while (true) {
        uint64_t left = limit? limit - pages->count: page_size;
        *page_size_p = left < page_size? (uint32_t) left: page_size;
        *page_token_p = token;
        ProtobufCMessage *reply = cli_rpc_send (self, request, request_id_p, reply_desc, false);
        if (!reply) {
            cli_pages_destroy (&pages);
            break;
        }
        zlistx_add_end (pages->replies, reply);
        const Ep__Status *status = s_status (reply);
        if (cli_status_failed (status)) {
            cli_status_fail (self->command, status);
            cli_pages_destroy (&pages);
            break;
        }
        //  A repeated message field: a count, then an array of pointers.
        const ProtobufCFieldDescriptor *field;
        ProtobufCMessage **page = *(ProtobufCMessage ***) s_field (reply, items, &field);
        EP_ASSERT (field->label == PROTOBUF_C_LABEL_REPEATED && field->type == PROTOBUF_C_TYPE_MESSAGE);
        size_t take = *(size_t *) ((char *) reply + field->quantifier_offset);
        if (limit && pages->count + take > limit)
            take = (size_t) (limit - pages->count);
        pages->items = (ProtobufCMessage **) realloc (pages->items,
                                                      (pages->count + take + 1) * sizeof (ProtobufCMessage *));
        for (size_t i = 0; i < take; i++)
            pages->items [pages->count++] = page [i];
        token = *(char **) s_field (reply, "next_page_token", NULL);
        if (!token || !*token || (limit && pages->count >= limit))
            break;
    }
    //  The token is the last reply's: the caller's filter must not keep it.
    *page_token_p = NULL;
    return pages;
}

int
cli_rpc_list (cli_rpc_t *self, ProtobufCMessage *request, char **request_id_p, ProtobufCMessage *filter,
              uint32_t page_size, uint64_t limit, const ProtobufCMessageDescriptor *reply_desc,
              const char *items, const cli_list_t *list, bool json)
{
    cli_pages_t *pages = cli_rpc_pages (self, request, request_id_p, filter, page_size, limit, reply_desc,
                                        items);
    if (!pages)
        return CLI_FAIL;
    cli_list_print (list, pages->items, pages->count, json);
    cli_pages_destroy (&pages);
    return CLI_OK;
}

void
cli_pages_destroy (cli_pages_t **self_p)
{
    cli_pages_t *self = *self_p;
    if (!self)
        return;
    free (self->items);
    zlistx_destroy (&self->replies);
    free (self);
    *self_p = NULL;
}

ProtobufCMessage **
cli_pages_items (cli_pages_t *self)
{
    return self->items;
}

size_t
cli_pages_size (cli_pages_t *self)
{
    return self->count;
}

bool
cli_status_failed (const Ep__Status *status)
{
    return status && status->has_code && status->code != EP__STATUS__CODE__OK;
}

int
cli_status_fail (const char *command, const Ep__Status *status)
{
    const ProtobufCEnumValue *value =
        protobuf_c_enum_descriptor_get_value (&ep__status__code__descriptor, status->code);
    //  One line, whatever the server wrote.
    char message [1024];
    snprintf (message, sizeof message, "%s", status->message? status->message: "(no message)");
    for (char *c = message; *c; c++)
        if (iscntrl ((unsigned char) *c))
            *c = ' ';
    return value? cli_fail (command, "%s: %s", value->name, message)
                : cli_fail (command, "status %d: %s", (int) status->code, message);
}
