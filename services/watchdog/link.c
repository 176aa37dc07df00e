/*  link.c: an outbound ctrl-to-ctrl connection (see link.h), the logic on
    an ep_tls_server connection: what its callbacks report moves the link
    along; its deadline is the link's next timer. */
#include "link.h"
#include "ep_chan_io.h"
#include "ep_pki_tls.h"

#define PROTOCOL_VERSION    1
#define OUT_CAP             (1024 * 1024)   //  pings and pongs only: a peer this far behind is gone

struct _link_t {
    link_config_t config;       //  timeouts, our id
    char own_id [65];           //  config.own_id's storage
    char expect_id [65];        //  the peer's ctrl id, as its beacon said
    link_state_t state;         //  where it is
    ep_tls_conn_t *conn;        //  the connection, NULL once closed
    int64_t started_at;         //  link_new (ms)
    int64_t joined_at;          //  JOINED (ms), 0 if never
    int64_t last_heard;         //  anything from the peer (ms)
    int64_t next_ping;          //  when to Ping (ms)
    uint64_t ping_nonce;        //  the Ping in flight, 0 if none
    int64_t ping_sent;          //  when it went (ms)
    double rtt;                 //  last round trip (ms), -1 before the first
    bool goodbye;               //  the peer said Goodbye
    char reason [96];           //  why it closed
    char peer_instance [80];    //  HelloResult.instance_id
};

static void
s_close (link_t *self, const char *reason)
{
    if (self->state == LINK_CLOSED)
        return;
    self->state = LINK_CLOSED;
    snprintf (self->reason, sizeof self->reason, "%s", reason);
    if (self->conn)
        ep_tls_conn_close (self->conn, reason);     //  freed by the server
    self->conn = NULL;
}

static int64_t
s_deadline (link_t *self)
{
    switch (self->state) {
        case LINK_CLOSED:
            return INT64_MAX;
        case LINK_JOINED: {
            int64_t silence = self->last_heard + self->config.silence_ms;
            return self->next_ping < silence? self->next_ping: silence;
        }
        default:
            return self->started_at + self->config.join_timeout_ms;
    }
}

//  When the link's timer is due next.
static void
s_schedule (link_t *self)
{
    if (self->conn)
        ep_tls_conn_set_deadline (self->conn, s_deadline (self));
}

static void
s_send (link_t *self, const Ep__Frame *frame)
{
    if (self->conn)
        ep_tls_conn_send (self->conn, frame);
}

//  -------------------------------------------------------------------------
//  What ep_tls_server reports

static void
s_started (void *arg, ep_tls_conn_t *conn, int64_t now_ms)
{
    (void) conn, (void) now_ms;
    ((link_t *) arg)->state = LINK_HANDSHAKE;       //  connected
}

static void
s_secured (void *arg, ep_tls_conn_t *conn, int64_t now_ms)
{
    link_t *self = (link_t *) arg;
    (void) now_ms;
    char role [16], id [65];
    if (ep_pki_peer_identity (ep_tls_conn_ssl (conn), role, sizeof role, id, sizeof id) != 0
    ||  !streq (role, "ctrl") || !streq (id, self->expect_id)) {
        //  Another instance on that address now (it restarted there),
        //  or not a controller at all.
        s_close (self, "identity-mismatch");
        return;
    }
    Ep__Hello hello;
    Ep__Frame frame;
    ep_chan_hello (&frame, &hello, PROTOCOL_VERSION, EP__ROLE__ROLE_CTRL, self->own_id);
    self->state = LINK_HELLO;
    s_send (self, &frame);
}

static void
s_insecure (void *arg, ep_tls_conn_t *conn, const char *reason, int64_t now_ms)
{
    (void) conn, (void) now_ms;
    bool certificate = streq (reason, "revoked") || streq (reason, "expired")
                    || streq (reason, "untrusted-certificate");
    s_close ((link_t *) arg, certificate? "untrusted-certificate": "tls-error");
}

static void s_frame (void *arg, ep_tls_conn_t *conn, Ep__Frame *frame, int64_t now_ms);

static void
s_bad_input (void *arg, ep_tls_conn_t *conn, const char *reason, int64_t now_ms)
{
    (void) conn, (void) now_ms;
    s_close ((link_t *) arg, reason);
}

