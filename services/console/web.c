/*  web.c: the console's routes on libmicrohttpd (web.h). */
#include "web.h"
#include "ep_config.h"
#include <microhttpd.h>
#include <sys/socket.h>

//  The page, from page.html at build time (cmake/embed.cmake).
extern const unsigned char console_page [];
extern const size_t console_page_size;

#define JSON_TYPE   "application/json"
#define STREAM_SNDBUF   (64 * 1024)     //  a stream's kernel send buffer, bytes
#define PAGE_POLICY "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; " \
                    "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; " \
                    "frame-ancestors 'none'"

struct _web_t {
    ep_http_t *http;            //  the server, not owned
    console_t *console;         //  what we serve, not owned
    access_t *access;           //  who may read it, not owned
};

void
web_sleep (void *arg, void *handle)
{
    (void) arg;
    MHD_suspend_connection ((struct MHD_Connection *) handle);
}

void
web_wake (void *arg, void *handle)
{
    (void) arg;
    MHD_resume_connection ((struct MHD_Connection *) handle);
}

static int
s_queue (struct MHD_Connection *connection, unsigned int status, const char *type,
         void *body, size_t size, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *response = MHD_create_response_from_buffer (size, body, mode);
    if (!response)
        return MHD_NO;
    if (type)
        MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header (response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header (response, "X-Content-Type-Options", "nosniff");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header (response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD, POST");
    if (type && streq (type, "text/html; charset=utf-8")) {
        MHD_add_response_header (response, "Content-Security-Policy", PAGE_POLICY);
        MHD_add_response_header (response, "X-Frame-Options", "DENY");
    }
    int rc = MHD_queue_response (connection, status, response);
    MHD_destroy_response (response);
    return rc;
}

//  A refusal: 401 and nothing else.
static int
s_refuse (struct MHD_Connection *connection)
{
    return s_queue (connection, MHD_HTTP_UNAUTHORIZED, NULL, (void *) "", 0, MHD_RESPMEM_PERSISTENT);
}

static int
s_json (struct MHD_Connection *connection, unsigned int status, char *text)
{
    if (!text)
        return MHD_NO;
    return s_queue (connection, status, JSON_TYPE, text, strlen (text), MHD_RESPMEM_MUST_FREE);
}

static int
s_error (struct MHD_Connection *connection, unsigned int status, const char *message)
{
    json_t *error = json_pack ("{s:s}", "error", message);
    char *text = json_dumps (error, JSON_COMPACT);
    json_decref (error);
    return s_json (connection, status, text);
}

typedef struct {
    ep_evmatch_t *match;        //  being built
    char err [256];             //  the first error
    int rc;                     //  0 or -1
} s_filter_t;

//  Query parameters other than these two are event filters.
static enum MHD_Result
s_filter_arg (void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void) kind;
    s_filter_t *filter = (s_filter_t *) cls;
    if (filter->rc == 0 && key && !streq (key, "last_event_id") && !streq (key, "window"))
        filter->rc = ep_evmatch_add (filter->match, key, value? value: "", filter->err, sizeof filter->err);
    return MHD_YES;
}

//  The content reader of a stream: what the hub has, or sleep, or end.
static ssize_t
s_stream_read (void *cls, uint64_t pos, char *buffer, size_t max)
{
    (void) pos;
    hub_t *hub = *(hub_t **) cls;
    hub_stream_t *stream = ((hub_stream_t **) cls) [1];
    size_t copied = 0;
    hub_read_t result = hub_read (hub, stream, buffer, max, &copied);
    if (result == HUB_DATA)
        return (ssize_t) copied;
    if (result == HUB_EMPTY)
        return 0;               //  suspended until the hub wakes us
    return MHD_CONTENT_READER_END_OF_STREAM;
}

static void
s_stream_free (void *cls)
{
    void **pair = (void **) cls;
    hub_stream_t *stream = (hub_stream_t *) pair [1];
    hub_close ((hub_t *) pair [0], &stream);
    free (pair);
}

static int
s_events (web_t *self, struct MHD_Connection *connection)
{
    s_filter_t filter = { ep_evmatch_new (), "", 0 };
    MHD_get_connection_values (connection, MHD_GET_ARGUMENT_KIND, s_filter_arg, &filter);
    if (filter.rc != 0) {
        ep_evmatch_destroy (&filter.match);
        return s_error (connection, MHD_HTTP_BAD_REQUEST, filter.err);
    }
    const char *last = MHD_lookup_connection_value (connection, MHD_HEADER_KIND, "Last-Event-ID");
    if (!last)
        last = MHD_lookup_connection_value (connection, MHD_GET_ARGUMENT_KIND, "last_event_id");
    //  The kernel's send buffer would otherwise hold megabytes for a reader
    //  that stopped (autotuning): keep what the bound does not see small.
    const union MHD_ConnectionInfo *info = MHD_get_connection_info (connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    int sndbuf = STREAM_SNDBUF;
    if (info)
        setsockopt (info->connect_fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    hub_t *hub = console_hub (self->console);
    void **pair = (void **) calloc (2, sizeof (void *));
    pair [0] = hub;
    pair [1] = hub_open (hub, ep_evmatch_fields (filter.match)? filter.match: NULL,
                         last, connection, ep_mono_ms ());
    if (!ep_evmatch_fields (filter.match))
        ep_evmatch_destroy (&filter.match);
    struct MHD_Response *response = MHD_create_response_from_callback (
        MHD_SIZE_UNKNOWN, 32 * 1024, s_stream_read, pair, s_stream_free);
    if (!response) {
        s_stream_free (pair);
        return MHD_NO;
    }
    MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header (response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header (response, "X-Accel-Buffering", "no");
    int rc = MHD_queue_response (connection, MHD_HTTP_OK, response);
    MHD_destroy_response (response);
    return rc;
}

static int
s_stats (web_t *self, struct MHD_Connection *connection)
{
    const char *window = MHD_lookup_connection_value (connection, MHD_GET_ARGUMENT_KIND, "window");
    int64_t window_ms = 3600000;
    if (window && (ep_duration_parse (window, &window_ms) != 0 || window_ms <= 0 || window_ms > 3600000))
        return s_error (connection, MHD_HTTP_BAD_REQUEST,
                        "invalid window: give a duration up to 1h, e.g. window=15m");
    return s_json (connection, MHD_HTTP_OK, console_stats_text (self->console, ep_wall_ms (), window_ms));
}

static int
s_login (web_t *self, struct MHD_Connection *connection)
{
    const char *authorization = MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                                             MHD_HTTP_HEADER_AUTHORIZATION);
    if (!access_token_required (self->access))
        return s_queue (connection, MHD_HTTP_NO_CONTENT, NULL, (void *) "", 0, MHD_RESPMEM_PERSISTENT);
    if (!access_bearer_ok (self->access, authorization))
        return s_refuse (connection);
    struct MHD_Response *response = MHD_create_response_from_buffer (0, (void *) "", MHD_RESPMEM_PERSISTENT);
    if (!response)
        return MHD_NO;
    MHD_add_response_header (response, MHD_HTTP_HEADER_SET_COOKIE, access_set_cookie (self->access));
    MHD_add_response_header (response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    int rc = MHD_queue_response (connection, MHD_HTTP_NO_CONTENT, response);
    MHD_destroy_response (response);
    return rc;
}

static bool
s_handle (void *arg, struct MHD_Connection *connection, const char *url, const char *method,
          const char *upload_data, size_t *upload_data_size, void **con_cls, int *result)
{
    (void) upload_data;
    web_t *self = (web_t *) arg;
    if (streq (url, "/healthz") || streq (url, "/readyz"))
        return false;           //  nothing to read there: probes need no token
    //  Answered on the first call; a body (a login's) is ignored.
    if (*con_cls) {
        *upload_data_size = 0;
        *result = MHD_YES;
        return true;
    }
    *con_cls = (void *) self;
    const char *host = MHD_lookup_connection_value (connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    const char *authorization = MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                                             MHD_HTTP_HEADER_AUTHORIZATION);
    const char *cookie = MHD_lookup_connection_value (connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_COOKIE);
    bool get = streq (method, MHD_HTTP_METHOD_GET) || streq (method, MHD_HTTP_METHOD_HEAD);
    bool login = streq (url, "/api/login") && streq (method, MHD_HTTP_METHOD_POST);
    //  The page is static and holds no data: it is what shows the sign-in
    //  form that exchanges the token for the cookie, so it needs neither.
    bool page = get && (streq (url, "/") || streq (url, "/index.html"));
    if (!access_host_ok (self->access, host)
    ||  (!login && !page && !access_allowed (self->access, authorization, cookie)))
        *result = s_refuse (connection);
    else
    if (login)
        *result = s_login (self, connection);
    else
    if (!get)
        *result = s_error (connection, MHD_HTTP_METHOD_NOT_ALLOWED,
                           "the console is read-only: use GET (POST only for /api/login)");
    else
    if (streq (url, "/") || streq (url, "/index.html"))
        *result = s_queue (connection, MHD_HTTP_OK, "text/html; charset=utf-8",
                           (void *) console_page, console_page_size, MHD_RESPMEM_PERSISTENT);
    else
    if (streq (url, "/api/fleet"))
        *result = s_json (connection, MHD_HTTP_OK, console_fleet_text (self->console, ep_wall_ms ()));
    else
    if (streq (url, "/api/events"))
        *result = s_events (self, connection);
    else
    if (streq (url, "/api/stats"))
        *result = s_stats (self, connection);
    else
    if (streq (url, "/metrics"))
        return false;
    else
        *result = s_error (connection, MHD_HTTP_NOT_FOUND,
                           "not found: try /, /api/fleet, /api/events, /api/stats, /metrics");
    return true;
}

web_t *
web_new (ep_http_t *http, console_t *console, access_t *access)
{
    web_t *self = (web_t *) zmalloc (sizeof (web_t));
    self->http = http;
    self->console = console;
    self->access = access;
    ep_http_set_handler (http, s_handle, self);
    return self;
}

void
web_destroy (web_t **self_p)
{
    web_t *self = *self_p;
    if (self) {
        ep_http_set_handler (self->http, NULL, NULL);
        free (self);
        *self_p = NULL;
    }
}

int
web_check (access_t *access, const char *host, const char *authorization, const char *cookie,
           const char *query, const char *last_event_id)
{
    if (!access_host_ok (access, host) || !access_allowed (access, authorization, cookie))
        return 401;
    int status = 200;
    ep_evmatch_t *match = ep_evmatch_new ();
    char *copy = strdup (query? query: ""), *save = NULL;
    for (char *pair = strtok_r (copy, "&", &save); pair && status == 200; pair = strtok_r (NULL, "&", &save)) {
        char *equals = strchr (pair, '=');
        if (equals)
            *equals = 0;
        if (ep_evmatch_add (match, pair, equals? equals + 1: "", NULL, 0) != 0)
            status = 400;
    }
    free (copy);
    uint64_t epoch, seq;
    if (last_event_id)
        (void) hub_parse_id (last_event_id, &epoch, &seq);
    ep_evmatch_destroy (&match);
    return status;
}
