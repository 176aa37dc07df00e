"""bench/report.py: the second half of bench/run (which calls it with Debian's
/usr/bin/python3). Reads every job's JSON, checks the figures, writes
latest.json / latest.md (quick.* with --mode quick), the plots' data files,
runs gnuplot on bench/plots/*.gp, and (full mode) rewrites README.md's block
between <!-- bench:begin --> and <!-- bench:end --> with latest.md's summary.
"""
import argparse
import glob
import json
import math
import os
import platform
import re
import subprocess
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--mode", choices=["full", "quick"], required=True)
ap.add_argument("--jobs", required=True)
ap.add_argument("--results", required=True)
ap.add_argument("--plots", required=True)
ap.add_argument("--data", required=True)
ap.add_argument("--failed", default="0")
ap.add_argument("--started", type=float, default=time.time())
ap.add_argument("--readme", default="README.md")
args = ap.parse_args()
mode = args.mode

jobs, job_ms = {}, {}
for path in sorted(glob.glob(os.path.join(args.jobs, "*.json"))):
    name = os.path.basename(path)[:-5]
    with open(path) as f:
        jobs[name] = json.load(f)
    ms_path = path[:-5] + ".ms"
    if os.path.exists(ms_path):
        job_ms[name] = int(open(ms_path).read())

MAIN = ["bus", "model", "model_etcd", "watchdog", "reaper", "reaper_etcd", "terminators", "terminators_etcd",
        "console"]
latest = {name: jobs[name] for name in MAIN if name in jobs}
# The embedded model against the etcd store, same run, same clients.
if "model" in latest and "model_etcd" in latest:
    embedded = latest["model"].get("model_writes_per_s_n")
    on_etcd = latest["model_etcd"].get("model_writes_per_s_n")
    latest["model_etcd"]["embedded_writes_per_s_n"] = embedded
    if isinstance(embedded, (int, float)) and isinstance(on_etcd, (int, float)) and on_etcd > 0:
        latest["model_etcd"]["ratio_embedded"] = embedded / on_etcd

