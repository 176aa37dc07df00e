/*  ep_metrics.c: counters, gauges and histograms rendered for Prometheus.

    A family is one metric name; its series live in a list (creation order,
    which is also render order) and an index keyed by the label values.
    Values are atomics so updates through a kept series pointer never take
    the lock; creating series, registering families and rendering do.
*/
#include "ep_prelude.h"
#include "ep_metrics.h"
#include "ep_fdlimit.h"
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <unistd.h>

#ifndef EP_VERSION
#   define EP_VERSION "unknown"
#endif

typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } kind_t;
static const char *s_kind_name [] = { "counter", "gauge", "histogram" };

//  Prometheus client defaults: request latencies from 5 ms to 10 s.
static const double s_default_bounds [] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
};

//  The public family handles (ep_counter_t, ...) are this struct, typed by
//  kind so the compiler catches a gauge passed where a counter belongs.
typedef struct {
    ep_metrics_t *registry;     //  owner, whose lock guards index and series
    kind_t kind;                //  counter, gauge or histogram
    char *name;                 //  metric name
    char *help;                 //  help text, unescaped
    size_t nlabels;             //  number of label names
    char **labels;              //  label names
    size_t nbounds;             //  histogram: number of finite bucket bounds
    double *bounds;             //  histogram: upper bounds, increasing
    zhashx_t *index;            //  series key -> series, not owning
    zlistx_t *series;           //  series in creation order, owning
} family_t;

struct _ep_series_t {
    family_t *family;           //  the family this series belongs to
    char **values;              //  label values, one per label name
    _Atomic double value;       //  counter or gauge value; histogram sum
    _Atomic uint64_t *buckets;  //  histogram: per-bucket counts, +Inf last
};

struct _ep_metrics_t {
    pthread_mutex_t lock;       //  guards families, series lists, rendering
    zlistx_t *families;         //  families in registration order, owning
    ep_counter_t *requests;     //  edgeplane_requests_total{op,code}
    ep_histogram_t *durations;  //  edgeplane_request_duration_seconds{op}
    ep_counter_t *published;    //  edgeplane_published_total{stream}
    ep_counter_t *gaps;         //  edgeplane_stream_gaps_total{stream}
    ep_series_t *cpu;           //  process_cpu_seconds_total
    ep_series_t *rss;           //  process_resident_memory_bytes
    ep_series_t *vsz;           //  process_virtual_memory_bytes
    ep_series_t *open_fds;      //  process_open_fds
    ep_series_t *max_fds;       //  process_max_fds
    ep_series_t *start_time;    //  process_start_time_seconds
    ep_series_t *fd_refusals [EP_FDLIMIT_KINDS];   //  edgeplane_fd_limit_refusals_total{what}
    ep_series_t *fd_reached;    //  edgeplane_fd_limit_reached_total
    double boot_time;           //  system boot, seconds since the epoch
};


//  --------------------------------------------------------------------------
//  Atomic doubles: C11 has no fetch-add for floating types.

static void
s_atomic_add (_Atomic double *target, double delta)
{
    double old = atomic_load_explicit (target, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit (target, &old, old + delta,
                                                   memory_order_relaxed,
                                                   memory_order_relaxed))
        ;
}


//  --------------------------------------------------------------------------
//  Names: metric names [a-zA-Z_:][a-zA-Z0-9_:]*, label names the same
//  without ':' and not starting with "__" (reserved by Prometheus).

static bool
s_name_valid (const char *name, bool is_label)
{
    if (!name || !*name || (*name >= '0' && *name <= '9'))
        return false;
    if (is_label && strncmp (name, "__", 2) == 0)
        return false;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')
        ||    (*c >= '0' && *c <= '9') || *c == '_' || (*c == ':' && !is_label)))
            return false;
    return true;
}

static char **
s_strv_dup (size_t count, const char *const *strings)
{
    char **copy = (char **) zmalloc (sizeof (char *) * (count + 1));
    for (size_t i = 0; i < count; i++) {
        EP_ASSERT (strings [i]);
        copy [i] = strdup (strings [i]);
    }
    return copy;
}

