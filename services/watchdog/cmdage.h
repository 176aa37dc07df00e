/*  cmdage.h: whether a command for a router still comes from its shard's
    owner, so that the watchdog delivers it (docs/shards.md, "Commands
    carry their owner").

    A service running on shards puts its fence in each command it
    publishes: its name, the router's shard and the create revision of its
    owner key for that shard. An owner that lost its shard (a frozen
    process, a partition) may still publish for a while; its commands carry
    an older create revision than the new owner's. Per service and shard
    this module keeps the newest revision a command or an owner's beacon
    carried (ep_shard_seen_t) and judges each command against it: older is stale, the same or newer
    is delivered (and remembered). A command with no fence comes from an
    unsharded publisher and is always delivered.

    Pure: no sockets, no clocks. The watchdog does not know a service's
    shard count, so its tables are for EP_SHARD_MAX_COUNT (they grow with
    the shards seen); it keeps at most CMDAGE_MAX_SERVICES services, which
    also bounds the label values of edgeplane_commands_stale_total.
*/
#ifndef CMDAGE_H_INCLUDED
#define CMDAGE_H_INCLUDED

#include "ep_prelude.h"
#include "channel.pb-c.h"

//  The most sharded services whose commands are judged (there are two).
#define CMDAGE_MAX_SERVICES 16

typedef struct _cmdage_t cmdage_t;

typedef enum {
    CMDAGE_UNSHARDED,           //  no fence: an unsharded publisher, deliver
    CMDAGE_DELIVER,             //  from the newest owner seen, or a newer one: deliver
    CMDAGE_STALE,               //  from an owner older than one seen: drop, count
    CMDAGE_BAD                  //  a malformed fence: drop, warn
} cmdage_verdict_t;

typedef struct {
    cmdage_verdict_t verdict;
    int64_t newest;             //  STALE: the newest owner revision seen for the shard
    char why [128];             //  BAD: what is wrong, one line
} cmdage_result_t;

cmdage_t *
    cmdage_new (void);

void
    cmdage_destroy (cmdage_t **self_p);

//  Judges command; remembers its owner revision when it is delivered.
cmdage_result_t
    cmdage_check (cmdage_t *self, const Ep__Command *command);

//  An owner announced itself (its beacon: service's shard held under
//  revision): commands older than it are stale from now on, even before
//  the new owner has sent one. Out-of-range values are ignored.
void
    cmdage_owner (cmdage_t *self, const char *service, uint32_t shard, int64_t revision);

//  The newest owner revision seen for service's shard (0: none).
int64_t
    cmdage_newest (cmdage_t *self, const char *service, uint32_t shard);

#endif
