/*  channel.c: conn_t state machines on ep_tls_server connections (see
    channel.h).

    Each accepted connection carries its conn_t as the ep_tls_conn user
    state; what ep_tls_server reports goes into the state machine, and the
    actions that come out (send, close, report, join, leave) are done here.
*/
#include "channel.h"
#include "ep_pki_tls.h"

struct _channel_t {
    channel_config_t config;    //  limits
    channel_handler_t handler;  //  callbacks
    void *arg;                  //  their argument
    SSL_CTX *ctx;               //  server context (borrowed)
    ep_tls_server_t *server;    //  the listener and its connections
};

static void s_act (channel_t *self, channel_conn_t *c, conn_actions_t *actions);

conn_t *
channel_conn_state (channel_conn_t *c)
{
    return (conn_t *) ep_tls_conn_user (c);
}

static void
s_act (channel_t *self, channel_conn_t *c, conn_actions_t *a)
{
    if (a->flags & CONN_SEND)
        ep_tls_conn_send (c, &a->frame);
    if ((a->flags & CONN_REPORT_STRAY) && self->handler.stray)
        self->handler.stray (self->arg, c, a->step);
    if ((a->flags & CONN_NOT_MEMBER) && self->handler.not_member)
        self->handler.not_member (self->arg, c);
    if ((a->flags & CONN_REPORT_REFUSAL) && self->handler.refused)
        self->handler.refused (self->arg, c, a->reason);
    if ((a->flags & CONN_JOIN) && !ep_tls_conn_closed (c)) {
        ep_tls_conn_admit (c);
        ep_tls_conn_set_frame_cap (c, self->config.joined_cap);
        if (self->handler.joined)
            self->handler.joined (self->arg, c);
    }
    if (a->flags & CONN_CLOSE) {
        //  Let a final frame (HelloResult with the reason) go out first.
        ep_tls_conn_flush (c);
        ep_tls_conn_close (c, a->reason? a->reason: "closed");
    }
    if (!ep_tls_conn_closed (c))
        ep_tls_conn_set_deadline (c, conn_deadline (channel_conn_state (c)));
}

//  -------------------------------------------------------------------------
//  What ep_tls_server reports

static void
s_accepted (void *arg, channel_conn_t *c, int64_t now)
{
    channel_t *self = (channel_t *) arg;
    conn_t *conn = conn_new (&self->config.conn, now);
    ep_tls_conn_set_user (c, conn);
    ep_tls_conn_set_deadline (c, conn_deadline (conn));
}

static void
s_rejected (void *arg, const char *remote, const char *reason)
{
    channel_t *self = (channel_t *) arg;
    if (self->handler.rejected)
        self->handler.rejected (self->arg, remote, reason);
}

static void
s_started (void *arg, channel_conn_t *c, int64_t now)
{
    conn_actions_t actions;
    conn_tls_started (channel_conn_state (c), now, &actions);
    s_act ((channel_t *) arg, c, &actions);
}

static void
s_secured (void *arg, channel_conn_t *c, int64_t now)
{
    conn_actions_t actions;
    char role [16], id [65];
    if (ep_pki_peer_identity (ep_tls_conn_ssl (c), role, sizeof role, id, sizeof id) != 0)
        conn_tls_failed (channel_conn_state (c), "bad-certificate", now, &actions);
    else
        conn_tls_done (channel_conn_state (c), role, id, now, &actions);
    s_act ((channel_t *) arg, c, &actions);
}

static void
s_insecure (void *arg, channel_conn_t *c, const char *reason, int64_t now)
{
    conn_actions_t actions;
    conn_tls_failed (channel_conn_state (c), reason, now, &actions);
    s_act ((channel_t *) arg, c, &actions);
}

static void
s_frame (void *arg, channel_conn_t *c, Ep__Frame *frame, int64_t now)
{
    channel_t *self = (channel_t *) arg;
    conn_t *conn = channel_conn_state (c);
    conn_peer_t peer = CONN_PEER_OK;
    if (frame->body_case == EP__FRAME__BODY_HELLO && conn_state (conn) == CONN_AWAIT_HELLO)
        peer = self->handler.verdict (self->arg, conn_role (conn), conn_id (conn));
    conn_actions_t actions;
    bool relay = conn_frame (conn, frame, peer, now, &actions);
    s_act (self, c, &actions);
    if (relay && !ep_tls_conn_closed (c) && self->handler.frame)
        self->handler.frame (self->arg, c, frame);
    else
        ep__frame__free_unpacked (frame, NULL);
}

