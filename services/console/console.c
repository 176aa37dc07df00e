/*  console.c: fleet, aggregates and streams behind one lock (console.h). */
#include "console.h"
#include "ep_event_json.h"
#include <pthread.h>

struct _console_t {
    pthread_mutex_t lock;       //  guards fleet and stats (bus side vs HTTP side)
    cfleet_t *fleet;             //  the view
    stats_t *stats;             //  per-minute aggregates
    hub_t *hub;                 //  the event streams (locks itself)
};

console_t *
console_new (const hub_config_t *hub_config, int stats_minutes, hub_handle_fn *sleep, hub_handle_fn *wake, void *arg)
{
    console_t *self = (console_t *) zmalloc (sizeof (console_t));
    EP_ASSERT (pthread_mutex_init (&self->lock, NULL) == 0);
    self->fleet = cfleet_new ();
    self->stats = stats_new (stats_minutes);
    self->hub = hub_new (hub_config, sleep, wake, arg);
    return self;
}

void
console_destroy (console_t **self_p)
{
    console_t *self = *self_p;
    if (self) {
        hub_destroy (&self->hub);
        stats_destroy (&self->stats);
        cfleet_destroy (&self->fleet);
        pthread_mutex_destroy (&self->lock);
        free (self);
        *self_p = NULL;
    }
}

void
console_event_json (console_t *self, json_t *event, int64_t wall_ms, int64_t now)
{
    pthread_mutex_lock (&self->lock);
    cfleet_event (self->fleet, event, wall_ms);
    stats_event (self->stats, event, wall_ms);
    pthread_mutex_unlock (&self->lock);
    hub_publish (self->hub, event, wall_ms, now);
}

void
console_event (console_t *self, const char *topic, const Ep__Event *event, int64_t wall_ms, int64_t now)
{
    json_t *object = ep_event_json (topic, event);
    if (object)
        console_event_json (self, object, wall_ms, now);
    json_decref (object);
}

void
console_router (console_t *self, const char *id, const char *name, bool enabled, bool exists)
{
    pthread_mutex_lock (&self->lock);
    cfleet_model_router (self->fleet, id, name, enabled, exists);
    pthread_mutex_unlock (&self->lock);
}

void
console_revision (console_t *self, uint64_t revision, const char *generation)
{
    pthread_mutex_lock (&self->lock);
    cfleet_set_revision (self->fleet, revision, generation);
    pthread_mutex_unlock (&self->lock);
}

void
console_connections (console_t *self, const char *instance, json_t *connections, int64_t wall_ms)
{
    pthread_mutex_lock (&self->lock);
    cfleet_connections (self->fleet, instance, connections, wall_ms);
    pthread_mutex_unlock (&self->lock);
}

void
console_expire (console_t *self, int64_t wall_ms, int64_t timeout_ms)
{
    pthread_mutex_lock (&self->lock);
    cfleet_expire (self->fleet, wall_ms, timeout_ms);
    pthread_mutex_unlock (&self->lock);
}

zhashx_t *
console_instances (console_t *self)
{
    pthread_mutex_lock (&self->lock);
    zhashx_t *instances = cfleet_instances (self->fleet);
    pthread_mutex_unlock (&self->lock);
    return instances;
}

char *
console_fleet_text (console_t *self, int64_t wall_ms)
{
    pthread_mutex_lock (&self->lock);
    json_t *document = cfleet_json (self->fleet, wall_ms);
    char *text = json_dumps (document, JSON_COMPACT);
    json_decref (document);     //  under the lock: it shares parts of the view
    pthread_mutex_unlock (&self->lock);
    return text;
}

char *
console_stats_text (console_t *self, int64_t wall_ms, int64_t window_ms)
{
    pthread_mutex_lock (&self->lock);
    json_t *document = stats_json (self->stats, wall_ms, window_ms);
    pthread_mutex_unlock (&self->lock);
    char *text = json_dumps (document, JSON_COMPACT);
    json_decref (document);
    return text;
}

hub_t *
console_hub (console_t *self)
{
    return self->hub;
}
