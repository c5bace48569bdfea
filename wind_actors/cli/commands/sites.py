"""``wind sites``: the pool, one row per site."""

from __future__ import annotations

import argparse
from typing import Any

from wind_actors.cli._client import add_client_options, open_client
from wind_actors.cli.output import emit, print_table


def register(subparsers: Any) -> None:
    """Add ``wind sites``."""
    parser = subparsers.add_parser(
        "sites", help="show the pool: every site's driver, capacity, use, VMs and health",
        description="Show the logical pool built from every agent's reports.")
    add_client_options(parser)
    parser.set_defaults(func=_run)


def _fmt(res: dict[str, Any]) -> str:
    mem = res.get("memory_mb", 0)
    if mem >= 1024 * 1024:
        mem_text = f"{mem / 1024 / 1024:.1f} TiB"
    else:
        mem_text = f"{mem / 1024:.0f} GiB" if mem >= 10240 else f"{mem} MiB"
    return f"{res.get('cpus', 0)} cpu, {mem_text}"


def print_sites(rows: list[dict[str, Any]]) -> None:
    """Print the pool table for people."""
    print_table("Wind pool", ["site", "driver", "region", "hosts", "capacity", "used", "VMs", "health"],
                [(r["site"], r["driver"], r["region"], r["hosts"], _fmt(r["capacity"]), _fmt(r["used"]),
                  r["vms"], r["health"]) for r in rows])


def _run(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        rows = client.sites()
    emit(rows, as_json=args.json, human=print_sites)
    return 0
