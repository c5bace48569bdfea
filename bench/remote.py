"""Benchmark: Wind remote tell/ask against raw pyzmq + msgpack, and node-down detection.

Two OS processes per figure: this one (the sender) and a child serving either a Wind node or
raw ZeroMQ sockets (both children stay up while Wind and raw alternate in rounds). Every
figure is measured in this run, with CURVE on for both Wind and the raw baseline, then again
with CURVE off. Same payload both sides: an int and 100 bytes. The last line of output is one
JSON object. Run it on an otherwise idle machine: the load average is printed.

``raw_2hop_rtt_us_median`` is informational: raw pyzmq with the two thread hand-offs that an
actor runtime with one I/O thread per node cannot avoid (the request handed from the I/O
thread to the actor's thread, the reply from the I/O thread to the caller), the floor under
``ask_rtt_us_median`` that no amount of Python trimming in Wind removes.

    .venv/bin/python bench/remote.py [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import msgpack  # noqa: E402
import zmq  # noqa: E402

import supervisors  # noqa: E402
from wind_actors.log import configure_logging  # noqa: E402
from wind_actors.runtime import Node, generate_keys, load_keypair, message  # noqa: E402
from wind_actors.runtime._security import public_key_of  # noqa: E402

PAYLOAD = b"x" * 100


@message("bench.remote.payload", version=1)
@dataclasses.dataclass(frozen=True)
class Payload:
    seq: int
    data: bytes


@message("bench.remote.count", version=1)
@dataclasses.dataclass(frozen=True)
class Count:
    pass


class Sink(supervisors.WatchedActor):
    """Counts Payloads; answers Count with the count, and echoes anything else."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def on_receive(self, msg: Any) -> Any:
        if type(msg) is Payload:
            self.count += 1
            return msg if msg.seq < 0 else None
        if type(msg) is Count:
            return self.count
        return msg


# -- child processes ------------------------------------------------------------------------


def serve_wind(keys: str, insecure: bool) -> None:
    configure_logging()  # to stderr: stdout carries the address line
    settings: dict[str, Any] = {"name": "b@bench", "bind": "tcp://127.0.0.1:0"}
    settings.update(insecure=True) if insecure else settings.update(keys_dir=keys)
    node = Node.start(**settings)
    node.register("sink", Sink.start())
    print(json.dumps({"address": node.address}), flush=True)
    sys.stdin.read()
    os._exit(0)


def _curve_server(sock: zmq.Socket, keys: str, insecure: bool) -> None:
    if not insecure:
        kp = load_keypair(Path(keys) / "b@bench.key_secret")
        sock.curve_server = True
        sock.curve_publickey, sock.curve_secretkey = kp.public, kp.secret


def _curve_client(sock: zmq.Socket, keys: str, insecure: bool) -> None:
    if not insecure:
        kp = load_keypair(Path(keys) / "a@bench.key_secret")
        sock.curve_publickey, sock.curve_secretkey = kp.public, kp.secret
        sock.curve_serverkey = public_key_of("b@bench", keys)


def serve_raw(keys: str, insecure: bool) -> None:
    """PULL (count, unpack each) + ROUTER (echo) with the same CURVE keys (no ZAP: the
    baseline pays encryption, not authentication bookkeeping)."""
    ctx = zmq.Context()
    pull, router, done = ctx.socket(zmq.PULL), ctx.socket(zmq.ROUTER), ctx.socket(zmq.PUSH)
    for sock in (pull, router):
        _curve_server(sock, keys, insecure)
        sock.bind("tcp://127.0.0.1:0")
    print(json.dumps({"pull": pull.getsockopt_string(zmq.LAST_ENDPOINT),
                      "router": router.getsockopt_string(zmq.LAST_ENDPOINT)}), flush=True)
    reply_to = json.loads(sys.stdin.readline())["done"]
    done.connect(reply_to)  # control channel, not measured: plain
    poller = zmq.Poller()
    poller.register(pull, zmq.POLLIN)
    poller.register(router, zmq.POLLIN)
    count = 0
    while True:
        for sock, _ in poller.poll():
            if sock is pull:
                seq, _data = msgpack.unpackb(pull.recv())
                count += 1
                if seq < 0:
                    done.send(msgpack.packb(count))
                    count = 0
            else:
                ident, data = router.recv_multipart()
                router.send_multipart([ident, msgpack.packb(msgpack.unpackb(data))])


