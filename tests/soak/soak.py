#!/usr/bin/python3
"""soak.py BIN_DIR [OUT_DIR] [--long] [--routers N] [--seconds S] [--interval S]
[--warmup S] [--seed N]: the whole control plane (`edgeplane up`, a temp data
dir, ports from ready files) under a churning fleet, with every service's
figures sampled into OUT_DIR/soak.csv, plotted (OUT_DIR/soak.png, gnuplot)
and judged: after the warm-up the run fails if a figure keeps growing (its
slope over the second half above its limit in LIMITS below) or a bounded
structure goes above its cap. Prints the summary table (OUT_DIR/summary.txt).

Short form (default, CI): 50 routers, 5 minutes (2 of warm-up), a sample every 3 s.
Long form (--long, by hand): 200 routers, 30 minutes, a sample every 10 s.

The fleet: groups of 10 routers, each group one edgeplane-router process
(ids soak-<g>-<i>), each router holding 3 sessions and closing and
replacing 0.2 a second. The churn, one action a second, seeded: a group
leaves (SIGTERM) and later joins again, a router is re-hosted (`edgeplane
router update --host ...`), a router is deleted and later created again.
"""
import argparse
import csv
import fnmatch
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
sys.path.insert(0, HERE)
import ep_up  # noqa: E402
import judge  # noqa: E402

SERVICES = ep_up.SERVICES + ["console"]       # console: only when up runs one
GROUP = 10                                  # routers per fleet process
HOSTABLE = ["web", "ssh", "db"]

# Each service's database in the data dir (a file name pattern): its size
# is db_kib. An SQLite database's -wal and -shm are wal_kib, apart: the WAL
# is a sawtooth (emptied by a TRUNCATE checkpoint every 10 s, reused from
# its start after each automatic checkpoint at 1000 pages), 0 to 4 MiB
# within seconds on the reaper's, so summed with the database its slope
# over two minutes was that sawtooth's phase, not growth. The watchdog's
# is its event outbox file (cut down once its events are delivered).
DATABASES = {"model": "model.db", "terminators": "terminators.db", "reaper": "sessions.db",
             "watchdog": "watchdog-*.outbox"}
SQLITE = {"model", "terminators", "reaper"}
# The WAL's cap: the automatic checkpoint's 1000 pages of 4 KiB, plus the
# transaction that crosses them and the -shm index (32 KiB). A WAL above
# it means checkpoints cannot finish (a reader holds them back).
WAL_CAP_KIB = 8192

# Bounded structures and other state, from each service's /metrics: figure
# name -> (metric family, label filter or None). The family's series that
# match are summed.
GAUGES = {
    "bus": {"subscriptions": ("edgeplane_bus_subscriptions", None)},
    "model": {"reply_cache": ("edgeplane_rpc_reply_cache_entries", None)},
    "terminators": {"reply_cache": ("edgeplane_rpc_reply_cache_entries", None),
                    "dedupe_ids": ("edgeplane_dedupe_ids", None),
                    "terminators": ("edgeplane_terminators", None),
                    "tombstones": ("edgeplane_terminator_tombstones", None),
                    "parked": ("edgeplane_terminators_parked", None)},
    "reaper": {"reply_cache": ("edgeplane_rpc_reply_cache_entries", None),
               "sessions_open": ("edgeplane_sessions", 'state="active"'),
               "sessions_closed": ("edgeplane_sessions", 'state="closed"'),
               "cleanup_queue": ("edgeplane_reaper_cleanup_queue_depth", None),
               "dedupe_ids": ("edgeplane_dedupe_ids", None),
               "outbox": ("edgeplane_outbox_events", None)},
    "watchdog": {"reply_cache": ("edgeplane_rpc_reply_cache_entries", None),
                 "connections": ("edgeplane_connections", None),
                 "view_entities": ("edgeplane_model_view_entities", None),
                 "channel_buffered": ("edgeplane_channel_buffered_bytes", None),
                 "dedupe_ids": ("edgeplane_dedupe_ids", None),
                 "outbox": ("edgeplane_outbox_events", None)},
    "console": {"dedupe_ids": ("edgeplane_dedupe_ids", None)},
}
# Figures that follow the fleet (a group leaving takes its routers'
# connections and subscriptions with it) are also judged less the fleet's
# share: column -> (column, column subtracted). What remains is the
# services' own, which must stay flat. The two are read a moment apart
# and the watchdog refreshes its connection gauges every second, so a
# sample taken while a group joins is out of line: these are judged on
# their running median (judge.py).
DERIVED = {
    "watchdog.fds_less_connections": ("watchdog.fds", "watchdog.connections"),
    "bus.subscriptions_less_connections": ("bus.subscriptions", "watchdog.connections"),
}

