/*  test_terminators_chaos.c: randomized chaos against the real
    edgeplane-terminators (with a real bus and model).

    The test plays the model's operator, the watchdog (presence beacons,
    join, leave) and a fleet of honest routers that follow their model
    slices late, reconnect, validate, and whose requests are delivered
    shuffled, duplicated and resent; model changes are also re-published
    late and duplicated on the bus; the service is SIGKILLed and restarted
    at random points. Then the fleet converges and the oracle, computed
    only from the model writes this test made (never from the service),
    must match the service exactly: the live terminators are precisely one
    ESTABLISHED terminator per (enabled router, hosted service) with the id
    that router chose; the event log never shows an id coming back after
    its deletion; no spin was counted or announced.

    The seed is printed; EP_CHAOS_SEED=<seed> replays the same decisions
    and EP_CHAOS_SECONDS sets the length of the chaos phase (default 30).

    EP_CHAOS_STORE=etcd (ctest: chaos.test_terminators_chaos_etcd, on the
    etcd fixture cluster) runs the same against three instances in the
    etcd mode, 16 shards, a 2 s lease: the test routes each router's
    requests as the watchdog would, to the instance named owner by a
    refusal (another one when none is named), and the SIGKILLs hit a random
    instance, restarted at once or 1 to 3 s later, so shards move under
    load. The oracle
    reads every instance (each lists the whole fleet from etcd: they must
    agree, and list each terminator once), sums the spin counters (a killed
    instance's as scraped just before the kill), and drops an event whose
    event id it has seen (a new owner publishes again what was not yet
    deleted from the shard's outbox: at least once).
*/
#include <criterion/criterion.h>
#include "ep_stack.h"
#include "ep_etcd_cluster.h"
#include "ep_shard.h"
#include "ep_eventlog.h"
#include "ep_codec.h"
#include "ep_keys.h"
#include "ep_publisher.h"
#include "ep_rpc_client.h"
#include "ep_subscriber.h"
#include "model.pb-c.h"
#include "terminators.pb-c.h"
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <unistd.h>

#define ROUTERS     24
#define SERVICES    6
#define DELTAS_MAX  512
#define RESEND_MS   3000        //  an unanswered request is sent again after this
#define BEACON_MS   300
#define INSTANCES   3           //  terminators instances in the etcd mode (one embedded)
#define SHARDS      16          //  the etcd mode's shard count

//  ---------------------------------------------------------------------
//  Deterministic randomness (ep_rand_next: xorshift64*)

static uint64_t s_rng;

static bool
s_chance (int percent)
{
    return ep_rand_pick (&s_rng, 100) < percent;
}

//  ---------------------------------------------------------------------
//  The oracle's input: the model as this test wrote it

typedef struct {
    bool exists;                //  in the model
    bool enabled;               //  enabled
    bool hosts [SERVICES];      //  hosted services
} s_mirror_t;

static s_mirror_t s_mirror [ROUTERS];
static bool s_service_exists [SERVICES];
static uint64_t s_revision;     //  the model's last revision

//  What each model write touched: a (router, service) pair, a router
//  (service -1: created, deleted, enabled or disabled) or a service
//  (router -1: created or deleted).
typedef struct {
    uint64_t revision;
    int router;
    int service;
} s_touch_t;

static s_touch_t *s_touches;
static size_t s_touch_count, s_touch_cap;

static void
s_touched (int router, int service)
{
    if (s_touch_count == s_touch_cap) {
        s_touch_cap = s_touch_cap? s_touch_cap * 2: 4096;
        s_touches = (s_touch_t *) realloc (s_touches, s_touch_cap * sizeof (s_touch_t));
    }
    s_touches [s_touch_count++] = (s_touch_t) { s_revision, router, service };
}

//  True if a model write with a revision in (after, upto] touched (router, service).
static bool
s_touched_between (int router, int service, uint64_t after, uint64_t upto)
{
    for (size_t i = 0; i < s_touch_count; i++) {
        s_touch_t *t = &s_touches [i];
        if (t->revision > after && t->revision <= upto
        &&  (t->router == router || t->router == -1) && (t->service == service || t->service == -1))
            return true;
    }
    return false;
}

//  ---------------------------------------------------------------------
//  Honest routers

typedef struct {
    uint64_t revision;          //  the model revision of the change
    bool exists;                //  the router after it
    bool enabled;
    bool hosts [SERVICES];
} s_delta_t;

typedef struct {
    char id [16];               //  "r7"
    bool online;                //  joined to our "watchdog"
    uint64_t known;             //  revision of its slice
    bool hosted [SERVICES];     //  its slice
    char term [SERVICES][48];   //  its terminator id per service, "" for none (kept across reconnects)
    int next_id;                //  its id counter (ids are never reused)
    zhashx_t *retired;          //  ids it deleted or was told to drop: never created again
    s_delta_t deltas [DELTAS_MAX];  //  slice changes not yet processed, in order
    size_t n_deltas;
    uint64_t last_validate;     //  its latest validate (replies to older ones are ignored)
} s_router_t;

static s_router_t s_routers [ROUTERS];

//  A request on its way (or waiting to be sent again).
typedef struct {
    char request_id [32];       //  ours, unique
    int router;                 //  who asked
    zframe_t *frame;            //  the packed request, resent as is
    int64_t sent_ms;            //  0: not sent yet
    int64_t not_before_ms;      //  held back until then (a late request)
    bool validate;              //  apply the reply to the router
    uint64_t number;            //  the request's number (q<number>)
} s_out_t;

//  A copy of a request sent again later, answered or not (a late duplicate).
typedef struct {
    int64_t due_ms;             //  when
    zframe_t *frame;            //  the request
    int router;                 //  whose (it goes where that router's requests go)
} s_dup_t;

static zlistx_t *s_dups;        //  s_dup_t

static zhashx_t *s_outbox;      //  request id -> s_out_t
static zhashx_t *s_trace;       //  terminator id -> what its router did with it (for reports)

static void
s_trace_add (const char *id, const char *format, ...) __attribute__ ((format (printf, 2, 3)));

static void
s_trace_add (const char *id, const char *format, ...)
{
    char line [256];
    va_list args;
    va_start (args, format);
    vsnprintf (line, sizeof line, format, args);
    va_end (args);
    char *before = (char *) zhashx_lookup (s_trace, id);
    char *after = zsys_sprintf ("%s  router: %s\n", before? before: "", line);
    zhashx_update (s_trace, id, after);
}
static uint64_t s_next_request;

//  ---------------------------------------------------------------------
//  Processes and sockets

static ep_stack_t *s_stack;     //  keys, bus, model, environment
static const char *s_keys;      //  its keys dir
static ep_proc_t *s_bus;        //  its bus
static bool s_etcd;             //  EP_CHAOS_STORE=etcd: INSTANCES instances on shards
static int s_count;             //  instances: INSTANCES in the etcd mode, else 1
static char *s_prefix;          //  the etcd mode: this run's key prefix
static ep_proc_t *s_terms [INSTANCES];  //  each slot's instance
static int s_port [INSTANCES];  //  each slot's API port (kept across restarts)
static char s_ids [INSTANCES][32];      //  each slot's instance's source id
static int s_route [ROUTERS];   //  the slot each router's requests go to
static double s_spins_killed;   //  spins counted by instances before their SIGKILL
static int s_down = -1;         //  the etcd mode: a slot killed and not restarted yet, or -1
static int64_t s_revive_at;     //  when that slot's next instance starts
static zhashx_t *s_event_ids;   //  the etcd mode: event ids seen (duplicates dropped)
static int s_incarnation;       //  of the terminator service (every start, any slot)
static double s_replayed [64];  //  events replayed at start, per incarnation
static char *s_terms_key;
static zlistx_t *s_service_logs;        //  every incarnation's log, for a failure report
static zcert_t *s_watchdog_cert, *s_operator_cert, *s_model_cert;
static zsock_t *s_dealer [INSTANCES];   //  we, as the watchdog, to each slot
static ep_rpc_client_t *s_operator [INSTANCES];
static ep_publisher_t *s_presence;      //  presence.*, as the watchdog
static ep_publisher_t *s_republisher;   //  model.change again, late and twice
static ep_subscriber_t *s_events;       //  terminator.* (the event log)
static ep_subscriber_t *s_model_stream; //  model.change, to re-publish
static ep_subscriber_t *s_commands;     //  cmd.*, delivered to our routers
static ep_subscriber_t *s_acquired;     //  the etcd mode: cluster.shard.acquired (the stack's)
static zlistx_t *s_late;                //  model changes to re-publish later
static int64_t s_next_beacon;

