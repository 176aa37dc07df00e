/*  ep_shard.h: which shard a router is in, who should own each shard, and
    whether a write or a command still comes from the shard's owner.

    Pure (docs/shards.md): no sockets, no clocks, no etcd. ep_shards (the
    etcd plumbing) feeds a view with what its watch delivers and carries out
    the actions the view decides; unit tests drive the same view with
    made-up times and histories.

    - ep_shard_of: FNV-1a 64 of the router id modulo the shard count, the
      one mapping every process shares (the watchdog's command check too).
    - ep_shard_t: one instance's view of one service's shards (owner lease
      and create revision of each, the live members) and the balancing rule:
      take unowned shards up to the fair share ceil(shards / members); evict
      an owner whose member is gone; once membership has not changed for two
      TTLs, release what is above ceil(shards / members) + 1, never a shard
      held for less than a TTL. Acquisitions only take unowned shards and
      stop at the fair share, so no instance is pushed above the cap by
      another's release: the excess above the cap only shrinks, and it
      converges without two instances trading a shard back and forth.
    - ep_shard_fence_verdict: after a fenced write failed, was it refused
      because the shard was lost (another create revision, or none), or did
      another compare fail.
    - ep_shard_seen_t: per shard, the newest owner create revision a
      command carried; an older one is from a deposed owner and dropped.

    Members are known by their lease, not their name: a name can come back
    (a restart) while the old lease, and the keys under it, live on.
*/
#ifndef EP_SHARD_H_INCLUDED
#define EP_SHARD_H_INCLUDED

#include "ep_prelude.h"

//  The default number of shards (EDGEPLANE_SHARDS).
#define EP_SHARD_DEFAULT_COUNT 64
//  The most shards a deployment may have (a view keeps a slot for each).
#define EP_SHARD_MAX_COUNT 65536

//  FNV-1a, 64 bits, of size bytes at data.
uint64_t
    ep_shard_fnv1a64 (const void *data, size_t size);

//  The shard of router_id among count (> 0) shards.
int
    ep_shard_of (const char *router_id, int count);

//  ---------------------------------------------------------------------
//  The view and the balancing decision

typedef struct _ep_shard_t ep_shard_t;

typedef enum {
    EP_SHARD_ACQUIRE,                   //  create the owner key, if absent, under my lease
    EP_SHARD_RELEASE,                   //  delete my owner key (create revision compared)
    EP_SHARD_EVICT                      //  delete a key whose owner's member is gone (same)
} ep_shard_verb_t;

typedef struct {
    ep_shard_verb_t verb;
    int shard;
    int64_t create_revision;            //  RELEASE, EVICT: the key's, compared
} ep_shard_action_t;

//  A view of count shards for the member holding lease my_lease, moves
//  limited to one per ttl_ms per shard.
ep_shard_t *
    ep_shard_new (int count, int64_t my_lease, int64_t ttl_ms, int64_t now_ms);

void
    ep_shard_destroy (ep_shard_t **self_p);

//  Forgets everything (a new lease after the old one was lost).
void
    ep_shard_reset (ep_shard_t *self, int64_t my_lease, int64_t now_ms);

//  What the watch (or a read) delivered. revision is the event's (mod
//  revision); an event older than what the view already holds for that
//  key is ignored, so an answer applied early is not undone by a late event.
void
    ep_shard_member_put (ep_shard_t *self, int64_t lease, int64_t now_ms);
void
    ep_shard_member_delete (ep_shard_t *self, int64_t lease, int64_t now_ms);
void
    ep_shard_owner_put (ep_shard_t *self, int shard, int64_t lease, int64_t create_revision,
                        int64_t revision, int64_t now_ms);
void
    ep_shard_owner_delete (ep_shard_t *self, int shard, int64_t revision, int64_t now_ms);

//  Every event up to revision has been applied (a watch message's or a
//  read's header revision).
void
    ep_shard_caught_up (ep_shard_t *self, int64_t revision);

//  The actions to take now (at most max), each marked in flight until
//  ep_shard_settled. Returns how many.
size_t
    ep_shard_decide (ep_shard_t *self, int64_t now_ms, ep_shard_action_t *actions, size_t max);

