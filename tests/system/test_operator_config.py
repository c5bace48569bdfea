"""Operators come from the trust configuration, not from tenants: the wave-1 setting is refused."""

from __future__ import annotations

import pytest

from wind_actors._system_config import ControllerConfig
from wind_actors.errors import ConfigError

TENANTS = {"acme": "acme-token-0123456789", "ops": "ops-token-0123456789"}


def test_a_controller_config_has_no_operator_tenants_any_more():
    assert not hasattr(ControllerConfig(store="x.db", tenants=TENANTS), "operators")


def test_the_old_operators_setting_is_refused_saying_where_operator_keys_go_now():
    with pytest.raises(ConfigError) as rejected:
        ControllerConfig.from_dict({"store": "x.db", "tenants": TENANTS, "operators": ["ops"]})
    text = str(rejected.value)
    assert "operators" in text and "keys_dir/operator/" in text and "--role operator" in text
