/*  dialer.c: the peer-controller dialing decisions (see dialer.h). */
#include "dialer.h"
#include "ep_backoff.h"

typedef struct {
    char instance [80];         //  its instance id (the key)
    char ctrl_id [65];          //  from its last beacon
    char address [256];         //  from its last beacon
    uint64_t epoch;             //  from its last beacon
    uint64_t revision;          //  model revision it has applied, from its last beacon
    int64_t last_beacon;        //  when we last heard it (ms)
    bool linked;                //  a link is open (dialing or joined)
    bool gone;                  //  said goodbye in this epoch: not dialed again
    int64_t dial_at;            //  when to dial (while not linked)
    const char *hangup;         //  a hang-up owed (reason), before anything else
    ep_backoff_t backoff;       //  redial delays
} s_peer_t;

struct _dialer_t {
    dialer_config_t config;     //  expiry, backoff
    char *self_instance;        //  our own id
    uint64_t registered;        //  revision of our controller entry, 0 if none
    zhashx_t *peers;            //  instance -> s_peer_t
};

dialer_t *
dialer_new (const dialer_config_t *config, const char *self_instance)
{
    EP_ASSERT (config->expire_ms > 0 && config->backoff_base_ms > 0);
    EP_ASSERT (config->backoff_max_ms >= config->backoff_base_ms);
    dialer_t *self = (dialer_t *) zmalloc (sizeof (dialer_t));
    self->config = *config;
    self->self_instance = strdup (self_instance);
    self->peers = zhashx_new ();
    zhashx_set_destructor (self->peers, (czmq_destructor *) zstr_free);
    return self;
}

void
dialer_destroy (dialer_t **self_p)
{
    dialer_t *self = *self_p;
    if (self) {
        zhashx_destroy (&self->peers);
        free (self->self_instance);
        free (self);
        *self_p = NULL;
    }
}

void
dialer_set_registered (dialer_t *self, uint64_t revision)
{
    self->registered = revision;
}

void
dialer_beacon (dialer_t *self, const char *instance, uint64_t epoch, const char *ctrl_id,
               const char *address, uint64_t model_revision, int64_t now_ms)
{
    if (!instance || !ctrl_id || !address || !*ctrl_id || !*address
    ||  streq (instance, self->self_instance)
    ||  strlen (instance) >= 80 || strlen (ctrl_id) >= 65 || strlen (address) >= 256)
        return;
    s_peer_t *peer = (s_peer_t *) zhashx_lookup (self->peers, instance);
    if (!peer) {
        peer = (s_peer_t *) zmalloc (sizeof (s_peer_t));
        snprintf (peer->instance, sizeof peer->instance, "%s", instance);
        peer->backoff = ep_backoff (self->config.backoff_base_ms, self->config.backoff_max_ms);
        peer->epoch = epoch;
        peer->dial_at = now_ms;
        zhashx_insert (self->peers, instance, peer);
    }
    else
    if (peer->epoch != epoch || !streq (peer->ctrl_id, ctrl_id) || !streq (peer->address, address)) {
        //  It restarted or moved: what we hold (if anything) is to the old one.
        if (peer->linked)
            peer->hangup = "restarted";
        peer->linked = false;
        peer->gone = false;
        peer->epoch = epoch;
        peer->dial_at = now_ms;
        ep_backoff_reset (&peer->backoff);
    }
    snprintf (peer->ctrl_id, sizeof peer->ctrl_id, "%s", ctrl_id);
    snprintf (peer->address, sizeof peer->address, "%s", address);
    peer->revision = model_revision;
    peer->last_beacon = now_ms;
}

void
dialer_linked (dialer_t *self, const char *instance, int64_t now_ms)
{
    (void) now_ms;
    s_peer_t *peer = (s_peer_t *) zhashx_lookup (self->peers, instance);
    if (peer)
        ep_backoff_reset (&peer->backoff);
}

void
dialer_unlinked (dialer_t *self, const char *instance, bool goodbye, int64_t now_ms)
{
    s_peer_t *peer = (s_peer_t *) zhashx_lookup (self->peers, instance);
    if (!peer || !peer->linked)
        return;
    peer->linked = false;
    peer->gone = goodbye;
    peer->dial_at = now_ms + ep_backoff_next (&peer->backoff);
}

static void
s_action (dialer_action_t *action, dialer_verb_t verb, s_peer_t *peer, const char *reason)
{
    action->verb = verb;
    snprintf (action->instance, sizeof action->instance, "%s", peer->instance);
    snprintf (action->ctrl_id, sizeof action->ctrl_id, "%s", peer->ctrl_id);
    snprintf (action->address, sizeof action->address, "%s", peer->address);
    action->reason = reason;
}

//  Whether peer can be dialed at all: it has applied our controller entry.
static bool
s_eligible (dialer_t *self, s_peer_t *peer)
{
    return self->registered && peer->revision >= self->registered && !peer->gone;
}

bool
dialer_next (dialer_t *self, int64_t now_ms, dialer_action_t *action)
{
    s_peer_t *peer = (s_peer_t *) zhashx_first (self->peers);
    for (; peer; peer = (s_peer_t *) zhashx_next (self->peers)) {
        if (peer->hangup) {
            s_action (action, DIALER_HANGUP, peer, peer->hangup);
            peer->hangup = NULL;
            return true;
        }
        if (now_ms >= peer->last_beacon + self->config.expire_ms) {
            bool linked = peer->linked;
            s_action (action, DIALER_HANGUP, peer, "beacons-stopped");
            zhashx_delete (self->peers, action->instance);
            if (linked)
                return true;
            return dialer_next (self, now_ms, action);      //  nothing to hang up: look on
        }
        if (!peer->linked && s_eligible (self, peer) && now_ms >= peer->dial_at) {
            peer->linked = true;
            s_action (action, DIALER_DIAL, peer, NULL);
            return true;
        }
    }
    return false;
}

int64_t
dialer_deadline (dialer_t *self)
{
    int64_t deadline = INT64_MAX;
    s_peer_t *peer = (s_peer_t *) zhashx_first (self->peers);
    for (; peer; peer = (s_peer_t *) zhashx_next (self->peers)) {
        int64_t due = peer->last_beacon + self->config.expire_ms;
        if (peer->hangup)
            due = INT64_MIN;
        else
        if (!peer->linked && s_eligible (self, peer) && peer->dial_at < due)
            due = peer->dial_at;
        if (due < deadline)
            deadline = due;
    }
    return deadline;
}

size_t
dialer_size (dialer_t *self)
{
    return zhashx_size (self->peers);
}

size_t
dialer_linked_count (dialer_t *self)
{
    size_t linked = 0;
    s_peer_t *peer = (s_peer_t *) zhashx_first (self->peers);
    for (; peer; peer = (s_peer_t *) zhashx_next (self->peers))
        linked += peer->linked;
    return linked;
}
