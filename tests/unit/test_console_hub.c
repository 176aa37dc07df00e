/*  test_console_hub.c: the console's event ring and stream queues
    (services/console/hub), without sockets. */
#include <criterion/criterion.h>
#include "hub.h"

typedef struct {
    int sleeps;                 //  sleep calls
    int wakes;                  //  wake calls
} s_calls_t;

static void
s_sleep (void *arg, void *handle)
{
    (void) handle;
    ((s_calls_t *) arg)->sleeps++;
}

static void
s_wake (void *arg, void *handle)
{
    (void) handle;
    ((s_calls_t *) arg)->wakes++;
}

static hub_t *
s_hub (s_calls_t *calls, size_t ring, size_t stream_bytes, uint64_t epoch)
{
    hub_config_t config;
    hub_config_defaults (&config);
    config.epoch = epoch;
    config.ring_events = ring;
    config.stream_bytes = stream_bytes;
    config.keepalive_ms = 1000;
    config.started_wall_ms = 1796594970000;
    return hub_new (&config, s_sleep, s_wake, calls);
}

static void
s_publish (hub_t *hub, const char *ns, const char *src, int64_t now)
{
    json_t *event = json_pack ("{s:s, s:s, s:s}", "namespace", ns, "type", "x", "src_id", src);
    hub_publish (hub, event, 1796594970000 + now, now);
    json_decref (event);
}

//  Everything queued on stream, as text (reads until it would sleep or end).
static char *
s_drain (hub_t *hub, hub_stream_t *stream, hub_read_t *last)
{
    zchunk_t *all = zchunk_new (NULL, 0);
    char buffer [100];
    size_t copied;
    hub_read_t result;
    while ((result = hub_read (hub, stream, buffer, sizeof buffer, &copied)) == HUB_DATA)
        zchunk_extend (all, buffer, copied);
    if (last)
        *last = result;
    char *text = zchunk_strdup (all);
    zchunk_destroy (&all);
    return text;
}

static int
s_count (const char *text, const char *what)
{
    int n = 0;
    for (const char *at = strstr (text, what); at; at = strstr (at + 1, what))
        n++;
    return n;
}

Test (console_hub, streams_get_ids_with_the_epoch_in_order_and_sleep_when_empty)
{
    s_calls_t calls = { 0 };
    hub_t *hub = s_hub (&calls, 100, 1 << 20, 0xabc);
    hub_stream_t *stream = hub_open (hub, NULL, NULL, (void *) 1, 0);
    hub_read_t last;
    char *text = s_drain (hub, stream, &last);
    cr_assert_eq (last, HUB_EMPTY);
    cr_assert_eq (calls.sleeps, 1);
    free (text);
    s_publish (hub, "connect", "r1", 1);
    cr_assert_eq (calls.wakes, 1, "data for a sleeping stream wakes it");
    s_publish (hub, "connect", "r2", 2);
    cr_assert_eq (calls.wakes, 1, "an awake stream is not woken again");
    text = s_drain (hub, stream, &last);
    cr_assert (strstr (text, "id: 0000000000000abc-1\ndata: {"), "%s", text);
    cr_assert (strstr (text, "id: 0000000000000abc-2\n"), "%s", text);
    cr_assert_lt (strstr (text, "-1\n"), strstr (text, "-2\n"));
    cr_assert_eq (hub_seq (hub), 2);
    free (text);
    hub_close (hub, &stream);
    cr_assert_eq (hub_streams (hub), 0);
    hub_destroy (&hub);
}

Test (console_hub, a_matcher_selects_what_a_stream_gets)
{
    s_calls_t calls = { 0 };
    hub_t *hub = s_hub (&calls, 100, 1 << 20, 7);
    ep_evmatch_t *match = ep_evmatch_new ();
    cr_assert_eq (ep_evmatch_parse (match, "src_id=r2", NULL, 0), 0);
    hub_stream_t *stream = hub_open (hub, match, NULL, (void *) 1, 0);
    s_publish (hub, "connect", "r1", 1);
    s_publish (hub, "connect", "r2", 2);
    char *text = s_drain (hub, stream, NULL);
    cr_assert_eq (s_count (text, "data: "), 1, "%s", text);
    cr_assert (strstr (text, "\"r2\""));
    free (text);
    hub_close (hub, &stream);
    hub_destroy (&hub);
}

