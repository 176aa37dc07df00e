/*  test_shards.c: common/ep_shards on the fixture's etcd cluster, through
    members run by tests/tools/ep-shard-member (each writes a fenced key per
    shard it owns every 200 ms): two members split 64 shards within the
    cap; one SIGKILLed, the other owns them all within TTL + 2 s; one
    frozen past its lease (SIGSTOP, SIGCONT) has its next write refused and
    drops the shard (in practice its lease guard acts first); a member with
    another shard count is refused; and, in this process, an owner cut off
    (lease revoked, its shard taken) sends its next write before its watch
    tells it anything: refused, counted, the shard dropped; a view that
    missed a member's delete is read again (the audit). After
    each, the history of the keys says no shard ever had two owners and no
    write landed but its owner's. */
#include <criterion/criterion.h>
#include <signal.h>
#include "ep_etcd_cluster.h"
#include "ep_shards.h"
#include "ep_test.h"

#define SHARDS 64
#define TTL_MS 3000
//  ceil (64 / 2) + 1
#define CAP 33

static ep_etcd_t *
s_client (void)
{
    const char *endpoints = ep_etcd_cluster_endpoints ();
    cr_assert (endpoints, "no etcd cluster: run this suite through ctest (fixture etcd_cluster)");
    char err [256];
    ep_etcd_config_t config = { .endpoints = endpoints, .timeout_ms = 3000,
                                .connect_timeout_ms = 500, .watch_idle_ms = 3000 };
    ep_etcd_t *client = ep_etcd_new (&config, err, sizeof err);
    cr_assert (client, "%s", err);
    return client;
}

static ep_proc_t *
s_member (const char *prefix, const char *id, const char *shards)
{
    const char *args [] = { "--endpoints", ep_etcd_cluster_endpoints (), "--prefix", prefix,
                            "--id", id, "--ttl", "3s", "--shards", shards, NULL };
    ep_proc_t *member = ep_proc_start ("ep-shard-member", args, NULL, 10000 * EP_TEST_SLOWDOWN);
    cr_assert (member, "member %s did not start", id);
    return member;
}

//  Who owns the shards now, as etcd says.
typedef struct {
    ep_etcd_t *client;
    char owners [256];          //  <prefix>test/owners/
    int a, b, total;            //  owned by "a", by "b", at all
    int64_t revision;           //  of the read
} s_split_t;

static void
s_read_split (s_split_t *split)
{
    uint8_t end [256];
    ep_etcd_range_t range = { .key = ep_etcd_str (split->owners) };
    range.range_end = ep_etcd_prefix_end (range.key, end, sizeof end);
    ep_etcd_capture_t c = { 0 };
    cr_assert_eq (ep_etcd_range (split->client, &range, ep_etcd_capture, &c), 0);
    cr_assert (ep_etcd_await (split->client, &c, 5000), "range: no answer");
    cr_assert_str_empty (c.error, "%s", c.error);
    split->a = split->b = 0;
    split->total = (int) c.nkvs;
    split->revision = c.revision;
    for (size_t i = 0; i < c.nkvs; i++) {
        split->a += strcmp (c.values [i], "a") == 0;
        split->b += strcmp (c.values [i], "b") == 0;
    }
}

static bool
s_split_within_cap (void *arg)
{
    s_split_t *split = arg;
    s_read_split (split);
    return split->total == SHARDS && split->a > 0 && split->b > 0
        && split->a <= CAP && split->b <= CAP;
}

static bool
s_all_on_a (void *arg)
{
    s_split_t *split = arg;
    s_read_split (split);
    return split->a == SHARDS;
}

//  ---------------------------------------------------------------------
//  The history: every owner key created only where there was none, and
//  every data write made while its writer's lease held the shard.

typedef struct {
    char prefix [256];          //  the test's
    int64_t until;              //  read up to this revision
    int64_t reached;            //  read up to here so far
    int64_t owner [SHARDS];     //  lease holding each shard in the replay, 0: none
    int creates;                //  owner keys created
    int writes;                 //  data writes seen
    int failures;               //  broken rules (the first is in why)
    char why [512];
} s_history_t;

