"""The agent's part of the overlay: one actor that owns the site's :class:`overlay.Realizer`.

The controller's overlay planner (``wind_actors.controller._overlay``) computes every site's
desired overlay state and pushes each site its changes as :class:`OverlayPush` messages: a diff
against the generation the agent holds, or the full :class:`overlay.SiteState`. The agent's
:class:`OverlayActor` (registered as ``overlay.SITE``) applies a diff with
:meth:`Realizer.apply` and a full state with :meth:`Realizer.realize` (idempotent: an agent that
restarts gets its full state again and changes nothing in the kernel, so traffic is never
interrupted). It tells the planner an :class:`OverlayReport` when it starts, after every push and
every ``REPORT_INTERVAL`` seconds; a report that shows the agent behind (lost push, restart, a
diff it could not apply) makes the planner send the full state. A push larger than a frame comes
in parts (:mod:`._overlay_parts`), applied only once all of them are in: a part lost leaves the
agent at the state it holds, asking for the full state.

The planner also hands every agent the node addresses of a bounded set of other agents
(:class:`OverlayPeers`; the sites it shares tenant networks with first, see
``wind_actors.controller._probes``), never every agent's; the agent connects to them so its
node's heartbeats measure those round-trip times, which the site reports carry into the pool's
RTT matrix (the scheduler's ``max_latency_ms``).

Config (``[agent]``): ``underlay_ip`` (this site's VTEP address; without it the site takes no
part in the overlay but still joins the RTT mesh) and ``overlay_netns`` (a named network
namespace to realize into; default the agent's own).

The wire codec (``encode_*``/``decode_*``) is pure, so the controller and tests use it directly.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pykka
import structlog

from overlay import Member, NicAddress, Realizer, Segment, SegmentUpdate, SiteDiff, SiteState
from overlay import apply as apply_diff
from overlay.errors import OverlayError
from supervisors import WatchedActor
from wind_actors.errors import WindError
from wind_actors.runtime import AGENT, CONTROLLER, SYSTEM, RemoteRef, allow, message

from ._overlay_parts import PartBuffer, split_change
from ._probes import apply_peers
from ._ticker import Ticker

__all__ = [
    "OVERLAY_PLANNER", "REPORT_INTERVAL", "OverlayActor", "OverlayPeers", "OverlayPush", "OverlayReport",
    "decode_diff", "decode_state", "encode_diff", "encode_state", "overlay_actor_name", "push_parts",
]

_log = structlog.get_logger("wind.agent.overlay")

OVERLAY_PLANNER = "overlay"
"""The name the controller's overlay planner is registered under on the controller node."""

REPORT_INTERVAL = 1.0
"""Seconds between an agent's periodic overlay reports."""


def overlay_actor_name(site: str) -> str:
    """Returns: the registered name of a site's overlay actor on its agent node (``overlay.SITE``)."""
    return f"overlay.{site}"


# -- wire messages ---------------------------------------------------------------------------------


@allow(AGENT, scope_field="site")
@message("wind.overlay.report", version=1)
@dataclass(frozen=True)
class OverlayReport:
    """Agent -> planner: where this site's overlay stands (told on start, after each push, and
    every :data:`REPORT_INTERVAL`).

    Attributes:
        site: the site.
        agent: a ref to the site's overlay actor (where pushes go).
        address: the agent node's endpoint, handed to the other agents for the RTT mesh.
        underlay_ip: the site's VTEP address, or None when the site takes no part in the overlay.
        epoch: the planner epoch of the state the agent holds (None: it holds none).
        generation: the generation of that state within the epoch (None: none).
        want_state: the agent needs the full state (it has none, or a diff did not apply).
        peers: how many other agents it was told of (the planner resends the list when short).
        error: the last realize/apply failure, if the kernel refused something.
        started_at: when this agent incarnation started (the site report's ``started_at``), so
            the planner tells the incarnation of a removed site from a later one.
    """

    site: str
    agent: RemoteRef
    address: str
    underlay_ip: str | None
    epoch: str | None
    generation: int | None
    want_state: bool
    peers: int = 0
    error: str | None = None
    started_at: float | None = None


