/*  test_terminators_core.c: the terminator service's core (terminators.c)
    over a real terminators.db, a hand-fed model view and presence events,
    without sockets: idempotent creates and conflicts, tombstones against
    late creates, ordering by model revision, reconciliation with the
    model, establishment from presence, FAILED with backoff to the cap,
    validate, the spin detector, events with their counters, the outbox,
    and a restart that resumes where it was. */
#include <criterion/criterion.h>
#include "ep_test.h"
#include "terminators.h"
#include "termstore.h"

#define GEN "generation-1"

static char *s_dir;
static char *s_path;
static ep_store_t *s_store;
static ep_model_view_t *s_view;
static terminators_t *s_core;
static terminators_config_t s_config;
static int64_t s_now;           //  the wall clock the core sees
static int64_t s_mono;          //  the monotonic clock presence sees
static uint64_t s_revision;     //  the model's revision

//  Outputs collected from committed batches.
typedef struct {
    char topic [96];
    char id [65];
    char reason [256];
    uint32_t total, usable_default, usable_required;
    bool online;
} s_seen_t;

static s_seen_t s_seen [512];
static size_t s_seen_count;

static void
s_drain (void)
{
    ep_output_item_t *output;
    while ((output = terminators_next_output (s_core))) {
        cr_assert_lt (s_seen_count, EP_COUNT (s_seen));
        s_seen_t *seen = &s_seen [s_seen_count++];
        memset (seen, 0, sizeof *seen);
        snprintf (seen->topic, sizeof seen->topic, "%s", output->topic);
        if (output->event->body_case == EP__EVENT__BODY_TERMINATOR) {
            Ep__TerminatorEvent *event = output->event->terminator;
            snprintf (seen->id, sizeof seen->id, "%s", event->terminator_id? event->terminator_id: "");
            snprintf (seen->reason, sizeof seen->reason, "%s", event->reason? event->reason: "");
            seen->total = event->total_terminators;
            seen->usable_default = event->usable_default_terminators;
            seen->usable_required = event->usable_required_terminators;
            seen->online = event->router_online;
            cr_assert_gt (output->seq, 0, "events go through the outbox");
            terminators_published (s_core, output->seq);
        }
        else {
            cr_assert_eq (output->event->body_case, EP__EVENT__BODY_COMMAND);
            snprintf (seen->id, sizeof seen->id, "%s", output->event->command->router_id);
            cr_assert_str_eq (output->event->command->reply_to, "terminators");
        }
        ep_output_item_destroy (&output);
    }
}

//  How many outputs on topic (for id, if not NULL) were seen.
static int
s_count_seen (const char *topic, const char *id)
{
    int count = 0;
    for (size_t i = 0; i < s_seen_count; i++)
        if (streq (s_seen [i].topic, topic) && (!id || streq (s_seen [i].id, id)))
            count++;
    return count;
}

static const s_seen_t *
s_last_seen (const char *topic)
{
    for (size_t i = s_seen_count; i > 0; i--)
        if (streq (s_seen [i - 1].topic, topic))
            return &s_seen [i - 1];
    return NULL;
}

//  ---------------------------------------------------------------------
//  The model

static Ep__Entity *
s_router (const char *id, bool enabled, const char *s1, const char *s2)
{
    Ep__Router *router = (Ep__Router *) calloc (1, sizeof (Ep__Router));
    ep__router__init (router);
    router->id = (char *) id;
    router->has_enabled = true;
    router->enabled = enabled;
    Ep__HostedService **hosted = (Ep__HostedService **) calloc (2, sizeof (Ep__HostedService *));
    const char *services [] = { s1, s2 };
    for (int i = 0; i < 2; i++)
        if (services [i]) {
            hosted [router->n_hosted] = (Ep__HostedService *) calloc (1, sizeof (Ep__HostedService));
            ep__hosted_service__init (hosted [router->n_hosted]);
            hosted [router->n_hosted]->service_id = (char *) services [i];
            hosted [router->n_hosted]->has_cost = true;
            hosted [router->n_hosted]->cost = 10;
            router->n_hosted++;
        }
    router->hosted = hosted;
    Ep__Entity *entity = (Ep__Entity *) calloc (1, sizeof (Ep__Entity));
    ep__entity__init (entity);
    entity->kind_case = EP__ENTITY__KIND_ROUTER;
    entity->router = router;
    return entity;
}

static void
s_entity_free (Ep__Entity *entity)
{
    //  router and service share a union (a oneof).
    if (entity->kind_case == EP__ENTITY__KIND_ROUTER) {
        for (size_t i = 0; i < entity->router->n_hosted; i++)
            free (entity->router->hosted [i]);
        free (entity->router->hosted);
        free (entity->router);
    }
    else
        free (entity->service);
    free (entity);
}

static Ep__Entity *
s_service (const char *id)
{
    Ep__Service *service = (Ep__Service *) calloc (1, sizeof (Ep__Service));
    ep__service__init (service);
    service->id = (char *) id;
    Ep__Entity *entity = (Ep__Entity *) calloc (1, sizeof (Ep__Entity));
    ep__entity__init (entity);
    entity->kind_case = EP__ENTITY__KIND_SERVICE;
    entity->service = service;
    return entity;
}

