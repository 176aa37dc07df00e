/*  edgeplane events: subscribe to the bus and print one line per event.

      --namespace connect,stray   only these namespaces (default: all)
      --type router-to-ctrl       only this type (the topic after the namespace)
      --filter FIELD=VALUE        only events whose JSON field FIELD is VALUE
                                  (repeatable; common/ep_evmatch.h, as the console's
                                  /api/events?FIELD=VALUE)
      --json                      the canonical JSON (docs/events.md)
      --exec CMD                  run CMD (sh -c) per event, JSON on stdin
      --count N                   stop after N events

    Losses are never silent: a gap, a publisher restart or a silent
    publisher is printed on stderr as a line starting with "edgeplane
    events: LOST", "RESTART" or "SILENT".
*/
#include "cli.h"
#include "ep_event_json.h"
#include "ep_evmatch.h"
#include "ep_keys.h"
#include "ep_ready.h"
#include "ep_subscriber.h"
#include <sys/wait.h>
#include <unistd.h>

static void
s_on_report (void *arg, const ep_stream_report_t *report)
{
    (void) arg;
    switch (report->kind) {
        case EP_STREAM_GAP:
            fprintf (stderr, "edgeplane events: LOST %llu event(s) of stream %s from %s: seq %llu..%llu%s\n",
                     (unsigned long long) (report->to - report->from + 1), report->stream,
                     report->source_id, (unsigned long long) report->from,
                     (unsigned long long) report->to,
                     report->via_heartbeat? " (shown by its heartbeat)": "");
            break;
        case EP_STREAM_RESTART:
            fprintf (stderr, "edgeplane events: RESTART %s started a new epoch on stream %s\n",
                     report->source_id, report->stream);
            break;
        case EP_STREAM_SILENT:
            fprintf (stderr, "edgeplane events: SILENT no heartbeat from %s on stream %s\n",
                     report->source_id, report->stream);
            break;
        case EP_STREAM_RESUMED:
            fprintf (stderr, "edgeplane events: RESUMED %s on stream %s\n",
                     report->source_id, report->stream);
            break;
        case EP_STREAM_DUPLICATE:
            fprintf (stderr, "edgeplane events: DUPLICATE seq %llu of stream %s from %s (dropped)\n",
                     (unsigned long long) report->from, report->stream, report->source_id);
            break;
    }
    fflush (stderr);
}

//  Runs command with text on its stdin; returns its exit status or -1.
static int
s_exec (const char *command, const char *text)
{
    int fds [2];
    if (pipe (fds) != 0)
        return -1;
    pid_t pid = fork ();
    if (pid < 0) {
        close (fds [0]);
        close (fds [1]);
        return -1;
    }
    if (pid == 0) {
        dup2 (fds [0], 0);
        close (fds [0]);
        close (fds [1]);
        execl ("/bin/sh", "sh", "-c", command, (char *) NULL);
        _exit (127);
    }
    close (fds [0]);
    size_t len = strlen (text), done = 0;
    while (done < len) {
        ssize_t n = write (fds [1], text + done, len - done);
        if (n <= 0)
            break;          //  the command does not read its input: fine
        done += n;
    }
    close (fds [1]);
    int status;
    if (waitpid (pid, &status, 0) != pid)
        return -1;
    return WIFEXITED (status)? WEXITSTATUS (status): 128 + WTERMSIG (status);
}

//  Takes every "--filter FIELD=VALUE" (or "--filter=FIELD=VALUE") out of
//  argv into match, so the option can repeat (ep_config keeps one value per
//  option). Returns the new argc, or -1 after saying what is wrong.
static int
s_take_filters (int argc, char **argv, ep_evmatch_t *match)
{
    int kept = 0;
    for (int i = 0; i < argc; i++) {
        const char *text = NULL;
        if (streq (argv [i], "--filter")) {
            if (i + 1 >= argc)
                return cli_fail ("events", "--filter needs FIELD=VALUE, e.g. --filter src_id=demo-1"), -1;
            text = argv [++i];
        }
        else
        if (strncmp (argv [i], "--filter=", 9) == 0)
            text = argv [i] + 9;
        else
        if (streq (argv [i], "--")) {
            while (i < argc)
                argv [kept++] = argv [i++];
            break;
        }
        if (!text) {
            argv [kept++] = argv [i];
            continue;
        }
        char err [512];
        if (ep_evmatch_parse (match, text, err, sizeof err) != 0)
            return cli_fail ("events", "%s", err), -1;
    }
    return kept;
}

//  With --ready-file: once a heartbeat of every namespace asked for (of any
//  stream without --namespace) has arrived, the subscription is live at
//  the publishers; say so in the ready file. Events seen meanwhile are kept.
static int
s_ready (ep_subscriber_t *sub, const char *namespaces, const char *path, const char *bus)
{
    char *list = namespaces? strdup (namespaces): NULL;
    char *save = NULL;
    char *ns = list? strtok_r (list, ",", &save): NULL;
    int rc = 0;
    do {
        if (ep_subscriber_wait_stream (sub, ns, 30000) != 0) {
            rc = cli_fail ("events", "no heartbeat from %s within 30 s: is the bus running and does anything publish%s%s?",
                           bus, ns? " on ": "", ns? ns: "");
            break;
        }
    } while (ns && (ns = strtok_r (NULL, ",", &save)));
    free (list);
    if (rc == 0) {
        json_t *endpoints = json_pack ("{s:s}", "bus", bus);
        if (ep_ready_write (path, "events", endpoints) != 0)
            rc = cli_fail ("events", "cannot write the ready file %s", path);
        json_decref (endpoints);
    }
    return rc;
}

