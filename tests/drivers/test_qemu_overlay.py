"""A real QEMU guest on the Wind overlay answers pings from a VM at another site.

Site A is the ROOT namespace, where libvirtd runs: its realizer builds the
tenant bridge ``wb-...`` and VXLAN device there, and libvirt plugs the guest's
virtio NIC into that bridge (``<interface type='bridge'>``, a tap). Site B is a
network namespace from :class:`overlay.testing.NamespaceLab` with a veth "VM"
on its own tenant bridge. The two sites' VTEPs meet on the lab's underlay
bridge, which a veth joins to the root namespace. ICMP goes from B's veth
VM over real VXLAN to the QEMU guest (TCG) and back.

The guest is helper D's tiny Debian-kernel + busybox guest
(:mod:`drivers.testing.guest`) with a networking variant built here: its
initramfs also carries ``virtio_net`` and the modules it needs (resolved from
``modules.dep``), and its ``/init`` loads them and configures ``eth0`` from the
kernel command line (``wind.ip=ADDR/PREFIX wind.mtu=N``).

Needs root and libvirtd (started when it is not running and stopped only if
this module started it). In the root namespace the test touches only what it
created: a veth to the lab's underlay and one overlay segment with a VNI drawn
at random from the top of the range, changed with :meth:`Realizer.apply` (never
:meth:`Realizer.realize` or ``teardown``, which would claim every Wind device
in the namespace).
"""

from __future__ import annotations

import gzip
import hashlib
import ipaddress
import lzma
import os
import queue
import re
import secrets
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers import EventKind, NicSpec, VMEvent, VMSpec, start_driver_actor
from drivers.libvirt import LibvirtDriver
from drivers.testing.daemons import ensure_libvirtd
from drivers.testing.guest import GuestBuildError, find_kernel, newc_archive, wait_for_marker
from overlay import Allocations, Nic, Realizer, Site, SiteState, TenantNetwork, diff, diff_plans, plan
from overlay.testing import NamespaceLab

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="real QEMU under qemu:///system and netns need root"),
]

NET_MARKER = "WIND-GUEST: net"
_BUSYBOX = Path("/bin/busybox")
_NET_MODULES = ("virtio_pci", "virtio_net")
_CMDLINE = "console=ttyS0 panic=-1 quiet loglevel=3 rdinit=/init"

# Loads virtio (PCI + net) in dependency order, waits for eth0, then brings it
# up with the address and MTU from the kernel command line; the line printed
# last tells the test the guest is on the network.
_INIT = f"""#!/bin/busybox sh
export PATH=/bin
/bin/busybox --install -s /bin 2>/dev/null
mkdir -p /proc /sys /dev /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /lib/modules/load-order); do insmod "/lib/modules/$m"; done
addr=$(sed -n 's/.*wind\\.ip=\\([^ ]*\\).*/\\1/p' /proc/cmdline)
mtu=$(sed -n 's/.*wind\\.mtu=\\([0-9]*\\).*/\\1/p' /proc/cmdline)
n=0
while [ ! -e /sys/class/net/eth0 ] && [ $n -lt 300 ]; do usleep 100000; n=$((n+1)); done
ip link set lo up
[ -n "$mtu" ] && ip link set eth0 mtu "$mtu"
ip addr add "$addr" dev eth0
ip link set eth0 up
echo "{NET_MARKER} eth0 $addr mac $(cat /sys/class/net/eth0/address) mtu $(cat /sys/class/net/eth0/mtu)"
while true; do sleep 3600; done
"""


# --------------------------------------------------------------------------- the networking guest


def _load_order(version: str, wanted: tuple[str, ...]) -> list[Path]:
    """Module files for ``wanted`` and everything they depend on, dependencies first."""
    root = Path("/lib/modules") / version
    deps: dict[str, list[str]] = {}
    for line in (root / "modules.dep").read_text().splitlines():
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
    by_name = {re.sub(r"\.ko(\.\w+)?$", "", Path(m).name).replace("-", "_"): m for m in deps}
    order: list[str] = []

    def visit(mod: str) -> None:
        if mod in order:
            return
        for dep in deps[mod]:
            visit(dep)
        order.append(mod)

    for name in wanted:
        if name not in by_name:
            raise GuestBuildError(f"kernel {version} has no module {name}; the guest needs it built as a module")
        visit(by_name[name])
    return [root / m for m in order]


def _module_bytes(path: Path) -> bytes:
    # busybox insmod cannot decompress; newer Debian kernels ship .ko.xz.
    data = path.read_bytes()
    return lzma.decompress(data) if path.name.endswith(".xz") else data


