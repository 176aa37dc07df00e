/*  test_shard.c: the shard mapping, the balancing view with its hysteresis,
    the fencing decision and the command-age check, without sockets or
    clocks; and a simulation of members joining, crashing and leaving over
    a simulated etcd, which checks that no shard ever has two acting owners
    and that the shards settle within the cap without moving back and forth. */
#include <criterion/criterion.h>
#include "ep_shard.h"
#include "ep_shards.h"

#define TTL 3000

Test (shard, fnv1a64_vectors)
{
    //  The published FNV-1a 64 test vectors (and Python's arithmetic for
    //  the router ids).
    cr_assert_eq (ep_shard_fnv1a64 ("", 0), 0xcbf29ce484222325ULL);
    cr_assert_eq (ep_shard_fnv1a64 ("a", 1), 0xaf63dc4c8601ec8cULL);
    cr_assert_eq (ep_shard_fnv1a64 ("foobar", 6), 0x85944171f73967e8ULL);
    cr_assert_eq (ep_shard_fnv1a64 ("router-1", 8), 0xc180331a56c3cbeeULL);
    cr_assert_eq (ep_shard_of ("", 64), 37);
    cr_assert_eq (ep_shard_of ("a", 64), 12);
    cr_assert_eq (ep_shard_of ("foobar", 64), 40);
    cr_assert_eq (ep_shard_of ("router-1", 64), 46);
    cr_assert_eq (ep_shard_of ("r0042", 64), 59);
    cr_assert_eq (ep_shard_of ("foobar", 1), 0);
    cr_assert_eq (ep_shard_of ("foobar", 1000), (int) (0x85944171f73967e8ULL % 1000));
}

//  Applies every action as etcd would at revision *rev (all succeed).
static void
s_apply_all (ep_shard_t *view, ep_shard_action_t *actions, size_t n, int64_t *rev, int64_t now)
{
    for (size_t i = 0; i < n; i++)
        ep_shard_settled (view, actions [i].shard, actions [i].verb, true, ++*rev, now);
}

Test (shard, alone_takes_every_shard_once_its_member_key_is_seen)
{
    ep_shard_t *view = ep_shard_new (64, 100, TTL, 0);
    ep_shard_action_t actions [128];
    cr_assert_eq (ep_shard_decide (view, 0, actions, 128), 0, "nothing before my member key");
    ep_shard_member_put (view, 100, 0);
    size_t n = ep_shard_decide (view, 0, actions, 128);
    cr_assert_eq (n, 64);
    bool seen [64] = { false };
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq (actions [i].verb, EP_SHARD_ACQUIRE);
        cr_assert_not (seen [actions [i].shard]);
        seen [actions [i].shard] = true;
    }
    cr_assert_eq (ep_shard_held (view), 64, "acquisitions in flight count as held");
    cr_assert_eq (ep_shard_decide (view, 0, actions, 128), 0, "in flight: not asked twice");
    cr_assert_eq (ep_shard_mine (view, actions [0].shard), 0, "not owner before the answer");
    int64_t rev = 10;
    s_apply_all (view, actions, n, &rev, 5);
    cr_assert_eq (ep_shard_mine (view, actions [0].shard), 11, "owner under the create revision");
    cr_assert_not (ep_shard_had_owner (view, actions [0].shard), "a first owner is no handover");
    cr_assert_eq (ep_shard_decide (view, 10 * TTL, actions, 128), 0);
    ep_shard_destroy (&view);
    cr_assert_null (view);
}

//  The view of lease me among members leases 1..members (all there at 0),
//  with shards 0..owned-1 of count held by lease 1 since moved_at (create
//  revisions 1..owned).
static ep_shard_t *
s_view (int count, int64_t me, int members, int owned, int64_t moved_at)
{
    ep_shard_t *view = ep_shard_new (count, me, TTL, 0);
    for (int m = 1; m <= members; m++)
        ep_shard_member_put (view, m, 0);
    for (int s = 0; s < owned; s++)
        ep_shard_owner_put (view, s, 1, s + 1, s + 1, moved_at);
    ep_shard_caught_up (view, owned);
    return view;
}

