/*  test_console_view.c: the console's fleet view, per-minute aggregates
    and access rules (services/console: cfleet, stats, access), without
    sockets. */
#include <criterion/criterion.h>
#include "cfleet.h"
#include "stats.h"
#include "access.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define T0 1796594970000        //  a wall-clock time, ms

static json_t *
s_router (json_t *fleet, const char *id)
{
    size_t index;
    json_t *router;
    json_array_foreach (json_object_get (fleet, "routers"), index, router)
        if (streq (json_string_value (json_object_get (router, "id")), id))
            return router;
    return NULL;
}

static void
s_event (cfleet_t *fleet, stats_t *stats, int64_t wall, const char *json)
{
    json_t *event = json_loads (json, 0, NULL);
    cr_assert_not_null (event, "%s", json);
    if (fleet)
        cfleet_event (fleet, event, wall);
    if (stats)
        stats_event (stats, event, wall);
    json_decref (event);
}

Test (console_view, routers_from_the_model_and_presence)
{
    cfleet_t *fleet = cfleet_new ();
    cfleet_model_router (fleet, "r1", "one", true, true);
    cfleet_model_router (fleet, "r2", "two", false, true);
    cfleet_set_revision (fleet, 14, "g1");
    s_event (fleet, NULL, T0, "{\"namespace\":\"presence\",\"type\":\"beacon\",\"instance_id\":\"w1\","
             "\"api_address\":\"tcp://127.0.0.1:7031\",\"routers\":[\"r1\",\"r9\"]}");
    json_t *view = cfleet_json (fleet, T0);
    cr_assert_eq (json_integer_value (json_object_get (view, "revision")), 14);
    cr_assert_eq (json_array_size (json_object_get (view, "routers")), 3, "r1, r2 and r9 (online, not in the model)");
    json_t *r1 = s_router (view, "r1"), *r2 = s_router (view, "r2"), *r9 = s_router (view, "r9");
    cr_assert (json_is_true (json_object_get (r1, "online")));
    cr_assert_str_eq (json_string_value (json_object_get (r1, "instance")), "w1");
    cr_assert (json_is_false (json_object_get (r2, "online")));
    cr_assert (json_is_false (json_object_get (r2, "enabled")));
    cr_assert (json_is_false (json_object_get (r9, "in_model")));
    cr_assert_eq (json_array_size (json_object_get (view, "members")), 1);
    json_decref (view);
    zhashx_t *instances = cfleet_instances (fleet);
    cr_assert_str_eq ((char *) zhashx_lookup (instances, "w1"), "tcp://127.0.0.1:7031");
    zhashx_destroy (&instances);

    //  Leave: offline, a disconnect recorded; r9 leaves and is forgotten.
    s_event (fleet, NULL, T0 + 10, "{\"namespace\":\"presence\",\"type\":\"leave\",\"instance_id\":\"w1\",\"routers\":[\"r1\"]}");
    s_event (fleet, NULL, T0 + 10, "{\"namespace\":\"presence\",\"type\":\"leave\",\"instance_id\":\"w1\",\"routers\":[\"r9\"]}");
    cfleet_model_router (fleet, "r2", NULL, false, false);
    view = cfleet_json (fleet, T0 + 20);
    r1 = s_router (view, "r1");
    cr_assert (json_is_false (json_object_get (r1, "online")));
    cr_assert_eq (json_array_size (json_object_get (r1, "disconnects_ms")), 1);
    cr_assert_null (s_router (view, "r9"));
    cr_assert_null (s_router (view, "r2"), "deleted from the model and offline: gone");
    json_decref (view);

    //  A silent instance's routers go offline after the timeout.
    s_event (fleet, NULL, T0 + 100, "{\"namespace\":\"presence\",\"type\":\"join\",\"instance_id\":\"w1\",\"routers\":[\"r1\"]}");
    cfleet_expire (fleet, T0 + 1000, 5000);
    view = cfleet_json (fleet, T0 + 1000);
    cr_assert (json_is_true (json_object_get (s_router (view, "r1"), "online")));
    json_decref (view);
    cfleet_expire (fleet, T0 + 6000, 5000);
    view = cfleet_json (fleet, T0 + 6000);
    cr_assert (json_is_false (json_object_get (s_router (view, "r1"), "online")));
    cr_assert_eq (json_array_size (json_object_get (view, "members")), 0);
    json_decref (view);
    cfleet_destroy (&fleet);
}

