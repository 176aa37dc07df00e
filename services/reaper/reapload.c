/*  reapload.c: a shard read from etcd, into the local cache (reapload.h). */
#include "reapload.h"
#include "reapkeys.h"
#include "ep_log.h"
#include <jansson.h>

//  The kinds in the order they are written: a job's marks need its
//  sessions' rows, the counters need the open rows.
static const reapkeys_kind_t s_order [] = {
    REAPKEYS_SESSION, REAPKEYS_JOB, REAPKEYS_COUNTERS, REAPKEYS_OUTBOX
};

//  The record's key as a string (keys are short).
static bool
s_key (const ep_etcd_kv_t *kv, char *key, size_t size)
{
    if (kv->key_size >= size)
        return false;
    memcpy (key, kv->key, kv->key_size);
    key [kv->key_size] = 0;
    return true;
}

//  A done job's counts, as the embedded mode keeps them (a JSON object).
static char *
s_counts (const reapkeys_job_t *job)
{
    json_t *closed = json_object ();
    for (size_t i = 0; reapkeys_reasons [i]; i++)
        if (job->closed [i])
            json_object_set_new (closed, reapkeys_reasons [i], json_integer ((json_int_t) job->closed [i]));
    char *text = json_dumps (closed, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref (closed);
    return text;
}

//  A running job whose marking was done: its target's open sessions are
//  TERMINATING under it.
typedef struct {
    sessiondb_t *db;            //  the cache
    const reapkeys_job_t *job;  //  the job
    reapload_stats_t *stats;    //  counted here
    int rc;                     //  -1 once a write failed
    zlistx_t *ids;              //  the sessions to mark (copies)
} s_mark_t;

static void
s_on_open (void *arg, const sessiondb_row_t *row)
{
    s_mark_t *mark = (s_mark_t *) arg;
    const char *target = mark->job->job.target_id;
    const char *type = mark->job->job.target_type;
    if ((streq (type, "router") && streq (row->router_id, target))
    ||  (streq (type, "identity") && streq (row->identity_id, target))
    ||  (streq (type, "service") && streq (row->service_id, target)))
        zlistx_add_end (mark->ids, strdup (row->id));
}

static int
s_job (sessiondb_t *db, const reapkeys_job_t *job, const char *router_id, reapload_stats_t *stats)
{
    if (sessiondb_job_insert (db, &job->job) != 0)
        return -1;
    if (job->job.done) {
        char *counts = s_counts (job);
        int rc = sessiondb_job_finish (db, job->job.id, job->job.finished_ms, counts);
        free (counts);
        return rc;
    }
    stats->jobs++;
    if (!job->marking_done || !router_id)
        return 0;
    s_mark_t mark = { db, job, stats, 0, zlistx_new () };
    zlistx_set_destructor (mark.ids, (czmq_destructor *) zstr_free);
    int rc = sessiondb_router_open (db, router_id, s_on_open, &mark);
    for (const char *id = (const char *) zlistx_first (mark.ids); id && rc == 0;
         id = (const char *) zlistx_next (mark.ids)) {
        rc = sessiondb_mark (db, id, job->job.id);
        stats->marked++;
    }
    zlistx_destroy (&mark.ids);
    return rc;
}

static void
s_on_row (void *arg, const sessiondb_row_t *row)
{
    *(bool *) arg = row->state != EP__SESSION_STATE__CLOSED;
}

//  A chunk's entry for id, into the cache if id is an open session (the
//  session records came first, reapload_order): a close leaves its entry
//  in the chunk, and the closed record's final counters are the ones kept.
//  -1 if a read or write failed.
static int
s_counters (sessiondb_t *db, const Ep__ReaperCounters__Entry *entry, int64_t takeover_ms)
{
    bool open = false;
    if (sessiondb_get (db, entry->id, s_on_row, &open) < 0)
        return -1;
    if (!open)
        return 0;
    return sessiondb_counters (db, entry->id, reapkeys_seen (entry->last_seen_ms, takeover_ms),
                               entry->bytes_rx, entry->bytes_tx);
}

//  One record of kind; -1 if a write failed.
static int
s_record (sessiondb_t *db, const reapkeys_key_t *parsed, const ep_etcd_kv_t *kv, int64_t takeover_ms,
          reapload_entry_fn *entry_fn, void *arg, reapload_stats_t *stats, const char *key)
{
    int rc = 0;
    if (parsed->kind == REAPKEYS_SESSION) {
        sessiondb_row_t row;
        Ep__ReaperSessionRecord *msg;
        if (reapkeys_unpack_session (kv->value, kv->value_size, &row, &msg) != 0)
            goto skipped;
        //  Liveness after a takeover is as after a restart.
        if (row.state != EP__SESSION_STATE__CLOSED)
            row.last_seen_ms = reapkeys_seen (row.last_seen_ms, takeover_ms);
        rc = sessiondb_insert (db, &row);
        if (row.state == EP__SESSION_STATE__CLOSED)
            stats->closed++;
        else
            stats->open++;
        ep__reaper_session_record__free_unpacked (msg, NULL);
    }
    else
    if (parsed->kind == REAPKEYS_JOB) {
        reapkeys_job_t job;
        Ep__ReaperJobRecord *msg;
        if (reapkeys_unpack_job (kv->value, kv->value_size, &job, &msg) != 0)
            goto skipped;
        //  Only a router's job marks here: another target's job has its
        //  sessions in many routers, and the core takes them again.
        rc = s_job (db, &job, streq (job.job.target_type, "router")? job.job.target_id: NULL, stats);
        ep__reaper_job_record__free_unpacked (msg, NULL);
    }
    else
    if (parsed->kind == REAPKEYS_COUNTERS) {
        Ep__ReaperCounters *msg = ep__reaper_counters__unpack (NULL, kv->value_size, kv->value);
        if (!msg)
            goto skipped;
        for (size_t i = 0; i < msg->n_entries && rc == 0; i++)
            if (msg->entries [i]->id)
                rc = s_counters (db, msg->entries [i], takeover_ms);
        ep__reaper_counters__free_unpacked (msg, NULL);
    }
    else {
        Ep__ReaperOutboxEntry *msg = ep__reaper_outbox_entry__unpack (NULL, kv->value_size, kv->value);
        if (!msg || !msg->topic || !msg->event_id || !msg->has_event) {
            if (msg)
                ep__reaper_outbox_entry__free_unpacked (msg, NULL);
            goto skipped;
        }
        if (entry_fn)
            entry_fn (arg, key, msg->topic, msg->event.data, msg->event.len, msg->event_id);
        stats->entries++;
        ep__reaper_outbox_entry__free_unpacked (msg, NULL);
    }
    return rc;
skipped:
    ep_log_warn ("reaper: %s does not hold a valid record: skipped", key);
    stats->skipped++;
    return 0;
}

//  The kind of kv's record, or -1 if it is none.
static int
s_kind (const char *prefix, const ep_etcd_kv_t *kv)
{
    char key [REAPKEYS_KEY_MAX];
    reapkeys_key_t parsed;
    if (!s_key (kv, key, sizeof key) || reapkeys_parse (prefix, key, &parsed) != 0)
        return -1;
    for (size_t k = 0; k < EP_COUNT (s_order); k++)
        if (parsed.kind == s_order [k])
            return (int) k;
    return -1;
}

size_t
reapload_order (const char *prefix, ep_etcd_kv_t *kvs, size_t nkvs, size_t *outbox)
{
    //  A stable partition, so each kind keeps etcd's key order (an
    //  outbox's is its publication order).
    ep_etcd_kv_t *sorted = (ep_etcd_kv_t *) zmalloc (sizeof (ep_etcd_kv_t) * (nkvs + 1));
    int *kinds = (int *) zmalloc (sizeof (int) * (nkvs + 1));
    for (size_t i = 0; i < nkvs; i++)
        kinds [i] = s_kind (prefix, &kvs [i]);
    size_t n = 0;
    *outbox = 0;
    for (size_t k = 0; k < EP_COUNT (s_order); k++) {
        if (s_order [k] == REAPKEYS_OUTBOX)
            *outbox = n;
        for (size_t i = 0; i < nkvs; i++)
            if (kinds [i] == (int) k)
                sorted [n++] = kvs [i];
    }
    size_t records = n;
    for (size_t i = 0; i < nkvs; i++)
        if (kinds [i] < 0)
            sorted [n++] = kvs [i];
    memcpy (kvs, sorted, sizeof (ep_etcd_kv_t) * nkvs);
    free (kinds);
    free (sorted);
    return records;
}

int
reapload_records (sessiondb_t *db, const char *prefix, const ep_etcd_kv_t *kvs, size_t nkvs,
                  int64_t takeover_ms, reapload_entry_fn *entry_fn, void *arg, reapload_stats_t *stats)
{
    for (size_t i = 0; i < nkvs; i++) {
        char key [REAPKEYS_KEY_MAX];
        reapkeys_key_t parsed;
        if (!s_key (&kvs [i], key, sizeof key) || reapkeys_parse (prefix, key, &parsed) != 0)
            continue;
        if (s_record (db, &parsed, &kvs [i], takeover_ms, entry_fn, arg, stats, key) != 0)
            return -1;
    }
    return 0;
}

int
reapload_shard (sessiondb_t *db, const char *prefix, const ep_etcd_kv_t *kvs, size_t nkvs,
                int64_t takeover_ms, reapload_entry_fn *entry_fn, void *arg, reapload_stats_t *stats)
{
    memset (stats, 0, sizeof *stats);
    ep_etcd_kv_t *ordered = (ep_etcd_kv_t *) zmalloc (sizeof (ep_etcd_kv_t) * (nkvs + 1));
    if (nkvs)
        memcpy (ordered, kvs, sizeof (ep_etcd_kv_t) * nkvs);
    size_t outbox;
    size_t records = reapload_order (prefix, ordered, nkvs, &outbox);
    int rc = reapload_records (db, prefix, ordered, records, takeover_ms, entry_fn, arg, stats);
    free (ordered);
    return rc;
}
