/*  test_model_view.c: the follower's copy of the model, without sockets:
    ordering, idempotence, gaps, generations, atomic multi-part revisions,
    observers, the hosting index and the digest. */
#include <criterion/criterion.h>
#include "ep_model_view.h"

#define GEN "gen-a"

//  Entities built by the tests, freed at the end of each test.
static zlistx_t *s_arena;

static void
s_entity_free (void **item)
{
    if (*item) {
        ep__entity__free_unpacked ((Ep__Entity *) *item, NULL);
        *item = NULL;
    }
}

static void
s_setup (void)
{
    s_arena = zlistx_new ();
    zlistx_set_destructor (s_arena, s_entity_free);
}

static void
s_teardown (void)
{
    zlistx_destroy (&s_arena);
}

TestSuite (model_view, .init = s_setup, .fini = s_teardown);

//  A router with up to two hosted services and one tag.
static Ep__Entity *
s_router (const char *id, const char *name, const char *hosted1, const char *hosted2)
{
    Ep__HostedService hosted [2] = { EP__HOSTED_SERVICE__INIT, EP__HOSTED_SERVICE__INIT };
    Ep__HostedService *hosted_p [2] = { &hosted [0], &hosted [1] };
    size_t n = 0;
    if (hosted1)
        hosted [n++].service_id = (char *) hosted1;
    if (hosted2)
        hosted [n++].service_id = (char *) hosted2;
    Ep__Tag tag = EP__TAG__INIT;
    tag.key = "site";
    tag.value = "lab";
    Ep__Tag *tags [] = { &tag };
    Ep__Router router = EP__ROUTER__INIT;
    router.id = (char *) id;
    router.name = (char *) name;
    router.has_enabled = true;
    router.enabled = true;
    router.n_hosted = n;
    router.hosted = hosted_p;
    router.n_tags = 1;
    router.tags = tags;
    Ep__Entity entity = EP__ENTITY__INIT;
    entity.kind_case = EP__ENTITY__KIND_ROUTER;
    entity.router = &router;
    Ep__Entity *copy = ep_entity_dup (&entity);
    zlistx_add_end (s_arena, copy);
    return copy;
}

static Ep__Entity *
s_service (const char *id, const char *name)
{
    Ep__Service service = EP__SERVICE__INIT;
    service.id = (char *) id;
    service.name = (char *) name;
    Ep__Entity entity = EP__ENTITY__INIT;
    entity.kind_case = EP__ENTITY__KIND_SERVICE;
    entity.service = &service;
    Ep__Entity *copy = ep_entity_dup (&entity);
    zlistx_add_end (s_arena, copy);
    return copy;
}

static const char *
s_name (const Ep__Entity *entity)
{
    return entity->kind_case == EP__ENTITY__KIND_ROUTER? entity->router->name:
           entity->kind_case == EP__ENTITY__KIND_SERVICE? entity->service->name: NULL;
}

//  A change under construction (ops point into the arena).
typedef struct {
    Ep__ModelChange change;     //  the change
    Ep__ModelOp ops [8];        //  its ops
    Ep__ModelOp *op_p [8];      //  pointers for change.ops
} s_change_t;

static void
s_change_init (s_change_t *self, const char *generation, uint64_t revision)
{
    memset (self, 0, sizeof *self);
    Ep__ModelChange init = EP__MODEL_CHANGE__INIT;
    self->change = init;
    self->change.generation = (char *) generation;
    self->change.has_revision = true;
    self->change.revision = revision;
    self->change.ops = self->op_p;
}

static void
s_change_parts (s_change_t *self, uint32_t part, uint32_t parts)
{
    self->change.has_part = self->change.has_parts = true;
    self->change.part = part;
    self->change.parts = parts;
}

static void
s_change_put (s_change_t *self, Ep__ModelOp__Kind kind, Ep__Entity *entity)
{
    cr_assert_lt (self->change.n_ops, 8);
    Ep__ModelOp init = EP__MODEL_OP__INIT;
    Ep__ModelOp *op = &self->ops [self->change.n_ops];
    *op = init;
    op->has_kind = true;
    op->kind = kind;
    op->has_type = true;
    op->type = ep_entity_type (entity);
    op->id = (char *) ep_entity_id (entity);
    op->entity = entity;
    self->op_p [self->change.n_ops++] = op;
}

