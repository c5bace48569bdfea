"""Fixtures for the runtime tests: key directories, in-process nodes and helper node processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from wind_actors.runtime import Node, generate_keys

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NODE_MAIN = HERE / "runtime_node_main.py"
TRUSTED = ("test@local", "peer1@proc", "peer2@proc", "peer3@proc", "raw@test")


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


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    """A directory trusting the usual test node names (key pairs generated fresh)."""
    directory = tmp_path / "keys"
    for name in TRUSTED:
        generate_keys(name, directory)
    return directory


@pytest.fixture
def local_node(keys_dir: Path) -> Iterator[Node]:
    """An in-process CURVE node named test@local."""
    node = Node.start(name="test@local", bind="tcp://127.0.0.1:0", keys_dir=str(keys_dir))
    yield node
    node.stop()


@pytest.fixture
def spawn(keys_dir: Path) -> Iterator[Callable[..., NodeProcess]]:
    """Start helper node processes; all are stopped after the test."""
    started: list[NodeProcess] = []

    def _spawn(name: str, *extra: str) -> NodeProcess:
        handle = start_node_process(name, keys_dir, *extra)
        started.append(handle)
        return handle

    yield _spawn
    for handle in started:
        handle.close()


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01) -> Any:
    """Poll ``predicate`` until it returns something truthy or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)
