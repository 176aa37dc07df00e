/*  ep_shard.c: shard mapping, the balancing view, fencing and command-age
    decisions (see ep_shard.h and docs/shards.md). */
#include "ep_shard.h"

//  FNV-1a 64 offset basis and prime (the published parameters).
#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

typedef struct {
    int64_t lease;              //  owner's lease, 0: unowned
    int64_t create_revision;    //  the owner key's create revision
    int64_t revision;           //  newest event applied for the key (its mod revision)
    int64_t moved_at;           //  when the owner last changed in this view (ms)
    int64_t wait_revision;      //  no action until the view has caught up to this
    int64_t retry_at;           //  no action before this (ms): an action got no answer
    bool pending;               //  an action of this member is in flight
    ep_shard_verb_t verb;       //  which one
    bool seen_owner;            //  some owner was seen since the view started
    bool handover;              //  the current owner took it from an earlier one
} s_slot_t;

typedef struct {
    uint64_t weight;            //  this member's preference for the shard
    int shard;
} s_pick_t;

struct _ep_shard_t {
    int count;                  //  shards
    int64_t my_lease;           //  this member's lease (0: none yet)
    int64_t ttl_ms;             //  the lease TTL: one move per shard per TTL
    s_slot_t *slots;            //  one per shard
    s_pick_t *picks;            //  scratch for ordering candidates, count entries
    int64_t *members;           //  leases of the live members
    size_t nmembers;            //  how many
    size_t members_max;         //  allocated
    int64_t members_changed;    //  when membership last changed (ms)
    int64_t revision;           //  every event up to this is applied
    int64_t due_at;             //  the next decision due without input (ms), -1: none
};

uint64_t
ep_shard_fnv1a64 (const void *data, size_t size)
{
    const uint8_t *bytes = (const uint8_t *) data;
    uint64_t hash = FNV_OFFSET;
    for (size_t i = 0; i < size; i++) {
        hash ^= bytes [i];
        hash *= FNV_PRIME;
    }
    return hash;
}

int
ep_shard_of (const char *router_id, int count)
{
    EP_ASSERT (count > 0);
    return (int) (ep_shard_fnv1a64 (router_id, strlen (router_id)) % (uint64_t) count);
}

