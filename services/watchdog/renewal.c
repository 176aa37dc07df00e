/*  renewal.c: when to renew the ctrl certificate (see renewal.h). */
#include "renewal.h"

#define S_SECOND_MS     1000LL
#define S_HOUR_MS       (3600 * S_SECOND_MS)
#define S_DAY_MS        (24 * S_HOUR_MS)
#define S_WARN_MS       (30 * S_DAY_MS)     //  a bundle is warned about this long before its end

static int64_t
s_clamp (int64_t value, int64_t low, int64_t high)
{
    return value < low? low: value > high? high: value;
}

renewal_action_t
renewal_check (int64_t start_ms, int64_t end_ms, bool renewable, int64_t now_ms, int64_t *next_ms)
{
    int64_t lifetime = end_ms > start_ms? end_ms - start_ms: 0;
    int64_t due = start_ms + lifetime * 2 / 3;
    if (renewable) {
        if (now_ms < due) {
            *next_ms = due;
            return RENEWAL_WAIT;
        }
        *next_ms = now_ms + s_clamp (lifetime / 20, S_SECOND_MS, S_HOUR_MS);
        return RENEWAL_RENEW;
    }
    if (end_ms - S_WARN_MS > due)
        due = end_ms - S_WARN_MS;
    if (now_ms < due) {
        *next_ms = due;
        return RENEWAL_WAIT;
    }
    if (now_ms < end_ms) {
        //  Daily, and once more at its end.
        *next_ms = now_ms + (end_ms - now_ms < S_DAY_MS? end_ms - now_ms: S_DAY_MS);
        return RENEWAL_WARN;
    }
    *next_ms = now_ms + S_DAY_MS;
    return RENEWAL_EXPIRED;
}

const char *
renewal_action_name (renewal_action_t action)
{
    static const char *names [] = { "wait", "renew", "warn", "expired" };
    return action <= RENEWAL_EXPIRED? names [action]: "?";
}