# The services' time and size constants, shortened so that each structure
# bounded by time or count (closed sessions kept for --retention, tombstones
# for their TTL, sessions of a router that left until they expire, the
# console's ring of recent events and its per-minute aggregates, an hour by
# default, the model's replies kept for retries, 10 minutes, and each
# subscriber's duplicate-id window, 65,536 ids: 25 to 50 minutes at the
# short form's rates) reaches its steady state within the warm-up: the soak
# judges the steady state, and the defaults (24 h) would be a slope for a
# day. The long form keeps the adaptive liveness of a real deployment.
ENV_SHORT = {"EDGEPLANE_SESSION_RETENTION": "30s", "EDGEPLANE_TERMINATORS_TOMBSTONE_TTL": "30s",
             "EDGEPLANE_SESSION_LIVENESS": "fixed", "EDGEPLANE_SESSION_EVASIVE": "10s",
             "EDGEPLANE_SESSION_EXPIRE": "20s", "EDGEPLANE_ROUTER_OFFLINE_GRACE": "5s",
             "EDGEPLANE_CLEANUP_DEADLINE": "5s",
             "EDGEPLANE_CONSOLE_RING": "1000", "EDGEPLANE_CONSOLE_STATS_MINUTES": "1",
             "EDGEPLANE_DEDUPE_WINDOW": "1000", "EDGEPLANE_MODEL_REPLY_TTL": "60s"}
ENV_LONG = {"EDGEPLANE_SESSION_RETENTION": "4m", "EDGEPLANE_TERMINATORS_TOMBSTONE_TTL": "4m",
            "EDGEPLANE_CONSOLE_RING": "10000", "EDGEPLANE_CONSOLE_STATS_MINUTES": "5",
            "EDGEPLANE_DEDUPE_WINDOW": "10000", "EDGEPLANE_MODEL_REPLY_TTL": "5m"}

# Caps read from the services themselves: figure -> the capacity gauge.
CAP_GAUGES = {"reply_cache": "edgeplane_rpc_reply_cache_capacity",
              "dedupe_ids": "edgeplane_dedupe_capacity",
              "outbox": "edgeplane_outbox_capacity"}

