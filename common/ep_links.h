/*  ep_links.h: a service's links to the bus and the model, opened one way
    by every service that follows the model (reaper, terminators, watchdog,
    console): a publisher to every bus in EDGEPLANE_BUS_PUB, a subscriber
    of every bus in EDGEPLANE_BUS_SUB with its duplicate-id window and
    metrics, and a follower applying the model to the caller's view. The
    servers' CURVE keys come from the keys directory; the links use the
    service's own certificate.
*/
#ifndef EP_LINKS_H_INCLUDED
#define EP_LINKS_H_INCLUDED

#include "ep_service.h"
#include "ep_publisher.h"
#include "ep_subscriber.h"
#include "ep_follower.h"

typedef struct {
    bool publish;               //  open a publisher too
    const char *label;          //  the subscriber's metrics label ("events")
    int64_t dedupe_window;      //  its duplicate-id window (0: the default)
    ep_model_view_t *view;      //  the follower applies the model here (borrowed)
} ep_links_config_t;

typedef struct {
    ep_publisher_t *publisher;  //  NULL unless config.publish
    ep_subscriber_t *subscriber;
    ep_follower_t *follower;
} ep_links_t;

//  Opens the links into links (the caller owns and destroys each).
//  Returns 0, or -1 after logging which address or key to check; then
//  whatever was opened is destroyed and links is all NULL.
int
    ep_links_open (ep_links_t *links, ep_service_t *service, const ep_links_config_t *config);

#endif
