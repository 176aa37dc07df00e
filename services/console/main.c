/*  edgeplane-console: the fleet, its connections and its events over HTTP.

    One loop on the bus side: every event into the fleet view, the
    aggregates and the streams; the model followed; every --poll each
    watchdog heard in the beacons asked for its connections. libmicrohttpd
    serves the routes (web.h) from its own thread; a stream waits suspended
    and the bus side wakes it. Read-only: the certificate's role is viewer.
    docs/console.md is the contract.
*/
#include "ep_service.h"
#include "ep_codec.h"
#include "ep_event_json.h"
#include "ep_links.h"
#include "ep_model_view.h"
#include "ep_rpc_client.h"
#include "ep_subscriber.h"
#include "access.h"
#include "console.h"
#include "web.h"
#include "channel.pb-c.h"
#include <sodium.h>

typedef struct {
    ep_service_t *service;      //  shared process scaffolding
    console_t *console;         //  what we know and stream
    ep_subscriber_t *events;    //  the whole bus
    ep_model_view_t *view;      //  the model, as followed
    ep_follower_t *follower;    //  keeps view current
    char *watchdog_key;         //  the watchdogs' public key
    ep_series_t *taken;         //  edgeplane_console_events_total
    ep_series_t *streams;       //  edgeplane_console_streams
    ep_series_t *dropped;       //  edgeplane_console_streams_dropped_total
    uint64_t dropped_seen;      //  hub_dropped when last counted
} s_main_t;

static void
s_on_model (void *arg, const ep_model_event_t *event)
{
    s_main_t *self = (s_main_t *) arg;
    if (event->type != EP__ENTITY_TYPE__ENTITY_ROUTER)
        return;
    const Ep__Router *router = event->after? event->after->router: NULL;
    console_router (self->console, event->id, router? router->name: NULL,
                    router && router->has_enabled? router->enabled: true, router != NULL);
}

//  Asks each watchdog instance for its connections (a blocking call each,
//  bounded by timeout_ms: the bus socket queues meanwhile).
static void
s_poll_watchdogs (s_main_t *self, int timeout_ms)
{
    zhashx_t *instances = console_instances (self->console);
    for (const char *api = (const char *) zhashx_first (instances); api;
         api = (const char *) zhashx_next (instances)) {
        const char *instance = (const char *) zhashx_cursor (instances);
        ep_rpc_client_t *client = ep_rpc_client_new (api, ep_service_cert (self->service), self->watchdog_key);
        if (!client)
            continue;
        char id [33], err [256];
        ep_rpc_new_id (id);
        Ep__ConnectionFilter filter = EP__CONNECTION_FILTER__INIT;
        Ep__WatchdogRequest request = EP__WATCHDOG_REQUEST__INIT;
        request.request_id = id;
        request.op_case = EP__WATCHDOG_REQUEST__OP_LIST;
        request.list = &filter;
        Ep__WatchdogReply *reply = (Ep__WatchdogReply *) ep_rpc_client_call (
            client, &request.base, id, &ep__watchdog_reply__descriptor, timeout_ms, 1, err, sizeof err);
        if (reply && (!reply->status || reply->status->code == EP__STATUS__CODE__OK)) {
            json_t *list = json_array ();
            for (size_t i = 0; i < reply->n_connections; i++)
                json_array_append_new (list, ep_message_json (&reply->connections [i]->base));
            console_connections (self->console, instance, list, ep_wall_ms ());
            json_decref (list);
        }
        else
            ep_log_debug ("watchdog %s at %s did not list its connections: %s", instance, api, reply? "refused": err);
        ep__watchdog_reply__free_unpacked (reply, NULL);      //  NULL-safe
        ep_rpc_client_destroy (&client);
    }
    zhashx_destroy (&instances);
}

//  Everything waiting on the bus socket, into the console.
static void
s_bus (s_main_t *self)
{
    char *topic = NULL;
    while ((zsock_events (ep_subscriber_socket (self->events)) & ZMQ_POLLIN)) {
        Ep__Event *event = ep_subscriber_read (self->events, &topic);
        if (event) {
            int64_t wall = event->meta && event->meta->has_timestamp_ms? event->meta->timestamp_ms: ep_wall_ms ();
            console_event (self->console, topic, event, wall, ep_mono_ms ());
            ep_series_add (self->taken, 1);
        }
        zstr_free (&topic);
    }
    ep_subscriber_tick (self->events);
    hub_t *hub = console_hub (self->console);
    uint64_t dropped = hub_dropped (hub);
    ep_series_add (self->dropped, (double) (dropped - self->dropped_seen));
    self->dropped_seen = dropped;
    ep_series_set (self->streams, (double) hub_streams (hub));
}

