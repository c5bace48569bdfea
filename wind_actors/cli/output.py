"""Output helpers shared by CLI commands: tables for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["emit", "print_table", "console"]

console = Console(stderr=False, highlight=False)


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print rows as a rich table for people."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    console.print(table)


def emit(data: Any, *, as_json: bool, human: Any = None) -> None:
    """Print ``data`` as JSON when ``as_json`` is set, else call ``human(data)``
    (or pretty-print it)."""
    if as_json:
        sys.stdout.write(json.dumps(data, default=str, sort_keys=True) + "\n")
        sys.stdout.flush()
    elif human is not None:
        human(data)
    else:
        console.print(data)
