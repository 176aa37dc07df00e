/*  ep_etcd_opts.h: the etcd options every service on etcd reads the same
    way (EDGEPLANE_ETCD_*), and the client they make.

    One declaration for the model, the terminators in their etcd mode and
    `edgeplane migrate`, so that every process of a deployment reads the
    same variables with the same defaults and says the same thing when
    one is missing. docs/etcd.md lists them.
*/
#ifndef EP_ETCD_OPTS_H_INCLUDED
#define EP_ETCD_OPTS_H_INCLUDED

#include "ep_prelude.h"
#include "ep_config.h"
#include "ep_etcd.h"

//  The settings, as the options give them (strings NULL when unset; the
//  prefix defaults to "/edgeplane/", max_txn_ops to 128).
typedef struct {
    char *endpoints;            //  EDGEPLANE_ETCD_ENDPOINTS: client URLs, comma-separated
    char *ca;                   //  EDGEPLANE_ETCD_CA
    char *cert;                 //  EDGEPLANE_ETCD_CERT
    char *key;                  //  EDGEPLANE_ETCD_KEY
    char *prefix;               //  EDGEPLANE_ETCD_PREFIX
    int64_t max_txn_ops;        //  EDGEPLANE_ETCD_MAX_TXN_OPS
} ep_etcd_settings_t;

#define EP_ETCD_OPTS 6

//  The options (flags and variables), filling settings when parsed, into
//  opts [EP_ETCD_OPTS].
void
    ep_etcd_opts (ep_etcd_settings_t *settings, ep_opt_t *opts);

//  Fills config (its other fields zero) from settings. -1 with err saying
//  what to set: no endpoints, a certificate without its key, a prefix
//  that does not end in '/'.
int
    ep_etcd_settings_config (const ep_etcd_settings_t *settings, ep_etcd_config_t *config,
                             char *err, size_t errlen);

//  A client for settings. NULL with err saying what to set or what failed.
ep_etcd_t *
    ep_etcd_settings_client (const ep_etcd_settings_t *settings, int64_t watch_idle_ms,
                             char *err, size_t errlen);

#endif
