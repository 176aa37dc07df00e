/*  test_slicediff.c: a router's slice, full and resumed from a change
    list, without sockets. */
#include <criterion/criterion.h>
#include "slicediff.h"

//  The model now: router r1 hosts s1 (cost 5), s3 (cost 7), s4; services
//  s1..s9 exist.
static Ep__HostedService s_h1, s_h3, s_h4;
static Ep__HostedService *s_hosted [3];
static Ep__Router s_r1;
static Ep__Service s_services [10];
static char s_ids [10][8];

static const Ep__Service *
s_lookup (void *arg, const char *id)
{
    (void) arg;
    for (int i = 1; i < 10; i++)
        if (streq (s_ids [i], id))
            return &s_services [i];
    return NULL;
}

static void
s_model (void)
{
    for (int i = 1; i < 10; i++) {
        ep__service__init (&s_services [i]);
        snprintf (s_ids [i], sizeof s_ids [i], "s%d", i);
        s_services [i].id = s_ids [i];
    }
    ep__hosted_service__init (&s_h1);
    s_h1.service_id = "s1"; s_h1.has_cost = true; s_h1.cost = 5;
    ep__hosted_service__init (&s_h3);
    s_h3.service_id = "s3"; s_h3.has_cost = true; s_h3.cost = 7;
    ep__hosted_service__init (&s_h4);
    s_h4.service_id = "s4";
    s_hosted [0] = &s_h1; s_hosted [1] = &s_h3; s_hosted [2] = &s_h4;
    ep__router__init (&s_r1);
    s_r1.id = "r1"; s_r1.has_enabled = true; s_r1.enabled = true;
    s_r1.hosted = s_hosted; s_r1.n_hosted = 3;
}

//  One change: revision rev, one op on (type, id), hosted ids added/removed.
static Ep__ModelChange *
s_change (uint64_t rev, Ep__EntityType type, const char *id, const char *added, const char *removed)
{
    Ep__ModelChange *change = (Ep__ModelChange *) zmalloc (sizeof *change);
    ep__model_change__init (change);
    change->has_revision = true;
    change->revision = rev;
    Ep__ModelOp *op = (Ep__ModelOp *) zmalloc (sizeof *op);
    ep__model_op__init (op);
    op->has_kind = op->has_type = true;
    op->kind = EP__MODEL_OP__KIND__UPDATED;
    op->type = type;
    op->id = strdup (id);
    if (added) {
        op->hosted_added = (char **) zmalloc (sizeof (char *));
        op->hosted_added [op->n_hosted_added++] = strdup (added);
    }
    if (removed) {
        op->hosted_removed = (char **) zmalloc (sizeof (char *));
        op->hosted_removed [op->n_hosted_removed++] = strdup (removed);
    }
    change->ops = (Ep__ModelOp **) zmalloc (sizeof (Ep__ModelOp *));
    change->ops [change->n_ops++] = op;
    return change;
}

static void
s_free (Ep__ModelChange **changes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ep__model_change__free_unpacked (changes [i], NULL);   //  all malloc'd
}

//  Ten changes after revision 100, three of which touch r1's slice: r1's
//  own entity (107), its hosted s1's settings (103), s3 newly hosted (105).
static size_t
s_ten (Ep__ModelChange **changes)
{
    size_t n = 0;
    changes [n++] = s_change (101, EP__ENTITY_TYPE__ENTITY_ROUTER, "r2", "s1", NULL);
    changes [n++] = s_change (102, EP__ENTITY_TYPE__ENTITY_SERVICE, "s7", NULL, NULL);
    changes [n++] = s_change (103, EP__ENTITY_TYPE__ENTITY_SERVICE, "s1", NULL, NULL);
    changes [n++] = s_change (104, EP__ENTITY_TYPE__ENTITY_IDENTITY, "alice", NULL, NULL);
    changes [n++] = s_change (105, EP__ENTITY_TYPE__ENTITY_ROUTER, "r1", "s3", NULL);
    changes [n++] = s_change (106, EP__ENTITY_TYPE__ENTITY_ROUTER, "r3", NULL, "s4");
    changes [n++] = s_change (107, EP__ENTITY_TYPE__ENTITY_ROUTER, "r1", NULL, NULL);
    changes [n++] = s_change (108, EP__ENTITY_TYPE__ENTITY_SERVICE, "s8", NULL, NULL);
    changes [n++] = s_change (109, EP__ENTITY_TYPE__ENTITY_ROUTER, "r10", NULL, NULL);
    changes [n++] = s_change (110, EP__ENTITY_TYPE__ENTITY_CONTROLLER, "c1", NULL, NULL);
    return n;
}