static void
s_replay_event (s_history_t *h, const ep_etcd_event_t *ev)
{
    const char *key = (const char *) ev->kv.key + strlen (h->prefix);
    int shard;
    if (sscanf (key, "test/owners/%d", &shard) == 1 && shard >= 0 && shard < SHARDS) {
        if (ev->is_delete) {
            h->owner [shard] = 0;
            return;
        }
        if ((h->owner [shard] || ev->kv.version != 1) && !h->failures++)
            snprintf (h->why, sizeof h->why, "revision %lld: shard %d's owner key written over "
                      "(held by lease %llx, version %lld)", (long long) ev->kv.mod_revision, shard,
                      (unsigned long long) h->owner [shard], (long long) ev->kv.version);
        h->owner [shard] = ev->kv.lease;
        h->creates++;
    }
    else
    if (sscanf (key, "test/data/%d", &shard) == 1 && shard >= 0 && shard < SHARDS && !ev->is_delete) {
        char id [64];
        unsigned long long lease = 0;
        sscanf ((const char *) ev->kv.value, "%63s %llx", id, &lease);
        h->writes++;
        if ((int64_t) lease != h->owner [shard] && !h->failures++)
            snprintf (h->why, sizeof h->why, "revision %lld: %s (lease %llx) wrote shard %d owned "
                      "by lease %llx", (long long) ev->kv.mod_revision, id, lease, shard,
                      (unsigned long long) h->owner [shard]);
    }
}

static void
s_on_history (void *arg, const ep_etcd_reply_t *reply, const char *error)
{
    s_history_t *h = arg;
    cr_assert (reply, "history watch: %s", error);
    cr_assert_not (reply->canceled, "history watch canceled (compacted?)");
    for (size_t i = 0; i < reply->nevents; i++)
        if (reply->events [i].kv.mod_revision <= h->until)
            s_replay_event (h, &reply->events [i]);
    //  The created message's header is the revision now, not how far the
    //  history was sent: events and progress notifications tell that.
    if (reply->nevents && reply->events [reply->nevents - 1].kv.mod_revision > h->reached)
        h->reached = reply->events [reply->nevents - 1].kv.mod_revision;
    if (reply->progress && reply->header.revision > h->reached)
        h->reached = reply->header.revision;
}

static void
s_check_history (ep_etcd_t *client, const char *prefix, int64_t from, int64_t until)
{
    s_history_t h = { .until = until };
    snprintf (h.prefix, sizeof h.prefix, "%s", prefix);
    uint8_t end [256];
    ep_etcd_watch_req_t req = { .key = ep_etcd_str (prefix), .start_revision = from };
    req.range_end = ep_etcd_prefix_end (req.key, end, sizeof end);
    ep_etcd_watch_t *watch = ep_etcd_watch (client, &req, s_on_history, &h);
    //  Progress notifications (one a second) carry the watch past `until`.
    int64_t deadline = ep_mono_ms () + 10000;
    while (h.reached < until && ep_mono_ms () < deadline)
        ep_etcd_wait (client, 100);
    ep_etcd_watch_cancel (&watch);
    cr_assert_geq (h.reached, until, "the history watch reached %lld of %lld",
                   (long long) h.reached, (long long) until);
    cr_assert_eq (h.failures, 0, "%d broken rules; first: %s", h.failures, h.why);
    cr_assert_geq (h.creates, SHARDS);
    cr_assert_gt (h.writes, 0, "no fenced write succeeded");
}

static int64_t
s_revision (ep_etcd_t *client)
{
    ep_etcd_capture_t c = { 0 };
    ep_etcd_range_t range = { .key = ep_etcd_str ("/test/none"), .count_only = true };
    cr_assert_eq (ep_etcd_range (client, &range, ep_etcd_capture, &c), 0);
    cr_assert (ep_etcd_await (client, &c, 5000));
    cr_assert_str_empty (c.error, "%s", c.error);
    return c.revision;
}

typedef struct {
    ep_proc_t *member;
    const char *what [3];       //  every one of these in its log
    size_t after;               //  looked for only past this many bytes of it
} s_log_has_t;

