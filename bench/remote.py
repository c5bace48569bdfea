"""Benchmark: Wind remote tell/ask against raw pyzmq + msgpack, and node-down detection.

Two OS processes each time: this one (the sender) and a child serving either a Wind node or
raw ZeroMQ sockets. Every figure is measured in this run, with CURVE on for both Wind and the
raw baseline, then again with CURVE off. The last line of output is one JSON object.

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


def wind_figures(keys: str, insecure: bool, n_tell: int, n_ask: int) -> dict[str, float]:
    proc, info = _spawn("--serve-wind", keys, insecure)
    settings: dict[str, Any] = {"name": "a@bench"}
    settings.update(insecure=True) if insecure else settings.update(keys_dir=keys)
    node = Node.start(**settings)
    try:
        node.connect("b@bench", info["address"])
        sink = node.ref("sink@b@bench")
        sink.ask(Count())
        rates = []
        for _ in range(3):
            before = sink.ask(Count())
            started = time.perf_counter()
            for i in range(n_tell):
                sink.tell(Payload(i, PAYLOAD))
            assert sink.ask(Count(), timeout=60) == before + n_tell
            rates.append(n_tell / (time.perf_counter() - started))
        rtts = []
        for i in range(n_ask):
            started = time.perf_counter()
            sink.ask(Payload(-1 - i, PAYLOAD))
            rtts.append((time.perf_counter() - started) * 1e6)
    finally:
        node.stop()
        _end(proc)
    return {"tell_msgs_per_s": max(rates), "ask_rtt_us_median": statistics.median(rtts)}


def raw_figures(keys: str, insecure: bool, n_tell: int, n_ask: int) -> dict[str, float]:
    proc, info = _spawn("--serve-raw", keys, insecure)
    ctx = zmq.Context()
    push, dealer, done = ctx.socket(zmq.PUSH), ctx.socket(zmq.DEALER), ctx.socket(zmq.PULL)
    try:
        done.bind("tcp://127.0.0.1:0")
        proc.stdin.write(json.dumps({"done": done.getsockopt_string(zmq.LAST_ENDPOINT)}) + "\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        for sock, endpoint in ((push, info["pull"]), (dealer, info["router"])):
            _curve_client(sock, keys, insecure)
            sock.setsockopt(zmq.SNDHWM, 0)
            sock.connect(endpoint)
        push.send(msgpack.packb([-1, PAYLOAD]))
        done.recv()
        rates = []
        for _ in range(3):
            started = time.perf_counter()
            for i in range(n_tell):
                push.send(msgpack.packb([i, PAYLOAD]))
            push.send(msgpack.packb([-1, PAYLOAD]))
            assert msgpack.unpackb(done.recv()) == n_tell + 1
            rates.append((n_tell + 1) / (time.perf_counter() - started))
        rtts = []
        for i in range(n_ask):
            started = time.perf_counter()
            dealer.send(msgpack.packb([i, PAYLOAD]))
            msgpack.unpackb(dealer.recv())
            rtts.append((time.perf_counter() - started) * 1e6)
    finally:
        ctx.destroy(linger=0)
        _end(proc)
    return {"raw_push_pull_msgs_per_s": max(rates), "raw_rtt_us_median": statistics.median(rtts)}


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
    n_tell, n_ask = (20000, 500) if quick else (100000, 2000)
    wind = wind_figures(keys, insecure, n_tell, n_ask)
    raw = raw_figures(keys, insecure, n_tell, n_ask)
    downs = nodedown_ms(keys, insecure, 3 if quick else 7)
    silent = partition_ms(keys, insecure, 3)
    return {
        "tell_msgs_per_s": round(wind["tell_msgs_per_s"]),
        "raw_push_pull_msgs_per_s": round(raw["raw_push_pull_msgs_per_s"]),
        "tell_ratio_vs_raw": round(wind["tell_msgs_per_s"] / raw["raw_push_pull_msgs_per_s"], 3),
        "ask_rtt_us_median": round(wind["ask_rtt_us_median"], 1),
        "raw_rtt_us_median": round(raw["raw_rtt_us_median"], 1),
        "ask_rtt_ratio_vs_raw": round(wind["ask_rtt_us_median"] / raw["raw_rtt_us_median"], 3),
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
    with tempfile.TemporaryDirectory() as keys:
        for name in ("b@bench", "a@bench"):
            generate_keys(name, keys)
        curve = run(keys, insecure=False, quick=args.quick)
        plain = run(keys, insecure=True, quick=args.quick)
    print("payload: a registered message of an int and 100 bytes; raw: msgpack [int, 100 bytes]")
    print("CURVE on (Wind and raw alike):")
    for key, value in curve.items():
        print(f"  {key:28} {value}")
    print("CURVE off:")
    for key, value in plain.items():
        print(f"  {key:28} {value}")
    result = dict(curve)
    result.update({f"{k}_curve_off": v for k, v in plain.items()})
    print("nodedown = SIGKILL to DOWN (TCP close seen by ZeroMQ); partition = heartbeats only")
    result["targets"] = {"tell_ratio_vs_raw": ">= 0.5", "ask_rtt_ratio_vs_raw": "<= 2.0",
                         "nodedown_detect_ms_median": "< 1000"}
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--serve-wind":
        serve_wind(sys.argv[2], "--insecure" in sys.argv)
    elif len(sys.argv) > 2 and sys.argv[1] == "--serve-raw":
        serve_raw(sys.argv[2], "--insecure" in sys.argv)
    else:
        main()
