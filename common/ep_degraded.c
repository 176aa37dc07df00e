/*  ep_degraded.c: a service's "the store takes no writes" state (ep_degraded.h). */
#include "ep_degraded.h"
#include "ep_log.h"

//  How often a degraded service probes the disk when no write comes: soon
//  enough that readiness follows freed space within a scrape or two.
#define EP_DEGRADED_PROBE_MS 500

struct _ep_degraded_t {
    char *service;              //  "model", for the event
    char *path;                 //  the store's file, for the event
    ep_http_t *http;            //  /readyz (borrowed, may be NULL)
    ep_gauge_t *gauge;          //  edgeplane_store_degraded{reason}, or NULL
    ep_degraded_publish_fn *publish;    //  service.degraded, or NULL
    void *arg;                  //  for publish
    ep_store_fault_t fault;     //  NONE, FULL or FAILING
    char message [768];         //  the store's message while degraded
    int64_t since_ms;           //  wall ms it became degraded
    int64_t next_probe;         //  monotonic ms
};

ep_degraded_t *
ep_degraded_new (const char *service, const char *path, ep_http_t *http,
                 ep_metrics_t *metrics, ep_degraded_publish_fn *publish, void *arg)
{
    EP_ASSERT (service && path);
    ep_degraded_t *self = (ep_degraded_t *) zmalloc (sizeof (ep_degraded_t));
    self->service = strdup (service);
    self->path = strdup (path);
    EP_ASSERT (self->service && self->path);
    self->http = http;
    self->publish = publish;
    self->arg = arg;
    if (metrics) {
        const char *labels [] = { "reason" };
        self->gauge = ep_metrics_gauge (metrics, "edgeplane_store_degraded",
            "1 while the store cannot take writes, by reason (disk_full, disk_failing, etcd_nospace).",
            1, labels);
        //  Every series exists from the start, at 0, so an alert can rely on them.
        const char *full [] = { "disk_full" }, *failing [] = { "disk_failing" },
                   *nospace [] = { "etcd_nospace" };
        ep_gauge_set (self->gauge, full, 0);
        ep_gauge_set (self->gauge, failing, 0);
        ep_gauge_set (self->gauge, nospace, 0);
    }
    return self;
}

void
ep_degraded_destroy (ep_degraded_t **self_p)
{
    ep_degraded_t *self = *self_p;
    if (self) {
        free (self->service);
        free (self->path);
        free (self);
        *self_p = NULL;
    }
}

static void
s_publish (ep_degraded_t *self, const char *state, ep_store_fault_t fault)
{
    if (!self->publish)
        return;
    Ep__ServiceEvent body = EP__SERVICE_EVENT__INIT;
    body.service = self->service;
    body.state = (char *) state;
    body.reason = (char *) ep_store_fault_name (fault);
    body.path = self->path;
    body.detail = self->message;
    body.has_since_ms = true;
    body.since_ms = self->since_ms;
    Ep__Event event = EP__EVENT__INIT;
    event.body_case = EP__EVENT__BODY_SERVICE;
    event.service = &body;
    self->publish (self->arg, "service.degraded", &event);
}

static void
s_gauge (ep_degraded_t *self, ep_store_fault_t fault, double value)
{
    if (self->gauge) {
        const char *reason [] = { ep_store_fault_name (fault) };
        ep_gauge_set (self->gauge, reason, value);
    }
}

void
ep_degraded_update (ep_degraded_t *self, ep_store_fault_t fault, const char *message,
                    int64_t now_ms)
{
    if (fault == EP_STORE_FAULT_OTHER)
        return;
    if (fault == EP_STORE_FAULT_NONE) {
        if (self->fault == EP_STORE_FAULT_NONE)
            return;
        ep_log_info ("the store takes writes again (%s): writes are accepted", self->path);
        ep_store_fault_t was = self->fault;
        self->fault = EP_STORE_FAULT_NONE;
        s_gauge (self, was, 0);
        if (self->http)
            ep_http_set_degraded (self->http, NULL);
        s_publish (self, "recovered", was);
        return;
    }
    bool changed = self->fault != fault;
    bool entering = self->fault == EP_STORE_FAULT_NONE;
    snprintf (self->message, sizeof self->message, "%s", message? message: "");
    if (entering) {
        self->since_ms = ep_wall_ms ();
        self->next_probe = now_ms + EP_DEGRADED_PROBE_MS;
    }
    if (!changed)
        return;
    if (!entering)
        s_gauge (self, self->fault, 0);
    self->fault = fault;
    s_gauge (self, fault, 1);
    ep_log_error ("degraded, writes are refused until the store takes them again: %s", self->message);
    if (self->http) {
        char reason [900];
        snprintf (reason, sizeof reason, "%s: writes refused: %s",
                  ep_store_fault_name (fault), self->message);
        ep_http_set_degraded (self->http, reason);
    }
    s_publish (self, "degraded", fault);
}

bool
ep_degraded_active (ep_degraded_t *self)
{
    return self->fault != EP_STORE_FAULT_NONE;
}

ep_store_fault_t
ep_degraded_fault (ep_degraded_t *self)
{
    return self->fault;
}

const char *
ep_degraded_message (ep_degraded_t *self)
{
    return self->fault != EP_STORE_FAULT_NONE? self->message: "";
}

bool
ep_degraded_probe_due (ep_degraded_t *self, int64_t now_ms)
{
    if (self->fault == EP_STORE_FAULT_NONE || now_ms < self->next_probe)
        return false;
    self->next_probe = now_ms + EP_DEGRADED_PROBE_MS;
    return true;
}

int64_t
ep_degraded_next (ep_degraded_t *self, int64_t now_ms)
{
    if (self->fault == EP_STORE_FAULT_NONE)
        return INT64_MAX;
    return self->next_probe > now_ms? self->next_probe - now_ms: 0;
}

void
ep_degraded_probe_store (ep_degraded_t *self, ep_store_t *store, int64_t now_ms)
{
    if (!ep_degraded_probe_due (self, now_ms))
        return;
    if (ep_store_probe (store) == 0)
        ep_degraded_update (self, EP_STORE_FAULT_NONE, NULL, now_ms);
    else
        ep_degraded_update (self, ep_store_last_fault (), ep_store_last_error (), now_ms);
}
