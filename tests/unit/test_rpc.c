/*  test_rpc.c: request/reply over CURVE: retries applied once, roles
    enforced, malformed requests answered, parked retries. */
#include <criterion/criterion.h>
#include "ep_test.h"
#include "ep_auth.h"
#include "ep_codec.h"
#include "ep_keys.h"
#include "ep_rpc_client.h"
#include "ep_rpc_server.h"
#include "model.pb-c.h"

static char *s_keys;
static ep_auth_t *s_auth;

//  A tiny write service: each write increments a counter and replies with
//  its value as the revision. With hold_first, the first request is held
//  unanswered until a retry of it arrives (a slow commit).
typedef struct {
    bool hold_first;
    char *keys;
} s_server_args_t;

static void
s_server (zsock_t *pipe, void *arg)
{
    s_server_args_t *args = (s_server_args_t *) arg;
    zcert_t *cert = ep_keys_load (args->keys, "model");
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    ep_curve_server (router, cert);
    int port = zsock_bind (router, "tcp://127.0.0.1:*");
    ep_rpc_server_t *server = ep_rpc_server_new (router, 65536, 1000, 60000);
    zsock_signal (pipe, 0);
    zsock_send (pipe, "i", port);
    uint64_t applied = 0;
    ep_rpc_call_t *held = NULL;
    zpoller_t *poller = zpoller_new (pipe, router, NULL);
    while (true) {
        void *which = zpoller_wait (poller, -1);
        if (which != router)
            break;
        ep_rpc_call_t *call;
        Ep__ModelRequest *request = (Ep__ModelRequest *) ep_rpc_server_recv_request (
            server, &ep__model_request__descriptor, &call);
        if (!request) {
            //  A retry of the held request was parked: now answer it.
            if (held) {
                call = held;
                held = NULL;
            }
            else
                continue;
        }
        //  A list asks for a reply of page_size bytes (too large ones are
        //  the server's to refuse).
        uint32_t reply_size = request && request->op_case == EP__MODEL_REQUEST__OP_LIST
                            ? request->list->page_size: 0;
        if (request)
            ep__model_request__free_unpacked (request, NULL);
        static const char *writers [] = { "operator", "service", NULL };
        if (!ep_rpc_server_require_role (server, &call, writers))
            continue;
        if (reply_size) {
            Ep__ModelReply reply = EP__MODEL_REPLY__INIT;
            reply.request_id = (char *) ep_rpc_call_request_id (call);
            Ep__Status ok = EP__STATUS__INIT;
            char *padding = (char *) zmalloc (reply_size + 1);
            memset (padding, 'x', reply_size);
            ok.message = padding;
            reply.status = &ok;
            ep_rpc_server_answer (server, &call, &reply.base, false, "page_size");
            free (padding);
            continue;
        }
        if (args->hold_first && applied == 0 && !held) {
            applied++;
            held = call;
            continue;
        }
        if (!args->hold_first || applied == 0)
            applied++;
        Ep__ModelReply reply = EP__MODEL_REPLY__INIT;
        reply.request_id = (char *) ep_rpc_call_request_id (call);
        Ep__Status ok = EP__STATUS__INIT;
        reply.status = &ok;
        reply.has_revision = true;
        reply.revision = applied;
        ep_rpc_server_answer (server, &call, &reply.base, true, "page_size");
    }
    zpoller_destroy (&poller);
    ep_rpc_server_destroy (&server);
    zsock_destroy (&router);
    zcert_destroy (&cert);
}

static zactor_t *
s_start (bool hold_first, char *endpoint, size_t size)
{
    static s_server_args_t args;
    args.hold_first = hold_first;
    args.keys = s_keys;
    zactor_t *actor = zactor_new (s_server, &args);
    int port;
    zsock_recv (actor, "i", &port);
    snprintf (endpoint, size, "tcp://127.0.0.1:%d", port);
    return actor;
}

static void
s_setup (void)
{
    char *dir = ep_tmpdir_new ("rpc");
    s_keys = zsys_sprintf ("%s/keys", dir);
    char err [256];
    cr_assert_eq (ep_keys_init (s_keys, false, err, sizeof err), 0, "%s", err);
    s_auth = ep_auth_new (s_keys);
    cr_assert_not_null (s_auth);
    free (dir);
}

static void
s_teardown (void)
{
    ep_auth_destroy (&s_auth);
    char *dir = zsys_sprintf ("%.*s", (int) (strlen (s_keys) - 5), s_keys);
    ep_tmpdir_remove (&dir);
    zstr_free (&s_keys);
}

