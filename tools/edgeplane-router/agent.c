/*  agent.c: a router on the control channel (see agent.h).

    Requests carry ids that say what they are about ("t:<service>" for a
    terminator, "s:<session>" for a session), so a reply finds its object
    without a table of requests in flight; anything unconfirmed is sent
    again after the request timeout, which is safe because creates and
    opens are idempotent on the router-chosen ids.
*/
#include "agent.h"
#include "ep_log.h"
#include "ep_backoff.h"
#include "chan_client.h"
#include "termids.h"
#include <errno.h>
#include <sodium.h>

#define BATCH_SESSIONS 5000     //  session ids per heartbeat or command ack frame

typedef struct {
    char terminator_id [33];    //  kept across restarts
    uint32_t cost;              //  from the slice
    Ep__Precedence precedence;  //  from the slice
    bool confirmed;             //  the service answered OK
    int64_t sent_ms;            //  last create sent
} s_hosted_t;

//  A request refused as retriable (a shard handover), kept by request id
//  until it is answered OK or refused for good.
typedef struct {
    ep_backoff_t backoff;       //  delays before asking again
    int64_t due_ms;             //  when to ask again (0: sent, waiting for the answer)
} s_retry_t;

//  A hosted service's settings, from the slice (protocol 2).
typedef struct {
    bool enabled;               //  the model's enabled flag
    Ep__Criticality criticality;    //  its sessions say it when they open
} s_service_t;

typedef struct {
    char service_id [65];       //  what it reaches
    uint64_t bytes_rx;          //  cumulative counters
    uint64_t bytes_tx;
    bool confirmed;             //  the reaper answered OK
    int64_t sent_ms;            //  last open sent
    char src_addr [48];         //  the client's address, as reported at open and close
} s_session_t;

struct _agent_t {
    agent_config_t config;   //  copy (strings duplicated below)
    char *id;                   //  router id
    char identity [80];         //  its sessions' identity id: "id-<router id>"
    char *controller;           //  host:port
    chan_client_t *client;   //  the connection, NULL while disconnected
    ep_backoff_t backoff;       //  reconnect delays
    int64_t next_connect_ms;    //  when to try again
    int64_t next_warn_ms;       //  when a failed connect may be logged again
    bool draining;              //  told goodbye without reconnect: acks only
    zhashx_t *hosted;           //  service id -> s_hosted_t (current slice)
    zhashx_t *deleting;         //  service id -> s_hosted_t: deletes not yet answered OK
    zhashx_t *services;         //  service id -> s_service_t (protocol 2 slices carry them)
    char generation [65];       //  the model generation of its slice
    termids_t *termids;         //  service id -> terminator id (kept on disk)
    zhashx_t *sessions;         //  session id -> s_session_t
    zhashx_t *retries;          //  request id -> s_retry_t: refused as retriable, asked again
    zlistx_t *edges;            //  Ep__EdgeConnect * waiting to be reported
    uint64_t frame_id;          //  last frame id used
    int64_t next_heartbeat_ms;  //  session heartbeat batch due
    int64_t next_churn_ms;      //  next session replaced
    int64_t next_resend_ms;     //  unconfirmed requests sent again
    agent_stats_t stats;     //  counters for callers
};

static void
s_edge_destroy (void **item)
{
    Ep__EdgeConnect *edge = (Ep__EdgeConnect *) *item;
    if (edge) {
        free (edge->identity_id);
        free (edge->src_addr);
        free (edge);
        *item = NULL;
    }
}

bool
agent_acks (const agent_config_t *config, const char *session_id)
{
    if (config->ack_share >= 1.0)
        return true;
    if (config->ack_share <= 0.0)
        return false;
    uint8_t hash [8];
    crypto_generichash (hash, sizeof hash, (const unsigned char *) session_id,
                        strlen (session_id), NULL, 0);
    uint32_t value = ((uint32_t) hash [0] << 8) | hash [1];
    return value < (uint32_t) (config->ack_share * 65536.0);
}

//  -------------------------------------------------------------------------

