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
node trusts what its folder holds; an agent's folder needs the controller's key only, never a
client's. ``wind keys generate NAME --role ROLE`` writes a key pair in the right place.

Besides the folder, a policy holds a small table of **vouched** keys (:meth:`TrustPolicy.vouch`):
the agents of other sites this agent probes for RTTs, or that probe it, as the controller (which
files every agent's key) tells it at runtime. So no agent's folder holds other agents' keys, and
a site trusts O(1) others however many sites there are. Only agents of a named site may be
vouched, and a filed key or name always wins over a vouched one.

Thread-safe; the directory is re-read (at most once a second) when an unknown key shows up, so a
key copied in later is trusted without a restart; the vouched table survives every re-read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from pathlib import Path

import structlog
import zmq.auth
import zmq.utils.z85

from wind_actors.errors import SecurityError

from ._authz import AGENT, CLIENT, CONTROLLER, OPERATOR, PEER, SCOPED, Identity

__all__ = ["MAX_VOUCHED", "TrustPolicy", "key_path", "find_key", "public_key_of", "role_dir", "scan"]

_log = structlog.get_logger("wind.runtime.trust")

_RELOAD_EVERY_S = 1.0

MAX_VOUCHED = 256
"""Most keys one :meth:`TrustPolicy.vouch` may hold (the controller vouches a few dozen)."""


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

    Two sources: the trust folder (filed keys, re-read by :meth:`reload`) and a bounded table
    of vouched agents (:meth:`vouch`); lookups consult both, a filed entry first.

    Args:
        keys_dir: the node's trust folder, laid out as the module docstring shows.
    """

    def __init__(self, keys_dir: str | Path) -> None:
        self._dir = Path(keys_dir)
        self._lock = threading.Lock()
        self._by_key: dict[bytes, Identity] = {}
        self._by_name: dict[str, Identity] = {}
        self._key_of: dict[str, bytes] = {}
        # what the last vouch() asked for (well-formed entries), re-checked against every reload
        self._asked: tuple[tuple[Identity, bytes], ...] = ()
        self._vouched_by_key: dict[bytes, Identity] = {}
        self._vouched_by_name: dict[str, tuple[Identity, bytes]] = {}
        self._vouch_refused: dict[str, str] = {}
        self._loaded_at = float("-inf")
        self.generation = 0
        """Bumped by every :meth:`reload` and by a :meth:`vouch` that changes anything, so
        callers may cache identities until it changes."""
        self.reload()

    def reload(self) -> None:
        """Re-read the trusted keys from the folder (the vouched table is kept).

        A node name filed twice (under two roles, or with two keys) is trusted nowhere: which
        role it has would be a guess, so it is refused and logged until the folder is fixed. A
        vouched entry that now clashes with a filed one is dropped (filed wins) and logged.
        """
        by_key: dict[bytes, Identity] = {}
        by_name: dict[str, Identity] = {}
        key_of: dict[str, bytes] = {}
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
            by_key[public], by_name[ident.node], key_of[ident.node] = ident, ident, public
        for name in clashes:
            _log.warning("key filed twice: not trusted", node_name=name, keys_dir=str(self._dir),
                         allowed="one public key per node, under one role folder")
        by_key = {k: v for k, v in by_key.items() if v.node not in clashes}
        by_name = {k: v for k, v in by_name.items() if k not in clashes}
        key_of = {k: v for k, v in key_of.items() if k not in clashes}
        with self._lock:
            before = self._vouch_refused
            self._by_key, self._by_name, self._key_of = by_key, by_name, key_of
            refused = self._apply_vouched(self._asked)
            self.generation += 1
            self._loaded_at = time.monotonic()
        self._log_refused({n: why for n, why in refused.items() if before.get(n) != why})

    def vouch(self, identities: Iterable[tuple[Identity, bytes | str]]) -> dict[str, str]:
        """Trust exactly these agents besides the folder, replacing whatever was vouched before
        (an empty iterable un-vouches everyone). The table survives :meth:`reload`.

        Args:
            identities: ``(identity, z85 public key)`` pairs; each identity must be an agent
                (role ``agent``) of a named site.

        Returns:
            The entries refused, ``{node: why}``, each also logged at warning: not an agent of a
            site, a malformed key, a name or key vouched twice, or a name or key that the folder
            files already (a filed entry always wins). The rest is trusted at once.

        Raises:
            SecurityError: more than :data:`MAX_VOUCHED` entries (nothing changes).
        """
        entries = list(identities)
        if len(entries) > MAX_VOUCHED:
            raise SecurityError(f"{len(entries)} keys to vouch for; at most {MAX_VOUCHED} are "
                                "allowed (a site is vouched its probe peers only)")
        valid: list[tuple[Identity, bytes]] = []
        refused: dict[str, str] = {}
        for ident, key in entries:
            public = key.encode() if isinstance(key, str) else key
            why = _unvouchable(ident, public)
            if why is None:
                valid.append((ident, public))
            else:
                refused[str(getattr(ident, "node", ident))[:80]] = why
        with self._lock:
            refused.update(self._apply_vouched(tuple(valid)))
        self._log_refused(refused)
        return refused

    def _apply_vouched(self, asked: tuple[tuple[Identity, bytes], ...]) -> dict[str, str]:
        """Rebuild the vouched table from ``asked`` against the filed keys (lock held)."""
        by_key: dict[bytes, Identity] = {}
        by_name: dict[str, tuple[Identity, bytes]] = {}
        refused: dict[str, str] = {}
        for ident, public in asked:
            filed = self._by_name.get(ident.node)
            if filed is not None and filed == ident and self._key_of.get(ident.node) == public:
                continue  # filed exactly so already: trusted without the table
            if filed is not None:
                refused[ident.node] = (f"node {ident.node!r} is filed in keys_dir as {filed}; a "
                                       "vouched key never overrides a filed one")
            elif public in self._by_key:
                refused[ident.node] = (f"its public key is filed in keys_dir for node "
                                       f"{self._by_key[public].node!r}")
            elif ident.node in by_name or public in by_key:
                refused[ident.node] = "vouched twice (one public key per node, one node per key)"
            else:
                by_key[public], by_name[ident.node] = ident, (ident, public)
        self._asked, self._vouch_refused = asked, refused
        if by_name != self._vouched_by_name:
            self._vouched_by_key, self._vouched_by_name = by_key, by_name
            self.generation += 1
        return refused

    def _log_refused(self, refused: dict[str, str]) -> None:
        for node, why in refused.items():
            _log.warning("vouched key refused", node_name=node, keys_dir=str(self._dir), why=why,
                         allowed="agents of a named site, with a 40-character z85 key that the "
                                 "folder does not file already")

    def vouched(self) -> dict[str, Identity]:
        """The identities trusted by :meth:`vouch` now, by node name (refused ones left out)."""
        with self._lock:
            return {name: ident for name, (ident, _) in self._vouched_by_name.items()}

    def _stale(self) -> bool:
        return time.monotonic() - self._loaded_at >= _RELOAD_EVERY_S

    def identity_of(self, public_key_z85: bytes) -> Identity | None:
        """The identity of a trusted key (filed or vouched), or ``None`` when it is not trusted."""
        with self._lock:
            ident = self._by_key.get(public_key_z85) or self._vouched_by_key.get(public_key_z85)
            stale = self._stale()
        if ident is None and stale:  # bounded: an attacker's unknown keys cannot force a scan each
            self.reload()
            with self._lock:
                ident = self._by_key.get(public_key_z85) or self._vouched_by_key.get(public_key_z85)
        return ident

    def name_of(self, public_key_z85: bytes) -> str | None:
        """The node name of a trusted key, or ``None`` when the key is not trusted."""
        ident = self.identity_of(public_key_z85)
        return None if ident is None else ident.node

    def identity_of_name(self, node_name: str) -> Identity | None:
        """The identity of a node by its (authenticated) name, or None if not trusted."""
        found = self._lookup_name(node_name)
        return None if found is None else found[0]

    def public_key(self, node_name: str) -> bytes | None:
        """The z85 public key trusted for ``node_name`` (filed or vouched), or None; what a
        connection to that node takes as its CURVE server key."""
        found = self._lookup_name(node_name)
        return None if found is None else found[1]

    def _lookup_name(self, node_name: str) -> tuple[Identity, bytes] | None:
        found = self._find_name(node_name)
        if found is None and self._stale():
            self.reload()
            found = self._find_name(node_name)
        return found

    def _find_name(self, node_name: str) -> tuple[Identity, bytes] | None:
        with self._lock:
            ident = self._by_name.get(node_name)
            if ident is not None:
                return ident, self._key_of[node_name]
            return self._vouched_by_name.get(node_name)


def _unvouchable(ident: object, public: object) -> str | None:
    """Why ``(ident, public)`` may not be vouched, or None."""
    if not isinstance(ident, Identity):
        return f"not an identity: {type(ident).__name__}"
    if ident.role != AGENT:
        return f"only agents may be vouched, not role {ident.role!r}"
    if not ident.node or "/" in ident.node or ident.node.startswith("."):
        return "not a usable node name"
    if not ident.scope or "/" in ident.scope or ident.scope.startswith("."):
        return f"an agent is vouched with its site (a plain name), got {ident.scope!r}"
    if not isinstance(public, bytes) or len(public) != 40:
        return "the public key must be 40 characters of z85"
    try:
        if len(zmq.utils.z85.decode(public)) != 32:
            raise ValueError
    except (ValueError, KeyError, TypeError):
        return "the public key is not z85"
    return None
