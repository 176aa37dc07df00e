/*  edgeplane console url: where the console is, and its access token.

    The address is the one a running console wrote in its ready file
    (<data>/run/console.ready, as `edgeplane up` starts it), else
    EDGEPLANE_CONSOLE_LISTEN, else the default 127.0.0.1:8080. The token
    (<keys>/console.token, made by `edgeplane pki init`) is printed on its
    own line, never in the URL: the page exchanges it once for a cookie.
    --token prints the token alone, for scripts (curl -H "Authorization:
    Bearer $(edgeplane console url --token)").
*/
#include "cli.h"
#include "ep_ready.h"
#include <errno.h>

//  The console's URL (caller frees).
static char *
s_url (const ep_common_opts_t *common)
{
    char *path = zsys_sprintf ("%s/run/console.ready", common->data_dir);
    json_t *ready = ep_ready_read (path);
    free (path);
    const char *http = ready? ep_ready_endpoint (ready, "http"): NULL;
    char *url = NULL;
    if (http)
        url = strdup (http);
    else {
        const char *listen = getenv ("EDGEPLANE_CONSOLE_LISTEN");
        if (!listen)
            listen = EP_HTTP_LISTEN_CONSOLE;
        if (strncmp (listen, "*:", 2) == 0 || strncmp (listen, "0.0.0.0:", 8) == 0)
            url = zsys_sprintf ("http://127.0.0.1:%s", strrchr (listen, ':') + 1);
        else
        if (strncmp (listen, "[::]:", 5) == 0)
            url = zsys_sprintf ("http://[::1]:%s", listen + 5);
        else
            url = zsys_sprintf ("http://%s", listen);
    }
    json_decref (ready);
    return url;
}

int
cli_console (int argc, char **argv)
{
    static bool token_only;
    ep_opt_t opts [] = {
        { .name = "token", .def = "false", .type = EP_OPT_BOOL, .flag = &token_only,
          .help = "Print only the access token." },
    };
    ep_common_opts_t common;
    ep_config_t *config = cli_parse ("console", "Where the operator console is, and its access token.",
                                     "url [--token]", &common, opts, EP_COUNT (opts), argc, argv);
    int rc = CLI_OK;
    if (ep_config_argc (config) != 1 || !streq (ep_config_argv (config) [0], "url")) {
        cli_fail ("console", "expected `edgeplane console url`");
        rc = CLI_USAGE;
    }
    char *path = zsys_sprintf ("%s/console.token", common.keys_dir);
    char token [160] = "";
    if (rc == CLI_OK) {
        FILE *file = fopen (path, "r");
        if (!file || !fgets (token, sizeof token, file))
            rc = cli_fail ("console", "cannot read the console token %s: %s; run `edgeplane pki init`",
                           path, file? "empty file": strerror (errno));
        if (file)
            fclose (file);
        token [strcspn (token, "\r\n")] = 0;
    }
    if (rc == CLI_OK && token_only)
        printf ("%s\n", token);
    else
    if (rc == CLI_OK) {
        char *url = s_url (&common);
        printf ("%s/\ntoken: %s\n", url, token);
        printf ("(on a loopback address no token is asked; elsewhere paste it into the page's login, "
                "or send it as Authorization: Bearer)\n");
        free (url);
    }
    free (path);
    ep_config_destroy (&config);
    return rc;
}
