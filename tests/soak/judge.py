"""judge.py: the soak's verdict on its samples, apart from any process so a
unit test (test_judge.py) can show it fails a growing series and passes a
flat one.

A figure "keeps growing" when the least-squares slope of its samples over
the second half of the run (after the warm-up, which is within the first
half) is above the figure's limit, in units per minute. A least-squares
slope over many samples is robust to a single step or a sawtooth (a
SQLite WAL that fills and is checkpointed, malloc arenas that grow in
steps) and still catches a steady leak. A bounded structure also fails
when any sample after the warm-up is above its cap.

A figure that is the difference of two readings taken a moment apart
(descriptors less connections: /proc now, a gauge refreshed every
second) is judged on its running median of 5 samples: a reading taken
while routers join, before the gauge caught up, is one or two samples
out of line, where a leak is in every sample (a median follows a trend
unchanged).
"""


def slope_per_minute(points):
    """Least-squares slope of [(t_seconds, value)], per minute; 0 for < 2 points."""
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    cov = sum((t - mt) * (v - mv) for t, v in points)
    return cov / var * 60.0


def running_median(points, width=5):
    """[(t, v)] with each v the median of the width samples centred on it
    (fewer at the ends)."""
    half = width // 2
    out = []
    for i, (t, _) in enumerate(points):
        window = sorted(v for _, v in points[max(0, i - half):i + half + 1])
        out.append((t, window[len(window) // 2]))
    return out


def second_half(points, warmup):
    """The samples judged for growth: those in the second half of the run,
    and never before the warm-up's end."""
    if not points:
        return []
    start, end = points[0][0], points[-1][0]
    begin = max(start + warmup, start + (end - start) / 2.0)
    return [(t, v) for t, v in points if t >= begin]


class Verdict:
    def __init__(self, column, slope, limit, peak, cap, samples, problems):
        self.column = column        # "service.figure"
        self.slope = slope          # units per minute over the second half
        self.limit = limit          # the table's limit on that slope
        self.peak = peak            # largest sample after the warm-up
        self.cap = cap              # bounded structure's cap, or None
        self.samples = samples      # how many samples the slope saw
        self.problems = problems    # why it failed; empty: passed

    @property
    def ok(self):
        return not self.problems


def judge(series, limits, caps, warmup, min_samples=5, smoothed=()):
    """Verdicts for series {column: [(t, value)]} against limits {column:
    slope per minute} and caps {column: cap} (a column without a cap is
    not a bounded structure). Every column of limits must have samples: a
    figure that vanished from the scrape is a failure, not a pass. The
    columns in smoothed are judged on their running median."""
    verdicts = []
    for column in sorted(limits):
        points = [(t, v) for t, v in series.get(column, []) if v is not None]
        if column in smoothed:
            points = running_median(points)
        problems = []
        judged = second_half(points, warmup)
        if len(judged) < min_samples:
            problems.append("only %d samples in the second half (at least %d needed)"
                            % (len(judged), min_samples))
        slope = slope_per_minute(judged)
        limit = limits[column]
        if slope > limit:
            problems.append("grows %.4g/min over the second half, above its limit %.4g/min"
                            % (slope, limit))
        after = [v for t, v in points if points and t >= points[0][0] + warmup]
        peak = max(after) if after else None
        cap = caps.get(column)
        if cap is not None and peak is not None and peak > cap:
            problems.append("reached %.4g, above its cap %.4g" % (peak, cap))
        verdicts.append(Verdict(column, slope, limit, peak, cap, len(judged), problems))
    return verdicts


def table(verdicts):
    """The summary table, one line per figure."""
    lines = ["%-44s %12s %12s %12s %10s  %s" % ("figure", "slope/min", "limit/min", "peak", "cap", "verdict")]
    for v in verdicts:
        lines.append("%-44s %12.4g %12.4g %12s %10s  %s" % (
            v.column, v.slope, v.limit, "-" if v.peak is None else "%.4g" % v.peak,
            "-" if v.cap is None else "%.4g" % v.cap,
            "ok" if v.ok else "FAIL: " + "; ".join(v.problems)))
    return "\n".join(lines)
