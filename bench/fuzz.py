"""Fuzz: a million generated and mutated frames into a running Wind node, plain TCP and CURVE.

The target node runs in its own OS process, so a crash shows as that process dying. It serves
``probe``, an actor that checks every message it receives against the documented body types
and its message types' annotations (by its own tables, not the codec's) and counts violations.
This process pushes frames straight at the node's PULL socket, as a hand-driven peer
``fuzz@raw`` (with a trusted CURVE key in the CURVE run, so most frames pass authentication
and the spoofing check and reach the codec). After every batch an in-band ask (FIFO behind the
batch) must be answered within a deadline, and a separate Wind node asks the probe for its
figures. Counted:

- ``frames``: frames sent;
- ``crashes``: the target process died (target 0);
- ``hangs``: the target did not answer a control ask within the deadline (target 0);
- ``delivered_garbage``: messages that reached the probe though they are not documented body
  types or break their type's annotations (target 0);
- ``rss_growth_mb``: the target's resident memory at the end less after the first batch.

Mutations: bit flips, interesting bytes, truncation, splices of valid frames, nesting bombs
(arrays, maps, extension values), huge length headers, random envelopes of every kind with
wrong item types, unknown extension codes, msgpack timestamps, valid envelopes whose message
fields have the wrong types, bodies mutated inside valid envelopes, forged headers. The last
line of output is one JSON object.

    .venv/bin/python bench/fuzz.py [--frames 1000000] [--seed 1] [--batch 2000]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import msgpack  # noqa: E402
import zmq  # noqa: E402

import supervisors  # noqa: E402
from wind_actors.errors import ActorError, WindError  # noqa: E402
from wind_actors.log import configure_logging  # noqa: E402
from wind_actors.runtime import (Codec, Node, RemoteRef, generate_keys, load_keypair,  # noqa: E402
                                 message)
from wind_actors.runtime._security import public_key_of  # noqa: E402
from wind_actors.runtime._wire import WIRE_VERSION, Kind, RefBase  # noqa: E402

TARGET = "fuzz@target"
RAW = "fuzz@raw"
CONTROL = "fuzz@ctl"
DEADLINE_S = 20.0
MAX_DEPTH = 32  # the documented limit, restated: the probe must not trust the codec's constant


# -- the message types the probe knows ----------------------------------------------------------


@message("bench.fuzz.echo", version=1)
@dataclasses.dataclass(frozen=True)
class FuzzEcho:
    text: str


@message("bench.fuzz.typed", version=1)
@dataclasses.dataclass(frozen=True)
class FuzzTyped:
    n: int
    ratio: float
    flag: bool
    tags: tuple[str, ...]
    maybe: str | None
    blob: bytes
    ref: RemoteRef
    inner: FuzzEcho | None
    table: dict[str, int]
    extra: Any


@message("bench.fuzz.stats", version=1)
@dataclasses.dataclass(frozen=True)
class FuzzStats:
    """Asked of the probe: its figures and the node's."""


# -- the probe (target process) -------------------------------------------------------------------