agent_t *
agent_new (const agent_config_t *config)
{
    EP_ASSERT (config->id && config->ctx && config->controller);
    EP_ASSERT (sodium_init () >= 0);
    agent_t *self = (agent_t *) zmalloc (sizeof (agent_t));
    self->config = *config;
    self->id = strdup (config->id);
    snprintf (self->identity, sizeof self->identity, "id-%s", self->id);
    self->controller = strdup (config->controller);
    if (self->config.heartbeat_ms <= 0)
        self->config.heartbeat_ms = 5000;
    if (self->config.backoff_base_ms <= 0)
        self->config.backoff_base_ms = 200;
    if (self->config.backoff_max_ms < self->config.backoff_base_ms)
        self->config.backoff_max_ms = 30000;
    if (self->config.request_timeout_ms <= 0)
        self->config.request_timeout_ms = 5000;
    self->backoff = ep_backoff (self->config.backoff_base_ms, self->config.backoff_max_ms);
    self->hosted = zhashx_new ();
    self->services = zhashx_new ();
    zhashx_set_destructor (self->services, (czmq_destructor *) zstr_free);
    zhashx_set_destructor (self->hosted, (czmq_destructor *) zstr_free);
    self->deleting = zhashx_new ();
    zhashx_set_destructor (self->deleting, (czmq_destructor *) zstr_free);
    self->termids = termids_new (config->state_dir, self->id);
    self->sessions = zhashx_new ();
    zhashx_set_destructor (self->sessions, (czmq_destructor *) zstr_free);
    self->retries = zhashx_new ();
    zhashx_set_destructor (self->retries, (czmq_destructor *) zstr_free);
    self->edges = zlistx_new ();
    zlistx_set_destructor (self->edges, s_edge_destroy);
    self->next_connect_ms = ep_mono_ms ();
    return self;
}

void
agent_destroy (agent_t **self_p)
{
    agent_t *self = *self_p;
    if (self) {
        chan_client_destroy (&self->client);
        zhashx_destroy (&self->hosted);
        zhashx_destroy (&self->deleting);
        zhashx_destroy (&self->services);
        termids_destroy (&self->termids);
        zhashx_destroy (&self->sessions);
        zhashx_destroy (&self->retries);
        zlistx_destroy (&self->edges);
        free (self->id);
        free (self->controller);
        free (self);
        *self_p = NULL;
    }
}

static int
s_send (agent_t *self, Ep__Frame *frame)
{
    if (!self->client)
        return -1;
    frame->has_id = true;
    frame->id = ++self->frame_id;
    return chan_client_send (self->client, frame, 2000);
}

//  Sends request as this router, under request_id.
static void
s_send_terminator_request (agent_t *self, char *request_id, Ep__TerminatorRequest *request)
{
    request->request_id = request_id;
    request->router_id = self->id;          //  the watchdog sets it anyway
    Ep__Frame frame = EP__FRAME__INIT;
    frame.body_case = EP__FRAME__BODY_TERMINATOR_REQUEST;
    frame.terminator_request = request;
    s_send (self, &frame);
}

//  Sends request as this router, under request_id.
static void
s_send_session_request (agent_t *self, char *request_id, Ep__SessionRequest *request)
{
    request->request_id = request_id;
    request->router_id = self->id;
    Ep__Frame frame = EP__FRAME__INIT;
    frame.body_case = EP__FRAME__BODY_SESSION_REQUEST;
    frame.session_request = request;
    s_send (self, &frame);
}

static void
s_disconnect (agent_t *self, const char *why, int64_t delay_ms)
{
    if (self->client) {
        snprintf (self->stats.last_error, sizeof self->stats.last_error, "%s", why);
        chan_client_destroy (&self->client);
    }
    self->stats.joined = false;
    self->draining = false;
    //  Everything is confirmed again after the next join.
    s_session_t *session = (s_session_t *) zhashx_first (self->sessions);
    for (; session; session = (s_session_t *) zhashx_next (self->sessions))
        session->confirmed = false;
    s_hosted_t *hosted = (s_hosted_t *) zhashx_first (self->hosted);
    for (; hosted; hosted = (s_hosted_t *) zhashx_next (self->hosted))
        hosted->confirmed = false;
    //  A delete still pending is settled by the next join's full slice and
    //  the service's validation; opens and creates are sent again at the
    //  join; a close not yet taken is left to the reaper's expiry.
    zhashx_purge (self->deleting);
    zhashx_purge (self->retries);
    self->stats.terminators = self->stats.sessions = 0;
    self->next_connect_ms = ep_mono_ms () + (delay_ms >= 0? delay_ms: ep_backoff_next (&self->backoff));
}

//  -------------------------------------------------------------------------
//  Terminators

static void
s_terminator_request (agent_t *self, const char *service_id, s_hosted_t *hosted, bool create)
{
    char request_id [80];
    snprintf (request_id, sizeof request_id, "t:%s", service_id);
    Ep__Terminator terminator = EP__TERMINATOR__INIT;
    Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
    request.has_model_revision = true;
    request.model_revision = self->stats.slice_revision;
    if (create) {
        terminator.id = (char *) termids_get (self->termids, service_id);
        terminator.service_id = (char *) service_id;
        terminator.router_id = self->id;
        terminator.has_cost = terminator.has_precedence = true;
        terminator.cost = hosted->cost;
        terminator.precedence = hosted->precedence;
        request.op_case = EP__TERMINATOR_REQUEST__OP_CREATE;
        request.create = &terminator;
        hosted->sent_ms = ep_mono_ms ();
    }
    else {
        snprintf (request_id, sizeof request_id, "d:%s", service_id);
        request.op_case = EP__TERMINATOR_REQUEST__OP_DELETE_ID;
        request.delete_id = (char *) termids_get (self->termids, service_id);
    }
    s_send_terminator_request (self, request_id, &request);
}

