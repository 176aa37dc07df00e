/*  edgeplane router|service|identity|controller create|get|list|update|delete,
    edgeplane model status|txn FILE and edgeplane backup FILE: the model
    service's API from the command line.

    Each command is one ModelRequest (list: one per page) sent with the rpc
    client under the operator's CURVE certificate. A timed-out attempt is
    resent with the same request id, which the model answers from its reply
    cache, so a retried create or update is applied once. Output is an
    aligned table, or with --json the entities as ep_message_json renders
    them (the proto field names, as in docs/model.md). Failures print the
    reply's status in one line and exit 1; usage errors exit 2.
*/
#include "cli_rpc.h"
#include "cli_table.h"
#include "ep_event_json.h"
#include "model.pb-c.h"
#include <ctype.h>
#include <errno.h>
#include <unistd.h>

//  The flags a subcommand may take; which ones depends on the verb and
//  the kind (s_kind_t.flags & s_verb_t.flags).
#define F_NAME          0x001       //  --name (create, update)
#define F_DISABLED      0x002       //  --disabled
#define F_HOST          0x004       //  --host, repeatable (routers)
#define F_TAG           0x008       //  --tag, repeatable
#define F_ADDRESS       0x010       //  --address (controllers)
#define F_EXPECTED      0x020       //  --expected-version
#define F_CLEAR_HOSTED  0x040       //  --clear-hosted (routers)
#define F_CLEAR_TAGS    0x080       //  --clear-tags
#define F_NAME_FILTER   0x100       //  list --name
#define F_TAG_FILTER    0x200       //  list --tag, repeatable
#define F_HOSTS         0x400       //  list --hosts (routers)
#define F_LIMIT         0x800       //  list --limit
#define F_EXIST_OK      0x1000      //  create --exist-ok
#define F_COUNT         0x2000      //  create --count, --prefix
#define F_WAIT          0x4000      //  router delete --wait, --wait-timeout
#define F_CRITICALITY   0x8000      //  --criticality (services)
#define F_DIGEST        0x10000     //  model status --digest

//  Entities per list request: the service's default page.
#define PAGE_SIZE       100

//  One entity kind: its command word and what it has.
typedef struct {
    const char *word;           //  command word, as in messages: "router"
    const char *plural;         //  "routers"
    Ep__EntityType type;        //  the model's type
    Ep__Entity__KindCase kind_case; //  its case in the Entity oneof
    unsigned flags;             //  F_* this kind has at all
} s_kind_t;

static const s_kind_t s_kinds [] = {
    { "router", "routers", EP__ENTITY_TYPE__ENTITY_ROUTER, EP__ENTITY__KIND_ROUTER,
      F_NAME | F_DISABLED | F_HOST | F_TAG | F_EXPECTED | F_CLEAR_HOSTED | F_CLEAR_TAGS
      | F_NAME_FILTER | F_TAG_FILTER | F_HOSTS | F_LIMIT | F_EXIST_OK | F_COUNT | F_WAIT },
    { "service", "services", EP__ENTITY_TYPE__ENTITY_SERVICE, EP__ENTITY__KIND_SERVICE,
      F_NAME | F_DISABLED | F_TAG | F_EXPECTED | F_CLEAR_TAGS | F_NAME_FILTER | F_TAG_FILTER | F_LIMIT
      | F_EXIST_OK | F_COUNT | F_CRITICALITY },
    { "identity", "identities", EP__ENTITY_TYPE__ENTITY_IDENTITY, EP__ENTITY__KIND_IDENTITY,
      F_NAME | F_DISABLED | F_TAG | F_EXPECTED | F_CLEAR_TAGS | F_NAME_FILTER | F_TAG_FILTER | F_LIMIT
      | F_EXIST_OK | F_COUNT },
    { "controller", "controllers", EP__ENTITY_TYPE__ENTITY_CONTROLLER, EP__ENTITY__KIND_CONTROLLER,
      F_ADDRESS | F_EXPECTED | F_LIMIT | F_EXIST_OK },
};

//  Controllers have no generated ids: a controller is a cluster member.
static const char *s_controller_create =
    "Create a controller (a cluster member) with its control-channel --address.";

//  Terminator precedence words, indexed by Ep__Precedence.
static const char *s_precedences [] = { "default", "required", "failed", NULL };

//  Service criticality words, indexed by Ep__Criticality; the flag's list
//  (s_criticality_words) is in cleanup order, as --help shows it.
static const char *s_criticalities [] = { "normal", "low", "high", "critical", NULL };
static const char *s_criticality_words [] = { "critical", "high", "normal", "low", NULL };

static const cli_service_t s_model = {
    "the model", "model", "--model-api", "EDGEPLANE_MODEL_API", "The model service's public certificate.",
    "Attempts before giving up (a retry is applied once)." };

//  One parsed invocation: the command's flags and the connection.
typedef struct {
    const s_kind_t *kind;       //  entity kind, NULL for backup
    char command [64];          //  "router create", for messages
    ep_config_t *config;        //  the parser; owns the flags' strings
    ep_common_opts_t common;    //  shared options (keys dir, model API, ...)
    cli_rpc_flags_t rpc_flags;  //  --cert, --server-key, --timeout, --attempts
    bool json;                  //  --json
    char *name;                 //  --name
    bool disabled;              //  --disabled
    char *address;              //  --address
    char *criticality;          //  --criticality: a word of s_criticalities, NULL if not given
    int64_t expected_version;   //  --expected-version, 0 = unconditional
    bool clear_hosted;          //  --clear-hosted
    bool clear_tags;            //  --clear-tags
    char *hosts_service;        //  list --hosts
    int64_t limit;              //  list --limit, 0 = all
    bool exist_ok;              //  create --exist-ok
    int64_t count;              //  create --count, 0 = one entity
    char *prefix;               //  create --prefix (with --count)
    bool tolerate_exists;       //  s_call hands back ALREADY_EXISTS replies silently
    bool wait;                  //  router delete --wait
    bool digest;                //  model status --digest
    int64_t wait_timeout;       //  router delete --wait-timeout
    char *unused;               //  target of --host and --tag in the table: they are
                                //  taken out of argv before parsing (see s_take_lists)
    zlistx_t *hosts;            //  --host values, in order (argv's strings)
    zlistx_t *tags;             //  --tag values, in order (argv's strings)
    Ep__HostedService *hosted;  //  the parsed --host values
    Ep__HostedService **hosted_p;   //  pointers to them, for the message
    Ep__Tag *tag_items;         //  the parsed --tag values (keys allocated)
    Ep__Tag **tags_p;           //  pointers to them, for the message
    cli_rpc_t *rpc;             //  to the model (connects on its first call)
} s_cmd_t;

//  One subcommand of an entity kind.
typedef struct {
    const char *word;           //  "create"
    int (*run) (s_cmd_t *self, char **args);    //  runs it; args: the positional ones
    unsigned flags;             //  F_* it takes (masked by the kind's)
    int min_args;               //  positional arguments: at least
    int max_args;               //  and at most
    const char *usage;          //  positional usage for --help, NULL for none
    const char *description;    //  one line; %s is the kind's word (or plural)
    bool plural;                //  description takes the plural
} s_verb_t;