def build_net_guest() -> tuple[Path, Path]:
    """The guest kernel and an initramfs with virtio_net and a networking /init (cached by content).

    Returns:
        ``(kernel, initrd)`` in a world-traversable cache directory (QEMU runs as libvirt-qemu).
    """
    kernel = find_kernel()
    if not _BUSYBOX.exists():
        raise GuestBuildError(f"{_BUSYBOX} not found; install Debian package busybox-static")
    version = kernel.name.removeprefix("vmlinuz-")
    modules = _load_order(version, _NET_MODULES)
    digest = hashlib.sha256(_INIT.encode())
    for part in (kernel, _BUSYBOX, *modules):
        digest.update(part.read_bytes())
    cache = Path(os.environ.get("WIND_GUEST_CACHE", "/var/tmp/wind-guest"))
    target = cache / f"netguest-{digest.hexdigest()[:16]}"
    kernel_out, initrd_out = target / "vmlinuz", target / "initrd.gz"
    if kernel_out.exists() and initrd_out.exists():
        return kernel_out, initrd_out
    names = [re.sub(r"\.xz$", "", m.name) for m in modules]
    entries = [
        ("bin", stat.S_IFDIR | 0o755, b"", (0, 0)),
        ("dev", stat.S_IFDIR | 0o755, b"", (0, 0)),
        ("dev/console", stat.S_IFCHR | 0o600, b"", (5, 1)),
        ("lib", stat.S_IFDIR | 0o755, b"", (0, 0)),
        ("lib/modules", stat.S_IFDIR | 0o755, b"", (0, 0)),
        ("lib/modules/load-order", stat.S_IFREG | 0o644, ("\n".join(names) + "\n").encode(), (0, 0)),
        ("bin/busybox", stat.S_IFREG | 0o755, _BUSYBOX.read_bytes(), (0, 0)),
        ("bin/sh", stat.S_IFLNK | 0o777, b"busybox", (0, 0)),
        ("init", stat.S_IFREG | 0o755, _INIT.encode(), (0, 0)),
    ]
    entries += [(f"lib/modules/{n}", stat.S_IFREG | 0o644, _module_bytes(m), (0, 0)) for n, m in zip(names, modules)]
    tmp = cache / f".netbuild-{os.getpid()}-{time.monotonic_ns()}"
    tmp.mkdir(parents=True, exist_ok=True)
    for d in (cache, tmp):
        d.chmod(0o755)
    (tmp / "vmlinuz").write_bytes(kernel.read_bytes())  # a copy: libvirt relabels what it boots
    (tmp / "initrd.gz").write_bytes(gzip.compress(newc_archive(entries), mtime=0))
    for f in ("vmlinuz", "initrd.gz"):
        (tmp / f).chmod(0o644)
    try:
        tmp.rename(target)
    except OSError:  # a concurrent build won; its output is identical
        subprocess.run(["rm", "-rf", str(tmp)], check=False)
    return kernel_out, initrd_out


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def libvirtd() -> Iterator[None]:
    handle = ensure_libvirtd()
    yield
    handle.stop()


def _root_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if line.strip()}


@pytest.fixture
def lab_with_root_site() -> Iterator[tuple[NamespaceLab, Site, str]]:
    """A NamespaceLab whose underlay bridge also reaches the root namespace through one veth.

    Yields ``(lab, site_a, root_veth)``: site A's VTEP address lives on that veth in the root namespace.
    """
    octet = 200 + secrets.randbelow(50)  # a /24 the host does not route, different per run
    net = ipaddress.ip_network(f"172.30.{octet}.0/24")
    root_veth = f"wq{secrets.token_hex(3)}"  # not a Wind name: the realizer never touches it
    with NamespaceLab(underlay_cidr=str(net)) as lab:
        subprocess.run(["ip", "link", "add", root_veth, "type", "veth", "peer", "name", "rootul",
                        "netns", lab.underlay_netns], check=True)
        try:
            lab.run(lab.underlay_netns, ["ip", "link", "set", "rootul", "master", "ulbr", "up"])
            site_a_ip = str(net.network_address + 254)
            subprocess.run(["ip", "addr", "add", f"{site_a_ip}/{net.prefixlen}", "dev", root_veth], check=True)
            subprocess.run(["ip", "link", "set", root_veth, "up"], check=True)
            yield lab, Site("a", site_a_ip), root_veth
        finally:
            subprocess.run(["ip", "link", "del", root_veth], check=False, capture_output=True)


def _destroy_domain(name: str) -> None:
    """Leave no domain behind if the test failed half-way (plain libvirt, teardown only)."""
    import libvirt

    conn = libvirt.open("qemu:///system")
    try:
        dom = conn.lookupByName(name)
        if dom.isActive():
            dom.destroy()
        dom.undefine()
    except libvirt.libvirtError:
        pass
    finally:
        conn.close()