//  A view for lease 1 holding every one of 64 shards, with lease 2
//  joining at join_ms.
static ep_shard_t *
s_holder_and_joiner (int64_t join_ms)
{
    ep_shard_t *view = s_view (64, 1, 1, 64, 0);
    ep_shard_member_put (view, 2, join_ms);
    return view;
}

Test (shard, release_above_the_cap_only_after_two_ttls_of_stable_membership)
{
    ep_shard_t *view = s_holder_and_joiner (1000);
    cr_assert_eq (ep_shard_cap (view), 33);
    ep_shard_action_t actions [128];
    cr_assert_eq (ep_shard_decide (view, 1000, actions, 128), 0);
    cr_assert_eq (ep_shard_decide (view, 1000 + 2 * TTL - 1, actions, 128), 0, "membership not stable yet");
    cr_assert_eq (ep_shard_next (view, 1000), 1000 + 2 * TTL);
    //  With no input in between, the time-driven decision is still due.
    cr_assert_not (ep_shard_due (view, 1000 + 2 * TTL - 1));
    cr_assert (ep_shard_due (view, 1000 + 2 * TTL), "due once stable, though nothing came");
    cr_assert (ep_shard_due (view, 1000 + 3 * TTL), "and stays due until decided");
    size_t n = ep_shard_decide (view, 1000 + 2 * TTL, actions, 128);
    cr_assert_eq (n, 31, "64 down to the cap, 33");
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq (actions [i].verb, EP_SHARD_RELEASE);
        cr_assert_eq (actions [i].create_revision, actions [i].shard + 1, "release compares the create revision");
        cr_assert_eq (ep_shard_mine (view, actions [i].shard), 0, "a shard being released is not acted on");
    }
    cr_assert_eq (ep_shard_held (view), 33);
    ep_shard_destroy (&view);
}

Test (shard, a_shard_held_less_than_a_ttl_is_not_released)
{
    //  Ten shards came to lease 1 just now (a takeover), the rest long ago.
    ep_shard_t *view = s_view (64, 1, 2, 64, 0);
    for (int s = 0; s < 10; s++)
        ep_shard_owner_put (view, s, 1, 100 + s, 100 + s, 10 * TTL);
    ep_shard_action_t actions [128];
    size_t n = ep_shard_decide (view, 10 * TTL, actions, 128);
    cr_assert_eq (n, 31);
    for (size_t i = 0; i < n; i++)
        cr_assert_geq (actions [i].shard, 10, "shard %d moved twice within a TTL", actions [i].shard);

    //  Only recent shards left above the cap: they wait out their TTL.
    ep_shard_t *recent = s_view (4, 1, 3, 4, 10 * TTL);
    cr_assert_eq (ep_shard_cap (recent), 3);
    cr_assert_eq (ep_shard_decide (recent, 10 * TTL + 1, actions, 128), 0);
    cr_assert_eq (ep_shard_next (recent, 10 * TTL + 1), 11 * TTL);
    cr_assert_eq (ep_shard_decide (recent, 11 * TTL, actions, 128), 1);
    ep_shard_destroy (&view);
    ep_shard_destroy (&recent);
}

Test (shard, joiner_takes_only_unowned_shards_up_to_its_fair_share)
{
    ep_shard_t *view = s_view (64, 2, 2, 40, 0);
    ep_shard_action_t actions [128];
    size_t n = ep_shard_decide (view, 100, actions, 128);
    cr_assert_eq (n, 24, "the 24 unowned; never one of lease 1's");
    for (size_t i = 0; i < n; i++)
        cr_assert_geq (actions [i].shard, 40);
    ep_shard_destroy (&view);

    //  With 10 unowned and a fair share of 32, the joiner takes the 10.
    view = s_view (64, 2, 2, 54, 0);
    cr_assert_eq (ep_shard_decide (view, 100, actions, 128), 10);
    ep_shard_destroy (&view);
}

