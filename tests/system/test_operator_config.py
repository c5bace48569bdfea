"""The ``[controller] operators`` setting: only known tenants can be operators."""

from __future__ import annotations

import pytest

from wind_actors._system_config import ControllerConfig
from wind_actors.errors import ConfigError

TENANTS = {"acme": "acme-token-0123456789", "ops": "ops-token-0123456789"}


def test_operators_default_to_nobody():
    assert ControllerConfig(store="x.db", tenants=TENANTS).operators == ()


def test_operators_read_from_toml_lists_become_a_tuple_of_tenant_names():
    config = ControllerConfig.from_dict({"store": "x.db", "tenants": TENANTS, "operators": ["ops"]})
    assert config.operators == ("ops",)


def test_an_operator_that_is_not_a_tenant_is_rejected_naming_the_field_and_the_tenants():
    with pytest.raises(ConfigError) as rejected:
        ControllerConfig(store="x.db", tenants=TENANTS, operators=("root",))
    text = str(rejected.value)
    assert "operators" in text and "acme, ops" in text