Test (slicediff, resume_holds_exactly_what_touched_the_slice)
{
    s_model ();
    Ep__ModelChange *changes [16];
    size_t n = s_ten (changes);
    slicediff_t *diff = slicediff_new (100, changes, n);
    s_free (changes, n);
    cr_assert_eq (slicediff_since (diff), 100);
    cr_assert_eq (slicediff_until (diff), 110);

    Ep__ModelSlice slice = EP__MODEL_SLICE__INIT;
    cr_assert_eq (slicediff_resume (diff, "r1", &s_r1, 100, s_lookup, NULL, &slice), 0);
    cr_assert_not (slice.full);
    cr_assert_eq (slice.revision, 110);
    cr_assert_eq (slice.since_revision, 100);
    //  Its own entity changed (105, 107): carried, with its costs.
    cr_assert_eq (slice.router, &s_r1);
    //  s3 was added to its hosted list (105): hosted and its settings.
    cr_assert_eq (slice.n_hosted, 1);
    cr_assert_str_eq (slice.hosted [0]->service_id, "s3");
    cr_assert_eq (slice.hosted [0]->cost, 7);
    //  s1's settings changed (103); s3 is new. s7, s8 are not r1's; s4 was
    //  removed from r3, not r1.
    cr_assert_eq (slice.n_services, 2);
    cr_assert_str_eq (slice.services [0]->id, "s1");
    cr_assert_str_eq (slice.services [1]->id, "s3");
    cr_assert_eq (slice.n_removed, 0);

    //  Smaller than the full slice of the same router.
    Ep__ModelSlice full = EP__MODEL_SLICE__INIT;
    slicediff_full (&s_r1, s_lookup, NULL, 110, "join", &full);
    cr_assert (full.full);
    cr_assert_str_eq (full.full_reason, "join");
    cr_assert_eq (full.n_hosted, 3);
    cr_assert_eq (full.n_services, 3);
    cr_assert_lt (ep__model_slice__get_packed_size (&slice), ep__model_slice__get_packed_size (&full));
    slicediff_slice_clear (&slice);
    slicediff_slice_clear (&full);
    slicediff_destroy (&diff);
}

Test (slicediff, one_change_list_serves_routers_at_different_revisions)
{
    s_model ();
    Ep__ModelChange *changes [16];
    size_t n = s_ten (changes);
    slicediff_t *diff = slicediff_new (100, changes, n);
    s_free (changes, n);
    //  r1 acknowledged 105: only its entity's change at 107 is left.
    Ep__ModelSlice slice = EP__MODEL_SLICE__INIT;
    cr_assert_eq (slicediff_resume (diff, "r1", &s_r1, 105, s_lookup, NULL, &slice), 0);
    cr_assert_eq (slice.router, &s_r1);
    cr_assert_eq (slice.n_hosted, 0);
    cr_assert_eq (slice.n_services, 0);
    slicediff_slice_clear (&slice);
    //  At 107: nothing left, an empty difference to 110.
    cr_assert_eq (slicediff_resume (diff, "r1", &s_r1, 107, s_lookup, NULL, &slice), 0);
    cr_assert_null (slice.router);
    cr_assert_eq (slice.n_hosted + slice.n_services + slice.n_removed, 0);
    cr_assert_eq (slice.revision, 110);
    slicediff_slice_clear (&slice);
    //  Before the list, or ahead of it, or a deleted router: not resumable.
    cr_assert_eq (slicediff_resume (diff, "r1", &s_r1, 99, s_lookup, NULL, &slice), -1);
    cr_assert_eq (slicediff_resume (diff, "r1", &s_r1, 111, s_lookup, NULL, &slice), -1);
    cr_assert_eq (slicediff_resume (diff, "r1", NULL, 100, s_lookup, NULL, &slice), -1);
    slicediff_destroy (&diff);
}