static void
s_strv_free (char ***strv_p, size_t count)
{
    if (*strv_p) {
        for (size_t i = 0; i < count; i++)
            free ((*strv_p) [i]);
        free (*strv_p);
        *strv_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Series

static void
s_series_destroy (ep_series_t **self_p)
{
    ep_series_t *self = *self_p;
    if (self) {
        s_strv_free (&self->values, self->family->nlabels);
        free (self->buckets);
        free (self);
        *self_p = NULL;
    }
}

//  The index key of a set of label values: each value length-prefixed, so
//  no value can make two different sets collide.
static char *
s_series_key (family_t *family, const char *const *values)
{
    char *key = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&key, &size);
    EP_ASSERT (out);
    for (size_t i = 0; i < family->nlabels; i++) {
        EP_ASSERT (values && values [i]);
        fprintf (out, "%zu:%s", strlen (values [i]), values [i]);
    }
    EP_ASSERT (fclose (out) == 0);
    return key;
}

//  Returns the series for values, creating it at 0. Takes the lock.
static ep_series_t *
s_series_get (family_t *family, const char *const *values)
{
    char *key = s_series_key (family, values);
    pthread_mutex_lock (&family->registry->lock);
    ep_series_t *series = (ep_series_t *) zhashx_lookup (family->index, key);
    if (!series) {
        series = (ep_series_t *) zmalloc (sizeof (ep_series_t));
        series->family = family;
        series->values = s_strv_dup (family->nlabels, values);
        atomic_init (&series->value, 0.0);
        if (family->kind == KIND_HISTOGRAM) {
            series->buckets = (_Atomic uint64_t *)
                zmalloc (sizeof (_Atomic uint64_t) * (family->nbounds + 1));
            for (size_t i = 0; i <= family->nbounds; i++)
                atomic_init (&series->buckets [i], 0);
        }
        zlistx_add_end (family->series, series);
        zhashx_insert (family->index, key, series);
    }
    pthread_mutex_unlock (&family->registry->lock);
    free (key);
    return series;
}

//  Stores a value whatever the kind: for process metrics read at render.
static void
s_series_store (ep_series_t *self, double value)
{
    atomic_store_explicit (&self->value, value, memory_order_relaxed);
}

void
ep_series_add (ep_series_t *self, double delta)
{
    EP_ASSERT (self && self->family->kind != KIND_HISTOGRAM);
    //  A counter only goes up: Prometheus reads any drop as a restart.
    EP_ASSERT (self->family->kind == KIND_GAUGE || delta >= 0);
    s_atomic_add (&self->value, delta);
}

void
ep_series_set (ep_series_t *self, double value)
{
    EP_ASSERT (self && self->family->kind == KIND_GAUGE);
    s_series_store (self, value);
}

void
ep_series_observe (ep_series_t *self, double value)
{
    EP_ASSERT (self && self->family->kind == KIND_HISTOGRAM);
    family_t *family = self->family;
    size_t bucket = 0;
    while (bucket < family->nbounds && !(value <= family->bounds [bucket]))
        bucket++;
    atomic_fetch_add_explicit (&self->buckets [bucket], 1, memory_order_relaxed);
    s_atomic_add (&self->value, value);
}

double
ep_series_value (ep_series_t *self)
{
    EP_ASSERT (self);
    if (self->family->kind != KIND_HISTOGRAM)
        return atomic_load_explicit (&self->value, memory_order_relaxed);
    uint64_t count = 0;
    for (size_t i = 0; i <= self->family->nbounds; i++)
        count += atomic_load_explicit (&self->buckets [i], memory_order_relaxed);
    return (double) count;
}


//  --------------------------------------------------------------------------
//  Families

static void
s_family_destroy (family_t **self_p)
{
    family_t *self = *self_p;
    if (self) {
        zhashx_destroy (&self->index);
        zlistx_destroy (&self->series);
        s_strv_free (&self->labels, self->nlabels);
        free (self->name);
        free (self->help);
        free (self->bounds);
        free (self);
        *self_p = NULL;
    }
}

//  Registers a family, or returns the one of that name, which must match.
static family_t *
s_family_register (ep_metrics_t *self, kind_t kind, const char *name, const char *help,
                   size_t nlabels, const char *const *labels,
                   size_t nbounds, const double *bounds)
{
    EP_ASSERT (self && s_name_valid (name, false) && help);
    EP_ASSERT (nlabels == 0 || labels);
    if (kind == KIND_HISTOGRAM && !bounds) {
        bounds = s_default_bounds;
        nbounds = EP_COUNT (s_default_bounds);
    }
    for (size_t i = 0; i < nlabels; i++) {
        EP_ASSERT (s_name_valid (labels [i], true));
        EP_ASSERT (!(kind == KIND_HISTOGRAM && streq (labels [i], "le")));
        for (size_t j = 0; j < i; j++)
            EP_ASSERT (!streq (labels [i], labels [j]));
    }
    for (size_t i = 0; i < nbounds; i++)
        EP_ASSERT (isfinite (bounds [i]) && (i == 0 || bounds [i] > bounds [i - 1]));

    pthread_mutex_lock (&self->lock);
    family_t *family = NULL;
    for (family_t *f = (family_t *) zlistx_first (self->families); f && !family;
         f = (family_t *) zlistx_next (self->families))
        if (streq (f->name, name))
            family = f;
    if (family) {
        //  Looking a family up again must describe it the same way.
        EP_ASSERT (family->kind == kind && family->nlabels == nlabels
                && family->nbounds == nbounds);
        for (size_t i = 0; i < nlabels; i++)
            EP_ASSERT (streq (family->labels [i], labels [i]));
        for (size_t i = 0; i < nbounds; i++)
            EP_ASSERT (family->bounds [i] == bounds [i]);
    }
    else {
        family = (family_t *) zmalloc (sizeof (family_t));
        family->registry = self;
        family->kind = kind;
        family->name = strdup (name);
        family->help = strdup (help);
        family->nlabels = nlabels;
        family->labels = s_strv_dup (nlabels, labels);
        family->nbounds = nbounds;
        if (nbounds) {
            family->bounds = (double *) zmalloc (sizeof (double) * nbounds);
            memcpy (family->bounds, bounds, sizeof (double) * nbounds);
        }
        family->index = zhashx_new ();
        family->series = zlistx_new ();
        zlistx_set_destructor (family->series, (zlistx_destructor_fn *) s_series_destroy);
        zlistx_add_end (self->families, family);
    }
    pthread_mutex_unlock (&self->lock);

    //  A family without labels has one series; it shows from the start.
    if (nlabels == 0)
        s_series_get (family, NULL);
    return family;
}

static family_t *
s_family (void *handle, kind_t kind)
{
    family_t *family = (family_t *) handle;
    EP_ASSERT (family && family->kind == kind);
    return family;
}

ep_counter_t *
ep_metrics_counter (ep_metrics_t *self, const char *name, const char *help,
                    size_t nlabels, const char *const *labels)
{
    return (ep_counter_t *) s_family_register (self, KIND_COUNTER, name, help,
                                               nlabels, labels, 0, NULL);
}

ep_gauge_t *
ep_metrics_gauge (ep_metrics_t *self, const char *name, const char *help,
                  size_t nlabels, const char *const *labels)
{
    return (ep_gauge_t *) s_family_register (self, KIND_GAUGE, name, help,
                                             nlabels, labels, 0, NULL);
}

ep_histogram_t *
ep_metrics_histogram (ep_metrics_t *self, const char *name, const char *help,
                      size_t nlabels, const char *const *labels,
                      size_t nbounds, const double *bounds)
{
    return (ep_histogram_t *) s_family_register (self, KIND_HISTOGRAM, name, help,
                                                 nlabels, labels, nbounds, bounds);
}

ep_series_t *
ep_counter_series (ep_counter_t *self, const char *const *values)
{
    return s_series_get (s_family (self, KIND_COUNTER), values);
}

ep_series_t *
ep_gauge_series (ep_gauge_t *self, const char *const *values)
{
    return s_series_get (s_family (self, KIND_GAUGE), values);
}

ep_series_t *
ep_histogram_series (ep_histogram_t *self, const char *const *values)
{
    return s_series_get (s_family (self, KIND_HISTOGRAM), values);
}

void
ep_counter_inc (ep_counter_t *self, const char *const *values, double delta)
{
    ep_series_add (ep_counter_series (self, values), delta);
}

void
ep_gauge_set (ep_gauge_t *self, const char *const *values, double value)
{
    ep_series_set (ep_gauge_series (self, values), value);
}

void
ep_gauge_add (ep_gauge_t *self, const char *const *values, double delta)
{
    ep_series_add (ep_gauge_series (self, values), delta);
}

void
ep_histogram_observe (ep_histogram_t *self, const char *const *values, double value)
{
    ep_series_observe (ep_histogram_series (self, values), value);
}


//  --------------------------------------------------------------------------
//  Rendering

//  Writes text escaped for the format: backslash and newline always, double
//  quote too inside a label value.
static void
s_write_escaped (FILE *out, const char *text, bool quoted)
{
    for (const char *c = text; *c; c++) {
        if (*c == '\\')
            fputs ("\\\\", out);
        else
        if (*c == '\n')
            fputs ("\\n", out);
        else
        if (*c == '"' && quoted)
            fputs ("\\\"", out);
        else
            fputc (*c, out);
    }
}

//  Formats a sample value or bucket bound the way Prometheus parses it:
//  shortest decimal that reads back exactly, or +Inf, -Inf, NaN.
static const char *
s_format_value (double value, char *buf, size_t size)
{
    if (isnan (value))
        return "NaN";
    if (isinf (value))
        return value > 0? "+Inf": "-Inf";
    snprintf (buf, size, "%.15g", value);
    if (strtod (buf, NULL) != value)
        snprintf (buf, size, "%.17g", value);
    return buf;
}

//  Writes one sample line: name+suffix{labels[,le="..."]} value
static void
s_write_sample (FILE *out, ep_series_t *series, const char *suffix, const char *le,
                double value)
{
    family_t *family = series->family;
    fprintf (out, "%s%s", family->name, suffix);
    if (family->nlabels || le) {
        fputc ('{', out);
        for (size_t i = 0; i < family->nlabels; i++) {
            fprintf (out, "%s%s=\"", i? ",": "", family->labels [i]);
            s_write_escaped (out, series->values [i], true);
            fputc ('"', out);
        }
        if (le)
            fprintf (out, "%sle=\"%s\"", family->nlabels? ",": "", le);
        fputc ('}', out);
    }
    char buf [32];
    fprintf (out, " %s\n", s_format_value (value, buf, sizeof buf));
}

static void
s_family_render (family_t *family, FILE *out)
{
    fprintf (out, "# HELP %s ", family->name);
    s_write_escaped (out, family->help, false);
    fprintf (out, "\n# TYPE %s %s\n", family->name, s_kind_name [family->kind]);

    ep_series_t *series = (ep_series_t *) zlistx_first (family->series);
    for (; series; series = (ep_series_t *) zlistx_next (family->series)) {
        double value = atomic_load_explicit (&series->value, memory_order_relaxed);
        if (family->kind != KIND_HISTOGRAM) {
            s_write_sample (out, series, "", NULL, value);
            continue;
        }
        //  Buckets are stored apart and summed here, so _count always
        //  equals the +Inf bucket even while observations arrive.
        uint64_t cumulative = 0;
        char le [32];
        for (size_t i = 0; i <= family->nbounds; i++) {
            cumulative += atomic_load_explicit (&series->buckets [i], memory_order_relaxed);
            const char *bound = i < family->nbounds
                              ? s_format_value (family->bounds [i], le, sizeof le): "+Inf";
            s_write_sample (out, series, "_bucket", bound, (double) cumulative);
        }
        s_write_sample (out, series, "_sum", NULL, value);
        s_write_sample (out, series, "_count", NULL, (double) cumulative);
    }
}

//  Counts the entries of /proc/self/fd, less the one reading it.
static int
s_open_fds (void)
{
    DIR *dir = opendir ("/proc/self/fd");
    if (!dir)
        return -1;
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir (dir)))
        if (entry->d_name [0] != '.')
            count++;
    closedir (dir);
    return count - 1;
}

