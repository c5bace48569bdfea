"""What a node does with frames, ticks and broken links; every method runs on the I/O thread.

Nothing here blocks: actors get messages through their Pykka inbox, callbacks go to the
notifier thread, and replies are queued for the next turn of the I/O loop.

A dropped frame or envelope increments ``node.counters[reason]`` and logs one structured
warning per reason and second at most (with the running count), so a flood of garbage cannot
flood the log too.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import pykka
from pykka._envelope import Envelope

import supervisors
from wind_actors.errors import ActorError, Forbidden, NodeDownError, NoSuchActor, WireError
import structlog

from ._authz import (DEPENDS, Access, Identity, check_message, check_watch, scope_verdict,
                     type_verdict)
from ._endpoints import LITERAL_ENDPOINTS, is_literal_endpoint
from ._events import NodeDown, NodeUp
from ._replies import complete, fail
from ._wire import Kind, ask_corr_id, parse_envelope, parse_frame

if TYPE_CHECKING:
    from ._node import Node

__all__ = ["Inbound"]

_log = structlog.get_logger("wind.runtime.inbound")

_REPLY = Kind.REPLY.value
_TELL = Kind.TELL.value
_ASK = Kind.ASK.value


_UNDECIDED: Any = object()

FORBIDDEN = "forbidden"
"""The reason of the Down a refused remote monitor gets (the watcher may not watch that actor)."""

DOWN_REASON_UNDECODABLE = "undecodable"
"""The reason a Down carries when the peer's reason could not be decoded (the Down still fires)."""


class _Envelope(Envelope[Any]):
    """A Pykka envelope that also carries who sent the message (``WatchedActor.sender``)."""

    __slots__ = ("sender",)

    def __init__(self, message: Any, reply_to: Any, sender: Identity) -> None:
        self.message = message
        self.reply_to = reply_to
        self.sender = sender


class _RemoteReply(pykka.Future[Any]):
    """``reply_to`` of a remote ask: the answering actor's thread encodes and sends the reply.

    Deliberately light (no Condition, no queue): one is made per received ask, and it is only
    ever ``set`` once by the actor loop, never read.
    """

    def __init__(self, node: Node, peer: str, corr: int, target: str) -> None:
        # pykka.Future.__init__ is skipped on purpose: the slot is never read.
        self._node, self._peer, self._corr, self._target = node, peer, corr, target

    def set(self, value: Any | None = None) -> None:
        node = self._node
        try:
            body = node.codec.encode(value)
        except WireError as exc:
            self._send_error("unencodable", exc)
            return
        if len(body) > node._body_limit:
            # The transport would refuse the frame and the asker wait out its timeout: answer
            # with the error instead, and say at the sender what to do.
            node.counters["oversized_sent"] += 1
            _log.warning("node.reply_too_large", node=node.name, to=self._peer, actor=self._target,
                         bytes=len(body), max_frame_bytes=node.config.max_frame_bytes,
                         fix="page the reply (the request should ask for less), or raise "
                             "[node] max_frame_bytes on both nodes")
            self._send_error("oversized", WireError(
                f"the reply of {self._target} is {len(body)} bytes, over max_frame_bytes="
                f"{node.config.max_frame_bytes}; ask for less (a page) or raise max_frame_bytes",
                reason="oversized", node=node.name))
            return
        node.transport.send_now(self._peer, [_REPLY, self._corr, body])  # type: ignore[union-attr]

    def set_exception(self, exc_info: Any = None) -> None:
        exc = (exc_info or sys.exc_info())[1]
        if isinstance(exc, pykka.ActorDeadError):
            self._send_error("unknown_target", NoSuchActor(f"actor {self._target!r} stopped before "
                                                           "answering", node=self._node.name))
        else:
            self._send_error("actor", exc)

    def _send_error(self, reason: str, exc: BaseException | None) -> None:
        node = self._node
        try:
            body = node.codec.encode(exc)
        except WireError:
            body = node.codec.encode(ActorError(repr(exc), remote_type=type(exc).__name__))
        node.transport.send_now(self._peer, [Kind.ERROR, self._corr, reason, body])  # type: ignore[union-attr]