static void
s_cmd_destroy (s_cmd_t *self)
{
    cli_rpc_destroy (&self->rpc);
    for (size_t i = 0; self->tag_items && i < zlistx_size (self->tags); i++)
        free (self->tag_items [i].key);
    for (size_t i = 0; self->hosted && i < zlistx_size (self->hosts); i++)
        free (self->hosted [i].service_id);
    free (self->tag_items);
    free (self->tags_p);
    free (self->hosted);
    free (self->hosted_p);
    zlistx_destroy (&self->hosts);
    zlistx_destroy (&self->tags);
    ep_config_destroy (&self->config);
}

//  The options table for the flags in want, plus those every model command
//  takes. Returns how many were written to opts (room for 32).
static size_t
s_options (s_cmd_t *self, unsigned want, ep_opt_t *opts)
{
    const struct { unsigned flag; ep_opt_t opt; } all [] = {
        { F_NAME, { .name = "name", .type = EP_OPT_STRING, .str = &self->name,
          .help = "Display name (create: the id when not given)." } },
        { F_DISABLED, { .name = "disabled", .def = "false", .type = EP_OPT_BOOL, .flag = &self->disabled,
          .help = "Disabled (a disabled router is refused at join); update: --disabled=false enables." } },
        { F_HOST, { .name = "host", .type = EP_OPT_STRING, .str = &self->unused,
          .def_help = "none; repeatable",
          .help = "A hosted service SERVICE[:COST[:default|required|failed]]; update: replaces the list." } },
        { F_TAG, { .name = "tag", .type = EP_OPT_STRING, .str = &self->unused,
          .def_help = "none; repeatable",
          .help = "A tag KEY=VALUE; update: replaces the tags." } },
        { F_CRITICALITY, { .name = "criticality", .type = EP_OPT_ENUM, .words = s_criticality_words,
          .str = &self->criticality, .def_help = "create: normal; update: unchanged",
          .help = "How much the service matters: a cleanup closes the sessions of critical services"
                  " first, then high, normal, low." } },
        { F_ADDRESS, { .name = "address", .type = EP_OPT_HOSTPORT, .str = &self->address,
          .help = "The controller's control-channel address HOST:PORT." } },
        { F_CLEAR_HOSTED, { .name = "clear-hosted", .def = "false", .type = EP_OPT_BOOL,
          .flag = &self->clear_hosted, .help = "Empty the hosted list." } },
        { F_CLEAR_TAGS, { .name = "clear-tags", .def = "false", .type = EP_OPT_BOOL,
          .flag = &self->clear_tags, .help = "Remove every tag." } },
        { F_EXPECTED, { .name = "expected-version", .def = "0", .type = EP_OPT_INT,
          .num = &self->expected_version, .min = 0, .max = INT64_MAX,
          .help = "Only if the entity is still at this version (compare-and-swap); 0: always." } },
        { F_NAME_FILTER, { .name = "name", .type = EP_OPT_STRING, .str = &self->name,
          .help = "Only entities with exactly this name." } },
        { F_TAG_FILTER, { .name = "tag", .type = EP_OPT_STRING, .str = &self->unused,
          .def_help = "none; repeatable",
          .help = "Only entities with this tag KEY=VALUE (all given must match)." } },
        { F_HOSTS, { .name = "hosts", .type = EP_OPT_ID, .str = &self->hosts_service,
          .help = "Only routers that host this service id." } },
        { F_LIMIT, { .name = "limit", .def = "0", .type = EP_OPT_INT, .num = &self->limit,
          .min = 0, .max = INT64_MAX, .help = "At most this many (0: all, every page)." } },
        { F_EXIST_OK, { .name = "exist-ok", .def = "false", .type = EP_OPT_BOOL, .flag = &self->exist_ok,
          .help = "An id that exists already is not an error: the existing entity is printed, unchanged." } },
        { F_COUNT, { .name = "count", .def = "0", .type = EP_OPT_INT, .num = &self->count,
          .min = 0, .max = 100000, .help = "Create this many, ids <prefix>0 .. <prefix>N-1 (one write each)." } },
        { F_COUNT, { .name = "prefix", .type = EP_OPT_STRING, .str = &self->prefix,
          .def_help = "the kind and a dash, e.g. router-", .help = "Id prefix for --count." } },
        { F_DIGEST, { .name = "digest", .def = "false", .type = EP_OPT_BOOL, .flag = &self->digest,
          .help = "Also the digest of every entity (BLAKE2b, as followers compute it over their copy; "
                  "reads the whole model)." } },
        { F_WAIT, { .name = "wait", .def = "false", .type = EP_OPT_BOOL, .flag = &self->wait,
          .help = "Wait until the reaper has closed the router's sessions; print the counts by reason." } },
        { F_WAIT, { .name = "wait-timeout", .def = "5m", .type = EP_OPT_DURATION, .num = &self->wait_timeout,
          .min = 1, .max = INT64_MAX, .help = "With --wait: give up (exit 1) after this." } },
    };
    size_t count = 0;
    for (size_t i = 0; i < EP_COUNT (all); i++)
        if (all [i].flag & want)
            opts [count++] = all [i].opt;
    const ep_opt_t every [] = {
        { .name = "json", .def = "false", .type = EP_OPT_BOOL, .flag = &self->json,
          .help = "Print JSON (entities by their proto field names) instead of a table." },
    };
    for (size_t i = 0; i < EP_COUNT (every); i++)
        opts [count++] = every [i];
    return count + cli_rpc_options (opts + count, &self->rpc_flags, &s_model);
}

//  ep_config keeps the last value of a repeated flag, but --host and --tag
//  are lists: take them out of argv (up to "--") into self->hosts and
//  self->tags and leave the rest, in *rest, to the parser. (So "--host" is
//  never taken as the value of another flag.) Returns 0, or -1 with the
//  reason in err (reported after parsing, so --help still wins).
static int
s_take_lists (s_cmd_t *self, unsigned want, int argc, char **argv, char **rest, int *rest_argc,
              char *err, size_t errlen)
{
    self->hosts = zlistx_new ();
    self->tags = zlistx_new ();
    int count = 0, rc = 0;
    bool only_args = false;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv [i];
        zlistx_t *list = NULL;
        size_t len = 0;
        if (i > 0 && !only_args && streq (arg, "--"))
            only_args = true;
        else
        if (i > 0 && !only_args && (want & F_HOST) && strncmp (arg, "--host", 6) == 0
        &&  (arg [6] == 0 || arg [6] == '='))
            list = self->hosts, len = 6;
        else
        if (i > 0 && !only_args && (want & (F_TAG | F_TAG_FILTER)) && strncmp (arg, "--tag", 5) == 0
        &&  (arg [5] == 0 || arg [5] == '='))
            list = self->tags, len = 5;
        if (!list) {
            rest [count++] = argv [i];
            continue;
        }
        if (arg [len] == '=')
            zlistx_add_end (list, (void *) (arg + len + 1));
        else
        if (i + 1 < argc)
            zlistx_add_end (list, argv [++i]);
        else
        if (rc == 0) {
            snprintf (err, errlen, "%.*s needs a value: %s", (int) len, arg,
                      list == self->hosts? "SERVICE[:COST[:PRECEDENCE]]": "KEY=VALUE");
            rc = -1;
        }
    }
    rest [count] = NULL;
    *rest_argc = count;
    return rc;
}