# Per benchmark: (figure label, ours key, baseline key, ratio key, target
# ratio or None). The ratio is ours / baseline; higher is better.
FIGURES = {
    "bus": [
        ("events/s, plaintext", "bus_plain_msgs_per_s", "raw_plain_msgs_per_s", "ratio_plain", 0.5),
        ("events/s, CURVE", "bus_curve_msgs_per_s", "raw_curve_msgs_per_s", "ratio_curve", 0.35),
    ],
    # Baselines: raw SQLite, same disk and durability, one row per
    # transaction and rows per transaction = the model's average batch.
    "model": [
        ("durable writes/s, 1 client", "model_writes_per_s_1", "raw_inserts_per_s_txn1", "ratio_1", None),
        ("durable writes/s, 32 clients", "model_writes_per_s_n", "raw_inserts_per_s_batch", "ratio_n", None),
    ],
    # The model on a single-member etcd in the same directory. Baselines:
    # raw etcd transactions of the store's shape through the same client
    # (one write each, then the model's average batch); and the embedded
    # model's 32-client rate against this one's.
    "model_etcd": [
        ("durable writes/s on etcd, 1 client", "model_writes_per_s_1", "raw_inserts_per_s_txn1", "ratio_1", 0.6),
        ("durable writes/s on etcd, 32 clients", "model_writes_per_s_n", "raw_inserts_per_s_batch", "ratio_n", 0.6),
        ("embedded model writes/s against the etcd store's, 32 clients", "embedded_writes_per_s_n",
         "model_writes_per_s_n", "ratio_embedded", 1.5),
    ],
    # Baseline: openssl s_server, same certificate, key, CA and CRL, the
    # same s_time client (serial full mTLS handshakes).
    "watchdog": [
        ("full mTLS handshakes/s (s_time)", "watchdog_handshakes_per_s", "s_server_handshakes_per_s",
         "ratio_handshakes", None),
    ],
    # Anchor: OpenZiti's eventual cleanup, 1,000 sessions every 2 s.
    "reaper": [
        ("sessions reaped/s, one router deletion (anchor: OpenZiti)", "reaped_per_s", "anchor_openziti_per_s",
         "ratio_vs_openziti", 10),
    ],
    # Three instances on one etcd, one router's N sessions (one shard, one
    # owner); baseline: the etcd transactions the instances committed from
    # the deletion to the job done, captured by a watch and replayed raw
    # (same ops, keys and value sizes, the same fence), one in flight.
    "reaper_etcd": [
        ("sessions reaped/s after one router deletion, 3 reapers on etcd", "reaped_per_s",
         "raw_etcd_sessions_per_s", "ratio", 0.5),
    ],
    # Anchor: OpenZiti 1.6.8, 40,000 terminators in about 6 hours (ziti#3318).
    "terminators": [
        ("terminators established/s, cold start (anchor: OpenZiti)", "establish_per_s", "openziti_per_s",
         "speedup_vs_openziti", 100),
    ],
    # Three instances on one etcd, shards split; baseline: raw etcd
    # transactions of the instances' shape (a compare on the create revision
    # of each touched shard's owner key, a put per terminator of a record's
    # size, an outbox entry per touched shard of the instances' mean size,
    # range-deleted by the next, the instances' batch size, three streams),
    # same run, same etcd.
    "terminators_etcd": [
        ("terminators established/s, 3 instances on etcd, cold start", "establish_per_s",
         "raw_etcd_writes_per_s", "ratio", 0.5),
        # Stricter: the raw transactions put the records alone, no events.
        ("the same against raw etcd putting the records alone (no outbox)",
         "establish_per_s", "raw_etcd_records_writes_per_s", "ratio_records", None),
    ],
    # Baseline: the bus's own events/s to one subscriber, same run, same
    # publisher; ours: what the slowest of K SSE clients of the console got.
    "console": [
        ("events/s to 1 SSE client", "console_events_per_s_1", "bus_events_per_s", "ratio_1", None),
        ("events/s to 10 SSE clients (each)", "console_events_per_s_10", "bus_events_per_s", "ratio_10", None),
        ("events/s to 100 SSE clients (each)", "console_events_per_s_100", "bus_events_per_s", "ratio_100", None),
    ],
}
# Latencies and durations: reported, no target. (label, key)
LATENCY = {
    "model_etcd": [
        ("write -> follower visible p50 ms, 1 client (etcd)", "visible_p50_ms_1"),
        ("write -> follower visible p99 ms, 1 client (etcd)", "visible_p99_ms_1"),
        ("write -> follower visible p50 ms, 32 clients (etcd)", "visible_p50_ms_n"),
        ("write -> follower visible p99 ms, 32 clients (etcd)", "visible_p99_ms_n"),
        # Two instances, one client writing through both; SIGKILL of the
        # publisher -> the follower sees the next write (goal: TTL + 1 s).
        ("failover p50 ms: publisher SIGKILL -> next published change", "failover_p50_ms"),
        ("failover p99 ms (goal: lease TTL + 1 s, failover_goal_ms)", "failover_p99_ms"),
        ("lease TTL ms of that case", "lease_ttl_ms"),
    ],
    "model": [
        ("write -> follower visible p50 ms, 1 client", "visible_p50_ms_1"),
        ("write -> follower visible p99 ms, 1 client", "visible_p99_ms_1"),
        ("write -> follower visible p50 ms, 32 clients", "visible_p50_ms_n"),
        ("write -> follower visible p99 ms, 32 clients", "visible_p99_ms_n"),
        ("write -> durable reply p50 ms, 1 client", "reply_p50_ms_1"),
        ("write -> durable reply p99 ms, 1 client", "reply_p99_ms_1"),
    ],
    # Seen by the stray: its close minus (its connect + the grace).
    "watchdog": [
        ("stray close lateness p50 ms", "stray_lateness_p50_ms"),
        ("stray close lateness p99 ms", "stray_lateness_p99_ms"),
        ("stray close lateness max ms", "stray_lateness_max_ms"),
    ],
    "reaper": [
        ("seconds to reap the router's sessions", "reap_seconds"),
    ],
    # SIGKILL of the owner of a router's shard mid-cleanup -> the next
    # CloseSessions from its successor (goal: p99 <= lease TTL + 2 s).
    "reaper_etcd": [
        ("seconds from the deletion to every session closed", "reap_seconds"),
        ("seconds for 100,000 sessions at this rate", "time_100k_s"),
        ("handover p50 ms: owner SIGKILL mid-cleanup -> successor's next close", "handover_p50_ms"),
        ("handover p99 ms (goal: lease TTL + 2 s, handover_goal_ms)", "handover_p99_ms"),
        ("lease TTL ms of that case", "lease_ttl_ms"),
    ],
    "terminators": [
        ("seconds to establish all (cold start)", "establish_s"),
        ("create -> ESTABLISHED p50 ms (all in flight)", "create_latency_p50_ms"),
        ("create -> ESTABLISHED p99 ms (all in flight)", "create_latency_p99_ms"),
        ("seconds to reconcile after deleting 10% of routers", "reconcile_s"),
        ("seconds to restart over the database", "restart_s"),
    ],
    # SIGKILL of a shard owner while requests flow -> the first request for a
    # router of one of its shards served OK by a successor (goal: p99 <=
    # lease TTL + 2 s); "all": until one for each of its shards was.
    "terminators_etcd": [
        ("seconds for 100,000 terminators at this rate", "time_100k_s"),
        ("seconds to establish all (cold start)", "establish_s"),
        ("handover p50 ms: owner SIGKILL -> first moved-shard request OK", "handover_p50_ms"),
        ("handover p99 ms (goal: lease TTL + 2 s, handover_goal_ms)", "handover_p99_ms"),
        ("handover p99 ms until every moved shard served", "handover_all_p99_ms"),
        ("lease TTL ms of that case", "lease_ttl_ms"),
    ],
}
# CPU (and memory) figures: reported, no target. (label, ours key, baseline key)
CPU = {
    "bus": [
        ("bus CPU us/event, plaintext", "bus_cpu_us_per_event_plain", None),
        ("bus CPU us/event, CURVE", "bus_cpu_us_per_event_curve", None),
        ("all processes CPU us/event, plaintext", "total_cpu_us_per_event_plain", "raw_total_cpu_us_per_msg_plain"),
        ("all processes CPU us/event, CURVE", "total_cpu_us_per_event_curve", "raw_total_cpu_us_per_msg_curve"),
    ],
    "model": [
        ("model CPU us/write, 1 client (raw: us/insert)", "model_cpu_us_per_write_1", "raw_cpu_us_per_insert_txn1"),
        ("model CPU us/write, 32 clients (raw: us/insert)", "model_cpu_us_per_write_n", "raw_cpu_us_per_insert_batch"),
        ("bus CPU us/write, 32 clients", "bus_cpu_us_per_write_n", None),
        ("clients + follower CPU us/write, 32 clients", "clients_cpu_us_per_write_n", None),
    ],
    "reaper": [
        ("reaper RSS bytes per tracked session", "bytes_per_session", None),
    ],
    "reaper_etcd": [
        ("reapers CPU us/session (all three)", "reapers_cpu_us_per_session", None),
        ("etcd CPU us/session (baseline: the replay's)", "etcd_cpu_us_per_session",
         "raw_etcd_cpu_us_per_session"),
    ],
    "terminators_etcd": [
        ("instances CPU us/terminator (all three)", "instances_cpu_us_per_terminator", None),
        ("etcd CPU us/terminator (baseline: us/raw write)", "etcd_cpu_us_per_terminator",
         "raw_etcd_cpu_us_per_write"),
    ],
    "console": [
        ("console CPU us/event, 1 client", "console_cpu_us_per_event_1", None),
        ("console CPU us/event, 10 clients", "console_cpu_us_per_event_10", None),
        ("console CPU us/event, 100 clients", "console_cpu_us_per_event_100", None),
    ],
    "watchdog": [
        ("server CPU us/handshake (baseline: s_server)", "watchdog_cpu_us_per_handshake",
         "s_server_cpu_us_per_handshake"),
        ("RSS bytes per idle joined router (baseline: OpenSSL's share)", "bytes_per_connection",
         "openssl_bytes_per_connection"),
    ],
}
# Same-run baselines sit within a few times ours; a fixed anchor (another
# product's published figure) may be far off.
SANE_MAX = {"reaper": 100000, "terminators": 1000000,
            # The embedded model against the model on etcd: two stores, not a
            # baseline; 5.9 on an idle machine (11,269 against 1,923 writes/s).
            "ratio_embedded": 50}
