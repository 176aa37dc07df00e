/*  ep_log.c: one line per record, one write(2) per line.

    The whole record is assembled in memory first and handed to the kernel
    in a single write, which is what keeps lines from different threads
    whole. State is a few globals: the level is atomic because it may be
    changed while other threads log; the service name and format are set
    once at start-up.
*/
#include "ep_log.h"
#include <errno.h>
#include <jansson.h>
#include <stdatomic.h>
#include <unistd.h>

static atomic_int s_level = EP_LOG_INFO;            //  records above this are dropped
static ep_log_format_t s_format = EP_LOG_TEXT;      //  text or JSON lines
static char s_service [64] = "edgeplane";          //  service name in every record
static atomic_int s_fd = STDERR_FILENO;             //  where records go (tests redirect)

const char *const ep_log_level_names [] = { "error", "warn", "info", "debug", NULL };
static const char *s_format_names [] = { "text", "json" };

void
ep_log_init (const char *service, ep_log_level_t level, ep_log_format_t format)
{
    snprintf (s_service, sizeof s_service, "%s", service ? service : "edgeplane");
    s_format = format;
    ep_log_set_level (level);
}

int
ep_log_init_named (const char *service, const char *level, const char *format)
{
    ep_log_level_t lvl;
    ep_log_format_t fmt;
    if (ep_log_level_parse (level, &lvl) || ep_log_format_parse (format, &fmt))
        return -1;
    ep_log_init (service, lvl, fmt);
    return 0;
}

void
ep_log_set_level (ep_log_level_t level)
{
    EP_ASSERT (level >= EP_LOG_ERROR && level <= EP_LOG_DEBUG);
    atomic_store (&s_level, (int) level);
}

ep_log_level_t
ep_log_level (void)
{
    return (ep_log_level_t) atomic_load (&s_level);
}

//  The index of name in names (count of them), or -1.
static int
s_index (const char *const *names, size_t count, const char *name)
{
    for (size_t i = 0; name && i < count; i++)
        if (strcmp (name, names [i]) == 0)
            return (int) i;
    return -1;
}

int
ep_log_level_parse (const char *name, ep_log_level_t *level)
{
    int index = s_index (ep_log_level_names, EP_COUNT (ep_log_level_names) - 1, name);
    if (index >= 0)
        *level = (ep_log_level_t) index;
    return index >= 0? 0: -1;
}

int
ep_log_format_parse (const char *name, ep_log_format_t *format)
{
    int index = s_index (s_format_names, EP_COUNT (s_format_names), name);
    if (index >= 0)
        *format = (ep_log_format_t) index;
    return index >= 0? 0: -1;
}

const char *
ep_log_level_name (ep_log_level_t level)
{
    EP_ASSERT (level >= EP_LOG_ERROR && level <= EP_LOG_DEBUG);
    return ep_log_level_names [level];
}

bool
ep_log_enabled (ep_log_level_t level)
{
    return (int) level <= atomic_load (&s_level);
}

void
ep_log_set_fd (int fd)
{
    atomic_store (&s_fd, fd >= 0 ? fd : STDERR_FILENO);
}

//  The JSON form. jansson refuses strings that are not UTF-8; such a
//  message is logged with its non-ASCII bytes replaced rather than lost.
static char *
s_json_line (const char *ts, const char *level, char *msg, size_t *len)
{
    json_t *doc = json_pack ("{s:s, s:s, s:s, s:s}", "ts", ts, "level", level,
                             "service", s_service, "msg", msg);
    if (!doc) {
        for (char *c = msg; *c; c++)
            if ((unsigned char) *c >= 0x80)
                *c = '?';
        doc = json_pack ("{s:s, s:s, s:s, s:s}", "ts", ts, "level", level,
                         "service", s_service, "msg", msg);
    }
    EP_ASSERT (doc);
    size_t size = json_dumpb (doc, NULL, 0, JSON_COMPACT);
    char *line = (char *) malloc (size + 1);
    EP_ASSERT (line);
    EP_ASSERT (json_dumpb (doc, line, size, JSON_COMPACT) == size);
    json_decref (doc);
    line [size] = '\n';
    *len = size + 1;
    return line;
}

//  The text form; control characters would split or garble the line.
static char *
s_text_line (const char *ts, const char *level, char *msg, size_t *len)
{
    for (char *c = msg; *c; c++)
        if ((unsigned char) *c < 0x20 || *c == 0x7f)
            *c = ' ';
    char *line = zsys_sprintf ("%s %s %s: %s\n", ts, level, s_service, msg);
    EP_ASSERT (line);
    *len = strlen (line);
    return line;
}

void
ep_log_vwrite (ep_log_level_t level, const char *format, va_list args)
{
    if (!ep_log_enabled (level))
        return;
    int saved_errno = errno;        //  callers log, then look at errno
    char ts [32];
    ep_rfc3339 (ep_wall_ms (), ts, sizeof ts);
    char *msg = zsys_vprintf (format, args);
    EP_ASSERT (msg);
    size_t len;
    char *line = s_format == EP_LOG_JSON
               ? s_json_line (ts, ep_log_level_name (level), msg, &len)
               : s_text_line (ts, ep_log_level_name (level), msg, &len);
    //  One write; a short write (a full pipe, a signal) finishes the rest
    //  rather than losing the end of the line.
    int fd = atomic_load (&s_fd);
    size_t done = 0;
    while (done < len) {
        ssize_t rc = write (fd, line + done, len - done);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            break;              //  nowhere left to report a failing log
        done += (size_t) rc;
    }
    free (line);
    free (msg);
    errno = saved_errno;
}

#define S_LOG_AT(name, level) \
    void name (const char *format, ...) \
    { \
        va_list args; \
        va_start (args, format); \
        ep_log_vwrite (level, format, args); \
        va_end (args); \
    }

S_LOG_AT (ep_log_error, EP_LOG_ERROR)
S_LOG_AT (ep_log_warn, EP_LOG_WARN)
S_LOG_AT (ep_log_info, EP_LOG_INFO)
S_LOG_AT (ep_log_debug, EP_LOG_DEBUG)

void
ep_log_at (ep_log_level_t level, const char *format, ...)
{
    EP_ASSERT (level >= EP_LOG_ERROR && level <= EP_LOG_DEBUG);
    va_list args;
    va_start (args, format);
    ep_log_vwrite (level, format, args);
    va_end (args);
}
