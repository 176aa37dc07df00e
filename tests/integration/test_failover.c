/*  test_failover.c: RPC clients given several instances of a service
    (EDGEPLANE_MODEL_API=a,b) stick to one and move to the next when it
    does not answer; a dead first endpoint costs the caller one timeout,
    not a stall. Instances present one CURVE server key: the keys
    directory's, shared. */
#include <criterion/criterion.h>
#include "ep_stack.h"
#include "ep_keys.h"
#include "ep_rpc_client.h"
#include "model.pb-c.h"
#include <signal.h>

//  A status call through client: the reply's generation, or NULL.
static char *
s_status (ep_rpc_client_t *client, int timeout_ms, int attempts)
{
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    Ep__StatusRequest status = EP__STATUS_REQUEST__INIT;
    request.op_case = EP__MODEL_REQUEST__OP_STATUS;
    request.status = &status;
    char err [256];
    Ep__ModelReply *reply = (Ep__ModelReply *) ep_rpc_call (client, &request, &ep__model_reply__descriptor,
                                                            timeout_ms, attempts, err, sizeof err);
    char *generation = reply && reply->generation? strdup (reply->generation): NULL;
    if (reply)
        ep__model_reply__free_unpacked (reply, NULL);
    return generation;
}

Test (failover, a_silent_first_endpoint_costs_one_timeout)
{
    ep_stack_t *stack = ep_stack_new ("failover-silent");
    //  A ROUTER that accepts connections and never answers (no CURVE: the
    //  handshake never completes), as a hung or cut-off instance.
    zsock_t *silent = zsock_new_router ("tcp://127.0.0.1:*");
    cr_assert_not_null (silent);
    char *silent_ep = zsock_last_endpoint (silent);
    const char *model_ep = ep_proc_connect_endpoint (ep_stack_model (stack), "api");
    char *list = zsys_sprintf ("%s,%s", silent_ep, model_ep);
    zcert_t *cert = ep_keys_load (ep_stack_keys (stack), "operator");
    char *key = ep_keys_public_txt (ep_stack_keys (stack), "model");
    ep_rpc_client_t *client = ep_rpc_client_new (list, cert, key);
    cr_assert_not_null (client);
    cr_assert_str_eq (ep_rpc_client_endpoint (client), silent_ep, "the client starts with the first");

    int64_t started = ep_mono_ms ();
    char *generation = s_status (client, 500, 3);
    int64_t took = ep_mono_ms () - started;
    cr_assert_not_null (generation, "the call did not reach the live instance");
    cr_assert_eq (ep_rpc_client_attempts (client), 2);
    cr_assert_eq (ep_rpc_client_failovers (client), 1);
    cr_assert_str_eq (ep_rpc_client_endpoint (client), model_ep);
    cr_assert_lt (took, 500 + 2000, "a dead first endpoint stalled the caller %lld ms", (long long) took);
    free (generation);
    //  It sticks to the live one: the next call is answered at once.
    generation = s_status (client, 500, 1);
    cr_assert_not_null (generation);
    cr_assert_eq (ep_rpc_client_attempts (client), 1);
    cr_assert_eq (ep_rpc_client_failovers (client), 1);
    free (generation);

    //  Invalid endpoints are refused at creation, not at the first failover.
    char *bad = zsys_sprintf ("%s,tcp://nohost", model_ep);
    cr_assert_null (ep_rpc_client_new (bad, cert, key));
    free (bad);
    ep_rpc_client_destroy (&client);
    free (key);
    zcert_destroy (&cert);
    free (list);
    free (silent_ep);
    zsock_destroy (&silent);
    ep_stack_destroy (&stack);
}

Test (failover, a_killed_instance_moves_the_client_to_the_next)
{
    ep_stack_t *stack = ep_stack_new ("failover-kill");
    //  A second model on its own data directory (one writer per data
    //  directory) with the same keys: the same CURVE server key.
    char *dir2 = ep_tmpdir_new ("failover-model2");
    const char *const *env = ep_stack_env (stack);
    size_t n = 0;
    while (env [n])
        n++;
    const char *env2 [n + 2];
    memcpy (env2, env, n * sizeof (char *));
    char *data2 = zsys_sprintf ("EDGEPLANE_DATA_DIR=%s", dir2);
    env2 [n] = data2;
    env2 [n + 1] = NULL;
    const char *args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", "127.0.0.1:0", NULL };
    ep_proc_t *model2 = ep_proc_start ("edgeplane-model", args, env2, 20000);
    cr_assert_not_null (model2, "the second model did not start");
    ep_stack_keep (stack, model2);

    char *list = zsys_sprintf ("%s,%s", ep_proc_connect_endpoint (ep_stack_model (stack), "api"),
                               ep_proc_connect_endpoint (model2, "api"));
    zcert_t *cert = ep_keys_load (ep_stack_keys (stack), "operator");
    char *key = ep_keys_public_txt (ep_stack_keys (stack), "model");
    ep_rpc_client_t *client = ep_rpc_client_new (list, cert, key);
    cr_assert_not_null (client);
    char *first = s_status (client, 1000, 1);
    cr_assert_not_null (first);
    free (ep_stack_kill (stack, "model"));
    char *second = s_status (client, 1000, 3);
    cr_assert_not_null (second, "the client did not fail over to the live instance");
    cr_assert_str_neq (first, second, "the answer came from the other instance (its own generation)");
    cr_assert_eq (ep_rpc_client_failovers (client), 1);
    cr_assert_str_eq (ep_rpc_client_endpoint (client), ep_proc_connect_endpoint (model2, "api"));
    free (first);
    free (second);
    ep_rpc_client_destroy (&client);
    free (key);
    zcert_destroy (&cert);
    free (list);
    free (data2);
    ep_stack_destroy (&stack);
    ep_tmpdir_remove (&dir2);
}
