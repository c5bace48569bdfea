"""Membership: which peers are up, heartbeats, failure detection and round-trip times.

Pure bookkeeping driven by the I/O thread with explicit ``now`` values (``time.monotonic``), so
tests can use any clock. Nothing here sends or sleeps; methods return what should happen.

A peer is ``connecting`` (asked for, not answered yet), ``up`` or ``down``. Failure detection
is symmetric: a peer is alive only while it answers *our* pings. A PONG echoes the send time of
the ping it answers, and that echoed time (never the time a frame arrived) is what refreshes
the peer, so:

- a peer whose frames reach us but which does not hear us (a one-way cut either way) stops
  answering and is declared lost, on both sides, as a full partition would be;
- a node that was frozen (SIGSTOP, a long GC pause) finds on its next tick that nobody answered
  anything it sent for the whole pause, and declares its peers lost as they declared it.

Any other frame (the peer's own pings, tells) only tells us the peer exists: it is tracked and
pinged, but it comes ``up`` on the first PONG.

Ticks run on a fixed cadence, once per ``interval``, and each is linear in the number of peers:
every peer is pinged once per tick whatever its state, which is how a peer comes back after a
partition (and a dead one costs a ping per interval until it is forgotten); a down peer's
connection is also made anew every couple of seconds (:attr:`Tick.redial`). A peer is declared lost at the first tick more than
``interval * misses`` (plus half an interval of slack for tick jitter) after the send time of
the newest ping it answered; with the LAN defaults (0.2 s x 3) a peer cut off is declared lost
0.6-0.8 s after the cut. A closed TCP connection ends the peer sooner (:meth:`Membership.lost`).

Bounded: at most ``max_peers`` are tracked (a new one beyond that is refused and counted as
``peer_limit``), and a peer that has been down for ``forget_after`` seconds with no traffic
either way (nobody sending to it, no frame from it) is forgotten (unless pinned: the configured
``[node.peers]``). A peer still sending to us is never forgotten: it would be tracked again by
its next frame, and an answer queued for it meanwhile would find it untracked.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import NamedTuple

__all__ = ["Membership", "PeerState", "Tick", "DEFAULT_HEARTBEAT_INTERVAL",
           "DEFAULT_HEARTBEAT_MISSES", "DEFAULT_MAX_PEERS", "DEFAULT_FORGET_AFTER"]

DEFAULT_HEARTBEAT_INTERVAL = 0.2
DEFAULT_HEARTBEAT_MISSES = 3
DEFAULT_MAX_PEERS = 4096
DEFAULT_FORGET_AFTER = 60.0
REDIAL_EVERY = 2.0

CONNECTING, UP, DOWN = "connecting", "up", "down"


@dataclasses.dataclass(slots=True)
class PeerState:
    """What this node knows about one peer.

    ``last_ok`` is the send time of the newest of our pings it answered (or, before any answer,
    when we started wanting it); ``since`` is when ``status`` last changed; ``heard_at`` when a
    frame from it last arrived while it was down.
    """

    name: str
    address: str
    status: str = CONNECTING
    since: float = 0.0
    last_ok: float = 0.0
    last_ping: float = float("-inf")
    seq: int = 0
    rtt_ms: float | None = None
    ever_up: bool = False
    pinned: bool = False
    silent_reported: bool = False
    dialed_at: float = 0.0
    heard_at: float = float("-inf")


class Tick(NamedTuple):
    """What a heartbeat tick asks for.

    Attributes:
        pings: ``(peer, seq)`` to send.
        lost: ``(peer, previous_status)`` declared lost now.
        forgotten: peers no longer tracked (their sockets should close).
        never_answered: peers lost for the first time without ever having answered a ping
            (worth one warning: wrong address, not running, or our key not trusted there).
        redial: down peers whose connection should be made anew: ZeroMQ never retries a
            connection whose CURVE handshake was refused, and the key may be trusted by now.
    """

    pings: list[tuple[str, int]]
    lost: list[tuple[str, str]]
    forgotten: list[str]
    never_answered: list[str]
    redial: list[str]


class Membership:
    """Heartbeat bookkeeping for one node.

    Args:
        interval: seconds between pings to each peer.
        misses: intervals without an answer after which a peer is declared lost.
        max_peers: most peers tracked at once; more are refused.
        forget_after: seconds a peer stays known while down and unused.
        counters: where refusals are counted (``peer_limit``); a private Counter if omitted.
    """

    def __init__(self, interval: float = DEFAULT_HEARTBEAT_INTERVAL,
                 misses: int = DEFAULT_HEARTBEAT_MISSES, *, max_peers: int = DEFAULT_MAX_PEERS,
                 forget_after: float = DEFAULT_FORGET_AFTER,
                 counters: collections.Counter[str] | None = None) -> None:
        self.interval = interval
        self.misses = misses
        self.max_peers = max_peers
        self.forget_after = forget_after
        self.counters = counters if counters is not None else collections.Counter()
        self.peers: dict[str, PeerState] = {}
        self.refused = 0
        self.last_refused: str | None = None
        self._refused_reported = 0
        self._reported_at = float("-inf")
        self._next_tick = float("-inf")

    @property
    def grace(self) -> float:
        """Seconds without an answer tolerated before a peer is lost."""
        return self.interval * self.misses

    def tracks(self, name: str) -> bool:
        """Whether ``name`` is tracked (and so may have a socket)."""
        return name in self.peers

    def full(self) -> bool:
        """Whether ``max_peers`` are tracked: a new peer would be refused."""
        return len(self.peers) >= self.max_peers

    def _admit(self, name: str, address: str, now: float) -> PeerState | None:
        """A new entry for ``name``, or None (counted) when ``max_peers`` are tracked already."""
        if len(self.peers) >= self.max_peers:
            self.counters["peer_limit"] += 1
            self.refused += 1
            self.last_refused = name
            return None
        peer = self.peers[name] = PeerState(name, address, since=now, last_ok=now)
        return peer

    def want(self, name: str, address: str, now: float, *, pinned: bool = False) -> bool:
        """Note that traffic is meant for ``name``.

        Args:
            pinned: never forget this peer (a configured one).

        Returns:
            True when a (re)connect starts: the caller should ping it now. False when it is
            already up or connecting, or refused for ``max_peers``.
        """
        peer = self.peers.get(name)
        if peer is None:
            peer = self._admit(name, address, now)
            if peer is not None:
                peer.pinned = pinned
            return peer is not None
        peer.pinned = peer.pinned or pinned
        if address and peer.address != address:
            peer.address = address
        if peer.status == DOWN:
            # since moves: wanting a down peer is what keeps it from being forgotten
            peer.status, peer.since, peer.last_ok = CONNECTING, now, now
            return True
        return False

    def heard(self, name: str, address: str, now: float) -> bool:
        """A frame arrived from ``name``: track it (so it is pinged) and learn its address.

        Returns:
            Always False: a frame alone proves the peer sends, not that it hears us, so only
            :meth:`pong` brings a peer up (the bool is kept for callers that publish NodeUp).
        """
        peer = self.peers.get(name)
        if peer is None:
            self._admit(name, address, now)
            return False
        if address and peer.address != address:
            peer.address = address
        if peer.status == DOWN:
            peer.heard_at = now  # in use: not forgotten while it keeps talking to us
        return False

    def pong(self, name: str, seq: int, sent_at: float, now: float) -> bool:
        """An answer to our ping ``seq`` sent at ``sent_at`` (echoed by the peer).

        Returns:
            True when the peer just came up. An answer to a ping older than the peer's last
            status change (a delayed one) refreshes nothing it did not prove.
        """
        peer = self.peers.get(name)
        if peer is None or not 0 < seq <= peer.seq or sent_at > now:
            return False
        if seq == peer.seq:  # round trip of the latest ping only: late echoes would skew it
            sample = (now - sent_at) * 1000.0
            peer.rtt_ms = sample if peer.rtt_ms is None else 0.7 * peer.rtt_ms + 0.3 * sample
        if sent_at > peer.last_ok:
            peer.last_ok = sent_at
        if peer.status == UP or sent_at < peer.since:
            return False
        peer.status, peer.since, peer.ever_up = UP, now, True
        return True

    def lost(self, name: str, now: float) -> str | None:
        """The link to ``name`` broke; returns its previous status, or None if already down."""
        peer = self.peers.get(name)
        if peer is None or peer.status == DOWN:
            return None
        previous = peer.status
        peer.status, peer.since, peer.dialed_at = DOWN, now, now
        return previous

    def ping_now(self, name: str, now: float) -> int:
        """Account for a ping sent to ``name`` outside :meth:`tick`; returns its sequence."""
        peer = self.peers[name]
        peer.seq += 1
        peer.last_ping = now
        return peer.seq

    def probe(self, name: str, now: float) -> int | None:
        """A ping from ``name`` arrived: if we do not count it as up, ping it back at once
        (the peer's own pings pace this; the floor only stops a batch of its pings from
        asking for several) so both sides come up within a round trip.

        Returns:
            The sequence of the ping to send, or None.
        """
        peer = self.peers.get(name)
        if peer is None or peer.status == UP or now - peer.last_ping < self.interval * 0.05:
            return None
        return self.ping_now(name, now)

    def refusals_to_report(self, now: float) -> tuple[int, str] | None:
        """Refusals since the last report, at most one report a second (for one log line).

        Returns:
            ``(how many, the last name refused)``, or None when there is nothing to report yet.
        """
        new = self.refused - self._refused_reported
        if not new or now - self._reported_at < 1.0:
            return None
        self._refused_reported, self._reported_at = self.refused, now
        return new, self.last_refused or ""

    def forget(self, name: str) -> None:
        """Stop tracking ``name`` (no more pings)."""
        self.peers.pop(name, None)

    def tick(self, now: float) -> Tick:
        """Advance to ``now``: which pings are due, which peers are lost or forgotten."""
        pings: list[tuple[str, int]] = []
        lost: list[tuple[str, str]] = []
        forgotten: list[str] = []
        silent: list[str] = []
        redial: list[str] = []
        redial_every = max(REDIAL_EVERY, self.grace)
        limit = self.grace + self.interval * 0.5
        due = self.interval * 0.999  # ticks come once per interval, a hair early or late
        for peer in self.peers.values():
            if peer.status != DOWN:
                if now - peer.last_ok > limit:
                    lost.append((peer.name, peer.status))
                    if not peer.ever_up and not peer.silent_reported:
                        peer.silent_reported = True
                        silent.append(peer.name)
                    peer.status, peer.since, peer.dialed_at = DOWN, now, now
            elif not peer.pinned and now - max(peer.since, peer.heard_at) >= self.forget_after:
                forgotten.append(peer.name)
                continue
            elif now - peer.dialed_at >= redial_every:
                peer.dialed_at = now
                redial.append(peer.name)
            if now - peer.last_ping >= due:
                peer.seq += 1
                peer.last_ping = now
                pings.append((peer.name, peer.seq))
        for name in forgotten:
            del self.peers[name]
        self._next_tick = now + self.interval
        return Tick(pings, lost, forgotten, silent, redial)

    def next_deadline(self) -> float:
        """When :meth:`tick` should run next: one interval after the last tick."""
        return self._next_tick

    def status(self, name: str) -> str | None:
        """``"connecting"``, ``"up"``, ``"down"`` or ``None`` for an unknown peer."""
        peer = self.peers.get(name)
        return None if peer is None else peer.status

    def rtt_ms(self) -> dict[str, float]:
        """Smoothed heartbeat round-trip time per peer that has answered, in milliseconds."""
        return {n: round(p.rtt_ms, 3) for n, p in list(self.peers.items()) if p.rtt_ms is not None}
