"""Membership: which peers are up, heartbeats, failure detection and round-trip times.

Pure bookkeeping driven by the I/O thread with explicit ``now`` values (``time.monotonic``), so
tests can use any clock. Nothing here sends or sleeps; methods return what should happen.

A peer is ``connecting`` (asked for, not heard yet), ``up`` or ``down``. Every peer is pinged
once per ``interval`` whatever its state, which is how a peer comes back after a partition.
A peer is declared lost when nothing came from it for ``interval * misses`` seconds; with the
LAN defaults (0.2 s x 3) a silent peer is noticed within about 0.8 s. A closed TCP connection
is reported by ZeroMQ at once and ends the peer even sooner (:meth:`Membership.lost`).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

__all__ = ["Membership", "PeerState", "Tick", "DEFAULT_HEARTBEAT_INTERVAL",
           "DEFAULT_HEARTBEAT_MISSES"]

DEFAULT_HEARTBEAT_INTERVAL = 0.2
DEFAULT_HEARTBEAT_MISSES = 3

CONNECTING, UP, DOWN = "connecting", "up", "down"


@dataclasses.dataclass
class PeerState:
    """What this node knows about one peer."""

    name: str
    address: str
    status: str = CONNECTING
    since: float = 0.0
    last_heard: float = 0.0
    last_ping: float = float("-inf")
    seq: int = 0
    rtt_ms: float | None = None
    ever_up: bool = False


class Tick(NamedTuple):
    """What a heartbeat tick asks for: ``pings`` to send as ``(peer, seq)``, and the peers
    ``lost`` as ``(peer, previous_status)``."""

    pings: list[tuple[str, int]]
    lost: list[tuple[str, str]]


class Membership:
    """Heartbeat bookkeeping for one node.

    Args:
        interval: seconds between pings to each peer.
        misses: intervals of silence after which a peer is declared lost.
    """

    def __init__(self, interval: float = DEFAULT_HEARTBEAT_INTERVAL,
                 misses: int = DEFAULT_HEARTBEAT_MISSES) -> None:
        self.interval = interval
        self.misses = misses
        self.peers: dict[str, PeerState] = {}

    @property
    def grace(self) -> float:
        """Seconds of silence tolerated before a peer is lost."""
        return self.interval * self.misses

    def want(self, name: str, address: str, now: float) -> bool:
        """Note that traffic is meant for ``name``; returns True when a (re)connect starts."""
        peer = self.peers.get(name)
        if peer is None:
            self.peers[name] = PeerState(name, address, since=now, last_heard=now)
            return True
        if address and peer.address != address:
            peer.address = address
        if peer.status == DOWN:
            peer.status, peer.since, peer.last_heard = CONNECTING, now, now
            return True
        return False

    def heard(self, name: str, address: str, now: float) -> bool:
        """Something arrived from ``name``; returns True when the peer just came up."""
        peer = self.peers.get(name)
        if peer is None:
            peer = self.peers[name] = PeerState(name, address, since=now)
        elif address and peer.address != address:
            peer.address = address
        peer.last_heard = now
        if peer.status == UP:
            return False
        peer.status, peer.since, peer.ever_up = UP, now, True
        return True

    def pong(self, name: str, seq: int, sent_at: float, now: float) -> None:
        """Record the round trip of the latest ping; late echoes of older pings are ignored."""
        peer = self.peers.get(name)
        if peer is not None and seq == peer.seq and now >= sent_at:
            sample = (now - sent_at) * 1000.0
            peer.rtt_ms = sample if peer.rtt_ms is None else 0.7 * peer.rtt_ms + 0.3 * sample

    def lost(self, name: str, now: float) -> str | None:
        """The link to ``name`` broke; returns its previous status, or None if already down."""
        peer = self.peers.get(name)
        if peer is None or peer.status == DOWN:
            return None
        previous = peer.status
        peer.status, peer.since = DOWN, now
        return previous

    def ping_now(self, name: str, now: float) -> int:
        """Account for a ping sent to ``name`` outside :meth:`tick`; returns its sequence."""
        peer = self.peers[name]
        peer.seq += 1
        peer.last_ping = now
        return peer.seq

    def forget(self, name: str) -> None:
        """Stop tracking ``name`` (no more pings)."""
        self.peers.pop(name, None)

    def tick(self, now: float) -> Tick:
        """Advance to ``now``: which pings are due, which peers fell silent too long."""
        pings: list[tuple[str, int]] = []
        lost: list[tuple[str, str]] = []
        for peer in self.peers.values():
            if peer.status != DOWN and now - peer.last_heard > self.grace:
                lost.append((peer.name, peer.status))
                peer.status, peer.since = DOWN, now
            if now - peer.last_ping >= self.interval * 0.999:
                peer.seq += 1
                peer.last_ping = now
                pings.append((peer.name, peer.seq))
        return Tick(pings, lost)

    def next_deadline(self) -> float:
        """The earliest time :meth:`tick` has something to do."""
        if not self.peers:
            return float("inf")
        return min(p.last_ping for p in self.peers.values()) + self.interval

    def status(self, name: str) -> str | None:
        """``"connecting"``, ``"up"``, ``"down"`` or ``None`` for an unknown peer."""
        peer = self.peers.get(name)
        return None if peer is None else peer.status

    def rtt_ms(self) -> dict[str, float]:
        """Smoothed heartbeat round-trip time per peer that has answered, in milliseconds."""
        return {n: round(p.rtt_ms, 3) for n, p in self.peers.items() if p.rtt_ms is not None}
