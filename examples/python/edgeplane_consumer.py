#!/usr/bin/python3
"""edgeplane_consumer.py: an example consumer of the edgeplane event bus.

Copy it and change handle_event(). It subscribes to the bus over CURVE with a
subscriber certificate, decodes each [topic][ep.Event] with message classes
built at run time from the build's descriptor set (so there is no generated
code to keep in step with proto/), reports losses the way edgeplane's own
subscribers do, and prints one line per event:

    /usr/bin/python3 edgeplane_consumer.py --keys ./edgeplane-data/keys \\
        --descriptor-set build/gen/edgeplane.desc --prefix connect. --json

Events go to stdout (with --json, one JSON object per line, the same
rendering as `edgeplane events --json`); status lines go to stderr, so
`--json | jq` works:
    READY                               the first heartbeat arrived: the
                                        subscription has reached the bus
    LOST <source> <stream> <from>..<to> those messages never arrived
    RESTART <source> <stream>           the publisher restarted (new epoch)
    DUPLICATE-ID <event id>             a resend of an event already delivered
                                        (dropped: see "Duplicates" in docs/events.md)

Needs pyzmq and protobuf (Debian: python3-zmq, python3-protobuf).
"""

import argparse
import collections
import datetime
import json
import os
import re
import signal
import sys
import time

import zmq
import zmq.auth
from zmq.utils.monitor import recv_monitor_message
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

#   The bus refuses messages above this (EP_CODEC_DEFAULT_CAP in common/ep_codec.h).
DEFAULT_CAP = 4 * 1024 * 1024
#   Integers above this become strings in JSON, as JavaScript cannot keep them exact.
JSON_SAFE_INT = 2 ** 53
#   Event ids remembered to drop resends by (the window of common/ep_dedupe.c).
DEDUPE_WINDOW = 65536


# --------------------------------------------------------------------------
# Message classes from the descriptor set

def load_event_class(descriptor_set_path):
    """The ep.Event message class, built from a FileDescriptorSet (protoc
    --descriptor_set_out --include_imports: build/gen/edgeplane.desc)."""
    file_set = descriptor_pb2.FileDescriptorSet()
    with open(descriptor_set_path, "rb") as f:
        file_set.ParseFromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for file_proto in file_set.file:        # imports come before their users
        pool.AddSerializedFile(file_proto.SerializeToString())
    descriptor = pool.FindMessageTypeByName("ep.Event")
    if hasattr(message_factory, "GetMessageClass"):     # protobuf >= 4.22
        return message_factory.GetMessageClass(descriptor)
    return message_factory.MessageFactory(pool).GetPrototype(descriptor)


# --------------------------------------------------------------------------
# Loss detection: the rules of common/ep_tracker.h (without its silence check)

def whole(prefixes, stream):
    """True if the subscriptions take every message of stream, so a seq jump
    is a loss: some prefix is a prefix of "<stream>." ("", "conn", "connect.").
    A subscription to "connect.router-to-ctrl" sees a subset of the stream."""
    return any((stream + ".").startswith(prefix) for prefix in prefixes)


def subscriptions(prefixes):
    """The prefixes, then the heartbeat topic of every stream a prefix takes
    only part of ("connect.router-to-ctrl" adds "connect.heartbeat"), so even
    a filtered consumer knows the stream is live."""
    topics = list(dict.fromkeys(prefixes))
    for prefix in prefixes:
        stream = prefix.split(".", 1)[0]
        if "." in prefix and stream and not whole(prefixes, stream):
            heartbeat = stream + ".heartbeat"
            if heartbeat not in topics:
                topics.append(heartbeat)
    return topics