# Per-client rates of a fan-out to 100 fall far below one subscriber's.
SANE_MIN = {"console": 0.001}

problems = []
verdicts = []
if args.failed == "1":
    problems.append("a benchmark failed to run (see above)")


def num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


for name in FIGURES:
    if name not in latest:
        problems.append(f"{name}: no result")
        continue
    r = latest[name]
    for label, ours, base, ratio, target in FIGURES[name]:
        for key in (ours, base, ratio):
            if not num(r.get(key)):
                problems.append(f"{name}: figure {key} missing")
        if not all(num(r.get(k)) for k in (ours, base, ratio)):
            continue
        if r[ours] <= 0 or r[base] <= 0:
            problems.append(f"{name}: {label}: throughput is 0")
        sane = SANE_MAX.get(ratio, SANE_MAX.get(name, 5))
        low = SANE_MIN.get(name, 0.05)
        if not low < r[ratio] <= sane:
            problems.append(f"{name}: {label}: ratio {r[ratio]} outside ({low}, {sane}]: the benchmark is broken")
        if target is not None:
            verdicts.append((name, label, r[ratio] >= target))
    for label, key in LATENCY.get(name, []):
        if not num(r.get(key)) or not 0 < r[key] < 60000:
            problems.append(f"{name}: figure {key} missing or absurd")
    for label, ours, base in CPU.get(name, []):
        if not num(r.get(ours)) or r[ours] <= 0:
            problems.append(f"{name}: figure {ours} missing or 0")
    if name in ("terminators_etcd", "reaper_etcd") and num(r.get("handover_p99_ms")) \
            and num(r.get("handover_goal_ms")):
        verdicts.append((name, "handover p99 <= lease TTL + 2 s", r["handover_p99_ms"] <= r["handover_goal_ms"]))
    for case, lost in r.get("losses", {}).items():
        if lost:
            print(f"bench/run: {name}: {case} lost {lost} messages", file=sys.stderr)

# ---------------------------------------------------------------------------
# Series: the sweeps plus the headline run's point where it is one of them.


def sweep(prefix):
    """{parameter: job} for the jobs named prefix_<int>."""
    out = {}
    for name, r in jobs.items():
        m = re.fullmatch(prefix + r"_(\d+)", name)
        if m:
            out[int(m.group(1))] = r
    return out


