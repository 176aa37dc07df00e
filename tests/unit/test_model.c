/*  test_model.c: the model's rules over a real SQLite store
    (modelstore_sqlite), without sockets. */
#include <criterion/criterion.h>
#include "ep_test.h"
#include "model.h"
#include "modelstore_sqlite.h"
#include "ep_codec.h"
#include "ep_replycache.h"

static char *s_dir;
static ep_store_t *s_db;
static modelstore_t *s_store;
static model_t *s_model;
static ep_output_item_t *s_output;  //  the change the last s_apply handed out, if any
static ep_caller_t s_caller = { .key = "K", .role = "operator", .name = "operator" };

static void
s_open (uint64_t retain)
{
    char *path = zsys_sprintf ("%s/model.db", s_dir);
    s_db = ep_store_new (path, modelstore_sqlite_migrations, modelstore_sqlite_migrations_count);
    cr_assert_not_null (s_db, "%s", ep_store_last_error ());
    s_store = modelstore_sqlite_new (s_db);
    s_model = model_new (s_store, retain);
    cr_assert_not_null (s_model);
    free (path);
}

static void
s_close (void)
{
    model_destroy (&s_model);
    modelstore_destroy (&s_store);
    ep_store_destroy (&s_db);
}

static void
s_setup (void)
{
    s_dir = ep_tmpdir_new ("model");
    s_open (1000);
}

static void
s_teardown (void)
{
    ep_output_item_destroy (&s_output);
    s_close ();
    ep_tmpdir_remove (&s_dir);
}

//  Entities built on the stack for requests.
static Ep__Service s_service_msg;
static Ep__Router s_router_msg;
static Ep__HostedService s_hosted [4];
static Ep__HostedService *s_hosted_ptrs [4];
static Ep__Entity s_entity;
static Ep__ModelWrite s_write;
static Ep__ModelRequest s_request;

static Ep__ModelRequest *
s_create_service (const char *id)
{
    ep__service__init (&s_service_msg);
    s_service_msg.id = (char *) id;
    ep__entity__init (&s_entity);
    s_entity.kind_case = EP__ENTITY__KIND_SERVICE;
    s_entity.service = &s_service_msg;
    ep__model_write__init (&s_write);
    s_write.has_op = true;
    s_write.op = EP__MODEL_WRITE__OP__CREATE;
    s_write.entity = &s_entity;
    ep__model_request__init (&s_request);
    s_request.request_id = "r";
    s_request.op_case = EP__MODEL_REQUEST__OP_WRITE;
    s_request.write = &s_write;
    return &s_request;
}

static Ep__ModelRequest *
s_router (Ep__ModelWrite__Op op, const char *id, const char *const *hosted)
{
    ep__router__init (&s_router_msg);
    s_router_msg.id = (char *) id;
    size_t n = 0;
    for (; hosted && hosted [n]; n++) {
        ep__hosted_service__init (&s_hosted [n]);
        s_hosted [n].service_id = (char *) hosted [n];
        s_hosted [n].has_cost = true;
        s_hosted [n].cost = 10;
        s_hosted_ptrs [n] = &s_hosted [n];
    }
    s_router_msg.n_hosted = n;
    s_router_msg.hosted = s_hosted_ptrs;
    ep__entity__init (&s_entity);
    s_entity.kind_case = EP__ENTITY__KIND_ROUTER;
    s_entity.router = &s_router_msg;
    ep__model_write__init (&s_write);
    s_write.has_op = true;
    s_write.op = op;
    s_write.entity = &s_entity;
    ep__model_request__init (&s_request);
    s_request.request_id = "r";
    s_request.op_case = EP__MODEL_REQUEST__OP_WRITE;
    s_request.write = &s_write;
    return &s_request;
}

static Ep__ModelRequest *
s_delete (Ep__EntityType type, const char *id, uint64_t expected)
{
    ep__model_write__init (&s_write);
    s_write.has_op = s_write.has_type = true;
    s_write.op = EP__MODEL_WRITE__OP__DELETE;
    s_write.type = type;
    s_write.id = (char *) id;
    s_write.has_expected_version = expected > 0;
    s_write.expected_version = expected;
    ep__model_request__init (&s_request);
    s_request.request_id = "r";
    s_request.op_case = EP__MODEL_REQUEST__OP_WRITE;
    s_request.write = &s_write;
    return &s_request;
}

