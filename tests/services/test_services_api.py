"""The public API of wind_actors.services is exactly what __all__ lists."""

from __future__ import annotations

import wind_actors.errors
import wind_actors.services as services


def test_all_lists_every_public_name_and_each_one_exists():
    public = {n for n in dir(services) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(services, n)).__name__ == "module"}
    assert set(services.__all__) == public - modules
    assert len(services.__all__) == len(set(services.__all__))


def test_service_errors_live_in_the_one_errors_module_and_are_wind_errors():
    for name in ("DescriptorInvalid", "NotSupportedYet", "PlacementFailed", "NotFound", "Unauthenticated",
                 "StoreError"):
        cls = getattr(services, name)
        assert cls is getattr(wind_actors.errors, name)
        assert issubclass(cls, wind_actors.errors.WindError)
        assert name in wind_actors.errors.__doc__