Test (shard, an_owner_whose_member_key_is_gone_is_evicted)
{
    ep_shard_t *view = ep_shard_new (8, 2, TTL, 0);
    ep_shard_member_put (view, 2, 0);
    //  Lease 7's member key is not there (a restart under the same name
    //  replaced it): its shard key only blocks.
    ep_shard_owner_put (view, 3, 7, 50, 50, 0);
    ep_shard_caught_up (view, 50);
    ep_shard_action_t actions [16];
    size_t n = ep_shard_decide (view, 0, actions, 16);
    cr_assert_eq (n, 8, "one eviction, seven acquisitions");
    cr_assert_eq (actions [0].verb, EP_SHARD_EVICT);
    cr_assert_eq (actions [0].shard, 3);
    cr_assert_eq (actions [0].create_revision, 50);
    ep_shard_settled (view, 3, EP_SHARD_EVICT, true, 60, 0);
    cr_assert_eq (ep_shard_owner (view, 3, NULL), 0);
    n = ep_shard_decide (view, 0, actions, 16);
    cr_assert_eq (n, 1);
    cr_assert_eq (actions [0].verb, EP_SHARD_ACQUIRE);
    ep_shard_settled (view, 3, EP_SHARD_ACQUIRE, true, 61, 0);
    cr_assert_eq (ep_shard_mine (view, 3), 61);
    cr_assert (ep_shard_had_owner (view, 3), "taken from an earlier owner: a handover");
    ep_shard_destroy (&view);
}

Test (shard, a_lost_race_waits_for_the_view_and_no_answer_retries_later)
{
    ep_shard_t *view = ep_shard_new (2, 1, TTL, 0);
    ep_shard_member_put (view, 1, 0);
    ep_shard_action_t actions [4];
    cr_assert_eq (ep_shard_decide (view, 0, actions, 4), 2);
    //  Shard 0: another won it at revision 20, not seen yet by the watch.
    ep_shard_settled (view, 0, EP_SHARD_ACQUIRE, false, 20, 0);
    //  Shard 1: the request got no answer.
    ep_shard_settled (view, 1, EP_SHARD_ACQUIRE, false, 0, 0);
    cr_assert_eq (ep_shard_decide (view, 1, actions, 4), 0);
    cr_assert_eq (ep_shard_next (view, 1), TTL / 3);
    cr_assert (ep_shard_due (view, TTL / 3), "the retry is due without any input");
    ep_shard_caught_up (view, 19);
    cr_assert_eq (ep_shard_decide (view, TTL / 3, actions, 4), 1, "only the retry");
    cr_assert_eq (actions [0].shard, 1);
    //  The watch delivers the winner's key: no more tries on shard 0.
    ep_shard_member_put (view, 9, 0);
    ep_shard_owner_put (view, 0, 9, 20, 20, 0);
    ep_shard_caught_up (view, 20);
    cr_assert_eq (ep_shard_decide (view, TTL / 3, actions, 4), 0);
    ep_shard_destroy (&view);
}

Test (shard, an_event_older_than_an_answer_applied_is_ignored)
{
    ep_shard_t *view = ep_shard_new (4, 1, TTL, 0);
    ep_shard_member_put (view, 1, 0);
    ep_shard_action_t actions [4];
    cr_assert_eq (ep_shard_decide (view, 0, actions, 4), 4);
    s_apply_all (view, actions, 4, &(int64_t) { 100 }, 0);
    int shard = actions [0].shard;
    int64_t mine = ep_shard_mine (view, shard);
    cr_assert_gt (mine, 100);
    //  The watch is behind: the delete of an earlier owner's key arrives.
    ep_shard_owner_delete (view, shard, 90, 1);
    cr_assert_eq (ep_shard_mine (view, shard), mine);
    //  Then the put of my own key, already applied: nothing changes.
    ep_shard_owner_put (view, shard, 1, mine, mine, 2);
    cr_assert_eq (ep_shard_mine (view, shard), mine);
    //  A delete after it (my lease ended) does.
    ep_shard_owner_delete (view, shard, mine + 50, 3);
    cr_assert_eq (ep_shard_mine (view, shard), 0);
    ep_shard_destroy (&view);
}

