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

Nothing a peer sends can drive recursion or unbounded work here. Before msgpack sees a body,
a pre-scan (iterative, explicit stack) enforces :data:`MAX_DEPTH` levels of arrays, maps and
extension values together, :data:`MAX_EXT_DEPTH` levels of extension values (each one is a
nested ``msgpack.unpackb`` in C, the one recursion left), :data:`MAX_ELEMENTS` items in all,
lengths that fit the bytes actually there, and extension codes that are ours: msgpack
timestamps (ext -1) and any other code are refused. Frames are decoded by msgpack's own
non-recursive C code and then checked to the same limits (and :data:`MAX_ENVELOPES`), and no
peer value is ever formatted into an error message. A registered message's fields are
checked against its annotations before its class is called (see :func:`message`). Everything
refused is a ``WireError(reason="malformed")``, a counted drop for the node.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import gc
import operator
import sys
import threading
import types
import typing
from collections.abc import Callable
from enum import Enum, IntEnum
from itertools import chain
from typing import Any, NamedTuple, TypeVar

import msgpack

from wind_actors.errors import ActorError, WindError, WireError

__all__ = [
    "WIRE_VERSION", "DEFAULT_MAX_FRAME_BYTES", "Kind", "MessageType", "message", "registered_types",
    "RefBase", "Codec", "Frame", "build_frame", "parse_frame", "parse_envelope",
    "MAX_DEPTH", "MAX_EXT_DEPTH", "MAX_ELEMENTS", "MAX_ENVELOPES", "scan", "field_checks",
]

WIRE_VERSION = 1
DEFAULT_MAX_FRAME_BYTES = 1 << 20

MAX_DEPTH = 32
"""Deepest nesting of arrays, maps and extension values (together) in a body or a frame."""

MAX_EXT_DEPTH = 8
"""Deepest nesting of extension values (messages, refs, errors) in a body. Each level is one
nested C ``unpackb`` holding ~45 KB of stack, so this bound is what keeps a thread's stack safe
(200 levels overflowed 8 MB); real messages nest two or three."""

MAX_ELEMENTS = 1_000_000
"""Most items (array items, map keys and values) all containers of one body or frame may
claim together; a claim beyond the bytes actually there is refused as well."""

MAX_ENVELOPES = 65536
"""Most envelopes in one frame. A sender's I/O thread batches at most 20,000 (``_transport``);
the bound keeps a frame of a million one-byte envelopes, each a counted drop, from holding
the receiving I/O thread for seconds."""

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

    checks: _FieldChecks | None = dataclasses.field(default=None, repr=False, compare=False)
    """One check per field, from the annotations; resolved at the first decode (see
    :func:`field_checks`), when every class an annotation names has been defined."""


_BY_TAG: dict[str, MessageType] = {}
_BY_CLASS: dict[type, MessageType] = {}