//  cluster.shard.acquired events waiting: how many (the etcd mode).
static size_t
s_acquisitions (void)
{
    size_t count = 0;
    char *topic = NULL;
    while (s_acquired && ep_subscriber_recv (s_acquired, 0, &topic)) {
        count += streq (topic, "cluster.shard.acquired");
        zstr_free (&topic);
    }
    return count;
}

//  Statistics for the report.
static struct {
    uint64_t model_writes, creates, deletes, validates, sends, duplicates, replies, unavailable;
    uint64_t refused, reconnects, offlines, restarts, republished, event_gaps, late_sends, commands;
    uint64_t unfenced;          //  the etcd mode: commands without their owner's fence
} s_stats;

//  ---------------------------------------------------------------------
//  The event log

static ep_eventlog_t *s_log;    //  what s_events delivered

//  What happened to the terminator an entry is about (created, deleted...).
static const char *
s_type (const ep_logged_t *entry)
{
    return entry->topic + strlen ("terminator.");
}

static void
s_on_report (void *arg, const ep_stream_report_t *report)
{
    (void) arg;
    if (report->kind == EP_STREAM_GAP && streq (report->stream, "terminator"))
        s_stats.event_gaps++;
}

//  A model change to publish again later.
typedef struct {
    int64_t due_ms;             //  when
    zchunk_t *change;           //  the packed ModelChange
} s_late_t;

static void
s_late_destroy (void **item)
{
    s_late_t *late = (s_late_t *) *item;
    if (late) {
        zchunk_destroy (&late->change);
        free (late);
        *item = NULL;
    }
}

//  Model changes seen on the bus are published again, some late, some
//  twice, under another source: the service must ignore what it has.
static void
s_republish (void)
{
    char *topic = NULL;
    Ep__Event *event;
    while ((event = ep_subscriber_recv (s_model_stream, 0, &topic))) {
        if (event->body_case == EP__EVENT__BODY_MODEL_CHANGE && s_chance (40)) {
            s_late_t *late = (s_late_t *) zmalloc (sizeof (s_late_t));
            late->due_ms = ep_mono_ms () + ep_rand_pick (&s_rng, 2000);
            size_t size = ep__model_change__get_packed_size (event->model_change);
            uint8_t *bytes = (uint8_t *) malloc (size + 1);
            ep__model_change__pack (event->model_change, bytes);
            late->change = zchunk_new (bytes, size);
            free (bytes);
            zlistx_add_end (s_late, late);
        }
        zstr_free (&topic);
    }
    s_late_t *late = (s_late_t *) zlistx_first (s_late);
    while (late) {
        if (late->due_ms <= ep_mono_ms ()) {
            Ep__ModelChange *change = ep__model_change__unpack (NULL, zchunk_size (late->change),
                                                                zchunk_data (late->change));
            cr_assert_not_null (change);
            Ep__Event out = EP__EVENT__INIT;
            out.body_case = EP__EVENT__BODY_MODEL_CHANGE;
            out.model_change = change;
            for (int copies = s_chance (30)? 2: 1; copies > 0; copies--) {
                ep_publisher_send (s_republisher, "model.change", &out);
                s_stats.republished++;
            }
            ep__model_change__free_unpacked (change, NULL);
            zlistx_delete (s_late, zlistx_cursor (s_late));
            late = (s_late_t *) zlistx_first (s_late);
        }
        else
            late = (s_late_t *) zlistx_next (s_late);
    }
    ep_publisher_tick (s_republisher);
}

//  ---------------------------------------------------------------------
//  Presence

static void
s_presence_send (const char *type, char **routers, size_t count)
{
    Ep__PresenceEvent body = EP__PRESENCE_EVENT__INIT;
    body.instance_id = "watchdog-chaos";
    body.has_instance_epoch = true;
    body.instance_epoch = 7;
    body.routers = routers;
    body.n_routers = count;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_PRESENCE;
    event.presence = &body;
    char topic [32];
    snprintf (topic, sizeof topic, "presence.%s", type);
    ep_publisher_send (s_presence, topic, &event);
}

static void
s_beacon (bool force)
{
    if (!force && ep_mono_ms () < s_next_beacon)
        return;
    char *routers [ROUTERS];
    size_t count = 0;
    for (int r = 0; r < ROUTERS; r++)
        if (s_routers [r].online)
            routers [count++] = s_routers [r].id;
    s_presence_send ("beacon", routers, count);
    ep_publisher_tick (s_presence);
    s_next_beacon = ep_mono_ms () + BEACON_MS;
}

//  ---------------------------------------------------------------------
//  Requests

static void
s_out_destroy (void **item)
{
    s_out_t *out = (s_out_t *) *item;
    if (out) {
        zframe_destroy (&out->frame);
        free (out);
        *item = NULL;
    }
}

static void
s_enqueue (int router, Ep__TerminatorRequest *request, bool validate)
{
    s_out_t *out = (s_out_t *) zmalloc (sizeof (s_out_t));
    out->number = ++s_next_request;
    snprintf (out->request_id, sizeof out->request_id, "q%llu", (unsigned long long) out->number);
    out->router = router;
    out->validate = validate;
    if (s_chance (30))
        out->not_before_ms = ep_mono_ms () + ep_rand_pick (&s_rng, 1500);
    request->request_id = out->request_id;
    request->router_id = s_routers [router].id;
    char err [256];
    out->frame = ep_codec_pack (&request->base, EP_CODEC_DEFAULT_CAP, err, sizeof err);
    cr_assert_not_null (out->frame, "%s", err);
    zhashx_insert (s_outbox, out->request_id, out);
}

static void
s_dup_destroy (void **item)
{
    s_dup_t *dup = (s_dup_t *) *item;
    if (dup) {
        zframe_destroy (&dup->frame);
        free (dup);
        *item = NULL;
    }
}

static void
s_send_now (s_out_t *out)
{
    zframe_t *copy = zframe_dup (out->frame);
    zframe_send (&copy, s_dealer [s_route [out->router]], ZFRAME_DONTWAIT);
    out->sent_ms = ep_mono_ms ();
    s_stats.sends++;
    if (s_chance (15)) {
        s_dup_t *dup = (s_dup_t *) zmalloc (sizeof (s_dup_t));
        dup->due_ms = ep_mono_ms () + ep_rand_pick (&s_rng, 3000);
        dup->frame = zframe_dup (out->frame);
        dup->router = out->router;
        zlistx_add_end (s_dups, dup);
    }
}

//  Late duplicates that are due go out; their replies are ignored.
static void
s_send_dups (void)
{
    s_dup_t *dup = (s_dup_t *) zlistx_first (s_dups);
    while (dup) {
        if (dup->due_ms <= ep_mono_ms ()) {
            zframe_t *copy = zframe_dup (dup->frame);
            zframe_send (&copy, s_dealer [s_route [dup->router]], ZFRAME_DONTWAIT);
            s_stats.duplicates++;
            zlistx_delete (s_dups, zlistx_cursor (s_dups));
            dup = (s_dup_t *) zlistx_first (s_dups);
        }
        else
            dup = (s_dup_t *) zlistx_next (s_dups);
    }
}

static int
s_service_index (const char *id)
{
    for (int s = 0; id && s < SERVICES; s++) {
        char name [16];
        snprintf (name, sizeof name, "svc%d", s);
        if (streq (name, id))
            return s;
    }
    return -1;
}

