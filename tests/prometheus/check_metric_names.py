#!/usr/bin/python3
"""check_metric_names.py BIN_DIR RULES_FILE: every metric name the rules use,
and every gauge tests/soak samples, exists on a real scrape of the running
services. A rule on a misspelt metric
passes promtool and never fires; this is the test that catches it.

Starts `edgeplane up --demo` (five services, a demo fleet, a stray), waits
until the fleet's routers have joined, scrapes each service's /metrics (and
the console's when up runs one), and compares the names in the exposition
(# TYPE lines: a family with no series yet still counts) with the names
parsed from the rules' expressions. Recorded names (with a colon) must be
recorded by the file itself.
"""
import os
import re
import sys

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import ep_up  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "soak"))
import soak  # noqa: E402

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset", "inf", "nan"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def rule_names(path):
    """(metric names the expressions read, names recorded) of a rules file."""
    with open(path) as f:
        doc = yaml.safe_load(f)
    used, recorded = set(), set()
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "record" in rule:
                recorded.add(rule["record"])
            used |= expr_names(rule["expr"])
    return used, recorded


def expr_names(expr):
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)          # strings
    text = re.sub(r"\{[^}]*\}", " ", text)                     # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)                    # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        token = m.group(0)
        rest = text[m.end():].lstrip()
        if token.lower() in KEYWORDS or rest.startswith("("):   # keyword or function
            continue
        if m.start() > 0 and (text[m.start() - 1].isdigit() or text[m.start() - 1] == "."):
            continue                                                # 1e3, 5m
        names.add(token)
    return names


def scraped_names(body):
    names = set()
    for line in body.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0))
    return names


def main():
    bin_dir, rules = sys.argv[1], sys.argv[2]
    used, recorded = rule_names(rules)
    # The gauges tests/soak reads: a renamed one would leave the soak a
    # figure short.
    used |= set(soak.metric_names())
    assert used, "no metric names parsed from %s" % rules
    up = ep_up.Up(bin_dir, demo=True, tag="promnames")
    try:
        # The demo fleet joined: the watchdog's per-router series exist.
        watchdog_http = up.endpoint("watchdog", "http")
        ep_up.wait_until("the demo routers' heartbeat gauges on the watchdog's /metrics",
                         lambda: "edgeplane_router_rtt_seconds{" in ep_up.http_get(watchdog_http, "/metrics")[1],
                         30)
        scraped = set()
        services = ep_up.SERVICES + (["console"] if up.ready("console") else [])
        for service in services:
            http = up.endpoint(service, "http")
            assert http, "%s's ready file names no http endpoint" % service
            status, body = ep_up.http_get(http, "/metrics")
            assert status == 200, "GET %s/metrics of the %s: %d" % (http, service, status)
            names = scraped_names(body)
            assert names, "the %s's /metrics has no metrics" % service
            scraped |= names
        print("scraped %d metric names from %s" % (len(scraped), ", ".join(services)))
    finally:
        up.stop()
    missing = []
    for name in sorted(used):
        if ":" in name:
            if name not in recorded:
                missing.append("%s (a recorded name no rule records)" % name)
            continue
        base = name
        for suffix in HISTOGRAM_SUFFIXES:
            if name.endswith(suffix) and name[:-len(suffix)] in scraped:
                base = name[:-len(suffix)]
        if base not in scraped:
            missing.append(name)
    for name in sorted(used):
        print("  %s %s" % ("MISSING" if any(m.startswith(name) for m in missing) else "ok     ", name))
    if missing:
        print("%s: metrics no service exposes: %s" % (rules, ", ".join(missing)), file=sys.stderr)
        sys.exit(1)
    print("every metric the rules use (%d) is on a scrape" % len([n for n in used if ":" not in n]))


if __name__ == "__main__":
    main()
