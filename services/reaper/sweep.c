/*  sweep.c: jobs, items in two kinds of priority queue (ep_heaps of item
    pointers, the position kept in the item), and the commands sent to each
    router.
*/
#include "sweep.h"
#include "ep_heap.h"

//  The marked items of one job waiting for a command to one router: a
//  command carries one job's sessions (one reason, one deadline).
typedef struct {
    sweep_job_t *job;           //  the job
    ep_heap_t *heap;            //  its items for this router (sweep_item_t *)
    void *handle;               //  in the router's lanes
} s_lane_t;

//  A router with items in the planner.
typedef struct {
    char *id;                   //  router id
    zlistx_t *lanes;            //  s_lane_t: marked items waiting, per job
    size_t unsent;              //  items in the lanes
    zlistx_t *commands;         //  s_command_t, oldest first
    size_t items;               //  items of this router, any stage
} s_router_t;

struct _sweep_item_t {
    void *owner;                //  the session (caller's)
    const char *id;             //  its id (owner's storage)
    s_router_t *router;         //  its router here
    sweep_job_t *job;           //  the job that took it
    sweep_item_t *prev;         //  in the job's list
    sweep_item_t *next;         //  in the job's list
    sweep_command_t *command;   //  SENT: the command carrying it
    s_lane_t *lane;             //  MARKED: the lane it waits in
    uint32_t slot;              //  SENT: its position in the command
    uint32_t index;             //  heap position + 1 (pending heap or lane); 0 if in none
    uint64_t urgency;           //  higher first (criticality, priority: the caller's)
    uint64_t traffic;           //  bytes, higher first
    int64_t created;            //  older first
    uint8_t stage;              //  sweep_stage_t
};

struct _sweep_job_t {
    char id [65];               //  job id
    int64_t deadline;           //  leftovers forced from then on (monotonic ms)
    void *user;                 //  the caller's
    sweep_item_t *head;         //  its items
    size_t count;               //  how many
    void *handle;               //  in the planner's job list
};

struct _sweep_command_t {
    char id [33];               //  command id (new for every send)
    s_router_t *router;         //  where it goes
    sweep_job_t *job;           //  the job its items belong to
    sweep_item_t **items;       //  slots; NULL once an item is done
    size_t size;                //  slots used
    size_t live;                //  slots not NULL
    int64_t retry_at;           //  resend what is left then
    int64_t interval;           //  the current resend interval
    uint32_t attempt;           //  1 on the first send
    bool answered;              //  the router answered it
    void *handle;               //  in the router's command list
};

struct _sweep_t {
    sweep_config_t config;      //  window, chunk, retries
    sweep_online_fn *online;    //  can a command reach the router now?
    void *arg;                  //  for online
    ep_heap_t *pending;         //  phase 1, every job (sweep_item_t *)
    zhashx_t *routers;          //  router id -> s_router_t
    zhashx_t *commands;         //  command id -> s_command_t (outstanding)
    zlistx_t *jobs;             //  sweep_job_t, by deadline
    size_t items;               //  items not done
};

//  ---------------------------------------------------------------------
//  Heaps

//  True if a is more urgent than b.
static bool
s_before (const sweep_item_t *a, const sweep_item_t *b)
{
    if (a->urgency != b->urgency)
        return a->urgency > b->urgency;
    if (a->traffic != b->traffic)
        return a->traffic > b->traffic;
    if (a->created != b->created)
        return a->created < b->created;
    return strcmp (a->id, b->id) < 0;
}

static bool
s_less (const void *a, const void *b)
{
    return s_before (*(sweep_item_t *const *) a, *(sweep_item_t *const *) b);
}

static void
s_moved (void *item, size_t index)
{
    (*(sweep_item_t **) item)->index = (uint32_t) index + 1;
}

static ep_heap_t *
s_heap_new (void)
{
    return ep_heap_new (sizeof (sweep_item_t *), s_less, s_moved);
}

