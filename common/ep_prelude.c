/*  ep_prelude.c: assert, errors, clocks, ids. */
#include "ep_prelude.h"
#include <sodium.h>
#include <stdarg.h>

void
ep_assert_fail (const char *expr, const char *file, int line, const char *func)
{
    fprintf (stderr, "edgeplane: assertion failed: %s (%s:%d in %s)\n", expr, file, line, func);
    fflush (stderr);
    abort ();
}

int
ep_errorf (char *err, size_t errlen, const char *format, ...)
{
    if (err && errlen) {
        va_list args;
        va_start (args, format);
        vsnprintf (err, errlen, format, args);
        va_end (args);
    }
    return -1;
}

int64_t
ep_mono_us (void)
{
    struct timespec ts;
    EP_ASSERT (clock_gettime (CLOCK_MONOTONIC, &ts) == 0);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
ep_mono_ms (void)
{
    return ep_mono_us () / 1000;
}

int64_t
ep_wall_ms (void)
{
    struct timespec ts;
    EP_ASSERT (clock_gettime (CLOCK_REALTIME, &ts) == 0);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *
ep_rfc3339 (int64_t wall_ms, char *buf, size_t size)
{
    time_t secs = (time_t) (wall_ms / 1000);
    struct tm tm;
    gmtime_r (&secs, &tm);
    char base [24];
    strftime (base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf (buf, size, "%s.%03dZ", base, (int) (wall_ms % 1000));
    return buf;
}

bool
ep_id_valid (const char *id)
{
    if (!id)
        return false;
    size_t len = strlen (id);
    if (len < 1 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = id [i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
               || (c >= '0' && c <= '9') || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

void
ep_random_hex (char *buf, size_t bytes)
{
    EP_ASSERT (sodium_init () >= 0);
    unsigned char raw [64];
    EP_ASSERT (bytes <= sizeof raw);
    randombytes_buf (raw, bytes);
    sodium_bin2hex (buf, 2 * bytes + 1, raw, bytes);
}
