/*  ep_evmatch.h: the one event matcher.

    `edgeplane events --filter FIELD=VALUE` and the console's
    /api/events?FIELD=VALUE select events the same way, through this: a set
    of conditions on the fields of an event's canonical JSON
    (ep_event_json: namespace, type, src_id, router_id, ...). An event
    matches when every field named has one of the values given for it:
    conditions on different fields AND, values repeated for one field OR.
    A value with commas is a list ("namespace=connect,stray"). A field
    absent from the event never matches; numbers and booleans compare by
    their JSON text (seq=12, connected=true). No condition: everything
    matches. Pure: no sockets, no clocks.
*/
#ifndef EP_EVMATCH_H_INCLUDED
#define EP_EVMATCH_H_INCLUDED

#include "ep_prelude.h"
#include <jansson.h>

typedef struct _ep_evmatch_t ep_evmatch_t;

//  Limits on what a caller (an HTTP query string) may ask for.
#define EP_EVMATCH_MAX_CONDITIONS   32      //  field=value pairs, list items counted
#define EP_EVMATCH_MAX_TEXT         256     //  bytes in a field name or a value

//  A matcher with no condition (matches everything).
ep_evmatch_t *
    ep_evmatch_new (void);

void
    ep_evmatch_destroy (ep_evmatch_t **self_p);

//  Adds the condition field = value (value may be a comma-separated list).
//  Returns 0, or -1 with a message for the user in err (empty or too long
//  field or value, a field that is not a name, too many conditions).
int
    ep_evmatch_add (ep_evmatch_t *self, const char *field, const char *value,
                    char *err, size_t errlen);

//  Adds "FIELD=VALUE" as typed on a command line. Returns 0 or -1 (err).
int
    ep_evmatch_parse (ep_evmatch_t *self, const char *text, char *err, size_t errlen);

//  True if event (an ep_event_json object) meets every condition.
bool
    ep_evmatch_match (ep_evmatch_t *self, json_t *event);

//  Number of fields with conditions.
size_t
    ep_evmatch_fields (ep_evmatch_t *self);

//  The values allowed for field (NULL if field has no condition), as a
//  list of strings the matcher owns: callers that can narrow a bus
//  subscription (namespace, type) read them.
zlistx_t *
    ep_evmatch_values (ep_evmatch_t *self, const char *field);

#endif