def message(tag: str, *, version: int = 1) -> Callable[[type[T]], type[T]]:
    """Register a frozen dataclass or a NamedTuple as a wire message type.

    A received message's fields are checked against the class's annotations before the class
    is called, so a field declared ``str`` never holds an int. Checked forms: ``str``, ``int``
    (a bool passes, as for a type checker), ``float`` (an int passes), ``bool``, ``bytes``,
    ``None``, unions (``X | None``, ``Optional``), ``tuple`` and ``tuple[...]`` (also ``list``
    and ``Sequence``: sequences travel as tuples), ``dict`` and ``dict[K, V]`` (``Mapping``),
    ``Literal``, ``Any`` and ``object`` (anything), refs (any :class:`RefBase` subclass),
    exceptions (they arrive as :class:`~wind_actors.errors.ActorError`), registered message
    types, and enums (sent as their plain values, so the values' plain type is checked).
    A field whose type cannot be checked (an annotation that does not resolve, a class that is
    not registered, a TypeVar...) accepts any wire value as it is.

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
                ``malformed`` (also for a body beyond the limits of the module docstring, or
                a field of the wrong type), ``unknown_type`` or ``unknown_version``.
        """
        if type(body) is not bytes:
            if not isinstance(body, (bytes, bytearray, memoryview)):
                raise WireError("a body must be bytes", reason="malformed")
            body = bytes(body)
        if len(body) > self._max_bytes:
            raise WireError(f"body of {len(body)} bytes exceeds max_frame_bytes="
                            f"{self._max_bytes}", reason="oversized")
        # _needs_scan() inlined: this runs once per message received
        if (len(body) - len(body.translate(None, _LEVEL_BYTES)) > MAX_EXT_DEPTH
                or (255 in body and _may_hold_timestamp(body)) or len(body) > MAX_ELEMENTS):
            scan(body, ext_codes=_EXT_CODES)
        try:
            return self._unpack(body)
        except WireError:
            raise
        except Exception as exc:  # noqa: BLE001 - msgpack raises many types; all mean malformed
            raise WireError(f"malformed body: {type(exc).__name__}: {_short(str(exc))}",
                            reason="malformed") from None

    def _unpack(self, data: bytes) -> Any:
        # Only ever given bytes that scan() or _needs_scan() bounded, the top-level body or an
        # extension payload inside it: the ext_hook recursion ends within MAX_EXT_DEPTH.
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
            raise WireError(f"unknown message type {_short(tag)!r}; register it with @message",
                            reason="unknown_type", tag=_short(tag))
        if version != mtype.version:
            raise WireError(f"message {tag!r} has version {version}; this node accepts version "
                            f"{mtype.version}", reason="unknown_version", tag=tag)
        if len(values) != len(mtype.fields):
            raise WireError(f"message {tag!r} has {len(values)} fields; expected "
                            f"{len(mtype.fields)}", reason="malformed", tag=tag)
        checks = mtype.checks or field_checks(mtype)
        if not checks.fast(values):
            _refuse_fields(mtype, values)  # unless each value passes its deeper tests
        try:
            return mtype.cls(*values)
        except Exception as exc:  # noqa: BLE001 - a constructor's validation rejected the values
            raise WireError(f"message {tag!r} rejected its fields: {_short(str(exc))}",
                            reason="malformed", tag=tag) from None


def _plain(obj: Any) -> Any:
    """Subclasses of plain types (IntEnum, str enums...) travel as their plain value."""
    for base, plain in _TO_PLAIN:
        if isinstance(obj, base):
            return plain(obj)
    return dict(obj)


# The base type's own conversion, never the subclass's: str() of a (str, Enum) member is
# "Mood.CALM" since Python 3.11, not its value "calm".
_TO_PLAIN = ((bool, bool), (int, int.__int__), (float, float.__float__), (str, str.__str__),
             (bytes, bytes))


def _error_fields(exc: BaseException) -> list[Any]:
    recoverable = getattr(exc, "recoverable", None) if isinstance(exc, WindError) else None
    remote_type = getattr(exc, "remote_type", None) or _qualname(type(exc))
    text = exc.message if isinstance(exc, WindError) else str(exc)
    return [remote_type, text or type(exc).__name__, recoverable]


# -- limits: the pre-scan -------------------------------------------------------------------
#
# What each leading byte of a msgpack value is, as two tables indexed by that byte: an
# operation and its argument. FIXED: the whole value is ARG bytes. SIZED1 (str8, bin8): a
# one-byte length follows, then that many bytes; SIZED: the same with an ARG-byte length.
# ARRAY/MAP: an ARG-byte count follows (ARG 0: the count is in the low nibble). EXT: an
# ARG-byte length follows, then the code byte and the payload; FIXEXT: the code byte and an
# ARG-byte payload. BAD: 0xc1, never valid.

_OP_BAD, _OP_FIXED, _OP_SIZED1, _OP_SIZED, _OP_ARRAY, _OP_MAP, _OP_EXT, _OP_FIXEXT = range(8)


