"""Cutting requests that grow with the cloud into messages under the frame limit (pure).

A message over ``[node] max_frame_bytes`` is refused at the sender (``WireError`` with reason
``oversized``), so every request whose size follows the number of VMs (EnsureVMs, RemoveVMs, a
status page) is cut here first, by its msgpack size, with room to spare for the envelope.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import msgpack

__all__ = ["packed_size", "chunks_by_size", "budget_of", "OVERSIZE_FIX"]

#: What to do about a message the frame limit refused (said in every such warning).
OVERSIZE_FIX = ("the message is larger than [node] max_frame_bytes: it must be sent in chunks "
                "(or raise max_frame_bytes on both nodes)")


def packed_size(value: Any) -> int:
    """Returns: the msgpack size of plain data ``value`` in bytes (a few bytes over for refs)."""
    return len(msgpack.packb(value, use_bin_type=True, default=repr))


def budget_of(max_frame_bytes: int) -> int:
    """Returns: the bytes of items one chunk may carry under a frame limit (half of it: the
    envelope, the message's other fields and CURVE's framing never come near the other half)."""
    return max(1024, max_frame_bytes // 2)


def chunks_by_size(items: Iterable[Any], budget: int) -> Iterator[list[Any]]:
    """Yield consecutive lists of ``items`` whose packed sizes add up to at most ``budget``.

    An item larger than the budget on its own is yielded alone (the sender then reports the
    frame limit's refusal for it); no chunk is ever empty, and nothing is yielded for no items.
    """
    chunk: list[Any] = []
    used = 0
    for item in items:
        size = packed_size(item) + 8
        if chunk and used + size > budget:
            yield chunk
            chunk, used = [], 0
        chunk.append(item)
        used += size
    if chunk:
        yield chunk