//  Refreshes the process_* series from /proc/self. Called under the lock.
static void
s_refresh_process (ep_metrics_t *self)
{
    FILE *file = fopen ("/proc/self/stat", "r");
    char line [1024] = "";
    if (file) {
        if (!fgets (line, sizeof line, file))
            line [0] = 0;
        fclose (file);
    }
    //  The command name (field 2) may hold spaces and parentheses: parse
    //  from the last ')'. Then fields 14-15 are CPU ticks, 22 the start in
    //  ticks after boot, 23 virtual bytes, 24 resident pages.
    char *rest = strrchr (line, ')');
    unsigned long utime, stime, vsize;
    unsigned long long start;
    long rss;
    if (rest && sscanf (rest + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu"
                        " %*d %*d %*d %*d %*d %*d %llu %lu %ld",
                        &utime, &stime, &start, &vsize, &rss) == 5) {
        double ticks = (double) sysconf (_SC_CLK_TCK);
        s_series_store (self->cpu, (utime + stime) / ticks);
        s_series_store (self->vsz, (double) vsize);
        s_series_store (self->rss, (double) rss * sysconf (_SC_PAGESIZE));
        s_series_store (self->start_time, self->boot_time + start / ticks);
    }
    int fds = s_open_fds ();
    if (fds >= 0)
        s_series_store (self->open_fds, fds);
    struct rlimit limit;
    if (getrlimit (RLIMIT_NOFILE, &limit) == 0)
        s_series_store (self->max_fds, (double) limit.rlim_cur);
    //  Counted by the process (ep_fdlimit), as the limit is the process's.
    for (int what = 0; what < EP_FDLIMIT_KINDS; what++)
        s_series_store (self->fd_refusals [what], (double) ep_fdlimit_refusals ((ep_fdlimit_what_t) what));
    s_series_store (self->fd_reached, (double) ep_fdlimit_reached_count ());
}

