"""Benchmark: how many peers one node holds, and what their heartbeats cost it while idle.

This process runs one Wind node (``hub@bench``, CURVE on). A few child processes each host
many lightweight raw peers: a CURVE key pair, a PULL bound for the hub's frames and a PUSH
into the hub, speaking the wire format by hand (no actors, no threads per peer). Every peer
pings the hub once per heartbeat interval and answers the hub's pings, as a real node does.

Two figures:

- ``peers_held``: peers the hub counts as up once every peer has tried to join; with more
  peers than ``--max-peers`` the rest must be refused (``refused_beyond_limit``, counted by the
  node as ``peer_limit``) while the node serves on;
- ``heartbeat_cpu_us_per_peer_per_s``: CPU time of the hub's process (every thread, ZeroMQ's
  included) per peer and second while idle with those peers, from ``getrusage``, minus the
  same process's idle rate with no peers.

The last line of output is one JSON object.

    .venv/bin/python bench/peers.py [--peers 2100] [--max-peers 2048] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
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

from wind_actors.log import configure_logging  # noqa: E402
from wind_actors.runtime import Node, generate_keys, load_keypair  # noqa: E402
from wind_actors.runtime._security import public_key_of  # noqa: E402
from wind_actors.runtime._transport import new_context, raise_fd_limit  # noqa: E402
from wind_actors.runtime._wire import WIRE_VERSION, Kind  # noqa: E402

HUB = "hub@bench"
PING, PONG = int(Kind.PING), int(Kind.PONG)


# -- a child process hosting raw peers --------------------------------------------------------


class RawPeer:
    """One raw peer: its PULL (CURVE server with its own key) and its PUSH into the hub."""

    __slots__ = ("name", "pull", "push", "address", "seq")

    def __init__(self, ctx: zmq.Context, name: str, keys: str, hub: str) -> None:
        kp = load_keypair(Path(keys) / f"{name}.key_secret")
        self.name = name
        self.pull = ctx.socket(zmq.PULL)
        self.pull.curve_server = True
        self.pull.curve_publickey, self.pull.curve_secretkey = kp.public, kp.secret
        self.pull.setsockopt(zmq.LINGER, 0)
        self.pull.bind("tcp://127.0.0.1:0")
        self.address = self.pull.getsockopt_string(zmq.LAST_ENDPOINT)
        self.push = ctx.socket(zmq.PUSH)
        self.push.curve_publickey, self.push.curve_secretkey = kp.public, kp.secret
        self.push.curve_serverkey = public_key_of(HUB, keys)
        self.push.setsockopt(zmq.LINGER, 0)
        self.push.connect(hub)
        self.seq = 0

    def send(self, envelopes: list[list[Any]]) -> None:
        frame = msgpack.packb([WIRE_VERSION, self.name, self.address, envelopes])
        try:
            self.push.send(frame, zmq.NOBLOCK)
        except zmq.Again:
            pass  # the hub refused us (max_peers) or is slow: a heartbeat may be lost

    def drain(self) -> None:
        """Answer every PING the hub sent us."""
        while True:
            try:
                data = self.pull.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            pongs = [[PONG, e[1], e[2]] for e in msgpack.unpackb(data)[3] if e[0] == PING]
            if pongs:
                self.send(pongs)


def serve_peers(keys: str, hub: str, names: list[str], interval: float) -> None:
    """Host ``names`` as raw peers until stdin closes: ping the hub, answer its pings."""
    raise_fd_limit(64 + 6 * len(names))
    ctx = new_context(2 * len(names) + 16)
    peers = [RawPeer(ctx, name, keys, hub) for name in names]
    # The PULLs' ZMQ_FDs in one epoll: it costs per ready socket, where zmq_poll over
    # hundreds of sockets costs per socket on every call. A ZMQ_FD is edge-triggered, so a
    # socket is drained whenever its fd fires, and all of them once per interval.
    epoll = select.epoll()
    by_fd = {}
    for peer in peers:
        fd = peer.pull.getsockopt(zmq.FD)
        by_fd[fd] = peer
        epoll.register(fd, select.EPOLLIN | select.EPOLLET)
    epoll.register(sys.stdin.fileno(), select.EPOLLIN)
    print(json.dumps({"ready": len(peers)}), flush=True)
    next_ping = time.monotonic()
    while True:
        now = time.monotonic()
        if now >= next_ping:
            for peer in peers:
                peer.seq += 1
                peer.send([[PING, peer.seq, now]])
                peer.drain()
            next_ping = now + interval
        for fd, _ in epoll.poll(max(0.0, next_ping - time.monotonic())):
            if fd == sys.stdin.fileno():
                os._exit(0)
            by_fd[fd].drain()


# -- the hub -------------------------------------------------------------------------------------


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _threads_cpu() -> dict[str, float]:
    """CPU seconds per thread name of this process (Linux /proc; ZeroMQ's are ZMQbg/...)."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            comm = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[comm] = out.get(comm, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return out


def _idle_cpu_rate(seconds: float) -> float:
    """CPU seconds per second this process spends while nothing happens but waiting."""
    before, started = _cpu(), time.monotonic()
    time.sleep(seconds)  # a measuring window, not a synchronization
    return (_cpu() - before) / (time.monotonic() - started)


def _spawn(keys: str, hub: str, names: list[str], interval: float) -> subprocess.Popen[str]:
    args = [sys.executable, __file__, "--serve", keys, hub, str(interval), ",".join(names)]
    env = dict(os.environ, WIND_LOG_LEVEL="ERROR")
    return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=env)


