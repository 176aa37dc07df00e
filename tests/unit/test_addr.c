/*  test_addr.c: host:port as every listener and dialer reads it, resolving,
    listening on the right family, and writing an address back. */
#include <criterion/criterion.h>
#include "ep_addr.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <unistd.h>

//  True if this machine can bind ::1 (containers may have no IPv6).
static bool
s_have_ipv6_loopback (void)
{
    int fd = socket (AF_INET6, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
    bool ok = bind (fd, (struct sockaddr *) &sa, sizeof sa) == 0;
    close (fd);
    return ok;
}

Test (addr, parses_every_form_listeners_and_dialers_accept)
{
    struct {
        const char *text;
        const char *host;
        int port;
        int family;
        bool any;
    } good [] = {
        { "127.0.0.1:6262", "127.0.0.1", 6262, AF_INET, false },
        { "0.0.0.0:0", "0.0.0.0", 0, AF_INET, false },
        { "[::1]:0", "::1", 0, AF_INET6, false },
        { "[::]:9101", "::", 9101, AF_INET6, false },
        { "[fe80::1%lo]:80", "fe80::1%lo", 80, AF_INET6, false },
        { "[127.0.0.1]:5", "127.0.0.1", 5, AF_INET, false },
        { "*:9101", "*", 9101, AF_INET, true },
        { "localhost:80", "localhost", 80, AF_UNSPEC, false },
        { "edgeplane_model-1.lan:65535", "edgeplane_model-1.lan", 65535, AF_UNSPEC, false },
        { "[router.lan]:6262", "router.lan", 6262, AF_UNSPEC, false },
    };
    for (size_t i = 0; i < EP_COUNT (good); i++) {
        ep_addr_t addr;
        char err [256] = "";
        cr_assert_eq (ep_addr_parse (&addr, good [i].text, 0, err, sizeof err), 0,
                      "%s: %s", good [i].text, err);
        cr_assert_str_eq (addr.host, good [i].host);
        cr_assert_eq (addr.port, good [i].port, "%s", good [i].text);
        cr_assert_eq (addr.family, good [i].family, "%s", good [i].text);
        cr_assert_eq (addr.any, good [i].any, "%s", good [i].text);
    }
}

Test (addr, refuses_with_a_sentence_that_says_why)
{
    struct {
        const char *text;
        int flags;
        const char *says;
    } bad [] = {
        { "", 0, "expected host:port" },
        { "nohostport", 0, "expected host:port" },
        { ":6262", 0, "expected host:port" },
        { "[]:6262", 0, "expected host:port" },
        { "h:", 0, "expected host:port" },
        { "[::1]6262", 0, "expected host:port" },
        { "[::1", 0, "no ] closes the [" },
        { "::1:80", 0, "put an IPv6 address in brackets" },
        { "tcp://h:1", 0, "put an IPv6 address in brackets" },
        { "h:70000", 0, "the port must be a number from 0 to 65535" },
        { "h:x", 0, "the port must be a number from 0 to 65535" },
        { "h:-1", 0, "the port must be a number from 0 to 65535" },
        { "h:*", 0, "the port must be a number from 0 to 65535" },
        { "h:999999", 0, "the port must be a number" },
        { "bad host:1", 0, "\"bad host\" is neither a host name nor an IP address" },
        { "[not v6!]:1", 0, "is neither a host name nor an IP address" },
        { "300.1.1.1:0", 0, "\"300.1.1.1\" is neither a host name nor an IP address" },
        { "*:6262", EP_ADDR_DIAL, "* is for listeners" },
        { "127.0.0.1:0", EP_ADDR_DIAL, "the port must be a number from 1 to 65535" },
        { "127.0.0.1:ssh", EP_ADDR_DIAL, "the port must be a number from 1 to 65535" },
    };
    for (size_t i = 0; i < EP_COUNT (bad); i++) {
        ep_addr_t addr;
        char err [256] = "";
        cr_assert_eq (ep_addr_parse (&addr, bad [i].text, bad [i].flags, err, sizeof err), -1,
                      "accepted \"%s\"", bad [i].text);
        cr_assert (strstr (err, bad [i].says), "\"%s\": %s", bad [i].text, err);
        char quoted [64];
        snprintf (quoted, sizeof quoted, "\"%s\"", bad [i].text);
        cr_assert (strstr (err, quoted), "the error names the address: %s", err);
    }
    ep_addr_t addr;
    cr_assert_eq (ep_addr_parse (&addr, NULL, 0, NULL, 0), -1, "no text, no error buffer");
}

Test (addr, service_names_only_when_asked)
{
    ep_addr_t addr;
    cr_assert_eq (ep_addr_parse (&addr, "127.0.0.1:ssh", 0, NULL, 0), -1);
    cr_assert_eq (ep_addr_parse (&addr, "127.0.0.1:ssh", EP_ADDR_SERVICE, NULL, 0), 0);
    cr_assert_eq (addr.port, -1);
    cr_assert_str_eq (addr.service, "ssh");
    cr_assert_eq (ep_addr_parse (&addr, "127.0.0.1:22", EP_ADDR_SERVICE, NULL, 0), 0);
    cr_assert_eq (addr.port, 22);
}

Test (addr, resolves_literals_any_and_names)
{
    ep_addr_t addr;
    struct sockaddr_storage sa;
    socklen_t len;
    char text [EP_ADDR_TEXT_MAX], err [256];
    cr_assert_eq (ep_addr_parse (&addr, "127.0.0.1:6262", EP_ADDR_DIAL, NULL, 0), 0);
    cr_assert_eq (ep_addr_resolve (&addr, &sa, &len, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq (ep_addr_format ((struct sockaddr *) &sa, text, sizeof text), "127.0.0.1:6262");

    cr_assert_eq (ep_addr_parse (&addr, "[::1]:80", 0, NULL, 0), 0);
    cr_assert_eq (ep_addr_resolve (&addr, &sa, &len, err, sizeof err), 0, "%s", err);
    cr_assert_eq (sa.ss_family, AF_INET6);
    cr_assert_eq (len, sizeof (struct sockaddr_in6));
    cr_assert_str_eq (ep_addr_format ((struct sockaddr *) &sa, text, sizeof text), "[::1]:80");

    cr_assert_eq (ep_addr_parse (&addr, "*:9101", 0, NULL, 0), 0);
    cr_assert_eq (ep_addr_resolve (&addr, &sa, &len, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq (ep_addr_format ((struct sockaddr *) &sa, text, sizeof text), "0.0.0.0:9101");

    cr_assert_eq (ep_addr_parse (&addr, "localhost:7", 0, NULL, 0), 0);
    cr_assert_eq (ep_addr_resolve (&addr, &sa, &len, err, sizeof err), 0, "%s", err);
    cr_assert (sa.ss_family == AF_INET || sa.ss_family == AF_INET6);

    cr_assert_eq (ep_addr_parse (&addr, "no-such-host.invalid:7", 0, NULL, 0), 0);
    cr_assert_eq (ep_addr_resolve (&addr, &sa, &len, err, sizeof err), -1);
    cr_assert (strstr (err, "cannot resolve no-such-host.invalid"), "%s", err);
}

//  A name narrowed to one family still resolves: the watchdog asks the
//  bus's name (compose: "bus") for IPv4 to find its own address.
Test (addr, a_name_narrowed_to_ipv4_resolves)
{
    ep_addr_t addr;
    cr_assert_eq (ep_addr_parse (&addr, "localhost:7100", EP_ADDR_DIAL, NULL, 0), 0);
    addr.family = AF_INET;
    struct sockaddr_storage sa;
    socklen_t len;
    char err [256] = "";
    cr_assert_eq (ep_addr_resolve (&addr, &sa, &len, err, sizeof err), 0, "%s", err);
    cr_assert_eq (sa.ss_family, AF_INET);
}

Test (addr, writes_addresses_back_with_brackets_for_ipv6)
{
    char text [EP_ADDR_TEXT_MAX];
    cr_assert_str_eq (ep_addr_join ("::1", 1234, text, sizeof text), "[::1]:1234");
    cr_assert_str_eq (ep_addr_join ("10.0.0.1", 80, text, sizeof text), "10.0.0.1:80");
    cr_assert_str_eq (ep_addr_join ("router.lan", 6262, text, sizeof text), "router.lan:6262");
    struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons (9),
                                .sin6_addr = IN6ADDR_LOOPBACK_INIT };
    cr_assert_str_eq (ep_addr_format ((struct sockaddr *) &in6, text, sizeof text), "[::1]:9");
}

//  Connects to the local address of listener and accepts it.
static void
s_assert_connects (int listener)
{
    char local [EP_ADDR_TEXT_MAX], err [256] = "";
    cr_assert_not_null (ep_addr_local (listener, local, sizeof local));
    ep_addr_t addr;
    cr_assert_eq (ep_addr_parse (&addr, local, EP_ADDR_DIAL, err, sizeof err), 0, "%s", err);
    struct sockaddr_storage sa;
    socklen_t len;
    cr_assert_eq (ep_addr_resolve (&addr, &sa, &len, err, sizeof err), 0, "%s", err);
    int fd = ep_addr_connect ((struct sockaddr *) &sa, len);
    cr_assert (fd >= 0, "connect %s: %s", local, strerror (errno));
    struct pollfd pfd = { .fd = listener, .events = POLLIN };
    cr_assert_eq (poll (&pfd, 1, 5000), 1, "nothing came to %s", local);
    int accepted = accept (listener, NULL, NULL);
    cr_assert (accepted >= 0);
    close (accepted);
    close (fd);
}

Test (addr, listens_on_ipv4_and_any_with_kernel_chosen_ports)
{
    const char *texts [] = { "127.0.0.1:0", "*:0", "0.0.0.0:0" };
    for (size_t i = 0; i < EP_COUNT (texts); i++) {
        ep_addr_t addr;
        char err [256] = "", local [EP_ADDR_TEXT_MAX], want [64];
        cr_assert_eq (ep_addr_parse (&addr, texts [i], 0, err, sizeof err), 0, "%s", err);
        int fd = ep_addr_listen (&addr, 16, err, sizeof err);
        cr_assert (fd >= 0, "%s", err);
        int port = ep_addr_port (fd);
        cr_assert_gt (port, 0);
        snprintf (want, sizeof want, "127.0.0.1:%d", port);
        cr_assert_str_eq (ep_addr_local (fd, local, sizeof local), want, "wildcards become loopback");
        s_assert_connects (fd);
        close (fd);
    }
}

Test (addr, listens_on_an_ipv6_socket_for_an_ipv6_address)
{
    if (!s_have_ipv6_loopback ()) {
        cr_skip_test ("this machine has no ::1");
        return;
    }
    ep_addr_t addr;
    char err [256] = "", local [EP_ADDR_TEXT_MAX], want [64];
    cr_assert_eq (ep_addr_parse (&addr, "[::1]:0", 0, err, sizeof err), 0, "%s", err);
    int fd = ep_addr_listen (&addr, 16, err, sizeof err);
    cr_assert (fd >= 0, "%s", err);
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    cr_assert_eq (getsockname (fd, (struct sockaddr *) &sa, &len), 0);
    cr_assert_eq (sa.ss_family, AF_INET6, "an IPv6 socket");
    snprintf (want, sizeof want, "[::1]:%d", ep_addr_port (fd));
    cr_assert_str_eq (ep_addr_local (fd, local, sizeof local), want);
    s_assert_connects (fd);
    close (fd);
}

Test (addr, a_busy_port_is_reported_with_errno_and_a_hint)
{
    ep_addr_t addr;
    char err [256] = "", text [64];
    cr_assert_eq (ep_addr_parse (&addr, "127.0.0.1:0", 0, NULL, 0), 0);
    int first = ep_addr_listen (&addr, 16, err, sizeof err);
    cr_assert (first >= 0, "%s", err);
    snprintf (text, sizeof text, "127.0.0.1:%d", ep_addr_port (first));
    cr_assert_eq (ep_addr_parse (&addr, text, 0, NULL, 0), 0);
    cr_assert_eq (ep_addr_listen (&addr, 16, err, sizeof err), -1);
    cr_assert_eq (errno, EADDRINUSE);
    char want [256];
    snprintf (want, sizeof want, "cannot listen on %s: %s; is another process using it?",
              text, strerror (EADDRINUSE));
    cr_assert_str_eq (err, want);
    close (first);
}
