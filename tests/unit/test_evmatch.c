/*  test_evmatch.c: the one event matcher (common/ep_evmatch), which
    `edgeplane events --filter` and the console's /api/events share. */
#include <criterion/criterion.h>
#include "ep_evmatch.h"

static json_t *
s_event (void)
{
    return json_pack ("{s:s, s:s, s:s, s:s, s:b, s:I, s:o}", "namespace", "connect", "type", "router-to-ctrl",
                      "src_id", "demo-1", "src_addr", "127.0.0.1:5000", "connected", 1, "seq", (json_int_t) 12,
                      "routers", json_pack ("[s]", "demo-1"));
}

Test (evmatch, no_condition_matches_everything)
{
    ep_evmatch_t *match = ep_evmatch_new ();
    json_t *event = s_event ();
    cr_assert (ep_evmatch_match (match, event));
    cr_assert_eq (ep_evmatch_fields (match), 0);
    json_decref (event);
    ep_evmatch_destroy (&match);
    cr_assert_null (match);
}

Test (evmatch, fields_and_values_or_within_a_field)
{
    ep_evmatch_t *match = ep_evmatch_new ();
    json_t *event = s_event ();
    cr_assert_eq (ep_evmatch_parse (match, "src_id=demo-1", NULL, 0), 0);
    cr_assert (ep_evmatch_match (match, event));
    cr_assert_eq (ep_evmatch_add (match, "namespace", "stray,connect", NULL, 0), 0);
    cr_assert (ep_evmatch_match (match, event));
    cr_assert_eq (ep_evmatch_add (match, "type", "router-to-ctrl", NULL, 0), 0);
    cr_assert (ep_evmatch_match (match, event));
    //  A second condition on another field that fails: AND.
    cr_assert_eq (ep_evmatch_add (match, "src_addr", "10.0.0.1:1", NULL, 0), 0);
    cr_assert_not (ep_evmatch_match (match, event));
    //  Another value for that field: OR.
    cr_assert_eq (ep_evmatch_add (match, "src_addr", "127.0.0.1:5000", NULL, 0), 0);
    cr_assert (ep_evmatch_match (match, event));
    cr_assert_eq (zlistx_size (ep_evmatch_values (match, "namespace")), 2);
    cr_assert_null (ep_evmatch_values (match, "dst_id"));
    json_decref (event);
    ep_evmatch_destroy (&match);
}

Test (evmatch, numbers_and_booleans_compare_as_json_text)
{
    ep_evmatch_t *match = ep_evmatch_new ();
    json_t *event = s_event ();
    cr_assert_eq (ep_evmatch_parse (match, "seq=12", NULL, 0), 0);
    cr_assert_eq (ep_evmatch_parse (match, "connected=true", NULL, 0), 0);
    cr_assert (ep_evmatch_match (match, event));
    ep_evmatch_destroy (&match);
    match = ep_evmatch_new ();
    cr_assert_eq (ep_evmatch_parse (match, "connected=false", NULL, 0), 0);
    cr_assert_not (ep_evmatch_match (match, event));
    json_decref (event);
    ep_evmatch_destroy (&match);
}

Test (evmatch, absent_fields_and_arrays_never_match)
{
    ep_evmatch_t *match = ep_evmatch_new ();
    json_t *event = s_event ();
    cr_assert_eq (ep_evmatch_parse (match, "router_id=demo-1", NULL, 0), 0);
    cr_assert_not (ep_evmatch_match (match, event));
    ep_evmatch_destroy (&match);
    match = ep_evmatch_new ();
    cr_assert_eq (ep_evmatch_parse (match, "routers=demo-1", NULL, 0), 0);
    cr_assert_not (ep_evmatch_match (match, event));
    json_decref (event);
    ep_evmatch_destroy (&match);
}

Test (evmatch, bad_conditions_are_refused_with_a_message)
{
    ep_evmatch_t *match = ep_evmatch_new ();
    char err [256] = "";
    cr_assert_eq (ep_evmatch_parse (match, "src_id", err, sizeof err), -1);
    cr_assert (strstr (err, "FIELD=VALUE"), "%s", err);
    cr_assert_eq (ep_evmatch_parse (match, "=x", err, sizeof err), -1);
    cr_assert_eq (ep_evmatch_parse (match, "src id=x", err, sizeof err), -1);
    cr_assert (strstr (err, "field"), "%s", err);
    cr_assert_eq (ep_evmatch_parse (match, "src_id=", err, sizeof err), -1);
    cr_assert_eq (ep_evmatch_add (match, "src_id", ",,,", err, sizeof err), -1);
    char big [400];
    memset (big, 'a', sizeof big - 1);
    big [sizeof big - 1] = 0;
    cr_assert_eq (ep_evmatch_add (match, "src_id", big, err, sizeof err), -1);
    cr_assert_eq (ep_evmatch_add (match, big, "x", err, sizeof err), -1);
    cr_assert_eq (ep_evmatch_fields (match), 0, "a refused condition leaves nothing behind");
    for (int i = 0; i < EP_EVMATCH_MAX_CONDITIONS; i++)
        cr_assert_eq (ep_evmatch_add (match, "src_id", "x", NULL, 0), 0);
    cr_assert_eq (ep_evmatch_add (match, "src_id", "y", err, sizeof err), -1);
    cr_assert (strstr (err, "too many"), "%s", err);
    ep_evmatch_destroy (&match);
}
