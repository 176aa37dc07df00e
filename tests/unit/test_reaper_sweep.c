/*  test_reaper_sweep.c: the two-phase cleanup planner (services/reaper/sweep):
    priority order, chunks and the per-router window, resends with
    backoff, offline routers, deadlines, and bookkeeping as items finish. */
#include <criterion/criterion.h>
#include "sweep.h"

//  Routers the planner may reach (all unless listed here).
static char s_offline [64];

static bool
s_online (void *arg, const char *router)
{
    (void) arg;
    return !strstr (s_offline, router);
}

//  A session as the planner's owner.
typedef struct {
    char id [16];               //  session id
    sweep_item_t *item;         //  while in the planner
} s_session_t;

static sweep_t *
s_sweep (size_t window, size_t chunk)
{
    s_offline [0] = 0;
    sweep_config_t config = { .window = window, .chunk = chunk, .retry_ms = 1000, .retry_max_ms = 4000 };
    return sweep_new (&config, s_online, NULL);
}

//  Takes every pending item and marks it (phase 1 done at once).
static size_t
s_mark_all (sweep_t *sweep)
{
    sweep_item_t *items [256];
    size_t total = 0, count;
    while ((count = sweep_take_pending (sweep, items, 256)) > 0) {
        for (size_t i = 0; i < count; i++)
            sweep_marked (sweep, items [i]);
        total += count;
    }
    return total;
}

static void
s_done (sweep_t *sweep, s_session_t *session)
{
    sweep_done (sweep, &session->item);
    cr_assert_null (session->item);
}

Test (reaper_sweep, the_most_urgent_go_first)
{
    sweep_t *sweep = s_sweep (10, 100);
    sweep_job_t *job = sweep_job_new (sweep, "j1", 10000, NULL);
    //  id, priority, traffic, created
    struct { const char *id; uint32_t priority; uint64_t traffic; int64_t created; } spec [] = {
        { "quiet-old", 0, 10, 100 }, { "critical", 5, 0, 900 }, { "busy", 0, 5000, 800 },
        { "quiet-new", 0, 10, 700 }, { "critical2", 5, 1, 950 }, { "a-tie", 0, 10, 700 },
    };
    const char *expected [] = { "critical2", "critical", "busy", "quiet-old", "a-tie", "quiet-new" };
    s_session_t sessions [EP_COUNT (spec)];
    for (size_t i = 0; i < EP_COUNT (spec); i++) {
        snprintf (sessions [i].id, sizeof sessions [i].id, "%s", spec [i].id);
        sessions [i].item = sweep_add (sweep, job, &sessions [i], sessions [i].id, "r1",
                                       spec [i].priority, spec [i].traffic, spec [i].created, false);
    }
    cr_assert_eq (sweep_pending (sweep), 6);
    //  Phase 1 order.
    sweep_item_t *items [2];
    cr_assert_eq (sweep_take_pending (sweep, items, 2), 2);
    cr_assert_str_eq (((s_session_t *) sweep_item_owner (items [0]))->id, "critical2");
    cr_assert_str_eq (((s_session_t *) sweep_item_owner (items [1]))->id, "critical");
    for (size_t i = 0; i < 2; i++)
        sweep_marked (sweep, items [i]);
    s_mark_all (sweep);
    //  Phase 2 order within the command.
    sweep_command_t *command = sweep_next_command (sweep, 0);
    cr_assert_not_null (command);
    cr_assert_eq (sweep_command_size (command), 6);
    for (size_t i = 0; i < 6; i++)
        cr_assert_str_eq (sweep_command_session (command, i), expected [i]);
    for (size_t i = 0; i < EP_COUNT (spec); i++)
        s_done (sweep, &sessions [i]);
    cr_assert_eq (sweep_job_items (job), 0);
    sweep_job_end (sweep, &job);
    sweep_destroy (&sweep);
    cr_assert_null (sweep);
}