//  Applies one revision putting entity (taken), or deleting (type, id).
static void
s_model (Ep__Entity *entity, Ep__EntityType type, const char *id)
{
    Ep__ModelOp op = EP__MODEL_OP__INIT;
    op.has_kind = op.has_type = true;
    if (entity) {
        op.kind = EP__MODEL_OP__KIND__UPDATED;
        op.type = ep_entity_type (entity);
        op.id = (char *) ep_entity_id (entity);
        op.entity = entity;
    }
    else {
        op.kind = EP__MODEL_OP__KIND__DELETED;
        op.type = type;
        op.id = (char *) id;
    }
    Ep__ModelOp *ops [] = { &op };
    Ep__ModelChange change = EP__MODEL_CHANGE__INIT;
    change.has_revision = true;
    change.revision = ++s_revision;
    change.generation = GEN;
    change.n_ops = 1;
    change.ops = ops;
    cr_assert_eq (ep_model_view_apply (s_view, &change), EP_MODEL_APPLIED);
    if (entity)
        s_entity_free (entity);
}

//  ---------------------------------------------------------------------
//  Presence

static void
s_presence (const char *type, const char *router)
{
    Ep__PresenceEvent event = EP__PRESENCE_EVENT__INIT;
    event.instance_id = "watchdog-test";
    event.has_instance_epoch = true;
    event.instance_epoch = 1;
    char *routers [] = { (char *) router };
    event.routers = routers;
    event.n_routers = router? 1: 0;
    char topic [32];
    snprintf (topic, sizeof topic, "presence.%s", type);
    terminators_presence (s_core, topic, &event, s_mono);
}

//  ---------------------------------------------------------------------
//  Batches

static void
s_work (void)
{
    cr_assert_eq (terminators_begin (s_core), 0);
    terminators_work (s_core, s_now);
    cr_assert_eq (terminators_commit (s_core), 0);
    s_drain ();
}

//  Runs request (with internal work first) in one batch; result gets the
//  reply (caller clears it).
static void
s_call (Ep__TerminatorRequest *request, terminators_result_t *result)
{
    terminators_result_init (result, "req");
    cr_assert_eq (terminators_begin (s_core), 0);
    terminators_work (s_core, s_now);
    terminators_write (s_core, request, s_now, result);
    cr_assert_eq (terminators_commit (s_core), 0);
    s_drain ();
}

static Ep__Status__Code
s_code (const terminators_result_t *result)
{
    return result->status.code;
}

typedef struct {
    Ep__TerminatorRequest request;
    Ep__Terminator terminator;
    Ep__TerminatorValidate validate;
    Ep__Terminator *listed [8];
    Ep__Terminator items [8];
} s_req_t;

static Ep__TerminatorRequest *
s_req (s_req_t *r, const char *router, uint64_t revision)
{
    memset (r, 0, sizeof *r);
    ep__terminator_request__init (&r->request);
    r->request.request_id = "req";
    r->request.router_id = (char *) router;
    r->request.has_model_revision = true;
    r->request.model_revision = revision;
    ep__terminator__init (&r->terminator);
    return &r->request;
}

static Ep__TerminatorRequest *
s_create_req (s_req_t *r, const char *router, const char *id, const char *service, uint64_t revision)
{
    s_req (r, router, revision);
    r->terminator.id = (char *) id;
    r->terminator.service_id = (char *) service;
    r->request.op_case = EP__TERMINATOR_REQUEST__OP_CREATE;
    r->request.create = &r->terminator;
    return &r->request;
}

static Ep__TerminatorRequest *
s_delete_req (s_req_t *r, const char *router, const char *id, uint64_t revision)
{
    s_req (r, router, revision);
    r->request.op_case = EP__TERMINATOR_REQUEST__OP_DELETE_ID;
    r->request.delete_id = (char *) id;
    return &r->request;
}

//  Creates id on router for service; asserts the outcome; returns the state.
static Ep__TerminatorState
s_create (const char *router, const char *id, const char *service, uint64_t revision,
          Ep__Status__Code expected)
{
    s_req_t r;
    terminators_result_t result;
    s_call (s_create_req (&r, router, id, service, revision), &result);
    cr_assert_eq (s_code (&result), expected, "create %s: expected %d, got %d: %s", id, expected,
                  s_code (&result), result.status.message? result.status.message: "");
    Ep__TerminatorState state = result.reply.n_terminators? result.reply.terminators [0]->state
                                                           : EP__TERMINATOR_STATE__TERMINATOR_STATE_UNSPECIFIED;
    if (expected != EP__STATUS__CODE__OK)
        cr_assert (result.reply.has_retriable, "an error says whether to retry");
    terminators_result_clear (&result);
    return state;
}

static void
s_delete (const char *router, const char *id, uint64_t revision, Ep__Status__Code expected)
{
    s_req_t r;
    terminators_result_t result;
    s_call (s_delete_req (&r, router, id, revision), &result);
    cr_assert_eq (s_code (&result), expected, "delete %s: expected %d, got %d: %s", id, expected,
                  s_code (&result), result.status.message? result.status.message: "");
    terminators_result_clear (&result);
}