static void
s_heap_remove (ep_heap_t *heap, sweep_item_t *item)
{
    EP_ASSERT (item->index && *(sweep_item_t **) ep_heap_at (heap, item->index - 1) == item);
    ep_heap_remove (heap, item->index - 1, NULL);
    item->index = 0;
}

//  The most urgent item, or NULL.
static sweep_item_t *
s_heap_top (ep_heap_t *heap)
{
    sweep_item_t **top = (sweep_item_t **) ep_heap_top (heap);
    return top? *top: NULL;
}

//  ---------------------------------------------------------------------
//  Construction

static void
s_lane_destroy (void **item)
{
    s_lane_t *lane = (s_lane_t *) *item;
    if (lane) {
        ep_heap_destroy (&lane->heap);
        free (lane);
        *item = NULL;
    }
}

static void
s_router_destroy (void **item)
{
    s_router_t *router = (s_router_t *) *item;
    if (router) {
        zlistx_destroy (&router->commands);
        zlistx_destroy (&router->lanes);
        free (router->id);
        free (router);
        *item = NULL;
    }
}

static void
s_command_free (sweep_command_t *command)
{
    free (command->items);
    free (command);
}

static int
s_job_compare (const void *a, const void *b)
{
    const sweep_job_t *x = (const sweep_job_t *) a, *y = (const sweep_job_t *) b;
    return x->deadline < y->deadline? -1: x->deadline > y->deadline? 1: strcmp (x->id, y->id);
}

sweep_t *
sweep_new (const sweep_config_t *config, sweep_online_fn *online, void *arg)
{
    EP_ASSERT (config->window > 0 && config->chunk > 0 && config->retry_ms > 0);
    sweep_t *self = (sweep_t *) zmalloc (sizeof (sweep_t));
    self->config = *config;
    if (self->config.retry_max_ms < self->config.retry_ms)
        self->config.retry_max_ms = self->config.retry_ms;
    self->online = online;
    self->arg = arg;
    self->routers = zhashx_new ();
    zhashx_set_destructor (self->routers, s_router_destroy);
    self->commands = zhashx_new ();
    self->jobs = zlistx_new ();
    zlistx_set_comparator (self->jobs, s_job_compare);
    self->pending = s_heap_new ();
    return self;
}

void
sweep_destroy (sweep_t **self_p)
{
    sweep_t *self = *self_p;
    if (self) {
        sweep_job_t *job = (sweep_job_t *) zlistx_first (self->jobs);
        for (; job; job = (sweep_job_t *) zlistx_next (self->jobs)) {
            while (job->head) {
                sweep_item_t *item = job->head;
                job->head = item->next;
                free (item);
            }
            free (job);
        }
        zlistx_destroy (&self->jobs);
        sweep_command_t *command = (sweep_command_t *) zhashx_first (self->commands);
        for (; command; command = (sweep_command_t *) zhashx_next (self->commands))
            s_command_free (command);
        zhashx_destroy (&self->commands);
        zhashx_destroy (&self->routers);
        ep_heap_destroy (&self->pending);
        free (self);
        *self_p = NULL;
    }
}

//  ---------------------------------------------------------------------
//  Jobs and items

sweep_job_t *
sweep_job_new (sweep_t *self, const char *id, int64_t deadline, void *user)
{
    sweep_job_t *job = (sweep_job_t *) zmalloc (sizeof (sweep_job_t));
    snprintf (job->id, sizeof job->id, "%s", id);
    job->deadline = deadline;
    job->user = user;
    job->handle = zlistx_insert (self->jobs, job, true);
    return job;
}

void
sweep_job_end (sweep_t *self, sweep_job_t **job_p)
{
    sweep_job_t *job = *job_p;
    if (job) {
        EP_ASSERT (job->count == 0);
        zlistx_delete (self->jobs, job->handle);
        free (job);
        *job_p = NULL;
    }
}

