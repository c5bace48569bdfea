"""Helpers for the runtime tests: helper node processes and polling (the fixtures are in conftest.py).

Kept out of conftest.py so test modules import them by a name no other folder uses."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import zmq

import supervisors

from wind_actors import testing
from wind_actors.runtime import load_keypair
from wind_actors.runtime._trust import public_key_of
from wind_actors.runtime._wire import WIRE_VERSION, Kind

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NODE_MAIN = HERE / "runtime_node_main.py"
TRUSTED = ("test@local", "peer1@proc", "peer2@proc", "peer3@proc", "raw@test")


class Linked(supervisors.WatchedActor):
    """An actor that does nothing: something to link to a remote one and watch die."""


class Trapper(supervisors.WatchedActor):
    """Traps exits: every Exit (and any other message) goes into ``inbox``."""

    trap_exits = True

    def __init__(self, inbox: queue.Queue[Any]) -> None:
        super().__init__()
        self.inbox = inbox

    def on_receive(self, message: Any) -> None:
        self.inbox.put(message)


class NodeProcess:
    """A helper node in its own OS process (see runtime_node_main.py)."""

    def __init__(self, proc: subprocess.Popen[str], name: str, address: str) -> None:
        self.proc = proc
        self.name = name
        self.address = address

    def kill(self) -> None:
        """SIGKILL the process and reap it."""
        self.proc.kill()
        self.proc.wait(timeout=10)
        self._close_pipes()

    def _close_pipes(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()  # type: ignore[union-attr]
            except OSError:
                pass

    def close(self) -> None:
        """Ask the process to stop (close its stdin), killing it if it does not."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # type: ignore[union-attr]
                self.proc.wait(timeout=5)
            except (subprocess.TimeoutExpired, OSError):
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._close_pipes()


def start_node_process(name: str, keys_dir: Path, *extra: str, timeout: float = 20.0) -> NodeProcess:
    """Spawn a helper node and wait for the line announcing its address."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(HERE)]),
               WIND_LOG_LEVEL="WARNING")
    proc = subprocess.Popen([sys.executable, str(NODE_MAIN), name, str(keys_dir), *extra],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            break
        try:
            info = json.loads(line)
        except ValueError:
            continue
        return NodeProcess(proc, info["name"], info["address"])
    proc.kill()
    raise RuntimeError(f"helper node {name} did not announce its address")


def wind_node_start(config: Path) -> subprocess.Popen[str]:
    """``wind node start --config CONFIG --json`` in its own process (stdout: its address as JSON)."""
    return subprocess.Popen([sys.executable, "-m", "wind_actors.cli.main", "node", "start",
                             "--config", str(config), "--json"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01) -> Any:
    """:func:`wind_actors.testing.wait_for` with this folder's argument order."""
    return testing.wait_for("the condition", predicate, timeout, interval)


class RawPeer:
    """A hand-driven 'node' raw@test: a PUSH into the target and a PULL for its answers
    (a node's sockets: it receives on a bound PULL and sends on one PUSH per peer)."""

    def __init__(self, keys_dir, target_name: str, target_address: str) -> None:
        keys = load_keypair(keys_dir / "raw@test.key_secret")
        self.ctx = zmq.Context()
        self.inbox = self.ctx.socket(zmq.PULL)
        self.inbox.curve_server = True
        self.inbox.curve_publickey, self.inbox.curve_secretkey = keys.public, keys.secret
        self.inbox.bind("tcp://127.0.0.1:0")
        self.address = self.inbox.getsockopt_string(zmq.LAST_ENDPOINT)
        self._keys = keys
        self._server = public_key_of(target_name, keys_dir)
        self._target = target_address
        self.push = self.new_push()

    def new_push(self) -> zmq.Socket:
        sock = self.ctx.socket(zmq.PUSH)
        sock.curve_publickey, sock.curve_secretkey = self._keys.public, self._keys.secret
        sock.curve_serverkey = self._server
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self._target)
        return sock

    def frame(self, *envelopes, src: str = "raw@test", version: int = WIRE_VERSION) -> bytes:
        return msgpack.packb([version, src, self.address, list(envelopes)], use_bin_type=True)

    def answers(self, timeout_ms: int = 5000) -> list:
        """Envelopes of the next frame the target sends back (skipping heartbeats)."""
        while self.inbox.poll(timeout_ms):
            data = self.inbox.recv()
            envelopes = [e for e in msgpack.unpackb(data)[3] if e[0] not in (Kind.PING, Kind.PONG)]
            if envelopes:
                return envelopes
        raise AssertionError("no answer from the node")

    def next_envelope(self, kind: Kind, timeout_ms: int = 5000) -> list:
        """The next envelope of ``kind`` the target sends back."""
        while self.inbox.poll(timeout_ms):
            for env in msgpack.unpackb(self.inbox.recv())[3]:
                if env[0] == kind:
                    return env
        raise AssertionError(f"no {kind.name} from the node")

    def close(self) -> None:
        self.ctx.destroy(linger=0)
