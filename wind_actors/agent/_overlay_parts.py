"""Overlay pushes larger than a frame: cut into parts by the planner, joined by the agent (pure).

A site's full state (or a large diff) grows with the NICs on its networks: 50,000 NICs are
several MB, far over ``[node] max_frame_bytes``. :func:`split_change` cuts an encoded state or
diff (``encode_state``/``encode_diff`` output) into parts under a byte budget: whole segments
where they fit, else a segment's NIC list and member table in slices, each slice carrying the
segment's scalar fields. :func:`join_change` puts the parts back together into exactly the
encoded change that was cut.

:class:`PartBuffer` is the agent's side: it collects the parts of one push (the same epoch,
generation and base, numbered ``0 .. parts-1``, in order: a sender's tells arrive in order or
not at all) and hands back the joined change once every part is in. A part missing (a gap in the
numbering, a newer push beginning before this one ended, or no next part for
:data:`PART_TIMEOUT` seconds) drops the whole push and says so: the agent keeps the state it
holds and asks the planner for the full state. A push is never applied in part.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from wind_actors._chunks import chunks_by_size, packed_size

__all__ = ["PART_TIMEOUT", "PartBuffer", "join_change", "split_change"]

#: Seconds an incomplete push waits for its next part before it counts as lost.
PART_TIMEOUT = 5.0

_LISTS = ("nics", "members")
#: The segment lists of an encoded diff, and the sections a part's pieces are filed under.
_DIFF_SECTIONS = ("add", "update.old", "update.new", "remove")


def split_change(change: Mapping[str, Any], budget: int, *, full: bool) -> list[dict[str, Any]]:
    """Cut an encoded change into parts of at most about ``budget`` packed bytes each.

    Args:
        change: ``encode_state`` output when ``full``, else ``encode_diff`` output.
        budget: bytes of pieces one part may carry (``_chunks.budget_of(max_frame_bytes)``).
        full: whether ``change`` is a whole state.

    Returns:
        ``[change]`` when it fits as it is; else parts ``{"site", "underlay_ip", "pieces":
        [[section, segment piece], ...]}`` for :func:`join_change`.
    """
    if packed_size(change) <= budget:
        return [dict(change)]
    pieces = []
    for section, segment in _sections(change, full):
        pieces.extend([section, p] for p in _split_segment(segment, budget // 2))
    head = {"site": change["site"], "underlay_ip": change["underlay_ip"]}
    return [{**head, "pieces": chunk} for chunk in chunks_by_size(pieces, budget)]


def join_change(parts: list[Mapping[str, Any]], *, full: bool) -> dict[str, Any]:
    """Rebuild the encoded change :func:`split_change` cut into ``parts`` (all of them, in order).

    Returns:
        The ``encode_state`` (``full``) or ``encode_diff`` output that was cut.
    """
    if len(parts) == 1 and "pieces" not in parts[0]:
        return dict(parts[0])
    merged: dict[str, dict[int, dict[str, Any]]] = {}
    for part in parts:
        for section, piece in part["pieces"]:
            seg = merged.setdefault(section, {}).get(piece["vni"])
            if seg is None:
                merged[section][piece["vni"]] = {**piece, "nics": list(piece["nics"]),
                                                 "members": {s: [ip, list(macs)] for s, (ip, macs)
                                                             in piece["members"].items()}}
                continue
            seg["nics"].extend(piece["nics"])
            for site, (ip, macs) in piece["members"].items():
                seg["members"].setdefault(site, [ip, []])[1].extend(macs)
    head = {"site": parts[0]["site"], "underlay_ip": parts[0]["underlay_ip"]}
    if full:
        return {**head, "segments": list(merged.get("segments", {}).values())}
    old = merged.get("update.old", {})
    return {**head, "add": list(merged.get("add", {}).values()),
            "update": [[old[vni], new] for vni, new in merged.get("update.new", {}).items()],
            "remove": list(merged.get("remove", {}).values())}


def _sections(change: Mapping[str, Any], full: bool) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if full:
        for segment in change["segments"]:
            yield "segments", segment
        return
    for segment in change["add"]:
        yield "add", segment
    for old, new in change["update"]:
        yield "update.old", old
        yield "update.new", new
    for segment in change["remove"]:
        yield "remove", segment


def _split_segment(segment: Mapping[str, Any], budget: int) -> list[dict[str, Any]]:
    """A segment as pieces of at most about ``budget`` bytes: itself if it fits, else slices of
    its NICs and of its member table, each with the segment's scalar fields."""
    if packed_size(segment) <= budget:
        return [dict(segment)]
    header = {k: v for k, v in segment.items() if k not in _LISTS}
    room = max(256, budget - packed_size(header) - 32)
    pieces = [{**header, "nics": chunk, "members": {}} for chunk in chunks_by_size(segment["nics"], room)]
    group: dict[str, list[Any]] = {}
    used = 0
    for site, (ip, macs) in segment["members"].items():
        for chunk in (chunks_by_size(macs, room) if macs else [[]]):
            size = packed_size([site, ip, chunk])
            if group and used + size > room:
                pieces.append({**header, "nics": [], "members": group})
                group, used = {}, 0
            group.setdefault(site, [ip, []])[1].extend(chunk)
            used += size
    if group or not pieces:
        pieces.append({**header, "nics": [], "members": group})
    return pieces


class PartBuffer:
    """The parts of the push being received (the agent's overlay actor thread only).

    Attributes:
        lost: how many pushes were dropped for a missing part (stats and tests).
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._dead: tuple | None = None  # the push last dropped: its late parts are ignored
        self._parts: list[Mapping[str, Any]] = []
        self._since = 0.0
        self.lost = 0

    @property
    def pending(self) -> bool:
        """Whether a push has some of its parts in and waits for the rest."""
        return self._key is not None

    def add(self, epoch: str, generation: int, base: int | None, part: int, parts: int,
            change: Mapping[str, Any], now: float) -> tuple[dict[str, Any] | None, bool]:
        """Take one part.

        Returns:
            ``(joined change or None, lost)``: the whole change once its last part is in; ``lost``
            is True when this part shows that a part went missing (this push's, or an unfinished
            earlier one's), and everything received of that push has been dropped.
        """
        key = (epoch, generation, base, parts)
        lost = False
        if part == 0:  # a push begins (perhaps the planner sending one again): any unfinished one is lost
            lost = self._drop()
            self._dead = None
            self._key, self._parts = key, []
        elif key == self._dead:
            return None, False  # the rest of a push already dropped (and reported)
        elif key != self._key or part != len(self._parts):
            began = key == self._key
            self._drop()  # a part of this push went missing (one in between, or its first ones)
            self.lost += 0 if began else 1
            self._dead = key
            return None, True
        self._parts.append(change)
        self._since = now
        if len(self._parts) < parts:
            return None, lost
        joined = join_change(self._parts, full=base is None)
        self._key, self._parts = None, []
        return joined, lost

    def expire(self, now: float) -> bool:
        """Drop a push whose next part is overdue. Returns: whether one was dropped."""
        if self._key is not None and now - self._since >= PART_TIMEOUT:
            return self._drop()
        return False

    def _drop(self) -> bool:
        had = self._key is not None
        self._key, self._parts = None, []
        if had:
            self.lost += 1
        return had