static Ep__ModelReply *
s_call (ep_rpc_client_t *client, const char *id, int timeout, int attempts, char *err)
{
    Ep__ModelGet get = EP__MODEL_GET__INIT;
    get.id = "r1";
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.request_id = (char *) id;
    request.op_case = EP__MODEL_REQUEST__OP_GET;
    request.get = &get;
    return (Ep__ModelReply *) ep_rpc_client_call (client, &request.base, id,
                                                  &ep__model_reply__descriptor,
                                                  timeout, attempts, err, 256);
}

static ep_rpc_client_t *
s_client (const char *endpoint, const char *who, zcert_t **cert_p)
{
    *cert_p = ep_keys_load (s_keys, who);
    char *server_key = ep_keys_public_txt (s_keys, "model");
    ep_rpc_client_t *client = ep_rpc_client_new (endpoint, *cert_p, server_key);
    free (server_key);
    return client;
}

Test (rpc, retried_write_gets_first_reply_and_is_applied_once,
      .init = s_setup, .fini = s_teardown)
{
    char endpoint [64];
    zactor_t *server = s_start (false, endpoint, sizeof endpoint);
    zcert_t *cert;
    ep_rpc_client_t *client = s_client (endpoint, "operator", &cert);
    char err [256];
    char id [33];
    ep_rpc_new_id (id);
    Ep__ModelReply *first = s_call (client, id, 2000, 1, err);
    cr_assert_not_null (first, "%s", err);
    cr_assert_eq (first->revision, 1);
    //  The same request id again (a retry whose first reply was lost).
    Ep__ModelReply *again = s_call (client, id, 2000, 1, err);
    cr_assert_not_null (again, "%s", err);
    cr_assert_eq (again->revision, 1, "the retry must get the first reply, not a new write");
    //  A new id is a new write.
    char id2 [33];
    ep_rpc_new_id (id2);
    Ep__ModelReply *second = s_call (client, id2, 2000, 1, err);
    cr_assert_eq (second->revision, 2);
    ep__model_reply__free_unpacked (first, NULL);
    ep__model_reply__free_unpacked (again, NULL);
    ep__model_reply__free_unpacked (second, NULL);
    ep_rpc_client_destroy (&client);
    zcert_destroy (&cert);
    zactor_destroy (&server);
}

Test (rpc, retry_while_in_flight_is_parked_and_answered_once,
      .init = s_setup, .fini = s_teardown)
{
    char endpoint [64];
    zactor_t *server = s_start (true, endpoint, sizeof endpoint);
    zcert_t *cert;
    ep_rpc_client_t *client = s_client (endpoint, "operator", &cert);
    char err [256], id [33];
    ep_rpc_new_id (id);
    //  The first attempt gets no answer (held); the client times out,
    //  reconnects and resends; the server answers both with one write.
    Ep__ModelReply *reply = s_call (client, id, 300, 3, err);
    cr_assert_not_null (reply, "%s", err);
    cr_assert_eq (reply->revision, 1);
    cr_assert_eq (ep_rpc_client_attempts (client), 2);
    ep__model_reply__free_unpacked (reply, NULL);
    ep_rpc_client_destroy (&client);
    zcert_destroy (&cert);
    zactor_destroy (&server);
}

Test (rpc, role_not_allowed_gets_permission_denied,
      .init = s_setup, .fini = s_teardown)
{
    char endpoint [64];
    zactor_t *server = s_start (false, endpoint, sizeof endpoint);
    zcert_t *cert;
    ep_rpc_client_t *client = s_client (endpoint, "subscriber", &cert);
    char err [256], id [33];
    ep_rpc_new_id (id);
    Ep__ModelReply *reply = s_call (client, id, 2000, 1, err);
    cr_assert_not_null (reply, "%s", err);
    cr_assert_eq (reply->status->code, EP__STATUS__CODE__PERMISSION_DENIED);
    cr_assert (strstr (reply->status->message, "subscriber"), "%s", reply->status->message);
    ep__model_reply__free_unpacked (reply, NULL);
    ep_rpc_client_destroy (&client);
    zcert_destroy (&cert);
    zactor_destroy (&server);
}

