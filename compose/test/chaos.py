#!/usr/bin/env python3
"""The clustered chaos test's workload and oracle (compose/test/chaos).
Run by /usr/bin/python3; reads the JSON lines `edgeplane events --json`
wrote (events.py's reader).

  chaos.py workload CLI KEYS API1 API2 OUT STOP AGENTS INITIAL SEED
      The model's writer until the file STOP exists: routers fleet-0 ..
      fleet-(INITIAL-1) exist (hosting fleet-web); each second or so it
      re-hosts one (a new set of fleet-web, fleet-api, fleet-db), creates
      one of the agents fleet-0 .. fleet-(AGENTS-1) not in the model
      (again, if the test deleted it), or deletes one, keeping between
      INITIAL - 4 (at least 30) and AGENTS - 2 routers; while the file
      STOP.burst exists, re-hosts back to back. Each write is one
      CLI run given both model instances (a request id of its own, resent
      with it on a timeout). OUT gets a JSON line a write: t, op (create,
      rehost, delete), id, hosts, ok, revision or outcome and err.
  chaos.py oracle EVENTS WRITES ROUTERS TERMINATORS SESSIONS FACTS
      The end state against the events and the writes; prints one line a
      property and exits 1 if any fails. ROUTERS, TERMINATORS, SESSIONS:
      `router list`, `terminator list`, `session list` --json. FACTS: a
      JSON object the driver wrote: spins_metric (edgeplane_terminator_spins_total
      summed over every terminators instance, a killed one's as scraped just
      before its kill), shards, terminators and reapers (live instances of
      each, whose shards are checked), paused
      (instance id and resume time of the shard owner paused past its
      lease), fenced (edgeplane_shard_fenced_total summed), deleted (routers
      the workload deleted).
  chaos.py instance EVENTS HOST [SERVICE]
      The instance of SERVICE (terminators, the default, or reaper) whose
      newest cluster.beacon advertises tcp://HOST:7011 (the reaper's:
      7021).
  chaos.py figures EVENTS
      The fleet's movement: watchdog instances seen holding routers, how
      many routers each held, routers that moved between instances.
"""
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import events as ev    # noqa: E402

SERVICES = ["fleet-web", "fleet-api", "fleet-db"]


def workload(argv):
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    cli, keys, apis, out_path, stop = argv[0], argv[1], argv[2:4], argv[4], argv[5]
    agents, initial, seed = int(argv[6]), int(argv[7]), int(argv[8])
    rng = random.Random(seed)
    env = dict(os.environ, EDGEPLANE_KEYS_DIR=keys)
    out = open(out_path, "a", encoding="utf-8")
    live = {f"fleet-{i}": ["fleet-web"] for i in range(initial)}
    spare = [f"fleet-{i}" for i in range(initial, agents)]
    low, high = max(30, initial - 4), agents - 2
    n = 0

    def run(args):
        via = apis[n % 2]
        env["EDGEPLANE_MODEL_API"] = ",".join([via] + [a for a in apis if a != via])
        return subprocess.run([cli] + args + ["--json", "--timeout", "2s", "--attempts", "4"],
                              env=env, capture_output=True, text=True)

    burst = stop + ".burst"
    while not os.path.exists(stop):
        n += 1
        #  While the file STOP.burst exists (the driver's, during a pause):
        #  re-hosts back to back, so that the frozen owner has work queued.
        fast = os.path.exists(burst)
        roll = 1.0 if fast else rng.random()
        if roll < 0.25 and spare and len(live) < high:
            op, router = "create", spare.pop(rng.randrange(len(spare)))
            hosts = sorted(rng.sample(SERVICES, rng.randint(1, 2)))
            args = ["router", "create", router] + [a for s in hosts for a in ("--host", s)]
        elif roll < 0.5 and len(live) > low:
            op, router, hosts = "delete", rng.choice(sorted(live)), []
            args = ["router", "delete", router]
        else:
            op, router = "rehost", rng.choice(sorted(live))
            hosts = sorted(rng.sample(SERVICES, rng.randint(1, 3)))
            args = ["router", "update", router] + [a for s in hosts for a in ("--host", s)]
        done = run(args)
        record = {"t": time.time(), "op": op, "id": router, "hosts": hosts}
        if done.returncode == 0:
            reply = json.loads(done.stdout)
            record.update(ok=True, revision=int(reply.get("revision") or reply["meta"]["version"]))
        else:
            err = (done.stderr or done.stdout).strip()[-300:]
            code = re.match(r"edgeplane [a-z ]+: ([A-Z_]+): ", err)
            record.update(ok=False, outcome="unanswered" if code is None else code.group(1).lower(), err=err)
        out.write(json.dumps(record, sort_keys=True) + "\n")
        out.flush()
        #  The test's own view: what it asked for, applied or not (an
        #  unanswered write may have been; the oracle counts that router
        #  uncertain). A router deleted goes back to the spares.
        if op == "create":
            live[router] = hosts
        elif op == "delete":
            live.pop(router, None)
            spare.append(router)
        else:
            live[router] = hosts
        #  About one write a second: the point is the churn under faults,
        #  not the model's rate (compose/test/ha measures that).
        deadline = time.time() + (0 if fast else 1.0)
        while time.time() < deadline and not os.path.exists(stop) and not os.path.exists(burst):
            time.sleep(0.1)
    return 0


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def writes_check(events_path, writes_path, routers):
    """Every acknowledged write published at its revision, and the end
    state of every router whose writes were all answered."""
    problems, published = [], {}
    for _, event in ev.changes(events_path):
        for op in event.get("ops", []):
            if op.get("type") == "router":
                published.setdefault(int(event["revision"]), []).append(op)
    acked = unanswered = 0
    final, uncertain = {}, set()
    for w in ev.writes(writes_path):
        if not w["ok"]:
            unanswered += 1
            uncertain.add(w["id"])
            if w["outcome"] not in ("unanswered", "unavailable"):
                problems.append(f"{w['op']} {w['id']} answered {w['outcome']}: {w['err']}")
            continue
        acked += 1
        kind = {"create": "created", "rehost": "updated", "delete": "deleted"}[w["op"]]
        ops = [op for op in published.get(w["revision"], []) if op.get("id") == w["id"]]
        if not any(op.get("kind") == kind for op in ops):
            problems.append(f"acknowledged {w['op']} of {w['id']} at revision {w['revision']}: "
                            f"that revision published {json.dumps(ops)}")
        final[w["id"]] = None if w["op"] == "delete" else w["hosts"]
    listed = {r["id"]: sorted(h.get("service_id") for h in r.get("hosted", [])) for r in routers}
    for router, hosts in final.items():
        if router in uncertain:
            continue
        if hosts is None and router in listed:
            problems.append(f"{router}: deleted (acknowledged), yet listed")
        elif hosts is not None and listed.get(router) != hosts:
            problems.append(f"{router}: acknowledged hosting {hosts}, listed {listed.get(router)}")
    return acked, unanswered, len(uncertain), problems


