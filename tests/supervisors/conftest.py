"""Run every supervision test module twice: with thread-per-actor and with pooled actors.

The ``actor_kind`` fixture (module scope, so Hypothesis tests may use it) rebinds, in the
test module and in ``sup_helpers``, ``WatchedActor`` to :class:`supervisors.PooledActor` (test
actors defined inside a test then subclass it) and each module-level test actor class to a
pooled twin (``class Twin(Original, PooledActor)``). Supervisors stay thread-per-actor: it is
their *children* that are of either kind.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sup_helpers

from supervisors import PooledActor, Supervisor, WatchedActor

_twins: dict[type, type] = {}


def _pooled(cls: type) -> type:
    twin = _twins.get(cls)
    if twin is None:
        twin = _twins[cls] = type(cls.__name__, (cls, PooledActor), {"__module__": cls.__module__,
                                                                      "__qualname__": cls.__qualname__})
    return twin


def _pooled_names(module: Any) -> dict[str, Any]:
    names: dict[str, Any] = {}
    for name, value in vars(module).items():
        if value is WatchedActor:
            names[name] = PooledActor
        elif (isinstance(value, type) and issubclass(value, WatchedActor)
              and not issubclass(value, (Supervisor, PooledActor))):
            names[name] = _pooled(value)
    return names


@pytest.fixture(scope="module", params=["threaded", "pooled"], autouse=True)
def actor_kind(request: pytest.FixtureRequest) -> Iterator[str]:
    """Which kind of actor this run of the module's tests uses."""
    if request.param == "threaded":
        yield "threaded"
        return
    saved: list[tuple[Any, str, Any]] = []
    for module in (request.module, sup_helpers):
        for name, pooled in _pooled_names(module).items():
            saved.append((module, name, getattr(module, name)))
            setattr(module, name, pooled)
    try:
        yield "pooled"
    finally:
        for module, name, original in reversed(saved):
            setattr(module, name, original)
