#!/usr/bin/env python3
"""The writing client of compose/test/ha: writes through both model
instances, each write as soon as the one before it was answered, until
the file STOP exists. Each write is one `edgeplane` run (a request id of
its own, resent with it on a timeout, so a retry is applied once), given
both instances, the first one alternating. Writes cycle over:

  - create router w-N (a new entity; its content: the name w-N)
  - update one of HOT routers hot-0 .. hot-(HOT-1) with compare-and-swap
    (--expected-version: the version its last acknowledged write returned),
    content: the name hot-H-N
  - every TXN_EVERY-th write instead a transaction (`edgeplane model txn`,
    all or nothing at one revision): create routers w-N-a and w-N-b and
    compare-and-swap update hot router hot-H to the name hot-H-N

A write that fails (no answer from either instance, within the CLI's
attempts) is recorded as unanswered: it may or may not have been applied.
After one on a hot router, its version is read again before the next
compare-and-swap on it; a compare-and-swap refused is recorded as such.

  writer.py EDGEPLANE KEYS_DIR API1 API2 OUT STOP [HOT [TXN_EVERY]]

OUT gets one JSON line per write: t (seconds since the epoch, when the
answer came), op (create, update, txn), id, name (a txn's: those of its
compare-and-swap update), via (the instance tried first), for a txn
writes (its writes, each op, id, name), and ok: true with revision (the
model revision acknowledged; a txn's writes are all at it), or ok: false
with outcome and err: unanswered (no answer from either instance),
refused (CONFLICT: a compare-and-swap that lost), unavailable (the model
answered UNAVAILABLE), error (any other answer: a bug).
"""
import json
import os
import re
import signal
import subprocess
import sys
import time


def main(argv):
    #  Stopped (the test failed): the CLI run under way is killed too
    #  (subprocess.run kills its child when an exception leaves it).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    cli, keys, apis, out_path, stop = argv[1], argv[2], argv[3:5], argv[5], argv[6]
    hot = int(argv[7]) if len(argv) > 7 else 3
    txn_every = int(argv[8]) if len(argv) > 8 else 5
    out = open(out_path, "a", encoding="utf-8")
    env = dict(os.environ, EDGEPLANE_KEYS_DIR=keys)
    versions = {}           # hot router -> version its last acknowledged write returned; None: unknown
    n = 0

    def run(args, stdin=None):
        via = apis[n % 2]
        env["EDGEPLANE_MODEL_API"] = ",".join([via] + [a for a in apis if a != via])
        done = subprocess.run([cli] + args + ["--json", "--timeout", "2s", "--attempts", "4"],
                              env=env, capture_output=True, text=True, input=stdin)
        return via, done

    def record(**fields):
        fields["t"] = time.time()
        out.write(json.dumps(fields, sort_keys=True) + "\n")
        out.flush()

    for h in range(hot):
        versions[f"hot-{h}"] = None
    while not os.path.exists(stop):
        n += 1
        txn = n % txn_every == 0
        target = f"hot-{n % hot}" if n % 2 == 0 or txn else None
        steps, stdin = None, None
        if target and versions[target] is None:
            #  Its version is unknown (first use, or after an unanswered
            #  write): read it, or create it if it is not there.
            _, got = run(["router", "get", target])
            if got.returncode == 0:
                versions[target] = json.loads(got.stdout)["meta"]["version"]
                continue
            if "does not exist" not in got.stderr:
                continue        # no answer: try again
            target, op, name, args = target, "create", target, ["router", "create", target]
        elif txn:
            #  Two new routers and a compare-and-swap on a hot one: all
            #  at one revision, or none (the oracle checks it was one
            #  model.change holding the three).
            op, name = "txn", f"{target}-{n}"
            steps = [{"op": "create", "id": f"w-{n}-a", "name": f"w-{n}-a"},
                     {"op": "create", "id": f"w-{n}-b", "name": f"w-{n}-b"},
                     {"op": "update", "id": target, "name": name}]
            body = [{"op": w["op"], "kind": "router", "id": w["id"], "fields": {"name": w["name"]}}
                    for w in steps]
            body[2]["expected_version"] = versions[target]
            stdin = json.dumps(body)
            args = ["model", "txn", "-"]
        elif target:
            op, name = "update", f"{target}-{n}"
            args = ["router", "update", target, "--name", name, "--expected-version", str(versions[target])]
        else:
            target, op = f"w-{n}", "create"
            name, args = target, ["router", "create", target]
        via, done = run(args, stdin)
        extra = {"writes": steps} if steps else {}
        if done.returncode == 0:
            reply = json.loads(done.stdout)
            revision = int(reply["revision"] if steps else reply["meta"]["version"])
            if target in versions:
                versions[target] = revision
            record(op=op, id=target, name=name, via=via, ok=True, revision=revision, **extra)
        else:
            err = (done.stderr or done.stdout).strip()[-300:]
            #  An answer is "edgeplane COMMAND: CODE: message" (cli_status_fail).
            code = re.match(r"edgeplane [a-z ]+: ([A-Z_]+): ", err)
            code = code.group(1) if code else None
            outcome = ("unanswered" if code is None else "refused" if code == "CONFLICT"
                       else "unavailable" if code == "UNAVAILABLE" else "error")
            if target in versions:
                versions[target] = None
            record(op=op, id=target, name=name, via=via, ok=False, outcome=outcome, err=err, **extra)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
