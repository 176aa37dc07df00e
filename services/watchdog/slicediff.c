/*  slicediff.c: a router's slice, full or resumed (see slicediff.h). */
#include "slicediff.h"

struct _slicediff_t {
    uint64_t since;             //  the list holds revisions after this one
    uint64_t until;             //  the last revision it holds (since if none)
    Ep__ModelChange **changes;  //  copies, in revision order
    size_t n_changes;           //  how many
};

slicediff_t *
slicediff_new (uint64_t since, Ep__ModelChange **changes, size_t n_changes)
{
    slicediff_t *self = (slicediff_t *) zmalloc (sizeof (slicediff_t));
    self->since = self->until = since;
    self->changes = (Ep__ModelChange **) zmalloc ((n_changes + 1) * sizeof (Ep__ModelChange *));
    for (size_t i = 0; i < n_changes; i++) {
        //  A deep copy (pack, unpack): the caller frees its own.
        size_t size = ep__model_change__get_packed_size (changes [i]);
        uint8_t *buf = (uint8_t *) malloc (size + 1);
        ep__model_change__pack (changes [i], buf);
        Ep__ModelChange *copy = ep__model_change__unpack (NULL, size, buf);
        free (buf);
        if (!copy)
            continue;
        self->changes [self->n_changes++] = copy;
        if (copy->revision > self->until)
            self->until = copy->revision;
    }
    return self;
}

void
slicediff_destroy (slicediff_t **self_p)
{
    slicediff_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->n_changes; i++)
        ep__model_change__free_unpacked (self->changes [i], NULL);
    free (self->changes);
    free (self);
    *self_p = NULL;
}

uint64_t
slicediff_since (slicediff_t *self)
{
    return self->since;
}

uint64_t
slicediff_until (slicediff_t *self)
{
    return self->until;
}

//  Adds id to a set of borrowed strings (a zhashx with no destructor).
static void
s_mark (zhashx_t *set, const char *id)
{
    if (id)
        zhashx_update (set, id, (void *) 1);
}

void
slicediff_full (const Ep__Router *router, slicediff_service_fn *lookup, void *arg,
                uint64_t revision, const char *reason, Ep__ModelSlice *slice)
{
    size_t n = router? router->n_hosted: 0;
    slice->has_revision = slice->has_full = true;
    slice->revision = revision;
    slice->full = true;
    slice->full_reason = (char *) reason;
    slice->router = (Ep__Router *) router;
    slice->hosted = (Ep__HostedService **) zmalloc ((n + 1) * sizeof (Ep__HostedService *));
    slice->services = (Ep__Service **) zmalloc ((n + 1) * sizeof (Ep__Service *));
    for (size_t i = 0; i < n; i++) {
        slice->hosted [slice->n_hosted++] = router->hosted [i];
        const Ep__Service *service = lookup? lookup (arg, router->hosted [i]->service_id): NULL;
        if (service)
            slice->services [slice->n_services++] = (Ep__Service *) service;
    }
}

void
slicediff_push (const Ep__Router *before, const Ep__Router *after, slicediff_service_fn *lookup, void *arg,
                uint64_t revision, Ep__ModelSlice *slice)
{
    slice->has_revision = slice->has_full = true;
    slice->revision = revision;
    slice->full = false;
    slice->router = (Ep__Router *) after;
    slice->hosted = (Ep__HostedService **) zmalloc ((after->n_hosted + 1) * sizeof (Ep__HostedService *));
    slice->services = (Ep__Service **) zmalloc ((after->n_hosted + 1) * sizeof (Ep__Service *));
    slice->removed = (char **) zmalloc ((before->n_hosted + 1) * sizeof (char *));
    for (size_t i = 0; i < after->n_hosted; i++) {
        bool same = false, known = false;
        for (size_t j = 0; j < before->n_hosted; j++)
            if (streq (before->hosted [j]->service_id, after->hosted [i]->service_id)) {
                known = true;
                same = before->hosted [j]->cost == after->hosted [i]->cost
                    && before->hosted [j]->precedence == after->hosted [i]->precedence;
            }
        if (!same)
            slice->hosted [slice->n_hosted++] = after->hosted [i];
        const Ep__Service *service = known || !lookup? NULL: lookup (arg, after->hosted [i]->service_id);
        if (service)
            slice->services [slice->n_services++] = (Ep__Service *) service;
    }
    for (size_t j = 0; j < before->n_hosted; j++) {
        bool kept = false;
        for (size_t i = 0; i < after->n_hosted; i++)
            kept |= streq (before->hosted [j]->service_id, after->hosted [i]->service_id);
        if (!kept)
            slice->removed [slice->n_removed++] = before->hosted [j]->service_id;
    }
}