def _head_tables() -> tuple[tuple[int, ...], tuple[int, ...]]:
    ops = [_OP_FIXED] * 256
    args = [1] * 256
    for b in range(0xa0, 0xc0):
        args[b] = 1 + (b & 0x1f)  # fixstr
    for b in range(0x80, 0x90):
        ops[b], args[b] = _OP_MAP, 0
    for b in range(0x90, 0xa0):
        ops[b], args[b] = _OP_ARRAY, 0
    table = {0xc1: (_OP_BAD, 0),
             0xc4: (_OP_SIZED1, 1), 0xc5: (_OP_SIZED, 2), 0xc6: (_OP_SIZED, 4),
             0xd9: (_OP_SIZED1, 1), 0xda: (_OP_SIZED, 2), 0xdb: (_OP_SIZED, 4),
             0xc7: (_OP_EXT, 1), 0xc8: (_OP_EXT, 2), 0xc9: (_OP_EXT, 4),
             0xca: (_OP_FIXED, 5), 0xcb: (_OP_FIXED, 9),
             0xcc: (_OP_FIXED, 2), 0xcd: (_OP_FIXED, 3), 0xce: (_OP_FIXED, 5),
             0xcf: (_OP_FIXED, 9), 0xd0: (_OP_FIXED, 2), 0xd1: (_OP_FIXED, 3),
             0xd2: (_OP_FIXED, 5), 0xd3: (_OP_FIXED, 9),
             0xd4: (_OP_FIXEXT, 1), 0xd5: (_OP_FIXEXT, 2), 0xd6: (_OP_FIXEXT, 4),
             0xd7: (_OP_FIXEXT, 8), 0xd8: (_OP_FIXEXT, 16),
             0xdc: (_OP_ARRAY, 2), 0xdd: (_OP_ARRAY, 4), 0xde: (_OP_MAP, 2), 0xdf: (_OP_MAP, 4)}
    for b, (op, arg) in table.items():
        ops[b], args[b] = op, arg
    return tuple(ops), tuple(args)


_OPS, _ARGS = _head_tables()
_EXT_CODES = frozenset({_EXT_MESSAGE, _EXT_REF, _EXT_ERROR})

# Every byte that can open a level (an array, map or extension header). A value nested N deep
# holds N such bytes, so a body holding at most MAX_EXT_DEPTH of them anywhere is within the
# depth limits without a scan.
_LEVEL_BYTES = bytes(b for b in range(256)
                     if _OPS[b] in (_OP_ARRAY, _OP_MAP, _OP_EXT, _OP_FIXEXT))

# msgpack decodes an ext -1 as a timestamp only with a payload of 4, 8 or 12 bytes (any other
# length fails to decode), so its code byte 0xff follows a fixext4/fixext8 head or a length
# field ending in 4, 8 or 12. A body with no 0xff after one of these holds no timestamp.
_BEFORE_TIMESTAMP_CODE = frozenset({0xd6, 0xd7, 4, 8, 12})


def _needs_scan(body: bytes) -> bool:
    """Whether ``body`` may break a limit, so :func:`scan` must look at it; False is a proof
    that it cannot (C-speed tests that pass for nearly every real message).

    Inlined in :meth:`Codec.decode`; kept here as the one statement of the rule.
    """
    return (len(body) - len(body.translate(None, _LEVEL_BYTES)) > MAX_EXT_DEPTH
            or (255 in body and _may_hold_timestamp(body)) or len(body) > MAX_ELEMENTS)


def _may_hold_timestamp(body: bytes) -> bool:
    # find() per 0xff, not a substring test per pair: several times faster on short bodies
    i = body.find(255)
    while i >= 0:
        if i and body[i - 1] in _BEFORE_TIMESTAMP_CODE:
            return True
        i = body.find(255, i + 1)
    return False


def scan(data: bytes, *, ext_codes: frozenset[int] | None = None, max_depth: int = MAX_DEPTH,
         max_ext_depth: int = MAX_EXT_DEPTH, max_elements: int = MAX_ELEMENTS) -> None:
    """Check that ``data`` is exactly one msgpack value within the limits, without decoding it.

    Iterative (an explicit stack), pure, and linear in the number of values: lengths and
    counts are checked against the bytes there before anything relies on them, and strings
    and binaries are skipped, never copied.

    Args:
        data: the bytes.
        ext_codes: the extension codes allowed; their payloads must themselves be one msgpack
            value and are scanned as nested levels. ``None``: any code, payloads opaque (frames).
        max_depth: deepest nesting of arrays, maps and extensions together.
        max_ext_depth: deepest nesting of extensions.
        max_elements: most items all containers together may claim.

    Raises:
        WireError: ``reason="malformed"``, saying which limit or rule was broken.
    """
    try:
        _scan(data, ext_codes, max_depth, max_ext_depth, max_elements)
    except IndexError:  # a head or a length field runs past the end
        raise _malformed("truncated value") from None


