"""CURVE security: key files, the trust policy (a plain class) and its thin ZAP adapter.

Key files are ZeroMQ certificates as written by ``zmq.auth.create_certificates``: for a node
``agent@site-a`` the directory holds ``agent@site-a.key`` (public) and
``agent@site-a.key_secret`` (secret). A node trusts exactly the public keys found in its
``keys_dir``; the file's stem names the node the key belongs to, and the ZAP handler hands that
name to ZeroMQ as the connection's User-Id, so a peer cannot claim another node's name.
"""

from __future__ import annotations

import threading
from pathlib import Path

import zmq
import zmq.auth
import zmq.utils.z85
from zmq.auth.thread import ThreadAuthenticator

from wind_actors.errors import SecurityError
import structlog

__all__ = ["KeyPair", "TrustPolicy", "ZapAdapter", "generate_keys", "load_keypair", "public_key_of"]

_log = structlog.get_logger("wind.runtime.security")

ZAP_DOMAIN = "wind"
"""The ZAP domain of every Wind node's bound (PULL) socket."""


class KeyPair:
    """A node's CURVE key pair (z85-encoded bytes). ``repr`` never shows the secret."""

    __slots__ = ("public", "secret")

    def __init__(self, public: bytes, secret: bytes) -> None:
        self.public = public
        self.secret = secret

    def __repr__(self) -> str:
        return f"KeyPair(public={self.public.decode()!r}, secret=<hidden>)"


def generate_keys(name: str, directory: str | Path) -> tuple[Path, Path]:
    """Write ``NAME.key`` and ``NAME.key_secret`` into ``directory`` (created if missing).

    Returns:
        ``(public_file, secret_file)``.

    Raises:
        SecurityError: the name is not usable as a file name or the files exist already.
    """
    if not name or "/" in name or name.startswith("."):
        raise SecurityError(f"key name {name!r} is not allowed; use a node name like agent@site-a")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for suffix in (".key", ".key_secret"):
        if (directory / f"{name}{suffix}").exists():
            raise SecurityError(f"{directory / (name + suffix)} exists already; refusing to "
                                "overwrite a key pair", path=str(directory))
    public_file, secret_file = zmq.auth.create_certificates(str(directory), name)
    Path(secret_file).chmod(0o600)
    return Path(public_file), Path(secret_file)


def load_keypair(secret_file: str | Path) -> KeyPair:
    """Load a key pair from a ``.key_secret`` certificate file.

    Raises:
        SecurityError: the file is missing, unreadable or has no secret key.
    """
    try:
        public, secret = zmq.auth.load_certificate(str(secret_file))
    except (OSError, ValueError) as exc:
        raise SecurityError(f"cannot load the secret key file {secret_file}: {exc}; create one "
                            "with `wind keys generate NAME`", path=str(secret_file)) from None
    if not secret:
        raise SecurityError(f"{secret_file} holds no secret key; pass the .key_secret file",
                            path=str(secret_file))
    return KeyPair(public, secret)


def public_key_of(node_name: str, keys_dir: str | Path) -> bytes:
    """The trusted public key of ``node_name`` from ``keys_dir/NAME.key``.

    Raises:
        SecurityError: no such key is trusted.
    """
    path = Path(keys_dir) / f"{node_name}.key"
    try:
        public, _ = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError):
        raise SecurityError(f"no trusted public key for node {node_name!r} in {keys_dir}; copy "
                            f"its {node_name}.key there", node=node_name) from None
    return public


class TrustPolicy:
    """Which CURVE public keys may connect, and the node name each belongs to.

    Plain and thread-safe; the directory is re-read when an unknown key shows up, so a key
    copied in later is trusted without a restart.

    Args:
        keys_dir: directory of ``*.key`` public certificates.
    """

    def __init__(self, keys_dir: str | Path) -> None:
        self._dir = Path(keys_dir)
        self._lock = threading.Lock()
        self._names: dict[bytes, str] = {}
        self.reload()

    def reload(self) -> None:
        """Re-read the trusted keys from the directory."""
        names: dict[bytes, str] = {}
        for path in sorted(self._dir.glob("*.key")):
            try:
                public, _ = zmq.auth.load_certificate(str(path))
            except (OSError, ValueError):
                _log.warning("unreadable public key skipped", path=str(path))
                continue
            names[public] = path.stem
        with self._lock:
            self._names = names

    def name_of(self, public_key_z85: bytes) -> str | None:
        """The node name of a trusted key, or ``None`` when the key is not trusted."""
        with self._lock:
            name = self._names.get(public_key_z85)
        if name is None:
            self.reload()
            with self._lock:
                name = self._names.get(public_key_z85)
        return name


class ZapAdapter(ThreadAuthenticator):
    """pyzmq's thread-based ZAP handler driven by a :class:`TrustPolicy`.

    Runs in its own thread (one per ``zmq.Context``). Denials are logged once per key.
    """

    def __init__(self, context: zmq.Context, policy: TrustPolicy, node: str) -> None:
        super().__init__(context)
        self._policy = policy
        self._node = node
        self._denied: set[bytes] = set()
        self.rejected = 0

    def start(self) -> None:
        """Start the ZAP thread and accept CURVE clients whose key the policy trusts."""
        super().start()
        self.configure_curve_callback(domain=ZAP_DOMAIN, credentials_provider=self)

    def callback(self, domain: str, z85: bytes) -> bool:
        """Credentials-provider hook (ZAP thread): is this z85 public key trusted?"""
        if self._policy.name_of(z85) is not None:
            return True
        self.rejected += 1
        if z85 not in self._denied:
            self._denied.add(z85)
            _log.warning("peer with an untrusted CURVE key rejected", node=self._node,
                         public_key=z85.decode(), allowed="keys in the node's keys_dir")
        return False

    def curve_user_id(self, client_public_key: bytes) -> str:
        """User-Id given to the connection (ZAP thread): the trusted node's name."""
        return self._policy.name_of(zmq.utils.z85.encode(client_public_key)) or "anonymous"
