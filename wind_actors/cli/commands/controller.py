"""``wind controller --config controller.toml``: run the controller until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add ``wind controller``."""
    parser = subparsers.add_parser(
        "controller", help="run the controller (tenants, applications, pool, scheduler)",
        description="Run the controller: it serves tenants' requests, builds the pool from the "
                    "agents' reports, places applications and keeps them running. Desired state "
                    "persists in SQLite ([controller] store); a restarted controller adopts the "
                    "VMs still running. The config needs [node] and [controller].")
    parser.add_argument("--config", required=True, help="TOML file with [node] and [controller]")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from wind_actors.controller import run_controller

    return run_controller(args.config)
