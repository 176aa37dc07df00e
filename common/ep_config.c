/*  ep_config.c: table-driven flags and environment variables.

    Parsing happens in two passes: argv is scanned first and only remembers
    which value each flag was given; then every option picks its winning
    value (flag, environment, default), checks it against its type, and
    stores it. So the error a user sees is always about the value that
    would have been used, and the order of flags never matters.
*/
#include "ep_config.h"
#include "ep_addr.h"
#include "ep_log.h"
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <strings.h>

#ifndef EP_VERSION
#   define EP_VERSION "dev"
#endif

//  One declared option and what the last parse did with it.
typedef struct {
    ep_opt_t opt;               //  the declaration, copied
    const char *given;          //  value from argv in this parse, or NULL
    const char *source;         //  "flag", "env", "default" or "derived"
    char *value;                //  owned copy of the stored string, or NULL
} s_entry_t;

struct _ep_config_t {
    char *program;              //  name used in messages and --help
    char *description;          //  one line for --help
    s_entry_t *entries;         //  declared options, in declaration order
    size_t count;               //  entries used
    size_t alloc;               //  entries allocated
    ep_args_mode_t args_mode;   //  whether positional arguments are accepted
    char *args_usage;           //  their names in --help, or NULL
    char **args;                //  positional arguments of the last parse
    int argc;                   //  how many
    ep_common_opts_t *common;   //  shared options to derive after parsing, or NULL
};

ep_config_t *
ep_config_new (const char *program, const char *description)
{
    EP_ASSERT (program);
    ep_config_t *self = (ep_config_t *) zmalloc (sizeof (ep_config_t));
    self->program = strdup (program);
    self->description = strdup (description ? description : "");
    self->args = (char **) zmalloc (sizeof (char *));
    EP_ASSERT (self->program && self->description && self->args);
    return self;
}

void
ep_config_destroy (ep_config_t **self_p)
{
    EP_ASSERT (self_p);
    ep_config_t *self = *self_p;
    if (self) {
        for (size_t i = 0; i < self->count; i++)
            free (self->entries [i].value);
        free (self->entries);
        free (self->args);
        free (self->args_usage);
        free (self->description);
        free (self->program);
        free (self);
        *self_p = NULL;
    }
}

static s_entry_t *
s_find (ep_config_t *self, const char *name, size_t len)
{
    for (size_t i = 0; i < self->count; i++) {
        const char *candidate = self->entries [i].opt.name;
        if (strlen (candidate) == len && strncmp (candidate, name, len) == 0)
            return &self->entries [i];
    }
    return NULL;
}

//  -------------------------------------------------------------------------
//  Values

int
ep_duration_parse (const char *text, int64_t *ms)
{
    if (!text || !*text)
        return -1;
    if (strcmp (text, "0") == 0) {
        *ms = 0;
        return 0;
    }
    int64_t total = 0;
    const char *p = text;
    while (*p) {
        if (!isdigit ((unsigned char) *p))
            return -1;
        int64_t n = 0;
        while (isdigit ((unsigned char) *p)) {
            if (n > (INT64_MAX - 9) / 10)
                return -1;
            n = n * 10 + (*p++ - '0');
        }
        int64_t unit;
        if (strncmp (p, "ms", 2) == 0) {
            unit = 1;
            p += 2;
        }
        else
        if (*p == 's' || *p == 'm' || *p == 'h') {
            unit = *p == 's' ? 1000 : *p == 'm' ? 60000 : 3600000;
            p++;
        }
        else
            return -1;          //  no unit: 30 what?
        if (n > (INT64_MAX - total) / unit)
            return -1;
        total += n * unit;
    }
    *ms = total;
    return 0;
}

//  A duration the way a user would write it, for messages.
static void
s_duration_format (int64_t ms, char *buf, size_t size)
{
    if (ms != 0 && ms % 3600000 == 0)
        snprintf (buf, size, "%" PRId64 "h", ms / 3600000);
    else
    if (ms != 0 && ms % 60000 == 0)
        snprintf (buf, size, "%" PRId64 "m", ms / 60000);
    else
    if (ms != 0 && ms % 1000 == 0)
        snprintf (buf, size, "%" PRId64 "s", ms / 1000);
    else
        snprintf (buf, size, "%" PRId64 "ms", ms);
}

