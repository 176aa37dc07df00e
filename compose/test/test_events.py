#!/usr/bin/python3
"""test_events.py: compose/test/events.py's model oracle passes what it must
and fails what it must, on made-up model.change events and writer.py lines,
and so do its shards and takeover queries on made-up cluster.beacon and
cluster.shard.acquired events (no processes, no docker). Prints 'N passed, N failed'."""
import contextlib
import datetime
import io
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import events  # noqa: E402


def router_op(kind, rid, name, revision):
    return {"type": "router", "id": rid, "kind": kind,
            "entity": {"router": {"id": rid, "name": name, "meta": {"version": revision}}}}


def change(revision, ops, source="model-1"):
    return {"namespace": "model", "type": "change", "event_src_id": source, "revision": revision,
            "prev_revision": revision - 1, "part": 1, "parts": 1, "principal": "operator", "ops": ops}


def txn_line(revision, hot="hot-0", ok=True, **more):
    steps = [{"op": "create", "id": "w-5-a", "name": "w-5-a"},
             {"op": "create", "id": "w-5-b", "name": "w-5-b"},
             {"op": "update", "id": hot, "name": f"{hot}-5"}]
    line = {"t": 1.0, "op": "txn", "id": hot, "name": f"{hot}-5", "via": "a", "ok": ok, "writes": steps}
    if ok:
        line["revision"] = revision
    line.update(more)
    return line


def txn_ops(revision):
    return [router_op("created", "w-5-a", "w-5-a", revision), router_op("created", "w-5-b", "w-5-b", revision),
            router_op("updated", "hot-0", "hot-0-5", revision)]


#  The history before the transaction: hot-0 created at 1, w-1 at 2.
BEFORE_EVENTS = [change(1, [router_op("created", "hot-0", "hot-0", 1)]),
                 change(2, [router_op("created", "w-1", "w-1", 2)])]
BEFORE_WRITES = [{"t": 1.0, "op": "create", "id": "hot-0", "name": "hot-0", "via": "a", "ok": True, "revision": 1},
                 {"t": 1.0, "op": "create", "id": "w-1", "name": "w-1", "via": "a", "ok": True, "revision": 2}]


