/*  modelpub.h: which model instance publishes, when the model is in etcd.

    Several instances serve one prefix and all take writes, but the change
    stream must come out once and in revision order, so one of them
    publishes model.change and entityChange.*: the one that holds the
    election key <prefix>publisher, created under its lease by a
    transaction that creates it only if it is absent (not etcd's election
    API, whose campaign holds a connection open while it waits). The others
    watch the key and campaign again when it is deleted or its lease
    expires.

    The publisher publishes the change records (<prefix>changes/...) in
    revision order as its watch of them delivers them, not its own commits:
    the record is the source, so whoever publishes a revision publishes the
    same content. About every second it writes how far it has published to
    <prefix>checkpoint (only while it still holds the key); a new publisher
    resumes after the checkpoint, so across a failover every revision goes
    out at least once, identical, in order.

    Every instance keeps a lease (its time to live as etcd granted it: etcd
    raises one below its minimum) alive with a keepalive every third of it.
    A publisher stops publishing as soon as the time since the sending of
    its last successful keepalive reaches the TTL less a quarter of it: by
    then the lease may be gone and another instance publishing. It then
    gives up the key (revokes its lease) and campaigns again with a new
    lease.

    Driven from the service's loop: etcd callbacks (the client's sockets
    are in the loop's wait) and modelpub_tick, which does what is due.
*/
#ifndef MODELPUB_H_INCLUDED
#define MODELPUB_H_INCLUDED

#include "ep_prelude.h"
#include "ep_etcd.h"
#include "events.pb-c.h"

typedef struct _modelpub_t modelpub_t;

//  Publishes one revision's model.change (whole: the caller splits it into
//  parts and derives entityChange.*). event is valid during the call.
typedef void (modelpub_fn) (void *arg, Ep__Event *event);

typedef struct {
    ep_etcd_t *etcd;            //  the client (borrowed; see modelpub_stop)
    const char *prefix;         //  the model's prefix, ending in '/'
    const char *name;           //  this instance, as the election key's value says
    int64_t lease_ttl_ms;       //  the lease's time to live asked for
    modelpub_fn *publish;       //  publishes a revision
    void *arg;                  //  for it
} modelpub_config_t;

//  Starts campaigning: grants the lease, then tries to take the key.
modelpub_t *
    modelpub_new (const modelpub_config_t *config);

//  Cancels the watches and gives the key up (revokes the lease, waiting
//  up to a second), so another instance takes over at once. Call it
//  before the client is destroyed; modelpub_destroy after.
void
    modelpub_stop (modelpub_t *self);

void
    modelpub_destroy (modelpub_t **self_p);

//  Does what is due at now_ms (keepalive, checkpoint, stepping down when
//  the lease aged) and returns the ms until the next thing is due.
int64_t
    modelpub_tick (modelpub_t *self, int64_t now_ms);

//  True while this instance publishes.
bool
    modelpub_publishing (modelpub_t *self);

//  The last revision published (0: none yet), and the lease's TTL as etcd
//  granted it (ms, 0 before the grant).
uint64_t
    modelpub_published (modelpub_t *self);
int64_t
    modelpub_ttl_ms (modelpub_t *self);

#endif