//  Takes the outcome of a commit or read, which the SQLite store reports
//  before returning.
static void
s_set_rc (void *arg, int rc)
{
    *(int *) arg = rc;
}

static int
s_commit (void)
{
    int rc = 1;
    model_commit (s_model, s_set_rc, &rc);
    return rc;
}

static Ep__ModelChange *
s_change (void)
{
    return s_output? s_output->event->model_change: NULL;
}

//  One request in its own transaction; returns the status code.
static Ep__Status__Code
s_apply (Ep__ModelRequest *request, model_result_t *result)
{
    model_result_init (result, "r");
    cr_assert_eq (model_begin (s_model), 0);
    model_write (s_model, request, &s_caller, 1000, result);
    cr_assert_eq (s_commit (), 0);
    //  Keep the last output: the ones before are earlier batches'.
    ep_output_item_destroy (&s_output);
    ep_output_item_t *item;
    while ((item = model_next_output (s_model))) {
        ep_output_item_destroy (&s_output);
        s_output = item;
    }
    if (s_output) {
        cr_assert_str_eq (s_output->topic, "model.change");
        cr_assert_eq ((uint64_t) s_output->seq, s_change ()->revision);
    }
    return result->status.code;
}

static Ep__Status__Code
s_apply_clear (Ep__ModelRequest *request)
{
    model_result_t result;
    Ep__Status__Code code = s_apply (request, &result);
    model_result_clear (&result);
    return code;
}

static Ep__Status__Code
s_read (Ep__ModelRequest *request, model_result_t *result)
{
    model_result_init (result, "r");
    int rc = 1;
    model_read (s_model, request, 1000, result, s_set_rc, &rc);
    cr_assert_eq (rc, 0);
    return result->status.code;
}

Test (model, create_assigns_revisions_and_meta, .init = s_setup, .fini = s_teardown)
{
    model_result_t result;
    cr_assert_eq (s_apply (s_create_service ("svc1"), &result), EP__STATUS__CODE__OK);
    cr_assert_eq (result.reply.revision, 1);
    cr_assert_eq (result.reply.n_entities, 1);
    Ep__Service *svc = result.reply.entities [0]->service;
    cr_assert_str_eq (svc->id, "svc1");
    cr_assert_str_eq (svc->name, "svc1", "name defaults to the id");
    cr_assert (svc->enabled, "enabled by default");
    cr_assert_eq (svc->meta->version, 1);
    cr_assert_eq (svc->meta->create_revision, 1);
    cr_assert_str_eq (svc->meta->updated_by->role, "operator");
    cr_assert_not_null (s_change ());
    cr_assert_eq (s_change ()->revision, 1);
    cr_assert_str_eq (s_change ()->generation, model_generation (s_model));
    cr_assert_eq (s_change ()->n_ops, 1);
    cr_assert_eq (s_change ()->ops [0]->kind, EP__MODEL_OP__KIND__CREATED);
    model_result_clear (&result);

    const char *hosted [] = { "svc1", NULL };
    cr_assert_eq (s_apply (s_router (EP__MODEL_WRITE__OP__CREATE, "r1", hosted), &result), EP__STATUS__CODE__OK);
    cr_assert_eq (result.reply.revision, 2);
    cr_assert_eq (s_change ()->ops [0]->n_hosted_added, 1);
    cr_assert_str_eq (s_change ()->ops [0]->hosted_added [0], "svc1");
    model_result_clear (&result);
    cr_assert_eq (model_revision (s_model), 2);
}

