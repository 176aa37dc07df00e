/*  test_http.c: /metrics, /healthz, /readyz over a real socket, including
    with file descriptor numbers past 1024 (where select () would fail). */
#include <criterion/criterion.h>
#include "ep_test.h"
#include "ep_http.h"
#include "ep_addr.h"
#include "ep_fdlimit.h"
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    int status;                 //  HTTP status code, -1 if no valid reply
    char *head;                 //  status line and headers
    char *body;                 //  everything after the blank line
} reply_t;

static void
s_reply_free (reply_t *reply)
{
    free (reply->head);
    free (reply->body);
}

//  A minimal HTTP/1.1 client: one request, reads until the server closes.
//  Blocks at most 5 s on any socket operation. Returns the socket's fd
//  number in *fd_used if fd_used is not NULL.
static reply_t
s_request_at (const char *address, const char *method, const char *path, int *fd_used)
{
    reply_t reply = { -1, NULL, NULL };
    ep_addr_t addr;
    struct sockaddr_storage sa;
    socklen_t len;
    cr_assert_eq (ep_addr_parse (&addr, address, EP_ADDR_DIAL, NULL, 0), 0);
    cr_assert_eq (ep_addr_resolve (&addr, &sa, &len, NULL, 0), 0);
    int fd = socket (sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq (fd, 0);
    if (fd_used)
        *fd_used = fd;
    struct timeval timeout = { 5, 0 };
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    cr_assert_eq (connect (fd, (struct sockaddr *) &sa, len), 0);

    char *request = zsys_sprintf ("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  "Connection: close\r\n\r\n", method, path);
    cr_assert_eq (send (fd, request, strlen (request), MSG_NOSIGNAL), (ssize_t) strlen (request));
    zstr_free (&request);

    zchunk_t *data = zchunk_new (NULL, 0);
    char buf [4096];
    ssize_t n = -1;             //  -1 until a recv says otherwise
    while ((n = recv (fd, buf, sizeof buf, 0)) > 0)
        zchunk_extend (data, buf, n);
    close (fd);
    char *text = zchunk_strdup (data);
    zchunk_destroy (&data);

    char *blank = strstr (text, "\r\n\r\n");
    if (blank && sscanf (text, "HTTP/1.%*d %d", &reply.status) == 1) {
        reply.body = strdup (blank + 4);
        *blank = 0;
        reply.head = strdup (text);
    }
    free (text);
    return reply;
}

static reply_t
s_request (int port, const char *method, const char *path, int *fd_used)
{
    char address [32];
    snprintf (address, sizeof address, "127.0.0.1:%d", port);
    return s_request_at (address, method, path, fd_used);
}

static ep_http_t *
s_server (ep_metrics_t *metrics)
{
    ep_http_t *http = ep_http_new ("127.0.0.1:0", metrics);
    cr_assert_not_null (http);
    cr_assert_gt (ep_http_port (http), 0);
    return http;
}

Test (http, health_and_readiness)
{
    ep_metrics_t *metrics = ep_metrics_new ("httptest");
    ep_http_t *http = s_server (metrics);
    int port = ep_http_port (http);

    reply_t r = s_request (port, "GET", "/healthz", NULL);
    cr_assert_eq (r.status, 200);
    cr_assert_str_eq (r.body, "ok\n");
    s_reply_free (&r);

    //  Not ready until told so; the reason is shown.
    r = s_request (port, "GET", "/readyz", NULL);
    cr_assert_eq (r.status, 503);
    cr_assert_str_eq (r.body, "not ready: starting\n");
    s_reply_free (&r);

    ep_http_set_ready (http, false, "database not open");
    r = s_request (port, "GET", "/readyz", NULL);
    cr_assert_eq (r.status, 503);
    cr_assert_str_eq (r.body, "not ready: database not open\n");
    s_reply_free (&r);

    ep_http_set_ready (http, true, NULL);
    r = s_request (port, "GET", "/readyz", NULL);
    cr_assert_eq (r.status, 200);
    cr_assert_str_eq (r.body, "ready\n");
    s_reply_free (&r);

    ep_http_destroy (&http);
    cr_assert_null (http);
    ep_metrics_destroy (&metrics);
}

Test (http, metrics_endpoint)
{
    ep_metrics_t *metrics = ep_metrics_new ("httptest");
    ep_metrics_request_done (metrics, "get", "NOT_FOUND", 0.2);
    ep_http_t *http = s_server (metrics);
    int port = ep_http_port (http);

    reply_t r = s_request (port, "GET", "/metrics", NULL);
    cr_assert_eq (r.status, 200);
    cr_assert (strstr (r.head, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8"),
               "%s", r.head);
    cr_assert (strstr (r.body, "edgeplane_build_info{service=\"httptest\""), "%s", r.body);
    cr_assert (strstr (r.body, "edgeplane_requests_total{op=\"get\",code=\"NOT_FOUND\"} 1\n"));
    s_reply_free (&r);

    //  HEAD: same status and headers, no body.
    r = s_request (port, "HEAD", "/metrics", NULL);
    cr_assert_eq (r.status, 200);
    cr_assert_str_eq (r.body, "");
    s_reply_free (&r);

    ep_http_destroy (&http);
    ep_metrics_destroy (&metrics);
}

Test (http, unknown_path_and_method)
{
    ep_metrics_t *metrics = ep_metrics_new ("httptest");
    ep_http_t *http = s_server (metrics);
    int port = ep_http_port (http);

    reply_t r = s_request (port, "GET", "/nope", NULL);
    cr_assert_eq (r.status, 404);
    s_reply_free (&r);

    r = s_request (port, "DELETE", "/metrics", NULL);
    cr_assert_eq (r.status, 405);
    cr_assert (strstr (r.head, "\r\nAllow: GET, HEAD"), "%s", r.head);
    s_reply_free (&r);

    ep_http_destroy (&http);
    ep_metrics_destroy (&metrics);
}

Test (http, listen_addresses)
{
    ep_metrics_t *metrics = ep_metrics_new ("httptest");
    const char *bad [] = { "nonsense", "127.0.0.1", "127.0.0.1:", "127.0.0.1:99999",
                           "127.0.0.1:-1", "300.1.1.1:0", ":9101", "127.0.0.1:80x" };
    for (size_t i = 0; i < EP_COUNT (bad); i++)
        cr_assert_null (ep_http_new (bad [i], metrics), "accepted '%s'", bad [i]);
    cr_assert_null (ep_http_new (NULL, metrics));

    //  "*" is every interface, loopback included.
    ep_http_t *any = ep_http_new ("*:0", metrics);
    cr_assert_not_null (any);
    reply_t r = s_request (ep_http_port (any), "GET", "/healthz", NULL);
    cr_assert_eq (r.status, 200);
    s_reply_free (&r);

    //  A port in use is refused, not shared.
    char *taken = zsys_sprintf ("127.0.0.1:%d", ep_http_port (any));
    cr_assert_null (ep_http_new (taken, metrics));
    zstr_free (&taken);

    ep_http_destroy (&any);
    ep_metrics_destroy (&metrics);
}

Test (http, serves_on_ipv6_for_an_ipv6_address)
{
    //  Containers may have no IPv6 (test_addr covers listening on ::1).
    ep_addr_t loopback;
    cr_assert_eq (ep_addr_parse (&loopback, "[::1]:0", 0, NULL, 0), 0);
    int probe = ep_addr_listen (&loopback, 1, NULL, 0);
    if (probe < 0) {
        cr_skip_test ("this machine has no ::1");
        return;
    }
    close (probe);
    ep_metrics_t *metrics = ep_metrics_new ("httptest");
    ep_http_t *http = ep_http_new ("[::1]:0", metrics);
    cr_assert_not_null (http);
    char want [64];
    snprintf (want, sizeof want, "[::1]:%d", ep_http_port (http));
    cr_assert_str_eq (ep_http_address (http), want);
    reply_t r = s_request_at (ep_http_address (http), "GET", "/healthz", NULL);
    cr_assert_eq (r.status, 200);
    cr_assert_str_eq (r.body, "ok\n");
    s_reply_free (&r);
    ep_http_destroy (&http);
    ep_metrics_destroy (&metrics);
}

//  The acceptance test: with more than 1,100 descriptors open, the server's
//  sockets get numbers past 1024, and /metrics must still answer.
Test (http, serves_past_fd_1024)
{
    struct rlimit limit;
    cr_assert_eq (getrlimit (RLIMIT_NOFILE, &limit), 0);
    if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < 1200)
        cr_skip_test ("RLIMIT_NOFILE hard limit is %lu; need at least 1200 "
                      "(raise it with ulimit -Hn)", (unsigned long) limit.rlim_max);
    limit.rlim_cur = limit.rlim_max == RLIM_INFINITY? 4096: limit.rlim_max;
    cr_assert_eq (setrlimit (RLIMIT_NOFILE, &limit), 0);

    int null_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
    cr_assert_geq (null_fd, 0);
    int fillers [1150];
    for (size_t i = 0; i < EP_COUNT (fillers); i++) {
        fillers [i] = fcntl (null_fd, F_DUPFD_CLOEXEC, 0);
        cr_assert_geq (fillers [i], 0);
    }
    //  Descriptors are allocated lowest first: whatever opens next is past 1024.
    int probe = dup (null_fd);
    cr_assert_gt (probe, 1024);
    close (probe);

    ep_metrics_t *metrics = ep_metrics_new ("manyfds");
    ep_http_t *http = s_server (metrics);
    int client_fd;
    reply_t r = s_request (ep_http_port (http), "GET", "/metrics", &client_fd);
    cr_assert_gt (client_fd, 1024);
    cr_assert_eq (r.status, 200);
    char *line = strstr (r.body, "\nprocess_open_fds ");
    cr_assert_not_null (line, "%s", r.body);
    double open_fds = strtod (line + strlen ("\nprocess_open_fds "), NULL);
    cr_assert_gt (open_fds, 1100);
    s_reply_free (&r);

    ep_http_destroy (&http);
    ep_metrics_destroy (&metrics);
    for (size_t i = 0; i < EP_COUNT (fillers); i++)
        close (fillers [i]);
    close (null_fd);
}

//  A handler with one route of its own, as the console has.
static bool
s_own_route (void *arg, struct MHD_Connection *connection, const char *url, const char *method,
             const char *upload_data, size_t *upload_data_size, void **con_cls, int *result)
{
    (void) arg; (void) method; (void) upload_data; (void) upload_data_size; (void) con_cls;
    if (!streq (url, "/own"))
        return false;
    static char body [] = "mine\n";
    struct MHD_Response *response = MHD_create_response_from_buffer (strlen (body), body, MHD_RESPMEM_PERSISTENT);
    *result = MHD_queue_response (connection, MHD_HTTP_OK, response);
    MHD_destroy_response (response);
    return true;
}

//  At the descriptor limit (fewer than EP_FDLIMIT_HEADROOM free once the
//  connection is accepted) the process's own routes answer 503 with the
//  reason and are counted; /metrics, /healthz and /readyz still answer;
//  with descriptors free again the route answers.
Test (http, own_routes_refused_at_the_descriptor_limit_and_served_after)
{
    struct rlimit limit = { 256, 256 };
    cr_assert_eq (setrlimit (RLIMIT_NOFILE, &limit), 0);
    ep_metrics_t *metrics = ep_metrics_new ("limit");
    ep_http_t *http = s_server (metrics);
    ep_http_set_handler (http, s_own_route, NULL);
    int port = ep_http_port (http);

    //  Every descriptor taken, then four given back: the client's socket
    //  and the accepted one leave two free.
    int fillers [256], count = 0;
    while (count < (int) EP_COUNT (fillers) && (fillers [count] = open ("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
        count++;
    cr_assert_eq (errno, EMFILE);
    cr_assert_geq (count, 4);
    for (int i = 0; i < 4; i++)
        close (fillers [--count]);

    reply_t r = s_request (port, "GET", "/own", NULL);
    cr_assert_eq (r.status, 503, "%s", r.head? r.head: "no reply");
    cr_assert (strstr (r.body, "descriptor limit"), "%s", r.body);
    cr_assert (strstr (r.head, "\r\nRetry-After: "), "%s", r.head);
    s_reply_free (&r);
    cr_assert_eq (ep_fdlimit_refusals (EP_FDLIMIT_HTTP), 1);
    r = s_request (port, "GET", "/metrics", NULL);
    cr_assert_eq (r.status, 200);
    cr_assert (strstr (r.body, "\nedgeplane_fd_limit_refusals_total{what=\"http\"} 1\n"), "%s", r.body);
    s_reply_free (&r);

    while (count > 0)
        close (fillers [--count]);
    r = s_request (port, "GET", "/own", NULL);
    cr_assert_eq (r.status, 200);
    cr_assert_str_eq (r.body, "mine\n");
    s_reply_free (&r);
    cr_assert_eq (ep_fdlimit_refusals (EP_FDLIMIT_HTTP), 1);
    ep_http_destroy (&http);
    ep_metrics_destroy (&metrics);
}
