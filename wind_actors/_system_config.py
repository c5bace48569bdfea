"""The ``[agent]``, ``[controller]`` and ``[client]`` config sections (issue 5).

They are registered in :data:`wind_actors.config.SECTIONS`, so ``load_config`` returns them as
``WindConfig.agent`` / ``.controller`` / ``.client``. Relative paths are taken from the config
file's directory.

Example agent (one per site)::

    [agent]
    site = "dc-1"                       # the site's name in the pool
    controller = "controller@hq"        # the controller's node name (its address in [node.peers])
    driver = "sim"                      # sim | libvirt | libcloud | a plug-in's name
    region = "eu"
    report_interval = 1.0               # seconds between capacity/inventory/health reports
    [agent.labels]
    storage = "ssd"
    [agent.driver_options]              # keyword configuration of the driver
    hosts = 1000
    # libvirt: uri = "test:///default", or host_xml = "../hosts/small.xml" (a test:/// host)

Example controller::

    [controller]
    store = "state/wind.db"             # SQLite file of the desired state
    site_timeout = 5.0                  # a site silent this long is marked down
    lost_site_grace = 30.0              # a site down this long has its VMs moved elsewhere (0: never)
    reconcile_interval = 30.0           # safety pass over every application (changes act at once)
    [controller.tenants]
    acme = "a-long-random-token-for-acme"

Example client (``wind app ...``, ``wind sites``)::

    [client]
    controller = "controller@hq"
    token = "a-long-random-token-for-acme"   # or $WIND_TOKEN
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from pathlib import Path
from typing import Any

from wind_actors.errors import ConfigError

__all__ = ["AgentConfig", "ControllerConfig", "ClientConfig"]

_SITE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_NODE = re.compile(r"^[A-Za-z0-9_.\-]+(@[A-Za-z0-9_.\-]+)?$")


def _fail(section: str, field: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"[{section}] {field} = {value!r} is not allowed; {allowed}",
                       section=section, field=field)


def _check_keys(section: str, cls: type, data: Any, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A copy of a section's table, once it is a table of known fields with the ``required`` ones."""
    if not isinstance(data, dict):
        raise _fail(section, f"[{section}]", data, "use a table")
    known = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            raise _fail(section, key, data[key], f"known fields are {', '.join(sorted(known))}")
    for field in required:
        if field not in data:
            raise _fail(section, field, None, "this field is required")
    return dict(data)


def _seconds(section: str, field: str, value: Any, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise _fail(section, field, value, f"use seconds between {lo} and {hi}")


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    """The ``[agent]`` section: which site this agent runs and how it reports.

    Attributes:
        site: the site's name in the pool (letters, digits, ``._-``).
        controller: the controller's node name; its address goes in ``[node.peers]``.
        driver: the driver plug-in (``sim``, ``libvirt``, ``libcloud`` ...). Default ``sim``.
        driver_options: the driver's keyword configuration. For libvirt, ``host_xml`` (a path)
            is turned into ``uri = "test:///ABS/PATH"``. For sim, ``endpoint`` defaults to
            the site name.
        region: the site's region. Default ``default``.
        labels: ``key = "value"`` labels descriptors select on.
        report_interval: seconds between full reports to the controller. Default 1.0.
        vm_restart_intensity: VM restarts allowed per ``vm_restart_period`` before the VM
            supervisors give up (then the agent's tree restarts them). Default 100.
        vm_restart_period: seconds. Default 10.
        underlay_ip: this site's VTEP address for the overlay (issue 6); unset: the site takes
            no part in the overlay.
        overlay_netns: a named network namespace the overlay is realized into; unset: the
            agent's own.
    """

    site: str
    controller: str
    driver: str = "sim"
    driver_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    region: str = "default"
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    report_interval: float = 1.0
    vm_restart_intensity: int = 100
    vm_restart_period: float = 10.0
    underlay_ip: str | None = None
    overlay_netns: str | None = None

    def __post_init__(self) -> None:
        s = "agent"
        if not isinstance(self.site, str) or not _SITE.match(self.site):
            raise _fail(s, "site", self.site, "use 1-63 letters, digits and '._-', e.g. dc-1")
        if not isinstance(self.controller, str) or not _NODE.match(self.controller):
            raise _fail(s, "controller", self.controller, "use the controller's node name, "
                        "e.g. controller@hq")
        if not isinstance(self.driver, str) or not self.driver:
            raise _fail(s, "driver", self.driver, "use a driver name such as sim or libvirt")
        if not isinstance(self.driver_options, dict):
            raise _fail(s, "driver_options", self.driver_options, "use a table")
        if not isinstance(self.region, str) or not self.region:
            raise _fail(s, "region", self.region, "use a non-empty string")
        if not isinstance(self.labels, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in self.labels.items()):
            raise _fail(s, "labels", self.labels, 'use a table of key = "value" strings')
        _seconds(s, "report_interval", self.report_interval, 0.05, 3600)
        _seconds(s, "vm_restart_period", self.vm_restart_period, 0.1, 86400)
        n = self.vm_restart_intensity
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 1_000_000:
            raise _fail(s, "vm_restart_intensity", n, "use an integer between 1 and 1000000")
        if self.underlay_ip is not None:
            try:
                ipaddress.ip_address(self.underlay_ip)
            except ValueError:
                raise _fail(s, "underlay_ip", self.underlay_ip, "use an IP address, e.g. 192.0.2.10") from None
        if self.overlay_netns is not None and (not isinstance(self.overlay_netns, str)
                                               or not _SITE.match(self.overlay_netns)):
            raise _fail(s, "overlay_netns", self.overlay_netns, "use a network namespace name (ip netns list)")

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, base_dir: Path | None = None) -> AgentConfig:
        """Build from a parsed ``[agent]`` table.

        Raises:
            ConfigError: an unknown field, a missing one, or an invalid value.
        """
        values = _check_keys("agent", cls, data, required=("site", "controller"))
        options = dict(values.get("driver_options") or {})
        host_xml = options.pop("host_xml", None)
        if host_xml is not None:
            path = Path(host_xml)
            if base_dir is not None and not path.is_absolute():
                path = base_dir / path
            options["uri"] = "test://" + str(path.resolve())
        values["driver_options"] = options
        return cls(**values)

    def driver_config(self) -> dict[str, Any]:
        """The keyword configuration handed to the driver (with per-driver defaults)."""
        options = dict(self.driver_options)
        options.setdefault("name", self.site)
        if self.driver == "sim":
            options.setdefault("endpoint", self.site)
        return options