Test (shard, fencing_verdicts)
{
    //  Held under 42, the write compared 42, the key is still 42's: some
    //  other compare failed.
    cr_assert_eq (ep_shard_fence_verdict (42, 42, true, 42), EP_SHARD_STILL_OWNER);
    //  The key was recreated by another owner, or is gone.
    cr_assert_eq (ep_shard_fence_verdict (42, 42, true, 77), EP_SHARD_FENCED);
    cr_assert_eq (ep_shard_fence_verdict (42, 42, false, 0), EP_SHARD_FENCED);
    //  A write from an earlier ownership, or after the shard was dropped:
    //  refused, nothing more to drop.
    cr_assert_eq (ep_shard_fence_verdict (77, 42, true, 77), EP_SHARD_FENCED_DROPPED);
    cr_assert_eq (ep_shard_fence_verdict (0, 42, false, 0), EP_SHARD_FENCED_DROPPED);
    cr_assert_eq (ep_shard_fence_verdict (0, 42, true, 42), EP_SHARD_STILL_OWNER,
                  "the key is the one compared: another compare failed");
    //  The lease guard: keepalive sent at 1000, TTL 3 s, margin 750 ms.
    cr_assert (ep_shard_lease_fresh (1000, 3000, 750, 3249));
    cr_assert_not (ep_shard_lease_fresh (1000, 3000, 750, 3250));
}

Test (shard, command_age_check)
{
    ep_shard_seen_t *seen = ep_shard_seen_new (64);
    cr_assert_eq (ep_shard_seen_check (seen, 5, 100), EP_SHARD_COMMAND_OK);
    cr_assert_eq (ep_shard_seen_check (seen, 5, 100), EP_SHARD_COMMAND_OK, "same owner again");
    cr_assert_eq (ep_shard_seen_check (seen, 5, 250), EP_SHARD_COMMAND_OK, "a newer owner");
    cr_assert_eq (ep_shard_seen_newest (seen, 5), 250);
    cr_assert_eq (ep_shard_seen_check (seen, 5, 100), EP_SHARD_COMMAND_STALE, "the deposed owner");
    cr_assert_eq (ep_shard_seen_check (seen, 6, 100), EP_SHARD_COMMAND_OK, "shards are apart");
    cr_assert_eq (ep_shard_seen_check (seen, 64, 100), EP_SHARD_COMMAND_BAD);
    cr_assert_eq (ep_shard_seen_check (seen, -1, 100), EP_SHARD_COMMAND_BAD);
    cr_assert_eq (ep_shard_seen_check (seen, 5, 0), EP_SHARD_COMMAND_BAD);
    cr_assert_eq (ep_shard_seen_newest (seen, 5), 250);
    ep_shard_seen_destroy (&seen);
    cr_assert_null (seen);
}

//  The watchdog's tables are for the largest count (it does not know the
//  services'): their slots grow with the shards seen, kept across growth.
Test (shard, command_age_check_grows_to_the_shards_seen)
{
    ep_shard_seen_t *seen = ep_shard_seen_new (EP_SHARD_MAX_COUNT);
    cr_assert_eq (ep_shard_seen_newest (seen, 40000), 0, "nothing seen, nothing held");
    cr_assert_eq (ep_shard_seen_check (seen, 3, 70), EP_SHARD_COMMAND_OK);
    cr_assert_eq (ep_shard_seen_check (seen, 200, 80), EP_SHARD_COMMAND_OK);
    cr_assert_eq (ep_shard_seen_check (seen, EP_SHARD_MAX_COUNT - 1, 90), EP_SHARD_COMMAND_OK);
    cr_assert_eq (ep_shard_seen_newest (seen, 3), 70, "kept when the slots grew");
    cr_assert_eq (ep_shard_seen_newest (seen, 200), 80);
    cr_assert_eq (ep_shard_seen_newest (seen, 199), 0);
    cr_assert_eq (ep_shard_seen_check (seen, EP_SHARD_MAX_COUNT - 1, 89), EP_SHARD_COMMAND_STALE);
    cr_assert_eq (ep_shard_seen_check (seen, EP_SHARD_MAX_COUNT, 100), EP_SHARD_COMMAND_BAD);
    ep_shard_seen_destroy (&seen);
}

//  ---------------------------------------------------------------------
//  The simulation: members over a simulated etcd (one owner key per shard
//  created only if absent, deletes comparing the create revision, a lease's
//  keys all deleted in one revision), each member's watch delivered in
//  order with its own delay, requests answered after a random delay.