Test (model, bad_input_names_the_field, .init = s_setup, .fini = s_teardown)
{
    model_result_t result;
    cr_assert_eq (s_apply (s_create_service ("bad id!"), &result), EP__STATUS__CODE__INVALID_ARGUMENT);
    cr_assert (strstr (result.status.message, "service.id"), "%s", result.status.message);
    cr_assert_null (s_change ());
    model_result_clear (&result);
    const char *hosted [] = { "nope", NULL };
    cr_assert_eq (s_apply (s_router (EP__MODEL_WRITE__OP__CREATE, "r1", hosted), &result),
                  EP__STATUS__CODE__FAILED_PRECONDITION);
    cr_assert (strstr (result.status.message, "\"nope\" does not exist"), "%s", result.status.message);
    model_result_clear (&result);
    s_apply_clear (s_create_service ("svc1"));
    s_router (EP__MODEL_WRITE__OP__CREATE, "r1", (const char *[]) { "svc1", NULL });
    s_hosted [0].cost = 70000;
    cr_assert_eq (s_apply (&s_request, &result), EP__STATUS__CODE__INVALID_ARGUMENT);
    cr_assert (strstr (result.status.message, "cost"), "%s", result.status.message);
    model_result_clear (&result);
    //  Failures consumed no revision.
    cr_assert_eq (model_revision (s_model), 1);
    cr_assert_eq (s_apply_clear (s_create_service ("svc1")), EP__STATUS__CODE__ALREADY_EXISTS);
}

//  A service's criticality: normal unless said, one of four values (a
//  number protobuf-c took off the wire unchecked is refused, naming them),
//  kept by an update that does not name it, replaced by one that does.
Test (model, a_services_criticality_is_checked_defaulted_and_patched, .init = s_setup, .fini = s_teardown)
{
    model_result_t result;
    cr_assert_eq (s_apply (s_create_service ("plain"), &result), EP__STATUS__CODE__OK);
    Ep__Service *svc = result.reply.entities [0]->service;
    cr_assert (svc->has_criticality, "a created service says its criticality");
    cr_assert_eq (svc->criticality, EP__CRITICALITY__CRITICALITY_NORMAL);
    model_result_clear (&result);

    //  An unknown value, as bytes on the wire: unpacked as it is, refused.
    s_create_service ("odd");
    s_service_msg.has_criticality = true;
    s_service_msg.criticality = (Ep__Criticality) 9;
    size_t size = ep__model_request__get_packed_size (&s_request);
    uint8_t *bytes = (uint8_t *) malloc (size);
    ep__model_request__pack (&s_request, bytes);
    Ep__ModelRequest *wire = ep__model_request__unpack (NULL, size, bytes);
    free (bytes);
    cr_assert_not_null (wire);
    cr_assert_eq ((int) wire->write->entity->service->criticality, 9);
    cr_assert_eq (s_apply (wire, &result), EP__STATUS__CODE__INVALID_ARGUMENT);
    cr_assert (strstr (result.status.message, "service.criticality 9: use critical, high, normal or low"),
               "%s", result.status.message);
    model_result_clear (&result);
    ep__model_request__free_unpacked (wire, NULL);
    cr_assert_eq (model_revision (s_model), 1, "the refusal used no revision");

    s_create_service ("pay");
    s_service_msg.has_criticality = true;
    s_service_msg.criticality = EP__CRITICALITY__CRITICALITY_CRITICAL;
    cr_assert_eq (s_apply_clear (&s_request), EP__STATUS__CODE__OK);
    //  An update naming only the name keeps the criticality.
    s_create_service ("pay");
    s_write.op = EP__MODEL_WRITE__OP__UPDATE;
    s_service_msg.name = "payments";
    cr_assert_eq (s_apply (&s_request, &result), EP__STATUS__CODE__OK);
    svc = result.reply.entities [0]->service;
    cr_assert_str_eq (svc->name, "payments");
    cr_assert_eq (svc->criticality, EP__CRITICALITY__CRITICALITY_CRITICAL);
    model_result_clear (&result);
    //  One naming it replaces it, and the change carries it to followers.
    s_create_service ("pay");
    s_write.op = EP__MODEL_WRITE__OP__UPDATE;
    s_service_msg.has_criticality = true;
    s_service_msg.criticality = EP__CRITICALITY__CRITICALITY_LOW;
    cr_assert_eq (s_apply (&s_request, &result), EP__STATUS__CODE__OK);
    cr_assert_eq (result.reply.entities [0]->service->criticality, EP__CRITICALITY__CRITICALITY_LOW);
    cr_assert_str_eq (result.reply.entities [0]->service->name, "payments");
    cr_assert_eq (s_change ()->ops [0]->entity->service->criticality, EP__CRITICALITY__CRITICALITY_LOW);
    model_result_clear (&result);
}