@allow(CONTROLLER)
@message("wind.overlay.push", version=2)
@dataclass(frozen=True)
class OverlayPush:
    """Planner -> agent: the site's new overlay state, as a diff or in full, in one part or more.

    A change larger than a frame comes in ``parts`` pushes numbered ``part`` = 0, 1, ... (see
    :mod:`._overlay_parts`; :func:`push_parts` cuts them); the agent applies it once every part is
    in, and a part missing leaves it at the state it holds, asking for the full state.

    Attributes:
        site: the site it is for.
        epoch: the planner's epoch (a new one every time the planner starts).
        generation: the site's state generation this push brings the agent to.
        base: the generation a diff applies to; None for a full state.
        change: :func:`encode_diff` output when ``base`` is set, else :func:`encode_state` output
            (one part of it when ``parts`` > 1).
        part: this part's number, from 0.
        parts: how many parts the push has.
    """

    site: str
    epoch: str
    generation: int
    base: int | None
    change: dict
    part: int = 0
    parts: int = 1


def push_parts(site: str, epoch: str, generation: int, base: int | None, change: Mapping[str, Any],
               budget: int) -> list[OverlayPush]:
    """The push of an encoded change, cut into parts of at most ``budget`` bytes of change each
    (``_chunks.budget_of(max_frame_bytes)``): one push when it fits."""
    cut = split_change(change, budget, full=base is None)
    return [OverlayPush(site, epoch, generation, base, c, i, len(cut)) for i, c in enumerate(cut)]


@allow(CONTROLLER)
@message("wind.overlay.peers", version=2)
@dataclass(frozen=True)
class OverlayPeers:
    """Planner -> agent: the agents this site probes for RTTs and the agents probing it (a
    bounded set each, see ``wind_actors.controller._probes``), each with what is needed to trust
    it without a key file: the controller vouches for them. The whole set every time: the agent
    trusts exactly these (besides its folder), and a peer left out is trusted no more.

    Attributes:
        probes: ``{node: {"endpoint", "site", "key"}}``: trust and connect to these (heartbeats
            measure the round-trip time).
        trusted: ``{node: {"site", "key"}}``: these probe this site: trust them, do not connect.

    ``key`` is the node's CURVE public key as z85 text (None when the controller runs without
    CURVE); ``site`` is the site it is the agent of.
    """

    probes: dict[str, dict]
    trusted: dict[str, dict]


# -- codec (pure) ------------------------------------------------------------------------------------


def _encode_segment(seg: Segment) -> dict[str, Any]:
    return {"site": seg.site, "underlay_ip": seg.underlay_ip, "tenant": seg.tenant, "network": seg.network,
            "cidr": seg.cidr, "vni": seg.vni, "nics": [list(n) for n in seg.nics],
            "members": {s: [m.underlay_ip, sorted(m.macs)] for s, m in seg.members.items()}}


def _decode_segment(data: Mapping[str, Any]) -> Segment:
    members = {str(s): Member(str(ip), frozenset(macs)) for s, (ip, macs) in data["members"].items()}
    nics = tuple(NicAddress(str(vm), str(mac), str(ip), int(p)) for vm, mac, ip, p in data["nics"])
    return Segment(data["site"], data["underlay_ip"], data["tenant"], data["network"], data["cidr"],
                   int(data["vni"]), nics, members)


def encode_state(state: SiteState) -> dict[str, Any]:
    """A site's desired state as plain data (msgpack/JSON); inverse of :func:`decode_state`."""
    return {"site": state.site, "underlay_ip": state.underlay_ip,
            "segments": [_encode_segment(s) for _, s in sorted(state.segments.items())]}


def decode_state(data: Mapping[str, Any]) -> SiteState:
    """Returns: the :class:`overlay.SiteState` that :func:`encode_state` encoded."""
    segments = (_decode_segment(s) for s in data["segments"])
    return SiteState(data["site"], data["underlay_ip"], {s.vni: s for s in segments})


