/*  ep_output.h: what a core hands out after a commit, in order.

    A pure core (the model, the terminators, the reaper) decides inside a
    transaction what the world should hear: events (topic + Ep__Event) and
    commands. None of it may leave before the commit that makes it true,
    and none of it may leave at all if a savepoint or the commit is undone.
    ep_output is that queue, written once for the three: the core stages
    outputs while it works, marks and undoes them with its savepoints,
    moves them to "ready" when its commit succeeds (or drops them when it
    fails), and the shell drains the ready ones, oldest first, with
    `<core>_next_output` (a wrapper over ep_output_next) and publishes them.

    How a core uses it:

        self->output = ep_output_new ();
        //  in a write, inside a savepoint
        size_t mark = ep_output_mark (self->output);
        ep_output_add (self->output, "terminator.created", &event, 0);
        if (failed)
            ep_output_undo (self->output, mark);
        //  after a successful commit / a failed one
        ep_output_commit (self->output);    //  or ep_output_abort
        //  the shell, after the commit's replies
        ep_output_item_t *item;
        while ((item = terminators_next_output (core))) {
            ep_publisher_send (publisher, item->topic, item->event);
            ep_output_item_destroy (&item);
        }

    Every item owns its event (a decoded copy, freed with the item), so
    the core may build events on the stack. seq is the core's own number
    for an item (the terminators' outbox entry); 0 if it keeps none.
*/
#ifndef EP_OUTPUT_H_INCLUDED
#define EP_OUTPUT_H_INCLUDED

#include "ep_prelude.h"
#include "events.pb-c.h"

typedef struct _ep_output_t ep_output_t;

//  One output: an event to publish on topic.
typedef struct {
    char *topic;                //  "terminator.created", "cmd.<router>.", ... (in the item)
    Ep__Event *event;           //  owned; meta is the publisher's
    int64_t seq;                //  the core's number for it (0: none)
} ep_output_item_t;

ep_output_t *
    ep_output_new (void);

//  Destroys the queue and every output in it, staged or ready.
void
    ep_output_destroy (ep_output_t **self_p);

//  Stages a copy of event on topic. Returns the staged item (the queue
//  keeps it), so a core can fill seq after writing it elsewhere.
ep_output_item_t *
    ep_output_add (ep_output_t *self, const char *topic, const Ep__Event *event, int64_t seq);

//  Stages the event packed in bytes (size bytes), as ep_output_add does;
//  NULL (nothing staged) if they do not decode.
ep_output_item_t *
    ep_output_add_packed (ep_output_t *self, const char *topic,
                          const void *bytes, size_t size, int64_t seq);

//  Stages *event_p itself (a message that ep__event__free_unpacked can
//  free, such as one from ep__event__unpack). Takes ownership.
ep_output_item_t *
    ep_output_take (ep_output_t *self, const char *topic, Ep__Event **event_p, int64_t seq);

//  Outputs staged so far: a mark for ep_output_undo at a savepoint.
size_t
    ep_output_mark (ep_output_t *self);

//  Drops the outputs staged after mark (a savepoint was rolled back).
void
    ep_output_undo (ep_output_t *self, size_t mark);

//  The commit succeeded: the staged outputs become ready, after those
//  already ready. Returns how many became ready.
size_t
    ep_output_commit (ep_output_t *self);

//  The commit failed: every staged output is dropped.
void
    ep_output_abort (ep_output_t *self);

//  The oldest ready output, or NULL; the caller destroys it.
ep_output_item_t *
    ep_output_next (ep_output_t *self);

//  Walks the staged outputs, oldest first (for a core that counts what
//  it is about to commit): first, then next until NULL.
ep_output_item_t *
    ep_output_first_staged (ep_output_t *self);
ep_output_item_t *
    ep_output_next_staged (ep_output_t *self);

//  Outputs staged, and ready.
size_t
    ep_output_staged (ep_output_t *self);
size_t
    ep_output_ready (ep_output_t *self);

void
    ep_output_item_destroy (ep_output_item_t **self_p);

#endif
