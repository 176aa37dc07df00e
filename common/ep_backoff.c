/*  ep_backoff.c: exponential backoff with equal jitter. */
#include "ep_backoff.h"
#include <sodium.h>

ep_backoff_t
ep_backoff (int64_t base_ms, int64_t max_ms)
{
    EP_ASSERT (base_ms > 0 && max_ms >= base_ms);
    ep_backoff_t self = { .base_ms = base_ms, .max_ms = max_ms, .attempt = 0 };
    return self;
}

int64_t
ep_backoff_next (ep_backoff_t *self)
{
    int64_t delay = self->base_ms;
    for (uint32_t i = 0; i < self->attempt && delay < self->max_ms; i++)
        delay *= 2;
    if (delay > self->max_ms)
        delay = self->max_ms;
    if (self->attempt < UINT32_MAX)
        self->attempt++;
    int64_t half = delay / 2;
    EP_ASSERT (sodium_init () >= 0);
    uint32_t span = (uint32_t) (delay - half + 1);
    return half + (int64_t) randombytes_uniform (span);
}

void
ep_backoff_reset (ep_backoff_t *self)
{
    self->attempt = 0;
}