static void
s_change_delete (s_change_t *self, Ep__EntityType type, const char *id)
{
    cr_assert_lt (self->change.n_ops, 8);
    Ep__ModelOp init = EP__MODEL_OP__INIT;
    Ep__ModelOp *op = &self->ops [self->change.n_ops];
    *op = init;
    op->has_kind = true;
    op->kind = EP__MODEL_OP__KIND__DELETED;
    op->has_type = true;
    op->type = type;
    op->id = (char *) id;
    self->op_p [self->change.n_ops++] = op;
}

//  Applies a one-op change that creates or updates entity.
static ep_model_apply_t
s_apply_put (ep_model_view_t *view, const char *generation, uint64_t revision,
             Ep__Entity *entity)
{
    s_change_t change;
    s_change_init (&change, generation, revision);
    s_change_put (&change, EP__MODEL_OP__KIND__UPDATED, entity);
    return ep_model_view_apply (view, &change.change);
}

//  What an observer saw.
typedef struct {
    ep_model_view_t *view;      //  the view, to look up from the observer
    size_t count;               //  events
    Ep__ModelOp__Kind kinds [16];
    char ids [16][65];
    char before [16][65];       //  name before, "" if none
    char after [16][65];        //  name after, "" if none
    uint64_t revisions [16];
    bool ops [16];              //  event carried the op
    bool saw_other [16];        //  "s1" was visible during the call
} s_seen_t;

static void
s_observe (void *arg, const ep_model_event_t *event)
{
    s_seen_t *seen = (s_seen_t *) arg;
    cr_assert_lt (seen->count, 16);
    size_t i = seen->count++;
    seen->kinds [i] = event->kind;
    snprintf (seen->ids [i], 65, "%s", event->id);
    snprintf (seen->before [i], 65, "%s", event->before? s_name (event->before): "");
    snprintf (seen->after [i], 65, "%s", event->after? s_name (event->after): "");
    seen->revisions [i] = event->revision;
    seen->ops [i] = event->op != NULL;
    seen->saw_other [i] = ep_model_view_get (seen->view, EP__ENTITY_TYPE__ENTITY_SERVICE, "s1") != NULL;
}

static ep_model_view_t *
s_view (s_seen_t *seen)
{
    ep_model_view_t *view = ep_model_view_new ();
    ep_model_view_reset (view, GEN, 0);
    if (seen) {
        memset (seen, 0, sizeof *seen);
        seen->view = view;
        ep_model_view_set_observer (view, s_observe, seen);
    }
    return view;
}

Test (model_view, applies_changes_in_order)
{
    ep_model_view_t *view = s_view (NULL);
    cr_assert_eq (s_apply_put (view, GEN, 1, s_router ("r1", "one", NULL, NULL)), EP_MODEL_APPLIED);
    cr_assert_eq (s_apply_put (view, GEN, 2, s_service ("s1", "web")), EP_MODEL_APPLIED);
    cr_assert_eq (s_apply_put (view, GEN, 3, s_router ("r1", "uno", NULL, NULL)), EP_MODEL_APPLIED);
    cr_assert_eq (ep_model_view_revision (view), 3);
    cr_assert_str_eq (ep_model_view_generation (view), GEN);
    cr_assert_eq (ep_model_view_size (view), 2);
    cr_assert_eq (ep_model_view_count (view, EP__ENTITY_TYPE__ENTITY_ROUTER), 1);
    const Ep__Entity *r1 = ep_model_view_get (view, EP__ENTITY_TYPE__ENTITY_ROUTER, "r1");
    cr_assert_not_null (r1);
    cr_assert_str_eq (r1->router->name, "uno");
    cr_assert_null (ep_model_view_get (view, EP__ENTITY_TYPE__ENTITY_SERVICE, "r1"));
    ep_model_view_destroy (&view);
    cr_assert_null (view);
}

