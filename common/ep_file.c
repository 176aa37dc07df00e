/*  ep_file.c: files written whole or not at all (ep_file.h). */
#include "ep_file.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

int
ep_file_write (const char *path, const void *data, size_t size, mode_t mode, bool sync,
               char *err, size_t errlen)
{
    char hex [17];
    ep_random_hex (hex, 8);
    char tmp [PATH_MAX];
    int n = snprintf (tmp, sizeof tmp, "%s.tmp-%s", path, hex);
    if (n < 0 || n >= (int) sizeof tmp) {
        ep_errorf (err, errlen, "cannot write %s: the path is too long", path);
        return -1;
    }
    int fd = open (tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        ep_errorf (err, errlen, "cannot write %s: %s", path, strerror (errno));
        return -1;
    }
    int rc = fchmod (fd, mode);
    const char *bytes = (const char *) data;
    for (size_t done = 0; rc == 0 && done < size; ) {
        ssize_t wrote = write (fd, bytes + done, size - done);
        if (wrote < 0 && errno != EINTR)
            rc = -1;
        else
        if (wrote > 0)
            done += (size_t) wrote;
    }
    if (rc == 0 && sync)
        rc = fdatasync (fd);
    if (close (fd) != 0)
        rc = -1;
    if (rc == 0)
        rc = rename (tmp, path);
    if (rc != 0) {
        int saved = errno;
        ep_errorf (err, errlen, "cannot write %s: %s", path, strerror (saved));
        unlink (tmp);
        errno = saved;
        return -1;
    }
    return 0;
}

int
ep_file_mkdirs (const char *path, mode_t mode, char *err, size_t errlen)
{
    char buf [PATH_MAX];
    int n = snprintf (buf, sizeof buf, "%s", path);
    if (n < 0 || n >= (int) sizeof buf) {
        ep_errorf (err, errlen, "cannot create directory %s: the path is too long", path);
        return -1;
    }
    for (char *slash = strchr (buf + 1, '/'); slash; slash = strchr (slash + 1, '/')) {
        *slash = 0;
        if (mkdir (buf, 0755) != 0 && errno != EEXIST) {
            ep_errorf (err, errlen, "cannot create directory %s: %s", buf, strerror (errno));
            return -1;
        }
        *slash = '/';
    }
    if (mkdir (buf, mode) == 0) {
        //  The umask may have taken bits away.
        if (chmod (buf, mode) == 0)
            return 0;
        ep_errorf (err, errlen, "cannot set the mode of %s: %s", buf, strerror (errno));
        return -1;
    }
    struct stat st;
    if (errno != EEXIST || stat (buf, &st) != 0 || !S_ISDIR (st.st_mode)) {
        ep_errorf (err, errlen, "cannot create directory %s: %s", buf,
                   errno == EEXIST? "it exists and is not a directory": strerror (errno));
        return -1;
    }
    return 0;
}

bool
ep_file_exists (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0;
}
