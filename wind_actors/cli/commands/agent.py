"""``wind agent --config site.toml``: run one site's agent until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add ``wind agent``."""
    parser = subparsers.add_parser(
        "agent", help="run a site agent (driver, VM actors, reports to the controller)",
        description="Run the agent of one site: its driver actor, one supervised VM actor per "
                    "VM, and reports of capacity, inventory and health to the controller. The "
                    "config needs [node] (with the controller in [node.peers]) and [agent].")
    parser.add_argument("--config", required=True, help="TOML file with [node] and [agent]")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from wind_actors.agent import run_agent

    return run_agent(args.config)