Test (model, compare_and_swap, .init = s_setup, .fini = s_teardown)
{
    s_apply_clear (s_create_service ("svc1"));
    s_apply_clear (s_router (EP__MODEL_WRITE__OP__CREATE, "r1", NULL));      //  version 2
    model_result_t result;
    s_router (EP__MODEL_WRITE__OP__UPDATE, "r1", (const char *[]) { "svc1", NULL });
    s_write.has_expected_version = true;
    s_write.expected_version = 1;
    cr_assert_eq (s_apply (&s_request, &result), EP__STATUS__CODE__CONFLICT);
    cr_assert (result.reply.has_current_version);
    cr_assert_eq (result.reply.current_version, 2);
    model_result_clear (&result);
    s_write.expected_version = 2;
    cr_assert_eq (s_apply (&s_request, &result), EP__STATUS__CODE__OK);
    cr_assert_eq (result.reply.entities [0]->router->meta->version, 3);
    cr_assert_eq (result.reply.entities [0]->router->meta->create_revision, 2);
    cr_assert_eq (result.reply.entities [0]->router->n_hosted, 1);
    model_result_clear (&result);
    //  An update without hosted keeps the hosted list; `clear` empties it.
    s_router (EP__MODEL_WRITE__OP__UPDATE, "r1", NULL);
    s_router_msg.name = "renamed";
    cr_assert_eq (s_apply (&s_request, &result), EP__STATUS__CODE__OK);
    cr_assert_eq (result.reply.entities [0]->router->n_hosted, 1);
    cr_assert_str_eq (result.reply.entities [0]->router->name, "renamed");
    model_result_clear (&result);
    char *clear [] = { "hosted" };
    s_router (EP__MODEL_WRITE__OP__UPDATE, "r1", NULL);
    s_write.n_clear = 1;
    s_write.clear = clear;
    cr_assert_eq (s_apply (&s_request, &result), EP__STATUS__CODE__OK);
    cr_assert_eq (result.reply.entities [0]->router->n_hosted, 0);
    cr_assert_eq (s_change ()->ops [0]->n_hosted_removed, 1);
    model_result_clear (&result);
}

Test (model, deleting_a_service_unhosts_it_in_the_same_revision, .init = s_setup, .fini = s_teardown)
{
    s_apply_clear (s_create_service ("svc1"));
    s_apply_clear (s_create_service ("svc2"));
    s_apply_clear (s_router (EP__MODEL_WRITE__OP__CREATE, "r1", (const char *[]) { "svc1", "svc2", NULL }));
    s_apply_clear (s_router (EP__MODEL_WRITE__OP__CREATE, "r2", (const char *[]) { "svc1", NULL }));
    model_result_t result;
    cr_assert_eq (s_apply (s_delete (EP__ENTITY_TYPE__ENTITY_SERVICE, "svc1", 0), &result), EP__STATUS__CODE__OK);
    Ep__ModelChange *change = s_change ();
    cr_assert_eq (change->revision, 5);
    cr_assert_eq (change->n_ops, 3);
    cr_assert_eq (change->ops [0]->kind, EP__MODEL_OP__KIND__UPDATED);
    cr_assert_str_eq (change->ops [0]->id, "r1");
    cr_assert_str_eq (change->ops [0]->hosted_removed [0], "svc1");
    cr_assert_eq (change->ops [0]->entity->router->n_hosted, 1);
    cr_assert_eq (change->ops [0]->entity->router->meta->version, 5);
    cr_assert_str_eq (change->ops [1]->id, "r2");
    cr_assert_eq (change->ops [2]->kind, EP__MODEL_OP__KIND__DELETED);
    cr_assert_str_eq (change->ops [2]->id, "svc1");
    model_result_clear (&result);
    //  Routers hosting svc1: none left.
    Ep__ListFilter filter = EP__LIST_FILTER__INIT;
    filter.has_type = true;
    filter.type = EP__ENTITY_TYPE__ENTITY_ROUTER;
    filter.hosts_service = "svc1";
    Ep__ModelRequest list = EP__MODEL_REQUEST__INIT;
    list.request_id = "l";
    list.op_case = EP__MODEL_REQUEST__OP_LIST;
    list.list = &filter;
    cr_assert_eq (s_read (&list, &result), EP__STATUS__CODE__OK);
    cr_assert_eq (result.reply.n_entities, 0);
    model_result_clear (&result);
    cr_assert_eq (s_apply_clear (s_delete (EP__ENTITY_TYPE__ENTITY_SERVICE, "svc1", 0)), EP__STATUS__CODE__NOT_FOUND);
}

