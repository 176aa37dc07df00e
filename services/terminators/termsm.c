/*  termsm.c: the terminator lifecycle (see termsm.h). */
#include "termsm.h"

static const char *s_names [TERMSM_STATE_COUNT] = {
    "none", "establishing", "established", "deleting", "deleted", "failed"
};

static void
s_move (termsm_t *self, termsm_step_t *step, termsm_state_t to)
{
    EP_ASSERT (termsm_allowed (self->state, to));
    EP_ASSERT (step->count < 3);
    step->from [step->count] = self->state;
    step->to [step->count] = to;
    step->count++;
    self->state = to;
}

static bool
s_can_establish (const termsm_t *self, termsm_facts_t facts)
{
    return facts.online && facts.hosted && !self->lacks;
}

static void
s_established (termsm_t *self, termsm_step_t *step)
{
    s_move (self, step, TERMSM_ESTABLISHED);
    self->attempts = 0;
    self->due_ms = 0;
}

//  Enters or stays in FAILED with retry number attempts scheduled, or
//  none past the cap.
static void
s_failed (termsm_t *self, termsm_step_t *step, const termsm_config_t *config,
          uint32_t attempts, int64_t now_ms, uint32_t random)
{
    if (self->state != TERMSM_FAILED)
        s_move (self, step, TERMSM_FAILED);
    self->attempts = attempts;
    self->due_ms = attempts > config->retry_cap
                 ? 0: now_ms + termsm_backoff (config, attempts, random);
}

static void
s_deleted (termsm_t *self, termsm_step_t *step, const termsm_config_t *config, int64_t now_ms)
{
    if (self->state != TERMSM_DELETING)
        s_move (self, step, TERMSM_DELETING);
    s_move (self, step, TERMSM_DELETED);
    self->attempts = 0;
    self->lacks = false;
    self->due_ms = now_ms + config->tombstone_ttl_ms;
}

termsm_step_t
termsm_create (termsm_t *self, const termsm_config_t *config, termsm_facts_t facts, int64_t now_ms)
{
    termsm_step_t step = { 0 };
    self->lacks = false;
    if (self->state != TERMSM_ESTABLISHING && self->state != TERMSM_ESTABLISHED) {
        s_move (self, &step, TERMSM_ESTABLISHING);
        self->attempts = 0;
        self->due_ms = now_ms + config->establish_timeout_ms;
    }
    if (self->state == TERMSM_ESTABLISHING && s_can_establish (self, facts))
        s_established (self, &step);
    return step;
}

termsm_step_t
termsm_evaluate (termsm_t *self, const termsm_config_t *config, termsm_facts_t facts, int64_t now_ms)
{
    (void) config;
    (void) now_ms;
    termsm_step_t step = { 0 };
    if ((self->state == TERMSM_ESTABLISHING || self->state == TERMSM_FAILED)
    &&  s_can_establish (self, facts))
        s_established (self, &step);
    return step;
}

termsm_step_t
termsm_timer (termsm_t *self, const termsm_config_t *config, termsm_facts_t facts,
              int64_t now_ms, uint32_t random)
{
    termsm_step_t step = { 0 };
    switch (self->state) {
        case TERMSM_ESTABLISHING:
        case TERMSM_FAILED:
            if (s_can_establish (self, facts))
                s_established (self, &step);
            else
            if (self->lacks && self->attempts + 1 > config->retry_cap)
                s_deleted (self, &step, config, now_ms);    //  its router keeps saying it has none
            else {
                s_failed (self, &step, config,
                          self->state == TERMSM_FAILED? self->attempts + 1: 1, now_ms, random);
                step.ask_router = facts.online;
            }
            break;
        case TERMSM_DELETING:
            s_deleted (self, &step, config, now_ms);
            break;
        case TERMSM_DELETED:
            break;              //  the caller purges the tombstone
        default:
            self->due_ms = 0;   //  nothing is timed in ESTABLISHED
            break;
    }
    return step;
}

termsm_step_t
termsm_lacks (termsm_t *self, const termsm_config_t *config, int64_t now_ms, uint32_t random)
{
    termsm_step_t step = { 0 };
    if (!termsm_live (self->state))
        return step;
    self->lacks = true;
    if (self->state != TERMSM_FAILED)
        s_failed (self, &step, config, 1, now_ms, random);
    else
    if (self->due_ms == 0)      //  past the cap: the router's answer is news, try again
        self->due_ms = now_ms + termsm_backoff (config, 1, random);
    return step;
}

