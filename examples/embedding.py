#!/usr/bin/env python3
"""Embedding Wind in a Python service: an in-process cluster and the client API.

`wind_actors.cluster.Cluster` runs a controller and its agents inside this process (each on its
own node, talking ZeroMQ with CURVE on 127.0.0.1); `Client` is the same API a service uses
against a remote controller (`Client.from_config("client.toml")`).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from wind_actors.cluster import Cluster, SiteSpec  # noqa: E402
from wind_actors.log import configure_logging  # noqa: E402


def main() -> int:
    configure_logging(level="WARNING")
    sites = [
        SiteSpec("edge", "libvirt", {"uri": f"test://{HERE / 'hosts' / 'large.xml'}"}, labels={"storage": "ssd"}),
        SiteSpec("dc-1", "sim", {"hosts": 100}, region="us-east"),
        SiteSpec("dc-2", "sim", {"hosts": 100}, region="eu-west"),
    ]
    with Cluster.start(sites, tenants={"acme": "acme-embedded-token-0123"}) as cluster:
        wind = cluster.client("acme")
        for row in wind.sites():
            print(f"site {row['site']:<5} {row['driver']:<8} {row['hosts']:>4} host(s) {row['health']}")
        result = wind.deploy(HERE / "apps" / "web.yaml",
                             progress=lambda op: print(f"  deploy {op['state']}: {op['detail']}"))
        print(f"deployed {result['app']} (operation {result['op']})")
        for vm in wind.status("web")["vms"]:
            print(f"  {vm['instance']:<11} at {vm['site']:<5} {vm['state']}")
        print(f"undeploy: {wind.undeploy('web')['state']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
