/*  test_conn.c: the watchdog's connection state machine, transition by
    transition and timer by timer, without sockets. */
#include <criterion/criterion.h>
#include "conn.h"

static conn_config_t s_config = {
    .stray_grace_ms = 500, .stray_action = CONN_STRAY_DISCONNECT,
    .heartbeat_ms = 10000, .heartbeat_timeout_ms = 30000,
    .min_version = 1, .max_version = 2, .drain_grace_ms = 5000,
    .instance_id = "watchdog-i1"
};

static Ep__Hello s_hello_msg;
static Ep__Frame s_frame;

static Ep__Frame *
s_hello (uint32_t version, Ep__Role role, const char *id)
{
    ep__hello__init (&s_hello_msg);
    s_hello_msg.has_protocol_version = true;
    s_hello_msg.protocol_version = version;
    s_hello_msg.has_role = true;
    s_hello_msg.role = role;
    s_hello_msg.id = (char *) id;
    ep__frame__init (&s_frame);
    s_frame.body_case = EP__FRAME__BODY_HELLO;
    s_frame.hello = &s_hello_msg;
    return &s_frame;
}

//  A router r1 through TLS, ready for Hello, accepted at t=0.
static conn_t *
s_awaiting (conn_actions_t *a)
{
    conn_t *conn = conn_new (&s_config, 0);
    cr_assert_eq (conn_state (conn), CONN_ACCEPTED);
    conn_tls_started (conn, 10, a);
    cr_assert_eq (conn_state (conn), CONN_TLS_HANDSHAKE);
    conn_tls_done (conn, "router", "r1", 20, a);
    cr_assert_eq (conn_state (conn), CONN_AWAIT_HELLO);
    return conn;
}

Test (conn, join_sends_ok_and_announces)
{
    conn_actions_t a;
    conn_t *conn = s_awaiting (&a);
    conn_frame (conn, s_hello (1, EP__ROLE__ROLE_ROUTER, "r1"), CONN_PEER_OK, 30, &a);
    cr_assert_eq (conn_state (conn), CONN_JOINED);
    cr_assert (a.flags & CONN_SEND);
    cr_assert (a.flags & CONN_JOIN);
    cr_assert_not (a.flags & CONN_CLOSE);
    cr_assert_eq (a.frame.body_case, EP__FRAME__BODY_HELLO_RESULT);
    cr_assert_eq (a.hello_result.status->code, EP__STATUS__CODE__OK);
    cr_assert_str_eq (a.hello_result.instance_id, "watchdog-i1", "the instance holding it");
    cr_assert_eq (conn_joined_at (conn), 30);
    cr_assert_str_eq (conn_outcome (conn), "joined");
    conn_destroy (&conn);
}

Test (conn, stray_not_before_grace_then_reported_with_last_step_and_closed)
{
    conn_actions_t a;
    conn_t *conn = conn_new (&s_config, 1000);
    cr_assert_eq (conn_deadline (conn), 1500);
    conn_tick (conn, 1499, &a);
    cr_assert_eq (a.flags, 0, "nothing before the grace ends");
    conn_tick (conn, 1500, &a);
    cr_assert (a.flags & CONN_REPORT_STRAY);
    cr_assert (a.flags & CONN_CLOSE);
    cr_assert_str_eq (a.step, "accepted");
    cr_assert_str_eq (a.reason, "stray");
    cr_assert_str_eq (conn_outcome (conn), "stray");
    conn_destroy (&conn);

    //  One that got as far as AWAIT_HELLO reports that step.
    conn = s_awaiting (&a);
    conn_tick (conn, 500, &a);
    cr_assert_str_eq (a.step, "await-hello");
    conn_destroy (&conn);
}

