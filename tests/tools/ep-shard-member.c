/*  ep-shard-member: one member of a service's shards (common/ep_shards),
    for the etcd suites (tests/etcd/test_shards.c). Not a service.

    It joins, writes its ready file once it is watching the shards, and
    every --write-every writes, for each shard it owns, the key
    <prefix><service>/data/<shard> = "<id> <lease hex> <seq>" in a
    transaction fenced by the shard's owner key, logging every refusal.
    Its log (stderr) says what it acquired, released and was refused;
    SIGTERM makes it leave (its lease revoked).

    Its loop writes before it hands the poll to ep_shards: after a freeze
    (SIGSTOP), the first thing it does is what an owner that froze between
    deciding and writing would do, a write under the ownership it had, and
    the fence is what refuses it.
*/
#include "ep_config.h"
#include "ep_log.h"
#include "ep_ready.h"
#include "ep_shards.h"
#include <signal.h>
#include <sys/prctl.h>

//  Writes in flight at once per shard: a freeze may catch some in flight,
//  and the first write after it must still go out.
#define SLOTS 4

//  One write in flight; its create revision is judged with the answer.
typedef struct {
    ep_shards_t *shards;        //  whose
    int shard;                  //  written
    int64_t revision;           //  the owner key's create revision compared
    bool busy;                  //  in flight
} s_write_t;

static volatile sig_atomic_t s_stop;

static void
s_on_signal (int sig)
{
    (void) sig;
    s_stop = 1;
}

static bool s_failed;

static void
s_on_change (void *arg, ep_shards_event_t event, int shard, int64_t create_revision, const char *why)
{
    (void) arg;
    if (event == EP_SHARDS_FAILED)
        s_failed = true;
    else
    if (event == EP_SHARDS_FENCED)
        ep_log_warn ("member: dropped shard %d (created at revision %lld): %s", shard,
                     (long long) create_revision, why);
}

static void
s_on_written (void *arg, const ep_etcd_reply_t *reply, const char *error)
{
    s_write_t *write = (s_write_t *) arg;
    write->busy = false;
    if (!reply || reply->code) {
        ep_log_warn ("member: write to shard %d: %s", write->shard, reply? reply->error: error);
        return;
    }
    if (reply->succeeded)
        return;
    ep_shard_fence_t verdict = ep_shards_fence_check (write->shards, write->shard,
                                                      write->revision, reply);
    ep_log_warn ("member: write to shard %d refused (%s); fenced writes so far: %llu", write->shard,
                 verdict == EP_SHARD_STILL_OWNER? "another compare": "fenced",
                 (unsigned long long) ep_shards_fenced (write->shards));
}

static void
s_write_owned (ep_shards_t *shards, s_write_t *writes, int count, const char *prefix,
               const char *service, const char *id, uint64_t seq)
{
    for (int s = 0; s < count; s++) {
        s_write_t *write = NULL;
        for (int i = 0; i < SLOTS && !write; i++)
            if (!writes [s * SLOTS + i].busy)
                write = &writes [s * SLOTS + i];
        ep_etcd_compare_t fence;
        ep_etcd_op_t read;
        int64_t revision;
        if (!write || ep_shards_fence (shards, s, &fence, &read, &revision))
            continue;
        char key [512], value [128];
        snprintf (key, sizeof key, "%s%s/data/%05d", prefix, service, s);
        snprintf (value, sizeof value, "%s %llx %llu", id, (unsigned long long) ep_shards_lease (shards),
                  (unsigned long long) seq);
        ep_etcd_op_t put = { .kind = EP_ETCD_PUT, .u.put = { .key = ep_etcd_str (key),
                                                             .value = ep_etcd_str (value) } };
        ep_etcd_txn_t txn = { &fence, 1, &put, 1, &read, 1 };
        char err [256];
        *write = (s_write_t) { shards, s, revision, true };
        if (ep_etcd_txn (ep_shards_etcd (shards), &txn, s_on_written, write, err, sizeof err)) {
            write->busy = false;
            ep_log_warn ("member: write to shard %d: %s", s, err);
        }
    }
}