//  Parses the --host and --tag values into the messages' arrays. Returns
//  0, or -1 with the reason in err.
static int
s_parse_lists (s_cmd_t *self, char *err, size_t errlen)
{
    size_t n_hosts = zlistx_size (self->hosts), n_tags = zlistx_size (self->tags);
    self->hosted = (Ep__HostedService *) calloc (n_hosts + 1, sizeof (Ep__HostedService));
    self->hosted_p = (Ep__HostedService **) calloc (n_hosts + 1, sizeof (Ep__HostedService *));
    self->tag_items = (Ep__Tag *) calloc (n_tags + 1, sizeof (Ep__Tag));
    self->tags_p = (Ep__Tag **) calloc (n_tags + 1, sizeof (Ep__Tag *));
    //  "SERVICE[:COST[:PRECEDENCE]]": the service id is checked by the model.
    size_t i = 0;
    for (const char *text = (const char *) zlistx_first (self->hosts); text;
         text = (const char *) zlistx_next (self->hosts), i++) {
        Ep__HostedService *hosted = &self->hosted [i];
        ep__hosted_service__init (hosted);
        self->hosted_p [i] = hosted;
        const char *colon = strchr (text, ':');
        hosted->service_id = colon? strndup (text, colon - text): strdup (text);
        if (!*hosted->service_id) {
            snprintf (err, errlen, "--host \"%s\": expected SERVICE[:COST[:PRECEDENCE]], e.g. web:10:required", text);
            return -1;
        }
        if (!colon)
            continue;
        const char *cost = colon + 1;
        const char *precedence = strchr (cost, ':');
        if (precedence)
            precedence++;
        if (*cost && *cost != ':') {
            char *end = NULL;
            unsigned long value = strtoul (cost, &end, 10);
            if (!isdigit ((unsigned char) *cost) || (*end && *end != ':') || value > 65535) {
                snprintf (err, errlen, "--host %s: the cost is not a number from 0 to 65535", text);
                return -1;
            }
            hosted->has_cost = true;
            hosted->cost = (uint32_t) value;
        }
        if (precedence) {
            int found = -1;
            for (int p = 0; s_precedences [p]; p++)
                if (strcasecmp (precedence, s_precedences [p]) == 0)
                    found = p;
            if (found < 0) {
                snprintf (err, errlen, "--host %s: the precedence is not one of default, required, failed",
                          text);
                return -1;
            }
            hosted->has_precedence = true;
            hosted->precedence = (Ep__Precedence) found;
        }
    }
    i = 0;
    for (const char *text = (const char *) zlistx_first (self->tags); text;
         text = (const char *) zlistx_next (self->tags), i++) {
        Ep__Tag *tag = &self->tag_items [i];
        ep__tag__init (tag);
        self->tags_p [i] = tag;
        const char *eq = strchr (text, '=');
        if (!eq || eq == text) {
            snprintf (err, errlen, "--tag \"%s\": expected KEY=VALUE, e.g. site=paris", text);
            return -1;
        }
        tag->key = strndup (text, eq - text);
        tag->value = (char *) eq + 1;
    }
    return 0;
}

//  True if the flag name was given on the command line.
static bool
s_given (s_cmd_t *self, const char *name)
{
    const char *source = ep_config_source (self->config, name);
    return source && streq (source, "flag");
}


//  Sends request and returns the reply if its status is OK (or, with
//  --exist-ok, ALREADY_EXISTS); otherwise says why in one line and returns
//  NULL.
static Ep__ModelReply *
s_call (s_cmd_t *self, Ep__ModelRequest *request)
{
    return (Ep__ModelReply *) cli_rpc_call (self->rpc, &request->base, &request->request_id,
                                            &ep__model_reply__descriptor, self->tolerate_exists);
}

//  Sends one write; the reply as s_call returns it.
static Ep__ModelReply *
s_call_write (s_cmd_t *self, Ep__ModelWrite *write)
{
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.op_case = EP__MODEL_REQUEST__OP_WRITE;
    request.write = write;
    return s_call (self, &request);
}

//  Gets entity id of the command's kind; the reply as s_call returns it.
static Ep__ModelReply *
s_call_get (s_cmd_t *self, const char *id)
{
    Ep__ModelGet get = EP__MODEL_GET__INIT;
    get.has_type = true;
    get.type = self->kind->type;
    get.id = (char *) id;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.op_case = EP__MODEL_REQUEST__OP_GET;
    request.get = &get;
    return s_call (self, &request);
}

//  ---------------------------------------------------------------------
//  Output

//  The fields the table shows, whatever the kind.
typedef struct {
    const ProtobufCMessage *message;    //  the kind's message, for JSON
    const char *id;                     //  entity id
    const char *name;                   //  NULL for controllers
    bool enabled;                       //  enabled (named kinds)
    uint64_t version;                   //  meta.version
    size_t n_tags;                      //  how many tags
    Ep__Tag **tags;                     //  tags
    size_t n_hosted;                    //  how many hosted services
    Ep__HostedService **hosted;         //  routers: hosted services
    const char *address;                //  controllers
} s_view_t;

static bool
s_view (const Ep__Entity *entity, s_view_t *view)
{
    memset (view, 0, sizeof *view);
    Ep__EntityMeta *meta = NULL;
    if (entity->kind_case == EP__ENTITY__KIND_ROUTER && entity->router) {
        Ep__Router *router = entity->router;
        *view = (s_view_t) { &router->base, router->id, router->name, router->enabled, 0,
                             router->n_tags, router->tags, router->n_hosted, router->hosted, NULL };
        meta = router->meta;
    }
    else
    if (entity->kind_case == EP__ENTITY__KIND_SERVICE && entity->service) {
        Ep__Service *service = entity->service;
        *view = (s_view_t) { &service->base, service->id, service->name, service->enabled, 0,
                             service->n_tags, service->tags, 0, NULL, NULL };
        meta = service->meta;
    }
    else
    if (entity->kind_case == EP__ENTITY__KIND_IDENTITY && entity->identity) {
        Ep__Identity *identity = entity->identity;
        *view = (s_view_t) { &identity->base, identity->id, identity->name, identity->enabled, 0,
                             identity->n_tags, identity->tags, 0, NULL, NULL };
        meta = identity->meta;
    }
    else
    if (entity->kind_case == EP__ENTITY__KIND_CONTROLLER && entity->controller) {
        Ep__Controller *controller = entity->controller;
        *view = (s_view_t) { &controller->base, controller->id, NULL, false, 0,
                             0, NULL, 0, NULL, controller->address };
        meta = controller->meta;
    }
    else
        return false;
    view->version = meta? meta->version: 0;
    if (!view->id)
        view->id = "";
    return true;
}

//  "web:10:required,db" (the --host syntax), or "-".
static char *
s_hosted_text (const s_view_t *view)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    for (size_t i = 0; i < view->n_hosted; i++) {
        const Ep__HostedService *hosted = view->hosted [i];
        fprintf (out, "%s%s", i? ",": "", hosted->service_id? hosted->service_id: "");
        bool precedence = hosted->precedence > 0 && hosted->precedence <= EP__PRECEDENCE__PRECEDENCE_FAILED;
        if (hosted->cost || precedence)
            fprintf (out, ":%u", hosted->cost);
        if (precedence)
            fprintf (out, ":%s", s_precedences [hosted->precedence]);
    }
    if (view->n_hosted == 0)
        fprintf (out, "-");
    fclose (out);
    return text;
}

//  "k=v,k2=v2", or "-".
static char *
s_tags_text (const s_view_t *view)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    for (size_t i = 0; i < view->n_tags; i++)
        fprintf (out, "%s%s=%s", i? ",": "", view->tags [i]->key? view->tags [i]->key: "",
                 view->tags [i]->value? view->tags [i]->value: "");
    if (view->n_tags == 0)
        fprintf (out, "-");
    fclose (out);
    return text;
}

