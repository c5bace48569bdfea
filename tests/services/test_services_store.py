"""The SQLite store: desired state survives a SIGKILL whole, and every lookup is per tenant."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from wind_actors.errors import ConfigError, NotFound, StoreError
from wind_actors.services import (
    DesiredVM, ObservedVM, Store, VMRecord, load_descriptor, reconcile, schedule, vm_name,
)
from wind_actors.services._store import CRASH_AT_ENV

ROOT = Path(__file__).parent.parent.parent


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "state" / "wind.db") as s:
        yield s


def vms_for(tenant, app, n, site="a"):
    return [VMRecord(vm_name(tenant, app, f"w-{i}"), tenant, app, f"w-{i}", "w", site, "h0") for i in range(n)]


def test_an_application_is_stored_with_its_descriptor_placement_and_vms(store):
    desc = {"tenant": "acme", "application": "web", "components": {"w": {"image": "x"}}}
    rec = store.put_application("acme", "web", desc, {"slots": []}, vms_for("acme", "web", 3))
    assert rec.generation == 1 and rec.state == "deploying"
    got = store.get_application("acme", "web")
    assert got.descriptor == desc and got.placement == {"slots": []}
    assert [v.instance for v in store.vms("acme", "web")] == ["w-0", "w-1", "w-2"]
    assert store.tenants() == ["acme"]
    again = store.put_application("acme", "web", desc, None, vms_for("acme", "web", 1))
    assert again.generation == 2 and again.created == rec.created
    assert len(store.vms("acme", "web")) == 1


def test_vm_states_are_updated_in_one_transaction(store):
    store.put_application("acme", "web", {}, None, vms_for("acme", "web", 2))
    names = [v.name for v in store.vms("acme", "web")]
    changed = store.update_vms([(names[0], {"state": "running"}), (names[1], {"state": "crashed", "site": "b"}),
                                ("nobody", {"state": "running"})])
    assert changed == 2
    assert [(v.state, v.site) for v in store.vms("acme", "web")] == [("running", "a"), ("crashed", "b")]
    with pytest.raises(ValueError, match="cannot be updated"):
        store.update_vms([(names[0], {"tenant": "evil"})])


def test_deleting_an_application_removes_its_vms_and_is_idempotent(store):
    store.put_application("acme", "web", {}, None, vms_for("acme", "web", 2))
    assert store.delete_application("acme", "web") is True
    assert store.delete_application("acme", "web") is False
    assert store.vms("acme") == []
    with pytest.raises(NotFound):
        store.get_application("acme", "web")


def test_one_tenant_cannot_see_another_tenants_applications_or_operations(store):
    store.put_application("acme", "web", {}, None, [])
    op = store.begin_operation("acme", "deploy", app="web")
    with pytest.raises(NotFound) as theirs:
        store.get_application("globex", "web")
    with pytest.raises(NotFound) as absent:
        store.get_application("globex", "nothing")
    assert str(theirs.value).replace("'web'", "'X'") == str(absent.value).replace("'nothing'", "'X'")
    with pytest.raises(NotFound):
        store.get_operation("globex", op.id)
    assert store.list_applications("globex") == []
    with pytest.raises(NotFound):
        store.set_application_state("globex", "web", "running")


def test_operations_have_ids_and_an_idempotency_key_returns_the_same_operation(store):
    first = store.begin_operation("acme", "deploy", app="web", key="req-1")
    again = store.begin_operation("acme", "deploy", app="web", key="req-1")
    other = store.begin_operation("acme", "deploy", app="web")
    assert first.id == again.id != other.id and first.id.startswith("op-")
    store.update_operation(first.id, "done", {"vms": 4})
    done = store.get_operation("acme", first.id)
    assert (done.state, done.detail) == ("done", {"vms": 4})
    assert {o.id for o in store.operations("acme", "web")} == {first.id, other.id}
    assert store.operations("globex") == []


def test_overlay_allocations_are_opaque_json_blobs(store):
    store.put_overlay("vni", {"acme/app": 4097})
    assert store.get_overlay("vni") == {"acme/app": 4097}
    store.delete_overlay("vni")
    assert store.get_overlay("vni", default={}) == {}


def test_the_store_path_comes_from_the_controller_config(tmp_path):
    with Store.from_config({"store": {"path": str(tmp_path / "c.db")}}) as s:
        assert s.path.endswith("c.db")
    with pytest.raises(ConfigError, match="store path"):
        Store.from_config({})


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError):
        Store(bad)


WRITER = textwrap.dedent("""
    import sys
    from wind_actors.services import Store, VMRecord
    store = Store(sys.argv[1])
    for n in range(100000):
        app = f"app{n}"
        vms = [VMRecord(f"t.{app}.w-{i}", "t", app, f"w-{i}", "w", "a", "h0") for i in range(20)]
        store.put_application("t", app, {"n": n}, {"vms": 20}, vms)
        print(n, flush=True)
