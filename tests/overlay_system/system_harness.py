"""A whole Wind system on one machine for the overlay system tests and ``bench/overlay_converge.py``.

Sites are network namespaces of a :class:`overlay.testing.NamespaceLab` joined by its underlay
bridge. A real controller process and one real agent process per site run ``wind controller`` /
``wind agent`` (CURVE keys generated for every node); each agent's config names its site's
namespace (``overlay_netns``) and VTEP address (``underlay_ip``), so its realizer works there
exactly as on a real site. VMs use the sim driver; their NICs are stood in for by veth endpoints
in namespaces of their own, plugged into the site's tenant bridge (the attach point the
controller gave the VM) with the MAC and address from ``wind app status --json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from overlay.testing import NamespaceLab
from wind_actors import testing
from wind_actors.keyring import Keyring

WIND = [sys.executable, "-m", "wind_actors.cli.main"]
WIND_DEVICE = re.compile(r"^w[bx]-[0-9a-f]{6}$")
CLIENT_NAMES = 1  # every `wind` call is a new client process under the same node name
TOKENS = {"acme": "acme-overlay-test-token-0001", "globex": "globex-overlay-test-token-0002"}
OPERATOR = "operator"
"""Pass as the tenant of :meth:`WindSystem.wind` to run the CLI as the operator node."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """:func:`wind_actors.testing.wait_for` with this harness's argument order."""
    return testing.wait_for(what, predicate, timeout, interval)


class Process:
    """A ``wind`` subcommand in its own process; output goes to a log file."""

    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        self.name, self.argv, self.log = name, argv, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        out = open(self.log, "ab")
        env = dict(os.environ, WIND_LOG_FORMAT="json", PYTHONUNBUFFERED="1")
        self._offset = self.log.stat().st_size if self.log.exists() else 0
        self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, start_new_session=True)
        out.close()
        return self

    def text(self) -> str:
        return self.log.read_text(errors="replace")[self._offset:]

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.text()[-3000:]}")
            return "ready " in self.text()
        wait_for(ready, timeout, f"{self.name} to be ready")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