static bool
s_log_has (void *arg)
{
    s_log_has_t *want = arg;
    char *log = ep_proc_log (want->member);
    bool all = log != NULL && strlen (log) >= want->after;
    for (int i = 0; all && i < 3 && want->what [i]; i++)
        all = strstr (log + want->after, want->what [i]) != NULL;
    free (log);
    return all;
}

static bool
s_b_holds (void *arg)
{
    s_split_t *split = (s_split_t *) arg;
    s_read_split (split);
    return split->b > 0;
}

//  ---------------------------------------------------------------------

//  Two members, a then b, on a prefix of their own, split within the cap.
typedef struct {
    ep_etcd_t *client;
    char *prefix;
    s_split_t split;
    int64_t from;               //  the history starts here
    ep_proc_t *a, *b;
} s_pair_t;

static void
s_pair_start (s_pair_t *pair, const char *name)
{
    pair->client = s_client ();
    pair->prefix = ep_etcd_test_prefix (name);
    pair->split = (s_split_t) { .client = pair->client };
    snprintf (pair->split.owners, sizeof pair->split.owners, "%stest/owners/", pair->prefix);
    pair->from = s_revision (pair->client) + 1;
    pair->a = s_member (pair->prefix, "a", "64");
    pair->b = s_member (pair->prefix, "b", "64");
    //  b joins after a took everything (or some): a gives up its excess
    //  once the membership has been stable for two TTLs.
    cr_assert (ep_wait_until (s_split_within_cap, &pair->split, (4 * TTL_MS + 10000) * EP_TEST_SLOWDOWN),
               "no split within the cap: a %d, b %d, %d owned", pair->split.a, pair->split.b,
               pair->split.total);
}

static void
s_pair_end (s_pair_t *pair)
{
    s_check_history (pair->client, pair->prefix, pair->from, s_revision (pair->client));
    ep_proc_destroy (&pair->a);
    ep_proc_destroy (&pair->b);
    free (pair->prefix);
    ep_etcd_destroy (&pair->client);
}

Test (shards, two_split_the_shards_and_a_survivor_takes_all_within_ttl_plus_2s)
{
    s_pair_t pair;
    s_pair_start (&pair, "shards");
    ep_proc_signal (pair.b, SIGKILL);
    int64_t killed = ep_mono_ms ();
    bool taken = ep_wait_until (s_all_on_a, &pair.split, TTL_MS + 2000);
    int64_t took = ep_mono_ms () - killed;
    cr_assert (taken, "a owns %d of %d shards %lld ms after b was killed", pair.split.a, SHARDS,
               (long long) took);
    cr_log_info ("a owned every shard %lld ms after b was killed (TTL %d ms)", (long long) took, TTL_MS);
    //  etcd has it before a hears the answers and logs them.
    s_log_has_t takeover = { pair.a, { "taken over" }, 0 };
    if (!ep_wait_until (s_log_has, &takeover, 2000 * EP_TEST_SLOWDOWN)) {
        char *log = ep_proc_log (pair.a);
        cr_assert_fail ("a's log names no takeover:\n%s", log);
    }
    ep_proc_signal (pair.a, SIGTERM);
    cr_assert_eq (ep_proc_wait_exit (pair.a, 5000), 0, "a did not leave cleanly");
    s_pair_end (&pair);
}