//  A member's preference for a shard (rendezvous hashing): members that
//  race for unowned shards start from different ones, and a member gives
//  up the shards it likes least, so the same shards tend to come back.
static uint64_t
s_weight (int64_t lease, int shard)
{
    uint8_t bytes [12];
    for (int i = 0; i < 8; i++)
        bytes [i] = (uint8_t) ((uint64_t) lease >> (8 * i));
    for (int i = 0; i < 4; i++)
        bytes [8 + i] = (uint8_t) ((uint32_t) shard >> (8 * i));
    //  FNV of 12 close inputs differs mostly in its low bits: a finaliser
    //  (splitmix64's) spreads them over the whole word.
    uint64_t z = ep_shard_fnv1a64 (bytes, sizeof bytes);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

ep_shard_t *
ep_shard_new (int count, int64_t my_lease, int64_t ttl_ms, int64_t now_ms)
{
    EP_ASSERT (count > 0 && count <= EP_SHARD_MAX_COUNT && ttl_ms > 0);
    ep_shard_t *self = (ep_shard_t *) zmalloc (sizeof (ep_shard_t));
    self->count = count;
    self->ttl_ms = ttl_ms;
    self->slots = (s_slot_t *) zmalloc (sizeof (s_slot_t) * (size_t) count);
    self->picks = (s_pick_t *) zmalloc (sizeof (s_pick_t) * (size_t) count);
    ep_shard_reset (self, my_lease, now_ms);
    return self;
}

void
ep_shard_destroy (ep_shard_t **self_p)
{
    if (*self_p) {
        ep_shard_t *self = *self_p;
        free (self->slots);
        free (self->picks);
        free (self->members);
        free (self);
        *self_p = NULL;
    }
}

void
ep_shard_reset (ep_shard_t *self, int64_t my_lease, int64_t now_ms)
{
    self->my_lease = my_lease;
    memset (self->slots, 0, sizeof (s_slot_t) * (size_t) self->count);
    for (int s = 0; s < self->count; s++)
        self->slots [s].moved_at = now_ms;
    self->nmembers = 0;
    //  How long membership was stable before the view started is unknown.
    self->members_changed = now_ms;
    self->revision = 0;
    self->due_at = -1;
}

static bool
s_is_member (ep_shard_t *self, int64_t lease)
{
    for (size_t i = 0; i < self->nmembers; i++)
        if (self->members [i] == lease)
            return true;
    return false;
}

void
ep_shard_member_put (ep_shard_t *self, int64_t lease, int64_t now_ms)
{
    if (lease == 0 || s_is_member (self, lease))
        return;
    if (self->nmembers == self->members_max) {
        self->members_max = self->members_max? 2 * self->members_max: 8;
        self->members = (int64_t *) realloc (self->members, sizeof (int64_t) * self->members_max);
        EP_ASSERT (self->members);
    }
    self->members [self->nmembers++] = lease;
    self->members_changed = now_ms;
}

void
ep_shard_member_delete (ep_shard_t *self, int64_t lease, int64_t now_ms)
{
    for (size_t i = 0; i < self->nmembers; i++)
        if (self->members [i] == lease) {
            self->members [i] = self->members [--self->nmembers];
            self->members_changed = now_ms;
            return;
        }
}

void
ep_shard_owner_put (ep_shard_t *self, int shard, int64_t lease, int64_t create_revision,
                    int64_t revision, int64_t now_ms)
{
    EP_ASSERT (shard >= 0 && shard < self->count);
    s_slot_t *slot = &self->slots [shard];
    if (revision <= slot->revision)
        return;
    slot->revision = revision;
    if (slot->lease != lease || slot->create_revision != create_revision) {
        slot->moved_at = now_ms;
        slot->handover = slot->seen_owner;
    }
    slot->lease = lease;
    slot->create_revision = create_revision;
    slot->seen_owner = true;
}

void
ep_shard_owner_delete (ep_shard_t *self, int shard, int64_t revision, int64_t now_ms)
{
    EP_ASSERT (shard >= 0 && shard < self->count);
    s_slot_t *slot = &self->slots [shard];
    if (revision <= slot->revision)
        return;
    slot->revision = revision;
    if (slot->lease)
        slot->moved_at = now_ms;
    slot->lease = 0;
    slot->create_revision = 0;
}

void
ep_shard_caught_up (ep_shard_t *self, int64_t revision)
{
    if (revision > self->revision)
        self->revision = revision;
}

static bool
s_ready (ep_shard_t *self, s_slot_t *slot, int64_t now_ms)
{
    return !slot->pending && slot->wait_revision <= self->revision && slot->retry_at <= now_ms;
}

static bool
s_releasing (s_slot_t *slot)
{
    return slot->pending && slot->verb == EP_SHARD_RELEASE;
}

int
ep_shard_held (ep_shard_t *self)
{
    int held = 0;
    for (int s = 0; s < self->count; s++) {
        s_slot_t *slot = &self->slots [s];
        if ((self->my_lease && slot->lease == self->my_lease && !s_releasing (slot))
        ||  (slot->pending && slot->verb == EP_SHARD_ACQUIRE))
            held++;
    }
    return held;
}

int
ep_shard_members (ep_shard_t *self)
{
    return (int) self->nmembers;
}

static int
s_fair (ep_shard_t *self)
{
    int n = self->nmembers? (int) self->nmembers: 1;
    return (self->count + n - 1) / n;
}

int
ep_shard_cap (ep_shard_t *self)
{
    return s_fair (self) + 1;
}

int
ep_shard_count (ep_shard_t *self)
{
    return self->count;
}

bool
ep_shard_agrees (ep_shard_t *self, ep_shard_t *other, char *why, size_t whylen)
{
    EP_ASSERT (self->count == other->count);
    for (size_t i = 0; i < self->nmembers; i++)
        if (!s_is_member (other, self->members [i])) {
            snprintf (why, whylen, "member %llx is in the view but not in etcd",
                      (unsigned long long) self->members [i]);
            return false;
        }
    for (size_t i = 0; i < other->nmembers; i++)
        if (!s_is_member (self, other->members [i])) {
            snprintf (why, whylen, "member %llx is in etcd but not in the view",
                      (unsigned long long) other->members [i]);
            return false;
        }
    for (int s = 0; s < self->count; s++) {
        s_slot_t *mine = &self->slots [s], *theirs = &other->slots [s];
        if (mine->lease != theirs->lease || mine->create_revision != theirs->create_revision) {
            snprintf (why, whylen, "shard %d is owned by lease %llx (created at %lld) in the view, "
                      "by %llx (created at %lld) in etcd", s, (unsigned long long) mine->lease,
                      (long long) mine->create_revision, (unsigned long long) theirs->lease,
                      (long long) theirs->create_revision);
            return false;
        }
    }
    return true;
}

static int
s_by_weight_desc (const void *a, const void *b)
{
    uint64_t x = ((const s_pick_t *) a)->weight, y = ((const s_pick_t *) b)->weight;
    return x > y? -1: x < y;
}

//  Appends up to max actions of verb on the picked shards, best first.
static size_t
s_take (ep_shard_t *self, size_t npicks, int want, ep_shard_verb_t verb,
        ep_shard_action_t *actions, size_t max)
{
    qsort (self->picks, npicks, sizeof (s_pick_t), s_by_weight_desc);
    size_t n = 0;
    for (size_t i = 0; i < npicks && (int) n < want && n < max; i++) {
        s_slot_t *slot = &self->slots [self->picks [i].shard];
        actions [n++] = (ep_shard_action_t) { verb, self->picks [i].shard, slot->create_revision };
        slot->pending = true;
        slot->verb = verb;
    }
    return n;
}

static size_t
s_decide (ep_shard_t *self, int64_t now_ms, ep_shard_action_t *actions, size_t max)
{
    //  Not before this member's own key is in the view: the view would
    //  count one member short and take too much.
    if (!self->my_lease || !s_is_member (self, self->my_lease))
        return 0;
    size_t n = 0;
    //  An owner whose member key is gone: its lease ended (the keys under
    //  it go in the same revision) or it left; its key only blocks.
    for (int s = 0; s < self->count && n < max; s++) {
        s_slot_t *slot = &self->slots [s];
        if (slot->lease && s_ready (self, slot, now_ms) && !s_is_member (self, slot->lease)) {
            actions [n++] = (ep_shard_action_t) { EP_SHARD_EVICT, s, slot->create_revision };
            slot->pending = true;
            slot->verb = EP_SHARD_EVICT;
        }
    }
    int held = ep_shard_held (self);
    int fair = s_fair (self);
    size_t npicks = 0;
    if (held < fair) {
        for (int s = 0; s < self->count; s++)
            if (self->slots [s].lease == 0 && s_ready (self, &self->slots [s], now_ms))
                self->picks [npicks++] = (s_pick_t) { s_weight (self->my_lease, s), s };
        return n + s_take (self, npicks, fair - held, EP_SHARD_ACQUIRE, actions + n, max - n);
    }
    int cap = fair + 1;
    if (held > cap && now_ms - self->members_changed >= 2 * self->ttl_ms) {
        for (int s = 0; s < self->count; s++) {
            s_slot_t *slot = &self->slots [s];
            if (slot->lease == self->my_lease && s_ready (self, slot, now_ms)
            &&  now_ms - slot->moved_at >= self->ttl_ms)
                //  Least preferred first: the complement of the weight.
                self->picks [npicks++] = (s_pick_t) { ~s_weight (self->my_lease, s), s };
        }
        return n + s_take (self, npicks, held - cap, EP_SHARD_RELEASE, actions + n, max - n);
    }
    return n;
}

//  ep_shard_next names only times still ahead, so the next one is asked
//  after each decision and remembered: once passed, ep_shard_due says so
//  until the next decision.
size_t
ep_shard_decide (ep_shard_t *self, int64_t now_ms, ep_shard_action_t *actions, size_t max)
{
    size_t n = s_decide (self, now_ms, actions, max);
    self->due_at = ep_shard_next (self, now_ms);
    return n;
}

bool
ep_shard_due (ep_shard_t *self, int64_t now_ms)
{
    return self->due_at >= 0 && now_ms >= self->due_at;
}

int64_t
ep_shard_due_at (ep_shard_t *self)
{
    return self->due_at;
}

void
ep_shard_settled (ep_shard_t *self, int shard, ep_shard_verb_t verb, bool ok, int64_t revision,
                  int64_t now_ms)
{
    EP_ASSERT (shard >= 0 && shard < self->count);
    s_slot_t *slot = &self->slots [shard];
    if (!slot->pending || slot->verb != verb)
        return;
    slot->pending = false;
    if (ok && slot->verb == EP_SHARD_ACQUIRE)
        //  The transaction's one put made the key: created at its revision.
        ep_shard_owner_put (self, shard, self->my_lease, revision, revision, now_ms);
    else
    if (ok)
        ep_shard_owner_delete (self, shard, revision, now_ms);
    else
    if (revision > 0)
        slot->wait_revision = revision;
    else {
        slot->retry_at = now_ms + self->ttl_ms / 3;
        if (self->due_at < 0 || slot->retry_at < self->due_at)
            self->due_at = slot->retry_at;
    }
}

static void
s_earliest (int64_t *next, int64_t when, int64_t now_ms)
{
    if (when > now_ms && (*next < 0 || when < *next))
        *next = when;
}

int64_t
ep_shard_next (ep_shard_t *self, int64_t now_ms)
{
    int64_t next = -1;
    if (!self->my_lease)
        return next;
    bool above_cap = ep_shard_held (self) > ep_shard_cap (self);
    bool stable = now_ms - self->members_changed >= 2 * self->ttl_ms;
    if (above_cap && !stable)
        s_earliest (&next, self->members_changed + 2 * self->ttl_ms, now_ms);
    for (int s = 0; s < self->count; s++) {
        s_slot_t *slot = &self->slots [s];
        s_earliest (&next, slot->retry_at, now_ms);
        if (above_cap && stable && slot->lease == self->my_lease)
            s_earliest (&next, slot->moved_at + self->ttl_ms, now_ms);
    }
    return next;
}

int64_t
ep_shard_mine (ep_shard_t *self, int shard)
{
    EP_ASSERT (shard >= 0 && shard < self->count);
    s_slot_t *slot = &self->slots [shard];
    if (self->my_lease && slot->lease == self->my_lease && !s_releasing (slot))
        return slot->create_revision;
    return 0;
}

int64_t
ep_shard_owner (ep_shard_t *self, int shard, int64_t *create)
{
    EP_ASSERT (shard >= 0 && shard < self->count);
    if (create)
        *create = self->slots [shard].create_revision;
    return self->slots [shard].lease;
}

bool
ep_shard_had_owner (ep_shard_t *self, int shard)
{
    EP_ASSERT (shard >= 0 && shard < self->count);
    return self->slots [shard].handover;
}

//  ---------------------------------------------------------------------

ep_shard_fence_t
ep_shard_fence_verdict (int64_t held_revision, int64_t write_revision,
                        bool present, int64_t current_revision)
{
    //  Same create revision: the very key acquired (refreshes keep it).
    if (present && current_revision == write_revision)
        return EP_SHARD_STILL_OWNER;
    //  A write from an ownership already given up, or older than the one
    //  held now: refused all the same, but it says nothing about this one.
    if (held_revision == 0 || held_revision != write_revision)
        return EP_SHARD_FENCED_DROPPED;
    return EP_SHARD_FENCED;
}

bool
ep_shard_lease_fresh (int64_t keepalive_sent_ms, int64_t ttl_ms, int64_t margin_ms,
                      int64_t now_ms)
{
    return now_ms - keepalive_sent_ms < ttl_ms - margin_ms;
}

//  ---------------------------------------------------------------------

struct _ep_shard_seen_t {
    int count;                  //  shards
    int size;                   //  slots in newest (grown to the highest shard seen)
    int64_t *newest;            //  per shard, the newest owner create revision seen
};

ep_shard_seen_t *
ep_shard_seen_new (int count)
{
    EP_ASSERT (count > 0 && count <= EP_SHARD_MAX_COUNT);
    ep_shard_seen_t *self = (ep_shard_seen_t *) zmalloc (sizeof (ep_shard_seen_t));
    self->count = count;
    return self;
}

void
ep_shard_seen_destroy (ep_shard_seen_t **self_p)
{
    if (*self_p) {
        free ((*self_p)->newest);
        free (*self_p);
        *self_p = NULL;
    }
}

//  The slots grow with the shards seen: the watchdog, which does not know a
//  service's shard count, makes its checks for the largest count possible.
static void
s_seen_grow (ep_shard_seen_t *self, int shard)
{
    if (shard < self->size)
        return;
    int size = self->size? self->size: 64;
    while (size <= shard)
        size *= 2;
    if (size > self->count)
        size = self->count;
    self->newest = (int64_t *) realloc (self->newest, sizeof (int64_t) * (size_t) size);
    EP_ASSERT (self->newest);
    memset (self->newest + self->size, 0, sizeof (int64_t) * (size_t) (size - self->size));
    self->size = size;
}

ep_shard_command_t
ep_shard_seen_check (ep_shard_seen_t *self, int shard, int64_t create_revision)
{
    if (shard < 0 || shard >= self->count || create_revision <= 0)
        return EP_SHARD_COMMAND_BAD;
    s_seen_grow (self, shard);
    if (create_revision < self->newest [shard])
        return EP_SHARD_COMMAND_STALE;
    self->newest [shard] = create_revision;
    return EP_SHARD_COMMAND_OK;
}

int64_t
ep_shard_seen_newest (ep_shard_seen_t *self, int shard)
{
    EP_ASSERT (shard >= 0 && shard < self->count);
    return shard < self->size? self->newest [shard]: 0;
}
