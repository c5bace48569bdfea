"""Tenants: tokens from the config name a tenant; a tenant only ever sees its own things."""

from __future__ import annotations

import pytest

from wind_actors.errors import ConfigError, DescriptorInvalid, NotFound, Unauthenticated
from wind_actors.services import Store, Tenants, TenantView, parse_descriptor

ACME = "acme-token-0123456789abcdef"
GLOBEX = "globex-token-0123456789abcdef"


def test_a_token_from_the_config_authenticates_its_tenant():
    tenants = Tenants.from_config({"tenants": {"acme": {"token": ACME}, "globex": GLOBEX}})
    assert tenants.authenticate(ACME) == "acme"
    assert tenants.authenticate(GLOBEX) == "globex"
    assert tenants.names == ("acme", "globex")


def test_an_unknown_token_is_refused_without_echoing_it():
    tenants = Tenants({"acme": ACME})
    with pytest.raises(Unauthenticated) as info:
        tenants.authenticate("guess-guess-guess-guess")
    assert "guess" not in str(info.value)
    with pytest.raises(Unauthenticated):
        tenants.authenticate(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("config, message", [
    ({}, "no tenants"),
    ({"tenants": {"acme": "short"}}, "shorter than 16"),
    ({"tenants": {"acme": ACME, "globex": ACME}}, "share a token"),
    ({"tenants": {"acme": {"password": ACME}}}, "no token"),
], ids=["missing", "short", "shared", "no-token-key"])
def test_a_bad_tenants_section_is_a_config_error(config, message):
    with pytest.raises(ConfigError, match=message):
        Tenants.from_config(config)


def test_a_tenant_view_finds_only_its_own_applications_and_says_not_found_either_way(tmp_path):
    with Store(tmp_path / "w.db") as store:
        store.put_application("acme", "web", {"a": 1}, None, [])
        store.put_application("globex", "shop", {"g": 1}, None, [])
        op = store.begin_operation("globex", "deploy", app="shop")
        acme, globex = TenantView(store, "acme"), TenantView(store, "globex")
        assert [a.name for a in acme.applications()] == ["web"]
        assert acme.application("web").descriptor == {"a": 1}
        with pytest.raises(NotFound) as other:
            acme.application("shop")
        with pytest.raises(NotFound) as missing:
            acme.application("nope")
        assert type(other.value) is type(missing.value)
        assert other.value.context == missing.value.context == {"tenant": "acme"}
        with pytest.raises(NotFound):
            acme.vms("shop")
        with pytest.raises(NotFound):
            acme.operation(op.id)
        assert globex.operation(op.id).app == "shop"
        with pytest.raises(NotFound):
            acme.require_own("globex", "application", "shop")


def test_a_token_cannot_deploy_a_descriptor_naming_another_tenant(tmp_path):
    with Store(tmp_path / "w.db") as store:
        view = TenantView(store, "acme")
        app = parse_descriptor("tenant: globex\napplication: x\ncomponents: {vm: {image: d}}\n")
        with pytest.raises(DescriptorInvalid) as info:
            view.check_descriptor(app)
        assert info.value.problems[0].path == "tenant"
        ok = parse_descriptor("tenant: acme\napplication: x\ncomponents: {vm: {image: d}}\n")
        assert view.check_descriptor(ok) is ok
