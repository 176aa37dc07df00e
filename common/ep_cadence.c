/*  ep_cadence.c: a liveness timeout learnt from heartbeat cadence (see ep_cadence.h). */
#include "ep_cadence.h"

struct _ep_cadence_t {
    ep_cadence_config_t config; //  window, percentile, factor, bounds
    int64_t *ring;              //  the newest intervals (ms), window slots
    int count;                  //  slots filled
    int next;                   //  slot written next
    int64_t last_beat;          //  previous heartbeat (ms), -1 after a gap
    int64_t reported;           //  timeout last reported by ep_cadence_changed, 0 if none
};

void
ep_cadence_defaults (ep_cadence_config_t *config)
{
    config->window = 64;
    config->min_samples = 16;
    config->percentile = 0.99;
    config->factor = 2.5;
    config->min_ms = 15000;
    config->max_ms = 300000;
}

ep_cadence_t *
ep_cadence_new (const ep_cadence_config_t *config)
{
    EP_ASSERT (config->window > 0 && config->min_samples > 0 && config->min_samples <= config->window);
    EP_ASSERT (config->percentile > 0 && config->percentile <= 1 && config->factor >= 1);
    EP_ASSERT (config->min_ms > 0 && config->min_ms <= config->max_ms);
    ep_cadence_t *self = (ep_cadence_t *) zmalloc (sizeof (ep_cadence_t));
    self->config = *config;
    self->ring = (int64_t *) zmalloc (sizeof (int64_t) * (size_t) config->window);
    self->last_beat = -1;
    return self;
}

void
ep_cadence_destroy (ep_cadence_t **self_p)
{
    if (*self_p) {
        free ((*self_p)->ring);
        free (*self_p);
        *self_p = NULL;
    }
}

void
ep_cadence_beat (ep_cadence_t *self, int64_t now_ms)
{
    if (self->last_beat >= 0 && now_ms >= self->last_beat) {
        self->ring [self->next] = now_ms - self->last_beat;
        self->next = (self->next + 1) % self->config.window;
        if (self->count < self->config.window)
            self->count++;
    }
    self->last_beat = now_ms;
}

void
ep_cadence_gap (ep_cadence_t *self)
{
    self->last_beat = -1;
}

int
ep_cadence_samples (ep_cadence_t *self)
{
    return self->count;
}

static int
s_compare (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return x < y? -1: x > y;
}

int64_t
ep_cadence_percentile_ms (ep_cadence_t *self)
{
    if (self->count == 0)
        return 0;
    //  Nearest rank on a sorted copy: window is small (tens), called on
    //  each tick deadline at most, so sorting beats keeping a structure.
    int64_t sorted [self->count];
    memcpy (sorted, self->ring, sizeof (int64_t) * (size_t) self->count);
    qsort (sorted, (size_t) self->count, sizeof (int64_t), s_compare);
    int rank = (int) (self->config.percentile * self->count + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > self->count)
        rank = self->count;
    return sorted [rank - 1];
}

static int64_t
s_clamp (ep_cadence_t *self, int64_t value)
{
    if (value < self->config.min_ms)
        return self->config.min_ms;
    if (value > self->config.max_ms)
        return self->config.max_ms;
    return value;
}

int64_t
ep_cadence_timeout (ep_cadence_t *self, int64_t fixed_ms)
{
    if (self->count < self->config.min_samples)
        return fixed_ms;            //  not learnt yet: today's constant, as configured
    return s_clamp (self, (int64_t) (ep_cadence_percentile_ms (self) * self->config.factor));
}

bool
ep_cadence_changed (ep_cadence_t *self, int64_t fixed_ms, int64_t *from, int64_t *to)
{
    int64_t now = ep_cadence_timeout (self, fixed_ms);
    if (self->reported == 0) {
        self->reported = now;
        return false;
    }
    if (now > 2 * self->reported || 2 * now < self->reported) {
        *from = self->reported;
        *to = now;
        self->reported = now;
        return true;
    }
    return false;
}