//  One entity's row in the table of type's columns.
static void
s_row (cli_table_t *table, const ProtobufCMessage *item, Ep__EntityType type)
{
    s_view_t view;
    if (!s_view ((const Ep__Entity *) item, &view)) {
        for (size_t c = 0; c < cli_table_columns (table); c++)
            cli_table_add (table, c == 0? "(unknown entity)": "");
        return;
    }
    cli_table_add (table, view.id);
    if (type == EP__ENTITY_TYPE__ENTITY_CONTROLLER)
        cli_table_add (table, view.address? view.address: "-");
    else {
        cli_table_add (table, view.name && *view.name? view.name: "-");
        cli_table_add (table, view.enabled? "true": "false");
    }
    if (type == EP__ENTITY_TYPE__ENTITY_SERVICE) {
        const Ep__Entity *entity = (const Ep__Entity *) item;
        int criticality = entity->kind_case == EP__ENTITY__KIND_SERVICE? (int) entity->service->criticality: 0;
        if (criticality >= 0 && criticality < (int) EP_COUNT (s_criticalities) - 1)
            cli_table_add (table, s_criticalities [criticality]);
        else
            cli_table_addf (table, "%d", criticality);      //  from a newer model
    }
    cli_table_addf (table, "%llu", (unsigned long long) view.version);
    if (type == EP__ENTITY_TYPE__ENTITY_ROUTER) {
        char *hosted = s_hosted_text (&view);
        cli_table_add (table, hosted);
        free (hosted);
    }
    if (type != EP__ENTITY_TYPE__ENTITY_CONTROLLER) {
        char *tags = s_tags_text (&view);
        cli_table_add (table, tags);
        free (tags);
    }
}

static void
s_controller_row (cli_table_t *table, const ProtobufCMessage *item)
{
    s_row (table, item, EP__ENTITY_TYPE__ENTITY_CONTROLLER);
}

static void
s_router_row (cli_table_t *table, const ProtobufCMessage *item)
{
    s_row (table, item, EP__ENTITY_TYPE__ENTITY_ROUTER);
}

static void
s_service_row (cli_table_t *table, const ProtobufCMessage *item)
{
    s_row (table, item, EP__ENTITY_TYPE__ENTITY_SERVICE);
}

static void
s_named_row (cli_table_t *table, const ProtobufCMessage *item)
{
    s_row (table, item, EP__ENTITY_TYPE__ENTITY_IDENTITY);
}

//  The entity's own message as JSON ({"id": ..., "name": ..., "meta": ...}).
static json_t *
s_entity_json (const ProtobufCMessage *item)
{
    s_view_t view;
    return s_view ((const Ep__Entity *) item, &view)? ep_message_json (view.message): json_null ();
}

//  Entities as a table of their kind's columns (the header even when
//  there are none) or JSON.
static const char *s_controller_columns [] = { "ID", "ADDRESS", "VERSION" };
static const char *s_router_columns [] = { "ID", "NAME", "ENABLED", "VERSION", "HOSTED", "TAGS" };
static const char *s_service_columns [] = { "ID", "NAME", "ENABLED", "CRITICALITY", "VERSION", "TAGS" };
static const char *s_named_columns [] = { "ID", "NAME", "ENABLED", "VERSION", "TAGS" };
static const cli_list_t s_controller_list = {
    s_controller_columns, EP_COUNT (s_controller_columns), s_controller_row, s_entity_json };
static const cli_list_t s_router_list = {
    s_router_columns, EP_COUNT (s_router_columns), s_router_row, s_entity_json };
static const cli_list_t s_service_list = {
    s_service_columns, EP_COUNT (s_service_columns), s_service_row, s_entity_json };
static const cli_list_t s_named_list = {
    s_named_columns, EP_COUNT (s_named_columns), s_named_row, s_entity_json };

static const cli_list_t *
s_list_of (const s_kind_t *kind)
{
    return kind->type == EP__ENTITY_TYPE__ENTITY_CONTROLLER? &s_controller_list
         : kind->type == EP__ENTITY_TYPE__ENTITY_ROUTER? &s_router_list
         : kind->type == EP__ENTITY_TYPE__ENTITY_SERVICE? &s_service_list: &s_named_list;
}

//  Prints one entity (create, get, update): an object, or a one-row table.
//  Takes reply over; NULL (s_call said why) fails.
static int
s_print_one (s_cmd_t *self, Ep__ModelReply *reply)
{
    int rc = CLI_FAIL;
    if (reply && reply->n_entities < 1)
        rc = cli_fail (self->command, "the model's reply holds no %s (a bug in the model service)",
                       self->kind->word);
    else
    if (reply) {
        cli_list_print_one (s_list_of (self->kind), &reply->entities [0]->base, self->json);
        rc = CLI_OK;
    }
    if (reply)
        ep__model_reply__free_unpacked (reply, NULL);
    return rc;
}

//  ---------------------------------------------------------------------
//  Subcommands

//  The entity built from the flags (create and update), in storage the
//  caller provides; strings point into argv and self.
typedef struct {
    Ep__Entity entity;          //  the oneof
    Ep__Router router;          //  the entity, if a router
    Ep__Service service;        //  ... a service
    Ep__Identity identity;      //  ... an identity
    Ep__Controller controller;  //  ... a controller
} s_draft_t;

//  Where the named kinds (router, service, identity) keep the fields they
//  share, in one kind's message.
typedef struct {
    char **name;                //  name
    protobuf_c_boolean *has_enabled;
    protobuf_c_boolean *enabled;
    size_t *n_tags;             //  tags
    Ep__Tag ***tags;
} s_named_t;

static void
s_draft (s_cmd_t *self, const char *id, bool update, s_draft_t *draft)
{
    ep__entity__init (&draft->entity);
    s_named_t named = { NULL };
    switch (self->kind->type) {
        case EP__ENTITY_TYPE__ENTITY_ROUTER:
            ep__router__init (&draft->router);
            draft->router.id = (char *) id;
            draft->router.n_hosted = zlistx_size (self->hosts);
            draft->router.hosted = self->hosted_p;
            named = (s_named_t) { &draft->router.name, &draft->router.has_enabled, &draft->router.enabled,
                                  &draft->router.n_tags, &draft->router.tags };
            draft->entity.router = &draft->router;
            break;
        case EP__ENTITY_TYPE__ENTITY_SERVICE:
            ep__service__init (&draft->service);
            draft->service.id = (char *) id;
            //  Create without the flag: the model says normal.
            for (int c = 0; self->criticality && s_criticalities [c]; c++)
                if (streq (self->criticality, s_criticalities [c])) {
                    draft->service.has_criticality = true;
                    draft->service.criticality = (Ep__Criticality) c;
                }
            named = (s_named_t) { &draft->service.name, &draft->service.has_enabled, &draft->service.enabled,
                                  &draft->service.n_tags, &draft->service.tags };
            draft->entity.service = &draft->service;
            break;
        case EP__ENTITY_TYPE__ENTITY_IDENTITY:
            ep__identity__init (&draft->identity);
            draft->identity.id = (char *) id;
            named = (s_named_t) { &draft->identity.name, &draft->identity.has_enabled, &draft->identity.enabled,
                                  &draft->identity.n_tags, &draft->identity.tags };
            draft->entity.identity = &draft->identity;
            break;
        default:
            ep__controller__init (&draft->controller);
            draft->controller.id = (char *) id;
            draft->controller.address = self->address;
            draft->entity.controller = &draft->controller;
            break;
    }
    draft->entity.kind_case = self->kind->kind_case;
    if (named.name) {
        *named.name = self->name;
        //  Update: absent flags keep their value (patch), so set only what was given.
        *named.has_enabled = !update || s_given (self, "disabled");
        *named.enabled = !self->disabled;
        *named.n_tags = zlistx_size (self->tags);
        *named.tags = self->tags_p;
    }
}