class WindSystem:
    """A controller, ``sites`` agents in lab namespaces, and client configs for both tenants."""

    def __init__(self, lab: NamespaceLab, workdir: Path, sites: tuple[str, ...] = ("a", "b", "c"),
                 report_interval: float = 0.5) -> None:
        self.lab, self.dir = lab, workdir
        self.keyring = Keyring(workdir / "keys")
        self.sites = sites
        self.controller_port = free_port()
        self.agents: dict[str, Process] = {}
        self.underlay: dict[str, str] = {}
        self._calls = 0
        for name in ["controller@hq", "operator@hq", *(f"agent@{s}" for s in sites)]:
            self.keyring.add(name)
        for tenant in TOKENS:
            for i in range(CLIENT_NAMES):
                self.keyring.add(f"c{i}@{tenant}", "client", tenant)
        self.keyring.publish()
        peers = f'[node.peers]\n"controller@hq" = "tcp://127.0.0.1:{self.controller_port}"\n'
        (workdir / "controller.toml").write_text(
            f'[node]\nname = "controller@hq"\nbind = "tcp://127.0.0.1:{self.controller_port}"\n'
            f'keys_dir = "{self.keyring.trust_dir("controller@hq")}"\n\n[controller]\nstore = "wind.db"\n'
            'site_timeout = 3.0\ntick = 0.2\n'
            "[controller.tenants]\n" + "".join(f'{t} = "{tok}"\n' for t, tok in TOKENS.items()))
        self._peers = peers
        for site in sites:
            self.underlay[site] = lab.add_site(site).underlay_ip
            (workdir / f"agent-{site}.toml").write_text(
                f'[node]\nname = "agent@{site}"\nbind = "tcp://127.0.0.1:0"\n'
                f'keys_dir = "{self.keyring.trust_dir(f"agent@{site}")}"\n{peers}\n'
                f'[agent]\nsite = "{site}"\ncontroller = "controller@hq"\ndriver = "sim"\n'
                f"report_interval = {report_interval}\n"
                f'underlay_ip = "{self.underlay[site]}"\noverlay_netns = "{lab.site_netns(site)}"\n'
                "[agent.driver_options]\nhosts = 4\nhost_cpus = 8\nhost_memory_mb = 16384\nhost_disk_gb = 100\n")
        self.controller = Process("controller", [*WIND, "controller", "--config", str(workdir / "controller.toml")],
                                  workdir / "controller.log")

    def start(self) -> WindSystem:
        self.controller.start()
        for site in self.sites:
            self.agents[site] = Process(f"agent {site}", [*WIND, "agent", "--config",
                                                          str(self.dir / f"agent-{site}.toml")],
                                        self.dir / f"agent-{site}.log").start()
        self.controller.wait_ready()
        for agent in self.agents.values():
            agent.wait_ready()
        wait_for(lambda: len(self.sites_table()) == len(self.sites), 30, "every site in the pool")
        return self

    def restart_agent(self, site: str) -> Process:
        self.agents[site].stop()
        return self.agents[site].start()

    def close(self) -> None:
        for agent in self.agents.values():
            agent.stop()
        self.controller.stop()

    # -- the CLI, as a tenant ---------------------------------------------------------------------------

    def client_config(self, tenant: str) -> Path:
        """A client config for ``tenant``, or for the operator when ``tenant`` is ``operator``."""
        self._calls += 1
        name = "operator@hq" if tenant == OPERATOR else f"c{self._calls % CLIENT_NAMES}@{tenant}"
        token = "" if tenant == OPERATOR else f'token = "{TOKENS[tenant]}"\n'
        path = self.dir / f"client-{tenant}-{self._calls}.toml"
        path.write_text(f'[node]\nname = "{name}"\nbind = "tcp://127.0.0.1:0"\n'
                        f'keys_dir = "{self.keyring.trust_dir(name)}"\n{self._peers}\n'
                        f'[client]\ncontroller = "controller@hq"\n{token}timeout = 30.0\n')
        return path

    def run_wind(self, tenant: str, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run ``wind ARGS --config CLIENT --json`` as ``tenant``."""
        return subprocess.run([*WIND, *args, "--config", str(self.client_config(tenant)), "--json"],
                              capture_output=True, text=True, timeout=timeout)

    def wind(self, tenant: str, *args: str, timeout: float = 120.0) -> Any:
        """Run ``wind ARGS --json`` as ``tenant``, demand success, and return the parsed JSON."""
        result = self.run_wind(tenant, *args, timeout=timeout)
        assert result.returncode == 0, f"wind {' '.join(args)} failed:\n{result.stdout}\n{result.stderr[-3000:]}"
        return json.loads(result.stdout)

    def deploy(self, tenant: str, name: str, descriptor: str) -> Any:
        path = self.dir / f"{tenant}-{name}.yaml"
        path.write_text(descriptor)
        return self.wind(tenant, "app", "deploy", str(path))

    def status(self, tenant: str, app: str) -> dict[str, Any]:
        data = self.wind(tenant, "app", "status", app)
        return data[0] if isinstance(data, list) else data

    def sites_table(self) -> list[dict[str, Any]]:
        data = self.wind("acme", "sites")
        return data if isinstance(data, list) else data.get("sites", [])

    # -- the kernel, per site ---------------------------------------------------------------------------

    def wind_devices(self, site: str) -> dict[str, int]:
        """``{name: ifindex}`` of every Wind device in a site's namespace."""
        out = self.lab.run(self.lab.site_netns(site), ["ip", "-o", "link", "show"]).stdout
        devices = {}
        for line in out.splitlines():
            index, name = line.split(":")[0:2]
            name = name.strip().split("@")[0]
            if WIND_DEVICE.match(name):
                devices[name] = int(index)
        return devices

    def fdb(self, site: str, vxlan: str) -> set[tuple[str, str]]:
        """``{(mac, dst)}`` remote entries of a VXLAN device at a site."""
        out = self.lab.run(self.lab.site_netns(site), ["bridge", "fdb", "show", "dev", vxlan], check=False).stdout
        return {(m.group(1), m.group(2)) for m in re.finditer(r"^([0-9a-f:]{17}) dst (\S+)", out, re.M)}

    def plug_vms(self, app: dict[str, Any], timeout: float = 15.0) -> dict[str, str]:
        """Stand in for every VM of an app with a veth in its own namespace, on its attach point.

        Returns:
            ``{vm name: overlay ip}``.
        """
        ips = {}
        for vm in app["vms"]:
            (nic,) = vm["overlay"]
            wait_for(lambda: nic["bridge"] in self.wind_devices(vm["site"]), timeout,
                     f"bridge {nic['bridge']} at site {vm['site']}")
            self.lab.add_vm(vm["name"].replace(".", "-")[-40:], vm["site"], mac=nic["mac"], bridge=nic["bridge"],
                            address=f"{nic['ip']}/{nic['prefixlen']}", mtu=self.lab.underlay_mtu - 50)
            ips[vm["name"]] = nic["ip"]
        return ips

    @staticmethod
    def lab_vm(vm_name: str) -> str:
        return vm_name.replace(".", "-")[-40:]


@contextlib.contextmanager
def running_system(underlay_cidr: str, workdir: Path) -> Iterator[WindSystem]:
    """A fresh lab on ``underlay_cidr`` with a started :class:`WindSystem`, torn down on exit."""
    with NamespaceLab(underlay_cidr=underlay_cidr) as lab:
        wind = WindSystem(lab, workdir)
        try:
            yield wind.start()
        finally:
            wind.close()