def serve_hops(keys: str, insecure: bool) -> None:
    """The floor of Wind's design in raw pyzmq: an I/O thread reads requests from a PULL and
    hands each to a worker thread (a SimpleQueue), which answers on its own PUSH; no wire
    envelope, no registry, no codec beyond msgpack."""
    import queue as _queue
    import threading

    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    _curve_server(pull, keys, insecure)
    pull.bind("tcp://127.0.0.1:0")
    print(json.dumps({"pull": pull.getsockopt_string(zmq.LAST_ENDPOINT)}), flush=True)
    reply_to = json.loads(sys.stdin.readline())["reply"]
    push = ctx.socket(zmq.PUSH)
    if not insecure:
        kp = load_keypair(Path(keys) / "b@bench.key_secret")
        push.curve_publickey, push.curve_secretkey = kp.public, kp.secret
        push.curve_serverkey = public_key_of("a@bench", keys)
    push.connect(reply_to)
    inbox: _queue.SimpleQueue[bytes] = _queue.SimpleQueue()

    def worker() -> None:
        while True:
            push.send(msgpack.packb(msgpack.unpackb(inbox.get())))

    threading.Thread(target=worker, daemon=True).start()
    while True:
        inbox.put(pull.recv())


def _spawn(mode: str, keys: str, insecure: bool) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    args = [sys.executable, __file__, mode, keys] + (["--insecure"] if insecure else [])
    env = dict(os.environ, WIND_LOG_LEVEL="WARNING")
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=env, stderr=subprocess.DEVNULL)
    return proc, json.loads(proc.stdout.readline())  # type: ignore[union-attr]