//  Creates the entity id (or, with --exist-ok, finds it); returns the
//  reply holding it, or NULL after saying why.
static Ep__ModelReply *
s_create_one (s_cmd_t *self, const char *id)
{
    s_draft_t draft;
    s_draft (self, id, false, &draft);
    Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
    write.has_op = true;
    write.op = EP__MODEL_WRITE__OP__CREATE;
    write.entity = &draft.entity;
    self->tolerate_exists = self->exist_ok && *id;
    Ep__ModelReply *reply = s_call_write (self, &write);
    self->tolerate_exists = false;
    if (reply && reply->status && reply->status->code == EP__STATUS__CODE__ALREADY_EXISTS) {
        ep__model_reply__free_unpacked (reply, NULL);
        reply = s_call_get (self, id);
    }
    if (reply && reply->n_entities < 1) {
        cli_fail (self->command, "the model's reply holds no %s (a bug in the model service)",
                  self->kind->word);
        ep__model_reply__free_unpacked (reply, NULL);
        reply = NULL;
    }
    return reply;
}

static int
s_create (s_cmd_t *self, char **args)
{
    if (self->kind->type == EP__ENTITY_TYPE__ENTITY_CONTROLLER && !self->address) {
        fprintf (stderr, "edgeplane %s: --address HOST:PORT is required (where the controller's control channel listens)\n",
                 self->command);
        return CLI_USAGE;
    }
    if (self->count && args [0]) {
        fprintf (stderr, "edgeplane %s: give an ID, or --count N [--prefix P], not both\n", self->command);
        return CLI_USAGE;
    }
    if (self->prefix && !self->count) {
        fprintf (stderr, "edgeplane %s: --prefix goes with --count N\n", self->command);
        return CLI_USAGE;
    }
    if (!self->count)
        return s_print_one (self, s_create_one (self, args [0]? args [0]: ""));
    //  --count: one write per entity, so a second run with --exist-ok
    //  completes a batch that stopped half way.
    char *prefix = self->prefix? strdup (self->prefix): zsys_sprintf ("%s-", self->kind->word);
    Ep__ModelReply **replies = (Ep__ModelReply **) calloc ((size_t) self->count, sizeof (Ep__ModelReply *));
    Ep__Entity **entities = (Ep__Entity **) calloc ((size_t) self->count, sizeof (Ep__Entity *));
    int rc = CLI_OK;
    for (int64_t i = 0; rc == CLI_OK && i < self->count; i++) {
        char *id = zsys_sprintf ("%s%lld", prefix, (long long) i);
        if (!ep_id_valid (id)) {
            fprintf (stderr, "edgeplane %s: --prefix \"%s\" makes the id \"%s\": ids are 1 to 64 of A-Z a-z 0-9 _ -\n",
                     self->command, prefix, id);
            rc = CLI_USAGE;
        }
        else
        if (!(replies [i] = s_create_one (self, id)))
            rc = CLI_FAIL;
        else
            entities [i] = replies [i]->entities [0];
        free (id);
    }
    if (rc == CLI_OK)
        cli_list_print (s_list_of (self->kind), (ProtobufCMessage *const *) entities, (size_t) self->count,
                        self->json);
    for (int64_t i = 0; i < self->count; i++)
        if (replies [i])
            ep__model_reply__free_unpacked (replies [i], NULL);
    free (replies);
    free (entities);
    free (prefix);
    return rc;
}

static int
s_update (s_cmd_t *self, char **args)
{
    bool changes = self->name || self->address || zlistx_size (self->hosts) || zlistx_size (self->tags)
                || self->clear_hosted || self->clear_tags || self->criticality
                || s_given (self, "disabled");
    if (!changes) {
        fprintf (stderr, "edgeplane %s: nothing to change: give at least one flag (see --help)\n",
                 self->command);
        return CLI_USAGE;
    }
    s_draft_t draft;
    s_draft (self, args [0], true, &draft);
    char *clear [2];
    Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
    write.has_op = true;
    write.op = EP__MODEL_WRITE__OP__UPDATE;
    write.entity = &draft.entity;
    write.has_expected_version = self->expected_version > 0;
    write.expected_version = (uint64_t) self->expected_version;
    write.clear = clear;
    if (self->clear_hosted)
        clear [write.n_clear++] = "hosted";
    if (self->clear_tags)
        clear [write.n_clear++] = "tags";
    return s_print_one (self, s_call_write (self, &write));
}

static int
s_delete (s_cmd_t *self, char **args)
{
    Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
    write.has_op = true;
    write.op = EP__MODEL_WRITE__OP__DELETE;
    write.has_type = true;
    write.type = self->kind->type;
    write.id = args [0];
    write.has_expected_version = self->expected_version > 0;
    write.expected_version = (uint64_t) self->expected_version;
    Ep__ModelReply *reply = s_call_write (self, &write);
    if (!reply)
        return CLI_FAIL;
    json_t *json = json_pack ("{s:s, s:I}", "deleted", args [0], "revision", (json_int_t) reply->revision);
    if (!self->json)
        printf ("deleted %s %s at revision %llu\n", self->kind->word, args [0],
                (unsigned long long) reply->revision);
    fflush (stdout);
    //  A router's sessions: what the reaper makes of them.
    int rc = self->kind->type != EP__ENTITY_TYPE__ENTITY_ROUTER? CLI_OK
           : cli_router_sessions (self->command, &self->common, self->rpc_flags.cert_path, args [0], reply->revision,
                                  self->wait, self->wait_timeout, self->json? json: NULL);
    if (self->json)
        cli_print_json (json);
    else
        json_decref (json);
    ep__model_reply__free_unpacked (reply, NULL);
    return rc;
}

static int
s_get (s_cmd_t *self, char **args)
{
    return s_print_one (self, s_call_get (self, args [0]));
}

//  Pages through the list until the last page (or --limit).
static int
s_list (s_cmd_t *self, char **args)
{
    (void) args;
    Ep__ListFilter filter = EP__LIST_FILTER__INIT;
    filter.has_type = true;
    filter.type = self->kind->type;
    filter.name = self->name;
    filter.n_tags = zlistx_size (self->tags);
    filter.tags = self->tags_p;
    filter.hosts_service = self->hosts_service;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.op_case = EP__MODEL_REQUEST__OP_LIST;
    request.list = &filter;
    return cli_rpc_list (self->rpc, &request.base, &request.request_id, &filter.base, PAGE_SIZE,
                         (uint64_t) self->limit, &ep__model_reply__descriptor, "entities",
                         s_list_of (self->kind), self->json);
}

