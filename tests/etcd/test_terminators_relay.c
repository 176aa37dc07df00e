/*  test_terminators_relay.c: the whole path of a router's terminators
    request when the terminators run on shards: routers (the router agent,
    tools/edgeplane-router, as edgeplane-router runs it) -> a real watchdog,
    which relays each request to the owner of the router's shard by the
    instances' cluster.beacon -> two edgeplane-terminators instances in the
    etcd mode on the fixture cluster (16 shards, a 2 s lease), with a real
    bus and model.

    Every router creates its terminator; then the model gives every router
    a second service and the instance owning some routers' shards (the
    watchdog's configured endpoint, too) is SIGKILLed at once; a third
    service follows, router after router, over the handover. Every create
    the routers sent during the handover succeeds in the end, within the
    lease's TTL + a few seconds whatever the agents' request timeout (the
    watchdog answers what it had sent to the dead instance UNAVAILABLE,
    retriable, once it forgets it): the agents count each create
    confirmed, and the survivor holds exactly one terminator per (router,
    service), each ESTABLISHED. */
#include <criterion/criterion.h>
#include "ep_etcd_cluster.h"
#include "ep_stack.h"
#include "ep_wdtest.h"
#include "agent.h"
#include "ep_auth.h"
#include "ep_keys.h"
#include "ep_rpc_client.h"
#include "terminators.pb-c.h"
#include <poll.h>
#include <pthread.h>
#include <signal.h>

#define SHARDS      16
#define TTL_MS      2000
#define ROUTERS     12
#define SERVICES    3
//  After the kill, the handover's creates are all confirmed within this:
//  the TTL, 3.5 beacon intervals for the watchdog to forget the dead
//  instance (and answer what it had sent there UNAVAILABLE, retriable), a
//  retry's backoff, room for the machine; whatever the agents' request
//  timeout (theirs is edgeplane-router's, 5 s).
#define HANDOVER_MS (TTL_MS + 3500 + 1500)
#define SPREAD_MS   (TTL_MS + 1500)     //  the third service's creates come over this

static ep_stack_t *s_stack;     //  keys, bus, model, environment
static char *s_prefix;          //  this test's etcd prefix
static ep_proc_t *s_terms [2];  //  the two instances
static ep_rpc_client_t *s_operator [2];     //  we, as the operator, to each
static ep_rpc_client_t *s_prober [2];       //  we, as the watchdog, to each (ownership probes)
static ep_stub_t s_reaper;      //  the watchdog's reaper (no sessions here)
static ep_auth_t *s_auth;       //  zauth for the stub

//  The agents, run in one thread (their own loop, as edgeplane-router's).
static struct {
    agent_t *agents [ROUTERS];  //  the routers
    SSL_CTX *ctx [ROUTERS];     //  their TLS contexts
    pthread_mutex_t lock;       //  the agents are read from the test's thread
    volatile bool stop;         //  ask the thread to end
    pthread_t thread;           //  the thread
    bool running;               //  started
} s_run;

static void *
s_agents_run (void *arg)
{
    (void) arg;
    while (!s_run.stop) {
        struct pollfd fds [ROUTERS];
        pthread_mutex_lock (&s_run.lock);
        for (int r = 0; r < ROUTERS; r++)
            fds [r] = (struct pollfd) { .fd = agent_fd (s_run.agents [r]), .events = POLLIN };
        pthread_mutex_unlock (&s_run.lock);
        //  A disconnected agent's fd is -1, which poll skips.
        poll (fds, ROUTERS, 20);
        pthread_mutex_lock (&s_run.lock);
        for (int r = 0; r < ROUTERS; r++) {
            if (fds [r].fd >= 0 && fds [r].revents)
                agent_handle (s_run.agents [r]);
            agent_tick (s_run.agents [r]);
        }
        pthread_mutex_unlock (&s_run.lock);
    }
    return NULL;
}

