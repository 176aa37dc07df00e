#!/usr/bin/env python3
"""bench/compare.py: two sets of bench/run results, figure by figure.

    bench/compare.py --before a1.json a2.json a3.json --after b1.json b2.json b3.json

Each file is a bench/run output (quick.json or latest.json). For every
numeric figure present in both sets (benchmarks' fields, nested ones as
a.b.c; the series and the run's own description left out), it prints the
median of each set and their difference in per cent, and marks the
figures whose medians differ by more than --tolerance (10 %). Exits 0;
the table is the verdict, read with the machine's load in mind (each
benchmark reports what else ran).
"""
import argparse
import json
import statistics
import sys

SKIPPED = {"series", "run"}
NOT_FIGURES = {"date", "mode", "statistic", "machine", "benchmark"}


def figures(value, prefix=""):
    """The numeric leaves of value, as {dotted.name: number}."""
    found = {}
    if isinstance(value, dict):
        for key, item in value.items():
            if key in NOT_FIGURES:
                continue
            found.update(figures(item, prefix + key + "."))
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        found[prefix[:-1]] = float(value)
    return found


def load(paths):
    """{figure: [value per run]} over the runs in paths."""
    runs = {}
    for path in paths:
        with open(path) as handle:
            results = json.load(handle)
        for bench, body in results.items():
            if bench in SKIPPED:
                continue
            for name, number in figures(body, bench + ".").items():
                runs.setdefault(name, []).append(number)
    return runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", nargs="+", required=True)
    parser.add_argument("--after", nargs="+", required=True)
    parser.add_argument("--tolerance", type=float, default=10.0, help="per cent")
    args = parser.parse_args()
    before, after = load(args.before), load(args.after)
    common = sorted(set(before) & set(after))
    if not common:
        sys.exit("bench/compare.py: no figure is in both sets (give bench/run's JSON files)")
    outside = 0
    print("| figure | before (median of %d) | after (median of %d) | change |" %
          (len(args.before), len(args.after)))
    print("|---|---:|---:|---:|")
    for name in common:
        a, b = statistics.median(before[name]), statistics.median(after[name])
        if a == 0 and b == 0:
            change, mark = 0.0, ""
        elif a == 0:
            change, mark = float("inf"), " **"
        else:
            change = (b - a) / abs(a) * 100
            mark = " **" if abs(change) > args.tolerance else ""
        outside += bool(mark)
        print("| %s | %.6g | %.6g | %+.1f %%%s |" % (name, a, b, change, mark))
    print("\n%d figures in both; %d differ by more than %.0f %% (marked **)" %
          (len(common), outside, args.tolerance))


if __name__ == "__main__":
    main()