Test (model_view, old_revisions_are_ignored)
{
    s_seen_t seen;
    ep_model_view_t *view = s_view (&seen);
    cr_assert_eq (s_apply_put (view, GEN, 1, s_router ("r1", "one", NULL, NULL)), EP_MODEL_APPLIED);
    cr_assert_eq (s_apply_put (view, GEN, 2, s_router ("r1", "two", NULL, NULL)), EP_MODEL_APPLIED);
    //  A replay of revision 1 (or 2) changes nothing and tells nobody.
    cr_assert_eq (s_apply_put (view, GEN, 1, s_router ("r1", "one", NULL, NULL)), EP_MODEL_OLD);
    cr_assert_eq (s_apply_put (view, GEN, 2, s_router ("r1", "two", NULL, NULL)), EP_MODEL_OLD);
    cr_assert_eq (seen.count, 2);
    cr_assert_eq (ep_model_view_revision (view), 2);
    cr_assert_str_eq (ep_model_view_get (view, EP__ENTITY_TYPE__ENTITY_ROUTER, "r1")->router->name, "two");
    ep_model_view_destroy (&view);
}

Test (model_view, gap_is_reported_and_not_applied)
{
    ep_model_view_t *view = s_view (NULL);
    cr_assert_eq (s_apply_put (view, GEN, 1, s_router ("r1", "one", NULL, NULL)), EP_MODEL_APPLIED);
    cr_assert_eq (s_apply_put (view, GEN, 3, s_router ("r3", "three", NULL, NULL)), EP_MODEL_GAP);
    cr_assert_null (ep_model_view_get (view, EP__ENTITY_TYPE__ENTITY_ROUTER, "r3"));
    cr_assert_eq (ep_model_view_revision (view), 1);
    //  Filling the hole lets the later revision in.
    cr_assert_eq (s_apply_put (view, GEN, 2, s_router ("r2", "two", NULL, NULL)), EP_MODEL_APPLIED);
    cr_assert_eq (s_apply_put (view, GEN, 3, s_router ("r3", "three", NULL, NULL)), EP_MODEL_APPLIED);
    cr_assert_eq (ep_model_view_size (view), 3);
    ep_model_view_destroy (&view);
}

Test (model_view, other_generation_asks_for_a_snapshot)
{
    ep_model_view_t *view = ep_model_view_new ();
    //  Nothing loaded yet: any change needs a snapshot first.
    cr_assert_eq (s_apply_put (view, GEN, 1, s_router ("r1", "one", NULL, NULL)), EP_MODEL_GENERATION);
    cr_assert_null (ep_model_view_generation (view));
    ep_model_view_reset (view, GEN, 5);
    cr_assert_eq (s_apply_put (view, "gen-b", 6, s_router ("r1", "one", NULL, NULL)), EP_MODEL_GENERATION);
    //  Even a lower revision of another generation is not "old": a restore.
    cr_assert_eq (s_apply_put (view, "gen-b", 2, s_router ("r1", "one", NULL, NULL)), EP_MODEL_GENERATION);
    cr_assert_eq (ep_model_view_size (view), 0);
    cr_assert_eq (ep_model_view_revision (view), 5);
    ep_model_view_destroy (&view);
}

