/*  edgeplane shards: which instance of a sharded service owns which shards,
    from their cluster.beacon on the bus (docs/shards.md). Every instance
    beacons about every second; this listens for a window, prints one row
    per instance and says whether every shard has exactly one owner: exit
    0 only then, so a script can wait on it after a handover. */
#include "cli.h"
#include "cli_beacons.h"
#include "cli_table.h"

int
cli_shards (int argc, char **argv)
{
    static char *service, *cert_path, *bus_key_path;
    static int64_t listen_ms;
    static bool json;
    ep_opt_t opts [] = {
        { .name = "service", .def = "terminators", .type = EP_OPT_ID, .str = &service,
          .help = "Whose shards." },
        { .name = "listen", .def = "2500ms", .type = EP_OPT_DURATION, .num = &listen_ms, .min = 100,
          .max = 600000, .help = "How long to listen for beacons (they come every second)." },
        { .name = "json", .def = "false", .type = EP_OPT_BOOL, .flag = &json, .help = "Print JSON." },
        { .name = "cert", .type = EP_OPT_STRING, .str = &cert_path,
          .def_help = "$EDGEPLANE_KEYS_DIR/curve/subscriber.cert_secret",
          .help = "Our CURVE certificate (secret file); a subscriber's is enough." },
        { .name = "bus-key", .type = EP_OPT_STRING, .str = &bus_key_path,
          .def_help = "$EDGEPLANE_KEYS_DIR/curve/bus.cert", .help = "The bus public certificate." },
    };
    ep_common_opts_t common;
    ep_config_t *config = cli_parse ("shards", "Which instance owns which shards, from their beacons; "
                                     "exits 0 only when every shard has exactly one owner.",
                                     NULL, &common, opts, EP_COUNT (opts), argc, argv);
    zcert_t *cert, *bus;
    ep_subscriber_t *sub = NULL;
    if (cli_bus_certs ("shards", common.keys_dir, cert_path, bus_key_path, &cert, &bus) == 0)
        sub = cli_bus_subscriber ("shards", common.bus_sub, cert, bus);
    cli_beacons_t *beacons = cli_beacons_new ();
    int rc = CLI_FAIL;
    if (sub) {
        if (cli_beacons_listen (beacons, sub, service, listen_ms) == 0)
            cli_fail ("shards", "no %s beacon on the bus %s within %lld ms: is the service running "
                      "in its etcd mode, and is EDGEPLANE_BUS_SUB the bus it publishes to?", service,
                      common.bus_sub, (long long) listen_ms);
        else
            rc = CLI_OK;
    }
    if (rc == CLI_OK) {
        char why [256];
        bool complete = cli_beacons_complete (beacons, service, why, sizeof why);
        static const char *header [] = { "INSTANCE", "ADDRESS", "OWNED", "SHARDS" };
        cli_table_t *table = cli_table_new (header, EP_COUNT (header));
        json_t *array = json_array ();
        for (const cli_owner_t *owner = cli_beacons_first (beacons); owner; owner = cli_beacons_next (beacons)) {
            char ranges [4096];
            cli_shard_ranges (owner->shards, owner->nshards, ranges, sizeof ranges);
            cli_table_add (table, owner->id);
            cli_table_add (table, owner->address);
            cli_table_addf (table, "%zu", owner->nshards);
            cli_table_add (table, ranges);
            json_array_append_new (array, cli_owner_json (owner));
        }
        if (json)
            cli_print_json (json_pack ("{s:s, s:i, s:b, s:o}", "service", service, "shard_count",
                                       (int) cli_beacons_count (beacons, service), "complete", complete,
                                       "instances", array));
        else {
            json_decref (array);
            cli_table_print (table);
        }
        cli_table_destroy (&table);
        if (!complete)
            rc = cli_fail ("shards", "%s", why);
    }
    cli_beacons_destroy (&beacons);
    ep_subscriber_destroy (&sub);
    zcert_destroy (&cert);
    zcert_destroy (&bus);
    ep_config_destroy (&config);
    return rc;
}