@dataclasses.dataclass(frozen=True)
class ControllerConfig:
    """The ``[controller]`` section: where desired state lives and who the tenants are.

    Attributes:
        store: the SQLite file (relative to the config file).
        tenants: ``tenant = "token"`` (tokens of at least 16 characters).
        site_timeout: seconds without a report before a site counts as down. Default 5.
        tick: seconds between the controller's passes: applications with a change (a VM update,
            a site going up or down, a deploy) or with work under way are reconciled on the
            next one. Default 0.5.
        reconcile_interval: seconds between safety passes that reconcile every application,
            changed or not (in case a change went unseen), and that have the overlay planner
            re-read every application (only if the store was written since its last pass).
            Default 30.
        lost_site_grace: seconds a site must stay down (after ``site_timeout``) before the
            controller places its VMs on other sites, as Nomad does with lost allocations; the
            site's copies are removed if it comes back. 0 never moves them (they stay
            ``lost``). Default 30.
    """

    store: str
    tenants: dict[str, str]
    site_timeout: float = 5.0
    tick: float = 0.5
    lost_site_grace: float = 30.0
    reconcile_interval: float = 30.0

    def __post_init__(self) -> None:
        s = "controller"
        if not isinstance(self.store, str) or not self.store:
            raise _fail(s, "store", self.store, "use a file path, e.g. state/wind.db")
        if not isinstance(self.tenants, dict) or not self.tenants:
            raise _fail(s, "tenants", self.tenants, 'add [controller.tenants] NAME = "TOKEN"')
        for name, token in self.tenants.items():
            if not isinstance(token, str) or len(token) < 16:
                raise _fail(s, f"tenants.{name}", "<hidden>", "use a token of 16 or more characters")
        _seconds(s, "site_timeout", self.site_timeout, 0.1, 86400)
        _seconds(s, "tick", self.tick, 0.01, 60)
        _seconds(s, "lost_site_grace", self.lost_site_grace, 0, 86400)
        _seconds(s, "reconcile_interval", self.reconcile_interval, 0.05, 86400)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, base_dir: Path | None = None) -> ControllerConfig:
        """Build from a parsed ``[controller]`` table; ``store`` is resolved against ``base_dir``.

        Raises:
            ConfigError: an unknown field, a missing one, or an invalid value.
        """
        if "operators" in data:  # wave 1 made tenants operators; roles now come from trust
            raise _fail("controller", "operators", data["operators"],
                        "operators are no longer tenants: file an operator node's public key "
                        "under the controller's keys_dir/operator/ (`wind keys generate NAME "
                        "--role operator`) and remove this setting")
        values = _check_keys("controller", cls, data, required=("store", "tenants"))
        store = values["store"]
        if isinstance(store, str) and store != ":memory:" and base_dir is not None \
                and not Path(store).is_absolute():
            values["store"] = str((base_dir / store).resolve())
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class ClientConfig:
    """The ``[client]`` section: which controller to talk to, and as which tenant.

    Attributes:
        controller: the controller's node name (its address in ``[node.peers]``).
        token: the tenant token; ``$WIND_TOKEN`` overrides it. Never logged.
        timeout: seconds to wait for each answer. Default 30.
    """

    controller: str
    token: str | None = dataclasses.field(default=None, repr=False)
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if not isinstance(self.controller, str) or not _NODE.match(self.controller):
            raise _fail("client", "controller", self.controller,
                        "use the controller's node name, e.g. controller@hq")
        if self.token is not None and not isinstance(self.token, str):
            raise _fail("client", "token", "<hidden>", "use a string")
        _seconds("client", "timeout", self.timeout, 0.1, 3600)

    @property
    def effective_token(self) -> str | None:
        """``$WIND_TOKEN`` if set, else the configured token."""
        return os.environ.get("WIND_TOKEN") or self.token

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, base_dir: Path | None = None) -> ClientConfig:
        """Build from a parsed ``[client]`` table.

        Raises:
            ConfigError: an unknown field or an invalid value.
        """
        values = _check_keys("client", cls, data, required=("controller",))
        return cls(**values)
