"""Crash windows of the controller's operations, hit for real (issue "crash windows and restart
policies").

A controller and two sim agents run as separate OS processes (``wind_actors.cluster.ProcessCluster``,
CURVE on). To crash the controller inside a window, a test restarts it with the store's documented
fault-injection hook in its environment: ``WIND_FAULT_CRASH_AT=<point>`` (see
``wind_actors.services._store.CRASH_POINTS``) makes the controller process SIGKILL itself when a
deploy or an undeploy reaches that point, either between the writes of the operation's transaction
or right after its commit. The test reads the store file as the crash left it (proving what the
transaction kept), starts the controller again without the hook, retries with the same operation
key through the Python client, and asserts convergence: the application runs whole, or is gone,
and the operation ends ``done``.

The last tests restart the controller while the agents are frozen (SIGSTOP), so no site can have
reported when the deploy arrives.
"""

from __future__ import annotations

import contextlib
import re
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wind_actors.client import Client
from wind_actors.cluster import ProcessCluster, free_port
from wind_actors.errors import ControllerError, NotFound, WindError
from wind_actors.services import Store
from wind_actors.services._store import CRASH_AT_ENV
from wind_actors.testing import wait_for

TOKEN = "acme-crash-windows-token-0123456789"
SITES = ("dc-1", "dc-2")
#: Long enough for a test to act while the agents are frozen, before a silent site counts as down.
SITE_TIMEOUT = 8.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessCluster]:
    workdir = tmp_path_factory.mktemp("wind-crash-windows")
    cluster = ProcessCluster(workdir)
    port = free_port()
    cluster.ensure_keys("controller@hq", "client@acme", *(f"agent@{s}" for s in SITES))
    cluster.write_config("controller", cluster.node_section("controller@hq", port, controller=True)
                         + f'[controller]\nstore = "wind.db"\nsite_timeout = {SITE_TIMEOUT}\ntick = 0.1\n'
                         + f'[controller.tenants]\nacme = "{TOKEN}"\n')
    for site in SITES:
        cluster.write_config(site, cluster.node_section(f"agent@{site}", port)
                             + f'[agent]\nsite = "{site}"\ncontroller = "controller@hq"\ndriver = "sim"\n'
                             + "report_interval = 0.2\n[agent.driver_options]\nhosts = 2\n")
    cluster.write_config("client", cluster.node_section("client@acme", port)
                         + f'[client]\ncontroller = "controller@hq"\ntoken = "{TOKEN}"\ntimeout = 10.0\n')
    try:
        cluster.start("controller", "controller")
        for site in SITES:
            cluster.start(site, "agent")
        yield cluster
    finally:
        for proc in cluster.procs.values():
            proc.send_signal(signal.SIGCONT)  # a frozen agent must be able to exit
        codes = cluster.stop_all()
        assert all(code is not None for code in codes.values())


# -- helpers ------------------------------------------------------------------------------------


def restart_controller(cluster: ProcessCluster, monkeypatch: pytest.MonkeyPatch,
                       crash_at: str | None = None) -> None:
    """SIGKILL the controller (if it runs) and start it again, with the crash hook if asked."""
    cluster.kill("controller")
    with monkeypatch.context() as env:  # only the controller's environment gets the hook
        if crash_at is not None:
            env.setenv(CRASH_AT_ENV, crash_at)
        cluster.start("controller", "controller")


def assert_killed_itself(cluster: ProcessCluster) -> None:
    """The controller reached its crash point: it died of SIGKILL, by its own hand."""
    proc = cluster.procs["controller"]
    assert proc.wait(timeout=30) == -signal.SIGKILL, cluster.log("controller")
    cluster.kill("controller")  # forget (and reap) it


@contextlib.contextmanager
def client(cluster: ProcessCluster) -> Iterator[Client]:
    """A client of the controller now running, once every site has reported to it."""
    with Client.from_config(cluster.configs["client"]) as wind:
        wait_for("every site to report", lambda: {r["site"] for r in wind.sites() if r["health"] == "up"}
                 == set(SITES), 30)
        yield wind


@contextlib.contextmanager
def stored(cluster: ProcessCluster) -> Iterator[Store]:
    """The store file as the dead controller left it (opened only while no controller runs)."""
    assert "controller" not in cluster.procs
    with Store(cluster.workdir / "wind.db") as store:
        yield store


def app_file(tmp_path: Path, name: str, count: int = 2) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"""
tenant: acme
application: {name}
placement: {{policy: spread}}
components:
  web:
    image: web
    vcpus: 1
    memory_mb: 128
    count: {count}
""")
    return str(path)


def gone(wind: Client, app: str) -> bool:
    try:
        wind.status(app)
    except NotFound:
        return True
    return False


def deployed(wind: Client, app: str, count: int = 2) -> dict[str, Any] | None:
    """The status once the application runs whole and is stored ``running`` (which the store
    writes in the same transaction as its deploy operation's ``done``)."""
    status = wind.status(app)
    return status if status["state"] == "running" and status["running"] == count == status["total"] else None


