"""Application descriptors: valid ones parse into plain data, invalid ones list every problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from wind_actors.services import (
    DescriptorInvalid, NotSupportedYet, Relation, Spread, load_descriptor, parse_descriptor, vm_name,
)

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
FIXTURES = HERE / "descriptors"

MINIMAL = """
tenant: acme
application: web
components:
  vm: {image: debian}
"""


def paths(exc: DescriptorInvalid) -> list[str]:
    return [p.path for p in exc.problems]


def test_the_example_web_application_parses_with_its_placement_rules():
    app = load_descriptor(ROOT / "examples" / "apps" / "web.yaml")
    assert (app.tenant, app.name, app.policy) == ("acme", "web", "spread")
    front, db = app.component("frontend"), app.component("db")
    assert front.count >= 2
    assert Relation("frontend", "site") in front.placement.anti_affinity
    assert front.placement.spread == Spread(over="site")
    assert ("storage", "ssd") in db.placement.where.labels
    assert [n.name for n in app.networks] == ["app"]
    assert front.networks == ("app",) and db.networks == ("app",)
    assert [iid for iid, _ in app.instances()] == ["frontend-0", "frontend-1", "frontend-2", "db-0"]


def test_defaults_fill_what_a_minimal_descriptor_leaves_out():
    app = parse_descriptor(MINIMAL)
    vm = app.component("vm")
    assert (vm.vcpus, vm.memory_mb, vm.disk_gb, vm.count, vm.restart) == (1, 512, 0, 1, "always")
    assert app.policy == "binpack" and app.scaling is None and app.schedules is None
    assert app.vm_count == 1
    assert vm_name(app.tenant, app.name, "vm-0") == "acme.web.vm-0"


def test_a_kernel_boot_component_keeps_initrd_and_cmdline():
    app = parse_descriptor(MINIMAL.replace("{image: debian}",
                                           "{kernel: /k, initrd: /i, cmdline: console=ttyS0}"))
    vm = app.component("vm")
    assert (vm.image, vm.kernel, vm.initrd, vm.cmdline) == (None, "/k", "/i", "console=ttyS0")


def test_every_problem_is_listed_with_its_path_what_was_found_and_what_is_allowed():
    with pytest.raises(DescriptorInvalid) as info:
        load_descriptor(FIXTURES / "invalid_many.yaml")
    exc = info.value
    assert set(paths(exc)) == {
        "tenant", "placement.policy", "networks.app.cidr", "components.frontend.networks[1]",
        "components.frontend.vcpus", "components.frontend.memory_mb", "components.frontend.count",
        "components.frontend.restart", "components.frontend.placement.spread.over",
        "components.db.replicas", "components.db", "components.frontend.placement.anti_affinity[0]",
    }
    by_path = {p.path: p for p in exc.problems}
    assert by_path["components.frontend.vcpus"].found == "0"
    assert by_path["components.frontend.vcpus"].allowed == "an integer from 1 to 1024"
    assert by_path["components.frontend.restart"].allowed == "always | on-failure | never"
    assert "image, kernel" in by_path["components.db.replicas"].allowed
    assert "12 problem(s)" in str(exc)
    assert exc.context["source"].endswith("invalid_many.yaml")
    assert not exc.recoverable


def test_placement_rules_naming_unknown_things_are_problems():
    with pytest.raises(DescriptorInvalid) as info:
        load_descriptor(FIXTURES / "invalid_placement.yaml")
    assert set(paths(info.value)) == {
        "components.web.placement.where.labels.ssd", "components.web.placement.where.kinds[0]",
        "components.web.placement.affinity[0].scope", "components.web.placement.max_latency_ms[0]",
        "components.web.placement.max_latency_ms[1].ms", "components.cache", "components.cache.cmdline",
    }


def test_networks_must_be_cidrs_that_do_not_overlap_and_leave_room_for_hosts():
    with pytest.raises(DescriptorInvalid) as info:
        load_descriptor(FIXTURES / "invalid_networks.yaml")
    by_path = {p.path: p for p in info.value.problems}
    assert set(by_path) == {"networks.b.cidr", "networks.c.cidr", "networks.d.cidr"}
    assert "overlapping network 'a'" in by_path["networks.b.cidr"].allowed


def test_scaling_and_schedules_are_validated_now():
    with pytest.raises(DescriptorInvalid) as info:
        load_descriptor(FIXTURES / "invalid_scaling.yaml")
    assert set(paths(info.value)) == {"scaling.backend", "scaling.backend.min", "scaling.backend.metric",
                                      "schedules[0].cron", "schedules[0].action"}


def test_valid_scaling_and_schedules_are_refused_as_not_supported_yet_rather_than_ignored():
    with pytest.raises(NotSupportedYet) as info:
        load_descriptor(FIXTURES / "unsupported_scaling.yaml")
    assert info.value.features == ["scaling", "schedules"]
    assert "not supported yet" in str(info.value)


def test_the_issues_implementing_scaling_can_accept_it_explicitly():
    app = load_descriptor(FIXTURES / "unsupported_scaling.yaml", allow_unsupported=True)
    assert app.scaling == {"frontend": {"min": 2, "max": 10, "metric": "cpu", "target_percent": 70}}
    assert app.schedules[0]["action"] == "scale"


@pytest.mark.parametrize("text, path", [
    ("tenant: [unclosed", "(document)"),
    ("- just\n- a list\n", "(document)"),
    ("tenant: acme\napplication: web\n", "components"),
    ("tenant: acme\napplication: web\ncomponents: {vm: {image: x}}\ncolour: blue\n", "colour"),
    ("tenant: acme\napplication: web.app\ncomponents: {vm: {image: x}}\n", "application"),
], ids=["yaml-syntax", "not-a-mapping", "no-components", "unknown-top-level-key", "dotted-name"])
def test_malformed_documents_are_rejected_with_the_place_named(text, path):
    with pytest.raises(DescriptorInvalid) as info:
        parse_descriptor(text)
    assert path in paths(info.value)


def test_anti_affinity_shorthand_and_long_form_mean_the_same():
    short = parse_descriptor(MINIMAL.replace("{image: debian}", "{image: d, placement: {anti_affinity: [vm]}}"))
    long = parse_descriptor(MINIMAL.replace(
        "{image: debian}", "{image: d, placement: {anti_affinity: [{component: vm, scope: site}]}}"))
    assert short.component("vm").placement == long.component("vm").placement


def test_a_parsed_mapping_is_accepted_as_well_as_yaml_text():
    app = parse_descriptor({"tenant": "acme", "application": "x", "components": {"vm": {"image": "d"}}})
    assert app.raw["application"] == "x"
