/*  ep_etcd_opts.c: the etcd options and their client (ep_etcd_opts.h). */
#include "ep_etcd_opts.h"

void
ep_etcd_opts (ep_etcd_settings_t *settings, ep_opt_t *opts)
{
    memset (settings, 0, sizeof *settings);
    ep_opt_t table [EP_ETCD_OPTS] = {
        { .name = "etcd-endpoints", .env = "EDGEPLANE_ETCD_ENDPOINTS", .type = EP_OPT_STRING,
          .str = &settings->endpoints, .help = "etcd store: the cluster's client URLs, comma-separated." },
        { .name = "etcd-ca", .env = "EDGEPLANE_ETCD_CA", .type = EP_OPT_STRING, .str = &settings->ca,
          .help = "etcd store: the CA of https endpoints (PEM; default: the system's)." },
        { .name = "etcd-cert", .env = "EDGEPLANE_ETCD_CERT", .type = EP_OPT_STRING, .str = &settings->cert,
          .help = "etcd store: this service's client certificate (edgeplane pki issue client <service>)." },
        { .name = "etcd-key", .env = "EDGEPLANE_ETCD_KEY", .type = EP_OPT_STRING, .str = &settings->key,
          .help = "etcd store: its key." },
        { .name = "etcd-prefix", .env = "EDGEPLANE_ETCD_PREFIX", .def = "/edgeplane/",
          .type = EP_OPT_STRING, .str = &settings->prefix,
          .help = "etcd store: the prefix of edgeplane's keys (ends in /)." },
        { .name = "etcd-max-txn-ops", .env = "EDGEPLANE_ETCD_MAX_TXN_OPS", .def = "128",
          .type = EP_OPT_INT, .num = &settings->max_txn_ops, .min = 8, .max = 1000000,
          .help = "etcd store: the cluster's --max-txn-ops (batches are sized to fit)." },
    };
    memcpy (opts, table, sizeof table);
}

int
ep_etcd_settings_config (const ep_etcd_settings_t *settings, ep_etcd_config_t *config,
                         char *err, size_t errlen)
{
    memset (config, 0, sizeof *config);
    if (!settings->endpoints || !*settings->endpoints) {
        snprintf (err, errlen, "needs EDGEPLANE_ETCD_ENDPOINTS: the cluster's client URLs, "
                  "comma-separated (https://etcd1:2379,https://etcd2:2379)");
        return -1;
    }
    if (!settings->cert != !settings->key) {
        snprintf (err, errlen, "EDGEPLANE_ETCD_CERT and EDGEPLANE_ETCD_KEY go together: this "
                  "service's client certificate and key (edgeplane pki issue client <service>)");
        return -1;
    }
    size_t size = settings->prefix? strlen (settings->prefix): 0;
    if (settings->prefix && (size == 0 || settings->prefix [size - 1] != '/' || size > 200)) {
        snprintf (err, errlen, "EDGEPLANE_ETCD_PREFIX '%s': use a path of at most 200 characters "
                  "ending in / (/edgeplane/)", settings->prefix);
        return -1;
    }
    config->endpoints = settings->endpoints;
    config->ca_file = settings->ca;
    config->cert_file = settings->cert;
    config->key_file = settings->key;
    return 0;
}

ep_etcd_t *
ep_etcd_settings_client (const ep_etcd_settings_t *settings, int64_t watch_idle_ms,
                         char *err, size_t errlen)
{
    ep_etcd_config_t config;
    if (ep_etcd_settings_config (settings, &config, err, errlen) != 0)
        return NULL;
    config.watch_idle_ms = watch_idle_ms;
    char why [512];
    ep_etcd_t *etcd = ep_etcd_new (&config, why, sizeof why);
    if (!etcd)
        snprintf (err, errlen, "EDGEPLANE_ETCD_ENDPOINTS %s: %s", settings->endpoints, why);
    return etcd;
}