#define SIM_SHARDS 64
#define SIM_MEMBERS 6
#define SIM_STEP 10                     //  ms per step
#define SIM_MAX_TXNS 256

typedef enum { EV_MEMBER_PUT, EV_MEMBER_DEL, EV_OWNER_PUT, EV_OWNER_DEL } s_ev_kind_t;

typedef struct {
    s_ev_kind_t kind;
    int shard;
    int64_t lease;
    int64_t create;
    int64_t revision;
    int64_t at;                         //  when committed (ms)
} s_event_t;

typedef struct {
    ep_shard_action_t action;
    int64_t apply_at;                   //  reaches etcd
    int64_t reply_at;                   //  its answer reaches the member
    bool applied;
    bool ok;
    int64_t revision;
} s_txn_t;

typedef struct {
    bool alive;                         //  running (a killed one stops at once)
    int64_t lease;
    int64_t expires_at;                 //  killed: when its lease ends (0: not killed)
    ep_shard_t *view;
    size_t next_event;                  //  its watch's position in the log
    int64_t lag;                        //  its watch's delay (ms)
    s_txn_t txns [SIM_MAX_TXNS];
    size_t ntxns;
} s_member_t;

typedef struct {
    int64_t now;
    int64_t revision;
    int64_t owner [SIM_SHARDS];         //  lease, 0: none
    int64_t create [SIM_SHARDS];
    int64_t mod [SIM_SHARDS];
    int64_t acquired_at [SIM_SHARDS];
    int64_t member_leases [SIM_MEMBERS];    //  member keys present (0: none)
    s_event_t *log;
    size_t nlog;
    s_member_t m [SIM_MEMBERS];
    int64_t next_lease;
    uint64_t rng;
    int64_t actions_at;                 //  when the last action was taken
    int64_t membership_at;              //  when a member last joined or left
} s_sim_t;

static int64_t
s_rand (s_sim_t *sim, int64_t below)
{
    sim->rng ^= sim->rng << 13;
    sim->rng ^= sim->rng >> 7;
    sim->rng ^= sim->rng << 17;
    return (int64_t) (sim->rng % (uint64_t) below);
}

static void
s_log (s_sim_t *sim, s_ev_kind_t kind, int shard, int64_t lease, int64_t create)
{
    sim->log = realloc (sim->log, sizeof (s_event_t) * (sim->nlog + 1));
    sim->log [sim->nlog++] = (s_event_t) { kind, shard, lease, create, sim->revision, sim->now };
}

//  A lease ends: its member key and owner keys go in one revision.
static void
s_revoke (s_sim_t *sim, int i)
{
    int64_t lease = sim->member_leases [i];
    sim->revision++;
    s_log (sim, EV_MEMBER_DEL, -1, lease, 0);
    for (int s = 0; s < SIM_SHARDS; s++)
        if (sim->owner [s] == lease) {
            sim->owner [s] = 0;
            sim->create [s] = 0;
            sim->mod [s] = sim->revision;
            s_log (sim, EV_OWNER_DEL, s, lease, 0);
        }
    sim->member_leases [i] = 0;
    sim->membership_at = sim->now;
}

static void
s_join (s_sim_t *sim, int i)
{
    s_member_t *m = &sim->m [i];
    cr_assert_not (m->alive || sim->member_leases [i]);
    memset (m, 0, sizeof *m);
    m->alive = true;
    m->lease = ++sim->next_lease;
    m->lag = s_rand (sim, 200);
    sim->member_leases [i] = m->lease;
    sim->revision++;
    s_log (sim, EV_MEMBER_PUT, -1, m->lease, 0);
    sim->membership_at = sim->now;
    //  Its start: a read of the prefix at one revision, then the watch.
    m->view = ep_shard_new (SIM_SHARDS, m->lease, TTL, sim->now);
    for (int j = 0; j < SIM_MEMBERS; j++)
        if (sim->member_leases [j])
            ep_shard_member_put (m->view, sim->member_leases [j], sim->now);
    for (int s = 0; s < SIM_SHARDS; s++)
        if (sim->owner [s])
            ep_shard_owner_put (m->view, s, sim->owner [s], sim->create [s], sim->mod [s], sim->now);
    ep_shard_caught_up (m->view, sim->revision);
    m->next_event = sim->nlog;
}

