"""The overlay planner's inputs, kept in memory and changed one application at a time (pure).

:class:`OverlayInputs` holds what :func:`overlay.plan` plans from — every tenant network, every
VM NIC and every overlay site — indexed so that a change costs what it touches: :meth:`set_app`
takes one application's new contribution (:class:`AppNetworks`, or None once it is gone) and
returns the networks whose definition or membership that changed, :meth:`set_sites` the networks
with NICs at a site that joined, left or moved its underlay address. :meth:`plan_input` then
builds :func:`overlay.replan`'s input for just those networks, and :meth:`table` an application's
NIC table from the new plan. An application with no networks contributes nothing: it is never
indexed, and its VMs cost the overlay nothing.

MACs are derived from a hash of (tenant, network, VM) (:func:`nic_mac`), drawn again on a
collision within the network, and kept while the VM stays on the network, whatever site it is at.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from overlay import NetworkKey, Nic, Plan, TenantNetwork
from wind_actors.services import AppDescriptor, VMRecord

from ._overlay_nics import nic_mac

__all__ = ["AppNetworks", "OverlayInputs", "app_networks"]

AppKey = tuple[str, str]   # (tenant, application)
NetKey = tuple[str, str]   # (tenant, network)


@dataclass(frozen=True)
class AppNetworks:
    """What one application brings to the overlay.

    Attributes:
        created: when it was stored (the oldest application declaring a network fixes its CIDR).
        declared: ``{network: cidr}`` of the networks it declares.
        vms: ``{vm: (site or None, networks)}`` for each of its VMs with a NIC (networks in the
            order its component lists them).
    """

    created: float
    declared: Mapping[str, str]
    vms: Mapping[str, tuple[str | None, tuple[str, ...]]]


def app_networks(descriptor: AppDescriptor, created: float, vms: Iterable[VMRecord]) -> AppNetworks | None:
    """An application's contribution from its descriptor and VM records (pure).

    Returns:
        The :class:`AppNetworks`, or None when it declares no network (nothing to plan).
    """
    if not descriptor.networks:
        return None
    declared = {net.name: net.cidr for net in descriptor.networks}
    comps = {c.name: tuple(n for n in c.networks if n in declared) for c in descriptor.components}
    placed = {}
    for rec in vms:
        nets = comps.get(rec.component, ())
        if nets:
            placed[rec.name] = (rec.site, nets)
    return AppNetworks(created, declared, placed)


class OverlayInputs:
    """The planner's input, indexed for changes (see the module docstring; planner thread only).

    Attributes:
        apps: ``{(tenant, app): AppNetworks}`` of every application with networks.
        sites: ``{site: underlay_ip}`` of the overlay's sites.
        networks: ``{(tenant, network): TenantNetwork}`` of every declared network.
        macs: ``{(tenant, network, vm): mac}`` handed out so far.
    """

    def __init__(self) -> None:
        self.apps: dict[AppKey, AppNetworks] = {}
        self.sites: dict[str, str] = {}
        self.networks: dict[NetKey, TenantNetwork] = {}
        self.macs: dict[tuple[str, str, str], str] = {}
        self._declared: dict[NetKey, dict[str, tuple[float, str]]] = {}   # net -> {app: (created, cidr)}
        self._members: dict[NetKey, dict[str, tuple[str | None, str]]] = {}  # net -> {vm: (site, app)}
        self._at_site: dict[str | None, dict[NetKey, int]] = {}            # site -> {net: VMs there}
        self._taken: dict[NetKey, set[str]] = {}                           # net -> MACs in use

    # -- changes ------------------------------------------------------------------------------------

    def set_app(self, key: AppKey, new: AppNetworks | None) -> set[NetKey]:
        """Replace one application's contribution (None: it is gone, or has no networks).

        Returns:
            The networks whose definition changed, or whose NICs at overlay sites changed.
        """
        old = self.apps.pop(key, None)
        if new is not None:
            self.apps[key] = new
        if old is None and new is None:
            return set()
        tenant, app = key
        dirty: set[NetKey] = set()
        for net in set(old.declared if old else ()) | set(new.declared if new else ()):
            if self._declare(tenant, net, app, new):
                dirty.add((tenant, net))
        old_vms, new_vms = (old.vms if old else {}), (new.vms if new else {})
        for vm in set(old_vms) | set(new_vms):
            before, after = old_vms.get(vm), new_vms.get(vm)
            if before == after:
                continue
            kept = set(after[1]) if after is not None else set()
            if before is not None:
                for net in before[1]:
                    self._leave((tenant, net), vm, before[0], drop_mac=net not in kept)
                    if before[0] in self.sites:
                        dirty.add((tenant, net))
            if after is not None:
                for net in after[1]:
                    self._join((tenant, net), vm, after[0], app)
                    if after[0] in self.sites:
                        dirty.add((tenant, net))
        return dirty

    def set_sites(self, sites: Mapping[str, str]) -> set[NetKey]:
        """Set the overlay's sites (``{site: underlay_ip}``).

        Returns:
            The networks with NICs at a site that joined, left or changed its address.
        """
        dirty: set[NetKey] = set()
        for site in set(self.sites) | set(sites):
            if self.sites.get(site) != sites.get(site):
                dirty.update(self._at_site.get(site, {}))
        self.sites = dict(sites)
        return dirty

    def _declare(self, tenant: str, net: str, app: str, new: AppNetworks | None) -> bool:
        """Record whether ``app`` declares ``net``; returns whether the network's definition changed."""
        key = (tenant, net)
        declarers = self._declared.setdefault(key, {})
        declarers.pop(app, None)
        if new is not None and net in new.declared:
            declarers[app] = (new.created, new.declared[net])
        if not declarers:
            del self._declared[key]
            return self.networks.pop(key, None) is not None
        # The first application to declare a network fixed its CIDR (deploy refuses another one).
        cidr = min(declarers.items(), key=lambda item: (item[1][0], item[0]))[1][1]
        if (known := self.networks.get(key)) is not None and known.cidr == cidr:
            return False
        self.networks[key] = TenantNetwork(tenant, net, cidr)
        return True

    def _join(self, key: NetKey, vm: str, site: str | None, app: str) -> None:
        self._members.setdefault(key, {})[vm] = (site, app)
        at = self._at_site.setdefault(site, {})
        at[key] = at.get(key, 0) + 1

    def _leave(self, key: NetKey, vm: str, site: str | None, drop_mac: bool) -> None:
        members = self._members.get(key, {})
        members.pop(vm, None)
        if not members:
            self._members.pop(key, None)
        at = self._at_site.get(site, {})
        if at.get(key, 0) <= 1:
            at.pop(key, None)
            if not at:
                self._at_site.pop(site, None)
        else:
            at[key] -= 1
        if drop_mac:
            mac = self.macs.pop((*key, vm), None)
            if mac is not None:
                self._taken.get(key, set()).discard(mac)

    # -- MACs -----------------------------------------------------------------------------------------

    def restore_macs(self, tenant: str, table: Mapping[str, Iterable[Mapping[str, Any]]]) -> None:
        """Take the MACs of a stored NIC table (``{vm: [nic]}``) before the first plan."""
        for vm, entries in table.items():
            for entry in entries:
                self.macs[(tenant, entry["network"], vm)] = entry["mac"]
                self._taken.setdefault((tenant, entry["network"]), set()).add(entry["mac"])

    def prune_macs(self) -> None:
        """Forget restored MACs of NICs that no longer exist."""
        for key in [k for k in self.macs if k[2] not in self._members.get(k[:2], {})]:
            self._taken.get(key[:2], set()).discard(self.macs.pop(key))

    def _mac(self, key: NetKey, vm: str) -> str:
        mac = self.macs.get((*key, vm))
        if mac is None:
            taken = self._taken.setdefault(key, set())
            salt = 0
            while (mac := nic_mac(key[0], key[1], vm, salt)) in taken:
                salt += 1
            taken.add(mac)
            self.macs[(*key, vm)] = mac
        return mac

    # -- the planner's input --------------------------------------------------------------------------

    def plan_input(self, dirty: Iterable[NetKey]) -> tuple[list[TenantNetwork], list[Nic]]:
        """:func:`overlay.replan`'s ``networks`` and ``nics`` for the ``dirty`` networks: each one
        that exists, and its NICs at overlay sites (MACs handed out to new ones, in VM order)."""
        networks, nics = [], []
        for key in sorted(k for k in dirty if k in self.networks):
            networks.append(self.networks[key])
            for vm, (site, _app) in sorted(self._members.get(key, {}).items()):
                if site in self.sites:
                    nics.append(Nic(vm, site, key[0], key[1], self._mac(key, vm)))
        return networks, nics

    def owners(self, dirty: Iterable[NetKey]) -> set[AppKey]:
        """The applications with VMs on the ``dirty`` networks (their NIC tables may change)."""
        return {(key[0], app) for key in dirty for _site, app in self._members.get(key, {}).values()}

    def table(self, the_plan: Plan, key: AppKey) -> dict[str, list[dict[str, Any]]]:
        """An application's NIC table from ``the_plan``: ``{vm: [{"network", "mac", "bridge",
        "ip", "prefixlen"}]}`` for each of its VMs at an overlay site (empty when it has none)."""
        app = self.apps.get(key)
        if app is None:
            return {}
        tenant = key[0]
        table: dict[str, list[dict[str, Any]]] = {}
        for vm, (site, nets) in sorted(app.vms.items()):
            if site not in self.sites:
                continue
            entries = []
            for net in nets:
                planned = the_plan.networks.get(NetworkKey(tenant, net))
                mac = self.macs.get((tenant, net, vm))
                nic = planned.nics.get(mac) if planned is not None and mac is not None else None
                if nic is not None:
                    entries.append({"network": net, "mac": mac, "bridge": planned.bridge, "ip": nic.ip,
                                    "prefixlen": nic.prefixlen})
            if entries:
                table[vm] = entries
        return table
