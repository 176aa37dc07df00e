/*  peers.c: the controller entry and the links to peer controllers (see
    peers.h). */
#include "peers.h"
#include "ep_log.h"
#include "dialer.h"
#include "link.h"
#include "ep_rpc_client.h"
#include "model.pb-c.h"

#define BEACON_MS           1000
#define PEER_EXPIRE_MS      (5 * BEACON_MS)     //  a peer whose beacons stopped this long is gone
#define LINK_JOIN_MS        10000       //  a link to a peer must join within this

//  Our link to a peer controller.
typedef struct {
    link_t *link;               //  the connection
    char instance [80];         //  the peer instance
    char ctrl_id [65];          //  its ctrl id
    char address [256];         //  where we dialed
    bool joined;                //  its join was seen (logged, told to the dialer)
} s_link_t;

struct _peers_t {
    ep_service_t *service;      //  our service (borrowed)
    peers_config_t config;      //  who we are
    bool registered_here;       //  we created our controller entry: removed when we stop
    dialer_t *dialer;           //  which peers to dial, when
    zhashx_t *links;            //  peer instance -> s_link_t (our links to peers)
    ep_tls_server_t *server;    //  their connections
    link_config_t link_config;  //  their timeouts
    ep_series_t *peers_known;   //  edgeplane_ctrl_peers
    ep_gauge_t *link_states;    //  edgeplane_ctrl_links{state}
};

static void
s_link_destroy (s_link_t **self_p)
{
    if (*self_p) {
        link_destroy (&(*self_p)->link);
        free (*self_p);
        *self_p = NULL;
    }
}

//  -------------------------------------------------------------------------
//  The controller entry

//  Writes write to the model; returns its reply (NULL with why in err).
static Ep__ModelReply *
s_model_write (peers_t *self, Ep__ModelWrite *write, int timeout_ms, int attempts,
               char *err, size_t errlen)
{
    const ep_common_opts_t *opts = ep_service_opts (self->service);
    char *model_key = ep_keys_public_txt (opts->keys_dir, "model");
    ep_rpc_client_t *client = model_key? ep_rpc_client_new (opts->model_api,
                                                            ep_service_cert (self->service),
                                                            model_key): NULL;
    char id [33];
    ep_rpc_new_id (id);
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.request_id = id;
    request.op_case = EP__MODEL_REQUEST__OP_WRITE;
    request.write = write;
    Ep__ModelReply *reply = client
        ? (Ep__ModelReply *) ep_rpc_client_call (client, &request.base, id, &ep__model_reply__descriptor,
                                                 timeout_ms, attempts, err, errlen)
        : NULL;
    if (!client)
        ep_errorf (err, errlen, "cannot reach the model at %s", opts->model_api);
    ep_rpc_client_destroy (&client);
    free (model_key);
    return reply;
}

//  The reply's status code, -1 if there is none.
static int
s_code (Ep__ModelReply *reply)
{
    return reply && reply->status? (int) reply->status->code: -1;
}

//  Why a write failed: the model's message, else err.
static const char *
s_why (Ep__ModelReply *reply, const char *err)
{
    return reply && reply->status && reply->status->message? reply->status->message: err;
}

//  Writes our controller entry (create, or update the address if it
//  exists) and returns the model revision it is in, 0 on failure.
static uint64_t
s_register (peers_t *self)
{
    Ep__Controller controller = EP__CONTROLLER__INIT;
    controller.id = (char *) self->config.ctrl_id;
    controller.address = (char *) self->config.advertised;
    Ep__Entity entity = EP__ENTITY__INIT;
    entity.kind_case = EP__ENTITY__KIND_CONTROLLER;
    entity.controller = &controller;
    Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
    write.has_op = true;
    write.op = EP__MODEL_WRITE__OP__CREATE;
    write.entity = &entity;
    char err [256];
    uint64_t revision = 0;
    Ep__ModelReply *reply = s_model_write (self, &write, 3000, 3, err, sizeof err);
    if (s_code (reply) == EP__STATUS__CODE__ALREADY_EXISTS) {
        //  A stable id (given, or a bundle's) that was here before: the
        //  entry stays, with the address we have now.
        ep__model_reply__free_unpacked (reply, NULL);
        write.op = EP__MODEL_WRITE__OP__UPDATE;
        reply = s_model_write (self, &write, 3000, 3, err, sizeof err);
    }
    else
    if (s_code (reply) == EP__STATUS__CODE__OK)
        self->registered_here = true;
    if (s_code (reply) == EP__STATUS__CODE__OK)
        revision = reply->revision;
    else
        ep_log_error ("cannot register controller %s in the model: %s", self->config.ctrl_id,
                      s_why (reply, err));
    if (reply)
        ep__model_reply__free_unpacked (reply, NULL);
    if (revision)
        ep_log_info ("controller %s registered at %s (model revision %llu)", self->config.ctrl_id,
                     self->config.advertised, (unsigned long long) revision);
    return revision;
}