def crash_during(cluster: ProcessCluster, request: Any) -> None:
    """Send ``request(wind)``; the controller dies while handling it, so the ask fails."""
    with client(cluster) as wind:
        with pytest.raises(WindError):
            request(wind)
    assert_killed_itself(cluster)


# -- deploy ---------------------------------------------------------------------------------------


def test_a_deploy_killed_inside_its_transaction_leaves_nothing_and_a_retry_deploys_it(
        cluster, monkeypatch, tmp_path):
    path = app_file(tmp_path, "inside")
    restart_controller(cluster, monkeypatch, crash_at="deploy.after_operation")
    crash_during(cluster, lambda wind: wind.deploy(path, op_key="deploy-inside", wait=False))

    with stored(cluster) as store:  # the operation row was written, but never committed
        assert store.operation_by_key("acme", "deploy-inside") is None
        assert "inside" not in {a.name for a in store.list_applications("acme")}

    restart_controller(cluster, monkeypatch)
    with client(cluster) as wind:
        reply = wind.deploy(path, op_key="deploy-inside")
        assert reply["state"] == "deploying" and reply["operation"]["state"] == "done"
        wait_for("inside running whole", lambda: deployed(wind, "inside"), 20)
        assert wind.deploy(path, op_key="deploy-inside", wait=False)["op"] == reply["op"]


def test_a_deploy_killed_after_its_commit_is_finished_and_a_retry_answers_its_operation(
        cluster, monkeypatch, tmp_path):
    path = app_file(tmp_path, "committed")
    restart_controller(cluster, monkeypatch, crash_at="deploy.after_commit")
    crash_during(cluster, lambda wind: wind.deploy(path, op_key="deploy-committed", wait=False))

    with stored(cluster) as store:  # both written: the operation and its application
        op = store.operation_by_key("acme", "deploy-committed")
        assert op is not None and (op.state, op.app) == ("running", "committed")
        assert store.get_application("acme", "committed").state == "deploying"
        assert len(store.vms("acme", "committed")) == 2

    restart_controller(cluster, monkeypatch)
    with client(cluster) as wind:
        reply = wind.deploy(path, op_key="deploy-committed")
        assert reply["state"] == "unchanged" and reply["op"] == op.id
        assert reply["operation"]["state"] == "done"
        wait_for("committed running whole", lambda: deployed(wind, "committed"), 20)


def test_a_deploy_operation_a_crash_left_without_its_application_is_re_driven_by_a_retry(
        cluster, monkeypatch, tmp_path):
    """What a crash between two commits left before deploys were one transaction: the operation
    ``running`` and no application (then a retry answered ``unchanged`` and nothing came)."""
    path = app_file(tmp_path, "orphaned")
    cluster.kill("controller")
    with stored(cluster) as store:
        op = store.begin_operation("acme", "deploy", "orphaned", key="deploy-orphaned",
                                   detail={"total": 2, "running": 0})

    restart_controller(cluster, monkeypatch)
    with client(cluster) as wind:
        reply = wind.deploy(path, op_key="deploy-orphaned")
        assert reply["op"] == op.id and reply["state"] == "deploying"
        assert reply["operation"]["state"] == "done"
        wait_for("orphaned running whole", lambda: deployed(wind, "orphaned"), 20)


# -- undeploy -------------------------------------------------------------------------------------


def deploy_first(cluster: ProcessCluster, path: str) -> int:
    """Deploy normally; returns how many VMs the sites hold with it."""
    with client(cluster) as wind:
        wind.deploy(path)
        wait_for("the application stored running", lambda: deployed(wind, Path(path).stem), 20)
        return sum(row["vms"] for row in wind.sites())


def undeployed_everywhere(wind: Client, app: str, before: int) -> bool:
    return gone(wind, app) and sum(row["vms"] for row in wind.sites()) == before - 2


def test_an_undeploy_killed_inside_its_transaction_changes_nothing_and_a_retry_undeploys(
        cluster, monkeypatch, tmp_path):
    before = deploy_first(cluster, app_file(tmp_path, "leaving"))
    restart_controller(cluster, monkeypatch, crash_at="undeploy.after_operation")
    crash_during(cluster, lambda wind: wind.undeploy("leaving", op_key="undeploy-leaving", wait=False))

    with stored(cluster) as store:  # neither the operation nor the state change
        assert store.operation_by_key("acme", "undeploy-leaving") is None
        assert store.get_application("acme", "leaving").state == "running"

    restart_controller(cluster, monkeypatch)
    with client(cluster) as wind:
        reply = wind.undeploy("leaving", op_key="undeploy-leaving")
        assert reply["state"] == "undeployed" and reply["operation"]["state"] == "done"
        wait_for("every VM of leaving removed", lambda: undeployed_everywhere(wind, "leaving", before), 20)