Test (model, transaction_is_all_or_nothing, .init = s_setup, .fini = s_teardown)
{
    s_apply_clear (s_create_service ("svc1"));
    //  txn: create svc2, then a router hosting a missing service: fails whole.
    Ep__Service svc2 = EP__SERVICE__INIT;
    svc2.id = "svc2";
    Ep__Entity e1 = EP__ENTITY__INIT;
    e1.kind_case = EP__ENTITY__KIND_SERVICE;
    e1.service = &svc2;
    Ep__ModelWrite w1 = EP__MODEL_WRITE__INIT;
    w1.has_op = true;
    w1.op = EP__MODEL_WRITE__OP__CREATE;
    w1.entity = &e1;
    s_router (EP__MODEL_WRITE__OP__CREATE, "r1", (const char *[]) { "svc2", "missing", NULL });
    Ep__ModelWrite *writes [] = { &w1, &s_write };
    Ep__ModelTxn txn = EP__MODEL_TXN__INIT;
    txn.n_writes = 2;
    txn.writes = writes;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.request_id = "t";
    request.op_case = EP__MODEL_REQUEST__OP_TXN;
    request.txn = &txn;
    model_result_t result;
    cr_assert_eq (s_apply (&request, &result), EP__STATUS__CODE__FAILED_PRECONDITION);
    cr_assert (strstr (result.status.message, "write 2:"), "%s", result.status.message);
    model_result_clear (&result);
    cr_assert_eq (model_revision (s_model), 1);
    size_t count;
    Ep__Entity **all = model_entities (s_model, &count);
    cr_assert_eq (count, 1, "svc2 must not exist after the failed txn");
    for (size_t i = 0; i < count; i++)
        ep__entity__free_unpacked (all [i], NULL);
    free (all);
    //  Fixed: one revision for both writes.
    s_hosted [1].service_id = "svc1";
    cr_assert_eq (s_apply (&request, &result), EP__STATUS__CODE__OK);
    cr_assert_eq (result.reply.revision, 2);
    cr_assert_eq (s_change ()->n_ops, 2);
    model_result_clear (&result);
}

Test (model, a_conflict_in_a_group_does_not_abort_the_others, .init = s_setup, .fini = s_teardown)
{
    s_apply_clear (s_create_service ("svc1"));
    cr_assert_eq (model_begin (s_model), 0);
    model_result_t a, b, c;
    model_result_init (&a, "a");
    model_result_init (&b, "b");
    model_result_init (&c, "c");
    model_write (s_model, s_create_service ("svc2"), &s_caller, 1, &a);
    model_write (s_model, s_create_service ("svc1"), &s_caller, 1, &b);     //  exists
    model_write (s_model, s_create_service ("svc3"), &s_caller, 1, &c);
    cr_assert_eq (s_commit (), 0);
    cr_assert_eq (a.status.code, EP__STATUS__CODE__OK);
    cr_assert_eq (b.status.code, EP__STATUS__CODE__ALREADY_EXISTS);
    cr_assert_eq (c.status.code, EP__STATUS__CODE__OK);
    cr_assert_eq (a.reply.revision, 2);
    cr_assert_eq (c.reply.revision, 3);
    cr_assert_eq (model_revision (s_model), 3);
    model_result_clear (&a);
    model_result_clear (&b);
    model_result_clear (&c);
}

