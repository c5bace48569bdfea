"""``wind app deploy FILE`` / ``status [NAME]`` / ``undeploy NAME`` / ``kill NAME INSTANCE``."""

from __future__ import annotations

import argparse
from typing import Any

from wind_actors.cli._client import add_client_options, open_client, progress_bar
from wind_actors.cli.output import console, emit, print_table


def register(subparsers: Any) -> None:
    """Add ``wind app`` and its subcommands."""
    parser = subparsers.add_parser("app", help="deploy, inspect and undeploy applications",
                                   description="Manage the tenant's applications.")
    sub = parser.add_subparsers(dest="app_command", metavar="SUBCOMMAND")

    deploy = sub.add_parser("deploy", help="deploy an application descriptor (YAML)",
                            description="Validate the descriptor, place the whole application "
                                        "(or nothing) and wait until every VM runs. Idempotent.")
    deploy.add_argument("file", help="the application descriptor (YAML)")
    deploy.add_argument("--no-wait", action="store_true", help="return once placed")
    deploy.add_argument("--timeout", type=float, default=600.0, help="seconds to wait (default 600)")
    add_client_options(deploy)
    deploy.set_defaults(func=_deploy)

    status = sub.add_parser("status", help="show applications and where their VMs run",
                            description="Show one application (NAME) or all of the tenant's.")
    status.add_argument("name", nargs="?", help="the application (default: all)")
    add_client_options(status)
    status.set_defaults(func=_status)

    undeploy = sub.add_parser("undeploy", help="remove an application and its VMs",
                              description="Remove every VM of the application, then forget it. "
                                          "Idempotent.")
    undeploy.add_argument("name", help="the application")
    undeploy.add_argument("--no-wait", action="store_true", help="return once started")
    undeploy.add_argument("--timeout", type=float, default=600.0, help="seconds to wait (default 600)")
    add_client_options(undeploy)
    undeploy.set_defaults(func=_undeploy)

    kill = sub.add_parser("kill", help="fault injection: kill one instance through its hypervisor",
                          description="Kill one VM behind Wind's back (the sim's crash injection, "
                                      "or a hypervisor destroy) to watch it come back.")
    kill.add_argument("name", help="the application")
    kill.add_argument("instance", help="the instance, e.g. frontend-0")
    add_client_options(kill)
    kill.set_defaults(func=_kill)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _deploy(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        with progress_bar(f"deploying {args.file}", "running", enabled=not args.json and not args.no_wait) as bar:
            result = client.deploy(args.file, wait=not args.no_wait, progress=bar, timeout=args.timeout)
    emit(result, as_json=args.json, human=_print_deploy)
    failed = (result.get("operation") or {}).get("state") == "failed"
    return 1 if failed else 0


def _print_deploy(result: dict[str, Any]) -> None:
    op = result.get("operation") or {}
    console.print(f"application [bold]{result['app']}[/]: {result['state']} "
                  f"(operation {result['op']}{', ' + op['state'] if op else ''})")
    if result.get("placement"):
        print_table("placement", ["instance", "component", "site", "host"],
                    [(s["instance"], s["component"], s["site"], s["host"]) for s in result["placement"]])
    if result.get("placement_total"):  # the reply lists the first slots only (a large application)
        more = result["placement_total"] - len(result.get("placement") or ())
        console.print(f"... and {more} more; `wind app status {result['app']}` shows every VM",
                      markup=False, highlight=False)


def _status(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        data = client.status(args.name)
    emit(data, as_json=args.json, human=_print_status)
    return 0


def print_app(app: dict[str, Any]) -> None:
    """Print one application's status table for people."""
    columns = ["instance", "component", "site", "host", "state", "restarts", "restart policy"]
    rows = [[v["instance"], v["component"], v["site"], v["host"], v["state"], v["restarts"], v["restart"]]
            for v in app["vms"]]
    if any(v.get("overlay") for v in app["vms"]):  # sites without an underlay take no part in it
        columns.append("overlay")
        for row, v in zip(rows, app["vms"]):
            row.append(", ".join(f"{o['network']} {o['ip']}/{o['prefixlen']}" for o in v.get("overlay", ())))
    print_table(f"{app['tenant']}/{app['app']}: {app['state']} ({app['running']}/{app['total']} running)",
                columns, rows)
    for v in app["vms"]:  # lost sites: why a VM is still lost, where a rescheduled one came from
        if v.get("lost_reason"):
            console.print(f"  {v['instance']} is lost: {v['lost_reason']}", markup=False, highlight=False)
        elif v.get("moved_from"):
            console.print(f"  {v['instance']} was rescheduled from lost site(s) {', '.join(v['moved_from'])} "
                          f"to {v['site']}", markup=False, highlight=False)


def _print_status(data: Any) -> None:
    apps = data if isinstance(data, list) else [data]
    if not apps:
        console.print("no applications")
    for app in apps:
        print_app(app)


def _undeploy(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        with progress_bar(f"undeploying {args.name}", "removed", enabled=not args.json and not args.no_wait) as bar:
            result = client.undeploy(args.name, wait=not args.no_wait, progress=bar, timeout=args.timeout)
    emit(result, as_json=args.json,
         human=lambda r: console.print(f"application [bold]{r['app']}[/]: {r['state']} (operation {r['op']})"))
    return 0


def _kill(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        result = client.kill_instance(args.name, args.instance)
    emit(result, as_json=args.json,
         human=lambda r: console.print(f"killed {r['killed']} at site {r['site']} ({r['how']})"))
    return 0