def _up(node: Node) -> int:
    return sum(1 for name, status in node.peers().items()
               if status == "up" and name.startswith("p"))


def _wait_settled(node: Node, expected: int, timeout: float) -> int:
    """Up peers once the count reaches ``expected`` or stops growing for a few seconds."""
    deadline = time.monotonic() + timeout
    best, best_at = -1, time.monotonic()
    while time.monotonic() < deadline:
        up = _up(node)
        if up >= expected:
            return up
        if up > best:
            best, best_at = up, time.monotonic()
        elif time.monotonic() - best_at > 5.0:
            return up
        time.sleep(0.25)  # polling a count, not synchronizing on it
    return _up(node)


def run(n_peers: int, max_peers: int, workers: int, interval: float, window: float) -> dict:
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as keys:
        names = [f"p{i:05d}@bench" for i in range(n_peers)]
        for name in [HUB, *names]:
            generate_keys(name, keys)
        node = Node.start(name=HUB, keys_dir=keys, max_peers=max_peers,
                          heartbeat_interval=interval)
        procs: list[subprocess.Popen[str]] = []
        try:
            baseline = _idle_cpu_rate(min(window, 3.0))
            for w in range(workers):
                procs.append(_spawn(keys, node.address, names[w::workers], interval))
            for proc in procs:
                json.loads(proc.stdout.readline())  # type: ignore[union-attr]
            held = _wait_settled(node, min(n_peers, max_peers), timeout=120)
            cpu_before, threads_before, t0 = _cpu(), _threads_cpu(), time.monotonic()
            time.sleep(window)  # the measuring window: idle with every peer held
            elapsed = time.monotonic() - t0
            cpu_rate = (_cpu() - cpu_before) / elapsed
            by_thread = {name: round((cpu - threads_before.get(name, 0.0)) / elapsed, 4)
                         for name, cpu in _threads_cpu().items()
                         if cpu - threads_before.get(name, 0.0) > 0}
            held_after = _up(node)
            stats = node.stats()
            alive = node.transport._thread.is_alive()  # type: ignore[union-attr]
        finally:
            node.stop()
            for proc in procs:
                proc.stdin.close()  # type: ignore[union-attr]
            for proc in procs:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                proc.stdout.close()  # type: ignore[union-attr]
    counters = stats["counters"]
    per_peer = (cpu_rate - baseline) / max(held_after, 1) * 1e6
    return {
        "peers_tried": n_peers, "max_peers": max_peers, "peers_held": held,
        "peers_held_after_window": held_after,
        "refused_beyond_limit": n_peers - held if counters.get("peer_limit") else 0,
        "peer_limit_counter": counters.get("peer_limit", 0),
        "node_alive": alive and not stats["counters"].get("io_errors"),
        "outbound_sockets": stats["sockets"],
        "hub_cpu_cores_idle_with_peers": round(cpu_rate, 4),
        "hub_cpu_cores_idle_alone": round(baseline, 4),
        "heartbeat_cpu_us_per_peer_per_s": round(per_peer, 2),
        "heartbeat_interval_s": interval,
        "hub_cpu_cores_by_thread": by_thread,
        "elapsed_s": round(time.monotonic() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--peers", type=int, default=2100, help="peers that try to join")
    parser.add_argument("--max-peers", type=int, default=2048, help="the hub's [node] max_peers")
    parser.add_argument("--workers", type=int, default=4, help="child processes hosting peers")
    parser.add_argument("--interval", type=float, default=0.2, help="heartbeat interval (s)")
    parser.add_argument("--window", type=float, default=8.0, help="idle measuring window (s)")
    parser.add_argument("--quick", action="store_true", help="300 peers, max 256, short window")
    args = parser.parse_args()
    if args.quick:
        args.peers, args.max_peers, args.window = 300, 256, 3.0
    os.environ.setdefault("WIND_LOG_LEVEL", "WARNING")
    configure_logging()
    result = run(args.peers, args.max_peers, args.workers, args.interval, args.window)
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"{result['peers_tried']} raw CURVE peers in {args.workers} processes tried to join "
          f"a node with max_peers={result['max_peers']}")
    for key, value in result.items():
        print(f"  {key:34} {value}")
    result["targets"] = {"peers_held": ">= 2000"}
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve_peers(sys.argv[2], sys.argv[3], sys.argv[5].split(","), float(sys.argv[4]))
    else:
        main()
