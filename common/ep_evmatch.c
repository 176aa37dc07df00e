/*  ep_evmatch.c: conditions on an event's JSON fields (see ep_evmatch.h). */
#include "ep_evmatch.h"

struct _ep_evmatch_t {
    zhashx_t *fields;           //  field name -> zlistx_t of allowed values (char *)
    size_t values;              //  values held, all fields together
};

static void
s_list_destroy (void **item)
{
    zlistx_t *list = (zlistx_t *) *item;
    zlistx_destroy (&list);
    *item = NULL;
}

ep_evmatch_t *
ep_evmatch_new (void)
{
    ep_evmatch_t *self = (ep_evmatch_t *) zmalloc (sizeof (ep_evmatch_t));
    self->fields = zhashx_new ();
    zhashx_set_destructor (self->fields, s_list_destroy);
    return self;
}

void
ep_evmatch_destroy (ep_evmatch_t **self_p)
{
    ep_evmatch_t *self = *self_p;
    if (self) {
        zhashx_destroy (&self->fields);
        free (self);
        *self_p = NULL;
    }
}

//  A field is a name: letters, digits, '_' and '-', as proto and JSON
//  names are; anything else is a typo or an attack, said at once.
static bool
s_is_name (const char *text)
{
    if (!*text)
        return false;
    for (const char *c = text; *c; c++)
        if (!(isalnum ((unsigned char) *c) || *c == '_' || *c == '-'))
            return false;
    return true;
}

int
ep_evmatch_add (ep_evmatch_t *self, const char *field, const char *value, char *err, size_t errlen)
{
    EP_ASSERT (self);
    if (!field || strlen (field) > EP_EVMATCH_MAX_TEXT || !s_is_name (field))
        return ep_errorf (err, errlen, "invalid filter field '%.64s': use an event field name such as "
                          "namespace, type or src_id (docs/events.md)", field? field: "");
    if (!value || !*value || strlen (value) > EP_EVMATCH_MAX_TEXT)
        return ep_errorf (err, errlen, "invalid value for filter field %s: give one of 1..%d bytes, "
                          "e.g. %s=demo-1", field, EP_EVMATCH_MAX_TEXT, field);
    zlistx_t *list = (zlistx_t *) zhashx_lookup (self->fields, field);
    bool created = !list;
    if (created) {
        list = zlistx_new ();
        zlistx_set_destructor (list, (czmq_destructor *) zstr_free);
        zlistx_set_duplicator (list, (czmq_duplicator *) strdup);
    }
    char *copy = strdup (value), *save = NULL;
    int rc = 0;
    for (char *item = strtok_r (copy, ",", &save); item && rc == 0; item = strtok_r (NULL, ",", &save)) {
        if (self->values >= EP_EVMATCH_MAX_CONDITIONS)
            rc = ep_errorf (err, errlen, "too many filter values (at most %d): narrow the filter",
                            EP_EVMATCH_MAX_CONDITIONS);
        else {
            zlistx_add_end (list, item);
            self->values++;
        }
    }
    free (copy);
    if (created && zlistx_size (list) == 0 && rc == 0)
        rc = ep_errorf (err, errlen, "invalid value for filter field %s: only commas", field);
    if (created) {
        if (rc == 0)
            zhashx_insert (self->fields, field, list);
        else
            zlistx_destroy (&list);
    }
    return rc;
}

int
ep_evmatch_parse (ep_evmatch_t *self, const char *text, char *err, size_t errlen)
{
    const char *equals = text? strchr (text, '='): NULL;
    if (!equals || equals == text)
        return ep_errorf (err, errlen, "invalid filter '%.64s': write FIELD=VALUE, e.g. src_id=demo-1",
                          text? text: "");
    size_t length = equals - text;
    if (length > EP_EVMATCH_MAX_TEXT)
        return ep_errorf (err, errlen, "invalid filter: the field name is longer than %d bytes",
                          EP_EVMATCH_MAX_TEXT);
    char field [EP_EVMATCH_MAX_TEXT + 1];
    memcpy (field, text, length);
    field [length] = 0;
    return ep_evmatch_add (self, field, equals + 1, err, errlen);
}

//  The text a JSON value compares as: strings as they are, integers,
//  reals and booleans as their JSON text. Returns NULL for objects, arrays
//  and null (never equal to a value typed by a user).
static const char *
s_text (json_t *value, char *buffer, size_t size)
{
    switch (json_typeof (value)) {
        case JSON_STRING:  return json_string_value (value);
        case JSON_INTEGER: snprintf (buffer, size, "%" JSON_INTEGER_FORMAT, json_integer_value (value));
                           return buffer;
        case JSON_REAL:    snprintf (buffer, size, "%.17g", json_real_value (value));
                           return buffer;
        case JSON_TRUE:    return "true";
        case JSON_FALSE:   return "false";
        default:           return NULL;
    }
}

bool
ep_evmatch_match (ep_evmatch_t *self, json_t *event)
{
    EP_ASSERT (self);
    for (zlistx_t *list = (zlistx_t *) zhashx_first (self->fields); list;
         list = (zlistx_t *) zhashx_next (self->fields)) {
        const char *field = (const char *) zhashx_cursor (self->fields);
        json_t *value = json_object_get (event, field);
        char buffer [64];
        const char *text = value? s_text (value, buffer, sizeof buffer): NULL;
        if (!text)
            return false;
        bool any = false;
        for (const char *want = (const char *) zlistx_first (list); want && !any;
             want = (const char *) zlistx_next (list))
            any = streq (want, text);
        if (!any)
            return false;
    }
    return true;
}

size_t
ep_evmatch_fields (ep_evmatch_t *self)
{
    EP_ASSERT (self);
    return zhashx_size (self->fields);
}

zlistx_t *
ep_evmatch_values (ep_evmatch_t *self, const char *field)
{
    EP_ASSERT (self);
    return (zlistx_t *) zhashx_lookup (self->fields, field);
}
