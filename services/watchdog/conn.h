/*  conn.h: one control-channel connection, as a pure state machine.

        ACCEPTED -> TLS_HANDSHAKE -> AWAIT_HELLO -> JOINED -> (DRAINING) -> CLOSED

    Inputs are what happened (TCP accept, TLS done or failed, a frame, the
    model's verdict on the peer, time passing); outputs are actions the
    caller carries out (send a frame, close, report a stray, announce a
    join or a leave). No sockets and no clocks: the caller passes now_ms and
    asks conn_deadline () when to call conn_tick () next, which is what its
    timer heap is for.

    A connection that has not JOINED within the grace period from its TCP
    accept is stray: reported once (with the last step it reached), then
    handled per the configured action. A ctrl peer whose id is not a member
    of the cluster is treated the same way with step "not-member".
*/
#ifndef CONN_H_INCLUDED
#define CONN_H_INCLUDED

#include "ep_prelude.h"
#include "channel.pb-c.h"
#include "ep_cadence.h"

typedef enum {
    CONN_ACCEPTED = 0,
    CONN_TLS_HANDSHAKE,
    CONN_AWAIT_HELLO,
    CONN_JOINED,
    CONN_DRAINING,
    CONN_CLOSED
} conn_state_t;

typedef enum {
    CONN_STRAY_NONE = 0,        //  report it (event, metric), keep it open
    CONN_STRAY_LOG,             //  report it and log it, keep it open
    CONN_STRAY_DISCONNECT       //  report it, log it and close it
} conn_stray_action_t;

//  What the model says about the peer that sent Hello.
typedef enum {
    CONN_PEER_OK = 0,           //  known, enabled, member
    CONN_PEER_UNKNOWN,          //  no such router in the model
    CONN_PEER_DISABLED,         //  router disabled
    CONN_PEER_DELETED,          //  router deleted while it was known here
    CONN_PEER_NOT_MEMBER,       //  ctrl peer that is not a cluster member
    CONN_PEER_NO_IDENTITY,      //  client whose Identity is not in the model
    CONN_PEER_IDENTITY_DISABLED,    //  client whose Identity is disabled
    CONN_PEER_IDENTITY_DELETED, //  client whose Identity was deleted while known here
    CONN_PEER_BUSY              //  any peer: the instance cannot record its join (event outbox full)
} conn_peer_t;

typedef struct {
    int64_t stray_grace_ms;             //  join deadline from TCP accept
    conn_stray_action_t stray_action;   //  what to do with a stray
    int64_t heartbeat_ms;               //  send a Ping this often once joined
    int64_t heartbeat_timeout_ms;       //  close when nothing heard for this long (fixed; the
                                        //  adaptive estimate's value until it has learnt)
    bool adaptive;                      //  learn the timeout from heartbeat arrivals (ep_cadence)
    ep_cadence_config_t cadence;        //  adaptive: window, percentile, factor, bounds
    uint32_t min_version;               //  protocol versions accepted
    uint32_t max_version;
    int64_t drain_grace_ms;             //  DRAINING lasts at most this long
    const char *instance_id;            //  this watchdog instance, in every HelloResult (may be NULL)
} conn_config_t;

//  Actions, as flags: the caller does them in this order.
#define CONN_SEND           0x01    //  send the frame in actions.frame
#define CONN_REPORT_STRAY   0x02    //  stray.detected (step in actions.step)
#define CONN_REPORT_REFUSAL 0x04    //  refused (reason in actions.reason)
#define CONN_JOIN           0x08    //  announce the join (connect event, presence)
#define CONN_LEAVE          0x10    //  announce the leave (connect event, presence)
#define CONN_CLOSE          0x20    //  close the socket (reason in actions.reason)
#define CONN_NOT_MEMBER     0x40    //  cluster.peer.not_member

typedef struct {
    unsigned flags;             //  CONN_* above
    const char *reason;         //  refusal or close reason code
    const char *step;           //  stray: the last step reached
    Ep__Frame frame;            //  CONN_SEND: the frame (points into storage below)
    Ep__HelloResult hello_result;
    Ep__Status status;
    Ep__Ping ping;
    Ep__Pong pong;
    Ep__Goodbye goodbye;
    char message [256];         //  status message storage
} conn_actions_t;