class StreamTracker:
    """Continuity of every (source, stream): each message carries its
    publisher's epoch (new per process start) and seq (+1 per message on the
    stream); each heartbeat carries the last seq sent, which proves losses at
    the end of a stream too."""

    def __init__(self, prefixes, subscribed_ms):
        self.prefixes = list(prefixes)      # what we subscribed to
        self.subscribed_ms = subscribed_ms  # wall clock when we subscribed
        self.sources = {}                   # (source, stream) -> [epoch, epoch_started_ms, last_seq]
        self.lost = 0                       # messages proven lost so far

    def observe(self, source, stream, epoch, epoch_started_ms, seq, heartbeat):
        """Feeds one received message. Returns (deliver, notes): deliver is
        False for a duplicate or a straggler from an older epoch; notes are
        status lines ("LOST ...", "RESTART ...", "DUPLICATE ...")."""
        notes = []
        state = self.sources.get((source, stream))
        if state is None:
            # A publisher that started after we subscribed is owed from seq 1;
            # one that was already running is taken from what we see first.
            if epoch_started_ms >= self.subscribed_ms:
                last = 0
            else:
                last = seq if heartbeat else seq - 1
            state = self.sources[(source, stream)] = [epoch, epoch_started_ms, last]
        elif epoch != state[0]:
            if epoch_started_ms < state[1]:
                return False, notes
            state[:] = [epoch, epoch_started_ms, 0]
            notes.append(f"RESTART {source} {stream}")

        take_all = whole(self.prefixes, stream)
        last = state[2]
        if heartbeat:
            if take_all and seq > last:
                notes.append(self._lost(source, stream, last + 1, seq))
                state[2] = seq
            return True, notes
        if seq <= last:
            # ZeroMQ keeps order on a path: an old seq was seen before.
            notes.append(f"DUPLICATE {source} {stream} {seq}")
            return False, notes
        if take_all and seq > last + 1:
            notes.append(self._lost(source, stream, last + 1, seq - 1))
        state[2] = seq
        return True, notes

    def _lost(self, source, stream, first, last):
        self.lost += last - first + 1
        return f"LOST {source} {stream} {first}..{last}"


# --------------------------------------------------------------------------
# Rendering: the same JSON as `edgeplane events --json` (common/ep_event_json.h)

class Dedupe:
    """The last `window` event ids delivered. A decided event is resent with
    the same StreamMeta.event_id until it comes back through the bus, and
    again after its publisher restarts (at least once): a consumer drops
    the ids it has seen. Bounded: an id older than the window passes again
    (delivered twice, never zero times), as in common/ep_dedupe.c."""

    def __init__(self, window=DEDUPE_WINDOW):
        self.window = window
        self.ids = collections.OrderedDict()

    def fresh(self, event_id):
        """True the first time event_id is seen within the window; an empty
        id (an event without one) is always fresh."""
        if not event_id:
            return True
        if event_id in self.ids:
            return False
        self.ids[event_id] = None
        if len(self.ids) > self.window:
            self.ids.popitem(last=False)
        return True


