"""The wire survives anything: bounded decoding and typed fields, at the codec and at a node.

Every crafted input here once crashed or misled a node (200 nested extension values overflowed
the C stack; 1,000 nested arrays killed the I/O thread with a RecursionError while an error
message was formatted) or could have: each must now be a counted ``malformed`` drop, after
which the node still answers an ask. The node tests run over plain TCP and over CURVE with a
trusted key, in process (to read the counters) and in a helper process (where a crash would
show as the process dying).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, NamedTuple, Optional

import msgpack
import pytest
import zmq
from runtime_messages import CallMe, Echo, EchoActor
from runtime_support import wait_for

from wind_actors.errors import ActorError, WireError
from wind_actors.runtime import Codec, Node, RemoteRef, load_keypair, message
from wind_actors.runtime._security import public_key_of
from wind_actors.runtime._wire import (MAX_DEPTH, MAX_ENVELOPES, MAX_EXT_DEPTH, WIRE_VERSION,
                                       Kind, RefBase, field_checks, parse_frame, scan)

# -- crafted bodies and frames ----------------------------------------------------------------


def nested_ext(levels: int, code: int = 1) -> bytes:
    """``levels`` extension values, each the payload of the next (the SIGSEGV of old)."""
    data = msgpack.packb(None)
    for _ in range(levels):
        data = msgpack.packb(msgpack.ExtType(code, data))
    return data


def ext(code: int, payload: bytes) -> bytes:
    """An ext8 value by hand: msgpack.ExtType refuses the negative codes a peer may send."""
    return b"\xc7" + bytes([len(payload), code & 0xff]) + payload


def nested_arrays(levels: int) -> bytes:
    return b"\x91" * levels + b"\xc0"


def nested_maps(levels: int) -> bytes:
    return b"\x81\xa1k" * levels + b"\xc0"


def message_body(tag: str, values: list[Any], version: int = 1) -> bytes:
    """A registered message's body with any values at all (the codec never encodes these)."""
    return msgpack.packb(msgpack.ExtType(1, msgpack.packb([tag, version, values],
                                                          use_bin_type=True)))


def wrapped(value: Any) -> bytes:
    """``value`` as the one field of a ``Box`` (annotated ``object``: anything)."""
    return message_body("test.limits.box", [value])


HUGE_HEADERS = {
    "array32": b"\xdd\x80\x00\x00\x00",
    "map32": b"\xdf\x80\x00\x00\x00",
    "array16": b"\xdc\xff\xff",
    "str32": b"\xdb\x80\x00\x00\x00abc",
    "bin32": b"\xc6\x80\x00\x00\x00abc",
    "ext32": b"\xc9\x80\x00\x00\x00\x01abc",
}

TIMESTAMPS = {
    "ts32": msgpack.packb(msgpack.Timestamp(1, 0)),
    "ts64": msgpack.packb(msgpack.Timestamp(1, 5)),
    "ts96": msgpack.packb(msgpack.Timestamp(-1, 5)),
    "ts32_as_ext8": b"\xc7\x04\xff\x00\x00\x00\x01",
    "ts96_as_ext16": b"\xc8\x00\x0c\xff" + bytes(12),
}


@message("test.limits.box", version=1)
@dataclasses.dataclass(frozen=True)
class Box:
    """Carries anything (``object``), so nesting can be built through messages."""

    content: object


class Color(enum.IntEnum):
    RED = 1
    BLUE = 2


class Mood(str, enum.Enum):
    CALM = "calm"
    ANGRY = "angry"


@message("test.limits.typed", version=1)
@dataclasses.dataclass(frozen=True)
class Typed:
    """One field per annotation form the field checks support."""

    name: str
    count: int
    ratio: float
    flag: bool
    blob: bytes
    maybe: str | None
    legacy: Optional[int]
    tags: tuple[str, ...]
    pair: tuple[str, int]
    any_tuple: tuple
    table: dict[str, int]
    any_dict: dict
    ref: RemoteRef
    echo: Echo
    color: Color
    mood: Mood
    anything: Any


@message("test.limits.point", version=1)
class Point(NamedTuple):
    x: int
    y: float = 0.0