series = {}
# Bus: throughput against message size, plaintext and CURVE, raw and bus.
points = []
for size, r in sorted(sweep("bus_size").items()) + ([(latest["bus"]["message_size"], latest["bus"])]
                                                     if "bus" in latest else []):
    points.append({"size": size, "n_plain": r.get("n", {}).get("plain"), "reps": r.get("reps"),
                   **{k: r.get(k) for k in ("raw_plain_msgs_per_s", "bus_plain_msgs_per_s", "ratio_plain",
                                            "raw_curve_msgs_per_s", "bus_curve_msgs_per_s", "ratio_curve")}})
series["bus_size"] = sorted(points, key=lambda p: p["size"])
# Bus: fan-out, deliveries/s summed over the subscribers.
series["bus_fanout"] = [
    {"subscribers": k, "raw_deliveries_per_s": r.get("raw_plain_msgs_per_s"),
     "bus_deliveries_per_s": r.get("bus_plain_msgs_per_s"), "ratio": r.get("ratio_plain"),
     "bus_cpu_us_per_delivery": r.get("bus_cpu_us_per_event_plain"),
     "total_cpu_us_per_delivery": r.get("total_cpu_us_per_event_plain"),
     "raw_total_cpu_us_per_delivery": r.get("raw_total_cpu_us_per_msg_plain"),
     "messages_per_subscriber": r.get("n", {}).get("plain")}
    for k, r in sorted(sweep("bus_fanout").items())]
# Reaper: time to reap against sessions on the deleted router.
reaper_points = dict(sweep("reaper_sessions"))
if "reaper" in latest:
    reaper_points[latest["reaper"]["sessions"]] = latest["reaper"]
series["reaper_sessions"] = [
    {"sessions": n, "reap_seconds": r.get("reap_seconds"), "reaped_per_s": r.get("reaped_per_s"),
     "end_to_end_seconds": r.get("end_to_end_seconds"), "bytes_per_session": r.get("bytes_per_session"),
     "opens_per_s": r.get("opens_per_s"), "anchor_openziti_seconds": n / 500.0, "reps": r.get("reps")}
    for n, r in sorted(reaper_points.items())]
# Terminators: cold start against routers (10 services each).
term_points = dict(sweep("terminators_routers"))
if "terminators" in latest:
    term_points[latest["terminators"]["routers"]] = latest["terminators"]
series["terminators_routers"] = [
    {"routers": n, "terminators": r.get("terminators"), "establish_s": r.get("establish_s"),
     "establish_per_s": r.get("establish_per_s"), "model_populate_s": r.get("model_populate_s"),
     "service_start_s": r.get("service_start_s"), "reconcile_terminators": r.get("reconcile_terminators"),
     "reconcile_s": r.get("reconcile_s"), "restart_s": r.get("restart_s")}
    for n, r in sorted(term_points.items())]
series["terminators_over_time"] = latest.get("terminators", {}).get("established_over_time", [])
# Watchdog: memory per idle joined router against routers joined.
wd_points = dict(sweep("watchdog_conns"))
if "watchdog" in latest:
    wd_points[latest["watchdog"].get("memory_joined", 0)] = latest["watchdog"]
series["watchdog_connections"] = [
    {"connections": n, "bytes_per_connection": r.get("bytes_per_connection"),
     "openssl_bytes_per_connection": r.get("openssl_bytes_per_connection"),
     "joins_per_s": r.get("joins_per_s")}
    for n, r in sorted(wd_points.items())]
series["model_latency_cdf_ms"] = {k: latest.get("model", {}).get(k, []) for k in
                                  ("visible_cdf_ms_1", "visible_cdf_ms_n", "reply_cdf_ms_1", "reply_cdf_ms_n")}
series["stray_latency_cdf_ms"] = {k: latest.get("watchdog", {}).get(k, []) for k in
                                  ("stray_lateness_cdf_ms", "stray_detection_cdf_ms")}

# Checks on the series: every point present and sane.
EXPECT = {"bus_size": 2, "bus_fanout": 3, "reaper_sessions": 2, "terminators_routers": 2,
          "watchdog_connections": 2}
for key, least in EXPECT.items():
    if len(series[key]) < least:
        problems.append(f"series {key}: {len(series[key])} points, expected at least {least}")
for p in series["bus_size"]:
    for k in ("ratio_plain", "ratio_curve"):
        if not num(p.get(k)) or not 0.05 < p[k] <= 5:
            problems.append(f"series bus_size: size {p['size']}: {k} {p.get(k)} missing or outside (0.05, 5]")
for p in series["bus_fanout"]:
    if not num(p["ratio"]) or not 0.05 < p["ratio"] <= 5:
        problems.append(f"series bus_fanout: {p['subscribers']} subscribers: ratio {p['ratio']} "
                        "missing or outside (0.05, 5]")
for p in series["reaper_sessions"]:
    if not num(p["reap_seconds"]) or not 0 < p["reap_seconds"] < 3600:
        problems.append(f"series reaper_sessions: {p['sessions']}: reap_seconds {p['reap_seconds']} absurd")
