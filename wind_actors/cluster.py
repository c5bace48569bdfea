"""An in-process Wind cluster: a controller and its agents in one process, for tests and embedding.

Each part still runs on its own node and talks over ZeroMQ on 127.0.0.1 (CURVE on, with keys
generated into a temporary directory), so it behaves as the multi-process system does; only
the OS processes are saved. Example::

    from wind_actors.cluster import Cluster, SiteSpec

    with Cluster.start([SiteSpec("dc-1", "sim", {"hosts": 100}, labels={"storage": "ssd"})],
                       tenants={"acme": "acme-token-0123456789"}) as cluster:
        wind = cluster.client("acme")
        wind.deploy("examples/apps/web.yaml")
        print(wind.sites())
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wind_actors.agent import Agent
from wind_actors.client import Client
from wind_actors.config import AgentConfig, ControllerConfig, NodeConfig
from wind_actors.controller import Controller

__all__ = ["Cluster", "SiteSpec"]


@dataclass(frozen=True)
class SiteSpec:
    """One site of an in-process cluster.

    Attributes:
        name: the site name.
        driver: the driver plug-in name.
        options: the driver's keyword configuration.
        region: its region.
        labels: its labels.
        report_interval: seconds between reports.
    """

    name: str
    driver: str = "sim"
    options: dict[str, Any] = field(default_factory=dict)
    region: str = "default"
    labels: dict[str, str] = field(default_factory=dict)
    report_interval: float = 0.5


class Cluster:
    """A running in-process cluster. Use :meth:`start`; :meth:`stop` (or ``with``) ends it."""

    def __init__(self, workdir: Path, own_dir: bool, curve: bool, tokens: dict[str, str]) -> None:
        self.workdir = workdir
        self._own_dir = own_dir
        self.curve = curve
        self.tokens = tokens
        self.keys_dir = workdir / "keys"
        self.controller_node: Any = None
        self.controller: Controller | None = None
        self.agents: dict[str, Agent] = {}
        self._clients: list[Client] = []
        self._nodes: list[Any] = []

    @classmethod
    def start(cls, sites: list[SiteSpec], *, tenants: dict[str, str],
              workdir: str | Path | None = None, curve: bool = True, tick: float = 0.2,
              site_timeout: float = 3.0) -> Cluster:
        """Start a controller and one agent per site, and wait until every site has reported.

        Args:
            sites: the sites.
            tenants: ``tenant -> token``.
            workdir: where keys and the store go (default: a temporary directory, removed on
                stop).
            curve: CURVE between the nodes (default on).
            tick: the controller's reconciliation interval.
            site_timeout: seconds before a silent site is down.

        Returns:
            The running cluster.
        """
        from wind_actors.runtime import Node, generate_keys

        own = workdir is None
        path = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="wind-cluster-"))
        cluster = cls(path, own, curve, dict(tenants))
        try:
            names = ["controller@local", *(f"agent@{s.name}" for s in sites),
                     *(f"client@{t}" for t in tenants)]
            if curve:
                for name in names:
                    if not (cluster.keys_dir / f"{name}.key").exists():
                        generate_keys(name, cluster.keys_dir)
            cnode = Node.start(cluster._node_config("controller@local"))
            cluster._nodes.append(cnode)
            cluster.controller_node = cnode
            cluster.controller = Controller.start(cnode, ControllerConfig(
                store=str(path / "wind.db"), tenants=dict(tenants), tick=tick, site_timeout=site_timeout))
            for spec in sites:
                node = Node.start(cluster._node_config(f"agent@{spec.name}",
                                                       {"controller@local": cnode.address}))
                cluster._nodes.append(node)
                config = AgentConfig(site=spec.name, controller="controller@local", driver=spec.driver,
                                     driver_options=dict(spec.options), region=spec.region,
                                     labels=dict(spec.labels), report_interval=spec.report_interval)
                cluster.agents[spec.name] = Agent.start(node, config)
            if tenants:
                client = cluster.client(next(iter(tenants)))
                _wait_for(lambda: len(client.sites()) == len(sites), 30.0,
                          f"{len(sites)} site(s) to report")
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _node_config(self, name: str, peers: dict[str, str] | None = None) -> NodeConfig:
        if self.curve:
            return NodeConfig(name=name, keys_dir=str(self.keys_dir), peers=dict(peers or {}))
        return NodeConfig(name=name, insecure=True, peers=dict(peers or {}))

    def client(self, tenant: str, *, token: str | None = None) -> Client:
        """A client acting for ``tenant`` (with its token unless ``token`` is given); one node per
        tenant, shared by the clients of that tenant, stopped with the cluster."""
        from wind_actors.runtime import Node

        name = f"client@{tenant}"
        node = next((n for n in self._nodes if n.name == name), None)
        if node is None:
            if self.curve and not (self.keys_dir / f"{name}.key").exists():
                from wind_actors.runtime import generate_keys
                generate_keys(name, self.keys_dir)
            node = Node.start(self._node_config(name, {"controller@local": self.controller_node.address}))
            self._nodes.append(node)
            node.connect("controller@local")
        client = Client(node, "controller@local", token or self.tokens.get(tenant, ""), timeout=60.0)
        self._clients.append(client)
        return client

    def stop(self) -> None:
        """Stop the agents, the controller and every node; remove a temporary workdir."""
        for agent in self.agents.values():
            agent.stop()
        if self.controller is not None:
            self.controller.stop()
        for node in reversed(self._nodes):
            node.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _wait_for(condition: Any, timeout: float, what: str) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)  # polling a condition with a deadline