Test (reaper_sweep, chunks_and_the_window_bound_what_a_router_gets)
{
    sweep_t *sweep = s_sweep (2, 5);
    sweep_job_t *job = sweep_job_new (sweep, "j1", 100000, NULL);
    s_session_t sessions [23];
    for (int i = 0; i < 23; i++) {
        snprintf (sessions [i].id, sizeof sessions [i].id, "s%02d", i);
        sessions [i].item = sweep_add (sweep, job, &sessions [i], sessions [i].id, "r1", 0, 0, i, false);
    }
    cr_assert_eq (s_mark_all (sweep), 23);
    //  Two commands of five, then the window is full.
    sweep_command_t *first = sweep_next_command (sweep, 0);
    char first_id [33];
    snprintf (first_id, sizeof first_id, "%s", sweep_command_id (first));
    cr_assert_eq (sweep_command_size (first), 5);
    cr_assert_str_eq (sweep_command_router (first), "r1");
    cr_assert_eq (sweep_command_job (first), job);
    cr_assert_eq (sweep_command_attempt (first), 1);
    cr_assert_not_null (sweep_next_command (sweep, 0));
    cr_assert_null (sweep_next_command (sweep, 0), "window of 2 exceeded");
    cr_assert_eq (sweep_due (sweep, 0), 1000, "next: when the first ones time out of the window");
    //  An answer opens the window: the next five go.
    cr_assert (sweep_answered (sweep, first_id));
    cr_assert_not (sweep_answered (sweep, "unknown"));
    cr_assert_eq (sweep_due (sweep, 10), 10);
    sweep_command_t *third = sweep_next_command (sweep, 10);
    cr_assert_not_null (third);
    cr_assert_eq (sweep_command_size (third), 5);
    cr_assert_null (sweep_next_command (sweep, 10));
    //  A command that times out leaves the window too, so an unanswering
    //  router still gets every id, window by window.
    size_t sent = 15;
    int64_t now = 10;
    while (sent < 23) {
        now += 1000;
        sweep_command_t *command;
        while ((command = sweep_next_command (sweep, now)))
            if (sweep_command_attempt (command) == 1)
                sent += sweep_command_size (command);
    }
    cr_assert_eq (sent, 23);
    for (int i = 0; i < 23; i++)
        s_done (sweep, &sessions [i]);
    cr_assert_eq (sweep_commands (sweep), 0, "commands whose sessions all closed are gone");
    cr_assert_eq (sweep_size (sweep), 0);
    sweep_job_end (sweep, &job);
    sweep_destroy (&sweep);
}

Test (reaper_sweep, what_an_answer_did_not_close_is_resent_with_backoff)
{
    sweep_t *sweep = s_sweep (4, 10);
    sweep_job_t *job = sweep_job_new (sweep, "j1", 100000, NULL);
    s_session_t sessions [4];
    for (int i = 0; i < 4; i++) {
        snprintf (sessions [i].id, sizeof sessions [i].id, "s%d", i);
        sessions [i].item = sweep_add (sweep, job, &sessions [i], sessions [i].id, "r1", 0, 0, i, false);
    }
    s_mark_all (sweep);
    sweep_command_t *command = sweep_next_command (sweep, 0);
    char id [33];
    snprintf (id, sizeof id, "%s", sweep_command_id (command));
    //  The router answers, closing s0 and s1 only.
    sweep_answered (sweep, id);
    s_done (sweep, &sessions [0]);
    s_done (sweep, &sessions [1]);
    cr_assert_eq (sweep_item_stage (sessions [2].item), SWEEP_SENT);
    cr_assert_null (sweep_next_command (sweep, 999), "not before the retry interval");
    int64_t expected_at [] = { 1000, 3000, 7000, 11000, 15000 };   //  1 s, 2 s, 4 s, 4 s (cap)
    int64_t now = 0;
    for (size_t attempt = 0; attempt < EP_COUNT (expected_at); attempt++) {
        cr_assert_eq (sweep_due (sweep, now), expected_at [attempt]);
        now = expected_at [attempt];
        command = sweep_next_command (sweep, now);
        cr_assert_not_null (command);
        cr_assert_eq (sweep_command_attempt (command), attempt + 2);
        cr_assert_str_neq (sweep_command_id (command), id, "a resend has a new id");
        snprintf (id, sizeof id, "%s", sweep_command_id (command));
        cr_assert_eq (sweep_command_size (command), 2);
        cr_assert_str_eq (sweep_command_session (command, 0), "s2");
        cr_assert_str_eq (sweep_command_session (command, 1), "s3");
    }
    s_done (sweep, &sessions [2]);
    s_done (sweep, &sessions [3]);
    sweep_job_end (sweep, &job);
    sweep_destroy (&sweep);
}