for p in series["terminators_routers"]:
    if not num(p["establish_s"]) or not 0 < p["establish_s"] < 3600:
        problems.append(f"series terminators_routers: {p['routers']}: establish_s {p['establish_s']} absurd")
for p in series["watchdog_connections"]:
    if not num(p["bytes_per_connection"]) or not 0 < p["bytes_per_connection"] < 10 << 20:
        problems.append(f"series watchdog_connections: {p['connections']}: bytes_per_connection "
                        f"{p['bytes_per_connection']} absurd")
for group in ("model_latency_cdf_ms", "stray_latency_cdf_ms"):
    for key, cdf in series[group].items():
        values = [v for _, v in cdf]
        if len(values) < 10 or any(not num(v) for v in values) or values != sorted(values):
            problems.append(f"series {group}: {key} missing, short or not a distribution")
if len(series["terminators_over_time"]) < 10:
    problems.append("series terminators_over_time: missing or short")


# ---------------------------------------------------------------------------
# The machine and the run.

def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


run = {
    "mode": mode,
    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "seconds": round(time.time() - args.started),
    "job_seconds": {k: round(v / 1000, 1) for k, v in sorted(job_ms.items())},
    "machine": {"cores": os.cpu_count(), "cpu_model": cpu_model(), "kernel": platform.release()},
}
latest["series"] = series
latest["run"] = run

stem = "quick" if mode == "quick" else "latest"


def write(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


write(os.path.join(args.results, stem + ".json"), json.dumps(latest, indent=2) + "\n")

# ---------------------------------------------------------------------------
# The plots' data files (whitespace-separated columns, '#' headers).

os.makedirs(args.data, exist_ok=True)


def dat(name, header, rows):
    lines = ["# " + " ".join(header)]
    for row in rows:
        lines.append(" ".join("NaN" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))
                              for v in row))
    write(os.path.join(args.data, name + ".dat"), "\n".join(lines) + "\n")


def cdf_rows(*cdfs):
    by_pct = {}
    for i, cdf in enumerate(cdfs):
        for pct, value in cdf:
            by_pct.setdefault(pct, [None] * len(cdfs))[i] = value
    return [[pct] + values for pct, values in sorted(by_pct.items())]


m = series["model_latency_cdf_ms"]
dat("model_latency", ["percentile", "visible_1", "visible_n", "reply_1", "reply_n"],
    cdf_rows(m["visible_cdf_ms_1"], m["visible_cdf_ms_n"], m["reply_cdf_ms_1"], m["reply_cdf_ms_n"]))
s = series["stray_latency_cdf_ms"]
dat("stray_latency", ["percentile", "lateness_client", "detection_watchdog"],
    cdf_rows(s["stray_lateness_cdf_ms"], s["stray_detection_cdf_ms"]))
dat("bus_size", ["size", "raw_plain", "bus_plain", "raw_curve", "bus_curve", "ratio_plain", "ratio_curve"],
    [[p["size"], p["raw_plain_msgs_per_s"], p["bus_plain_msgs_per_s"], p["raw_curve_msgs_per_s"],
      p["bus_curve_msgs_per_s"], p["ratio_plain"], p["ratio_curve"]] for p in series["bus_size"]])
dat("bus_fanout", ["subscribers", "raw", "bus", "ratio"],
    [[p["subscribers"], p["raw_deliveries_per_s"], p["bus_deliveries_per_s"], p["ratio"]]
     for p in series["bus_fanout"]])
dat("reaper_sessions", ["sessions", "reap_seconds", "reaped_per_s", "anchor_seconds", "bytes_per_session"],
    [[p["sessions"], p["reap_seconds"], p["reaped_per_s"], p["anchor_openziti_seconds"], p["bytes_per_session"]]
     for p in series["reaper_sessions"]])
dat("terminators_routers", ["routers", "terminators", "establish_s", "per_s", "reconcile_s", "restart_s"],
    [[p["routers"], p["terminators"], p["establish_s"], p["establish_per_s"], p["reconcile_s"], p["restart_s"]]
     for p in series["terminators_routers"]])
dat("terminators_time", ["seconds", "established"], series["terminators_over_time"])
dat("watchdog_connections", ["connections", "bytes_per_connection", "openssl_bytes_per_connection"],
    [[p["connections"], p["bytes_per_connection"], p["openssl_bytes_per_connection"]]
     for p in series["watchdog_connections"]])

# ---------------------------------------------------------------------------
# The plots: every bench/plots/*.gp, given the data and output directories.

plots = []
gp_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plots")
have_gnuplot = subprocess.run(["sh", "-c", "command -v gnuplot"], capture_output=True).returncode == 0
if have_gnuplot:
    os.makedirs(args.plots, exist_ok=True)
    for gp in sorted(glob.glob(os.path.join(gp_dir, "*.gp"))):
        name = os.path.basename(gp)[:-3]
        out = os.path.join(args.plots, name + ".png")
        done = subprocess.run(["gnuplot", "-e", f"data='{args.data}'; out='{out}'", gp],
                              capture_output=True, text=True)
        if done.returncode != 0 or not os.path.exists(out) or os.path.getsize(out) < 1000:
            problems.append(f"plot {name}: gnuplot failed: {done.stderr.strip()[-500:]}")
        else:
            plots.append(name)