@message("test.limits.unresolved", version=1)
@dataclasses.dataclass(frozen=True)
class Unresolved:
    """``ghost``'s annotation names a class that does not exist: it stays unchecked."""

    known: str
    ghost: NoSuchClass  # type: ignore[name-defined]  # noqa: F821


def typed(**changes: Any) -> Typed:
    good = Typed("n", 1, 0.5, True, b"b", None, None, ("a",), ("a", 1), (1, "x"), {"k": 1},
                 {1: "x"}, RemoteRef("echo", "a@b"), Echo("hi"), Color.RED, Mood.CALM, [1])
    return dataclasses.replace(good, **changes)


def typed_body(**changes: Any) -> bytes:
    """A Typed body with some fields replaced by raw wire values, bypassing the encoder."""
    codec = Codec()
    good = codec.decode(codec.encode(typed()))
    values = [getattr(good, f.name) for f in dataclasses.fields(Typed)]
    names = [f.name for f in dataclasses.fields(Typed)]
    for name, value in changes.items():
        values[names.index(name)] = value
    inner = Codec()._pack(["test.limits.typed", 1, values])  # refs and messages as ext values
    return msgpack.packb(msgpack.ExtType(1, inner))


def refused(body: bytes) -> WireError:
    with pytest.raises(WireError) as info:
        Codec().decode(body)
    return info.value


# -- bounded decoding, at the codec ------------------------------------------------------------


def test_two_hundred_nested_ext_values_are_a_malformed_drop_not_a_crash():
    err = refused(nested_ext(200))
    assert err.reason == "malformed"
    assert "nested deeper" in err.message


def test_ten_thousand_nested_ext_values_are_refused_as_fast_as_a_few():
    assert refused(nested_ext(10_000)).reason == "malformed"


def test_a_thousand_nested_arrays_are_malformed_in_a_body():
    assert refused(nested_arrays(1000)).reason == "malformed"


def test_a_thousand_nested_maps_are_malformed_in_a_body():
    assert refused(nested_maps(1000)).reason == "malformed"


def test_nesting_up_to_the_depth_limit_decodes_and_one_more_level_is_malformed():
    value = Codec().decode(nested_arrays(MAX_DEPTH))
    for _ in range(MAX_DEPTH):
        (value,) = value
    assert value is None
    assert refused(nested_arrays(MAX_DEPTH + 1)).reason == "malformed"


def test_messages_nest_up_to_the_ext_limit_and_one_more_is_malformed():
    codec = Codec()
    inner: Any = "core"
    for _ in range(MAX_EXT_DEPTH):
        inner = Box(inner)
    assert codec.decode(codec.encode(inner)) == inner
    err = refused(codec.encode(Box(inner)))
    assert err.reason == "malformed" and "extension values nested deeper" in err.message


def test_a_thousand_nested_arrays_in_a_frame_are_malformed_without_formatting_them():
    bomb = nested_arrays(1000)
    as_version = b"\x94" + bomb + msgpack.packb("a@b") + msgpack.packb("x") + b"\x90"
    in_envelope = msgpack.packb([WIRE_VERSION, "a@b", "x", []])[:-1] + b"\x91\x93\x01\xa1e" + bomb
    for frame in (as_version, in_envelope):
        with pytest.raises(WireError) as info:
            parse_frame(frame)
        assert info.value.reason in ("malformed", "unknown_version")
        assert len(info.value.message) < 200


def test_a_frame_as_deep_as_the_limit_parses_and_one_level_more_is_malformed():
    def frame(depth: int) -> bytes:  # the frame and its envelope list are two levels
        head = msgpack.packb([WIRE_VERSION, "a@b", "x", []])[:-1]
        return head + b"\x91" + nested_arrays(depth - 2)

    assert parse_frame(frame(MAX_DEPTH)).src == "a@b"
    with pytest.raises(WireError, match="nested deeper"):
        parse_frame(frame(MAX_DEPTH + 1))


def test_a_frame_with_more_envelopes_than_allowed_is_malformed():
    frame = msgpack.packb([WIRE_VERSION, "a@b", "x", [0] * (MAX_ENVELOPES + 1)])
    with pytest.raises(WireError, match="envelopes") as info:
        parse_frame(frame)
    assert info.value.reason == "malformed"


