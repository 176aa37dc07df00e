/*  conn.c: the control-channel connection state machine (see conn.h). */
#include "conn.h"
#include "ep_chan_io.h"
#include <math.h>

struct _conn_t {
    conn_config_t config;       //  grace, heartbeats, versions
    conn_state_t state;         //  where it is
    conn_state_t last_step;     //  the furthest step reached before JOINED
    int64_t accepted_at;        //  TCP accept (ms)
    int64_t joined_at;          //  JOINED (ms), 0 if never
    int64_t last_heard;         //  last frame from the peer (ms)
    int64_t next_ping;          //  when to send the next Ping (ms)
    int64_t drain_until;        //  DRAINING ends here (ms)
    bool stray;                 //  reported stray
    bool refused;               //  refused (bad cert, bad Hello, bad bytes ...)
    bool errored;               //  closed by an I/O error before joining
    char role [16];             //  certificate role
    char id [65];               //  certificate id
    uint32_t version;           //  Hello's protocol version
    uint64_t model_revision;    //  Hello's model_revision (routers: the slice they hold)
    char generation [65];       //  Hello's model_generation ("" if none)
    uint64_t ping_nonce;        //  nonce of the Ping in flight, 0 if none
    int64_t ping_sent;          //  when it was sent (ms)
    double rtt;                 //  last round-trip time (ms)
    double jitter;              //  smoothed |rtt - previous rtt| (RFC 3550 style)
    ep_cadence_t *cadence;      //  heartbeat inter-arrival times, if adaptive
};

static void
s_reset (conn_actions_t *actions)
{
    memset (actions, 0, sizeof *actions);
    ep__frame__init (&actions->frame);
}

conn_t *
conn_new (const conn_config_t *config, int64_t now_ms)
{
    EP_ASSERT (config->stray_grace_ms > 0 && config->heartbeat_ms > 0);
    EP_ASSERT (config->heartbeat_timeout_ms > 0 && config->min_version <= config->max_version);
    EP_ASSERT (config->drain_grace_ms > 0);
    conn_t *self = (conn_t *) zmalloc (sizeof (conn_t));
    self->config = *config;
    self->state = CONN_ACCEPTED;
    self->last_step = CONN_ACCEPTED;
    self->accepted_at = now_ms;
    self->last_heard = now_ms;
    self->rtt = -1;
    if (config->adaptive)
        self->cadence = ep_cadence_new (&config->cadence);
    return self;
}

void
conn_destroy (conn_t **self_p)
{
    if (*self_p) {
        ep_cadence_destroy (&(*self_p)->cadence);
        free (*self_p);
        *self_p = NULL;
    }
}

conn_state_t
conn_state (conn_t *self)
{
    return self->state;
}

const char *
conn_state_name (conn_state_t state)
{
    static const char *names [] = {
        "accepted", "tls-handshake", "await-hello", "joined", "draining", "closed"
    };
    return state <= CONN_CLOSED? names [state]: "?";
}

//  The heartbeat timeout in force: learnt, or the configured constant.
static int64_t
s_timeout (conn_t *self)
{
    if (self->cadence)
        return ep_cadence_timeout (self->cadence, self->config.heartbeat_timeout_ms);
    return self->config.heartbeat_timeout_ms;
}

//  A heartbeat (the peer's Pong or Ping) arrived: a cadence sample. The
//  join itself is not one, so the time before joining never counts.
static void
s_beat (conn_t *self, int64_t now_ms)
{
    if (self->cadence && self->state == CONN_JOINED)
        ep_cadence_beat (self->cadence, now_ms);
}

static void
s_enter (conn_t *self, conn_state_t state)
{
    self->state = state;
    if (state < CONN_JOINED && state > self->last_step)
        self->last_step = state;
}

//  Refuses the peer: an event, then closed.
static void
s_refuse (conn_t *self, const char *reason, conn_actions_t *actions)
{
    self->refused = true;
    actions->flags |= CONN_REPORT_REFUSAL | CONN_CLOSE;
    actions->reason = reason;
}

static void
s_send_result (conn_actions_t *actions, Ep__Status__Code code, const char *reason,
               const conn_config_t *config)
{
    ep__hello_result__init (&actions->hello_result);
    ep__status__init (&actions->status);
    actions->status.has_code = true;
    actions->status.code = code;
    actions->status.message = actions->message;
    actions->hello_result.status = &actions->status;
    actions->hello_result.reason = (char *) reason;
    actions->hello_result.has_min_protocol_version = true;
    actions->hello_result.min_protocol_version = config->min_version;
    actions->hello_result.has_max_protocol_version = true;
    actions->hello_result.max_protocol_version = config->max_version;
    actions->hello_result.instance_id = (char *) config->instance_id;
    actions->frame.body_case = EP__FRAME__BODY_HELLO_RESULT;
    actions->frame.hello_result = &actions->hello_result;
    actions->flags |= CONN_SEND;
}

