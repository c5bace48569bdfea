"""Entry point of the ``wind`` command."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from wind_actors import errors
from wind_actors.log import configure_logging

from . import commands


def build_parser() -> argparse.ArgumentParser:
    """Build the full parser, discovering every command group module."""
    parser = argparse.ArgumentParser(
        prog="wind",
        description="Wind: one logical pool over distributed heterogeneous clouds.",
    )
    parser.add_argument("--log-format", choices=["console", "json"], default=None,
                        help="log renderer (default: $WIND_LOG_FORMAT or console)")
    parser.add_argument("--log-level", default=None, help="log level (default: INFO)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    configure_logging(args.log_format, args.log_level)
    try:
        result = args.func(args)
    except errors.WindError as exc:
        print(f"wind: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