//  Deletes the terminator of service_id, and keeps asking while the
//  answer is a retriable refusal (a shard handover), until it is OK.
static void
s_terminator_delete (agent_t *self, const char *service_id)
{
    if (!zhashx_lookup (self->deleting, service_id))
        zhashx_insert (self->deleting, service_id, zmalloc (sizeof (s_hosted_t)));
    s_terminator_request (self, service_id, NULL, false);
}

//  Why slice cannot be applied to what the router holds, or NULL.
static const char *
s_slice_problem (agent_t *self, const Ep__ModelSlice *slice, char *why, size_t size)
{
    if (!slice->full && slice->has_since_revision && slice->since_revision != self->stats.slice_revision) {
        snprintf (why, size, "a difference from revision %llu, but this router holds %llu",
                  (unsigned long long) slice->since_revision, (unsigned long long) self->stats.slice_revision);
        return why;
    }
    //  What it would host: the full list, or what it holds plus the new.
    size_t count = slice->full? 0: zhashx_size (self->hosted);
    for (size_t i = 0; i < slice->n_hosted; i++)
        count += slice->full || !zhashx_lookup (self->hosted, slice->hosted [i]->service_id);
    for (size_t i = 0; !slice->full && i < slice->n_removed; i++)
        count -= zhashx_lookup (self->hosted, slice->removed [i]) != NULL;
    if (self->config.max_services > 0 && count > (size_t) self->config.max_services) {
        snprintf (why, size, "it would host %zu services and this router serves at most %d (--max-services)",
                  count, self->config.max_services);
        return why;
    }
    return NULL;
}

//  Refuses slice: the router keeps its last good one.
static void
s_slice_nack (agent_t *self, const Ep__ModelSlice *slice, const char *why)
{
    ep_log_warn ("router %s: slice %llu refused: %s", self->id, (unsigned long long) slice->revision, why);
    self->stats.slices_rejected++;
    Ep__SliceNack nack = EP__SLICE_NACK__INIT;
    nack.has_revision = nack.has_kept_revision = true;
    nack.revision = slice->revision;
    nack.kept_revision = self->stats.slice_revision;
    nack.reason = (char *) why;
    Ep__Frame frame = EP__FRAME__INIT;
    frame.body_case = EP__FRAME__BODY_SLICE_NACK;
    frame.slice_nack = &nack;
    s_send (self, &frame);
}

//  Protocol 2: the settings of the services it hosts.
static void
s_slice_services (agent_t *self, const Ep__ModelSlice *slice)
{
    if (slice->full && slice->router)
        zhashx_purge (self->services);
    for (size_t i = 0; i < slice->n_services; i++) {
        const Ep__Service *entity = slice->services [i];
        if (!entity->id)
            continue;
        s_service_t *service = (s_service_t *) zmalloc (sizeof (s_service_t));
        service->enabled = !entity->has_enabled || entity->enabled;
        service->criticality = entity->criticality;     //  absent: normal (0)
        zhashx_update (self->services, entity->id, service);
    }
    for (size_t i = 0; i < slice->n_removed; i++)
        zhashx_delete (self->services, slice->removed [i]);
    self->stats.services = zhashx_size (self->services);
    if (slice->generation)
        snprintf (self->generation, sizeof self->generation, "%s", slice->generation);
}

static void
s_slice (agent_t *self, const Ep__ModelSlice *slice)
{
    char why [200];
    if (s_slice_problem (self, slice, why, sizeof why)) {
        s_slice_nack (self, slice, why);
        return;
    }
    if (slice->full)
        self->stats.slices_full++;
    else
        self->stats.slices_diff++;
    s_slice_services (self, slice);
    if (slice->full) {
        //  Services no longer listed go, with their terminators.
        zlistx_t *gone = zlistx_new ();
        zlistx_set_destructor (gone, (czmq_destructor *) zstr_free);
        s_hosted_t *hosted = (s_hosted_t *) zhashx_first (self->hosted);
        for (; hosted; hosted = (s_hosted_t *) zhashx_next (self->hosted)) {
            const char *service_id = (const char *) zhashx_cursor (self->hosted);
            bool listed = false;
            for (size_t i = 0; i < slice->n_hosted; i++)
                listed |= streq (slice->hosted [i]->service_id, service_id);
            if (!listed)
                zlistx_add_end (gone, strdup (service_id));
        }
        for (char *id = (char *) zlistx_first (gone); id; id = (char *) zlistx_next (gone)) {
            s_terminator_delete (self, id);
            zhashx_delete (self->hosted, id);
        }
        zlistx_destroy (&gone);
    }
    for (size_t i = 0; i < slice->n_removed; i++) {
        if (zhashx_lookup (self->hosted, slice->removed [i])) {
            s_terminator_delete (self, slice->removed [i]);
            zhashx_delete (self->hosted, slice->removed [i]);
        }
    }
    if (slice->has_revision)
        self->stats.slice_revision = slice->revision;
    for (size_t i = 0; i < slice->n_hosted; i++) {
        Ep__HostedService *service = slice->hosted [i];
        s_hosted_t *hosted = (s_hosted_t *) zhashx_lookup (self->hosted, service->service_id);
        if (!hosted) {
            hosted = (s_hosted_t *) zmalloc (sizeof (s_hosted_t));
            zhashx_insert (self->hosted, service->service_id, hosted);
        }
        //  Hosted again: its create supersedes a delete still pending.
        zhashx_delete (self->deleting, service->service_id);
        hosted->cost = service->cost;
        hosted->precedence = service->precedence;
        hosted->confirmed = false;
        s_terminator_request (self, service->service_id, hosted, true);
    }
    self->stats.hosted = zhashx_size (self->hosted);
    Ep__SliceAck ack = EP__SLICE_ACK__INIT;
    ack.has_revision = true;
    ack.revision = self->stats.slice_revision;
    Ep__Frame frame = EP__FRAME__INIT;
    frame.body_case = EP__FRAME__BODY_SLICE_ACK;
    frame.slice_ack = &ack;
    s_send (self, &frame);
}

