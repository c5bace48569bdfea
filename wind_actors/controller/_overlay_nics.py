"""The overlay's NICs: the planner's input built from the desired state, and each VM's NICs.

Pure helpers of :mod:`wind_actors.controller._overlay` (no actors, no sockets): derive stable MACs,
build :func:`overlay.plan`'s input from stored applications and VMs, turn a plan into per-VM NIC
tables, and read/write those tables in the store (what VM specs and ``wind app status`` use).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from overlay import Nic, Plan, Site, TenantNetwork
from wind_actors.services import AppDescriptor, Store, VMRecord

__all__ = ["PlanInputs", "add_overlay_addresses", "attach_nics", "nic_mac", "nic_tables", "nics_key",
           "overlay_nics", "plan_inputs"]

_log = structlog.get_logger("wind.controller.overlay")


def nics_key(tenant: str, app: str) -> str:
    """Returns: the store key of an application's NIC table."""
    return f"overlay/nics/{tenant}/{app}"


def nic_mac(tenant: str, network: str, vm: str, salt: int = 0) -> str:
    """A VM NIC's MAC: 46 bits of a hash, locally administered, unicast (pure).

    Args:
        tenant: the network's tenant.
        network: the network's name.
        vm: the VM's name.
        salt: bumped to draw again after a collision within the network.

    Returns:
        ``"xx:xx:xx:xx:xx:xx"`` in lower case.
    """
    digest = bytearray(hashlib.sha256(f"{tenant}/{network}/{vm}/{salt}".encode()).digest()[:6])
    digest[0] = (digest[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in digest)


@dataclass(frozen=True)
class PlanInputs:
    """What :func:`overlay.plan` is called with, in a canonical order (equal inputs: no re-plan)."""

    sites: tuple[Site, ...]
    networks: tuple[TenantNetwork, ...]
    nics: tuple[Nic, ...]
    owners: tuple[tuple[str, str, str], ...]  # (vm, tenant, app) for every VM with a NIC


def plan_inputs(apps: Iterable[AppDescriptor], vms: Iterable[VMRecord], sites: Mapping[str, str],
                macs: dict[tuple[str, str, str], str]) -> PlanInputs:
    """Build the planner's input from the desired state (pure but for updating ``macs``).

    Args:
        apps: every stored application, oldest first (the first to declare a tenant network
            fixes its CIDR; deploy refuses a later one declaring it with another CIDR — see
            ``_networks`` — so a conflict here predates that check and is ignored with a warning).
        vms: every stored VM record; those placed at a site in ``sites`` get one NIC per network
            of their component.
        sites: ``{site: underlay_ip}`` of the sites taking part in the overlay.
        macs: ``{(tenant, network, vm): mac}``, the MACs handed out so far; updated in place
            (new NICs added, NICs gone dropped).

    Returns:
        The :class:`PlanInputs`.
    """
    networks: dict[tuple[str, str], TenantNetwork] = {}
    comps: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {}
    for app in apps:
        comps[(app.tenant, app.name)] = {c.name: c.networks for c in app.components}
        for net in app.networks:
            known = networks.get((app.tenant, net.name))
            if known is None:
                networks[(app.tenant, net.name)] = TenantNetwork(app.tenant, net.name, net.cidr)
            elif known.cidr != net.cidr:
                _log.warning("overlay.cidr_conflict", tenant=app.tenant, network=net.name, kept=known.cidr,
                             ignored=net.cidr, app=app.name)
    wanted: list[tuple[str, str, str, str]] = []  # (tenant, network, vm, site)
    owners = []
    for rec in sorted(vms, key=lambda r: r.name):
        nets = comps.get((rec.tenant, rec.app), {}).get(rec.component, ())
        if not nets or rec.site not in sites:
            continue
        owners.append((rec.name, rec.tenant, rec.app))
        wanted.extend((rec.tenant, net, rec.name, rec.site) for net in nets if (rec.tenant, net) in networks)
    keep = {(t, n, vm) for t, n, vm, _ in wanted}
    for key in [k for k in macs if k not in keep]:
        del macs[key]
    used: dict[tuple[str, str], set[str]] = {}
    for (t, n, _vm), mac in macs.items():
        used.setdefault((t, n), set()).add(mac)
    nics = []
    for tenant, net, vm, site in wanted:
        mac = macs.get((tenant, net, vm))
        if mac is None:
            taken = used.setdefault((tenant, net), set())
            salt = 0
            while (mac := nic_mac(tenant, net, vm, salt)) in taken:
                salt += 1
            taken.add(mac)
            macs[(tenant, net, vm)] = mac
        nics.append(Nic(vm, site, tenant, net, mac))
    return PlanInputs(tuple(Site(s, ip) for s, ip in sorted(sites.items())),
                      tuple(networks[k] for k in sorted(networks)), tuple(nics), tuple(owners))


def nic_tables(the_plan: Plan, inputs: PlanInputs) -> dict[tuple[str, str], dict[str, list[dict[str, Any]]]]:
    """Returns: ``{(tenant, app): {vm: [nic]}}`` with every NIC's MAC, bridge and address (pure)."""
    app_of = {vm: (tenant, app) for vm, tenant, app in inputs.owners}
    tables: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
    for nic in inputs.nics:
        addr = the_plan.address_of(nic.tenant, nic.network, nic.mac)
        entry = {"network": nic.network, "mac": nic.mac, "bridge": the_plan.attach_point(nic.site, nic.tenant,
                                                                                            nic.network),
                 "ip": addr.ip, "prefixlen": addr.prefixlen}
        tables.setdefault(app_of[nic.vm], {}).setdefault(nic.vm, []).append(entry)
    return tables


# -- hooks for the rest of the controller ---------------------------------------------------------


def overlay_nics(store: Store, tenant: str, app: str) -> dict[str, list[dict[str, Any]]]:
    """Returns: ``{vm: [nic]}`` of one application, as the planner last persisted it."""
    return store.get_overlay(nics_key(tenant, app), {}) or {}


def attach_nics(specs_by_site: Mapping[str, list[dict[str, Any]]], store: Store, tenant: str, app: str) -> None:
    """Give the NICs of VM specs about to be sent to agents their MAC and attach-point bridge.

    Args:
        specs_by_site: ``{site: [{"spec": VMSpec.as_dict(), ...}]}``; changed in place.
        store: where the planner keeps the NIC tables.
        tenant: the application's tenant (spec NIC networks are ``TENANT.NETWORK``).
        app: the application.
    """
    table = None
    prefix = f"{tenant}."
    for items in specs_by_site.values():
        for item in items:
            spec = item["spec"]
            if not spec.get("nics"):
                continue
            if table is None:
                table = overlay_nics(store, tenant, app)
            planned = {e["network"]: e for e in table.get(spec["name"], ())}
            for nic in spec["nics"]:
                net = nic["network"].removeprefix(prefix)
                entry = planned.get(net)
                if entry is not None:
                    nic["mac"], nic["bridge"], nic["tap"] = entry["mac"], entry["bridge"], None


def add_overlay_addresses(rows: Iterable[dict[str, Any]], store: Store) -> None:
    """Add each VM's overlay NICs to ``wind app status`` rows, in place.

    Every VM row gets ``"overlay": [{"network", "ip", "prefixlen", "mac", "bridge"}]`` (empty
    for a VM with no tenant network, or one the planner has not placed on the overlay yet).
    """
    for row in rows:
        table = overlay_nics(store, row["tenant"], row["app"])
        for vm in row.get("vms", ()):
            vm["overlay"] = [dict(e) for e in table.get(vm["name"], ())]