//  The state of id as get reports it (UNSPECIFIED if unknown).
static Ep__TerminatorState
s_state (const char *id)
{
    s_req_t r;
    s_req (&r, NULL, 0);
    r.request.op_case = EP__TERMINATOR_REQUEST__OP_GET_ID;
    r.request.get_id = (char *) id;
    terminators_result_t result;
    terminators_result_init (&result, "get");
    terminators_read (s_core, &r.request, s_now, &result);
    Ep__TerminatorState state = s_code (&result) == EP__STATUS__CODE__OK? result.reply.terminators [0]->state
                                : EP__TERMINATOR_STATE__TERMINATOR_STATE_UNSPECIFIED;
    terminators_result_clear (&result);
    return state;
}

//  ---------------------------------------------------------------------

static void
s_open (void)
{
    s_store = ep_store_new (s_path, termstore_migrations, termstore_migrations_count);
    cr_assert_not_null (s_store, "%s", ep_store_last_error ());
    s_core = terminators_new (s_store, s_view, &s_config, s_now);
    cr_assert_not_null (s_core);
    terminators_model_loaded (s_core);
}

static void
s_close (void)
{
    terminators_destroy (&s_core);
    ep_store_destroy (&s_store);
}

static void
s_setup (void)
{
    s_dir = ep_tmpdir_new ("terminators-core");
    s_path = zsys_sprintf ("%s/terminators.db", s_dir);
    s_now = 1700000000000;
    s_mono = 1000;
    s_seen_count = 0;
    terminators_config_defaults (&s_config);
    s_config.sm.establish_timeout_ms = 1000;
    s_config.sm.retry_base_ms = 100;
    s_config.sm.retry_max_ms = 400;
    s_config.sm.retry_cap = 3;
    s_config.sm.delete_grace_ms = 500;
    s_config.sm.tombstone_ttl_ms = 60000;
    s_config.settle_ms = 0;
    //  The model at revision 3: services s1, s2, s3; r1 hosts s1 and s2, r2 hosts s1.
    s_view = ep_model_view_new ();
    s_revision = 3;
    ep_model_view_reset (s_view, GEN, s_revision);
    const char *services [] = { "s1", "s2", "s3" };
    for (size_t i = 0; i < EP_COUNT (services); i++) {
        Ep__Entity *entity = s_service (services [i]);
        ep_model_view_put (s_view, entity);
        s_entity_free (entity);
    }
    Ep__Entity *r1 = s_router ("r1", true, "s1", "s2"), *r2 = s_router ("r2", true, "s1", NULL);
    ep_model_view_put (s_view, r1);
    ep_model_view_put (s_view, r2);
    s_entity_free (r1);
    s_entity_free (r2);
    s_open ();
}

static void
s_teardown (void)
{
    s_close ();
    ep_model_view_destroy (&s_view);
    zstr_free (&s_path);
    ep_tmpdir_remove (&s_dir);
}

TestSuite (terminators_core, .init = s_setup, .fini = s_teardown);

Test (terminators_core, create_with_router_online_is_established_with_events_and_counts)
{
    s_presence ("join", "r1");
    cr_assert_eq (s_create ("r1", "t1", "s1", 3, EP__STATUS__CODE__OK), EP__TERMINATOR_STATE__ESTABLISHED);
    cr_assert_eq (s_count_seen ("terminator.created", "t1"), 1);
    cr_assert_eq (s_count_seen ("terminator.established", "t1"), 1);
    const s_seen_t *established = s_last_seen ("terminator.established");
    cr_assert_eq (established->total, 1);
    cr_assert_eq (established->usable_default, 1);
    cr_assert (established->online);
    cr_assert_eq (terminators_count (s_core, TERMSM_ESTABLISHED), 1);
}

Test (terminators_core, create_waits_for_its_router_to_be_online)
{
    cr_assert_eq (s_create ("r1", "t1", "s1", 3, EP__STATUS__CODE__OK), EP__TERMINATOR_STATE__ESTABLISHING);
    cr_assert_eq (s_count_seen ("terminator.established", NULL), 0);
    s_presence ("join", "r1");
    cr_assert (terminators_has_work (s_core, s_now));
    s_work ();
    cr_assert_eq (s_state ("t1"), EP__TERMINATOR_STATE__ESTABLISHED);
    cr_assert_str_eq (s_last_seen ("terminator.established")->reason, "router-online (model revision 3)");
}

Test (terminators_core, create_is_idempotent_and_other_owners_conflict)
{
    s_presence ("join", "r1");
    s_create ("r1", "t1", "s1", 3, EP__STATUS__CODE__OK);
    size_t events = s_seen_count;
    cr_assert_eq (s_create ("r1", "t1", "s1", 3, EP__STATUS__CODE__OK), EP__TERMINATOR_STATE__ESTABLISHED);
    cr_assert_eq (s_seen_count, events, "a repeated create changes nothing and says nothing");
    //  Same id, other service: not retriable.
    s_req_t r;
    terminators_result_t result;
    s_call (s_create_req (&r, "r1", "t1", "s2", 3), &result);
    cr_assert_eq (s_code (&result), EP__STATUS__CODE__CONFLICT);
    cr_assert (result.reply.has_retriable && !result.reply.retriable);
    terminators_result_clear (&result);
    //  Same id, other router.
    s_presence ("join", "r2");
    s_create ("r2", "t1", "s1", 3, EP__STATUS__CODE__CONFLICT);
    //  A router's create of a service it does not host.
    s_create ("r2", "t9", "s2", 3, EP__STATUS__CODE__FAILED_PRECONDITION);
    s_create ("r1", "t8", "s3", 3, EP__STATUS__CODE__FAILED_PRECONDITION);
}

