"""The transport: one I/O thread per node that owns every ZeroMQ socket of that node.

Sockets: one PULL bound on the node's address receives every peer's frames; one PUSH per
peer carries this node's frames to that peer's PULL (so each direction of a pair is one TCP
connection, which is what keeps FIFO per sender-receiver pair). Replies travel on the
replier's own PUSH, never back on the asker's connection, so the bound socket needs no
routing ids: PULL hands over one part per frame where a ROUTER needed two receives.

Any thread may call :meth:`Transport.send`; it only appends to a queue and wakes the I/O thread through an
eventfd. The I/O thread drains everything queued at once and packs the envelopes for one peer
into as few frames as ``max_frame_bytes`` allows: that batching is where the throughput
comes from.

ZeroMQ errors never leave this module; they are logged, counted and mapped to peer loss.
"""

from __future__ import annotations

import collections
import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import msgpack
import zmq
from zmq.backend import zmq_poll
from zmq.utils.monitor import parse_monitor_message

from wind_actors.errors import NodeError, WireError
import structlog

from ._security import ZAP_DOMAIN, KeyPair
from ._wire import build_frame

__all__ = ["Transport", "TransportHandler"]

_log = structlog.get_logger("wind.runtime.transport")

# Headroom over max_frame_bytes for ZMQ_MAXMSGSIZE: CURVE adds a few dozen bytes per message,
# and the application check (exact, counted) should fire before ZeroMQ cuts the connection.
_MAXMSGSIZE_SLACK = 4096
_ENVELOPE_OVERHEAD = 48
_MAX_DRAIN = 20000
_MAX_RECV = 2000
_RECV_BUDGET_S = 0.02


class TransportHandler(Protocol):
    """What the transport calls, always on the I/O thread. Must not block."""

    def on_frame(self, data: bytes, user_id: str | None) -> bool:
        """Handle one frame; True when it handed an ask or a reply to a waiting thread."""
    def on_tick(self, now: float) -> float: ...
    def on_link_lost(self, peer: str, why: str) -> None: ...
    def resolve(self, peer: str) -> tuple[str, bytes | None] | None: ...
    def want(self, peer: str) -> None: ...


class _Outbound:
    __slots__ = ("sock", "monitor", "address", "auth_warned")

    def __init__(self, sock: zmq.Socket, monitor: zmq.Socket, address: str) -> None:
        self.sock = sock
        self.monitor = monitor
        self.address = address
        self.auth_warned = False