//  kill: the process stops at once, its lease ends a TTL later; else it
//  leaves (revokes its lease).
static void
s_stop (s_sim_t *sim, int i, bool kill)
{
    s_member_t *m = &sim->m [i];
    m->alive = false;
    ep_shard_destroy (&m->view);
    if (kill)
        m->expires_at = sim->now + TTL;
    else
        s_revoke (sim, i);
}

static void
s_apply (s_sim_t *sim, s_member_t *m, s_txn_t *txn)
{
    int s = txn->action.shard;
    if (txn->action.verb == EP_SHARD_ACQUIRE) {
        txn->ok = sim->owner [s] == 0;
        if (txn->ok) {
            sim->revision++;
            sim->owner [s] = m->lease;
            sim->create [s] = sim->mod [s] = sim->revision;
            sim->acquired_at [s] = sim->now;
            s_log (sim, EV_OWNER_PUT, s, m->lease, sim->revision);
        }
    }
    else {
        txn->ok = sim->owner [s] && sim->create [s] == txn->action.create_revision;
        if (txn->ok) {
            if (txn->action.verb == EP_SHARD_RELEASE)
                cr_assert_geq (sim->now - sim->acquired_at [s], TTL,
                               "shard %d released %lld ms after it moved", s,
                               (long long) (sim->now - sim->acquired_at [s]));
            sim->revision++;
            sim->owner [s] = 0;
            sim->create [s] = 0;
            sim->mod [s] = sim->revision;
            s_log (sim, EV_OWNER_DEL, s, 0, 0);
        }
    }
    txn->revision = sim->revision;
    txn->applied = true;
}

static void
s_deliver (s_sim_t *sim, s_member_t *m)
{
    int64_t delivered = 0;
    while (m->next_event < sim->nlog && sim->log [m->next_event].at <= sim->now - m->lag) {
        s_event_t *ev = &sim->log [m->next_event++];
        if (ev->kind == EV_MEMBER_PUT)
            ep_shard_member_put (m->view, ev->lease, sim->now);
        else
        if (ev->kind == EV_MEMBER_DEL)
            ep_shard_member_delete (m->view, ev->lease, sim->now);
        else
        if (ev->kind == EV_OWNER_PUT)
            ep_shard_owner_put (m->view, ev->shard, ev->lease, ev->create, ev->revision, sim->now);
        else
            ep_shard_owner_delete (m->view, ev->shard, ev->revision, sim->now);
        delivered = ev->revision;
    }
    if (delivered)
        ep_shard_caught_up (m->view, delivered);
}

//  No shard has two members acting as its owner, and one that acts holds
//  the key in etcd under the create revision it believes.
static void
s_check_owners (s_sim_t *sim)
{
    for (int s = 0; s < SIM_SHARDS; s++) {
        int acting = 0;
        for (int i = 0; i < SIM_MEMBERS; i++) {
            s_member_t *m = &sim->m [i];
            if (!m->alive)
                continue;
            int64_t mine = ep_shard_mine (m->view, s);
            if (mine) {
                acting++;
                cr_assert_eq (sim->owner [s], m->lease, "t=%lld shard %d: member %d acts, etcd says lease %lld",
                              (long long) sim->now, s, i, (long long) sim->owner [s]);
                cr_assert_eq (sim->create [s], mine);
            }
        }
        cr_assert_leq (acting, 1, "t=%lld shard %d has %d acting owners", (long long) sim->now, s, acting);
    }
}