def _plain_ok(value: Any) -> bool:
    """Whether ``value`` is documented plain data (or refs, errors, known messages), at most
    MAX_DEPTH deep; iterative, so a deep value cannot crash the probe itself."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if depth > MAX_DEPTH:
            return False
        if kind in (type(None), bool, int, float, str, bytes) or isinstance(item, RefBase):
            continue
        if kind is tuple:
            stack.extend((v, depth + 1) for v in item)
        elif kind is dict:
            stack.extend((v, depth + 1) for pair in item.items() for v in pair)
        elif kind in _FIELDS:
            if _violation(item) is not None:
                return False
        elif kind is not ActorError:
            return False
    return True


def _is(*kinds: type) -> Any:
    return lambda v: type(v) in kinds


_FIELDS: dict[type, dict[str, Any]] = {
    FuzzEcho: {"text": _is(str)},
    FuzzStats: {},
    FuzzTyped: {
        "n": _is(int, bool), "ratio": _is(float, int, bool), "flag": _is(bool),
        "tags": lambda v: type(v) is tuple and all(type(t) is str for t in v),
        "maybe": _is(str, type(None)), "blob": _is(bytes),
        "ref": lambda v: isinstance(v, RefBase),
        "inner": lambda v: v is None or (type(v) is FuzzEcho and _violation(v) is None),
        "table": lambda v: type(v) is dict and all(type(k) is str and type(x) in (int, bool)
                                                   for k, x in v.items()),
        "extra": _plain_ok,
    },
}


def _violation(msg: Any) -> str | None:
    """None when ``msg`` may legitimately reach an actor, else what is wrong with it."""
    fields = _FIELDS.get(type(msg))
    if fields is None:
        return None if _plain_ok(msg) else f"undocumented {type(msg).__name__}"
    for name, ok in fields.items():
        if not ok(getattr(msg, name)):
            return f"{type(msg).__name__}.{name} holds a {type(getattr(msg, name)).__name__}"
    return None


class Probe(supervisors.WatchedActor):
    """Checks every message it receives; answers FuzzStats with its figures and the node's.

    It traps exits: the fuzzer's random LINK envelopes are honoured (any trusted peer may link
    an open actor, as in Erlang), and when ``fuzz@raw``, which never answers heartbeats, is
    declared down the link fires ``noconnection``. Untrapped, that correctly stops the probe,
    and every later control ask met "no actor 'probe'", which is the harness, not a hang.
    """

    trap_exits = True

    def __init__(self, node: Node) -> None:
        super().__init__()
        self.node = node
        self.received = 0
        self.plain = 0
        self.violations = 0
        self.exits = 0
        self.examples: list[str] = []

    def on_receive(self, msg: Any) -> Any:
        if type(msg) is FuzzStats:
            return self._stats()
        if type(msg) is supervisors.Exit:  # a fuzzed link that fired (not from the wire)
            self.exits += 1
            return None
        self.received += 1
        if type(msg) not in _FIELDS:
            self.plain += 1
        why = _violation(msg)
        if why is not None:
            self.violations += 1
            if len(self.examples) < 5:
                self.examples.append(why)
        return None

    def _stats(self) -> dict[str, Any]:
        for _ in range(5):  # the I/O thread may add a counter while it is copied
            try:
                stats = self.node.stats()
                break
            except RuntimeError:
                continue
        else:
            stats = {}
        return {"received": self.received, "plain": self.plain, "violations": self.violations,
                "link_exits": self.exits,
                "examples": list(self.examples), "counters": stats.get("counters", {}),
                "monitors": stats.get("monitors", {}), "links": stats.get("links", {})}


def serve(transport: str, keys: str) -> None:
    """The target process: a node serving the probe until stdin closes."""
    configure_logging()  # to stderr: stdout carries the address line
    settings: dict[str, Any] = {"name": TARGET, "bind": "tcp://127.0.0.1:0"}
    settings.update(insecure=True) if transport == "plain" else settings.update(keys_dir=keys)
    node = Node.start(**settings)
    node.register("probe", Probe.start(node))
    print(json.dumps({"address": node.address, "pid": os.getpid()}), flush=True)
    sys.stdin.read()
    os._exit(0)


# -- frame generation ---------------------------------------------------------------------------


def nested(levels: int, head: bytes, leaf: bytes = b"\xc0") -> bytes:
    return head * levels + leaf


def nested_ext(levels: int, code: int = 1) -> bytes:
    data = b"\xc0"
    for _ in range(levels):
        data = ext(code, data)
    return data


def ext(code: int, payload: bytes) -> bytes:
    """An extension value by hand (msgpack.ExtType refuses the negative codes a peer may send)."""
    size = len(payload)
    if size <= 0xff:
        return bytes([0xc7, size, code & 0xff]) + payload
    if size <= 0xffff:
        return b"\xc8" + size.to_bytes(2, "big") + bytes([code & 0xff]) + payload
    return b"\xc9" + size.to_bytes(4, "big") + bytes([code & 0xff]) + payload


_CODEC = Codec()


def message_body(tag: str, values: list[Any]) -> bytes:
    """A message body with any values at all, packed as the codec would (refs as exts)."""
    return ext(1, _CODEC._pack([tag, 1, values]))


INTERESTING = bytes([0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3,
                     0xc4, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcf, 0xd3, 0xd4, 0xd6, 0xd7, 0xd8,
                     0xdb, 0xdc, 0xdd, 0xdf, 0xe0, 0xff])
HUGE_HEADS = [b"\xdd\x80\x00\x00\x00", b"\xdd\xff\xff\xff\xff", b"\xdf\x80\x00\x00\x00",
              b"\xdc\xff\xff", b"\xde\xff\xff", b"\xdb\x80\x00\x00\x00", b"\xc6\xff\xff\xff\xff",
              b"\xc9\x80\x00\x00\x00\x01", b"\xda\xff\xff", b"\xc5\xff\xff"]
TIMESTAMPS = [msgpack.packb(msgpack.Timestamp(1, 0)), msgpack.packb(msgpack.Timestamp(1, 9)),
              msgpack.packb(msgpack.Timestamp(-5, 9)), b"\xc7\x04\xff\x00\x00\x00\x01",
              b"\xc8\x00\x08\xff" + bytes(8), b"\xd4\xff\x00", b"\xc7\x03\xff\x00\x00\x01"]


class Factory:
    """Makes fuzz frames from valid ones (pure but for its seeded random generator).

    Args:
        rng: the random source.
        src: the sender's name in most frames (the CURVE key's, so they get past the spoof check).
        address: where the target answers (the sender's PULL).
        others: other sender names to claim now and then.
    """

    def __init__(self, rng: random.Random, src: str, address: str, others: list[str]) -> None:
        self.rng, self.src, self.address, self.others = rng, src, address, others
        self.codec = _CODEC
        self.bodies = self._valid_bodies()
        self.hostile = self._hostile_bodies()
        self.frames = [self._valid_frame() for _ in range(400)]
        self.mutators = [(5, self.valid), (22, self.body_mutated), (10, self.hostile_body),
                         (10, self.random_envelopes), (8, self.wrong_fields),
                         (12, self.bit_flips), (6, self.truncated), (6, self.spliced),
                         (5, self.nesting_bomb), (5, self.huge_header), (3, self.random_bytes),
                         (5, self.forged_header), (3, self.interesting_bytes)]
        self._table = [m for weight, m in self.mutators for _ in range(weight)]

    def next(self) -> bytes:
        """One fuzz frame."""
        return self.rng.choice(self._table)()

    # -- valid material ---------------------------------------------------------------------

    def _valid_bodies(self) -> list[bytes]:
        r, enc = self.rng, self.codec.encode
        ref = RemoteRef("probe", TARGET)
        values: list[Any] = [
            FuzzEcho("hello"), FuzzEcho(""), None, True, 7, -1, 2**63, 1.5, "text",
            b"\x00\xff" * 8, (1, "a", None), {"k": (1, 2), 3: b"x"}, ref, ValueError("boom"),
            FuzzTyped(1, 2.5, True, ("a", "b"), None, b"blob", ref, FuzzEcho("in"), {"a": 1},
                      {"any": [1, (2, 3)]}),
            FuzzTyped(-5, 3, False, (), "maybe", b"", ref, None, {}, None),
        ]
        values += [FuzzEcho("x" * r.randrange(1, 300)) for _ in range(5)]
        return [enc(v) for v in values]

    def _envelope(self, kind: int) -> list[Any]:
        r, body = self.rng, self.rng.choice(self.bodies)
        target = "probe" if r.random() < 0.85 else r.choice(["ghost", "", "x" * 200, "probe "])
        corr = r.randrange(1 << 31)
        layouts = {
            Kind.TELL: [target, body], Kind.ASK: [target, corr, body], Kind.REPLY: [corr, body],
            Kind.ERROR: [corr, r.choice(["actor", "malformed", "odd"]), body],
            Kind.PING: [corr, time.time()], Kind.PONG: [corr, time.time()],
            Kind.MONITOR: [corr, target], Kind.DEMONITOR: [corr], Kind.DOWN: [corr, body],
            Kind.LINK: [target, "someone"], Kind.UNLINK: [target, "someone"],
        }
        return [int(kind)] + layouts[Kind(kind)]

    def _valid_frame(self, envelopes: list[list[Any]] | None = None) -> bytes:
        if envelopes is None:
            # mostly tells and asks; MONITOR/LINK rarely (each one leaves state behind)
            kinds = [Kind.TELL] * 8 + [Kind.ASK] * 3 + [Kind.REPLY, Kind.ERROR, Kind.PING,
                                                         Kind.PONG, Kind.DEMONITOR, Kind.DOWN,
                                                         Kind.UNLINK]
            if self.rng.random() < 0.05:
                kinds += [Kind.MONITOR, Kind.LINK]
            envelopes = [self._envelope(self.rng.choice(kinds))
                         for _ in range(self.rng.randrange(1, 6))]
        return self._frame(envelopes)

    def _frame(self, envelopes: list[Any], src: str | None = None) -> bytes:
        if src is None:
            src = self.src if self.rng.random() < 0.97 else self.rng.choice(self.others)
        return msgpack.packb([WIRE_VERSION, src, self.address, envelopes], use_bin_type=True)

    # -- mutators -----------------------------------------------------------------------------

    def valid(self) -> bytes:
        return self.rng.choice(self.frames)

    def body_mutated(self) -> bytes:
        body = self._mutate(bytearray(self.rng.choice(self.bodies)))
        return self._frame([self._carrying(body)])

    def _hostile_bodies(self) -> list[bytes]:
        """Bodies built to break a limit or a rule (made once: the deep ones are costly)."""
        bodies = [nested_ext(n) for n in (9, 50, 200, 2000)]
        bodies += [nested(n, b"\x91") for n in (33, 100, 1000, 5000)]
        bodies += [nested(n, b"\x81\xa1k") for n in (33, 1000)]
        bodies += HUGE_HEADS + TIMESTAMPS + [b"\x92\x01" + t for t in TIMESTAMPS]
        bodies += [ext(code, b) for code in (0, 4, 42, 127, -2, -128) for b in self.bodies[:3]]
        bodies += [message_body("bench.fuzz.typed", [1, 2.5, True, (), None, b"",
                                                     RemoteRef("p", "q@r"), None, {}, nested(40, b"\x91")]),
                   ext(1, msgpack.packb(["bench.fuzz.echo", 1, []])[:-1] + b"\x91" + nested_ext(20)),
                   message_body("no.such.tag", [1]),
                   ext(1, msgpack.packb(["bench.fuzz.echo", 2, ["v2"]]))]
        return bodies

    def hostile_body(self) -> bytes:
        return self._frame([self._carrying(self.rng.choice(self.hostile))])

    def wrong_fields(self) -> bytes:
        r = self.rng
        wrong = [5, 1.5, "s", b"b", None, True, (1, 2), {"k": "v"}, RemoteRef("a", "b@c"),
                 FuzzEcho("nested"), ValueError("e"), ("a", 1), {1: 2}, ()]
        if r.random() < 0.3:
            values = [r.choice(wrong)]
            tag = "bench.fuzz.echo"
        else:
            values = [1, 2.5, True, ("a",), None, b"", RemoteRef("p", "q@r"), None, {"a": 1}, 0]
            for i in r.sample(range(len(values)), r.randrange(1, 4)):
                values[i] = r.choice(wrong)
            tag = "bench.fuzz.typed"
        body = message_body(tag, values)
        if r.random() < 0.2:
            body = body.replace(b"\xc0", r.choice(TIMESTAMPS), 1)
        return self._frame([self._carrying(body)])

    def random_envelopes(self) -> bytes:
        r = self.rng
        pool = [0, -1, 2**64 - 1, -2**63, 1.0, float("inf"), float("nan"), "", "probe", "x" * 70,
                b"", b"\xc0", None, True, [], [1, [2]], {}, {"a": 1}, r.choice(self.bodies)]
        envelopes = []
        for _ in range(r.randrange(1, 6)):
            kind = r.choice([*range(0, 13), 99, -1, 2**40])
            envelopes.append([kind] + [r.choice(pool) for _ in range(r.randrange(0, 6))])
        if r.random() < 0.1:
            envelopes.append(r.choice(pool))  # not even a list
        return self._frame(envelopes)

    def bit_flips(self) -> bytes:
        frame = bytearray(self.rng.choice(self.frames))
        for _ in range(self.rng.randrange(1, 9)):
            frame[self.rng.randrange(len(frame))] ^= 1 << self.rng.randrange(8)
        return bytes(frame)

    def interesting_bytes(self) -> bytes:
        frame = bytearray(self.rng.choice(self.frames))
        for _ in range(self.rng.randrange(1, 4)):
            frame[self.rng.randrange(len(frame))] = self.rng.choice(INTERESTING)
        return bytes(frame)

    def truncated(self) -> bytes:
        frame = self.rng.choice(self.frames)
        return frame[:self.rng.randrange(len(frame))]

    def spliced(self) -> bytes:
        a, b = self.rng.choice(self.frames), self.rng.choice(self.frames)
        return a[:self.rng.randrange(len(a))] + b[self.rng.randrange(len(b)):]

    def nesting_bomb(self) -> bytes:
        r = self.rng
        bomb = nested(r.choice([33, 200, 1000, 1025, 5000, 100_000]),
                      r.choice([b"\x91", b"\x81\xa1k", b"\xdc\x00\x01", b"\xd4\x01"]))
        head = self._frame([])[:-1]
        where = r.randrange(3)
        if where == 0:
            return head + b"\x91" + bomb  # an envelope
        if where == 1:
            return b"\x94" + bomb + self._frame([])[1:]  # the version
        return head + b"\x91\x93\x01\xa5probe" + bomb  # a body's place

    def huge_header(self) -> bytes:
        frame = self.rng.choice(self.frames)
        i = self.rng.randrange(len(frame))
        return frame[:i] + self.rng.choice(HUGE_HEADS) + frame[i:]

    def random_bytes(self) -> bytes:
        return self.rng.randbytes(self.rng.randrange(1, 400))

    def forged_header(self) -> bytes:
        r = self.rng
        env = [self._envelope(Kind.TELL)]
        headers = [[2, self.src, self.address, env], [1, 5, self.address, env],
                   [1, self.src, None, env], [1, self.src, self.address, {"a": env}],
                   [1, self.src, self.address, env, "extra"], [1, self.src], [],
                   [True, self.src, self.address, env], [1.0, self.src, self.address, env],
                   [1, self.src, r.choice(["", "tcp://", "not an endpoint", "x" * 300]), env]]
        return msgpack.packb(r.choice(headers), use_bin_type=True)

    # -- helpers ------------------------------------------------------------------------------

    def _carrying(self, body: bytes) -> list[Any]:
        """A valid TELL or ASK to the probe carrying ``body``."""
        if self.rng.random() < 0.7:
            return [int(Kind.TELL), "probe", body]
        return [int(Kind.ASK), "probe", self.rng.randrange(1 << 31), body]

    def _mutate(self, data: bytearray) -> bytes:
        r = self.rng
        op = r.randrange(5)
        if op == 0 and data:
            for _ in range(r.randrange(1, 5)):
                data[r.randrange(len(data))] ^= 1 << r.randrange(8)
        elif op == 1 and data:
            data[r.randrange(len(data))] = r.choice(INTERESTING)
        elif op == 2:
            del data[r.randrange(len(data) + 1):]
        elif op == 3:
            other = r.choice(self.bodies)
            data = bytearray(bytes(data[:r.randrange(len(data) + 1)]) + other[r.randrange(len(other)):])
        else:
            i = r.randrange(len(data) + 1)
            data[i:i] = r.choice(HUGE_HEADS + TIMESTAMPS)
        return bytes(data)


# -- the target, from this side ---------------------------------------------------------------------


class Target:
    """The target node's process, a raw PUSH into it, a PULL for its answers, and a control node."""

    def __init__(self, transport: str, keys: str, log: Path) -> None:
        self.transport, self.keys, self.log = transport, keys, log
        self.ctx = zmq.Context()
        self.inbox = self.ctx.socket(zmq.PULL)
        if transport == "curve":
            kp = load_keypair(Path(keys) / f"{RAW}.key_secret")
            self.inbox.curve_server = True
            self.inbox.curve_publickey, self.inbox.curve_secretkey = kp.public, kp.secret
        self.inbox.bind("tcp://127.0.0.1:0")
        self.inbox_address = self.inbox.getsockopt_string(zmq.LAST_ENDPOINT)
        self._answers: dict[int, list[Any]] = {}
        self._answered = threading.Condition()
        self._draining = True
        self._drain = threading.Thread(target=self._drain_inbox, daemon=True)
        self._drain.start()
        settings: dict[str, Any] = {"name": CONTROL}
        settings.update(insecure=True) if transport == "plain" else settings.update(keys_dir=keys)
        self.control = Node.start(**settings)
        self.proc: subprocess.Popen[str] | None = None
        self.push: zmq.Socket | None = None
        self.start()

    def start(self) -> None:
        """(Re)start the target process and connect to it."""
        args = [sys.executable, __file__, "--serve", self.transport, self.keys]
        env = dict(os.environ, WIND_LOG_LEVEL="WARNING")
        with open(self.log, "a") as err:
            self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=err, text=True, env=env)
        info = json.loads(self.proc.stdout.readline())  # type: ignore[union-attr]
        self.address = info["address"]
        if self.push is not None:
            self.push.close(0)
        self.push = self.ctx.socket(zmq.PUSH)
        self.push.setsockopt(zmq.LINGER, 0)
        if self.transport == "curve":
            kp = load_keypair(Path(self.keys) / f"{RAW}.key_secret")
            self.push.curve_publickey, self.push.curve_secretkey = kp.public, kp.secret
            self.push.curve_serverkey = public_key_of(TARGET, self.keys)
        self.push.connect(self.address)
        self.control.connect(TARGET, self.address, timeout=DEADLINE_S)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_mb(self) -> float:
        try:
            pages = int(Path(f"/proc/{self.proc.pid}/statm").read_text().split()[1])  # type: ignore[union-attr]
        except (OSError, ValueError):
            return 0.0
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20

    def send(self, frame: bytes) -> bool:
        """Push a frame; False when the target died or took nothing for DEADLINE_S (a hang)."""
        push = self.push
        try:
            push.send(frame, zmq.NOBLOCK)  # type: ignore[union-attr]
            return True
        except zmq.Again:
            pass
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline and self.alive():
            if push.poll(200, zmq.POLLOUT):  # type: ignore[union-attr]
                push.send(frame, zmq.NOBLOCK)  # type: ignore[union-attr]
                return True
        return False

    def synced(self, corr: int, factory: Factory) -> bool:
        """An in-band ask behind everything sent so far; True when answered in time."""
        frame = factory._frame([[int(Kind.ASK), "probe", corr, Codec().encode(FuzzEcho("sync"))]],
                               src=RAW)
        if not self.send(frame):
            return False
        deadline = time.monotonic() + DEADLINE_S
        with self._answered:
            while corr not in self._answers:
                left = deadline - time.monotonic()
                if left <= 0 or not self.alive():
                    return False
                self._answered.wait(min(left, 0.5))
            return self._answers.pop(corr)[0] == Kind.REPLY

    def stats(self) -> dict[str, Any] | None:
        """The probe's figures through the control node, or None when it does not answer."""
        try:
            return self.control.ref(f"probe@{TARGET}").ask(FuzzStats(), timeout=DEADLINE_S)
        except WindError:
            return None

    def _drain_inbox(self) -> None:
        """Read (and mostly drop) whatever the target sends back; keep answers to sync asks."""
        poller = zmq.Poller()
        poller.register(self.inbox, zmq.POLLIN)
        while self._draining:
            if not poller.poll(200):
                continue
            try:
                frame = msgpack.unpackb(self.inbox.recv(zmq.NOBLOCK))
            except (zmq.Again, ValueError):
                continue
            except zmq.ZMQError:
                return
            for env in frame[3]:
                if (env[0] in (Kind.REPLY, Kind.ERROR) and type(env[1]) is int
                        and env[1] >= 1 << 40):
                    with self._answered:
                        self._answers[env[1]] = env
                        self._answered.notify_all()

    def close(self) -> None:
        self.control.stop()
        if self.proc is not None and self.alive():
            self.proc.stdin.close()  # type: ignore[union-attr]
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._draining = False
        self._drain.join(timeout=2)
        self.ctx.destroy(linger=0)