Test (shards, a_frozen_owner_is_refused_when_it_returns_and_drops_its_shards)
{
    s_pair_t pair;
    s_pair_start (&pair, "frozen");
    //  b freezes holding its shards (under load a keepalive can be late
    //  enough for b to let them go and take them again: wait till it holds
    //  some); its lease ends and a takes them.
    cr_assert (ep_wait_until (s_b_holds, &pair.split, (4 * TTL_MS + 10000) * EP_TEST_SLOWDOWN),
               "b holds no shard to freeze with");
    ep_proc_signal (pair.b, SIGSTOP);
    cr_assert (ep_wait_until (s_all_on_a, &pair.split, TTL_MS + 2000 * EP_TEST_SLOWDOWN),
               "a owns %d shards while b is frozen", pair.split.a);
    char *before = ep_proc_log (pair.b);
    size_t seen = before? strlen (before): 0;
    free (before);
    ep_proc_signal (pair.b, SIGCONT);

    //  Its first act is a write under the ownership it had: refused by
    //  the fence (or, if its lease guard sees first that no keepalive
    //  succeeded, not even tried); it drops the shards and says so, then
    //  joins again. Either way s_pair_end's replay finds no write of b
    //  that took effect while a owned the shard.
    s_log_has_t fenced = { pair.b, { "was refused: the shard is another owner's", "released shard" }, seen };
    s_log_has_t guarded = { pair.b, { "no keepalive succeeded", "released shard" }, seen };
    int64_t deadline = ep_mono_ms () + 5000 * EP_TEST_SLOWDOWN;
    bool said = false;
    while (!said && ep_mono_ms () < deadline)
        said = ep_wait_until (s_log_has, &fenced, 100) || s_log_has (&guarded);
    char *log = ep_proc_log (pair.b);
    cr_assert (said, "b's log after SIGCONT:\n%s", log);
    free (log);
    //  (Whether a still holds every shard now depends on how long those
    //  lines took: b rejoined under a new lease, and two stable TTLs later
    //  a gives some back. That no write of b took effect while it was not
    //  the owner is what s_pair_end's replay of the history checks.)

    //  Under a new lease, b gets its share back.
    cr_assert (ep_wait_until (s_split_within_cap, &pair.split, (4 * TTL_MS + 10000) * EP_TEST_SLOWDOWN),
               "no split after b came back: a %d, b %d", pair.split.a, pair.split.b);
    s_pair_end (&pair);
}

Test (shards, a_member_with_another_shard_count_is_refused)
{
    char *prefix = ep_etcd_test_prefix ("count");
    ep_proc_t *a = s_member (prefix, "a", "64");
    const char *args [] = { "--endpoints", ep_etcd_cluster_endpoints (), "--prefix", prefix,
                            "--id", "c", "--shards", "32", NULL };
    ep_proc_t *c = ep_proc_spawn ("ep-shard-member", args, NULL);
    int status = ep_proc_wait_exit (c, 10000 * EP_TEST_SLOWDOWN);
    char *log = ep_proc_log (c);
    cr_assert (status != -1 && WIFEXITED (status) && WEXITSTATUS (status) == 2,
               "c was not refused (status %d):\n%s", status, log);
    cr_assert (strstr (log, "EDGEPLANE_SHARDS is 32 here but 64 in etcd"), "%s", log);
    free (log);
    ep_proc_destroy (&c);
    ep_proc_destroy (&a);
    free (prefix);
}

//  ---------------------------------------------------------------------
//  The fence itself, in this process: an owner cut off (its lease revoked
//  by someone else, its shard's key then created by another owner) sends
//  its next write as it would after a freeze or a partition, before its
//  watch has told it anything. etcd refuses it, nothing lands, and the
//  owner counts it, says so and drops the shard.

typedef struct {
    int acquired;               //  ACQUIRED heard
    bool dropped [4];           //  RELEASED or FENCED heard, per shard
    bool fenced [4];            //  FENCED heard, per shard
} s_heard_t;

static void
s_on_shards (void *arg, ep_shards_event_t event, int shard, int64_t revision, const char *why)
{
    (void) revision;
    (void) why;
    s_heard_t *heard = (s_heard_t *) arg;
    if (event == EP_SHARDS_ACQUIRED)
        heard->acquired++;
    else
    if (shard >= 0 && shard < 4) {
        heard->dropped [shard] = true;
        heard->fenced [shard] |= event == EP_SHARDS_FENCED;
    }
}

//  Member "a" of 4 shards in this process, its loop run by the test.
static ep_shards_t *
s_member_here (const char *shards_prefix, ep_metrics_t *metrics, s_heard_t *heard)
{
    ep_shards_config_t config = {
        .etcd = { .endpoints = ep_etcd_cluster_endpoints (), .timeout_ms = 3000,
                  .connect_timeout_ms = 500, .watch_idle_ms = 3000 },
        .prefix = shards_prefix, .service = "test", .id = "a", .count = 4, .ttl_ms = TTL_MS,
        .metrics = metrics, .fn = s_on_shards, .arg = heard };
    char err [256];
    ep_shards_t *a = ep_shards_new (&config, err, sizeof err);
    cr_assert (a, "%s", err);
    return a;
}