void
conn_tls_started (conn_t *self, int64_t now_ms, conn_actions_t *actions)
{
    (void) now_ms;
    s_reset (actions);
    if (self->state == CONN_ACCEPTED)
        s_enter (self, CONN_TLS_HANDSHAKE);
}

void
conn_tls_done (conn_t *self, const char *role, const char *id, int64_t now_ms,
               conn_actions_t *actions)
{
    s_reset (actions);
    if (self->state != CONN_ACCEPTED && self->state != CONN_TLS_HANDSHAKE)
        return;
    snprintf (self->role, sizeof self->role, "%s", role? role: "");
    snprintf (self->id, sizeof self->id, "%s", id? id: "");
    self->last_heard = now_ms;
    s_enter (self, CONN_AWAIT_HELLO);
}

void
conn_tls_failed (conn_t *self, const char *reason, int64_t now_ms, conn_actions_t *actions)
{
    (void) now_ms;
    s_reset (actions);
    if (self->state >= CONN_CLOSED)
        return;
    s_refuse (self, reason, actions);
}

void
conn_bad_input (conn_t *self, const char *reason, int64_t now_ms, conn_actions_t *actions)
{
    //  Refused the same way as a failed handshake: with reason, closed.
    conn_tls_failed (self, reason, now_ms, actions);
}

//  A Hello in AWAIT_HELLO: versions, identity, the model's verdict.
static void
s_hello (conn_t *self, const Ep__Hello *hello, conn_peer_t peer, int64_t now_ms,
         conn_actions_t *actions)
{
    const conn_config_t *config = &self->config;
    self->version = hello->has_protocol_version? hello->protocol_version: 0;
    self->model_revision = hello->has_model_revision? hello->model_revision: 0;
    snprintf (self->generation, sizeof self->generation, "%s",
              hello->model_generation? hello->model_generation: "");
    static const char *roles [] = { "", "router", "ctrl", "client" };
    const char *role = hello->has_role && hello->role <= EP__ROLE__ROLE_CLIENT? roles [hello->role]: "";
    if (self->version < config->min_version || self->version > config->max_version) {
        snprintf (actions->message, sizeof actions->message,
                  "protocol version %u is not supported: use %u to %u",
                  self->version, config->min_version, config->max_version);
        s_send_result (actions, EP__STATUS__CODE__FAILED_PRECONDITION, "unsupported-version", config);
        s_refuse (self, "unsupported-version", actions);
        return;
    }
    if (!streq (role, self->role) || !hello->id || !streq (hello->id, self->id)) {
        snprintf (actions->message, sizeof actions->message,
                  "Hello says %s %.64s but the certificate is %s %s",
                  *role? role: "(no role)", hello->id? hello->id: "(no id)", self->role, self->id);
        s_send_result (actions, EP__STATUS__CODE__PERMISSION_DENIED, "identity-mismatch", config);
        s_refuse (self, "identity-mismatch", actions);
        return;
    }
    if (peer == CONN_PEER_NOT_MEMBER) {
        //  A valid ctrl certificate, but not one of the cluster's members:
        //  treated as a stray at step not-member.
        snprintf (actions->message, sizeof actions->message,
                  "controller %s is not a member of this cluster", self->id);
        s_send_result (actions, EP__STATUS__CODE__PERMISSION_DENIED, "not-member", config);
        self->stray = true;
        actions->flags |= CONN_REPORT_STRAY | CONN_NOT_MEMBER;
        actions->step = "not-member";
        actions->reason = "not-member";
        if (config->stray_action == CONN_STRAY_DISCONNECT)
            actions->flags |= CONN_CLOSE;
        return;
    }
    static const char *refusals [] = { NULL, "unknown-router", "router-disabled", "router-deleted" };
    if (peer >= CONN_PEER_UNKNOWN && peer <= CONN_PEER_DELETED) {
        snprintf (actions->message, sizeof actions->message, "router %s is %s", self->id,
                  peer == CONN_PEER_UNKNOWN? "not in the model":
                  peer == CONN_PEER_DISABLED? "disabled in the model": "deleted");
        s_send_result (actions, EP__STATUS__CODE__PERMISSION_DENIED, refusals [peer], config);
        s_refuse (self, refusals [peer], actions);
        return;
    }
    static const char *identity_refusals [] = { "unknown-identity", "identity-disabled", "identity-deleted" };
    if (peer >= CONN_PEER_NO_IDENTITY && peer <= CONN_PEER_IDENTITY_DELETED) {
        const char *reason = identity_refusals [peer - CONN_PEER_NO_IDENTITY];
        snprintf (actions->message, sizeof actions->message,
                  "client %s: %s; create or enable it (edgeplane identity) to join", self->id,
                  peer == CONN_PEER_NO_IDENTITY? "no Identity of that id in the model":
                  peer == CONN_PEER_IDENTITY_DISABLED? "its Identity is disabled": "its Identity was deleted");
        s_send_result (actions, EP__STATUS__CODE__PERMISSION_DENIED, reason, config);
        s_refuse (self, reason, actions);
        return;
    }
    if (peer == CONN_PEER_BUSY) {
        //  Its join would be an event this instance cannot record: the
        //  router is sent elsewhere (another instance, or here later).
        snprintf (actions->message, sizeof actions->message,
                  "this controller's event outbox is full (the bus is not taking its events); "
                  "retry later or join another controller");
        s_send_result (actions, EP__STATUS__CODE__UNAVAILABLE, "event-outbox-full", config);
        s_refuse (self, "event-outbox-full", actions);
        return;
    }
    snprintf (actions->message, sizeof actions->message, "welcome");
    s_send_result (actions, EP__STATUS__CODE__OK, NULL, config);
    actions->flags |= CONN_JOIN;
    s_enter (self, CONN_JOINED);
    self->joined_at = now_ms;
    self->next_ping = now_ms + config->heartbeat_ms;
}

