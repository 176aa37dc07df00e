/*  ep_adopt.c: shard news and adoption in bounded steps (ep_adopt.h). */
#include "ep_adopt.h"

//  One news, queued until its turn.
typedef struct {
    bool loaded;                //  LOADED, else DROPPED
    int shard;                  //  which
    int64_t revision;           //  its owner key's create revision
    char *why;                  //  DROPPED: why
    size_t total;               //  LOADED: its records
    void *payload;              //  LOADED: the caller's (config destructor)
} s_news_t;

struct _ep_adopt_t {
    ep_adopt_config_t config;   //  as given (step resolved)
    zlistx_t *queue;            //  s_news_t, in the order they came
    s_news_t *current;          //  the LOADED being adopted, or NULL
    size_t done;                //  its records taken so far
    size_t steps;               //  its steps so far
    s_news_t *spent;            //  the last action's news, freed at the next call
    bool stepped;               //  a STEP was handed out this turn
    uint64_t steps_total;       //  steps handed out
    ep_series_t *steps_series;  //  edgeplane_shard_adoption_steps_total{service}
};

static void
s_news_destroy (ep_adopt_t *self, s_news_t **news_p)
{
    s_news_t *news = *news_p;
    if (news) {
        if (news->payload && self->config.destructor)
            self->config.destructor (&news->payload);
        free (news->why);
        free (news);
        *news_p = NULL;
    }
}

size_t
ep_adopt_step_env (void)
{
    const char *text = getenv ("EDGEPLANE_ADOPT_STEP");
    long long step = text? atoll (text): 0;
    return step > 0? (size_t) step: EP_ADOPT_RECORDS;
}

int64_t
ep_adopt_slow_env (void)
{
    const char *text = getenv ("EDGEPLANE_ADOPT_SLOW_US");
    long long slow = text? atoll (text): 0;
    return slow > 0? slow: 0;
}

ep_adopt_t *
ep_adopt_new (const ep_adopt_config_t *config)
{
    EP_ASSERT (config->valid);
    ep_adopt_t *self = (ep_adopt_t *) zmalloc (sizeof (ep_adopt_t));
    self->config = *config;
    if (!self->config.step)
        self->config.step = ep_adopt_step_env ();
    if (!self->config.slow_us)
        self->config.slow_us = ep_adopt_slow_env ();
    self->queue = zlistx_new ();
    if (config->metrics) {
        const char *labels [] = { "service" };
        const char *values [] = { config->service? config->service: "" };
        self->steps_series = ep_counter_series (ep_metrics_counter (config->metrics,
            "edgeplane_shard_adoption_steps_total",
            "Steps a shard read from etcd was adopted in (a bounded number of records each, "
            "one per turn of the loop).", 1, labels), values);
    }
    return self;
}

void
ep_adopt_destroy (ep_adopt_t **self_p)
{
    ep_adopt_t *self = *self_p;
    if (self) {
        s_news_t *news;
        while ((news = (s_news_t *) zlistx_detach (self->queue, NULL)))
            s_news_destroy (self, &news);
        zlistx_destroy (&self->queue);
        s_news_destroy (self, &self->current);
        s_news_destroy (self, &self->spent);
        free (self);
        *self_p = NULL;
    }
}

void
ep_adopt_loaded (ep_adopt_t *self, int shard, int64_t revision, size_t total, void *payload)
{
    s_news_t *news = (s_news_t *) zmalloc (sizeof (s_news_t));
    *news = (s_news_t) { .loaded = true, .shard = shard, .revision = revision, .total = total,
                         .payload = payload };
    zlistx_add_end (self->queue, news);
}

void
ep_adopt_dropped (ep_adopt_t *self, int shard, int64_t revision, const char *why)
{
    s_news_t *news = (s_news_t *) zmalloc (sizeof (s_news_t));
    *news = (s_news_t) { .shard = shard, .revision = revision, .why = strdup (why? why: "") };
    zlistx_add_end (self->queue, news);
}

void
ep_adopt_turn (ep_adopt_t *self)
{
    self->stepped = false;
}