Test (conn, stray_with_action_none_is_reported_once_and_stays_open)
{
    conn_config_t config = s_config;
    config.stray_action = CONN_STRAY_NONE;
    conn_actions_t a;
    conn_t *conn = conn_new (&config, 0);
    conn_tick (conn, 500, &a);
    cr_assert (a.flags & CONN_REPORT_STRAY);
    cr_assert_not (a.flags & CONN_CLOSE);
    cr_assert_eq (conn_deadline (conn), INT64_MAX, "no timer left once reported");
    conn_tick (conn, 5000, &a);
    cr_assert_eq (a.flags, 0, "reported once");
    //  It may still join late.
    conn_tls_done (conn, "router", "r1", 6000, &a);
    conn_frame (conn, s_hello (1, EP__ROLE__ROLE_ROUTER, "r1"), CONN_PEER_OK, 6001, &a);
    cr_assert_eq (conn_state (conn), CONN_JOINED);
    conn_destroy (&conn);
}

Test (conn, joined_connection_is_never_stray)
{
    conn_actions_t a;
    conn_t *conn = s_awaiting (&a);
    conn_frame (conn, s_hello (2, EP__ROLE__ROLE_ROUTER, "r1"), CONN_PEER_OK, 100, &a);
    conn_tick (conn, 1500, &a);
    cr_assert_not (a.flags & CONN_REPORT_STRAY);
    cr_assert_not (a.flags & CONN_CLOSE);
    conn_destroy (&conn);
}

Test (conn, unsupported_version_gets_the_range_then_close)
{
    conn_actions_t a;
    conn_t *conn = s_awaiting (&a);
    conn_frame (conn, s_hello (7, EP__ROLE__ROLE_ROUTER, "r1"), CONN_PEER_OK, 30, &a);
    cr_assert (a.flags & CONN_SEND);
    cr_assert (a.flags & CONN_CLOSE);
    cr_assert (a.flags & CONN_REPORT_REFUSAL);
    cr_assert_str_eq (a.reason, "unsupported-version");
    cr_assert_eq (a.hello_result.min_protocol_version, 1);
    cr_assert_eq (a.hello_result.max_protocol_version, 2);
    cr_assert (strstr (a.hello_result.status->message, "use 1 to 2"));
    cr_assert_eq (conn_version (conn), 7);
    cr_assert_str_eq (conn_outcome (conn), "refused");
    conn_destroy (&conn);
}

Test (conn, each_refusal_has_its_own_reason)
{
    struct { Ep__Role role; const char *id; conn_peer_t peer; const char *reason; } cases [] = {
        { EP__ROLE__ROLE_ROUTER, "r2", CONN_PEER_OK, "identity-mismatch" },
        { EP__ROLE__ROLE_CLIENT, "r1", CONN_PEER_OK, "identity-mismatch" },
        { EP__ROLE__ROLE_ROUTER, "r1", CONN_PEER_UNKNOWN, "unknown-router" },
        { EP__ROLE__ROLE_ROUTER, "r1", CONN_PEER_DISABLED, "router-disabled" },
        { EP__ROLE__ROLE_ROUTER, "r1", CONN_PEER_DELETED, "router-deleted" },
        { EP__ROLE__ROLE_ROUTER, "r1", CONN_PEER_BUSY, "event-outbox-full" },
    };
    for (size_t i = 0; i < EP_COUNT (cases); i++) {
        conn_actions_t a;
        conn_t *conn = s_awaiting (&a);
        conn_frame (conn, s_hello (1, cases [i].role, cases [i].id), cases [i].peer, 30, &a);
        cr_assert (a.flags & CONN_CLOSE, "case %zu", i);
        cr_assert_str_eq (a.reason, cases [i].reason, "case %zu", i);
        cr_assert_neq (conn_state (conn), CONN_JOINED);
        conn_destroy (&conn);
    }
    //  TLS failures and framing errors carry the reason given.
    conn_actions_t a;
    conn_t *conn = conn_new (&s_config, 0);
    conn_tls_failed (conn, "revoked", 5, &a);
    cr_assert (a.flags & CONN_REPORT_REFUSAL && a.flags & CONN_CLOSE);
    cr_assert_str_eq (a.reason, "revoked");
    conn_destroy (&conn);
    conn = s_awaiting (&a);
    conn_bad_input (conn, "oversized", 25, &a);
    cr_assert_str_eq (a.reason, "oversized");
    conn_destroy (&conn);
    //  Anything but Hello first.
    conn = s_awaiting (&a);
    Ep__Ping ping = EP__PING__INIT;
    Ep__Frame frame = EP__FRAME__INIT;
    frame.body_case = EP__FRAME__BODY_PING;
    frame.ping = &ping;
    conn_frame (conn, &frame, CONN_PEER_OK, 30, &a);
    cr_assert_str_eq (a.reason, "expected-hello");
    conn_destroy (&conn);
}

