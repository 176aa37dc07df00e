/*  termwait.c: how long the terminators' loop may sleep (termwait.h). */
#include "termwait.h"

int64_t
termwait_timeout (const termwait_t *due)
{
    int64_t all [] = { due->publisher, due->follower, due->park, due->gauges, due->degraded, due->beacon,
                       due->committing? INT64_MAX: due->expire, due->committing? INT64_MAX: due->work };
    int64_t timeout = INT64_MAX;
    for (size_t i = 0; i < EP_COUNT (all); i++)
        if (all [i] < timeout)
            timeout = all [i];
    return timeout > 0? timeout: 0;
}