Test (console_hub, a_slow_stream_is_dropped_at_its_bound_and_the_others_are_not)
{
    s_calls_t calls = { 0 };
    hub_t *hub = s_hub (&calls, 1000, 4096, 7);
    hub_stream_t *slow = hub_open (hub, NULL, NULL, (void *) 1, 0);
    hub_stream_t *fast = hub_open (hub, NULL, NULL, (void *) 2, 0);
    int taken = 0;
    for (int i = 0; i < 200; i++) {
        s_publish (hub, "connect", "r1", i);
        char *text = s_drain (hub, fast, NULL);
        taken += s_count (text, "data: {\"namespace\"");
        free (text);
    }
    cr_assert_eq (taken, 200, "the reading stream got every event");
    cr_assert_eq (hub_dropped (hub), 1);
    hub_read_t last;
    char *text = s_drain (hub, slow, &last);
    cr_assert (strstr (text, "event: dropped\ndata: {\"reason\":\"slow-reader\""), "%s", text);
    cr_assert_eq (s_count (text, "data: {\"namespace\""), 0, "the queue was freed at the bound");
    cr_assert_eq (last, HUB_END, "a dropped stream ends once its notice is read");
    free (text);
    hub_close (hub, &slow);
    hub_close (hub, &fast);
    hub_destroy (&hub);
}

//  A reader that has taken half an event when the bound is hit gets the
//  rest of that event, then the notice on its own: seen as one garbled
//  event and no notice when the queue was cut mid-event.
Test (console_hub, a_stream_dropped_mid_event_gets_that_event_whole_then_the_notice)
{
    s_calls_t calls = { 0 };
    hub_t *hub = s_hub (&calls, 1000, 4096, 7);
    hub_stream_t *slow = hub_open (hub, NULL, NULL, (void *) 1, 0);
    char *opening = s_drain (hub, slow, NULL);
    free (opening);
    s_publish (hub, "connect", "r1", 0);
    char half [20];
    size_t copied;
    cr_assert_eq (hub_read (hub, slow, half, sizeof half, &copied), HUB_DATA);
    cr_assert_eq (copied, sizeof half);
    for (int i = 1; hub_dropped (hub) == 0; i++)
        s_publish (hub, "connect", "r1", i);
    hub_read_t last;
    char *rest = s_drain (hub, slow, &last);
    char *text = zsys_sprintf ("%.*s%s", (int) copied, half, rest);
    cr_assert (strncmp (text, "id: ", 4) == 0, "%s", text);
    //  One whole event, then the notice, then the end.
    const char *notice = strstr (text, "\n\nevent: dropped\ndata: {\"reason\":\"slow-reader\"");
    cr_assert_not_null (notice, "the notice does not start on an event boundary: %s", text);
    cr_assert_eq (s_count (text, "data: {\"namespace\""), 1, "%s", text);
    cr_assert (strstr (text, "\"src_id\":\"r1\"}\n\n"), "the begun event is whole: %s", text);
    cr_assert_eq (last, HUB_END);
    free (text);
    free (rest);
    hub_close (hub, &slow);
    hub_destroy (&hub);
}

Test (console_hub, last_event_id_resumes_from_the_ring)
{
    s_calls_t calls = { 0 };
    hub_t *hub = s_hub (&calls, 100, 1 << 20, 0x10);
    for (int i = 0; i < 10; i++)
        s_publish (hub, "connect", "r1", i);
    hub_stream_t *stream = hub_open (hub, NULL, "0000000000000010-7", (void *) 1, 20);
    char *text = s_drain (hub, stream, NULL);
    cr_assert_eq (s_count (text, "data: {\"namespace\""), 3, "%s", text);
    cr_assert (strstr (text, "-8\n") && strstr (text, "-10\n"));
    cr_assert_null (strstr (text, "event: missed"));
    free (text);
    hub_close (hub, &stream);
    //  Up to date: nothing to replay.
    stream = hub_open (hub, NULL, "0000000000000010-10", (void *) 1, 20);
    text = s_drain (hub, stream, NULL);
    cr_assert_eq (s_count (text, "data: "), 0, "%s", text);
    free (text);
    hub_close (hub, &stream);
    hub_destroy (&hub);
}