static ep_proc_t *
s_start (int i)
{
    ep_stack_setenv (s_stack, "EDGEPLANE_DATA_DIR", "%s/t%d", ep_stack_dir (s_stack), i);
    ep_stack_setenv (s_stack, "EDGEPLANE_INSTANCE_ID", "%c", 'a' + i);
    const char *args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", "127.0.0.1:0",
                            "--settle", "0", NULL };
    ep_proc_t *proc = ep_proc_start ("edgeplane-terminators", args, ep_stack_env (s_stack), 20000);
    cr_assert_not_null (proc, "edgeplane-terminators %d did not start", i);
    return proc;
}

static double
s_owned (int i)
{
    char *page = s_terms [i]? ep_http_get (ep_proc_endpoint (s_terms [i], "http"), "/metrics"): NULL;
    double value = page? ep_metric_value (page, "edgeplane_terminators_shards_owned"): 0;
    free (page);
    return value;
}

static bool
s_split (void *arg)
{
    (void) arg;
    double a = s_owned (0), b = s_owned (1);
    return a > 0 && b > 0 && a + b == SHARDS;
}

static void
s_setup (void)
{
    const char *endpoints = ep_etcd_cluster_endpoints ();
    cr_assert (endpoints, "no etcd cluster: run this suite through ctest (fixture etcd_cluster)");
    s_stack = ep_stack_new ("terms-relay");
    s_prefix = ep_etcd_test_prefix ("terms-relay");
    ep_stack_setenv (s_stack, "EDGEPLANE_TERMINATORS_STORE", "etcd");
    ep_stack_setenv (s_stack, "EDGEPLANE_ETCD_ENDPOINTS", "%s", endpoints);
    ep_stack_setenv (s_stack, "EDGEPLANE_ETCD_PREFIX", "%s", s_prefix);
    ep_stack_setenv (s_stack, "EDGEPLANE_SHARDS", "%d", SHARDS);
    ep_stack_setenv (s_stack, "EDGEPLANE_TERMINATORS_LEASE_TTL", "%dms", TTL_MS);
    s_auth = ep_auth_new (ep_stack_keys (s_stack));
    cr_assert_not_null (s_auth);
    ep_stub_start (&s_reaper, ep_stack_keys (s_stack), "reaper");
    zcert_t *operator = ep_keys_load (ep_stack_keys (s_stack), "operator");
    zcert_t *watchdog = ep_keys_load (ep_stack_keys (s_stack), "watchdog");
    char *key = ep_keys_public_txt (ep_stack_keys (s_stack), "terminators");
    for (int i = 0; i < 2; i++) {
        s_terms [i] = s_start (i);
        s_operator [i] = ep_rpc_client_new (ep_proc_connect_endpoint (s_terms [i], "api"), operator, key);
        s_prober [i] = ep_rpc_client_new (ep_proc_connect_endpoint (s_terms [i], "api"), watchdog, key);
    }
    free (key);
    zcert_destroy (&operator);
    zcert_destroy (&watchdog);
    pthread_mutex_init (&s_run.lock, NULL);
}

static void
s_teardown (void)
{
    if (s_run.running) {
        s_run.stop = true;
        pthread_join (s_run.thread, NULL);
    }
    for (int r = 0; r < ROUTERS; r++) {
        agent_destroy (&s_run.agents [r]);
        SSL_CTX_free (s_run.ctx [r]);
    }
    pthread_mutex_destroy (&s_run.lock);
    for (int i = 0; i < 2; i++) {
        ep_rpc_client_destroy (&s_operator [i]);
        ep_rpc_client_destroy (&s_prober [i]);
        ep_proc_destroy (&s_terms [i]);
    }
    zstr_free (&s_prefix);
    ep_stack_destroy (&s_stack);
    ep_stub_stop (&s_reaper);
    ep_auth_destroy (&s_auth);
}

TestSuite (terminators_relay, .init = s_setup, .fini = s_teardown, .timeout = 120);

//  Router r hosting the first count services (svc1..).
static void
s_host (int r, int count)
{
    const char *services [] = { "svc1", "svc2", "svc3" };
    char id [16];
    snprintf (id, sizeof id, "r%d", r);
    ep_stack_router_write (s_stack, EP__MODEL_WRITE__OP__UPDATE, id, services, (size_t) count);
}