def encode_diff(change: SiteDiff) -> dict[str, Any]:
    """A site diff as plain data; inverse of :func:`decode_diff`."""
    return {"site": change.site, "underlay_ip": change.underlay_ip,
            "add": [_encode_segment(s) for s in change.add],
            "update": [[_encode_segment(u.old), _encode_segment(u.new)] for u in change.update],
            "remove": [_encode_segment(s) for s in change.remove]}


def decode_diff(data: Mapping[str, Any]) -> SiteDiff:
    """Returns: the :class:`overlay.SiteDiff` that :func:`encode_diff` encoded."""
    updates = []
    for old_data, new_data in data["update"]:
        old, new = _decode_segment(old_data), _decode_segment(new_data)
        updates.append(SegmentUpdate(old, new, new.fdb - old.fdb, old.fdb - new.fdb))
    return SiteDiff(data["site"], data["underlay_ip"], tuple(_decode_segment(s) for s in data["add"]),
                    tuple(updates), tuple(_decode_segment(s) for s in data["remove"]))


# -- the actor -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tick:
    pass


@dataclass
class _Held:
    """What the agent has realized: the state and the (epoch, generation) it came with."""

    state: SiteState | None = None
    epoch: str | None = None
    generation: int | None = None
    error: str | None = None
    peers: dict[str, str] = field(default_factory=dict)