static void
s_create (int r, int s)
{
    s_router_t *router = &s_routers [r];
    if (!*router->term [s]) {
        char id [48];
        snprintf (id, sizeof id, "%s-s%d-%d", router->id, s, ++router->next_id);
        memcpy (router->term [s], id, sizeof id);
    }
    char service [16];
    snprintf (service, sizeof service, "svc%d", s);
    Ep__Terminator t = EP__TERMINATOR__INIT;
    t.id = router->term [s];
    t.service_id = service;
    t.router_id = router->id;
    Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
    request.has_model_revision = true;
    request.model_revision = router->known;
    request.op_case = EP__TERMINATOR_REQUEST__OP_CREATE;
    request.create = &t;
    s_enqueue (r, &request, false);
    s_trace_add (t.id, "create based on %llu (q%llu)", (unsigned long long) router->known,
                 (unsigned long long) s_next_request);
    s_stats.creates++;
}

static void
s_retire_id (s_router_t *router, int s)
{
    if (*router->term [s]) {
        zhashx_update (router->retired, router->term [s], (void *) 1);
        router->term [s][0] = 0;
    }
}

static void
s_delete (int r, int s)
{
    s_router_t *router = &s_routers [r];
    if (!*router->term [s])
        return;
    Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
    request.has_model_revision = true;
    request.model_revision = router->known;
    request.op_case = EP__TERMINATOR_REQUEST__OP_DELETE_ID;
    request.delete_id = router->term [s];
    s_enqueue (r, &request, false);
    s_trace_add (router->term [s], "delete based on %llu (q%llu)", (unsigned long long) router->known,
                 (unsigned long long) s_next_request);
    s_retire_id (router, s);
    s_stats.deletes++;
}

static void
s_validate (int r)
{
    s_router_t *router = &s_routers [r];
    Ep__Terminator items [SERVICES];
    Ep__Terminator *list [SERVICES];
    char services [SERVICES][16];
    size_t n = 0;
    for (int s = 0; s < SERVICES; s++)
        if (*router->term [s]) {
            ep__terminator__init (&items [n]);
            snprintf (services [s], sizeof services [s], "svc%d", s);
            items [n].id = router->term [s];
            items [n].service_id = services [s];
            list [n] = &items [n];
            n++;
        }
    Ep__TerminatorValidate validate = EP__TERMINATOR_VALIDATE__INIT;
    validate.n_terminators = n;
    validate.terminators = list;
    Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
    request.has_model_revision = true;
    request.model_revision = router->known;
    request.op_case = EP__TERMINATOR_REQUEST__OP_VALIDATE;
    request.validate = &validate;
    s_enqueue (r, &request, true);
    router->last_validate = s_next_request;
    s_stats.validates++;
}

//  The router acts on a validate reply, trusting its own slice: it drops
//  what it is told to, creates what it lacks for services it hosts, and
//  never creates an id it has retired.
static bool
s_apply_validate (int r, const Ep__TerminatorReply *reply)
{
    s_router_t *router = &s_routers [r];
    bool changed = false;
    for (size_t i = 0; i < reply->n_to_delete; i++)
        s_trace_add (reply->to_delete [i], "validate (%s) says delete", router->id);
    for (size_t i = 0; i < reply->n_to_create; i++)
        if (reply->to_create [i]->id)
            s_trace_add (reply->to_create [i]->id, "validate (%s) says create", router->id);
    for (size_t i = 0; i < reply->n_to_delete; i++)
        for (int s = 0; s < SERVICES; s++)
            if (streq (router->term [s], reply->to_delete [i])) {
                s_retire_id (router, s);
                changed = true;
            }
    for (size_t i = 0; i < reply->n_to_create; i++) {
        Ep__Terminator *t = reply->to_create [i];
        int s = s_service_index (t->service_id);
        if (s < 0 || !router->hosted [s])
            continue;
        if (t->id && zhashx_lookup (router->retired, t->id))
            continue;
        if (!*router->term [s] && t->id)
            snprintf (router->term [s], sizeof router->term [s], "%s", t->id);
        s_create (r, s);
        changed = true;
    }
    return changed;
}

static bool s_converging;       //  final phase: count validate replies that change something
static int s_validate_changes;

//  The slot whose instance has source id owner, or -1.
static int
s_slot_of (const char *owner)
{
    for (int i = 0; owner && *owner && i < s_count; i++)
        if (streq (s_ids [i], owner))
            return i;
    return -1;
}

//  A dealer with a reply waiting, or NULL.
static zsock_t *
s_ready_dealer (void)
{
    for (int i = 0; i < s_count; i++)
        if (zsock_events (s_dealer [i]) & ZMQ_POLLIN)
            return s_dealer [i];
    return NULL;
}

//  The etcd mode: a refusal names the owner of the router's shard; its
//  requests go there now (to the next slot when the owner is none we
//  know: a killed instance whose lease still runs, or nobody yet).
static void
s_reroute (s_out_t *out, const Ep__TerminatorReply *reply)
{
    int slot = s_slot_of (reply->owner);
    if (slot < 0)
        slot = (s_route [out->router] + 1) % s_count;
    if (slot == s_down)
        slot = (slot + 1) % s_count;
    s_route [out->router] = slot;
    out->not_before_ms = ep_mono_ms () + 50;
}

static void
s_replies (int timeout_ms)
{
    zpoller_t *poller = zpoller_new (NULL);
    for (int i = 0; i < s_count; i++)
        zpoller_add (poller, s_dealer [i]);
    int64_t deadline = ep_mono_ms () + timeout_ms;
    while (true) {
        int64_t left = deadline - ep_mono_ms ();
        zsock_t *dealer = s_ready_dealer ();
        if (!dealer && (left <= 0 || !(dealer = (zsock_t *) zpoller_wait (poller, (int) left))))
            break;
        zframe_t *frame = zframe_recv (dealer);
        if (!frame)
            break;
        char err [256];
        Ep__TerminatorReply *reply = (Ep__TerminatorReply *) ep_codec_unpack_frame (
            &ep__terminator_reply__descriptor, frame, EP_CODEC_DEFAULT_CAP, "terminators", err, sizeof err);
        zframe_destroy (&frame);
        cr_assert_not_null (reply, "%s", err);
        s_stats.replies++;
        s_out_t *out = reply->request_id? (s_out_t *) zhashx_lookup (s_outbox, reply->request_id): NULL;
        Ep__Status__Code code = reply->status && reply->status->has_code? reply->status->code: 0;
        if (out) {
            cr_assert (code != EP__STATUS__CODE__INTERNAL && code != EP__STATUS__CODE__INVALID_ARGUMENT
                       && code != EP__STATUS__CODE__PERMISSION_DENIED,
                       "an honest request was refused: %d %s", code,
                       reply->status && reply->status->message? reply->status->message: "");
            if (code == EP__STATUS__CODE__UNAVAILABLE) {
                out->sent_ms = 0;           //  sent again later
                s_stats.unavailable++;
                if (s_etcd)
                    s_reroute (out, reply);
            }
            else {
                if (code != EP__STATUS__CODE__OK)
                    s_stats.refused++;
                //  A router acts on the answer to its latest validate only.
                if (out->validate && code == EP__STATUS__CODE__OK
                &&  out->number == s_routers [out->router].last_validate
                &&  s_apply_validate (out->router, reply) && s_converging)
                    s_validate_changes++;
                zhashx_delete (s_outbox, reply->request_id);
            }
        }
        ep__terminator_reply__free_unpacked (reply, NULL);
    }
    zpoller_destroy (&poller);
}

