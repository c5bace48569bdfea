"""Hypothesis: the wire codec round-trips registered messages and rejects malformed input
with WireError only: whatever the bytes (random, mutated, nesting bombs, lying length headers,
unknown extensions, timestamps, fields of the wrong type), decoding either succeeds with
documented body types only, or raises WireError; never anything else, never a crash."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import msgpack
from hypothesis import given
from hypothesis import strategies as st

from wind_actors.errors import ActorError, WireError
from wind_actors.runtime import Codec, RemoteRef, message, registered_types
from wind_actors.runtime._wire import (_BY_CLASS, _EXT_CODES, MAX_DEPTH, RefBase, _needs_scan,
                                       build_frame, parse_envelope, parse_frame, scan)

names = st.text(st.characters(blacklist_characters="@", blacklist_categories=("Cs",)),
                min_size=1, max_size=12)
refs = st.builds(RemoteRef, names, st.from_regex(r"[a-z]{1,6}@[a-z]{1,6}", fullmatch=True))
scalars = (st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1)
           | st.floats(allow_nan=False) | st.text(max_size=20) | st.binary(max_size=20))
plain = st.recursive(
    scalars | refs,
    lambda inner: st.tuples(inner, inner) | st.lists(inner, max_size=4).map(tuple)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


@message("prop.codec.vm_started", version=1)
@dataclasses.dataclass(frozen=True)
class VmStarted:
    vm: str
    site: str
    cpus: int
    memory_mib: int


@message("prop.codec.envelope", version=3)
@dataclasses.dataclass(frozen=True)
class Wrapped:
    inner: VmStarted
    reply_to: RemoteRef
    tags: tuple
    extra: dict


@message("prop.codec.pair", version=1)
class Pair(NamedTuple):
    left: object
    right: object


@message("prop.codec.typed", version=1)
@dataclasses.dataclass(frozen=True)
class Typed:
    name: str | None
    ratio: float
    tags: tuple[str, ...]
    counts: dict[str, int]
    pair: tuple[int, str]


vm_started = st.builds(VmStarted, st.text(max_size=10), st.text(max_size=10),
                       st.integers(0, 512), st.integers(0, 2**40))
STRATEGIES = {
    VmStarted: vm_started,
    Wrapped: st.builds(Wrapped, vm_started, refs, st.lists(st.text(max_size=5), max_size=3)
                       .map(tuple), st.dictionaries(st.text(max_size=5), plain, max_size=3)),
    Pair: st.builds(Pair, plain, plain),
    Typed: st.builds(Typed, st.none() | st.text(max_size=5),
                     st.floats(allow_nan=False) | st.integers(-2**63, 2**63 - 1),
                     st.lists(st.text(max_size=5), max_size=4).map(tuple),
                     st.dictionaries(st.text(max_size=5), st.integers(-2**63, 2**63 - 1), max_size=3),
                     st.tuples(st.integers(0, 9), st.text(max_size=5))),
}


def test_every_message_type_registered_here_has_a_strategy():
    mine = {t.cls for t in registered_types() if t.tag.startswith("prop.codec.")}
    assert mine == set(STRATEGIES)


@given(st.sampled_from(sorted(STRATEGIES, key=lambda c: c.__name__)).flatmap(STRATEGIES.get))
def test_registered_messages_round_trip(value):
    codec = Codec()
    assert codec.decode(codec.encode(value)) == value


@given(plain)
def test_plain_data_round_trips_with_sequences_as_tuples(value):
    codec = Codec()
    assert codec.decode(codec.encode(value)) == value


@given(st.binary(max_size=300))
def test_random_bytes_raise_only_wire_error(data):
    codec = Codec()
    for parse in (codec.decode, parse_frame):
        try:
            parse(data)
        except WireError:
            pass


def _valid_frame(value) -> bytes:
    body = Codec().encode(value)
    return build_frame("a@b", "tcp://127.0.0.1:1", [[1, "echo", body], [2, "echo", 3, body]])


@given(st.sampled_from(sorted(STRATEGIES, key=lambda c: c.__name__)).flatmap(STRATEGIES.get),
       st.data())
def test_mutated_frames_raise_only_wire_error(value, data):
    frame = bytearray(_valid_frame(value))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(frame) - 1))
        frame[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(frame)))
    _parse_everything(bytes(frame[:cut]))


@given(st.recursive(scalars, lambda inner: st.lists(inner, max_size=5), max_leaves=20))
def test_well_formed_msgpack_of_the_wrong_shape_raises_only_wire_error(value):
    _parse_everything(msgpack.packb([1, "a@b", "x", [value]], use_bin_type=True))
    _parse_everything(msgpack.packb(value, use_bin_type=True))


@given(st.integers(0, 127), st.binary(max_size=40))
def test_unknown_or_broken_extension_values_raise_only_wire_error(code, payload):
    try:
        Codec().decode(msgpack.packb(msgpack.ExtType(code, payload)))
    except WireError:
        pass


def _parse_everything(data: bytes) -> None:
    codec = Codec()
    try:
        frame = parse_frame(data)
    except WireError:
        return
    for raw in frame.envelopes:
        try:
            envelope = parse_envelope(raw)
        except WireError:
            continue
        for item in envelope[1:]:
            if isinstance(item, bytes):
                try:
                    codec.decode(item)
                except WireError:
                    pass


# -- hostile bytes ------------------------------------------------------------------------------


def _ext_head(code: int, size: int) -> bytes:
    """An extension header by hand (msgpack.ExtType refuses negative codes)."""
    fixed = {1: 0xd4, 2: 0xd5, 4: 0xd6, 8: 0xd7, 16: 0xd8}
    if size in fixed:
        return bytes([fixed[size], code & 0xff])
    if size <= 0xff:
        return bytes([0xc7, size, code & 0xff])
    return b"\xc8" + size.to_bytes(2, "big") + bytes([code & 0xff])


ext_codes = st.sampled_from([1, 1, 1, 2, 3, -1, 0, 4, 42, 127, -2, -128])
leaves = (st.builds(lambda v: msgpack.packb(v, use_bin_type=True), scalars)
          | st.binary(max_size=12)                                   # raw garbage
          | st.sampled_from([msgpack.packb(msgpack.Timestamp(1, 0)),  # timestamps
                             msgpack.packb(msgpack.Timestamp(1, 7)),
                             msgpack.packb(msgpack.Timestamp(-1, 7))])
          | st.sampled_from([b"\xdd\x80\x00\x00\x00", b"\xdf\xff\xff\xff\xff",  # lying heads
                             b"\xdb\x80\x00\x00\x00", b"\xc6\xff\xff\xff\xff",
                             b"\xc9\x80\x00\x00\x00\x01", b"\xc1"])
          | st.builds(lambda n, b: bytes([b]) * n + b"\xc0",       # nesting bombs
                      st.integers(1, 3000), st.sampled_from([0x91, 0x81, 0xdc, 0xd4])))


def _array(items: list[bytes], lie: int) -> bytes:
    return (bytes([0x90 + len(items)]) if lie == 0 and len(items) < 16
            else b"\xdc" + (len(items) + lie).to_bytes(2, "big", signed=False)) + b"".join(items)


def _ext_of(code: int, payload: bytes) -> bytes:
    return _ext_head(code, len(payload)) + payload


hostile = st.recursive(
    leaves,
    lambda inner: (st.builds(_array, st.lists(inner, max_size=5), st.sampled_from([0, 0, 0, 1, 7]))
                   | st.builds(lambda kv: bytes([0x80 + len(kv)]) + b"".join(k + v for k, v in kv),
                               st.lists(st.tuples(inner, inner), max_size=4))
                   | st.builds(_ext_of, ext_codes, inner)
                   | st.builds(lambda tag, vals: _ext_of(1, b"\x93" + msgpack.packb(tag) + b"\x01"
                                                         + _array(vals, 0)),
                               st.sampled_from(sorted(t.tag for t in registered_types())),
                               st.lists(inner, max_size=6))),
    max_leaves=25)


@given(hostile)
def test_hostile_bodies_decode_or_raise_wire_error_only(body):
    try:
        value = Codec().decode(body)
    except WireError as exc:
        assert exc.reason in ("malformed", "unknown_type", "unknown_version")
        return
    _assert_documented(value)


@given(st.lists(hostile, max_size=4), st.sampled_from([1, 2, 3, 4, 5, 9, 99]))
def test_hostile_frames_parse_or_raise_wire_error_only(items, kind):
    envelope = _array([msgpack.packb(kind)] + items, 0)
    frame = msgpack.packb([1, "a@b", "x", []])[:-1] + b"\x91" + envelope
    _parse_everything(frame)
    _parse_everything(frame[:-1])


@given(st.binary(max_size=2000))
def test_long_random_bytes_raise_only_wire_error(data):
    for parse in (Codec().decode, parse_frame):
        try:
            parse(data)
        except WireError:
            pass


@given(hostile)
def test_a_body_the_fast_check_lets_through_unscanned_decodes_within_the_limits(body):
    # decode() skips the scan when _needs_scan() is False: that must be a proof that msgpack,
    # unguarded, either refuses the body or yields documented values within the depth limit
    if _needs_scan(body):
        return
    try:
        value = Codec()._unpack(body)
    except Exception:  # noqa: BLE001 - decode() turns any of these into WireError
        return
    _assert_documented(value)


@given(plain)
def test_the_scan_accepts_every_body_the_codec_encodes(value):
    scan(Codec().encode(value), ext_codes=_EXT_CODES)


@given(st.sampled_from(sorted(STRATEGIES, key=lambda c: c.__name__)).flatmap(STRATEGIES.get))
def test_the_scan_accepts_every_registered_message_the_codec_encodes(value):
    scan(Codec().encode(value), ext_codes=_EXT_CODES)


@given(st.integers(0, 3), plain)
def test_a_field_of_the_wrong_type_is_refused_naming_the_field(index, value):
    names = ("vm", "site", "cpus", "memory_mib")
    values = ["vm-1", "dc-1", 2, 1024]
    values[index] = value
    body = msgpack.packb(msgpack.ExtType(1, Codec()._pack(["prop.codec.vm_started", 1, values])))
    allowed = (str,) if index < 2 else (int, bool)
    try:
        decoded = Codec().decode(body)
    except WireError as exc:
        assert type(value) not in allowed
        assert exc.reason == "malformed" and exc.context["field"] == names[index]
        return
    assert type(value) in allowed and getattr(decoded, names[index]) == value


def _assert_documented(value) -> None:
    """Only documented body types, nested at most MAX_DEPTH deep (iteratively)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        assert depth <= MAX_DEPTH
        if type(item) in (type(None), bool, int, float, str, bytes):
            continue
        if type(item) is tuple:
            stack.extend((v, depth + 1) for v in item)
        elif type(item) is dict:
            stack.extend((v, depth + 1) for kv in item.items() for v in kv)
        elif type(item) in _BY_CLASS:
            stack.extend((getattr(item, f), depth + 1) for f in _BY_CLASS[type(item)].fields)
        else:
            assert isinstance(item, (RefBase, ActorError)), type(item)