# ---------------------------------------------------------------------------
# latest.md: the summary (the same block as README.md's), then per benchmark.


def fmt(v):
    if v is None or not num(v):
        return "-"
    if abs(v) < 100:
        return f"{v:.2f}"
    return f"{int(round(v)):,}"


BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
mach = run["machine"]
summary = [BEGIN,
           f"Machine: {mach['cores']} cores, {mach['cpu_model']}, Linux {mach['kernel']}; "
           f"{run['date']}, {mode} run of `bench/run` ({run['seconds'] // 60} min {run['seconds'] % 60} s). "
           "Baselines are measured in the same run on the same machine, except the two anchors "
           "(another product's published figure).",
           "",
           "| figure | ours | baseline | ratio |",
           "|---|---:|---:|---:|"]
BASELINE_NAME = {"bus": "(raw libzmq PUB/SUB)", "model": "(raw SQLite)", "model_etcd": "(raw etcd txns)", "watchdog": "(openssl s_server)",
                 "reaper": "(OpenZiti, anchor)", "terminators": "(OpenZiti, anchor)",
                 "terminators_etcd": "(raw etcd txns)", "reaper_etcd": "(its etcd txns replayed raw)",
                 "console": "(bus to 1 subscriber)"}
for name in MAIN:
    r = latest.get(name, {})
    for label, ours, base, ratio, target in FIGURES[name]:
        baseline = "(the model on etcd)" if ratio == "ratio_embedded" else BASELINE_NAME[name]
        summary.append(f"| {name}: {label} | {fmt(r.get(ours))} | {fmt(r.get(base))} "
                       f"{baseline} | {fmt(r.get(ratio))} |")
for name, key, label in [("model", "visible_p99_ms_1", "write -> follower visible p99 ms, 1 client"),
                         ("watchdog", "stray_lateness_p99_ms", "stray close lateness p99 ms"),
                         ("reaper", "reap_seconds", f"seconds to reap {latest.get('reaper', {}).get('sessions', '?'):,} sessions"
                          if isinstance(latest.get('reaper', {}).get('sessions'), int) else "seconds to reap")]:
    summary.append(f"| {name}: {label} | {fmt(latest.get(name, {}).get(key))} | - | - |")
summary.append(END)

lines = ["# Benchmark results", "",
         f"Generated by `bench/run{' --quick' if mode == 'quick' else ''}`; method and reading: "
         "bench/README.md. Job wall times (s): "
         + ", ".join(f"{k} {v}" for k, v in run["job_seconds"].items()) + ".", "",
         "## Summary", ""] + summary + [""]