Test (model, changes_since_and_resync, .init = s_setup, .fini = s_teardown)
{
    s_close ();
    s_open (3);                 //  keep only 3 revisions
    char id [8];
    for (int i = 0; i < 6; i++) {
        snprintf (id, sizeof id, "s%d", i);
        s_apply_clear (s_create_service (id));
    }
    Ep__ChangesRequest changes = EP__CHANGES_REQUEST__INIT;
    changes.has_since_revision = true;
    changes.since_revision = 3;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.request_id = "c";
    request.op_case = EP__MODEL_REQUEST__OP_CHANGES;
    request.changes = &changes;
    model_result_t result;
    cr_assert_eq (s_read (&request, &result), EP__STATUS__CODE__OK);
    cr_assert_eq (result.reply.n_changes, 3);
    cr_assert_eq (result.reply.changes [0]->revision, 4);
    cr_assert_eq (result.reply.changes [2]->revision, 6);
    model_result_clear (&result);
    changes.since_revision = 1;
    cr_assert_eq (s_read (&request, &result), EP__STATUS__CODE__RESYNC);
    cr_assert_eq (result.reply.oldest_retained, 4);
    model_result_clear (&result);
}

Test (model, snapshot_pages_are_pinned_to_one_revision, .init = s_setup, .fini = s_teardown)
{
    char id [8];
    for (int i = 0; i < 5; i++) {
        snprintf (id, sizeof id, "s%d", i);
        s_apply_clear (s_create_service (id));
    }
    Ep__SnapshotRequest snap = EP__SNAPSHOT_REQUEST__INIT;
    snap.has_page_size = true;
    snap.page_size = 2;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.request_id = "s";
    request.op_case = EP__MODEL_REQUEST__OP_SNAPSHOT;
    request.snapshot = &snap;
    model_result_t result;
    cr_assert_eq (s_read (&request, &result), EP__STATUS__CODE__OK);
    cr_assert_eq (result.reply.revision, 5);
    cr_assert_eq (result.reply.n_entities, 2);
    char *token = strdup (result.reply.next_page_token);
    model_result_clear (&result);
    //  Writes after the first page: a new service and a deleted one.
    s_apply_clear (s_create_service ("s9"));
    s_apply_clear (s_delete (EP__ENTITY_TYPE__ENTITY_SERVICE, "s4", 0));
    size_t total = 2;
    while (token) {
        snap.page_token = token;
        cr_assert_eq (s_read (&request, &result), EP__STATUS__CODE__OK);
        cr_assert_eq (result.reply.revision, 5, "every page is at the first page's revision");
        for (size_t i = 0; i < result.reply.n_entities; i++)
            cr_assert_str_neq (result.reply.entities [i]->service->id, "s9");
        total += result.reply.n_entities;
        free (token);
        token = result.reply.next_page_token? strdup (result.reply.next_page_token): NULL;
        model_result_clear (&result);
    }
    cr_assert_eq (total, 5, "s4 is still in the pinned snapshot, s9 is not");
    snap.page_token = "0000000000000000:0:x";
    cr_assert_eq (s_read (&request, &result), EP__STATUS__CODE__FAILED_PRECONDITION);
    model_result_clear (&result);
}

Test (model, list_filters_and_pages, .init = s_setup, .fini = s_teardown)
{
    char id [8];
    for (int i = 0; i < 7; i++) {
        snprintf (id, sizeof id, "s%d", i);
        s_create_service (id);
        Ep__Tag tag = EP__TAG__INIT;
        tag.key = "tier";
        tag.value = i % 2? "gold": "silver";
        Ep__Tag *tags [] = { &tag };
        s_service_msg.n_tags = 1;
        s_service_msg.tags = tags;
        cr_assert_eq (s_apply_clear (&s_request), EP__STATUS__CODE__OK);
    }
    Ep__Tag want = EP__TAG__INIT;
    want.key = "tier";
    want.value = "gold";
    Ep__Tag *wants [] = { &want };
    Ep__ListFilter filter = EP__LIST_FILTER__INIT;
    filter.has_type = filter.has_page_size = true;
    filter.type = EP__ENTITY_TYPE__ENTITY_SERVICE;
    filter.page_size = 2;
    filter.n_tags = 1;
    filter.tags = wants;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.request_id = "l";
    request.op_case = EP__MODEL_REQUEST__OP_LIST;
    request.list = &filter;
    model_result_t result;
    size_t seen = 0;
    char *token = NULL;
    do {
        filter.page_token = token;
        cr_assert_eq (s_read (&request, &result), EP__STATUS__CODE__OK);
        for (size_t i = 0; i < result.reply.n_entities; i++)
            cr_assert_str_eq (result.reply.entities [i]->service->tags [0]->value, "gold");
        seen += result.reply.n_entities;
        free (token);
        token = result.reply.next_page_token? strdup (result.reply.next_page_token): NULL;
        model_result_clear (&result);
    } while (token);
    cr_assert_eq (seen, 3);
}