static void
s_timer (void *arg, ep_tls_conn_t *conn, int64_t now_ms)
{
    link_t *self = (link_t *) arg;
    (void) conn;
    if (self->state != LINK_JOINED && now_ms >= self->started_at + self->config.join_timeout_ms)
        s_close (self, "timeout");
    else
    if (self->state == LINK_JOINED && now_ms >= self->last_heard + self->config.silence_ms)
        s_close (self, "heartbeat-timeout");
    else
    if (self->state == LINK_JOINED && now_ms >= self->next_ping) {
        Ep__Ping ping;
        Ep__Frame frame;
        self->ping_nonce = ep_chan_ping (&frame, &ping, now_ms);
        self->ping_sent = now_ms;
        self->next_ping = now_ms + self->config.heartbeat_ms;
        s_send (self, &frame);
    }
    s_schedule (self);
}

static void
s_closed (void *arg, ep_tls_conn_t *conn, const char *reason)
{
    (void) conn;
    s_close ((link_t *) arg, reason);
}

static const ep_tls_handler_t s_handler = {
    .started = s_started, .secured = s_secured, .insecure = s_insecure, .frame = s_frame,
    .bad_input = s_bad_input, .timer = s_timer, .closed = s_closed
};

link_t *
link_new (ep_tls_server_t *server, const char *address, SSL_CTX *ctx, const char *expect_id,
          const link_config_t *config, int64_t now_ms)
{
    link_t *self = (link_t *) zmalloc (sizeof (link_t));
    self->config = *config;
    snprintf (self->own_id, sizeof self->own_id, "%s", config->own_id);
    self->config.own_id = self->own_id;
    snprintf (self->expect_id, sizeof self->expect_id, "%s", expect_id);
    self->rtt = -1;
    self->started_at = now_ms;
    self->state = LINK_CONNECTING;
    ep_tls_conn_config_t setup = { .frame_cap = EP_FRAME_PREJOIN_CAP, .out_cap = OUT_CAP };
    const char *reason;
    self->conn = ep_tls_server_dial (server, address, ctx, &setup, &s_handler, self, &reason);
    if (!self->conn)
        s_close (self, reason);
    s_schedule (self);
    return self;
}

void
link_destroy (link_t **self_p)
{
    link_t *self = *self_p;
    if (self) {
        s_close (self, "destroyed");
        free (self);
        *self_p = NULL;
    }
}

link_state_t
link_state (link_t *self)
{
    return self->state;
}

const char *
link_state_name (link_state_t state)
{
    static const char *names [] = { "connecting", "handshake", "hello", "joined", "closed" };
    return state <= LINK_CLOSED? names [state]: "?";
}

static void
s_frame (void *arg, ep_tls_conn_t *conn, Ep__Frame *frame, int64_t now_ms)
{
    link_t *self = (link_t *) arg;
    self->last_heard = now_ms;
    switch (frame->body_case) {
        case EP__FRAME__BODY_HELLO_RESULT: {
            if (self->state != LINK_HELLO)
                break;
            Ep__HelloResult *result = frame->hello_result;
            if (!result->status || result->status->code != EP__STATUS__CODE__OK) {
                s_close (self, result->reason? result->reason: "refused");
                break;
            }
            snprintf (self->peer_instance, sizeof self->peer_instance, "%s",
                      result->instance_id? result->instance_id: "");
            self->state = LINK_JOINED;
            self->joined_at = now_ms;
            self->next_ping = now_ms + self->config.heartbeat_ms;
            ep_tls_conn_set_frame_cap (conn, EP_FRAME_JOINED_CAP);
            break;
        }
        case EP__FRAME__BODY_PING: {
            Ep__Pong pong;
            Ep__Frame reply;
            ep_chan_pong (&reply, &pong, frame->ping);
            s_send (self, &reply);
            break;
        }
        case EP__FRAME__BODY_PONG:
            if (self->ping_nonce && frame->pong->nonce == self->ping_nonce) {
                self->rtt = (double) (now_ms - self->ping_sent);
                self->ping_nonce = 0;
            }
            break;
        case EP__FRAME__BODY_GOODBYE:
            self->goodbye = true;
            s_close (self, "goodbye");
            break;
        default:
            break;          //  nothing else travels between controllers yet
    }
    ep__frame__free_unpacked (frame, NULL);
    s_schedule (self);
}

void
link_close (link_t *self, const char *reason)
{
    s_close (self, reason);
}

const char *
link_reason (link_t *self)
{
    return self->reason;
}

bool
link_goodbye (link_t *self)
{
    return self->goodbye;
}

const char *
link_peer_instance (link_t *self)
{
    return self->peer_instance;
}

int64_t
link_joined_at (link_t *self)
{
    return self->joined_at;
}

double
link_rtt_ms (link_t *self)
{
    return self->rtt;
}
