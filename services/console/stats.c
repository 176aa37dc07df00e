/*  stats.c: a ring of one-minute buckets (stats.h). */
#include "stats.h"

typedef struct {
    int64_t minute;             //  wall_ms / 60000 of this bucket, 0: unused
    json_t *counts;             //  the minute's document
} s_bucket_t;

struct _stats_t {
    s_bucket_t buckets [STATS_MINUTES]; //  indexed by minute % minutes
    int minutes;                //  buckets in use, 1 to STATS_MINUTES
};

static const char *s_totals [] = {
    "connects", "disconnects", "strays", "refusals", "sessions_opened", "sessions_closed",
    "sessions_reaped", "terminator_transitions", "spins"
};

stats_t *
stats_new (int minutes)
{
    stats_t *self = (stats_t *) zmalloc (sizeof (stats_t));
    self->minutes = minutes < 1? 1: minutes > STATS_MINUTES? STATS_MINUTES: minutes;
    return self;
}

void
stats_destroy (stats_t **self_p)
{
    stats_t *self = *self_p;
    if (self) {
        for (size_t i = 0; i < STATS_MINUTES; i++)
            json_decref (self->buckets [i].counts);
        free (self);
        *self_p = NULL;
    }
}

static json_t *
s_empty (int64_t minute)
{
    json_t *counts = json_object ();
    json_object_set_new (counts, "minute_ms", json_integer (minute * 60000));
    for (size_t i = 0; i < EP_COUNT (s_totals); i++)
        json_object_set_new (counts, s_totals [i], json_integer (0));
    json_object_set_new (counts, "by_router", json_object ());
    json_object_set_new (counts, "by_source", json_object ());
    json_object_set_new (counts, "by_reason", json_object ());
    return counts;
}

//  The bucket of minute, emptied first if it held an older minute.
static json_t *
s_bucket (stats_t *self, int64_t minute)
{
    s_bucket_t *bucket = &self->buckets [minute % self->minutes];
    if (bucket->minute != minute) {
        json_decref (bucket->counts);
        bucket->counts = s_empty (minute);
        bucket->minute = minute;
    }
    return bucket->counts;
}

static void
s_add (json_t *object, const char *key)
{
    json_t *count = json_object_get (object, key);
    json_object_set_new (object, key, json_integer (count? json_integer_value (count) + 1: 1));
}

//  counts [breakdown][total][key] += 1, within STATS_MAX_KEYS.
static void
s_by (json_t *counts, const char *breakdown, const char *total, const char *key)
{
    json_t *by = json_object_get (counts, breakdown);
    json_t *per = json_object_get (by, total);
    if (!per) {
        per = json_object ();
        json_object_set_new (by, total, per);
    }
    if (!key || !*key)
        key = "unknown";
    if (!json_object_get (per, key) && json_object_size (per) >= STATS_MAX_KEYS)
        key = "other";
    s_add (per, key);
}

static const char *
s_str (json_t *event, const char *field)
{
    return json_string_value (json_object_get (event, field));
}

//  "ip" of "ip:port" or "[v6]:port", into out.
static const char *
s_source (const char *address, char *out, size_t size)
{
    snprintf (out, size, "%s", address? address: "unknown");
    char *colon = strrchr (out, ':');
    if (colon && colon != out && (out [0] != '[' || colon [-1] == ']'))
        *colon = 0;
    return out;
}

void
stats_event (stats_t *self, json_t *event, int64_t wall_ms)
{
    const char *ns = s_str (event, "namespace"), *type = s_str (event, "type");
    if (!ns || !type || wall_ms < 60000 || streq (type, "heartbeat"))
        return;
    json_t *counts = s_bucket (self, wall_ms / 60000);
    char source [128];
    if (streq (ns, "connect")) {
        const char *total = json_is_true (json_object_get (event, "connected"))? "connects": "disconnects";
        s_add (counts, total);
        const char *src_type = s_str (event, "src_type");
        if (src_type && streq (src_type, "router"))
            s_by (counts, "by_router", total, s_str (event, "src_id"));
        s_by (counts, "by_source", total, s_source (s_str (event, "src_addr"), source, sizeof source));
        if (streq (total, "disconnects"))
            s_by (counts, "by_reason", total, s_str (event, "reason"));
    }
    else
    if (streq (ns, "stray") || streq (ns, "channel")) {
        const char *total = streq (ns, "stray")? "strays": "refusals";
        s_add (counts, total);
        s_by (counts, "by_source", total, s_source (s_str (event, "remote_addr"), source, sizeof source));
        s_by (counts, "by_reason", total, s_str (event, streq (ns, "stray")? "step": "reason"));
    }
    else
    if (streq (ns, "session")) {
        if (streq (type, "created"))
            s_add (counts, "sessions_opened");
        else
        if (streq (type, "closed"))
            s_add (counts, "sessions_closed");
        else
        if (streq (type, "reaped"))
            s_add (counts, "sessions_reaped");
    }
    else
    if (streq (ns, "terminator")) {
        s_add (counts, streq (type, "spin")? "spins": "terminator_transitions");
        if (!streq (type, "spin"))
            s_by (counts, "by_router", "terminator_transitions", s_str (event, "router_id"));
    }
}

json_t *
stats_json (stats_t *self, int64_t wall_ms, int64_t window_ms)
{
    int64_t last = wall_ms / 60000;
    int64_t minutes = (window_ms + 59999) / 60000;
    if (minutes < 1)
        minutes = 1;
    if (minutes > self->minutes)
        minutes = self->minutes;
    json_t *list = json_array ();
    for (int64_t minute = last - minutes + 1; minute <= last; minute++) {
        s_bucket_t *bucket = &self->buckets [((minute % self->minutes) + self->minutes) % self->minutes];
        json_array_append_new (list, bucket->minute == minute? json_deep_copy (bucket->counts):
                                                               s_empty (minute));
    }
    return json_pack ("{s:I, s:I, s:o}", "window_ms", (json_int_t) (minutes * 60000),
                      "time_ms", (json_int_t) wall_ms, "minutes", list);
}
