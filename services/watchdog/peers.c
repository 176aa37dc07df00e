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
#define LEASE_TTL_MS        10000       //  our entry's lease when the config has none
#define LEASE_RETRY_MS      1000        //  a lease request that failed goes again after

//  What the lease's next request is.
typedef enum {
    LEASE_OFF,                  //  the model keeps no leases (embedded)
    LEASE_GRANT,                //  grant one
    LEASE_CREATE,               //  create our entry under it
    LEASE_UPDATE,               //  or update it (it exists)
    LEASE_KEEP                  //  keep it alive
} lease_step_t;

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
    //  Our entry's lease
    ep_rpc_client_t *lease_client;  //  its requests, without blocking
    lease_step_t lease_step;    //  the next request
    int64_t lease_id;           //  the lease (0: none)
    int64_t lease_ttl_ms;       //  its TTL as the model granted it
    int64_t lease_due;          //  monotonic ms the next request goes
    int64_t lease_sent;         //  monotonic ms the request in flight went
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

//  A client of the model's API (NULL with why in err).
static ep_rpc_client_t *
s_model_client (peers_t *self, char *err, size_t errlen)
{
    const ep_common_opts_t *opts = ep_service_opts (self->service);
    char *model_key = ep_keys_public_txt (opts->keys_dir, "model");
    ep_rpc_client_t *client = model_key? ep_rpc_client_new (opts->model_api,
                                                            ep_service_cert (self->service),
                                                            model_key): NULL;
    if (!client)
        ep_errorf (err, errlen, "cannot reach the model at %s", opts->model_api);
    free (model_key);
    return client;
}

//  Sends request to the model and waits; returns its reply (NULL with why
//  in err).
static Ep__ModelReply *
s_model_call (peers_t *self, Ep__ModelRequest *request, int timeout_ms, int attempts,
              char *err, size_t errlen)
{
    ep_rpc_client_t *client = s_model_client (self, err, errlen);
    char id [33];
    ep_rpc_new_id (id);
    request->request_id = id;
    Ep__ModelReply *reply = client
        ? (Ep__ModelReply *) ep_rpc_client_call (client, &request->base, id, &ep__model_reply__descriptor,
                                                 timeout_ms, attempts, err, errlen)
        : NULL;
    request->request_id = NULL;
    ep_rpc_client_destroy (&client);
    return reply;
}

