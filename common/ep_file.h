/*  ep_file.h: files written whole or not at all, and directories made.

    Keys, certificates, ready files and the router agent's state are small
    files that a reader must see complete: each is written beside its
    final name and renamed over it, so a reader (or a crash) sees the old
    file or the new one, never a part.
*/
#ifndef EP_FILE_H_INCLUDED
#define EP_FILE_H_INCLUDED

#include "ep_prelude.h"
#include <limits.h>

//  Longest directory a module that builds paths below it accepts: room
//  for a subdirectory, a 64-character name and a suffix within PATH_MAX.
#define EP_FILE_DIR_MAX     (PATH_MAX - 128)

//  Writes size bytes of data to path through a temporary file beside it
//  and a rename, with mode (whatever the umask). sync makes the content
//  durable before the rename. 0, or -1 with the reason in err (err may
//  be NULL) and errno set.
int
    ep_file_write (const char *path, const void *data, size_t size, mode_t mode, bool sync,
                   char *err, size_t errlen);

//  mkdir -p: missing parents get 0755, path itself mode (whatever the
//  umask). An existing path must be a directory; its mode is left alone.
//  0, or -1 with the reason in err.
int
    ep_file_mkdirs (const char *path, mode_t mode, char *err, size_t errlen);

//  True if path exists (any kind of file).
bool
    ep_file_exists (const char *path);

//  Formats a path into buf (PATH_MAX bytes). Callers bound the directories
//  they are given (EP_FILE_DIR_MAX), so a path that does not fit is a bug.
void
    ep_file_path (char *buf, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

//  Warns, as who ("keys: ..."), if others may read path (a secret key):
//  the key still works, but it should be chmod 600.
void
    ep_file_warn_readable (const char *who, const char *path);

#endif
