/*  warning.c: session.warning (reason long-lived), raised once per session
    when it crosses --long-lived: by the tick as it crosses, or by a cleanup
    that takes it first. Sessions not warned yet wait in longlived.c's heap,
    keyed by when they cross, so a tick looks at its top and nothing else.

    The warning is noted in the session's row in the transaction that
    writes its event to the outbox (outbox.c), so a restart does not raise
    it again, and a crash between that commit and the publish does not
    lose it: the next start publishes the row (at least once, like every
    event of the reaper).
*/
#include "reaper_internal.h"
#include <stddef.h>

//  When session crosses the threshold (wall clock), saturated: the flag
//  takes durations up to INT64_MAX.
static int64_t
s_crosses (reaper_t *self, const session_t *session)
{
    int64_t threshold = self->config.long_lived_ms;
    return session->created_ms > INT64_MAX - threshold? INT64_MAX: session->created_ms + threshold;
}

static void
s_warn (reaper_t *self, session_t *session, int64_t now)
{
    reaper_wrote (self, sessiondb_warned (self->db, session->id));
    reaper_event (self, session, "warning", R_LONG_LIVED, now);
    reaper_batch_warned (self);
}

void
reaper_age_track (reaper_t *self, session_t *session)
{
    longlived_track (self->longlived, &session->age, s_crosses (self, session));
}

void
reaper_warn_if_due (reaper_t *self, session_t *session, int64_t now)
{
    if (!longlived_tracked (&session->age) || session->age.crosses > reaper_wall (self, now)
    ||  !reaper_begin (self))
        return;
    reaper_touch (self, session);
    longlived_untrack (self->longlived, &session->age);
    s_warn (self, session, now);
}

bool
reaper_long_lived (reaper_t *self, int64_t now)
{
    int64_t wall = reaper_wall (self, now);
    if (longlived_due (self->longlived) > wall || !reaper_begin (self))
        return true;
    //  A batch per turn, like marking: after a long outage (or a lowered
    //  threshold) many may cross at once.
    size_t warned = 0;
    longlived_entry_t *entry;
    while (warned < self->config.mark_batch && !self->failed
       &&  (entry = longlived_next (self->longlived, wall))) {
        session_t *session = (session_t *) ((char *) entry - offsetof (session_t, age));
        reaper_touch_crossed (self, session);
        s_warn (self, session, now);
        warned++;
    }
    return longlived_due (self->longlived) > wall;
}

int64_t
reaper_long_lived_due (reaper_t *self)
{
    int64_t due = longlived_due (self->longlived);
    //  On the monotonic clock, saturated (INT64_MAX: nothing tracked).
    if (due == INT64_MAX || (self->wall_offset < 0 && due > INT64_MAX + self->wall_offset))
        return INT64_MAX;
    return due - self->wall_offset;
}
