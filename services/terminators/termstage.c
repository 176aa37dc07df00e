/*  termstage.c: a batch's changes, staged so that they can be undone
    (termstage.h). */
#include "termstage.h"
#include "ep_log.h"

//  What to put back if a savepoint or the commit fails.
typedef enum { UNDO_RECORD, UNDO_KEY, UNDO_SET } s_undo_kind_t;

typedef struct {
    s_undo_kind_t kind;         //  what changed
    char *key;                  //  record id, spin key, or set member
    termrec_t *record;          //  UNDO_RECORD: the record before (NULL: it did not exist)
    termsm_key_t spin;          //  UNDO_KEY: the key before
    bool had_spin;              //  UNDO_KEY: the key existed
    zhashx_t *set;              //  UNDO_SET: the set key was taken from
} s_undo_t;

struct _termstage_t {
    ep_store_t *store;          //  terminators.db (borrowed)
    termindex_t *index;         //  memory (borrowed)
    ep_output_t *output;        //  staged events and commands (borrowed)
    bool failed;                //  a store write of the current savepoint failed
    s_undo_t *undo;             //  undo log of the open batch
    size_t undo_size;           //  entries in use
    size_t undo_cap;            //  entries allocated
};

termstage_t *
termstage_new (ep_store_t *store, termindex_t *index, ep_output_t *output)
{
    termstage_t *self = (termstage_t *) zmalloc (sizeof (termstage_t));
    self->store = store;
    self->index = index;
    self->output = output;
    return self;
}

static void
s_undo_to (termstage_t *self, size_t mark, bool restore);

void
termstage_destroy (termstage_t **self_p)
{
    termstage_t *self = *self_p;
    if (self) {
        s_undo_to (self, 0, false);
        free (self->undo);
        free (self);
        *self_p = NULL;
    }
}

static s_undo_t *
s_undo_push (termstage_t *self, s_undo_kind_t kind, const char *key)
{
    if (self->undo_size == self->undo_cap) {
        self->undo_cap = self->undo_cap? self->undo_cap * 2: 256;
        self->undo = (s_undo_t *) realloc (self->undo, self->undo_cap * sizeof (s_undo_t));
        EP_ASSERT (self->undo);
    }
    s_undo_t *undo = &self->undo [self->undo_size++];
    memset (undo, 0, sizeof *undo);
    undo->kind = kind;
    undo->key = strdup (key);
    return undo;
}

static void
s_restore (termstage_t *self, s_undo_t *undo)
{
    switch (undo->kind) {
        case UNDO_RECORD:
            if (undo->record)
                termindex_apply (self->index, undo->record);
            else
                termindex_forget (self->index, undo->key);
            break;
        case UNDO_KEY:
            if (undo->had_spin)
                termindex_key_set (self->index, undo->key, &undo->spin);
            else
                termindex_key_remove (self->index, undo->key);
            break;
        case UNDO_SET:
            zhashx_update (undo->set, undo->key, (void *) 1);
            break;
    }
}

//  Undoes the log back to mark (restore = false: just forgets it).
static void
s_undo_to (termstage_t *self, size_t mark, bool restore)
{
    while (self->undo_size > mark) {
        s_undo_t *undo = &self->undo [--self->undo_size];
        if (restore)
            s_restore (self, undo);
        termrec_destroy (&undo->record);
        free (undo->key);
    }
}

termstage_mark_t
termstage_savepoint (termstage_t *self, const char *name)
{
    termstage_mark_t mark = { self->undo_size, ep_output_mark (self->output), "" };
    snprintf (mark.name, sizeof mark.name, "%s", name);
    //  Refused when SQLite already lost the batch's transaction (a full
    //  disk): the savepoint is then undone at its release, as failed.
    self->failed = ep_store_savepoint (self->store, name) != 0;
    return mark;
}

int
termstage_release (termstage_t *self, termstage_mark_t mark)
{
    if (!self->failed && ep_store_release (self->store, mark.name) == 0)
        return 0;
    if (ep_store_in_transaction (self->store))
        ep_store_rollback_to (self->store, mark.name);
    s_undo_to (self, mark.undo, true);
    ep_output_undo (self->output, mark.staged);
    self->failed = false;
    return -1;
}

void
termstage_fail (termstage_t *self)
{
    self->failed = true;
}

bool
termstage_failed (termstage_t *self)
{
    return self->failed;
}

void
termstage_put (termstage_t *self, const termrec_t *value)
{
    termrec_t *before = termindex_lookup (self->index, value->id);
    s_undo_t *undo = s_undo_push (self, UNDO_RECORD, value->id);
    undo->record = before? termrec_dup (before): NULL;
    termindex_apply (self->index, value);
    //  Once a write of the savepoint failed it is undone whole: no more SQL.
    if (!self->failed && termstore_save (self->store, value) != 0) {
        ep_log_error ("cannot save terminator %s: %s", value->id, ep_store_last_error ());
        self->failed = true;
    }
}

void
termstage_remove (termstage_t *self, const char *id)
{
    termrec_t *before = termindex_lookup (self->index, id);
    if (!before)
        return;
    s_undo_t *undo = s_undo_push (self, UNDO_RECORD, id);
    undo->record = termrec_dup (before);
    char key [65];
    snprintf (key, sizeof key, "%s", id);
    termindex_forget (self->index, key);
    if (!self->failed && termstore_remove (self->store, key) != 0) {
        ep_log_error ("cannot remove terminator %s: %s", key, ep_store_last_error ());
        self->failed = true;
    }
}

termsm_key_t *
termstage_key (termstage_t *self, const char *router_id, const char *service_id)
{
    char key [140];
    termindex_pair (key, sizeof key, router_id, service_id);
    termsm_key_t *spin = termindex_key (self->index, key);
    s_undo_t *undo = s_undo_push (self, UNDO_KEY, key);
    undo->had_spin = spin != NULL;
    if (spin)
        undo->spin = *spin;
    else {
        termsm_key_t fresh = { 0 };
        termindex_key_set (self->index, key, &fresh);
        spin = termindex_key (self->index, key);
    }
    return spin;
}

void
termstage_consume (termstage_t *self, zhashx_t *set, const char *id)
{
    char key [65];
    snprintf (key, sizeof key, "%s", id);
    s_undo_t *undo = s_undo_push (self, UNDO_SET, key);
    undo->set = set;
    zhashx_delete (set, key);
}

void
termstage_each_changed (termstage_t *self,
                        void (*fn) (void *arg, const char *id, const termrec_t *before),
                        void *arg)
{
    //  The first undo entry of an id holds what it was when the batch opened.
    zhashx_t *seen = zhashx_new ();
    for (size_t i = 0; i < self->undo_size; i++) {
        s_undo_t *undo = &self->undo [i];
        if (undo->kind != UNDO_RECORD || zhashx_lookup (seen, undo->key))
            continue;
        zhashx_insert (seen, undo->key, (void *) 1);
        fn (arg, undo->key, undo->record);
    }
    zhashx_destroy (&seen);
}

void
termstage_keep (termstage_t *self)
{
    s_undo_to (self, 0, false);
}

void
termstage_undo (termstage_t *self)
{
    s_undo_to (self, 0, true);
    ep_output_abort (self->output);
}
