"""Status pages: a tenant's applications and their VMs, a page at a time (``protocol.Status``).

A page holds at most ``page_size`` VMs and stays under half the frame limit, so a status of
100,000 VMs is many small replies instead of one refused one. Applications come in name order
and each one's VMs in name order; an application longer than a page continues on the next pages
(its later rows say ``continued``; ``running``/``total`` are counted on its first row). The
cursor is opaque to clients: ``[app, last VM name]`` as JSON.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from wind_actors._chunks import packed_size
from wind_actors.errors import InvalidPage

from ._views import ALIVE, Snapshot, app_row

__all__ = ["DEFAULT_PAGE", "MAX_PAGE", "status_page", "parse_cursor"]

#: VMs per page when the client asks for none in particular.
DEFAULT_PAGE = 1000
#: The largest page a client may ask for.
MAX_PAGE = 5000


def parse_cursor(cursor: str | None) -> tuple[str, str | None] | None:
    """Returns: ``(app, last VM name sent or None)`` of a cursor, or None for the first page.

    Raises:
        InvalidPage: a cursor this controller did not make.
    """
    if cursor is None:
        return None
    try:
        app, after = json.loads(cursor)
        if isinstance(app, str) and (after is None or isinstance(after, str)):
            return app, after
    except (ValueError, TypeError):
        pass
    raise InvalidPage(f"status cursor {cursor[:80]!r} is not one this controller gave out; pass the "
                      "previous reply's \"next\" unchanged, or no cursor to start from the first page",
                      listing="status")


def _running(records: list[Any], snapshot: Snapshot) -> int:
    up = snapshot.sites_up
    return sum(1 for r in records if r.site in up
               and str((snapshot.vm(r.name, r.site) or {}).get("state")) in ALIVE)


def status_page(tenant: str, apps: list[Any], cursor: str | None, page_size: int, *,
                vms: Callable[..., list[Any]], op_of: Callable[[str], str | None],
                snapshot: Snapshot, decorate: Callable[[list[dict], Any], None],
                budget: int) -> dict[str, Any]:
    """Build one status page.

    Args:
        tenant: the tenant.
        apps: its application records to show, sorted by name.
        cursor: where the previous page ended (None: from the start).
        page_size: VMs per page (0: :data:`DEFAULT_PAGE`; at most :data:`MAX_PAGE`).
        vms: ``vms(app, after=, limit=)`` -> that application's VM records in name order.
        op_of: the latest operation id of an application.
        snapshot: the sites as they are now.
        decorate: adds lost-site reasons and overlay addresses to ``(rows, app record)``.
        budget: bytes a page may take; a page over it is built again with half the VMs.

    Returns:
        ``{"apps": [app rows], "next": cursor or None}``.
    """
    size = min(MAX_PAGE, page_size if page_size > 0 else DEFAULT_PAGE)
    while True:
        page = _build(tenant, apps, parse_cursor(cursor), size, vms, op_of, snapshot, decorate)
        if size == 1 or packed_size(page) <= budget:
            return page
        size = max(1, size // 2)  # rows with long details: fewer per page


def _build(tenant, apps, start, size, vms, op_of, snapshot, decorate) -> dict[str, Any]:
    rows: list[dict] = []
    room = size
    for i, rec in enumerate(apps):
        if start is not None and rec.name < start[0]:
            continue
        after = start[1] if start is not None and rec.name == start[0] else None
        take = vms(rec.name, after=after, limit=room + 1)  # one more: is there a rest?
        more = len(take) > room
        take = take[:room]
        row = app_row(tenant, rec.name, rec.state, op_of(rec.name), take, snapshot)
        if after is None:
            every = take if not more else vms(rec.name)
            row["total"], row["running"] = len(every), _running(every, snapshot)
        else:
            row["continued"] = True
        decorate([row], rec)
        rows.append(row)
        room -= len(take)
        if more:
            return {"apps": rows, "next": json.dumps([rec.name, take[-1].name])}
        if room == 0 and i + 1 < len(apps):
            return {"apps": rows, "next": json.dumps([apps[i + 1].name, None])}
    return {"apps": rows, "next": None}