class OverlayActor(WatchedActor):
    """The agent's overlay actor (a permanent child of the agent's tree, started last).

    Args:
        node: the agent's node.
        site: the site name.
        controller: the controller's node name (the planner is ``overlay@CONTROLLER``).
        underlay_ip: the site's VTEP address; None: no overlay here (the RTT mesh still works).
        netns: the named network namespace to realize into; None: the agent's own.
        started_at: when the agent process started (reported; see :class:`OverlayReport`).

    The kernel state outlives this actor: stopping it (or the agent) tears nothing down, so a
    restarted agent realizes the same state without touching a working device.
    """

    use_daemon_thread = True

    def __init__(self, node: Any, site: str, controller: str, underlay_ip: str | None = None,
                 netns: str | None = None, started_at: float | None = None) -> None:
        super().__init__()
        self.node = node
        self.started_at = started_at
        self.site = site
        self.underlay_ip = underlay_ip
        self.netns = netns
        self.held = _Held()
        self._planner = node.ref(f"{OVERLAY_PLANNER}@{controller}")
        self._realizer: Realizer | None = None
        self._ticker: Ticker | None = None
        self._me: RemoteRef | None = None
        self._parts = PartBuffer()

    # -- hooks (actor thread) ---------------------------------------------------------------------

    def on_start(self) -> None:
        """Open the realizer on the namespace (fails the start if it does not exist), register
        ``overlay.SITE``, report, and keep reporting every :data:`REPORT_INTERVAL`.

        Raises:
            overlay.NamespaceNotFound: ``netns`` does not exist.
        """
        if self.underlay_ip is not None:
            self._realizer = Realizer(self.netns)
        self._me = self.node.register(overlay_actor_name(self.site), self.actor_ref, access=SYSTEM)
        self._ticker = Ticker(self.actor_ref, REPORT_INTERVAL, _Tick(), name=f"wind-overlay-{self.site}")
        _log.info("overlay.agent_started", site=self.site, underlay_ip=self.underlay_ip, netns=self.netns)
        self._report()

    def on_stop(self) -> None:
        """Stop reporting and release the netlink socket; the kernel keeps its devices."""
        if self._ticker is not None:
            self._ticker.stop()
        if self._realizer is not None:
            self._realizer.close()
            self._realizer = None

    def on_failure(self, *exc_info: Any) -> None:
        self.on_stop()

    def on_receive(self, msg: Any) -> Any:
        if isinstance(msg, _Tick):
            # A push whose next part is overdue lost one: keep the state held, ask for it whole.
            return self._report(want_state=self._parts.expire(time.monotonic()))
        if isinstance(msg, OverlayPush):
            return self._on_push(msg)
        if isinstance(msg, OverlayPeers):
            return self._on_peers(msg)
        if msg == "describe":
            return self.describe()
        return None

    # -- requests -----------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Returns: ``{"site", "epoch", "generation", "segments": {vni: "tenant/network"},
        "devices": {name: ifindex}, "error", "pushes_lost"}`` (for status and tests;
        ``pushes_lost`` counts pushes dropped for a missing part)."""
        state = self.held.state
        return {"site": self.site, "epoch": self.held.epoch, "generation": self.held.generation,
                "segments": {} if state is None else
                {vni: f"{s.tenant}/{s.network}" for vni, s in state.segments.items()},
                "devices": self._realizer.owned_devices() if self._realizer is not None else {},
                "error": self.held.error, "pushes_lost": self._parts.lost}

    def _on_push(self, push: OverlayPush) -> None:
        if self._realizer is None or push.site != self.site:
            _log.warning("overlay.push_ignored", site=self.site, to=push.site,
                         reason="no underlay_ip configured" if self._realizer is None else "wrong site")
            return
        if push.parts > 1:
            joined, lost = self._parts.add(push.epoch, push.generation, push.base, push.part, push.parts,
                                           push.change, time.monotonic())
            if lost:
                _log.info("overlay.push_part_lost", site=self.site, generation=push.generation, part=push.part,
                          parts=push.parts, held=self.held.generation)
            if joined is None:
                if lost:  # nothing of it was applied: the state held stays, and the planner resends
                    self._report(want_state=True)
                return
            push = OverlayPush(push.site, push.epoch, push.generation, push.base, joined)
        held = self.held
        try:
            if push.base is None:
                state = decode_state(push.change)
                report = self._realizer.realize(state)
            elif held.state is not None and held.epoch == push.epoch and held.generation == push.base:
                change = decode_diff(push.change)
                report = self._realizer.apply(change)
                state = apply_diff(held.state, change)
            else:
                # A diff against a state we do not hold: ask for the whole state instead.
                _log.info("overlay.diff_out_of_order", site=self.site, base=push.base, held=held.generation)
                self._report(want_state=True)
                return
        except OverlayError as exc:
            # Half-applied: forget what we hold so the planner resends the full state.
            _log.error("overlay.realize_failed", site=self.site, error=str(exc))
            self.held = _Held(peers=held.peers, error=str(exc))
            self._report(want_state=True)
            return
        self.held = _Held(state, push.epoch, push.generation, None, held.peers)
        _log.debug("overlay.pushed", site=self.site, generation=push.generation, full=push.base is None,
                   noop=report.noop)
        self._report()

    def _on_peers(self, msg: OverlayPeers) -> None:
        # Only the controller gets here (@allow(CONTROLLER)): vouch for the set, connect to the
        # probes, drop who left (agent._probes); held.peers counts them in the next report.
        self.held.peers = apply_peers(self.node, self.site, self.held.peers, msg.probes, msg.trusted)

    def _report(self, want_state: bool = False) -> None:
        held = self.held
        report = OverlayReport(self.site, self._me, self.node.address, self.underlay_ip, held.epoch,
                               held.generation, want_state or (self.underlay_ip is not None and held.state is None),
                               len(held.peers), held.error, self.started_at)
        try:
            self._planner.tell(report)
        except WindError as exc:  # the controller is down: the next tick tries again
            _log.debug("overlay.report_not_sent", site=self.site, error=str(exc))


def start_overlay_actor(node: Any, site: str, controller: str, underlay_ip: str | None,
                        netns: str | None, started_at: float | None = None) -> pykka.ActorRef[Any]:
    """Start a site's :class:`OverlayActor` (the agent tree's child-spec start function)."""
    return OverlayActor.start(node, site, controller, underlay_ip, netns, started_at)

