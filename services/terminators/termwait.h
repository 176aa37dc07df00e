/*  termwait.h: how long the terminators' loop may sleep, from what is due.
    Pure, so that its one rule is tested (tests/unit/test_terminators_wait.c):
    while a batch's etcd transaction is in flight the core is not touched
    (termsvc_turn skips presence expiry and internal work until the answer
    comes), so the core's timers do not count then. Counting them made the
    loop poll with a zero timeout for the whole transaction once one of them
    was past: a spin at 100% of a core during every commit, which on a small
    machine starved etcd and the other instances, and made leases expire for
    want of keepalives. The answer wakes the loop through etcd's sockets. */
#ifndef TERMWAIT_H_INCLUDED
#define TERMWAIT_H_INCLUDED

#include "ep_prelude.h"

//  Each in ms from now (<= 0: due now), INT64_MAX for nothing.
typedef struct {
    int64_t publisher;          //  the event publisher's tick
    int64_t follower;           //  the model follower's tick
    int64_t park;               //  the first parked write's deadline
    int64_t expire;             //  the core: presence expiry
    int64_t gauges;             //  the metrics' refresh
    int64_t work;               //  the core: internal work (writes waiting, timers)
    int64_t degraded;           //  the store's probe
    int64_t beacon;             //  cluster.beacon (etcd mode)
    bool committing;            //  a batch's etcd transaction is in flight
} termwait_t;

//  The loop's poll timeout in ms, >= 0.
int64_t
    termwait_timeout (const termwait_t *due);

#endif