static int
s_int_parse (const char *text, int64_t *value)
{
    if (!text || !(isdigit ((unsigned char) *text) || *text == '-' || *text == '+'))
        return -1;
    char *end;
    errno = 0;
    long long n = strtoll (text, &end, 10);
    if (errno || end == text || *end)
        return -1;
    *value = (int64_t) n;
    return 0;
}

//  host:port as every listener and dialer reads it (ep_addr); star_port
//  also allows "*" as the port (a ZeroMQ endpoint's kernel-chosen port).
static bool
s_hostport_valid (const char *text, bool star_port)
{
    ep_addr_t addr;
    size_t len = strlen (text);
    if (star_port && len > 2 && streq (text + len - 2, ":*")) {
        char *zero = zsys_sprintf ("%.*s:0", (int) (len - 2), text);
        bool valid = ep_addr_parse (&addr, zero, 0, NULL, 0) == 0;
        free (zero);
        return valid;
    }
    return ep_addr_parse (&addr, text, 0, NULL, 0) == 0;
}

static bool
s_endpoint_valid (const char *text)
{
    if (strncmp (text, "tcp://", 6) == 0)
        return s_hostport_valid (text + 6, true);
    if (strncmp (text, "ipc://", 6) == 0)
        return text [6] != 0;
    if (strncmp (text, "inproc://", 9) == 0)
        return text [9] != 0;
    return false;
}

//  "a,b,c": every element a valid endpoint, none empty.
static bool
s_endpoints_valid (const char *text)
{
    char *copy = strdup (text);
    bool valid = copy [0] != 0 && copy [strlen (copy) - 1] != ',';
    char *save = NULL;
    for (char *item = strtok_r (copy, ",", &save); valid && item; item = strtok_r (NULL, ",", &save))
        valid = s_endpoint_valid (item);
    valid = valid && !strstr (text, ",,") && text [0] != ',';
    free (copy);
    return valid;
}

static int
s_bool_parse (const char *text, bool *value)
{
    const char *yes [] = { "true", "yes", "on", "1" };
    const char *no [] = { "false", "no", "off", "0" };
    for (size_t i = 0; i < EP_COUNT (yes); i++) {
        if (strcasecmp (text, yes [i]) == 0) {
            *value = true;
            return 0;
        }
        if (strcasecmp (text, no [i]) == 0) {
            *value = false;
            return 0;
        }
    }
    return -1;
}

//  Checks text against opt's type. On success sets *num, *flag or *word
//  (the canonical text to store) and returns 0.
static int
s_convert (const ep_opt_t *opt, const char *text, int64_t *num, bool *flag,
           const char **word)
{
    bool bounded = opt->min < opt->max;
    *word = text;
    switch (opt->type) {
        case EP_OPT_STRING:
            return 0;
        case EP_OPT_INT:
            if (s_int_parse (text, num))
                return -1;
            return bounded && (*num < opt->min || *num > opt->max) ? -1 : 0;
        case EP_OPT_DURATION:
            if (ep_duration_parse (text, num))
                return -1;
            return bounded && (*num < opt->min || *num > opt->max) ? -1 : 0;
        case EP_OPT_BOOL:
            return s_bool_parse (text, flag);
        case EP_OPT_ENUM:
            for (size_t i = 0; opt->words [i]; i++)
                if (strcasecmp (text, opt->words [i]) == 0) {
                    *word = opt->words [i];
                    return 0;
                }
            return -1;
        case EP_OPT_ENDPOINT:
            return s_endpoint_valid (text) ? 0 : -1;
        case EP_OPT_ENDPOINTS:
            return s_endpoints_valid (text) ? 0 : -1;
        case EP_OPT_HOSTPORT:
            return s_hostport_valid (text, false) ? 0 : -1;
        case EP_OPT_ID:
            return ep_id_valid (text) ? 0 : -1;
    }
    return -1;
}

