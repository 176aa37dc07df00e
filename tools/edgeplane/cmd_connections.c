/*  edgeplane connections: every control-channel connection, across every
    watchdog instance.

    Instances are found the way any consumer finds them: from their
    presence.beacon events on the bus (each says its instance id and API
    address, every second). We listen for --discover (1.5 s), or less once
    every instance heard has beaconed twice and a beacon period (plus a
    margin) has passed since the first beacon heard: by then every live
    instance has beaconed at least once. Then we ask each one for its
    connections (WatchdogRequest list; the subscriber certificate is
    enough) and print them merged: a table, or with --json an array of
    ConnectionInfo objects (proto field names). An instance that does not
    answer is named on stderr and the exit code is 1, after printing what
    the others said.
*/
#include "cli_table.h"
#include "ep_event_json.h"
#include "ep_rpc_client.h"
#include "ep_subscriber.h"
#include "channel.pb-c.h"

//  A watchdog instance heard on the bus.
typedef struct {
    char *instance_id;          //  its source id
    char *api_address;          //  where its API is
    int beacons;                //  beacons heard
    Ep__WatchdogReply *reply;   //  its answer, once asked
} s_instance_t;

static void
s_instance_destroy (s_instance_t **self_p)
{
    s_instance_t *self = *self_p;
    if (self) {
        free (self->instance_id);
        free (self->api_address);
        if (self->reply)
            ep__watchdog_reply__free_unpacked (self->reply, NULL);
        free (self);
        *self_p = NULL;
    }
}

//  Watchdogs beacon every second; a window this long holds one of each.
#define BEACON_WINDOW_MS 1200

//  Listens to presence beacons until deadline or until every instance
//  heard has beaconed twice and BEACON_WINDOW_MS passed since the first
//  beacon; fills instances (id -> s_instance_t).
static void
s_discover (ep_subscriber_t *sub, int64_t discover_ms, zhashx_t *instances)
{
    int64_t deadline = ep_mono_ms () + discover_ms, first = 0;
    while (!zsys_interrupted) {
        int64_t left = deadline - ep_mono_ms ();
        if (left <= 0)
            break;
        char *topic = NULL;
        Ep__Event *event = ep_subscriber_recv (sub, (int) left, &topic);
        if (!event)
            continue;
        Ep__PresenceEvent *presence = event->body_case == EP__EVENT__BODY_PRESENCE? event->presence: NULL;
        if (presence && streq (topic, "presence.beacon") && presence->instance_id && presence->api_address) {
            s_instance_t *instance = (s_instance_t *) zhashx_lookup (instances, presence->instance_id);
            if (!instance) {
                instance = (s_instance_t *) zmalloc (sizeof (s_instance_t));
                instance->instance_id = strdup (presence->instance_id);
                zhashx_insert (instances, presence->instance_id, instance);
            }
            free (instance->api_address);       //  the latest word (a restart may move it)
            instance->api_address = strdup (presence->api_address);
            instance->beacons++;
            if (!first)
                first = ep_mono_ms ();
        }
        free (topic);
        bool all_twice = first && ep_mono_ms () - first >= BEACON_WINDOW_MS;
        for (s_instance_t *i = (s_instance_t *) zhashx_first (instances); i;
             i = (s_instance_t *) zhashx_next (instances))
            all_twice &= i->beacons >= 2;
        if (all_twice)
            break;
    }
}

//  Asks instance for its connections; on failure says why in err.
static int
s_ask (s_instance_t *instance, zcert_t *cert, const char *watchdog_key, Ep__ConnectionFilter *filter,
       int timeout_ms, int attempts, char *err, size_t errlen)
{
    ep_rpc_client_t *client = ep_rpc_client_new (instance->api_address, cert, watchdog_key);
    if (!client) {
        snprintf (err, errlen, "its API address %s is not a valid endpoint", instance->api_address);
        return -1;
    }
    char id [33];
    ep_rpc_new_id (id);
    Ep__WatchdogRequest request = EP__WATCHDOG_REQUEST__INIT;
    request.request_id = id;
    request.op_case = EP__WATCHDOG_REQUEST__OP_LIST;
    request.list = filter;
    instance->reply = (Ep__WatchdogReply *) ep_rpc_client_call (
        client, &request.base, id, &ep__watchdog_reply__descriptor, timeout_ms, attempts, err, errlen);
    ep_rpc_client_destroy (&client);
    if (!instance->reply)
        return -1;
    Ep__Status *status = instance->reply->status;
    if (status && status->has_code && status->code != EP__STATUS__CODE__OK) {
        snprintf (err, errlen, "%s", status->message? status->message: "refused (no message)");
        return -1;
    }
    return 0;
}