# The limits: the largest slope (units per minute, least squares over the
# second half of the run) each figure may have. A steady leak of one
# allocation per request or per session, or one descriptor per connection,
# shows up far above these; the noise of a healthy run (malloc arenas, a
# WAL filling to its checkpoint, routers joining and leaving) stays under.
# service       figure              limit/min   why this limit
LIMITS_TABLE = """
*               rss_kib             256         a leak of 100 B per session replaced (10/s at 50 routers) is 58 KiB/min; arenas settle in the warm-up, so 256 KiB/min is a steady leak, not noise
*               fds                 0.5         a service's own sockets and files are a fixed set; any lasting growth, even one every two minutes, is a leak
watchdog        fds                 20          one per router connected: moves with leaves and joins as connections do (judged less them below)
model           db_kib              128         re-hosts and re-creates of the same routers, saved replies pruned after their TTL (pages reused); the change log keeps 100000 revisions, a row per write for a day at the churn's rate: ~15 KiB/min
terminators     db_kib              128         terminators are replaced in place and tombstones expire: pages freed are reused
reaper          db_kib              128         closed sessions are pruned after their retention and outbox rows deleted when echoed: pages freed are reused
watchdog        db_kib              64          its outbox file, cut down whenever its events are all delivered: a few KiB at most
*               wal_kib             4096        a sawtooth (0 to 4 MiB within 10 s on the reaper's): its slope over the judged half is the sawtooth's phase; bounded by its cap, which is what is checked
reaper          outbox              20          session events waiting for their echo: momentary, bounded by --outbox-max
watchdog        outbox              20          events waiting for their echo: momentary, bounded by --outbox-max
*               dedupe_ids          2000        each subscriber's duplicate-id window fills to its cap (EDGEPLANE_DEDUPE_WINDOW) at the rate ids arrive, then turns over: bounded by its cap
bus             subscriptions       20          the services' own (a fixed set) and one per router online: moves with leaves and joins
bus             subscriptions_less_connections  0.5  less one per connection: the services' own, a fixed set
model           reply_cache         2000        replies are kept for EDGEPLANE_MODEL_REPLY_TTL (60 s short, 5 min long; capacity 100000): the cache fills for that long, then turns over; bounded by its cap
watchdog        view_entities       5           its copy of the model: routers deleted are created again, so the count stays within the churn's swing
terminators     reply_cache         1000        kept 60 s (capacity 1000): flat after the first minute; bounded by its cap
terminators     terminators         30          one per (router, hosted service): re-hosting and leaves move it within a fixed range
terminators     tombstones          30          tombstones expire after their grace: flat once the first ones expire
terminators     parked              5           writes parked behind a commit: momentary
reaper          reply_cache         1000        kept 60 s (capacity 1000): as the terminators'
reaper          sessions_open       30          3 per router online: moves with leaves and joins, no trend
reaper          sessions_closed     300         closed sessions wait for their retention, then go: growth until then is the churn filling it
reaper          cleanup_queue       20          sessions of a router gone, being cleaned up: drains
watchdog        reply_cache         1000        kept 60 s (capacity 1000): as the terminators'
watchdog        connections         20          one per router online: a group of 10 leaving or joining near the end of a short run is a slope of ~10/min
watchdog        fds_less_connections  0.5       descriptors beyond one per connection: the watchdog's own sockets, a fixed set
watchdog        channel_buffered    65536       bytes queued to routers: momentary, bounded per peer
"""


def parse_limits(text, services):
    """{(service, figure): (limit, why)} from LIMITS_TABLE, '*' expanded."""
    limits = {}
    for line in text.strip().splitlines():
        service, figure, limit, why = line.split(None, 3)
        for s in (services if service == "*" else [service]):
            limits[(s, figure)] = (float(limit), why)
    return limits


def metric_names():
    """Every metric family the soak reads (tests/prometheus checks each is scraped)."""
    names = {family for figures in GAUGES.values() for family, _ in figures.values()}
    return sorted(names | set(CAP_GAUGES.values()))


def metric_value(body, family, label=None):
    """Sum of family's series in an exposition body (those whose labels hold
    label, if given), or None when the family has no series."""
    total, found = 0.0, False
    pattern = re.compile(r"^%s(\{[^}]*\})?\s+(\S+)" % re.escape(family), re.M)
    for m in pattern.finditer(body):
        if label and label not in (m.group(1) or ""):
            continue
        try:
            value = float(m.group(2))
        except ValueError:
            continue
        if value == value:          # NaN: a series without a value yet
            total += value
            found = True
    return total if found else None


