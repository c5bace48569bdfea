"""``wind node``: run a Wind node, or ping another one."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import threading
import time
from typing import Any

from wind_actors.cli.output import emit, print_table
from wind_actors.errors import ConfigError


def register(subparsers: Any) -> None:
    """Add ``wind node start`` and ``wind node ping``."""
    parser = subparsers.add_parser("node", help="run or probe a Wind node",
                                   description="Run a Wind node, or check that one answers.")
    sub = parser.add_subparsers(dest="node_command", metavar="ACTION")
    start = sub.add_parser("start", help="run a node until interrupted",
                           description="Start the node described by the [node] section of "
                                       "the config file and run until SIGINT/SIGTERM.")
    start.add_argument("--config", required=True, help="TOML config file with a [node] section")
    start.add_argument("--json", action="store_true", help="print the node's address as JSON")
    start.set_defaults(func=_start)
    ping = sub.add_parser("ping", help="check that a node answers and measure its RTT",
                          description="Start a short-lived node from the config (on a free "
                                      "port), connect to NAME and report heartbeat RTT. Its "
                                      "[node] name and key must be trusted by NAME and must "
                                      "not be a node that is running (use an operator key).")
    ping.add_argument("name", metavar="NAME", help="node to ping, e.g. agent@site-a")
    ping.add_argument("address", metavar="ADDRESS", nargs="?", default=None,
                      help="its endpoint (default: from [node.peers])")
    ping.add_argument("--config", required=True, help="TOML config file with a [node] section")
    ping.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    ping.add_argument("--json", action="store_true", help="print the result as JSON")
    ping.set_defaults(func=_ping)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _node_config(path: str) -> Any:
    from wind_actors.config import load_config

    config = load_config(path)
    if config.node is None:
        raise ConfigError(f"{path} has no [node] section; add one with at least name = ...",
                          source=path)
    return config.node


def _start(args: argparse.Namespace) -> int:
    from wind_actors.affinity import pin_node
    from wind_actors.runtime import Node

    config = _node_config(args.config)
    pin_node(config)
    node = Node.start(config)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    emit({"name": node.name, "address": node.address}, as_json=args.json,
         human=lambda d: print(f"node {d['name']} listening on {d['address']} (Ctrl-C stops)"))
    try:
        stop.wait()
    finally:
        node.stop()
    return 0


def _ping(args: argparse.Namespace) -> int:
    from wind_actors.runtime import Node

    base = _node_config(args.config)
    config = dataclasses.replace(base, bind="tcp://127.0.0.1:0" if base.bind.startswith(
        "tcp://127.") else "tcp://0.0.0.0:0")
    node = Node.start(config)
    try:
        started = time.monotonic()
        node.connect(args.name, args.address, timeout=args.timeout)
        connect_ms = (time.monotonic() - started) * 1000
        deadline = time.monotonic() + args.timeout
        rtt = node.peer_rtt_ms().get(args.name)
        while rtt is None and time.monotonic() < deadline:
            time.sleep(0.05)  # heartbeats answer within an interval; poll until one did
            rtt = node.peer_rtt_ms().get(args.name)
    finally:
        node.stop()
    data = {"name": args.name, "up": True, "connect_ms": round(connect_ms, 3), "rtt_ms": rtt}
    emit(data, as_json=args.json, human=lambda d: print_table(
        f"ping {d['name']}", ["up", "connect ms", "rtt ms"],
        [("yes", d["connect_ms"], d["rtt_ms"])]))
    return 0