static void
s_step (s_sim_t *sim)
{
    sim->now += SIM_STEP;
    for (int i = 0; i < SIM_MEMBERS; i++)
        if (sim->m [i].expires_at && sim->m [i].expires_at <= sim->now) {
            sim->m [i].expires_at = 0;
            s_revoke (sim, i);
        }
    for (int i = 0; i < SIM_MEMBERS; i++) {
        s_member_t *m = &sim->m [i];
        if (!m->alive)
            continue;
        size_t kept = 0;
        for (size_t t = 0; t < m->ntxns; t++) {
            s_txn_t *txn = &m->txns [t];
            if (!txn->applied && txn->apply_at <= sim->now)
                s_apply (sim, m, txn);
            if (txn->applied && txn->reply_at <= sim->now)
                ep_shard_settled (m->view, txn->action.shard, txn->action.verb, txn->ok, txn->revision,
                                  sim->now);
            else
                m->txns [kept++] = *txn;
        }
        m->ntxns = kept;
    }
    for (int i = 0; i < SIM_MEMBERS; i++) {
        s_member_t *m = &sim->m [i];
        if (!m->alive)
            continue;
        s_deliver (sim, m);
        ep_shard_action_t actions [SIM_SHARDS];
        size_t n = ep_shard_decide (m->view, sim->now, actions, SIM_SHARDS);
        for (size_t a = 0; a < n; a++) {
            cr_assert_lt (m->ntxns, SIM_MAX_TXNS);
            int64_t apply_at = sim->now + 1 + s_rand (sim, 60);
            m->txns [m->ntxns++] = (s_txn_t) { .action = actions [a], .apply_at = apply_at,
                                               .reply_at = apply_at + 1 + s_rand (sim, 60) };
            sim->actions_at = sim->now;
        }
    }
    s_check_owners (sim);
}

static void
s_run (s_sim_t *sim, int64_t ms)
{
    for (int64_t end = sim->now + ms; sim->now < end; )
        s_step (sim);
}

//  Runs until membership has been stable for two TTLs and 3 s more, then
//  checks: every shard owned, nobody above the cap, no action for 2 s.
static void
s_settle (s_sim_t *sim, const char *what)
{
    s_run (sim, sim->membership_at + 2 * TTL + 3000 - sim->now);
    int alive = 0;
    for (int i = 0; i < SIM_MEMBERS; i++)
        alive += sim->m [i].alive;
    int cap = (SIM_SHARDS + alive - 1) / alive + 1;
    for (int s = 0; s < SIM_SHARDS; s++)
        cr_assert_neq (sim->owner [s], 0, "%s: shard %d unowned", what, s);
    for (int i = 0; i < SIM_MEMBERS; i++) {
        if (!sim->m [i].alive)
            continue;
        int held = 0;
        for (int s = 0; s < SIM_SHARDS; s++)
            held += sim->owner [s] == sim->m [i].lease;
        cr_assert_leq (held, cap, "%s: member %d holds %d, cap %d", what, i, held, cap);
        cr_assert_eq (ep_shard_held (sim->m [i].view), held, "%s: member %d's view", what, i);
    }
    cr_assert_leq (sim->actions_at, sim->now - 2000, "%s: still moving shards at t=%lld",
                   what, (long long) sim->actions_at);
}

//  All shards owned again within a second after a lease ended.
static void
s_all_owned_soon (s_sim_t *sim, const char *what)
{
    int64_t deadline = sim->now + 1000;
    bool all = false;
    while (!all && sim->now < deadline) {
        s_step (sim);
        all = true;
        for (int s = 0; s < SIM_SHARDS; s++)
            all = all && sim->owner [s];
    }
    cr_assert (all, "%s: shards unowned a second later", what);
}

Test (shard, simulation_of_members_joining_crashing_and_leaving)
{
    for (uint64_t seed = 1; seed <= 6; seed++) {
        s_sim_t sim = { .rng = 0x9e3779b97f4a7c15ULL * seed };
        s_join (&sim, 0);
        s_run (&sim, 1000);
        s_join (&sim, 1);
        s_run (&sim, 500);
        s_join (&sim, 2);
        s_settle (&sim, "three members");

        s_stop (&sim, 1, true);
        s_run (&sim, TTL);
        s_all_owned_soon (&sim, "member 1 killed");
        s_settle (&sim, "two left");

        for (int i = 3; i < 6; i++) {
            s_join (&sim, i);
            s_run (&sim, 300);
        }
        s_settle (&sim, "five members");

        s_stop (&sim, 2, false);
        s_all_owned_soon (&sim, "member 2 left");
        s_settle (&sim, "four left");

        s_stop (&sim, 0, true);
        s_stop (&sim, 3, true);
        s_run (&sim, TTL);
        s_all_owned_soon (&sim, "two killed at once");
        s_settle (&sim, "two left again");

        s_join (&sim, 1);
        s_run (&sim, s_rand (&sim, TTL));
        s_join (&sim, 2);
        s_settle (&sim, "four again");
        for (int i = 0; i < SIM_MEMBERS; i++)
            ep_shard_destroy (&sim.m [i].view);
        free (sim.log);
    }
}

