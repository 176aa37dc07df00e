/*  ep_prelude.h: what every edgeplane source file includes first.

    Conventions (czmq's CLASS style, RFC 21): one module per file pair
    ep_<thing>.{h,c}; an opaque ep_<thing>_t; ep_<thing>_new () and
    ep_<thing>_destroy (&self) which nulls the caller's pointer; methods
    return 0 on success and -1 on failure; static helpers are named s_*.
    A failure a user must read about is one sentence in (char *err, size_t
    errlen), the last two arguments, written with ep_errorf.
*/
#ifndef EP_PRELUDE_H_INCLUDED
#define EP_PRELUDE_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

//  An assert that survives NDEBUG: a broken invariant stops the process
//  with the place and the expression, in every build type.
#define EP_ASSERT(expr) \
    ((expr) ? (void) 0 : ep_assert_fail (#expr, __FILE__, __LINE__, __func__))

void
    ep_assert_fail (const char *expr, const char *file, int line, const char *func)
    __attribute__ ((noreturn));

//  The error convention: writes one sentence for the user into err (NULL,
//  or errlen 0, to ignore it) and returns -1, so a method can end with
//  `return ep_errorf (err, errlen, "cannot open %s: %s", path, why);`.
int
    ep_errorf (char *err, size_t errlen, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

//  Milliseconds on the monotonic clock: for timeouts, deadlines, durations.
int64_t
    ep_mono_ms (void);

//  Microseconds on the monotonic clock.
int64_t
    ep_mono_us (void);

//  Milliseconds since the Unix epoch: for timestamps people read.
int64_t
    ep_wall_ms (void);

//  Formats a wall-clock time in ms as RFC 3339 UTC with milliseconds
//  ("2026-11-21T19:23:44.123Z") into buf (at least 32 bytes). Returns buf.
char *
    ep_rfc3339 (int64_t wall_ms, char *buf, size_t size);

//  True if id is a valid entity id: [A-Za-z0-9_-]{1,64}.
bool
    ep_id_valid (const char *id);

//  Writes a random id of 2*bytes hex characters into buf (size >= 2*bytes+1).
void
    ep_random_hex (char *buf, size_t bytes);

//  Number of elements of a static array.
#define EP_COUNT(a) (sizeof (a) / sizeof ((a) [0]))

#endif