static const s_verb_t s_verbs [] = {
    { "create", s_create, F_NAME | F_DISABLED | F_HOST | F_TAG | F_ADDRESS | F_EXIST_OK | F_COUNT | F_CRITICALITY,
      0, 1, "[ID]",
      "Create a %s (without ID the model generates one; it is printed).", false },
    { "get", s_get, 0, 1, 1, "ID", "Show one %s.", false },
    { "list", s_list, F_NAME_FILTER | F_TAG_FILTER | F_HOSTS | F_LIMIT, 0, 0, NULL,
      "List %s, every page, ordered by id.", true },
    { "update", s_update, F_NAME | F_DISABLED | F_HOST | F_TAG | F_ADDRESS | F_EXPECTED
                          | F_CLEAR_HOSTED | F_CLEAR_TAGS | F_CRITICALITY, 1, 1, "ID",
      "Change a %s: given flags replace those fields, the rest keep their value.", false },
    { "delete", s_delete, F_EXPECTED | F_WAIT, 1, 1, "ID", "Delete a %s.", false },
};

//  Parses a subcommand's flags into self (the shared options included).
//  Returns true to go on, or false with the exit code to return now in
//  *code (cli_parse exits itself after --help or a flag it refuses).
static bool
s_parse (s_cmd_t *self, unsigned want, const char *description,
         const char *usage, int argc, char **argv, int *code)
{
    ep_opt_t opts [32];
    size_t nopts = s_options (self, want, opts);
    char **rest = (char **) calloc (argc + 1, sizeof (char *));
    int rest_argc = 0;
    char err [512] = "";
    int lists = s_take_lists (self, want, argc, argv, rest, &rest_argc, err, sizeof err);
    self->config = cli_parse (self->command, description, usage, &self->common,
                              opts, nopts, rest_argc, rest);
    free (rest);
    self->rpc = cli_rpc_open (self->command, &s_model, self->common.model_api, self->common.keys_dir,
                              &self->rpc_flags);
    if (lists == 0)
        lists = s_parse_lists (self, err, sizeof err);
    if (lists != 0) {
        fprintf (stderr, "edgeplane %s: %s\n", self->command, err);
        *code = CLI_USAGE;
        return false;
    }
    return true;
}

//  Starts command, one that is not an entity kind's (backup, model ...):
//  parses its flags (as s_parse) and checks it has nargs positional
//  arguments, or says wrong_args. Returns true to go on, or false with
//  the exit code in *code. self is set up here; s_cmd_destroy it anyway.
static bool
s_start (s_cmd_t *self, const char *command, unsigned want, const char *description, const char *usage,
         int nargs, const char *wrong_args, int argc, char **argv, int *code)
{
    *self = (s_cmd_t) { .kind = NULL };
    snprintf (self->command, sizeof self->command, "%s", command);
    *code = CLI_OK;
    if (!s_parse (self, want, description, usage, argc, argv, code))
        return false;
    if (ep_config_argc (self->config) != nargs) {
        fprintf (stderr, "edgeplane %s: %s\n", command, wrong_args);
        *code = CLI_USAGE;
        return false;
    }
    return true;
}

static void
s_kind_usage (const void *arg)
{
    const s_kind_t *kind = (const s_kind_t *) arg;
    printf ("Usage: edgeplane %s SUBCOMMAND [ARGS...] [OPTIONS]\n\nSubcommands:\n", kind->word);
    for (size_t i = 0; i < EP_COUNT (s_verbs); i++) {
        const s_verb_t *verb = &s_verbs [i];
        bool controller_create = kind->type == EP__ENTITY_TYPE__ENTITY_CONTROLLER && verb->run == s_create;
        char usage [64];
        snprintf (usage, sizeof usage, "%s %s", verb->word,
                  controller_create? "ID": verb->usage? verb->usage: "");
        printf ("  %-12s ", usage);
        if (controller_create)
            printf ("%s", s_controller_create);
        else
            printf (verb->description, verb->plural? kind->plural: kind->word);
        printf ("\n");
    }
    printf ("\n(edgeplane %s SUBCOMMAND --help for its options)\n", kind->word);
}

static int
s_entity_main (const s_kind_t *kind, int argc, char **argv)
{
    const s_verb_t *verb = NULL;
    for (size_t i = 0; argc >= 2 && i < EP_COUNT (s_verbs); i++)
        if (streq (argv [1], s_verbs [i].word))
            verb = &s_verbs [i];
    if (!verb)
        return cli_no_subcommand (kind->word, argc, argv, "one of create, get, list, update, delete",
                                  s_kind_usage, kind);
    s_cmd_t self = { .kind = kind };
    snprintf (self.command, sizeof self.command, "%s %s", kind->word, verb->word);
    //  A controller is a cluster member: it needs a name of its own.
    bool controller_create = kind->type == EP__ENTITY_TYPE__ENTITY_CONTROLLER && verb->run == s_create;
    int min_args = controller_create? 1: verb->min_args;
    const char *usage = controller_create? "ID": verb->usage;
    char description [256];
    snprintf (description, sizeof description, verb->description,
              verb->plural? kind->plural: kind->word);
    if (controller_create)
        snprintf (description, sizeof description, "%s", s_controller_create);
    int rc;
    if (s_parse (&self, verb->flags & kind->flags, description, usage, argc - 1, argv + 1, &rc)) {
        int nargs = ep_config_argc (self.config);
        if (nargs < min_args || nargs > verb->max_args) {
            fprintf (stderr, "edgeplane %s: expected %s ID, e.g. `edgeplane %s edge-1`\n",
                     self.command, min_args == verb->max_args? "one": "at most one", self.command);
            rc = CLI_USAGE;
        }
        else
            rc = verb->run (&self, ep_config_argv (self.config));
    }
    s_cmd_destroy (&self);
    return rc;
}

int
cli_entity (int argc, char **argv)
{
    for (size_t i = 0; i < EP_COUNT (s_kinds); i++)
        if (streq (argv [0], s_kinds [i].word))
            return s_entity_main (&s_kinds [i], argc, argv);
    return cli_fail (argv [0], "not an entity kind (a bug in the command table)");
}

int
cli_backup (int argc, char **argv)
{
    s_cmd_t self;
    int rc;
    bool parsed = s_start (&self, "backup", 0,
                           "Back up the model database to FILE, a path on the model service's machine "
                           "(relative paths are made absolute here).", "FILE",
                           1, "expected one FILE, e.g. `edgeplane backup /var/backups/model.db`", argc, argv, &rc);
    char *path = NULL;
    if (parsed) {
        const char *file = ep_config_argv (self.config) [0];
        char cwd [4096];
        if (file [0] == '/')
            path = strdup (file);
        else
        if (getcwd (cwd, sizeof cwd))
            path = zsys_sprintf ("%s/%s", cwd, file);
        else
            rc = cli_fail ("backup", "cannot tell the current directory (%s): give FILE as an absolute path",
                           strerror (errno));
    }
    if (parsed && rc == CLI_OK) {
        Ep__BackupRequest backup = EP__BACKUP_REQUEST__INIT;
        backup.path = path;
        Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
        request.op_case = EP__MODEL_REQUEST__OP_BACKUP;
        request.backup = &backup;
        Ep__ModelReply *reply = s_call (&self, &request);
        if (!reply)
            rc = CLI_FAIL;
        else
        if (self.json)
            cli_print_json (json_pack ("{s:s, s:I}", "path", path, "revision", (json_int_t) reply->revision));
        else
            printf ("backup of revision %llu written to %s\n", (unsigned long long) reply->revision, path);
        if (reply)
            ep__model_reply__free_unpacked (reply, NULL);
    }
    free (path);
    s_cmd_destroy (&self);
    return rc;
}