@pytest.mark.parametrize("name", sorted(HUGE_HEADERS))
def test_a_header_claiming_two_to_the_31_items_in_a_tiny_body_is_malformed(name):
    assert refused(HUGE_HEADERS[name]).reason == "malformed"
    with pytest.raises(WireError) as info:
        scan(HUGE_HEADERS[name], ext_codes=frozenset({1}))
    assert info.value.reason == "malformed"


@pytest.mark.parametrize("name", sorted(HUGE_HEADERS))
def test_a_header_claiming_two_to_the_31_items_in_a_tiny_frame_is_malformed(name):
    frame = msgpack.packb([WIRE_VERSION, "a@b", "x", []])[:-1] + b"\x91" + HUGE_HEADERS[name]
    with pytest.raises(WireError) as info:
        parse_frame(frame)
    assert info.value.reason == "malformed"


@pytest.mark.parametrize("name", sorted(TIMESTAMPS))
def test_a_msgpack_timestamp_is_refused_wherever_it_is(name):
    stamp = TIMESTAMPS[name]
    inside_box = msgpack.packb(msgpack.ExtType(1, msgpack.packb(["test.limits.box", 1])[:-1]
                                                 + b"\x91" + stamp))
    for body in (stamp, b"\x92\x01" + stamp, b"\x81\xa1t" + stamp, inside_box):
        err = refused(body)
        assert err.reason == "malformed"
        assert "timestamp" in err.message or "Timestamp" in err.message


@pytest.mark.parametrize("code", [0, 4, 42, 127, -2, -128])
def test_an_unregistered_extension_code_is_refused(code):
    for body in (ext(code, b"\xc0"), b"\xdc\x00\x15\x01" + ext(code, b"\xc0") + bytes(range(19))):
        err = refused(body)
        assert err.reason == "malformed" and "extension type" in err.message


def test_a_broken_extension_payload_is_malformed():
    for payload in (b"", b"\xc0\xc0", b"\x92\xa1a", b"\xc1"):
        assert refused(msgpack.packb(msgpack.ExtType(2, payload))).reason == "malformed"


def test_trailing_bytes_and_truncation_are_malformed():
    body = Codec().encode(Echo("hello"))
    assert refused(body + b"\xc0").reason == "malformed"
    for cut in range(1, len(body)):
        assert refused(body[:cut]).reason == "malformed"


# -- typed fields, at the codec ----------------------------------------------------------------


def test_every_annotation_form_round_trips_with_valid_values():
    codec = Codec()
    value = typed()
    back = codec.decode(codec.encode(value))
    assert back == dataclasses.replace(value, color=1, mood="calm", anything=(1,))


def test_a_str_field_given_an_int_is_malformed_and_names_the_field():
    err = refused(message_body("test.runtime.echo", [5]))
    assert err.reason == "malformed"
    assert err.context == {"tag": "test.runtime.echo", "field": "text", "found": "int",
                           "allowed": "str"}
    assert "field 'text' is int; allowed: str" in err.message


@pytest.mark.parametrize("field, value, found", [
    ("name", b"bytes", "bytes"),
    ("count", 1.5, "float"),
    ("count", "1", "str"),
    ("ratio", "0.5", "str"),
    ("flag", 1, "int"),
    ("blob", "text", "str"),
    ("maybe", 3, "int"),
    ("legacy", "x", "str"),
    ("tags", ("a", 2), "tuple whose item 1 is int"),
    ("tags", "abc", "str"),
    ("pair", ("a", 1, 2), "tuple of 3 items"),
    ("pair", ("a", "b"), "tuple whose item 1 is str"),
    ("any_tuple", {"a": 1}, "dict"),
    ("table", {"k": "v"}, "dict with a value that is str"),
    ("table", {1: 1}, "dict with a key that is int"),
    ("any_dict", (1, 2), "tuple"),
    ("ref", "echo@a@b", "str"),
    ("echo", Box("x"), "message 'test.limits.box'"),
    ("echo", "hi", "str"),
    ("color", "red", "str"),
    ("mood", 1, "int"),
])
def test_a_field_of_the_wrong_type_is_malformed(field, value, found):
    err = refused(typed_body(**{field: value}))
    assert err.reason == "malformed"
    assert err.context["field"] == field
    assert err.context["found"] == found