""")


def test_a_controller_killed_with_sigkill_reopens_with_every_committed_application_whole(tmp_path):
    path = tmp_path / "wind.db"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        for _ in range(30):  # wait until 30 commits were acknowledged, then kill mid-stream
            last = int(proc.stdout.readline())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    with Store(path) as store:
        apps = store.list_applications("t")
        assert len(apps) >= last + 1
        for rec in apps:
            assert len(store.vms("t", rec.name)) == 20, f"{rec.name} was stored half-written"


def test_after_a_restart_the_stored_placement_lets_reconcile_adopt_and_start_only_whats_missing(tmp_path):
    from wind_actors.services import Host, Pool, SiteReport
    app = load_descriptor(ROOT / "examples" / "apps" / "web.yaml")
    pool = Pool.from_reports([SiteReport(n, "sim", (Host("h0", 8, 8192, 50),), labels={"storage": "ssd"})
                              for n in ("a", "b", "c")])
    placement = schedule(pool, app)
    restart = {c.name: c.restart for c in app.components}
    with Store(tmp_path / "w.db") as store:
        store.put_application(app.tenant, app.name, dict(app.raw), placement.to_mapping(), [
            VMRecord(vm_name(app.tenant, app.name, s.instance), app.tenant, app.name, s.instance, s.component,
                     s.site, s.host, "running", restart=restart[s.component]) for s in placement.slots])
    with Store(tmp_path / "w.db") as store:  # the controller, started again
        records = store.vms(app.tenant, app.name)
    running = [ObservedVM(r.name, r.site, "running") for r in records[1:]]
    result = reconcile([DesiredVM(r.name, r.site, r.restart) for r in records], running, sites_up={"a", "b", "c"})
    assert [a.name for a in result.start] == [records[0].name]
    assert sorted(a.name for a in result.adopt) == sorted(r.name for r in records[1:])
    assert not (result.place or result.stop or result.lost)


# -- controller operations are one transaction each (issue "crash windows and restart policies") --


def test_a_deploy_stores_its_operation_with_its_application_and_a_retry_reuses_the_operation(store):
    op = store.begin_deploy("acme", "web", {"d": 1}, {"slots": []}, vms_for("acme", "web", 2), key="k-1",
                            detail={"total": 2, "running": 0})
    assert (op.kind, op.app, op.state, op.key) == ("deploy", "web", "running", "k-1")
    assert store.get_application("acme", "web").state == "deploying"
    assert len(store.vms("acme", "web")) == 2
    again = store.begin_deploy("acme", "web", {"d": 1}, {"slots": []}, vms_for("acme", "web", 3), key="k-1",
                               detail={"total": 3, "running": 0})
    assert again.id == op.id and again.detail == {"total": 3, "running": 0}
    assert len(store.vms("acme", "web")) == 3 and store.operation_by_key("acme", "k-1").id == op.id


def test_a_deploy_that_fails_after_its_operation_row_leaves_neither_operation_nor_application(store):
    wrong = [VMRecord("acme.other.w-0", "acme", "other", "w-0", "w")]  # refused by put_application
    with pytest.raises(ValueError, match="belongs to"):
        store.begin_deploy("acme", "web", {}, None, wrong, key="k-2")
    assert store.operation_by_key("acme", "k-2") is None
    assert store.operations("acme") == [] and store.list_applications("acme") == []


def test_an_undeploy_stores_its_operation_with_the_state_change_and_a_missing_app_writes_nothing(store):
    store.put_application("acme", "web", {}, None, vms_for("acme", "web", 1), state="running")
    op = store.begin_undeploy("acme", "web", key="u-1", detail={"total": 1, "removed": 0})
    assert (op.kind, op.state) == ("undeploy", "running")
    assert store.get_application("acme", "web").state == "undeploying"
    with pytest.raises(NotFound):
        store.begin_undeploy("acme", "nothing", key="u-2")
    assert store.operation_by_key("acme", "u-2") is None


def test_finishing_marks_the_operation_done_together_with_the_application(store):
    store.put_application("acme", "web", {}, None, vms_for("acme", "web", 1))
    deploy = store.begin_operation("acme", "deploy", "web")
    store.finish_deploy("acme", "web", deploy.id, {"total": 1, "running": 1})
    assert store.get_operation("acme", deploy.id).state == "done"
    assert store.get_application("acme", "web").state == "running"
    undeploy = store.begin_undeploy("acme", "web")
    store.finish_undeploy("acme", "web", undeploy.id, {"total": 1, "removed": 1})
    assert store.get_operation("acme", undeploy.id).state == "done"
    assert store.list_applications("acme") == [] and store.vms("acme") == []


def test_a_nested_transaction_is_a_savepoint_undone_alone(store):
    with store.transaction():
        store.ensure_tenant("kept")
        with pytest.raises(ValueError):
            with store.transaction():
                store.ensure_tenant("undone")
                raise ValueError("inner block fails")
        store.ensure_tenant("also-kept")
    assert store.tenants() == ["also-kept", "kept"]
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.ensure_tenant("outer-undone")
            raise RuntimeError("outer block fails")
    assert "outer-undone" not in store.tenants()


def test_an_unknown_fault_injection_crash_point_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.setenv(CRASH_AT_ENV, "somewhere_else")
    with pytest.raises(ConfigError, match="not a crash point"):
        Store(tmp_path / "w.db")


CRASHER = textwrap.dedent("""
    import sys
    from wind_actors.services import Store, VMRecord
    store = Store(sys.argv[1])
    store.put_application("t", "up", {}, None, [VMRecord("t.up.w-0", "t", "up", "w-0", "w")], state="running")
    vms = [VMRecord(f"t.app.w-{i}", "t", "app", f"w-{i}", "w", "a", "h0") for i in range(3)]
    print("ready", flush=True)
    if sys.argv[2] == "deploy":
        store.begin_deploy("t", "app", {"n": 1}, None, vms, key="k")
    else:
        store.begin_undeploy("t", "up", key="k")
    print("survived", flush=True)