//  An action (verb) on shard ended. ok: it was applied at revision (the
//  view takes it at once); not ok with revision > 0: its compare failed at
//  revision, and the shard waits for the view to reach it; revision 0: no
//  answer (retried after a third of the TTL). An answer to another verb
//  than the one in flight (sent before the view was read again) is ignored.
void
    ep_shard_settled (ep_shard_t *self, int shard, ep_shard_verb_t verb, bool ok,
                      int64_t revision, int64_t now_ms);

//  When ep_shard_decide may have something to do without any input (the
//  membership turning stable, a shard's hysteresis ending, a retry), or -1.
int64_t
    ep_shard_next (ep_shard_t *self, int64_t now_ms);

//  True once the time ep_shard_next named at the last decision (or a
//  retry ep_shard_settled set since) has come: decide again, even with no
//  input. ep_shard_due_at says when (-1: nothing is due).
bool
    ep_shard_due (ep_shard_t *self, int64_t now_ms);
int64_t
    ep_shard_due_at (ep_shard_t *self);

//  The create revision of shard's key if this member owns it and is not
//  releasing it (it may act as the owner), else 0.
int64_t
    ep_shard_mine (ep_shard_t *self, int shard);

//  The lease owning shard in the view (0: none); create revision in *create.
int64_t
    ep_shard_owner (ep_shard_t *self, int shard, int64_t *create);

//  True if shard had an owner before, since the view started (a handover).
bool
    ep_shard_had_owner (ep_shard_t *self, int shard);

//  Shards this member owns or is acquiring, not counting releases.
int
    ep_shard_held (ep_shard_t *self);

//  Live members (member keys seen), and the cap ceil(shards / members) + 1.
int
    ep_shard_members (ep_shard_t *self);
int
    ep_shard_cap (ep_shard_t *self);

int
    ep_shard_count (ep_shard_t *self);

//  True if self and other (a view built from a fresh read) hold the same
//  members and the same owner (lease and create revision) for every shard;
//  else false, with the first difference described in why. A watch that
//  missed an event leaves a view that disagrees with every later read.
bool
    ep_shard_agrees (ep_shard_t *self, ep_shard_t *other, char *why, size_t whylen);

//  ---------------------------------------------------------------------
//  Fencing

typedef enum {
    EP_SHARD_STILL_OWNER,               //  the key is still the one compared: another compare failed
    EP_SHARD_FENCED,                    //  refused: the key is gone or another's; drop the shard
    EP_SHARD_FENCED_DROPPED             //  refused, and the shard was already dropped (or
                                        //  held again under a newer key): nothing to drop
} ep_shard_fence_t;

//  After a write compared write_revision (the owner key's create revision
//  when it was sent) and failed: present and current_revision are what a
//  read of the owner key in the same transaction found; held_revision the
//  create revision the caller holds the shard under now (0: not held).
ep_shard_fence_t
    ep_shard_fence_verdict (int64_t held_revision, int64_t write_revision,
                            bool present, int64_t current_revision);

//  Whether an owner may still act: the time since the last keepalive that
//  succeeded (sent at keepalive_sent_ms) is below ttl_ms - margin_ms.
bool
    ep_shard_lease_fresh (int64_t keepalive_sent_ms, int64_t ttl_ms, int64_t margin_ms,
                          int64_t now_ms);

//  ---------------------------------------------------------------------
//  The command-age check (the watchdog's, for commands routers receive)

typedef struct _ep_shard_seen_t ep_shard_seen_t;

typedef enum {
    EP_SHARD_COMMAND_OK,                //  from the newest owner seen (or a newer one)
    EP_SHARD_COMMAND_STALE,             //  from an owner older than one seen: drop
    EP_SHARD_COMMAND_BAD                //  shard out of range or revision <= 0: drop
} ep_shard_command_t;

ep_shard_seen_t *
    ep_shard_seen_new (int count);

void
    ep_shard_seen_destroy (ep_shard_seen_t **self_p);

//  Judges a command for shard from the owner created at create_revision,
//  and remembers that revision if it is the newest. Memory grows with the
//  highest shard seen, not count: a checker that does not know a service's
//  shard count (the watchdog) passes EP_SHARD_MAX_COUNT.
ep_shard_command_t
    ep_shard_seen_check (ep_shard_seen_t *self, int shard, int64_t create_revision);

//  The newest owner create revision seen for shard (0: none).
int64_t
    ep_shard_seen_newest (ep_shard_seen_t *self, int shard);

#endif
