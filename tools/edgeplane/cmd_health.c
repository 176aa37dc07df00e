/*  edgeplane health URL: GET a service's /healthz or /readyz and exit 0 on
    200. Compose healthchecks run it in exec form (the images have no shell
    and no curl). */
#include "cli.h"
#include "ep_addr.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

//  Splits "http://host:port/path" into its address (host:port, port 80 if
//  none; [IPv6]:port as ep_addr reads it), its authority as written (for
//  the Host header) and its path. Returns 0 or -1.
static int
s_parse_url (const char *url, ep_addr_t *addr, char *authority, size_t authority_size, const char **path)
{
    if (strncmp (url, "http://", 7) != 0)
        return -1;
    const char *start = url + 7;
    const char *slash = strchr (start, '/');
    *path = slash? slash: "/";
    size_t length = slash? (size_t) (slash - start): strlen (start);
    if (length == 0 || length >= authority_size)
        return -1;
    memcpy (authority, start, length);
    authority [length] = 0;
    //  A port is there if the last colon follows the host (an IPv6 host is
    //  in brackets, so its colons are before the closing one).
    const char *colon = strrchr (authority, ':');
    const char *bracket = strrchr (authority, ']');
    char text [EP_ADDR_TEXT_MAX + 8];
    if (colon && (!bracket || colon > bracket))
        snprintf (text, sizeof text, "%s", authority);
    else
        snprintf (text, sizeof text, "%s:80", authority);
    return ep_addr_parse (addr, text, EP_ADDR_DIAL, NULL, 0);
}

//  Waits for events on fd until deadline; true if they came.
static bool
s_wait (int fd, short events, int64_t deadline)
{
    int64_t left = deadline - ep_mono_ms ();
    struct pollfd pfd = { .fd = fd, .events = events };
    return left > 0 && poll (&pfd, 1, (int) left) == 1;
}

int
cli_http_get (const char *url, int64_t timeout_ms, int *status, char **body, char *err, size_t errlen)
{
    ep_addr_t addr;
    char authority [EP_ADDR_TEXT_MAX];
    const char *path = NULL;
    *status = 0;
    *body = NULL;
    if (s_parse_url (url, &addr, authority, sizeof authority, &path) != 0) {
        snprintf (err, errlen, "\"%s\" is not a URL like http://127.0.0.1:9101/healthz", url);
        return -1;
    }
    struct sockaddr_storage sa;
    socklen_t sa_len = sizeof sa;
    int64_t deadline = ep_mono_ms () + timeout_ms;
    int fd = -1, rc = -1;
    if (ep_addr_resolve (&addr, &sa, &sa_len, err, errlen) == 0
    &&  (fd = ep_addr_connect ((struct sockaddr *) &sa, sa_len)) < 0)
        snprintf (err, errlen, "cannot connect to %s: %s", authority, strerror (errno));
    if (fd >= 0) {
        char request [512];
        int len = snprintf (request, sizeof request,
                            "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n", path, authority);
        int so_error = 0;
        socklen_t so_len = sizeof so_error;
        if (!s_wait (fd, POLLOUT, deadline)
        ||  getsockopt (fd, SOL_SOCKET, SO_ERROR, &so_error, &so_len) != 0 || so_error != 0)
            snprintf (err, errlen, "cannot connect to %s: %s", authority,
                      so_error? strerror (so_error): "timed out");
        else
        if (send (fd, request, len, MSG_NOSIGNAL) != len)
            snprintf (err, errlen, "cannot send to %s: %s", authority, strerror (errno));
        else {
            zchunk_t *chunk = zchunk_new (NULL, 0);
            char buf [4096];
            while (s_wait (fd, POLLIN, deadline)) {
                ssize_t n = recv (fd, buf, sizeof buf, 0);
                if (n <= 0)
                    break;
                zchunk_extend (chunk, buf, n);
            }
            char *response = zchunk_strdup (chunk);
            zchunk_destroy (&chunk);
            const char *start = response? strstr (response, "\r\n\r\n"): NULL;
            if (!response || sscanf (response, "HTTP/%*s %d", status) != 1)
                snprintf (err, errlen, "no HTTP answer from %s within %lld ms", url, (long long) timeout_ms);
            else {
                *body = strdup (start? start + 4: "");
                rc = 0;
            }
            free (response);
        }
    }
    if (fd >= 0)
        close (fd);
    return rc;
}

int
cli_health (int argc, char **argv)
{
    static int64_t timeout;
    ep_opt_t opts [] = {
        { .name = "timeout", .def = "2s", .type = EP_OPT_DURATION, .num = &timeout,
          .min = 1, .max = 600000, .help = "How long to wait for the answer." },
    };
    ep_common_opts_t common;
    ep_config_t *config = cli_parse ("health", "GET URL (a service's /healthz or /readyz); exit 0 if it answers 200.",
                                     "URL", &common, opts, EP_COUNT (opts), argc, argv);
    int rc = CLI_FAIL;
    const char *url = ep_config_argc (config) == 1? ep_config_argv (config) [0]: NULL;
    char err [512], authority [EP_ADDR_TEXT_MAX];
    ep_addr_t addr;
    const char *path;
    int status;
    char *body = NULL;
    if (!url || s_parse_url (url, &addr, authority, sizeof authority, &path) != 0) {
        fprintf (stderr, "edgeplane health: expected one URL like http://127.0.0.1:9101/healthz\n");
        rc = CLI_USAGE;
    }
    else
    if (cli_http_get (url, timeout, &status, &body, err, sizeof err) != 0)
        cli_fail ("health", "%s", err);
    else
    if (status != 200) {
        size_t len = strlen (body);
        while (len && (body [len - 1] == '\n' || body [len - 1] == '\r'))
            body [--len] = 0;
        cli_fail ("health", "%s answered %d: %s", url, status, body);
    }
    else {
        printf ("%s", body);
        rc = CLI_OK;
    }
    free (body);
    ep_config_destroy (&config);
    return rc;
}