//  -------------------------------------------------------------------------
//  Sessions

static void
s_session_open (agent_t *self, const char *session_id, s_session_t *session)
{
    char request_id [96];
    snprintf (request_id, sizeof request_id, "s:%s", session_id);
    Ep__Session body = EP__SESSION__INIT;
    body.id = (char *) session_id;
    body.router_id = self->id;
    body.identity_id = self->identity;
    body.service_id = session->service_id;
    body.has_type = true;
    body.type = EP__SESSION_TYPE__DIAL;
    //  The reaper cleans up critical services' sessions first: it learns
    //  the criticality from here (a protocol-1 slice has none: normal).
    const s_service_t *service = (const s_service_t *) zhashx_lookup (self->services, session->service_id);
    body.has_criticality = service != NULL;
    body.criticality = service? service->criticality: EP__CRITICALITY__CRITICALITY_NORMAL;
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.op_case = EP__SESSION_REQUEST__OP_OPEN;
    request.open = &body;
    session->sent_ms = ep_mono_ms ();
    s_send_session_request (self, request_id, &request);
}

static void
s_session_send_close (agent_t *self, const char *session_id)
{
    char request_id [96];
    snprintf (request_id, sizeof request_id, "c:%s", session_id);
    Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
    request.op_case = EP__SESSION_REQUEST__OP_CLOSE_ID;
    request.close_id = (char *) session_id;
    s_send_session_request (self, request_id, &request);
}

//  Closes session_id: the reaper is told, and the session is gone here.
static void
s_session_close (agent_t *self, const char *session_id)
{
    s_session_send_close (self, session_id);
    //  The close carries the address the open reported.
    s_session_t *session = (s_session_t *) zhashx_lookup (self->sessions, session_id);
    char source [48];
    snprintf (source, sizeof source, "%s", session && *session->src_addr? session->src_addr: "");
    zhashx_delete (self->sessions, session_id);
    agent_report_edge (self, self->identity, source, false);
}

//  Opens sessions until it holds as many as configured.
static void
s_sessions_fill (agent_t *self)
{
    size_t services = zhashx_size (self->hosted);
    if (!self->stats.joined || services == 0)
        return;
    while (zhashx_size (self->sessions) < (size_t) self->config.sessions) {
        s_session_t *session = (s_session_t *) zmalloc (sizeof (s_session_t));
        //  Spread sessions over the hosted services.
        size_t pick = randombytes_uniform ((uint32_t) services);
        s_hosted_t *hosted = (s_hosted_t *) zhashx_first (self->hosted);
        for (size_t i = 0; i < pick; i++)
            hosted = (s_hosted_t *) zhashx_next (self->hosted);
        (void) hosted;
        snprintf (session->service_id, sizeof session->service_id, "%s",
                  (const char *) zhashx_cursor (self->hosted));
        char id [48], hex [17];
        ep_random_hex (hex, 8);
        snprintf (id, sizeof id, "s-%s", hex);
        zhashx_insert (self->sessions, id, session);
        s_session_open (self, id, session);
        //  A session is a client connecting to this router: report it.
        char source [48];
        snprintf (source, sizeof source, "198.51.100.%u:%u", 1 + randombytes_uniform (254),
                  1024 + randombytes_uniform (60000));
        snprintf (session->src_addr, sizeof session->src_addr, "%s", source);
        agent_report_edge (self, self->identity, source, true);
    }
}

