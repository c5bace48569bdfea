"""Configuration of one cloud endpoint, with credentials kept out of every repr."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .._capabilities import Capabilities
from .._capacity import Resources
from ..errors import InvalidSpec

__all__ = ["Secret", "CloudConfig", "PROVIDER_DEFAULTS"]


class Secret:
    """A credential. Its ``repr``/``str`` never show the value; ``reveal()`` does.

    Wrapping happens once, when configuration is read, so no code path can log
    the value by accident (structlog, exceptions and ``repr(driver)`` all see ``***``).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | None) -> None:
        self._value = value or ""

    def reveal(self) -> str:
        """The credential itself (only for handing it to libcloud)."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __reduce__(self) -> Any:  # never pickle (or deep-copy onto the wire) a credential
        raise TypeError("a Secret cannot be pickled")


#: What each provider can do through this driver, unless the config overrides it.
#: ``power_off``: "stop" (the provider keeps a stopped instance and starts it again)
#: or "delete" (it cannot stop one: shutdown/destroy delete the instance and
#: the driver keeps the spec, so start creates it anew).
PROVIDER_DEFAULTS: Mapping[str, Mapping[str, Any]] = {
    "ec2": {"capabilities": Capabilities(reboot=True), "power_off": "stop", "disk_in_size": False},
    "openstack": {"capabilities": Capabilities(reboot=True, suspend=True), "power_off": "stop",
                  "disk_in_size": True},
}
_GENERIC = {"capabilities": Capabilities(reboot=True), "power_off": "stop", "disk_in_size": True}

#: Used when the config gives no capacity and the provider does not tell:
#: a modest account quota, so the scheduler never assumes an infinite cloud.
DEFAULT_CAPACITY = Resources(cpus=64, memory_mb=256 * 1024, disk_gb=4096)


@dataclass(frozen=True)
class CloudConfig:
    """Everything :class:`drivers.cloud.LibcloudDriver` needs to reach one endpoint.

    Attributes:
        provider: libcloud provider name (``"ec2"``, ``"openstack"``, any ``Provider`` constant).
        key: access key id / username.
        secret: secret key / password (a :class:`Secret`).
        region: provider region (EC2 region, OpenStack service region).
        endpoint: base URL overriding the provider's (``http://127.0.0.1:5000`` for an
            emulator); for OpenStack the Keystone URL (``.../identity``).
        image: default image id or name when a VMSpec names none.
        capacity: what the scheduler may place here (the provider does not tell).
        capabilities: overrides of the provider defaults, e.g. ``{"suspend": False}``.
        power_off: ``"stop"`` or ``"delete"`` (see :data:`PROVIDER_DEFAULTS`).
        poll_interval: seconds between state polls that generate lifecycle events.
        state_timeout: seconds an operation waits for the provider to settle.
        max_retries: retries of a throttled call before :class:`~drivers.errors.Throttled` is raised.
        backoff: first retry delay in seconds; doubles per retry up to ``backoff_max``.
        backoff_max: longest retry delay.
        image_owner: EC2 only, owner filter when looking images up by name.
        extra: more keyword arguments for the libcloud driver (``ex_tenant_name`` ...).
    """

    provider: str
    key: str = ""
    secret: Secret = field(default_factory=lambda: Secret(""))
    region: str | None = None
    endpoint: str | None = None
    image: str | None = None
    capacity: Resources = DEFAULT_CAPACITY
    capabilities: Capabilities = Capabilities()
    power_off: str = "stop"
    poll_interval: float = 10.0
    state_timeout: float = 300.0
    max_retries: int = 5
    backoff: float = 0.5
    backoff_max: float = 8.0
    image_owner: str | None = None
    disk_in_size: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"CloudConfig(provider={self.provider!r}, region={self.region!r}, "
                f"endpoint={self.endpoint!r}, key=***, secret=***)")

    @classmethod
    def from_kwargs(cls, provider: str, **config: Any) -> CloudConfig:
        """Build from plain keyword configuration (what a config file holds).

        ``capacity`` may be a Resources or ``{"cpus", "memory_mb", "disk_gb"}``;
        ``capabilities`` a Capabilities or a dict of flags overriding the
        provider's defaults; ``secret`` a str or Secret.

        Raises:
            InvalidSpec: unknown keys, a bad endpoint URL or bad values.
        """
        provider = str(provider).lower()
        defaults = PROVIDER_DEFAULTS.get(provider, _GENERIC)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - names)
        if unknown:
            raise InvalidSpec(f"unknown cloud driver settings {unknown}; allowed: {sorted(names - {'provider'})}",
                              driver=provider)
        caps = config.pop("capabilities", None)
        base_caps: Capabilities = defaults["capabilities"]
        if isinstance(caps, Mapping):
            caps = dataclasses.replace(base_caps, **{k: bool(v) for k, v in caps.items()})
        config["capabilities"] = caps or base_caps
        cap = config.get("capacity")
        if isinstance(cap, Mapping):
            config["capacity"] = Resources(int(cap.get("cpus", 0)), int(cap.get("memory_mb", 0)),
                                           int(cap.get("disk_gb", 0)))
        secret = config.get("secret")
        if not isinstance(secret, Secret):
            config["secret"] = Secret(secret)
        config.setdefault("power_off", defaults["power_off"])
        config.setdefault("disk_in_size", defaults["disk_in_size"])
        if config["power_off"] not in ("stop", "delete"):
            raise InvalidSpec(f"power_off must be 'stop' or 'delete', got {config['power_off']!r}", driver=provider)
        endpoint = config.get("endpoint")
        if endpoint:
            parts = urlsplit(endpoint)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise InvalidSpec(f"endpoint {endpoint!r} is not an http(s) URL", driver=provider)
        return cls(provider=provider, **config)
