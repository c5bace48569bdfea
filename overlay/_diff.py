"""Plan changes as diffs: what to add, update and remove at a site, and nothing more.

``apply(old, diff(old, new)) == new`` for any two states of one site; the
property tests check it. A diff is what the controller pushes to an agent when
sites, networks or VMs come and go: adding a VM shows up as an update of that
network's segment at every *other* member site (one new FDB entry there), and
as nothing at all anywhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ._model import FdbEntry, Plan, Segment, SiteState
from .errors import PlanError


@dataclass(frozen=True, slots=True)
class SegmentUpdate:
    """A segment present before and after, with a different desired state.

    Attributes:
        old: the segment as it was.
        new: the segment as it must become.
        fdb_add: kernel FDB entries to add on the VXLAN device.
        fdb_remove: kernel FDB entries to remove from it.
    """

    old: Segment
    new: Segment
    fdb_add: frozenset[FdbEntry]
    fdb_remove: frozenset[FdbEntry]

    @property
    def recreate_vxlan(self) -> bool:
        """The site's VTEP address changed, so the VXLAN device (not the bridge) must be rebuilt."""
        return self.old.underlay_ip != self.new.underlay_ip


@dataclass(frozen=True, slots=True)
class SiteDiff:
    """The changes that take one site from an old desired state to a new one.

    Attributes:
        site: the site.
        underlay_ip: the site's VTEP address in the new state.
        add: segments to create (bridge, VXLAN device, full FDB).
        update: segments to change in place.
        remove: segments to delete.
    """

    site: str
    underlay_ip: str
    add: tuple[Segment, ...] = ()
    update: tuple[SegmentUpdate, ...] = ()
    remove: tuple[Segment, ...] = ()

    @property
    def empty(self) -> bool:
        """No segment changes (the site's kernel state stays as it is)."""
        return not (self.add or self.update or self.remove)


def diff(old: SiteState, new: SiteState, *, _memo: dict | None = None) -> SiteDiff:
    """Compute the changes from ``old`` to ``new`` for one site.

    A VNI that now belongs to a different tenant network (reused after the
    24-bit range wrapped) is a remove plus an add, never an update, so VMs of
    the old network never stay attached to the new one's bridge.

    Args:
        old: the state the site is in (``SiteState.empty(name)`` for a new site).
        new: the state it must reach (``SiteState.empty(name)`` to tear it down).

    Returns:
        The :class:`SiteDiff`.

    Raises:
        PlanError: ``old`` and ``new`` describe different sites.
    """
    if old.site != new.site:
        raise PlanError(f"cannot diff site {old.site} against site {new.site}; diff one site at a time",
                        site=new.site)
    add: list[Segment] = []
    update: list[SegmentUpdate] = []
    remove = [seg for vni, seg in old.segments.items() if vni not in new.segments]
    for vni, seg in new.segments.items():
        before = old.segments.get(vni)
        if before is seg:
            continue  # kept as it was by a partial re-plan: the same object
        if before is None:
            add.append(seg)
        elif before.key != seg.key:
            remove.append(before)
            add.append(seg)
        elif not _same(before, seg, _memo):
            old_fdb, new_fdb = before.fdb, seg.fdb
            update.append(SegmentUpdate(before, seg, new_fdb - old_fdb, old_fdb - new_fdb))
    return SiteDiff(new.site, new.underlay_ip, tuple(add), tuple(update), tuple(remove))


def _same(a: Segment, b: Segment, memo: dict | None) -> bool:
    if (a.site, a.underlay_ip, a.cidr, a.vni, a.nics) != (b.site, b.underlay_ip, b.cidr, b.vni, b.nics):
        return False
    if a.members is b.members:
        return True
    if memo is None:
        return a.members == b.members
    # Every segment of a network shares one member table, so across a whole
    # plan the same pair of tables would be compared once per member site.
    pair = (id(a.members), id(b.members))
    same = memo.get(pair)
    if same is None:
        same = memo[pair] = a.members == b.members
    return same


def apply(old: SiteState, change: SiteDiff) -> SiteState:
    """Apply a diff to a desired state (pure; the realizer applies it to the kernel).

    Returns:
        The new :class:`SiteState`; ``apply(old, diff(old, new)) == new``.
    """
    segments = dict(old.segments)
    for seg in change.remove:
        segments.pop(seg.vni, None)
    for upd in change.update:
        segments[upd.new.vni] = upd.new
    for seg in change.add:
        segments[seg.vni] = seg
    return SiteState(old.site, change.underlay_ip, segments)


def diff_plans(old: Plan | None, new: Plan, networks: Iterable[tuple[str, str]] | None = None) -> dict[str, SiteDiff]:
    """Per-site diffs between two plans: what the controller pushes to each agent.

    Sites new in ``new`` are diffed from empty; sites gone from ``new`` are
    diffed to empty (their agent tears everything down).

    Args:
        old: the plan the sites are at (None: every site is new).
        new: the plan they must reach.
        networks: when ``new`` came from :func:`overlay.replan`, its ``dirty`` networks: only
            their segments are compared (every other one is the same object in both plans), so
            the cost follows the change, not the number of networks at each site.

    Returns:
        ``{site: SiteDiff}`` for every site whose segments change; sites with
        nothing to do are left out.
    """
    old_sites: Mapping[str, SiteState] = old.sites if old is not None else {}
    vnis = None if networks is None or old is None else _vnis_of(old, new, networks)
    out: dict[str, SiteDiff] = {}
    memo: dict = {}  # both plans stay alive during the call, so ids are stable
    for name, state in new.sites.items():
        before = old_sites.get(name) or SiteState.empty(name, state.underlay_ip)
        if before is state:
            continue
        if vnis is not None and before.underlay_ip == state.underlay_ip:
            before, state = _only(before, vnis), _only(state, vnis)
        change = diff(before, state, _memo=memo)
        if not change.empty:
            out[name] = change
    for name, state in old_sites.items():
        if name not in new.sites:
            change = diff(state, SiteState.empty(name, state.underlay_ip))
            if not change.empty:
                out[name] = change
    return out


def _vnis_of(old: Plan, new: Plan, networks: Iterable[tuple[str, str]]) -> set[int]:
    """The VNIs the given networks had in ``old`` or have in ``new``."""
    vnis = set()
    for key in networks:
        for p in (old, new):
            net = p.networks.get(key)  # type: ignore[call-overload]
            if net is not None:
                vnis.add(net.vni)
    return vnis


def _only(state: SiteState, vnis: set[int]) -> SiteState:
    """``state`` with only the segments of ``vnis`` (for a diff restricted to them)."""
    return SiteState(state.site, state.underlay_ip,
                     {v: state.segments[v] for v in sorted(vnis) if v in state.segments})