def _end(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait()
    for pipe in (proc.stdin, proc.stdout):
        pipe.close()  # type: ignore[union-attr]


# -- measurements -----------------------------------------------------------------------------


class WindSide:
    """The sender's Wind node and a ref to the sink of a Wind node in a child process."""

    def __init__(self, keys: str, insecure: bool) -> None:
        self.proc, info = _spawn("--serve-wind", keys, insecure)
        settings: dict[str, Any] = {"name": "a@bench"}
        settings.update(insecure=True) if insecure else settings.update(keys_dir=keys)
        self.node = Node.start(**settings)
        self.node.connect("b@bench", info["address"])
        self.sink = self.node.ref("sink@b@bench")
        for i in range(300):  # warm up: connections, code paths, allocator
            self.sink.ask(Payload(-1 - i, PAYLOAD))

    def tell_rate(self, n: int) -> float:
        sink = self.sink
        before = sink.ask(Count())
        started = time.perf_counter()
        for i in range(n):
            sink.tell(Payload(i, PAYLOAD))
        assert sink.ask(Count(), timeout=60) == before + n
        return n / (time.perf_counter() - started)

    def rtts(self, n: int) -> list[float]:
        sink, out = self.sink, []
        for i in range(n):
            started = time.perf_counter()
            sink.ask(Payload(-1 - i, PAYLOAD))
            out.append((time.perf_counter() - started) * 1e6)
        return out

    def close(self) -> None:
        self.node.stop()
        _end(self.proc)


class RawSide:
    """Raw pyzmq + msgpack: PUSH into a PULL, DEALER round trips to a ROUTER (child process)."""

    def __init__(self, keys: str, insecure: bool) -> None:
        self.proc, info = _spawn("--serve-raw", keys, insecure)
        self.ctx = zmq.Context()
        self.push, self.dealer = self.ctx.socket(zmq.PUSH), self.ctx.socket(zmq.DEALER)
        self.done = self.ctx.socket(zmq.PULL)
        self.done.bind("tcp://127.0.0.1:0")
        self.proc.stdin.write(json.dumps({"done": self.done.getsockopt_string(zmq.LAST_ENDPOINT)}) + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        for sock, endpoint in ((self.push, info["pull"]), (self.dealer, info["router"])):
            _curve_client(sock, keys, insecure)
            sock.setsockopt(zmq.SNDHWM, 0)
            sock.connect(endpoint)
        self.push.send(msgpack.packb([-1, PAYLOAD]))
        self.done.recv()
        self.rtts(300)  # warm up, as the Wind side

    def tell_rate(self, n: int) -> float:
        push = self.push
        started = time.perf_counter()
        for i in range(n):
            push.send(msgpack.packb([i, PAYLOAD]))
        push.send(msgpack.packb([-1, PAYLOAD]))
        assert msgpack.unpackb(self.done.recv()) == n + 1
        return (n + 1) / (time.perf_counter() - started)

    def rtts(self, n: int) -> list[float]:
        dealer, out = self.dealer, []
        for i in range(n):
            started = time.perf_counter()
            dealer.send(msgpack.packb([i, PAYLOAD]))
            msgpack.unpackb(dealer.recv())
            out.append((time.perf_counter() - started) * 1e6)
        return out

    def close(self) -> None:
        self.ctx.destroy(linger=0)
        _end(self.proc)


class HopsSide:
    """Client of serve_hops: the caller sends on a PUSH; an I/O thread reads replies from a
    PULL and wakes the caller through a lock, as Wind's I/O thread completes a reply future."""

    def __init__(self, keys: str, insecure: bool) -> None:
        import threading

        self.proc, info = _spawn("--serve-hops", keys, insecure)
        self.ctx = zmq.Context()
        self.push, self.pull = self.ctx.socket(zmq.PUSH), self.ctx.socket(zmq.PULL)
        if not insecure:
            kp = load_keypair(Path(keys) / "a@bench.key_secret")
            self.pull.curve_server = True
            self.pull.curve_publickey, self.pull.curve_secretkey = kp.public, kp.secret
        self.pull.bind("tcp://127.0.0.1:0")
        self.proc.stdin.write(json.dumps({"reply": self.pull.getsockopt_string(zmq.LAST_ENDPOINT)}) + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        _curve_client(self.push, keys, insecure)
        self.push.connect(info["pull"])
        self._slot: list[bytes] = []
        self._done = threading.Lock()
        self._done.acquire()
        threading.Thread(target=self._io, daemon=True).start()
        self.rtts(300)  # warm up, as the other sides

    def _io(self) -> None:
        try:
            while True:
                self._slot.append(self.pull.recv())
                self._done.release()
        except zmq.ContextTerminated:
            self.pull.close(0)  # closed by the thread using it: ZeroMQ sockets are not shared

    def rtts(self, n: int) -> list[float]:
        push, done, slot, out = self.push, self._done, self._slot, []
        for i in range(n):
            started = time.perf_counter()
            push.send(msgpack.packb([i, PAYLOAD]))
            done.acquire()
            msgpack.unpackb(slot.pop())
            out.append((time.perf_counter() - started) * 1e6)
        return out

    def close(self) -> None:
        self.push.close(0)
        self.ctx.term()  # wakes _io's recv with ContextTerminated; returns once it closed pull
        _end(self.proc)


def throughput_and_rtt(keys: str, insecure: bool, n_tell: int, n_ask: int,
                       rounds: int) -> dict[str, Any]:
    """Wind and raw measured in interleaved rounds (both child processes up throughout), so
    a load change on the machine hits both alike; figures are medians over rounds/samples."""
    wind, raw, hops = WindSide(keys, insecure), RawSide(keys, insecure), HopsSide(keys, insecure)
    tell_w: list[float] = []
    tell_r: list[float] = []
    rtt_w: list[float] = []
    rtt_r: list[float] = []
    rtt_h: list[float] = []
    try:
        for r in range(rounds):
            sides = ((wind, tell_w, rtt_w), (raw, tell_r, rtt_r))
            for side, tells, rtts in (sides if r % 2 == 0 else sides[::-1]):
                rtts.extend(side.rtts(n_ask // rounds))
                tells.append(side.tell_rate(n_tell // rounds))
            rtt_h.extend(hops.rtts(n_ask // rounds))
    finally:
        wind.close()
        raw.close()
        hops.close()
    return {"tell_msgs_per_s": statistics.median(tell_w),
            "raw_push_pull_msgs_per_s": statistics.median(tell_r),
            "tell_ratio_per_round": [round(w / r, 3) for w, r in zip(tell_w, tell_r)],
            "ask_rtt_us_median": statistics.median(rtt_w),
            "raw_rtt_us_median": statistics.median(rtt_r),
            "raw_2hop_rtt_us_median": statistics.median(rtt_h)}


def nodedown_ms(keys: str, insecure: bool, rounds: int) -> list[float]:
    settings: dict[str, Any] = {"name": "a@bench"}
    settings.update(insecure=True) if insecure else settings.update(keys_dir=keys)
    node = Node.start(**settings)
    samples = []
    try:
        for _ in range(rounds):
            proc, info = _spawn("--serve-wind", keys, insecure)
            node.connect("b@bench", info["address"])
            downs: queue.Queue[Any] = queue.Queue()
            node.monitor(node.ref("sink@b@bench"), downs.put)
            node.ref("sink@b@bench").ask(Count())
            killed = time.perf_counter()
            proc.kill()
            down = downs.get(timeout=10)
            samples.append((time.perf_counter() - killed) * 1000)
            assert down.reason == supervisors.NOCONNECTION
            proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                pipe.close()  # type: ignore[union-attr]
    finally:
        node.stop()
    return samples


def partition_ms(keys: str, insecure: bool, rounds: int) -> list[float]:
    """Heartbeats alone (no TCP close): partition a live peer and time the DOWN."""
    settings: dict[str, Any] = {"name": "a@bench"}
    settings.update(insecure=True) if insecure else settings.update(keys_dir=keys)
    node = Node.start(**settings)
    proc, info = _spawn("--serve-wind", keys, insecure)
    samples = []
    try:
        node.connect("b@bench", info["address"])
        for _ in range(rounds):
            node.connect("b@bench", timeout=10)
            downs: queue.Queue[Any] = queue.Queue()
            node.monitor(node.ref("sink@b@bench"), downs.put)
            node.ref("sink@b@bench").ask(Count())
            started = time.perf_counter()
            node.partition("b@bench")
            assert downs.get(timeout=10).reason == supervisors.NOCONNECTION
            samples.append((time.perf_counter() - started) * 1000)
            node.heal("b@bench")
    finally:
        node.stop()
        _end(proc)
    return samples


def run(keys: str, insecure: bool, quick: bool) -> dict[str, float]:
    n_tell, n_ask, rounds = (40000, 2000, 4) if quick else (150000, 6000, 6)
    fig = throughput_and_rtt(keys, insecure, n_tell, n_ask, rounds)
    downs = nodedown_ms(keys, insecure, 3 if quick else 7)
    silent = partition_ms(keys, insecure, 3)
    return {
        "tell_msgs_per_s": round(fig["tell_msgs_per_s"]),
        "raw_push_pull_msgs_per_s": round(fig["raw_push_pull_msgs_per_s"]),
        "tell_ratio_vs_raw": round(fig["tell_msgs_per_s"] / fig["raw_push_pull_msgs_per_s"], 3),
        "tell_ratio_per_round": fig["tell_ratio_per_round"],
        "ask_rtt_us_median": round(fig["ask_rtt_us_median"], 1),
        "raw_rtt_us_median": round(fig["raw_rtt_us_median"], 1),
        "ask_rtt_ratio_vs_raw": round(fig["ask_rtt_us_median"] / fig["raw_rtt_us_median"], 3),
        "raw_2hop_rtt_us_median": round(fig["raw_2hop_rtt_us_median"], 1),
        "raw_2hop_ratio_vs_raw": round(fig["raw_2hop_rtt_us_median"] / fig["raw_rtt_us_median"], 3),
        "nodedown_detect_ms_median": round(statistics.median(downs), 2),
        "nodedown_detect_ms_max": round(max(downs), 2),
        "partition_detect_ms_median": round(statistics.median(silent), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer messages (smoke run)")
    args = parser.parse_args()
    os.environ.setdefault("WIND_LOG_LEVEL", "WARNING")
    configure_logging()
    load_before = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory() as keys:
        for name in ("b@bench", "a@bench"):
            generate_keys(name, keys)
        curve = run(keys, insecure=False, quick=args.quick)
        plain = run(keys, insecure=True, quick=args.quick)
    print(f"load average before: {load_before}; after: {os.getloadavg()[0]:.2f}")
    print("payload: a registered message of an int and 100 bytes; raw: msgpack [int, 100 bytes]")
    print("rounds interleave Wind and raw (order alternating); medians over rounds and samples")
    print("CURVE on (Wind and raw alike):")
    for key, value in curve.items():
        print(f"  {key:28} {value}")
    print("CURVE off:")
    for key, value in plain.items():
        print(f"  {key:28} {value}")
    result: dict[str, Any] = dict(curve)
    result.update({f"{k}_curve_off": v for k, v in plain.items()})
    result["load_average_1min"] = load_before
    print("raw_2hop = raw pyzmq + msgpack with the two thread hand-offs of Wind's design (an I/O")
    print("  thread hands each request to a worker thread and each reply to the caller): the floor")
    print("  of an actor runtime with one I/O thread per node, informational, not a target")
    print("nodedown = SIGKILL to DOWN (TCP close seen by ZeroMQ); partition = heartbeats only")
    result["targets"] = {"tell_ratio_vs_raw": ">= 0.5", "ask_rtt_ratio_vs_raw": "<= 2.0",
                         "nodedown_detect_ms_median": "< 1000"}
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--serve-wind":
        serve_wind(sys.argv[2], "--insecure" in sys.argv)
    elif len(sys.argv) > 2 and sys.argv[1] == "--serve-hops":
        serve_hops(sys.argv[2], "--insecure" in sys.argv)
    elif len(sys.argv) > 2 and sys.argv[1] == "--serve-raw":
        serve_raw(sys.argv[2], "--insecure" in sys.argv)
    else:
        main()
