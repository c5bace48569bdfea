"""The running system end to end: separate OS processes, CURVE, the real CLI (issue 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

DESCRIPTORS = Path(__file__).resolve().parents[1] / "services" / "descriptors"


def _app(tmp_path: Path, name: str, *, count: int = 2, restart: str = "always", tenant: str = "acme",
         extra: str = "") -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"""
tenant: {tenant}
application: {name}
placement: {{policy: spread}}
components:
  web:
    image: web
    vcpus: 1
    memory_mb: 128
    count: {count}
    restart: {restart}
    placement:
      anti_affinity: [web]
{extra}""")
    return str(path)


def _ids(system: Any, app: str) -> dict[str, str]:
    """The backend ids of an application's VMs, once a full site report has carried them."""
    return system.wait_for(f"ids of {app}", lambda: (lambda vms: vms if all(vms.values()) else None)(
        {vm["name"]: vm["id"] for vm in system.status(app)["vms"]}))


def _running(system: Any, app: str, n: int) -> dict[str, Any] | None:
    status = system.status(app)
    return status if status["running"] == n and status["total"] == n else None


def test_deploys_an_application_and_shows_every_vm_running_where_it_was_placed(system, tmp_path):
    result = system.json("app", "deploy", _app(tmp_path, "deploy1", count=3))
    assert result["state"] == "deploying" and result["op"].startswith("op-")
    assert result["operation"]["state"] == "done"
    status = system.status("deploy1")
    assert status["running"] == 3
    assert len({vm["site"] for vm in status["vms"]}) == 3  # anti-affinity: one per site
    placed = {slot["instance"]: slot["site"] for slot in result["placement"]}
    assert {vm["instance"]: vm["site"] for vm in status["vms"]} == placed
    used = {row["site"]: row["vms"] for row in system.json("sites")}
    assert all(used[site] >= 1 for site in placed.values())


def test_deploying_the_same_descriptor_again_changes_nothing(system, tmp_path):
    path = _app(tmp_path, "again", count=2)
    first = system.json("app", "deploy", path)
    ids = _ids(system, "again")
    second = system.json("app", "deploy", path)
    assert second["state"] == "unchanged" and second["op"] == first["op"]
    assert _ids(system, "again") == ids


def test_undeploy_removes_every_vm_and_repeating_it_is_fine(system, tmp_path):
    system.json("app", "deploy", _app(tmp_path, "gone", count=3))
    before = sum(row["vms"] for row in system.json("sites"))
    result = system.json("app", "undeploy", "gone")
    assert result["state"] == "undeployed"
    system.wait_for("the sites to report 3 fewer VMs",
                    lambda: sum(row["vms"] for row in system.json("sites")) == before - 3)
    assert system.wind("app", "status", "gone").returncode == 1
    again = system.json("app", "undeploy", "gone")
    assert again["state"] == "undeployed" and again["op"] == result["op"]


def test_a_vm_killed_through_its_hypervisor_is_brought_back_by_its_supervisor(system, tmp_path):
    system.json("app", "deploy", _app(tmp_path, "phoenix", count=3))
    victims = {vm["site"]: vm for vm in system.status("phoenix")["vms"]}
    for site in ("edge", "dc-a"):  # libvirt destroy, and the sim's crash injection
        victim = victims[site]
        killed = system.json("app", "kill", "phoenix", victim["instance"])
        assert killed["killed"] == victim["name"]
        back = system.wait_for(f"{victim['instance']} back", lambda: next(
            (vm for vm in system.status("phoenix")["vms"] if vm["instance"] == victim["instance"]
             and vm["state"] == "running" and vm["restarts"] >= 1), None))
        assert back["site"] == site
    assert _running(system, "phoenix", 3)


def test_a_vm_with_restart_never_stays_down_after_a_crash(system, tmp_path):
    system.json("app", "deploy", _app(tmp_path, "mortal", count=1, restart="never"))
    victim = system.status("mortal")["vms"][0]
    system.json("app", "kill", "mortal", victim["instance"])
    system.wait_for("the crash to be reported", lambda: system.status("mortal")["vms"][0]["state"] == "crashed")
    assert system.status("mortal")["running"] == 0


def test_another_tenants_application_is_not_found_and_cannot_be_touched(system, tmp_path):
    system.json("app", "deploy", _app(tmp_path, "private", count=1))
    for args in (("app", "status", "private"), ("app", "undeploy", "private"),
                 ("app", "kill", "private", "web-0")):
        result = system.wind(*args, tenant="globex")
        assert result.returncode == 1 and "not found" in result.stderr
    assert system.json("app", "status", tenant="globex") == []
    assert _running(system, "private", 1)
    foreign = system.wind("app", "deploy", _app(tmp_path, "spoof", tenant="acme"), tenant="globex")
    assert foreign.returncode == 1 and "tenant" in foreign.stderr


def test_an_invalid_descriptor_is_rejected_with_every_problem_and_nothing_deployed(system):
    before = system.json("app", "status")
    result = system.wind("app", "deploy", str(DESCRIPTORS / "invalid_many.yaml"))
    assert result.returncode == 1
    for path in ("components.frontend.vcpus", "components.frontend.memory_mb",
                 "components.frontend.restart", "placement.policy"):
        assert path in result.stderr
    assert system.json("app", "status") == before


def test_an_application_that_cannot_fit_is_explained_and_nothing_is_placed(system, tmp_path):
    before = sum(row["vms"] for row in system.json("sites"))
    result = system.wind("app", "deploy", _app(tmp_path, "huge", count=4))  # anti-affinity, 3 sites
    assert result.returncode == 1 and "nothing was placed" in result.stderr
    assert "anti_affinity" in result.stderr
    assert system.wind("app", "status", "huge").returncode == 1
    assert sum(row["vms"] for row in system.json("sites")) == before


@pytest.mark.parametrize("kill", [True], ids=["sigkill"])
def test_a_controller_killed_and_restarted_loses_nothing_and_starts_nothing_twice(system, tmp_path, kill):
    system.json("app", "deploy", _app(tmp_path, "durable", count=3))
    system.wait_for("a full report of every VM", lambda: all(
        vm["id"] for a in system.json("app", "status") for vm in a["vms"] if vm["state"] == "running"))
    apps_before = {a["app"]: a for a in system.json("app", "status")}
    ids_before = {vm["name"]: vm["id"] for a in apps_before.values() for vm in a["vms"]}
    vms_before = {row["site"]: row["vms"] for row in system.json("sites")}
    system.restart_controller(kill=kill)
    system.wait_for("every site to report again", lambda: len(system.json("sites")) == 3)
    system.wait_for("durable running again", lambda: _running(system, "durable", 3))
    apps_after = {a["app"]: a for a in system.json("app", "status")}
    assert set(apps_after) == set(apps_before)
    ids_after = {vm["name"]: vm["id"] for a in apps_after.values() for vm in a["vms"]}
    assert ids_after == ids_before  # the same VMs, adopted: none recreated
    assert {row["site"]: row["vms"] for row in system.json("sites")} == vms_before  # none doubled