Test (rpc, malformed_requests_get_error_replies_and_service_keeps_serving,
      .init = s_setup, .fini = s_teardown)
{
    char endpoint [64];
    zactor_t *server = s_start (false, endpoint, sizeof endpoint);
    zcert_t *cert = ep_keys_load (s_keys, "operator");
    char *server_key = ep_keys_public_txt (s_keys, "model");
    zsock_t *raw = zsock_new (ZMQ_DEALER);
    ep_curve_client (raw, cert, server_key);
    zsock_connect (raw, "%s", endpoint);
    zsock_set_rcvtimeo (raw, 2000);
    const char *garbage [] = { "\xff\xff\xff\xff\x0f", "" };
    const char *expect [] = { "not a valid", "request_id" };
    for (size_t i = 0; i < EP_COUNT (garbage); i++) {
        zstr_send (raw, garbage [i]);
        zframe_t *frame = zframe_recv (raw);
        cr_assert_not_null (frame, "no reply to malformed request %zu", i);
        Ep__ReplyHeader *header = ep__reply_header__unpack (NULL, zframe_size (frame), zframe_data (frame));
        cr_assert_not_null (header);
        cr_assert_eq (header->status->code, EP__STATUS__CODE__INVALID_ARGUMENT);
        cr_assert (strstr (header->status->message, expect [i]), "%s", header->status->message);
        ep__reply_header__free_unpacked (header, NULL);
        zframe_destroy (&frame);
    }
    //  Still serving.
    ep_rpc_client_t *client = ep_rpc_client_new (endpoint, cert, server_key);
    char err [256], id [33];
    ep_rpc_new_id (id);
    Ep__ModelReply *reply = s_call (client, id, 2000, 1, err);
    cr_assert_not_null (reply, "%s", err);
    cr_assert_eq (reply->revision, 1);
    ep__model_reply__free_unpacked (reply, NULL);
    ep_rpc_client_destroy (&client);
    zsock_destroy (&raw);
    free (server_key);
    zcert_destroy (&cert);
    zactor_destroy (&server);
}

Test (rpc, unreachable_service_gives_an_actionable_error)
{
    ep_rpc_client_t *client = ep_rpc_client_new ("tcp://127.0.0.1:1", NULL, NULL);
    char err [256], id [33];
    ep_rpc_new_id (id);
    Ep__ModelReply *reply = s_call (client, id, 100, 2, err);
    cr_assert_null (reply);
    cr_assert (strstr (err, "tcp://127.0.0.1:1") && strstr (err, "2 attempts"), "%s", err);
    cr_assert_eq (ep_rpc_client_attempts (client), 2);
    ep_rpc_client_destroy (&client);
}

//  A reply above the cap is not sent truncated nor dropped: the caller is
//  told what to ask for instead, and the server goes on.
Test (rpc, oversized_reply_becomes_failed_precondition_with_advice,
      .init = s_setup, .fini = s_teardown)
{
    char endpoint [64];
    zactor_t *server = s_start (false, endpoint, sizeof endpoint);
    zcert_t *cert = ep_keys_load (s_keys, "operator");
    char *server_key = ep_keys_public_txt (s_keys, "model");
    ep_rpc_client_t *client = ep_rpc_client_new (endpoint, cert, server_key);
    uint32_t sizes [] = { 1000, 100000 };
    for (size_t i = 0; i < EP_COUNT (sizes); i++) {
        Ep__ListFilter list = EP__LIST_FILTER__INIT;
        list.has_page_size = true;
        list.page_size = sizes [i];
        Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
        request.op_case = EP__MODEL_REQUEST__OP_LIST;
        request.list = &list;
        char id [33], err [256];
        ep_rpc_new_id (id);
        request.request_id = id;
        Ep__ModelReply *reply = (Ep__ModelReply *) ep_rpc_client_call (
            client, &request.base, id, &ep__model_reply__descriptor, 2000, 1, err, sizeof err);
        cr_assert_not_null (reply, "%s", err);
        if (i == 0) {
            cr_assert_eq (reply->status->code, EP__STATUS__CODE__OK);
            cr_assert_eq (strlen (reply->status->message), sizes [i]);
        }
        else {
            cr_assert_eq (reply->status->code, EP__STATUS__CODE__FAILED_PRECONDITION);
            cr_assert (strstr (reply->status->message, "ask for a smaller page_size"),
                       "%s", reply->status->message);
        }
        ep__model_reply__free_unpacked (reply, NULL);
    }
    cr_assert_str_eq (ep_status_code_name (EP__STATUS__CODE__NOT_FOUND), "NOT_FOUND");
    ep_rpc_client_destroy (&client);
    free (server_key);
    zcert_destroy (&cert);
    zactor_destroy (&server);
}
