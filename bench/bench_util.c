/*  bench_util.c: what every benchmark program needs (bench_util.h). */
#include "bench_util.h"
#include <math.h>
#include <stdarg.h>
#include <errno.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <openssl/crypto.h>

int64_t
bench_self_cpu_us (void)
{
    struct rusage usage;
    EP_ASSERT (getrusage (RUSAGE_SELF, &usage) == 0);
    return (int64_t) (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000000
         + usage.ru_utime.tv_usec + usage.ru_stime.tv_usec;
}

int64_t
bench_proc_cpu_us (pid_t pid)
{
    char path [64];
    snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
    FILE *file = fopen (path, "r");
    if (!file)
        return -1;
    char buf [1024];
    size_t size = fread (buf, 1, sizeof buf - 1, file);
    fclose (file);
    buf [size] = 0;
    //  The command name may hold spaces and parentheses: fields start
    //  after the last ')'. utime and stime are fields 14 and 15.
    const char *fields = strrchr (buf, ')');
    unsigned long long utime, stime;
    if (!fields || sscanf (fields + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                           &utime, &stime) != 2)
        return -1;
    return (int64_t) ((utime + stime) * 1000000ull / (unsigned long long) sysconf (_SC_CLK_TCK));
}

int64_t
bench_machine_busy_us (void)
{
    FILE *file = fopen ("/proc/stat", "r");
    unsigned long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0,
                       irq = 0, softirq = 0, steal = 0;
    if (file) {
        if (fscanf (file, "cpu %llu %llu %llu %llu %llu %llu %llu %llu",
                    &user, &nice, &system, &idle, &iowait, &irq, &softirq, &steal) != 8)
            user = nice = system = irq = softirq = steal = 0;
        fclose (file);
    }
    (void) idle;
    (void) iowait;
    return (int64_t) ((user + nice + system + irq + softirq + steal) * 1000000ull
                      / (unsigned long long) sysconf (_SC_CLK_TCK));
}

json_t *
bench_machine (void)
{
    char model [256] = "unknown";
    FILE *file = fopen ("/proc/cpuinfo", "r");
    char line [512];
    while (file && fgets (line, sizeof line, file)) {
        if (strncmp (line, "model name", 10) == 0 && strchr (line, ':')) {
            const char *value = strchr (line, ':') + 1;
            while (*value == ' ')
                value++;
            snprintf (model, sizeof model, "%.*s", (int) strcspn (value, "\n"), value);
            break;
        }
    }
    if (file)
        fclose (file);
    struct utsname uts;
    uname (&uts);
    int major, minor, patch;
    zmq_version (&major, &minor, &patch);
    char zmq [32];
    snprintf (zmq, sizeof zmq, "%d.%d.%d", major, minor, patch);
    zsys_version (&major, &minor, &patch);
    char czmq [32];
    snprintf (czmq, sizeof czmq, "%d.%d.%d", major, minor, patch);
    return json_pack ("{s:I, s:s, s:s, s:s, s:s, s:s}",
                      "nproc", (json_int_t) sysconf (_SC_NPROCESSORS_ONLN),
                      "cpu_model", model, "kernel", uts.release, "libzmq", zmq, "czmq", czmq,
                      "openssl", OpenSSL_version (OPENSSL_VERSION));
}

int
bench_compare_doubles (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y? -1: x > y? 1: 0;
}

static void (*s_cleanup) (void);

void
bench_on_die (void (*cleanup) (void))
{
    s_cleanup = cleanup;
}

void
bench_die (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    fprintf (stderr, "%s: ", program_invocation_short_name);
    vfprintf (stderr, format, args);
    fprintf (stderr, "\n");
    va_end (args);
    if (s_cleanup)
        s_cleanup ();
    exit (1);
}

double
bench_seconds (int64_t from_us)
{
    return (ep_mono_us () - from_us) / 1e6;
}

double
bench_percentile (double *values, int count, double p)
{
    qsort (values, (size_t) count, sizeof (double), bench_compare_doubles);
    int rank = (int) ceil (p / 100 * count);
    return values [rank > 0? rank - 1: 0];
}

double
bench_median (double *values, size_t count)
{
    if (count == 0)
        return 0;
    qsort (values, count, sizeof (double), bench_compare_doubles);
    return count % 2? values [count / 2]: (values [count / 2 - 1] + values [count / 2]) / 2;
}

json_t *
bench_real (double value)
{
    return json_real (round (value * 1000) / 1000);
}
