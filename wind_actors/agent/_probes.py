"""An agent's RTT probe peers, as the controller tells them (``OverlayPeers``).

No agent's trust folder holds another agent's key. The controller, which files every agent's
key, tells each agent the agents it probes and those probing it, each with its site and public
key; :func:`apply_peers` has the node's trust policy vouch for exactly that set
(``TrustPolicy.vouch``: as agents of those sites, a filed key winning over a vouched one),
connects to the probes (so heartbeats measure their round-trip times; connecting again each time
makes a probe peer the node forgot while it was down tracked again) and disconnects the peers
that left the set, whose frames are refused from then on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import structlog

from wind_actors.errors import WindError
from wind_actors.runtime import AGENT, Identity
from wind_actors.runtime._endpoints import LITERAL_ENDPOINTS, is_literal_endpoint
from wind_actors.runtime._trust import MAX_VOUCHED

__all__ = ["Peer", "apply_peers", "parse_peers"]

_log = structlog.get_logger("wind.agent.probes")


class Peer(NamedTuple):
    """One peer of an ``OverlayPeers`` message.

    Attributes:
        site: the site it is the agent of.
        key: its CURVE public key (z85 text), or None (no CURVE at the controller).
        endpoint: where to connect (a probe), or None (it probes us: trust only).
    """

    site: str
    key: str | None
    endpoint: str | None


def parse_peers(probes: Mapping[str, Any],
                trusted: Mapping[str, Any]) -> tuple[dict[str, Peer], dict[str, str]]:
    """The well-formed entries of an ``OverlayPeers`` message, and why the others are not.

    Returns:
        ``({node: Peer}, {node: why})``; a node in both tables is a probe.
    """
    peers: dict[str, Peer] = {}
    bad: dict[str, str] = {}
    for table, probe in ((trusted, False), (probes, True)):
        for name, entry in table.items():
            why = _malformed(name, entry, probe)
            if why is not None:
                bad[str(name)[:80]] = why
                continue
            peers[name] = Peer(entry["site"], entry.get("key"), entry["endpoint"] if probe else None)
    return peers, bad


def _malformed(name: Any, entry: Any, probe: bool) -> str | None:
    if not isinstance(name, str) or not name:
        return "the node name must be a non-empty string"
    if not isinstance(entry, Mapping):
        return "an entry must be a map of site, key (and endpoint for a probe)"
    if not isinstance(entry.get("site"), str) or not entry["site"]:
        return "no site"
    if entry.get("key") is not None and not isinstance(entry["key"], str):
        return "the key must be z85 text"
    if probe and not (isinstance(entry.get("endpoint"), str) and is_literal_endpoint(entry["endpoint"])):
        return f"a probe's endpoint must be {LITERAL_ENDPOINTS}"
    return None


def apply_peers(node: Any, site: str, held: Mapping[str, str], probes: Mapping[str, Any],
                trusted: Mapping[str, Any]) -> dict[str, str]:
    """Trust exactly the peers told, connect to the probes, disconnect the peers that left.

    Args:
        node: the agent's node.
        site: the agent's site (for the log).
        held: what the last call returned (the peers told before).
        probes: ``OverlayPeers.probes``; trusted: ``OverlayPeers.trusted``.

    Returns:
        ``{node: endpoint, or "" for a trusted-only peer}`` of every peer told (refused ones
        included: the report counts what the controller sent, so it does not resend the same).
        When the message holds more than ``MAX_VOUCHED`` peers nothing changes and ``held``
        comes back.
    """
    told = {str(n): "" for n in trusted}
    told.update({str(n): str(e.get("endpoint", "")) if isinstance(e, Mapping) else ""
                 for n, e in probes.items()})
    told.pop(node.name, None)
    if len(told) > MAX_VOUCHED:
        _log.error("overlay.peers_refused", site=site, peers=len(told), why="too many peers told",
                   allowed=f"at most {MAX_VOUCHED}")
        return dict(held)
    peers, bad = parse_peers(probes, trusted)
    peers.pop(node.name, None)
    trust = node.trust
    if trust is not None:
        keyed = {name: p for name, p in peers.items() if p.key is not None}
        bad.update({name: "no public key given (the controller runs without CURVE?)"
                    for name in peers.keys() - keyed.keys()})
        bad.update(trust.vouch((Identity(name, AGENT, p.site), p.key) for name, p in keyed.items()))
    for name, why in bad.items():
        _log.warning("overlay.peer_refused", site=site, peer=name, why=why)
    for name, peer in peers.items():
        if peer.endpoint is None or name in bad:
            continue
        try:  # again each time: idempotent, and it makes a peer the node forgot tracked again
            node.connect(name, peer.endpoint, wait=False)
        except WindError as exc:  # not trusted after all (a clash): no RTT to it
            _log.warning("overlay.peer_unreachable", site=site, peer=name, error=str(exc))
    for name in held.keys() - told.keys():
        # Left the set: stop heartbeats (O(set) work only) unless the folder still trusts it.
        if trust is None or trust.identity_of_name(name) is None:
            node.disconnect(name, "not_a_probe_peer")
    return told