//  Sends up to max requests that are due, shuffled; some twice.
static void
s_deliver (int max)
{
    size_t count = zhashx_size (s_outbox);
    s_out_t **due = (s_out_t **) calloc (count + 1, sizeof (s_out_t *));
    size_t n = 0;
    int64_t now = ep_mono_ms ();
    for (s_out_t *out = (s_out_t *) zhashx_first (s_outbox); out; out = (s_out_t *) zhashx_next (s_outbox))
        if ((!out->sent_ms || now - out->sent_ms > RESEND_MS) && now >= out->not_before_ms)
            due [n++] = out;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t) ep_rand_pick (&s_rng, (int) i);
        s_out_t *swap = due [i - 1];
        due [i - 1] = due [j];
        due [j] = swap;
    }
    for (size_t i = 0; i < n && (int) i < max; i++) {
        if (due [i]->sent_ms)
            s_stats.late_sends++;
        s_send_now (due [i]);
        if (s_chance (5)) {
            s_send_now (due [i]);
            s_stats.duplicates++;
        }
    }
    free (due);
}

//  ---------------------------------------------------------------------
//  Router behaviour

//  Commands for our routers (as the watchdog holding them delivers them):
//  a ValidateTerminators gets a fresh validate and an ack, as the router
//  agent does.
static void
s_deliver_commands (void)
{
    char *topic = NULL;
    Ep__Event *event;
    while ((event = ep_subscriber_recv (s_commands, 0, &topic))) {
        Ep__Command *command = event->body_case == EP__EVENT__BODY_COMMAND? event->command: NULL;
        int r = -1;
        if (command && command->router_id)
            sscanf (command->router_id, "r%d", &r);
        //  On shards, every command carries its owner's fence: the
        //  service, the router's shard and the owner key's create revision.
        if (s_etcd && command && command->router_id
        &&  !(command->shard_service && streq (command->shard_service, "terminators")
              && command->has_shard && command->shard == (uint32_t) ep_shard_of (command->router_id, SHARDS)
              && command->has_owner_revision && command->owner_revision > 0))
            s_stats.unfenced++;
        if (command && r >= 0 && r < ROUTERS && s_routers [r].online
        &&  command->kind_case == EP__COMMAND__KIND_VALIDATE_TERMINATORS) {
            s_validate (r);
            Ep__CommandAck ack = EP__COMMAND_ACK__INIT;
            ack.command_id = command->command_id;
            Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
            request.op_case = EP__TERMINATOR_REQUEST__OP_ACK;
            request.ack = &ack;
            s_enqueue (r, &request, false);
            s_stats.commands++;
        }
        zstr_free (&topic);
    }
}

static void
s_go_offline (int r)
{
    s_router_t *router = &s_routers [r];
    if (!router->online)
        return;
    router->online = false;
    router->n_deltas = 0;
    char *routers [] = { router->id };
    s_presence_send ("leave", routers, 1);
    s_stats.offlines++;
}

//  Applies the router's next k slice changes, in order.
static void
s_learn (int r, int k)
{
    s_router_t *router = &s_routers [r];
    while (router->online && router->n_deltas > 0 && k-- > 0) {
        s_delta_t delta = router->deltas [0];
        memmove (router->deltas, router->deltas + 1, (router->n_deltas - 1) * sizeof (s_delta_t));
        router->n_deltas--;
        if (!delta.exists || !delta.enabled) {
            s_go_offline (r);       //  drained by the watchdog
            return;
        }
        cr_assert_gt (delta.revision, router->known, "router %s: slice revisions must grow", router->id);
        router->known = delta.revision;
        for (int s = 0; s < SERVICES; s++) {
            bool was = router->hosted [s];
            router->hosted [s] = delta.hosts [s];
            if (was && !delta.hosts [s])
                s_delete (r, s);
            else
            if (!was && delta.hosts [s])
                s_create (r, s);
        }
    }
}

//  Joins (again): a full slice at the model's current revision, then its
//  list for validation.
static void
s_reconnect (int r)
{
    s_router_t *router = &s_routers [r];
    const s_mirror_t *model = &s_mirror [r];
    if (!model->exists || !model->enabled)
        return;
    if (!router->online) {
        router->online = true;
        char *routers [] = { router->id };
        s_presence_send ("join", routers, 1);
    }
    router->n_deltas = 0;
    router->known = s_revision;
    for (int s = 0; s < SERVICES; s++) {
        bool was = router->hosted [s];
        router->hosted [s] = model->hosts [s];
        if (was && !model->hosts [s])
            s_delete (r, s);
        else
        if (model->hosts [s] && !*router->term [s])
            s_create (r, s);
    }
    s_validate (r);
    s_stats.reconnects++;
}

//  ---------------------------------------------------------------------
//  The model

static uint64_t
s_model_write (Ep__ModelWrite *write)
{
    uint64_t revision = ep_stack_model_write (s_stack, write);
    cr_assert_gt (revision, s_revision);
    s_revision = revision;
    s_stats.model_writes++;
    return revision;
}

//  Writes router r as the mirror has it (create or update).
static void
s_write_router (int r, bool create)
{
    Ep__HostedService hosted [SERVICES];
    Ep__HostedService *list [SERVICES];
    char names [SERVICES][16];
    size_t n = 0;
    for (int s = 0; s < SERVICES; s++)
        if (s_mirror [r].hosts [s]) {
            ep__hosted_service__init (&hosted [n]);
            snprintf (names [s], sizeof names [s], "svc%d", s);
            hosted [n].service_id = names [s];
            hosted [n].has_cost = true;
            hosted [n].cost = (uint32_t) (r * 10 + s);
            list [n] = &hosted [n];
            n++;
        }
    Ep__Router router = EP__ROUTER__INIT;
    router.id = s_routers [r].id;
    router.has_enabled = true;
    router.enabled = s_mirror [r].enabled;
    router.n_hosted = n;
    router.hosted = list;
    ep_entity_write_t entity;
    Ep__ModelWrite__Op op = create? EP__MODEL_WRITE__OP__CREATE: EP__MODEL_WRITE__OP__UPDATE;
    Ep__ModelWrite *write = ep_entity_write (&entity, op, EP__ENTITY__KIND_ROUTER, &router);
    char *clear [] = { "hosted" };
    if (!create && n == 0) {
        write->n_clear = 1;
        write->clear = clear;
    }
    s_model_write (write);
}

//  The change of revision s_revision reaches router r's watchdog.
static void
s_notify (int r)
{
    s_router_t *router = &s_routers [r];
    if (!router->online)
        return;
    if (router->n_deltas == DELTAS_MAX) {
        s_go_offline (r);       //  too far behind: it will take a full slice
        return;
    }
    s_delta_t *delta = &router->deltas [router->n_deltas++];
    delta->revision = s_revision;
    delta->exists = s_mirror [r].exists;
    delta->enabled = s_mirror [r].enabled;
    memcpy (delta->hosts, s_mirror [r].hosts, sizeof delta->hosts);
}

