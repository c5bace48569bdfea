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
    # max_peers = 4096                   peers held at once (one socket, three fds each)
    # forget_after = 60.0                seconds before a down, unused peer is forgotten
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


def _parse_role(text: str) -> tuple[str, str | None] | None:
    role, _, scope = text.partition(":")
    if role in ("peer", "controller", "operator") and not scope:
        return role, None
    if role in ("agent", "client") and scope and _NODE_NAME.match(f"x@{scope}"):
        return role, scope
    return None


@dataclasses.dataclass(frozen=True)
class NodeConfig:
    """The ``[node]`` section: one Wind node's identity, address, keys and failure detection.

    Attributes:
        name: node name such as ``agent@site-a`` (letters, digits, ``_ . -``, one ``@``).
        bind: ZeroMQ endpoint to listen on, ``tcp://HOST:PORT`` (port 0 picks a free one).
        keys_dir: directory of trusted public keys; required unless ``insecure``.
        secret_key_file: this node's ``.key_secret``; default ``NAME.key_secret`` wherever it is
            filed in ``keys_dir`` (at its top, or in its role's folder).
        insecure: plain TCP without CURVE (warned about at start). Default False.
        heartbeat_interval: seconds between heartbeats to each peer. Default 0.2.
        heartbeat_misses: silent intervals before a peer is declared down. Default 3.
        max_frame_bytes: largest frame sent or accepted. Default 1 MiB.
        peers: ``{node_name: endpoint}`` connected to at start and whenever needed.
        roles: insecure only: ``{node_name: "ROLE[:SCOPE]"}`` (``agent:dc-1``, ``client:acme``),
            the roles taken on trust from peers' names when there is no CURVE to prove them.
        max_peers: most peers a node tracks and holds a socket for (each costs one socket and
            three file descriptors); a new one beyond is refused, counted as ``peer_limit`` and
            logged. Default 4096.
        forget_after: seconds a peer stays known (pinged) while down and unused before it is
            forgotten and its socket closed; peers in ``peers`` never are. Default 60.
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
    roles: dict[str, str] = dataclasses.field(default_factory=dict)
    max_peers: int = 4096
    forget_after: float = 60.0

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
        self._check_roles()
        self._check_peer_limits()

    def _check_peer_limits(self) -> None:
        peers = self.max_peers
        if isinstance(peers, bool) or not isinstance(peers, int) or not 1 <= peers <= 60000:
            raise _fail("node", "max_peers", peers, "use an integer between 1 and 60000")
        after = self.forget_after
        if isinstance(after, bool) or not isinstance(after, (int, float)) or not 1 <= after <= 1e6:
            raise _fail("node", "forget_after", after, "use seconds between 1 and 1000000")

    def _check_roles(self) -> None:
        if not isinstance(self.roles, dict):
            raise _fail("node", "roles", self.roles, 'use a table of node_name = "ROLE[:SCOPE]"')
        if self.roles and not self.insecure:
            raise _fail("node", "roles", self.roles, "with CURVE a peer's role is the folder its key "
                        "is filed in (keys_dir/controller, agent/SITE, client/TENANT, operator); "
                        "[node.roles] is only for insecure = true")
        for peer, role in self.roles.items():
            if not isinstance(role, str) or _parse_role(role) is None:
                raise _fail("node", f"roles.{peer}", role, "use peer, controller, operator, "
                            "agent:SITE or client:TENANT")

    def role_table(self) -> dict[str, tuple[str, str | None]]:
        """``[node.roles]`` parsed: node name -> (role, scope)."""
        return {peer: _parse_role(role) for peer, role in self.roles.items()}  # type: ignore[misc]

    @property
    def secret_key_path(self) -> Path | None:
        """Where this node's secret key is read from (``None`` when insecure)."""
        if self.insecure:
            return None
        if self.secret_key_file:
            return Path(self.secret_key_file)
        from wind_actors.runtime._trust import find_key  # the layout files own keys by role too

        found = find_key(self.keys_dir or ".", self.name, ".key_secret")
        return found if found is not None else Path(self.keys_dir or ".") / f"{self.name}.key_secret"

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
