/*  bus.c: what the broker forwards. */
#include "bus.h"

bus_verdict_t
bus_classify (const char *role, bool authenticated, const void *topic, size_t topic_len,
              int parts, char *stream, size_t stream_size)
{
    if (authenticated && (!role || !streq (role, "service")))
        return BUS_DROP_ROLE;
    if (parts != 2 || topic_len == 0)
        return BUS_DROP_MALFORMED;
    const char *dot = (const char *) memchr (topic, '.', topic_len);
    size_t len = dot? (size_t) (dot - (const char *) topic): 0;
    if (len == 0 || len >= stream_size)
        return BUS_DROP_MALFORMED;
    memcpy (stream, topic, len);
    stream [len] = 0;
    return BUS_FORWARD;
}

const char *
bus_verdict_name (bus_verdict_t verdict)
{
    switch (verdict) {
        case BUS_FORWARD:        return "forwarded";
        case BUS_DROP_ROLE:      return "role";
        case BUS_DROP_MALFORMED: return "malformed";
    }
    return "?";
}