//  The first DROPPED queued, with the LOADED news of its shard before it
//  taken out (older reads); NULL if none.
static s_news_t *
s_first_drop (ep_adopt_t *self)
{
    void *handle = zlistx_first (self->queue)? zlistx_cursor (self->queue): NULL;
    while (handle) {
        s_news_t *news = (s_news_t *) zlistx_handle_item (handle);
        if (!news->loaded)
            break;
        handle = zlistx_next (self->queue)? zlistx_cursor (self->queue): NULL;
    }
    if (!handle)
        return NULL;
    s_news_t *drop = (s_news_t *) zlistx_handle_item (handle);
    void *each = zlistx_first (self->queue)? zlistx_cursor (self->queue): NULL;
    while (each && each != handle) {
        s_news_t *news = (s_news_t *) zlistx_handle_item (each);
        void *next = zlistx_next (self->queue)? zlistx_cursor (self->queue): NULL;
        if (news->shard == drop->shard) {
            zlistx_detach (self->queue, each);
            s_news_destroy (self, &news);
        }
        each = next;
    }
    return drop;
}

//  Retires the adoption under way as an ABORT.
static bool
s_abort (ep_adopt_t *self, ep_adopt_action_t *action)
{
    *action = (ep_adopt_action_t) { .kind = EP_ADOPT_ABORT, .shard = self->current->shard,
                                    .revision = self->current->revision };
    self->spent = self->current;
    self->current = NULL;
    return true;
}

bool
ep_adopt_next (ep_adopt_t *self, ep_adopt_action_t *action)
{
    s_news_destroy (self, &self->spent);
    s_news_t *drop = s_first_drop (self);
    if (drop) {
        //  A drop of the shard under way voids it first (the drop comes
        //  at the next call): it came after the LOADED adopted.
        if (self->current && self->current->shard == drop->shard)
            return s_abort (self, action);
        zlistx_detach (self->queue, zlistx_find (self->queue, drop));
        *action = (ep_adopt_action_t) { .kind = EP_ADOPT_DROP, .shard = drop->shard,
                                        .revision = drop->revision, .why = drop->why };
        self->spent = drop;
        return true;
    }
    if (self->current && !self->config.valid (self->config.arg, self->current->shard,
                                               self->current->revision))
        return s_abort (self, action);
    if (self->stepped)
        return false;
    while (!self->current) {
        s_news_t *news = (s_news_t *) zlistx_detach (self->queue, NULL);
        if (!news)
            return false;
        //  Lost or read again since it came: a later news says so.
        if (self->config.valid (self->config.arg, news->shard, news->revision)) {
            self->current = news;
            self->done = self->steps = 0;
        }
        else
            s_news_destroy (self, &news);
    }
    s_news_t *news = self->current;
    size_t to = news->total - self->done > self->config.step? self->done + self->config.step: news->total;
    *action = (ep_adopt_action_t) { .kind = EP_ADOPT_STEP, .shard = news->shard,
                                    .revision = news->revision, .payload = news->payload,
                                    .from = self->done, .to = to, .total = news->total,
                                    .steps = ++self->steps, .first = self->done == 0,
                                    .last = to == news->total };
    self->done = to;
    self->stepped = true;
    self->steps_total++;
    if (self->steps_series)
        ep_series_add (self->steps_series, 1);
    if (self->config.slow_us)
        zclock_sleep ((int) (self->config.slow_us * (int64_t) (to - action->from) / 1000));
    if (action->last) {
        self->spent = news;
        self->current = NULL;
    }
    return true;
}

bool
ep_adopt_pending (ep_adopt_t *self)
{
    if (self->current)
        return true;
    for (s_news_t *news = (s_news_t *) zlistx_first (self->queue); news;
         news = (s_news_t *) zlistx_next (self->queue))
        if (news->loaded)
            return true;
    return false;
}

int
ep_adopt_shard (ep_adopt_t *self)
{
    return self->current? self->current->shard: -1;
}

uint64_t
ep_adopt_steps (ep_adopt_t *self)
{
    return self->steps_total;
}