""")


@pytest.mark.parametrize("point, kind, written", [
    ("deploy.after_operation", "deploy", False), ("deploy.after_commit", "deploy", True),
    ("undeploy.after_operation", "undeploy", False), ("undeploy.after_commit", "undeploy", True),
], ids=["deploy-inside-its-transaction", "deploy-after-its-commit", "undeploy-inside-its-transaction",
        "undeploy-after-its-commit"])
def test_a_process_killed_at_a_crash_point_leaves_the_whole_operation_or_none_of_it(tmp_path, point, kind,
                                                                                     written):
    """The fault-injection hook ``WIND_FAULT_CRASH_AT`` (services._store.CRASH_POINTS) SIGKILLs the
    writer at the named point: between the operation row and the rest, or just after the commit."""
    path = tmp_path / "wind.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT), CRASH_AT_ENV: point}
    done = subprocess.run([sys.executable, "-c", CRASHER, str(path), kind], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=60)
    assert done.returncode == -signal.SIGKILL and done.stdout.split() == ["ready"], done.stderr
    with Store(path) as store:
        op = store.operation_by_key("t", "k")
        assert (op is not None) == written
        if kind == "deploy":
            assert [a.name for a in store.list_applications("t")] == (["app", "up"] if written else ["up"])
            assert len(store.vms("t", "app")) == (3 if written else 0)
        else:
            assert store.get_application("t", "up").state == ("undeploying" if written else "running")
