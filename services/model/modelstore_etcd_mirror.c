/*  modelstore_etcd_mirror.c: the etcd store's mirror of its prefix (see
    modelstore_etcd_int.h): a paged range at open (and after a failed
    batch), then one watch from the revision after it, resumed where it
    stopped; a compaction past it, or a gap, reloads.
*/
#include "modelstore_etcd_int.h"
#include "ep_log.h"

static void s_watch_start (metcd_t *self);

void
metcd_mirror_apply (zhashx_t *mirror, const char *rel, const uint8_t *value, size_t size,
                    int64_t mod)
{
    if (strcmp (rel, METCD_STATE) != 0
    &&  strncmp (rel, METCD_ENTITIES, strlen (METCD_ENTITIES)) != 0)
        return;                 //  change records and replies are read by ranges
    if (!value) {
        zhashx_delete (mirror, rel);
        return;
    }
    metcd_kv_t *kv = metcd_kv_new (rel, value, size, mod);
    if (kv)
        zhashx_update (mirror, rel, kv);
    else
        ep_log_warn ("etcd key %s is not a packed entity: ignored", rel);
}

typedef struct {
    zhashx_t *mirror;           //  the new mirror
    int64_t revision;           //  pinned at (0: the first page's)
    char *from;                 //  the next page starts at this key
    bool after;                 //  or just after it
} s_load_t;

static void
s_load_free (void *data)
{
    s_load_t *load = (s_load_t *) data;
    zhashx_destroy (&load->mirror);
    free (load->from);
    free (load);
}

static void s_load_page (metcd_t *self, s_load_t *load);

static void
s_load_end (metcd_t *self, s_load_t *load, const char *error)
{
    self->reloading = false;
    if (error) {
        metcd_failed (self, "cannot load the model from etcd: %s", error);
        ep_log_error ("%s", self->error);
        return;                 //  mirror_bad stays: the next batch or tick tries again
    }
    zhashx_destroy (&self->mirror);
    self->mirror = load->mirror;
    load->mirror = NULL;
    self->mirror_rev = load->revision;
    self->mirror_bad = false;
    s_watch_start (self);
}

static void
s_load_reply (metcd_t *self, metcd_call_t *call, const ep_etcd_reply_t *reply,
              const char *error)
{
    s_load_t *load = (s_load_t *) call->data;
    if (!reply || reply->code) {
        char why [512];
        snprintf (why, sizeof why, "%s", reply? reply->error: error);
        s_load_end (self, load, why);
        return;
    }
    if (!load->revision)
        load->revision = reply->header.revision;
    if (reply->header.cluster_id)
        self->cluster_id = reply->header.cluster_id;
    for (size_t i = 0; i < reply->nkvs; i++) {
        const char *rel = metcd_rel (self, &reply->kvs [i]);
        if (rel)
            metcd_mirror_apply (load->mirror, rel, reply->kvs [i].value, reply->kvs [i].value_size,
                            reply->kvs [i].mod_revision);
    }
    const char *last = reply->nkvs? metcd_rel (self, &reply->kvs [reply->nkvs - 1]): NULL;
    bool state = streq (load->from, METCD_STATE);
    if (!state && (reply->more && last)) {
        free (load->from);
        load->from = strdup (last);
        load->after = true;
    }
    else
    if (!state) {
        //  Entities done: the state key, at the same revision.
        free (load->from);
        load->from = strdup (METCD_STATE);
        load->after = false;
    }
    else {
        s_load_end (self, load, NULL);
        return;
    }
    call->data = NULL;          //  the load goes on in the next call
    s_load_page (self, load);
}