//  Table order: instance, role, id, remote address.
static int
s_compare (const void *a, const void *b)
{
    const Ep__ConnectionInfo *x = *(const Ep__ConnectionInfo *const *) a;
    const Ep__ConnectionInfo *y = *(const Ep__ConnectionInfo *const *) b;
    const char *fx [] = { x->instance_id, x->role, x->id, x->remote_addr };
    const char *fy [] = { y->instance_id, y->role, y->id, y->remote_addr };
    for (size_t i = 0; i < EP_COUNT (fx); i++) {
        int diff = strcmp (fx [i]? fx [i]: "", fy [i]? fy [i]: "");
        if (diff)
            return diff;
    }
    return 0;
}

static const char *
s_text (const char *text)
{
    return text && *text? text: "-";
}

static void
s_ms (cli_table_t *table, double ms, bool known)
{
    if (known && ms >= 0)
        cli_table_addf (table, "%.1fms", ms);
    else
        cli_table_add (table, "-");
}

static void
s_row (cli_table_t *table, const ProtobufCMessage *item)
{
    const Ep__ConnectionInfo *info = (const Ep__ConnectionInfo *) item;
    bool rtt = info->has_rtt_ms && info->rtt_ms >= 0;
    cli_table_add (table, s_text (info->instance_id));
    cli_table_add (table, s_text (info->role));
    cli_table_add (table, s_text (info->id));
    cli_table_add (table, s_text (info->state));
    cli_table_add (table, s_text (info->remote_addr));
    s_ms (table, info->rtt_ms, rtt);
    s_ms (table, info->jitter_ms, rtt && info->has_jitter_ms);
    //  Routers: the slice acknowledged, revisions behind, since when.
    if (info->has_acked_revision && info->has_slice_lag)
        cli_table_addf (table, "%llu (lag %llu, %.1fs%s)", (unsigned long long) info->acked_revision,
                        (unsigned long long) info->slice_lag, info->acked_age_ms / 1000.0,
                        info->slice_stale? ", stale": "");
    else
        cli_table_add (table, "-");
    s_ms (table, (double) info->heartbeat_timeout_ms, info->has_heartbeat_timeout_ms);
}

static const char *s_header [] = { "INSTANCE", "ROLE", "ID", "STATE", "REMOTE", "RTT", "JITTER", "SLICE", "TIMEOUT" };
static const cli_list_t s_connections = { s_header, EP_COUNT (s_header), s_row, NULL };

//  Asks every instance (in instance id order, so output and failures are
//  stable) and prints what they said, merged and sorted. Returns CLI_OK,
//  or CLI_FAIL after naming each instance that did not answer.
static int
s_ask_all (zhashx_t *instances, zcert_t *cert, zcert_t *watchdog, Ep__ConnectionFilter *filter,
           int timeout_ms, int attempts, bool json)
{
    int rc = CLI_OK;
    zlistx_t *ids = zhashx_keys (instances);
    zlistx_set_comparator (ids, (czmq_comparator *) strcmp);
    zlistx_sort (ids);
    size_t count = 0;
    for (const char *id = (const char *) zlistx_first (ids); id; id = (const char *) zlistx_next (ids)) {
        s_instance_t *instance = (s_instance_t *) zhashx_lookup (instances, id);
        char err [512];
        if (s_ask (instance, cert, zcert_public_txt (watchdog), filter, timeout_ms, attempts,
                   err, sizeof err) != 0) {
            rc = cli_fail ("connections", "watchdog %s at %s did not answer: %s", id,
                           instance->api_address, err);
            continue;
        }
        count += instance->reply->n_connections;
    }
    Ep__ConnectionInfo **rows = (Ep__ConnectionInfo **) calloc (count + 1, sizeof (Ep__ConnectionInfo *));
    size_t n = 0;
    for (const char *id = (const char *) zlistx_first (ids); id; id = (const char *) zlistx_next (ids)) {
        s_instance_t *instance = (s_instance_t *) zhashx_lookup (instances, id);
        for (size_t i = 0; instance->reply && i < instance->reply->n_connections; i++)
            rows [n++] = instance->reply->connections [i];
    }
    qsort (rows, n, sizeof (Ep__ConnectionInfo *), s_compare);
    cli_list_print (&s_connections, (ProtobufCMessage *const *) rows, n, json);
    free (rows);
    zlistx_destroy (&ids);
    return rc;
}

