/*  termids.c: the terminator ids a router agent keeps (see termids.h).
*/
#include "termids.h"
#include "ep_file.h"
#include "ep_log.h"

struct _termids_t {
    char *path;                 //  the ids file, NULL without a state directory
    zhashx_t *ids;              //  service id -> terminator id
};

termids_t *
termids_new (const char *state_dir, const char *router_id)
{
    termids_t *self = (termids_t *) zmalloc (sizeof (termids_t));
    self->path = state_dir? zsys_sprintf ("%s/%s.terminators", state_dir, router_id): NULL;
    self->ids = zhashx_new ();
    zhashx_set_destructor (self->ids, (czmq_destructor *) zstr_free);
    FILE *file = self->path? fopen (self->path, "r"): NULL;
    char service [65], terminator [33];
    while (file && fscanf (file, "%64s %32s", service, terminator) == 2)
        zhashx_update (self->ids, service, strdup (terminator));
    if (file)
        fclose (file);
    return self;
}

void
termids_destroy (termids_t **self_p)
{
    termids_t *self = *self_p;
    if (self) {
        zhashx_destroy (&self->ids);
        free (self->path);
        free (self);
        *self_p = NULL;
    }
}

static void
s_save (termids_t *self)
{
    if (!self->path)
        return;
    char *text = NULL;
    size_t size = 0;
    FILE *file = open_memstream (&text, &size);
    EP_ASSERT (file);
    const char *id = (const char *) zhashx_first (self->ids);
    for (; id; id = (const char *) zhashx_next (self->ids))
        fprintf (file, "%s %s\n", (const char *) zhashx_cursor (self->ids), id);
    fclose (file);
    //  Whole or not at all: a router that restarts keeps its terminator ids.
    char err [256];
    if (ep_file_write (self->path, text, size, 0644, true, err, sizeof err) != 0)
        ep_log_warn ("%s (terminator ids will be new after a restart)", err);
    free (text);
}

const char *
termids_get (termids_t *self, const char *service_id)
{
    const char *id = (const char *) zhashx_lookup (self->ids, service_id);
    if (!id) {
        char fresh [33];
        ep_random_hex (fresh, 16);
        zhashx_update (self->ids, service_id, strdup (fresh));
        s_save (self);
        id = (const char *) zhashx_lookup (self->ids, service_id);
    }
    return id;
}