Test (conn, non_member_ctrl_is_a_stray_at_step_not_member)
{
    conn_actions_t a;
    conn_t *conn = conn_new (&s_config, 0);
    conn_tls_done (conn, "ctrl", "c9", 10, &a);
    conn_frame (conn, s_hello (1, EP__ROLE__ROLE_CTRL, "c9"), CONN_PEER_NOT_MEMBER, 20, &a);
    cr_assert (a.flags & CONN_REPORT_STRAY);
    cr_assert (a.flags & CONN_NOT_MEMBER);
    cr_assert (a.flags & CONN_CLOSE);
    cr_assert_str_eq (a.step, "not-member");
    cr_assert_str_eq (conn_outcome (conn), "stray");
    conn_destroy (&conn);
}

Test (conn, heartbeats_measure_rtt_and_silence_closes)
{
    conn_actions_t a;
    conn_t *conn = s_awaiting (&a);
    conn_frame (conn, s_hello (1, EP__ROLE__ROLE_ROUTER, "r1"), CONN_PEER_OK, 0, &a);
    cr_assert_eq (conn_deadline (conn), 10000, "first ping due after the interval");
    conn_tick (conn, 10000, &a);
    cr_assert (a.flags & CONN_SEND);
    cr_assert_eq (a.frame.body_case, EP__FRAME__BODY_PING);
    Ep__Pong pong = EP__PONG__INIT;
    pong.has_nonce = true;
    pong.nonce = a.ping.nonce;
    Ep__Frame frame = EP__FRAME__INIT;
    frame.body_case = EP__FRAME__BODY_PONG;
    frame.pong = &pong;
    cr_assert_not (conn_frame (conn, &frame, CONN_PEER_OK, 10040, &a));
    cr_assert_float_eq (conn_rtt_ms (conn), 40.0, 0.001);
    //  A ping from the router is answered with a pong.
    Ep__Ping ping = EP__PING__INIT;
    ping.has_nonce = true;
    ping.nonce = 77;
    frame.body_case = EP__FRAME__BODY_PING;
    frame.ping = &ping;
    conn_frame (conn, &frame, CONN_PEER_OK, 10050, &a);
    cr_assert_eq (a.frame.body_case, EP__FRAME__BODY_PONG);
    cr_assert_eq (a.pong.nonce, 77);
    //  Then silence: closed 30 s after the last frame heard, not before.
    conn_tick (conn, 20050, &a);        //  a ping, not a close
    cr_assert_not (a.flags & CONN_CLOSE);
    conn_tick (conn, 40049, &a);
    cr_assert_not (a.flags & CONN_CLOSE);
    conn_tick (conn, 40050, &a);
    cr_assert (a.flags & CONN_CLOSE);
    cr_assert_str_eq (a.reason, "heartbeat-timeout");
    conn_closed (conn, a.reason, 40050, &a);
    cr_assert (a.flags & CONN_LEAVE);
    cr_assert_eq (conn_state (conn), CONN_CLOSED);
    conn_destroy (&conn);
}

