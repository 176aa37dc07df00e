/*  test_defaults.c: out of the box nothing listens beyond 127.0.0.1. Every
    binary's --help lists its listen options with their defaults; each must
    be a loopback address (compose sets other addresses explicitly). */
#include <criterion/criterion.h>
#include "ep_test.h"

static void
s_check (const char *binary, int expected_listeners)
{
    char *cmd = zsys_sprintf ("'%s/%s' --help", EP_BIN_DIR, binary);
    char *out = NULL;
    if (ep_run (cmd, &out) == 127) {
        free (cmd);
        free (out);
        cr_skip_test ("%s is not built", binary);
    }
    int listeners = 0;
    char *save = NULL;
    for (char *line = strtok_r (out, "\n", &save); line; line = strtok_r (NULL, "\n", &save)) {
        if (!strstr (line, "listen") || !strstr (line, "default "))
            continue;
        listeners++;
        const char *value = strstr (line, "default ") + 8;
        bool loopback = strncmp (value, "127.", 4) == 0 || strncmp (value, "tcp://127.", 10) == 0;
        cr_assert (loopback, "%s: %s listens beyond loopback by default", binary, line);
    }
    cr_assert_geq (listeners, expected_listeners, "%s --help lists its listen addresses", binary);
    free (out);
    free (cmd);
}

Test (defaults, bus_listens_on_loopback)         { s_check ("edgeplane-bus", 3); }
Test (defaults, model_listens_on_loopback)       { s_check ("edgeplane-model", 2); }
Test (defaults, watchdog_listens_on_loopback)    { s_check ("edgeplane-watchdog", 3); }
Test (defaults, terminators_listen_on_loopback)  { s_check ("edgeplane-terminators", 2); }
Test (defaults, reaper_listens_on_loopback)      { s_check ("edgeplane-reaper", 2); }