Test (model_view, multi_part_revision_applies_whole_when_complete)
{
    s_seen_t seen;
    ep_model_view_t *view = s_view (&seen);
    s_change_t part1, part2, part3;
    s_change_init (&part1, GEN, 1);
    s_change_parts (&part1, 1, 3);
    s_change_put (&part1, EP__MODEL_OP__KIND__CREATED, s_router ("r1", "first", NULL, NULL));
    s_change_init (&part2, GEN, 1);
    s_change_parts (&part2, 2, 3);
    s_change_put (&part2, EP__MODEL_OP__KIND__UPDATED, s_router ("r1", "second", NULL, NULL));
    s_change_init (&part3, GEN, 1);
    s_change_parts (&part3, 3, 3);
    s_change_put (&part3, EP__MODEL_OP__KIND__CREATED, s_service ("s1", "web"));

    //  Out of order, with a duplicate: nothing is visible until the last part.
    cr_assert_eq (ep_model_view_apply (view, &part3.change), EP_MODEL_PARTIAL);
    cr_assert_eq (ep_model_view_apply (view, &part1.change), EP_MODEL_PARTIAL);
    cr_assert_eq (ep_model_view_apply (view, &part1.change), EP_MODEL_PARTIAL);
    cr_assert (ep_model_view_partial (view));
    cr_assert_eq (ep_model_view_size (view), 0);
    cr_assert_eq (ep_model_view_revision (view), 0);
    cr_assert_eq (seen.count, 0);

    cr_assert_eq (ep_model_view_apply (view, &part2.change), EP_MODEL_APPLIED);
    cr_assert_not (ep_model_view_partial (view));
    cr_assert_eq (ep_model_view_revision (view), 1);
    cr_assert_eq (ep_model_view_size (view), 2);
    //  Ops run in part order, not arrival order: part 2's update wins.
    cr_assert_str_eq (ep_model_view_get (view, EP__ENTITY_TYPE__ENTITY_ROUTER, "r1")->router->name, "second");
    cr_assert_eq (seen.count, 3);
    cr_assert_eq (seen.kinds [0], EP__MODEL_OP__KIND__CREATED);
    cr_assert_eq (seen.kinds [1], EP__MODEL_OP__KIND__UPDATED);
    cr_assert_str_eq (seen.before [1], "first");
    cr_assert_str_eq (seen.after [1], "second");
    //  Observers run after the whole revision: part 3's service is visible
    //  from the event of part 1.
    cr_assert (seen.saw_other [0]);
    //  A late duplicate part is old now.
    cr_assert_eq (ep_model_view_apply (view, &part1.change), EP_MODEL_OLD);
    ep_model_view_destroy (&view);
}

Test (model_view, partial_revision_then_gap_then_resplit)
{
    ep_model_view_t *view = s_view (NULL);
    s_change_t part1, next, whole;
    s_change_init (&part1, GEN, 1);
    s_change_parts (&part1, 1, 2);
    s_change_put (&part1, EP__MODEL_OP__KIND__CREATED, s_router ("r1", "one", NULL, NULL));
    cr_assert_eq (ep_model_view_apply (view, &part1.change), EP_MODEL_PARTIAL);
    //  Revision 2 arriving means part 2 of revision 1 was lost.
    s_change_init (&next, GEN, 2);
    s_change_put (&next, EP__MODEL_OP__KIND__CREATED, s_router ("r2", "two", NULL, NULL));
    cr_assert_eq (ep_model_view_apply (view, &next.change), EP_MODEL_GAP);
    cr_assert_eq (ep_model_view_size (view), 0);
    //  "Changes since" brings revision 1 in one piece: it replaces the parts.
    s_change_init (&whole, GEN, 1);
    s_change_put (&whole, EP__MODEL_OP__KIND__CREATED, s_router ("r1", "one", NULL, NULL));
    s_change_put (&whole, EP__MODEL_OP__KIND__CREATED, s_service ("s1", "web"));
    cr_assert_eq (ep_model_view_apply (view, &whole.change), EP_MODEL_APPLIED);
    cr_assert_not (ep_model_view_partial (view));
    cr_assert_eq (ep_model_view_apply (view, &next.change), EP_MODEL_APPLIED);
    cr_assert_eq (ep_model_view_size (view), 3);

    //  Parts kept can be forgotten (before a "changes" reply).
    s_change_init (&part1, GEN, 3);
    s_change_parts (&part1, 1, 2);
    s_change_put (&part1, EP__MODEL_OP__KIND__CREATED, s_router ("r3", "three", NULL, NULL));
    cr_assert_eq (ep_model_view_apply (view, &part1.change), EP_MODEL_PARTIAL);
    cr_assert (ep_model_view_partial (view));
    ep_model_view_drop_partial (view);
    cr_assert_not (ep_model_view_partial (view));
    cr_assert_eq (ep_model_view_revision (view), 2);
    ep_model_view_destroy (&view);
}