for name in MAIN:
    if name not in latest:
        continue
    r = latest[name]
    lines.append(f"## {name}\n")
    lines.append(f"- date: {r.get('date', run['date'])} ({r.get('mode', mode)} run)")
    n = r.get("n", {})
    if name == "bus":
        lines.append(f"- messages: {r.get('message_size', '?')}-byte protobuf events + "
                     f"{r.get('topic_size', '?')}-byte topic; {n.get('plain', '?')} per plaintext case, "
                     f"{n.get('curve', '?')} per CURVE case, {r.get('reps', '?')} repetitions "
                     f"(window {r.get('window', '?')}); {r.get('statistic', '')}")
        lines.append(f"- losses: {', '.join(f'{k} {v}' for k, v in r.get('losses', {}).items())}")
    if name == "model":
        mm = r.get("machine", {})
        lines.append(f"- writes: creates of {r.get('row_bytes', '?')}-byte entities over CURVE, "
                     f"{n.get('single', '?')} by 1 client, {n.get('concurrent', '?')} by "
                     f"{r.get('clients', '?')} clients, median of {r.get('reps', '?')}; a follower attached")
        lines.append(f"- the model grouped {fmt(r.get('writes_per_commit'))} writes per commit with "
                     f"{r.get('clients', '?')} clients (the raw batch baseline's rows per transaction); "
                     f"disk {mm.get('filesystem', '?')}, SQLite {mm.get('sqlite', '?')}")
    if name == "model_etcd":
        lines.append(f"- the same writes with the model on a single-member etcd {r.get('machine', {}).get('etcd', '')}"
                     f"in the same directory; the model grouped {fmt(r.get('writes_per_commit'))} writes per "
                     "transaction with 32 clients (the raw batch baseline's writes per transaction)")
    if name == "watchdog":
        mm = r.get("machine", {})
        lines.append(f"- {r.get('handshake_reps', '?')} s_time runs of {r.get('handshake_seconds_per_run', '?')} s "
                     f"per server (median), OpenSSL {mm.get('openssl', '?')}; "
                     f"{r.get('memory_joined', '?')} idle joined routers; {r.get('strays', '?')} strays "
                     f"made in {fmt(r.get('stray_connect_seconds'))} s, grace {r.get('stray_grace_ms', '?')} ms, "
                     f"{r.get('strays_not_closed', '?')} not closed; detection in the watchdog p50/p99 "
                     f"{fmt(r.get('stray_detection_p50_ms'))}/{fmt(r.get('stray_detection_p99_ms'))} ms")
    if name == "reaper":
        lines.append(f"- {r.get('sessions', '?')} sessions on the deleted router, median of {r.get('reps', '?')}; "
                     f"{fmt(r.get('opens_per_s'))} opens/s; the state machine holds "
                     f"{fmt(r.get('state_bytes_per_session'))} heap bytes per open session")
    if name == "terminators":
        lines.append(f"- {r.get('routers', '?')} routers x {r.get('services', '?')} services = "
                     f"{r.get('terminators', '?')} terminators, every create in flight at once over 8 "
                     f"connections; {r.get('reconcile_terminators', '?')} reconciled after a deletion")
    if name == "reaper_etcd":
        shape = r.get("shape", {})
        lines.append(f"- {r.get('instances', '?')} instances, {r.get('shards', '?')} shards, lease TTL "
                     f"{r.get('lease_ttl_ms', '?')} ms, single-member etcd; {r.get('sessions', '?')} sessions of one "
                     f"router, every close acked; the job's own time {fmt(r.get('job_seconds'))} s; "
                     f"{r.get('etcd_txns', '?')} etcd transactions ({fmt(r.get('sessions_per_txn'))} sessions "
                     f"each), replayed in {fmt(r.get('raw_etcd_seconds'))} s: "
                     + ", ".join(f"{k} {v.get('puts')} puts of {v.get('mean_bytes')} B, {v.get('deletes')} deletes"
                                 for k, v in shape.items())
                     + f"; machine busy {fmt(r.get('machine_busy_cores'))} cores during the cleanup")
        lines.append(f"- {r.get('kills', '?')} kills mid-cleanup ({r.get('handover_sessions', '?')} sessions), ms to "
                     "the successor's first close: " + ", ".join(fmt(a) for a in r.get("handovers_ms") or []))
    if name == "terminators_etcd":
        lines.append(f"- {r.get('instances', '?')} instances, {r.get('shards', '?')} shards, lease TTL "
                     f"{r.get('lease_ttl_ms', '?')} ms, single-member etcd; {r.get('routers', '?')} routers x "
                     f"{r.get('services', '?')} services = {r.get('terminators', '?')} terminators, each create "
                     f"sent to its shard's owner ({r.get('refusals_followed', '?')} refusals followed); "
                     f"{fmt(r.get('terminators_per_txn'))} terminators per etcd revision (the raw batch: "
                     f"{r.get('raw_batch', '?')} puts of {r.get('record_bytes', '?')} bytes, outbox entries of "
                     f"{r.get('outbox_bytes', '?')}); machine busy "
                     f"{fmt(r.get('machine_busy_cores'))} cores during the cold start")
        ho = r.get("handovers_ms") or []
        lines.append(f"- {r.get('kills', '?')} kills, ms to the first / every moved shard served: "
                     + ", ".join(f"{fmt(a)}/{fmt(b)}" for a, b in ho))
    bg = r.get("background_cores_max")
    if num(bg):
        note = " (machine was busy: figures suspect)" if bg > 0.25 else ""
        lines.append(f"- other processes used up to {bg:.2f} cores during the cases{note}")
    lines.append("")
    lines.append("| figure | ours | baseline | ratio | target | verdict |")
    lines.append("|---|---:|---:|---:|---:|---|")
    for label, ours, base, ratio, target in FIGURES.get(name, []):
        if target is None:
            lines.append(f"| {label} | {fmt(r.get(ours))} | {fmt(r.get(base))} | {fmt(r.get(ratio))} | - | - |")
            continue
        ok = num(r.get(ratio)) and r[ratio] >= target
        lines.append(f"| {label} | {fmt(r.get(ours))} | {fmt(r.get(base))} | "
                     f"{fmt(r.get(ratio))} | >= {target} | {'PASS' if ok else 'BELOW'} |")
    for label, key in LATENCY.get(name, []):
        lines.append(f"| {label} | {fmt(r.get(key))} | - | - | - | - |")
    for label, ours, base in CPU.get(name, []):
        lines.append(f"| {label} | {fmt(r.get(ours))} | {fmt(r.get(base)) if base else '-'} | - | - | - |")
    lines.append("")

# The scaling series, with the cost per unit so linearity can be read off.
lines.append("## Scaling\n")
lines.append("Bus throughput against message size (msgs/s; best of the repetitions):\n")
lines.append("| bytes | raw plain | bus plain | ratio | raw CURVE | bus CURVE | ratio | bus plain MB/s |")
lines.append("|---:|---:|---:|---:|---:|---:|---:|---:|")
for p in series["bus_size"]:
    mbs = p["bus_plain_msgs_per_s"] * p["size"] / 1e6 if num(p["bus_plain_msgs_per_s"]) else None
    lines.append(f"| {p['size']:,} | {fmt(p['raw_plain_msgs_per_s'])} | {fmt(p['bus_plain_msgs_per_s'])} | "
                 f"{fmt(p['ratio_plain'])} | {fmt(p['raw_curve_msgs_per_s'])} | {fmt(p['bus_curve_msgs_per_s'])} | "
                 f"{fmt(p['ratio_curve'])} | {fmt(mbs)} |")