Test (conn, draining_accepts_only_acks)
{
    conn_actions_t a;
    conn_t *conn = s_awaiting (&a);
    conn_frame (conn, s_hello (1, EP__ROLE__ROLE_ROUTER, "r1"), CONN_PEER_OK, 0, &a);
    Ep__Frame frame = EP__FRAME__INIT;
    Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
    frame.body_case = EP__FRAME__BODY_TERMINATOR_REQUEST;
    frame.terminator_request = &request;
    cr_assert (conn_frame (conn, &frame, CONN_PEER_OK, 5, &a), "joined: relayed");
    conn_drain (conn, "router-deleted", false, 10, &a);
    cr_assert_eq (conn_state (conn), CONN_DRAINING);
    cr_assert_eq (a.frame.body_case, EP__FRAME__BODY_GOODBYE);
    cr_assert_not (a.goodbye.reconnect);
    cr_assert_not (conn_frame (conn, &frame, CONN_PEER_OK, 20, &a), "draining: requests dropped");
    Ep__CommandAck ack = EP__COMMAND_ACK__INIT;
    frame.body_case = EP__FRAME__BODY_COMMAND_ACK;
    frame.command_ack = &ack;
    cr_assert (conn_frame (conn, &frame, CONN_PEER_OK, 30, &a), "draining: acks relayed");
    cr_assert_eq (conn_deadline (conn), 5010, "draining ends after its grace");
    conn_tick (conn, 5009, &a);
    cr_assert_not (a.flags & CONN_CLOSE);
    conn_tick (conn, 5010, &a);
    cr_assert (a.flags & CONN_CLOSE);
    cr_assert_str_eq (a.reason, "drained");
    conn_closed (conn, "drained", 5010, &a);
    cr_assert (a.flags & CONN_LEAVE);
    conn_destroy (&conn);
}

Test (conn, closed_before_joining_is_an_error_outcome)
{
    conn_actions_t a;
    conn_t *conn = conn_new (&s_config, 0);
    conn_closed (conn, "peer-closed", 10, &a);
    cr_assert_not (a.flags & CONN_LEAVE);
    cr_assert_str_eq (conn_outcome (conn), "error");
    conn_tick (conn, 1000, &a);
    cr_assert_eq (a.flags, 0, "nothing happens to a closed connection");
    conn_destroy (&conn);
}

Test (conn, revoked_after_joining_is_told_goodbye_refused_and_closed)
{
    conn_actions_t a;
    conn_t *conn = s_awaiting (&a);
    conn_frame (conn, s_hello (1, EP__ROLE__ROLE_ROUTER, "r1"), CONN_PEER_OK, 30, &a);
    cr_assert_eq (conn_state (conn), CONN_JOINED);
    conn_revoked (conn, 40, &a);
    cr_assert (a.flags & CONN_SEND);
    cr_assert_eq (a.frame.body_case, EP__FRAME__BODY_GOODBYE);
    cr_assert_str_eq (a.goodbye.reason, "revoked");
    cr_assert (a.goodbye.has_reconnect && !a.goodbye.reconnect, "a revoked router must not come back");
    cr_assert (a.flags & CONN_REPORT_REFUSAL);
    cr_assert (a.flags & CONN_CLOSE);
    cr_assert_str_eq (a.reason, "revoked");
    conn_closed (conn, "revoked", 41, &a);
    cr_assert (a.flags & CONN_LEAVE, "a joined peer's leave is announced");
    cr_assert_str_eq (conn_outcome (conn), "joined");
    conn_revoked (conn, 50, &a);
    cr_assert_eq (a.flags, 0, "nothing once closed");
    conn_destroy (&conn);

    //  Before Hello: refused and closed, nothing sent.
    conn = s_awaiting (&a);
    conn_revoked (conn, 30, &a);
    cr_assert_not (a.flags & CONN_SEND);
    cr_assert (a.flags & CONN_REPORT_REFUSAL);
    cr_assert (a.flags & CONN_CLOSE);
    cr_assert_str_eq (conn_outcome (conn), "refused");
    conn_destroy (&conn);
}