# -- a run ---------------------------------------------------------------------------------------


def run(transport: str, keys: str, frames: int, batch: int, seed: int) -> dict[str, Any]:
    """Fuzz one target over ``transport``; returns its figures."""
    log = Path(keys) / f"target-{transport}.log"
    target = Target(transport, keys, log)
    others = ["fuzz@other", "", "x" * 300, "ü@ñ", TARGET, "fuzz@rand"]
    factory = Factory(random.Random(seed), RAW, target.inbox_address, others)
    result = {"frames": 0, "crashes": 0, "hangs": 0, "delivered_garbage": 0}
    started, corr, rss_start = time.monotonic(), 1 << 40, None
    try:
        while result["frames"] < frames:
            n = min(batch, frames - result["frames"])
            ok = all(target.send(factory.next()) for _ in range(n))
            result["frames"] += n
            corr += 1
            if not (ok and target.synced(corr, factory)):
                _recover(target, result)
            if rss_start is None:
                rss_start = target.rss_mb()
        stats = target.stats()
        if stats is None:
            _recover(target, result)
            stats = target.stats() or {}
        result.update(_summary(stats, target, rss_start or 0.0, started))
    finally:
        target.close()
    result["io_thread_crashed"] = "I/O thread crashed" in log.read_text(errors="replace")
    return result


