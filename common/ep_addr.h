/*  ep_addr.h: host:port, the one way every listener and dialer reads it.

    Written as users write it and as options and beacons carry it:
        127.0.0.1:6262      an IPv4 address
        [::1]:6262          an IPv6 address, in brackets (required: a bare
                            one cannot be told from its port)
        [127.0.0.1]:6262    brackets around any host are taken off
        *:6262              every interface (IPv4, as 0.0.0.0)
        router-1.lan:6262   a host name, looked up when resolved
    The port is a number from 0 to 65535; 0 lets the kernel choose, so it is
    for listeners only (EP_ADDR_DIAL refuses it and "*"). EP_ADDR_SERVICE
    also takes a service name ("127.0.0.1:ssh").

    Listeners open a socket of the address's family (an IPv6 socket for an
    IPv6 address) with ep_addr_listen; dialers resolve with ep_addr_resolve
    and connect with ep_addr_connect. ep_addr_format writes an address back
    the same way ("[::1]:1234"). Errors are one sentence for a user in (err,
    errlen), which may be NULL.
*/
#ifndef EP_ADDR_H_INCLUDED
#define EP_ADDR_H_INCLUDED

#include "ep_prelude.h"
#include <sys/socket.h>

//  Flags for ep_addr_parse.
#define EP_ADDR_DIAL        1   //  a place to connect to: no "*", no port 0
#define EP_ADDR_SERVICE     2   //  the port may be a service name

//  Longest "[host]:port" ep_addr_format writes, with its NUL.
#define EP_ADDR_TEXT_MAX    (256 + 8)

//  A parsed host:port.
typedef struct {
    char host [256];            //  as written, brackets taken off; "*" for any
    char service [32];          //  the port as written (digits, or a service name)
    int port;                   //  the port number; -1 for a service name
    int family;                 //  AF_INET or AF_INET6 for a literal or "*", else AF_UNSPEC
    bool any;                   //  host "*": every interface
} ep_addr_t;

//  Parses text into *self. Returns 0, or -1 with why in err.
int
    ep_addr_parse (ep_addr_t *self, const char *text, int flags, char *err, size_t errlen);

//  Resolves to a socket address (the first the resolver gives): a literal
//  or "*" at once, a name by a lookup that may block briefly. Returns 0, or
//  -1 with why in err ("cannot resolve HOST: ...").
int
    ep_addr_resolve (const ep_addr_t *self, struct sockaddr_storage *sa, socklen_t *len,
                     char *err, size_t errlen);

//  A listening socket bound to the address (non-blocking, close-on-exec,
//  SO_REUSEADDR) with backlog. Returns the fd, or -1 with errno kept and
//  why in err.
int
    ep_addr_listen (const ep_addr_t *self, int backlog, char *err, size_t errlen);

//  Starts a TCP connect to sa: returns the socket (non-blocking,
//  close-on-exec; connected, or failed, once it polls writable), or -1
//  with errno set if socket () or connect () failed at once.
int
    ep_addr_connect (const struct sockaddr *sa, socklen_t len);

//  Writes sa as "1.2.3.4:80" or "[::1]:80" into buf (EP_ADDR_TEXT_MAX is
//  enough). Returns buf.
char *
    ep_addr_format (const struct sockaddr *sa, char *buf, size_t size);

//  Writes host and port as "host:port", with brackets if host is an IPv6
//  address ("[::1]:80"). Returns buf.
char *
    ep_addr_join (const char *host, int port, char *buf, size_t size);

//  The address fd is bound to, as one a local client can connect to: the
//  wildcard becomes loopback (0.0.0.0 -> 127.0.0.1, :: -> ::1), written as
//  ep_addr_format does. Returns buf, or NULL if fd has no address.
char *
    ep_addr_local (int fd, char *buf, size_t size);

//  The port fd is bound to, or -1.
int
    ep_addr_port (int fd);

#endif
