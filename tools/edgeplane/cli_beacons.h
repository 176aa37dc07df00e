/*  cli_beacons.h: which instance of a sharded service owns which shards,
    as their cluster.beacon on the bus says (docs/shards.md). Every
    instance beacons about every second; a listen of a little more than
    that hears each live one. `edgeplane shards` and `edgeplane status`
    both collect and print owners through here.
*/
#ifndef CLI_BEACONS_H_INCLUDED
#define CLI_BEACONS_H_INCLUDED

#include "cli.h"
#include "ep_subscriber.h"

typedef struct _cli_beacons_t cli_beacons_t;

//  One instance as its last beacon said (owned by cli_beacons_t).
typedef struct {
    char *service;              //  the sharded service it is an instance of
    char *id;                   //  instance id
    char *address;              //  its API endpoint
    uint32_t count;             //  the shard count it has
    uint32_t *shards;           //  the shards it owns, ascending
    size_t nshards;             //  how many
} cli_owner_t;

//  Empty: no instance heard yet.
cli_beacons_t *
    cli_beacons_new (void);

void
    cli_beacons_destroy (cli_beacons_t **self_p);

//  Keeps beacon's word for its instance (replacing what it said before).
//  Ignores a beacon without an instance id or service.
void
    cli_beacons_heard (cli_beacons_t *self, const Ep__ShardBeacon *beacon);

//  Takes cluster.beacon from sub for listen_ms (less if interrupted),
//  keeping the beacons of service (of every service when NULL). Returns
//  how many instances are known then.
size_t
    cli_beacons_listen (cli_beacons_t *self, ep_subscriber_t *sub, const char *service, int64_t listen_ms);

//  How many instances are known (of service, or of any when NULL).
size_t
    cli_beacons_size (cli_beacons_t *self, const char *service);

//  The instances known, by service then id; NULL after the last. The
//  list is made by first, so add nothing between first and next.
const cli_owner_t *
    cli_beacons_first (cli_beacons_t *self);
const cli_owner_t *
    cli_beacons_next (cli_beacons_t *self);

//  The shard count of service's beacons (the last heard), 0 if none.
uint32_t
    cli_beacons_count (cli_beacons_t *self, const char *service);

//  True when every shard of service has exactly one owner among the
//  instances heard; else why holds what is wrong.
bool
    cli_beacons_complete (cli_beacons_t *self, const char *service, char *why, size_t size);

//  The owner as JSON: {"instance", "address", "shards": [...]}.
json_t *
    cli_owner_json (const cli_owner_t *owner);

//  shards (ascending) as ranges: 0-3,7,9-12 ("" when none). Ends with
//  "..." when buf is too small for all of them.
void
    cli_shard_ranges (const uint32_t *shards, size_t nshards, char *buf, size_t size);

#endif