static void
s_model_action (void)
{
    int r = ep_rand_pick (&s_rng, ROUTERS);
    s_mirror_t *m = &s_mirror [r];
    int choice = ep_rand_pick (&s_rng, 100);
    if (choice < 60 && m->exists) {
        //  Host or un-host one service.
        int s = ep_rand_pick (&s_rng, SERVICES);
        if (!s_service_exists [s] && !m->hosts [s])
            return;
        m->hosts [s] = !m->hosts [s];
        s_write_router (r, false);
        s_touched (r, s);
        s_notify (r);
    }
    else
    if (choice < 72 && m->exists) {
        m->enabled = !m->enabled;
        s_write_router (r, false);
        s_touched (r, -1);
        s_notify (r);
    }
    else
    if (choice < 84) {
        if (m->exists) {
            Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
            write.has_op = write.has_type = true;
            write.op = EP__MODEL_WRITE__OP__DELETE;
            write.type = EP__ENTITY_TYPE__ENTITY_ROUTER;
            write.id = s_routers [r].id;
            s_model_write (&write);
            s_touched (r, -1);
            memset (m, 0, sizeof *m);
        }
        else {
            m->exists = m->enabled = true;
            for (int s = 0; s < SERVICES; s++)
                m->hosts [s] = s_service_exists [s] && s_chance (50);
            s_write_router (r, true);
            s_touched (r, -1);
        }
        s_notify (r);
    }
    else {
        //  A service goes (from every hosted list, in one revision) or comes back.
        int s = ep_rand_pick (&s_rng, SERVICES);
        char name [16];
        snprintf (name, sizeof name, "svc%d", s);
        if (s_service_exists [s]) {
            Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
            write.has_op = write.has_type = true;
            write.op = EP__MODEL_WRITE__OP__DELETE;
            write.type = EP__ENTITY_TYPE__ENTITY_SERVICE;
            write.id = name;
            s_model_write (&write);
            s_touched (-1, s);
            s_service_exists [s] = false;
            for (int i = 0; i < ROUTERS; i++)
                if (s_mirror [i].hosts [s]) {
                    s_mirror [i].hosts [s] = false;
                    s_notify (i);
                }
        }
        else {
            Ep__Service service = EP__SERVICE__INIT;
            service.id = name;
            ep_entity_write_t write;
            s_model_write (ep_entity_write (&write, EP__MODEL_WRITE__OP__CREATE, EP__ENTITY__KIND_SERVICE, &service));
            s_touched (-1, s);
            s_service_exists [s] = true;
        }
    }
    //  Sometimes the router hears of it before the service does.
    if (s_chance (30)) {
        s_learn (r, DELTAS_MAX);
        s_deliver (50);
    }
}

//  ---------------------------------------------------------------------
//  The service

static void
s_start_terms (int slot)
{
    char listen [64];
    snprintf (listen, sizeof listen, "tcp://127.0.0.1:%d", s_port [slot]);
    ep_stack_setenv (s_stack, "EDGEPLANE_INSTANCE_ID", "chaos%d", s_incarnation);
    snprintf (s_ids [slot], sizeof s_ids [slot], "terminators-chaos%d", s_incarnation);
    //  The etcd mode: each instance its own data dir (a slot's next
    //  instance takes the dead one's: its cache is emptied at start).
    if (s_etcd)
        ep_stack_setenv (s_stack, "EDGEPLANE_DATA_DIR", "%s/t%d", ep_stack_dir (s_stack), slot);
    const char *args [] = { "--listen", listen, "--http-listen", "127.0.0.1:0",
                            "--establish-timeout", "2s", "--retry-base", "100ms", "--retry-max", "1s",
                            "--retry-cap", "5", "--delete-grace", "1s", "--park-timeout", "3s",
                            "--settle", "700ms", "--presence-expiry", "2s", NULL };
    s_terms [slot] = ep_proc_start ("edgeplane-terminators", args, ep_stack_env (s_stack), 30000);
    cr_assert_not_null (s_terms [slot], "edgeplane-terminators did not start");
    char *page = ep_http_get (ep_proc_endpoint (s_terms [slot], "http"), "/metrics");
    cr_assert_not_null (page);
    s_replayed [s_incarnation] = ep_metric_value (page, "edgeplane_terminator_events_replayed_total");
    free (page);
}

static double
s_metric_of (int slot, const char *series)
{
    char *page = ep_http_get (ep_proc_endpoint (s_terms [slot], "http"), "/metrics");
    cr_assert_not_null (page);
    double value = ep_metric_value (page, series);
    free (page);
    return value;
}

//  series summed over every instance (a missing one counts 0).
static double
s_metric (const char *series)
{
    double sum = 0;
    for (int i = 0; i < s_count; i++) {
        if (i == s_down)
            continue;
        double value = s_metric_of (i, series);
        sum += value > 0? value: 0;
    }
    return sum;
}

//  The etcd mode: the killed slot's next instance, when due (or now).
static void
s_revive (bool now)
{
    if (s_down >= 0 && (now || ep_mono_ms () >= s_revive_at)) {
        int slot = s_down;
        s_down = -1;
        s_start_terms (slot);
        s_beacon (true);
    }
}

//  SIGKILLs an instance (the etcd mode: any) and starts the next at once
//  or (the etcd mode, one kill in two) after 1 to 3 s, the others taking
//  its shards meanwhile.
static void
s_restart (void)
{
    int slot = s_etcd? ep_rand_pick (&s_rng, s_count): 0;
    if (s_etcd) {
        //  Its counter dies with it: what it counted so far is kept.
        double spins = s_metric_of (slot, "edgeplane_terminator_spins_total");
        s_spins_killed += spins > 0? spins: 0;
    }
    cr_assert_eq (ep_proc_signal (s_terms [slot], SIGKILL), 0);
    int status = ep_proc_wait_exit (s_terms [slot], 10000);
    cr_assert (status != -1 && WIFSIGNALED (status), "the service did not die of SIGKILL");
    zlistx_add_end (s_service_logs, ep_proc_log (s_terms [slot]));
    ep_proc_destroy (&s_terms [slot]);
    s_ids [slot][0] = 0;
    s_incarnation++;
    cr_assert_lt (s_incarnation, (int) EP_COUNT (s_replayed));
    s_stats.restarts++;
    s_down = slot;
    s_revive_at = ep_mono_ms () + (s_etcd && s_chance (50)? 1000 + ep_rand_pick (&s_rng, 2000): 0);
    s_revive (false);
}

//  Adds the live terminators instance slot lists to live ("router/service/
//  state", key: id); one listed twice is a problem (*problem, caller frees).
static void
s_list (int slot, zhashx_t *live, char **problem)
{
    char token [65] = "";
    do {
        Ep__TerminatorFilter filter = EP__TERMINATOR_FILTER__INIT;
        filter.has_page_size = true;
        filter.page_size = 1000;
        filter.page_token = *token? token: NULL;
        Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
        request.op_case = EP__TERMINATOR_REQUEST__OP_LIST;
        request.list = &filter;
        char err [256];
        Ep__TerminatorReply *reply = ep_rpc_call (s_operator [slot], &request, &ep__terminator_reply__descriptor,
                                                  5000, 3, err, sizeof err);
        cr_assert_not_null (reply, "list: %s", err);
        cr_assert_eq (reply->status->code, EP__STATUS__CODE__OK);
        for (size_t i = 0; i < reply->n_terminators; i++) {
            Ep__Terminator *t = reply->terminators [i];
            char *line = zsys_sprintf ("%s/%s/%d", t->router_id, t->service_id, t->state);
            if (zhashx_insert (live, t->id, line) != 0) {
                if (!*problem)
                    *problem = zsys_sprintf ("terminator %s is listed twice by %s (%s and %s)", t->id,
                                             s_ids [slot], (char *) zhashx_lookup (live, t->id), line);
                zstr_free (&line);
            }
        }
        snprintf (token, sizeof token, "%s", reply->next_page_token? reply->next_page_token: "");
        ep__terminator_reply__free_unpacked (reply, NULL);
    } while (*token);
}

//  Every live terminator the service holds, in a hash (key: id). The etcd
//  mode: every instance lists the whole fleet (read from etcd), and they
//  must all agree.
static zhashx_t *
s_live (char **problem)
{
    zhashx_t *live = zhashx_new ();
    zhashx_set_destructor (live, (czmq_destructor *) zstr_free);
    s_list (0, live, problem);
    for (int slot = 1; slot < s_count && !*problem; slot++) {
        zhashx_t *other = zhashx_new ();
        zhashx_set_destructor (other, (czmq_destructor *) zstr_free);
        s_list (slot, other, problem);
        for (const char *v = (const char *) zhashx_first (live); v && !*problem;
             v = (const char *) zhashx_next (live)) {
            const char *id = (const char *) zhashx_cursor (live);
            const char *theirs = (const char *) zhashx_lookup (other, id);
            if (!theirs || !streq (theirs, v))
                *problem = zsys_sprintf ("terminator %s: %s lists %s, %s lists %s", id, s_ids [0], v,
                                         s_ids [slot], theirs? theirs: "nothing");
        }
        if (!*problem && zhashx_size (other) != zhashx_size (live))
            *problem = zsys_sprintf ("%s lists %zu terminators, %s %zu", s_ids [0], zhashx_size (live),
                                     s_ids [slot], zhashx_size (other));
        zhashx_destroy (&other);
    }
    return live;
}