Test (terminators_core, bad_input_is_refused_with_the_field_named)
{
    s_req_t r;
    terminators_result_t result;
    s_call (s_create_req (&r, "r1", "bad id", "s1", 3), &result);
    cr_assert_eq (s_code (&result), EP__STATUS__CODE__INVALID_ARGUMENT);
    cr_assert (strstr (result.status.message, "create.id"));
    terminators_result_clear (&result);
    s_create_req (&r, "r1", "t1", "s1", 3);
    r.terminator.has_cost = true;
    r.terminator.cost = 70000;
    s_call (&r.request, &result);
    cr_assert_eq (s_code (&result), EP__STATUS__CODE__INVALID_ARGUMENT);
    cr_assert (strstr (result.status.message, "cost"));
    terminators_result_clear (&result);
    s_create_req (&r, "r1", "t1", "s1", 3);
    r.terminator.router_id = "r2";
    s_call (&r.request, &result);
    cr_assert_eq (s_code (&result), EP__STATUS__CODE__INVALID_ARGUMENT, "the body cannot name another router");
    terminators_result_clear (&result);
    s_create_req (&r, NULL, "t1", "s1", 3);
    s_call (&r.request, &result);
    cr_assert_eq (s_code (&result), EP__STATUS__CODE__INVALID_ARGUMENT);
    cr_assert (strstr (result.status.message, "router_id"));
    terminators_result_clear (&result);
    cr_assert_eq (terminators_count (s_core, TERMSM_ESTABLISHING) + terminators_count (s_core, TERMSM_ESTABLISHED), 0);
}

Test (terminators_core, a_delete_before_the_create_leaves_a_tombstone_that_stops_the_late_create)
{
    s_presence ("join", "r1");
    s_delete ("r1", "t1", 3, EP__STATUS__CODE__OK);
    cr_assert_eq (s_state ("t1"), EP__TERMINATOR_STATE__DELETED);
    cr_assert_eq (s_count_seen ("terminator.deleted", NULL), 0, "nothing existed, nothing is announced");
    //  The create the router sent before its delete arrives late.
    s_create ("r1", "t1", "s1", 3, EP__STATUS__CODE__FAILED_PRECONDITION);
    cr_assert_eq (s_state ("t1"), EP__TERMINATOR_STATE__DELETED);
    cr_assert_eq (s_count_seen ("terminator.created", "t1"), 0);
    //  Another router may not use the id either.
    s_presence ("join", "r2");
    s_create ("r2", "t1", "s1", 4, EP__STATUS__CODE__CONFLICT);
    //  A create based on a newer model is a new incarnation.
    s_model (s_router ("r1", true, "s1", "s2"), 0, NULL);
    cr_assert_eq (s_create ("r1", "t1", "s1", s_revision, EP__STATUS__CODE__OK), EP__TERMINATOR_STATE__ESTABLISHED);
    cr_assert_eq (terminators_spins (s_core), 0);
}

Test (terminators_core, a_delete_overtaken_by_a_newer_create_is_stale)
{
    s_presence ("join", "r1");
    s_create ("r1", "t1", "s1", 3, EP__STATUS__CODE__OK);
    s_model (s_router ("r1", true, "s1", "s2"), 0, NULL);      //  revision 4
    s_create ("r1", "t1", "s1", 4, EP__STATUS__CODE__OK);
    s_delete ("r1", "t1", 3, EP__STATUS__CODE__FAILED_PRECONDITION);
    cr_assert_eq (s_state ("t1"), EP__TERMINATOR_STATE__ESTABLISHED);
    //  Only its router may delete it.
    s_delete ("r2", "t1", 9, EP__STATUS__CODE__PERMISSION_DENIED);
    s_delete ("r1", "t1", 4, EP__STATUS__CODE__OK);
    cr_assert_eq (s_state ("t1"), EP__TERMINATOR_STATE__DELETED);
    cr_assert_eq (s_count_seen ("terminator.deleted", "t1"), 1);
    s_delete ("r1", "t1", 4, EP__STATUS__CODE__OK);     //  idempotent
    cr_assert_eq (s_count_seen ("terminator.deleted", "t1"), 1);
}

Test (terminators_core, update_changes_cost_and_precedence_for_the_owner_only)
{
    s_presence ("join", "r1");
    s_create ("r1", "t1", "s1", 3, EP__STATUS__CODE__OK);
    s_req_t r;
    terminators_result_t result;
    s_req (&r, "r1", 3);
    r.terminator.id = "t1";
    r.terminator.has_cost = r.terminator.has_precedence = true;
    r.terminator.cost = 42;
    r.terminator.precedence = EP__PRECEDENCE__PRECEDENCE_REQUIRED;
    r.request.op_case = EP__TERMINATOR_REQUEST__OP_UPDATE;
    r.request.update = &r.terminator;
    s_call (&r.request, &result);
    cr_assert_eq (s_code (&result), EP__STATUS__CODE__OK);
    cr_assert_eq (result.reply.terminators [0]->cost, 42);
    cr_assert_eq (result.reply.terminators [0]->generation, 2);
    terminators_result_clear (&result);
    const s_seen_t *updated = s_last_seen ("terminator.updated");
    cr_assert_not_null (updated);
    cr_assert_eq (updated->usable_required, 1);
    cr_assert_eq (updated->usable_default, 0);
    r.request.router_id = "r2";
    s_call (&r.request, &result);
    cr_assert_eq (s_code (&result), EP__STATUS__CODE__PERMISSION_DENIED);
    terminators_result_clear (&result);
    r.request.router_id = "r1";
    r.terminator.id = "nope";
    s_call (&r.request, &result);
    cr_assert_eq (s_code (&result), EP__STATUS__CODE__NOT_FOUND);
    terminators_result_clear (&result);
}