//  True once every agent is joined and has every create of its slice
//  confirmed (arg: how many).
static bool
s_confirmed (void *arg)
{
    size_t want = (size_t) (uintptr_t) arg;
    bool all = true;
    pthread_mutex_lock (&s_run.lock);
    for (int r = 0; r < ROUTERS; r++) {
        const agent_stats_t *stats = agent_stats (s_run.agents [r]);
        all &= stats->joined && stats->hosted == want && stats->terminators == want;
    }
    pthread_mutex_unlock (&s_run.lock);
    return all;
}

//  What the agents say, for a failure message (static).
static const char *
s_agents_report (void)
{
    static char text [2048];
    size_t used = 0;
    text [0] = 0;
    pthread_mutex_lock (&s_run.lock);
    for (int r = 0; r < ROUTERS && used < sizeof text; r++) {
        const agent_stats_t *stats = agent_stats (s_run.agents [r]);
        used += (size_t) snprintf (text + used, sizeof text - used, " r%d: %s, %zu hosted, %zu confirmed, "
                                   "%llu retries;", r, stats->joined? "joined": "not joined", stats->hosted,
                                   stats->terminators, (unsigned long long) stats->retries);
    }
    pthread_mutex_unlock (&s_run.lock);
    return text;
}

//  True if instance i owns router r's shard: a create for a service that
//  does not exist is refused there for what it asks (nothing is written),
//  elsewhere as not that instance's (UNAVAILABLE, naming the owner).
static bool
s_owned_by (int i, int r)
{
    char router [16];
    snprintf (router, sizeof router, "r%d", r);
    Ep__Terminator t = EP__TERMINATOR__INIT;
    t.id = "ownership-probe";
    t.service_id = "no-such-service";
    Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
    request.router_id = router;
    request.op_case = EP__TERMINATOR_REQUEST__OP_CREATE;
    request.create = &t;
    char err [256];
    Ep__TerminatorReply *reply = ep_rpc_call (s_prober [i], &request, &ep__terminator_reply__descriptor,
                                              5000, 3, err, sizeof err);
    cr_assert_not_null (reply, "probe: %s", err);
    bool owned = !(reply->status && reply->status->code == EP__STATUS__CODE__UNAVAILABLE);
    ep__terminator_reply__free_unpacked (reply, NULL);
    return owned;
}

//  The fleet's terminators as instance i lists them (from etcd): how many,
//  how many ESTABLISHED, and per router a bit per service into held.
static size_t
s_list (int i, size_t *established, int held [ROUTERS])
{
    Ep__TerminatorFilter filter = EP__TERMINATOR_FILTER__INIT;
    filter.has_page_size = true;
    filter.page_size = 1000;
    Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
    request.op_case = EP__TERMINATOR_REQUEST__OP_LIST;
    request.list = &filter;
    char err [256];
    Ep__TerminatorReply *reply = ep_rpc_call (s_operator [i], &request, &ep__terminator_reply__descriptor,
                                              5000, 3, err, sizeof err);
    cr_assert_not_null (reply, "list: %s", err);
    cr_assert_eq (reply->status->code, EP__STATUS__CODE__OK);
    size_t count = reply->n_terminators;
    for (size_t n = 0; n < reply->n_terminators; n++) {
        Ep__Terminator *t = reply->terminators [n];
        int r = -1, s = -1;
        sscanf (t->router_id, "r%d", &r);
        sscanf (t->service_id, "svc%d", &s);
        if (r >= 0 && r < ROUTERS && s >= 1 && s <= SERVICES) {
            if (held [r] & (1 << s))
                count += 1000;      //  two of one (router, service): never equal to the count wanted
            held [r] |= 1 << s;
        }
        *established += t->state == EP__TERMINATOR_STATE__ESTABLISHED;
    }
    ep__terminator_reply__free_unpacked (reply, NULL);
    return count;
}

//  True once the survivor holds exactly one ESTABLISHED terminator per
//  (router, service).
static bool
s_survivor_holds_all (void *arg)
{
    (void) arg;
    size_t established = 0;
    int held [ROUTERS] = { 0 };
    return s_list (1, &established, held) == ROUTERS * SERVICES && established == ROUTERS * SERVICES;
}