Test (model_view, deletes)
{
    s_seen_t seen;
    ep_model_view_t *view = s_view (&seen);
    cr_assert_eq (s_apply_put (view, GEN, 1, s_router ("r1", "one", "s1", NULL)), EP_MODEL_APPLIED);
    s_change_t change;
    s_change_init (&change, GEN, 2);
    s_change_delete (&change, EP__ENTITY_TYPE__ENTITY_ROUTER, "r1");
    s_change_delete (&change, EP__ENTITY_TYPE__ENTITY_SERVICE, "nope");     //  absent: no event
    cr_assert_eq (ep_model_view_apply (view, &change.change), EP_MODEL_APPLIED);
    cr_assert_null (ep_model_view_get (view, EP__ENTITY_TYPE__ENTITY_ROUTER, "r1"));
    cr_assert_eq (ep_model_view_size (view), 0);
    cr_assert_eq (ep_model_view_revision (view), 2);
    zlistx_t *hosting = ep_model_view_routers_hosting (view, "s1");
    cr_assert_eq (zlistx_size (hosting), 0);
    zlistx_destroy (&hosting);
    cr_assert_eq (seen.count, 2);
    cr_assert_eq (seen.kinds [1], EP__MODEL_OP__KIND__DELETED);
    cr_assert_str_eq (seen.ids [1], "r1");
    cr_assert_str_eq (seen.before [1], "one");
    cr_assert_str_eq (seen.after [1], "");
    cr_assert_eq (seen.revisions [1], 2);
    cr_assert (seen.ops [1]);
    ep_model_view_destroy (&view);
}

Test (model_view, observer_sees_before_and_after)
{
    s_seen_t seen;
    ep_model_view_t *view = s_view (&seen);
    cr_assert_eq (s_apply_put (view, GEN, 1, s_router ("r1", "old", NULL, NULL)), EP_MODEL_APPLIED);
    cr_assert_eq (s_apply_put (view, GEN, 2, s_router ("r1", "new", NULL, NULL)), EP_MODEL_APPLIED);
    cr_assert_eq (seen.count, 2);
    cr_assert_eq (seen.kinds [0], EP__MODEL_OP__KIND__CREATED);
    cr_assert_str_eq (seen.before [0], "");
    cr_assert_str_eq (seen.after [0], "old");
    cr_assert_eq (seen.kinds [1], EP__MODEL_OP__KIND__UPDATED);
    cr_assert_str_eq (seen.ids [1], "r1");
    cr_assert_str_eq (seen.before [1], "old");
    cr_assert_str_eq (seen.after [1], "new");
    cr_assert_eq (seen.revisions [1], 2);
    ep_model_view_destroy (&view);
}

Test (model_view, invalid_change_applies_nothing)
{
    s_seen_t seen;
    ep_model_view_t *view = s_view (&seen);
    s_change_t change;
    s_change_init (&change, GEN, 1);
    s_change_put (&change, EP__MODEL_OP__KIND__CREATED, s_router ("r1", "one", NULL, NULL));
    s_change_delete (&change, EP__ENTITY_TYPE__ENTITY_ROUTER, "");      //  no id
    cr_assert_eq (ep_model_view_apply (view, &change.change), EP_MODEL_INVALID);
    cr_assert_eq (ep_model_view_size (view), 0);
    cr_assert_eq (ep_model_view_revision (view), 0);
    cr_assert_eq (seen.count, 0);

    s_change_init (&change, GEN, 1);
    s_change_parts (&change, 3, 2);                                      //  part > parts
    cr_assert_eq (ep_model_view_apply (view, &change.change), EP_MODEL_INVALID);
    s_change_init (&change, GEN, 1);
    change.change.has_revision = false;
    cr_assert_eq (ep_model_view_apply (view, &change.change), EP_MODEL_INVALID);
    ep_model_view_destroy (&view);
}

Test (model_view, routers_hosting_index_follows_changes)
{
    ep_model_view_t *view = s_view (NULL);
    cr_assert_eq (s_apply_put (view, GEN, 1, s_router ("r2", "two", "s1", NULL)), EP_MODEL_APPLIED);
    cr_assert_eq (s_apply_put (view, GEN, 2, s_router ("r1", "one", "s1", "s2")), EP_MODEL_APPLIED);
    zlistx_t *hosting = ep_model_view_routers_hosting (view, "s1");
    cr_assert_eq (zlistx_size (hosting), 2);
    cr_assert_str_eq ((char *) zlistx_first (hosting), "r1");
    cr_assert_str_eq ((char *) zlistx_next (hosting), "r2");
    zlistx_destroy (&hosting);

    //  r1 stops hosting s1.
    cr_assert_eq (s_apply_put (view, GEN, 3, s_router ("r1", "one", "s2", NULL)), EP_MODEL_APPLIED);
    hosting = ep_model_view_routers_hosting (view, "s1");
    cr_assert_eq (zlistx_size (hosting), 1);
    cr_assert_str_eq ((char *) zlistx_first (hosting), "r2");
    zlistx_destroy (&hosting);
    hosting = ep_model_view_routers_hosting (view, "s2");
    cr_assert_eq (zlistx_size (hosting), 1);
    zlistx_destroy (&hosting);
    hosting = ep_model_view_routers_hosting (view, "unknown");
    cr_assert_eq (zlistx_size (hosting), 0);
    zlistx_destroy (&hosting);
    ep_model_view_destroy (&view);
}

