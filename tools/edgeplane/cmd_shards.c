/*  edgeplane shards: which instance of a sharded service owns which shards,
    from their cluster.beacon on the bus (docs/shards.md). Every instance
    beacons about every second; this listens for a window, prints one row
    per instance and says whether every shard has exactly one owner: exit
    0 only then, so a script can wait on it after a handover. */
#include "cli.h"
#include "cli_table.h"
#include "ep_subscriber.h"

//  One instance as its last beacon said.
typedef struct {
    char *id;                   //  instance id
    char *address;              //  its API endpoint
    uint32_t count;             //  the shard count it has
    uint32_t *shards;           //  the shards it owns, ascending
    size_t nshards;             //  how many
} s_owner_t;

static void
s_owner_destroy (s_owner_t **self_p)
{
    s_owner_t *self = *self_p;
    if (self) {
        free (self->id);
        free (self->address);
        free (self->shards);
        free (self);
        *self_p = NULL;
    }
}

//  Keeps beacon's word for its instance.
static void
s_heard (zhashx_t *owners, const Ep__ShardBeacon *beacon)
{
    s_owner_t *owner = (s_owner_t *) zhashx_lookup (owners, beacon->instance_id);
    if (!owner) {
        owner = (s_owner_t *) zmalloc (sizeof (s_owner_t));
        owner->id = strdup (beacon->instance_id);
        zhashx_insert (owners, beacon->instance_id, owner);
    }
    free (owner->address);
    owner->address = strdup (beacon->address? beacon->address: "");
    owner->count = beacon->shard_count;
    free (owner->shards);
    owner->nshards = beacon->n_shards;
    owner->shards = (uint32_t *) zmalloc (sizeof (uint32_t) * (beacon->n_shards + 1));
    memcpy (owner->shards, beacon->shards, sizeof (uint32_t) * beacon->n_shards);
}

//  "0-3,7,9-12" into buf.
static void
s_ranges (const s_owner_t *owner, char *buf, size_t size)
{
    buf [0] = 0;
    for (size_t i = 0; i < owner->nshards; ) {
        size_t j = i;
        while (j + 1 < owner->nshards && owner->shards [j + 1] == owner->shards [j] + 1)
            j++;
        size_t used = strlen (buf);
        if (j > i)
            snprintf (buf + used, size - used, "%s%u-%u", used? ",": "", owner->shards [i], owner->shards [j]);
        else
            snprintf (buf + used, size - used, "%s%u", used? ",": "", owner->shards [i]);
        i = j + 1;
    }
}

//  Counts, per shard, the instances claiming it; says what is wrong.
static bool
s_complete (zhashx_t *owners, uint32_t count, char *why, size_t size)
{
    uint32_t *claims = (uint32_t *) zmalloc (sizeof (uint32_t) * (count + 1));
    for (s_owner_t *owner = (s_owner_t *) zhashx_first (owners); owner;
         owner = (s_owner_t *) zhashx_next (owners))
        for (size_t i = 0; i < owner->nshards; i++)
            if (owner->shards [i] < count)
                claims [owner->shards [i]]++;
    uint32_t none = 0, several = 0;
    for (uint32_t s = 0; s < count; s++) {
        none += claims [s] == 0;
        several += claims [s] > 1;
    }
    free (claims);
    snprintf (why, size, "%u of %u shards have no owner, %u have several (a handover in progress: "
              "ask again in a few seconds)", none, count, several);
    return none == 0 && several == 0;
}

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
    zcert_t *cert = cli_cert_load ("shards", common.keys_dir, cert_path, "subscriber.cert_secret",
                                   "the certificate", "run `edgeplane pki init`, or pass --cert with one from "
                                   "`edgeplane pki issue-curve`");
    zcert_t *bus = cert? cli_cert_load ("shards", common.keys_dir, bus_key_path, "bus.cert",
                                        "the bus public certificate",
                                        "pass --bus-key (bus.cert from `edgeplane pki issue-curve`)"): NULL;
    ep_subscriber_t *sub = NULL;
    if (cert && bus
    &&  !(sub = ep_subscriber_new (common.bus_sub, cert, zcert_public_txt (bus), 4u * 1024u * 1024u,
                                   NULL, NULL)))
        cli_fail ("shards", "invalid bus address %s (EDGEPLANE_BUS_SUB)", common.bus_sub);
    zhashx_t *owners = zhashx_new ();
    zhashx_set_destructor (owners, (czmq_destructor *) s_owner_destroy);
    int rc = CLI_FAIL;
    uint32_t count = 0;
    if (sub) {
        ep_subscriber_subscribe (sub, "cluster.beacon");
        for (int64_t until = ep_mono_ms () + listen_ms; !zsys_interrupted && ep_mono_ms () < until; ) {
            char *topic = NULL;
            Ep__Event *event = ep_subscriber_recv (sub, (int) (until - ep_mono_ms ()), &topic);
            if (event && event->body_case == EP__EVENT__BODY_SHARD_BEACON && event->shard_beacon->instance_id
            &&  event->shard_beacon->service && streq (event->shard_beacon->service, service)) {
                s_heard (owners, event->shard_beacon);
                count = event->shard_beacon->shard_count;
            }
            zstr_free (&topic);
        }
        if (zhashx_size (owners) == 0)
            cli_fail ("shards", "no %s beacon on the bus %s within %lld ms: is the service running "
                      "in its etcd mode, and is EDGEPLANE_BUS_SUB the bus it publishes to?", service,
                      common.bus_sub, (long long) listen_ms);
        else
            rc = CLI_OK;
    }
    if (rc == CLI_OK) {
        char why [256];
        bool complete = s_complete (owners, count, why, sizeof why);
        static const char *header [] = { "INSTANCE", "ADDRESS", "OWNED", "SHARDS" };
        cli_table_t *table = cli_table_new (header, EP_COUNT (header));
        json_t *array = json_array ();
        zlistx_t *ids = zhashx_keys (owners);
        zlistx_set_comparator (ids, (czmq_comparator *) strcmp);
        zlistx_sort (ids);
        for (const char *id = (const char *) zlistx_first (ids); id; id = (const char *) zlistx_next (ids)) {
            s_owner_t *owner = (s_owner_t *) zhashx_lookup (owners, id);
            char ranges [4096];
            s_ranges (owner, ranges, sizeof ranges);
            cli_table_add (table, owner->id);
            cli_table_add (table, owner->address);
            cli_table_addf (table, "%zu", owner->nshards);
            cli_table_add (table, ranges);
            json_t *shards = json_array ();
            for (size_t i = 0; i < owner->nshards; i++)
                json_array_append_new (shards, json_integer (owner->shards [i]));
            json_array_append_new (array, json_pack ("{s:s, s:s, s:o}", "instance", owner->id,
                                                     "address", owner->address, "shards", shards));
        }
        zlistx_destroy (&ids);
        if (json)
            cli_print_json (json_pack ("{s:s, s:i, s:b, s:o}", "service", service, "shard_count",
                                       (int) count, "complete", complete, "instances", array));
        else {
            json_decref (array);
            cli_table_print (table);
        }
        cli_table_destroy (&table);
        if (!complete)
            rc = cli_fail ("shards", "%s", why);
    }
    zhashx_destroy (&owners);
    ep_subscriber_destroy (&sub);
    zcert_destroy (&cert);
    zcert_destroy (&bus);
    ep_config_destroy (&config);
    return rc;
}
