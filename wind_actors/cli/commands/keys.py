"""``wind keys``: CURVE key pairs for nodes (ZeroMQ certificate files)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from wind_actors.cli.output import emit, print_table

DEFAULT_DIR = "keys"


def register(subparsers: Any) -> None:
    """Add ``wind keys generate`` and ``wind keys list``."""
    parser = subparsers.add_parser("keys", help="CURVE key pairs of Wind nodes",
                                   description="Create and list the CURVE keys nodes trust.")
    sub = parser.add_subparsers(dest="keys_command", metavar="ACTION")
    gen = sub.add_parser("generate", help="write NAME.key and NAME.key_secret",
                         description="Write a ZeroMQ certificate pair for node NAME. Copy "
                                     "NAME.key into the keys_dir of every node that must trust "
                                     "it; keep NAME.key_secret on NAME's host only.")
    gen.add_argument("name", metavar="NAME", help="node name, e.g. agent@site-a")
    gen.add_argument("--dir", default=DEFAULT_DIR, help=f"directory (default: ./{DEFAULT_DIR})")
    gen.add_argument("--json", action="store_true", help="print the result as JSON")
    gen.set_defaults(func=_generate)
    lst = sub.add_parser("list", help="list the public keys in a directory",
                         description="List trusted public keys (NAME.key files).")
    lst.add_argument("--dir", default=DEFAULT_DIR, help=f"directory (default: ./{DEFAULT_DIR})")
    lst.add_argument("--json", action="store_true", help="print the result as JSON")
    lst.set_defaults(func=_list)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _generate(args: argparse.Namespace) -> int:
    from wind_actors.runtime import generate_keys, load_keypair

    public_file, secret_file = generate_keys(args.name, args.dir)
    keys = load_keypair(secret_file)
    data = {"name": args.name, "public_key": keys.public.decode(),
            "public_file": str(public_file), "secret_file": str(secret_file)}
    emit(data, as_json=args.json, human=lambda d: print_table(
        f"key pair for {d['name']}", ["file", "path"],
        [("public", d["public_file"]), ("secret (keep private)", d["secret_file"])]))
    return 0


def _list(args: argparse.Namespace) -> int:
    import zmq.auth

    rows = []
    for path in sorted(Path(args.dir).glob("*.key")):
        try:
            public, _ = zmq.auth.load_certificate(str(path))
        except (OSError, ValueError):
            continue
        rows.append({"name": path.stem, "public_key": public.decode(),
                     "has_secret": path.with_suffix(".key_secret").exists()})
    emit(rows, as_json=args.json, human=lambda r: print_table(
        f"trusted keys in {args.dir}", ["name", "public key", "secret here"],
        [(x["name"], x["public_key"], "yes" if x["has_secret"] else "no") for x in r]))
    return 0
