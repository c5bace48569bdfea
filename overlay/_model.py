"""The overlay's data: planner inputs, per-site desired state, and the allocation table.

Everything here is plain, frozen data with no I/O, so it can cross the wire
(via :meth:`Allocations.to_dict`) and Hypothesis can drive it.

A site's desired state is a :class:`SiteState`: one :class:`Segment` per
tenant network present at that site. A segment is one bridge plus one VXLAN
device; its kernel FDB (:attr:`Segment.fdb`) is derived from the network's
member table, which all segments of one network share rather than copy: at
100 sites x 1,000 networks x 100,000 NICs a copied table would be millions of
tuples, and the planner must finish in well under two seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ._names import bridge_name, vxlan_name
from .errors import PlanError

FLOOD_MAC = "00:00:00:00:00:00"
"""The all-zero MAC: an FDB entry for it sends broadcast/unknown traffic to that site."""


class NetworkKey(NamedTuple):
    """Identity of a tenant network: two tenants may both have a network called ``"db"``."""

    tenant: str
    name: str


@dataclass(frozen=True, slots=True)
class Site:
    """A site taking part in the overlay.

    Attributes:
        name: unique site name (``"site-a"``).
        underlay_ip: the address other sites reach this site's VXLAN endpoint at.
    """

    name: str
    underlay_ip: str


@dataclass(frozen=True, slots=True)
class TenantNetwork:
    """A tenant's private layer-2 network, stretched over every site with a member.

    Attributes:
        tenant: owning tenant.
        name: network name, unique within the tenant.
        cidr: address range for IPAM (``"10.0.0.0/24"``); tenants may overlap.
    """

    tenant: str
    name: str
    cidr: str

    @property
    def key(self) -> NetworkKey:
        """The network's identity ``(tenant, name)``."""
        return NetworkKey(self.tenant, self.name)


@dataclass(frozen=True, slots=True)
class Nic:
    """A VM's NIC on a tenant network at a site.

    Attributes:
        vm: VM name (for reporting; addresses are keyed by MAC).
        site: site the VM runs at.
        tenant: tenant owning the network.
        network: network name within the tenant.
        mac: the NIC's MAC address, unique within its network (any case; normalised to lowercase).
    """

    vm: str
    site: str
    tenant: str
    network: str
    mac: str


class NicAddress(NamedTuple):
    """A NIC's overlay address, as the planner allocated it."""

    vm: str
    mac: str
    ip: str
    prefixlen: int

    @property
    def interface(self) -> str:
        """``"ip/prefixlen"``, ready for ``ip addr add``."""
        return f"{self.ip}/{self.prefixlen}"


class FdbEntry(NamedTuple):
    """One kernel FDB entry on a VXLAN device: frames for ``mac`` go to the VTEP ``dst``."""

    mac: str
    dst: str


class Member(NamedTuple):
    """What one site contributes to a network: its VTEP address and the MACs behind it."""

    underlay_ip: str
    macs: frozenset[str]


@dataclass(frozen=True, slots=True)
class Segment:
    """One tenant network as realized at one site: a bridge, a VXLAN device and its FDB.

    Attributes:
        site: the site this segment lives at.
        underlay_ip: that site's VTEP address (the VXLAN device's ``local``).
        tenant: tenant owning the network.
        network: network name.
        cidr: the network's CIDR.
        vni: the network's VXLAN network identifier.
        nics: the NICs at this site on this network, sorted by MAC.
        members: every member site of the network (this one included), shared
            by all segments of the network; treat as read-only.
    """

    site: str
    underlay_ip: str
    tenant: str
    network: str
    cidr: str
    vni: int
    nics: tuple[NicAddress, ...]
    members: Mapping[str, Member] = field(repr=False)

    def __hash__(self) -> int:
        return hash((self.site, self.vni, self.nics))

    @property
    def key(self) -> NetworkKey:
        """The network's identity ``(tenant, name)``."""
        return NetworkKey(self.tenant, self.network)

    @property
    def bridge(self) -> str:
        """The bridge device: where VM NICs (taps, veths) of this network attach at this site."""
        return bridge_name(self.vni)

    @property
    def vxlan(self) -> str:
        """The VXLAN device, enslaved to :attr:`bridge`."""
        return vxlan_name(self.vni)

    @property
    def flood(self) -> frozenset[str]:
        """VTEP addresses of exactly the other sites with members (head-end replication list)."""
        return frozenset(m.underlay_ip for s, m in self.members.items() if s != self.site)

    @property
    def fdb(self) -> frozenset[FdbEntry]:
        """Every kernel FDB entry the VXLAN device needs: one flood entry per remote
        member site and one entry per remote MAC, so known unicast is never flooded."""
        entries: set[FdbEntry] = set()
        for site, member in self.members.items():
            if site == self.site:
                continue
            entries.add(FdbEntry(FLOOD_MAC, member.underlay_ip))
            entries.update(FdbEntry(mac, member.underlay_ip) for mac in member.macs)
        return frozenset(entries)


