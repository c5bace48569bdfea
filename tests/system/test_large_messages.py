"""Messages of any size: a cluster whose frame limit is 32 KiB runs an application far larger.

Every node's ``max_frame_bytes`` is 32 KiB, so the site's inventory, the EnsureVMs and RemoveVMs
requests and the status reply of 400 VMs are each several frames' worth: reports go as delta
parts, requests in chunks, status in pages, the deploy reply's placement is cut (with its total),
and nothing is dropped for its size.
"""

from __future__ import annotations

import json

import pytest

from wind_actors._chunks import chunks_by_size, packed_size
from wind_actors.cluster import Cluster, SiteSpec
from wind_actors.errors import WireError
from wind_actors.protocol import ListVMs, Status, site_actor_name

TOKENS = {"acme": "acme-token-0123456789"}
FRAME = 32 * 1024
VMS = 400


def _app(name: str, count: int) -> dict:
    return {"tenant": "acme", "application": name,
            "components": {"web": {"image": "x" * 40, "vcpus": 1, "memory_mb": 16, "count": count}}}


@pytest.fixture
def cluster():
    # a site name of its own: sim hypervisors are shared by name within the process
    sites = [SiteSpec("big-dc", "sim", {"hosts": 100, "host_cpus": 64}, report_interval=0.2)]
    with Cluster.start(sites, tenants=TOKENS, tick=0.1, max_frame_bytes=FRAME) as running:
        yield running


def test_an_application_larger_than_a_frame_deploys_reports_pages_and_undeploys(cluster):
    client = cluster.client("acme")
    deployed = client.deploy(_app("big", VMS), timeout=120)
    # the placement of 400 VMs is cut to what fits a fraction of a frame, and says so
    assert deployed["vms"] == VMS and deployed["placement_total"] == VMS
    assert 0 < len(deployed["placement"]) < VMS and packed_size(deployed["placement"]) <= FRAME // 8
    status = client.status("big")
    assert status["total"] == VMS and status["running"] == VMS
    assert len({vm["name"] for vm in status["vms"]}) == VMS
    assert packed_size(status) > FRAME  # it could never have been one reply
    listed = client.status()  # all of the tenant's applications, fetched page by page
    assert [a["app"] for a in listed] == ["big"] and len(listed[0]["vms"]) == VMS
    assert {row["site"]: row["health"] for row in client.sites()} == {"big-dc": "up"}
    counters = cluster.controller_node.stats()["counters"]
    assert counters.get("oversized", 0) == 0 and counters.get("bad_report", 0) == 0
    client.undeploy("big", timeout=120)
    assert client.status() == []
    site = cluster.controller_node.ref(f"{site_actor_name('big-dc')}@agent@big-dc")
    assert not site.ask(ListVMs(), timeout=10)["vms"]


def test_status_pages_follow_the_page_size_and_join_back_into_one_row(cluster):
    client = cluster.client("acme")
    client.deploy(_app("paged", 30), timeout=60)
    client.deploy(_app("second", 5), timeout=60)
    pages, cursor = [], None
    while True:
        reply = client._ask(Status(client._token, None, cursor, 7))
        pages.append(reply)
        cursor = reply["next"]
        if cursor is None:
            break
    assert all(sum(len(a["vms"]) for a in p["apps"]) <= 7 for p in pages)
    assert len(pages) == 5  # 35 VMs by 7
    first = pages[0]["apps"][0]
    assert first["app"] == "paged" and first["total"] == 30 and "continued" not in first
    assert pages[1]["apps"][0].get("continued") is True
    joined = client.status(page_size=7)
    assert [(a["app"], a["total"], len(a["vms"])) for a in joined] == [("paged", 30, 30), ("second", 5, 5)]
    # the page size changes nothing in the result (as JSON: sequences arrive as tuples)
    assert json.dumps(joined, sort_keys=True) == json.dumps(client.status(), sort_keys=True)
    names = [vm["name"] for vm in joined[0]["vms"]]
    assert names == sorted(names) and len(set(names)) == 30
    for app in ("paged", "second"):
        client.undeploy(app, timeout=60)


def test_an_oversize_tell_is_an_error_at_the_sender_not_a_silent_drop(cluster):
    node = cluster.agents["big-dc"].node
    controller = node.ref("controller@controller@local")
    before = node.stats()["counters"].get("oversized_sent", 0)
    with pytest.raises(WireError, match="exceeds max_frame_bytes.*chunks") as caught:
        controller.tell(Status("t", "x" * FRAME))
    assert caught.value.reason == "oversized"
    assert node.stats()["counters"]["oversized_sent"] == before + 1


def test_chunks_stay_under_their_budget_and_keep_every_item_in_order():
    items = [{"spec": {"name": f"vm-{i}", "image": "x" * (i % 300)}} for i in range(2000)]
    chunks = list(chunks_by_size(items, 16 * 1024))
    assert [i for c in chunks for i in c] == items
    assert all(packed_size(c) <= 16 * 1024 for c in chunks) and len(chunks) > 10
    assert list(chunks_by_size([], 100)) == []
    assert list(chunks_by_size(["y" * 500, "z"], 100)) == [["y" * 500], ["z"]]


def test_a_status_of_100000_vms_comes_in_pages_under_the_frame_limit(tmp_path):
    from wind_actors._chunks import budget_of
    from wind_actors.controller._status import status_page
    from wind_actors.controller._views import SiteView, Snapshot
    from wind_actors.services import Host, SiteReport as PoolReport, Store, VMRecord

    store = Store(str(tmp_path / "wind.db"))
    total = 100_000
    records = [VMRecord(f"acme.huge.web-{i:06d}", "acme", "huge", f"web-{i:06d}", "web", "dc-1",
                        "h0", "running") for i in range(total)]
    store.begin_deploy("acme", "huge", {"application": "huge"}, {"slots": []}, records)
    store.begin_deploy("acme", "tiny", {"application": "tiny"}, {"slots": []},
                       [VMRecord("acme.tiny.web-0", "acme", "tiny", "web-0", "web", "dc-1")])
    rows = {r.name: {"name": r.name, "state": "running", "host": "h0"} for r in records[::2]}
    snap = Snapshot({"dc-1": SiteView("dc-1", "agent@dc-1", None, PoolReport("dc-1", "sim", (Host("h0", 8, 8192, 100),)), rows,
                                      True, 0.0)})
    apps = store.list_applications("acme")
    budget = budget_of(1 << 20)
    joined: dict[str, list] = {}
    firsts: dict[str, dict] = {}
    cursor, pages = None, 0
    while True:
        page = status_page("acme", apps, cursor, 0,
                           vms=lambda app, **kw: store.vms("acme", app, **kw),
                           op_of=lambda app: None, snapshot=snap, decorate=lambda rows, rec: None,
                           budget=budget)
        assert packed_size(page) <= budget
        pages += 1
        for row in page["apps"]:
            joined.setdefault(row["app"], []).extend(row["vms"])
            if not row.get("continued"):
                firsts[row["app"]] = row
        cursor = page["next"]
        if cursor is None:
            break
    assert pages == 101  # 1,000 VMs a page, then the last VMs of "huge" with "tiny"
    assert len(joined["huge"]) == total and len(set(v["name"] for v in joined["huge"])) == total
    assert firsts["huge"]["total"] == total and firsts["huge"]["running"] == total // 2
    assert [v["name"] for v in joined["tiny"]] == ["acme.tiny.web-0"]
    store.close()