static void
s_heartbeat (agent_t *self)
{
    size_t total = zhashx_size (self->sessions);
    Ep__SessionHeartbeat__Entry *entries = (Ep__SessionHeartbeat__Entry *)
        calloc (total + 1, sizeof (Ep__SessionHeartbeat__Entry));
    Ep__SessionHeartbeat__Entry **list = (Ep__SessionHeartbeat__Entry **)
        calloc (total + 1, sizeof (Ep__SessionHeartbeat__Entry *));
    size_t n = 0;
    s_session_t *session = (s_session_t *) zhashx_first (self->sessions);
    for (; session; session = (s_session_t *) zhashx_next (self->sessions)) {
        if (!session->confirmed)
            continue;
        session->bytes_rx += randombytes_uniform (4096);
        session->bytes_tx += randombytes_uniform (4096);
        Ep__SessionHeartbeat__Entry *entry = &entries [n];
        ep__session_heartbeat__entry__init (entry);
        entry->id = (char *) zhashx_cursor (self->sessions);
        entry->has_bytes_rx = entry->has_bytes_tx = true;
        entry->bytes_rx = session->bytes_rx;
        entry->bytes_tx = session->bytes_tx;
        list [n++] = entry;
    }
    for (size_t first = 0; first < n; first += BATCH_SESSIONS) {
        Ep__SessionHeartbeat heartbeat = EP__SESSION_HEARTBEAT__INIT;
        heartbeat.entries = list + first;
        heartbeat.n_entries = n - first < BATCH_SESSIONS? n - first: BATCH_SESSIONS;
        char request_id [48];
        snprintf (request_id, sizeof request_id, "h:%llu", (unsigned long long) self->frame_id + 1);
        Ep__SessionRequest request = EP__SESSION_REQUEST__INIT;
        request.op_case = EP__SESSION_REQUEST__OP_HEARTBEAT;
        request.heartbeat = &heartbeat;
        s_send_session_request (self, request_id, &request);
    }
    free (list);
    free (entries);
    if (zlistx_size (self->edges)) {
        size_t count = zlistx_size (self->edges);
        Ep__EdgeConnect **edges = (Ep__EdgeConnect **) calloc (count, sizeof (Ep__EdgeConnect *));
        size_t i = 0;
        for (Ep__EdgeConnect *edge = (Ep__EdgeConnect *) zlistx_first (self->edges); edge;
             edge = (Ep__EdgeConnect *) zlistx_next (self->edges))
            edges [i++] = edge;
        Ep__EdgeConnectBatch batch = EP__EDGE_CONNECT_BATCH__INIT;
        batch.n_events = count;
        batch.events = edges;
        Ep__Frame frame = EP__FRAME__INIT;
        frame.body_case = EP__FRAME__BODY_EDGE_CONNECTS;
        frame.edge_connects = &batch;
        if (s_send (self, &frame) == 0)
            zlistx_purge (self->edges);
        free (edges);
    }
}

//  -------------------------------------------------------------------------
//  Commands

static void
s_ack (agent_t *self, const char *command_id, char **ids, size_t count)
{
    for (size_t first = 0; first == 0 || first < count; first += BATCH_SESSIONS) {
        Ep__CommandAck ack = EP__COMMAND_ACK__INIT;
        ack.command_id = (char *) command_id;
        ack.session_ids = ids + first;
        ack.n_session_ids = count - first < BATCH_SESSIONS? count - first: BATCH_SESSIONS;
        Ep__Frame frame = EP__FRAME__INIT;
        frame.body_case = EP__FRAME__BODY_COMMAND_ACK;
        frame.command_ack = &ack;
        s_send (self, &frame);
        if (count == 0)
            break;
    }
}

static void
s_command (agent_t *self, const Ep__Command *command)
{
    self->stats.commands++;
    if (command->kind_case == EP__COMMAND__KIND_CLOSE_SESSIONS) {
        const Ep__CloseSessions *close = command->close_sessions;
        char **acked = (char **) calloc (close->n_session_ids + 1, sizeof (char *));
        size_t n = 0;
        for (size_t i = 0; i < close->n_session_ids; i++) {
            const char *id = close->session_ids [i];
            if (agent_acks (&self->config, id)) {
                acked [n++] = (char *) id;
                zhashx_delete (self->sessions, id);
                self->stats.closes_acked++;
            }
            else
                self->stats.closes_ignored++;
        }
        if (n)
            s_ack (self, command->command_id, acked, n);
        free (acked);
    }
    else
    if (command->kind_case == EP__COMMAND__KIND_PROBE_SESSIONS) {
        //  The answer lists the probed sessions this router still has.
        const Ep__ProbeSessions *probe = command->probe_sessions;
        char **alive = (char **) calloc (probe->n_session_ids + 1, sizeof (char *));
        size_t n = 0;
        for (size_t i = 0; i < probe->n_session_ids; i++)
            if (zhashx_lookup (self->sessions, probe->session_ids [i]))
                alive [n++] = probe->session_ids [i];
        s_ack (self, command->command_id, alive, n);
        self->stats.probes++;
        free (alive);
    }
    else
    if (command->kind_case == EP__COMMAND__KIND_VALIDATE_TERMINATORS) {
        size_t count = zhashx_size (self->hosted);
        Ep__Terminator *terminators = (Ep__Terminator *) calloc (count + 1, sizeof (Ep__Terminator));
        Ep__Terminator **list = (Ep__Terminator **) calloc (count + 1, sizeof (Ep__Terminator *));
        size_t n = 0;
        s_hosted_t *hosted = (s_hosted_t *) zhashx_first (self->hosted);
        for (; hosted; hosted = (s_hosted_t *) zhashx_next (self->hosted)) {
            const char *service_id = (const char *) zhashx_cursor (self->hosted);
            Ep__Terminator *t = &terminators [n];
            ep__terminator__init (t);
            t->id = (char *) termids_get (self->termids, service_id);
            t->service_id = (char *) service_id;
            t->router_id = self->id;
            list [n++] = t;
        }
        Ep__TerminatorValidate validate = EP__TERMINATOR_VALIDATE__INIT;
        validate.n_terminators = n;
        validate.terminators = list;
        char request_id [80];
        snprintf (request_id, sizeof request_id, "v:%s", command->command_id? command->command_id: "");
        Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
        request.op_case = EP__TERMINATOR_REQUEST__OP_VALIDATE;
        request.validate = &validate;
        s_send_terminator_request (self, request_id, &request);
        s_ack (self, command->command_id, NULL, 0);
        free (list);
        free (terminators);
    }
}