class Transport:
    """Sockets and the I/O thread of one node.

    Args:
        node: this node's name.
        bind: ZeroMQ endpoint to bind, e.g. ``tcp://127.0.0.1:7001`` (port 0 picks one).
        context: the node's own ``zmq.Context`` (ZAP is per context).
        keypair: this node's CURVE keys, or ``None`` for plain TCP.
        max_frame_bytes: largest frame sent or accepted.
        handler: receives frames, ticks and link losses on the I/O thread.
        counters: the node's drop counters (shared, incremented here too).
    """

    def __init__(self, *, node: str, bind: str, context: zmq.Context, keypair: KeyPair | None,
                 max_frame_bytes: int, handler: TransportHandler,
                 counters: collections.Counter[str]) -> None:
        self.node = node
        self._ctx = context
        self._keys = keypair
        self._max = max_frame_bytes
        self._handler = handler
        self.counters = counters
        self._queue: collections.deque[tuple[str, list[Any]]] = collections.deque()
        self._calls: collections.deque[Callable[[], None]] = collections.deque()
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._wake_pending = False
        self._out: dict[str, _Outbound] = {}
        self._out_version = 0  # bumped whenever _out changes, so monitors are re-synced
        self._blocked: set[str] = set()
        self._packer = msgpack.Packer(use_bin_type=True)  # used under _lock only
        # Held by whoever touches the PUSH sockets: the I/O thread while it flushes, or a caller
        # sending directly (send_now); ZeroMQ sockets may change threads behind a lock.
        self._lock = threading.Lock()
        self._stopping = False
        self._inbox = self._ctx.socket(zmq.PULL)
        self._configure_inbox(bind)
        self.address = self._inbox.getsockopt_string(zmq.LAST_ENDPOINT)
        # ZeroMQ cuts a connection that sends a frame over ZMQ_MAXMSGSIZE without a word to
        # the application; its socket monitor is the only place where that shows.
        self._inbox_monitor = self._inbox.get_monitor_socket(
            zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)
        self._thread = threading.Thread(target=self._run, name=f"wind-io-{node}", daemon=True)

    def _configure_inbox(self, bind: str) -> None:
        r = self._inbox
        r.setsockopt(zmq.LINGER, 0)
        r.setsockopt(zmq.MAXMSGSIZE, self._max + _MAXMSGSIZE_SLACK)
        r.setsockopt(zmq.RCVHWM, 0)
        if self._keys is not None:
            r.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())
            r.curve_server = True
            r.curve_publickey = self._keys.public
            r.curve_secretkey = self._keys.secret
        try:
            r.bind(bind)
        except zmq.ZMQError as exc:
            r.close(0)
            raise NodeError(f"cannot bind {bind}: {exc.strerror}; use a free tcp://HOST:PORT",
                            node=self.node, bind=bind) from None

    # -- any thread ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the I/O thread."""
        self._thread.start()

    def send(self, peer: str, envelope: list[Any]) -> None:
        """Queue an envelope for ``peer`` (thread-safe, never blocks)."""
        if self._stopping:
            self.counters["dropped_stopped"] += 1
            return
        self._queue.append((peer, envelope))
        if not self._wake_pending:
            self._wake_pending = True
            os.eventfd_write(self._wake_fd, 1)

    def send_now(self, peer: str, envelope: list[Any]) -> None:
        """Send at once from the calling thread when nothing is queued and the sockets are
        free, else queue (thread-safe, never blocks).

        For asks and replies: it saves two thread switches per round trip. FIFO holds because
        the I/O thread sends everything it took from the queue before releasing the lock, and
        a direct send happens only when the queue is empty under that lock.
        """
        if not self._queue and self._lock.acquire(blocking=False):
            try:
                out = self._out.get(peer)
                if not self._queue and out is not None and peer not in self._blocked \
                        and not self._stopping:
                    self._send_frame(peer, out, [envelope])
                    return
            finally:
                self._lock.release()
        self.send(peer, envelope)

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the I/O thread (thread-safe); it runs before queued sends."""
        if self._stopping:
            return
        self._calls.append(fn)
        self._wake_pending = True
        os.eventfd_write(self._wake_fd, 1)

    def stop(self) -> bool:
        """Stop the I/O thread and close every socket; idempotent.

        Returns:
            True when nothing uses the sockets any more: the I/O thread has ended and no direct
            send (:meth:`send_now`) is under way, so the ZeroMQ context may be destroyed.
        """
        self._stopping = True
        try:
            os.eventfd_write(self._wake_fd, 1)
        except OSError:
            return not self._thread.is_alive()
        if threading.current_thread() is self._thread:
            return False  # it ends when this call returns; its sockets are still in use
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        # A caller thread may have passed send_now's check just before _stopping was set;
        # it sends under the lock, so taking the lock waits it out.
        if not self._lock.acquire(timeout=5):
            return False
        self._lock.release()
        return not self._thread.is_alive()

    # -- I/O thread -----------------------------------------------------------------------------

    def reset_peer(self, peer: str) -> None:
        """Drop the connection to ``peer`` and anything still queued in it (I/O thread)."""
        with self._lock:
            out = self._out.pop(peer, None)
            if out is not None:
                self._out_version += 1
                self._close_outbound(out)

    def block(self, peer: str, blocked: bool) -> None:
        """Fault injection (I/O thread): drop every frame to and from ``peer`` while blocked."""
        if blocked:
            self._blocked.add(peer)
        else:
            self._blocked.discard(peer)

    def is_blocked(self, peer: str) -> bool:
        """Whether frames from ``peer`` are being dropped by fault injection."""
        return peer in self._blocked

    def _run(self) -> None:
        # One zmq_poll over the inbox socket and plain fds: the wake eventfd and the ZMQ_FD of
        # every monitor socket. zmq_poll asks each ZeroMQ socket in its list for ZMQ_EVENTS
        # before and after sleeping, two or more syscalls each (plus the getpid of ZeroMQ's
        # fork check), and the monitors are silent nearly always. A ZMQ_FD is edge-triggered:
        # it turns readable when something arrives after the socket was last found empty, so
        # a monitor is read until recv fails with Again whenever its fd fires, and on every
        # tick as a safety net.
        inbox, wake_fd, inbox_monitor = self._inbox, self._wake_fd, self._inbox_monitor
        inbox_monitor_fd = inbox_monitor.getsockopt(zmq.FD)
        base: list[tuple[Any, int]] = [(wake_fd, zmq.POLLIN), (inbox, zmq.POLLIN),
                                       (inbox_monitor_fd, zmq.POLLIN)]
        items = base
        monitors: dict[int, tuple[str, zmq.Socket]] = {}
        synced = -1
        deadline = time.monotonic()
        monotonic = time.monotonic
        try:
            while not self._stopping:
                now = monotonic()
                if now >= deadline:
                    deadline = self._handler.on_tick(now)
                    self._drain_monitors(monitors)
                if synced != self._out_version:  # outbound sockets come and go rarely
                    synced = self._out_version
                    items = base + self._sync_monitors(monitors)
                # ceil: a truncated timeout of 0 would spin until the deadline. Nothing runs
                # between handling a frame and this poll, which releases the GIL: a thread
                # just handed an ask or a reply finds the interpreter free when it wakes.
                ready = zmq_poll(items, max(0, math.ceil((deadline - now) * 1000.0)))
                # in the order of items: queued sends, then frames, then monitors
                for sock, _ in ready:
                    if sock is inbox:
                        self._receive()
                    elif sock == wake_fd:
                        self._drain_wake()
                    elif sock == inbox_monitor_fd:
                        self._inbox_event()
                    else:
                        peer, monitor = monitors.get(sock, ("", None))
                        if monitor is not None and not monitor.closed:  # a handler may have
                            self._monitor_event(peer, monitor)          # closed it this turn
        except Exception:  # noqa: BLE001 - the I/O thread must log, not vanish silently
            _log.exception("I/O thread crashed", node=self.node)
        finally:
            self._close_all()

    def _drain_wake(self) -> None:
        try:
            os.eventfd_read(self._wake_fd)
        except BlockingIOError:
            pass
        self._wake_pending = False
        while self._calls:
            self._calls.popleft()()
        self._flush()

    def _flush(self) -> None:
        batches: dict[str, list[list[Any]]] = {}
        queue = self._queue
        with self._lock:
            for _ in range(min(len(queue), _MAX_DRAIN)):
                peer, envelope = queue.popleft()
                batch = batches.get(peer)
                if batch is None:
                    batches[peer] = [envelope]
                else:
                    batch.append(envelope)
            if queue:  # leave the rest for the next turn so receiving is not starved
                self._wake_pending = True
                os.eventfd_write(self._wake_fd, 1)
            for peer, envelopes in batches.items():
                self._send_batch(peer, envelopes)

    def _send_batch(self, peer: str, envelopes: list[list[Any]]) -> None:
        if peer in self._blocked:
            self.counters["blocked_out"] += len(envelopes)
            self._handler.want(peer)  # so a send into a partition fails like a failed connect
            return
        out = self._outbound(peer)
        if out is None:
            self.counters["unknown_peer"] += len(envelopes)
            return
        chunk: list[list[Any]] = []
        size = 0
        for env in envelopes:
            env_size = _ENVELOPE_OVERHEAD + (len(env[-1]) if isinstance(env[-1], bytes) else 0)
            if chunk and size + env_size > self._max - 256:
                self._send_frame(peer, out, chunk)
                chunk, size = [], 0
            chunk.append(env)
            size += env_size
        if chunk:
            self._send_frame(peer, out, chunk)

    def _send_frame(self, peer: str, out: _Outbound, envelopes: list[list[Any]]) -> None:
        frame = build_frame(self.node, self.address, envelopes, self._packer)
        try:
            out.sock.send(frame, zmq.NOBLOCK, copy=len(frame) < 65536)
        except zmq.Again:
            self.counters["dropped_backpressure"] += len(envelopes)
            _log.warning("peer queue full, frame dropped", node=self.node, peer=peer,
                         envelopes=len(envelopes))
        except zmq.ZMQError as exc:
            self.counters["dropped_send_error"] += len(envelopes)
            _log.warning("send failed, frame dropped", node=self.node, peer=peer,
                         error=exc.strerror)

    def _outbound(self, peer: str) -> _Outbound | None:
        out = self._out.get(peer)
        if out is not None:
            return out
        resolved = self._handler.resolve(peer)
        if resolved is None:
            return None
        address, server_key = resolved
        sock = self._ctx.socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 200000)
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        if self._keys is not None:
            sock.curve_publickey = self._keys.public
            sock.curve_secretkey = self._keys.secret
            sock.curve_serverkey = server_key
        monitor = sock.get_monitor_socket(
            zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
            | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_SUCCEEDED)
        try:
            sock.connect(address)
        except zmq.ZMQError as exc:
            _log.warning("cannot connect to peer", node=self.node, peer=peer, address=address,
                         error=exc.strerror)
            sock.disable_monitor()
            monitor.close(0)
            sock.close(0)
            return None
        out = self._out[peer] = _Outbound(sock, monitor, address)
        self._out_version += 1
        return out

    def _receive(self) -> None:
        inbox = self._inbox
        secure = self._keys is not None
        on_frame = self._handler.on_frame
        # A time budget, not a frame count: under a flood the loop must still come round to
        # send heartbeats and pongs, or a busy peer would be declared dead.
        budget_end = time.monotonic() + _RECV_BUDGET_S
        for _ in range(_MAX_RECV):
            try:
                payload = inbox.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            if payload.more:
                self._discard_rest()
                continue
            user_id = None
            if secure:
                try:
                    user_id = payload.get("User-Id")
                except zmq.ZMQError:
                    user_id = None
            data = payload.bytes
            # Freed before the hand-off: a zmq.Frame releases the GIL in its destructor, and
            # freed after it that gave the GIL to the thread just woken while this one still
            # had Python to run, so both paid a second GIL hand-over per round trip.
            del payload
            try:
                handed = on_frame(data, user_id)
            except WireError:
                handed = False  # the handler counted and logged it
            # An ask or a reply was just handed to a sleeping thread: straight back to
            # zmq_poll, which releases the GIL at once (and finds any frame left), so that
            # thread runs the moment it wakes instead of waking again for the GIL. Otherwise
            # (tells) keep reading: EVENTS does not release the GIL, so a busy actor cannot
            # take it between two frames of a batch.
            if handed or not inbox.getsockopt(zmq.EVENTS) & zmq.POLLIN \
                    or time.monotonic() > budget_end:
                return

    def _discard_rest(self) -> None:
        parts = 1
        while self._inbox.getsockopt(zmq.RCVMORE):
            self._inbox.recv(zmq.NOBLOCK, copy=False)
            parts += 1
        self.counters["malformed"] += 1
        _log.warning("frame dropped", node=self.node, reason="malformed",
                     detail=f"{parts} message parts; one is allowed")

    def _inbox_event(self) -> None:
        while True:
            try:
                msg = self._inbox_monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            event = parse_monitor_message(msg)
            if event["event"] == zmq.EVENT_DISCONNECTED:
                # A peer that went away and a connection ZeroMQ cut (a frame over
                # ZMQ_MAXMSGSIZE, a protocol error) look the same here: both are counted.
                self.counters["inbound_disconnected"] += 1
                _log.info("inbound connection closed", node=self.node,
                          total=self.counters["inbound_disconnected"],
                          hint="peer gone, or cut by ZeroMQ (frame over ZMQ_MAXMSGSIZE)")
            else:
                self.counters["inbound_handshake_failed"] += 1
                _log.warning("inbound handshake failed: not a ZMTP/CURVE peer", node=self.node,
                             total=self.counters["inbound_handshake_failed"])

    def _monitor_event(self, peer: str, sock: zmq.Socket) -> None:
        while True:
            try:
                msg = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            event = parse_monitor_message(msg)["event"]
            out = self._out.get(peer)
            if out is None or out.monitor is not sock:
                continue
            if event == zmq.EVENT_DISCONNECTED:
                self._handler.on_link_lost(peer, "connection_closed")
                if sock.closed:  # the handler closed it with the link
                    return
            elif event in (zmq.EVENT_HANDSHAKE_FAILED_AUTH, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL):
                if not out.auth_warned:
                    out.auth_warned = True
                    _log.warning("peer refused our CURVE handshake; is our public key in its "
                                 "keys_dir?", node=self.node, peer=peer, address=out.address)
            elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                out.auth_warned = False

    def _sync_monitors(self, monitors: dict[int, tuple[str, zmq.Socket]]) -> list[tuple[Any, int]]:
        monitors.clear()
        for peer, out in self._out.items():
            monitors[out.monitor.getsockopt(zmq.FD)] = (peer, out.monitor)
        self._drain_monitors(monitors)  # events from before the fd was polled raised no edge
        return [(fd, zmq.POLLIN) for fd in monitors]

    def _drain_monitors(self, monitors: dict[int, tuple[str, zmq.Socket]]) -> None:
        self._inbox_event()
        for peer, sock in list(monitors.values()):
            if not sock.closed:
                self._monitor_event(peer, sock)

    def _close_outbound(self, out: _Outbound) -> None:
        try:
            out.sock.disable_monitor()
        except zmq.ZMQError:
            pass
        out.monitor.close(0)
        out.sock.close(0)

    def _close_all(self) -> None:
        with self._lock:
            for out in self._out.values():
                self._close_outbound(out)
            self._out.clear()
        try:
            self._inbox.disable_monitor()
        except zmq.ZMQError:
            pass
        self._inbox_monitor.close(0)
        self._inbox.close(0)
        os.close(self._wake_fd)
