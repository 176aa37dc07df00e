/*  fuzz_config.c: the flag parser, fed arbitrary command lines. Every type
    of option is declared; any argv must give 0, 1 (help) or -1 with a
    message, never a crash or an exit. */
#include "ep_config.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    //  NUL-separated tokens become argv.
    char *copy = (char *) malloc (size + 1);
    memcpy (copy, data, size);
    copy [size] = 0;
    char *argv [64];
    int argc = 0;
    argv [argc++] = "fuzz";
    for (size_t i = 0; i < size && argc < 63; ) {
        argv [argc++] = copy + i;
        i += strlen (copy + i) + 1;
    }
    argv [argc] = NULL;
    static char *text, *word, *endpoint, *hostport, *id;
    static int64_t number, duration;
    static bool flag;
    static const char *words [] = { "none", "log", "disconnect", NULL };
    ep_opt_t opts [] = {
        { .name = "text", .type = EP_OPT_STRING, .str = &text, .help = "t" },
        { .name = "number", .def = "5", .type = EP_OPT_INT, .num = &number, .min = 0, .max = 100, .help = "n" },
        { .name = "duration", .def = "30s", .type = EP_OPT_DURATION, .num = &duration, .help = "d" },
        { .name = "flag", .def = "false", .type = EP_OPT_BOOL, .flag = &flag, .help = "f" },
        { .name = "word", .def = "log", .type = EP_OPT_ENUM, .words = words, .str = &word, .help = "w" },
        { .name = "endpoint", .def = "tcp://127.0.0.1:1", .type = EP_OPT_ENDPOINT, .str = &endpoint, .help = "e" },
        { .name = "hostport", .def = "127.0.0.1:2", .type = EP_OPT_HOSTPORT, .str = &hostport, .help = "h" },
        { .name = "id", .type = EP_OPT_ID, .str = &id, .help = "i" },
    };
    ep_config_t *config = ep_config_new ("fuzz", "fuzzing");
    ep_common_opts_t common;
    ep_common_opts_add (config, &common, "127.0.0.1:9999");
    ep_config_add (config, opts, EP_COUNT (opts));
    ep_config_set_args (config, (ep_args_mode_t) (size % 3), "ARGS");
    char err [512];
    int rc = ep_config_parse (config, argc, argv, err, sizeof err);
    EP_ASSERT (rc == 0 || rc == 1 || (rc == -1 && err [0]));
    ep_config_destroy (&config);
    free (copy);
    return 0;
}