char *
ep_metrics_render (ep_metrics_t *self)
{
    EP_ASSERT (self);
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    EP_ASSERT (out);
    pthread_mutex_lock (&self->lock);
    s_refresh_process (self);
    family_t *family = (family_t *) zlistx_first (self->families);
    for (; family; family = (family_t *) zlistx_next (self->families))
        s_family_render (family, out);
    pthread_mutex_unlock (&self->lock);
    EP_ASSERT (fclose (out) == 0);
    return text;
}


//  --------------------------------------------------------------------------
//  The registry

//  Boot time from /proc/stat ("btime N"), to turn the start tick into a date.
static double
s_boot_time (void)
{
    double boot = 0;
    FILE *file = fopen ("/proc/stat", "r");
    if (file) {
        char line [256];
        while (fgets (line, sizeof line, file))
            if (sscanf (line, "btime %lf", &boot) == 1)
                break;
        fclose (file);
    }
    return boot;
}

static ep_series_t *
s_process_gauge (ep_metrics_t *self, const char *name, const char *help)
{
    return ep_gauge_series (ep_metrics_gauge (self, name, help, 0, NULL), NULL);
}

ep_metrics_t *
ep_metrics_new (const char *service)
{
    EP_ASSERT (service);
    ep_metrics_t *self = (ep_metrics_t *) zmalloc (sizeof (ep_metrics_t));
    EP_ASSERT (pthread_mutex_init (&self->lock, NULL) == 0);
    self->families = zlistx_new ();
    zlistx_set_destructor (self->families, (zlistx_destructor_fn *) s_family_destroy);
    self->boot_time = s_boot_time ();

    ep_gauge_t *build = ep_metrics_gauge (self, "edgeplane_build_info",
        "Which service and version this is; always 1.",
        2, (const char *[]) { "service", "version" });
    ep_gauge_set (build, (const char *[]) { service, EP_VERSION }, 1);

    self->cpu = ep_counter_series (ep_metrics_counter (self, "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds.", 0, NULL), NULL);
    self->rss = s_process_gauge (self, "process_resident_memory_bytes",
        "Resident memory size in bytes.");
    self->vsz = s_process_gauge (self, "process_virtual_memory_bytes",
        "Virtual memory size in bytes.");
    self->open_fds = s_process_gauge (self, "process_open_fds",
        "Number of open file descriptors.");
    self->max_fds = s_process_gauge (self, "process_max_fds",
        "Maximum number of open file descriptors.");
    self->start_time = s_process_gauge (self, "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.");
    ep_counter_t *refusals = ep_metrics_counter (self, "edgeplane_fd_limit_refusals_total",
        "New work refused at the descriptor limit, by what (http, socket, channel).",
        1, (const char *[]) { "what" });
    for (int what = 0; what < EP_FDLIMIT_KINDS; what++)
        self->fd_refusals [what] = ep_counter_series (refusals,
            (const char *[]) { ep_fdlimit_what_name ((ep_fdlimit_what_t) what) });
    self->fd_reached = ep_counter_series (ep_metrics_counter (self, "edgeplane_fd_limit_reached_total",
        "Times the process was found at its descriptor limit (checked once a second).", 0, NULL), NULL);

    self->requests = ep_metrics_counter (self, "edgeplane_requests_total",
        "Requests handled, by operation and status code.",
        2, (const char *[]) { "op", "code" });
    self->durations = ep_metrics_histogram (self, "edgeplane_request_duration_seconds",
        "Time to handle a request, by operation.",
        1, (const char *[]) { "op" }, 0, NULL);
    self->published = ep_metrics_counter (self, "edgeplane_published_total",
        "Events published, by stream.", 1, (const char *[]) { "stream" });
    self->gaps = ep_metrics_counter (self, "edgeplane_stream_gaps_total",
        "Sequence gaps detected in received streams, by stream.",
        1, (const char *[]) { "stream" });
    return self;
}

void
ep_metrics_destroy (ep_metrics_t **self_p)
{
    ep_metrics_t *self = *self_p;
    if (self) {
        zlistx_destroy (&self->families);
        pthread_mutex_destroy (&self->lock);
        free (self);
        *self_p = NULL;
    }
}

ep_counter_t *
ep_metrics_published (ep_metrics_t *self)
{
    return self->published;
}

ep_counter_t *
ep_metrics_stream_gaps (ep_metrics_t *self)
{
    return self->gaps;
}

void
ep_metrics_request_done (ep_metrics_t *self, const char *op, const char *code,
                         double seconds)
{
    ep_counter_inc (self->requests, (const char *[]) { op, code }, 1);
    ep_histogram_observe (self->durations, (const char *[]) { op }, seconds);
}