Test (console_view, terminators_sessions_strays_refusals_and_rtt)
{
    cfleet_t *fleet = cfleet_new ();
    cfleet_model_router (fleet, "r1", "one", true, true);
    s_event (fleet, NULL, T0, "{\"namespace\":\"presence\",\"type\":\"beacon\",\"instance_id\":\"w1\",\"routers\":[\"r1\"]}");
    s_event (fleet, NULL, T0, "{\"namespace\":\"terminator\",\"type\":\"created\",\"terminator_id\":\"t1\",\"router_id\":\"r1\"}");
    s_event (fleet, NULL, T0, "{\"namespace\":\"terminator\",\"type\":\"established\",\"terminator_id\":\"t1\",\"router_id\":\"r1\"}");
    s_event (fleet, NULL, T0, "{\"namespace\":\"terminator\",\"type\":\"created\",\"terminator_id\":\"t2\",\"router_id\":\"r1\"}");
    s_event (fleet, NULL, T0, "{\"namespace\":\"terminator\",\"type\":\"deleted\",\"terminator_id\":\"t2\",\"router_id\":\"r1\"}");
    s_event (fleet, NULL, T0, "{\"namespace\":\"terminator\",\"type\":\"spin\",\"terminator_id\":\"t3\",\"router_id\":\"r1\"}");
    s_event (fleet, NULL, T0, "{\"namespace\":\"session\",\"type\":\"created\",\"session_id\":\"s1\",\"router_id\":\"r1\"}");
    s_event (fleet, NULL, T0, "{\"namespace\":\"session\",\"type\":\"created\",\"session_id\":\"s2\",\"router_id\":\"r1\"}");
    s_event (fleet, NULL, T0, "{\"namespace\":\"session\",\"type\":\"reaped\",\"session_id\":\"s1\",\"router_id\":\"r1\"}");
    s_event (fleet, NULL, T0, "{\"namespace\":\"stray\",\"type\":\"detected\",\"remote_addr\":\"10.1.2.3:4000\",\"step\":\"await-hello\"}");
    s_event (fleet, NULL, T0, "{\"namespace\":\"channel\",\"type\":\"refused\",\"remote_addr\":\"[2001:db8::1]:4000\",\"reason\":\"certificate-mismatch\"}");
    json_t *connections = json_loads ("[{\"role\":\"router\",\"id\":\"r1\",\"rtt_ms\":1.5,\"jitter_ms\":0.25,"
                                      "\"remote_addr\":\"127.0.0.1:5000\"}]", 0, NULL);
    cfleet_connections (fleet, "w1", connections, T0);
    json_decref (connections);
    json_t *view = cfleet_json (fleet, T0);
    json_t *r1 = s_router (view, "r1");
    cr_assert_eq (json_integer_value (json_object_get (r1, "terminators")), 2, "t1 and the spinning t3");
    cr_assert_eq (json_integer_value (json_object_get (r1, "sessions")), 1);
    cr_assert_float_eq (json_real_value (json_object_get (r1, "rtt_ms")), 1.5, 1e-9);
    cr_assert_float_eq (json_real_value (json_object_get (r1, "jitter_ms")), 0.25, 1e-9);
    cr_assert_eq (json_array_size (json_object_get (r1, "rtt_trend_ms")), 1);
    cr_assert_eq (json_integer_value (json_object_get (json_object_get (view, "terminators"), "spins")), 1);
    json_t *strays = json_object_get (view, "strays"), *refusals = json_object_get (view, "refusals");
    cr_assert_eq (json_integer_value (json_object_get (json_object_get (strays, "by_source"), "10.1.2.3")), 1);
    cr_assert_eq (json_array_size (json_object_get (strays, "recent")), 1);
    cr_assert_eq (json_integer_value (json_object_get (json_object_get (refusals, "by_source"), "[2001:db8::1]")), 1);
    cr_assert_eq (json_integer_value (json_object_get (json_object_get (refusals, "by_reason"), "certificate-mismatch")), 1);
    cr_assert_eq (json_array_size (json_object_get (view, "connections")), 1);
    json_decref (view);
    cfleet_destroy (&fleet);
}

Test (console_view, recent_lists_and_source_counts_are_bounded)
{
    cfleet_t *fleet = cfleet_new ();
    for (int i = 0; i < CFLEET_MAX_SOURCES + 50; i++) {
        char json [200];
        snprintf (json, sizeof json, "{\"namespace\":\"stray\",\"type\":\"detected\",\"remote_addr\":\"10.0.%d.%d:1\"}",
                  i / 250, i % 250);
        s_event (fleet, NULL, T0, json);
    }
    json_t *view = cfleet_json (fleet, T0);
    json_t *strays = json_object_get (view, "strays");
    cr_assert_eq (json_array_size (json_object_get (strays, "recent")), CFLEET_RECENT);
    cr_assert_eq (json_object_size (json_object_get (strays, "by_source")), CFLEET_MAX_SOURCES);
    cr_assert_eq (json_integer_value (json_object_get (view, "overflow")), 50);
    json_decref (view);
    cfleet_destroy (&fleet);
}