Test (model_view, iterates_a_type_in_id_order)
{
    ep_model_view_t *view = s_view (NULL);
    const char *ids [] = { "rc", "ra", "rb" };
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq (ep_model_view_put (view, s_router (ids [i], "x", NULL, NULL)), 0);
    cr_assert_eq (ep_model_view_put (view, s_service ("s1", "web")), 0);
    const char *expect [] = { "ra", "rb", "rc" };
    size_t n = 0;
    const Ep__Entity *entity = ep_model_view_first (view, EP__ENTITY_TYPE__ENTITY_ROUTER);
    for (; entity; entity = ep_model_view_next (view)) {
        cr_assert_lt (n, 3);
        cr_assert_str_eq (ep_entity_id (entity), expect [n++]);
    }
    cr_assert_eq (n, 3);
    cr_assert_null (ep_model_view_first (view, EP__ENTITY_TYPE__ENTITY_CONTROLLER));
    //  An entity without a kind is refused.
    Ep__Entity empty = EP__ENTITY__INIT;
    cr_assert_eq (ep_model_view_put (view, &empty), -1);
    ep_model_view_destroy (&view);
}

Test (model_view, adopt_reports_differences_only)
{
    s_seen_t seen;
    ep_model_view_t *view = s_view (&seen);
    cr_assert_eq (ep_model_view_put (view, s_router ("r1", "gone", NULL, NULL)), 0);
    cr_assert_eq (ep_model_view_put (view, s_router ("r2", "before", NULL, NULL)), 0);
    cr_assert_eq (ep_model_view_put (view, s_service ("s1", "same")), 0);
    ep_model_view_t *staged = ep_model_view_new ();
    ep_model_view_reset (staged, "gen-b", 40);
    cr_assert_eq (ep_model_view_put (staged, s_router ("r2", "after", "s1", NULL)), 0);
    cr_assert_eq (ep_model_view_put (staged, s_router ("r3", "new", NULL, NULL)), 0);
    cr_assert_eq (ep_model_view_put (staged, s_service ("s1", "same")), 0);
    ep_model_view_adopt (view, &staged);
    cr_assert_null (staged);
    cr_assert_str_eq (ep_model_view_generation (view), "gen-b");
    cr_assert_eq (ep_model_view_revision (view), 40);
    cr_assert_eq (ep_model_view_size (view), 3);
    cr_assert_eq (seen.count, 3);
    cr_assert_eq (seen.kinds [0], EP__MODEL_OP__KIND__UPDATED);
    cr_assert_str_eq (seen.before [0], "before");
    cr_assert_str_eq (seen.after [0], "after");
    cr_assert_eq (seen.kinds [1], EP__MODEL_OP__KIND__CREATED);
    cr_assert_str_eq (seen.ids [1], "r3");
    cr_assert_eq (seen.kinds [2], EP__MODEL_OP__KIND__DELETED);
    cr_assert_str_eq (seen.ids [2], "r1");
    cr_assert_eq (seen.revisions [2], 40);
    cr_assert_not (seen.ops [0]);
    zlistx_t *hosting = ep_model_view_routers_hosting (view, "s1");
    cr_assert_eq (zlistx_size (hosting), 1);
    zlistx_destroy (&hosting);
    ep_model_view_destroy (&view);
}

