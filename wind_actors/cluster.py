"""An in-process Wind cluster: a controller and its agents in one process, for tests and embedding.

Each part still runs on its own node and talks over ZeroMQ on 127.0.0.1 (CURVE on, with keys
generated into a temporary directory and each node given its own trust folder by role, see
:mod:`wind_actors.keyring`), so it behaves as the multi-process system does; only the OS
processes are saved. Example::

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

from wind_actors.testing import wait_for
from wind_actors.agent import Agent
from wind_actors.client import Client
from wind_actors.config import AgentConfig, ControllerConfig, NodeConfig
from wind_actors.controller import Controller
from wind_actors.keyring import Keyring, role_of_name

__all__ = ["Cluster", "SiteSpec", "ProcessCluster", "free_port"]


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
        self.keyring = Keyring(self.keys_dir)
        self._planned = ["controller@local", "operator@ops", *(f"client@{t}" for t in tokens)]
        self.controller_node: Any = None
        self.controller: Controller | None = None
        self.agents: dict[str, Agent] = {}
        self._clients: list[Client] = []
        self._nodes: list[Any] = []
        self._max_frame_bytes = 1 << 20

    @classmethod
    def start(cls, sites: list[SiteSpec], *, tenants: dict[str, str],
              workdir: str | Path | None = None, curve: bool = True, tick: float = 0.2,
              site_timeout: float = 3.0, lost_site_grace: float = 30.0,
              max_frame_bytes: int = 1 << 20) -> Cluster:
        """Start a controller and one agent per site, and wait until every site has reported.

        Args:
            sites: the sites.
            tenants: ``tenant -> token``.
            workdir: where keys and the store go (default: a temporary directory, removed on
                stop).
            curve: CURVE between the nodes (default on).
            tick: the controller's reconciliation interval.
            site_timeout: seconds before a silent site is down.
            lost_site_grace: seconds a site stays down before its VMs move elsewhere (0: never).
            max_frame_bytes: every node's frame limit (small ones test chunking and paging).

        Returns:
            The running cluster.
        """
        from wind_actors.runtime import Node

        own = workdir is None
        path = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="wind-cluster-"))
        cluster = cls(path, own, curve, dict(tenants))
        cluster._max_frame_bytes = max_frame_bytes
        try:
            names = ["controller@local", *(f"agent@{s.name}" for s in sites),
                     *(f"client@{t}" for t in tenants)]
            cluster._planned = [*names, "operator@ops"]
            if curve:
                for name in names:
                    cluster.keyring.add(name)
                cluster.keyring.publish()
            cnode = Node.start(cluster._node_config("controller@local"))
            cluster._nodes.append(cnode)
            cluster.controller_node = cnode
            cluster.controller = Controller.start(cnode, ControllerConfig(
                store=str(path / "wind.db"), tenants=dict(tenants), tick=tick, site_timeout=site_timeout,
                lost_site_grace=lost_site_grace))
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
                wait_for(f"{len(sites)} site(s) to report", lambda: len(client.sites()) == len(sites), 30.0)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _node_config(self, name: str, peers: dict[str, str] | None = None) -> NodeConfig:
        if self.curve:
            self.keyring.add(name)
            self.keyring.publish()  # the controller's folder learns a node added later
            return NodeConfig(name=name, keys_dir=str(self.keyring.trust_dir(name)), peers=dict(peers or {}),
                              max_frame_bytes=self._max_frame_bytes)
        # without CURVE nothing proves a role, so the insecure role table takes the names this
        # cluster plans (fixed at start: later nodes are clients of its tenants or operator@ops)
        roles = {n: ":".join(filter(None, role_of_name(n))) for n in self._planned}
        return NodeConfig(name=name, insecure=True, peers=dict(peers or {}), roles=roles,
                          max_frame_bytes=self._max_frame_bytes)

    def client(self, tenant: str, *, token: str | None = None, key_of: str | None = None) -> Client:
        """A client acting for ``tenant`` (with its token unless ``token`` is given); one node per
        tenant, shared by the clients of that tenant, stopped with the cluster.

        Args:
            tenant: the tenant.
            token: another token to present (tests of stolen tokens).
            key_of: run the client on the node (key) of this tenant instead of ``tenant``'s own.
        """
        client = Client(self._client_node(f"client@{key_of or tenant}"), "controller@local",
                        token or self.tokens.get(tenant, ""), timeout=60.0)
        self._clients.append(client)
        return client

    def operator(self, name: str = "ops") -> Client:
        """A client on operator node ``operator@NAME`` (manages the pool: remove sites)."""
        client = Client(self._client_node(f"operator@{name}"), "controller@local", "", timeout=60.0)
        self._clients.append(client)
        return client

    def _client_node(self, name: str) -> Any:
        from wind_actors.runtime import Node

        node = next((n for n in self._nodes if n.name == name), None)
        if node is None:
            node = Node.start(self._node_config(name, {"controller@local": self.controller_node.address}))
            self._nodes.append(node)
            node.connect("controller@local")
        return node

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


class ProcessCluster:
    """A controller and agents as separate OS processes on 127.0.0.1, for the demo, tests and
    benchmarks: it writes their configs and CURVE keys into ``workdir``, starts
    ``wind controller`` / ``wind agent`` processes, and stops every process it started, by PID.

    Args:
        workdir: where configs, keys, the store and the process logs go.
        python: the interpreter that runs ``wind`` (default: this one).
    """

    def __init__(self, workdir: str | Path, *, python: str | None = None) -> None:
        import sys

        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.keys_dir = self.workdir / "keys"
        self.keyring = Keyring(self.keys_dir)
        self.logs_dir = self.workdir / "logs"
        self.logs_dir.mkdir(exist_ok=True)
        self.python = python or sys.executable
        self.procs: dict[str, Any] = {}
        self.configs: dict[str, Path] = {}

    # -- configs ----------------------------------------------------------------------------------

    def ensure_keys(self, *names: str) -> None:
        """Generate a CURVE key pair for each node name that has none yet (its role from its
        name: ``controller@``, ``agent@SITE``, ``client@TENANT``, ``operator@``), and bring every
        node's trust folder up to date (:mod:`wind_actors.keyring`)."""
        for name in names:
            self.keyring.add(name)
        self.keyring.publish()

    def trust_dir(self, name: str) -> Path:
        """The trust folder (``keys_dir``) node ``name`` runs with."""
        return self.keyring.trust_dir(name)

    def node_section(self, name: str, controller_port: int, *, controller: bool = False) -> str:
        """The ``[node]`` text of one node on 127.0.0.1 with this cluster's keys.

        Args:
            name: the node's name (``controller@hq``, ``agent@SITE``, ``client@TENANT``).
            controller_port: the controller's port.
            controller: this is the controller: it binds that port and has no peers.
        """
        bind = controller_port if controller else 0
        self.ensure_keys(name)
        text = (f'[node]\nname = "{name}"\nbind = "tcp://127.0.0.1:{bind}"\n'
                f'keys_dir = "{self.trust_dir(name)}"\n')
        if controller:
            return text
        return text + f'[node.peers]\n"controller@hq" = "tcp://127.0.0.1:{controller_port}"\n'

    def write_config(self, name: str, text: str) -> Path:
        """Write a config file ``NAME.toml`` into the workdir and remember it under ``name``."""
        path = self.workdir / f"{name}.toml"
        path.write_text(text, encoding="utf-8")
        self.configs[name] = path
        return path

    # -- processes ----------------------------------------------------------------------------------

    def start(self, name: str, role: str, *, timeout: float = 30.0) -> Any:
        """Start ``wind ROLE --config NAME.toml`` and wait for its ``ready`` line.

        Args:
            name: the config's name (see :meth:`write_config`).
            role: ``controller`` or ``agent``.
            timeout: seconds to wait until it serves.

        Returns:
            The ``subprocess.Popen``.

        Raises:
            RuntimeError: it exited or did not get ready in time (its log is quoted).
        """
        import subprocess
        import time

        log = open(self.logs_dir / f"{name}.log", "ab")
        proc = subprocess.Popen([self.python, "-m", "wind_actors.cli.main", "--log-level", "INFO",
                                 role, "--config", str(self.configs[name])],
                                stdout=subprocess.PIPE, stderr=log, cwd=str(self.workdir))
        log.close()
        self.procs[name] = proc
        deadline = time.monotonic() + timeout
        import selectors

        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    self.kill(name)
                    raise RuntimeError(f"{role} {name} not ready within {timeout} s; log:\n{self.log(name)}")
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"{role} {name} exited with {proc.wait()}; log:\n{self.log(name)}")
                if line.startswith(b"ready "):
                    return proc

    def log(self, name: str, tail: int = 40) -> str:
        """Returns: the last lines of a process's log."""
        path = self.logs_dir / f"{name}.log"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        return "\n".join(lines[-tail:])

    def kill(self, name: str) -> None:
        """SIGKILL one process (as a crash would) and reap it."""
        import signal

        proc = self.procs.pop(name, None)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)

    def terminate(self, name: str, timeout: float = 30.0) -> int | None:
        """SIGTERM one process and wait for a clean exit (SIGKILL after ``timeout``).

        Returns:
            Its exit code.
        """
        import signal
        import subprocess

        proc = self.procs.pop(name, None)
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        return proc.returncode

    def stop_all(self) -> dict[str, int | None]:
        """Terminate every process started here, agents first. Returns: exit codes by name."""
        order = sorted(self.procs, key=lambda n: n.startswith("controller"))
        return {name: self.terminate(name) for name in order}

    def wind(self, *args: str, config: str | None = None, timeout: float = 600.0) -> Any:
        """Run the ``wind`` CLI (``--config`` from the named config) and capture its output.

        Returns:
            The ``subprocess.CompletedProcess`` (text).
        """
        import subprocess

        argv = [self.python, "-m", "wind_actors.cli.main", "--log-level", "WARNING", *args]
        if config is not None:
            argv += ["--config", str(self.configs[config])]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=str(self.workdir))


def free_port() -> int:
    """Returns: a TCP port on 127.0.0.1 that was free a moment ago."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