def proc_figures(pid):
    """(RSS KiB, open descriptors) of pid, or (None, None) when it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            rss = int(re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M).group(1))
        return rss, len(os.listdir("/proc/%d/fd" % pid))
    except (OSError, AttributeError):
        return None, None


def files_kib(data_dir, patterns):
    """Total size of the files in data_dir matching any of patterns, KiB."""
    total = 0
    for f in os.listdir(data_dir):
        if any(fnmatch.fnmatchcase(f, p) for p in patterns):
            try:
                total += os.path.getsize(os.path.join(data_dir, f))
            except OSError:
                pass
    return total / 1024.0


class Fleet:
    """Groups of routers, one edgeplane-router process each."""

    def __init__(self, up, out, groups):
        self.up, self.out, self.groups = up, out, groups
        self.bundle = os.path.join(up.dir, "fleet")
        self.procs = {}
        self.logs = {}

    def start(self, g):
        log = open(os.path.join(self.out, "fleet-%d.log" % g), "a")
        self.procs[g] = subprocess.Popen(
            [os.path.join(self.up.bin_dir, "edgeplane-router"), "--count", str(GROUP),
             "--prefix", "soak-%d-" % g, "--bundle", self.bundle, "--sessions", "3",
             "--churn", "0.2", "--heartbeat", "2s", "--progress", "60s"],
            env=self.up.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def stop(self, g):
        proc = self.procs.pop(g)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10 * ep_up.SLOWDOWN)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def running(self):
        return sorted(self.procs)

    def check(self):
        """Raises when a group exited by itself (it should run until stopped)."""
        for g, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError("fleet group %d exited by itself (%d); see %s/fleet-%d.log"
                                     % (g, proc.returncode, self.out, g))

    def stop_all(self):
        for g in list(self.procs):
            self.stop(g)


def cli_ok(up, *args):
    rc, out = up.cli(*args)
    if rc != 0:
        raise AssertionError("edgeplane %s failed (%d): %s" % (" ".join(args), rc, out))
    return out


def hosts(rng):
    chosen = rng.sample(HOSTABLE, rng.randint(1, len(HOSTABLE)))
    return [a for s in chosen for a in ("--host", "%s:%d" % (s, rng.randint(1, 100)))]


def seed(up, groups, rng):
    for s in HOSTABLE:
        cli_ok(up, "service", "create", s, "--exist-ok")
    bundle = os.path.join(up.dir, "fleet")
    for g in range(groups):
        prefix = "soak-%d-" % g
        cli_ok(up, "identity", "create", "--count", str(GROUP), "--prefix", "id-" + prefix)
        for i in range(GROUP):     # each its own hosted services, as re-hosting leaves them
            cli_ok(up, "router", "create", "%s%d" % (prefix, i), *hosts(rng))
        cli_ok(up, "pki", "issue", "router", "--count", str(GROUP), "--prefix", prefix, "--out", bundle)


class Churn:
    """One action a second: leaves and joins of groups, re-hosts, deletes and
    re-creates of routers. Keeps at most a fifth of the groups away and a
    twentieth of the routers deleted, each for 5 to 20 s."""

    def __init__(self, up, fleet, groups, rng):
        self.up, self.fleet, self.groups, self.rng = up, fleet, groups, rng
        self.away = {}          # group -> when it comes back
        self.deleted = {}       # router id -> when it is created again
        self.counts = {"leave": 0, "join": 0, "rehost": 0, "delete": 0, "recreate": 0}

    def step(self, now):
        for g, back in list(self.away.items()):
            if now >= back:
                del self.away[g]
                self.fleet.start(g)
                self.counts["join"] += 1
                return
        for r, back in list(self.deleted.items()):
            if now >= back:
                del self.deleted[r]
                cli_ok(self.up, "router", "create", r, "--exist-ok", *hosts(self.rng))
                self.counts["recreate"] += 1
                return
        action = self.rng.choice(["leave", "rehost", "rehost", "delete"])
        router = "soak-%d-%d" % (self.rng.randrange(self.groups), self.rng.randrange(GROUP))
        if action == "leave" and len(self.away) < max(1, self.groups // 5):
            g = self.rng.choice(self.fleet.running())
            self.fleet.stop(g)
            self.away[g] = now + self.rng.uniform(5, 20)
            self.counts["leave"] += 1
        elif action == "delete" and router not in self.deleted \
                and len(self.deleted) < max(1, self.groups * GROUP // 20):
            cli_ok(self.up, "router", "delete", router)
            self.deleted[router] = now + self.rng.uniform(5, 20)
            self.counts["delete"] += 1
        elif router not in self.deleted:
            cli_ok(self.up, "router", "update", router, *hosts(self.rng))
            self.counts["rehost"] += 1


class Sampler:
    def __init__(self, up, services):
        self.up, self.services = up, services
        self.pids = {s: up.ready(s)["pid"] for s in services}
        self.columns = ["t_s"]
        self.caps = {}
        for s in services:
            self.columns += ["%s.rss_kib" % s, "%s.fds" % s]
            if s in DATABASES:
                self.columns.append("%s.db_kib" % s)
            if s in SQLITE:
                self.columns.append("%s.wal_kib" % s)
                self.caps["%s.wal_kib" % s] = WAL_CAP_KIB
            self.columns += ["%s.%s" % (s, f) for f in GAUGES.get(s, {})]
        self.columns += [c for c, (a, b) in DERIVED.items() if a in self.columns and b in self.columns]
        self.rows = []

    def sample(self, t):
        row = {"t_s": round(t, 1)}
        for s in self.services:
            ready = self.up.ready(s)
            if not ready or ready.get("pid") != self.pids[s]:
                raise AssertionError("the %s restarted (pid %s, then %s): see %s/run/%s.log"
                                     % (s, self.pids[s], ready and ready.get("pid"), self.up.dir, s))
            rss, fds = proc_figures(self.pids[s])
            if rss is None:
                raise AssertionError("the %s (pid %d) is gone: see %s/run/%s.log"
                                     % (s, self.pids[s], self.up.dir, s))
            row["%s.rss_kib" % s], row["%s.fds" % s] = rss, fds
            if s in DATABASES:
                row["%s.db_kib" % s] = files_kib(self.up.dir, [DATABASES[s]])
            if s in SQLITE:
                row["%s.wal_kib" % s] = files_kib(self.up.dir, [DATABASES[s] + "-wal", DATABASES[s] + "-shm"])
            if s in GAUGES:
                status, body = ep_up.http_get(self.up.endpoint(s, "http"), "/metrics")
                if status != 200:
                    raise AssertionError("GET /metrics of the %s: %d" % (s, status))
                for figure, (family, label) in GAUGES[s].items():
                    row["%s.%s" % (s, figure)] = metric_value(body, family, label)
                    if figure in CAP_GAUGES:
                        cap = metric_value(body, CAP_GAUGES[figure])
                        if cap is not None:
                            self.caps["%s.%s" % (s, figure)] = cap
        for column, (a, b) in DERIVED.items():
            if row.get(a) is not None and row.get(b) is not None:
                row[column] = row[a] - row[b]
        self.rows.append(row)

    def series(self):
        return {c: [(r["t_s"], r.get(c)) for r in self.rows] for c in self.columns[1:]}

    def write_csv(self, path):
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.columns)
            w.writeheader()
            for r in self.rows:
                w.writerow({c: ("" if r.get(c) is None else r[c]) for c in self.columns})


def plot(csv_path, png_path, columns, title):
    """A page of panels: RSS, descriptors, databases, then each service's
    structures, each column a line (gnuplot, Debian's gnuplot-nox)."""
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        print("soak: no gnuplot (scripts/install-deps installs gnuplot-nox); no plot")
        return False
    panels = [("RSS (MiB)", [c for c in columns if c.endswith(".rss_kib")], "/1024"),
              ("open descriptors", [c for c in columns if c.endswith(".fds")], ""),
              ("databases (MiB)", [c for c in columns if c.endswith(".db_kib")], "/1024"),
              ("SQLite WALs (MiB)", [c for c in columns if c.endswith(".wal_kib")], "/1024")]
    for s in GAUGES:
        cols = ["%s.%s" % (s, f) for f in GAUGES[s] if "%s.%s" % (s, f) in columns]
        panels.append(("%s: structures" % s, cols, ""))
    rows = (len(panels) + 1) // 2
    script = ["set terminal pngcairo size 1400,%d font 'DejaVu Sans,9'" % (300 * rows),
              "set output '%s'" % png_path, "set datafile separator ','",
              "set key top left font ',8'", "set xlabel 'seconds'", "set grid",
              "set offsets 0, 0, graph 0.05, graph 0.05",   # a line at its cap stays off the border
              "set termoption noenhanced",   # names with _ as they are
              "set multiplot layout %d,2 title '%s'" % (rows, title)]
    for name, cols, scale in panels:
        script.append("set title '%s'" % name)
        parts = ["'%s' using 1:($%d%s) with lines title '%s'"
                 % (csv_path, columns.index(c) + 1, scale, c) for c in cols]
        script.append("plot " + ", ".join(parts))
    script.append("unset multiplot")
    r = subprocess.run([gnuplot], input="\n".join(script).encode(), stderr=subprocess.PIPE)
    if r.returncode != 0:
        print("soak: gnuplot failed: %s" % r.stderr.decode(errors="replace"))
        return False
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bin_dir")
    ap.add_argument("out_dir", nargs="?", default="soak-out")
    ap.add_argument("--long", action="store_true", help="200 routers, 30 minutes, a sample every 10 s")
    ap.add_argument("--routers", type=int)
    ap.add_argument("--seconds", type=float)
    ap.add_argument("--interval", type=float)
    ap.add_argument("--warmup", type=float)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    a = ap.parse_args()
    routers = a.routers or (200 if a.long else 50)
    seconds = a.seconds or (1800 if a.long else 300)
    interval = a.interval or (10 if a.long else 3)
    warmup = a.warmup if a.warmup is not None else (600 if a.long else 120)
    if warmup > seconds / 2:
        ap.error("--warmup must be within the first half of the run")
    groups = max(1, routers // GROUP)
    out = os.path.abspath(a.out_dir)
    os.makedirs(out, exist_ok=True)
    rng = random.Random(a.seed)
    print("soak: %d routers in %d groups, %d s, a sample every %g s, warm-up %d s, seed %d"
          % (groups * GROUP, groups, seconds, interval, warmup, a.seed), flush=True)

    up = ep_up.Up(a.bin_dir, tag="soak", env=ENV_LONG if a.long else ENV_SHORT)
    fleet = Fleet(up, out, groups)
    try:
        seed(up, groups, rng)
        for g in range(groups):
            fleet.start(g)
        services = [s for s in SERVICES if up.ready(s)]
        sampler = Sampler(up, services)
        churn = Churn(up, fleet, groups, rng)
        watchdog = up.endpoint("watchdog", "http")
        ep_up.wait_until("the first router to join (see %s/fleet-0.log)" % out,
                         lambda: (metric_value(ep_up.http_get(watchdog, "/metrics")[1],
                                               "edgeplane_connections", 'state="joined"') or 0) > 0, 60)
        start = time.monotonic()
        next_sample = next_churn = start
        next_note = start + 30
        while True:
            now = time.monotonic()
            if now - start >= seconds:
                break
            if now >= next_sample:
                sampler.sample(now - start)
                next_sample += interval
            if now >= next_churn:
                fleet.check()
                churn.step(now)
                next_churn += 1.0
            if now >= next_note:
                r = sampler.rows[-1]
                print("soak: %4.0f s  joined connections %s, sessions open %s, churn %s"
                      % (now - start, r.get("watchdog.connections"), r.get("reaper.sessions_open"),
                         churn.counts), flush=True)
                next_note += 30
            # Pacing the schedule (a sample, a churn action), not waiting for a condition.
            time.sleep(max(0.0, min(next_sample, next_churn) - time.monotonic()))
    finally:
        fleet.stop_all()
        up.stop()

    csv_path = os.path.join(out, "soak.csv")
    sampler.write_csv(csv_path)
    title = "edgeplane soak: %d routers, %d s, churn %s" % (
        groups * GROUP, seconds, ", ".join("%s %d" % kv for kv in churn.counts.items()))
    plot(csv_path, os.path.join(out, "soak.png"), sampler.columns, title)

    limits_why = parse_limits(LIMITS_TABLE, services)
    limits = {"%s.%s" % k: v[0] for k, v in limits_why.items() if "%s.%s" % k in sampler.columns}
    unjudged = [c for c in sampler.columns[1:] if c not in limits]
    if unjudged:    # every figure sampled is judged: a new one needs its row in LIMITS_TABLE
        print("soak: FAILED: no limit in LIMITS_TABLE for %s" % ", ".join(unjudged))
        sys.exit(1)
    verdicts = judge.judge(sampler.series(), limits, sampler.caps, warmup, smoothed=set(DERIVED))
    problems = [v for v in verdicts if not v.ok]
    # The churn must have happened, or a flat run proves nothing.
    idle = [k for k, n in churn.counts.items() if n == 0]
    summary = "%s\n%s\n%d figures, %d failed; churn: %s" % (
        title, judge.table(verdicts), len(verdicts), len(problems),
        ", ".join("%s %d" % kv for kv in churn.counts.items()))
    print(summary)
    with open(os.path.join(out, "summary.txt"), "w") as f:
        f.write(summary + "\n")
    print("soak: %s, %s/soak.png, %s/summary.txt" % (csv_path, out, out))
    print("soak: %d passed, %d failed" % (len(verdicts) - len(problems), len(problems)))
    if idle:
        print("soak: FAILED: no %s happened (the churn did not run)" % ", ".join(idle))
        sys.exit(1)
    if problems:
        print("soak: FAILED: %s" % ", ".join(v.column for v in problems))
        sys.exit(1)
    print("soak: passed")


if __name__ == "__main__":
    main()