//  Compares the service with the oracle; returns NULL or what differs.
static char *
s_compare (void)
{
    char *problem = NULL;
    zhashx_t *live = s_live (&problem);
    size_t expected = 0;
    for (int r = 0; r < ROUTERS && !problem; r++)
        for (int s = 0; s < SERVICES && !problem; s++) {
            bool desired = s_mirror [r].exists && s_mirror [r].enabled && s_mirror [r].hosts [s];
            const char *id = s_routers [r].term [s];
            if (!desired)
                continue;
            expected++;
            char want [96];
            snprintf (want, sizeof want, "%s/svc%d/%d", s_routers [r].id, s, EP__TERMINATOR_STATE__ESTABLISHED);
            const char *got = *id? (const char *) zhashx_lookup (live, id): NULL;
            if (!*id)
                problem = zsys_sprintf ("router %s holds no terminator for svc%d", s_routers [r].id, s);
            else
            if (!got || !streq (got, want))
                problem = zsys_sprintf ("terminator %s: want %s, service has %s", id, want, got? got: "nothing");
        }
    if (!problem && zhashx_size (live) != expected) {
        for (const char *v = (const char *) zhashx_first (live); v && !problem; v = (const char *) zhashx_next (live)) {
            const char *id = (const char *) zhashx_cursor (live);
            bool wanted = false;
            for (int r = 0; r < ROUTERS; r++)
                for (int s = 0; s < SERVICES; s++)
                    wanted |= streq (s_routers [r].term [s], id) && s_mirror [r].exists && s_mirror [r].enabled
                           && s_mirror [r].hosts [s];
            if (!wanted)
                problem = zsys_sprintf ("terminator %s (%s) is live but not desired", id, v);
        }
        if (!problem)
            problem = zsys_sprintf ("%zu live terminators, %zu desired", zhashx_size (live), expected);
    }
    zhashx_destroy (&live);
    return problem;
}

//  Prints what is known about terminator id: what its router did, the
//  events, and the service's log lines naming it.
static void
s_report (const char *id)
{
    const char *trace = (const char *) zhashx_lookup (s_trace, id);
    fprintf (stderr, "history of %s:\n%s", id, trace? trace: "  router: (nothing)\n");
    for (size_t i = 0; i < ep_eventlog_size (s_log); i++) {
        const ep_logged_t *entry = ep_eventlog_get (s_log, i);
        if (streq (entry->id, id))
            fprintf (stderr, "  event: %s from %s seq %llu: %s\n", s_type (entry), entry->source,
                     (unsigned long long) entry->seq, entry->reason);
    }
    for (int slot = 0; slot < s_count; slot++)
        zlistx_add_end (s_service_logs, ep_proc_log (s_terms [slot]));
    for (char *text = (char *) zlistx_first (s_service_logs); text; text = (char *) zlistx_next (s_service_logs)) {
        char *copy = strdup (text), *save = NULL;
        for (char *line = strtok_r (copy, "\n", &save); line; line = strtok_r (NULL, "\n", &save))
            if (strstr (line, id))
                fprintf (stderr, "  service: %s\n", line);
        free (copy);
    }
    Ep__TerminatorRequest request = EP__TERMINATOR_REQUEST__INIT;
    request.op_case = EP__TERMINATOR_REQUEST__OP_GET_ID;
    request.get_id = (char *) id;
    for (int slot = 0; slot < s_count; slot++) {
        Ep__TerminatorReply *reply = ep_rpc_call (s_operator [slot], &request, &ep__terminator_reply__descriptor,
                                                  5000, 2, NULL, 0);
        if (reply && reply->n_terminators) {
            Ep__Terminator *t = reply->terminators [0];
            fprintf (stderr, "  service (%s) now: state %d, generation %llu, attempts %u, next attempt %lld, router online %d, "
                     "model revision %llu, last error: %s\n", s_ids [slot], t->state, (unsigned long long) t->generation, t->attempts,
                     (long long) t->next_attempt_at_ms, t->router_online, (unsigned long long) t->model_revision,
                     t->last_error? t->last_error: "-");
        }
        if (reply)
            ep__terminator_reply__free_unpacked (reply, NULL);
    }
    int r = -1, s = -1;
    if (sscanf (id, "r%d-s%d-", &r, &s) == 2 && r >= 0 && r < ROUTERS && s >= 0 && s < SERVICES)
        fprintf (stderr, "  now: router %s %s, its id for svc%d \"%s\", its slice %s at %llu; model: %s%s%s\n",
                 s_routers [r].id, s_routers [r].online? "online": "offline", s, s_routers [r].term [s],
                 s_routers [r].hosted [s]? "hosts it": "does not host it", (unsigned long long) s_routers [r].known,
                 s_mirror [r].exists? "exists": "deleted", s_mirror [r].enabled? ", enabled": ", disabled",
                 s_mirror [r].hosts [s]? ", hosts it": ", does not host it");
}

//  ---------------------------------------------------------------------

static bool
s_shards_all_owned (void *arg)
{
    (void) arg;
    return s_metric ("edgeplane_terminators_shards_owned") == SHARDS;
}

static void
s_setup (void)
{
    s_stack = ep_stack_new ("terminators-chaos");
    s_keys = ep_stack_keys (s_stack);
    s_bus = ep_stack_bus (s_stack);
    const char *store = getenv ("EP_CHAOS_STORE");
    s_etcd = store && streq (store, "etcd");
    s_count = s_etcd? INSTANCES: 1;
    ep_test_stable_ports (s_port, (size_t) s_count);
    s_spins_killed = 0;
    s_event_ids = zhashx_new ();
    if (s_etcd) {
        const char *endpoints = ep_etcd_cluster_endpoints ();
        cr_assert (endpoints, "no etcd cluster: run this suite through ctest (fixture etcd_cluster)");
        s_prefix = ep_etcd_test_prefix ("terminators-chaos");
        ep_stack_setenv (s_stack, "EDGEPLANE_TERMINATORS_STORE", "etcd");
        ep_stack_setenv (s_stack, "EDGEPLANE_ETCD_ENDPOINTS", "%s", endpoints);
        ep_stack_setenv (s_stack, "EDGEPLANE_ETCD_PREFIX", "%s", s_prefix);
        ep_stack_setenv (s_stack, "EDGEPLANE_SHARDS", "%d", SHARDS);
        ep_stack_setenv (s_stack, "EDGEPLANE_TERMINATORS_LEASE_TTL", "2s");
        s_acquired = ep_stack_subscribe (s_stack, "cluster.shard.acquired");
    }

    s_terms_key = ep_keys_public_txt (s_keys, "terminators");
    s_watchdog_cert = ep_keys_load (s_keys, "watchdog");
    s_operator_cert = ep_keys_load (s_keys, "operator");
    s_model_cert = ep_keys_load (s_keys, "model");
    char *bus_key = ep_keys_public_txt (s_keys, "bus");
    s_presence = ep_publisher_new (ep_proc_connect_endpoint (s_bus, "pub"), s_watchdog_cert, bus_key,
                                   "watchdog-chaos", EP_CODEC_DEFAULT_CAP);
    s_republisher = ep_publisher_new (ep_proc_connect_endpoint (s_bus, "pub"), s_model_cert, bus_key,
                                      "model-chaos", EP_CODEC_DEFAULT_CAP);
    s_events = ep_subscriber_new (ep_proc_connect_endpoint (s_bus, "sub"), s_operator_cert, bus_key,
                                  EP_CODEC_DEFAULT_CAP, s_on_report, NULL);
    ep_subscriber_subscribe (s_events, "terminator.");
    s_log = ep_eventlog_new (s_events);
    s_model_stream = ep_subscriber_new (ep_proc_connect_endpoint (s_bus, "sub"), s_operator_cert, bus_key,
                                        EP_CODEC_DEFAULT_CAP, NULL, NULL);
    ep_subscriber_subscribe (s_model_stream, "model.change");
    s_commands = ep_subscriber_new (ep_proc_connect_endpoint (s_bus, "sub"), s_operator_cert, bus_key,
                                    EP_CODEC_DEFAULT_CAP, NULL, NULL);
    ep_subscriber_subscribe (s_commands, "cmd.");
    free (bus_key);
    s_late = zlistx_new ();
    s_service_logs = zlistx_new ();
    zlistx_set_destructor (s_service_logs, (czmq_destructor *) zstr_free);
    s_dups = zlistx_new ();
    zlistx_set_destructor (s_dups, s_dup_destroy);
    zlistx_set_destructor (s_late, s_late_destroy);
    s_outbox = zhashx_new ();
    s_trace = zhashx_new ();
    zhashx_set_destructor (s_trace, (czmq_destructor *) zstr_free);
    zhashx_set_destructor (s_outbox, s_out_destroy);
    memset (&s_stats, 0, sizeof s_stats);
}

