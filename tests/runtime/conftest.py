"""Fixtures for the runtime tests: key directories, in-process nodes and helper node processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from runtime_support import TRUSTED, NodeProcess, start_node_process

from wind_actors.runtime import Node, generate_keys


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
