"""A namespace lab: overlay sites and VMs as Linux network namespaces on one machine (needs root).

The lab builds what the overlay tests and ``bench/overlay.py`` need: an
underlay namespace holding a bridge, one namespace per site joined to it by
a veth (the site's VTEP address lives on ``ul0`` there), and one namespace per
"VM" whose ``eth0`` is a veth whose peer is enslaved to the site's tenant
bridge. A :class:`~overlay.Realizer` given :meth:`NamespaceLab.site_netns`
then realizes a site exactly as an agent would.

Every namespace name starts with ``wl<pid>x<random>-``, so parallel labs never
collide; :meth:`NamespaceLab.close` deletes them all (and kills processes the
lab spawned), and a new lab also sweeps namespaces left behind by dead
processes. It drives iproute2's ``ip`` (and ``ping``) through subprocess:
test scaffolding should be as plain as what an operator would type.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import subprocess
from collections.abc import Sequence

from ._model import Site

__all__ = ["NamespaceLab"]

_LAB_NS = re.compile(r"^wl(\d+)x[0-9a-f]+-")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def sweep_stale_namespaces() -> list[str]:
    """Delete lab namespaces whose creating process is gone; returns their names."""
    removed = []
    for line in _ip("netns", "list").stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        match = _LAB_NS.match(name)
        if match and not os.path.exists(f"/proc/{match.group(1)}"):
            _ip("netns", "del", name, check=False)
            removed.append(name)
    return removed


class NamespaceLab:
    """Sites and VMs as network namespaces joined by an underlay bridge.

    Args:
        underlay_cidr: addresses for site VTEPs (private to the lab's underlay namespace).
        underlay_mtu: MTU of the underlay veths.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, underlay_cidr: str = "172.31.0.0/24", underlay_mtu: int = 1500) -> None:
        sweep_stale_namespaces()
        self.prefix = f"wl{os.getpid()}x{secrets.token_hex(3)}"
        self.underlay_mtu = underlay_mtu
        self._net = ipaddress.ip_network(underlay_cidr)
        self._namespaces: list[str] = []
        self._sites: dict[str, Site] = {}
        self._vms: dict[str, tuple[str, str]] = {}  # vm -> (vm netns, site)
        self._procs: list[subprocess.Popen[str]] = []
        self._counter = 0
        try:
            self.underlay_netns = self._add_netns("ul")
            self._exec(self.underlay_netns, "ip", "link", "add", "ulbr", "type", "bridge")
            self._exec(self.underlay_netns, "ip", "link", "set", "ulbr", "up")
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> NamespaceLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _add_netns(self, suffix: str) -> str:
        name = f"{self.prefix}-{suffix}"
        _ip("netns", "add", name)
        self._namespaces.append(name)
        self._exec(name, "ip", "link", "set", "lo", "up")
        return name

    def _exec(self, netns: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", netns, *cmd], check=check, capture_output=True, text=True)

    def _port_name(self) -> str:
        self._counter += 1
        return f"p{self._counter}"

    # -- sites -------------------------------------------------------------------

    def add_site(self, name: str) -> Site:
        """Create a site namespace with its VTEP address on ``ul0``; returns the :class:`~overlay.Site`."""
        netns = self._add_netns(f"s-{name}")
        port = self._port_name()
        ip = str(self._net.network_address + len(self._sites) + 1)
        _ip("-n", self.underlay_netns, "link", "add", port, "mtu", str(self.underlay_mtu), "type", "veth",
            "peer", "name", "ul0", "mtu", str(self.underlay_mtu), "netns", netns)
        _ip("-n", self.underlay_netns, "link", "set", port, "master", "ulbr", "up")
        _ip("-n", netns, "addr", "add", f"{ip}/{self._net.prefixlen}", "dev", "ul0")
        _ip("-n", netns, "link", "set", "ul0", "up")
        site = self._sites[name] = Site(name, ip)
        return site

    def site_netns(self, name: str) -> str:
        """The namespace a site's realizer works in."""
        return f"{self.prefix}-s-{name}"

    def remove_site(self, name: str) -> None:
        """Delete a site's namespace (the whole site goes away, as on a site failure)."""
        netns = self.site_netns(name)
        _ip("netns", "del", netns, check=False)
        if netns in self._namespaces:
            self._namespaces.remove(netns)
        self._sites.pop(name, None)

    # -- VMs -----------------------------------------------------------------------

    def add_vm(self, vm: str, site: str, *, mac: str, bridge: str, address: str, mtu: int) -> str:
        """Create a VM namespace whose ``eth0`` (``mac``, ``address``) is a port of ``bridge`` at ``site``.

        Args:
            vm: VM name.
            site: the site whose bridge the NIC joins (it must be realized).
            mac: the NIC's MAC, as given to the planner.
            bridge: :meth:`~overlay.Plan.attach_point` for the NIC's network.
            address: ``ip/prefixlen`` from :meth:`~overlay.Plan.address_of`.
            mtu: the segment MTU (:meth:`~overlay.Realizer.segment_mtu`).

        Returns:
            The VM's namespace name.
        """
        netns = self._add_netns(f"v-{vm}")
        port = self._port_name()
        site_ns = self.site_netns(site)
        _ip("-n", site_ns, "link", "add", port, "mtu", str(mtu), "type", "veth", "peer", "name", "eth0",
            "address", mac, "mtu", str(mtu), "netns", netns)
        _ip("-n", site_ns, "link", "set", port, "master", bridge, "up")
        _ip("-n", netns, "addr", "add", address, "dev", "eth0")
        _ip("-n", netns, "link", "set", "eth0", "up")
        self._vms[vm] = (netns, site)
        return netns

    def remove_vm(self, vm: str) -> None:
        """Delete a VM's namespace (its veth pair goes with it)."""
        netns, _site = self._vms.pop(vm)
        _ip("netns", "del", netns, check=False)
        self._namespaces.remove(netns)

    def vm_netns(self, vm: str) -> str:
        """The namespace standing in for ``vm``."""
        return self._vms[vm][0]

    def ping(self, vm: str, ip: str, *, count: int = 1, interval: float = 0.2, wait: float = 1.0) -> bool:
        """``ping -c count`` from ``vm`` to ``ip``; True when every probe was answered."""
        result = self._exec(self.vm_netns(vm), "ping", "-q", "-n", "-c", str(count), "-i", str(interval),
                            "-W", str(wait), ip, check=False)
        return result.returncode == 0 and f"{count} received" in result.stdout

    def spawn_ping(self, vm: str, ip: str, *, count: int, interval: float = 0.05) -> subprocess.Popen[str]:
        """Start ``ping`` from ``vm`` in the background (killed on :meth:`close`); read its stdout when done."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.vm_netns(vm), "ping", "-n", "-c", str(count), "-i",
                                 str(interval), "-W", "1", ip], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        self._procs.append(proc)
        return proc

    def links(self, netns: str) -> list[str]:
        """Names of every device in a namespace."""
        out = _ip("-n", netns, "-o", "link", "show").stdout
        return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if line.strip()]

    def run(self, netns: str, cmd: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command inside a lab namespace."""
        return self._exec(netns, *cmd, check=check)

    def close(self) -> None:
        """Kill spawned processes and delete every namespace the lab created."""
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        self._procs.clear()
        for netns in reversed(self._namespaces):
            _ip("netns", "del", netns, check=False)
        self._namespaces.clear()