//  Arms the retry of request_id (again: a retriable refusal of a request
//  still wanted), or forgets it (answered OK, refused for good, or no
//  longer wanted). Delays from the reconnect base, doubling, never longer
//  than the resend of a request with no answer at all.
static void
s_retry_answer (agent_t *self, const char *request_id, bool again)
{
    s_retry_t *retry = (s_retry_t *) zhashx_lookup (self->retries, request_id);
    if (!again) {
        if (retry)
            zhashx_delete (self->retries, request_id);
        return;
    }
    if (!retry) {
        retry = (s_retry_t *) zmalloc (sizeof (s_retry_t));
        retry->backoff = ep_backoff (self->config.backoff_base_ms, self->config.request_timeout_ms);
        zhashx_insert (self->retries, request_id, retry);
    }
    retry->due_ms = ep_mono_ms () + ep_backoff_next (&retry->backoff);
}

//  A create's or an open's answer: OK confirms its object, counted once
//  in *count. True while the object is still unconfirmed.
static bool
s_unconfirmed (bool *confirmed, bool ok, size_t *count)
{
    if (ok && !*confirmed) {
        *confirmed = true;
        (*count)++;
    }
    return !*confirmed;
}

//  A reply: its request id says which object it confirms. A terminator
//  create or delete, or a session open or close, refused as retriable
//  (UNAVAILABLE: the instance asked does not own the router's shard, a
//  handover is under way, or the watchdog lost the instance) is asked
//  again with the same request id after a backoff, growing until it is
//  answered OK or refused for good. Each is idempotent on its id: a close
//  of a session closed already is OK, of one never opened NOT_FOUND, so
//  it ends. Heartbeats are not asked again: the next batch says as much.
static void
s_reply (agent_t *self, const char *request_id, const Ep__Status *status, bool retriable)
{
    bool ok = !status || !status->has_code || status->code == EP__STATUS__CODE__OK;
    if (!request_id || strlen (request_id) < 3 || request_id [1] != ':')
        return;
    const char *key = request_id + 2;
    bool wanted;                //  the request still has a purpose here
    if (request_id [0] == 't') {
        s_hosted_t *hosted = (s_hosted_t *) zhashx_lookup (self->hosted, key);
        wanted = hosted && s_unconfirmed (&hosted->confirmed, ok, &self->stats.terminators);
    }
    else
    if (request_id [0] == 'd') {
        wanted = zhashx_lookup (self->deleting, key) != NULL;
        if (wanted && (ok || !retriable))
            zhashx_delete (self->deleting, key);
    }
    else
    if (request_id [0] == 's') {
        s_session_t *session = (s_session_t *) zhashx_lookup (self->sessions, key);
        wanted = session && s_unconfirmed (&session->confirmed, ok, &self->stats.sessions);
    }
    else
    if (request_id [0] == 'c')
        wanted = true;          //  gone here already: only the reaper has to hear it
    else
        return;
    s_retry_answer (self, request_id, wanted && !ok && retriable);
}

//  -------------------------------------------------------------------------

int
agent_fd (agent_t *self)
{
    return self->client? chan_client_fd (self->client): -1;
}

int64_t
agent_deadline (agent_t *self)
{
    if (!self->client)
        return self->next_connect_ms;
    if (self->draining)
        return ep_mono_ms () + 1000;
    int64_t next = self->next_heartbeat_ms;
    int64_t held = chan_client_flush (self->client);
    if (held < next)
        next = held;
    if (self->next_resend_ms < next)
        next = self->next_resend_ms;
    if (self->config.churn_per_s > 0 && self->next_churn_ms < next)
        next = self->next_churn_ms;
    s_retry_t *retry = (s_retry_t *) zhashx_first (self->retries);
    for (; retry; retry = (s_retry_t *) zhashx_next (self->retries))
        if (retry->due_ms && retry->due_ms < next)
            next = retry->due_ms;
    return next;
}

