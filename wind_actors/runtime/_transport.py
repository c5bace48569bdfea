"""The transport: one I/O thread per node that owns every ZeroMQ socket of that node.

Sockets: one PULL bound on the node's address receives every peer's frames; one PUSH per
peer carries this node's frames to that peer's PULL (so each direction of a pair is one TCP
connection, which is what keeps FIFO per sender-receiver pair). Replies travel on the
replier's own PUSH, never back on the asker's connection, so the bound socket needs no
routing ids: PULL hands over one part per frame where a ROUTER needed two receives.

One socket per peer, plus a fixed handful per node (the PULL and its monitor, the ZAP
handler's), so a node holds thousands of peers: the context's ``MAX_SOCKETS`` is raised to fit
``max_peers`` (:func:`new_context`), and the process's open-file limit with it
(:func:`raise_fd_limit`). Peers are not given socket monitors of their own (two sockets each).
A peer's closed connection still ends it at once: the PULL's one monitor reports the file
descriptor of each inbound connection that closed, and the first frame on each connection
(``ZMQ_SRCFD``) said which peer it belongs to. A silent peer is found by the heartbeats.

Any thread may call :meth:`Transport.send`; it only appends to a queue and wakes the I/O thread through an
eventfd. The I/O thread drains everything queued at once and packs the envelopes for one peer
into as few frames as ``max_frame_bytes`` allows: that batching is where the throughput
comes from.

The I/O thread never dies of an error: anything raised in its loop is counted
(``io_errors``), logged (one line a second at most) and the loop goes on. When it cannot go on
(the inbox socket is broken, or the loop failed many turns in a row) it closes its sockets and
calls ``on_fatal``, and the node stops loudly rather than stay deaf.

ZeroMQ errors never leave this module; they are logged, counted and mapped to peer loss.
"""

from __future__ import annotations

import collections
import errno
import math
import os
import resource
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, Protocol

import msgpack
import structlog
import zmq
from zmq.backend import zmq_poll
from zmq.utils.monitor import parse_monitor_message

from wind_actors.errors import NodeError, WireError

from ._membership import DEFAULT_MAX_PEERS
from ._security import ZAP_DOMAIN, KeyPair
from ._wire import Kind, build_frame

__all__ = ["Transport", "TransportHandler", "new_context", "raise_fd_limit", "fds_needed"]

_log = structlog.get_logger("wind.runtime.transport")

# Headroom over max_frame_bytes for ZMQ_MAXMSGSIZE: CURVE adds a few dozen bytes per message,
# and the application check (exact, counted) should fire before ZeroMQ cuts the connection.
_MAXMSGSIZE_SLACK = 4096
_ENVELOPE_OVERHEAD = 48
_MAX_DRAIN = 20000
_MAX_RECV = 2000
_RECV_BUDGET_S = 0.02
# A turn of the loop that raises is retried; this many in a row means it cannot recover.
_MAX_CONSECUTIVE_FAILURES = 50
# A tick that raised is retried this soon (not at once: the loop must not spin on it).
_TICK_RETRY_S = 0.05
_LOG_EVERY_S = 1.0
# Sockets of a node besides its peers' PUSHes: the PULL, its monitor (two PAIRs), ZAP (three).
_NODE_SOCKETS = 32
# Descriptors per peer: its PUSH's mailbox eventfd, the outbound TCP connection, the inbound.
_FDS_PER_PEER = 3
_FDS_BASE = 256


class TransportHandler(Protocol):
    """What the transport calls, always on the I/O thread. Must not block."""

    def on_frame(self, data: bytes, user_id: str | None) -> bool:
        """Handle one frame; True when it handed an ask or a reply to a waiting thread."""
    def on_tick(self, now: float) -> float: ...
    def on_link_lost(self, peer: str, why: str) -> None: ...
    def resolve(self, peer: str) -> tuple[str, bytes | None] | None: ...
    def want(self, peer: str) -> None: ...


