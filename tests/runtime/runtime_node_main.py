"""A helper Wind node process for the runtime tests.

Usage: ``python runtime_node_main.py NAME KEYS_DIR [--insecure] [--hb SECONDS MISSES]``.
It registers ``echo``, ``collector``, ``caller`` and ``crasher``, prints one JSON line
``{"name": ..., "address": ...}`` on stdout, and runs until stdin closes (or it is killed).
"""

from __future__ import annotations

import json
import os
import sys

from runtime_messages import CallerActor, CollectorActor, CrasherActor, EchoActor

from wind_actors.log import configure_logging
from wind_actors.runtime import Node


def main(argv: list[str]) -> None:
    configure_logging()  # to stderr: stdout carries the address line
    name, keys_dir = argv[0], argv[1]
    insecure = "--insecure" in argv
    settings = {"name": name, "bind": "tcp://127.0.0.1:0"}
    if insecure:
        settings["insecure"] = True
    else:
        settings["keys_dir"] = keys_dir
    if "--hb" in argv:
        i = argv.index("--hb")
        settings["heartbeat_interval"] = float(argv[i + 1])
        settings["heartbeat_misses"] = int(argv[i + 2])
    node = Node.start(**settings)
    node.register("echo", EchoActor.start())
    node.register("collector", CollectorActor.start())
    node.register("caller", CallerActor.start())
    node.register("crasher", CrasherActor.start())
    sys.stdout.write(json.dumps({"name": node.name, "address": node.address}) + "\n")
    sys.stdout.flush()
    sys.stdin.read()  # until the test closes our stdin
    node.stop()
    os._exit(0)  # actor threads are not daemons; the test owns our lifetime


if __name__ == "__main__":
    main(sys.argv[1:])