bool
conn_frame (conn_t *self, const Ep__Frame *frame, conn_peer_t peer, int64_t now_ms,
            conn_actions_t *actions)
{
    s_reset (actions);
    if (self->state >= CONN_CLOSED)
        return false;
    self->last_heard = now_ms;
    if (self->state < CONN_AWAIT_HELLO) {
        s_refuse (self, "protocol", actions);       //  frames before TLS completed
        return false;
    }
    if (self->state == CONN_AWAIT_HELLO) {
        if (frame->body_case != EP__FRAME__BODY_HELLO)
            s_refuse (self, "expected-hello", actions);
        else
        if (!self->stray || self->config.stray_action != CONN_STRAY_DISCONNECT)
            s_hello (self, frame->hello, peer, now_ms, actions);
        return false;
    }
    switch (frame->body_case) {
        case EP__FRAME__BODY_PING:
            s_beat (self, now_ms);
            ep_chan_pong (&actions->frame, &actions->pong, frame->ping);
            actions->flags |= CONN_SEND;
            return false;
        case EP__FRAME__BODY_PONG:
            if (self->ping_nonce && frame->pong->nonce == self->ping_nonce) {
                s_beat (self, now_ms);
                double rtt = (double) (now_ms - self->ping_sent);
                if (self->rtt >= 0)
                    self->jitter += (fabs (rtt - self->rtt) - self->jitter) / 16.0;
                self->rtt = rtt;
                self->ping_nonce = 0;
            }
            return false;
        case EP__FRAME__BODY_HELLO:
            s_refuse (self, "protocol", actions);   //  a second Hello
            return false;
        default:
            if (self->state == CONN_DRAINING
            &&  frame->body_case != EP__FRAME__BODY_COMMAND_ACK
            &&  frame->body_case != EP__FRAME__BODY_SLICE_ACK)
                return false;                       //  draining: acks only
            return true;
    }
}

void
conn_tick (conn_t *self, int64_t now_ms, conn_actions_t *actions)
{
    s_reset (actions);
    const conn_config_t *config = &self->config;
    if (self->state >= CONN_CLOSED)
        return;
    if (self->state < CONN_JOINED && !self->stray
    &&  now_ms >= self->accepted_at + config->stray_grace_ms) {
        self->stray = true;
        actions->flags |= CONN_REPORT_STRAY;
        actions->step = conn_state_name (self->last_step);
        if (config->stray_action == CONN_STRAY_DISCONNECT) {
            actions->flags |= CONN_CLOSE;
            actions->reason = "stray";
        }
        return;
    }
    if (self->state == CONN_DRAINING && now_ms >= self->drain_until) {
        actions->flags |= CONN_CLOSE;
        actions->reason = "drained";
        return;
    }
    if (self->state == CONN_JOINED || self->state == CONN_DRAINING) {
        if (now_ms >= self->last_heard + s_timeout (self)) {
            actions->flags |= CONN_CLOSE;
            actions->reason = "heartbeat-timeout";
            return;
        }
        if (self->state == CONN_JOINED && now_ms >= self->next_ping) {
            self->ping_nonce = ep_chan_ping (&actions->frame, &actions->ping, now_ms);
            self->ping_sent = now_ms;
            actions->flags |= CONN_SEND;
            self->next_ping = now_ms + config->heartbeat_ms;
        }
    }
}