static void
s_metrics (s_main_t *self)
{
    ep_metrics_t *metrics = ep_service_metrics (self->service);
    self->taken = ep_counter_series (ep_metrics_counter (metrics, "edgeplane_console_events_total",
        "Events the console took from the bus (the last event id's sequence number).", 0, NULL), NULL);
    self->streams = ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_console_streams",
        "Event streams (GET /api/events) open.", 0, NULL), NULL);
    self->dropped = ep_counter_series (ep_metrics_counter (metrics, "edgeplane_console_streams_dropped_total",
        "Event streams dropped because their reader fell behind by the --stream-buffer bound.", 0, NULL), NULL);
}

//  The bus (everything on it) and the model, with the viewer certificate.
static int
s_connect (s_main_t *self, size_t window)
{
    const ep_common_opts_t *common = ep_service_opts (self->service);
    self->watchdog_key = ep_keys_public_txt (common->keys_dir, "watchdog");
    if (!self->watchdog_key)
        return -1;
    self->view = ep_model_view_new ();
    ep_model_view_set_observer (self->view, s_on_model, self);
    ep_links_config_t config = {
        .label = "events", .dedupe_window = (int64_t) window, .view = self->view
    };
    ep_links_t links;
    if (ep_links_open (&links, self->service, &config) != 0)
        return -1;
    self->events = links.subscriber;
    self->follower = links.follower;
    ep_subscriber_subscribe (self->events, "");
    return 0;
}