@pytest.mark.parametrize("point", ["undeploy.after_commit", "undeploy.after_delete"],
                         ids=["after-its-commit", "between-delete-and-done"])
def test_an_undeploy_killed_later_is_resumed_by_the_restarted_controller_and_a_retry_answers_it(
        cluster, monkeypatch, tmp_path, point):
    app = "resumed-" + point.split(".")[1].replace("_", "-")
    before = deploy_first(cluster, app_file(tmp_path, app))
    restart_controller(cluster, monkeypatch, crash_at=point)
    with client(cluster) as wind:
        try:
            wind.undeploy(app, op_key=f"undeploy-{app}", wait=False)
            answered = True
        except WindError:  # the ask into the dying controller fails
            answered = False
    # after_commit: before the controller answers; after_delete: in the application actor's final
    # transaction, which may come before or after the controller's answer.
    assert_killed_itself(cluster)
    assert not answered or point == "undeploy.after_delete"

    with stored(cluster) as store:  # the undeploy is recorded, and not finished
        op = store.operation_by_key("acme", f"undeploy-{app}")
        assert op is not None and op.state == "running"
        assert store.get_application("acme", app).state == "undeploying"

    restart_controller(cluster, monkeypatch)
    with client(cluster) as wind:  # no retry needed: the new application actor resumes it
        wait_for(f"every VM of {app} removed", lambda: undeployed_everywhere(wind, app, before), 20)
        again = wind.undeploy(app, op_key=f"undeploy-{app}")
        assert (again["op"], again["state"]) == (op.id, "undeployed")
        assert wind.operation(op.id)["state"] == "done"


def test_an_undeploy_operation_a_crash_left_without_its_state_change_is_re_driven_by_a_retry(
        cluster, monkeypatch, tmp_path):
    """What a crash between two commits left before undeploys were one transaction: the operation
    ``running`` and the application still ``running`` (then a retry answered ``undeploying``
    and nothing ran)."""
    before = deploy_first(cluster, app_file(tmp_path, "stalled"))
    cluster.kill("controller")
    with stored(cluster) as store:
        op = store.begin_operation("acme", "undeploy", "stalled", key="undeploy-stalled",
                                   detail={"total": 2, "removed": 0})

    restart_controller(cluster, monkeypatch)
    with client(cluster) as wind:
        reply = wind.undeploy("stalled", op_key="undeploy-stalled")
        assert (reply["op"], reply["state"]) == (op.id, "undeployed")
        wait_for("every VM of stalled removed", lambda: undeployed_everywhere(wind, "stalled", before), 20)


# -- a deploy right after a restart -----------------------------------------------------------------

POOL_NOT_KNOWN = re.compile(r"pool not known yet: 0 of 2 sites have reported since the controller "
                            r"started [0-9.]+ s ago \(waiting for dc-1, dc-2\); retry")


def signal_agents(cluster: ProcessCluster, sig: signal.Signals) -> None:
    """SIGSTOP freezes the agents (no site reports); SIGCONT thaws them (idempotent)."""
    for site in SITES:
        cluster.procs[site].send_signal(sig)


def refusals(cluster: ProcessCluster) -> int:
    """How many deploys the controller (this incarnation's log included) refused for its pool."""
    return (cluster.logs_dir / "controller.log").read_text(errors="replace").count("controller.pool_not_known")


def test_a_deploy_before_the_sites_report_again_is_refused_recoverably_and_the_client_retries_it(
        cluster, monkeypatch, tmp_path):
    path = app_file(tmp_path, "early")
    deploy_first(cluster, app_file(tmp_path, "anchor"))  # the store knows both sites
    outcome: dict[str, Any] = {}
    signal_agents(cluster, signal.SIGSTOP)
    try:
        restart_controller(cluster, monkeypatch)
        with Client.from_config(cluster.configs["client"]) as wind:
            with pytest.raises(ControllerError) as refused:  # retried until its deadline, then given up
                wind.deploy(path, op_key="deploy-early", wait=False, timeout=0.5)
            assert refused.value.recoverable is True
            assert POOL_NOT_KNOWN.search(str(refused.value)), str(refused.value)
            assert "0 sites evaluated" not in str(refused.value)

            # One node per client name: the retrying deploy runs on this client, from a thread,
            # while this thread watches the controller's log and then lets the sites report.
            seen = refusals(cluster)
            retrying = threading.Thread(target=lambda: outcome.update(
                reply=wind.deploy(path, op_key="deploy-early", timeout=60)))
            retrying.start()
            wait_for("the client to be refused again", lambda: refusals(cluster) > seen, 10)
            signal_agents(cluster, signal.SIGCONT)
            retrying.join(timeout=60)
    finally:
        signal_agents(cluster, signal.SIGCONT)
    assert outcome["reply"]["state"] == "deploying" and outcome["reply"]["operation"]["state"] == "done"
    with client(cluster) as wind:
        wait_for("early running whole", lambda: deployed(wind, "early"), 20)
