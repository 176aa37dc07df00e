/*  ep_fdlimit.h: new work refused at the descriptor limit.

    A process at its RLIMIT_NOFILE keeps what it holds (connections,
    streams, joined routers) and refuses the new work that would need a
    descriptor, saying why, rather than aborting (czmq asserts when libzmq
    cannot make a socket) or failing halfway through. "At the limit" is
    fewer than EP_FDLIMIT_HEADROOM descriptors free: the headroom lets what
    is under way finish (a reply, a scrape, a log rotation, another
    thread's socket) between a check and its use.

    Who refuses what: ep_http answers a new HTTP connection 503 on a
    process's own routes (the console's; /metrics, /healthz and /readyz
    still answer), ep_curve_client_socket makes no client socket (an RPC
    call, a subscriber, a publisher), ep_tls_server accepts and closes a
    channel connection. Each refusal is counted here, for the
    process (the limit is the process's), and rendered by ep_metrics as
    edgeplane_fd_limit_refusals_total{what}; it is logged at most once a
    second per kind, with the number since the line before.

    A ZeroMQ listener cannot refuse: at the limit libzmq leaves a new
    connection waiting in the kernel's backlog and accepts it once a
    descriptor is free. For it the reason is ep_fdlimit_watch, which every
    service loop calls: it logs when the process reaches its limit and
    when it leaves it, and counts the times it reached it
    (edgeplane_fd_limit_reached_total).
*/
#ifndef EP_FDLIMIT_H_INCLUDED
#define EP_FDLIMIT_H_INCLUDED

#include "ep_prelude.h"

//  Descriptors that must stay free for new work to be taken.
#define EP_FDLIMIT_HEADROOM 8

//  What was refused: the label of edgeplane_fd_limit_refusals_total.
typedef enum {
    EP_FDLIMIT_HTTP = 0,        //  "http": a new HTTP connection, answered 503
    EP_FDLIMIT_SOCKET = 1,      //  "socket": a client socket (RPC, subscriber, publisher)
    EP_FDLIMIT_CHANNEL = 2,     //  "channel": a TLS channel connection, accepted and closed
    EP_FDLIMIT_KINDS = 3        //  how many kinds
} ep_fdlimit_what_t;

//  True if count more descriptors can be opened now. When false, errno
//  says why (EMFILE: this process's limit; ENFILE: the system's).
bool
    ep_fdlimit_spare (int count);

//  True if fewer than EP_FDLIMIT_HEADROOM descriptors are free: the
//  process is at its limit and refuses new work.
bool
    ep_fdlimit_reached (void);

//  Counts a refusal of what and logs it (at most once a second per kind).
//  Safe from any thread.
void
    ep_fdlimit_refused (ep_fdlimit_what_t what);

//  Refusals of what since the process started. Safe from any thread.
uint64_t
    ep_fdlimit_refusals (ep_fdlimit_what_t what);

//  The label value of what ("http", "socket", "channel").
const char *
    ep_fdlimit_what_name (ep_fdlimit_what_t what);

//  Looks, at most once a second (now_ms, a monotonic time), whether the
//  process is at its limit; logs a warning when it reaches it and a line
//  when it leaves it. Returns whether it was at its limit when last
//  looked. Called from one thread (a service's loop).
bool
    ep_fdlimit_watch (int64_t now_ms);

//  Times ep_fdlimit_watch found the process reaching its limit. Safe from
//  any thread.
uint64_t
    ep_fdlimit_reached_count (void);

#endif