def _scan(data: bytes, ext_codes: frozenset[int] | None, max_depth: int, max_ext_depth: int,
          max_elements: int) -> None:
    end = len(data)
    pos = 0
    left = 1          # values still to read at the innermost open level
    stack: list[tuple[int, int]] = []  # per open level: the parent's ``left``, ext end or -1
    ext_depth = 0
    claimed = 0
    ops, args, from_bytes = _OPS, _ARGS, int.from_bytes
    while True:
        if not left:
            if not stack:
                if pos != end:
                    raise _malformed("truncated value" if pos > end else "bytes after the value")
                return
            left, ext_end = stack.pop()
            if ext_end >= 0:
                if pos != ext_end:
                    raise _malformed("an extension payload is not exactly one value")
                ext_depth -= 1
            continue
        head = data[pos]
        op = ops[head]
        left -= 1
        if op == _OP_FIXED:
            pos += args[head]
        elif op == _OP_SIZED1:
            pos += 2 + data[pos + 1]
        elif op == _OP_ARRAY or op == _OP_MAP:
            arg = args[head]
            count = from_bytes(data[pos + 1:pos + 1 + arg], "big") if arg else head & 0x0f
            pos += 1 + arg
            if op == _OP_MAP:
                count *= 2
            if len(stack) >= max_depth:
                raise _malformed(f"nested deeper than {max_depth} levels")
            claimed += count
            if count > end - pos:  # every item takes a byte at least
                raise _malformed(f"a container claims {count} items in {max(end - pos, 0)} bytes")
            if claimed > max_elements:
                raise _malformed(f"more than {max_elements} items")
            if count:
                stack.append((left, -1))
                left = count
        elif op == _OP_SIZED:
            arg = args[head]
            pos += 1 + arg + from_bytes(data[pos + 1:pos + 1 + arg], "big")
        elif op == _OP_EXT or op == _OP_FIXEXT:
            arg = args[head]
            if op == _OP_EXT:
                size = from_bytes(data[pos + 1:pos + 1 + arg], "big")
                pos += 1 + arg
            else:
                size = arg
                pos += 1
            if pos + 1 + size > end:
                raise _malformed("truncated extension value")
            if ext_codes is None:
                pos += 1 + size
                continue
            _enter_ext(data[pos], ext_codes, len(stack), ext_depth, max_depth, max_ext_depth)
            pos += 1
            stack.append((left, pos + size))
            left = 1
            ext_depth += 1
        else:
            raise _malformed("byte 0xc1 is never valid msgpack")


def _enter_ext(code_byte: int, ext_codes: frozenset[int], depth: int, ext_depth: int,
               max_depth: int, max_ext_depth: int) -> None:
    """Raise unless an extension of this code may open a level at this depth."""
    code = code_byte - 256 if code_byte > 127 else code_byte
    if code not in ext_codes:
        what = "a msgpack timestamp (ext -1)" if code == -1 else f"extension type {code}"
        raise _malformed(f"{what} is not a Wind body type")
    if depth >= max_depth:
        raise _malformed(f"nested deeper than {max_depth} levels")
    if ext_depth >= max_ext_depth:
        raise _malformed(f"extension values nested deeper than {max_ext_depth} levels")


def _malformed(why: str) -> WireError:
    return WireError(f"malformed: {why}", reason="malformed")


