/*  ep_tracker.c: gap, duplicate, restart and silence detection per
    (source, stream). State is a hash of small records; a tick scans them,
    which is fine because a control plane has tens of publishers, not
    millions. */
#include "ep_tracker.h"

typedef struct {
    char *source_id;            //  publisher
    char *stream;               //  namespace
    uint64_t epoch;             //  current epoch of the publisher
    int64_t epoch_started_ms;   //  when that epoch began (wall clock)
    uint64_t last_seq;          //  highest seq accounted for (seen or reported lost)
    int64_t last_heard_ms;      //  when anything last came from it
    bool silent;                //  reported silent, not heard since
    bool whole;                 //  the subscriber takes the stream whole
    uint64_t whole_generation;  //  prefixes' generation whole was computed for
} s_source_t;

struct _ep_tracker_t {
    int64_t subscribed_wall_ms; //  when the subscriber subscribed
    int64_t silent_after_ms;    //  silence threshold
    ep_tracker_report_fn *report; //  where reports go
    void *arg;                  //  its argument
    zlistx_t *prefixes;         //  subscribed prefixes that can cover a whole stream
    zhashx_t *sources;          //  "source\x1fstream" -> s_source_t
    zhashx_t *seen_streams;     //  streams observed at least once
    uint64_t lost;              //  total seqs reported lost
    uint64_t generation;        //  bumped when the prefixes change
    s_source_t *last;           //  the source observed last (never freed before us)
};

static void
s_source_destroy (void **item)
{
    s_source_t *source = (s_source_t *) *item;
    if (source) {
        free (source->source_id);
        free (source->stream);
        free (source);
        *item = NULL;
    }
}

ep_tracker_t *
ep_tracker_new (int64_t subscribed_wall_ms, int64_t silent_after_ms,
                ep_tracker_report_fn *report, void *arg)
{
    ep_tracker_t *self = (ep_tracker_t *) zmalloc (sizeof (ep_tracker_t));
    self->subscribed_wall_ms = subscribed_wall_ms;
    self->silent_after_ms = silent_after_ms;
    self->report = report;
    self->arg = arg;
    self->prefixes = zlistx_new ();
    zlistx_set_destructor (self->prefixes, (czmq_destructor *) zstr_free);
    zlistx_set_duplicator (self->prefixes, (czmq_duplicator *) strdup);
    self->sources = zhashx_new ();
    zhashx_set_destructor (self->sources, s_source_destroy);
    self->seen_streams = zhashx_new ();
    self->generation = 1;
    return self;
}

void
ep_tracker_destroy (ep_tracker_t **self_p)
{
    ep_tracker_t *self = *self_p;
    if (self) {
        zlistx_destroy (&self->prefixes);
        zhashx_destroy (&self->sources);
        zhashx_destroy (&self->seen_streams);
        free (self);
        *self_p = NULL;
    }
}

//  Streams are namespaces, without a '.': only a prefix with no '.' but
//  maybe a last one can be a prefix of "<stream>.". The others (one per
//  router, "cmd.<id>.", in the watchdog) are not kept, so each message's
//  check costs the few that matter, not one per router.
static bool
s_may_cover (const char *prefix)
{
    const char *dot = strchr (prefix, '.');
    return !dot || dot [1] == 0;
}

void
ep_tracker_subscribe (ep_tracker_t *self, const char *prefix)
{
    if (s_may_cover (prefix)) {
        zlistx_add_end (self->prefixes, (void *) prefix);
        self->generation++;
    }
}

void
ep_tracker_unsubscribe (ep_tracker_t *self, const char *prefix)
{
    if (!s_may_cover (prefix))
        return;
    const char *item = (const char *) zlistx_first (self->prefixes);
    for (; item; item = (const char *) zlistx_next (self->prefixes))
        if (streq (item, prefix)) {
            zlistx_delete (self->prefixes, zlistx_cursor (self->prefixes));
            self->generation++;
            return;
        }
}

bool
ep_tracker_whole (ep_tracker_t *self, const char *stream)
{
    size_t stream_len = strlen (stream);
    const char *prefix = (const char *) zlistx_first (self->prefixes);
    for (; prefix; prefix = (const char *) zlistx_next (self->prefixes)) {
        size_t n = strlen (prefix);
        //  prefix must be a prefix of "<stream>."
        if (n <= stream_len && memcmp (prefix, stream, n) == 0)
            return true;
        if (n == stream_len + 1 && memcmp (prefix, stream, stream_len) == 0
        &&  prefix [stream_len] == '.')
            return true;
    }
    return false;
}

static void
s_emit (ep_tracker_t *self, s_source_t *source, ep_stream_event_t kind,
        uint64_t from, uint64_t to, bool via_heartbeat)
{
    if (kind == EP_STREAM_GAP)
        self->lost += to - from + 1;
    if (!self->report)
        return;
    ep_stream_report_t report = {
        .kind = kind, .source_id = source->source_id, .stream = source->stream,
        .epoch = source->epoch, .from = from, .to = to, .via_heartbeat = via_heartbeat
    };
    self->report (self->arg, &report);
}

