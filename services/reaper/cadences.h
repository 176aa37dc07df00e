/*  cadences.h: each router's session liveness thresholds, learnt from the
    cadence of its session heartbeat batches.

    A router reports its sessions in heartbeat batches, one every few
    seconds, each split into messages of some thousand ids. Its liveness
    is its own: a router on a clean link beating every 2 s shows a silence
    far sooner than one beating every 10 s over a jittery one. So each
    router has one ep_cadence, fed one beat per batch (a message within
    CADENCES_BATCH_MS of its batch's first message is that batch, not a
    beat of its own), and its thresholds are

        evasive = clamp (p99 of its intervals x 2.5, floor, ceiling)
        expire  = evasive x (fixed expire / fixed evasive)

    once min_samples intervals are known; before that, and always when not
    adaptive, the fixed --evasive and --expire. A gap (the time up to the
    next batch is not an interval) is declared when the router goes
    offline or comes online, joins a watchdog (a reconnect), or closes its
    last session here (it sends no batch with nothing in it). A restarted
    reaper starts empty: every router on the fixed thresholds again.

    Pure: no sockets, no clocks. The reaper's core keeps one (reaper.h,
    presence.c) and its liveness read shows it (docs/reaper.md).
*/
#ifndef CADENCES_H_INCLUDED
#define CADENCES_H_INCLUDED

#include "ep_prelude.h"
#include "ep_cadence.h"

//  A router's heartbeat messages within this of its batch's first one are
//  that batch (the router agent splits a batch into messages of 5,000 ids,
//  sent back to back; a reaper turn takes at most a few of them apart).
#define CADENCES_BATCH_MS   250

typedef struct _cadences_t cadences_t;

typedef struct {
    bool adaptive;                  //  learn; false: the fixed thresholds for every router
    ep_cadence_config_t cadence;    //  window, min_samples, percentile, factor; bounds of evasive
    int64_t evasive_ms;             //  fixed T1, every router's until its cadence is learnt
    int64_t expire_ms;              //  fixed T2 (above T1): a learnt T2 keeps T2/T1
} cadences_config_t;

//  What the liveness read shows of one router.
typedef struct {
    int64_t evasive_ms;             //  T1 in force
    int64_t expire_ms;              //  T2 in force
    bool learnt;                    //  from its cadence (false: the fixed ones)
    int samples;                    //  intervals between its batches known
    int64_t interval_ms;            //  their percentile (p99), 0 if none
} cadences_info_t;

cadences_t *
    cadences_new (const cadences_config_t *config);

void
    cadences_destroy (cadences_t **self_p);

//  Makes router known (a session of it was opened or loaded), with the
//  fixed thresholds if it is new.
void
    cadences_add (cadences_t *self, const char *router);

//  A heartbeat message from router at now (monotonic ms); the router is
//  added if unknown. Returns true when it began a batch (a beat), after
//  which its thresholds may have changed.
bool
    cadences_heartbeat (cadences_t *self, const char *router, int64_t now);

//  A presence change of router, or its last session closed: the time up
//  to its next batch is not an interval. No-op if router is unknown.
void
    cadences_gap (cadences_t *self, const char *router);

//  Forgets router (the model deleted it).
void
    cadences_forget (cadences_t *self, const char *router);

//  The thresholds in force for router: learnt, or the fixed ones (also
//  for an unknown router).
void
    cadences_thresholds (cadences_t *self, const char *router, int64_t *evasive_ms, int64_t *expire_ms);

//  Fills info for router; false if it is unknown.
bool
    cadences_info (cadences_t *self, const char *router, cadences_info_t *info);

//  True when router's evasive threshold moved beyond a factor of two since
//  the last time this said so (from, to set): the caller logs it. Always
//  false when not adaptive.
bool
    cadences_changed (cadences_t *self, const char *router, int64_t *from_ms, int64_t *to_ms);

//  The known routers above after (NULL: from the first) in id order, at
//  most limit of them, into ids (room for limit; the strings are the
//  module's, valid until it changes). Returns how many.
size_t
    cadences_routers (cadences_t *self, const char *after, const char **ids, size_t limit);

//  Routers known.
size_t
    cadences_size (cadences_t *self);

#endif
