"""Hypothesis: the wire codec round-trips registered messages and rejects malformed input
with WireError only."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import msgpack
from hypothesis import given
from hypothesis import strategies as st

from wind_actors.errors import WireError
from wind_actors.runtime import Codec, RemoteRef, message, registered_types
from wind_actors.runtime._wire import build_frame, parse_envelope, parse_frame

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


vm_started = st.builds(VmStarted, st.text(max_size=10), st.text(max_size=10),
                       st.integers(0, 512), st.integers(0, 2**40))
STRATEGIES = {
    VmStarted: vm_started,
    Wrapped: st.builds(Wrapped, vm_started, refs, st.lists(st.text(max_size=5), max_size=3)
                       .map(tuple), st.dictionaries(st.text(max_size=5), plain, max_size=3)),
    Pair: st.builds(Pair, plain, plain),
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