const char *
sweep_job_id (sweep_job_t *job)
{
    return job->id;
}

void *
sweep_job_user (sweep_job_t *job)
{
    return job->user;
}

int64_t
sweep_job_deadline (sweep_job_t *job)
{
    return job->deadline;
}

size_t
sweep_job_items (sweep_job_t *job)
{
    return job->count;
}

sweep_item_t *
sweep_add (sweep_t *self, sweep_job_t *job, void *owner, const char *id,
           const char *router_id, uint64_t urgency, uint64_t traffic, int64_t created,
           bool marked)
{
    s_router_t *router = (s_router_t *) zhashx_lookup (self->routers, router_id);
    if (!router) {
        router = (s_router_t *) zmalloc (sizeof (s_router_t));
        router->id = strdup (router_id);
        router->commands = zlistx_new ();
        router->lanes = zlistx_new ();
        zlistx_set_destructor (router->lanes, s_lane_destroy);
        zhashx_insert (self->routers, router_id, router);
    }
    router->items++;
    sweep_item_t *item = (sweep_item_t *) zmalloc (sizeof (sweep_item_t));
    item->owner = owner;
    item->id = id;
    item->router = router;
    item->job = job;
    item->urgency = urgency;
    item->traffic = traffic;
    item->created = created;
    item->next = job->head;
    if (job->head)
        job->head->prev = item;
    job->head = item;
    job->count++;
    self->items++;
    if (marked) {
        item->stage = SWEEP_PENDING;
        sweep_marked (self, item);
    }
    else {
        item->stage = SWEEP_PENDING;
        ep_heap_push (self->pending, &item);
    }
    return item;
}

//  Takes a marked item out of its lane (dropping the lane when empty).
static void
s_lane_take (s_router_t *router, sweep_item_t *item)
{
    s_lane_t *lane = item->lane;
    s_heap_remove (lane->heap, item);
    item->lane = NULL;
    router->unsent--;
    if (ep_heap_size (lane->heap) == 0)
        zlistx_delete (router->lanes, lane->handle);
}

//  Drops a command (its items, if any, are no longer in it).
static void
s_command_drop (sweep_t *self, sweep_command_t *command)
{
    for (size_t i = 0; i < command->size; i++)
        if (command->items [i])
            command->items [i]->command = NULL;
    zhashx_delete (self->commands, command->id);
    zlistx_delete (command->router->commands, command->handle);
    s_command_free (command);
}

void
sweep_done (sweep_t *self, sweep_item_t **item_p)
{
    sweep_item_t *item = *item_p;
    if (!item)
        return;
    s_router_t *router = item->router;
    if (item->stage == SWEEP_PENDING && item->index)
        s_heap_remove (self->pending, item);
    else
    if (item->stage == SWEEP_MARKED)
        s_lane_take (router, item);
    if (item->command) {
        sweep_command_t *command = item->command;
        command->items [item->slot] = NULL;
        if (--command->live == 0)
            s_command_drop (self, command);
    }
    sweep_job_t *job = item->job;
    if (item->prev)
        item->prev->next = item->next;
    else
        job->head = item->next;
    if (item->next)
        item->next->prev = item->prev;
    job->count--;
    self->items--;
    if (--router->items == 0) {
        EP_ASSERT (router->unsent == 0 && zlistx_size (router->commands) == 0);
        char *id = strdup (router->id);
        zhashx_delete (self->routers, id);
        free (id);
    }
    free (item);
    *item_p = NULL;
}

void *
sweep_item_owner (sweep_item_t *item)
{
    return item->owner;
}

sweep_job_t *
sweep_item_job (sweep_item_t *item)
{
    return item->job;
}

sweep_stage_t
sweep_item_stage (sweep_item_t *item)
{
    return (sweep_stage_t) item->stage;
}

//  ---------------------------------------------------------------------
//  Phase 1