def spins_found(events_path):
    """Spins found from the events alone: terminator.spin events, and any
    (router, service) whose terminator A was created and deleted and then
    another one B created, with no model.change touching the router or
    the service from 5 s before A's creation to 2 s after B's (the window
    is wide on both sides: a late create, or a bus delivering the model's
    change after the terminators', is not a spin)."""
    announced, terms, touches = 0, {}, {}
    for event in ev.events(events_path):
        namespace, kind = event.get("namespace"), event.get("type")
        if namespace == "terminator" and kind == "spin":
            announced += 1
        elif namespace == "terminator" and kind in ("created", "deleted"):
            key = (event.get("router_id"), event.get("service_id"))
            t = terms.setdefault(key, {}).setdefault(event.get("terminator_id"), {})
            t.setdefault(kind, ev.timestamp(event))
        elif namespace == "model" and kind == "change":
            for op in event.get("ops", []):
                touches.setdefault((op.get("type"), op.get("id")), []).append(ev.timestamp(event))
    found = []
    for (router, service), ids in terms.items():
        near = sorted(touches.get(("router", router), []) + touches.get(("service", service), []))
        for a, ta in ids.items():
            if "created" not in ta or "deleted" not in ta:
                continue
            for b, tb in ids.items():
                if b == a or tb.get("created", 0) <= ta["deleted"]:
                    continue
                if not any(ta["created"] - 5 < t <= tb["created"] + 2 for t in near):
                    found.append(f"{router}/{service}: {a} created, deleted, then {b} created, "
                                 f"no touching model change")
    return announced, found


def fenced_check(events_path, paused):
    """The owner paused past its lease: after it resumed, until it acquired
    a shard again, it published no terminator event that was not already
    published before (by anyone: a resend of its outbox is fine)."""
    if not paused:
        return 0, ["no owner was paused"]
    instance, resumed = paused["instance"], float(paused["resumed"])
    seen, late, reacquired = set(), [], None
    for event in ev.events(events_path):
        t = ev.timestamp(event)
        if event.get("namespace") == "cluster" and event.get("type") == "shard.acquired" \
                and event.get("instance_id") == instance and t > resumed and reacquired is None:
            reacquired = t
        if event.get("namespace") != "terminator":
            continue
        key = (event.get("terminator_id"), event.get("type"))
        if t <= resumed:
            seen.add(key)
        elif event.get("event_src_id") == instance and (reacquired is None or t < reacquired):
            late.append(key)
    stale = [k for k in late if k not in seen]
    return len(late), [f"{instance} published {k[1]} of {k[0]} after it resumed, fenced" for k in stale]


