"""What the overlay planner tells each agent of its RTT probe peers (no threads, no sockets).

The planner calls :meth:`PeerSets.share` on every overlay report of a site. It keeps the
:class:`~wind_actors.controller._probes.ProbeRelation` up to date from what the report shows
(a new site, a new agent incarnation, new tenant-network neighbours, a partner gone from the
planner's agents) and returns the ``OverlayPeers`` messages to tell: one for each site whose set
changed, and the reporting site's own again when its agent holds a different number of peers
than it was sent (it restarted, or a message was lost) or it has not been re-told for
:data:`REFRESH_EVERY` seconds. Each message names, per peer node, its endpoint (probes only), its
site and its public key as this controller trusts it, which is what lets agents trust each
other with only the controller's key filed.

A report costs O(the reporting site's peers); joining or leaving costs one site's re-choice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._probes import ProbeRelation

__all__ = ["PeerSets", "REFRESH_EVERY", "RESEND_AFTER", "agent_key"]

RESEND_AFTER = 2.0
"""Seconds before a site whose agent reports another number of peers than it was sent is sent
its set again (a report already on its way when the set was sent shows the old number)."""

REFRESH_EVERY = 30.0
"""Seconds after which a site is sent its set again anyway: its agent re-dials any probe peer
its node forgot (down a long while), and a lost message of the same size is mended."""


def agent_key(node: Any, agent: str) -> str | None:
    """The z85 public key (text) that ``node`` (the controller's) trusts for node ``agent``, from
    its trust policy; None without CURVE or when no such key is trusted."""
    trust = getattr(node, "trust", None)
    key = trust.public_key(agent) if trust is not None else None
    return key.decode() if key is not None else None


class PeerSets:
    """The probe relation and what each site was last told (planner thread only).

    Args:
        key_of: the z85 public key (text) this controller trusts for an agent node, or None
            (no CURVE, or no such key).
        relation: the relation to keep (default: a new one with the default bounds).
    """

    def __init__(self, key_of: Callable[[str], str | None], relation: ProbeRelation | None = None) -> None:
        self.key_of = key_of
        self.relation = relation if relation is not None else ProbeRelation()
        self._agents: dict[str, Any] = {}     # site -> the planner's agent record it was told of
        self._sent: dict[str, tuple[dict[str, dict], dict[str, dict], float]] = {}

    def share(self, site: str, agent: Any, neighbours: Iterable[str], known: int,
              agents: Mapping[str, Any], now: float) -> list[tuple[str, dict[str, dict], dict[str, dict]]]:
        """Take in one overlay report of ``site`` and say what to tell whom.

        Args:
            site: the reporting site.
            agent: its agent record (``.node`` and ``.address``); a new object is a new incarnation.
            neighbours: the sites it shares a tenant network with.
            known: how many peers its agent says it was told of.
            agents: the planner's current agents by site (a partner missing there has left).
            now: a monotonic time.

        Returns:
            ``(site, probes, trusted)`` for each message to send, the reporting site last (so the
            sites it will probe are told to trust it first); ``probes`` and ``trusted`` are the
            ``OverlayPeers`` fields.
        """
        relation = self.relation
        affected: set[str] = set()
        for other in relation.trusts(site):  # departures are noticed by the partners' reports
            current = agents.get(other)
            if current is None:
                affected |= relation.leave(other)
                self._agents.pop(other, None)
                self._sent.pop(other, None)
            elif current is not self._agents.get(other):
                self._agents[other] = current
                affected |= relation.trusts(other)
        if self._agents.get(site) is not agent:
            if site in self._agents:  # a new incarnation: its partners need its new endpoint
                affected |= relation.trusts(site)
            self._agents[site] = agent
        affected |= relation.join(site, neighbours)
        affected.discard(site)
        out = []
        for other in sorted(affected):
            message = self._message(other, agents, now, force=False)
            if message is not None:
                out.append(message)
        sent = self._sent.get(site)
        if sent is None:
            stale = known != 0  # an agent told by an earlier planner: even an empty set is news
        else:
            stale = now - sent[2] >= REFRESH_EVERY or (
                known != len(sent[0]) + len(sent[1]) and now - sent[2] >= RESEND_AFTER)
        message = self._message(site, agents, now, force=stale)
        if message is not None:
            out.append(message)
        return out

    def _message(self, site: str, agents: Mapping[str, Any], now: float,
                 force: bool) -> tuple[str, dict[str, dict], dict[str, dict]] | None:
        if site not in self.relation or site not in agents or site not in self._agents:
            return None
        probes: dict[str, dict] = {}
        trusted: dict[str, dict] = {}
        chosen = self.relation.probes(site)
        for other in chosen:
            peer = self._agents.get(other)
            if peer is not None:
                probes[peer.node] = {"endpoint": peer.address, "site": other, "key": self.key_of(peer.node)}
        for other in sorted(self.relation.probed_by(site).difference(chosen)):
            peer = self._agents.get(other)
            if peer is not None:
                trusted[peer.node] = {"site": other, "key": self.key_of(peer.node)}
        sent = self._sent.get(site)
        if not force and sent is not None and sent[0] == probes and sent[1] == trusted:
            return None
        if sent is None and not probes and not trusted and not force:
            return None
        self._sent[site] = (probes, trusted, now)
        return site, probes, trusted
