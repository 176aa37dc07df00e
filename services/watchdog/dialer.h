/*  dialer.h: which peer controllers this watchdog instance dials, and when.

    Watchdog instances learn each other from presence beacons (instance id,
    epoch, ctrl id, channel address, the model revision each has applied)
    and dial each other as ctrl peers. This is the decision part, without
    sockets or clocks: beacons, link outcomes and now_ms go in; "dial this
    peer" and "hang up on this peer" come out of dialer_next ().

    Rules:
    - a peer is dialed once its beacon shows a model revision at or above
      the one where our own controller entry was registered (before that it
      would refuse us as not-member, and report a stray that is not one);
    - a lost link is dialed again with exponential backoff and jitter while
      the peer keeps beaconing;
    - a peer whose beacons stop (expire_ms) is hung up on and forgotten;
      a new epoch, ctrl id or address (it restarted or moved) hangs up the
      old link and dials the new one at once;
    - a peer that said goodbye (shutting down) is not dialed again until a
      beacon of a new epoch.
*/
#ifndef DIALER_H_INCLUDED
#define DIALER_H_INCLUDED

#include "ep_prelude.h"

typedef struct _dialer_t dialer_t;

typedef struct {
    int64_t expire_ms;          //  a peer unheard this long is forgotten
    int64_t backoff_base_ms;    //  first redial delay after a lost link
    int64_t backoff_max_ms;     //  largest redial delay
} dialer_config_t;

typedef enum {
    DIALER_DIAL = 1,            //  open a link to the peer (none is open)
    DIALER_HANGUP               //  close the peer's link (reason says why)
} dialer_verb_t;

typedef struct {
    dialer_verb_t verb;
    char instance [80];         //  the peer's instance (source) id
    char ctrl_id [65];          //  the ctrl id its certificate must carry
    char address [256];         //  its channel address, host:port
    const char *reason;         //  HANGUP: "beacons-stopped", "restarted"
} dialer_action_t;

//  self_instance: our own instance id (our own beacons are ignored).
dialer_t *
    dialer_new (const dialer_config_t *config, const char *self_instance);

void
    dialer_destroy (dialer_t **self_p);

//  Our controller entry is in the model as of revision (0: not registered,
//  nobody is dialed).
void
    dialer_set_registered (dialer_t *self, uint64_t revision);

//  A beacon from instance.
void
    dialer_beacon (dialer_t *self, const char *instance, uint64_t epoch, const char *ctrl_id,
                   const char *address, uint64_t model_revision, int64_t now_ms);

//  The link to instance joined (the backoff starts over).
void
    dialer_linked (dialer_t *self, const char *instance, int64_t now_ms);

//  The link to instance closed or failed; goodbye: the peer said it is
//  going away (not dialed again before a new epoch).
void
    dialer_unlinked (dialer_t *self, const char *instance, bool goodbye, int64_t now_ms);

//  The next action due at now_ms, if any (call until false).
bool
    dialer_next (dialer_t *self, int64_t now_ms, dialer_action_t *action);

//  When dialer_next may next have something (ms), INT64_MAX if never.
int64_t
    dialer_deadline (dialer_t *self);

//  Peers known (beaconing), and of them linked (dialed, not yet lost).
size_t
    dialer_size (dialer_t *self);
size_t
    dialer_linked_count (dialer_t *self);

#endif
