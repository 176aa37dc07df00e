#!/usr/bin/python3
"""test_chaos.py: compose/test/chaos.py's oracle passes what it must and
fails what it must, on made-up events, writes and lists (no processes, no
docker): spins found from the created/deleted events, the fenced owner's
events after it resumed, acknowledged model writes, terminators per live
pair, sessions of deleted routers. Prints 'N passed, N failed'."""
import contextlib
import datetime
import io
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chaos  # noqa: E402


def stamp(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def term(kind, tid, t, router="r1", service="web", src="terminators-a"):
    return {"namespace": "terminator", "type": kind, "event_src_id": src, "timestamp": stamp(t),
            "terminator_id": tid, "router_id": router, "service_id": service}


def change(revision, t, ops):
    return {"namespace": "model", "type": "change", "timestamp": stamp(t), "revision": revision,
            "prev_revision": revision - 1, "ops": ops}


def router_op(kind, rid):
    return {"type": "router", "id": rid, "kind": kind, "entity": {"router": {"id": rid}}}


def files(tmp, **named):
    paths = {}
    for name, content in named.items():
        paths[name] = os.path.join(tmp, name)
        with open(paths[name], "w", encoding="utf-8") as f:
            if name in ("events", "writes"):
                f.writelines(json.dumps(e) + "\n" for e in content)
            else:
                json.dump(content, f)
    return paths


def run_oracle(event_list, writes, routers, terms, sessions, facts):
    with tempfile.TemporaryDirectory() as tmp:
        p = files(tmp, events=event_list, writes=writes, routers=routers, terms=terms,
                  sessions=sessions, facts=facts)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = chaos.oracle([p["events"], p["writes"], p["routers"], p["terms"], p["sessions"], p["facts"]])
        return rc, out.getvalue()


#  A world that holds: r1 hosts web (one ESTABLISHED), r2 was deleted (its
#  session closed), one shard owned by one instance, the paused instance
#  quiet after it resumed.
BEACON = {"namespace": "cluster", "type": "beacon", "service": "terminators", "instance_id": "terminators-a",
          "timestamp": stamp(200.0), "shards": [0], "shard_count": 1, "address": "tcp://h:7011"}
EVENTS = [change(5, 100.0, [router_op("created", "r1")]), term("created", "t1", 101.0),
          change(6, 102.0, [router_op("deleted", "r2")]), BEACON]
WRITES = [{"t": 100.0, "op": "create", "id": "r1", "hosts": ["web"], "ok": True, "revision": 5},
          {"t": 102.0, "op": "delete", "id": "r2", "hosts": [], "ok": True, "revision": 6}]
ROUTERS = [{"id": "r1", "enabled": True, "hosted": [{"service_id": "web"}]}]
TERMS = [{"id": "t1", "router_id": "r1", "service_id": "web", "state": "established"}]
SESSIONS = [{"id": "s1", "router_id": "r1", "state": "active"}, {"id": "s2", "router_id": "r2", "state": "closed"}]
FACTS = {"spins_metric": 0, "fenced": 0, "shards": 1, "terminators": 1, "deleted": ["r2"],
         "paused": {"instance": "terminators-b", "resumed": 150.0}}


def test_a_world_that_holds_passes():
    rc, out = run_oracle(EVENTS, WRITES, ROUTERS, TERMS, SESSIONS, FACTS)
    assert rc == 0, out


def test_spin_from_events_fails():
    #  t1 created, deleted, t2 created, and no model change touches r1 or
    #  web from 5 s before t1 to 2 s after t2.
    spin = [term("created", "x1", 120.0, router="r9"), term("deleted", "x1", 121.0, router="r9"),
            term("created", "x2", 122.0, router="r9")]
    rc, out = run_oracle(EVENTS + spin, WRITES, ROUTERS, TERMS, SESSIONS, FACTS)
    assert rc == 1 and "1 found from the created/deleted events" in out, out


def test_rehost_between_is_no_spin():
    cycle = [term("created", "x1", 120.0, router="r1"), term("deleted", "x1", 121.0, router="r1"),
             change(7, 121.5, [router_op("updated", "r1")]), term("created", "x2", 122.0, router="r1")]
    rc, out = run_oracle(EVENTS + cycle, WRITES, ROUTERS, TERMS, SESSIONS, FACTS)
    assert rc == 0, out


def test_spin_counter_fails():
    rc, out = run_oracle(EVENTS, WRITES, ROUTERS, TERMS, SESSIONS, dict(FACTS, spins_metric=1))
    assert rc == 1 and "FAIL spins: 1 counted" in out, out


def test_two_established_fails():
    terms = TERMS + [{"id": "t9", "router_id": "r1", "service_id": "web", "state": "established"}]
    rc, out = run_oracle(EVENTS, WRITES, ROUTERS, terms, SESSIONS, FACTS)
    assert rc == 1 and "not so: [('r1', 'web')]" in out, out


def test_terminator_of_deleted_router_fails():
    terms = TERMS + [{"id": "t8", "router_id": "r2", "service_id": "web", "state": "established"}]
    rc, out = run_oracle(EVENTS, WRITES, ROUTERS, terms, SESSIONS, FACTS)
    assert rc == 1 and "live for no such pair: [('r2', 'web')]" in out, out


def test_session_of_deleted_router_terminating_fails():
    sessions = SESSIONS + [{"id": "s3", "router_id": "r2", "state": "terminating"}]
    rc, out = run_oracle(EVENTS, WRITES, ROUTERS, TERMS, sessions, FACTS)
    assert rc == 1 and "1 are: ['s3']" in out, out


def test_new_event_of_fenced_owner_fails():
    late = term("created", "t5", 151.0, src="terminators-b")
    rc, out = run_oracle(EVENTS + [late], WRITES, ROUTERS, TERMS, SESSIONS, FACTS)
    assert rc == 1 and "terminators-b published created of t5 after it resumed" in out, out


def test_resend_of_fenced_owner_passes():
    #  t1's created published before the pause, sent again after it: a
    #  resend of its outbox, not a new write.
    late = term("created", "t1", 151.0, src="terminators-b")
    rc, out = run_oracle(EVENTS + [late], WRITES, ROUTERS, TERMS, SESSIONS, FACTS)
    assert rc == 0, out


def test_acknowledged_write_unpublished_fails():
    writes = WRITES + [{"t": 103.0, "op": "rehost", "id": "r1", "hosts": ["web"], "ok": True, "revision": 9}]
    rc, out = run_oracle(EVENTS, writes, ROUTERS, TERMS, SESSIONS, FACTS)
    assert rc == 1 and "acknowledged rehost of r1 at revision 9" in out, out


def test_deleted_router_still_listed_fails():
    routers = ROUTERS + [{"id": "r2", "enabled": True, "hosted": []}]
    rc, out = run_oracle(EVENTS, WRITES, routers, TERMS, SESSIONS, FACTS)
    assert rc == 1 and "r2: deleted (acknowledged), yet listed" in out, out


REAPER_BEACON = dict(BEACON, service="reaper", instance_id="reaper-a", address="tcp://p:7021")


def test_reaper_shards_owned_once_pass():
    facts = dict(FACTS, reapers=1)
    rc, out = run_oracle(EVENTS + [REAPER_BEACON], WRITES, ROUTERS, TERMS, SESSIONS, facts)
    assert rc == 0 and "live reaper instances" in out, out


def test_reaper_shard_unowned_fails():
    #  The terminators' beacon claims shard 0; no reaper's does.
    facts = dict(FACTS, reapers=1)
    rc, out = run_oracle(EVENTS, WRITES, ROUTERS, TERMS, SESSIONS, facts)
    assert rc == 1 and "FAIL shards: every one of the 1 owned by exactly one of the 1 live reaper" in out, out


def test_instance_by_service_and_port():
    with tempfile.TemporaryDirectory() as tmp:
        p = files(tmp, events=EVENTS + [REAPER_BEACON])
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert chaos.instance([p["events"], "p", "reaper"]) == 0
            assert chaos.instance([p["events"], "p"]) == 1, "a reaper's host taken for a terminators'"
            assert chaos.instance([p["events"], "h"]) == 0
        assert out.getvalue().split() == ["reaper-a", "terminators-a"], out.getvalue()


def test_instance_is_the_one_beaconing_last_at_the_address():
    #  reaper-a's container was killed and came back as reaper-b, same host.
    again = dict(REAPER_BEACON, instance_id="reaper-b", timestamp=stamp(260.0))
    older = dict(REAPER_BEACON, timestamp=stamp(230.0))
    with tempfile.TemporaryDirectory() as tmp:
        p = files(tmp, events=EVENTS + [older, again])
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert chaos.instance([p["events"], "p", "reaper"]) == 0
        assert out.getvalue().split() == ["reaper-b"], out.getvalue()


def main():
    tests = [(name, fn) for name, fn in sorted(globals().items()) if name.startswith("test_")]
    failed = 0
    for name, fn in tests:
        try:
            fn()
            print(f"ok   {name}")
        except AssertionError as e:
            failed += 1
            print(f"FAIL {name}: {e}")
    print(f"{len(tests) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
