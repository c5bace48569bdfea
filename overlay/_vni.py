"""VNI allocation: unique per overlay, stable across controller restarts.

Stability comes from the allocation table, not from hashing: a hash of
``(tenant, name)`` into 24 bits collides long before 16 million networks, and
a collision silently bridges two tenants together. So the controller persists
:class:`~overlay.Allocations` and passes it back; networks already in it keep
their VNI. New networks, taken in ``(tenant, name)`` order so the result is a
pure function of the input, get the next free VNI at or after ``next_vni``.
``next_vni`` only moves forward (wrapping at 2**24), so a VNI freed by a
deleted network is not reused while sites may still carry its devices.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from ._model import NetworkKey
from ._names import VNI_MAX, VNI_MIN
from .errors import PlanError


def allocate_vnis(
    keys: Iterable[NetworkKey],
    previous: Mapping[NetworkKey, int],
    next_vni: int,
    taken: Collection[int] = frozenset(),
) -> tuple[dict[NetworkKey, int], int]:
    """Give every network a VNI, keeping previous ones.

    Args:
        keys: every tenant network in the plan (or, re-planning some networks only, those).
        previous: the persisted ``{NetworkKey: vni}``; entries for networks
            no longer present are released.
        next_vni: where to start searching for new VNIs.
        taken: VNIs held by networks not in ``keys`` (those a partial re-plan keeps as they are).

    Returns:
        ``({NetworkKey: vni}, next_vni)``; VNIs are unique.

    Raises:
        PlanError: more networks than the 24-bit VNI space holds.
    """
    ordered = sorted(keys)
    vnis: dict[NetworkKey, int] = {}
    used: set[int] = set(taken)
    fresh: list[NetworkKey] = []
    for key in ordered:
        vni = previous.get(key)
        if vni is not None and VNI_MIN <= vni <= VNI_MAX and vni not in used:
            vnis[key] = vni
            used.add(vni)
        else:
            fresh.append(key)
    if len(used) + len(fresh) > VNI_MAX - VNI_MIN + 1:
        raise PlanError(f"{len(used) + len(fresh)} tenant networks exceed the {VNI_MAX} VNIs VXLAN allows")
    candidate = next_vni if VNI_MIN <= next_vni <= VNI_MAX else VNI_MIN
    for key in fresh:
        while candidate in used:
            candidate = candidate + 1 if candidate < VNI_MAX else VNI_MIN
        vnis[key] = candidate
        used.add(candidate)
        candidate = candidate + 1 if candidate < VNI_MAX else VNI_MIN
    return vnis, candidate
