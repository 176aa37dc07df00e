/*  ep_etcd_cluster.h: the three-member etcd cluster of the etcd-labelled
    suites (started once per ctest fixture by tests/support/etcd-cluster),
    synchronous calls for tests, and a key prefix per test. */
#ifndef EP_ETCD_CLUSTER_H_INCLUDED
#define EP_ETCD_CLUSTER_H_INCLUDED

#include "ep_etcd.h"

//  The cluster's client endpoints as a comma list (static), or NULL if the
//  fixture did not start it (the suite then fails with a message).
const char *
    ep_etcd_cluster_endpoints (void);

//  Member n's (1..3) client endpoint (static buffer).
const char *
    ep_etcd_cluster_member (int n);

//  SIGKILLs member n / restarts it on its data; 0 or -1.
int
    ep_etcd_cluster_kill (int n);
int
    ep_etcd_cluster_revive (int n);
//  SIGSTOPs member n (its connections stay open and go silent) / SIGCONTs it.
int
    ep_etcd_cluster_pause (int n);
int
    ep_etcd_cluster_resume (int n);

//  A single-member etcd restored from snapshot (`etcdctl snapshot restore`:
//  a new cluster, so a new cluster id) in a fresh directory on /dev/shm,
//  on 127.0.0.1 ports chosen by bind-and-close. Returns its directory
//  (caller frees, after ep_etcd_restored_stop) with its client endpoint in
//  endpoint (static), or NULL if it did not come up (stderr says why).
char *
    ep_etcd_restored_start (const char *snapshot, const char **endpoint);

//  Kills it and removes its directory; frees and nulls *dir_p.
void
    ep_etcd_restored_stop (char **dir_p);

//  A prefix no other test uses: "/test/<name>-<pid>-<counter>/".
char *
    ep_etcd_test_prefix (const char *name);

//  What a test keeps of a reply (the reply itself lives only in the callback).
typedef struct {
    bool done;                          //  the callback ran
    char error [512];                   //  transport or decode error
    int code;                           //  etcd's error code
    char etcd_error [256];
    int64_t revision;                   //  header
    bool succeeded;
    size_t nkvs;
    int64_t count;
    bool more;
    char keys [64][128];                //  first 64 keys
    char values [64][128];
    int64_t mod_revisions [64];
    int64_t lease_id, ttl, granted_ttl;
    size_t nresponses;
} ep_etcd_capture_t;

//  An ep_etcd_fn filling the ep_etcd_capture_t at arg.
void
    ep_etcd_capture (void *arg, const ep_etcd_reply_t *reply, const char *error);

//  Polls client until capture->done or timeout_ms (scaled by
//  EP_TEST_SLOWDOWN); true if done.
bool
    ep_etcd_await (ep_etcd_t *client, ep_etcd_capture_t *capture, int timeout_ms);

#endif