//  Fewer minutes kept (--stats-minutes): a window is cut to them, and an
//  older minute's bucket is reused, so the memory stops growing there.
Test (console_view, stats_keep_only_the_minutes_configured)
{
    stats_t *stats = stats_new (2);
    int64_t minute = (T0 / 60000) * 60000;
    for (int m = 0; m < 3; m++)
        s_event (NULL, stats, minute + m * 60000 + 1000, "{\"namespace\":\"session\",\"type\":\"created\"}");
    json_t *document = stats_json (stats, minute + 2 * 60000 + 1000, 3600000);
    json_t *minutes = json_object_get (document, "minutes");
    cr_assert_eq (json_array_size (minutes), 2);
    cr_assert_eq (json_integer_value (json_object_get (document, "window_ms")), 2 * 60000);
    json_t *first = json_array_get (minutes, 0);
    cr_assert_eq (json_integer_value (json_object_get (first, "minute_ms")), minute + 60000);
    cr_assert_eq (json_integer_value (json_object_get (first, "sessions_opened")), 1);
    json_decref (document);
    stats_destroy (&stats);
    stats = stats_new (0);          //  clamped to one
    document = stats_json (stats, minute, 3600000);
    cr_assert_eq (json_array_size (json_object_get (document, "minutes")), 1);
    json_decref (document);
    stats_destroy (&stats);
}

Test (console_view, stats_count_per_minute_with_breakdowns)
{
    stats_t *stats = stats_new (STATS_MINUTES);
    int64_t minute = (T0 / 60000) * 60000;
    s_event (NULL, stats, minute + 1000, "{\"namespace\":\"connect\",\"type\":\"router-to-ctrl\",\"src_type\":\"router\","
             "\"src_id\":\"r1\",\"src_addr\":\"10.0.0.1:5\",\"connected\":true}");
    s_event (NULL, stats, minute + 2000, "{\"namespace\":\"connect\",\"type\":\"router-to-ctrl\",\"src_type\":\"router\","
             "\"src_id\":\"r1\",\"src_addr\":\"10.0.0.1:5\",\"connected\":false,\"reason\":\"closed\"}");
    s_event (NULL, stats, minute + 3000, "{\"namespace\":\"stray\",\"type\":\"detected\",\"remote_addr\":\"10.9.9.9:1\",\"step\":\"await-hello\"}");
    s_event (NULL, stats, minute + 3000, "{\"namespace\":\"channel\",\"type\":\"refused\",\"remote_addr\":\"10.9.9.8:1\",\"reason\":\"unknown-router\"}");
    s_event (NULL, stats, minute + 4000, "{\"namespace\":\"session\",\"type\":\"created\"}");
    s_event (NULL, stats, minute + 4000, "{\"namespace\":\"session\",\"type\":\"closed\"}");
    s_event (NULL, stats, minute + 4000, "{\"namespace\":\"session\",\"type\":\"reaped\"}");
    s_event (NULL, stats, minute + 5000, "{\"namespace\":\"terminator\",\"type\":\"established\",\"router_id\":\"r1\"}");
    s_event (NULL, stats, minute + 5000, "{\"namespace\":\"terminator\",\"type\":\"spin\"}");
    //  The next minute.
    s_event (NULL, stats, minute + 61000, "{\"namespace\":\"session\",\"type\":\"created\"}");
    json_t *document = stats_json (stats, minute + 61000, 3600000);
    json_t *minutes = json_object_get (document, "minutes");
    cr_assert_eq (json_array_size (minutes), STATS_MINUTES);
    json_t *last = json_array_get (minutes, STATS_MINUTES - 1), *before = json_array_get (minutes, STATS_MINUTES - 2);
    cr_assert_eq (json_integer_value (json_object_get (last, "sessions_opened")), 1);
    cr_assert_eq (json_integer_value (json_object_get (before, "minute_ms")), minute);
    const char *totals [] = { "connects", "disconnects", "strays", "refusals", "sessions_opened", "sessions_closed",
                              "sessions_reaped", "terminator_transitions", "spins" };
    for (size_t i = 0; i < sizeof totals / sizeof totals [0]; i++)
        cr_assert_eq (json_integer_value (json_object_get (before, totals [i])), 1, "%s", totals [i]);
    json_t *by_router = json_object_get (before, "by_router"), *by_source = json_object_get (before, "by_source");
    json_t *by_reason = json_object_get (before, "by_reason");
    cr_assert_eq (json_integer_value (json_object_get (json_object_get (by_router, "connects"), "r1")), 1);
    cr_assert_eq (json_integer_value (json_object_get (json_object_get (by_source, "disconnects"), "10.0.0.1")), 1);
    cr_assert_eq (json_integer_value (json_object_get (json_object_get (by_source, "strays"), "10.9.9.9")), 1);
    cr_assert_eq (json_integer_value (json_object_get (json_object_get (by_reason, "refusals"), "unknown-router")), 1);
    cr_assert_eq (json_integer_value (json_object_get (json_object_get (by_reason, "strays"), "await-hello")), 1);
    json_decref (document);
    //  A 5-minute window has 5 minutes; an hour later the old ones are gone.
    document = stats_json (stats, minute + 61000, 300000);
    cr_assert_eq (json_array_size (json_object_get (document, "minutes")), 5);
    json_decref (document);
    document = stats_json (stats, minute + 3600000 + 61000, 3600000);
    minutes = json_object_get (document, "minutes");
    for (size_t i = 0; i < json_array_size (minutes); i++)
        cr_assert_eq (json_integer_value (json_object_get (json_array_get (minutes, i), "sessions_opened")), 0);
    json_decref (document);
    stats_destroy (&stats);
}