class Inbound:
    """The transport handler of a node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._warned_at: dict[str, float] = {}
        self._silent_held = 0  # peers that never answered since the last such warning

    # -- drops --------------------------------------------------------------------------------

    def drop(self, reason: str, **context: Any) -> None:
        """Count a dropped frame/envelope and log (rate-limited) one structured warning."""
        counters = self.node.counters
        counters[reason] += 1
        counters["dropped"] += 1
        now = time.monotonic()
        if now - self._warned_at.get(reason, -10.0) >= 1.0:
            self._warned_at[reason] = now
            _log.warning("dropped", node=self.node.name, reason=reason,
                         dropped_total=counters[reason], **context)

    # -- TransportHandler -----------------------------------------------------------------------

    def resolve(self, peer: str) -> tuple[str, bytes | None] | None:
        resolved = self.node.resolve(peer)
        if resolved is not None:
            self.want(peer)
        return resolved

    def want(self, peer: str) -> None:
        """Start (re)connecting to ``peer`` if it is not up (I/O thread); configured peers are
        pinned (never forgotten). Beyond ``max_peers`` the membership refuses and counts it."""
        node = self.node
        address = node._addresses.get(peer, "")
        now = time.monotonic()
        if node.membership.want(peer, address, now, pinned=peer in node.config.peers):
            # ping at once so a fresh link comes up without waiting for the next tick
            seq = node.membership.ping_now(peer, now)
            node.transport.send(peer, [Kind.PING, seq, now])  # type: ignore[union-attr]

    def on_tick(self, now: float) -> float:
        """One heartbeat tick (I/O thread): linear in the peers, once per interval."""
        node = self.node
        membership = node.membership
        tick = membership.tick(now)
        for peer, previous in tick.lost:
            self._peer_down(peer, previous, "heartbeat_timeout")
        if tick.never_answered:  # what a failed CURVE handshake looks like from here
            self._never_answered(tick.never_answered, now)
        for peer in tick.forgotten + tick.redial:  # forgotten: closed; redial: made anew
            node.transport.reset_peer(peer)  # type: ignore[union-attr]
        if tick.forgotten:
            _log.info("peers forgotten: down and unused", node=node.name,
                      count=len(tick.forgotten), first=tick.forgotten[:5],
                      forget_after=membership.forget_after)
        refused = membership.refusals_to_report(now)
        if refused is not None:
            _log.warning("peers refused: max_peers reached", node=node.name, refused=refused[0],
                         last=refused[1], max_peers=membership.max_peers,
                         peer_limit_total=node.counters["peer_limit"],
                         allowed="raise [node] max_peers, or fewer peers")
        send = node.transport.send  # type: ignore[union-attr]
        for peer, seq in tick.pings:
            send(peer, [Kind.PING, seq, now])
        if len(node.pending):
            for entry in node.pending.take_where(lambda p: p.deadline <= now):
                fail(entry, _timeout_error(entry))
        return min(membership.next_deadline(), now + membership.interval)

    def _never_answered(self, peers: list[str], now: float) -> None:
        """One warning a second at most, naming a few: a flood of names must not flood the log."""
        self._silent_held += len(peers)
        if now - self._warned_at.get("never_answered", -10.0) < 1.0:
            return
        self._warned_at["never_answered"] = now
        first = peers[0]
        _log.warning("peer never answered our pings", node=self.node.name, peer=first,
                     address=self.node._addresses.get(first), peers_total=self._silent_held,
                     others=peers[1:4], hint="is it running at that address, and does it "
                                             "trust our key (in its keys_dir, or vouched)?")
        self._silent_held = 0

    def on_link_lost(self, peer: str, why: str) -> None:
        previous = self.node.membership.lost(peer, time.monotonic())
        if previous is not None:
            self._peer_down(peer, previous, why)

    def _peer_down(self, peer: str, previous: str, why: str) -> None:
        node = self.node
        node.transport.reset_peer(peer)  # type: ignore[union-attr]
        err = NodeDownError(f"link to node {peer} lost ({why})", node=peer, reason=why)
        for entry in node.pending.take_where(lambda p: p.peer == peer):
            fail(entry, err)
        for mon in node.monitors.pop_out_of_peer(peer):
            node.deliver(mon.watcher, supervisors.Down(mon.public_id, mon.ref,
                                                       supervisors.NOCONNECTION))
        for local_id in node.monitors.pop_incoming_of_peer(peer):
            supervisors.demonitor(local_id)
        if previous == "up":
            node.publish(NodeDown(peer, why))

    def on_frame(self, data: bytes, user_id: str | None) -> bool:
        """Handle one frame; returns True when an ask or a reply went to a waiting thread."""
        node = self.node
        try:
            frame = parse_frame(data, node.config.max_frame_bytes)
        except WireError as exc:
            self.drop(exc.reason, peer=user_id, detail=exc.message)
            return False
        src = frame.src
        if user_id is not None and user_id != src:
            self.drop("spoofed", peer=user_id, claimed=src,
                      detail="frame names another node than its CURVE key")
            return False
        if node.transport.is_blocked(src):  # type: ignore[union-attr]
            node.counters["blocked_in"] += 1
            return False
        sender = node.trusted_identity(src)
        if sender is None:
            # Trusted when it connected (ZAP checked its key), not any more: a vouched peer
            # dropped from the set, or a key file removed. Its connection outlives the trust,
            # so it is refused here, heartbeats included, and never tracked.
            self.drop("untrusted_peer", peer=src, detail="its key is no longer trusted here",
                      allowed="peers whose key is filed in keys_dir or vouched for now")
            return False
        address = frame.src_address
        if address and address != node._addresses.get(src) and not is_literal_endpoint(address):
            self.drop("bad_address", peer=src, address=address[:80],
                      detail="the frame's return address is not a literal endpoint",
                      allowed=LITERAL_ENDPOINTS)
            return False
        node.learn_address(src, address)
        if node.membership.heard(src, address, time.monotonic()):
            node.publish(NodeUp(src))
        decode = node.codec.decode
        targets: dict[str, tuple[Any, Access, dict[type, str | None]]] = {}  # tells share one
        delivered = 0
        handed = False
        for raw in frame.envelopes:
            try:
                # Fast paths for the bulk of traffic, well-formed TELL, ASK and REPLY envelopes;
                # anything else (or anything odd) goes through parse_envelope's full checks in
                # _dispatch.
                if type(raw) is not list or type(raw[0] if raw else None) is not int:
                    self._dispatch(src, sender, raw)  # raises the precise error
                elif (raw[0] == _TELL and len(raw) == 3 and type(raw[1]) is str
                        and type(raw[2]) is bytes):
                    target = targets.get(raw[1])
                    if target is None:
                        target = targets[raw[1]] = (*self._target(src, raw[1]), {})
                    message = decode(raw[2])
                    # one verdict per frame, target and type unless the rule reads a field
                    why = target[2].get(type(message), _UNDECIDED)
                    if why is _UNDECIDED:
                        why = target[2][type(message)] = type_verdict(sender, type(message),
                                                                      target[1])
                    if why is DEPENDS:
                        why = scope_verdict(sender, message)
                    if why is None:
                        target[0].put(_Envelope(message, None, sender))
                        delivered += 1
                    else:
                        self._refused(sender, raw[1], why)
                elif (raw[0] == _ASK and len(raw) == 4 and type(raw[1]) is str
                        and type(raw[2]) is int and type(raw[3]) is bytes):
                    # liveness checked per ask (not cached per frame as for tells): an ask
                    # put into the inbox of an actor that just stopped would wait for its timeout
                    if self._ask(src, sender, raw[1], raw[2], raw[3]):
                        delivered += 1
                        handed = True
                elif (raw[0] == _REPLY and len(raw) == 3 and type(raw[1]) is int
                        and type(raw[2]) is bytes):
                    self._reply(src, raw[1], raw[2])
                    handed = True
                else:
                    self._dispatch(src, sender, raw)
            except WireError as exc:
                self.drop(exc.reason, peer=src, detail=exc.message)
                corr = ask_corr_id(raw)
                if corr is not None:
                    self._error_reply(src, corr, exc.reason, exc)
        if delivered:
            node.counters["delivered"] += delivered
        return handed

    # -- authorization ----------------------------------------------------------------------

    def _admit(self, sender: Identity, message: Any, access: Access, target: str) -> bool:
        """Whether ``sender`` may send ``message`` to ``target``; a refusal is counted and logged."""
        why = check_message(sender, message, access)
        if why is None:
            return True
        self._refused(sender, target, why)
        return False

    def _refused(self, sender: Identity, target: str, why: str) -> None:
        self.drop("forbidden", peer=sender.node, role=sender.role, actor=target, detail=why)

    def _ask(self, src: str, sender: Identity, name: str, corr: int, body: bytes) -> bool:
        """Deliver an ask (True) or answer it with the refusal (False)."""
        inbox, access = self._target(src, name)
        message = self.node.codec.decode(body)
        why = check_message(sender, message, access)
        if why is not None:
            self.drop("forbidden", peer=src, role=sender.role, actor=name, detail=why)
            self._error_reply(src, corr, "forbidden", Forbidden(why, node=self.node.name))
            return False
        inbox.put(_Envelope(message, _RemoteReply(self.node, src, corr, name), sender))
        return True

    # -- envelopes ------------------------------------------------------------------------------

    def _dispatch(self, src: str, sender: Identity, raw: Any) -> None:
        env = parse_envelope(raw)
        kind = env[0]
        node = self.node
        # most frequent kinds first; _target() checked liveness already, so the inbox is
        # used directly (ActorRef.tell would check it a second time)
        if kind is Kind.TELL:
            inbox, access = self._target(src, env[1])
            message = node.codec.decode(env[2])
            if self._admit(sender, message, access, env[1]):
                inbox.put(_Envelope(message, None, sender))
                node.counters["delivered"] += 1
        elif kind is Kind.ASK:
            if self._ask(src, sender, env[1], env[2], env[3]):
                node.counters["delivered"] += 1
        elif kind is Kind.REPLY:
            self._reply(src, env[1], env[2])
        elif kind is Kind.ERROR:
            self._error(src, env[1], env[2], env[3])
        elif kind is Kind.PING:
            if node.membership.tracks(src):  # a peer refused for max_peers gets no answer
                node.transport.send(src, [Kind.PONG, env[1], env[2]])  # type: ignore[union-attr]
                now = time.monotonic()
                seq = node.membership.probe(src, now)  # not up here: ping back, up in one RTT
                if seq is not None:
                    node.transport.send(src, [Kind.PING, seq, now])  # type: ignore[union-attr]
        elif kind is Kind.PONG:
            # only an answer to our own ping proves the peer hears us (symmetric detection)
            if node.membership.pong(src, env[1], env[2], time.monotonic()):
                node.publish(NodeUp(src))
        elif kind is Kind.MONITOR:
            self._monitor(src, sender, env[1], env[2])
        elif kind is Kind.DEMONITOR:
            local_id = node.monitors.pop_incoming(src, env[1])
            if local_id is not None:
                supervisors.demonitor(local_id)
        elif kind is Kind.DOWN:
            self._down(src, env[1], env[2])
        elif kind is Kind.LINK:
            why = check_watch(sender, "link", node.registry.access_of(env[1]).link)
            if why is not None:
                self.drop("forbidden", peer=src, role=sender.role, actor=env[1], detail=why)
            else:
                node.watches.on_link(src, env[1], env[2])
        elif kind is Kind.UNLINK:
            node.watches.on_unlink(src, env[1], env[2])

    def _target(self, src: str, name: str) -> tuple[Any, Access]:
        """The inbox of the live actor registered as ``name``, and who may reach it."""
        registry = self.node.registry
        actor = registry.whereis(name)  # None unless registered and alive
        if actor is None:
            raise _no_target(src, name)
        return actor.actor_inbox, registry.access_of(name)

    def _taken(self, src: str, corr: int) -> Any | None:
        """The pending ask ``corr`` if ``src`` is the node it was sent to, else None (counted)."""
        entry, forged = self.node.pending.take_from(corr, src)
        if forged:
            # a reply to somebody else's ask: never delivered, and the real one still can be
            self.drop("forged_reply", peer=src, detail="a reply to an ask that went to another node")
        elif entry is None:
            self.node.counters["late_reply"] += 1  # the asker gave up; never delivered elsewhere
        return entry

    def _down(self, src: str, wire_id: int, body: bytes) -> None:
        entry, forged = self.node.monitors.pop_out_from(wire_id, src)
        if forged:
            self.drop("forged_down", peer=src, detail="a DOWN for an actor on another node")
            return
        if entry is None:
            return
        try:
            reason = self.node.codec.decode(body)
        except WireError as exc:  # the monitor still fires: a lost Down would leave it hanging
            self.drop(exc.reason, peer=src, detail=f"DOWN reason: {exc.message}")
            reason = DOWN_REASON_UNDECODABLE
        self.node.deliver(entry.watcher, supervisors.Down(entry.public_id, entry.ref, reason))

    def _reply(self, src: str, corr: int, body: bytes) -> None:
        entry = self._taken(src, corr)
        if entry is None:
            return
        try:
            value = self.node.codec.decode(body)
        except WireError as exc:
            fail(entry, exc)
            return
        complete(entry, value)

    def _error(self, src: str, corr: int, reason: str, body: bytes) -> None:
        entry = self._taken(src, corr)
        if entry is None:
            return
        try:
            remote = self.node.codec.decode(body)
        except WireError as exc:
            remote = exc
        text = getattr(remote, "message", str(remote))
        if reason == "actor" and isinstance(remote, ActorError):
            err: Exception = remote
            remote.context.setdefault("node", entry.peer)
        elif reason == "unknown_target":
            err = NoSuchActor(text, node=entry.peer)
        elif reason == "forbidden":
            err = Forbidden(f"{entry.peer} refused the ask: {text}", node=entry.peer)
        else:
            err = WireError(f"{entry.peer} rejected the ask: {text}", reason=reason, node=entry.peer)
        fail(entry, err)

    def _error_reply(self, src: str, corr: int, reason: str, exc: BaseException) -> None:
        node = self.node
        body = node.codec.encode(ActorError(getattr(exc, "message", str(exc)),
                                            remote_type=type(exc).__name__))
        node.transport.send(src, [Kind.ERROR, corr, reason, body])  # type: ignore[union-attr]

    def _monitor(self, src: str, sender: Identity, wire_id: int, name: str) -> None:
        node = self.node
        actor = node.whereis(name)
        why = check_watch(sender, "monitor", node.registry.access_of(name).monitor) if actor else None
        if actor is None or why is not None:
            if why is not None:
                self.drop("forbidden", peer=src, role=sender.role, actor=name, detail=why)
            body = node.codec.encode(supervisors.NOPROC if why is None else FORBIDDEN)
            node.transport.send(src, [Kind.DOWN, wire_id, body])  # type: ignore[union-attr]
            return
        # Registered before supervisors.monitor so a Down fired at once (noproc) or from the
        # target's thread meanwhile still finds its entry; a missing entry means demonitored.
        node.monitors.add_incoming(src, wire_id, "")

        def report(down: supervisors.Down) -> None:  # runs where the target ended
            if node.monitors.pop_incoming(src, wire_id) is None:
                return
            try:
                body = node.codec.encode(down.reason)
            except WireError:
                body = node.codec.encode(supervisors.describe(down.reason))
            node.transport.send(src, [Kind.DOWN, wire_id, body])  # type: ignore[union-attr]

        try:
            local_id = supervisors.monitor(actor, report)
        except Exception as exc:  # noqa: BLE001 - NotWatchableError: not a WatchedActor
            _log.warning("remote monitor refused: target is not a WatchedActor", node=node.name,
                         peer=src, actor=name, error=str(exc))
            report(supervisors.Down("", actor, supervisors.NOPROC))
            return
        node.monitors.set_incoming(src, wire_id, local_id)


def _no_target(src: str, name: str) -> WireError:
    return WireError(f"no actor {name!r} is registered here", reason="unknown_target",
                     peer=src, actor=name)


def _timeout_error(entry: Any) -> Exception:
    from wind_actors.errors import AskTimeout
    return AskTimeout(f"no reply from node {entry.peer} in time", node=entry.peer)
