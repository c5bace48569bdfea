"""The plug-in registry: drivers are found through entry-point group ``wind.drivers``.

A package adds a driver with no change to Wind by declaring, e.g. in its
``setup.cfg``::

    [options.entry_points]
    wind.drivers =
        mycloud = mycloud_wind:MyCloudDriver
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from ._driver import Driver
from .errors import DriverNotFound

__all__ = ["ENTRY_POINT_GROUP", "available_drivers", "load_driver", "create_driver"]

ENTRY_POINT_GROUP = "wind.drivers"


def _entry_points() -> dict[str, metadata.EntryPoint]:
    # Not cached on purpose: a plug-in installed while the process runs (or a
    # dist-info added to sys.path) is found on the next call.
    found: dict[str, metadata.EntryPoint] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)
    return found


def available_drivers() -> dict[str, str]:
    """Every installed driver plug-in.

    Returns:
        ``{name: "module:Class"}`` for each entry point in ``wind.drivers``.
    """
    return {name: ep.value for name, ep in sorted(_entry_points().items())}


def load_driver(name: str) -> type[Driver]:
    """The driver class registered under ``name``.

    Args:
        name: entry-point name, e.g. ``"sim"``, ``"libvirt"``, ``"libcloud"``.

    Returns:
        The class (a :class:`Driver` subclass).

    Raises:
        DriverNotFound: nothing registered under that name, its module does not
            import, or it is not a Driver subclass.
    """
    eps = _entry_points()
    ep = eps.get(name)
    if ep is None:
        raise DriverNotFound(
            f"no driver named {name!r} in entry-point group {ENTRY_POINT_GROUP!r}; "
            f"installed: {sorted(eps) or 'none'}",
            driver=name,
        )
    try:
        cls = ep.load()
    except Exception as exc:  # a plug-in's import error is the plug-in's fault: report it as such
        raise DriverNotFound(
            f"driver {name!r} ({ep.value}) could not be imported: {type(exc).__name__}: {exc}",
            driver=name,
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Driver)):
        raise DriverNotFound(f"driver {name!r} ({ep.value}) is not a drivers.Driver subclass", driver=name)
    return cls


def create_driver(name: str, /, **config: Any) -> Driver:
    """Build a driver from its registry name and keyword configuration.

    Args:
        name: entry-point name.
        **config: passed to the driver's constructor.

    Returns:
        A driver instance, not yet connected.
    """
    return load_driver(name)(**config)
