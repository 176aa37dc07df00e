/*  ep_fdlimit.c: new work refused at the descriptor limit (ep_fdlimit.h).

    The state is the process's, as the limit is: counters and the times of
    the last log lines are atomics, since the HTTP thread refuses too.
*/
#include "ep_fdlimit.h"
#include "ep_log.h"
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <unistd.h>

#define WATCH_MS    1000        //  the watch looks at most this often
#define LOG_MS      1000        //  a kind's refusals are logged at most this often

static const char *s_names [EP_FDLIMIT_KINDS] = { "http", "socket", "channel" };

//  What each refusal was, for its log line.
static const char *s_refusals [EP_FDLIMIT_KINDS] = {
    "refused new HTTP connections (503)",
    "could not open client sockets (an RPC call, a subscriber or a publisher)",
    "closed new channel connections at accept"
};

static _Atomic uint64_t s_counts [EP_FDLIMIT_KINDS];    //  refusals, per kind
static _Atomic uint64_t s_logged [EP_FDLIMIT_KINDS];    //  refusals up to the last line
static _Atomic int64_t s_log_at [EP_FDLIMIT_KINDS];     //  when that line was written (ms), 0 never
static _Atomic uint64_t s_reached;      //  times the watch found the limit reached
static int64_t s_watch_next;            //  when the watch looks next (ms); its thread only
static bool s_watch_at_limit;           //  what it saw last; its thread only

bool
ep_fdlimit_spare (int count)
{
    int fds [EP_FDLIMIT_HEADROOM];
    EP_ASSERT (count >= 0 && count <= (int) EP_COUNT (fds));
    int opened = 0;
    for (; opened < count; opened++)
        if ((fds [opened] = open ("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
            break;
    int saved = errno;
    for (int i = 0; i < opened; i++)
        close (fds [i]);
    errno = saved;
    return opened == count;
}

bool
ep_fdlimit_reached (void)
{
    return !ep_fdlimit_spare (EP_FDLIMIT_HEADROOM);
}

//  "fewer than 8 of its 1024 descriptors free", and why, for a log line.
static void
s_state (char *text, size_t size, int error)
{
    struct rlimit limit;
    if (getrlimit (RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY)
        snprintf (text, size, "fewer than %d of its %llu descriptors free (%s)", EP_FDLIMIT_HEADROOM,
                  (unsigned long long) limit.rlim_cur, strerror (error));
    else
        snprintf (text, size, "fewer than %d descriptors free (%s)", EP_FDLIMIT_HEADROOM, strerror (error));
}

void
ep_fdlimit_refused (ep_fdlimit_what_t what)
{
    EP_ASSERT ((int) what >= 0 && what < EP_FDLIMIT_KINDS);
    int error = errno == ENFILE? ENFILE: EMFILE;
    uint64_t count = atomic_fetch_add (&s_counts [what], 1) + 1;
    int64_t now = ep_mono_ms ();
    int64_t last = atomic_load (&s_log_at [what]);
    //  One thread wins the line; the others' refusals go into the next.
    if ((last && now - last < LOG_MS) || !atomic_compare_exchange_strong (&s_log_at [what], &last, now))
        return;
    uint64_t since = count - atomic_exchange (&s_logged [what], count);
    char state [160];
    s_state (state, sizeof state, error);
    ep_log_warn ("at the descriptor limit: %s, %llu since the last such line; %s. Work under way goes on; "
                 "raise the limit (ulimit -n, systemd LimitNOFILE=, compose ulimits.nofile) or lower the load",
                 s_refusals [what], (unsigned long long) since, state);
}

uint64_t
ep_fdlimit_refusals (ep_fdlimit_what_t what)
{
    EP_ASSERT ((int) what >= 0 && what < EP_FDLIMIT_KINDS);
    return atomic_load (&s_counts [what]);
}

const char *
ep_fdlimit_what_name (ep_fdlimit_what_t what)
{
    EP_ASSERT ((int) what >= 0 && what < EP_FDLIMIT_KINDS);
    return s_names [what];
}

bool
ep_fdlimit_watch (int64_t now_ms)
{
    if (now_ms < s_watch_next)
        return s_watch_at_limit;
    s_watch_next = now_ms + WATCH_MS;
    bool at_limit = ep_fdlimit_reached ();
    int error = errno;
    if (at_limit && !s_watch_at_limit) {
        atomic_fetch_add (&s_reached, 1);
        char state [160];
        s_state (state, sizeof state, error == ENFILE? ENFILE: EMFILE);
        ep_log_warn ("at the descriptor limit: %s. Connections and streams open now are served; new "
                     "connections wait unaccepted or are refused, new client sockets are refused, until "
                     "descriptors are freed; raise the limit (ulimit -n, systemd LimitNOFILE=, compose "
                     "ulimits.nofile) or lower the load", state);
    }
    else
    if (!at_limit && s_watch_at_limit)
        ep_log_info ("descriptors free again: new connections and work are taken");
    s_watch_at_limit = at_limit;
    return at_limit;
}

uint64_t
ep_fdlimit_reached_count (void)
{
    return atomic_load (&s_reached);
}
