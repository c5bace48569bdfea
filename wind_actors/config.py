"""Wind's TOML configuration: one dataclass per section, validated on load.

Only ``[node]`` is defined here; later issues add ``[agent]``, ``[controller]`` ... by adding a
dataclass and one entry to :data:`SECTIONS`. Unknown sections are kept raw in
``WindConfig.extra`` so an older Wind can read a newer file's ``[node]``.

Example::

    [node]
    name = "agent@site-a"
    bind = "tcp://0.0.0.0:7001"
    keys_dir = "/etc/wind/keys"          # trusted public keys (NAME.key)
    # secret_key_file = "/etc/wind/keys/agent@site-a.key_secret"   (this default)
    heartbeat_interval = 0.2             # LAN default; on a slow WAN try 1.0
    heartbeat_misses = 3                 # LAN default; on a slow WAN try 10-30
    max_frame_bytes = 1048576
    # cpus = [0]                         pin the node to these CPUs (see wind_actors.affinity)

    [node.peers]
    "controller@hq" = "tcp://10.0.0.1:7000"

Heartbeat defaults notice a silent LAN peer within about ``interval * (misses + 1)`` = 0.8 s;
a dead process is noticed at once when its TCP connection closes. For a site behind a slow or
lossy WAN link give it a longer grace, e.g. ``heartbeat_interval = 1.0`` and
``heartbeat_misses = 15`` (15 s), as Nomad's ``heartbeat_grace`` does.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

# The [agent], [controller] and [client] sections live in their own module, with the
# validation helpers every section shares.
from wind_actors._system_config import _NODE as _NODE_NAME
from wind_actors._system_config import AgentConfig, ClientConfig, ControllerConfig, _check_keys, _fail
from wind_actors.errors import ConfigError

__all__ = ["NodeConfig", "WindConfig", "load_config", "parse_config", "SECTIONS",
           "AgentConfig", "ControllerConfig", "ClientConfig"]

_ENDPOINT = re.compile(r"^(tcp://[^\s:]+:\d{1,5}|ipc://\S+|inproc://\S+)$")


@dataclasses.dataclass(frozen=True)
class NodeConfig:
    """The ``[node]`` section: one Wind node's identity, address, keys and failure detection.

    Attributes:
        name: node name such as ``agent@site-a`` (letters, digits, ``_ . -``, one ``@``).
        bind: ZeroMQ endpoint to listen on, ``tcp://HOST:PORT`` (port 0 picks a free one).
        keys_dir: directory of trusted public keys; required unless ``insecure``.
        secret_key_file: this node's ``.key_secret``; default ``keys_dir/NAME.key_secret``.
        insecure: plain TCP without CURVE (warned about at start). Default False.
        heartbeat_interval: seconds between heartbeats to each peer. Default 0.2.
        heartbeat_misses: silent intervals before a peer is declared down. Default 3.
        max_frame_bytes: largest frame sent or accepted. Default 1 MiB.
        peers: ``{node_name: endpoint}`` connected to at start and whenever needed.
        cpus: pin the node's process (every thread) to these CPUs when ``wind node``,
            ``wind agent`` or ``wind controller`` starts it; default: not pinned. On a
            VM, one CPU makes every actor hand-off cheaper (see :mod:`wind_actors.affinity`).
    """

    name: str
    bind: str = "tcp://127.0.0.1:0"
    keys_dir: str | None = None
    secret_key_file: str | None = None
    insecure: bool = False
    heartbeat_interval: float = 0.2
    heartbeat_misses: int = 3
    max_frame_bytes: int = 1 << 20
    peers: dict[str, str] = dataclasses.field(default_factory=dict)
    cpus: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        s = "node"
        if not isinstance(self.name, str) or not _NODE_NAME.match(self.name):
            raise _fail(s, "name", self.name, "use letters, digits, '_.-' and one '@', "
                        "e.g. agent@site-a")
        if not isinstance(self.bind, str) or not _ENDPOINT.match(self.bind):
            raise _fail(s, "bind", self.bind, "use tcp://HOST:PORT (or ipc://, inproc://)")
        if not isinstance(self.insecure, bool):
            raise _fail(s, "insecure", self.insecure, "use true or false")
        if not self.insecure and not self.keys_dir:
            raise _fail(s, "keys_dir", self.keys_dir, "CURVE is on by default, so give the "
                        "directory of trusted keys (or set insecure = true for plain TCP)")
        for field in ("keys_dir", "secret_key_file"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, str) or not value):
                raise _fail(s, field, value, "use a path string")
        interval = self.heartbeat_interval
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) \
                or not 0.01 <= interval <= 300:
            raise _fail(s, "heartbeat_interval", interval, "use seconds between 0.01 and 300")
        misses = self.heartbeat_misses
        if isinstance(misses, bool) or not isinstance(misses, int) or not 1 <= misses <= 1000:
            raise _fail(s, "heartbeat_misses", misses, "use an integer between 1 and 1000")
        size = self.max_frame_bytes
        if isinstance(size, bool) or not isinstance(size, int) or not 1024 <= size <= 1 << 30:
            raise _fail(s, "max_frame_bytes", size, "use an integer between 1024 and 2**30")
        if not isinstance(self.peers, dict):
            raise _fail(s, "peers", self.peers, "use a table of node_name = endpoint")
        for peer, endpoint in self.peers.items():
            if not isinstance(peer, str) or not _NODE_NAME.match(peer):
                raise _fail(s, "peers", peer, "peer names follow the node name rules")
            if not isinstance(endpoint, str) or not _ENDPOINT.match(endpoint) \
                    or endpoint.startswith("tcp://") and endpoint.endswith(":0"):
                raise _fail(s, f"peers.{peer}", endpoint, "use tcp://HOST:PORT")
        if self.cpus is not None:
            cpus = self.cpus
            if not isinstance(cpus, (list, tuple)) or not cpus or any(
                    isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in cpus) \
                    or len(set(cpus)) != len(cpus):
                raise _fail(s, "cpus", cpus, "use a non-empty list of distinct CPU numbers, e.g. [0]")
            object.__setattr__(self, "cpus", tuple(cpus))

    @property
    def secret_key_path(self) -> Path | None:
        """Where this node's secret key is read from (``None`` when insecure)."""
        if self.insecure:
            return None
        if self.secret_key_file:
            return Path(self.secret_key_file)
        return Path(self.keys_dir or ".") / f"{self.name}.key_secret"

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, base_dir: Path | None = None) -> NodeConfig:
        """Build from a parsed ``[node]`` table; relative paths are taken from ``base_dir``.

        Raises:
            ConfigError: an unknown field or an invalid value, naming field, value and allowed.
        """
        values = _check_keys("node", cls, data)
        if "name" not in values:
            raise _fail("node", "name", None, "every node needs a name, e.g. agent@site-a")
        for key in ("keys_dir", "secret_key_file"):
            if base_dir is not None and isinstance(values.get(key), str):
                values[key] = str((base_dir / values[key]).resolve())
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class WindConfig:
    """A whole config file: known sections as dataclasses, other sections raw in ``extra``."""

    node: NodeConfig | None = None
    agent: Any = None        # AgentConfig (wind_actors.agent) when the file has [agent]
    controller: Any = None   # ControllerConfig (wind_actors.controller) when it has [controller]
    client: Any = None       # ClientConfig (wind_actors.client) when it has [client]
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


SECTIONS: dict[str, Any] = {"node": NodeConfig, "agent": AgentConfig,
                            "controller": ControllerConfig, "client": ClientConfig}
"""Section name -> dataclass with ``from_dict(data, base_dir=)``; later issues add theirs."""


def parse_config(text: str, *, base_dir: Path | None = None, source: str = "<string>") -> WindConfig:
    """Parse TOML text into a :class:`WindConfig`.

    Raises:
        ConfigError: the TOML is invalid or a section fails validation.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source} is not valid TOML: {exc}", source=source) from None
    sections: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in data.items():
        section = SECTIONS.get(key)
        if section is None:
            extra[key] = value
        else:
            sections[key] = section.from_dict(value, base_dir=base_dir)
    return WindConfig(**sections, extra=extra)


def load_config(path: str | Path) -> WindConfig:
    """Load a TOML config file; relative paths inside it are relative to the file.

    Raises:
        ConfigError: the file is missing or invalid.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}", source=str(path)) from None
    return parse_config(text, base_dir=path.parent, source=str(path))