//  What a valid value looks like, for messages. Returns buf.
static char *
s_expected (const ep_opt_t *opt, char *buf, size_t size)
{
    bool bounded = opt->min < opt->max;
    switch (opt->type) {
        case EP_OPT_STRING:
            snprintf (buf, size, "any text");
            break;
        case EP_OPT_INT:
            if (bounded)
                snprintf (buf, size, "an integer from %" PRId64 " to %" PRId64,
                          opt->min, opt->max);
            else
                snprintf (buf, size, "an integer");
            break;
        case EP_OPT_DURATION:
            if (bounded) {
                char lo [32], hi [32];
                s_duration_format (opt->min, lo, sizeof lo);
                s_duration_format (opt->max, hi, sizeof hi);
                snprintf (buf, size, "a duration from %s to %s, such as 500ms, 30s or 2m",
                          lo, hi);
            }
            else
                snprintf (buf, size, "a duration such as 500ms, 30s or 2m");
            break;
        case EP_OPT_BOOL:
            snprintf (buf, size, "true or false");
            break;
        case EP_OPT_ENUM: {
            size_t len = (size_t) snprintf (buf, size, "one of");
            for (size_t i = 0; opt->words [i] && len < size; i++)
                len += (size_t) snprintf (buf + len, size - len, "%s %s",
                                          i ? "," : "", opt->words [i]);
            break;
        }
        case EP_OPT_ENDPOINT:
            snprintf (buf, size, "a ZeroMQ endpoint such as tcp://127.0.0.1:7001");
            break;
        case EP_OPT_ENDPOINTS:
            snprintf (buf, size, "ZeroMQ endpoints separated by commas, such as tcp://10.0.0.1:7001,tcp://10.0.0.2:7001");
            break;
        case EP_OPT_HOSTPORT:
            snprintf (buf, size, "host:port such as 127.0.0.1:9101 or [::1]:9101");
            break;
        case EP_OPT_ID:
            snprintf (buf, size, "an id of 1 to 64 letters, digits, '_' or '-'");
            break;
    }
    return buf;
}

//  What --help shows after the flag name.
static char *
s_metavar (const ep_opt_t *opt, char *buf, size_t size)
{
    switch (opt->type) {
        case EP_OPT_STRING:   snprintf (buf, size, " TEXT"); break;
        case EP_OPT_INT:      snprintf (buf, size, " N"); break;
        case EP_OPT_DURATION: snprintf (buf, size, " DURATION"); break;
        case EP_OPT_BOOL:     snprintf (buf, size, "[=BOOL]"); break;
        case EP_OPT_ENDPOINT: snprintf (buf, size, " ENDPOINT"); break;
        case EP_OPT_ENDPOINTS: snprintf (buf, size, " ENDPOINT[,...]"); break;
        case EP_OPT_HOSTPORT: snprintf (buf, size, " HOST:PORT"); break;
        case EP_OPT_ID:       snprintf (buf, size, " ID"); break;
        case EP_OPT_ENUM: {
            size_t len = 0;
            for (size_t i = 0; opt->words [i] && len < size; i++)
                len += (size_t) snprintf (buf + len, size - len, "%s%s",
                                          i ? "|" : " ", opt->words [i]);
            break;
        }
    }
    return buf;
}

//  -------------------------------------------------------------------------
//  Declaring

void
ep_config_add (ep_config_t *self, const ep_opt_t *opts, size_t count)
{
    EP_ASSERT (self);
    for (size_t i = 0; i < count; i++) {
        const ep_opt_t *opt = &opts [i];
        EP_ASSERT (opt->name && *opt->name && opt->name [0] != '-');
        EP_ASSERT (strcmp (opt->name, "help") != 0);
        EP_ASSERT (!s_find (self, opt->name, strlen (opt->name)));
        bool stringy = opt->type != EP_OPT_INT && opt->type != EP_OPT_DURATION
                    && opt->type != EP_OPT_BOOL;
        EP_ASSERT (!!opt->str == stringy);
        EP_ASSERT (!!opt->num == (opt->type == EP_OPT_INT || opt->type == EP_OPT_DURATION));
        EP_ASSERT (!!opt->flag == (opt->type == EP_OPT_BOOL));
        EP_ASSERT (opt->type != EP_OPT_ENUM || (opt->words && opt->words [0]));
        //  A default that its own type refuses is a bug in the table.
        int64_t num;
        bool flag;
        const char *word;
        EP_ASSERT (!opt->def || s_convert (opt, opt->def, &num, &flag, &word) == 0);

        if (self->count == self->alloc) {
            self->alloc = self->alloc ? self->alloc * 2 : 16;
            self->entries = (s_entry_t *) realloc (self->entries,
                                                   self->alloc * sizeof (s_entry_t));
            EP_ASSERT (self->entries);
        }
        s_entry_t *entry = &self->entries [self->count++];
        memset (entry, 0, sizeof *entry);
        entry->opt = *opt;
        entry->source = "default";
    }
}