void
agent_handle (agent_t *self)
{
    Ep__Frame *frame;
    while (self->client && (frame = chan_client_recv (self->client, 0))) {
        switch (frame->body_case) {
            case EP__FRAME__BODY_SLICE:
                s_slice (self, frame->slice);
                s_sessions_fill (self);
                break;
            case EP__FRAME__BODY_TERMINATOR_REPLY:
                s_reply (self, frame->terminator_reply->request_id, frame->terminator_reply->status,
                         frame->terminator_reply->has_retriable && frame->terminator_reply->retriable);
                break;
            case EP__FRAME__BODY_SESSION_REPLY:
                s_reply (self, frame->session_reply->request_id, frame->session_reply->status,
                         frame->session_reply->has_retriable && frame->session_reply->retriable);
                break;
            case EP__FRAME__BODY_COMMAND:
                s_command (self, frame->command);
                break;
            case EP__FRAME__BODY_GOODBYE: {
                bool reconnect = frame->goodbye->has_reconnect && frame->goodbye->reconnect;
                snprintf (self->stats.last_error, sizeof self->stats.last_error, "goodbye: %s",
                          frame->goodbye->reason? frame->goodbye->reason: "");
                if (reconnect) {
                    //  A controller going away: come back soon, to another.
                    ep__frame__free_unpacked (frame, NULL);
                    s_disconnect (self, self->stats.last_error, self->config.backoff_base_ms);
                    return;
                }
                //  Deleted or disabled: the watchdog still delivers commands
                //  (CloseSessions) while it drains us; answer them until it
                //  closes the connection.
                self->draining = true;
                break;
            }
            default:
                break;
        }
        ep__frame__free_unpacked (frame, NULL);
    }
    if (self->client && chan_client_closed (self->client))
        s_disconnect (self, chan_client_close_reason (self->client), -1);
}

//  Sends request_id's request again, the same id (the terminators' reply
//  cache keys on it; the reaper's writes are idempotent on the session
//  id); false if it is no longer wanted.
static bool
s_ask_again (agent_t *self, const char *request_id)
{
    const char *key = request_id + 2;
    if (request_id [0] == 't') {
        s_hosted_t *hosted = (s_hosted_t *) zhashx_lookup (self->hosted, key);
        if (!hosted || hosted->confirmed)
            return false;
        s_terminator_request (self, key, hosted, true);
    }
    else
    if (request_id [0] == 'd') {
        if (!zhashx_lookup (self->deleting, key))
            return false;       //  hosted again: its create superseded it
        s_terminator_request (self, key, NULL, false);
    }
    else
    if (request_id [0] == 's') {
        s_session_t *session = (s_session_t *) zhashx_lookup (self->sessions, key);
        if (!session || session->confirmed)
            return false;       //  closed here meanwhile, or confirmed
        s_session_open (self, key, session);
    }
    else
        s_session_send_close (self, key);
    return true;
}

//  Requests refused as retriable whose backoff is over: asked again.
static void
s_retry (agent_t *self, int64_t now)
{
    zlistx_t *stale = NULL;
    s_retry_t *retry = (s_retry_t *) zhashx_first (self->retries);
    for (; retry; retry = (s_retry_t *) zhashx_next (self->retries)) {
        if (!retry->due_ms || now < retry->due_ms)
            continue;
        retry->due_ms = 0;
        const char *request_id = (const char *) zhashx_cursor (self->retries);
        if (s_ask_again (self, request_id))
            self->stats.retries++;
        else {
            if (!stale) {
                stale = zlistx_new ();
                zlistx_set_destructor (stale, (czmq_destructor *) zstr_free);
            }
            zlistx_add_end (stale, strdup (request_id));
        }
    }
    for (char *id = stale? (char *) zlistx_first (stale): NULL; id; id = (char *) zlistx_next (stale))
        zhashx_delete (self->retries, id);
    zlistx_destroy (&stale);
}

