/*  ep_wdtest.c: routers and stub services around a real watchdog. */
#include <criterion/criterion.h>
#include "ep_wdtest.h"
#include "ep_auth.h"
#include "ep_codec.h"
#include "ep_keys.h"
#include "ep_pki_tls.h"

void
ep_stub_start (ep_stub_t *stub, const char *keys_dir, const char *service)
{
    zcert_t *cert = ep_keys_load (keys_dir, service);
    cr_assert_not_null (cert);
    stub->sock = zsock_new (ZMQ_ROUTER);
    cr_assert_eq (ep_curve_server (stub->sock, cert), 0);
    cr_assert_geq (zsock_bind (stub->sock, "tcp://127.0.0.1:*"), 0);
    stub->endpoint = zsock_last_endpoint (stub->sock);
    stub->rpc = ep_rpc_server_new (stub->sock, EP_CODEC_DEFAULT_CAP, 100, 60000);
    zcert_destroy (&cert);
}

void
ep_stub_stop (ep_stub_t *stub)
{
    ep_rpc_server_destroy (&stub->rpc);
    zsock_destroy (&stub->sock);
    zstr_free (&stub->endpoint);
}

void
ep_stubs_start (ep_stubs_t *self, ep_stack_t *stack)
{
    self->auth = ep_auth_new (ep_stack_keys (stack));
    cr_assert_not_null (self->auth);
    ep_stub_start (&self->terminators, ep_stack_keys (stack), "terminators");
    ep_stub_start (&self->reaper, ep_stack_keys (stack), "reaper");
    ep_stack_setenv (stack, "EDGEPLANE_TERMINATORS_API", "%s", self->terminators.endpoint);
    ep_stack_setenv (stack, "EDGEPLANE_REAPER_API", "%s", self->reaper.endpoint);
    ep_stack_setenv (stack, "EDGEPLANE_LOG_LEVEL", "debug");
}

void
ep_stubs_stop (ep_stubs_t *self)
{
    ep_stub_stop (&self->terminators);
    ep_stub_stop (&self->reaper);
    ep_auth_destroy (&self->auth);
}

ep_rpc_call_t *
ep_stub_next (ep_stub_t *stub, int timeout_ms)
{
    int64_t deadline = ep_mono_ms () + timeout_ms;
    while (ep_mono_ms () < deadline) {
        zmq_pollitem_t item = { zsock_resolve (stub->sock), 0, ZMQ_POLLIN, 0 };
        if (zmq_poll (&item, 1, (long) (deadline - ep_mono_ms ())) > 0) {
            ep_rpc_call_t *call = ep_rpc_server_recv (stub->rpc);
            if (call)
                return call;
        }
    }
    return NULL;
}

SSL_CTX *
ep_wdtest_router_ctx (const char *dir, const char *id)
{
    char *cert = zsys_sprintf ("%s/%s.crt", dir, id);
    char *key = zsys_sprintf ("%s/%s.key", dir, id);
    char *ca = zsys_sprintf ("%s/ca.crt", dir);
    char err [512];
    SSL_CTX *ctx = ep_pki_client_ctx (cert, key, ca, err, sizeof err);
    cr_assert_not_null (ctx, "%s", err);
    free (cert);
    free (key);
    free (ca);
    return ctx;
}

chan_client_t *
ep_wdtest_join (const char *endpoint, SSL_CTX *ctx, const char *id)
{
    char err [512];
    chan_client_t *client = chan_client_new (endpoint, ctx, 5000, err, sizeof err);
    cr_assert_not_null (client, "%s", err);
    Ep__HelloResult *result = chan_client_hello (client, 1, EP__ROLE__ROLE_ROUTER, id, 5000);
    cr_assert_not_null (result, "no HelloResult: %s", chan_client_close_reason (client));
    cr_assert_eq (result->status->code, EP__STATUS__CODE__OK, "%s", result->status->message);
    ep__hello_result__free_unpacked (result, NULL);
    return client;
}

Ep__Frame *
ep_wdtest_expect_frame (chan_client_t *client, Ep__Frame__BodyCase body, int timeout_ms)
{
    int64_t deadline = ep_mono_ms () + timeout_ms;
    while (ep_mono_ms () < deadline && !chan_client_closed (client)) {
        Ep__Frame *frame = chan_client_recv (client, (int) (deadline - ep_mono_ms ()));
        if (frame && frame->body_case == body)
            return frame;
        if (frame)
            ep__frame__free_unpacked (frame, NULL);
    }
    return NULL;
}

void
ep_wdtest_send (chan_client_t *client, Ep__Frame *frame)
{
    cr_assert_eq (chan_client_send (client, frame, 2000), 0, "%s", chan_client_close_reason (client));
}