//  edgeplane model status: the revision, the generation (and the digest).
static int
s_model_status (int argc, char **argv)
{
    s_cmd_t self;
    int rc;
    if (s_start (&self, "model status", F_DIGEST,
                 "The model's revision and generation as the instance asked answers them; "
                 "--digest: also the digest of every entity, to compare with the followers' "
                 "edgeplane_model_view_digest52 (its first 13 hex digits).",
                 NULL, 0, "takes no arguments, only options (try --help)", argc, argv, &rc)) {
        Ep__StatusRequest status = EP__STATUS_REQUEST__INIT;
        status.has_digest = true;
        status.digest = self.digest;
        Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
        request.op_case = EP__MODEL_REQUEST__OP_STATUS;
        request.status = &status;
        Ep__ModelReply *reply = s_call (&self, &request);
        if (!reply)
            rc = CLI_FAIL;
        else {
            const char *digest = reply->digest && *reply->digest? reply->digest: NULL;
            if (self.json) {
                json_t *out = json_pack ("{s:I, s:s}", "revision", (json_int_t) reply->revision,
                                         "generation", reply->generation? reply->generation: "");
                if (digest)
                    json_object_set_new (out, "digest", json_string (digest));
                cli_print_json (out);
            }
            else
                printf ("revision %llu generation %s%s%s\n", (unsigned long long) reply->revision,
                        reply->generation? reply->generation: "-", digest? " digest ": "", digest? digest: "");
            ep__model_reply__free_unpacked (reply, NULL);
        }
    }
    s_cmd_destroy (&self);
    return rc;
}

//  ---------------------------------------------------------------------
//  edgeplane model txn FILE|-

static const char *s_txn_description =
    "Several writes, all or nothing, at one revision (the model's txn). FILE (- for stdin) holds a JSON "
    "array of writes, each {\"op\": \"create\"|\"update\"|\"delete\", \"kind\": \"router\"|\"service\"|"
    "\"identity\"|\"controller\", \"id\": ID (create: optional), \"fields\": {...} (create, update: the "
    "entity's fields by their proto names, as --json prints them, without id and meta), "
    "\"expected_version\": N (optional compare-and-swap), \"clear\": [\"hosted\", \"tags\"] (update)}. "
    "Writes are numbered from 1 in messages (\"write 2: ...\"), as the model numbers them. Prints the "
    "revision and each write's entity.";

//  The keys a write may have.
static const char *s_txn_keys [] = { "op", "kind", "id", "fields", "expected_version", "clear" };

//  Reads one element of the file into write (initialised; what it
//  allocates, write's free_unpacked frees). Returns 0, or -1 with
//  the reason in err.
static int
s_txn_write (const json_t *element, Ep__ModelWrite *write, char *err, size_t errlen)
{
    if (!json_is_object (element)) {
        snprintf (err, errlen, "expected an object {\"op\": ..., \"kind\": ..., ...}");
        return -1;
    }
    const char *key;
    json_t *value;
    json_object_foreach ((json_t *) element, key, value) {
        bool known = false;
        for (size_t i = 0; i < EP_COUNT (s_txn_keys); i++)
            known |= streq (key, s_txn_keys [i]);
        if (!known) {
            snprintf (err, errlen, "%s: not a key of a write; they are op, kind, id, fields, "
                      "expected_version, clear", key);
            return -1;
        }
    }
    const char *op = json_string_value (json_object_get (element, "op"));
    const char *ops [] = { NULL, "create", "update", "delete" };
    write->has_op = true;
    for (int i = 1; op && i < (int) EP_COUNT (ops); i++)
        if (streq (op, ops [i]))
            write->op = (Ep__ModelWrite__Op) i;
    if (!write->op) {
        snprintf (err, errlen, "op: write \"create\", \"update\" or \"delete\"");
        return -1;
    }
    const char *word = json_string_value (json_object_get (element, "kind"));
    const s_kind_t *kind = NULL;
    for (size_t i = 0; word && i < EP_COUNT (s_kinds); i++)
        if (streq (word, s_kinds [i].word))
            kind = &s_kinds [i];
    if (!kind) {
        snprintf (err, errlen, "kind: write \"router\", \"service\", \"identity\" or \"controller\"");
        return -1;
    }
    json_t *id_json = json_object_get (element, "id");
    const char *id = json_string_value (id_json);
    bool create = write->op == EP__MODEL_WRITE__OP__CREATE;
    if ((id_json || !create) && (!id || !ep_id_valid (id))) {
        snprintf (err, errlen, "id: write the %s's id, 1 to 64 of A-Z a-z 0-9 _ -%s", kind->word,
                  create? " (or leave it out: the model generates one)": "");
        return -1;
    }
    json_t *expected = json_object_get (element, "expected_version");
    if (expected) {
        if (!json_is_integer (expected) || json_integer_value (expected) < 0) {
            snprintf (err, errlen, "expected_version: write the version the entity must still be at "
                      "(meta.version, an integer; 0: always)");
            return -1;
        }
        if (create) {
            snprintf (err, errlen, "expected_version: a create has none (the entity must not exist)");
            return -1;
        }
        write->has_expected_version = true;
        write->expected_version = (uint64_t) json_integer_value (expected);
    }
    json_t *clear = json_object_get (element, "clear");
    if (clear) {
        size_t index;
        json_t *item;
        bool ok = write->op == EP__MODEL_WRITE__OP__UPDATE && json_is_array (clear);
        json_array_foreach (clear, index, item)
            ok = ok && json_is_string (item)
              && (streq (json_string_value (item), "tags")
               || (streq (json_string_value (item), "hosted") && kind->type == EP__ENTITY_TYPE__ENTITY_ROUTER));
        if (!ok) {
            snprintf (err, errlen, "clear: an update's list of fields to empty, [\"tags\"]%s",
                      kind->type == EP__ENTITY_TYPE__ENTITY_ROUTER? ", [\"hosted\"] or both": "");
            return -1;
        }
        write->clear = (char **) calloc (json_array_size (clear) + 1, sizeof (char *));
        json_array_foreach (clear, index, item)
            write->clear [write->n_clear++] = strdup (json_string_value (item));
    }
    json_t *fields = json_object_get (element, "fields");
    if (write->op == EP__MODEL_WRITE__OP__DELETE) {
        if (fields) {
            snprintf (err, errlen, "fields: a delete has none (give op, kind, id and expected_version)");
            return -1;
        }
        write->has_type = true;
        write->type = kind->type;
        write->id = strdup (id);
        return 0;
    }
    if (!fields && write->op == EP__MODEL_WRITE__OP__UPDATE && !clear) {
        snprintf (err, errlen, "fields: an update needs fields to change (or clear)");
        return -1;
    }
    if (fields && (json_object_get (fields, "id") || json_object_get (fields, "meta"))) {
        snprintf (err, errlen, "fields.%s: give the id as the write's \"id\" and the version as its "
                  "\"expected_version\", not in fields", json_object_get (fields, "id")? "id": "meta");
        return -1;
    }
    //  The entity: the kind's message, read from fields by the proto
    //  names, under the Entity oneof (so "fields" is {"router": fields}).
    json_t *wrapped = fields? json_pack ("{s:O}", kind->word, fields)
                            : json_pack ("{s:o}", kind->word, json_object ());
    write->entity = (Ep__Entity *) malloc (sizeof (Ep__Entity));
    ep__entity__init (write->entity);
    char inner [384];
    int rc = ep_message_from_json (&write->entity->base, wrapped, NULL, inner, sizeof inner);
    json_decref (wrapped);
    if (rc != 0) {
        //  "router.hosted[0].cost: ..." is fields.hosted[0].cost in the file.
        const char *rest = strncmp (inner, kind->word, strlen (kind->word)) == 0? inner + strlen (kind->word): inner;
        snprintf (err, errlen, "fields%s%s", *rest == '.' || *rest == ':'? "": ".", rest);
        return -1;
    }
    if (id) {
        switch (kind->type) {
            case EP__ENTITY_TYPE__ENTITY_ROUTER:     write->entity->router->id = strdup (id); break;
            case EP__ENTITY_TYPE__ENTITY_SERVICE:    write->entity->service->id = strdup (id); break;
            case EP__ENTITY_TYPE__ENTITY_IDENTITY:   write->entity->identity->id = strdup (id); break;
            default:                                 write->entity->controller->id = strdup (id); break;
        }
    }
    return 0;
}

