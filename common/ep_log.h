/*  ep_log.h: the process log, one line per record on stderr.

    Every record carries an RFC 3339 UTC timestamp with milliseconds, the
    level, the service name and the message, as text
        2026-11-21T19:23:44.123Z info model: message
    or as a JSON line (jansson-built, for log collectors)
        {"ts":"2026-11-21T19:23:44.123Z","level":"info","service":"model","msg":"message"}
    Each record is written with a single write(2), so records from several
    threads do not interleave. In text form control characters in the
    message become spaces, so a record is always exactly one line.
    Call ep_log_init once, before starting threads; ep_log_set_level may be
    called at any time.
*/
#ifndef EP_LOG_H_INCLUDED
#define EP_LOG_H_INCLUDED

#include "ep_prelude.h"
#include <stdarg.h>

//  Levels, most severe first: a record is written if its level <= the
//  current level.
typedef enum {
    EP_LOG_ERROR = 0,
    EP_LOG_WARN = 1,
    EP_LOG_INFO = 2,
    EP_LOG_DEBUG = 3
} ep_log_level_t;

typedef enum {
    EP_LOG_TEXT = 0,
    EP_LOG_JSON = 1
} ep_log_format_t;

//  Sets the service name (copied, at most 63 bytes kept), level and format.
//  Before this is called the service is "edgeplane", info, text.
void
    ep_log_init (const char *service, ep_log_level_t level, ep_log_format_t format);

//  ep_log_init with the level and format given by name, as in
//  EDGEPLANE_LOG_LEVEL / EDGEPLANE_LOG_FORMAT. Returns -1 (and changes
//  nothing) if a name is unknown.
int
    ep_log_init_named (const char *service, const char *level, const char *format);

//  Changes the level; safe from any thread.
void
    ep_log_set_level (ep_log_level_t level);

//  The current level.
ep_log_level_t
    ep_log_level (void);

//  Parses "error", "warn", "info" or "debug" into *level. Returns 0 or -1.
int
    ep_log_level_parse (const char *name, ep_log_level_t *level);

//  Parses "text" or "json" into *format. Returns 0 or -1.
int
    ep_log_format_parse (const char *name, ep_log_format_t *format);

//  The name of a level ("error", "warn", "info", "debug").
const char *
    ep_log_level_name (ep_log_level_t level);

//  Every level's name, most severe first (index = ep_log_level_t),
//  NULL-terminated: the words of every option that takes a level
//  (--log-level, the watchdog's --stray-log-level), so they never differ.
extern const char *const ep_log_level_names [];

//  True if a record at level would be written: guard expensive formatting.
bool
    ep_log_enabled (ep_log_level_t level);

//  Writes one record at the given level (printf-style).
void
    ep_log_error (const char *format, ...) __attribute__ ((format (printf, 1, 2)));
void
    ep_log_warn (const char *format, ...) __attribute__ ((format (printf, 1, 2)));
void
    ep_log_info (const char *format, ...) __attribute__ ((format (printf, 1, 2)));
void
    ep_log_debug (const char *format, ...) __attribute__ ((format (printf, 1, 2)));

//  Writes one record at level, chosen at run time (an operator's option).
void
    ep_log_at (ep_log_level_t level, const char *format, ...) __attribute__ ((format (printf, 2, 3)));

//  Same, with a va_list.
void
    ep_log_vwrite (ep_log_level_t level, const char *format, va_list args)
    __attribute__ ((format (printf, 2, 0)));

//  Test hook: write records to fd instead of stderr; -1 restores stderr.
void
    ep_log_set_fd (int fd);

#endif
