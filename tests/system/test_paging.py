"""Paged listings: Sites (controller), ListVMs (agent) and Status, with page sizes of a few rows.

Every listing bigger than a page comes back whole and exactly once across its pages; a change
between two pages neither duplicates a row nor breaks the walk; a cursor that is not the
listing's own is refused with what was wrong and what to pass; the permission rules still hold
for every page; and a tenant's cursor is only ever a position among that tenant's own rows.
"""

from __future__ import annotations

import json

import pytest

from wind_actors._chunks import packed_size
from wind_actors._paging import cap_in_place, join_pages, make_cursor, page_size_of, parse_cursor
from wind_actors.cluster import Cluster, SiteSpec
from wind_actors.controller._site_pages import DEFAULT_PAGE, sites_page
from wind_actors.controller._views import SiteView, Snapshot
from wind_actors.errors import ActorError, Forbidden, InvalidPage
from wind_actors.protocol import ListVMs, Sites, Status, site_actor_name
from wind_actors.services import Host, Resources, SiteReport as PoolReport, Slot

TOKENS = {"acme": "acme-token-0123456789", "globex": "globex-token-0123456789"}
SITES = ("page-a", "page-b", "page-c", "page-d")  # sim hypervisors are shared by name in-process


def _app(tenant: str, name: str, count: int, site: str | None = None) -> dict:
    comp = {"image": "x", "vcpus": 1, "memory_mb": 16, "count": count}
    if site is not None:
        comp["placement"] = {"where": {"sites": [site]}}
    return {"tenant": tenant, "application": name, "components": {"web": comp}}


# -- pure: cursors, page sizes, the sites page ---------------------------------------------------


def _view(name: str, vms: int = 0) -> SiteView:
    report = PoolReport(name, "sim", (Host("h0", 8, 8192, 100),), vm_count=vms, rtt_ms={"agent@x": 1.23456})
    return SiteView(name, f"agent@{name}", None, report, {}, True, 0.0)


def _walk(snapshots, page_size: int) -> list[str]:
    """Every site name over the pages, the n-th page built from the n-th snapshot (the last one
    for the rest): the pool may change between any two pages."""
    names, cursor, i = [], None, 0
    while True:
        snap = snapshots[min(i, len(snapshots) - 1)]
        page = sites_page(snap, [], cursor, page_size, budget=1 << 20, now=5.0)
        assert len(page["sites"]) <= (page_size or DEFAULT_PAGE) and page["total"] == len(snap.sites)
        names += [row["site"] for row in page["sites"]]
        cursor, i = page["next"], i + 1
        if cursor is None:
            return names


def test_a_pool_bigger_than_a_page_comes_whole_in_name_order_exactly_once():
    snap = Snapshot({f"s-{i:03d}": _view(f"s-{i:03d}") for i in reversed(range(23))})
    names = _walk([snap], 5)
    assert names == sorted(snap.sites) and len(names) == 23
    assert _walk([snap], 23) == names and _walk([snap], 0) == names  # one page; the default
    row = sites_page(snap, [], None, 1, budget=1 << 20, now=5.0)["sites"][0]
    assert row["agent"] == "agent@s-000" and row["last_report_s"] == 5.0
    assert row["rtt_ms"] == {"agent@x": 1.235}


def test_sites_joining_and_leaving_between_pages_never_duplicate_or_break_the_walk():
    before = Snapshot({n: _view(n) for n in ("a", "b", "c", "d", "e", "f")})
    # after the first page (a, b): b (the cursor itself) and e leave, "aa" joins before the
    # cursor, "bb" and "g" after it
    after = Snapshot({n: _view(n) for n in ("a", "aa", "bb", "c", "d", "f", "g")})
    names = _walk([before, after], 2)
    assert names == ["a", "b", "bb", "c", "d", "f", "g"]  # each once; "aa" came after its place
    assert len(set(names)) == len(names)
    assert _walk([before, Snapshot()], 2) == ["a", "b"]  # the whole pool gone: an empty last page