Test (terminators_relay, creates_relayed_during_a_handover_all_succeed_within_the_ttl)
{
    cr_assert (ep_wait_until (s_split, NULL, 10000), "the shards were not split: %.0f and %.0f",
               s_owned (0), s_owned (1));
    //  The watchdog's configured endpoint is the instance to be killed:
    //  nothing but the beacons leads to the survivor.
    ep_stack_setenv (s_stack, "EDGEPLANE_TERMINATORS_API", "%s", ep_proc_connect_endpoint (s_terms [0], "api"));
    ep_stack_setenv (s_stack, "EDGEPLANE_REAPER_API", "%s", s_reaper.endpoint);
    const char *args [] = { "--channel-listen", "127.0.0.1:0", "--listen", "tcp://127.0.0.1:*",
                            "--http-listen", "127.0.0.1:0", NULL };
    ep_proc_t *watchdog = ep_proc_start ("edgeplane-watchdog", args, ep_stack_env (s_stack), 15000);
    cr_assert_not_null (watchdog);
    ep_stack_keep (s_stack, watchdog);

    for (int s = 1; s <= SERVICES; s++) {
        char name [16];
        snprintf (name, sizeof name, "svc%d", s);
        ep_stack_create_service (s_stack, name);
    }
    const char *first [] = { "svc1" };
    for (int r = 0; r < ROUTERS; r++) {
        char id [16];
        snprintf (id, sizeof id, "r%d", r);
        ep_stack_router_write (s_stack, EP__MODEL_WRITE__OP__CREATE, id, first, 1);
        s_run.ctx [r] = ep_stack_tls_client (s_stack, "router", id);
        agent_config_t config = { .id = id, .ctx = s_run.ctx [r],
                                  .controller = ep_proc_connect_endpoint (watchdog, "channel"),
                                  .heartbeat_ms = 1000, .backoff_base_ms = 200, .backoff_max_ms = 1000 };
        s_run.agents [r] = agent_new (&config);
        cr_assert_not_null (s_run.agents [r]);
    }
    cr_assert_eq (pthread_create (&s_run.thread, NULL, s_agents_run, NULL), 0);
    s_run.running = true;
    cr_assert (ep_wait_until (s_confirmed, (void *) (uintptr_t) 1, 20000 * EP_TEST_SLOWDOWN),
               "the routers' first creates were not all confirmed:%s", s_agents_report ());

    //  Instance 0 owns some routers' shards (and 1 the others').
    int at_0 = 0;
    for (int r = 0; r < ROUTERS; r++)
        at_0 += s_owned_by (0, r);
    cr_assert (at_0 > 0 && at_0 < ROUTERS, "instance 0 owns %d of the %d routers' shards", at_0, ROUTERS);

    //  A second service for every router, and instance 0 dies with the
    //  creates on their way; then a third, router after router, over the
    //  handover (before the lease ends, while the survivor takes the
    //  shards, after).
    for (int r = 0; r < ROUTERS; r++)
        s_host (r, 2);
    int64_t killed = ep_mono_ms ();
    ep_proc_signal (s_terms [0], SIGKILL);
    ep_proc_wait_exit (s_terms [0], 10000);
    ep_proc_destroy (&s_terms [0]);
    for (int r = 0; r < ROUTERS; r++) {
        s_host (r, 3);
        zclock_sleep (SPREAD_MS / ROUTERS);     //  pacing the load, not waiting for anything
    }
    cr_assert (ep_wait_until (s_confirmed, (void *) (uintptr_t) SERVICES, HANDOVER_MS * EP_TEST_SLOWDOWN),
               "%lld ms after the kill, not every create is confirmed:%s",
               (long long) (ep_mono_ms () - killed), s_agents_report ());
    int64_t took = ep_mono_ms () - killed;
    fprintf (stderr, "terminators relay: every create confirmed %lld ms after the kill;%s\n", (long long) took,
             s_agents_report ());
    cr_assert_leq (took, HANDOVER_MS * EP_TEST_SLOWDOWN);
    cr_assert (ep_wait_until (s_survivor_holds_all, NULL, 10000 * EP_TEST_SLOWDOWN),
               "the survivor does not hold one established terminator per (router, service)");
}