Test (model, revision_survives_reopen_and_backup_restore_gets_new_generation,
      .init = s_setup, .fini = s_teardown)
{
    s_apply_clear (s_create_service ("svc1"));
    s_apply_clear (s_create_service ("svc2"));
    char *generation = strdup (model_generation (s_model));
    char *backup = zsys_sprintf ("%s/backup.db", s_dir);
    Ep__BackupRequest backup_request = EP__BACKUP_REQUEST__INIT;
    backup_request.path = backup;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.op_case = EP__MODEL_REQUEST__OP_BACKUP;
    request.backup = &backup_request;
    model_result_t result;
    cr_assert_eq (s_read (&request, &result), EP__STATUS__CODE__OK, "%s", result.status.message);
    model_result_clear (&result);
    s_apply_clear (s_create_service ("svc3"));
    s_close ();
    s_open (1000);
    cr_assert_eq (model_revision (s_model), 3);
    cr_assert_str_eq (model_generation (s_model), generation);
    s_close ();
    //  Restore: the backup replaces the store.
    char *path = zsys_sprintf ("%s/model.db", s_dir);
    char *cmd = zsys_sprintf ("rm -f '%s' '%s-wal' '%s-shm' && cp '%s' '%s'", path, path, path, backup, path);
    cr_assert_eq (system (cmd), 0);
    s_open (1000);
    cr_assert_eq (model_revision (s_model), 2);
    cr_assert_str_neq (model_generation (s_model), generation, "a restored store needs a new generation");
    free (cmd);
    free (path);
    free (backup);
    free (generation);
}

Test (model, a_store_of_the_previous_schema_is_migrated_and_keeps_its_data,
      .init = s_setup, .fini = s_teardown)
{
    //  A store as the binary before the durable replies wrote it: the
    //  first migration only.
    s_close ();
    char *path = zsys_sprintf ("%s/model.db", s_dir);
    char *cmd = zsys_sprintf ("rm -f '%s' '%s-wal' '%s-shm'", path, path, path);
    cr_assert_eq (system (cmd), 0);
    s_db = ep_store_new (path, modelstore_sqlite_migrations, 1);
    cr_assert_not_null (s_db, "%s", ep_store_last_error ());
    s_store = modelstore_sqlite_new (s_db);
    s_model = model_new (s_store, 1000);
    cr_assert_not_null (s_model);
    s_apply_clear (s_create_service ("svc1"));
    char *generation = strdup (model_generation (s_model));
    s_close ();

    s_open (1000);
    cr_assert_eq (ep_store_schema_version (s_db), (int) modelstore_sqlite_migrations_count);
    cr_assert_eq (model_revision (s_model), 1);
    cr_assert_str_eq (model_generation (s_model), generation);
    //  The new table takes saved replies.
    zframe_t *reply = zframe_new ("reply", 5);
    cr_assert_eq (ep_store_begin (s_db), 0);
    cr_assert_eq (ep_replycache_save (s_db, "K", "id1", "request", 7, reply, 1000), 0,
                  "%s", ep_store_last_error ());
    cr_assert_eq (ep_store_commit (s_db), 0);
    ep_replycache_t *cache = ep_replycache_new (10, 60000);
    cr_assert_eq (ep_replycache_load (cache, s_db, 2000, 0), 1, "%s", ep_store_last_error ());
    zframe_t *found = NULL;
    cr_assert_eq (ep_replycache_lookup (cache, "K", "id1", "request", 7, 0, &found), EP_REPLYCACHE_HIT);
    cr_assert (zframe_eq (found, reply));
    ep_replycache_destroy (&cache);
    zframe_destroy (&reply);
    free (generation);
    free (cmd);
    free (path);
}