@pytest.mark.parametrize("field, value", [
    ("maybe", "text"), ("maybe", None), ("legacy", 7), ("legacy", None), ("ratio", 2),
    ("count", True), ("tags", ()), ("table", {}), ("color", 99), ("mood", "sad"),
    ("anything", {"x": (None, b"", 1.5)}), ("echo", Echo("other")),
])
def test_a_field_accepts_every_value_its_annotation_allows(field, value):
    decoded = Codec().decode(typed_body(**{field: value}))
    assert getattr(decoded, field) == value


def test_an_int_field_of_a_named_tuple_message_is_checked_too():
    assert Codec().decode(message_body("test.limits.point", [1, 2])) == Point(1, 2)
    assert refused(message_body("test.limits.point", ["1", 2])).context["field"] == "x"


def test_an_annotation_that_does_not_resolve_is_left_unchecked():
    decoded = Codec().decode(message_body("test.limits.unresolved", ["k", {"any": "thing"}]))
    assert decoded == Unresolved("k", {"any": "thing"})
    assert refused(message_body("test.limits.unresolved", [1, None])).context["field"] == "known"


def test_a_ref_field_holds_whatever_ref_class_the_codec_builds():
    class Bound(RefBase):
        pass

    codec = Codec(ref_factory=Bound)
    call = codec.decode(codec.encode(CallMe(RemoteRef("echo", "a@b"), "x")))
    assert type(call.ref) is Bound and call.ref == RemoteRef("echo", "a@b")


def test_an_exception_field_accepts_the_actor_error_it_arrives_as():
    @message("test.limits.failed", version=1)
    @dataclasses.dataclass(frozen=True)
    class Failed:
        error: ValueError

    codec = Codec()
    back = codec.decode(codec.encode(Failed(ValueError("bad"))))  # type: ignore[arg-type]
    assert isinstance(back.error, ActorError) and back.error.message == "bad"
    assert refused(message_body("test.limits.failed", ["bad"])).context["field"] == "error"


def test_every_registered_message_type_of_wind_resolves_its_checks():
    import wind_actors.agent._overlay  # noqa: F401 - registers the overlay messages
    import wind_actors.protocol  # noqa: F401 - registers the protocol messages
    from wind_actors.runtime import registered_types

    for mtype in registered_types():
        checks = field_checks(mtype)
        assert len(checks.each) == len(mtype.fields)
        if mtype.tag.startswith("wind."):
            # every Wind field is checked: none fell back to "anything" by accident
            assert all(c.allowed != "anything" for c in checks.each), mtype.tag


# -- at a running node -------------------------------------------------------------------------


class RawSocket:
    """A hand-driven peer ``raw@test``: PUSH straight into a node's PULL, and a PULL of its own
    for the node's answers; CURVE with raw@test's trusted key when ``keys_dir`` is given."""

    def __init__(self, target_address: str, keys_dir=None, target_name: str = "") -> None:
        self.ctx = zmq.Context()
        self.inbox = self.ctx.socket(zmq.PULL)
        self.push = self.ctx.socket(zmq.PUSH)
        self.push.setsockopt(zmq.LINGER, 0)
        if keys_dir is not None:
            keys = load_keypair(keys_dir / "raw@test.key_secret")
            self.inbox.curve_server = True
            self.inbox.curve_publickey, self.inbox.curve_secretkey = keys.public, keys.secret
            self.push.curve_publickey, self.push.curve_secretkey = keys.public, keys.secret
            self.push.curve_serverkey = public_key_of(target_name, keys_dir)
        self.inbox.bind("tcp://127.0.0.1:0")
        self.address = self.inbox.getsockopt_string(zmq.LAST_ENDPOINT)
        self.push.connect(target_address)

    def frame(self, *envelopes: Any) -> bytes:
        return msgpack.packb([WIRE_VERSION, "raw@test", self.address, list(envelopes)],
                             use_bin_type=True)

    def header(self) -> bytes:
        """A frame's bytes up to its envelope list's header, to append crafted envelopes to."""
        return self.frame()[:-1]

    def ask(self, corr: int, body: bytes, target: str = "echo") -> list[Any]:
        """Send an ask and return the envelope answering it (heartbeats skipped)."""
        self.push.send(self.frame([Kind.ASK, target, corr, body]))
        while self.inbox.poll(10_000):
            for env in msgpack.unpackb(self.inbox.recv())[3]:
                if env[0] in (Kind.REPLY, Kind.ERROR) and env[1] == corr:
                    return env
        raise AssertionError(f"no answer to ask {corr}")

    def close(self) -> None:
        self.ctx.destroy(linger=0)


