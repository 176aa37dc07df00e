/*  edgeplane health URL: GET a service's /healthz or /readyz and exit 0 on
    200. Compose healthchecks run it in exec form (the images have no shell
    and no curl). */
#include "cli.h"
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

//  Splits "http://host:port/path" into its parts. Returns 0 or -1.
static int
s_parse_url (const char *url, char *host, size_t host_size, char *port, size_t port_size,
             const char **path)
{
    if (strncmp (url, "http://", 7) != 0)
        return -1;
    const char *start = url + 7;
    const char *slash = strchr (start, '/');
    *path = slash? slash: "/";
    size_t authority = slash? (size_t) (slash - start): strlen (start);
    const char *colon = memchr (start, ':', authority);
    size_t host_len = colon? (size_t) (colon - start): authority;
    size_t port_len = colon? authority - host_len - 1: 2;
    if (host_len == 0 || host_len >= host_size || port_len == 0 || port_len >= port_size)
        return -1;
    memcpy (host, start, host_len);
    host [host_len] = 0;
    if (colon) {
        memcpy (port, colon + 1, port_len);
        port [port_len] = 0;
    }
    else
        snprintf (port, port_size, "80");
    return 0;
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
    char host [256], port [16];
    const char *path = NULL;
    *status = 0;
    *body = NULL;
    if (s_parse_url (url, host, sizeof host, port, sizeof port, &path) != 0) {
        snprintf (err, errlen, "\"%s\" is not a URL like http://127.0.0.1:9101/healthz", url);
        return -1;
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *addr = NULL;
    int64_t deadline = ep_mono_ms () + timeout_ms;
    int fd = -1, rc = -1;
    if (getaddrinfo (host, port, &hints, &addr) != 0)
        snprintf (err, errlen, "cannot resolve %s: check the host name", host);
    else
    if ((fd = socket (addr->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
        snprintf (err, errlen, "socket: %s", strerror (errno));
    else
    if (connect (fd, addr->ai_addr, addr->ai_addrlen) != 0 && errno != EINPROGRESS)
        snprintf (err, errlen, "cannot connect to %s:%s: %s", host, port, strerror (errno));
    else {
        char request [512];
        int len = snprintf (request, sizeof request,
                            "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host);
        int so_error = 0;
        socklen_t so_len = sizeof so_error;
        if (!s_wait (fd, POLLOUT, deadline)
        ||  getsockopt (fd, SOL_SOCKET, SO_ERROR, &so_error, &so_len) != 0 || so_error != 0)
            snprintf (err, errlen, "cannot connect to %s:%s: %s", host, port,
                      so_error? strerror (so_error): "timed out");
        else
        if (send (fd, request, len, MSG_NOSIGNAL) != len)
            snprintf (err, errlen, "cannot send to %s:%s: %s", host, port, strerror (errno));
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
    if (addr)
        freeaddrinfo (addr);
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
    int code;
    ep_config_t *config = cli_parse ("health", "GET URL (a service's /healthz or /readyz); exit 0 if it answers 200.",
                                     "URL", &common, opts, EP_COUNT (opts), argc, argv, &code);
    if (!config)
        return code;
    int rc = CLI_FAIL;
    const char *url = ep_config_argc (config) == 1? ep_config_argv (config) [0]: NULL;
    char err [512], host [256], port [16];
    const char *path;
    int status;
    char *body = NULL;
    if (!url || s_parse_url (url, host, sizeof host, port, sizeof port, &path) != 0) {
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
