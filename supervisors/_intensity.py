"""Pure restart decisions: OTP's add_restart window, and backoff delays."""

from __future__ import annotations

import random

from supervisors._spec import Backoff

__all__ = ["add_restart", "backoff_delay", "intensity_exceeded"]


def add_restart(restarts: tuple[float, ...], now: float, period: float) -> tuple[float, ...]:
    """Record a restart at ``now`` and forget those older than the period.

    Like OTP's ``add_restart/3``: a restart at time ``r`` still counts while
    ``r >= now - period``.

    Args:
        restarts: earlier restart times, newest first.
        now: the time of this restart.
        period: the window, in seconds.

    Returns:
        The restart times inside the window, newest first, ``now`` included.
    """
    threshold = now - period
    kept = []
    for stamp in restarts:
        if stamp < threshold:
            break
        kept.append(stamp)
    return (now, *kept)


def intensity_exceeded(restarts: tuple[float, ...], intensity: int) -> bool:
    """Whether the supervisor must give up: more restarts in the window than allowed."""
    return len(restarts) > intensity


def backoff_delay(backoff: Backoff, attempt: int, rng: random.Random) -> float:
    """Seconds to wait before the ``attempt``-th consecutive restart (0-based).

    Args:
        backoff: the child's backoff settings.
        attempt: how many backed-off restarts came before this one.
        rng: the random source for jitter.

    Returns:
        ``min(maximum, initial * multiplier**attempt) * (1 + jitter * u)``, u in [0, 1).
    """
    base = backoff.initial * backoff.multiplier ** min(attempt, 64)
    return min(backoff.maximum, base) * (1.0 + backoff.jitter * rng.random())
