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
    uint64_t last_seq;          //  every seq up to it accounted for (seen or reported lost)
    uint64_t ahead;             //  bit i: seq last_seq + 1 + i seen (whole streams: two paths)
    uint64_t expect;            //  highest seq known sent (seen, or a heartbeat's)
    bool holed;                 //  a hole below expect waits for its fill
    int64_t hole_since_ms;      //  since when (the oldest hole, or the last advance)
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
    uint64_t duplicates;        //  copies dropped (the same message by another bus)
    int64_t reorder_ms;         //  a hole waits this long for its fill before it is a gap
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
    self->reorder_ms = EP_TRACKER_REORDER_MS;
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

//  Declares what is missing in (last_seq, upto] lost (one GAP per hole)
//  and moves last_seq to upto.
static void
s_give_up (ep_tracker_t *self, s_source_t *source, uint64_t upto)
{
    while (source->last_seq < upto) {
        if (source->ahead & 1) {
            source->ahead >>= 1;
            source->last_seq++;
            continue;
        }
        //  A hole from last_seq + 1 to the next seq seen, or to upto.
        uint64_t to = source->ahead? source->last_seq + (uint64_t) __builtin_ctzll (source->ahead): upto;
        if (to > upto)
            to = upto;
        s_emit (self, source, EP_STREAM_GAP, source->last_seq + 1, to, source->ahead == 0);
        uint64_t shift = to - source->last_seq;
        source->ahead = shift >= 64? 0: source->ahead >> shift;
        source->last_seq = to;
    }
}

//  Moves last_seq over the seqs seen in order, and restarts the reorder
//  delay when a hole remains (the oldest one was filled or given up).
static void
s_settle (s_source_t *source, int64_t now_ms)
{
    uint64_t before = source->last_seq;
    while (source->ahead & 1) {
        source->ahead >>= 1;
        source->last_seq++;
    }
    bool hole = source->ahead || source->expect > source->last_seq;
    if (hole && (!source->holed || source->last_seq != before))
        source->hole_since_ms = now_ms;
    source->holed = hole;
}

//  A whole stream off the hot path: reordering between buses, copies,
//  holes waiting for their fill, heartbeats announcing a tail.
static bool
s_observe_window (ep_tracker_t *self, s_source_t *source, uint64_t seq, bool heartbeat,
                  int64_t now_ms)
{
    if (heartbeat) {
        //  The publisher has sent up to seq: a tail we lack is a hole, a
        //  gap if no bus brings it within the reorder delay.
        if (seq > source->expect)
            source->expect = seq;
        s_settle (source, now_ms);
        return true;
    }
    if (seq <= source->last_seq) {
        self->duplicates++;
        return false;
    }
    if (seq - source->last_seq > 64)
        //  64 later seqs arrived: what is missing below them is lost.
        s_give_up (self, source, seq - 64);
    uint64_t bit = 1ULL << (seq - source->last_seq - 1);
    if (source->ahead & bit) {
        self->duplicates++;
        return false;
    }
    source->ahead |= bit;
    if (seq > source->expect)
        source->expect = seq;
    s_settle (source, now_ms);
    return true;
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
        source->expect = source->last_seq;
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
        source->last_seq = source->expect = source->ahead = 0;
        source->holed = false;
        s_emit (self, source, EP_STREAM_RESTART, 0, 0, false);
    }
    source->last_heard_ms = now_ms;
    if (source->silent) {
        source->silent = false;
        s_emit (self, source, EP_STREAM_RESUMED, 0, 0, false);
    }

    //  The hot path: the next seq, no hole pending.
    if (!heartbeat && seq == source->last_seq + 1 && !source->holed) {
        source->last_seq = source->expect = seq;
        return true;
    }
    if (!whole) {
        //  A filtered stream skips seqs by design: no window, no gaps.
        if (heartbeat)
            return true;
        if (seq <= source->last_seq) {
            self->duplicates++;
            return false;
        }
        source->last_seq = source->expect = seq;
        source->ahead = 0;      //  whole no more: holes are not losses
        source->holed = false;
        return true;
    }
    return s_observe_window (self, source, seq, heartbeat, now_ms);
}

size_t
ep_tracker_tick (ep_tracker_t *self, int64_t now_ms)
{
    size_t silent = 0;
    s_source_t *source = (s_source_t *) zhashx_first (self->sources);
    for (; source; source = (s_source_t *) zhashx_next (self->sources)) {
        if (source->holed && now_ms - source->hole_since_ms >= self->reorder_ms) {
            //  The oldest hole waited long enough: a gap.
            uint64_t to = source->ahead? source->last_seq + (uint64_t) __builtin_ctzll (source->ahead)
                                       : source->expect;
            s_give_up (self, source, to);
            source->holed = false;
            s_settle (source, now_ms);
        }
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

uint64_t
ep_tracker_duplicates (ep_tracker_t *self)
{
    return self->duplicates;
}

void
ep_tracker_set_reorder (ep_tracker_t *self, int64_t reorder_ms)
{
    self->reorder_ms = reorder_ms;
}
