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
    char host [256], port [16];
    const char *path = NULL;
    const char *url = ep_config_argc (config) == 1? ep_config_argv (config) [0]: NULL;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *addr = NULL;
    int fd = -1;
    int64_t deadline = ep_mono_ms () + timeout;
    if (!url || s_parse_url (url, host, sizeof host, port, sizeof port, &path) != 0) {
        fprintf (stderr, "edgeplane health: expected one URL like http://127.0.0.1:9101/healthz\n");
        rc = CLI_USAGE;
    }
    else
    if (getaddrinfo (host, port, &hints, &addr) != 0)
        cli_fail ("health", "cannot resolve %s: check the host name", host);
    else
    if ((fd = socket (addr->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
        cli_fail ("health", "socket: %s", strerror (errno));
    else
    if (connect (fd, addr->ai_addr, addr->ai_addrlen) != 0 && errno != EINPROGRESS)
        cli_fail ("health", "cannot connect to %s:%s: %s", host, port, strerror (errno));
    else {
        char request [512];
        int len = snprintf (request, sizeof request,
                            "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host);
        int err = 0;
        socklen_t err_len = sizeof err;
        char response [4096];
        size_t got = 0;
        if (!s_wait (fd, POLLOUT, deadline)
        ||  getsockopt (fd, SOL_SOCKET, SO_ERROR, &err, &err_len) != 0 || err != 0)
            cli_fail ("health", "cannot connect to %s:%s: %s", host, port,
                      err? strerror (err): "timed out");
        else
        if (send (fd, request, len, MSG_NOSIGNAL) != len)
            cli_fail ("health", "cannot send to %s:%s: %s", host, port, strerror (errno));
        else {
            while (got < sizeof response - 1 && s_wait (fd, POLLIN, deadline)) {
                ssize_t n = recv (fd, response + got, sizeof response - 1 - got, 0);
                if (n <= 0)
                    break;
                got += n;
            }
            response [got] = 0;
            int status = 0;
            const char *body = strstr (response, "\r\n\r\n");
            if (sscanf (response, "HTTP/%*s %d", &status) != 1)
                cli_fail ("health", "no HTTP answer from %s within %lld ms", url, (long long) timeout);
            else
            if (status != 200)
                cli_fail ("health", "%s answered %d: %s", url, status, body? body + 4: "");
            else {
                printf ("%s", body? body + 4: "ok\n");
                rc = CLI_OK;
            }
        }
    }
    if (fd >= 0)
        close (fd);
    if (addr)
        freeaddrinfo (addr);
    ep_config_destroy (&config);
    return rc;
}
