"""Paged listings: cursors, page sizes and page cutting shared by every listing that grows with
the cloud (``protocol.Sites`` at the controller, ``protocol.ListVMs`` at an agent).

Conventions (the same as ``protocol.Status``):

- rows come in a stable order by a unique name, and the cursor says where the last page ended:
  the next page holds the rows whose name sorts after it. A row added or removed between two
  pages therefore never shifts another row into a page twice or out of every page;
- the cursor is opaque to clients: JSON ``[listing, last name]``. The listing's name in it lets
  a cursor of one listing be refused by another instead of silently skipping rows;
- ``page_size`` 0 asks for the listing's default; above its maximum is taken as the maximum
  (the ``Status`` rule); a negative one is refused;
- a page is cut by bytes as well as by rows: one over its byte budget is built again with half
  the rows, so rows of unusual size never make a reply the frame limit refuses;
- the reply says ``next``: the cursor of the next page, or None after the last one.

Whoever filters rows (a tenant's own, managed VMs only) does so *before* paging, so a cursor is a
position among the rows its asker may see and never reaches anyone else's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from wind_actors._chunks import chunks_by_size, packed_size
from wind_actors.errors import InvalidPage

__all__ = ["page_size_of", "make_cursor", "parse_cursor", "take_page", "fit_page", "join_pages",
           "cap_in_place"]

T = TypeVar("T")


def page_size_of(requested: int, *, listing: str, default: int, maximum: int) -> int:
    """Returns: the rows a page of ``listing`` holds for a request of ``requested``.

    Raises:
        InvalidPage: ``requested`` is negative (or not an int).
    """
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 0:
        raise InvalidPage(f"page_size {requested!r} is not allowed for the {listing} listing: pass 0 "
                          f"for the default ({default}) or 1 to {maximum} rows a page (more is taken "
                          f"as {maximum})", listing=listing)
    return min(maximum, requested or default)


def make_cursor(listing: str, last: str) -> str:
    """Returns: the cursor of the page after the one whose last row is named ``last``."""
    return json.dumps([listing, last])


def parse_cursor(listing: str, cursor: str | None) -> str | None:
    """Returns: the name of the last row already sent, or None for the first page.

    Raises:
        InvalidPage: a cursor this listing did not give out (malformed, or another listing's).
    """
    if cursor is None:
        return None
    try:
        kind, last = json.loads(cursor)
    except (ValueError, TypeError):
        kind, last = None, None
    if kind == listing and isinstance(last, str):
        return last
    what = (f"is a cursor of the {kind} listing" if isinstance(kind, str) and isinstance(last, str)
            else "is not a cursor this listing gave out")
    raise InvalidPage(f"{listing} cursor {cursor[:80]!r} {what}; pass the previous reply's \"next\" "
                      "unchanged, or no cursor to start from the first page", listing=listing)


def take_page(rows: Iterable[T], name: Callable[[T], str], after: str | None,
              size: int) -> tuple[list[T], bool]:
    """Cut one page out of ``rows`` (sorted by ``name``, names unique).

    Returns:
        ``(at most size rows named after `after`, whether rows remain after them)``.
    """
    page: list[T] = []
    for row in rows:
        if after is not None and name(row) <= after:
            continue
        if len(page) == size:
            return page, True
        page.append(row)
    return page, False


def fit_page(build: Callable[[int], dict[str, Any]], size: int, budget: int) -> dict[str, Any]:
    """Returns: ``build(size)``, or ``build`` of half as many rows while the page's packed size is
    over ``budget`` bytes (down to one row a page, which is sent whatever its size)."""
    while True:
        page = build(size)
        if size == 1 or packed_size(page) <= budget:
            return page
        size = max(1, size // 2)


def join_pages(ask: Callable[[str | None], Any], rows_key: str,
               progress: Callable[[int, int | None, bool], None] | None = None) -> Iterator[Sequence[Any]]:
    """Ask for every page of a listing in turn; yields each page's rows.

    Args:
        ask: ``ask(cursor)`` -> a page reply (``{rows_key: [...], "next", "total"?}``).
        rows_key: the reply's key of the rows (``sites``, ``vms``).
        progress: called after each page of a listing longer than one page with
            ``(rows so far, the reply's "total" or None, whether that was the last page)``.
    """
    cursor, seen = None, 0
    while True:
        reply = ask(cursor)
        rows = reply[rows_key]
        seen += len(rows)
        yield rows
        previous, cursor = cursor, reply.get("next")
        if progress is not None and (cursor or previous):  # more than one page
            progress(seen, reply.get("total"), not cursor)
        if not cursor:
            return


def cap_in_place(reply: dict[str, Any], key: str, budget: int) -> None:
    """Cut the list (or dict) at ``reply[key]`` to its first entries that fit in ``budget`` bytes.

    For the parts of one-off replies that grow with the cloud but are no listing of their own
    (a deploy's placement, an operation's failed VMs, the sites a removal re-planned): the
    reply stays under the frame limit, and ``reply[key + "_total"]`` says how many there were
    whenever some were left out. Anything else at ``key`` is left alone.
    """
    value = reply.get(key)
    if not isinstance(value, (list, tuple, dict)) or packed_size(value) <= budget:
        return
    items = list(value.items()) if isinstance(value, dict) else list(value)
    head = next(chunks_by_size(items, budget), [])
    reply[key] = dict(head) if isinstance(value, dict) else head
    reply[key + "_total"] = len(items)