def crafted_frames(raw: RawSocket) -> list[bytes]:
    """One of each kind of crafted input, every one of which is exactly one malformed drop."""
    tell = [Kind.TELL, "echo"]
    bodies = [nested_ext(200), nested_ext(10_000), nested_arrays(1000), nested_maps(1000),
              *HUGE_HEADERS.values(), *TIMESTAMPS.values(),
              msgpack.packb(msgpack.ExtType(42, b"")), message_body("test.runtime.echo", [5]),
              message_body("test.runtime.call_me", ["not a ref", "x"]), typed_body(tags=(1,))]
    frames = [raw.frame(tell + [body]) for body in bodies]
    frames.append(raw.header() + b"\x91" + nested_arrays(1000))  # an envelope as a bomb
    frames.append(b"\x94" + nested_arrays(1000) + raw.frame()[1:])  # the version as a bomb
    frames.append(raw.header() + b"\x91" + HUGE_HEADERS["array32"])
    return frames


@pytest.fixture(params=["plain", "curve"])
def node_and_raw(request, keys_dir):
    """An in-process node serving ``echo`` and a raw socket into it, over plain TCP or CURVE."""
    if request.param == "plain":
        node = Node.start(name="test@local", bind="tcp://127.0.0.1:0", insecure=True)
        raw = RawSocket(node.address)
    else:
        node = Node.start(name="test@local", bind="tcp://127.0.0.1:0", keys_dir=str(keys_dir))
        raw = RawSocket(node.address, keys_dir, node.name)
    node.register("echo", EchoActor.start())
    yield node, raw
    raw.close()
    node.stop()


def _counters(node: Node) -> dict[str, int]:
    return node.stats()["counters"]


def test_crafted_frames_are_counted_drops_and_the_node_still_answers_an_ask(node_and_raw):
    node, raw = node_and_raw
    frames = crafted_frames(raw)
    for frame in frames:
        raw.push.send(frame)
    wait_for(lambda: _counters(node).get("malformed", 0) >= len(frames))
    reply = raw.ask(1, Codec().encode(Echo("still here")))
    assert reply[:2] == [Kind.REPLY, 1]
    assert Codec().decode(reply[2]) == Echo("still here")
    assert _counters(node)["malformed"] == len(frames)
    assert _counters(node).get("delivered", 0) == 1


def test_an_ask_with_a_field_of_the_wrong_type_gets_a_malformed_error_reply(node_and_raw):
    node, raw = node_and_raw
    error = raw.ask(2, message_body("test.runtime.echo", [5]))
    assert error[:3] == [Kind.ERROR, 2, "malformed"]
    assert b"field 'text' is int; allowed: str" in error[3]
    assert _counters(node)["malformed"] == 1
    assert _counters(node).get("delivered", 0) == 0


def test_an_ask_carrying_two_hundred_nested_ext_values_gets_a_malformed_error_reply(node_and_raw):
    node, raw = node_and_raw
    assert raw.ask(3, nested_ext(200))[:3] == [Kind.ERROR, 3, "malformed"]
    assert raw.ask(4, Codec().encode(Echo("alive")))[:2] == [Kind.REPLY, 4]


def test_a_helper_node_process_survives_the_crafted_frames_and_keeps_serving(
        local_node, keys_dir, spawn):
    peer = spawn("peer1@proc")
    raw = RawSocket(peer.address, keys_dir, peer.name)
    try:
        for frame in crafted_frames(raw):
            raw.push.send(frame)
        # a raw ask after the garbage: answered only once everything before it was handled
        assert raw.ask(5, Codec().encode(Echo("raw")))[:2] == [Kind.REPLY, 5]
    finally:
        raw.close()
    assert peer.proc.poll() is None, "the helper node process died"
    local_node.connect(peer.name, peer.address)
    assert local_node.ref("echo@peer1@proc").ask(Echo("ok")) == Echo("ok")
