"""CURVE security: key files, the trust policy (a plain class) and its thin ZAP adapter.

Key files are ZeroMQ certificates as written by ``zmq.auth.create_certificates``: for a node
``agent@site-a`` the directory holds ``agent@site-a.key`` (public) and
``agent@site-a.key_secret`` (secret). A node trusts exactly the public keys found in its
``keys_dir`` (laid out by role, see ``_trust``), plus the agents its trust policy was told to
vouch for; the file's stem (or the vouched name) names the node the key belongs to, and the ZAP
handler hands that name to ZeroMQ as the connection's User-Id, so a peer cannot claim another
node's name.
"""

from __future__ import annotations

import collections
import time
from pathlib import Path

import zmq
import zmq.auth
import zmq.utils.z85
from zmq.auth.thread import ThreadAuthenticator

import structlog

from wind_actors.errors import SecurityError

# The trust policy (which keys, which roles) lives in _trust; re-exported here for old imports.
from ._trust import TrustPolicy, public_key_of, role_dir

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


def generate_keys(name: str, directory: str | Path, role: str = "peer",
                  scope: str | None = None) -> tuple[Path, Path]:
    """Write ``NAME.key`` and ``NAME.key_secret`` into the folder of ``role`` in ``directory``.

    Args:
        name: the node's name.
        directory: a trust folder (``keys_dir``).
        role: ``peer`` (the folder itself), ``controller``, ``operator``, ``agent`` or ``client``.
        scope: the site of an agent, the tenant of a client.

    Returns:
        ``(public_file, secret_file)``.

    Raises:
        SecurityError: the name is not usable as a file name, the role or scope is not allowed,
            or the files exist already.
    """
    if not name or "/" in name or name.startswith("."):
        raise SecurityError(f"key name {name!r} is not allowed; use a node name like agent@site-a")
    directory = role_dir(directory, role, scope)
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


# An unauthenticated peer costs bounded memory and bounded logging, however many keys it tries.
_DENIED_KEYS = 1024      # denied keys remembered (least recently seen forgotten first)
_RECHECK_S = 1.0         # a denied key is looked up again (keys_dir re-read) at most this often
_WARN_EVERY_S = 1.0      # at most one warning a second, with the running count


class ZapAdapter(ThreadAuthenticator):
    """pyzmq's thread-based ZAP handler driven by a :class:`TrustPolicy`.

    Runs in its own thread (one per ``zmq.Context``); every hook below runs on it. Denials are
    counted (``rejected``); a key is warned about once while it is remembered (the last 1,024
    denied keys) and at most one warning goes out a second, with how many were held back. A
    denied key retrying is refused from memory for a while instead of re-reading ``keys_dir``
    each time, so a key copied in later is still trusted within seconds.
    """

    def __init__(self, context: zmq.Context, policy: TrustPolicy, node: str) -> None:
        super().__init__(context)
        self._policy = policy
        self._node = node
        self._denied: collections.OrderedDict[bytes, float] = collections.OrderedDict()
        self._warned_at = float("-inf")
        self._held_back = 0
        self.rejected = 0

    def start(self) -> None:
        """Start the ZAP thread and accept CURVE clients whose key the policy trusts."""
        super().start()
        self.configure_curve_callback(domain=ZAP_DOMAIN, credentials_provider=self)

    def callback(self, domain: str, z85: bytes) -> bool:
        """Credentials-provider hook (ZAP thread): is this z85 public key trusted?"""
        now = time.monotonic()
        checked = self._denied.get(z85)
        if checked is not None and now - checked < _RECHECK_S:
            self._denied.move_to_end(z85)
            self.rejected += 1
            return False
        if self._policy.name_of(z85) is not None:
            self._denied.pop(z85, None)
            return True
        self._deny(z85, now, new=checked is None)
        return False

    def _deny(self, z85: bytes, now: float, *, new: bool) -> None:
        self.rejected += 1
        self._denied[z85] = now
        self._denied.move_to_end(z85)
        while len(self._denied) > _DENIED_KEYS:
            self._denied.popitem(last=False)
        if not new:
            return
        if now - self._warned_at < _WARN_EVERY_S:
            self._held_back += 1
            return
        _log.warning("peer with an untrusted CURVE key rejected", node=self._node,
                     public_key=z85.decode(), rejected_total=self.rejected,
                     keys_not_logged=self._held_back,
                     allowed="keys in the node's keys_dir, or vouched for by the controller")
        self._warned_at, self._held_back = now, 0

    def curve_user_id(self, client_public_key: bytes) -> str:
        """User-Id given to the connection (ZAP thread): the trusted node's name."""
        return self._policy.name_of(zmq.utils.z85.encode(client_public_key)) or "anonymous"
