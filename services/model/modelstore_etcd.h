/*  modelstore_etcd.h: the model's store in etcd (EDGEPLANE_MODEL_STORE=etcd).

    The second backend of modelstore.h, for several model instances over
    one etcd cluster (issue 16, part 1). Everything lives under a prefix
    (docs/etcd.md, "The model's keys"):

        <prefix>state                       revision, generation, restored, batch nonce, cluster id
        <prefix>entities/<tt>/<id>          packed ep.Entity (tt: the type, 2 digits)
        <prefix>changes/<revision, 20 digits>  packed ep.ModelChange
        <prefix>replies/<wall ms, 20 digits>-<instance>-<seq>   saved replies, under a lease

    A local mirror of the entities and the state (loaded by a range at
    open, kept by one watch on the prefix) answers a batch's reads at once;
    the batch stages puts and deletes and records what it read, and its
    commit is one etcd transaction that compares the state key's mod
    revision (every batch writes it, so two instances cannot both commit
    revision N) and the mod revision of every entity key and range read.
    A batch decided on a stale mirror fails as a whole and the mirror is
    reloaded. Queries other than GET read ranges pinned at the etcd
    revision of the state key the mirror holds (the last batch's), so a
    snapshot's pages are of one model revision.

    The client is the caller's: its sockets must be in the caller's poll
    loop (ep_etcd_pollitems) for commits and queries to complete; the
    calls the interface allows to block (open, state, set_generation,
    load_replies) wait on it with ep_etcd_wait.
*/
#ifndef MODELSTORE_ETCD_H_INCLUDED
#define MODELSTORE_ETCD_H_INCLUDED

#include "ep_prelude.h"
#include "ep_config.h"
#include "ep_etcd.h"
#include "ep_etcd_opts.h"
#include "modelstore.h"

typedef struct {
    ep_etcd_t *etcd;            //  the client (borrowed; outlives the store)
    const char *prefix;         //  key prefix, ending in '/' ("/edgeplane/")
    int64_t max_txn_ops;        //  the cluster's --max-txn-ops; 0: 128 (etcd's default)
    int64_t replies_ttl_ms;     //  how long saved replies are kept; 0: 600000
    int64_t timeout_ms;         //  for each blocking call; 0: 10000
} modelstore_etcd_config_t;

//  Told why the store cannot open yet (for /readyz).
typedef void (modelstore_etcd_waiting_fn) (void *arg, const char *reason);

//  etcd out of reach at start is not a reason to exit: an orchestrator
//  starts the model and the cluster together, and a member may be down.
//  Waits, with backoff up to 5 s, until a member answers; logs one line
//  naming the endpoints and the last error, and tells waiting why at each
//  attempt. 0, or -1 if interrupted.
int
    modelstore_etcd_reachable (ep_etcd_t *etcd, const char *endpoints,
                               modelstore_etcd_waiting_fn *waiting, void *arg);

//  Opens the store: loads the mirror (blocking) and starts its watch.
//  NULL with err (what failed and what to do) if etcd cannot be read.
modelstore_t *
    modelstore_etcd_new (const modelstore_etcd_config_t *config, char *err, size_t errlen);

//  What modelstore_etcd_import copied.
typedef struct {
    size_t entities;            //  entities
    size_t changes;             //  retained change records
    uint64_t oldest;            //  the oldest of them (0: none)
    uint64_t revision;          //  the model's revision
} modelstore_etcd_import_t;

//  Copies source (a store whose queries complete inline: SQLite) into the
//  empty prefix of config: every entity and retained change record, in
//  this store's layout, and the state (revision, generation) marked
//  restored, so the model started on etcd takes a new generation
//  (followers resync). Saved replies are not copied. Loaded in
//  transactions of --max-txn-ops, the state key last. Blocking. Returns 0
//  with summary, or -1 with err (a prefix that holds keys is refused).
int
    modelstore_etcd_import (const modelstore_etcd_config_t *config, modelstore_t *source,
                            modelstore_etcd_import_t *summary, char *err, size_t errlen);

#endif