termsm_step_t
termsm_delete (termsm_t *self, const termsm_config_t *config, int64_t now_ms)
{
    termsm_step_t step = { 0 };
    if (termsm_live (self->state) || self->state == TERMSM_DELETING)
        s_deleted (self, &step, config, now_ms);
    return step;
}

termsm_step_t
termsm_retire (termsm_t *self, const termsm_config_t *config, bool router_present, int64_t now_ms)
{
    termsm_step_t step = { 0 };
    if (termsm_live (self->state)) {
        s_move (self, &step, TERMSM_DELETING);
        self->attempts = 0;
        self->lacks = false;
        self->due_ms = now_ms + config->delete_grace_ms;
    }
    if (self->state == TERMSM_DELETING && !router_present)
        s_deleted (self, &step, config, now_ms);
    return step;
}

termsm_step_t
termsm_confirm (termsm_t *self, const termsm_config_t *config, int64_t now_ms)
{
    termsm_step_t step = { 0 };
    if (self->state == TERMSM_DELETING)
        s_deleted (self, &step, config, now_ms);
    return step;
}

int64_t
termsm_backoff (const termsm_config_t *config, uint32_t attempt, uint32_t random)
{
    int64_t delay = config->retry_base_ms > 0? config->retry_base_ms: 1;
    for (uint32_t i = 1; i < attempt && delay < config->retry_max_ms; i++)
        delay *= 2;
    if (delay > config->retry_max_ms && config->retry_max_ms > 0)
        delay = config->retry_max_ms;
    int64_t half = delay / 2;
    return half + (int64_t) (random % (uint64_t) (delay - half + 1));
}

termsm_order_t
termsm_order_create (termsm_state_t state, uint64_t record_rev, uint64_t request_rev)
{
    if (state == TERMSM_DELETING || state == TERMSM_DELETED)
        return request_rev > record_rev? TERMSM_APPLY: TERMSM_STALE;
    return TERMSM_APPLY;
}

termsm_order_t
termsm_order_change (termsm_state_t state, uint64_t record_rev, uint64_t request_rev)
{
    if (termsm_live (state))
        return request_rev >= record_rev? TERMSM_APPLY: TERMSM_STALE;
    return TERMSM_APPLY;
}

bool
termsm_key_create (termsm_key_t *self, uint64_t touch, uint64_t revision, bool accepted)
{
    bool spin = self->created && self->deleted_since && touch <= self->create_revision;
    if (accepted) {
        self->created = true;
        self->deleted_since = false;
        if (revision > self->create_revision)
            self->create_revision = revision;
    }
    else
    if (spin)
        self->deleted_since = false;    //  one spin per create -> delete cycle
    return spin;
}

void
termsm_key_delete (termsm_key_t *self)
{
    if (self->created)
        self->deleted_since = true;
}

bool
termsm_live (termsm_state_t state)
{
    return state == TERMSM_ESTABLISHING || state == TERMSM_ESTABLISHED || state == TERMSM_FAILED;
}

bool
termsm_allowed (termsm_state_t from, termsm_state_t to)
{
    switch (from) {
        case TERMSM_NONE:
            return to == TERMSM_ESTABLISHING;
        case TERMSM_ESTABLISHING:
            return to == TERMSM_ESTABLISHED || to == TERMSM_FAILED || to == TERMSM_DELETING;
        case TERMSM_ESTABLISHED:
            return to == TERMSM_FAILED || to == TERMSM_DELETING;
        case TERMSM_FAILED:
            return to == TERMSM_ESTABLISHING || to == TERMSM_ESTABLISHED || to == TERMSM_DELETING;
        case TERMSM_DELETING:
            return to == TERMSM_DELETED || to == TERMSM_ESTABLISHING;
        case TERMSM_DELETED:
            return to == TERMSM_ESTABLISHING;
        default:
            return false;
    }
}

const char *
termsm_state_name (termsm_state_t state)
{
    return (unsigned) state < TERMSM_STATE_COUNT? s_names [state]: "unknown";
}

int
termsm_state_parse (const char *name)
{
    for (int i = 1; name && i < TERMSM_STATE_COUNT; i++)
        if (strcasecmp (name, s_names [i]) == 0)
            return i;
    return -1;
}