typedef struct _conn_t conn_t;

//  A connection accepted at now_ms (TCP accept).
conn_t *
    conn_new (const conn_config_t *config, int64_t now_ms);

void
    conn_destroy (conn_t **self_p);

conn_state_t
    conn_state (conn_t *self);

//  "accepted", "tls-handshake", "await-hello", "joined", "draining", "closed".
const char *
    conn_state_name (conn_state_t state);

//  The TLS handshake began (first bytes seen).
void
    conn_tls_started (conn_t *self, int64_t now_ms, conn_actions_t *actions);

//  The handshake completed; role and id come from the verified certificate.
void
    conn_tls_done (conn_t *self, const char *role, const char *id, int64_t now_ms,
                   conn_actions_t *actions);

//  The handshake failed (bad certificate, revoked, not TLS ...): reason is
//  the refusal code.
void
    conn_tls_failed (conn_t *self, const char *reason, int64_t now_ms, conn_actions_t *actions);

//  A frame arrived. For a Hello, peer is the model's verdict on the
//  certificate's identity (the caller looks it up); ignored otherwise.
//  Returns true if the frame is for the caller to handle (relay), false if
//  it was consumed here (Hello, Ping, Pong) or refused.
bool
    conn_frame (conn_t *self, const Ep__Frame *frame, conn_peer_t peer, int64_t now_ms,
                conn_actions_t *actions);

//  The framing layer refused the peer's bytes (oversized, malformed, a
//  frame that did not complete in time): reason is its code.
void
    conn_bad_input (conn_t *self, const char *reason, int64_t now_ms, conn_actions_t *actions);

//  Time passed: stray detection, heartbeats, heartbeat timeout.
void
    conn_tick (conn_t *self, int64_t now_ms, conn_actions_t *actions);

//  When conn_tick must next be called (ms), or INT64_MAX.
int64_t
    conn_deadline (conn_t *self);

//  The router was deleted (or moved to another instance): go DRAINING,
//  tell it goodbye; only acks are accepted after this.
void
    conn_drain (conn_t *self, const char *reason, bool reconnect, int64_t now_ms,
                conn_actions_t *actions);

//  The peer's certificate was revoked after its handshake: refused with
//  reason "revoked" and closed; a joined peer is told Goodbye first (not
//  to reconnect).
void
    conn_revoked (conn_t *self, int64_t now_ms, conn_actions_t *actions);

//  The socket closed (peer gone, write failed, or closed by us): reason
//  says why. Announces the leave if the peer had joined.
void
    conn_closed (conn_t *self, const char *reason, int64_t now_ms, conn_actions_t *actions);

//  Identity from the certificate and Hello ("" until known).
const char *
    conn_role (conn_t *self);
const char *
    conn_id (conn_t *self);
uint32_t
    conn_version (conn_t *self);        //  Hello's protocol_version, 0 if none
//  Hello's model_revision and model_generation (routers: the slice they
//  hold; 0 and "" if none).
uint64_t
    conn_model_revision (conn_t *self);
const char *
    conn_model_generation (conn_t *self);
int64_t
    conn_accepted_at (conn_t *self);
int64_t
    conn_joined_at (conn_t *self);      //  0 if never joined
bool
    conn_was_stray (conn_t *self);

//  Round-trip times from Ping/Pong: the last and the smoothed jitter (ms).
double
    conn_rtt_ms (conn_t *self);
double
    conn_jitter_ms (conn_t *self);

//  The heartbeat timeout in force (ms): fixed, or learnt from the
//  inter-arrival times of the peer's Pongs and Pings.
int64_t
    conn_heartbeat_timeout_ms (conn_t *self);

//  True when the timeout in force moved beyond a factor of two since the
//  last time this said so (from, to set): the caller logs it.
bool
    conn_heartbeat_timeout_changed (conn_t *self, int64_t *from_ms, int64_t *to_ms);

//  Outcome for controller_connection_duration_seconds{outcome}:
//  "joined", "stray", "refused" or "error".
const char *
    conn_outcome (conn_t *self);

#endif