def _recover(target: Target, result: dict[str, Any]) -> None:
    """Count a crash (the process died) or a hang (alive, silent), then restart the target."""
    if target.alive():
        result["hangs"] += 1
        target.proc.kill()  # type: ignore[union-attr]
        target.proc.wait()  # type: ignore[union-attr]
    else:
        result["crashes"] += 1
    target.start()


def _summary(stats: dict[str, Any], target: Target, rss_start: float,
             started: float) -> dict[str, Any]:
    counters = stats.get("counters", {})
    return {"delivered_garbage": stats.get("violations", 0),
            "garbage_examples": stats.get("examples", []),
            "delivered": stats.get("received", 0), "delivered_plain": stats.get("plain", 0),
            "dropped": counters.get("dropped", 0),
            "drops": {k: v for k, v in sorted(counters.items())
                      if k not in ("dropped", "delivered")},
            "monitors": stats.get("monitors", {}), "links": stats.get("links", {}),
            "link_exits_trapped": stats.get("link_exits", 0),
            "rss_start_mb": round(rss_start, 1), "rss_end_mb": round(target.rss_mb(), 1),
            "rss_growth_mb": round(target.rss_mb() - rss_start, 1),
            "elapsed_s": round(time.monotonic() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=1_000_000, help="in all, over both runs")
    parser.add_argument("--batch", type=int, default=2000, help="frames between control asks")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("WIND_LOG_LEVEL", "ERROR")
    configure_logging()
    started = time.monotonic()
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as keys:
        for name in (TARGET, RAW, CONTROL):
            generate_keys(name, keys)
        for i, transport in enumerate(("plain", "curve")):
            share = args.frames // 2 + (args.frames % 2 if i == 0 else 0)
            runs[transport] = run(transport, keys, share, args.batch, args.seed + i)
            _print_run(transport, runs[transport])
    total = {key: sum(r[key] for r in runs.values())
             for key in ("frames", "crashes", "hangs", "delivered_garbage")}
    total["rss_growth_mb"] = max(r["rss_growth_mb"] for r in runs.values())
    total["elapsed_s"] = round(time.monotonic() - started, 1)
    total["transports"] = runs
    total["targets"] = {"crashes": 0, "hangs": 0, "delivered_garbage": 0}
    print(f"total: {total['frames']} frames in {total['elapsed_s']} s; crashes {total['crashes']}, "
          f"hangs {total['hangs']}, delivered garbage {total['delivered_garbage']}, "
          f"rss growth {total['rss_growth_mb']} MB (largest of the runs)")
    print(json.dumps(total, sort_keys=True))


def _print_run(transport: str, r: dict[str, Any]) -> None:
    print(f"{transport}: {r['frames']} frames in {r['elapsed_s']} s "
          f"({r['frames'] / max(r['elapsed_s'], 1e-9):.0f}/s)")
    print(f"  crashes {r['crashes']}  hangs {r['hangs']}  delivered garbage "
          f"{r['delivered_garbage']} {r['garbage_examples'] or ''}")
    print(f"  delivered to the probe {r['delivered']} ({r['delivered_plain']} plain data), "
          f"dropped {r['dropped']}: {r['drops']}")
    print(f"  rss {r['rss_start_mb']} -> {r['rss_end_mb']} MB; monitors {r['monitors']}, "
          f"links {r['links']}; I/O thread crashed: {r['io_thread_crashed']}")


if __name__ == "__main__":
    if len(sys.argv) > 3 and sys.argv[1] == "--serve":
        serve(sys.argv[2], sys.argv[3])
    else:
        main()