//  What the changes after from did to router_id's slice: whether they
//  touched its entity, services added to and removed from its hosted list,
//  services changed.
static bool
s_scan (slicediff_t *self, const char *router_id, uint64_t from,
        zhashx_t *added, zhashx_t *removed, zhashx_t *changed)
{
    bool touched = false;
    for (size_t i = 0; i < self->n_changes; i++) {
        Ep__ModelChange *change = self->changes [i];
        if (change->revision <= from)
            continue;
        for (size_t j = 0; j < change->n_ops; j++) {
            Ep__ModelOp *op = change->ops [j];
            if (!op->id)
                continue;
            if (op->type == EP__ENTITY_TYPE__ENTITY_SERVICE)
                s_mark (changed, op->id);
            if (op->type != EP__ENTITY_TYPE__ENTITY_ROUTER || !streq (op->id, router_id))
                continue;
            touched = true;
            for (size_t k = 0; k < op->n_hosted_added; k++) {
                s_mark (added, op->hosted_added [k]);
                zhashx_delete (removed, op->hosted_added [k]);
            }
            //  Added and removed again since from: it was not hosted at from.
            for (size_t k = 0; k < op->n_hosted_removed; k++)
                if (zhashx_lookup (added, op->hosted_removed [k]))
                    zhashx_delete (added, op->hosted_removed [k]);
                else
                    s_mark (removed, op->hosted_removed [k]);
        }
    }
    return touched;
}

int
slicediff_resume (slicediff_t *self, const char *router_id, const Ep__Router *router,
                  uint64_t from, slicediff_service_fn *lookup, void *arg,
                  Ep__ModelSlice *slice)
{
    if (from < self->since || from > self->until || !router)
        return -1;              //  not retained, ahead of us, or gone: full
    zhashx_t *added = zhashx_new ();
    zhashx_t *removed = zhashx_new ();
    //  Its keys are borrowed from the change list, to hand out in slice.
    zhashx_set_key_duplicator (removed, NULL);
    zhashx_set_key_destructor (removed, NULL);
    zhashx_t *changed = zhashx_new ();
    bool touched = s_scan (self, router_id, from, added, removed, changed);
    size_t n = router->n_hosted;
    slice->has_revision = slice->has_full = slice->has_since_revision = true;
    slice->revision = self->until;
    slice->since_revision = from;
    slice->full = false;
    slice->router = touched? (Ep__Router *) router: NULL;
    slice->hosted = (Ep__HostedService **) zmalloc ((n + 1) * sizeof (Ep__HostedService *));
    slice->services = (Ep__Service **) zmalloc ((n + 1) * sizeof (Ep__Service *));
    for (size_t i = 0; i < n; i++) {
        const char *id = router->hosted [i]->service_id;
        bool is_added = zhashx_lookup (added, id) != NULL;
        zhashx_delete (removed, id);        //  hosted now: not removed
        if (is_added)
            slice->hosted [slice->n_hosted++] = router->hosted [i];
        if (is_added || zhashx_lookup (changed, id)) {
            const Ep__Service *service = lookup? lookup (arg, id): NULL;
            if (service)
                slice->services [slice->n_services++] = (Ep__Service *) service;
        }
    }
    //  The removed ids are borrowed from the change list (self).
    slice->removed = (char **) zmalloc ((zhashx_size (removed) + 1) * sizeof (char *));
    for (void *it = zhashx_first (removed); it; it = zhashx_next (removed))
        slice->removed [slice->n_removed++] = (char *) zhashx_cursor (removed);
    zhashx_destroy (&added);
    zhashx_destroy (&removed);
    zhashx_destroy (&changed);
    return 0;
}

void
slicediff_slice_clear (Ep__ModelSlice *slice)
{
    free (slice->hosted);
    free (slice->services);
    free (slice->removed);
    slice->hosted = NULL;
    slice->services = NULL;
    slice->removed = NULL;
    slice->n_hosted = slice->n_services = slice->n_removed = 0;
}