Test (model_view, digest_equal_for_snapshot_and_changes_and_differs_on_content)
{
    //  Built from changes...
    ep_model_view_t *by_changes = s_view (NULL);
    cr_assert_eq (s_apply_put (by_changes, GEN, 1, s_service ("s1", "web")), EP_MODEL_APPLIED);
    cr_assert_eq (s_apply_put (by_changes, GEN, 2, s_router ("r2", "two", "s1", NULL)), EP_MODEL_APPLIED);
    cr_assert_eq (s_apply_put (by_changes, GEN, 3, s_router ("r1", "x", NULL, NULL)), EP_MODEL_APPLIED);
    cr_assert_eq (s_apply_put (by_changes, GEN, 4, s_router ("r1", "one", "s1", "s2")), EP_MODEL_APPLIED);
    s_change_t change;
    s_change_init (&change, GEN, 5);
    s_change_put (&change, EP__MODEL_OP__KIND__CREATED, s_service ("s9", "tmp"));
    s_change_delete (&change, EP__ENTITY_TYPE__ENTITY_SERVICE, "s9");
    cr_assert_eq (ep_model_view_apply (by_changes, &change.change), EP_MODEL_APPLIED);

    //  ... and from a snapshot in another order.
    Ep__Entity *snapshot [] = {
        s_router ("r1", "one", "s1", "s2"), s_service ("s1", "web"), s_router ("r2", "two", "s1", NULL)
    };
    ep_model_view_t *by_snapshot = ep_model_view_new ();
    ep_model_view_reset (by_snapshot, GEN, 5);
    for (int i = 2; i >= 0; i--)
        cr_assert_eq (ep_model_view_put (by_snapshot, snapshot [i]), 0);

    uint8_t a [EP_MODEL_DIGEST_SIZE], b [EP_MODEL_DIGEST_SIZE], c [EP_MODEL_DIGEST_SIZE];
    ep_model_view_digest (by_changes, a);
    ep_model_view_digest (by_snapshot, b);
    ep_model_digest_entities (snapshot, 3, c);
    cr_assert_eq (memcmp (a, b, sizeof a), 0);
    cr_assert_eq (memcmp (a, c, sizeof a), 0);
    //  The array given is not reordered.
    cr_assert_str_eq (ep_entity_id (snapshot [1]), "s1");
    char hex [EP_MODEL_DIGEST_HEX_SIZE];
    cr_assert_eq (strlen (ep_model_digest_hex (a, hex)), 64);

    //  One field of one entity differs: the digest differs.
    cr_assert_eq (ep_model_view_put (by_snapshot, s_router ("r2", "two!", "s1", NULL)), 0);
    ep_model_view_digest (by_snapshot, b);
    cr_assert_neq (memcmp (a, b, sizeof a), 0);
    //  Repeated fields keep their order: hosted [s2, s1] is another model.
    ep_model_view_put (by_snapshot, s_router ("r2", "two", "s1", NULL));
    ep_model_view_put (by_snapshot, s_router ("r1", "one", "s2", "s1"));
    ep_model_view_digest (by_snapshot, b);
    cr_assert_neq (memcmp (a, b, sizeof a), 0);
    ep_model_view_put (by_snapshot, s_router ("r1", "one", "s1", "s2"));
    ep_model_view_digest (by_snapshot, b);
    cr_assert_eq (memcmp (a, b, sizeof a), 0);

    //  The empty set has a digest too (BLAKE2b-256 of nothing).
    ep_model_digest_entities (NULL, 0, c);
    cr_assert_str_eq (ep_model_digest_hex (c, hex),
        "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
    ep_model_view_destroy (&by_changes);
    ep_model_view_destroy (&by_snapshot);
}

Test (model_view, many_ids_iterate_in_id_order_and_digest_as_the_service_does)
{
    //  Enough ids, in a scrambled order, that a sort stopping early shows:
    //  czmq 4.2.1's zlistx_sort (a comb sort) can leave pairs unsorted.
    ep_model_view_t *view = ep_model_view_new ();
    ep_model_view_reset (view, GEN, 1);
    Ep__Entity *entities [300];
    unsigned seed = 7;
    for (int i = 0; i < 300; i++) {
        char id [16];
        snprintf (id, sizeof id, "r-%d", rand_r (&seed) % 100000);
        entities [i] = s_router (id, id, i % 3? "s1": NULL, NULL);
        cr_assert_eq (ep_model_view_put (view, entities [i]), 0);
        zlistx_t *hosting = ep_model_view_routers_hosting (view, "s1");
        const char *prev = NULL;
        for (const char *at = (const char *) zlistx_first (hosting); at;
             at = (const char *) zlistx_next (hosting)) {
            cr_assert (!prev || strcmp (prev, at) < 0, "routers hosting s1: %s before %s", prev, at);
            prev = at;
        }
        zlistx_destroy (&hosting);
    }
    const char *prev = NULL;
    size_t count = 0;
    for (const Ep__Entity *entity = ep_model_view_first (view, EP__ENTITY_TYPE__ENTITY_ROUTER);
         entity; entity = ep_model_view_next (view)) {
        cr_assert (!prev || strcmp (prev, ep_entity_id (entity)) < 0,
                   "%s iterated before %s", prev, ep_entity_id (entity));
        prev = ep_entity_id (entity);
        count++;
    }
    cr_assert_eq (count, ep_model_view_size (view));
    //  The same entities given to ep_model_digest_entities, as the model
    //  service and tests compute it (some ids repeat: the last put wins).
    Ep__Entity **unique = (Ep__Entity **) calloc (300, sizeof (Ep__Entity *));
    size_t n = 0;
    for (int i = 0; i < 300; i++) {
        bool later = false;
        for (int j = i + 1; j < 300; j++)
            later |= streq (ep_entity_id (entities [j]), ep_entity_id (entities [i]));
        if (!later)
            unique [n++] = entities [i];
    }
    cr_assert_eq (n, ep_model_view_size (view));
    uint8_t a [EP_MODEL_DIGEST_SIZE], b [EP_MODEL_DIGEST_SIZE];
    ep_model_view_digest (view, a);
    ep_model_digest_entities (unique, n, b);
    cr_assert_eq (memcmp (a, b, sizeof a), 0, "the view's digest is not the digest of its entities");
    free (unique);
    ep_model_view_destroy (&view);
}

Test (model_view, prev_revision_chains_and_says_what_a_gap_is)
{
    ep_model_view_t *view = s_view (NULL);
    cr_assert_eq (s_apply_put (view, GEN, 1, s_router ("r1", "one", NULL, NULL)), EP_MODEL_APPLIED);
    s_change_t change;
    //  Revision 5 following 1: applied (the etcd store's revisions skip).
    s_change_init (&change, GEN, 5);
    change.change.has_prev_revision = true;
    change.change.prev_revision = 1;
    s_change_put (&change, EP__MODEL_OP__KIND__UPDATED, s_router ("r5", "five", NULL, NULL));
    cr_assert_eq (ep_model_view_apply (view, &change.change), EP_MODEL_APPLIED);
    cr_assert_eq (ep_model_view_revision (view), 5);
    //  Revision 9 following 7: a change is missing, though 9 > 5.
    s_change_init (&change, GEN, 9);
    change.change.has_prev_revision = true;
    change.change.prev_revision = 7;
    s_change_put (&change, EP__MODEL_OP__KIND__UPDATED, s_router ("r9", "nine", NULL, NULL));
    cr_assert_eq (ep_model_view_apply (view, &change.change), EP_MODEL_GAP);
    cr_assert_null (ep_model_view_get (view, EP__ENTITY_TYPE__ENTITY_ROUTER, "r9"));
    //  Revision 6 following 5, without prev_revision would be +1 anyway;
    //  with a prev_revision at or above the revision: malformed.
    s_change_init (&change, GEN, 6);
    change.change.has_prev_revision = true;
    change.change.prev_revision = 6;
    s_change_put (&change, EP__MODEL_OP__KIND__UPDATED, s_router ("r6", "six", NULL, NULL));
    cr_assert_eq (ep_model_view_apply (view, &change.change), EP_MODEL_INVALID);
    //  An old change without prev_revision still chains on revision - 1.
    cr_assert_eq (s_apply_put (view, GEN, 6, s_router ("r6", "six", NULL, NULL)), EP_MODEL_APPLIED);
    cr_assert_eq (s_apply_put (view, GEN, 8, s_router ("r8", "eight", NULL, NULL)), EP_MODEL_GAP);
    ep_model_view_destroy (&view);
}
