"""Plug-ins are found through entry-point group wind.drivers, with no change to Wind."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import drivers
from drivers import Driver, VMSpec, VMState, available_drivers, create_driver, errors, load_driver
from drivers.libvirt import LibvirtDriver
from drivers.sim import SimDriver

PLUGIN_SOURCE = '''
"""A third-party Wind driver, installed separately from Wind."""
from drivers.sim import SimDriver


class TinyCloudDriver(SimDriver):
    kind = "tinycloud"
'''


def install_plugin(root: Path, name: str, target: str, source: str) -> None:
    """Lay out an installed distribution (module + dist-info with entry_points.txt) under ``root``.

    This is what ``pip install`` leaves in site-packages; putting ``root`` on
    sys.path makes importlib.metadata see it exactly as an installed package.
    """
    module = target.split(":")[0]
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    dist = root / f"{module}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[wind.drivers]\n{name} = {target}\n")
    (dist / "RECORD").write_text("")


def test_the_built_in_drivers_are_registered() -> None:
    found = available_drivers()
    assert found["sim"] == "drivers.sim:SimDriver"
    assert found["libvirt"] == "drivers.libvirt:LibvirtDriver"
    assert found["libcloud"] == "drivers.cloud:LibcloudDriver"
    assert load_driver("sim") is SimDriver
    assert load_driver("libvirt") is LibvirtDriver


def test_a_driver_in_a_separately_installed_package_is_found(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    assert "tinycloud" not in available_drivers()
    install_plugin(tmp_path, "tinycloud", "wind_tinycloud:TinyCloudDriver", PLUGIN_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert available_drivers()["tinycloud"] == "wind_tinycloud:TinyCloudDriver"
    cls = load_driver("tinycloud")
    assert issubclass(cls, Driver) and cls.__module__ == "wind_tinycloud"
    drv = create_driver("tinycloud", name="tiny")
    drv.connect()
    drv.define(VMSpec("vm", 1, 64))
    drv.start("vm")
    assert drv.info("vm").state == VMState.RUNNING
    monkeypatch.delitem(__import__("sys").modules, "wind_tinycloud")


def test_an_unknown_name_raises_driver_not_found_listing_what_is_installed() -> None:
    with pytest.raises(errors.DriverNotFound) as exc:
        load_driver("no-such-driver")
    assert "sim" in str(exc.value) and exc.value.driver == "no-such-driver"


def test_a_plug_in_that_is_not_a_driver_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_plugin(tmp_path, "bogus", "wind_bogus:NotADriver", "class NotADriver:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(errors.DriverNotFound, match="not a drivers.Driver"):
        load_driver("bogus")
    monkeypatch.delitem(__import__("sys").modules, "wind_bogus")


def test_a_plug_in_that_fails_to_import_is_reported_as_such(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    install_plugin(tmp_path, "broken", "wind_broken:Driver", "raise ImportError('missing SDK')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(errors.DriverNotFound, match="missing SDK"):
        load_driver("broken")


def test_all_lists_every_public_name_and_each_exists() -> None:
    for name in drivers.__all__:
        assert getattr(drivers, name) is not None, name
    import types
    public = {n for n, v in vars(drivers).items()
              if not n.startswith("_") and n not in ("annotations", "TYPE_CHECKING", "Any")
              and not (isinstance(v, types.ModuleType) and n != "errors")}  # driver subpackages
    assert public <= set(drivers.__all__)


def test_every_error_carries_its_context_and_recoverable_flag() -> None:
    for cls in (errors.ConnectionLost, errors.Throttled, errors.OperationTimeout):
        assert cls("x").recoverable is True
    err = errors.BackendError("boom", driver="d", vm="v", recoverable=True, code=7)
    assert (err.driver, err.vm, err.recoverable, err.context["code"]) == ("d", "v", True, 7)
    assert str(err) == "boom [driver=d vm=v code=7]"
    import pickle
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is errors.BackendError and again.context == err.context and again.recoverable
    assert all(issubclass(getattr(errors, n), errors.DriverError) for n in errors.__all__)