def oracle(argv):
    events_path, writes_path = argv[0], argv[1]
    routers, terms, sessions, facts = load(argv[2]), load(argv[3]), load(argv[4]), load(argv[5])
    failed = False

    def say(ok, text):
        nonlocal failed
        failed |= not ok
        print(("ok   " if ok else "FAIL ") + text)

    announced, found = spins_found(events_path)
    metric = int(facts["spins_metric"])
    say(metric == 0 and announced == 0 and not found,
        f"spins: {metric} counted by the terminators instances (killed ones included), "
        f"{announced} terminator.spin events, {len(found)} found from the created/deleted events"
        + "".join(f"\n       {f}" for f in found[:10]))

    live = {r["id"]: sorted(h.get("service_id") for h in r.get("hosted", []))
            for r in routers if r.get("enabled", True)}
    want = {(r, s) for r, hosts in live.items() for s in hosts}
    by_pair = {}
    for t in terms:
        by_pair.setdefault((t.get("router_id"), t.get("service_id")), []).append(t.get("state", "").lower())
    missing = sorted(p for p in want if by_pair.get(p, []).count("established") != 1)
    extra = sorted(p for p, states in by_pair.items()
                   if p not in want and any(s not in ("deleted", "deleting") for s in states))
    say(not missing and not extra,
        f"terminators: {len(want)} (live router, hosted service) pairs over {len(live)} routers, "
        f"each with exactly one ESTABLISHED: {len(want) - len(missing)}; "
        f"not so: {missing[:8]}; live for no such pair: {extra[:8]}")

    deleted = set(facts["deleted"]) - set(live)
    bad = [s for s in sessions if s.get("router_id") in deleted
           and s.get("state", "").lower() in ("active", "terminating")]
    open_live = sum(1 for s in sessions if s.get("router_id") in live and s.get("state", "").lower() == "active")
    say(not bad, f"sessions: none of the {len(deleted)} deleted routers ACTIVE or TERMINATING "
        f"({len(bad)} are: {[s.get('id') for s in bad[:5]]}); {open_live} ACTIVE on live routers")

    import io
    import contextlib
    for service, live_instances in (("terminators", facts["terminators"]), ("reaper", facts.get("reapers"))):
        if not live_instances:
            continue
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            split = ev.shards(events_path, int(live_instances), int(facts["shards"]), service)
        say(split == 0, f"shards: every one of the {facts['shards']} owned by exactly one of the "
            f"{live_instances} live {service} instances: {' '.join(buf.getvalue().split(chr(10)))}")

    late, stale = fenced_check(events_path, facts.get("paused"))
    say(not stale, f"fencing: the owner paused past its lease published {late} terminator events "
        f"after it resumed, none new ({len(stale)} new); writes refused by the fence: {facts.get('fenced')}"
        + "".join(f"\n       {s}" for s in stale[:10]))

    acked, unanswered, uncertain, problems = writes_check(events_path, writes_path, routers)
    say(not problems, f"model writes: {acked} acknowledged, each published at its revision; "
        f"the routers listed hold the last acknowledged write of each ({unanswered} unanswered, "
        f"{uncertain} routers left uncertain)" + "".join(f"\n       {p}" for p in problems[:10]))
    return 1 if failed else 0


def figures(argv):
    holders, seen = {}, {}
    for event in ev.events(argv[0]):
        if event.get("namespace") == "presence" and event.get("type") == "beacon":
            for router in event.get("routers", []):
                holders.setdefault(router, set()).add(event["instance_id"])
                seen.setdefault(event["instance_id"], set()).add(router)
    moved = sum(1 for h in holders.values() if len(h) > 1)
    print(f"{len(seen)} watchdog instances held routers "
          f"({', '.join(str(len(r)) for r in sorted(seen.values(), key=len, reverse=True))}); "
          f"{len(holders)} routers joined, {moved} of them through more than one instance")
    return 0


def instance(argv):
    """The instance of the sharded service argv[2] (default terminators)
    advertising host argv[1] in the newest beacon."""
    service = argv[2] if len(argv) > 2 else "terminators"
    port = {"terminators": 7011, "reaper": 7021}[service]
    #  A container killed earlier runs a new instance under the same
    #  address: the one beaconing last is the one running there now.
    here = [(ev.timestamp(beacon), instance_id)
            for instance_id, beacon in ev.beacons(argv[0], service=service).items()
            if beacon.get("address") == f"tcp://{argv[1]}:{port}"]
    if not here:
        return 1
    print(max(here)[1])
    return 0


def main(argv):
    commands = {"workload": workload, "oracle": oracle, "figures": figures, "instance": instance}
    if len(argv) < 2 or argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    return commands[argv[1]](argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
