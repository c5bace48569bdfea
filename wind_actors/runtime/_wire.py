"""The wire: registered message types, the msgpack codec and the framed envelope.

Pure logic (no threads, no sockets) so Hypothesis can drive it.

A *frame* is one ZeroMQ message: ``msgpack([WIRE_VERSION, src_node, src_address,
[envelope, ...]])``. Several envelopes share a frame because the I/O thread batches what is
queued. An *envelope* is a short msgpack array whose first item is its :class:`Kind`; user
payloads travel inside it as separately packed ``bytes`` *bodies*, so a body of an unknown type
spoils only its own envelope and the sender of an ask can still be told what went wrong.

Bodies hold plain data only: ``None``, bool, int, float, str, bytes, lists/tuples (decoded as
tuples), dicts, registered messages (``@message``), refs, and exceptions (decoded as
:class:`~wind_actors.errors.ActorError`). Never pickle.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from enum import IntEnum
from typing import Any, NamedTuple, TypeVar

import msgpack

from wind_actors.errors import ActorError, WindError, WireError

__all__ = [
    "WIRE_VERSION", "DEFAULT_MAX_FRAME_BYTES", "Kind", "MessageType", "message", "registered_types",
    "RefBase", "Codec", "Frame", "build_frame", "parse_frame", "parse_envelope",
]

WIRE_VERSION = 1
DEFAULT_MAX_FRAME_BYTES = 1 << 20

_EXT_MESSAGE = 1
_EXT_REF = 2
_EXT_ERROR = 3

T = TypeVar("T")


def _ext(code: int, data: bytes) -> msgpack.ExtType:
    # ExtType.__new__ re-validates code and data in Python on every call; ours are known good
    return tuple.__new__(msgpack.ExtType, (code, data))


_FIXEXT = {1: b"\xd4", 2: b"\xd5", 4: b"\xd6", 8: b"\xd7", 16: b"\xd8"}


def _ext_bytes(code: int, data: bytes) -> bytes:
    """The msgpack encoding of ``ExtType(code, data)``, byte for byte what a Packer writes.

    Used for a registered message at the top of a body, so encoding it takes one Packer
    call (its values) instead of two and a ``default`` callback.
    """
    size = len(data)
    head = _FIXEXT.get(size)
    if head is None:
        if size <= 0xFF:
            head = b"\xc7" + size.to_bytes(1, "big")
        elif size <= 0xFFFF:
            head = b"\xc8" + size.to_bytes(2, "big")
        else:
            head = b"\xc9" + size.to_bytes(4, "big")
    return head + code.to_bytes(1, "big") + data


class Kind(IntEnum):
    """Envelope kinds and their layouts (after the kind itself)."""

    TELL = 1       # target_name, body
    ASK = 2        # target_name, corr_id, body
    REPLY = 3      # corr_id, body
    ERROR = 4      # corr_id, reason, error_body  (an ask failed on the far side)
    PING = 5       # seq, sent_at
    PONG = 6       # seq, sent_at                 (echoed)
    MONITOR = 7    # monitor_id, target_name
    DEMONITOR = 8  # monitor_id
    DOWN = 9       # monitor_id, reason_body
    LINK = 10      # target_name, peer_actor_name (the far side monitors the peer actor back)
    UNLINK = 11    # target_name, peer_actor_name (the far side drops its half of the link)


# Each kind's expected item types after the kind, checked before anything is acted upon.
_LAYOUT: dict[int, tuple[type, ...]] = {
    Kind.TELL: (str, bytes),
    Kind.ASK: (str, int, bytes),
    Kind.REPLY: (int, bytes),
    Kind.ERROR: (int, str, bytes),
    Kind.PING: (int, float),
    Kind.PONG: (int, float),
    Kind.MONITOR: (int, str),
    Kind.DEMONITOR: (int,),
    Kind.DOWN: (int, bytes),
    Kind.LINK: (str, str),
    Kind.UNLINK: (str, str),
}


_KINDS: dict[int, Kind] = {int(k): k for k in Kind}


@dataclasses.dataclass(frozen=True)
class MessageType:
    """A registered wire message type: its tag, version, class and field names."""

    tag: str
    version: int
    cls: type
    fields: tuple[str, ...]

    head: bytes = dataclasses.field(default=b"", repr=False, compare=False)
    """msgpack of a 3-array header, the tag and the version: how every encoded body starts."""


_BY_TAG: dict[str, MessageType] = {}
_BY_CLASS: dict[type, MessageType] = {}


def message(tag: str, *, version: int = 1) -> Callable[[type[T]], type[T]]:
    """Register a frozen dataclass or a NamedTuple as a wire message type.

    Args:
        tag: a stable, globally unique name such as ``"wind.vm.started"``.
        version: the layout version; a frame carrying another version is rejected.

    Returns:
        A class decorator returning the class unchanged.

    Raises:
        TypeError: the class is neither a frozen dataclass nor a NamedTuple, or the tag is
            already taken by another class.
    """
    if not isinstance(tag, str) or not tag:
        raise TypeError(f"message tag must be a non-empty str, got {tag!r}")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise TypeError(f"message version must be an int >= 1, got {version!r}")

    def register(cls: type[T]) -> type[T]:
        if dataclasses.is_dataclass(cls):
            if not cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
                raise TypeError(f"{cls.__qualname__} must be a frozen dataclass to be a message")
            names = tuple(f.name for f in dataclasses.fields(cls) if f.init)
        elif issubclass(cls, tuple) and hasattr(cls, "_fields"):
            names = tuple(cls._fields)  # type: ignore[attr-defined]
        else:
            raise TypeError(f"{cls.__qualname__} must be a frozen dataclass or a NamedTuple")
        existing = _BY_TAG.get(tag)
        if existing is not None and _qualname(existing.cls) != _qualname(cls):
            raise TypeError(f"message tag {tag!r} is already registered by "
                            f"{_qualname(existing.cls)}; tags must be unique")
        if existing is not None:
            _BY_CLASS.pop(existing.cls, None)
        head = b"\x93" + msgpack.packb(tag) + msgpack.packb(version)
        mtype = MessageType(tag, version, cls, names, head)
        _BY_TAG[tag] = mtype
        _BY_CLASS[cls] = mtype
        cls.__wind_message__ = mtype  # type: ignore[attr-defined]
        return cls

    return register


def registered_types() -> tuple[MessageType, ...]:
    """Every registered message type, in registration order."""
    return tuple(_BY_TAG.values())


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class RefBase:
    """The wire identity of an actor: ``name@node``. Refs compare by that identity only."""

    __slots__ = ("name", "node_name")

    def __init__(self, name: str, node_name: str) -> None:
        self.name = name
        self.node_name = node_name

    @property
    def address(self) -> str:
        """``"name@node"``."""
        return f"{self.name}@{self.node_name}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RefBase):
            return NotImplemented
        return self.name == other.name and self.node_name == other.node_name

    def __hash__(self) -> int:
        return hash((RefBase, self.name, self.node_name))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.address!r})"


class Codec:
    """Encode and decode message bodies.

    Args:
        ref_factory: builds a ref from ``(name, node_name)`` while decoding, so a node can bind
            received refs to itself; the default builds unbound :class:`RefBase` values.
        max_bytes: largest body accepted by :meth:`decode`.
    """

    def __init__(self, ref_factory: Callable[[str, str], RefBase] | None = None,
                 max_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self._ref_factory = ref_factory or RefBase
        self._max_bytes = max_bytes
        # msgpack.packb allocates a fresh Packer and its buffer per call, which costs ~10x the
        # packing itself; reuse Packers per thread, one per nesting depth (default() re-enters).
        self._local = threading.local()

    # -- encoding ---------------------------------------------------------------------------

    def encode(self, obj: Any) -> bytes:
        """Pack ``obj`` into a body.

        Raises:
            WireError: ``reason="unencodable"`` when something in ``obj`` is not plain data, a
                registered message, a ref or an exception.
        """
        try:
            mtype = _BY_CLASS.get(type(obj))
            if mtype is not None:  # the usual body: one registered message
                values = [getattr(obj, name) for name in mtype.fields]
                return _ext_bytes(_EXT_MESSAGE, mtype.head + self._pack(values))
            return self._pack(obj)
        except WireError:
            raise
        except (TypeError, ValueError, OverflowError) as exc:
            raise WireError(f"cannot encode {type(obj).__name__}: {exc}; only plain data, "
                            "registered messages, refs and exceptions may cross the wire",
                            reason="unencodable") from None

    def _default(self, obj: Any) -> Any:
        cls = type(obj)
        mtype = _BY_CLASS.get(cls)
        if mtype is not None:
            # the same bytes as packing [tag, version, values], with the constant head
            # packed once at registration (this runs once per message sent)
            values = [getattr(obj, name) for name in mtype.fields]
            return _ext(_EXT_MESSAGE, mtype.head + self._pack(values))
        if cls is tuple or cls is list:
            return list(obj)
        if isinstance(obj, RefBase):
            return _ext(_EXT_REF, self._pack([obj.name, obj.node_name]))
        if isinstance(obj, BaseException):
            return _ext(_EXT_ERROR, self._pack(_error_fields(obj)))
        if isinstance(obj, (bool, int, float, str, bytes, dict)):
            return _plain(obj)
        raise WireError(f"cannot encode a {_qualname(cls)}: not a registered message type "
                        "(use @message) nor plain data", reason="unencodable", type=_qualname(cls))

    def _pack(self, obj: Any) -> bytes:
        local = self._local
        stack = getattr(local, "packers", None)
        if stack is None:
            stack = local.packers = []
            local.depth = 0
        depth = local.depth
        if depth == len(stack):
            stack.append(self._new_packer())
        local.depth = depth + 1
        try:
            return stack[depth].pack(obj)
        except BaseException:
            stack[depth] = self._new_packer()  # never reuse a packer a failure interrupted
            raise
        finally:
            local.depth = depth

    def _new_packer(self) -> msgpack.Packer:
        return msgpack.Packer(default=self._default, use_bin_type=True, strict_types=True)

    # -- decoding ---------------------------------------------------------------------------

    def decode(self, body: bytes) -> Any:
        """Unpack a body.

        Raises:
            WireError: the only exception this raises, with ``reason`` ``oversized``,
                ``malformed``, ``unknown_type`` or ``unknown_version``.
        """
        if not isinstance(body, (bytes, bytearray, memoryview)):
            raise WireError("a body must be bytes", reason="malformed")
        if len(body) > self._max_bytes:
            raise WireError(f"body of {len(body)} bytes exceeds max_frame_bytes="
                            f"{self._max_bytes}", reason="oversized")
        try:
            return self._unpack(body)
        except WireError:
            raise
        except Exception as exc:  # noqa: BLE001 - msgpack raises many types; all mean malformed
            raise WireError(f"malformed body: {type(exc).__name__}: {exc}",
                            reason="malformed") from None

    def _unpack(self, data: bytes) -> Any:
        return msgpack.unpackb(data, ext_hook=self._ext_hook, raw=False, use_list=False,
                               strict_map_key=False)

    def _ext_hook(self, code: int, data: bytes) -> Any:
        if code == _EXT_MESSAGE:
            return self._decode_message(self._unpack(data))
        if code == _EXT_REF:
            fields = self._unpack(data)
            if (not isinstance(fields, tuple) or len(fields) != 2
                    or not all(isinstance(f, str) for f in fields)):
                raise WireError("malformed ref", reason="malformed")
            return self._ref_factory(fields[0], fields[1])
        if code == _EXT_ERROR:
            fields = self._unpack(data)
            if (not isinstance(fields, tuple) or len(fields) != 3 or not isinstance(fields[0], str)
                    or not isinstance(fields[1], str) or not isinstance(fields[2], (bool, type(None)))):
                raise WireError("malformed error value", reason="malformed")
            return ActorError(fields[1], remote_type=fields[0], recoverable=fields[2])
        raise WireError(f"unknown extension type {code}", reason="malformed")

    def _decode_message(self, fields: Any) -> Any:
        if (not isinstance(fields, tuple) or len(fields) != 3 or not isinstance(fields[0], str)
                or type(fields[1]) is not int or not isinstance(fields[2], tuple)):
            raise WireError("malformed message", reason="malformed")
        tag, version, values = fields
        mtype = _BY_TAG.get(tag)
        if mtype is None:
            raise WireError(f"unknown message type {tag!r}; register it with @message",
                            reason="unknown_type", tag=tag)
        if version != mtype.version:
            raise WireError(f"message {tag!r} has version {version}; this node accepts version "
                            f"{mtype.version}", reason="unknown_version", tag=tag)
        if len(values) != len(mtype.fields):
            raise WireError(f"message {tag!r} has {len(values)} fields; expected "
                            f"{len(mtype.fields)}", reason="malformed", tag=tag)
        try:
            return mtype.cls(*values)
        except Exception as exc:  # noqa: BLE001 - a constructor's validation rejected the values
            raise WireError(f"message {tag!r} rejected its fields: {exc}",
                            reason="malformed", tag=tag) from None


def _plain(obj: Any) -> Any:
    """Subclasses of plain types (IntEnum, str enums...) travel as their plain value."""
    for base in (bool, int, float, str, bytes):
        if isinstance(obj, base):
            return base(obj)
    return dict(obj)


def _error_fields(exc: BaseException) -> list[Any]:
    recoverable = getattr(exc, "recoverable", None) if isinstance(exc, WindError) else None
    remote_type = getattr(exc, "remote_type", None) or _qualname(type(exc))
    text = exc.message if isinstance(exc, WindError) else str(exc)
    return [remote_type, text or type(exc).__name__, recoverable]


# -- frames -------------------------------------------------------------------------------


class Frame(NamedTuple):
    """A parsed frame: who sent it and its still-unchecked envelopes."""

    src: str
    src_address: str
    envelopes: list[Any]


def build_frame(src: str, src_address: str, envelopes: list[list[Any]],
                packer: msgpack.Packer | None = None) -> bytes:
    """Pack envelopes (lists starting with a :class:`Kind`) into one frame.

    Args:
        packer: a reusable ``msgpack.Packer(use_bin_type=True)`` owned by the calling thread.
    """
    frame = [WIRE_VERSION, src, src_address, envelopes]
    if packer is not None:
        return packer.pack(frame)
    return msgpack.packb(frame, use_bin_type=True)


def parse_frame(data: bytes, max_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> Frame:
    """Check and unpack a frame's header; envelopes are checked one by one later.

    Raises:
        WireError: ``oversized``, ``malformed`` or ``unknown_version``; nothing else.
    """
    if len(data) > max_bytes:
        raise WireError(f"frame of {len(data)} bytes exceeds max_frame_bytes={max_bytes}",
                        reason="oversized")
    try:
        value = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
    except Exception as exc:  # noqa: BLE001 - any msgpack failure means malformed
        raise WireError(f"malformed frame: {type(exc).__name__}", reason="malformed") from None
    if not isinstance(value, list) or not value:
        raise WireError("malformed frame: not an array", reason="malformed")
    if value[0] != WIRE_VERSION or type(value[0]) is not int:
        raise WireError(f"frame has wire version {value[0]!r}; this node speaks version "
                        f"{WIRE_VERSION}", reason="unknown_version")
    if (len(value) != 4 or not isinstance(value[1], str) or not isinstance(value[2], str)
            or not isinstance(value[3], list)):
        raise WireError("malformed frame header: expected [version, src, address, envelopes]",
                        reason="malformed")
    return Frame(value[1], value[2], value[3])


def parse_envelope(raw: Any) -> tuple[Any, ...]:
    """Check one envelope's layout; returns it as a tuple starting with its :class:`Kind`.

    Raises:
        WireError: ``unknown_kind`` or ``malformed``; nothing else.
    """
    if type(raw) is not list or not raw or type(raw[0]) is not int:
        raise WireError("malformed envelope", reason="malformed")
    kind = _KINDS.get(raw[0])
    if kind is None:
        raise WireError(f"unknown envelope kind {raw[0]}", reason="unknown_kind")
    layout = _LAYOUT[kind]
    if len(raw) != len(layout) + 1:
        raise WireError(f"malformed {kind.name} envelope", reason="malformed")
    for item, expected in zip(raw[1:], layout):
        if type(item) is not expected and not (expected is float and type(item) is int):
            raise WireError(f"malformed {kind.name} envelope", reason="malformed")
    return (kind, *raw[1:])


def ask_corr_id(raw: Any) -> int | None:
    """The correlation id of an ASK envelope, if one can be read from a broken envelope."""
    if (isinstance(raw, list) and len(raw) >= 3 and raw[0] == Kind.ASK
            and type(raw[2]) is int):
        return raw[2]
    return None