//  On the way out: the entry we created goes (an instance with a random
//  id would otherwise leave one behind at every start); one we found is
//  left as it was.
static void
s_unregister (peers_t *self)
{
    if (!self->registered_here)
        return;
    const char *ctrl_id = self->config.ctrl_id;
    Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
    write.has_op = write.has_type = true;
    write.op = EP__MODEL_WRITE__OP__DELETE;
    write.type = EP__ENTITY_TYPE__ENTITY_CONTROLLER;
    write.id = (char *) ctrl_id;
    char err [256];
    Ep__ModelReply *reply = s_model_write (self, &write, 1000, 1, err, sizeof err);
    if (s_code (reply) != EP__STATUS__CODE__OK)
        ep_log_warn ("could not remove controller %s from the model (%s): remove it with "
                     "`edgeplane controller delete %s`", ctrl_id, s_why (reply, err), ctrl_id);
    else
        ep_log_info ("controller %s removed from the model", ctrl_id);
    if (reply)
        ep__model_reply__free_unpacked (reply, NULL);
}

//  -------------------------------------------------------------------------

peers_t *
peers_new (ep_service_t *service, const peers_config_t *config)
{
    peers_t *self = (peers_t *) zmalloc (sizeof (peers_t));
    self->service = service;
    self->config = *config;
    self->links = zhashx_new ();
    zhashx_set_destructor (self->links, (czmq_destructor *) s_link_destroy);
    ep_tls_server_config_t links = { 0 };
    self->server = ep_tls_server_new (&links);
    self->link_config = (link_config_t) {
        .own_id = config->ctrl_id, .join_timeout_ms = LINK_JOIN_MS,
        .heartbeat_ms = config->heartbeat_ms, .silence_ms = config->silence_ms
    };
    ep_metrics_t *metrics = ep_service_metrics (service);
    self->peers_known = ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_ctrl_peers",
        "Peer watchdog instances heard beaconing.", 0, NULL), NULL);
    const char *state [] = { "state" };
    self->link_states = ep_metrics_gauge (metrics, "edgeplane_ctrl_links",
        "Links this instance dialed to peer controllers, by state.", 1, state);
    //  Our controller entry before our first beacon: a peer dials us
    //  once it has applied it, and we dial a peer once it has ours.
    uint64_t revision = s_register (self);
    dialer_config_t dialer = { .expire_ms = PEER_EXPIRE_MS, .backoff_base_ms = 250,
                               .backoff_max_ms = 10000 };
    self->dialer = dialer_new (&dialer, ep_service_source_id (service));
    dialer_set_registered (self->dialer, revision);
    if (!revision)
        peers_destroy (&self);
    return self;
}

void
peers_destroy (peers_t **self_p)
{
    peers_t *self = *self_p;
    if (self) {
        zhashx_destroy (&self->links);
        ep_tls_server_destroy (&self->server);
        dialer_destroy (&self->dialer);
        s_unregister (self);
        free (self);
        *self_p = NULL;
    }
}

void
peers_beacon (peers_t *self, const Ep__PresenceEvent *presence)
{
    dialer_beacon (self->dialer, presence->instance_id, presence->instance_epoch,
                   presence->ctrl_id, presence->channel_address, presence->model_revision,
                   ep_mono_ms ());
}

int
peers_fd (peers_t *self)
{
    return ep_tls_server_fd (self->server);
}

