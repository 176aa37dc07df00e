"""ep_up.py: `edgeplane up` for python tests (the Prometheus name check, the
browser tests). Every service listens on its own port below the kernel's
ephemeral range, chosen here as tests/support/ep_test.c's ep_test_stable_port
does (free at bind time, so a restarted service comes back where its clients
reconnect); HTTP ports are the kernel's (the ready files under <data>/run say
which). Waits on ready files and conditions with deadlines, never on sleeps.
"""
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

SLOWDOWN = float(os.environ.get("EP_TEST_SLOWDOWN", "1") or 1)

# (service, listen variable, client variable or None, zmq?)
LISTENERS = [
    ("bus", "EDGEPLANE_BUS_PUB_LISTEN", "EDGEPLANE_BUS_PUB", True),
    ("bus", "EDGEPLANE_BUS_SUB_LISTEN", "EDGEPLANE_BUS_SUB", True),
    ("model", "EDGEPLANE_MODEL_LISTEN", "EDGEPLANE_MODEL_API", True),
    ("terminators", "EDGEPLANE_TERMINATORS_LISTEN", "EDGEPLANE_TERMINATORS_API", True),
    ("reaper", "EDGEPLANE_REAPER_LISTEN", "EDGEPLANE_REAPER_API", True),
    ("watchdog", "EDGEPLANE_WATCHDOG_LISTEN", "EDGEPLANE_WATCHDOG_API", True),
    ("watchdog", "EDGEPLANE_CHANNEL_LISTEN", None, False),
    ("console", "EDGEPLANE_CONSOLE_LISTEN", None, False),
]
SERVICES = ["bus", "model", "terminators", "reaper", "watchdog"]


def wait_until(what, predicate, seconds, step=0.05):
    """predicate's value once truthy; AssertionError naming what after seconds."""
    deadline = time.monotonic() + seconds * SLOWDOWN
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (seconds * SLOWDOWN, what))
        time.sleep(step)


def stable_port(taken):
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
    for _ in range(1000):
        port = random.randrange(10000, low)
        if port in taken:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise AssertionError("no free port below the ephemeral range")


def http_get(base, path, timeout=5, headers=None):
    """(status, body text) of GET http://base/path; status 0 when unreachable."""
    if "://" not in base:
        base = "http://" + base
    req = urllib.request.Request(base + path, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except OSError:
        return 0, ""


class Up:
    """`edgeplane up [--demo]` in a fresh directory; stop() ends it."""

    def __init__(self, bin_dir, demo=False, tag="up", env=None, services=None):
        self.bin_dir = bin_dir
        self.dir = tempfile.mkdtemp(prefix="ep-%s-" % tag)
        self.env = dict(os.environ)
        self.env.update({"EDGEPLANE_KEYS_DIR": os.path.join(self.dir, "keys"),
                         "EDGEPLANE_DATA_DIR": self.dir,
                         "EDGEPLANE_HTTP_LISTEN": "127.0.0.1:0"})
        taken = set()
        self.ports = {}
        for service, listen, client, zmq in LISTENERS:
            port = stable_port(taken)
            taken.add(port)
            self.ports[listen] = port
            value = ("tcp://127.0.0.1:%d" if zmq else "127.0.0.1:%d") % port
            self.env[listen] = value
            if client:
                self.env[client] = value
        # `edgeplane up --demo`'s fleet dials EDGEPLANE_CONTROLLER (default 127.0.0.1:6262).
        self.env["EDGEPLANE_CONTROLLER"] = self.env["EDGEPLANE_CHANNEL_LISTEN"]
        self.env.update(env or {})
        self.log_path = os.path.join(self.dir, "up.log")
        self.log = open(self.log_path, "w")
        args = [os.path.join(bin_dir, "edgeplane"), "up"] + (["--demo"] if demo else [])
        self.proc = subprocess.Popen(args, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        services = services or SERVICES
        wait_until("edgeplane up's %s to be ready (see %s)" % (", ".join(services), self.log_path),
                   lambda: self.proc.poll() is not None or all(self.ready(s) for s in services),
                   60)
        if self.proc.poll() is not None:
            raise AssertionError("edgeplane up exited: %s" % self.log_text())

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def ready(self, service):
        """service's ready file (a dict), or None."""
        try:
            with open(os.path.join(self.dir, "run", "%s.ready" % service)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def endpoint(self, service, name):
        ready = self.ready(service)
        return ready and ready.get("endpoints", {}).get(name)

    def channel(self):
        return ("127.0.0.1", self.ports["EDGEPLANE_CHANNEL_LISTEN"])

    def cli(self, *args, timeout=30):
        """(exit code, output) of `edgeplane ARGS` in this stack's environment."""
        r = subprocess.run([os.path.join(self.bin_dir, "edgeplane")] + list(args), env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout * SLOWDOWN)
        return r.returncode, r.stdout.decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)     # up stops its children in order
            try:
                self.proc.wait(20 * SLOWDOWN)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        if not os.environ.get("EP_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)