Test (terminators_core, unhosting_retires_deleting_until_the_router_deletes)
{
    s_presence ("join", "r1");
    s_create ("r1", "t1", "s1", 3, EP__STATUS__CODE__OK);
    s_create ("r1", "t2", "s2", 3, EP__STATUS__CODE__OK);
    s_model (s_router ("r1", true, "s2", NULL), 0, NULL);      //  s1 no longer hosted
    cr_assert (terminators_has_work (s_core, s_now));
    s_work ();
    cr_assert_eq (s_state ("t1"), EP__TERMINATOR_STATE__DELETING, "the online router is told and deletes it");
    cr_assert_eq (s_state ("t2"), EP__TERMINATOR_STATE__ESTABLISHED);
    s_delete ("r1", "t1", s_revision, EP__STATUS__CODE__OK);
    cr_assert_eq (s_state ("t1"), EP__TERMINATOR_STATE__DELETED);
    cr_assert_eq (s_count_seen ("terminator.deleted", "t1"), 1);
}

Test (terminators_core, a_deleting_terminator_is_deleted_after_the_grace)
{
    s_presence ("join", "r1");
    s_create ("r1", "t1", "s1", 3, EP__STATUS__CODE__OK);
    s_model (s_router ("r1", true, "s2", NULL), 0, NULL);
    s_work ();
    cr_assert_eq (s_state ("t1"), EP__TERMINATOR_STATE__DELETING);
    s_now += s_config.sm.delete_grace_ms;
    cr_assert (terminators_has_work (s_core, s_now));
    s_work ();
    cr_assert_eq (s_state ("t1"), EP__TERMINATOR_STATE__DELETED);
    cr_assert_str_eq (s_last_seen ("terminator.deleted")->reason, "delete-grace-expired (model revision 4)");
}

Test (terminators_core, router_deleted_disabled_or_offline_loses_terminators_at_once)
{
    s_presence ("join", "r1");
    s_presence ("join", "r2");
    s_create ("r1", "t1", "s1", 3, EP__STATUS__CODE__OK);
    s_create ("r2", "t2", "s1", 3, EP__STATUS__CODE__OK);
    s_model (NULL, EP__ENTITY_TYPE__ENTITY_ROUTER, "r1");
    s_model (s_router ("r2", false, "s1", NULL), 0, NULL);
    s_work ();
    cr_assert_eq (s_state ("t1"), EP__TERMINATOR_STATE__DELETED);
    cr_assert_eq (s_state ("t2"), EP__TERMINATOR_STATE__DELETED);
    cr_assert_eq (s_count_seen ("terminator.deleted", NULL), 2);
    cr_assert_eq (s_last_seen ("terminator.deleted")->total, 0, "the service has no terminator left");
    //  An offline router's unhosted terminator goes at once too.
    s_model (s_router ("r3", true, "s1", NULL), 0, NULL);
    s_presence ("join", "r3");
    s_create ("r3", "t3", "s1", s_revision, EP__STATUS__CODE__OK);
    s_presence ("leave", "r3");
    s_model (s_router ("r3", true, NULL, NULL), 0, NULL);
    s_work ();
    cr_assert_eq (s_state ("t3"), EP__TERMINATOR_STATE__DELETED);
}

Test (terminators_core, service_deletion_retires_its_terminators)
{
    s_presence ("join", "r1");
    s_create ("r1", "t2", "s2", 3, EP__STATUS__CODE__OK);
    //  The model removes the service from hosted lists in the same revision.
    s_model (s_router ("r1", true, "s1", NULL), 0, NULL);
    s_model (NULL, EP__ENTITY_TYPE__ENTITY_SERVICE, "s2");
    s_work ();
    cr_assert_eq (s_state ("t2"), EP__TERMINATOR_STATE__DELETING);
}

Test (terminators_core, offline_past_the_deadline_fails_retries_to_the_cap_then_waits)
{
    s_create ("r1", "t1", "s1", 3, EP__STATUS__CODE__OK);
    s_now += s_config.sm.establish_timeout_ms;
    s_work ();
    cr_assert_eq (s_state ("t1"), EP__TERMINATOR_STATE__FAILED);
    cr_assert_eq (s_count_seen ("terminator.failed", "t1"), 1);
    for (int i = 0; i < 10; i++) {
        s_now += s_config.sm.retry_max_ms;
        s_work ();
    }
    s_req_t r;
    s_req (&r, NULL, 0);
    r.request.op_case = EP__TERMINATOR_REQUEST__OP_GET_ID;
    r.request.get_id = "t1";
    terminators_result_t result;
    terminators_result_init (&result, "get");
    terminators_read (s_core, &r.request, s_now, &result);
    Ep__Terminator *t = result.reply.terminators [0];
    cr_assert_eq (t->state, EP__TERMINATOR_STATE__FAILED);
    cr_assert_eq (t->attempts, s_config.sm.retry_cap + 1);
    cr_assert_not (t->has_next_attempt_at_ms, "no more automatic tries");
    cr_assert (strstr (t->last_error, "offline"), "%s", t->last_error);
    terminators_result_clear (&result);
    cr_assert_not (terminators_has_work (s_core, s_now));
    cr_assert_eq (s_count_seen ("terminator.failed", "t1"), 1, "retries are not new events");
    //  The router comes back.
    s_presence ("join", "r1");
    s_work ();
    cr_assert_eq (s_state ("t1"), EP__TERMINATOR_STATE__ESTABLISHED);
}