size_t
sweep_take_pending (sweep_t *self, sweep_item_t **out, size_t max)
{
    size_t count = 0;
    while (count < max && ep_heap_pop (self->pending, &out [count]) == 0) {
        //  Stays PENDING (out of the heap) until sweep_marked.
        out [count++]->index = 0;
    }
    return count;
}

void
sweep_marked (sweep_t *self, sweep_item_t *item)
{
    (void) self;
    EP_ASSERT (item->stage == SWEEP_PENDING && item->index == 0);
    s_router_t *router = item->router;
    s_lane_t *lane = (s_lane_t *) zlistx_first (router->lanes);
    while (lane && lane->job != item->job)
        lane = (s_lane_t *) zlistx_next (router->lanes);
    if (!lane) {
        lane = (s_lane_t *) zmalloc (sizeof (s_lane_t));
        lane->job = item->job;
        lane->heap = s_heap_new ();
        lane->handle = zlistx_add_end (router->lanes, lane);
    }
    item->stage = SWEEP_MARKED;
    item->lane = lane;
    ep_heap_push (lane->heap, &item);
    router->unsent++;
}

//  ---------------------------------------------------------------------
//  Phase 2

static sweep_command_t *
s_command_new (sweep_t *self, s_router_t *router, sweep_job_t *job, size_t capacity,
               int64_t now, int64_t interval, uint32_t attempt)
{
    sweep_command_t *command = (sweep_command_t *) zmalloc (sizeof (sweep_command_t));
    ep_random_hex (command->id, 16);
    command->router = router;
    command->job = job;
    command->items = (sweep_item_t **) malloc ((capacity? capacity: 1) * sizeof (sweep_item_t *));
    command->interval = interval;
    command->retry_at = now + interval;
    command->attempt = attempt;
    command->handle = zlistx_add_end (router->commands, command);
    zhashx_insert (self->commands, command->id, command);
    return command;
}

static void
s_command_take (sweep_command_t *command, sweep_item_t *item)
{
    item->stage = SWEEP_SENT;
    item->command = command;
    item->slot = (uint32_t) command->size;
    command->items [command->size++] = item;
    command->live++;
}

//  Commands the router has neither answered nor let time out.
static size_t
s_in_flight (s_router_t *router, int64_t now)
{
    size_t count = 0;
    sweep_command_t *command = (sweep_command_t *) zlistx_first (router->commands);
    for (; command; command = (sweep_command_t *) zlistx_next (router->commands))
        if (!command->answered && command->retry_at > now)
            count++;
    return count;
}

static sweep_command_t *
s_router_next (sweep_t *self, s_router_t *router, int64_t now)
{
    if (s_in_flight (router, now) >= self->config.window)
        return NULL;
    if (router->unsent) {
        //  New ids first: the lane whose top is most urgent.
        s_lane_t *best = (s_lane_t *) zlistx_first (router->lanes);
        for (s_lane_t *lane = best; lane; lane = (s_lane_t *) zlistx_next (router->lanes))
            if (s_before (s_heap_top (lane->heap), s_heap_top (best->heap)))
                best = lane;
        size_t size = ep_heap_size (best->heap);
        size_t capacity = self->config.chunk < size? self->config.chunk: size;
        sweep_command_t *command = s_command_new (self, router, best->job, capacity, now,
                                                  self->config.retry_ms, 1);
        while (command->size < capacity) {
            sweep_item_t *item = s_heap_top (best->heap);
            s_lane_take (router, item);         //  may free the lane: last
            s_command_take (command, item);
        }
        return command;
    }
    sweep_command_t *old = (sweep_command_t *) zlistx_first (router->commands);
    for (; old; old = (sweep_command_t *) zlistx_next (router->commands))
        if (old->retry_at <= now)
            break;
    if (!old)
        return NULL;
    int64_t interval = old->interval * 2 < self->config.retry_max_ms? old->interval * 2
                     : self->config.retry_max_ms;
    sweep_command_t *command = s_command_new (self, router, old->job, old->live, now, interval,
                                              old->attempt + 1);
    for (size_t i = 0; i < old->size; i++) {
        sweep_item_t *item = old->items [i];
        if (item) {
            old->items [i] = NULL;
            s_command_take (command, item);
        }
    }
    old->live = 0;
    s_command_drop (self, old);
    return command;
}