void
ep_config_set_args (ep_config_t *self, ep_args_mode_t mode, const char *usage)
{
    EP_ASSERT (self);
    self->args_mode = mode;
    free (self->args_usage);
    self->args_usage = usage ? strdup (usage) : NULL;
}

//  -------------------------------------------------------------------------
//  Parsing

static void
s_error (ep_config_t *self, char *err, size_t errlen, const char *format, ...)
    __attribute__ ((format (printf, 4, 5)));

static void
s_error (ep_config_t *self, char *err, size_t errlen, const char *format, ...)
{
    if (!err || !errlen)
        return;
    int len = snprintf (err, errlen, "%s: ", self->program);
    if (len < 0 || (size_t) len >= errlen)
        return;
    va_list args;
    va_start (args, format);
    vsnprintf (err + len, errlen - (size_t) len, format, args);
    va_end (args);
}

static void
s_add_arg (ep_config_t *self, char *arg)
{
    self->args = (char **) realloc (self->args, (self->argc + 2) * sizeof (char *));
    EP_ASSERT (self->args);
    self->args [self->argc++] = arg;
    self->args [self->argc] = NULL;
}

//  First pass: remember each flag's value; collect positional arguments.
//  --help wins over any mistake on the same line, so the first error is
//  kept and reported only once the whole line is scanned.
static int
s_scan_argv (ep_config_t *self, int argc, char **argv, char *err, size_t errlen)
{
    bool failed = false;        //  an error is in err already
    bool only_args = false;     //  after "--", or after the first argument in STOP mode
    for (int i = 1; i < argc; i++) {
        char *arg = argv [i];
        bool is_flag = !only_args && arg [0] == '-' && arg [1] != 0;
        if (is_flag && strcmp (arg, "--") == 0) {
            only_args = true;
            continue;
        }
        if (is_flag && (strcmp (arg, "--help") == 0 || strcmp (arg, "-h") == 0))
            return 1;
        if (!is_flag) {
            if (self->args_mode == EP_ARGS_NONE) {
                if (!failed)
                    s_error (self, err, errlen,
                             "unexpected argument \"%s\" (this program takes none); see %s --help",
                             arg, self->program);
                failed = true;
                continue;
            }
            s_add_arg (self, arg);
            if (self->args_mode == EP_ARGS_STOP)
                only_args = true;
            continue;
        }
        const char *name = arg + 2;
        const char *eq = strchr (name, '=');
        size_t name_len = eq ? (size_t) (eq - name) : strlen (name);
        s_entry_t *entry = arg [1] == '-' ? s_find (self, name, name_len) : NULL;
        if (!entry) {
            if (!failed)
                s_error (self, err, errlen, "unknown option %.*s; see %s --help",
                         (int) (eq ? (size_t) (eq - arg) : strlen (arg)), arg, self->program);
            failed = true;
        }
        else
        if (eq)
            entry->given = eq + 1;
        else
        if (entry->opt.type == EP_OPT_BOOL)
            entry->given = "true";
        else
        if (i + 1 < argc)
            entry->given = argv [++i];
        else {
            char expected [256];
            if (!failed)
                s_error (self, err, errlen, "--%s needs a value: %s", entry->opt.name,
                         s_expected (&entry->opt, expected, sizeof expected));
            failed = true;
        }
    }
    return failed ? -1 : 0;
}

//  Second pass for one option: pick the winning value, check it, store it.
static int
s_resolve (ep_config_t *self, s_entry_t *entry, char *err, size_t errlen)
{
    const ep_opt_t *opt = &entry->opt;
    const char *env = opt->env ? getenv (opt->env) : NULL;
    const char *text = opt->def;
    entry->source = "default";
    if (entry->given) {
        text = entry->given;
        entry->source = "flag";
    }
    else
    if (env && *env) {
        text = env;
        entry->source = "env";
    }
    int64_t num = 0;
    bool flag = false;
    const char *word = NULL;
    if (text && s_convert (opt, text, &num, &flag, &word)) {
        char expected [256];
        s_expected (opt, expected, sizeof expected);
        if (opt->env)
            s_error (self, err, errlen, "invalid value \"%s\" for --%s (%s): expected %s",
                     text, opt->name, opt->env, expected);
        else
            s_error (self, err, errlen, "invalid value \"%s\" for --%s: expected %s",
                     text, opt->name, expected);
        return -1;
    }
    free (entry->value);
    entry->value = word ? strdup (word) : NULL;
    EP_ASSERT (!word || entry->value);
    if (opt->str)
        *opt->str = entry->value;
    if (opt->num)
        *opt->num = num;
    if (opt->flag)
        *opt->flag = flag;
    return 0;
}