def rfc3339(wall_ms):
    """"2024-05-01T12:00:00.123Z" for ms since the Unix epoch; None if absurd."""
    try:
        when = datetime.datetime.fromtimestamp(wall_ms // 1000, datetime.timezone.utc)
    except (OverflowError, ValueError, OSError):
        return None
    return when.strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % (wall_ms % 1000)


def _enum_name(enum_type, number):
    """PRECEDENCE_REQUIRED of enum Precedence -> "required"."""
    value = enum_type.values_by_number.get(number)
    if value is None:
        return number
    prefix = re.sub(r"(?<!^)([A-Z])", r"_\1", enum_type.name).upper() + "_"
    name = value.name
    if name.startswith(prefix) and len(name) > len(prefix):
        name = name[len(prefix):]
    return name.lower()


def _value(field, value):
    if field.type == field.TYPE_MESSAGE:
        return message_dict(value)
    if field.type == field.TYPE_ENUM:
        return _enum_name(field.enum_type, value)
    if field.type == field.TYPE_BYTES:
        return value.hex()
    if field.type in (field.TYPE_UINT64, field.TYPE_FIXED64) and value >= JSON_SAFE_INT:
        return str(value)
    return value


def message_dict(message):
    """The fields a message has, under their proto names. (json_format's
    MessageToDict would write every 64-bit integer as a string and enums in
    capitals; this matches the C rendering instead.)"""
    out = {}
    for field, value in message.ListFields():
        if field.label == field.LABEL_REPEATED:
            out[field.name] = [_value(field, item) for item in value]
        else:
            out[field.name] = _value(field, value)
    return out


def event_dict(topic, event):
    """OpenZiti-compatible names first (namespace, event_src_id, timestamp),
    then type (the topic after the namespace), stream, seq, epoch (hex), then
    the body's fields at the top level."""
    namespace, dot, kind = topic.partition(".")
    if not dot:
        namespace, kind = "", topic
    out = {"namespace": namespace, "type": kind}
    if event.HasField("meta"):
        meta = event.meta
        out["event_src_id"] = meta.source_id if meta.HasField("source_id") else None
        out["timestamp"] = rfc3339(meta.timestamp_ms)
        out["stream"] = meta.stream if meta.HasField("stream") else None
        out["seq"] = meta.seq if meta.seq < JSON_SAFE_INT else str(meta.seq)
        out["epoch"] = "%016x" % meta.epoch
        if meta.HasField("event_id"):
            out["event_id"] = meta.event_id
    body = event.WhichOneof("body")
    if body:
        for key, value in message_dict(getattr(event, body)).items():
            if key not in out or key == "type":     # ConnectEvent's type wins
                out[key] = value
    return out


HEADER = ("namespace", "type", "event_src_id", "timestamp", "stream", "seq", "epoch", "event_id")


def event_text(topic, fields):
    """One readable line: time, topic, source, seq, then the body's fields."""
    words = [str(fields.get("timestamp")), topic, f"src={fields.get('event_src_id')}",
             f"seq={fields.get('seq')}"]
    for key, value in fields.items():
        if key not in HEADER:
            text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
            words.append(f"{key}={text}")
    return " ".join(words)


# --------------------------------------------------------------------------
# The consumer

def handle_event(topic, fields, args):
    """What to do with each event: here, print it. Change this."""
    if args.json:
        print(json.dumps(fields), flush=True)
    else:
        print(event_text(topic, fields), flush=True)


def status(line):
    print(line, file=sys.stderr, flush=True)


def load_keys(args):
    """(our public key, our secret key, the bus's public key), Z85 bytes."""
    keys = args.keys or os.environ.get("EDGEPLANE_KEYS_DIR", "./edgeplane-data/keys")
    cert = args.cert or os.path.join(keys, "curve", "subscriber.cert_secret")
    server = args.server_key_file or os.path.join(keys, "curve", "bus.cert")
    hint = "run `edgeplane pki init`, or pass the files of `edgeplane pki issue-curve` " \
           "with --cert and --server-key-file"
    try:
        public, secret = zmq.auth.load_certificate(cert)
        server_public, _ = zmq.auth.load_certificate(server)
    except (OSError, ValueError) as e:
        sys.exit(f"edgeplane_consumer: cannot read a certificate ({e}): {hint}")
    if secret is None:
        sys.exit(f"edgeplane_consumer: {cert} has no secret key: "
                 "pass the .cert_secret file with --cert")
    return public, secret, server_public


def connect(context, args):
    """A CURVE SUB socket on the bus, subscribed, and a monitor socket that
    tells us if the bus refuses our certificate."""
    public, secret, server_public = load_keys(args)
    sock = context.socket(zmq.SUB)
    sock.curve_publickey = public
    sock.curve_secretkey = secret
    sock.curve_serverkey = server_public
    sock.setsockopt(zmq.HEARTBEAT_IVL, 1000)        # notice a vanished bus
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3000)
    sock.setsockopt(zmq.RCVHWM, 100000)
    sock.setsockopt(zmq.MAXMSGSIZE, args.cap + 4096)
    for topic in subscriptions(args.prefix):
        sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
    monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH
                                      | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
                                      | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)
    try:
        sock.connect(args.bus)
    except zmq.ZMQError as e:
        sys.exit(f"edgeplane_consumer: cannot connect to {args.bus} ({e}): "
                 "pass the bus's subscriber endpoint, e.g. --bus tcp://127.0.0.1:7101")
    return sock, monitor