//  Writes write to the model; returns its reply (NULL with why in err).
static Ep__ModelReply *
s_model_write (peers_t *self, Ep__ModelWrite *write, int timeout_ms, int attempts,
               char *err, size_t errlen)
{
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.op_case = EP__MODEL_REQUEST__OP_WRITE;
    request.write = write;
    return s_model_call (self, &request, timeout_ms, attempts, err, errlen);
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
//  Fills write (with entity and controller, the caller's) with op of our
//  entry, under our lease if we hold one.
static void
s_entry_write (peers_t *self, Ep__ModelWrite *write, Ep__Entity *entity,
               Ep__Controller *controller, Ep__ModelWrite__Op op)
{
    ep__controller__init (controller);
    controller->id = (char *) self->config.ctrl_id;
    controller->address = (char *) self->config.advertised;
    ep__entity__init (entity);
    entity->kind_case = EP__ENTITY__KIND_CONTROLLER;
    entity->controller = controller;
    ep__model_write__init (write);
    write->has_op = true;
    write->op = op;
    write->entity = entity;
    write->has_lease_id = self->lease_id != 0;
    write->lease_id = self->lease_id;
}

static uint64_t
s_register (peers_t *self)
{
    Ep__Controller controller;
    Ep__Entity entity;
    Ep__ModelWrite write;
    s_entry_write (self, &write, &entity, &controller, EP__MODEL_WRITE__OP__CREATE);
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
        ep_log_info ("controller %s registered at %s (model revision %llu, lease %lld)",
                     self->config.ctrl_id, self->config.advertised, (unsigned long long) revision,
                     (long long) self->lease_id);
    return revision;
}

//  -------------------------------------------------------------------------
//  The entry's lease

//  A lease request: grant (lease_id 0) or keep lease_id alive.
static void
s_lease_request (Ep__ModelRequest *request, Ep__LeaseRequest *lease, int64_t ttl_ms,
                 int64_t lease_id)
{
    ep__lease_request__init (lease);
    lease->has_ttl_s = lease_id == 0;
    lease->ttl_s = (uint32_t) ((ttl_ms + 999) / 1000);
    lease->has_lease_id = lease_id != 0;
    lease->lease_id = lease_id;
    ep__model_request__init (request);
    request->op_case = EP__MODEL_REQUEST__OP_LEASE;
    request->lease = lease;
}

//  The lease granted or kept alive in reply to the request sent at sent:
//  the next keepalive a third of its TTL after that. From the send, as the
//  model's publisher does (modelpub.c): the lease lives a TTL from when
//  etcd saw the request, at the latest from the send, never from the reply.
static void
s_lease_held (peers_t *self, Ep__ModelReply *reply, int64_t sent)
{
    if (reply->has_lease_id && reply->lease_id)
        self->lease_id = reply->lease_id;
    self->lease_ttl_ms = reply->has_lease_ttl_s && reply->lease_ttl_s > 0
                       ? reply->lease_ttl_s * 1000: self->config.lease_ttl_ms;
    self->lease_due = sent + self->lease_ttl_ms / 3;
}

//  The TTL the lease has, or is asked with.
static int64_t
s_lease_ttl (peers_t *self)
{
    return self->lease_ttl_ms? self->lease_ttl_ms: self->config.lease_ttl_ms;
}

//  At start: a lease for the entry, waiting for it. None if the model
//  keeps none (embedded), or for now if it cannot grant one: then it is
//  asked again from the loop and the entry written under it.
static void
s_lease_grant (peers_t *self)
{
    Ep__ModelRequest request;
    Ep__LeaseRequest lease;
    s_lease_request (&request, &lease, self->config.lease_ttl_ms, 0);
    char err [256];
    int64_t sent = ep_mono_ms ();
    Ep__ModelReply *reply = s_model_call (self, &request, 3000, 3, err, sizeof err);
    int64_t now = ep_mono_ms ();
    if (s_code (reply) == EP__STATUS__CODE__OK) {
        //  Attempts that went unanswered came before the one answered.
        s_lease_held (self, reply, sent);
        self->lease_step = LEASE_KEEP;
    }
    else
    if (s_code (reply) == EP__STATUS__CODE__FAILED_PRECONDITION) {
        ep_log_info ("the model keeps no leases (%s): controller %s stays in the model if this "
                     "instance dies without stopping", s_why (reply, err), self->config.ctrl_id);
        self->lease_step = LEASE_OFF;
    }
    else {
        ep_log_warn ("no lease for controller %s yet (%s): asking again", self->config.ctrl_id,
                     s_why (reply, err));
        self->lease_step = LEASE_GRANT;
        self->lease_due = now + LEASE_RETRY_MS;
    }
    if (reply)
        ep__model_reply__free_unpacked (reply, NULL);
}

//  The reply to the lease's request (NULL: none came), and the next step.
static void
s_lease_reply (peers_t *self, Ep__ModelReply *reply, const char *err, int64_t now)
{
    int code = s_code (reply);
    const char *ctrl_id = self->config.ctrl_id;
    lease_step_t step = self->lease_step;
    self->lease_due = now + LEASE_RETRY_MS;         //  unless said otherwise below
    if (step == LEASE_KEEP && code == EP__STATUS__CODE__OK)
        s_lease_held (self, reply, self->lease_sent);
    else
    if (step == LEASE_KEEP && code == EP__STATUS__CODE__NOT_FOUND) {
        //  We were stalled past the TTL: the model deletes (or deleted)
        //  the entry; we come back under a new lease.
        ep_log_warn ("the lease of controller %s ended (%s): registering again", ctrl_id,
                     s_why (reply, err));
        self->lease_id = 0;
        self->lease_step = LEASE_GRANT;
        self->lease_due = now;
    }
    else
    if (step == LEASE_GRANT && code == EP__STATUS__CODE__OK) {
        s_lease_held (self, reply, self->lease_sent);
        self->lease_step = LEASE_CREATE;
        self->lease_due = now;
    }
    else
    if (step == LEASE_CREATE && code == EP__STATUS__CODE__ALREADY_EXISTS) {
        self->lease_step = LEASE_UPDATE;
        self->lease_due = now;
    }
    else
    if (step == LEASE_UPDATE && code == EP__STATUS__CODE__NOT_FOUND) {
        //  The entry went since the create found it, or the lease ended
        //  meanwhile (a write under an ended lease is NOT_FOUND too):
        //  created again under a new lease, which serves either (the same
        //  lease would go create, exists, update, not found for ever).
        self->lease_id = 0;
        self->lease_step = LEASE_GRANT;
        self->lease_due = now;
    }
    else
    if ((step == LEASE_CREATE || step == LEASE_UPDATE) && code == EP__STATUS__CODE__OK) {
        self->registered_here |= step == LEASE_CREATE;
        ep_log_info ("controller %s registered again at %s (model revision %llu, lease %lld)",
                     ctrl_id, self->config.advertised, (unsigned long long) reply->revision,
                     (long long) self->lease_id);
        self->lease_step = LEASE_KEEP;
        self->lease_due = now + self->lease_ttl_ms / 3;
    }
    else {
        //  No answer, or one this instance could not serve (UNAVAILABLE:
        //  it cannot reach etcd): the next model instance is asked, at
        //  once after no answer (the lease may have little time left),
        //  soon after a refusal (all may refuse). A write refused goes
        //  again under a new lease: etcd refuses the write if the lease
        //  it names has ended meanwhile (NOT_FOUND).
        if (reply)
            ep_rpc_client_move (self->lease_client);
        int64_t soon = s_lease_ttl (self) / 6 < LEASE_RETRY_MS? s_lease_ttl (self) / 6: LEASE_RETRY_MS;
        self->lease_due = reply? now + soon: now;
        if (reply && (step == LEASE_CREATE || step == LEASE_UPDATE)) {
            self->lease_id = 0;
            self->lease_step = LEASE_GRANT;
        }
        ep_log_warn ("controller %s: the lease's %s failed (%s): again %s at %s", ctrl_id,
                     step == LEASE_KEEP? "keepalive": step == LEASE_GRANT? "grant": "write",
                     s_why (reply, err), reply? "soon": "at once",
                     ep_rpc_client_endpoint (self->lease_client));
    }
}

//  Sends the lease's next request when it is due, and takes its reply.
static void
s_lease_run (peers_t *self)
{
    if (self->lease_step == LEASE_OFF || !self->lease_client)
        return;
    int64_t now = ep_mono_ms ();
    char err [256] = "";
    if (ep_rpc_client_waiting (self->lease_client)) {
        Ep__ModelReply *reply = (Ep__ModelReply *) ep_rpc_client_take (
            self->lease_client, &ep__model_reply__descriptor, err, sizeof err);
        if (!reply && !*err && !ep_rpc_client_expire (self->lease_client, now, err, sizeof err))
            return;             //  not yet
        s_lease_reply (self, reply, err, now);
        if (reply)
            ep__model_reply__free_unpacked (reply, NULL);
    }
    if (now < self->lease_due)
        return;
    Ep__ModelRequest request;
    Ep__LeaseRequest lease;
    Ep__Controller controller;
    Ep__Entity entity;
    Ep__ModelWrite write;
    if (self->lease_step == LEASE_KEEP || self->lease_step == LEASE_GRANT)
        s_lease_request (&request, &lease, self->config.lease_ttl_ms,
                         self->lease_step == LEASE_KEEP? self->lease_id: 0);
    else {
        s_entry_write (self, &write, &entity, &controller, self->lease_step == LEASE_CREATE
                       ? EP__MODEL_WRITE__OP__CREATE: EP__MODEL_WRITE__OP__UPDATE);
        ep__model_request__init (&request);
        request.op_case = EP__MODEL_REQUEST__OP_WRITE;
        request.write = &write;
    }
    char id [33];
    ep_rpc_new_id (id);
    request.request_id = id;
    //  Answered within a sixth of the TTL, or given up for the next
    //  instance: from a keepalive sent at a third, two more attempts fit
    //  before the lease's end (and the time etcd takes to expire it).
    if (ep_rpc_client_send (self->lease_client, &request.base, id, (int) (s_lease_ttl (self) / 6),
                            err, sizeof err) != 0) {
        ep_log_warn ("controller %s: cannot send the lease's request: %s", self->config.ctrl_id, err);
        self->lease_due = now + LEASE_RETRY_MS;
    }
    else {
        self->lease_sent = now;
        self->lease_due = INT64_MAX;    //  the reply says when next
    }
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
    if (self->config.lease_ttl_ms <= 0)
        self->config.lease_ttl_ms = LEASE_TTL_MS;
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
    char err [256];
    self->lease_client = s_model_client (self, err, sizeof err);
    s_lease_grant (self);
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
        ep_rpc_client_destroy (&self->lease_client);
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

void *
peers_lease_socket (peers_t *self)
{
    return self->lease_client? zsock_resolve (ep_rpc_client_socket (self->lease_client)): NULL;
}

int64_t
peers_deadline (peers_t *self, bool draining)
{
    int64_t dialer = draining? INT64_MAX: dialer_deadline (self->dialer);
    int64_t server = ep_tls_server_deadline (self->server);
    if (self->lease_step != LEASE_OFF && self->lease_client) {
        int64_t lease = ep_rpc_client_waiting (self->lease_client)
                      ? ep_rpc_client_deadline (self->lease_client): self->lease_due;
        if (lease < server)
            server = lease;
    }
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
    s_lease_run (self);
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
