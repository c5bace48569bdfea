"""``wind keys``: CURVE key pairs for nodes (ZeroMQ certificate files)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from wind_actors.cli.output import emit, print_table

DEFAULT_DIR = "keys"


def register(subparsers: Any) -> None:
    """Add ``wind keys generate``, ``wind keys ring`` and ``wind keys list``."""
    parser = subparsers.add_parser("keys", help="CURVE key pairs of Wind nodes",
                                   description="Create and list the CURVE keys nodes trust.")
    sub = parser.add_subparsers(dest="keys_command", metavar="ACTION")
    gen = sub.add_parser("generate", help="write NAME.key and NAME.key_secret",
                         description="Write a ZeroMQ certificate pair for node NAME, filed under "
                                     "the folder of its role (the folder a key sits in is the "
                                     "role its node has: controller/, operator/, agent/SITE/, "
                                     "client/TENANT/; the top of the directory is a plain peer). "
                                     "Copy NAME.key into the same role folder of every node's "
                                     "keys_dir that must trust it (the controller trusts agents, "
                                     "clients and operators; agents, clients and operators "
                                     "trust the controller only: the controller vouches for "
                                     "the agents a site probes for RTTs at runtime); "
                                     "keep NAME.key_secret on NAME's host only.")
    gen.add_argument("name", metavar="NAME", help="node name, e.g. agent@site-a")
    gen.add_argument("--dir", default=DEFAULT_DIR, help=f"directory (default: ./{DEFAULT_DIR})")
    gen.add_argument("--role", default="peer",
                     choices=("peer", "controller", "operator", "agent", "client"),
                     help="the node's role (default: peer, no system role)")
    gen.add_argument("--site", help="the site of an agent (required with --role agent)")
    gen.add_argument("--tenant", help="the tenant of a client (required with --role client)")
    gen.add_argument("--json", action="store_true", help="print the result as JSON")
    gen.set_defaults(func=_generate)
    ring = sub.add_parser("ring", help="key pairs and a trust folder for every node of a deployment",
                          description="Write DIR/vault (every node's key pair, filed by role) and "
                                      "DIR/NAME for each node: the folder to give as that node's "
                                      "keys_dir, holding its own key pair and exactly the public "
                                      "keys its role trusts (the controller: agents, clients and "
                                      "operators; an agent, a client or an operator: the "
                                      "controller, which vouches for the agents a site probes "
                                      "at runtime, so no agent's folder holds another agent's "
                                      "key). Run it again to add "
                                      "nodes: existing keys are kept.")
    ring.add_argument("dir", metavar="DIR", help="where the keyring goes, e.g. keys")
    ring.add_argument("--sites", default="", help="comma-separated sites: one agent@SITE each")
    ring.add_argument("--tenants", default="", help="comma-separated tenants: one client@TENANT each")
    ring.add_argument("--controller", default="controller@hq", help="the controller's node name")
    ring.add_argument("--operators", default="operator@hq",
                      help="comma-separated operator node names (default: operator@hq)")
    ring.add_argument("--json", action="store_true", help="print the result as JSON")
    ring.set_defaults(func=_ring)
    lst = sub.add_parser("list", help="list the public keys in a directory, with their roles",
                         description="List trusted public keys (NAME.key files) and the role "
                                     "each has from the folder it is filed in.")
    lst.add_argument("--dir", default=DEFAULT_DIR, help=f"directory (default: ./{DEFAULT_DIR})")
    lst.add_argument("--json", action="store_true", help="print the result as JSON")
    lst.set_defaults(func=_list)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _generate(args: argparse.Namespace) -> int:
    from wind_actors.runtime import generate_keys, load_keypair

    scope = args.site if args.role == "agent" else args.tenant if args.role == "client" else None
    public_file, secret_file = generate_keys(args.name, args.dir, args.role, scope)
    keys = load_keypair(secret_file)
    data = {"name": args.name, "role": args.role, "scope": scope, "public_key": keys.public.decode(),
            "public_file": str(public_file), "secret_file": str(secret_file)}
    emit(data, as_json=args.json, human=lambda d: print_table(
        f"key pair for {d['name']}", ["file", "path"],
        [("public", d["public_file"]), ("secret (keep private)", d["secret_file"])]))
    return 0


def _ring(args: argparse.Namespace) -> int:
    from wind_actors.keyring import Keyring

    ring = Keyring(args.dir)
    nodes = [(args.controller, "controller", None)]
    nodes += [(f"agent@{s}", "agent", s) for s in _names(args.sites)]
    nodes += [(f"client@{t}", "client", t) for t in _names(args.tenants)]
    nodes += [(o, "operator", None) for o in _names(args.operators)]
    for name, role, scope in nodes:
        ring.add(name, role, scope)
    ring.publish()
    rows = [{"name": n, "role": r, "scope": sc, "keys_dir": str(ring.trust_dir(n))} for n, r, sc in nodes]
    emit(rows, as_json=args.json, human=lambda r: print_table(
        f"keyring in {args.dir}", ["node", "role", "keys_dir"],
        [(x["name"], x["role"] + (f" of {x['scope']}" if x["scope"] else ""), x["keys_dir"]) for x in r]))
    return 0


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _list(args: argparse.Namespace) -> int:
    import zmq.auth

    from wind_actors.runtime._trust import scan

    rows = []
    for path, ident in scan(Path(args.dir)):
        try:
            public, _ = zmq.auth.load_certificate(str(path))
        except (OSError, ValueError):
            continue
        rows.append({"name": ident.node, "role": ident.role, "scope": ident.scope,
                     "public_key": public.decode(),
                     "has_secret": path.with_suffix(".key_secret").exists()})
    emit(rows, as_json=args.json, human=lambda r: print_table(
        f"trusted keys in {args.dir}", ["name", "role", "public key", "secret here"],
        [(x["name"], x["role"] + (f" of {x['scope']}" if x["scope"] else ""), x["public_key"],
          "yes" if x["has_secret"] else "no") for x in r]))
    return 0
