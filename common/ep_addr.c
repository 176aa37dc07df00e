/*  ep_addr.c: host:port for every listener and dialer (ep_addr.h). */
#include "ep_addr.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <unistd.h>

//  The family of a literal host, AF_UNSPEC for a valid name, -1 if neither.
static int
s_host_family (const char *host)
{
    unsigned char buf [sizeof (struct in6_addr)];
    if (inet_pton (AF_INET, host, buf) == 1)
        return AF_INET;
    //  An IPv6 address may carry a zone ("fe80::1%eth0"); getaddrinfo takes it.
    char bare [256];
    snprintf (bare, sizeof bare, "%s", host);
    char *zone = strchr (bare, '%');
    if (zone && zone [1] && strspn (zone + 1, "abcdefghijklmnopqrstuvwxyz"
                                              "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == strlen (zone + 1))
        *zone = 0;
    if (inet_pton (AF_INET6, bare, buf) == 1)
        return AF_INET6;
    //  A name has a letter somewhere (RFC 1123): "300.1.1.1" is a bad address.
    size_t len = strlen (host);
    if (len && strspn (host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") == len
    &&  strspn (host, "0123456789.") < len)
        return AF_UNSPEC;
    return -1;
}

//  Reads the port (after the colon) into self. Returns 0 or -1.
static int
s_port_parse (ep_addr_t *self, const char *text, int flags)
{
    size_t len = strlen (text);
    if (len == 0 || len >= sizeof self->service)
        return -1;
    memcpy (self->service, text, len + 1);
    if (strspn (text, "0123456789") == len) {
        if (len > 5 || atoi (text) > 65535)
            return -1;
        self->port = atoi (text);
        return 0;
    }
    //  A service name: letters, digits, '-' and '_', not all digits.
    if ((flags & EP_ADDR_SERVICE)
    &&  strspn (text, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") == len) {
        self->port = -1;
        return 0;
    }
    return -1;
}

int
ep_addr_parse (ep_addr_t *self, const char *text, int flags, char *err, size_t errlen)
{
    memset (self, 0, sizeof *self);
    if (!text)
        text = "";
    const char *host = text, *host_end, *colon;
    if (*text == '[') {
        host = text + 1;
        host_end = strchr (host, ']');
        if (!host_end)
            return ep_errorf (err, errlen, "\"%s\": no ] closes the [", text);
        colon = host_end + 1;
        if (*colon != ':')
            colon = NULL;
    }
    else {
        colon = strrchr (text, ':');
        host_end = colon;
        if (colon && memchr (text, ':', colon - text))
            return ep_errorf (err, errlen, "\"%s\": put an IPv6 address in brackets, as in [::1]:6262", text);
    }
    if (!colon || host_end == host || !colon [1])
        return ep_errorf (err, errlen, "\"%s\": expected host:port, such as 127.0.0.1:6262 or [::1]:6262", text);
    size_t host_len = (size_t) (host_end - host);
    if (host_len >= sizeof self->host)
        return ep_errorf (err, errlen, "\"%s\": the host is longer than %zu characters", text,
                          sizeof self->host - 1);
    memcpy (self->host, host, host_len);
    self->host [host_len] = 0;

    if (s_port_parse (self, colon + 1, flags) != 0)
        return ep_errorf (err, errlen, "\"%s\": the port must be a number from %d to 65535%s", text,
                          (flags & EP_ADDR_DIAL)? 1: 0,
                          (flags & EP_ADDR_SERVICE)? " or a service name": "");
    if (streq (self->host, "*")) {
        self->any = true;
        self->family = AF_INET;
    }
    else
    if ((self->family = s_host_family (self->host)) == -1)
        return ep_errorf (err, errlen, "\"%s\": \"%s\" is neither a host name nor an IP address",
                          text, self->host);
    if ((flags & EP_ADDR_DIAL) && self->any)
        return ep_errorf (err, errlen, "\"%s\": * is for listeners; name the host to connect to", text);
    if ((flags & EP_ADDR_DIAL) && self->port == 0)
        return ep_errorf (err, errlen, "\"%s\": the port must be a number from 1 to 65535", text);
    return 0;
}

int
ep_addr_resolve (const ep_addr_t *self, struct sockaddr_storage *sa, socklen_t *len,
                 char *err, size_t errlen)
{
    struct addrinfo hints = { .ai_family = self->family, .ai_socktype = SOCK_STREAM };
    if (self->port >= 0)
        hints.ai_flags |= AI_NUMERICSERV;
    if (self->any)
        hints.ai_flags |= AI_PASSIVE;
    else {
        //  Numeric only when the host is an address: a caller may narrow a
        //  name to one family (the watchdog asks the bus's name for IPv4)
        unsigned char probe [sizeof (struct in6_addr)];
        if (inet_pton (AF_INET, self->host, probe) == 1 || inet_pton (AF_INET6, self->host, probe) == 1)
            hints.ai_flags |= AI_NUMERICHOST;
    }
    struct addrinfo *found = NULL;
    int rc = getaddrinfo (self->any? NULL: self->host, self->service, &hints, &found);
    if (rc != 0)
        return ep_errorf (err, errlen, "cannot resolve %s: %s", self->host, gai_strerror (rc));
    EP_ASSERT (found->ai_addrlen <= sizeof *sa);
    memcpy (sa, found->ai_addr, found->ai_addrlen);
    *len = found->ai_addrlen;
    freeaddrinfo (found);
    return 0;
}

int
ep_addr_listen (const ep_addr_t *self, int backlog, char *err, size_t errlen)
{
    struct sockaddr_storage sa;
    socklen_t len;
    if (ep_addr_resolve (self, &sa, &len, err, errlen) != 0) {
        errno = EADDRNOTAVAIL;
        return -1;
    }
    int fd = socket (sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0
    &&  setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0
    &&  bind (fd, (struct sockaddr *) &sa, len) == 0
    &&  listen (fd, backlog) == 0)
        return fd;
    int failure = errno;
    if (fd >= 0)
        close (fd);
    char text [EP_ADDR_TEXT_MAX];
    ep_errorf (err, errlen, "cannot listen on %s: %s%s",
               ep_addr_format ((struct sockaddr *) &sa, text, sizeof text), strerror (failure),
               failure == EADDRINUSE? "; is another process using it?":
               failure == EADDRNOTAVAIL? "; is that address on this machine?": "");
    errno = failure;
    return -1;
}

int
ep_addr_connect (const struct sockaddr *sa, socklen_t len)
{
    int fd = socket (sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect (fd, sa, len) != 0 && errno != EINPROGRESS) {
        int failure = errno;
        close (fd);
        errno = failure;
        return -1;
    }
    return fd;
}

char *
ep_addr_join (const char *host, int port, char *buf, size_t size)
{
    if (strchr (host, ':'))
        snprintf (buf, size, "[%s]:%d", host, port);
    else
        snprintf (buf, size, "%s:%d", host, port);
    return buf;
}

char *
ep_addr_format (const struct sockaddr *sa, char *buf, size_t size)
{
    char host [INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *) sa;
        inet_ntop (AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs (in->sin_port);
    }
    else
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;
        inet_ntop (AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs (in6->sin6_port);
    }
    return ep_addr_join (host, port, buf, size);
}

char *
ep_addr_local (int fd, char *buf, size_t size)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    if (getsockname (fd, (struct sockaddr *) &sa, &len) != 0)
        return NULL;
    if (sa.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *) &sa;
        if (in->sin_addr.s_addr == htonl (INADDR_ANY))
            in->sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    }
    else
    if (sa.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &sa;
        if (IN6_IS_ADDR_UNSPECIFIED (&in6->sin6_addr))
            in6->sin6_addr = in6addr_loopback;
    }
    else
        return NULL;
    return ep_addr_format ((struct sockaddr *) &sa, buf, size);
}

int
ep_addr_port (int fd)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    if (getsockname (fd, (struct sockaddr *) &sa, &len) != 0)
        return -1;
    if (sa.ss_family == AF_INET)
        return ntohs (((struct sockaddr_in *) &sa)->sin_port);
    if (sa.ss_family == AF_INET6)
        return ntohs (((struct sockaddr_in6 *) &sa)->sin6_port);
    return -1;
}