int
cli_events (int argc, char **argv)
{
    static char *namespaces, *type, *exec_cmd, *cert_path, *server_key_path;
    static bool json;
    static int64_t count;
    ep_opt_t opts [] = {
        { .name = "namespace", .type = EP_OPT_STRING, .str = &namespaces,
          .help = "Comma-separated namespaces to take (connect,stray,...); default all." },
        { .name = "type", .type = EP_OPT_STRING, .str = &type,
          .help = "Only events of this type (the topic after the namespace)." },
        { .name = "json", .def = "false", .type = EP_OPT_BOOL, .flag = &json,
          .help = "Print each event as one JSON object (docs/events.md)." },
        { .name = "exec", .type = EP_OPT_STRING, .str = &exec_cmd,
          .help = "Run this shell command for each event, with its JSON on stdin." },
        { .name = "count", .def = "0", .type = EP_OPT_INT, .num = &count, .min = 0, .max = INT64_MAX,
          .help = "Stop after this many events (0: until Ctrl-C)." },
        { .name = "cert", .type = EP_OPT_STRING, .str = &cert_path,
          .def_help = "$EDGEPLANE_KEYS_DIR/curve/subscriber.cert_secret",
          .help = "Our CURVE certificate (secret file), e.g. from `edgeplane pki issue-curve`." },
        { .name = "server-key", .type = EP_OPT_STRING, .str = &server_key_path,
          .def_help = "$EDGEPLANE_KEYS_DIR/curve/bus.cert",
          .help = "The bus public certificate." },
    };
    ep_evmatch_t *match = ep_evmatch_new ();
    argc = s_take_filters (argc, argv, match);
    if (argc < 0) {
        ep_evmatch_destroy (&match);
        return CLI_USAGE;
    }
    ep_common_opts_t common;
    ep_config_t *config = cli_parse ("events", "Subscribe to the event bus and print events.",
                                     NULL, &common, opts, EP_COUNT (opts), argc, argv);

    zcert_t *cert = cli_cert_load ("events", common.keys_dir, cert_path, "subscriber.cert_secret", "the certificate",
                                   "run `edgeplane pki init`, or pass --cert with one from `edgeplane pki issue-curve`");
    zcert_t *server = cert? cli_cert_load ("events", common.keys_dir, server_key_path, "bus.cert",
                                           "the bus public certificate",
                                           "pass --server-key (bus.cert from `edgeplane pki issue-curve`)"): NULL;
    char err [512] = "";
    if ((namespaces && ep_evmatch_add (match, "namespace", namespaces, err, sizeof err) != 0)
    ||  (type && ep_evmatch_add (match, "type", type, err, sizeof err) != 0)) {
        cli_fail ("events", "%s", err);
        zcert_destroy (&cert);
        zcert_destroy (&server);
        ep_config_destroy (&config);
        ep_evmatch_destroy (&match);
        return CLI_USAGE;
    }
    int rc = CLI_FAIL;
    ep_subscriber_t *sub = NULL;
    if (cert && server
    &&  !(sub = ep_subscriber_new (common.bus_sub, cert, zcert_public_txt (server),
                                   4u * 1024u * 1024u, s_on_report, NULL)))
        cli_fail ("events", "invalid bus address %s (EDGEPLANE_BUS_SUB)", common.bus_sub);
    if (sub) {
        if (namespaces) {
            char *list = strdup (namespaces);
            char *save = NULL;
            for (char *ns = strtok_r (list, ",", &save); ns; ns = strtok_r (NULL, ",", &save)) {
                char *prefix = zsys_sprintf ("%s.%s", ns, type? type: "");
                ep_subscriber_subscribe (sub, prefix);
                free (prefix);
            }
            free (list);
        }
        else
            ep_subscriber_subscribe (sub, "");
        rc = CLI_OK;
        if (common.ready_file)
            rc = s_ready (sub, namespaces, common.ready_file, common.bus_sub);
        int64_t seen = 0;
        while (rc == CLI_OK && !zsys_interrupted && (count == 0 || seen < count)) {
            char *topic = NULL;
            Ep__Event *event = ep_subscriber_recv (sub, 500, &topic);
            if (!event)
                continue;
            json_t *object = ep_event_json (topic, event);
            if (ep_evmatch_match (match, object)) {
                seen++;
                char *text = json_dumps (object, JSON_COMPACT);
                if (json)
                    printf ("%s\n", text);
                else {
                    char *line = ep_event_text (topic, event);
                    printf ("%s\n", line);
                    free (line);
                }
                fflush (stdout);
                if (exec_cmd) {
                    char *input = zsys_sprintf ("%s\n", text);
                    int status = s_exec (exec_cmd, input);
                    if (status != 0)
                        fprintf (stderr, "edgeplane events: --exec command failed (status %d) for %s seq %llu; continuing\n",
                                 status, topic, (unsigned long long) event->meta->seq);
                    free (input);
                }
                free (text);
            }
            json_decref (object);
            free (topic);
        }
    }
    ep_subscriber_destroy (&sub);
    zcert_destroy (&cert);
    zcert_destroy (&server);
    ep_config_destroy (&config);
    ep_evmatch_destroy (&match);
    return rc;
}