def new_context(max_peers: int = DEFAULT_MAX_PEERS) -> zmq.Context:
    """A ZeroMQ context with room for ``max_peers`` peers (one socket each).

    ZeroMQ's default of 1,023 sockets per context would end a node at about a thousand peers;
    ``MAX_SOCKETS`` only takes effect if set before the first socket, hence here.
    """
    ctx = zmq.Context()
    ctx.set(zmq.MAX_SOCKETS, min(max_peers + _NODE_SOCKETS, ctx.get(zmq.SOCKET_LIMIT)))
    return ctx


def fds_needed(max_peers: int) -> int:
    """File descriptors a node with ``max_peers`` peers may hold open."""
    return _FDS_BASE + _FDS_PER_PEER * max_peers


def raise_fd_limit(needed: int) -> int:
    """Raise the process's soft ``RLIMIT_NOFILE`` towards ``needed`` (up to the hard limit).

    Returns:
        The soft limit now in force (unchanged when it was high enough or cannot be raised).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target <= soft:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return soft
    return target


def _raised_at(exc: BaseException) -> str | None:
    """``file:line in function`` of the innermost frame that raised ``exc``."""
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ is not None else []
    return f"{frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}" if frames else None


class _Throttle:
    """At most one log line per key and second; counts the lines held back meanwhile."""

    def __init__(self) -> None:
        self._at: dict[str, float] = {}
        self._held: collections.Counter[str] = collections.Counter()

    def allow(self, key: str) -> int | None:
        """Returns how many lines were held back since the last one, or None to hold this one."""
        now = time.monotonic()
        if now - self._at.get(key, float("-inf")) < _LOG_EVERY_S:
            self._held[key] += 1
            return None
        self._at[key] = now
        return self._held.pop(key, 0)


class _Fatal(Exception):
    """The I/O loop cannot go on: the bound socket failed (the node cannot hear anyone any
    more), or the heartbeat tick keeps failing (it cannot notice a lost peer any more)."""


class _Outbound:
    __slots__ = ("sock", "address")

    def __init__(self, sock: zmq.Socket, address: str) -> None:
        self.sock = sock
        self.address = address


_HEARTBEATS = (Kind.PING.value, Kind.PONG.value)


def _heartbeats_only(envelopes: list[list[Any]]) -> bool:
    return all(env[0] in _HEARTBEATS for env in envelopes)


def _peek_src(data: bytes) -> str | None:
    """The sender a frame names, read from its header alone (``[version, src, ...]``).

    Without CURVE no User-Id says who is on a connection; the frame is checked in full later,
    and a wrong guess only misnames a connection that closes (its peer is declared lost).
    """
    if len(data) < 4 or data[0] != 0x94 or data[1] > 0x7F:
        return None
    head = data[2]
    if 0xA0 <= head <= 0xBF:
        start, size = 3, head & 0x1F
    elif head == 0xD9:
        start, size = 4, data[3]
    else:
        return None
    try:
        return data[start:start + size].decode()
    except UnicodeDecodeError:
        return None


class Transport:
    """Sockets and the I/O thread of one node.

    Args:
        node: this node's name.
        bind: ZeroMQ endpoint to bind, e.g. ``tcp://127.0.0.1:7001`` (port 0 picks one).
        context: the node's own ``zmq.Context`` (ZAP is per context; see :func:`new_context`).
        keypair: this node's CURVE keys, or ``None`` for plain TCP.
        max_frame_bytes: largest frame sent or accepted.
        handler: receives frames, ticks and link losses on the I/O thread.
        counters: the node's drop counters (shared, incremented here too).
        max_peers: most peers given a socket; more are refused (``peer_limit``).
        admits: whether a peer may have a socket (the membership tracks it); default: any. Frames
            for a peer it does not admit are dropped: as ``peer_limit`` when ``full()`` says the
            membership is at its bound, else as ``untracked_peer``.
        full: whether the membership tracks as many peers as it may; default: never.
        on_fatal: called once, from the I/O thread after it closed its sockets, with why the
            loop could not go on.
        lookup: address and CURVE server key of a peer without wanting it (for heartbeats);
            default: the handler's ``resolve``.
    """

    def __init__(self, *, node: str, bind: str, context: zmq.Context, keypair: KeyPair | None,
                 max_frame_bytes: int, handler: TransportHandler,
                 counters: collections.Counter[str], max_peers: int = DEFAULT_MAX_PEERS,
                 admits: Callable[[str], bool] | None = None,
                 full: Callable[[], bool] | None = None,
                 on_fatal: Callable[[str], None] | None = None,
                 lookup: Callable[[str], tuple[str, bytes | None] | None] | None = None) -> None:
        self.node = node
        self._ctx = context
        self._keys = keypair
        self._max = max_frame_bytes
        self._handler = handler
        self.counters = counters
        self._max_peers = max_peers
        self._admits = admits
        self._full = full
        self._on_fatal = on_fatal
        self._lookup = lookup if lookup is not None else handler.resolve
        self._queue: collections.deque[tuple[str, list[Any]]] = collections.deque()
        self._calls: collections.deque[Callable[[], None]] = collections.deque()
        self._out: dict[str, _Outbound] = {}
        self._conn_peer: dict[int, str] = {}  # fd of an inbound connection -> who sent on it
        self._blocked_in: set[str] = set()
        self._blocked_out: set[str] = set()
        self._packer = msgpack.Packer(use_bin_type=True)  # used under _lock only
        self._throttle = _Throttle()
        # Held by whoever touches the PUSH sockets: the I/O thread while it flushes, or a caller
        # sending directly (send_now); ZeroMQ sockets may change threads behind a lock.
        self._lock = threading.Lock()
        self._stopping = False
        self._deadline = 0.0
        self._tick_failures = 0
        self._inbox = self._ctx.socket(zmq.PULL)
        self._configure_inbox(bind)
        self.address = self._inbox.getsockopt_string(zmq.LAST_ENDPOINT)
        # ZeroMQ cuts a connection that sends a frame over ZMQ_MAXMSGSIZE without a word to
        # the application; its socket monitor is the only place where that shows, and where a
        # peer's connection closing shows.
        self._inbox_monitor = self._inbox.get_monitor_socket(
            zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)
        # Written by any thread, closed by the I/O thread: only under _wake_lock, because a
        # closed descriptor number is soon another's (a ZeroMQ mailbox's eventfd, say) and a
        # stray write there aborts the process (libzmq asserts in mailbox.cpp).
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._wake_lock = threading.Lock()
        self._wake_pending = False
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
            self._wake()

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
                if not self._queue and out is not None and peer not in self._blocked_out \
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
        self._wake()

    def _wake(self) -> None:
        with self._wake_lock:
            if self._wake_fd >= 0:
                os.eventfd_write(self._wake_fd, 1)

    def stop(self) -> bool:
        """Stop the I/O thread and close every socket; idempotent.

        Returns:
            True when nothing uses the sockets any more: the I/O thread has ended and no direct
            send (:meth:`send_now`) is under way, so the ZeroMQ context may be destroyed.
        """
        self._stopping = True
        self._wake()
        if self._thread.ident is None:  # never started: no other thread ever had the sockets
            self._close_all()
            return True
        if threading.current_thread() is self._thread:
            return False  # it ends when this call returns; its sockets are still in use
        self._thread.join(timeout=5)
        # A caller thread may have passed send_now's check just before _stopping was set;
        # it sends under the lock, so taking the lock waits it out.
        if not self._lock.acquire(timeout=5):
            return False
        self._lock.release()
        return not self._thread.is_alive()

    def outbound_count(self) -> int:
        """How many peers have an outbound socket."""
        return len(self._out)

    def is_blocked(self, peer: str) -> bool:
        """Whether frames from ``peer`` are being dropped by fault injection."""
        return peer in self._blocked_in

    # -- I/O thread -----------------------------------------------------------------------------

    def reset_peer(self, peer: str) -> None:
        """Drop the connection to ``peer`` and anything still queued in it (I/O thread)."""
        with self._lock:
            out = self._out.pop(peer, None)
            if out is not None:
                self._close_outbound(out)

    def block(self, peer: str, blocked: bool, direction: str = "both") -> None:
        """Fault injection (I/O thread): drop frames from (``"in"``), to (``"out"``) or both
        ways (``"both"``) with ``peer`` while blocked; unblocking takes the same directions."""
        sets = {"in": (self._blocked_in,), "out": (self._blocked_out,),
                "both": (self._blocked_in, self._blocked_out)}[direction]
        for cut in sets:
            if blocked:
                cut.add(peer)
            else:
                cut.discard(peer)

    def _run(self) -> None:
        fatal: str | None = None
        try:
            fatal = self._loop()
        except BaseException as exc:  # noqa: BLE001 - the I/O thread must never vanish silently
            fatal = f"the I/O loop ended: {exc!r}"
            _log.exception("I/O thread crashed", node=self.node)
        finally:
            asked_to_stop = self._stopping
            self._stopping = True  # from now on sends are dropped, not queued for nobody
            self._close_all()
        if fatal is not None and not asked_to_stop and self._on_fatal is not None:
            _log.error("I/O thread cannot go on; the node stops", node=self.node, why=fatal)
            try:
                self._on_fatal(fatal)
            except Exception:  # noqa: BLE001 - nothing is left to report it to
                _log.exception("stopping the node after an I/O failure failed", node=self.node)

    def _loop(self) -> str | None:
        """Turn until stopped; returns why it cannot go on, or None when asked to stop."""
        failures = 0
        self._deadline = time.monotonic()
        items: list[tuple[Any, int]] = [(self._wake_fd, zmq.POLLIN), (self._inbox, zmq.POLLIN),
                                        (self._inbox_monitor.getsockopt(zmq.FD), zmq.POLLIN)]
        while not self._stopping:
            try:
                self._turn(items)
                failures = 0
            except _Fatal as exc:
                self.counters["io_errors"] += 1
                return str(exc)
            except Exception as exc:  # noqa: BLE001 - counted and logged; the loop goes on
                failures += 1
                self._io_error("loop", exc)
                if failures >= _MAX_CONSECUTIVE_FAILURES:
                    return f"{failures} turns of the I/O loop failed in a row, the last: {exc!r}"
        return None

    def _turn(self, items: list[tuple[Any, int]]) -> None:
        # One zmq_poll over the inbox socket and two plain fds: the wake eventfd and the ZMQ_FD
        # of the inbox's monitor. A ZMQ_FD is edge-triggered: it turns readable when something
        # arrives after the socket was last found empty, so the monitor is read until recv
        # fails with Again whenever its fd fires, and on every tick as a safety net.
        inbox, wake_fd = items[1][0], items[0][0]
        if inbox.closed:  # zmq_poll would take a closed socket for fd 0 and never fail
            raise _Fatal("the inbox socket is broken: it was closed")
        now = time.monotonic()
        if now >= self._deadline:
            self._tick(now)
        # ceil: a truncated timeout of 0 would spin until the deadline. Nothing runs between
        # handling a frame and this poll, which releases the GIL: a thread just handed an ask
        # or a reply finds the interpreter free when it wakes.
        try:
            ready = zmq_poll(items, max(0, math.ceil((self._deadline - now) * 1000.0)))
        except zmq.ZMQError as exc:
            if exc.errno == errno.EINTR:
                return
            raise _Fatal(f"the inbox socket is broken: {exc.strerror}") from None
        for sock, _ in ready:  # in the order of items: queued sends, then frames, then events
            if sock is inbox:
                self._receive()
            elif sock == wake_fd:
                self._drain_wake()
            else:
                self._inbox_event()

    def _tick(self, now: float) -> None:
        self._deadline = now + _TICK_RETRY_S  # kept if on_tick raises: retried soon, not at once
        try:
            self._deadline = self._handler.on_tick(now)
        except Exception as exc:
            self._tick_failures += 1
            if self._tick_failures >= _MAX_CONSECUTIVE_FAILURES:
                raise _Fatal(f"{self._tick_failures} heartbeat ticks failed in a row, the "
                             f"last: {exc!r}") from exc
            raise
        self._tick_failures = 0
        self._inbox_event()

    def _io_error(self, where: str, exc: BaseException) -> None:
        self.counters["io_errors"] += 1
        held = self._throttle.allow("io_error")
        if held is not None:
            # where it was raised, not a rendered traceback: formatting one (the console
            # renderer draws it) stalls this thread long enough to miss a peer's heartbeats
            _log.error("I/O thread error, carrying on", node=self.node, where=where,
                       error=repr(exc), raised_at=_raised_at(exc),
                       io_errors=self.counters["io_errors"], not_logged=held)

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
                self._wake()
            for peer, envelopes in batches.items():
                self._send_batch(peer, envelopes)

    def _send_batch(self, peer: str, envelopes: list[list[Any]]) -> None:
        if peer in self._blocked_out:
            self.counters["blocked_out"] += len(envelopes)
            if not _heartbeats_only(envelopes):
                self._handler.want(peer)  # so a send into a partition fails like a failed connect
            return
        out = self._outbound(peer, envelopes)
        if type(out) is str:
            self.counters[out] += len(envelopes)
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
            self._warn("peer queue full, frame dropped", "backpressure", peer=peer,
                       envelopes=len(envelopes))
        except zmq.ZMQError as exc:
            self.counters["dropped_send_error"] += len(envelopes)
            self._warn("send failed, frame dropped", "send_error", peer=peer, error=exc.strerror)

    def _warn(self, event: str, key: str, **context: Any) -> None:
        held = self._throttle.allow(key)
        if held is not None:
            _log.warning(event, node=self.node, not_logged=held, **context)

    def _outbound(self, peer: str, envelopes: list[list[Any]]) -> _Outbound | str:
        """The PUSH socket to ``peer``, made on first use; else the reason its frames drop."""
        out = self._out.get(peer)
        if out is not None:
            return out
        # Traffic for a peer (re)starts tracking it (the handler's resolve wants it); heartbeats
        # to a peer that is down must not, or it would never stay down long enough to be
        # forgotten, and its socket would be remade at every loss.
        if _heartbeats_only(envelopes):
            resolved = self._lookup(peer)
        else:
            resolved = self._handler.resolve(peer)
        if resolved is None:
            return "unknown_peer"
        admitted = self._admits is None or self._admits(peer)
        if len(self._out) >= self._max_peers or (not admitted and self._full is not None
                                                 and self._full()):
            self._refuse(peer)
            return "dropped_peer_limit"
        if not admitted:
            # Not the limit: the membership stopped tracking the peer (forgotten while these
            # frames were queued, say), and only tracked peers get sockets and heartbeats.
            self._untracked(peer, envelopes)
            return "dropped_untracked"
        address, server_key = resolved
        sock = self._ctx.socket(zmq.PUSH)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, 200000)
            sock.setsockopt(zmq.RECONNECT_IVL, 100)
            sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
            if self._keys is not None:
                sock.curve_publickey = self._keys.public
                sock.curve_secretkey = self._keys.secret
                sock.curve_serverkey = server_key
            sock.connect(address)
        except zmq.ZMQError as exc:
            sock.close(0)
            self._warn("cannot connect to peer", "connect", peer=peer, address=address,
                       error=exc.strerror)
            return "unknown_peer"
        out = self._out[peer] = _Outbound(sock, address)
        return out

    def _refuse(self, peer: str) -> None:
        self.counters["peer_limit"] += 1
        self._warn("peer refused: max_peers reached", "peer_limit", peer=peer,
                   max_peers=self._max_peers, sockets=len(self._out),
                   refused_total=self.counters["peer_limit"],
                   allowed="raise [node] max_peers, or fewer peers")

    def _untracked(self, peer: str, envelopes: list[list[Any]]) -> None:
        self.counters["untracked_peer"] += 1
        self._warn("peer refused: not tracked by the membership", "untracked_peer", peer=peer,
                   heartbeats_only=_heartbeats_only(envelopes), sockets=len(self._out),
                   max_peers=self._max_peers, refused_total=self.counters["untracked_peer"],
                   allowed="sockets only for tracked peers: ones this node wants (connect(), a "
                           "message to it) or hears from; a forgotten peer is tracked again by "
                           "its next frame or the next message to it")

    def _receive(self) -> None:
        inbox = self._inbox
        secure = self._keys is not None
        on_frame = self._handler.on_frame
        conns = self._conn_peer
        # A time budget, not a frame count: under a flood the loop must still come round to
        # send heartbeats and pongs, or a busy peer would be declared dead.
        budget_end = time.monotonic() + _RECV_BUDGET_S
        for _ in range(_MAX_RECV):
            try:
                payload = inbox.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            except zmq.ZMQError as exc:
                raise _Fatal(f"the inbox socket is broken: {exc.strerror}") from None
            if payload.more:
                self._discard_rest()
                continue
            user_id = None
            if secure:
                try:
                    user_id = payload.get("User-Id")
                except zmq.ZMQError:
                    user_id = None
            fd = payload.get(zmq.SRCFD)
            data = payload.bytes
            # Freed before the hand-off: a zmq.Frame releases the GIL in its destructor, and
            # freed after it that gave the GIL to the thread just woken while this one still
            # had Python to run, so both paid a second GIL hand-over per round trip.
            del payload
            if fd not in conns:  # a connection's first frame says whose it is
                name = user_id if secure else _peek_src(data)
                if name:
                    conns[fd] = name
            try:
                handed = on_frame(data, user_id)
            except WireError:
                handed = False  # the handler counted and logged it
            except Exception as exc:  # noqa: BLE001 - one bad frame must not deafen the node
                handed = False
                self._io_error("frame", exc)
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
        self._warn("frame dropped", "malformed", reason="malformed",
                   detail=f"{parts} message parts; one is allowed")

    def _inbox_event(self) -> None:
        while True:
            try:
                msg = self._inbox_monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            event = parse_monitor_message(msg)
            if event["event"] == zmq.EVENT_DISCONNECTED:
                self._inbound_closed(int(event["value"]))
            else:
                self.counters["inbound_handshake_failed"] += 1
                self._warn("inbound handshake failed: not a ZMTP/CURVE peer", "handshake",
                           total=self.counters["inbound_handshake_failed"])

    def _inbound_closed(self, fd: int) -> None:
        # A peer that went away and a connection ZeroMQ cut (a frame over ZMQ_MAXMSGSIZE, a
        # protocol error) look the same here: both are counted, and both end the peer.
        self.counters["inbound_disconnected"] += 1
        peer = self._conn_peer.pop(fd, None)
        held = self._throttle.allow("inbound_closed")
        if held is not None:
            _log.info("inbound connection closed", node=self.node, peer=peer,
                      total=self.counters["inbound_disconnected"], not_logged=held,
                      hint="peer gone, or cut by ZeroMQ (frame over ZMQ_MAXMSGSIZE)")
        # Its process ended, or it dropped its connection to us because it declared us lost:
        # either way the link is gone, on this side too. Unless partition() cuts us off from
        # it: behind a real partition the close would not come through either.
        if peer is not None and peer not in self._blocked_in:
            self._handler.on_link_lost(peer, "connection_closed")

    def _close_outbound(self, out: _Outbound) -> None:
        try:
            out.sock.close(0)
        except zmq.ZMQError:
            pass

    def _close_all(self) -> None:
        with self._lock:
            for out in self._out.values():
                self._close_outbound(out)
            self._out.clear()
        try:
            self._inbox.disable_monitor()
        except zmq.ZMQError:
            pass
        for sock in (self._inbox_monitor, self._inbox):
            try:
                sock.close(0)
            except zmq.ZMQError:
                pass
        with self._wake_lock:
            if self._wake_fd >= 0:
                os.close(self._wake_fd)
                self._wake_fd = -1