int64_t
peers_deadline (peers_t *self, bool draining)
{
    int64_t dialer = draining? INT64_MAX: dialer_deadline (self->dialer);
    int64_t server = ep_tls_server_deadline (self->server);
    s_link_t *link = (s_link_t *) zhashx_first (self->links);
    for (; link; link = (s_link_t *) zhashx_next (self->links))
        if (link_state (link->link) == LINK_CLOSED)
            return ep_mono_ms ();       //  s_links_check has news for the dialer
    return dialer < server? dialer: server;
}

//  What the dialer decided: dial a peer, or hang up on one.
static void
s_dial (peers_t *self)
{
    dialer_action_t action;
    int64_t now = ep_mono_ms ();
    while (dialer_next (self->dialer, now, &action)) {
        s_link_t *old = (s_link_t *) zhashx_lookup (self->links, action.instance);
        if (action.verb == DIALER_HANGUP) {
            if (old)
                ep_log_info ("hanging up on ctrl peer %s (%s): %s", old->ctrl_id, action.instance,
                             action.reason);
            zhashx_delete (self->links, action.instance);
            continue;
        }
        zhashx_delete (self->links, action.instance);
        s_link_t *link = (s_link_t *) zmalloc (sizeof (s_link_t));
        snprintf (link->instance, sizeof link->instance, "%s", action.instance);
        snprintf (link->ctrl_id, sizeof link->ctrl_id, "%s", action.ctrl_id);
        snprintf (link->address, sizeof link->address, "%s", action.address);
        link->link = link_new (self->server, action.address, self->config.client_ctx,
                               action.ctrl_id, &self->link_config, now);
        ep_log_debug ("dialing ctrl peer %s at %s", action.ctrl_id, action.address);
        zhashx_insert (self->links, action.instance, link);
    }
}

//  After links made progress: joins and losses, told to the dialer.
static void
s_links_check (peers_t *self)
{
    int64_t now = ep_mono_ms ();
    zlistx_t *closed = zlistx_new ();
    s_link_t *link = (s_link_t *) zhashx_first (self->links);
    for (; link; link = (s_link_t *) zhashx_next (self->links)) {
        if (link_state (link->link) == LINK_JOINED && !link->joined) {
            link->joined = true;
            ep_log_info ("joined ctrl peer %s at %s (instance %s)", link->ctrl_id, link->address,
                         link_peer_instance (link->link));
            dialer_linked (self->dialer, link->instance, now);
        }
        if (link_state (link->link) == LINK_CLOSED) {
            if (link->joined)
                ep_log_info ("lost ctrl peer %s at %s after %lld ms: %s", link->ctrl_id, link->address,
                             (long long) (now - link_joined_at (link->link)), link_reason (link->link));
            else
                ep_log_debug ("could not join ctrl peer %s at %s: %s", link->ctrl_id, link->address,
                              link_reason (link->link));
            dialer_unlinked (self->dialer, link->instance, link_goodbye (link->link), now);
            zlistx_add_end (closed, link->instance);
        }
    }
    const char *instance = (const char *) zlistx_first (closed);
    for (; instance; instance = (const char *) zlistx_next (closed)) {
        char key [80];
        snprintf (key, sizeof key, "%s", instance);     //  the entry owns instance
        zhashx_delete (self->links, key);
    }
    zlistx_destroy (&closed);
}

void
peers_process (peers_t *self, bool draining)
{
    ep_tls_server_process (self->server);
    s_links_check (self);
    if (!draining)
        s_dial (self);
}

void
peers_hang_up (peers_t *self)
{
    zhashx_purge (self->links);
}

void
peers_gauges (peers_t *self)
{
    size_t states [LINK_CLOSED + 1] = { 0 };
    s_link_t *link = (s_link_t *) zhashx_first (self->links);
    for (; link; link = (s_link_t *) zhashx_next (self->links))
        states [link_state (link->link)]++;
    for (int state = LINK_CONNECTING; state < LINK_CLOSED; state++) {
        const char *labels [] = { link_state_name (state) };
        ep_gauge_set (self->link_states, labels, (double) states [state]);
    }
    ep_series_set (self->peers_known, (double) dialer_size (self->dialer));
}