//  A router whose n_tags tags of 250 characters make it large.
static Ep__ModelRequest *
s_large_router (const char *id, size_t n_tags)
{
    static Ep__Tag tags [20000];
    static Ep__Tag *tag_ptrs [20000];
    static char keys [20000][8];
    static char value [251];
    EP_ASSERT (n_tags <= 20000);
    memset (value, 'v', 250);
    for (size_t i = 0; i < n_tags; i++) {
        ep__tag__init (&tags [i]);
        snprintf (keys [i], sizeof keys [i], "k%zu", i);
        tags [i].key = keys [i];
        tags [i].value = value;
        tag_ptrs [i] = &tags [i];
    }
    Ep__ModelRequest *request = s_router (EP__MODEL_WRITE__OP__CREATE, id, NULL);
    s_router_msg.n_tags = n_tags;
    s_router_msg.tags = tag_ptrs;
    return request;
}

Test (model, changes_and_snapshot_pages_fit_in_one_reply, .init = s_setup, .fini = s_teardown)
{
    //  20 revisions of ~260 KB: more than one reply (4 MiB) can carry.
    char id [8];
    for (int i = 0; i < 20; i++) {
        snprintf (id, sizeof id, "r%02d", i);
        cr_assert_eq (s_apply_clear (s_large_router (id, 1000)), EP__STATUS__CODE__OK);
    }
    Ep__ChangesRequest changes = EP__CHANGES_REQUEST__INIT;
    changes.has_since_revision = true;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.request_id = "c";
    request.op_case = EP__MODEL_REQUEST__OP_CHANGES;
    request.changes = &changes;
    uint64_t replies = 0;
    while (changes.since_revision < 20) {
        model_result_t result;
        cr_assert_eq (s_read (&request, &result), EP__STATUS__CODE__OK);
        cr_assert_gt (result.reply.n_changes, 0);
        cr_assert_leq (ep__model_reply__get_packed_size (&result.reply), EP_CODEC_DEFAULT_CAP);
        cr_assert_eq (result.reply.changes [0]->revision, changes.since_revision + 1);
        changes.since_revision = result.reply.changes [result.reply.n_changes - 1]->revision;
        model_result_clear (&result);
        replies++;
    }
    cr_assert_gt (replies, 1, "all of it fitted in one reply: make the routers larger");

    //  A snapshot asked for in pages of 1000 entities is cut by size too.
    Ep__SnapshotRequest snap = EP__SNAPSHOT_REQUEST__INIT;
    snap.has_page_size = true;
    snap.page_size = 1000;
    request.op_case = EP__MODEL_REQUEST__OP_SNAPSHOT;
    request.snapshot = &snap;
    size_t total = 0, pages = 0;
    char *token = NULL;
    do {
        snap.page_token = token;
        model_result_t result;
        cr_assert_eq (s_read (&request, &result), EP__STATUS__CODE__OK);
        cr_assert_gt (result.reply.n_entities, 0);
        cr_assert_leq (ep__model_reply__get_packed_size (&result.reply), EP_CODEC_DEFAULT_CAP);
        total += result.reply.n_entities;
        pages++;
        free (token);
        token = result.reply.next_page_token? strdup (result.reply.next_page_token): NULL;
        model_result_clear (&result);
    } while (token);
    cr_assert_eq (total, 20);
    cr_assert_gt (pages, 1);
}

Test (model, a_revision_too_large_for_a_reply_is_refused, .init = s_setup, .fini = s_teardown)
{
    //  ~4.5 MB in one write: no changes reply could carry the revision.
    model_result_t result;
    cr_assert_eq (s_apply (s_large_router ("huge", 17000), &result), EP__STATUS__CODE__INVALID_ARGUMENT);
    cr_assert (strstr (result.status.message, "split it"), "%s", result.status.message);
    cr_assert_null (s_change ());
    model_result_clear (&result);
    //  Nothing was written, no revision used.
    cr_assert_eq (model_revision (s_model), 0);
    cr_assert_eq (s_apply_clear (s_large_router ("fits", 1000)), EP__STATUS__CODE__OK);
    cr_assert_eq (model_revision (s_model), 1);
}
