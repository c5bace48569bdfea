"""The pool table a page at a time (``protocol.Sites``, ``wind sites``).

Sites come in name order; the cursor is the last site name sent (``wind_actors._paging``), so
a site that joins or leaves between two pages is listed once or not at all, never twice. Only
the page's own sites go through ``build_pool``, so a page costs what its rows cost, not what
the pool does (the placements reserved on those sites are still counted in their ``used``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from wind_actors._paging import fit_page, make_cursor, page_size_of, parse_cursor, take_page
from wind_actors.services import Slot

from ._views import Snapshot, build_pool

__all__ = ["LISTING", "DEFAULT_PAGE", "MAX_PAGE", "sites_page"]

#: The listing's name in its cursors.
LISTING = "sites"
#: Sites per page when the client asks for none in particular (a row is ~0.5 KiB).
DEFAULT_PAGE = 200
#: The largest page a client may ask for.
MAX_PAGE = 1000


def sites_page(snapshot: Snapshot, pending: Iterable[tuple[str, Slot]], cursor: str | None,
               page_size: int, *, budget: int, now: float) -> dict[str, Any]:
    """Build one page of the pool table.

    Args:
        snapshot: the sites as they are now.
        pending: ``(vm name, slot)`` of every stored placement (see ``build_pool``).
        cursor: the previous page's ``next`` (None: from the first site).
        page_size: sites per page (0: :data:`DEFAULT_PAGE`; at most :data:`MAX_PAGE`).
        budget: bytes a page may take; a page over it is built again with half the sites.
        now: the monotonic time the ages of the last reports are counted to.

    Returns:
        ``{"sites": [rows], "next": cursor or None, "total": sites in the pool}``.

    Raises:
        InvalidPage: a cursor this listing did not give out, or a negative page size.
    """
    after = parse_cursor(LISTING, cursor)
    size = page_size_of(page_size, listing=LISTING, default=DEFAULT_PAGE, maximum=MAX_PAGE)
    names = sorted(snapshot.sites)
    pending = list(pending)

    def build(rows_wanted: int) -> dict[str, Any]:
        page, more = take_page(names, str, after, rows_wanted)
        views = {name: snapshot.sites[name] for name in page}
        rows = build_pool(Snapshot(views), pending).table()  # sorted by name, as `page` is
        for row in rows:
            view = views[row["site"]]
            row["agent"] = view.node
            row["last_report_s"] = round(now - view.last_seen, 2)
            row["rtt_ms"] = {k: round(v, 3) for k, v in view.report.rtt_ms.items()}
        return {"sites": rows, "next": make_cursor(LISTING, page[-1]) if more else None,
                "total": len(names)}

    return fit_page(build, size, budget)