int64_t
conn_deadline (conn_t *self)
{
    const conn_config_t *config = &self->config;
    switch (self->state) {
        case CONN_ACCEPTED:
        case CONN_TLS_HANDSHAKE:
        case CONN_AWAIT_HELLO:
            //  After a stray that stays open, nothing is due until it joins.
            return self->stray? INT64_MAX: self->accepted_at + config->stray_grace_ms;
        case CONN_JOINED: {
            int64_t timeout = self->last_heard + s_timeout (self);
            return self->next_ping < timeout? self->next_ping: timeout;
        }
        case CONN_DRAINING: {
            int64_t timeout = self->last_heard + s_timeout (self);
            return self->drain_until < timeout? self->drain_until: timeout;
        }
        default:
            return INT64_MAX;
    }
}

void
conn_drain (conn_t *self, const char *reason, bool reconnect, int64_t now_ms,
            conn_actions_t *actions)
{
    s_reset (actions);
    if (self->state != CONN_JOINED)
        return;
    s_enter (self, CONN_DRAINING);
    self->drain_until = now_ms + self->config.drain_grace_ms;
    ep__goodbye__init (&actions->goodbye);
    actions->goodbye.reason = (char *) reason;
    actions->goodbye.has_reconnect = true;
    actions->goodbye.reconnect = reconnect;
    actions->frame.body_case = EP__FRAME__BODY_GOODBYE;
    actions->frame.goodbye = &actions->goodbye;
    actions->flags |= CONN_SEND;
    actions->reason = reason;
}

void
conn_revoked (conn_t *self, int64_t now_ms, conn_actions_t *actions)
{
    (void) now_ms;
    s_reset (actions);
    if (self->state >= CONN_CLOSED)
        return;
    if (self->state == CONN_JOINED || self->state == CONN_DRAINING) {
        ep__goodbye__init (&actions->goodbye);
        actions->goodbye.reason = "revoked";
        actions->goodbye.has_reconnect = true;
        actions->goodbye.reconnect = false;
        actions->frame.body_case = EP__FRAME__BODY_GOODBYE;
        actions->frame.goodbye = &actions->goodbye;
        actions->flags |= CONN_SEND;
    }
    s_refuse (self, "revoked", actions);
}

void
conn_closed (conn_t *self, const char *reason, int64_t now_ms, conn_actions_t *actions)
{
    (void) now_ms;
    s_reset (actions);
    if (self->state == CONN_CLOSED)
        return;
    if (self->state == CONN_JOINED || self->state == CONN_DRAINING)
        actions->flags |= CONN_LEAVE;
    else
    if (!self->refused && !self->stray)
        self->errored = true;
    actions->reason = reason;
    self->state = CONN_CLOSED;
}

const char *
conn_role (conn_t *self)
{
    return self->role;
}

const char *
conn_id (conn_t *self)
{
    return self->id;
}

uint32_t
conn_version (conn_t *self)
{
    return self->version;
}

uint64_t
conn_model_revision (conn_t *self)
{
    return self->model_revision;
}

const char *
conn_model_generation (conn_t *self)
{
    return self->generation;
}

int64_t
conn_accepted_at (conn_t *self)
{
    return self->accepted_at;
}

int64_t
conn_joined_at (conn_t *self)
{
    return self->joined_at;
}

bool
conn_was_stray (conn_t *self)
{
    return self->stray;
}

double
conn_rtt_ms (conn_t *self)
{
    return self->rtt;
}

double
conn_jitter_ms (conn_t *self)
{
    return self->jitter;
}

int64_t
conn_heartbeat_timeout_ms (conn_t *self)
{
    return s_timeout (self);
}

bool
conn_heartbeat_timeout_changed (conn_t *self, int64_t *from_ms, int64_t *to_ms)
{
    return self->cadence
        && ep_cadence_changed (self->cadence, self->config.heartbeat_timeout_ms, from_ms, to_ms);
}

const char *
conn_outcome (conn_t *self)
{
    if (self->joined_at)
        return "joined";
    if (self->stray)
        return "stray";
    if (self->refused)
        return "refused";
    return "error";
}
