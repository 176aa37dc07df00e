/*  ep_file.h: files written whole or not at all, and directories made.

    Keys, certificates, ready files and the router agent's state are small
    files that a reader must see complete: each is written beside its
    final name and renamed over it, so a reader (or a crash) sees the old
    file or the new one, never a part.
*/
#ifndef EP_FILE_H_INCLUDED
#define EP_FILE_H_INCLUDED

#include "ep_prelude.h"

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

#endif
