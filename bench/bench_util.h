/*  bench_util.h: what every benchmark program needs besides its subject:
    CPU time of itself, of a child and of the whole machine (to show how
    loaded the machine was), the machine's description for the results,
    medians and rounding for the JSON figures.
*/
#ifndef BENCH_UTIL_H_INCLUDED
#define BENCH_UTIL_H_INCLUDED

#include "ep_prelude.h"
#include <jansson.h>

//  The cleanup bench_die runs before it exits (stopping what the
//  benchmark started), or NULL.
void
    bench_on_die (void (*cleanup) (void));

//  Prints "<program>: <message>" on stderr, runs the cleanup, exits 1.
void
    bench_die (const char *format, ...) __attribute__ ((format (printf, 1, 2), noreturn));

//  Seconds since from_us (ep_mono_us).
double
    bench_seconds (int64_t from_us);

//  utime + stime of this process, in us.
int64_t
    bench_self_cpu_us (void);

//  utime + stime of process pid (from /proc/<pid>/stat), in us; -1 if gone.
int64_t
    bench_proc_cpu_us (pid_t pid);

//  Busy CPU of the whole machine (all cores, all processes) from
//  /proc/stat, in us: with ours subtracted, what others used meanwhile.
int64_t
    bench_machine_busy_us (void);

//  {"nproc", "cpu_model", "kernel", "libzmq", "czmq", "openssl"}: a
//  benchmark adds what else its figures depend on (filesystem, sqlite).
json_t *
    bench_machine (void);

//  qsort comparator for doubles, ascending.
int
    bench_compare_doubles (const void *a, const void *b);

//  The median of count values (sorts them in place).
double
    bench_median (double *values, size_t count);

//  The p-th percentile (nearest rank) of count values (sorts them in place).
double
    bench_percentile (double *values, int count, double p);

//  A figure rounded for reading (3 decimal places), as JSON.
json_t *
    bench_real (double value);

#endif