Test (terminators_core, validate_tells_the_router_what_to_create_and_delete)
{
    s_presence ("join", "r1");
    s_create ("r1", "t1", "s1", 3, EP__STATUS__CODE__OK);      //  we have t1 (s1)
    s_delete ("r1", "gone", 3, EP__STATUS__CODE__OK);          //  a tombstone
    //  The router lists: "gone" (deleted here), "lost" (s2, never arrived).
    s_req_t r;
    s_req (&r, "r1", 3);
    const char *ids [] = { "gone", "lost" }, *services [] = { "s1", "s2" };
    for (int i = 0; i < 2; i++) {
        ep__terminator__init (&r.items [i]);
        r.items [i].id = (char *) ids [i];
        r.items [i].service_id = (char *) services [i];
        r.listed [i] = &r.items [i];
    }
    ep__terminator_validate__init (&r.validate);
    r.validate.n_terminators = 2;
    r.validate.terminators = r.listed;
    r.request.op_case = EP__TERMINATOR_REQUEST__OP_VALIDATE;
    r.request.validate = &r.validate;
    terminators_result_t result;
    s_call (&r.request, &result);
    cr_assert_eq (s_code (&result), EP__STATUS__CODE__OK, "%s", result.status.message);
    cr_assert_eq (result.reply.n_to_delete, 1);
    cr_assert_str_eq (result.reply.to_delete [0], "gone");
    //  t1: the router lacks it -> create it again (same id); lost -> send its create.
    cr_assert_eq (result.reply.n_to_create, 2);
    bool t1 = false, lost = false;
    for (size_t i = 0; i < result.reply.n_to_create; i++) {
        Ep__Terminator *t = result.reply.to_create [i];
        t1 |= t->id && streq (t->id, "t1") && streq (t->service_id, "s1") && t->cost == 10;
        lost |= t->id && streq (t->id, "lost") && streq (t->service_id, "s2");
        cr_assert_not (t->has_state, "to_create carries no state of ours");
    }
    cr_assert (t1 && lost);
    terminators_result_clear (&result);
    cr_assert_eq (s_state ("t1"), EP__TERMINATOR_STATE__FAILED, "the router said it lacks it");
    //  A retry asks the router to validate again.
    s_now += s_config.sm.retry_max_ms;
    s_work ();
    cr_assert_eq (s_count_seen ("cmd.r1.", "r1"), 1);
    //  The router creates it again.
    cr_assert_eq (s_create ("r1", "t1", "s1", 3, EP__STATUS__CODE__OK), EP__TERMINATOR_STATE__ESTABLISHED);
    //  An empty list: hosted services without a terminator come back without ids.
    s_req (&r, "r1", 3);
    ep__terminator_validate__init (&r.validate);
    r.request.op_case = EP__TERMINATOR_REQUEST__OP_VALIDATE;
    r.request.validate = &r.validate;
    s_call (&r.request, &result);
    cr_assert_eq (result.reply.n_to_create, 2);
    bool no_id = false;
    for (size_t i = 0; i < result.reply.n_to_create; i++)
        no_id |= result.reply.to_create [i]->id == NULL && streq (result.reply.to_create [i]->service_id, "s2");
    cr_assert (no_id, "s2 has no terminator: the router picks an id");
    terminators_result_clear (&result);
}

Test (terminators_core, a_misbehaving_router_that_spins_is_detected)
{
    s_presence ("join", "r1");
    s_create ("r1", "t1", "s1", 3, EP__STATUS__CODE__OK);
    s_delete ("r1", "t1", 3, EP__STATUS__CODE__OK);
    //  No model revision touched (r1, s1): creating again is a spin.
    s_create ("r1", "t1", "s1", 3, EP__STATUS__CODE__FAILED_PRECONDITION);
    cr_assert_eq (terminators_spins (s_core), 1);
    cr_assert_eq (s_count_seen ("terminator.spin", "t1"), 1);
    //  Under another id, after an unrelated model change: still a spin.
    s_model (s_router ("r2", true, "s1", "s3"), 0, NULL);
    s_delete ("r1", "t1", s_revision, EP__STATUS__CODE__OK);
    s_create ("r1", "t1b", "s1", s_revision, EP__STATUS__CODE__OK);
    s_delete ("r1", "t1b", s_revision, EP__STATUS__CODE__OK);
    s_model (s_router ("r2", true, "s1", NULL), 0, NULL);
    s_create ("r1", "t1c", "s1", s_revision, EP__STATUS__CODE__OK);
    cr_assert_eq (terminators_spins (s_core), 2);
}