//  The endpoint a beacon names: --advertise, else the bound one, a
//  wildcard address replaced by the host's name.
Test (shard, advertised_endpoint)
{
    char *text = ep_shards_advertise ("tcp://terms-1:7011", "tcp://0.0.0.0:7011");
    cr_assert_str_eq (text, "tcp://terms-1:7011");
    free (text);
    text = ep_shards_advertise (NULL, "tcp://127.0.0.1:4321");
    cr_assert_str_eq (text, "tcp://127.0.0.1:4321");
    free (text);
    char host [256] = "localhost", want [300];
    gethostname (host, sizeof host - 1);
    snprintf (want, sizeof want, "tcp://%s:7011", host);
    const char *wildcards [] = { "tcp://0.0.0.0:7011", "tcp://[::]:7011", "tcp://*:7011" };
    for (size_t i = 0; i < 3; i++) {
        text = ep_shards_advertise ("", wildcards [i]);
        cr_assert_str_eq (text, want, "%s", wildcards [i]);
        free (text);
    }
}

Test (shard, an_answer_to_another_verb_than_the_one_in_flight_is_ignored)
{
    //  An eviction sent, then the view read again (the shard unowned) and
    //  an acquisition sent: the eviction's late "ok" is not the acquisition's.
    ep_shard_t *view = ep_shard_new (1, 2, TTL, 0);
    ep_shard_member_put (view, 2, 0);
    ep_shard_action_t actions [4];
    cr_assert_eq (ep_shard_decide (view, 0, actions, 4), 1);
    cr_assert_eq (actions [0].verb, EP_SHARD_ACQUIRE);
    ep_shard_settled (view, 0, EP_SHARD_EVICT, true, 40, 0);
    cr_assert_eq (ep_shard_mine (view, 0), 0, "an eviction's answer made this member the owner");
    cr_assert_eq (ep_shard_held (view), 1, "the acquisition is no longer in flight");
    ep_shard_settled (view, 0, EP_SHARD_ACQUIRE, true, 41, 0);
    cr_assert_eq (ep_shard_mine (view, 0), 41);
    ep_shard_destroy (&view);
}

Test (shard, a_view_that_missed_an_event_disagrees_with_a_fresh_read)
{
    char why [256];
    ep_shard_t *view = ep_shard_new (4, 1, TTL, 0), *read = ep_shard_new (4, 1, TTL, 0);
    ep_shard_member_put (view, 1, 0);
    ep_shard_member_put (view, 9, 0);
    ep_shard_owner_put (view, 2, 1, 30, 30, 0);
    ep_shard_member_put (read, 9, 0);
    ep_shard_member_put (read, 1, 0);
    ep_shard_owner_put (read, 2, 1, 30, 31, 0);
    cr_assert (ep_shard_agrees (view, read, why, sizeof why), "members in another order, "
               "a refresh of the same key: the same view (%s)", why);
    //  The watch missed member 9's delete.
    ep_shard_member_delete (read, 9, 0);
    cr_assert_not (ep_shard_agrees (view, read, why, sizeof why));
    cr_assert_str_eq (why, "member 9 is in the view but not in etcd");
    ep_shard_member_delete (view, 9, 0);
    //  Another owner's key, created again: a new create revision.
    ep_shard_owner_put (read, 2, 1, 35, 35, 0);
    cr_assert_not (ep_shard_agrees (view, read, why, sizeof why));
    cr_assert (strstr (why, "shard 2"), "%s", why);
    ep_shard_owner_put (view, 2, 1, 35, 35, 0);
    cr_assert (ep_shard_agrees (view, read, why, sizeof why), "%s", why);
    ep_shard_member_put (read, 5, 0);
    cr_assert_not (ep_shard_agrees (view, read, why, sizeof why));
    cr_assert_str_eq (why, "member 5 is in etcd but not in the view");
    ep_shard_destroy (&view);
    ep_shard_destroy (&read);
}