def _short(text: str, limit: int = 80) -> str:
    """A peer's text cut to ``limit`` characters, for error messages and logs."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _frame_depth_ok(value: list[Any], max_depth: int) -> bool:
    """Whether the decoded ``value`` nests at most ``max_depth`` lists and dicts (iterative)."""
    level: list[Any] = [value]
    for _ in range(max_depth):
        nested: list[Any] = []
        for container in level:
            items = container if type(container) is list else container.values()
            nested.extend(v for v in items if type(v) is list or type(v) is dict)
        if not nested:
            return True
        level = nested
    return False


# -- field checks -----------------------------------------------------------------------------


class _EveryType(frozenset):  # type: ignore[type-arg]
    """The ``exact`` of a check that accepts anything: it holds every type."""

    def __contains__(self, item: object) -> bool:
        return True


_EVERY_TYPE = _EveryType()


class _Check(NamedTuple):
    """How one annotation is checked against a decoded wire value.

    A value whose type is in ``exact`` passes at once; any other value passes when one of
    ``tests`` accepts it. A test returns None to accept, else what it found wrong.
    """

    exact: frozenset[type]
    tests: tuple[Callable[[Any], str | None], ...]
    allowed: str


class _FieldChecks(NamedTuple):
    """A message type's field checks, and ``fast``: whether each value's type is exact."""

    each: tuple[_Check, ...]
    fast: Callable[[tuple[Any, ...]], bool]


_ANYTHING = _Check(_EVERY_TYPE, (), "anything")
_NONE = type(None)
_PLAIN_TYPES = (bool, int, float, str, bytes)
_SCALAR_CHECKS = {bool: frozenset({bool}), int: frozenset({int, bool}),
                  float: frozenset({float, int, bool}), str: frozenset({str}),
                  bytes: frozenset({bytes}), _NONE: frozenset({_NONE})}
_SEQUENCES = (tuple, list, collections.abc.Sequence)
_MAPPINGS = (dict, collections.abc.Mapping)


def field_checks(mtype: MessageType) -> _FieldChecks:
    """The checks of ``mtype``'s fields, resolved from its annotations once and cached on it.

    Returns:
        One check per field, in field order (a field whose annotation does not resolve or
        cannot be checked gets a check that accepts anything), and the fast test of them all.
    """
    hints = _field_hints(mtype.cls, mtype.fields)
    each = tuple(_compile(hints[name]) if name in hints else _ANYTHING for name in mtype.fields)
    checks = _FieldChecks(each, _exact_test(tuple(c.exact for c in each)))
    object.__setattr__(mtype, "checks", checks)  # a cache on a frozen record, set once
    return checks


def _exact_test(exacts: tuple[frozenset[type], ...]) -> Callable[[tuple[Any, ...]], bool]:
    """Whether every value's type is in its field's ``exact`` (values counted already).

    Unrolled for the usual few fields: this runs once per message received.
    """
    if not exacts:
        return lambda values: True
    if len(exacts) == 1:
        (e0,) = exacts
        return lambda values: type(values[0]) in e0
    if len(exacts) == 2:
        e0, e1 = exacts
        return lambda values: type(values[0]) in e0 and type(values[1]) in e1
    if len(exacts) == 3:
        e0, e1, e2 = exacts
        return lambda values: (type(values[0]) in e0 and type(values[1]) in e1
                               and type(values[2]) in e2)
    return lambda values: all(map(operator.contains, exacts, map(type, values)))


def _field_hints(cls: type, names: tuple[str, ...]) -> dict[str, Any]:
    """Resolved annotations of ``cls``; fields whose annotation fails to resolve are left out."""
    try:
        return typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - e.g. a name imported under TYPE_CHECKING only
        pass
    module = sys.modules.get(cls.__module__)
    globalns = dict(vars(module)) if module is not None else {}
    raw: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        raw.update(vars(klass).get("__annotations__", {}))
    hints: dict[str, Any] = {}
    for name in names:
        if name not in raw:
            continue
        holder = _annotation_holder(name, raw[name])
        try:
            hints.update(typing.get_type_hints(holder, globalns, {cls.__name__: cls}))
        except Exception:  # noqa: BLE001 - this field stays unchecked, as documented
            continue
    return hints


def _annotation_holder(name: str, annotation: Any) -> Callable[[], None]:
    def holder() -> None:
        """Carries one annotation for typing.get_type_hints."""
    holder.__annotations__ = {name: annotation}
    return holder


def _compile(tp: Any) -> _Check:
    """The check of one resolved annotation (pure; recursion follows the annotation, which is
    source code, never peer data)."""
    if tp is Any or tp is object:
        return _ANYTHING
    if tp is None or tp is _NONE:
        return _Check(_SCALAR_CHECKS[_NONE], (), "None")
    supertype = getattr(tp, "__supertype__", None)  # typing.NewType
    if supertype is not None:
        return _compile(supertype)
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _compile(typing.get_args(tp)[0])
    if origin is typing.Union or origin is types.UnionType:
        return _union([_compile(arg) for arg in typing.get_args(tp)])
    if origin is typing.Literal:
        return _literal(typing.get_args(tp))
    if origin is not None:
        return _generic(origin, typing.get_args(tp))
    if isinstance(tp, type):
        return _class(tp)
    return _ANYTHING  # a TypeVar, a string left unresolved, a typing special form...


def _union(alternatives: list[_Check]) -> _Check:
    if any(alt.exact is _EVERY_TYPE for alt in alternatives):
        return _ANYTHING
    exact = frozenset().union(*(alt.exact for alt in alternatives))
    tests = tuple(chain.from_iterable(alt.tests for alt in alternatives))
    return _Check(exact, tests, " | ".join(alt.allowed for alt in alternatives))


def _literal(values: tuple[Any, ...]) -> _Check:
    plain = tuple(v.value if isinstance(v, Enum) else v for v in values)  # as they travel
    allowed = frozenset((type(v), v) for v in plain)
    kinds = frozenset(type(v) for v in plain)

    def test(value: Any) -> str | None:
        # the kind first: only then is the value known to be hashable
        if type(value) in kinds and (type(value), value) in allowed:
            return None
        return _found(value)

    return _Check(frozenset(), (test,), " | ".join(repr(v) for v in plain))


def _generic(origin: Any, args: tuple[Any, ...]) -> _Check:
    if origin is tuple and args and args[-1] is not Ellipsis:
        if args == ((),):  # tuple[()]
            return _fixed_tuple(())
        return _fixed_tuple(tuple(_compile(a) for a in args))
    if origin in _SEQUENCES:
        item = _compile(args[0]) if args else _ANYTHING
        if item.exact is _EVERY_TYPE:
            return _Check(frozenset({tuple}), (), "tuple")
        return _Check(frozenset(), (_items_test(item),), f"tuple[{item.allowed}, ...]")
    if origin in _MAPPINGS:
        key, value = (_compile(args[0]), _compile(args[1])) if len(args) == 2 else (_ANYTHING,) * 2
        if key.exact is _EVERY_TYPE and value.exact is _EVERY_TYPE:
            return _Check(frozenset({dict}), (), "dict")
        return _Check(frozenset(), (_dict_test(key, value),),
                      f"dict[{key.allowed}, {value.allowed}]")
    if isinstance(origin, type):
        return _class(origin)  # e.g. type[X] or a user generic: checked as its class
    return _ANYTHING


def _fixed_tuple(items: tuple[_Check, ...]) -> _Check:
    def test(value: Any) -> str | None:
        if type(value) is not tuple:
            return _found(value)
        if len(value) != len(items):
            return f"tuple of {len(value)} items"
        for i, (item, check) in enumerate(zip(value, items)):
            bad = _failure(check, item)
            if bad is not None:
                return f"tuple whose item {i} is {bad}"
        return None

    allowed = ", ".join(c.allowed for c in items) if items else "()"
    return _Check(frozenset(), (test,), f"tuple[{allowed}]")


def _items_test(item: _Check) -> Callable[[Any], str | None]:
    def test(value: Any) -> str | None:
        if type(value) is not tuple:
            return _found(value)
        for i, v in enumerate(value):
            bad = _failure(item, v)
            if bad is not None:
                return f"tuple whose item {i} is {bad}"
        return None

    return test


def _dict_test(key: _Check, value_check: _Check) -> Callable[[Any], str | None]:
    def test(value: Any) -> str | None:
        if type(value) is not dict:
            return _found(value)
        for k, v in value.items():
            bad = _failure(key, k)
            if bad is not None:
                return f"dict with a key that is {bad}"
            bad = _failure(value_check, v)
            if bad is not None:
                return f"dict with a value that is {bad}"
        return None

    return test


def _class(cls: type) -> _Check:
    exact = _SCALAR_CHECKS.get(cls)
    if exact is not None:
        return _Check(exact, (), cls.__name__)
    if issubclass(cls, Enum):
        plain = {type(m.value) for m in cls}  # enums travel as their plain values
        if plain and all(t in _SCALAR_CHECKS for t in plain):
            return _union([_class(t) for t in sorted(plain, key=lambda t: t.__name__)])
        return _ANYTHING
    for base in _PLAIN_TYPES:
        if issubclass(cls, base):  # a str or int subclass arrives as a plain str or int
            return _class(base)
    if cls in _SEQUENCES:
        return _Check(frozenset({tuple}), (), "tuple")
    if cls in _MAPPINGS or (issubclass(cls, dict) and cls not in _BY_CLASS):
        return _Check(frozenset({dict}), (), "dict")
    if issubclass(cls, RefBase):
        return _Check(frozenset(), (_instance_test(RefBase),), cls.__name__)
    if issubclass(cls, BaseException):
        return _Check(frozenset({ActorError}), (), f"{cls.__name__} (arriving as ActorError)")
    return _Check(frozenset({cls}), (_message_test(cls),), cls.__name__)


def _instance_test(cls: type) -> Callable[[Any], str | None]:
    def test(value: Any) -> str | None:
        return None if isinstance(value, cls) else _found(value)

    return test


def _message_test(cls: type) -> Callable[[Any], str | None]:
    def test(value: Any) -> str | None:
        # Looked up at decode time: a class registered later is checked from then on. A class
        # that is not a registered message cannot arrive at all, so it is left unchecked.
        if isinstance(value, cls) or cls not in _BY_CLASS:
            return None
        return _found(value)

    return test


def _failure(check: _Check, value: Any) -> str | None:
    """None when ``value`` passes ``check``, else what was found."""
    if type(value) in check.exact:
        return None
    found = None
    for test in check.tests:
        found = test(value)
        if found is None:
            return None
    return found or _found(value)


def _found(value: Any) -> str:
    mtype = _BY_CLASS.get(type(value))
    if mtype is not None:
        return f"message {mtype.tag!r}"
    return type(value).__name__


def _refuse_fields(mtype: MessageType, values: tuple[Any, ...]) -> None:
    """Raise for the first field of ``values`` its check refuses; return if none does (values
    of a type outside ``exact`` that a deeper test accepts, such as a ``tuple[int, ...]``).

    Raises:
        WireError: ``reason="malformed"`` naming the field, what was found and what is allowed.
    """
    for name, check, value in zip(mtype.fields, (mtype.checks or field_checks(mtype)).each, values):
        found = _failure(check, value)
        if found is not None:
            raise WireError(f"message {mtype.tag!r} field {name!r} is {found}; allowed: "
                            f"{check.allowed}", reason="malformed", tag=mtype.tag, field=name,
                            found=found, allowed=check.allowed)


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

    msgpack's C decoder is not recursive and is given no hook, so the frame is decoded before
    its depth is checked; a frame too large for its size alone to bound its item count is
    scanned first. Only frames nested at most :data:`MAX_DEPTH` deep come out, and nothing of
    a peer's value is ever formatted into an error (a deep one would recurse in ``repr``).

    Raises:
        WireError: ``oversized``, ``malformed`` or ``unknown_version``; nothing else.
    """
    if len(data) > max_bytes:
        raise WireError(f"frame of {len(data)} bytes exceeds max_frame_bytes={max_bytes}",
                        reason="oversized")
    if len(data) > MAX_ELEMENTS:
        scan(data)  # a value takes a byte at least: below that size the count is bounded
    try:
        value = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
    except Exception as exc:  # noqa: BLE001 - any msgpack failure means malformed
        raise WireError(f"malformed frame: {type(exc).__name__}", reason="malformed") from None
    if type(value) is not list or not value:
        raise WireError("malformed frame: not an array", reason="malformed")
    if type(value[0]) is not int or value[0] != WIRE_VERSION:
        shown = value[0] if type(value[0]) is int else f"of type {type(value[0]).__name__}"
        raise WireError(f"frame has wire version {shown}; this node speaks version "
                        f"{WIRE_VERSION}", reason="unknown_version")
    if (len(value) != 4 or type(value[1]) is not str or type(value[2]) is not str
            or type(value[3]) is not list):
        raise WireError("malformed frame header: expected [version, src, address, envelopes]",
                        reason="malformed")
    envelopes = value[3]
    if len(envelopes) > MAX_ENVELOPES:
        raise WireError(f"malformed frame: {len(envelopes)} envelopes; at most {MAX_ENVELOPES} "
                        "are allowed", reason="malformed")
    if _may_nest(envelopes) and not _frame_depth_ok(value, MAX_DEPTH):
        raise WireError(f"malformed frame: nested deeper than {MAX_DEPTH} levels",
                        reason="malformed")
    return Frame(value[1], value[2], envelopes)


def _may_nest(envelopes: list[Any]) -> bool:
    """False when no envelope item holds anything (so the frame is 4 levels deep at most).

    Found in C, at ~20 ns an envelope: a list's or dict's referents (CPython's tp_traverse)
    are all its items and values, and scalars are not GC objects, so the referents of the
    referents of envelopes of scalars are none. Anything else goes the slow way.
    """
    if not _CPYTHON:
        return True
    return bool(gc.get_referents(*gc.get_referents(*envelopes)))


_CPYTHON = sys.implementation.name == "cpython"


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