@dataclass(frozen=True, slots=True)
class SiteState:
    """The desired overlay state of one site, keyed by VNI.

    Attributes:
        site: site name.
        underlay_ip: the site's VTEP address.
        segments: ``{vni: Segment}`` for every tenant network present at the site.
    """

    site: str
    underlay_ip: str
    segments: Mapping[int, Segment]

    __hash__ = None  # type: ignore[assignment]  # holds a dict; compare, don't hash

    @classmethod
    def empty(cls, site: str, underlay_ip: str = "") -> SiteState:
        """A site with nothing on it: diff towards it to tear a removed site down."""
        return cls(site, underlay_ip, {})

    def segment_for(self, tenant: str, network: str) -> Segment | None:
        """The segment for ``tenant``'s ``network`` at this site, or ``None`` if it has no member here."""
        for segment in self.segments.values():
            if segment.tenant == tenant and segment.network == network:
                return segment
        return None


@dataclass(frozen=True, slots=True)
class Allocations:
    """The planner's stable allocations; the controller persists them and feeds them back.

    Attributes:
        vnis: ``{NetworkKey: vni}``.
        addresses: ``{NetworkKey: {mac: ip}}`` (MACs lowercase).
        next_vni: where the next new network's VNI search starts; VNIs of deleted
            networks are not handed out again until the range wraps, so a site that
            has not converged yet never bridges a new tenant onto an old tenant's VNI.
    """

    vnis: Mapping[NetworkKey, int] = field(default_factory=dict)
    addresses: Mapping[NetworkKey, Mapping[str, str]] = field(default_factory=dict)
    next_vni: int = 1

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """Plain data (msgpack/JSON/SQLite friendly) for persistence; see :meth:`from_dict`."""
        return {
            "version": 1,
            "next_vni": self.next_vni,
            "networks": [
                {"tenant": k.tenant, "name": k.name, "vni": vni, "addresses": dict(self.addresses.get(k, {}))}
                for k, vni in sorted(self.vnis.items())
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Allocations:
        """Rebuild from :meth:`to_dict` output."""
        if data.get("version") != 1:
            raise PlanError(f"unsupported allocation table version {data.get('version')!r}; only 1 is known")
        vnis: dict[NetworkKey, int] = {}
        addresses: dict[NetworkKey, dict[str, str]] = {}
        for row in data["networks"]:
            key = NetworkKey(row["tenant"], row["name"])
            vnis[key] = int(row["vni"])
            addresses[key] = {str(m).lower(): str(ip) for m, ip in row.get("addresses", {}).items()}
        return cls(vnis, addresses, int(data.get("next_vni", 1)))


@dataclass(frozen=True, slots=True)
class NetworkPlan:
    """A tenant network across the whole overlay.

    Attributes:
        key: ``(tenant, name)``.
        cidr: the network's CIDR.
        vni: its VNI.
        members: ``{site: Member}`` for every site with a NIC on it (shared with its segments).
        nics: ``{mac: NicAddress}`` for every NIC on it.
    """

    key: NetworkKey
    cidr: str
    vni: int
    members: Mapping[str, Member] = field(repr=False)
    nics: Mapping[str, NicAddress] = field(repr=False)

    __hash__ = None  # type: ignore[assignment]

    @property
    def bridge(self) -> str:
        """Bridge name for this network; the same at every site."""
        return bridge_name(self.vni)


@dataclass(frozen=True, slots=True)
class Plan:
    """The planner's output: every site's desired state plus the allocations to persist.

    Attributes:
        sites: ``{site name: SiteState}`` for every site given (possibly with no segments).
        networks: ``{NetworkKey: NetworkPlan}`` for every tenant network given.
        allocations: feed back as ``plan(..., previous=...)`` to keep VNIs and addresses.
    """

    sites: Mapping[str, SiteState]
    networks: Mapping[NetworkKey, NetworkPlan]
    allocations: Allocations

    __hash__ = None  # type: ignore[assignment]

    def attach_point(self, site: str, tenant: str, network: str) -> str:
        """Name of the bridge a VM NIC of ``tenant``'s ``network`` joins at ``site``.

        The libvirt driver puts a tap (``<interface type='bridge'>``) on it;
        tests enslave a veth to it. The bridge exists at ``site`` once the site
        has a NIC on the network and its realizer has applied the plan.

        Raises:
            PlanError: the network is unknown.
        """
        net = self.networks.get(NetworkKey(tenant, network))
        if net is None:
            raise PlanError("unknown tenant network; declare it in the plan's networks", site=site,
                            tenant=tenant, network=network)
        return net.bridge

    def address_of(self, tenant: str, network: str, mac: str) -> NicAddress:
        """The overlay address allocated to the NIC with ``mac`` on ``tenant``'s ``network``.

        Raises:
            PlanError: no such network, or no NIC with that MAC on it.
        """
        net = self.networks.get(NetworkKey(tenant, network))
        nic = None if net is None else net.nics.get(mac.lower())
        if nic is None:
            raise PlanError("no NIC with that MAC on that network in this plan", tenant=tenant,
                            network=network, mac=mac)
        return nic