def check_handshake(event, warned):
    """Explains a failed CURVE handshake (from the socket monitor). Returns
    whether a warning has been printed."""
    if event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        # The bus's ZAP handler said no; ZeroMQ does not try again.
        sys.exit(f"edgeplane_consumer: the bus refused our certificate (status {event['value']}): "
                 "its public part must be in the bus's authorized/ directory; issue one with "
                 "`edgeplane pki issue-curve subscriber NAME`")
    if not warned:
        # ZeroMQ keeps retrying these: say so once.
        status("WARNING the CURVE handshake with the bus failed: "
               "is --server-key-file the bus's curve/bus.cert? (retrying)")
    return True


def decode(frames, event_class, cap):
    """(topic, event) from [topic][ep.Event], or None if malformed."""
    if len(frames) != 2 or len(frames[1]) > cap:
        return None
    event = event_class()
    try:
        event.ParseFromString(frames[1])
    except DecodeError:
        return None
    meta = event.meta
    if not (event.HasField("meta") and meta.HasField("source_id") and meta.HasField("stream")
            and meta.HasField("seq") and meta.HasField("epoch")):
        return None
    return frames[0].decode("utf-8", "replace"), event


def consume(args):
    try:
        event_class = load_event_class(args.descriptor_set)
    except (OSError, DecodeError, KeyError) as e:
        sys.exit(f"edgeplane_consumer: cannot load ep.Event from {args.descriptor_set} ({e}): "
                 "build the project (cmake --build build) or pass --descriptor-set")
    context = zmq.Context()
    sock, monitor = connect(context, args)
    tracker = StreamTracker(args.prefix, int(time.time() * 1000))
    dedupe = Dedupe()
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    poller.register(monitor, zmq.POLLIN)
    ready, warned, delivered = False, False, 0
    try:
        while args.count is None or delivered < args.count:
            # The timeout is for Ctrl-C: a signal that lands just before
            # poll() starts would otherwise wait for the next message.
            sockets = dict(poller.poll(500))
            if monitor in sockets:
                warned = check_handshake(recv_monitor_message(monitor), warned)
            if sock not in sockets:
                continue
            decoded = decode(sock.recv_multipart(), event_class, args.cap)
            if decoded is None:
                continue                # not an ep.Event we can trust: skip it
            topic, event = decoded
            meta = event.meta
            heartbeat = event.WhichOneof("body") == "heartbeat"
            deliver, notes = tracker.observe(meta.source_id, meta.stream, meta.epoch,
                                             meta.epoch_started_ms, meta.seq, heartbeat)
            if heartbeat and not ready:
                ready = True
                status("READY")
            for note in notes:
                status(note)
            if deliver and not heartbeat and not dedupe.fresh(meta.event_id):
                status(f"DUPLICATE-ID {meta.event_id}")
                deliver = False
            if deliver and not heartbeat:
                handle_event(topic, event_dict(topic, event), args)
                delivered += 1
    finally:
        sock.disable_monitor()
        monitor.close(linger=0)
        sock.close(linger=0)
        context.term()


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Print the events on the edgeplane bus.")
    parser.add_argument("--bus", default=os.environ.get("EDGEPLANE_BUS_SUB", "tcp://127.0.0.1:7101"),
                        help="the bus's subscriber endpoint (default: %(default)s)")
    parser.add_argument("--keys", help="the edgeplane keys directory (default: "
                        "$EDGEPLANE_KEYS_DIR or ./edgeplane-data/keys)")
    parser.add_argument("--cert", help="our secret certificate "
                        "(default: KEYS/curve/subscriber.cert_secret)")
    parser.add_argument("--server-key-file", help="the bus's public certificate "
                        "(default: KEYS/curve/bus.cert)")
    parser.add_argument("--descriptor-set", default="build/gen/edgeplane.desc",
                        help="the build's descriptor set (default: %(default)s)")
    parser.add_argument("--prefix", action="append",
                        help="topic prefix to take, repeatable (default: everything)")
    parser.add_argument("--count", type=int, help="exit after this many events")
    parser.add_argument("--json", action="store_true", help="one JSON object per event")
    parser.add_argument("--cap", type=int, default=DEFAULT_CAP, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.prefix = args.prefix or [""]
    return args


def main(argv=None):
    args = parse_args(argv)
    # SIGTERM ends us as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        consume(args)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        # Piped into `head`, say: stop quietly, and keep Python's final
        # flush of stdout from complaining.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