static void
s_teardown (void)
{
    for (int i = 0; i < INSTANCES; i++) {
        zsock_destroy (&s_dealer [i]);
        ep_rpc_client_destroy (&s_operator [i]);
        ep_proc_destroy (&s_terms [i]);
    }
    zhashx_destroy (&s_event_ids);
    zstr_free (&s_prefix);
    for (int r = 0; r < ROUTERS; r++)
        zhashx_destroy (&s_routers [r].retired);
    zhashx_destroy (&s_outbox);
    zhashx_destroy (&s_trace);
    zlistx_destroy (&s_late);
    zlistx_destroy (&s_service_logs);
    zlistx_destroy (&s_dups);
    ep_eventlog_destroy (&s_log);
    free (s_touches);
    s_touches = NULL;
    s_touch_count = s_touch_cap = 0;
    ep_subscriber_destroy (&s_events);
    ep_subscriber_destroy (&s_model_stream);
    ep_subscriber_destroy (&s_commands);
    s_acquired = NULL;
    ep_publisher_destroy (&s_presence);
    ep_publisher_destroy (&s_republisher);
    zcert_destroy (&s_watchdog_cert);
    zcert_destroy (&s_operator_cert);
    zcert_destroy (&s_model_cert);
    zstr_free (&s_terms_key);
    s_bus = NULL;
    s_keys = NULL;
    ep_stack_destroy (&s_stack);
}