static void
s_connect (agent_t *self)
{
    char err [256];
    self->client = chan_client_new (self->controller, self->config.ctx, 2000, err, sizeof err);
    if (!self->client) {
        snprintf (self->stats.last_error, sizeof self->stats.last_error, "%s", err);
        self->next_connect_ms = ep_mono_ms () + ep_backoff_next (&self->backoff);
        //  Said at once, then every 30 s while it lasts: a wrong controller
        //  address shows within seconds, not when the agent is stopped.
        if (ep_mono_ms () >= self->next_warn_ms) {
            ep_log_warn ("router %s cannot connect to the controller at %s: %s (retrying; "
                         "is --controller / EDGEPLANE_CONTROLLER the watchdog's channel address?)",
                         self->id, self->controller, err);
            self->next_warn_ms = ep_mono_ms () + 30000;
        }
        return;
    }
    //  Protocol 2: the slice it holds, so the watchdog sends only what changed.
    uint32_t version = self->config.protocol_version? self->config.protocol_version: 2;
    Ep__HelloResult *result = chan_client_hello_at (self->client, version, EP__ROLE__ROLE_ROUTER, self->id,
                                                    version >= 2? self->stats.slice_revision: 0,
                                                    version >= 2 && *self->generation? self->generation: NULL,
                                                    3000);
    if (!result || !result->status || result->status->code != EP__STATUS__CODE__OK) {
        self->stats.refusals += result != NULL;
        snprintf (err, sizeof err, "join refused: %s",
                  result && result->status && result->status->message? result->status->message
                  : chan_client_close_reason (self->client));
        if (result)
            ep__hello_result__free_unpacked (result, NULL);
        s_disconnect (self, err, -1);
        return;
    }
    ep__hello_result__free_unpacked (result, NULL);
    chan_client_set_link (self->client, self->config.link_delay_ms, self->config.link_jitter_ms,
                          self->config.link_drop);
    ep_backoff_reset (&self->backoff);
    self->next_warn_ms = 0;
    self->stats.joined = true;
    self->stats.joins++;
    int64_t now = ep_mono_ms ();
    self->next_heartbeat_ms = now + self->config.heartbeat_ms;
    self->next_resend_ms = now + self->config.request_timeout_ms;
    self->next_churn_ms = now + (self->config.churn_per_s > 0? (int64_t) (1000.0 / self->config.churn_per_s): 0);
    //  Sessions held from before are reported again: the reaper knows them
    //  or learns them now.
    s_session_t *session = (s_session_t *) zhashx_first (self->sessions);
    for (; session; session = (s_session_t *) zhashx_next (self->sessions))
        s_session_open (self, (const char *) zhashx_cursor (self->sessions), session);
}

void
agent_tick (agent_t *self)
{
    int64_t now = ep_mono_ms ();
    if (!self->client) {
        if (now >= self->next_connect_ms)
            s_connect (self);
        return;
    }
    if (self->draining) {
        if (chan_client_closed (self->client))
            s_disconnect (self, chan_client_close_reason (self->client), -1);
        return;             //  nothing but acks while draining
    }
    chan_client_flush (self->client);
    if (now >= self->next_heartbeat_ms) {
        s_heartbeat (self);
        self->next_heartbeat_ms = now + self->config.heartbeat_ms;
    }
    if (self->config.churn_per_s > 0 && now >= self->next_churn_ms && zhashx_size (self->sessions)) {
        //  Replace one session: the oldest in hash order is as good as any.
        s_session_t *session = (s_session_t *) zhashx_first (self->sessions);
        if (session && session->confirmed) {
            char *id = strdup ((const char *) zhashx_cursor (self->sessions));
            s_session_close (self, id);
            free (id);
            self->stats.sessions--;
            s_sessions_fill (self);
        }
        self->next_churn_ms = now + (int64_t) (1000.0 / self->config.churn_per_s);
    }
    s_retry (self, now);
    if (now >= self->next_resend_ms) {
        //  Anything unconfirmed is asked again (idempotent by id).
        s_hosted_t *hosted = (s_hosted_t *) zhashx_first (self->hosted);
        for (; hosted; hosted = (s_hosted_t *) zhashx_next (self->hosted))
            if (!hosted->confirmed && now - hosted->sent_ms >= self->config.request_timeout_ms)
                s_terminator_request (self, (const char *) zhashx_cursor (self->hosted), hosted, true);
        s_session_t *session = (s_session_t *) zhashx_first (self->sessions);
        for (; session; session = (s_session_t *) zhashx_next (self->sessions))
            if (!session->confirmed && now - session->sent_ms >= self->config.request_timeout_ms)
                s_session_open (self, (const char *) zhashx_cursor (self->sessions), session);
        self->next_resend_ms = now + self->config.request_timeout_ms;
    }
    if (self->client && chan_client_closed (self->client))
        s_disconnect (self, chan_client_close_reason (self->client), -1);
}

void
agent_report_edge (agent_t *self, const char *identity_id, const char *src_addr, bool connected)
{
    Ep__EdgeConnect *edge = (Ep__EdgeConnect *) zmalloc (sizeof (Ep__EdgeConnect));
    ep__edge_connect__init (edge);
    edge->identity_id = strdup (identity_id);
    edge->src_addr = strdup (src_addr);
    edge->has_connected = edge->has_timestamp_ms = true;
    edge->connected = connected;
    edge->timestamp_ms = ep_wall_ms ();
    zlistx_add_end (self->edges, edge);
}

const agent_stats_t *
agent_stats (agent_t *self)
{
    return &self->stats;
}

const char *
agent_id (agent_t *self)
{
    return self->id;
}