def _wait_for_event(q: queue.Queue, vm: str, kind: EventKind, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            item = q.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if isinstance(item, VMEvent) and item.vm == vm and item.kind == kind:
            return
    raise AssertionError(f"no {kind.value} event for {vm} within {timeout} s")


# --------------------------------------------------------------------------- the test


@pytest.mark.slow
def test_a_vm_at_another_site_pings_a_real_qemu_guest_across_vxlan(libvirtd, lab_with_root_site) -> None:
    lab, site_a, root_veth = lab_with_root_site
    site_b = lab.add_site("b")
    before = _root_links()
    guest_mac, vm_mac = "52:54:00:77:00:01", "52:54:00:77:00:02"
    network = TenantNetwork("acme", "web", "10.77.0.0/24")
    # A VNI far from where planners start, so the root namespace's segment
    # cannot be another test's (Wind devices are named by VNI).
    previous = Allocations(next_vni=0x800000 + secrets.randbelow(0x700000))
    nics = [Nic("qemu-guest", "a", "acme", "web", guest_mac), Nic("b1", "b", "acme", "web", vm_mac)]
    the_plan = plan([site_a, site_b], [network], nics, previous=previous)
    seg_a = the_plan.sites["a"].segment_for("acme", "web")
    assert seg_a is not None and seg_a.bridge not in before

    realizer_a = Realizer()  # the root namespace: where libvirtd puts the guest's tap
    realizer_b = Realizer(lab.site_netns("b"))
    name = f"wind-qemu-ov-{uuid.uuid4().hex[:8]}"
    ref = None
    try:
        realizer_a.apply(diff_plans(None, the_plan)["a"])
        realizer_b.realize(the_plan.sites["b"])
        mtu = realizer_a.segment_mtu(site_a.underlay_ip)

        lab.add_vm("b1", "b", mac=vm_mac, bridge=the_plan.attach_point("b", "acme", "web"),
                   address=the_plan.address_of("acme", "web", vm_mac).interface, mtu=mtu)

        kernel, initrd = build_net_guest()
        guest_addr = the_plan.address_of("acme", "web", guest_mac)
        log = Path("/var/tmp/wind-guest/console") / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        spec = VMSpec(name=name, vcpus=1, memory_mb=128, kernel=str(kernel), initrd=str(initrd),
                      cmdline=f"{_CMDLINE} wind.ip={guest_addr.interface} wind.mtu={mtu}", console_log=str(log),
                      nics=(NicSpec("web", guest_mac, bridge=the_plan.attach_point("a", "acme", "web")),))
        ref = start_driver_actor(lambda: LibvirtDriver(uri="qemu:///system", name="qemu-overlay",
                                                       domain_type="qemu"))
        proxy = ref.proxy()
        events: queue.Queue = queue.Queue()
        proxy.subscribe(events.put).get(timeout=30)
        proxy.define(spec).get(timeout=120)
        proxy.start_vm(name).get(timeout=120)
        _wait_for_event(events, name, EventKind.STARTED)
        wait_for_marker(log, f"{NET_MARKER} eth0 {guest_addr.interface} mac {guest_mac}", timeout=120)

        # The guest's tap is a port of site A's tenant bridge.
        ports = subprocess.run(["ip", "-o", "link", "show", "master", seg_a.bridge], capture_output=True,
                               text=True, check=True).stdout
        assert seg_a.vxlan in ports and len(ports.splitlines()) == 2, ports

        deadline = time.monotonic() + 30  # the first probes may go while the guest's ARP settles
        while not lab.ping("b1", guest_addr.ip, count=1, wait=1.0):
            assert time.monotonic() < deadline, f"the QEMU guest at {guest_addr.ip} never answered"
        assert lab.ping("b1", guest_addr.ip, count=3, interval=0.2)
        neigh = lab.run(lab.vm_netns("b1"), ["ip", "neigh", "show", guest_addr.ip]).stdout
        assert f"lladdr {guest_mac}" in neigh  # the answer came from the guest's own NIC

        proxy.destroy(name).get(timeout=60)
        proxy.undefine(name).get(timeout=60)
    finally:
        if ref is not None:
            ref.stop()
        _destroy_domain(name)
        realizer_a.apply(diff(the_plan.sites["a"], SiteState.empty("a", site_a.underlay_ip)))
        realizer_a.close()
        realizer_b.close()

    after = _root_links()
    assert seg_a.bridge not in after and seg_a.vxlan not in after
    assert before - after == set(), f"devices that were not ours went away: {before - after}"
    assert root_veth in after  # still there until the fixture deletes it
