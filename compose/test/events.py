#!/usr/bin/env python3
"""Queries over the JSON lines `edgeplane events --json` wrote, for the
compose test (compose/test/run). Exit status 0 means the condition holds;
what was found is printed either way.

  events.py FILE match KEY=VALUE...     events with every KEY equal to VALUE
                                        (VALUE compared as JSON text: true, 3, abc);
                                        --min N: at least N of them (default 1);
                                        --distinct KEY[,KEY...]: count distinct values
                                        of KEY (of the tuple of KEYs);
                                        --after LINE: only the lines after that one;
                                        --since T: only events stamped after T (seconds
                                        since the epoch)
  events.py FILE holders                who holds which router now: the newest
                                        presence.beacon of every watchdog instance
                                        heard in the last 2.5 s, as JSON
  events.py FILE spread N ROUTERS       holders: exactly N instances, each holding
                                        at least one router, ROUTERS routers in all,
                                        none held twice
  events.py FILE model WRITES [LIST...]  the model.change stream against the writes
                                        compose/test/writer.py acknowledged (WRITES):
                                        no revision with two contents; every revision
                                        follows the one before it (prev_revision), and
                                        a follower applying them as they came never
                                        met one out of order; every acknowledged write
                                        published at its revision with its content;
                                        a transaction's writes all in the one
                                        model.change of its revision, with no other op;
                                        with LISTs (`router list --json` through each
                                        model instance): the routers that follower
                                        ends with are each LIST's, name and version
  events.py FILE shards N COUNT [SVC]   the sharded service's (SVC: terminators, the
                                        default, or reaper) newest cluster.beacon of
                                        every instance heard in the last 2.5 s: exactly N
                                        instances, each owning shards, every shard 0 ..
                                        COUNT-1 owned by exactly one, none owning more
                                        than ceil(COUNT / N) + 1; prints the shards per
                                        instance (and its address) as JSON
  events.py FILE takeover INSTANCE T [SVC]
                                        the shards INSTANCE's last beacon before T (seconds
                                        since the epoch) claimed, each acquired by another
                                        instance after T (cluster.shard.acquired); prints
                                        the time from T to the first and the last
  events.py FILE moves T [SVC]          the service's (terminators) shards given up after T
                                        (cluster.shard.released) and acquired by
                                        another instance: how many, and how long each
                                        was without an owner (median, longest)
  events.py FILE figures WRITES FAULTS  the writes' figures: acknowledged, unanswered,
                                        refused, publisher failovers, and for each
                                        line "NAME T" of FAULTS the time from T to the
                                        first write acknowledged after it, and the
                                        longest wait for one until the next fault
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


def beacons(path, before=None, service="terminators"):
    """The newest cluster.beacon of every instance of the sharded service
    (stamped before `before` if given)."""
    newest = {}
    for event in events(path):
        if (event.get("namespace") == "cluster" and event.get("type") == "beacon"
                and event.get("service") == service
                and (before is None or timestamp(event) < before)):
            newest[event["instance_id"]] = event
    return newest


def shards(path, instances, count, service="terminators"):
    newest = beacons(path, service=service)
    latest = max((timestamp(e) for e in newest.values()), default=0)
    live = {i: e for i, e in newest.items() if timestamp(e) >= latest - 2.5}
    owned = {i: e.get("shards", []) for i, e in live.items()}
    print(json.dumps({i: {"shards": len(v), "address": live[i].get("address")}
                      for i, v in owned.items()}, sort_keys=True))
    every = [s for v in owned.values() for s in v]
    problems = []
    if len(live) != instances:
        problems.append(f"{len(live)} live instances, not {instances}")
    problems += [f"{i} owns no shard" for i, v in owned.items() if not v]
    problems += [f"{i} counts {e.get('shard_count')} shards" for i, e in live.items()
                 if e.get("shard_count") != count]
    twice = sorted({s for s in every if every.count(s) > 1})
    if twice:
        problems.append(f"shards owned twice: {twice}")
    unowned = sorted(set(range(count)) - set(every))
    if unowned:
        problems.append(f"unowned: {unowned}")
    cap = -(-count // instances) + 1
    problems += [f"{i} owns {len(v)} shards, above the cap {cap}" for i, v in owned.items()
                 if live and len(v) > cap]
    for problem in problems:
        print(problem)
    return 1 if problems else 0


def takeover(path, instance, at, service="terminators"):
    """The shards `instance` (of `service`) owned at its last beacon before
    `at` (its pause or cut), each acquired by another instance since that
    beacon: a shard it gave up (balancing) between the beacon and `at` was
    acquired by another before `at`, and counts (its time, before `at`,
    negative)."""
    last = beacons(path, at, service).get(instance)
    if not last:
        print(f"no beacon of {instance} before {at}")
        return 1
    lost = set(last.get("shards", []))
    since = timestamp(last)
    taken = {}
    for event in events(path):
        if (event.get("namespace") == "cluster" and event.get("type") == "shard.acquired"
                and event.get("service") == service and event.get("instance_id") != instance
                and event.get("shard") in lost and event["shard"] not in taken
                and timestamp(event) > since):
            taken[event["shard"]] = (timestamp(event) - at, event["instance_id"])
    if len(taken) < len(lost):
        print(f"{len(taken)} of the {len(lost)} shards of {instance} acquired by others since; "
              f"not yet: {sorted(lost - set(taken))}")
        return 1
    times = sorted(t for t, _ in taken.values())
    early = sum(1 for t in times if t < 0)
    print(f"{len(lost)} shards taken over by {len({i for _, i in taken.values()})} instances "
          f"in {times[0]:.2f} s (first) to {times[-1]:.2f} s (last)"
          + (f", {early} of them before the fault (given up since its last beacon)" if early else "")
          if times else "no shards to take over")
    return 0


def moves(path, since, service="terminators"):
    released, gaps = {}, []
    for event in events(path):
        if (event.get("namespace") != "cluster" or event.get("service") != service
                or timestamp(event) <= since):
            continue
        if event.get("type") == "shard.released":
            released[event.get("shard")] = (timestamp(event), event.get("instance_id"))
        elif event.get("type") == "shard.acquired" and event.get("shard") in released:
            at, by = released[event.get("shard")]
            if event.get("instance_id") != by:
                gaps.append(timestamp(event) - at)
                del released[event.get("shard")]
    gaps.sort()
    if not gaps:
        print("no shard moved")
        return 0
    print(f"{len(gaps)} shards moved, each without an owner {gaps[len(gaps) // 2] * 1000:.0f} ms "
          f"(median) to {gaps[-1] * 1000:.0f} ms")
    return 0


def changes(path):
    """(line, event) of every model.change, in the order they came."""
    for number, event in enumerate(events(path), 1):
        if event.get("namespace") == "model" and event.get("type") == "change":
            yield number, event


def writes(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def model(path, writes_path, lists):
    problems, contents, prevs, sources = [], {}, {}, {}
    held, view, applied = None, {}, 0
    for _, event in changes(path):
        revision, part = int(event["revision"]), int(event.get("part", 1))
        prev = int(event.get("prev_revision", revision - 1))
        if int(event.get("parts", 1)) != 1:
            problems.append(f"revision {revision} in {event['parts']} parts (writes this small come in one)")
        content = json.dumps([event.get("ops"), event.get("principal"), prev], sort_keys=True)
        if contents.setdefault(revision, content) != content:
            problems.append(f"revision {revision} was published with two contents")
        prevs[revision] = prev
        sources.setdefault(revision, event.get("event_src_id"))
        #  The test's follower: applies a change that follows the one it
        #  holds, skips one it has (a new publisher sends again the ones
        #  after the checkpoint); any other is out of order.
        if held is not None and revision <= held:
            continue
        if held is not None and prev != held:
            problems.append(f"revision {revision} (after {prev}) came while the follower held {held}")
        held = revision
        applied += 1
        for op in event.get("ops", []):
            if op.get("type") != "router":
                continue
            if op.get("kind") == "deleted":
                view.pop(op["id"], None)
            else:
                view[op["id"]] = op["entity"]["router"]
    ordered = sorted(contents)
    for before, after in zip(ordered, ordered[1:]):
        if prevs[after] != before:
            problems.append(f"revision {after} follows {prevs[after]}, but the one published before it is {before}")
    unseen, uncertain = [], set()
    for write in writes(writes_path):
        #  A transaction's writes (writer.py's "writes"), or the one write.
        steps = write.get("writes") or [write]
        if not write["ok"]:
            #  A write refused by its compare-and-swap: only after one on
            #  the same entity that may have been applied unanswered.
            if write["outcome"] == "error" or (write["outcome"] == "refused" and write["id"] not in uncertain):
                problems.append(f"{write['op']} {write['id']}: {write['err']}")
            uncertain.update([write["id"]] + [step["id"] for step in steps])
            continue
        revision = write["revision"]
        ops = json.loads(contents[revision])[0] if revision in contents else None
        if ops is None:
            unseen.append(f"{write['op']} {write['id']} at {revision}")
            continue
        for step in steps:
            mine = [op for op in ops if op.get("id") == step["id"] and op.get("type") == "router"]
            kind = "created" if step["op"] == "create" else "updated"
            if not any(op.get("kind") == kind and op["entity"]["router"].get("name") == step["name"]
                       and int(op["entity"]["router"]["meta"]["version"]) == revision for op in mine):
                problems.append(f"acknowledged {step['op']} of {step['id']} (name {step['name']})"
                                + (f" in a txn" if step is not write else "")
                                + f" at revision {revision}: the revision published holds {json.dumps(mine)}")
        if write["op"] == "txn":
            #  All its ops in the one model.change of its revision (each
            #  revision is published in one part, checked above), and no
            #  other: nothing of it in another revision, nothing else in it.
            published = sorted((op.get("type"), op.get("id")) for op in ops)
            wanted = sorted(("router", step["id"]) for step in steps)
            if published != wanted:
                problems.append(f"acknowledged txn at revision {revision} ({len(steps)} writes: "
                                f"{', '.join(step['id'] for step in steps)}): that revision's model.change "
                                f"holds the ops {published}")
    for listing in lists:
        with open(listing, encoding="utf-8") as f:
            listed = {r["id"]: (r.get("name"), int(r["meta"]["version"])) for r in json.load(f)}
        mine = {i: (r.get("name"), int(r["meta"]["version"])) for i, r in view.items()}
        if listed != mine:
            diff = sorted(set(listed.items()) ^ set(mine.items()))[:5]
            problems.append(f"the follower's {len(mine)} routers are not the {len(listed)} {listing} lists: {diff}")
    print(f"{len(contents)} revisions published ({applied} applied in order by the test's follower, "
          f"at {held}), {len(unseen)} acknowledged writes not yet seen"
          + (f" (e.g. {unseen[0]})" if unseen else ""))
    for problem in problems[:10]:
        print(problem)
    return 1 if problems or unseen else 0


def figures(path, writes_path, faults_path):
    done = writes(writes_path)
    acked = [w for w in done if w["ok"]]
    by = {}
    for w in done:
        if not w["ok"]:
            by[w["outcome"]] = by.get(w["outcome"], 0) + 1
    failovers, source = 0, None
    for _, event in changes(path):
        if source is not None and event.get("event_src_id") != source:
            failovers += 1
        source = event.get("event_src_id")
    line = (f"{len(acked)} writes acknowledged ({sum(w['op'] == 'update' for w in acked)} compare-and-swap, "
            f"{sum(w['op'] == 'txn' for w in acked)} transactions), "
            f"{by.get('unanswered', 0)} unanswered, {by.get('unavailable', 0)} answered UNAVAILABLE, "
            f"{by.get('refused', 0)} compare-and-swap refused, "
            f"{failovers} publisher failovers")
    with open(faults_path, encoding="utf-8") as f:
        faults = [(name, float(at)) for name, at in (fault.split() for fault in f if fault.strip())]
    firsts = []
    for i, (name, at) in enumerate(faults):
        until = faults[i + 1][1] if i + 1 < len(faults) else float("inf")
        times = [at] + sorted(w["t"] for w in acked if at < w["t"] < until)
        if len(times) == 1:
            firsts.append(f"{name} none")
            continue
        gap = max(b - a for a, b in zip(times, times[1:]))
        firsts.append(f"{name} {(times[1] - at) * 1000:.0f} ms (longest wait {gap * 1000:.0f} ms)")
    print(line + "; first write acknowledged after each fault began (and the longest wait between two "
          "until the next fault): " + ", ".join(firsts))
    return 0


def main(argv):
    path, query, args = argv[1], argv[2], argv[3:]
    if query == "match":
        need, distinct, after, since, pairs = 1, None, 0, None, []
        while args:
            arg = args.pop(0)
            if arg == "--after":
                after = int(args.pop(0))
            elif arg == "--since":
                since = float(args.pop(0))
            elif arg == "--min":
                need = int(args.pop(0))
            elif arg == "--distinct":
                distinct = args.pop(0)
            else:
                key, _, value = arg.partition("=")
                pairs.append((key, value))
        found = [e for e in events(path, after) if all(k in e and text(e[k]) == v for k, v in pairs)
                 and (since is None or timestamp(e) > since)]
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
    if query == "shards":
        return shards(path, int(args[0]), int(args[1]), *args[2:3])
    if query == "moves":
        return moves(path, float(args[0]), *args[1:2])
    if query == "takeover":
        return takeover(path, args[0], float(args[1]), *args[2:3])
    if query == "model":
        return model(path, args[0], args[1:])
    if query == "figures":
        return figures(path, args[0], args[1])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