//  Reads the next page of the load (entities/, then state), pinned.
static void
s_load_page (metcd_t *self, s_load_t *load)
{
    bool state = streq (load->from, METCD_STATE);
    char *key = metcd_key (self, load->from);
    char *prefix = metcd_key (self, METCD_ENTITIES);
    uint8_t end [512];
    //  After a key: that key with a NUL appended.
    ep_etcd_range_t range = { .key = { key, strlen (key) + (load->after? 1: 0) },
                              .revision = load->revision };
    if (!state) {
        range.range_end = ep_etcd_prefix_end (ep_etcd_str (prefix), end, sizeof end);
        range.limit = METCD_PAGE;
    }
    metcd_call_t *call = metcd_call_new (self, s_load_reply, load, s_load_free);
    if (ep_etcd_range (self->etcd, &range, metcd_call_cb, call) != 0) {
        metcd_call_drop (call);         //  frees the load
        s_load_end (self, NULL, "the range request could not be encoded");
    }
    free (prefix);
    free (key);
}

//  Reloads the mirror (the watch stops until it is loaded); reloading
//  says when it ended.
void
metcd_reload (metcd_t *self)
{
    ep_etcd_watch_cancel (&self->watch);
    self->mirror_bad = true;
    self->reloading = true;
    s_load_t *load = (s_load_t *) zmalloc (sizeof (s_load_t));
    load->mirror = zhashx_new ();
    zhashx_set_destructor (load->mirror, metcd_kv_free);
    load->from = strdup (METCD_ENTITIES);
    s_load_page (self, load);
}

void
metcd_mirror_commit (metcd_t *self, zhashx_t *staged, int64_t revision)
{
    for (metcd_kv_t *kv = (metcd_kv_t *) zhashx_first (staged); kv;
         kv = (metcd_kv_t *) zhashx_next (staged))
        metcd_mirror_apply (self->mirror, (const char *) zhashx_cursor (staged),
                        kv->removed? NULL: kv->value, kv->size, revision);
    if (revision > self->mirror_rev)
        self->mirror_rev = revision;
}

void
metcd_resync (metcd_t *self)
{
    if (!self->reloading)
        metcd_reload (self);
}

static void
s_watch_reply (void *arg, const ep_etcd_reply_t *reply, const char *error)
{
    metcd_t *self = (metcd_t *) arg;
    if (!reply || reply->canceled || reply->code) {
        //  Ended for good (a compaction past it, most often): read again.
        ep_log_warn ("the model's etcd watch ended (%s): reloading the mirror",
                     reply? (reply->cancel_reason? reply->cancel_reason: "canceled"): error);
        self->watch = NULL;
        metcd_resync (self);
        return;
    }
    for (size_t i = 0; i < reply->nevents; i++) {
        const ep_etcd_event_t *event = &reply->events [i];
        const char *rel = metcd_rel (self, &event->kv);
        //  At or below the mirror's revision: this store's own commit,
        //  already applied (any other's would have failed its compares).
        if (!rel || event->kv.mod_revision <= self->mirror_rev)
            continue;
        metcd_mirror_apply (self->mirror, rel, event->is_delete? NULL: event->kv.value,
                        event->kv.value_size, event->kv.mod_revision);
        if (self->cache && !event->is_delete
        &&  strncmp (rel, METCD_REPLIES, strlen (METCD_REPLIES)) == 0
        &&  ep_replycache_entry_load (self->cache, event->kv.value, event->kv.value_size,
                                      ep_wall_ms (), ep_mono_ms ()) < 0)
            ep_log_warn ("etcd key %s%s is not a saved reply: skipped", self->prefix, rel);
    }
    if (reply->header.revision > self->mirror_rev && (reply->nevents || reply->progress))
        self->mirror_rev = reply->header.revision;
}

static void
s_watch_start (metcd_t *self)
{
    uint8_t end [512];
    ep_etcd_watch_req_t req = { .key = ep_etcd_str (self->prefix),
                                .start_revision = self->mirror_rev + 1,
                                .progress_notify = true };
    req.range_end = ep_etcd_prefix_end (req.key, end, sizeof end);
    self->watch = ep_etcd_watch (self->etcd, &req, s_watch_reply, self);
}