int
main (int argc, char **argv)
{
    static char *endpoints, *prefix, *service, *id, *ready_file;
    static int64_t count, ttl, write_every;
    ep_opt_t opts [] = {
        { .name = "endpoints", .env = "EDGEPLANE_ETCD_ENDPOINTS", .type = EP_OPT_STRING,
          .str = &endpoints, .help = "etcd client URLs, comma-separated." },
        { .name = "prefix", .def = "/edgeplane/shards/", .type = EP_OPT_STRING, .str = &prefix,
          .help = "Key prefix." },
        { .name = "service", .def = "test", .type = EP_OPT_ID, .str = &service,
          .help = "Whose shards." },
        { .name = "id", .type = EP_OPT_ID, .str = &id, .help = "This member's id." },
        { .name = "shards", .env = "EDGEPLANE_SHARDS", .def = "64", .type = EP_OPT_INT, .num = &count,
          .min = 1, .max = EP_SHARD_MAX_COUNT, .help = "Shard count." },
        { .name = "ttl", .def = "2s", .type = EP_OPT_DURATION, .num = &ttl, .min = 1000,
          .max = 600000, .help = "Lease TTL." },
        { .name = "write-every", .def = "200ms", .type = EP_OPT_DURATION, .num = &write_every,
          .min = 10, .max = 60000, .help = "Fenced writes to each owned shard this often." },
        { .name = "ready-file", .type = EP_OPT_STRING, .str = &ready_file,
          .help = "Written once the member watches the shards." },
    };
    ep_config_t *config = ep_config_new ("ep-shard-member", "One member of a service's shards, for tests.");
    ep_config_add (config, opts, EP_COUNT (opts));
    ep_config_parse_or_exit (config, argc, argv);
    ep_log_init_named ("shard-member", "info", "text");
    if (!endpoints || !id) {
        ep_log_error ("--endpoints and --id are required");
        return 2;
    }
    //  czmq installs its own handlers when it first initialises (a log
    //  line from ep_etcd may do it); initialised now, it will not later.
    zsys_init ();
    signal (SIGTERM, s_on_signal);
    signal (SIGINT, s_on_signal);
    //  A suite that fails an assertion skips its cleanup: its members
    //  leave with it rather than run on.
    prctl (PR_SET_PDEATHSIG, SIGTERM);
    ep_shards_config_t sc = { .etcd = { .endpoints = endpoints, .timeout_ms = 1000,
                                        .connect_timeout_ms = 500, .watch_idle_ms = 3000 },
                              .prefix = prefix, .service = service, .id = id, .count = (int) count,
                              .ttl_ms = ttl, .fn = s_on_change };
    char err [512];
    ep_shards_t *shards = ep_shards_new (&sc, err, sizeof err);
    if (!shards) {
        ep_log_error ("%s", err);
        return 2;
    }
    s_write_t *writes = (s_write_t *) zmalloc (sizeof (s_write_t) * (size_t) count * SLOTS);
    bool ready = false;
    int64_t write_at = ep_mono_ms ();
    uint64_t seq = 0;
    while (!s_stop && !zsys_interrupted && !s_failed) {
        zmq_pollitem_t items [EP_ETCD_MAX_FDS];
        int n = ep_shards_pollitems (shards, items, EP_ETCD_MAX_FDS);
        long timeout = ep_shards_timeout (shards);
        long until_write = (long) (write_at - ep_mono_ms ());
        if (timeout < 0 || until_write < timeout)
            timeout = until_write < 0? 0: until_write;
        zmq_poll (items, n, timeout);
        if (ep_mono_ms () >= write_at) {
            s_write_owned (shards, writes, (int) count, prefix, service, id, ++seq);
            write_at = ep_mono_ms () + write_every;
        }
        ep_shards_dispatch (shards, items, n);
        if (!ready && ep_shards_members (shards) > 0 && ready_file) {
            json_t *none = json_object ();
            if (ep_ready_write (ready_file, "shard-member", none))
                ep_log_error ("cannot write the ready file %s", ready_file);
            json_decref (none);
            ready = true;
        }
    }
    ep_log_info ("member: stopping (%s)", s_failed? "refused": "signal");
    ep_shards_destroy (&shards);
    free (writes);
    ep_config_destroy (&config);
    return s_failed? 2: 0;
}
