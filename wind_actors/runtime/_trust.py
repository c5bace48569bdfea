"""Trust: the public keys a node trusts, and the role each one carries (a plain class).

A node's ``keys_dir`` is laid out by role; the folder a public key sits in *is* its role, and
its file stem is the node's name::

    keys_dir/
      NAME.key                  peer        a trusted node with no system role
      controller/NAME.key       controller
      operator/NAME.key         operator
      agent/SITE/NAME.key       agent of site SITE
      client/TENANT/NAME.key    client of tenant TENANT

So a peer cannot choose its role: it is whatever the node's operator filed its key under. A
node trusts only what its folder holds; an agent's folder needs the controller's key (and other
agents' for RTT probes), never a client's. ``wind keys generate NAME --role ROLE`` writes a key
pair in the right place.

Thread-safe; the directory is re-read (at most once a second) when an unknown key shows up, so a
key copied in later is trusted without a restart.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import structlog
import zmq.auth

from wind_actors.errors import SecurityError

from ._authz import AGENT, CLIENT, CONTROLLER, OPERATOR, PEER, SCOPED, Identity

__all__ = ["TrustPolicy", "key_path", "find_key", "public_key_of", "role_dir", "scan"]

_log = structlog.get_logger("wind.runtime.trust")

_RELOAD_EVERY_S = 1.0


def role_dir(keys_dir: str | Path, role: str = PEER, scope: str | None = None) -> Path:
    """The folder of ``keys_dir`` where keys of ``role`` (and ``scope``) are filed.

    Raises:
        SecurityError: an unknown role, a scoped role without its scope, or a bad scope name.
    """
    base = Path(keys_dir)
    if role == PEER:
        return base
    if role in (CONTROLLER, OPERATOR):
        return base / role
    if role in SCOPED:
        if not scope or "/" in scope or scope.startswith("."):
            raise SecurityError(f"a key of role {role!r} needs its {SCOPED[role]} (a plain name), "
                                f"got {scope!r}")
        return base / role / scope
    raise SecurityError(f"unknown role {role!r}; allowed: peer, controller, operator, agent, client")


def key_path(keys_dir: str | Path, name: str, role: str = PEER, scope: str | None = None) -> Path:
    """Where ``NAME.key`` of that role goes in ``keys_dir``."""
    return role_dir(keys_dir, role, scope) / f"{name}.key"


def scan(keys_dir: Path) -> list[tuple[Path, Identity]]:
    """Every public key file under the layout, with the identity its place gives it."""
    found: list[tuple[Path, Identity]] = []
    if not keys_dir.is_dir():
        return found
    for path in sorted(keys_dir.glob("*.key")):
        found.append((path, Identity(path.stem, PEER)))
    for role in (CONTROLLER, OPERATOR):
        for path in sorted((keys_dir / role).glob("*.key")):
            found.append((path, Identity(path.stem, role)))
    for role in (AGENT, CLIENT):
        for scope_dir in sorted(p for p in (keys_dir / role).glob("*") if p.is_dir()):
            for path in sorted(scope_dir.glob("*.key")):
                found.append((path, Identity(path.stem, role, scope_dir.name)))
    return found


def find_key(keys_dir: str | Path, name: str, suffix: str = ".key") -> Path | None:
    """The file ``NAME{suffix}`` anywhere in the layout, or None."""
    base = Path(keys_dir)
    direct = base / f"{name}{suffix}"
    if direct.exists():
        return direct
    matches = sorted(base.glob(f"*/{name}{suffix}")) + sorted(base.glob(f"*/*/{name}{suffix}"))
    return matches[0] if matches else None


def public_key_of(node_name: str, keys_dir: str | Path) -> bytes:
    """The trusted public key of ``node_name`` (wherever its role files it).

    Raises:
        SecurityError: no such key is trusted.
    """
    path = find_key(keys_dir, node_name)
    try:
        if path is None:
            raise OSError
        public, _ = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError):
        raise SecurityError(f"no trusted public key for node {node_name!r} in {keys_dir}; file its "
                            f"{node_name}.key under the folder of its role (see `wind keys generate "
                            "--help`)", node=node_name) from None
    return public


class TrustPolicy:
    """Which CURVE public keys may connect, and the identity (name, role, scope) of each.

    Args:
        keys_dir: the node's trust folder, laid out as the module docstring shows.
    """

    def __init__(self, keys_dir: str | Path) -> None:
        self._dir = Path(keys_dir)
        self._lock = threading.Lock()
        self._by_key: dict[bytes, Identity] = {}
        self._by_name: dict[str, Identity] = {}
        self._loaded_at = float("-inf")
        self.generation = 0
        """Bumped by every :meth:`reload`, so callers may cache identities until it changes."""
        self.reload()

    def reload(self) -> None:
        """Re-read the trusted keys from the folder.

        A node name filed twice (under two roles, or with two keys) is trusted nowhere: which
        role it has would be a guess, so it is refused and logged until the folder is fixed.
        """
        by_key: dict[bytes, Identity] = {}
        by_name: dict[str, Identity] = {}
        clashes: set[str] = set()
        for path, ident in scan(self._dir):
            try:
                public, _ = zmq.auth.load_certificate(str(path))
            except (OSError, ValueError):
                _log.warning("unreadable public key skipped", path=str(path))
                continue
            if ident.node in by_name or public in by_key:
                clashes.add(ident.node)
                if public in by_key:
                    clashes.add(by_key[public].node)
                continue
            by_key[public], by_name[ident.node] = ident, ident
        for name in clashes:
            _log.warning("key filed twice: not trusted", node_name=name, keys_dir=str(self._dir),
                         allowed="one public key per node, under one role folder")
        by_key = {k: v for k, v in by_key.items() if v.node not in clashes}
        by_name = {k: v for k, v in by_name.items() if k not in clashes}
        with self._lock:
            self._by_key, self._by_name = by_key, by_name
            self.generation += 1
            self._loaded_at = time.monotonic()

    def identity_of(self, public_key_z85: bytes) -> Identity | None:
        """The identity of a trusted key, or ``None`` when the key is not trusted."""
        with self._lock:
            ident = self._by_key.get(public_key_z85)
            stale = time.monotonic() - self._loaded_at >= _RELOAD_EVERY_S
        if ident is None and stale:  # bounded: an attacker's unknown keys cannot force a scan each
            self.reload()
            with self._lock:
                ident = self._by_key.get(public_key_z85)
        return ident

    def name_of(self, public_key_z85: bytes) -> str | None:
        """The node name of a trusted key, or ``None`` when the key is not trusted."""
        ident = self.identity_of(public_key_z85)
        return None if ident is None else ident.node

    def identity_of_name(self, node_name: str) -> Identity | None:
        """The identity of a node by its (authenticated) name, or None if not trusted."""
        with self._lock:
            ident = self._by_name.get(node_name)
            stale = time.monotonic() - self._loaded_at >= _RELOAD_EVERY_S
        if ident is None and stale:
            self.reload()
            with self._lock:
                ident = self._by_name.get(node_name)
        return ident
