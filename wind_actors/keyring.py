"""A keyring: every node's key pair filed by role, and each node's own trust folder made from it.

Who trusts whom follows the roles (``wind_actors.runtime._authz``)::

                 ┌──────────────┐
     client  ───▶│              │◀─── agent of S ◀──▶ agent of S'   (RTT probes, vouched)
     operator ──▶│  controller  │
                 └──────────────┘
    controller trusts: agents, clients, operators      (keys_dir/agent/S, client/T, operator)
    agent trusts:      the controller only             (never a client key, no other agent's)
    client, operator:  the controller only

No agent's folder holds another agent's key: the controller, which files them all, vouches for
the few sites an agent probes for RTTs (and those probing it) at runtime
(``OverlayPeers``; ``TrustPolicy.vouch``), so N sites need O(N) key files, not O(N²).

A :class:`Keyring` is the operator's copy of all of it (the ``vault``: every key pair, filed by
role), from which :meth:`Keyring.trust_dir` writes the folder one node runs with: its own key pair
plus exactly the public keys of the roles it trusts, filed under their roles' folders. The
in-process :class:`~wind_actors.cluster.Cluster`, the :class:`~wind_actors.cluster.ProcessCluster`
of tests, benchmarks and the demo, and ``wind keys`` all use it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from wind_actors.runtime import AGENT, CLIENT, CONTROLLER, OPERATOR, PEER, generate_keys
from wind_actors.runtime._trust import role_dir

__all__ = ["Keyring", "TRUSTS", "role_of_name"]

TRUSTS: dict[str, tuple[str, ...]] = {
    CONTROLLER: (CONTROLLER, AGENT, CLIENT, OPERATOR),
    AGENT: (CONTROLLER,),  # probe peers are vouched for by the controller, never filed
    CLIENT: (CONTROLLER,),
    OPERATOR: (CONTROLLER,),
    PEER: (PEER,),
}
"""Role -> the roles whose public keys a node of that role trusts."""


def role_of_name(name: str) -> tuple[str, str | None]:
    """The role Wind's conventional node names stand for (``agent@dc-1`` -> agent of dc-1).

    Only the tools that *write* trust folders use this convention; a running node takes roles
    from the folders, never from names.
    """
    kind, _, rest = name.partition("@")
    if kind == CONTROLLER:
        return CONTROLLER, None
    if kind in (OPERATOR, "ops"):
        return OPERATOR, None
    if kind in (AGENT, CLIENT) and rest:
        return kind, rest
    return PEER, None


class Keyring:
    """The key pairs of a whole Wind deployment, and the trust folder of each node.

    Args:
        root: where ``vault/`` (every key pair, filed by role) and ``NAME/`` (one trust
            folder per node) live.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.vault = self.root / "vault"
        self._roles: dict[str, tuple[str, str | None]] = {}
        self._published: dict[str, int] = {}  # node -> how many of _roles its folder has seen
        for role in (CONTROLLER, OPERATOR):
            for path in sorted((self.vault / role).glob("*.key_secret")):
                self._roles[path.stem] = (role, None)
        for role in (AGENT, CLIENT):
            for path in sorted((self.vault / role).glob("*/*.key_secret")):
                self._roles[path.stem] = (role, path.parent.name)
        for path in sorted(self.vault.glob("*.key_secret")):
            self._roles[path.stem] = (PEER, None)

    def add(self, name: str, role: str | None = None, scope: str | None = None) -> None:
        """Generate ``name``'s key pair under its role (from its name when not given), once."""
        if name in self._roles:
            return
        if role is None:
            role, scope = role_of_name(name)
        generate_keys(name, self.vault, role, scope)
        self._roles[name] = (role, scope)

    def role(self, name: str) -> tuple[str, str | None]:
        """``(role, scope)`` of a node in the keyring. Raises KeyError for an unknown node."""
        return self._roles[name]

    def trust_dir(self, name: str) -> Path:
        """Write (or bring up to date) ``NAME/``: NAME's key pair and the public keys of
        every node whose role NAME's role trusts, each filed under its role. Returns the folder."""
        role, scope = self._roles[name]
        target = self.root / name
        own = role_dir(target, role, scope)
        own.mkdir(parents=True, exist_ok=True)
        for suffix in (".key", ".key_secret"):
            _copy(role_dir(self.vault, role, scope) / f"{name}{suffix}", own / f"{name}{suffix}")
        trusted = TRUSTS[role]
        names = list(self._roles)
        # Only the nodes added since this folder was last written: publishing N nodes one by
        # one must not cost N^2 folder walks (1,000 sites did not fit in a benchmark's setup).
        for other in names[self._published.get(name, 0):]:
            other_role, other_scope = self._roles[other]
            if other != name and other_role in trusted:
                folder = role_dir(target, other_role, other_scope)
                folder.mkdir(parents=True, exist_ok=True)
                _copy(role_dir(self.vault, other_role, other_scope) / f"{other}.key",
                      folder / f"{other}.key")
        self._published[name] = len(names)
        return target

    def publish(self) -> None:
        """Bring every node's trust folder up to date (after :meth:`add` of new nodes)."""
        for name in list(self._roles):
            self.trust_dir(name)


def _copy(source: Path | None, dest: Path) -> None:
    if source is not None and source.exists() and not dest.exists():
        shutil.copyfile(source, dest)
        if dest.suffix == ".key_secret":
            dest.chmod(0o600)