//  The source record of (source_id, stream), or NULL. Consecutive messages
//  mostly come from the same publisher's stream: two string compares then
//  stand in for building the key and hashing it. *key_p is the key when it
//  was built (the caller frees it unless it is key_buf).
static s_source_t *
s_find (ep_tracker_t *self, const char *source_id, const char *stream,
        char *key_buf, size_t key_size, char **key_p)
{
    *key_p = NULL;
    s_source_t *last = self->last;
    if (last && streq (last->stream, stream) && streq (last->source_id, source_id))
        return last;
    //  "source\x1fstream", by memcpy: snprintf cost more than the rest of
    //  the tracker together.
    size_t id_len = strlen (source_id);
    size_t stream_len = strlen (stream);
    size_t size = id_len + 1 + stream_len + 1;
    char *key = size <= key_size? key_buf: (char *) malloc (size);
    EP_ASSERT (key);
    memcpy (key, source_id, id_len);
    key [id_len] = '\x1f';
    memcpy (key + id_len + 1, stream, stream_len + 1);
    *key_p = key;
    return (s_source_t *) zhashx_lookup (self->sources, key);
}

bool
ep_tracker_observe (ep_tracker_t *self, const char *source_id, const char *stream,
                    uint64_t epoch, int64_t epoch_started_ms, uint64_t seq,
                    bool heartbeat, int64_t now_ms)
{
    char key_buf [256], *key;
    s_source_t *source = s_find (self, source_id, stream, key_buf, sizeof key_buf, &key);
    bool created = !source;
    if (created) {
        //  A stream is seen once it has a source: known sources skip this.
        zhashx_insert (self->seen_streams, stream, (void *) 1);
        source = (s_source_t *) zmalloc (sizeof (s_source_t));
        source->source_id = strdup (source_id);
        source->stream = strdup (stream);
        source->epoch = epoch;
        source->epoch_started_ms = epoch_started_ms;
        //  A source that started after we subscribed must be seen from seq 1;
        //  one that was already running when we joined is taken from here.
        bool born_after_us = epoch_started_ms > self->subscribed_wall_ms;
        source->last_seq = born_after_us? 0: (heartbeat? seq: seq - 1);
        zhashx_insert (self->sources, key, source);
    }
    if (key != key_buf)
        free (key);
    self->last = source;
    //  Whether the stream is whole changes only with the prefixes.
    if (source->whole_generation != self->generation) {
        source->whole = ep_tracker_whole (self, stream);
        source->whole_generation = self->generation;
    }
    bool whole = source->whole;
    if (!created && epoch != source->epoch) {
        if (epoch_started_ms < source->epoch_started_ms)
            return false;       //  a straggler from an older epoch
        source->epoch = epoch;
        source->epoch_started_ms = epoch_started_ms;
        source->last_seq = 0;
        s_emit (self, source, EP_STREAM_RESTART, 0, 0, false);
    }
    source->last_heard_ms = now_ms;
    if (source->silent) {
        source->silent = false;
        s_emit (self, source, EP_STREAM_RESUMED, 0, 0, false);
    }

    if (heartbeat) {
        //  The heartbeat says the publisher has sent up to seq: anything
        //  above what we accounted for is lost.
        if (whole && seq > source->last_seq) {
            s_emit (self, source, EP_STREAM_GAP, source->last_seq + 1, seq, true);
            source->last_seq = seq;
        }
        return true;
    }
    if (seq <= source->last_seq) {
        //  ZeroMQ keeps order on a path, so an old seq was seen before.
        s_emit (self, source, EP_STREAM_DUPLICATE, seq, seq, false);
        return false;
    }
    if (whole && seq > source->last_seq + 1)
        s_emit (self, source, EP_STREAM_GAP, source->last_seq + 1, seq - 1, false);
    source->last_seq = seq;
    return true;
}

size_t
ep_tracker_tick (ep_tracker_t *self, int64_t now_ms)
{
    size_t silent = 0;
    s_source_t *source = (s_source_t *) zhashx_first (self->sources);
    for (; source; source = (s_source_t *) zhashx_next (self->sources)) {
        if (!source->silent && now_ms - source->last_heard_ms >= self->silent_after_ms) {
            source->silent = true;
            s_emit (self, source, EP_STREAM_SILENT, 0, 0, false);
        }
        if (source->silent)
            silent++;
    }
    return silent;
}

bool
ep_tracker_seen (ep_tracker_t *self, const char *stream)
{
    if (!stream)
        return zhashx_size (self->seen_streams) > 0;
    return zhashx_lookup (self->seen_streams, stream) != NULL;
}

uint64_t
ep_tracker_lost (ep_tracker_t *self)
{
    return self->lost;
}