lines.append("\nBus fan-out, plaintext, 200-byte events: deliveries/s summed over the subscribers "
             "(raw: one PUB connected to as many SUBs):\n")
lines.append("| subscribers | raw | bus | ratio | bus CPU us/delivery | all CPU us/delivery (raw) |")
lines.append("|---:|---:|---:|---:|---:|---:|")
for p in series["bus_fanout"]:
    lines.append(f"| {p['subscribers']} | {fmt(p['raw_deliveries_per_s'])} | {fmt(p['bus_deliveries_per_s'])} | "
                 f"{fmt(p['ratio'])} | {fmt(p['bus_cpu_us_per_delivery'])} | "
                 f"{fmt(p['total_cpu_us_per_delivery'])} ({fmt(p['raw_total_cpu_us_per_delivery'])}) |")
lines.append("\nReaper: one router deleted with N sessions (OpenZiti anchor: N / 500 s):\n")
lines.append("| sessions | reap s | reaped/s | us per session | RSS bytes/session | OpenZiti s |")
lines.append("|---:|---:|---:|---:|---:|---:|")
for p in series["reaper_sessions"]:
    us = p["reap_seconds"] * 1e6 / p["sessions"] if num(p["reap_seconds"]) else None
    lines.append(f"| {p['sessions']:,} | {fmt(p['reap_seconds'])} | {fmt(p['reaped_per_s'])} | {fmt(us)} | "
                 f"{fmt(p['bytes_per_session'])} | {fmt(p['anchor_openziti_seconds'])} |")
lines.append("\nTerminators: cold start with R routers x 10 services:\n")
lines.append("| routers | terminators | establish s | per s | us per terminator | reconcile s (10% deleted) "
             "| restart s | model: routers written s |")
lines.append("|---:|---:|---:|---:|---:|---:|---:|---:|")
for p in series["terminators_routers"]:
    us = p["establish_s"] * 1e6 / p["terminators"] if num(p["establish_s"]) and p["terminators"] else None
    lines.append(f"| {p['routers']:,} | {fmt(p['terminators'])} | {fmt(p['establish_s'])} | "
                 f"{fmt(p['establish_per_s'])} | {fmt(us)} | {fmt(p['reconcile_s'])} | {fmt(p['restart_s'])} | "
                 f"{fmt(p['model_populate_s'])} |")
lines.append("\nWatchdog: RSS per idle joined router against routers joined:\n")
lines.append("| routers | bytes per router | OpenSSL's share | joins/s |")
lines.append("|---:|---:|---:|---:|")
for p in series["watchdog_connections"]:
    lines.append(f"| {p['connections']:,} | {fmt(p['bytes_per_connection'])} | "
                 f"{fmt(p['openssl_bytes_per_connection'])} | {fmt(p['joins_per_s'])} |")
lines.append("")
if plots:
    lines.append("## Plots\n")
    for name in plots:
        lines.append(f"![{name}]({os.path.relpath(os.path.join(args.plots, name + '.png'), args.results)})")
    lines.append("")

text = "\n".join(lines)
write(os.path.join(args.results, stem + ".md"), text)
print(text)

# ---------------------------------------------------------------------------
# README.md: full runs rewrite the block; quick runs check it is latest.md's.


def block(text):
    i, j = text.find(BEGIN), text.find(END)
    return text[i:j + len(END)] if 0 <= i < j else None


if os.path.exists(args.readme):
    readme = open(args.readme).read()
    current = block(readme)
    if mode == "full":
        if current is None:
            problems.append(f"{args.readme} has no {BEGIN} ... {END} block to rewrite")
        elif not problems:
            write(args.readme, readme.replace(current, "\n".join(summary)))
            print(f"bench/run: {args.readme}: results block rewritten", file=sys.stderr)
    else:
        latest_md = os.path.join(args.results, "latest.md")
        committed = block(open(latest_md).read()) if os.path.exists(latest_md) else None
        if committed is None or current != committed:
            problems.append(f"{args.readme}'s results block is not bench/results/latest.md's summary: "
                            "run bench/run (full) and commit README.md with bench/results/")

for name, label, ok in verdicts:
    print(f"bench/run: {name}: {label}: {'PASS' if ok else 'BELOW target'}", file=sys.stderr)
print(f"bench/run: {mode} run took {run['seconds']} s; per job: "
      + ", ".join(f"{k} {v} s" for k, v in run["job_seconds"].items()), file=sys.stderr)
if problems:
    for p in problems:
        print(f"bench/run: FAIL: {p}", file=sys.stderr)
    sys.exit(1)