sweep_command_t *
sweep_next_command (sweep_t *self, int64_t now)
{
    s_router_t *router = (s_router_t *) zhashx_first (self->routers);
    for (; router; router = (s_router_t *) zhashx_next (self->routers)) {
        if (router->unsent == 0 && zlistx_size (router->commands) == 0)
            continue;
        if (self->online && !self->online (self->arg, router->id))
            continue;
        sweep_command_t *command = s_router_next (self, router, now);
        if (command)
            return command;
    }
    return NULL;
}

const char *
sweep_command_id (sweep_command_t *command)
{
    return command->id;
}

const char *
sweep_command_router (sweep_command_t *command)
{
    return command->router->id;
}

sweep_job_t *
sweep_command_job (sweep_command_t *command)
{
    return command->job;
}

size_t
sweep_command_size (sweep_command_t *command)
{
    return command->size;
}

const char *
sweep_command_session (sweep_command_t *command, size_t i)
{
    EP_ASSERT (i < command->size && command->items [i]);
    return command->items [i]->id;
}

uint32_t
sweep_command_attempt (sweep_command_t *command)
{
    return command->attempt;
}

bool
sweep_answered (sweep_t *self, const char *command_id)
{
    sweep_command_t *command = (sweep_command_t *) zhashx_lookup (self->commands, command_id);
    if (!command)
        return false;
    command->answered = true;
    return true;
}

void
sweep_router_back (sweep_t *self, const char *router_id, int64_t now)
{
    s_router_t *router = (s_router_t *) zhashx_lookup (self->routers, router_id);
    if (!router)
        return;
    sweep_command_t *command = (sweep_command_t *) zlistx_first (router->commands);
    for (; command; command = (sweep_command_t *) zlistx_next (router->commands))
        if (command->retry_at > now)
            command->retry_at = now;
}

//  ---------------------------------------------------------------------
//  Deadlines and bookkeeping

sweep_item_t *
sweep_next_forced (sweep_t *self, int64_t now)
{
    sweep_job_t *job = (sweep_job_t *) zlistx_first (self->jobs);
    for (; job && job->deadline <= now; job = (sweep_job_t *) zlistx_next (self->jobs))
        if (job->head)
            return job->head;
    return NULL;
}

int64_t
sweep_due (sweep_t *self, int64_t now)
{
    if (ep_heap_size (self->pending))
        return now;
    int64_t due = INT64_MAX;
    sweep_job_t *job = (sweep_job_t *) zlistx_first (self->jobs);
    for (; job; job = (sweep_job_t *) zlistx_next (self->jobs))
        if (job->count) {
            due = job->deadline;
            break;
        }
    s_router_t *router = (s_router_t *) zhashx_first (self->routers);
    for (; router; router = (s_router_t *) zhashx_next (self->routers)) {
        if (self->online && !self->online (self->arg, router->id))
            continue;
        size_t in_flight = 0;
        sweep_command_t *command = (sweep_command_t *) zlistx_first (router->commands);
        for (; command; command = (sweep_command_t *) zlistx_next (router->commands)) {
            if (command->retry_at < due)
                due = command->retry_at;
            if (!command->answered && command->retry_at > now)
                in_flight++;
        }
        if (router->unsent && in_flight < self->config.window)
            return now;
    }
    return due;
}

size_t
sweep_size (sweep_t *self)
{
    return self->items;
}

size_t
sweep_pending (sweep_t *self)
{
    return ep_heap_size (self->pending);
}

size_t
sweep_commands (sweep_t *self)
{
    return zhashx_size (self->commands);
}