def test_a_page_keeps_the_reservations_of_placements_on_its_sites():
    snap = Snapshot({n: _view(n) for n in ("a", "b")})
    pending = [("acme.web.web-0", Slot("web-0", "web", "b", "h0", Resources(2, 512, 1)))]
    page = sites_page(snap, pending, make_cursor("sites", "a"), 1, budget=1 << 20, now=0.0)
    assert [(r["site"], r["used"]["cpus"]) for r in page["sites"]] == [("b", 2)]


def test_a_page_over_its_byte_budget_is_built_again_with_fewer_rows():
    snap = Snapshot({f"s-{i}": _view(f"s-{i}") for i in range(40)})
    one = packed_size(sites_page(snap, [], None, 1, budget=1 << 20, now=0.0))
    budget = one * 6
    names, cursor = [], None
    while True:
        page = sites_page(snap, [], cursor, 40, budget=budget, now=0.0)
        assert packed_size(page) <= budget and len(page["sites"]) < 40
        names += [r["site"] for r in page["sites"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert names == sorted(snap.sites)


@pytest.mark.parametrize("cursor, said", [
    ("not json", "is not a cursor this listing gave out"),
    (json.dumps(["vms", "acme.web.web-0"]), "is a cursor of the vms listing"),
    (json.dumps(["sites", 7]), "is not a cursor this listing gave out"),
    (json.dumps({"sites": "a"}), "is not a cursor this listing gave out"),
])
def test_a_cursor_of_another_listing_or_none_at_all_is_refused_saying_what_to_pass(cursor, said):
    with pytest.raises(InvalidPage, match=said) as caught:
        parse_cursor("sites", cursor)
    assert "pass the previous reply's \"next\" unchanged, or no cursor" in caught.value.message


def test_page_sizes_default_clamp_and_refuse_negatives():
    assert page_size_of(0, listing="sites", default=200, maximum=1000) == 200
    assert page_size_of(7, listing="sites", default=200, maximum=1000) == 7
    assert page_size_of(10**9, listing="sites", default=200, maximum=1000) == 1000
    allowed = r"page_size -1 is not allowed.*0 for the default \(200\) or 1 to 1000"
    with pytest.raises(InvalidPage, match=allowed):
        page_size_of(-1, listing="sites", default=200, maximum=1000)


def test_one_off_lists_are_cut_to_their_budget_and_say_how_many_there_were():
    reply = {"placement": [{"instance": f"web-{i}", "site": "dc-1"} for i in range(1000)], "vms": 1000}
    cap_in_place(reply, "placement", 2048)
    assert packed_size(reply["placement"]) <= 2048 and reply["placement_total"] == 1000
    assert reply["placement"][0]["instance"] == "web-0"
    failed = {"detail": {f"vm-{i}": "boom" for i in range(500)}}
    cap_in_place(failed, "detail", 512)
    assert isinstance(failed["detail"], dict) and failed["detail_total"] == 500
    small = {"sites_pushed": ["a", "b"]}
    cap_in_place(small, "sites_pushed", 512)
    assert small == {"sites_pushed": ["a", "b"]}  # under the budget: untouched, no _total


def test_join_pages_reports_progress_only_for_listings_longer_than_a_page():
    pages = {None: {"sites": [1, 2], "next": "c1", "total": 5}, "c1": {"sites": [3, 4], "next": "c2"},
             "c2": {"sites": [5], "next": None, "total": 5}}
    seen = []
    rows = [r for page in join_pages(pages.__getitem__, "sites", lambda *a: seen.append(a)) for r in page]
    assert rows == [1, 2, 3, 4, 5]
    assert seen == [(2, 5, False), (4, None, False), (5, 5, True)]
    seen.clear()
    assert [r for p in join_pages(lambda c: {"sites": [1], "next": None}, "sites",
                                  lambda *a: seen.append(a)) for r in p] == [1]
    assert seen == []


# -- a running cluster ------------------------------------------------------------------------


@pytest.fixture
def cluster():  # one per test: the suite's autouse fixture stops every actor after each test
    sites = [SiteSpec(s, "sim", {"hosts": 4}, report_interval=0.2) for s in SITES]
    with Cluster.start(sites, tenants=TOKENS, tick=0.1) as running:
        yield running


def _site_ref(cluster: Cluster, site: str):
    return cluster.controller_node.ref(f"{site_actor_name(site)}@agent@{site}")


def test_sites_come_in_pages_and_the_client_joins_them(cluster):
    client = cluster.client("acme")
    pages, cursor = [], None
    while True:
        reply = client._ask(Sites(client._token, cursor, 3))
        pages.append(reply)
        cursor = reply["next"]
        if cursor is None:
            break
    assert [len(p["sites"]) for p in pages] == [3, 1] and {p["total"] for p in pages} == {4}
    snapshots = []
    joined = client.sites(page_size=1, progress=snapshots.append)
    assert [r["site"] for r in joined] == list(SITES)
    assert [(s["state"], s["detail"]["listed"]) for s in snapshots] == [
        ("running", 1), ("running", 2), ("running", 3), ("done", 4)]
    assert {s["detail"]["total"] for s in snapshots} == {4}
    assert [r["site"] for r in client.sites()] == list(SITES)  # the default: one page, same rows
    assert [r["site"] for r in cluster.operator().sites(page_size=2)] == list(SITES)


def test_a_bad_sites_cursor_or_page_size_is_refused_with_what_is_allowed(cluster):
    client = cluster.client("acme")
    with pytest.raises(InvalidPage, match="sites cursor 'garbage' is not a cursor this listing gave out"):
        client._ask(Sites(client._token, "garbage"))
    with pytest.raises(InvalidPage, match="is a cursor of the vms listing"):
        client._ask(Sites(client._token, make_cursor("vms", "x")))
    with pytest.raises(InvalidPage, match="page_size -5 is not allowed for the sites listing"):
        client.sites(page_size=-5)


def test_an_agent_may_not_list_the_pool_and_a_client_or_other_agent_may_not_list_a_site(cluster):
    agent = cluster.agents["page-a"].node
    with pytest.raises(Forbidden):
        agent.ref("controller@controller@local").ask(Sites("", None, 1), timeout=5)
    other = cluster.agents["page-b"].node  # agents reach each other (RTT probes)
    with pytest.raises(Forbidden):
        other.ref(f"{site_actor_name('page-a')}@agent@page-a").ask(
            ListVMs(True, make_cursor("vms", ""), 1), timeout=5)


def test_a_site_inventory_comes_in_pages_and_a_change_between_pages_is_no_duplicate(cluster):
    acme = cluster.client("acme")
    acme.deploy(_app("acme", "inv", 7, "page-c"), timeout=60)
    site = _site_ref(cluster, "page-c")
    first = site.ask(ListVMs(True, None, 3), timeout=10)
    assert [v["name"] for v in first["vms"]] == [f"acme.inv.web-{i}" for i in range(3)]
    assert first["total"] == 7 and first["site"] == "page-c"
    # between pages: VMs sorting before and after the cursor appear
    acme.deploy(_app("acme", "aaa", 2, "page-c"), timeout=60)
    acme.deploy(_app("acme", "zzz", 2, "page-c"), timeout=60)
    names, cursor = [v["name"] for v in first["vms"]], first["next"]
    while cursor:
        page = site.ask(ListVMs(True, cursor, 3), timeout=10)
        assert len(page["vms"]) <= 3
        names += [v["name"] for v in page["vms"]]
        cursor = page["next"]
    assert len(names) == len(set(names))
    assert names == [f"acme.inv.web-{i}" for i in range(7)] + ["acme.zzz.web-0", "acme.zzz.web-1"]
    pages = join_pages(lambda cursor: site.ask(ListVMs(True, cursor, 2), timeout=10), "vms")
    every = [v["name"] for page in pages for v in page]
    assert every == sorted(every) and len(every) == 11
    with pytest.raises(ActorError, match="vms cursor .* is a cursor of the sites listing"):
        site.ask(ListVMs(True, make_cursor("sites", "page-a")), timeout=10)
    for app in ("inv", "aaa", "zzz"):
        acme.undeploy(app, timeout=60)


def test_a_tenants_cursor_is_only_ever_a_position_among_its_own_applications(cluster):
    acme, globex = cluster.client("acme"), cluster.client("globex")
    for name in ("a-one", "a-two", "a-three"):
        acme.deploy(_app("acme", name, 2), timeout=60)
    globex.deploy(_app("globex", "b-only", 2), timeout=60)
    page = acme._ask(Status(acme._token, None, None, 2))
    assert [a["app"] for a in page["apps"]] == ["a-one"] and page["next"]
    # acme's cursor, or one forged to point into acme's rows, shows globex only globex's
    stolen = globex._ask(Status(globex._token, None, page["next"], 2))
    forged = globex._ask(Status(globex._token, None, json.dumps(["a-three", "acme.a-three.web-0"]), 2))
    first = globex._ask(Status(globex._token, None, None, 2))
    for reply in (stolen, forged, first):
        assert {a["tenant"] for a in reply["apps"]} == {"globex"}
        assert {v["name"].split(".")[0] for a in reply["apps"] for v in a["vms"]} == {"globex"}
    # a change between pages (an application deployed before the cursor) is no duplicate
    acme.deploy(_app("acme", "a-aaa", 1), timeout=60)
    rows = page["apps"]
    cursor = page["next"]
    while cursor:
        reply = acme._ask(Status(acme._token, None, cursor, 2))
        rows += reply["apps"]
        cursor = reply["next"]
    vms = [v["name"] for a in rows for v in a["vms"]]
    assert len(vms) == len(set(vms)) == 6 and {a["tenant"] for a in rows} == {"acme"}
    with pytest.raises(InvalidPage, match="status cursor 'nope' is not one this controller gave out"):
        acme._ask(Status(acme._token, None, "nope"))
    for name in ("a-one", "a-two", "a-three", "a-aaa"):
        acme.undeploy(name, timeout=60)
    globex.undeploy("b-only", timeout=60)


# -- the CLI ----------------------------------------------------------------------------------


class _FakeClient:
    """Stands in for ``Client`` in ``wind sites``: a pool of three pages."""

    rows = [{"site": f"s-{i}", "driver": "sim", "region": "r", "hosts": 1, "vms": 0, "health": "up",
             "capacity": {"cpus": 8, "memory_mb": 8192}, "used": {"cpus": 0, "memory_mb": 0}}
            for i in range(3)]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def sites(self, *, progress=None):
        for listed in (1, 2, 3):
            if progress is not None:
                progress({"state": "done" if listed == 3 else "running",
                          "detail": {"total": 3, "listed": listed}})
        return list(self.rows)


@pytest.mark.parametrize("as_json", [True, False])
def test_wind_sites_shows_progress_on_a_long_listing_and_json_stays_a_list(monkeypatch, capsys, as_json):
    from wind_actors.cli import main
    from wind_actors.cli.commands import sites as sites_command

    monkeypatch.setattr(sites_command, "open_client", lambda args: _FakeClient())
    assert main.main(["sites", "--config", "unused.toml", *(["--json"] if as_json else [])]) == 0
    out, err = capsys.readouterr()
    if as_json:
        assert json.loads(out) == _FakeClient.rows and "listing sites" not in err
    else:
        assert "listing sites" in err and "3/3 sites" in err and "s-2" in out


def test_a_progress_bar_never_fed_prints_nothing(capsys):
    from wind_actors.cli._client import progress_bar

    with progress_bar("listing sites", "listed", unit="sites"):
        pass  # a listing of one page: the client never calls back
    assert capsys.readouterr().err == ""
