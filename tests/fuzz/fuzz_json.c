/*  fuzz_json.c: JSON the project reads from files another process wrote
    (ready files, via ep_ready_read) and JSON it renders from decoded
    events; arbitrary bytes must give NULL or a value, never a crash. */
#include "ep_ready.h"
#include "ep_event_json.h"
#include <unistd.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    static char path [64];
    if (!*path)
        snprintf (path, sizeof path, "/tmp/fuzz-json-%d.ready", (int) getpid ());
    FILE *file = fopen (path, "wb");
    if (!file)
        return 0;
    fwrite (data, 1, size, file);
    fclose (file);
    json_t *ready = ep_ready_read (path);
    if (ready) {
        const char *endpoint = ep_ready_endpoint (ready, "api");
        if (endpoint) {
            char *local = ep_endpoint_connectable (endpoint);
            free (local);
        }
        json_decref (ready);
    }
    return 0;
}