Test (reaper_sweep, an_offline_router_gets_nothing_until_it_is_back)
{
    sweep_t *sweep = s_sweep (4, 10);
    sweep_job_t *job = sweep_job_new (sweep, "j1", 100000, NULL);
    s_session_t a = { "a", NULL }, b = { "b", NULL };
    a.item = sweep_add (sweep, job, &a, a.id, "r1", 0, 0, 0, false);
    b.item = sweep_add (sweep, job, &b, b.id, "r2", 0, 0, 0, false);
    s_mark_all (sweep);
    snprintf (s_offline, sizeof s_offline, "r1");
    sweep_command_t *command = sweep_next_command (sweep, 0);
    cr_assert_str_eq (sweep_command_router (command), "r2");
    cr_assert_null (sweep_next_command (sweep, 0));
    cr_assert_eq (sweep_due (sweep, 0), 1000, "r2's resend; nothing for offline r1");
    cr_assert_null (sweep_next_command (sweep, 999));
    //  r1 back at 5000: its close goes now, with r2's resend (due meanwhile).
    s_offline [0] = 0;
    size_t r1 = 0, r2 = 0;
    while ((command = sweep_next_command (sweep, 5000)))
        streq (sweep_command_router (command), "r1")? r1++: r2++;
    cr_assert_eq (r1, 1);
    cr_assert_eq (r2, 1);
    //  A router back online gets its resends at once.
    sweep_router_back (sweep, "r2", 5001);
    cr_assert_eq (sweep_due (sweep, 5001), 5001);
    s_done (sweep, &a);
    s_done (sweep, &b);
    sweep_job_end (sweep, &job);
    sweep_destroy (&sweep);
}

Test (reaper_sweep, leftovers_are_forced_at_the_deadline_not_before)
{
    sweep_t *sweep = s_sweep (4, 10);
    sweep_job_t *early = sweep_job_new (sweep, "early", 5000, NULL);
    sweep_job_t *late = sweep_job_new (sweep, "late", 9000, NULL);
    s_session_t sessions [6];
    for (int i = 0; i < 6; i++) {
        snprintf (sessions [i].id, sizeof sessions [i].id, "s%d", i);
        sessions [i].item = sweep_add (sweep, i < 3? early: late, &sessions [i], sessions [i].id,
                                       "r1", 0, 0, i, i == 5);
    }
    cr_assert_eq (sweep_pending (sweep), 5, "a resumed (marked) item skips phase 1");
    sweep_item_t *items [1];
    sweep_take_pending (sweep, items, 1);
    sweep_marked (sweep, items [0]);
    cr_assert_null (sweep_next_forced (sweep, 4999));
    cr_assert_eq (sweep_due (sweep, 0), 0, "pending work now");
    size_t forced = 0;
    sweep_item_t *item;
    while ((item = sweep_next_forced (sweep, 5000))) {
        cr_assert_eq (sweep_item_job (item), early);
        s_done (sweep, (s_session_t *) sweep_item_owner (item));
        forced++;
    }
    cr_assert_eq (forced, 3, "pending and marked alike");
    cr_assert_eq (sweep_job_items (early), 0);
    sweep_job_end (sweep, &early);
    cr_assert_null (sweep_next_forced (sweep, 8999));
    while ((item = sweep_next_forced (sweep, 9000)))
        s_done (sweep, (s_session_t *) sweep_item_owner (item));
    cr_assert_eq (sweep_size (sweep), 0);
    cr_assert_eq (sweep_due (sweep, 9000), INT64_MAX);
    sweep_job_end (sweep, &late);
    sweep_destroy (&sweep);
}

Test (reaper_sweep, a_command_carries_one_jobs_sessions)
{
    sweep_t *sweep = s_sweep (4, 100);
    sweep_job_t *router_job = sweep_job_new (sweep, "router", 100000, "R");
    sweep_job_t *identity_job = sweep_job_new (sweep, "identity", 100000, "I");
    cr_assert_str_eq (sweep_job_id (router_job), "router");
    cr_assert_str_eq ((char *) sweep_job_user (identity_job), "I");
    cr_assert_eq (sweep_job_deadline (identity_job), 100000);
    s_session_t sessions [4];
    for (int i = 0; i < 4; i++) {
        snprintf (sessions [i].id, sizeof sessions [i].id, "s%d", i);
        sessions [i].item = sweep_add (sweep, i % 2? router_job: identity_job, &sessions [i],
                                       sessions [i].id, "r1", 0, 0, i, false);
    }
    s_mark_all (sweep);
    sweep_command_t *command = sweep_next_command (sweep, 0);
    cr_assert_eq (sweep_command_size (command), 2);
    sweep_job_t *job = sweep_command_job (command);
    command = sweep_next_command (sweep, 0);
    cr_assert_eq (sweep_command_size (command), 2);
    cr_assert_neq (sweep_command_job (command), job);
    //  Done in any stage, in any order.
    for (int i = 3; i >= 0; i--)
        s_done (sweep, &sessions [i]);
    cr_assert_eq (sweep_commands (sweep), 0);
    sweep_job_end (sweep, &router_job);
    sweep_job_end (sweep, &identity_job);
    sweep_destroy (&sweep);
}
