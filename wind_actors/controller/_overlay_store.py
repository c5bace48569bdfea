"""What the overlay planner reads from the store and keeps there (its only I/O besides pushes).

Reads: one application's contribution (:func:`read_app`: its record, and its VM rows only if it
declares a network), or every application's (:func:`read_all`, the planner's start and its slow
safety pass). Writes, each only when it changed: ``overlay/allocations`` (:func:`vni_table`: the
VNI of every network and ``next_vni``; written when a network comes or goes), ``overlay/sites``
and one NIC table per application (``overlay/nics/TENANT/APP``, ``{vm: [nic]}``). A NIC's address
lives in its application's NIC table, so one change rewrites that application's table, never an
allocation table of every NIC in the cloud; :func:`restored_allocations` puts the addresses back
together when the planner starts (an older store's inline addresses are read too).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from overlay import Allocations, NetworkKey
from wind_actors.errors import NotFound
from wind_actors.services import AppDescriptor, AppRecord, Store, parse_descriptor

from ._overlay_inputs import AppKey, AppNetworks, app_networks

__all__ = ["ALLOCATIONS_KEY", "SITES_KEY", "Descriptors", "read_all", "read_app", "restored_allocations",
           "vni_table"]

ALLOCATIONS_KEY = "overlay/allocations"
SITES_KEY = "overlay/sites"


class Descriptors:
    """Parsed descriptors, parsed again only when an application's record was rewritten."""

    def __init__(self) -> None:
        self._parsed: dict[AppKey, tuple[float, AppDescriptor]] = {}

    def of(self, rec: AppRecord) -> AppDescriptor:
        """Returns: ``rec``'s parsed descriptor."""
        key = (rec.tenant, rec.name)
        cached = self._parsed.get(key)
        if cached is None or cached[0] != rec.updated:
            cached = self._parsed[key] = (rec.updated, parse_descriptor(rec.descriptor, allow_unsupported=True))
        return cached[1]

    def forget(self, key: AppKey) -> None:
        """Drop a deleted application's descriptor."""
        self._parsed.pop(key, None)


def read_app(store: Store, key: AppKey, descriptors: Descriptors) -> AppNetworks | None:
    """One application's contribution as stored now (None: gone, or it has no network; then
    none of its VM rows is read)."""
    try:
        rec = store.get_application(*key)
    except NotFound:
        descriptors.forget(key)
        return None
    descriptor = descriptors.of(rec)
    if not descriptor.networks:
        return None
    return app_networks(descriptor, rec.created, store.vms(*key))


def read_all(store: Store, descriptors: Descriptors) -> dict[AppKey, AppNetworks]:
    """Every application's contribution (the VM rows of those with networks only)."""
    found = {}
    for rec in store.list_applications():
        key = (rec.tenant, rec.name)
        descriptor = descriptors.of(rec)
        if descriptor.networks:
            contribution = app_networks(descriptor, rec.created, store.vms(*key))
            if contribution is not None:
                found[key] = contribution
    return found


def vni_table(allocations: Allocations) -> dict[str, Any]:
    """``overlay/allocations`` as stored: every network's VNI and ``next_vni`` (no addresses)."""
    return {"version": 1, "next_vni": allocations.next_vni,
            "networks": [{"tenant": k.tenant, "name": k.name, "vni": vni}
                         for k, vni in sorted(allocations.vnis.items())]}


def restored_allocations(data: Mapping[str, Any] | None,
                         tables: Mapping[AppKey, Mapping[str, Any]]) -> Allocations:
    """The allocations to plan from after a start: the stored VNIs, and every NIC's address
    from the NIC tables (plus any an older store kept inline)."""
    stored = Allocations.from_dict(data) if data else Allocations()
    addresses: dict[NetworkKey, dict[str, str]] = {k: dict(v) for k, v in stored.addresses.items()}
    for (tenant, _app), table in tables.items():
        for entries in table.values():
            for entry in entries:
                addresses.setdefault(NetworkKey(tenant, entry["network"]), {})[entry["mac"]] = entry["ip"]
    return Allocations(dict(stored.vnis), addresses, stored.next_vni)
