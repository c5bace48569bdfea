"""The realizer: brings one site's kernel to its desired overlay state, idempotently.

It reads what exists, touches only devices named like Wind's (``wb-``/``wx-``
+ six hex digits, see :mod:`._names`), and changes only what differs, so
running it again against a realized site (an agent restart) changes nothing
and interrupts no traffic. Each segment is a bridge (the VM attach point) and
a unicast VXLAN device enslaved to it, with learning off and a static FDB:
one all-zero entry per remote member site (head-end replication of
broadcast/unknown traffic) and one entry per remote MAC.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog

from ._diff import SiteDiff
from ._model import FdbEntry, Segment, SiteState
from ._names import parse_owned, vxlan_name
from ._netlink import Kernel, Link
from .errors import RealizeError

VXLAN_OVERHEAD = 50
"""Bytes VXLAN over IPv4 adds to a frame (outer Ethernet 14 + IP 20 + UDP 8 + VXLAN 8)."""

VXLAN6_OVERHEAD = 70
"""The same over an IPv6 underlay (a 40-byte outer IP header)."""

VXLAN_PORT = 4789

log = structlog.get_logger("wind.overlay.realizer")


@dataclass
class RealizeReport:
    """What one realizer call changed in the kernel (empty lists: nothing).

    Attributes:
        created: devices created.
        changed: devices changed in place (MTU, master, up) or rebuilt.
        removed: devices deleted.
        fdb_added: FDB entries added.
        fdb_removed: FDB entries removed.
    """

    created: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    fdb_added: int = 0
    fdb_removed: int = 0

    @property
    def noop(self) -> bool:
        """Nothing was changed."""
        return not (self.created or self.changed or self.removed or self.fdb_added or self.fdb_removed)


class Realizer:
    """Applies :class:`~overlay.SiteState` and :class:`~overlay.SiteDiff` to one network namespace.

    Args:
        netns: the named network namespace to work in (``/var/run/netns/<name>``,
            from the agent's config); ``None`` for the agent's own namespace.
        underlay_mtu: MTU of the underlay path; ``None`` reads it from the device
            holding the site's underlay address. Segments get ``underlay_mtu - 50``.
        vxlan_port: UDP port of the VXLAN devices.

    Raises:
        NamespaceNotFound: ``netns`` does not exist.

    Not thread-safe: call it from one thread (the agent's overlay actor).
    Close it (or use it as a context manager) to release the netlink socket.
    """

    def __init__(self, netns: str | None = None, *, underlay_mtu: int | None = None,
                 vxlan_port: int = VXLAN_PORT) -> None:
        self.netns = netns
        self._underlay_mtu = underlay_mtu
        self._port = vxlan_port
        self._kernel = Kernel(netns)
        self._log = log.bind(netns=netns)
        self._lower_cache: dict[str, tuple[Link, int]] = {}

    def close(self) -> None:
        """Release the netlink socket; the kernel state stays as it is."""
        self._kernel.close()

    def __enter__(self) -> Realizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public operations ---------------------------------------------------

    def realize(self, desired: SiteState) -> RealizeReport:
        """Make the kernel match ``desired`` exactly, whatever it holds now.

        Use it when an agent starts and whenever it is unsure of the kernel
        state. Wind devices not in ``desired`` are deleted; other devices are
        never touched.

        Raises:
            RealizeError: the kernel refused a change, or the underlay address
                is not configured in the namespace.
        """
        report = RealizeReport()
        self._lower_cache.clear()
        links = self._kernel.links()
        fdb = self._kernel.fdb() if desired.segments else {}
        wanted: set[str] = set()
        for seg in desired.segments.values():
            wanted.update((seg.bridge, seg.vxlan))
            vx_index = self._ensure_devices(seg, links, report)
            self._sync_fdb(vx_index, seg.vxlan, fdb.get(vx_index, set()), seg.fdb, report)
        self._remove_owned(links, lambda name: name not in wanted, report)
        self._log.info("overlay.realized", site=desired.site, segments=len(desired.segments), **_summary(report))
        return report

    def apply(self, change: SiteDiff) -> RealizeReport:
        """Apply a pushed diff, touching only the segments it names.

        An updated segment whose devices are missing (someone deleted them)
        is rebuilt in full, so a diff never leaves a half-realized segment.

        Raises:
            RealizeError: the kernel refused a change.
        """
        report = RealizeReport()
        self._lower_cache.clear()
        links = self._links_for(change)
        doomed = {name for seg in change.remove for name in (seg.bridge, seg.vxlan)}
        self._remove_owned(links, doomed.__contains__, report)
        for upd in change.update:
            seg = upd.new
            vx = links.get(seg.vxlan)
            br = links.get(seg.bridge)
            if upd.recreate_vxlan or not self._healthy(seg, br, vx):
                index = self._ensure_devices(seg, links, report)
                current = self._kernel.fdb(index).get(index, set())
                self._sync_fdb(index, seg.vxlan, current, seg.fdb, report)
            else:
                assert vx is not None
                self._change_fdb(vx.index, seg.vxlan, upd.fdb_add, upd.fdb_remove, report)
        for seg in change.add:
            index = self._ensure_devices(seg, links, report)
            current = self._kernel.fdb(index).get(index, set()) if seg.vxlan in links else set()
            self._sync_fdb(index, seg.vxlan, current, seg.fdb, report)
        self._log.info("overlay.diff_applied", site=change.site, **_summary(report))
        return report

    def teardown(self) -> RealizeReport:
        """Delete every device Wind created in the namespace, and nothing else."""
        report = RealizeReport()
        self._remove_owned(self._kernel.links(), lambda name: True, report)
        self._log.info("overlay.torn_down", **_summary(report))
        return report

    def owned_devices(self) -> dict[str, int]:
        """``{name: ifindex}`` of every Wind device in the namespace (for status and tests)."""
        return {name: link.index for name, link in self._kernel.links().items() if parse_owned(name)}

    def fdb(self, vni: int) -> frozenset[FdbEntry]:
        """The remote FDB entries the kernel holds for ``vni``'s VXLAN device (empty if absent)."""
        link = self._kernel.link(vxlan_name(vni))
        if link is None:
            return frozenset()
        return frozenset(self._kernel.fdb(link.index).get(link.index, set()))

    def segment_mtu(self, underlay_ip: str) -> int:
        """MTU of segment devices (and the right MTU for VM NICs on them) at a site with ``underlay_ip``."""
        self._lower_cache.clear()
        return self._underlay(underlay_ip)[1]

    # -- internals -------------------------------------------------------------

    def _links_for(self, change: SiteDiff) -> dict[str, Link]:
        """The devices a diff names: fetched one by one for a small diff (the common
        push: one VM came or went), by a full dump for a large one."""
        segments = [*change.remove, *change.add, *(u.new for u in change.update)]
        if len(segments) > 8:
            return self._kernel.links()
        links: dict[str, Link] = {}
        for seg in segments:
            for name in (seg.bridge, seg.vxlan):
                link = self._kernel.link(name)
                if link is not None:
                    links[name] = link
        return links

    def _underlay(self, underlay_ip: str) -> tuple[Link, int]:
        """The device holding ``underlay_ip`` and the segment MTU; cached for one public call."""
        cached = self._lower_cache.get(underlay_ip)
        if cached is not None:
            return cached
        lower = self._kernel.link_of_address(underlay_ip)
        if lower is None:
            raise RealizeError(f"underlay address {underlay_ip} is not configured on any device here; "
                               "configure the site's VTEP address first", netns=self.netns)
        overhead = VXLAN6_OVERHEAD if ":" in underlay_ip else VXLAN_OVERHEAD
        result = self._lower_cache[underlay_ip] = (lower, (self._underlay_mtu or lower.mtu) - overhead)
        return result

    def _healthy(self, seg: Segment, br: Link | None, vx: Link | None) -> bool:
        return (br is not None and br.kind == "bridge" and vx is not None and vx.kind == "vxlan"
                and vx.vni == seg.vni and vx.local == seg.underlay_ip and vx.master == br.index)

    def _ensure_devices(self, seg: Segment, links: dict[str, Link], report: RealizeReport) -> int:
        """Create or fix the segment's bridge and VXLAN device; returns the VXLAN ifindex."""
        lower, mtu = self._underlay(seg.underlay_ip)
        k = self._kernel
        br = links.get(seg.bridge)
        if br is not None and br.kind != "bridge":
            k.delete(br.index, br.name)
            report.removed.append(br.name)
            br = None
        if br is None:
            br_index = k.add_bridge(seg.bridge, mtu)
            report.created.append(seg.bridge)
        else:
            br_index = br.index
            self._fix(br, mtu, None, report)
        vx = links.get(seg.vxlan)
        if vx is not None and (vx.kind != "vxlan" or vx.vni != seg.vni or vx.local != seg.underlay_ip
                               or vx.port != self._port or vx.learning or vx.lower != lower.index):
            # VXLAN identity attributes cannot be changed in place.
            k.delete(vx.index, vx.name)
            report.changed.append(vx.name)
            vx = None
        if vx is None:
            index = k.add_vxlan(seg.vxlan, vni=seg.vni, local=seg.underlay_ip, port=self._port,
                                lower=lower.index, master=br_index, mtu=mtu)
            if seg.vxlan not in report.changed:
                report.created.append(seg.vxlan)
            self._log.debug("overlay.segment_created", vni=seg.vni, tenant=seg.tenant, network=seg.network)
            return index
        self._fix(vx, mtu, br_index, report)
        return vx.index

    def _fix(self, link: Link, mtu: int, master: int | None, report: RealizeReport) -> None:
        attrs: dict[str, object] = {}
        if link.mtu != mtu:
            attrs["mtu"] = mtu
        if master is not None and link.master != master:
            attrs["master"] = master
        if not link.up:
            attrs["state"] = "up"
        if attrs:
            self._kernel.set_link(link.index, link.name, **attrs)
            report.changed.append(link.name)

    def _sync_fdb(self, index: int, name: str, current: set[FdbEntry], desired: frozenset[FdbEntry],
                  report: RealizeReport) -> None:
        self._change_fdb(index, name, desired - current, frozenset(current - desired), report)

    def _change_fdb(self, index: int, name: str, add: frozenset[FdbEntry], remove: frozenset[FdbEntry],
                    report: RealizeReport) -> None:
        # Remove first: a MAC that moved between sites must not point at both for long.
        for entry in remove:
            self._kernel.fdb_del(index, name, entry)
        for entry in add:
            self._kernel.fdb_add(index, name, entry)
        report.fdb_removed += len(remove)
        report.fdb_added += len(add)

    def _remove_owned(self, links: dict[str, Link], doomed, report: RealizeReport) -> None:
        # VXLAN devices first, so a bridge is never deleted under a live port.
        owned = [(parse_owned(name), link) for name, link in links.items()]
        for kind in ("vxlan", "bridge"):
            for parsed, link in owned:
                if parsed is not None and parsed[0] == kind and doomed(link.name):
                    self._kernel.delete(link.index, link.name)
                    report.removed.append(link.name)
                    del links[link.name]  # a later add of the same VNI must not see the old device


def _summary(report: RealizeReport) -> dict[str, int]:
    return {"created": len(report.created), "changed": len(report.changed), "removed": len(report.removed),
            "fdb_added": report.fdb_added, "fdb_removed": report.fdb_removed}
