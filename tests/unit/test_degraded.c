/*  test_degraded.c: ep_degraded, the "disk full or failing" state: when it
    starts and ends, its probes, its metric and its events. */
#include <criterion/criterion.h>
#include "ep_degraded.h"

typedef struct {
    int events;                 //  service.degraded events sent
    char state [16];            //  the last one's state
    char reason [16];           //  and reason
} s_sink_t;

static void
s_publish (void *arg, const char *topic, Ep__Event *event)
{
    s_sink_t *sink = (s_sink_t *) arg;
    cr_assert_str_eq (topic, "service.degraded");
    cr_assert_eq (event->body_case, EP__EVENT__BODY_SERVICE);
    sink->events++;
    snprintf (sink->state, sizeof sink->state, "%s", event->service->state);
    snprintf (sink->reason, sizeof sink->reason, "%s", event->service->reason);
    cr_assert_str_eq (event->service->service, "model");
    cr_assert_str_eq (event->service->path, "/d/model.db");
}

Test (degraded, full_disk_starts_it_a_taken_write_ends_it_other_errors_do_neither)
{
    ep_metrics_t *metrics = ep_metrics_new ("test");
    s_sink_t sink = { 0 };
    ep_degraded_t *d = ep_degraded_new ("model", "/d/model.db", NULL, metrics, s_publish, &sink);
    ep_degraded_update (d, EP_STORE_FAULT_OTHER, "constraint", 0);
    cr_assert_not (ep_degraded_active (d));
    cr_assert_eq (ep_degraded_next (d, 0), INT64_MAX);
    cr_assert_not (ep_degraded_probe_due (d, 1000000));
    ep_degraded_update (d, EP_STORE_FAULT_NONE, NULL, 0);
    cr_assert_eq (sink.events, 0, "nothing to recover from");

    ep_degraded_update (d, EP_STORE_FAULT_FULL, "the disk is full", 1000);
    cr_assert (ep_degraded_active (d));
    cr_assert_str_eq (ep_degraded_message (d), "the disk is full");
    cr_assert_eq (sink.events, 1);
    cr_assert_str_eq (sink.state, "degraded");
    cr_assert_str_eq (sink.reason, "disk_full");
    char *page = ep_metrics_render (metrics);
    cr_assert (strstr (page, "edgeplane_store_degraded{reason=\"disk_full\"} 1"), "%s", page);
    free (page);
    //  The same state again is not a new event; another error is ignored.
    ep_degraded_update (d, EP_STORE_FAULT_FULL, "the disk is full", 1100);
    ep_degraded_update (d, EP_STORE_FAULT_OTHER, "constraint", 1100);
    cr_assert_eq (sink.events, 1);
    cr_assert (ep_degraded_active (d));
    //  Probes come on their period, each once.
    cr_assert_gt (ep_degraded_next (d, 1000), 0);
    cr_assert_not (ep_degraded_probe_due (d, 1000));
    int64_t due = 1000 + ep_degraded_next (d, 1000);
    cr_assert (ep_degraded_probe_due (d, due));
    cr_assert_not (ep_degraded_probe_due (d, due));
    //  Failing replaces full.
    ep_degraded_update (d, EP_STORE_FAULT_FAILING, "fsync failed", due);
    cr_assert_eq (ep_degraded_fault (d), EP_STORE_FAULT_FAILING);
    cr_assert_eq (sink.events, 2);
    cr_assert_str_eq (sink.reason, "disk_failing");
    page = ep_metrics_render (metrics);
    cr_assert (strstr (page, "edgeplane_store_degraded{reason=\"disk_full\"} 0"), "%s", page);
    cr_assert (strstr (page, "edgeplane_store_degraded{reason=\"disk_failing\"} 1"), "%s", page);
    free (page);
    //  A taken write ends it.
    ep_degraded_update (d, EP_STORE_FAULT_NONE, NULL, due + 1);
    cr_assert_not (ep_degraded_active (d));
    cr_assert_eq (sink.events, 3);
    cr_assert_str_eq (sink.state, "recovered");
    cr_assert_str_eq (sink.reason, "disk_failing");
    page = ep_metrics_render (metrics);
    cr_assert (strstr (page, "edgeplane_store_degraded{reason=\"disk_failing\"} 0"), "%s", page);
    free (page);
    ep_degraded_destroy (&d);
    ep_metrics_destroy (&metrics);
}