Test (console_hub, a_resume_the_ring_cannot_serve_gets_a_missed_event_first)
{
    s_calls_t calls = { 0 };
    hub_t *hub = s_hub (&calls, 5, 1 << 20, 0x10);
    for (int i = 0; i < 20; i++)
        s_publish (hub, "connect", "r1", i);
    //  Too old: events 4..15 are gone (the ring holds 16..20).
    hub_stream_t *stream = hub_open (hub, NULL, "0000000000000010-3", (void *) 1, 30);
    char *text = s_drain (hub, stream, NULL);
    cr_assert (strstr (text, "event: missed\ndata: {\"missed\":12,\"exact\":true,\"reason\":\"too-old\""), "%s", text);
    cr_assert_eq (s_count (text, "data: {\"namespace\""), 5);
    cr_assert_lt (strstr (text, "event: missed"), strstr (text, "-16\n"));
    free (text);
    hub_close (hub, &stream);
    //  Another epoch: a restarted console; the count is what this one no
    //  longer holds, since it started.
    stream = hub_open (hub, NULL, "00000000000000ff-30000", (void *) 1, 30);
    text = s_drain (hub, stream, NULL);
    cr_assert (strstr (text, "\"missed\":15,\"exact\":false,\"reason\":\"restart\""), "%s", text);
    cr_assert (strstr (text, "\"since\":\"2026-"), "%s", text);
    cr_assert_eq (s_count (text, "data: {\"namespace\""), 5);
    free (text);
    hub_close (hub, &stream);
    //  Garbage: treated as unknown, never a crash.
    stream = hub_open (hub, NULL, "zz\n", (void *) 1, 30);
    text = s_drain (hub, stream, NULL);
    cr_assert (strstr (text, "\"reason\":\"unknown-id\""), "%s", text);
    free (text);
    hub_close (hub, &stream);
    hub_destroy (&hub);
}

//  "until" is a wall time even when the ring is empty (now is the tick
//  clock): a restarted console that took nothing yet says its own start.
Test (console_hub, a_missed_event_on_an_empty_ring_ends_at_a_wall_time)
{
    s_calls_t calls = { 0 };
    hub_t *hub = s_hub (&calls, 5, 1 << 20, 0x10);
    hub_stream_t *stream = hub_open (hub, NULL, "00000000000000ff-7", (void *) 1, 30);
    char *text = s_drain (hub, stream, NULL);
    cr_assert (strstr (text, "\"reason\":\"restart\""), "%s", text);
    cr_assert (strstr (text, "\"until\":\"2026-"), "%s", text);
    free (text);
    hub_close (hub, &stream);
    hub_destroy (&hub);
}

Test (console_hub, idle_streams_get_a_comment_each_keepalive)
{
    s_calls_t calls = { 0 };
    hub_t *hub = s_hub (&calls, 10, 1 << 20, 1);
    hub_stream_t *stream = hub_open (hub, NULL, NULL, (void *) 1, 0);
    free (s_drain (hub, stream, NULL));
    cr_assert_eq (hub_tick (hub, 500), 1000, "the next keepalive is due a period after the last write");
    cr_assert_eq (calls.wakes, 0);
    hub_tick (hub, 1000);
    cr_assert_eq (calls.wakes, 1);
    char *text = s_drain (hub, stream, NULL);
    cr_assert_str_eq (text, ": keepalive\n\n");
    free (text);
    hub_close (hub, &stream);
    hub_destroy (&hub);
}

Test (console_hub, shutdown_ends_every_stream)
{
    s_calls_t calls = { 0 };
    hub_t *hub = s_hub (&calls, 10, 1 << 20, 1);
    hub_stream_t *stream = hub_open (hub, NULL, NULL, (void *) 1, 0);
    free (s_drain (hub, stream, NULL));
    hub_shutdown (hub);
    cr_assert_eq (calls.wakes, 1);
    hub_read_t last;
    free (s_drain (hub, stream, &last));
    cr_assert_eq (last, HUB_END);
    hub_close (hub, &stream);
    hub_destroy (&hub);
}

Test (console_hub, last_event_ids_parse_strictly)
{
    uint64_t epoch, seq;
    cr_assert_eq (hub_parse_id ("00000000000000Ab-42", &epoch, &seq), 0);
    cr_assert_eq (epoch, 0xab);
    cr_assert_eq (seq, 42);
    const char *bad [] = { "", "1-2", "0000000000000000x42", "000000000000000g-1", "0000000000000001-",
                           "0000000000000001-1a", "0000000000000001-99999999999999999999999" };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++)
        cr_assert_eq (hub_parse_id (bad [i], &epoch, &seq), -1, "%s", bad [i]);
}
