"""Pure parts of the runtime: config validation, membership with a fake clock, codec, CLI."""

from __future__ import annotations

import dataclasses
import json

import pytest
import supervisors
from runtime_support import start_node_process, wind_node_start

from wind_actors.cli.main import main as wind_main
from wind_actors.config import NodeConfig, load_config, parse_config
from wind_actors.errors import ConfigError, WireError
from wind_actors.runtime import Codec, RemoteRef, message
from wind_actors.runtime._membership import Membership


# -- config ------------------------------------------------------------------------------------


def test_a_node_section_loads_with_documented_defaults(tmp_path):
    path = tmp_path / "wind.toml"
    path.write_text('[node]\nname = "agent@site-a"\nkeys_dir = "keys"\n'
                    '[node.peers]\n"controller@hq" = "tcp://10.0.0.1:7000"\n'
                    '[future]\nknob = "a"\n')
    config = load_config(path)
    node = config.node
    assert node.name == "agent@site-a"
    assert node.keys_dir == str(tmp_path / "keys")
    assert (node.heartbeat_interval, node.heartbeat_misses) == (0.2, 3)
    assert node.max_frame_bytes == 1 << 20 and node.insecure is False
    assert node.peers == {"controller@hq": "tcp://10.0.0.1:7000"}
    assert node.secret_key_path == tmp_path / "keys" / "agent@site-a.key_secret"
    assert config.extra == {"future": {"knob": "a"}}


@pytest.mark.parametrize("field, value, words", [
    ("heartbeat_interval", 0, "seconds between 0.01 and 300"),
    ("heartbeat_misses", "3", "integer between 1 and 1000"),
    ("max_frame_bytes", 10, "between 1024"),
    ("bind", "localhost:7000", "tcp://HOST:PORT"),
    ("name", "no spaces@x", "letters, digits"),
    ("colour", "blue", "known fields are"),
], ids=lambda v: str(v))
def test_an_invalid_node_setting_names_field_value_and_what_is_allowed(field, value, words):
    data = {"name": "a@b", "keys_dir": "k", field: value}
    with pytest.raises(ConfigError) as info:
        NodeConfig.from_dict(data)
    assert field in str(info.value) and repr(value) in str(info.value) and words in str(info.value)


def test_curve_needs_keys_dir_unless_insecure_is_explicit():
    with pytest.raises(ConfigError, match="keys_dir"):
        NodeConfig(name="a@b")
    assert NodeConfig(name="a@b", insecure=True).secret_key_path is None


def test_invalid_toml_is_a_config_error():
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_config("[node\nname=")


# -- membership --------------------------------------------------------------------------------


def test_every_peer_is_pinged_once_per_interval_even_when_down():
    m = Membership(interval=1.0, misses=2)
    m.want("b", "tcp://x:1", now=0.0)
    assert [p for p, _ in m.tick(0.0).pings] == ["b"]
    assert m.tick(0.5).pings == []
    m.lost("b", 0.6)
    assert [p for p, _ in m.tick(1.0).pings] == ["b"]


def test_rtt_comes_from_the_latest_ping_only():
    m = Membership(interval=1.0, misses=2)
    m.want("b", "tcp://x:1", now=0.0)
    (_, seq), = m.tick(10.0).pings
    m.pong("b", seq - 1, 0.0, now=10.5)  # a stale echo is ignored
    assert m.rtt_ms() == {}
    m.pong("b", seq, 10.0, now=10.002)
    assert m.rtt_ms() == {"b": pytest.approx(2.0)}


# -- codec -------------------------------------------------------------------------------------


@message("test.units.point", version=2)
@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


def test_messages_refs_and_exceptions_round_trip():
    codec = Codec()
    value = {"p": Point(1, 2), "refs": (RemoteRef("vm-1", "agent@a"),), "n": None}
    assert codec.decode(codec.encode(value)) == value
    err = codec.decode(codec.encode(ValueError("bad")))
    assert err.remote_type == "builtins.ValueError" and err.message == "bad"


def test_a_message_of_another_version_is_rejected():
    codec = Codec()
    body = codec.encode(Point(1, 2)).replace(b"\x02", b"\x03", 1)
    with pytest.raises(WireError) as info:
        codec.decode(body)
    assert info.value.reason in ("unknown_version", "malformed")


def test_registering_a_mutable_class_is_refused():
    with pytest.raises(TypeError, match="frozen"):
        @message("test.units.mutable")
        @dataclasses.dataclass
        class Mutable:
            x: int


def test_a_tag_cannot_be_taken_twice():
    with pytest.raises(TypeError, match="already registered"):
        @message("test.units.point")
        @dataclasses.dataclass(frozen=True)
        class Other:
            x: int


# -- CLI ---------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _unconfigure_logging():
    """wind's main() configures structlog to print to the sys.stderr of that moment, which is
    pytest's capture file of one test; undo it so later tests do not log into a closed file."""
    yield
    import structlog

    import wind_actors.log

    structlog.reset_defaults()
    wind_actors.log._configured = False


def test_keys_generate_writes_a_certificate_pair_and_prints_json(tmp_path, capsys):
    assert wind_main(["keys", "generate", "agent@site-a", "--dir", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["name"] == "agent@site-a" and len(data["public_key"]) == 40
    assert (tmp_path / "agent@site-a.key").exists()
    assert (tmp_path / "agent@site-a.key_secret").stat().st_mode & 0o077 == 0
    assert wind_main(["keys", "list", "--dir", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["has_secret"] is True


def test_keys_generate_refuses_to_overwrite(tmp_path, capsys):
    wind_main(["keys", "generate", "a@b", "--dir", str(tmp_path)])
    assert wind_main(["keys", "generate", "a@b", "--dir", str(tmp_path)]) == 1
    assert "exists already" in capsys.readouterr().err


def test_node_ping_reports_a_running_node_as_up(keys_dir, tmp_path, capsys):
    peer = start_node_process("peer1@proc", keys_dir)
    try:
        config = tmp_path / "op.toml"
        config.write_text(f'[node]\nname = "raw@test"\nkeys_dir = "{keys_dir}"\n')
        assert wind_main(["node", "ping", peer.name, peer.address, "--config", str(config),
                          "--json"]) == 0
    finally:
        peer.close()
    data = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert data["up"] is True and data["rtt_ms"] > 0


def test_node_start_runs_until_terminated(keys_dir, tmp_path):
    config = tmp_path / "n.toml"
    config.write_text(f'[node]\nname = "peer2@proc"\nkeys_dir = "{keys_dir}"\n')
    proc = wind_node_start(config)
    try:
        line = proc.stdout.readline()
        assert json.loads(line)["name"] == "peer2@proc"
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.stdout.close()


def test_the_public_api_is_exported_once_and_completely():
    import wind_actors.runtime as runtime

    for name in runtime.__all__:
        assert hasattr(runtime, name), name
    for name in ("Node", "RemoteRef", "NodeUp", "NodeDown", "message"):
        assert name in runtime.__all__



class _Idle(supervisors.WatchedActor):
    pass


def test_an_actor_leaving_cannot_unbind_a_name_its_successor_has_taken(local_node):
    old, new = _Idle.start(), _Idle.start()
    local_node.register("vm.x", old)
    old.stop()
    local_node.register("vm.x", new)  # the old one has exited: its name is free
    assert local_node.unregister("vm.x", old) is False
    assert local_node.whereis("vm.x") is new
    assert local_node.unregister("vm.x", new) is True and local_node.whereis("vm.x") is None