//  Shared options whose defaults depend on other values or on chance.
static void
s_derive_common (ep_config_t *self)
{
    ep_common_opts_t *common = self->common;
    s_entry_t *keys = s_find (self, "keys-dir", strlen ("keys-dir"));
    EP_ASSERT (keys);
    if (!keys->value) {
        size_t len = strlen (common->data_dir);
        bool slash = len > 0 && common->data_dir [len - 1] == '/';
        keys->value = zsys_sprintf ("%s%skeys", common->data_dir, slash ? "" : "/");
        keys->source = "derived";
        common->keys_dir = keys->value;
    }
    s_entry_t *instance = s_find (self, "instance-id", strlen ("instance-id"));
    EP_ASSERT (instance);
    if (!instance->value) {
        instance->value = (char *) zmalloc (17);
        ep_random_hex (instance->value, 8);
        instance->source = "derived";
        common->instance_id = instance->value;
    }
}

int
ep_config_parse (ep_config_t *self, int argc, char **argv, char *err, size_t errlen)
{
    EP_ASSERT (self);
    if (err && errlen)
        err [0] = 0;
    for (size_t i = 0; i < self->count; i++)
        self->entries [i].given = NULL;
    self->argc = 0;
    self->args [0] = NULL;

    int rc = s_scan_argv (self, argc, argv, err, errlen);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < self->count; i++)
        if (s_resolve (self, &self->entries [i], err, errlen))
            return -1;
    if (self->common)
        s_derive_common (self);
    return 0;
}

void
ep_config_parse_or_exit (ep_config_t *self, int argc, char **argv)
{
    char err [1024];
    int rc = ep_config_parse (self, argc, argv, err, sizeof err);
    if (rc == 1) {
        char *help = ep_config_help (self);
        fputs (help, stdout);
        free (help);
        fflush (stdout);
        exit (0);
    }
    if (rc != 0) {
        fprintf (stderr, "%s\n", err);
        fflush (stderr);
        exit (2);
    }
}

char *
ep_config_help (ep_config_t *self)
{
    EP_ASSERT (self);
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    EP_ASSERT (out);
    fprintf (out, "%s %s: %s\n\n", self->program, EP_VERSION, self->description);
    fprintf (out, "Usage: %s [OPTIONS]%s%s\n\n", self->program,
             self->args_usage ? " " : "", self->args_usage ? self->args_usage : "");
    fprintf (out, "Each option can also be set by its environment variable;\n"
                  "a flag overrides the variable, which overrides the default.\n\n");
    fprintf (out, "Options:\n");
    for (size_t i = 0; i < self->count; i++) {
        const ep_opt_t *opt = &self->entries [i].opt;
        char metavar [256];
        s_metavar (opt, metavar, sizeof metavar);
        const char *def = opt->def_help ? opt->def_help : opt->def ? opt->def : "none";
        bool quote = !opt->def_help && opt->def && !*opt->def;
        fprintf (out, "  --%s%s  (%s%s%sdefault %s%s%s)\n", opt->name, metavar,
                 opt->env ? "env " : "", opt->env ? opt->env : "", opt->env ? ", " : "",
                 quote ? "\"" : "", def, quote ? "\"" : "");
        fprintf (out, "      %s\n", opt->help ? opt->help : "");
    }
    fprintf (out, "  -h, --help\n      Show this help and exit.\n");
    fclose (out);
    EP_ASSERT (text);
    return text;
}

int
ep_config_argc (ep_config_t *self)
{
    EP_ASSERT (self);
    return self->argc;
}

char **
ep_config_argv (ep_config_t *self)
{
    EP_ASSERT (self);
    return self->args;
}