def oracle(event_list, write_list):
    """events.model's exit status and what it printed."""
    with tempfile.TemporaryDirectory() as tmp:
        path, writes_path = os.path.join(tmp, "events.jsonl"), os.path.join(tmp, "writes.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(e) + "\n" for e in event_list)
        with open(writes_path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(w) + "\n" for w in write_list)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = events.model(path, writes_path, [])
        return rc, out.getvalue()


def test_single_writes_pass():
    rc, out = oracle(BEFORE_EVENTS, BEFORE_WRITES)
    assert rc == 0, out


def test_txn_in_one_change_passes():
    rc, out = oracle(BEFORE_EVENTS + [change(3, txn_ops(3))], BEFORE_WRITES + [txn_line(3)])
    assert rc == 0, out
    assert "3 revisions published" in out, out


def test_txn_split_over_two_revisions_fails():
    ops = txn_ops(3)
    split = [change(3, ops[:2]), change(4, [router_op("updated", "hot-0", "hot-0-5", 4)])]
    rc, out = oracle(BEFORE_EVENTS + split, BEFORE_WRITES + [txn_line(3)])
    assert rc == 1 and "update of hot-0 (name hot-0-5) in a txn at revision 3" in out, out
    assert "that revision's model.change holds the ops" in out, out


def test_txn_missing_an_op_fails():
    rc, out = oracle(BEFORE_EVENTS + [change(3, txn_ops(3)[1:])], BEFORE_WRITES + [txn_line(3)])
    assert rc == 1 and "create of w-5-a (name w-5-a) in a txn at revision 3" in out, out


def test_txn_revision_with_another_op_fails():
    ops = txn_ops(3) + [router_op("created", "w-9", "w-9", 3)]
    rc, out = oracle(BEFORE_EVENTS + [change(3, ops)], BEFORE_WRITES + [txn_line(3)])
    assert rc == 1 and "acknowledged txn at revision 3" in out and "w-9" in out, out


def test_txn_op_at_another_version_fails():
    ops = txn_ops(3)
    ops[2] = router_op("updated", "hot-0", "hot-0-5", 2)
    rc, out = oracle(BEFORE_EVENTS + [change(3, ops)], BEFORE_WRITES + [txn_line(3)])
    assert rc == 1 and "hot-0" in out, out


def test_txn_not_yet_published_is_unseen():
    rc, out = oracle(BEFORE_EVENTS, BEFORE_WRITES + [txn_line(3)])
    assert rc == 1 and "1 acknowledged writes not yet seen (e.g. txn hot-0 at 3)" in out, out


def test_txn_refused_after_an_unanswered_one_passes():
    unanswered = txn_line(0, ok=False, outcome="unanswered", err="no reply")
    refused = txn_line(0, ok=False, outcome="refused", err="edgeplane model txn: CONFLICT: write 3: ...")
    rc, out = oracle(BEFORE_EVENTS, BEFORE_WRITES + [unanswered, refused])
    assert rc == 0, out


def test_txn_refused_out_of_the_blue_fails():
    refused = txn_line(0, ok=False, outcome="refused", err="edgeplane model txn: CONFLICT: write 3: ...")
    rc, out = oracle(BEFORE_EVENTS, BEFORE_WRITES + [refused])
    assert rc == 1 and "txn hot-0: edgeplane model txn: CONFLICT" in out, out


#  The sharded terminators' beacons (events.shards, events.takeover).
def beacon(instance, shards, at, count=8):
    stamp = datetime.datetime.fromtimestamp(at, datetime.timezone.utc).isoformat().replace("+00:00", "Z")
    return {"namespace": "cluster", "type": "beacon", "service": "terminators", "instance_id": instance,
            "address": f"tcp://{instance}:7011", "shard_count": count, "shards": shards, "timestamp": stamp}


def acquired(instance, shard, at):
    event = beacon(instance, [], at)
    event.update(type="shard.acquired", shard=shard)
    return event


def query(fn, event_list, *args):
    """fn's (events.shards, events.takeover) exit status and what it printed."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "events.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(e) + "\n" for e in event_list)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = fn(path, *args)
        return rc, out.getvalue()


SPLIT = [beacon("a", [0, 1, 2], 100.0), beacon("b", [3, 4, 5], 100.2), beacon("c", [6, 7], 100.4)]


def test_shards_split_passes():
    rc, out = query(events.shards, SPLIT, 3, 8)
    assert rc == 0, out


def test_shards_owned_twice_or_unowned_fails():
    rc, out = query(events.shards, SPLIT + [beacon("c", [5, 6], 101.0)], 3, 8)
    assert rc == 1 and "shards owned twice: [5]" in out and "unowned: [7]" in out, out


def test_shards_above_the_cap_fails():
    rc, out = query(events.shards, [beacon("a", [0, 1, 2, 3, 4], 100.0), beacon("b", [5, 6], 100.1),
                                    beacon("c", [7], 100.2)], 3, 8)
    assert rc == 1 and "a owns 5 shards, above the cap 4" in out, out


def test_shards_silent_instance_is_not_live():
    later = [beacon("a", [0, 1, 2, 3], 103.0), beacon("b", [4, 5, 6, 7], 103.1)]
    rc, out = query(events.shards, SPLIT + later, 2, 8)
    assert rc == 0, out
    rc, out = query(events.shards, SPLIT + later, 3, 8)
    assert rc == 1 and "2 live instances, not 3" in out, out


def test_takeover_times_from_the_kill():
    history = SPLIT + [acquired("a", 6, 103.5), acquired("b", 7, 104.0)]
    rc, out = query(events.takeover, history, "c", 101.0)
    assert rc == 0 and "2 shards taken over by 2 instances in 2.50 s (first) to 3.00 s (last)" in out, out


def test_takeover_incomplete_fails():
    rc, out = query(events.takeover, SPLIT + [acquired("a", 6, 103.5)], "c", 101.0)
    assert rc == 1 and "not yet: [7]" in out, out


def test_takeover_counts_a_shard_given_up_between_the_last_beacon_and_the_fault():
    #  c's last beacon (100.4) names 6 and 7; it gave 7 up to balance and b
    #  took it at 100.8, before the pause at 101.0: not lost to the pause.
    history = SPLIT + [acquired("b", 7, 100.8), acquired("a", 6, 103.5)]
    rc, out = query(events.takeover, history, "c", 101.0)
    want = ("2 shards taken over by 2 instances in -0.20 s (first) to 2.50 s (last), "
            "1 of them before the fault")
    assert rc == 0 and want in out, out
    #  An acquisition before that beacon is not one of these shards' takeover.
    rc, out = query(events.takeover, SPLIT[:2] + [acquired("b", 7, 100.3), beacon("c", [6, 7], 100.4),
                                                  acquired("a", 6, 103.5)], "c", 101.0)
    assert rc == 1 and "not yet: [7]" in out, out



def test_moves_measure_the_gap():
    released = acquired("a", 2, 105.0)
    released["type"] = "shard.released"
    history = SPLIT + [released, acquired("c", 2, 105.2), acquired("a", 5, 104.0)]
    rc, out = query(events.moves, history, 101.0)
    assert rc == 0 and "1 shards moved, each without an owner 200 ms (median) to 200 ms" in out, out


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