Test (slicediff, removals_merge_with_later_additions)
{
    s_model ();
    //  s9 added then removed: neither; s4 removed then added back: hosted
    //  again (it is hosted now); s2 removed: removed.
    Ep__ModelChange *changes [4];
    changes [0] = s_change (11, EP__ENTITY_TYPE__ENTITY_ROUTER, "r1", "s9", "s2");
    changes [1] = s_change (12, EP__ENTITY_TYPE__ENTITY_ROUTER, "r1", NULL, "s9");
    changes [2] = s_change (13, EP__ENTITY_TYPE__ENTITY_ROUTER, "r1", NULL, "s4");
    changes [3] = s_change (14, EP__ENTITY_TYPE__ENTITY_ROUTER, "r1", "s4", NULL);
    slicediff_t *diff = slicediff_new (10, changes, 4);
    s_free (changes, 4);
    Ep__ModelSlice slice = EP__MODEL_SLICE__INIT;
    cr_assert_eq (slicediff_resume (diff, "r1", &s_r1, 10, s_lookup, NULL, &slice), 0);
    cr_assert_eq (slice.n_hosted, 1);
    cr_assert_str_eq (slice.hosted [0]->service_id, "s4");
    cr_assert_eq (slice.n_removed, 1);
    cr_assert_str_eq (slice.removed [0], "s2");
    slicediff_slice_clear (&slice);
    slicediff_destroy (&diff);
}

//  A router's own change as it is pushed: before r1 hosted s1 (cost 5)
//  and s2; now s1 at cost 5, s3 and s4. Pushed: s3 and s4 (new, with
//  their settings), not s1 (unchanged); s2 removed.
Test (slicediff, push_holds_the_hosted_changes_of_one_router_change)
{
    s_model ();
    Ep__HostedService h1_before, h2;
    ep__hosted_service__init (&h1_before);
    h1_before.service_id = "s1"; h1_before.has_cost = true; h1_before.cost = 5;
    ep__hosted_service__init (&h2);
    h2.service_id = "s2";
    Ep__HostedService *hosted_before [] = { &h1_before, &h2 };
    Ep__Router before = s_r1;
    before.hosted = hosted_before;
    before.n_hosted = 2;
    Ep__ModelSlice slice = EP__MODEL_SLICE__INIT;
    slicediff_push (&before, &s_r1, s_lookup, NULL, 120, &slice);
    cr_assert (slice.has_full && !slice.full && slice.revision == 120);
    cr_assert_eq (slice.router, &s_r1);
    cr_assert_eq (slice.n_hosted, 2);
    cr_assert_str_eq (slice.hosted [0]->service_id, "s3");
    cr_assert_str_eq (slice.hosted [1]->service_id, "s4");
    cr_assert_eq (slice.n_services, 2);
    cr_assert_eq (slice.services [0], &s_services [3]);
    cr_assert_eq (slice.services [1], &s_services [4]);
    cr_assert_eq (slice.n_removed, 1);
    cr_assert_str_eq (slice.removed [0], "s2");
    //  A cost change alone is pushed, without the service's settings.
    h1_before.cost = 4;
    before.n_hosted = 1;
    slicediff_slice_clear (&slice);
    slicediff_push (&before, &s_r1, s_lookup, NULL, 121, &slice);
    cr_assert_eq (slice.n_hosted, 3);
    cr_assert_str_eq (slice.hosted [0]->service_id, "s1");
    cr_assert_eq (slice.n_services, 2, "s1 was hosted before: its settings are known");
    cr_assert_eq (slice.n_removed, 0);
    slicediff_slice_clear (&slice);
}
