"""Removed sites: what ``wind sites remove`` leaves behind so a removed site stays removed.

An operator removes a site the way Nomad's ``node purge`` or OpenNebula's ``onehost delete``
forget a node: the controller drops it from the pool and from the overlay plan. The agent of that
site may still be running and reporting, so the removal is remembered as a *tombstone* naming the
agent incarnation that was removed (its node and ``started_at``). Reports of that incarnation are
ignored, by the controller and by the overlay planner alike; a report of any other incarnation —
the agent restarted, or a new agent with the site's name — clears the tombstone and the site
rejoins as a new site (an empty one: nothing placed there before comes back). A site removed
while its agent was unknown to the controller (down, never reported since a controller restart)
has a tombstone without an incarnation, and the first report of any agent of that name rejoins
it.

Tombstones persist in the store (one blob, ``pool/removed_sites``, in its key/blob table), so a
controller restart does not resurrect a removed site. :class:`RemovedSites` is shared by the
controller actor and the overlay planner (each on its own thread), hence its lock.
:func:`holders` and :func:`refusal` are the pure part of the removal rule.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

import structlog

from wind_actors.errors import SiteInUse
from wind_actors.services import Store, VMRecord

__all__ = ["REMOVED_SITES_KEY", "RemovedSites", "holders", "refusal"]

_log = structlog.get_logger("wind.controller.sites")

REMOVED_SITES_KEY = "pool/removed_sites"


class RemovedSites:
    """The persisted tombstones of removed sites (thread-safe).

    Args:
        store: where the tombstones persist (loaded once here, written on every change).
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._tombs: dict[str, dict[str, Any]] = dict(store.get_overlay(REMOVED_SITES_KEY, {}) or {})
        self._ignored: dict[str, int] = {}

    def add(self, site: str, *, node: str | None, started_at: float | None, tenant: str, op: str) -> None:
        """Remember that ``site`` (the agent incarnation ``node``/``started_at``, if known) was removed."""
        with self._lock:
            self._tombs[site] = {"node": node, "started_at": started_at, "tenant": tenant, "op": op,
                                 "removed_at": time.time()}
            self._ignored.pop(site, None)
            self._save()

    def get(self, site: str) -> dict[str, Any] | None:
        """Returns: the tombstone of ``site`` (``node``, ``started_at``, ``tenant``, ``op``,
        ``removed_at``), or None if it is not removed."""
        with self._lock:
            tomb = self._tombs.get(site)
            return None if tomb is None else dict(tomb)

    def names(self) -> frozenset[str]:
        """Returns: every removed site."""
        with self._lock:
            return frozenset(self._tombs)

    def ignored(self, site: str) -> int:
        """Returns: how many reports of the removed incarnation of ``site`` were ignored so far."""
        with self._lock:
            return self._ignored.get(site, 0)

    def admits(self, site: str, node: str | None, started_at: float | None) -> bool:
        """Whether a report from ``site``'s agent (incarnation ``node``/``started_at``) counts.

        Returns False for the incarnation that was removed. For any other incarnation the
        tombstone is cleared (persisted) and the site rejoins as a new site: True.
        """
        with self._lock:
            tomb = self._tombs.get(site)
            if tomb is None:
                return True
            if tomb["started_at"] is not None and (tomb["node"], tomb["started_at"]) == (node, started_at):
                self._ignored[site] = self._ignored.get(site, 0) + 1
                return False
            del self._tombs[site]
            self._ignored.pop(site, None)
            self._save()
        _log.info("controller.removed_site_rejoined", site=site, node=node)
        return True

    def _save(self) -> None:
        self._store.put_overlay(REMOVED_SITES_KEY, self._tombs)


def holders(site: str, vms: Iterable[VMRecord]) -> dict[tuple[str, str], list[str]]:
    """Returns: ``{(tenant, app): [vm names]}`` of every VM placed at ``site`` (pure)."""
    found: dict[tuple[str, str], list[str]] = {}
    for rec in vms:
        if rec.site == site:
            found.setdefault((rec.tenant, rec.app), []).append(rec.name)
    return found


def refusal(site: str, tenant: str | None, held: dict[tuple[str, str], list[str]]) -> SiteInUse:
    """The error refusing to remove ``site`` while VMs are placed there (pure).

    The caller's own applications are named with their VMs; other tenants' are only counted,
    since one tenant never learns another's application names. An operator (``tenant`` None)
    administers every tenant and sees each application with its tenant.

    Args:
        site: the site.
        tenant: the tenant asking, or None for an operator.
        held: :func:`holders` of the site (not empty).
    """
    parts = []
    for (owner, app), names in sorted(held.items()):
        if tenant is None or owner == tenant:
            label = repr(app) if tenant is not None else f"{owner}/{app}"
            parts.append(f"application {label} ({len(names)} VM(s): {', '.join(sorted(names))})")
    others = [(k, v) for k, v in held.items() if tenant is not None and k[0] != tenant]
    if others:
        parts.append(f"{sum(len(v) for _, v in others)} VM(s) of {len(others)} application(s) of "
                     "other tenants")
    total = sum(len(v) for v in held.values())
    return SiteInUse(f"site {site!r} cannot be removed: {total} VM(s) are placed on it: "
                     f"{'; '.join(parts)}. Nothing was changed. A site can be removed once no "
                     "application has VMs placed there: undeploy (or move) them first",
                     recoverable=True, site=site)