Test (terminators_chaos, interleaved_routers_model_changes_and_restarts_converge_exactly,
      .init = s_setup, .fini = s_teardown, .timeout = 400)
{
    const char *seed_text = getenv ("EP_CHAOS_SEED");
    uint64_t seed = seed_text? strtoull (seed_text, NULL, 10): (uint64_t) ep_wall_ms () ^ (uint64_t) getpid ();
    if (seed == 0)
        seed = 1;
    s_rng = seed;
    const char *seconds_text = getenv ("EP_CHAOS_SECONDS");
    int seconds = seconds_text? atoi (seconds_text): 30;
    fprintf (stderr, "terminators chaos: seed %llu, %d s, %s (replay with EP_CHAOS_SEED=%llu)\n",
             (unsigned long long) seed, seconds, s_etcd? "three instances on etcd": "embedded",
             (unsigned long long) seed);
    cr_log_info ("seed %llu", (unsigned long long) seed);

    //  The initial model: every service, every router hosting about half.
    for (int s = 0; s < SERVICES; s++) {
        char name [16];
        snprintf (name, sizeof name, "svc%d", s);
        Ep__Service service = EP__SERVICE__INIT;
        service.id = name;
        ep_entity_write_t write;
        s_model_write (ep_entity_write (&write, EP__MODEL_WRITE__OP__CREATE, EP__ENTITY__KIND_SERVICE, &service));
        s_service_exists [s] = true;
    }
    for (int r = 0; r < ROUTERS; r++) {
        memset (&s_routers [r], 0, sizeof s_routers [r]);
        snprintf (s_routers [r].id, sizeof s_routers [r].id, "r%d", r);
        s_routers [r].retired = zhashx_new ();
        s_mirror [r].exists = s_mirror [r].enabled = true;
        for (int s = 0; s < SERVICES; s++)
            s_mirror [r].hosts [s] = s_chance (50);
        s_write_router (r, true);
        s_touched (r, -1);
    }
    for (int i = 0; i < s_count; i++) {
        if (i > 0)
            s_incarnation++;
        s_start_terms (i);
        s_operator [i] = ep_rpc_client_new (ep_proc_connect_endpoint (s_terms [i], "api"), s_operator_cert,
                                            s_terms_key);
        s_dealer [i] = zsock_new (ZMQ_DEALER);
        zsock_set_sndhwm (s_dealer [i], 100000);
        zsock_set_rcvhwm (s_dealer [i], 100000);
        zcert_apply (s_watchdog_cert, s_dealer [i]);
        zsock_set_curve_serverkey (s_dealer [i], s_terms_key);
        cr_assert_eq (zsock_connect (s_dealer [i], "%s", ep_proc_connect_endpoint (s_terms [i], "api")), 0);
    }
    for (int r = 0; r < ROUTERS; r++)
        s_route [r] = r % s_count;
    cr_assert_eq (ep_subscriber_wait_stream (s_events, "terminator", 10000), 0);
    if (s_etcd)
        cr_assert (ep_wait_until (s_shards_all_owned, NULL, 15000), "the instances own %.0f of %d shards",
                   s_metric ("edgeplane_terminators_shards_owned"), SHARDS);
    for (int r = 0; r < ROUTERS; r++)
        s_reconnect (r);

    size_t acquired = 0;        //  shards taken over after the first kill (the etcd mode)

    //  Chaos.
    int64_t end = ep_mono_ms () + seconds * 1000;
    int64_t next_restart = ep_mono_ms () + 3000 + ep_rand_pick (&s_rng, 4000);
    while (ep_mono_ms () < end) {
        int action = ep_rand_pick (&s_rng, 100);
        if (action < 22)
            s_model_action ();
        else
        if (action < 50) {
            int r = ep_rand_pick (&s_rng, ROUTERS);
            s_learn (r, 1 + ep_rand_pick (&s_rng, 3));
        }
        else
        if (action < 70)
            s_deliver (1 + ep_rand_pick (&s_rng, 40));
        else
        if (action < 86)
            s_reconnect (ep_rand_pick (&s_rng, ROUTERS));
        else
        if (action < 90)
            s_go_offline (ep_rand_pick (&s_rng, ROUTERS));
        else
            s_replies (ep_rand_pick (&s_rng, 20));
        s_revive (false);
        if (ep_mono_ms () >= next_restart && s_down < 0) {
            //  A random point: often with requests in flight.
            s_deliver (ep_rand_pick (&s_rng, 60));
            //  Those before the first kill are the start's balancing.
            size_t before = s_acquisitions ();
            acquired += s_stats.restarts? before: 0;
            s_restart ();
            next_restart = ep_mono_ms () + 4000 + ep_rand_pick (&s_rng, 6000);
        }
        s_replies (0);
        s_send_dups ();
        s_beacon (false);
        s_republish ();
        s_deliver_commands ();
        ep_eventlog_pump (s_log, 0);
        size_t now = s_acquisitions ();
        acquired += s_stats.restarts? now: 0;
    }
    s_revive (true);
    if (s_etcd) {
        //  The kills moved shards while the routers were asking.
        fprintf (stderr, "terminators chaos: %zu shards acquired after the first kill\n", acquired);
        cr_assert_gt (acquired, 0, "no shard changed owner during the chaos (seed %llu)", (unsigned long long) seed);
    }

    //  Convergence: every router the model keeps joins with a full slice
    //  and validates, until nothing changes.
    fprintf (stderr, "terminators chaos: converging (model revision %llu)\n", (unsigned long long) s_revision);
    for (int r = 0; r < ROUTERS; r++)
        if (!s_mirror [r].exists || !s_mirror [r].enabled)
            s_go_offline (r);
    s_converging = true;
    int round = 0;
    for (; round < 12; round++) {
        s_validate_changes = 0;
        for (int r = 0; r < ROUTERS; r++)
            s_reconnect (r);
        int64_t deadline = ep_mono_ms () + 60000;
        while ((zhashx_size (s_outbox) || zlistx_size (s_dups)) && ep_mono_ms () < deadline) {
            s_send_dups ();
            s_deliver (200);
            s_replies (50);
            s_beacon (false);
            s_republish ();
            s_deliver_commands ();
            ep_eventlog_pump (s_log, 0);
        }
        cr_assert_eq (zhashx_size (s_outbox), 0, "requests still unanswered after a minute (seed %llu)",
                      (unsigned long long) seed);
        if (s_validate_changes == 0)
            break;
    }
    cr_assert_lt (round, 12, "the fleet did not converge (seed %llu)", (unsigned long long) seed);
    //  The service settles: grace periods run out, everything is established.
    char *problem = NULL;
    int64_t deadline = ep_mono_ms () + 30000;
    while (ep_mono_ms () < deadline) {
        zstr_free (&problem);
        if (!(problem = s_compare ()))
            break;
        int64_t pause = ep_mono_ms () + 200;
        while (ep_mono_ms () < pause) {
            s_beacon (false);
            s_deliver_commands ();
            s_deliver (200);
            s_send_dups ();
            s_replies (20);
            ep_eventlog_pump (s_log, 0);
        }
    }
    //  Late events reach us.
    int64_t drain = ep_mono_ms () + 1500;
    while (ep_mono_ms () < drain) {
        s_beacon (false);
        ep_eventlog_pump (s_log, 0);
        s_replies (20);
    }
    fprintf (stderr, "terminators chaos: %llu model writes, %llu creates, %llu deletes, %llu validates, "
             "%llu sends (%llu duplicated, %llu resent), %llu replies (%llu retry, %llu refused), "
             "%llu reconnects, %llu offline, %llu restarts, %llu model changes re-published, "
             "%llu commands answered, %zu events, %llu event gaps\n",
             (unsigned long long) s_stats.model_writes, (unsigned long long) s_stats.creates,
             (unsigned long long) s_stats.deletes, (unsigned long long) s_stats.validates,
             (unsigned long long) s_stats.sends, (unsigned long long) s_stats.duplicates,
             (unsigned long long) s_stats.late_sends, (unsigned long long) s_stats.replies,
             (unsigned long long) s_stats.unavailable, (unsigned long long) s_stats.refused,
             (unsigned long long) s_stats.reconnects, (unsigned long long) s_stats.offlines,
             (unsigned long long) s_stats.restarts, (unsigned long long) s_stats.republished,
             (unsigned long long) s_stats.commands, ep_eventlog_size (s_log), (unsigned long long) s_stats.event_gaps);
    if (problem) {
        char id [65] = "";
        if (sscanf (problem, "terminator %64[^: ]", id) == 1)
            s_report (id);
    }
    cr_assert_null (problem, "the service differs from the oracle: %s (seed %llu)", problem,
                    (unsigned long long) seed);
    cr_assert_gt (s_stats.restarts, 0, "the run must restart the service at least once");
    cr_assert_eq (s_stats.unfenced, 0, "%llu of the commands carry no owner fence (shard_service, shard, "
                  "owner_revision)", (unsigned long long) s_stats.unfenced);
    if (s_etcd)
        cr_assert_gt (s_stats.commands, 0, "no command came: their fences were not tested");

    //  The event log: no id comes back after its deletion. The first N
    //  events of each run are the previous run's replayed outbox.
    zhashx_t *deleted = zhashx_new ();     //  id -> revision its deletion was based on
    size_t spins = 0, violations = 0, replays = 0, comebacks = 0;
    char *first = NULL;
    for (size_t i = 0; i < ep_eventlog_size (s_log); i++) {
        const ep_logged_t *entry = ep_eventlog_get (s_log, i);
        if (s_etcd) {
            //  A new owner publishes again what the shard's outbox still
            //  held: at least once, a duplicate has the event id seen.
            const char *event_id = json_string_value (json_object_get (entry->json, "event_id"));
            cr_assert (event_id && *event_id, "an event without its event id: %s %s from %s seq %llu (seed %llu)",
                       s_type (entry), entry->id, entry->source, (unsigned long long) entry->seq,
                       (unsigned long long) seed);
            if (zhashx_lookup (s_event_ids, event_id)) {
                replays++;
                continue;
            }
            zhashx_insert (s_event_ids, event_id, (void *) 1);
        }
        int incarnation = -1;
        if (!s_etcd && strncmp (entry->source, "terminators-chaos", 17) == 0)
            incarnation = atoi (entry->source + 17);
        if (incarnation >= 0 && incarnation < (int) EP_COUNT (s_replayed)
        &&  (double) entry->seq <= s_replayed [incarnation]) {
            replays++;
            continue;
        }
        const char *mark = strstr (entry->reason, "(model revision ");
        uint64_t revision = mark? strtoull (mark + 16, NULL, 10): 0;
        cr_assert (mark, "event without its model revision: %s %s \"%s\"", s_type (entry), entry->id, entry->reason);
        int r = -1, sv = -1;
        sscanf (entry->id, "r%d-s%d-", &r, &sv);
        if (streq (s_type (entry), "spin")) {
            if (spins++ == 0)
                s_report (entry->id);
        }
        else
        if (streq (s_type (entry), "deleted"))
            zhashx_update (deleted, entry->id, (void *) (uintptr_t) (revision + 1));
        else
        if (zhashx_lookup (deleted, entry->id)) {
            //  Only a create based on a newer model, which touched the
            //  (router, service) after the deletion, may bring it back.
            uint64_t gone = (uint64_t) (uintptr_t) zhashx_lookup (deleted, entry->id) - 1;
            if (streq (s_type (entry), "created") && revision > gone && s_touched_between (r, sv, gone, revision)) {
                zhashx_delete (deleted, entry->id);
                comebacks++;
            }
            else {
                violations++;
                if (!first)
                    first = zsys_sprintf ("%s of %s after its deletion (event %zu from %s seq %llu)", s_type (entry),
                                          entry->id, i, entry->source, (unsigned long long) entry->seq);
            }
        }
    }
    fprintf (stderr, "terminators chaos: %zu ids deleted, %zu brought back by the model, %zu replayed events, "
             "%zu spin events\n", zhashx_size (deleted), comebacks, replays, spins);
    if (first) {
        char id [65];
        sscanf (first, "%*s of %64s", id);
        s_report (id);
    }
    zhashx_destroy (&deleted);
    cr_assert_eq (violations, 0, "%zu events of deleted ids: first %s (seed %llu)", violations, first,
                  (unsigned long long) seed);
    cr_assert_eq (spins, 0, "spin events (seed %llu)", (unsigned long long) seed);
    cr_assert_eq (s_metric ("edgeplane_terminator_spins_total") + s_spins_killed, 0, "spins counted (seed %llu)",
                  (unsigned long long) seed);
    //  Every terminator that stayed has its lifecycle in the log.
    for (int r = 0; r < ROUTERS; r++)
        for (int s = 0; s < SERVICES; s++)
            if (s_mirror [r].exists && s_mirror [r].enabled && s_mirror [r].hosts [s]) {
                bool established = false;
                for (size_t i = 0; i < ep_eventlog_size (s_log); i++)
                    established |= streq (s_type (ep_eventlog_get (s_log, i)), "established")
                                && streq (ep_eventlog_get (s_log, i)->id, s_routers [r].term [s]);
                cr_assert (established || s_stats.event_gaps > 0,
                           "no established event for %s (seed %llu)", s_routers [r].term [s], (unsigned long long) seed);
            }
    free (first);
}