Test (terminators_core, unhost_and_rehost_through_the_model_is_no_spin)
{
    s_presence ("join", "r1");
    s_create ("r1", "t1", "s1", 3, EP__STATUS__CODE__OK);
    s_model (s_router ("r1", true, "s2", NULL), 0, NULL);      //  un-host
    s_work ();
    s_delete ("r1", "t1", s_revision, EP__STATUS__CODE__OK);
    s_model (s_router ("r1", true, "s1", "s2"), 0, NULL);      //  re-host
    cr_assert_eq (s_create ("r1", "t1", "s1", s_revision, EP__STATUS__CODE__OK), EP__TERMINATOR_STATE__ESTABLISHED);
    cr_assert_eq (terminators_spins (s_core), 0);
    cr_assert_eq (s_count_seen ("terminator.spin", NULL), 0);
}

Test (terminators_core, list_filters_and_pages)
{
    s_presence ("join", "r1");
    s_model (s_router ("r2", true, "s1", "s2"), 0, NULL);
    char id [16];
    for (int i = 0; i < 7; i++) {
        snprintf (id, sizeof id, "a%d", i);
        s_create (i % 2? "r2": "r1", id, i < 4? "s1": "s2", s_revision, EP__STATUS__CODE__OK);
    }
    s_delete ("r1", "a0", s_revision, EP__STATUS__CODE__OK);
    s_req_t r;
    Ep__TerminatorFilter filter = EP__TERMINATOR_FILTER__INIT;
    s_req (&r, NULL, 0);
    r.request.op_case = EP__TERMINATOR_REQUEST__OP_LIST;
    r.request.list = &filter;
    filter.has_page_size = true;
    filter.page_size = 2;
    //  All live ones, in pages of 2.
    size_t total = 0;
    char token [65] = "";
    do {
        filter.page_token = *token? token: NULL;
        terminators_result_t result;
        terminators_result_init (&result, "list");
        terminators_read (s_core, &r.request, s_now, &result);
        cr_assert_eq (s_code (&result), EP__STATUS__CODE__OK);
        total += result.reply.n_terminators;
        snprintf (token, sizeof token, "%s", result.reply.next_page_token? result.reply.next_page_token: "");
        terminators_result_clear (&result);
    } while (*token);
    cr_assert_eq (total, 6, "a0 is deleted");
    //  By router and service; and the tombstones.
    struct { const char *router, *service; int state; size_t expected; } cases [] = {
        { "r1", NULL, -1, 3 }, { "r2", "s2", -1, 1 }, { NULL, "s1", -1, 3 },
        { NULL, NULL, EP__TERMINATOR_STATE__DELETED, 1 }, { NULL, NULL, EP__TERMINATOR_STATE__ESTABLISHING, 3 },
    };
    for (size_t c = 0; c < EP_COUNT (cases); c++) {
        filter.router_id = (char *) cases [c].router;
        filter.service_id = (char *) cases [c].service;
        filter.has_state = cases [c].state >= 0;
        filter.state = cases [c].state >= 0? (Ep__TerminatorState) cases [c].state: 0;
        filter.page_token = NULL;
        filter.page_size = 100;
        terminators_result_t result;
        terminators_result_init (&result, "list");
        terminators_read (s_core, &r.request, s_now, &result);
        cr_assert_eq (result.reply.n_terminators, cases [c].expected, "case %zu: %zu", c, result.reply.n_terminators);
        terminators_result_clear (&result);
    }
}

Test (terminators_core, a_restart_resumes_states_timers_tombstones_and_spin_memory)
{
    s_presence ("join", "r1");
    s_create ("r1", "t1", "s1", 3, EP__STATUS__CODE__OK);
    s_delete ("r1", "t1", 3, EP__STATUS__CODE__OK);
    s_create ("r2", "t2", "s1", 3, EP__STATUS__CODE__OK);      //  r2 offline: ESTABLISHING
    s_delete ("r1", "early", 3, EP__STATUS__CODE__OK);
    //  Events committed but not published yet stay in the outbox.
    s_presence ("join", "r2");
    cr_assert_eq (terminators_begin (s_core), 0);
    terminators_work (s_core, s_now);
    cr_assert_eq (terminators_commit (s_core), 0);
    s_close ();

    s_open ();
    int replayed = terminators_replay_outbox (s_core);
    cr_assert_eq (replayed, 1, "the unpublished established event comes back (got %d)", replayed);
    s_drain ();
    cr_assert_eq (s_count_seen ("terminator.established", "t2"), 1);
    cr_assert_eq (s_state ("t1"), EP__TERMINATOR_STATE__DELETED);
    cr_assert_eq (s_state ("t2"), EP__TERMINATOR_STATE__ESTABLISHED);
    cr_assert_eq (s_state ("early"), EP__TERMINATOR_STATE__DELETED);
    //  The tombstone still refuses the late create, and the spin memory survived.
    s_presence ("join", "r1");
    s_create ("r1", "early", "s1", 3, EP__STATUS__CODE__FAILED_PRECONDITION);
    s_create ("r1", "t1", "s1", 3, EP__STATUS__CODE__FAILED_PRECONDITION);
    cr_assert_eq (terminators_spins (s_core), 1);
    //  A timer set before the restart fires after it.
    s_create ("r2", "t3", "s1", 3, EP__STATUS__CODE__OK);
    s_presence ("leave", "r2");
    s_model (s_router ("r2", true, NULL, NULL), 0, NULL);
    s_work ();
    s_close ();
    s_open ();
    cr_assert_eq (s_state ("t3"), EP__TERMINATOR_STATE__DELETED, "r2 was offline: deleted at once");
    //  Tombstones go after their time.
    s_now += s_config.sm.tombstone_ttl_ms;
    s_work ();
    cr_assert_eq (s_state ("early"), EP__TERMINATOR_STATE__TERMINATOR_STATE_UNSPECIFIED);
    cr_assert_eq (terminators_count (s_core, TERMSM_DELETED), 0);
}