int
main (int argc, char **argv)
{
    static char *hosts, *token_file;
    static int64_t stream_bytes, ring_events, keepalive, poll_ms, presence, minutes, dedupe_window;
    ep_opt_t opts [] = {
        { .name = "hosts", .env = "EDGEPLANE_CONSOLE_HOSTS", .def = "localhost,127.0.0.1,[::1]",
          .type = EP_OPT_STRING, .str = &hosts,
          .help = "Names the Host header may carry (comma-separated; add the name users type)." },
        { .name = "token-file", .env = "EDGEPLANE_CONSOLE_TOKEN_FILE", .type = EP_OPT_STRING, .str = &token_file,
          .def_help = "$EDGEPLANE_KEYS_DIR/console.token",
          .help = "The access token, required when --http-listen is not loopback." },
        { .name = "stream-buffer", .env = "EDGEPLANE_CONSOLE_STREAM_BYTES", .def = "1048576", .type = EP_OPT_INT,
          .num = &stream_bytes, .min = 4096, .max = 1073741824,
          .help = "Bytes queued per event stream at most; a slower reader is dropped." },
        { .name = "ring", .env = "EDGEPLANE_CONSOLE_RING", .def = "10000", .type = EP_OPT_INT,
          .num = &ring_events, .min = 1, .max = 10000000, .help = "Recent events kept for Last-Event-ID." },
        { .name = "keepalive", .env = "EDGEPLANE_CONSOLE_KEEPALIVE", .def = "15s", .type = EP_OPT_DURATION,
          .num = &keepalive, .min = 10, .max = 15000, .help = "A comment line on idle streams this often." },
        { .name = "poll", .env = "EDGEPLANE_CONSOLE_POLL", .def = "2s", .type = EP_OPT_DURATION,
          .num = &poll_ms, .min = 100, .max = 600000, .help = "How often the watchdogs are asked for connections." },
        { .name = "presence-timeout", .env = "EDGEPLANE_PRESENCE_TIMEOUT", .def = "3500ms", .type = EP_OPT_DURATION,
          .num = &presence, .min = 10, .max = 600000, .help = "A watchdog without beacons this long holds no router." },
        { .name = "stats-minutes", .env = "EDGEPLANE_CONSOLE_STATS_MINUTES", .def = "60", .type = EP_OPT_INT,
          .num = &minutes, .min = 1, .max = STATS_MINUTES, .help = "Minutes of aggregates kept for /api/stats." },
        ep_subscriber_window_opt (&dedupe_window),
    };
    //  The console's own address variable wins over the one all services share.
    if (getenv ("EDGEPLANE_CONSOLE_LISTEN"))
        setenv ("EDGEPLANE_HTTP_LISTEN", getenv ("EDGEPLANE_CONSOLE_LISTEN"), 1);
    s_main_t self = { 0 };
    self.service = ep_service_new ("console", "The operator console: the fleet and its events over HTTP.",
                                   EP_HTTP_LISTEN_CONSOLE, opts, EP_COUNT (opts), argc, argv);
    const ep_common_opts_t *common = ep_service_opts (self.service);
    int rc = 0;
    char *token = NULL, err [512] = "";
    char *path = token_file? strdup (token_file): zsys_sprintf ("%s/console.token", common->keys_dir);
    bool loopback = access_loopback (common->http_listen);
    if (!loopback && !(token = access_token_read (path, err, sizeof err))) {
        ep_log_error ("console bound to %s, which is not loopback, needs a token: %s", common->http_listen, err);
        rc = -1;
    }
    access_t *access = access_new (hosts, token);
    free (token);
    hub_config_t hub_config;
    hub_config_defaults (&hub_config);
    randombytes_buf (&hub_config.epoch, sizeof hub_config.epoch);
    hub_config.epoch |= 1;      //  never 0, and never what another start drew (in all likelihood)
    hub_config.ring_events = (size_t) ring_events;
    hub_config.stream_bytes = (size_t) stream_bytes;
    hub_config.keepalive_ms = keepalive;
    hub_config.started_wall_ms = ep_wall_ms ();
    self.console = console_new (&hub_config, (int) minutes, web_sleep, web_wake, NULL);
    web_t *web = web_new (ep_service_http (self.service), self.console, access);
    s_metrics (&self);
    if (rc == 0)
        rc = s_connect (&self, (size_t) dedupe_window);
    if (rc == 0)
        ep_log_info ("serving on http://%s (%s)", ep_http_address (ep_service_http (self.service)),
                     loopback? "loopback: no token needed": "a token or its cookie is required");
    zpoller_t *poller = rc == 0? zpoller_new (ep_service_auth_actor (self.service), ep_subscriber_socket (self.events),
                                              ep_follower_socket (self.follower),
                                              ep_follower_rpc_socket (self.follower), NULL): NULL;
    bool ready = false;
    int64_t next_poll = ep_mono_ms (), next_keepalive = ep_mono_ms ();
    while (rc == 0 && !ep_service_interrupted (self.service)) {
        int64_t now = ep_mono_ms ();
        //  The tick gives a wait, the others are times: one scale, or the
        //  loop never sleeps (it spun a core until this was mended).
        int64_t due = now + ep_follower_tick (self.follower);
        if (next_poll < due)
            due = next_poll;
        if (next_keepalive < due)
            due = next_keepalive;
        ep_service_wait (self.service, poller, due - now);
        if (ep_service_interrupted (self.service))
            break;
        ep_follower_handle (self.follower);
        if (ep_follower_ready (self.follower)) {
            console_revision (self.console, ep_model_view_revision (self.view), ep_model_view_generation (self.view));
            if (!ready && (ready = true))
                rc = ep_service_ready (self.service);
        }
        s_bus (&self);
        now = ep_mono_ms ();
        if (now >= next_keepalive)
            next_keepalive = hub_tick (console_hub (self.console), now);
        if (now >= next_poll) {
            console_expire (self.console, ep_wall_ms (), presence);
            s_poll_watchdogs (&self, 500);
            next_poll = ep_mono_ms () + poll_ms;
        }
    }
    ep_log_info ("stopping");
    hub_shutdown (console_hub (self.console));
    zpoller_destroy (&poller);
    ep_follower_destroy (&self.follower);
    ep_model_view_destroy (&self.view);
    ep_subscriber_destroy (&self.events);
    web_destroy (&web);
    free (self.watchdog_key);
    free (path);
    //  The HTTP server stops here, after every stream was told to end.
    ep_service_destroy (&self.service);
    console_destroy (&self.console);
    access_destroy (&access);
    return rc == 0? 0: 1;
}