#define TOKEN "0123456789abcdef0123456789abcdef"

Test (console_view, access_checks_host_token_and_cookie)
{
    access_t *open = access_new ("localhost,127.0.0.1,[::1]", NULL);
    cr_assert (access_host_ok (open, "127.0.0.1:8080"));
    cr_assert (access_host_ok (open, "LOCALHOST"));
    cr_assert (access_host_ok (open, "[::1]:8080"));
    cr_assert_not (access_host_ok (open, "evil.example:8080"));
    cr_assert_not (access_host_ok (open, "127.0.0.1:80x"));
    cr_assert_not (access_host_ok (open, NULL));
    cr_assert (access_allowed (open, NULL, NULL), "no token required on loopback");
    cr_assert_null (access_set_cookie (open));
    access_destroy (&open);

    access_t *locked = access_new ("console.example", TOKEN);
    cr_assert_not (access_allowed (locked, NULL, NULL));
    cr_assert (access_allowed (locked, "Bearer " TOKEN, NULL));
    cr_assert (access_allowed (locked, "bearer  " TOKEN " ", NULL));
    cr_assert_not (access_allowed (locked, "Bearer " TOKEN "x", NULL));
    cr_assert_not (access_allowed (locked, "Basic " TOKEN, NULL));
    const char *set_cookie = access_set_cookie (locked);
    cr_assert (strstr (set_cookie, "HttpOnly") && strstr (set_cookie, "SameSite=Strict"), "%s", set_cookie);
    cr_assert_null (strstr (set_cookie, TOKEN), "the cookie is not the token");
    char cookie [200];
    snprintf (cookie, sizeof cookie, "theme=dark; %.*s", (int) strcspn (set_cookie, ";"), set_cookie);
    cr_assert (access_allowed (locked, NULL, cookie), "%s", cookie);
    cookie [strlen (cookie) - 1] ^= 1;
    cr_assert_not (access_allowed (locked, NULL, cookie));
    cr_assert_not (access_allowed (locked, NULL, "edgeplane_console="));
    access_destroy (&locked);
}

Test (console_view, token_files_are_checked)
{
    char path [] = "/tmp/console-token-XXXXXX";
    int fd = mkstemp (path);
    cr_assert_geq (fd, 0);
    cr_assert_eq (write (fd, TOKEN "\n", strlen (TOKEN) + 1), (ssize_t) strlen (TOKEN) + 1);
    close (fd);
    char err [300];
    char *token = access_token_read (path, err, sizeof err);
    cr_assert_str_eq (token, TOKEN);
    free (token);
    fd = open (path, O_WRONLY | O_TRUNC);
    cr_assert_eq (write (fd, "short\n", 6), 6);
    close (fd);
    cr_assert_null (access_token_read (path, err, sizeof err));
    cr_assert (strstr (err, "pki init"), "%s", err);
    unlink (path);
    cr_assert_null (access_token_read (path, err, sizeof err));
}

Test (console_view, only_loopback_binds_are_loopback)
{
    cr_assert (access_loopback ("127.0.0.1:8080"));
    cr_assert (access_loopback ("127.1.2.3:0"));
    cr_assert (access_loopback ("[::1]:8080"));
    cr_assert_not (access_loopback ("0.0.0.0:8080"));
    cr_assert_not (access_loopback ("*:8080"));
    cr_assert_not (access_loopback ("[::]:8080"));
    cr_assert_not (access_loopback ("192.0.2.1:8080"));
    cr_assert_not (access_loopback ("nonsense"));
    cr_assert_not (access_loopback (NULL));
}