int
cli_connections (int argc, char **argv)
{
    static const char *roles [] = { "router", "ctrl", "client", NULL };
    static const char *states [] = { "accepted", "tls-handshake", "await-hello", "joined", "draining", NULL };
    static char *role, *state, *cert_path, *bus_key_path, *watchdog_key_path;
    static bool json;
    static int64_t discover_ms, timeout_ms, attempts;
    ep_opt_t opts [] = {
        { .name = "role", .type = EP_OPT_ENUM, .words = roles, .str = &role,
          .help = "Only connections of this role: router, ctrl or client." },
        { .name = "state", .type = EP_OPT_ENUM, .words = states, .str = &state,
          .help = "Only connections in this state: accepted, tls-handshake, await-hello, joined, draining." },
        { .name = "json", .def = "false", .type = EP_OPT_BOOL, .flag = &json,
          .help = "Print a JSON array of connections (proto field names) instead of a table." },
        { .name = "discover", .def = "1500ms", .type = EP_OPT_DURATION, .num = &discover_ms,
          .min = 1, .max = 600000,
          .help = "How long to listen for watchdog beacons (less once each instance was heard twice)." },
        { .name = "timeout", .def = "3s", .type = EP_OPT_DURATION, .num = &timeout_ms,
          .min = 1, .max = 600000, .help = "How long to wait for each instance's answer, per attempt." },
        { .name = "attempts", .def = "2", .type = EP_OPT_INT, .num = &attempts, .min = 1, .max = 100,
          .help = "Attempts per instance before naming it as not answering." },
        { .name = "cert", .type = EP_OPT_STRING, .str = &cert_path,
          .def_help = "$EDGEPLANE_KEYS_DIR/curve/subscriber.cert_secret",
          .help = "Our CURVE certificate (secret file); a subscriber's is enough." },
        { .name = "bus-key", .type = EP_OPT_STRING, .str = &bus_key_path,
          .def_help = "$EDGEPLANE_KEYS_DIR/curve/bus.cert", .help = "The bus public certificate." },
        { .name = "watchdog-key", .type = EP_OPT_STRING, .str = &watchdog_key_path,
          .def_help = "$EDGEPLANE_KEYS_DIR/curve/watchdog.cert",
          .help = "The watchdog public certificate (every instance has the same)." },
    };
    ep_common_opts_t common;
    ep_config_t *config = cli_parse ("connections",
                                     "List control-channel connections across every watchdog instance.",
                                     NULL, &common, opts, EP_COUNT (opts), argc, argv);

    zcert_t *cert, *bus;
    cli_bus_certs ("connections", common.keys_dir, cert_path, bus_key_path, &cert, &bus);
    zcert_t *watchdog = bus? cli_cert_load ("connections", common.keys_dir, watchdog_key_path, "watchdog.cert",
                                            "the watchdog public certificate", "pass --watchdog-key "
                                            "(watchdog.cert from `edgeplane pki issue-curve`)"): NULL;
    zhashx_t *instances = zhashx_new ();
    zhashx_set_destructor (instances, (czmq_destructor *) s_instance_destroy);
    ep_subscriber_t *sub = NULL;
    int rc = CLI_FAIL;
    if (watchdog)
        sub = cli_bus_subscriber ("connections", common.bus_sub, cert, bus);
    if (sub) {
        ep_subscriber_subscribe (sub, "presence.beacon");
        s_discover (sub, discover_ms, instances);
        if (zhashx_size (instances) == 0)
            cli_fail ("connections", "no watchdog beacon on the bus %s within %lld ms: is a watchdog running, "
                      "and is EDGEPLANE_BUS_SUB the bus it publishes to?", common.bus_sub,
                      (long long) discover_ms);
        else
            rc = CLI_OK;
    }
    if (rc == CLI_OK) {
        Ep__ConnectionFilter filter = EP__CONNECTION_FILTER__INIT;
        filter.role = role;
        filter.state = state;
        rc = s_ask_all (instances, cert, watchdog, &filter, (int) timeout_ms, (int) attempts, json);
    }
    ep_subscriber_destroy (&sub);
    zhashx_destroy (&instances);
    zcert_destroy (&cert);
    zcert_destroy (&bus);
    zcert_destroy (&watchdog);
    ep_config_destroy (&config);
    return rc;
}