//  Runs owner's loop until *done or timeout_ms; true if done.
static bool
s_pump (ep_shards_t *owner, bool *done, int timeout_ms)
{
    int64_t deadline = ep_mono_ms () + timeout_ms * EP_TEST_SLOWDOWN;
    while (!*done && ep_mono_ms () < deadline) {
        zmq_pollitem_t items [16];
        int n = ep_shards_pollitems (owner, items, 16);
        long timeout = ep_shards_timeout (owner);
        zmq_poll (items, n, timeout < 0 || timeout > 50? 50: timeout);
        ep_shards_dispatch (owner, items, n);
    }
    return *done;
}

static void
s_capture_fenced (void *arg, const ep_etcd_reply_t *reply, const char *error)
{
    void **pair = (void **) arg;
    ep_etcd_capture (pair [0], reply, error);
    ep_shard_fence_t *verdict = (ep_shard_fence_t *) pair [2];
    int64_t *revision = (int64_t *) pair [3];
    *verdict = ep_shards_fence_check ((ep_shards_t *) pair [1], 0, *revision, reply);
}

Test (shards, a_cut_off_owners_next_write_is_refused_and_its_shard_dropped)
{
    char *prefix = ep_etcd_test_prefix ("fence");
    char shards_prefix [200], data_key [256], owner_key [256];
    snprintf (shards_prefix, sizeof shards_prefix, "%sshards/", prefix);
    snprintf (data_key, sizeof data_key, "%sdata/0", prefix);
    snprintf (owner_key, sizeof owner_key, "%stest/owners/0", shards_prefix);
    s_heard_t heard = { 0 };
    ep_metrics_t *metrics = ep_metrics_new ("test");
    ep_shards_t *a = s_member_here (shards_prefix, metrics, &heard);
    bool all = false;
    int64_t deadline = ep_mono_ms () + 10000 * EP_TEST_SLOWDOWN;
    while (!all && ep_mono_ms () < deadline) {
        bool tick = false;
        s_pump (a, &tick, 50);
        all = ep_shards_owned (a) == 4 && heard.acquired == 4;
    }
    cr_assert (all, "a owns %d of 4 shards", (int) ep_shards_owned (a));

    //  The write a would send next, fenced on shard 0, built now.
    ep_etcd_compare_t compare;
    ep_etcd_op_t read;
    int64_t revision;
    cr_assert_eq (ep_shards_fence (a, 0, &compare, &read, &revision), 0);
    ep_etcd_op_t put = { .kind = EP_ETCD_PUT, .u.put = { .key = ep_etcd_str (data_key),
                                                         .value = ep_etcd_str ("a") } };

    //  Meanwhile, seen by everyone but a: its lease ends, b takes shard 0.
    ep_etcd_t *other = s_client ();
    ep_etcd_capture_t c = { 0 };
    ep_etcd_lease_revoke (other, ep_shards_lease (a), ep_etcd_capture, &c);
    cr_assert (ep_etcd_await (other, &c, 5000) && !c.error [0] && !c.code, "revoke: %s", c.error);
    ep_etcd_put_t owner = { .key = ep_etcd_str (owner_key), .value = ep_etcd_str ("b") };
    memset (&c, 0, sizeof c);
    ep_etcd_put (other, &owner, ep_etcd_capture, &c);
    cr_assert (ep_etcd_await (other, &c, 5000) && !c.error [0], "put: %s", c.error);

    //  a's next write, before its loop has run again.
    ep_etcd_capture_t answer = { 0 };
    ep_shard_fence_t verdict = EP_SHARD_STILL_OWNER;
    void *pair [4] = { &answer, a, &verdict, &revision };
    char err [256];
    ep_etcd_txn_t txn = { &compare, 1, &put, 1, &read, 1 };
    cr_assert_eq (ep_etcd_txn (ep_shards_etcd (a), &txn, s_capture_fenced, pair, err, sizeof err), 0, "%s", err);
    cr_assert (s_pump (a, &answer.done, 5000), "no answer to a's write");
    cr_assert_not (answer.succeeded, "a's write was applied after its shard was taken");
    cr_assert_neq (verdict, EP_SHARD_STILL_OWNER, "the refusal was not judged a fence");
    cr_assert_eq (ep_shards_fenced (a), 1, "not counted in edgeplane_shard_fenced_total");
    cr_assert_eq (ep_shards_held (a, 0), 0, "a still holds shard 0");
    cr_assert (heard.dropped [0], "a did not tell its service that shard 0 is gone");
    char *page = ep_metrics_render (metrics);
    cr_assert (strstr (page, "edgeplane_shard_fenced_total{service=\"test\"} 1"), "%s", page);
    free (page);

    //  Nothing of a's landed.
    ep_etcd_range_t range = { .key = ep_etcd_str (data_key) };
    memset (&c, 0, sizeof c);
    ep_etcd_range (other, &range, ep_etcd_capture, &c);
    cr_assert (ep_etcd_await (other, &c, 5000) && !c.error [0]);
    cr_assert_eq (c.nkvs, 0, "a's write is in etcd");
    ep_shards_destroy (&a);
    ep_metrics_destroy (&metrics);
    ep_etcd_destroy (&other);
    free (prefix);
}

