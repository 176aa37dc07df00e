/*  ep_ready.c: atomic ready files. */
#include "ep_ready.h"
#include "ep_file.h"

int
ep_ready_write (const char *path, const char *service, json_t *endpoints)
{
    json_t *doc = json_pack ("{s:s, s:I, s:O}",
                             "service", service,
                             "pid", (json_int_t) getpid (),
                             "endpoints", endpoints);
    if (!doc)
        return -1;
    char *text = json_dumps (doc, JSON_SORT_KEYS);
    json_decref (doc);
    if (!text)
        return -1;

    char *line = zsys_sprintf ("%s\n", text);
    int rc = ep_file_write (path, line, strlen (line), 0644, true, NULL, 0);
    free (line);
    free (text);
    return rc;
}

json_t *
ep_ready_read (const char *path)
{
    json_error_t error;
    json_t *doc = json_load_file (path, 0, &error);
    if (doc && !json_is_object (json_object_get (doc, "endpoints"))) {
        json_decref (doc);
        doc = NULL;
    }
    return doc;
}

const char *
ep_ready_endpoint (json_t *ready, const char *name)
{
    return json_string_value (json_object_get (json_object_get (ready, "endpoints"), name));
}

char *
ep_endpoint_connectable (const char *bound)
{
    const char *wild [] = { "tcp://0.0.0.0:", "tcp://*:", "tcp://[::]:" };
    const char *loopback [] = { "127.0.0.1", "127.0.0.1", "[::1]" };
    for (size_t i = 0; i < EP_COUNT (wild); i++) {
        size_t n = strlen (wild [i]);
        if (strncmp (bound, wild [i], n) == 0)
            return zsys_sprintf ("tcp://%s:%s", loopback [i], bound + n);
    }
    return strdup (bound);
}