static void
s_bad_input (void *arg, channel_conn_t *c, const char *reason, int64_t now)
{
    conn_actions_t actions;
    conn_bad_input (channel_conn_state (c), reason, now, &actions);
    s_act ((channel_t *) arg, c, &actions);
}

static void
s_timer (void *arg, channel_conn_t *c, int64_t now)
{
    conn_actions_t actions;
    conn_tick (channel_conn_state (c), now, &actions);
    s_act ((channel_t *) arg, c, &actions);
}

static void
s_closed (void *arg, channel_conn_t *c, const char *reason)
{
    channel_t *self = (channel_t *) arg;
    conn_t *conn = channel_conn_state (c);
    int64_t now = ep_mono_ms ();
    int64_t joined_at = conn_joined_at (conn);
    conn_actions_t actions;
    conn_closed (conn, reason, now, &actions);
    if ((actions.flags & CONN_LEAVE) && self->handler.left)
        self->handler.left (self->arg, c, reason, now - joined_at);
    if (self->handler.ended)
        self->handler.ended (self->arg, c, conn_outcome (conn),
                             (now - conn_accepted_at (conn)) / 1000.0);
}

static void
s_released (void *arg, channel_conn_t *c)
{
    (void) arg;
    conn_t *conn = channel_conn_state (c);
    conn_destroy (&conn);
}

static const ep_tls_handler_t s_handler = {
    .accepted = s_accepted, .rejected = s_rejected, .started = s_started, .secured = s_secured,
    .insecure = s_insecure, .frame = s_frame, .bad_input = s_bad_input, .timer = s_timer,
    .closed = s_closed, .released = s_released
};

//  -------------------------------------------------------------------------

channel_t *
channel_new (const char *address, SSL_CTX *ctx, const channel_config_t *config,
             const channel_handler_t *handler, void *arg, char *err, size_t errlen)
{
    channel_t *self = (channel_t *) zmalloc (sizeof (channel_t));
    self->config = *config;
    self->handler = *handler;
    self->arg = arg;
    self->ctx = ctx;
    ep_tls_server_config_t server = {
        .budget = config->budget, .max_handshakes = config->max_handshakes,
        .max_per_source = config->max_per_source
    };
    self->server = ep_tls_server_new (&server);
    ep_tls_conn_config_t conns = {
        .frame_cap = EP_FRAME_PREJOIN_CAP, .out_cap = config->out_cap,
        .frame_timeout_ms = config->frame_timeout_ms
    };
    if (ep_tls_server_listen (self->server, address, ctx, &conns, &s_handler, self, err, errlen))
        channel_destroy (&self);
    return self;
}

void
channel_destroy (channel_t **self_p)
{
    channel_t *self = *self_p;
    if (self) {
        ep_tls_server_destroy (&self->server);
        free (self);
        *self_p = NULL;
    }
}

ep_tls_server_t *
channel_server (channel_t *self)
{
    return self->server;
}

void
channel_drain (channel_t *self, channel_conn_t *c, const char *reason, bool reconnect)
{
    conn_actions_t actions;
    conn_drain (channel_conn_state (c), reason, reconnect, ep_mono_ms (), &actions);
    s_act (self, c, &actions);
}

size_t
channel_close_revoked (channel_t *self)
{
    size_t closed = 0;
    channel_conn_t *c = ep_tls_server_first (self->server);
    for (; c; c = ep_tls_server_next (self->server))
        if (ep_tls_conn_secured (c) && ep_pki_peer_revoked (self->ctx, ep_tls_conn_ssl (c))) {
            conn_actions_t actions;
            conn_revoked (channel_conn_state (c), ep_mono_ms (), &actions);
            s_act (self, c, &actions);
            closed++;
        }
    return closed;
}