//  Pumps a until its view has want members and it owns every one of count
//  shards.
typedef struct {
    ep_shards_t *a;
    int members, count;
} s_settled_t;

static bool
s_view_settled (s_settled_t *settled, int timeout_ms)
{
    int64_t deadline = ep_mono_ms () + timeout_ms * EP_TEST_SLOWDOWN;
    bool done = false;
    while (!done && ep_mono_ms () < deadline) {
        bool tick = false;
        s_pump (settled->a, &tick, 50);
        done = ep_shards_members (settled->a) == settled->members
            && (int) ep_shards_owned (settled->a) == settled->count;
    }
    return done;
}

Test (shards, a_view_that_missed_a_members_delete_is_read_again)
{
    char *prefix = ep_etcd_test_prefix ("audit");
    char shards_prefix [200];
    snprintf (shards_prefix, sizeof shards_prefix, "%sshards/", prefix);
    s_heard_t heard = { 0 };
    ep_metrics_t *metrics = ep_metrics_new ("test");
    ep_shards_t *a = s_member_here (shards_prefix, metrics, &heard);
    s_settled_t settled = { a, 1, 4 };
    cr_assert (s_view_settled (&settled, 10000), "a alone owns %d of 4 shards",
               (int) ep_shards_owned (a));

    //  What a watch that missed a member's delete leaves: a member that
    //  etcd no longer has. With it the fair share is 2 and a would give up
    //  shards; the audit reads etcd, disagrees twice and reads the view again.
    int64_t injected = ep_mono_ms ();
    ep_shard_member_put (ep_shards_view (a), 0x7e57, injected);
    cr_assert_eq (ep_shards_members (a), 2);
    settled.members = 1;
    cr_assert (s_view_settled (&settled, 2 * TTL_MS), "the phantom member is still in the view "
               "%lld ms later (%d members, %d shards owned)", (long long) (ep_mono_ms () - injected),
               ep_shards_members (a), (int) ep_shards_owned (a));
    cr_log_info ("the view was read again %lld ms after the phantom member was put in it",
                 (long long) (ep_mono_ms () - injected));
    cr_assert_eq (ep_shards_resyncs (a), 1);
    char *page = ep_metrics_render (metrics);
    cr_assert (strstr (page, "edgeplane_shard_resyncs_total{service=\"test\"} 1"), "%s", page);
    free (page);
    for (int s = 0; s < 4; s++)
        cr_assert_not (heard.dropped [s], "shard %d was given up for a member that is not there", s);
    ep_shards_destroy (&a);
    ep_metrics_destroy (&metrics);
    free (prefix);
}
