/*  fuzz_console_http.c: what the console reads from an HTTP request, fed
    arbitrary bytes: the Host, Authorization and Cookie headers, the query
    string (event filters) and Last-Event-ID, NUL-separated in that order.
    Every input must give a status (200, 400 or 401) and, for a stream, a
    resume from the ring, never a crash or a leak. */
#include "web.h"
#include "hub.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
s_handle (void *arg, void *handle)
{
    (void) arg; (void) handle;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    char *copy = (char *) malloc (size + 1);
    memcpy (copy, data, size);
    copy [size] = 0;
    const char *fields [5] = { NULL, NULL, NULL, NULL, NULL };
    size_t n = 0;
    for (size_t i = 0; i <= size && n < 5; ) {
        fields [n++] = copy + i;
        i += strlen (copy + i) + 1;
    }
    static access_t *access;
    if (!access)
        access = access_new ("localhost,127.0.0.1,[::1],console.example", "0123456789abcdef0123456789abcdef");
    int status = web_check (access, fields [0], fields [1], fields [2], fields [3], fields [4]);
    if (status != 200 && status != 400 && status != 401)
        abort ();

    //  The same Last-Event-ID and filters against a ring of a few events.
    hub_config_t config;
    hub_config_defaults (&config);
    config.epoch = 0x10;
    config.ring_events = 4;
    hub_t *hub = hub_new (&config, s_handle, s_handle, NULL);
    for (int i = 0; i < 6; i++) {
        json_t *event = json_pack ("{s:s, s:s, s:i}", "namespace", "connect", "type", "x", "n", i);
        hub_publish (hub, event, 1796594970000, i);
        json_decref (event);
    }
    ep_evmatch_t *match = ep_evmatch_new ();
    if (fields [3]) {
        char *query = strdup (fields [3]), *save = NULL;
        for (char *pair = strtok_r (query, "&", &save); pair; pair = strtok_r (NULL, "&", &save)) {
            char *equals = strchr (pair, '=');
            if (equals)
                *equals = 0;
            ep_evmatch_add (match, pair, equals? equals + 1: "", NULL, 0);
        }
        free (query);
    }
    hub_stream_t *stream = hub_open (hub, match, fields [4], NULL, 10);
    char buffer [512];
    size_t copied;
    while (hub_read (hub, stream, buffer, sizeof buffer, &copied) == HUB_DATA)
        ;
    hub_close (hub, &stream);
    hub_destroy (&hub);
    free (copy);
    return 0;
}