//  The writes of the file (or stdin) as one ModelTxn; NULL after saying
//  why (a usage error: the file is the command's input).
static Ep__ModelTxn *
s_txn_load (const char *command, const char *path)
{
    json_error_t error;
    bool stdin_ = streq (path, "-");
    json_t *array = stdin_? json_loadf (stdin, 0, &error): json_load_file (path, 0, &error);
    const char *name = stdin_? "stdin": path;
    if (!array) {
        fprintf (stderr, "edgeplane %s: %s:%d:%d: %s (expected a JSON array of writes; see --help)\n",
                 command, name, error.line, error.column, error.text);
        return NULL;
    }
    if (!json_is_array (array) || json_array_size (array) == 0) {
        fprintf (stderr, "edgeplane %s: %s: expected a JSON array of at least one write, "
                 "[{\"op\": \"create\", \"kind\": \"router\", \"id\": \"edge-1\"}, ...] (see --help)\n",
                 command, name);
        json_decref (array);
        return NULL;
    }
    Ep__ModelTxn *txn = (Ep__ModelTxn *) malloc (sizeof (Ep__ModelTxn));
    ep__model_txn__init (txn);
    txn->writes = (Ep__ModelWrite **) calloc (json_array_size (array), sizeof (Ep__ModelWrite *));
    bool ok = true;
    for (size_t i = 0; ok && i < json_array_size (array); i++) {
        Ep__ModelWrite *write = (Ep__ModelWrite *) malloc (sizeof (Ep__ModelWrite));
        ep__model_write__init (write);
        txn->writes [txn->n_writes++] = write;
        char err [512];
        if (s_txn_write (json_array_get (array, i), write, err, sizeof err) != 0) {
            //  Numbered from 1, as the model numbers the writes of a txn.
            fprintf (stderr, "edgeplane %s: %s: write %zu (of %zu): %s\n", command, name, i + 1,
                     json_array_size (array), err);
            ok = false;
        }
    }
    json_decref (array);
    if (!ok)
        ep__model_txn__free_unpacked (txn, NULL);
    return ok? txn: NULL;
}

static const char *s_txn_ops [] = { "?", "create", "update", "delete" };

//  Prints the committed txn: the revision and, per write, its entity (the
//  reply holds one per create and update, in order).
static int
s_txn_print (s_cmd_t *self, const Ep__ModelTxn *txn, const Ep__ModelReply *reply)
{
    size_t puts = 0;
    for (size_t i = 0; i < txn->n_writes; i++)
        puts += txn->writes [i]->op != EP__MODEL_WRITE__OP__DELETE;
    if (reply->n_entities != puts)
        return cli_fail (self->command, "the model's reply holds %zu entities for %zu creates and updates "
                         "(a bug in the model service)", reply->n_entities, puts);
    static const char *columns [] = { "WRITE", "OP", "KIND", "ID", "VERSION" };
    cli_table_t *table = cli_table_new (columns, EP_COUNT (columns));
    json_t *writes = json_array ();
    size_t next = 0;
    for (size_t i = 0; i < txn->n_writes; i++) {
        const Ep__ModelWrite *write = txn->writes [i];
        const char *op = s_txn_ops [write->op <= EP__MODEL_WRITE__OP__DELETE? write->op: 0];
        const char *kind = "?";
        for (size_t k = 0; k < EP_COUNT (s_kinds); k++)
            if ((write->entity && write->entity->kind_case == s_kinds [k].kind_case)
            ||  (!write->entity && write->type == s_kinds [k].type))
                kind = s_kinds [k].word;
        json_t *item = json_pack ("{s:s, s:s}", "op", op, "kind", kind);
        s_view_t view = { NULL };
        if (write->op == EP__MODEL_WRITE__OP__DELETE)
            json_object_set_new (item, "id", json_string (write->id));
        else
        if (s_view (reply->entities [next++], &view)) {
            json_object_set_new (item, "id", json_string (view.id));
            json_object_set_new (item, "entity", ep_message_json (view.message));
        }
        json_array_append_new (writes, item);
        cli_table_addf (table, "%zu", i + 1);
        cli_table_add (table, op);
        cli_table_add (table, kind);
        cli_table_add (table, json_string_value (json_object_get (item, "id")));
        if (view.message)
            cli_table_addf (table, "%llu", (unsigned long long) view.version);
        else
            cli_table_add (table, "-");
    }
    if (self->json) {
        cli_print_json (json_pack ("{s:I, s:o}", "revision", (json_int_t) reply->revision, "writes", writes));
        writes = NULL;
    }
    else {
        printf ("committed %zu writes at revision %llu\n", txn->n_writes, (unsigned long long) reply->revision);
        cli_table_print (table);
    }
    json_decref (writes);
    cli_table_destroy (&table);
    return CLI_OK;
}

//  edgeplane model txn FILE|-
static int
s_model_txn (int argc, char **argv)
{
    s_cmd_t self;
    int rc;
    bool parsed = s_start (&self, "model txn", 0, s_txn_description, "FILE|-",
                           1, "expected one FILE (- for stdin), e.g. `edgeplane model txn writes.json` "
                           "(the format: --help)", argc, argv, &rc);
    Ep__ModelTxn *txn = NULL;
    if (parsed && !(txn = s_txn_load (self.command, ep_config_argv (self.config) [0])))
        rc = CLI_USAGE;
    if (txn) {
        Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
        request.op_case = EP__MODEL_REQUEST__OP_TXN;
        request.txn = txn;
        Ep__ModelReply *reply = s_call (&self, &request);
        rc = reply? s_txn_print (&self, txn, reply): CLI_FAIL;
        if (reply)
            ep__model_reply__free_unpacked (reply, NULL);
        ep__model_txn__free_unpacked (txn, NULL);
    }
    s_cmd_destroy (&self);
    return rc;
}

int
cli_model (int argc, char **argv)
{
    if (argc >= 2 && (streq (argv [1], "--help") || streq (argv [1], "-h"))) {
        printf ("Usage: edgeplane model SUBCOMMAND [ARGS...] [OPTIONS]\n\nSubcommands:\n"
                "  status       The model's revision and generation (--digest: and every entity's digest).\n"
                "  txn FILE|-   Several writes from a JSON array, all or nothing, at one revision.\n"
                "\n(edgeplane model SUBCOMMAND --help for its options)\n");
        return CLI_OK;
    }
    if (argc >= 2 && streq (argv [1], "status"))
        return s_model_status (argc - 1, argv + 1);
    if (argc >= 2 && streq (argv [1], "txn"))
        return s_model_txn (argc - 1, argv + 1);
    fprintf (stderr, "edgeplane model: expected `edgeplane model status [--digest]` or "
             "`edgeplane model txn FILE|-` (edgeplane model --help)\n");
    return CLI_USAGE;
}