Test (terminators_core, a_failed_savepoint_undoes_memory)
{
    s_presence ("join", "r1");
    s_create ("r1", "t1", "s1", 3, EP__STATUS__CODE__OK);
    //  Make the next write fail: the table is gone behind the module's back.
    cr_assert_eq (ep_store_exec (s_store, "DROP INDEX terminators_by_state;"
                                          "ALTER TABLE terminators RENAME TO hidden"), 0);
    s_req_t r;
    terminators_result_t result;
    s_call (s_create_req (&r, "r1", "t2", "s2", 3), &result);
    cr_assert_eq (s_code (&result), EP__STATUS__CODE__UNAVAILABLE);
    cr_assert (result.reply.retriable);
    terminators_result_clear (&result);
    cr_assert_eq (s_state ("t2"), EP__TERMINATOR_STATE__TERMINATOR_STATE_UNSPECIFIED, "memory was undone");
    cr_assert_eq (terminators_count (s_core, TERMSM_ESTABLISHED), 1);
    cr_assert_eq (s_count_seen ("terminator.created", "t2"), 0, "no event for what did not happen");
}

Test (terminators_core, nothing_is_decided_before_the_model_is_loaded)
{
    s_presence ("join", "r1");
    s_create ("r1", "t1", "s1", 3, EP__STATUS__CODE__OK);
    s_close ();
    //  A restart: the store has t1, the view is empty until the snapshot.
    ep_model_view_reset (s_view, GEN, 0);
    s_store = ep_store_new (s_path, termstore_migrations, termstore_migrations_count);
    s_core = terminators_new (s_store, s_view, &s_config, s_now);
    s_presence ("join", "r1");
    cr_assert_not (terminators_has_work (s_core, s_now), "an empty view must not retire anything");
    cr_assert_eq (terminators_begin (s_core), 0);
    terminators_work (s_core, s_now);
    cr_assert_eq (terminators_commit (s_core), 0);
    cr_assert_eq (s_state ("t1"), EP__TERMINATOR_STATE__ESTABLISHED);
    //  The snapshot arrives without r1: now it goes.
    terminators_model_loaded (s_core);
    s_work ();
    cr_assert_eq (s_state ("t1"), EP__TERMINATOR_STATE__DELETED);
}

Test (terminators_core, a_deleting_terminator_is_revived_by_a_newer_create_or_confirmed_by_validate)
{
    s_presence ("join", "r1");
    s_create ("r1", "t1", "s1", 3, EP__STATUS__CODE__OK);
    s_create ("r1", "t2", "s2", 3, EP__STATUS__CODE__OK);
    s_model (s_router ("r1", true, NULL, NULL), 0, NULL);      //  revision 4: nothing hosted
    s_work ();
    cr_assert_eq (s_state ("t1"), EP__TERMINATOR_STATE__DELETING);
    cr_assert_eq (s_state ("t2"), EP__TERMINATOR_STATE__DELETING);
    //  A create sent before the un-hosting does not bring it back...
    s_create ("r1", "t1", "s1", 3, EP__STATUS__CODE__FAILED_PRECONDITION);
    //  ...one after a re-hosting does.
    s_model (s_router ("r1", true, "s1", NULL), 0, NULL);      //  revision 5
    cr_assert_eq (s_create ("r1", "t1", "s1", 5, EP__STATUS__CODE__OK), EP__TERMINATOR_STATE__ESTABLISHED);
    cr_assert_eq (terminators_spins (s_core), 0);
    //  The router validates without t2: it confirms t2 is gone.
    s_req_t r;
    s_req (&r, "r1", 5);
    ep__terminator__init (&r.items [0]);
    r.items [0].id = "t1";
    r.items [0].service_id = "s1";
    r.listed [0] = &r.items [0];
    ep__terminator_validate__init (&r.validate);
    r.validate.n_terminators = 1;
    r.validate.terminators = r.listed;
    r.request.op_case = EP__TERMINATOR_REQUEST__OP_VALIDATE;
    r.request.validate = &r.validate;
    terminators_result_t result;
    s_call (&r.request, &result);
    cr_assert_eq (s_code (&result), EP__STATUS__CODE__OK);
    cr_assert_eq (result.reply.n_to_create + result.reply.n_to_delete, 0, "nothing to change for the router");
    terminators_result_clear (&result);
    cr_assert_eq (s_state ("t2"), EP__TERMINATOR_STATE__DELETED);
    cr_assert_str_eq (s_last_seen ("terminator.deleted")->reason, "router-confirmed (model revision 4)");
}
