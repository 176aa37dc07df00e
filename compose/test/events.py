#!/usr/bin/env python3
"""Queries over the JSON lines `edgeplane events --json` wrote, for the
compose test (compose/test/run). Exit status 0 means the condition holds;
what was found is printed either way.

  events.py FILE match KEY=VALUE...     events with every KEY equal to VALUE
                                        (VALUE compared as JSON text: true, 3, abc);
                                        --min N: at least N of them (default 1);
                                        --distinct KEY[,KEY...]: count distinct values
                                        of KEY (of the tuple of KEYs);
                                        --after LINE: only the lines after that one
  events.py FILE holders                who holds which router now: the newest
                                        presence.beacon of every watchdog instance
                                        heard in the last 2.5 s, as JSON
  events.py FILE spread N ROUTERS       holders: exactly N instances, each holding
                                        at least one router, ROUTERS routers in all,
                                        none held twice
"""
import datetime
import json
import sys


def events(path, after=0):
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if number <= after:
                continue
            line = line.strip()
            if line:
                try:
                    yield json.loads(line)
                except ValueError:
                    pass        # a line being written


def text(value):
    if isinstance(value, str):
        return value
    return json.dumps(value)


def timestamp(event):
    stamp = event.get("timestamp", "").replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(stamp).timestamp()


def holders(path):
    newest = {}
    for event in events(path):
        if event.get("namespace") == "presence" and event.get("type") == "beacon":
            newest[event["instance_id"]] = event
    if not newest:
        return {}
    latest = max(timestamp(e) for e in newest.values())
    return {instance: sorted(e.get("routers", []))
            for instance, e in newest.items() if timestamp(e) >= latest - 2.5}


def main(argv):
    path, query, args = argv[1], argv[2], argv[3:]
    if query == "match":
        need, distinct, after, pairs = 1, None, 0, []
        while args:
            arg = args.pop(0)
            if arg == "--after":
                after = int(args.pop(0))
            elif arg == "--min":
                need = int(args.pop(0))
            elif arg == "--distinct":
                distinct = args.pop(0)
            else:
                key, _, value = arg.partition("=")
                pairs.append((key, value))
        found = [e for e in events(path, after) if all(k in e and text(e[k]) == v for k, v in pairs)]
        keys = distinct.split(",") if distinct else []
        count = len({tuple(text(e.get(k)) for k in keys) for e in found}) if distinct else len(found)
        print(count)
        return 0 if count >= need else 1
    if query == "holders":
        print(json.dumps(holders(path), sort_keys=True))
        return 0
    if query == "spread":
        instances, routers = int(args[0]), int(args[1])
        held = holders(path)
        print(json.dumps({k: len(v) for k, v in held.items()}, sort_keys=True))
        every = [r for v in held.values() for r in v]
        ok = (len(held) == instances and all(held.values())
              and len(every) == len(set(every)) == routers)
        return 0 if ok else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
