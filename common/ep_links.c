/*  ep_links.c: a service's links to the bus and the model (see ep_links.h). */
#include "ep_links.h"
#include "ep_codec.h"

int
ep_links_open (ep_links_t *links, ep_service_t *service, const ep_links_config_t *config)
{
    EP_ASSERT (links && service && config && config->view && config->label);
    memset (links, 0, sizeof *links);
    const ep_common_opts_t *opts = ep_service_opts (service);
    //  ep_keys_public_txt logs which key is missing and how to make it.
    char *bus_key = ep_keys_public_txt (opts->keys_dir, "bus");
    char *model_key = ep_keys_public_txt (opts->keys_dir, "model");
    int rc = bus_key && model_key? 0: -1;
    if (rc == 0) {
        zcert_t *cert = ep_service_cert (service);
        if (config->publish)
            links->publisher = ep_publisher_new (opts->bus_pub, cert, bus_key,
                                                 ep_service_source_id (service), EP_CODEC_DEFAULT_CAP);
        links->subscriber = ep_subscriber_new (opts->bus_sub, cert, bus_key, EP_CODEC_DEFAULT_CAP,
                                               NULL, NULL);
        links->follower = ep_follower_new (opts->bus_sub, opts->model_api, cert, bus_key, model_key,
                                           config->view);
        if ((config->publish && !links->publisher) || !links->subscriber || !links->follower) {
            ep_log_error ("cannot reach the bus (%s, %s) or the model (%s): check the addresses",
                          opts->bus_pub, opts->bus_sub, opts->model_api);
            rc = -1;
        }
    }
    if (rc == 0) {
        ep_metrics_t *metrics = ep_service_metrics (service);
        ep_follower_set_metrics (links->follower, metrics);
        if (config->dedupe_window > 0)
            ep_subscriber_set_dedupe_window (links->subscriber, (size_t) config->dedupe_window);
        ep_subscriber_set_metrics (links->subscriber, metrics, config->label);
    }
    else {
        ep_publisher_destroy (&links->publisher);
        ep_subscriber_destroy (&links->subscriber);
        ep_follower_destroy (&links->follower);
    }
    free (bus_key);
    free (model_key);
    return rc;
}
