"""``wind sites``: the pool, one row per site; ``wind sites remove NAME``: take a site out of it."""

from __future__ import annotations

import argparse
from typing import Any

from wind_actors.cli._client import add_client_options, open_client, progress_bar
from wind_actors.cli.output import emit, print_table


def register(subparsers: Any) -> None:
    """Add ``wind sites``."""
    parser = subparsers.add_parser(
        "sites", help="show the pool: every site's driver, capacity, use, VMs and health",
        description="Show the logical pool built from every agent's reports.")
    add_client_options(parser)
    parser.set_defaults(func=_run)
    sub = parser.add_subparsers(dest="sites_command", metavar="SUBCOMMAND")
    remove = sub.add_parser(
        "remove", help="remove a site from the pool and the overlay (refused while VMs are placed there)",
        description="Remove a site from the pool and the overlay plan. Refused, changing nothing, "
                    "while any application has VMs placed there. Its agent, if reachable, tears "
                    "down every Wind network device; the other sites stop sending to it. The "
                    "removal persists across controller restarts; an agent of that name that "
                    "starts again later rejoins as a new, empty site. Idempotent.")
    remove.add_argument("name", help="the site")
    add_client_options(remove)
    remove.set_defaults(func=_remove)


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
        # a pool of more than one page shows the pages coming in; --json output is the same list
        with progress_bar("listing sites", "listed", enabled=not args.json, unit="sites") as bar:
            rows = client.sites(progress=bar)
    emit(rows, as_json=args.json, human=print_sites)
    return 0


def _remove(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        result = client.remove_site(args.name)
    emit(result, as_json=args.json, human=lambda r: print(
        f"site {r['site']}: {r['state']} (operation {r['op']}, agent {r['agent']})"))
    return 0
