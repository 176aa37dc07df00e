#!/usr/bin/python3
"""test_judge.py: the soak's judgement fails what it must and passes what
it must, on made-up series (no processes). Prints 'N passed, N failed'."""
import math
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import judge  # noqa: E402

WARMUP = 60
LIMITS = {"svc.rss_kib": 256.0}


def run(values, limits=LIMITS, caps=None, step=5, column="svc.rss_kib"):
    series = {column: [(i * step, v) for i, v in enumerate(values)]}
    return judge.judge(series, limits, caps or {}, WARMUP)[0]


def test_steady_growth_fails():
    # 10 MiB RSS growing 1 MiB a minute: a leak, four times the limit.
    v = run([10240 + i * 5 / 60 * 1024 for i in range(120)])
    assert not v.ok and "grows" in v.problems[0], v.problems
    assert abs(v.slope - 1024) < 1, v.slope


def test_flat_passes():
    v = run([10240] * 120)
    assert v.ok and v.slope == 0, v.problems


def test_noisy_flat_passes():
    rng = random.Random(7)
    v = run([10240 + rng.uniform(-200, 200) for _ in range(120)])
    assert v.ok, v.problems


def test_growth_only_in_warmup_passes():
    # Caches filling during the first minutes, then flat: not a leak.
    v = run([min(i, 30) * 400 for i in range(120)])
    assert v.ok, v.problems


def test_growth_in_second_half_fails():
    # Flat for the first half, then growing: the judged half grows.
    v = run([5000 if i < 60 else 5000 + (i - 60) * 40 for i in range(120)])
    assert not v.ok, (v.slope, v.problems)


def test_sawtooth_passes():
    # A WAL that fills and is checkpointed back: bounded, no trend.
    v = run([(i % 12) * 100.0 for i in range(120)], limits={"svc.rss_kib": 64.0})
    assert v.ok, (v.slope, v.problems)


def test_cap_exceeded_fails():
    v = run([900, 950, 1001] + [10] * 117, limits={"svc.cache": 1e9}, caps={"svc.cache": 1000},
            step=30, column="svc.cache")
    assert not v.ok and "cap" in v.problems[-1], v.problems


def test_cap_respected_passes():
    v = run([1000] * 120, limits={"svc.cache": 1.0}, caps={"svc.cache": 1000}, column="svc.cache")
    assert v.ok, v.problems


def test_missing_figure_fails():
    verdict = judge.judge({}, LIMITS, {}, WARMUP)[0]
    assert not verdict.ok and "samples" in verdict.problems[0], verdict.problems


def test_a_spike_in_a_smoothed_figure_passes():
    # Descriptors less connections read mid-join: two samples out of line.
    values = [35.0] * 120
    values[100] = values[101] = 80.0
    v = run(values, limits={"svc.fds_less": 0.5}, column="svc.fds_less")
    assert not v.ok, "unsmoothed, the spike reads as growth: %s" % v.slope
    series = {"svc.fds_less": [(i * 5, x) for i, x in enumerate(values)]}
    v = judge.judge(series, {"svc.fds_less": 0.5}, {}, WARMUP, smoothed={"svc.fds_less"})[0]
    assert v.ok and v.slope == 0, (v.slope, v.problems)


def test_a_leak_in_a_smoothed_figure_fails():
    # One descriptor lost a minute: the median follows it.
    series = {"svc.fds_less": [(i * 5, 35 + i * 5 // 60) for i in range(120)]}
    v = judge.judge(series, {"svc.fds_less": 0.5}, {}, WARMUP, smoothed={"svc.fds_less"})[0]
    assert not v.ok and abs(v.slope - 1) < 0.1, (v.slope, v.problems)


def test_running_median():
    points = [(0, 1), (1, 9), (2, 1), (3, 2), (4, 3)]
    assert [v for _, v in judge.running_median(points)] == [1, 2, 2, 3, 2]
    assert judge.running_median([]) == []


def test_slope_units():
    assert math.isclose(judge.slope_per_minute([(0, 0), (60, 5), (120, 10)]), 5.0)
    assert judge.slope_per_minute([(0, 3)]) == 0.0


def test_table_says_fail():
    text = judge.table([run([i * 100 for i in range(120)])])
    assert "FAIL" in text and "svc.rss_kib" in text, text


def main():
    tests = [(name, f) for name, f in sorted(globals().items()) if name.startswith("test_")]
    failed = 0
    for name, f in tests:
        try:
            f()
            print("ok      %s" % name)
        except AssertionError as e:
            failed += 1
            print("FAILED  %s: %s" % (name, e))
    print("%d passed, %d failed" % (len(tests) - failed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