const char *
ep_config_source (ep_config_t *self, const char *name)
{
    EP_ASSERT (self && name);
    s_entry_t *entry = s_find (self, name, strlen (name));
    return entry ? entry->source : NULL;
}

//  -------------------------------------------------------------------------
//  Shared options

void
ep_common_opts_add (ep_config_t *self, ep_common_opts_t *opts, const char *http_listen)
{
    EP_ASSERT (self && opts && !self->common);
    static const char *formats [] = { "text", "json", NULL };
    memset (opts, 0, sizeof *opts);
    ep_opt_t table [] = {
        { .name = "data-dir", .env = "EDGEPLANE_DATA_DIR", .def = "./edgeplane-data",
          .type = EP_OPT_STRING, .str = &opts->data_dir,
          .help = "Directory for databases, keys and the audit log." },
        { .name = "keys-dir", .env = "EDGEPLANE_KEYS_DIR",
          .def_help = "$EDGEPLANE_DATA_DIR/keys",
          .type = EP_OPT_STRING, .str = &opts->keys_dir,
          .help = "Directory for CURVE keys and TLS material." },
        { .name = "bus-pub", .env = "EDGEPLANE_BUS_PUB", .def = EP_DEFAULT_BUS_PUB,
          .type = EP_OPT_ENDPOINTS, .str = &opts->bus_pub,
          .help = "Where publishers reach the bus (several buses: a comma-separated list; each event goes to all)." },
        { .name = "bus-sub", .env = "EDGEPLANE_BUS_SUB", .def = EP_DEFAULT_BUS_SUB,
          .type = EP_OPT_ENDPOINTS, .str = &opts->bus_sub,
          .help = "Where subscribers reach the bus (several buses: a comma-separated list; duplicates are dropped)." },
        { .name = "model-api", .env = "EDGEPLANE_MODEL_API", .def = EP_DEFAULT_MODEL_API,
          .type = EP_OPT_ENDPOINTS, .str = &opts->model_api,
          .help = "Where the model service's API is reached (several instances: a comma-separated list to fail over)." },
        { .name = "terminators-api", .env = "EDGEPLANE_TERMINATORS_API",
          .def = EP_DEFAULT_TERMINATORS_API,
          .type = EP_OPT_ENDPOINTS, .str = &opts->terminators_api,
          .help = "Where the terminators service's API is reached." },
        { .name = "reaper-api", .env = "EDGEPLANE_REAPER_API", .def = EP_DEFAULT_REAPER_API,
          .type = EP_OPT_ENDPOINTS, .str = &opts->reaper_api,
          .help = "Where the reaper service's API is reached." },
        { .name = "watchdog-api", .env = "EDGEPLANE_WATCHDOG_API",
          .def = EP_DEFAULT_WATCHDOG_API,
          .type = EP_OPT_ENDPOINT, .str = &opts->watchdog_api,
          .help = "Where the watchdog service's API is reached." },
        { .name = "log-level", .env = "EDGEPLANE_LOG_LEVEL", .def = "info",
          .type = EP_OPT_ENUM, .words = ep_log_level_names, .str = &opts->log_level,
          .help = "Least severe level logged." },
        { .name = "log-format", .env = "EDGEPLANE_LOG_FORMAT", .def = "text",
          .type = EP_OPT_ENUM, .words = formats, .str = &opts->log_format,
          .help = "Log lines as text or as JSON objects." },
        { .name = "ready-file", .def_help = "none",
          .type = EP_OPT_STRING, .str = &opts->ready_file,
          .help = "Once ready, write the bound endpoints to this file as JSON." },
        { .name = "instance-id", .env = "EDGEPLANE_INSTANCE_ID", .def_help = "random",
          .type = EP_OPT_ID, .str = &opts->instance_id,
          .help = "This process's instance id in published streams." },
    };
    ep_config_add (self, table, EP_COUNT (table));
    if (http_listen) {
        ep_opt_t http = {
            .name = "http-listen", .env = "EDGEPLANE_HTTP_LISTEN", .def = http_listen,
            .type = EP_OPT_HOSTPORT, .str = &opts->http_listen,
            .help = "Address of /metrics, /healthz and /readyz."
        };
        ep_config_add (self, &http, 1);
    }
    self->common = opts;
}
