"""Shared plumbing of the client-side commands (``wind app``, ``wind sites``): config and progress."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

__all__ = ["add_client_options", "open_client", "progress_bar"]

_err = Console(stderr=True, highlight=False)


def add_client_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` and ``--json`` to a client command."""
    parser.add_argument("--config", default=os.environ.get("WIND_CONFIG"),
                        help="client config with [node] and [client] (default: $WIND_CONFIG)")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def open_client(args: argparse.Namespace) -> Any:
    """Connect a Client as the command's config says."""
    from wind_actors.client import Client
    from wind_actors.errors import ConfigError

    if not args.config:
        raise ConfigError("no client config: pass --config FILE or set $WIND_CONFIG")
    return Client.from_config(args.config)


class progress_bar:
    """A rich progress bar on stderr fed by operation snapshots (hidden with ``--json``).

    The bar appears with the first snapshot, so a callback that is never called (a listing of
    one page) prints nothing.

    Args:
        label: what is progressing.
        done_key: the detail key counting finished units (``running``, ``removed``, ``listed``).
        enabled: show it at all.
        unit: what is counted (``VMs``, ``sites``).
    """

    def __init__(self, label: str, done_key: str, enabled: bool = True, unit: str = "VMs") -> None:
        self.label = label
        self.done_key = done_key
        self.enabled = enabled
        self.unit = unit
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> Callable[[dict[str, Any]], None]:
        return self.update

    def update(self, snap: dict[str, Any]) -> None:
        """Progress callback for ``Client.wait`` and paged listings (``Client.sites``)."""
        if not self.enabled:
            return
        if self._progress is None:
            self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                      TextColumn(f"{{task.completed}}/{{task.total}} {self.unit}"),
                                      TimeElapsedColumn(), console=_err, transient=False)
            self._progress.start()
        detail = snap.get("detail") or {}
        total = int(detail.get("total", 0) or 0)
        done = int(detail.get(self.done_key, 0) or 0)
        if snap.get("state") == "done":
            done = total
        if self._task is None:
            self._task = self._progress.add_task(self.label, total=total or None)
        self._progress.update(self._task, completed=done, total=total or None)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
